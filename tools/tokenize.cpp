// tokenize — a checkpoint's tokenizer on the command line (scripts/tokenize wraps it).
//
//     tokenize DIR [FILE] [--special]     FILE (or stdin): a JSON array of strings; prints one JSON array of ids per
//                                         string, one per line. --special adds what add_special_tokens=True adds.
//     tokenize DIR [FILE] --decode        FILE (or stdin): a JSON array of arrays of ids; prints the decoded strings,
//                                         one JSON string per line.
//
// DIR holds tokenizer.json (or is the file itself). Exit status 0 on success, 1 with a message on stderr otherwise.
#include <vkfuse/tokens/tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace {

int usage() {
    std::cerr << "usage: tokenize DIR [FILE] [--special | --decode]\n"
                 "  DIR: a folder holding tokenizer.json, or the file itself\n"
                 "  FILE (else stdin): a JSON array of strings to encode; with --decode, an array of arrays of ids\n";
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> positional;
    bool special = false, decode = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--special")
            special = true;
        else if (a == "--decode")
            decode = true;
        else if (a == "-h" || a == "--help")
            return usage(), 0;
        else if (a.rfind("--", 0) == 0) {
            std::cerr << "tokenize: unknown option " << a << "\n";
            return usage();
        } else
            positional.push_back(a);
    }
    if (positional.empty() || positional.size() > 2 || (special && decode)) return usage();
    try {
        std::filesystem::path path = positional[0];
        if (std::filesystem::is_directory(path)) path /= "tokenizer.json";
        const vkfuse::tokens::tokenizer tok = vkfuse::tokens::tokenizer::from_file(path);

        std::string input;
        if (positional.size() == 2) {
            std::ifstream in(positional[1], std::ios::binary);
            if (!in) throw vkfuse::usage_error("tokenize: cannot open " + positional[1]);
            input.assign(std::istreambuf_iterator<char>(in), {});
        } else {
            input.assign(std::istreambuf_iterator<char>(std::cin), {});
        }
        nlohmann::json items;
        try {
            items = nlohmann::json::parse(input);
        } catch (const nlohmann::json::exception& e) {
            throw vkfuse::usage_error(std::string("tokenize: the input is not JSON: ") + e.what());
        }
        if (!items.is_array())
            throw vkfuse::usage_error(decode ? "tokenize: the input must be a JSON array of arrays of ids"
                                             : "tokenize: the input must be a JSON array of strings");
        std::string out;
        for (std::size_t i = 0; i < items.size(); ++i) {
            const nlohmann::json& item = items[i];
            if (decode) {
                if (!item.is_array()) throw vkfuse::usage_error("tokenize: item " + std::to_string(i) + " is not an array of ids");
                std::vector<std::uint32_t> ids;
                for (const nlohmann::json& v : item) {
                    if (!v.is_number_unsigned() || v.get<std::uint64_t>() > 0xFFFFFFFFu)
                        throw vkfuse::usage_error("tokenize: item " + std::to_string(i) + " holds something that is not an id");
                    ids.push_back(v.get<std::uint32_t>());
                }
                out += nlohmann::json(tok.decode(ids)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            } else {
                if (!item.is_string()) throw vkfuse::usage_error("tokenize: item " + std::to_string(i) + " is not a string");
                out += nlohmann::json(tok.encode(item.get<std::string>(), special)).dump();
            }
            out += '\n';
        }
        std::fwrite(out.data(), 1, out.size(), stdout);
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "tokenize: error: " << e.what() << "\n";
        return 1;
    }
}
