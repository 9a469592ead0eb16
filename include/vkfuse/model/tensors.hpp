// vkfuse/model/tensors.hpp — the tensors a Hugging Face checkpoint of a given config holds: names, shapes, and the
// check that a checkpoint holds exactly those.
//
// Why this exists: the names and [out, in] shapes are Hugging Face's module paths, and a checkpoint that does not
// match its config (a missing bias, a transposed projection, an extra layer, a q-norm of a newer architecture) would
// otherwise surface as a crash deep inside loading, or as a model that runs and is wrong. So a checkpoint is compared
// with its config as a whole before any weight is used, and every difference is reported at once, by tensor name,
// with the expected and the found shape.
#pragma once

#include "../checkpoint/safetensors.hpp"
#include "../core/error.hpp"
#include "config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vkfuse::model {

// One tensor a checkpoint must hold. Shapes are outermost first, row-major: a projection is [out, in].
struct tensor_spec {
    std::string name;
    std::vector<std::uint64_t> shape;
};

// "model.layers.<layer>.<suffix>", e.g. layer_tensor_name(3, "mlp.up_proj.weight").
inline std::string layer_tensor_name(std::size_t layer, std::string_view suffix) {
    return "model.layers." + std::to_string(layer) + "." + std::string(suffix);
}

// The names of one decoder layer's tensors. A bias the config does not have is an empty string.
struct layer_tensor_names {
    std::string input_layernorm;           // [hidden]
    std::string q_proj, k_proj, v_proj;    // [heads * head_dim, hidden], [kv_heads * head_dim, hidden] twice
    std::string q_bias, k_bias, v_bias;    // [heads * head_dim], [kv_heads * head_dim] twice
    std::string o_proj;                    // [hidden, heads * head_dim]
    std::string o_bias;                    // [hidden]
    std::string post_attention_layernorm;  // [hidden]
    std::string gate_proj, up_proj;        // [intermediate, hidden]
    std::string down_proj;                 // [hidden, intermediate]
    std::string gate_bias, up_bias;        // [intermediate]
    std::string down_bias;                 // [hidden]
};

inline layer_tensor_names layer_tensors(const config& c, std::size_t layer) {
    auto name = [&](std::string_view suffix) { return layer_tensor_name(layer, suffix); };
    auto bias = [&](bool present, std::string_view suffix) { return present ? name(suffix) : std::string(); };
    return {
        .input_layernorm = name("input_layernorm.weight"),
        .q_proj = name("self_attn.q_proj.weight"),
        .k_proj = name("self_attn.k_proj.weight"),
        .v_proj = name("self_attn.v_proj.weight"),
        .q_bias = bias(c.qkv_bias, "self_attn.q_proj.bias"),
        .k_bias = bias(c.qkv_bias, "self_attn.k_proj.bias"),
        .v_bias = bias(c.qkv_bias, "self_attn.v_proj.bias"),
        .o_proj = name("self_attn.o_proj.weight"),
        .o_bias = bias(c.o_bias, "self_attn.o_proj.bias"),
        .post_attention_layernorm = name("post_attention_layernorm.weight"),
        .gate_proj = name("mlp.gate_proj.weight"),
        .up_proj = name("mlp.up_proj.weight"),
        .down_proj = name("mlp.down_proj.weight"),
        .gate_bias = bias(c.mlp_bias, "mlp.gate_proj.bias"),
        .up_bias = bias(c.mlp_bias, "mlp.up_proj.bias"),
        .down_bias = bias(c.mlp_bias, "mlp.down_proj.bias"),
    };
}

inline constexpr std::string_view embedding_name = "model.embed_tokens.weight";  // [vocab, hidden]
inline constexpr std::string_view final_norm_name = "model.norm.weight";         // [hidden]
inline constexpr std::string_view lm_head_name = "lm_head.weight";               // [vocab, hidden]

// The tensor the logits are computed with: lm_head.weight, or the embedding when the config ties them.
inline std::string_view output_projection_name(const config& c) {
    return c.tie_word_embeddings ? embedding_name : lm_head_name;
}

// Every tensor a checkpoint of `c` holds, in the order of transformers' state dict (embedding; per layer the
// attention projections, the MLP projections, the two norms; the final norm; lm_head unless tied).
inline std::vector<tensor_spec> expected_tensors(const config& c) {
    using u64 = std::uint64_t;
    const u64 hidden = c.hidden_size, inter = c.intermediate_size, q = c.q_size(), kv = c.kv_size();
    std::vector<tensor_spec> out;
    out.push_back({std::string(embedding_name), {c.vocab_size, hidden}});
    for (std::size_t layer = 0; layer < c.num_hidden_layers; ++layer) {
        const layer_tensor_names n = layer_tensors(c, layer);
        auto add = [&](const std::string& name, std::vector<u64> shape) {
            if (!name.empty()) out.push_back({name, std::move(shape)});
        };
        add(n.q_proj, {q, hidden});
        add(n.q_bias, {q});
        add(n.k_proj, {kv, hidden});
        add(n.k_bias, {kv});
        add(n.v_proj, {kv, hidden});
        add(n.v_bias, {kv});
        add(n.o_proj, {hidden, q});
        add(n.o_bias, {hidden});
        add(n.gate_proj, {inter, hidden});
        add(n.gate_bias, {inter});
        add(n.up_proj, {inter, hidden});
        add(n.up_bias, {inter});
        add(n.down_proj, {hidden, inter});
        add(n.down_bias, {hidden});
        add(n.input_layernorm, {hidden});
        add(n.post_attention_layernorm, {hidden});
    }
    out.push_back({std::string(final_norm_name), {hidden}});
    if (!c.tie_word_embeddings) out.push_back({std::string(lm_head_name), {c.vocab_size, hidden}});
    return out;
}

