// vkfuse/glsl/statements.hpp — one node as one GLSL statement, and blocks of them.
//
// Elementwise ops are written as their op_traits say (ops/traits.hpp); the node kinds that are not ops (reads, rope,
// embedding rows) are written here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/text.hpp"
#include "../ops/traits.hpp"
#include "access.hpp"

namespace vkfuse::glsl {

// `float vN = ...;` — or, with width 4, `vec4 vN = ...;` computing elements 4i..4i+3 at once: vector reads go
// through the buffer's vec4 view, and scalars broadcast, which GLSL's operators and built-ins do by themselves.
template <class T, std::size_t Cap>
constexpr void emit_statement(T& t, const kernel_view<Cap>& kv, int n, int indent, const site& s) {
    const node& x = kv[n];
    const bool index = x.kind == node_kind::leaf && x.dtype == dtype_code::u32;
    t.repeat("    ", indent) << (index ? "uint " : s.width == 4 && x.rank != 0 ? "vec4 " : "float ");
    ref(t, kv, n, s);
    t << " = ";
    if (kv.reads_memory(n)) {
        read_access(t, kv, n, s.width == 4 && x.rank != 0, x.rank == 0 ? std::string_view("0") : s.index);
    } else if (x.kind == node_kind::leaf) {  // a param
        param_access(t, kv.p, n);
    } else if (x.kind == node_kind::unary) {
        t << op_info_of(x.operation).glsl << '(';
        ref(t, kv, x.a, s);
        t << ')';
    } else if (x.kind == node_kind::binary) {
        const op_info& o = op_info_of(x.operation);
        if (o.infix) {
            ref(t, kv, x.a, s);
            t << o.glsl;
            ref(t, kv, x.b, s);
        } else {
            // GLSL has max(vec4, float) but not max(float, vec4): a commutative function takes a scalar second.
            const bool swap = o.commutative && kv[x.a].rank == 0 && kv[x.b].rank != 0;
            t << o.glsl << '(';
            ref(t, kv, swap ? x.b : x.a, s);
            t << ", ";
            ref(t, kv, swap ? x.a : x.b, s);
            t << ')';
        }
    } else if (x.kind == node_kind::lookup) {
        // the row clamped to the table: an index the host sets is checked there, but one computed on the device (an
        // argmax fed back by decode_loop) is the table's length where the logits were not finite
        load_node(t, kv, x.a, s.width == 4, [&] {
            t << "min(";
            ref(t, kv, x.b, s);
            t << ", " << kv[x.a].rows - 1 << "u) * " << (s.width == 4 ? x.rows / 4 : x.rows) << "u + " << s.index;
        });
    } else if (x.kind == node_kind::rope) {
        // Rotate-half: the first half of a head gets a*cos - partner*sin, the second a*cos + partner*sin; the
        // table row `pos` holds cos for j < head_dim/2, then sin. Both variants use the first-half index i0.
        const std::uint32_t hd = x.p0;
        site own = s, partner = s;
        partner.variant = 1 - s.variant;
        auto table = [&](bool sine) {
            open_node_access(t, kv, x.c, false);
            ref(t, kv, x.b, s);
            t << " * " << hd << "u + " << (sine ? hd / 2 : 0u) << "u + i0 % " << hd << "u]";
        };
        ref(t, kv, x.a, own);
        t << " * ";
        table(false);
        t << (s.variant == 0 ? " - " : " + ");
        ref(t, kv, x.a, partner);
        t << " * ";
        table(true);
    }
    t << ";\n";
}

// The statements of a per-element block, in topological order; in paired segments each node for both rows.
template <class T, std::size_t Cap>
constexpr void emit_block(T& t, const kernel_view<Cap>& kv, const bool (&need)[Cap], int indent, site s,
                          bool paired) {
    for (int n = 0; n < kv.size(); ++n) {
        if (!need[n]) continue;
        if (!paired) {
            emit_statement(t, kv, n, indent, s);
            continue;
        }
        for (int v = 0; v < 2; ++v) {
            s.variant = v;
            s.index = v == 0 ? "i0" : "i1";
            emit_statement(t, kv, n, indent, s);
        }
    }
}

} // namespace vkfuse::glsl
