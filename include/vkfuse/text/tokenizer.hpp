// vkfuse/text/tokenizer.hpp — a checkpoint's own tokenizer, read from its tokenizer.json, giving Hugging Face
// `tokenizers`' ids for the same text, and text for ids (streamed a token at a time).
//
//     auto tok = vkfuse::text::tokenizer::from_file("/models/Qwen2.5-0.5B/tokenizer.json");
//     std::vector<std::uint32_t> ids = tok.encode("Hello, world");      // [9707, 11, 1879]
//     std::string again = tok.decode(ids);                               // "Hello, world"
//     vkfuse::text::decode_stream out(tok);                              // text as tokens arrive: out.step(id)
//
// What it reads is what the supported families declare (docs/text.md lists it): a BPE model — byte-level (GPT-2's
// byte alphabet: Qwen2, Qwen2.5, Qwen3, Llama 3) or SentencePiece-style (`▁` for spaces, bytes as <0xXX> tokens:
// Llama 2, Mistral, Gemma) — with its merges; normalizers NFC, Prepend, Replace, Sequence; pre-tokenizers Split (a
// regex, through PCRE2 with Unicode properties, or a string), ByteLevel, Metaspace, Digits, Sequence; the added
// tokens, matched in the raw text before anything else (leftmost, longest); the post-processor's template (a BOS
// with add_special_tokens); decoders ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence. Anything
// else in the file is refused by name, so that an unsupported tokenizer never gives silently different ids. The file
// is untrusted input: every defect is a vkfuse::checkpoint_error naming the file and the field.
//
// Needs PCRE2 (libpcre2-dev: link pcre2-8) and utf8proc (libutf8proc-dev: link utf8proc); CMake's vkfuse::text
// target brings both.
#pragma once

#include "../core/error.hpp"
#include "utf8.hpp"

#include <nlohmann/json.hpp>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace vkfuse::text {

namespace detail {

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

} // namespace detail

class decode_stream;

class tokenizer {
public:
    // Reads `path` (a tokenizer.json). Throws checkpoint_error naming the file and the field for anything malformed
    // or unsupported.
    static tokenizer from_file(const std::filesystem::path& path) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec))
            throw checkpoint_error("vkfuse tokenizer: " + path.string() +
                                   (std::filesystem::exists(path, ec) ? " is not a regular file" : " does not exist") +
                                   "; give the tokenizer.json of the model's folder.");
        std::ifstream in(path, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        if (!in && !in.eof()) throw checkpoint_error("vkfuse tokenizer: cannot read " + path.string());
        return from_json(text.str(), path.string());
    }
    // The same from the file's text; `origin` names it in messages.
    static tokenizer from_json(std::string_view json, const std::string& origin = "tokenizer.json") {
        tokenizer t;
        t.origin_ = origin;
        nlohmann::json doc;
        try {
            doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, true, false);
        } catch (const nlohmann::json::exception& e) {
            throw checkpoint_error("vkfuse tokenizer: " + origin + " is not valid JSON: " + e.what());
        }
        t.read(doc);
        return t;
    }

    // The ids of `text` (UTF-8), as Hugging Face's `encode(text, add_special_tokens=...)`: added tokens in the text
    // are matched first; `add_special` adds what the post-processor's template adds (Llama 3's BOS, say).
    std::vector<std::uint32_t> encode(std::string_view text, bool add_special = false) const {
        if (const std::size_t bad = utf8::first_invalid(text); bad != text.size())
            throw usage_error("vkfuse tokenizer: the text is not valid UTF-8 at byte " + std::to_string(bad) +
                              "; give UTF-8 text.");
        std::vector<std::uint32_t> ids;
        if (add_special) ids.insert(ids.end(), prefix_.begin(), prefix_.end());
        std::size_t plain = 0;  // the start of the text not yet tokenized
        for (std::size_t at = 0; at < text.size();) {
            const auto hit = match_added(text, at);
            if (!hit) {
                ++at;
                continue;
            }
            encode_plain(text.substr(plain, hit->begin - plain), plain == 0, ids);
            ids.push_back(hit->id);
            at = plain = hit->end;
        }
        encode_plain(text.substr(plain), plain == 0, ids);
        if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
        return ids;
    }

    // The text of `ids` (invalid UTF-8 the decoders produce becomes U+FFFD, as Hugging Face's decode does);
    // `skip_special` leaves out special tokens. An id outside the vocabulary is a usage_error.
    std::string decode(std::span<const std::uint32_t> ids, bool skip_special = false) const {
        std::vector<std::string> tokens;
        tokens.reserve(ids.size());
        for (const std::uint32_t id : ids) {
            if (id >= token_of_.size() || !known_[id])
                throw usage_error("vkfuse tokenizer: id " + std::to_string(id) + " is not in the vocabulary of " +
                                  origin_ + " (" + std::to_string(size()) + " ids).");
            if (skip_special && special_[id]) continue;
            tokens.push_back(token_of_[id]);
        }
        return run_decoders(std::move(tokens));
    }

    // The token string of `id` as the vocabulary spells it (byte-level tokens in GPT-2's alphabet), or nullopt.
    std::optional<std::string_view> token(std::uint32_t id) const {
        if (id >= token_of_.size() || !known_[id]) return std::nullopt;
        return token_of_[id];
    }
    // The id of a token string (an added token's content, or a vocabulary entry), or nullopt.
    std::optional<std::uint32_t> id(std::string_view token) const {
        if (const auto it = vocab_.find(std::string(token)); it != vocab_.end()) return it->second;
        for (const added& a : added_)
            if (a.content == token) return a.id;
        return std::nullopt;
    }
    bool special(std::uint32_t id) const { return id < special_.size() && special_[id]; }
    // Ids in use (the largest id + 1).
    std::size_t size() const { return token_of_.size(); }
    const std::string& origin() const { return origin_; }

