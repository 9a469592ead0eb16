// vkfuse/plan/graph.hpp — a program type lowered to a constexpr DAG.
//
// The expression tree is a type; planning and code generation want to ask questions of it ("which nodes does this
// kernel need?", "is this sub-expression used twice?") that are plain loops over data but contortions over types.
// So the program is lowered once, at compile time, into an array of node records. Equal sub-expressions become one
// record (hash-consing by structure), so `rmsnorm(x)` used by two matvecs is computed once.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../core/fixed_string.hpp"
#include "../core/types.hpp"
#include "../expr/node.hpp"
#include "../expr/structure.hpp"

namespace vkfuse::plan {

// A name held by value, so records are plain data (31 characters, as placeholders enforce).
struct name_buf {
    char chars[32] = {};
    std::uint8_t size = 0;

    template <std::size_t N>
    static constexpr name_buf from(const fixed_string<N>& s) {
        name_buf b;
        for (std::size_t i = 0; i < N; ++i) b.chars[i] = s[i];
        b.size = static_cast<std::uint8_t>(N);
        return b;
    }
    constexpr std::string_view view() const { return {chars, size}; }
    constexpr bool empty() const { return size == 0; }
    constexpr bool operator==(const name_buf& o) const { return view() == o.view(); }
};

enum class node_kind : std::uint8_t {
    leaf,       // placeholder: a buffer, a param, a state, a table
    constant,   // compile-time f32
    unary,      // op(a)
    binary,     // op(a, b)
    reduce,     // op over vector a -> scalar
    matvec,     // a (matrix leaf) . b
    rope,       // rotate a at position b with table c; p0 = head_dim, value = theta
    append,     // write b into row c of state a; the value is the state after the write
    attention,  // q a, caches b and c, position d; p0 = heads, p1 = kv heads, p2 = head_dim
    lookup,     // row b of table a
};

// One node of the DAG. Children are indices of earlier records, so index order is a topological order.
struct node {
    node_kind kind = node_kind::leaf;
    op operation = op::add;          // unary, binary, reduce
    role leaf_role = role::input;    // leaf
    dtype_code dtype = dtype_code::f32;
    std::uint32_t rank = 0;          // 0 scalar, 1 vector, 2 matrix
    std::uint64_t rows = 1;          // elements of a vector, rows of a matrix, 1 for a scalar
    std::uint64_t cols = 0;          // columns of a matrix
    int a = -1, b = -1, c = -1, d = -1;  // children
    std::uint32_t p0 = 0, p1 = 0, p2 = 0;  // integer parameters (see node_kind)
    float value = 0.0f;              // constant; rope theta
    rope_scaling scaling;            // a rope's cos/sin table: Llama 3's frequency scaling, if any
    name_buf name;                   // leaf
    std::uint8_t step = 0;           // the step of a steps(...) program that computes it (0 for leaves and constants,
                                     // which every step shares)

