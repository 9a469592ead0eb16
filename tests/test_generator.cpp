// Checkpoints to tokens: model::generator loads a Hugging Face folder into model::decoder's program and decodes
// greedily with the loop on the device. Judged three ways: against transformers' own logits and tokens (the
// fixtures tests/fixtures/make_fixtures.py wrote on a machine with PyTorch), against the plain-loop forward pass of
// tests/model_reference.hpp (written from Hugging Face's conventions, sharing nothing with vkfuse's expressions), and
// against the Eigen evaluation of the same description. Tiny shapes at awkward sizes: Qwen2-like (q/k/v biases, tied
// embedding, 6 heads over 2 KV heads of 10) and Llama-like (untied, Llama 3 RoPE scaling, head_dim 12 set apart from
// hidden / heads).
#include "support.hpp"

#include "model_reference.hpp"
#include "temp_dir.hpp"

#include <vkfuse/model/generator.hpp>
#include <vkfuse/model/synthetic.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace vkfuse;
using vkfuse_test::check_validation_clean;
namespace fs = std::filesystem;

namespace {

// The sizes of tests' tiny shapes (model/synthetic.hpp; the fixtures have them too), for 24 positions.
constexpr model::sizes tiny_qwen2{.layers = 2, .hidden = 60, .heads = 6, .kv_heads = 2, .head_dim = 10,
                                  .intermediate = 76, .vocab = 131, .max_positions = 24, .rope_theta = 1000000.0f,
                                  .rms_norm_eps = 1e-6f, .qkv_bias = true, .tied = true};
constexpr model::sizes tiny_llama{.layers = 3, .hidden = 40, .heads = 4, .kv_heads = 2, .head_dim = 12,
                                  .intermediate = 68, .vocab = 131, .max_positions = 24, .rope_theta = 10000.0f,
                                  .scaling = {8.0f, 1.0f, 4.0f, 1024}, .rms_norm_eps = 1e-5f};

const fs::path fixtures = fs::path(__FILE__).parent_path() / "fixtures";


double worst_difference(const std::vector<float>& device, const std::vector<double>& expected) {
    double worst = 0;
    for (std::size_t i = 0; i < expected.size(); ++i)
        worst = std::max(worst, std::abs(static_cast<double>(device[i]) - expected[i]));
    return worst;
}

// The Eigen evaluator's bindings for the model's weights: program names, every layer's values concatenated.
reference::bindings eigen_bindings(const model::config& c, const vkfuse_test::reference_weights& w) {
    reference::bindings b;
    auto put = [&](const std::string& name, const std::string& tensor) {
        const std::vector<float>& v = w.at(tensor);
        auto& dst = b.buffers[name];
        dst.insert(dst.end(), v.begin(), v.end());
    };
    put("embed", std::string(model::embedding_name));
    put("norm", std::string(model::final_norm_name));
    if (!c.tie_word_embeddings) put("lm_head", std::string(model::lm_head_name));
    for (std::size_t i = 0; i < c.num_hidden_layers; ++i) {
        const model::layer_tensor_names n = model::layer_tensors(c, i);
        put("attn_norm", n.input_layernorm);
        put("wq", n.q_proj);
        put("wk", n.k_proj);
        put("wv", n.v_proj);
        put("wo", n.o_proj);
        put("ffn_norm", n.post_attention_layernorm);
        put("w_gate", n.gate_proj);
        put("w_up", n.up_proj);
        put("w_down", n.down_proj);
        if (c.qkv_bias) {
            put("bq", n.q_bias);
            put("bk", n.k_bias);
            put("bv", n.v_bias);
        }
    }
    return b;
}

// One model folder, one build: logits of every position against the plain loops and against Eigen, greedy tokens
// against the plain loops, and the device loop's tokens against the position-by-position run.
template <class Model, strategy How>
void check_against_references(const fs::path& folder, std::span<const std::uint32_t> prompt, std::size_t new_tokens) {
    model::generator<Model, How> gen(vkfuse_test::context(), folder);
    const model::config& c = gen.model_config();
    const vkfuse_test::reference_weights w =
        vkfuse_test::load_reference_weights(c, safetensors::checkpoint(folder));

    std::vector<std::vector<float>> device_logits;
    const generation stepped = gen.generate_with_logits(
        prompt, new_tokens, [&](std::size_t, std::vector<float> l) { device_logits.push_back(std::move(l)); });
    const std::vector<std::uint32_t> greedy = vkfuse_test::reference_greedy(c, w, prompt, new_tokens);
    std::vector<std::uint32_t> expected_tokens(prompt.begin(), prompt.end());
    expected_tokens.insert(expected_tokens.end(), greedy.begin(), greedy.end());
    CHECK(stepped.tokens == expected_tokens);

    // the plain loops and Eigen, over the same sequence
    std::vector<std::uint32_t> sequence(expected_tokens.begin(), expected_tokens.end() - 1);
    const auto plain = vkfuse_test::reference_logits(c, w, sequence);
    reference::bindings eigen = eigen_bindings(c, w);
    REQUIRE(device_logits.size() == sequence.size());
    for (std::size_t pos = 0; pos < sequence.size(); ++pos) {
        eigen.indices["pos"] = static_cast<std::uint32_t>(pos);
        eigen.indices["token"] = sequence[pos];
        if (pos == 0)
            for (const char* cache : {"k_cache", "v_cache"})
                eigen.buffers[cache].assign(Model::shape.layers * Model::T * Model::KV * Model::HD, 0.0f);
        const auto by_eigen = reference::evaluate(Model::program, eigen).at("logits");
        double largest = 0;
        for (const double v : plain[pos]) largest = std::max(largest, std::abs(v));
        INFO("position " << pos << ", max |logit| " << largest);
        CHECK(worst_difference(device_logits[pos], plain[pos]) <= 1e-5 * std::max(1.0, largest));
        CHECK(worst_difference(device_logits[pos], by_eigen) <= 1e-5 * std::max(1.0, largest));
    }

    // the loop on the device gives the same tokens, from one submission per phase
    const generation g = gen.generate(prompt, new_tokens);
    CHECK(g.tokens == expected_tokens);
    CHECK(g.prefill_runs == prompt.size() - 1);
    CHECK(g.decode_runs == new_tokens);
    check_validation_clean();
}

} // namespace

