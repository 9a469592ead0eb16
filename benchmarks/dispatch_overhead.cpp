// benchmarks/dispatch_overhead.cpp — what one dispatch costs, measured by the sequential-dispatch method.
//
//     dispatch_overhead [--sizes 1,10,100,1000,10000] [--runs 20] [--warmups 3] [--json FILE|DIR] [--commit SHA]
//     (flags, metadata and output files through the shared harness, benchmarks/harness/; --help lists them)
//
// A trivial kernel (one workgroup of 64 invocations, each adding 1 to its own element of a 64-word buffer) runs N
// times back to back, synchronised only at the end, six ways:
//   (a)  each dispatch its own command buffer, submitted and waited for before the next (sequence::run_each_submitted)
//   (b)  all N dispatches in one command buffer, a compute->compute barrier between consecutive ones (sequence::run)
//   (b') the same as (b) recorded with raw Vulkan calls (own pipeline from the same SPIR-V, one descriptor set, own
//        command buffer, fence and timestamp queries): the baseline that shows what vkfuse's runtime path adds
//   (c)  ONE dispatch whose shader does the same step N times, with a buffer memory barrier and barrier() between
//        steps; each step touches the element another invocation wrote in the step before, so the steps really are
//        dependent, as the phases of a fused single-workgroup kernel are
//   (c') the same with a workgroup-scope memory barrier (groupMemoryBarrier): all a single workgroup needs
//   (c'') the same steps on a shared-memory copy of the counters, barrier() alone between them, written back at
//        the end: a phase boundary whose data stays on chip, as single_dispatch keeps its temporaries
// Per-dispatch time = the run's total / N, by wall clock (submit to fence) and by GPU timestamps (first to last).
//
// Every variant is checked before it is timed (buffer zeroed, one run, every element must equal N) and again after
// the timed runs (every element must equal N times the number of runs). A variant that fails either check prints
// MISMATCH instead of a time, and the program exits with status 1.
//
// Output: a table on stdout; JSON (the harness's metadata, then every figure with min/median/max and the raw samples)
// at --json (a file, or a folder to put the default name in), default benchmarks/results/dispatch_overhead-<slug>.json;
// and next to it a .tsv with the per-dispatch medians/minima/maxima that benchmarks/plot_dispatch_overhead.sh plots.
//
// Each variant has its own counter buffer, and the timed runs of the six variants are interleaved (one run of each
// per round), so that a change in machine load during the benchmark is shared by all of them.
//
// On lavapipe the whole default run (N up to 10000, 20 runs) takes well under a minute on 2 cores.
#include <vkfuse/vulkan.hpp>

#include <vulkan/vulkan.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <harness/harness.hpp>

namespace {

namespace vk = vkfuse::vulkan;
namespace harness = benchmarks::harness;
using harness::summary;

constexpr std::uint32_t lanes = 64;  // invocations in the one workgroup, and words in the buffer

// One step: every invocation adds 1 to its own element.
constexpr std::string_view step_glsl = R"(#version 450
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) buffer Counts { uint count[]; };
void main() {
    count[gl_LocalInvocationID.x] += 1u;
}
)";

// N steps in one dispatch. In step s invocation i adds 1 to element (i + s) mod 64, the element that invocation
// i + 1 added to in step s - 1; the fence plus barrier() make that write visible first. Every element still
// receives exactly one addition per step, so the result is N everywhere, as for N separate dispatches.
// `fence` is memoryBarrierBuffer() for (c) and groupMemoryBarrier() for (c').
std::string loop_glsl(std::string_view fence) {
    return std::string(R"(#version 450
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) coherent buffer Counts { uint count[]; };
layout(push_constant) uniform Steps { uint steps; };
void main() {
    const uint lane = gl_LocalInvocationID.x;
    const uint n = gl_WorkGroupSize.x;
    for (uint s = 0u; s < steps; ++s) {
        const uint at = (lane + s) % n;
        count[at] += 1u;
        )") + std::string(fence) + R"(;
        barrier();
    }
}
)";
}

