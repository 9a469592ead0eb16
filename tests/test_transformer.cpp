// Transformer ops and whole decoder layers against the Eigen reference, under every strategy.
#include "support.hpp"

#include "../benchmarks/toy_decoder.hpp"
#include "../examples/decoder_layer.hpp"

#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

using namespace vkfuse;
using vkfuse_test::check_program;
using vkfuse_test::check_steps;

namespace {

// Weights of a trained model's scale, activations O(1), caches O(1).
verify_options layer_ranges() {
    verify_options o;
    o.low = -0.05f;
    o.high = 0.05f;
    for (const char* name : {"x", "k_cache", "v_cache"}) o.ranges[name] = {-1.0f, 1.0f};
    for (const char* name : {"attn_norm", "ffn_norm", "w", "g"}) o.ranges[name] = {0.5f, 1.5f};
    return o;
}

template <std::size_t N>
struct size_c {
    static constexpr std::size_t value = N;
};

} // namespace

TEST_CASE_TEMPLATE("norms, softmax, SwiGLU, GELU forms and linear match Eigen", S, size_c<7>, size_c<257>,
                   size_c<896>) {
    constexpr std::size_t n = S::value;
    constexpr input<"x", n> x;
    constexpr input<"u", n> u;
    constexpr weight<"w", n> w;
    constexpr weight<"b", n> b;
    constexpr weight<"m", 33, n> m;
    constexpr weight<"mb", 33> mb;
    constexpr output<"y", n> y;
    constexpr output<"z", 33> z;
    verify_options o;
    o.ranges["w"] = {0.5f, 1.5f};
    check_program(y = rmsnorm<1e-6f>(x, w), o);
    check_program(y = layernorm<1e-5f>(x, w, b), o);
    check_program(y = softmax(x * c<4.0f>));
    check_program(y = swiglu(x * c<4.0f>, u));
    check_program(y = gelu_erf(x * c<3.0f>));
    check_program(y = gelu(x * c<3.0f>));
    check_program(z = linear(m, x, mb));
    check_program(z = gelu_erf(linear(m, rmsnorm<1e-6f>(x, w), mb)), o);  // fused prologue and epilogue
}

TEST_CASE("rope in Hugging Face's rotate-half layout, at several positions and head sizes") {
    constexpr uint_param<"pos"> pos;
    constexpr input<"x", 3 * 64> x;
    constexpr input<"s", 5 * 6> s;
    constexpr output<"y", 3 * 64> y;
    constexpr output<"t", 5 * 6> t;
    for (std::uint32_t p : {0u, 1u, 17u, 1023u}) {
        INFO("position " << p);
        program prog(vkfuse_test::context(), y = rope<64, 1e6f, 1024>(x, pos));
        const auto r = verify(prog, y = rope<64, 1e6f, 1024>(x, pos), {}, {{"pos", p}});
        CHECK(r.ok());
        program small(vkfuse_test::context(), t = rope<6, 10000.0f, 1024>(s, pos));
        CHECK(verify(small, t = rope<6, 10000.0f, 1024>(s, pos), {}, {{"pos", p}}).ok());
    }
    // A position outside the table is refused before anything runs.
    program prog(vkfuse_test::context(), y = rope<64, 1e6f, 1024>(x, pos));
    CHECK_THROWS_AS(prog.set_index("pos", 1024), vkfuse::usage_error);
    vkfuse_test::check_validation_clean();
}

TEST_CASE("rope fused into a matvec epilogue computes rows in pairs") {
    constexpr uint_param<"pos"> pos;
    constexpr input<"x", 129> x;
    constexpr weight<"w", 4 * 16, 129> w;
    constexpr weight<"b", 4 * 16> b;
    constexpr output<"q", 4 * 16> q;
    constexpr auto program = (q = rope<16, 10000.0f, 64>(w * x + b, pos));
    static_assert(glsl::kernel_count<decltype(program)> == 1);
    static_assert(glsl::source<decltype(program)>.find("i1 = i0 + 8u") != std::string_view::npos);
    check_steps<strategy::fused>(program, {}, {0, 5, 63});
    check_steps<strategy::per_op>(program, {}, {0, 5, 63});
}

