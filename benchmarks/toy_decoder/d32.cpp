// benchmarks/toy_decoder/d32.cpp — the D=32 configurations (2 heads; 1 and 4 layers).
#include "run.hpp"

namespace benchmarks {

std::vector<variant_result> run_d32(vkfuse::context& ctx, const run_options& opt) {
    auto one = run_config<32, 2, 1>(ctx, opt);
    auto four = run_config<32, 2, 4>(ctx, opt);
    one.insert(one.end(), four.begin(), four.end());
    return one;
}

} // namespace benchmarks
