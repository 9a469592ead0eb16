// vkfuse/formats/blocks.hpp — the 8- and 4-bit block formats q8_0 and q4_0, byte for byte as GGUF stores them.
//
// Why this exists: a GGUF file can then be used without repacking, and what the GPU reads, what the Eigen reference
// dequantises and what the checkpoint loader writes are the same bytes with one meaning. Every block holds 32
// consecutive weights of one row and an f16 scale d:
//
//   q8_0 (34 bytes): d, then 32 int8 q;                weight j = q[j] * d
//   q4_0 (18 bytes): d, then 16 bytes; byte j holds weight j in its low nibble and weight j + 16 in its high nibble,
//                    each an unsigned level 0..15;    weight = (level - 8) * d
//
// Quantisation gives the bytes ggml's reference quantisers (quantize_row_q8_0_ref, quantize_row_q4_0_ref: what
// llama.cpp's converters use when no importance matrix is given) give for the same floats; docs/formats.md states
// their rules and tests/test_formats.cpp works examples by hand. Where the C reference is undefined behaviour (NaN or
// infinite weights, a scale so small that its reciprocal overflows) or produces a block that dequantises to
// infinities and NaNs (a scale beyond f16's range), this code defines the outcome instead: see the functions.
// Like the reference, it assumes the default floating-point environment: round to nearest, subnormals not flushed
// (a scale below 2^-126 is a subnormal f32, and FTZ would round it differently).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "../core/error.hpp"
#include "half.hpp"

namespace vkfuse::formats {

// Weights per q8_0 or q4_0 block (ggml's QK8_0 and QK4_0). A row's length must be a multiple of it.
inline constexpr std::size_t block_size = 32;

struct block_q8_0 {
    f16_bits d;                                 // the scale, rounded to f16 when stored
    std::array<std::int8_t, block_size> qs{};   // weight j is qs[j] * d

    friend constexpr bool operator==(const block_q8_0&, const block_q8_0&) = default;
};

struct block_q4_0 {
    f16_bits d;                                     // the scale, rounded to f16 when stored
    std::array<std::uint8_t, block_size / 2> qs{};  // byte j: weight j's level in bits 0-3, weight j+16's in 4-7

    // The unsigned level 0..15 of weight j (0 <= j < 32); the weight is (level - 8) * d.
    [[nodiscard]] constexpr unsigned level(std::size_t j) const {
        return j < block_size / 2 ? qs[j] & 0x0fu : static_cast<unsigned>(qs[j - block_size / 2]) >> 4;
    }

