// benchmarks/decode/llama_f32.cpp — the llama shape with weights stored as f32, every strategy.
#include "run.hpp"

namespace benchmarks::decode {

std::vector<result> run_llama_f32(vkfuse::context& ctx, const settings& s) {
    return run_model<llama_shape, vkfuse::f32>(ctx, s, "llama", "f32");
}

} // namespace benchmarks::decode
