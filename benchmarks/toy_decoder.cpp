// benchmarks/toy_decoder.cpp — the toy decoder of the single-kernel WebGPU fusion study, four ways:
//   1. single_dispatch        all T tokens x L layers in ONE dispatch
//   2. fused                  the fused kernels of every layer, every token, in one command buffer
//   3. per_op                 one kernel per op, every dispatch in one command buffer, one submit (the fair baseline)
//   4. per_op_each_submitted  the same dispatches, each submitted and waited on by itself (the naive baseline)
// for D in {32, 64, 128, 256} (2, 2, 2, 4 heads), L in {1, 4}, T = 64 tokens. Every variant is checked against
// Eigen (the last outputs and every KV cache over the whole sequence) before it is timed; one that disagrees gets
// no time.
//
//     toy_decoder [--dims 32,64,128,256] [--runs 10] [--json FILE|DIR] [--commit SHA]     (--help for all flags)
#include <cstdio>
#include <exception>
#include <iterator>
#include <string>
#include <vector>

#include <harness/harness.hpp>

#include "toy_decoder/run.hpp"

namespace {

namespace harness = benchmarks::harness;
using benchmarks::variant_result;

// The configurations compiled in, one translation unit each (toy_decoder/d*.cpp).
constexpr int compiled_dims[] = {32, 64, 128, 256};

std::vector<variant_result> run_dim(int dim, vkfuse::context& ctx, const benchmarks::run_options& opt) {
    switch (dim) {
    case 32: return benchmarks::run_d32(ctx, opt);
    case 64: return benchmarks::run_d64(ctx, opt);
    case 128: return benchmarks::run_d128(ctx, opt);
    case 256: return benchmarks::run_d256(ctx, opt);
    }
    return {};  // not reached: --dims accepts only compiled_dims
}

struct timed {
    harness::summary gpu_us, wall_us;  // per sequence
};

timed summarize(const variant_result& r) { return {harness::summarize(r.gpu_us), harness::summarize(r.wall_us)}; }

const variant_result* find(const std::vector<variant_result>& all, const variant_result& like, const char* variant) {
    for (const auto& r : all)
        if (r.dim == like.dim && r.layers == like.layers && r.variant == variant && r.verified) return &r;
    return nullptr;
}

} // namespace

int main(int argc, char** argv) try {
    harness::command_line cli("toy_decoder",
                              "The toy decoder of the WebGPU fusion study (64 tokens, L = 1 and 4) as single_dispatch, "
                              "fused, per_op and per_op with each dispatch submitted: each verified against Eigen "
                              "over the whole sequence, then timed.",
                              10,
                              "timed runs per variant (after 3, a variant stops early once its runs add up to 20 s)");
    std::vector<int> dims(std::begin(compiled_dims), std::end(compiled_dims));
    cli.flags()
        .add_option("--dims", dims, "model widths D to run (2 heads each, 4 at D = 256)")
        ->type_name("D,D,...")
        ->delimiter(',')
        ->check(CLI::IsMember(dims));
    if (const auto status = cli.parse(argc, argv)) return *status;
    benchmarks::run_options opt;
    opt.runs = cli.runs();

    vkfuse::context ctx;
    // The columns benchmarks/plot_toy_decoder.sh reads, by position.
    harness::report report(
        cli, ctx, {"dim", "layers", "variant", "dispatches_per_token", "wall_us_per_token", "gpu_us_per_token"});
    std::printf("device: %s\n", ctx.device().summary().c_str());
    std::vector<variant_result> all;
    for (const int d : dims) {
        std::vector<variant_result> part = run_dim(d, ctx, opt);
        all.insert(all.end(), part.begin(), part.end());
    }

    std::printf("\n%5s %2s %-22s %10s %12s %12s %10s %9s %9s  %s\n", "D", "L", "variant", "disp/token", "GPU us/seq",
                "wall us/seq", "tokens/s", "vs (3)", "vs (4)", "rel L2");
    bool all_ok = true;
    nlohmann::ordered_json results = nlohmann::ordered_json::array();
    report.tsv().note("medians per token of a 64-token sequence, microseconds; " + std::to_string(opt.runs) +
                      " runs asked per variant");
    for (const auto& r : all) {
        const double dispatches_per_token = double(r.dispatches) / r.tokens;
        nlohmann::ordered_json entry{{"dim", r.dim},
                                     {"heads", r.heads},
                                     {"layers", r.layers},
                                     {"variant", r.variant},
                                     {"dispatches_per_sequence", r.dispatches},
                                     {"dispatches_per_token", dispatches_per_token},
                                     {"verified", r.verified},
                                     {"rel_l2", r.rel_l2}};
        if (!r.verified) {
            all_ok = false;
            std::printf("%5d %2d %-22s %10.2f %12s %12s %10s %9s %9s  MISMATCH (%.2g): no time\n", r.dim, r.layers,
                        r.variant.c_str(), dispatches_per_token, "-", "-", "-", "-", "-", r.rel_l2);
            results.push_back(entry);
            continue;
        }
        const timed t = summarize(r);
        const double wall = t.wall_us.median;
        const auto* fair = find(all, r, "per_op");
        const auto* naive = find(all, r, "per_op_each_submitted");
        char vs3[32] = "-", vs4[32] = "-";
        if (fair) std::snprintf(vs3, sizeof vs3, "%.1fx", summarize(*fair).wall_us.median / wall);
        if (naive) std::snprintf(vs4, sizeof vs4, "%.1fx", summarize(*naive).wall_us.median / wall);
        std::printf("%5d %2d %-22s %10.2f %12.1f %12.1f %10.0f %9s %9s  %.2g\n", r.dim, r.layers, r.variant.c_str(),
                    dispatches_per_token, t.gpu_us.median, wall, r.tokens / (wall * 1e-6), vs3, vs4, r.rel_l2);
        entry["gpu_us_per_sequence"] = t.gpu_us;
        entry["wall_us_per_sequence"] = t.wall_us;
        entry["tokens_per_second"] = r.tokens / (wall * 1e-6);
        entry["samples_us_per_sequence"] = {{"gpu", r.gpu_us}, {"wall", r.wall_us}};
        results.push_back(entry);
        report.tsv().row(r.dim, r.layers, r.variant, dispatches_per_token, wall / r.tokens,
                         t.gpu_us.median / r.tokens);
    }
    // Where does one workgroup stop winning against the fused kernels?
    for (int layers : {1, 4}) {
        for (const auto& r : all) {
            if (r.layers != layers || r.variant != "single_dispatch" || !r.verified) continue;
            const auto* f = find(all, r, "fused");
            if (!f) continue;
            const double single = summarize(r).wall_us.median, fused = summarize(*f).wall_us.median;
            if (single > fused) {
                std::printf("L=%d: single_dispatch stops winning against fused at D=%d (%.0f vs %.0f us per "
                            "sequence)\n",
                            layers, r.dim, single, fused);
                break;
            }
        }
    }

    report.json()["tokens"] = 64;
    report.json()["settings"] = {{"dims", dims}, {"runs", opt.runs},
                                 {"max_seconds_per_variant", opt.max_seconds_per_variant}};
    report.json()["results"] = results;
    report.write();
    return all_ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "toy_decoder: %s\n", e.what());
    return 2;
}
