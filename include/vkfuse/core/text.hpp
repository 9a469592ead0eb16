// vkfuse/core/text.hpp — compile-time text building: count first, then write into exactly-sized storage.
//
// Why two passes: GCC 12 cannot evaluate constexpr std::string (its small-string union trips constant evaluation), and
// a growing std::vector<char> builder was measured 10x slower and hit -fconstexpr-ops-limit at ~134 KB of GLSL. Here
// every emitter is written once against a `text<Sink>` and run twice: with a counting sink to learn the length, then
// with a writing sink into a fixed_string of exactly that length.
//
//     constexpr auto s = vkfuse::build_text<[](auto& t) { t << "x = " << 42 << ";"; }>();   // fixed_string<7>
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "fixed_string.hpp"

namespace vkfuse {

namespace detail {

// Counts characters; the first pass.
struct counting_sink {
    std::size_t size = 0;
    constexpr void put(char) { ++size; }
    constexpr void put(std::string_view s) { size += s.size(); }
};

// Writes characters into storage the first pass sized; the second pass.
struct writing_sink {
    char* out;
    std::size_t size = 0;
    constexpr void put(char c) { out[size++] = c; }
    constexpr void put(std::string_view s) {
        for (char c : s) out[size++] = c;
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------------------------

template <class Sink>
constexpr void put_unsigned(Sink& sink, std::uint64_t v) {
    char digits[20] = {};
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) sink.put(digits[--n]);
}

template <class Sink>
constexpr void put_signed(Sink& sink, std::int64_t v) {
    if (v < 0) {
        sink.put('-');
        put_unsigned(sink, static_cast<std::uint64_t>(-(v + 1)) + 1);  // -(v+1)+1 avoids overflow at INT64_MIN
    } else {
        put_unsigned(sink, static_cast<std::uint64_t>(v));
    }
}

template <class Sink>
constexpr void put_hex32(Sink& sink, std::uint32_t v) {
    constexpr char hex[] = "0123456789abcdef";
    sink.put("0x");
    for (int shift = 28; shift >= 0; shift -= 4) sink.put(hex[(v >> shift) & 0xf]);
}

// Powers of ten that are exact doubles (10^22 < 2^53 * 2^22 is the largest exactly representable one).
inline constexpr double exact_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                           1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

// A decimal D * 10^-scale chosen to denote a float exactly.
struct decimal {
    std::uint64_t digits = 0;  // D, at most 9 significant digits
    int scale = 0;             // value = digits * 10^-scale
    bool found = false;
};

// The shortest decimal (at most 9 significant digits) that reads back as `v` under the reading GLSL compilers do:
// decimal -> nearest double -> nearest float. The read-back is checked exactly, not assumed: D < 2^53 and 10^|scale|
// <= 10^22 are exact doubles, so one IEEE division or multiplication IS the correctly rounded double of the decimal,
// and the cast to float rounds that double as the compiler does. Values outside this range report not found.
constexpr decimal shortest_decimal(float v) {
    const double d = v;  // exact
    int e10 = 0;         // floor(log10(d)), found by stepping through exact powers
    if (d >= 1.0) {
        while (e10 < 22 && d >= exact_pow10[e10 + 1]) ++e10;
        if (e10 == 22) return {};
    } else {
        e10 = -1;
        while (e10 > -22 && d * exact_pow10[-e10] < 1.0) --e10;  // may be off by one near 10^k: tolerated below
        if (e10 <= -22) return {};
    }
    for (int precision = 1; precision <= 9; ++precision) {
        for (int shift = -1; shift <= 1; ++shift) {  // tolerate an e10 that is off by one near a power of ten
            const int scale = precision - 1 - (e10 + shift);
            if (scale > 22 || scale < -22) continue;
            const double scaled = scale >= 0 ? d * exact_pow10[scale] : d / exact_pow10[-scale];
            if (scaled >= 1e16) continue;
            const auto candidate = static_cast<std::uint64_t>(scaled + 0.5);
            const double back = scale >= 0 ? static_cast<double>(candidate) / exact_pow10[scale]
                                           : static_cast<double>(candidate) * exact_pow10[-scale];
            if (candidate != 0 && static_cast<float>(back) == v) return {candidate, scale, true};
        }
    }
    return {};
}

template <class Sink>
constexpr void put_decimal(Sink& sink, decimal dec) {
    // Plain notation: digits with the point placed `scale` digits from the right, zero-padded; always has a point.
    char digits[24] = {};
    int n = 0;
    for (auto v = dec.digits; v != 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
    // strip trailing zeros into the scale so 100 with scale 2 prints as 1.0
    int lead = 0;
    while (lead < n - 1 && digits[lead] == '0') {
        ++lead;
        --dec.scale;
    }
    const int significant = n - lead;
    if (dec.scale <= 0) {
        for (int i = n - 1; i >= lead; --i) sink.put(digits[i]);
        for (int i = 0; i < -dec.scale; ++i) sink.put('0');
        sink.put(".0");
    } else if (dec.scale < significant) {
        for (int i = n - 1; i >= lead; --i) {
            sink.put(digits[i]);
            if (i - lead == dec.scale) sink.put('.');
        }
    } else {
        sink.put("0.");
        for (int i = 0; i < dec.scale - significant; ++i) sink.put('0');
        for (int i = n - 1; i >= lead; --i) sink.put(digits[i]);
    }
}

// A float written so that GLSL reads back exactly the same bits: the shortest round-tripping decimal where one
// exists, otherwise (inf, NaN, extreme magnitudes) the bit pattern itself.
template <class Sink>
constexpr void put_float(Sink& sink, float v) {
    const auto bits = std::bit_cast<std::uint32_t>(v);
    const bool negative = (bits >> 31) != 0;
    const float magnitude = std::bit_cast<float>(bits & 0x7fffffffu);
    if (magnitude == 0.0f) {
        sink.put(negative ? "-0.0" : "0.0");
        return;
    }
    const bool finite = (bits & 0x7f800000u) != 0x7f800000u;
    const decimal dec = finite ? shortest_decimal(magnitude) : decimal{};
    if (!dec.found) {
        sink.put("uintBitsToFloat(");
        put_hex32(sink, bits);
        sink.put("u)");
        return;
    }
    if (negative) sink.put('-');
    put_decimal(sink, dec);
}

} // namespace detail

// A float to be written as a GLSL literal (distinct type, so `t << 2.0f` cannot silently mean something else).
struct float_literal {
    float value;
};

// Appends to a std::string: the same emitters at run time (messages, plan descriptions), `text<string_sink>`.
struct string_sink {
    std::string* out;
    void put(char c) { out->push_back(c); }
    void put(std::string_view s) { out->append(s); }
};

// A text under construction; `Sink` is the counting or the writing pass. Emitters take `auto& t` and use `<<`.
template <class Sink>
class text {
public:
    constexpr explicit text(Sink& sink) : sink_(sink) {}

