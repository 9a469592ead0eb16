// expect: vkfuse placeholder: q8_0 and q4_0 store weights in blocks of 32 along a row
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr weight_of<"w", q4_0, 16, 40> w;  // rows of 40 values: not whole blocks of 32
constexpr input<"x", 40> x;
constexpr output<"y", 16> y;
constexpr auto layer = (y = w * x);
