// benchmarks/decode/qwen_f32.cpp — the qwen shape with weights stored as f32, every strategy.
#include "run.hpp"

namespace benchmarks::decode {

std::vector<result> run_qwen_f32(vkfuse::context& ctx, const settings& s) {
    return run_model<qwen_shape, vkfuse::f32>(ctx, s, "qwen", "f32");
}

} // namespace benchmarks::decode
