// Weight storage formats (vkfuse/formats/): f16 and bf16 conversions checked exhaustively and against a slow
// reference, q8_0 and q4_0 blocks checked against blocks worked out by hand from GGUF's reference rules and against a
// plain scalar transcription of those rules, and the threaded bulk conversion against the single-value functions.
// No Vulkan device is needed.
#include <doctest/doctest.h>

#include <vkfuse/formats/blocks.hpp>
#include <vkfuse/formats/convert.hpp>
#include <vkfuse/formats/half.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define VKFUSE_TEST_HAVE_F16C 1
#endif

using namespace vkfuse::formats;

namespace {

std::uint32_t bits_of(float f) { return std::bit_cast<std::uint32_t>(f); }
float float_of(std::uint32_t u) { return std::bit_cast<float>(u); }
bool is_nan16(std::uint16_t h) { return (h & 0x7fffu) > 0x7c00u; }
bool is_nan_bf16(std::uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }

// Loops over tens of thousands of cases count their failures and report the first few, instead of making one doctest
// assertion per case, which would dominate the run time (more so under the sanitizers).
#define VKFUSE_EXPECT(tally, condition, message)                                                                       \
    do {                                                                                                               \
        if (!(condition) && ++(tally) <= 5) FAIL_CHECK(#condition << ": " << message);                              \
    } while (0)

// ---------------------------------------------------------------------------------------------------------------
// The slow reference for f32 -> f16 / bf16: the magnitudes of all non-negative finite values of the format, decoded
// with ldexp in double (independently of the code under test), followed by one sentinel, the next power of two, which
// stands for infinity: IEEE rounds a value to infinity exactly when it would round to that power of two were the
// exponent unbounded. Rounding is then a binary search and a comparison of 2|x| with the sum of the two neighbours
// (both exact in double), ties going to the even bit pattern.
// ---------------------------------------------------------------------------------------------------------------

struct reference_format {
    std::vector<double> magnitudes;  // indexed by bit pattern; the last entry is the infinity sentinel

    // Nearest-even bit pattern of a non-NaN float, sign included.
    std::uint16_t round(float x, std::uint16_t sign_bit) const {
        const double m = std::fabs(static_cast<double>(x));
        const auto it = std::lower_bound(magnitudes.begin(), magnitudes.end(), m);
        std::size_t hi = static_cast<std::size_t>(it - magnitudes.begin());
        std::size_t pick = hi;
        if (hi == magnitudes.size()) {
            pick = hi - 1;  // beyond the sentinel: infinity
        } else if (magnitudes[hi] != m && hi > 0) {
            const std::size_t lo = hi - 1;
            const double twice = 2 * m, sum = magnitudes[lo] + magnitudes[hi];
            pick = twice < sum ? lo : twice > sum ? hi : (lo % 2 == 0 ? lo : hi);
        }
        return static_cast<std::uint16_t>(pick | (std::signbit(x) ? sign_bit : 0u));
    }
};

const reference_format& f16_reference() {
    static const reference_format r = [] {
        reference_format f;
        for (std::uint32_t h = 0; h < 0x7c00; ++h) {
            const int e = static_cast<int>(h >> 10), m = static_cast<int>(h & 0x3ff);
            f.magnitudes.push_back(e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25));
        }
        f.magnitudes.push_back(65536.0);
        return f;
    }();
    return r;
}

const reference_format& bf16_reference() {
    static const reference_format r = [] {
        reference_format f;
        for (std::uint32_t b = 0; b < 0x7f80; ++b) {
            const int e = static_cast<int>(b >> 7), m = static_cast<int>(b & 0x7f);
            f.magnitudes.push_back(e == 0 ? std::ldexp(m, -133) : std::ldexp(128 + m, e - 134));
        }
        f.magnitudes.push_back(std::ldexp(1.0, 128));
        return f;
    }();
    return r;
}

// Every halfway point between neighbouring values of a format (the sentinel included), with the float on either
// side of it, both signs.
std::vector<float> halfway_cases(const reference_format& f) {
    std::vector<float> out;
    long inexact = 0;
    for (std::size_t i = 0; i + 1 < f.magnitudes.size(); ++i) {
        const auto mid = static_cast<float>((f.magnitudes[i] + f.magnitudes[i + 1]) / 2);  // exact: a few bits wide
        VKFUSE_EXPECT(inexact, static_cast<double>(mid) == (f.magnitudes[i] + f.magnitudes[i + 1]) / 2,
                      "pattern " << i);
        const float above = std::nextafter(mid, std::numeric_limits<float>::infinity());
        for (const float v : {mid, std::nextafter(mid, 0.0f), above}) {
            out.push_back(v);
            out.push_back(-v);
        }
    }
    REQUIRE(inexact == 0);
    return out;
}

// Floats to round: edge cases, uniformly random bit patterns (every binade equally), and random values whose
// exponent lies where the format's values and subnormals are.
std::vector<float> sample_floats(std::uint32_t seed, int low_exponent, int high_exponent, std::size_t count) {
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> out = {0.0f,        -0.0f,         1.0f,
                              -1.0f,       65504.0f,      65519.996f,
                              65520.0f,    65536.0f,      -65520.0f,
                              0x1p-24f,    0x1p-25f,      0x1.000002p-25f,
                              0x3p-26f,    0x3p-25f,      0x1p-14f,      0x1.ff8p-15f,
                              0x1.ffcp-15f, std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                              std::numeric_limits<float>::min(), std::numeric_limits<float>::denorm_min(),
                              -std::numeric_limits<float>::denorm_min(), inf, -inf,
                              0x1.fep127f, 0x1.ffp127f, 0x1.fefffep127f, 1.00390625f, 1.01171875f};
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::uint32_t> any;
    std::uniform_int_distribution<int> exponent(low_exponent, high_exponent);
    std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
    while (out.size() < count) {
        const float v = float_of(any(rng));
        if (!std::isnan(v)) out.push_back(v);
        const float w = std::ldexp(mantissa(rng), exponent(rng));
        out.push_back(any(rng) % 2 ? w : -w);
    }
    return out;
}

} // namespace

