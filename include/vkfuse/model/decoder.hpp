// vkfuse/model/decoder.hpp — a Qwen2, Llama or Mistral decoder-only model as one vkfuse program.
//
//     using qwen = vkfuse::model::decoder<vkfuse::model::sizes{.layers = 24, .hidden = 896, ...}, vkfuse::bf16>;
//     vkfuse::program prog(ctx, qwen::program);            // embedding, the stack of layers, the head
//
// The three architectures are one decoder (pre-norm RMSNorm, RoPE in the rotate-half layout, grouped-query attention,
// a SwiGLU MLP); they differ in which projections have biases, whether the output projection is the embedding, and
// RoPE's frequencies — all compile-time facts, the `sizes` of a build. The program has three steps:
//
//     0  x = embedding(embed, token)                           the current token's row
//     1  stack<layers>(x, y, layer)                            every layer, each with its own weights and caches
//     2  logits = lm_head * rmsnorm(y);  next = argmax(logits)  the head: only what generating needs
//
// and two indices, "pos" (the position: the KV cache row written and the RoPE angle) and "token" (the id embedded).
// Step 2 is what prefill can skip (decode_loop's head_steps). Names of the weights, as upload() takes them:
// embed, norm, lm_head (absent when tied); per layer attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down and the
// biases bq, bk, bv, bo, b_gate, b_up, b_down where the architecture has them; the caches k_cache and v_cache.
// model/generator.hpp maps a Hugging Face checkpoint's tensors onto these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../core/rope.hpp"
#include "../expr/node.hpp"
#include "../expr/operators.hpp"

namespace vkfuse::model {

// What a build for one config.json fixes: the sizes and conventions of the model (a structural type, so it is a
// template argument).
struct sizes {
    std::size_t layers = 0;
    std::size_t hidden = 0;
    std::size_t heads = 0;
    std::size_t kv_heads = 0;
    std::size_t head_dim = 0;
    std::size_t intermediate = 0;
    std::size_t vocab = 0;
    std::size_t max_positions = 0;  // rows of the KV caches and the RoPE table: the longest prompt plus new tokens
    float rope_theta = 10000.0f;
    rope_scaling scaling{};
    float rms_norm_eps = 1e-6f;
    bool qkv_bias = false;  // Qwen2
    bool o_bias = false;    // Llama with attention_bias
    bool mlp_bias = false;  // Llama with mlp_bias
    bool tied = false;      // the output projection is the embedding (tie_word_embeddings)
};

namespace detail {

// e + bias, where the architecture has that bias.
template <bool Has, fixed_string Name, class Storage, std::size_t N, class E>
constexpr auto with_bias(E e) {
    if constexpr (Has)
        return e + weight_of<Name, Storage, N>{};
    else
        return e;
}

template <bool Tied, class Embed, class Head>
using output_projection = std::conditional_t<Tied, Embed, Head>;

} // namespace detail

// `Weights`: how the matrices and the embedding are stored (f32, f16, bf16, q8_0, q4_0); norms and biases stay f32.
// `Cache`: how the KV caches are stored (f32 or f16).
template <sizes S, class Weights = f32, class Cache = f32>
struct decoder {
    static_assert(S.layers >= 1 && S.hidden >= 1 && S.heads >= 1 && S.kv_heads >= 1 && S.head_dim >= 2 &&
                      S.intermediate >= 1 && S.vocab >= 1 && S.max_positions >= 1,
                  "vkfuse::model::decoder: every size must be set (at least 1)");
    static_assert(S.heads % S.kv_heads == 0, "vkfuse::model::decoder: heads must be a multiple of kv_heads (GQA)");

    static constexpr sizes shape = S;
    static constexpr std::size_t D = S.hidden, H = S.heads, KV = S.kv_heads, HD = S.head_dim, F = S.intermediate,
                                 V = S.vocab, T = S.max_positions;
    static constexpr float eps = S.rms_norm_eps;
    using weights = Weights;
    using cache = Cache;

    static constexpr uint_param<"pos"> pos{};
    static constexpr uint_param<"token"> token{};

    // ---- one layer: y from x
    static constexpr input<"x", D> x{};
    static constexpr output<"y", D> y{};
    static constexpr weight_of<"attn_norm", f32, D> attn_norm{};
    static constexpr weight_of<"wq", Weights, H * HD, D> wq{};
    static constexpr weight_of<"wk", Weights, KV * HD, D> wk{};
    static constexpr weight_of<"wv", Weights, KV * HD, D> wv{};
    static constexpr weight_of<"wo", Weights, D, H * HD> wo{};
    static constexpr weight_of<"ffn_norm", f32, D> ffn_norm{};
    static constexpr weight_of<"w_gate", Weights, F, D> w_gate{};
    static constexpr weight_of<"w_up", Weights, F, D> w_up{};
    static constexpr weight_of<"w_down", Weights, D, F> w_down{};
    static constexpr state_of<"k_cache", Cache, T, KV * HD> k_cache{};
    static constexpr state_of<"v_cache", Cache, T, KV * HD> v_cache{};

    static constexpr auto n1 = rmsnorm<eps>(x, attn_norm);
    static constexpr auto q = named<"q">(
        rope<HD, S.rope_theta, T, S.scaling>(detail::with_bias<S.qkv_bias, "bq", f32, H * HD>(wq * n1), pos));
    static constexpr auto k = append(
        k_cache, rope<HD, S.rope_theta, T, S.scaling>(detail::with_bias<S.qkv_bias, "bk", f32, KV * HD>(wk * n1), pos),
        pos);
    static constexpr auto v = append(v_cache, detail::with_bias<S.qkv_bias, "bv", f32, KV * HD>(wv * n1), pos);
    static constexpr auto attn = named<"attn">(attention<H, KV>(q, k, v, pos));
    static constexpr auto h = named<"h">(x + detail::with_bias<S.o_bias, "bo", f32, D>(wo * attn));
    static constexpr auto n2 = rmsnorm<eps>(h, ffn_norm);
    static constexpr auto mlp = detail::with_bias<S.mlp_bias, "b_down", f32, D>(
        w_down * swiglu(detail::with_bias<S.mlp_bias, "b_gate", f32, F>(w_gate * n2),
                        detail::with_bias<S.mlp_bias, "b_up", f32, F>(w_up * n2)));
    static constexpr auto layer = (y = h + mlp);

    // ---- the model
    static constexpr weight_of<"embed", Weights, V, D> embed{};
    static constexpr weight_of<"norm", f32, D> norm{};
    static constexpr detail::output_projection<S.tied, weight_of<"embed", Weights, V, D>,
                                               weight_of<"lm_head", Weights, V, D>>
        lm_head{};
    static constexpr output<"x", D> embedded{};
    static constexpr input<"y", D> last{};
    static constexpr output<"logits", V> logits{};
    static constexpr output_of<"next", u32> next{};
    static constexpr auto scores = lm_head * rmsnorm<eps>(last, norm);

    static constexpr auto program = steps(embedded = embedding(embed, token), stack<S.layers>(x, y, layer),
                                          layer_graph(logits = scores, next = argmax(scores)));
    using program_type = std::remove_cvref_t<decltype(program)>;
    // The step that only produces logits and the next token: prefill skips it (decode_options::head_steps).
    static constexpr std::uint32_t head_steps = 1u << 2;
};

} // namespace vkfuse::model
