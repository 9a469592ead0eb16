// vkfuse/vulkan/sequence.hpp — a list of kernel dispatches recorded once into a command buffer and run many times.
#pragma once

#include "vkfuse/core/error.hpp"
#include "vkfuse/vulkan/buffer.hpp"
#include "vkfuse/vulkan/context.hpp"
#include "vkfuse/vulkan/detail/handle.hpp"
#include "vkfuse/vulkan/detail/result.hpp"
#include "vkfuse/vulkan/kernel.hpp"
#include "vkfuse/vulkan/shader_compiler.hpp"

#include <vulkan/vulkan.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace vkfuse::vulkan {

struct dispatch {
    const kernel* k = nullptr;
    std::vector<const buffer*> buffers{};    // one per storage binding, in binding order
    std::array<std::uint32_t, 3> groups{1, 1, 1};
    std::vector<std::byte> push_constants{};  // exactly the kernel's push_constant_bytes
    const mapped_buffer* uniform = nullptr;  // the uniform buffer, where the kernel has one (after the storage ones)
    // Host-mapped buffers bound as storage buffers after `buffers` (a kernel that advances a parameter block); last so
    // that positional initialisation of the fields above stays valid.
    std::vector<const mapped_buffer*> mapped_storage{};
};

struct timing {
    double gpu_ns = std::numeric_limits<double>::quiet_NaN();  // NaN where the queue has no timestamps
    double wall_ns = 0;                                         // host time from submit to the fence signalling
};

// Packs values back to back, without padding, in the order given: pass 4-byte scalars, or structs laid out like the
// GLSL push-constant block.
template <class... T>
    requires(std::is_trivially_copyable_v<T> && ...)
std::vector<std::byte> pack_push_constants(const T&... values) {
    std::vector<std::byte> bytes((sizeof(T) + ... + std::size_t{0}));
    std::size_t offset = 0;
    ((std::memcpy(bytes.data() + offset, &values, sizeof(T)), offset += sizeof(T)), ...);
    return bytes;
}

// Dispatches run in order; each sees the memory writes of all earlier ones (a compute-to-compute barrier separates
// consecutive dispatches, and makes shader writes visible to uniform reads too, so a kernel may advance the
// parameter block others read) and of all earlier uploads and fills. With `repeat`, the whole list is recorded that
// many times over, one descriptor set per dispatch serving every repetition: a decode loop of many tokens in one
// command buffer. Timestamps bracket everything, and with `time_each_dispatch` follow every dispatch too
// (dispatch_ns()). The kernels and buffers must outlive the sequence, and a sequence must not run on two threads at
// once.
class sequence {
public:
    sequence() = default;
    sequence(context& ctx, std::vector<dispatch> dispatches, std::uint32_t repeat = 1, bool time_each_dispatch = false);
    sequence(sequence&&) noexcept = default;
    sequence& operator=(sequence&&) noexcept = default;
    sequence(const sequence&) = delete;
    sequence& operator=(const sequence&) = delete;
    ~sequence() = default;

    // Submits the recorded command buffer and waits for it, `repeat` times; returns the fastest gpu_ns and the
    // fastest wall_ns over the repetitions (each minimum taken separately).
    timing run(std::uint32_t repeat = 1);
    // Submits each dispatch as its own command buffer and waits for it before submitting the next, for comparing
    // per-dispatch submission overhead with run(). gpu_ns spans from the first dispatch's start to the last one's end,
    // so it includes the idle gaps between submissions.
    timing run_each_submitted();
    // With time_each_dispatch, after run(): each dispatch's time in the last submission, in recording order (every
    // repetition's), from the end of the one before (or the start) to its end, barriers included. Empty where the
    // queue has no timestamps.
    std::vector<double> dispatch_ns() const;

    std::size_t dispatch_count() const noexcept { return dispatches_.size() * repeat_; }
    bool empty() const noexcept { return !command_pool_; }
    VkCommandBuffer operator*() const noexcept { return commands_; }

private:
    void record(VkCommandBuffer commands, std::size_t first, std::size_t last, bool open_timing, bool close_timing);
    // the start and the end, then one after each dispatch of the recording where time_each_ is set
    std::uint32_t query_count() const {
        return 2 + (time_each_ ? static_cast<std::uint32_t>(dispatches_.size() * repeat_) : 0u);
    }
    double gpu_time_ns() const;
    void require_contents(const char* operation) const;

