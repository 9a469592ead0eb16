// vkfuse/checkpoint/safetensors.hpp — reading (and, for fixtures, writing) Hugging Face safetensors files, single or
// sharded.
//
// Model weights come from files we did not write: downloaded, converted by third-party tools, possibly crafted. So the
// reader treats every byte as hostile. A file is memory-mapped read-only and its header checked completely before
// anything is handed out — lengths, JSON structure, dtypes, shapes (with overflow checks), byte ranges against the data
// buffer and against each other — and a defect of any kind is a vkfuse::checkpoint_error naming the file and the
// tensor, never a read out of bounds. Construction either succeeds or throws; there is no half-read file.
// docs/checkpoints.md has the list of checks and an example.
//
// The format: an 8-byte little-endian header length N; N bytes of UTF-8 JSON, an object mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} plus an optional "__metadata__" object of strings (the JSON starts
// with '{' and may be padded with spaces); then the data buffer, which the tensors' ranges (relative to its start)
// must cover exactly, without holes or overlaps.
#pragma once

#include "../core/error.hpp"
#include "../formats/half.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vkfuse::safetensors {

// ---------------------------------------------------------------------------------------------------------------------
// Element types

// The safetensors dtypes that real checkpoints hold. Only f32, f16 and bf16 convert to f32 here; the others are known
// so that a file holding them (an int64 position table, an fp8 checkpoint) opens and says clearly what it holds.
// Later additions to the format (sub-byte F4 and F6, F8_E8M0, C64) are unknown: a file with one is rejected, naming it.
enum class dtype : std::uint8_t {
    boolean, u8, i8, f8_e5m2, f8_e4m3, i16, u16, f16, bf16, i32, u32, f32, i64, u64, f64
};

inline constexpr std::array all_dtypes{dtype::boolean, dtype::u8,  dtype::i8,  dtype::f8_e5m2, dtype::f8_e4m3,
                                       dtype::i16,     dtype::u16, dtype::f16, dtype::bf16,    dtype::i32,
                                       dtype::u32,     dtype::f32, dtype::i64, dtype::u64,     dtype::f64};

// The spelling in a safetensors header; "" for a value outside the enumeration.
constexpr std::string_view dtype_name(dtype d) noexcept {
    switch (d) {
    case dtype::boolean: return "BOOL";
    case dtype::u8: return "U8";
    case dtype::i8: return "I8";
    case dtype::f8_e5m2: return "F8_E5M2";
    case dtype::f8_e4m3: return "F8_E4M3";
    case dtype::i16: return "I16";
    case dtype::u16: return "U16";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
    case dtype::i32: return "I32";
    case dtype::u32: return "U32";
    case dtype::f32: return "F32";
    case dtype::i64: return "I64";
    case dtype::u64: return "U64";
    case dtype::f64: return "F64";
    }
    return "";
}

// Bytes per element; 0 for a value outside the enumeration, which every size computation here rejects.
constexpr std::size_t element_size(dtype d) noexcept {
    switch (d) {
    case dtype::boolean:
    case dtype::u8:
    case dtype::i8:
    case dtype::f8_e5m2:
    case dtype::f8_e4m3: return 1;
    case dtype::i16:
    case dtype::u16:
    case dtype::f16:
    case dtype::bf16: return 2;
    case dtype::i32:
    case dtype::u32:
    case dtype::f32: return 4;
    case dtype::i64:
    case dtype::u64:
    case dtype::f64: return 8;
    }
    return 0;
}

constexpr bool converts_to_f32(dtype d) noexcept { return d == dtype::f32 || d == dtype::f16 || d == dtype::bf16; }

