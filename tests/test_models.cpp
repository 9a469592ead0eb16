// The host side of running Hugging Face checkpoints (include/vkfuse/model/): config.json in both spellings and every
// defect of one, RoPE frequencies against values worked out by hand, the tensor map against checkpoints with missing,
// extra and misshapen tensors, the synthetic checkpoints of tools/make_checkpoint read back, and the reference forward
// pass of tests/model_reference.hpp against a second, more naive one, against properties that can be checked by
// hand, and (once tests/fixtures/ holds them) against transformers' own logits. No Vulkan device is involved.
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include "model_reference.hpp"

#include <vkfuse/checkpoint/safetensors.hpp>
#include <vkfuse/model/config.hpp>
#include <vkfuse/model/synthetic.hpp>
#include <vkfuse/model/tensors.hpp>

#include <nlohmann/json.hpp>


#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
namespace st = vkfuse::safetensors;
namespace model = vkfuse::model;
namespace synthetic = vkfuse::model::synthetic;
using json = nlohmann::ordered_json;

namespace {

using vkfuse_test::temp_dir;

constexpr std::string_view config_name = "models/test/config.json";

model::config parse(const json& j, const model::read_options& options = {}) {
    return model::parse_config(j.dump(), std::string(config_name), options);
}

// The message of the checkpoint_error that parsing `text` throws; fails the test if there is none.
std::string config_error(const std::string& text, const model::read_options& options = {}) {
    try {
        (void)model::parse_config(text, std::string(config_name), options);
    } catch (const vkfuse::checkpoint_error& e) {
        return e.what();
    }
    FAIL("no checkpoint_error for " << text);
    return {};
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// Qwen2.5-0.5B's config.json as published (transformers 4.40 wrote it).
const char* const qwen25_config = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 32768,
  "max_window_layers": 24,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "use_mrope": false,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

// Llama-3.2-1B-Instruct's config.json as published: llama3 RoPE, several end-of-sequence ids.
const char* const llama32_config = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "head_dim": 64,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 8192,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 16,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 32.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

// Mistral-7B-v0.1's config.json as published: a sliding window of 4096 positions.
const char* const mistral_v01_config = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

// A valid Llama config to break one field at a time.
json base_llama() { return json::parse(llama32_config); }

} // namespace

// ---------------------------------------------------------------------------------------------------------------------
// config.json

TEST_CASE("model config: published Qwen2.5, Llama 3.2 and Mistral configs") {
    const model::config q = model::parse_config(qwen25_config, "qwen/config.json");
    CHECK(q.architecture == model::architecture::qwen2);
    CHECK(q.hidden_size == 896);
    CHECK(q.intermediate_size == 4864);
    CHECK(q.num_hidden_layers == 24);
    CHECK(q.num_attention_heads == 14);
    CHECK(q.num_key_value_heads == 2);
    CHECK(q.head_dim == 64);  // 896 / 14: no head_dim in the file
    CHECK(q.group_size() == 7);
    CHECK(q.vocab_size == 151936);
    CHECK(q.max_position_embeddings == 32768);
    CHECK(q.rms_norm_eps == 1e-6);
    CHECK(q.rope.type == model::rope_type::plain);
    CHECK(q.rope.theta == 1e6);
    CHECK(q.tie_word_embeddings);
    CHECK(q.qkv_bias);
    CHECK_FALSE(q.o_bias);
    CHECK_FALSE(q.mlp_bias);
    CHECK(q.torch_dtype == vkfuse::formats::weight_format::bf16);
    CHECK(q.bos_token_id == 151643u);
    CHECK(q.eos_token_ids == std::vector<std::size_t>{151643});
    CHECK_FALSE(q.sliding_window);  // sliding_window 32768 is there, but use_sliding_window is false
    CHECK(q.context_length == 32768);
    CHECK(q.source == "qwen/config.json");

    const model::config l = model::parse_config(llama32_config, "llama/config.json");
    CHECK(l.architecture == model::architecture::llama);
    CHECK(l.head_dim == 64);
    CHECK(l.q_size() == 2048);
    CHECK(l.kv_size() == 512);
    CHECK(l.rope.type == model::rope_type::llama3);
    CHECK(l.rope.theta == 500000.0);
    CHECK(l.rope.factor == 32.0);
    CHECK(l.rope.low_freq_factor == 1.0);
    CHECK(l.rope.high_freq_factor == 4.0);
    CHECK(l.rope.original_max_position_embeddings == 8192);
    CHECK(l.tie_word_embeddings);
    CHECK_FALSE(l.qkv_bias);
    CHECK_FALSE(l.o_bias);
    CHECK(l.eos_token_ids == std::vector<std::size_t>{128001, 128008, 128009});

    // Mistral 7B v0.1 slides a 4096-position window: refused for its 32768 positions, exact up to 4096.
    const std::string message = config_error(mistral_v01_config);
    CHECK(contains(message, config_name));
    CHECK(contains(message, "sliding_window"));
    CHECK(contains(message, "4096"));
    CHECK(contains(message, "context_length"));
    const model::config m = model::parse_config(mistral_v01_config, "m.json", {.context_length = 4096});
    CHECK(m.architecture == model::architecture::mistral);
    CHECK(m.sliding_window == 4096u);
    CHECK(m.context_length == 4096);
    CHECK_FALSE(m.qkv_bias);
    CHECK_THROWS_AS(model::parse_config(mistral_v01_config, "m.json", {.context_length = 4097}),
                    vkfuse::checkpoint_error);
    // a program names its own option for the setting
    CHECK_THROWS_WITH_AS(model::parse_config(mistral_v01_config, "m.json",
                                             {.context_length = 8192, .context_length_name = "--max-seq"}),
                         doctest::Contains("so run it with --max-seq at most 4096"), vkfuse::checkpoint_error);

    // Mistral v0.2 and later: "sliding_window": null, no window. Absent: MistralConfig's default, 4096.
    json v02 = json::parse(mistral_v01_config);
    v02["sliding_window"] = nullptr;
    CHECK_FALSE(parse(v02).sliding_window);
    json absent = json::parse(mistral_v01_config);
    absent.erase("sliding_window");
    CHECK(parse(absent, {.context_length = 100}).sliding_window == 4096u);
    CHECK_THROWS_AS(parse(absent), vkfuse::checkpoint_error);
}

TEST_CASE("model config: the synthetic shapes") {
    for (const std::string_view name : synthetic::shape_names) {
        INFO(name);
        const model::config c = parse(synthetic::shape_config(name));
        CHECK(c.torch_dtype == vkfuse::formats::weight_format::bf16);
        CHECK(c.num_attention_heads % c.num_key_value_heads == 0);
    }
    const model::config q = parse(synthetic::shape_config("tiny-qwen2", vkfuse::formats::weight_format::f32));
    CHECK(q.torch_dtype == vkfuse::formats::weight_format::f32);
    CHECK(q.head_dim == 10);
    CHECK(q.group_size() == 3);
    CHECK(q.qkv_bias);
    CHECK(q.tie_word_embeddings);

    const model::config l = parse(synthetic::shape_config("tiny-llama"));
    CHECK(l.head_dim == 12);  // explicit, not hidden / heads = 10
    CHECK(l.q_size() == 48);
    CHECK(l.rope.type == model::rope_type::llama3);
    CHECK_FALSE(l.tie_word_embeddings);
    CHECK(l.eos_token_ids == std::vector<std::size_t>{2, 3});

    CHECK_THROWS_AS(synthetic::shape_config("gpt2"), vkfuse::usage_error);
    CHECK_THROWS_AS(synthetic::shape_config("tiny-qwen2", vkfuse::formats::weight_format::q8_0), vkfuse::usage_error);
}

TEST_CASE("model config: defaults where transformers has them") {
    json j = base_llama();
    for (const char* field : {"num_key_value_heads", "head_dim", "tie_word_embeddings", "attention_bias", "mlp_bias",
                              "hidden_act", "torch_dtype", "bos_token_id", "eos_token_id", "rope_theta",
                              "rope_scaling", "architectures"})
        j.erase(field);
    const model::config c = parse(j);  // model_type "llama" stands in for architectures
    CHECK(c.architecture == model::architecture::llama);
    CHECK(c.num_key_value_heads == 32);
    CHECK(c.group_size() == 1);
    CHECK(c.head_dim == 64);
    CHECK_FALSE(c.tie_word_embeddings);
    CHECK_FALSE(c.qkv_bias);
    CHECK_FALSE(c.torch_dtype);
    CHECK_FALSE(c.bos_token_id);
    CHECK(c.eos_token_ids.empty());
    CHECK(c.rope.type == model::rope_type::plain);
    CHECK(c.rope.theta == 10000.0);

    // null means "not given", as in transformers.
    json nulls = base_llama();
    nulls["num_key_value_heads"] = nullptr;
    nulls["head_dim"] = nullptr;
    nulls["rope_scaling"] = nullptr;
    nulls["bos_token_id"] = nullptr;
    const model::config n = parse(nulls);
    CHECK(n.num_key_value_heads == 32);
    CHECK(n.rope.type == model::rope_type::plain);

    // Llama biases: attention_bias gives q, k, v and o; mlp_bias the three MLP projections.
    json biased = base_llama();
    biased["attention_bias"] = true;
    biased["mlp_bias"] = true;
    const model::config b = parse(biased);
    CHECK(b.qkv_bias);
    CHECK(b.o_bias);
    CHECK(b.mlp_bias);

    // The first supported entry of architectures decides.
    json several = base_llama();
    several["architectures"] = {"SomethingElse", "LlamaForCausalLM"};
    CHECK(parse(several).architecture == model::architecture::llama);

    // Qwen2's window applies only from max_window_layers on.
    json qwen = json::parse(qwen25_config);
    qwen["use_sliding_window"] = true;
    CHECK_FALSE(parse(qwen).sliding_window);  // max_window_layers 24 = num_hidden_layers: no sliding layer
    qwen["max_window_layers"] = 20;
    qwen["sliding_window"] = 4096;
    CHECK(contains(config_error(qwen.dump()), "sliding_window"));
    CHECK(parse(qwen, {.context_length = 4096}).sliding_window == 4096u);
    // transformers 5 and late 4.x list each layer's attention type instead.
    json typed = json::parse(qwen25_config);
    typed["layer_types"] = std::vector<std::string>(24, "full_attention");
    CHECK_FALSE(parse(typed).sliding_window);
    typed["layer_types"][23] = "sliding_attention";
    typed["sliding_window"] = 1000;
    CHECK(parse(typed, {.context_length = 1000}).sliding_window == 1000u);
    CHECK_THROWS_AS(parse(typed), vkfuse::checkpoint_error);

    CHECK_THROWS_AS(parse(base_llama(), {.context_length = 0}), vkfuse::usage_error);
}

TEST_CASE("model config: rope_parameters, the transformers 5 spelling") {
    json plain = json::parse(qwen25_config);
    plain.erase("rope_theta");
    plain["rope_parameters"] = {{"rope_theta", 1000000.0}, {"rope_type", "default"}};
    const model::config a = parse(plain);
    CHECK(a.rope.type == model::rope_type::plain);
    CHECK(a.rope.theta == 1e6);

    json untyped = plain;  // rope_type may be left out: default
    untyped["rope_parameters"] = {{"rope_theta", 5e5}};
    CHECK(parse(untyped).rope.theta == 5e5);

    json llama = base_llama();
    llama.erase("rope_theta");
    llama.erase("rope_scaling");
    llama["rope_parameters"] = {{"factor", 32.0},
                                {"high_freq_factor", 4.0},
                                {"low_freq_factor", 1.0},
                                {"original_max_position_embeddings", 8192},
                                {"rope_theta", 500000.0},
                                {"rope_type", "llama3"}};
    const model::config b = parse(llama);
    CHECK(b.rope == parse(base_llama()).rope);

    // Both spellings at once must agree.
    json both = base_llama();
    both["rope_parameters"] = llama["rope_parameters"];
    CHECK(parse(both).rope == b.rope);
    both["rope_parameters"]["factor"] = 8.0;
    std::string message = config_error(both.dump());
    CHECK(contains(message, "rope_parameters"));
    CHECK(contains(message, "rope_scaling"));
    json theta_clash = base_llama();
    theta_clash["rope_parameters"] = llama["rope_parameters"];
    theta_clash["rope_theta"] = 10000.0;
    CHECK(contains(config_error(theta_clash.dump()), "rope_parameters.rope_theta"));
    // A null top-level rope_theta beside rope_parameters is fine (some exporters write it so).
    json null_theta = llama;
    null_theta["rope_theta"] = nullptr;
    CHECK(parse(null_theta).rope.theta == 500000.0);

    // The old "type" key, and the two keys disagreeing.
    json old_key = base_llama();
    old_key["rope_scaling"].erase("rope_type");
    old_key["rope_scaling"]["type"] = "llama3";
    CHECK(parse(old_key).rope.type == model::rope_type::llama3);
    old_key["rope_scaling"]["rope_type"] = "default";
    CHECK(contains(config_error(old_key.dump()), "disagree"));

    // One RoPE per attention type (Gemma 3 style) is not supported.
    json per_type = plain;
    per_type["rope_parameters"] = {{"full_attention", {{"rope_theta", 1e6}, {"rope_type", "default"}}},
                                   {"sliding_attention", {{"rope_theta", 1e4}, {"rope_type", "default"}}}};
    message = config_error(per_type.dump());
    CHECK(contains(message, "rope_parameters"));
    CHECK(contains(message, "full_attention"));
}

TEST_CASE("model config: every defect is a checkpoint_error naming the file and the field") {
    struct defect {
        const char* what;
        std::function<void(json&)> edit;
        const char* field;     // must appear in the message
        const char* also = ""; // and this, when given
    };
    const std::vector<defect> defects = {
        {"no hidden_size", [](json& j) { j.erase("hidden_size"); }, "hidden_size", "missing"},
        {"no intermediate_size", [](json& j) { j.erase("intermediate_size"); }, "intermediate_size", "missing"},
        {"no num_hidden_layers", [](json& j) { j.erase("num_hidden_layers"); }, "num_hidden_layers", "missing"},
        {"no num_attention_heads", [](json& j) { j.erase("num_attention_heads"); }, "num_attention_heads"},
        {"no vocab_size", [](json& j) { j.erase("vocab_size"); }, "vocab_size", "missing"},
        {"no max_position_embeddings", [](json& j) { j.erase("max_position_embeddings"); },
         "max_position_embeddings"},
        {"no rms_norm_eps", [](json& j) { j.erase("rms_norm_eps"); }, "rms_norm_eps", "missing"},
        {"null hidden_size", [](json& j) { j["hidden_size"] = nullptr; }, "hidden_size", "missing"},
        {"hidden_size a string", [](json& j) { j["hidden_size"] = "2048"; }, "hidden_size", "not an integer"},
        {"hidden_size fractional", [](json& j) { j["hidden_size"] = 2048.5; }, "hidden_size", "not an integer"},
        {"hidden_size a float", [](json& j) { j["hidden_size"] = 2048.0; }, "hidden_size", "not an integer"},
        {"hidden_size a boolean", [](json& j) { j["hidden_size"] = true; }, "hidden_size", "not an integer"},
        {"hidden_size an object", [](json& j) { j["hidden_size"] = json::object(); }, "hidden_size"},
        {"hidden_size zero", [](json& j) { j["hidden_size"] = 0; }, "hidden_size", "positive"},
        {"hidden_size negative", [](json& j) { j["hidden_size"] = -2048; }, "hidden_size", "positive"},
        {"hidden_size huge", [](json& j) { j["hidden_size"] = std::uint64_t{1} << 40; }, "hidden_size", "at most"},
        {"vocab_size negative", [](json& j) { j["vocab_size"] = -1; }, "vocab_size"},
        {"a million layers", [](json& j) { j["num_hidden_layers"] = 1000000; }, "num_hidden_layers", "at most 65536"},
        {"heads of a million", [](json& j) { j["head_dim"] = 1000000; }, "head_dim", "at most 65536"},
        {"one huge head", [](json& j) { j.erase("head_dim"); j["hidden_size"] = 1 << 30; j["num_attention_heads"] = 1;
                                        j["num_key_value_heads"] = 1; }, "num_attention_heads", "at most 65536"},
        {"num_hidden_layers zero", [](json& j) { j["num_hidden_layers"] = 0; }, "num_hidden_layers"},
        {"intermediate_size a list", [](json& j) { j["intermediate_size"] = {8192}; }, "intermediate_size"},
        {"head_dim zero", [](json& j) { j["head_dim"] = 0; }, "head_dim"},
        {"head_dim odd", [](json& j) { j["head_dim"] = 63; }, "head_dim", "even"},
        {"num_key_value_heads does not divide heads", [](json& j) { j["num_key_value_heads"] = 5; },
         "num_key_value_heads", "does not divide"},
        {"more kv heads than heads", [](json& j) { j["num_key_value_heads"] = 64; }, "num_key_value_heads"},
        {"heads do not divide hidden", [](json& j) { j.erase("head_dim"); j["num_attention_heads"] = 24; },
         "num_attention_heads", "does not divide hidden_size"},
        {"odd derived head_dim", [](json& j) { j.erase("head_dim"); j["hidden_size"] = 2016; },
         "num_attention_heads", "odd"},
        {"rms_norm_eps a string", [](json& j) { j["rms_norm_eps"] = "1e-5"; }, "rms_norm_eps", "not a number"},
        {"rms_norm_eps zero", [](json& j) { j["rms_norm_eps"] = 0; }, "rms_norm_eps", "positive"},
        {"rms_norm_eps negative", [](json& j) { j["rms_norm_eps"] = -1e-5; }, "rms_norm_eps", "positive"},
        {"rope_theta a string", [](json& j) { j["rope_theta"] = "500000"; }, "rope_theta", "not a number"},
        {"rope_theta zero", [](json& j) { j["rope_theta"] = 0.0; }, "rope_theta", "positive"},
        {"tie_word_embeddings a string", [](json& j) { j["tie_word_embeddings"] = "true"; }, "tie_word_embeddings",
         "not true or false"},
        {"tie_word_embeddings a number", [](json& j) { j["tie_word_embeddings"] = 1; }, "tie_word_embeddings"},
        {"attention_bias a string", [](json& j) { j["attention_bias"] = "no"; }, "attention_bias"},
        {"mlp_bias a number", [](json& j) { j["mlp_bias"] = 0; }, "mlp_bias"},
        {"unknown architecture", [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; }, "architectures",
         "Qwen2ForCausalLM, LlamaForCausalLM, MistralForCausalLM"},
        {"architectures empty", [](json& j) { j["architectures"] = json::array(); }, "architectures"},
        {"architectures a string", [](json& j) { j["architectures"] = "LlamaForCausalLM"; }, "architectures"},
        {"architectures holding a number", [](json& j) { j["architectures"] = {7}; }, "architectures"},
        {"no architectures, unknown model_type",
         [](json& j) { j.erase("architectures"); j["model_type"] = "gpt2"; }, "model_type", "LlamaForCausalLM"},
        {"neither architectures nor model_type",
         [](json& j) { j.erase("architectures"); j.erase("model_type"); }, "architectures", "missing"},
        {"gelu", [](json& j) { j["hidden_act"] = "gelu"; }, "hidden_act", "silu"},
        {"hidden_act a number", [](json& j) { j["hidden_act"] = 1; }, "hidden_act"},
        {"linear RoPE", [](json& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; },
         "rope_scaling.type", "\"default\" and \"llama3\""},
        {"dynamic RoPE", [](json& j) { j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}}; },
         "rope_scaling.rope_type", "llama3"},
        {"yarn RoPE", [](json& j) { j["rope_scaling"]["rope_type"] = "yarn"; }, "rope_scaling.rope_type", "yarn"},
        {"longrope", [](json& j) { j["rope_scaling"]["rope_type"] = "longrope"; }, "rope_scaling.rope_type"},
        {"yarn in rope_parameters",
         [](json& j) { j.erase("rope_scaling"); j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; },
         "rope_parameters.rope_type", "yarn"},
        {"rope_scaling a string", [](json& j) { j["rope_scaling"] = "llama3"; }, "rope_scaling", "not an object"},
        {"rope_type a number", [](json& j) { j["rope_scaling"]["rope_type"] = 3; }, "rope_scaling.rope_type"},
        {"llama3 without factor", [](json& j) { j["rope_scaling"].erase("factor"); }, "rope_scaling.factor",
         "missing"},
        {"llama3 without low_freq_factor", [](json& j) { j["rope_scaling"].erase("low_freq_factor"); },
         "rope_scaling.low_freq_factor"},
        {"llama3 without high_freq_factor", [](json& j) { j["rope_scaling"].erase("high_freq_factor"); },
         "rope_scaling.high_freq_factor"},
        {"llama3 without original_max_position_embeddings",
         [](json& j) { j["rope_scaling"].erase("original_max_position_embeddings"); },
         "rope_scaling.original_max_position_embeddings"},
        {"llama3 factor negative", [](json& j) { j["rope_scaling"]["factor"] = -32.0; }, "rope_scaling.factor"},
        {"llama3 factor a string", [](json& j) { j["rope_scaling"]["factor"] = "32"; }, "rope_scaling.factor"},
        {"llama3 original fractional",
         [](json& j) { j["rope_scaling"]["original_max_position_embeddings"] = 8192.5; },
         "rope_scaling.original_max_position_embeddings"},
        {"llama3 high <= low", [](json& j) { j["rope_scaling"]["high_freq_factor"] = 1.0; }, "rope_scaling",
         "greater than low_freq_factor"},
        {"partial rotary", [](json& j) { j["partial_rotary_factor"] = 0.5; }, "partial_rotary_factor"},
        {"partial rotary in rope_scaling", [](json& j) { j["rope_scaling"]["partial_rotary_factor"] = 0.25; },
         "rope_scaling.partial_rotary_factor"},
        {"torch_dtype int8", [](json& j) { j["torch_dtype"] = "int8"; }, "torch_dtype", "bfloat16"},
        {"torch_dtype a number", [](json& j) { j["torch_dtype"] = 16; }, "torch_dtype"},
        {"dtype and torch_dtype disagree", [](json& j) { j["dtype"] = "float32"; }, "dtype", "disagrees"},
        {"bos_token_id beyond the vocabulary", [](json& j) { j["bos_token_id"] = 128256; }, "bos_token_id",
         "vocab_size"},
        {"eos_token_id negative", [](json& j) { j["eos_token_id"] = -1; }, "eos_token_id", "negative"},
        {"eos_token_id list with a string", [](json& j) { j["eos_token_id"] = {128001, "x"}; }, "eos_token_id"},
        {"layer_types of the wrong length",
         [](json& j) { j["model_type"] = "qwen2"; j["architectures"] = {"Qwen2ForCausalLM"};
                       j["layer_types"] = {"full_attention"}; }, "layer_types"},
        {"layer_types unknown",
         [](json& j) { j["architectures"] = {"Qwen2ForCausalLM"};
                       j["layer_types"] = std::vector<std::string>(16, "chunked_attention"); }, "layer_types",
         "chunked_attention"},
        {"sliding layers without a window",
         [](json& j) { j["architectures"] = {"Qwen2ForCausalLM"};
                       j["layer_types"] = std::vector<std::string>(16, "sliding_attention"); }, "sliding_window",
         "missing"},
        {"Mistral sliding_window a string",
         [](json& j) { j["architectures"] = {"MistralForCausalLM"}; j["sliding_window"] = "4096"; },
         "sliding_window"},
    };
    for (const defect& d : defects) {
        INFO(std::string(d.what));
        json j = base_llama();
        d.edit(j);
        const std::string message = config_error(j.dump());
        INFO(message);
        CHECK(contains(message, "config \"" + std::string(config_name) + "\""));
        CHECK(contains(message, d.field));
        CHECK(contains(message, d.also));
    }

    // The text itself.
    for (const char* text : {"", "{", "[1, 2]", "\"config\"", "{\"hidden_size\": 1,}", "null"}) {
        INFO(text);
        CHECK(contains(config_error(text), config_name));
    }
    const std::string twice = config_error(R"({"hidden_size": 2048, "hidden_size": 4096})");
    CHECK(contains(twice, "hidden_size"));
    CHECK(contains(twice, "twice"));

    // The file.
    temp_dir dir{"models"};
    try {
        (void)model::read_config(dir.path);
        FAIL("no error for a folder without config.json");
    } catch (const vkfuse::checkpoint_error& e) {
        CHECK(contains(e.what(), (dir.path / "config.json").string()));
    }
    std::ofstream(dir.path / "config.json") << llama32_config;
    CHECK(model::read_config(dir.path).hidden_size == 2048);
    CHECK(model::read_config(dir.path / "config.json").source == (dir.path / "config.json").string());
}

