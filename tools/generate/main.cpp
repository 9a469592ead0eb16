// tools/generate/main.cpp — greedy generation from a Hugging Face checkpoint, by a program built for its config.json.
//
// scripts/generate configures tools/generate/CMakeLists.txt for a model's config.json (which writes the model's
// sizes into generate_build.hpp) and runs what it builds:
//
//     vkfuse_generate MODEL_DIR [--ids 1,17,300 | --prompt TEXT] [--max-new N] [--logits FILE]
//                     [--max-seq N] [--dtype T] [--strategy S]
//
// --max-seq, --dtype and --strategy choose the build, so here they can only repeat what the build was made for.
// The config is read again at run time and compared with the built sizes: a build used for another model fails with
// the list of differences. docs/models.md ("Generating") describes the options and the output.
#include "generate_build.hpp"

#include <vkfuse/model/generator.hpp>
#ifdef VKFUSE_GENERATE_TEXT
#include <vkfuse/tokens/tokenizer.hpp>
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>  // getpid

namespace {

namespace fs = std::filesystem;
namespace model = vkfuse::model;

using model_type = model::decoder<generate_build::shape, generate_build::weights>;
using generator_type = model::generator<model_type, generate_build::how>;
constexpr std::size_t positions = generate_build::shape.max_positions;

constexpr std::string_view usage_text = R"(usage: scripts/generate MODEL_DIR [options]
  MODEL_DIR            a Hugging Face model folder: config.json and *.safetensors
  --ids 1,17,300       the prompt's token ids (default: the config's bos_token_id alone)
  --prompt TEXT        the prompt as text, encoded by the model folder's tokenizer.json as transformers does
                       (add_special_tokens); the new tokens are then also printed as text
  --max-new N          new tokens to generate greedily (default 16)
  --logits FILE        also write the logits of every prompt position and of each new token as JSON
  --max-seq N          positions the KV caches hold, prompt + new tokens (default 512, or less when
                       max_position_embeddings is smaller)
  --dtype T            weight storage: f32, f16, bf16, q8_0, q4_0 (default: the checkpoint's torch_dtype)
  --strategy S         fused, per_op, single_dispatch or persistent (default fused)
)";

// A mistake in the command line, or a request this build cannot do: exit status 2 (with the usage for the first).
struct usage_problem {
    std::string what;
    bool show_usage = true;
};

struct options {
    fs::path folder;
    std::optional<std::vector<std::uint32_t>> ids;
    std::optional<std::string> prompt;  // --prompt: text for the folder's tokenizer
    std::size_t max_new = 16;
    std::optional<fs::path> logits;
    bool help = false;
};

std::uint64_t parse_number(std::string_view text, std::string_view option, std::uint64_t largest) {
    std::uint64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [stop, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || stop != end || value > largest)
        throw usage_problem{std::string(option) + " " + std::string(text) + ": not a whole number from 0 to " +
                            std::to_string(largest)};
    return value;
}

std::vector<std::uint32_t> parse_ids(std::string_view text) {
    std::vector<std::uint32_t> ids;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = text.find(',', start);
        std::string_view id = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
        while (!id.empty() && id.front() == ' ') id.remove_prefix(1);
        while (!id.empty() && id.back() == ' ') id.remove_suffix(1);
        if (id.empty())
            throw usage_problem{"--ids " + std::string(text) + ": expected ids separated by commas, like 1,17,300"};
        ids.push_back(static_cast<std::uint32_t>(parse_number(id, "--ids", UINT32_MAX)));
        if (comma == std::string_view::npos) return ids;
        start = comma + 1;
    }
}

// The options that chose the build can only repeat what it was built with.
void check_built_with(std::string_view option, std::string_view given, std::string_view built) {
    if (given != built)
        throw usage_problem{std::string(option) + " " + std::string(given) + ": this program was built for " +
                            std::string(option) + " " + std::string(built) +
                            "; scripts/generate builds one program per value",
                            false};
}