constexpr std::optional<dtype> dtype_from_name(std::string_view name) noexcept {
    for (const dtype d : all_dtypes)
        if (dtype_name(d) == name) return d;
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------------------------------
// What a file holds

// One tensor of a file. Views handed out by a file stay valid, and keep their addresses, for as long as the file
// object lives (moving the file included). The writer takes views too, so hand-made ones are fine there.
struct tensor_view {
    std::string name;
    safetensors::dtype dtype = safetensors::dtype::f32;
    std::vector<std::uint64_t> shape;   // outermost first, row-major; empty for a scalar
    std::uint64_t element_count = 0;    // the product of shape: 1 for a scalar, 0 when a dimension is 0
    std::span<const std::byte> bytes;   // little-endian elements, inside the file's data buffer
    std::string_view source;            // the file it is in, for messages; empty in a hand-made view
};

using metadata_map = std::map<std::string, std::string, std::less<>>;

// The largest header accepted: real headers are at most a few MB, and a length beyond this is a corrupt or hostile
// file (it is the limit of Hugging Face's own reader as well).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

// ---------------------------------------------------------------------------------------------------------------------
// Conversion to f32

// f16 and bf16 to f32, exactly: the library's one definition (vkfuse/formats/half.hpp), so a checkpoint's bits mean
// the same here as on the GPU and in the reference. (An f16 signalling NaN comes out quiet, as F16C and ggml do.)
constexpr float f16_to_f32(std::uint16_t h) noexcept { return formats::to_f32(formats::f16_bits{h}); }
constexpr float bf16_to_f32(std::uint16_t b) noexcept { return formats::to_f32(formats::bf16_bits{b}); }

namespace detail {

inline std::uint16_t load_u16(const std::byte* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::big) v = static_cast<std::uint16_t>((v >> 8) | (v << 8));
    return v;
}

// Plain loops over blocks of a fixed size: GCC vectorises a block of known trip count even at -O2, where GCC 12's
// very-cheap cost model turns down a loop that needs a scalar epilogue or a run-time aliasing check (hence
// __restrict: a std::byte pointer may alias anything).
template <dtype Type>
void convert_16bit(const std::byte* __restrict src, float* __restrict dst, std::size_t n) noexcept {
    auto decode = [](std::uint16_t v) { return Type == dtype::f16 ? f16_to_f32(v) : bf16_to_f32(v); };
    constexpr std::size_t block = 64;
    std::size_t b = 0;
    for (; b + block <= n; b += block)
        for (std::size_t i = b; i < b + block; ++i) dst[i] = decode(load_u16(src + 2 * i));
    for (std::size_t i = b; i < n; ++i) dst[i] = decode(load_u16(src + 2 * i));
}

// The elements [0, n) of a validated range of an F32, F16 or BF16 tensor.
inline void convert_range(dtype type, const std::byte* src, float* dst, std::size_t n) noexcept {
    switch (type) {
    case dtype::f32:
        if constexpr (std::endian::native == std::endian::little) {
            if (n != 0) std::memcpy(dst, src, n * sizeof(float));
        } else {
            for (std::size_t i = 0; i < n; ++i) {
                std::uint32_t v;
                std::memcpy(&v, src + 4 * i, 4);
                v = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
                dst[i] = std::bit_cast<float>(v);
            }
        }
        return;
    case dtype::f16: convert_16bit<dtype::f16>(src, dst, n); return;
    case dtype::bf16: convert_16bit<dtype::bf16>(src, dst, n); return;
    default: return;  // callers check converts_to_f32 first
    }
}

// Large tensors are split across threads: the conversion is bound by memory traffic (and, on a fresh mapping, by page
// faults), and one core draws only part of the bandwidth (on the 2-core CI machine two threads convert bf16 about 1.4
// times as fast as one). Small tensors stay on the calling thread, where starting threads would cost more.
inline void convert_parallel(dtype type, const std::byte* src, float* dst, std::size_t n) {
    constexpr std::size_t min_per_thread = std::size_t{1} << 21;
    const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
    const std::size_t parts = std::min(hardware, n / min_per_thread);
    if (parts <= 1) {
        convert_range(type, src, dst, n);
        return;
    }
    const std::size_t size = element_size(type);
    const std::size_t per_part = (n / parts) & ~std::size_t{1023};  // block-aligned boundaries
    auto part = [=](std::size_t k) {
        const std::size_t first = k * per_part;
        const std::size_t count = k + 1 == parts ? n - first : per_part;
        convert_range(type, src + first * size, dst + first, count);
    };
    std::vector<std::jthread> workers;
    workers.reserve(parts - 1);
    std::size_t k = 1;
    try {
        for (; k < parts; ++k) workers.emplace_back(part, k);
    } catch (const std::system_error&) {
        // No more threads to be had: this thread does the parts that got none.
        for (; k < parts; ++k) part(k);
    }
    part(0);
}  // the jthreads join here

inline std::string printable(std::string_view s, std::size_t limit = 256);

} // namespace detail

// Converts an F32, F16 or BF16 tensor into `out`, which must hold exactly its element count. Another dtype is a
// checkpoint_error naming the tensor and its dtype; an `out` of the wrong size is a usage_error.
inline void copy_as_f32(const tensor_view& t, std::span<float> out) {
    auto where = [&] {
        return "safetensors file " + detail::printable(t.source, 4096) + ": tensor " + detail::printable(t.name) + ": ";
    };
    if (!converts_to_f32(t.dtype))
        throw checkpoint_error(where() + "dtype " + std::string(dtype_name(t.dtype)) +
                               " does not convert to f32 (F32, F16 and BF16 do)");
    const std::uint64_t size = element_size(t.dtype);
    if (t.element_count > std::numeric_limits<std::size_t>::max() / size ||
        t.bytes.size() != t.element_count * size)
        throw checkpoint_error(where() + "the view's " + std::to_string(t.bytes.size()) + " bytes are not " +
                               std::to_string(t.element_count) + " elements of " + std::string(dtype_name(t.dtype)));
    if (out.size() != t.element_count)
        throw usage_error(where() + "converting " + std::to_string(t.element_count) + " elements into a span of " +
                          std::to_string(out.size()) + " floats");
    detail::convert_parallel(t.dtype, t.bytes.data(), out.data(), out.size());
}

