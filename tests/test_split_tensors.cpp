// Weights larger than one binding may hold are split over several bindings, each a buffer of its own, and read
// through a function that picks the piece (plan/records.hpp, buffer_slot::pieces). The limit is 2^27 bytes, what
// lavapipe and the least Vulkan device allow; these tests lower it for small programs (specialising
// vkfuse::binding_bytes_limit) so that every format, strategy and storage way is exercised with piece boundaries in
// the middle of rows, then run one f32 weight past lavapipe's real limit.
#include "support.hpp"

#include <vkfuse/model/decoder.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

using namespace vkfuse;
using vkfuse_test::check_validation_clean;

namespace split_test {

// An embedding lookup feeding a matvec over another table of the same shape: both split, a vectorised row loop over
// the pieces, 37 rows of 96 so that pieces end in the middle of rows.
template <class Storage>
struct head {
    static constexpr std::size_t V = 37, D = 96;
    static constexpr uint_param<"token"> token{};
    static constexpr weight_of<"embed", Storage, V, D> embed{};
    static constexpr weight_of<"lm_head", Storage, V, D> lm_head{};
    static constexpr weight<"g", D> g{};
    static constexpr output<"logits", V> logits{};
    static constexpr auto program = (logits = lm_head * rmsnorm<1e-5f>(embedding(embed, token), g));
    using type = std::remove_cvref_t<decltype(program)>;
    // a little over a quarter of a table per piece: 4 pieces each, ending inside rows (9.7 of 37 rows)
    static constexpr std::uint64_t limit = storage_bytes(Storage::code, V * D) * 27 / 100;
};

// A whole small decoder (model/decoder.hpp), every matrix split under single_dispatch, where one buffer holds every
// layer's copy of a weight and pieces cross layer boundaries, and the embedding and lm_head under every strategy.
constexpr model::sizes tiny{.layers = 2, .hidden = 40, .heads = 4, .kv_heads = 2, .head_dim = 12, .intermediate = 68,
                            .vocab = 131, .max_positions = 12, .rms_norm_eps = 1e-5f};
using tiny_model = model::decoder<tiny>;

// Past lavapipe's maxStorageBufferRange (2^27 bytes) by one row: 32769 rows of 1024 f32.
struct beyond_lavapipe {
    static constexpr uint_param<"token"> token{};
    static constexpr weight<"table", 32769, 1024> table{};
    static constexpr output<"scores", 32769> scores{};
    static constexpr auto program = (scores = table * embedding(table, token));
    using type = std::remove_cvref_t<decltype(program)>;
};

} // namespace split_test

namespace vkfuse {
template <>
inline constexpr std::uint64_t binding_bytes_limit<split_test::head<f32>::type> = split_test::head<f32>::limit;
template <>
inline constexpr std::uint64_t binding_bytes_limit<split_test::head<f16>::type> = split_test::head<f16>::limit;
template <>
inline constexpr std::uint64_t binding_bytes_limit<split_test::head<bf16>::type> = split_test::head<bf16>::limit;
template <>
inline constexpr std::uint64_t binding_bytes_limit<split_test::head<q8_0>::type> = split_test::head<q8_0>::limit;
template <>
inline constexpr std::uint64_t binding_bytes_limit<split_test::head<q4_0>::type> = split_test::head<q4_0>::limit;
// 12000 bytes: the embedding and lm_head (20960) split in two everywhere; under single_dispatch also wq, wo, w_gate,
// w_up and w_down (two layers' copies in one buffer), while wk and wv (7680 for both layers) stay whole.
template <>
inline constexpr std::uint64_t binding_bytes_limit<split_test::tiny_model::program_type> = 12000;
} // namespace vkfuse