TEST_CASE("model config: seeded mutations either parse into a sane config or fail naming the file") {
    // Fields set to values of every JSON type and edge magnitude, fields deleted, and the text cut or altered: nothing
    // may crash or throw anything but a checkpoint_error, and whatever parses satisfies the reader's invariants.
    std::vector<json> seeds = {json::parse(qwen25_config), json::parse(llama32_config),
                               json::parse(mistral_v01_config), synthetic::shape_config("tiny-llama")};
    json v5 = json::parse(llama32_config);
    v5["rope_parameters"] = v5["rope_scaling"];
    v5["rope_parameters"]["rope_theta"] = v5["rope_theta"];
    v5.erase("rope_scaling");
    v5.erase("rope_theta");
    seeds.push_back(v5);
    const std::vector<json> values = {
        nullptr, true, false, -1, 0, 1, 2, 3, 7, 64, 1.5, -0.0, 1e300, -1e300, 4096, 2147483647, 2147483648u,
        std::uint64_t{1} << 63, ~std::uint64_t{0}, "llama3", "default", "linear", "silu", "", "x", json::array(),
        json::array({1, 2}), json::array({"LlamaForCausalLM"}), json::object(), json{{"rope_type", "llama3"}},
        json{{"full_attention", json::object()}}};
    std::mt19937_64 rng(20251201);
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    std::size_t parsed = 0, refused = 0;
    for (int round = 0; round < 4000; ++round) {
        json j = seeds[pick(seeds.size())];
        for (std::size_t edits = 1 + pick(3); edits > 0; --edits) {
            json* target = &j;
            for (const char* nested : {"rope_scaling", "rope_parameters"})
                if (j.contains(nested) && j[nested].is_object() && pick(3) == 0) target = &j[nested];
            std::vector<std::string> keys;
            for (const auto& [key, value] : target->items()) keys.push_back(key);
            if (keys.empty()) continue;
            const std::string key = keys[pick(keys.size())];
            if (pick(6) == 0) target->erase(key);
            else (*target)[key] = values[pick(values.size())];
        }
        std::string text = j.dump();
        if (pick(8) == 0) text.resize(pick(text.size() + 1));
        if (pick(8) == 0 && !text.empty()) text[pick(text.size())] = "{}[]\":,0-.e "[pick(13)];
        try {
            const model::config c = model::parse_config(text, std::string(config_name));
            ++parsed;
            CHECK(c.hidden_size > 0);
            CHECK(c.head_dim % 2 == 0);
            CHECK(c.num_attention_heads % c.num_key_value_heads == 0);
            CHECK(c.rms_norm_eps > 0);
            CHECK(c.rope.theta > 0);
            CHECK(model::inv_freq(c).size() == c.head_dim / 2);
            for (const double f : model::inv_freq(c)) CHECK(std::isfinite(f));
        } catch (const vkfuse::checkpoint_error& e) {
            ++refused;
            CHECK(contains(e.what(), config_name));
        }
    }
    CHECK(parsed > 100);
    CHECK(refused > 1000);
}