// The tensor's values as f32 (exact for F32, F16, BF16); other dtypes are a checkpoint_error, as in copy_as_f32.
inline std::vector<float> to_f32(const tensor_view& t) {
    if (converts_to_f32(t.dtype) && t.element_count > std::vector<float>().max_size())
        throw checkpoint_error("safetensors file " + detail::printable(t.source, 4096) + ": tensor " +
                               detail::printable(t.name) + ": " + std::to_string(t.element_count) +
                               " elements do not fit in memory here");
    std::vector<float> out(converts_to_f32(t.dtype) ? static_cast<std::size_t>(t.element_count) : 0);
    copy_as_f32(t, out);
    return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Validation machinery, shared by files read from disk and from memory, and by the sharded index

namespace detail {

// A name from an untrusted header, fit to appear in a message: quoted, control characters escaped, and cut (at a
// character boundary) when long, so that a hostile 100 MB name does not become a 100 MB exception message.
inline std::string printable(std::string_view s, std::size_t limit) {
    std::size_t n = s.size();
    const bool cut = n > limit;
    if (cut) {
        n = limit;
        while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0u) == 0x80u) --n;
    }
    std::string out = "\"";
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
    if (cut) out += "... (" + std::to_string(s.size()) + " bytes)";
    return out;
}

inline std::string errno_text(int code) { return std::generic_category().message(code); }

// Text from nlohmann's exceptions quotes the token it stopped at, which in a hostile header can be megabytes long and
// hold any bytes: cut short, and everything outside printable ASCII escaped.
inline std::string short_text(std::string_view s) {
    constexpr std::size_t limit = 300;
    constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < limit; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return s.size() <= limit ? out : out + "...";
}

inline std::string shape_text(const std::vector<std::uint64_t>& shape) {
    constexpr std::size_t shown = 8;
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size() && i < shown; ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
    if (shape.size() > shown) out += ", ... (" + std::to_string(shape.size()) + " dimensions)";
    return out + "]";
}

inline std::string range_text(std::uint64_t begin, std::uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// How a JSON value is described in a message: its kind, and the value itself when it is a short scalar.
inline std::string json_text(const nlohmann::json& v) {
    if (v.is_string()) return "the string " + printable(v.get_ref<const std::string&>(), 64);
    if (v.is_number()) return short_text(v.dump());
    return std::string(v.is_object() || v.is_array() ? "an " : "a ") + v.type_name();
}

// nlohmann::json's parser keeps the last of two equal keys without a word, and safetensors forbids duplicates (two
// entries for one tensor would let two readers of one file see different weights). So a first pass over the text —
// nlohmann's SAX interface, which builds nothing — checks every object's keys and bounds the nesting depth (which keeps
// a hostile header from building a deep tree), and a second, plain parse builds the value. Both passes are linear in
// the text. (The parser's callback form would do both at once, but after every nested object it scans the enclosing
// one for discarded values: quadratic in the entries of a header, 70 minutes for 52 MB of them.)
struct parsed_object {
    nlohmann::json value;
    std::vector<std::string> keys;  // the top-level keys in the order of the text
};

namespace json_check {

// The first pass: depth, duplicate keys, the top-level keys in order. `error(key, message)` as parse_object's.
template <class Error>
class checker final : public nlohmann::json_sax<nlohmann::json> {
public:
    checker(int max_container_depth, Error& error, std::vector<std::string>& keys)
        : max_depth_(max_container_depth), error_(error), keys_(keys) {}

    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override {
        enter();
        open_objects_.emplace_back();
        return true;
    }
    bool end_object() override {
        open_objects_.pop_back();
        --depth_;
        return true;
    }
    bool start_array(std::size_t) override {
        enter();
        open_objects_.emplace_back();  // an array has no keys; a placeholder keeps the objects' sets aligned
        return true;
    }
    bool end_array() override {
        open_objects_.pop_back();
        --depth_;
        return true;
    }
    bool key(string_t& key) override {
        if (depth_ == 1) current_ = key;
        if (!open_objects_.back().insert(key).second) {
            if (depth_ == 1) throw error_(&key, "appears twice");
            throw error_(current(), "key " + printable(key) + " appears twice");
        }
        if (depth_ == 1) keys_.push_back(key);
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
        throw error_(nullptr, "not valid JSON: " + short_text(e.what()));
    }

private:
    void enter() {
        if (++depth_ > max_depth_ + 1)  // depth_ counts the top-level object as 1; nesting below it is bounded
            throw error_(current(), "JSON nested " + std::to_string(depth_ - 1) +
                                        " levels deep, more than this file can hold");
    }
    const std::string* current() const { return current_ ? &*current_ : nullptr; }

    int max_depth_;
    int depth_ = 0;
    Error& error_;
    std::vector<std::string>& keys_;
    std::vector<std::set<std::string, std::less<>>> open_objects_;
    std::optional<std::string> current_;
};

} // namespace json_check

// `error(key, message)` makes the checkpoint_error to throw; key is the top-level key being read (a pointer to it), or
// null before the first or for the text as a whole.
template <class Error>
parsed_object parse_object(std::string_view text, int max_container_depth, Error&& error) {
    // nlohmann's lexer takes a NUL byte for the end of the input and ignores whatever follows; JSON text never holds
    // a raw NUL, so one here is a defect (and would let a file hide bytes behind a header that parses).
    if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos)
        throw error(nullptr, "not valid JSON: a NUL byte at offset " + std::to_string(nul));
    parsed_object result;
    json_check::checker<std::remove_reference_t<Error>> check(max_container_depth, error, result.keys);
    nlohmann::json::sax_parse(text.begin(), text.end(), &check);
    try {
        result.value = nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::exception& e) {
        throw error(nullptr, "not valid JSON: " + short_text(e.what()));
    }
    if (!result.value.is_object()) throw error(nullptr, "the JSON is " + json_text(result.value) + ", not an object");
    return result;
}

