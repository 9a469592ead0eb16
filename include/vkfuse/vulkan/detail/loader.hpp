// vkfuse/vulkan/detail/loader.hpp — the Vulkan loader, opened at run time, and the function tables vkfuse calls through.
//
// vkfuse never calls a Vulkan prototype directly. The loader library is opened with dlopen on first use so that a
// machine without libvulkan still runs everything that needs no device, and a context on such a machine fails with a
// vkfuse::device_error that says what to install, instead of the program failing to start. Device-level functions come
// from vkGetDeviceProcAddr, which also skips the loader's per-call trampoline.
#pragma once

#include <vulkan/vulkan.h>

#include <string>

#if defined(_WIN32)
#    ifndef NOMINMAX
#        define NOMINMAX
#    endif
#    include <windows.h>
#else
#    include <dlfcn.h>
#endif

namespace vkfuse::vulkan::detail {

// ---------------------------------------------------------------------------------------------------------------------
// The loader library
// ---------------------------------------------------------------------------------------------------------------------

struct loader_library {
    PFN_vkGetInstanceProcAddr get_instance_proc_addr = nullptr;
    std::string failure;  // why no loader could be opened; empty on success
};

// Opened once per process and never closed: closing it while a static context is still being destroyed would unmap
// the code its destructor calls.
inline const loader_library& vulkan_loader() {
    static const loader_library library = [] {
        loader_library result;
#if defined(_WIN32)
        if (HMODULE module = LoadLibraryA("vulkan-1.dll")) {
            result.get_instance_proc_addr =
                reinterpret_cast<PFN_vkGetInstanceProcAddr>(GetProcAddress(module, "vkGetInstanceProcAddr"));
        }
        if (!result.get_instance_proc_addr) result.failure = "vulkan-1.dll could not be loaded";
#else
#    if defined(__APPLE__)
        const char* const names[] = {"libvulkan.1.dylib", "libvulkan.dylib", "libMoltenVK.dylib"};
#    else
        const char* const names[] = {"libvulkan.so.1", "libvulkan.so"};
#    endif
        for (const char* name : names) {
            void* handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
            if (!handle) {
                const char* why = dlerror();
                result.failure += std::string(result.failure.empty() ? "" : "; ") + (why ? why : name);
                continue;
            }
            result.get_instance_proc_addr =
                reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(handle, "vkGetInstanceProcAddr"));
            if (result.get_instance_proc_addr) {
                result.failure.clear();
                break;
            }
            result.failure += std::string(result.failure.empty() ? "" : "; ") + name + " has no vkGetInstanceProcAddr";
        }
#endif
        return result;
    }();
    return library;
}

// ---------------------------------------------------------------------------------------------------------------------
// Function tables
// ---------------------------------------------------------------------------------------------------------------------
// X-macro lists keep each table's members and its loading code from drifting apart.

#define VKFUSE_VK_GLOBAL_FUNCTIONS(X)                                                                                  \
    X(vkCreateInstance)                                                                                                \
    X(vkEnumerateInstanceVersion)                                                                                      \
    X(vkEnumerateInstanceExtensionProperties)                                                                          \
    X(vkEnumerateInstanceLayerProperties)

#define VKFUSE_VK_INSTANCE_FUNCTIONS(X)                                                                                \
    X(vkDestroyInstance)                                                                                               \
    X(vkEnumeratePhysicalDevices)                                                                                      \
    X(vkGetPhysicalDeviceProperties)                                                                                   \
    X(vkGetPhysicalDeviceProperties2)                                                                                  \
    X(vkGetPhysicalDeviceFeatures2)                                                                                    \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                                        \
    X(vkGetPhysicalDeviceMemoryProperties)                                                                             \
    X(vkEnumerateDeviceExtensionProperties)                                                                            \
    X(vkCreateDevice)                                                                                                  \
    X(vkGetDeviceProcAddr)

// Present only when VK_EXT_debug_utils was enabled.
#define VKFUSE_VK_DEBUG_FUNCTIONS(X)                                                                                   \
    X(vkCreateDebugUtilsMessengerEXT)                                                                                  \
    X(vkDestroyDebugUtilsMessengerEXT)

