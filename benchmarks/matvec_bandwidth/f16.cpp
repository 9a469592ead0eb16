// benchmarks/matvec_bandwidth/f16.cpp — every shape of matvec_bandwidth with weights stored as f16.
#include "run.hpp"

namespace benchmarks::matvec {

std::vector<result> run_f16(vkfuse::context& ctx, const settings& s) { return run_format<vkfuse::f16>(ctx, s); }

} // namespace benchmarks::matvec