// A read-only private mapping of a whole file, unmapped on destruction. An empty file maps to an empty span.
class mapping {
public:
    mapping() = default;

    mapping(const std::filesystem::path& path, const std::string& shown) {
        auto error = [&](const std::string& what) {
            return checkpoint_error("safetensors file " + printable(shown, 4096) + ": " + what);
        };
        // O_NONBLOCK: opening a named pipe for reading otherwise waits for a writer, forever; opened at once, it is
        // refused below as not a regular file (the flag changes nothing for a regular file or its mapping)
        int fd;
        do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) {
            const int code = errno;
            throw error("cannot open: " + errno_text(code));
        }
        struct closer {
            int fd;
            ~closer() { ::close(fd); }
        } const close_on_exit{fd};
        struct stat info {};
        if (::fstat(fd, &info) != 0) {
            const int code = errno;
            throw error("cannot stat: " + errno_text(code));
        }
        if (!S_ISREG(info.st_mode)) throw error("not a regular file");
        if (info.st_size < 0 || static_cast<std::uint64_t>(info.st_size) > std::numeric_limits<std::size_t>::max())
            throw error("too large to map on this machine");
        const auto size = static_cast<std::size_t>(info.st_size);
        if (size == 0) return;  // nothing to map; the validation reports the file as too short
        void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (address == MAP_FAILED) {
            const int code = errno;
            throw error("cannot memory-map " + std::to_string(size) + " bytes: " + errno_text(code));
        }
        address_ = address;
        size_ = size;
    }

    mapping(mapping&& other) noexcept
        : address_(std::exchange(other.address_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    mapping& operator=(mapping&& other) noexcept {
        if (this != &other) {
            release();
            address_ = std::exchange(other.address_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    ~mapping() { release(); }

    std::span<const std::byte> bytes() const noexcept { return {static_cast<const std::byte*>(address_), size_}; }

private:
    void release() noexcept {
        if (address_ != nullptr) ::munmap(address_, size_);
        address_ = nullptr;
        size_ = 0;
    }

    void* address_ = nullptr;
    std::size_t size_ = 0;
};

// Everything a file object owns, behind one pointer so that moving the file leaves every view where it was.
struct file_state {
    std::string path;
    mapping map;
    std::span<const std::byte> bytes;  // the whole file
    std::span<const std::byte> data;   // the data buffer after the header
    std::vector<tensor_view> tensors;  // in header order
    std::unordered_map<std::string_view, std::size_t> by_name;
    metadata_map metadata;
};

// The value of a JSON number that must be a non-negative integer of 64 bits.
template <class Error>
std::uint64_t json_u64(const nlohmann::json& v, const std::string& what, Error&& error) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer()) {
        const auto signed_value = v.get<std::int64_t>();
        if (signed_value >= 0) return static_cast<std::uint64_t>(signed_value);
        throw error(what + " " + std::to_string(signed_value) + " is negative");
    }
    if (v.is_number_float()) throw error(what + " " + json_text(v) + " is not an integer below 2^64");
    throw error(what + " is " + json_text(v) + ", not an integer");
}

// Reads and checks the header of s.bytes, filling the rest of s. Throws checkpoint_error at the first defect.
inline void read_header(file_state& s) {
    const std::string& file = s.path;
    auto file_error = [&](const std::string& what) {
        return checkpoint_error("safetensors file " + printable(file, 4096) + ": " + what);
    };
    // `key` is a tensor name, "__metadata__", or null for the header as a whole.
    auto error_at = [&](const std::string* key, const std::string& what) {
        if (key == nullptr) return file_error("header: " + what);
        if (*key == "__metadata__") return file_error("__metadata__: " + what);
        return file_error("tensor " + printable(*key) + ": " + what);
    };

    const std::span<const std::byte> bytes = s.bytes;
    if (bytes.size() < 8)
        throw file_error("the file is " + std::to_string(bytes.size()) +
                         " bytes, shorter than the 8-byte header length a safetensors file starts with");
    std::uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | std::to_integer<std::uint64_t>(bytes[i]);
    if (header_length > max_header_bytes)
        throw file_error("header length " + std::to_string(header_length) + " is more than the " +
                         std::to_string(max_header_bytes) + " bytes any real header needs (a corrupt or hostile file)");
    if (header_length > bytes.size() - 8)
        throw file_error("header length " + std::to_string(header_length) + " runs past the end of the file (" +
                         std::to_string(bytes.size()) + " bytes)");
    const auto header = std::string_view(reinterpret_cast<const char*>(bytes.data() + 8),
                                         static_cast<std::size_t>(header_length));
    if (header.empty() || header.front() != '{') throw file_error("the header does not start with '{'");
    s.data = bytes.subspan(8 + static_cast<std::size_t>(header_length));

    // Tensor objects and __metadata__ are at depth 1, shapes and ranges at depth 2: nothing deeper is valid.
    parsed_object parsed = parse_object(header, 2, error_at);

    s.tensors.reserve(parsed.keys.size());
    for (const std::string& key : parsed.keys) {
        const nlohmann::json& entry = *parsed.value.find(key);
        auto error = [&](const std::string& what) { return error_at(&key, what); };
        if (key == "__metadata__") {
            if (!entry.is_object()) throw error("is " + json_text(entry) + ", not an object of strings");
            for (const auto& [name, value] : entry.items()) {
                if (!value.is_string())
                    throw error("the value of " + printable(name) + " is " + json_text(value) + ", not a string");
                s.metadata.emplace(name, value.get<std::string>());
            }
            continue;
        }
        if (!entry.is_object())
            throw error("the entry is " + json_text(entry) + ", not an object {dtype, shape, data_offsets}");
        for (const auto& [field, value] : entry.items())
            if (field != "dtype" && field != "shape" && field != "data_offsets")
                throw error("unexpected field " + printable(field) +
                            " (an entry has exactly dtype, shape and data_offsets)");
        for (const char* field : {"dtype", "shape", "data_offsets"})
            if (!entry.contains(field)) throw error(std::string("missing field \"") + field + "\"");

        tensor_view t;
        t.name = key;
        t.source = file;

        const nlohmann::json& type = entry["dtype"];
        if (!type.is_string()) throw error("dtype is " + json_text(type) + ", not a string");
        const std::optional<dtype> known = dtype_from_name(type.get_ref<const std::string&>());
        if (!known) throw error("unknown dtype " + printable(type.get_ref<const std::string&>(), 64));
        t.dtype = *known;

        const nlohmann::json& shape = entry["shape"];
        if (!shape.is_array()) throw error("shape is " + json_text(shape) + ", not an array of integers");
        t.shape.reserve(shape.size());
        for (const nlohmann::json& extent : shape) t.shape.push_back(json_u64(extent, "shape entry", error));
        // A zero extent makes an empty tensor whatever the other extents are, so it is looked for first; otherwise
        // the product is taken with an overflow check at every step.
        const bool empty = std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end();
        t.element_count = empty ? 0 : 1;
        for (const std::uint64_t extent : t.shape) {
            if (empty) break;
            if (t.element_count > std::numeric_limits<std::uint64_t>::max() / extent)
                throw error("shape " + shape_text(t.shape) + " has 2^64 or more elements");
            t.element_count *= extent;
        }
        const std::uint64_t size = element_size(t.dtype);
        if (t.element_count > std::numeric_limits<std::uint64_t>::max() / size)
            throw error("shape " + shape_text(t.shape) + " of " + std::string(dtype_name(t.dtype)) +
                        " is 2^64 bytes or more");
        const std::uint64_t byte_count = t.element_count * size;

        const nlohmann::json& offsets = entry["data_offsets"];
        if (!offsets.is_array() || offsets.size() != 2)
            throw error("data_offsets is " +
                        (offsets.is_array() ? "an array of " + std::to_string(offsets.size()) : json_text(offsets)) +
                        ", not [begin, end]");
        const std::uint64_t begin = json_u64(offsets[0], "data_offsets begin", error);
        const std::uint64_t end = json_u64(offsets[1], "data_offsets end", error);
        if (begin > end) throw error("data_offsets " + range_text(begin, end) + " begin after they end");
        if (end - begin != byte_count)
            throw error("shape " + shape_text(t.shape) + " of " + std::string(dtype_name(t.dtype)) + " is " +
                        std::to_string(byte_count) + " bytes, but data_offsets " + range_text(begin, end) + " hold " +
                        std::to_string(end - begin));
        if (end > s.data.size())
            throw error("data_offsets " + range_text(begin, end) + " run past the end of the data buffer (" +
                        std::to_string(s.data.size()) + " bytes)");
        t.bytes = s.data.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(byte_count));
        s.tensors.push_back(std::move(t));
    }

    // The ranges must tile the data buffer: no byte in two tensors (one write would change two weights), and no byte
    // in none (the format forbids holes, so a file cannot smuggle a second payload past the header).
    auto begin_of = [&](const tensor_view& t) { return static_cast<std::uint64_t>(t.bytes.data() - s.data.data()); };
    auto end_of = [&](const tensor_view& t) { return begin_of(t) + t.bytes.size(); };
    std::vector<const tensor_view*> by_offset(s.tensors.size());
    for (std::size_t i = 0; i < s.tensors.size(); ++i) by_offset[i] = &s.tensors[i];
    std::sort(by_offset.begin(), by_offset.end(), [&](const tensor_view* a, const tensor_view* b) {
        return std::pair(begin_of(*a), end_of(*a)) < std::pair(begin_of(*b), end_of(*b));
    });
    std::uint64_t covered = 0;
    const tensor_view* previous = nullptr;
    for (const tensor_view* t : by_offset) {
        const std::string range = "data_offsets " + range_text(begin_of(*t), end_of(*t));
        if (begin_of(*t) < covered)
            throw error_at(&t->name, range + " overlap those of tensor " + printable(previous->name) + " " +
                                        range_text(begin_of(*previous), end_of(*previous)));
        if (begin_of(*t) > covered)
            throw error_at(&t->name, range + " leave bytes " + range_text(covered, begin_of(*t)) +
                                        " of the data buffer to no tensor (safetensors allows no holes)");
        covered = end_of(*t);
        previous = t;
    }
    if (covered != s.data.size())
        throw file_error("the last " + std::to_string(s.data.size() - covered) + " bytes of the data buffer (" +
                         std::to_string(s.data.size()) + " bytes) belong to no tensor (safetensors allows no holes)");

    s.by_name.reserve(s.tensors.size());
    for (std::size_t i = 0; i < s.tensors.size(); ++i) s.by_name.emplace(s.tensors[i].name, i);
}

} // namespace detail

