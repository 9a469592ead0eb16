// vkfuse/glsl/kernels/elementwise.hpp — a kernel of one invocation per output element (or rope row pair).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../statements.hpp"

namespace vkfuse::glsl {

// `buffer[index] = value;` for the row(s) of segment s.
template <class T, std::size_t Cap>
constexpr void emit_store(T& t, const kernel_view<Cap>& kv, const plan::segment& seg, int indent, site s) {
    const node& x = kv[seg.root];
    const int b = kv.p.buffer_of_node[seg.root];
    t.repeat("    ", indent);
    auto index = [&] {
        if (x.kind == node_kind::append) {  // row `pos` of the cache
            ref(t, kv, x.c, s);
            t << " * " << x.cols << "u + ";
        }
        t << s.index;
    };
    if (!plain_storage(kv.p, b)) {  // an f16 cache: rounded to nearest even by its store function (loaders.hpp)
        t << "vkf_store_";
        buffer_name(t, kv.p, b);
        t << '(';
        layer_offset(t, kv, b, false);
        index();
        t << ", ";
        ref(t, kv, seg.stored, s);
        t << ");\n";
        return;
    }
    open_node_access(t, kv, seg.root, false);
    index();
    t << "] = ";
    // a u32 result is stored as its bits when it shares the float arena
    if (x.dtype == dtype_code::u32) t << (kv.packed ? "uintBitsToFloat(uint(" : "uint(");
    ref(t, kv, seg.stored, s);
    if (x.dtype == dtype_code::u32) t << (kv.packed ? "))" : ")");
    t << ";\n";
}

// `const uint i = ...;` (or i0 and i1 for row pairs) from the kernel-wide unit index.
template <class T>
constexpr void emit_row_of_unit(T& t, const plan::segment& seg, int indent) {
    const std::uint32_t hd = seg.pair_dim;
    t.repeat("    ", indent) << "const uint u = unit";
    if (seg.first_unit != 0) t << " - " << seg.first_unit << 'u';
    t << ";\n";
    t.repeat("    ", indent);
    if (hd == 0) {
        t << "const uint i = u;\n";
    } else {
        t << "const uint i0 = u / " << hd / 2 << "u * " << hd << "u + u % " << hd / 2
          << "u;  // a head's rows j and j + " << hd / 2 << " are a rope pair\n";
        t.repeat("    ", indent) << "const uint i1 = i0 + " << hd / 2 << "u;\n";
    }
}

// What segment s evaluates per row, then its store(s).
template <class T, std::size_t Cap>
constexpr void emit_segment_epilogue(T& t, const kernel_view<Cap>& kv, int r, int indent) {
    const plan::segment& seg = kv.k.segments[r];
    const bool paired = seg.pair_dim != 0;
    bool need[Cap] = {};
    kv.segment_nodes(seg.root, need);
    site s;
    s.segment = r;
    emit_block(t, kv, need, indent, s, paired);
    if (!paired) {
        emit_store(t, kv, seg, indent, s);
    } else {
        for (int v = 0; v < 2; ++v) {
            s.variant = v;
            s.index = v == 0 ? "i0" : "i1";
            emit_store(t, kv, seg, indent, s);
        }
    }
}

// `if (unit in segment r) {  // label`
template <class T, std::size_t Cap>
constexpr void emit_segment_test(T& t, const kernel_view<Cap>& kv, int r, std::string_view unit) {
    const plan::segment& seg = kv.k.segments[r];
    if (seg.first_unit == 0)
        t << "if (" << unit << " < " << seg.first_unit + seg.units << "u) {";
    else
        t << "if (" << unit << " >= " << seg.first_unit << "u && " << unit << " < " << seg.first_unit + seg.units
          << "u) {";
    t << "  // ";
    kv.p.label(t, seg.root);
    t << '\n';
}

template <class T, std::size_t Cap>
constexpr void emit_elementwise(T& t, const kernel_view<Cap>& kv) {
    if (kv.p.how == strategy::persistent)
        t << "        for (uint unit = vkf_item * gl_WorkGroupSize.x + gl_LocalInvocationID.x; unit < " << kv.k.units
          << "u; unit += vkf_items * gl_WorkGroupSize.x) {\n";
    else
        t << "        for (uint unit = gl_GlobalInvocationID.x; unit < " << kv.k.units
          << "u; unit += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {\n";
    for (int r = 0; r < kv.k.segment_count; ++r) {
        t << "            ";
        emit_segment_test(t, kv, r, "unit");
        emit_row_of_unit(t, kv.k.segments[r], 4);
        emit_segment_epilogue(t, kv, r, 4);
        t << "            }\n";
    }
    t << "        }\n";
}

} // namespace vkfuse::glsl
