// vkfuse/model/generator.hpp — a Hugging Face checkpoint loaded into a model program, and greedy generation.
//
//     constexpr vkfuse::model::sizes qwen{.layers = 24, .hidden = 896, ...};       // what config.json says
//     using model = vkfuse::model::decoder<qwen, vkfuse::bf16>;
//     vkfuse::context ctx;
//     vkfuse::model::generator<model> gen(ctx, "Qwen2.5-0.5B/");                 // config.json + *.safetensors
//     vkfuse::generation g = gen.generate(prompt_ids, 16);                        // g.tokens: prompt, then 16 ids
//
// The sizes are compile-time (they shape the kernels); the checkpoint is read at run time and checked against
// them: a config that describes another model, a missing or misshapen tensor, a dtype that does not convert — each
// is a vkfuse::checkpoint_error naming the file, the field or the tensor, before anything is uploaded.
// scripts/generate makes the `sizes` from a config.json at build time.
#pragma once

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../checkpoint/safetensors.hpp"
#include "../formats/convert.hpp"
#include "../program/decode_loop.hpp"
#include "../program/program.hpp"
#include "config.hpp"
#include "decoder.hpp"
#include "tensors.hpp"

namespace vkfuse::model {

// The sizes a config describes, for a build with `max_positions` positions (scripts/generate writes these).
inline sizes sizes_of(const config& c, std::size_t max_positions) {
    sizes s;
    s.layers = c.num_hidden_layers;
    s.hidden = c.hidden_size;
    s.heads = c.num_attention_heads;
    s.kv_heads = c.num_key_value_heads;
    s.head_dim = c.head_dim;
    s.intermediate = c.intermediate_size;
    s.vocab = c.vocab_size;
    s.max_positions = max_positions;
    s.rope_theta = static_cast<float>(c.rope.theta);
    if (c.rope.type == rope_type::llama3)
        s.scaling = {static_cast<float>(c.rope.factor), static_cast<float>(c.rope.low_freq_factor),
                     static_cast<float>(c.rope.high_freq_factor),
                     static_cast<std::uint32_t>(c.rope.original_max_position_embeddings)};
    s.rms_norm_eps = static_cast<float>(c.rms_norm_eps);
    s.qkv_bias = c.qkv_bias;
    s.o_bias = c.o_bias;
    s.mlp_bias = c.mlp_bias;
    s.tied = c.tie_word_embeddings;
    return s;
}

// Checks that config `c` describes the model `built` was compiled for; every difference is listed.
inline void check_config(const config& c, const sizes& built) {
    const sizes want = sizes_of(c, built.max_positions);
    std::string problems;
    // Floats as the shortest text that reads back as the same float (std::to_string's six decimals would show
    // 1e-6 and 1.0000001e-6 alike), flags as true/false.
    auto show = [](auto v) -> std::string {
        if constexpr (std::is_same_v<decltype(v), bool>) {
            return v ? "true" : "false";
        } else if constexpr (std::is_floating_point_v<decltype(v)>) {
            char text[32];
            return std::string(text, std::to_chars(text, text + sizeof text, v).ptr);
        } else {
            return std::to_string(v);
        }
    };
    auto differs = [&](std::string_view field, auto have, auto built_value) {
        if (have == built_value) return;
        problems += "\n  " + std::string(field) + ": the config says " + show(have) + ", this build has " +
                    show(built_value);
    };
    differs("num_hidden_layers", want.layers, built.layers);
    differs("hidden_size", want.hidden, built.hidden);
    differs("num_attention_heads", want.heads, built.heads);
    differs("num_key_value_heads", want.kv_heads, built.kv_heads);
    differs("head_dim", want.head_dim, built.head_dim);
    differs("intermediate_size", want.intermediate, built.intermediate);
    differs("vocab_size", want.vocab, built.vocab);
    differs("rope_theta", want.rope_theta, built.rope_theta);
    differs("rope_scaling.factor", want.scaling.factor, built.scaling.factor);
    differs("rope_scaling.low_freq_factor", want.scaling.low_freq_factor, built.scaling.low_freq_factor);
    differs("rope_scaling.high_freq_factor", want.scaling.high_freq_factor, built.scaling.high_freq_factor);
    differs("rope_scaling.original_max_position_embeddings", want.scaling.original_positions,
            built.scaling.original_positions);
    differs("rms_norm_eps", want.rms_norm_eps, built.rms_norm_eps);
    differs("q/k/v biases", want.qkv_bias, built.qkv_bias);
    differs("attention_bias (o_proj)", want.o_bias, built.o_bias);
    differs("mlp_bias", want.mlp_bias, built.mlp_bias);
    differs("tie_word_embeddings", want.tied, built.tied);
    if (problems.empty()) return;
    throw checkpoint_error("config " + c.source + " describes another model than this program was built for:" +
                           problems + "\nBuild a program for this config (scripts/generate does it from config.json).");
}

namespace detail {

inline formats::weight_format format_of_tensor(const safetensors::tensor_view& t) {
    switch (t.dtype) {
    case safetensors::dtype::f32: return formats::weight_format::f32;
    case safetensors::dtype::f16: return formats::weight_format::f16;
    case safetensors::dtype::bf16: return formats::weight_format::bf16;
    default:
        throw checkpoint_error("tensor " + t.name + " has dtype " + std::string(safetensors::dtype_name(t.dtype)) +
                               "; supported: F32, F16, BF16");
    }
}

} // namespace detail

// Uploads every tensor of `checkpoint` (already checked against `c` by check_tensors) into a program of
// decoder<...>: each converted once, on the host, from the checkpoint's dtype to the program's storage.
template <class Program, strategy How>
void load_weights(program<Program, How>& prog, const config& c, const safetensors::checkpoint& checkpoint) {
    auto put = [&](std::string_view program_name, int layer, std::string_view tensor) {
        const safetensors::tensor_view& t = checkpoint.at(tensor);
        const formats::weight_format format = detail::format_of_tensor(t);
        if (const std::optional<std::size_t> at = formats::first_non_finite(t.bytes, format)) {
            const std::size_t cols = t.shape.size() == 2 ? static_cast<std::size_t>(t.shape[1]) : 0;
            throw checkpoint_error(
                "tensor " + safetensors::detail::printable(t.name) + " in " + safetensors::detail::printable(t.source, 4096) +
                " holds a NaN or an infinity at element " + std::to_string(*at) +
                (cols != 0 ? " (row " + std::to_string(*at / cols) + ", column " + std::to_string(*at % cols) + ")"
                           : std::string()) +
                "; every value a model computes from it would be too. The checkpoint is damaged or was saved from "
                "a diverged run: take another copy or another checkpoint.");
        }
        prog.upload_encoded(program_name, layer, t.bytes, format);
    };
    put("embed", -1, embedding_name);
    put("norm", -1, final_norm_name);
    if (!c.tie_word_embeddings) put("lm_head", -1, lm_head_name);
    for (std::size_t i = 0; i < c.num_hidden_layers; ++i) {
        const int layer = static_cast<int>(i);
        const layer_tensor_names n = layer_tensors(c, i);
        put("attn_norm", layer, n.input_layernorm);
        put("wq", layer, n.q_proj);
        put("wk", layer, n.k_proj);
        put("wv", layer, n.v_proj);
        put("wo", layer, n.o_proj);
        put("ffn_norm", layer, n.post_attention_layernorm);
        put("w_gate", layer, n.gate_proj);
        put("w_up", layer, n.up_proj);
        put("w_down", layer, n.down_proj);
        if (c.qkv_bias) {
            put("bq", layer, n.q_bias);
            put("bk", layer, n.k_bias);
            put("bv", layer, n.v_bias);
        }
        if (c.o_bias) put("bo", layer, n.o_bias);
        if (c.mlp_bias) {
            put("b_gate", layer, n.gate_bias);
            put("b_up", layer, n.up_bias);
            put("b_down", layer, n.down_bias);
        }
    }
}

// What a checkpoint says that is odd but loads: tensors whose dtype is not the one config.json names (torch_dtype or
// dtype), grouped by dtype, each line naming both and a tensor. The tensors' own dtypes are what is loaded (exactly,
// then converted to the program's storage); a mismatch usually means a file converted by hand or the wrong config.
inline std::vector<std::string> checkpoint_warnings(const config& c, const safetensors::checkpoint& checkpoint) {
    std::vector<std::string> out;
    if (!c.torch_dtype) return out;
    std::map<std::string, std::pair<std::size_t, std::string>, std::less<>> others;  // dtype: count, first tensor
    for (const safetensors::tensor_view* t : checkpoint.tensors()) {
        if (t->dtype != safetensors::dtype::f32 && t->dtype != safetensors::dtype::f16 &&
            t->dtype != safetensors::dtype::bf16)
            continue;  // not a weight this loader reads (check_tensors refuses what it needs in another dtype)
        if (detail::format_of_tensor(*t) == *c.torch_dtype) continue;
        auto& [count, first] = others[std::string(safetensors::dtype_name(t->dtype))];
        if (count++ == 0) first = t->name;
    }
    for (const auto& [dtype, seen] : others)
        out.push_back(c.source + " says the weights are " + std::string(formats::format_name(*c.torch_dtype)) +
                      ", but " + std::to_string(seen.first) + " tensor" + (seen.first == 1 ? " is" : "s are") +
                      " stored as " + dtype + " (" + safetensors::detail::printable(seen.second) +
                      (seen.first == 1 ? "" : " among them") +
                      "); they are loaded as stored. Check that config.json belongs to these weights.");
    return out;
}

// A model of decoder type `Model` (decoder<sizes, Weights, Cache>) with a checkpoint's weights, ready to generate.
template <class Model, strategy How = strategy::fused>
class generator {
public:
    using program_type = program<typename Model::program_type, How>;

