// vkfuse/plan/kernels.hpp — the planner: which values are materialised, which kernels compute them, which buffers
// they use. All at compile time, from the program's DAG.
//
// A value is *materialised* when it is written to a buffer: outputs, named results, KV-cache appends and attention
// outputs always are; under `fused` and `single_dispatch` other values are materialised only where a true global
// dependency forces it — the input vector of a matvec, or the operand of a reduction, that contains a matvec (or a
// rope of one): every workgroup of the consumer needs all of it, and no workgroup can compute it alone. The query
// vector of an attention is read per head from memory, so it is materialised unless it is already there.
// Everything else is fused into the kernel that needs it:
//   * reductions over vectors the kernel can read (an RMSNorm's sum of squares) are recomputed by every workgroup;
//   * elementwise work on a matvec's input is done as the matrix streams by (prologue);
//   * elementwise work on matvec results — bias, activation, gating, RoPE, residual — is done per row (epilogue);
//     RoPE pairs row j with row j + head_dim/2, so a kernel with RoPE computes rows in those pairs.
// Each materialised value is a *root*. Roots that do not depend on each other and need the same kind of kernel
// share one (segments of one dispatch: q, k and v of an attention block are one kernel). `per_op` materialises
// every operation and gives each its own kernel: the unfused baseline. `single_dispatch` plans like `fused` and then
// runs every kernel as a phase of one workgroup, separated by barriers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "graph.hpp"

namespace vkfuse {

// How a program is cut into dispatches.
enum class strategy : std::uint8_t { per_op, fused, single_dispatch };

template <strategy S>
struct strategy_tag {
    static constexpr strategy value = S;
};
inline constexpr strategy_tag<strategy::per_op> per_op{};
inline constexpr strategy_tag<strategy::fused> fused{};
inline constexpr strategy_tag<strategy::single_dispatch> single_dispatch{};

constexpr std::string_view strategy_name(strategy s) {
    return s == strategy::per_op ? "per_op" : s == strategy::fused ? "fused" : "single_dispatch";
}

} // namespace vkfuse

namespace vkfuse::plan {

enum class kernel_kind : std::uint8_t {
    elementwise,  // one invocation per output element (or element pair)
    matvec,       // LANES invocations per output row (or row pair), cooperating on the dot products
    attention,    // one workgroup per query head
};

// A buffer of the program: a placeholder bound by name, a named result, or a temporary between two kernels.
struct buffer_slot {
    name_buf name;                 // empty for a temporary
    role slot_role = role::input;  // input, weight, state, table; output for outputs, named results, temporaries
    bool temporary = false;
    dtype_code dtype = dtype_code::f32;
    std::uint32_t elements = 0;
    std::uint32_t rows = 0, cols = 0;  // a matrix's shape, for messages
    int node = -1;                 // the graph node it holds

    constexpr std::size_t bytes() const { return static_cast<std::size_t>(elements) * dtype_bytes(dtype); }
};

// Bounds of one kernel, fixed so a plan's size grows with its kernels, not with their square.
inline constexpr int max_kernel_roots = 16;
inline constexpr int max_kernel_buffers = 96;
void vkfuse_error_a_kernel_has_more_than_16_roots();
void vkfuse_error_a_kernel_uses_more_than_96_buffers();

// One dispatch (or, under single_dispatch, one phase of the only dispatch).
template <std::size_t Cap>
struct kernel_plan {
    kernel_kind kind = kernel_kind::elementwise;
    int roots[max_kernel_roots] = {};       // materialised values it computes, one segment each
    int root_count = 0;
    int buffers[max_kernel_buffers] = {};   // buffers it uses, ascending: binding i is buffers[i]
    int buffer_count = 0;
    bool writes[max_kernel_buffers] = {};   // per entry of `buffers`

    constexpr int binding_count() const { return buffer_count; }
    constexpr int binding(int i) const { return buffers[i]; }
};

template <std::size_t Cap>
struct program_plan {
    graph<Cap> g;
    strategy how = strategy::fused;
    bool materialized[Cap] = {};

