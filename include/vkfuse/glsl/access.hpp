// vkfuse/glsl/access.hpp — how generated GLSL names values and buffers, and reads and writes them.
//
// Names are positional, so one program type always yields the same bytes: node n is `v<n>`, the row sum of product n
// in segment r is `r<r>_<n>`, a temporary buffer `t<n>`, a placeholder or named result `p_<name>`. A buffer is
// reached through its own binding, or, when the program packs every buffer into one, through `vkf_arena` at the
// offset the plan laid out, or, for a temporary a single dispatch keeps on chip, through `vkf_shared`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/text.hpp"
#include "../plan/records.hpp"
#include "../plan/scope.hpp"

namespace vkfuse::glsl {

using plan::node;
using plan::node_kind;

// A kernel being printed: its scope (what it evaluates), its index and whether buffers are packed.
template <std::size_t Cap>
struct kernel_view : plan::kernel_scope<Cap> {
    int index;
    bool packed;  // every buffer is a range of one binding, vkf_arena

    constexpr kernel_view(const plan::program_plan<Cap>& plan_, int kernel_index, bool packed_)
        : plan::kernel_scope<Cap>(plan_, plan_.kernels[kernel_index]), index(kernel_index), packed(packed_) {}
};

// Which share of a kernel's work units this workgroup takes, and of how many: its place in the dispatch, or, in a
// persistent shader, the work item it took from the counter (vkf_item of vkf_items, set before the phase's body).
template <std::size_t Cap>
constexpr std::string_view group_index(const plan::program_plan<Cap>& p) {
    return p.how == strategy::persistent ? "vkf_item" : "gl_WorkGroupID.x";
}
template <std::size_t Cap>
constexpr std::string_view group_count(const plan::program_plan<Cap>& p) {
    return p.how == strategy::persistent ? "vkf_items" : "gl_NumWorkGroups.x";
}

// A buffer's name; `piece` k of a split weight is `s<k>_<name>` (no placeholder's `p_` name can be one).
template <class T, std::size_t Cap>
constexpr void buffer_name(T& t, const plan::program_plan<Cap>& p, int b, int piece = -1) {
    const plan::buffer_slot& s = p.buffers[b];
    if (s.temporary)
        t << 't' << s.node;
    else if (piece >= 0)
        t << 's' << piece << '_' << s.name.view();
    else
        t << "p_" << s.name.view();
}

// Where layer `vkf_layer`'s copy of buffer b starts, as a term added to an index (in vec4s when v4, else in
// elements), under single_dispatch and persistent: one buffer holds every layer's copy of a stack's weights and states back to back,
// and the carried state is one buffer of L + 1 rows, layer i reading row i and writing row i + 1 (the stack's output,
// read by later steps, is row L). The other strategies bind each layer's buffers to that layer's dispatches, so their
// shaders never see layers and this writes nothing.
// `per`: elements per index (1, 4 for vec4s, 8 for a wide load's eight).
template <class T, std::size_t Cap>
constexpr void layer_offset(T& t, const kernel_view<Cap>& kv, int b, int per) {
    const plan::program_plan<Cap>& p = kv.p;
    const plan::buffer_slot& s = p.buffers[b];
    if (!one_shader(p.how) || !s.per_layer()) return;
    const std::uint64_t stride = s.layer_stride() / static_cast<std::uint64_t>(per);
    const bool inside = kv.index >= p.stack_first && kv.index < p.stack_last;
    using carry = plan::buffer_slot::carry_kind;
    if (!inside) {  // a step before the stack writes its input (row 0), a step after reads its output (row L)
        if (s.carry == carry::out) t << stride * p.layers() << "u + ";
        return;
    }
    t << (s.carry == carry::out ? "(vkf_layer + 1u) * " : "vkf_layer * ") << stride << "u + ";
}

template <class T, std::size_t Cap>
constexpr void layer_offset(T& t, const kernel_view<Cap>& kv, int b, bool v4) {
    layer_offset(t, kv, b, v4 ? 4 : 1);
}

// Opens an element access of buffer b — `name[` or `name_v4[` — or, packed, `vkf_arena[<offset>u + `, or, for a
// temporary kept in shared memory, `vkf_shared[<offset>u + `; the caller writes the index and the closing bracket.
// (Shared memory has no vec4 view: read_access reads four floats there.)
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
        layer_offset(t, kv, b, v4);
    }
}

