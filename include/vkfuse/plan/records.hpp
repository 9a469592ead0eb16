// vkfuse/plan/records.hpp — the plan as data: every buffer, every kernel and every shader of a program, complete.
//
// A kernel record says everything about one dispatch (or one phase of a single-dispatch shader) that is not the text
// of its statements: its kind, the values it computes (segments) and their work units, how its invocations share a
// matvec row, its buffers in binding order and how it accesses each, the GLSL helper functions and the shared memory
// it needs, where a single-dispatch phase must fence, and what it costs. The planner fills these once, at compile
// time; glsl/ prints them and program/ reads them, and neither works any of it out again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/types.hpp"
#include "../ops/traits.hpp"
#include "graph.hpp"

namespace vkfuse {

// How a program is cut into dispatches.
//   per_op:          a dispatch per materialised value.
//   fused:           a dispatch per kernel of the plan (fusion.md).
//   single_dispatch: every kernel a phase of one dispatch of one workgroup, temporaries in its shared memory.
//   persistent:      every kernel a phase of one dispatch of many workgroups, which take the phases' work items in
//                    order from a counter and start an item once every item before its phase has finished
//                    (fusion.md, "The persistent strategy").
enum class strategy : std::uint8_t { per_op, fused, single_dispatch, persistent };

template <strategy S>
struct strategy_tag {
    static constexpr strategy value = S;
};
inline constexpr strategy_tag<strategy::per_op> per_op{};
inline constexpr strategy_tag<strategy::fused> fused{};
inline constexpr strategy_tag<strategy::single_dispatch> single_dispatch{};
inline constexpr strategy_tag<strategy::persistent> persistent{};

constexpr std::string_view strategy_name(strategy s) {
    return s == strategy::per_op ? "per_op"
           : s == strategy::fused ? "fused"
           : s == strategy::single_dispatch ? "single_dispatch"
                                            : "persistent";
}

// The whole program is one shader whose kernels are phases (single_dispatch, persistent): it loops over a repeat<>'s
// positions and a stack's layers itself, and keeps every layer's copy of a weight in one buffer.
constexpr bool one_shader(strategy s) { return s == strategy::single_dispatch || s == strategy::persistent; }

} // namespace vkfuse

namespace vkfuse::plan {

enum class kernel_kind : std::uint8_t {
    elementwise,  // one invocation per output element (or element pair)
    matvec,       // several invocations per output row (or row pair), cooperating on the dot products
    attention,    // fused, per_op, persistent: workgroups per query head; single_dispatch: a team of invocations per head
};

constexpr std::string_view kind_name(kernel_kind k) {
    return k == kernel_kind::matvec ? "matvec" : k == kernel_kind::attention ? "attention" : "elementwise";
}

// A buffer of the program: a placeholder bound by name, a named result, or a temporary between two kernels.
struct buffer_slot {
    name_buf name;                 // empty for a temporary
    role slot_role = role::input;  // input, weight, state, table; output for outputs, named results, temporaries
    bool temporary = false;
    dtype_code dtype = dtype_code::f32;
    std::uint64_t elements = 0;
    std::uint64_t rows = 0, cols = 0;  // a matrix's shape, for messages
    int node = -1;                     // the graph node it holds
    // A stack<L>'s per-layer weights and states have `layers` = L copies, layer i's bound to layer i's dispatches.
    std::uint32_t layers = 1;
    // The stack's input and output: layer i reads copy i of the hidden state and writes copy i + 1 (copy 0 is the
    // input buffer, copy L the output buffer, the others the runtime's).
    enum class carry_kind : std::uint8_t { none, in, out } carry = carry_kind::none;

    constexpr std::uint64_t bytes() const { return storage_bytes(dtype, elements); }  // of one layer's copy
    constexpr bool per_layer() const { return layers > 1 || carry != carry_kind::none; }
    // Where a single-dispatch stack keeps every layer's copy in one buffer, copy i starts at element i * stride:
    // the elements rounded up to 16 bytes, so every copy is aligned for vec4 views, fills and copies (a block
    // format's copy is a multiple of 8 blocks).
    constexpr std::uint64_t layer_stride() const {
        const std::uint64_t unit = is_block_format(dtype) ? 256 : dtype == dtype_code::f16 || dtype == dtype_code::bf16 ? 8 : 4;
        return (elements + unit - 1) / unit * unit;
    }
    constexpr std::uint64_t layer_stride_bytes() const { return storage_bytes(dtype, layer_stride()); }