    buffer_slot buffers[Cap + 1] = {};
    int buffer_count = 0;
    int buffer_of_node[Cap] = {};  // -1 where the node lives in no buffer

    int loop_param = -1;           // repeat<>: the index that runs 0 .. loop_count-1 (a params[] position)
    std::uint32_t loop_count = 0;
    int params[Cap] = {};          // param leaves, in push-constant order (4 bytes each)
    int param_count = 0;
    std::uint32_t param_limit[Cap] = {};  // an index param must stay below this (0: no limit)

    kernel_plan<Cap> kernels[Cap] = {};
    int kernel_count = 0;

    // Where each buffer lives when the program packs all of them into one (for devices that allow a kernel fewer
    // storage-buffer bindings than it has buffers): offsets in floats, each a multiple of 4 so vec4 views align.
    std::uint32_t arena_offset[Cap + 1] = {};
    std::uint64_t arena_floats = 0;

    // single_dispatch: temporaries that live in the workgroup's shared memory instead of a buffer (one workgroup
    // computes and reads them all, so they never need to leave the SM), at these offsets in floats into one pool;
    // temporaries whose lifetimes do not overlap share space. A buffer in shared memory has no binding.
    bool in_shared[Cap + 1] = {};
    std::uint32_t shared_offset[Cap + 1] = {};
    std::uint32_t shared_floats = 0;

