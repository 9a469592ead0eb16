// benchmarks/matvec_bandwidth.cpp — how fast a matvec streams its weights, for every storage format and the sizes
// that matter, against a copy kernel measured in the same run (benchmarks/matvec_bandwidth.hpp says why).
//
//     matvec_bandwidth [--formats f32,f16,bf16,q8_0,q4_0] [--runs 200] [--words] [--lanes L] [--json FILE|DIR]
//
// The roof: the copy kernel of harness/copy.hpp, its bandwidth counted as bytes read plus bytes written; a matvec's is
// its weight bytes per run over its time (the vectors it reads are a few KB). Every matvec is verified against Eigen before it is timed.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include <harness/harness.hpp>

#include "matvec_bandwidth.hpp"

namespace harness = benchmarks::harness;

int main(int argc, char** argv) try {
    harness::command_line cli("matvec_bandwidth",
                              "Matrix-vector products in every weight format at the sizes of Qwen2.5-0.5B and "
                              "Llama-3.2-1B, as GB/s of weights against a copy kernel in the same run.",
                              200, "timed runs per product (fewer once one product's runs add up to 10 s)");
    std::string formats = "f32,f16,bf16,q8_0,q4_0";
    bool words = false;
    std::uint32_t lanes = 0;
    cli.flags().add_option("--formats", formats, "comma-separated storage formats to measure")->type_name("LIST");
    cli.flags().add_flag("--words", words,
                         "read 16-bit and block storage as 32-bit words even where the device has 16- and 8-bit "
                         "storage access");
    cli.flags().add_option("--lanes", lanes, "invocations per matrix row, every kernel (0: vkfuse chooses)");
    if (const auto status = cli.parse(argc, argv)) return *status;

    const std::vector<std::string> chosen = harness::split(formats);
    for (const std::string& f : chosen)
        if (f != "f32" && f != "f16" && f != "bf16" && f != "q8_0" && f != "q4_0") {
            std::fprintf(stderr, "matvec_bandwidth: unknown format '%s' (f32, f16, bf16, q8_0, q4_0)\n", f.c_str());
            return 2;
        }

    vkfuse::context ctx;
    std::printf("device: %s\n", ctx.device().summary().c_str());
    // gpu_us and gb_per_s: the median run; best_*: the fastest run, what the kernel does while the clocks are up
    // (on a machine whose clocks we may not pin, the median of a few hundred microseconds-long runs moves by tens of
    // percent from one invocation to the next, the fastest much less).
    harness::report report(cli, ctx,
                           {"format", "rows", "cols", "variant", "weight_mb", "gpu_us", "gb_per_s", "of_copy",
                            "best_gpu_us", "best_gb_per_s", "best_of_copy"});

    const harness::copy_result copy = harness::measure_copy(ctx, std::max(cli.runs(), 20));
    if (!copy.verified) {
        std::fprintf(stderr, "matvec_bandwidth: the copy kernel copied wrong data; no roof, no results\n");
        return 1;
    }
    const harness::summary copy_time = harness::summarize(copy.gpu_us);
    const double copy_gb_s = 2.0 * static_cast<double>(copy.bytes) / (copy_time.median * 1e3);
    const double copy_best_gb_s = 2.0 * static_cast<double>(copy.bytes) / (copy_time.min * 1e3);
    std::printf("copy: %.1f MB each way in %.1f us (fastest %.1f): %.0f GB/s (fastest %.0f), read + written\n\n",
                copy.bytes / 1e6, copy_time.median, copy_time.min, copy_gb_s, copy_best_gb_s);

    benchmarks::matvec::settings s;
    s.runs = cli.runs();
    s.program.native_storage = !words;
    s.program.lanes = lanes;
    std::vector<benchmarks::matvec::result> all;
    for (const std::string& f : chosen) {
        auto part = f == "f32"    ? benchmarks::matvec::run_f32(ctx, s)
                    : f == "f16"  ? benchmarks::matvec::run_f16(ctx, s)
                    : f == "bf16" ? benchmarks::matvec::run_bf16(ctx, s)
                    : f == "q8_0" ? benchmarks::matvec::run_q8_0(ctx, s)
                                  : benchmarks::matvec::run_q4_0(ctx, s);
        all.insert(all.end(), part.begin(), part.end());
    }

    std::printf("%-6s %15s %-26s %10s %6s %9s %8s %8s %8s %8s\n", "format", "rows x cols", "variant", "weight MB",
                "lanes", "GPU us", "GB/s", "of copy", "fastest", "rel L2");
    bool ok = true;
    nlohmann::ordered_json results = nlohmann::ordered_json::array();
    for (const auto& r : all) {
        char shape[48];
        std::snprintf(shape, sizeof shape, "%llu x %llu", static_cast<unsigned long long>(r.rows),
                      static_cast<unsigned long long>(r.cols));
        nlohmann::ordered_json entry{{"format", r.format},  {"rows", r.rows},         {"cols", r.cols},
                                     {"variant", r.variant}, {"weight_bytes", r.weight_bytes},
                                     {"pieces", r.pieces},   {"verified", r.verified}, {"rel_l2", r.rel_l2},
                                     {"lanes", r.lanes},     {"workgroups", r.workgroups}};
        if (!r.verified) {
            ok = false;
            std::printf("%-6s %15s %-26s %10.1f  MISMATCH (%.2g): no time\n", r.format.c_str(), shape,
                        r.variant.c_str(), r.weight_bytes / 1e6, r.rel_l2);
        } else {
            const harness::summary t = harness::summarize(r.gpu_us);
            const double gb_s = static_cast<double>(r.weight_bytes) / (t.median * 1e3);
            const double best_gb_s = static_cast<double>(r.weight_bytes) / (t.min * 1e3);
            std::printf("%-6s %15s %-26s %10.1f %6u %9.2f %8.0f %7.1f%% %7.1f%% %8.2g\n", r.format.c_str(), shape,
                        r.variant.c_str(), r.weight_bytes / 1e6, r.lanes, t.median, gb_s, 100.0 * gb_s / copy_gb_s,
                        100.0 * best_gb_s / copy_best_gb_s, r.rel_l2);
            entry["gpu_us"] = t;
            entry["gb_per_s"] = gb_s;
            entry["of_copy"] = gb_s / copy_gb_s;
            entry["best_gb_per_s"] = best_gb_s;
            entry["best_of_copy"] = best_gb_s / copy_best_gb_s;
            entry["samples_us"] = r.gpu_us;
            report.tsv().row(r.format, r.rows, r.cols, r.variant, r.weight_bytes / 1e6, t.median, gb_s,
                             gb_s / copy_gb_s, t.min, best_gb_s, best_gb_s / copy_best_gb_s);
        }
        results.push_back(entry);
    }
    report.tsv().note("copy kernel: " + std::to_string(copy_gb_s) + " GB/s (read + written); of_copy = weight GB/s / "
                      "copy GB/s; storage read " + std::string(words ? "as 32-bit words" : "natively where possible"));
    report.json()["copy"] = {{"bytes_each_way", copy.bytes},
                             {"gpu_us", copy_time},
                             {"gb_per_s", copy_gb_s},
                             {"best_gb_per_s", copy_best_gb_s}};
    report.json()["settings"] = {{"runs", cli.runs()}, {"words", words}, {"lanes", lanes}};
    report.json()["results"] = results;
    report.write();
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "matvec_bandwidth: %s\n", e.what());
    return 2;
}
