// vkfuse/tokens/utf8.hpp — the UTF-8 a tokenizer needs: checking text, walking its characters, and turning arbitrary
// bytes into text the way Hugging Face's decoders do (each ill-formed part becomes one U+FFFD).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vkfuse::tokens::utf8 {

inline constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed character starting at `at` (1 to 4), or 0 where the bytes there are not one: the
// Unicode standard's table 3-7 (no overlong forms, no surrogates, nothing above U+10FFFF).
constexpr std::size_t character_length(std::string_view s, std::size_t at) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const std::size_t left = s.size() - at;
    const unsigned char b0 = byte(at);
    if (b0 < 0x80) return 1;
    if (b0 < 0xC2 || b0 > 0xF4) return 0;
    const std::size_t need = b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
    if (left < need) return 0;
    const unsigned char b1 = byte(at + 1);
    const unsigned char low = b0 == 0xE0 ? 0xA0 : b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned char high = b0 == 0xED ? 0x9F : b0 == 0xF4 ? 0x8F : 0xBF;
    if (b1 < low || b1 > high) return 0;
    for (std::size_t i = 2; i < need; ++i)
        if ((byte(at + i) & 0xC0) != 0x80) return 0;
    return need;
}

// The offset of the first byte that does not start a well-formed character, or s.size() where the text is valid.
constexpr std::size_t first_invalid(std::string_view s) noexcept {
    for (std::size_t at = 0; at < s.size();) {
        if (static_cast<unsigned char>(s[at]) < 0x80) {
            ++at;
            continue;
        }
        const std::size_t n = character_length(s, at);
        if (n == 0) return at;
        at += n;
    }
    return s.size();
}

// The code point of the well-formed character of `length` bytes at `at`.
constexpr char32_t decode(std::string_view s, std::size_t at, std::size_t length) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(s[at + i])); };
    switch (length) {
    case 1: return byte(0);
    case 2: return (byte(0) & 0x1F) << 6 | (byte(1) & 0x3F);
    case 3: return (byte(0) & 0x0F) << 12 | (byte(1) & 0x3F) << 6 | (byte(2) & 0x3F);
    default: return (byte(0) & 0x07) << 18 | (byte(1) & 0x3F) << 12 | (byte(2) & 0x3F) << 6 | (byte(3) & 0x3F);
    }
}

inline void append(std::string& out, char32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | c >> 6);
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | c >> 12);
        out += static_cast<char>(0x80 | (c >> 6 & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | c >> 18);
        out += static_cast<char>(0x80 | (c >> 12 & 0x3F));
        out += static_cast<char>(0x80 | (c >> 6 & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

// The length of the longest prefix of the bytes at `at` that could begin a well-formed character (at least 1): what
// one U+FFFD replaces, the "maximal subpart" rule that Rust's String::from_utf8_lossy follows.
constexpr std::size_t maximal_subpart(std::string_view s, std::size_t at) noexcept {
    const unsigned char b0 = static_cast<unsigned char>(s[at]);
    if (b0 < 0xC2 || b0 > 0xF4) return 1;
    const std::size_t need = b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
    std::size_t n = 1;
    for (; n < need && at + n < s.size(); ++n) {
        const unsigned char b = static_cast<unsigned char>(s[at + n]);
        const unsigned char low = n == 1 && b0 == 0xE0 ? 0xA0 : n == 1 && b0 == 0xF0 ? 0x90 : 0x80;
        const unsigned char high = n == 1 && b0 == 0xED ? 0x9F : n == 1 && b0 == 0xF4 ? 0x8F : 0xBF;
        if (b < low || b > high) break;
    }
    return n;
}

// Bytes as text: well-formed characters kept, each ill-formed part one U+FFFD.
inline std::string lossy(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t at = 0; at < bytes.size();) {
        const std::size_t n = character_length(bytes, at);
        if (n != 0) {
            out.append(bytes.substr(at, n));
            at += n;
        } else {
            out += replacement;
            at += maximal_subpart(bytes, at);
        }
    }
    return out;
}

} // namespace vkfuse::tokens::utf8
