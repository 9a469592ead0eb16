// vkfuse/glsl/emit.hpp — GLSL 450 compute source for the kernels of a plan.
//
// Emission runs in fixed passes — header, bindings, push constants, shared memory and helpers, main — and names
// everything by position (node n is `v<n>`, its temporary buffer `t<n>`; placeholders and named results are
// `p_<name>`), so one program type always yields byte-identical text. Every pass is a function of a text sink, run
// twice by build_text (count, then write).
//
// A kernel's body is a grid-stride loop over its work units, so the same body serves a dispatch of many workgroups
// (one trip each) and a phase of a single-workgroup program (many trips). Device facts the text cannot know at C++
// compile time are left to the pipeline: the workgroup size and the invocations per matvec row (LANES) are
// specialization constants (a single-dispatch phase derives its own row width from the workgroup size), and the
// subgroup paths are chosen by preprocessor symbols the runtime defines when the device supports subgroup
// arithmetic and shuffles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/text.hpp"
#include "../plan/kernels.hpp"

namespace vkfuse::glsl {

namespace detail {

using plan::kernel_kind;
using plan::node;
using plan::node_kind;

// Helper functions a shader may need, as bits.
enum helper : std::uint32_t {
    helper_tanh = 1u << 0,
    helper_sigmoid = 1u << 1,
    helper_silu = 1u << 2,
    helper_gelu = 1u << 3,
    helper_gelu_erf = 1u << 4,
    helper_workgroup_sum = 1u << 5,
    helper_workgroup_max = 1u << 6,
    helper_segment_sum = 1u << 7,      // sums over aligned groups of invocations: matvec rows, attention chunks
    helper_attention = 1u << 8,        // one workgroup per head: the query in shared memory, workgroup reductions
    helper_team_attention = 1u << 9,   // every head at once (single_dispatch): softmax statistics per team
};

// ---------------------------------------------------------------------------------------------------------------
// What one kernel (one phase) computes, and how its units map to rows.
// ---------------------------------------------------------------------------------------------------------------

template <std::size_t Cap>
struct kernel_view {
    const plan::program_plan<Cap>& p;
    const plan::kernel_plan<Cap>& k;
    int index;
    bool packed;           // every buffer is a range of one binding, vkf_arena
    bool nodes[Cap] = {};  // what the kernel evaluates or reads, over all its roots

    constexpr kernel_view(const plan::program_plan<Cap>& plan_, int kernel_index, bool packed_ = false)
        : p(plan_), k(plan_.kernels[kernel_index]), index(kernel_index), packed(packed_) {
        for (int r = 0; r < k.root_count; ++r) plan::detail::mark_nodes(p, k.roots[r], nodes);
    }
    constexpr const node& operator[](int n) const { return p.g[n]; }
    constexpr int size() const { return p.g.size; }
    // Read from memory here: a buffer leaf, or a value materialised by an earlier kernel.
    constexpr bool reads_memory(int n) const { return p.is_buffer_leaf(n) || (p.materialized[n] && !is_root(n)); }
    constexpr bool is_root(int n) const { return p.is_root_of(n, index); }
    // A matvec computed in this kernel (not read from memory).
    constexpr bool computes_matvec(int n) const { return nodes[n] && p.g[n].kind == node_kind::matvec && !reads_memory(n); }

    // The vector a root writes: an append writes its new row.
    constexpr int stored(int root) const { return p.g[root].kind == node_kind::append ? p.g[root].b : root; }
    constexpr std::uint32_t length(int root) const {
        const node& x = p.g[root];
        return x.kind == node_kind::append ? x.cols : x.elements();
    }
    // The head dim of the rope evaluated in root's segment (0: none), which then works on row pairs.
    constexpr std::uint32_t pair_dim(int root) const {
        bool need[Cap] = {};
        segment_nodes(root, need);
        for (int n = 0; n < size(); ++n)
            if (need[n] && p.g[n].kind == node_kind::rope && !reads_memory(n)) return p.g[n].p0;
        return 0;
    }
    constexpr std::uint32_t units(int root) const {
        return pair_dim(root) != 0 ? length(root) / 2 : length(root);
    }
    constexpr std::uint32_t total_units() const {
        std::uint32_t u = 0;
        for (int r = 0; r < k.root_count; ++r) u += units(k.roots[r]);
        return u;
    }
    constexpr std::uint32_t first_unit(int r) const {
        std::uint32_t u = 0;
        for (int i = 0; i < r; ++i) u += units(k.roots[i]);
        return u;
    }

