// vkfuse/vulkan/context.hpp — one Vulkan device ready for compute: instance, chosen physical device, logical device,
// one compute queue, transfer machinery, and the caches: SPIR-V in memory and on disk, and a pipeline cache saved to
// disk (cache.hpp has the files).
//
// Every other vkfuse::vulkan object (buffer, kernel, sequence) refers to its context and must be destroyed before it.
#pragma once

#include "vkfuse/core/error.hpp"
#include "vkfuse/vulkan/cache.hpp"
#include "vkfuse/vulkan/detail/handle.hpp"
#include "vkfuse/vulkan/detail/loader.hpp"
#include "vkfuse/vulkan/detail/result.hpp"
#include "vkfuse/vulkan/shader_compiler.hpp"

#include <vulkan/vulkan.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vkfuse::vulkan {

// ---------------------------------------------------------------------------------------------------------------------
// Public description types
// ---------------------------------------------------------------------------------------------------------------------

struct context_options {
    // Enables VK_LAYER_KHRONOS_validation (with synchronization validation where the layer offers it) and records
    // messages of severity warning or error; read them with context::take_validation_messages(). The environment
    // variable VKFUSE_VALIDATION=1 turns this on regardless and also prints each message to stderr.
    bool validation = false;
    // An index ("0") or a case-insensitive part of a device name. Empty: the VKFUSE_DEVICE environment variable, and
    // if that is empty too, the first discrete GPU, else integrated, else virtual, else CPU device. (The initialiser
    // keeps GCC's -Wmissing-field-initializers quiet for designated initialisers that leave it out.)
    std::string device = {};
    // Where SPIR-V and the pipeline cache are kept between processes (cache.hpp). Unset: $VKFUSE_CACHE_DIR, else
    // $XDG_CACHE_HOME/vkfuse, else $HOME/.cache/vkfuse. Empty, "0" or "off": no disk cache and no pipeline cache.
    // The initialiser keeps GCC's -Wmissing-field-initializers quiet for designated initialisers that leave it out.
    std::optional<std::string> cache_directory = std::nullopt;
    // The bytes of device memory programs may take (device_info::memory_bytes is at most this). Unset: the environment
    // variable VKFUSE_MEMORY_BUDGET (a number of bytes), else the device's largest device-local heap. A program whose
    // buffers need more is refused before it allocates any: a way to keep a model within part of a GPU, and to test
    // the refusal on a device of any size.
    std::optional<std::uint64_t> memory_budget = std::nullopt;
    // Keep what the driver says of each compiled pipeline (VK_KHR_pipeline_executable_properties: registers, shared
    // memory, ...), read by context::pipeline_statistics, where the device offers it; also when the environment
    // variable VKFUSE_PIPELINE_STATISTICS is 1. Off by default: some drivers compile differently when asked.
    bool pipeline_statistics = false;
};

struct device_info {
    std::string name, driver_name, driver_info;
    std::uint32_t vendor_id = 0, device_id = 0, api_version = 0, driver_version = 0;
    bool discrete = false;
    std::string type;  // "discrete GPU", "integrated GPU", "virtual GPU", "CPU" or "other"
    std::uint32_t subgroup_size = 0;
    bool subgroup_arithmetic = false;  // subgroup arithmetic operations are supported in compute shaders
    bool subgroup_shuffle = false;     // and subgroup shuffles
    std::uint32_t max_workgroup_invocations = 0, max_shared_memory_bytes = 0, max_storage_buffers_per_stage = 0;
    std::uint64_t max_storage_buffer_range = 0;  // the most bytes one shader binding can address
    std::uint64_t max_allocation_bytes = 0;      // the largest single memory allocation (maxMemoryAllocationSize)
    // Device memory a program may take: the largest device-local heap (any heap on a device without one), or the
    // context's memory budget where that is smaller (context_options::memory_budget, VKFUSE_MEMORY_BUDGET).
    std::uint64_t memory_bytes = 0;
    bool storage_16bit = false;  // storageBuffer16BitAccess: 16-bit values in storage buffers (enabled when present)
    bool storage_8bit = false;   // storageBuffer8BitAccess (Vulkan 1.2): 8-bit values in storage buffers (enabled)
    std::uint32_t max_push_constant_bytes = 0;
    double timestamp_period_ns = 0;
    bool timestamps = false;  // the compute queue supports timestamps
    std::array<std::uint32_t, 3> max_workgroup_size{};
    std::array<std::uint32_t, 3> max_workgroup_count{};
    std::array<std::uint8_t, VK_UUID_SIZE> pipeline_cache_uuid{};  // identifies the driver build's pipeline caches
    // Multiprocessors (NVIDIA's SMs, AMD's compute units) where the driver says, through VK_NV_shader_sm_builtins or
    // VK_AMD_shader_core_properties; a CPU device's hardware threads; 0 where unknown. A persistent program
    // launches a few workgroups per unit.
    std::uint32_t compute_units = 0;
    // VK_KHR_shader_clock's device clock (enabled when present): a persistent program can time its work items.
    bool shader_device_clock = false;
    // VK_KHR_pipeline_executable_properties enabled (context_options::pipeline_statistics, where the device has it).
    bool pipeline_statistics = false;

    std::string summary() const;
};