TEST_CASE("KV-cache append and single-token attention: multi-head and grouped-query") {
    constexpr uint_param<"pos"> pos;
    // MHA: 3 heads of 16; GQA: 6 query heads over 2 KV heads of 8; 5 query heads over 1 KV head of 6 (MQA)
    {
        constexpr input<"q", 48> q;
        constexpr input<"k", 48> k;
        constexpr input<"v", 48> v;
        constexpr state<"k_cache", 20, 48> kc;
        constexpr state<"v_cache", 20, 48> vc;
        constexpr output<"y", 48> y;
        constexpr auto program = (y = attention<3, 3>(q, append(kc, k, pos), append(vc, v, pos), pos));
        check_steps<strategy::fused>(program, {}, {0, 1, 2, 19});
    }
    {
        constexpr input<"q", 48> q;
        constexpr input<"k", 16> k;
        constexpr input<"v", 16> v;
        constexpr state<"k_cache", 300, 16> kc;
        constexpr state<"v_cache", 300, 16> vc;
        constexpr output<"y", 48> y;
        constexpr auto program = (y = attention<6, 2>(q, append(kc, k, pos), append(vc, v, pos), pos));
        // positions past one workgroup's block of 256 exercise the online softmax across blocks
        check_steps<strategy::fused>(program, {}, {0, 7, 255, 256, 299});
        check_steps<strategy::single_dispatch>(program, {}, {3, 299});
    }
    {
        constexpr input<"q", 30> q;
        constexpr state<"k_cache", 9, 6> kc;
        constexpr state<"v_cache", 9, 6> vc;
        constexpr output<"y", 30> y;
        constexpr auto program = (y = attention<5, 1>(q, kc, vc, pos));  // reads caches without appending
        check_steps<strategy::fused>(program, {}, {0, 4, 8});
    }
}

TEST_CASE("embedding lookup and argmax over a vocabulary") {
    constexpr uint_param<"pos"> token;  // named pos so check_steps can drive it
    constexpr weight<"embed", 1001, 96> embed;
    constexpr weight<"lm_head", 1001, 96> lm_head;
    constexpr output<"x", 96> x;
    constexpr output_of<"next", u32> next;
    check_steps<strategy::fused>(x = embedding(embed, token) * c<2.0f>, {}, {0, 500, 1000});
    // greedy decoding's last step: logits of the whole vocabulary, then their argmax
    constexpr auto head = layer_graph(next = argmax(lm_head * embedding(embed, token)));
    static_assert(glsl::kernel_count<decltype(head)> == 2);
    check_steps<strategy::fused>(head, {}, {3, 999});
    check_steps<strategy::per_op>(head, {}, {3});
}

TEST_CASE("argmax of values holding NaN or +infinity is their length, on the device as in the reference") {
    constexpr input<"scores", 1001> scores;
    constexpr output_of<"next", u32> next;
    constexpr auto head = (next = argmax(scores));
    program<std::remove_cvref_t<decltype(head)>> prog(vkfuse_test::context(), head);
    program<std::remove_cvref_t<decltype(head)>, strategy::persistent> one(vkfuse_test::context(), head);
    std::vector<float> v(1001);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37) % 101) - 50.0f;
    v[700] = 99.0f;  // the largest, once
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    for (const auto& [at, value, want] : {std::tuple{0, 0.0f, 700u}, std::tuple{3, nan, 1001u},
                                          std::tuple{1000, inf, 1001u}, std::tuple{512, -inf, 700u}}) {
        std::vector<float> x = v;
        x[static_cast<std::size_t>(at)] += value;
        INFO("element " << at << " plus " << value);
        prog.upload("scores", x);
        prog.run();
        CHECK(prog.download_indices("next")[0] == want);
        one.upload("scores", x);
        one.run();
        CHECK(one.download_indices("next")[0] == want);
        reference::bindings host;
        host.buffers["scores"] = x;
        CHECK(reference::evaluate(head, host).at("next")[0] == static_cast<double>(want));
    }
    vkfuse_test::check_validation_clean();
}

