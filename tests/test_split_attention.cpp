// Split attention (plan/kernels.hpp, attention_splits): under fused and per_op an attention kernel runs several
// workgroups per query head, each over a share of the positions, and the last of them to finish merges their partial
// softmaxes. Checked against Eigen at every length that changes the shares (one share up to 32 positions, then one
// more per 32 up to the kernel's splits), with scores of about +-100 so that a merge that lost a maximum overflows,
// with odd head counts, GQA and a head_dim that is not a power of two, with f16 caches, and in a stack of layers
// that shares one scratch buffer.
#include "support.hpp"

#include <vkfuse/model/decoder.hpp>

#include <cstdint>
#include <string>
#include <type_traits>

using namespace vkfuse;
using vkfuse_test::check_validation_clean;

namespace {

template <class Cache>
struct attention_program {
    static constexpr uint_param<"pos"> pos{};
    static constexpr input<"q", 6 * 12> q{};
    static constexpr input<"k", 2 * 12> k{};
    static constexpr input<"v", 2 * 12> v{};
    static constexpr state_of<"k_cache", Cache, 2048, 2 * 12> k_cache{};
    static constexpr state_of<"v_cache", Cache, 2048, 2 * 12> v_cache{};
    static constexpr output<"y", 6 * 12> y{};
    static constexpr auto program =
        (y = attention<6, 2>(q, append(k_cache, k, pos), append(v_cache, v, pos), pos));
    using type = std::remove_cvref_t<decltype(program)>;
};

template <class Cache, strategy S>
void check_lengths(std::initializer_list<std::uint32_t> positions) {
    using a = attention_program<Cache>;
    program<typename a::type, S> prog(vkfuse_test::context());
    // scores of about +-100 (12 dimensions of +-12 times +-12, over sqrt(12)): without the maxima a merge overflows
    verify_options large;
    large.ranges["q"] = {-12.0f, 12.0f};
    large.ranges["k"] = {-12.0f, 12.0f};
    large.ranges["k_cache"] = {-12.0f, 12.0f};
    reference::bindings host = randomize(prog, large);
    for (const std::uint32_t p : positions) {  // several runs of one program: the counters must be back at zero
        prog.set_index("pos", p);
        host.indices["pos"] = p;
        const verify_report r = check(prog, a::program, host);
        INFO(strategy_name(S) << ", " << positions.size() << " lengths, position " << p << ": " << r.summary());
        CHECK(r.ok());
    }
    check_validation_clean();
}

} // namespace

TEST_CASE("split attention: the plan gives a 2048-row cache 32 workgroups per head under fused and per_op") {
    using a = attention_program<f32>;
    constexpr auto& fused_plan = plan::plan_v<a::type, strategy::fused>;
    constexpr auto& per_op_plan = plan::plan_v<a::type, strategy::per_op>;
    constexpr auto& single_plan = plan::plan_v<a::type, strategy::single_dispatch>;
    static_assert(plan::attention_splits(2048) == 32 && plan::attention_splits(64) == 1 &&
                  plan::attention_splits(65) == 2 && plan::attention_splits(100000) == 32);
    auto attention_kernel = [](const auto& p) {
        for (int k = 0; k < p.kernel_count; ++k)
            if (p.kernels[k].kind == plan::kernel_kind::attention) return p.kernels[k];
        return plan::kernel_record{};
    };
    CHECK(attention_kernel(fused_plan).splits == 32);
    CHECK(attention_kernel(per_op_plan).splits == 32);
    CHECK(attention_kernel(single_plan).splits == 1);  // single_dispatch: teams inside one workgroup
    CHECK(plan::workgroups(attention_kernel(fused_plan), 256, 32) == 6 * 32);
    program<a::type> prog(vkfuse_test::context());
    CHECK(prog.describe().find("up to 32 workgroups each") != std::string::npos);
    std::string all;
    for (int s = 0; s < program<a::type>::shader_count; ++s) all += prog.glsl(s);
    CHECK(all.find("atomicAdd(vkf_arrivals[head], 1u)") != std::string::npos);
}

TEST_CASE("split attention agrees with Eigen at every length where the shares change") {
    // 1 share up to 32 positions, 2 from 33, ..., 32 from 993; 2048 positions: 32 shares of 64
    const auto lengths = {0u, 30u, 31u, 32u, 33u, 63u, 64u, 65u, 100u, 511u, 992u, 993u, 1000u, 2046u, 2047u};
    check_lengths<f32, strategy::fused>(lengths);
    check_lengths<f32, strategy::per_op>({0u, 31u, 32u, 100u, 2047u});
    check_lengths<f32, strategy::single_dispatch>({0u, 100u, 2047u});
    check_lengths<f32, strategy::persistent>({0u, 31u, 32u, 100u, 2047u});
}

TEST_CASE("split attention over f16 caches") {
    check_lengths<f16, strategy::fused>({0u, 32u, 700u, 2047u});
}

namespace {
// A small decoder whose caches hold 160 positions: 3 splits per head, one scratch shared by both layers.
constexpr model::sizes long_cache{.layers = 2, .hidden = 40, .heads = 4, .kv_heads = 2, .head_dim = 12,
                                  .intermediate = 68, .vocab = 131, .max_positions = 160, .rms_norm_eps = 1e-5f};
using long_model = model::decoder<long_cache>;
} // namespace

TEST_CASE_TEMPLATE("split attention in a stack of layers agrees with Eigen", How, strategy_tag<strategy::fused>,
                   strategy_tag<strategy::per_op>, strategy_tag<strategy::persistent>) {
    program<long_model::program_type, How::value> prog(vkfuse_test::context());
    reference::bindings host = randomize(prog, {.seed = 11, .ranges = {{"lm_head", {-4.0f, 4.0f}}}});
    for (const std::uint32_t pos : {0u, 40u, 95u, 159u}) {
        const std::uint32_t token = (pos * 7 + 2) % long_model::V;
        prog.set_index("pos", pos);
        prog.set_index("token", token);
        host.indices["pos"] = pos;
        host.indices["token"] = token;
        const verify_report r = check(prog, long_model::program, host);
        INFO("position " << pos << ": " << r.summary());
        CHECK(r.ok());
    }
    check_validation_clean();
}