// (c''): the same steps on a shared-memory copy, which is added to the buffer once at the end.
constexpr std::string_view loop_shared_glsl = R"(#version 450
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) buffer Counts { uint count[]; };
layout(push_constant) uniform Steps { uint steps; };
shared uint on_chip[gl_WorkGroupSize.x];
void main() {
    const uint lane = gl_LocalInvocationID.x;
    const uint n = gl_WorkGroupSize.x;
    on_chip[lane] = 0u;
    barrier();
    for (uint s = 0u; s < steps; ++s) {
        const uint at = (lane + s) % n;
        on_chip[at] += 1u;
        barrier();
    }
    count[lane] += on_chip[lane];
}
)";

// How many times each variant runs; both come from the command line.
struct run_plan {
    int runs = 20;
    int warmups = 3;
};

// ---------------------------------------------------------------------------------------------------------------------
// Formatting of the table on stdout
// ---------------------------------------------------------------------------------------------------------------------

// Three significant digits, enough for timings that vary by a few percent between runs.
std::string number(double v) {
    if (std::isnan(v)) return "n/a";
    char text[32];
    const double a = std::fabs(v);
    if (a >= 1000 || a == 0)
        std::snprintf(text, sizeof text, "%.0f", v);
    else if (a >= 100)
        std::snprintf(text, sizeof text, "%.1f", v);
    else if (a >= 10)
        std::snprintf(text, sizeof text, "%.2f", v);
    else if (a >= 1)
        std::snprintf(text, sizeof text, "%.3f", v);
    else
        std::snprintf(text, sizeof text, "%.3g", v);
    return text;
}

std::string range_text(const summary& s) {
    if (std::isnan(s.median)) return "n/a";
    return number(s.median) + " (" + number(s.min) + "\u2013" + number(s.max) + ")";
}

// Pads to `width` characters as a terminal shows them: UTF-8 continuation bytes take no column.
std::string pad(std::string text, std::size_t width, bool right = false) {
    std::size_t columns = 0;
    for (const char c : text) columns += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    if (columns >= width) return text;
    const std::string fill(width - columns, ' ');
    return right ? fill + text : text + fill;
}

// ---------------------------------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------------------------------

struct variant_info {
    const char* key;    // in the JSON and TSV
    const char* label;  // for people
};

constexpr std::array<variant_info, 6> variants{{
    {"a", "(a)  submit+wait per dispatch"},
    {"b", "(b)  one cmd buffer, barriers"},
    {"b_raw", "(b') same as (b), raw Vulkan"},
    {"c", "(c)  one dispatch, N steps inside"},
    {"c_workgroup", "(c') (c), workgroup-scope barrier"},
    {"c_shared", "(c'') (c), steps in shared memory"},
}};

struct measurement {
    std::size_t variant = 0;  // index into variants
    std::uint32_t n = 0;
    bool verified = false;
    std::string problem;                 // why it is not verified
    std::vector<double> wall_ns, gpu_ns;  // totals of each timed run
};

// Every element of the 64-word counter buffer must equal `expected`.
std::string check_counts(const vk::buffer& counts, std::uint32_t expected) {
    const std::vector<std::uint32_t> values = counts.download<std::uint32_t>();
    for (std::size_t i = 0; i < values.size(); ++i)
        if (values[i] != expected)
            return "element " + std::to_string(i) + " is " + std::to_string(values[i]) + ", expected " +
                   std::to_string(expected);
    return {};
}

// One variant at one N: its own counter buffer and a way to run it once.
struct contender {
    std::size_t variant = 0;
    vk::buffer* counts = nullptr;
    std::function<vk::timing()> run;
};