// =====================================================================================================================
// f16 and bf16
// =====================================================================================================================

TEST_CASE("formats: f16 -> f32 is exact for all 65536 patterns, and back gives the same bits") {
    long checked_nan = 0, failed = 0;
    for (std::uint32_t h = 0; h < 0x10000; ++h) {
        const f16_bits in{static_cast<std::uint16_t>(h)};
        const float wide = to_f32(in);
        const f16_bits back = to_f16(wide);
        const int e = static_cast<int>((h >> 10) & 0x1f), m = static_cast<int>(h & 0x3ff);
        const double sign = (h & 0x8000) ? -1.0 : 1.0;
        if (e == 0x1f && m != 0) {
            // NaN: still NaN, same sign and payload, and quiet after the round trip (quiet NaNs are unchanged).
            ++checked_nan;
            VKFUSE_EXPECT(failed, std::isnan(wide) && (bits_of(wide) & 0x00400000u) != 0, "f16 0x" << std::hex << h);
            VKFUSE_EXPECT(failed, back.bits == (h | 0x0200u), "f16 0x" << std::hex << h);
            continue;
        }
        // The value, decoded independently: subnormal m * 2^-24, normal (1024 + m) * 2^(e - 25), infinity.
        const double expected = e == 0      ? sign * std::ldexp(m, -24)
                                : e == 0x1f ? sign * std::numeric_limits<double>::infinity()
                                            : sign * std::ldexp(1024 + m, e - 25);
        VKFUSE_EXPECT(failed, static_cast<double>(wide) == expected, "f16 0x" << std::hex << h);
        VKFUSE_EXPECT(failed, std::signbit(wide) == ((h & 0x8000) != 0), "f16 0x" << std::hex << h);  // -0 stays -0
        VKFUSE_EXPECT(failed, back.bits == h, "f16 0x" << std::hex << h);
    }
    CHECK(failed == 0);
    CHECK(checked_nan == 2 * 1023);
}

TEST_CASE("formats: bf16 -> f32 is exact for all 65536 patterns, and back gives the same bits") {
    long failed = 0;
    for (std::uint32_t b = 0; b < 0x10000; ++b) {
        const bf16_bits in{static_cast<std::uint16_t>(b)};
        const float wide = to_f32(in);
        const bf16_bits back = to_bf16(wide);
        if (is_nan_bf16(in.bits)) {
            VKFUSE_EXPECT(failed, std::isnan(wide), "bf16 0x" << std::hex << b);
            VKFUSE_EXPECT(failed, back.bits == (b | 0x0040u), "bf16 0x" << std::hex << b);  // quiet; quiet unchanged
            continue;
        }
        const int e = static_cast<int>((b >> 7) & 0xff), m = static_cast<int>(b & 0x7f);
        const double sign = (b & 0x8000) ? -1.0 : 1.0;
        const double expected = e == 0      ? sign * std::ldexp(m, -133)
                                : e == 0xff ? sign * std::numeric_limits<double>::infinity()
                                            : sign * std::ldexp(128 + m, e - 134);
        VKFUSE_EXPECT(failed, static_cast<double>(wide) == expected, "bf16 0x" << std::hex << b);
        VKFUSE_EXPECT(failed, back.bits == b, "bf16 0x" << std::hex << b);
    }
    CHECK(failed == 0);
}

TEST_CASE("formats: f32 -> f16 rounds to nearest even at every halfway point and on random floats") {
    const reference_format& ref = f16_reference();
    std::vector<float> values = halfway_cases(ref);
    const std::size_t halfway = values.size();
    const std::vector<float> random = sample_floats(16, -27, 17, std::size_t{1} << 19);
    values.insert(values.end(), random.begin(), random.end());
    long mismatches = 0;
    for (const float v : values) {
        const std::uint16_t expected = ref.round(v, 0x8000);
        const std::uint16_t got = to_f16(v).bits;
        VKFUSE_EXPECT(mismatches, got == expected,
                      "to_f16(" << v << " = 0x" << std::hex << bits_of(v) << ") = 0x" << got << ", expected 0x"
                                << expected);
    }
    CHECK(mismatches == 0);
    CHECK(halfway == 6 * 0x7c00);
    // Named cases, worked by hand.
    CHECK(to_f16(65519.996f).bits == 0x7bff);  // just below the halfway point to 65536: the largest finite
    CHECK(to_f16(65520.0f).bits == 0x7c00);    // the halfway point: a tie, to even (65536), which is infinity
    CHECK(to_f16(0x1p-25f).bits == 0x0000);    // half the smallest subnormal: a tie, to even (zero)
    CHECK(to_f16(0x3p-25f).bits == 0x0002);    // 1.5 smallest subnormals: a tie, to even (2)
    CHECK(to_f16(0x3p-26f).bits == 0x0001);    // 0.75 of the smallest subnormal: up
    CHECK(to_f16(0x1.000002p-25f).bits == 0x0001);  // just above half: up
    CHECK(to_f16(0x1.ffcp-15f).bits == 0x0400);     // halfway between the largest subnormal and 2^-14: to 2^-14
    CHECK(to_f16(-0.0f).bits == 0x8000);
    CHECK(to_f16(std::numeric_limits<float>::denorm_min()).bits == 0x0000);
    CHECK(to_f16(-std::numeric_limits<float>::max()).bits == 0xfc00);
}

TEST_CASE("formats: f32 -> bf16 rounds to nearest even at every halfway point and on random floats") {
    const reference_format& ref = bf16_reference();
    std::vector<float> values = halfway_cases(ref);
    const std::vector<float> random = sample_floats(17, -150, 128, std::size_t{1} << 19);
    values.insert(values.end(), random.begin(), random.end());
    long mismatches = 0;
    for (const float v : values) {
        const std::uint16_t expected = ref.round(v, 0x8000);
        const std::uint16_t got = to_bf16(v).bits;
        VKFUSE_EXPECT(mismatches, got == expected,
                      "to_bf16(0x" << std::hex << bits_of(v) << ") = 0x" << got << ", expected 0x" << expected);
    }
    CHECK(mismatches == 0);
    CHECK(to_bf16(1.00390625f).bits == 0x3f80);         // 1 + 2^-8: a tie, to even (1.0)
    CHECK(to_bf16(1.01171875f).bits == 0x3f82);         // 1 + 3 * 2^-8: a tie, to even (1 + 2^-6)
    CHECK(to_bf16(0x1.ffp127f).bits == 0x7f80);         // halfway between the largest bf16 and 2^128: infinity
    CHECK(to_bf16(0x1.fefffep127f).bits == 0x7f7f);     // just below it: the largest finite
    CHECK(to_bf16(float_of(0x00008000u)).bits == 0x0000);  // a subnormal tie, to even (zero), not flushed
    CHECK(to_bf16(float_of(0x00018000u)).bits == 0x0002);  // a subnormal tie, to even (2)
}

