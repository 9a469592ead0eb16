// benchmarks/decode/qwen_bf16.cpp — the qwen shape with weights stored as bf16, every strategy.
#include "run.hpp"

namespace benchmarks::decode {

std::vector<result> run_qwen_bf16(vkfuse::context& ctx, const settings& s) {
    return run_model<qwen_shape, vkfuse::bf16>(ctx, s, "qwen", "bf16");
}

} // namespace benchmarks::decode
