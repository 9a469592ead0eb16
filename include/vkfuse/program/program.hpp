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
#include <type_traits>
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

namespace detail {

// Everything a program does at run time, which depends on its plan's values but not on its type: one instantiation
// serves every strategy of a program type (their plans have one type, program_plan<Cap>), so a translation unit that
// runs a description three ways compiles this code once.
template <class Plan>
class program_runtime {
public:
    program_runtime(context& ctx, program_options options, strategy how, const Plan& plan,
                    std::span<const std::string_view> sources, std::span<const std::string_view> packed_sources,
                    std::uint64_t binding_limit)
        : how_(how), plan_(&plan), sources_(sources), packed_sources_(packed_sources), binding_limit_(binding_limit),
          shader_count_(plan.shader_count()), layers_(static_cast<int>(plan.layers())),
          runs_per_call_(plan.loop_param >= 0 && !one_shader(how) ? static_cast<int>(plan.loop_count) : 1),
          dispatch_count_(runs_per_call_ * (one_shader(how) ? 1
                                                            : shader_count_ + (layers_ - 1) *
                                                                                  (plan.stack_last - plan.stack_first))),
          layers_in_one_buffer_(one_shader(how) && plan.stacked()),
          ctx_(&ctx), launch_(choose_launch(ctx.device(), options, how == strategy::single_dispatch)),
          lock_(std::make_unique<std::mutex>()) {
        if (options.profile) {
            const vulkan::device_info& d = ctx.device();
            if (how_ == strategy::single_dispatch)
                throw usage_error("vkfuse program: profile splits a run's time by kernel, and a single_dispatch "
                                  "program is one workgroup doing every phase in turn; profile the persistent or "
                                  "fused program of the same description instead.");
            if (how_ == strategy::persistent && !d.shader_device_clock)
                throw usage_error("vkfuse program: profiling a persistent program needs the shader device clock of "
                                  "VK_KHR_shader_clock, which " + d.name + " does not offer.");
            if (how_ != strategy::persistent && !d.timestamps)
                throw usage_error("vkfuse program: profile needs timestamps on the compute queue, which " + d.name +
                                  " does not offer.");
        }
        fit_shared_memory(options.workgroup_size == 0);
        std::uint32_t limit = ctx.device().max_storage_buffers_per_stage;
        if (options.max_bindings != 0) limit = std::min(limit, options.max_bindings);
        int widest = 0;
        for (int s = 0; s < shader_count_; ++s) widest = std::max(widest, plan_->binding_slots(plan_->shader(s)));
        packed_ = options.pack_buffers || static_cast<std::uint32_t>(widest) > limit;
        if (packed_ && plan_->stacked())
            throw usage_error("vkfuse program: a stack of layers binds each layer's buffers separately, but " +
                              std::string(options.pack_buffers ? "pack_buffers was asked for"
                                                               : "its kernels need " + std::to_string(widest) +
                                                                     " bindings and " + ctx.device().name +
                                                                     " allows " + std::to_string(limit)) +
                              "; packing is not available for stacks.");
        check_sizes();
        build_kernels();
        allocate_buffers();
        fit_persistent_launch();
    }

    program_runtime(const program_runtime&) = delete;
    program_runtime& operator=(const program_runtime&) = delete;
    program_runtime(program_runtime&&) = default;
    program_runtime& operator=(program_runtime&&) = default;

    // The plan this program runs (the same object as program<...>::plan).
    const Plan& plan_record() const { return *plan_; }

    // ---- data in and out -------------------------------------------------------------------------------------

    // Copies f32 values into buffer `name`: an input, a weight or a state; the count must match its shape. A buffer
    // stored as f16, bf16, q8_0 or q4_0 gets the values converted (rounded to nearest even; quantised as GGUF does).
    // A per-layer weight or state of a stack<L> takes every layer's values, layer 0's first.
    void upload(std::string_view name, std::span<const float> data) {
        std::lock_guard lock(*lock_);
        const int b = uploadable(name);
        const std::size_t n = plan_->buffers[b].elements;
        check_size(b, data.size(), "upload", copies(b));
        for (int layer = 0; layer < copies(b); ++layer) upload_values(b, layer, data.subspan(layer * n, n));
    }
    void upload(std::string_view name, const std::vector<float>& data) { upload(name, std::span<const float>(data)); }
    // Layer `layer`'s copy of a per-layer weight or state of a stack<L>.
    void upload(std::string_view name, int layer, std::span<const float> data) {
        std::lock_guard lock(*lock_);
        const int b = uploadable(name);
        check_layer(b, layer);
        check_size(b, data.size(), "upload");
        upload_values(b, layer, data);
    }
    void upload(std::string_view name, int layer, const std::vector<float>& data) {
        upload(name, layer, std::span<const float>(data));
    }

    // Copies a tensor already in `format` (say a bf16 checkpoint's bytes) into buffer `name`, converting it to the
    // buffer's storage if that differs: bf16 to q4_0 quantises, bf16 to bf16 copies.
    // (A per-layer weight of a stack<L> takes one layer's tensor: give its layer.)
    void upload_encoded(std::string_view name, std::span<const std::byte> data, formats::weight_format format) {
        upload_encoded(name, -1, data, format);
    }
    void upload_encoded(std::string_view name, int layer, std::span<const std::byte> data,
                        formats::weight_format format) {
        std::lock_guard lock(*lock_);
        const int b = uploadable(name);
        if (layer < 0 && copies(b) > 1)
            throw usage_error("vkfuse program: '" + std::string(name) + "' has a copy per layer (" +
                              std::to_string(copies(b)) + "); upload_encoded(\"" + std::string(name) +
                              "\", layer, bytes, format) fills one.");
        if (layer < 0) layer = 0;
        check_layer(b, layer);
        const std::size_t rows = rows_of(b), cols = cols_of(b);
        if (data.size() != formats::tensor_bytes(format, rows, cols))
            throw usage_error("vkfuse program: upload of " + std::to_string(data.size()) + " bytes of " +
                              std::string(formats::format_name(format)) + ", but " + describe_buffer(b) + ", which " +
                              std::to_string(formats::tensor_bytes(format, rows, cols)) + " bytes of " +
                              std::string(formats::format_name(format)) + " would hold.");
        const formats::weight_format storage = formats::format_of(plan_->buffers[b].dtype);
        if (storage == format) {
            write_region(b, data, layer);
        } else {
            std::vector<std::byte> converted(formats::tensor_bytes(storage, rows, cols));
            formats::convert(data, format, converted, storage, rows, cols);
            write_region(b, converted, layer);
        }
        mark_written(b, layer);
    }

    // Copies u32 values (token ids) into u32 buffer `name`: an input or a state.
    void upload_indices(std::string_view name, std::span<const std::uint32_t> data) {
        std::lock_guard lock(*lock_);
        const int b = slot(name);
        if (plan_->buffers[b].dtype != dtype_code::u32 || plan_->buffers[b].slot_role == role::output)
            throw usage_error("vkfuse program: " + describe_buffer(b) + "; upload_indices fills u32 inputs and states.");
        check_size(b, data.size(), "upload", copies(b));
        const std::size_t n = plan_->buffers[b].elements;
        for (int layer = 0; layer < copies(b); ++layer) {
            write_region(b, std::as_bytes(data.subspan(layer * n, n)), layer);
            mark_written(b, layer);
        }
    }

