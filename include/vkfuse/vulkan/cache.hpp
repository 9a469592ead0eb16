// vkfuse/vulkan/cache.hpp — the disk caches behind a context: SPIR-V by shader, and the driver's pipeline cache.
//
// On a driver that compiles slowly (lavapipe turns every pipeline into LLVM code) the first run of a program spends
// most of its time in glslang and the driver; both results are kept on disk so that the next process starts warm.
// Nothing read from disk is trusted: every file carries its full key and a checksum of what follows, a file that does
// not check out is ignored (and replaced by the next write), and writes go to a temporary file that is renamed into
// place, so readers never see half a file even when several processes write the same entry at once.
//
// Where: context_options::cache_directory, else $VKFUSE_CACHE_DIR, else $XDG_CACHE_HOME/vkfuse, else
// $HOME/.cache/vkfuse; an empty value, "0" or "off" turns the disk caches off. Layout under that directory:
//   spirv/<16 hex digits>.spv        one shader; the digits hash the key (compiler, target, preamble, GLSL)
//   pipelines/<vendor>-<device>-<driver version>-<pipelineCacheUUID>.bin   the driver's VkPipelineCache data
#pragma once

#include "vkfuse/vulkan/shader_compiler.hpp"

#include <vulkan/vulkan.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace vkfuse::vulkan {

// What the caches of one context did; context::cache_stats() returns a snapshot.
struct cache_statistics {
    std::string directory;  // the disk cache in use; empty when there is none
    std::string disabled_because;  // why there is no disk cache, when there is none

    // context::spirv: answered from memory, loaded from disk, compiled by glslang (and written to disk where possible).
    std::size_t spirv_from_memory = 0, spirv_from_disk = 0, spirv_compiled = 0, spirv_files_written = 0;
    // SPIR-V files that existed but were not used: truncated, foreign, another key, or corrupt. Each is rewritten.
    std::size_t spirv_files_rejected = 0;

    // The pipeline cache: bytes handed to the driver at creation (0: no file, or one that was rejected).
    std::size_t pipeline_cache_bytes_loaded = 0;
    bool pipeline_cache_file_rejected = false;
    // Pipelines created through the context, and those the driver reports as found in the cache (drivers that do not
    // report it count none).
    std::size_t pipelines_created = 0, pipeline_cache_hits = 0;
    std::size_t pipeline_cache_bytes_saved = 0;  // by the last save that wrote a file

    std::size_t write_failures = 0;  // files that could not be written; the caches go on without them
    std::string last_problem;       // the latest rejected file or failed write, in words
};

namespace detail {

// ---------------------------------------------------------------------------------------------------------------------
// Where the cache lives
// ---------------------------------------------------------------------------------------------------------------------

struct cache_location {
    std::optional<std::filesystem::path> directory;
    std::string disabled_because;  // set when `directory` is empty
};

inline bool cache_value_disables(std::string_view value) {
    if (value.empty() || value == "0") return true;
    std::string lower(value);
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return lower == "off";
}

// `option` is context_options::cache_directory; unset, the environment decides.
inline cache_location locate_cache(const std::optional<std::string>& option) {
    const auto choose = [](std::string_view value, std::string_view source) -> cache_location {
        if (cache_value_disables(value)) return {std::nullopt, std::string(source) + " turns the disk cache off"};
        return {std::filesystem::path(std::string(value)), {}};
    };
    if (option) return choose(*option, "context_options::cache_directory = \"" + *option + "\"");
    if (const char* value = std::getenv("VKFUSE_CACHE_DIR"))
        return choose(value, "VKFUSE_CACHE_DIR=\"" + std::string(value) + "\"");
    // The XDG base directory specification says to ignore a relative XDG_CACHE_HOME.
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg && std::filesystem::path(xdg).is_absolute())
        return {std::filesystem::path(xdg) / "vkfuse", {}};
    if (const char* home = std::getenv("HOME"); home && *home)
        return {std::filesystem::path(home) / ".cache" / "vkfuse", {}};
    return {std::nullopt, "neither VKFUSE_CACHE_DIR, XDG_CACHE_HOME nor HOME is set"};
}

