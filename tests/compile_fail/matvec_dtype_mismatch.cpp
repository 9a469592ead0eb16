// expect: vkfuse matvec \(W \* x\): the matrix and the vector have different dtypes
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr weight_of<"w", f16, 16, 8> w;
constexpr input<"x", 8> x;
constexpr auto bad = w * x;
