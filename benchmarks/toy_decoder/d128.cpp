// benchmarks/toy_decoder/d128.cpp — the D=128 configurations (2 heads; 1 and 4 layers).
#include "run.hpp"

namespace benchmarks {

std::vector<variant_result> run_d128(vkfuse::context& ctx, const run_options& opt) {
    auto one = run_config<128, 2, 1>(ctx, opt);
    auto four = run_config<128, 2, 4>(ctx, opt);
    one.insert(one.end(), four.begin(), four.end());
    return one;
}

} // namespace benchmarks
