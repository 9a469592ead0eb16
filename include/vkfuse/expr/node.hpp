// vkfuse/expr/node.hpp — the expression nodes.
//
// Nodes describe; they compute nothing. glsl/ and reference/ are two evaluators of the same tree. Children are
// static members: a node object holds no data, so copying one is free however deep the expression (a member per
// child made constant evaluation copy whole trees — exponential for a stack of layers).
//
// Every node is an empty type: leaves are identified by name (the data is bound at run time) or carry their value in
// the type (constant<0.5f>), so an expression's *type* is the whole computation. That is what lets the GLSL be a
// compile-time constant of the type, and lets equal sub-expressions be recognised as equal by type alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../core/fixed_string.hpp"
#include "../core/rope.hpp"
#include "../core/types.hpp"
#include "../ops/traits.hpp"

namespace vkfuse {

// What a leaf stands for. Inputs change per run, weights are set once, params are runtime scalars (push constants),
// outputs are written, state persists across runs and is updated in place (a KV cache), tables are constant data
// the library computes itself (RoPE's cos/sin).
enum class role : std::uint8_t { input, weight, param, output, state, table };

namespace expr {

// Marks a type as a vkfuse expression node.
struct node_base {};

template <class T>
concept expression = std::is_base_of_v<node_base, std::remove_cvref_t<T>>;

// ---------------------------------------------------------------------------------------------------------------
// Leaves
// ---------------------------------------------------------------------------------------------------------------

namespace detail {
template <std::size_t N>
constexpr bool valid_identifier(const fixed_string<N>& s) {
    if (N == 0 || N > 31) return false;
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (!alpha(s[0])) return false;
    for (std::size_t i = 0; i < N; ++i) {
        if (!alpha(s[i]) && !digit(s[i])) return false;
        if (i > 0 && s[i] == '_' && s[i - 1] == '_') return false;  // GLSL reserves names with "__"
    }
    return true;
}
} // namespace detail

// A named buffer (or, for role::param, a named runtime scalar) of a static shape and storage type. Every node's
// `dtype` is the type arithmetic sees — f32, or u32 for indices — whatever the storage: a bf16 weight is read as
// f32 values.
template <role R, fixed_string Name, class DType, class Shape>
struct placeholder : node_base {
    static_assert(detail::valid_identifier(Name),
                  "vkfuse placeholder: a name must be 1-31 letters, digits or '_', start with a letter or '_', "
                  "and contain no \"__\"");
    // Shaders index buffers with 32-bit integers (GLSL's uint), and so does every kernel vkfuse generates.
    static_assert(Shape::size <= 0xffffffffull,
                  "vkfuse placeholder: more than 2^32 - 1 elements; generated shaders index a buffer with 32-bit "
                  "integers, so split the tensor (e.g. a vocabulary into several weights)");
    // How values are stored, and who may store them so: block formats are for weights (rows of whole blocks),
    // 16-bit floats for weights, inputs and states, u32 for indices.
    static_assert(!is_block_format(DType::code) || (R == role::weight && Shape::rank >= 1 &&
                                                    Shape::dims[Shape::rank == 0 ? 0 : Shape::rank - 1] % 32 == 0),
                  "vkfuse placeholder: q8_0 and q4_0 store weights in blocks of 32 along a row; use them for a "
                  "weight whose last dimension is a multiple of 32, or store it as f16 or bf16");
    static_assert(!is_16bit_float(DType::code) || R == role::weight || R == role::input || R == role::state,
                  "vkfuse placeholder: f16 and bf16 store weights, inputs and states; params are f32 or u32");
    static_assert(DType::code != dtype_code::u32 || R == role::param || R == role::input || R == role::state,
                  "vkfuse placeholder: u32 is for indices (params, inputs, states), not weights");
    static constexpr vkfuse::role leaf_role = R;
    static constexpr auto name = Name;
    using storage = DType;  // how the buffer holds it
    using dtype = std::conditional_t<std::is_same_v<DType, u32>, u32, f32>;  // what arithmetic sees: f32 or u32
    using shape = Shape;
};

// A compile-time scalar: its value is part of the type and is written into the GLSL as an exact literal.
template <float V>
struct constant : node_base {
    static constexpr float value = V;
    using dtype = f32;
    using shape = scalar_shape;
};

// ---------------------------------------------------------------------------------------------------------------
// Inner nodes: they hold their children and nothing else.
// ---------------------------------------------------------------------------------------------------------------

template <op O, class A, class Shape>
struct unary : node_base {
    static constexpr enum op op = O;
    using dtype = typename A::dtype;
    using shape = Shape;
    static constexpr A a{};
};

template <op O, class A, class B, class Shape>
struct binary : node_base {
    static constexpr enum op op = O;
    using dtype = typename A::dtype;
    using shape = Shape;
    static constexpr A a{};
    static constexpr B b{};
};

// sum, max or mean of a vector: a scalar.
template <op O, class A>
struct reduce : node_base {
    static constexpr enum op op = O;
    using dtype = std::conditional_t<op_traits<O>::info.indexed, u32, typename A::dtype>;  // argmax is an index
    using shape = scalar_shape;
    static constexpr A a{};
};

// The matrix-vector product W[M, N] . x[N] -> [M]; W is a matrix placeholder (weights are stored [out, in] row-major).
template <class W, class X>
struct product : node_base {
    using dtype = typename X::dtype;
    using shape = vkfuse::shape<W::shape::dims[0]>;
    static constexpr W w{};
    static constexpr X x{};
};

// A result given a name: computed where it is needed like any other value, and also written to a buffer of that
// name, so it can be read back (prog.download("q")) and read by later kernels instead of being recomputed.
template <fixed_string Name, class A>
struct named_value : node_base {
    static constexpr auto name = Name;
    using dtype = typename A::dtype;
    using shape = typename A::shape;
    static constexpr A a{};
};

// Rotary position embedding, Hugging Face's rotate-half layout: within each head of HeadDim values, element j and
// element j + HeadDim/2 are a pair rotated by pos * Theta^(-2j/HeadDim) (or Llama 3's scaled frequency,
// core/rope.hpp). cos/sin come from a table of MaxPos positions that the library computes in double precision (GPU
// sin/cos are not accurate enough at large angles).
template <std::size_t HeadDim, float Theta, std::size_t MaxPos, class X, class Pos, rope_scaling Scaling = rope_scaling{}>
struct rotary : node_base {
    static constexpr std::size_t head_dim = HeadDim;
    static constexpr float theta = Theta;
    static constexpr rope_scaling scaling = Scaling;
    static constexpr std::size_t max_positions = MaxPos;
    using dtype = typename X::dtype;
    using shape = typename X::shape;
    static constexpr X a{};
    static constexpr Pos pos{};
};

// The state matrix S[T, W] after writing row `pos` with x[W]: a KV cache append. The write happens in place.
template <class S, class X, class Pos>
struct cache_write : node_base {
    using dtype = typename S::dtype;
    using shape = typename S::shape;
    static constexpr S state{};
    static constexpr X a{};
    static constexpr Pos pos{};
};

// Single-token attention of H query heads over a KV cache of positions 0..pos: head h reads KV head h / (H / KV),
// scores are scaled by 1/sqrt(head_dim), softmax over positions <= pos, then the weighted sum of values.
// Q is [H * head_dim]; K and V are caches [T, KV * head_dim] (state placeholders or appends to them).
template <std::size_t H, std::size_t KV, class Q, class K, class V, class Pos>
struct decode_attention : node_base {
    static constexpr std::size_t heads = H;
    static constexpr std::size_t kv_heads = KV;
    static constexpr std::size_t head_dim = Q::shape::dims[0] / H;
    using dtype = typename Q::dtype;
    using shape = typename Q::shape;
    static constexpr Q q{};
    static constexpr K k{};
    static constexpr V v{};
    static constexpr Pos pos{};
};

// Row `token` of a table E[V, D]: an embedding lookup.
template <class E, class Token>
struct row_lookup : node_base {
    using dtype = typename E::dtype;
    using shape = vkfuse::shape<E::shape::dims[1]>;
    static constexpr E table{};
    static constexpr Token token{};
};

// `y = e`: the expression stored into an output placeholder. A program is one assignment (several named results
// come with the planner).
template <class Out, class E>
struct assignment {
    using output = Out;
    using value = E;
    static constexpr E e{};
};

// Several results computed together: a layer.
template <class... Assignments>
struct program {
    static_assert(sizeof...(Assignments) >= 1, "vkfuse::layer_graph(...): give at least one `output = expression`");
};

// A program run once for each position 0 .. Count-1 of the index `Index`, in order: a whole sequence of tokens.
// single_dispatch runs it as a loop inside one dispatch; the other strategies record Count runs of their kernels.
template <fixed_string Index, std::size_t Count, class P>
struct repeated {
    static constexpr auto index_name = Index;
    static constexpr std::size_t count = Count;
    using program = P;
};

// A stack of `Layers` identical layers: `Body` (a program) computes output `Out` from input `In`, and layer i + 1's
// `In` is layer i's `Out`. Every weight and state the body reads is per layer — `Layers` copies, layer i's bound to
// layer i's kernels — while params and tables are shared. The body is planned and compiled once, whatever `Layers`.
template <std::size_t Layers, class In, class Out, class Body>
struct stack {
    static constexpr std::size_t layers = Layers;
    using input = In;
    using output = Out;
    using body = Body;
};

// Programs run one after another within one run: a later step reads an earlier step's outputs by name (an
// `input<"h", D>` of step 2 is the `output<"h", D>` step 1 wrote). A whole model: embedding, a stack of layers, the
// head.
template <class... Steps>
struct steps {};

// A placeholder that failed a check; returned after a static_assert so one mistake gives one error, not a cascade.
struct invalid : node_base {
    using dtype = f32;
    using shape = scalar_shape;
};

// ---------------------------------------------------------------------------------------------------------------
// Traits
// ---------------------------------------------------------------------------------------------------------------

template <class T>
inline constexpr bool is_placeholder_v = false;
template <role R, fixed_string N, class D, class S>
inline constexpr bool is_placeholder_v<placeholder<R, N, D, S>> = true;

template <class T>
inline constexpr bool is_assignment_v = false;
template <class O, class E>
inline constexpr bool is_assignment_v<assignment<O, E>> = true;

template <class T>
inline constexpr bool is_program_v = is_assignment_v<T>;
template <class... A>
inline constexpr bool is_program_v<program<A...>> = true;
template <fixed_string I, std::size_t N, class P>
inline constexpr bool is_program_v<repeated<I, N, P>> = true;
template <std::size_t L, class I, class O, class B>
inline constexpr bool is_program_v<stack<L, I, O, B>> = true;
template <class... S>
inline constexpr bool is_program_v<steps<S...>> = true;

template <class T>
inline constexpr bool is_stack_v = false;
template <std::size_t L, class I, class O, class B>
inline constexpr bool is_stack_v<stack<L, I, O, B>> = true;
template <class T>
inline constexpr bool is_steps_v = false;
template <class... S>
inline constexpr bool is_steps_v<steps<S...>> = true;

template <class T>
inline constexpr bool is_effect_v = false;  // a cache write given to layer_graph for its own sake
template <class S, class X, class P>
inline constexpr bool is_effect_v<cache_write<S, X, P>> = true;

// What an argument of layer_graph(...) computes: the expression of `y = e`, or the effect itself.
template <class T>
struct computed {
    using type = T;
};
template <class O, class E>
struct computed<assignment<O, E>> {
    using type = E;
};
template <class T>
using computed_t = typename computed<T>::type;

// The assignments of a program, as a program<...>.
template <class T>
struct as_program {
    using type = program<T>;
};
template <class... A>
struct as_program<program<A...>> {
    using type = program<A...>;
};
template <fixed_string I, std::size_t N, class P>
struct as_program<repeated<I, N, P>> : as_program<P> {};

} // namespace expr

// ---------------------------------------------------------------------------------------------------------------
// Public leaf names
// ---------------------------------------------------------------------------------------------------------------

// A per-run input buffer:            input<"x", 896>
template <fixed_string Name, std::size_t... Dims>
using input = expr::placeholder<role::input, Name, f32, shape<Dims...>>;
// A weight buffer:                   weight<"w_up", 4864, 896>   (a matrix is [out, in], row-major)
template <fixed_string Name, std::size_t... Dims>
using weight = expr::placeholder<role::weight, Name, f32, shape<Dims...>>;
// A runtime f32 scalar (in the parameter block): param<"alpha">
template <fixed_string Name>
using param = expr::placeholder<role::param, Name, f32, scalar_shape>;
// A runtime u32 (in the parameter block): a position or a token id.  uint_param<"pos">
template <fixed_string Name>
using uint_param = expr::placeholder<role::param, Name, u32, scalar_shape>;
// Persistent state updated in place, e.g. a KV cache of T positions of W values: state<"k_cache", T, W>
template <fixed_string Name, std::size_t... Dims>
using state = expr::placeholder<role::state, Name, f32, shape<Dims...>>;
// The same with an explicit storage type:  input_of<"x", f16, 896>
template <fixed_string Name, class DType, std::size_t... Dims>
using input_of = expr::placeholder<role::input, Name, DType, shape<Dims...>>;
template <fixed_string Name, class DType, std::size_t... Dims>
using weight_of = expr::placeholder<role::weight, Name, DType, shape<Dims...>>;
// A state with an explicit storage type, e.g. an f16 KV cache: state_of<"k_cache", f16, T, W>
template <fixed_string Name, class DType, std::size_t... Dims>
using state_of = expr::placeholder<role::state, Name, DType, shape<Dims...>>;

// A compile-time scalar:             x * c<0.5f>
template <float V>
inline constexpr expr::constant<V> c{};

} // namespace vkfuse
