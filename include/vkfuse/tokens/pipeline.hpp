// vkfuse/tokens/pipeline.hpp — the stages of a tokenizer around its BPE model, each as tokenizer.json describes it:
// normalizers (NFC, Prepend, Replace), pre-tokenizers (Split by a PCRE2 regex or a string, ByteLevel, Metaspace,
// Digits) that cut text into the pieces BPE encodes, and decoders (ByteLevel, Replace, ByteFallback, Fuse, Strip,
// Metaspace) that turn token strings back into text. vkfuse/tokens/tokenizer.hpp reads them from the file and runs
// them; nothing here reads JSON.
#pragma once

#include "../core/error.hpp"
#include "utf8.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vkfuse::tokens::detail {

// GPT-2's byte alphabet: every byte as a printable character, so that BPE works on text. Bytes that are printable
// Latin-1 (33-126, 161-172, 174-255) stand for themselves; the other 68 take the code points from 256 on, in order.
struct byte_alphabet {
    std::array<std::string, 256> of_byte;           // byte -> its character, as UTF-8
    std::unordered_map<char32_t, unsigned char> byte_of;  // character -> byte
    byte_alphabet() {
        char32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            const char32_t c = printable ? static_cast<char32_t>(b) : next++;
            utf8::append(of_byte[static_cast<std::size_t>(b)], c);
            byte_of.emplace(c, static_cast<unsigned char>(b));
        }
    }
};
inline const byte_alphabet& bytes_as_text() {
    static const byte_alphabet alphabet;
    return alphabet;
}

inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
    if (from.empty()) return;
    std::string out;
    std::size_t at = 0;
    for (std::size_t hit; (hit = s.find(from, at)) != std::string::npos; at = hit + from.size()) {
        out.append(s, at, hit - at);
        out += to;
    }
    if (at == 0) return;
    out.append(s, at, std::string::npos);
    s = std::move(out);
}

// A compiled PCRE2 pattern (UTF, Unicode properties; JIT where available), matched again and again.
class regex {
public:
    regex(std::string_view pattern, const std::string& where) {
        int code = 0;
        PCRE2_SIZE offset = 0;
        pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                             PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &code, &offset, nullptr);
        if (!compiled) {
            std::array<PCRE2_UCHAR, 256> message{};
            pcre2_get_error_message(code, message.data(), message.size());
            throw checkpoint_error(where + ": the regex does not compile (PCRE2: " +
                                   std::string(reinterpret_cast<const char*>(message.data())) + " at offset " +
                                   std::to_string(offset) + ")");
        }
        code_.reset(compiled);
        pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // where JIT is unavailable, matching is interpreted
        data_.reset(pcre2_match_data_create_from_pattern(compiled, nullptr));
    }
    // The first match in `s` at or after `from`: [begin, end), or nullopt.
    std::optional<std::pair<std::size_t, std::size_t>> find(std::string_view s, std::size_t from) const {
        const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), from,
                                   PCRE2_NO_UTF_CHECK, data_.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) return std::nullopt;
        if (rc < 0) throw error("vkfuse tokenizer: a regex failed while matching (PCRE2 error " + std::to_string(rc) + ")");
        const PCRE2_SIZE* v = pcre2_get_ovector_pointer(data_.get());
        return std::pair{static_cast<std::size_t>(v[0]), static_cast<std::size_t>(v[1])};
    }

private:
    struct free_code {
        void operator()(pcre2_code* c) const { pcre2_code_free(c); }
    };
    struct free_data {
        void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
    };
    std::unique_ptr<pcre2_code, free_code> code_;
    std::unique_ptr<pcre2_match_data, free_data> data_;  // one per regex: a tokenizer is not shared across threads
};

// ---- what tokenizer.json says of each stage ------------------------------------------------------------------------
struct normalizer {
    enum kind { nfc, prepend, replace } what = nfc;
    std::string from, to;  // prepend: to; replace: from -> to
};
struct pre_tokenizer {
    enum kind { split, byte_level, metaspace, digits } what = split;
    std::shared_ptr<regex> pattern;  // split (a string pattern is compiled quoted)
    enum behavior { isolated, removed, merged_with_previous, merged_with_next, contiguous } how = isolated;
    bool invert = false;
    bool add_prefix_space = false, use_regex = false;  // byte_level
    std::string replacement = "\xE2\x96\x81";          // metaspace: U+2581
    bool prepend_first = true, prepend_always = false, split_on_replacement = true;  // metaspace
    bool individual_digits = false;                                                  // digits
};
struct decoder {
    enum kind { byte_level, replace, byte_fallback, fuse, strip, metaspace } what = byte_level;
    std::string from, to;                 // replace; metaspace: from = the replacement character
    std::string content;                  // strip
    std::size_t start = 0, stop = 0;      // strip
    bool prepend = true;                  // metaspace: a leading space of the first token is dropped
};

