// vkfuse/model/synthetic.hpp — random-weight Hugging Face checkpoints of named shapes: config.json plus safetensors
// (one file, or shards with an index), written streaming.
//
// Why this exists: the model path (config reader, tensor check, loader, device decode) has to be exercised at real
// sizes and at awkward small ones without downloading gigabytes of weights, and the tests, tools/make_checkpoint and
// the GPU tests need the same files. The weights are seeded and depend only on (seed, tensor name, index), so a shape
// written in any dtype, sharding or thread count holds the same values (up to the dtype's rounding). A 1B model is
// 2.5 GB of bf16, so tensors are generated a chunk at a time and written as they are made, never held whole.
#pragma once

#include "../core/error.hpp"
#include "../formats/convert.hpp"
#include "config.hpp"
#include "tensors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace vkfuse::model::synthetic {

// ---------------------------------------------------------------------------------------------------------------------
// Shapes

// tiny-qwen2 and tiny-llama are small enough for tests and for float32 fixtures of a few hundred KB, with sizes that
// are multiples of nothing convenient: GQA with 3 (qwen2) and 2 (llama) query heads per KV head, a head_dim that is not
// hidden / heads (llama), llama3 RoPE with frequencies in all three of its regimes (head_dim 12, theta 10000,
// original_max_position_embeddings 1024: pairs 0-2 unchanged, 3 smoothed, 4-5 divided), biases (qwen2), tied and
// untied output projections. qwen2.5-0.5b and llama-3.2-1b have those models' real shapes and configuration.
inline constexpr std::array<std::string_view, 4> shape_names{"tiny-qwen2", "tiny-llama", "qwen2.5-0.5b",
                                                            "llama-3.2-1b"};

inline std::string_view torch_dtype_name(formats::weight_format f) {
    switch (f) {
    case formats::weight_format::f32: return "float32";
    case formats::weight_format::f16: return "float16";
    case formats::weight_format::bf16: return "bfloat16";
    default:
        throw usage_error("vkfuse::model::synthetic: a safetensors checkpoint stores f32, f16 or bf16, not " +
                          std::string(formats::format_name(f)));
    }
}

