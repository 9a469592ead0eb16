// vkfuse/glsl/emit.hpp — GLSL 450 compute source for one kernel of a plan.
//
// Emission runs in fixed passes — header, bindings, push constants, shared memory, helpers, main — and names
// everything by position (node n is `v<n>`, its temporary buffer `t<n>`; placeholders are `p_<name>`), so one
// expression type always yields byte-identical text. Each pass is an overload on the text sink, run twice by
// build_text (count, then write).
//
// Device facts the text cannot know at C++ compile time are left to the pipeline: the workgroup size and the
// invocations per matvec row (LANES) are specialization constants, and the subgroup path is chosen by a
// preprocessor symbol the runtime defines when the device supports subgroup arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../core/text.hpp"
#include "../plan/kernels.hpp"

namespace vkfuse::glsl {

namespace detail {

using plan::kernel_kind;
using plan::node;
using plan::node_kind;

// Helper functions a kernel may need, as bits.
enum helper : std::uint32_t {
    helper_tanh = 1u << 0,
    helper_sigmoid = 1u << 1,
    helper_silu = 1u << 2,
    helper_gelu = 1u << 3,
    helper_workgroup_sum = 1u << 4,
    helper_workgroup_max = 1u << 5,
    helper_row_sum = 1u << 6,
};

template <std::size_t Cap>
struct kernel_view {
    const plan::program_plan<Cap>& p;
    const plan::kernel_plan<Cap>& k;
    bool nodes[Cap] = {};  // what the kernel evaluates or reads

    constexpr kernel_view(const plan::program_plan<Cap>& plan_, int index) : p(plan_), k(plan_.kernels[index]) {
        plan::detail::mark_kernel_nodes(p, k.root, nodes);
    }
    constexpr const node& operator[](int n) const { return p.g[n]; }
    constexpr int size() const { return p.g.size; }
    constexpr bool reads_memory(int n) const { return p.stops_at(n, k.root); }