// ---- normalizing ---------------------------------------------------------------------------------------------------
// NFC, applied only where it can change something: no ASCII character composes with the one before it, so the
// text is cut before every ASCII character, and each run of other characters is composed together with the
// ASCII character before it (an "e" and a combining accent after it).
inline std::string nfc(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    const auto ascii = [&](std::size_t i) { return static_cast<unsigned char>(text[i]) < 0x80; };
    for (std::size_t at = 0; at < text.size();) {
        if (ascii(at)) {
            out += text[at++];
            continue;
        }
        std::size_t start = at, end = at;
        if (start > 0) {  // the ASCII character before the run, already copied, is composed again with it
            --start;
            out.pop_back();
        }
        while (end < text.size() && !ascii(end)) ++end;
        utf8proc_uint8_t* result = nullptr;
        const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + start),
                                                static_cast<utf8proc_ssize_t>(end - start), &result,
                                                static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (n < 0) throw usage_error(std::string("vkfuse tokenizer: NFC failed: ") + utf8proc_errmsg(n));
        out.append(reinterpret_cast<const char*>(result), static_cast<std::size_t>(n));
        std::free(result);
        at = end;
    }
    return out;
}

// `s` through each normalizer in turn.
inline std::string normalize(const std::vector<normalizer>& normalizers, std::string_view s) {
    std::string out(s);
    for (const normalizer& n : normalizers) {
        switch (n.what) {
        case normalizer::nfc: out = nfc(out); break;
        case normalizer::prepend:
            if (!out.empty()) out.insert(0, n.to);
            break;
        case normalizer::replace: replace_all(out, n.from, n.to); break;
        }
    }
    return out;
}

// Splits every piece by pre-tokenizer t.

// ---- pre-tokenizing ------------------------------------------------------------------------------------------------
// Hugging Face's Split: the matches and the text between them, combined as `how` says.
inline void split(const regex& pattern, pre_tokenizer::behavior how, bool invert, std::string_view s,
                  std::vector<std::string>& into) {
    std::vector<std::pair<std::string_view, bool>> parts;  // (text, is a match)
    std::size_t at = 0;
    for (std::size_t from = 0; from < s.size();) {
        const auto m = pattern.find(s, from);
        if (!m) break;
        if (m->second == m->first) {  // an empty match: move on a character
            if (m->first >= s.size()) break;
            from = m->first + std::max<std::size_t>(1, utf8::character_length(s, m->first));
            continue;
        }
        if (m->first > at) parts.emplace_back(s.substr(at, m->first - at), false);
        parts.emplace_back(s.substr(m->first, m->second - m->first), true);
        at = from = m->second;
    }
    if (at < s.size()) parts.emplace_back(s.substr(at), false);
    if (invert)
        for (auto& p : parts) p.second = !p.second;
    std::vector<std::string> out;
    std::string pending;  // merged_with_next: matches waiting for what follows
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const auto [text, is_match] = parts[i];
        switch (how) {
        case pre_tokenizer::isolated: out.emplace_back(text); break;
        case pre_tokenizer::removed:
            if (!is_match) out.emplace_back(text);
            break;
        case pre_tokenizer::merged_with_previous:
            if (is_match && !out.empty() && i > 0)
                out.back() += text;
            else
                out.emplace_back(text);
            break;
        case pre_tokenizer::merged_with_next:
            if (is_match) {
                pending += text;
            } else {
                out.push_back(pending + std::string(text));
                pending.clear();
            }
            break;
        case pre_tokenizer::contiguous:
            if (is_match && i > 0 && parts[i - 1].second)
                out.back() += text;
            else
                out.emplace_back(text);
            break;
        }
    }
    if (!pending.empty()) out.push_back(std::move(pending));
    for (std::string& piece : out) into.push_back(std::move(piece));
}