TEST_CASE("formats: NaN stays NaN (quiet, sign and top payload bits kept), infinity stays infinity") {
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(to_f16(inf).bits == 0x7c00);
    CHECK(to_f16(-inf).bits == 0xfc00);
    CHECK(to_bf16(inf).bits == 0x7f80);
    CHECK(to_bf16(-inf).bits == 0xff80);
    CHECK(to_f16(float_of(0x7fc00000u)).bits == 0x7e00);
    CHECK(to_f16(float_of(0xffc00000u)).bits == 0xfe00);
    CHECK(to_f16(float_of(0x7f802000u)).bits == 0x7e01);  // signalling, payload in f16's reach: quiet, payload kept
    CHECK(to_f16(float_of(0x7f800001u)).bits == 0x7e00);  // payload below f16's reach: still a NaN
    CHECK(to_bf16(float_of(0x7f800001u)).bits == 0x7fc0);  // the same for bf16
    CHECK(to_bf16(float_of(0xff810000u)).bits == 0xffc1);
    // Every f32 NaN bit pattern class: both conversions give a NaN of the same sign.
    std::mt19937 rng(3);
    long failed = 0;
    for (int i = 0; i < 100000; ++i) {
        const std::uint32_t nan = 0x7f800000u | (1u + rng() % 0x7fffffu) | (rng() % 2 ? 0x80000000u : 0u);
        const std::uint16_t half = to_f16(float_of(nan)).bits, brain = to_bf16(float_of(nan)).bits;
        VKFUSE_EXPECT(failed, std::isnan(float_of(nan)) && is_nan16(half) && (half >> 15) == (nan >> 31),
                      "f32 0x" << std::hex << nan << " -> f16 0x" << half);
        VKFUSE_EXPECT(failed, is_nan_bf16(brain) && (brain >> 15) == (nan >> 31),
                      "f32 0x" << std::hex << nan << " -> bf16 0x" << brain);
    }
    CHECK(failed == 0);
}

#ifdef VKFUSE_TEST_HAVE_F16C
namespace {
__attribute__((target("f16c"))) std::uint16_t hardware_f16(float x) { return _cvtss_sh(x, 0); }
__attribute__((target("f16c"))) float hardware_f32(std::uint16_t h) { return _cvtsh_ss(h); }

// F16C is CPUID leaf 1, ECX bit 29 (Clang's __builtin_cpu_supports does not know it); its VEX encoding needs the OS
// to save AVX state, which __builtin_cpu_supports("avx") checks.
bool cpu_has_f16c() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0 && __builtin_cpu_supports("avx");
}
} // namespace

TEST_CASE("formats: f16 conversions agree with the CPU's F16C instructions, NaN bits included") {
    if (!cpu_has_f16c()) {
        MESSAGE("this CPU has no F16C; skipped");
        return;
    }
    long mismatches = 0;
    for (std::uint32_t h = 0; h < 0x10000; ++h)
        VKFUSE_EXPECT(mismatches, bits_of(to_f32(f16_bits{static_cast<std::uint16_t>(h)})) ==
                                      bits_of(hardware_f32(static_cast<std::uint16_t>(h))),
                      "f16 0x" << std::hex << h);
    std::mt19937 rng(5);
    for (int i = 0; i < (1 << 20); ++i) {
        const float v = float_of(static_cast<std::uint32_t>(rng()));
        VKFUSE_EXPECT(mismatches, to_f16(v).bits == hardware_f16(v), "f32 0x" << std::hex << bits_of(v));
    }
    CHECK(mismatches == 0);
}
#endif

TEST_CASE("formats: the conversions are constant expressions, and the span versions check lengths") {
    static_assert(to_f16(1.0f) == f16_bits{0x3c00});
    static_assert(to_f16(-2.0f) == f16_bits{0xc000});
    static_assert(to_f16(65504.0f) == f16_limits::largest);
    static_assert(to_f16(1e6f) == f16_limits::positive_infinity);
    static_assert(to_f16(0x1p-24f) == f16_limits::smallest_subnormal);
    static_assert(to_f16(0x1p-14f) == f16_limits::smallest_normal);
    static_assert(to_f16(std::numeric_limits<float>::quiet_NaN()) == f16_limits::quiet_nan);
    static_assert(to_f32(f16_bits{0x3555}) == 0x1.554p-2f);  // 0.333251953125
    static_assert(to_bf16(3.14159274f) == bf16_bits{0x4049});
    static_assert(to_f32(bf16_bits{0x4049}) == 3.140625f);

    const std::vector<float> in = {1.0f, -0.5f, 0x1p-20f, 70000.0f};
    std::vector<f16_bits> half(4);
    std::vector<bf16_bits> brain(4);
    to_f16(in, half);
    to_bf16(in, brain);
    CHECK(half == std::vector<f16_bits>{{0x3c00}, {0xb800}, {0x0010}, {0x7c00}});
    CHECK(brain == std::vector<bf16_bits>{{0x3f80}, {0xbf00}, {0x3580}, {0x4789}});
    std::vector<float> back(4);
    to_f32(std::span<const f16_bits>(half), back);
    CHECK(back == std::vector<float>{1.0f, -0.5f, 0x1p-20f, std::numeric_limits<float>::infinity()});
    to_f32(std::span<const bf16_bits>(brain), back);
    CHECK(back == std::vector<float>{1.0f, -0.5f, 0x1p-20f, 70144.0f});
    std::vector<f16_bits> short_out(3);
    CHECK_THROWS_AS(to_f16(in, short_out), vkfuse::usage_error);
}

