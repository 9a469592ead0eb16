// The persistent strategy: every kernel of the fused plan is a phase of one dispatch of many workgroups, which take
// the phases' work items in order from a counter and wait, through memory, for the phase before to finish. Checked
// against Eigen at every number of workgroups from one to more than there are items (the waiting must be right
// however the workgroups interleave), over split attention, a stack of layers and a whole model. These test cases
// also run with lavapipe on one thread and on four (tests/CMakeLists.txt): more threads than this machine has cores
// interleave the workgroups in ways two do not, which is where a missing wait showed while this was written.
#include "support.hpp"

#include "../examples/decoder_layer.hpp"

#include <vkfuse/model/decoder.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

using namespace vkfuse;
using vkfuse_test::check_validation_clean;

namespace {

verify_options layer_ranges() {
    verify_options o;
    o.ranges["attn_norm"] = {0.5f, 1.5f};
    o.ranges["ffn_norm"] = {0.5f, 1.5f};
    return o;
}

// A layer at odd sizes: width 257, 6 query heads over 2 KV heads of 10, FFN 1001, a cache of 40 rows.
using odd_layer = examples::decoder_layer::decoder<257, 6, 2, 10, 1001, 40, 10000.0f, 1e-5f>;

// A two-layer model whose caches hold 160 positions: its attention runs 3 work items per head.
constexpr model::sizes long_cache{.layers = 2, .hidden = 40, .heads = 4, .kv_heads = 2, .head_dim = 12,
                                  .intermediate = 68, .vocab = 131, .max_positions = 160, .rms_norm_eps = 1e-5f};
using long_model = model::decoder<long_cache>;

} // namespace

TEST_CASE("persistent: the plan is the fused plan's kernels as phases of one shader") {
    using P = odd_layer::program_type;
    constexpr auto& fused_plan = plan::plan_v<P, strategy::fused>;
    constexpr auto& p = plan::plan_v<P, strategy::persistent>;
    static_assert(p.shader_count() == 1);
    static_assert(p.kernel_count == fused_plan.kernel_count);
    static_assert(p.shader(0).scratch_bindings == 1);  // the work counters; this cache is too short to split
    constexpr auto& m = plan::plan_v<long_model::program_type, strategy::persistent>;
    static_assert(m.shader(0).scratch_bindings == 3);  // and a split attention's partials and counters
    static_assert(m.stacked() && m.shader_count() == 1);

    program<P, strategy::persistent> prog(vkfuse_test::context(), {.persistent_workgroups = 7});
    CHECK(prog.dispatch_count == 1);
    CHECK(prog.workgroups(0) == 7);
    program<P, strategy::fused> fused_prog(vkfuse_test::context());
    const std::uint32_t group = prog.launch().workgroup_size;
    for (int k = 0; k < p.kernel_count; ++k) {
        const plan::kernel_record& kr = p.kernels[k];
        CHECK(prog.items(k) >= 1);
        CHECK(prog.items(k) <= 7);
        if (kr.kind != plan::kernel_kind::matvec || prog.launch().matvec_threads == 0) {
            // other phases are laid out as the fused kernel is, and so is every phase on a CPU device
            CHECK(prog.lanes(k) == fused_prog.lanes(k));
            continue;
        }
        // a matvec phase's items each cover their rows in one pass, unless a row is already down to one 128-byte
        // line per invocation
        const std::uint64_t most = plan::ceil_power_of_two(kr.lanes.longest);
        const bool one_pass = std::uint64_t{prog.items(k)} * (group / prog.lanes(k)) >= kr.units;
        CHECK((one_pass || prog.lanes(k) == std::min<std::uint64_t>(kr.lanes.line, most)));
        CHECK(prog.lanes(k) <= group);
    }
    const std::string text = prog.describe();
    CHECK(text.find("persistent: 1 dispatch") != std::string::npos);
    CHECK(text.find("work items for 7 workgroups") != std::string::npos);
    // the default: a few workgroups per multiprocessor, one per hardware thread on a CPU device
    program<P, strategy::persistent> chosen(vkfuse_test::context());
    const vulkan::device_info& d = vkfuse_test::context().device();
    CHECK(chosen.workgroups(0) == (d.compute_units == 0 ? 256u : d.type == "CPU" ? d.compute_units : 4 * d.compute_units));
}

