// tools/make_checkpoint.cpp — writes a random-weight Hugging Face checkpoint (config.json + safetensors) of a named
// shape, so the model path can be run at real sizes without downloading weights (docs/models.md).
//
//     make_checkpoint --shape NAME --out DIR [--dtype bf16|f16|f32] [--seed N] [--shard-mb MB] [--std S] [--force]
//     make_checkpoint --list
//
// Shapes: tiny-qwen2, tiny-llama (small, awkward sizes, for tests), qwen2.5-0.5b, llama-3.2-1b (those models' real
// shapes and configs: 0.99 GB and 2.47 GB of bf16). --shard-mb splits the weights into shards of at most that many
// MB (a larger tensor gets a shard of its own) listed by model.safetensors.index.json; 0, the default, writes one
// model.safetensors. Weights are seeded: std S (default 0.02) normal-ish for projections, embeddings and biases, 1 + S
// times one for norms. --force replaces a checkpoint already in DIR. The result is read back with the checkpoint
// reader and checked against its config before the tool reports success. `bash scripts/make_checkpoint` builds and
// runs it.
#include <vkfuse/checkpoint/safetensors.hpp>
#include <vkfuse/model/config.hpp>
#include <vkfuse/model/synthetic.hpp>
#include <vkfuse/model/tensors.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

namespace synthetic = vkfuse::model::synthetic;

struct options {
    std::string shape;
    std::filesystem::path out;
    synthetic::write_options write;
    bool list = false;
};

const char* const usage =
    "usage: make_checkpoint --shape NAME --out DIR [--dtype bf16|f16|f32] [--seed N] [--shard-mb MB] [--std S] "
    "[--force]\n       make_checkpoint --list";

std::uint64_t number(std::string_view flag, const std::string& text) {
    std::size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || text.empty() || text[0] == '-')
        throw std::runtime_error("make_checkpoint: " + std::string(flag) + " needs a non-negative integer, not \"" +
                                 text + "\"");
    return value;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (flag == "--list") {
            o.list = true;
            continue;
        }
        if (flag == "--force") {
            o.write.replace = true;
            continue;
        }
        if (flag == "--help" || flag == "-h") throw std::runtime_error(usage);
        if (i + 1 >= argc)
            throw std::runtime_error("make_checkpoint: " + std::string(flag) + " needs a value\n" + usage);
        const std::string value = argv[++i];
        if (flag == "--shape") o.shape = value;
        else if (flag == "--out") o.out = value;
        else if (flag == "--seed") o.write.seed = number(flag, value);
        else if (flag == "--shard-mb") {
            const std::uint64_t mb = number(flag, value);
            if (mb > (std::uint64_t{1} << 40)) throw std::runtime_error("make_checkpoint: --shard-mb is too large");
            o.write.shard_bytes = mb * 1000 * 1000;
        } else if (flag == "--std") {
            std::size_t used = 0;
            try {
                o.write.std = std::stod(value, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != value.size() || !(o.write.std >= 0))
                throw std::runtime_error("make_checkpoint: --std needs a non-negative number, not \"" + value + "\"");
        } else if (flag == "--dtype") {
            using vkfuse::formats::weight_format;
            if (value == "bf16" || value == "bfloat16") o.write.dtype = weight_format::bf16;
            else if (value == "f16" || value == "float16") o.write.dtype = weight_format::f16;
            else if (value == "f32" || value == "float32") o.write.dtype = weight_format::f32;
            else throw std::runtime_error("make_checkpoint: --dtype is bf16, f16 or f32, not \"" + value + "\"");
        } else {
            throw std::runtime_error("make_checkpoint: unknown flag " + std::string(flag) + "\n" + usage);
        }
    }
    if (!o.list && (o.shape.empty() || o.out.empty()))
        throw std::runtime_error("make_checkpoint: --shape and --out are required\n" + std::string(usage));
    return o;
}

} // namespace

int main(int argc, char** argv) try {
    const options o = parse(argc, argv);
    if (o.list) {
        for (const std::string_view name : synthetic::shape_names) {
            const vkfuse::model::config c = vkfuse::model::parse_config(synthetic::shape_config(name).dump(), "shape");
            std::printf("%-14s %-18s hidden %5zu, %2zu layers, %2zu heads of %3zu, %zu KV heads, intermediate %5zu, "
                        "vocab %6zu, %s, %llu parameters\n",
                        std::string(name).c_str(),
                        std::string(vkfuse::model::architecture_name(c.architecture)).c_str(),
                        c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.head_dim, c.num_key_value_heads,
                        c.intermediate_size, c.vocab_size, c.tie_word_embeddings ? "tied" : "untied",
                        static_cast<unsigned long long>(vkfuse::model::parameter_count(c)));
        }
        return 0;
    }

    const auto start = std::chrono::steady_clock::now();
    const synthetic::write_result written = synthetic::write_shape(o.out, o.shape, o.write);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    // Read back what was written, exactly as a model would be loaded.
    const vkfuse::model::config c = vkfuse::model::read_config(o.out);
    const vkfuse::safetensors::checkpoint checkpoint(o.out);
    vkfuse::model::check_tensors(c, checkpoint);

    std::printf("make_checkpoint: %s (%s) in %s: %zu tensors, %llu parameters, %.1f MB of %s in %zu file%s, "
                "%.1f s (%.0f MB/s); read back and checked\n",
                o.shape.c_str(), std::string(vkfuse::model::architecture_name(c.architecture)).c_str(),
                o.out.string().c_str(), written.tensor_count,
                static_cast<unsigned long long>(vkfuse::model::parameter_count(c)),
                static_cast<double>(written.tensor_bytes) / 1e6,
                std::string(vkfuse::formats::format_name(o.write.dtype)).c_str(), checkpoint.shards().size(),
                checkpoint.shards().size() == 1 ? "" : "s", seconds,
                static_cast<double>(written.tensor_bytes) / 1e6 / std::max(seconds, 1e-9));
    for (const std::filesystem::path& f : written.files) std::printf("  %s\n", f.string().c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}
