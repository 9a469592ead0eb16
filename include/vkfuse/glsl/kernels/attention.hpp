// vkfuse/glsl/kernels/attention.hpp — single-token attention over a KV cache: scores, an online softmax over blocks
// of positions, the weighted sum of values. Two geometries: one workgroup per query head (a dispatch of its own), and
// every head at once in teams of invocations (a phase of a single dispatch).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../statements.hpp"

namespace vkfuse::glsl {

// fused and per_op: `splits` workgroups per query head (plan::attention_splits), each over a contiguous share of the
// positions: scores for a block of positions at a time, an online softmax across blocks, and the weighted sum of
// values, for which the workgroup is `chunks` groups of `span` invocations (span: head_dim rounded up to a power of
// two): invocation d of a group accumulates output element d over every chunks-th position of the block, so a
// group reads whole value rows, and the groups' sums are added at the end. With one share the
// workgroup writes the head's output; with several each leaves its unnormalised sum, maximum and sum of weights in
// vkf_partials, and the last of the head's workgroups to finish (counted in vkf_arrivals) merges them.
template <class T, std::size_t Cap>
constexpr void emit_attention(T& t, const kernel_view<Cap>& kv) {
    const int root = kv.k.segments[0].root;
    const node& x = kv[root];
    const std::uint32_t heads = kv.k.heads, group = kv.k.heads / kv.k.kv_heads, hd = kv.k.head_dim,
                        width = kv.k.kv_heads * kv.k.head_dim, splits = kv.k.splits;
    const bool split = splits > 1;
    const std::uint64_t partial = hd + 2u;  // floats per partial: the sums, the maximum, the sum of weights
    auto read = [&](int n, auto index) { load_node(t, kv, n, false, index); };
    auto store = [&](std::string_view value) {
        t << "if (tid < " << hd << "u) ";
        open_node_access(t, kv, root, false);
        t << "head * " << hd << "u + tid] = " << value << ";\n";
    };
    t << "        const uint tid = gl_LocalInvocationID.x;\n"
      << "        const uint span = " << plan::ceil_power_of_two(hd) << "u, chunks = gl_WorkGroupSize.x / span;\n"
      << "        const uint element = tid % span, chunk = tid / span;  // of the weighted sum of values\n"
      << "        const uint positions = ";
    ref(t, kv, x.d, site{});
    t << " + 1u;\n";
    if (split)
        t << "        // the shares: at least " << plan::attention_split_positions << " positions each, at most " << splits
          << " per head\n"
          << "        const uint shares = min(" << splits << "u, (positions + "
          << plan::attention_split_positions - 1 << "u) / " << plan::attention_split_positions << "u);\n"
          << "        const uint share_length = (positions + shares - 1u) / shares;\n"
          << "        for (uint unit = " << group_index(kv.p) << "; unit < " << heads * splits << "u; unit += "
          << group_count(kv.p) << ") {\n"
          << "            const uint head = unit / " << splits << "u, share = unit % " << splits << "u;\n"
          << "            if (share >= shares) continue;  // no positions left for it (the same for the whole workgroup)\n"
          << "            const uint first = share * share_length, last = min(positions, first + share_length);\n";
    else
        t << "        for (uint head = " << group_index(kv.p) << "; head < " << heads << "u; head += "
          << group_count(kv.p) << ") {\n"
          << "            const uint first = 0u, last = positions;\n";
    t << "            const uint kv_base = head / " << group << "u * " << hd
      << "u;  // query head h reads KV head h / (H / KV)\n"
      << "            for (uint d = tid; d < " << hd << "u; d += gl_WorkGroupSize.x) vkf_q[d] = ";
    read(x.a, [&] { t << "head * " << hd << "u + d"; });
    t << ";\n"
      << "            barrier();\n"
      << "            float m = uintBitsToFloat(0xff800000u), l = 0.0, o = 0.0;\n"
      << "            for (uint start = first; start < last; start += gl_WorkGroupSize.x) {\n"
      << "                const uint at = start + tid;\n"
      << "                float s = uintBitsToFloat(0xff800000u);\n"
      << "                if (at < last) {\n"
      << "                    s = 0.0;\n"
      << "                    for (uint d = 0u; d < " << hd << "u; ++d) s += vkf_q[d] * ";
    read(x.b, [&] { t << "at * " << width << "u + kv_base + d"; });
    t << ";\n"
      << "                    s *= " << float_literal{1.0f / __builtin_sqrtf(static_cast<float>(hd))}
      << ";  // 1/sqrt(head_dim)\n"
      << "                }\n"
      << "                const float block_max = vkf_workgroup_max(s);\n"
      << "                const float new_m = max(m, block_max);\n"
      << "                const float w = at < last ? exp(s - new_m) : 0.0;\n"
      << "                vkf_p[tid] = w;\n"
      << "                const float block_sum = vkf_workgroup_sum(w);  // its barriers publish vkf_p too\n"
      << "                const float rescale = exp(m - new_m);\n"
      << "                l = l * rescale + block_sum;\n"
      << "                o *= rescale;\n"
      << "                if (element < " << hd << "u) {\n"
      << "                    const uint count = min(gl_WorkGroupSize.x, last - start);\n"
      << "                    for (uint j = chunk; j < count; j += chunks) o += vkf_p[j] * ";
    read(x.c, [&] { t << "(start + j) * " << width << "u + kv_base + element"; });
    t << ";\n"
      << "                }\n"
      << "                m = new_m;\n"
      << "                barrier();  // vkf_p is refilled by the next block\n"
      << "            }\n"
      << "            vkf_scratch[tid] = o;  // the chunks' sums, added by the first span invocations\n"
      << "            barrier();\n"
      << "            if (tid < " << hd << "u) {\n"
      << "                o = 0.0;\n"
      << "                for (uint c = 0u; c < chunks; ++c) o += vkf_scratch[c * span + tid];\n"
      << "            }\n";
    if (!split) {
        t << "            ";
        store("o / l");
        t << "            barrier();  // vkf_q is refilled by the next head\n"
          << "        }\n";
        return;
    }
    t << "            if (shares == 1u) {\n"
      << "                ";
    store("o / l");
    t << "            } else {\n"
      << "                const uint slot = unit * " << partial << "u;  // this share's partial\n"
      << "                if (tid < " << hd << "u) vkf_partials[slot + tid] = o;\n"
      << "                if (tid == 0u) {\n"
      << "                    vkf_partials[slot + " << hd << "u] = m;\n"
      << "                    vkf_partials[slot + " << hd + 1 << "u] = l;\n"
      << "                }\n"
      << "                memoryBarrierBuffer();\n"
      << "                barrier();  // every invocation's partial is written before the count says so\n"
      << "                if (tid == 0u) vkf_last = atomicAdd(vkf_arrivals[head], 1u) == shares - 1u ? 1u : 0u;\n"
      << "                barrier();\n"
      << "                if (vkf_last != 0u) {  // every other share of this head is in vkf_partials: merge\n"
      << "                    memoryBarrierBuffer();\n"
      << "                    const uint row = head * " << splits * partial << "u;\n"
      << "                    float all_m = uintBitsToFloat(0xff800000u);\n"
      << "                    for (uint k = 0u; k < shares; ++k) all_m = max(all_m, vkf_partials[row + k * " << partial
      << "u + " << hd << "u]);\n"
      << "                    float all_l = 0.0, all_o = 0.0;\n"
      << "                    for (uint k = 0u; k < shares; ++k) {\n"
      << "                        const float scale = exp(vkf_partials[row + k * " << partial << "u + " << hd
      << "u] - all_m);\n"
      << "                        all_l += vkf_partials[row + k * " << partial << "u + " << hd + 1 << "u] * scale;\n"
      << "                        if (tid < " << hd << "u) all_o += vkf_partials[row + k * " << partial
      << "u + tid] * scale;\n"
      << "                    }\n"
      << "                    ";
    store("all_o / all_l");
    t << "                    if (tid == 0u) vkf_arrivals[head] = 0u;  // counted from zero again next run\n"
      << "                }\n"
      << "            }\n"
      << "            barrier();  // vkf_q and vkf_last are refilled by the next unit\n"
      << "        }\n";
}

// single_dispatch: every query head at once. The workgroup splits into teams (a power of two of invocations), one
// head each. A team scores a block of `team` positions at a time, one per invocation, and keeps an online softmax
// across blocks; for the weighted sum of values each output element gets `chunks` invocations (a power of two)
// that take every chunks-th position of the block, and the chunk sums are added at the end (inside a subgroup
// when they fit in one). A head wider than its team is done in slices of `span` elements.
template <class T, std::size_t Cap>
constexpr void emit_team_attention(T& t, const kernel_view<Cap>& kv) {
    const int root = kv.k.segments[0].root;
    const node& x = kv[root];
    const std::uint32_t heads = kv.k.heads, group = kv.k.heads / kv.k.kv_heads, hd = kv.k.head_dim,
                        width = kv.k.kv_heads * kv.k.head_dim;
    auto read = [&](int n, auto index) { load_node(t, kv, n, false, index); };
    t << "        const uint tid = gl_LocalInvocationID.x;\n"
      << "        const uint team = max(gl_WorkGroupSize.x / " << plan::ceil_power_of_two(heads)
      << "u, 1u);  // invocations per head\n"
      << "        const uint teams = gl_WorkGroupSize.x / team;\n"
      << "        const uint member = tid % team;\n"
      << "        const uint span = min(team, " << plan::ceil_power_of_two(hd) << "u);  // output elements per slice\n"
      << "        const uint chunks = team / span;  // invocations per output element\n"
      << "        const uint positions = ";
    ref(t, kv, x.d, site{});
    t << " + 1u;\n"
      << "        for (uint head0 = 0u; head0 < " << heads << "u; head0 += teams) {\n"
      << "            const uint head = head0 + tid / team;\n"
      << "            const bool live = head < " << heads << "u;\n"
      << "            const uint kv_base = head / " << group << "u * " << hd
      << "u;  // query head h reads KV head h / (H / KV)\n"
      << "            for (uint d0 = 0u; d0 < " << hd << "u; d0 += span) {\n"
      << "                const uint d = d0 + member / chunks, chunk = member % chunks;\n"
      << "                const bool sums = live && d < " << hd << "u;\n"
      << "                float m = uintBitsToFloat(0xff800000u), l = 0.0, o = 0.0;\n"
      << "                for (uint start = 0u; start < positions; start += team) {\n"
      << "                    const uint at = start + member;\n"
      << "                    float s = uintBitsToFloat(0xff800000u);\n"
      << "                    if (live && at < positions) {\n"
      << "                        s = 0.0;\n"
      << "                        for (uint e = 0u; e < " << hd << "u; ++e) s += ";
    read(x.a, [&] { t << "head * " << hd << "u + e"; });
    t << " * ";
    read(x.b, [&] { t << "at * " << width << "u + kv_base + e"; });
    t << ";\n"
      << "                        s *= " << float_literal{1.0f / __builtin_sqrtf(static_cast<float>(hd))}
      << ";  // 1/sqrt(head_dim)\n"
      << "                    }\n"
      << "                    const vec2 block = vkf_softmax_block(s, team);\n"
      << "                    const float new_m = max(m, block.x);\n"
      << "                    const float rescale = m == new_m ? 1.0 : exp(m - new_m);\n"
      << "                    const float to_new = block.x == new_m ? 1.0 : exp(block.x - new_m);\n"
      << "                    vkf_p[tid] = s == uintBitsToFloat(0xff800000u) ? 0.0 : exp(s - new_m);\n"
      << "                    l = l * rescale + block.y * to_new;\n"
      << "                    o *= rescale;\n"
      << "                    m = new_m;\n"
      << "                    barrier();  // the block's weights are published\n"
      << "                    if (sums) {\n"
      << "                        const uint count = min(team, positions - start);\n"
      << "                        for (uint j = chunk; j < count; j += chunks) o += vkf_p[tid - member + j] * ";
    read(x.c, [&] { t << "(start + j) * " << width << "u + kv_base + d"; });
    t << ";\n"
      << "                    }\n"
      << "                    barrier();  // vkf_p is refilled by the next block\n"
      << "                }\n"
      << "                o = vkf_segment_sum(o, chunks);\n"
      << "                if (sums && chunk == 0u) ";
    open_node_access(t, kv, root, false);
    t << "head * " << hd << "u + d] = o / l;\n"
      << "            }\n"
      << "        }\n";
}

} // namespace vkfuse::glsl