TEST_CASE("persistent: a layer agrees with Eigen at any number of workgroups, run after run") {
    // 1: one workgroup does every item; 2 and 3: fewer than a phase's items; 64 and 333: more workgroups than items,
    // most leave at once. Each program runs several positions, the last twice: the counters are back at zero.
    for (const std::uint32_t groups : {1u, 2u, 3u, 64u, 333u}) {
        program<odd_layer::program_type, strategy::persistent> prog(vkfuse_test::context(),
                                                                    {.persistent_workgroups = groups});
        reference::bindings host = randomize(prog, layer_ranges());
        for (const std::uint32_t pos : {0u, 1u, 5u, 39u, 39u}) {
            prog.set_index("pos", pos);
            host.indices["pos"] = pos;
            const verify_report r = check(prog, odd_layer::program, host);
            INFO(groups << " workgroups, position " << pos << ": " << r.summary());
            CHECK(r.ok());
        }
    }
    check_validation_clean();
}

TEST_CASE("persistent: a model with split attention over a stack, at several numbers of workgroups") {
    for (const std::uint32_t groups : {0u, 5u, 40u}) {
        program<long_model::program_type, strategy::persistent> prog(vkfuse_test::context(),
                                                                     {.persistent_workgroups = groups});
        reference::bindings host = randomize(prog, {.seed = 13, .ranges = {{"lm_head", {-4.0f, 4.0f}}}});
        for (const std::uint32_t pos : {0u, 31u, 32u, 100u, 159u}) {
            const std::uint32_t token = (pos * 7 + 2) % long_model::V;
            prog.set_index("pos", pos);
            prog.set_index("token", token);
            host.indices["pos"] = pos;
            host.indices["token"] = token;
            const verify_report r = check(prog, long_model::program, host);
            INFO(groups << " workgroups (0: the default), position " << pos << ": " << r.summary());
            CHECK(r.ok());
        }
    }
    check_validation_clean();
}

namespace {
// A two-layer model in bf16 at sizes whose rows divide by 8 (a matvec reads 8 weights per 16-byte load) and by 4 only
// (4 per load), with a cache long enough to split attention.
constexpr model::sizes wide_rows{.layers = 2, .hidden = 48, .heads = 4, .kv_heads = 2, .head_dim = 12,
                                 .intermediate = 84, .vocab = 97, .max_positions = 80, .rms_norm_eps = 1e-5f};
using wide_model = model::decoder<wide_rows, bf16>;
} // namespace

