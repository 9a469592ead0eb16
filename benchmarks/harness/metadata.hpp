// benchmarks/harness/metadata.hpp — what every result file says about where and how it was measured.
//
// A timing means little without the device, the driver, the vkfuse commit and how busy the host was: on lavapipe
// the "GPU" is the host's own cores, so the load average explains much of the spread between runs. The benchmarks
// used to record different subsets of this; now each result file carries the same block, and the command line
// itself, so any result can be reproduced from the file alone.
#pragma once

#include <vkfuse/vulkan.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include "args.hpp"

namespace benchmarks::harness {

// 1-, 5- and 15-minute load averages, NaN where the platform reports none.
inline std::array<double, 3> load_average() {
    std::array<double, 3> load;
    load.fill(std::numeric_limits<double>::quiet_NaN());
#if defined(__unix__) || defined(__APPLE__)
    double values[3] = {0, 0, 0};
    const int got = getloadavg(values, 3);
    for (int i = 0; i < got && i < 3; ++i) load[static_cast<std::size_t>(i)] = values[i];
#endif
    return load;
}

inline std::string host_name() {
#if __has_include(<unistd.h>)
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) == 0) return name;
#endif
    return "unknown";
}

// ISO 8601 in UTC, so results from machines in different time zones sort and compare as they should.
inline std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    std::tm parts{};
#if defined(_WIN32)
    gmtime_s(&parts, &now);
#else
    gmtime_r(&now, &parts);
#endif
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return text;
}

// The command line as one string a POSIX shell reads back into the same arguments: whatever is not plainly safe is
// single-quoted.
inline std::string shell_command(const std::vector<std::string>& arguments) {
    const auto plain = [](unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("_-+=.,:/@%").find(static_cast<char>(c)) != std::string_view::npos;
    };
    std::string out;
    for (const std::string& argument : arguments) {
        if (!out.empty()) out += ' ';
        bool quote = argument.empty();
        for (const char c : argument) quote = quote || !plain(static_cast<unsigned char>(c));
        if (!quote) {
            out += argument;
            continue;
        }
        out += '\'';
        for (const char c : argument) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
        out += '\'';
    }
    return out;
}

inline std::string vulkan_version_text(std::uint32_t version) {
    return std::to_string(VK_API_VERSION_MAJOR(version)) + "." + std::to_string(VK_API_VERSION_MINOR(version)) + "." +
           std::to_string(VK_API_VERSION_PATCH(version));
}

// driverVersion is vendor-defined; NVIDIA packs 10.8.8 bits, most others follow the Vulkan version layout.
inline std::string driver_version_text(std::uint32_t vendor_id, std::uint32_t version) {
    if (vendor_id == 0x10de)
        return std::to_string(version >> 22) + "." + std::to_string((version >> 14) & 0xffu) + "." +
               std::to_string((version >> 6) & 0xffu);
    return vulkan_version_text(version);
}

// PCI vendor IDs, and Khronos' IDs for vendors without one (Mesa's software devices such as lavapipe).
inline std::string vendor_name(std::uint32_t vendor_id) {
    switch (vendor_id) {
    case 0x1002: return "AMD";
    case 0x10de: return "NVIDIA";
    case 0x8086: return "Intel";
    case 0x13b5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x106b: return "Apple";
    case 0x1010: return "Imagination";
    case 0x10005: return "Mesa";
    default: {
        char hex[16];
        std::snprintf(hex, sizeof hex, "0x%x", vendor_id);
        return hex;
    }
    }
}

// Taken when a benchmark starts (after its flags are parsed and its device is open) and completed when its results
// are written, so the load average is known on both sides of the measurements.
class run_metadata {
public:
    run_metadata(const command_line& cli, const vkfuse::vulkan::context& ctx)
        : benchmark_(cli.benchmark()),
          commit_(cli.commit()),
          commit_from_flag_(cli.commit_from_flag()),
          command_(shell_command(cli.arguments())),
          date_(utc_now()),
          host_(host_name()),
          load_before_(load_average()),
          device_(ctx.device()),
          api_in_use_(ctx.api_version()),
          validation_(ctx.validation_enabled()) {}

    void finish() { load_after_ = load_average(); }

    const std::string& benchmark() const noexcept { return benchmark_; }
    const std::string& commit() const noexcept { return commit_; }
    const std::string& date() const noexcept { return date_; }
    const std::string& command() const noexcept { return command_; }
    const vkfuse::vulkan::device_info& device() const noexcept { return device_; }
    // 1-, 5- and 15-minute load averages when the benchmark started, and when finish() was called.
    const std::array<double, 3>& load_before() const noexcept { return load_before_; }
    const std::array<double, 3>& load_after() const noexcept { return load_after_; }

    nlohmann::ordered_json to_json() const {
        using json = nlohmann::ordered_json;
        const auto loads = [](const std::array<double, 3>& l) {
            return json{{"1min", l[0]}, {"5min", l[1]}, {"15min", l[2]}};
        };
        const vkfuse::vulkan::device_info& d = device_;
        return json{
            {"vkfuse_commit", commit_},
            {"vkfuse_commit_from", commit_from_flag_ ? "--commit" : "configure time"},
            {"date", date_},
            {"command_line", command_},
            {"device",
             {{"name", d.name},
              {"type", d.type},
              {"vendor", vendor_name(d.vendor_id)},
              {"vendor_id", d.vendor_id},
              {"device_id", d.device_id},
              {"api_version", vulkan_version_text(d.api_version)},
              {"summary", d.summary()},
              {"timestamps", d.timestamps},
              {"timestamp_period_ns", d.timestamp_period_ns},
              {"subgroup_size", d.subgroup_size},
              {"max_workgroup_invocations", d.max_workgroup_invocations},
              {"max_shared_memory_bytes", d.max_shared_memory_bytes}}},
            {"driver",
             {{"name", d.driver_name},
              {"info", d.driver_info},
              {"version", driver_version_text(d.vendor_id, d.driver_version)},
              {"version_raw", d.driver_version}}},
            {"vulkan_api_version_in_use", vulkan_version_text(api_in_use_)},
            {"validation_layer", validation_},
            {"host",
             {{"name", host_},
              {"hardware_threads", std::thread::hardware_concurrency()},
              {"load_average_before", loads(load_before_)},
              {"load_average_after", loads(load_after_)}}},
        };
    }

    // The '#' lines that open every .tsv. The first one is the plots' title line; "# device:" and
    // "# vkfuse commit:" are read by benchmarks/plot_dispatch_overhead.sh.
    std::vector<std::string> tsv_preamble() const {
        return {benchmark_ + ", " + device_.name + ", commit " + commit_, "device: " + device_.summary(),
                "vkfuse commit: " + commit_, "date: " + date_ + ", host " + host_, "command: " + command_};
    }

private:
    std::string benchmark_, commit_;
    bool commit_from_flag_;
    std::string command_, date_, host_;
    std::array<double, 3> load_before_;
    static constexpr double unknown = std::numeric_limits<double>::quiet_NaN();
    std::array<double, 3> load_after_{unknown, unknown, unknown};  // until finish()
    vkfuse::vulkan::device_info device_;
    std::uint32_t api_in_use_;
    bool validation_;
};

} // namespace benchmarks::harness
