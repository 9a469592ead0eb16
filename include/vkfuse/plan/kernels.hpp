// vkfuse/plan/kernels.hpp — cutting a program's DAG into kernels, and laying out its buffers.
//
// A kernel computes one vector (or scalar) per dispatch. Inside a kernel, work is fused three ways:
//   * reductions over vectors the kernel can read (an RMSNorm's sum of squares) are computed by every workgroup
//     before anything else — recomputing D values per workgroup is cheaper than a dispatch boundary;
//   * elementwise work on a matvec's input is done as the matvec streams its matrix (prologue);
//   * elementwise work on matvec results, row by row, is done before the row is stored (epilogue).
// A boundary is forced only where a result is needed *in full* by every workgroup of its consumer while itself
// being the product of a matvec: the input vector of a matvec, or the operand of a reduction, that contains a
// matvec. Such a vector is materialised into a temporary buffer by a kernel of its own, which runs first.
//
// This is the planner's first cut (one strategy); strategies (per_op, fused, single_dispatch) and named
// intermediate results build on it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "graph.hpp"

namespace vkfuse::plan {

enum class kernel_kind : std::uint8_t {
    elementwise,  // one invocation per output element, after the reductions
    matvec,       // `lanes` invocations per output row, cooperating on the dot products
};

// A buffer of the program: a placeholder bound by name, or a temporary between two kernels.
struct buffer_slot {
    name_buf name;                 // the placeholder's name; empty for a temporary
    role slot_role = role::input;  // input, weight or output; temporaries say output (they are written)
    bool temporary = false;
    dtype_code dtype = dtype_code::f32;
    std::uint32_t elements = 0;
    int node = -1;                 // the graph node it holds (-1 for the program output)

    constexpr std::size_t bytes() const { return elements * dtype_bytes(dtype); }
};

template <std::size_t Cap>
struct kernel_plan {
    int root = -1;                 // the node it computes
    kernel_kind kind = kernel_kind::elementwise;
    std::uint32_t items = 0;       // output elements (rows, for a matvec kernel)
    int target = -1;               // buffer it writes
    int reads[Cap] = {};           // buffers it reads, ascending; bindings 0..read_count-1, then the target
    int read_count = 0;

    constexpr int binding_count() const { return read_count + 1; }
    constexpr int binding(int i) const { return i < read_count ? reads[i] : target; }
};

template <std::size_t Cap>
struct program_plan {
    graph<Cap> g;
    int root = -1;
    bool materialized[Cap] = {};   // computed by a kernel of its own into a temporary

    buffer_slot buffers[Cap + 1] = {};
    int buffer_count = 0;
    int buffer_of_node[Cap] = {};  // -1 where the node lives in no buffer
    int output_buffer = -1;

    int params[Cap] = {};          // param leaves, in push-constant order (4 bytes each)
    int param_count = 0;

    kernel_plan<Cap> kernels[Cap] = {};
    int kernel_count = 0;

