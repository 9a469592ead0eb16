// vkfuse/plan/materialize.hpp — which values are written to buffers, and the buffers of a program.
//
// A value is *materialised* when the kernel that computes it writes it to a buffer that later kernels read. That is
// where dispatches are cut, so it is the planner's central decision. The rules, in order:
//
//  1. Results are materialised: outputs, named<> values, KV-cache appends, attention outputs (and the query vector an
//     attention reads per head). Under per_op every operation is.
//  2. A true global dependency forces a value: the input vector of a matvec, or the operand of a reduction, that
//     involves a product (or a rope of one) not yet materialised. Every workgroup of its consumer needs all of it,
//     and each workgroup of the kernel computing it has only some rows.
//  3. The cost rule: a matrix product is never computed twice. A value that the code of more than one materialised
//     value evaluates, and whose evaluation streams a weight matrix, is materialised once and read back — a matvec
//     over a 4864 x 896 matrix costs 17 MB of traffic each time; reading its result costs a few KB. Values without a
//     product in them (an RMSNorm's statistics, a normalised input) are recomputed by every kernel that needs them:
//     a pass over D values costs less than a dispatch boundary.
//
// Rule 3 is what makes a stack of layers written without named<> plan the same kernels as one that names its
// residuals: the unnamed residual h = x + Wo attn is read by the next norm's statistics, by the next matvec's
// prologue and by the next residual, so it is materialised once instead of recomputed (Wo and all) by each.
#pragma once

#include <cstddef>
#include <cstdint>

#include "scope.hpp"