namespace detail {

// ---------------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------------

inline std::string version_string(std::uint32_t version) {
    return std::to_string(VK_API_VERSION_MAJOR(version)) + "." + std::to_string(VK_API_VERSION_MINOR(version)) + "." +
           std::to_string(VK_API_VERSION_PATCH(version));
}

// Vendors pack driverVersion differently; NVIDIA's scheme is the one common enough to be worth decoding.
inline std::string driver_version_string(std::uint32_t vendor_id, std::uint32_t version) {
    if (vendor_id == 0x10de)
        return std::to_string((version >> 22) & 0x3ffu) + "." + std::to_string((version >> 14) & 0xffu) + "." +
               std::to_string((version >> 6) & 0xffu);
    return version_string(version);
}

inline const char* device_type_name(VkPhysicalDeviceType type) noexcept {
    switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

// Lower is preferred when the user names no device.
inline int device_type_rank(VkPhysicalDeviceType type) noexcept {
    switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

inline std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

inline std::string environment(const char* name) {
    const char* value = std::getenv(name);
    return value ? std::string(value) : std::string();
}

inline bool environment_flag(const char* name) {
    const std::string value = environment(name);
    return !value.empty() && value != "0";
}

inline std::uint32_t min_version(std::uint32_t a, std::uint32_t b) noexcept {
    const auto major_minor = [](std::uint32_t v) {
        return VK_MAKE_API_VERSION(0, VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), 0);
    };
    return std::min(major_minor(a), major_minor(b));
}

// The two-call enumeration idiom, repeated while the driver reports VK_INCOMPLETE because the list grew in between.
template <class T, class Call>
std::vector<T> enumerate(Call&& call, std::string_view call_name, std::string_view doing) {
    std::vector<T> items;
    VkResult result = VK_INCOMPLETE;
    while (result == VK_INCOMPLETE) {
        std::uint32_t count = 0;
        check(call(&count, static_cast<T*>(nullptr)), call_name, doing);
        items.resize(count);
        result = call(&count, items.data());
        items.resize(count);
    }
    check(result, call_name, doing);
    return items;
}

inline bool has_extension(const std::vector<VkExtensionProperties>& list, const char* name) {
    return std::any_of(list.begin(), list.end(),
                       [&](const VkExtensionProperties& e) { return std::strcmp(e.extensionName, name) == 0; });
}

struct message_log {
    std::mutex mutex;
    std::vector<std::string> messages;
    bool echo_to_stderr = false;
};

inline VKAPI_ATTR VkBool32 VKAPI_CALL record_debug_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                           VkDebugUtilsMessageTypeFlagsEXT,
                                                           const VkDebugUtilsMessengerCallbackDataEXT* data,
                                                           void* user) {
    auto* log = static_cast<message_log*>(user);
    std::string text = (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error: " : "warning: ";
    text += (data && data->pMessage) ? data->pMessage : "(no message)";
    std::lock_guard lock(log->mutex);
    if (log->echo_to_stderr) std::fprintf(stderr, "vkfuse validation %s\n", text.c_str());
    log->messages.push_back(std::move(text));
    return VK_FALSE;  // never abort the call: vkfuse wants to see what happens next, like a release build would
}

inline VkDebugUtilsMessengerCreateInfoEXT messenger_create_info(message_log* log) noexcept {
    VkDebugUtilsMessengerCreateInfoEXT info{};
    info.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
    info.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    info.pfnUserCallback = record_debug_message;
    info.pUserData = log;
    return info;
}

// A Vulkan buffer with its own memory; `mapped` is set for host-visible buffers created with mapping requested.
struct raw_buffer {
    device_child<VkBuffer> buffer;
    device_child<VkDeviceMemory> memory;
    void* mapped = nullptr;
    VkDeviceSize capacity = 0;
};

// ---------------------------------------------------------------------------------------------------------------------
// Instance creation, shared by context and context::list_devices
// ---------------------------------------------------------------------------------------------------------------------

struct instance_bundle {
    global_functions global;
    instance_functions fn;
    unique_root<VkInstance> instance;
    std::uint32_t api_version = 0;  // what the instance was created with, major.minor only
};

inline std::string no_driver_advice() {
    std::string advice =
        "Install a Vulkan driver: your GPU vendor's driver, or Mesa's CPU driver lavapipe (Debian/Ubuntu: apt install "
        "mesa-vulkan-drivers). `vulkaninfo --summary` shows what the Vulkan loader sees.";
    std::string restricting;
    for (const char* variable : {"VK_DRIVER_FILES", "VK_ICD_FILENAMES"}) {
        const std::string value = environment(variable);
        if (!value.empty()) restricting += std::string(restricting.empty() ? "" : ", ") + variable + "=\"" + value + "\"";
    }
    if (!restricting.empty())
        advice += " Note: " + restricting +
                  " limits the loader to the listed driver manifests; unset it or point it at an existing ICD json "
                  "file.";
    advice += " If a device exists but vkfuse is told to skip it, check VKFUSE_DEVICE.";
    return advice;
}

inline std::string validation_layer_advice() {
    return "Install the Khronos validation layer (Debian/Ubuntu: apt install vulkan-validationlayers; elsewhere the "
           "Vulkan SDK), or run without validation (context_options::validation = false and VKFUSE_VALIDATION unset).";
}

// Creates an instance with the highest Vulkan version up to 1.3 that the loader offers. With `validation`, the
// messenger create info is chained into instance creation so that messages from vkCreateInstance and
// vkDestroyInstance themselves reach `log` too.
inline instance_bundle create_instance(bool validation, message_log* log) {
    const loader_library& loader = vulkan_loader();
    if (!loader.get_instance_proc_addr)
        throw device_error("vkfuse: the Vulkan loader could not be loaded (" + loader.failure +
                           "). Install it (Debian/Ubuntu: apt install libvulkan1) together with a driver, e.g. "
                           "mesa-vulkan-drivers for the CPU driver lavapipe.");

    instance_bundle bundle;
    bundle.global = load_global_functions(loader.get_instance_proc_addr);
    if (!bundle.global.vkCreateInstance || !bundle.global.vkEnumerateInstanceExtensionProperties ||
        !bundle.global.vkEnumerateInstanceLayerProperties)
        throw device_error("vkfuse: the Vulkan loader is incomplete (vkCreateInstance or the enumeration functions "
                           "are missing); reinstall libvulkan1.");

    std::uint32_t loader_version = VK_API_VERSION_1_0;
    if (bundle.global.vkEnumerateInstanceVersion)
        check(bundle.global.vkEnumerateInstanceVersion(&loader_version), "vkEnumerateInstanceVersion",
              "asking the loader for its Vulkan version");
    if (min_version(loader_version, VK_API_VERSION_1_1) < VK_API_VERSION_1_1)
        throw device_error("vkfuse: the Vulkan loader only offers Vulkan " + version_string(loader_version) +
                           "; vkfuse needs Vulkan 1.1 or later. Update libvulkan1 (or the Vulkan SDK).");
    bundle.api_version = min_version(loader_version, VK_API_VERSION_1_3);

    const auto& g = bundle.global;
    const auto extensions = enumerate<VkExtensionProperties>(
        [&](std::uint32_t* n, VkExtensionProperties* p) { return g.vkEnumerateInstanceExtensionProperties(nullptr, n, p); },
        "vkEnumerateInstanceExtensionProperties", "listing instance extensions");

    std::vector<const char*> enabled_extensions, enabled_layers;
    VkInstanceCreateFlags flags = 0;
    if (has_extension(extensions, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        // Without it the loader hides portability drivers such as MoltenVK.
        enabled_extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }

    constexpr const char* validation_layer = "VK_LAYER_KHRONOS_validation";
    VkDebugUtilsMessengerCreateInfoEXT messenger_info{};
    VkValidationFeaturesEXT features{};
    const VkValidationFeatureEnableEXT synchronization = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    const void* next = nullptr;
    if (validation) {
        const auto layers = enumerate<VkLayerProperties>(
            [&](std::uint32_t* n, VkLayerProperties* p) { return g.vkEnumerateInstanceLayerProperties(n, p); },
            "vkEnumerateInstanceLayerProperties", "listing instance layers");
        const bool present = std::any_of(layers.begin(), layers.end(), [&](const VkLayerProperties& l) {
            return std::strcmp(l.layerName, validation_layer) == 0;
        });
        if (!present)
            throw device_error(std::string("vkfuse: validation was requested but ") + validation_layer +
                               " is not installed. " + validation_layer_advice());
        enabled_layers.push_back(validation_layer);

        const auto layer_extensions = enumerate<VkExtensionProperties>(
            [&](std::uint32_t* n, VkExtensionProperties* p) {
                return g.vkEnumerateInstanceExtensionProperties(validation_layer, n, p);
            },
            "vkEnumerateInstanceExtensionProperties", "listing the validation layer's extensions");
        if (!has_extension(extensions, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) &&
            !has_extension(layer_extensions, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
            throw device_error("vkfuse: validation was requested but VK_EXT_debug_utils, needed to collect the "
                               "messages, is unavailable. " + validation_layer_advice());
        enabled_extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);

        messenger_info = messenger_create_info(log);
        next = &messenger_info;

        // Synchronization validation is what catches a missing barrier between fused kernels, the bug this runtime
        // is most likely to have.
        if (has_extension(layer_extensions, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
            enabled_extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
            features.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT;
            features.pNext = next;
            features.enabledValidationFeatureCount = 1;
            features.pEnabledValidationFeatures = &synchronization;
            next = &features;
        }
    }

    VkApplicationInfo app{};
    app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
    app.pApplicationName = "vkfuse";
    app.pEngineName = "vkfuse";
    app.apiVersion = bundle.api_version;

    VkInstanceCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
    info.pNext = next;
    info.flags = flags;
    info.pApplicationInfo = &app;
    info.enabledLayerCount = static_cast<std::uint32_t>(enabled_layers.size());
    info.ppEnabledLayerNames = enabled_layers.data();
    info.enabledExtensionCount = static_cast<std::uint32_t>(enabled_extensions.size());
    info.ppEnabledExtensionNames = enabled_extensions.data();

    VkInstance instance = VK_NULL_HANDLE;
    const VkResult result = g.vkCreateInstance(&info, nullptr, &instance);
    if (result == VK_ERROR_INCOMPATIBLE_DRIVER)
        throw device_error("vkfuse: no Vulkan driver is installed or usable (vkCreateInstance returned "
                           "VK_ERROR_INCOMPATIBLE_DRIVER). " + no_driver_advice());
    if (result == VK_ERROR_LAYER_NOT_PRESENT)
        throw device_error("vkfuse: vkCreateInstance could not load the validation layer (VK_ERROR_LAYER_NOT_PRESENT). " +
                           validation_layer_advice());
    check(result, "vkCreateInstance", "creating the Vulkan instance");

    const char* missing = load_instance_functions(loader.get_instance_proc_addr, instance, bundle.fn);
    bundle.instance = unique_root<VkInstance>(instance, bundle.fn.vkDestroyInstance);
    if (missing)
        throw device_error(std::string("vkfuse: the Vulkan loader does not provide ") + missing +
                           "; update libvulkan1 (or the Vulkan SDK).");
    return bundle;
}

inline std::vector<VkPhysicalDevice> physical_devices(const instance_bundle& bundle) {
    return enumerate<VkPhysicalDevice>(
        [&](std::uint32_t* n, VkPhysicalDevice* p) { return bundle.fn.vkEnumeratePhysicalDevices(*bundle.instance, n, p); },
        "vkEnumeratePhysicalDevices", "listing Vulkan devices");
}

inline std::vector<std::string> describe_devices(const instance_bundle& bundle,
                                                 const std::vector<VkPhysicalDevice>& devices) {
    std::vector<std::string> lines;
    for (std::size_t i = 0; i < devices.size(); ++i) {
        VkPhysicalDeviceProperties properties{};
        bundle.fn.vkGetPhysicalDeviceProperties(devices[i], &properties);
        lines.push_back(std::to_string(i) + ": " + properties.deviceName + " (" +
                        device_type_name(properties.deviceType) + ")");
    }
    return lines;
}

inline std::string device_list_text(const std::vector<std::string>& lines) {
    if (lines.empty()) return "Available devices: none.";
    std::string text = "Available devices:";
    for (const std::string& line : lines) text += "\n  " + line;
    return text;
}

// The first queue family with compute; among those, one with timestamps, so that sequence timings work.
inline int compute_queue_family(const instance_functions& fn, VkPhysicalDevice device) {
    std::uint32_t count = 0;
    fn.vkGetPhysicalDeviceQueueFamilyProperties(device, &count, nullptr);
    std::vector<VkQueueFamilyProperties> families(count);
    fn.vkGetPhysicalDeviceQueueFamilyProperties(device, &count, families.data());
    int chosen = -1;
    for (std::uint32_t i = 0; i < count; ++i) {
        if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || families[i].queueCount == 0) continue;
        if (chosen < 0) chosen = static_cast<int>(i);
        if (families[i].timestampValidBits > 0 && families[static_cast<std::size_t>(chosen)].timestampValidBits == 0)
            chosen = static_cast<int>(i);
    }
    return chosen;
}

} // namespace detail

// ---------------------------------------------------------------------------------------------------------------------
// device_info
// ---------------------------------------------------------------------------------------------------------------------

inline std::string device_info::summary() const {
    std::string driver = driver_name.empty() ? detail::driver_version_string(vendor_id, driver_version)
                                             : driver_name + (driver_info.empty() ? "" : " " + driver_info);
    return name + " (" + type + ", driver " + driver + ", Vulkan " + detail::version_string(api_version) + ")";
}

// ---------------------------------------------------------------------------------------------------------------------
// context
// ---------------------------------------------------------------------------------------------------------------------

class context {
public:
    explicit context(context_options options = {});
    ~context();
    context(const context&) = delete;
    context& operator=(const context&) = delete;

    const device_info& device() const noexcept { return info_; }
    bool validation_enabled() const noexcept { return validation_; }
    // Validation messages (severity warning or error) recorded since the last call.
    std::vector<std::string> take_validation_messages();
    // Every device the loader reports, as "index: name (type)"; empty when there is no loader or driver.
    static std::vector<std::string> list_devices();

    // GLSL -> SPIR-V through glslang, cached in memory and on disk by (compiler, target, preamble, source). The span
    // stays valid as long as the context. Throws vkfuse::shader_error naming `label` and quoting the offending lines.
    std::span<const std::uint32_t> spirv(std::string_view glsl, std::string_view preamble = {},
                                         std::string_view label = {});
    std::size_t spirv_cache_size() const;  // shaders held in memory

    // What the caches did so far, and where the disk cache is (cache.hpp).
    cache_statistics cache_stats() const;
    // The context's pipeline cache; VK_NULL_HANDLE when there is no disk cache.
    VkPipelineCache vk_pipeline_cache() const noexcept { return *pipeline_cache_; }
    // vkCreateComputePipelines through the pipeline cache, counting what the cache gained. `info.pNext` may be set.
    VkPipeline create_compute_pipeline(VkComputePipelineCreateInfo info, std::string_view doing);
    // Writes the pipeline cache to disk if pipelines were added since it was loaded or last saved; the destructor
    // calls it. Returns whether a file was written; a failure is counted in cache_stats(), never thrown.
    bool save_pipeline_cache();
    // What the driver says of a compiled pipeline's code (registers, shared memory, ..., as each driver names them),
    // one entry per statistic of each executable it made. Needs context_options::pipeline_statistics on a device
    // that has VK_KHR_pipeline_executable_properties (device_info::pipeline_statistics); throws a usage_error else.
    struct pipeline_statistic {
        std::string name, description, value;
    };
    std::vector<pipeline_statistic> pipeline_statistics(VkPipeline pipeline) const;

    // ---- Raw access for the rest of the runtime and for users who need plain Vulkan --------------------------------
    VkInstance vk_instance() const noexcept { return *instance_.instance; }
    VkPhysicalDevice vk_physical_device() const noexcept { return physical_device_; }
    VkDevice vk_device() const noexcept { return *device_; }
    VkQueue vk_queue() const noexcept { return queue_; }
    std::uint32_t queue_family() const noexcept { return queue_family_; }
    // The API version in use: the lower of what the instance was created with and what the device supports.
    std::uint32_t api_version() const noexcept { return api_version_; }
    std::uint32_t timestamp_valid_bits() const noexcept { return timestamp_valid_bits_; }
    const detail::device_functions& fn() const noexcept { return fn_; }

    // A buffer with dedicated memory of a type that has all `required` and, where possible, all `preferred` flags.
    detail::raw_buffer create_raw_buffer(VkDeviceSize bytes, VkBufferUsageFlags usage, VkMemoryPropertyFlags required,
                                         VkMemoryPropertyFlags preferred, std::string_view purpose);

    // Synchronous transfers through the context's staging buffer. Each waits for all earlier work on the queue that
    // touches memory, and is visible to everything submitted later.
    // `at` is a byte offset into the device buffer (a multiple of 4 for fills).
    void copy_to_buffer(VkBuffer destination, std::span<const std::byte> source, VkDeviceSize at = 0);
    void copy_from_buffer(VkBuffer source, std::span<std::byte> destination, VkDeviceSize at = 0);
    void fill_buffer(VkBuffer destination, std::uint32_t word, VkDeviceSize at = 0, VkDeviceSize bytes = VK_WHOLE_SIZE);

    // Submits one command buffer to the compute queue and blocks until `fence` signals; the fence is reset first.
    void submit_and_wait(VkCommandBuffer commands, VkFence fence, std::string_view doing);

    // ---- Failures on purpose: what a failing device costs, testable on any device ------------------------------------
    // From now on, the `allocation`-th device memory allocation (1: the next) fails once with
    // VK_ERROR_OUT_OF_DEVICE_MEMORY, and the `submission`-th queue submission and every one after it fail with
    // VK_ERROR_DEVICE_LOST, as a lost device does (and, like one, it stays lost); 0 disarms that kind. Each failure
    // takes the path a real one takes: a vkfuse::vulkan_error naming the call, the result and what to do.
    struct injected_failures {
        std::uint32_t allocation = 0, submission = 0;
    };
    void inject_failures(injected_failures failures) {
        allocations_to_failure_ = failures.allocation;
        submissions_to_loss_ = failures.submission;
    }

private:
    void select_device(const std::string& requested, bool from_environment,
                       const std::vector<VkPhysicalDevice>& devices);
    void read_device_info();
    void read_compute_units(const std::vector<VkExtensionProperties>& extensions);
    void create_device();
    std::uint32_t memory_type(std::uint32_t allowed_types, VkMemoryPropertyFlags required,
                              VkMemoryPropertyFlags preferred, std::string_view purpose) const;
    void ensure_staging(VkDeviceSize bytes);
    template <class Record>
    void transfer(Record&& record, std::string_view doing);
    void open_caches(const std::optional<std::string>& requested);
    bool load_spirv(const std::string& key, std::vector<std::uint32_t>& words);
    void store_spirv(const std::string& key, std::span<const std::uint32_t> words);

    // Declared first so that it outlives the instance: the layer reports during vkDestroyInstance as well.
    detail::message_log log_;
    bool validation_ = false;
    detail::instance_bundle instance_;
    detail::unique_child<VkInstance, VkDebugUtilsMessengerEXT> messenger_;
    VkPhysicalDevice physical_device_ = VK_NULL_HANDLE;
    VkPhysicalDeviceMemoryProperties memory_properties_{};
    std::uint32_t api_version_ = 0;
    std::uint32_t queue_family_ = 0;
    std::uint32_t timestamp_valid_bits_ = 0;
    bool portability_subset_ = false;
    bool maintenance4_ = false;
    bool executable_properties_ = false;  // the device offers VK_KHR_pipeline_executable_properties
    // inject_failures: allocations and submissions left before the injected one (0: none armed)
    std::atomic<std::uint32_t> allocations_to_failure_{0}, submissions_to_loss_{0};
    bool lost_ = false;  // an injected device loss happened: every later submission fails too
    std::uint32_t spirv_api_version_ = 0;  // the Vulkan version glslang targets; see read_device_info()
    device_info info_;

    detail::device_functions fn_;
    detail::unique_root<VkDevice> device_;
    VkQueue queue_ = VK_NULL_HANDLE;
    std::mutex queue_mutex_;  // vkQueueSubmit requires external synchronisation of the queue

    // Transfers share one command buffer, fence and staging buffer; transfer_mutex_ serialises their use.
    std::mutex transfer_mutex_;
    detail::device_child<VkCommandPool> transfer_pool_;
    VkCommandBuffer transfer_commands_ = VK_NULL_HANDLE;
    detail::device_child<VkFence> transfer_fence_;
    detail::raw_buffer staging_;

    // Node-based, so spans into the stored vectors survive rehashing. The key holds the full texts, so that a hash
    // collision can never return another shader's SPIR-V.
    struct key_hash {
        std::size_t operator()(const std::string& key) const noexcept {
            return static_cast<std::size_t>(detail::fnv1a(key));
        }
    };
    mutable std::mutex spirv_mutex_;
    std::unordered_map<std::string, std::vector<std::uint32_t>, key_hash> spirv_cache_;

    // The disk cache; set only once its directories exist.
    std::optional<std::filesystem::path> cache_root_;
    std::string compiler_identity_;  // part of every SPIR-V key
    mutable std::mutex cache_mutex_;  // guards cache_stats_ and the pipeline cache bookkeeping below
    cache_statistics cache_stats_;
    std::filesystem::path pipeline_file_;
    // Declared after device_, so destroyed before it. Internally synchronised (created without
    // VK_PIPELINE_CACHE_CREATE_EXTERNALLY_SYNCHRONIZED_BIT): kernels may be built on several threads at once.
    detail::device_child<VkPipelineCache> pipeline_cache_;
    std::size_t pipelines_since_save_ = 0;  // created and not reported as cache hits
    std::uint64_t saved_data_hash_ = 0;     // of the data loaded or last written, to skip rewriting the same bytes
    std::size_t saved_data_size_ = 0;
    std::mutex save_mutex_;  // one save at a time
};

// Large transfers go through the staging buffer in pieces of this size, so that staging never doubles the memory
// footprint of a big buffer.
inline constexpr VkDeviceSize staging_chunk_bytes = VkDeviceSize{64} << 20;

inline context::context(context_options options) {
    const bool environment_validation = detail::environment_flag("VKFUSE_VALIDATION");
    validation_ = options.validation || environment_validation;
    log_.echo_to_stderr = environment_validation;

    instance_ = detail::create_instance(validation_, &log_);
    if (validation_) {
        if (!instance_.fn.vkCreateDebugUtilsMessengerEXT || !instance_.fn.vkDestroyDebugUtilsMessengerEXT)
            throw device_error("vkfuse: VK_EXT_debug_utils was enabled but its functions are missing. " +
                               detail::validation_layer_advice());
        const VkDebugUtilsMessengerCreateInfoEXT info = detail::messenger_create_info(&log_);
        VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
        detail::check(instance_.fn.vkCreateDebugUtilsMessengerEXT(vk_instance(), &info, nullptr, &messenger),
                      "vkCreateDebugUtilsMessengerEXT", "installing the validation message callback");
        messenger_ = {vk_instance(), messenger, instance_.fn.vkDestroyDebugUtilsMessengerEXT};
    }

    const std::vector<VkPhysicalDevice> devices = detail::physical_devices(instance_);
    if (devices.empty())
        throw device_error("vkfuse: no Vulkan device is available (the loader reports 0 physical devices). " +
                           detail::no_driver_advice());

    const bool from_environment = options.device.empty();
    const std::string requested = from_environment ? detail::environment("VKFUSE_DEVICE") : options.device;
    select_device(requested, from_environment, devices);
    read_device_info();
    std::optional<std::uint64_t> budget = options.memory_budget;
    if (!budget) {
        const std::string text = detail::environment("VKFUSE_MEMORY_BUDGET");
        if (!text.empty()) {
            std::uint64_t bytes = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), bytes);
            if (ec != std::errc{} || end != text.data() + text.size() || bytes == 0)
                throw usage_error("vkfuse: VKFUSE_MEMORY_BUDGET=\"" + text +
                                  "\" is not a positive number of bytes (like 8000000000 for 8 GB)");
            budget = bytes;
        }
    }
    if (budget) info_.memory_bytes = std::min(info_.memory_bytes, *budget);
    info_.pipeline_statistics =
        executable_properties_ && (options.pipeline_statistics || detail::environment("VKFUSE_PIPELINE_STATISTICS") == "1");
    create_device();
    open_caches(options.cache_directory);
}

inline context::~context() {
    // Objects still executing on the queue must not lose their memory under them.
    if (device_ && fn_.vkDeviceWaitIdle) fn_.vkDeviceWaitIdle(*device_);
    // A cache that cannot be saved costs the next start time, nothing more; a destructor must not throw for it.
    try {
        save_pipeline_cache();
    } catch (...) {
    }
}

inline std::vector<std::string> context::take_validation_messages() {
    std::lock_guard lock(log_.mutex);
    return std::exchange(log_.messages, {});
}

inline std::vector<std::string> context::list_devices() {
    try {
        detail::instance_bundle bundle = detail::create_instance(false, nullptr);
        return detail::describe_devices(bundle, detail::physical_devices(bundle));
    } catch (const vkfuse::error&) {
        // Used inside error messages; "no devices" is the useful answer when there is no loader or driver.
        return {};
    }
}

// ---- Device selection -----------------------------------------------------------------------------------------------

inline void context::select_device(const std::string& requested, bool from_environment,
                                   const std::vector<VkPhysicalDevice>& devices) {
    const auto& fn = instance_.fn;
    const auto usable = [&](VkPhysicalDevice device, std::string* why) {
        VkPhysicalDeviceProperties properties{};
        fn.vkGetPhysicalDeviceProperties(device, &properties);
        if (detail::min_version(properties.apiVersion, VK_API_VERSION_1_1) < VK_API_VERSION_1_1) {
            if (why) *why = "it supports only Vulkan " + detail::version_string(properties.apiVersion) + ", vkfuse needs 1.1";
            return false;
        }
        if (detail::compute_queue_family(fn, device) < 0) {
            if (why) *why = "it has no compute queue";
            return false;
        }
        return true;
    };
    const std::string source =
        from_environment ? "VKFUSE_DEVICE=\"" + requested + "\"" : "context_options::device = \"" + requested + "\"";
    const auto list = [&] { return detail::device_list_text(detail::describe_devices(instance_, devices)); };
    const std::string fix = "\nSet VKFUSE_DEVICE (or context_options::device) to an index or a case-insensitive part of "
                            "a name from this list, or leave both empty to choose automatically.";

    std::size_t chosen = devices.size();
    if (!requested.empty()) {
        const bool is_index = std::all_of(requested.begin(), requested.end(),
                                          [](unsigned char c) { return std::isdigit(c) != 0; });
        if (is_index) {
            const unsigned long index = std::strtoul(requested.c_str(), nullptr, 10);
            if (requested.size() < 10 && index < devices.size()) chosen = static_cast<std::size_t>(index);
        } else {
            const std::string needle = detail::lowercase(requested);
            for (std::size_t i = 0; i < devices.size() && chosen == devices.size(); ++i) {
                VkPhysicalDeviceProperties properties{};
                fn.vkGetPhysicalDeviceProperties(devices[i], &properties);
                if (detail::lowercase(properties.deviceName).find(needle) != std::string::npos) chosen = i;
            }
        }
        if (chosen == devices.size())
            throw device_error("vkfuse: " + source + " matches no Vulkan device. " + list() + fix);
        std::string why;
        if (!usable(devices[chosen], &why))
            throw device_error("vkfuse: " + source + " selects device " + std::to_string(chosen) +
                               ", which vkfuse cannot use: " + why + ". " + list() + fix);
    } else {
        int best_rank = std::numeric_limits<int>::max();
        for (std::size_t i = 0; i < devices.size(); ++i) {
            if (!usable(devices[i], nullptr)) continue;
            VkPhysicalDeviceProperties properties{};
            fn.vkGetPhysicalDeviceProperties(devices[i], &properties);
            const int rank = detail::device_type_rank(properties.deviceType);
            if (rank < best_rank) {
                best_rank = rank;
                chosen = i;
            }
        }
        if (chosen == devices.size())
            throw device_error("vkfuse: no Vulkan device supports Vulkan 1.1 with a compute queue. " + list() + "\n" +
                               detail::no_driver_advice());
    }
    physical_device_ = devices[chosen];
}

// How many multiprocessors run workgroups: vendors say so through their own extensions (querying their properties
// needs the extension only to be supported, not enabled).
inline void context::read_compute_units(const std::vector<VkExtensionProperties>& extensions) {
    const auto& fn = instance_.fn;
    VkPhysicalDeviceProperties2 properties{};
    properties.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
    if (detail::has_extension(extensions, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME)) {
        VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm{};
        sm.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV;
        properties.pNext = &sm;
        fn.vkGetPhysicalDeviceProperties2(physical_device_, &properties);
        info_.compute_units = sm.shaderSMCount;
    } else if (detail::has_extension(extensions, VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME)) {
        VkPhysicalDeviceShaderCorePropertiesAMD core{};
        core.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD;
        properties.pNext = &core;
        fn.vkGetPhysicalDeviceProperties2(physical_device_, &properties);
        info_.compute_units = core.shaderEngineCount * core.shaderArraysPerEngineCount * core.computeUnitsPerShaderArray;
    } else if (info_.type == "CPU") {
        info_.compute_units = std::max(1u, std::thread::hardware_concurrency());
    }
}

inline void context::read_device_info() {
    const auto& fn = instance_.fn;
    VkPhysicalDeviceProperties base{};
    fn.vkGetPhysicalDeviceProperties(physical_device_, &base);
    api_version_ = detail::min_version(instance_.api_version, base.apiVersion);

    VkPhysicalDeviceSubgroupProperties subgroup{};
    subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    VkPhysicalDeviceDriverProperties driver{};
    driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
    VkPhysicalDeviceMaintenance3Properties maintenance3{};  // Vulkan 1.1: the largest single allocation
    maintenance3.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES;
    VkPhysicalDeviceProperties2 properties{};
    properties.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
    properties.pNext = &subgroup;
    subgroup.pNext = &maintenance3;
    // Chaining a structure of a version the device does not support is invalid usage.
    if (api_version_ >= VK_API_VERSION_1_2) maintenance3.pNext = &driver;
    fn.vkGetPhysicalDeviceProperties2(physical_device_, &properties);

    const VkPhysicalDeviceLimits& limits = base.limits;
    info_.name = base.deviceName;
    if (api_version_ >= VK_API_VERSION_1_2) {
        info_.driver_name = driver.driverName;
        info_.driver_info = driver.driverInfo;
    }
    info_.vendor_id = base.vendorID;
    info_.device_id = base.deviceID;
    info_.api_version = base.apiVersion;
    info_.driver_version = base.driverVersion;
    info_.discrete = base.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    info_.type = detail::device_type_name(base.deviceType);
    info_.subgroup_size = subgroup.subgroupSize;
    const auto compute_has = [&](VkSubgroupFeatureFlags operation) {
        return (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (subgroup.supportedOperations & operation);
    };
    info_.subgroup_arithmetic = compute_has(VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    info_.subgroup_shuffle = compute_has(VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    info_.max_workgroup_invocations = limits.maxComputeWorkGroupInvocations;
    info_.max_shared_memory_bytes = limits.maxComputeSharedMemorySize;
    info_.max_storage_buffers_per_stage = limits.maxPerStageDescriptorStorageBuffers;
    info_.max_storage_buffer_range = limits.maxStorageBufferRange;
    info_.max_allocation_bytes = maintenance3.maxMemoryAllocationSize;
    info_.max_push_constant_bytes = limits.maxPushConstantsSize;
    info_.timestamp_period_ns = limits.timestampPeriod;
    std::copy(std::begin(base.pipelineCacheUUID), std::end(base.pipelineCacheUUID), info_.pipeline_cache_uuid.begin());
    for (int i = 0; i < 3; ++i) {
        info_.max_workgroup_size[static_cast<std::size_t>(i)] = limits.maxComputeWorkGroupSize[i];
        info_.max_workgroup_count[static_cast<std::size_t>(i)] = limits.maxComputeWorkGroupCount[i];
    }

    queue_family_ = static_cast<std::uint32_t>(detail::compute_queue_family(fn, physical_device_));
    std::uint32_t count = 0;
    fn.vkGetPhysicalDeviceQueueFamilyProperties(physical_device_, &count, nullptr);
    std::vector<VkQueueFamilyProperties> families(count);
    fn.vkGetPhysicalDeviceQueueFamilyProperties(physical_device_, &count, families.data());
    timestamp_valid_bits_ = families[queue_family_].timestampValidBits;
    info_.timestamps = timestamp_valid_bits_ > 0 && limits.timestampPeriod > 0;

    fn.vkGetPhysicalDeviceMemoryProperties(physical_device_, &memory_properties_);
    std::uint64_t any_heap = 0, device_local = 0;
    for (std::uint32_t i = 0; i < memory_properties_.memoryHeapCount; ++i) {
        const VkMemoryHeap& heap = memory_properties_.memoryHeaps[i];
        any_heap = std::max<std::uint64_t>(any_heap, heap.size);
        if (heap.flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) device_local = std::max<std::uint64_t>(device_local, heap.size);
    }
    info_.memory_bytes = device_local != 0 ? device_local : any_heap;

    const auto extensions = detail::enumerate<VkExtensionProperties>(
        [&](std::uint32_t* n, VkExtensionProperties* p) {
            return fn.vkEnumerateDeviceExtensionProperties(physical_device_, nullptr, n, p);
        },
        "vkEnumerateDeviceExtensionProperties", "listing device extensions");
    portability_subset_ = detail::has_extension(extensions, "VK_KHR_portability_subset");
    read_compute_units(extensions);
    if (detail::has_extension(extensions, VK_KHR_SHADER_CLOCK_EXTENSION_NAME)) {
        VkPhysicalDeviceShaderClockFeaturesKHR clock{};
        clock.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CLOCK_FEATURES_KHR;
        VkPhysicalDeviceFeatures2 features{};
        features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
        features.pNext = &clock;
        fn.vkGetPhysicalDeviceFeatures2(physical_device_, &features);
        info_.shader_device_clock = clock.shaderDeviceClock == VK_TRUE;
    }
    if (detail::has_extension(extensions, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME)) {
        VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR executable{};
        executable.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR;
        VkPhysicalDeviceFeatures2 features{};
        features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
        features.pNext = &executable;
        fn.vkGetPhysicalDeviceFeatures2(physical_device_, &features);
        executable_properties_ = executable.pipelineExecutableInfo == VK_TRUE;
    }

    // For Vulkan 1.3 glslang emits SPIR-V 1.6, which expresses local_size_x_id as the LocalSizeId execution mode, and
    // that needs the maintenance4 feature. It is mandatory in 1.3, but a device that lacks it still gets SPIR-V 1.5.
    spirv_api_version_ = api_version_;
    if (api_version_ >= VK_API_VERSION_1_3) {
        VkPhysicalDeviceVulkan13Features features13{};
        features13.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
        VkPhysicalDeviceFeatures2 features{};
        features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
        features.pNext = &features13;
        fn.vkGetPhysicalDeviceFeatures2(physical_device_, &features);
        maintenance4_ = features13.maintenance4 == VK_TRUE;
        if (!maintenance4_) spirv_api_version_ = VK_API_VERSION_1_2;
    }

    // Storage of 16- and 8-bit values (weights in f16 and in GGUF's blocks read natively; vkfuse/glsl/storage.hpp).
    // 16-bit storage is Vulkan 1.1; 8-bit storage is core from 1.2 (earlier it needs an extension we do not enable).
    VkPhysicalDevice16BitStorageFeatures storage16{};
    storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    VkPhysicalDevice8BitStorageFeatures storage8{};
    storage8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
    if (api_version_ >= VK_API_VERSION_1_2) storage16.pNext = &storage8;
    VkPhysicalDeviceFeatures2 storage_features{};
    storage_features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    storage_features.pNext = &storage16;
    fn.vkGetPhysicalDeviceFeatures2(physical_device_, &storage_features);
    info_.storage_16bit = storage16.storageBuffer16BitAccess == VK_TRUE;
    info_.storage_8bit = api_version_ >= VK_API_VERSION_1_2 && storage8.storageBuffer8BitAccess == VK_TRUE;
}

inline void context::create_device() {
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo queue_info{};
    queue_info.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    queue_info.queueFamilyIndex = queue_family_;
    queue_info.queueCount = 1;
    queue_info.pQueuePriorities = &priority;

    // The Vulkan spec requires enabling VK_KHR_portability_subset wherever a device offers it.
    const char* portability = "VK_KHR_portability_subset";
    VkPhysicalDeviceVulkan13Features features13{};
    features13.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
    features13.maintenance4 = VK_TRUE;

    // What the device has of 16- and 8-bit storage, enabled (read_device_info found it).
    VkPhysicalDevice8BitStorageFeatures storage8{};
    storage8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
    storage8.storageBuffer8BitAccess = info_.storage_8bit ? VK_TRUE : VK_FALSE;
    storage8.pNext = maintenance4_ ? &features13 : nullptr;
    VkPhysicalDevice16BitStorageFeatures storage16{};
    storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    storage16.storageBuffer16BitAccess = info_.storage_16bit ? VK_TRUE : VK_FALSE;
    storage16.pNext = api_version_ >= VK_API_VERSION_1_2 ? static_cast<void*>(&storage8)
                                                         : (maintenance4_ ? static_cast<void*>(&features13) : nullptr);

    // The shader clock, for timing a persistent program's work items (program_options::profile).
    VkPhysicalDeviceShaderClockFeaturesKHR clock{};
    clock.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CLOCK_FEATURES_KHR;
    clock.shaderDeviceClock = VK_TRUE;
    clock.pNext = storage16.pNext;
    if (info_.shader_device_clock) storage16.pNext = &clock;
    std::vector<const char*> extensions;
    if (portability_subset_) extensions.push_back(portability);
    if (info_.shader_device_clock) extensions.push_back(VK_KHR_SHADER_CLOCK_EXTENSION_NAME);
    // What the driver says of its compiled pipelines (context_options::pipeline_statistics).
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR executable{};
    executable.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR;
    executable.pipelineExecutableInfo = VK_TRUE;
    if (info_.pipeline_statistics) {
        executable.pNext = storage16.pNext;
        storage16.pNext = &executable;
        extensions.push_back(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    }

    VkDeviceCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
    info.pNext = &storage16;
    info.queueCreateInfoCount = 1;
    info.pQueueCreateInfos = &queue_info;
    info.enabledExtensionCount = static_cast<std::uint32_t>(extensions.size());
    info.ppEnabledExtensionNames = extensions.empty() ? nullptr : extensions.data();

    VkDevice device = VK_NULL_HANDLE;
    detail::check(instance_.fn.vkCreateDevice(physical_device_, &info, nullptr, &device), "vkCreateDevice",
                  "creating the logical device on " + info_.name);
    const char* missing = detail::load_device_functions(instance_.fn.vkGetDeviceProcAddr, device, fn_);
    if (!fn_.vkDestroyDevice) throw device_error("vkfuse: the driver of " + info_.name + " provides no vkDestroyDevice.");
    device_ = detail::unique_root<VkDevice>(device, fn_.vkDestroyDevice);
    if (missing)
        throw device_error(std::string("vkfuse: the driver of ") + info_.name + " does not provide " + missing +
                           "; update the driver.");
    fn_.vkGetDeviceQueue(device, queue_family_, 0, &queue_);

    VkCommandPoolCreateInfo pool_info{};
    pool_info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pool_info.queueFamilyIndex = queue_family_;
    VkCommandPool pool = VK_NULL_HANDLE;
    detail::check(fn_.vkCreateCommandPool(device, &pool_info, nullptr, &pool), "vkCreateCommandPool",
                  "creating the transfer command pool");
    transfer_pool_ = {device, pool, fn_.vkDestroyCommandPool};

    VkCommandBufferAllocateInfo allocate{};
    allocate.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    allocate.commandPool = pool;
    allocate.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    allocate.commandBufferCount = 1;
    detail::check(fn_.vkAllocateCommandBuffers(device, &allocate, &transfer_commands_), "vkAllocateCommandBuffers",
                  "allocating the transfer command buffer");

    VkFenceCreateInfo fence_info{};
    fence_info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    VkFence fence = VK_NULL_HANDLE;
    detail::check(fn_.vkCreateFence(device, &fence_info, nullptr, &fence), "vkCreateFence",
                  "creating the transfer fence");
    transfer_fence_ = {device, fence, fn_.vkDestroyFence};
}

// ---- Caches ---------------------------------------------------------------------------------------------------------

inline void context::open_caches(const std::optional<std::string>& requested) {
    compiler_identity_ = compiler_identity();
    detail::cache_location location = detail::locate_cache(requested);
    if (location.directory) {
        std::error_code error;
        // Absolute, so that a later change of the working directory cannot move the cache.
        std::filesystem::path root = std::filesystem::absolute(*location.directory, error);
        if (error) root = *location.directory;
        location.disabled_because = detail::prepare_cache_directory(root);
        if (location.disabled_because.empty()) cache_root_ = root;
    }
    cache_stats_.directory = cache_root_ ? cache_root_->string() : std::string();
    cache_stats_.disabled_because = location.disabled_because;
    if (!cache_root_) return;

    pipeline_file_ = *cache_root_ / "pipelines" /
                     detail::pipeline_file_name(info_.vendor_id, info_.device_id, info_.driver_version,
                                                info_.pipeline_cache_uuid);
    std::vector<std::byte> initial;
    if (const auto file = detail::read_cache_file(pipeline_file_, detail::pipeline_file_max_bytes)) {
        std::string why;
        if (auto data = detail::decode_pipeline_file(*file, info_.vendor_id, info_.device_id,
                                                     info_.pipeline_cache_uuid, why))
            initial = std::move(*data);
        else {
            cache_stats_.pipeline_cache_file_rejected = true;
            cache_stats_.last_problem = pipeline_file_.string() + " ignored: " + why;
        }
    }

    const VkDevice device = *device_;
    const auto create = [&](std::span<const std::byte> data) {
        VkPipelineCacheCreateInfo info{};
        info.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO;
        info.initialDataSize = data.size();
        info.pInitialData = data.empty() ? nullptr : data.data();
        VkPipelineCache cache = VK_NULL_HANDLE;
        const VkResult result = fn_.vkCreatePipelineCache(device, &info, nullptr, &cache);
        return result == VK_SUCCESS ? cache : VK_NULL_HANDLE;
    };
    VkPipelineCache cache = create(initial);
    if (!cache && !initial.empty()) {
        cache_stats_.last_problem = pipeline_file_.string() + " ignored: the driver refused it as initial data";
        cache_stats_.pipeline_cache_file_rejected = true;
        initial.clear();
        cache = create(initial);
    }
    if (!cache) {
        // Pipelines are still built, only not kept: not worth failing the context for.
        cache_stats_.last_problem = "vkCreatePipelineCache failed; pipelines are not cached";
        return;
    }
    pipeline_cache_ = {device, cache, fn_.vkDestroyPipelineCache};
    cache_stats_.pipeline_cache_bytes_loaded = initial.size();
    saved_data_hash_ = detail::fnv1a_bytes(initial);
    saved_data_size_ = initial.size();
}

inline cache_statistics context::cache_stats() const {
    std::lock_guard lock(cache_mutex_);
    return cache_stats_;
}

inline bool context::load_spirv(const std::string& key, std::vector<std::uint32_t>& words) {
    if (!cache_root_) return false;
    const std::filesystem::path path = *cache_root_ / "spirv" / detail::spirv_file_name(key);
    const auto file = detail::read_cache_file(path, detail::spirv_file_max_bytes);
    if (!file) return false;
    std::string why;
    auto decoded = detail::decode_spirv_file(*file, key, why);
    std::lock_guard lock(cache_mutex_);
    if (!decoded) {
        ++cache_stats_.spirv_files_rejected;
        cache_stats_.last_problem = path.string() + " ignored: " + why;
        return false;
    }
    words = std::move(*decoded);
    ++cache_stats_.spirv_from_disk;
    return true;
}

inline void context::store_spirv(const std::string& key, std::span<const std::uint32_t> words) {
    if (!cache_root_) return;
    const std::filesystem::path path = *cache_root_ / "spirv" / detail::spirv_file_name(key);
    std::string problem = detail::write_cache_file(path, detail::encode_spirv_file(key, words));
    std::lock_guard lock(cache_mutex_);
    if (!problem.empty()) {
        ++cache_stats_.write_failures;
        cache_stats_.last_problem = std::move(problem);
    } else {
        ++cache_stats_.spirv_files_written;
    }
}

inline std::span<const std::uint32_t> context::spirv(std::string_view glsl, std::string_view preamble,
                                                     std::string_view label) {
    std::string key =
        detail::spirv_cache_key(compiler_identity_, detail::glslang_target_for(spirv_api_version_).text, preamble, glsl);
    {
        std::lock_guard lock(spirv_mutex_);
        if (auto found = spirv_cache_.find(key); found != spirv_cache_.end()) {
            std::lock_guard stats_lock(cache_mutex_);
            ++cache_stats_.spirv_from_memory;
            return found->second;
        }
    }
    // Read or compiled without the lock, so that threads working on different kernels do not wait for each other.
    // Two threads missing the same shader at once both do the work; the first to insert wins, the files are equal.
    std::vector<std::uint32_t> words;
    if (!load_spirv(key, words)) {
        words = compile_glsl(glsl, preamble, label, spirv_api_version_);
        {
            std::lock_guard stats_lock(cache_mutex_);
            ++cache_stats_.spirv_compiled;
        }
        store_spirv(key, words);
    }
    std::lock_guard lock(spirv_mutex_);
    return spirv_cache_.emplace(std::move(key), std::move(words)).first->second;
}

inline std::size_t context::spirv_cache_size() const {
    std::lock_guard lock(spirv_mutex_);
    return spirv_cache_.size();
}

inline VkPipeline context::create_compute_pipeline(VkComputePipelineCreateInfo info, std::string_view doing) {
    // Creation feedback (core in 1.3) tells whether the pipeline came from the cache, so that a run that only found
    // what it loaded does not rewrite the file.
    VkPipelineCreationFeedback pipeline_feedback{}, stage_feedback{};
    VkPipelineCreationFeedbackCreateInfo feedback{};
    if (pipeline_cache_ && api_version_ >= VK_API_VERSION_1_3) {
        feedback.sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO;
        feedback.pNext = info.pNext;
        feedback.pPipelineCreationFeedback = &pipeline_feedback;
        feedback.pipelineStageCreationFeedbackCount = 1;
        feedback.pPipelineStageCreationFeedbacks = &stage_feedback;
        info.pNext = &feedback;
    }
    if (info_.pipeline_statistics) info.flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
    VkPipeline pipeline = VK_NULL_HANDLE;
    detail::check(fn_.vkCreateComputePipelines(*device_, *pipeline_cache_, 1, &info, nullptr, &pipeline),
                  "vkCreateComputePipelines", doing);
    const bool hit = (pipeline_feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT) &&
                     (pipeline_feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT);
    std::lock_guard lock(cache_mutex_);
    ++cache_stats_.pipelines_created;
    if (hit)
        ++cache_stats_.pipeline_cache_hits;
    else
        ++pipelines_since_save_;
    return pipeline;
}

inline std::vector<context::pipeline_statistic> context::pipeline_statistics(VkPipeline pipeline) const {
    if (!info_.pipeline_statistics || !fn_.vkGetPipelineExecutablePropertiesKHR ||
        !fn_.vkGetPipelineExecutableStatisticsKHR)
        throw usage_error("vkfuse: pipeline statistics need context_options::pipeline_statistics (or "
                          "VKFUSE_PIPELINE_STATISTICS=1) on a device with VK_KHR_pipeline_executable_properties; " +
                          info_.name + (executable_properties_ ? " has it, but it was not asked for." : " lacks it."));
    VkPipelineInfoKHR which{};
    which.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR;
    which.pipeline = pipeline;
    const auto executables = detail::enumerate<VkPipelineExecutablePropertiesKHR>(
        [&](std::uint32_t* n, VkPipelineExecutablePropertiesKHR* p) {
            if (p)
                for (std::uint32_t i = 0; i < *n; ++i) p[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR;
            return fn_.vkGetPipelineExecutablePropertiesKHR(*device_, &which, n, p);
        },
        "vkGetPipelineExecutablePropertiesKHR", "reading a pipeline's executables");
    std::vector<pipeline_statistic> out;
    for (std::uint32_t e = 0; e < executables.size(); ++e) {
        VkPipelineExecutableInfoKHR executable{};
        executable.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR;
        executable.pipeline = pipeline;
        executable.executableIndex = e;
        const auto statistics = detail::enumerate<VkPipelineExecutableStatisticKHR>(
            [&](std::uint32_t* n, VkPipelineExecutableStatisticKHR* p) {
                if (p)
                    for (std::uint32_t i = 0; i < *n; ++i) p[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
                return fn_.vkGetPipelineExecutableStatisticsKHR(*device_, &executable, n, p);
            },
            "vkGetPipelineExecutableStatisticsKHR", "reading a pipeline's statistics");
        for (const VkPipelineExecutableStatisticKHR& s : statistics) {
            std::string value;
            switch (s.format) {
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: value = s.value.b32 ? "true" : "false"; break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: value = std::to_string(s.value.i64); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: value = std::to_string(s.value.u64); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR: value = std::to_string(s.value.f64); break;
            default: value = "?"; break;
            }
            out.push_back({s.name, s.description, std::move(value)});
        }
    }
    return out;
}

inline bool context::save_pipeline_cache() {
    if (!pipeline_cache_) return false;
    std::lock_guard save_lock(save_mutex_);
    std::size_t added = 0;
    {
        std::lock_guard lock(cache_mutex_);
        added = pipelines_since_save_;
    }
    if (added == 0) return false;

    // The cache may grow between the size query and the copy while other threads build pipelines; ask again then.
    const VkDevice device = *device_;
    std::vector<std::byte> data;
    VkResult result = VK_INCOMPLETE;
    for (int attempt = 0; attempt < 4 && result == VK_INCOMPLETE; ++attempt) {
        std::size_t size = 0;
        result = fn_.vkGetPipelineCacheData(device, *pipeline_cache_, &size, nullptr);
        if (result != VK_SUCCESS) break;
        data.resize(size);
        result = fn_.vkGetPipelineCacheData(device, *pipeline_cache_, &size, data.data());
        data.resize(size);
    }
    std::string problem;
    if (result != VK_SUCCESS)
        problem = "vkGetPipelineCacheData failed with " + detail::result_string(result);
    else  // checked like a file read back, so that vkfuse never writes a file it would refuse
        problem = detail::check_pipeline_cache_header(data, info_.vendor_id, info_.device_id, info_.pipeline_cache_uuid);
    const std::uint64_t hash = detail::fnv1a_bytes(data);
    const bool unchanged = problem.empty() && hash == saved_data_hash_ && data.size() == saved_data_size_;
    if (problem.empty() && !unchanged)
        problem = detail::write_cache_file(pipeline_file_, detail::encode_pipeline_file(data));

    std::lock_guard lock(cache_mutex_);
    pipelines_since_save_ -= std::min(pipelines_since_save_, added);
    if (unchanged) return false;
    if (!problem.empty()) {
        ++cache_stats_.write_failures;
        cache_stats_.last_problem = "the pipeline cache was not saved: " + problem;
        return false;
    }
    saved_data_hash_ = hash;
    saved_data_size_ = data.size();
    cache_stats_.pipeline_cache_bytes_saved = data.size();
    return true;
}

// ---- Memory ---------------------------------------------------------------------------------------------------------

inline std::uint32_t context::memory_type(std::uint32_t allowed_types, VkMemoryPropertyFlags required,
                                          VkMemoryPropertyFlags preferred, std::string_view purpose) const {
    for (const VkMemoryPropertyFlags wanted : {required | preferred, required}) {
        for (std::uint32_t i = 0; i < memory_properties_.memoryTypeCount; ++i) {
            if ((allowed_types & (1u << i)) && (memory_properties_.memoryTypes[i].propertyFlags & wanted) == wanted)
                return i;
        }
    }
    throw device_error("vkfuse: " + info_.name + " offers no suitable memory type for " + std::string(purpose) +
                       "; choose another device with VKFUSE_DEVICE.");
}

inline detail::raw_buffer context::create_raw_buffer(VkDeviceSize bytes, VkBufferUsageFlags usage,
                                                     VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred,
                                                     std::string_view purpose) {
    const VkDevice device = *device_;
    const std::string doing = "creating " + std::string(purpose) + " of " + std::to_string(bytes) + " bytes";
    detail::raw_buffer result;
    result.capacity = bytes;

    VkBufferCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
    info.size = bytes;
    info.usage = usage;
    info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VkBuffer buffer = VK_NULL_HANDLE;
    detail::check(fn_.vkCreateBuffer(device, &info, nullptr, &buffer), "vkCreateBuffer", doing);
    result.buffer = {device, buffer, fn_.vkDestroyBuffer};

    VkMemoryRequirements requirements{};
    fn_.vkGetBufferMemoryRequirements(device, buffer, &requirements);
    VkMemoryAllocateInfo allocate{};
    allocate.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
    allocate.allocationSize = requirements.size;
    allocate.memoryTypeIndex = memory_type(requirements.memoryTypeBits, required, preferred, purpose);
    VkDeviceMemory memory = VK_NULL_HANDLE;
    const bool fail = allocations_to_failure_ != 0 && --allocations_to_failure_ == 0;  // inject_failures
    detail::check(fail ? VK_ERROR_OUT_OF_DEVICE_MEMORY : fn_.vkAllocateMemory(device, &allocate, nullptr, &memory),
                  "vkAllocateMemory", doing);
    result.memory = {device, memory, fn_.vkFreeMemory};
    detail::check(fn_.vkBindBufferMemory(device, buffer, memory, 0), "vkBindBufferMemory", doing);

    if (required & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
        detail::check(fn_.vkMapMemory(device, memory, 0, VK_WHOLE_SIZE, 0, &result.mapped), "vkMapMemory", doing);
    return result;
}

// ---- Submission and transfers ---------------------------------------------------------------------------------------

inline void context::submit_and_wait(VkCommandBuffer commands, VkFence fence, std::string_view doing) {
    const VkDevice device = *device_;
    detail::check(fn_.vkResetFences(device, 1, &fence), "vkResetFences", doing);
    VkSubmitInfo submit{};
    submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &commands;
    {
        std::lock_guard lock(queue_mutex_);
        lost_ = lost_ || (submissions_to_loss_ != 0 && --submissions_to_loss_ == 0);  // inject_failures
        detail::check(lost_ ? VK_ERROR_DEVICE_LOST : fn_.vkQueueSubmit(queue_, 1, &submit, fence), "vkQueueSubmit",
                      doing);
    }
    detail::check(fn_.vkWaitForFences(device, 1, &fence, VK_TRUE, std::numeric_limits<std::uint64_t>::max()),
                  "vkWaitForFences", doing);
}

inline void context::ensure_staging(VkDeviceSize bytes) {
    if (staging_.capacity >= bytes) return;
    const VkDeviceSize capacity = std::min(staging_chunk_bytes, std::max(bytes, staging_.capacity * 2));
    staging_ = {};  // release the old one first; peak memory matters more than the brief gap
    // Host-cached memory makes downloads (CPU reads) fast; coherence spares explicit flushes.
    staging_ = create_raw_buffer(capacity, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                 VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                 VK_MEMORY_PROPERTY_HOST_CACHED_BIT, "the staging buffer");
}

template <class Record>
void context::transfer(Record&& record, std::string_view doing) {
    VkCommandBufferBeginInfo begin{};
    begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    detail::check(fn_.vkBeginCommandBuffer(transfer_commands_, &begin), "vkBeginCommandBuffer", doing);

    // Orders the transfer after every earlier shader or transfer access in queue order, including other command
    // buffers: writes before it become visible to it, and it cannot overwrite what an earlier kernel still reads.
    VkMemoryBarrier before{};
    before.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    before.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    before.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    fn_.vkCmdPipelineBarrier(transfer_commands_,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, nullptr, 0, nullptr);
    record(transfer_commands_);

    // Makes transfer writes visible to the host (downloads) and, through the next command buffer's leading barrier,
    // to later kernels.
    VkMemoryBarrier after{};
    after.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    after.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    after.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    fn_.vkCmdPipelineBarrier(transfer_commands_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                             &after, 0, nullptr, 0, nullptr);
    detail::check(fn_.vkEndCommandBuffer(transfer_commands_), "vkEndCommandBuffer", doing);
    submit_and_wait(transfer_commands_, *transfer_fence_, doing);
}

inline void context::copy_to_buffer(VkBuffer destination, std::span<const std::byte> source, VkDeviceSize at) {
    std::lock_guard lock(transfer_mutex_);
    for (std::size_t offset = 0; offset < source.size();) {
        const std::size_t bytes = static_cast<std::size_t>(
            std::min<VkDeviceSize>(source.size() - offset, staging_chunk_bytes));
        ensure_staging(bytes);
        std::memcpy(staging_.mapped, source.data() + offset, bytes);
        const VkBufferCopy region{0, at + offset, bytes};
        const VkBuffer staging = *staging_.buffer;
        transfer([&](VkCommandBuffer cb) { fn_.vkCmdCopyBuffer(cb, staging, destination, 1, &region); },
                 "uploading " + std::to_string(bytes) + " bytes");
        offset += bytes;
    }
}

inline void context::copy_from_buffer(VkBuffer source, std::span<std::byte> destination, VkDeviceSize at) {
    std::lock_guard lock(transfer_mutex_);
    for (std::size_t offset = 0; offset < destination.size();) {
        const std::size_t bytes = static_cast<std::size_t>(
            std::min<VkDeviceSize>(destination.size() - offset, staging_chunk_bytes));
        ensure_staging(bytes);
        const VkBufferCopy region{at + offset, 0, bytes};
        const VkBuffer staging = *staging_.buffer;
        transfer([&](VkCommandBuffer cb) { fn_.vkCmdCopyBuffer(cb, source, staging, 1, &region); },
                 "downloading " + std::to_string(bytes) + " bytes");
        std::memcpy(destination.data() + offset, staging_.mapped, bytes);
        offset += bytes;
    }
}

inline void context::fill_buffer(VkBuffer destination, std::uint32_t word, VkDeviceSize at, VkDeviceSize bytes) {
    std::lock_guard lock(transfer_mutex_);
    transfer([&](VkCommandBuffer cb) { fn_.vkCmdFillBuffer(cb, destination, at, bytes, word); },
             "filling a buffer");
}

} // namespace vkfuse::vulkan