    context* context_ = nullptr;
    std::vector<dispatch> dispatches_;
    std::uint32_t repeat_ = 1;
    bool time_each_ = false;
    detail::device_child<VkDescriptorPool> descriptor_pool_;
    std::vector<VkDescriptorSet> sets_;  // freed with descriptor_pool_
    detail::device_child<VkQueryPool> queries_;
    detail::device_child<VkCommandPool> command_pool_;
    VkCommandBuffer commands_ = VK_NULL_HANDLE;  // freed with command_pool_
    std::vector<VkCommandBuffer> each_commands_; // recorded on first use of run_each_submitted
    detail::device_child<VkFence> fence_;
};

inline sequence::sequence(context& ctx, std::vector<dispatch> dispatches, std::uint32_t repeat, bool time_each_dispatch)
    : context_(&ctx), dispatches_(std::move(dispatches)), repeat_(repeat), time_each_(time_each_dispatch) {
    const device_info& info = ctx.device();
    if (dispatches_.empty()) throw usage_error("vkfuse: a sequence needs at least one dispatch.");
    if (repeat == 0) throw usage_error("vkfuse: a sequence repeated 0 times; repeat must be at least 1.");

    // ---- Check every dispatch before creating anything ------------------------------------------------------------
    std::uint32_t descriptor_count = 0;
    for (std::size_t i = 0; i < dispatches_.size(); ++i) {
        const dispatch& d = dispatches_[i];
        const std::string where = "vkfuse: dispatch #" + std::to_string(i);
        if (!d.k || d.k->empty()) throw usage_error(where + " has no kernel (null or empty vkfuse::vulkan::kernel).");
        const std::string what = where + " of kernel " + detail::kernel_name(d.k->label());
        if (d.k->owner() != &ctx) throw usage_error(what + " uses a kernel built for another context.");
        for (const mapped_buffer* m : d.mapped_storage)
            if (!m || m->empty() || m->owner() != &ctx)
                throw usage_error(what + " binds a null or empty mapped buffer, or one of another context.");
        if (d.buffers.size() + d.mapped_storage.size() != d.k->binding_count())
            throw usage_error(what + " binds " + std::to_string(d.buffers.size() + d.mapped_storage.size()) +
                              " buffers, but the kernel has " +
                              std::to_string(d.k->binding_count()) + " bindings; pass one buffer per binding, in "
                              "binding order.");
        for (std::size_t b = 0; b < d.buffers.size(); ++b) {
            if (!d.buffers[b] || d.buffers[b]->empty())
                throw usage_error(what + " binds a null or empty buffer at binding " + std::to_string(b) + ".");
            if (d.buffers[b]->owner() != &ctx)
                throw usage_error(what + " binds a buffer of another context at binding " + std::to_string(b) + ".");
        }
        if (d.k->has_uniform_buffer() != (d.uniform != nullptr))
            throw usage_error(what + (d.uniform ? " passes a uniform buffer, but the kernel declares none."
                                                : " passes no uniform buffer, but the kernel declares one."));
        if (d.uniform && (d.uniform->empty() || d.uniform->owner() != &ctx))
            throw usage_error(what + " passes an empty uniform buffer or one of another context.");
        if (d.push_constants.size() != d.k->push_constant_bytes())
            throw usage_error(what + " passes " + std::to_string(d.push_constants.size()) +
                              " push-constant bytes, but the kernel declares " +
                              std::to_string(d.k->push_constant_bytes()) + ".");
        for (std::size_t axis = 0; axis < 3; ++axis) {
            if (d.groups[axis] > info.max_workgroup_count[axis])
                throw usage_error(what + " asks for " + std::to_string(d.groups[axis]) + " workgroups along axis " +
                                  std::to_string(axis) + "; " + info.name + " allows at most " +
                                  std::to_string(info.max_workgroup_count[axis]) + " (maxComputeWorkGroupCount).");
        }
        descriptor_count += d.k->binding_count();
    }

    const VkDevice device = ctx.vk_device();
    const detail::device_functions& fn = ctx.fn();
    const std::string doing = "building a sequence of " + std::to_string(dispatches_.size()) + " dispatches";
    const auto count = static_cast<std::uint32_t>(dispatches_.size());

    // ---- Descriptor sets: one per dispatch, written once ----------------------------------------------------------
    // A pool size with zero descriptors is invalid, so kernels without buffers still reserve one.
    std::uint32_t uniform_count = 0;
    for (const dispatch& d : dispatches_) uniform_count += d.uniform ? 1u : 0u;
    const std::array<VkDescriptorPoolSize, 2> pool_sizes{{
        {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, std::max(descriptor_count, 1u)},
        {VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER, std::max(uniform_count, 1u)},
    }};
    VkDescriptorPoolCreateInfo pool_info{};
    pool_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
    pool_info.maxSets = count;
    pool_info.poolSizeCount = static_cast<std::uint32_t>(pool_sizes.size());
    pool_info.pPoolSizes = pool_sizes.data();
    VkDescriptorPool descriptor_pool = VK_NULL_HANDLE;
    detail::check(fn.vkCreateDescriptorPool(device, &pool_info, nullptr, &descriptor_pool), "vkCreateDescriptorPool",
                  doing);
    descriptor_pool_ = {device, descriptor_pool, fn.vkDestroyDescriptorPool};

    std::vector<VkDescriptorSetLayout> layouts;
    for (const dispatch& d : dispatches_) layouts.push_back(d.k->set_layout());
    VkDescriptorSetAllocateInfo set_info{};
    set_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
    set_info.descriptorPool = descriptor_pool;
    set_info.descriptorSetCount = count;
    set_info.pSetLayouts = layouts.data();
    sets_.resize(dispatches_.size());
    detail::check(fn.vkAllocateDescriptorSets(device, &set_info, sets_.data()), "vkAllocateDescriptorSets", doing);

    std::vector<VkDescriptorBufferInfo> buffer_infos;
    buffer_infos.reserve(descriptor_count + uniform_count);  // the writes below point into it: it must not reallocate
    std::vector<VkWriteDescriptorSet> writes;
    auto write_set = [&](std::size_t i, std::size_t b, VkBuffer buffer, VkDescriptorType type) {
        buffer_infos.push_back({buffer, 0, VK_WHOLE_SIZE});
        VkWriteDescriptorSet write{};
        write.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
        write.dstSet = sets_[i];
        write.dstBinding = static_cast<std::uint32_t>(b);
        write.descriptorCount = 1;
        write.descriptorType = type;
        write.pBufferInfo = &buffer_infos.back();
        writes.push_back(write);
    };
    for (std::size_t i = 0; i < dispatches_.size(); ++i) {
        const dispatch& d = dispatches_[i];
        for (std::size_t b = 0; b < d.buffers.size(); ++b)
            write_set(i, b, **d.buffers[b], VK_DESCRIPTOR_TYPE_STORAGE_BUFFER);
        for (std::size_t m = 0; m < d.mapped_storage.size(); ++m)
            write_set(i, d.buffers.size() + m, **d.mapped_storage[m], VK_DESCRIPTOR_TYPE_STORAGE_BUFFER);
        if (d.uniform)
            write_set(i, d.buffers.size() + d.mapped_storage.size(), **d.uniform, VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER);
    }
    if (!writes.empty())
        fn.vkUpdateDescriptorSets(device, static_cast<std::uint32_t>(writes.size()), writes.data(), 0, nullptr);

    // ---- Timestamps, fence, command buffer ------------------------------------------------------------------------
    if (info.timestamps) {
        VkQueryPoolCreateInfo query_info{};
        query_info.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
        query_info.queryType = VK_QUERY_TYPE_TIMESTAMP;
        query_info.queryCount = query_count();
        VkQueryPool queries = VK_NULL_HANDLE;
        detail::check(fn.vkCreateQueryPool(device, &query_info, nullptr, &queries), "vkCreateQueryPool", doing);
        queries_ = {device, queries, fn.vkDestroyQueryPool};
    }

    VkFenceCreateInfo fence_info{};
    fence_info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    VkFence fence = VK_NULL_HANDLE;
    detail::check(fn.vkCreateFence(device, &fence_info, nullptr, &fence), "vkCreateFence", doing);
    fence_ = {device, fence, fn.vkDestroyFence};

    // A pool of its own: command pools must not be used from two threads at once, and sequences may be built on any.
    VkCommandPoolCreateInfo command_pool_info{};
    command_pool_info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    command_pool_info.queueFamilyIndex = ctx.queue_family();
    VkCommandPool command_pool = VK_NULL_HANDLE;
    detail::check(fn.vkCreateCommandPool(device, &command_pool_info, nullptr, &command_pool), "vkCreateCommandPool",
                  doing);
    command_pool_ = {device, command_pool, fn.vkDestroyCommandPool};

    VkCommandBufferAllocateInfo allocate{};
    allocate.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    allocate.commandPool = command_pool;
    allocate.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    allocate.commandBufferCount = 1;
    detail::check(fn.vkAllocateCommandBuffers(device, &allocate, &commands_), "vkAllocateCommandBuffers", doing);
    record(commands_, 0, dispatches_.size(), true, true);
}

