// vkfuse/program/program.hpp — a program type made runnable: the plan turned into Vulkan objects.
//
//     vkfuse::context ctx;                            // the best device (VKFUSE_DEVICE overrides)
//     vkfuse::program prog(ctx, y = x + w * x);      // compiles the kernels; allocates every buffer
//     prog.upload("x", xs);  prog.upload("w", ws);
//     vkfuse::vulkan::timing t = prog.run();
//     std::vector<float> out = prog.download("y");
//
// Everything about a kernel — its buffers and their order, its helpers and shared memory, its lanes rule and work
// units — comes from the plan's records (plan/records.hpp); this layer only chooses the launch for the device and
// creates what Vulkan needs. Buffers are addressed by the placeholder names of the expression.
//
// The command buffer is recorded once, at the first run, and re-recorded only when bind() swaps a buffer: params and
// indices live in a parameter block the host writes before each run, so a decode loop that changes the position
// every token submits the same commands every time.
//
// Thread safety: a program may be used from several threads; its calls are serialised by a lock it owns (a run()
// waits for another thread's run() or download() to finish). Programs of one context may run on different threads;
// their submissions take turns on the context's one queue.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/text.hpp"
#include "../formats/convert.hpp"
#include "../glsl/source.hpp"
#include "../vulkan/buffer.hpp"
#include "../vulkan/context.hpp"
#include "../vulkan/kernel.hpp"
#include "../vulkan/sequence.hpp"
#include "launch.hpp"

namespace vkfuse {

namespace detail {

inline std::string role_name(role r) {
    switch (r) {
    case role::input: return "input";
    case role::weight: return "weight";
    case role::param: return "param";
    case role::output: return "output";
    case role::state: return "state";
    case role::table: return "table";
    }
    return "?";
}

inline std::string megabytes(std::uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f MB", static_cast<double>(bytes) / 1e6);
    return text;
}

} // namespace detail

// The runnable form of a program type `Program` (the type of `y = expression` or of layer_graph(...)), planned with
// strategy `How`.
template <class Program, strategy How = strategy::fused>
class program {
public:
    using info = glsl::compiled<Program, How>;
    using packed_info = glsl::compiled<Program, How, true>;
    static constexpr auto& plan = info::plan;
    static constexpr strategy how = How;
    // Dispatches per run: one per kernel, or one for a single-dispatch program.
    static constexpr int shader_count = plan.shader_count();
    // A repeat<> program runs its kernels once per position (single_dispatch loops inside its one dispatch).
    static constexpr bool repeating = plan.loop_param >= 0;
    static constexpr int runs_per_call =
        repeating && How != strategy::single_dispatch ? static_cast<int>(plan.loop_count) : 1;
    static constexpr int dispatch_count = shader_count * runs_per_call;

    explicit program(context& ctx, program_options options = {})
        : ctx_(&ctx), launch_(detail::choose_launch(ctx.device(), options, How == strategy::single_dispatch)),
          lock_(std::make_unique<std::mutex>()) {
        fit_shared_memory(options.workgroup_size == 0);
        std::uint32_t limit = ctx.device().max_storage_buffers_per_stage;
        if (options.max_bindings != 0) limit = std::min(limit, options.max_bindings);
        int widest = 0;
        for (int s = 0; s < shader_count; ++s) widest = std::max(widest, plan.shader(s).binding_count);
        packed_ = options.pack_buffers || static_cast<std::uint32_t>(widest) > limit;
        check_sizes();
        build_kernels();
        allocate_buffers();
    }
    program(context& ctx, const Program&, program_options options = {}) : program(ctx, options) {}
    program(context& ctx, const Program&, strategy_tag<How>, program_options options = {}) : program(ctx, options) {}

    program(const program&) = delete;
    program& operator=(const program&) = delete;
    program(program&&) = default;
    program& operator=(program&&) = default;

    // ---- data in and out -------------------------------------------------------------------------------------

