// expect: placeholder_name_clash\(\) \[with First = placeholder<vkfuse::role::input, vkfuse::fixed_string<1>."x"., vkfuse::f32, vkfuse::shape<8> >; Second = placeholder<vkfuse::role::weight, vkfuse::fixed_string<1>."x"., vkfuse::f32, vkfuse::shape<8, 3> >\].*one name is used for two different placeholders
#include <vkfuse/vkfuse.hpp>
using namespace vkfuse;
constexpr input<"x", 8> x8;
constexpr input<"x", 8> x8_again;         // the same placeholder: fine
constexpr weight<"x", 8, 3> x_as_weight;  // the same name for another placeholder: not fine
constexpr input<"z", 3> z;
constexpr output<"y", 8> y;
constexpr auto layer = (y = x8 + x8_again * (x_as_weight * z));
