// benchmarks/harness/output.hpp — the two files every benchmark writes: JSON for machines, TSV for the plots.
//
// Both files come from one `report`, so they always sit side by side (same name, .json and .tsv), both open with the
// same metadata, and the JSON is written by nlohmann-json rather than by hand (the hand-written writers wrote NaN as a
// bare `nan`, which no JSON parser accepts, and did not escape device names).
//
// The JSON is {"benchmark": ..., "metadata": {...}, then the benchmark's own keys}. The TSV is '#' lines (metadata,
// then the benchmark's notes, then the column names) and one tab-separated row per result; the column names are a
// comment so that gnuplot, which skips '#' lines, reads every remaining line as data.
#pragma once

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <concepts>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "args.hpp"
#include "metadata.hpp"

namespace benchmarks::harness {

// "llvmpipe (LLVM 15.0.6, 256 bits)" -> "llvmpipe-llvm-15-0-6-256-bits": a device name as part of a file name.
inline std::string slug(std::string_view name) {
    std::string out;
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u))
            out += static_cast<char>(std::tolower(u));
        else if (!out.empty() && out.back() != '-')
            out += '-';
    }
    while (!out.empty() && out.back() == '-') out.pop_back();
    return out.empty() ? "device" : out;
}

struct output_paths {
    std::filesystem::path json, tsv;
};

// --json names a file, or a folder for the default name <benchmark>-<device slug>.json: a folder that exists, or any
// path ending in '/' (so a remote run can write into a folder that is not there yet).
inline output_paths resolve_output(const std::string& target, std::string_view benchmark, std::string_view device) {
    std::filesystem::path json(target.empty() ? std::string(default_results_folder) : target);
    const bool folder = target.empty() || target.back() == '/' || std::filesystem::is_directory(json);
    if (folder) json /= std::string(benchmark) + "-" + slug(device) + ".json";
    std::filesystem::path tsv = json;
    tsv.replace_extension(".tsv");
    return {json, tsv};
}

// Six significant digits, as the plots and a reader need; NaN as gnuplot spells it.
inline std::string tsv_cell(double v) {
    if (std::isnan(v)) return "NaN";
    char text[40];
    std::snprintf(text, sizeof text, "%.6g", v);
    return text;
}
template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
inline std::string tsv_cell(T v) {
    return std::to_string(v);
}
inline std::string tsv_cell(std::string_view text) { return std::string(text); }

class tsv_table {
public:
    explicit tsv_table(std::vector<std::string> columns) : columns_(std::move(columns)) {}

    // A '#' line between the metadata and the column names: units, what a row is, labels the plot shows.
    void note(std::string line) { notes_.push_back(std::move(line)); }

    // One cell per column, in order: numbers and text.
    template <class... Cells>
    void row(const Cells&... cells) {
        if (sizeof...(cells) != columns_.size())
            throw std::logic_error("tsv row of " + std::to_string(sizeof...(cells)) + " cells for " +
                                   std::to_string(columns_.size()) + " columns");
        std::vector<std::string> text{tsv_cell(cells)...};
        rows_.push_back(std::move(text));
    }

    void write(const std::filesystem::path& path, const std::vector<std::string>& preamble) const {
        std::ofstream file(path);
        for (const std::string& line : preamble) file << "# " << line << '\n';
        for (const std::string& line : notes_) file << "# " << line << '\n';
        file << "# ";
        join(file, columns_);
        for (const std::vector<std::string>& cells : rows_) join(file, cells);
        if (!file) throw std::runtime_error("could not write " + path.string());
    }

private:
    static void join(std::ofstream& file, const std::vector<std::string>& cells) {
        for (std::size_t i = 0; i < cells.size(); ++i) file << (i ? "\t" : "") << cells[i];
        file << '\n';
    }

    std::vector<std::string> columns_;
    std::vector<std::string> notes_;
    std::vector<std::vector<std::string>> rows_;
};

// One benchmark run's results. Made when the device is open and before anything is measured (that is when the
// metadata is taken); filled in by the benchmark; write() adds the closing load average and writes both files.
class report {
public:
    report(const command_line& cli, const vkfuse::vulkan::context& ctx, std::vector<std::string> tsv_columns)
        : metadata_(cli, ctx),
          paths_(resolve_output(cli.json_target(), cli.benchmark(), ctx.device().name)),
          tsv_(std::move(tsv_columns)) {}

    const run_metadata& metadata() const noexcept { return metadata_; }
    // Known from the start, so a benchmark can print where its results will go before a long run.
    const output_paths& paths() const noexcept { return paths_; }

    // The benchmark's own part of the JSON, written after "benchmark" and "metadata" in the order it was filled.
    nlohmann::ordered_json& json() noexcept { return content_; }
    tsv_table& tsv() noexcept { return tsv_; }

    // Creates the folder if needed, writes both files, says where on stdout.
    void write() {
        metadata_.finish();
        nlohmann::ordered_json document{{"benchmark", metadata_.benchmark()}, {"metadata", metadata_.to_json()}};
        if (content_.is_object()) document.update(content_);
        if (const std::filesystem::path parent = paths_.json.parent_path(); !parent.empty())
            std::filesystem::create_directories(parent);
        {
            std::ofstream file(paths_.json);
            // A command line may carry bytes that are not UTF-8; replace them rather than lose the results.
            file << document.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
            if (!file) throw std::runtime_error("could not write " + paths_.json.string());
        }
        tsv_.write(paths_.tsv, metadata_.tsv_preamble());
        std::printf("wrote %s and %s\n", paths_.json.c_str(), paths_.tsv.c_str());
        std::fflush(stdout);
    }

private:
    run_metadata metadata_;
    output_paths paths_;
    nlohmann::ordered_json content_ = nlohmann::ordered_json::object();
    tsv_table tsv_;
};

} // namespace benchmarks::harness
