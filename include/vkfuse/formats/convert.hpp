// vkfuse/formats/convert.hpp — whole tensors from one storage format to another, fast, and what each format costs in
// accuracy.
//
// Why this exists: a checkpoint loader has bytes in one format (f32, f16 or bf16 from safetensors; q8_0 or q4_0 from
// GGUF) and wants them in another (what the program stores, or f32 for the reference), for a [rows, cols] row-major
// tensor. Quantising a 1B-parameter model has to take seconds, so the work is split over threads and each thread runs
// the vectorising loops of half.hpp and blocks.hpp on chunks small enough to stay in L1/L2.
//
// Bytes come as std::span<const std::byte> because they come from files: any alignment is accepted (everything is
// moved with memcpy into aligned scratch space), and the host must be little-endian, as the files are.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "blocks.hpp"
#include "half.hpp"

namespace vkfuse::formats {

// How a tensor's weights are stored. Arithmetic is f32 whatever the storage.
enum class weight_format : std::uint8_t { f32, f16, bf16, q8_0, q4_0 };

// The storage format of a buffer dtype (vkfuse/core/types.hpp); u32 has none.
[[nodiscard]] constexpr weight_format format_of(dtype_code c) {
    switch (c) {
    case dtype_code::f16: return weight_format::f16;
    case dtype_code::bf16: return weight_format::bf16;
    case dtype_code::q8_0: return weight_format::q8_0;
    case dtype_code::q4_0: return weight_format::q4_0;
    default: return weight_format::f32;
    }
}

inline constexpr weight_format all_weight_formats[] = {weight_format::f32, weight_format::f16, weight_format::bf16,
                                                       weight_format::q8_0, weight_format::q4_0};

[[nodiscard]] constexpr std::string_view format_name(weight_format f) {
    switch (f) {
    case weight_format::f32: return "f32";
    case weight_format::f16: return "f16";
    case weight_format::bf16: return "bf16";
    case weight_format::q8_0: return "q8_0";
    case weight_format::q4_0: return "q4_0";
    }
    return "?";
}

// Whether the format stores 32-weight blocks, so that a row's length must be a multiple of 32.
[[nodiscard]] constexpr bool is_block_format(weight_format f) {
    return f == weight_format::q8_0 || f == weight_format::q4_0;
}

// Bytes for `values` weights. For a block format `values` must be a multiple of 32 (checked by row_bytes).
[[nodiscard]] constexpr std::size_t bytes_for(weight_format f, std::size_t values) {
    switch (f) {
    case weight_format::f32: return values * 4;
    case weight_format::f16:
    case weight_format::bf16: return values * 2;
    case weight_format::q8_0: return values / block_size * sizeof(block_q8_0);
    case weight_format::q4_0: return values / block_size * sizeof(block_q4_0);
    }
    return 0;
}

namespace detail {

inline std::string shape_text(std::size_t rows, std::size_t cols) {
    return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

// GGUF requires every row of a block-format tensor to be whole blocks; so do we, rather than pad silently, because a
// padded tensor would no longer be the bytes a GGUF file holds.
inline void require_whole_blocks(weight_format f, std::size_t rows, std::size_t cols) {
    if (is_block_format(f) && cols % block_size != 0)
        throw usage_error("vkfuse::formats: a " + shape_text(rows, cols) + " tensor cannot be stored as " +
                          std::string(format_name(f)) + ": " + std::string(format_name(f)) +
                          " stores each row as blocks of " + std::to_string(block_size) + " weights (as GGUF does), " +
                          "and rows of " + std::to_string(cols) + " are not a multiple of " +
                          std::to_string(block_size) + "; use f32, f16 or bf16 for this tensor");
}

} // namespace detail

// Bytes of one row of `cols` weights; throws vkfuse::usage_error for a block format and a cols not a multiple of 32.
[[nodiscard]] inline std::size_t row_bytes(weight_format f, std::size_t cols) {
    detail::require_whole_blocks(f, 1, cols);
    return bytes_for(f, cols);
}

// Bytes of a row-major [rows, cols] tensor; the same check, naming the shape.
[[nodiscard]] inline std::size_t tensor_bytes(weight_format f, std::size_t rows, std::size_t cols) {
    detail::require_whole_blocks(f, rows, cols);
    const std::size_t per_row = bytes_for(f, cols);
    if (per_row != 0 && rows > std::numeric_limits<std::size_t>::max() / per_row)
        throw usage_error("vkfuse::formats: a " + detail::shape_text(rows, cols) + " " +
                          std::string(format_name(f)) + " tensor has more bytes than size_t can count");
    return rows * per_row;
}

namespace detail {

// Weights handled at a time by one thread: a multiple of 32 (so chunks are whole blocks), and small enough that the
// float scratch and the staged source and destination stay in L1/L2 (3 x 16 KiB at most).
inline constexpr std::size_t chunk_values = 4096;
// Below this many weights per thread, starting a thread costs more than it saves.
inline constexpr std::size_t min_values_per_thread = std::size_t{1} << 16;

// One thread's scratch space. Staging goes through memcpy so that bytes at any offset of a file are read and written
// without alignment or aliasing questions.
struct chunk_scratch {
    std::unique_ptr<float[]> values = std::make_unique<float[]>(chunk_values);
    // Bytes for chunk_values weights in any format (f32 is the widest). A std::byte array, so that the f16, bf16 or
    // block objects staged in it may live there; new[] aligns it for all of them.
    std::unique_ptr<std::byte[]> staged = std::make_unique<std::byte[]>(chunk_values * sizeof(float));

