// Layer stacks and steps: stack<L>(x, y, layer) plans and compiles the layer once and runs it per layer with that
// layer's weights and caches; steps(...) chains programs through named buffers. Checked against Eigen evaluating the
// same stack layer by layer, against the same layers written out one by one with numbered weights, and for
// constant planning cost: the plan of 2 layers and of 40 is the same plan.
#include "support.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

using namespace vkfuse;
using vkfuse_test::check_validation_clean;

namespace {

// A Llama-style layer at awkward sizes: GQA (5 query heads over 1 KV head... and 6 over 3 below), rows not a
// multiple of the workgroup, a model width not a multiple of 4.
template <std::size_t D, std::size_t H, std::size_t KV, std::size_t HD, std::size_t F, std::size_t T>
struct llama_layer {
    static constexpr uint_param<"pos"> pos{};
    static constexpr input<"x", D> x{};
    static constexpr output<"y", D> y{};
    static constexpr weight<"attn_norm", D> attn_norm{};
    static constexpr weight<"wq", H * HD, D> wq{};
    static constexpr weight<"wk", KV * HD, D> wk{};
    static constexpr weight<"wv", KV * HD, D> wv{};
    static constexpr weight<"wo", D, H * HD> wo{};
    static constexpr weight<"ffn_norm", D> ffn_norm{};
    static constexpr weight<"w_gate", F, D> w_gate{};
    static constexpr weight<"w_up", F, D> w_up{};
    static constexpr weight<"w_down", D, F> w_down{};
    static constexpr state<"k_cache", T, KV * HD> k_cache{};
    static constexpr state<"v_cache", T, KV * HD> v_cache{};

    static constexpr auto n1 = rmsnorm<1e-5f>(x, attn_norm);
    static constexpr auto q = rope<HD, 10000.0f, T>(wq * n1, pos);
    static constexpr auto k = append(k_cache, rope<HD, 10000.0f, T>(wk * n1, pos), pos);
    static constexpr auto v = append(v_cache, wv * n1, pos);
    static constexpr auto h = named<"h">(x + wo * attention<H, KV>(q, k, v, pos));
    static constexpr auto n2 = rmsnorm<1e-5f>(h, ffn_norm);
    static constexpr auto program = (y = h + w_down * swiglu(w_gate * n2, w_up * n2));
};

using small = llama_layer<62, 6, 3, 8, 90, 12>;

template <std::size_t L>
constexpr auto small_stack = stack<L>(small::x, small::y, small::program);
template <std::size_t L>
using small_stack_t = std::remove_cvref_t<decltype(small_stack<L>)>;

// A whole tiny model: token embedding, a stack of layers, the final norm, logits and the greedy token.
template <std::size_t L>
struct tiny_model {
    static constexpr std::size_t V = 75;
    static constexpr uint_param<"token"> token{};
    static constexpr weight<"embed", V, 62> embed{};
    static constexpr output<"x", 62> x_out{};
    static constexpr input<"y", 62> y_in{};
    static constexpr weight<"norm", 62> norm{};
    static constexpr weight<"lm_head", V, 62> lm_head{};
    static constexpr output<"logits", V> logits{};
    static constexpr output_of<"next", u32> next{};
    static constexpr auto scores = lm_head * rmsnorm<1e-5f>(y_in, norm);
    static constexpr auto program =
        steps(x_out = embedding(embed, token), small_stack<L>, layer_graph(logits = scores, next = argmax(scores)));
};

} // namespace