// The config.json of a named shape, as transformers 4 writes it (rope_theta + rope_scaling), with torch_dtype `dtype`.
inline nlohmann::ordered_json shape_config(std::string_view shape,
                                           formats::weight_format dtype = formats::weight_format::bf16) {
    nlohmann::ordered_json j;
    auto qwen2 = [&] {
        j["architectures"] = {"Qwen2ForCausalLM"};
        j["model_type"] = "qwen2";
        j["hidden_act"] = "silu";
        j["use_sliding_window"] = false;
        j["sliding_window"] = nullptr;
        j["attention_dropout"] = 0.0;
    };
    auto llama = [&] {
        j["architectures"] = {"LlamaForCausalLM"};
        j["model_type"] = "llama";
        j["hidden_act"] = "silu";
        j["attention_bias"] = false;
        j["mlp_bias"] = false;
        j["attention_dropout"] = 0.0;
    };
    auto llama3_rope = [&](double factor, double low, double high, std::size_t original) {
        j["rope_scaling"] = {{"factor", factor},
                             {"high_freq_factor", high},
                             {"low_freq_factor", low},
                             {"original_max_position_embeddings", original},
                             {"rope_type", "llama3"}};
    };
    if (shape == "tiny-qwen2") {
        qwen2();
        j["hidden_size"] = 60;
        j["intermediate_size"] = 76;
        j["num_hidden_layers"] = 2;
        j["num_attention_heads"] = 6;
        j["num_key_value_heads"] = 2;
        j["vocab_size"] = 131;
        j["max_position_embeddings"] = 256;
        j["rms_norm_eps"] = 1e-6;
        j["rope_theta"] = 1000000.0;
        j["rope_scaling"] = nullptr;
        j["tie_word_embeddings"] = true;
        j["bos_token_id"] = 1;
        j["eos_token_id"] = 2;
    } else if (shape == "tiny-llama") {
        llama();
        j["hidden_size"] = 40;
        j["intermediate_size"] = 68;
        j["num_hidden_layers"] = 3;
        j["num_attention_heads"] = 4;
        j["num_key_value_heads"] = 2;
        j["head_dim"] = 12;
        j["vocab_size"] = 131;
        j["max_position_embeddings"] = 8192;
        j["rms_norm_eps"] = 1e-5;
        j["rope_theta"] = 10000.0;
        llama3_rope(8.0, 1.0, 4.0, 1024);
        j["tie_word_embeddings"] = false;
        j["bos_token_id"] = 1;
        j["eos_token_id"] = {2, 3};
    } else if (shape == "qwen2.5-0.5b") {
        qwen2();
        j["hidden_size"] = 896;
        j["intermediate_size"] = 4864;
        j["num_hidden_layers"] = 24;
        j["num_attention_heads"] = 14;
        j["num_key_value_heads"] = 2;
        j["vocab_size"] = 151936;
        j["max_position_embeddings"] = 32768;
        j["max_window_layers"] = 24;
        j["rms_norm_eps"] = 1e-6;
        j["rope_theta"] = 1000000.0;
        j["rope_scaling"] = nullptr;
        j["tie_word_embeddings"] = true;
        j["bos_token_id"] = 151643;
        j["eos_token_id"] = 151643;
        j["sliding_window"] = 32768;  // as the real config has it; use_sliding_window is false
    } else if (shape == "llama-3.2-1b") {
        llama();
        j["hidden_size"] = 2048;
        j["intermediate_size"] = 8192;
        j["num_hidden_layers"] = 16;
        j["num_attention_heads"] = 32;
        j["num_key_value_heads"] = 8;
        j["head_dim"] = 64;
        j["vocab_size"] = 128256;
        j["max_position_embeddings"] = 131072;
        j["rms_norm_eps"] = 1e-5;
        j["rope_theta"] = 500000.0;
        llama3_rope(32.0, 1.0, 4.0, 8192);
        j["tie_word_embeddings"] = true;
        j["bos_token_id"] = 128000;
        j["eos_token_id"] = 128001;
    } else {
        std::string names;
        for (const std::string_view n : shape_names) names += (names.empty() ? "" : ", ") + std::string(n);
        throw usage_error("vkfuse::model::synthetic: unknown shape \"" + std::string(shape) + "\" (known: " + names +
                          ")");
    }
    j["torch_dtype"] = torch_dtype_name(dtype);
    return j;
}

// ---------------------------------------------------------------------------------------------------------------------
// Weights

struct write_options {
    formats::weight_format dtype = formats::weight_format::bf16;  // f32, f16 or bf16
    std::uint64_t seed = 0;
    // Weights and biases are `std` times a unit normal; norm weights 1 + `std` times one (a trained model's scale:
    // projections of std 0.02 keep activations of order 1).
    double std = 0.02;
    // A new shard starts where the next tensor would take a shard past this many bytes (a tensor larger than it gets
    // a shard of its own); 0: always one file, model.safetensors.
    std::uint64_t shard_bytes = 0;
    // Replace config.json and safetensors files already in the folder (otherwise their presence is a usage_error).
    bool replace = false;
    // Threads generating weights; 0: one per core.
    unsigned threads = 0;
};

namespace detail {

constexpr std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser: a bijection that scrambles bits
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

constexpr std::uint64_t name_hash(std::string_view name) noexcept {  // FNV-1a
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const char ch : name) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001b3ull;
    return h;
}

// A unit-variance, roughly normal value for element `index` of the tensor keyed `key`: the sum of four 16-bit uniforms
// (Irwin-Hall), centred and scaled. Counter-based, so any element can be made on any thread in any order; bounded at
// +-3.46 standard deviations, which is harmless for test weights.
constexpr float unit_normal(std::uint64_t key, std::uint64_t index) noexcept {
    const std::uint64_t bits = mix(key + (index + 1) * 0x9e3779b97f4a7c15ull);
    float sum = 0;
    for (int k = 0; k < 4; ++k) sum += (static_cast<float>((bits >> (16 * k)) & 0xffffu) + 0.5f) * (1.0f / 65536.0f);
    return (sum - 2.0f) * 1.7320508f;  // the sum's variance is 4 / 12
}

enum class tensor_kind { norm, other };

inline tensor_kind kind_of(std::string_view name) {
    return name.ends_with("layernorm.weight") || name == final_norm_name ? tensor_kind::norm : tensor_kind::other;
}

