// The planner's cost rule and the plan's records: every weight matrix is streamed once per run, a stack of layers
// written without named<> plans the same kernels as one that names its residuals, and the records say what the
// emitter prints and the runtime launches.
#include "support.hpp"

#include <cstddef>
#include <string>
#include <type_traits>

#include "../benchmarks/toy_decoder.hpp"
#include "../examples/decoder_layer.hpp"

using namespace vkfuse;
using vkfuse_test::check_steps;

namespace {

// True when every product of the program's graph streams its matrix exactly once per run.
template <class Program, strategy S>
constexpr bool every_matrix_read_once() {
    constexpr auto& p = plan::plan_v<Program, S>;
    for (int n = 0; n < p.g.size; ++n)
        if (p.g[n].kind == plan::node_kind::matvec && p.matrix_reads(p.buffer_of_node[p.g[n].a]) != 1) return false;
    return true;
}

template <class Program>
constexpr bool every_strategy_reads_matrices_once() {
    return every_matrix_read_once<Program, strategy::per_op>() && every_matrix_read_once<Program, strategy::fused>() &&
           every_matrix_read_once<Program, strategy::single_dispatch>();
}

// A Llama-style layer (GQA attention, SwiGLU FFN, no biases) of numbered weights, as docs/ops.md writes one. With
// `Named`, the residual h carries a name; without, nothing in the stack is named but its output.
constexpr std::size_t D = 64, H = 4, KV = 2, HD = 16, F = 96, T = 16;
constexpr uint_param<"pos"> pos;

template <std::size_t I, bool Named, class X>
constexpr auto llama_layer(X x) {
    constexpr weight<numbered<"attn_norm", I>, D> attn_norm;
    constexpr weight<numbered<"wq", I>, H * HD, D> wq;
    constexpr weight<numbered<"wk", I>, KV * HD, D> wk;
    constexpr weight<numbered<"wv", I>, KV * HD, D> wv;
    constexpr weight<numbered<"wo", I>, D, H * HD> wo;
    constexpr weight<numbered<"ffn_norm", I>, D> ffn_norm;
    constexpr weight<numbered<"w_gate", I>, F, D> w_gate;
    constexpr weight<numbered<"w_up", I>, F, D> w_up;
    constexpr weight<numbered<"w_down", I>, D, F> w_down;
    constexpr state<numbered<"k_cache", I>, T, KV * HD> k_cache;
    constexpr state<numbered<"v_cache", I>, T, KV * HD> v_cache;

    const auto n1 = rmsnorm<1e-5f>(x, attn_norm);
    const auto q = rope<HD, 10000.0f, T>(wq * n1, pos);
    const auto k = append(k_cache, rope<HD, 10000.0f, T>(wk * n1, pos), pos);
    const auto v = append(v_cache, wv * n1, pos);
    const auto attn = attention<H, KV>(q, k, v, pos);
    if constexpr (Named) {
        const auto h = named<numbered<"h", I>>(x + wo * attn);
        const auto n2 = rmsnorm<1e-5f>(h, ffn_norm);
        return h + w_down * swiglu(w_gate * n2, w_up * n2);
    } else {
        const auto h = x + wo * attn;
        const auto n2 = rmsnorm<1e-5f>(h, ffn_norm);
        return h + w_down * swiglu(w_gate * n2, w_up * n2);
    }
}

template <bool Named>
constexpr auto three_layers() {
    constexpr input<"x", D> x;
    constexpr output<"y", D> y;
    return layer_graph(y = llama_layer<2, Named>(llama_layer<1, Named>(llama_layer<0, Named>(x))));
}

using unnamed_stack = decltype(three_layers<false>());
using named_stack = decltype(three_layers<true>());

verify_options layer_ranges() {
    verify_options o;
    o.low = -0.1f;
    o.high = 0.1f;
    o.ranges["x"] = {-1.0f, 1.0f};
    for (const char* name : {"attn_norm0", "attn_norm1", "attn_norm2", "ffn_norm0", "ffn_norm1", "ffn_norm2"})
        o.ranges[name] = {0.5f, 1.5f};
    return o;
}

} // namespace

// ---- the cost rule: a matrix product is never computed twice
static_assert(every_strategy_reads_matrices_once<unnamed_stack>());
static_assert(every_strategy_reads_matrices_once<named_stack>());
static_assert(every_strategy_reads_matrices_once<examples::decoder_layer::qwen25_05b::program_type>());
static_assert(every_strategy_reads_matrices_once<benchmarks::toy_decoder<36, 3, 2, 11>::program_type>());

// ---- a stack written without named<> plans the kernels of one that names its residuals: 5 per layer
template <class A, class B, strategy S>
constexpr bool same_kernels() {
    constexpr auto& a = plan::plan_v<A, S>;
    constexpr auto& b = plan::plan_v<B, S>;
    if (a.kernel_count != b.kernel_count) return false;
    for (int k = 0; k < a.kernel_count; ++k)
        if (a.kernels[k].kind != b.kernels[k].kind || a.kernels[k].units != b.kernels[k].units ||
            a.kernels[k].matrix_bytes != b.kernels[k].matrix_bytes)
            return false;
    return true;
}
static_assert(plan::plan_v<named_stack, strategy::fused>.kernel_count == 15);
static_assert(same_kernels<unnamed_stack, named_stack, strategy::fused>());
static_assert(same_kernels<unnamed_stack, named_stack, strategy::single_dispatch>());

