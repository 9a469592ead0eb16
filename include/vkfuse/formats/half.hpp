// vkfuse/formats/half.hpp — the two 16-bit weight storage formats, IEEE binary16 (f16) and bfloat16 (bf16).
//
// Why this exists: checkpoints ship weights as f16 or bf16 and the GPU path, the Eigen reference and the checkpoint
// loader must all agree on what those bits mean, so the conversions live once, here, and are exact:
//
//   f16 / bf16 -> f32   exact (every f16 and bf16 value is an f32 value); NaN keeps its sign and payload, and an
//                       f16 signalling NaN comes out quiet, as from x86's F16C and ggml (bf16 -> f32 is the bare
//                       16-bit shift everyone uses, so there the bits are kept as they are);
//   f32 -> f16 / bf16   round to nearest, ties to even, subnormal results kept (never flushed), a value past the
//                       largest finite one rounding to infinity, NaN staying NaN with its sign and its payload's top
//                       bits and the quiet bit set (what x86's F16C and ggml's bf16 conversion do).
//
// The scalar functions are constexpr. Each is written without branches on the value (every case is computed and one
// is selected), so the span versions below are loops GCC vectorises at -O3 with plain SSE2. They assume the default
// rounding mode, round to nearest; flushing subnormals (FTZ/DAZ) does not change their results.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>

#include "../core/error.hpp"

namespace vkfuse::formats {

static_assert(std::numeric_limits<float>::is_iec559, "vkfuse formats: float must be IEEE binary32");

// The bits of one f16 (sign, 5 exponent bits, 10 mantissa bits). A distinct type so an f16 can never be taken for a
// bf16 or an integer; an array of them has exactly the bytes a checkpoint stores (little-endian hosts).
struct f16_bits {
    std::uint16_t bits = 0;
    friend constexpr bool operator==(f16_bits, f16_bits) = default;
};

// The bits of one bf16 (sign, 8 exponent bits, 7 mantissa bits: the top half of an f32).
struct bf16_bits {
    std::uint16_t bits = 0;
    friend constexpr bool operator==(bf16_bits, bf16_bits) = default;
};

static_assert(sizeof(f16_bits) == 2 && alignof(f16_bits) == 2 && std::is_trivially_copyable_v<f16_bits>);
static_assert(sizeof(bf16_bits) == 2 && alignof(bf16_bits) == 2 && std::is_trivially_copyable_v<bf16_bits>);
static_assert(std::endian::native == std::endian::little,
              "vkfuse formats: checkpoints store little-endian values; a big-endian host would need byte swaps here");

// Facts about f16 that the conversions and their tests share.
namespace f16_limits {
inline constexpr f16_bits positive_infinity{0x7c00};
inline constexpr f16_bits quiet_nan{0x7e00};
inline constexpr f16_bits largest{0x7bff};            // 65504
inline constexpr f16_bits smallest_normal{0x0400};    // 2^-14
inline constexpr f16_bits smallest_subnormal{0x0001}; // 2^-24
} // namespace f16_limits

namespace detail {
// a if `choose_a`, else b, as bit masks: GCC 12 turns nested ?: of this shape into branches that its vectoriser then
// cannot if-convert, while masks stay straight-line code.
constexpr std::uint32_t select(bool choose_a, std::uint32_t a, std::uint32_t b) noexcept {
    const std::uint32_t mask = 0u - static_cast<std::uint32_t>(choose_a);
    return (a & mask) | (b & ~mask);
}
} // namespace detail

// ---------------------------------------------------------------------------------------------------------------
// f16
// ---------------------------------------------------------------------------------------------------------------

// f16 -> f32, exact. A NaN keeps sign and payload and gets the quiet bit, as a hardware conversion gives it.
[[nodiscard]] constexpr float to_f32(f16_bits h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
    const std::uint32_t exponent = (h.bits >> 10) & 0x1fu;
    const std::uint32_t mantissa = h.bits & 0x03ffu;
    // Normal: move the 10 mantissa bits to the top of f32's 23 and rebias the exponent (15 -> 127).
    const std::uint32_t normal = ((exponent + (127 - 15)) << 23) | (mantissa << 13);
    // Infinity and NaN: f32's all-ones exponent, the mantissa (NaN payload) moved up the same way, quiet if a NaN.
    const std::uint32_t quiet = detail::select(mantissa != 0, 0x00400000u, 0u);
    const std::uint32_t infinite_or_nan = 0x7f800000u | (mantissa << 13) | quiet;
    // Subnormal (and zero): mantissa * 2^-24, an integer below 2^10 times a power of two, hence exact in f32.
    const std::uint32_t subnormal = std::bit_cast<std::uint32_t>(static_cast<float>(mantissa) * 0x1p-24f);
    const std::uint32_t magnitude =
        detail::select(exponent == 0, subnormal, detail::select(exponent == 0x1f, infinite_or_nan, normal));
    return std::bit_cast<float>(sign | magnitude);
}

// f32 -> f16, round to nearest even.
[[nodiscard]] constexpr f16_bits to_f16(float value) noexcept {
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
    const std::uint32_t sign = (bits >> 16) & 0x8000u;
    const std::uint32_t magnitude = bits & 0x7fffffffu;

    // |value| >= 2^-14 (f16's normal range and beyond). Rebiasing the exponent (127 -> 15) keeps the bits in the
    // order of the values, so rounding the 13 dropped mantissa bits is an integer add: half an f16 ulp minus one,
    // plus the kept bit's parity (a tie rounds up exactly when the kept part is odd). A carry out of the mantissa
    // correctly bumps the exponent; past 0x7c00 everything is infinity (65520 = 65504 + half an ulp is the first
    // value that gets there, as a tie to the even 65536). The subtraction wraps for small magnitudes, which then
    // take the subnormal branch.
    const std::uint32_t rebiased = magnitude - ((127u - 15u) << 23);
    const std::uint32_t rounded = (rebiased + 0x0fffu + ((rebiased >> 13) & 1u)) >> 13;
    const std::uint32_t normal_or_overflow = detail::select(rounded < 0x7c00u, rounded, 0x7c00u);

    // |value| < 2^-14: f16 is fixed point here, with step 2^-24. In [0.5, 1) f32's step is also 2^-24, so adding 0.5
    // makes the FPU round |value| to that grid, ties to even; the added 0.5 is then subtracted in the integer
    // domain. A value that rounds up to 2^-14 lands on 0x0400, the smallest normal f16, which is the right encoding.
    const float on_grid = std::bit_cast<float>(detail::select(magnitude < 0x38800000u, magnitude, 0u)) + 0.5f;
    const std::uint32_t subnormal = std::bit_cast<std::uint32_t>(on_grid) - 0x3f000000u;

    // NaN: quiet, same sign, the payload's top 9 bits kept.
    const std::uint32_t nan = 0x7e00u | ((magnitude >> 13) & 0x03ffu);

    const std::uint32_t result = detail::select(magnitude > 0x7f800000u, nan,
                                                detail::select(magnitude < 0x38800000u, subnormal, normal_or_overflow));
    return f16_bits{static_cast<std::uint16_t>(sign | result)};
}

// ---------------------------------------------------------------------------------------------------------------
// bf16
// ---------------------------------------------------------------------------------------------------------------

// bf16 -> f32, exact: bf16 is the top half of an f32.
[[nodiscard]] constexpr float to_f32(bf16_bits b) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b.bits) << 16);
}

