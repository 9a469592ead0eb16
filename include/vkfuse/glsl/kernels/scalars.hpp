// vkfuse/glsl/kernels/scalars.hpp — the scalars a kernel needs, computed once per invocation before its main loop.
//
// A reduction over a vector the kernel can read (an RMSNorm's mean of squares) is recomputed by every workgroup that
// needs it: D values per workgroup cost less than a dispatch boundary. The fold is the one op_traits describes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../ops/traits.hpp"
#include "../statements.hpp"

namespace vkfuse::glsl {

// Every scalar the phase needs, in topological order: reductions (each a loop over its vector) and the scalar
// arithmetic on them (a softmax's sum can use its max).
template <class T, std::size_t Cap>
constexpr void emit_scalars(T& t, const kernel_view<Cap>& kv) {
    for (int r = 0; r < kv.size(); ++r) {
        const node& x = kv[r];
        if (!kv.nodes[r] || x.rank != 0 || x.kind == node_kind::constant) continue;
        if (x.kind != node_kind::reduce || kv.reads_memory(r)) {
            emit_statement(t, kv, r, 2, site{});
            continue;
        }
        const op_info& fold = op_info_of(x.operation);
        const op_info& with = op_info_of(fold.combine);
        const std::uint64_t len = kv[x.a].rows;
        // four elements a trip where the vector allows (plan::kernel_scope::vectorized_reduction), folded in order
        const bool v4 = kv.vectorized_reduction(r);
        t << "        float v" << r << ";  // " << fold.name << " of v" << x.a << " over " << len
          << " elements, computed by every workgroup\n"
          << "        {\n"
          << "            float acc = " << float_literal{fold.identity} << ";\n";
        if (fold.indexed) t << "            float at = 0.0;\n            bool finite = true;\n";
        t << "            for (uint i = gl_LocalInvocationID.x; i < " << (v4 ? len / 4 : len)
          << "u; i += gl_WorkGroupSize.x) {" << (v4 ? "  // i counts vec4s\n" : "\n");
        bool need[Cap] = {};
        kv.collect(x.a, need);
        site at_i;
        at_i.width = v4 ? 4 : 1;
        emit_block(t, kv, need, 4, at_i, false);
        for (int c = 0; c < (v4 ? 4 : 1); ++c) {
            // the value (component c of four) as an operand
            auto value = [&] {
                ref(t, kv, x.a, site{});
                if (v4) t << '.' << "xyzw"[c];
            };
            if (fold.indexed) {
                // keep the first index where the fold moves: then the smallest index holding the final value wins
                t << "                " << (c == 0 ? "float " : "") << "next = ";
                if (with.infix) {
                    t << "acc" << with.glsl;
                    value();
                } else {
                    t << with.glsl << "(acc, ";
                    value();
                    t << ')';
                }
                t << ";\n"
                  << "                if (next != acc) { acc = next; at = float(" << (v4 ? "4u * i + " : "i");
                if (v4) t << c << 'u';
                t << "); }\n"
                  << "                finite = finite && !isnan(";
                value();
                t << ") && ";
                value();
                t << " != uintBitsToFloat(0x7f800000u);\n";
            } else {
                t << "                acc = ";
                if (with.infix) {
                    t << "acc" << with.glsl << '(';
                    value();
                    t << ')';
                } else {
                    t << with.glsl << "(acc, ";
                    value();
                    t << ')';
                }
                t << ";\n";
            }
        }
        t << "            }\n";
        if (fold.indexed) {
            // the first index holding the final value over the workgroup: combine the values, then take the smallest
            // index among the invocations that hold the winner (indices are exact in f32 below 2^24)
            // and the length, no element's index, where any invocation saw NaN or +infinity
            t << "            const float best = vkf_workgroup_" << with.combined << "(acc);\n"
              << "            v" << r << " = -vkf_workgroup_max(acc == best ? -at : uintBitsToFloat(0xff800000u));\n"
              << "            if (vkf_workgroup_max(finite ? 0.0 : 1.0) != 0.0) v" << r << " = " << len << ".0;\n";
        } else {
            t << "            v" << r << " = vkf_workgroup_" << with.combined << "(acc)";
            if (fold.mean) t << " / " << float_literal{static_cast<float>(len)};
            t << ";\n";
        }
        t << "        }\n";
    }
}

} // namespace vkfuse::glsl