// ---------------------------------------------------------------------------------------------------------------------
// RoPE frequencies

TEST_CASE("model rope: plain inverse frequencies") {
    // head_dim 8, theta 10000: theta^(-2i/8) = 10^(-i) exactly in decimal.
    model::config c = parse(base_llama());
    c.head_dim = 8;
    c.rope = {.type = model::rope_type::plain, .theta = 10000.0};
    const std::vector<double> f = model::inv_freq(c);
    REQUIRE(f.size() == 4);
    CHECK(f[0] == 1.0);
    CHECK(f[1] == doctest::Approx(0.1).epsilon(1e-15));
    CHECK(f[2] == doctest::Approx(0.01).epsilon(1e-15));
    CHECK(f[3] == doctest::Approx(0.001).epsilon(1e-15));

    // Qwen2.5-0.5B: head_dim 64, theta 1e6, so inv_freq[i] = 10^(-6i/32) = 10^(-0.1875 i); values from 40-digit
    // decimal arithmetic.
    const std::vector<double> q = model::inv_freq(model::parse_config(qwen25_config, "q.json"));
    REQUIRE(q.size() == 32);
    CHECK(q[0] == 1.0);
    CHECK(q[1] == doctest::Approx(0.6493816315762113151).epsilon(1e-14));
    CHECK(q[2] == doctest::Approx(0.4216965034285822486).epsilon(1e-14));
    CHECK(q[16] == doctest::Approx(0.001).epsilon(1e-14));  // 10^(-3)
    CHECK(q[31] == doctest::Approx(1.539926526059491990e-6).epsilon(1e-14));
}