    // Copies f32 values into buffer `name`: an input, a weight or a state; the count must match its shape. A buffer
    // stored as f16, bf16, q8_0 or q4_0 gets the values converted (rounded to nearest even; quantised as GGUF does).
    void upload(std::string_view name, std::span<const float> data) {
        std::lock_guard lock(*lock_);
        const int b = uploadable(name);
        check_size(b, data.size(), "upload");
        const auto& s = plan.buffers[b];
        if (s.dtype == dtype_code::f32)
            write_region(b, std::as_bytes(data));
        else
            write_region(b, formats::encode(data, formats::format_of(s.dtype), rows_of(b), cols_of(b)));
        written_[static_cast<std::size_t>(b)] = true;
    }
    void upload(std::string_view name, const std::vector<float>& data) { upload(name, std::span<const float>(data)); }

    // Copies a tensor already in `format` (say a bf16 checkpoint's bytes) into buffer `name`, converting it to the
    // buffer's storage if that differs: bf16 to q4_0 quantises, bf16 to bf16 copies.
    void upload_encoded(std::string_view name, std::span<const std::byte> data, formats::weight_format format) {
        std::lock_guard lock(*lock_);
        const int b = uploadable(name);
        const std::size_t rows = rows_of(b), cols = cols_of(b);
        if (data.size() != formats::tensor_bytes(format, rows, cols))
            throw usage_error("vkfuse program: upload of " + std::to_string(data.size()) + " bytes of " +
                              std::string(formats::format_name(format)) + ", but " + describe_buffer(b) + ", which " +
                              std::to_string(formats::tensor_bytes(format, rows, cols)) + " bytes of " +
                              std::string(formats::format_name(format)) + " would hold.");
        const formats::weight_format storage = formats::format_of(plan.buffers[b].dtype);
        if (storage == format) {
            write_region(b, data);
        } else {
            std::vector<std::byte> converted(formats::tensor_bytes(storage, rows, cols));
            formats::convert(data, format, converted, storage, rows, cols);
            write_region(b, converted);
        }
        written_[static_cast<std::size_t>(b)] = true;
    }

    // Copies u32 values (token ids) into u32 buffer `name`: an input or a state.
    void upload_indices(std::string_view name, std::span<const std::uint32_t> data) {
        std::lock_guard lock(*lock_);
        const int b = slot(name);
        if (plan.buffers[b].dtype != dtype_code::u32 || plan.buffers[b].slot_role == role::output)
            throw usage_error("vkfuse program: " + describe_buffer(b) + "; upload_indices fills u32 inputs and states.");
        check_size(b, data.size(), "upload");
        write_region(b, std::as_bytes(data));
        written_[static_cast<std::size_t>(b)] = true;
    }

    // The contents of f32 buffer `name`: an output, a named result, a state, or what was uploaded. A u32 output (an
    // argmax) comes from download_indices; a value nothing has written yet is an error, not zeros.
    std::vector<float> download(std::string_view name) const {
        std::lock_guard lock(*lock_);
        const int b = readable(name, dtype_code::f32);
        const auto& s = plan.buffers[b];
        if (s.dtype != dtype_code::f32) {  // 16-bit or blocks: the stored bits, as the values they stand for
            std::vector<std::byte> stored(s.bytes());
            read_region(b, stored);
            return formats::decode(stored, formats::format_of(s.dtype), rows_of(b), cols_of(b));
        }
        std::vector<float> out(s.elements);
        read_region(b, std::as_writable_bytes(std::span<float>(out)));
        return out;
    }
    // The contents of a u32 buffer (an argmax output).
    std::vector<std::uint32_t> download_indices(std::string_view name) const {
        std::lock_guard lock(*lock_);
        const int b = readable(name, dtype_code::u32);
        std::vector<std::uint32_t> out(plan.buffers[b].elements);
        read_region(b, std::as_writable_bytes(std::span<std::uint32_t>(out)));
        return out;
    }

