// vkfuse/vulkan/buffer.hpp — a device-local storage buffer with synchronous upload, download and fill.
#pragma once

#include "vkfuse/core/error.hpp"
#include "vkfuse/vulkan/context.hpp"

#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ranges>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace vkfuse::vulkan {

class buffer {
public:
    buffer() = default;
    buffer(context& ctx, std::size_t bytes);
    buffer(buffer&& other) noexcept;
    buffer& operator=(buffer&& other) noexcept;
    buffer(const buffer&) = delete;
    buffer& operator=(const buffer&) = delete;
    ~buffer() = default;

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return !storage_.buffer; }
    VkBuffer operator*() const noexcept { return *storage_.buffer; }
    context* owner() const noexcept { return context_; }

    // The byte count must equal size(); a mismatch throws vkfuse::usage_error and leaves the contents untouched.
    void upload(std::span<const std::byte> bytes);
    void download(std::span<std::byte> bytes) const;

    template <class T>
    void upload(std::span<const T> values) {
        static_assert(std::is_trivially_copyable_v<T>, "buffer::upload needs trivially copyable elements");
        upload(std::as_bytes(values));
    }
    // Vectors, arrays and other contiguous ranges of trivially copyable elements.
    template <std::ranges::contiguous_range Range>
        requires std::is_trivially_copyable_v<std::ranges::range_value_t<Range>>
    void upload(const Range& values) {
        upload(std::span<const std::ranges::range_value_t<Range>>(std::ranges::data(values), std::ranges::size(values)));
    }

    // size() must be a multiple of sizeof(T).
    template <class T>
    std::vector<T> download() const {
        static_assert(std::is_trivially_copyable_v<T>, "buffer::download needs trivially copyable elements");
        if (size_ % sizeof(T) != 0)
            throw usage_error("vkfuse: download of a buffer of " + std::to_string(size_) +
                              " bytes into elements of " + std::to_string(sizeof(T)) +
                              " bytes: the size is not a multiple of the element size.");
        std::vector<T> values(size_ / sizeof(T));
        download(std::as_writable_bytes(std::span<T>(values)));
        return values;
    }

    // Sets every 32-bit word, e.g. 0x7fc00000 to poison a float buffer with NaN before a kernel writes it.
    void fill(std::uint32_t word);

    // The same on the byte range [at, at + size) of the buffer (a program that packs its buffers into one).
    void upload_at(std::size_t at, std::span<const std::byte> bytes);
    void download_at(std::size_t at, std::span<std::byte> bytes) const;
    void fill_at(std::size_t at, std::size_t bytes, std::uint32_t word);

private:
    void require_range(const char* operation, std::size_t at, std::size_t bytes) const;

    void require_contents(const char* operation) const;

    context* context_ = nullptr;
    detail::raw_buffer storage_;
    std::size_t size_ = 0;
};

inline buffer::buffer(context& ctx, std::size_t bytes) : context_(&ctx), size_(bytes) {
    if (bytes == 0) throw usage_error("vkfuse: a buffer of 0 bytes was requested; Vulkan buffers must not be empty.");
    const std::uint64_t limit = ctx.device().max_storage_buffer_range;
    if (bytes > limit)
        throw usage_error("vkfuse: a buffer of " + std::to_string(bytes) + " bytes exceeds " + ctx.device().name +
                          "'s maxStorageBufferRange of " + std::to_string(limit) +
                          " bytes, the most one shader binding can address; split the data over several buffers.");
    const std::uint64_t allocation = ctx.device().max_allocation_bytes;
    if (allocation != 0 && bytes > allocation)
        throw usage_error("vkfuse: a buffer of " + std::to_string(bytes) + " bytes exceeds " + ctx.device().name +
                          "'s maxMemoryAllocationSize of " + std::to_string(allocation) +
                          " bytes; split the data over several buffers.");
    // Rounded up to whole words so that fill() (vkCmdFillBuffer writes 4-byte words) covers every byte of size().
    const VkDeviceSize allocated = (static_cast<VkDeviceSize>(bytes) + 3) & ~VkDeviceSize{3};
    storage_ = ctx.create_raw_buffer(allocated,
                                     VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                         VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                     0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, "a storage buffer");
}

inline buffer::buffer(buffer&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)), storage_(std::move(other.storage_)),
      size_(std::exchange(other.size_, 0)) {}

