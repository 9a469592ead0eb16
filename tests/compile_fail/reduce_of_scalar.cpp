// expect: vkfuse reduction \(sum/max/mean\): the operand must be a vector
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr input<"x", 8> x;
constexpr auto bad = sum(sum(x));
