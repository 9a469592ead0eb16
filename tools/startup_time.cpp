// tools/startup_time.cpp — how long a fresh process takes to get a Qwen2.5-0.5B decoder layer running, with the disk
// caches cold and warm.
//
//     startup_time [--strategy fused|per_op|both] [--repeat N]
//
// For each strategy and repetition it makes an empty directory and runs itself as a child process several times,
// each child constructing the context, the program (SPIR-V and pipelines: 5 shaders fused, 31 per_op) and running it
// once (the driver may compile at the first dispatch; lavapipe's llvmpipe does). The children differ only in which
// caches they find:
//
//   none        no disk cache at all                                       (vkfuse before its disk caches, Mesa's off)
//   cold        vkfuse's cache and Mesa's shader cache both empty          (the first start after an install)
//   warm        both filled by the cold child                              (every later start)
//   vkfuse only vkfuse's caches warm, Mesa's shader cache off              (what vkfuse's own caches buy)
//   Mesa only   vkfuse's disk cache off, Mesa's shader cache warm          (what the driver's cache alone buys)
//
// With --repeat N above 1 it ends with the median of each column.
//
// Mesa's shader cache is pointed into the same directory (MESA_SHADER_CACHE_DIR), so nothing outside it is touched;
// on other drivers the "Mesa" settings do nothing. Uploading the random weights is not counted. POSIX only (popen).
//
// Child mode, used by the above: startup_time --child fused|per_op prints one line of key=value timings.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <stdlib.h>  // mkdtemp

#include "decoder_layer.hpp"