// ---- Recording ------------------------------------------------------------------------------------------------------

inline void sequence::record(VkCommandBuffer commands, std::size_t first, std::size_t last, bool open_timing,
                             bool close_timing) {
    const detail::device_functions& fn = context_->fn();
    const std::string doing = "recording a sequence of " + std::to_string(dispatches_.size()) + " dispatches";
    VkCommandBufferBeginInfo begin{};
    begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    detail::check(fn.vkBeginCommandBuffer(commands, &begin), "vkBeginCommandBuffer", doing);

    if (open_timing && queries_) {
        fn.vkCmdResetQueryPool(commands, *queries_, 0, query_count());
        fn.vkCmdWriteTimestamp(commands, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, *queries_, 0);
    }

    // The first barrier orders this command buffer after earlier submissions (uploads, fills, other sequences or, in
    // run_each_submitted, the previous dispatch); the others order each dispatch after the one before it.
    VkMemoryBarrier leading{};
    leading.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    leading.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    leading.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_UNIFORM_READ_BIT;
    fn.vkCmdPipelineBarrier(commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &leading, 0, nullptr, 0, nullptr);
    VkMemoryBarrier between{};
    between.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    between.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    between.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_UNIFORM_READ_BIT;

    VkPipeline bound = VK_NULL_HANDLE;
    // the whole list `repeat_` times when recording all of it (run_each_submitted records one dispatch at a time)
    const std::size_t rounds = first == 0 && last == dispatches_.size() ? repeat_ : 1;
    for (std::size_t step = 0; step < rounds * (last - first); ++step) {
        const std::size_t i = first + step % (last - first);
        const dispatch& d = dispatches_[i];
        if (step != 0)
            fn.vkCmdPipelineBarrier(commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                    VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &between, 0, nullptr, 0, nullptr);
        if (**d.k != bound) {
            fn.vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE, **d.k);
            bound = **d.k;
        }
        fn.vkCmdBindDescriptorSets(commands, VK_PIPELINE_BIND_POINT_COMPUTE, d.k->pipeline_layout(), 0, 1, &sets_[i],
                                   0, nullptr);
        if (!d.push_constants.empty())
            fn.vkCmdPushConstants(commands, d.k->pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0,
                                  static_cast<std::uint32_t>(d.push_constants.size()), d.push_constants.data());
        fn.vkCmdDispatch(commands, d.groups[0], d.groups[1], d.groups[2]);
        if (time_each_ && queries_ && first == 0 && last == dispatches_.size())  // not run_each_submitted
            fn.vkCmdWriteTimestamp(commands, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, *queries_,
                                   static_cast<std::uint32_t>(2 + step));
    }

    if (close_timing && queries_)
        fn.vkCmdWriteTimestamp(commands, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, *queries_, 1);
    detail::check(fn.vkEndCommandBuffer(commands), "vkEndCommandBuffer", doing);
}

