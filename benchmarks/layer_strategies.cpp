// benchmarks/layer_strategies.cpp — the Qwen2.5-0.5B-sized decoder layer (examples/decoder_layer.hpp) under each
// strategy: dispatches per layer and time per layer, every strategy verified against Eigen over several positions
// (outputs, named results, both KV caches) before it is timed; one that disagrees gets no time.
//
//     layer_strategies [--positions 8] [--runs 200] [--json FILE|DIR] [--commit SHA]
//
// Writes the JSON and, next to it, a .tsv of the medians that benchmarks/plot_layer_strategies.sh plots.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../examples/decoder_layer.hpp"

namespace {

using layer = examples::decoder_layer::qwen25_05b;

struct result {
    std::string strategy;
    int dispatches = 0;
    bool verified = false;
    double rel_l2 = 0;
    std::vector<double> gpu_us, wall_us;
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
    double spent_us = 0;
    for (int i = 0; i < runs && (i < 5 || spent_us < 20e6); ++i) {
        const auto t = prog.run();
        r.gpu_us.push_back(t.gpu_ns / 1000.0);
        r.wall_us.push_back(t.wall_ns / 1000.0);
        spent_us += t.wall_ns / 1000.0;
    }
    std::sort(r.gpu_us.begin(), r.gpu_us.end());
    std::sort(r.wall_us.begin(), r.wall_us.end());
    return r;
}

std::string stats(const std::vector<double>& v) {
    return "{\"min\": " + std::to_string(v.front()) + ", \"median\": " + std::to_string(v[v.size() / 2]) +
           ", \"max\": " + std::to_string(v.back()) + ", \"runs\": " + std::to_string(v.size()) + "}";
}

} // namespace

int main(int argc, char** argv) try {
    int positions = 8, runs = 200;
    std::string json_path = "benchmarks/results/", commit = "unknown";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i], value = argv[i + 1];
        if (key == "--positions") positions = std::max(1, std::atoi(value.c_str()));
        else if (key == "--runs") runs = std::max(1, std::atoi(value.c_str()));
        else if (key == "--json") json_path = value;
        else if (key == "--commit") commit = value;
        else {
            std::fprintf(stderr, "layer_strategies: unknown option %s\n", key.c_str());
            return 2;
        }
    }
    vkfuse::context ctx;
    const auto& dev = ctx.device();
    std::printf("device: %s\nQwen2.5-0.5B decoder layer, %d positions checked per strategy\n", dev.summary().c_str(),
                positions);
    const std::vector<result> all = {measure<vkfuse::strategy::per_op>(ctx, positions, runs),
                                     measure<vkfuse::strategy::fused>(ctx, positions, runs),
                                     measure<vkfuse::strategy::single_dispatch>(ctx, positions, runs)};
    std::printf("%-16s %10s %14s %14s %10s\n", "strategy", "dispatches", "GPU us/layer", "wall us/layer", "rel L2");
    bool ok = true;
    for (const auto& r : all) {
        if (!r.verified) {
            std::printf("%-16s %10d %14s %14s  MISMATCH: no time\n", r.strategy.c_str(), r.dispatches, "-", "-");
            ok = false;
            continue;
        }
        std::printf("%-16s %10d %14.1f %14.1f %10.2g\n", r.strategy.c_str(), r.dispatches,
                    r.gpu_us[r.gpu_us.size() / 2], r.wall_us[r.wall_us.size() / 2], r.rel_l2);
    }
    std::filesystem::path path(json_path);
    if (json_path.back() == '/' || std::filesystem::is_directory(path)) {
        std::string slug = dev.name;
        for (char& c : slug) c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-';
        path /= "layer_strategies-" + slug + ".json";
    }
    if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
    std::ofstream json(path);
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    json << "{\n  \"benchmark\": \"layer_strategies\",\n  \"device\": \"" << dev.name << "\",\n  \"driver\": \""
         << dev.driver_name << " " << dev.driver_info << "\",\n  \"commit\": \"" << commit << "\",\n  \"date\": \""
         << date << "\",\n  \"layer\": \"Qwen2.5-0.5B: D 896, 14 query heads, 2 KV heads, head_dim 64, FFN 4864\",\n"
         << "  \"positions_checked\": " << positions << ",\n  \"results\": [\n";
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& r = all[i];
        json << "    {\"strategy\": \"" << r.strategy << "\", \"dispatches\": " << r.dispatches
             << ", \"verified\": " << (r.verified ? "true" : "false") << ", \"rel_l2\": " << r.rel_l2;
        if (r.verified) json << ", \"gpu_us\": " << stats(r.gpu_us) << ", \"wall_us\": " << stats(r.wall_us);
        json << "}" << (i + 1 < all.size() ? "," : "") << "\n";
    }
    json << "  ]\n}\n";
    // and next to it the medians per strategy, for benchmarks/plot_layer_strategies.sh
    std::filesystem::path tsv_path = path;
    tsv_path.replace_extension(".tsv");
    std::ofstream tsv(tsv_path);
    tsv << "# layer_strategies, " << dev.name << ", commit " << commit << "\n"
        << "# strategy\tdispatches\twall_us\tgpu_us\twall_min\twall_max\n";
    for (const auto& r : all)
        if (r.verified)
            tsv << r.strategy << '\t' << r.dispatches << '\t' << r.wall_us[r.wall_us.size() / 2] << '\t'
                << r.gpu_us[r.gpu_us.size() / 2] << '\t' << r.wall_us.front() << '\t' << r.wall_us.back() << '\n';
    std::printf("wrote %s and %s\n", path.c_str(), tsv_path.c_str());
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "layer_strategies: %s\n", e.what());
    return 2;
}
