// expect: vkfuse placeholder: more than 2\^32 - 1 elements
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr weight<"w", 65536, 65537> w;  // 4 295 032 832 elements: one more row than 32-bit indices reach
constexpr input<"x", 65537> x;
constexpr output<"y", 65536> y;
constexpr auto layer = (y = w * x);