// =====================================================================================================================
// q8_0 and q4_0
//
// The rules, as ggml's reference quantisers (quantize_row_q8_0_ref, quantize_row_q4_0_ref) apply them to each block of
// 32 floats x, in f32 arithmetic:
//
//   q8_0  amax = max |x|;  d = amax / 127;  id = d != 0 ? 1 / d : 0;  stored scale = f16(d)  (round to nearest even)
//         q[j] = roundf(x[j] * id)        roundf: halves away from zero
//   q4_0  m = the x of largest |x|, the first such if several (a strict > scan starting from 0 with m = +0)
//         d = m / -8;  id = d != 0 ? 1 / d : 0;  stored scale = f16(d)
//         level[j] = min(15, (int)(x[j] * id + 8.5f))   float sum, then truncation
//         byte j = level[j] | level[j + 16] << 4
//   dequantisation: q * f32(scale) for q8_0, (level - 8) * f32(scale) for q4_0.
//
// Note what follows from them: the levels come from the unrounded d (1/d), while the weights are decoded with the
// f16-rounded d; q8_0 rounds ties away from zero, q4_0 rounds them up (toward +inf: x * id + 0.5 truncated); the
// weight m lands on level 0 (value -8 d = m), and a weight of the opposite sign and the same magnitude would land on
// 16 and is clamped to 15; an all-zero q4_0 block has d = 0 / -8 = -0 (f16 0x8000) and levels 8.
// =====================================================================================================================

namespace {

std::array<float, 32> block_of(std::initializer_list<std::pair<int, float>> nonzero) {
    std::array<float, 32> x{};
    for (const auto& [j, v] : nonzero) x[static_cast<std::size_t>(j)] = v;
    return x;
}

// The same rules written as plainly as possible: float scans, <cmath>'s roundf, the float sum of q4_0 forced to be
// rounded on its own (volatile), so that this stays an independent transcription whatever the compiler contracts.
block_q8_0 plain_q8_0(const float* x) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (std::isinf(id)) id = 0.0f;  // vkfuse's definition where the reference is undefined behaviour
    block_q8_0 b{};
    b.d = to_f16(d);
    for (int j = 0; j < 32; ++j) {
        volatile float scaled = x[j] * id;
        b.qs[static_cast<std::size_t>(j)] = static_cast<std::int8_t>(std::roundf(scaled));
    }
    return b;
}

block_q4_0 plain_q4_0(const float* x) {
    float amax = 0.0f, m = 0.0f;
    for (int j = 0; j < 32; ++j)
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            m = x[j];
        }
    const float d = m / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (std::isinf(id)) id = 0.0f;
    block_q4_0 b{};
    b.d = to_f16(d);
    auto level = [&](int j) {
        volatile float scaled = x[j] * id;
        volatile float shifted = scaled + 8.5f;
        return std::min(15, static_cast<int>(static_cast<std::int8_t>(shifted)));
    };
    for (int j = 0; j < 16; ++j)
        b.qs[static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(level(j) | (level(j + 16) << 4));
    return b;
}

std::array<std::uint8_t, 16> q4_bytes(std::initializer_list<std::pair<int, std::uint8_t>> special) {
    std::array<std::uint8_t, 16> qs;
    qs.fill(0x88);  // levels 8 and 8: zeros
    for (const auto& [j, v] : special) qs[static_cast<std::size_t>(j)] = v;
    return qs;
}

} // namespace

TEST_CASE("formats: q8_0 and q4_0 blocks have GGUF's byte layout") {
    block_q8_0 q8{};
    q8.d = f16_bits{0x3c00};
    for (std::size_t j = 0; j < 32; ++j) q8.qs[j] = static_cast<std::int8_t>(static_cast<int>(j) - 16);
    unsigned char bytes8[34];
    std::memcpy(bytes8, &q8, 34);
    CHECK(bytes8[0] == 0x00);  // d, little-endian
    CHECK(bytes8[1] == 0x3c);
    CHECK(bytes8[2] == 0xf0);  // q[0] = -16
    CHECK(bytes8[33] == 0x0f); // q[31] = 15

    block_q4_0 q4{};
    q4.d = f16_bits{0xbc00};
    q4.qs[0] = 0x1f;  // weight 0: level 15; weight 16: level 1
    unsigned char bytes4[18];
    std::memcpy(bytes4, &q4, 18);
    CHECK(bytes4[0] == 0x00);
    CHECK(bytes4[1] == 0xbc);
    CHECK(bytes4[2] == 0x1f);
    CHECK(q4.level(0) == 15);
    CHECK(q4.level(16) == 1);
    CHECK(dequantize(q4)[0] == -7.0f);  // (15 - 8) * -1
    CHECK(dequantize(q4)[16] == 7.0f);  // (1 - 8) * -1
}

