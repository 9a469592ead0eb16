// expect: vkfuse elementwise op \(add/sub/mul/div/max/min\): operand shapes differ
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr input<"a", 896> a;
constexpr input<"b", 4864> b;
constexpr auto bad = a + b;