    constexpr std::uint64_t elements() const { return rank == 2 ? rows * cols : rows; }
    constexpr int child(int k) const { return k == 0 ? a : k == 1 ? b : k == 2 ? c : d; }
    constexpr bool same(const node& o) const {
        return kind == o.kind && operation == o.operation && leaf_role == o.leaf_role && dtype == o.dtype &&
               rank == o.rank && rows == o.rows && cols == o.cols && a == o.a && b == o.b && c == o.c && d == o.d &&
               p0 == o.p0 && p1 == o.p1 && p2 == o.p2 &&
               std::bit_cast<std::uint32_t>(value) == std::bit_cast<std::uint32_t>(o.value) && name == o.name &&
               step == o.step && scaling.original_positions == o.scaling.original_positions &&
               std::bit_cast<std::uint32_t>(scaling.factor) == std::bit_cast<std::uint32_t>(o.scaling.factor) &&
               std::bit_cast<std::uint32_t>(scaling.low_freq_factor) ==
                   std::bit_cast<std::uint32_t>(o.scaling.low_freq_factor) &&
               std::bit_cast<std::uint32_t>(scaling.high_freq_factor) ==
                   std::bit_cast<std::uint32_t>(o.scaling.high_freq_factor);
    }
};

// A program's result: an output placeholder and the node stored into it.
struct output_record {
    name_buf name;
    dtype_code dtype = dtype_code::f32;
    int node = -1;
};

// A mistake lowering found in a program: names that collide. Constant evaluation cannot static_assert on values it
// computes, so lowering records the first one and make_plan reports it with the name as a template argument.
enum class naming_error : std::uint8_t {
    none,
    value_has_two_names,          // named<"a">(named<"b">(e)), or one value stored into two outputs
    two_results_share_a_name,     // two outputs or named<> results called the same
    result_named_like_a_placeholder,  // an output or named<> result with the name of an input, weight, ...
    output_is_a_placeholder,      // `y = x` with x a placeholder: nothing to compute (use x itself)
    per_layer_leaf_outside_stack, // a weight or state of a stack<L>'s body is also read by another step
    step_output_shape_differs,    // a later step reads an earlier step's output with another shape or type
};

struct diagnostic {
    naming_error error = naming_error::none;
    name_buf name;
};

// How a program's nodes divide into steps (steps(...)), and its stack of layers if it has one.
struct step_layout {
    int step_count = 1;
    int stack_step = -1;       // the step that is a stack<L>(...), -1 for none
    std::uint32_t layers = 1;  // L
    name_buf carry_in, carry_out;  // the stack's input and output: layer i's output is layer i + 1's input
};

template <std::size_t Cap>
struct graph {
    node nodes[Cap] = {};
    std::uint64_t keys[Cap] = {};  // the structural hash of the type each node was lowered from (memo)
    int size = 0;
    name_buf result_name[Cap] = {};  // names given by named<"..."> or by an output `y = ...`
    output_record outputs[Cap] = {};
    int output_count = 0;
    diagnostic problem;  // the first naming mistake, if any
    step_layout steps;

    constexpr const node& operator[](int i) const { return nodes[i]; }
};

// The graph under construction: growable (constexpr std::vector), so lowering needs no capacity guessed from the
// tree (a stack of layers' tree is exponentially larger than its DAG) and no large fixed array copied around.
struct growing_graph {
    std::vector<node> nodes;
    std::vector<std::uint64_t> keys;
    std::vector<name_buf> result_name;
    std::vector<output_record> outputs;
    int size = 0;
    int output_count = 0;
    diagnostic problem;
    step_layout steps;
    std::uint8_t current_step = 0;  // the step being lowered

