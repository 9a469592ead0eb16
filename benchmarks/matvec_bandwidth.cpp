// benchmarks/matvec_bandwidth.cpp — how fast a matvec streams its weights, for every storage format and the sizes
// that matter, against a copy kernel measured in the same run (benchmarks/matvec_bandwidth.hpp says why).
//
//     matvec_bandwidth [--formats f32,f16,bf16,q8_0,q4_0] [--runs 200] [--words] [--lanes L] [--json FILE|DIR]
//
// The roof: a shader copying 16-byte words of random data between two buffers as large as a binding allows (up to
// 256 MB each), its bandwidth counted as bytes read plus bytes written; a matvec's is its weight bytes per run over
// its time (the vectors it reads are a few KB). Every matvec is verified against Eigen before it is timed.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include <harness/harness.hpp>

#include "matvec_bandwidth.hpp"

namespace {

namespace harness = benchmarks::harness;
namespace vk = vkfuse::vulkan;

constexpr const char* copy_glsl = R"(#version 450
layout(local_size_x = 256) in;
layout(set = 0, binding = 0, std430) readonly restrict buffer Source { uvec4 source[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer Target { uvec4 target[]; };
layout(push_constant) uniform Count { uint words; } count;
void main() {
    for (uint i = gl_GlobalInvocationID.x; i < count.words; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x)
        target[i] = source[i];
}
)";

struct copy_result {
    std::uint64_t bytes = 0;  // of one buffer
    std::vector<double> gpu_us;
    bool verified = false;
};

// Copies between two buffers of up to 256 MB; the median GPU time gives the device's copy bandwidth.
copy_result measure_copy(vk::context& ctx, int runs) {
    copy_result r;
    r.bytes = std::min<std::uint64_t>(std::uint64_t{256} << 20, ctx.device().max_storage_buffer_range) & ~std::uint64_t{15};
    vk::buffer source(ctx, r.bytes), target(ctx, r.bytes);
    // Random words, not a fill: a GPU may compress memory that holds a repeated pattern, and stream it faster than
    // the weights of a model.
    std::vector<std::uint32_t> words_in(r.bytes / 4);
    std::uint64_t z = 0x9e3779b97f4a7c15ull;
    for (std::uint32_t& w : words_in) {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        w = static_cast<std::uint32_t>(z >> 32);
    }
    source.upload(std::as_bytes(std::span<const std::uint32_t>(words_in)));
    target.fill(0u);
    vk::kernel_spec spec;
    spec.label = "matvec_bandwidth/copy";
    spec.glsl = copy_glsl;
    spec.binding_count = 2;
    spec.push_constant_bytes = 4;
    spec.workgroup_size = 256;
    vk::kernel copy(ctx, spec);
    const auto words = static_cast<std::uint32_t>(r.bytes / 16);
    const std::uint32_t groups = std::min<std::uint32_t>((words + 255) / 256, ctx.device().max_workgroup_count[0]);
    vk::sequence seq(ctx, {vk::dispatch{&copy, {&source, &target}, {groups, 1, 1}, vk::pack_push_constants(words)}});
    seq.run();
    r.verified = target.download<std::uint32_t>() == words_in;
    for (double warm_us = 0; warm_us < 5e5;) warm_us += seq.run().wall_ns / 1000.0;  // clocks up, as for the products
    for (int i = 0; i < runs; ++i) r.gpu_us.push_back(seq.run().gpu_ns / 1000.0);
    return r;
}

std::vector<std::string> split(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream in(list);
    for (std::string item; std::getline(in, item, ',');) out.push_back(item);
    return out;
}

} // namespace

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

    const std::vector<std::string> chosen = split(formats);
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

    const copy_result copy = measure_copy(ctx, std::max(cli.runs(), 20));
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
                                     {"fits", r.fits},       {"verified", r.verified}, {"rel_l2", r.rel_l2},
                                     {"lanes", r.lanes},     {"workgroups", r.workgroups}};
        if (!r.fits) {
            std::printf("%-6s %15s %-26s %10.1f  needs more than one binding on this device: not measured\n",
                        r.format.c_str(), shape, r.variant.c_str(), r.weight_bytes / 1e6);
        } else if (!r.verified) {
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