private:
    friend class decode_stream;

    // ---- the parts of a tokenizer.json -----------------------------------------------------------------------------
    struct added {
        std::uint32_t id = 0;
        std::string content;
        bool special = false, lstrip = false, rstrip = false, single_word = false;
    };
    struct normalizer {
        enum kind { nfc, prepend, replace } what = nfc;
        std::string from, to;  // prepend: to; replace: from -> to
    };
    struct pre_tokenizer {
        enum kind { split, byte_level, metaspace, digits } what = split;
        std::shared_ptr<detail::regex> pattern;  // split (a string pattern is compiled quoted)
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
    struct merge {
        std::uint32_t rank = 0, id = 0;
    };
    struct matched {
        std::size_t begin = 0, end = 0;
        std::uint32_t id = 0;
    };

    // ---- reading ---------------------------------------------------------------------------------------------------
    [[noreturn]] void refuse(const std::string& field, const std::string& what) const {
        throw checkpoint_error("vkfuse tokenizer: " + origin_ + ": " + field + " " + what);
    }
    static const nlohmann::json* member(const nlohmann::json& j, const char* name) {
        if (!j.is_object()) return nullptr;
        const auto it = j.find(name);
        return it == j.end() || it->is_null() ? nullptr : &*it;
    }
    std::string string_of(const nlohmann::json& j, const char* name, const std::string& field) const {
        const nlohmann::json* v = member(j, name);
        if (!v || !v->is_string()) refuse(field + "." + name, "is missing or not a string");
        return v->get<std::string>();
    }
    bool flag_of(const nlohmann::json& j, const char* name, bool otherwise) const {
        const nlohmann::json* v = member(j, name);
        if (!v) return otherwise;
        if (!v->is_boolean()) refuse(name, "is not true or false");
        return v->get<bool>();
    }
    std::uint32_t id_of(const nlohmann::json& v, const std::string& field) const {
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() >= (1u << 26))
            refuse(field, "is not an id (a whole number below 2^26)");
        return v.get<std::uint32_t>();
    }

    void read(const nlohmann::json& doc) {
        if (!doc.is_object()) refuse("the file", "is not a JSON object");
        const nlohmann::json* model = member(doc, "model");
        if (!model || !model->is_object()) refuse("\"model\"", "is missing");
        read_model(*model);
        if (const nlohmann::json* n = member(doc, "normalizer")) read_normalizer(*n, "\"normalizer\"");
        read_added(doc);
        if (const nlohmann::json* p = member(doc, "pre_tokenizer")) read_pre_tokenizer(*p, "\"pre_tokenizer\"");
        if (const nlohmann::json* p = member(doc, "post_processor")) read_post_processor(*p, "\"post_processor\"");
        if (const nlohmann::json* d = member(doc, "decoder")) read_decoder(*d, "\"decoder\"");
        // where a long piece may be cut before a "▁" (see bpe): the characters some token joins to a "▁" after them
        for (const auto& [text, id] : vocab_)
            for (std::size_t at = 0; (at = text.find(space_mark, at + 1)) != std::string::npos && at < text.size();) {
                std::size_t start = at - 1;
                while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
                const std::string before = text.substr(start, at - start);
                if (before != space_mark) joins_space_mark_.insert(before);
            }
        // the table from id to token: vocabulary and added tokens
        for (const auto& [text, id] : vocab_) set_token(id, text, false);
        for (const added& a : added_) set_token(a.id, a.content, a.special);
        for (const added& a : added_) {
            std::size_t node = 0;
            for (const char c : a.content) {
                const std::uint64_t key = static_cast<std::uint64_t>(node) << 8 | static_cast<unsigned char>(c);
                auto it = trie_edges_.find(key);
                if (it == trie_edges_.end()) {
                    trie_token_.push_back(-1);
                    it = trie_edges_.emplace(key, trie_token_.size() - 1).first;
                }
                node = it->second;
            }
            if (trie_token_[node] < 0) trie_token_[node] = static_cast<std::int64_t>(&a - added_.data());
            first_bytes_[static_cast<unsigned char>(a.content.front())] = true;
        }
    }
    void set_token(std::uint32_t id, const std::string& text, bool special) {
        if (id >= token_of_.size()) {
            token_of_.resize(id + 1);
            known_.resize(id + 1, false);
            special_.resize(id + 1, false);
        }
        token_of_[id] = text;
        known_[id] = true;
        special_[id] = special_[id] || special;
    }

    void read_model(const nlohmann::json& m) {
        const std::string type = member(m, "type") && m["type"].is_string() ? m["type"].get<std::string>() : "BPE";
        if (type != "BPE")
            refuse("model.type", "is \"" + type + "\"; vkfuse reads BPE tokenizers (Qwen2, Qwen3, Llama 2 and 3, "
                                             "Mistral, Gemma), not WordPiece, Unigram or WordLevel ones.");
        if (const nlohmann::json* d = member(m, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0))
            refuse("model.dropout", "is set; BPE dropout (random merges) is for training, not supported");
        for (const char* name : {"continuing_subword_prefix", "end_of_word_suffix"})
            if (const nlohmann::json* v = member(m, name); v && !(v->is_string() && v->get<std::string>().empty()))
                refuse(std::string("model.") + name, "is set; the supported families do not use it");
        byte_fallback_ = flag_of(m, "byte_fallback", false);
        ignore_merges_ = flag_of(m, "ignore_merges", false);
        fuse_unk_ = flag_of(m, "fuse_unk", false);
        const nlohmann::json* vocab = member(m, "vocab");
        if (!vocab || !vocab->is_object() || vocab->empty()) refuse("model.vocab", "is missing or empty");
        vocab_.reserve(vocab->size());
        for (const auto& [text, id] : vocab->items()) {
            if (text.empty() || utf8::first_invalid(text) != text.size())
                refuse("model.vocab", "holds a token that is empty or not UTF-8");
            vocab_.emplace(text, id_of(id, "model.vocab[\"" + text + "\"]"));
        }
        if (const nlohmann::json* unk = member(m, "unk_token")) {
            if (!unk->is_string()) refuse("model.unk_token", "is not a string");
            const auto it = vocab_.find(unk->get<std::string>());
            if (it == vocab_.end()) refuse("model.unk_token", "is not in the vocabulary");
            unk_ = it->second;
        }
        const nlohmann::json* merges = member(m, "merges");
        if (merges && !merges->is_array()) refuse("model.merges", "is not an array");
        if (merges) merges_.reserve(merges->size());
        std::uint32_t rank = 0;
        for (const nlohmann::json& pair : merges ? *merges : nlohmann::json::array()) {
            std::string left, right;
            if (pair.is_string()) {  // "a b"
                const std::string s = pair.get<std::string>();
                const std::size_t space = s.find(' ');
                if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                    refuse("model.merges[" + std::to_string(rank) + "]", "is not two tokens separated by a space");
                left = s.substr(0, space);
                right = s.substr(space + 1);
            } else if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
                left = pair[0].get<std::string>();
                right = pair[1].get<std::string>();
            } else {
                refuse("model.merges[" + std::to_string(rank) + "]", "is neither \"a b\" nor [\"a\", \"b\"]");
            }
            const auto a = vocab_.find(left), b = vocab_.find(right), ab = vocab_.find(left + right);
            if (a == vocab_.end() || b == vocab_.end() || ab == vocab_.end())
                refuse("model.merges[" + std::to_string(rank) + "]",
                       "names a token (or a merged token) that is not in the vocabulary");
            merges_.emplace(pair_key(a->second, b->second), merge{rank, ab->second});
            ++rank;
        }
        // SentencePiece-style byte tokens <0x00> ... <0xFF>, for byte_fallback
        for (int b = 0; b < 256; ++b) {
            static constexpr char hex[] = "0123456789ABCDEF";
            const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
            const auto it = vocab_.find(name);
            byte_token_[static_cast<std::size_t>(b)] = it == vocab_.end() ? -1 : static_cast<std::int64_t>(it->second);
        }
    }

    void read_added(const nlohmann::json& doc) {
        const nlohmann::json* list = member(doc, "added_tokens");
        if (!list) return;
        if (!list->is_array()) refuse("\"added_tokens\"", "is not an array");
        for (std::size_t i = 0; i < list->size(); ++i) {
            const nlohmann::json& t = (*list)[i];
            const std::string field = "added_tokens[" + std::to_string(i) + "]";
            if (!t.is_object() || !member(t, "id")) refuse(field, "is not an object with an \"id\"");
            added a;
            a.id = id_of(t["id"], field + ".id");
            a.content = string_of(t, "content", field);
            if (a.content.empty() || utf8::first_invalid(a.content) != a.content.size())
                refuse(field + ".content", "is empty or not UTF-8");
            a.special = flag_of(t, "special", false);
            a.lstrip = flag_of(t, "lstrip", false);
            a.rstrip = flag_of(t, "rstrip", false);
            a.single_word = flag_of(t, "single_word", false);
            if (flag_of(t, "normalized", !a.special) && a.content != normalized(a.content))
                refuse(field, "(\"" + a.content + "\") is matched after normalization, which changes it; vkfuse "
                              "matches added tokens in the raw text only");
            added_.push_back(std::move(a));
        }
    }

    void read_normalizer(const nlohmann::json& n, const std::string& field) {
        const std::string type = string_of(n, "type", field);
        if (type == "Sequence") {
            const nlohmann::json* list = member(n, "normalizers");
            if (!list || !list->is_array()) refuse(field + ".normalizers", "is missing");
            for (std::size_t i = 0; i < list->size(); ++i)
                read_normalizer((*list)[i], field + ".normalizers[" + std::to_string(i) + "]");
        } else if (type == "NFC") {
            normalizers_.push_back({normalizer::nfc, {}, {}});
        } else if (type == "Prepend") {
            normalizers_.push_back({normalizer::prepend, {}, string_of(n, "prepend", field)});
        } else if (type == "Replace") {
            normalizers_.push_back({normalizer::replace, string_pattern(n, field), string_of(n, "content", field)});
        } else {
            refuse(field + ".type", "is \"" + type + "\"; the normalizers vkfuse reads are NFC, Prepend, Replace "
                                                     "(a string pattern) and Sequence");
        }
    }
    std::string string_pattern(const nlohmann::json& n, const std::string& field) const {
        const nlohmann::json* p = member(n, "pattern");
        if (!p || !member(*p, "String") || !(*p)["String"].is_string())
            refuse(field + ".pattern", "is not {\"String\": ...} (a regex pattern here is not supported)");
        const std::string s = (*p)["String"].get<std::string>();
        if (s.empty()) refuse(field + ".pattern", "is empty");
        return s;
    }

    void read_pre_tokenizer(const nlohmann::json& p, const std::string& field) {
        const std::string type = string_of(p, "type", field);
        pre_tokenizer t;
        if (type == "Sequence") {
            const nlohmann::json* list = member(p, "pretokenizers");
            if (!list || !list->is_array()) refuse(field + ".pretokenizers", "is missing");
            for (std::size_t i = 0; i < list->size(); ++i)
                read_pre_tokenizer((*list)[i], field + ".pretokenizers[" + std::to_string(i) + "]");
            return;
        }
        if (type == "Split") {
            const nlohmann::json* pattern = member(p, "pattern");
            if (pattern && member(*pattern, "Regex") && (*pattern)["Regex"].is_string()) {
                t.pattern = std::make_shared<detail::regex>((*pattern)["Regex"].get<std::string>(), origin_ + ": " + field);
            } else if (pattern && member(*pattern, "String") && (*pattern)["String"].is_string()) {
                const std::string s = (*pattern)["String"].get<std::string>();
                if (s.empty()) refuse(field + ".pattern", "is empty");
                t.pattern = std::make_shared<detail::regex>(quoted(s), origin_ + ": " + field);
            } else {
                refuse(field + ".pattern", "is neither {\"Regex\": ...} nor {\"String\": ...}");
            }
            const std::string how = string_of(p, "behavior", field);
            t.how = how == "Isolated"             ? pre_tokenizer::isolated
                    : how == "Removed"            ? pre_tokenizer::removed
                    : how == "MergedWithPrevious" ? pre_tokenizer::merged_with_previous
                    : how == "MergedWithNext"     ? pre_tokenizer::merged_with_next
                    : how == "Contiguous"         ? pre_tokenizer::contiguous
                                                  : (refuse(field + ".behavior", "is \"" + how + "\", not one of "
                                                                                "Isolated, Removed, MergedWithPrevious, "
                                                                                "MergedWithNext, Contiguous"),
                                                     pre_tokenizer::isolated);
            t.invert = flag_of(p, "invert", false);
        } else if (type == "ByteLevel") {
            t.what = pre_tokenizer::byte_level;
            t.add_prefix_space = flag_of(p, "add_prefix_space", true);
            t.use_regex = flag_of(p, "use_regex", true);
            if (t.use_regex)  // GPT-2's own split
                t.pattern = std::make_shared<detail::regex>(
                    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
                    origin_ + ": " + field);
            byte_level_ = true;
        } else if (type == "Metaspace") {
            t.what = pre_tokenizer::metaspace;
            t.replacement = string_of(p, "replacement", field);
            const std::string scheme = member(p, "prepend_scheme") ? string_of(p, "prepend_scheme", field)
                                       : flag_of(p, "add_prefix_space", true) ? "always" : "never";
            if (scheme != "always" && scheme != "first" && scheme != "never")
                refuse(field + ".prepend_scheme", "is \"" + scheme + "\", not always, first or never");
            t.prepend_first = scheme != "never";
            t.prepend_always = scheme == "always";
            t.split_on_replacement = flag_of(p, "split", true);
        } else if (type == "Digits") {
            t.what = pre_tokenizer::digits;
            t.individual_digits = flag_of(p, "individual_digits", false);
            t.pattern = std::make_shared<detail::regex>(t.individual_digits ? "\\p{N}" : "\\p{N}+", origin_ + ": " + field);
        } else {
            refuse(field + ".type", "is \"" + type + "\"; the pre-tokenizers vkfuse reads are Split, ByteLevel, "
                                                     "Metaspace, Digits and Sequence");
        }
        pre_tokenizers_.push_back(std::move(t));
    }

    void read_post_processor(const nlohmann::json& p, const std::string& field) {
        const std::string type = string_of(p, "type", field);
        if (type == "Sequence") {
            const nlohmann::json* list = member(p, "processors");
            if (!list || !list->is_array()) refuse(field + ".processors", "is missing");
            for (std::size_t i = 0; i < list->size(); ++i)
                read_post_processor((*list)[i], field + ".processors[" + std::to_string(i) + "]");
        } else if (type == "ByteLevel") {  // offsets only: the ids are unchanged
        } else if (type == "TemplateProcessing") {
            const nlohmann::json* single = member(p, "single");
            const nlohmann::json* specials = member(p, "special_tokens");
            if (!single || !single->is_array()) refuse(field + ".single", "is missing");
            bool sequence = false;
            for (const nlohmann::json& piece : *single) {
                if (member(piece, "Sequence")) {
                    if (sequence) refuse(field + ".single", "holds the sequence twice");
                    sequence = true;
                    continue;
                }
                const nlohmann::json* s = member(piece, "SpecialToken");
                if (!s) refuse(field + ".single", "holds something other than SpecialToken and Sequence");
                const std::string name = string_of(*s, "id", field + ".single");
                const nlohmann::json* entry = specials ? member(*specials, name.c_str()) : nullptr;
                const nlohmann::json* ids = entry ? member(*entry, "ids") : nullptr;
                if (!ids || !ids->is_array()) refuse(field + ".special_tokens", "has no ids for \"" + name + "\"");
                for (const nlohmann::json& v : *ids) (sequence ? suffix_ : prefix_).push_back(id_of(v, field));
            }
            if (!sequence) refuse(field + ".single", "does not hold the sequence");
        } else {
            refuse(field + ".type", "is \"" + type + "\"; the post-processors vkfuse reads are TemplateProcessing, "
                                                     "ByteLevel and Sequence");
        }
    }

    void read_decoder(const nlohmann::json& d, const std::string& field) {
        const std::string type = string_of(d, "type", field);
        decoder x;
        if (type == "Sequence") {
            const nlohmann::json* list = member(d, "decoders");
            if (!list || !list->is_array()) refuse(field + ".decoders", "is missing");
            for (std::size_t i = 0; i < list->size(); ++i)
                read_decoder((*list)[i], field + ".decoders[" + std::to_string(i) + "]");
            return;
        }
        if (type == "ByteLevel") {
            x.what = decoder::byte_level;
        } else if (type == "Replace") {
            x.what = decoder::replace;
            x.from = string_pattern(d, field);
            x.to = string_of(d, "content", field);
        } else if (type == "ByteFallback") {
            x.what = decoder::byte_fallback;
        } else if (type == "Fuse") {
            x.what = decoder::fuse;
        } else if (type == "Strip") {
            x.what = decoder::strip;
            x.content = string_of(d, "content", field);
            if (utf8::character_length(x.content, 0) != x.content.size())
                refuse(field + ".content", "is not one character");
            for (const char* name : {"start", "stop"}) {
                const nlohmann::json* v = member(d, name);
                if (!v || !v->is_number_unsigned() || v->get<std::uint64_t>() > 1024)
                    refuse(field + "." + name, "is not a small whole number");
                (name[2] == 'a' ? x.start : x.stop) = v->get<std::size_t>();
            }
        } else if (type == "Metaspace") {
            x.what = decoder::metaspace;
            x.from = string_of(d, "replacement", field);
            const std::string scheme = member(d, "prepend_scheme") ? string_of(d, "prepend_scheme", field)
                                       : flag_of(d, "add_prefix_space", true) ? "always" : "never";
            x.prepend = scheme != "never";
        } else {
            refuse(field + ".type", "is \"" + type + "\"; the decoders vkfuse reads are ByteLevel, Replace, "
                                                     "ByteFallback, Fuse, Strip, Metaspace and Sequence");
        }
        decoders_.push_back(std::move(x));
    }

    // ---- encoding --------------------------------------------------------------------------------------------------
    // A regex matching exactly `s`.
    static std::string quoted(std::string_view s) {
        std::string out;
        for (const char c : s) {
            if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
            out += c;
        }
        return out;
    }
    static std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) { return std::uint64_t{a} << 32 | b; }

    // The added token matching at `at` (leftmost, longest), with lstrip/rstrip's whitespace taken in.
    std::optional<matched> match_added(std::string_view text, std::size_t at) const {
        if (added_.empty()) return std::nullopt;
        const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
        // lstrip: whitespace before the token belongs to it, so a match may start on the whitespace
        std::size_t start = at;
        while (start < text.size() && is_space(text[start])) ++start;
        for (const std::size_t from : {at, start}) {
            if (from >= text.size() || !first_bytes_[static_cast<unsigned char>(text[from])]) continue;
            std::size_t node = 0;
            std::int64_t best = -1;
            std::size_t best_end = 0;
            for (std::size_t i = from; i < text.size(); ++i) {
                const auto it = trie_edges_.find(static_cast<std::uint64_t>(node) << 8 | static_cast<unsigned char>(text[i]));
                if (it == trie_edges_.end()) break;
                node = it->second;
                if (trie_token_[node] >= 0) {
                    best = trie_token_[node];
                    best_end = i + 1;
                }
            }
            if (best < 0) continue;
            const added& a = added_[static_cast<std::size_t>(best)];
            if (from != at && !a.lstrip) continue;  // whitespace before a token that does not take it
            if (a.single_word) {
                const auto word = [&](std::size_t i) {
                    const unsigned char c = static_cast<unsigned char>(text[i]);
                    return c >= 0x80 || std::isalnum(c) || c == '_';
                };
                if ((from > 0 && word(from - 1)) || (best_end < text.size() && word(best_end))) continue;
            }
            std::size_t end = best_end;
            if (a.rstrip)
                while (end < text.size() && is_space(text[end])) ++end;
            return matched{at, end, a.id};
        }
        return std::nullopt;
    }

    // NFC, applied only where it can change something: no ASCII character composes with the one before it, so the
    // text is cut before every ASCII character, and each run of other characters is composed together with the
    // ASCII character before it (an "e" and a combining accent after it).
    static std::string nfc(std::string_view text) {
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

    std::string normalized(std::string_view s) const {
        std::string out(s);
        for (const normalizer& n : normalizers_) {
            switch (n.what) {
            case normalizer::nfc: out = nfc(out); break;
            case normalizer::prepend:
                if (!out.empty()) out.insert(0, n.to);
                break;
            case normalizer::replace: detail::replace_all(out, n.from, n.to); break;
            }
        }
        return out;
    }

    // Splits every piece by pre-tokenizer t.
    // `first`: the pieces start the text (no added token before them), which Metaspace's "first" scheme asks.
    void pre_tokenize(const pre_tokenizer& t, std::vector<std::string>& pieces, bool first) const {
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
                const detail::byte_alphabet& alphabet = detail::bytes_as_text();
                for (const std::string& p : parts) {
                    std::string mapped;
                    mapped.reserve(p.size() * 2);
                    for (const char c : p) mapped += alphabet.of_byte[static_cast<unsigned char>(c)];
                    out.push_back(std::move(mapped));
                }
            } else if (t.what == pre_tokenizer::metaspace) {
                detail::replace_all(piece, " ", t.replacement);
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

    // Hugging Face's Split: the matches and the text between them, combined as `how` says.
    static void split(const detail::regex& pattern, pre_tokenizer::behavior how, bool invert, std::string_view s,
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

    // Text between added tokens: normalized, pre-tokenized, each piece through BPE.
    void encode_plain(std::string_view text, bool first, std::vector<std::uint32_t>& ids) const {
        if (text.empty()) return;
        std::vector<std::string> pieces{normalized(text)};
        for (const pre_tokenizer& t : pre_tokenizers_) pre_tokenize(t, pieces, first);
        for (const std::string& piece : pieces)
            if (!piece.empty()) bpe(piece, ids);
    }

    // Byte-pair encoding of one piece: its characters as tokens (unknown ones as their bytes' <0xXX> tokens, or the
    // unknown token), then the merges, lowest rank first and leftmost among equals.
    void bpe(const std::string& piece, std::vector<std::uint32_t>& ids) const {
        if (ignore_merges_)
            if (const auto it = vocab_.find(piece); it != vocab_.end()) {
                ids.push_back(it->second);
                return;
            }
        // A piece with no pre-tokenizer to split it (SentencePiece-style: the whole text, spaces as "▁") is cut into
        // words before each "▁" that no token could join to the character before it — one in the vocabulary on its
        // own, not itself a "▁", and never followed by "▁" inside a token — since no merge can then cross the cut.
        // The result is the same; the words are short and repeat, so the cache serves them.
        if (piece.size() > 64 && piece.find(space_mark, 1) != std::string::npos) {
            std::size_t start = 0;
            for (std::size_t at = 0; (at = piece.find(space_mark, at + 1)) != std::string::npos;) {
                std::size_t before = at - 1;
                while (before > start && (static_cast<unsigned char>(piece[before]) & 0xC0) == 0x80) --before;
                const std::string c = piece.substr(before, at - before);
                if (c == space_mark || !vocab_.contains(c) || joins_space_mark_.contains(c)) continue;
                bpe_word(piece.substr(start, at - start), ids);
                start = at;
            }
            bpe_word(piece.substr(start), ids);
            return;
        }
        bpe_word(piece, ids);
    }
    void bpe_word(const std::string& piece, std::vector<std::uint32_t>& ids) const {
        if (const auto it = cache_.find(piece); it != cache_.end()) {
            ids.insert(ids.end(), it->second.begin(), it->second.end());
            return;
        }
        struct symbol {
            std::uint32_t id;
            std::int64_t prev, next;
            bool alive;
        };
        std::vector<symbol> word;
        std::string one;
        for (std::size_t at = 0; at < piece.size();) {
            const std::size_t n = std::max<std::size_t>(1, utf8::character_length(piece, at));
            one.assign(piece, at, n);
            const auto it = vocab_.find(one);
            const auto push = [&](std::uint32_t id) {
                const auto i = static_cast<std::int64_t>(word.size());
                word.push_back({id, i - 1, i + 1, true});
            };
            if (it != vocab_.end()) {
                push(it->second);
            } else if (byte_fallback_ && std::all_of(one.begin(), one.end(), [&](char c) {
                           return byte_token_[static_cast<unsigned char>(c)] >= 0;
                       })) {
                for (const char c : one) push(static_cast<std::uint32_t>(byte_token_[static_cast<unsigned char>(c)]));
            } else if (unk_) {
                if (!(fuse_unk_ && !word.empty() && word.back().id == *unk_)) push(*unk_);
            }
            at += n;
        }
        if (!word.empty()) word.back().next = -1;
        struct candidate {
            std::uint32_t rank;
            std::int64_t at;
            std::uint32_t id;
            bool operator>(const candidate& o) const { return rank != o.rank ? rank > o.rank : at > o.at; }
        };
        std::priority_queue<candidate, std::vector<candidate>, std::greater<>> queue;
        const auto consider = [&](std::int64_t i) {
            if (i < 0 || word[static_cast<std::size_t>(i)].next < 0) return;
            const symbol& a = word[static_cast<std::size_t>(i)];
            const auto it = merges_.find(pair_key(a.id, word[static_cast<std::size_t>(a.next)].id));
            if (it != merges_.end()) queue.push({it->second.rank, i, it->second.id});
        };
        for (std::size_t i = 0; i + 1 < word.size(); ++i) consider(static_cast<std::int64_t>(i));
        while (!queue.empty()) {
            const candidate c = queue.top();
            queue.pop();
            symbol& a = word[static_cast<std::size_t>(c.at)];
            if (!a.alive || a.next < 0) continue;
            symbol& b = word[static_cast<std::size_t>(a.next)];
            const auto it = merges_.find(pair_key(a.id, b.id));
            if (it == merges_.end() || it->second.id != c.id) continue;  // stale: a neighbour changed
            a.id = c.id;
            b.alive = false;
            a.next = b.next;
            if (a.next >= 0) word[static_cast<std::size_t>(a.next)].prev = c.at;
            consider(a.prev);
            consider(c.at);
        }
        std::vector<std::uint32_t> result;
        for (const symbol& s : word)
            if (s.alive) result.push_back(s.id);
        ids.insert(ids.end(), result.begin(), result.end());
        if (cache_.size() > 200000) cache_.clear();  // bounded: long runs of new words do not grow it forever
        cache_.emplace(piece, std::move(result));
    }

    // ---- decoding --------------------------------------------------------------------------------------------------
    std::string run_decoders(std::vector<std::string> tokens) const {
        for (const decoder& d : decoders_) {
            switch (d.what) {
            case decoder::byte_level: {
                // each token's characters back to their bytes; a token holding a character outside the alphabet
                // (an added token's text) is its own UTF-8
                const detail::byte_alphabet& alphabet = detail::bytes_as_text();
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
                for (std::string& t : tokens) detail::replace_all(t, d.from, d.to);
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
                    detail::replace_all(tokens[i], d.from, " ");
                    if (i == 0 && d.prepend && !tokens[i].empty() && tokens[i].front() == ' ') tokens[i].erase(0, 1);
                }
                break;
            }
        }
        std::string text;  // without decoders, Hugging Face joins the tokens with spaces
        for (std::size_t i = 0; i < tokens.size(); ++i) text += (i > 0 && decoders_.empty() ? " " : "") + tokens[i];
        return text;
    }

    static constexpr std::string_view space_mark = "\xE2\x96\x81";  // U+2581, SentencePiece's space
    std::string origin_;
    std::unordered_map<std::string, std::uint32_t> vocab_;
    std::unordered_set<std::string> joins_space_mark_;  // characters some token has right before a "▁"
    std::unordered_map<std::uint64_t, merge> merges_;
    std::array<std::int64_t, 256> byte_token_{};
    std::optional<std::uint32_t> unk_;
    bool byte_fallback_ = false, ignore_merges_ = false, fuse_unk_ = false, byte_level_ = false;
    std::vector<added> added_;
    std::unordered_map<std::uint64_t, std::size_t> trie_edges_;  // (node << 8 | byte) -> node
    std::vector<std::int64_t> trie_token_{-1};                    // node -> added token ending there, or -1
    std::array<bool, 256> first_bytes_{};
    std::vector<normalizer> normalizers_;
    std::vector<pre_tokenizer> pre_tokenizers_;
    std::vector<decoder> decoders_;
    std::vector<std::uint32_t> prefix_, suffix_;  // what add_special puts around the ids
    std::vector<std::string> token_of_;
    std::vector<bool> known_, special_;
    mutable std::unordered_map<std::string, std::vector<std::uint32_t>> cache_;  // piece -> its BPE ids
};

// Text as tokens arrive, for streaming: step(id) returns the text that id completes — nothing while the bytes so
// far end inside a UTF-8 character (or a decoder still needs what follows) — and always what decode() of all the ids
// would give, piece by piece.
class decode_stream {
public:
    explicit decode_stream(const tokenizer& t, bool skip_special = false) : tokenizer_(&t), skip_special_(skip_special) {}

    std::string step(std::uint32_t id) {
        // The ids from the last piece of text given out on: decoded together, so that what a decoder does at the
        // start of a text happens once, and the new text is what they add to the text of the ones before.
        if (prefix_.empty() && !ids_.empty()) {
            std::string before = tokenizer_->decode(ids_, skip_special_);
            if (!ends_incomplete(before)) {
                prefix_ = std::move(before);
                prefix_index_ = ids_.size();
            }
        }
        ids_.push_back(id);
        const std::string all = tokenizer_->decode(ids_, skip_special_);
        if (all.size() <= prefix_.size() || ends_incomplete(all)) return {};
        if (all.compare(0, prefix_.size(), prefix_) != 0)
            throw usage_error("vkfuse decode_stream: the text of the ids so far does not begin with the text already "
                              "given out (a decoder of " + tokenizer_->origin() + " is not prefix-stable); decode "
                              "the whole sequence with tokenizer::decode instead.");
        std::string fresh = all.substr(prefix_.size());
        const std::size_t keep_from = prefix_index_;
        const std::size_t next_index = ids_.size() - prefix_index_;
        ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(keep_from));
        prefix_ = tokenizer_->decode(ids_, skip_special_);
        prefix_index_ = next_index;
        return fresh;
    }

private:
    static bool ends_incomplete(std::string_view s) {
        return s.size() >= utf8::replacement.size() && s.substr(s.size() - utf8::replacement.size()) == utf8::replacement;
    }
    const tokenizer* tokenizer_;
    bool skip_special_;
    std::vector<std::uint32_t> ids_;
    std::string prefix_;
    std::size_t prefix_index_ = 0;
};

} // namespace vkfuse::text