    // The index of a node equal to `n`, adding it if new; computed nodes belong to the step being lowered, so equal
    // expressions of two steps stay two nodes (a stack's body runs once per layer, the other steps once). (Two
    // placeholders of one name are caught where the program is formed, expr/names.hpp.)
    constexpr int intern(node n) {
        n.step = n.kind == node_kind::leaf || n.kind == node_kind::constant ? 0 : current_step;
        for (int i = 0; i < size; ++i)
            if (nodes[i].same(n)) return i;
        nodes.push_back(n);
        keys.push_back(0);
        result_name.push_back({});
        return size++;
    }
    constexpr void report(naming_error e, const name_buf& n) {
        if (problem.error == naming_error::none) problem = {e, n};
    }
    // Gives node i the result name `n`; a value has at most one name, and names are unique.
    constexpr void name_result(int i, const name_buf& n) {
        if (!result_name[i].empty()) report(naming_error::value_has_two_names, n);
        if (nodes[i].kind == node_kind::leaf) report(naming_error::output_is_a_placeholder, n);
        for (int j = 0; j < size; ++j) {
            if (j != i && result_name[j] == n) report(naming_error::two_results_share_a_name, n);
            if (nodes[j].kind == node_kind::leaf && nodes[j].name == n)
                report(naming_error::result_named_like_a_placeholder, n);
        }
        result_name[i] = n;
    }
    constexpr void add_output(const output_record& o) {
        outputs.push_back(o);
        ++output_count;
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Lowering: types -> records. One specialisation per node type; each knows its tree size (the capacity bound).
// ---------------------------------------------------------------------------------------------------------------

template <class S>
constexpr node shaped(node n) {
    n.rank = static_cast<std::uint32_t>(S::rank);
    n.rows = S::rows;
    n.cols = S::cols;
    return n;
}

template <class T>
struct lower_node;

// The graph index of expression E, lowering it the first time: a node type met again (a stack of layers uses each
// layer's output several times) is found by its structural hash instead of being walked again.
template <class E, class G>
constexpr int lower(G& g) {
    constexpr std::uint64_t key = expr::structural_hash<E>;
    for (int i = 0; i < g.size; ++i)
        if (g.keys[i] == key && (g.nodes[i].step == g.current_step || g.nodes[i].kind == node_kind::leaf ||
                                 g.nodes[i].kind == node_kind::constant))
            return i;
    const int i = lower_node<E>::apply(g);
    if (g.keys[i] == 0) g.keys[i] = key;
    return i;
}

template <role R, fixed_string Name, class D, class S>
struct lower_node<expr::placeholder<R, Name, D, S>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n = shaped<S>({});
        n.kind = node_kind::leaf;
        n.leaf_role = R;
        n.dtype = D::code;
        n.name = name_buf::from(Name);
        return g.intern(n);
    }
};

template <float V>
struct lower_node<expr::constant<V>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n;
        n.kind = node_kind::constant;
        n.value = V;
        return g.intern(n);
    }
};

template <op O, class A, class S>
struct lower_node<expr::unary<O, A, S>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n = shaped<S>({});
        n.kind = node_kind::unary;
        n.operation = O;
        n.a = lower<A>(g);
        return g.intern(n);
    }
};

template <op O, class A, class B, class S>
struct lower_node<expr::binary<O, A, B, S>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n = shaped<S>({});
        n.kind = node_kind::binary;
        n.operation = O;
        n.a = lower<A>(g);
        n.b = lower<B>(g);
        return g.intern(n);
    }
};

template <op O, class A>
struct lower_node<expr::reduce<O, A>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n;
        n.kind = node_kind::reduce;
        n.operation = O;
        n.dtype = O == op::argmax ? dtype_code::u32 : dtype_code::f32;
        n.a = lower<A>(g);
        return g.intern(n);
    }
};

template <class W, class X>
struct lower_node<expr::product<W, X>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n = shaped<typename expr::product<W, X>::shape>({});
        n.kind = node_kind::matvec;
        n.a = lower<W>(g);
        n.b = lower<X>(g);
        return g.intern(n);
    }
};

template <fixed_string Name, class A>
struct lower_node<expr::named_value<Name, A>> {
    template <class G>
    static constexpr int apply(G& g) {
        const int i = lower<A>(g);
        if (!(g.result_name[i] == name_buf::from(Name))) g.name_result(i, name_buf::from(Name));
        return i;
    }
};