// ---------------------------------------------------------------------------------------------------------------------
// One file

class file {
public:
    // Maps the file read-only and checks it. The file must not be truncated while mapped (as with any mapping, reading
    // a page past its new end would raise SIGBUS).
    explicit file(const std::filesystem::path& path) : state_(std::make_unique<detail::file_state>()) {
        state_->path = path.string();
        state_->map = detail::mapping(path, state_->path);
        state_->bytes = state_->map.bytes();
        detail::read_header(*state_);
    }

    // Checks a file already in memory; `name` stands for it in messages. The bytes are not copied and must outlive
    // this object. Everything but the mapping is shared with the constructor above.
    file(std::span<const std::byte> bytes, std::string name) : state_(std::make_unique<detail::file_state>()) {
        state_->path = std::move(name);
        state_->bytes = bytes;
        detail::read_header(*state_);
    }

    // The path (or name) given at construction.
    const std::string& path() const noexcept { return state_->path; }
    // Every tensor, in the order of the header.
    std::span<const tensor_view> tensors() const noexcept { return state_->tensors; }
    const metadata_map& metadata() const noexcept { return state_->metadata; }
    // The data buffer: the bytes after the header, which the tensors' views tile exactly.
    std::span<const std::byte> data() const noexcept { return state_->data; }

