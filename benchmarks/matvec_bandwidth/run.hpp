// benchmarks/matvec_bandwidth/run.hpp — what each format's translation unit instantiates: every shape and variant for
// one storage type.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "../matvec_bandwidth.hpp"

namespace benchmarks::matvec {

using namespace vkfuse;

template <class Program>
result measure(context& ctx, const Program& expression, const settings& s, std::string format, std::string variant,
               std::uint64_t rows, std::uint64_t cols, std::uint64_t weight_bytes) {
    result r;
    r.format = std::move(format);
    r.variant = std::move(variant);
    r.rows = rows;
    r.cols = cols;
    r.weight_bytes = weight_bytes;
    using P = program<std::remove_cvref_t<Program>>;
    r.pieces = P::plan.buffers[P::plan.buffer_index("w")].pieces;  // over 2^27 bytes: split over bindings
    if (r.pieces > 1) r.variant += ", " + std::to_string(r.pieces) + " pieces";
    P prog(ctx, s.program);
    r.lanes = prog.lanes(0);
    r.workgroups = prog.workgroups(0);
    const verify_report check = verify(prog, expression);
    r.rel_l2 = check.rel_l2;
    r.verified = check.ok();
    if (!r.verified) {
        std::fprintf(stderr, "matvec_bandwidth %s %s %llux%llu: MISMATCH %s\n", r.format.c_str(), r.variant.c_str(),
                     static_cast<unsigned long long>(rows), static_cast<unsigned long long>(cols),
                     check.summary().c_str());
        return r;
    }
    // Warm-up of at least 0.5 s of back-to-back runs: verification keeps the GPU idle for a while (Eigen on the
    // host), its clocks fall, and a few runs are not enough to bring them back (on the H200 the same kernel measured
    // right after verification streamed at half the rate it did kept busy).
    double warm_us = 0;
    for (int i = 0; i < 100000 && (i < 20 || warm_us < 5e5); ++i) warm_us += prog.run().wall_ns / 1000.0;
    double spent_us = 0;
    for (int i = 0; i < s.runs && (i < 5 || spent_us < 10e6); ++i) {
        const auto t = prog.run();
        r.gpu_us.push_back(t.gpu_ns / 1000.0);
        spent_us += t.wall_ns / 1000.0;
    }
    return r;
}

// y = W x, for a [M, K] matrix stored as S; with `variants`, also with an RMSNorm prologue, and with a gated
// epilogue and a residual.
template <class S, std::size_t M, std::size_t K, bool Variants>
void run_shape(context& ctx, const settings& s, std::vector<result>& out) {
    constexpr input<"x", K> x;
    constexpr weight<"g", K> g;
    constexpr weight_of<"w", S, M, K> w;
    constexpr input<"r", M> residual;
    constexpr input<"u", M> up;
    constexpr output<"y", M> y;
    const std::uint64_t bytes = storage_bytes(S::code, std::uint64_t{M} * K);
    const std::string format(S::name);
    out.push_back(measure(ctx, y = w * x, s, format, "matvec", M, K, bytes));
    if constexpr (Variants) {
        out.push_back(measure(ctx, y = w * rmsnorm<1e-6f>(x, g), s, format, "rmsnorm prologue", M, K, bytes));
        out.push_back(measure(ctx, y = residual + silu(w * x) * up, s, format, "gated epilogue + residual", M, K,
                              bytes));
    }
}

template <class S>
std::vector<result> run_format(context& ctx, const settings& s) {
    std::vector<result> out;
    run_shape<S, 896, 4864, true>(ctx, s, out);     // Qwen2.5-0.5B FFN down
    run_shape<S, 4864, 896, true>(ctx, s, out);     // Qwen2.5-0.5B FFN gate / up
    run_shape<S, 2048, 8192, false>(ctx, s, out);   // Llama-3.2-1B FFN down
    run_shape<S, 8192, 2048, false>(ctx, s, out);   // Llama-3.2-1B FFN gate / up
    run_shape<S, 151936, 896, false>(ctx, s, out);  // Qwen2.5-0.5B lm_head (tied embeddings)
    return out;
}

} // namespace benchmarks::matvec