    friend constexpr bool operator==(const block_q4_0&, const block_q4_0&) = default;
};

// The layouts are GGUF's: packed, the scale first, no padding, so arrays of blocks are the file's bytes.
static_assert(sizeof(block_q8_0) == 34 && alignof(block_q8_0) == 2 && offsetof(block_q8_0, qs) == 2);
static_assert(sizeof(block_q4_0) == 18 && alignof(block_q4_0) == 2 && offsetof(block_q4_0, qs) == 2);
static_assert(std::is_trivially_copyable_v<block_q8_0> && std::is_standard_layout_v<block_q8_0>);
static_assert(std::is_trivially_copyable_v<block_q4_0> && std::is_standard_layout_v<block_q4_0>);

// Why a block could not be quantised.
enum class block_status : std::uint8_t {
    ok,
    non_finite,      // a NaN or an infinity among the weights (the C reference's behaviour is undefined there)
    scale_overflow,  // the scale rounds to infinity in f16, so the stored block would dequantise to inf and NaN
};

namespace detail {

// The largest |x| of a block, as the bits of a non-negative float. For non-negative floats the order of the bit
// patterns is the order of the values, so an integer max (which vectorises) finds it, and a NaN or infinity shows
// up as a value >= 0x7f800000 in the same pass.
constexpr std::uint32_t largest_magnitude_bits(const float* x) {
    std::uint32_t largest = 0;
    for (std::size_t j = 0; j < block_size; ++j) {
        const std::uint32_t magnitude = std::bit_cast<std::uint32_t>(x[j]) & 0x7fffffffu;
        largest = magnitude > largest ? magnitude : largest;
    }
    return largest;
}

inline constexpr std::uint32_t f32_infinity_bits = 0x7f800000u;

// 1/d as the reference takes it, 0 for d = 0. When |d| < about 2^-128, 1/d overflows to infinity and the reference
// goes on to convert infinities and NaNs to integers, which C leaves undefined (x86 and ARM disagree). Such a block's
// f16 scale is 0 whatever its levels, so its weights dequantise to 0 either way; it is quantised here exactly like an
// all-zero block (reciprocal 0).
constexpr float reciprocal_scale(float d) {
    if (d == 0.0f) return 0.0f;
    const float reciprocal = 1.0f / d;
    return (std::bit_cast<std::uint32_t>(reciprocal) & 0x7fffffffu) == f32_infinity_bits ? 0.0f : reciprocal;
}

// C's roundf (nearest, halves away from zero) for |p| < 2^22, where truncation to int is exact. The halfway test
// compares p with t +- 0.5 (exact for such t) instead of subtracting t from p, for two reasons: it vectorises (roundf
// is a library call), and p is a product, which the compiler could fuse with that subtraction into an FMA that
// rounds differently (see q4_0_level below); a comparison cannot be fused.
constexpr std::int32_t round_half_away_from_zero(float p) {
    const std::int32_t truncated = static_cast<std::int32_t>(p);
    const float t = static_cast<float>(truncated);
    return truncated + (p >= t + 0.5f ? 1 : 0) - (p <= t - 0.5f ? 1 : 0);
}

// q4_0's level: the reference adds 8.5 to the scaled weight in float, converts the sum to an integer (truncating; the
// sum is positive) and clamps at 15. That sum must be rounded on its own: fused with the product x * (1/d) into an
// FMA it rounds differently (1 weight in ~10^7 of N(0, 1) data), and GCC fuses them under -ffp-contract=fast, its
// default for C++, wherever the target has FMA (-march=native, every ARM64), even through a sum formed in double.
// So the product passes through `fence` first: its bits XORed with a zero the compiler cannot see (a volatile read,
// once per block), which leaves no multiplication feeding the addition and costs one vector XOR. (Comparing the
// product with precomputed thresholds would need no fence but was 7x slower.)
inline volatile std::uint32_t opaque_zero = 0;

constexpr std::uint32_t contraction_fence() { return std::is_constant_evaluated() ? 0u : opaque_zero; }

constexpr std::uint32_t q4_0_level(float scaled, std::uint32_t fence) {
    const float unfused = std::bit_cast<float>(std::bit_cast<std::uint32_t>(scaled) ^ fence);
    const auto level = static_cast<std::int32_t>(unfused + 8.5f);
    return static_cast<std::uint32_t>(level < 15 ? level : 15);
}

constexpr bool stores_as_infinity(f16_bits d) { return (d.bits & 0x7fffu) == f16_limits::positive_infinity.bits; }

// q8_0: d = amax / 127 in float; each weight times the unrounded 1/d, rounded half away from zero.
constexpr block_status quantize_block(const float* x, block_q8_0& out) {
    const std::uint32_t amax_bits = largest_magnitude_bits(x);
    if (amax_bits >= f32_infinity_bits) return block_status::non_finite;
    const float d = std::bit_cast<float>(amax_bits) / 127.0f;
    const float inverse = reciprocal_scale(d);
    out.d = to_f16(d);
    if (stores_as_infinity(out.d)) return block_status::scale_overflow;
    for (std::size_t j = 0; j < block_size; ++j)
        out.qs[j] = static_cast<std::int8_t>(round_half_away_from_zero(x[j] * inverse));
    return block_status::ok;
}

// q4_0: d = m / -8, where m is the weight of largest magnitude *with its sign* (the first one, if several share that
// magnitude; +0 for an all-zero block, so its d is -0). The weight m lands on level 0, and one of the opposite sign
// and the same magnitude would land on 16, hence the clamp.
constexpr block_status quantize_block(const float* x, block_q4_0& out) {
    const std::uint32_t amax_bits = largest_magnitude_bits(x);
    if (amax_bits >= f32_infinity_bits) return block_status::non_finite;
    std::uint32_t first = block_size;  // a min-reduction over indices, which vectorises where a search would not
    for (std::uint32_t j = 0; j < block_size; ++j) {
        const bool largest = (std::bit_cast<std::uint32_t>(x[j]) & 0x7fffffffu) == amax_bits;
        const std::uint32_t candidate = largest ? j : static_cast<std::uint32_t>(block_size);
        first = candidate < first ? candidate : first;
    }
    const float signed_max = amax_bits == 0 ? 0.0f : x[first];
    const float d = signed_max / -8.0f;
    const float inverse = reciprocal_scale(d);
    out.d = to_f16(d);
    if (stores_as_infinity(out.d)) return block_status::scale_overflow;
    // Levels first, then packing: two simple loops vectorise where one interleaved loop does not.
    std::uint32_t fence = contraction_fence();  // not const: a const integer's initialiser is evaluated at compile
                                                // time where it can be, where the fence is 0 and vanishes
    std::array<std::uint8_t, block_size> levels{};
    for (std::size_t j = 0; j < block_size; ++j)
        levels[j] = static_cast<std::uint8_t>(q4_0_level(x[j] * inverse, fence));
    for (std::size_t j = 0; j < block_size / 2; ++j)
        out.qs[j] = static_cast<std::uint8_t>(levels[j] | (levels[j + block_size / 2] << 4));
    return block_status::ok;
}

// Dequantisation is exact: a level of at most 8 bits times an f16 scale of 11 significant bits fits in f32's 24.
constexpr void dequantize_block(const block_q8_0& block, float* out) {
    const float d = to_f32(block.d);
    for (std::size_t j = 0; j < block_size; ++j) out[j] = static_cast<float>(block.qs[j]) * d;
}

constexpr void dequantize_block(const block_q4_0& block, float* out) {
    const float d = to_f32(block.d);
    for (std::size_t j = 0; j < block_size / 2; ++j) {
        out[j] = static_cast<float>(static_cast<int>(block.qs[j] & 0x0fu) - 8) * d;
        out[j + block_size / 2] = static_cast<float>(static_cast<int>(block.qs[j] >> 4) - 8) * d;
    }
}

template <class Block>
inline constexpr std::string_view block_format_name = std::is_same_v<Block, block_q8_0> ? "q8_0" : "q4_0";

// Where a run of blocks stopped, if it did.
struct blocks_result {
    block_status status = block_status::ok;
    std::size_t block = 0;  // the index of the block that failed
};

template <class Block>
blocks_result quantize_blocks(const float* x, Block* out, std::size_t blocks) {
    for (std::size_t b = 0; b < blocks; ++b) {
        const block_status s = quantize_block(x + b * block_size, out[b]);
        if (s != block_status::ok) return {s, b};
    }
    return {};
}

template <class Block>
void dequantize_blocks(const Block* blocks, float* out, std::size_t count) {
    for (std::size_t b = 0; b < count; ++b) dequantize_block(blocks[b], out + b * block_size);
}

// What went wrong with a block, for an error message: `where` names the weights (e.g. "row 7, columns 64..95").
inline std::string describe_block_failure(std::string_view format, block_status status, const std::string& where) {
    const std::string prefix = "vkfuse::formats: cannot quantise " + where + " to " + std::string(format) + ": ";
    if (status == block_status::non_finite)
        return prefix + "the block holds a NaN or an infinity; " + std::string(format) + " stores finite weights only";
    const std::string scale = format == "q8_0" ? "(largest magnitude) / 127" : "(largest magnitude) / 8";
    return prefix + "the block's scale, " + scale + ", is beyond f16's range (65504), so it would be stored as " +
           "infinity and the weights would dequantise to inf and NaN; store this tensor as f32 or bf16";
}

template <class Block>
[[noreturn]] void throw_block_failure(blocks_result r) {
    const std::size_t first = r.block * block_size;
    throw usage_error(describe_block_failure(block_format_name<Block>, r.status,
                                             "values " + std::to_string(first) + ".." +
                                                 std::to_string(first + block_size - 1)));
}

template <class Block>
[[noreturn]] void throw_single_block_failure(block_status s) {
    throw usage_error(describe_block_failure(block_format_name<Block>, s, "a block"));
}

inline void require_block_counts(std::size_t values, std::size_t blocks, const char* what) {
    if (values % block_size != 0 || values / block_size != blocks)
        throw usage_error(std::string("vkfuse::formats::") + what + ": " + std::to_string(values) +
                          " values and " + std::to_string(blocks) + " blocks; a block holds " +
                          std::to_string(block_size) + " values, so there must be exactly 32 values per block");
}

} // namespace detail

// ---------------------------------------------------------------------------------------------------------------
// One block
// ---------------------------------------------------------------------------------------------------------------

// The block GGUF's reference writes for these 32 weights. Throws vkfuse::usage_error for a NaN or an infinity among
// them, and for weights so large that the f16 scale overflows (largest |w| of about 127 * 65520 or more for q8_0,
// 8 * 65520 for q4_0).
[[nodiscard]] constexpr block_q8_0 quantize_q8_0(std::span<const float, block_size> values) {
    block_q8_0 block{};
    if (const block_status s = detail::quantize_block(values.data(), block); s != block_status::ok)
        detail::throw_single_block_failure<block_q8_0>(s);
    return block;
}

[[nodiscard]] constexpr block_q4_0 quantize_q4_0(std::span<const float, block_size> values) {
    block_q4_0 block{};
    if (const block_status s = detail::quantize_block(values.data(), block); s != block_status::ok)
        detail::throw_single_block_failure<block_q4_0>(s);
    return block;
}

// The 32 weights a block stands for: level (minus 8 for q4_0) times the f16 scale, as ggml's dequantize_row_*.
[[nodiscard]] constexpr std::array<float, block_size> dequantize(const block_q8_0& block) {
    std::array<float, block_size> out{};
    detail::dequantize_block(block, out.data());
    return out;
}

[[nodiscard]] constexpr std::array<float, block_size> dequantize(const block_q4_0& block) {
    std::array<float, block_size> out{};
    detail::dequantize_block(block, out.data());
    return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Runs of blocks (a row, or a whole tensor whose rows are multiples of 32 long). values.size() must be exactly
// 32 * blocks.size(). convert.hpp has the threaded, shape-aware version.
// ---------------------------------------------------------------------------------------------------------------

inline void quantize_q8_0(std::span<const float> values, std::span<block_q8_0> blocks) {
    detail::require_block_counts(values.size(), blocks.size(), "quantize_q8_0");
    if (const detail::blocks_result r = detail::quantize_blocks(values.data(), blocks.data(), blocks.size());
        r.status != block_status::ok)
        detail::throw_block_failure<block_q8_0>(r);
}

inline void quantize_q4_0(std::span<const float> values, std::span<block_q4_0> blocks) {
    detail::require_block_counts(values.size(), blocks.size(), "quantize_q4_0");
    if (const detail::blocks_result r = detail::quantize_blocks(values.data(), blocks.data(), blocks.size());
        r.status != block_status::ok)
        detail::throw_block_failure<block_q4_0>(r);
}

inline void dequantize(std::span<const block_q8_0> blocks, std::span<float> values) {
    detail::require_block_counts(values.size(), blocks.size(), "dequantize");
    detail::dequantize_blocks(blocks.data(), values.data(), blocks.size());
}

inline void dequantize(std::span<const block_q4_0> blocks, std::span<float> values) {
    detail::require_block_counts(values.size(), blocks.size(), "dequantize");
    detail::dequantize_blocks(blocks.data(), values.data(), blocks.size());
}

} // namespace vkfuse::formats