TEST_CASE("model rope: llama3 inverse frequencies of Llama 3.2 1B") {
    // head_dim 64, theta 500000, factor 32, low_freq_factor 1, high_freq_factor 4, original 8192. The plain frequency
    // of pair i is 500000^(-i/32) and its wavelength 2 pi 500000^(i/32). Pairs with a wavelength below 8192 / 4 = 2048
    // keep it (i <= 14), those above 8192 / 1 = 8192 are divided by 32 (i >= 18), and pairs 15, 16, 17 are blended
    // with s = (8192 / wavelength - 1) / (4 - 1): (1 - s) f / 32 + s f. Worked in 40-digit decimal arithmetic:
    //   i = 16: f = 1 / sqrt(500000) = 0.0014142135623730950488, wavelength 4442.88, s = 0.28128260516325107682,
    //           result f (s + (1 - s) / 32) = 0.00042955679655936820054.
    const model::config c = model::parse_config(llama32_config, "llama.json");
    const std::vector<double> f = model::inv_freq(c);
    REQUIRE(f.size() == 32);
    struct expected {
        std::size_t i;
        double value;
    };
    for (const expected e : {expected{0, 1.0},
                             {1, 0.66360123769608844333},                 // high frequency: unchanged
                             {14, 0.0032114459947525910185},              // wavelength 1956.5 < 2048: unchanged
                             {15, 0.0012905479282092638184},              // s = 0.59284929500296584411
                             {16, 0.00042955679655936820054},             // s = 0.28128260516325107682
                             {17, 0.000097082878026276722608},            // s = 0.074526564160743053389
                             {18, 0.000019461638184831124361},            // wavelength 10089 > 8192: f / 32
                             {31, 9.4183067254348098399e-8}}) {           // f / 32
        INFO("pair " << e.i);
        CHECK(f[e.i] == doctest::Approx(e.value).epsilon(1e-13));
    }

    // tiny-llama (head_dim 12, theta 10000, factor 8, original 1024) has pairs in all three regimes.
    const std::vector<double> t = model::inv_freq(parse(synthetic::shape_config("tiny-llama")));
    REQUIRE(t.size() == 6);
    CHECK(t[0] == 1.0);
    CHECK(t[1] == doctest::Approx(0.21544346900318837218).epsilon(1e-14));     // 10^(-2/3), unchanged
    CHECK(t[2] == doctest::Approx(0.046415888336127788924).epsilon(1e-14));    // 10^(-4/3), unchanged
    CHECK(t[3] == doctest::Approx(0.0030867609670112740283).epsilon(1e-13));   // 10^(-2), blended: s = 0.2099
    CHECK(t[4] == doctest::Approx(0.00026930433625398546522).epsilon(1e-13));  // 10^(-8/3) / 8
    CHECK(t[5] == doctest::Approx(0.000058019860420159736155).epsilon(1e-13)); // 10^(-10/3) / 8
}

// ---------------------------------------------------------------------------------------------------------------------
// Tensors

