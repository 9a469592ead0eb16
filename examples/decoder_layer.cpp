// examples/decoder_layer.cpp — a Qwen2.5-0.5B-sized decoder layer, planned three ways from one description, run
// for several positions with a growing KV cache, each position checked against Eigen:
//
//     decoder_layer [--positions N] [--runs R]
//
// For each strategy it prints the dispatches per layer, the median time per layer (GPU timestamps) and the worst
// relative error over the positions. A strategy whose result disagrees with the reference gets no time.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "decoder_layer.hpp"
#include "flags.hpp"

namespace {

using layer = examples::decoder_layer::qwen25_05b;

template <vkfuse::strategy S>
bool run_strategy(vkfuse::context& ctx, int positions, int runs) {
    vkfuse::program<layer::program_type, S> prog(ctx);
    if (S == vkfuse::strategy::fused) std::printf("%s", prog.describe().c_str());
    // Weights scaled like a trained model's (std ~ 1/sqrt(fan-in)), so activations stay O(1) through the layer.
    vkfuse::verify_options o;
    o.low = -0.05f;
    o.high = 0.05f;
    o.ranges["x"] = {-1.0f, 1.0f};
    o.ranges["attn_norm"] = o.ranges["ffn_norm"] = {0.5f, 1.5f};
    o.ranges["k_cache"] = o.ranges["v_cache"] = {-1.0f, 1.0f};
    vkfuse::reference::bindings host = vkfuse::randomize(prog, o);

    double worst = 0;
    bool ok = true;
    std::vector<double> times;
    for (int pos = 0; pos < positions; ++pos) {
        prog.set_index("pos", static_cast<std::uint32_t>(pos));
        host.indices["pos"] = static_cast<std::uint32_t>(pos);
        const vkfuse::verify_report r = vkfuse::check(prog, layer::program, host);
        worst = std::max(worst, r.rel_l2);
        if (!r.ok()) {
            std::printf("  %-16s position %d: %s -> MISMATCH\n", std::string(vkfuse::strategy_name(S)).c_str(), pos,
                        r.summary().c_str());
            ok = false;
        }
    }
    if (!ok) return false;
    prog.run();  // warm-up (rewrites the last position with the same values)
    for (int r = 0; r < runs; ++r) times.push_back(prog.run().gpu_ns / 1000.0);
    std::sort(times.begin(), times.end());
    std::printf("  %-16s %4d dispatches   %10.1f us/layer (median of %d)   worst rel L2 %.2g over %d positions "
                "(y, q, attn, h, both caches)\n",
                std::string(vkfuse::strategy_name(S)).c_str(), prog.dispatch_count, times[times.size() / 2], runs,
                worst, positions);
    return true;
}

} // namespace

int main(int argc, char** argv) try {
    int positions = 6, runs = 20;
    examples::flags cli("decoder_layer",
                        "A Qwen2.5-0.5B decoder layer planned three ways (per_op, fused, single_dispatch), each "
                        "checked against Eigen position by position, then timed. VKFUSE_DEVICE picks the device.");
    cli.add("--positions", positions, "positions checked (and timed) per strategy");
    cli.add("--runs", runs, "timed runs per position");
    if (const auto status = cli.parse(argc, argv)) return *status;
    if (positions > static_cast<int>(layer::max_positions)) {
        std::fprintf(stderr, "decoder_layer: --positions %d is more than the layer's cache of %zu positions\n",
                     positions, layer::max_positions);
        return 2;
    }
    vkfuse::context ctx;
    std::printf("device: %s\n", ctx.device().summary().c_str());
    std::printf("Qwen2.5-0.5B decoder layer: D=%zu, %zu query heads, %zu KV heads, head_dim %zu, FFN %zu, cache %zu\n",
                layer::hidden, layer::heads, layer::kv_heads, layer::head_dim, layer::ffn, layer::max_positions);
    const bool ok = run_strategy<vkfuse::strategy::per_op>(ctx, positions, runs) &
                    run_strategy<vkfuse::strategy::fused>(ctx, positions, runs) &
                    run_strategy<vkfuse::strategy::single_dispatch>(ctx, positions, std::max(1, runs / 10));
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "decoder_layer: %s\n", e.what());
    return 2;
}
