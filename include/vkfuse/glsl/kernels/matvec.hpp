// vkfuse/glsl/kernels/matvec.hpp — a kernel of matrix-vector products: `lanes` invocations per output row (or rope
// row pair) stream the row, evaluating the prologue (elementwise work on the input vector) as they go, four elements
// at a time where the row length allows and eight per 16-byte load where the weights are bf16; the row sums are added
// across the lanes, and the epilogue (bias, activation, gating, rope, residual) runs per row before the store. A
// persistent phase may instead evaluate its inputs once per work item into shared memory (staged), and read its first
// weights before it waits (its prefetch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../storage.hpp"
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

// persistent: the products' input vectors, each evaluated (its prologue: an RMSNorm's scaling, say) once per work
// item into shared memory, where every row of the item reads it; without this each invocation reads the vector from
// memory again (through L2: what phases write is `coherent`) on every step of every row, more bytes than the weights.
template <class T, std::size_t Cap>
constexpr void emit_staged_inputs(T& t, const kernel_view<Cap>& kv) {
    t << "#ifdef VKFUSE_STAGE_INPUTS  // the inputs of the products, once for the item\n";
    kv.each_staged_input([&](int b, std::uint64_t at) {
        t << "        for (uint j = gl_LocalInvocationID.x; j < " << kv[b].rows / 4
          << "u; j += gl_WorkGroupSize.x) {  // j counts vec4s\n";
        bool need[Cap] = {};
        kv.collect(b, need);
        site st;
        st.width = 4;
        st.index = "j";
        emit_block(t, kv, need, 3, st, false);
        t << "            vkf_x[" << at << "u + j] = ";
        ref(t, kv, b, st);
        t << ";\n        }\n";
    });
    t << "        barrier();\n"
      << "#endif\n";
}

// The dot-product loop of segment r over the inputs of length `cols`, for every product of that length (marked in
// `products`, and then in `done`). Four elements a step where the length allows (`v4`), eight from one 16-byte load
// where every weight of the loop is wide-loaded (bf16) and the length divides by 8; the input from vkf_x where
// `staged`, else evaluated at each step.
// True where the loop over inputs of length `cols` (every product in `products` of that length, from product m on)
// reads eight weights per 16-byte load: all its weights are wide-loaded and the length divides by 8.
template <std::size_t Cap>
constexpr bool wide_loop(const kernel_view<Cap>& kv, int m, std::uint64_t cols, const bool (&products)[Cap]) {
    bool wide = cols % 8 == 0;
    for (int n = m; n < kv.size(); ++n)
        if (products[n] && kv[kv[n].b].rows == cols)
            wide = wide && wide_loads(kv.p, kv.p.buffer_of_node[kv[n].a], kv.packed);
    return wide;
}

// The loops of a matvec kernel's rows: for each segment that computes products, open(r) (after the segment's test and
// its row index, at `indent`), then loop(r, m, cols, products, done) for each distinct input length of its products
// (m: the first product of that length; the callee marks what it handled in `done`), then the segment's closing brace.
template <class T, std::size_t Cap, class Loop>
constexpr void each_row_loop(T& t, const kernel_view<Cap>& kv, int indent, Loop loop) {
    for (int r = 0; r < kv.k.segment_count; ++r) {
        const plan::segment& seg = kv.k.segments[r];
        bool products[Cap] = {};
        bool any = false;
        kv.each_product(seg.root, [&](int m) { products[m] = any = true; });
        if (!any) continue;
        t.repeat("    ", indent - 1);
        emit_segment_test(t, kv, r, "unit");
        emit_row_of_unit(t, seg, indent);
        bool done[Cap] = {};
        for (int m = 0; m < kv.size(); ++m) {
            if (!products[m] || done[m]) continue;
            loop(r, m, kv[kv[m].b].rows, products, done);
        }
        t.repeat("    ", indent - 1) << "}\n";
    }
}