TEST_CASE("persistent: both schedules, with and without prefetching and staged inputs, agree with Eigen") {
    // assigned: item g is workgroup g % N's once every workgroup has arrived at the door. lavapipe runs at most as
    // many workgroups at once as it has threads (at most 32): a census when the program is made finds how many, and
    // the launch shrinks to them (333 never all arrive). The counter's schedule is not fitted on a CPU device.
    const bool llvmpipe = vkfuse_test::context().device().driver_name == "llvmpipe";
    struct variant {
        persistent_schedule schedule;
        bool prefetch, stage;
        std::uint32_t groups;
    };
    using enum persistent_schedule;
    for (const variant v : {variant{assigned, true, true, 333}, variant{assigned, false, false, 3},
                            variant{assigned, true, false, 2}, variant{assigned, false, true, 1},
                            variant{taken, true, true, 3}, variant{taken, false, false, 333}}) {
        const program_options o{.persistent_workgroups = v.groups, .schedule = v.schedule,
                                .prefetch_weights = v.prefetch, .stage_inputs = v.stage};
        const std::string what = std::string(v.schedule == assigned ? "assigned" : "taken") +
                                 (v.prefetch ? ", prefetching" : "") + (v.stage ? ", staged inputs" : "") + ", " +
                                 std::to_string(v.groups) + " workgroups asked for";
        program<odd_layer::program_type, strategy::persistent> layer(vkfuse_test::context(), o);
        INFO(what << ", " << layer.workgroups(0) << " launched");
        CHECK(layer.launch().assigned == (v.schedule == assigned));
        CHECK(layer.launch().prefetch == v.prefetch);
        CHECK(layer.launch().stage_inputs == v.stage);  // lavapipe has the 32 KiB they need
        CHECK(layer.workgroups(0) <= v.groups);
        if (llvmpipe && v.schedule == assigned) CHECK(layer.workgroups(0) <= 32u);
        if (llvmpipe && v.schedule == taken) CHECK(layer.workgroups(0) == v.groups);
        reference::bindings host = randomize(layer, layer_ranges());
        for (const std::uint32_t pos : {0u, 7u, 39u}) {
            layer.set_index("pos", pos);
            host.indices["pos"] = pos;
            const verify_report r = check(layer, odd_layer::program, host);
            INFO("layer at position " << pos << ": " << r.summary());
            CHECK(r.ok());
        }
        CHECK(layer.persistent_fallbacks() == 0);  // fitted: every run's workgroups all arrived

        program<wide_model::program_type, strategy::persistent> model(vkfuse_test::context(), o);
        host = randomize(model, {.seed = 21, .ranges = {{"lm_head", {-4.0f, 4.0f}}}});
        for (const std::uint32_t pos : {0u, 33u, 79u}) {
            const std::uint32_t token = (pos * 5 + 1) % wide_model::V;
            model.set_index("pos", pos);
            model.set_index("token", token);
            host.indices["pos"] = pos;
            host.indices["token"] = token;
            const verify_report r = check(model, wide_model::program, host);
            INFO("bf16 model at position " << pos << ": " << r.summary());
            CHECK(r.ok());
        }
    }
    check_validation_clean();
}

TEST_CASE("matvec rows loaded 1 to 4 steps at a time agree with Eigen: scalar, vec4 and bf16 rows, fused and persistent") {
    // Four lanes a row: rows of 257 and 1001 scalars, 48 and 84 bf16 weights (eights and vec4s), so that every unroll
    // ends some rows part way through a trip.
    for (const std::uint32_t unroll : {1u, 2u, 3u, 4u}) {
        const program_options o{.lanes = 4, .matvec_unroll = unroll};
        program<odd_layer::program_type, strategy::fused> fused(vkfuse_test::context(), o);
        CHECK(fused.launch().unroll == unroll);
        reference::bindings host = randomize(fused, layer_ranges());
        host.indices["pos"] = 7;
        fused.set_index("pos", 7);
        verify_report r = check(fused, odd_layer::program, host);
        INFO("fused layer, unroll " << unroll << ": " << r.summary());
        CHECK(r.ok());
        program<wide_model::program_type, strategy::persistent> model(vkfuse_test::context(), o);
        host = randomize(model, {.seed = 23, .ranges = {{"lm_head", {-4.0f, 4.0f}}}});
        for (const char* index : {"pos", "token"}) {
            model.set_index(index, 33);
            host.indices[index] = 33;
        }
        r = check(model, wide_model::program, host);
        INFO("persistent bf16 model, unroll " << unroll << ": " << r.summary());
        CHECK(r.ok());
    }
    std::string what;
    try {
        program<odd_layer::program_type> p(vkfuse_test::context(), {.matvec_unroll = 5});
    } catch (const vkfuse::usage_error& e) {
        what = e.what();
    }
    CHECK(what.find("matvec_unroll 5 must be 1 to 4") != std::string::npos);
    check_validation_clean();
}