// Creates the directory and its two subdirectories. Directories vkfuse creates are private to the user: cache files
// hold shader source. Returns an explanation on failure, empty on success.
inline std::string prepare_cache_directory(const std::filesystem::path& root) {
    namespace fs = std::filesystem;
    for (const fs::path& directory : {root, root / "spirv", root / "pipelines"}) {
        std::error_code error;
        if (fs::is_directory(directory, error)) continue;
        fs::create_directories(directory, error);
        std::error_code exists_error;
        if (!fs::is_directory(directory, exists_error)) {
            return "cannot create the cache directory " + directory.string() + ": " +
                   (error ? error.message() : std::string("a file of that name is in the way"));
        }
        fs::permissions(directory, fs::perms::owner_all, fs::perm_options::replace, error);  // best effort
    }
    return {};
}

// ---------------------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------------------

// The whole file, or nothing when it is missing, unreadable or larger than `max_bytes` (no cache file is that big, so
// such a file is not ours, and reading it would only cost memory).
inline std::optional<std::vector<std::byte>> read_cache_file(const std::filesystem::path& path, std::size_t max_bytes) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(path, error)) return std::nullopt;  // missing, or a directory in its place
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    if (size < 0 || static_cast<std::uint64_t>(size) > max_bytes) return std::nullopt;
    in.seekg(0, std::ios::beg);
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    if (!bytes.empty() && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
        return std::nullopt;
    return bytes;
}

// A name no other writer uses at the same time: a per-process random number, the thread, and a counter.
inline std::string unique_temporary_suffix() {
    static const std::uint64_t process_random = [] {
        std::uint64_t value = static_cast<std::uint64_t>(
            std::chrono::steady_clock::now().time_since_epoch().count());
        try {
            std::random_device device;
            value ^= (std::uint64_t{device()} << 32) ^ device();
        } catch (...) {
            // No entropy source; the clock and the thread below still separate writers in practice.
        }
        return value;
    }();
    static std::atomic<std::uint64_t> counter{0};
    const std::uint64_t thread = std::hash<std::thread::id>{}(std::this_thread::get_id());
    char text[64];
    std::snprintf(text, sizeof text, "%016llx-%llx-%llu", static_cast<unsigned long long>(process_random),
                  static_cast<unsigned long long>(thread & 0xffffffffu),
                  static_cast<unsigned long long>(counter.fetch_add(1)));
    return text;
}

// Writes `bytes` to a temporary file next to `path` and renames it over `path`: the rename is atomic, so a reader
// sees the old file or the new one, never a mixture. No fsync: a file torn by a crash fails its checksum and is
// rewritten, which is all a cache needs. Returns an explanation on failure, empty on success.
inline std::string write_cache_file(const std::filesystem::path& path, std::span<const std::byte> bytes) {
    namespace fs = std::filesystem;
    const fs::path temporary = path.parent_path() / ("." + path.filename().string() + ".tmp-" + unique_temporary_suffix());
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!out) return "cannot create " + temporary.string();
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        out.close();
        if (!out) {
            std::error_code ignored;
            fs::remove(temporary, ignored);
            return "cannot write " + temporary.string() + " (disk full?)";
        }
    }
    std::error_code error;
    fs::rename(temporary, path, error);
    if (error) {
        std::error_code ignored;
        fs::remove(temporary, ignored);
        return "cannot rename " + temporary.string() + " to " + path.string() + ": " + error.message();
    }
    return {};
}

// ---------------------------------------------------------------------------------------------------------------------
// Serialisation: little-endian whatever the host, so that a file is read the same way everywhere
// ---------------------------------------------------------------------------------------------------------------------

inline std::uint64_t fnv1a_bytes(std::span<const std::byte> bytes, std::uint64_t hash = fnv1a_offset) noexcept {
    return fnv1a(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), hash);
}

class byte_writer {
public:
    void u32(std::uint32_t value) {
        for (int shift = 0; shift < 32; shift += 8) bytes_.push_back(static_cast<std::byte>(value >> shift));
    }
    void u64(std::uint64_t value) {
        for (int shift = 0; shift < 64; shift += 8) bytes_.push_back(static_cast<std::byte>(value >> shift));
    }
    void raw(std::span<const std::byte> data) { bytes_.insert(bytes_.end(), data.begin(), data.end()); }
    std::span<const std::byte> bytes() const noexcept { return bytes_; }
    std::vector<std::byte> take() { return std::move(bytes_); }

private:
    std::vector<std::byte> bytes_;
};