// The number of weights of a model of `c` (what a model card calls its parameter count).
inline std::uint64_t parameter_count(const config& c) {
    std::uint64_t n = 0;
    for (const tensor_spec& t : expected_tensors(c)) {
        std::uint64_t count = 1;
        for (const std::uint64_t extent : t.shape) count *= extent;
        n += count;
    }
    return n;
}

namespace detail {

// The layer number of "model.layers.<n>.<...>", if the name has that form.
inline std::optional<std::size_t> layer_of(std::string_view name) {
    constexpr std::string_view prefix = "model.layers.";
    if (!name.starts_with(prefix)) return std::nullopt;
    const std::string_view rest = name.substr(prefix.size());
    const std::size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string_view::npos || dot > 9 || (dot > 1 && rest[0] == '0')) return std::nullopt;
    std::size_t layer = 0;
    for (const char ch : rest.substr(0, dot)) {
        if (ch < '0' || ch > '9') return std::nullopt;
        layer = layer * 10 + static_cast<std::size_t>(ch - '0');
    }
    return layer;
}

// Buffers that some exporters saved next to the weights and that a loader recomputes: older Llama checkpoints hold
// model.layers.<i>.self_attn.rotary_emb.inv_freq, some hold model.rotary_emb.inv_freq. They carry nothing we need
// (inv_freq() computes the same values from the config) and are ignored whatever their shape.
inline bool ignored_buffer(std::string_view name, std::size_t layers) {
    if (name == "model.rotary_emb.inv_freq") return true;
    constexpr std::string_view prefix = "model.layers.", suffix = ".self_attn.rotary_emb.inv_freq";
    if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix))
        return false;
    const std::string_view index = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    const std::optional<std::size_t> layer = layer_of(name);
    return layer && index.find('.') == std::string_view::npos && *layer < layers;
}

// Why an unexpected tensor might be there, when the config explains it.
inline std::string unexpected_hint(const config& c, std::string_view name) {
    const std::optional<std::size_t> layer = layer_of(name);
    if (layer && *layer >= c.num_hidden_layers)
        return " (num_hidden_layers is " + std::to_string(c.num_hidden_layers) + ": layers 0 to " +
               std::to_string(c.num_hidden_layers - 1) + ")";
    auto has = [&](std::string_view part) { return name.find(part) != std::string_view::npos; };
    const std::string arch(architecture_name(c.architecture));
    if (has("self_attn.") && name.ends_with(".bias")) {
        if (c.architecture == architecture::llama) return " (the config's attention_bias is false)";
        if (c.architecture == architecture::qwen2) return " (" + arch + " has biases on q, k and v only)";
        return " (" + arch + " has no attention biases)";
    }
    if (has("mlp.") && name.ends_with(".bias"))
        return c.architecture == architecture::llama ? " (the config's mlp_bias is false)"
                                                     : " (" + arch + " has no MLP biases)";
    return "";
}

// What a checkpoint of `c` holds, for messages: the list of names with their shapes, layers folded into one line each.
inline std::string supported_summary(const config& c) {
    const std::string hidden = std::to_string(c.hidden_size), inter = std::to_string(c.intermediate_size),
                      q = std::to_string(c.q_size()), kv = std::to_string(c.kv_size()),
                      vocab = std::to_string(c.vocab_size);
    std::string s = "a " + std::string(architecture_name(c.architecture)) + " checkpoint of this config holds " +
                    "(shapes [out, in]): model.embed_tokens.weight [" + vocab + ", " + hidden + "]; for each layer " +
                    "i in 0.." + std::to_string(c.num_hidden_layers - 1) + ": model.layers.i.input_layernorm.weight [" +
                    hidden + "], self_attn.q_proj.weight [" + q + ", " + hidden + "], self_attn.k_proj.weight [" + kv +
                    ", " + hidden + "], self_attn.v_proj.weight [" + kv + ", " + hidden + "]";
    if (c.qkv_bias) s += ", self_attn.{q,k,v}_proj.bias [" + q + "], [" + kv + "], [" + kv + "]";
    s += ", self_attn.o_proj.weight [" + hidden + ", " + q + "]";
    if (c.o_bias) s += ", self_attn.o_proj.bias [" + hidden + "]";
    s += ", post_attention_layernorm.weight [" + hidden + "], mlp.gate_proj.weight [" + inter + ", " + hidden +
         "], mlp.up_proj.weight [" + inter + ", " + hidden + "], mlp.down_proj.weight [" + hidden + ", " + inter + "]";
    if (c.mlp_bias) s += ", mlp.{gate,up,down}_proj.bias [" + inter + "], [" + inter + "], [" + hidden + "]";
    s += "; model.norm.weight [" + hidden + "]; ";
    s += c.tie_word_embeddings ? "no lm_head.weight (tie_word_embeddings: a copy identical to the embedding is allowed)"
                               : "lm_head.weight [" + vocab + ", " + hidden + "]";
    s += ". Each is F32, F16 or BF16. Ignored: rotary_emb.inv_freq buffers.";
    return s;
}

} // namespace detail

