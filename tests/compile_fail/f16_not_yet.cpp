// expect: vkfuse output \(y = e\): the output.s dtype differs from the expression.s
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr input_of<"x", f16, 8> x;
constexpr output<"y", 8> y;
constexpr auto layer = (y = x + x);  // f16 + f16 forms fine; storing it needs f16 code generation