// Zeroes every buffer, runs each variant once and checks it; warms up the ones that passed; then times them in
// rounds, each round running every variant once (starting one further along each time), so that a change in machine
// load hits all variants alike rather than whichever happened to be running; finally checks the accumulated counts.
std::vector<measurement> measure_all(std::uint32_t n, const run_plan& o, std::vector<contender>& contenders) {
    std::vector<measurement> results(contenders.size());
    for (std::size_t i = 0; i < contenders.size(); ++i) {
        results[i].variant = contenders[i].variant;
        results[i].n = n;
        contenders[i].counts->fill(0);
    }
    for (std::size_t i = 0; i < contenders.size(); ++i) {
        contenders[i].run();
        results[i].problem = check_counts(*contenders[i].counts, n);
    }
    const auto passing = [&](std::size_t i) { return results[i].problem.empty(); };
    for (int w = 0; w < o.warmups; ++w)
        for (std::size_t i = 0; i < contenders.size(); ++i)
            if (passing(i)) contenders[i].run();
    for (int r = 0; r < o.runs; ++r) {
        for (std::size_t k = 0; k < contenders.size(); ++k) {
            const std::size_t i = (k + static_cast<std::size_t>(r)) % contenders.size();
            if (!passing(i)) continue;
            const vk::timing t = contenders[i].run();
            results[i].wall_ns.push_back(t.wall_ns);
            results[i].gpu_ns.push_back(t.gpu_ns);
        }
    }
    // Unsigned arithmetic wraps exactly as the shader's does.
    const std::uint32_t total_runs = 1u + static_cast<std::uint32_t>(o.warmups) + static_cast<std::uint32_t>(o.runs);
    for (std::size_t i = 0; i < contenders.size(); ++i) {
        if (!passing(i)) continue;
        const std::string problem = check_counts(*contenders[i].counts, total_runs * n);
        if (!problem.empty()) {
            results[i].problem = "after the timed runs: " + problem;
            results[i].wall_ns.clear();
            results[i].gpu_ns.clear();
        } else {
            results[i].verified = true;
        }
    }
    return results;
}

// ---------------------------------------------------------------------------------------------------------------------
// (b') the same chain of dispatches with raw Vulkan calls
// ---------------------------------------------------------------------------------------------------------------------

// Everything (b) needs, made and recorded by hand: one pipeline, one descriptor set bound once, N dispatches with a
// compute->compute barrier between consecutive ones, two timestamps. vkfuse's sequence differs in keeping one
// descriptor set per dispatch (bound before each) and in going through context::submit_and_wait.
class raw_chain {
public:
    raw_chain(vk::context& ctx, const vk::buffer& counts, std::uint32_t n) : ctx_(ctx), fn_(ctx.fn()) {
        const VkDevice device = ctx.vk_device();
        const auto check = [](VkResult result, const char* call) {
            if (result != VK_SUCCESS)
                throw std::runtime_error(std::string("raw Vulkan path: ") + call + " returned " +
                                         std::to_string(static_cast<int>(result)));
        };

        const VkDescriptorSetLayoutBinding binding{0, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT,
                                                   nullptr};
        VkDescriptorSetLayoutCreateInfo set_layout_info{};
        set_layout_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
        set_layout_info.bindingCount = 1;
        set_layout_info.pBindings = &binding;
        check(fn_.vkCreateDescriptorSetLayout(device, &set_layout_info, nullptr, &set_layout_),
              "vkCreateDescriptorSetLayout");

        VkPipelineLayoutCreateInfo layout_info{};
        layout_info.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
        layout_info.setLayoutCount = 1;
        layout_info.pSetLayouts = &set_layout_;
        check(fn_.vkCreatePipelineLayout(device, &layout_info, nullptr, &layout_), "vkCreatePipelineLayout");

        // The same SPIR-V words the vkfuse kernel was built from (the context caches them by source).
        const std::span<const std::uint32_t> code = ctx.spirv(step_glsl);
        VkShaderModuleCreateInfo module_info{};
        module_info.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
        module_info.codeSize = code.size_bytes();
        module_info.pCode = code.data();
        VkShaderModule module = VK_NULL_HANDLE;
        check(fn_.vkCreateShaderModule(device, &module_info, nullptr, &module), "vkCreateShaderModule");

        const std::uint32_t workgroup = lanes;
        const VkSpecializationMapEntry entry{0, 0, sizeof workgroup};
        VkSpecializationInfo specialization{};
        specialization.mapEntryCount = 1;
        specialization.pMapEntries = &entry;
        specialization.dataSize = sizeof workgroup;
        specialization.pData = &workgroup;
        VkComputePipelineCreateInfo pipeline_info{};
        pipeline_info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
        pipeline_info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
        pipeline_info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
        pipeline_info.stage.module = module;
        pipeline_info.stage.pName = "main";
        pipeline_info.stage.pSpecializationInfo = &specialization;
        pipeline_info.layout = layout_;
        const VkResult made = fn_.vkCreateComputePipelines(device, VK_NULL_HANDLE, 1, &pipeline_info, nullptr,
                                                           &pipeline_);
        fn_.vkDestroyShaderModule(device, module, nullptr);
        check(made, "vkCreateComputePipelines");

        const VkDescriptorPoolSize pool_size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1};
        VkDescriptorPoolCreateInfo pool_info{};
        pool_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
        pool_info.maxSets = 1;
        pool_info.poolSizeCount = 1;
        pool_info.pPoolSizes = &pool_size;
        check(fn_.vkCreateDescriptorPool(device, &pool_info, nullptr, &descriptor_pool_), "vkCreateDescriptorPool");
        VkDescriptorSetAllocateInfo set_info{};
        set_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
        set_info.descriptorPool = descriptor_pool_;
        set_info.descriptorSetCount = 1;
        set_info.pSetLayouts = &set_layout_;
        check(fn_.vkAllocateDescriptorSets(device, &set_info, &set_), "vkAllocateDescriptorSets");
        const VkDescriptorBufferInfo buffer_info{*counts, 0, VK_WHOLE_SIZE};
        VkWriteDescriptorSet write{};
        write.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
        write.dstSet = set_;
        write.dstBinding = 0;
        write.descriptorCount = 1;
        write.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        write.pBufferInfo = &buffer_info;
        fn_.vkUpdateDescriptorSets(device, 1, &write, 0, nullptr);