TEST_CASE("persistent: an assigned run whose workgroups are not all resident falls back to the counter") {
    // Not fitted to the device: lavapipe never holds 333 workgroups at once, so each run's door closes after its
    // workgroups have looked for the others, and the run takes its items from the counter, with the same results.
    const vulkan::device_info& d = vkfuse_test::context().device();
    if (d.driver_name != "llvmpipe") {
        MESSAGE("not llvmpipe (" << d.name << "): it may hold 333 workgroups at once");
        return;
    }
    program<odd_layer::program_type, strategy::persistent> layer(
        vkfuse_test::context(),
        {.persistent_workgroups = 333, .schedule = persistent_schedule::assigned, .persistent_fit = false});
    CHECK(layer.workgroups(0) == 333u);
    CHECK(layer.launch().assigned);
    reference::bindings host = randomize(layer, layer_ranges());
    for (const std::uint32_t pos : {3u, 4u}) {
        layer.set_index("pos", pos);
        host.indices["pos"] = pos;
        const verify_report r = check(layer, odd_layer::program, host);
        INFO("position " << pos << ": " << r.summary());
        CHECK(r.ok());
    }
    CHECK(layer.persistent_fallbacks() == 2);
    check_validation_clean();
}

TEST_CASE("persistent: the shader reads bf16 rows 8 weights a load, stages inputs and waits per phase instance") {
    constexpr std::string_view text = glsl::source<wide_model::program_type, 0, strategy::persistent>;
    CHECK(text.find("uvec4 p_w_gate_v8[]") != std::string_view::npos);  // the 16-byte view of a bf16 matrix
    CHECK(text.find("mat2x4 vkf_p_w_gate_8(uint o)") != std::string_view::npos);
    CHECK(text.find("j counts eights") != std::string_view::npos);  // hidden 48, intermediate 84 (by 4 only)
    CHECK(text.find("j counts vec4s") != std::string_view::npos);
    CHECK(text.find("shared vec4 vkf_x[") != std::string_view::npos);
    CHECK(text.find("vkf_wait(vkf_instance - 1u") != std::string_view::npos);
    constexpr auto& p = plan::plan_v<wide_model::program_type, strategy::persistent>;
    // embedding; two layers of q/k/v, attention, output projection, gate/up, down; logits and argmax
    static_assert(p.phase_instances() == 1 + 2 * 5 + 2);
    static_assert(p.single_shared.staged == 84);  // the widest phase input: the down projection's
}

namespace {
// 40 positions of a 64 x 32768 product in one dispatch: with one workgroup, each of its invocations makes about
// 82,000 loop trips in a run, more than llvmpipe's 65535.
constexpr uint_param<"pos"> budget_pos{};
constexpr input<"xs", 40, 32768> budget_xs{};
constexpr weight<"w", 64, 32768> budget_w{};
constexpr state<"out", 40, 64> budget_out{};
constexpr auto over_budget =
    repeat<"pos", 40>(layer_graph(append(budget_out, budget_w * embedding(budget_xs, budget_pos), budget_pos)));
} // namespace

TEST_CASE("persistent: a run that outgrows llvmpipe's loop budget is refused, not returned wrong (single_dispatch too)") {
    const vulkan::device_info& d = vkfuse_test::context().device();
    if (d.driver_name != "llvmpipe") {
        MESSAGE("not llvmpipe (" << d.name << "): no loop budget to outgrow");
        return;
    }
    // rows loaded a step a trip (matvec_unroll 1): the loops make the trips counted above, more than llvmpipe allows
    program<std::remove_cvref_t<decltype(over_budget)>, strategy::persistent> prog(
        vkfuse_test::context(), {.matvec_unroll = 1, .persistent_workgroups = 1});
    randomize(prog, {});
    CHECK_THROWS_WITH_AS(prog.run(), doctest::Contains("ended its loops early and the run's results are wrong"),
                         device_error);
    // one workgroup doing every phase in turn runs out the same way
    program<std::remove_cvref_t<decltype(over_budget)>, strategy::single_dispatch> single(vkfuse_test::context(),
                                                                                         {.matvec_unroll = 1});
    randomize(single, {});
    CHECK_THROWS_WITH_AS(single.run(), doctest::Contains("this single_dispatch program made more loop trips"),
                         device_error);
    // the same description, a dispatch per position, is within it
    const verify_report r = verify(vkfuse_test::context(), over_budget, vkfuse::fused, {});
    INFO(r.summary());
    CHECK(r.ok());
    check_validation_clean();
}

