// Property test: random compositions of elementwise ops, reductions, matvecs and the norm/softmax compositions,
// generated at compile time from a seed, must compile to GLSL that glslang accepts and agree with Eigen under every
// strategy (per_op, fused, single_dispatch, persistent), and the strategies must agree with each other.
//
// Expressions are empty types, so the generator is template metaprogramming: gen<Seed, Depth, N>() steps a
// splitmix64 on Seed to pick a node kind and recurses with derived seeds. Every kind keeps values tame (inputs in
// [-1, 1], matrices in [-0.1, 0.1], exp only of bounded arguments, divisors >= 1, rsqrt, sqrt and log of values
// >= 0.1, reductions of mixed-sign vectors only used additively or added to 1), so a relative L2 error of 1e-5 in f32 against Eigen in double is a
// fair bar: a failure is a code generation or planning bug, not ill-conditioning.
#include "support.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using namespace vkfuse;

namespace {
namespace prop {

constexpr std::uint64_t splitmix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// The seed of child `k` of the node with seed `s`.
constexpr std::uint64_t child(std::uint64_t s, std::uint64_t k) { return splitmix64(s ^ (k * 0xd1342543de82ef95ull)); }

// Largest tree (nodes counted with repetition, as the planner's graph capacity is) a generated node may have; a
// candidate above it is replaced by its first operand. Bounds compile time and memory.
inline constexpr std::size_t tree_budget = 96;

// Placeholders: one name, one shape. Square matrices, so every matvec composes with every vector.
template <std::size_t N> using in_a = input<"a", N>;
template <std::size_t N> using in_b = input<"b", N>;
template <std::size_t N> using gain = weight<"g", N>;      // drawn from [0.5, 1.5]
template <std::size_t N> using bias = weight<"beta", N>;
template <std::size_t N> using w1 = weight<"w1", N, N>;    // drawn from [-0.1, 0.1]
template <std::size_t N> using w2 = weight<"w2", N, N>;

template <std::uint64_t S, int D, std::size_t N>
constexpr auto gen();

// The generated expression as a value, so that a branch mentions (and instantiates) only the operands it uses.
template <std::uint64_t S, int D, std::size_t N>
inline constexpr auto g = gen<S, (D < 0 ? 0 : D), N>();

template <std::uint64_t S, std::size_t N>
constexpr auto leaf() {
    constexpr std::uint64_t r = splitmix64(S) % 8;
    if constexpr (r < 3) return in_a<N>{};
    else if constexpr (r < 6) return in_b<N>{};
    else if constexpr (r < 7) return gain<N>{};
    else return bias<N>{};
}

// One node, of a kind chosen by S, with operands of depth < D: d1 and d2 for operands used once, dd = D - 2 for an
// operand that appears several times in the tree (so repetition does not compound).
template <std::uint64_t S, int D, std::size_t N>
constexpr auto node() {
    constexpr std::uint64_t r = splitmix64(S);
    constexpr unsigned kind = static_cast<unsigned>(r % 28);
    constexpr unsigned variant = static_cast<unsigned>((r >> 20) % 840);  // divisible by 2..8
    constexpr int d1 = D - 1;
    constexpr int d2 = D - 1 - static_cast<int>((r >> 40) % 2);  // the second operand is sometimes shallower
    constexpr int dd = D - 2;
    constexpr std::uint64_t s1 = child(S, 1), s2 = child(S, 2);
    constexpr float inv_n = 1.0f / static_cast<float>(N);

    if constexpr (kind < 3) {
        return g<s1, d1, N> + g<s2, d2, N>;
    } else if constexpr (kind < 5) {
        return g<s1, d1, N> - g<s2, d2, N>;
    } else if constexpr (kind < 7) {
        return g<s1, d1, N> * g<s2, d2, N>;
    } else if constexpr (kind == 7) {
        return g<s1, d1, N> / (c<1.0f> + g<s2, dd, N> * g<s2, dd, N>);
    } else if constexpr (kind == 8) {
        if constexpr (variant % 2 == 0) return max(g<s1, d1, N>, g<s2, d2, N>);
        else return min(g<s1, d1, N>, g<s2, d2, N>);
    } else if constexpr (kind == 9) {
        // with a scalar: a literal, or a runtime param (a push constant, drawn from [-1, 1])
        constexpr auto x = g<s1, d1, N>;
        if constexpr (variant % 5 == 0) return x * c<0.5f>;
        else if constexpr (variant % 5 == 1) return c<0.25f> - x;
        else if constexpr (variant % 5 == 2) return max(x, c<-0.5f>);
        else if constexpr (variant % 5 == 3) return min(c<0.5f>, x);
        else return x * param<"s">{} + c<0.5f>;
    } else if constexpr (kind < 13) {
        constexpr auto x = g<s1, d1, N>;
        if constexpr (variant % 7 == 0) return tanh(x);
        else if constexpr (variant % 7 == 1) return sigmoid(x);
        else if constexpr (variant % 7 == 2) return silu(x);
        else if constexpr (variant % 7 == 3) return gelu(x);
        else if constexpr (variant % 7 == 4) return gelu_erf(x);
        else if constexpr (variant % 7 == 5) return exp(tanh(x));
        else return -x;
    } else if constexpr (kind == 13) {
        // rsqrt, sqrt and log of arguments bounded away from 0
        if constexpr (variant % 3 == 0) return rsqrt(g<s1, dd, N> * g<s1, dd, N> + c<0.5f>);
        else if constexpr (variant % 3 == 1) return sqrt(g<s1, dd, N> * g<s1, dd, N> + c<0.25f>);
        else return log(c<1.5f> + tanh(g<s1, d1, N>));
    } else if constexpr (kind < 17) {
        // A reduction, broadcast back as a scalar.
        constexpr auto x = g<s1, d1, N>;
        if constexpr (variant % 6 == 0) return x + mean(g<s2, d2, N>);
        else if constexpr (variant % 6 == 1) return x - reduce_max(g<s2, d2, N>);
        else if constexpr (variant % 6 == 2) return x * mean(sigmoid(g<s2, d2, N>));
        else if constexpr (variant % 6 == 3) return x + sum(g<s2, d2, N>) * c<inv_n>;
        else if constexpr (variant % 6 == 4) return x * rsqrt(mean(g<s2, dd, N> * g<s2, dd, N>) + c<0.1f>);
        else return x * (c<1.0f> + sigmoid(reduce_max(g<s2, dd, N>)) * tanh(mean(g<s2, dd, N>)));  // scalar math
    } else if constexpr (kind < 23) {
        if constexpr (variant % 2 == 0) return w1<N>{} * g<s1, d1, N>;
        else return w2<N>{} * g<s1, d1, N>;
    } else if constexpr (kind == 23) {
        // softmax of a bounded argument, scaled back to O(1)
        return softmax(tanh(g<s1, dd, N>) * c<3.0f>) * c<static_cast<float>(N)>;
    } else if constexpr (kind == 24) {
        return rmsnorm<1e-5f>(g<s1, dd, N>, gain<N>{});
    } else if constexpr (kind == 25) {
        return layernorm<1e-5f>(g<s1, dd, N>, gain<N>{}, bias<N>{});
    } else {
        // a feed-forward piece: gated, or linear + activation
        if constexpr (variant % 2 == 0) return swiglu(w1<N>{} * g<s1, dd, N>, w2<N>{} * g<s1, dd, N>);
        else return gelu(linear(w2<N>{}, g<s1, d1, N>, bias<N>{}));
    }
}

template <std::uint64_t S, int D, std::size_t N>
constexpr auto gen() {
    if constexpr (D <= 0) {
        return leaf<S, N>();
    } else {
        using E = decltype(node<S, D, N>());
        if constexpr (expr::tree_size<E> > tree_budget)
            return g<child(S, 1), D - 1, N>;  // already instantiated by node<S, D, N>
        else
            return E{};
    }
}

// One random expression: depth 3 or 4, chosen by the seed.
template <std::uint64_t Seed, std::size_t N>
inline constexpr auto random_expr = g<Seed, 3 + static_cast<int>(splitmix64(~Seed) % 2), N>;

// A test program: y = e for Outputs == 1; otherwise a layer_graph of that many random expressions (outputs y, y1,
// y2, y3), planned together: more expressions per program instantiation, and subexpressions shared between outputs.
// (Two equal expressions in one layer_graph would be a compile error, one value stored into two outputs; seeds that
// gave that would simply be replaced.)
template <std::uint64_t Seed, std::size_t N, int Outputs>
constexpr auto make_program() {
    static_assert(Outputs >= 1 && Outputs <= 4);
    constexpr output<"y", N> y;
    constexpr output<"y1", N> y1;
    constexpr output<"y2", N> y2;
    constexpr output<"y3", N> y3;
    constexpr auto e0 = random_expr<Seed, N>;
    if constexpr (Outputs == 1) return (y = e0);
    else if constexpr (Outputs == 2) return layer_graph(y = e0, y1 = random_expr<child(Seed, 11), N>);
    else if constexpr (Outputs == 3)
        return layer_graph(y = e0, y1 = random_expr<child(Seed, 11), N>, y2 = random_expr<child(Seed, 12), N>);
    else
        return layer_graph(y = e0, y1 = random_expr<child(Seed, 11), N>, y2 = random_expr<child(Seed, 12), N>,
                           y3 = random_expr<child(Seed, 13), N>);
}

template <std::uint64_t Seed, std::size_t N, int Outputs>
struct case_c {
    static constexpr std::uint64_t seed = Seed;
    static constexpr std::size_t n = N;
    static constexpr int outputs = Outputs;
};

double rel_l2(const std::vector<float>& x, const std::vector<float>& ref) {
    if (x.size() != ref.size() || x.empty()) return HUGE_VAL;
    double d2 = 0, r2 = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double e = static_cast<double>(x[i]) - ref[i];
        d2 += e * e;
        r2 += static_cast<double>(ref[i]) * ref[i];
    }
    return r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2);
}