// Reads fields in order; after any read past the end, ok() is false and every later read yields zeros.
class byte_reader {
public:
    explicit byte_reader(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}
    std::uint32_t u32() noexcept { return static_cast<std::uint32_t>(little_endian(4)); }
    std::uint64_t u64() noexcept { return little_endian(8); }
    std::span<const std::byte> raw(std::uint64_t size) noexcept {
        if (!ok_ || size > remaining()) {
            ok_ = false;
            return {};
        }
        const std::span<const std::byte> part = bytes_.subspan(position_, static_cast<std::size_t>(size));
        position_ += static_cast<std::size_t>(size);
        return part;
    }
    std::size_t position() const noexcept { return position_; }
    std::size_t remaining() const noexcept { return bytes_.size() - position_; }
    bool ok() const noexcept { return ok_; }

private:
    std::uint64_t little_endian(std::size_t size) noexcept {
        const std::span<const std::byte> part = raw(size);
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < part.size(); ++i) value |= std::uint64_t(std::to_integer<std::uint8_t>(part[i])) << (8 * i);
        return value;
    }
    std::span<const std::byte> bytes_;
    std::size_t position_ = 0;
    bool ok_ = true;
};

inline std::span<const std::byte> as_bytes(std::string_view text) noexcept {
    return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

inline std::string hex(std::uint64_t value, int digits) {
    char text[17];
    std::snprintf(text, sizeof text, "%0*llx", digits, static_cast<unsigned long long>(value));
    return text;
}

// ---------------------------------------------------------------------------------------------------------------------
// SPIR-V files
// ---------------------------------------------------------------------------------------------------------------------
//
//   u32 magic "VKFS"   u32 format version   u64 FNV-1a of the key
//   u64 key length     the key text
//   u64 word count     the SPIR-V words
//   u64 FNV-1a of everything before it
//
// The key text is stored in full, so a file whose name collides, or that belongs to another shader, is recognised
// exactly; the trailing checksum catches a file damaged anywhere else.

inline constexpr std::uint32_t spirv_file_magic = 0x53464b56u;  // "VKFS" read little-endian
inline constexpr std::uint32_t spirv_file_version = 1;
inline constexpr std::uint32_t spirv_magic_number = 0x07230203u;
inline constexpr std::size_t spirv_file_max_bytes = std::size_t{256} << 20;

// Everything that decides the SPIR-V: the file format, the compiler, the target, then preamble and source, each
// length-prefixed so that no two different tuples give the same text.
inline std::string spirv_cache_key(std::string_view compiler, std::string_view target, std::string_view preamble,
                                   std::string_view glsl) {
    std::string key = "vkfuse SPIR-V cache key " + std::to_string(spirv_file_version) + "\n";
    for (const std::string_view part : {compiler, target, preamble, glsl}) {
        key += std::to_string(part.size());
        key += ':';
        key += part;
        key += '\n';
    }
    return key;
}

inline std::string spirv_file_name(std::string_view key) { return hex(fnv1a(key), 16) + ".spv"; }

inline std::vector<std::byte> encode_spirv_file(std::string_view key, std::span<const std::uint32_t> words) {
    byte_writer out;
    out.u32(spirv_file_magic);
    out.u32(spirv_file_version);
    out.u64(fnv1a(key));
    out.u64(key.size());
    out.raw(as_bytes(key));
    out.u64(words.size());
    for (const std::uint32_t word : words) out.u32(word);
    out.u64(fnv1a_bytes(out.bytes()));
    return out.take();
}

// The words, or nothing with `why` set. Never trusts a length before checking it against the file.
inline std::optional<std::vector<std::uint32_t>> decode_spirv_file(std::span<const std::byte> file,
                                                                   std::string_view key, std::string& why) {
    const auto reject = [&](std::string_view reason) {
        why = reason;
        return std::nullopt;
    };
    byte_reader in(file);
    if (in.u32() != spirv_file_magic) return reject("not a vkfuse SPIR-V cache file");
    if (in.u32() != spirv_file_version) return reject("another version of the file format");
    const std::uint64_t key_hash = in.u64();
    const std::uint64_t key_size = in.u64();
    const std::span<const std::byte> stored_key = in.raw(key_size);
    if (!in.ok()) return reject("truncated");
    if (key_hash != fnv1a(key) || key_size != key.size() ||
        std::memcmp(stored_key.data(), key.data(), key.size()) != 0)
        return reject("it holds another shader (a different key)");
    const std::uint64_t word_count = in.u64();
    if (!in.ok() || word_count > in.remaining() / 4) return reject("truncated");
    std::vector<std::uint32_t> words(static_cast<std::size_t>(word_count));
    for (std::uint32_t& word : words) word = in.u32();
    const std::size_t checked = in.position();
    const std::uint64_t checksum = in.u64();
    if (!in.ok()) return reject("truncated");
    if (in.remaining() != 0) return reject("trailing bytes after the checksum");
    if (checksum != fnv1a_bytes(file.first(checked))) return reject("checksum mismatch (the file is damaged)");
    if (words.size() < 5 || words[0] != spirv_magic_number) return reject("the words are not SPIR-V");
    return words;
}

// ---------------------------------------------------------------------------------------------------------------------
// Pipeline cache files
// ---------------------------------------------------------------------------------------------------------------------
//
//   u32 magic "VKFP"   u32 format version   u64 data size   u64 FNV-1a of the data   the data
//
// The data is what vkGetPipelineCacheData returned; it starts with the header Vulkan defines
// (VkPipelineCacheHeaderVersionOne), checked against the device before the driver sees any of it.

inline constexpr std::uint32_t pipeline_file_magic = 0x50464b56u;  // "VKFP"
inline constexpr std::uint32_t pipeline_file_version = 1;
inline constexpr std::size_t pipeline_file_max_bytes = std::size_t{1} << 30;
inline constexpr std::size_t pipeline_cache_header_bytes = 16 + VK_UUID_SIZE;  // the spec's 32 bytes, tightly packed

using pipeline_cache_uuid = std::array<std::uint8_t, VK_UUID_SIZE>;

// Keyed by everything that identifies the driver build; the UUID alone would do, the rest makes the name readable.
inline std::string pipeline_file_name(std::uint32_t vendor_id, std::uint32_t device_id, std::uint32_t driver_version,
                                      const pipeline_cache_uuid& uuid) {
    std::string name = hex(vendor_id, 4) + "-" + hex(device_id, 4) + "-" + hex(driver_version, 8) + "-";
    for (const std::uint8_t byte : uuid) name += hex(byte, 2);
    return name + ".bin";
}

inline std::vector<std::byte> encode_pipeline_file(std::span<const std::byte> data) {
    byte_writer out;
    out.u32(pipeline_file_magic);
    out.u32(pipeline_file_version);
    out.u64(data.size());
    out.u64(fnv1a_bytes(data));
    out.raw(data);
    return out.take();
}

// Checks the data the way Vulkan defines its header: size, version, vendor, device and UUID must be this device's.
inline std::string check_pipeline_cache_header(std::span<const std::byte> data, std::uint32_t vendor_id,
                                               std::uint32_t device_id, const pipeline_cache_uuid& uuid) {
    byte_reader in(data);
    const std::uint32_t header_size = in.u32();
    const std::uint32_t header_version = in.u32();
    const std::uint32_t vendor = in.u32();
    const std::uint32_t device = in.u32();
    const std::span<const std::byte> stored_uuid = in.raw(VK_UUID_SIZE);
    if (!in.ok()) return "shorter than the Vulkan pipeline cache header";
    if (header_size < pipeline_cache_header_bytes || header_size > data.size())
        return "the header size " + std::to_string(header_size) + " is impossible";
    if (header_version != VK_PIPELINE_CACHE_HEADER_VERSION_ONE)
        return "unknown header version " + std::to_string(header_version);
    if (vendor != vendor_id || device != device_id) return "it was written for another device";
    if (std::memcmp(stored_uuid.data(), uuid.data(), uuid.size()) != 0) return "it was written by another driver build";
    return {};
}

inline std::optional<std::vector<std::byte>> decode_pipeline_file(std::span<const std::byte> file,
                                                                  std::uint32_t vendor_id, std::uint32_t device_id,
                                                                  const pipeline_cache_uuid& uuid, std::string& why) {
    const auto reject = [&](std::string_view reason) {
        why = reason;
        return std::nullopt;
    };
    byte_reader in(file);
    if (in.u32() != pipeline_file_magic) return reject("not a vkfuse pipeline cache file");
    if (in.u32() != pipeline_file_version) return reject("another version of the file format");
    const std::uint64_t size = in.u64();
    const std::uint64_t checksum = in.u64();
    if (!in.ok() || size != in.remaining()) return reject("truncated or padded");
    const std::span<const std::byte> data = in.raw(size);
    if (checksum != fnv1a_bytes(data)) return reject("checksum mismatch (the file is damaged)");
    if (std::string problem = check_pipeline_cache_header(data, vendor_id, device_id, uuid); !problem.empty())
        return reject(problem);
    return std::vector<std::byte>(data.begin(), data.end());
}

} // namespace detail

} // namespace vkfuse::vulkan
