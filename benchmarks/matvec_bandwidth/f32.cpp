// benchmarks/matvec_bandwidth/f32.cpp — every shape of matvec_bandwidth with weights stored as f32.
#include "run.hpp"

namespace benchmarks::matvec {

std::vector<result> run_f32(vkfuse::context& ctx, const settings& s) { return run_format<vkfuse::f32>(ctx, s); }

} // namespace benchmarks::matvec