    // `folder`: a Hugging Face model folder (config.json and model.safetensors, or shards with their index).
    generator(context& ctx, const std::filesystem::path& folder, program_options options = {})
        : config_(read_config(folder, {.context_length = Model::T})), checkpoint_(folder) {
        check_config(config_, Model::shape);
        check_tensors(config_, checkpoint_);
        warnings_ = checkpoint_warnings(config_, checkpoint_);
        const auto start = std::chrono::steady_clock::now();
        prog_ = std::make_unique<program_type>(ctx, options);
        const auto built = std::chrono::steady_clock::now();
        load_weights(*prog_, config_, checkpoint_);
        const auto loaded = std::chrono::steady_clock::now();
        loop_ = std::make_unique<decode_loop<typename Model::program_type, How>>(
            *prog_, decode_options{.head_steps = Model::head_steps});
        build_seconds_ = std::chrono::duration<double>(built - start).count();
        load_seconds_ = std::chrono::duration<double>(loaded - built).count();
    }

    // Greedy continuation of `prompt` (token ids) by `new_tokens` ids.
    generation generate(std::span<const std::uint32_t> prompt, std::size_t new_tokens) {
        check_ids(prompt);
        return loop_->generate(prompt, new_tokens);
    }
    // The same, position by position, handing each position's logits to `sink(position, logits)`.
    template <class Sink>
    generation generate_with_logits(std::span<const std::uint32_t> prompt, std::size_t new_tokens, Sink sink) {
        check_ids(prompt);
        return loop_->generate_with_logits(prompt, new_tokens, "logits", sink);
    }

    const config& model_config() const { return config_; }
    // What the checkpoint says that is odd but loads (checkpoint_warnings), for the caller to show.
    const std::vector<std::string>& warnings() const { return warnings_; }
    program_type& model_program() { return *prog_; }
    std::size_t capacity() const { return loop_->capacity(); }
    // Seconds spent building the kernels (shader compilation, or the disk cache) and uploading the weights.
    double build_seconds() const { return build_seconds_; }
    double load_seconds() const { return load_seconds_; }

private:
    void check_ids(std::span<const std::uint32_t> prompt) const {
        for (std::size_t i = 0; i < prompt.size(); ++i)
            if (prompt[i] >= Model::V)
                throw usage_error("vkfuse generator: prompt id " + std::to_string(prompt[i]) + " at position " +
                                  std::to_string(i) + " is not below the vocabulary size " +
                                  std::to_string(Model::V) + ".");
    }

    config config_;
    safetensors::checkpoint checkpoint_;
    std::unique_ptr<program_type> prog_;
    std::unique_ptr<decode_loop<typename Model::program_type, How>> loop_;
    double build_seconds_ = 0, load_seconds_ = 0;
    std::vector<std::string> warnings_;
};

} // namespace vkfuse::model