namespace {

struct fake_tensor {
    std::string name;
    std::vector<std::uint64_t> shape;
    st::dtype dtype = st::dtype::f32;
    float fill = 0.25f;
};

// Writes `tensors` (all elements `fill`) as one safetensors file in `dir` and opens it as a checkpoint.
st::checkpoint write_fake(const fs::path& dir, const std::vector<fake_tensor>& tensors) {
    std::vector<std::vector<std::byte>> storage;
    std::vector<st::tensor_view> views;
    for (const fake_tensor& t : tensors) {
        std::uint64_t n = 1;
        for (const std::uint64_t e : t.shape) n *= e;
        std::vector<std::byte> bytes(n * st::element_size(t.dtype));
        if (t.dtype == st::dtype::f32)
            for (std::uint64_t i = 0; i < n; ++i) std::memcpy(bytes.data() + 4 * i, &t.fill, 4);
        storage.push_back(std::move(bytes));
        views.push_back({.name = t.name, .dtype = t.dtype, .shape = t.shape, .element_count = n,
                         .bytes = storage.back(), .source = {}});
    }
    fs::create_directories(dir);
    st::write(dir / "model.safetensors", views);
    return st::checkpoint(dir);
}

std::vector<fake_tensor> expected_as_fakes(const model::config& c) {
    std::vector<fake_tensor> out;
    for (const model::tensor_spec& t : model::expected_tensors(c)) out.push_back({t.name, t.shape});
    return out;
}

std::string tensor_error(const model::config& c, const st::checkpoint& ck) {
    try {
        model::check_tensors(c, ck);
    } catch (const vkfuse::checkpoint_error& e) {
        return e.what();
    }
    FAIL("check_tensors accepted the checkpoint");
    return {};
}

} // namespace

TEST_CASE("model tensors: names and shapes") {
    const model::config q = parse(synthetic::shape_config("tiny-qwen2"));
    const std::vector<model::tensor_spec> qt = model::expected_tensors(q);
    CHECK(qt.size() == 1 + 2 * 12 + 1);  // tied: no lm_head; per layer 7 projections, 2 norms, 3 biases
    CHECK(qt.front().name == "model.embed_tokens.weight");
    CHECK(qt.front().shape == std::vector<std::uint64_t>{131, 60});
    CHECK(qt[1].name == "model.layers.0.self_attn.q_proj.weight");
    CHECK(qt[1].shape == std::vector<std::uint64_t>{60, 60});
    CHECK(qt[2].name == "model.layers.0.self_attn.q_proj.bias");
    CHECK(qt[3].name == "model.layers.0.self_attn.k_proj.weight");
    CHECK(qt[3].shape == std::vector<std::uint64_t>{20, 60});
    CHECK(qt.back().name == "model.norm.weight");
    CHECK(model::output_projection_name(q) == "model.embed_tokens.weight");

    const model::config l = parse(synthetic::shape_config("tiny-llama"));
    const model::layer_tensor_names n = model::layer_tensors(l, 2);
    CHECK(n.q_proj == "model.layers.2.self_attn.q_proj.weight");
    CHECK(n.q_bias.empty());
    CHECK(n.o_bias.empty());
    CHECK(n.down_proj == "model.layers.2.mlp.down_proj.weight");
    CHECK(n.post_attention_layernorm == "model.layers.2.post_attention_layernorm.weight");
    const std::vector<model::tensor_spec> lt = model::expected_tensors(l);
    CHECK(lt.size() == 1 + 3 * 9 + 2);
    CHECK(lt.back().name == "lm_head.weight");
    CHECK(lt.back().shape == std::vector<std::uint64_t>{131, 40});
    for (const model::tensor_spec& t : lt)
        if (t.name.ends_with("o_proj.weight")) CHECK(t.shape == std::vector<std::uint64_t>{40, 48});
    CHECK(model::output_projection_name(l) == "lm_head.weight");

    // The real models' tensor counts and parameter counts, as their model cards give them.
    const model::config qwen = model::parse_config(qwen25_config, "q.json");
    CHECK(model::expected_tensors(qwen).size() == 290);
    CHECK(model::parameter_count(qwen) == 494'032'768);
    const model::config llama = model::parse_config(llama32_config, "l.json");
    CHECK(model::expected_tensors(llama).size() == 146);
    CHECK(model::parameter_count(llama) == 1'235'814'400);

    json biased = base_llama();
    biased["attention_bias"] = true;
    biased["mlp_bias"] = true;
    const model::config b = parse(biased);
    CHECK(model::expected_tensors(b).size() == 146 + 16 * 7);
    CHECK(model::layer_tensors(b, 0).o_bias == "model.layers.0.self_attn.o_proj.bias");
    CHECK(model::layer_tensors(b, 0).down_bias == "model.layers.0.mlp.down_proj.bias");
}

TEST_CASE("model tensors: what check_tensors accepts and what it names") {
    temp_dir dir{"models"};
    const model::config llama = parse(synthetic::shape_config("tiny-llama"));
    const model::config qwen = parse(synthetic::shape_config("tiny-qwen2"));
    int case_number = 0;
    auto folder = [&] { return dir.path / std::to_string(case_number++); };

    SUBCASE("exact") { CHECK_NOTHROW(model::check_tensors(llama, write_fake(folder(), expected_as_fakes(llama)))); }
    SUBCASE("F16 and BF16 tensors, mixed") {
        std::vector<fake_tensor> t = expected_as_fakes(llama);
        t[0].dtype = st::dtype::bf16;
        t[1].dtype = st::dtype::f16;
        CHECK_NOTHROW(model::check_tensors(llama, write_fake(folder(), t)));
    }
    SUBCASE("inv_freq buffers are ignored") {
        std::vector<fake_tensor> t = expected_as_fakes(llama);
        t.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {6}});
        t.push_back({"model.layers.2.self_attn.rotary_emb.inv_freq", {6}});
        t.push_back({"model.rotary_emb.inv_freq", {6}});
        CHECK_NOTHROW(model::check_tensors(llama, write_fake(folder(), t)));
        t.push_back({"model.layers.3.self_attn.rotary_emb.inv_freq", {6}});  // no layer 3
        CHECK(contains(tensor_error(llama, write_fake(folder(), t)), "model.layers.3.self_attn.rotary_emb.inv_freq"));
    }
    SUBCASE("missing") {
        std::vector<fake_tensor> t = expected_as_fakes(llama);
        std::erase_if(t, [](const fake_tensor& f) { return f.name == "model.layers.1.self_attn.k_proj.weight"; });
        const std::string m = tensor_error(llama, write_fake(folder(), t));
        CHECK(contains(m, "missing tensor \"model.layers.1.self_attn.k_proj.weight\", expected shape [24, 40]"));
        CHECK(contains(m, "1 problem:"));
        CHECK(contains(m, "config \"" + llama.source + "\""));
        CHECK(contains(m, "LlamaForCausalLM"));
        CHECK(contains(m, "F32, F16 or BF16"));  // and the list of what is supported
    }
    SUBCASE("missing lm_head when untied") {
        std::vector<fake_tensor> t = expected_as_fakes(llama);
        t.pop_back();
        CHECK(contains(tensor_error(llama, write_fake(folder(), t)), "missing tensor \"lm_head.weight\""));
    }
    SUBCASE("wrong shape: o_proj transposed") {
        std::vector<fake_tensor> t = expected_as_fakes(llama);
        for (fake_tensor& f : t)
            if (f.name == "model.layers.0.self_attn.o_proj.weight") f.shape = {48, 40};
        const fs::path where = folder();
        const std::string m = tensor_error(llama, write_fake(where, t));
        CHECK(contains(m, "tensor \"model.layers.0.self_attn.o_proj.weight\" has shape [48, 40], expected [40, 48]"));
        CHECK(contains(m, "checkpoint \"" + (where / "model.safetensors").string() + "\""));
    }
    SUBCASE("sharded: each problem names its shard") {
        const fs::path where = folder();
        synthetic::write_shape(where, "tiny-llama", {.shard_bytes = 20000});
        model::config wider = llama;
        wider.intermediate_size = 70;
        const st::checkpoint ck(where);
        REQUIRE(ck.shards().size() > 2);
        const std::string shard(ck.at("model.layers.2.mlp.down_proj.weight").source);
        CHECK(shard.starts_with((where / "model-0000").string()));
        const std::string m = tensor_error(wider, ck);
        CHECK(contains(m, "9 problems"));
        CHECK(contains(m, "tensor \"model.layers.2.mlp.down_proj.weight\" has shape [40, 68], expected [40, 70] "
                          "(in \"" + shard + "\")"));
        CHECK(contains(m, "checkpoint \"" + (where / "model.safetensors.index.json").string() + "\""));
    }
    SUBCASE("wrong dtype") {
        std::vector<fake_tensor> t = expected_as_fakes(llama);
        t[3].dtype = st::dtype::i32;
        t[4].dtype = st::dtype::f64;
        const std::string m = tensor_error(llama, write_fake(folder(), t));
        CHECK(contains(m, "tensor \"" + t[3].name + "\" has dtype I32 (supported: F32, F16, BF16)"));
        CHECK(contains(m, "has dtype F64"));
        CHECK(contains(m, "2 problems"));
    }
    SUBCASE("unexpected: a q-norm of a newer architecture, an extra layer, biases the config does not have") {
        std::vector<fake_tensor> t = expected_as_fakes(llama);
        t.push_back({"model.layers.0.self_attn.q_norm.weight", {12}});
        t.push_back({"model.layers.3.input_layernorm.weight", {40}});
        t.push_back({"model.layers.1.self_attn.q_proj.bias", {48}});
        t.push_back({"model.layers.1.mlp.up_proj.bias", {68}});
        const std::string m = tensor_error(llama, write_fake(folder(), t));
        CHECK(contains(m, "4 problems"));
        CHECK(contains(m, "unexpected tensor \"model.layers.0.self_attn.q_norm.weight\" [12]"));
        CHECK(contains(m, "unexpected tensor \"model.layers.3.input_layernorm.weight\" [40]"));
        CHECK(contains(m, "num_hidden_layers is 3: layers 0 to 2"));
        CHECK(contains(m, "unexpected tensor \"model.layers.1.self_attn.q_proj.bias\" [48]"));
        CHECK(contains(m, "attention_bias is false"));
        CHECK(contains(m, "mlp_bias is false"));
    }
    SUBCASE("Qwen2: an o_proj bias, a missing v bias") {
        std::vector<fake_tensor> t = expected_as_fakes(qwen);
        std::erase_if(t, [](const fake_tensor& f) { return f.name == "model.layers.1.self_attn.v_proj.bias"; });
        t.push_back({"model.layers.0.self_attn.o_proj.bias", {60}});
        const std::string m = tensor_error(qwen, write_fake(folder(), t));
        CHECK(contains(m, "missing tensor \"model.layers.1.self_attn.v_proj.bias\", expected shape [20]"));
        CHECK(contains(m, "Qwen2ForCausalLM has biases on q, k and v only"));
    }
    SUBCASE("tied: an lm_head identical to the embedding is allowed, a different one is not") {
        std::vector<fake_tensor> t = expected_as_fakes(qwen);
        t.push_back({"lm_head.weight", {131, 60}});
        CHECK_NOTHROW(model::check_tensors(qwen, write_fake(folder(), t)));
        t.back().fill = 0.5f;
        CHECK(contains(tensor_error(qwen, write_fake(folder(), t)), "\"lm_head.weight\""));
        t.back().fill = 0.25f;
        t.back().shape = {60, 131};
        CHECK(contains(tensor_error(qwen, write_fake(folder(), t)), "differs from model.embed_tokens.weight"));
    }
    SUBCASE("many problems are cut short") {
        std::vector<fake_tensor> t;
        t.push_back({"something.else", {1}});
        const std::string m = tensor_error(parse(base_llama()), write_fake(folder(), t));
        CHECK(contains(m, "147 problems"));  // 146 missing, 1 unexpected
        CHECK(contains(m, "... and 123 more"));
    }
}