    // Sets runtime scalar `name` (a param<"name"> leaf). Takes effect at the next run; nothing is re-recorded.
    void set_param(std::string_view name, float value) {
        std::lock_guard lock(*lock_);
        const int i = param(name, dtype_code::f32);
        set_word(i, std::bit_cast<std::uint32_t>(value));
    }
    // Sets runtime index `name` (a uint_param<"name"> leaf: a position or a token); it must be inside every table and
    // cache it indexes. Takes effect at the next run; nothing is re-recorded.
    void set_index(std::string_view name, std::uint32_t value) {
        std::lock_guard lock(*lock_);
        const int i = param(name, dtype_code::u32);
        if (i == plan.loop_param)
            throw usage_error("vkfuse program: index '" + std::string(name) + "' is the one repeat<> runs over; each "
                              "run goes through all " + std::to_string(plan.loop_count) + " positions itself.");
        const std::uint32_t limit = plan.param_limit[i];
        if (limit != 0 && value >= limit)
            throw usage_error("vkfuse program: index '" + std::string(name) + "' = " + std::to_string(value) +
                              " is out of range: the tables and caches it indexes hold " + std::to_string(limit) +
                              " rows.");
        set_word(i, value);
    }

    // Zeroes state `name` (a KV cache), as it was when the program was made: a new sequence starts from here.
    void reset_state(std::string_view name) {
        std::lock_guard lock(*lock_);
        const int b = slot(name);
        if (plan.buffers[b].slot_role != role::state)
            throw usage_error("vkfuse program: " + describe_buffer(b) + "; only states can be reset.");
        zero(b);
    }
    // Zeroes every state.
    void reset_states() {
        std::lock_guard lock(*lock_);
        for (int b = 0; b < plan.buffer_count; ++b)
            if (plan.buffers[b].slot_role == role::state) zero(b);
    }

    // Uses an existing buffer for `name` (to share weights or caches between programs); it must have exactly the
    // size the placeholder's shape needs and outlive its use here. The next run records its commands anew.
    void bind(std::string_view name, vulkan::buffer& external) {
        std::lock_guard lock(*lock_);
        const int b = slot(name);
        if (packed_)
            throw usage_error("vkfuse program: this program packs all its buffers into one (its kernels need more "
                              "bindings than the device allows), so '" + std::string(name) +
                              "' cannot be bound to an outside buffer; upload its data instead.");
        if (plan.buffers[b].slot_role == role::table)
            throw usage_error("vkfuse program: '" + std::string(name) + "' is a table vkfuse computes itself.");
        if (external.size() != plan.buffers[b].bytes())
            throw usage_error("vkfuse program: bind of a buffer of " + std::to_string(external.size()) +
                              " bytes, but " + describe_buffer(b) + ".");
        bound_[static_cast<std::size_t>(b)] = &external;
        written_[static_cast<std::size_t>(b)] = true;  // what it holds is the caller's to know
        sequence_.reset();
    }

    // The buffer currently used for `name` (when packed, the one buffer that holds them all).
    vulkan::buffer& buffer(std::string_view name) {
        std::lock_guard lock(*lock_);
        const int b = slot(name);
        return packed_ ? *arena_ : *bound_[static_cast<std::size_t>(b)];
    }

    // Fills outputs, named results and temporaries with NaN, so a kernel that skips an element cannot pass a check.
    void poison() {
        std::lock_guard lock(*lock_);
        for (int b = 0; b < plan.buffer_count; ++b) {
            if (plan.buffers[b].slot_role != role::output || plan.in_shared_memory(b)) continue;
            fill(b, 0x7fc00000u);
        }
    }

    // True when every buffer lives in one binding (see program_options::max_bindings).
    bool packed() const { return packed_; }

    // ---- running ---------------------------------------------------------------------------------------------

    // Runs every dispatch in one command buffer (barriers between them), submits and waits. The first run records
    // the command buffer (and, on a cold driver cache, includes the driver's compilation of the pipelines).
    vulkan::timing run() {
        std::lock_guard lock(*lock_);
        ensure_ready();
        const vulkan::timing t = sequence_->run();
        mark_outputs_written();
        return t;
    }

