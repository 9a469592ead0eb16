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

#include "../program/program.hpp"
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
    double rel_l2 = std::numeric_limits<double>::quiet_NaN();  // the worst over every checked result
    double max_abs = std::numeric_limits<double>::quiet_NaN();
    std::size_t non_finite = 0;    // NaN or inf outputs of the device (they fail every check)
    std::string worst;             // the result with the largest relative error
    int dispatches = 0;
    vulkan::timing time{};
    std::map<std::string, std::vector<float>, std::less<>> device;      // what the device computed, by result
    std::map<std::string, std::vector<double>, std::less<>> reference;  // what Eigen computed

    bool ok(double tolerance = 1e-5) const { return non_finite == 0 && rel_l2 <= tolerance; }
    std::string summary() const {
        char text[200];
        std::snprintf(text, sizeof text, "rel L2 %.3g (%s), max abs %.3g, %d dispatch%s, %.1f us on the device%s",
                      rel_l2, worst.c_str(), max_abs, dispatches, dispatches == 1 ? "" : "es", time.gpu_ns / 1000.0,
                      non_finite ? ", NON-FINITE OUTPUTS" : "");
        return text;
    }
};

// Random data for every input, weight and state of `prog`, uploaded and mirrored into a host copy; f32 params
// random too. Indices are not set: they are positions and tokens, which the caller chooses (set_index and
// host.indices).
// (Written against the part of a program every strategy shares, so one program type's strategies share the code.)
template <class Plan>
reference::bindings randomize(detail::program_runtime<Plan>& prog, const verify_options& o = {}) {
    const Plan& plan = prog.plan_record();
    std::mt19937 rng(o.seed);
    reference::bindings host;
    auto range_of = [&](std::string_view name) {
        auto it = o.ranges.find(name);
        return it == o.ranges.end() ? std::pair{o.low, o.high} : it->second;
    };
    for (int b = 0; b < plan.buffer_count; ++b) {
        const auto& s = plan.buffers[b];
        // outputs are computed, tables vkfuse fills, u32 buffers hold token ids the caller chooses
        if (s.slot_role == role::output || s.slot_role == role::table || s.dtype == dtype_code::u32) continue;
        const auto [lo, hi] = range_of(s.name.view());
        std::uniform_real_distribution<float> dist(lo, hi);
        std::vector<float> data(s.elements * s.layers);  // a stack's per-layer buffers: every layer's values
        for (float& v : data) v = dist(rng);
        prog.upload(s.name.view(), data);
        // Eigen evaluates what the device reads: for 16-bit and block storage, the stored values, not the drawn ones
        if (s.dtype != dtype_code::f32) data = prog.download(s.name.view());
        host.buffers.emplace(std::string(s.name.view()), std::move(data));
    }
    for (int i = 0; i < plan.param_count; ++i) {
        const auto& n = plan.g[plan.params[i]];
        if (n.dtype == dtype_code::u32) continue;
        const auto [lo, hi] = range_of(n.name.view());
        const float v = std::uniform_real_distribution<float>(lo, hi)(rng);
        prog.set_param(n.name.view(), v);
        host.params.emplace(std::string(n.name.view()), v);
    }
    return host;
}

// Adds one result's comparison to the report: relative L2 and max absolute error; NaN counts as failure.
inline void compare(verify_report& r, const std::string& name, const std::vector<float>& device,
                    const std::vector<double>& reference) {
    double diff2 = 0, ref2 = 0, max_abs = 0;
    std::size_t non_finite = 0;
    for (std::size_t i = 0; i < device.size() && i < reference.size(); ++i) {
        const double d = device[i];
        if (!std::isfinite(d)) {
            ++non_finite;
            continue;
        }
        const double e = d - reference[i];
        diff2 += e * e;
        ref2 += reference[i] * reference[i];
        max_abs = std::max(max_abs, std::abs(e));
    }
    if (device.size() != reference.size()) non_finite += 1;
    double rel = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
    if (non_finite) rel = std::numeric_limits<double>::quiet_NaN();
    r.non_finite += non_finite;
    if (r.worst.empty() || std::isnan(rel) || (!std::isnan(r.rel_l2) && rel > r.rel_l2)) {
        r.rel_l2 = rel;
        r.worst = name;
    }
    r.max_abs = std::isnan(r.max_abs) ? max_abs : std::max(r.max_abs, max_abs);
    r.device[name] = device;
    r.reference[name] = reference;
}

