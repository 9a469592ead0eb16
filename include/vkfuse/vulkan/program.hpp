// vkfuse/vulkan/program.hpp — a program type made runnable: its kernels, its buffers, its dispatch sequence.
//
//     vkfuse::context ctx;                            // the best device (VKFUSE_DEVICE overrides)
//     vkfuse::program prog(ctx, y = x + w * x);      // compiles the kernels; allocates every buffer
//     prog.upload("x", xs);  prog.upload("w", ws);
//     vkfuse::vulkan::timing t = prog.run();
//     std::vector<float> out = prog.download("y");
//
// Buffers are addressed by the placeholder names of the expression. Every misuse — an unknown name, data of the
// wrong size, an input never given data, a param never set — throws vkfuse::usage_error saying what to do.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../glsl/source.hpp"
#include "buffer.hpp"
#include "context.hpp"
#include "kernel.hpp"
#include "sequence.hpp"

namespace vkfuse {

using vulkan::context;
using vulkan::context_options;

// How a program is laid out on its device. Zeros mean "choose for the device".
struct program_options {
    std::uint32_t workgroup_size = 0;  // a power of two; default 256, or the device's maximum if smaller
    std::uint32_t lanes = 0;           // invocations per matvec row, every kernel; default: see matvec_threads
    bool subgroups = true;             // use subgroup arithmetic where the device has it
    // On a GPU, a matvec kernel gets as many invocations per row (a power of two from the subgroup size up to the
    // workgroup size) as it takes to have this many in flight: few long rows need several subgroups each to keep
    // enough loads in flight, many rows need one. A CPU device keeps one subgroup per row.
    std::uint32_t matvec_threads = 1u << 17;
    // Pack every buffer into one binding when a kernel needs more storage-buffer bindings than the device allows
    // (or than this number, if it is smaller; 0: the device's limit). `pack_buffers` packs regardless.
    std::uint32_t max_bindings = 0;
    bool pack_buffers = false;
};

// The launch geometry chosen for a device.
struct launch_config {
    std::uint32_t workgroup_size = 256;
    std::uint32_t lanes = 32;  // the smallest invocations-per-row: the subgroup size where subgroups are used
    bool subgroup_arithmetic = false;
    bool subgroup_shuffle = false;     // used only together with subgroup arithmetic
    std::uint32_t matvec_threads = 0;  // 0: every matvec kernel uses `lanes`
    bool fixed_lanes = false;          // the user chose `lanes`

    // Invocations per row for a matvec kernel of `rows` rows.
    std::uint32_t lanes_for(std::uint32_t rows) const {
        std::uint32_t l = lanes;
        if (fixed_lanes) return l;
        while (l < workgroup_size && static_cast<std::uint64_t>(rows) * l < matvec_threads) l *= 2;
        return l;
    }

