// vkfuse/expr/operators.hpp — forming expressions: operators and functions, with the shape and dtype checks.
//
// Every check fires where the user forms the node, with a message that names the op. After a failed check the
// function returns expr::invalid so the compiler reports one error, not a cascade.
//
//     input<"x", 896> x;  weight<"w", 4864, 896> w;  weight<"g", 896> g;
//     auto h = silu(w * (x * rsqrt(mean(x * x) + c<1e-6f>) * g));   // shape<4864>
#pragma once

#include <type_traits>

#include "names.hpp"
#include "node.hpp"

namespace vkfuse {

namespace expr::detail {

template <class...>
inline constexpr bool dependent_false = false;

// Elementwise operands must have equal shapes, or one of them must be a scalar (it broadcasts).
template <class A, class B>
inline constexpr bool broadcastable = std::is_same_v<typename A::shape, typename B::shape> ||
                                      A::shape::rank == 0 || B::shape::rank == 0;

template <class A, class B>
using broadcast_shape = std::conditional_t<A::shape::rank == 0, typename B::shape, typename A::shape>;

template <class T>
inline constexpr bool is_matrix = T::shape::rank == 2;

template <class A>
inline constexpr bool is_param = is_placeholder_v<A> && A::leaf_role == role::param;

// Static checks with messages naming the op. Each `check_*` is true when the operands are fine.
template <op O, class A>
constexpr bool check_unary() {
    if constexpr (std::is_same_v<A, invalid>) {
        return false;
    } else if constexpr (std::is_same_v<typename A::dtype, u32>) {
        static_assert(dependent_false<A>,
                      "vkfuse elementwise op: a u32 index (uint_param<\"...\">) is only an operand of rope, append, "
                      "attention and embedding");
        return false;
    } else if constexpr (is_matrix<A>) {
        static_assert(dependent_false<A>,
                      "vkfuse elementwise op: a matrix can only be used as the left operand of a matvec (W * x)");
        return false;
    } else {
        return true;
    }
}

template <op O, class A, class B>
constexpr bool check_binary() {
    if constexpr (std::is_same_v<A, invalid> || std::is_same_v<B, invalid>) {
        return false;  // already reported
    } else if constexpr (is_matrix<A> || is_matrix<B>) {
        static_assert(dependent_false<A, B>,
                      "vkfuse elementwise op: a matrix can only be used as the left operand of a matvec (W * x)");
        return false;
    } else if constexpr (!std::is_same_v<typename A::dtype, typename B::dtype>) {
        static_assert(dependent_false<A, B>,
                      "vkfuse elementwise op (add/sub/mul/div/max/min): operands have different dtypes; "
                      "arithmetic is on f32 values (whatever their storage), and a u32 index is not one");
        return false;
    } else if constexpr (!broadcastable<A, B>) {
        static_assert(dependent_false<A, B>,
                      "vkfuse elementwise op (add/sub/mul/div/max/min): operand shapes differ and neither is a "
                      "scalar; see the shape<...> arguments in the instantiation below");
        return false;
    } else {
        return true;
    }
}

template <class A>
constexpr bool check_reduce() {
    if constexpr (std::is_same_v<A, invalid>) {
        return false;
    } else if constexpr (!std::is_same_v<typename A::dtype, f32>) {
        static_assert(dependent_false<A>, "vkfuse reduction (sum/max/mean/argmax): the operand must be f32");
        return false;
    } else if constexpr (A::shape::rank != 1) {
        static_assert(dependent_false<A>, "vkfuse reduction (sum/max/mean): the operand must be a vector");
        return false;
    } else {
        return true;
    }
}

template <class W, class X>
constexpr bool check_matvec() {
    if constexpr (std::is_same_v<W, invalid> || std::is_same_v<X, invalid>) {
        return false;
    } else if constexpr (!(is_placeholder_v<W> && W::shape::rank == 2 && W::leaf_role != role::param)) {
        static_assert(dependent_false<W>,
                      "vkfuse matvec (W * x): the left operand must be a matrix placeholder, e.g. "
                      "weight<\"w\", M, N>");
        return false;
    } else if constexpr (X::shape::rank != 1) {
        static_assert(dependent_false<X>, "vkfuse matvec (W * x): the right operand must be a vector");
        return false;
    } else if constexpr (W::shape::dims[1] != X::shape::dims[0]) {
        static_assert(dependent_false<W, X>,
                      "vkfuse matvec (W * x): shape mismatch, W is [M, N] so x must have N elements; see the "
                      "shape<...> arguments in the instantiation below");
        return false;
    } else if constexpr (!std::is_same_v<typename W::dtype, f32> || !std::is_same_v<typename X::dtype, f32>) {
        static_assert(dependent_false<W, X>,
                      "vkfuse matvec (W * x): the matrix and the vector have different dtypes; both must hold "
                      "floats (the matrix stored as f32, f16, bf16, q8_0 or q4_0)");
        return false;
    } else {
        return true;
    }
}

template <op O, expression A>
constexpr auto make_unary(A) {
    static_assert(op_traits<O>::info.form == op_form::unary, "vkfuse: make_unary needs a unary op");
    if constexpr (check_unary<O, A>())
        return unary<O, A, typename A::shape>{};
    else
        return invalid{};
}

template <op O, expression A, expression B>
constexpr auto make_binary(A, B) {
    static_assert(op_traits<O>::info.form == op_form::binary, "vkfuse: make_binary needs a binary op");
    if constexpr (check_binary<O, A, B>())
        return binary<O, A, B, broadcast_shape<A, B>>{};
    else
        return invalid{};
}

template <op O, expression A>
constexpr auto make_reduce(A) {
    static_assert(op_traits<O>::info.form == op_form::reduction, "vkfuse: make_reduce needs a reduction");
    if constexpr (check_reduce<A>())
        return reduce<O, A>{};
    else
        return invalid{};
}

template <class P>
inline constexpr bool is_index = is_placeholder_v<P> && P::leaf_role == role::param &&
                                 std::is_same_v<typename P::dtype, u32>;

template <class S>
inline constexpr bool is_state_matrix = is_placeholder_v<S> && S::leaf_role == role::state && S::shape::rank == 2;

// A KV cache operand: a state matrix, or an append to one.
template <class T>
inline constexpr bool is_cache = is_state_matrix<T>;
template <class S, class X, class P>
inline constexpr bool is_cache<cache_write<S, X, P>> = true;

} // namespace expr::detail

// The operators and functions live in vkfuse::expr, the namespace of the nodes, so argument-dependent lookup finds
// them for every node type; using-declarations below also make them vkfuse::silu(x) and so on.
namespace expr {

// ---------------------------------------------------------------------------------------------------------------
// Elementwise arithmetic. A matrix on the left of `*` with a vector on the right is a matvec.
// ---------------------------------------------------------------------------------------------------------------

// a + b, elementwise; a scalar operand broadcasts.
template <expr::expression A, expr::expression B>
constexpr auto operator+(A a, B b) { return expr::detail::make_binary<op::add>(a, b); }
// a - b
template <expr::expression A, expr::expression B>
constexpr auto operator-(A a, B b) { return expr::detail::make_binary<op::sub>(a, b); }
// a / b
template <expr::expression A, expr::expression B>
constexpr auto operator/(A a, B b) { return expr::detail::make_binary<op::div>(a, b); }
// -a
template <expr::expression A>
constexpr auto operator-(A a) { return expr::detail::make_unary<op::neg>(a); }

// a * b elementwise, or W * x when the left operand is a matrix: the matrix-vector product.
template <expr::expression A, expr::expression B>
constexpr auto operator*(A a, B b) {
    if constexpr (A::shape::rank == 2) {
        if constexpr (expr::detail::check_matvec<A, B>())
            return product<A, B>{};
        else
            return expr::invalid{};
    } else {
        return expr::detail::make_binary<op::mul>(a, b);
    }
}

// W . x, spelled out.
template <expr::expression W, expr::expression X>
constexpr auto matvec(W w, X x) {
    static_assert(W::shape::rank == 2, "vkfuse matvec(W, x): W must be a matrix placeholder");
    return w * x;
}

// elementwise max / min
template <expr::expression A, expr::expression B>
constexpr auto max(A a, B b) { return expr::detail::make_binary<op::max>(a, b); }
template <expr::expression A, expr::expression B>
constexpr auto min(A a, B b) { return expr::detail::make_binary<op::min>(a, b); }

// ---------------------------------------------------------------------------------------------------------------
// Unary math
// ---------------------------------------------------------------------------------------------------------------

template <expr::expression A> constexpr auto exp(A a) { return expr::detail::make_unary<op::exp>(a); }
template <expr::expression A> constexpr auto log(A a) { return expr::detail::make_unary<op::log>(a); }
template <expr::expression A> constexpr auto sqrt(A a) { return expr::detail::make_unary<op::sqrt>(a); }
// 1 / sqrt(a)
template <expr::expression A> constexpr auto rsqrt(A a) { return expr::detail::make_unary<op::rsqrt>(a); }
template <expr::expression A> constexpr auto tanh(A a) { return expr::detail::make_unary<op::tanh>(a); }
// 1 / (1 + exp(-a))
template <expr::expression A> constexpr auto sigmoid(A a) { return expr::detail::make_unary<op::sigmoid>(a); }
// a * sigmoid(a), also called swish
template <expr::expression A> constexpr auto silu(A a) { return expr::detail::make_unary<op::silu>(a); }
// GELU, tanh form: 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))  (GPT-2's; Hugging Face "gelu_pytorch_tanh")
template <expr::expression A> constexpr auto gelu(A a) { return expr::detail::make_unary<op::gelu>(a); }

// GELU, erf form: 0.5 a (1 + erf(a / sqrt(2)))  (PyTorch's nn.GELU(); Hugging Face "gelu")
template <expr::expression A> constexpr auto gelu_erf(A a) { return expr::detail::make_unary<op::gelu_erf>(a); }

// ---------------------------------------------------------------------------------------------------------------
// Reductions of a vector to a scalar
// ---------------------------------------------------------------------------------------------------------------

// the index of the largest element (the first one, on ties), a u32
template <expr::expression A>
constexpr auto argmax(A a) { return expr::detail::make_reduce<op::argmax>(a); }

template <expr::expression A> constexpr auto sum(A a) { return expr::detail::make_reduce<op::sum>(a); }
template <expr::expression A> constexpr auto mean(A a) { return expr::detail::make_reduce<op::mean>(a); }
// the largest element (named reduce_max because max(a, b) is the elementwise maximum)
template <expr::expression A> constexpr auto reduce_max(A a) { return expr::detail::make_reduce<op::reduce_max>(a); }

// ---------------------------------------------------------------------------------------------------------------
// Transformer building blocks that need nodes of their own
// ---------------------------------------------------------------------------------------------------------------

// Names a result: `named<"q">(wq * n + bq)`. See expr::named_value.
template <fixed_string Name, expression A>
constexpr auto named(A) {
    static_assert(detail::valid_identifier(Name),
                  "vkfuse named<\"...\">: a name must be 1-31 letters, digits or '_', start with a letter or '_', "
                  "and contain no \"__\"");
    if constexpr (std::is_same_v<A, invalid>)
        return invalid{};
    else
        return named_value<Name, A>{};
}

// Rotary position embedding (rotate-half layout) of x, a vector of whole heads of HeadDim, at position `pos`.
// Positions must stay below MaxPos, the length of the cos/sin table.
// Scaling: Llama 3's frequency scaling (core/rope.hpp); the default is none.
template <std::size_t HeadDim, float Theta, std::size_t MaxPos = 4096, rope_scaling Scaling = rope_scaling{},
          expression X, expression Pos>
constexpr auto rope(X, Pos) {
    if constexpr (std::is_same_v<X, invalid>) {
        return invalid{};
    } else if constexpr (!(X::shape::rank == 1 && std::is_same_v<typename X::dtype, f32>)) {
        static_assert(detail::dependent_false<X>, "vkfuse rope: x must be an f32 vector");
        return invalid{};
    } else if constexpr (HeadDim == 0 || HeadDim % 2 != 0 || X::shape::dims[0] % HeadDim != 0) {
        static_assert(detail::dependent_false<X>,
                      "vkfuse rope: HeadDim must be even and divide the length of x (x holds whole heads)");
        return invalid{};
    } else if constexpr (!detail::is_index<Pos>) {
        static_assert(detail::dependent_false<Pos>, "vkfuse rope: the position must be an uint_param<\"...\">");
        return invalid{};
    } else {
        static_assert(Theta > 1.0f, "vkfuse rope: Theta (rope_theta) must be greater than 1");
        static_assert(!Scaling.scaled() || (Scaling.factor >= 1.0f && Scaling.high_freq_factor > Scaling.low_freq_factor),
                      "vkfuse rope: a scaling needs factor >= 1 and high_freq_factor > low_freq_factor");
        return rotary<HeadDim, Theta, MaxPos, X, Pos, Scaling>{};
    }
}

// Writes x into row `pos` of the cache and stands for the cache after the write.
template <expression S, expression X, expression Pos>
constexpr auto append(S, X, Pos) {
    if constexpr (std::is_same_v<X, invalid>) {
        return invalid{};
    } else if constexpr (!detail::is_state_matrix<S>) {
        static_assert(detail::dependent_false<S>,
                      "vkfuse append(cache, x, pos): the cache must be a state<\"...\", T, W> placeholder");
        return invalid{};
    } else if constexpr (!(S::storage::code == dtype_code::f32 || S::storage::code == dtype_code::f16)) {
        static_assert(detail::dependent_false<S>,
                      "vkfuse append(cache, x, pos): a cache is stored as f32 or f16 (state_of<\"...\", f16, T, W>)");
        return invalid{};
    } else if constexpr (!(X::shape::rank == 1 && X::shape::dims[0] == S::shape::dims[1])) {
        static_assert(detail::dependent_false<S, X>,
                      "vkfuse append(cache, x, pos): x must be a vector of the cache's row width W");
        return invalid{};
    } else if constexpr (!detail::is_index<Pos>) {
        static_assert(detail::dependent_false<Pos>, "vkfuse append: the position must be an uint_param<\"...\">");
        return invalid{};
    } else {
        return cache_write<S, X, Pos>{};
    }
}

// Single-token attention; see expr::decode_attention. H query heads, KV key/value heads (H / KV query heads share one).
template <std::size_t H, std::size_t KV, expression Q, expression K, expression V, expression Pos>
constexpr auto attention(Q, K, V, Pos) {
    if constexpr (std::is_same_v<Q, invalid>) {
        return invalid{};
    } else if constexpr (!(Q::shape::rank == 1 && H > 0 && Q::shape::dims[0] % H == 0)) {
        static_assert(detail::dependent_false<Q>, "vkfuse attention: q must be a vector of H heads");
        return invalid{};
    } else if constexpr (KV == 0 || H % KV != 0) {
        static_assert(detail::dependent_false<Q>, "vkfuse attention: H must be a multiple of KV (grouped query)");
        return invalid{};
    } else if constexpr (!(detail::is_cache<K> && detail::is_cache<V>)) {
        static_assert(detail::dependent_false<K, V>,
                      "vkfuse attention: k and v must be caches: state<\"...\", T, W> placeholders or appends");
        return invalid{};
    } else if constexpr (!(K::shape::dims[1] == KV * (Q::shape::dims[0] / H) &&
                           std::is_same_v<typename K::shape, typename V::shape>)) {
        static_assert(detail::dependent_false<K, V>,
                      "vkfuse attention: the caches' row width must be KV * head_dim, head_dim = len(q) / H");
        return invalid{};
    } else if constexpr (!detail::is_index<Pos>) {
        static_assert(detail::dependent_false<Pos>, "vkfuse attention: the position must be an uint_param<\"...\">");
        return invalid{};
    } else {
        return decode_attention<H, KV, Q, K, V, Pos>{};
    }
}

// Row `token` of the table: an embedding lookup.
template <expression E, expression Token>
constexpr auto embedding(E, Token) {
    if constexpr (!(is_placeholder_v<E> && E::shape::rank == 2 &&
                    (E::leaf_role == role::weight || E::leaf_role == role::input))) {
        static_assert(detail::dependent_false<E>,
                      "vkfuse embedding(table, token): the table must be a weight or input matrix");
        return invalid{};
    } else if constexpr (!detail::is_index<Token>) {
        static_assert(detail::dependent_false<Token>, "vkfuse embedding: the token must be an uint_param<\"...\">");
        return invalid{};
    } else {
        return row_lookup<E, Token>{};
    }
}

} // namespace expr

using expr::append;
using expr::argmax;
using expr::attention;
using expr::embedding;
using expr::gelu_erf;
using expr::named;
using expr::rope;
using expr::operator+;
using expr::operator-;
using expr::operator*;
using expr::operator/;
using expr::matvec;
using expr::max;
using expr::min;
using expr::exp;
using expr::log;
using expr::sqrt;
using expr::rsqrt;
using expr::tanh;
using expr::sigmoid;
using expr::silu;
using expr::gelu;
using expr::sum;
using expr::mean;
using expr::reduce_max;

// ---------------------------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------------------------

// A named result buffer. `y = e` forms the program that computes e into y:
//     output<"y", 896> y;  auto program = (y = x + w * x);
template <fixed_string Name, class DType, std::size_t... Dims>
struct output_of {
    static_assert(expr::detail::valid_identifier(Name),
                  "vkfuse output: a name must be 1-31 letters, digits or '_', start with a letter or '_', "
                  "and contain no \"__\"");
    static_assert(sizeof...(Dims) <= 1, "vkfuse output: an output is a scalar or a vector");
    static_assert(DType::code == dtype_code::f32 || DType::code == dtype_code::u32,
                  "vkfuse output: outputs are stored as f32 (or u32 for an index); 16-bit and block storage is for "
                  "weights, inputs and states");
    static constexpr vkfuse::role leaf_role = role::output;
    static constexpr auto name = Name;
    using dtype = DType;
    using shape = vkfuse::shape<Dims...>;