TEST_CASE("model synthetic checkpoints: the tiny shapes read back, single and sharded, in each dtype") {
    using vkfuse::formats::weight_format;
    temp_dir dir{"models"};
    for (const std::string_view shape : {"tiny-qwen2", "tiny-llama"})
        for (const weight_format dtype : {weight_format::f32, weight_format::f16, weight_format::bf16})
            for (const std::uint64_t shard_bytes : {std::uint64_t{0}, std::uint64_t{20000}}) {
                INFO(shape << " " << vkfuse::formats::format_name(dtype) << " shards of " << shard_bytes);
                const fs::path folder =
                    dir.path / (std::string(shape) + std::string(vkfuse::formats::format_name(dtype)) +
                                std::to_string(shard_bytes));
                const synthetic::write_result written = synthetic::write_shape(
                    folder, shape, {.dtype = dtype, .seed = 7, .shard_bytes = shard_bytes, .threads = 2});
                const model::config c = model::read_config(folder);
                CHECK(c.torch_dtype == dtype);
                CHECK(c.hidden_size == parse(synthetic::shape_config(shape)).hidden_size);
                const st::checkpoint ck(folder);
                CHECK_NOTHROW(model::check_tensors(c, ck));
                CHECK(ck.shards().size() == (shard_bytes == 0 ? 1u : written.files.size() - 2));
                if (shard_bytes != 0) CHECK(ck.shards().size() > 2);
                CHECK(written.tensor_count == ck.tensors().size());
                CHECK(ck.path().filename() ==
                      (shard_bytes == 0 ? "model.safetensors" : "model.safetensors.index.json"));

                // Same seed, same values whatever the dtype: f16 and bf16 are the f32 values rounded.
                for (const model::tensor_spec& t : model::expected_tensors(c)) {
                    const std::vector<float> v = st::to_f32(ck.at(t.name));
                    CHECK(ck.at(t.name).dtype == (dtype == weight_format::f32   ? st::dtype::f32
                                                  : dtype == weight_format::f16 ? st::dtype::f16
                                                                                : st::dtype::bf16));
                    std::vector<float> exact(v.size());
                    synthetic::detail::fill(t, {.seed = 7}, 0, exact);
                    // Half an ulp: 2^-24 relative for f32 (here 0: the values are f32), 2^-11 for f16 (plus half
                    // its subnormal spacing, 2^-25, for tiny values), 2^-8 for bf16.
                    const double relative = dtype == weight_format::f32   ? 0.0
                                            : dtype == weight_format::f16 ? 0x1p-11
                                                                          : 0x1p-8;
                    const double absolute = dtype == weight_format::f16 ? 0x1p-25 : 0.0;
                    std::size_t off = 0;
                    for (std::size_t i = 0; i < v.size(); ++i)
                        off += std::abs(double(v[i]) - exact[i]) > relative * std::abs(double(exact[i])) + absolute;
                    CHECK(off == 0);
                }
            }

    // A trained model's scale: projections of standard deviation 0.02 around 0, norms around 1.
    const fs::path folder = dir.path / "stats";
    synthetic::write_shape(folder, "tiny-qwen2", {.dtype = weight_format::f32, .seed = 1});
    const st::checkpoint ck(folder);
    auto moments = [&](std::string_view name) {
        const std::vector<float> v = st::to_f32(ck.at(name));
        double sum = 0, squares = 0;
        for (const float x : v) sum += x;
        const double mean = sum / double(v.size());
        for (const float x : v) squares += (x - mean) * (x - mean);
        return std::pair(mean, std::sqrt(squares / double(v.size())));
    };
    const auto [embedding_mean, embedding_std] = moments("model.embed_tokens.weight");
    CHECK(std::abs(embedding_mean) < 0.001);
    CHECK(embedding_std == doctest::Approx(0.02).epsilon(0.03));
    const auto [norm_mean, norm_std] = moments("model.layers.1.post_attention_layernorm.weight");
    CHECK(norm_mean == doctest::Approx(1.0).epsilon(0.01));
    CHECK(norm_std < 0.03);
    // Seeds differ, names differ: different weights.
    CHECK(st::to_f32(ck.at("model.layers.0.mlp.up_proj.weight"))[0] !=
          st::to_f32(ck.at("model.layers.1.mlp.up_proj.weight"))[0]);

    // An existing checkpoint is not overwritten unless asked.
    CHECK_THROWS_AS(synthetic::write_shape(folder, "tiny-llama", {}), vkfuse::usage_error);
    synthetic::write_shape(folder, "tiny-llama", {.replace = true});
    CHECK(model::read_config(folder).architecture == model::architecture::llama);
}

// ---------------------------------------------------------------------------------------------------------------------
// The reference forward pass

