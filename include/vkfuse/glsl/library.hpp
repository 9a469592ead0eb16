// vkfuse/glsl/library.hpp — the shared memory and helper functions a shader declares, printed from the plan's
// shared_layout and helper_set: op helpers come from op_traits, the rest (reductions over a workgroup or over groups
// of invocations, online-softmax statistics) are written here once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/text.hpp"
#include "../ops/traits.hpp"
#include "../plan/records.hpp"

namespace vkfuse::glsl {

// `a + b` or `max(a, b)`: two values combined by binary op `o`.
template <class T>
constexpr void combine(T& t, op o, std::string_view a, std::string_view b) {
    const op_info& info = op_info_of(o);
    if (info.infix)
        t << a << info.glsl << b;
    else
        t << info.glsl << '(' << a << ", " << b << ')';
}

// vkf_workgroup_<combined>(v): v combined over the workgroup by op `o`, returned to every invocation.
template <class T>
constexpr void emit_workgroup_reduce(T& t, op o) {
    const op_info& info = op_info_of(o);
    t << "// The " << info.combined << " of v over the workgroup, returned to every invocation. Call from uniform "
         "control flow.\n"
      << "float vkf_workgroup_" << info.combined << "(float v) {\n"
      << "#ifdef VKFUSE_SUBGROUP_ARITHMETIC\n"
      << "    v = " << info.subgroup << "(v);\n"
      << "    if (subgroupElect()) vkf_scratch[gl_SubgroupID] = v;\n"
      << "    barrier();\n"
      << "    float total = vkf_scratch[0];\n"
      << "    for (uint s = 1u; s < gl_NumSubgroups; ++s) total = ";
    combine(t, o, "total", "vkf_scratch[s]");
    t << ";\n"
      << "#else\n"
      << "    const uint t = gl_LocalInvocationID.x;\n"
      << "    vkf_scratch[t] = v;\n"
      << "    barrier();\n"
      << "    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1u) {\n"
      << "        if (t < s) vkf_scratch[t] = ";
    combine(t, o, "vkf_scratch[t]", "vkf_scratch[t + s]");
    t << ";\n"
      << "        barrier();\n"
      << "    }\n"
      << "    const float total = vkf_scratch[0];\n"
      << "#endif\n"
      << "    barrier();  // the scratch is reused by the next reduction\n"
      << "    return total;\n"
      << "}\n\n";
}

// An op's helper function for float and vec4 ('$' in its text stands for the type).
template <class T>
constexpr void emit_op_function(T& t, const glsl_function& f) {
    for (std::string_view type : {std::string_view("float"), std::string_view("vec4")}) {
        const std::string_view text = type == "vec4" && !f.vec4_text.empty() ? f.vec4_text : f.text;
        for (char c : text) {
            if (c == '$')
                t << type;
            else
                t << c;
        }
    }
}

template <class T>
constexpr void emit_shared_memory(T& t, const plan::shared_layout& s) {
    if (s.scratch) t << "shared float vkf_scratch[gl_WorkGroupSize.x];\n";
    if (s.sums) t << "shared float vkf_sums[gl_WorkGroupSize.x];  // with vkf_scratch: softmax statistics being merged\n";
    if (s.query) t << "shared float vkf_q[" << s.query << "];                  // the query head being attended\n";
    if (s.weights) t << "shared float vkf_p[gl_WorkGroupSize.x];  // softmax weights of one block of positions\n";
    if (s.staged)
        t << "#ifdef VKFUSE_STAGE_INPUTS\n"
          << "shared vec4 vkf_x[" << s.staged / 4
          << "];  // a matvec phase's input vectors, evaluated once per work item\n"
          << "#endif\n";
    if (s.pool)
        t << "shared float vkf_shared[" << s.pool
          << "];  // temporaries: the whole program runs in this workgroup, so they stay on chip\n";
}

template <class T>
constexpr void emit_helpers(T& t, const plan::helper_set& h, const plan::shared_layout& s) {
    emit_shared_memory(t, s);
    if (h.any() || s.pool) t << '\n';
    if (h.shared_vec4)
        t << "vec4 vkf_shared_v4(uint at) {\n"
             "    return vec4(vkf_shared[4u * at], vkf_shared[4u * at + 1u], vkf_shared[4u * at + 2u], "
             "vkf_shared[4u * at + 3u]);\n"
             "}\n\n";
    for (std::size_t i = 0; i < op_count; ++i) {
        const op o = static_cast<op>(i);
        if (!h.has_op(o)) continue;
        const op_info& info = op_info_of(o);
        t << info.helper_comment;
        for (const glsl_function& f : info.helper)
            if (!f.text.empty()) emit_op_function(t, f);
        t << '\n';
    }
    for (std::size_t i = 0; i < op_count; ++i)
        if (h.has_combine(static_cast<op>(i))) emit_workgroup_reduce(t, static_cast<op>(i));
    if (h.segment_sum)
        t << "// The sum of v over each aligned group of `width` invocations (a power of two: the lanes of a matvec row, the\n"
             "// chunks of an attention output), returned to the whole group. Call from uniform control flow.\n"
             "float vkf_segment_sum(float v, uint width) {\n"
             "#ifdef VKFUSE_SUBGROUP_SHUFFLE\n"
             "    if (width < gl_SubgroupSize) {  // inside one subgroup: a butterfly, no shared memory\n"
             "        for (uint s = width / 2u; s > 0u; s >>= 1u) v += subgroupShuffleXor(v, s);\n"
             "        return v;\n"
             "    }\n"
             "#endif\n"
             "#ifdef VKFUSE_SUBGROUP_ARITHMETIC\n"
             "    if (width == gl_SubgroupSize) return subgroupAdd(v);\n"
             "    if (width > gl_SubgroupSize) {  // a group spans several subgroups: add each, then their sums\n"
             "        v = subgroupAdd(v);\n"
             "        if (subgroupElect()) vkf_scratch[gl_SubgroupID] = v;\n"
             "        barrier();\n"
             "        const uint per_group = width / gl_SubgroupSize;\n"
             "        const uint first = gl_LocalInvocationID.x / width * per_group;\n"
             "        float total = vkf_scratch[first];\n"
             "        for (uint s = 1u; s < per_group; ++s) total += vkf_scratch[first + s];\n"
             "        barrier();\n"
             "        return total;\n"
             "    }\n"
             "#endif\n"
             "    const uint t = gl_LocalInvocationID.x;\n"
             "    const uint lane = t % width;\n"
             "    vkf_scratch[t] = v;\n"
             "    barrier();\n"
             "    for (uint s = width / 2u; s > 0u; s >>= 1u) {\n"
             "        if (lane < s) vkf_scratch[t] += vkf_scratch[t + s];\n"
             "        barrier();\n"
             "    }\n"
             "    const float total = vkf_scratch[t - lane];\n"
             "    barrier();\n"
             "    return total;\n"
             "}\n\n";
    if (h.softmax_stats)
        t << "// Online-softmax statistics (m, l): the largest score m and the sum l of exp(score - m). Merging two keeps\n"
             "// both sums exact relative to the larger maximum; a score of -inf (a position past the end) counts for\n"
             "// nothing.\n"
             "vec2 vkf_softmax_merge(vec2 a, vec2 b) {\n"
             "    const float m = max(a.x, b.x);\n"
             "    const float none = uintBitsToFloat(0xff800000u);\n"
             "    return vec2(m, (a.x == none ? 0.0 : a.y * exp(a.x - m)) + (b.x == none ? 0.0 : b.y * exp(b.x - m)));\n"
             "}\n\n"
             "// The statistics of one block of scores over each aligned group of `width` invocations (a power of two: an\n"
             "// attention head's team), returned to the whole group. Call from uniform control flow.\n"
             "vec2 vkf_softmax_block(float s, uint width) {\n"
             "    const float none = uintBitsToFloat(0xff800000u);\n"
             "#ifdef VKFUSE_SUBGROUP_SHUFFLE\n"
             "    if (width < gl_SubgroupSize) {\n"
             "        vec2 r = vec2(s, s == none ? 0.0 : 1.0);\n"
             "        for (uint d = width / 2u; d > 0u; d >>= 1u) r = vkf_softmax_merge(r, subgroupShuffleXor(r, d));\n"
             "        return r;\n"
             "    }\n"
             "#endif\n"
             "#ifdef VKFUSE_SUBGROUP_ARITHMETIC\n"
             "    if (width >= gl_SubgroupSize) {\n"
             "        const float m = subgroupMax(s);\n"
             "        const float l = subgroupAdd(s == none ? 0.0 : exp(s - m));\n"
             "        if (width == gl_SubgroupSize) return vec2(m, l);\n"
             "        if (subgroupElect()) {\n"
             "            vkf_scratch[gl_SubgroupID] = m;\n"
             "            vkf_sums[gl_SubgroupID] = l;\n"
             "        }\n"
             "        barrier();\n"
             "        const uint per_group = width / gl_SubgroupSize;\n"
             "        const uint first = gl_LocalInvocationID.x / width * per_group;\n"
             "        vec2 r = vec2(vkf_scratch[first], vkf_sums[first]);\n"
             "        for (uint k = 1u; k < per_group; ++k)\n"
             "            r = vkf_softmax_merge(r, vec2(vkf_scratch[first + k], vkf_sums[first + k]));\n"
             "        barrier();\n"
             "        return r;\n"
             "    }\n"
             "#endif\n"
             "    const uint t = gl_LocalInvocationID.x;\n"
             "    const uint lane = t % width;\n"
             "    vkf_scratch[t] = s;\n"
             "    vkf_sums[t] = s == none ? 0.0 : 1.0;\n"
             "    barrier();\n"
             "    for (uint d = width / 2u; d > 0u; d >>= 1u) {\n"
             "        if (lane < d) {\n"
             "            const vec2 r = vkf_softmax_merge(vec2(vkf_scratch[t], vkf_sums[t]),\n"
             "                                             vec2(vkf_scratch[t + d], vkf_sums[t + d]));\n"
             "            vkf_scratch[t] = r.x;\n"
             "            vkf_sums[t] = r.y;\n"
             "        }\n"
             "        barrier();\n"
             "    }\n"
             "    const vec2 r = vec2(vkf_scratch[t - lane], vkf_sums[t - lane]);\n"
             "    barrier();\n"
             "    return r;\n"
             "}\n\n";
}

} // namespace vkfuse::glsl