    // Nodes a per-element block must emit to have `n`: scalars (computed once before), matvec results (summed per
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
                if (x.operation == op::gelu_erf) h |= helper_gelu_erf;
            }
            if (x.kind == node_kind::reduce)
                h |= x.operation == op::sum || x.operation == op::mean ? helper_workgroup_sum : helper_workgroup_max;
        }
        if (k.kind == kernel_kind::matvec) h |= helper_segment_sum;
        if (k.kind == kernel_kind::attention)
            h |= p.how == strategy::single_dispatch ? helper_team_attention | helper_segment_sum
                                                    : helper_attention | helper_workgroup_sum | helper_workgroup_max;
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

template <class T, std::size_t Cap>
constexpr void node_buffer(T& t, const plan::program_plan<Cap>& p, int n) {
    buffer_name(t, p, p.buffer_of_node[n]);
}

// Opens an element access of buffer b — `name[` or `name_v4[` — or, packed, `vkf_arena[<offset>u + `, or, for a
// temporary a single dispatch keeps in shared memory, `vkf_shared[<offset>u + `; the caller writes the index and
// the closing bracket. (Shared memory has no vec4 view: read_access reads four floats there.)
template <class T, std::size_t Cap>
constexpr void open_access(T& t, const kernel_view<Cap>& kv, int b, bool v4) {
    if (kv.p.in_shared_memory(b)) {
        t << "vkf_shared[" << kv.p.shared_offset[b] << "u + ";
    } else if (kv.packed) {
        t << (v4 ? "vkf_arena_v4[" : "vkf_arena[") << (v4 ? kv.p.arena_offset[b] / 4 : kv.p.arena_offset[b])
          << "u + ";
    } else {
        buffer_name(t, kv.p, b);
        t << (v4 ? "_v4[" : "[");
    }
}

template <class T, std::size_t Cap>
constexpr void open_node_access(T& t, const kernel_view<Cap>& kv, int n, bool v4) {
    open_access(t, kv, kv.p.buffer_of_node[n], v4);
}

// A read of node n's buffer at `index` (in vec4s when v4): `name[index]`, or `vkf_shared_v4(<offset/4>u + index)`.
template <class T, std::size_t Cap>
constexpr void read_access(T& t, const kernel_view<Cap>& kv, int n, bool v4, std::string_view index) {
    const int b = kv.p.buffer_of_node[n];
    if (v4 && kv.p.in_shared_memory(b)) {
        t << "vkf_shared_v4(" << kv.p.shared_offset[b] / 4 << "u + " << index << ')';
        return;
    }
    open_access(t, kv, b, v4);
    t << index << ']';
}

// Where a statement is emitted: which row variant (paired rows: 0 the first half of a head, 1 the second; -1 none),
// the index variable, how many elements at once (1, or 4 in a vectorised matvec loop), and the segment (for the
// names of matvec row sums).
struct site {
    int variant = -1;
    std::string_view index = "i";
    int width = 1;
    int segment = 0;
};

// A node's value as an operand.
template <class T, std::size_t Cap>
constexpr void ref(T& t, const kernel_view<Cap>& kv, int n, const site& s) {
    const node& x = kv[n];
    if (x.kind == node_kind::constant) {
        if (x.value < 0.0f)
            t << '(' << float_literal{x.value} << ')';
        else
            t << float_literal{x.value};
        return;
    }
    if (x.rank == 0) {  // scalars are computed once per phase
        t << 'v' << n;
        return;
    }
    if (kv.computes_matvec(n)) {
        t << 'r' << s.segment << '_' << n;
        if (s.variant >= 0) t << '_' << s.variant;
        return;
    }
    t << 'v' << n;
    if (s.variant >= 0) t << '_' << s.variant;
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
    case op::gelu_erf: t << "vkf_gelu_erf"; break;
    default: break;
    }
}

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
    } else if (x.kind == node_kind::leaf) {  // a param, or the position a single dispatch loops over
        const auto& p = kv.p;
        if (p.how == strategy::single_dispatch && p.loop_param >= 0 && p.params[p.loop_param] == n)
            t << "vkf_position";
        else
            t << "params.p_" << x.name.view();
    } else if (x.kind == node_kind::unary) {
        unary_call(t, x.operation);
        t << '(';
        ref(t, kv, x.a, s);
        t << ')';
    } else if (x.kind == node_kind::binary) {
        if (x.operation == op::max || x.operation == op::min) {
            // GLSL has max(vec4, float) but not max(float, vec4): put a scalar second (both are commutative).
            const bool swap = kv[x.a].rank == 0 && kv[x.b].rank != 0;
            t << (x.operation == op::max ? "max(" : "min(");
            ref(t, kv, swap ? x.b : x.a, s);
            t << ", ";
            ref(t, kv, swap ? x.a : x.b, s);
            t << ')';
        } else {
            ref(t, kv, x.a, s);
            t << (x.operation == op::add   ? " + "
                  : x.operation == op::sub ? " - "
                  : x.operation == op::mul ? " * "
                                           : " / ");
            ref(t, kv, x.b, s);
        }
    } else if (x.kind == node_kind::lookup) {
        open_node_access(t, kv, x.a, s.width == 4);
        ref(t, kv, x.b, s);
        t << " * " << (s.width == 4 ? x.rows / 4 : x.rows) << "u + " << s.index << ']';
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

// ---------------------------------------------------------------------------------------------------------------
// Shader-level passes: header, bindings, push constants, helpers
// ---------------------------------------------------------------------------------------------------------------

constexpr bool vectorized(std::uint32_t cols) { return cols % 4 == 0; }

// The nodes the loop over inputs of length `cols` evaluates for segment root `root`.
template <std::size_t Cap>
constexpr void collect_loop(const kernel_view<Cap>& kv, int root, std::uint32_t cols, bool (&need)[Cap]) {
    bool seg[Cap] = {};
    plan::detail::mark_nodes(kv.p, root, seg);
    for (int n = 0; n < kv.size(); ++n)
        if (seg[n] && kv.computes_matvec(n) && kv[kv[n].b].rows == cols) kv.collect(kv[n].b, need);
}

// Buffers some vectorized loop of kernel `kv` reads through a vec4 view.
template <std::size_t Cap>
constexpr void vec4_buffers(const kernel_view<Cap>& kv, bool (&out)[Cap + 1]) {
    for (int r = 0; r < kv.k.root_count; ++r) {
        bool seg[Cap] = {};
        plan::detail::mark_nodes(kv.p, kv.k.roots[r], seg);
        for (int m = 0; m < kv.size(); ++m) {
            if (!seg[m] || !kv.computes_matvec(m) || !vectorized(kv[kv[m].b].rows)) continue;
            out[kv.p.buffer_of_node[kv[m].a]] = true;
            bool need[Cap] = {};
            collect_loop(kv, kv.k.roots[r], kv[kv[m].b].rows, need);
            for (int n = 0; n < kv.size(); ++n) {
                if (!need[n]) continue;
                if (kv.reads_memory(n)) out[kv.p.buffer_of_node[n]] = true;
                if (kv[n].kind == node_kind::lookup) out[kv.p.buffer_of_node[kv[n].a]] = true;
            }
        }
    }
}

// The kernels a shader runs: one, or every phase of a single-dispatch program.
struct phase_range {
    int first = 0, last = 0;  // [first, last)
};

template <class T, std::size_t Cap>
constexpr void emit_header(T& t, const plan::program_plan<Cap>& p, phase_range phases) {
    t << "#version 450\n// Generated by vkfuse (" << strategy_name(p.how) << "): ";
    if (p.how == strategy::single_dispatch)
        t << "the whole program as one dispatch of one workgroup, " << p.kernel_count << " phases.\n";
    else
        t << "kernel " << phases.first + 1 << " of " << p.kernel_count << ".\n";
    t << "#ifdef VKFUSE_SUBGROUP_ARITHMETIC\n"
         "#extension GL_KHR_shader_subgroup_arithmetic : require\n"
         "#endif\n"
         "#ifdef VKFUSE_SUBGROUP_SHUFFLE\n"
         "#extension GL_KHR_shader_subgroup_shuffle : require\n"
         "#endif\n\n"
         "layout(local_size_x_id = 0) in;                // workgroup size: a power of two, set per device\n"
         "layout(constant_id = 1) const uint LANES = 32u;  // invocations per matvec row: a power of two\n\n";
}

template <std::size_t Cap>
constexpr bool is_output(const plan::program_plan<Cap>& p, int node_index) {
    for (int o = 0; o < p.g.output_count; ++o)
        if (p.g.outputs[o].node == node_index) return true;
    return false;
}

template <class T, std::size_t Cap>
constexpr void emit_bindings(T& t, const plan::program_plan<Cap>& p, phase_range phases, bool packed) {
    // The shader's buffers in ascending order, with how they are accessed.
    bool used[Cap + 1] = {}, read[Cap + 1] = {}, written[Cap + 1] = {}, as_vec4[Cap + 1] = {};
    for (int k = phases.first; k < phases.last; ++k) {
        const auto& kp = p.kernels[k];
        for (int i = 0; i < kp.buffer_count; ++i) {
            used[kp.buffers[i]] = true;
            (kp.writes[i] ? written : read)[kp.buffers[i]] = true;
        }
        vec4_buffers(kernel_view<Cap>(p, k), as_vec4);
    }
    const bool single = p.how == strategy::single_dispatch;
    if (packed) {
        // One binding holds every buffer of the program at the offsets the plan laid out; both views may see
        // writes, so neither is restrict.
        bool any_vec4 = false;
        for (int b = 0; b < p.buffer_count; ++b) any_vec4 = any_vec4 || as_vec4[b];
        t << "layout(set = 0, binding = 0, std430) coherent buffer Arena { float vkf_arena[]; };  // every buffer, "
             "packed\n";
        if (any_vec4)
            t << "layout(set = 0, binding = 0, std430) coherent readonly buffer ArenaV4 { vec4 vkf_arena_v4[]; };\n";
        for (int b = 0; b < p.buffer_count; ++b) {
            if (!used[b]) continue;
            t << "//   at " << p.arena_offset[b] << ": ";
            buffer_name(t, p, b);
            t << ", " << p.buffers[b].elements << " x " << dtype_name(p.buffers[b].dtype) << '\n';
        }
        t << '\n';
        return;
    }
    int binding = 0;
    for (int b = 0; b < p.buffer_count; ++b) {
        if (!used[b]) continue;
        const plan::buffer_slot& s = p.buffers[b];
        const std::string_view access = written[b] && (read[b] || single) ? "coherent"
                                        : written[b]                       ? "writeonly"
                                                                           : "readonly";
        if (as_vec4[b]) {  // a second view of the same binding, for 16-byte loads; coherent where a phase writes it
            t << "layout(set = 0, binding = " << binding << ", std430) "
              << (written[b] ? "coherent readonly" : "readonly restrict") << " buffer Binding" << binding
              << "v4 { vec4 ";
            buffer_name(t, p, b);
            t << "_v4[]; };\n";
        }
        t << "layout(set = 0, binding = " << binding << ", std430) " << access << " restrict buffer Binding"
          << binding << " { " << (s.dtype == dtype_code::u32 ? "uint " : "float ");
        buffer_name(t, p, b);
        t << "[]; };  // ";
        if (s.temporary)
            t << "temporary";
        else if (s.slot_role == role::output)
            t << (is_output(p, s.node) ? "output " : "named result ") << s.name.view();
        else
            t << (s.slot_role == role::input    ? "input "
                  : s.slot_role == role::weight ? "weight "
                  : s.slot_role == role::state  ? "state "
                                                : "table ")
              << s.name.view();
        t << ": " << dtype_name(s.dtype);
        if (s.cols != 0)
            t << '[' << s.rows << ", " << s.cols << "]\n";
        else
            t << '[' << s.elements << "]\n";
        ++binding;
    }
    t << '\n';
}

template <class T, std::size_t Cap>
constexpr void emit_push_constants(T& t, const plan::program_plan<Cap>& p) {
    if (p.param_count == 0) return;
    t << "layout(push_constant) uniform Params {\n";
    for (int i = 0; i < p.param_count; ++i) {
        const node& x = p.g[p.params[i]];
        t << "    " << (x.dtype == dtype_code::u32 ? "uint" : "float") << " p_" << x.name.view() << ";\n";
    }
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

// What a shader keeps in shared memory: its helpers, the widest head it attends, its pool of temporaries.
struct shader_shared {
    std::uint32_t helpers = 0;
    std::uint32_t head_dim = 0;
    std::uint32_t pool = 0;  // floats of temporaries (single_dispatch)

    // Floats of shared memory: a fixed part, plus some per invocation of the workgroup.
    constexpr std::uint32_t per_invocation() const {
        return ((helpers & (helper_workgroup_sum | helper_workgroup_max | helper_segment_sum |
                            helper_team_attention)) != 0) +
               ((helpers & helper_team_attention) != 0) + ((helpers & (helper_attention | helper_team_attention)) != 0);
    }
    constexpr std::uint32_t fixed() const { return ((helpers & helper_attention) != 0 ? head_dim : 0u) + pool; }
    constexpr std::uint64_t bytes(std::uint32_t workgroup_size) const {
        return 4ull * (fixed() + static_cast<std::uint64_t>(per_invocation()) * workgroup_size);
    }
};

template <std::size_t Cap>
constexpr shader_shared shared_use(const plan::program_plan<Cap>& p, phase_range phases) {
    shader_shared u;
    for (int k = phases.first; k < phases.last; ++k) {
        const kernel_view<Cap> kv(p, k);
        u.helpers |= kv.helpers();
        if (p.kernels[k].kind == kernel_kind::attention) {
            const std::uint32_t hd = p.g[p.kernels[k].roots[0]].p2;
            u.head_dim = hd > u.head_dim ? hd : u.head_dim;
        }
    }
    if (p.how == strategy::single_dispatch) u.pool = p.shared_floats;
    return u;
}

template <class T, std::size_t Cap>
constexpr void emit_helpers(T& t, const plan::program_plan<Cap>& p, phase_range phases) {
    const shader_shared use = shared_use(p, phases);
    const std::uint32_t h = use.helpers;
    if (h & (helper_workgroup_sum | helper_workgroup_max | helper_segment_sum | helper_team_attention))
        t << "shared float vkf_scratch[gl_WorkGroupSize.x];\n";
    if (h & helper_team_attention)
        t << "shared float vkf_sums[gl_WorkGroupSize.x];  // with vkf_scratch: softmax statistics being merged\n";
    if (h & helper_attention)
        t << "shared float vkf_q[" << use.head_dim << "];                  // the query head being attended\n";
    if (h & (helper_attention | helper_team_attention))
        t << "shared float vkf_p[gl_WorkGroupSize.x];  // softmax weights of one block of positions\n";
    if (use.pool != 0)
        t << "shared float vkf_shared[" << use.pool
          << "];  // temporaries: the whole program runs in this workgroup, so they stay on chip\n";
    if (h || use.pool) t << '\n';
    if (use.pool != 0)
        t << "vec4 vkf_shared_v4(uint at) {\n"
             "    return vec4(vkf_shared[4u * at], vkf_shared[4u * at + 1u], vkf_shared[4u * at + 2u], "
             "vkf_shared[4u * at + 3u]);\n"
             "}\n\n";
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
    if (h & helper_gelu_erf) {
        // GLSL has no erf. A single fit for all x loses relative accuracy near 0, where gelu_erf's value is small,
        // so: the Taylor series below |x| = 0.5 (truncation < 1e-8 relative), and above it 1 - erfc(|x|) with the
        // exponential-of-polynomial fit of erfc (fractional error < 1.2e-7).
        for (std::string_view type : {"float", "vec4"}) {
            t << type << " vkf_erf(" << type << " x) {\n"
              << "    " << type << " a = abs(x);\n"
              << "    " << type << " x2 = x * x;\n"
              << "    // |x| < 0.5: x (2/sqrt(pi)) (1 - x^2/3 + x^4/10 - x^6/42 + x^8/216 - x^10/1320)\n"
              << "    " << type << " small = x * " << float_literal{1.1283791670955126f} << " * (1.0 + x2 * ("
              << float_literal{-1.0f / 3.0f} << " + x2 * (" << float_literal{0.1f} << " + x2 * ("
              << float_literal{-1.0f / 42.0f} << " + x2 * (" << float_literal{1.0f / 216.0f} << " + x2 * "
              << float_literal{-1.0f / 1320.0f} << ")))));\n"
              << "    // |x| >= 0.5: 1 - erfc(|x|), erfc(a) = t exp(-a^2 + P(t)), t = 1 / (1 + a/2) (Numerical Recipes' erfcc)\n"
              << "    " << type << " t = 1.0 / (1.0 + 0.5 * a);\n"
              << "    " << type << " poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * "
                 "(-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * "
                 "0.17087277))))))));\n"
              << "    " << type << " large = sign(x) * (1.0 - t * exp(-a * a + poly));\n"
              << "    return mix(large, small, " << (type == "float" ? "a < 0.5" : "lessThan(a, vec4(0.5))") << ");\n"
              << "}\n";
        }
        for (std::string_view type : {"float", "vec4"})
            t << type << " vkf_gelu_erf(" << type << " x) { return 0.5 * x * (1.0 + vkf_erf(x * "
              << float_literal{0.70710678118654752f} << ")); }\n";
        t << '\n';
    }
    if (h & helper_workgroup_sum) emit_workgroup_reduce(t, false);
    if (h & helper_workgroup_max) emit_workgroup_reduce(t, true);
    if (h & helper_segment_sum)
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
    if (h & helper_team_attention)
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

// ---------------------------------------------------------------------------------------------------------------
// Phase bodies
// ---------------------------------------------------------------------------------------------------------------

// Every scalar the phase needs, once per invocation and in topological order: reductions (each a loop over its
// vector, computed by every workgroup) and the scalar arithmetic on them (a softmax's sum can use its max).
template <class T, std::size_t Cap>
constexpr void emit_scalars(T& t, const kernel_view<Cap>& kv) {
    for (int r = 0; r < kv.size(); ++r) {
        const node& x = kv[r];
        if (!kv.nodes[r] || x.rank != 0 || x.kind == node_kind::constant) continue;
        if (x.kind != node_kind::reduce || kv.reads_memory(r)) {
            emit_statement(t, kv, r, 2, site{});
            continue;
        }
        const std::uint32_t len = kv[x.a].rows;
        const bool is_sum = x.operation == op::sum || x.operation == op::mean;
        const bool is_argmax = x.operation == op::argmax;
        t << "        float v" << r << ";  // "
          << (is_argmax ? "argmax" : x.operation == op::reduce_max ? "max" : x.operation == op::mean ? "mean" : "sum")
          << " of v" << x.a << " over " << len << " elements, computed by every workgroup\n"
          << "        {\n"
          << "            float acc = " << (is_sum ? "0.0" : "uintBitsToFloat(0xff800000u)") << ";\n";
        if (is_argmax) t << "            float at = 0.0;\n";
        t << "            for (uint i = gl_LocalInvocationID.x; i < " << len << "u; i += gl_WorkGroupSize.x) {\n";
        bool need[Cap] = {};
        kv.collect(x.a, need);
        emit_block(t, kv, need, 4, site{}, false);
        if (is_argmax) {
            t << "                if (";
            ref(t, kv, x.a, site{});
            t << " > acc) { acc = ";
            ref(t, kv, x.a, site{});
            t << "; at = float(i); }\n";
        } else {
            t << "                acc = " << (is_sum ? "acc + (" : "max(acc, ");
            ref(t, kv, x.a, site{});
            t << ");\n";
        }
        t << "            }\n";
        if (is_argmax) {
            // the first index holding the maximum: max of the values, then the smallest index that has it
            // (indices are exact in f32 below 2^24)
            t << "            const float best = vkf_workgroup_max(acc);\n"
              << "            v" << r << " = -vkf_workgroup_max(acc == best ? -at : uintBitsToFloat(0xff800000u));\n";
        } else {
            t << "            v" << r << " = vkf_workgroup_" << (is_sum ? "sum" : "max") << "(acc)";
            if (x.operation == op::mean) t << " / " << float_literal{static_cast<float>(len)};
            t << ";\n";
        }
        t << "        }\n";
    }
}

// `buffer[index] = value;` for the row(s) of segment root r.
template <class T, std::size_t Cap>
constexpr void emit_store(T& t, const kernel_view<Cap>& kv, int root, int indent, site s) {
    const node& x = kv[root];
    const int value = kv.stored(root);
    t.repeat("    ", indent);
    open_node_access(t, kv, root, false);
    if (x.kind == node_kind::append) {  // row `pos` of the cache
        ref(t, kv, x.c, s);
        t << " * " << x.cols << "u + ";
    }
    t << s.index << "] = ";
    // a u32 result is stored as its bits when it shares the float arena
    if (x.dtype == dtype_code::u32) t << (kv.packed ? "uintBitsToFloat(uint(" : "uint(");
    ref(t, kv, value, s);
    if (x.dtype == dtype_code::u32) t << (kv.packed ? "))" : ")");
    t << ";\n";
}

// `const uint i = ...;` (or i0 and i1 for row pairs) from the kernel-wide unit index.
template <class T, std::size_t Cap>
constexpr void emit_row_of_unit(T& t, const kernel_view<Cap>& kv, int r, int indent) {
    const int root = kv.k.roots[r];
    const std::uint32_t hd = kv.pair_dim(root), first = kv.first_unit(r);
    t.repeat("    ", indent) << "const uint u = unit";
    if (first != 0) t << " - " << first << 'u';
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

template <class T, std::size_t Cap>
constexpr void emit_segment_epilogue(T& t, const kernel_view<Cap>& kv, int r, int indent) {
    const int root = kv.k.roots[r];
    const bool paired = kv.pair_dim(root) != 0;
    bool need[Cap] = {};
    kv.segment_nodes(root, need);
    site s;
    s.segment = r;
    emit_block(t, kv, need, indent, s, paired);
    if (!paired) {
        emit_store(t, kv, root, indent, s);
    } else {
        for (int v = 0; v < 2; ++v) {
            s.variant = v;
            s.index = v == 0 ? "i0" : "i1";
            emit_store(t, kv, root, indent, s);
        }
    }
}

template <class T, std::size_t Cap>
constexpr void emit_segment_test(T& t, const kernel_view<Cap>& kv, int r, std::string_view unit) {
    const std::uint32_t first = kv.first_unit(r), count = kv.units(kv.k.roots[r]);
    if (first == 0) {
        t << "if (" << unit << " < " << first + count << "u) {";
    } else {
        t << "if (" << unit << " >= " << first << "u && " << unit << " < " << first + count << "u) {";
    }
    const int root = kv.k.roots[r];
    t << "  // ";
    if (kv[root].kind == node_kind::append)
        t << "append to " << kv.p.buffers[kv.p.buffer_of_node[root]].name.view();
    else if (!kv.p.g.result_name[root].empty())
        t << kv.p.g.result_name[root].view();
    else
        t << "t" << root;
    t << '\n';
}

template <class T, std::size_t Cap>
constexpr void emit_elementwise(T& t, const kernel_view<Cap>& kv) {
    t << "        for (uint unit = gl_GlobalInvocationID.x; unit < " << kv.total_units()
      << "u; unit += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {\n";
    for (int r = 0; r < kv.k.root_count; ++r) {
        t << "            ";
        emit_segment_test(t, kv, r, "unit");
        emit_row_of_unit(t, kv, r, 4);
        emit_segment_epilogue(t, kv, r, 4);
        t << "            }\n";
    }
    t << "        }\n";
}

// Calls f(segment, matvec node, name suffix) for every dot-product accumulator of a matvec kernel: one per segment,
// matvec computed in it, and row of a rope pair ("_0", "_1"; "" without pairs).
template <std::size_t Cap, class F>
constexpr void each_accumulator(const kernel_view<Cap>& kv, F f) {
    for (int r = 0; r < kv.k.root_count; ++r) {
        const int root = kv.k.roots[r];
        const bool paired = kv.pair_dim(root) != 0;
        bool seg[Cap] = {};
        plan::detail::mark_nodes(kv.p, root, seg);
        for (int m = 0; m < kv.size(); ++m) {
            if (!seg[m] || !kv.computes_matvec(m)) continue;
            if (paired) {
                f(r, m, std::string_view("_0"));
                f(r, m, std::string_view("_1"));
            } else {
                f(r, m, std::string_view());
            }
        }
    }
}

constexpr std::uint32_t ceil_power_of_two(std::uint32_t v) {
    std::uint32_t p = 1;
    while (p < v) p *= 2;
    return p;
}

// Invocations per row of a single-dispatch matvec phase. The workgroup runs the phase alone, so: enough rows at once
// to cover all of them in one pass where it can (workgroup / rows), but never more lanes than a row has steps, nor
// fewer than read a 128-byte line of a row at once (8 vec4s or 32 floats) where the row is that long.
struct phase_lanes {
    std::uint32_t rows = 1;   // the phase's units, rounded up to a power of two
    std::uint32_t least = 1, most = 1;

    constexpr std::uint32_t at(std::uint32_t workgroup_size) const {
        std::uint32_t l = workgroup_size / rows;
        l = l < least ? least : l > most ? most : l;
        return l < workgroup_size ? l : workgroup_size;
    }
};

template <std::size_t Cap>
constexpr phase_lanes single_dispatch_lanes(const kernel_view<Cap>& kv) {
    std::uint32_t steps = 1, line = 1;
    for (int n = 0; n < kv.size(); ++n) {
        if (!kv.computes_matvec(n)) continue;
        const std::uint32_t cols = kv[kv[n].b].rows;
        const std::uint32_t s = vectorized(cols) ? cols / 4 : cols;
        if (s > steps) steps = s;
        const std::uint32_t l = vectorized(cols) ? 8u : 32u;
        if (l > line) line = l;
    }
    phase_lanes pl;
    pl.rows = ceil_power_of_two(kv.total_units());
    pl.most = ceil_power_of_two(steps);
    pl.least = line < pl.most ? line : pl.most;
    return pl;
}

template <class T, std::size_t Cap>
constexpr void emit_phase_lanes(T& t, const kernel_view<Cap>& kv) {
    const phase_lanes pl = single_dispatch_lanes(kv);  // the same arithmetic, on the specialised workgroup size
    t << "        const uint lanes = min(clamp(gl_WorkGroupSize.x / " << pl.rows << "u, " << pl.least << "u, "
      << pl.most << "u), gl_WorkGroupSize.x);  // invocations per row\n";
}

template <class T, std::size_t Cap>
constexpr void emit_matvec(T& t, const kernel_view<Cap>& kv) {
    const auto& p = kv.p;
    if (p.how == strategy::single_dispatch)
        emit_phase_lanes(t, kv);
    else
        t << "        const uint lanes = LANES;\n";
    t << "        const uint lane = gl_LocalInvocationID.x % lanes;\n"
      << "        const uint rows_per_group = gl_WorkGroupSize.x / lanes;\n"
      << "        for (uint base = gl_WorkGroupID.x * rows_per_group; base < " << kv.total_units()
      << "u; base += gl_NumWorkGroups.x * rows_per_group) {\n"
      << "            const uint unit = base + gl_LocalInvocationID.x / lanes;\n";
    // accumulators: one per (segment, matvec, row of the pair)
    each_accumulator(kv, [&](int r, int m, std::string_view suffix) {
        t << "            float a" << r << '_' << m << suffix << " = 0.0;\n";
    });
    // dot products: per segment, one loop per distinct input length
    for (int r = 0; r < kv.k.root_count; ++r) {
        const int root = kv.k.roots[r];
        const bool paired = kv.pair_dim(root) != 0;
        bool seg[Cap] = {};
        plan::detail::mark_nodes(p, root, seg);
        bool any = false;
        for (int m = 0; m < kv.size(); ++m) any = any || (seg[m] && kv.computes_matvec(m));
        if (!any) continue;
        t << "            ";
        emit_segment_test(t, kv, r, "unit");
        emit_row_of_unit(t, kv, r, 4);
        bool done[Cap] = {};
        for (int m = 0; m < kv.size(); ++m) {
            if (!seg[m] || !kv.computes_matvec(m) || done[m]) continue;
            const std::uint32_t cols = kv[kv[m].b].rows;
            const bool v4 = vectorized(cols);
            const std::uint32_t steps = v4 ? cols / 4 : cols;
            bool need[Cap] = {};
            collect_loop(kv, root, cols, need);
            t << "                for (uint j = lane; j < " << steps << "u; j += lanes) {"
              << (v4 ? "  // j counts vec4s\n" : "\n");
            site s;
            s.width = v4 ? 4 : 1;
            s.index = "j";
            emit_block(t, kv, need, 5, s, false);
            for (int n = m; n < kv.size(); ++n) {
                if (!seg[n] || !kv.computes_matvec(n) || kv[kv[n].b].rows != cols) continue;
                done[n] = true;
                for (int v = 0; v < (paired ? 2 : 1); ++v) {
                    t << "                    a" << r << '_' << n << (paired ? (v == 0 ? "_0" : "_1") : "")
                      << " += ";
                    if (v4) t << "dot(";
                    open_node_access(t, kv, kv[n].a, v4);
                    t << (paired ? (v == 0 ? "i0" : "i1") : "i") << " * " << steps
                      << "u + j]" << (v4 ? ", " : " * ");
                    ref(t, kv, kv[n].b, s);
                    t << (v4 ? ");\n" : ";\n");
                }
            }
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
    for (int r = 0; r < kv.k.root_count; ++r) {
        t << "                ";
        emit_segment_test(t, kv, r, "unit");
        emit_row_of_unit(t, kv, r, 5);
        emit_segment_epilogue(t, kv, r, 5);
        t << "                }\n";
    }
    t << "            }\n"
      << "        }\n";
}

// One workgroup per query head: scores for a block of positions at a time, an online softmax across blocks, and
// the weighted sum of values accumulated by the first head_dim invocations (one output element each).
template <class T, std::size_t Cap>
constexpr void emit_attention(T& t, const kernel_view<Cap>& kv) {
    const int root = kv.k.roots[0];
    const node& x = kv[root];
    const std::uint32_t heads = x.p0, group = x.p0 / x.p1, hd = x.p2, width = x.p1 * x.p2;
    auto pos = [&] { ref(t, kv, x.d, site{}); };
    auto cache = [&](int n) { open_node_access(t, kv, n, false); };
    t << "        const uint tid = gl_LocalInvocationID.x;\n"
      << "        for (uint head = gl_WorkGroupID.x; head < " << heads << "u; head += gl_NumWorkGroups.x) {\n"
      << "            const uint kv_base = head / " << group << "u * " << hd
      << "u;  // query head h reads KV head h / (H / KV)\n"
      << "            for (uint d = tid; d < " << hd << "u; d += gl_WorkGroupSize.x) vkf_q[d] = ";
    open_node_access(t, kv, x.a, false);
    t << "head * " << hd << "u + d];\n"
      << "            barrier();\n"
      << "            const uint positions = ";
    pos();
    t << " + 1u;\n"
      << "            float m = uintBitsToFloat(0xff800000u), l = 0.0, o = 0.0;\n"
      << "            for (uint start = 0u; start < positions; start += gl_WorkGroupSize.x) {\n"
      << "                const uint at = start + tid;\n"
      << "                float s = uintBitsToFloat(0xff800000u);\n"
      << "                if (at < positions) {\n"
      << "                    s = 0.0;\n"
      << "                    for (uint d = 0u; d < " << hd << "u; ++d) s += vkf_q[d] * ";
    cache(x.b);
    t << "at * " << width << "u + kv_base + d];\n"
      << "                    s *= " << float_literal{1.0f / __builtin_sqrtf(static_cast<float>(hd))}
      << ";  // 1/sqrt(head_dim)\n"
      << "                }\n"
      << "                const float block_max = vkf_workgroup_max(s);\n"
      << "                const float new_m = max(m, block_max);\n"
      << "                const float w = at < positions ? exp(s - new_m) : 0.0;\n"
      << "                vkf_p[tid] = w;\n"
      << "                const float block_sum = vkf_workgroup_sum(w);  // its barriers publish vkf_p too\n"
      << "                const float rescale = exp(m - new_m);\n"
      << "                l = l * rescale + block_sum;\n"
      << "                if (tid < " << hd << "u) {\n"
      << "                    o *= rescale;\n"
      << "                    const uint count = min(gl_WorkGroupSize.x, positions - start);\n"
      << "                    for (uint j = 0u; j < count; ++j) o += vkf_p[j] * ";
    cache(x.c);
    t << "(start + j) * " << width << "u + kv_base + tid];\n"
      << "                }\n"
      << "                m = new_m;\n"
      << "                barrier();  // vkf_p is refilled by the next block\n"
      << "            }\n"
      << "            if (tid < " << hd << "u) ";
    open_node_access(t, kv, root, false);
    t << "head * " << hd << "u + tid] = o / l;\n"
      << "            barrier();  // vkf_q is refilled by the next head\n"
      << "        }\n";
}

// single_dispatch: every query head at once. The workgroup splits into teams (a power of two of invocations), one
// head each. A team scores a block of `team` positions at a time, one per invocation, and keeps an online softmax
// across blocks; for the weighted sum of values each output element gets `chunks` invocations (a power of two)
// that take every chunks-th position of the block, and the chunk sums are added at the end (inside a subgroup
// when they fit in one). A head wider than its team is done in slices of `span` elements.
template <class T, std::size_t Cap>
constexpr void emit_team_attention(T& t, const kernel_view<Cap>& kv) {
    const int root = kv.k.roots[0];
    const node& x = kv[root];
    const std::uint32_t heads = x.p0, group = x.p0 / x.p1, hd = x.p2, width = x.p1 * x.p2;
    auto cache = [&](int n) { open_node_access(t, kv, n, false); };
    t << "        const uint tid = gl_LocalInvocationID.x;\n"
      << "        const uint team = max(gl_WorkGroupSize.x / " << ceil_power_of_two(heads)
      << "u, 1u);  // invocations per head\n"
      << "        const uint teams = gl_WorkGroupSize.x / team;\n"
      << "        const uint member = tid % team;\n"
      << "        const uint span = min(team, " << ceil_power_of_two(hd) << "u);  // output elements per slice\n"
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
    open_node_access(t, kv, x.a, false);
    t << "head * " << hd << "u + e] * ";
    cache(x.b);
    t << "at * " << width << "u + kv_base + e];\n"
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
    cache(x.c);
    t << "(start + j) * " << width << "u + kv_base + d];\n"
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

template <class T, std::size_t Cap>
constexpr void emit_phase(T& t, const plan::program_plan<Cap>& p, int k, bool packed) {
    const kernel_view<Cap> kv(p, k, packed);
    t << "    {  // " << (kv.k.kind == kernel_kind::matvec      ? "matvec"
                          : kv.k.kind == kernel_kind::attention ? "attention"
                                                                : "elementwise")
      << ":";
    for (int r = 0; r < kv.k.root_count; ++r) {
        const int root = kv.k.roots[r];
        t << ' ';
        if (kv[root].kind == node_kind::append)
            t << "append to " << p.buffers[p.buffer_of_node[root]].name.view();
        else if (!p.g.result_name[root].empty())
            t << p.g.result_name[root].view();
        else
            t << 't' << root;
        t << '[' << kv.length(root) << ']' << (r + 1 < kv.k.root_count ? "," : "");
    }
    t << '\n';
    emit_scalars(t, kv);
    if (kv.k.kind == kernel_kind::matvec)
        emit_matvec(t, kv);
    else if (kv.k.kind == kernel_kind::attention && p.how == strategy::single_dispatch)
        emit_team_attention(t, kv);
    else if (kv.k.kind == kernel_kind::attention)
        emit_attention(t, kv);
    else
        emit_elementwise(t, kv);
    t << "    }\n";
}

} // namespace detail

// The GLSL of shader `index` of plan `p`: kernel `index`, or, under single_dispatch, every kernel as a phase.
// `packed`: every buffer is a range of one binding (for devices with fewer bindings per kernel than it needs).
template <class T, std::size_t Cap>
constexpr void emit_shader(T& t, const plan::program_plan<Cap>& p, int index, bool packed = false) {
    const bool single = p.how == strategy::single_dispatch;
    const detail::phase_range phases = single ? detail::phase_range{0, p.kernel_count}
                                              : detail::phase_range{index, index + 1};
    detail::emit_header(t, p, phases);
    detail::emit_bindings(t, p, phases, packed);
    detail::emit_push_constants(t, p);
    detail::emit_helpers(t, p, phases);
    t << "void main() {\n";
    const bool loop = single && p.loop_param >= 0;
    if (loop)
        t << "    // every position of the sequence, in order, inside this one dispatch\n"
          << "    for (uint vkf_position = 0u; vkf_position < " << p.loop_count << "u; ++vkf_position) {\n";
    // One workgroup runs every phase, so barrier() orders the phases and publishes shared memory. A phase that reads
    // a buffer an earlier phase wrote since the last fence, or writes the same elements again, also needs those
    // writes made visible: a workgroup-scope fence, groupMemoryBarrier() (a device-scope one waits for every write
    // to reach L2). A fence costs about as much as a step, so it goes only there. (Appends write a new row each
    // position, never the same elements.)
    bool pending[Cap + 1] = {};  // buffers written since the last fence
    auto uses_pending = [&](int k) {
        const plan::kernel_plan<Cap>& kp = p.kernels[k];
        for (int i = 0; i < kp.buffer_count; ++i)
            if (!kp.writes[i] && pending[kp.buffers[i]]) return true;
        for (int r = 0; r < kp.root_count; ++r)
            if (p.g[kp.roots[r]].kind != plan::node_kind::append && pending[p.buffer_of_node[kp.roots[r]]]) return true;
        return false;
    };
    auto fence = [&](std::string_view why) {
        t << "    groupMemoryBarrier();\n    barrier();  // " << why << "\n";
        for (int b = 0; b < p.buffer_count; ++b) pending[b] = false;
    };
    for (int k = phases.first; k < phases.last; ++k) {
        if (k > phases.first) {
            if (uses_pending(k))
                fence("the next phase reads what an earlier one wrote to memory");
            else
                t << "    barrier();  // the next phase reads what this one wrote to shared memory\n";
        }
        detail::emit_phase(t, p, k, packed);
        for (int i = 0; i < p.kernels[k].buffer_count; ++i)
            if (p.kernels[k].writes[i]) pending[p.kernels[k].buffers[i]] = true;
    }
    if (loop) {
        bool needed = false;
        for (int k = phases.first; k < phases.last; ++k) needed = needed || uses_pending(k);
        if (needed)
            fence("the next position reads what this one wrote to memory");
        else
            t << "    barrier();  // the next position overwrites shared memory this one read\n";
        t << "    }\n";
    }
    t << "}\n";
}

} // namespace vkfuse::glsl
