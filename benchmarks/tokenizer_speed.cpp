// benchmarks/tokenizer_speed.cpp — how fast vkfuse::tokens::tokenizer encodes English text, on one core.
//
//     tokenizer_speed [--tokenizers DIR] [--text FILE,...] [--runs 5] [--json FILE]
//
// DIR holds one folder per tokenizer, each with its tokenizer.json (scripts/fetch_tokenizers fills
// ~/.cache/vkfuse/tokenizers, the default); the text defaults to this repository's docs/*.md and README.md (English
// written here, about 180 KB). Each tokenizer is loaded (timed), then verified — its ids for the 115 strings of
// tests/fixtures/tokenizers/real-expected.json must be Hugging Face's — and only then timed: the first encoding with
// a fresh tokenizer (its word cache empty: "cold"), then the median of `runs` more (the cache warm, as for text that
// repeats words already seen). A tokenizer that disagrees, or that the file does not cover, gets no time; one that
// disagrees makes the program exit with status 1.
#include <vkfuse/tokens/tokenizer.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#ifndef VKFUSE_SOURCE_DIR
#define VKFUSE_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

int main(int argc, char** argv) {
    CLI::App app{"vkfuse tokenizer speed: MB of text encoded per second, one core"};
    const char* cache = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    std::string dir = std::getenv("VKFUSE_TOKENIZERS_DIR") ? std::getenv("VKFUSE_TOKENIZERS_DIR")
                      : cache                              ? std::string(cache) + "/vkfuse/tokenizers"
                                                           : std::string(home ? home : ".") + "/.cache/vkfuse/tokenizers";
    std::vector<std::string> texts;
    int runs = 5;
    std::string json_path;
    app.add_option("--tokenizers", dir, "a folder of tokenizer folders (scripts/fetch_tokenizers)");
    app.add_option("--text", texts, "text files to encode (default: docs/*.md and README.md)")->delimiter(',');
    app.add_option("--runs", runs, "warm encodings timed after the cold one")->check(CLI::Range(1, 1000));
    app.add_option("--json", json_path, "also write the results here");
    CLI11_PARSE(app, argc, argv);

    if (texts.empty()) {
        for (const auto& entry : fs::directory_iterator(fs::path(VKFUSE_SOURCE_DIR) / "docs"))
            if (entry.path().extension() == ".md") texts.push_back(entry.path().string());
        texts.push_back((fs::path(VKFUSE_SOURCE_DIR) / "README.md").string());
        std::sort(texts.begin(), texts.end());
    }
    std::string text;
    for (const std::string& f : texts) {
        std::ifstream in(f, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "tokenizer_speed: cannot read %s\n", f.c_str());
            return 1;
        }
        text.append(std::istreambuf_iterator<char>(in), {});
    }
    std::vector<fs::path> found;
    if (fs::is_directory(dir))
        for (const auto& entry : fs::directory_iterator(dir))
            if (fs::exists(entry.path() / "tokenizer.json")) found.push_back(entry.path());
    std::sort(found.begin(), found.end());
    if (found.empty()) {
        std::fprintf(stderr, "tokenizer_speed: no tokenizer folders in %s; run scripts/fetch_tokenizers first\n",
                     dir.c_str());
        return 1;
    }
    std::printf("text: %zu bytes from %zu files; one thread\n\n%-10s %8s %8s %10s %10s %10s\n", text.size(),
                texts.size(), "tokenizer", "load s", "ids", "cold MB/s", "warm MB/s", "bytes/id");
    using clock = std::chrono::steady_clock;
    const auto seconds = [](clock::duration d) { return std::chrono::duration<double>(d).count(); };
    nlohmann::json expected;
    {
        std::ifstream in(fs::path(VKFUSE_SOURCE_DIR) / "tests/fixtures/tokenizers/real-expected.json");
        if (!in) {
            std::fprintf(stderr, "tokenizer_speed: cannot read tests/fixtures/tokenizers/real-expected.json\n");
            return 1;
        }
        expected = nlohmann::json::parse(in);
    }
    const auto strings = expected.at("strings").get<std::vector<std::string>>();
    bool all_ok = true;
    nlohmann::json results = nlohmann::json::array();
    for (const fs::path& folder : found) {
        const std::string name = folder.filename().string();
        const auto t0 = clock::now();
        const vkfuse::tokens::tokenizer original = vkfuse::tokens::tokenizer::from_file(folder / "tokenizer.json");
        const double load = seconds(clock::now() - t0);
        // verified first: Hugging Face's ids for the reference strings
        if (!expected.at("tokenizers").contains(name)) {
            std::printf("%-10s not in real-expected.json, so not verified: no time\n", name.c_str());
            continue;
        }
        const nlohmann::json& want = expected.at("tokenizers").at(name).at("ids_special");
        bool same = true;
        for (std::size_t i = 0; i < strings.size(); ++i)
            same = same && original.encode(strings[i], true) == want[i].get<std::vector<std::uint32_t>>();
        if (!same) {
            std::printf("%-10s MISMATCH with Hugging Face's ids; no time\n", name.c_str());
            all_ok = false;
            continue;
        }
        vkfuse::tokens::tokenizer fresh = vkfuse::tokens::tokenizer::from_file(folder / "tokenizer.json");
        auto t1 = clock::now();
        const std::size_t ids = fresh.encode(text).size();
        const double cold = seconds(clock::now() - t1);
        std::vector<double> warm;
        for (int r = 0; r < runs; ++r) {
            t1 = clock::now();
            (void)fresh.encode(text);
            warm.push_back(seconds(clock::now() - t1));
        }
        std::sort(warm.begin(), warm.end());
        const double median = warm[warm.size() / 2];
        const double mb = static_cast<double>(text.size()) / 1e6;
        std::printf("%-10s %8.2f %8zu %10.1f %10.1f %10.2f\n", name.c_str(), load, ids, mb / cold, mb / median,
                    static_cast<double>(text.size()) / static_cast<double>(ids));
        results.push_back({{"tokenizer", name}, {"load_s", load}, {"ids", ids}, {"cold_mb_per_s", mb / cold},
                           {"warm_mb_per_s", mb / median}, {"text_bytes", text.size()}});
    }
    if (!json_path.empty()) {
        std::ofstream out(json_path);
        out << nlohmann::json{{"benchmark", "tokenizer_speed"}, {"texts", texts}, {"runs", runs}, {"results", results}}
                   .dump(1)
            << "\n";
    }
    return all_ok ? 0 : 1;
}