        if (ctx.device().timestamps) {
            VkQueryPoolCreateInfo query_info{};
            query_info.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
            query_info.queryType = VK_QUERY_TYPE_TIMESTAMP;
            query_info.queryCount = 2;
            check(fn_.vkCreateQueryPool(device, &query_info, nullptr, &queries_), "vkCreateQueryPool");
        }

        VkFenceCreateInfo fence_info{};
        fence_info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
        check(fn_.vkCreateFence(device, &fence_info, nullptr, &fence_), "vkCreateFence");

        VkCommandPoolCreateInfo command_pool_info{};
        command_pool_info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
        command_pool_info.queueFamilyIndex = ctx.queue_family();
        check(fn_.vkCreateCommandPool(device, &command_pool_info, nullptr, &command_pool_), "vkCreateCommandPool");
        VkCommandBufferAllocateInfo allocate{};
        allocate.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
        allocate.commandPool = command_pool_;
        allocate.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        allocate.commandBufferCount = 1;
        check(fn_.vkAllocateCommandBuffers(device, &allocate, &commands_), "vkAllocateCommandBuffers");

        // ---- Recording ------------------------------------------------------------------------------------------
        VkCommandBufferBeginInfo begin{};
        begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
        check(fn_.vkBeginCommandBuffer(commands_, &begin), "vkBeginCommandBuffer");
        if (queries_) {
            fn_.vkCmdResetQueryPool(commands_, queries_, 0, 2);
            fn_.vkCmdWriteTimestamp(commands_, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queries_, 0);
        }
        // After the fill (a transfer) and after earlier submissions' shader writes.
        VkMemoryBarrier leading{};
        leading.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
        leading.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
        leading.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
        fn_.vkCmdPipelineBarrier(commands_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &leading, 0, nullptr, 0, nullptr);
        fn_.vkCmdBindPipeline(commands_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_);
        fn_.vkCmdBindDescriptorSets(commands_, VK_PIPELINE_BIND_POINT_COMPUTE, layout_, 0, 1, &set_, 0, nullptr);
        VkMemoryBarrier between{};
        between.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
        between.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
        between.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
        for (std::uint32_t i = 0; i < n; ++i) {
            if (i != 0)
                fn_.vkCmdPipelineBarrier(commands_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &between, 0, nullptr, 0, nullptr);
            fn_.vkCmdDispatch(commands_, 1, 1, 1);
        }
        if (queries_) fn_.vkCmdWriteTimestamp(commands_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, 1);
        check(fn_.vkEndCommandBuffer(commands_), "vkEndCommandBuffer");
    }

    raw_chain(const raw_chain&) = delete;
    raw_chain& operator=(const raw_chain&) = delete;

    ~raw_chain() {
        const VkDevice device = ctx_.vk_device();
        fn_.vkDeviceWaitIdle(device);
        if (command_pool_) fn_.vkDestroyCommandPool(device, command_pool_, nullptr);
        if (fence_) fn_.vkDestroyFence(device, fence_, nullptr);
        if (queries_) fn_.vkDestroyQueryPool(device, queries_, nullptr);
        if (descriptor_pool_) fn_.vkDestroyDescriptorPool(device, descriptor_pool_, nullptr);
        if (pipeline_) fn_.vkDestroyPipeline(device, pipeline_, nullptr);
        if (layout_) fn_.vkDestroyPipelineLayout(device, layout_, nullptr);
        if (set_layout_) fn_.vkDestroyDescriptorSetLayout(device, set_layout_, nullptr);
    }

    // Submit, wait for the fence; wall time around exactly that, GPU time from the two timestamps.
    vk::timing run() {
        const VkDevice device = ctx_.vk_device();
        const auto check = [](VkResult result, const char* call) {
            if (result != VK_SUCCESS)
                throw std::runtime_error(std::string("raw Vulkan path: ") + call + " returned " +
                                         std::to_string(static_cast<int>(result)));
        };
        VkSubmitInfo submit{};
        submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
        submit.commandBufferCount = 1;
        submit.pCommandBuffers = &commands_;
        const auto start = std::chrono::steady_clock::now();
        check(fn_.vkResetFences(device, 1, &fence_), "vkResetFences");
        check(fn_.vkQueueSubmit(ctx_.vk_queue(), 1, &submit, fence_), "vkQueueSubmit");
        check(fn_.vkWaitForFences(device, 1, &fence_, VK_TRUE, std::numeric_limits<std::uint64_t>::max()),
              "vkWaitForFences");
        const auto stop = std::chrono::steady_clock::now();
        vk::timing t;
        t.wall_ns = std::chrono::duration<double, std::nano>(stop - start).count();
        if (queries_) {
            std::array<std::uint64_t, 2> ticks{};
            check(fn_.vkGetQueryPoolResults(device, queries_, 0, 2, sizeof ticks, ticks.data(), sizeof(std::uint64_t),
                                            VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
                  "vkGetQueryPoolResults");
            const std::uint32_t bits = ctx_.timestamp_valid_bits();
            const std::uint64_t mask = bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
            t.gpu_ns = static_cast<double>((ticks[1] - ticks[0]) & mask) * ctx_.device().timestamp_period_ns;
        }
        return t;
    }

private:
    vk::context& ctx_;
    const vk::detail::device_functions& fn_;
    VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
    VkPipelineLayout layout_ = VK_NULL_HANDLE;
    VkPipeline pipeline_ = VK_NULL_HANDLE;
    VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
    VkDescriptorSet set_ = VK_NULL_HANDLE;
    VkQueryPool queries_ = VK_NULL_HANDLE;
    VkFence fence_ = VK_NULL_HANDLE;
    VkCommandPool command_pool_ = VK_NULL_HANDLE;
    VkCommandBuffer commands_ = VK_NULL_HANDLE;
};