    // A weight larger than one binding may hold (binding_bytes_limit) lives in `pieces` buffers, each its own
    // binding: piece k holds elements [k * piece_elements, (k + 1) * piece_elements) of what the buffer holds (every
    // layer's copy, under single_dispatch), the last piece the rest. A piece is a whole number of vec4s and of
    // blocks, so no read of 4 elements or of a block straddles two; rows may. Shaders read a split buffer through
    // a function that picks the piece (glsl/storage.hpp).
    std::uint32_t pieces = 1;
    std::uint64_t piece_elements = 0;  // 0 when not split

    constexpr bool split() const { return pieces > 1; }
    constexpr std::uint64_t piece_bytes() const { return storage_bytes(dtype, piece_elements); }
};

// How a shader uses one of its buffers.
enum class access : std::uint8_t { read, write, read_write };

struct binding {
    int buffer = -1;
    access mode = access::read;
    bool vec4 = false;  // also read through a vec4 view (the matrix of a vectorised matvec, its prologue's inputs)

    constexpr bool reads() const { return mode != access::write; }
    constexpr bool writes() const { return mode != access::read; }
};

// The most bytes one binding holds before a weight is split over several: 2^27, the least maxStorageBufferRange
// Vulkan allows any device (lavapipe has exactly that), so a program's shaders run everywhere. Specialise it for a
// program type to choose otherwise — smaller to test the split at small sizes, larger where every target device
// addresses more and one binding per weight is worth a device requirement:
//
//     template <> inline constexpr std::uint64_t vkfuse::binding_bytes_limit<decltype(my_program)> = 1u << 20;
} // namespace vkfuse::plan

namespace vkfuse {
template <class Program>
inline constexpr std::uint64_t binding_bytes_limit = std::uint64_t{1} << 27;
} // namespace vkfuse

namespace vkfuse::plan {

// Split attention (flash decoding). One workgroup per query head leaves most of a GPU idle (Qwen2.5-0.5B has 14 heads;
// an H200 132 multiprocessors) and walks every position alone, so the time grows with the context however wide the
// device. A fused or per_op attention kernel instead runs `splits` workgroups per head; at run time, with P positions
// to attend, min(splits, ceil(P / attention_split_positions)) of them take a contiguous share of the positions each,
// keep their own online softmax, and leave (unnormalised sum, maximum, sum of weights) in a scratch buffer; the last
// to finish (an atomic counter per head) merges them. At P <= attention_split_positions one workgroup does everything,
// as before. The splits are fixed by the cache's rows: enough that the longest context gives each at least
// 64 positions, at most 32 per head.
inline constexpr std::uint32_t attention_split_positions = 32;
constexpr std::uint32_t attention_splits(std::uint64_t cache_rows) {
    const std::uint64_t s = (cache_rows + 63) / 64;
    return static_cast<std::uint32_t>(s < 1 ? 1 : s > 32 ? 32 : s);
}

// One materialised value a kernel computes: a segment of its work units.
struct segment {
    int root = -1;                // the node computed
    int stored = -1;              // the node whose value is written: the root, or the new row of an append
    std::uint64_t length = 0;     // elements written per run
    std::uint32_t pair_dim = 0;   // head dim of the rope evaluated here: rows go in pairs j, j + pair_dim/2 (0: none)
    std::uint64_t first_unit = 0;
    std::uint64_t units = 0;      // rows or row pairs
};

// How the invocations of a matvec kernel share its rows; choose_lanes() makes the choice for a device.
struct lanes_rule {
    std::uint64_t rows = 0;      // work units: rows or row pairs
    std::uint32_t longest = 1;   // loop steps of the longest row (vec4s where the row is vectorised, else floats)
    std::uint32_t line = 1;      // steps that read one 128-byte line of a row (8 vec4s or 32 floats)
};

// Shared memory a shader declares, by purpose. The arrays are named in GLSL by glsl/library.hpp.
struct shared_layout {
    bool scratch = false;      // a float per invocation: workgroup reductions, row sums
    bool sums = false;         // another: softmax statistics being merged (single_dispatch attention)
    bool weights = false;      // another: a block's softmax weights (attention)
    std::uint32_t query = 0;   // floats: the query head being attended (fused attention)
    std::uint32_t pool = 0;    // floats: temporaries kept on chip (single_dispatch)
    std::uint32_t staged = 0;  // floats: a persistent matvec phase's input vectors (vkf_x), where the device has room