// ---- Running --------------------------------------------------------------------------------------------------------

inline void sequence::require_contents(const char* operation) const {
    if (empty())
        throw usage_error(std::string("vkfuse: ") + operation +
                          " on an empty vkfuse::vulkan::sequence (default-constructed or moved from).");
}

inline std::vector<double> sequence::dispatch_ns() const {
    if (!queries_ || !time_each_) return {};
    std::vector<std::uint64_t> ticks(query_count());
    detail::check(context_->fn().vkGetQueryPoolResults(context_->vk_device(), *queries_, 0, query_count(),
                                                       ticks.size() * sizeof(std::uint64_t), ticks.data(),
                                                       sizeof(std::uint64_t),
                                                       VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
                  "vkGetQueryPoolResults", "reading a sequence's per-dispatch timestamps");
    const std::uint32_t bits = context_->timestamp_valid_bits();
    const std::uint64_t mask = bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
    std::vector<double> out;
    for (std::size_t i = 2; i < ticks.size(); ++i)
        out.push_back(static_cast<double>((ticks[i] - ticks[i == 2 ? 0 : i - 1]) & mask) *
                      context_->device().timestamp_period_ns);
    return out;
}

inline double sequence::gpu_time_ns() const {
    if (!queries_) return std::numeric_limits<double>::quiet_NaN();
    std::array<std::uint64_t, 2> ticks{};
    detail::check(context_->fn().vkGetQueryPoolResults(context_->vk_device(), *queries_, 0, 2, sizeof(ticks),
                                                       ticks.data(), sizeof(std::uint64_t),
                                                       VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
                  "vkGetQueryPoolResults", "reading a sequence's timestamps");
    // Only the low timestampValidBits bits count; masking the difference survives one wrap-around of the counter.
    const std::uint32_t bits = context_->timestamp_valid_bits();
    const std::uint64_t mask = bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
    return static_cast<double>((ticks[1] - ticks[0]) & mask) * context_->device().timestamp_period_ns;
}

inline timing sequence::run(std::uint32_t repeat) {
    require_contents("run");
    if (repeat == 0) throw usage_error("vkfuse: sequence::run(0); repeat must be at least 1.");
    constexpr double infinity = std::numeric_limits<double>::infinity();
    timing best{queries_ ? infinity : std::numeric_limits<double>::quiet_NaN(), infinity};
    for (std::uint32_t r = 0; r < repeat; ++r) {
        const auto start = std::chrono::steady_clock::now();
        context_->submit_and_wait(commands_, *fence_, "running a sequence");
        const auto stop = std::chrono::steady_clock::now();
        best.wall_ns = std::min(best.wall_ns, std::chrono::duration<double, std::nano>(stop - start).count());
        if (queries_) best.gpu_ns = std::min(best.gpu_ns, gpu_time_ns());
    }
    return best;
}

inline timing sequence::run_each_submitted() {
    require_contents("run_each_submitted");
    if (repeat_ != 1)
        throw usage_error("vkfuse: run_each_submitted on a sequence recorded " + std::to_string(repeat_) +
                          " times over; it submits one list's dispatches one by one, so build it with repeat 1.");
    if (each_commands_.empty()) {
        std::vector<VkCommandBuffer> commands(dispatches_.size());
        VkCommandBufferAllocateInfo allocate{};
        allocate.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
        allocate.commandPool = *command_pool_;
        allocate.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        allocate.commandBufferCount = static_cast<std::uint32_t>(commands.size());
        detail::check(context_->fn().vkAllocateCommandBuffers(context_->vk_device(), &allocate, commands.data()),
                      "vkAllocateCommandBuffers", "preparing per-dispatch command buffers");
        const std::size_t n = commands.size();
        for (std::size_t i = 0; i < n; ++i) record(commands[i], i, i + 1, i == 0, i + 1 == n);
        each_commands_ = std::move(commands);
    }
    const auto start = std::chrono::steady_clock::now();
    for (VkCommandBuffer commands : each_commands_)
        context_->submit_and_wait(commands, *fence_, "running a sequence one dispatch per submission");
    const auto stop = std::chrono::steady_clock::now();
    return {gpu_time_ns(), std::chrono::duration<double, std::nano>(stop - start).count()};
}

} // namespace vkfuse::vulkan