// ---------------------------------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------------------------------

struct figures {
    summary wall_total_us, gpu_total_us, wall_per_dispatch_us, gpu_per_dispatch_us;
};

figures figures_of(const measurement& m) {
    figures f;
    f.wall_total_us = harness::scaled(harness::summarize(m.wall_ns), 1e-3);
    f.gpu_total_us = harness::scaled(harness::summarize(m.gpu_ns), 1e-3);
    f.wall_per_dispatch_us = harness::scaled(f.wall_total_us, 1.0 / m.n);
    f.gpu_per_dispatch_us = harness::scaled(f.gpu_total_us, 1.0 / m.n);
    return f;
}

// The marginal cost of one more dispatch (or step): the slope of the median total time between the two largest N
// that passed, where fixed costs (submission, timestamps, the first dispatch) are spread thinnest. The total at the
// smallest N is in the table already.
struct marginal_cost {
    std::uint32_t from_n = 0, to_n = 0;
    double wall_us = std::numeric_limits<double>::quiet_NaN();
    double gpu_us = std::numeric_limits<double>::quiet_NaN();
};

marginal_cost marginal(const std::vector<measurement>& all, std::size_t variant) {
    std::vector<const measurement*> passed;
    for (const measurement& m : all)
        if (m.variant == variant && m.verified) passed.push_back(&m);
    std::sort(passed.begin(), passed.end(), [](const measurement* x, const measurement* y) { return x->n < y->n; });
    marginal_cost result;
    if (passed.size() < 2) return result;
    const measurement& low = *passed[passed.size() - 2];
    const measurement& high = *passed.back();
    if (low.n == high.n) return result;
    const figures fl = figures_of(low), fh = figures_of(high);
    const double dn = static_cast<double>(high.n - low.n);
    result.from_n = low.n;
    result.to_n = high.n;
    result.wall_us = (fh.wall_total_us.median - fl.wall_total_us.median) / dn;
    result.gpu_us = (fh.gpu_total_us.median - fl.gpu_total_us.median) / dn;
    return result;
}

