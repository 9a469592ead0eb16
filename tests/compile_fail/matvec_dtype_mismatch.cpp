// expect: vkfuse matvec \(W \* x\): the matrix and the vector have different dtypes
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr weight_of<"w", bf16, 16, 8> w;  // any float storage is fine for the matrix ...
constexpr input_of<"ids", u32, 8> ids;    // ... but the vector must hold floats
constexpr auto bad = w * ids;