    // The contents of f32 buffer `name`: an output, a named result, a state, or what was uploaded. A u32 output (an
    // argmax) comes from download_indices; a value nothing has written yet is an error, not zeros.
    // A per-layer state of a stack<L> (a KV cache) gives every layer's copy, layer 0's first.
    std::vector<float> download(std::string_view name) const {
        std::lock_guard lock(*lock_);
        const int b = readable(name, dtype_code::f32);
        std::vector<float> out;
        for (int layer = 0; layer < copies(b); ++layer) {
            const std::vector<float> one = download_values(b, layer);
            out.insert(out.end(), one.begin(), one.end());
        }
        return out;
    }
    // Layer `layer`'s copy of a per-layer weight or state.
    std::vector<float> download(std::string_view name, int layer) const {
        std::lock_guard lock(*lock_);
        check_layer(slot(name), layer);
        const int b = readable(name, dtype_code::f32, layer);
        return download_values(b, layer);
    }
    // The contents of a u32 buffer (an argmax output).
    std::vector<std::uint32_t> download_indices(std::string_view name) const {
        std::lock_guard lock(*lock_);
        const int b = readable(name, dtype_code::u32);
        std::vector<std::uint32_t> out(plan_->buffers[b].elements * static_cast<std::size_t>(copies(b)));
        const std::size_t n = plan_->buffers[b].elements;
        for (int layer = 0; layer < copies(b); ++layer)
            read_region(b, std::as_writable_bytes(std::span<std::uint32_t>(out).subspan(layer * n, n)), layer);
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
        if (i == plan_->loop_param)
            throw usage_error("vkfuse program: index '" + std::string(name) + "' is the one repeat<> runs over; each "
                              "run goes through all " + std::to_string(plan_->loop_count) + " positions itself.");
        const std::uint32_t limit = plan_->param_limit[i];
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
        if (plan_->buffers[b].slot_role != role::state)
            throw usage_error("vkfuse program: " + describe_buffer(b) + "; only states can be reset.");
        zero(b);
    }
    // Zeroes every state.
    void reset_states() {
        std::lock_guard lock(*lock_);
        for (int b = 0; b < plan_->buffer_count; ++b)
            if (plan_->buffers[b].slot_role == role::state) zero(b);
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
        if (plan_->buffers[b].slot_role == role::table)
            throw usage_error("vkfuse program: '" + std::string(name) + "' is a table vkfuse computes itself.");
        check_whole(b, "bound to an outside buffer");
        if (external.size() != plan_->buffers[b].bytes())
            throw usage_error("vkfuse program: bind of a buffer of " + std::to_string(external.size()) +
                              " bytes, but " + describe_buffer(b) + ".");
        if (copies(b) > 1)
            throw usage_error("vkfuse program: '" + std::string(name) + "' has a copy per layer (" +
                              std::to_string(copies(b)) + "); bind(\"" + std::string(name) +
                              "\", layer, buffer) binds one.");
        if (layers_in_one_buffer_ && plan_->buffers[b].per_layer())
            throw usage_error("vkfuse program: '" + std::string(name) + "' is the state a " +
                              std::string(strategy_name(how_)) + " stack "
                              "carries from layer to layer, which lives in a buffer of its own; upload its data "
                              "instead.");
        bound_[static_cast<std::size_t>(b)][0] = {&external};
        mark_written(b, 0);  // what it holds is the caller's to know
        sequence_.reset();
    }
    // Layer `layer`'s copy of a per-layer weight or state.
    void bind(std::string_view name, int layer, vulkan::buffer& external) {
        std::lock_guard lock(*lock_);
        const int b = slot(name);
        check_layer(b, layer);
        check_whole(b, "bound to an outside buffer");
        if (plan_->buffers[b].slot_role == role::table || external.size() != plan_->buffers[b].bytes())
            throw usage_error("vkfuse program: bind of a buffer of " + std::to_string(external.size()) +
                              " bytes, but " + describe_buffer(b) + ".");
        if (layers_in_one_buffer_)
            throw usage_error("vkfuse program: a " + std::string(strategy_name(how_)) +
                              " stack keeps every layer's copy of '" +
                              std::string(name) + "' in one buffer, so one layer cannot be bound; upload instead.");
        bound_[static_cast<std::size_t>(b)][static_cast<std::size_t>(layer)] = {&external};
        mark_written(b, layer);
        sequence_.reset();
    }

    // The buffer currently used for `name` (when packed, the one buffer that holds them all); layer `layer`'s copy of
    // a per-layer one.
    vulkan::buffer& buffer(std::string_view name, int layer = 0) {
        std::lock_guard lock(*lock_);
        const int b = slot(name);
        check_layer(b, layer);
        if (!packed_) check_whole(b, "handed out as one vulkan::buffer");
        return packed_ ? *arena_ : *region(b, layer).pieces->front();
    }

    // Fills outputs, named results and temporaries with NaN, so a kernel that skips an element cannot pass a check.
    void poison() {
        std::lock_guard lock(*lock_);
        for (int b = 0; b < plan_->buffer_count; ++b) {
            if (plan_->buffers[b].slot_role != role::output || plan_->in_shared_memory(b)) continue;
            fill(b, 0x7fc00000u);
        }
        for (vulkan::buffer& h : hidden_) h.fill(0x7fc00000u);
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
        check_loop_budget();
        last_run_ = t;
        ran_ = true;
        return t;
    }

    // Runs every dispatch as a submit of its own, waiting for each: the naive baseline of the benchmarks.
    vulkan::timing run_each_submitted() {
        std::lock_guard lock(*lock_);
        ensure_ready();
        const vulkan::timing t = sequence_->run_each_submitted();
        mark_outputs_written();
        check_loop_budget();
        return t;
    }

    // ---- composing runs (program/decode_loop.hpp) ---------------------------------------------------------------

    // The dispatches of one run, for recording into a longer command buffer: every data buffer must have been given
    // and every param set, as for run(). Steps whose bit is set in `skip_steps` are left out (a model's prefill runs
    // without its head) where they have kernels of their own; a single dispatch runs everything. The dispatches
    // refer to this program's kernels and buffers: valid while it lives and nothing is bound anew.
    std::vector<vulkan::dispatch> dispatches(std::uint32_t skip_steps = 0) {
        std::lock_guard lock(*lock_);
        ensure_ready();
        return record_dispatches(skip_steps);
    }
    // The parameter block: a buffer of 4-byte words that every kernel reads its params and indices from (as a
    // uniform buffer) and that the host writes through set_param/set_index. A kernel may write it too, bound as a
    // storage buffer: the barriers between dispatches make its writes visible to the next kernel's uniform reads.
    vulkan::mapped_buffer& parameter_block() {
        if (!params_) throw usage_error("vkfuse program: it has no params or indices, so no parameter block.");
        return *params_;
    }
    // The word of the parameter block that holds param or index `name`.
    std::uint32_t parameter_word(std::string_view name) const {
        const int i = plan_->param_index(name);
        if (i < 0) throw usage_error("vkfuse program: no param or index named '" + std::string(name) + "'. " + names_text());
        if (plan_->param_word[i] < 0)
            throw usage_error("vkfuse program: index '" + std::string(name) + "' is the one repeat<> runs over; it is "
                              "not in the parameter block.");
        return static_cast<std::uint32_t>(plan_->param_word[i]);
    }
    // Marks what the program computes as written (after dispatches() ran in a sequence of the caller's), so that
    // download() reads it.
    void mark_run() {
        std::lock_guard lock(*lock_);
        mark_outputs_written();
        check_loop_budget();
    }

    // ---- inspection ------------------------------------------------------------------------------------------

    context& context_of() const { return *ctx_; }
    // The bound an index must stay below (the rows of every table and cache it indexes); 0 where nothing bounds it.
    std::uint32_t index_limit(std::string_view name) const {
        const int i = param(name, dtype_code::u32);
        return plan_->param_limit[i];
    }