const measurement* find(const std::vector<measurement>& all, std::size_t variant, std::uint32_t n) {
    for (const measurement& m : all)
        if (m.variant == variant && m.n == n && m.verified) return &m;
    return nullptr;
}

// The benchmark's part of the JSON: how it measured, every figure of every (variant, N) with its raw samples, the
// marginal costs and (b) over (b').
void fill_json(nlohmann::ordered_json& j, const run_plan& plan, const std::vector<std::uint32_t>& sizes,
               const std::vector<measurement>& all, std::size_t validation_messages) {
    using json = nlohmann::ordered_json;
    j["method"] = "sequential dispatch: a trivial kernel (1 workgroup of " + std::to_string(lanes) +
                  " invocations, each adds 1 to its own word) N times back to back, synchronised only at the end; "
                  "per-dispatch time = total / N";
    j["settings"] = {{"runs", plan.runs}, {"warmups", plan.warmups}, {"sizes", sizes}};
    j["validation_messages"] = validation_messages;
    json labels = json::object();
    for (const variant_info& v : variants) labels[v.key] = v.label;
    j["variants"] = labels;

    json results = json::array();
    for (const measurement& m : all) {
        json entry{{"variant", variants[m.variant].key}, {"n", m.n}, {"verified", m.verified}};
        if (m.verified) {
            const figures f = figures_of(m);
            entry["per_dispatch_us"] = {{"wall", f.wall_per_dispatch_us}, {"gpu", f.gpu_per_dispatch_us}};
            entry["total_us"] = {{"wall", f.wall_total_us}, {"gpu", f.gpu_total_us}};
            entry["samples_total_ns"] = {{"wall", m.wall_ns}, {"gpu", m.gpu_ns}};
        } else {
            entry["mismatch"] = m.problem;
        }
        results.push_back(entry);
    }
    j["results"] = results;

    json slopes = json::array();
    for (std::size_t v = 0; v < variants.size(); ++v) {
        const marginal_cost c = marginal(all, v);
        slopes.push_back({{"variant", variants[v].key},
                          {"from_n", c.from_n},
                          {"to_n", c.to_n},
                          {"wall", c.wall_us},
                          {"gpu", c.gpu_us}});
    }
    j["marginal_per_dispatch_us"] = slopes;

    // (b) over (b'), medians of the time per run: what vkfuse's runtime path adds to raw Vulkan.
    json ratios = json::array();
    for (const std::uint32_t n : sizes) {
        const measurement* b = find(all, 1, n);
        const measurement* raw = find(all, 2, n);
        if (!b || !raw) continue;
        const figures fb = figures_of(*b), fr = figures_of(*raw);
        ratios.push_back({{"n", n},
                          {"wall_ratio", fb.wall_total_us.median / fr.wall_total_us.median},
                          {"gpu_ratio", fb.gpu_total_us.median / fr.gpu_total_us.median}});
    }
    j["vkfuse_over_raw"] = ratios;
}

// One row per verified (variant, N): per-dispatch µs, medians and ranges; what the plot script reads, including the
// "runs after" note and the variant labels.
void fill_tsv(harness::tsv_table& tsv, const run_plan& plan, const std::vector<measurement>& all) {
    tsv.note("dispatch_overhead: per-dispatch time in microseconds (total / N), " + std::to_string(plan.runs) +
             " runs after " + std::to_string(plan.warmups) + " warm-ups");
    for (const variant_info& v : variants) tsv.note(std::string("variant ") + v.key + ": " + v.label);
    for (std::size_t v = 0; v < variants.size(); ++v) {
        for (const measurement& m : all) {
            if (m.variant != v || !m.verified) continue;
            const figures f = figures_of(m);
            tsv.row(variants[v].key, m.n, f.wall_per_dispatch_us.median, f.wall_per_dispatch_us.min,
                    f.wall_per_dispatch_us.max, f.gpu_per_dispatch_us.median, f.gpu_per_dispatch_us.min,
                    f.gpu_per_dispatch_us.max);
        }
    }
}

} // namespace

