// benchmarks/decode.hpp — batch-1 decoding of whole models, as time per token against the memory-bandwidth floor.
//
// At batch 1 a token must at least read every weight matrix once and the KV cache up to the current position, so
// the floor of a token is (matrix bytes + KV-cache bytes read) / (copy bandwidth measured in the same run). Each
// (shape, weight format) is a translation unit of its own (benchmarks/decode/<shape>_<format>.cpp) holding every
// strategy. Every variant is verified against Eigen (the logits of one position, the reference reading the stored
// weights) before it is timed; one that disagrees gets no time.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <vkfuse/vkfuse.hpp>

namespace benchmarks::decode {

struct settings {
    int runs = 100;                                   // timed runs per (variant, context)
    std::vector<std::uint32_t> contexts{1, 256, 1024};  // positions attended: the token at position context - 1
    std::vector<std::string> strategies{"fused", "per_op", "single_dispatch", "persistent"};
    // persistent: the workgroups launched, one variant each ("persistent-<n>"; 0: the device's default, "persistent")
    std::vector<std::uint32_t> persistent_workgroups{0};
    // persistent: the schedule and its techniques, one variant each: "default" (the device's choices), or features
    // joined by '+' from assigned / taken (program_options::schedule), prefetch / noprefetch (prefetch_weights),
    // stage / nostage (stage_inputs), wg<n> (workgroup_size); the variant is then named
    // persistent[-<workgroups>]-<features>
    std::vector<std::string> persistent_variants{"default"};
    bool profile = false;  // also a run with program_options::profile: kernel by kernel (not single_dispatch)
    // what the driver says of each variant's compiled shaders (registers, ...; context_options::pipeline_statistics)
    bool statistics = false;
    std::uint32_t matvec_unroll = 0;  // program_options::matvec_unroll for every strategy (0: the default)
    double max_seconds = 5;                           // a variant's timed runs at one context stop after this
    double tolerance = 1e-5;                          // relative L2 of the logits against Eigen (f32 arithmetic)
};

// One (shape, format, strategy, context).
struct result {
    std::string shape, format, strategy;
    std::uint32_t context = 0;
    std::uint64_t matrix_bytes = 0;  // every weight matrix a token streams (the embedding's one row not counted)
    std::uint64_t cache_bytes = 0;   // K and V rows read at this context, every layer
    int dispatches = 0;              // per token
    bool verified = false;
    double rel_l2 = 0;
    std::vector<double> gpu_us, wall_us;  // per token: one run of the whole model at this position
    double loop_wall_us = 0;              // per token, decode_loop generating (no host work between tokens)
    // --profile: where one run's time went (program::profile), one entry per kernel
    struct phase {
        int number = 0;
        std::string what;
        std::uint64_t instances = 0, items = 0;
        double span_us = 0, work_us = 0, wait_us = 0;
    };
    std::vector<phase> phases;
    std::vector<std::string> statistics;  // --statistics: one line per shader, "name value, ..."
    double profiled_run_us = 0;  // that run's time, first item taken to last finished
    std::uint32_t fallbacks = 0;  // persistent: runs whose door closed (program::persistent_fallbacks)
    std::uint32_t runs = 0;       // persistent: runs made by the program, the verifying and warming ones too
    std::uint32_t workgroups = 0; // persistent: launched (after fitting the launch to the device)
    bool assigned = false;        // persistent: the assigned schedule (else items taken from the counter)
};

// The number n of a feature spelled <prefix><n> (wg512, lanes32); 0 where `feature` is not one.
inline std::uint32_t numbered(const std::string& feature, const std::string& prefix) {
    if (feature.rfind(prefix, 0) != 0 || feature.size() == prefix.size() || feature.size() > prefix.size() + 6 ||
        feature.find_first_not_of("0123456789", prefix.size()) != std::string::npos)
        return 0;
    return static_cast<std::uint32_t>(std::stoul(feature.substr(prefix.size())));
}

// A persistent variant's options (settings::persistent_variants); throws on a feature it does not know.
inline vkfuse::program_options persistent_options(std::uint32_t workgroups, const std::string& variant) {
    vkfuse::program_options o{.persistent_workgroups = workgroups};
    if (variant == "default") return o;
    std::size_t at = 0;
    while (at <= variant.size()) {
        const std::size_t end = std::min(variant.find('+', at), variant.size());
        const std::string feature = variant.substr(at, end - at);
        if (feature == "assigned")
            o.schedule = vkfuse::persistent_schedule::assigned;
        else if (feature == "taken")
            o.schedule = vkfuse::persistent_schedule::taken;
        else if (feature == "prefetch" || feature == "noprefetch")
            o.prefetch_weights = feature == "prefetch";
        else if (feature == "stage" || feature == "nostage")
            o.stage_inputs = feature == "stage";
        else if (const std::uint32_t n = numbered(feature, "wg"))
            o.workgroup_size = n;
        else if (const std::uint32_t n = numbered(feature, "lanes"))
            o.lanes = n;
        else if (const std::uint32_t n = numbered(feature, "unroll"))
            o.matvec_unroll = n;
        else if (const std::uint32_t n = numbered(feature, "prefetch"))
            o.prefetch_weights = true, o.prefetch_steps = n;
        else
            throw std::invalid_argument("decode: unknown persistent feature '" + feature + "' in '" + variant +
                                        "' (assigned, taken, prefetch, prefetch<n>, noprefetch, stage, nostage, "
                                        "wg<n>, lanes<n>, unroll<n>)");
        at = end + 1;
    }
    return o;
}

// The largest context a build holds (the KV caches' rows).
inline constexpr std::uint32_t max_context = 1024;

std::vector<result> run_qwen_f32(vkfuse::context&, const settings&);
std::vector<result> run_qwen_f16(vkfuse::context&, const settings&);
std::vector<result> run_qwen_bf16(vkfuse::context&, const settings&);
std::vector<result> run_qwen_q8_0(vkfuse::context&, const settings&);
std::vector<result> run_qwen_q4_0(vkfuse::context&, const settings&);
std::vector<result> run_llama_f32(vkfuse::context&, const settings&);
std::vector<result> run_llama_f16(vkfuse::context&, const settings&);
std::vector<result> run_llama_bf16(vkfuse::context&, const settings&);
std::vector<result> run_llama_q8_0(vkfuse::context&, const settings&);
std::vector<result> run_llama_q4_0(vkfuse::context&, const settings&);

} // namespace benchmarks::decode
