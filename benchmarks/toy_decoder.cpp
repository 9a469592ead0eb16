// benchmarks/toy_decoder.cpp — the toy decoder of the single-kernel WebGPU fusion study, four ways:
//   1. single_dispatch        all T tokens x L layers in ONE dispatch
//   2. fused                  the fused kernels of every layer, every token, in one command buffer
//   3. per_op                 one kernel per op, every dispatch in one command buffer, one submit (the fair baseline)
//   4. per_op_each_submitted  the same dispatches, each submitted and waited on by itself (the naive baseline)
// for D in {32, 64, 128, 256} (2, 2, 2, 4 heads), L in {1, 4}, T = 64 tokens. Every variant is checked against
// Eigen (the last outputs and every KV cache over the whole sequence) before it is timed; one that disagrees gets
// no time.
//
//     toy_decoder [--dims 32,64,128,256] [--runs 10] [--json FILE|DIR] [--commit SHA]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "toy_decoder/run.hpp"

namespace {

using benchmarks::variant_result;

double median(const std::vector<double>& v) { return v.empty() ? 0 : v[v.size() / 2]; }

std::string slug(std::string s) {
    for (char& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-';
    while (s.find("--") != std::string::npos) s.erase(s.find("--"), 1);
    return s;
}

const variant_result* find(const std::vector<variant_result>& all, const variant_result& like, const char* variant) {
    for (const auto& r : all)
        if (r.dim == like.dim && r.layers == like.layers && r.variant == variant && r.verified) return &r;
    return nullptr;
}

} // namespace

int main(int argc, char** argv) try {
    std::vector<int> dims = {32, 64, 128, 256};
    benchmarks::run_options opt;
    std::string json_path, commit = "unknown";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i], value = argv[i + 1];
        if (key == "--dims") {
            dims.clear();
            std::stringstream ss(value);
            for (std::string d; std::getline(ss, d, ',');) dims.push_back(std::atoi(d.c_str()));
        } else if (key == "--runs") {
            opt.runs = std::max(1, std::atoi(value.c_str()));
        } else if (key == "--json") {
            json_path = value;
        } else if (key == "--commit") {
            commit = value;
        } else {
            std::fprintf(stderr, "toy_decoder: unknown option %s\n", key.c_str());
            return 2;
        }
    }
    vkfuse::context ctx;
    const auto& dev = ctx.device();
    std::printf("device: %s\n", dev.summary().c_str());
    std::vector<variant_result> all;
    for (int d : dims) {
        std::vector<variant_result> part = d == 32    ? benchmarks::run_d32(ctx, opt)
                                           : d == 64  ? benchmarks::run_d64(ctx, opt)
                                           : d == 128 ? benchmarks::run_d128(ctx, opt)
                                           : d == 256 ? benchmarks::run_d256(ctx, opt)
                                                      : std::vector<variant_result>{};
        all.insert(all.end(), part.begin(), part.end());
    }

    std::printf("\n%5s %2s %-22s %10s %12s %12s %10s %9s %9s  %s\n", "D", "L", "variant", "disp/token", "GPU us/seq",
                "wall us/seq", "tokens/s", "vs (3)", "vs (4)", "rel L2");
    bool all_ok = true;
    for (const auto& r : all) {
        if (!r.verified) {
            all_ok = false;
            std::printf("%5d %2d %-22s %10.2f %12s %12s %10s %9s %9s  MISMATCH (%.2g): no time\n", r.dim, r.layers,
                        r.variant.c_str(), double(r.dispatches) / r.tokens, "-", "-", "-", "-", "-", r.rel_l2);
            continue;
        }
        const auto* fair = find(all, r, "per_op");
        const auto* naive = find(all, r, "per_op_each_submitted");
        const double wall = median(r.wall_us);
        char vs3[32] = "-", vs4[32] = "-";
        if (fair) std::snprintf(vs3, sizeof vs3, "%.1fx", median(fair->wall_us) / wall);
        if (naive) std::snprintf(vs4, sizeof vs4, "%.1fx", median(naive->wall_us) / wall);
        std::printf("%5d %2d %-22s %10.2f %12.1f %12.1f %10.0f %9s %9s  %.2g\n", r.dim, r.layers, r.variant.c_str(),
                    double(r.dispatches) / r.tokens, median(r.gpu_us), wall, r.tokens / (wall * 1e-6), vs3, vs4,
                    r.rel_l2);
    }
    // Where does one workgroup stop winning against the fused kernels?
    for (int layers : {1, 4}) {
        for (const auto& r : all) {
            if (r.layers != layers || r.variant != "single_dispatch" || !r.verified) continue;
            const auto* f = find(all, r, "fused");
            if (f && median(r.wall_us) > median(f->wall_us)) {
                std::printf("L=%d: single_dispatch stops winning against fused at D=%d (%.0f vs %.0f us per sequence)\n",
                            layers, r.dim, median(r.wall_us), median(f->wall_us));
                break;
            }
        }
    }

    // JSON for machines, TSV for the plot.
    if (json_path.empty()) json_path = "benchmarks/results/";
    std::filesystem::path path(json_path);
    if (json_path.back() == '/' || std::filesystem::is_directory(path))
        path /= "toy_decoder-" + slug(dev.name) + ".json";
    std::filesystem::create_directories(path.parent_path().empty() ? "." : path.parent_path());
    std::ofstream json(path);
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    json << "{\n  \"benchmark\": \"toy_decoder\",\n  \"device\": \"" << dev.name << "\",\n  \"driver\": \""
         << dev.driver_name << " " << dev.driver_info << "\",\n  \"vulkan\": \"" << (dev.api_version >> 22) << "."
         << ((dev.api_version >> 12) & 0x3ff) << "\",\n  \"commit\": \"" << commit << "\",\n  \"date\": \"" << date
         << "\",\n  \"tokens\": 64,\n  \"results\": [\n";
    auto list = [&](const std::vector<double>& v) {
        std::string s = "{\"min\": " + std::to_string(v.empty() ? 0 : v.front()) +
                        ", \"median\": " + std::to_string(median(v)) +
                        ", \"max\": " + std::to_string(v.empty() ? 0 : v.back()) +
                        ", \"runs\": " + std::to_string(v.size()) + "}";
        return s;
    };
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& r = all[i];
        json << "    {\"dim\": " << r.dim << ", \"heads\": " << r.heads << ", \"layers\": " << r.layers
             << ", \"variant\": \"" << r.variant << "\", \"dispatches_per_sequence\": " << r.dispatches
             << ", \"dispatches_per_token\": " << double(r.dispatches) / r.tokens << ", \"verified\": "
             << (r.verified ? "true" : "false") << ", \"rel_l2\": " << r.rel_l2;
        if (r.verified)
            json << ", \"gpu_us_per_sequence\": " << list(r.gpu_us) << ", \"wall_us_per_sequence\": "
                 << list(r.wall_us) << ", \"tokens_per_second\": " << r.tokens / (median(r.wall_us) * 1e-6);
        json << "}" << (i + 1 < all.size() ? "," : "") << "\n";
    }
    json << "  ]\n}\n";
    std::filesystem::path tsv = path;
    tsv.replace_extension(".tsv");
    std::ofstream t(tsv);
    t << "# dim\tlayers\tvariant\tdispatches_per_token\twall_us_per_token\tgpu_us_per_token\n";
    for (const auto& r : all)
        if (r.verified)
            t << r.dim << '\t' << r.layers << '\t' << r.variant << '\t' << double(r.dispatches) / r.tokens << '\t'
              << median(r.wall_us) / r.tokens << '\t' << median(r.gpu_us) / r.tokens << '\n';
    std::printf("wrote %s and %s\n", path.c_str(), tsv.c_str());
    return all_ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "toy_decoder: %s\n", e.what());
    return 2;
}
