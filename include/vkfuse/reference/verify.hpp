// vkfuse/reference/verify.hpp — run a program on the device and with Eigen on the same random data; compare.
//
//     auto report = vkfuse::verify(ctx, y = x + w * x);
//     report.ok();              // relative L2 error <= 1e-5 and nothing NaN
//     report.summary();         // "rel L2 3.1e-08, max abs 1.2e-07, 2 dispatches, 41.0 us"
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../vulkan/program.hpp"
#include "eval.hpp"

namespace vkfuse {

struct verify_options {
    std::uint32_t seed = 1;
    // Inputs, weights and params are drawn uniformly from [low, high] (never all zeros) ...
    float low = -1.0f, high = 1.0f;
    // ... except names listed here, which get their own range (e.g. {"x", {0.1f, 2.0f}} for log(x)).
    std::map<std::string, std::pair<float, float>, std::less<>> ranges;
};

struct verify_report {
    double rel_l2 = std::numeric_limits<double>::quiet_NaN();  // ||gpu - ref|| / ||ref||
    double max_abs = std::numeric_limits<double>::quiet_NaN();
    std::size_t non_finite = 0;    // NaN or inf outputs of the device (they fail every check)
    int dispatches = 0;
    vulkan::timing time{};
    std::vector<float> device;      // what the device computed
    std::vector<double> reference;  // what Eigen computed

    bool ok(double tolerance = 1e-5) const { return non_finite == 0 && rel_l2 <= tolerance; }
    std::string summary() const {
        char text[160];
        std::snprintf(text, sizeof text, "rel L2 %.3g, max abs %.3g, %d dispatch%s, %.1f us on the device%s", rel_l2,
                      max_abs, dispatches, dispatches == 1 ? "" : "es", time.gpu_ns / 1000.0,
                      non_finite ? ", NON-FINITE OUTPUTS" : "");
        return text;
    }
};

// Random data for every input, weight and param of `prog`, uploaded and mirrored into `host`.
template <class Program>
reference::bindings randomize(program<Program>& prog, const verify_options& o = {}) {
    using P = program<Program>;
    std::mt19937 rng(o.seed);
    reference::bindings host;
    auto range_of = [&](std::string_view name) {
        auto it = o.ranges.find(name);
        return it == o.ranges.end() ? std::pair{o.low, o.high} : it->second;
    };
    for (int b = 0; b < P::plan.buffer_count; ++b) {
        const auto& s = P::plan.buffers[b];
        if (s.slot_role == role::output) continue;
        const auto [lo, hi] = range_of(s.name.view());
        std::uniform_real_distribution<float> dist(lo, hi);
        std::vector<float> data(s.elements);
        for (float& v : data) v = dist(rng);
        prog.upload(s.name.view(), data);
        host.buffers.emplace(std::string(s.name.view()), std::move(data));
    }
    for (int i = 0; i < P::plan.param_count; ++i) {
        const auto name = P::plan.g[P::plan.params[i]].name.view();
        const auto [lo, hi] = range_of(name);
        const float v = std::uniform_real_distribution<float>(lo, hi)(rng);
        prog.set_param(name, v);
        host.params.emplace(std::string(name), v);
    }
    return host;
}

// Compares device output with the reference: relative L2 and max absolute error; NaN counts as failure.
inline void compare(verify_report& r) {
    double diff2 = 0, ref2 = 0, max_abs = 0;
    r.non_finite = 0;
    for (std::size_t i = 0; i < r.device.size(); ++i) {
        const double d = r.device[i];
        if (!std::isfinite(d)) {
            ++r.non_finite;
            continue;
        }
        const double e = d - r.reference[i];
        diff2 += e * e;
        ref2 += r.reference[i] * r.reference[i];
        max_abs = std::max(max_abs, std::abs(e));
    }
    r.max_abs = max_abs;
    r.rel_l2 = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
    if (r.non_finite) r.rel_l2 = r.max_abs = std::numeric_limits<double>::quiet_NaN();
}

// Runs an already built program on fresh random data, poisoned output first, against Eigen.
template <class Program>
verify_report verify(program<Program>& prog, const Program& expression, const verify_options& o = {}) {
    const reference::bindings host = randomize(prog, o);
    prog.poison();
    verify_report r;
    r.dispatches = program<Program>::dispatch_count;
    r.time = prog.run();
    const auto& out = program<Program>::plan.buffers[program<Program>::plan.output_buffer];
    r.device = prog.download(out.name.view());
    r.reference = reference::evaluate(expression, host);
    compare(r);
    return r;
}

// Builds the program on `ctx` and verifies it.
template <class Program>
verify_report verify(context& ctx, const Program& expression, const verify_options& o = {},
                     const program_options& po = {}) {
    program<Program> prog(ctx, po);
    return verify(prog, expression, o);
}

} // namespace vkfuse
