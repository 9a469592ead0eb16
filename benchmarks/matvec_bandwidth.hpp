// benchmarks/matvec_bandwidth.hpp — one matrix-vector product per weight format and size, as the bandwidth it streams
// its weights at. At batch 1 a token costs at least (weight bytes) / (memory bandwidth), so the measure of a matvec
// kernel is how close it streams its matrix to what the memory can do: a copy kernel measured in the same run.
//
// Each format (f32, f16, bf16, q8_0, q4_0) is a translation unit of its own (benchmarks/matvec_bandwidth/<format>.cpp)
// so they compile in parallel. Every program is verified against Eigen (which reads the same stored values) before it
// is timed; one that disagrees gets no time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <vkfuse/vkfuse.hpp>

namespace benchmarks::matvec {

struct settings {
    int runs = 200;
    vkfuse::program_options program;
};

struct result {
    std::string format, variant;
    std::uint64_t rows = 0, cols = 0, weight_bytes = 0;
    std::uint32_t pieces = 1;  // bindings the matrix is split over (binding_bytes_limit: 2^27 bytes each)
    bool verified = false;
    double rel_l2 = 0;
    std::uint32_t lanes = 0, workgroups = 0;
    std::vector<double> gpu_us;  // one per timed run
};

// The shapes that matter: Qwen2.5-0.5B's FFN down and gate/up projections, Llama-3.2-1B's, and Qwen's lm_head.
// Variants of the two Qwen shapes add what fusion puts around a matvec, which must not slow it down.
std::vector<result> run_f32(vkfuse::context& ctx, const settings& s);
std::vector<result> run_f16(vkfuse::context& ctx, const settings& s);
std::vector<result> run_bf16(vkfuse::context& ctx, const settings& s);
std::vector<result> run_q8_0(vkfuse::context& ctx, const settings& s);
std::vector<result> run_q4_0(vkfuse::context& ctx, const settings& s);

} // namespace benchmarks::matvec