    constexpr int param_index(int node) const {
        for (int i = 0; i < param_count; ++i)
            if (params[i] == node) return i;
        return -1;
    }
    constexpr std::uint32_t push_constant_bytes() const { return static_cast<std::uint32_t>(param_count) * 4u; }
    constexpr bool is_buffer_leaf(int n) const {
        return g[n].kind == node_kind::leaf && g[n].leaf_role != role::param;
    }
    // True where a kernel rooted at `root` reads node `n` from memory rather than computing it.
    constexpr bool stops_at(int n, int kernel_root) const {
        return is_buffer_leaf(n) || (materialized[n] && n != kernel_root);
    }
};

void vkfuse_error_output_has_the_name_of_a_placeholder_it_reads();

namespace detail {

// Marks every node a kernel rooted at `root` evaluates or reads (not descending past what it reads).
template <std::size_t Cap>
constexpr void mark_kernel_nodes(const program_plan<Cap>& p, int root, bool (&marks)[Cap]) {
    int stack[Cap * 2] = {};
    int top = 0;
    stack[top++] = root;
    while (top > 0) {
        const int n = stack[--top];
        if (marks[n]) continue;
        marks[n] = true;
        if (p.stops_at(n, root)) continue;
        if (p.g[n].a >= 0) stack[top++] = p.g[n].a;
        if (p.g[n].b >= 0) stack[top++] = p.g[n].b;
    }
}

} // namespace detail

// The plan of the program `Out = E`.
template <class Out, class E>
constexpr auto make_plan() {
    constexpr std::size_t cap = tree_size<E> + 1;
    program_plan<cap> p;
    p.root = lower<E>(p.g);
    const int n_nodes = p.g.size;

    // ---- where must a result be materialised? (see the header comment)
    bool holds_matvec[cap] = {};  // the node's value involves a matvec not yet materialised
    for (int i = 0; i < n_nodes; ++i) {
        const node& n = p.g[i];
        switch (n.kind) {
        case node_kind::leaf:
        case node_kind::constant: holds_matvec[i] = false; break;
        case node_kind::unary: holds_matvec[i] = holds_matvec[n.a]; break;
        case node_kind::binary: holds_matvec[i] = holds_matvec[n.a] || holds_matvec[n.b]; break;
        case node_kind::reduce:
            if (holds_matvec[n.a]) {
                p.materialized[n.a] = true;
                holds_matvec[n.a] = false;
            }
            holds_matvec[i] = false;
            break;
        case node_kind::matvec:
            if (holds_matvec[n.b]) {
                p.materialized[n.b] = true;
                holds_matvec[n.b] = false;
            }
            holds_matvec[i] = true;
            break;
        }
    }
    p.materialized[p.root] = false;  // the root goes to the output buffer

    // ---- buffers: placeholders in first-use order, the output, then temporaries
    for (int i = 0; i < n_nodes; ++i) p.buffer_of_node[i] = -1;
    for (int i = 0; i < n_nodes; ++i) {
        const node& n = p.g[i];
        if (n.kind != node_kind::leaf) continue;
        if (n.leaf_role == role::param) {
            p.params[p.param_count++] = i;
            continue;
        }
        if (n.name == name_buf::from(Out::name)) vkfuse_error_output_has_the_name_of_a_placeholder_it_reads();
        buffer_slot& b = p.buffers[p.buffer_count];
        b.name = n.name;
        b.slot_role = n.leaf_role;
        b.dtype = n.dtype;
        b.elements = n.elements();
        b.node = i;
        p.buffer_of_node[i] = p.buffer_count++;
    }
    {
        buffer_slot& b = p.buffers[p.buffer_count];
        b.name = name_buf::from(Out::name);
        b.slot_role = role::output;
        b.dtype = Out::dtype::code;
        b.elements = static_cast<std::uint32_t>(Out::shape::rows);
        b.node = p.root;
        p.output_buffer = p.buffer_count++;
    }
    for (int i = 0; i < n_nodes; ++i) {
        if (!p.materialized[i]) continue;
        buffer_slot& b = p.buffers[p.buffer_count];
        b.slot_role = role::output;
        b.temporary = true;
        b.dtype = dtype_code::f32;
        b.elements = p.g[i].elements();
        b.node = i;
        p.buffer_of_node[i] = p.buffer_count++;
    }

    // ---- kernels: each materialised node in topological order, then the root
    for (int i = 0; i < n_nodes; ++i) {
        if (!(p.materialized[i] || i == p.root)) continue;
        kernel_plan<cap>& k = p.kernels[p.kernel_count++];
        k.root = i;
        k.items = p.g[i].elements();
        k.target = i == p.root ? p.output_buffer : p.buffer_of_node[i];
        bool marks[cap] = {};
        detail::mark_kernel_nodes(p, i, marks);
        for (int n = 0; n < n_nodes; ++n) {
            if (!marks[n]) continue;
            if (p.g[n].kind == node_kind::matvec && !p.stops_at(n, i)) k.kind = kernel_kind::matvec;
        }
        for (int b = 0; b < p.buffer_count; ++b) {  // ascending buffer order = binding order
            const int n = p.buffers[b].node;
            if (b == k.target || n < 0 || !marks[n] || !p.stops_at(n, i)) continue;
            k.reads[k.read_count++] = b;
        }
    }
    return p;
}

} // namespace vkfuse::plan