TEST_CASE("formats: q8_0 blocks worked by hand") {
    SUBCASE("d = 1: ties round away from zero") {
        // amax = 127, so d = 1 exactly (f16 0x3c00) and 1/d = 1: each level is roundf(x).
        const auto x = block_of({{0, 127.0f}, {1, -127.0f}, {2, 2.5f}, {3, -2.5f}, {4, 0.5f}, {5, -0.5f},
                                 {6, 1.5f}, {7, 126.5f}, {8, 0.49999997f}, {9, -0.0f}, {10, 3.0f}});
        block_q8_0 expected{};
        expected.d = f16_bits{0x3c00};
        const std::int8_t q[] = {127, -127, 3, -3, 1, -1, 2, 127, 0, 0, 3};  // 2.5 -> 3 and 126.5 -> 127, not even
        std::copy(std::begin(q), std::end(q), expected.qs.begin());
        CHECK(quantize_q8_0(x) == expected);
        CHECK(plain_q8_0(x.data()) == expected);
    }
    SUBCASE("levels come from the unrounded scale, weights from the f16 one") {
        // amax = 1: d = fl(1/127) = 0x3c010204 = 0.0078740157; 1/d rounds to exactly 127. Stored: 1/127 lies 8.06
        // f16 steps (2^-17) above 2^-7, so f16(d) = 2^-7 + 8 * 2^-17 = 0.00787353515625 = 0x2008.
        // 0.437f * 127 = 55.499 -> 55; with the stored scale it would be 0.437 / 0.0078735 = 55.503 -> 56.
        // 0.5 * 127 = 63.5 exactly: a tie, away from zero -> 64.
        const auto x = block_of({{0, 1.0f}, {1, -1.0f}, {2, 0.437f}, {3, 0.5f}, {4, -0.5f}});
        const block_q8_0 b = quantize_q8_0(x);
        CHECK(b.d == f16_bits{0x2008});
        CHECK(b.qs[0] == 127);
        CHECK(b.qs[1] == -127);
        CHECK(b.qs[2] == 55);
        CHECK(b.qs[3] == 64);
        CHECK(b.qs[4] == -64);
        CHECK(std::all_of(b.qs.begin() + 5, b.qs.end(), [](std::int8_t q) { return q == 0; }));
        // Dequantisation: q * 0.00787353515625, exact (8 bits times 11 bits fit in f32's 24).
        const std::array<float, 32> w = dequantize(b);
        CHECK(w[0] == 127 * 0.00787353515625f);
        CHECK(static_cast<double>(w[2]) == 55 * 0.00787353515625);
        CHECK(w[3] == 0.50390625f);  // 64 * 0.00787353515625
        CHECK(plain_q8_0(x.data()) == b);
    }
    SUBCASE("one huge weight") {
        // amax = 1000: d = 7.874016; f16 has step 2^-8 in [4, 8) and 7.874016 = 4 + 991.75 steps, so 4 + 992/256 =
        // 7.875 = 0x47e0. The other weights, 0.25 * 0.127 = 0.03, all become 0; the huge one 127 (1000.125).
        std::array<float, 32> x;
        x.fill(0.25f);
        x[7] = 1000.0f;
        const block_q8_0 b = quantize_q8_0(x);
        CHECK(b.d == f16_bits{0x47e0});
        for (std::size_t j = 0; j < 32; ++j) CHECK(b.qs[j] == (j == 7 ? 127 : 0));
        CHECK(dequantize(b)[7] == 1000.125f);
        CHECK(plain_q8_0(x.data()) == b);
    }
    SUBCASE("all zeros, negative zeros included") {
        const auto x = block_of({{3, -0.0f}});
        const block_q8_0 b = quantize_q8_0(x);
        CHECK(b == block_q8_0{});  // d = 0 / 127 = +0, 1/d taken as 0, every level 0
        CHECK(plain_q8_0(x.data()) == b);
    }
    SUBCASE("a scale whose reciprocal overflows is quantised like zeros (the C reference is undefined there)") {
        // amax = 2e-38: d = 1.6e-40 (subnormal), 1/d = 6e39 > FLT_MAX. f16(d) = 0 anyway, so the weights decode to 0.
        const auto x = block_of({{0, 2e-38f}, {1, -1e-38f}});
        CHECK(quantize_q8_0(x) == block_q8_0{});
    }
    SUBCASE("NaN, infinity and an f16 scale overflow are errors") {
        auto x = block_of({{0, 1.0f}});
        x[5] = std::numeric_limits<float>::quiet_NaN();
        CHECK_THROWS_AS((void)quantize_q8_0(x), vkfuse::usage_error);
        x[5] = -std::numeric_limits<float>::infinity();
        CHECK_THROWS_AS((void)quantize_q8_0(x), vkfuse::usage_error);
        x[5] = 127.0f * 65520.0f;  // d = 65520 rounds to f16 infinity
        CHECK_THROWS_WITH_AS((void)quantize_q8_0(x), doctest::Contains("beyond f16's range"), vkfuse::usage_error);
        x[5] = 127.0f * 65504.0f;  // d = 65504, the largest f16: fine
        CHECK(quantize_q8_0(x).d == f16_limits::largest);
    }
}