TEST_CASE("a stack plans its layer once: the plan of 2 layers is the plan of 40") {
    constexpr auto& two = plan::plan_v<small_stack_t<2>, strategy::fused>;
    constexpr auto& forty = plan::plan_v<small_stack_t<40>, strategy::fused>;
    constexpr auto& one_layer = plan::plan_v<std::remove_cvref_t<decltype(small::program)>, strategy::fused>;
    static_assert(two.kernel_count == one_layer.kernel_count && forty.kernel_count == one_layer.kernel_count);
    static_assert(two.g.size == forty.g.size && two.buffer_count == forty.buffer_count);
    static_assert(forty.layers() == 40 && forty.stack_first == 0 && forty.stack_last == forty.kernel_count);
    static_assert(glsl::source<small_stack_t<2>, 3> == glsl::source<small_stack_t<40>, 3>);
    static_assert(program<small_stack_t<40>>::dispatch_count == 40 * one_layer.kernel_count);
    // every weight and cache of the layer has a copy per layer; the carried state has its two ends
    constexpr int wq = forty.buffer_index("wq"), cache = forty.buffer_index("k_cache");
    static_assert(forty.buffers[wq].layers == 40 && forty.buffers[cache].layers == 40);
    static_assert(forty.buffers[forty.buffer_index("x")].carry == plan::buffer_slot::carry_kind::in);
    static_assert(forty.buffers[forty.buffer_index("y")].carry == plan::buffer_slot::carry_kind::out);
    static_assert(forty.buffers[forty.buffer_index("h")].layers == 1);  // a named result: the last layer's
}

TEST_CASE("a stack of 3 layers agrees with Eigen layer by layer, over several positions, under every strategy") {
    vkfuse_test::check_steps<strategy::fused>(small_stack<3>, {}, {0, 1, 2, 7});
    vkfuse_test::check_steps<strategy::per_op>(small_stack<3>, {}, {0, 1, 5});
    vkfuse_test::check_steps<strategy::single_dispatch>(small_stack<3>, {}, {0, 1, 4});
    vkfuse_test::check_steps<strategy::fused>(small_stack<1>, {}, {0, 3});
    vkfuse_test::check_steps<strategy::single_dispatch>(small_stack<1>, {}, {0, 2});
    vkfuse_test::check_steps<strategy::persistent>(small_stack<3>, {}, {0, 1, 2, 7});
    vkfuse_test::check_steps<strategy::persistent>(small_stack<1>, {}, {0, 3});
}

TEST_CASE("a stack computes what the same layers written out one by one compute") {
    // the stack, on layer-major data
    program<small_stack_t<3>> stacked(vkfuse_test::context());
    reference::bindings host = randomize(stacked, {.seed = 7});
    // the same layers as one expression of numbered weights: layer i's wq is "wq<i>", its slice of the stack's
    constexpr auto layer = [](auto i, auto x) {
        constexpr std::size_t I = decltype(i)::value;
        constexpr weight<numbered<"attn_norm", I>, 62> attn_norm;
        constexpr weight<numbered<"wq", I>, 48, 62> wq;
        constexpr weight<numbered<"wk", I>, 24, 62> wk;
        constexpr weight<numbered<"wv", I>, 24, 62> wv;
        constexpr weight<numbered<"wo", I>, 62, 48> wo;
        constexpr weight<numbered<"ffn_norm", I>, 62> ffn_norm;
        constexpr weight<numbered<"w_gate", I>, 90, 62> w_gate;
        constexpr weight<numbered<"w_up", I>, 90, 62> w_up;
        constexpr weight<numbered<"w_down", I>, 62, 90> w_down;
        constexpr state<numbered<"k_cache", I>, 12, 24> k_cache;
        constexpr state<numbered<"v_cache", I>, 12, 24> v_cache;
        constexpr uint_param<"pos"> pos;
        const auto n1 = rmsnorm<1e-5f>(x, attn_norm);
        const auto q = rope<8, 10000.0f, 12>(wq * n1, pos);
        const auto k = append(k_cache, rope<8, 10000.0f, 12>(wk * n1, pos), pos);
        const auto v = append(v_cache, wv * n1, pos);
        const auto h = x + wo * attention<6, 3>(q, k, v, pos);
        const auto n2 = rmsnorm<1e-5f>(h, ffn_norm);
        return h + w_down * swiglu(w_gate * n2, w_up * n2);
    };
    constexpr input<"x", 62> x;
    constexpr output<"y", 62> y;
    constexpr auto written_out = layer_graph(
        y = layer(std::integral_constant<std::size_t, 2>{},
                  layer(std::integral_constant<std::size_t, 1>{}, layer(std::integral_constant<std::size_t, 0>{}, x))));
    program<std::remove_cvref_t<decltype(written_out)>> numbered_layers(vkfuse_test::context());
    numbered_layers.upload("x", host.buffers.at("x"));
    for (const char* name : {"attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down"}) {
        const std::vector<float>& all = host.buffers.at(name);
        const std::size_t n = all.size() / 3;
        for (int i = 0; i < 3; ++i)
            numbered_layers.upload(std::string(name) + std::to_string(i),
                                   std::vector<float>(all.begin() + i * n, all.begin() + (i + 1) * n));
    }
    for (const std::uint32_t pos : {0u, 1u, 2u}) {
        stacked.set_index("pos", pos);
        numbered_layers.set_index("pos", pos);
        stacked.run();
        numbered_layers.run();
        const std::vector<float> a = stacked.download("y"), b = numbered_layers.download("y");
        double diff = 0, norm = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
            norm += double(b[i]) * b[i];
        }
        INFO("position " << pos);
        CHECK(std::sqrt(diff / norm) <= 1e-6);
        for (int i = 0; i < 3; ++i) {  // each layer's cache is the numbered layer's (up to rounding: other kernels)
            const std::vector<float> mine = stacked.download("v_cache", i),
                                     theirs = numbered_layers.download("v_cache" + std::to_string(i));
            double d = 0, n = 0;
            for (std::size_t j = 0; j < (pos + 1) * 24; ++j) {  // the rows written so far (randomize filled all)
                d += (double(mine[j]) - theirs[j]) * (double(mine[j]) - theirs[j]);
                n += double(theirs[j]) * theirs[j];
            }
            CHECK(std::sqrt(d / n) <= 1e-6);
        }
    }
    check_validation_clean();
}

