// vkfuse/core/types.hpp — static facts as types: element types and shapes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vkfuse {

// ---------------------------------------------------------------------------------------------------------------
// Element types. Computation is always f32; a dtype says how values are *stored* in buffers.
// ---------------------------------------------------------------------------------------------------------------

enum class dtype_code : std::uint8_t { f32, f16, u32 };

// 32-bit IEEE float storage.
struct f32 {
    static constexpr dtype_code code = dtype_code::f32;
    static constexpr std::string_view name = "f32";
    static constexpr std::size_t bytes = 4;
};

// 16-bit IEEE float storage with f32 arithmetic (weights, KV caches). Designed in; code generation for it comes
// with the f16 issue, and using it today fails at compile time with a message saying so.
struct f16 {
    static constexpr dtype_code code = dtype_code::f16;
    static constexpr std::string_view name = "f16";
    static constexpr std::size_t bytes = 2;
};

// 32-bit unsigned integers: token ids and positions (runtime indices), argmax results.
struct u32 {
    static constexpr dtype_code code = dtype_code::u32;
    static constexpr std::string_view name = "u32";
    static constexpr std::size_t bytes = 4;
};

constexpr std::size_t dtype_bytes(dtype_code c) { return c == dtype_code::f16 ? 2 : 4; }
constexpr std::string_view dtype_name(dtype_code c) {
    return c == dtype_code::f16 ? "f16" : c == dtype_code::u32 ? "u32" : "f32";
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes: shape<> is a scalar, shape<N> a vector of N, shape<M, N> a row-major M x N matrix.
// ---------------------------------------------------------------------------------------------------------------

template <std::size_t... Dims>
struct shape {
    static_assert(sizeof...(Dims) <= 2, "vkfuse: only scalars, vectors and matrices are supported");
    static_assert(((Dims > 0) && ...), "vkfuse: every dimension must be at least 1");

    static constexpr std::size_t rank = sizeof...(Dims);
    static constexpr std::array<std::size_t, rank> dims = {Dims...};
    static_assert(((Dims <= 0xffffffffull) && ...), "vkfuse shape: a dimension above 2^32 - 1");
    static constexpr std::size_t size = (std::size_t{1} * ... * Dims);  // at most 2^64 - 2^33 + 1: no wrap
    // rows/cols as the IR records them: a vector has `rows` elements; a scalar has 1 row.
    static constexpr std::size_t rows = rank == 0 ? 1 : dims[0];
    static constexpr std::size_t cols = rank == 2 ? dims[rank - 1] : 0;
};

using scalar_shape = shape<>;

template <class S>
inline constexpr bool is_scalar_shape = S::rank == 0;

} // namespace vkfuse
