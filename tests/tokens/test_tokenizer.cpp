// The tokenizer against Hugging Face's: the ids and the text its `tokenizers` library gives for the same files
// (tests/fixtures/tokenizers/expected.json, written by expected.js there), streaming, refusals and fuzzed files.
// The "real:" test cases read the tokenizers of published models (scripts/fetch_tokenizers puts them in
// $VKFUSE_TOKENIZERS_DIR) and compare with real-expected.json; ctest runs them as `tokenizers_real`, skipped with a
// message where the files cannot be fetched.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <vkfuse/tokens/tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

using vkfuse::tokens::decode_stream;
using vkfuse::tokens::tokenizer;

namespace {

const std::filesystem::path fixtures = VKFUSE_TOKENIZER_FIXTURES;

nlohmann::json read_json(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open " << p.string());
    return nlohmann::json::parse(in);
}

std::vector<std::uint32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<std::uint32_t>>(); }

std::string streamed(const tokenizer& t, const std::vector<std::uint32_t>& ids, bool skip = false) {
    decode_stream s(t, skip);
    std::string out;
    for (const std::uint32_t id : ids) out += s.step(id);
    return out;
}

bool ends_with_replacement(const std::string& s) {
    return s.size() >= 3 && s.compare(s.size() - 3, 3, vkfuse::tokens::utf8::replacement) == 0;
}

} // namespace

TEST_CASE("tokenizer: the fixtures give Hugging Face's ids and text, every string and sequence") {
    const nlohmann::json expected = read_json(fixtures / "expected.json");
    const auto strings = expected.at("strings").get<std::vector<std::string>>();
    for (const auto& [name, want] : expected.at("fixtures").items()) {
        const tokenizer t = tokenizer::from_file(fixtures / (name + ".json"));
        for (std::size_t i = 0; i < strings.size(); ++i) {
            INFO(name << ", string " << i << ": " << nlohmann::json(strings[i]).dump());
            CHECK(t.encode(strings[i]) == ids_of(want.at("ids")[i]));
            CHECK(t.encode(strings[i], true) == ids_of(want.at("ids_special")[i]));
        }
        for (std::size_t i = 0; i < want.at("sequences").size(); ++i) {
            const std::vector<std::uint32_t> ids = ids_of(want.at("sequences")[i]);
            INFO(name << ", sequence " << i << ": " << nlohmann::json(ids).dump());
            const std::string text = want.at("decoded")[i].get<std::string>();
            CHECK(t.decode(ids) == text);
            CHECK(t.decode(ids, true) == want.at("decoded_skip")[i].get<std::string>());
            // streamed, the same text (where it ends on a whole character: a stream holds back a partial one)
            if (!ends_with_replacement(text)) CHECK(streamed(t, ids) == text);
        }
    }
}

TEST_CASE("tokenizer: a stream holds the bytes of a character until it completes") {
    const tokenizer t = tokenizer::from_file(fixtures / "sentencepiece.json");
    // 你 is E4 BD A0: three byte tokens, none of them text on its own
    const std::vector<std::uint32_t> ids = t.encode("a 你 b");
    decode_stream s(t);
    std::vector<std::string> pieces;
    for (const std::uint32_t id : ids) pieces.push_back(s.step(id));
    std::string all;
    for (const std::string& p : pieces) {
        all += p;
        CHECK(vkfuse::tokens::utf8::first_invalid(p) == p.size());
        CHECK(p.find(vkfuse::tokens::utf8::replacement) == std::string::npos);
    }
    CHECK(all == "a 你 b");
    CHECK(t.decode(ids) == "a 你 b");
    const std::size_t empty = static_cast<std::size_t>(std::count(pieces.begin(), pieces.end(), std::string()));
    CHECK(empty >= 2);  // the first two bytes of 你 gave nothing
}