    constexpr std::uint32_t per_invocation() const { return scratch + sums + weights; }
    constexpr std::uint64_t bytes(std::uint32_t workgroup_size) const {
        return 4ull * (std::uint64_t{query} + pool + std::uint64_t{per_invocation()} * workgroup_size);
    }
    // What staging the inputs adds (declared only under VKFUSE_STAGE_INPUTS, which the runtime defines where it fits).
    constexpr std::uint64_t staged_bytes() const { return 4ull * staged; }
    constexpr void merge(const shared_layout& o) {
        scratch = scratch || o.scratch;
        sums = sums || o.sums;
        weights = weights || o.weights;
        query = query > o.query ? query : o.query;
        pool = pool > o.pool ? pool : o.pool;
        staged = staged > o.staged ? staged : o.staged;
    }
};

// The helper functions a shader defines. Op helpers and workgroup reductions are bit sets indexed by vkfuse::op.
struct helper_set {
    std::uint32_t ops = 0;          // functions of op_info::helper, with the ops they need
    std::uint32_t combines = 0;     // vkf_workgroup_<combined>: reductions over the workgroup, by combining op
    bool segment_sum = false;       // sums over aligned groups of invocations: matvec rows, attention chunks
    bool softmax_stats = false;     // online-softmax statistics merged across a team (single_dispatch attention)
    bool shared_vec4 = false;       // vec4 reads of the shared pool

    static constexpr std::uint32_t bit(op o) { return 1u << static_cast<unsigned>(o); }
    constexpr bool has_op(op o) const { return (ops & bit(o)) != 0; }
    constexpr bool has_combine(op o) const { return (combines & bit(o)) != 0; }
    constexpr bool any() const { return ops || combines || segment_sum || softmax_stats || shared_vec4; }
    constexpr void merge(const helper_set& o) {
        ops |= o.ops;
        combines |= o.combines;
        segment_sum = segment_sum || o.segment_sum;
        softmax_stats = softmax_stats || o.softmax_stats;
        shared_vec4 = shared_vec4 || o.shared_vec4;
    }
};
static_assert(op_count <= 32, "vkfuse: helper_set keeps ops in 32-bit sets");

// What separates a single-dispatch phase from the one before it. One workgroup runs every phase, so barrier() orders
// them and publishes shared memory; a phase that reads a buffer written since the last fence (or writes the same
// elements again) also needs the writes made visible: a workgroup-scope fence (a device-scope one waits for every
// write to reach L2, and a step costs about as much as a fence).
enum class fence : std::uint8_t { none, barrier, memory };

// Bounds of one kernel, fixed so a plan's size grows with its kernels, not with their square.
inline constexpr int max_kernel_roots = 16;
inline constexpr int max_kernel_buffers = 96;

// One dispatch, or one phase of the single dispatch.
struct kernel_record {
    kernel_kind kind = kernel_kind::elementwise;
    segment segments[max_kernel_roots] = {};
    int segment_count = 0;
    std::uint64_t units = 0;         // work units over all segments

    lanes_rule lanes;                // matvec
    std::uint32_t heads = 0, kv_heads = 0, head_dim = 0;  // attention
    // fused and per_op attention: workgroups per query head, each taking a share of the positions and leaving a
    // partial softmax that the last of them to finish merges (attention_splits above). 1: one per head.
    std::uint32_t splits = 1;