namespace {

// A second forward pass, as naive as it gets and written differently from reference_model: the whole sequence at once
// with no cache (every position recomputed from scratch), RoPE as multiplication by a unit complex number, key and
// value heads repeated for their query heads as transformers' repeat_kv does, a causal mask of -infinity, and softmax
// without the shift by the maximum. Returns the logits of every position.
std::vector<std::vector<double>> naive_forward(const model::config& c, const vkfuse_test::reference_weights& w,
                                               const std::vector<std::uint32_t>& tokens) {
    using matrix = std::vector<std::vector<double>>;  // [position][feature]
    const std::size_t T = tokens.size(), D = c.hidden_size, d = c.head_dim, H = c.num_attention_heads;
    auto project = [&](const matrix& x, const std::string& weight, const std::string& bias, std::size_t rows) {
        const std::vector<float>& W = w.at(weight);
        matrix y(x.size(), std::vector<double>(rows));
        for (std::size_t t = 0; t < x.size(); ++t)
            for (std::size_t r = 0; r < rows; ++r) {
                double s = bias.empty() ? 0.0 : w.at(bias)[r];
                for (std::size_t i = 0; i < x[t].size(); ++i) s += W[r * x[t].size() + i] * x[t][i];
                y[t][r] = s;
            }
        return y;
    };
    auto norm = [&](const matrix& x, std::string_view weight) {
        matrix y = x;
        for (std::vector<double>& row : y) {
            double mean_square = 0;
            for (const double v : row) mean_square += v * v / double(row.size());
            for (std::size_t i = 0; i < row.size(); ++i)
                row[i] = row[i] / std::sqrt(mean_square + c.rms_norm_eps) * w.at(weight)[i];
        }
        return y;
    };
    const std::vector<double> inv_freq = model::inv_freq(c);
    auto rotate = [&](matrix& x, std::size_t heads) {
        for (std::size_t t = 0; t < T; ++t)
            for (std::size_t h = 0; h < heads; ++h)
                for (std::size_t i = 0; i < d / 2; ++i) {
                    double& re = x[t][h * d + i];
                    double& im = x[t][h * d + i + d / 2];
                    const std::complex<double> z =
                        std::complex<double>(re, im) * std::polar(1.0, double(t) * inv_freq[i]);
                    re = z.real();
                    im = z.imag();
                }
    };

    matrix x(T);
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t i = 0; i < D; ++i) x[t].push_back(w.at("model.embed_tokens.weight")[tokens[t] * D + i]);
    for (std::size_t layer = 0; layer < c.num_hidden_layers; ++layer) {
        const model::layer_tensor_names n = model::layer_tensors(c, layer);
        const matrix h = norm(x, n.input_layernorm);
        matrix q = project(h, n.q_proj, n.q_bias, c.q_size());
        matrix k = project(h, n.k_proj, n.k_bias, c.kv_size());
        const matrix v0 = project(h, n.v_proj, n.v_bias, c.kv_size());
        rotate(q, H);
        rotate(k, c.num_key_value_heads);
        // repeat_kv: KV head j serves query heads j * group .. (j + 1) * group - 1.
        matrix k_rep(T), v_rep(T);
        for (std::size_t t = 0; t < T; ++t)
            for (std::size_t j = 0; j < c.num_key_value_heads; ++j)
                for (std::size_t r = 0; r < c.group_size(); ++r)
                    for (std::size_t i = 0; i < d; ++i) {
                        k_rep[t].push_back(k[t][j * d + i]);
                        v_rep[t].push_back(v0[t][j * d + i]);
                    }
        matrix attended(T, std::vector<double>(c.q_size(), 0.0));
        for (std::size_t h_ = 0; h_ < H; ++h_)
            for (std::size_t t = 0; t < T; ++t) {
                std::vector<double> p(T);
                double total = 0;
                for (std::size_t s = 0; s < T; ++s) {
                    double score = 0;
                    for (std::size_t i = 0; i < d; ++i) score += q[t][h_ * d + i] * k_rep[s][h_ * d + i];
                    score = s > t ? -INFINITY : score / std::sqrt(double(d));
                    total += p[s] = std::exp(score);
                }
                for (std::size_t s = 0; s < T; ++s)
                    for (std::size_t i = 0; i < d; ++i) attended[t][h_ * d + i] += p[s] / total * v_rep[s][h_ * d + i];
            }
        const matrix o = project(attended, n.o_proj, n.o_bias, D);
        for (std::size_t t = 0; t < T; ++t)
            for (std::size_t i = 0; i < D; ++i) x[t][i] += o[t][i];
        const matrix h2 = norm(x, n.post_attention_layernorm);
        const matrix gate = project(h2, n.gate_proj, n.gate_bias, c.intermediate_size);
        matrix product = project(h2, n.up_proj, n.up_bias, c.intermediate_size);
        for (std::size_t t = 0; t < T; ++t)
            for (std::size_t i = 0; i < c.intermediate_size; ++i)
                product[t][i] *= gate[t][i] * (1.0 / (1.0 + std::exp(-gate[t][i])));
        const matrix down = project(product, n.down_proj, n.down_bias, D);
        for (std::size_t t = 0; t < T; ++t)
            for (std::size_t i = 0; i < D; ++i) x[t][i] += down[t][i];
    }
    return project(norm(x, "model.norm.weight"),
                   c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", "", c.vocab_size);
}

double max_abs_difference(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (std::size_t t = 0; t < a.size(); ++t) {
        REQUIRE(a[t].size() == b[t].size());
        for (std::size_t i = 0; i < a[t].size(); ++i) worst = std::max(worst, std::abs(a[t][i] - b[t][i]));
    }
    return worst;
}

// A tiny shape with larger weights (std 0.1, so logits are far from uniform), optionally with fewer layers and biases
// everywhere, written and read back as a checkpoint.
struct tiny_model {
    model::config config;
    vkfuse_test::reference_weights weights;
};

tiny_model make_tiny(const fs::path& folder, std::string_view shape, std::size_t layers = 0, bool all_biases = false) {
    json j = synthetic::shape_config(shape);
    if (layers != 0) j["num_hidden_layers"] = layers;
    if (all_biases) j["attention_bias"] = j["mlp_bias"] = true;
    synthetic::write_checkpoint(folder, j, {.dtype = vkfuse::formats::weight_format::f32, .seed = 11, .std = 0.1});
    const model::config c = model::read_config(folder);
    return {c, vkfuse_test::load_reference_weights(c, st::checkpoint(folder))};
}

const std::vector<std::uint32_t> prompt = {1, 17, 42, 99, 3, 128, 64, 17, 5};

} // namespace

TEST_CASE("model reference: agrees with a naive whole-sequence forward pass") {
    temp_dir dir{"models"};
    struct variant {
        const char* shape;
        std::size_t layers;
        bool all_biases;
    };
    int k = 0;
    for (const variant v : {variant{"tiny-qwen2", 1, false}, variant{"tiny-llama", 1, false},
                            variant{"tiny-qwen2", 0, false}, variant{"tiny-llama", 0, false},
                            variant{"tiny-llama", 2, true}}) {
        INFO(v.shape << " layers " << v.layers << " biases " << v.all_biases);
        const tiny_model m = make_tiny(dir.path / std::to_string(k++), v.shape, v.layers, v.all_biases);
        const auto reference = vkfuse_test::reference_logits(m.config, m.weights, prompt);
        const auto naive = naive_forward(m.config, m.weights, prompt);
        double largest = 0;
        for (const auto& row : naive)
            for (const double x : row) largest = std::max(largest, std::abs(x));
        CHECK(largest > 1.0);  // logits far from zero, so the comparison means something
        CHECK(max_abs_difference(reference, naive) <= 1e-12 * largest);
    }
}

