// vkfuse/plan/graph.hpp — an expression type lowered to a constexpr DAG.
//
// The expression tree is a type; planning and code generation want to ask questions of it ("which nodes does this
// kernel need?", "is this sub-expression used twice?") that are plain loops over data but contortions over types.
// So the tree is lowered once, at compile time, into an array of node records. Equal sub-expressions become one
// record (hash-consing by structure), so `rmsnorm(x)` used by two matvecs is computed once.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "../core/fixed_string.hpp"
#include "../core/types.hpp"
#include "../expr/node.hpp"

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
    constexpr bool operator==(const name_buf& o) const { return view() == o.view(); }
};

enum class node_kind : std::uint8_t { leaf, constant, unary, binary, reduce, matvec };

// One node of the DAG. Children are indices of earlier records, so index order is a topological order.
struct node {
    node_kind kind = node_kind::leaf;
    op operation = op::add;          // unary, binary, reduce
    role leaf_role = role::input;    // leaf
    dtype_code dtype = dtype_code::f32;
    std::uint32_t rank = 0;          // 0 scalar, 1 vector, 2 matrix
    std::uint32_t rows = 1;          // elements of a vector, rows of a matrix, 1 for a scalar
    std::uint32_t cols = 0;          // columns of a matrix
    int a = -1, b = -1;              // children
    float value = 0.0f;              // constant
    name_buf name;                   // leaf

    constexpr std::uint32_t elements() const { return rank == 2 ? rows * cols : rows; }
    constexpr bool is_vector() const { return rank == 1; }
    constexpr bool same(const node& o) const {
        return kind == o.kind && operation == o.operation && leaf_role == o.leaf_role && dtype == o.dtype &&
               rank == o.rank && rows == o.rows && cols == o.cols && a == o.a && b == o.b &&
               std::bit_cast<std::uint32_t>(value) == std::bit_cast<std::uint32_t>(o.value) && name == o.name;
    }
};

// Called (never defined as constexpr) when lowering finds a conflict; the compiler's error names this function,
// which is the message. Constant evaluation cannot static_assert on values it computes, so this is the idiom.
void vkfuse_error_one_name_is_used_for_two_different_placeholders();
void vkfuse_error_expression_too_large_for_its_graph();

template <std::size_t Cap>
struct graph {
    node nodes[Cap] = {};
    int size = 0;

    // The index of a node equal to `n`, adding it if new.
    constexpr int intern(const node& n) {
        for (int i = 0; i < size; ++i) {
            if (nodes[i].same(n)) return i;
            if (n.kind == node_kind::leaf && nodes[i].kind == node_kind::leaf && nodes[i].name == n.name)
                vkfuse_error_one_name_is_used_for_two_different_placeholders();
        }
        if (size == static_cast<int>(Cap)) vkfuse_error_expression_too_large_for_its_graph();
        nodes[size] = n;
        return size++;
    }
    constexpr const node& operator[](int i) const { return nodes[i]; }
};

// ---------------------------------------------------------------------------------------------------------------
// Lowering: types -> records
// ---------------------------------------------------------------------------------------------------------------

template <class S>
constexpr node shaped(node n) {
    n.rank = static_cast<std::uint32_t>(S::rank);
    n.rows = static_cast<std::uint32_t>(S::rows);
    n.cols = static_cast<std::uint32_t>(S::cols);
    return n;
}

template <class T>
struct lower_node;  // one specialisation per node kind

template <class E, std::size_t Cap>
constexpr int lower(graph<Cap>& g) {
    return lower_node<E>::apply(g);
}

// Number of nodes in the tree of E: the capacity its graph needs before sharing is found.
template <class E>
inline constexpr std::size_t tree_size = lower_node<E>::tree_size;

template <role R, fixed_string Name, class D, class S>
struct lower_node<expr::placeholder<R, Name, D, S>> {
    static_assert(D::code == dtype_code::f32,
                  "vkfuse: f16 storage is designed in, but its code generation is not implemented yet; use f32");
    static constexpr std::size_t tree_size = 1;
    template <std::size_t Cap>
    static constexpr int apply(graph<Cap>& g) {
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
    static constexpr std::size_t tree_size = 1;
    template <std::size_t Cap>
    static constexpr int apply(graph<Cap>& g) {
        node n;
        n.kind = node_kind::constant;
        n.value = V;
        return g.intern(n);
    }
};

template <op O, class A, class S>
struct lower_node<expr::unary<O, A, S>> {
    static constexpr std::size_t tree_size = 1 + lower_node<A>::tree_size;
    template <std::size_t Cap>
    static constexpr int apply(graph<Cap>& g) {
        node n = shaped<S>({});
        n.kind = node_kind::unary;
        n.operation = O;
        n.a = lower<A>(g);
        return g.intern(n);
    }
};

template <op O, class A, class B, class S>
struct lower_node<expr::binary<O, A, B, S>> {
    static constexpr std::size_t tree_size = 1 + lower_node<A>::tree_size + lower_node<B>::tree_size;
    template <std::size_t Cap>
    static constexpr int apply(graph<Cap>& g) {
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
    static constexpr std::size_t tree_size = 1 + lower_node<A>::tree_size;
    template <std::size_t Cap>
    static constexpr int apply(graph<Cap>& g) {
        node n;
        n.kind = node_kind::reduce;
        n.operation = O;
        n.a = lower<A>(g);
        return g.intern(n);
    }
};

template <class W, class X>
struct lower_node<expr::product<W, X>> {
    static constexpr std::size_t tree_size = 1 + lower_node<W>::tree_size + lower_node<X>::tree_size;
    template <std::size_t Cap>
    static constexpr int apply(graph<Cap>& g) {
        node n = shaped<typename expr::product<W, X>::shape>({});
        n.kind = node_kind::matvec;
        n.a = lower<W>(g);
        n.b = lower<X>(g);
        return g.intern(n);
    }
};

} // namespace vkfuse::plan
