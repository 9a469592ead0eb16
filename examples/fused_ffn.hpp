// examples/fused_ffn.hpp — the demo layer: a pre-norm SwiGLU feed-forward block with its residual, at the sizes of
// Qwen2.5-0.5B (hidden 896, intermediate 4864), written as ONE expression.
//
//     y = x + W_down · ( silu(W_gate · n) ⊙ (W_up · n) ),   n = RMSNorm(x) = x · rsqrt(mean(x²) + ε) · g
//
// vkfuse cuts it into two kernels: the down projection needs the whole gated vector, which no workgroup of the
// first kernel has alone. Everything else — the norm's statistics, the normalisation, both up projections, SiLU,
// the gating product, the residual — is fused into those two dispatches.
#pragma once

#include <vkfuse/vkfuse.hpp>

namespace examples::fused_ffn {

using namespace vkfuse;

inline constexpr std::size_t hidden = 896;
inline constexpr std::size_t intermediate = 4864;

inline constexpr input<"x", hidden> x;
inline constexpr weight<"norm", hidden> g;
inline constexpr weight<"w_gate", intermediate, hidden> w_gate;
inline constexpr weight<"w_up", intermediate, hidden> w_up;
inline constexpr weight<"w_down", hidden, intermediate> w_down;
inline constexpr output<"y", hidden> y;

inline constexpr auto n = x * rsqrt(mean(x * x) + c<1e-6f>) * g;
inline constexpr auto layer = (y = x + w_down * (silu(w_gate * n) * (w_up * n)));

using layer_type = std::remove_cvref_t<decltype(layer)>;

} // namespace examples::fused_ffn
