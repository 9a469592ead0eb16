// vkfuse/glsl/kernels/matvec.hpp — a kernel of matrix-vector products: `lanes` invocations per output row (or rope
// row pair) stream the row, evaluating the prologue (elementwise work on the input vector) as they go, four elements
// at a time where the row length allows; the row sums are added across the lanes, and the epilogue (bias,
// activation, gating, rope, residual) runs per row before the store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "elementwise.hpp"

namespace vkfuse::glsl {

// Calls f(segment, product node, name suffix) for every dot-product accumulator of a matvec kernel: one per segment,
// product computed in it, and row of a rope pair ("_0", "_1"; "" without pairs).
template <std::size_t Cap, class F>
constexpr void each_accumulator(const kernel_view<Cap>& kv, F f) {
    for (int r = 0; r < kv.k.segment_count; ++r) {
        const bool paired = kv.k.segments[r].pair_dim != 0;
        kv.each_product(kv.k.segments[r].root, [&](int m) {
            if (paired) {
                f(r, m, std::string_view("_0"));
                f(r, m, std::string_view("_1"));
            } else {
                f(r, m, std::string_view());
            }
        });
    }
}

template <class T, std::size_t Cap>
constexpr void emit_matvec(T& t, const kernel_view<Cap>& kv) {
    const auto& p = kv.p;
    // invocations per row: a specialization constant the runtime sets from the plan's lanes rule
    if (one_shader(p.how))
        t << "        const uint lanes = LANES_" << kv.index + 1 << ";\n";
    else
        t << "        const uint lanes = LANES;\n";
    t << "        const uint lane = gl_LocalInvocationID.x % lanes;\n"
      << "        const uint rows_per_group = gl_WorkGroupSize.x / lanes;\n"
      << "        for (uint base = " << group_index(p) << " * rows_per_group; base < " << kv.k.units
      << "u; base += " << group_count(p) << " * rows_per_group) {\n"
      << "            const uint unit = base + gl_LocalInvocationID.x / lanes;\n";
    each_accumulator(kv, [&](int r, int m, std::string_view suffix) {
        t << "            float a" << r << '_' << m << suffix << " = 0.0;\n";
    });
    // dot products: per segment, one loop per distinct input length
    for (int r = 0; r < kv.k.segment_count; ++r) {
        const plan::segment& seg = kv.k.segments[r];
        const bool paired = seg.pair_dim != 0;
        bool products[Cap] = {};
        bool any = false;
        kv.each_product(seg.root, [&](int m) { products[m] = any = true; });
        if (!any) continue;
        t << "            ";
        emit_segment_test(t, kv, r, "unit");
        emit_row_of_unit(t, seg, 4);
        bool done[Cap] = {};
        for (int m = 0; m < kv.size(); ++m) {
            if (!products[m] || done[m]) continue;
            const std::uint64_t cols = kv[kv[m].b].rows;
            const bool v4 = plan::vectorized(cols);
            const std::uint64_t steps = v4 ? cols / 4 : cols;
            bool need[Cap] = {};
            kv.loop_nodes(seg.root, cols, need);
            // One step: the prologue at index j, then every product of this input length at j.
            auto step = [&](int indent) {
                site st;
                st.width = v4 ? 4 : 1;
                st.index = "j";
                emit_block(t, kv, need, indent, st, false);
                for (int n = m; n < kv.size(); ++n) {
                    if (!products[n] || kv[kv[n].b].rows != cols) continue;
                    done[n] = true;
                    for (int v = 0; v < (paired ? 2 : 1); ++v) {
                        t.repeat("    ", indent) << 'a' << r << '_' << n << (paired ? (v == 0 ? "_0" : "_1") : "")
                                                 << " += ";
                        if (v4) t << "dot(";
                        load_node(t, kv, kv[n].a, v4, [&] {
                            t << (paired ? (v == 0 ? "i0" : "i1") : "i") << " * " << steps << "u + j";
                        });
                        t << (v4 ? ", " : " * ");
                        ref(t, kv, kv[n].b, st);
                        t << (v4 ? ");\n" : ";\n");
                    }
                }
            };
            t << "                for (uint j = lane; j < " << steps << "u; j += lanes) {"
              << (v4 ? "  // j counts vec4s\n" : "\n");
            step(5);
            t << "                }\n";
        }
        t << "            }\n";
    }
    // row sums, in uniform control flow
    each_accumulator(kv, [&](int r, int m, std::string_view suffix) {
        t << "            const float r" << r << '_' << m << suffix << " = vkf_segment_sum(a" << r << '_' << m << suffix
          << ", lanes);\n";
    });
    t << "            if (lane == 0u) {\n";
    for (int r = 0; r < kv.k.segment_count; ++r) {
        t << "                ";
        emit_segment_test(t, kv, r, "unit");
        emit_row_of_unit(t, kv.k.segments[r], 5);
        emit_segment_epilogue(t, kv, r, 5);
        t << "                }\n";
    }
    t << "            }\n"
      << "        }\n";
}

} // namespace vkfuse::glsl