    // Runs every dispatch as a submit of its own, waiting for each: the naive baseline of the benchmarks.
    vulkan::timing run_each_submitted() {
        std::lock_guard lock(*lock_);
        ensure_ready();
        const vulkan::timing t = sequence_->run_each_submitted();
        mark_outputs_written();
        return t;
    }

    // ---- inspection ------------------------------------------------------------------------------------------

    const launch_config& launch() const { return launch_; }
    const vulkan::device_info& device() const { return ctx_->device(); }
    // The GLSL of shader s, as compiled (packed or not).
    std::string_view glsl(int shader) const {
        return (packed_ ? packed_info::sources : info::sources)[static_cast<std::size_t>(shader)];
    }
    // Invocations per row of kernel k's matvec work (under single_dispatch: of phase k).
    std::uint32_t lanes(int k) const { return vkfuse::plan::choose_lanes(plan.kernels[k], How, launch_.facts()); }
    // Workgroups dispatched by shader s on this device.
    std::uint32_t workgroups(int s) const {
        if (How == strategy::single_dispatch) return 1;
        const std::uint64_t groups = vkfuse::plan::workgroups(plan.kernels[s], launch_.workgroup_size, lanes(s));
        return static_cast<std::uint32_t>(std::min<std::uint64_t>(groups, ctx_->device().max_workgroup_count[0]));
    }
    // Buffers of shader s, in binding order.
    static std::vector<int> shader_buffers(int s) {
        const vkfuse::plan::shader_record sh = plan.shader(s);
        std::vector<int> out;
        for (int i = 0; i < sh.binding_count; ++i) out.push_back(sh.bindings[i].buffer);
        return out;
    }
    // How many times the command buffer has been recorded: once, at the first run, and again after each bind().
    // Setting params and indices records nothing.
    std::size_t recordings() const {
        std::lock_guard lock(*lock_);
        return recordings_;
    }
    // How many times a run streams the weight matrix `name` (every matrix of a plan: exactly once).
    static int matrix_reads(std::string_view name) {
        const int b = plan.buffer_index(name);
        return b < 0 ? 0 : plan.matrix_reads(b);
    }

    // The plan as a table, one line per kernel: what it computes, its work units, its launch on this device, the
    // weight bytes it streams and its buffers in binding order.
    std::string describe() const {
        std::string text = std::string(strategy_name(How)) + ": " + std::to_string(dispatch_count) + " dispatch" +
                           (dispatch_count == 1 ? "" : "es") + (packed_ ? ", buffers packed into one binding" : "") +
                           "\n";
        string_sink sink{&text};
        vkfuse::text<string_sink> t(sink);
        for (int k = 0; k < plan.kernel_count; ++k) {
            const vkfuse::plan::kernel_record& kr = plan.kernels[k];
            t << (How == strategy::single_dispatch ? "  phase " : "  kernel ") << k + 1 << ": "
              << vkfuse::plan::kind_name(kr.kind) << " computing";
            for (int r = 0; r < kr.segment_count; ++r) {
                t << (r ? ", " : " ");
                plan.label(t, kr.segments[r].root);
                t << '[' << kr.segments[r].length << ']';
            }
            if (kr.kind == vkfuse::plan::kernel_kind::attention)
                t << "; " << kr.heads << " heads, "
                  << (How == strategy::single_dispatch ? "all at once" : "a workgroup each");
            else
                t << "; " << kr.units << " units";
            if (kr.kind == vkfuse::plan::kernel_kind::matvec)
                t << " (rows or rope row pairs), " << lanes(k) << " invocations per row";
            const int shader = How == strategy::single_dispatch ? 0 : k;
            t << "; " << workgroups(shader) << " workgroups of " << launch_.workgroup_size;
            if (kr.matrix_bytes) t << "; streams " << detail::megabytes(kr.matrix_bytes) << " of weights";
            t << "; buffers";
            for (int i = 0; i < kr.binding_count; ++i) {
                const auto& b = plan.buffers[kr.bindings[i].buffer];
                t << (i ? ", " : " ") << (kr.bindings[i].writes() ? "->" : "");
                if (b.temporary)
                    t << 't' << b.node;
                else
                    t << b.name.view();
            }
            t << '\n';
        }
        return text;
    }

private:
    int slot(std::string_view name) const {
        const int b = plan.buffer_index(name);
        if (b < 0) throw usage_error("vkfuse program: no buffer named '" + std::string(name) + "'. " + names_text());
        return b;
    }

