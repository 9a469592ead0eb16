// benchmarks/matvec_bandwidth/bf16.cpp — every shape of matvec_bandwidth with weights stored as bf16.
#include "run.hpp"

namespace benchmarks::matvec {

std::vector<result> run_bf16(vkfuse::context& ctx, const settings& s) { return run_format<vkfuse::bf16>(ctx, s); }

} // namespace benchmarks::matvec
