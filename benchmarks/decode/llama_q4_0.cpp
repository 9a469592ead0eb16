// benchmarks/decode/llama_q4_0.cpp — the llama shape with weights stored as q4_0, every strategy.
#include "run.hpp"

namespace benchmarks::decode {

std::vector<result> run_llama_q4_0(vkfuse::context& ctx, const settings& s) {
    return run_model<llama_shape, vkfuse::q4_0>(ctx, s, "llama", "q4_0");
}

} // namespace benchmarks::decode
