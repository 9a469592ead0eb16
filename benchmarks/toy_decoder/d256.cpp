// benchmarks/toy_decoder/d256.cpp — the D=256 configurations (4 heads; 1 and 4 layers).
#include "run.hpp"

namespace benchmarks {

std::vector<variant_result> run_d256(vkfuse::context& ctx, const run_options& opt) {
    auto one = run_config<256, 4, 1>(ctx, opt);
    auto four = run_config<256, 4, 4>(ctx, opt);
    one.insert(one.end(), four.begin(), four.end());
    return one;
}

} // namespace benchmarks