TEST_CASE("formats: q4_0 blocks worked by hand") {
    SUBCASE("d = 1: levels, ties upward, the clamp, the float sum, the nibble order") {
        // m = -8 (index 3; the +8 at index 20 and the -8 at 16 come later) so d = -8 / -8 = 1 (0x3c00), 1/d = 1, and
        // level = min(15, trunc(x + 8.5)):
        //   0.5 -> 9 (+1)   -0.5 -> 8 (0)   1.5 -> 10 (+2)   -1.5 -> 7 (-1): ties go up, not away from zero
        //   -8 -> 0         7 -> 15         7.4 -> 15        -7.5 -> 1        3.25 -> 11      2 -> 10
        //   8 -> 16 -> clamped to 15 (decodes to 7)
        //   0.49999997 -> 8.99999997, which the float sum rounds to 9.0 -> 9 (+1) although it is below one half
        const auto x = block_of({{0, 0.5f}, {1, -0.5f}, {2, 1.5f}, {3, -8.0f}, {4, -1.5f}, {5, 7.0f}, {6, 7.4f},
                                 {7, 0.49999997f}, {8, -7.5f}, {9, 3.25f}, {16, -8.0f}, {17, 2.0f}, {20, 8.0f}});
        // byte j = level[j] | level[j + 16] << 4; levels 8 elsewhere (zeros).
        block_q4_0 expected{f16_bits{0x3c00}, q4_bytes({{0, 0x09}, {1, 0xa8}, {2, 0x8a}, {3, 0x80}, {4, 0xf7},
                                                         {5, 0x8f}, {6, 0x8f}, {7, 0x89}, {8, 0x81}, {9, 0x8b}})};
        CHECK(quantize_q4_0(x) == expected);
        CHECK(plain_q4_0(x.data()) == expected);
        const std::array<float, 32> w = dequantize(expected);
        const float expected_w[] = {1, 0, 2, -8, -1, 7, 7, 1, -7, 3};
        for (std::size_t j = 0; j < 10; ++j) CHECK(w[j] == expected_w[j]);
        CHECK(w[16] == -8.0f);
        CHECK(w[17] == 2.0f);
        CHECK(w[20] == 7.0f);  // the clamped +8
    }
    SUBCASE("the sign of the first weight of largest magnitude decides d") {
        // +8 first: d = -1 (0xbc00), 1/d = -1; 8 -> -8 + 8.5 -> level 0 (decodes to (0 - 8) * -1 = 8); -8 -> 16.5 ->
        // clamped 15 (decodes to -7). Zeros: -0 + 8.5 -> 8.
        const block_q4_0 positive_first = quantize_q4_0(block_of({{0, 8.0f}, {1, -8.0f}}));
        CHECK(positive_first == block_q4_0{f16_bits{0xbc00}, q4_bytes({{0, 0x80}, {1, 0x8f}})});
        CHECK(dequantize(positive_first)[0] == 8.0f);
        CHECK(dequantize(positive_first)[1] == -7.0f);
        // -8 first: d = 1; the same levels, now meaning -8 and +7.
        const block_q4_0 negative_first = quantize_q4_0(block_of({{0, -8.0f}, {1, 8.0f}}));
        CHECK(negative_first == block_q4_0{f16_bits{0x3c00}, q4_bytes({{0, 0x80}, {1, 0x8f}})});
        CHECK(dequantize(negative_first)[0] == -8.0f);
        CHECK(dequantize(negative_first)[1] == 7.0f);
    }
    SUBCASE("levels come from the unrounded scale") {
        // m = -1.1f: d = 0.1375 (f32 0.13750000298), 1/d = 7.2727270. Stored: 0.1375 = 0.125 + 102.4 steps of
        // 2^-13, so f16(d) = 0.125 + 102/8192 = 0.137451171875 = 0x3066.
        // -1.031f * 7.272727 = -7.49818, + 8.5 = 1.0018 -> level 1 (decodes to -7 * 0.137451171875); with the
        // stored scale it would be -1.031 / 0.137451 = -7.5009 -> level 0.
        const auto x = block_of({{0, -1.1f}, {1, -1.031f}});
        const block_q4_0 expected{f16_bits{0x3066}, q4_bytes({{0, 0x80}, {1, 0x81}})};
        CHECK(quantize_q4_0(x) == expected);
        CHECK(plain_q4_0(x.data()) == expected);
        CHECK(dequantize(expected)[1] == -0.962158203125f);
    }
    SUBCASE("the float sum is rounded on its own, never fused with the product into an FMA") {
        // m = -0.16f: d = 0.02 (f16 0x251f = 0.0200042724609375) and 1/d = 50 exactly. -0.09f * 50 is -4.50000018
        // exactly, -4.5 as a float; -4.5 + 8.5 = 4 -> level 4. An FMA would add 8.5 to the exact product, giving
        // 3.99999982 -> level 3; GCC forms that FMA under -ffp-contract=fast unless kept from it (see blocks.hpp).
        const auto x = block_of({{0, -0.16f}, {1, -0.09f}});
        const block_q4_0 expected{f16_bits{0x251f}, q4_bytes({{0, 0x80}, {1, 0x84}})};
        CHECK(quantize_q4_0(x) == expected);
        CHECK(plain_q4_0(x.data()) == expected);
        CHECK(dequantize(expected)[1] == -4 * 0.0200042724609375f);
    }
    SUBCASE("one huge weight") {
        // m = 1000: d = -125 (f16 0xd7d0: 125 = 1.953125 * 2^6), 1/d = -0.008. 1000 -> level 0 (decodes to 1000);
        // 1.0 -> -0.008 + 8.5 -> level 8 (decodes to 0).
        std::array<float, 32> x;
        x.fill(1.0f);
        x[9] = 1000.0f;
        const block_q4_0 expected{f16_bits{0xd7d0}, q4_bytes({{9, 0x80}})};
        CHECK(quantize_q4_0(x) == expected);
        CHECK(plain_q4_0(x.data()) == expected);
        CHECK(dequantize(expected)[9] == 1000.0f);
    }
    SUBCASE("all zeros: d is -0") {
        const block_q4_0 expected{f16_bits{0x8000}, q4_bytes({})};
        CHECK(quantize_q4_0(block_of({})) == expected);
        CHECK(quantize_q4_0(block_of({{4, -0.0f}})) == expected);  // m starts as +0 and -0 is not larger
        CHECK(plain_q4_0(block_of({{4, -0.0f}}).data()) == expected);
        for (const float w : dequantize(expected)) CHECK(w == 0.0f);
    }
    SUBCASE("NaN and an f16 scale overflow are errors") {
        auto x = block_of({{2, std::numeric_limits<float>::quiet_NaN()}});
        CHECK_THROWS_AS((void)quantize_q4_0(x), vkfuse::usage_error);
        x[2] = 8.0f * 65520.0f;
        CHECK_THROWS_AS((void)quantize_q4_0(x), vkfuse::usage_error);
        x[2] = -8.0f * 65504.0f;
        CHECK(quantize_q4_0(x).d == f16_bits{0x7bff});
    }
}

TEST_CASE("formats: blocks can be quantised in constant expressions") {
    constexpr std::array<float, 32> x = [] {
        std::array<float, 32> a{};
        for (std::size_t j = 0; j < 32; ++j) a[j] = static_cast<float>(j) - 16.0f;
        return a;
    }();
    // q4_0: m = -16 (index 0), d = 2 (0x4000); x / 2 + 8.5 truncated: j - 16 -> level (j - 16) / 2 + 8.5.
    constexpr block_q4_0 q4 = quantize_q4_0(x);
    static_assert(q4.d == f16_bits{0x4000});
    static_assert(q4.level(0) == 0 && q4.level(1) == 1 && q4.level(2) == 1 && q4.level(16) == 8 && q4.level(31) == 15);
    static_assert(dequantize(q4)[1] == -14.0f);  // -15 / 2 + 8.5 = 1 (a tie going up): (1 - 8) * 2
    constexpr block_q8_0 q8 = quantize_q8_0(x);
    static_assert(q8.qs[0] == -127 && q8.qs[16] == 0);
    CHECK(q8 == quantize_q8_0(std::span<const float, 32>(x)));
}

