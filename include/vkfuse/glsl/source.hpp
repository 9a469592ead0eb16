// vkfuse/glsl/source.hpp — a program's GLSL, published as compile-time constants of its type.
//
//     output<"y", 896> y;
//     constexpr auto program = (y = x + w * x);
//     constexpr std::string_view k0 = vkfuse::glsl::source<decltype(program)>;   // kernel 0
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <type_traits>
#include <utility>

#include "../core/text.hpp"
#include "../expr/node.hpp"
#include "../plan/kernels.hpp"
#include "emit.hpp"

namespace vkfuse::glsl {

// Everything generated for the program type `Program` (an assignment `y = e`; cv-qualifiers are ignored).
template <class Program>
struct compiled : compiled<std::remove_cvref_t<Program>> {};

template <class Program>
    requires std::is_same_v<Program, std::remove_cvref_t<Program>>
struct compiled<Program> {
    static_assert(expr::is_assignment_v<Program>,
                  "vkfuse::glsl::compiled<P>: P must be a program, the type of `y = expression`");

    static constexpr auto plan = plan::make_plan<typename Program::output, typename Program::value>();
    static constexpr int kernel_count = plan.kernel_count;

    template <int K>
    static constexpr auto source = build_text<[](auto& t) { emit_kernel(t, plan, K); }>();

    // All kernels' sources, in dispatch order.
    static constexpr auto sources = []<std::size_t... K>(std::index_sequence<K...>) {
        return std::array<std::string_view, sizeof...(K)>{source<static_cast<int>(K)>.view()...};
    }(std::make_index_sequence<static_cast<std::size_t>(kernel_count)>{});
};

// The GLSL of kernel K of a program type.
template <class Program, int K = 0>
inline constexpr std::string_view source = compiled<Program>::template source<K>.view();

// Number of kernels (dispatches) of a program type.
template <class Program>
inline constexpr int kernel_count = compiled<Program>::kernel_count;

} // namespace vkfuse::glsl
