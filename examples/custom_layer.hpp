// examples/custom_layer.hpp — the worked example of docs/expressions.md: a GPT-2-style MLP block written from the
// primitive ops, with LayerNorm spelled out as its formula.
//
//     ln(x) = (x - mean(x)) · rsqrt(mean((x - mean(x))²) + ε) · γ + β
//     y     = x + W₂ · gelu(W₁ · ln(x) + b₁) + b₂
#pragma once

#include <vkfuse/vkfuse.hpp>

namespace examples::custom_layer {

using namespace vkfuse;

inline constexpr std::size_t d_model = 768;  // GPT-2 small
inline constexpr std::size_t d_ff = 4 * d_model;

// Leaves: named, shaped placeholders. Weights are [out, in], row-major, as checkpoints store them.
inline constexpr input<"x", d_model> x;
inline constexpr weight<"ln_gamma", d_model> gamma;
inline constexpr weight<"ln_beta", d_model> beta;
inline constexpr weight<"w_fc", d_ff, d_model> w_fc;
inline constexpr weight<"b_fc", d_ff> b_fc;
inline constexpr weight<"w_proj", d_model, d_ff> w_proj;
inline constexpr weight<"b_proj", d_model> b_proj;
inline constexpr output<"y", d_model> y;

// A reusable piece is just a function of expressions.
template <float Eps, class X, class G, class B>
constexpr auto layer_norm(X v, G g, B b) {
    const auto centred = v - mean(v);
    return centred * rsqrt(mean(centred * centred) + c<Eps>) * g + b;
}

inline constexpr auto layer = (y = x + w_proj * gelu(w_fc * layer_norm<1e-5f>(x, gamma, beta) + b_fc) + b_proj);

using layer_type = std::remove_cvref_t<decltype(layer)>;

} // namespace examples::custom_layer