TEST_CASE("formats: vectorised quantisers agree with a plain transcription of the rules on random blocks") {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    std::vector<float> x(32);
    long compared = 0, inexact = 0;
    for (int b = 0; b < 40000; ++b) {
        const int kind = b % 7;
        const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 31) - 20);  // scales stay in f16
        for (std::size_t j = 0; j < 32; ++j) {
            switch (kind) {
            case 0: x[j] = normal(rng); break;
            case 1: x[j] = normal(rng) * std::pow(10.0f, unit(rng) * 10 - 6); break;           // wide magnitudes
            case 2: x[j] = (static_cast<float>(rng() % 254) - 126.5f) * scale; break;          // q8_0 ties
            case 3: x[j] = (static_cast<float>(rng() % 16) - 7.5f) * scale; break;             // q4_0 ties
            case 4: x[j] = static_cast<float>(static_cast<int>(rng() % 5) - 2) * scale; break; // repeated magnitudes
            case 5: x[j] = normal(rng) * 1e-37f; break;                                        // subnormal scales
            default: x[j] = unit(rng) < 0.05f ? normal(rng) * 300.0f : normal(rng) * 0.02f; break;  // outliers
            }
        }
        if (kind == 2) x[rng() % 32] = (rng() % 2 ? 127.0f : -127.0f) * scale;  // makes 1/d = 1/scale exactly
        if (kind == 3) x[rng() % 32] = -8.0f * scale;
        const block_q8_0 q8 = quantize_q8_0(std::span<const float, 32>(x.data(), 32));
        const block_q4_0 q4 = quantize_q4_0(std::span<const float, 32>(x.data(), 32));
        if (!(q8 == plain_q8_0(x.data())) || !(q4 == plain_q4_0(x.data()))) {
            FAIL_CHECK("block " << b << " (kind " << kind << ") differs from the plain transcription");
            break;
        }
        // Dequantisation is exact: level times scale needs at most 8 + 11 significant bits.
        const float d8 = to_f32(q8.d), d4 = to_f32(q4.d);
        const std::array<float, 32> w8 = dequantize(q8), w4 = dequantize(q4);
        for (std::size_t j = 0; j < 32; ++j) {
            VKFUSE_EXPECT(inexact, static_cast<double>(w8[j]) == q8.qs[j] * static_cast<double>(d8), "block " << b);
            VKFUSE_EXPECT(inexact,
                          static_cast<double>(w4[j]) == (static_cast<int>(q4.level(j)) - 8) * static_cast<double>(d4),
                          "block " << b);
        }
        ++compared;
    }
    CHECK(compared == 40000);
    CHECK(inexact == 0);
}

// =====================================================================================================================
// Whole tensors
// =====================================================================================================================

namespace {

// A tensor's bytes in `format`, built value by value (or block by block) from the functions already tested above.
std::vector<std::byte> slow_encode(const std::vector<float>& v, weight_format format, std::size_t rows,
                                   std::size_t cols) {
    std::vector<std::byte> out(tensor_bytes(format, rows, cols));
    std::byte* p = out.data();
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = v.data() + r * cols;
        for (std::size_t c = 0; c < cols;) {
            switch (format) {
            case weight_format::f32: std::memcpy(p, row + c, 4); p += 4; ++c; break;
            case weight_format::f16: { const f16_bits h = to_f16(row[c]); std::memcpy(p, &h, 2); p += 2; ++c; break; }
            case weight_format::bf16: {
                const bf16_bits h = to_bf16(row[c]);
                std::memcpy(p, &h, 2); p += 2; ++c; break;
            }
            case weight_format::q8_0: {
                const block_q8_0 b = quantize_q8_0(std::span<const float, 32>(row + c, 32));
                std::memcpy(p, &b, sizeof b); p += sizeof b; c += 32; break;
            }
            case weight_format::q4_0: {
                const block_q4_0 b = quantize_q4_0(std::span<const float, 32>(row + c, 32));
                std::memcpy(p, &b, sizeof b); p += sizeof b; c += 32; break;
            }
            }
        }
    }
    return out;
}

std::vector<float> slow_decode(const std::vector<std::byte>& bytes, std::size_t count, weight_format format) {
    std::vector<float> out;
    const std::byte* p = bytes.data();
    while (out.size() < count) {
        switch (format) {
        case weight_format::f32: { float f; std::memcpy(&f, p, 4); p += 4; out.push_back(f); break; }
        case weight_format::f16: { f16_bits h; std::memcpy(&h, p, 2); p += 2; out.push_back(to_f32(h)); break; }
        case weight_format::bf16: { bf16_bits h; std::memcpy(&h, p, 2); p += 2; out.push_back(to_f32(h)); break; }
        case weight_format::q8_0: {
            block_q8_0 b; std::memcpy(&b, p, sizeof b); p += sizeof b;
            for (const float w : dequantize(b)) out.push_back(w);
            break;
        }
        case weight_format::q4_0: {
            block_q4_0 b; std::memcpy(&b, p, sizeof b); p += sizeof b;
            for (const float w : dequantize(b)) out.push_back(w);
            break;
        }
        }
    }
    return out;
}

std::vector<float> normal_values(std::size_t n, std::uint32_t seed, double outlier_fraction = 0.0) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng) * (unit(rng) < outlier_fraction ? 50.0f : 1.0f);
    return v;
}

} // namespace