    template <class T>
    T* staged_as() {
        static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
        return reinterpret_cast<T*>(staged.get());
    }
};

// Source bytes of `n` weights -> n floats in scratch.values.
inline void decode_chunk(const std::byte* from, weight_format format, std::size_t n, chunk_scratch& s) {
    float* out = s.values.get();
    switch (format) {
    case weight_format::f32: std::memcpy(out, from, n * sizeof(float)); return;
    case weight_format::f16: {
        f16_bits* in = s.staged_as<f16_bits>();
        std::memcpy(in, from, n * sizeof(f16_bits));
        for (std::size_t i = 0; i < n; ++i) out[i] = to_f32(in[i]);
        return;
    }
    case weight_format::bf16: {
        bf16_bits* in = s.staged_as<bf16_bits>();
        std::memcpy(in, from, n * sizeof(bf16_bits));
        for (std::size_t i = 0; i < n; ++i) out[i] = to_f32(in[i]);
        return;
    }
    case weight_format::q8_0: {
        block_q8_0* in = s.staged_as<block_q8_0>();
        std::memcpy(static_cast<void*>(in), from, n / block_size * sizeof(block_q8_0));
        dequantize_blocks(in, out, n / block_size);
        return;
    }
    case weight_format::q4_0: {
        block_q4_0* in = s.staged_as<block_q4_0>();
        std::memcpy(static_cast<void*>(in), from, n / block_size * sizeof(block_q4_0));
        dequantize_blocks(in, out, n / block_size);
        return;
    }
    }
}

// n floats in scratch.values -> destination bytes. Returns how the quantiser fared (always ok for f32/f16/bf16).
inline blocks_result encode_chunk(std::byte* to, weight_format format, std::size_t n, chunk_scratch& s) {
    const float* in = s.values.get();
    switch (format) {
    case weight_format::f32: std::memcpy(to, in, n * sizeof(float)); return {};
    case weight_format::f16: {
        f16_bits* out = s.staged_as<f16_bits>();
        for (std::size_t i = 0; i < n; ++i) out[i] = to_f16(in[i]);
        std::memcpy(to, out, n * sizeof(f16_bits));
        return {};
    }
    case weight_format::bf16: {
        bf16_bits* out = s.staged_as<bf16_bits>();
        for (std::size_t i = 0; i < n; ++i) out[i] = to_bf16(in[i]);
        std::memcpy(to, out, n * sizeof(bf16_bits));
        return {};
    }
    case weight_format::q8_0: {
        block_q8_0* out = s.staged_as<block_q8_0>();
        const blocks_result r = quantize_blocks(in, out, n / block_size);
        std::memcpy(to, static_cast<const void*>(out), n / block_size * sizeof(block_q8_0));
        return r;
    }
    case weight_format::q4_0: {
        block_q4_0* out = s.staged_as<block_q4_0>();
        const blocks_result r = quantize_blocks(in, out, n / block_size);
        std::memcpy(to, static_cast<const void*>(out), n / block_size * sizeof(block_q4_0));
        return r;
    }
    }
    return {};
}

inline void require_bytes(std::string_view side, std::size_t have, weight_format f, std::size_t rows,
                          std::size_t cols) {
    const std::size_t need = tensor_bytes(f, rows, cols);
    if (have != need)
        throw usage_error("vkfuse::formats::convert: the " + std::string(side) + " holds " + std::to_string(have) +
                          " bytes, but a " + shape_text(rows, cols) + " " + std::string(format_name(f)) +
                          " tensor is " + std::to_string(need) + " bytes");
}

// Threads asked for are used as asked (up to one per chunk); left to us, one per core, fewer for small tensors.
inline unsigned thread_count(unsigned requested, std::size_t values) {
    if (requested != 0) return requested;
    const std::size_t useful = std::max<std::size_t>(1, values / min_values_per_thread);
    return static_cast<unsigned>(std::min<std::size_t>(std::max(1u, std::thread::hardware_concurrency()), useful));
}

} // namespace detail

// Converts a row-major [rows, cols] tensor stored as `from_format` in `from` into `to_format` in `to` (whose size must
// be exactly tensor_bytes(to_format, rows, cols)). Any pair of formats works: f32/f16/bf16 -> anything is the
// loader's path, q8_0/q4_0 -> f32 the reference's; every conversion goes through f32, where f16 and bf16 and the
// dequantised blocks are exact, so the result is what the single-value functions give. The work is split over
// `threads` threads (0: one per core, fewer for a small tensor); the result does not depend on how many.
//
// Throws vkfuse::usage_error, naming the shape, for a size mismatch or a block format with cols not a multiple of 32;
// and, naming the row and columns, for a block that cannot be quantised (a NaN or infinity, or an f16 scale overflow;
// see blocks.hpp). `to` is then partly written.
inline void convert(std::span<const std::byte> from, weight_format from_format, std::span<std::byte> to,
                    weight_format to_format, std::size_t rows, std::size_t cols, unsigned threads = 0) {
    detail::require_bytes("source", from.size(), from_format, rows, cols);
    detail::require_bytes("destination", to.size(), to_format, rows, cols);
    if (rows == 0 || cols == 0) return;
    if (from_format == to_format) {  // the same bytes
        std::memcpy(to.data(), from.data(), from.size());
        return;
    }

    const std::size_t from_row = bytes_for(from_format, cols);
    const std::size_t to_row = bytes_for(to_format, cols);
    // Work is handed out in (row, chunk) units, so that a tensor of few long rows is split as well as many short ones.
    const std::size_t chunks_per_row = (cols + detail::chunk_values - 1) / detail::chunk_values;
    const std::size_t units = rows * chunks_per_row;
    const auto workers =
        static_cast<unsigned>(std::min<std::size_t>(detail::thread_count(threads, rows * cols), units));

    std::vector<std::exception_ptr> failures(workers);
    std::atomic<bool> failed{false};

    auto work = [&](unsigned worker) {
        try {
            detail::chunk_scratch scratch;
            const std::size_t first = units * worker / workers, last = units * (worker + 1) / workers;
            for (std::size_t unit = first; unit < last && !failed.load(std::memory_order_relaxed); ++unit) {
                const std::size_t row = unit / chunks_per_row;
                const std::size_t col = unit % chunks_per_row * detail::chunk_values;
                const std::size_t n = std::min(detail::chunk_values, cols - col);
                detail::decode_chunk(from.data() + row * from_row + bytes_for(from_format, col), from_format, n,
                                     scratch);
                const detail::blocks_result r = detail::encode_chunk(
                    to.data() + row * to_row + bytes_for(to_format, col), to_format, n, scratch);
                if (r.status != block_status::ok) {
                    const std::size_t c = col + r.block * block_size;
                    throw usage_error(detail::describe_block_failure(
                        format_name(to_format), r.status,
                        "row " + std::to_string(row) + ", columns " + std::to_string(c) + ".." +
                            std::to_string(c + block_size - 1) + " of a " + detail::shape_text(rows, cols) +
                            " tensor"));
                }
            }
        } catch (...) {
            failures[worker] = std::current_exception();
            failed.store(true, std::memory_order_relaxed);
        }
    };

    std::vector<std::jthread> pool;
    pool.reserve(workers - 1);
    for (unsigned w = 1; w < workers; ++w) pool.emplace_back(work, w);
    work(0);
    pool.clear();  // joins
    for (const std::exception_ptr& e : failures)
        if (e) std::rethrow_exception(e);  // the earliest rows' failure
}

// The index of the first value of `bytes` (stored as `format`, f32, f16 or bf16) that is a NaN or an infinity, if any.
// A checkpoint holding one would make every later value of the model non-finite: the loader refuses it by name
// (model::load_weights). Reads the exponent bits only, so it runs at the speed of memory.
[[nodiscard]] inline std::optional<std::size_t> first_non_finite(std::span<const std::byte> bytes, weight_format format) {
    auto scan = [&](auto word, std::size_t size, auto all_ones) -> std::optional<std::size_t> {
        using word_t = decltype(word);
        const std::size_t n = bytes.size() / size;
        constexpr std::size_t run = 4096;  // values looked at before the first test: the loop stays branch-free
        for (std::size_t at = 0; at < n; at += run) {
            const std::size_t end = std::min(n, at + run);
            bool any = false;
            for (std::size_t i = at; i < end; ++i) {
                word_t w;
                std::memcpy(&w, bytes.data() + i * size, size);
                any |= (w & all_ones) == all_ones;
            }
            if (!any) continue;
            for (std::size_t i = at; i < end; ++i) {
                word_t w;
                std::memcpy(&w, bytes.data() + i * size, size);
                if ((w & all_ones) == all_ones) return i;
            }
        }
        return std::nullopt;
    };
    switch (format) {
    case weight_format::f32: return scan(std::uint32_t{}, 4, std::uint32_t{0x7f800000u});
    case weight_format::f16: return scan(std::uint16_t{}, 2, std::uint16_t{0x7c00u});
    case weight_format::bf16: return scan(std::uint16_t{}, 2, std::uint16_t{0x7f80u});
    default: throw usage_error("vkfuse formats: first_non_finite reads f32, f16 and bf16 values, not " +
                               std::string(format_name(format)));
    }
}

// The same, returning new storage: f32 values -> `format`.
[[nodiscard]] inline std::vector<std::byte> encode(std::span<const float> values, weight_format format,
                                                   std::size_t rows, std::size_t cols, unsigned threads = 0) {
    std::vector<std::byte> out(tensor_bytes(format, rows, cols));
    convert(std::as_bytes(values), weight_format::f32, out, format, rows, cols, threads);
    return out;
}

// Stored bytes in `format` -> f32 values (the reference's view of a stored tensor).
[[nodiscard]] inline std::vector<float> decode(std::span<const std::byte> bytes, weight_format format,
                                               std::size_t rows, std::size_t cols, unsigned threads = 0) {
    std::vector<float> out(tensor_bytes(weight_format::f32, rows, cols) / sizeof(float));
    convert(bytes, format, std::as_writable_bytes(std::span<float>(out)), weight_format::f32, rows, cols, threads);
    return out;
}

// What storing `values` as `format` costs: ||decode(encode(values)) - values||_2 / ||values||_2, computed in double.
// The values are taken as one row (a multiple of 32 long for the block formats; blocks never span rows, so for such
// lengths this is also the error of any [rows, cols] arrangement with cols a multiple of 32). docs/formats.md quotes
// it on N(0, 1) data and on data with outliers.
[[nodiscard]] inline double relative_l2_error(std::span<const float> values, weight_format format,
                                              unsigned threads = 0) {
    const std::vector<std::byte> stored = encode(values, format, 1, values.size(), threads);
    const std::vector<float> back = decode(stored, format, 1, values.size(), threads);
    double error = 0, norm = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        const double diff = static_cast<double>(back[i]) - static_cast<double>(values[i]);
        error += diff * diff;
        norm += static_cast<double>(values[i]) * static_cast<double>(values[i]);
    }
    return norm == 0 ? std::sqrt(error) : std::sqrt(error / norm);
}

} // namespace vkfuse::formats
