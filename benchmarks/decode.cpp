// benchmarks/decode.cpp — whole-model batch-1 decoding: time per token of Qwen2.5-0.5B- and Llama-3.2-1B-shaped
// models (random weights) under every strategy and weight format, at several context lengths, as a fraction of the
// memory-bandwidth floor measured in the same run (benchmarks/decode.hpp says how).
//
//     decode [--shapes qwen,llama] [--formats f32,f16,bf16,q8_0,q4_0]
//            [--strategies fused,per_op,single_dispatch,persistent] [--persistent-workgroups 0,264,528]
//            [--persistent-variants default,taken,assigned+noprefetch+nostage] [--profile] [--statistics]
//            [--contexts 1,256,1024] [--runs 100] [--json FILE|DIR] [--commit SHA]
//
// Per variant and context: GPU time of one run of the model (timestamps) and its wall time (submit to fence), and
// decode_loop's wall time per token when it generates 32 tokens after a prompt of that length in one submission.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <harness/harness.hpp>

#include "decode.hpp"

namespace harness = benchmarks::harness;
namespace decode = benchmarks::decode;

namespace {

std::vector<decode::result> run_one(const std::string& shape, const std::string& format, vkfuse::context& ctx,
                                    const decode::settings& s) {
    if (shape == "qwen") {
        if (format == "f32") return decode::run_qwen_f32(ctx, s);
        if (format == "f16") return decode::run_qwen_f16(ctx, s);
        if (format == "bf16") return decode::run_qwen_bf16(ctx, s);
        if (format == "q8_0") return decode::run_qwen_q8_0(ctx, s);
        return decode::run_qwen_q4_0(ctx, s);
    }
    if (format == "f32") return decode::run_llama_f32(ctx, s);
    if (format == "f16") return decode::run_llama_f16(ctx, s);
    if (format == "bf16") return decode::run_llama_bf16(ctx, s);
    if (format == "q8_0") return decode::run_llama_q8_0(ctx, s);
    return decode::run_llama_q4_0(ctx, s);
}

} // namespace