TEST_CASE("formats: convert between every pair of formats gives what the single-value functions give") {
    // Two rows of 4096 + 96 columns: more than one chunk per row, so chunk boundaries inside a row are crossed.
    const std::size_t rows = 3, cols = 4096 + 96;
    const std::vector<float> values = normal_values(rows * cols, 21, 0.01);
    for (const weight_format from : all_weight_formats) {
        const std::vector<std::byte> source = slow_encode(values, from, rows, cols);
        const std::vector<float> as_f32 = slow_decode(source, rows * cols, from);
        // The source once more, one byte off alignment, as a tensor inside a file can be.
        std::vector<std::byte> misaligned(source.size() + 1);
        std::memcpy(misaligned.data() + 1, source.data(), source.size());
        const std::span<const std::byte> shifted(misaligned.data() + 1, source.size());
        for (const weight_format to : all_weight_formats) {
            INFO(format_name(from) << " -> " << format_name(to));
            const std::vector<std::byte> expected = slow_encode(as_f32, to, rows, cols);
            for (const unsigned threads : {1u, 2u, 5u}) {
                std::vector<std::byte> got(tensor_bytes(to, rows, cols), std::byte{0xcd});
                convert(threads == 5 ? shifted : std::span<const std::byte>(source), from, got, to, rows, cols,
                        threads);
                CHECK(got == expected);
            }
        }
    }
    // The conveniences.
    const std::vector<std::byte> q4 = encode(values, weight_format::q4_0, rows, cols);
    CHECK(q4 == slow_encode(values, weight_format::q4_0, rows, cols));
    CHECK(decode(q4, weight_format::q4_0, rows, cols) == slow_decode(q4, rows * cols, weight_format::q4_0));
}

TEST_CASE("formats: sizes, and the errors name the shape") {
    CHECK(row_bytes(weight_format::f32, 4096) == 16384);
    CHECK(row_bytes(weight_format::f16, 4096) == 8192);
    CHECK(row_bytes(weight_format::bf16, 4096) == 8192);
    CHECK(row_bytes(weight_format::q8_0, 4096) == 128 * 34);
    CHECK(row_bytes(weight_format::q4_0, 4096) == 128 * 18);
    CHECK(tensor_bytes(weight_format::q4_0, 896, 4864) == 896 * 152 * 18);
    CHECK(tensor_bytes(weight_format::f16, 3, 1000) == 6000);

    CHECK_THROWS_WITH_AS((void)tensor_bytes(weight_format::q4_0, 3, 1000),
                         doctest::Contains("a [3, 1000] tensor cannot be stored as q4_0"), vkfuse::usage_error);
    CHECK_THROWS_WITH_AS((void)row_bytes(weight_format::q8_0, 33), doctest::Contains("not a multiple of 32"),
                         vkfuse::usage_error);

    const std::vector<float> values(3 * 1000, 1.0f);
    std::vector<std::byte> out(6000);
    // A block format on either side needs whole blocks.
    CHECK_THROWS_WITH_AS(convert(std::as_bytes(std::span(values)), weight_format::f32, out, weight_format::q8_0, 3,
                                 1000),
                         doctest::Contains("[3, 1000]"), vkfuse::usage_error);
    CHECK_THROWS_WITH_AS(convert(std::as_bytes(std::span(values)), weight_format::q4_0, out, weight_format::f16, 3,
                                 1000),
                         doctest::Contains("q4_0"), vkfuse::usage_error);
    // Sizes must match the shape exactly.
    std::vector<std::byte> too_small(5998);
    CHECK_THROWS_WITH_AS(convert(std::as_bytes(std::span(values)), weight_format::f32, too_small, weight_format::f16,
                                 3, 1000),
                         doctest::Contains("the destination holds 5998 bytes, but a [3, 1000] f16 tensor is 6000"),
                         vkfuse::usage_error);
    CHECK_THROWS_AS(convert(std::as_bytes(std::span(values)), weight_format::f32, out, weight_format::f16, 3, 999),
                    vkfuse::usage_error);
    std::vector<block_q8_0> blocks(2);
    CHECK_THROWS_AS(quantize_q8_0(std::span<const float>(values.data(), 63), blocks), vkfuse::usage_error);
}

TEST_CASE("formats: a weight that cannot be quantised is reported with its row and columns") {
    const std::size_t rows = 4, cols = 256;
    std::vector<float> values = normal_values(rows * cols, 5);
    values[2 * cols + 70] = std::numeric_limits<float>::quiet_NaN();
    for (const unsigned threads : {1u, 3u}) {
        CHECK_THROWS_WITH_AS((void)encode(values, weight_format::q8_0, rows, cols, threads),
                             doctest::Contains("row 2, columns 64..95 of a [4, 256] tensor to q8_0: the block holds a "
                                               "NaN or an infinity"),
                             vkfuse::usage_error);
    }
    values[2 * cols + 70] = 1e6f;  // 1e6 / 8 = 125000: beyond f16 for q4_0, fine for q8_0 (7874)
    CHECK_THROWS_WITH_AS((void)encode(values, weight_format::q4_0, rows, cols),
                         doctest::Contains("row 2, columns 64..95"), vkfuse::usage_error);
    CHECK_NOTHROW((void)encode(values, weight_format::q8_0, rows, cols));
    // f16 has no such limit to report: the weight becomes infinity, as IEEE says.
    const std::vector<std::byte> half = encode(values, weight_format::f16, rows, cols);
    CHECK(std::isinf(decode(half, weight_format::f16, rows, cols)[2 * cols + 70]));
}

TEST_CASE("formats: relative L2 error of each format on N(0, 1) data and on data with outliers") {
    // The numbers docs/formats.md quotes come from tools/quantize_speed (2^24 values); these bound them loosely.
    const std::vector<float> gaussian = normal_values(std::size_t{1} << 16, 1);
    const std::vector<float> outliers = normal_values(std::size_t{1} << 16, 2, 0.001);
    struct bound {
        weight_format format;
        double gaussian, outliers;
    };
    for (const bound& b : {bound{weight_format::f32, 0.0, 0.0}, bound{weight_format::f16, 3e-4, 3e-4},
                           bound{weight_format::bf16, 3e-3, 3e-3}, bound{weight_format::q8_0, 6e-3, 2e-2},
                           bound{weight_format::q4_0, 0.11, 0.2}}) {
        const double g = relative_l2_error(gaussian, b.format), o = relative_l2_error(outliers, b.format);
        INFO(format_name(b.format) << ": N(0,1) " << g << ", outliers " << o);
        CHECK(g <= b.gaussian);
        CHECK(o <= b.outliers);
        if (b.format == weight_format::f32) CHECK(g == 0.0);
    }
    CHECK_THROWS_AS((void)relative_l2_error(std::span<const float>(gaussian.data(), 100), weight_format::q8_0),
                    vkfuse::usage_error);
}