inline std::string_view safetensors_dtype_name(formats::weight_format f) {
    (void)torch_dtype_name(f);  // refuses q8_0 and q4_0
    return f == formats::weight_format::f32 ? "F32" : f == formats::weight_format::f16 ? "F16" : "BF16";
}

inline std::uint64_t element_count(const tensor_spec& t) {
    std::uint64_t n = 1;
    for (const std::uint64_t extent : t.shape) n *= extent;
    return n;
}

// Elements [first, first + out.size()) of tensor `t` as f32.
inline void fill(const tensor_spec& t, const write_options& o, std::uint64_t first, std::span<float> out) {
    const std::uint64_t key = mix(o.seed ^ mix(name_hash(t.name)));
    const float scale = static_cast<float>(o.std);
    const float offset = kind_of(t.name) == tensor_kind::norm ? 1.0f : 0.0f;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = offset + scale * unit_normal(key, first + i);
}

// Makes the chunk's values and encodes them into `bytes`, split over `threads` threads.
inline void make_chunk(const tensor_spec& t, const write_options& o, std::uint64_t first, std::size_t count,
                       std::span<float> values, std::span<std::byte> bytes, unsigned threads) {
    auto part = [&](std::size_t begin, std::size_t end) {
        if (begin >= end) return;
        std::span<float> v = values.subspan(begin, end - begin);
        fill(t, o, first + begin, v);
        switch (o.dtype) {
        case formats::weight_format::f32:
            std::memcpy(bytes.data() + 4 * begin, v.data(), v.size() * 4);
            break;
        case formats::weight_format::f16:
            formats::to_f16(v, std::span(reinterpret_cast<formats::f16_bits*>(bytes.data()) + begin, v.size()));
            break;
        default:
            formats::to_bf16(v, std::span(reinterpret_cast<formats::bf16_bits*>(bytes.data()) + begin, v.size()));
            break;
        }
    };
    constexpr std::size_t min_per_thread = std::size_t{1} << 16;
    const std::size_t parts = std::max<std::size_t>(1, std::min<std::size_t>(threads, count / min_per_thread));
    const std::size_t per_part = (count + parts - 1) / parts;
    std::vector<std::jthread> workers;
    for (std::size_t k = 1; k < parts; ++k)
        workers.emplace_back(part, k * per_part, std::min(count, (k + 1) * per_part));
    part(0, std::min(count, per_part));
}

struct shard_plan {
    std::string file;
    std::vector<const tensor_spec*> tensors;
    std::uint64_t bytes = 0;
};

// The safetensors header of a shard, padded with spaces so the data starts 8-byte aligned; data in header order.
inline std::string shard_header(const shard_plan& shard, std::size_t element_size, std::string_view dtype) {
    nlohmann::ordered_json h;
    h["__metadata__"] = {{"format", "pt"}};
    std::uint64_t offset = 0;
    for (const tensor_spec* t : shard.tensors) {
        const std::uint64_t size = element_count(*t) * element_size;
        h[t->name] = {{"dtype", dtype}, {"shape", t->shape}, {"data_offsets", {offset, offset + size}}};
        offset += size;
    }
    std::string text = h.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
}

} // namespace detail

struct write_result {
    std::vector<std::filesystem::path> files;  // config.json, the shards, the index if sharded
    std::uint64_t tensor_bytes = 0;            // the weights' bytes in all shards
    std::size_t tensor_count = 0;
};