// persistent, PREFETCH: the first PREFETCH steps of the rows of the item's first pass, read before its wait, into
// `vkf_sum` (glsl/shader.hpp emit_persistent_prefetch). The same rows, steps and loads as the phase's loop starts with.
template <class T, std::size_t Cap>
constexpr void emit_matvec_prefetch(T& t, const kernel_view<Cap>& kv) {
    t << "        const uint lanes = LANES_" << kv.index + 1 << ";\n"
      << "        const uint lane = gl_LocalInvocationID.x % lanes;\n"
      << "        const uint unit = vkf_item * (gl_WorkGroupSize.x / lanes) + gl_LocalInvocationID.x / lanes;\n";
    each_row_loop(t, kv, 3, [&](int r, int m, std::uint64_t cols, const bool (&products)[Cap], bool (&done)[Cap]) {
        const plan::segment& seg = kv.k.segments[r];
        const bool v4 = plan::vectorized(cols), wide = v4 && wide_loop(kv, m, cols, products);
        const std::uint64_t steps = wide ? cols / 8 : v4 ? cols / 4 : cols;
        t << "            for (uint j = lane, step = 0u; j < " << steps
          << "u && step < PREFETCH; j += lanes, ++step) {\n";
        for (int n = m; n < kv.size(); ++n) {
            if (!products[n] || kv[kv[n].b].rows != cols) continue;
            done[n] = true;
            for (int v = seg.pair_dim != 0 ? 0 : -1; v < (seg.pair_dim != 0 ? 2 : 0); ++v) {
                auto index = [&] { t << (v < 0 ? "i" : v == 0 ? "i0" : "i1") << " * " << steps << "u + j"; };
                if (wide) {
                    t << "                {\n                    const mat2x4 w = ";
                    load8_node(t, kv, kv[n].a, index);
                    t << ";\n                    vkf_sum += w[0] + w[1];\n                }\n";
                } else {
                    t << "                vkf_sum += ";
                    load_node(t, kv, kv[n].a, v4, index);
                    t << ";\n";
                }
            }
        }
        t << "            }\n";
    });
}

template <class T, std::size_t Cap>
constexpr void emit_row_loop(T& t, const kernel_view<Cap>& kv, int r, int m, std::uint64_t cols, const bool (&products)[Cap],
                             bool (&done)[Cap], bool staged) {
    const plan::segment& seg = kv.k.segments[r];
    const bool paired = seg.pair_dim != 0;
    const bool v4 = plan::vectorized(cols), wide = v4 && wide_loop(kv, m, cols, products);
    const std::uint64_t steps = wide ? cols / 8 : v4 ? cols / 4 : cols;
    bool need[Cap] = {};
    kv.loop_nodes(seg.root, cols, need);
    auto each = [&](auto f) {  // f(product, row variant: -1 none, 0 / 1 a rope pair's rows)
        for (int n = m; n < kv.size(); ++n) {
            if (!products[n] || kv[kv[n].b].rows != cols) continue;
            done[n] = true;
            if (!paired)
                f(n, -1);
            else
                for (int v = 0; v < 2; ++v) f(n, v);
        }
    };
    auto accumulator = [&](int n, int v) {
        t << 'a' << r << '_' << n << (v < 0 ? "" : v == 0 ? "_0" : "_1");
    };
    auto weight = [&](int n, int v, int u) {  // the register holding step u's weights of product n, row variant v
        t << 'w' << r << '_' << n << (v < 0 ? "" : v == 0 ? "_0" : "_1") << "_s" << u;
    };
    auto row = [&](int v) { t << (v < 0 ? "i" : v == 0 ? "i0" : "i1"); };
    auto step_index = [&](int u) -> std::string_view {
        constexpr std::string_view names[plan::max_matvec_unroll] = {"j", "j_1", "j_2", "j_3"};
        return names[u];
    };
    auto input = [&](int n, std::string_view at, const site& st) {  // the product's input at vec4 index `at`
        if (staged) {
            t << "vkf_x[" << kv.staged_offset(kv[n].b) << "u + " << at << ']';
        } else {
            ref(t, kv, kv[n].b, st);
        }
    };
    t << "                for (uint j = lane; j < " << steps << "u; j += VKFUSE_UNROLL * lanes) {"
      << (wide ? "  // j counts eights\n" : v4 ? "  // j counts vec4s\n" : "\n");
    // every step's loads first, so that they are in flight together; a step past the row reads its last step again
    // (in bounds, cached) and is not added
    for (int u = 0; u < plan::max_matvec_unroll; ++u) {
        if (u > 0)
            t << "#if VKFUSE_UNROLL > " << u << "\n"
              << "                    const uint " << step_index(u) << " = min(j + " << u << "u * lanes, " << steps - 1
              << "u);\n";
        each([&](int n, int v) {
            t << "                    const " << (wide ? "mat2x4 " : v4 ? "vec4 " : "float ");
            weight(n, v, u);
            t << " = ";
            auto index = [&] {
                row(v);
                t << " * " << steps << "u + " << step_index(u);
            };
            if (wide)
                load8_node(t, kv, kv[n].a, index);
            else
                load_node(t, kv, kv[n].a, v4, index);
            t << ";\n";
        });
        if (u > 0) t << "#endif\n";
    }
    for (int u = 0; u < plan::max_matvec_unroll; ++u) {
        if (u > 0)
            t << "#if VKFUSE_UNROLL > " << u << "\n"
              << "                    if (j + " << u << "u * lanes < " << steps << "u)\n";
        t << "                    {\n";
        if (!wide) {
            site st;
            st.width = v4 ? 4 : 1;
            st.index = step_index(u);
            if (!staged) emit_block(t, kv, need, 6, st, false);
            each([&](int n, int v) {
                t << "                        ";
                accumulator(n, v);
                t << " += ";
                if (v4) {
                    t << "dot(";
                    weight(n, v, u);
                    t << ", ";
                    input(n, step_index(u), st);
                    t << ");\n";
                } else {
                    weight(n, v, u);
                    t << " * ";
                    input(n, step_index(u), st);
                    t << ";\n";
                }
            });
        } else {
            for (int h = 0; h < 2; ++h) {
                site st;
                st.width = 4;
                st.index = h == 0 ? "j0" : "j1";
                t << "                        {\n                            const uint " << st.index << " = 2u * "
                  << step_index(u) << (h == 0 ? "" : " + 1u") << ";\n";
                if (!staged) emit_block(t, kv, need, 7, st, false);
                each([&](int n, int v) {
                    t << "                            ";
                    accumulator(n, v);
                    t << " += dot(";
                    weight(n, v, u);
                    t << '[' << h << "], ";
                    input(n, st.index, st);
                    t << ");\n";
                });
                t << "                        }\n";
            }
        }
        t << "                    }\n";
        if (u > 0) t << "#endif\n";
    }
    t << "                }\n";
}

