// examples/generate_qwen.cpp — model::generator in a program of one's own: Qwen2.5-0.5B with bf16 weights and fused
// kernels, greedy decoding with the loop on the device. docs/models.md ("Generating") shows and explains it.
//
//     build/examples/generate_qwen /models/Qwen2.5-0.5B 9707 11 1879 374     (the prompt's token ids)
#include <vkfuse/model/generator.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace model = vkfuse::model;

// What Qwen2.5-0.5B's config.json says, with room for 256 positions (prompt and new tokens). scripts/generate writes
// these from any config.json; the generator compares them with the folder's config before it loads anything.
constexpr model::sizes qwen2_5_0_5b{.layers = 24,
                                    .hidden = 896,
                                    .heads = 14,
                                    .kv_heads = 2,
                                    .head_dim = 64,
                                    .intermediate = 4864,
                                    .vocab = 151936,
                                    .max_positions = 256,
                                    .rope_theta = 1000000.0f,
                                    .rms_norm_eps = 1e-6f,
                                    .qkv_bias = true,  // Qwen2: q, k and v have biases
                                    .tied = true};     // tie_word_embeddings: the output projection is the embedding

using qwen = model::decoder<qwen2_5_0_5b, vkfuse::bf16>;  // weights stored as bf16 (KV caches f32)

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL_DIR TOKEN_ID...\n", argv[0]);
        return 2;
    }
    try {
        std::vector<std::uint32_t> prompt;
        for (int i = 2; i < argc; ++i) prompt.push_back(static_cast<std::uint32_t>(std::stoul(argv[i])));

        vkfuse::context ctx;  // the best device (VKFUSE_DEVICE picks another)
        // Reads and checks config.json and the tensors, builds the kernels, converts and uploads the weights.
        model::generator<qwen, vkfuse::strategy::fused> gen(ctx, argv[1]);
        const vkfuse::generation g = gen.generate(prompt, 16);  // the prompt, then 16 greedy ids

        for (const std::uint32_t id : g.tokens) std::printf("%u ", id);
        std::printf("\n%zu new tokens, %.2f ms each on %s\n", g.decode_runs,
                    g.decode.wall_ns / 1e6 / static_cast<double>(g.decode_runs), ctx.device().name.c_str());
    } catch (const std::exception& e) {  // vkfuse::error (a bad folder, a config of another model, ...), std::stoul
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
