// vkfuse/ops/traits.hpp — what each elementwise operation and reduction *is*: one trait per op.
//
// The planner (what kind of node an op forms, what it costs), the GLSL emitter (how it is written, which helper
// function it needs) and the Eigen reference (its value in double precision) all read the op from here and nowhere
// else. So a new elementwise op is an enumerator plus a specialisation below, and a function that forms it in
// expr/operators.hpp; a new reduction the same. An op without a specialisation does not compile: the table at the
// bottom expands every enumerator, and the reference calls the trait's function directly.
//
//     template <> struct op_traits<op::softplus> {
//         static constexpr op_info info{.name = "softplus", .form = op_form::unary, .flops = 6,
//                                       .glsl = "vkf_softplus",
//                                       .helper = {{"$ vkf_softplus($ x) { return log(1.0 + exp(x)); }\n"}}};
//         static double reference(double x) { return std::log1p(std::exp(x)); }
//     };
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string_view>
#include <utility>

namespace vkfuse {

// The operations an elementwise or reduction node can apply. Order is emission order of the helper functions.
enum class op : std::uint8_t {
    // unary, elementwise
    neg, exp, log, sqrt, rsqrt, tanh, sigmoid, silu, gelu, gelu_erf,
    // binary, elementwise (a scalar operand broadcasts)
    add, sub, mul, div, max, min,
    // reductions of a vector to a scalar
    sum, reduce_max, mean, argmax,
    count_  // not an op: the number of ops
};

inline constexpr std::size_t op_count = static_cast<std::size_t>(op::count_);

enum class op_form : std::uint8_t { unary, binary, reduction };

// A GLSL function an op needs, written with `$` for the element type: the emitter writes it once for float and once
// for vec4 (vectorised matvec loops evaluate their prologue four elements at a time). Where the vec4 overload cannot
// be the same text, `vec4_text` gives it whole.
struct glsl_function {
    std::string_view text;
    std::string_view vec4_text = {};
};

// Everything about an op that is plain data. Fields that do not apply to an op's form keep their defaults.
struct op_info {
    std::string_view name;                 // as the user spells it, for messages and plan descriptions
    op_form form = op_form::unary;
    std::uint32_t flops = 1;               // rough arithmetic per element, for the planner's cost estimates

    // ---- GLSL
    // unary: the function applied, `name(x)` ("-" for negation); binary: the infix operator (" + ") when
    // `infix`, else the function name (`max(a, b)`).
    std::string_view glsl = {};
    bool infix = false;
    // A function `f(a, b)` whose operands may be swapped: GLSL has max(vec4, float) but not max(float, vec4), so the
    // emitter puts a scalar operand second.
    bool commutative = false;
    // Functions the shader must define for this op, printed after `helper_comment`; and an op whose helpers those
    // functions call (gelu calls vkf_tanh).
    std::string_view helper_comment = {};
    glsl_function helper[2] = {};
    op needs = op::count_;

    // ---- binary ops that can combine a reduction
    std::string_view subgroup = {};   // the subgroup operation that combines across a subgroup ("subgroupAdd")
    std::string_view combined = {};   // what the combination is called: vkf_workgroup_<combined> ("sum")

