// vkfuse/glsl/source.hpp — a program's GLSL, published as compile-time constants of its type.
//
//     output<"y", 896> y;
//     constexpr auto program = (y = x + w * x);
//     constexpr std::string_view k0 = vkfuse::glsl::source<decltype(program)>;          // fused, shader 0
//     constexpr auto n = vkfuse::glsl::kernel_count<decltype(program), strategy::per_op>;
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <type_traits>
#include <utility>

#include "../core/text.hpp"
#include "../expr/node.hpp"
#include "../plan/make_plan.hpp"
#include "shader.hpp"

namespace vkfuse::glsl {

// Everything generated for the program type `Program` (`y = e`, or layer_graph(...); cv-qualifiers are ignored) under
// strategy `How`.
// `Packed`: the variant in which every buffer is a range of one binding, for devices that allow a kernel fewer
// storage-buffer bindings than it needs.
template <class Program, strategy How = strategy::fused, bool Packed = false>
struct compiled : compiled<std::remove_cvref_t<Program>, How, Packed> {};

template <class Program, strategy How, bool Packed>
    requires std::is_same_v<Program, std::remove_cvref_t<Program>>
struct compiled<Program, How, Packed> {
    static_assert(expr::is_program_v<Program>,
                  "vkfuse::glsl::compiled<P>: P must be a program, the type of `y = expression` or of layer_graph(...)");

    static constexpr const auto& plan = vkfuse::plan::plan_v<Program, How>;
    // Shaders, i.e. dispatches per run: one per kernel, or one for a single-dispatch program.
    static constexpr int kernel_count = plan.dispatch_count();

    template <int K>
    static constexpr auto source = build_text<[](auto& t) { emit_shader(t, plan, K, Packed); }>();

    // All shaders' sources, in dispatch order.
    static constexpr auto sources = []<std::size_t... K>(std::index_sequence<K...>) {
        return std::array<std::string_view, sizeof...(K)>{source<static_cast<int>(K)>.view()...};
    }(std::make_index_sequence<static_cast<std::size_t>(kernel_count)>{});
};

// The GLSL of shader K of a program type.
template <class Program, int K = 0, strategy How = strategy::fused>
inline constexpr std::string_view source = compiled<Program, How>::template source<K>.view();

// Number of dispatches of a program type.
template <class Program, strategy How = strategy::fused>
inline constexpr int kernel_count = compiled<Program, How>::kernel_count;

} // namespace vkfuse::glsl