    binding bindings[max_kernel_buffers] = {};  // ascending buffer index: binding i is bindings[i]
    int binding_count = 0;
    helper_set helpers;
    shared_layout shared;
    fence before = fence::none;      // single_dispatch: what precedes this phase
    int step = 0;                    // the step of a steps(...) program it belongs to

    std::uint64_t matrix_bytes = 0;  // weight matrices streamed per run
    std::uint64_t flops = 0;         // arithmetic per run, roughly (2 per multiply-add, op_info::flops per element)

    constexpr const segment* begin() const { return segments; }
    constexpr const segment* end() const { return segments + segment_count; }
    constexpr bool computes(int root) const {
        for (const segment& s : *this)
            if (s.root == root) return true;
        return false;
    }
    constexpr bool uses(int buffer) const {
        for (int i = 0; i < binding_count; ++i)
            if (bindings[i].buffer == buffer) return true;
        return false;
    }
};

// A shader: one kernel, or every phase of a single-dispatch program.
struct shader_record {
    int first = 0, last = 0;  // kernels [first, last)
    const binding* bindings = nullptr;
    int binding_count = 0;
    helper_set helpers;
    shared_layout shared;
    fence at_end = fence::none;  // single_dispatch repeat<>: what precedes the next position
    // Buffers of the runtime's own, bound after the program's. A split attention's: the partial softmaxes of its
    // workgroups and a counter per head of the workgroups that have finished (the shader leaves the counters at
    // zero). A persistent shader's: its work counters (persistent_sync_words), then a split attention's two. A
    // single-dispatch shader's: the same counters' buffer, of which it uses only the loop-budget word.
    int scratch_bindings = 0;
};

// The bytes of a split attention kernel's partials: per head and split, head_dim weighted sums, the maximum and the sum.
constexpr std::uint64_t attention_partial_bytes(const kernel_record& k) {
    return 4ull * k.heads * k.splits * (k.head_dim + 2ull);
}

// A persistent shader's counters. Four words on 128-byte lines of their own (each is polled by some workgroups while
// others add to another): the next work item to take (items handed out by a counter), the door (how many workgroups
// have started: every one must have before any waits for another's items under the assigned schedule), the
// workgroups that have exited (the last one sets every counter back to zero for the next run), and the word set where
// a device's loop budget ran out (below), followed by the runs whose door closed (the schedule fell back to the
// counter). From persistent_sync_words on: one counter per phase instance (a phase of one layer at one position), the
// work items of that instance that have finished; a profile's times after them.
inline constexpr std::uint32_t persistent_sync_stride = 32;
inline constexpr std::uint32_t persistent_ticket_word = 0;
inline constexpr std::uint32_t persistent_door_word = persistent_sync_stride;
inline constexpr std::uint32_t persistent_exit_word = 2 * persistent_sync_stride;
inline constexpr std::uint32_t persistent_budget_word = 3 * persistent_sync_stride;
inline constexpr std::uint32_t persistent_closed_word = persistent_budget_word + 1;
// The count of arrived workgroups a closing door replaced (the most of them seen): how many the device held at once.
inline constexpr std::uint32_t persistent_arrived_word = persistent_budget_word + 2;
// Set by the runtime for a census: workgroups pass the door and leave without taking any item, so that the run says
// how many of the launch the device keeps resident (program: fit_persistent_launch).
inline constexpr std::uint32_t persistent_census_word = persistent_budget_word + 3;
// A word nothing reads, written by a prefetch that must look as if it used its loads.
inline constexpr std::uint32_t persistent_sink_word = persistent_budget_word + 4;
inline constexpr std::uint32_t persistent_sync_words = 4 * persistent_sync_stride;
// The door's value once closed: above any number of workgroups, so that no count of arrivals can reach it.
inline constexpr std::uint32_t persistent_door_closed = 0x80000000u;
// How many times a workgroup looks at the door for the others to arrive before it closes it (every workgroup of a
// launch the device holds at once arrives within microseconds; one that does not means the launch is too large).
inline constexpr std::uint32_t persistent_door_looks = 1u << 16;
// persistent: the steps of its rows (16-byte loads, usually) each invocation of a matvec item reads before its wait
// (the PREFETCH specialization constant): enough to have the item's first round trip made early, little enough that
// the items of one phase keep their prefetched bytes in L2 (on an H100, 528 items of 256 invocations: 8 MB for two
// matrices).
inline constexpr std::uint32_t persistent_prefetch_steps = 2;
// Where a device ends a shader's loops after a fixed number of trips in all (llvmpipe: 65535, counted over every loop
// of an invocation, then every loop exits early and the results are silently wrong), a waiting workgroup looks at the
// count this many times per trip of its wait, so that waiting spends that budget slowly.
inline constexpr int persistent_checks_per_trip = 64;

// The most steps of a row an invocation loads before it uses the first (the loop over a row is unrolled this far,
// each step's loads issued before any step's arithmetic): a GPU does not reorder a thread's instructions, so a loop
// that uses each load before issuing the next keeps one round trip to memory in flight per matrix. VKFUSE_UNROLL
// (launch_config::unroll, from program_options::matvec_unroll) chooses 1 to this many.
inline constexpr int max_matvec_unroll = 4;

// The facts of a device and of the user's options that the launch of a plan depends on.
struct launch_facts {
    std::uint32_t workgroup_size = 256;
    std::uint32_t lanes = 32;            // the smallest invocations per matvec row (the subgroup size, usually)
    std::uint32_t matvec_threads = 0;    // fused/per_op: widen rows until rows x lanes reach this (0: never)
    bool fixed_lanes = false;            // the user chose `lanes` for every matvec kernel
    std::uint32_t persistent_workgroups = 0;  // persistent: the workgroups launched (0: not known)
};

constexpr std::uint64_t ceil_power_of_two(std::uint64_t v) {
    std::uint64_t p = 1;
    while (p < v) p *= 2;
    return p;
}

// Invocations per row of matvec kernel `k` on a device.
//   fused, per_op: from the subgroup size up, doubling while rows x lanes stay below matvec_threads and the row has
//     steps for them, so few long rows get many invocations each (enough loads in flight) and many rows one subgroup.
//   single_dispatch: the workgroup runs the phase alone, so enough rows at once to cover all of them in one pass
//     where it can (workgroup / rows), but never more lanes than a row has steps, nor fewer than read a 128-byte line.
//   persistent: likewise for each work item's share of the rows (the rows over the workgroups launched), so an item
//     makes one pass with every invocation's loads in flight together, instead of a pass per round trip.
constexpr std::uint32_t choose_lanes(const kernel_record& k, strategy how, const launch_facts& f) {
    if (k.kind != kernel_kind::matvec) return f.lanes;
    // (on a CPU device, matvec_threads 0, a persistent phase keeps a subgroup per row as fused does: each thread runs
    // one workgroup, which has nothing to overlap, and llvmpipe's loop budget favours few, long trips)
    const bool persistent = how == strategy::persistent && f.persistent_workgroups != 0 && f.matvec_threads != 0;
    if (how == strategy::single_dispatch || (persistent && !f.fixed_lanes)) {
        const std::uint64_t most = ceil_power_of_two(k.lanes.longest);
        const std::uint64_t least = k.lanes.line < most ? k.lanes.line : most;
        const std::uint64_t rows = persistent ? (k.lanes.rows + f.persistent_workgroups - 1) / f.persistent_workgroups
                                              : k.lanes.rows;
        std::uint64_t l = f.workgroup_size / ceil_power_of_two(rows);
        l = l < least ? least : l > most ? most : l;
        return static_cast<std::uint32_t>(l < f.workgroup_size ? l : f.workgroup_size);
    }
    std::uint32_t l = f.lanes;
    if (f.fixed_lanes) return l;
    while (l < f.workgroup_size && k.lanes.rows * l < f.matvec_threads) l *= 2;
    return l;
}

// Workgroups a dispatch of kernel `k` needs (every body is a grid-stride loop, so fewer is still correct).
constexpr std::uint64_t workgroups(const kernel_record& k, std::uint32_t workgroup_size, std::uint32_t lanes) {
    if (k.kind == kernel_kind::attention) return std::uint64_t{k.heads} * k.splits;
    const std::uint64_t per_group = k.kind == kernel_kind::matvec ? workgroup_size / lanes : workgroup_size;
    const std::uint64_t g = (k.units + per_group - 1) / per_group;
    return g == 0 ? 1 : g;
}

} // namespace vkfuse::plan

