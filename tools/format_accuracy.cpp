// tools/format_accuracy.cpp — what storing a model's weights in each format costs in accuracy: the Qwen2.5-0.5B
// decoder layer (examples/decoder_layer.hpp) evaluated by the Eigen reference, in double, with its weight matrices
// as they are (f32) and as each format stores them, over several positions of a growing KV cache.
//
//     format_accuracy [--positions 8] [--seed 1]
//
// Weights at a trained model's scale (projections uniform in +-0.05, norm gains in 0.5..1.5), activations O(1). The
// GPU reads exactly the stored values, so these are also the errors of the device's results (docs/ops.md quotes them).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <vkfuse/vkfuse.hpp>

#include "decoder_layer.hpp"

namespace {

using layer = examples::decoder_layer::qwen25_05b;
namespace fmt = vkfuse::formats;

struct matrix {
    const char* name;
    std::size_t rows, cols;
};

constexpr matrix matrices[] = {
    {"wq", 896, 896},     {"wk", 128, 896},     {"wv", 128, 896},     {"wo", 896, 896},
    {"w_gate", 4864, 896}, {"w_up", 4864, 896}, {"w_down", 896, 4864},
};

vkfuse::reference::bindings random_layer(unsigned seed) {
    std::mt19937 rng(seed);
    vkfuse::reference::bindings b;
    auto fill = [&](const char* name, std::size_t n, float lo, float hi) {
        std::uniform_real_distribution<float> d(lo, hi);
        std::vector<float> v(n);
        for (float& x : v) x = d(rng);
        b.buffers[name] = std::move(v);
    };
    for (const matrix& m : matrices) fill(m.name, m.rows * m.cols, -0.05f, 0.05f);
    for (const char* bias : {"bq", "bk", "bv"}) fill(bias, bias[1] == 'q' ? 896 : 128, -0.05f, 0.05f);
    fill("attn_norm", 896, 0.5f, 1.5f);
    fill("ffn_norm", 896, 0.5f, 1.5f);
    fill("x", 896, -1.0f, 1.0f);
    fill("k_cache", 256 * 128, -1.0f, 1.0f);
    fill("v_cache", 256 * 128, -1.0f, 1.0f);
    return b;
}

// y of the layer at positions 0 .. positions-1, the cache growing as it goes.
std::vector<double> run(vkfuse::reference::bindings b, int positions) {
    std::vector<double> ys;
    for (int p = 0; p < positions; ++p) {
        b.indices["pos"] = static_cast<std::uint32_t>(p);
        const auto out = vkfuse::reference::evaluate(layer::program, b);
        const auto& y = out.at("y");
        ys.insert(ys.end(), y.begin(), y.end());
    }
    return ys;
}

double relative_l2(const std::vector<double>& a, const std::vector<double>& b) {
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff += (a[i] - b[i]) * (a[i] - b[i]);
        norm += b[i] * b[i];
    }
    return std::sqrt(diff / norm);
}

} // namespace

int main(int argc, char** argv) {
    int positions = 8;
    unsigned seed = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0) {
            std::printf("usage: format_accuracy [--positions N] [--seed S]\n");
            return 0;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "format_accuracy: %s needs a value\n", argv[i]);
            return 2;
        }
        if (std::strcmp(argv[i], "--positions") == 0) positions = std::atoi(argv[++i]);
        else if (std::strcmp(argv[i], "--seed") == 0) seed = static_cast<unsigned>(std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "format_accuracy: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (positions < 1 || positions > 256) {
        std::fprintf(stderr, "format_accuracy: --positions must be 1..256\n");
        return 2;
    }
    const vkfuse::reference::bindings f32_layer = random_layer(seed);
    const std::vector<double> exact = run(f32_layer, positions);
    std::printf("Qwen2.5-0.5B decoder layer, %d positions, weight matrices stored as:\n", positions);
    std::printf("%-6s %14s %18s\n", "format", "weights rel L2", "layer output rel L2");
    for (const fmt::weight_format f : fmt::all_weight_formats) {
        vkfuse::reference::bindings stored = f32_layer;
        double weight_error = 0, weight_norm = 0;
        for (const matrix& m : matrices) {
            std::vector<float>& w = stored.buffers[m.name];
            const std::vector<float> back = fmt::decode(fmt::encode(w, f, m.rows, m.cols), f, m.rows, m.cols);
            for (std::size_t i = 0; i < w.size(); ++i) {
                weight_error += double(back[i] - w[i]) * (back[i] - w[i]);
                weight_norm += double(w[i]) * w[i];
            }
            w = back;
        }
        std::printf("%-6s %14.3g %18.3g\n", std::string(fmt::format_name(f)).c_str(), std::sqrt(weight_error / weight_norm),
                    relative_l2(run(stored, positions), exact));
    }
    return 0;
}
