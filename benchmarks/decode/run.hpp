// benchmarks/decode/run.hpp — what each (shape, format) translation unit instantiates: the model under every strategy,
// verified once against Eigen, then timed at each context.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <vkfuse/model/decoder.hpp>
#include <vkfuse/program/decode_loop.hpp>

#include "../decode.hpp"

namespace benchmarks::decode {

using namespace vkfuse;

// Qwen2.5-0.5B and Llama-3.2-1B as their config.json files describe them (model/synthetic.hpp writes the same), with
// room for 64 positions past the longest context so that decode_loop can generate there.
inline constexpr model::sizes qwen_shape{.layers = 24, .hidden = 896, .heads = 14, .kv_heads = 2, .head_dim = 64,
                                         .intermediate = 4864, .vocab = 151936, .max_positions = max_context + 64,
                                         .rope_theta = 1000000.0f, .rms_norm_eps = 1e-6f, .qkv_bias = true,
                                         .tied = true};
inline constexpr model::sizes llama_shape{.layers = 16, .hidden = 2048, .heads = 32, .kv_heads = 8, .head_dim = 64,
                                          .intermediate = 8192, .vocab = 128256, .max_positions = max_context + 64,
                                          .rope_theta = 500000.0f, .scaling = {32.0f, 1.0f, 4.0f, 8192},
                                          .rms_norm_eps = 1e-5f, .tied = true};

// Deterministic values in [lo, hi), fast enough for a billion of them (xorshift64*).
inline void draw(std::vector<float>& values, std::uint64_t seed, float lo, float hi) {
    std::uint64_t z = seed * 0x9e3779b97f4a7c15ull + 1;
    for (float& v : values) {
        z ^= z >> 12;
        z ^= z << 25;
        z ^= z >> 27;
        const double unit = static_cast<double>((z * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-53;
        v = static_cast<float>(lo + (hi - lo) * unit);
    }
}

// Ranges like a trained model's: matrices and biases small (a real model's are about N(0, 0.02)), norm weights near
// 1, the KV caches (the earlier positions a token attends to) of unit size.
inline std::pair<float, float> range_of(std::string_view name) {
    if (name == "attn_norm" || name == "ffn_norm" || name == "norm") return {0.8f, 1.2f};
    if (name == "k_cache" || name == "v_cache") return {-1.0f, 1.0f};
    return {-0.05f, 0.05f};
}

inline double relative_l2(const std::vector<float>& device, const std::vector<double>& expected) {
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        diff += (device[i] - expected[i]) * (device[i] - expected[i]);
        norm += expected[i] * expected[i];
    }
    return std::sqrt(diff / std::max(norm, 1e-300));
}

// The values of one (shape, format), shared by its strategies: what is uploaded, and what the device holds (the
// stored 16-bit or block values, which the reference reads), and the reference's logits at the checked position.
struct model_data {
    reference::bindings drawn, stored;
    std::vector<double> expected;
};

// --profile: the same model again with program_options::profile, run at each context, and where each run's time
// went, kernel by kernel (a timestamp after every dispatch; persistent: its work items' shader clocks), stored with
// that context's result.
template <class Model, strategy How>
void profile_phases(context& ctx, model_data& data, program_options options, const std::string& variant,
                    std::string_view shape, std::string_view format, std::vector<result>& out) {
    using P = program<typename Model::program_type, How>;
    options.profile = true;
    P prog(ctx, options);
    for (const auto& [name, values] : data.drawn.buffers) prog.upload(name, values);
    prog.set_index("token", 17);
    for (result& r : out) {
        if (r.strategy != variant || r.shape != shape || r.format != format || r.gpu_us.empty()) continue;
        prog.set_index("pos", r.context - 1);
        for (int i = 0; i < 5; ++i) prog.run();  // warm; the profile is of the last
        const auto p = prog.profile();
        r.profiled_run_us = p.run_us;
        for (const auto& ph : p.phases)
            r.phases.push_back({ph.phase, ph.what, ph.instances, ph.items, ph.span_us, ph.work_us, ph.wait_us});
    }
}

// `workgroups`: persistent's launch (0: the device's default) and `features` its variant (settings::
// persistent_variants); the variant is then named persistent[-<workgroups>][-<features>].
template <class Model, strategy How>
void run_strategy(context& ctx, const settings& st, model_data& data, std::string_view shape,
                  std::string_view format, std::vector<result>& out, std::uint32_t workgroups = 0,
                  const std::string& features = "default") {
    using P = program<typename Model::program_type, How>;
    if (std::find(st.strategies.begin(), st.strategies.end(), strategy_name(How)) == st.strategies.end()) return;
    const std::string variant = std::string(strategy_name(How)) +
                                (workgroups != 0 ? "-" + std::to_string(workgroups) : std::string()) +
                                (features != "default" ? "-" + features : std::string());
    std::printf("decode: %s %s %s ...\n", std::string(shape).c_str(), std::string(format).c_str(), variant.c_str());
    std::fflush(stdout);
    program_options options = persistent_options(workgroups, features);
    if (st.matvec_unroll != 0 && options.matvec_unroll == 0) options.matvec_unroll = st.matvec_unroll;
    P prog(ctx, options);
    std::vector<std::string> statistics;  // --statistics: each shader's, as the driver names them
    if (ctx.device().pipeline_statistics)
        for (int s = 0; s < P::plan.shader_count(); ++s) {
            std::string line = "shader " + std::to_string(s + 1) + ":";
            for (const auto& stat : prog.pipeline_statistics(s)) line += " " + stat.name + " " + stat.value + ",";
            line.pop_back();
            statistics.push_back(std::move(line));
        }
    std::uint32_t runs = 0;
    const bool first = data.drawn.buffers.empty();
    for (int b = 0; b < P::plan.buffer_count; ++b) {
        const auto& s = P::plan.buffers[b];
        if (s.slot_role == role::output || s.slot_role == role::table || s.dtype == dtype_code::u32) continue;
        const std::string name(s.name.view());
        if (first) {
            std::vector<float> v(s.elements * s.layers);
            const auto [lo, hi] = range_of(name);
            draw(v, static_cast<std::uint64_t>(b) + 1, lo, hi);
            data.drawn.buffers.emplace(name, std::move(v));
        }
        prog.upload(name, data.drawn.buffers.at(name));
        if (first)
            data.stored.buffers.emplace(name, s.dtype == dtype_code::f32 ? data.drawn.buffers.at(name)
                                                                          : prog.download(name));
    }

    // verified at the longest context: the logits, and the argmax the loop feeds back
    const std::uint32_t longest = *std::max_element(st.contexts.begin(), st.contexts.end());
    const std::uint32_t token = 17;
    prog.set_index("pos", longest - 1);
    prog.set_index("token", token);
    prog.poison();
    prog.run();
    ++runs;
    if (data.expected.empty()) {
        data.stored.indices["pos"] = longest - 1;
        data.stored.indices["token"] = token;
        data.expected = reference::evaluate(Model::program, data.stored).at("logits");
    }
    const std::vector<float> logits = prog.download("logits");
    const double rel = relative_l2(logits, data.expected);
    const auto best = static_cast<std::uint32_t>(std::max_element(data.expected.begin(), data.expected.end()) -
                                                 data.expected.begin());
    const bool verified = rel <= st.tolerance && prog.download_indices("next")[0] == best;
    if (!verified)
        std::fprintf(stderr, "decode %s %s %s: MISMATCH, logits rel L2 %.3g\n", std::string(shape).c_str(),
                     std::string(format).c_str(), variant.c_str(), rel);

    std::uint64_t matrix_bytes = 0;
    for (int k = 0; k < P::plan.kernel_count; ++k)
        matrix_bytes += P::plan.kernels[k].matrix_bytes *
                        (k >= P::plan.stack_first && k < P::plan.stack_last ? Model::shape.layers : 1u);
    for (const std::uint32_t c : st.contexts) {
        result r;
        r.shape = shape;
        r.format = format;
        r.strategy = variant;
        r.context = c;
        r.matrix_bytes = matrix_bytes;
        r.cache_bytes = std::uint64_t{2} * Model::shape.layers * c * Model::KV * Model::HD * sizeof(float);
        r.dispatches = P::dispatch_count;
        r.verified = verified;
        r.rel_l2 = rel;
        r.statistics = statistics;
        if (verified) {
            prog.set_index("pos", c - 1);
            double spent_us = 0;
            for (int i = 0; i < 10000 && (i < 3 || spent_us < 3e5); ++i, ++runs) spent_us += prog.run().wall_ns / 1e3;
            spent_us = 0;
            for (int i = 0; i < st.runs && (i < 3 || spent_us < st.max_seconds * 1e6); ++i, ++runs) {
                const vulkan::timing t = prog.run();
                r.gpu_us.push_back(t.gpu_ns / 1e3);
                r.wall_us.push_back(t.wall_ns / 1e3);
                spent_us += t.wall_ns / 1e3;
            }
        }
        if constexpr (How == strategy::persistent) {
            r.fallbacks = prog.persistent_fallbacks();
            r.runs = runs;
            r.workgroups = prog.workgroups(0);
            r.assigned = prog.launch().assigned;
        }
        out.push_back(std::move(r));
    }
    if (!verified) return;
    if constexpr (How != strategy::single_dispatch)
        if (st.profile) profile_phases<Model, How>(ctx, data, options, variant, shape, format, out);
    // The loop on the device: a prompt of `context` ids, then 32 new tokens in one submission; its wall time per
    // new token. Skipped where the prompt alone would take more than a few seconds (single_dispatch, long contexts).
    decode_loop loop(prog, {.head_steps = Model::head_steps});
    for (result& r : out) {
        if (r.strategy != variant || r.shape != shape || r.format != format || r.wall_us.empty()) continue;
        std::vector<double> sorted = r.wall_us;
        std::sort(sorted.begin(), sorted.end());
        if (sorted[sorted.size() / 2] * r.context > 3e6) continue;
        const std::vector<std::uint32_t> prompt(r.context, token);
        const generation g = loop.generate(prompt, 32);
        r.loop_wall_us = g.decode.wall_ns / 1e3 / static_cast<double>(g.decode_runs);
    }
}

template <model::sizes S, class Weights>
std::vector<result> run_model(context& ctx, const settings& st, std::string_view shape, std::string_view format) {
    using M = model::decoder<S, Weights>;
    std::vector<result> out;
    model_data data;
    run_strategy<M, strategy::fused>(ctx, st, data, shape, format, out);
    run_strategy<M, strategy::per_op>(ctx, st, data, shape, format, out);
    run_strategy<M, strategy::single_dispatch>(ctx, st, data, shape, format, out);
    for (const std::uint32_t workgroups : st.persistent_workgroups)
        for (const std::string& features : st.persistent_variants)
            run_strategy<M, strategy::persistent>(ctx, st, data, shape, format, out, workgroups, features);
    return out;
}

} // namespace benchmarks::decode