namespace vkfuse::plan {

// The whole plan of a program type under one strategy. `Cap` is the number of graph nodes (plus one), an upper bound
// of every count below.
template <std::size_t Cap>
struct program_plan {
    graph<Cap> g;
    strategy how = strategy::fused;
    bool materialized[Cap] = {};   // written to a buffer by the kernel that computes it

    buffer_slot buffers[Cap + 1] = {};
    int buffer_count = 0;
    int buffer_of_node[Cap] = {};  // -1 where the node lives in no buffer

    // Runtime scalars (param<> and uint_param<> leaves), in declaration order. All but the index a repeat<> runs
    // over live in the program's parameter block (a uniform buffer the host writes before a run, so a new position
    // needs no new command buffer); that index is the loop variable of a single dispatch, else a push constant
    // recorded once per position.
    int params[Cap] = {};
    int param_count = 0;
    std::uint32_t param_limit[Cap] = {};  // an index must stay below this (0: no limit)
    int param_word[Cap] = {};             // its 4-byte word in the parameter block; -1 for the repeat<> index
    int param_words = 0;
    int loop_param = -1;                  // repeat<>: the index that runs 0 .. loop_count-1 (a params[] position)
    std::uint32_t loop_count = 0;

    // steps(...) and stack<L>: which step each kernel belongs to (kernel_record::step); the stack step's kernels run
    // once per layer, [stack_first, stack_last) in kernel order.
    int stack_first = 0, stack_last = 0;
    constexpr bool stacked() const { return g.steps.stack_step >= 0; }
    constexpr std::uint32_t layers() const { return g.steps.layers; }

