// expect: vkfuse output \(y = e\): outputs are f32 and the expression is not \(f16 storage is designed
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr input_of<"x", f16, 8> x;
constexpr output<"y", 8> y;
constexpr auto layer = (y = x + x);  // f16 + f16 forms fine; storing it needs f16 code generation