    const tensor_view* find(std::string_view name) const noexcept {
        const auto it = state_->by_name.find(name);
        return it == state_->by_name.end() ? nullptr : &state_->tensors[it->second];
    }

    const tensor_view& at(std::string_view name) const {
        if (const tensor_view* t = find(name)) return *t;
        throw checkpoint_error("safetensors file " + detail::printable(state_->path, 4096) + ": tensor " +
                               detail::printable(name) + ": not in this file (it holds " +
                               std::to_string(state_->tensors.size()) + " tensors)");
    }

private:
    // Null only in a moved-from file, which may only be destroyed or assigned to.
    std::unique_ptr<detail::file_state> state_;
};

// ---------------------------------------------------------------------------------------------------------------------
// A checkpoint: one file, or shards listed by an index

namespace detail {

inline bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// In a folder: its one *.safetensors.index.json, else its one *.safetensors; model.* wins where there are several.
inline std::filesystem::path resolve_checkpoint(const std::filesystem::path& path) {
    const std::string shown = printable(path.string(), 4096);
    std::error_code ec;
    const std::filesystem::file_status status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status))
        throw checkpoint_error("checkpoint " + shown + ": does not exist" + (ec ? " (" + ec.message() + ")" : ""));
    if (!std::filesystem::is_directory(status)) return path;

    std::vector<std::string> indexes, singles;
    std::filesystem::directory_iterator it(path, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (ends_with(name, ".safetensors.index.json")) indexes.push_back(name);
        else if (ends_with(name, ".safetensors")) singles.push_back(name);
    }
    if (ec) throw checkpoint_error("checkpoint " + shown + ": cannot list the folder: " + ec.message());
    std::sort(indexes.begin(), indexes.end());
    std::sort(singles.begin(), singles.end());
    auto pick = [&](const std::vector<std::string>& names, std::string_view preferred) -> std::optional<std::string> {
        if (names.size() == 1) return names.front();
        if (std::find(names.begin(), names.end(), preferred) != names.end()) return std::string(preferred);
        if (names.empty()) return std::nullopt;
        std::string list;
        for (const std::string& n : names) list += (list.empty() ? "" : ", ") + printable(n);
        throw checkpoint_error("checkpoint " + shown + ": the folder holds several candidates (" + list +
                               ") and none is " + std::string(preferred) + "; name the one to read");
    };
    if (const auto index = pick(indexes, "model.safetensors.index.json")) return path / *index;
    if (const auto single = pick(singles, "model.safetensors")) return path / *single;
    throw checkpoint_error("checkpoint " + shown +
                           ": the folder holds no .safetensors file and no .safetensors.index.json");
}

// A shard name from an index is untrusted: it must name a file in the index's own folder, nothing above or below.
inline bool plain_file_name(std::string_view name) {
    return !name.empty() && name.find('/') == std::string_view::npos && name.find('\\') == std::string_view::npos &&
           name.find("..") == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

} // namespace detail

class checkpoint {
public:
    // `path`: a folder, a *.safetensors.index.json (shards by "weight_map"), or a single .safetensors file.
    explicit checkpoint(const std::filesystem::path& path) : path_(detail::resolve_checkpoint(path)) {
        if (detail::ends_with(path_.filename().string(), ".json")) open_index();
        else shards_.emplace_back(path_);
        for (const file& shard : shards_)
            for (const tensor_view& t : shard.tensors()) {
                tensors_.push_back(&t);
                by_name_.emplace(t.name, &t);
            }
    }