// `first`: the pieces start the text (no added token before them), which Metaspace's "first" scheme asks.
inline void pre_tokenize(const pre_tokenizer& t, std::vector<std::string>& pieces, bool first) {
    std::vector<std::string> out;
    out.reserve(pieces.size());
    for (std::string& piece : pieces) {
        if (t.what == pre_tokenizer::byte_level) {
            if (t.add_prefix_space && !piece.empty() && piece.front() != ' ') piece.insert(0, " ");
            std::vector<std::string> parts;
            if (t.use_regex)
                split(*t.pattern, pre_tokenizer::isolated, false, piece, parts);
            else
                parts.push_back(std::move(piece));
            const byte_alphabet& alphabet = bytes_as_text();
            for (const std::string& p : parts) {
                std::string mapped;
                mapped.reserve(p.size() * 2);
                for (const char c : p) mapped += alphabet.of_byte[static_cast<unsigned char>(c)];
                out.push_back(std::move(mapped));
            }
        } else if (t.what == pre_tokenizer::metaspace) {
            replace_all(piece, " ", t.replacement);
            if (t.prepend_first && (t.prepend_always || (first && &piece == &pieces.front())) &&
                piece.rfind(t.replacement, 0) != 0)
                piece.insert(0, t.replacement);
            if (!t.split_on_replacement) {
                out.push_back(std::move(piece));
            } else {  // each replacement starts a piece (MergedWithNext)
                std::size_t start = 0;
                for (std::size_t hit; (hit = piece.find(t.replacement, start + 1)) != std::string::npos; start = hit)
                    out.push_back(piece.substr(start, hit - start));
                out.push_back(piece.substr(start));
            }
        } else {  // split, digits
            split(*t.pattern, t.what == pre_tokenizer::digits ? pre_tokenizer::isolated : t.how, t.invert, piece, out);
        }
    }
    pieces = std::move(out);
}

// ---- decoding ------------------------------------------------------------------------------------------------------
// Token strings through each decoder in turn, then joined: the text.
inline std::string run_decoders(const std::vector<decoder>& decoders, std::vector<std::string> tokens) {
    for (const decoder& d : decoders) {
        switch (d.what) {
        case decoder::byte_level: {
            // each token's characters back to their bytes; a token holding a character outside the alphabet
            // (an added token's text) is its own UTF-8
            const byte_alphabet& alphabet = bytes_as_text();
            std::string bytes, own;
            for (const std::string& t : tokens) {
                own.clear();
                bool mapped = true;
                for (std::size_t at = 0; at < t.size() && mapped;) {
                    const std::size_t n = std::max<std::size_t>(1, utf8::character_length(t, at));
                    const auto it = alphabet.byte_of.find(utf8::decode(t, at, n));
                    mapped = it != alphabet.byte_of.end();
                    if (mapped) own += static_cast<char>(it->second);
                    at += n;
                }
                bytes += mapped ? own : t;
            }
            tokens.assign(1, utf8::lossy(bytes));
            break;
        }
        case decoder::replace:
            for (std::string& t : tokens) replace_all(t, d.from, d.to);
            break;
        case decoder::byte_fallback: {
            std::vector<std::string> out;
            std::string bytes;
            std::size_t count = 0;
            const auto flush = [&] {
                if (count == 0) return;
                if (utf8::first_invalid(bytes) == bytes.size()) {
                    out.push_back(bytes);
                } else {
                    std::string marks;
                    for (std::size_t i = 0; i < count; ++i) marks += utf8::replacement;
                    out.push_back(marks);
                }
                bytes.clear();
                count = 0;
            };
            for (std::string& t : tokens) {
                const auto hex = [](char c) {
                    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                };
                if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) >= 0 && hex(t[4]) >= 0) {
                    bytes += static_cast<char>(hex(t[3]) * 16 + hex(t[4]));
                    ++count;
                } else {
                    flush();
                    out.push_back(std::move(t));
                }
            }
            flush();
            tokens = std::move(out);
            break;
        }
        case decoder::fuse: {
            std::string all;
            for (const std::string& t : tokens) all += t;
            tokens.assign(1, std::move(all));
            break;
        }
        case decoder::strip:
            for (std::string& t : tokens) {
                std::size_t begin = 0, end = t.size();
                for (std::size_t i = 0; i < d.start && t.compare(begin, d.content.size(), d.content) == 0; ++i)
                    begin += d.content.size();
                for (std::size_t i = 0; i < d.stop && end >= begin + d.content.size() &&
                                        t.compare(end - d.content.size(), d.content.size(), d.content) == 0;
                     ++i)
                    end -= d.content.size();
                t = t.substr(begin, end - begin);
            }
            break;
        case decoder::metaspace:
            for (std::size_t i = 0; i < tokens.size(); ++i) {
                replace_all(tokens[i], d.from, " ");
                if (i == 0 && d.prepend && !tokens[i].empty() && tokens[i].front() == ' ') tokens[i].erase(0, 1);
            }
            break;
        }
    }
    std::string text;  // without decoders, Hugging Face joins the tokens with spaces
    for (std::size_t i = 0; i < tokens.size(); ++i) text += (i > 0 && decoders.empty() ? " " : "") + tokens[i];
    return text;
}

} // namespace vkfuse::tokens::detail
