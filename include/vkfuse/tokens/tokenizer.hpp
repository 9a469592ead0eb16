// vkfuse/tokens/tokenizer.hpp — a checkpoint's own tokenizer, read from its tokenizer.json, giving Hugging Face
// `tokenizers`' ids for the same text, and text for ids (streamed a token at a time).
//
//     auto tok = vkfuse::tokens::tokenizer::from_file("/models/Qwen2.5-0.5B/tokenizer.json");
//     std::vector<std::uint32_t> ids = tok.encode("Hello, world");      // [9707, 11, 1879]
//     std::string again = tok.decode(ids);                               // "Hello, world"
//     vkfuse::tokens::decode_stream out(tok);                              // text as tokens arrive: out.step(id)
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
// The stages around the BPE model (normalizers, pre-tokenizers, decoders) are in pipeline.hpp; this file reads the
// JSON, matches added tokens and runs the merges.
//
// Needs PCRE2 (libpcre2-dev: link pcre2-8) and utf8proc (libutf8proc-dev: link utf8proc); CMake's vkfuse::tokens
// target brings both.
#pragma once

#include "../core/error.hpp"
#include "pipeline.hpp"
#include "utf8.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
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

namespace vkfuse::tokens {


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
    using normalizer = detail::normalizer;
    using pre_tokenizer = detail::pre_tokenizer;
    using decoder = detail::decoder;
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

    // A Sequence's list `name` of `j`: read(item, its field) for each item.
    template <class Read>
    void each_in(const nlohmann::json& j, const char* name, const std::string& field, Read read) const {
        const nlohmann::json* list = member(j, name);
        if (!list || !list->is_array()) refuse(field + "." + name, "is missing");
        for (std::size_t i = 0; i < list->size(); ++i)
            read((*list)[i], field + "." + name + "[" + std::to_string(i) + "]");
    }

    void read_normalizer(const nlohmann::json& n, const std::string& field) {
        const std::string type = string_of(n, "type", field);
        if (type == "Sequence") {
            each_in(n, "normalizers", field,
                    [&](const nlohmann::json& item, const std::string& at) { read_normalizer(item, at); });
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
            each_in(p, "pretokenizers", field,
                    [&](const nlohmann::json& item, const std::string& at) { read_pre_tokenizer(item, at); });
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
            each_in(p, "processors", field,
                    [&](const nlohmann::json& item, const std::string& at) { read_post_processor(item, at); });
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
            each_in(d, "decoders", field,
                    [&](const nlohmann::json& item, const std::string& at) { read_decoder(item, at); });
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

    std::string normalized(std::string_view s) const { return detail::normalize(normalizers_, s); }

    // Text between added tokens: normalized, pre-tokenized, each piece through BPE.
    void encode_plain(std::string_view text, bool first, std::vector<std::uint32_t>& ids) const {
        if (text.empty()) return;
        std::vector<std::string> pieces{normalized(text)};
        for (const pre_tokenizer& t : pre_tokenizers_) detail::pre_tokenize(t, pieces, first);
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

    // ---- decoding ----------------------------------------------------------------------------------------------------
    std::string run_decoders(std::vector<std::string> tokens) const {
        return detail::run_decoders(decoders_, std::move(tokens));
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

} // namespace vkfuse::tokens