    // ---- reductions: acc = identity, acc = combine(acc, x) for every x, then / count if `mean`; `indexed`: the
    // result is the first index at which acc took its final value, or the length where any element is NaN or
    // +infinity (argmax).
    op combine = op::count_;
    float identity = 0.0f;
    bool mean = false;
    bool indexed = false;
};

// The trait of op O: `info`, and `reference`, its value in double precision (unary and binary ops; a reduction's
// reference is the fold its info describes). Deliberately not defined for an unknown op.
template <op O>
struct op_traits;

// ---------------------------------------------------------------------------------------------------------------
// Unary
// ---------------------------------------------------------------------------------------------------------------

template <>
struct op_traits<op::neg> {
    static constexpr op_info info{.name = "neg", .glsl = "-"};
    static double reference(double x) { return -x; }
};

template <>
struct op_traits<op::exp> {
    static constexpr op_info info{.name = "exp", .flops = 4, .glsl = "exp"};
    static double reference(double x) { return std::exp(x); }
};

template <>
struct op_traits<op::log> {
    static constexpr op_info info{.name = "log", .flops = 4, .glsl = "log"};
    static double reference(double x) { return std::log(x); }
};

template <>
struct op_traits<op::sqrt> {
    static constexpr op_info info{.name = "sqrt", .flops = 2, .glsl = "sqrt"};
    static double reference(double x) { return std::sqrt(x); }
};

template <>
struct op_traits<op::rsqrt> {
    static constexpr op_info info{.name = "rsqrt", .flops = 2, .glsl = "inversesqrt"};
    static double reference(double x) { return 1.0 / std::sqrt(x); }
};

template <>
struct op_traits<op::tanh> {
    static constexpr op_info info{
        .name = "tanh",
        .flops = 8,
        .glsl = "vkf_tanh",
        .helper_comment = "// Clamped: tanh(15) is 1 in f32, and some drivers evaluate tanh through exp, which overflows.\n",
        .helper = {{"$ vkf_tanh($ x) { return tanh(clamp(x, -15.0, 15.0)); }\n"}},
    };
    static double reference(double x) { return std::tanh(x); }
};

template <>
struct op_traits<op::sigmoid> {
    static constexpr op_info info{
        .name = "sigmoid",
        .flops = 6,
        .glsl = "vkf_sigmoid",
        .helper = {{"$ vkf_sigmoid($ x) { return 1.0 / (1.0 + exp(-x)); }\n"}},
    };
    static double reference(double x) { return 1.0 / (1.0 + std::exp(-x)); }
};

template <>
struct op_traits<op::silu> {
    static constexpr op_info info{
        .name = "silu",
        .flops = 7,
        .glsl = "vkf_silu",
        .helper = {{"$ vkf_silu($ x) { return x / (1.0 + exp(-x)); }\n"}},
    };
    static double reference(double x) { return x / (1.0 + std::exp(-x)); }
};

// GELU, tanh form (GPT-2; Hugging Face "gelu_pytorch_tanh"). 0.7978846 is the f32 nearest sqrt(2/pi).
template <>
struct op_traits<op::gelu> {
    static constexpr op_info info{
        .name = "gelu",
        .flops = 14,
        .glsl = "vkf_gelu",
        .helper_comment = "// GELU, tanh form; 0.7978846 is sqrt(2/pi).\n",
        .helper = {{"$ vkf_gelu($ x) {\n"
                    "    return 0.5 * x * (1.0 + vkf_tanh(0.7978846 * (x + 0.044715 * x * x * x)));\n"
                    "}\n"}},
        .needs = op::tanh,
    };
    static double reference(double x) {
        const double k = std::sqrt(2.0 / std::numbers::pi);
        return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
    }
};

// GELU, erf form (PyTorch's nn.GELU(); Hugging Face "gelu"). GLSL has no erf. A single fit for all x loses relative
// accuracy near 0, where the value is small, so: the Taylor series below |x| = 0.5 (truncation < 1e-8 relative), and
// above it 1 - erfc(|x|) with the exponential-of-polynomial fit of erfc (fractional error < 1.2e-7). The literals
// are the f32 values of 2/sqrt(pi), the series' coefficients (-1/3, 1/10, -1/42, 1/216, -1/1320) and 1/sqrt(2).
template <>
struct op_traits<op::gelu_erf> {
    static constexpr op_info info{
        .name = "gelu_erf",
        .flops = 30,
        .glsl = "vkf_gelu_erf",
        .helper = {{"float vkf_erf(float x) {\n"
                    "    float a = abs(x);\n"
                    "    float x2 = x * x;\n"
                    "    // |x| < 0.5: x (2/sqrt(pi)) (1 - x^2/3 + x^4/10 - x^6/42 + x^8/216 - x^10/1320)\n"
                    "    float small = x * 1.1283792 * (1.0 + x2 * (-0.33333334 + x2 * (0.1 + x2 * (-0.023809524 + "
                    "x2 * (0.0046296297 + x2 * -0.00075757573)))));\n"
                    "    // |x| >= 0.5: 1 - erfc(|x|), erfc(a) = t exp(-a^2 + P(t)), t = 1 / (1 + a/2) (Numerical "
                    "Recipes' erfcc)\n"
                    "    float t = 1.0 / (1.0 + 0.5 * a);\n"
                    "    float poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * "
                    "(-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * "
                    "0.17087277))))))));\n"
                    "    float large = sign(x) * (1.0 - t * exp(-a * a + poly));\n"
                    "    return mix(large, small, a < 0.5);\n"
                    "}\n",
                    "vec4 vkf_erf(vec4 x) {\n"
                    "    vec4 a = abs(x);\n"
                    "    vec4 x2 = x * x;\n"
                    "    // |x| < 0.5: x (2/sqrt(pi)) (1 - x^2/3 + x^4/10 - x^6/42 + x^8/216 - x^10/1320)\n"
                    "    vec4 small = x * 1.1283792 * (1.0 + x2 * (-0.33333334 + x2 * (0.1 + x2 * (-0.023809524 + "
                    "x2 * (0.0046296297 + x2 * -0.00075757573)))));\n"
                    "    // |x| >= 0.5: 1 - erfc(|x|), erfc(a) = t exp(-a^2 + P(t)), t = 1 / (1 + a/2) (Numerical "
                    "Recipes' erfcc)\n"
                    "    vec4 t = 1.0 / (1.0 + 0.5 * a);\n"
                    "    vec4 poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * "
                    "(-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * "
                    "0.17087277))))))));\n"
                    "    vec4 large = sign(x) * (1.0 - t * exp(-a * a + poly));\n"
                    "    return mix(large, small, lessThan(a, vec4(0.5)));\n"
                    "}\n"},
                   {"$ vkf_gelu_erf($ x) { return 0.5 * x * (1.0 + vkf_erf(x * 0.70710677)); }\n"}},
    };
    static double reference(double x) { return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2)); }
};