namespace {

template <class Storage>
void check_head() {
    using h = split_test::head<Storage>;
    constexpr auto& p = plan::plan_v<typename h::type, strategy::fused>;
    const int embed = p.buffer_index("embed"), lm_head = p.buffer_index("lm_head");
    REQUIRE(embed >= 0);
    CHECK(p.buffers[embed].pieces == 4);
    CHECK(p.buffers[lm_head].pieces == 4);
    CHECK(p.buffers[embed].piece_elements % h::D != 0);  // pieces end inside rows
    CHECK(p.buffers[p.buffer_index("g")].pieces == 1);
    auto each_strategy = [&]<strategy S>(strategy_tag<S>) {
        for (const bool native : {true, false}) {
            program<typename h::type, S> prog(vkfuse_test::context(), program_options{.native_storage = native});
            for (const std::uint32_t token : {0u, 11u, 18u, 36u}) {  // first, inside and last pieces
                const verify_report r = verify(prog, h::program, {.seed = token + 1}, {{"token", token}});
                INFO(strategy_name(S) << (native ? ", native" : ", words") << ", token " << token << ": "
                                      << r.summary());
                CHECK(r.ok());
            }
        }
    };
    each_strategy(fused);
    each_strategy(per_op);
    each_strategy(single_dispatch);
    each_strategy(persistent);
    check_validation_clean();
}

} // namespace

TEST_CASE("a weight over the binding limit is split into pieces that end inside rows, in every format") {
    INFO("f32");
    check_head<f32>();
    INFO("f16");
    check_head<f16>();
    INFO("bf16");
    check_head<bf16>();
    INFO("q8_0");
    check_head<q8_0>();
    INFO("q4_0");
    check_head<q4_0>();
}

TEST_CASE("the shader of a split weight: a binding per piece and a function that picks the piece") {
    using h = split_test::head<bf16>;
    program<h::type> prog(vkfuse_test::context());
    std::string all;
    for (int s = 0; s < program<h::type>::shader_count; ++s) all += prog.glsl(s);
    CHECK(all.find("s3_lm_head") != std::string::npos);
    CHECK(all.find("piece 4 of 4") != std::string::npos);
    CHECK(all.find("float vkf_p_embed(uint e)") != std::string::npos);
    CHECK(prog.describe().find("lm_head (4 bindings)") != std::string::npos);
    // what needs the weight as one buffer says why it cannot have it
    vulkan::buffer outside(vkfuse_test::context(), h::V * h::D * 2);
    CHECK_THROWS_WITH_AS(prog.bind("embed", outside), doctest::Contains("split over 4 buffers"), usage_error);
    CHECK_THROWS_WITH_AS(prog.buffer("embed"), doctest::Contains("split over 4 buffers"), usage_error);
}

TEST_CASE_TEMPLATE("a decoder whose matrices are split, single_dispatch's across layers, agrees with Eigen", How,
                   strategy_tag<strategy::fused>, strategy_tag<strategy::per_op>,
                   strategy_tag<strategy::single_dispatch>, strategy_tag<strategy::persistent>) {
    using m = split_test::tiny_model;
    constexpr auto& p = plan::plan_v<m::program_type, How::value>;
    CHECK(p.buffers[p.buffer_index("embed")].pieces == 2);
    CHECK(p.buffers[p.buffer_index("wk")].pieces == 1);
    CHECK(p.buffers[p.buffer_index("w_gate")].pieces == (one_shader(How::value) ? 2 : 1));
    program<m::program_type, How::value> prog(vkfuse_test::context());
    reference::bindings host = randomize(prog, {.seed = 9, .ranges = {{"lm_head", {-4.0f, 4.0f}}}});
    for (const std::uint32_t pos : {0u, 1u, 2u, 3u}) {
        const std::uint32_t token = (pos * 47 + 3) % m::V;
        prog.set_index("pos", pos);
        prog.set_index("token", token);
        host.indices["pos"] = pos;
        host.indices["token"] = token;
        const verify_report r = check(prog, m::program, host);
        INFO("position " << pos << ": " << r.summary());
        CHECK(r.ok());
        // uploads and downloads cross the pieces: what went in comes back
        if (pos == 0) CHECK(prog.download("w_down") == host.buffers.at("w_down"));
    }
    check_validation_clean();
}

TEST_CASE("a weight larger than lavapipe's maxStorageBufferRange runs, split at the default limit") {
    using b = split_test::beyond_lavapipe;
    constexpr auto& p = plan::plan_v<b::type, strategy::fused>;
    static_assert(binding_bytes_limit<b::type> == std::uint64_t{1} << 27);
    CHECK(p.buffers[p.buffer_index("table")].pieces == 2);
    program<b::type> prog(vkfuse_test::context());
    for (const std::uint32_t token : {0u, 32768u}) {  // a row in each piece
        const verify_report r = verify(prog, b::program, {.seed = 4}, {{"token", token}});
        INFO("token " << token << ": " << r.summary());
        CHECK(r.ok());
    }
    check_validation_clean();
}
