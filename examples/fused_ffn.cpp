// examples/fused_ffn.cpp — the demo: build the fused feed-forward block, run it on the best Vulkan device, check it
// against Eigen, and time it.
//
//     fused_ffn [--runs N] [--lanes L] [--matvec-threads T]   (VKFUSE_DEVICE=<index or name part> picks the device)
#include <algorithm>
#include <cstdio>
#include <exception>
#include <vector>

#include "flags.hpp"
#include "fused_ffn.hpp"

int main(int argc, char** argv) try {
    namespace ex = examples::fused_ffn;
    int runs = 50;
    vkfuse::program_options options;
    examples::flags cli("fused_ffn",
                        "The demo: Qwen2.5-0.5B's feed-forward block fused into two dispatches, checked against Eigen, "
                        "timed. VKFUSE_DEVICE (an index or part of a name) picks the device.");
    cli.add("--runs", runs, "timed runs");
    cli.add("--lanes", options.lanes, "invocations per matvec row, every kernel (a power of two; 0: chosen)");
    cli.add("--matvec-threads", options.matvec_threads,
            "invocations in flight a matvec kernel's rows widen to (GPUs)");
    if (const auto status = cli.parse(argc, argv)) return *status;

    vkfuse::context ctx;
    std::printf("device:      %s\n", ctx.device().summary().c_str());
    std::printf("layer:       y = x + W_down (silu(W_gate n) * (W_up n)), n = RMSNorm(x); D=%zu, F=%zu\n",
                ex::hidden, ex::intermediate);

    vkfuse::program prog(ctx, ex::layer, options);
    std::printf("dispatches:  %d (workgroup %u%s; invocations per row:", prog.dispatch_count,
                prog.launch().workgroup_size, prog.launch().subgroup_arithmetic ? ", subgroup arithmetic" : "");
    for (int k = 0; k < prog.dispatch_count; ++k) std::printf(" %u", prog.lanes(k));
    std::printf(")\n");

    // Correctness first: random inputs, poisoned output, Eigen in double precision.
    const vkfuse::verify_report check = vkfuse::verify(prog, ex::layer);
    std::printf("vs Eigen:    %s -> %s\n", check.summary().c_str(), check.ok() ? "OK" : "MISMATCH");
    if (!check.ok()) {
        std::printf("No time is reported for a result that disagrees with the reference.\n");
        return 1;
    }

    prog.run();  // warm-up
    std::vector<double> gpu, wall;
    for (int r = 0; r < runs; ++r) {
        const auto t = prog.run();
        gpu.push_back(t.gpu_ns / 1000.0);
        wall.push_back(t.wall_ns / 1000.0);
    }
    std::sort(gpu.begin(), gpu.end());
    std::sort(wall.begin(), wall.end());
    const auto bytes = double(2 * ex::intermediate * ex::hidden + ex::hidden * ex::intermediate + 2 * ex::hidden) * 4;
    std::printf("time/run:    %.1f us on the device (median of %d; min %.1f, max %.1f), %.1f us submit-to-done\n",
                gpu[gpu.size() / 2], runs, gpu.front(), gpu.back(), wall[wall.size() / 2]);
    std::printf("weights:     %.1f MB per run -> %.1f GB/s effective\n", bytes / 1e6,
                bytes / (gpu[gpu.size() / 2] * 1e3));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "fused_ffn: %s\n", e.what());
    return 2;
}
