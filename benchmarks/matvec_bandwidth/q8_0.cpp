// benchmarks/matvec_bandwidth/q8_0.cpp — every shape of matvec_bandwidth with weights stored as q8_0.
#include "run.hpp"

namespace benchmarks::matvec {

std::vector<result> run_q8_0(vkfuse::context& ctx, const settings& s) { return run_format<vkfuse::q8_0>(ctx, s); }

} // namespace benchmarks::matvec
