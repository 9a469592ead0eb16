// benchmarks/harness/copy.hpp — the roof a memory-bound kernel is measured against: a shader copying 16-byte words of
// random data between two buffers as large as a binding allows (up to 256 MB each), measured in the same run as what
// it is compared with. Its bandwidth counts bytes read plus bytes written.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <vkfuse/vulkan.hpp>

namespace benchmarks::harness {

namespace vk = vkfuse::vulkan;

inline constexpr const char* copy_glsl = R"(#version 450
layout(local_size_x = 256) in;
layout(set = 0, binding = 0, std430) readonly restrict buffer Source { uvec4 source[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer Target { uvec4 target[]; };
layout(push_constant) uniform Count { uint words; } count;
void main() {
    for (uint i = gl_GlobalInvocationID.x; i < count.words; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x)
        target[i] = source[i];
}
)";

struct copy_result {
    std::uint64_t bytes = 0;  // of one buffer
    std::vector<double> gpu_us;
    bool verified = false;
};

// Copies between two buffers of up to 256 MB; the median GPU time gives the device's copy bandwidth.
inline copy_result measure_copy(vk::context& ctx, int runs) {
    copy_result r;
    r.bytes = std::min<std::uint64_t>(std::uint64_t{256} << 20, ctx.device().max_storage_buffer_range) & ~std::uint64_t{15};
    vk::buffer source(ctx, r.bytes), target(ctx, r.bytes);
    // Random words, not a fill: a GPU may compress memory that holds a repeated pattern, and stream it faster than
    // the weights of a model.
    std::vector<std::uint32_t> words_in(r.bytes / 4);
    std::uint64_t z = 0x9e3779b97f4a7c15ull;
    for (std::uint32_t& w : words_in) {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        w = static_cast<std::uint32_t>(z >> 32);
    }
    source.upload(std::as_bytes(std::span<const std::uint32_t>(words_in)));
    target.fill(0u);
    vk::kernel_spec spec;
    spec.label = "benchmarks/copy";
    spec.glsl = copy_glsl;
    spec.binding_count = 2;
    spec.push_constant_bytes = 4;
    spec.workgroup_size = 256;
    vk::kernel copy(ctx, spec);
    const auto words = static_cast<std::uint32_t>(r.bytes / 16);
    const std::uint32_t groups = std::min<std::uint32_t>((words + 255) / 256, ctx.device().max_workgroup_count[0]);
    vk::sequence seq(ctx, {vk::dispatch{.k = &copy,
                                        .buffers = {&source, &target},
                                        .groups = {groups, 1, 1},
                                        .push_constants = vk::pack_push_constants(words)}});
    seq.run();
    r.verified = target.download<std::uint32_t>() == words_in;
    for (double warm_us = 0; warm_us < 5e5;) warm_us += seq.run().wall_ns / 1000.0;  // clocks up, as for the products
    for (int i = 0; i < runs; ++i) r.gpu_us.push_back(seq.run().gpu_ns / 1000.0);
    return r;
}

// "a,b,c" as {"a", "b", "c"}: the list flags of the benchmarks.
inline std::vector<std::string> split(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream in(list);
    for (std::string item; std::getline(in, item, ',');) out.push_back(item);
    return out;
}

} // namespace benchmarks::harness