template <class T, std::size_t Cap>
constexpr void open_node_access(T& t, const kernel_view<Cap>& kv, int n, bool v4) {
    open_access(t, kv, kv.p.buffer_of_node[n], v4);
}

// True where buffer b is held as f32 or u32 elements; other storage (16-bit floats, blocks) is read through the
// loader functions glsl/storage.hpp prints.
template <std::size_t Cap>
constexpr bool plain_storage(const plan::program_plan<Cap>& p, int b) {
    return p.buffers[b].dtype == dtype_code::f32 || p.buffers[b].dtype == dtype_code::u32;
}

// True where buffer b is split over several bindings in this shader (a packed shader reads it from the arena).
template <std::size_t Cap>
constexpr bool in_pieces(const plan::program_plan<Cap>& p, int b, bool packed) {
    return !packed && p.buffers[b].split();
}

// A read of buffer b at the index `index` writes (in vec4s when v4, else in elements): `name[index]`,
// `vkf_shared_v4(<offset/4>u + index)` for a temporary on chip, or `vkf_<name>(index)` / `vkf_<name>_4(index)` where
// the buffer is stored as f16, bf16, q8_0 or q4_0 or split into pieces.
template <class T, std::size_t Cap, class Index>
constexpr void load(T& t, const kernel_view<Cap>& kv, int b, bool v4, Index index) {
    if (!plain_storage(kv.p, b) || in_pieces(kv.p, b, kv.packed)) {
        t << "vkf_";
        buffer_name(t, kv.p, b);
        t << (v4 ? "_4(" : "(");
        layer_offset(t, kv, b, v4);
        index();
        t << ')';
        return;
    }
    if (v4 && kv.p.in_shared_memory(b)) {
        t << "vkf_shared_v4(" << kv.p.shared_offset[b] / 4 << "u + ";
        index();
        t << ')';
        return;
    }
    open_access(t, kv, b, v4);
    index();
    t << ']';
}

// Eight elements of a wide-loaded buffer (glsl/storage.hpp wide_loads) as a mat2x4, `index` counting eights.
template <class T, std::size_t Cap, class Index>
constexpr void load8_node(T& t, const kernel_view<Cap>& kv, int n, Index index) {
    const int b = kv.p.buffer_of_node[n];
    t << "vkf_";
    buffer_name(t, kv.p, b);
    t << "_8(";
    layer_offset(t, kv, b, 8);
    index();
    t << ')';
}

template <class T, std::size_t Cap, class Index>
constexpr void load_node(T& t, const kernel_view<Cap>& kv, int n, bool v4, Index index) {
    load(t, kv, kv.p.buffer_of_node[n], v4, index);
}

// A read of node n's buffer at `index`: see load().
template <class T, std::size_t Cap>
constexpr void read_access(T& t, const kernel_view<Cap>& kv, int n, bool v4, std::string_view index) {
    load_node(t, kv, n, v4, [&] { t << index; });
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

// A runtime scalar: the loop variable of a single dispatch's (or persistent dispatch's) repeat<>, the push constant a recorded repeat<> sets
// per position, or a word of the parameter block.
template <class T, std::size_t Cap>
constexpr void param_access(T& t, const plan::program_plan<Cap>& p, int n) {
    const bool loop = p.loop_param >= 0 && p.params[p.loop_param] == n;
    if (loop && one_shader(p.how))
        t << "vkf_position";
    else
        t << (loop ? "position.p_" : "params.p_") << p.g[n].name.view();
}

} // namespace vkfuse::glsl
