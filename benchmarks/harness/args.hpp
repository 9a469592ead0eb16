// benchmarks/harness/args.hpp — the command line of every benchmark, through CLI11.
//
// Each benchmark used to walk argv by hand, each a little differently: one ran the whole benchmark when asked for
// --help, two took "--runs abc" as one run. Here the flags every benchmark shares (--runs, --json, --commit) are
// declared once; a benchmark adds its own flags to the same CLI::App before parse(), and parse() settles --help and
// every mistake before anything touches Vulkan, so asking for help never waits for a device.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

// benchmarks/CMakeLists.txt defines this for each benchmark's main source file from `git rev-parse --short HEAD`
// at configure time. Only main files include the harness, so every user of this header sees one value.
#ifndef VKFUSE_BENCHMARK_COMMIT
#define VKFUSE_BENCHMARK_COMMIT "unknown"
#endif

namespace benchmarks::harness {

// Exit status for a command line that cannot be run: the conventional status of a usage error, distinct from
// 1 (a benchmark ran and found a mismatch).
inline constexpr int usage_error_status = 2;

// Default of --json: a folder, so the file inside it is named after the benchmark and the device.
inline constexpr const char* default_results_folder = "benchmarks/results/";

class command_line {
public:
    // `runs_help` says what one run is for this benchmark; `default_runs` is its default --runs.
    command_line(std::string benchmark, std::string description, int default_runs, std::string runs_help)
        : app_(std::move(description), benchmark), benchmark_(std::move(benchmark)), runs_(default_runs) {
        // Every flag shows its default in --help, so the help text cannot drift from the code.
        app_.option_defaults()->always_capture_default();
        app_.add_option("--runs", runs_, std::move(runs_help))->type_name("N")->check(CLI::Range(1, 1'000'000));
        app_.add_option("--json", json_target_,
                        "where the JSON result goes: a file, or a folder (an existing one, or a path ending in '/') "
                        "that gets the default name " +
                            benchmark_ + "-<device>.json; a .tsv with the same name is written next to it")
            ->type_name("FILE|DIR");
        app_.add_option("--commit", commit_,
                        "vkfuse commit recorded in the results (default: HEAD of the source tree when the build "
                        "was configured)")
            ->type_name("SHA");
        app_.footer("Environment: VKFUSE_DEVICE (a device index or part of its name) picks the device; "
                    "VKFUSE_VALIDATION=1 turns on the Khronos validation layer (the timings then mean nothing).");
    }

    command_line(const command_line&) = delete;
    command_line& operator=(const command_line&) = delete;

    // Add the benchmark's own flags here, before parse().
    CLI::App& flags() { return app_; }

    // std::nullopt: go on and run. Otherwise the exit status to return from main: 0 after --help (printed on
    // stdout), usage_error_status after a mistake (CLI11's message and a pointer to --help, on stderr).
    std::optional<int> parse(int argc, const char* const* argv) {
        arguments_.assign(argv, argv + argc);
        try {
            app_.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            // App::exit prints what fits the case; its own status codes (100 and up) are not what shells expect.
            return app_.exit(e) == 0 ? 0 : usage_error_status;
        }
        commit_from_flag_ = app_.count("--commit") > 0;
        return std::nullopt;
    }

    const std::string& benchmark() const noexcept { return benchmark_; }
    int runs() const noexcept { return runs_; }
    const std::string& json_target() const noexcept { return json_target_; }
    const std::string& commit() const noexcept { return commit_; }
    // Whether the commit was given on the command line, rather than baked in when the build was configured (and
    // so possibly older than the binary, if the build was not reconfigured since).
    bool commit_from_flag() const noexcept { return commit_from_flag_; }
    // argv as given, for the record in the results.
    const std::vector<std::string>& arguments() const noexcept { return arguments_; }

private:
    CLI::App app_;
    std::string benchmark_;
    int runs_;
    std::string json_target_ = default_results_folder;
    std::string commit_ = VKFUSE_BENCHMARK_COMMIT;
    bool commit_from_flag_ = false;
    std::vector<std::string> arguments_;
};

} // namespace benchmarks::harness
