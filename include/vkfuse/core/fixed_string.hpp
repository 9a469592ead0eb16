// vkfuse/core/fixed_string.hpp — a structural string of compile-time length.
//
// Structural (public members, no user-provided comparison) so it can be a template argument:
//     input<"x", 896>        // "x" deduces fixed_string<1>
// and so generated GLSL can be published as an `inline constexpr` value of exactly the right size.
#pragma once

#include <cstddef>
#include <string_view>

namespace vkfuse {

template <std::size_t N>
struct fixed_string {
    char chars[N + 1] = {};  // always NUL-terminated, so c_str() needs no copy

    constexpr fixed_string() = default;
    constexpr fixed_string(const char (&text)[N + 1]) {  // NOLINT: implicit by design, for template arguments
        for (std::size_t i = 0; i <= N; ++i) chars[i] = text[i];
    }

    static constexpr std::size_t size() { return N; }
    constexpr const char* c_str() const { return chars; }
    constexpr const char* data() const { return chars; }
    constexpr std::string_view view() const { return {chars, N}; }
    constexpr operator std::string_view() const { return view(); }
    constexpr char operator[](std::size_t i) const { return chars[i]; }

    template <std::size_t M>
    constexpr bool operator==(const fixed_string<M>& other) const {
        return view() == other.view();
    }
};

template <std::size_t N>
fixed_string(const char (&)[N]) -> fixed_string<N - 1>;

} // namespace vkfuse

namespace vkfuse {

namespace detail {
constexpr std::size_t decimal_digits(std::size_t v) {
    std::size_t n = 1;
    while (v >= 10) {
        v /= 10;
        ++n;
    }
    return n;
}
} // namespace detail

// A name with a number appended, for placeholders of repeated blocks: numbered<"wq", 3> is "wq3".
template <fixed_string Base, std::size_t Index>
inline constexpr auto numbered = [] {
    constexpr std::size_t digits = detail::decimal_digits(Index);
    fixed_string<Base.size() + digits> out;
    for (std::size_t i = 0; i < Base.size(); ++i) out.chars[i] = Base[i];
    std::size_t v = Index;
    for (std::size_t i = 0; i < digits; ++i, v /= 10) out.chars[Base.size() + digits - 1 - i] = static_cast<char>('0' + v % 10);
    return out;
}();

} // namespace vkfuse
