// expect: vkfuse elementwise op \(add/sub/mul/div/max/min\): operands have different dtypes
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr input<"a", 896> a;
constexpr input_of<"b", f16, 896> b;
constexpr auto bad = a * b;
