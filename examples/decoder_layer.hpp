// examples/decoder_layer.hpp — a Llama/Qwen-style decoder layer for one token, as one C++ description:
//
//     n1   = RMSNorm(x)                                   attention block, pre-norm
//     q    = rope(Wq n1 + bq)          (named "q")
//     K[p] = rope(Wk n1 + bk)          (appended to the key cache at position p)
//     V[p] = Wv n1 + bv                (appended to the value cache)
//     attn = attention(q, K, V, p)     (named "attn"; grouped-query: H query heads share KV heads)
//     h    = x + Wo attn               (named "h")
//     y    = h + W_down (silu(W_gate n2) * (W_up n2)),   n2 = RMSNorm(h)
//
// Sizes are parameters; `qwen25_05b` is Qwen2.5-0.5B's (hidden 896, 14 query heads, 2 KV heads, head_dim 64,
// FFN 4864, q/k/v biases, RMSNorm eps 1e-6, rope_theta 1e6). Weights are [out, in] as checkpoints store them.
#pragma once

#include <cstddef>
#include <type_traits>

#include <vkfuse/vkfuse.hpp>

namespace examples::decoder_layer {

using namespace vkfuse;

// `Weights`: how the weight matrices are stored (f32, f16, bf16, q8_0, q4_0); norms and biases are stored as f32 under
// a block format, else as the matrices are. `Cache`: how the KV caches are stored (f32 or f16).
template <std::size_t D, std::size_t H, std::size_t KV, std::size_t HeadDim, std::size_t F, std::size_t MaxSeq,
          float Theta, float Eps, class Weights = f32, class Cache = f32>
struct decoder {
    using vectors = std::conditional_t<is_block_format(Weights::code), f32, Weights>;
    static constexpr std::size_t hidden = D, heads = H, kv_heads = KV, head_dim = HeadDim, ffn = F,
                                 max_positions = MaxSeq;

    static constexpr input<"x", D> x{};
    static constexpr uint_param<"pos"> pos{};

    static constexpr weight_of<"attn_norm", vectors, D> attn_norm{};
    static constexpr weight_of<"wq", Weights, H * HeadDim, D> wq{};
    static constexpr weight_of<"bq", vectors, H * HeadDim> bq{};
    static constexpr weight_of<"wk", Weights, KV * HeadDim, D> wk{};
    static constexpr weight_of<"bk", vectors, KV * HeadDim> bk{};
    static constexpr weight_of<"wv", Weights, KV * HeadDim, D> wv{};
    static constexpr weight_of<"bv", vectors, KV * HeadDim> bv{};
    static constexpr weight_of<"wo", Weights, D, H * HeadDim> wo{};
    static constexpr weight_of<"ffn_norm", vectors, D> ffn_norm{};
    static constexpr weight_of<"w_gate", Weights, F, D> w_gate{};
    static constexpr weight_of<"w_up", Weights, F, D> w_up{};
    static constexpr weight_of<"w_down", Weights, D, F> w_down{};

    static constexpr state_of<"k_cache", Cache, MaxSeq, KV * HeadDim> k_cache{};
    static constexpr state_of<"v_cache", Cache, MaxSeq, KV * HeadDim> v_cache{};
    static constexpr output<"y", D> y{};

    static constexpr auto n1 = rmsnorm<Eps>(x, attn_norm);
    static constexpr auto q = named<"q">(rope<HeadDim, Theta, MaxSeq>(wq * n1 + bq, pos));
    static constexpr auto k = append(k_cache, rope<HeadDim, Theta, MaxSeq>(wk * n1 + bk, pos), pos);
    static constexpr auto v = append(v_cache, wv * n1 + bv, pos);
    static constexpr auto attn = named<"attn">(attention<H, KV>(q, k, v, pos));
    static constexpr auto h = named<"h">(x + wo * attn);
    static constexpr auto n2 = rmsnorm<Eps>(h, ffn_norm);
    static constexpr auto program = layer_graph(y = h + w_down * swiglu(w_gate * n2, w_up * n2));

    using program_type = std::remove_cvref_t<decltype(program)>;
};

// Qwen2.5-0.5B's layer with a cache of 256 positions.
using qwen25_05b = decoder<896, 14, 2, 64, 4864, 256, 1e6f, 1e-6f>;

} // namespace examples::decoder_layer