    kernel_record kernels[Cap] = {};
    int kernel_count = 0;

    // Where each buffer lives when the program packs all of them into one binding (for devices that allow a kernel
    // fewer storage buffers than it has): offsets in floats, multiples of 4 so vec4 views align.
    std::uint64_t arena_offset[Cap + 1] = {};
    std::uint64_t arena_floats = 0;

    // single_dispatch: temporaries kept in the workgroup's shared memory instead of a buffer (one workgroup computes
    // and reads them all), at these offsets in floats into one pool; ones whose phases do not overlap share space.
    bool in_shared[Cap + 1] = {};
    std::uint32_t shared_offset[Cap + 1] = {};
    std::uint32_t shared_floats = 0;

    // single_dispatch: the one shader's bindings (every phase's, merged), helpers, shared memory.
    binding single_bindings[Cap + 1] = {};
    int single_binding_count = 0;
    helper_set single_helpers;
    shared_layout single_shared;
    fence single_at_end = fence::none;

    // ---- shaders: one per kernel, or one of every phase
    constexpr int shader_count() const { return one_shader(how) ? 1 : kernel_count; }
    constexpr int dispatch_count() const { return shader_count(); }
    constexpr shader_record shader(int s) const {
        if (how == strategy::single_dispatch)  // its scratch: the word that says llvmpipe's loop budget ran out
            return {0, kernel_count, single_bindings, single_binding_count, single_helpers, single_shared,
                    single_at_end, 1};
        if (how == strategy::persistent)
            return {0, kernel_count, single_bindings, single_binding_count, single_helpers, single_shared,
                    fence::none, split_attention() ? 3 : 1};
        const kernel_record& k = kernels[s];
        return {s, s + 1, k.bindings, k.binding_count, k.helpers, k.shared, fence::none, k.splits > 1 ? 2 : 0};
    }

