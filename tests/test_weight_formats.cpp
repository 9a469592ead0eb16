// Weights stored as f16, bf16, q8_0 and q4_0, and f16 KV caches, against Eigen evaluating the same stored values:
// the reference reads exactly the bits the device reads, so the f32 tolerance holds. Every case runs both ways in:
// the device's 16- and 8-bit storage access, and 32-bit words unpacked in the shader (what a device without them
// gets); and with every buffer in its own binding and all packed into one.
#include "support.hpp"

#include <cstdint>
#include <vector>

#include "../examples/decoder_layer.hpp"

using namespace vkfuse;
using vkfuse_test::check_validation_clean;

namespace {

// Both storage ways, both reduction paths, and packed buffers: every variant must agree with Eigen.
template <class Program>
void check_all_ways(const Program& program, verify_options options = {}, double tolerance = 1e-5) {
    struct way {
        const char* name;
        program_options o;
    };
    const way ways[] = {
        {"native storage", {.subgroups = true, .native_storage = true}},
        {"32-bit words", {.subgroups = true, .native_storage = false}},
        {"words, no subgroups", {.subgroups = false, .native_storage = false}},
        {"native, packed into one binding", {.pack_buffers = true, .native_storage = true}},
    };
    for (const way& w : ways) {
        const verify_report r = verify(vkfuse_test::context(), program, options, w.o);
        INFO(w.name << ": " << r.summary());
        CHECK(r.ok(tolerance));
    }
    check_validation_clean();
}

template <class Storage, std::size_t Rows, std::size_t Cols>
void check_matvec_storage() {
    constexpr input<"x", Cols> x;
    constexpr weight<"g", Cols> g;
    constexpr weight_of<"w", Storage, Rows, Cols> w;
    constexpr weight_of<"b", std::conditional_t<is_block_format(Storage::code), f16, Storage>, Rows> bias;
    constexpr output<"y", Rows> y;
    // a prologue (RMSNorm) over the input and an epilogue (bias, SiLU) over the rows
    check_all_ways(y = silu(w * rmsnorm<1e-5f>(x, g) + bias));
}

// A decoder layer (D 96, 6 query heads over 2 KV heads of 16, FFN 160: multiples of 32, so the block formats hold
// it) with its matrices stored as Weights and its caches as Cache, at several positions under every strategy.
template <class Weights, class Cache>
void check_layer_storage() {
    using layer = examples::decoder_layer::decoder<96, 6, 2, 16, 160, 24, 10000.0f, 1e-5f, Weights, Cache>;
    verify_options o;
    o.low = -0.1f;
    o.high = 0.1f;
    for (const char* name : {"x", "k_cache", "v_cache"}) o.ranges[name] = {-1.0f, 1.0f};
    for (const char* name : {"attn_norm", "ffn_norm"}) o.ranges[name] = {0.5f, 1.5f};
    const auto a = vkfuse_test::check_steps<strategy::per_op>(layer::program, o, {0, 1, 7, 23});
    const auto b = vkfuse_test::check_steps<strategy::fused>(layer::program, o, {0, 1, 7, 23});
    const auto c = vkfuse_test::check_steps<strategy::single_dispatch>(layer::program, o, {0, 1, 7, 23});
    CHECK(vkfuse_test::distance(a, b) < 1e-5);
    CHECK(vkfuse_test::distance(b, c) < 1e-5);
}

} // namespace

TEST_CASE("f16 and bf16 weights: vectorised rows, rows not a multiple of 4, vectors in prologue and epilogue") {
    check_matvec_storage<f16, 129, 256>();
    check_matvec_storage<bf16, 129, 256>();
    check_matvec_storage<f16, 7, 298>();   // 298 = 4k + 2: element loads, two halves of a word
    check_matvec_storage<bf16, 33, 301>();  // odd row length: rows start mid-word
}

TEST_CASE("q8_0 and q4_0 weights: GGUF blocks, half of them starting mid-word") {
    check_matvec_storage<q8_0, 129, 256>();
    check_matvec_storage<q4_0, 129, 256>();
    check_matvec_storage<q8_0, 5, 32>();  // one block per row
    check_matvec_storage<q4_0, 65, 96>();  // three blocks per row: odd block counts
}