TEST_CASE("a stack of three layers written without named<> matches Eigen, each matrix read once") {
    const auto fused = check_steps<strategy::fused>(three_layers<false>(), layer_ranges(), {0, 1, 5});
    const auto single = check_steps<strategy::single_dispatch>(three_layers<false>(), layer_ranges(), {0, 1, 5});
    CHECK(vkfuse_test::distance(fused, single) < 1e-5);
    program<unnamed_stack> prog(vkfuse_test::context());
    for (const char* w : {"wq0", "wo1", "w_down2"}) CHECK(prog.matrix_reads(w) == 1);
}

TEST_CASE("a product shared by two results is computed once and read back") {
    constexpr input<"x", 300> x;
    constexpr weight<"w1", 129, 300> w1;
    constexpr weight<"w2", 65, 129> w2;
    constexpr weight<"w3", 7, 65> w3;
    constexpr output<"a", 7> a;
    constexpr output<"b", 65> b;
    // The product w2 (w1 x) feeds a reduction (its own RMS statistics) and the next product's input: materialised
    // once, not recomputed by the kernel of each.
    constexpr auto renorm = (a = w3 * (w2 * (w1 * x) * rsqrt(mean((w2 * (w1 * x)) * (w2 * (w1 * x))) + c<1e-6f>)));
    static_assert(every_strategy_reads_matrices_once<std::remove_cvref_t<decltype(renorm)>>());
    static_assert(glsl::kernel_count<decltype(renorm)> == 3);  // run against Eigen in test_fused.cpp
    // Two results of one product: both from the one materialised product, w2 read once.
    constexpr auto two = layer_graph(a = w3 * silu(w2 * (w1 * x)), b = w2 * (w1 * x) * c<2.0f>);
    static_assert(every_strategy_reads_matrices_once<std::remove_cvref_t<decltype(two)>>());
    vkfuse_test::check_program(two);
}

TEST_CASE("the plan's records: segments, bindings, lanes, workgroups") {
    using layer = examples::decoder_layer::qwen25_05b;
    constexpr auto& p = plan::plan_v<layer::program_type, strategy::fused>;
    // kernel 1: q (rope pairs), the key append (rope pairs), the value append
    constexpr auto& k1 = p.kernels[0];
    static_assert(k1.kind == plan::kernel_kind::matvec && k1.segment_count == 3);
    static_assert(k1.segments[0].pair_dim == 64 && k1.segments[0].units == 448);
    static_assert(k1.segments[1].units == 64 && k1.segments[2].units == 128 && k1.units == 640);
    static_assert(k1.matrix_bytes == 4ull * (896 + 128 + 128) * 896);
    // the FFN's gate and up projections stream 2 x 4864 x 896 floats
    static_assert(p.kernels[3].matrix_bytes == 2ull * 4 * 4864 * 896);
    // attention: up to 4 workgroups per head (split attention: one per 64 of the cache's 256 rows)
    static_assert(p.kernels[1].kind == plan::kernel_kind::attention && p.kernels[1].heads == 14);
    static_assert(p.kernels[1].splits == 4 && plan::workgroups(p.kernels[1], 256, 32) == 14 * 4);
    // a matvec's rows: 256 / 32 rows per workgroup of 256 with 32 lanes
    static_assert(plan::workgroups(p.kernels[2], 256, 32) == 896 / 8);
    static_assert(plan::choose_lanes(p.kernels[2], strategy::fused, {256, 32, 1u << 17, false}) == 256);
    static_assert(plan::choose_lanes(p.kernels[3], strategy::fused, {256, 32, 1u << 17, false}) == 32);
    // persistent, 528 workgroups: the gate and up rows (4864) over 528 items are 10 each, so 16 rows of 16 lanes make
    // one pass; the output projection's 896 rows are 2 each (128 lanes); a 1-workgroup launch takes all rows, at
    // one 128-byte line (8 vec4s) per lane
    static_assert(plan::choose_lanes(p.kernels[3], strategy::persistent, {256, 32, 1u << 17, false, 528}) == 16);
    static_assert(plan::choose_lanes(p.kernels[2], strategy::persistent, {256, 32, 1u << 17, false, 528}) == 128);
    static_assert(plan::choose_lanes(p.kernels[3], strategy::persistent, {256, 32, 1u << 17, false, 1}) == 8);
    // lanes the user fixed are kept; a CPU device (matvec_threads 0) keeps the fused rule's
    static_assert(plan::choose_lanes(p.kernels[3], strategy::persistent, {256, 64, 1u << 17, true, 528}) == 64);
    static_assert(plan::choose_lanes(p.kernels[3], strategy::persistent, {256, 8, 0, false, 2}) == 8);
    // the runtime launches what the records say
    program<layer::program_type> prog(vkfuse_test::context());
    for (int k = 0; k < prog.shader_count; ++k) {
        INFO("kernel " << k + 1);
        CHECK(prog.workgroups(k) ==
              plan::workgroups(p.kernels[k], prog.launch().workgroup_size, prog.lanes(k)));
        CHECK(prog.shader_buffers(k).size() == static_cast<std::size_t>(p.kernels[k].binding_count));
    }
    const std::string text = prog.describe();
    CHECK(text.find("kernel 1: matvec computing q[896], append to k_cache[128], append to v_cache[128]") !=
          std::string::npos);
    CHECK(text.find("kernel 2: attention computing attn[896]; 14 heads, up to 4 workgroups each (split by positions)") !=
          std::string::npos);
    CHECK(text.find("streams 34.87 MB of weights") != std::string::npos);  // kernel 4: W_gate and W_up
}