options parse_options(int argc, char** argv) {
    options o;
    bool have_folder = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            o.help = true;
            return o;
        }
        if (!arg.starts_with("-")) {
            if (have_folder)
                throw usage_problem{"more than one model folder given (" + o.folder.string() + " and " +
                                    std::string(arg) + ")"};
            o.folder = fs::path(arg);
            have_folder = true;
            continue;
        }
        std::string_view name = arg;
        std::string_view value;
        if (const std::size_t equals = arg.find('='); equals != std::string_view::npos) {
            name = arg.substr(0, equals);
            value = arg.substr(equals + 1);
        } else {
            if (i + 1 >= argc) throw usage_problem{std::string(arg) + " needs a value"};
            value = argv[++i];
        }
        if (name == "--ids") {
            o.ids = parse_ids(value);
        } else if (name == "--prompt") {
            o.prompt = std::string(value);
        } else if (name == "--max-new") {
            o.max_new = parse_number(value, name, 1u << 30);
        } else if (name == "--logits") {
            if (value.empty()) throw usage_problem{"--logits needs a file name"};
            o.logits = fs::path(value);
        } else if (name == "--max-seq") {
            check_built_with(name, std::to_string(parse_number(value, name, UINT32_MAX)), std::to_string(positions));
        } else if (name == "--dtype") {
            check_built_with(name, value, generate_build::weights_name);
        } else if (name == "--strategy") {
            check_built_with(name, value, generate_build::strategy_name);
        } else {
            throw usage_problem{"unknown option " + std::string(name)};
        }
    }
    if (!have_folder) throw usage_problem{"no model folder given"};
    if (o.ids && o.prompt) throw usage_problem{"--ids and --prompt both give the prompt; give one of them"};
    return o;
}

std::string join_ids(std::span<const std::uint32_t> ids) {
    std::string text;
    for (std::size_t i = 0; i < ids.size(); ++i) text += (i ? "," : "") + std::to_string(ids[i]);
    return text;
}

// Rows of float logits as JSON, each value the shortest text that reads back as the same float; a non-finite value
// (JSON has none) is written as null.
void write_rows(std::ostream& out, const std::vector<std::vector<float>>& rows, std::size_t first, std::size_t count,
                std::size_t& non_finite) {
    out << '[';
    for (std::size_t r = first; r < first + count; ++r) {
        out << (r == first ? "\n  [" : ",\n  [");
        for (std::size_t i = 0; i < rows[r].size(); ++i) {
            if (i) out << ',';
            const float v = rows[r][i];
            if (!std::isfinite(v)) {
                out << "null";
                ++non_finite;
                continue;
            }
            char text[32];
            const auto written = std::to_chars(text, text + sizeof text, v);
            out.write(text, written.ptr - text);
        }
        out << ']';
    }
    out << "\n]";
}

// The logits file: the layout of tests/fixtures/*/expected.json. `rows` holds one row per position run, the prompt's
// positions first: "logits" are the P prompt positions, "generation_logits" the N rows the new ids were chosen from
// (the first of them is the last prompt position's).
// Written to a temporary file beside it, then renamed over it: a run that fails midway leaves no half-written file,
// and an existing one stays as it was.
void write_logits(const fs::path& file, const fs::path& folder, const vkfuse::generation& g,
                  const std::vector<std::vector<float>>& rows) {
    const std::size_t prompt = g.prompt_length, generated = g.tokens.size() - prompt;
    const fs::path temporary = fs::path(file).concat(".partial-" + std::to_string(::getpid()));
    struct remover {  // the temporary, unless it was renamed
        const fs::path& path;
        ~remover() {
            std::error_code ignored;
            fs::remove(path, ignored);
        }
    } const remove_on_exit{temporary};
    std::ofstream out(temporary);
    if (!out) throw std::runtime_error("cannot write the logits file " + file.string() + " (nor " +
                                       temporary.string() + " beside it): " + std::strerror(errno));
    const std::vector<std::uint32_t> prompt_ids(g.tokens.begin(), g.tokens.begin() + static_cast<long>(prompt));
    const std::vector<std::uint32_t> generated_ids(g.tokens.begin() + static_cast<long>(prompt), g.tokens.end());
    std::size_t non_finite = 0;
    out << "{\n\"model\": " << nlohmann::json(fs::absolute(folder).string()).dump()
        << ",\n\"weights\": \"" << generate_build::weights_name << "\",\n\"strategy\": \""
        << generate_build::strategy_name << "\",\n\"prompt_ids\": " << nlohmann::json(prompt_ids).dump()
        << ",\n\"generated_ids\": " << nlohmann::json(generated_ids).dump() << ",\n\"logits\": ";
    write_rows(out, rows, 0, prompt, non_finite);
    out << ",\n\"generation_logits\": ";
    write_rows(out, rows, prompt - 1, generated, non_finite);
    out << "\n}\n";
    out.close();
    if (!out) throw std::runtime_error("writing the logits file " + file.string() + " failed");
    std::error_code ec;
    fs::rename(temporary, file, ec);
    if (ec) throw std::runtime_error("cannot replace " + file.string() + " with the logits written: " + ec.message());
    if (non_finite != 0)
        std::cerr << "generate: warning: " << non_finite << " logits are not finite (written as null)\n";
}