namespace vkfuse::plan::detail {

void vkfuse_error_binding_bytes_limit_below_one_block();

// Rules 1 and 2 given the values already materialised by rule 3 (`shared`).
template <std::size_t Cap>
constexpr void apply_rules(program_plan<Cap>& p, const bool (&shared)[Cap]) {
    const auto& g = p.g;
    for (int i = 0; i < g.size; ++i) {
        const node& n = g[i];
        p.materialized[i] = shared[i] || !g.result_name[i].empty() || n.kind == node_kind::append ||
                            n.kind == node_kind::attention ||
                            (p.how == strategy::per_op && n.kind != node_kind::leaf && n.kind != node_kind::constant);
        if (n.kind == node_kind::attention && !p.is_buffer_leaf(n.a)) p.materialized[n.a] = true;
    }
    if (p.how == strategy::per_op) return;
    // `holds[i]`: the value involves a product or a rope not yet materialised, so no single workgroup can produce all
    // of it (a rope needs its partner row).
    bool holds[Cap] = {};
    for (int i = 0; i < g.size; ++i) {
        const node& n = g[i];
        auto take = [&](int ch) { return ch >= 0 && holds[ch] && !p.materialized[ch]; };
        auto force = [&](int ch) {
            if (take(ch)) p.materialized[ch] = true;
        };
        switch (n.kind) {
        case node_kind::leaf:
        case node_kind::constant:
        case node_kind::lookup:
        case node_kind::append:
        case node_kind::attention: holds[i] = false; break;
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
        }
    }
}

// Rule 3: the highest node that the code of two or more materialised values evaluates and whose evaluation streams
// a matrix; -1 when there is none. (Highest first, so the whole shared value is kept, not just its product.)
template <std::size_t Cap>
constexpr int shared_product(const program_plan<Cap>& p) {
    const auto& g = p.g;
    bool streams[Cap] = {};  // evaluating the node (down to what is materialised) runs a matvec
    for (int i = 0; i < g.size; ++i) {
        const node& n = g[i];
        if (n.kind == node_kind::matvec) {
            streams[i] = true;
            continue;
        }
        if (n.kind == node_kind::leaf || n.kind == node_kind::constant) continue;
        for (int k = 0; k < 4; ++k) {
            const int ch = n.child(k);
            if (ch >= 0 && !p.materialized[ch] && streams[ch]) streams[i] = true;
        }
    }
    int users[Cap] = {};
    for (int r = 0; r < g.size; ++r) {
        if (!p.materialized[r]) continue;
        bool marks[Cap] = {};
        mark_nodes(p, r, marks);
        for (int n = 0; n < g.size; ++n)
            if (marks[n] && n != r && !p.stops_at(n, r)) ++users[n];
    }
    for (int n = g.size - 1; n >= 0; --n)
        if (!p.materialized[n] && streams[n] && users[n] >= 2) return n;
    return -1;
}

template <std::size_t Cap>
constexpr void decide_materialization(program_plan<Cap>& p) {
    bool shared[Cap] = {};
    apply_rules(p, shared);
    if (p.how == strategy::per_op) return;
    // Each round materialises one shared value and re-applies rules 1 and 2, which it may relax (a reduction over a
    // value that is now read from memory no longer forces its operand).
    for (int n = shared_product(p); n >= 0; n = shared_product(p)) {
        shared[n] = true;
        apply_rules(p, shared);
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
    // placeholders, in first-use order; params get a word of the parameter block
    for (int i = 0; i < g.size; ++i) {
        const node& n = g[i];
        if (n.kind != node_kind::leaf) continue;
        if (n.leaf_role == role::param) {
            p.params[p.param_count++] = i;
            continue;
        }
        add(i, n.name, n.leaf_role, false, n.dtype);
    }
    // outputs and named results, then temporaries; an append lives in the buffer of its cache. A later step's input
    // of an output's name is that output's buffer (steps(...)).
    for (int pass = 0; pass < 2; ++pass) {
        for (int i = 0; i < g.size; ++i) {
            if (!p.materialized[i] || g[i].kind == node_kind::append) continue;
            const bool has_name = !g.result_name[i].empty();
            if ((pass == 0) != has_name) continue;
            const int read_later = has_name ? p.buffer_index(g.result_name[i].view()) : -1;
            if (read_later >= 0) {
                buffer_slot& b = p.buffers[read_later];
                b.slot_role = role::output;
                b.node = i;
                p.buffer_of_node[i] = read_later;
                continue;
            }
            add(i, g.result_name[i], role::output, !has_name, g[i].dtype);
        }
    }
    for (int i = 0; i < g.size; ++i)
        if (g[i].kind == node_kind::append) p.buffer_of_node[i] = p.buffer_of_node[g[i].a];
    // a stack's weights and states: one copy per layer; its input and output: the hidden state it carries
    const step_layout& st = g.steps;
    if (st.stack_step < 0) return;
    for (int i = 0; i < g.size; ++i) {
        if (g[i].step != st.stack_step || g[i].kind == node_kind::leaf || g[i].kind == node_kind::constant) continue;
        for (int k = 0; k < 4; ++k) {
            const int ch = g[i].child(k);
            if (ch < 0 || g[ch].kind != node_kind::leaf) continue;
            if (g[ch].leaf_role == role::weight || g[ch].leaf_role == role::state)
                p.buffers[p.buffer_of_node[ch]].layers = st.layers;
        }
    }
    const int in = p.buffer_index(st.carry_in.view()), out = p.buffer_index(st.carry_out.view());
    if (in >= 0) p.buffers[in].carry = buffer_slot::carry_kind::in;
    if (out >= 0) p.buffers[out].carry = buffer_slot::carry_kind::out;
}

template <std::size_t Cap>
constexpr void limit_param(program_plan<Cap>& p, int param_node, std::uint64_t rows) {
    const std::uint32_t limit = rows > 0xffffffffull ? 0xffffffffu : static_cast<std::uint32_t>(rows);
    const int i = p.param_of(param_node);
    if (i >= 0 && (p.param_limit[i] == 0 || limit < p.param_limit[i])) p.param_limit[i] = limit;
}

// Positions and tokens must stay inside the tables and caches they index.
template <std::size_t Cap>
constexpr void limit_params(program_plan<Cap>& p) {
    for (int i = 0; i < p.g.size; ++i) {
        const node& n = p.g[i];
        if (n.kind == node_kind::rope) limit_param(p, n.b, p.g[n.c].rows);
        if (n.kind == node_kind::append) limit_param(p, n.c, n.rows);
        if (n.kind == node_kind::attention) limit_param(p, n.d, p.g[n.b].rows);
        if (n.kind == node_kind::lookup) limit_param(p, n.b, p.g[n.a].rows);
    }
}

// Weights too large for one binding are split into pieces (buffer_slot::pieces): as many elements per piece as fit
// `limit` bytes, rounded down to whole vec4s (f32, f16), whole 16-byte loads of eight (bf16) or whole blocks of 32
// (q8_0, q4_0). Only weights
// are split: they are read, never written, so every access goes through the function that picks the piece.
template <std::size_t Cap>
constexpr void split_large_weights(program_plan<Cap>& p, std::uint64_t limit) {
    for (int b = 0; b < p.buffer_count; ++b) {
        buffer_slot& s = p.buffers[b];
        if (s.slot_role != role::weight) continue;
        const std::uint64_t elements = p.held_elements(b);
        if (storage_bytes(s.dtype, elements) <= limit) continue;
        const std::uint64_t unit =  // elements that must share a piece
            is_block_format(s.dtype) ? 32 : s.dtype == dtype_code::bf16 ? 8 : 4;
        const std::uint64_t per_piece = limit / storage_bytes(s.dtype, unit) * unit;
        if (per_piece == 0) vkfuse_error_binding_bytes_limit_below_one_block();
        s.piece_elements = per_piece;
        s.pieces = static_cast<std::uint32_t>((elements + per_piece - 1) / per_piece);
    }
}

// Every buffer's place in the packed arena, in floats, each rounded up to whole vec4s.
template <std::size_t Cap>
constexpr void lay_out_arena(program_plan<Cap>& p) {
    for (int b = 0; b < p.buffer_count; ++b) {
        p.arena_offset[b] = p.arena_floats;
        p.arena_floats += (p.buffers[b].elements + 3u) / 4u * 4u;
    }
}

} // namespace vkfuse::plan::detail
