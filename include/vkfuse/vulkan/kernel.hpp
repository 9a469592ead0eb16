// vkfuse/vulkan/kernel.hpp — one compute pipeline built from generated GLSL.
//
// Shader interface contract with the code generator:
//   * storage buffers at set 0, bindings 0 .. binding_count-1;
//   * an optional push-constant block of push_constant_bytes bytes;
//   * `layout(local_size_x_id = 0) in;` — specialization constant 0 is the workgroup size;
//   * `layout(constant_id = 1) const uint LANES = 32u;` — specialization constant 1 is the lanes per row.
#pragma once

#include "vkfuse/core/error.hpp"
#include "vkfuse/vulkan/context.hpp"
#include "vkfuse/vulkan/detail/handle.hpp"
#include "vkfuse/vulkan/detail/result.hpp"
#include "vkfuse/vulkan/shader_compiler.hpp"

#include <vulkan/vulkan.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vkfuse::vulkan {

struct kernel_spec {
    std::string_view label;                // e.g. "fused_ffn/k0"; names the kernel in every error
    std::string_view glsl;                 // GLSL 450 compute shader
    std::uint32_t binding_count = 0;       // storage buffers at set 0, bindings 0 .. binding_count-1
    bool uniform_buffer = false;           // and a uniform buffer at binding `binding_count`
    std::uint32_t push_constant_bytes = 0; // 0 = no push-constant range
    std::uint32_t workgroup_size = 0;      // specialization constant 0 (local_size_x)
    std::uint32_t lanes = 1;               // specialization constant 1 (uint LANES)
    std::span<const std::uint32_t> more_constants = {};  // specialization constants 2, 3, ...
    std::string_view preamble = {};        // inserted after #version, e.g. "#define VKFUSE_SUBGROUP_ARITHMETIC 1\n"
};

class kernel {
public:
    kernel() = default;
    kernel(context& ctx, const kernel_spec& spec);
    kernel(kernel&&) noexcept = default;
    kernel& operator=(kernel&&) noexcept = default;
    kernel(const kernel&) = delete;
    kernel& operator=(const kernel&) = delete;
    ~kernel() = default;

    bool empty() const noexcept { return !pipeline_; }
    VkPipeline operator*() const noexcept { return *pipeline_; }
    VkPipelineLayout pipeline_layout() const noexcept { return *pipeline_layout_; }
    VkDescriptorSetLayout set_layout() const noexcept { return *set_layout_; }
    context* owner() const noexcept { return context_; }

    const std::string& label() const noexcept { return label_; }
    std::uint32_t binding_count() const noexcept { return binding_count_; }
    bool has_uniform_buffer() const noexcept { return uniform_buffer_; }
    std::uint32_t push_constant_bytes() const noexcept { return push_constant_bytes_; }
    std::uint32_t workgroup_size() const noexcept { return workgroup_size_; }
    std::uint32_t lanes() const noexcept { return lanes_; }

private:
    context* context_ = nullptr;
    std::string label_;
    std::uint32_t binding_count_ = 0, push_constant_bytes_ = 0, workgroup_size_ = 0, lanes_ = 0;
    bool uniform_buffer_ = false;
    detail::device_child<VkDescriptorSetLayout> set_layout_;
    detail::device_child<VkPipelineLayout> pipeline_layout_;
    detail::device_child<VkPipeline> pipeline_;
};