    // A buffer the caller may fill: an input, a weight or a state.
    int uploadable(std::string_view name) const {
        const int b = slot(name);
        const auto& s = plan.buffers[b];
        if (s.slot_role == role::table)
            throw usage_error("vkfuse program: '" + std::string(name) + "' is a table vkfuse computes itself.");
        if (s.slot_role == role::output)
            throw usage_error("vkfuse program: " + describe_buffer(b) + "; the program computes it, so it cannot be "
                              "uploaded. Upload its inputs, weights and states.");
        if (s.dtype == dtype_code::u32)
            throw usage_error("vkfuse program: " + describe_buffer(b) + "; fill it with upload_indices.");
        return b;
    }

    // A buffer as the matrix its storage is laid out by: rows of `cols` values (a vector is one row).
    static std::size_t rows_of(int b) {
        return plan.buffers[b].cols != 0 ? static_cast<std::size_t>(plan.buffers[b].rows) : 1;
    }
    static std::size_t cols_of(int b) {
        return static_cast<std::size_t>(plan.buffers[b].cols != 0 ? plan.buffers[b].cols : plan.buffers[b].elements);
    }

    // The buffer of `name` if it holds `want` values (f32 stands for every float storage) that something wrote.
    int readable(std::string_view name, dtype_code want) const {
        const int b = slot(name);
        const auto& s = plan.buffers[b];
        if ((s.dtype == dtype_code::u32) != (want == dtype_code::u32))
            throw usage_error("vkfuse program: " + describe_buffer(b) + "; " +
                              (s.dtype == dtype_code::u32 ? "download it with download_indices(\"" + std::string(name) +
                                                                "\")."
                                                          : "download it with download(\"" + std::string(name) + "\")."));
        if (!written_[static_cast<std::size_t>(b)])
            throw usage_error("vkfuse program: " + describe_buffer(b) + " and nothing has written it yet; " +
                              (s.slot_role == role::output ? "run() the program first."
                                                           : "upload(\"" + std::string(name) + "\", ...) it first."));
        return b;
    }

    int param(std::string_view name, dtype_code want) const {
        const int i = plan.param_index(name);
        if (i < 0)
            throw usage_error("vkfuse program: no " + std::string(want == dtype_code::u32 ? "index" : "param") +
                              " named '" + std::string(name) + "'. " + names_text());
        if (plan.g[plan.params[i]].dtype != want)
            throw usage_error("vkfuse program: '" + std::string(name) + "' is " +
                              (want == dtype_code::f32 ? "an index: use set_index" : "a param: use set_param"));
        return i;
    }

    void set_word(int i, std::uint32_t bits) {
        params_->write(4u * static_cast<std::size_t>(plan.param_word[i]), std::as_bytes(std::span(&bits, 1)));
        param_set_[static_cast<std::size_t>(i)] = true;
    }

    static std::string describe_buffer(int b) {
        const auto& s = plan.buffers[b];
        const std::string shape = s.cols != 0 ? std::to_string(s.rows) + ", " + std::to_string(s.cols)
                                              : std::to_string(s.elements);
        const std::string what = s.slot_role == role::output && !plan.is_output(s.node) ? "named result"
                                                                                        : detail::role_name(s.slot_role);
        return what + " '" + std::string(s.name.view()) + "' is " + std::string(dtype_name(s.dtype)) + "[" + shape +
               "] = " + std::to_string(s.bytes()) + " bytes";
    }