namespace detail {
// check()'s comparison of every output, named result and state the device holds with what Eigen computed into `host`.
template <class Plan>
void compare_results(program_runtime<Plan>& prog, const reference::bindings& host, verify_report& r) {
    const Plan& plan = prog.plan_record();
    for (int b = 0; b < plan.buffer_count; ++b) {
        const auto& s = plan.buffers[b];
        if (s.slot_role != role::output || s.temporary) continue;
        const std::string name(s.name.view());
        auto it = host.results.find(name);
        if (it == host.results.end()) continue;
        std::vector<float> device;
        if (s.dtype == dtype_code::u32) {
            for (std::uint32_t v : prog.download_indices(name)) device.push_back(static_cast<float>(v));
        } else {
            device = prog.download(name);
        }
        compare(r, name, device, it->second);
    }
    // states (KV caches) after the appends
    for (int b = 0; b < plan.buffer_count; ++b) {
        const auto& s = plan.buffers[b];
        if (s.slot_role != role::state) continue;
        const std::string name(s.name.view());
        const auto& host_state = host.buffers.find(name)->second;
        compare(r, name, prog.download(name), std::vector<double>(host_state.begin(), host_state.end()));
    }
}
} // namespace detail

// Runs a built program (its inputs already uploaded and mirrored in `host`), poisoned outputs first, and compares
// every output, named result and state with the Eigen evaluation of `expression` on `host`. States persist on both sides,
// so calling this once per position checks a decoder step by step.
// With `each_submitted`, the dispatches run as submits of their own (the naive baseline) and are checked so.
template <class Program, strategy How>
verify_report check(program<Program, How>& prog, const Program& expression, reference::bindings& host,
                    bool each_submitted = false) {
    prog.poison();
    verify_report r;
    r.dispatches = program<Program, How>::dispatch_count;
    r.time = each_submitted ? prog.run_each_submitted() : prog.run();
    host.results.clear();
    reference::evaluate(expression, host);
    detail::compare_results(prog, host, r);
    return r;
}

// Runs an already built program on fresh random data against Eigen. Indices (positions, tokens) are set to
// `indices` (default: each 0).
template <class Program, strategy How>
verify_report verify(program<Program, How>& prog, const Program& expression, const verify_options& o = {},
                     const std::map<std::string, std::uint32_t, std::less<>>& indices = {}) {
    const auto& plan = program<Program, How>::plan;
    reference::bindings host = randomize(prog, o);
    for (int i = 0; i < plan.param_count; ++i) {
        const auto& n = plan.g[plan.params[i]];
        if (n.dtype != dtype_code::u32 || i == plan.loop_param) continue;
        auto it = indices.find(n.name.view());
        const std::uint32_t v = it == indices.end() ? 0u : it->second;
        prog.set_index(n.name.view(), v);
        host.indices[std::string(n.name.view())] = v;
    }
    return check(prog, expression, host);
}

// Builds the program on `ctx` (fused) and verifies it.
template <class Program>
verify_report verify(context& ctx, const Program& expression, const verify_options& o = {},
                     const program_options& po = {}) {
    program<Program> prog(ctx, po);
    return verify(prog, expression, o);
}

// Builds the program on `ctx` with strategy S and verifies it.
template <class Program, strategy S>
verify_report verify(context& ctx, const Program& expression, strategy_tag<S>, const verify_options& o = {},
                     const program_options& po = {}) {
    program<Program, S> prog(ctx, po);
    return verify(prog, expression, o);
}

} // namespace vkfuse