TEST_CASE("model reference: properties that can be checked by hand") {
    temp_dir dir{"models"};
    const tiny_model m = make_tiny(dir.path / "llama", "tiny-llama", 0, true);

    SUBCASE("with o_proj (and its bias) zero, attention adds nothing: the MLP-only path, by hand") {
        vkfuse_test::reference_weights w = m.weights;
        for (std::size_t layer = 0; layer < m.config.num_hidden_layers; ++layer) {
            const model::layer_tensor_names n = model::layer_tensors(m.config, layer);
            for (const std::string& name : {n.o_proj, n.o_bias})
                std::fill(w.tensors[name].begin(), w.tensors[name].end(), 0.0f);
        }
        const std::vector<std::uint32_t> tokens = {5, 9, 5, 77};
        const auto logits = vkfuse_test::reference_logits(m.config, w, tokens);
        CHECK(logits[0] == logits[2]);  // same token, different position and history: same logits

        // Token 77 by hand: x = embedding; per layer x += down(silu(gate(n)) * up(n)) + biases, n the normed x.
        const model::config& c = m.config;
        std::vector<double> x(c.hidden_size);
        for (std::size_t i = 0; i < c.hidden_size; ++i)
            x[i] = w.at("model.embed_tokens.weight")[77 * c.hidden_size + i];
        auto rms = [&](const std::vector<double>& v, const std::vector<float>& g) {
            double s = 0;
            for (const double e : v) s += e * e;
            std::vector<double> out(v.size());
            for (std::size_t i = 0; i < v.size(); ++i)
                out[i] = v[i] / std::sqrt(s / double(v.size()) + c.rms_norm_eps) * g[i];
            return out;
        };
        for (std::size_t layer = 0; layer < c.num_hidden_layers; ++layer) {
            const model::layer_tensor_names n = model::layer_tensors(c, layer);
            const std::vector<double> h = rms(x, w.at(n.post_attention_layernorm));
            std::vector<double> product(c.intermediate_size);
            for (std::size_t r = 0; r < c.intermediate_size; ++r) {
                double g = w.at(n.gate_bias)[r], u = w.at(n.up_bias)[r];
                for (std::size_t i = 0; i < c.hidden_size; ++i) {
                    g += w.at(n.gate_proj)[r * c.hidden_size + i] * h[i];
                    u += w.at(n.up_proj)[r * c.hidden_size + i] * h[i];
                }
                product[r] = g / (1 + std::exp(-g)) * u;
            }
            for (std::size_t r = 0; r < c.hidden_size; ++r) {
                double s = w.at(n.down_bias)[r];
                for (std::size_t i = 0; i < c.intermediate_size; ++i)
                    s += w.at(n.down_proj)[r * c.intermediate_size + i] * product[i];
                x[r] += s;
            }
        }
        const std::vector<double> final = rms(x, w.at("model.norm.weight"));
        for (std::size_t v = 0; v < c.vocab_size; ++v) {
            double s = 0;
            for (std::size_t i = 0; i < c.hidden_size; ++i)
                s += w.at("lm_head.weight")[v * c.hidden_size + i] * final[i];
            CHECK(logits[3][v] == doctest::Approx(s).epsilon(1e-12));
        }
    }

    SUBCASE("at position 0 attention returns the value itself: q and k do not matter there, and do at position 1") {
        vkfuse_test::reference_weights w = m.weights;
        for (float& x : w.tensors[model::layer_tensors(m.config, 0).q_proj]) x *= -3.0f;
        for (float& x : w.tensors[model::layer_tensors(m.config, 1).k_proj]) x *= 0.5f;
        const auto before = vkfuse_test::reference_logits(m.config, m.weights, prompt);
        const auto after = vkfuse_test::reference_logits(m.config, w, prompt);
        CHECK(max_abs_difference({before[0]}, {after[0]}) <= 1e-13);
        CHECK(max_abs_difference({before[1]}, {after[1]}) > 1e-3);
    }

    SUBCASE("one token repeated: every value is the same, so attention returns it whatever the scores") {
        // Position p attends over p + 1 copies of one value vector; the softmax weights (which RoPE makes differ)
        // sum to 1, so every layer's output, and so the logits, are those of position 0, up to rounding.
        const auto one = vkfuse_test::reference_logits(m.config, m.weights, std::vector<std::uint32_t>{42});
        const auto many =
            vkfuse_test::reference_logits(m.config, m.weights, std::vector<std::uint32_t>{42, 42, 42, 42});
        CHECK(one[0] == many[0]);
        for (std::size_t t = 1; t < many.size(); ++t) CHECK(max_abs_difference({many[t]}, {many[0]}) <= 1e-12);
        // A different token at position 0 changes the values, and so what position 1 sees.
        const auto other = vkfuse_test::reference_logits(m.config, m.weights, std::vector<std::uint32_t>{7, 42});
        CHECK(max_abs_difference({other[1]}, {many[1]}) > 1e-3);
    }

    SUBCASE("greedy decoding is the argmax of the logits, fed back") {
        const std::vector<std::uint32_t> generated = vkfuse_test::reference_greedy(m.config, m.weights, prompt, 6);
        REQUIRE(generated.size() == 6);
        std::vector<std::uint32_t> sequence = prompt;
        sequence.insert(sequence.end(), generated.begin(), generated.end() - 1);
        const auto logits = vkfuse_test::reference_logits(m.config, m.weights, sequence);
        for (std::size_t i = 0; i < generated.size(); ++i)
            CHECK(generated[i] == vkfuse_test::argmax(logits[prompt.size() - 1 + i]));
        CHECK_THROWS_AS(vkfuse_test::reference_greedy(m.config, m.weights, {}, 1), vkfuse::usage_error);
        CHECK_THROWS_AS(vkfuse_test::reference_logits(m.config, m.weights, std::vector<std::uint32_t>{131}),
                        vkfuse::usage_error);
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Against transformers (tests/fixtures/, made by tests/fixtures/make_fixtures.py on a machine with PyTorch)

TEST_CASE("model reference: transformers' logits and greedy tokens (fixtures)") {
    const fs::path fixtures = fs::path(__FILE__).parent_path() / "fixtures";
    for (const std::string_view name : {"tiny-qwen2", "tiny-llama"}) {
        INFO(name);
        const fs::path folder = fixtures / name;
        if (!fs::exists(folder / "expected.json")) {
            MESSAGE("skipped: " << (folder / "expected.json").string()
                                << " is absent; run tests/fixtures/make_fixtures.py where PyTorch and "
                                   "transformers are");
            continue;
        }
        const json expected = json::parse(std::ifstream(folder / "expected.json"));
        const model::config c = model::read_config(folder);
        const st::checkpoint ck(folder);
        const vkfuse_test::reference_weights w = vkfuse_test::load_reference_weights(c, ck);

        // The fixture has the tiny shape's sizes.
        const model::config shape = parse(synthetic::shape_config(name));
        CHECK(c.architecture == shape.architecture);
        CHECK(c.hidden_size == shape.hidden_size);
        CHECK(c.intermediate_size == shape.intermediate_size);
        CHECK(c.num_hidden_layers == shape.num_hidden_layers);
        CHECK(c.num_attention_heads == shape.num_attention_heads);
        CHECK(c.num_key_value_heads == shape.num_key_value_heads);
        CHECK(c.head_dim == shape.head_dim);
        CHECK(c.vocab_size == shape.vocab_size);
        CHECK(c.rope == shape.rope);
        CHECK(c.tie_word_embeddings == shape.tie_word_embeddings);
        CHECK(c.qkv_bias == shape.qkv_bias);

        // transformers' inv_freq (float32) against ours (double).
        const std::vector<double> ours = model::inv_freq(c);
        const std::vector<double> theirs = expected.at("inv_freq").get<std::vector<double>>();
        REQUIRE(theirs.size() == ours.size());
        for (std::size_t i = 0; i < ours.size(); ++i) CHECK(theirs[i] == doctest::Approx(ours[i]).epsilon(1e-6));

        // Logits: transformers runs in float32, we in double; the difference is float32 rounding, far below what any
        // convention error (a RoPE layout, a GQA mapping, a missing bias) would make.
        const auto prompt_ids = expected.at("prompt_ids").get<std::vector<std::uint32_t>>();
        const auto generated = expected.at("generated_ids").get<std::vector<std::uint32_t>>();
        std::vector<std::uint32_t> sequence = prompt_ids;
        sequence.insert(sequence.end(), generated.begin(), generated.end() - 1);
        const auto logits = vkfuse_test::reference_logits(c, w, sequence);
        auto compare = [&](const std::vector<std::vector<double>>& rows, std::size_t first, const char* what) {
            for (std::size_t t = 0; t < rows.size(); ++t) {
                double largest = 0, worst = 0;
                for (std::size_t v = 0; v < rows[t].size(); ++v) {
                    largest = std::max(largest, std::abs(rows[t][v]));
                    worst = std::max(worst, std::abs(rows[t][v] - logits[first + t][v]));
                }
                INFO(what << " row " << t << ": max |logit| " << largest << ", max difference " << worst);
                CHECK(worst <= 1e-4 * std::max(1.0, largest));
            }
        };
        const auto prompt_logits = expected.at("logits").get<std::vector<std::vector<double>>>();
        REQUIRE(prompt_logits.size() == prompt_ids.size());
        compare(prompt_logits, 0, "prompt");
        const auto generation_logits = expected.at("generation_logits").get<std::vector<std::vector<double>>>();
        REQUIRE(generation_logits.size() == generated.size());
        compare(generation_logits, prompt_ids.size() - 1, "generation");

        CHECK(vkfuse_test::reference_greedy(c, w, prompt_ids, generated.size()) == generated);
    }
}
