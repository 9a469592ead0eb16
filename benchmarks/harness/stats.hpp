// benchmarks/harness/stats.hpp — min, median and max of a benchmark's timed runs.
//
// Every benchmark reports its samples the same way, so the summary is computed in one place: the benchmarks used to
// disagree on the median of an even number of runs (upper middle sample in two, mean of the middle two in one).
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace benchmarks::harness {

struct summary {
    double min = std::numeric_limits<double>::quiet_NaN();
    double median = std::numeric_limits<double>::quiet_NaN();
    double max = std::numeric_limits<double>::quiet_NaN();
    std::size_t runs = 0;  // samples that went into it
};

// NaN samples are left out: a device without timestamp support reports NaN GPU times, and one such run must not
// poison the others. No samples at all gives NaN figures (written as null in JSON, NaN in TSV).
inline summary summarize(std::vector<double> samples) {
    std::erase_if(samples, [](double v) { return std::isnan(v); });
    summary s;
    s.runs = samples.size();
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    const std::size_t n = samples.size();
    s.min = samples.front();
    s.max = samples.back();
    s.median = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
    return s;
}

// The same summary in other units (ns -> µs) or per step (total / N): min, median and max scale alike.
inline summary scaled(summary s, double factor) {
    s.min *= factor;
    s.median *= factor;
    s.max *= factor;
    return s;
}

// Found by nlohmann::json through argument-dependent lookup: `json["wall_us"] = summarize(...)`.
inline void to_json(nlohmann::ordered_json& j, const summary& s) {
    j = nlohmann::ordered_json{{"min", s.min}, {"median", s.median}, {"max", s.max}, {"runs", s.runs}};
}

} // namespace benchmarks::harness
