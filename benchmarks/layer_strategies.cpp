// benchmarks/layer_strategies.cpp — the Qwen2.5-0.5B-sized decoder layer (examples/decoder_layer.hpp) under each
// strategy: dispatches per layer and time per layer, every strategy verified against Eigen over several positions
// (outputs, named results, both KV caches) before it is timed; one that disagrees gets no time.
//
//     layer_strategies [--positions 8] [--runs 200] [--json FILE|DIR] [--commit SHA]     (--help for all flags)
//
// Each strategy is timed twice: at one position, and as a decode loop does it, with set_index moving the position
// before every run (wall clock from the set_index to the run's end). The positions of the second series grow, so its
// attention does more work than the first's; the wall-minus-GPU time is what the host adds per token.
//
// Writes the JSON and, next to it, a .tsv of the medians that benchmarks/plot_layer_strategies.sh plots.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <harness/harness.hpp>

#include "../examples/decoder_layer.hpp"

namespace {

namespace harness = benchmarks::harness;
using layer = examples::decoder_layer::qwen25_05b;

struct result {
    std::string strategy;
    int dispatches = 0;
    bool verified = false;
    double rel_l2 = 0;
    std::vector<double> gpu_us, wall_us;  // one per timed run, in the order they ran
    std::vector<double> decode_gpu_us, decode_wall_us;  // the same with the position set before every run
};

template <vkfuse::strategy S>
result measure(vkfuse::context& ctx, int positions, int runs) {
    result r;
    r.strategy = vkfuse::strategy_name(S);
    vkfuse::program<layer::program_type, S> prog(ctx);
    r.dispatches = prog.dispatch_count;
    vkfuse::verify_options o;  // trained-model scales: weights ~ 1/sqrt(fan-in), activations O(1)
    o.low = -0.05f;
    o.high = 0.05f;
    o.ranges["x"] = o.ranges["k_cache"] = o.ranges["v_cache"] = {-1.0f, 1.0f};
    o.ranges["attn_norm"] = o.ranges["ffn_norm"] = {0.5f, 1.5f};
    vkfuse::reference::bindings host = vkfuse::randomize(prog, o);
    r.verified = true;
    for (int pos = 0; pos < positions; ++pos) {
        prog.set_index("pos", static_cast<std::uint32_t>(pos));
        host.indices["pos"] = static_cast<std::uint32_t>(pos);
        const auto check = vkfuse::check(prog, layer::program, host);
        r.rel_l2 = std::max(r.rel_l2, check.rel_l2);
        if (!check.ok()) {
            std::fprintf(stderr, "layer_strategies %s, position %d: MISMATCH %s\n", r.strategy.c_str(), pos,
                         check.summary().c_str());
            r.verified = false;
            return r;
        }
    }
    prog.run();  // warm-up
    // At least 5 runs, then stop after --runs or 20 s, whichever comes first: a slow device still finishes.
    double spent_us = 0;
    for (int i = 0; i < runs && (i < 5 || spent_us < 20e6); ++i) {
        const auto t = prog.run();
        r.gpu_us.push_back(t.gpu_ns / 1000.0);
        r.wall_us.push_back(t.wall_ns / 1000.0);
        spent_us += t.wall_ns / 1000.0;
    }
    // a decode loop: a new position before every run, positions positions .. 255 and around again
    spent_us = 0;
    const auto limit = static_cast<int>(layer::max_positions);
    for (int i = 0; i < runs && (i < 5 || spent_us < 20e6); ++i) {
        const auto start = std::chrono::steady_clock::now();
        prog.set_index("pos", static_cast<std::uint32_t>(positions + i % (limit - positions)));
        const auto t = prog.run();
        const double wall = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
        r.decode_gpu_us.push_back(t.gpu_ns / 1000.0);
        r.decode_wall_us.push_back(wall);
        spent_us += wall;
    }
    return r;
}

} // namespace

