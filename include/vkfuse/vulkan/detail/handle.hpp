// vkfuse/vulkan/detail/handle.hpp — move-only owners of Vulkan handles.
//
// Each owner carries the destroy function it was created with because vkfuse calls Vulkan through run-time loaded
// function tables (see loader.hpp), not through prototypes that could be named as template arguments.
#pragma once

#include <vulkan/vulkan.h>

#include <utility>

namespace vkfuse::vulkan::detail {

// ---------------------------------------------------------------------------------------------------------------------
// unique_root: a handle destroyed on its own (VkInstance, VkDevice)
// ---------------------------------------------------------------------------------------------------------------------

template <class Handle>
class unique_root {
public:
    using destroy_fn = void(VKAPI_PTR*)(Handle, const VkAllocationCallbacks*);

    unique_root() noexcept = default;
    unique_root(Handle handle, destroy_fn destroy) noexcept : handle_(handle), destroy_(destroy) {}
    unique_root(unique_root&& other) noexcept
        : handle_(std::exchange(other.handle_, Handle{})), destroy_(std::exchange(other.destroy_, nullptr)) {}
    unique_root& operator=(unique_root&& other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, Handle{});
            destroy_ = std::exchange(other.destroy_, nullptr);
        }
        return *this;
    }
    unique_root(const unique_root&) = delete;
    unique_root& operator=(const unique_root&) = delete;
    ~unique_root() { reset(); }

    Handle operator*() const noexcept { return handle_; }
    explicit operator bool() const noexcept { return handle_ != Handle{}; }

    void reset() noexcept {
        if (handle_ != Handle{} && destroy_) destroy_(handle_, nullptr);
        handle_ = Handle{};
        destroy_ = nullptr;
    }

private:
    Handle handle_{};
    destroy_fn destroy_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------------------
// unique_child: a handle destroyed through its parent (most device objects, the debug messenger)
// ---------------------------------------------------------------------------------------------------------------------

template <class Parent, class Handle>
class unique_child {
public:
    using destroy_fn = void(VKAPI_PTR*)(Parent, Handle, const VkAllocationCallbacks*);

    unique_child() noexcept = default;
    unique_child(Parent parent, Handle handle, destroy_fn destroy) noexcept
        : parent_(parent), handle_(handle), destroy_(destroy) {}
    unique_child(unique_child&& other) noexcept
        : parent_(std::exchange(other.parent_, Parent{})), handle_(std::exchange(other.handle_, Handle{})),
          destroy_(std::exchange(other.destroy_, nullptr)) {}
    unique_child& operator=(unique_child&& other) noexcept {
        if (this != &other) {
            reset();
            parent_ = std::exchange(other.parent_, Parent{});
            handle_ = std::exchange(other.handle_, Handle{});
            destroy_ = std::exchange(other.destroy_, nullptr);
        }
        return *this;
    }
    unique_child(const unique_child&) = delete;
    unique_child& operator=(const unique_child&) = delete;
    ~unique_child() { reset(); }

    Handle operator*() const noexcept { return handle_; }
    explicit operator bool() const noexcept { return handle_ != Handle{}; }

    void reset() noexcept {
        if (handle_ != Handle{} && destroy_) destroy_(parent_, handle_, nullptr);
        parent_ = Parent{};
        handle_ = Handle{};
        destroy_ = nullptr;
    }

private:
    Parent parent_{};
    Handle handle_{};
    destroy_fn destroy_ = nullptr;
};

template <class Handle>
using device_child = unique_child<VkDevice, Handle>;

} // namespace vkfuse::vulkan::detail