inline kernel::kernel(context& ctx, const kernel_spec& spec)
    : context_(&ctx), label_(spec.label), binding_count_(spec.binding_count),
      push_constant_bytes_(spec.push_constant_bytes), workgroup_size_(spec.workgroup_size), lanes_(spec.lanes),
      uniform_buffer_(spec.uniform_buffer) {
    const device_info& info = ctx.device();
    const std::string name = "vkfuse: kernel " + detail::kernel_name(spec.label);

    // ---- Limits, checked here so that the message names the kernel rather than a validation-layer VUID ------------
    if (spec.binding_count > info.max_storage_buffers_per_stage)
        throw usage_error(name + " uses " + std::to_string(spec.binding_count) + " storage buffers, but " + info.name +
                          " allows at most " + std::to_string(info.max_storage_buffers_per_stage) +
                          " per shader stage (maxPerStageDescriptorStorageBuffers); split the kernel.");
    if (spec.push_constant_bytes % 4 != 0 || spec.push_constant_bytes > info.max_push_constant_bytes)
        throw usage_error(name + " declares " + std::to_string(spec.push_constant_bytes) +
                          " push-constant bytes; the size must be a multiple of 4 and at most " +
                          std::to_string(info.max_push_constant_bytes) + " (maxPushConstantsSize) on " + info.name +
                          ".");
    if (spec.workgroup_size == 0 || spec.workgroup_size > info.max_workgroup_invocations ||
        spec.workgroup_size > info.max_workgroup_size[0])
        throw usage_error(name + " asks for a workgroup size of " + std::to_string(spec.workgroup_size) + "; " +
                          info.name + " supports 1 to " +
                          std::to_string(std::min(info.max_workgroup_invocations, info.max_workgroup_size[0])) + ".");
    if (spec.lanes == 0) throw usage_error(name + " asks for 0 lanes per row; use at least 1.");

    const VkDevice device = ctx.vk_device();
    const detail::device_functions& fn = ctx.fn();
    const std::string doing = "building kernel " + detail::kernel_name(spec.label);

    // ---- Layouts --------------------------------------------------------------------------------------------------
    std::vector<VkDescriptorSetLayoutBinding> bindings(spec.binding_count + (spec.uniform_buffer ? 1u : 0u));
    for (std::uint32_t i = 0; i < bindings.size(); ++i) {
        bindings[i].binding = i;
        bindings[i].descriptorType =
            i < spec.binding_count ? VK_DESCRIPTOR_TYPE_STORAGE_BUFFER : VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER;
        bindings[i].descriptorCount = 1;
        bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo set_info{};
    set_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
    set_info.bindingCount = static_cast<std::uint32_t>(bindings.size());
    set_info.pBindings = bindings.data();
    VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
    detail::check(fn.vkCreateDescriptorSetLayout(device, &set_info, nullptr, &set_layout),
                  "vkCreateDescriptorSetLayout", doing);
    set_layout_ = {device, set_layout, fn.vkDestroyDescriptorSetLayout};

    const VkPushConstantRange push_range{VK_SHADER_STAGE_COMPUTE_BIT, 0, spec.push_constant_bytes};
    VkPipelineLayoutCreateInfo layout_info{};
    layout_info.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
    layout_info.setLayoutCount = 1;
    layout_info.pSetLayouts = &set_layout;
    layout_info.pushConstantRangeCount = spec.push_constant_bytes > 0 ? 1u : 0u;
    layout_info.pPushConstantRanges = spec.push_constant_bytes > 0 ? &push_range : nullptr;
    VkPipelineLayout pipeline_layout = VK_NULL_HANDLE;
    detail::check(fn.vkCreatePipelineLayout(device, &layout_info, nullptr, &pipeline_layout),
                  "vkCreatePipelineLayout", doing);
    pipeline_layout_ = {device, pipeline_layout, fn.vkDestroyPipelineLayout};

    // ---- Shader and pipeline --------------------------------------------------------------------------------------
    const std::span<const std::uint32_t> code = ctx.spirv(spec.glsl, spec.preamble, spec.label);
    VkShaderModuleCreateInfo module_info{};
    module_info.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
    module_info.codeSize = code.size_bytes();
    module_info.pCode = code.data();
    VkShaderModule module = VK_NULL_HANDLE;
    detail::check(fn.vkCreateShaderModule(device, &module_info, nullptr, &module), "vkCreateShaderModule", doing);
    // The pipeline keeps what it needs; the module can go as soon as the pipeline exists.
    const detail::device_child<VkShaderModule> module_owner(device, module, fn.vkDestroyShaderModule);

    std::vector<std::uint32_t> constants{spec.workgroup_size, spec.lanes};
    constants.insert(constants.end(), spec.more_constants.begin(), spec.more_constants.end());
    std::vector<VkSpecializationMapEntry> entries;
    for (std::uint32_t id = 0; id < constants.size(); ++id)
        entries.push_back({id, id * static_cast<std::uint32_t>(sizeof(std::uint32_t)), sizeof(std::uint32_t)});
    VkSpecializationInfo specialization{};
    specialization.mapEntryCount = static_cast<std::uint32_t>(entries.size());
    specialization.pMapEntries = entries.data();
    specialization.dataSize = constants.size() * sizeof(std::uint32_t);
    specialization.pData = constants.data();

    VkComputePipelineCreateInfo pipeline_info{};
    pipeline_info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
    pipeline_info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    pipeline_info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    pipeline_info.stage.module = module;
    pipeline_info.stage.pName = "main";
    pipeline_info.stage.pSpecializationInfo = &specialization;
    pipeline_info.layout = pipeline_layout;
    // Through the context's pipeline cache, which keeps the driver's compiled code for the next process.
    pipeline_ = {device, ctx.create_compute_pipeline(pipeline_info, doing), fn.vkDestroyPipeline};
}

} // namespace vkfuse::vulkan