    constexpr int dispatch_count() const { return how == strategy::single_dispatch ? 1 : kernel_count; }
    constexpr bool in_shared_memory(int b) const { return b >= 0 && in_shared[b]; }
    constexpr std::uint32_t push_constant_bytes() const { return static_cast<std::uint32_t>(param_count) * 4u; }
    constexpr bool is_buffer_leaf(int n) const {
        return g[n].kind == node_kind::leaf && g[n].leaf_role != role::param;
    }
    constexpr bool is_root_of(int n, int k) const {
        for (int r = 0; r < kernels[k].root_count; ++r)
            if (kernels[k].roots[r] == n) return true;
        return false;
    }
    // True where code computing `root` reads node `n` from memory rather than computing it.
    constexpr bool stops_at(int n, int root) const { return is_buffer_leaf(n) || (materialized[n] && n != root); }
    constexpr int buffer_index(std::string_view name) const {
        for (int b = 0; b < buffer_count; ++b)
            if (!buffers[b].temporary && buffers[b].name.view() == name) return b;
        return -1;
    }
};

void vkfuse_error_an_output_or_name_is_also_a_placeholder_name();
void vkfuse_error_repeat_names_an_index_the_program_does_not_use();
void vkfuse_error_repeat_runs_past_a_table_or_cache_its_index_indexes();
void vkfuse_error_an_output_holds_a_placeholder_directly();

namespace detail {

// Marks what the code computing `root` evaluates or reads, not descending past what it reads. An append does not
// read the cache it writes.
template <std::size_t Cap>
constexpr void mark_nodes(const program_plan<Cap>& p, int root, bool (&marks)[Cap]) {
    int stack[Cap * 4 + 4] = {};
    int top = 0;
    stack[top++] = root;
    while (top > 0) {
        const int n = stack[--top];
        if (marks[n]) continue;
        marks[n] = true;
        if (p.stops_at(n, root)) continue;
        const node& x = p.g[n];
        for (int k = 0; k < 4; ++k) {
            const int ch = x.child(k);
            if (ch < 0 || (x.kind == node_kind::append && k == 0)) continue;
            stack[top++] = ch;
        }
    }
}

// The kernel kind a root needs.
template <std::size_t Cap>
constexpr kernel_kind kind_of(const program_plan<Cap>& p, int root) {
    if (p.g[root].kind == node_kind::attention) return kernel_kind::attention;
    bool marks[Cap] = {};
    mark_nodes(p, root, marks);
    for (int n = 0; n < p.g.size; ++n)
        if (marks[n] && p.g[n].kind == node_kind::matvec && !p.stops_at(n, root)) return kernel_kind::matvec;
    return kernel_kind::elementwise;
}

template <std::size_t Cap>
constexpr void decide_materialization(program_plan<Cap>& p) {
    const auto& g = p.g;
    for (int i = 0; i < g.size; ++i) {
        const node& n = g[i];
        if (!g.result_name[i].empty() || n.kind == node_kind::append || n.kind == node_kind::attention)
            p.materialized[i] = true;
        if (p.how == strategy::per_op && n.kind != node_kind::leaf && n.kind != node_kind::constant)
            p.materialized[i] = true;
    }
    if (p.how == strategy::per_op) return;
    // `holds[i]`: the value involves a matvec or a rope not yet materialised, so no single workgroup can produce
    // all of it (a rope needs the partner row).
    bool holds[Cap] = {};
    for (int i = 0; i < g.size; ++i) {
        const node& n = g[i];
        auto take = [&](int ch) { return ch >= 0 && holds[ch] && !p.materialized[ch]; };
        auto force = [&](int ch) {
            if (take(ch)) p.materialized[ch] = true;
        };
        switch (n.kind) {
        case node_kind::leaf:
        case node_kind::constant: holds[i] = false; break;
        case node_kind::unary: holds[i] = take(n.a); break;
        case node_kind::binary: holds[i] = take(n.a) || take(n.b); break;
        case node_kind::reduce:
            force(n.a);
            holds[i] = false;
            break;
        case node_kind::matvec:
            force(n.b);
            holds[i] = true;
            break;
        case node_kind::rope: holds[i] = true; break;
        case node_kind::lookup: holds[i] = false; break;
        case node_kind::append: holds[i] = false; break;
        case node_kind::attention:
            if (!p.is_buffer_leaf(n.a)) p.materialized[n.a] = true;
            holds[i] = false;
            break;
        }
    }
}

template <std::size_t Cap>
constexpr void lay_out_buffers(program_plan<Cap>& p) {
    const auto& g = p.g;
    for (int i = 0; i < g.size; ++i) p.buffer_of_node[i] = -1;
    auto add = [&](int node_index, const name_buf& name, role r, bool temporary, dtype_code dtype) {
        buffer_slot& b = p.buffers[p.buffer_count];
        b.name = name;
        b.slot_role = r;
        b.temporary = temporary;
        b.dtype = dtype;
        b.elements = g[node_index].elements();
        b.rows = g[node_index].rank == 2 ? g[node_index].rows : g[node_index].elements();
        b.cols = g[node_index].rank == 2 ? g[node_index].cols : 0;
        b.node = node_index;
        p.buffer_of_node[node_index] = p.buffer_count++;
    };
    // placeholders, in first-use order
    for (int i = 0; i < g.size; ++i) {
        const node& n = g[i];
        if (n.kind != node_kind::leaf) continue;
        if (!g.result_name[i].empty()) vkfuse_error_an_output_holds_a_placeholder_directly();
        if (n.leaf_role == role::param) {
            p.params[p.param_count++] = i;
            continue;
        }
        for (int j = 0; j < g.size; ++j)
            if (g.result_name[j] == n.name) vkfuse_error_an_output_or_name_is_also_a_placeholder_name();
        add(i, n.name, n.leaf_role, false, n.dtype);
    }
    // outputs and named results, then temporaries; an append lives in the buffer of its cache
    for (int pass = 0; pass < 2; ++pass) {
        for (int i = 0; i < g.size; ++i) {
            if (!p.materialized[i] || g[i].kind == node_kind::append) continue;
            const bool has_name = !g.result_name[i].empty();
            if ((pass == 0) != has_name) continue;
            add(i, g.result_name[i], role::output, !has_name, g[i].dtype);
        }
    }
    for (int i = 0; i < g.size; ++i)
        if (g[i].kind == node_kind::append) p.buffer_of_node[i] = p.buffer_of_node[g[i].a];
}

template <std::size_t Cap>
constexpr void limit_param(program_plan<Cap>& p, int param_node, std::uint32_t limit) {
    for (int i = 0; i < p.param_count; ++i)
        if (p.params[i] == param_node && (p.param_limit[i] == 0 || limit < p.param_limit[i])) p.param_limit[i] = limit;
}

template <std::size_t Cap>
constexpr void form_kernels(program_plan<Cap>& p) {
    const auto& g = p.g;
    // level: 1 + the deepest materialised value the root's code reads
    int level[Cap] = {};
    int max_level = 0;
    for (int i = 0; i < g.size; ++i) {
        if (!p.materialized[i]) continue;
        bool marks[Cap] = {};
        mark_nodes(p, i, marks);
        int l = 1;
        for (int n = 0; n < i; ++n)
            if (marks[n] && p.materialized[n] && level[n] + 1 > l) l = level[n] + 1;
        level[i] = l;
        if (l > max_level) max_level = l;
    }
    auto start_kernel = [&](kernel_kind kind) -> kernel_plan<Cap>& {
        kernel_plan<Cap>& k = p.kernels[p.kernel_count++];
        k.kind = kind;
        return k;
    };
    auto add_root = [&](kernel_plan<Cap>& k, int root) {
        if (k.root_count == max_kernel_roots) vkfuse_error_a_kernel_has_more_than_16_roots();
        k.roots[k.root_count++] = root;
    };
    if (p.how == strategy::per_op) {
        for (int i = 0; i < g.size; ++i)
            if (p.materialized[i]) {
                add_root(start_kernel(kind_of(p, i)), i);
            }
    } else {
        constexpr kernel_kind kinds[3] = {kernel_kind::elementwise, kernel_kind::matvec, kernel_kind::attention};
        for (int l = 1; l <= max_level; ++l) {
            for (kernel_kind kind : kinds) {
                kernel_plan<Cap>* k = nullptr;
                for (int i = 0; i < g.size; ++i) {
                    if (!p.materialized[i] || level[i] != l || kind_of(p, i) != kind) continue;
                    // an attention kernel has one root: its geometry (a workgroup per head) is the root's
                    if (!k || kind == kernel_kind::attention || k->root_count == max_kernel_roots)
                        k = &start_kernel(kind);
                    add_root(*k, i);
                }
            }
        }
    }
    // buffers per kernel
    for (int k = 0; k < p.kernel_count; ++k) {
        kernel_plan<Cap>& kp = p.kernels[k];
        bool used[Cap + 1] = {};
        bool written[Cap + 1] = {};
        for (int r = 0; r < kp.root_count; ++r) {
            const int root = kp.roots[r];
            written[p.buffer_of_node[root]] = true;
            used[p.buffer_of_node[root]] = true;
            bool marks[Cap] = {};
            mark_nodes(p, root, marks);
            for (int n = 0; n < g.size; ++n)
                if (marks[n] && p.stops_at(n, root) && p.buffer_of_node[n] >= 0) used[p.buffer_of_node[n]] = true;
        }
        for (int b = 0; b < p.buffer_count; ++b) {
            if (!used[b]) continue;
            if (kp.buffer_count == max_kernel_buffers) vkfuse_error_a_kernel_uses_more_than_96_buffers();
            kp.writes[kp.buffer_count] = written[b];
            kp.buffers[kp.buffer_count++] = b;
        }
    }
}

// single_dispatch: moves temporaries into a shared-memory pool of at most `budget` floats. A temporary is live from
// the phase that writes it to the last phase that reads it (within one position of a repeat<>: every position
// recomputes them all); each takes the lowest offset, a multiple of 4 so vec4 reads align, that no live-overlapping
// temporary occupies. Largest first, so the big FFN activations get the room; what does not fit stays a buffer.
template <std::size_t Cap>
constexpr void place_in_shared(program_plan<Cap>& p, std::uint32_t budget) {
    int first[Cap + 1] = {}, last[Cap + 1] = {};
    int order[Cap + 1] = {};
    int count = 0;
    for (int b = 0; b < p.buffer_count; ++b) {
        if (!p.buffers[b].temporary) continue;
        first[b] = p.kernel_count;
        last[b] = -1;
        for (int k = 0; k < p.kernel_count; ++k)
            for (int i = 0; i < p.kernels[k].buffer_count; ++i) {
                if (p.kernels[k].buffers[i] != b) continue;
                if (k < first[b]) first[b] = k;
                if (k > last[b]) last[b] = k;
            }
        order[count++] = b;
    }
    for (int i = 1; i < count; ++i)  // by size, descending; stable
        for (int j = i; j > 0 && p.buffers[order[j]].elements > p.buffers[order[j - 1]].elements; --j) {
            const int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    for (int i = 0; i < count; ++i) {
        const int b = order[i];
        const std::uint32_t size = (p.buffers[b].elements + 3u) / 4u * 4u;
        std::uint32_t at = 0;
        for (bool moved = true; moved;) {  // first fit: bump past every placed, overlapping neighbour in the way
            moved = false;
            for (int j = 0; j < i; ++j) {
                const int o = order[j];
                if (!p.in_shared[o] || last[o] < first[b] || last[b] < first[o]) continue;
                const std::uint32_t o_size = (p.buffers[o].elements + 3u) / 4u * 4u;
                if (at < p.shared_offset[o] + o_size && p.shared_offset[o] < at + size) {
                    at = p.shared_offset[o] + o_size;
                    moved = true;
                }
            }
        }
        if (at + size > budget) continue;
        p.in_shared[b] = true;
        p.shared_offset[b] = at;
        if (at + size > p.shared_floats) p.shared_floats = at + size;
    }
    // a buffer in shared memory is not bound
    for (int k = 0; k < p.kernel_count; ++k) {
        kernel_plan<Cap>& kp = p.kernels[k];
        int kept = 0;
        for (int i = 0; i < kp.buffer_count; ++i) {
            if (p.in_shared[kp.buffers[i]]) continue;
            kp.writes[kept] = kp.writes[i];
            kp.buffers[kept++] = kp.buffers[i];
        }
        kp.buffer_count = kept;
    }
}

} // namespace detail

// Floats of shared memory a single-dispatch program may use for its temporaries: 16 KiB. With the scratch arrays of
// a 1024-invocation workgroup (8 KiB) that fits the 32 KiB most devices offer; where a device has less, the runtime
// shrinks the workgroup, or says what does not fit.
inline constexpr std::uint32_t single_dispatch_shared_floats = 4096;

// The plan of program type `Program` under strategy `How`.
template <class Program, strategy How>
constexpr auto make_plan() {
    constexpr auto lowered = lower_program<Program>();
    constexpr std::size_t cap = sizeof(lowered.nodes) / sizeof(node);
    program_plan<cap> p;
    p.g = lowered;
    p.how = How;
    detail::decide_materialization(p);
    detail::lay_out_buffers(p);
    // positions must stay inside the tables and caches they index
    for (int i = 0; i < p.g.size; ++i) {
        const node& n = p.g[i];
        if (n.kind == node_kind::rope) detail::limit_param(p, n.b, p.g[n.c].rows);
        if (n.kind == node_kind::append) detail::limit_param(p, n.c, n.rows);
        if (n.kind == node_kind::attention) detail::limit_param(p, n.d, p.g[n.b].rows);
        if (n.kind == node_kind::lookup) detail::limit_param(p, n.b, p.g[n.a].rows);
    }
    detail::form_kernels(p);
    if (How == strategy::single_dispatch) detail::place_in_shared(p, single_dispatch_shared_floats);
    for (int b = 0; b < p.buffer_count; ++b) {
        p.arena_offset[b] = static_cast<std::uint32_t>(p.arena_floats);
        p.arena_floats += (p.buffers[b].elements + 3u) / 4u * 4u;
    }
    if constexpr (requires { Program::index_name; }) {  // repeat<>
        for (int i = 0; i < p.param_count; ++i)
            if (p.g[p.params[i]].name == name_buf::from(Program::index_name)) p.loop_param = i;
        if (p.loop_param < 0) vkfuse_error_repeat_names_an_index_the_program_does_not_use();
        p.loop_count = static_cast<std::uint32_t>(Program::count);
        if (p.param_limit[p.loop_param] != 0 && p.loop_count > p.param_limit[p.loop_param])
            vkfuse_error_repeat_runs_past_a_table_or_cache_its_index_indexes();
    }
    return p;
}

} // namespace vkfuse::plan