template <class T, std::size_t Cap>
constexpr void emit_matvec(T& t, const kernel_view<Cap>& kv) {
    const auto& p = kv.p;
    // invocations per row: a specialization constant the runtime sets from the plan's lanes rule
    if (one_shader(p.how))
        t << "        const uint lanes = LANES_" << kv.index + 1 << ";\n";
    else
        t << "        const uint lanes = LANES;\n";
    const bool staged = kv.staged_floats() != 0;
    if (staged) emit_staged_inputs(t, kv);
    t << "        const uint lane = gl_LocalInvocationID.x % lanes;\n"
      << "        const uint rows_per_group = gl_WorkGroupSize.x / lanes;\n"
      << "        for (uint base = " << group_index(p) << " * rows_per_group; base < " << kv.k.units
      << "u; base += " << group_count(p) << " * rows_per_group) {\n"
      << "            const uint unit = base + gl_LocalInvocationID.x / lanes;\n";
    each_accumulator(kv, [&](int r, int m, std::string_view suffix) {
        t << "            float a" << r << '_' << m << suffix << " = 0.0;\n";
    });
    // dot products: per segment, one loop per distinct input length
    each_row_loop(t, kv, 4, [&](int r, int m, std::uint64_t cols, const bool (&products)[Cap], bool (&done)[Cap]) {
        if (staged && plan::vectorized(cols)) {  // staged inputs are the vectorised ones
            bool again[Cap] = {};
            for (int n = 0; n < kv.size(); ++n) again[n] = done[n];
            t << "#ifdef VKFUSE_STAGE_INPUTS\n";
            emit_row_loop(t, kv, r, m, cols, products, done, true);
            t << "#else\n";
            emit_row_loop(t, kv, r, m, cols, products, again, false);
            t << "#endif\n";
        } else {
            emit_row_loop(t, kv, r, m, cols, products, done, false);
        }
    });
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
