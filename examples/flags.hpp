// examples/flags.hpp — the examples' few numeric flags: `--name value` or `--name=value`, `--help`, and an error for
// anything else.
//
// Why not CLI11, which the benchmarks use (benchmarks/harness/): it adds about 6 s of compile time to every
// translation unit that includes it (measured with GCC 12 at -O3: an empty program with <vkfuse/vkfuse.hpp> 6.4 s,
// with <CLI/CLI.hpp> too 12.8 s), and the demo's translation unit is held to a compile-time budget
// (scripts/compile_budget.sh). Three integer flags do not need it.
//
//     examples::flags f("fused_ffn", "The demo: ...");
//     f.add("--runs", runs, "timed runs");
//     if (auto status = f.parse(argc, argv)) return *status;   // --help: 0; a mistake: 2, with a message
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace examples {

class flags {
public:
    flags(std::string program, std::string description)
        : program_(std::move(program)), description_(std::move(description)) {}

    // An unsigned integer flag, at least `least`.
    void add(std::string name, std::uint32_t& value, std::string help, std::uint32_t least = 0) {
        entries_.push_back({std::move(name), &value, std::move(help), least});
    }
    void add(std::string name, int& value, std::string help, int least = 1) {
        int_entries_.push_back({std::move(name), &value, std::move(help), least});
    }

    // Empty when the program should go on; otherwise its exit status (0 after --help, 2 after a mistake).
    std::optional<int> parse(int argc, char** argv) {
        for (int i = 1; i < argc; ++i) {
            std::string_view arg = argv[i], value;
            if (arg == "--help" || arg == "-h") {
                usage(stdout);
                return 0;
            }
            if (const auto eq = arg.find('='); eq != std::string_view::npos) {
                value = arg.substr(eq + 1);
                arg = arg.substr(0, eq);
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return fail("flag " + std::string(arg) + " needs a value");
            }
            if (!set(arg, value)) return fail("unknown flag or bad value: " + std::string(arg) + " " + std::string(value));
        }
        return std::nullopt;
    }

private:
    template <class T>
    struct entry {
        std::string name;
        T* value;
        std::string help;
        T least;
    };

    template <class T>
    static bool assign(const std::vector<entry<T>>& list, std::string_view name, std::string_view text, bool& found) {
        for (const auto& e : list) {
            if (e.name != name) continue;
            found = true;
            T v{};
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec != std::errc{} || end != text.data() + text.size() || v < e.least) return false;
            *e.value = v;
            return true;
        }
        return false;
    }

    bool set(std::string_view name, std::string_view text) {
        bool found = false;
        if (assign(entries_, name, text, found)) return true;
        if (found) return false;
        return assign(int_entries_, name, text, found);
    }

    std::optional<int> fail(const std::string& why) {
        std::fprintf(stderr, "%s: %s\n", program_.c_str(), why.c_str());
        usage(stderr);
        return 2;
    }

    void usage(std::FILE* out) const {
        std::fprintf(out, "%s\nUsage: %s [flags]\n", description_.c_str(), program_.c_str());
        for (const auto& e : int_entries_)
            std::fprintf(out, "  %-18s %s (default %d)\n", (e.name + " N").c_str(), e.help.c_str(), *e.value);
        for (const auto& e : entries_)
            std::fprintf(out, "  %-18s %s (default %u)\n", (e.name + " N").c_str(), e.help.c_str(), *e.value);
        std::fprintf(out, "  %-18s this text\n", "-h, --help");
    }

    std::string program_, description_;
    std::vector<entry<std::uint32_t>> entries_;
    std::vector<entry<int>> int_entries_;
};

} // namespace examples
