// vkfuse/model/config.hpp — a Hugging Face config.json read into the sizes and conventions of a decoder-only model,
// and the RoPE inverse frequencies that follow from it.
//
// Why this exists: a model's shapes, its RoPE variant and its biases live in config.json, a file we did not write. It
// comes in two spellings (transformers 4's rope_theta + rope_scaling, transformers 5's rope_parameters), fields are
// optional with defaults that transformers supplies, and a value we do not support (another RoPE scaling, another
// activation, a sliding window) would not fail anywhere later: the model would run and produce wrong tokens. So the
// file is read completely and checked here, once; everything unsupported is a vkfuse::checkpoint_error that names the
// file and the field and says what is supported. docs/models.md lists the fields, defaults and decisions.
#pragma once

#include "../checkpoint/safetensors.hpp"  // nlohmann-json, and its duplicate-key-checking parser
#include "../core/error.hpp"
#include "../formats/convert.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace vkfuse::model {

// ---------------------------------------------------------------------------------------------------------------------
// What a config says

// The model classes we run. All three are the same decoder (RMSNorm, RoPE, GQA, SwiGLU); they differ in biases and in
// sliding-window attention, which the config reader resolves.
enum class architecture : std::uint8_t { qwen2, llama, mistral };

inline constexpr std::array all_architectures{architecture::qwen2, architecture::llama, architecture::mistral};

// The spelling in config.json's "architectures".
constexpr std::string_view architecture_name(architecture a) noexcept {
    switch (a) {
    case architecture::qwen2: return "Qwen2ForCausalLM";
    case architecture::llama: return "LlamaForCausalLM";
    case architecture::mistral: return "MistralForCausalLM";
    }
    return "";
}

// The spelling in config.json's "model_type", read when "architectures" is absent.
constexpr std::string_view model_type_name(architecture a) noexcept {
    switch (a) {
    case architecture::qwen2: return "qwen2";
    case architecture::llama: return "llama";
    case architecture::mistral: return "mistral";
    }
    return "";
}

// How RoPE's frequencies are made. transformers knows more types (linear, dynamic, yarn, longrope, ...); each changes
// the frequencies or scales cos/sin, so a checkpoint that uses one is refused rather than run with the wrong angles.
enum class rope_type : std::uint8_t {
    plain,   // "default": inv_freq[i] = theta^(-2i / head_dim)
    llama3,  // Llama 3.1+: low frequencies divided by `factor`, a smooth ramp between low and high ones
};

constexpr std::string_view rope_type_name(rope_type t) noexcept {
    return t == rope_type::plain ? "default" : "llama3";
}

struct rope_parameters {
    rope_type type = rope_type::plain;
    double theta = 10000.0;
    // llama3 only (left at these values for plain RoPE).
    double factor = 1.0;
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    std::size_t original_max_position_embeddings = 0;

    friend bool operator==(const rope_parameters&, const rope_parameters&) = default;
};

// The sizes and conventions of one model, as checked by read_config / parse_config. Weights are [out, in] row-major,
// as Hugging Face stores them; tensors.hpp turns this into tensor names and shapes.
struct config {
    std::string source;  // the config.json it came from, for messages
    model::architecture architecture = architecture::llama;

    std::size_t hidden_size = 0;
    std::size_t intermediate_size = 0;
    std::size_t num_hidden_layers = 0;
    std::size_t num_attention_heads = 0;
    std::size_t num_key_value_heads = 0;    // num_attention_heads when the file leaves it out (no GQA)
    std::size_t head_dim = 0;               // hidden_size / num_attention_heads when the file leaves it out
    std::size_t vocab_size = 0;
    std::size_t max_position_embeddings = 0;
    double rms_norm_eps = 0.0;
    rope_parameters rope;
    bool tie_word_embeddings = false;  // the output projection is model.embed_tokens.weight; no lm_head.weight

    // Biases. Qwen2: q, k and v have them, o does not. Llama: "attention_bias" gives all four or none, "mlp_bias" all
    // three MLP projections or none. Mistral: none.
    bool qkv_bias = false;
    bool o_bias = false;
    bool mlp_bias = false;