TEST_CASE_TEMPLATE("steps: embedding, a stack of layers and the head in one run agree with Eigen", How,
                   strategy_tag<strategy::fused>, strategy_tag<strategy::per_op>,
                   strategy_tag<strategy::single_dispatch>, strategy_tag<strategy::persistent>) {
    using model = tiny_model<4>;
    program<std::remove_cvref_t<decltype(model::program)>, How::value> prog(vkfuse_test::context());
    reference::bindings host = randomize(prog, {.seed = 3, .ranges = {{"lm_head", {-4.0f, 4.0f}}}});
    for (const std::uint32_t pos : {0u, 1u, 2u}) {
        const std::uint32_t token = (pos * 31 + 5) % model::V;
        prog.set_index("pos", pos);
        prog.set_index("token", token);
        host.indices["pos"] = pos;
        host.indices["token"] = token;
        const verify_report r = check(prog, model::program, host);
        INFO("position " << pos << ": " << r.summary());
        CHECK(r.ok());
        CHECK(r.device.count("next") == 1);
    }
    check_validation_clean();
}

TEST_CASE("per-layer uploads and downloads: one layer at a time, checked") {
    program<small_stack_t<3>> prog(vkfuse_test::context());
    const std::vector<float> one(62, 0.5f);
    prog.upload("attn_norm", 2, one);
    CHECK_THROWS_WITH_AS(prog.download("attn_norm"), doctest::Contains("nothing has written it yet"), usage_error);
    for (int layer : {0, 1}) prog.upload("attn_norm", layer, one);
    CHECK(prog.download("attn_norm", 2) == one);
    CHECK(prog.download("attn_norm").size() == 3 * 62);
    CHECK_THROWS_WITH_AS(prog.upload("attn_norm", 3, one),
                         doctest::Contains("layer 3 of weight 'attn_norm' is f32[62] = 248 bytes per layer"),
                         usage_error);
    CHECK_THROWS_WITH_AS(prog.upload("attn_norm", one), doctest::Contains("every layer's, layer 0's first"),
                         usage_error);
    CHECK_THROWS_WITH_AS(prog.upload("x", 1, one), doctest::Contains("which is not per layer"), usage_error);
    // a layer never given its weights is an error at run, naming the weight
    CHECK_THROWS_WITH_AS(prog.run(), doctest::Contains("was never given data"), usage_error);
}

