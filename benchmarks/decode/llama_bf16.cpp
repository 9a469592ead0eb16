// benchmarks/decode/llama_bf16.cpp — the llama shape with weights stored as bf16, every strategy.
#include "run.hpp"

namespace benchmarks::decode {

std::vector<result> run_llama_bf16(vkfuse::context& ctx, const settings& s) {
    return run_model<llama_shape, vkfuse::bf16>(ctx, s, "llama", "bf16");
}

} // namespace benchmarks::decode