    // The checkpoint's own storage type ("torch_dtype", or "dtype" as transformers 5 writes it); absent when the file
    // does not say. The tensors' dtypes are what counts when loading; this says what the publisher intended.
    std::optional<formats::weight_format> torch_dtype;

    std::optional<std::size_t> bos_token_id;
    std::vector<std::size_t> eos_token_ids;  // Llama 3 instruct models list several; empty when the file has none

    // The sliding window of attention the model uses, if any (see read_options::context_length): we only ever run
    // such a model at positions where the window covers everything, so it is recorded, never applied.
    std::optional<std::size_t> sliding_window;
    // The positions this config was checked for: read_options::context_length, else max_position_embeddings.
    std::size_t context_length = 0;

    std::size_t q_size() const noexcept { return num_attention_heads * head_dim; }
    std::size_t kv_size() const noexcept { return num_key_value_heads * head_dim; }
    // Query heads per KV head: query head h reads KV head h / group_size().
    std::size_t group_size() const noexcept { return num_attention_heads / num_key_value_heads; }
};

struct read_options {
    // How many positions the caller will run (the longest prompt plus generated tokens). A model with a sliding
    // window smaller than this is refused; nothing else depends on it. Unset: max_position_embeddings.
    std::optional<std::size_t> context_length;
    // What the caller calls that setting, for the message that refuses a window: a program's option ("--max-seq")
    // rather than this struct's field.
    std::string_view context_length_name = "read_options::context_length";
};

// Sizes beyond this are a corrupt file, not a model (the largest published values are a few million, for context
// lengths); keeping every size below 2^31 also keeps every product of two sizes far from overflowing.
inline constexpr std::size_t max_config_size = (std::size_t{1} << 31) - 1;
// Counts that size lists rather than tensors (layers: the tensor list; heads and head_dim: per-head tables) have a
// tighter bound, so that a corrupt file cannot make a reader allocate gigabytes for its bookkeeping. Real models have
// at most a few hundred layers and heads of at most a few hundred elements.
inline constexpr std::size_t max_config_count = std::size_t{1} << 16;

// ---------------------------------------------------------------------------------------------------------------------
// Reading

namespace detail {

using json = nlohmann::json;
using safetensors::detail::json_text;
using safetensors::detail::printable;

// Every message starts with the file; `field` is the config key (dotted for a nested one).
class config_reader {
public:
    config_reader(const json& root, std::string source) : root_(root), source_(std::move(source)) {}

    checkpoint_error error(std::string_view field, const std::string& what) const {
        return checkpoint_error("config " + printable(source_, 4096) + ": " + std::string(field) + ": " + what);
    }

    // The value of `field` in `object`, or null when absent: transformers treats a JSON null as "not given" for
    // every field read here, and so do we.
    static const json* find(const json& object, std::string_view field) {
        const auto it = object.find(field);
        return it == object.end() || it->is_null() ? nullptr : &*it;
    }
    const json* find(std::string_view field) const { return find(root_, field); }
    // Whether the field is there at all, null included (where null and absent mean different things).
    bool has(std::string_view field) const { return root_.contains(field); }

    // A positive integer no larger than `limit`.
    std::size_t size_value(const json& v, std::string_view field, std::size_t limit = max_config_size) const {
        if (!v.is_number_integer()) throw error(field, "is " + json_text(v) + ", not an integer");
        if (v.is_number_unsigned()) {
            const auto n = v.get<std::uint64_t>();
            if (n == 0) throw error(field, "is 0; it must be positive");
            if (n > limit)
                throw error(field, "is " + std::to_string(n) + ", more than any model has (at most " +
                                       std::to_string(limit) + ")");
            return static_cast<std::size_t>(n);
        }
        const auto n = v.get<std::int64_t>();
        throw error(field, "is " + std::to_string(n) + "; it must be positive");
    }

    // A non-negative integer (token ids), below `limit`.
    std::size_t index_value(const json& v, std::string_view field, std::size_t limit,
                            std::string_view limit_name) const {
        if (!v.is_number_integer()) throw error(field, "is " + json_text(v) + ", not an integer");
        if (!v.is_number_unsigned())
            throw error(field, "is " + std::to_string(v.get<std::int64_t>()) + "; it must not be negative");
        const auto n = v.get<std::uint64_t>();
        if (n >= limit)
            throw error(field, "is " + std::to_string(n) + ", not below " + std::string(limit_name) + " " +
                                   std::to_string(limit));
        return static_cast<std::size_t>(n);
    }

