// Property test: random compositions of elementwise ops, reductions, matvecs and the norm/softmax compositions,
// generated at compile time from a seed, must compile to GLSL that glslang accepts and agree with Eigen under every
// strategy (per_op, fused, single_dispatch), and the three strategies must agree with each other.
//
// Expressions are empty types, so the generator is template metaprogramming: gen<Seed, Depth, N>() steps a
// splitmix64 on Seed to pick a node kind and recurses with derived seeds. Every kind keeps values tame (inputs in
// [-1, 1], matrices in [-0.1, 0.1], exp only of bounded arguments, divisors >= 1, rsqrt of values >= 0.1, reductions
// of mixed-sign vectors only used additively), so a relative L2 error of 1e-5 in f32 against Eigen in double is a
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
inline constexpr std::size_t tree_budget = 64;

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

// One node of kind chosen by S with operands of depth < D. X, Y: operands used once; Xd, Yd: operands used several
// times in the tree (depth D - 2, so repetition does not compound).
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
        constexpr auto x = g<s1, d1, N>;
        if constexpr (variant % 4 == 0) return x * c<0.5f>;
        else if constexpr (variant % 4 == 1) return c<0.25f> - x;
        else if constexpr (variant % 4 == 2) return max(x, c<-0.5f>);
        else return min(c<0.5f>, x);
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
        constexpr auto x = g<s1, dd, N>;
        return rsqrt(x * x + c<0.5f>);
    } else if constexpr (kind < 17) {
        // A reduction, broadcast back as a scalar.
        constexpr auto x = g<s1, d1, N>;
        if constexpr (variant % 5 == 0) return x + mean(g<s2, d2, N>);
        else if constexpr (variant % 5 == 1) return x - reduce_max(g<s2, d2, N>);
        else if constexpr (variant % 5 == 2) return x * mean(sigmoid(g<s2, d2, N>));
        else if constexpr (variant % 5 == 3) return x + sum(g<s2, d2, N>) * c<inv_n>;
        else return x * rsqrt(mean(g<s2, dd, N> * g<s2, dd, N>) + c<0.1f>);
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
        if constexpr (plan::tree_size<E> > tree_budget)
            return g<child(S, 1), D - 1, N>;  // already instantiated by node<S, D, N>
        else
            return E{};
    }
}

// One random program: y = gen<Seed, depth>, with depth 3 or 4 chosen by the seed.
template <std::uint64_t Seed, std::size_t N>
inline constexpr auto program = (output<"y", N>{} = g<Seed, 3 + static_cast<int>(splitmix64(~Seed) % 2), N>);

template <std::uint64_t Seed, std::size_t N>
struct case_c {
    static constexpr std::uint64_t seed = Seed;
    static constexpr std::size_t n = N;
};

double rel_l2(const std::vector<float>& x, const std::vector<float>& ref) {
    double d2 = 0, r2 = 0;
    for (std::size_t i = 0; i < x.size() && i < ref.size(); ++i) {
        const double e = static_cast<double>(x[i]) - ref[i];
        d2 += e * e;
        r2 += static_cast<double>(ref[i]) * ref[i];
    }
    if (x.size() != ref.size()) return HUGE_VAL;
    return r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2);
}

template <class Case>
void check_random_program() {
    constexpr auto p = program<Case::seed, Case::n>;
    using P = std::remove_cvref_t<decltype(p)>;
    static_assert(glsl::kernel_count<P, strategy::single_dispatch> == 1);
    static_assert(glsl::kernel_count<P, strategy::per_op> >= glsl::kernel_count<P, strategy::fused>);

    verify_options o;
    o.seed = static_cast<std::uint32_t>(Case::seed ^ (Case::seed >> 32));
    o.ranges["w1"] = {-0.1f, 0.1f};
    o.ranges["w2"] = {-0.1f, 0.1f};
    o.ranges["g"] = {0.5f, 1.5f};

    INFO("seed " << Case::seed << ", N " << Case::n << ", tree size " << plan::tree_size<typename P::value>
                 << ", kernels per_op/fused " << glsl::kernel_count<P, strategy::per_op> << "/"
                 << glsl::kernel_count<P, strategy::fused>);
    const verify_report per_op_r = verify(vkfuse_test::context(), p, vkfuse::per_op, o);
    const verify_report fused_r = verify(vkfuse_test::context(), p, vkfuse::fused, o);
    const verify_report single_r = verify(vkfuse_test::context(), p, vkfuse::single_dispatch, o);
    {
        INFO("per_op: " << per_op_r.summary());
        CHECK(per_op_r.ok());
    }
    {
        INFO("fused: " << fused_r.summary());
        CHECK(fused_r.ok());
    }
    {
        INFO("single_dispatch: " << single_r.summary());
        CHECK(single_r.ok());
    }
    // Same inputs (same verify seed), so the strategies must agree with each other too.
    const auto y = [](const verify_report& r) {
        const auto it = r.device.find("y");
        return it == r.device.end() ? std::vector<float>{} : it->second;
    };
    REQUIRE(y(fused_r).size() == Case::n);
    CHECK(rel_l2(y(per_op_r), y(fused_r)) <= 1e-5);
    CHECK(rel_l2(y(single_r), y(fused_r)) <= 1e-5);
    vkfuse_test::check_validation_clean();
}

} // namespace prop
} // namespace

// 24 programs at N = 37 (odd, not a multiple of the workgroup), 4 at N = 260 (more than one workgroup's worth).
#define VKFUSE_PROP_SMALL                                                                                           \
    prop::case_c<1, 37>, prop::case_c<2, 37>, prop::case_c<3, 37>, prop::case_c<4, 37>, prop::case_c<5, 37>,        \
        prop::case_c<6, 37>, prop::case_c<7, 37>, prop::case_c<8, 37>, prop::case_c<9, 37>, prop::case_c<10, 37>,   \
        prop::case_c<11, 37>, prop::case_c<12, 37>, prop::case_c<13, 37>, prop::case_c<14, 37>,                     \
        prop::case_c<15, 37>, prop::case_c<16, 37>, prop::case_c<17, 37>, prop::case_c<18, 37>,                     \
        prop::case_c<19, 37>, prop::case_c<20, 37>, prop::case_c<21, 37>, prop::case_c<22, 37>,                     \
        prop::case_c<23, 37>, prop::case_c<24, 37>
#define VKFUSE_PROP_LARGE prop::case_c<101, 260>, prop::case_c<102, 260>, prop::case_c<103, 260>, prop::case_c<104, 260>

TEST_CASE_TEMPLATE("random compositions match Eigen under every strategy", Case, VKFUSE_PROP_SMALL,
                   VKFUSE_PROP_LARGE) {
    prop::check_random_program<Case>();
}