#define VKFUSE_VK_DEVICE_FUNCTIONS(X)                                                                                  \
    X(vkDestroyDevice)                                                                                                 \
    X(vkGetDeviceQueue)                                                                                                \
    X(vkDeviceWaitIdle)                                                                                                \
    X(vkQueueSubmit)                                                                                                   \
    X(vkCreateBuffer)                                                                                                  \
    X(vkDestroyBuffer)                                                                                                 \
    X(vkGetBufferMemoryRequirements)                                                                                   \
    X(vkAllocateMemory)                                                                                                \
    X(vkFreeMemory)                                                                                                    \
    X(vkBindBufferMemory)                                                                                              \
    X(vkMapMemory)                                                                                                     \
    X(vkCreateFence)                                                                                                   \
    X(vkDestroyFence)                                                                                                  \
    X(vkResetFences)                                                                                                   \
    X(vkWaitForFences)                                                                                                 \
    X(vkCreateCommandPool)                                                                                             \
    X(vkDestroyCommandPool)                                                                                            \
    X(vkAllocateCommandBuffers)                                                                                        \
    X(vkBeginCommandBuffer)                                                                                            \
    X(vkEndCommandBuffer)                                                                                              \
    X(vkCmdCopyBuffer)                                                                                                 \
    X(vkCmdFillBuffer)                                                                                                 \
    X(vkCmdPipelineBarrier)                                                                                            \
    X(vkCmdBindPipeline)                                                                                               \
    X(vkCmdBindDescriptorSets)                                                                                         \
    X(vkCmdPushConstants)                                                                                              \
    X(vkCmdDispatch)                                                                                                   \
    X(vkCmdResetQueryPool)                                                                                             \
    X(vkCmdWriteTimestamp)                                                                                             \
    X(vkCreateQueryPool)                                                                                               \
    X(vkDestroyQueryPool)                                                                                              \
    X(vkGetQueryPoolResults)                                                                                           \
    X(vkCreateShaderModule)                                                                                            \
    X(vkDestroyShaderModule)                                                                                           \
    X(vkCreateDescriptorSetLayout)                                                                                     \
    X(vkDestroyDescriptorSetLayout)                                                                                    \
    X(vkCreatePipelineLayout)                                                                                          \
    X(vkDestroyPipelineLayout)                                                                                         \
    X(vkCreateComputePipelines)                                                                                        \
    X(vkCreatePipelineCache)                                                                                           \
    X(vkDestroyPipelineCache)                                                                                          \
    X(vkGetPipelineCacheData)                                                                                          \
    X(vkDestroyPipeline)                                                                                               \
    X(vkCreateDescriptorPool)                                                                                          \
    X(vkDestroyDescriptorPool)                                                                                         \
    X(vkAllocateDescriptorSets)                                                                                        \
    X(vkUpdateDescriptorSets)

// Device functions of extensions vkfuse enables only where present and asked for: null where absent.
#define VKFUSE_VK_OPTIONAL_DEVICE_FUNCTIONS(X)                                                                         \
    X(vkGetPipelineExecutablePropertiesKHR)                                                                            \
    X(vkGetPipelineExecutableStatisticsKHR)

#define VKFUSE_VK_MEMBER(name) PFN_##name name = nullptr;

struct global_functions {
    VKFUSE_VK_GLOBAL_FUNCTIONS(VKFUSE_VK_MEMBER)
};

struct instance_functions {
    VKFUSE_VK_INSTANCE_FUNCTIONS(VKFUSE_VK_MEMBER)
    VKFUSE_VK_DEBUG_FUNCTIONS(VKFUSE_VK_MEMBER)
};

struct device_functions {
    VKFUSE_VK_DEVICE_FUNCTIONS(VKFUSE_VK_MEMBER)
    VKFUSE_VK_OPTIONAL_DEVICE_FUNCTIONS(VKFUSE_VK_MEMBER)
};

#undef VKFUSE_VK_MEMBER

// vkEnumerateInstanceVersion stays null on a Vulkan 1.0 loader; the caller treats that as "1.0".
inline global_functions load_global_functions(PFN_vkGetInstanceProcAddr gipa) {
    global_functions f;
#define VKFUSE_VK_LOAD(name) f.name = reinterpret_cast<PFN_##name>(gipa(nullptr, #name));
    VKFUSE_VK_GLOBAL_FUNCTIONS(VKFUSE_VK_LOAD)
#undef VKFUSE_VK_LOAD
    return f;
}

// Returns the name of the first required function that is missing, or nullptr.
inline const char* load_instance_functions(PFN_vkGetInstanceProcAddr gipa, VkInstance instance,
                                           instance_functions& f) {
    const char* missing = nullptr;
#define VKFUSE_VK_LOAD(name)                                                                                           \
    f.name = reinterpret_cast<PFN_##name>(gipa(instance, #name));                                                      \
    if (!f.name && !missing) missing = #name;
    VKFUSE_VK_INSTANCE_FUNCTIONS(VKFUSE_VK_LOAD)
#undef VKFUSE_VK_LOAD
#define VKFUSE_VK_LOAD(name) f.name = reinterpret_cast<PFN_##name>(gipa(instance, #name));
    VKFUSE_VK_DEBUG_FUNCTIONS(VKFUSE_VK_LOAD)
#undef VKFUSE_VK_LOAD
    return missing;
}

inline const char* load_device_functions(PFN_vkGetDeviceProcAddr gdpa, VkDevice device, device_functions& f) {
    const char* missing = nullptr;
#define VKFUSE_VK_LOAD(name)                                                                                           \
    f.name = reinterpret_cast<PFN_##name>(gdpa(device, #name));                                                        \
    if (!f.name && !missing) missing = #name;
    VKFUSE_VK_DEVICE_FUNCTIONS(VKFUSE_VK_LOAD)
#undef VKFUSE_VK_LOAD
#define VKFUSE_VK_LOAD(name) f.name = reinterpret_cast<PFN_##name>(gdpa(device, #name));
    VKFUSE_VK_OPTIONAL_DEVICE_FUNCTIONS(VKFUSE_VK_LOAD)
#undef VKFUSE_VK_LOAD
    return missing;
}

#undef VKFUSE_VK_GLOBAL_FUNCTIONS
#undef VKFUSE_VK_INSTANCE_FUNCTIONS
#undef VKFUSE_VK_DEBUG_FUNCTIONS
#undef VKFUSE_VK_DEVICE_FUNCTIONS
#undef VKFUSE_VK_OPTIONAL_DEVICE_FUNCTIONS

} // namespace vkfuse::vulkan::detail