    static std::string names_text() {
        std::string text = "The program has:";
        for (int b = 0; b < plan.buffer_count; ++b)
            if (!plan.buffers[b].temporary)
                text += " " + detail::role_name(plan.buffers[b].slot_role) + " '" +
                        std::string(plan.buffers[b].name.view()) + "',";
        for (int i = 0; i < plan.param_count; ++i)
            text += std::string(plan.g[plan.params[i]].dtype == dtype_code::u32 ? " index '" : " param '") +
                    std::string(plan.g[plan.params[i]].name.view()) + "',";
        text.back() = '.';
        return text;
    }

    static void check_size(int b, std::size_t elements, std::string_view doing) {
        if (elements != plan.buffers[b].elements)
            throw usage_error("vkfuse program: " + std::string(doing) + " of " + std::to_string(elements) +
                              " elements, but " + describe_buffer(b) + ". Pass exactly " +
                              std::to_string(plan.buffers[b].elements) + " elements.");
    }

    // Every buffer must fit what one binding can address and one allocation can hold on this device.
    void check_sizes() const {
        const auto& d = ctx_->device();
        auto fits = [&](std::uint64_t bytes, const std::string& what) {
            if (bytes > d.max_storage_buffer_range)
                throw usage_error("vkfuse program: " + what + ", more than the " +
                                  std::to_string(d.max_storage_buffer_range) + " bytes one binding can address on " +
                                  d.name + " (maxStorageBufferRange); split the tensor or choose a larger device.");
            if (d.max_allocation_bytes != 0 && bytes > d.max_allocation_bytes)
                throw usage_error("vkfuse program: " + what + ", more than the " +
                                  std::to_string(d.max_allocation_bytes) + " bytes one allocation can hold on " +
                                  d.name + " (maxMemoryAllocationSize); split the tensor or choose a larger device.");
        };
        if (packed_) {
            fits(plan.arena_floats * 4, "packed into one binding, its buffers need " +
                                            std::to_string(plan.arena_floats * 4) + " bytes");
            return;
        }
        for (int b = 0; b < plan.buffer_count; ++b)
            if (!plan.in_shared_memory(b)) fits(plan.buffers[b].bytes(), describe_buffer(b));
    }

    void build_kernels() {
        // (a single dispatch's attention takes a head in slices, so any workgroup serves it)
        if (How != strategy::single_dispatch)
            for (int k = 0; k < plan.kernel_count; ++k)
                if (plan.kernels[k].kind == vkfuse::plan::kernel_kind::attention &&
                    plan.kernels[k].head_dim > launch_.workgroup_size)
                    throw usage_error("vkfuse program: attention with head_dim " +
                                      std::to_string(plan.kernels[k].head_dim) +
                                      " needs a workgroup of at least that many invocations; this one has " +
                                      std::to_string(launch_.workgroup_size) + ".");
        kernels_.reserve(static_cast<std::size_t>(shader_count));
        for (int s = 0; s < shader_count; ++s)
            labels_.push_back(std::string(strategy_name(How)) + " shader " + std::to_string(s + 1) + " of " +
                              std::to_string(shader_count));
        const std::string preamble = launch_.preamble();
        for (int s = 0; s < shader_count; ++s) {
            const vkfuse::plan::shader_record sh = plan.shader(s);
            // constant_id 1 + i: invocations per row of the shader's i-th kernel
            std::vector<std::uint32_t> more;
            for (int k = sh.first + 1; k < sh.last; ++k) more.push_back(lanes(k));
            vulkan::kernel_spec spec;
            spec.label = labels_[static_cast<std::size_t>(s)];
            spec.glsl = glsl(s);
            spec.binding_count = packed_ ? 1u : static_cast<std::uint32_t>(sh.binding_count);
            spec.uniform_buffer = plan.param_words > 0;
            spec.push_constant_bytes = plan.push_constant_bytes();
            spec.workgroup_size = launch_.workgroup_size;
            spec.lanes = lanes(sh.first);
            spec.more_constants = more;
            spec.preamble = preamble;
            kernels_.emplace_back(*ctx_, spec);
        }
    }

