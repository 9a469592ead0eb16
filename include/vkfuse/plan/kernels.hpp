// vkfuse/plan/kernels.hpp — materialised values grouped into kernels, and each kernel described completely.
//
// Each materialised value is a *root*. A root's level is one more than the deepest materialised value its code
// reads; roots of one level do not depend on each other, and those that need the same kind of kernel (matvec rows,
// elementwise items, attention heads) become segments of one dispatch — q, k and v of an attention block are one
// kernel. `per_op` gives every root a kernel of its own. `single_dispatch` runs the kernels as phases of one
// workgroup, keeps temporaries in shared memory and fences only where memory is read back; `persistent` runs the
// fused kernels as phases of one dispatch of many workgroups.
//
// Then each kernel is described for the emitter and the runtime (records.hpp): segments and work units, the lanes
// rule, bindings with their access and vec4 views, helpers, shared memory, fences and costs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "materialize.hpp"
#include "scope.hpp"

namespace vkfuse::plan {

void vkfuse_error_a_kernel_has_more_than_16_roots();
void vkfuse_error_a_kernel_uses_more_than_96_buffers();

namespace detail {

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
constexpr void group_roots(program_plan<Cap>& p) {
    const auto& g = p.g;
    auto start_kernel = [&](kernel_kind kind) -> kernel_record& {
        kernel_record& k = p.kernels[p.kernel_count++];
        k.kind = kind;
        return k;
    };
    auto add_root = [&](kernel_record& k, int root) {
        if (k.segment_count == max_kernel_roots) vkfuse_error_a_kernel_has_more_than_16_roots();
        k.segments[k.segment_count++].root = root;
        k.step = g[root].step;
    };
    // the stack's kernels, a contiguous range (steps run in order)
    auto find_stack = [&] {
        p.stack_first = p.stack_last = 0;
        for (int k = 0; k < p.kernel_count; ++k) {
            if (p.kernels[k].step != g.steps.stack_step) continue;
            if (p.stack_last == 0) p.stack_first = k;
            p.stack_last = k + 1;
        }
    };
    if (p.how == strategy::per_op) {
        for (int i = 0; i < g.size; ++i)  // node order is step order: a step's nodes are lowered after the last's
            if (p.materialized[i]) add_root(start_kernel(kind_of(p, i)), i);
        find_stack();
        return;
    }
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
    // steps in order (a later step reads an earlier one's outputs through buffers, so its levels start again at 1)
    constexpr kernel_kind kinds[3] = {kernel_kind::elementwise, kernel_kind::matvec, kernel_kind::attention};
    for (int step = 0; step < g.steps.step_count; ++step) {
        for (int l = 1; l <= max_level; ++l) {
            for (kernel_kind kind : kinds) {
                kernel_record* k = nullptr;
                for (int i = 0; i < g.size; ++i) {
                    if (!p.materialized[i] || g[i].step != step || level[i] != l || kind_of(p, i) != kind) continue;
                    // an attention kernel has one root: its geometry (a workgroup per head) is the root's
                    if (!k || kind == kernel_kind::attention || k->segment_count == max_kernel_roots)
                        k = &start_kernel(kind);
                    add_root(*k, i);
                }
            }
        }
    }
    find_stack();
}

// Segments, units, the lanes rule and the attention geometry.
template <std::size_t Cap>
constexpr void describe_work(const program_plan<Cap>& p, kernel_record& k) {
    const kernel_scope<Cap> sc(p, k);
    std::uint64_t unit = 0;
    for (int r = 0; r < k.segment_count; ++r) {
        segment& s = k.segments[r];
        s.stored = sc.stored(s.root);
        s.length = sc.length(s.root);
        s.pair_dim = sc.pair_dim(s.root);
        s.units = s.pair_dim != 0 ? s.length / 2 : s.length;
        s.first_unit = unit;
        unit += s.units;
    }
    k.units = unit;
    if (k.kind == kernel_kind::matvec) {
        k.lanes.rows = k.units;
        for (int n = 0; n < sc.size(); ++n) {
            if (!sc.computes_matvec(n)) continue;
            const std::uint64_t cols = p.g[p.g[n].b].rows;
            const std::uint64_t steps = vectorized(cols) ? cols / 4 : cols;
            if (steps > k.lanes.longest) k.lanes.longest = static_cast<std::uint32_t>(steps);
            const std::uint32_t line = vectorized(cols) ? 8u : 32u;
            if (line > k.lanes.line) k.lanes.line = line;
        }
    }
    if (k.kind == kernel_kind::attention) {
        const node& x = p.g[k.segments[0].root];
        k.heads = x.p0;
        k.kv_heads = x.p1;
        k.head_dim = x.p2;
        if (p.how != strategy::single_dispatch) k.splits = attention_splits(p.g[x.b].rows);
    }
}

// The kernel's buffers in ascending order, each written (its roots') or read (where its code stops), and which of
// them a vectorised matvec loop also reads as vec4s.
template <std::size_t Cap>
constexpr void describe_bindings(const program_plan<Cap>& p, kernel_record& k) {
    const kernel_scope<Cap> sc(p, k);
    bool used[Cap + 1] = {}, written[Cap + 1] = {}, as_vec4[Cap + 1] = {};
    for (const segment& s : k) {
        written[p.buffer_of_node[s.root]] = used[p.buffer_of_node[s.root]] = true;
        bool marks[Cap] = {};
        mark_nodes(p, s.root, marks);
        for (int n = 0; n < p.g.size; ++n)
            if (marks[n] && p.stops_at(n, s.root) && p.buffer_of_node[n] >= 0) used[p.buffer_of_node[n]] = true;
        sc.each_product(s.root, [&](int m) {
            const std::uint64_t cols = p.g[p.g[m].b].rows;
            if (!vectorized(cols)) return;
            as_vec4[p.buffer_of_node[p.g[m].a]] = true;
            bool need[Cap] = {};
            sc.loop_nodes(s.root, cols, need);
            for (int n = 0; n < p.g.size; ++n) {
                if (!need[n]) continue;
                if (sc.reads_memory(n)) as_vec4[p.buffer_of_node[n]] = true;
                if (p.g[n].kind == node_kind::lookup) as_vec4[p.buffer_of_node[p.g[n].a]] = true;
            }
        });
    }
    // a reduction computed four elements at a time reads its vectors as vec4s too
    for (int r = 0; r < p.g.size; ++r) {
        if (!sc.nodes[r] || !sc.vectorized_reduction(r)) continue;
        bool need[Cap] = {};
        sc.collect(p.g[r].a, need);
        for (int n = 0; n < p.g.size; ++n) {
            if (!need[n]) continue;
            if (sc.reads_memory(n)) as_vec4[p.buffer_of_node[n]] = true;
            if (p.g[n].kind == node_kind::lookup) as_vec4[p.buffer_of_node[p.g[n].a]] = true;
        }
    }
    for (int b = 0; b < p.buffer_count; ++b) {
        if (!used[b]) continue;
        if (k.binding_count == max_kernel_buffers) vkfuse_error_a_kernel_uses_more_than_96_buffers();
        k.bindings[k.binding_count++] = {b, written[b] ? access::write : access::read, as_vec4[b]};
    }
}

// Helper functions, shared memory and costs.
template <std::size_t Cap>
constexpr void describe_needs(const program_plan<Cap>& p, kernel_record& k) {
    const kernel_scope<Cap> sc(p, k);
    helper_set& h = k.helpers;
    for (int n = 0; n < sc.size(); ++n) {
        if (!sc.nodes[n] || sc.reads_memory(n)) continue;
        const node& x = p.g[n];
        if (x.kind == node_kind::unary || x.kind == node_kind::binary) {
            for (op o = x.operation; o != op::count_; o = op_info_of(o).needs)
                if (!op_info_of(o).helper[0].text.empty()) h.ops |= helper_set::bit(o);
            k.flops += op_info_of(x.operation).flops * x.elements();
        }
        if (x.kind == node_kind::reduce) {
            h.combines |= helper_set::bit(op_info_of(x.operation).combine);
            // an indexed fold finds the smallest index holding the winner with a workgroup max of -index
            if (op_info_of(x.operation).indexed) h.combines |= helper_set::bit(op::max);
            k.flops += p.g[x.a].elements();
        }
    }
    if (k.kind == kernel_kind::matvec) h.segment_sum = true;
    if (k.kind == kernel_kind::attention) {
        k.shared.weights = true;
        if (p.how == strategy::single_dispatch) {
            h.softmax_stats = h.segment_sum = true;
        } else {
            h.combines |= helper_set::bit(op::add) | helper_set::bit(op::max);
            k.shared.query = k.head_dim;
        }
    }
    k.shared.scratch = h.combines != 0 || h.segment_sum || h.softmax_stats;
    k.shared.sums = h.softmax_stats;
    k.shared.staged = static_cast<std::uint32_t>(sc.staged_floats());
    for (const segment& s : k)
        sc.each_product(s.root, [&](int m) {
            const buffer_slot& w = p.buffers[p.buffer_of_node[p.g[m].a]];
            k.matrix_bytes += w.bytes();
            k.flops += 2 * w.elements;
        });
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
        for (int k = 0; k < p.kernel_count; ++k) {
            if (!p.kernels[k].uses(b)) continue;
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
    auto rounded = [&](int b) { return (p.buffers[b].elements + 3u) / 4u * 4u; };
    for (int i = 0; i < count; ++i) {
        const int b = order[i];
        const std::uint64_t size = rounded(b);
        std::uint64_t at = 0;
        for (bool moved = true; moved;) {  // first fit: bump past every placed, overlapping neighbour in the way
            moved = false;
            for (int j = 0; j < i; ++j) {
                const int o = order[j];
                if (!p.in_shared[o] || last[o] < first[b] || last[b] < first[o]) continue;
                if (at < p.shared_offset[o] + rounded(o) && p.shared_offset[o] < at + size) {
                    at = p.shared_offset[o] + rounded(o);
                    moved = true;
                }
            }
        }
        if (at + size > budget) continue;
        p.in_shared[b] = true;
        p.shared_offset[b] = static_cast<std::uint32_t>(at);
        if (at + size > p.shared_floats) p.shared_floats = static_cast<std::uint32_t>(at + size);
    }
    // a buffer in shared memory is not bound
    for (int k = 0; k < p.kernel_count; ++k) {
        kernel_record& kr = p.kernels[k];
        int kept = 0;
        for (int i = 0; i < kr.binding_count; ++i)
            if (!p.in_shared[kr.bindings[i].buffer]) kr.bindings[kept++] = kr.bindings[i];
        kr.binding_count = kept;
    }
}

// single_dispatch and persistent: the one shader's bindings, helpers and shared memory, and (single_dispatch) the
// fence before each phase.
template <std::size_t Cap>
constexpr void describe_single_shader(program_plan<Cap>& p) {
    bool read[Cap + 1] = {}, written[Cap + 1] = {}, as_vec4[Cap + 1] = {};
    for (int k = 0; k < p.kernel_count; ++k) {
        const kernel_record& kr = p.kernels[k];
        for (int i = 0; i < kr.binding_count; ++i) {
            const binding& b = kr.bindings[i];
            (b.writes() ? written : read)[b.buffer] = true;
            as_vec4[b.buffer] = as_vec4[b.buffer] || b.vec4;
        }
        p.single_helpers.merge(kr.helpers);
        p.single_shared.merge(kr.shared);
    }
    for (int b = 0; b < p.buffer_count; ++b) {
        if (!read[b] && !written[b]) continue;
        const access mode = read[b] && written[b] ? access::read_write : written[b] ? access::write : access::read;
        p.single_bindings[p.single_binding_count++] = {b, mode, as_vec4[b]};
    }
    p.single_shared.pool = p.shared_floats;
    p.single_helpers.shared_vec4 = p.shared_floats != 0;

    bool pending[Cap + 1] = {};  // buffers written since the last fence
    auto uses_pending = [&](int k) {
        const kernel_record& kr = p.kernels[k];
        for (int i = 0; i < kr.binding_count; ++i)
            if (!kr.bindings[i].writes() && pending[kr.bindings[i].buffer]) return true;
        for (const segment& s : kr)  // writing the same elements again (appends write a new row each position)
            if (p.g[s.root].kind != node_kind::append && pending[p.buffer_of_node[s.root]]) return true;
        return false;
    };
    auto written_by = [&](int k) {
        const kernel_record& kr = p.kernels[k];
        for (int i = 0; i < kr.binding_count; ++i)
            if (kr.bindings[i].writes()) pending[kr.bindings[i].buffer] = true;
    };
    for (int k = 0; k < p.kernel_count; ++k) {
        if (k > 0) {
            p.kernels[k].before = uses_pending(k) ? fence::memory : fence::barrier;
            if (p.kernels[k].before == fence::memory)
                for (int b = 0; b < p.buffer_count; ++b) pending[b] = false;
        }
        written_by(k);
    }
    if (p.loop_param >= 0) {
        bool needed = false;
        for (int k = 0; k < p.kernel_count; ++k) needed = needed || uses_pending(k);
        p.single_at_end = needed ? fence::memory : fence::barrier;
    }
}

} // namespace detail

// Floats of shared memory a single-dispatch program may use for its temporaries: 16 KiB. With the scratch arrays of
// a 1024-invocation workgroup (8 KiB) that fits the 32 KiB most devices offer; where a device has less, the runtime
// shrinks the workgroup, or says what does not fit.
inline constexpr std::uint32_t single_dispatch_shared_floats = 4096;

template <std::size_t Cap>
constexpr int program_plan<Cap>::matrix_reads(int b) const {
    int reads = 0;
    for (int k = 0; k < kernel_count; ++k) {
        const kernel_scope<Cap> sc(*this, kernels[k]);
        for (const segment& s : kernels[k])
            sc.each_product(s.root, [&](int m) { reads += buffer_of_node[g[m].a] == b ? 1 : 0; });
    }
    return reads;
}

} // namespace vkfuse::plan