int main(int argc, char** argv) try {
    harness::command_line cli("layer_strategies",
                              "The Qwen2.5-0.5B decoder layer (examples/decoder_layer.hpp) as per_op, fused, "
                              "single_dispatch and persistent: each verified against Eigen over several positions, "
                              "then timed.",
                              200,
                              "timed runs per strategy (after 5, a strategy stops early once its runs add up to 20 s)");
    int positions = 8;
    cli.flags()
        .add_option("--positions", positions, "positions (tokens) each strategy is checked at against Eigen")
        ->type_name("N")
        ->check(CLI::Range(1, static_cast<int>(layer::max_positions) - 1));
    if (const auto status = cli.parse(argc, argv)) return *status;

    vkfuse::context ctx;
    // The columns benchmarks/plot_layer_strategies.sh reads, by position.
    harness::report report(cli, ctx,
                           {"strategy", "dispatches", "wall_us", "gpu_us", "wall_min", "wall_max", "decode_wall_us",
                            "decode_gpu_us"});
    std::printf("device: %s\nQwen2.5-0.5B decoder layer, %d positions checked per strategy\n",
                ctx.device().summary().c_str(), positions);
    const std::vector<result> all = {measure<vkfuse::strategy::per_op>(ctx, positions, cli.runs()),
                                     measure<vkfuse::strategy::fused>(ctx, positions, cli.runs()),
                                     measure<vkfuse::strategy::single_dispatch>(ctx, positions, cli.runs()),
                                     measure<vkfuse::strategy::persistent>(ctx, positions, cli.runs())};

    std::printf("%-16s %10s %14s %14s %16s %16s %10s\n", "strategy", "dispatches", "GPU us/layer", "wall us/layer",
                "decode GPU us", "decode wall us", "rel L2");
    bool ok = true;
    nlohmann::ordered_json results = nlohmann::ordered_json::array();
    report.tsv().note("median (and for wall clock min, max) microseconds per layer and token; " +
                      std::to_string(cli.runs()) + " runs asked per strategy");
    for (const auto& r : all) {
        nlohmann::ordered_json entry{{"strategy", r.strategy},
                                     {"dispatches", r.dispatches},
                                     {"verified", r.verified},
                                     {"rel_l2", r.rel_l2}};
        if (!r.verified) {
            std::printf("%-16s %10d %14s %14s %16s %16s  MISMATCH: no time\n", r.strategy.c_str(), r.dispatches, "-",
                        "-", "-", "-");
            ok = false;
            results.push_back(entry);
            continue;
        }
        const harness::summary gpu = harness::summarize(r.gpu_us), wall = harness::summarize(r.wall_us);
        const harness::summary decode_gpu = harness::summarize(r.decode_gpu_us),
                               decode_wall = harness::summarize(r.decode_wall_us);
        std::printf("%-16s %10d %14.1f %14.1f %16.1f %16.1f %10.2g\n", r.strategy.c_str(), r.dispatches, gpu.median,
                    wall.median, decode_gpu.median, decode_wall.median, r.rel_l2);
        entry["gpu_us"] = gpu;
        entry["wall_us"] = wall;
        entry["decode_gpu_us"] = decode_gpu;
        entry["decode_wall_us"] = decode_wall;
        entry["samples_us"] = {{"gpu", r.gpu_us},
                               {"wall", r.wall_us},
                               {"decode_gpu", r.decode_gpu_us},
                               {"decode_wall", r.decode_wall_us}};
        results.push_back(entry);
        report.tsv().row(r.strategy, r.dispatches, wall.median, gpu.median, wall.min, wall.max, decode_wall.median,
                         decode_gpu.median);
    }

    report.json()["layer"] = "Qwen2.5-0.5B: D 896, 14 query heads, 2 KV heads, head_dim 64, FFN 4864";
    report.json()["settings"] = {{"positions_checked", positions}, {"runs", cli.runs()}};
    report.json()["results"] = results;
    report.write();
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "layer_strategies: %s\n", e.what());
    return 2;
}