    constexpr text& operator<<(std::string_view s) {
        sink_.put(s);
        return *this;
    }
    constexpr text& operator<<(const char* s) { return *this << std::string_view(s); }
    constexpr text& operator<<(char c) {
        sink_.put(c);
        return *this;
    }
    template <class I>
        requires(std::is_integral_v<I> && !std::is_same_v<I, char> && !std::is_same_v<I, bool>)
    constexpr text& operator<<(I v) {
        if constexpr (std::is_signed_v<I>)
            detail::put_signed(sink_, v);
        else
            detail::put_unsigned(sink_, v);
        return *this;
    }
    constexpr text& operator<<(float_literal f) {
        detail::put_float(sink_, f.value);
        return *this;
    }
    constexpr text& operator<<(float) = delete;  // say float_literal{v}: a bare float would be ambiguous in intent
    constexpr text& operator<<(double) = delete;

    // Repeat `s` n times (indentation).
    constexpr text& repeat(std::string_view s, int n) {
        for (int i = 0; i < n; ++i) sink_.put(s);
        return *this;
    }

private:
    Sink& sink_;
};

// Length of the text `emit` writes.
template <class Emit>
constexpr std::size_t text_size(Emit emit) {
    detail::counting_sink sink;
    text<detail::counting_sink> t(sink);
    emit(t);
    return sink.size;
}

// The text `Emit` writes, as a fixed_string of exactly its length. `Emit` is a captureless callable `(auto& t)`.
template <auto Emit>
constexpr auto build_text() {
    constexpr std::size_t n = text_size(Emit);
    fixed_string<n> out;
    detail::writing_sink sink{out.chars};
    text<detail::writing_sink> t(sink);
    Emit(t);
    return out;
}

// A number formatted at compile time, for tests and messages.
template <auto V>
inline constexpr auto format_v = build_text<[](auto& t) {
    if constexpr (std::is_floating_point_v<decltype(V)>)
        t << float_literal{static_cast<float>(V)};
    else
        t << V;
}>();

} // namespace vkfuse