TEST_CASE("the Qwen2.5-0.5B decoder layer: 31, 5, 1 and 1 dispatches that agree with Eigen and each other") {
    using layer = examples::decoder_layer::qwen25_05b;
    static_assert(glsl::kernel_count<layer::program_type, strategy::per_op> == 31);
    static_assert(glsl::kernel_count<layer::program_type, strategy::fused> == 5);
    static_assert(glsl::kernel_count<layer::program_type, strategy::single_dispatch> == 1);
    static_assert(glsl::kernel_count<layer::program_type, strategy::persistent> == 1);
    const auto a = check_steps<strategy::per_op>(layer::program, layer_ranges(), {0, 1, 2, 9});
    const auto b = check_steps<strategy::fused>(layer::program, layer_ranges(), {0, 1, 2, 9});
    const auto c = check_steps<strategy::single_dispatch>(layer::program, layer_ranges(), {0, 1, 2, 9});
    const auto d = check_steps<strategy::persistent>(layer::program, layer_ranges(), {0, 1, 2, 9});
    CHECK(vkfuse_test::distance(a, b) < 1e-5);
    CHECK(vkfuse_test::distance(b, c) < 1e-5);
    CHECK(vkfuse_test::distance(b, d) < 1e-5);
}

TEST_CASE("a decoder layer at odd sizes: D 257, 6 query heads over 2 KV heads of 10, FFN 1001") {
    using layer = examples::decoder_layer::decoder<257, 6, 2, 10, 1001, 40, 10000.0f, 1e-5f>;
    const auto a = check_steps<strategy::per_op>(layer::program, layer_ranges(), {0, 3, 39});
    const auto b = check_steps<strategy::fused>(layer::program, layer_ranges(), {0, 3, 39});
    const auto c = check_steps<strategy::single_dispatch>(layer::program, layer_ranges(), {0, 3, 39});
    const auto d = check_steps<strategy::persistent>(layer::program, layer_ranges(), {0, 3, 39});
    CHECK(vkfuse_test::distance(a, b) < 1e-5);
    CHECK(vkfuse_test::distance(b, c) < 1e-5);
    CHECK(vkfuse_test::distance(b, d) < 1e-5);
}