    // The index, or the single file, that was read.
    const std::filesystem::path& path() const noexcept { return path_; }
    // One file per shard, in the order of their names.
    std::span<const file> shards() const noexcept { return shards_; }
    // Every tensor: by shard, then in each shard's header order.
    std::span<const tensor_view* const> tensors() const noexcept { return tensors_; }

    const tensor_view* find(std::string_view name) const noexcept {
        const auto it = by_name_.find(name);
        return it == by_name_.end() ? nullptr : it->second;
    }

    const tensor_view& at(std::string_view name) const {
        if (const tensor_view* t = find(name)) return *t;
        throw checkpoint_error("checkpoint " + detail::printable(path_.string(), 4096) + ": tensor " +
                               detail::printable(name) + ": not in the checkpoint (it holds " +
                               std::to_string(tensors_.size()) + " tensors)");
    }

private:
    void open_index() {
        const std::string index_name = path_.string();
        auto error = [&](const std::string& what) {
            return checkpoint_error("safetensors index " + detail::printable(index_name, 4096) + ": " + what);
        };
        auto tensor_error = [&](std::string_view tensor, const std::string& what) {
            return error("tensor " + detail::printable(tensor) + ": " + what);
        };

        std::error_code ec;
        const std::uintmax_t size = std::filesystem::file_size(path_, ec);
        if (ec) throw error("cannot read: " + ec.message());
        if (size > max_header_bytes) throw error("is " + std::to_string(size) + " bytes, more than any real index");
        std::string text(static_cast<std::size_t>(size), '\0');
        std::ifstream in(path_, std::ios::binary);
        if (!in || !in.read(text.data(), static_cast<std::streamsize>(text.size())))
            throw error("cannot read " + std::to_string(size) + " bytes");

        // weight_map at depth 1 and its names at depth 2; "metadata" is free-form but kept shallow.
        const detail::parsed_object index = detail::parse_object(
            text, 8, [&](const std::string* key, const std::string& what) {
                return error(key == nullptr ? what : detail::printable(*key) + ": " + what);
            });
        const auto weight_map = index.value.find("weight_map");
        if (weight_map == index.value.end()) throw error("no \"weight_map\"");
        if (!weight_map->is_object())
            throw error("weight_map is " + detail::json_text(*weight_map) + ", not an object");

        // Each shard is opened once, in the order of its name.
        std::map<std::string, std::size_t, std::less<>> number_of_shard;
        for (const auto& [tensor, shard] : weight_map->items()) {
            if (!shard.is_string())
                throw tensor_error(tensor, "the shard is " + detail::json_text(shard) + ", not a file name");
            const std::string& name = shard.get_ref<const std::string&>();
            if (!detail::plain_file_name(name))
                throw tensor_error(tensor, "shard " + detail::printable(name) +
                                               " is not a plain file name in the index's folder");
            number_of_shard.emplace(name, 0);
        }
        const std::filesystem::path folder = path_.parent_path();
        shards_.reserve(number_of_shard.size());
        for (auto& [name, number] : number_of_shard) {
            number = shards_.size();
            try {
                shards_.emplace_back(folder / name);
            } catch (const checkpoint_error& e) {
                throw error("shard " + detail::printable(name) + ": " + e.what());
            }
        }

        // Every mapped tensor is where the map says, and every tensor of every shard is mapped there: a tensor in two
        // shards would be two different weights under one name.
        std::unordered_map<std::string_view, std::size_t> shard_of_tensor;
        for (const auto& [tensor, shard] : weight_map->items()) {
            const std::size_t number = number_of_shard.find(shard.get_ref<const std::string&>())->second;
            const tensor_view* t = shards_[number].find(tensor);
            if (t == nullptr)
                throw tensor_error(tensor, "weight_map puts it in shard " +
                                               detail::printable(shards_[number].path(), 4096) +
                                               ", which does not hold it");
            shard_of_tensor.emplace(t->name, number);
        }
        for (std::size_t number = 0; number < shards_.size(); ++number)
            for (const tensor_view& t : shards_[number].tensors()) {
                const auto it = shard_of_tensor.find(t.name);
                if (it == shard_of_tensor.end())
                    throw tensor_error(t.name, "shard " + detail::printable(shards_[number].path(), 4096) +
                                                   " holds it, but weight_map does not list it");
                if (it->second != number)
                    throw tensor_error(t.name, "it is in two shards, " +
                                                   detail::printable(shards_[it->second].path(), 4096) +
                                                   " (where weight_map puts it) and " +
                                                   detail::printable(shards_[number].path(), 4096));
            }
    }

    std::filesystem::path path_;
    std::vector<file> shards_;
    std::vector<const tensor_view*> tensors_;
    std::unordered_map<std::string_view, const tensor_view*> by_name_;
};

// ---------------------------------------------------------------------------------------------------------------------
// Writing, for fixtures and converted weights