    template <expr::expression E>
    constexpr auto operator=(E) const {
        if constexpr (std::is_same_v<E, expr::invalid>) {
            return expr::assignment<output_of, E>{};
        } else {
            static_assert(std::is_same_v<typename E::shape, shape>,
                          "vkfuse output (y = e): the expression's shape differs from the output's declared shape");
            static_assert(std::is_same_v<typename E::dtype, dtype>,
                          "vkfuse output (y = e): the output's dtype differs from the expression's (f32 outputs "
                          "hold f32 expressions, u32 outputs an argmax)");
            expr::check_placeholder_names<E>();
            return expr::assignment<output_of, E>{};
        }
    }
};

// An f32 output:  output<"y", 896>
template <fixed_string Name, std::size_t... Dims>
using output = output_of<Name, f32, Dims...>;

// Several results as one program, e.g. a decoder layer writing its KV caches and its hidden state:
//     auto decoder = layer_graph(q_out = ..., y = ...);
template <class... Assignments>
constexpr auto layer_graph(Assignments...) {
    static_assert(((expr::is_assignment_v<Assignments> || expr::is_effect_v<Assignments>) && ...),
                  "vkfuse layer_graph(...): every argument is `output = e` or an append(cache, x, pos)");
    expr::check_placeholder_names<expr::computed_t<Assignments>...>();
    return expr::program<Assignments...>{};
}

// Runs `program` for Index = 0, 1, ..., Count-1 in order — a whole autoregressive sequence:
//     auto all_tokens = repeat<"pos", 64>(layer_graph(append(out, y, pos)));
template <fixed_string Index, std::size_t Count, class Program>
constexpr auto repeat(Program) {
    static_assert(expr::is_program_v<Program>, "vkfuse repeat<\"...\", N>(p): p must be a program");
    static_assert(Count > 0, "vkfuse repeat: the count must be at least 1");
    static_assert(!expr::is_stack_v<Program> && !expr::is_steps_v<Program>,
                  "vkfuse repeat: a stack<L>(...) or steps(...) is repeated by running it again");
    return expr::repeated<Index, Count, Program>{};
}

// `Layers` layers of `body`, which computes `out` from `in`; each layer's `in` is the previous layer's `out`:
//     constexpr auto layers = stack<24>(x, y, layer_graph(y = x + ...));
// Every weight and state in `body` is per layer: upload("wq", layer, values), or all layers at once.
template <std::size_t Layers, class In, class Out, class Body>
constexpr auto stack(In, Out, Body) {
    static_assert(Layers >= 1, "vkfuse stack<L>(in, out, body): L must be at least 1");
    static_assert(expr::is_placeholder_v<In> && In::leaf_role == role::input,
                  "vkfuse stack<L>(in, out, body): `in` must be an input<> placeholder (what each layer reads)");
    static_assert(Out::leaf_role == role::output,
                  "vkfuse stack<L>(in, out, body): `out` must be an output<> the body assigns");
    static_assert(std::is_same_v<typename In::shape, typename Out::shape> &&
                      std::is_same_v<typename In::storage, f32> && std::is_same_v<typename Out::dtype, f32>,
                  "vkfuse stack<L>(in, out, body): `in` and `out` must be f32 vectors of one shape (layer i's out is "
                  "layer i + 1's in)");
    static_assert(expr::is_program_v<Body> && !expr::is_stack_v<Body>,
                  "vkfuse stack<L>(in, out, body): `body` must be `out = e` or layer_graph(...)");
    return expr::stack<Layers, In, Out, Body>{};
}

// Programs run in order within one run; a later one reads an earlier one's outputs by name:
//     constexpr auto model = steps(x_out = embedding(embed, token), layers, next = argmax(lm_head * norm(y)));
template <class... Steps>
constexpr auto steps(Steps...) {
    static_assert(sizeof...(Steps) >= 1, "vkfuse steps(...): give at least one program");
    static_assert((expr::is_program_v<Steps> && ...),
                  "vkfuse steps(...): every argument is a program: `y = e`, layer_graph(...) or stack<L>(...)");
    static_assert(((expr::is_stack_v<Steps> ? 1 : 0) + ...) <= 1, "vkfuse steps(...): at most one stack<L>(...)");
    expr::check_program_names<expr::steps<Steps...>>();
    return expr::steps<Steps...>{};
}

// ---------------------------------------------------------------------------------------------------------------
// Common compositions: functions of expressions, no nodes of their own
// ---------------------------------------------------------------------------------------------------------------

// RMSNorm (Llama, Qwen): x * rsqrt(mean(x^2) + eps) * w
template <float Eps, expr::expression X, expr::expression W>
constexpr auto rmsnorm(X x, W w) {
    return x * rsqrt(mean(x * x) + c<Eps>) * w;
}

// LayerNorm: (x - mean) * rsqrt(var + eps) * w + b, with the biased variance
template <float Eps, expr::expression X, expr::expression W, expr::expression B>
constexpr auto layernorm(X x, W w, B b) {
    const auto centred = x - mean(x);
    return centred * rsqrt(mean(centred * centred) + c<Eps>) * w + b;
}

// softmax, numerically stable: exp(x - max x) / sum(exp(x - max x))
template <expr::expression X>
constexpr auto softmax(X x) {
    const auto e = exp(x - reduce_max(x));
    return e / sum(e);
}

// SwiGLU: silu(gate) * up
template <expr::expression G, expr::expression U>
constexpr auto swiglu(G gate, U up) {
    return silu(gate) * up;
}

// A linear layer: W x + b
template <expr::expression W, expr::expression X, expr::expression B>
constexpr auto linear(W w, X x, B b) {
    return w * x + b;
}

} // namespace vkfuse