    const launch_config& launch() const { return launch_; }
    const vulkan::device_info& device() const { return ctx_->device(); }
    // What the driver says of shader s's compiled code: registers, shared memory and the like, as the driver names
    // them (VK_KHR_pipeline_executable_properties; needs context_options::pipeline_statistics, else throws).
    std::vector<vulkan::context::pipeline_statistic> pipeline_statistics(int shader) const {
        if (shader < 0 || static_cast<std::size_t>(shader) >= kernels_.size())
            throw usage_error("vkfuse program: no shader " + std::to_string(shader) + "; it has " +
                              std::to_string(kernels_.size()) + ".");
        return ctx_->pipeline_statistics(*kernels_[static_cast<std::size_t>(shader)]);
    }
    // The GLSL of shader s, as compiled (packed or not).
    std::string_view glsl(int shader) const {
        return (packed_ ? packed_sources_ : sources_)[static_cast<std::size_t>(shader)];
    }
    // Invocations per row of kernel k's matvec work (under single_dispatch and persistent: of phase k).
    std::uint32_t lanes(int k) const { return vkfuse::plan::choose_lanes(plan_->kernels[k], how_, launch_.facts()); }
    // Workgroups dispatched by shader s on this device.
    std::uint32_t workgroups(int s) const {
        if (how_ == strategy::single_dispatch) return 1;
        if (how_ == strategy::persistent) return launch_.persistent_workgroups;
        const std::uint64_t groups = vkfuse::plan::workgroups(plan_->kernels[s], launch_.workgroup_size, lanes(s));
        return static_cast<std::uint32_t>(std::min<std::uint64_t>(groups, ctx_->device().max_workgroup_count[0]));
    }
    // persistent: the work items of phase k, each one workgroup's share of it, taken in order from the shader's
    // counter (at most as many as the workgroups launched).
    std::uint32_t items(int k) const {
        const std::uint64_t groups = vkfuse::plan::workgroups(plan_->kernels[k], launch_.workgroup_size, lanes(k));
        return static_cast<std::uint32_t>(std::min<std::uint64_t>(groups, launch_.persistent_workgroups));
    }
    // persistent: how many runs so far found the door closed — not every workgroup of the launch resident at once —
    // and so took their items from the counter instead of the assigned schedule (program_options::schedule). Zero
    // where every run was assigned, or where the schedule is `taken` anyway. Reads a word from the device.
    std::uint32_t persistent_fallbacks() const {
        std::lock_guard lock(*lock_);
        if (how_ != strategy::persistent || scratch_.empty() || !scratch_.front().sync) return 0;
        std::uint32_t runs = 0;
        scratch_.front().sync->download_at(4 * vkfuse::plan::persistent_closed_word,
                                           std::as_writable_bytes(std::span(&runs, 1)));
        return runs;
    }
    // persistent: the work items of one run (every phase, layer and position).
    std::uint64_t items_per_run() const {
        std::uint64_t n = 0;
        each_instance([&](int k, std::uint64_t) { n += items(k); });
        return n;
    }

    // Where the last run's time went, kernel by kernel (program_options::profile). Under fused and per_op each kernel's
    // dispatches (one per layer and position) are timed by the queue's timestamps: `span_us` is their time summed,
    // barriers included. Under persistent, a kernel is a phase of the one dispatch, and its instances are summed:
    // `span_us` from its first work item's start to its last one's finish, `work_us` the items' own time (start to
    // finish) and `wait_us` their time between being taken and starting (waiting for the phase before) — both summed
    // over items, so across workgroups they may exceed the span; the shader clock's ticks are scaled to the run's GPU
    // time. `run_us` is the whole run; what the spans leave of it passed between phases.
    struct phase_time {
        int phase = 0;  // the kernel, as describe() numbers it from 1
        std::string what;
        std::uint64_t instances = 0, items = 0;  // items: workgroups (fused, per_op) or work items (persistent)
        double span_us = 0, work_us = 0, wait_us = 0;
    };
    struct run_profile {
        double run_us = 0;
        double span_us = 0;  // the phases' spans added up
        std::vector<phase_time> phases;
    };
    run_profile profile() const {
        std::lock_guard lock(*lock_);
        if (!launch_.profile)
            throw usage_error("vkfuse program: profile() needs program_options::profile set at construction.");
        if (!ran_) throw usage_error("vkfuse program: profile() describes the last run(); nothing has run yet.");
        run_profile out;
        for (int k = 0; k < plan_->kernel_count; ++k) {
            phase_time p;
            p.phase = k + 1;
            p.what = std::string(vkfuse::plan::kind_name(plan_->kernels[k].kind));
            for (int r = 0; r < plan_->kernels[k].segment_count; ++r) {
                std::string label;
                string_sink sink{&label};
                vkfuse::text<string_sink> t(sink);
                plan_->label(t, plan_->kernels[k].segments[r].root);
                p.what += (r ? ", " : " ") + label;
            }
            out.phases.push_back(std::move(p));
        }
        if (how_ == strategy::persistent) {
            const std::uint64_t total = items_per_run();
            std::vector<std::uint32_t> words(static_cast<std::size_t>(6 * total));
            scratch_.front().sync->download_at(4 * (vkfuse::plan::persistent_sync_words + plan_->phase_instances()),
                                               std::as_writable_bytes(std::span(words)));
            auto at = [&](std::uint64_t item, int which) {
                const std::size_t w = static_cast<std::size_t>(6 * item + 2 * static_cast<std::uint64_t>(which));
                return std::uint64_t{words[w]} | std::uint64_t{words[w + 1]} << 32;
            };
            std::uint64_t first_taken = ~std::uint64_t{0}, last_finished = 0, item = 0;
            std::vector<double> span_ticks(static_cast<std::size_t>(plan_->kernel_count)),
                work_ticks(span_ticks.size()), wait_ticks(span_ticks.size());
            each_instance([&](int k, std::uint64_t) {
                std::uint64_t start = ~std::uint64_t{0}, finish = 0;
                for (std::uint32_t i = 0; i < items(k); ++i, ++item) {
                    start = std::min(start, at(item, 1));
                    finish = std::max(finish, at(item, 2));
                    first_taken = std::min(first_taken, at(item, 0));
                    last_finished = std::max(last_finished, at(item, 2));
                    work_ticks[static_cast<std::size_t>(k)] += static_cast<double>(at(item, 2) - at(item, 1));
                    wait_ticks[static_cast<std::size_t>(k)] += static_cast<double>(at(item, 1) - at(item, 0));
                }
                span_ticks[static_cast<std::size_t>(k)] += static_cast<double>(finish - start);
                out.phases[static_cast<std::size_t>(k)].instances += 1;
                out.phases[static_cast<std::size_t>(k)].items += items(k);
            });
            const double ticks = static_cast<double>(last_finished - first_taken);
            const double run_us = (std::isnan(last_run_.gpu_ns) ? last_run_.wall_ns : last_run_.gpu_ns) / 1e3;
            const double us_per_tick = ticks > 0 ? run_us / ticks : 0;
            out.run_us = ticks * us_per_tick;
            for (std::size_t k = 0; k < out.phases.size(); ++k) {
                out.phases[k].span_us = span_ticks[k] * us_per_tick;
                out.phases[k].work_us = work_ticks[k] * us_per_tick;
                out.phases[k].wait_us = wait_ticks[k] * us_per_tick;
            }
        } else {
            const std::vector<double> ns = sequence_->dispatch_ns();
            std::size_t i = 0;
            for (const vulkan::dispatch& d : record_dispatches()) {
                const int k = static_cast<int>(d.k - kernels_.data());
                phase_time& p = out.phases[static_cast<std::size_t>(k)];
                p.instances += 1;
                p.items += d.groups[0];
                if (i < ns.size()) p.span_us += ns[i] / 1e3;
                ++i;
            }
            for (phase_time& p : out.phases) p.work_us = p.span_us;
            out.run_us = last_run_.gpu_ns / 1e3;
        }
        for (const phase_time& p : out.phases) out.span_us += p.span_us;
        return out;
    }

