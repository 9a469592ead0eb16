// expect: vkfuse_error_one_name_is_used_for_two_different_placeholders
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr input<"x", 8> x8;
constexpr input<"x", 8> x8_again;  // the same placeholder: fine
constexpr weight<"x", 8> x_as_weight;  // the same name for another placeholder: not fine
constexpr output<"y", 8> y;
constexpr auto layer = (y = x8 + x8_again * x_as_weight);
constexpr auto kernels = glsl::kernel_count<decltype(layer)>;