    // A finite number greater than zero (integers allowed: "rope_theta": 500000 is common).
    double positive_number(const json& v, std::string_view field) const {
        if (!v.is_number()) throw error(field, "is " + json_text(v) + ", not a number");
        const double x = v.get<double>();
        if (!std::isfinite(x) || !(x > 0))
            throw error(field, "is " + json_text(v) + "; it must be positive and finite");
        return x;
    }

    bool boolean(const json& v, std::string_view field) const {
        if (!v.is_boolean()) throw error(field, "is " + json_text(v) + ", not true or false");
        return v.get<bool>();
    }

    const std::string& string(const json& v, std::string_view field) const {
        if (!v.is_string()) throw error(field, "is " + json_text(v) + ", not a string");
        return v.get_ref<const std::string&>();
    }

    std::size_t required_size(std::string_view field, std::size_t limit = max_config_size) const {
        const json* v = find(field);
        if (v == nullptr) throw error(field, "missing (a positive integer is required)");
        return size_value(*v, field, limit);
    }

    std::optional<std::size_t> optional_size(std::string_view field, std::size_t limit = max_config_size) const {
        const json* v = find(field);
        if (v == nullptr) return std::nullopt;
        return size_value(*v, field, limit);
    }

    bool optional_bool(std::string_view field, bool fallback) const {
        const json* v = find(field);
        return v == nullptr ? fallback : boolean(*v, field);
    }

private:
    const json& root_;
    std::string source_;
};

// One RoPE description: a transformers 4 "rope_scaling" object or a transformers 5 "rope_parameters" object (which
// also carries rope_theta). `theta` is the value to use when the object has none.
inline rope_parameters read_rope_object(const config_reader& r, const json& object, std::string_view field,
                                        double theta) {
    const std::string prefix(field);
    auto name = [&](std::string_view key) { return prefix + "." + std::string(key); };
    if (!object.is_object()) throw r.error(field, "is " + json_text(object) + ", not an object or null");

    // transformers 5 may give one object per attention type ({"full_attention": {...}, "sliding_attention": {...}}).
    if (!object.empty() && !object.contains("rope_type") && !object.contains("type")) {
        bool all_objects = true;
        for (const auto& [key, value] : object.items()) all_objects = all_objects && value.is_object();
        if (all_objects) {
            std::string keys;
            for (const auto& [key, value] : object.items()) keys += (keys.empty() ? "" : ", ") + printable(key);
            throw r.error(field, "gives RoPE per attention type (" + keys +
                                     "); only one RoPE for every layer is supported");
        }
    }

    rope_parameters p;
    p.theta = theta;
    if (const json* v = config_reader::find(object, "rope_theta")) p.theta = r.positive_number(*v, name("rope_theta"));

    // "type" is the older spelling of "rope_type"; transformers reads either.
    const json* type = config_reader::find(object, "rope_type");
    const json* old_type = config_reader::find(object, "type");
    std::string type_name = "default";
    if (type != nullptr) type_name = r.string(*type, name("rope_type"));
    if (old_type != nullptr) {
        const std::string& other = r.string(*old_type, name("type"));
        if (type != nullptr && other != type_name)
            throw r.error(field, "rope_type " + printable(type_name) + " and type " + printable(other) + " disagree");
        type_name = other;
    }
    if (type_name == "default") {
        p.type = rope_type::plain;
    } else if (type_name == "llama3") {
        p.type = rope_type::llama3;
        auto required_number = [&](std::string_view key) {
            const json* v = config_reader::find(object, key);
            if (v == nullptr) throw r.error(name(key), "missing (llama3 RoPE needs factor, low_freq_factor, "
                                                       "high_freq_factor and original_max_position_embeddings)");
            return r.positive_number(*v, name(key));
        };
        p.factor = required_number("factor");
        p.low_freq_factor = required_number("low_freq_factor");
        p.high_freq_factor = required_number("high_freq_factor");
        const json* original = config_reader::find(object, "original_max_position_embeddings");
        if (original == nullptr)
            throw r.error(name("original_max_position_embeddings"),
                          "missing (llama3 RoPE needs factor, low_freq_factor, high_freq_factor and "
                          "original_max_position_embeddings)");
        p.original_max_position_embeddings = r.size_value(*original, name("original_max_position_embeddings"));
        // The ramp between the two wavelengths divides by their difference.
        if (!(p.high_freq_factor > p.low_freq_factor))
            throw r.error(field, "high_freq_factor " + json_text(object["high_freq_factor"]) +
                                     " must be greater than low_freq_factor " +
                                     json_text(object["low_freq_factor"]));
    } else {
        throw r.error(name(type != nullptr ? "rope_type" : "type"),
                      "RoPE type " + printable(type_name) +
                          " is not supported (supported: \"default\" and \"llama3\"; linear, dynamic, yarn, "
                          "longrope and the others change the frequencies or the attention scale)");
    }

    // Partial rotary embeddings rotate only part of each head; every supported model rotates all of it.
    if (const json* v = config_reader::find(object, "partial_rotary_factor")) {
        if (!v->is_number() || v->get<double>() != 1.0)
            throw r.error(name("partial_rotary_factor"),
                          "is " + json_text(*v) + "; only 1 (RoPE over the whole head) is supported");
    }
    return p;
}

// The RoPE of a config in either spelling. When both are present they must say the same thing: a file that says two
// things has no one meaning.
inline rope_parameters read_rope(const config_reader& r) {
    std::optional<double> top_theta;
    if (const json* v = r.find("rope_theta")) top_theta = r.positive_number(*v, "rope_theta");
    // transformers' default for every supported architecture, the base of the original RoPE paper.
    const double theta = top_theta.value_or(10000.0);

    if (const json* v = r.find("partial_rotary_factor")) {
        if (!v->is_number() || v->get<double>() != 1.0)
            throw r.error("partial_rotary_factor",
                          "is " + json_text(*v) + "; only 1 (RoPE over the whole head) is supported");
    }

    std::optional<rope_parameters> old_spelling;
    if (const json* scaling = r.find("rope_scaling"))
        old_spelling = read_rope_object(r, *scaling, "rope_scaling", theta);

    const json* parameters = r.find("rope_parameters");
    if (parameters == nullptr) {
        rope_parameters p = old_spelling.value_or(rope_parameters{.theta = theta});
        if (top_theta && p.theta != *top_theta)  // rope_scaling carried a rope_theta of its own
            throw r.error("rope_scaling.rope_theta", "is " + std::to_string(p.theta) + " but rope_theta is " +
                                                         std::to_string(*top_theta) + "; the file must say one thing");
        return p;
    }
    const rope_parameters p = read_rope_object(r, *parameters, "rope_parameters", theta);
    if (top_theta && p.theta != *top_theta)
        throw r.error("rope_parameters.rope_theta", "is " + std::to_string(p.theta) + " but rope_theta is " +
                                                        std::to_string(*top_theta) + "; the file must say one thing");
    if (old_spelling) {
        rope_parameters scaled = *old_spelling;
        scaled.theta = p.theta;
        if (!(scaled == p))
            throw r.error("rope_parameters", "and rope_scaling describe different RoPE (types " +
                                                 std::string(rope_type_name(p.type)) + " and " +
                                                 std::string(rope_type_name(scaled.type)) +
                                                 ", or different llama3 parameters); the file must say one thing");
    }
    return p;
}

inline architecture read_architecture(const config_reader& r) {
    std::string supported;
    for (const architecture a : all_architectures)
        supported += (supported.empty() ? "" : ", ") + std::string(architecture_name(a));

    // Like vLLM, the first supported entry of "architectures" decides; transformers itself goes by model_type, which
    // is the fallback when "architectures" is absent.
    if (const json* list = r.find("architectures")) {
        if (!list->is_array() || list->empty())
            throw r.error("architectures", "is " + json_text(*list) + ", not a non-empty list of class names");
        std::string found;
        for (const json& entry : *list) {
            const std::string& name = r.string(entry, "architectures");
            for (const architecture a : all_architectures)
                if (name == architecture_name(a)) return a;
            found += (found.empty() ? "" : ", ") + printable(name, 64);
        }
        throw r.error("architectures", "[" + found + "] is not supported (supported: " + supported + ")");
    }
    if (const json* type = r.find("model_type")) {
        const std::string& name = r.string(*type, "model_type");
        for (const architecture a : all_architectures)
            if (name == model_type_name(a)) return a;
        throw r.error("model_type", printable(name, 64) + " is not supported, and there is no \"architectures\" "
                                                           "(supported: " + supported + "; model_type qwen2, llama, "
                                                           "mistral)");
    }
    throw r.error("architectures", "missing, and no model_type either (supported: " + supported + ")");
}

inline std::optional<formats::weight_format> read_torch_dtype(const config_reader& r) {
    auto read = [&](std::string_view field) -> std::optional<formats::weight_format> {
        const json* v = r.find(field);
        if (v == nullptr) return std::nullopt;
        const std::string& name = r.string(*v, field);
        if (name == "float32") return formats::weight_format::f32;
        if (name == "float16") return formats::weight_format::f16;
        if (name == "bfloat16") return formats::weight_format::bf16;
        throw r.error(field, printable(name, 64) + " is not supported (supported: float32, float16, bfloat16)");
    };
    const auto old_spelling = read("torch_dtype");
    const auto new_spelling = read("dtype");
    if (old_spelling && new_spelling && *old_spelling != *new_spelling)
        throw r.error("dtype", "disagrees with torch_dtype; the file must say one thing");
    return new_spelling ? new_spelling : old_spelling;
}

// The window in effect, following each architecture's modeling code: Qwen2 slides only with use_sliding_window, and
// only in the layers from max_window_layers on (or where layer_types says so); Mistral slides whenever sliding_window
// is set (MistralConfig's default is 4096); Llama never does.
inline std::optional<std::size_t> read_sliding_window(const config_reader& r, architecture arch, std::size_t layers) {
    if (arch == architecture::llama) return std::nullopt;
    const json* window = r.find("sliding_window");
    auto window_value = [&]() -> std::size_t {
        if (window == nullptr) throw r.error("sliding_window", "missing, but the config uses sliding-window layers");
        return r.size_value(*window, "sliding_window");
    };
    if (const json* types = r.find("layer_types")) {
        if (!types->is_array() || types->size() != layers)
            throw r.error("layer_types", "is " + json_text(*types) + ", not a list of " + std::to_string(layers) +
                                             " attention types (one per layer)");
        bool sliding = false;
        for (const json& t : *types) {
            const std::string& name = r.string(t, "layer_types");
            if (name == "sliding_attention") sliding = true;
            else if (name != "full_attention")
                throw r.error("layer_types", "holds " + printable(name, 64) +
                                                 " (supported: full_attention, sliding_attention)");
        }
        if (!sliding) return std::nullopt;
        return window_value();
    }
    if (arch == architecture::qwen2) {
        if (!r.optional_bool("use_sliding_window", false) || window == nullptr) return std::nullopt;
        const std::size_t first_sliding_layer = r.optional_size("max_window_layers").value_or(28);
        if (first_sliding_layer >= layers) return std::nullopt;
        return window_value();
    }
    // Mistral: an explicit null means no window; an absent field means MistralConfig's default of 4096.
    if (!r.has("sliding_window")) return 4096;
    if (window == nullptr) return std::nullopt;
    return window_value();
}

} // namespace detail