// Checks that `checkpoint` holds exactly the tensors of `c`, with their shapes and a dtype that converts to f32
// (F32, F16, BF16; they may differ from tensor to tensor and from the config's torch_dtype). Allowed besides: the
// rotary_emb.inv_freq buffers older exporters saved, and, for a tied config, an lm_head.weight that is byte for byte
// the embedding (some exporters write the shared tensor twice; a different one would be a second output projection
// that transformers would silently drop or silently use, depending on load order, so it is refused). Every problem is
// listed in one checkpoint_error that names the checkpoint, the config and each tensor.
inline void check_tensors(const config& c, const safetensors::checkpoint& checkpoint) {
    using safetensors::detail::printable;
    using safetensors::detail::shape_text;
    std::vector<std::string> problems;

    const std::vector<tensor_spec> expected = expected_tensors(c);
    std::unordered_map<std::string_view, const tensor_spec*> by_name;
    for (const tensor_spec& t : expected) by_name.emplace(t.name, &t);

    // Which file a tensor is in matters only when there are several.
    auto in_file = [&](const safetensors::tensor_view& t) {
        return checkpoint.shards().size() < 2 || t.source.empty() ? std::string()
                                                                  : " (in " + printable(t.source, 4096) + ")";
    };

    for (const tensor_spec& want : expected) {
        const safetensors::tensor_view* found = checkpoint.find(want.name);
        if (found == nullptr) {
            problems.push_back("missing tensor " + printable(want.name) + ", expected shape " + shape_text(want.shape));
            continue;
        }
        if (found->shape != want.shape)
            problems.push_back("tensor " + printable(want.name) + " has shape " + shape_text(found->shape) +
                               ", expected " + shape_text(want.shape) + in_file(*found));
        if (!safetensors::converts_to_f32(found->dtype))
            problems.push_back("tensor " + printable(want.name) + " has dtype " +
                               std::string(safetensors::dtype_name(found->dtype)) +
                               " (supported: F32, F16, BF16)" + in_file(*found));
    }

    for (const safetensors::tensor_view* t : checkpoint.tensors()) {
        if (by_name.contains(t->name) || detail::ignored_buffer(t->name, c.num_hidden_layers)) continue;
        if (c.tie_word_embeddings && t->name == lm_head_name) {
            const safetensors::tensor_view* embedding = checkpoint.find(embedding_name);
            const bool same = embedding != nullptr && embedding->dtype == t->dtype &&
                              embedding->shape == t->shape && embedding->bytes.size() == t->bytes.size() &&
                              (t->bytes.empty() ||
                               std::memcmp(embedding->bytes.data(), t->bytes.data(), t->bytes.size()) == 0);
            if (!same)
                problems.push_back("tensor \"lm_head.weight\"" + in_file(*t) +
                                   " differs from model.embed_tokens.weight, but the config ties them "
                                   "(tie_word_embeddings): the checkpoint holds two output projections");
            continue;
        }
        problems.push_back("unexpected tensor " + printable(t->name) + " " + shape_text(t->shape) + in_file(*t) +
                           detail::unexpected_hint(c, t->name));
    }

    if (problems.empty()) return;
    constexpr std::size_t shown = 24;
    std::string message = "checkpoint " + printable(checkpoint.path().string(), 4096) + " does not match config " +
                          printable(c.source, 4096) + " (" + std::string(architecture_name(c.architecture)) +
                          ", num_hidden_layers " + std::to_string(c.num_hidden_layers) +
                          "): " + std::to_string(problems.size()) +
                          (problems.size() == 1 ? " problem" : " problems") + ":";
    for (std::size_t i = 0; i < problems.size() && i < shown; ++i) message += "\n  " + problems[i];
    if (problems.size() > shown) message += "\n  ... and " + std::to_string(problems.size() - shown) + " more";
    message += "\n" + detail::supported_summary(c);
    throw checkpoint_error(message);
}

} // namespace vkfuse::model