TEST_CASE_TEMPLATE("the greedy loop on the device: the same tokens as a loop on the host, from one submission per phase",
                   How, strategy_tag<strategy::fused>, strategy_tag<strategy::single_dispatch>,
                   strategy_tag<strategy::persistent>) {
    using model = tiny_model<3>;
    using P = program<std::remove_cvref_t<decltype(model::program)>, How::value>;
    P prog(vkfuse_test::context());
    // weights that make the argmax depend on the context: a large lm_head, so ties are unlikely
    reference::bindings host = randomize(prog, {.seed = 11, .ranges = {{"lm_head", {-6.0f, 6.0f}}, {"embed", {-2.0f, 2.0f}}}});
    const std::vector<std::uint32_t> prompt = {3, 70, 14, 41};
    constexpr std::size_t new_tokens = 6;

    // on the host: run, download the argmax, feed it back
    std::vector<std::uint32_t> expected(prompt);
    prog.reset_states();
    for (std::size_t pos = 0; pos + 1 < prompt.size() + new_tokens; ++pos) {
        prog.set_index("pos", static_cast<std::uint32_t>(pos));
        prog.set_index("token", expected[pos]);
        prog.run();
        if (pos + 1 >= prompt.size()) expected.push_back(prog.download_indices("next")[0]);
    }
    // and by Eigen, the same way
    std::vector<std::uint32_t> by_eigen(prompt);
    for (auto& [name, values] : host.buffers)
        if (name == "k_cache" || name == "v_cache") std::fill(values.begin(), values.end(), 0.0f);
    for (std::size_t pos = 0; pos + 1 < prompt.size() + new_tokens; ++pos) {
        host.indices["pos"] = static_cast<std::uint32_t>(pos);
        host.indices["token"] = by_eigen[pos];
        const auto out = reference::evaluate(model::program, host);
        if (pos + 1 >= prompt.size()) by_eigen.push_back(static_cast<std::uint32_t>(out.at("next")[0]));
    }
    CHECK(expected == by_eigen);

    decode_loop loop(prog, {.head_steps = 1u << 2});
    CHECK(loop.capacity() == 12);
    const generation g = loop.generate(prompt, new_tokens);
    CHECK(g.tokens == expected);
    CHECK(g.prefill_runs == 3);
    CHECK(g.decode_runs == 6);
    CHECK(g.recordings == 2);
    // again: the command buffers are reused, and the caches start empty again
    const generation again = loop.generate(prompt, new_tokens);
    CHECK(again.tokens == expected);
    CHECK(again.recordings == 0);
    // a shorter prompt and the logits, position by position
    std::vector<std::vector<float>> logits;
    const generation stepped = loop.generate_with_logits(std::span(prompt).first(2), 3, "logits",
                                                         [&](std::size_t, std::vector<float> l) { logits.push_back(l); });
    CHECK(logits.size() == 4);
    CHECK(stepped.tokens.size() == 5);
    CHECK_THROWS_WITH_AS(loop.generate(prompt, 9), doctest::Contains("need 13 positions, but the caches hold 12"),
                         usage_error);
    // logits that are not finite (one lm_head row of NaN) end the generation with an error naming the position,
    // instead of a plausible token: their argmax is the vocabulary's size, which the loop feeds back harmlessly
    std::vector<float> broken = host.buffers.at("lm_head");
    std::fill(broken.begin() + 5 * 62, broken.begin() + 6 * 62, std::numeric_limits<float>::quiet_NaN());
    prog.upload("lm_head", broken);
    CHECK_THROWS_WITH_AS(loop.generate(prompt, 2), doctest::Contains("the logits at position 3 are not finite"),
                         numeric_error);
    CHECK_THROWS_WITH_AS(loop.generate_with_logits(prompt, 2, "logits", [](std::size_t, std::vector<float>) {}),
                         doctest::Contains("the logits at position 3 are not finite"), numeric_error);
    check_validation_clean();
}