// Writes config.json (`config_json` with torch_dtype set to o.dtype) and random weights for every tensor its config
// expects (tensors.hpp) into `folder`, created if needed. The config is checked with parse_config first, so only a
// model vkfuse can read is written (a config it refuses is that checkpoint_error). Bad options and checkpoint files
// already in the folder (unless o.replace) are a usage_error; a file that cannot be written is a checkpoint_error, and
// is removed.
inline write_result write_checkpoint(const std::filesystem::path& folder, nlohmann::ordered_json config_json,
                                     const write_options& o) {
    namespace fs = std::filesystem;
    const std::string where = "vkfuse::model::synthetic::write_checkpoint(" + folder.string() + ")";
    const std::string_view dtype_name = detail::safetensors_dtype_name(o.dtype);
    const std::size_t element_size = formats::bytes_for(o.dtype, 1);
    if (!(o.std >= 0) || !std::isfinite(o.std)) throw usage_error(where + ": std must be finite and not negative");
    config_json["torch_dtype"] = torch_dtype_name(o.dtype);
    const std::string config_text = config_json.dump(2) + "\n";
    const config c = parse_config(config_text, (folder / "config.json").string());

    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw usage_error(where + ": cannot create the folder: " + ec.message());
    std::vector<fs::path> existing;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name == "config.json" || name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json"))
            existing.push_back(it->path());
    }
    if (ec) throw usage_error(where + ": cannot list the folder: " + ec.message());
    if (!existing.empty()) {
        if (!o.replace) {
            std::string list;
            for (const fs::path& p : existing) list += (list.empty() ? "" : ", ") + p.filename().string();
            throw usage_error(where + ": the folder already holds " + list + "; replace them or choose another folder");
        }
        for (const fs::path& p : existing)
            if (fs::remove(p, ec); ec) throw usage_error(where + ": cannot remove " + p.string() + ": " + ec.message());
    }

    const std::vector<tensor_spec> tensors = expected_tensors(c);
    std::vector<detail::shard_plan> shards(1);
    for (const tensor_spec& t : tensors) {
        const std::uint64_t size = detail::element_count(t) * element_size;
        if (o.shard_bytes != 0 && !shards.back().tensors.empty() && shards.back().bytes + size > o.shard_bytes)
            shards.emplace_back();
        shards.back().tensors.push_back(&t);
        shards.back().bytes += size;
    }
    const bool sharded = shards.size() > 1;
    for (std::size_t s = 0; s < shards.size(); ++s) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
        shards[s].file = sharded ? name : "model.safetensors";
    }

    write_result result;
    // A half-written file is removed, so that no checkpoint that looks whole is left behind.
    auto fail_writing = [&](const fs::path& path) {
        std::error_code ignored;
        fs::remove(path, ignored);
        throw checkpoint_error(where + ": cannot write " + path.string() + " (disk full?)");
    };
    auto write_text = [&](const fs::path& path, const std::string& text) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        out.close();
        if (!out) fail_writing(path);
        result.files.push_back(path);
    };
    write_text(folder / "config.json", config_text);

    const unsigned threads = o.threads != 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
    constexpr std::size_t chunk = std::size_t{1} << 20;
    std::vector<float> values(chunk);
    std::vector<std::byte> bytes(chunk * element_size);
    nlohmann::ordered_json index;
    std::uint64_t total = 0;
    for (const detail::shard_plan& shard : shards) {
        const fs::path path = folder / shard.file;
        const std::string header = detail::shard_header(shard, element_size, dtype_name);
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        std::array<char, 8> length{};
        for (std::size_t i = 0; i < 8; ++i) length[i] = static_cast<char>((header.size() >> (8 * i)) & 0xffu);
        out.write(length.data(), 8);
        out.write(header.data(), static_cast<std::streamsize>(header.size()));
        for (const tensor_spec* t : shard.tensors) {
            const std::uint64_t n = detail::element_count(*t);
            for (std::uint64_t first = 0; first < n && out; first += chunk) {
                const std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, n - first));
                detail::make_chunk(*t, o, first, count, std::span(values).first(count),
                                   std::span(bytes).first(count * element_size), threads);
                out.write(reinterpret_cast<const char*>(bytes.data()),
                          static_cast<std::streamsize>(count * element_size));
            }
            index["weight_map"][t->name] = shard.file;
        }
        out.close();
        if (!out) fail_writing(path);
        result.files.push_back(path);
        total += shard.bytes;
    }
    if (sharded) {
        nlohmann::ordered_json file;
        file["metadata"] = {{"total_size", total}};
        file["weight_map"] = index["weight_map"];
        write_text(folder / "model.safetensors.index.json", file.dump(2) + "\n");
    }
    result.tensor_bytes = total;
    result.tensor_count = tensors.size();
    return result;
}

// The named shape's config.json and weights; see shape_config and write_checkpoint.
inline write_result write_shape(const std::filesystem::path& folder, std::string_view shape, const write_options& o) {
    return write_checkpoint(folder, shape_config(shape, o.dtype), o);
}

} // namespace vkfuse::model::synthetic