    std::string_view preamble() const {
        if (!subgroup_arithmetic) return {};
        return subgroup_shuffle ? "#define VKFUSE_SUBGROUP_ARITHMETIC 1\n#define VKFUSE_SUBGROUP_SHUFFLE 1\n"
                                : "#define VKFUSE_SUBGROUP_ARITHMETIC 1\n";
    }
};

namespace detail {

constexpr bool power_of_two(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

inline std::uint32_t floor_power_of_two(std::uint32_t v) {
    std::uint32_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

// `single`: the whole program runs in one workgroup, so on a GPU it gets the largest one (up to 1024): every extra
// invocation shortens each phase's loops, while a barrier costs about the same at any size. Not on a CPU device:
// lavapipe runs a workgroup's invocations as coroutines, so there a barrier costs in proportion to the size.
inline launch_config choose_launch(const vulkan::device_info& d, const program_options& o, bool single = false) {
    launch_config c;
    const std::uint32_t max_wg = std::min(d.max_workgroup_invocations, d.max_workgroup_size[0]);
    const std::uint32_t preferred = single && d.type != "CPU" ? 1024 : 256;
    c.workgroup_size =
        o.workgroup_size != 0 ? o.workgroup_size : std::min<std::uint32_t>(preferred, floor_power_of_two(max_wg));
    if (!power_of_two(c.workgroup_size) || c.workgroup_size > max_wg)
        throw usage_error("vkfuse program: workgroup_size " + std::to_string(c.workgroup_size) +
                          " must be a power of two no larger than the device's " + std::to_string(max_wg));
    const bool subgroup_ok = o.subgroups && d.subgroup_arithmetic && power_of_two(d.subgroup_size);
    c.lanes = o.lanes != 0 ? o.lanes : (subgroup_ok ? d.subgroup_size : 32u);
    c.lanes = std::min(c.lanes, c.workgroup_size);
    if (!power_of_two(c.lanes))
        throw usage_error("vkfuse program: lanes " + std::to_string(c.lanes) + " must be a power of two");
    c.subgroup_arithmetic = subgroup_ok;
    c.subgroup_shuffle = subgroup_ok && d.subgroup_shuffle;
    c.fixed_lanes = o.lanes != 0;
    c.matvec_threads = d.type == "CPU" ? 0 : o.matvec_threads;
    return c;
}

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
    static constexpr int shader_count = info::kernel_count;
    // A repeat<> program runs its kernels once per position (single_dispatch loops inside its one dispatch).
    static constexpr bool repeating = plan.loop_param >= 0;
    static constexpr int runs_per_call = repeating && How != strategy::single_dispatch ? static_cast<int>(plan.loop_count) : 1;
    static constexpr int dispatch_count = shader_count * runs_per_call;

    explicit program(context& ctx, program_options options = {})
        : ctx_(&ctx), launch_(detail::choose_launch(ctx.device(), options, How == strategy::single_dispatch)) {
        fit_shared_memory(options.workgroup_size == 0);
        std::uint32_t limit = ctx.device().max_storage_buffers_per_stage;
        if (options.max_bindings != 0) limit = std::min(limit, options.max_bindings);
        std::size_t widest = 0;
        for (int k = 0; k < shader_count; ++k) widest = std::max(widest, shader_buffers(k).size());
        packed_ = options.pack_buffers || widest > limit;
        build_kernels();
        allocate_buffers();
        params_.assign(static_cast<std::size_t>(plan.param_count), 0u);
        param_set_.assign(static_cast<std::size_t>(plan.param_count), false);
    }
    program(context& ctx, const Program&, program_options options = {}) : program(ctx, options) {}
    program(context& ctx, const Program&, strategy_tag<How>, program_options options = {}) : program(ctx, options) {}

    program(const program&) = delete;
    program& operator=(const program&) = delete;
    program(program&&) = default;
    program& operator=(program&&) = default;

    // ---- data in and out -------------------------------------------------------------------------------------

    // Copies f32 data into buffer `name` (an input, weight, state or output); the size must match its shape.
    void upload(std::string_view name, std::span<const float> data) {
        const int b = slot(name);
        if (plan.buffers[b].slot_role == role::table)
            throw usage_error("vkfuse program: '" + std::string(name) + "' is a table vkfuse computes itself.");
        check_size(b, data.size(), "upload");
        write_region(b, std::as_bytes(data));
        has_data_[static_cast<std::size_t>(b)] = true;
    }
    void upload(std::string_view name, const std::vector<float>& data) { upload(name, std::span<const float>(data)); }

    // The contents of buffer `name`: an output, a named result, a state. (u32 outputs come back as their bits;
    // use download_indices.)
    std::vector<float> download(std::string_view name) const {
        const int b = slot(name);
        std::vector<float> out(plan.buffers[b].elements);
        read_region(b, std::as_writable_bytes(std::span<float>(out)));
        return out;
    }
    // The contents of a u32 buffer (an argmax output).
    std::vector<std::uint32_t> download_indices(std::string_view name) const {
        const int b = slot(name);
        std::vector<std::uint32_t> out(plan.buffers[b].elements);
        read_region(b, std::as_writable_bytes(std::span<std::uint32_t>(out)));
        return out;
    }

    // Sets runtime scalar `name` (a param<"name"> leaf).
    void set_param(std::string_view name, float value) {
        const int i = param(name, dtype_code::f32);
        set_raw(i, std::bit_cast<std::uint32_t>(value));
    }
    // Sets runtime index `name` (a uint_param<"name"> leaf: a position or a token); it must be inside every table and
    // cache it indexes.
    void set_index(std::string_view name, std::uint32_t value) {
        const int i = param(name, dtype_code::u32);
        if (i == plan.loop_param)
            throw usage_error("vkfuse program: index '" + std::string(name) + "' is the one repeat<> runs over; each "
                              "run goes through all " + std::to_string(plan.loop_count) + " positions itself.");
        const std::uint32_t limit = plan.param_limit[i];
        if (limit != 0 && value >= limit)
            throw usage_error("vkfuse program: index '" + std::string(name) + "' = " + std::to_string(value) +
                              " is out of range: the tables and caches it indexes hold " + std::to_string(limit) +
                              " rows.");
        set_raw(i, value);
    }

    // Uses an existing buffer for `name` (to share weights or caches between programs); it must have exactly the
    // size the placeholder's shape needs and outlive its use here.
    void bind(std::string_view name, vulkan::buffer& external) {
        const int b = slot(name);
        if (packed_)
            throw usage_error("vkfuse program: this program packs all its buffers into one (its kernels need more "
                              "bindings than the device allows), so '" + std::string(name) +
                              "' cannot be bound to an outside buffer; upload its data instead.");
        if (external.size() != plan.buffers[b].bytes())
            throw usage_error("vkfuse program: bind of a buffer of " + std::to_string(external.size()) +
                              " bytes, but " + describe(b) + ".");
        bound_[static_cast<std::size_t>(b)] = &external;
        has_data_[static_cast<std::size_t>(b)] = true;
        sequence_.reset();
    }

    // The buffer currently used for `name` (when packed, the one buffer that holds them all).
    vulkan::buffer& buffer(std::string_view name) {
        const int b = slot(name);
        return packed_ ? *arena_ : *bound_[static_cast<std::size_t>(b)];
    }

    // Fills outputs, named results and temporaries with NaN, so a kernel that skips an element cannot pass a check.
    void poison() {
        for (int b = 0; b < plan.buffer_count; ++b) {
            if (plan.buffers[b].slot_role != role::output) continue;
            if (packed_)
                arena_->fill_at(std::size_t{plan.arena_offset[b]} * 4, plan.buffers[b].bytes(), 0x7fc00000u);
            else
                bound_[static_cast<std::size_t>(b)]->fill(0x7fc00000u);
        }
    }

    // True when every buffer lives in one binding (see program_options::max_bindings).
    bool packed() const { return packed_; }

    // The plan as a table, one line per kernel: what it computes, its work units, its launch on this device and
    // its buffers in binding order.
    std::string describe() const {
        std::string text = std::string(strategy_name(How)) + ": " + std::to_string(dispatch_count) + " dispatch" +
                           (dispatch_count == 1 ? "" : "es") + (packed_ ? ", buffers packed into one binding" : "") +
                           "\n";
        for (int k = 0; k < plan.kernel_count; ++k) {
            const auto& kp = plan.kernels[k];
            const glsl::detail::kernel_view kv(plan, k);
            text += (How == strategy::single_dispatch ? "  phase " : "  kernel ") + std::to_string(k + 1) + ": " +
                    (kp.kind == plan::kernel_kind::matvec      ? "matvec"
                     : kp.kind == plan::kernel_kind::attention ? "attention"
                                                               : "elementwise") +
                    " computing";
            for (int r = 0; r < kp.root_count; ++r) {
                const int root = kp.roots[r];
                const auto& n = plan.g[root];
                std::string what = n.kind == plan::node_kind::append
                                       ? "append to " + std::string(plan.buffers[plan.buffer_of_node[root]].name.view())
                                   : !plan.g.result_name[root].empty() ? std::string(plan.g.result_name[root].view())
                                                                       : "t" + std::to_string(root);
                text += (r ? ", " : " ") + what + "[" + std::to_string(kv.length(root)) + "]";
            }
            const int shader = How == strategy::single_dispatch ? 0 : k;
            if (kp.kind == plan::kernel_kind::attention)
                text += "; " + std::to_string(plan.g[kp.roots[0]].p0) + " heads, " +
                        (How == strategy::single_dispatch ? "all at once" : "a workgroup each");
            else
                text += "; " + std::to_string(kv.total_units()) + " units" +
                        (kp.kind == plan::kernel_kind::matvec ? " (rows or rope row pairs), " + std::to_string(lanes(k)) +
                                                                    " invocations per row"
                                                              : std::string());
            text += "; " + std::to_string(workgroups(shader)) + " workgroups of " +
                    std::to_string(launch_.workgroup_size) + "; buffers";
            for (int i = 0; i < kp.buffer_count; ++i) {
                const auto& b = plan.buffers[kp.buffers[i]];
                text += std::string(i ? ", " : " ") + (kp.writes[i] ? "->" : "") +
                        (b.temporary ? "t" + std::to_string(b.node) : std::string(b.name.view()));
            }
            text += "\n";
        }
        return text;
    }

    // ---- running ---------------------------------------------------------------------------------------------

    // Runs every dispatch in one command buffer (barriers between them), submits and waits.
    vulkan::timing run() {
        ensure_ready();
        return sequence_->run();
    }

    // Runs every dispatch as a submit of its own, waiting for each: the naive baseline of the benchmarks.
    vulkan::timing run_each_submitted() {
        ensure_ready();
        return sequence_->run_each_submitted();
    }

    // ---- inspection ------------------------------------------------------------------------------------------

    const launch_config& launch() const { return launch_; }
    const vulkan::device_info& device() const { return ctx_->device(); }
    std::string_view glsl(int shader) const {
        return (packed_ ? packed_info::sources : info::sources)[static_cast<std::size_t>(shader)];
    }
    // Invocations per row of shader k's matvec work.
    // (Under single_dispatch each phase has its own; this is the one of phase k.)
    std::uint32_t lanes(int k) const {
        if (How == strategy::single_dispatch)
            return glsl::detail::single_dispatch_lanes(glsl::detail::kernel_view(plan, k)).at(launch_.workgroup_size);
        return plan.kernels[k].kind == plan::kernel_kind::matvec ? launch_.lanes_for(units(k)) : launch_.lanes;
    }
    // Workgroups dispatched by shader k on this device.
    std::uint32_t workgroups(int k) const {
        if (How == strategy::single_dispatch) return 1;
        const auto& kp = plan.kernels[k];
        std::uint64_t groups = 0;
        if (kp.kind == plan::kernel_kind::attention) {
            groups = plan.g[kp.roots[0]].p0;
        } else {
            const std::uint32_t per_group =
                kp.kind == plan::kernel_kind::matvec ? launch_.workgroup_size / lanes(k) : launch_.workgroup_size;
            groups = (units(k) + per_group - 1) / per_group;
        }
        // every body is a grid-stride loop, so fewer groups than units is still correct
        return static_cast<std::uint32_t>(std::min<std::uint64_t>(groups, ctx_->device().max_workgroup_count[0]));
    }
    // Buffers of shader k, in binding order.
    static std::vector<int> shader_buffers(int k) {
        std::vector<bool> used(static_cast<std::size_t>(plan.buffer_count), false);
        const int first = How == strategy::single_dispatch ? 0 : k;
        const int last = How == strategy::single_dispatch ? plan.kernel_count : k + 1;
        for (int i = first; i < last; ++i)
            for (int j = 0; j < plan.kernels[i].buffer_count; ++j)
                used[static_cast<std::size_t>(plan.kernels[i].buffers[j])] = true;
        std::vector<int> out;
        for (int b = 0; b < plan.buffer_count; ++b)
            if (used[static_cast<std::size_t>(b)]) out.push_back(b);
        return out;
    }

private:
    static std::uint32_t units(int k) { return glsl::detail::kernel_view(plan, k).total_units(); }

    int slot(std::string_view name) const {
        const int b = plan.buffer_index(name);
        if (b < 0) throw usage_error("vkfuse program: no buffer named '" + std::string(name) + "'. " + names_text());
        return b;
    }

    int param(std::string_view name, dtype_code want) const {
        for (int i = 0; i < plan.param_count; ++i) {
            const auto& n = plan.g[plan.params[i]];
            if (n.name.view() != name) continue;
            if (n.dtype != want)
                throw usage_error("vkfuse program: '" + std::string(name) + "' is " +
                                  (n.dtype == dtype_code::u32 ? "an index: use set_index" : "a param: use set_param"));
            return i;
        }
        throw usage_error("vkfuse program: no " + std::string(want == dtype_code::u32 ? "index" : "param") +
                          " named '" + std::string(name) + "'. " + names_text());
    }

    void set_raw(int i, std::uint32_t bits) {
        params_[static_cast<std::size_t>(i)] = bits;
        param_set_[static_cast<std::size_t>(i)] = true;
        sequence_.reset();  // push constants are recorded into the command buffer
    }

    static std::string describe(int b) {
        const auto& s = plan.buffers[b];
        const std::string shape = s.cols != 0 ? std::to_string(s.rows) + ", " + std::to_string(s.cols)
                                              : std::to_string(s.elements);
        return detail::role_name(s.slot_role) + " '" + std::string(s.name.view()) + "' is " +
               std::string(dtype_name(s.dtype)) + "[" + shape + "] = " + std::to_string(s.bytes()) + " bytes";
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
                              " elements, but " + describe(b) + ". Pass exactly " +
                              std::to_string(plan.buffers[b].elements) + " elements.");
    }

    void build_kernels() {
        // (a single dispatch's attention takes a head in slices, so any workgroup serves it)
        if (How != strategy::single_dispatch)
            for (int k = 0; k < plan.kernel_count; ++k)
                if (plan.kernels[k].kind == plan::kernel_kind::attention)
                    check_head_dim(plan.g[plan.kernels[k].roots[0]].p2);
        kernels_.reserve(static_cast<std::size_t>(shader_count));
        for (int k = 0; k < shader_count; ++k)
            labels_.push_back(std::string(strategy_name(How)) + " shader " + std::to_string(k + 1) + " of " +
                              std::to_string(shader_count));
        for (int k = 0; k < shader_count; ++k) {
            vulkan::kernel_spec spec;
            spec.label = labels_[static_cast<std::size_t>(k)];
            spec.glsl = glsl(k);
            spec.binding_count = packed_ ? 1u : static_cast<std::uint32_t>(shader_buffers(k).size());
            spec.push_constant_bytes = plan.push_constant_bytes();
            spec.workgroup_size = launch_.workgroup_size;
            spec.lanes = How == strategy::single_dispatch ? launch_.lanes : lanes(k);  // single: LANES is unused
            spec.preamble = launch_.preamble();
            kernels_.emplace_back(*ctx_, spec);
        }
    }

    // Shared memory grows with the workgroup (reduction scratch, softmax weights). A workgroup size vkfuse chose
    // shrinks until every shader fits the device; one the user chose is kept, and an error says what to change.
    void fit_shared_memory(bool may_shrink) {
        const std::uint64_t limit = ctx_->device().max_shared_memory_bytes;
        auto widest = [&] {
            std::uint64_t most = 0;
            for (int k = 0; k < shader_count; ++k) {
                const glsl::detail::phase_range phases = How == strategy::single_dispatch
                                                             ? glsl::detail::phase_range{0, plan.kernel_count}
                                                             : glsl::detail::phase_range{k, k + 1};
                most = std::max(most, glsl::detail::shared_use(plan, phases).bytes(launch_.workgroup_size));
            }
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

    void check_head_dim(std::uint32_t head_dim) const {
        if (head_dim > launch_.workgroup_size)
            throw usage_error("vkfuse program: attention with head_dim " + std::to_string(head_dim) +
                              " needs a workgroup of at least that many invocations; this one has " +
                              std::to_string(launch_.workgroup_size) + ".");
    }

    void allocate_buffers() {
        has_data_.assign(static_cast<std::size_t>(plan.buffer_count), false);
        if (packed_) {
            const std::uint64_t bytes = plan.arena_floats * 4;
            if (bytes > ctx_->device().max_storage_buffer_range)
                throw usage_error("vkfuse program: packed into one binding, its buffers need " + std::to_string(bytes) +
                                  " bytes, more than the " + std::to_string(ctx_->device().max_storage_buffer_range) +
                                  " one binding can address on " + ctx_->device().name +
                                  "; split the program into smaller ones.");
            arena_ = std::make_unique<vulkan::buffer>(*ctx_, static_cast<std::size_t>(bytes));
        } else {
            owned_.reserve(static_cast<std::size_t>(plan.buffer_count));
            for (int b = 0; b < plan.buffer_count; ++b) owned_.emplace_back(*ctx_, plan.buffers[b].bytes());
            for (auto& o : owned_) bound_.push_back(&o);
        }
        for (int b = 0; b < plan.buffer_count; ++b)
            if (plan.buffers[b].slot_role == role::table) fill_table(b);
    }

    // A rope table: row p holds cos(p * theta^(-2j/d)) for j < d/2, then the sines, computed in double.
    void fill_table(int b) {
        const auto& n = plan.g[plan.buffers[b].node];
        const std::uint32_t d = n.p0;
        std::vector<float> table(static_cast<std::size_t>(n.rows) * d);
        for (std::uint32_t pos = 0; pos < n.rows; ++pos)
            for (std::uint32_t j = 0; j < d / 2; ++j) {
                const double angle = pos * std::pow(static_cast<double>(n.value), -2.0 * j / d);
                table[static_cast<std::size_t>(pos) * d + j] = static_cast<float>(std::cos(angle));
                table[static_cast<std::size_t>(pos) * d + d / 2 + j] = static_cast<float>(std::sin(angle));
            }
        write_region(b, std::as_bytes(std::span<const float>(table)));
        has_data_[static_cast<std::size_t>(b)] = true;
    }

    void write_region(int b, std::span<const std::byte> bytes) {
        if (packed_)
            arena_->upload_at(std::size_t{plan.arena_offset[b]} * 4, bytes);
        else
            bound_[static_cast<std::size_t>(b)]->upload(bytes);
    }
    void read_region(int b, std::span<std::byte> bytes) const {
        if (packed_)
            arena_->download_at(std::size_t{plan.arena_offset[b]} * 4, bytes);
        else
            bound_[static_cast<std::size_t>(b)]->download(bytes);
    }

    void ensure_ready() {
        for (int b = 0; b < plan.buffer_count; ++b) {
            const auto& s = plan.buffers[b];
            if (s.slot_role != role::output && !has_data_[static_cast<std::size_t>(b)])
                throw usage_error("vkfuse program: " + describe(b) + " and was never given data; call upload(\"" +
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
        std::vector<std::byte> push(plan.push_constant_bytes());
        if (!push.empty()) std::memcpy(push.data(), params_.data(), push.size());
        std::vector<vulkan::dispatch> dispatches;
        for (int run = 0; run < runs_per_call; ++run) {
            if (repeating) {  // this run's position
                const auto position = static_cast<std::uint32_t>(run);
                std::memcpy(push.data() + 4 * plan.loop_param, &position, 4);
            }
            for (int k = 0; k < shader_count; ++k) {
                vulkan::dispatch d;
                d.k = &kernels_[static_cast<std::size_t>(k)];
                if (packed_)
                    d.buffers.push_back(arena_.get());
                else
                    for (int b : shader_buffers(k)) d.buffers.push_back(bound_[static_cast<std::size_t>(b)]);
                d.groups = {workgroups(k), 1, 1};
                d.push_constants = push;
                dispatches.push_back(std::move(d));
            }
        }
        sequence_ = std::make_unique<vulkan::sequence>(*ctx_, std::move(dispatches));
    }

    context* ctx_;
    launch_config launch_;
    std::vector<std::string> labels_;
    std::vector<vulkan::kernel> kernels_;
    bool packed_ = false;
    std::unique_ptr<vulkan::buffer> arena_;  // every buffer, when packed (a pointer: its address is recorded)
    std::vector<vulkan::buffer> owned_;
    std::vector<vulkan::buffer*> bound_;
    std::vector<bool> has_data_;
    std::vector<std::uint32_t> params_;  // push-constant words: f32 bits or u32
    std::vector<bool> param_set_;
    std::unique_ptr<vulkan::sequence> sequence_;
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