// Checks `text`, the contents of a config.json (`source` names it in messages), and returns what it says. Every defect
// and everything unsupported is a checkpoint_error naming `source` and the field.
inline config parse_config(std::string_view text, std::string source, const read_options& options = {}) {
    using detail::json;
    const std::string shown = safetensors::detail::printable(source, 4096);
    if (options.context_length && *options.context_length == 0)
        throw usage_error("model::parse_config(" + shown + "): read_options::context_length is 0");

    // Duplicate keys are a defect (two readers would see two different models), and nesting is bounded.
    const safetensors::detail::parsed_object parsed =
        safetensors::detail::parse_object(text, 64, [&](const std::string* key, const std::string& what) {
            return checkpoint_error("config " + shown + ": " +
                                    (key ? safetensors::detail::printable(*key) + ": " : std::string()) + what);
        });
    const detail::config_reader r(parsed.value, source);

    config c;
    c.source = std::move(source);
    c.architecture = detail::read_architecture(r);

    c.hidden_size = r.required_size("hidden_size");
    c.intermediate_size = r.required_size("intermediate_size");
    c.num_hidden_layers = r.required_size("num_hidden_layers", max_config_count);
    c.num_attention_heads = r.required_size("num_attention_heads", max_config_count);
    c.num_key_value_heads = r.optional_size("num_key_value_heads").value_or(c.num_attention_heads);
    c.vocab_size = r.required_size("vocab_size");
    c.max_position_embeddings = r.required_size("max_position_embeddings");

    if (c.num_key_value_heads > c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads != 0)
        throw r.error("num_key_value_heads", std::to_string(c.num_key_value_heads) +
                                                 " does not divide num_attention_heads " +
                                                 std::to_string(c.num_attention_heads) +
                                                 " (each KV head serves the same number of query heads)");
    if (const auto head_dim = r.optional_size("head_dim", max_config_count)) {
        c.head_dim = *head_dim;
    } else {
        if (c.hidden_size % c.num_attention_heads != 0)
            throw r.error("num_attention_heads", std::to_string(c.num_attention_heads) +
                                                     " does not divide hidden_size " + std::to_string(c.hidden_size) +
                                                     ", and there is no head_dim to say how wide a head is");
        c.head_dim = c.hidden_size / c.num_attention_heads;
        if (c.head_dim > max_config_count)
            throw r.error("num_attention_heads", std::to_string(c.num_attention_heads) + " heads of hidden_size " +
                                                     std::to_string(c.hidden_size) + " are " +
                                                     std::to_string(c.head_dim) +
                                                     " elements each, more than any model has (at most " +
                                                     std::to_string(max_config_count) + ")");
    }
    // RoPE rotates the first half of a head against the second.
    if (c.head_dim % 2 != 0)
        throw r.error(r.find("head_dim") ? "head_dim" : "num_attention_heads",
                      "head_dim " + std::to_string(c.head_dim) + " is odd; RoPE needs an even head size");

    const detail::json* eps = r.find("rms_norm_eps");
    if (eps == nullptr) throw r.error("rms_norm_eps", "missing (a positive number is required)");
    c.rms_norm_eps = r.positive_number(*eps, "rms_norm_eps");

    c.rope = detail::read_rope(r);
    if (c.rope.type == rope_type::llama3 && c.rope.original_max_position_embeddings == 0)
        throw r.error("rope_scaling", "llama3 RoPE without original_max_position_embeddings");

    c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", false);

    if (const detail::json* act = r.find("hidden_act")) {
        const std::string& name = r.string(*act, "hidden_act");
        if (name != "silu")
            throw r.error("hidden_act", safetensors::detail::printable(name, 64) +
                                            " is not supported (supported: \"silu\", the SwiGLU feed-forward)");
    }

    switch (c.architecture) {
    case architecture::qwen2:
        c.qkv_bias = true;  // Qwen2Attention builds q, k and v with biases and o without, whatever the config says
        break;
    case architecture::llama:
        c.qkv_bias = c.o_bias = r.optional_bool("attention_bias", false);
        c.mlp_bias = r.optional_bool("mlp_bias", false);
        break;
    case architecture::mistral: break;
    }

    c.torch_dtype = detail::read_torch_dtype(r);

    if (const detail::json* bos = r.find("bos_token_id"))
        c.bos_token_id = r.index_value(*bos, "bos_token_id", c.vocab_size, "vocab_size");
    if (const detail::json* eos = r.find("eos_token_id")) {
        if (eos->is_array()) {
            for (const detail::json& id : *eos)
                c.eos_token_ids.push_back(r.index_value(id, "eos_token_id", c.vocab_size, "vocab_size"));
        } else {
            c.eos_token_ids.push_back(r.index_value(*eos, "eos_token_id", c.vocab_size, "vocab_size"));
        }
    }

    c.context_length = options.context_length.value_or(c.max_position_embeddings);
    c.sliding_window = detail::read_sliding_window(r, c.architecture, c.num_hidden_layers);
    if (c.sliding_window && *c.sliding_window < c.context_length)
        throw r.error("sliding_window",
                      std::to_string(*c.sliding_window) + ": the model attends over a sliding window of " +
                          std::to_string(*c.sliding_window) + " positions, which vkfuse does not implement; up to " +
                          std::to_string(*c.sliding_window) + " positions it is the same as full attention, so run " +
                          "it with " + std::string(options.context_length_name) + " at most " +
                          std::to_string(*c.sliding_window) +
                          " (it is " + std::to_string(c.context_length) +
                          (options.context_length ? ")" : ", max_position_embeddings, by default)"));
    return c;
}