int main(int argc, char** argv) try {
    harness::command_line cli("decode",
                              "Batch-1 decoding of whole Qwen2.5-0.5B- and Llama-3.2-1B-shaped models: time per token "
                              "for every strategy, weight format and context, against the bandwidth floor.",
                              100, "timed runs per variant and context (fewer once they add up to 5 s)");
    std::vector<std::string> shapes{"qwen", "llama"};
    std::vector<std::string> formats{"bf16", "q8_0", "q4_0", "f16", "f32"};
    decode::settings s;
    cli.flags()
        .add_option("--shapes", shapes, "qwen (Qwen2.5-0.5B), llama (Llama-3.2-1B)")
        ->delimiter(',')
        ->check(CLI::IsMember({"qwen", "llama"}));
    cli.flags()
        .add_option("--formats", formats, "weight storage formats")
        ->delimiter(',')
        ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0"}));
    cli.flags()
        .add_option("--strategies", s.strategies, "strategies")
        ->delimiter(',')
        ->check(CLI::IsMember({"fused", "per_op", "single_dispatch", "persistent"}));
    cli.flags()
        .add_option("--persistent-workgroups", s.persistent_workgroups,
                    "persistent: workgroups launched, a variant each (0: the device's default)")
        ->delimiter(',');
    cli.flags()
        .add_option("--persistent-variants", s.persistent_variants,
                    "persistent: a variant each, 'default' or features joined by '+': assigned|taken, "
                    "prefetch|noprefetch|prefetch<steps>, stage|nostage, wg<n> (workgroup size), lanes<n> (invocations "
                    "per matvec row), unroll<n> (steps of a row in flight)")
        ->delimiter(',');
    cli.flags().add_flag("--profile", s.profile,
                         "also where each run's time goes, kernel by kernel (timestamps; persistent: the shader "
                         "clock); not for single_dispatch");
    cli.flags()
        .add_option("--matvec-unroll", s.matvec_unroll,
                    "steps of a matvec row each invocation loads at once, every strategy (0: the default)")
        ->check(CLI::Range(0, 4));
    cli.flags().add_flag("--statistics", s.statistics,
                         "also what the driver says of each variant's compiled shaders (registers and the like; "
                         "VK_KHR_pipeline_executable_properties, where the device has it)");
    cli.flags()
        .add_option("--contexts", s.contexts, "positions attended (1 to 1024)")
        ->delimiter(',')
        ->check(CLI::Range(1u, decode::max_context));
    if (const auto status = cli.parse(argc, argv)) return *status;
    s.runs = cli.runs();

    vkfuse::context_options context_options;
    context_options.pipeline_statistics = s.statistics;
    vkfuse::context ctx(context_options);
    if (s.statistics && !ctx.device().pipeline_statistics)
        std::printf("decode: %s does not offer VK_KHR_pipeline_executable_properties; no statistics\n",
                    ctx.device().name.c_str());
    harness::report report(cli, ctx,
                           {"shape", "format", "strategy", "context", "gpu_us_per_token", "wall_us_per_token",
                            "loop_us_per_token", "floor_us", "of_floor"});
    std::printf("device: %s\n", ctx.device().summary().c_str());
    const harness::copy_result copy = harness::measure_copy(ctx, 50);
    const harness::summary copy_us = harness::summarize(copy.gpu_us);
    const double copy_gb_s = 2.0 * static_cast<double>(copy.bytes) / (copy_us.median * 1e3);
    std::printf("copy: %.0f GB/s (%s)\n", copy_gb_s, copy.verified ? "verified" : "WRONG");

    std::vector<decode::result> all;
    for (const std::string& shape : shapes)
        for (const std::string& format : formats) {
            std::vector<decode::result> part = run_one(shape, format, ctx, s);
            all.insert(all.end(), part.begin(), part.end());
        }

    std::printf("\n%-6s %-5s %-16s %5s %7s %9s %9s %9s %9s %8s %8s\n", "shape", "fmt", "strategy", "ctx", "disp",
                "GPU us", "wall us", "loop us", "floor us", "of floor", "rel L2");
    report.tsv().note("per token, microseconds (medians); floor = (matrix + KV-cache bytes) / copy bandwidth");
    bool all_ok = copy.verified;
    nlohmann::ordered_json results = nlohmann::ordered_json::array();
    for (const decode::result& r : all) {
        const double floor_us = static_cast<double>(r.matrix_bytes + r.cache_bytes) / (copy_gb_s * 1e3);
        nlohmann::ordered_json entry{{"shape", r.shape},           {"format", r.format},
                                     {"strategy", r.strategy},     {"context", r.context},
                                     {"dispatches", r.dispatches}, {"matrix_bytes", r.matrix_bytes},
                                     {"cache_bytes", r.cache_bytes}, {"floor_us", floor_us},
                                     {"verified", r.verified},     {"rel_l2", r.rel_l2}};
        if (!r.verified) {
            all_ok = false;
            std::printf("%-6s %-5s %-16s %5u %7d  MISMATCH (logits rel L2 %.2g): no time\n", r.shape.c_str(),
                        r.format.c_str(), r.strategy.c_str(), r.context, r.dispatches, r.rel_l2);
            results.push_back(entry);
            continue;
        }
        const harness::summary gpu = harness::summarize(r.gpu_us), wall = harness::summarize(r.wall_us);
        char loop[32] = "-";
        if (r.loop_wall_us > 0) std::snprintf(loop, sizeof loop, "%.1f", r.loop_wall_us);
        std::printf("%-6s %-5s %-16s %5u %7d %9.1f %9.1f %9s %9.1f %7.1f%% %8.2g\n", r.shape.c_str(),
                    r.format.c_str(), r.strategy.c_str(), r.context, r.dispatches, gpu.median, wall.median, loop,
                    floor_us, 100.0 * floor_us / gpu.median, r.rel_l2);
        entry["gpu_us"] = gpu;
        entry["wall_us"] = wall;
        if (r.loop_wall_us > 0) entry["loop_wall_us_per_token"] = r.loop_wall_us;
        entry["of_floor"] = floor_us / gpu.median;
        if (!r.phases.empty()) {
            // where the profiled run's time went: each phase's span (all its layers), and what is left between them
            std::printf("    profile: run %.1f us\n    %5s %-44s %6s %10s %10s %10s\n", r.profiled_run_us, "phase",
                        "computes", "items", "span us", "work us", "wait us");
            nlohmann::ordered_json phases = nlohmann::ordered_json::array();
            double spans = 0;
            for (const auto& p : r.phases) {
                std::printf("    %5d %-44.44s %6llu %10.1f %10.1f %10.1f\n", p.number, p.what.c_str(),
                            static_cast<unsigned long long>(p.items), p.span_us, p.work_us, p.wait_us);
                spans += p.span_us;
                phases.push_back({{"phase", p.number},     {"computes", p.what},     {"instances", p.instances},
                                  {"items", p.items},      {"span_us", p.span_us},   {"work_us", p.work_us},
                                  {"wait_us", p.wait_us}});
            }
            std::printf("    between phases: %.1f us\n", r.profiled_run_us - spans);
            entry["profile"] = {{"run_us", r.profiled_run_us}, {"between_phases_us", r.profiled_run_us - spans},
                                {"phases", phases}};
        }
        if (r.strategy.rfind("persistent", 0) == 0) {
            entry["door_closed_runs"] = r.fallbacks;
            entry["runs"] = r.runs;
            entry["workgroups"] = r.workgroups;
            entry["schedule"] = r.assigned ? "assigned" : "taken";
            std::printf("    %u workgroups, %s\n", r.workgroups, r.assigned ? "assigned" : "taken from the counter");
            if (r.fallbacks != 0)
                std::printf("    the door closed in %u of %u runs: those took their items from the counter\n",
                            r.fallbacks, r.runs);
        }
        if (!r.statistics.empty()) {
            for (const std::string& line : r.statistics) std::printf("    %s\n", line.c_str());
            entry["pipeline_statistics"] = r.statistics;
        }
        results.push_back(entry);
        report.tsv().row(r.shape, r.format, r.strategy, r.context, gpu.median, wall.median,
                         r.loop_wall_us > 0 ? r.loop_wall_us : wall.median, floor_us, floor_us / gpu.median);
    }
    report.json()["copy"] = {{"bytes", copy.bytes}, {"gpu_us", copy_us}, {"gb_per_s", copy_gb_s},
                             {"verified", copy.verified}};
    report.json()["settings"] = {{"shapes", shapes},
                                 {"formats", formats},
                                 {"strategies", s.strategies},
                                 {"persistent_workgroups", s.persistent_workgroups},
                                 {"persistent_variants", s.persistent_variants},
                                 {"profile", s.profile},
                                 {"statistics", s.statistics},
                                 {"matvec_unroll", s.matvec_unroll},
                                 {"contexts", s.contexts},
                                 {"runs", s.runs},
                                 {"tolerance", s.tolerance}};
    report.json()["results"] = results;
    report.write();
    return all_ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "decode: %s\n", e.what());
    return 1;
}
