// benchmarks/decode/llama_f16.cpp — the llama shape with weights stored as f16, every strategy.
#include "run.hpp"

namespace benchmarks::decode {

std::vector<result> run_llama_f16(vkfuse::context& ctx, const settings& s) {
    return run_model<llama_shape, vkfuse::f16>(ctx, s, "llama", "f16");
}

} // namespace benchmarks::decode
