// expect: vkfuse elementwise op \(add/sub/mul/div/max/min\): operands have different dtypes
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr input<"a", 896> a;
constexpr uint_param<"pos"> pos;  // a u32 index is not a value arithmetic takes
constexpr auto bad = a + pos;