    // Buffers of shader s, in binding order.
    std::vector<int> shader_buffers(int s) const {
        const vkfuse::plan::shader_record sh = plan_->shader(s);
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
    int matrix_reads(std::string_view name) const {
        const int b = plan_->buffer_index(name);
        return b < 0 ? 0 : plan_->matrix_reads(b);
    }

    // The plan as a table, one line per kernel: what it computes, its work units, its launch on this device, the
    // weight bytes it streams and its buffers in binding order.
    std::string describe() const {
        std::string text = std::string(strategy_name(how_)) + ": " + std::to_string(dispatch_count_) + " dispatch" +
                           (dispatch_count_ == 1 ? "" : "es") + (packed_ ? ", buffers packed into one binding" : "") +
                           "\n";
        string_sink sink{&text};
        vkfuse::text<string_sink> t(sink);
        for (int k = 0; k < plan_->kernel_count; ++k) {
            const vkfuse::plan::kernel_record& kr = plan_->kernels[k];
            t << (one_shader(how_) ? "  phase " : "  kernel ") << k + 1 << ": "
              << vkfuse::plan::kind_name(kr.kind) << " computing";
            for (int r = 0; r < kr.segment_count; ++r) {
                t << (r ? ", " : " ");
                plan_->label(t, kr.segments[r].root);
                t << '[' << kr.segments[r].length << ']';
            }
            if (kr.kind == vkfuse::plan::kernel_kind::attention)
                t << "; " << kr.heads << " heads, "
                  << (how_ == strategy::single_dispatch ? std::string("all at once")
                      : kr.splits == 1               ? std::string("a workgroup each")
                                                     : "up to " + std::to_string(kr.splits) +
                                                           " workgroups each (split by positions)");
            else
                t << "; " << kr.units << " units";
            if (kr.kind == vkfuse::plan::kernel_kind::matvec)
                t << " (rows or rope row pairs), " << lanes(k) << " invocations per row";
            if (how_ == strategy::persistent)
                t << "; " << items(k) << " work items for " << workgroups(0) << " workgroups of "
                  << launch_.workgroup_size;
            else
                t << "; " << workgroups(one_shader(how_) ? 0 : k) << " workgroups of " << launch_.workgroup_size;
            if (kr.matrix_bytes) t << "; streams " << detail::megabytes(kr.matrix_bytes) << " of weights";
            t << "; buffers";
            for (int i = 0; i < kr.binding_count; ++i) {
                const auto& b = plan_->buffers[kr.bindings[i].buffer];
                t << (i ? ", " : " ") << (kr.bindings[i].writes() ? "->" : "");
                if (b.temporary)
                    t << 't' << b.node;
                else
                    t << b.name.view();
                if (b.split() && !packed_) t << " (" << b.pieces << " bindings)";
            }
            t << '\n';
        }
        return text;
    }

private:
    // persistent: calls f(kernel, first work item) for every phase instance of a run, in the order the shader numbers
    // the items: per position, the phases before the stack, the stack's once per layer, the phases after it.
    template <class F>
    void each_instance(F f) const {
        const int first = plan_->stacked() ? plan_->stack_first : plan_->kernel_count;
        const int last = plan_->stacked() ? plan_->stack_last : plan_->kernel_count;
        std::uint64_t item = 0;
        const std::uint32_t positions = plan_->loop_param >= 0 ? plan_->loop_count : 1u;
        auto phase = [&](int k) {
            f(k, item);
            item += items(k);
        };
        for (std::uint32_t p = 0; p < positions; ++p) {
            for (int k = 0; k < first; ++k) phase(k);
            for (int layer = 0; layer < (plan_->stacked() ? layers_ : 1); ++layer)
                for (int k = first; k < last; ++k) phase(k);
            for (int k = last; k < plan_->kernel_count; ++k) phase(k);
        }
    }

    // Copies of buffer b: a stack's per-layer weights and states have one per layer, everything else one. Under fused
    // and per_op each copy is a buffer of its own, bound to its layer's dispatches, and the hidden state a stack
    // carries is one buffer per end plus hidden_ between layers. Under single_dispatch and persistent the shader indexes the layers
    // (glsl/access.hpp, layer_offset): the copies lie back to back in one buffer, and the carried state is one
    // buffer of L + 1 rows, the stack's input row 0 and its output row L.
    int copies(int b) const { return static_cast<int>(plan_->buffers[b].layers); }

    // Where copy `layer` of buffer b lives: a buffer (or, for a split weight, its pieces) and a byte offset in it.
    struct region_ref {
        const std::vector<vulkan::buffer*>* pieces;
        std::uint64_t offset;
    };
    region_ref region(int b, int layer) const {
        const auto& s = plan_->buffers[b];
        const auto& copies_of_b = bound_[static_cast<std::size_t>(b)];
        if (!layers_in_one_buffer_) return {&copies_of_b[static_cast<std::size_t>(layer)], 0};
        using carry = vkfuse::plan::buffer_slot::carry_kind;
        const std::uint64_t row = s.carry == carry::out ? static_cast<std::uint64_t>(layers_) : std::uint64_t(layer);
        return {&copies_of_b[0], row * s.layer_stride_bytes()};
    }
    // Calls f(buffer, offset in that buffer, offset in the range, bytes) for each part of the byte range
    // [r.offset, r.offset + size) of slot b: the whole range, or, for a split weight, its part in each piece.
    template <class F>
    void each_piece(int b, const region_ref& r, std::uint64_t size, F f) const {
        const auto& s = plan_->buffers[b];
        if (!s.split()) {
            f(*r.pieces->front(), r.offset, std::uint64_t{0}, size);
            return;
        }
        const std::uint64_t per_piece = s.piece_bytes();
        for (std::uint64_t done = 0; done < size;) {
            const std::uint64_t at = r.offset + done, k = at / per_piece, within = at - k * per_piece;
            const std::uint64_t part = std::min(size - done, per_piece - within);
            f(*(*r.pieces)[static_cast<std::size_t>(k)], within, done, part);
            done += part;
        }
    }
    // A split weight is several buffers; what needs one buffer is refused.
    void check_whole(int b, std::string_view doing) const {
        const auto& s = plan_->buffers[b];
        if (s.split())
            throw usage_error("vkfuse program: " + describe_buffer(b) + ", more than binding_bytes_limit (" +
                              std::to_string(binding_limit_) + " bytes), so it is split over " +
                              std::to_string(s.pieces) + " buffers and cannot be " + std::string(doing) +
                              "; upload its values instead.");
    }
    // Bytes of the buffer that holds slot b (every layer's copy, under single_dispatch and persistent).
    std::uint64_t allocation_bytes(int b) const {
        const auto& s = plan_->buffers[b];
        if (!layers_in_one_buffer_ || !s.per_layer()) return s.bytes();
        return s.layer_stride_bytes() * (s.carry != vkfuse::plan::buffer_slot::carry_kind::none ? layers_ + 1u : s.layers);
    }

    void check_layer(int b, int layer) const {
        if (layer < 0 || layer >= copies(b))
            throw usage_error("vkfuse program: layer " + std::to_string(layer) + " of " + describe_buffer(b) +
                              (copies(b) == 1 ? ", which is not per layer: leave the layer out."
                                              : ", one copy per layer for " + std::to_string(copies(b)) +
                                                    " layers: give a layer below that."));
    }

    // The buffers the dispatches of layer `layer` of a stack bind for slot b (layer -1: a dispatch outside the
    // stack): one, or a split weight's pieces in order.
    std::vector<vulkan::buffer*> buffers_for(int b, int layer) const {
        const auto& s = plan_->buffers[b];
        const auto& copies_of_b = bound_[static_cast<std::size_t>(b)];
        using carry = vkfuse::plan::buffer_slot::carry_kind;
        if (layer < 0) return copies_of_b[0];
        if (s.carry == carry::in && layer > 0) return {const_cast<vulkan::buffer*>(&hidden_[layer - 1])};
        if (s.carry == carry::out && layer < layers_ - 1) return {const_cast<vulkan::buffer*>(&hidden_[layer])};
        return copies_of_b[copies_of_b.size() == 1 ? 0 : static_cast<std::size_t>(layer)];
    }

    void mark_written(int b, int layer) { written_[static_cast<std::size_t>(b)][static_cast<std::size_t>(layer)] = true; }
    bool all_written(int b) const {
        const auto& w = written_[static_cast<std::size_t>(b)];
        return std::all_of(w.begin(), w.end(), [](bool x) { return x; });
    }

    void upload_values(int b, int layer, std::span<const float> data) {
        const auto& s = plan_->buffers[b];
        if (s.dtype == dtype_code::f32)
            write_region(b, std::as_bytes(data), layer);
        else
            write_region(b, formats::encode(data, formats::format_of(s.dtype), rows_of(b), cols_of(b)), layer);
        mark_written(b, layer);
    }

    std::vector<float> download_values(int b, int layer) const {
        const auto& s = plan_->buffers[b];
        if (s.dtype != dtype_code::f32) {  // 16-bit or blocks: the stored bits, as the values they stand for
            std::vector<std::byte> stored(s.bytes());
            read_region(b, stored, layer);
            return formats::decode(stored, formats::format_of(s.dtype), rows_of(b), cols_of(b));
        }
        std::vector<float> out(s.elements);
        read_region(b, std::as_writable_bytes(std::span<float>(out)), layer);
        return out;
    }

    int slot(std::string_view name) const {
        const int b = plan_->buffer_index(name);
        if (b < 0) throw usage_error("vkfuse program: no buffer named '" + std::string(name) + "'. " + names_text());
        return b;
    }

    // A buffer the caller may fill: an input, a weight or a state.
    int uploadable(std::string_view name) const {
        const int b = slot(name);
        const auto& s = plan_->buffers[b];
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
    std::size_t rows_of(int b) const {
        return plan_->buffers[b].cols != 0 ? static_cast<std::size_t>(plan_->buffers[b].rows) : 1;
    }
    std::size_t cols_of(int b) const {
        return static_cast<std::size_t>(plan_->buffers[b].cols != 0 ? plan_->buffers[b].cols : plan_->buffers[b].elements);
    }

    // The buffer of `name` if it holds `want` values (f32 stands for every float storage) that something wrote.
    int readable(std::string_view name, dtype_code want, int layer = -1) const {
        const int b = slot(name);
        const auto& s = plan_->buffers[b];
        if ((s.dtype == dtype_code::u32) != (want == dtype_code::u32))
            throw usage_error("vkfuse program: " + describe_buffer(b) + "; " +
                              (s.dtype == dtype_code::u32 ? "download it with download_indices(\"" + std::string(name) +
                                                                "\")."
                                                          : "download it with download(\"" + std::string(name) + "\")."));
        if (layer < 0 ? !all_written(b) : !written_[static_cast<std::size_t>(b)][static_cast<std::size_t>(layer)])
            throw usage_error("vkfuse program: " + describe_buffer(b) + " and nothing has written it yet; " +
                              (s.slot_role == role::output ? "run() the program first."
                                                           : "upload(\"" + std::string(name) + "\", ...) it first."));
        return b;
    }

    int param(std::string_view name, dtype_code want) const {
        const int i = plan_->param_index(name);
        if (i < 0)
            throw usage_error("vkfuse program: no " + std::string(want == dtype_code::u32 ? "index" : "param") +
                              " named '" + std::string(name) + "'. " + names_text());
        if (plan_->g[plan_->params[i]].dtype != want)
            throw usage_error("vkfuse program: '" + std::string(name) + "' is " +
                              (want == dtype_code::f32 ? "an index: use set_index" : "a param: use set_param"));
        return i;
    }

    void set_word(int i, std::uint32_t bits) {
        params_->write(4u * static_cast<std::size_t>(plan_->param_word[i]), std::as_bytes(std::span(&bits, 1)));
        param_set_[static_cast<std::size_t>(i)] = true;
    }

    std::string describe_buffer(int b) const {
        const auto& s = plan_->buffers[b];
        const std::string shape = s.cols != 0 ? std::to_string(s.rows) + ", " + std::to_string(s.cols)
                                              : std::to_string(s.elements);
        const std::string what = s.slot_role == role::output && !plan_->is_output(s.node) ? "named result"
                                                                                        : detail::role_name(s.slot_role);
        return what + " '" + std::string(s.name.view()) + "' is " + std::string(dtype_name(s.dtype)) + "[" + shape +
               "] = " + std::to_string(s.bytes()) + " bytes" +
               (s.layers > 1 ? " per layer, one copy for each of " + std::to_string(s.layers) + " layers" : "");
    }

    std::string names_text() const {
        std::string text = "The program has:";
        for (int b = 0; b < plan_->buffer_count; ++b)
            if (!plan_->buffers[b].temporary)
                text += " " + detail::role_name(plan_->buffers[b].slot_role) + " '" +
                        std::string(plan_->buffers[b].name.view()) + "',";
        for (int i = 0; i < plan_->param_count; ++i)
            text += std::string(plan_->g[plan_->params[i]].dtype == dtype_code::u32 ? " index '" : " param '") +
                    std::string(plan_->g[plan_->params[i]].name.view()) + "',";
        text.back() = '.';
        return text;
    }

    void check_size(int b, std::size_t elements, std::string_view doing, int layer_copies = 1) const {
        const std::size_t want = plan_->buffers[b].elements * static_cast<std::size_t>(layer_copies);
        if (elements != want)
            throw usage_error("vkfuse program: " + std::string(doing) + " of " + std::to_string(elements) +
                              " elements, but " + describe_buffer(b) + ". Pass exactly " + std::to_string(want) +
                              " elements" + (layer_copies > 1 ? " (every layer's, layer 0's first), or one layer's "
                                                                "with upload(name, layer, values)."
                                                              : "."));
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
            fits(plan_->arena_floats * 4, "packed into one binding, its buffers need " +
                                            std::to_string(plan_->arena_floats * 4) + " bytes");
            return;
        }
        for (int b = 0; b < plan_->buffer_count; ++b)
            if (plan_->buffers[b].split())
                fits(plan_->buffers[b].piece_bytes(),
                     describe_buffer(b) + ", split into pieces of " + std::to_string(plan_->buffers[b].piece_bytes()) +
                         " bytes by a vkfuse::binding_bytes_limit raised above its default");
            else if (!plan_->in_shared_memory(b))
                fits(allocation_bytes(b), allocation_bytes(b) == plan_->buffers[b].bytes()
                                              ? describe_buffer(b)
                                              : describe_buffer(b) + ", " + std::to_string(allocation_bytes(b)) +
                                                    " bytes for all layers in one buffer (" + std::string(strategy_name(how_)) + "; the "
                                                    "fused and per_op strategies bind each layer's on its own)");
    }

    void build_kernels() {
        // (a single dispatch's attention takes a head in slices, so any workgroup serves it)
        if (how_ != strategy::single_dispatch)  // the others' attention: a workgroup per head or share
            for (int k = 0; k < plan_->kernel_count; ++k)
                if (plan_->kernels[k].kind == vkfuse::plan::kernel_kind::attention &&
                    plan_->kernels[k].head_dim > launch_.workgroup_size)
                    throw usage_error("vkfuse program: attention with head_dim " +
                                      std::to_string(plan_->kernels[k].head_dim) +
                                      " needs a workgroup of at least that many invocations; this one has " +
                                      std::to_string(launch_.workgroup_size) + ".");
        kernels_.reserve(static_cast<std::size_t>(shader_count_));
        for (int s = 0; s < shader_count_; ++s)
            labels_.push_back(std::string(strategy_name(how_)) + " shader " + std::to_string(s + 1) + " of " +
                              std::to_string(shader_count_));
        const std::string preamble = launch_.preamble();
        for (int s = 0; s < shader_count_; ++s) {
            const vkfuse::plan::shader_record sh = plan_->shader(s);
            // constant_id 1 + i: invocations per row of the shader's i-th kernel; persistent: then the work items of
            // each phase
            std::vector<std::uint32_t> more;
            for (int k = sh.first + 1; k < sh.last; ++k) more.push_back(lanes(k));
            if (how_ == strategy::persistent) {
                for (int k = sh.first; k < sh.last; ++k) more.push_back(items(k));
                more.push_back(launch_.assigned ? 1u : 0u);  // ASSIGNED
                more.push_back(launch_.prefetch ? launch_.prefetch_steps : 0u);  // PREFETCH
            }
            vulkan::kernel_spec spec;
            spec.label = labels_[static_cast<std::size_t>(s)];
            spec.glsl = glsl(s);
            spec.binding_count = static_cast<std::uint32_t>(packed_ ? 1 + sh.scratch_bindings : plan_->binding_slots(sh));
            spec.uniform_buffer = plan_->param_words > 0;
            spec.push_constant_bytes = plan_->push_constant_bytes();
            spec.workgroup_size = launch_.workgroup_size;
            spec.lanes = lanes(sh.first);
            spec.more_constants = more;
            spec.preamble = preamble;
            kernels_.emplace_back(*ctx_, spec);
        }
    }

    // persistent (launch_config::fit): a census — one dispatch whose workgroups pass the door and leave — says whether
    // the device holds the whole launch at once; where it does not, the door's closer noted how many it saw arrive,
    // and the launch becomes that many (the shader rebuilt for its work items). The device's limits that decide this
    // (registers and shared memory per workgroup against a multiprocessor's) are known only to its driver: counting
    // is the portable way. Where no launch fits after three tries, the schedule falls back to taking items from the
    // counter, which needs no residency.
    void fit_persistent_launch() {
        if (how_ != strategy::persistent || !launch_.fit || scratch_.empty() || !scratch_.front().sync) return;
        vulkan::buffer& sync = *scratch_.front().sync;
        auto word = [&](std::uint32_t w) {
            std::uint32_t v = 0;
            sync.download_at(4 * w, std::as_writable_bytes(std::span(&v, 1)));
            return v;
        };
        for (int attempt = 0; attempt < 3; ++attempt) {
            sync.fill_at(4 * vkfuse::plan::persistent_census_word, 4, 1u);
            vulkan::sequence(*ctx_, record_dispatches(), 1, false).run();
            const std::uint32_t closed = word(vkfuse::plan::persistent_closed_word),
                                held = word(vkfuse::plan::persistent_arrived_word);
            sync.fill_at(4 * vkfuse::plan::persistent_budget_word, 4 * 8, 0u);  // the census leaves no trace
            if (closed == 0) return;
            if (held == 0 || held >= launch_.persistent_workgroups) break;
            launch_.persistent_workgroups = held;
            kernels_.clear();
            labels_.clear();
            build_kernels();
        }
        launch_.assigned = false;
        kernels_.clear();
        labels_.clear();
        build_kernels();
    }

    // Shared memory grows with the workgroup (reduction scratch, softmax weights). A workgroup size vkfuse chose
    // shrinks until every shader fits the device; one the user chose is kept, and an error says what to change.
    void fit_shared_memory(bool may_shrink) {
        const std::uint64_t limit = ctx_->device().max_shared_memory_bytes;
        auto widest = [&] {
            std::uint64_t most = 0;
            for (int s = 0; s < shader_count_; ++s)
                most = std::max(most, plan_->shader(s).shared.bytes(launch_.workgroup_size));
            return most;
        };
        while (may_shrink && widest() > limit && launch_.workgroup_size > 32) {
            launch_.workgroup_size /= 2;
            launch_.lanes = std::min(launch_.lanes, launch_.workgroup_size);
        }
        // a persistent matvec phase's staged inputs only where they fit beside the rest; else read from memory
        if (launch_.stage_inputs)
            for (int s = 0; s < shader_count_; ++s) {
                const vkfuse::plan::shared_layout& sh = plan_->shader(s).shared;
                if (sh.staged == 0 || sh.bytes(launch_.workgroup_size) + sh.staged_bytes() > limit)
                    launch_.stage_inputs = false;
            }
        if (widest() > limit)
            throw usage_error("vkfuse program: its " + std::string(strategy_name(how_)) + " shaders need " +
                              std::to_string(widest()) + " bytes of shared memory with workgroups of " +
                              std::to_string(launch_.workgroup_size) + ", more than the " + std::to_string(limit) +
                              " bytes " + ctx_->device().name + " has; choose a smaller workgroup_size.");
    }

    // The bytes allocate_buffers() will take on the device: every buffer's copies (or the packed arena) and a stack's
    // hidden states (the counters and scratch are small).
    std::uint64_t device_bytes_needed() const {
        if (packed_) return plan_->arena_floats * 4;
        using carry = vkfuse::plan::buffer_slot::carry_kind;
        const int carried_in = plan_->buffer_index(plan_->g.steps.carry_in.view());
        std::uint64_t total = 0;
        for (int b = 0; b < plan_->buffer_count; ++b) {
            if (layers_in_one_buffer_ && plan_->buffers[b].carry == carry::out && carried_in >= 0) continue;
            const std::uint64_t bytes = plan_->in_shared_memory(b) ? 4 : allocation_bytes(b);
            total += bytes * static_cast<std::uint64_t>(layers_in_one_buffer_ ? 1 : copies(b));
        }
        const int carried_out = plan_->buffer_index(plan_->g.steps.carry_out.view());
        if (plan_->stacked() && carried_out >= 0 && !layers_in_one_buffer_)
            total += static_cast<std::uint64_t>(layers_ - 1) * plan_->buffers[carried_out].bytes();
        return total;
    }

    void allocate_buffers() {
        // A program too large for the device is refused before it allocates anything, with what it needs.
        const std::uint64_t needed = device_bytes_needed(), available = ctx_->device().memory_bytes;
        if (available != 0 && needed > available)
            throw usage_error("vkfuse program: its buffers need " + std::to_string(needed) + " bytes of device memory, "
                              "more than the " + std::to_string(available) + " bytes " + ctx_->device().name +
                              " has for them (its largest device-local heap, or the context's memory budget, "
                              "VKFUSE_MEMORY_BUDGET). Use a smaller model, fewer positions (a shorter KV cache), or "
                              "weights in a compact format (bf16, q8_0, q4_0).");
        written_.clear();
        for (int b = 0; b < plan_->buffer_count; ++b) written_.emplace_back(static_cast<std::size_t>(copies(b)), false);
        param_set_.assign(static_cast<std::size_t>(plan_->param_count), false);
        if (packed_) {
            arena_ = std::make_unique<vulkan::buffer>(*ctx_, static_cast<std::size_t>(plan_->arena_floats * 4));
        } else {
            std::size_t total = 0;
            for (int b = 0; b < plan_->buffer_count; ++b)
                total += static_cast<std::size_t>(copies(b)) * plan_->buffers[b].pieces;
            owned_.reserve(total);  // no reallocation: bound_ points into it
            using carry = vkfuse::plan::buffer_slot::carry_kind;
            const int carried_in = plan_->buffer_index(plan_->g.steps.carry_in.view());
            for (int b = 0; b < plan_->buffer_count; ++b) {
                bound_.emplace_back();
                // one shader: the stack's output is rows of the one buffer its input has
                if (layers_in_one_buffer_ && plan_->buffers[b].carry == carry::out && carried_in >= 0) continue;
                // a temporary kept in shared memory needs no buffer; a word keeps the indexing uniform
                const std::uint64_t bytes = plan_->in_shared_memory(b) ? 4 : allocation_bytes(b);
                const std::uint64_t per_piece = plan_->buffers[b].split() ? plan_->buffers[b].piece_bytes() : bytes;
                for (int layer = 0; layer < (layers_in_one_buffer_ ? 1 : copies(b)); ++layer) {
                    bound_.back().emplace_back();
                    for (std::uint64_t at = 0; at < bytes; at += per_piece) {  // a split weight: a buffer per piece
                        owned_.emplace_back(*ctx_, static_cast<std::size_t>(std::min(per_piece, bytes - at)));
                        bound_.back().back().push_back(&owned_.back());
                    }
                }
            }
            for (int b = 0; b < plan_->buffer_count; ++b)
                if (bound_[static_cast<std::size_t>(b)].empty())
                    bound_[static_cast<std::size_t>(b)] = bound_[static_cast<std::size_t>(carried_in)];
            // the hidden state between layers: layer i's output, layer i + 1's input
            const int carried_out = plan_->buffer_index(plan_->g.steps.carry_out.view());
            if (plan_->stacked() && carried_out >= 0 && !layers_in_one_buffer_) {
                hidden_.reserve(static_cast<std::size_t>(layers_ - 1));
                for (int layer = 1; layer < layers_; ++layer)
                    hidden_.emplace_back(*ctx_, static_cast<std::size_t>(plan_->buffers[carried_out].bytes()));
            }
        }
        if (plan_->param_words > 0) params_ = std::make_unique<vulkan::mapped_buffer>(*ctx_, plan_->param_block_bytes());
        // A split attention's scratch: one per kernel, shared by a stack's layers (their dispatches run in order);
        // a persistent shader's counters, and one scratch for all its attention phases (they run one after another).
        // The shaders leave the counters at zero after every run.
        for (int s = 0; s < shader_count_; ++s) {
            const vkfuse::plan::shader_record sh = plan_->shader(s);
            if (sh.scratch_bindings == 0) continue;
            std::uint64_t partial_bytes = 4, heads = 1;
            for (int k = sh.first; k < sh.last; ++k)
                if (plan_->kernels[k].kind == vkfuse::plan::kernel_kind::attention && plan_->kernels[k].splits > 1) {
                    partial_bytes = std::max(partial_bytes, vkfuse::plan::attention_partial_bytes(plan_->kernels[k]));
                    heads = std::max<std::uint64_t>(heads, plan_->kernels[k].heads);
                }
            scratch_.push_back({s, vulkan::buffer(*ctx_, static_cast<std::size_t>(partial_bytes)),
                                vulkan::buffer(*ctx_, static_cast<std::size_t>(4 * heads)), {}});
            scratch_.back().arrivals.fill(0u);
            if (one_shader(how_)) {
                // profiling: 6 words per work item of a run after the counters (taken, started, finished)
                const std::uint64_t words = vkfuse::plan::persistent_sync_words + plan_->phase_instances() +
                                            (launch_.profile ? 6 * items_per_run() : 0);
                scratch_.back().sync = std::make_unique<vulkan::buffer>(*ctx_, static_cast<std::size_t>(4 * words));
                scratch_.back().sync->fill(0u);
            }
        }
        for (int b = 0; b < plan_->buffer_count; ++b) {
            if (plan_->buffers[b].slot_role == role::table) fill_table(b);
            if (plan_->buffers[b].slot_role == role::state) zero(b);
        }
    }

    // A rope table: row p holds cos(p * theta^(-2j/d)) for j < d/2, then the sines, computed in double.
    void fill_table(int b) {
        const auto& n = plan_->g[plan_->buffers[b].node];
        const std::uint32_t d = n.p0;
        std::vector<float> table(static_cast<std::size_t>(n.rows) * d);
        for (std::uint64_t pos = 0; pos < n.rows; ++pos)
            for (std::uint32_t j = 0; j < d / 2; ++j) {
                const double angle =
                    static_cast<double>(pos) * rope_inverse_frequency(d, static_cast<double>(n.value), n.scaling, j);
                table[pos * d + j] = static_cast<float>(std::cos(angle));
                table[pos * d + d / 2 + j] = static_cast<float>(std::sin(angle));
            }
        write_region(b, std::as_bytes(std::span<const float>(table)));
        mark_written(b, 0);
    }

    void zero(int b) {
        fill(b, 0u);
        for (int layer = 0; layer < copies(b); ++layer) mark_written(b, layer);
    }

    // Every copy of buffer b.
    void fill(int b, std::uint32_t word) {
        if (packed_) {
            arena_->fill_at(plan_->arena_offset[b] * 4, plan_->buffers[b].bytes(), word);
            return;
        }
        for (int layer = 0; layer < copies(b); ++layer) {
            each_piece(b, region(b, layer), plan_->buffers[b].bytes(),
                       [&](vulkan::buffer& piece, std::uint64_t at, std::uint64_t, std::uint64_t part) {
                           piece.fill_at(at, part, word);
                       });
        }
    }

    void write_region(int b, std::span<const std::byte> bytes, int layer = 0) {
        if (packed_) {
            arena_->upload_at(plan_->arena_offset[b] * 4, bytes);
            return;
        }
        each_piece(b, region(b, layer), bytes.size(),
                   [&](vulkan::buffer& piece, std::uint64_t at, std::uint64_t from, std::uint64_t part) {
                       piece.upload_at(at, bytes.subspan(from, part));
                   });
    }
    void read_region(int b, std::span<std::byte> bytes, int layer = 0) const {
        if (packed_) {
            arena_->download_at(plan_->arena_offset[b] * 4, bytes);
            return;
        }
        each_piece(b, region(b, layer), bytes.size(),
                   [&](vulkan::buffer& piece, std::uint64_t at, std::uint64_t from, std::uint64_t part) {
                       piece.download_at(at, bytes.subspan(from, part));
                   });
    }

    // One shader (persistent, single_dispatch) on llvmpipe: the shader says when the device's loop budget ran out
    // during the run (glsl/shader.hpp), which makes every result of that run wrong.
    void check_loop_budget() {
        if (one_shader(how_)) {
            if (!launch_.loop_budget || scratch_.empty() || !scratch_.front().sync) return;
            vulkan::buffer& sync = *scratch_.front().sync;
            std::uint32_t flag = 0;
            sync.download_at(4 * vkfuse::plan::persistent_budget_word, std::as_writable_bytes(std::span(&flag, 1)));
            if (flag == 0) return;
            sync.fill_at(4 * vkfuse::plan::persistent_budget_word, 4, 0u);
            throw device_error(
                "vkfuse program: this " + std::string(strategy_name(how_)) + " program made more loop trips in one run "
                "than " + ctx_->device().name + " allows a shader (llvmpipe: 65535 in all, "
                "LP_MAX_TGSI_LOOP_ITERATIONS), so the device ended its loops early and the run's results are wrong. "
                "On this device use the fused strategy, which starts every kernel afresh" +
                (how_ == strategy::persistent
                     ? " (more workgroups do not help here: the one each of its threads runs takes the items as fast "
                       "as the others would)."
                     : "."));
        }
    }

    void mark_outputs_written() {
        for (int b = 0; b < plan_->buffer_count; ++b)
            if (plan_->buffers[b].slot_role == role::output)
                for (int layer = 0; layer < copies(b); ++layer) mark_written(b, layer);
    }

    void ensure_ready() {
        for (int b = 0; b < plan_->buffer_count; ++b) {
            const auto& s = plan_->buffers[b];
            if (s.slot_role != role::output && !all_written(b))
                throw usage_error("vkfuse program: " + describe_buffer(b) + " and was never given data; call upload(\"" +
                                  std::string(s.name.view()) + "\", ...) or bind it before run().");
        }
        for (int i = 0; i < plan_->param_count; ++i)
            if (!param_set_[static_cast<std::size_t>(i)] && i != plan_->loop_param)
                throw usage_error("vkfuse program: " +
                                  std::string(plan_->g[plan_->params[i]].dtype == dtype_code::u32 ? "index '" : "param '") +
                                  std::string(plan_->g[plan_->params[i]].name.view()) + "' was never set; call " +
                                  (plan_->g[plan_->params[i]].dtype == dtype_code::u32 ? "set_index" : "set_param") +
                                  " before run().");
        if (sequence_) return;
        sequence_ = std::make_unique<vulkan::sequence>(*ctx_, record_dispatches(), 1,
                                                       launch_.profile && !one_shader(how_));
        ++recordings_;
    }

    // The dispatches of one run: every shader in order, a stack's once per layer with that layer's buffers; the
    // kernels of steps in `skip_steps` (bit per step) left out.
    std::vector<vulkan::dispatch> record_dispatches(std::uint32_t skip_steps = 0) const {
        std::vector<vulkan::dispatch> dispatches;
        auto add = [&](int s, int run, int layer) {
            vulkan::dispatch d;
            d.k = &kernels_[static_cast<std::size_t>(s)];
            if (packed_)
                d.buffers.push_back(arena_.get());
            else
                for (int b : shader_buffers(s))
                    for (vulkan::buffer* piece : buffers_for(b, layer)) d.buffers.push_back(piece);
            if (const scratch_buffers* sc = scratch_of(s)) {  // persistent counters; a split attention's scratch
                if (sc->sync) d.buffers.push_back(sc->sync.get());
                if (plan_->shader(s).scratch_bindings != 1) {
                    d.buffers.push_back(&sc->partials);
                    d.buffers.push_back(&sc->arrivals);
                }
            }
            d.uniform = params_.get();
            d.groups = {workgroups(s), 1, 1};
            if (plan_->push_constant_bytes() != 0) {  // this run's position of a repeat<>
                const auto position = static_cast<std::uint32_t>(run);
                d.push_constants = vulkan::pack_push_constants(position);
            }
            dispatches.push_back(std::move(d));
        };
        const bool per_layer = plan_->stacked() && !one_shader(how_);
        auto skipped = [&](int s) {
            return !one_shader(how_) && (skip_steps >> plan_->kernels[s].step & 1u) != 0;
        };
        for (int run = 0; run < runs_per_call_; ++run) {
            for (int s = 0; s < shader_count_; ++s) {
                if (skipped(s)) continue;
                if (per_layer && s == plan_->stack_first && plan_->stack_last > plan_->stack_first) {
                    for (int layer = 0; layer < layers_; ++layer)
                        for (int k = plan_->stack_first; k < plan_->stack_last; ++k) add(k, run, layer);
                    s = plan_->stack_last - 1;
                    continue;
                }
                add(s, run, -1);
            }
        }
        return dispatches;
    }

    strategy how_;
    const Plan* plan_;
    std::span<const std::string_view> sources_, packed_sources_;  // GLSL per shader: bindings apart, packed
    std::uint64_t binding_limit_;                                  // binding_bytes_limit of the program type
    int shader_count_, layers_, runs_per_call_, dispatch_count_;   // as program<...> publishes them
    bool layers_in_one_buffer_;                                    // see copies()
    context* ctx_;
    launch_config launch_;
    std::unique_ptr<std::mutex> lock_;  // serialises every call (a pointer, so a program can be moved)
    std::vector<std::string> labels_;
    std::vector<vulkan::kernel> kernels_;
    bool packed_ = false;
    std::unique_ptr<vulkan::buffer> arena_;  // every buffer, when packed (a pointer: its address is recorded)
    std::vector<vulkan::buffer> owned_;
    // per buffer, per copy (a layer's, for per-layer buffers), per piece (one, but for a split weight)
    std::vector<std::vector<std::vector<vulkan::buffer*>>> bound_;
    std::vector<vulkan::buffer> hidden_;     // a stack's hidden state between layers: hidden_[i] is layer i's output
    std::vector<std::vector<bool>> written_;  // per buffer and copy: uploaded, bound, computed, zeroed or filled
    std::unique_ptr<vulkan::mapped_buffer> params_;  // the parameter block, where the program has params
    // A shader's own buffers (plan::shader_record::scratch_bindings): a split attention's partials and counters, and
    // a persistent shader's work counters.
    struct scratch_buffers {
        int shader;
        vulkan::buffer partials, arrivals;
        std::unique_ptr<vulkan::buffer> sync;
    };
    std::vector<scratch_buffers> scratch_;
    const scratch_buffers* scratch_of(int shader) const {
        for (const scratch_buffers& sc : scratch_)
            if (sc.shader == shader) return &sc;
        return nullptr;
    }
    std::vector<bool> param_set_;
    vulkan::timing last_run_;  // run()'s, for profile()
    bool ran_ = false;
    std::unique_ptr<vulkan::sequence> sequence_;
    std::size_t recordings_ = 0;


};

} // namespace detail

// The runnable form of a program type `Program` (the type of `y = expression` or of layer_graph(...)), planned with
// strategy `How`. What it does at run time is detail::program_runtime's, shared by every strategy of one program
// type; this type adds the plan and the counts as constants.
template <class Program, strategy How = strategy::fused>
class program : public detail::program_runtime<std::remove_cvref_t<decltype(glsl::compiled<Program, How>::plan)>> {
public:
    using info = glsl::compiled<Program, How>;
    using packed_info = glsl::compiled<Program, How, true>;
    static constexpr auto& plan = info::plan;
    static constexpr strategy how = How;
    // Dispatches per run: one per kernel, or one for a single-dispatch or persistent program.
    static constexpr int shader_count = plan.shader_count();
    // A repeat<> program runs its kernels once per position (a one-shader program loops inside its one dispatch).
    static constexpr bool repeating = plan.loop_param >= 0;
    static constexpr int runs_per_call = repeating && !one_shader(How) ? static_cast<int>(plan.loop_count) : 1;
    // A stack<L> records its kernels once per layer (a one-shader program loops over the layers inside its dispatch).
    static constexpr int layers = static_cast<int>(plan.layers());
    static constexpr int dispatch_count =
        runs_per_call * (one_shader(How)
                             ? 1
                             : shader_count + (layers - 1) * (plan.stack_last - plan.stack_first));

    explicit program(context& ctx, program_options options = {})
        : detail::program_runtime<std::remove_cvref_t<decltype(plan)>>(ctx, options, How, plan, info::sources,
                                                                       packed_info::sources,
                                                                       binding_bytes_limit<Program>) {}
    program(context& ctx, const Program&, program_options options = {}) : program(ctx, options) {}
    program(context& ctx, const Program&, strategy_tag<How>, program_options options = {}) : program(ctx, options) {}
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