int main(int argc, char** argv) try {
    harness::command_line cli("dispatch_overhead",
                              "What one dispatch costs (sequential-dispatch method): a trivial kernel N times in a "
                              "row, six ways, each verified before and after it is timed.",
                              20, "timed runs of every variant at every N (interleaved, one of each per round)");
    std::vector<std::uint32_t> sizes{1, 10, 100, 1000, 10000};
    run_plan plan;
    cli.flags()
        .add_option("--sizes", sizes, "N, the dispatches in a row (for (c) the steps inside the one dispatch)")
        ->type_name("N,N,...")
        ->delimiter(',')
        ->check(CLI::Range(1u, 10'000'000u));
    cli.flags()
        .add_option("--warmups", plan.warmups, "untimed runs of each variant before the timed ones")
        ->type_name("N")
        ->check(CLI::Range(0, 100'000));
    if (const auto status = cli.parse(argc, argv)) return *status;
    plan.runs = cli.runs();

    vk::context ctx;
    const vk::device_info& d = ctx.device();
    harness::report report(cli, ctx,
                           {"variant", "n", "wall_median", "wall_min", "wall_max", "gpu_median", "gpu_min", "gpu_max"});

    std::printf("device: %s\n", d.summary().c_str());
    std::printf("driver: %s | %s | version %s; Vulkan in use %s; timestamps %s (period %g ns)\n",
                d.driver_name.empty() ? "(unnamed)" : d.driver_name.c_str(),
                d.driver_info.empty() ? "-" : d.driver_info.c_str(),
                harness::driver_version_text(d.vendor_id, d.driver_version).c_str(),
                harness::vulkan_version_text(ctx.api_version()).c_str(), d.timestamps ? "yes" : "no",
                d.timestamp_period_ns);
    std::printf("vkfuse commit: %s%s\n", cli.commit().c_str(),
                ctx.validation_enabled() ? "   (validation layer ON: timings are not representative)" : "");
    std::printf("kernel: 1 workgroup x %u invocations, each adds 1 to one word; %d timed runs after %d warm-ups, "
                "the variants interleaved\n\n",
                lanes, plan.runs, plan.warmups);

    const vk::kernel step(ctx, {.label = "dispatch_overhead/step", .glsl = step_glsl, .binding_count = 1,
                                .workgroup_size = lanes});
    const std::string loop_device_glsl = loop_glsl("memoryBarrierBuffer()");
    const std::string loop_workgroup_glsl = loop_glsl("groupMemoryBarrier()");
    const vk::kernel loop(ctx, {.label = "dispatch_overhead/loop", .glsl = loop_device_glsl, .binding_count = 1,
                                .push_constant_bytes = 4, .workgroup_size = lanes});
    const vk::kernel loop_workgroup(ctx, {.label = "dispatch_overhead/loop_workgroup", .glsl = loop_workgroup_glsl,
                                          .binding_count = 1, .push_constant_bytes = 4, .workgroup_size = lanes});
    const vk::kernel loop_shared(ctx, {.label = "dispatch_overhead/loop_shared", .glsl = loop_shared_glsl,
                                       .binding_count = 1, .push_constant_bytes = 4, .workgroup_size = lanes});

    std::printf("%s  %s  %s  %s\n", pad("N", 7, true).c_str(), pad("variant", 34).c_str(),
                pad("wall \u00b5s/dispatch, median (min\u2013max)", 36).c_str(),
                "GPU \u00b5s/dispatch, median (min\u2013max)");
    std::vector<measurement> all;
    for (const std::uint32_t n : sizes) {
        std::vector<vk::buffer> counts;
        for (std::size_t v = 0; v < variants.size(); ++v) counts.emplace_back(ctx, lanes * sizeof(std::uint32_t));
        const std::vector<vk::dispatch> chain_a(
            n, vk::dispatch{.k = &step, .buffers = {&counts[0]}, .groups = {1, 1, 1}});
        const std::vector<vk::dispatch> chain_b(
            n, vk::dispatch{.k = &step, .buffers = {&counts[1]}, .groups = {1, 1, 1}});
        vk::sequence seq_a(ctx, chain_a);
        vk::sequence seq_b(ctx, chain_b);
        raw_chain raw(ctx, counts[2], n);
        // one dispatch that loops n times inside (per invocation, per workgroup, through shared memory)
        auto looping = [&](const vk::kernel& k, vk::buffer& count) {
            return vk::dispatch{.k = &k, .buffers = {&count}, .groups = {1, 1, 1},
                                .push_constants = vk::pack_push_constants(n)};
        };
        vk::sequence seq_c(ctx, {looping(loop, counts[3])});
        vk::sequence seq_c_workgroup(ctx, {looping(loop_workgroup, counts[4])});
        vk::sequence seq_c_shared(ctx, {looping(loop_shared, counts[5])});
        std::vector<contender> contenders{
            {0, &counts[0], [&] { return seq_a.run_each_submitted(); }},
            {1, &counts[1], [&] { return seq_b.run(1); }},
            {2, &counts[2], [&] { return raw.run(); }},
            {3, &counts[3], [&] { return seq_c.run(1); }},
            {4, &counts[4], [&] { return seq_c_workgroup.run(1); }},
            {5, &counts[5], [&] { return seq_c_shared.run(1); }},
        };
        const std::vector<measurement> row = measure_all(n, plan, contenders);
        for (const measurement& m : row) {
            if (m.verified) {
                const figures f = figures_of(m);
                std::printf("%7u  %s  %s  %s\n", n, pad(variants[m.variant].label, 34).c_str(),
                            pad(range_text(f.wall_per_dispatch_us), 36).c_str(),
                            range_text(f.gpu_per_dispatch_us).c_str());
            } else {
                std::printf("%7u  %s  MISMATCH: %s\n", n, pad(variants[m.variant].label, 34).c_str(),
                            m.problem.c_str());
            }
            all.push_back(m);
        }
        std::fflush(stdout);
    }

    std::printf("\nmarginal cost of one more dispatch (slope of the median total between the two largest N):\n");
    for (std::size_t v = 0; v < variants.size(); ++v) {
        const marginal_cost c = marginal(all, v);
        if (c.to_n == 0) continue;
        std::printf("  %s  N %u -> %u:  wall %s \u00b5s   GPU %s \u00b5s\n", pad(variants[v].label, 34).c_str(),
                    c.from_n, c.to_n, number(c.wall_us).c_str(), number(c.gpu_us).c_str());
    }
    std::printf("\nvkfuse sequence (b) over raw Vulkan (b'), median time per run:\n");
    for (const std::uint32_t n : sizes) {
        const measurement* b = find(all, 1, n);
        const measurement* raw = find(all, 2, n);
        if (!b || !raw) continue;
        const figures fb = figures_of(*b), fr = figures_of(*raw);
        std::printf("  N = %-6u wall %+6.1f %%   GPU %+6.1f %%\n", n,
                    100.0 * (fb.wall_total_us.median / fr.wall_total_us.median - 1.0),
                    100.0 * (fb.gpu_total_us.median / fr.gpu_total_us.median - 1.0));
    }

    // Taken before writing, so that the JSON says whether the layer complained.
    std::size_t validation_messages = 0;
    if (ctx.validation_enabled()) validation_messages = ctx.take_validation_messages().size();

    fill_json(report.json(), plan, sizes, all, validation_messages);
    fill_tsv(report.tsv(), plan, all);
    std::printf("\n");
    report.write();
    std::printf("host: %u hardware threads, 1-minute load average %.2f before, %.2f after\n",
                std::thread::hardware_concurrency(), report.metadata().load_before()[0],
                report.metadata().load_after()[0]);

    bool ok = std::all_of(all.begin(), all.end(), [](const measurement& m) { return m.verified; });
    if (!ok) std::printf("at least one variant gave a wrong count (MISMATCH above): exit status 1\n");
    if (ctx.validation_enabled()) {
        std::printf("validation layer: %zu message(s)%s\n", validation_messages,
                    validation_messages ? " (printed on stderr): exit status 1" : "");
        if (validation_messages) ok = false;
    }
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "dispatch_overhead: %s\n", e.what());
    return 2;
}
