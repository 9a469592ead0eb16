// vkfuse/vulkan/detail/result.hpp — turning a failed VkResult into a vkfuse::vulkan_error a user can act on.
#pragma once

#include "vkfuse/core/error.hpp"

#include <vulkan/vulkan.h>

#include <string>
#include <string_view>

namespace vkfuse::vulkan::detail {

inline const char* result_name(VkResult result) noexcept {
    switch (result) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_EVENT_SET: return "VK_EVENT_SET";
    case VK_EVENT_RESET: return "VK_EVENT_RESET";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_UNKNOWN: return "VK_ERROR_UNKNOWN";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_EXTERNAL_HANDLE: return "VK_ERROR_INVALID_EXTERNAL_HANDLE";
    case VK_ERROR_FRAGMENTATION: return "VK_ERROR_FRAGMENTATION";
    case VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS: return "VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS";
    case VK_PIPELINE_COMPILE_REQUIRED: return "VK_PIPELINE_COMPILE_REQUIRED";
    case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
    default: return nullptr;
    }
}

inline std::string result_string(VkResult result) {
    if (const char* name = result_name(result)) return name;
    return "VkResult(" + std::to_string(static_cast<int>(result)) + ")";
}

// What a user can do about each failure; the call site adds what vkfuse was doing at the time.
inline std::string_view result_advice(VkResult result) noexcept {
    switch (result) {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
        return "The driver ran out of host memory; free memory in the process or use smaller problem sizes.";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        return "The device ran out of memory; destroy unused vkfuse::vulkan::buffer objects or use smaller sizes.";
    case VK_ERROR_DEVICE_LOST:
        return "The driver lost the device, usually after a shader ran too long or accessed memory out of bounds. "
               "The context is unusable; create a new one. Run with VKFUSE_VALIDATION=1 to look for the cause.";
    case VK_ERROR_INITIALIZATION_FAILED:
        return "The driver could not initialise; check `vulkaninfo --summary` and the driver installation.";
    case VK_ERROR_LAYER_NOT_PRESENT:
        return "A requested layer is missing; install the Khronos validation layer (Debian/Ubuntu: "
               "vulkan-validationlayers) or run without validation.";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
    case VK_ERROR_FEATURE_NOT_PRESENT:
        return "The driver lacks something vkfuse asked for; update the driver or choose another device with "
               "VKFUSE_DEVICE.";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
        return "No installed Vulkan driver supports the requested API version; install or update a driver "
               "(mesa-vulkan-drivers provides the CPU driver lavapipe).";
    case VK_ERROR_TOO_MANY_OBJECTS:
        return "The driver's limit on objects (often memory allocations) was reached; keep fewer buffers alive.";
    case VK_ERROR_OUT_OF_POOL_MEMORY:
    case VK_ERROR_FRAGMENTED_POOL:
        return "A descriptor pool was sized wrongly; this is a vkfuse bug, please report it.";
    case VK_ERROR_INVALID_SHADER_NV:
        return "The driver rejected the SPIR-V; run with VKFUSE_VALIDATION=1 and report the kernel's GLSL.";
    default:
        return "Run with VKFUSE_VALIDATION=1 for details from the validation layer.";
    }
}

inline std::string failure_message(VkResult result, std::string_view call, std::string_view doing) {
    std::string message = "vkfuse: ";
    message += call;
    message += " failed with ";
    message += result_string(result);
    if (!doing.empty()) {
        message += " while ";
        message += doing;
    }
    message += ". ";
    message += result_advice(result);
    return message;
}

// `doing` describes vkfuse's intent in words ("allocating 4096 bytes of device memory"), because the Vulkan call
// alone rarely tells a user which of their objects was involved.
inline void check(VkResult result, std::string_view call, std::string_view doing = {}) {
    if (result != VK_SUCCESS) throw vulkan_error(static_cast<int>(result), failure_message(result, call, doing));
}

} // namespace vkfuse::vulkan::detail
