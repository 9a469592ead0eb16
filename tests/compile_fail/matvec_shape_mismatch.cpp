// expect: vkfuse matvec \(W \* x\): shape mismatch, W is \[M, N\] so x must have N elements
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr weight<"w", 4864, 896> w;
constexpr input<"x", 4864> x;
constexpr auto bad = w * x;