// The cos/sin table of a rope: MaxPos rows of head_dim values (cos for j < head_dim/2, then sin), computed by the
// runtime in double precision. Named after its parameters so equal ropes share one table: rope_<d>_<theta>_<rows>,
// or, scaled, ropes_<d>_<rows>_<a hash of theta and the scaling>.
template <std::size_t HeadDim, float Theta, std::size_t MaxPos, rope_scaling Scaling = rope_scaling{}>
constexpr node rope_table_leaf() {
    static_assert(Theta == static_cast<float>(static_cast<std::uint32_t>(Theta)) && Theta < 1e9f,
                  "vkfuse rope: Theta must be a whole number below 1e9 (it names the cos/sin table)");
    node n;
    n.kind = node_kind::leaf;
    n.leaf_role = role::table;
    n.rank = 2;
    n.rows = MaxPos;
    n.cols = HeadDim;
    n.value = Theta;
    n.p0 = static_cast<std::uint32_t>(HeadDim);
    n.scaling = Scaling;
    char text[32] = "rope_";
    int len = 5;
    if constexpr (Scaling.scaled()) {
        text[4] = 's';
        text[5] = '_';
        len = 6;
    }
    auto put = [&](std::uint32_t v) {
        char digits[10] = {};
        int k = 0;
        do {
            digits[k++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        while (k > 0) text[len++] = digits[--k];
    };
    put(static_cast<std::uint32_t>(HeadDim));
    text[len++] = '_';
    if constexpr (Scaling.scaled()) {
        put(static_cast<std::uint32_t>(MaxPos));
        text[len++] = '_';
        std::uint64_t h = 0x9e3779b97f4a7c15ull;
        for (std::uint32_t v : {std::bit_cast<std::uint32_t>(Theta), std::bit_cast<std::uint32_t>(Scaling.factor),
                                std::bit_cast<std::uint32_t>(Scaling.low_freq_factor),
                                std::bit_cast<std::uint32_t>(Scaling.high_freq_factor), Scaling.original_positions})
            h = (h ^ v) * 0x100000001b3ull;
        for (int k = 0; k < 8; ++k) text[len++] = "0123456789abcdef"[(h >> (4 * k)) & 15u];
    } else {
        put(static_cast<std::uint32_t>(Theta));
        text[len++] = '_';
        put(static_cast<std::uint32_t>(MaxPos));
    }
    for (int i = 0; i < len; ++i) n.name.chars[i] = text[i];
    n.name.size = static_cast<std::uint8_t>(len);
    return n;
}

template <std::size_t HD, float Theta, std::size_t MaxPos, class X, class Pos, rope_scaling S>
struct lower_node<expr::rotary<HD, Theta, MaxPos, X, Pos, S>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n = shaped<typename X::shape>({});
        n.kind = node_kind::rope;
        n.a = lower<X>(g);
        n.b = lower<Pos>(g);
        n.c = g.intern(rope_table_leaf<HD, Theta, MaxPos, S>());
        n.p0 = static_cast<std::uint32_t>(HD);
        n.value = Theta;
        return g.intern(n);
    }
};

template <class S, class X, class Pos>
struct lower_node<expr::cache_write<S, X, Pos>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n = shaped<typename S::shape>({});
        n.kind = node_kind::append;
        n.a = lower<S>(g);
        n.b = lower<X>(g);
        n.c = lower<Pos>(g);
        return g.intern(n);
    }
};

template <std::size_t H, std::size_t KV, class Q, class K, class V, class Pos>
struct lower_node<expr::decode_attention<H, KV, Q, K, V, Pos>> {
    using node_type = expr::decode_attention<H, KV, Q, K, V, Pos>;
    template <class G>
    static constexpr int apply(G& g) {
        node n = shaped<typename Q::shape>({});
        n.kind = node_kind::attention;
        n.a = lower<Q>(g);
        n.b = lower<K>(g);
        n.c = lower<V>(g);
        n.d = lower<Pos>(g);
        n.p0 = static_cast<std::uint32_t>(H);
        n.p1 = static_cast<std::uint32_t>(KV);
        n.p2 = static_cast<std::uint32_t>(node_type::head_dim);
        return g.intern(n);
    }
};