// "prefill: 8 positions in 1.234 ms: 0.154 ms/token, 6482.9 tokens/s (GPU 0.120 ms/token)"
void print_phase(std::string_view name, std::string_view what, std::size_t runs, const vkfuse::vulkan::timing& t) {
    if (runs == 0) {
        std::printf("%.*s: 0 %.*s\n", static_cast<int>(name.size()), name.data(), static_cast<int>(what.size()),
                    what.data());
        return;
    }
    const double ms = t.wall_ns / 1e6;
    std::printf("%.*s: %zu %.*s in %.3f ms: %.3f ms/token, %.1f tokens/s", static_cast<int>(name.size()),
                name.data(), runs, static_cast<int>(what.size()), what.data(), ms, ms / static_cast<double>(runs),
                static_cast<double>(runs) / (ms / 1e3));
    if (std::isnan(t.gpu_ns))
        std::printf(" (no GPU timestamps)\n");
    else
        std::printf(" (GPU %.3f ms/token)\n", t.gpu_ns / 1e6 / static_cast<double>(runs));
}

int run(const options& o) {
    std::error_code ec;
    if (!fs::is_directory(o.folder, ec))
        throw usage_problem{o.folder.string() + " is not a folder (give a Hugging Face model folder: config.json "
                                                "and *.safetensors)", false};

    // The config, checked against the build before anything slow happens.
    const model::config c =
        model::read_config(o.folder, {.context_length = positions, .context_length_name = "--max-seq"});
    model::check_config(c, generate_build::shape);

    std::vector<std::uint32_t> prompt;
#ifdef VKFUSE_GENERATE_TEXT
    std::optional<vkfuse::tokens::tokenizer> tokenizer;
#endif
    if (o.prompt) {
#ifdef VKFUSE_GENERATE_TEXT
        const fs::path file = o.folder / "tokenizer.json";
        if (!fs::exists(file, ec))
            throw usage_problem{"--prompt needs the model's tokenizer: " + file.string() +
                                    " does not exist (give the prompt's ids with --ids instead)",
                                false};
        tokenizer = vkfuse::tokens::tokenizer::from_file(file);
        if (tokenizer->size() > c.vocab_size)
            throw usage_problem{file.string() + " has ids up to " + std::to_string(tokenizer->size() - 1) +
                                    ", beyond the model's vocab_size of " + std::to_string(c.vocab_size) + " in " +
                                    c.source + ": the tokenizer is not this model's",
                                false};
        prompt = tokenizer->encode(*o.prompt, true);
        if (prompt.empty()) throw usage_problem{"--prompt: the text gives no tokens", false};
#else
        throw usage_problem{"--prompt: this build has no tokenizer (PCRE2 and utf8proc were not found: install "
                            "libpcre2-dev libutf8proc-dev pkg-config); give the prompt's ids with --ids",
                            false};
#endif
    } else if (o.ids) {
        prompt = *o.ids;
    } else if (c.bos_token_id) {
        prompt = {static_cast<std::uint32_t>(*c.bos_token_id)};
        std::cerr << "generate: no --ids given; the prompt is the config's bos_token_id, " << *c.bos_token_id << "\n";
    } else {
        throw usage_problem{"no --ids given, and " + c.source + " has no bos_token_id to start from; give the "
                                                                "prompt's token ids, like --ids 1,17,300", false};
    }
    if (prompt.empty()) throw usage_problem{"--ids: the prompt is empty", false};
    for (std::size_t i = 0; i < prompt.size(); ++i)
        if (prompt[i] >= c.vocab_size)
            throw usage_problem{"--ids: id " + std::to_string(prompt[i]) + " (position " + std::to_string(i) +
                                ") is not below the model's vocab_size, " + std::to_string(c.vocab_size), false};
    if (o.max_new == 0) throw usage_problem{"--max-new 0: ask for at least one new token", false};
    const std::size_t needed = prompt.size() + o.max_new;
    if (needed > positions) {
        std::string fix = needed <= c.max_position_embeddings
                              ? "run with --max-seq " + std::to_string(needed) + " or more"
                              : "that is more than the model's max_position_embeddings, " +
                                    std::to_string(c.max_position_embeddings) + "; shorten the prompt or --max-new";
        throw usage_problem{"a prompt of " + std::to_string(prompt.size()) + " ids and --max-new " +
                            std::to_string(o.max_new) + " need " + std::to_string(needed) +
                            " positions, but this build's caches hold " + std::to_string(positions) +
                            " (--max-seq); " + fix, false};
    }

    // An output never replaces an input: the logits file must not be one of the model folder's files (the weights,
    // the config), whatever path names it.
    if (o.logits)
        for (const fs::directory_entry& input : fs::directory_iterator(o.folder, ec))
            if (fs::equivalent(*o.logits, input.path(), ec))
                throw usage_problem{"--logits " + o.logits->string() + " is " + input.path().string() +
                                        ", a file of the model: give a file outside the model folder",
                                    false};

    vkfuse::context ctx;
    generator_type gen(ctx, o.folder);
    for (const std::string& warning : gen.warnings()) std::cerr << "generate: warning: " << warning << "\n";

    if (o.logits) {
        // One submission per position, to read each position's logits; the tokens must be the loop's.
        std::vector<std::vector<float>> rows;
        const vkfuse::generation stepped = gen.generate_with_logits(
            prompt, o.max_new, [&](std::size_t, std::vector<float> logits) { rows.push_back(std::move(logits)); });
        write_logits(*o.logits, o.folder, stepped, rows);
        const vkfuse::generation g = gen.generate(prompt, o.max_new);
        if (g.tokens != stepped.tokens)
            throw std::runtime_error("the tokens of the device loop (" + join_ids(g.tokens) +
                                     ") differ from those of the position-by-position run that wrote the logits (" +
                                     join_ids(stepped.tokens) + ")");
    }
    // A short warm-up first (the prompt's first two ids and one new token: both phases' kernels once), so that the
    // timings below leave out what a driver does at a pipeline's first use.
    (void)gen.generate(std::span(prompt).first(std::min<std::size_t>(prompt.size(), 2)), 1);
    const vkfuse::generation g = gen.generate(prompt, o.max_new);

    std::printf("tokens: %s\n", join_ids(g.tokens).c_str());
#ifdef VKFUSE_GENERATE_TEXT
    if (tokenizer) {  // the new tokens as text (JSON, so that any character prints safely)
        const std::string text = tokenizer->decode(std::span(g.tokens).subspan(prompt.size()));
        std::printf("text: %s\n",
                    nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
#endif
    print_phase("prefill", "positions", g.prefill_runs, g.prefill);
    print_phase("decode", "tokens", g.decode_runs, g.decode);
    std::printf("build: %.3f s (kernels compiled, or read from the disk cache), load: %.3f s (weights converted "
                "and uploaded)\n",
                gen.build_seconds(), gen.load_seconds());
    std::printf("model: %s, %zu layers, %.*s weights, %.*s, %zu positions; device: %s\n",
                std::string(model::architecture_name(c.architecture)).c_str(), c.num_hidden_layers,
                static_cast<int>(generate_build::weights_name.size()), generate_build::weights_name.data(),
                static_cast<int>(generate_build::strategy_name.size()), generate_build::strategy_name.data(),
                positions, ctx.device().name.c_str());
    std::fflush(stdout);

    if (ctx.validation_enabled()) {
        const std::vector<std::string> messages = ctx.take_validation_messages();
        if (!messages.empty()) {
            for (const std::string& m : messages) std::cerr << "validation: " << m << "\n";
            throw std::runtime_error(std::to_string(messages.size()) + " validation messages");
        }
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        const options o = parse_options(argc, argv);
        if (o.help) {
            std::cout << usage_text;
            return 0;
        }
        return run(o);
    } catch (const usage_problem& p) {
        std::cerr << "generate: " << p.what << "\n";
        if (p.show_usage) std::cerr << usage_text;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "generate: error: " << e.what() << "\n";
        return 1;
    } catch (...) {
        std::cerr << "generate: error: an unknown exception\n";
        return 1;
    }
}