    // Shared memory grows with the workgroup (reduction scratch, softmax weights). A workgroup size vkfuse chose
    // shrinks until every shader fits the device; one the user chose is kept, and an error says what to change.
    void fit_shared_memory(bool may_shrink) {
        const std::uint64_t limit = ctx_->device().max_shared_memory_bytes;
        auto widest = [&] {
            std::uint64_t most = 0;
            for (int s = 0; s < shader_count; ++s)
                most = std::max(most, plan.shader(s).shared.bytes(launch_.workgroup_size));
            return most;
        };
        while (may_shrink && widest() > limit && launch_.workgroup_size > 32) {
            launch_.workgroup_size /= 2;
            launch_.lanes = std::min(launch_.lanes, launch_.workgroup_size);
        }
        if (widest() > limit)
            throw usage_error("vkfuse program: its " + std::string(strategy_name(How)) + " shaders need " +
                              std::to_string(widest()) + " bytes of shared memory with workgroups of " +
                              std::to_string(launch_.workgroup_size) + ", more than the " + std::to_string(limit) +
                              " bytes " + ctx_->device().name + " has; choose a smaller workgroup_size.");
    }

    void allocate_buffers() {
        written_.assign(static_cast<std::size_t>(plan.buffer_count), false);
        param_set_.assign(static_cast<std::size_t>(plan.param_count), false);
        if (packed_) {
            arena_ = std::make_unique<vulkan::buffer>(*ctx_, static_cast<std::size_t>(plan.arena_floats * 4));
        } else {
            owned_.reserve(static_cast<std::size_t>(plan.buffer_count));
            for (int b = 0; b < plan.buffer_count; ++b) {
                // a temporary kept in shared memory needs no buffer; a word keeps the indexing uniform
                const std::uint64_t bytes = plan.in_shared_memory(b) ? 4 : plan.buffers[b].bytes();
                owned_.emplace_back(*ctx_, static_cast<std::size_t>(bytes));
            }
            for (auto& o : owned_) bound_.push_back(&o);
        }
        if (plan.param_words > 0) params_ = std::make_unique<vulkan::mapped_buffer>(*ctx_, plan.param_block_bytes());
        for (int b = 0; b < plan.buffer_count; ++b) {
            if (plan.buffers[b].slot_role == role::table) fill_table(b);
            if (plan.buffers[b].slot_role == role::state) zero(b);
        }
    }

    // A rope table: row p holds cos(p * theta^(-2j/d)) for j < d/2, then the sines, computed in double.
    void fill_table(int b) {
        const auto& n = plan.g[plan.buffers[b].node];
        const std::uint32_t d = n.p0;
        std::vector<float> table(static_cast<std::size_t>(n.rows) * d);
        for (std::uint64_t pos = 0; pos < n.rows; ++pos)
            for (std::uint32_t j = 0; j < d / 2; ++j) {
                const double angle = static_cast<double>(pos) * std::pow(static_cast<double>(n.value), -2.0 * j / d);
                table[pos * d + j] = static_cast<float>(std::cos(angle));
                table[pos * d + d / 2 + j] = static_cast<float>(std::sin(angle));
            }
        write_region(b, std::as_bytes(std::span<const float>(table)));
        written_[static_cast<std::size_t>(b)] = true;
    }

    void zero(int b) {
        fill(b, 0u);
        written_[static_cast<std::size_t>(b)] = true;
    }

    void fill(int b, std::uint32_t word) {
        if (packed_)
            arena_->fill_at(plan.arena_offset[b] * 4, plan.buffers[b].bytes(), word);
        else
            bound_[static_cast<std::size_t>(b)]->fill(word);
    }