// Reads `path` — a config.json, or a model folder holding one — with parse_config.
inline config read_config(const std::filesystem::path& path, const read_options& options = {}) {
    std::error_code ec;
    const std::filesystem::path file =
        std::filesystem::is_directory(path, ec) ? path / "config.json" : path;
    const std::string shown = safetensors::detail::printable(file.string(), 4096);
    const std::uintmax_t size = std::filesystem::file_size(file, ec);
    if (ec) throw checkpoint_error("config " + shown + ": cannot read: " + ec.message());
    // Real configs are a few KB; a huge one is not a config.
    constexpr std::uintmax_t max_bytes = 64u << 20;
    if (size > max_bytes)
        throw checkpoint_error("config " + shown + ": is " + std::to_string(size) + " bytes, not a config.json");
    std::string text(static_cast<std::size_t>(size), '\0');
    std::ifstream in(file, std::ios::binary);
    if (!in || !in.read(text.data(), static_cast<std::streamsize>(text.size())))
        throw checkpoint_error("config " + shown + ": cannot read " + std::to_string(size) + " bytes");
    return parse_config(text, file.string(), options);
}

// ---------------------------------------------------------------------------------------------------------------------
// RoPE frequencies

// The head_dim / 2 inverse frequencies of RoPE, in double, by transformers' formulas (modeling_rope_utils.py): for
// pair i (dimensions i and i + head_dim / 2, the rotate-half layout) the angle at position p is p * inv_freq[i], with
//
//   plain:  inv_freq[i] = 1 / theta^(2i / head_dim)
//   llama3: wavelength w = 2 pi / inv_freq[i] (plain); with L = original_max_position_embeddings,
//           w < L / high_freq_factor          (high frequencies)  unchanged
//           w > L / low_freq_factor           (low frequencies)   inv_freq[i] / factor
//           otherwise, s = (L / w - low_freq_factor) / (high_freq_factor - low_freq_factor):
//                                                                  (1 - s) * inv_freq[i] / factor + s * inv_freq[i]
//
// transformers evaluates these in float32; these are the same formulas in double (the two differ by float32 rounding,
// about 1e-7 relative).
inline std::vector<double> inv_freq(const config& c) {
    const std::size_t pairs = c.head_dim / 2;
    std::vector<double> out(pairs);
    for (std::size_t i = 0; i < pairs; ++i)
        out[i] = 1.0 / std::pow(c.rope.theta, static_cast<double>(2 * i) / static_cast<double>(c.head_dim));
    if (c.rope.type == rope_type::llama3) {
        const double original = static_cast<double>(c.rope.original_max_position_embeddings);
        const double low_freq_wavelength = original / c.rope.low_freq_factor;
        const double high_freq_wavelength = original / c.rope.high_freq_factor;
        for (double& f : out) {
            const double wavelength = 2 * std::numbers::pi / f;
            if (wavelength < high_freq_wavelength) continue;
            if (wavelength > low_freq_wavelength) {
                f /= c.rope.factor;
                continue;
            }
            const double smooth =
                (original / wavelength - c.rope.low_freq_factor) / (c.rope.high_freq_factor - c.rope.low_freq_factor);
            f = (1 - smooth) * f / c.rope.factor + smooth * f;
        }
    }
    return out;
}

} // namespace vkfuse::model
