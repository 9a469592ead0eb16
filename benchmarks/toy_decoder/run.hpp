// benchmarks/toy_decoder/run.hpp — measuring one toy-decoder configuration four ways (see ../toy_decoder.cpp).
#pragma once

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../toy_decoder.hpp"

namespace benchmarks {

struct variant_result {
    std::string variant;          // single_dispatch, fused, per_op, per_op_each_submitted
    int dim = 0, heads = 0, layers = 0, tokens = 0;
    int dispatches = 0;           // per sequence
    bool verified = false;
    double rel_l2 = 0;
    std::vector<double> gpu_us, wall_us;  // per sequence, one per timed run, in the order they ran
};

struct run_options {
    int runs = 10;
    double max_seconds_per_variant = 20;  // fewer runs for slow variants
};

// Weights uniform in ±sqrt(2/D)·sqrt(3) (standard deviation sqrt(2/D)), LayerNorm gains near 1, small biases,
// token embeddings in ±1.
inline vkfuse::verify_options toy_ranges(std::size_t dim) {
    vkfuse::verify_options o;
    const float s = static_cast<float>(std::sqrt(2.0 / static_cast<double>(dim)) * std::sqrt(3.0));
    o.low = -s;
    o.high = s;
    o.ranges["tokens"] = {-1.0f, 1.0f};
    for (std::size_t i = 0; i < 8; ++i) {
        const std::string n = std::to_string(i);
        o.ranges["ln1_g" + n] = o.ranges["ln2_g" + n] = {0.9f, 1.1f};
        for (const char* b : {"ln1_b", "ln2_b", "bq", "bk", "bv", "bo", "b1_", "b2_"}) o.ranges[b + n] = {-0.02f, 0.02f};
    }
    return o;
}

template <class Toy, vkfuse::strategy S>
variant_result measure(vkfuse::context& ctx, const run_options& opt, bool each_submitted) {
    variant_result r;
    r.variant = each_submitted ? "per_op_each_submitted" : std::string(vkfuse::strategy_name(S));
    r.dim = static_cast<int>(Toy::dim);
    r.heads = static_cast<int>(Toy::heads);
    r.layers = static_cast<int>(Toy::layers);
    r.tokens = static_cast<int>(Toy::tokens_count);
    vkfuse::program<typename Toy::program_type, S> prog(ctx);
    r.dispatches = prog.dispatch_count;
    // Correct first: the whole sequence against Eigen, outputs and every cache. No time for a mismatch.
    vkfuse::reference::bindings host = vkfuse::randomize(prog, toy_ranges(Toy::dim));
    const vkfuse::verify_report check = vkfuse::check(prog, Toy::program, host, each_submitted);
    r.verified = check.ok();
    r.rel_l2 = check.rel_l2;
    if (!r.verified) {
        std::fprintf(stderr, "toy_decoder D=%d L=%d %s: MISMATCH %s\n", r.dim, r.layers, r.variant.c_str(),
                     check.summary().c_str());
        return r;
    }
    auto once = [&] { return each_submitted ? prog.run_each_submitted() : prog.run(); };
    once();  // warm-up
    double spent = 0;
    for (int i = 0; i < opt.runs && (i < 3 || spent < opt.max_seconds_per_variant * 1e6); ++i) {
        const auto t = once();
        r.gpu_us.push_back(t.gpu_ns / 1000.0);
        r.wall_us.push_back(t.wall_ns / 1000.0);
        spent += t.wall_ns / 1000.0;
    }
    return r;
}

// The four variants of one configuration.
template <std::size_t D, std::size_t H, std::size_t L>
std::vector<variant_result> run_config(vkfuse::context& ctx, const run_options& opt) {
    using toy = toy_decoder<D, H, L>;
    using vkfuse::strategy;
    return {measure<toy, strategy::single_dispatch>(ctx, opt, false), measure<toy, strategy::fused>(ctx, opt, false),
            measure<toy, strategy::per_op>(ctx, opt, false), measure<toy, strategy::per_op>(ctx, opt, true)};
}

// One per translation unit (toy_decoder/d*.cpp), so the configurations compile in parallel.
std::vector<variant_result> run_d32(vkfuse::context&, const run_options&);
std::vector<variant_result> run_d64(vkfuse::context&, const run_options&);
std::vector<variant_result> run_d128(vkfuse::context&, const run_options&);
std::vector<variant_result> run_d256(vkfuse::context&, const run_options&);

} // namespace benchmarks