// f32 -> bf16, round to nearest even. Same exponent range as f32, so no rebias and no special subnormal case: the
// low 16 bits are rounded away as an integer (the sign bit cannot be reached: the largest non-NaN magnitude,
// infinity, plus 0x8000 stays below it), and a carry out of the largest finite value gives infinity.
[[nodiscard]] constexpr bf16_bits to_bf16(float value) noexcept {
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
    const std::uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    // NaN: truncated, quiet bit set (which also keeps a NaN whose payload was all in the low half from becoming inf).
    const std::uint32_t nan = (bits >> 16) | 0x0040u;
    const bool is_nan = (bits & 0x7fffffffu) > 0x7f800000u;
    return bf16_bits{static_cast<std::uint16_t>(detail::select(is_nan, nan, rounded))};
}

// ---------------------------------------------------------------------------------------------------------------
// Spans. Same conversions, one call per tensor row or buffer; the loops vectorise.
// ---------------------------------------------------------------------------------------------------------------

namespace detail {
inline void require_same_size(std::size_t from, std::size_t to, const char* what) {
    if (from != to)
        throw usage_error(std::string("vkfuse::formats::") + what + ": the source holds " + std::to_string(from) +
                          " values but the destination has room for " + std::to_string(to) +
                          "; the two spans must have the same length");
}
} // namespace detail

inline void to_f16(std::span<const float> from, std::span<f16_bits> to) {
    detail::require_same_size(from.size(), to.size(), "to_f16");
    for (std::size_t i = 0; i < from.size(); ++i) to[i] = to_f16(from[i]);
}

inline void to_bf16(std::span<const float> from, std::span<bf16_bits> to) {
    detail::require_same_size(from.size(), to.size(), "to_bf16");
    for (std::size_t i = 0; i < from.size(); ++i) to[i] = to_bf16(from[i]);
}

inline void to_f32(std::span<const f16_bits> from, std::span<float> to) {
    detail::require_same_size(from.size(), to.size(), "to_f32");
    for (std::size_t i = 0; i < from.size(); ++i) to[i] = to_f32(from[i]);
}

inline void to_f32(std::span<const bf16_bits> from, std::span<float> to) {
    detail::require_same_size(from.size(), to.size(), "to_f32");
    for (std::size_t i = 0; i < from.size(); ++i) to[i] = to_f32(from[i]);
}

} // namespace vkfuse::formats