TEST_CASE("persistent: profile() says where a run's time went, phase by phase") {
    const vulkan::device_info& d = vkfuse_test::context().device();
    if (!d.shader_device_clock) {
        MESSAGE(d.name << " has no shader device clock: nothing to profile with");
        return;
    }
    program<long_model::program_type, strategy::persistent> prog(vkfuse_test::context(),
                                                                 {.persistent_workgroups = 3, .profile = true});
    CHECK_THROWS_WITH_AS(prog.profile(), doctest::Contains("nothing has run yet"), usage_error);
    reference::bindings host = randomize(prog, {.seed = 5, .ranges = {{"lm_head", {-4.0f, 4.0f}}}});
    prog.set_index("pos", 70);
    prog.set_index("token", 9);
    host.indices["pos"] = 70;
    host.indices["token"] = 9;
    const verify_report r = check(prog, long_model::program, host);  // profiling changes no result
    INFO(r.summary());
    CHECK(r.ok());
    prog.run();
    const auto p = prog.profile();
    constexpr auto& plan = decltype(prog)::plan;
    REQUIRE(p.phases.size() == static_cast<std::size_t>(plan.kernel_count));
    for (int k = 0; k < plan.kernel_count; ++k) {
        const auto& phase = p.phases[static_cast<std::size_t>(k)];
        INFO("phase " << phase.phase << ": " << phase.what);
        const bool in_stack = k >= plan.stack_first && k < plan.stack_last;
        CHECK(phase.instances == (in_stack ? long_cache.layers : 1u));
        CHECK(phase.items == phase.instances * prog.items(k));
        CHECK(phase.span_us > 0);
        CHECK(phase.work_us > 0);
        CHECK(phase.wait_us >= 0);
    }
    CHECK(p.run_us > 0);
    CHECK(p.span_us <= p.run_us * 1.0001);
    check_validation_clean();
}

TEST_CASE("profile() of fused and per_op programs times each dispatch, kernel by kernel") {
    const vulkan::device_info& d = vkfuse_test::context().device();
    if (!d.timestamps) {
        MESSAGE(d.name << " has no timestamps on its compute queue: nothing to profile with");
        return;
    }
    auto check_kernels = [&]<strategy S>(strategy_tag<S>) {
        program<long_model::program_type, S> prog(vkfuse_test::context(), {.profile = true});
        randomize(prog, {.seed = 6});
        prog.set_index("pos", 40);
        prog.set_index("token", 3);
        const vulkan::timing t = prog.run();
        const auto p = prog.profile();
        constexpr auto& plan = decltype(prog)::plan;
        REQUIRE(p.phases.size() == static_cast<std::size_t>(plan.kernel_count));
        std::uint64_t dispatches = 0;
        for (int k = 0; k < plan.kernel_count; ++k) {
            const auto& phase = p.phases[static_cast<std::size_t>(k)];
            INFO(strategy_name(S) << " kernel " << phase.phase << ": " << phase.what);
            const bool in_stack = k >= plan.stack_first && k < plan.stack_last;
            CHECK(phase.instances == (in_stack ? long_cache.layers : 1u));
            CHECK(phase.span_us >= 0);
            dispatches += phase.instances;
        }
        CHECK(dispatches == static_cast<std::uint64_t>(decltype(prog)::dispatch_count));
        CHECK(p.run_us == doctest::Approx(t.gpu_ns / 1e3));
        CHECK(p.span_us <= p.run_us * 1.0001);  // every dispatch's time, from the end of the one before
        CHECK(p.span_us >= p.run_us * 0.5);
    };
    check_kernels(fused);
    check_kernels(per_op);
    // single_dispatch is one workgroup doing every phase in turn: nothing to split by kernel
    CHECK_THROWS_WITH_AS(
        (program<odd_layer::program_type, strategy::single_dispatch>(vkfuse_test::context(), {.profile = true})),
        doctest::Contains("profile the persistent or fused program"), usage_error);
    check_validation_clean();
}