    void write_region(int b, std::span<const std::byte> bytes) {
        if (packed_)
            arena_->upload_at(plan.arena_offset[b] * 4, bytes);
        else
            bound_[static_cast<std::size_t>(b)]->upload(bytes);
    }
    void read_region(int b, std::span<std::byte> bytes) const {
        if (packed_)
            arena_->download_at(plan.arena_offset[b] * 4, bytes);
        else
            bound_[static_cast<std::size_t>(b)]->download(bytes);
    }

    void mark_outputs_written() {
        for (int b = 0; b < plan.buffer_count; ++b)
            if (plan.buffers[b].slot_role == role::output) written_[static_cast<std::size_t>(b)] = true;
    }

    void ensure_ready() {
        for (int b = 0; b < plan.buffer_count; ++b) {
            const auto& s = plan.buffers[b];
            if (s.slot_role != role::output && !written_[static_cast<std::size_t>(b)])
                throw usage_error("vkfuse program: " + describe_buffer(b) + " and was never given data; call upload(\"" +
                                  std::string(s.name.view()) + "\", ...) or bind it before run().");
        }
        for (int i = 0; i < plan.param_count; ++i)
            if (!param_set_[static_cast<std::size_t>(i)] && i != plan.loop_param)
                throw usage_error("vkfuse program: " +
                                  std::string(plan.g[plan.params[i]].dtype == dtype_code::u32 ? "index '" : "param '") +
                                  std::string(plan.g[plan.params[i]].name.view()) + "' was never set; call " +
                                  (plan.g[plan.params[i]].dtype == dtype_code::u32 ? "set_index" : "set_param") +
                                  " before run().");
        if (sequence_) return;
        std::vector<vulkan::dispatch> dispatches;
        for (int run = 0; run < runs_per_call; ++run) {
            for (int s = 0; s < shader_count; ++s) {
                vulkan::dispatch d;
                d.k = &kernels_[static_cast<std::size_t>(s)];
                if (packed_)
                    d.buffers.push_back(arena_.get());
                else
                    for (int b : shader_buffers(s)) d.buffers.push_back(bound_[static_cast<std::size_t>(b)]);
                d.uniform = params_.get();
                d.groups = {workgroups(s), 1, 1};
                if (plan.push_constant_bytes() != 0) {  // this run's position of a repeat<>
                    const auto position = static_cast<std::uint32_t>(run);
                    d.push_constants = vulkan::pack_push_constants(position);
                }
                dispatches.push_back(std::move(d));
            }
        }
        sequence_ = std::make_unique<vulkan::sequence>(*ctx_, std::move(dispatches));
        ++recordings_;
    }

    context* ctx_;
    launch_config launch_;
    std::unique_ptr<std::mutex> lock_;  // serialises every call (a pointer, so a program can be moved)
    std::vector<std::string> labels_;
    std::vector<vulkan::kernel> kernels_;
    bool packed_ = false;
    std::unique_ptr<vulkan::buffer> arena_;  // every buffer, when packed (a pointer: its address is recorded)
    std::vector<vulkan::buffer> owned_;
    std::vector<vulkan::buffer*> bound_;
    std::vector<bool> written_;              // per buffer: uploaded, bound, computed, zeroed or filled by vkfuse
    std::unique_ptr<vulkan::mapped_buffer> params_;  // the parameter block, where the program has params
    std::vector<bool> param_set_;
    std::unique_ptr<vulkan::sequence> sequence_;
    std::size_t recordings_ = 0;
};

// Deduces the program type from the expression: `vkfuse::program prog(ctx, y = x + w * x);`, and the strategy from
// a tag: `vkfuse::program prog(ctx, layer, vkfuse::per_op);`
template <class Program>
program(context&, const Program&) -> program<Program>;
template <class Program>
program(context&, const Program&, program_options) -> program<Program>;
template <class Program, strategy S>
program(context&, const Program&, strategy_tag<S>) -> program<Program, S>;
template <class Program, strategy S>
program(context&, const Program&, strategy_tag<S>, program_options) -> program<Program, S>;

} // namespace vkfuse