namespace {

using layer = examples::decoder_layer::qwen25_05b;
using seconds = std::chrono::duration<double>;

template <vkfuse::strategy S>
void child(const char* strategy) {
    const auto start = std::chrono::steady_clock::now();
    vkfuse::context ctx;
    const auto context_done = std::chrono::steady_clock::now();
    vkfuse::program<layer::program_type, S> prog(ctx);
    const auto program_done = std::chrono::steady_clock::now();

    vkfuse::verify_options values;
    values.low = -0.05f;
    values.high = 0.05f;
    (void)vkfuse::randomize(prog, values);
    prog.set_index("pos", 0);
    const auto run_start = std::chrono::steady_clock::now();
    prog.run();
    const auto run_done = std::chrono::steady_clock::now();

    const vkfuse::vulkan::cache_statistics stats = ctx.cache_stats();
    const double context_s = seconds(context_done - start).count();
    const double program_s = seconds(program_done - context_done).count();
    const double run_s = seconds(run_done - run_start).count();
    std::printf("strategy=%s dispatches=%d context_s=%.3f program_s=%.3f first_run_s=%.3f total_s=%.3f "
                "spirv_compiled=%zu spirv_from_disk=%zu pipeline_cache_bytes_loaded=%zu device=\"%s\"\n",
                strategy, static_cast<int>(prog.dispatch_count), context_s, program_s, run_s,
                context_s + program_s + run_s, stats.spirv_compiled, stats.spirv_from_disk,
                stats.pipeline_cache_bytes_loaded, ctx.device().name.c_str());
}

// The value of `key=` in a child's line, or an empty string.
std::string field(const std::string& line, std::string_view key) {
    const std::string tag = " " + std::string(key) + "=";
    const std::size_t at = (" " + line).find(tag);
    if (at == std::string::npos) return {};
    const std::size_t begin = at + tag.size() - 1;
    return line.substr(begin, line.find(' ', begin) - begin);
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n == 0 ? 0.0 : n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string quoted(const std::string& text) {
    std::string out = "'";
    for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Runs this program as a child with `environment` prepended; returns its result line, or an empty string.
std::string run_child(const std::string& self, const std::string& strategy, const std::string& environment) {
    const std::string command = environment + " " + quoted(self) + " --child " + strategy + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) return {};
    std::string output, result;
    char buffer[4096];
    while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
    const int status = pclose(pipe);
    for (std::size_t begin = 0; begin < output.size();) {
        const std::size_t end = std::min(output.find('\n', begin), output.size());
        const std::string line = output.substr(begin, end - begin);
        if (line.rfind("strategy=", 0) == 0) result = line;
        begin = end + 1;
    }
    if (status != 0 || result.empty()) std::fprintf(stderr, "child failed:\n%s\n", output.c_str());
    return status == 0 ? result : std::string();
}

int parent(const std::string& self, const std::vector<std::string>& strategies, int repeat) {
    struct setting {
        const char* name;
        const char* vkfuse_cache;  // subdirectory, or "off"
        const char* mesa_cache;    // subdirectory, or nullptr: Mesa's shader cache off
    };
    // In this order: each later setting finds what the cold one wrote.
    const setting settings[] = {
        {"none", "off", nullptr},
        {"cold", "vkfuse", "mesa"},
        {"warm", "vkfuse", "mesa"},
        {"vkfuse only", "vkfuse", nullptr},
        {"Mesa only", "off", "mesa"},
    };
    const char* header = "%-8s %-12s %10s %10s %12s %10s %9s %9s\n";
    std::printf(header, "strategy", "caches", "context s", "program s", "first run s", "total s", "compiled",
                "from disk");
    // (strategy, setting) -> the seconds of each column, for the medians at the end
    std::map<std::pair<std::string, std::string>, std::vector<std::vector<double>>> times;
    const char* columns[] = {"context_s", "program_s", "first_run_s", "total_s"};
    bool ok = true;
    for (const std::string& strategy : strategies) {
        for (int r = 0; r < repeat; ++r) {
            std::string pattern = (std::filesystem::temp_directory_path() / "vkfuse-startup-XXXXXX").string();
            if (!mkdtemp(pattern.data())) {
                std::perror("mkdtemp");
                return 1;
            }
            const std::filesystem::path root = pattern;
            for (const setting& s : settings) {
                std::string environment =
                    "VKFUSE_CACHE_DIR=" +
                    quoted(std::string_view(s.vkfuse_cache) == "off" ? "off" : (root / s.vkfuse_cache).string());
                environment += s.mesa_cache
                                   ? " MESA_SHADER_CACHE_DISABLE=false MESA_SHADER_CACHE_DIR=" +
                                         quoted((root / s.mesa_cache).string())
                                   : std::string(" MESA_SHADER_CACHE_DISABLE=true");
                const std::string line = run_child(self, strategy, environment);
                if (line.empty()) {
                    ok = false;
                    continue;
                }
                std::printf("%-8s %-12s %10s %10s %12s %10s %9s %9s\n", strategy.c_str(), s.name,
                            field(line, "context_s").c_str(), field(line, "program_s").c_str(),
                            field(line, "first_run_s").c_str(), field(line, "total_s").c_str(),
                            field(line, "spirv_compiled").c_str(), field(line, "spirv_from_disk").c_str());
                std::fflush(stdout);
                auto& row = times[{strategy, s.name}];
                row.resize(std::size(columns));
                for (std::size_t c = 0; c < std::size(columns); ++c)
                    row[c].push_back(std::atof(field(line, columns[c]).c_str()));
            }
            std::error_code ignored;
            std::filesystem::remove_all(root, ignored);
        }
    }
    if (repeat > 1) {
        std::printf("\nmedians of %d:\n", repeat);
        std::printf(header, "strategy", "caches", "context s", "program s", "first run s", "total s", "", "");
        for (const std::string& strategy : strategies) {
            for (const setting& s : settings) {
                const auto found = times.find({strategy, s.name});
                if (found == times.end()) continue;
                std::printf("%-8s %-12s %10.3f %10.3f %12.3f %10.3f\n", strategy.c_str(), s.name,
                            median(found->second[0]), median(found->second[1]), median(found->second[2]),
                            median(found->second[3]));
            }
        }
    }
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 2 && args[0] == "--child") {
        if (args[1] == "fused") child<vkfuse::strategy::fused>("fused");
        else if (args[1] == "per_op") child<vkfuse::strategy::per_op>("per_op");
        else return 2;
        return 0;
    }
    std::vector<std::string> strategies{"fused", "per_op"};
    int repeat = 1;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--strategy" && i + 1 < args.size()) {
            const std::string value = args[++i];
            if (value != "both") strategies = {value};
            if (value != "both" && value != "fused" && value != "per_op") {
                std::fprintf(stderr, "--strategy takes fused, per_op or both\n");
                return 2;
            }
        } else if (args[i] == "--repeat" && i + 1 < args.size()) {
            repeat = std::max(1, std::atoi(args[++i].c_str()));
        } else {
            std::fprintf(stderr, "usage: startup_time [--strategy fused|per_op|both] [--repeat N]\n");
            return args[i] == "--help" ? 0 : 2;
        }
    }
    // /proc/self/exe rather than argv[0], which need not be a path.
    std::error_code error;
    std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
    if (error) self = std::filesystem::absolute(argv[0]);
    return parent(self.string(), strategies, repeat);
} catch (const std::exception& e) {
    std::fprintf(stderr, "startup_time: %s\n", e.what());
    return 1;
}