TEST_CASE("generator: transformers' logits and greedy tokens, from its own checkpoints (fixtures)") {
    auto check = [&]<class Model>(std::string_view name) {
        INFO(name);
        const fs::path folder = fixtures / name;
        REQUIRE(fs::exists(folder / "expected.json"));
        const nlohmann::json expected = nlohmann::json::parse(std::ifstream(folder / "expected.json"));
        const auto prompt = expected.at("prompt_ids").get<std::vector<std::uint32_t>>();
        const auto generated = expected.at("generated_ids").get<std::vector<std::uint32_t>>();
        auto rows = expected.at("logits").get<std::vector<std::vector<double>>>();
        const auto more = expected.at("generation_logits").get<std::vector<std::vector<double>>>();
        rows.insert(rows.end(), more.begin() + 1, more.end());  // generation_logits[0] is the last prompt row

        model::generator<Model> gen(vkfuse_test::context(), folder);
        std::vector<std::vector<float>> logits;
        const generation g = gen.generate_with_logits(prompt, generated.size(),
                                                      [&](std::size_t, std::vector<float> l) { logits.push_back(l); });
        std::vector<std::uint32_t> want = prompt;
        want.insert(want.end(), generated.begin(), generated.end());
        CHECK(g.tokens == want);
        REQUIRE(logits.size() == rows.size());
        for (std::size_t t = 0; t < rows.size(); ++t) {
            double largest = 0;
            for (const double v : rows[t]) largest = std::max(largest, std::abs(v));
            INFO("row " << t);
            CHECK(worst_difference(logits[t], rows[t]) <= 2e-5 * std::max(1.0, largest));  // transformers: float32
        }
        CHECK(gen.generate(prompt, generated.size()).tokens == want);
        check_validation_clean();
    };
    check.template operator()<model::decoder<tiny_qwen2>>("tiny-qwen2");
    check.template operator()<model::decoder<tiny_llama>>("tiny-llama");
}

TEST_CASE("generator: bf16 checkpoints at awkward sizes against plain loops and Eigen, under every strategy") {
    vkfuse_test::temp_dir scratch{"generator"};
    const std::vector<std::uint32_t> prompt = {1, 17, 130, 42, 99};
    for (const std::string_view shape : {"tiny-qwen2", "tiny-llama"}) {
        const fs::path folder = scratch.path / shape;
        model::synthetic::write_shape(folder, shape, {.dtype = formats::weight_format::bf16, .seed = 5});
        INFO(shape);
        if (shape == "tiny-qwen2") {
            check_against_references<model::decoder<tiny_qwen2>, strategy::fused>(folder, prompt, 7);
            check_against_references<model::decoder<tiny_qwen2>, strategy::per_op>(folder, prompt, 3);
            check_against_references<model::decoder<tiny_qwen2>, strategy::single_dispatch>(folder, prompt, 3);
            check_against_references<model::decoder<tiny_qwen2>, strategy::persistent>(folder, prompt, 3);
        } else {
            check_against_references<model::decoder<tiny_llama>, strategy::fused>(folder, prompt, 7);
            check_against_references<model::decoder<tiny_llama>, strategy::single_dispatch>(folder, prompt, 3);
        }
    }
}