namespace detail {

struct file_layout {
    std::string header;              // the JSON, padded with spaces so that the data buffer starts 8-byte aligned
    std::vector<std::size_t> order;  // tensors in the order of their bytes in the data buffer
};

// Header order is the caller's; data order puts wider elements first (stable), so that with the 8-aligned data buffer
// every tensor starts at a multiple of its element size and a reader may use it in place.
inline file_layout plan_file(std::span<const tensor_view> tensors, const metadata_map& metadata,
                             const std::string& target) {
    auto error = [&](std::string_view tensor, const std::string& what) {
        return usage_error("safetensors::write to " + printable(target, 4096) + ": tensor " + printable(tensor) +
                           ": " + what);
    };
    auto json_string = [&](const std::string& s, std::string_view tensor) {
        try {
            return nlohmann::json(s).dump();
        } catch (const nlohmann::json::exception&) {
            throw error(tensor, printable(s) + " is not valid UTF-8");
        }
    };

    std::set<std::string_view> names;
    std::vector<std::uint64_t> sizes(tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const tensor_view& t = tensors[i];
        if (t.name == "__metadata__") throw error(t.name, "the name is reserved for the metadata");
        if (!names.insert(t.name).second) throw error(t.name, "given twice");
        const std::size_t size = element_size(t.dtype);
        if (size == 0)
            throw error(t.name, "dtype " + std::to_string(static_cast<int>(t.dtype)) + " is not a safetensors dtype");
        std::uint64_t count = 1;
        bool overflow = false;
        for (const std::uint64_t extent : t.shape) {
            if (extent != 0 && count > std::numeric_limits<std::uint64_t>::max() / extent) overflow = true;
            count *= extent;
        }
        if (std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end()) count = 0, overflow = false;
        if (overflow || count != t.element_count)
            throw error(t.name, "element_count " + std::to_string(t.element_count) + " is not the product of shape " +
                             shape_text(t.shape));
        if (count > std::numeric_limits<std::uint64_t>::max() / size || t.bytes.size() != count * size)
            throw error(t.name, std::to_string(t.bytes.size()) + " bytes given for " + std::to_string(count) +
                             " elements of " + std::string(dtype_name(t.dtype)));
        sizes[i] = t.bytes.size();
    }

    file_layout layout;
    layout.order.resize(tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) layout.order[i] = i;
    std::stable_sort(layout.order.begin(), layout.order.end(), [&](std::size_t a, std::size_t b) {
        return element_size(tensors[a].dtype) > element_size(tensors[b].dtype);
    });
    std::vector<std::uint64_t> begins(tensors.size());
    std::uint64_t offset = 0;
    for (const std::size_t i : layout.order) {
        begins[i] = offset;
        offset += sizes[i];
    }

    std::string& h = layout.header;
    h = "{";
    if (!metadata.empty()) {
        h += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [key, value] : metadata) {
            h += (first ? "" : ",") + json_string(key, "__metadata__") + ":" + json_string(value, "__metadata__");
            first = false;
        }
        h += "}";
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const tensor_view& t = tensors[i];
        if (h.size() > 1) h += ",";
        h += json_string(t.name, t.name) + ":{\"dtype\":\"" + std::string(dtype_name(t.dtype)) + "\",\"shape\":[";
        for (std::size_t d = 0; d < t.shape.size(); ++d) h += (d ? "," : "") + std::to_string(t.shape[d]);
        h += "],\"data_offsets\":[" + std::to_string(begins[i]) + "," + std::to_string(begins[i] + sizes[i]) + "]}";
    }
    h += "}";
    h.append((8 - (8 + h.size()) % 8) % 8, ' ');
    return layout;
}

inline std::array<std::byte, 8> length_bytes(std::uint64_t n) {
    std::array<std::byte, 8> out{};
    for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((n >> (8 * i)) & 0xffu);
    return out;
}

} // namespace detail

// A complete safetensors file in memory: `tensors` in header order, with `metadata` as "__metadata__" when not empty.
// A tensor whose fields disagree (bytes, element_count, shape), a repeated or reserved name, or a name that is not
// UTF-8 is a usage_error.
inline std::vector<std::byte> serialize(std::span<const tensor_view> tensors, const metadata_map& metadata = {}) {
    const detail::file_layout layout = detail::plan_file(tensors, metadata, "memory");
    std::size_t size = 8 + layout.header.size();
    for (const tensor_view& t : tensors) size += t.bytes.size();
    std::vector<std::byte> out(size);
    std::byte* at = out.data();
    auto put = [&](std::span<const std::byte> bytes) {
        if (!bytes.empty()) std::memcpy(at, bytes.data(), bytes.size());
        at += bytes.size();
    };
    put(detail::length_bytes(layout.header.size()));
    put(std::as_bytes(std::span(layout.header)));
    for (const std::size_t i : layout.order) put(tensors[i].bytes);
    return out;
}

// The same file written to `path` (replaced if it exists), streamed tensor by tensor rather than built in memory.
inline void write(const std::filesystem::path& path, std::span<const tensor_view> tensors,
                  const metadata_map& metadata = {}) {
    const std::string shown = path.string();
    const detail::file_layout layout = detail::plan_file(tensors, metadata, shown);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    auto put = [&](std::span<const std::byte> bytes) {
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    };
    const auto length = detail::length_bytes(layout.header.size());
    put(length);
    put(std::as_bytes(std::span(layout.header)));
    for (const std::size_t i : layout.order) put(tensors[i].bytes);
    out.close();
    if (!out) {
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
        throw checkpoint_error("safetensors file " + detail::printable(shown, 4096) + ": cannot write it");
    }
}

} // namespace vkfuse::safetensors