// ---------------------------------------------------------------------------------------------------------------
// Binary
// ---------------------------------------------------------------------------------------------------------------

template <>
struct op_traits<op::add> {
    static constexpr op_info info{.name = "add", .form = op_form::binary, .glsl = " + ", .infix = true,
                                  .subgroup = "subgroupAdd", .combined = "sum"};
    static double reference(double a, double b) { return a + b; }
};

template <>
struct op_traits<op::sub> {
    static constexpr op_info info{.name = "sub", .form = op_form::binary, .glsl = " - ", .infix = true};
    static double reference(double a, double b) { return a - b; }
};

template <>
struct op_traits<op::mul> {
    static constexpr op_info info{.name = "mul", .form = op_form::binary, .glsl = " * ", .infix = true,
                                  .subgroup = "subgroupMul", .combined = "product"};
    static double reference(double a, double b) { return a * b; }
};

template <>
struct op_traits<op::div> {
    static constexpr op_info info{.name = "div", .form = op_form::binary, .flops = 4, .glsl = " / ", .infix = true};
    static double reference(double a, double b) { return a / b; }
};

template <>
struct op_traits<op::max> {
    static constexpr op_info info{.name = "max", .form = op_form::binary, .glsl = "max", .commutative = true,
                                  .subgroup = "subgroupMax", .combined = "max"};
    static double reference(double a, double b) { return a > b ? a : b; }
};

template <>
struct op_traits<op::min> {
    static constexpr op_info info{.name = "min", .form = op_form::binary, .glsl = "min", .commutative = true,
                                  .subgroup = "subgroupMin", .combined = "min"};
    static double reference(double a, double b) { return a < b ? a : b; }
};

// ---------------------------------------------------------------------------------------------------------------
// Reductions (vector -> scalar). The fold's combine op must be a binary op with `subgroup` and `combined`.
// ---------------------------------------------------------------------------------------------------------------

template <>
struct op_traits<op::sum> {
    static constexpr op_info info{.name = "sum", .form = op_form::reduction, .combine = op::add, .identity = 0.0f};
};

template <>
struct op_traits<op::reduce_max> {
    static constexpr op_info info{.name = "max", .form = op_form::reduction, .combine = op::max,
                                  .identity = -std::numeric_limits<float>::infinity()};
};

template <>
struct op_traits<op::mean> {
    static constexpr op_info info{.name = "mean", .form = op_form::reduction, .combine = op::add, .identity = 0.0f,
                                  .mean = true};
};

// The index of the largest element, the first one on ties; the vector's length (no element's index) where any
// element is NaN or +infinity, so that a model whose logits overflowed yields an id no vocabulary holds instead of a
// plausible token (decode_loop turns it into an error naming the position). -infinity is a value like any other (a
// masked entry), the largest only where every element is -infinity.
template <>
struct op_traits<op::argmax> {
    static constexpr op_info info{.name = "argmax", .form = op_form::reduction, .combine = op::max,
                                  .identity = -std::numeric_limits<float>::infinity(), .indexed = true};
};

// ---------------------------------------------------------------------------------------------------------------
// The table: every op's info by value, for code that holds an op as data (the lowered graph). Expanding it over all
// enumerators is what makes a missing trait a compile error.
// ---------------------------------------------------------------------------------------------------------------

namespace detail {

template <op O>
constexpr op_info checked_info() {
    static_assert(requires { op_traits<O>::info; },
                  "vkfuse: an op has no op_traits<> specialisation in vkfuse/ops/traits.hpp; every enumerator of "
                  "vkfuse::op needs one");
    constexpr op_info info = op_traits<O>::info;
    if constexpr (info.form == op_form::reduction) {
        static_assert(info.combine != op::count_, "vkfuse op_traits: a reduction needs .combine, a binary op");
        static_assert(op_traits<info.combine>::info.form == op_form::binary &&
                          !op_traits<info.combine>::info.subgroup.empty(),
                      "vkfuse op_traits: a reduction's .combine must be a binary op with .subgroup and .combined");
    } else if constexpr (info.form == op_form::unary) {
        static_assert(requires(double x) { op_traits<O>::reference(x); },
                      "vkfuse op_traits: a unary op needs `static double reference(double)`");
    } else {
        static_assert(requires(double x) { op_traits<O>::reference(x, x); },
                      "vkfuse op_traits: a binary op needs `static double reference(double, double)`");
    }
    static_assert(!info.glsl.empty() || info.form == op_form::reduction,
                  "vkfuse op_traits: an elementwise op needs .glsl, how GLSL spells it");
    return info;
}

template <std::size_t... I>
constexpr auto make_op_table(std::index_sequence<I...>) {
    struct table {
        op_info entries[op_count];
    };
    return table{{checked_info<static_cast<op>(I)>()...}};
}

inline constexpr auto op_table = make_op_table(std::make_index_sequence<op_count>{});

} // namespace detail

// The info of an op held as a value.
constexpr const op_info& op_info_of(op o) { return detail::op_table.entries[static_cast<std::size_t>(o)]; }

} // namespace vkfuse