TEST_CASE("an embedding table stored as bf16, q8_0 and q4_0 feeds a matvec prologue") {
    constexpr uint_param<"pos"> token;
    constexpr weight_of<"e16", bf16, 301, 64> e16;
    constexpr weight_of<"e8", q8_0, 301, 64> e8;
    constexpr weight_of<"e4", q4_0, 301, 64> e4;
    constexpr weight<"w", 40, 64> w;
    constexpr output<"y", 40> y;
    for (const std::uint32_t t : {0u, 150u, 300u}) {
        INFO("token " << t);
        const auto expression = (y = w * (embedding(e16, token) + embedding(e8, token) * embedding(e4, token)));
        for (const bool native : {true, false}) {
            program prog(vkfuse_test::context(), expression, program_options{.native_storage = native});
            const verify_report r = verify(prog, expression, {}, {{"pos", t}});
            INFO((native ? "native: " : "words: ") << r.summary());
            CHECK(r.ok());
        }
    }
    check_validation_clean();
}

TEST_CASE("an f16 KV cache: appends round to nearest even, attention reads the rounded values") {
    constexpr uint_param<"pos"> pos;
    constexpr input<"q", 48> q;
    constexpr input<"k", 16> k;
    constexpr input<"v", 16> v;
    constexpr state_of<"k_cache", f16, 40, 16> kc;
    constexpr state_of<"v_cache", f16, 40, 16> vc;
    constexpr output<"y", 48> y;
    constexpr auto program = (y = attention<6, 2>(q, append(kc, k, pos), append(vc, v, pos), pos));
    // scores of about +-100: an attention that skipped the softmax's maximum would overflow
    verify_options large;
    large.ranges["q"] = {-12.0f, 12.0f};
    large.ranges["k"] = {-12.0f, 12.0f};
    for (const bool native : {true, false}) {
        INFO((native ? "native" : "words"));
        vkfuse::program<std::remove_cvref_t<decltype(program)>> prog(vkfuse_test::context(),
                                                                     program_options{.native_storage = native});
        reference::bindings host = randomize(prog, large);
        for (const std::uint32_t p : {0u, 1u, 17u, 39u}) {
            prog.set_index("pos", p);
            host.indices["pos"] = p;
            const verify_report r = check(prog, program, host);
            INFO("position " << p << ": " << r.summary());
            CHECK(r.ok());
        }
    }
    check_validation_clean();
}

TEST_CASE("a decoder layer with bf16 weights and f16 caches agrees with Eigen under every strategy") {
    check_layer_storage<bf16, f16>();
}

TEST_CASE("a decoder layer with q8_0 and q4_0 weights agrees with Eigen under every strategy") {
    // block formats under RoPE's paired rows, a prologue (the norms) and epilogues (residuals, SwiGLU)
    check_layer_storage<q8_0, f32>();
    check_layer_storage<q4_0, f32>();
}

TEST_CASE("uploads convert, downloads decode, and upload_encoded takes a checkpoint's bytes as they are") {
    constexpr input<"x", 64> x;
    constexpr weight_of<"w", bf16, 3, 64> w;
    constexpr weight_of<"wq", q4_0, 3, 64> wq;
    constexpr output<"y", 3> y;
    program prog(vkfuse_test::context(), y = w * x + wq * x);
    std::vector<float> values(3 * 64);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.01f * static_cast<float>(i) - 0.9f;
    prog.upload("w", values);
    const std::vector<float> back = prog.download("w");  // bf16: what the values rounded to
    for (std::size_t i = 0; i < values.size(); ++i)
        CHECK(back[i] == formats::to_f32(formats::to_bf16(values[i])));
    // the same values as bf16 bytes, quantised to q4_0 on the way in, equal quantising the f32 values directly?
    // Not in general (bf16 rounding comes first); so compare with quantising the bf16 values.
    const std::vector<std::byte> as_bf16 = formats::encode(values, formats::weight_format::bf16, 3, 64);
    prog.upload_encoded("wq", as_bf16, formats::weight_format::bf16);
    const std::vector<float> quantised = prog.download("wq");
    const std::vector<float> expected =
        formats::decode(formats::encode(back, formats::weight_format::q4_0, 3, 64), formats::weight_format::q4_0, 3, 64);
    CHECK(quantised == expected);
    CHECK_THROWS_AS(prog.upload_encoded("wq", std::span(as_bf16).first(10), formats::weight_format::bf16),
                    vkfuse::usage_error);
    check_validation_clean();
}