    // ---- bindings: a split weight takes one binding per piece, so binding i of a shader is not always slot i
    constexpr int slots_of(int b) const { return static_cast<int>(buffers[b].pieces); }
    // The Vulkan binding number of shader sh's i-th buffer (its first piece, where split).
    constexpr int binding_slot(const shader_record& sh, int i) const {
        int slot = 0;
        for (int j = 0; j < i; ++j) slot += slots_of(sh.bindings[j].buffer);
        return slot;
    }
    // Storage-buffer bindings shader sh declares: its buffers', then a split attention's scratch (the parameter
    // block's uniform binding comes after them).
    constexpr int binding_slots(const shader_record& sh) const {
        return binding_slot(sh, sh.binding_count) + sh.scratch_bindings;
    }
    // Elements the buffer that holds slot b has: every layer's copy, where a single dispatch indexes the layers.
    constexpr std::uint64_t held_elements(int b) const {
        const buffer_slot& s = buffers[b];
        if (!one_shader(how) || !s.per_layer()) return s.elements;
        return s.layer_stride() * (s.carry != buffer_slot::carry_kind::none ? layers() + 1u : s.layers);
    }

    // ---- questions about nodes and buffers
    constexpr bool in_shared_memory(int b) const { return b >= 0 && in_shared[b]; }
    constexpr bool is_buffer_leaf(int n) const {
        return g[n].kind == node_kind::leaf && g[n].leaf_role != role::param;
    }
    // True where code computing `root` reads node `n` from memory rather than computing it.
    constexpr bool stops_at(int n, int root) const { return is_buffer_leaf(n) || (materialized[n] && n != root); }
    constexpr bool is_output(int n) const {
        for (int o = 0; o < g.output_count; ++o)
            if (g.outputs[o].node == n) return true;
        return false;
    }
    constexpr int buffer_index(std::string_view name) const {
        for (int b = 0; b < buffer_count; ++b)
            if (!buffers[b].temporary && buffers[b].name.view() == name) return b;
        return -1;
    }
    constexpr int param_index(std::string_view name) const {
        for (int i = 0; i < param_count; ++i)
            if (g[params[i]].name.view() == name) return i;
        return -1;
    }
    // The param position of node n (-1: not a param).
    constexpr int param_of(int n) const {
        for (int i = 0; i < param_count; ++i)
            if (params[i] == n) return i;
        return -1;
    }
    constexpr std::uint32_t param_block_bytes() const { return 4u * static_cast<std::uint32_t>(param_words); }
    constexpr std::uint32_t push_constant_bytes() const {
        return loop_param >= 0 && !one_shader(how) ? 4u : 0u;
    }
    // persistent: the phase instances of one run, each a phase at one layer (of a stack) and one position (of a
    // repeat<>), in the order a run does them; each has a counter of its finished work items.
    constexpr std::uint64_t phase_instances() const {
        const std::uint64_t per_position =
            stacked() ? std::uint64_t(stack_first) + std::uint64_t{layers()} * (stack_last - stack_first) +
                            (kernel_count - stack_last)
                      : std::uint64_t(kernel_count);
        return (loop_param >= 0 ? loop_count : 1u) * per_position;
    }

    // An attention kernel runs several workgroups per head (kernel_record::splits), so needs scratch.
    constexpr bool split_attention() const {
        for (int k = 0; k < kernel_count; ++k)
            if (kernels[k].kind == kernel_kind::attention && kernels[k].splits > 1) return true;
        return false;
    }

    // What a segment computing `root` is called: its result name, "append to <cache>", or t<node> for a temporary.
    template <class T>
    constexpr void label(T& t, int root) const {
        if (g[root].kind == node_kind::append)
            t << "append to " << buffers[buffer_of_node[root]].name.view();
        else if (!g.result_name[root].empty())
            t << g.result_name[root].view();
        else
            t << 't' << root;
    }

    // How many times a run streams weight matrix `b` through matvecs: once per segment that computes a product with
    // it. The planner materialises shared products, so every matrix of a program should be read exactly once.
    constexpr int matrix_reads(int b) const;
};

} // namespace vkfuse::plan