    constexpr std::uint32_t helpers() const {
        std::uint32_t h = 0;
        for (int n = 0; n < size(); ++n) {
            if (!nodes[n] || reads_memory(n)) continue;
            const node& x = p.g[n];
            if (x.kind == node_kind::unary) {
                if (x.operation == op::tanh) h |= helper_tanh;
                if (x.operation == op::sigmoid) h |= helper_sigmoid;
                if (x.operation == op::silu) h |= helper_silu;
                if (x.operation == op::gelu) h |= helper_gelu | helper_tanh;
            }
            if (x.kind == node_kind::reduce)
                h |= x.operation == op::reduce_max ? helper_workgroup_max : helper_workgroup_sum;
        }
        if (k.kind == kernel_kind::matvec) h |= helper_row_sum;
        return h;
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------------

template <class T, std::size_t Cap>
constexpr void buffer_name(T& t, const plan::program_plan<Cap>& p, int b) {
    const plan::buffer_slot& s = p.buffers[b];
    if (s.temporary)
        t << 't' << s.node;
    else
        t << "p_" << s.name.view();
}

// A node's value as an operand: constants inline as exact literals, everything else by its SSA name.
template <class T, std::size_t Cap>
constexpr void ref(T& t, const plan::program_plan<Cap>& p, int n) {
    const node& x = p.g[n];
    if (x.kind == node_kind::constant) {
        if (x.value < 0.0f)
            t << '(' << float_literal{x.value} << ')';
        else
            t << float_literal{x.value};
    } else {
        t << 'v' << n;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Element blocks: the statements that compute some vector nodes at index `i`, in topological order.
// ---------------------------------------------------------------------------------------------------------------

// Nodes a block must emit to have `n` at index i. Scalars (reductions and what is computed from them) and matvec
// results are values the block is handed, computed once before it; constants are written inline; memory is read
// where the kernel stops.
template <std::size_t Cap>
constexpr void collect(const kernel_view<Cap>& kv, int n, bool (&need)[Cap]) {
    if (need[n]) return;
    const node& x = kv[n];
    if (x.kind == node_kind::constant || x.rank == 0) return;
    if (x.kind == node_kind::matvec && !kv.reads_memory(n)) return;
    need[n] = true;
    if (kv.reads_memory(n)) return;
    if (x.a >= 0) collect(kv, x.a, need);
    if (x.b >= 0) collect(kv, x.b, need);
}

template <class T>
constexpr void unary_call(T& t, op o) {
    switch (o) {
    case op::neg: t << '-'; break;
    case op::exp: t << "exp"; break;
    case op::log: t << "log"; break;
    case op::sqrt: t << "sqrt"; break;
    case op::rsqrt: t << "inversesqrt"; break;
    case op::tanh: t << "vkf_tanh"; break;
    case op::sigmoid: t << "vkf_sigmoid"; break;
    case op::silu: t << "vkf_silu"; break;
    case op::gelu: t << "vkf_gelu"; break;
    default: break;
    }
}

// `float vN = ...;` — or, with width 4, `vec4 vN = ...;` computing elements 4i..4i+3 at once: vector reads go
// through the buffer's vec4 view, and scalars broadcast, which GLSL's operators and built-ins do by themselves.
template <class T, std::size_t Cap>
constexpr void emit_statement(T& t, const kernel_view<Cap>& kv, int n, int indent, int width = 1) {
    const auto& p = kv.p;
    const node& x = kv[n];
    t.repeat("    ", indent) << (width == 4 && x.rank != 0 ? "vec4 v" : "float v") << n << " = ";
    if (kv.reads_memory(n)) {
        buffer_name(t, p, p.buffer_of_node[n]);
        t << (x.rank == 0 ? "[0]" : width == 4 ? "_v4[i]" : "[i]");
    } else if (x.kind == node_kind::leaf) {  // a param
        t << "params.p_" << x.name.view();
    } else if (x.kind == node_kind::unary) {
        unary_call(t, x.operation);
        t << '(';
        ref(t, p, x.a);
        t << ')';
    } else if (x.kind == node_kind::binary) {
        if (x.operation == op::max || x.operation == op::min) {
            // GLSL has max(vec4, float) but not max(float, vec4): put a scalar second (both are commutative).
            const bool swap = kv[x.a].rank == 0 && kv[x.b].rank != 0;
            t << (x.operation == op::max ? "max(" : "min(");
            ref(t, p, swap ? x.b : x.a);
            t << ", ";
            ref(t, p, swap ? x.a : x.b);
            t << ')';
        } else {
            ref(t, p, x.a);
            t << (x.operation == op::add ? " + " : x.operation == op::sub ? " - " : x.operation == op::mul ? " * " : " / ");
            ref(t, p, x.b);
        }
    }
    t << ";\n";
}

template <class T, std::size_t Cap>
constexpr void emit_block(T& t, const kernel_view<Cap>& kv, const bool (&need)[Cap], int indent, int width = 1) {
    for (int n = 0; n < kv.size(); ++n)
        if (need[n]) emit_statement(t, kv, n, indent, width);
}

// ---------------------------------------------------------------------------------------------------------------
// Matvec loops: one per distinct input length. A length divisible by 4 streams its matrices as vec4 (16-byte
// loads, the width memory systems move best) and evaluates its prologue 4 elements at a time.
// ---------------------------------------------------------------------------------------------------------------

template <std::size_t Cap>
constexpr bool is_kernel_matvec(const kernel_view<Cap>& kv, int n) {
    return kv.nodes[n] && kv[n].kind == node_kind::matvec && !kv.reads_memory(n);
}

constexpr bool vectorized(std::uint32_t cols) { return cols % 4 == 0; }

// The nodes the loop over inputs of length `cols` evaluates.
template <std::size_t Cap>
constexpr void collect_loop(const kernel_view<Cap>& kv, std::uint32_t cols, bool (&need)[Cap]) {
    for (int n = 0; n < kv.size(); ++n)
        if (is_kernel_matvec(kv, n) && kv[kv[n].b].rows == cols) collect(kv, kv[n].b, need);
}

// Buffers some vectorized loop reads through a vec4 view.
template <std::size_t Cap>
constexpr void vec4_buffers(const kernel_view<Cap>& kv, bool (&out)[Cap + 1]) {
    for (int m = 0; m < kv.size(); ++m) {
        if (!is_kernel_matvec(kv, m) || !vectorized(kv[kv[m].b].rows)) continue;
        out[kv.p.buffer_of_node[kv[m].a]] = true;
        bool need[Cap] = {};
        collect_loop(kv, kv[kv[m].b].rows, need);
        for (int n = 0; n < kv.size(); ++n)
            if (need[n] && kv.reads_memory(n)) out[kv.p.buffer_of_node[n]] = true;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Passes
// ---------------------------------------------------------------------------------------------------------------

template <class T, std::size_t Cap>
constexpr void emit_header(T& t, const kernel_view<Cap>& kv, int index) {
    t << "#version 450\n"
      << "// Generated by vkfuse: kernel " << index + 1 << " of " << kv.p.kernel_count << ", "
      << (kv.k.kind == kernel_kind::matvec ? "matvec over " : "elementwise over ") << kv.k.items
      << (kv.k.kind == kernel_kind::matvec ? " rows.\n" : " elements.\n")
      << "#ifdef VKFUSE_SUBGROUP_ARITHMETIC\n"
         "#extension GL_KHR_shader_subgroup_arithmetic : require\n"
         "#endif\n\n"
         "layout(local_size_x_id = 0) in;                // workgroup size: a power of two, set per device\n"
         "layout(constant_id = 1) const uint LANES = 32u;  // invocations per matvec row: a power of two\n\n";
}

template <class T, std::size_t Cap>
constexpr void emit_bindings(T& t, const kernel_view<Cap>& kv) {
    const auto& p = kv.p;
    bool as_vec4[Cap + 1] = {};
    vec4_buffers(kv, as_vec4);
    for (int i = 0; i < kv.k.binding_count(); ++i) {
        const int b = kv.k.binding(i);
        const plan::buffer_slot& s = p.buffers[b];
        const bool written = i == kv.k.read_count;
        if (as_vec4[b]) {  // a second view of the same binding, for 16-byte loads
            t << "layout(set = 0, binding = " << i << ", std430) readonly restrict buffer Binding" << i
              << "v4 { vec4 ";
            buffer_name(t, p, b);
            t << "_v4[]; };\n";
        }
        t << "layout(set = 0, binding = " << i << ", std430) " << (written ? "writeonly" : "readonly")
          << " restrict buffer Binding" << i << " { float ";
        buffer_name(t, p, b);
        t << "[]; };  // ";
        if (s.temporary)
            t << "temporary";
        else
            t << (s.slot_role == role::input ? "input" : s.slot_role == role::weight ? "weight" : "output") << ' '
              << s.name.view();
        t << ": " << dtype_name(s.dtype);
        const node& n = p.g[s.node];
        if (!s.temporary && n.rank == 2)
            t << '[' << n.rows << ", " << n.cols << "]\n";
        else
            t << '[' << s.elements << "]\n";
    }
    t << '\n';
}

template <class T, std::size_t Cap>
constexpr void emit_push_constants(T& t, const kernel_view<Cap>& kv) {
    const auto& p = kv.p;
    if (p.param_count == 0) return;
    t << "layout(push_constant) uniform Params {\n";
    for (int i = 0; i < p.param_count; ++i) t << "    float p_" << p.g[p.params[i]].name.view() << ";\n";
    t << "} params;\n\n";
}

// `a + b` or `max(a, b)`
template <class T>
constexpr void combine(T& t, bool is_max, std::string_view a, std::string_view b) {
    if (is_max)
        t << "max(" << a << ", " << b << ')';
    else
        t << a << " + " << b;
}

template <class T>
constexpr void emit_workgroup_reduce(T& t, bool is_max) {
    const std::string_view name = is_max ? "max" : "sum";
    t << "// The " << name << " of v over the workgroup, returned to every invocation. Call from uniform control flow.\n"
      << "float vkf_workgroup_" << name << "(float v) {\n"
      << "#ifdef VKFUSE_SUBGROUP_ARITHMETIC\n"
      << "    v = " << (is_max ? "subgroupMax" : "subgroupAdd") << "(v);\n"
      << "    if (subgroupElect()) vkf_scratch[gl_SubgroupID] = v;\n"
      << "    barrier();\n"
      << "    float total = vkf_scratch[0];\n"
      << "    for (uint s = 1u; s < gl_NumSubgroups; ++s) total = ";
    combine(t, is_max, "total", "vkf_scratch[s]");
    t << ";\n"
      << "#else\n"
      << "    const uint t = gl_LocalInvocationID.x;\n"
      << "    vkf_scratch[t] = v;\n"
      << "    barrier();\n"
      << "    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1u) {\n"
      << "        if (t < s) vkf_scratch[t] = ";
    combine(t, is_max, "vkf_scratch[t]", "vkf_scratch[t + s]");
    t << ";\n"
      << "        barrier();\n"
      << "    }\n"
      << "    const float total = vkf_scratch[0];\n"
      << "#endif\n"
      << "    barrier();  // the scratch is reused by the next reduction\n"
      << "    return total;\n"
      << "}\n\n";
}

template <class T, std::size_t Cap>
constexpr void emit_helpers(T& t, const kernel_view<Cap>& kv) {
    const std::uint32_t h = kv.helpers();
    if (h & (helper_workgroup_sum | helper_workgroup_max | helper_row_sum))
        t << "shared float vkf_scratch[gl_WorkGroupSize.x];\n\n";
    // Each math helper comes as float and vec4 overloads: the vectorized matvec loops call the second.
    if (h & helper_tanh) {
        t << "// Clamped: tanh(15) is 1 in f32, and some drivers evaluate tanh through exp, which overflows.\n";
        for (std::string_view type : {"float", "vec4"})
            t << type << " vkf_tanh(" << type << " x) { return tanh(clamp(x, -15.0, 15.0)); }\n";
        t << '\n';
    }
    if (h & helper_sigmoid) {
        for (std::string_view type : {"float", "vec4"})
            t << type << " vkf_sigmoid(" << type << " x) { return 1.0 / (1.0 + exp(-x)); }\n";
        t << '\n';
    }
    if (h & helper_silu) {
        for (std::string_view type : {"float", "vec4"})
            t << type << " vkf_silu(" << type << " x) { return x / (1.0 + exp(-x)); }\n";
        t << '\n';
    }
    if (h & helper_gelu) {
        t << "// GELU, tanh form; " << float_literal{0.7978845608028654f} << " is sqrt(2/pi).\n";
        for (std::string_view type : {"float", "vec4"})
            t << type << " vkf_gelu(" << type << " x) {\n    return 0.5 * x * (1.0 + vkf_tanh("
              << float_literal{0.7978845608028654f} << " * (x + " << float_literal{0.044715f}
              << " * x * x * x)));\n}\n";
        t << '\n';
    }
    if (h & helper_workgroup_sum) emit_workgroup_reduce(t, false);
    if (h & helper_workgroup_max) emit_workgroup_reduce(t, true);
    if (h & helper_row_sum)
        t << "// Sum over the LANES invocations that share one matvec row. Call from uniform control flow.\n"
             "float vkf_row_sum(float v) {\n"
             "#ifdef VKFUSE_SUBGROUP_ARITHMETIC\n"
             "    if (gl_SubgroupSize == LANES) return subgroupAdd(v);\n"
             "    if (gl_SubgroupSize < LANES) {  // a row spans several subgroups: add each, then their sums\n"
             "        v = subgroupAdd(v);\n"
             "        if (subgroupElect()) vkf_scratch[gl_SubgroupID] = v;\n"
             "        barrier();\n"
             "        const uint per_row = LANES / gl_SubgroupSize;\n"
             "        const uint first = gl_LocalInvocationID.x / LANES * per_row;\n"
             "        float total = vkf_scratch[first];\n"
             "        for (uint s = 1u; s < per_row; ++s) total += vkf_scratch[first + s];\n"
             "        barrier();\n"
             "        return total;\n"
             "    }\n"
             "#endif\n"
             "    const uint t = gl_LocalInvocationID.x;\n"
             "    const uint lane = t % LANES;\n"
             "    vkf_scratch[t] = v;\n"
             "    barrier();\n"
             "    for (uint s = LANES / 2u; s > 0u; s >>= 1u) {\n"
             "        if (lane < s) vkf_scratch[t] += vkf_scratch[t + s];\n"
             "        barrier();\n"
             "    }\n"
             "    const float total = vkf_scratch[t - lane];\n"
             "    barrier();\n"
             "    return total;\n"
             "}\n\n";
}

// Every scalar the kernel needs, once per invocation and in topological order: reductions (each a loop over its
// vector, computed by every workgroup) and the scalar arithmetic on them (a softmax's sum can use its max).
template <class T, std::size_t Cap>
constexpr void emit_scalars(T& t, const kernel_view<Cap>& kv) {
    for (int r = 0; r < kv.size(); ++r) {
        const node& x = kv[r];
        if (!kv.nodes[r] || x.rank != 0 || x.kind == node_kind::constant) continue;
        if (x.kind != node_kind::reduce) {
            emit_statement(t, kv, r, 1);
            continue;
        }
        const std::uint32_t len = kv[x.a].rows;
        const bool is_max = x.operation == op::reduce_max;
        t << "    float v" << r << ";  // " << (is_max ? "max" : x.operation == op::mean ? "mean" : "sum")
          << " of v" << x.a << " over " << len << " elements, computed by every workgroup\n"
          << "    {\n"
          << "        float acc = " << (is_max ? "uintBitsToFloat(0xff800000u)" : "0.0") << ";\n"
          << "        for (uint i = gl_LocalInvocationID.x; i < " << len << "u; i += gl_WorkGroupSize.x) {\n";
        bool need[Cap] = {};
        collect(kv, x.a, need);
        emit_block(t, kv, need, 3);
        t << "            acc = " << (is_max ? "max(acc, " : "acc + (");
        ref(t, kv.p, x.a);
        t << ");\n        }\n"
          << "        v" << r << " = vkf_workgroup_" << (is_max ? "max" : "sum") << "(acc)";
        if (x.operation == op::mean) t << " / " << float_literal{static_cast<float>(len)};
        t << ";\n    }\n";
    }
}

template <class T, std::size_t Cap>
constexpr void emit_store(T& t, const kernel_view<Cap>& kv, int indent) {
    t.repeat("    ", indent);
    buffer_name(t, kv.p, kv.k.target);
    t << "[i] = ";
    ref(t, kv.p, kv.k.root);
    t << ";\n";
}

template <class T, std::size_t Cap>
constexpr void emit_elementwise_main(T& t, const kernel_view<Cap>& kv) {
    t << "    const uint i = gl_GlobalInvocationID.x;\n"
      << "    if (i < " << kv.k.items << "u) {\n";
    bool need[Cap] = {};
    collect(kv, kv.k.root, need);
    emit_block(t, kv, need, 2);
    emit_store(t, kv, 2);
    t << "    }\n";
}

template <class T, std::size_t Cap>
constexpr void emit_matvec_main(T& t, const kernel_view<Cap>& kv) {
    const auto& p = kv.p;
    const std::uint32_t rows = kv.k.items;
    t << "    const uint lane = gl_LocalInvocationID.x % LANES;\n"
      << "    const uint row = gl_WorkGroupID.x * (gl_WorkGroupSize.x / LANES) + gl_LocalInvocationID.x / LANES;\n";
    for (int m = 0; m < kv.size(); ++m)
        if (is_kernel_matvec(kv, m)) t << "    float acc" << m << " = 0.0;\n";
    t << "    if (row < " << rows << "u) {\n";
    // One loop per distinct input length; each streams its matrices' rows once, computing the shared input on the
    // fly (the prologue) so no workgroup waits for another.
    bool done[Cap] = {};
    for (int m = 0; m < kv.size(); ++m) {
        if (!is_kernel_matvec(kv, m) || done[m]) continue;
        const std::uint32_t cols = kv[kv[m].b].rows;
        const bool v4 = vectorized(cols);
        const std::uint32_t steps = v4 ? cols / 4 : cols;
        bool need[Cap] = {};
        collect_loop(kv, cols, need);
        t << "        for (uint i = lane; i < " << steps << "u; i += LANES) {"
          << (v4 ? "  // i counts vec4s\n" : "\n");
        emit_block(t, kv, need, 3, v4 ? 4 : 1);
        for (int n = m; n < kv.size(); ++n) {
            if (!is_kernel_matvec(kv, n) || kv[kv[n].b].rows != cols) continue;
            done[n] = true;
            t << "            acc" << n << " += ";
            if (v4) t << "dot(";
            buffer_name(t, p, p.buffer_of_node[kv[n].a]);
            t << (v4 ? "_v4[row * " : "[row * ") << steps << "u + i]" << (v4 ? ", " : " * ");
            ref(t, p, kv[n].b);
            t << (v4 ? ");\n" : ";\n");
        }
        t << "        }\n";
    }
    t << "    }\n";
    for (int m = 0; m < kv.size(); ++m)
        if (is_kernel_matvec(kv, m)) t << "    const float v" << m << " = vkf_row_sum(acc" << m << ");\n";
    t << "    if (lane == 0u && row < " << rows << "u) {\n"
      << "        const uint i = row;\n";
    bool need[Cap] = {};
    collect(kv, kv.k.root, need);
    emit_block(t, kv, need, 2);
    emit_store(t, kv, 2);
    t << "    }\n";
}

} // namespace detail

// The GLSL of kernel `index` of plan `p`, into text `t`.
template <class T, std::size_t Cap>
constexpr void emit_kernel(T& t, const plan::program_plan<Cap>& p, int index) {
    const detail::kernel_view<Cap> kv(p, index);
    detail::emit_header(t, kv, index);
    detail::emit_bindings(t, kv);
    detail::emit_push_constants(t, kv);
    detail::emit_helpers(t, kv);
    t << "void main() {\n";
    detail::emit_scalars(t, kv);
    if (kv.k.kind == plan::kernel_kind::matvec)
        detail::emit_matvec_main(t, kv);
    else
        detail::emit_elementwise_main(t, kv);
    t << "}\n";
}

} // namespace vkfuse::glsl