TEST_CASE("tokenizer: bad files and bad input are errors that say what and where") {
    const std::string good = [] {
        std::ifstream in(fixtures / "metaspace.json", std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }();
    auto message = [](auto&& f) -> std::string {
        try {
            f();
        } catch (const vkfuse::error& e) {
            return e.what();
        }
        return "(no error)";
    };
    const auto with = [&](const std::function<void(nlohmann::json&)>& change) {
        nlohmann::json j = nlohmann::json::parse(good);
        change(j);
        return message([&] { (void)tokenizer::from_json(j.dump(), "t.json"); });
    };
    CHECK(message([&] { (void)tokenizer::from_json("{\"model\": ", "t.json"); }).find("t.json is not valid JSON") !=
          std::string::npos);
    CHECK(with([](nlohmann::json& j) { j.erase("model"); }).find("\"model\" is missing") != std::string::npos);
    CHECK(with([](nlohmann::json& j) { j["model"]["type"] = "WordPiece"; }).find("model.type is \"WordPiece\"") !=
          std::string::npos);
    CHECK(with([](nlohmann::json& j) { j["normalizer"] = {{"type", "NFKD"}}; }).find("\"normalizer\".type is \"NFKD\"") !=
          std::string::npos);
    CHECK(with([](nlohmann::json& j) { j["model"]["merges"][0] = "a"; }).find("model.merges[0]") != std::string::npos);
    CHECK(with([](nlohmann::json& j) { j["model"]["merges"][0] = {"q", "zz"}; }).find("not in the vocabulary") !=
          std::string::npos);
    CHECK(with([](nlohmann::json& j) { j["model"]["vocab"]["x"] = -3; }).find("model.vocab[\"x\"]") != std::string::npos);
    CHECK(with([](nlohmann::json& j) { j["added_tokens"][0]["content"] = ""; }).find("added_tokens[0].content") !=
          std::string::npos);
    CHECK(with([](nlohmann::json& j) {
              j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
          }).find("the regex does not compile") != std::string::npos);
    CHECK(with([](nlohmann::json& j) { j["decoder"] = {{"type", "CTC"}}; }).find("\"decoder\".type is \"CTC\"") !=
          std::string::npos);
    CHECK(with([](nlohmann::json& j) { j["model"]["dropout"] = 0.1; }).find("model.dropout") != std::string::npos);
    CHECK(message([] { (void)tokenizer::from_file(fixtures / "no-such-tokenizer.json"); }).find("does not exist") !=
          std::string::npos);
    CHECK(message([] { (void)tokenizer::from_file(fixtures); }).find("is not a regular file") != std::string::npos);

    const tokenizer t = tokenizer::from_json(good, "t.json");
    CHECK_THROWS_AS((void)t.encode("ab\xC3"), vkfuse::usage_error);
    CHECK(message([&] { (void)t.encode("ok \xF0\x9F\x98"); }).find("not valid UTF-8 at byte 3") != std::string::npos);
    CHECK(message([&] { (void)t.decode(std::vector<std::uint32_t>{2, 999999}); }).find("id 999999 is not in the vocabulary") !=
          std::string::npos);
}

TEST_CASE("tokenizer: mutated and truncated tokenizer.json files end in an error or a tokenizer, quickly") {
    const auto start = std::chrono::steady_clock::now();
    std::mt19937 random(2026);
    int parsed = 0, refused = 0;
    for (const char* name : {"byte_level.json", "sentencepiece.json", "metaspace.json"}) {
        std::ifstream in(fixtures / name, std::ios::binary);
        const std::string original(std::istreambuf_iterator<char>(in), {});
        for (int round = 0; round < 150; ++round) {
            std::string text = original;
            const int kind = round % 3;
            if (kind == 0) {  // cut short
                text.resize(std::uniform_int_distribution<std::size_t>(0, text.size())(random));
            } else {  // bytes changed: to JSON's own punctuation, digits and quotes, or anything
                const int edits = 1 + static_cast<int>(random() % 8);
                for (int e = 0; e < edits; ++e) {
                    const std::size_t at = std::uniform_int_distribution<std::size_t>(0, text.size() - 1)(random);
                    static constexpr char punctuation[] = "{}[],:\"0123456789-.eE \\ntfu";
                    text[at] = kind == 1 ? punctuation[random() % (sizeof punctuation - 1)]
                                         : static_cast<char>(random() % 256);
                }
            }
            try {
                const tokenizer t = tokenizer::from_json(text, name);
                ++parsed;
                for (const char* s : {"hello world", "  the 123 ÿ 你好 <s> <bos>"}) {
                    try {
                        const std::vector<std::uint32_t> ids = t.encode(s, true);
                        (void)t.decode(ids);
                    } catch (const vkfuse::error&) {
                    }
                }
            } catch (const vkfuse::error&) {
                ++refused;
            }
        }
    }
    MESSAGE(parsed << " mutated files parsed, " << refused << " refused");
    CHECK(parsed + refused == 450);
    CHECK(refused > 0);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
}

// ---- the published tokenizers (scripts/fetch_tokenizers) -----------------------------------------------------------

TEST_CASE("real: published tokenizers give Hugging Face's ids and text (Qwen3, Llama 3, Llama 3.1, Mistral, Gemma 3)") {
    const char* dir = std::getenv("VKFUSE_TOKENIZERS_DIR");
    REQUIRE_MESSAGE(dir != nullptr, "VKFUSE_TOKENIZERS_DIR is not set: run scripts/fetch_tokenizers (ctest's "
                                    "tokenizers_real test does) to fetch the published tokenizer files");
    const nlohmann::json expected = read_json(fixtures / "real-expected.json");
    const auto strings = expected.at("strings").get<std::vector<std::string>>();
    for (const auto& [name, want] : expected.at("tokenizers").items()) {
        const std::filesystem::path file = std::filesystem::path(dir) / name / "tokenizer.json";
        REQUIRE_MESSAGE(std::filesystem::exists(file), file.string() << " is missing: run scripts/fetch_tokenizers");
        const tokenizer t = tokenizer::from_file(file);
        for (std::size_t i = 0; i < strings.size(); ++i) {
            INFO(name << ", string " << i << ": " << nlohmann::json(strings[i]).dump());
            const std::vector<std::uint32_t> ids = t.encode(strings[i], true);
            CHECK(ids == ids_of(want.at("ids_special")[i]));
            CHECK(t.decode(ids) == want.at("decoded")[i].get<std::string>());
            CHECK(t.decode(ids, true) == want.at("decoded_skip")[i].get<std::string>());
        }
    }
}