TEST_CASE("generator: a weight holding a NaN or an infinity is refused at load, by tensor and element") {
    // tiny-qwen2 copied with one value of one matrix replaced: every token computed from it would be garbage (the
    // logits NaN, the argmax 0), so the load stops first and names where
    vkfuse_test::temp_dir dir{"non-finite"};
    fs::copy_file(fixtures / "tiny-qwen2" / "config.json", dir.path / "config.json");
    const safetensors::checkpoint original(fixtures / "tiny-qwen2");
    const std::string damaged = "model.layers.1.mlp.down_proj.weight";
    for (const bool infinity : {false, true}) {
        std::vector<safetensors::tensor_view> views;
        std::vector<std::byte> changed;
        for (const safetensors::tensor_view* t : original.tensors()) {
            views.push_back(*t);
            if (t->name != damaged) continue;
            changed.assign(t->bytes.begin(), t->bytes.end());
            const std::size_t element = 2 * tiny_qwen2.intermediate + 7;  // row 2, column 7
            if (t->dtype == safetensors::dtype::f32) {
                const std::uint32_t bits = infinity ? 0xff800000u : 0x7fc00000u;
                std::memcpy(changed.data() + 4 * element, &bits, 4);
            } else {
                const std::uint16_t bits = t->dtype == safetensors::dtype::bf16 ? (infinity ? 0xff80u : 0x7fc0u)
                                                                                 : (infinity ? 0xfc00u : 0x7e00u);
                std::memcpy(changed.data() + 2 * element, &bits, 2);
            }
            views.back().bytes = changed;
        }
        safetensors::write(dir.path / "model.safetensors", views);
        const std::string named = "tensor \"" + damaged + "\" in ";
        CHECK_THROWS_WITH_AS(model::generator<model::decoder<tiny_qwen2>>(vkfuse_test::context(), dir.path),
                             doctest::Contains(named.c_str()), checkpoint_error);
        CHECK_THROWS_WITH_AS(model::generator<model::decoder<tiny_qwen2>>(vkfuse_test::context(), dir.path),
                             doctest::Contains("holds a NaN or an infinity at element 159 (row 2, column 7)"),
                             checkpoint_error);
    }
}

TEST_CASE("generator: tensors stored in another dtype than config.json names load, with a warning naming both") {
    const safetensors::checkpoint checkpoint(fixtures / "tiny-qwen2");
    model::config c = model::read_config(fixtures / "tiny-qwen2");
    const std::string stored(safetensors::dtype_name(checkpoint.tensors().front()->dtype));
    c.torch_dtype = stored == "F32" ? formats::weight_format::bf16 : formats::weight_format::f32;
    const std::vector<std::string> w = model::checkpoint_warnings(c, checkpoint);
    REQUIRE(w.size() == 1);
    CHECK(w[0].find("says the weights are " + std::string(formats::format_name(*c.torch_dtype))) != std::string::npos);
    CHECK(w[0].find("stored as " + stored) != std::string::npos);
    c.torch_dtype.reset();  // a config that does not say: nothing to compare
    CHECK(model::checkpoint_warnings(c, checkpoint).empty());
}

TEST_CASE("generator: a checkpoint of another model, or a prompt it cannot take, is an error that says so") {
    // a build for tiny-qwen2 given tiny-llama's folder: every difference listed
    CHECK_THROWS_WITH_AS(model::generator<model::decoder<tiny_qwen2>>(vkfuse_test::context(), fixtures / "tiny-llama"),
                         doctest::Contains("hidden_size: the config says 40, this build has 60"), checkpoint_error);
    model::generator<model::decoder<tiny_qwen2>> gen(vkfuse_test::context(), fixtures / "tiny-qwen2");
    const std::vector<std::uint32_t> bad = {1, 131};
    CHECK_THROWS_WITH_AS(gen.generate(bad, 2), doctest::Contains("not below the vocabulary size 131"), usage_error);
    const std::vector<std::uint32_t> long_prompt(20, 5u);
    CHECK_THROWS_WITH_AS(gen.generate(long_prompt, 5), doctest::Contains("need 25 positions, but the caches hold 24"),
                         usage_error);
}