template <class E, class Token>
struct lower_node<expr::row_lookup<E, Token>> {
    template <class G>
    static constexpr int apply(G& g) {
        node n = shaped<typename expr::row_lookup<E, Token>::shape>({});
        n.kind = node_kind::lookup;
        n.a = lower<E>(g);
        n.b = lower<Token>(g);
        return g.intern(n);
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Programs: one or several assignments
// ---------------------------------------------------------------------------------------------------------------

template <class Out, class E>
constexpr void lower_assignment(auto& g) {
    const int i = lower<E>(g);
    g.name_result(i, name_buf::from(Out::name));
    g.add_output({name_buf::from(Out::name), Out::dtype::code, i});
}

// One argument of a program: `output = e`, or an effect (a cache append) lowered for its own sake.
template <class T>
struct entry_lowering {
    template <class G>
    static constexpr void apply(G& g) {
        lower<T>(g);
    }
};
template <class Out, class E>
struct entry_lowering<expr::assignment<Out, E>> {
    template <class G>
    static constexpr void apply(G& g) {
        lower_assignment<Out, E>(g);
    }
};

template <class P>
struct program_lowering : program_lowering<typename expr::as_program<P>::type> {};

template <class... Entries>
struct program_lowering<expr::program<Entries...>> {
    template <class G>
    static constexpr void apply(G& g) {
        (entry_lowering<Entries>::apply(g), ...);
    }
};

template <std::size_t L, class In, class Out, class Body>
struct program_lowering<expr::stack<L, In, Out, Body>> {
    template <class G>
    static constexpr void apply(G& g) {
        g.steps.stack_step = g.current_step;
        g.steps.layers = static_cast<std::uint32_t>(L);
        g.steps.carry_in = name_buf::from(In::name);
        g.steps.carry_out = name_buf::from(Out::name);
        program_lowering<Body>::apply(g);
    }
};

// Each step in turn; its nodes are tagged with its index.
template <class... Steps>
struct program_lowering<expr::steps<Steps...>> {
    template <class G>
    static constexpr void apply(G& g) {
        g.steps.step_count = static_cast<int>(sizeof...(Steps));
        ((program_lowering<Steps>::apply(g), ++g.current_step), ...);
        check_steps(g);
    }

    // Per-layer leaves stay inside their stack, and what flows between steps agrees in shape.
    template <class G>
    static constexpr void check_steps(G& g) {
        const step_layout& st = g.steps;
        if (st.stack_step < 0) return;
        for (int leaf = 0; leaf < g.size; ++leaf) {
            const node& l = g.nodes[leaf];
            if (l.kind != node_kind::leaf || (l.leaf_role != role::weight && l.leaf_role != role::state)) continue;
            bool inside = false, outside = false;
            for (int i = 0; i < g.size; ++i)
                for (int k = 0; k < 4; ++k)
                    if (g.nodes[i].child(k) == leaf) (g.nodes[i].step == st.stack_step ? inside : outside) = true;
            if (inside && outside) g.report(naming_error::per_layer_leaf_outside_stack, l.name);
        }
        // An input leaf named like an earlier step's output reads that output: same shape, f32 or u32 alike.
        for (int leaf = 0; leaf < g.size; ++leaf) {
            const node& l = g.nodes[leaf];
            if (l.kind != node_kind::leaf) continue;
            for (int o = 0; o < g.output_count; ++o) {
                const node& r = g.nodes[g.outputs[o].node];
                if (!(g.outputs[o].name == l.name)) continue;
                if (l.leaf_role != role::input || r.elements() != l.elements() || g.outputs[o].dtype != l.dtype)
                    g.report(naming_error::step_output_shape_differs, l.name);
            }
        }
    }
};

// The DAG of a program type (an assignment or a layer_graph(...)), in a graph of exactly its size: lowered into a
// growing graph once to learn the size, then again to fill the fixed one (a constant's storage cannot be dynamic).
template <class Program>
constexpr auto lower_program() {
    using P = Program;
    constexpr int size = [] {
        growing_graph g;
        program_lowering<P>::apply(g);
        return g.size;
    }();
    growing_graph wide;
    program_lowering<P>::apply(wide);
    graph<static_cast<std::size_t>(size) + 1> g;
    for (int i = 0; i < size; ++i) {
        g.nodes[i] = wide.nodes[i];
        g.keys[i] = wide.keys[i];
        g.result_name[i] = wide.result_name[i];
    }
    g.size = size;
    for (int o = 0; o < wide.output_count; ++o) g.outputs[o] = wide.outputs[o];
    g.output_count = wide.output_count;
    g.problem = wide.problem;
    g.steps = wide.steps;
    return g;
}

} // namespace vkfuse::plan
