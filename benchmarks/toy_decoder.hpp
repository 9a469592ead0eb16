// benchmarks/toy_decoder.hpp — the toy decoder of the single-kernel WebGPU fusion study, as one vkfuse description:
// L pre-LayerNorm transformer blocks (multi-head attention with biases, GELU feed-forward of 4·D), T tokens fed as
// given embeddings (no vocabulary), a KV cache per layer, run autoregressively over every position.
//
//     x₀ = tokens[pos]
//     per block i:  n = LN(x);  q, k, v = W n + b;  a = attention(q, K ⊕ k, V ⊕ v, pos)
//                   h = x + Wo a + bo;  x' = h + W2 gelu(W1 LN(h) + b1) + b2
//     out[pos] = x_L
//
// The whole sequence is `repeat<"pos", T>(...)`: single_dispatch runs it as ONE dispatch looping over positions,
// the other strategies as T runs of their kernels recorded into one command buffer.
#pragma once

#include <cstddef>
#include <type_traits>

#include <vkfuse/vkfuse.hpp>

namespace benchmarks {

using namespace vkfuse;

template <std::size_t D, std::size_t H, std::size_t L, std::size_t T = 64>
struct toy_decoder {
    static constexpr std::size_t dim = D, heads = H, layers = L, tokens_count = T;

    static constexpr uint_param<"pos"> pos{};
    static constexpr input<"tokens", T, D> tokens{};
    static constexpr state<"out", T, D> out{};

    // Block I applied to x.
    template <std::size_t I, class X>
    static constexpr auto block(X x) {
        constexpr weight<numbered<"ln1_g", I>, D> ln1_g{};
        constexpr weight<numbered<"ln1_b", I>, D> ln1_b{};
        constexpr weight<numbered<"wq", I>, D, D> wq{};
        constexpr weight<numbered<"bq", I>, D> bq{};
        constexpr weight<numbered<"wk", I>, D, D> wk{};
        constexpr weight<numbered<"bk", I>, D> bk{};
        constexpr weight<numbered<"wv", I>, D, D> wv{};
        constexpr weight<numbered<"bv", I>, D> bv{};
        constexpr weight<numbered<"wo", I>, D, D> wo{};
        constexpr weight<numbered<"bo", I>, D> bo{};
        constexpr weight<numbered<"ln2_g", I>, D> ln2_g{};
        constexpr weight<numbered<"ln2_b", I>, D> ln2_b{};
        constexpr weight<numbered<"w1_", I>, 4 * D, D> w1{};
        constexpr weight<numbered<"b1_", I>, 4 * D> b1{};
        constexpr weight<numbered<"w2_", I>, D, 4 * D> w2{};
        constexpr weight<numbered<"b2_", I>, D> b2{};
        constexpr state<numbered<"k_cache", I>, T, D> k_cache{};
        constexpr state<numbered<"v_cache", I>, T, D> v_cache{};

        const auto n1 = layernorm<1e-5f>(x, ln1_g, ln1_b);
        const auto a = attention<H, H>(wq * n1 + bq, append(k_cache, wk * n1 + bk, pos),
                                       append(v_cache, wv * n1 + bv, pos), pos);
        const auto h = x + wo * a + bo;
        return h + w2 * gelu(w1 * layernorm<1e-5f>(h, ln2_g, ln2_b) + b1) + b2;
    }

    template <std::size_t I, class X>
    static constexpr auto stack(X x) {
        if constexpr (I == L)
            return x;
        else
            return stack<I + 1>(block<I>(x));
    }

    static constexpr auto program = repeat<"pos", T>(layer_graph(append(out, stack<0>(embedding(tokens, pos)), pos)));
    using program_type = std::remove_cvref_t<decltype(program)>;
};

} // namespace benchmarks
