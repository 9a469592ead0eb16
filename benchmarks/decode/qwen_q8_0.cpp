// benchmarks/decode/qwen_q8_0.cpp — the qwen shape with weights stored as q8_0, every strategy.
#include "run.hpp"

namespace benchmarks::decode {

std::vector<result> run_qwen_q8_0(vkfuse::context& ctx, const settings& s) {
    return run_model<qwen_shape, vkfuse::q8_0>(ctx, s, "qwen", "q8_0");
}

} // namespace benchmarks::decode
