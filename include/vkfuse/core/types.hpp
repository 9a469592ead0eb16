// vkfuse/core/types.hpp — static facts as types: element types and shapes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vkfuse {

// ---------------------------------------------------------------------------------------------------------------
// Element types. Arithmetic is always f32 (or u32 for indices); a dtype says how values are *stored* in buffers.
// ---------------------------------------------------------------------------------------------------------------

enum class dtype_code : std::uint8_t { f32, f16, bf16, q8_0, q4_0, u32 };

// 32-bit IEEE float storage.
struct f32 {
    static constexpr dtype_code code = dtype_code::f32;
    static constexpr std::string_view name = "f32";
};

// 16-bit IEEE float storage (weights, inputs, KV caches); read and written exactly as vkfuse/formats/half.hpp says.
struct f16 {
    static constexpr dtype_code code = dtype_code::f16;
    static constexpr std::string_view name = "f16";
};

// bfloat16 storage: the upper half of an f32 (weights, inputs).
struct bf16 {
    static constexpr dtype_code code = dtype_code::bf16;
    static constexpr std::string_view name = "bf16";
};

// GGUF's q8_0 blocks: 32 weights, an f16 scale, 32 int8 (34 bytes). Weights only; rows of a multiple of 32.
struct q8_0 {
    static constexpr dtype_code code = dtype_code::q8_0;
    static constexpr std::string_view name = "q8_0";
};

// GGUF's q4_0 blocks: 32 weights, an f16 scale, 16 bytes of 4-bit values (18 bytes). Weights only; rows of a
// multiple of 32.
struct q4_0 {
    static constexpr dtype_code code = dtype_code::q4_0;
    static constexpr std::string_view name = "q4_0";
};

// 32-bit unsigned integers: token ids and positions (runtime indices), argmax results.
struct u32 {
    static constexpr dtype_code code = dtype_code::u32;
    static constexpr std::string_view name = "u32";
};

constexpr std::string_view dtype_name(dtype_code c) {
    switch (c) {
    case dtype_code::f32: return "f32";
    case dtype_code::f16: return "f16";
    case dtype_code::bf16: return "bf16";
    case dtype_code::q8_0: return "q8_0";
    case dtype_code::q4_0: return "q4_0";
    case dtype_code::u32: return "u32";
    }
    return "?";
}

// Values per block of a block format (1 for the others).
constexpr std::uint64_t block_values(dtype_code c) {
    return c == dtype_code::q8_0 || c == dtype_code::q4_0 ? 32 : 1;
}
constexpr bool is_block_format(dtype_code c) { return block_values(c) != 1; }
constexpr bool is_16bit_float(dtype_code c) { return c == dtype_code::f16 || c == dtype_code::bf16; }

// Bytes that `elements` values take in storage c (a block format: whole blocks).
constexpr std::uint64_t storage_bytes(dtype_code c, std::uint64_t elements) {
    switch (c) {
    case dtype_code::f16:
    case dtype_code::bf16: return 2 * elements;
    case dtype_code::q8_0: return (elements + 31) / 32 * 34;
    case dtype_code::q4_0: return (elements + 31) / 32 * 18;
    default: return 4 * elements;
    }
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
