// tests/model_reference.hpp — a Qwen2 / Llama / Mistral forward pass written as plain loops in double, the judge that
// the device decode loop and the fixtures are compared with.
//
// Why this exists: the GPU path is generated from vkfuse expressions and checked against the Eigen evaluator of the
// same expressions, so an error in how a model is *described* (RoPE layout, GQA mapping, where a bias goes, tied
// output) would pass both. This file describes the model a second time, independently, straight from Hugging Face's
// conventions, and shares nothing with vkfuse's expressions or evaluator: only the config reader, the tensor names and
// inv_freq, which it must agree with transformers on anyway (tests/test_models.cpp checks those). It is written to be
// obviously right, not fast: one token at a time with a KV cache, every sum in double.
//
//   embedding -> for each layer:
//       h = rmsnorm(x) * w_in;  q, k, v = W h (+ b);  RoPE (rotate-half) on q and k;  cache k, v
//       attention per query head h over KV head h / (H / KV): softmax(q.k / sqrt(head_dim)) over positions <= pos
//       x += W_o attn (+ b);  h = rmsnorm(x) * w_post;  x += W_down (silu(W_gate h) * W_up h)
//   -> rmsnorm(x) * w_norm -> logits = W_lm x (the embedding when tied)
#pragma once

#include <vkfuse/checkpoint/safetensors.hpp>
#include <vkfuse/core/error.hpp>
#include <vkfuse/model/config.hpp>
#include <vkfuse/model/tensors.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vkfuse_test {

// The weights as f32 (exact for F32, F16 and BF16 files), by tensor name. Tests may edit them (zero a projection,
// say) before building a reference_model.
struct reference_weights {
    std::map<std::string, std::vector<float>, std::less<>> tensors;

    const std::vector<float>& at(std::string_view name) const {
        const auto it = tensors.find(name);
        if (it == tensors.end()) throw vkfuse::usage_error("reference_weights: no tensor " + std::string(name));
        return it->second;
    }
};

// Every tensor the config expects, after model::check_tensors has accepted the checkpoint.
inline reference_weights load_reference_weights(const vkfuse::model::config& c,
                                                const vkfuse::safetensors::checkpoint& checkpoint) {
    vkfuse::model::check_tensors(c, checkpoint);
    reference_weights w;
    for (const vkfuse::model::tensor_spec& t : vkfuse::model::expected_tensors(c))
        w.tensors.emplace(t.name, vkfuse::safetensors::to_f32(checkpoint.at(t.name)));
    return w;
}

class reference_model {
public:
    reference_model(vkfuse::model::config c, reference_weights w)
        : c_(std::move(c)), w_(std::move(w)), inv_freq_(vkfuse::model::inv_freq(c_)), keys_(c_.num_hidden_layers),
          values_(c_.num_hidden_layers) {
        for (const vkfuse::model::tensor_spec& t : vkfuse::model::expected_tensors(c_)) {
            std::size_t n = 1;
            for (const std::uint64_t extent : t.shape) n *= extent;
            if (w_.at(t.name).size() != n)
                throw vkfuse::usage_error("reference_model: tensor " + t.name + " has " +
                                          std::to_string(w_.at(t.name).size()) + " values, expected " +
                                          std::to_string(n));
        }
    }

    const vkfuse::model::config& config() const noexcept { return c_; }
    // The position the next token will take (the number of tokens run so far).
    std::size_t position() const noexcept { return position_; }