// Launch configurations: the default one, and one with small workgroups (N = 260 spans several, grid-stride loops
// go round), the shared-memory reductions instead of subgroup arithmetic, and every buffer packed into one binding.
// (Sizes stay small enough that single_dispatch's one workgroup runs far fewer than 65535 loop trips per invocation:
// llvmpipe silently ends a shader's loops after that many, LP_MAX_TGSI_LOOP_ITERATIONS.)
struct launch_case {
    std::string what;
    program_options options;
};
const launch_case launches[] = {
    {"default launch", {}},
    {"workgroup 64, no subgroups, packed buffers", {.workgroup_size = 64, .subgroups = false, .pack_buffers = true}},
};

template <class Case>
void check_random_program() {
    constexpr auto p = make_program<Case::seed, Case::n, Case::outputs>();
    using P = std::remove_cvref_t<decltype(p)>;
    constexpr int per_op_kernels = glsl::kernel_count<P, strategy::per_op>;
    constexpr int fused_kernels = glsl::kernel_count<P, strategy::fused>;
    static_assert(glsl::kernel_count<P, strategy::single_dispatch> == 1);
    static_assert(per_op_kernels >= fused_kernels);

    verify_options o;
    o.seed = static_cast<std::uint32_t>(Case::seed ^ (Case::seed >> 32));
    o.ranges["w1"] = {-0.1f, 0.1f};
    o.ranges["w2"] = {-0.1f, 0.1f};
    o.ranges["g"] = {0.5f, 1.5f};

    INFO("seed " << Case::seed << ", N " << Case::n << ", " << Case::outputs << " output(s), kernels per_op "
                 << per_op_kernels << ", fused " << fused_kernels);
    for (const launch_case& launch : launches) {
        INFO("launch: " << launch.what);
        const verify_report reports[] = {
            verify(vkfuse_test::context(), p, vkfuse::per_op, o, launch.options),
            verify(vkfuse_test::context(), p, vkfuse::fused, o, launch.options),
            verify(vkfuse_test::context(), p, vkfuse::single_dispatch, o, launch.options),
            verify(vkfuse_test::context(), p, vkfuse::persistent, o, launch.options),
        };
        const std::string names[] = {"per_op", "fused", "single_dispatch", "persistent"};
        for (int i = 0; i < 4; ++i) {
            INFO(names[i] << ": " << reports[i].summary());
            CHECK(reports[i].ok());
            CHECK(reports[i].device.size() == static_cast<std::size_t>(Case::outputs));
        }
        // The same data (the same verify seed) went into all three, so they must agree with each other too.
        for (const auto& [name, fused_y] : reports[1].device) {
            INFO("output " << name);
            REQUIRE(fused_y.size() == Case::n);
            CHECK(rel_l2(reports[0].device.at(name), fused_y) <= 1e-5);
            CHECK(rel_l2(reports[2].device.at(name), fused_y) <= 1e-5);
            CHECK(rel_l2(reports[3].device.at(name), fused_y) <= 1e-5);
        }
        vkfuse_test::check_validation_clean();
    }
}

} // namespace prop
} // namespace

// N = 37: odd, not a multiple of the workgroup or of 4 (the vec4 path's tail). N = 260: more than one workgroup.
// 17 expressions in 5 programs. Each program costs 5-8 s of compile time (the runtime is instantiated per program
// type and strategy, whatever the expression's size), so most of them hold four expressions.
#define VKFUSE_PROP_CASES                                                                                           \
    prop::case_c<9, 37, 1>, prop::case_c<3, 37, 4>, prop::case_c<4, 37, 4>, prop::case_c<5, 37, 4>,                 \
        prop::case_c<101, 260, 4>

TEST_CASE_TEMPLATE("random compositions match Eigen under every strategy", Case, VKFUSE_PROP_CASES) {
    prop::check_random_program<Case>();
}