TEST_CASE("a whole sequence as one repeat<>: 2 blocks, 3 heads of 12, 11 positions, every strategy and workgroup") {
    // The toy decoder of the benchmarks at odd sizes. single_dispatch runs all 11 positions of both blocks in one
    // dispatch; its attention splits the workgroup into one team per head, and at small workgroups a team is
    // narrower than a head (slices) and than the positions (several softmax blocks), so every path is taken.
    using toy = benchmarks::toy_decoder<36, 3, 2, 11>;
    verify_options o;
    o.low = -0.4f;
    o.high = 0.4f;
    o.ranges["tokens"] = {-1.0f, 1.0f};
    for (const char* gain : {"ln1_g0", "ln2_g0", "ln1_g1", "ln2_g1"}) o.ranges[gain] = {0.9f, 1.1f};
    const program_options launches[] = {
        {},                                                // lavapipe's default: 256 invocations
        {.workgroup_size = 64, .pack_buffers = true},      // teams wider than a subgroup
        {.workgroup_size = 16},                            // teams of 4: inside a subgroup, heads in slices
        {.workgroup_size = 16, .subgroups = false},        // the same through shared-memory trees
    };
    for (const program_options& launch : launches) {
        INFO("single_dispatch, workgroup " << launch.workgroup_size << ", subgroups " << launch.subgroups);
        const verify_report r = verify(vkfuse_test::context(), toy::program, vkfuse::single_dispatch, o, launch);
        INFO(r.summary());
        CHECK(r.ok());
    }
    // Teams of one invocation per head, heads in passes. One block and 4 positions: llvmpipe ends a shader's loops
    // after 65535 trips in all, and two invocations doing a whole sequence of two blocks take more.
    using short_toy = benchmarks::toy_decoder<36, 3, 1, 4>;
    for (const std::uint32_t size : {2u, 4u}) {
        INFO("single_dispatch, workgroup " << size);
        const verify_report r = verify(vkfuse_test::context(), short_toy::program, vkfuse::single_dispatch, o,
                                       {.workgroup_size = size});
        INFO(r.summary());
        CHECK(r.ok());
    }
    const verify_report fused = verify(vkfuse_test::context(), toy::program, vkfuse::fused, o);
    INFO("fused: " << fused.summary());
    CHECK(fused.ok());
    // rows of 4 lanes: the matvec row sums go through subgroup shuffles
    const verify_report narrow = verify(vkfuse_test::context(), toy::program, vkfuse::fused, o, {.lanes = 4});
    INFO("fused, 4 lanes per row: " << narrow.summary());
    CHECK(narrow.ok());
    const verify_report unfused = verify(vkfuse_test::context(), toy::program, vkfuse::per_op, o);
    INFO("per_op: " << unfused.summary());
    CHECK(unfused.ok());
    // persistent: the 11 positions of both blocks are work items of one dispatch, taken in order
    for (const std::uint32_t groups : {0u, 3u}) {
        const verify_report r = verify(vkfuse_test::context(), toy::program, vkfuse::persistent, o,
                                       {.persistent_workgroups = groups});
        INFO("persistent, " << groups << " workgroups (0: the default): " << r.summary());
        CHECK(r.ok());
    }
    vkfuse_test::check_validation_clean();
}

TEST_CASE("buffers are packed into one binding when a kernel needs more than the device allows") {
    using layer = examples::decoder_layer::decoder<257, 6, 2, 10, 1001, 40, 10000.0f, 1e-5f>;
    // The Vulkan minimum is 4 storage buffers per stage; the first kernel of this layer uses 12.
    program<layer::program_type> prog(vkfuse_test::context(), program_options{.max_bindings = 4});
    CHECK(prog.packed());
    CHECK(prog.glsl(0).find("vkf_arena") != std::string_view::npos);
    vulkan::buffer outside(vkfuse_test::context(), 257 * 4);
    CHECK_THROWS_AS(prog.bind("x", outside), vkfuse::usage_error);
    reference::bindings host = randomize(prog, layer_ranges());
    for (std::uint32_t pos : {0u, 5u, 39u}) {
        prog.set_index("pos", pos);
        host.indices["pos"] = pos;
        const auto r = check(prog, layer::program, host);
        INFO("position " << pos << ": " << r.summary());
        CHECK(r.ok());
    }
    // single_dispatch packed too: one binding for the whole layer
    program<layer::program_type, strategy::single_dispatch> single(vkfuse_test::context(),
                                                                    program_options{.pack_buffers = true});
    reference::bindings host2 = randomize(single, layer_ranges());
    single.set_index("pos", 7);
    host2.indices["pos"] = 7;
    CHECK(check(single, layer::program, host2).ok());
    vkfuse_test::check_validation_clean();
}

TEST_CASE("the plan is inspectable: kernels, what they compute, their buffers") {
    using layer = examples::decoder_layer::qwen25_05b;
    program<layer::program_type> prog(vkfuse_test::context());
    const std::string text = prog.describe();
    INFO(text);
    CHECK(text.find("fused: 5 dispatches") != std::string::npos);
    CHECK(text.find("kernel 1: matvec computing q[896], append to k_cache[128], append to v_cache[128]") !=
          std::string::npos);
    CHECK(text.find("kernel 2: attention computing attn[896]; 14 heads") != std::string::npos);
    CHECK(text.find("->h") != std::string::npos);
    CHECK(prog.glsl(1).find("vkf_workgroup_max") != std::string_view::npos);
    CHECK(prog.shader_buffers(1).size() == 4);  // k_cache, v_cache, q, attn
}
