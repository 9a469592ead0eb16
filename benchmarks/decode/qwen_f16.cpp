// benchmarks/decode/qwen_f16.cpp — the qwen shape with weights stored as f16, every strategy.
#include "run.hpp"

namespace benchmarks::decode {

std::vector<result> run_qwen_f16(vkfuse::context& ctx, const settings& s) {
    return run_model<qwen_shape, vkfuse::f16>(ctx, s, "qwen", "f16");
}

} // namespace benchmarks::decode
