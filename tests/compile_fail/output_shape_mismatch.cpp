// expect: vkfuse output \(y = e\): the expression's shape differs from the output's declared shape
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr weight<"w", 4864, 896> w;
constexpr input<"x", 896> x;
constexpr output<"y", 896> y;
constexpr auto bad = (y = w * x);
