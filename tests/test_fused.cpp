// Fused compositions against the Eigen reference: the demo layer, and shapes of fusion the planner must cut right.
#include "support.hpp"

#include "../examples/fused_ffn.hpp"

using namespace vkfuse;
using vkfuse_test::check_program;

TEST_CASE("the demo feed-forward block matches Eigen in two dispatches") {
    namespace ex = examples::fused_ffn;
    static_assert(glsl::kernel_count<ex::layer_type> == 2);
    check_program(ex::layer);
}

TEST_CASE("the demo block's structure at odd sizes") {
    // Same composition, sizes that divide nothing: D = 257, F = 1031.
    constexpr input<"x", 257> x;
    constexpr weight<"g", 257> g;
    constexpr weight<"w_gate", 1031, 257> w_gate;
    constexpr weight<"w_up", 1031, 257> w_up;
    constexpr weight<"w_down", 257, 1031> w_down;
    constexpr output<"y", 257> y;
    constexpr auto n = x * rsqrt(mean(x * x) + c<1e-6f>) * g;
    check_program(y = x + w_down * (silu(w_gate * n) * (w_up * n)));
}

TEST_CASE("LayerNorm + GELU MLP with biases") {
    constexpr input<"x", 255> x;
    constexpr weight<"gamma", 255> gamma;
    constexpr weight<"beta", 255> beta;
    constexpr weight<"w1", 1021, 255> w1;
    constexpr weight<"b1", 1021> b1;
    constexpr weight<"w2", 255, 1021> w2;
    constexpr weight<"b2", 255> b2;
    constexpr output<"y", 255> y;
    constexpr auto centred = x - mean(x);
    constexpr auto ln = centred * rsqrt(mean(centred * centred) + c<1e-5f>) * gamma + beta;
    constexpr auto program = (y = x + w2 * gelu(w1 * ln + b1) + b2);
    static_assert(glsl::kernel_count<decltype(program)> == 2);
    check_program(program);
}

TEST_CASE("cuts: matvec chains, reductions of matvecs, mixed input lengths") {
    constexpr input<"x", 300> x;
    constexpr input<"z", 77> z;
    constexpr weight<"w1", 129, 300> w1;
    constexpr weight<"w2", 65, 129> w2;
    constexpr weight<"w3", 7, 65> w3;
    constexpr weight<"wz", 129, 77> wz;
    constexpr output<"a", 7> a;
    constexpr output<"s"> s;
    constexpr output<"m", 129> m;

    constexpr auto chain = (a = w3 * silu(w2 * (w1 * x)));
    static_assert(glsl::kernel_count<decltype(chain)> == 3);
    check_program(chain);

    constexpr auto norm_of_product = (s = sum((w1 * x) * (w1 * x)));  // the reduction needs all of w1 * x
    static_assert(glsl::kernel_count<decltype(norm_of_product)> == 2);
    check_program(norm_of_product);

    constexpr auto two_lengths = (m = w1 * x + wz * z);  // one epilogue, two dot-product loops
    static_assert(glsl::kernel_count<decltype(two_lengths)> == 1);
    check_program(two_lengths);

    // A projection normalised by its own statistics, then projected again: w2 (w1 x) is read by the reduction and
    // by the next product's input, so the cost rule materialises it once (3 kernels, each matrix read once).
    constexpr auto renorm = (a = w3 * (w2 * (w1 * x) * rsqrt(mean((w2 * (w1 * x)) * (w2 * (w1 * x))) + c<1e-6f>)));
    static_assert(glsl::kernel_count<decltype(renorm)> == 3);
    check_program(renorm);
}

TEST_CASE("a runtime param inside a fused layer") {
    constexpr input<"x", 513> x;
    constexpr weight<"w", 260, 513> w;
    constexpr param<"scale"> scale;
    constexpr output<"y", 260> y;
    check_program(y = tanh(w * (x * scale)) * scale);
}
