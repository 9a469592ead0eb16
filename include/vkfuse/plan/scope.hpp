// vkfuse/plan/scope.hpp — which nodes the code of a kernel evaluates, and which it reads from memory.
//
// The planner asks this to describe a kernel (its buffers, helpers, costs); the emitter asks the same questions to
// print the kernel's statements, so both agree on what a kernel computes by construction.
#pragma once

#include <cstddef>
#include <cstdint>

#include "records.hpp"

namespace vkfuse::plan {

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

// True when a vectorised loop over inputs of this length reads them four at a time.
constexpr bool vectorized(std::uint64_t cols) { return cols % 4 == 0; }

// The floats of input vectors a persistent matvec phase may keep in shared memory (8 KiB). Shared memory decides how
// many workgroups a multiprocessor holds: on an H100 (driver 580) staging Qwen2.5-0.5B's widest input, 4864 floats,
// left room for 2 workgroups of 256 per multiprocessor instead of 4, and Llama-3.2-1B's 8192 for 1 (the token then
// took 2657 us against 2071 unstaged). 2048 stages the hidden-size inputs of both models (q/k/v, the output
// projection, gate/up, lm_head) and leaves the down projections' wide inputs in memory. A device with less room runs
// every phase reading its inputs from memory (VKFUSE_STAGE_INPUTS undefined).
inline constexpr std::uint64_t max_staged_floats = 2048;

// One kernel seen from its code: what it evaluates, what it reads. Needs only the kernel's segments' roots.
template <std::size_t Cap>
struct kernel_scope {
    const program_plan<Cap>& p;
    const kernel_record& k;
    bool nodes[Cap] = {};  // what the kernel evaluates or reads, over all its roots

    constexpr kernel_scope(const program_plan<Cap>& plan, const kernel_record& kernel) : p(plan), k(kernel) {
        for (const segment& s : k) mark_nodes(p, s.root, nodes);
    }

    constexpr const node& operator[](int n) const { return p.g[n]; }
    constexpr int size() const { return p.g.size; }
    constexpr bool is_root(int n) const { return k.computes(n); }
    // Read from memory here: a buffer leaf, or a value materialised by an earlier kernel.
    constexpr bool reads_memory(int n) const { return p.is_buffer_leaf(n) || (p.materialized[n] && !is_root(n)); }
    // A matvec computed in this kernel (not read from memory).
    constexpr bool computes_matvec(int n) const {
        return nodes[n] && p.g[n].kind == node_kind::matvec && !reads_memory(n);
    }

    // The vector a root writes: an append writes its new row.
    constexpr int stored(int root) const { return p.g[root].kind == node_kind::append ? p.g[root].b : root; }
    constexpr std::uint64_t length(int root) const {
        const node& x = p.g[root];
        return x.kind == node_kind::append ? x.cols : x.elements();
    }

    // Nodes a per-element block must evaluate to have `n`: scalars (computed once before), matvec results (summed per
    // row before), constants (inline) and attention are handed in; memory is read where the kernel stops.
    constexpr void collect(int n, bool (&need)[Cap]) const {
        if (need[n]) return;
        const node& x = p.g[n];
        if (x.kind == node_kind::constant || x.rank == 0) return;
        if (computes_matvec(n)) return;
        need[n] = true;
        if (reads_memory(n)) return;
        for (int c = 0; c < 4; ++c) {
            const int ch = x.child(c);
            if (ch < 0) continue;
            if (x.kind == node_kind::rope && c == 2) continue;    // the table is read by the rope itself
            if (x.kind == node_kind::lookup && c == 0) continue;  // so is the embedding table
            collect(ch, need);
        }
    }
    // What the epilogue of `root` evaluates per row.
    constexpr void segment_nodes(int root, bool (&need)[Cap]) const { collect(stored(root), need); }
    // The nodes the dot-product loop over inputs of length `cols` evaluates for segment root `root` (its prologue).
    constexpr void loop_nodes(int root, std::uint64_t cols, bool (&need)[Cap]) const {
        bool seg[Cap] = {};
        mark_nodes(p, root, seg);
        for (int n = 0; n < size(); ++n)
            if (seg[n] && computes_matvec(n) && p.g[p.g[n].b].rows == cols) collect(p.g[n].b, need);
    }
    // A reduction node `r` this kernel computes, over a vector it evaluates element by element four at a time: the
    // length divides by 4 and every element's value is reads, lookups and elementwise ops (a rope pairs rows; a
    // product is summed per row). Each invocation then makes a quarter of the trips, each reading 16 bytes.
    constexpr bool vectorized_reduction(int r) const {
        const node& x = p.g[r];
        if (x.kind != node_kind::reduce || x.rank != 0 || reads_memory(r) || !vectorized(p.g[x.a].rows)) return false;
        bool need[Cap] = {};
        collect(x.a, need);
        if (!need[x.a]) return false;
        for (int n = 0; n < size(); ++n) {
            if (!need[n]) continue;
            const node& y = p.g[n];
            if (y.dtype == dtype_code::u32) return false;
            if (reads_memory(n)) continue;
            if (y.kind != node_kind::unary && y.kind != node_kind::binary && y.kind != node_kind::lookup) return false;
        }
        return true;
    }
    // The head dim of the rope evaluated in root's segment (0: none), which then works on row pairs.
    constexpr std::uint32_t pair_dim(int root) const {
        bool need[Cap] = {};
        segment_nodes(root, need);
        for (int n = 0; n < size(); ++n)
            if (need[n] && p.g[n].kind == node_kind::rope && !reads_memory(n)) return p.g[n].p0;
        return 0;
    }
    // persistent: the distinct input vectors of the kernel's products that a work item evaluates once into shared
    // memory (vkf_x) instead of every invocation reading (and re-deriving) them from device memory on every step of
    // its rows. Only inputs read four at a time, and only while they fit max_staged_floats together; f(node, offset in
    // vec4s) for each, in node order. Returns their floats (0: none staged).
    template <class F>
    constexpr std::uint64_t each_staged_input(F f) const {
        if (p.how != strategy::persistent || k.kind != kernel_kind::matvec) return 0;
        bool input[Cap] = {};
        std::uint64_t floats = 0;
        for (const segment& s : k)
            each_product(s.root, [&](int m) {
                const int b = p.g[m].b;
                if (input[b] || !vectorized(p.g[b].rows)) return;
                input[b] = true;
                floats += p.g[b].rows;
            });
        if (floats == 0 || floats > max_staged_floats) return 0;
        std::uint64_t at = 0;
        for (int n = 0; n < size(); ++n)
            if (input[n]) {
                f(n, at / 4);
                at += p.g[n].rows;
            }
        return floats;
    }
    constexpr std::uint64_t staged_floats() const {
        return each_staged_input([](int, std::uint64_t) {});
    }
    // Where input `b` of a product lies in vkf_x, in vec4s (-1: not staged).
    constexpr std::int64_t staged_offset(int b) const {
        std::int64_t at = -1;
        each_staged_input([&](int n, std::uint64_t offset) {
            if (n == b) at = static_cast<std::int64_t>(offset);
        });
        return at;
    }

    // Calls f(matvec node) for each product the segment of `root` computes.
    template <class F>
    constexpr void each_product(int root, F f) const {
        bool seg[Cap] = {};
        mark_nodes(p, root, seg);
        for (int m = 0; m < size(); ++m)
            if (seg[m] && computes_matvec(m)) f(m);
    }
};

} // namespace vkfuse::plan