inline buffer& buffer::operator=(buffer&& other) noexcept {
    if (this != &other) {
        storage_ = std::move(other.storage_);
        context_ = std::exchange(other.context_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

inline void buffer::require_contents(const char* operation) const {
    if (empty())
        throw usage_error(std::string("vkfuse: ") + operation +
                          " on an empty vkfuse::vulkan::buffer (default-constructed or moved from).");
}

inline void buffer::upload(std::span<const std::byte> bytes) {
    require_contents("upload");
    if (bytes.size() != size_)
        throw usage_error("vkfuse: upload of " + std::to_string(bytes.size()) + " bytes into a buffer of " +
                          std::to_string(size_) + " bytes; the sizes must match.");
    context_->copy_to_buffer(**this, bytes);
}

inline void buffer::download(std::span<std::byte> bytes) const {
    require_contents("download");
    if (bytes.size() != size_)
        throw usage_error("vkfuse: download of " + std::to_string(bytes.size()) + " bytes from a buffer of " +
                          std::to_string(size_) + " bytes; the sizes must match.");
    context_->copy_from_buffer(**this, bytes);
}

inline void buffer::fill(std::uint32_t word) {
    require_contents("fill");
    context_->fill_buffer(**this, word);
}

inline void buffer::require_range(const char* operation, std::size_t at, std::size_t bytes) const {
    require_contents(operation);
    if (at > size_ || bytes > size_ - at)
        throw usage_error(std::string("vkfuse: ") + operation + " of bytes [" + std::to_string(at) + ", " +
                          std::to_string(at + bytes) + ") of a buffer of " + std::to_string(size_) + " bytes.");
}

inline void buffer::upload_at(std::size_t at, std::span<const std::byte> bytes) {
    require_range("upload", at, bytes.size());
    context_->copy_to_buffer(**this, bytes, at);
}

inline void buffer::download_at(std::size_t at, std::span<std::byte> bytes) const {
    require_range("download", at, bytes.size());
    context_->copy_from_buffer(**this, bytes, at);
}

inline void buffer::fill_at(std::size_t at, std::size_t bytes, std::uint32_t word) {
    require_range("fill", at, bytes);
    if (at % 4 != 0 || bytes % 4 != 0) throw usage_error("vkfuse: a fill needs a range of whole 4-byte words.");
    context_->fill_buffer(**this, word, at, bytes);
}

// ---------------------------------------------------------------------------------------------------------------------
// mapped_buffer
// ---------------------------------------------------------------------------------------------------------------------

// Host-visible, coherent memory mapped for the buffer's lifetime, which the host writes directly (no transfer, no
// command buffer): a program's parameter block. Device-local where the device offers host-visible device memory (a
// GPU's BAR window), so shaders read it at device speed. A write is seen by every command buffer submitted after it;
// it must not change while a submitted one may still read it.
class mapped_buffer {
public:
    mapped_buffer() = default;
    mapped_buffer(context& ctx, std::size_t bytes);
    mapped_buffer(mapped_buffer&&) noexcept = default;
    mapped_buffer& operator=(mapped_buffer&&) noexcept = default;
    mapped_buffer(const mapped_buffer&) = delete;
    mapped_buffer& operator=(const mapped_buffer&) = delete;
    ~mapped_buffer() = default;

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return !storage_.buffer; }
    VkBuffer operator*() const noexcept { return *storage_.buffer; }
    context* owner() const noexcept { return context_; }

    // Copies bytes into [at, at + bytes.size()); the range must lie inside the buffer.
    void write(std::size_t at, std::span<const std::byte> bytes);
    void read(std::size_t at, std::span<std::byte> bytes) const;

private:
    void require_range(const char* operation, std::size_t at, std::size_t bytes) const;

    context* context_ = nullptr;
    detail::raw_buffer storage_;
    std::size_t size_ = 0;
};

inline mapped_buffer::mapped_buffer(context& ctx, std::size_t bytes) : context_(&ctx), size_(bytes) {
    if (bytes == 0) throw usage_error("vkfuse: a mapped buffer of 0 bytes was requested; Vulkan buffers must not be empty.");
    storage_ = ctx.create_raw_buffer(bytes,
                                     VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT | VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                         VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                     VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                     VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, "a mapped buffer");
    std::memset(storage_.mapped, 0, bytes);
}

inline void mapped_buffer::require_range(const char* operation, std::size_t at, std::size_t bytes) const {
    if (empty())
        throw usage_error(std::string("vkfuse: ") + operation +
                          " on an empty vkfuse::vulkan::mapped_buffer (default-constructed or moved from).");
    if (at > size_ || bytes > size_ - at)
        throw usage_error(std::string("vkfuse: ") + operation + " of bytes [" + std::to_string(at) + ", " +
                          std::to_string(at + bytes) + ") of a mapped buffer of " + std::to_string(size_) + " bytes.");
}

inline void mapped_buffer::write(std::size_t at, std::span<const std::byte> bytes) {
    require_range("write", at, bytes.size());
    if (!bytes.empty()) std::memcpy(static_cast<std::byte*>(storage_.mapped) + at, bytes.data(), bytes.size());
}

inline void mapped_buffer::read(std::size_t at, std::span<std::byte> bytes) const {
    require_range("read", at, bytes.size());
    if (!bytes.empty()) std::memcpy(bytes.data(), static_cast<const std::byte*>(storage_.mapped) + at, bytes.size());
}

} // namespace vkfuse::vulkan