    // Runs `token` at position(), appending to the KV cache, and returns the logits that predict the next token.
    std::vector<double> step(std::uint32_t token) {
        if (token >= c_.vocab_size)
            throw vkfuse::usage_error("reference_model: token " + std::to_string(token) + " is not below vocab_size " +
                                      std::to_string(c_.vocab_size));
        const std::size_t hidden = c_.hidden_size, d = c_.head_dim;
        const std::vector<float>& embedding = w_.at(vkfuse::model::embedding_name);
        std::vector<double> x(embedding.begin() + static_cast<std::ptrdiff_t>(token * hidden),
                              embedding.begin() + static_cast<std::ptrdiff_t>((token + 1) * hidden));

        for (std::size_t layer = 0; layer < c_.num_hidden_layers; ++layer) {
            const vkfuse::model::layer_tensor_names n = vkfuse::model::layer_tensors(c_, layer);

            // Attention block.
            const std::vector<double> h = rms_norm(x, n.input_layernorm);
            std::vector<double> q = linear(n.q_proj, n.q_bias, h, c_.q_size());
            std::vector<double> k = linear(n.k_proj, n.k_bias, h, c_.kv_size());
            std::vector<double> v = linear(n.v_proj, n.v_bias, h, c_.kv_size());
            for (std::size_t head = 0; head < c_.num_attention_heads; ++head) rope(&q[head * d], position_);
            for (std::size_t head = 0; head < c_.num_key_value_heads; ++head) rope(&k[head * d], position_);
            keys_[layer].push_back(std::move(k));
            values_[layer].push_back(std::move(v));

            std::vector<double> attended(c_.q_size(), 0.0);
            const double scale = 1.0 / std::sqrt(static_cast<double>(d));
            for (std::size_t head = 0; head < c_.num_attention_heads; ++head) {
                const std::size_t kv_head = head / c_.group_size();
                const double* qh = &q[head * d];
                std::vector<double> scores(position_ + 1);
                double largest = -INFINITY;
                for (std::size_t t = 0; t <= position_; ++t) {
                    const double* kt = &keys_[layer][t][kv_head * d];
                    double dot = 0;
                    for (std::size_t i = 0; i < d; ++i) dot += qh[i] * kt[i];
                    scores[t] = dot * scale;
                    largest = std::max(largest, scores[t]);
                }
                double total = 0;
                for (double& s : scores) total += (s = std::exp(s - largest));
                double* out = &attended[head * d];
                for (std::size_t t = 0; t <= position_; ++t) {
                    const double* vt = &values_[layer][t][kv_head * d];
                    for (std::size_t i = 0; i < d; ++i) out[i] += scores[t] / total * vt[i];
                }
            }
            const std::vector<double> o = linear(n.o_proj, n.o_bias, attended, hidden);
            for (std::size_t i = 0; i < hidden; ++i) x[i] += o[i];

            // Feed-forward block: SwiGLU.
            const std::vector<double> h2 = rms_norm(x, n.post_attention_layernorm);
            const std::vector<double> gate = linear(n.gate_proj, n.gate_bias, h2, c_.intermediate_size);
            const std::vector<double> up = linear(n.up_proj, n.up_bias, h2, c_.intermediate_size);
            std::vector<double> product(c_.intermediate_size);
            for (std::size_t i = 0; i < product.size(); ++i) product[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
            const std::vector<double> down = linear(n.down_proj, n.down_bias, product, hidden);
            for (std::size_t i = 0; i < hidden; ++i) x[i] += down[i];
        }

        ++position_;
        const std::vector<double> final = rms_norm(x, vkfuse::model::final_norm_name);
        return linear(vkfuse::model::output_projection_name(c_), "", final, c_.vocab_size);
    }

private:
    // x * rsqrt(mean(x^2) + eps) * w, all in double.
    std::vector<double> rms_norm(const std::vector<double>& x, std::string_view weight) const {
        const std::vector<float>& w = w_.at(weight);
        double squares = 0;
        for (const double v : x) squares += v * v;
        const double factor = 1.0 / std::sqrt(squares / static_cast<double>(x.size()) + c_.rms_norm_eps);
        std::vector<double> out(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * factor * w[i];
        return out;
    }

    // W x + b for W of shape [rows, x.size()], row-major; `bias` empty for none.
    std::vector<double> linear(std::string_view weight, std::string_view bias, const std::vector<double>& x,
                               std::size_t rows) const {
        const std::vector<float>& w = w_.at(weight);
        std::vector<double> out(rows, 0.0);
        for (std::size_t r = 0; r < rows; ++r) {
            const float* row = &w[r * x.size()];
            double sum = 0;
            for (std::size_t i = 0; i < x.size(); ++i) sum += static_cast<double>(row[i]) * x[i];
            out[r] = sum;
        }
        if (!bias.empty()) {
            const std::vector<float>& b = w_.at(bias);
            for (std::size_t r = 0; r < rows; ++r) out[r] += b[r];
        }
        return out;
    }

    // Rotate-half RoPE on one head: element i pairs with element i + head_dim / 2, rotated by pos * inv_freq[i].
    void rope(double* head, std::size_t pos) const {
        const std::size_t half = c_.head_dim / 2;
        for (std::size_t i = 0; i < half; ++i) {
            const double angle = static_cast<double>(pos) * inv_freq_[i];
            const double cos = std::cos(angle), sin = std::sin(angle);
            const double first = head[i], second = head[i + half];
            head[i] = first * cos - second * sin;
            head[i + half] = second * cos + first * sin;
        }
    }

    vkfuse::model::config c_;
    reference_weights w_;
    std::vector<double> inv_freq_;
    // Per layer, per position: the rotated key and the value of every KV head.
    std::vector<std::vector<std::vector<double>>> keys_, values_;
    std::size_t position_ = 0;
};

// The index of the largest logit; the first of equal ones, as torch.argmax picks.
inline std::uint32_t argmax(std::span<const double> logits) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < logits.size(); ++i)
        if (logits[i] > logits[best]) best = i;
    return static_cast<std::uint32_t>(best);
}

// The logits after each of `tokens` (row t predicts token t + 1).
inline std::vector<std::vector<double>> reference_logits(const vkfuse::model::config& c, reference_weights w,
                                                         std::span<const std::uint32_t> tokens) {
    reference_model model(c, std::move(w));
    std::vector<std::vector<double>> out;
    for (const std::uint32_t t : tokens) out.push_back(model.step(t));
    return out;
}

// Greedy decoding: the `count` tokens that follow `prompt` (not empty), each the argmax of the logits before it.
inline std::vector<std::uint32_t> reference_greedy(const vkfuse::model::config& c, reference_weights w,
                                                   std::span<const std::uint32_t> prompt, std::size_t count) {
    if (prompt.empty()) throw vkfuse::usage_error("reference_greedy: the prompt is empty");
    reference_model model(c, std::move(w));
    std::vector<double> logits;
    for (const std::uint32_t t : prompt) logits = model.step(t);
    std::vector<std::uint32_t> out;
    while (out.size() < count) {
        out.push_back(argmax(logits));
        if (out.size() < count) logits = model.step(out.back());
    }
    return out;
}

} // namespace vkfuse_test
