// vkfuse/reference/eval.hpp — the same expression types, evaluated on the CPU with Eigen.
//
// The reference is the judge of every GPU result, so it is kept independent of the GPU path: it walks the
// expression *types* directly (not the lowered DAG the GLSL comes from) and computes in double precision, so a bug
// in lowering, sharing or emission cannot hide by being repeated here.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstddef>
#include <limits>
#include <map>
#include <variant>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../expr/node.hpp"
#include "../formats/half.hpp"

namespace vkfuse::reference {

// Host data for the leaves, by name: f32 buffers (vectors, row-major matrices, states), f32 params and u32
// indices. Evaluation writes into it: appends update states in place, and every named result and output is
// recorded in `results`.
struct bindings {
    std::map<std::string, std::vector<float>, std::less<>> buffers;
    std::map<std::string, float, std::less<>> params;
    std::map<std::string, std::uint32_t, std::less<>> indices;
    std::map<std::string, std::vector<double>, std::less<>> results;
    // Values already computed in this evaluation, by node type: a stack of layers uses each layer's output several
    // times, and walking the tree instead of the DAG would cost exponentially many evaluations.
    std::map<const void*, std::variant<double, Eigen::ArrayXd, std::string>> memo;
};

using vector = Eigen::ArrayXd;

namespace detail {

inline vector as_vector(double s, Eigen::Index n) { return vector::Constant(n, s); }
inline const vector& as_vector(const vector& v, Eigen::Index) { return v; }
inline Eigen::Index length(double) { return 1; }
inline Eigen::Index length(const vector& v) { return v.size(); }

inline std::span<const float> find_buffer(const bindings& b, std::string_view name, std::size_t elements) {
    auto it = b.buffers.find(name);
    if (it == b.buffers.end())
        throw usage_error("vkfuse::reference: no data bound for '" + std::string(name) + "'");
    if (it->second.size() != elements)
        throw usage_error("vkfuse::reference: '" + std::string(name) + "' has " + std::to_string(it->second.size()) +
                          " values, its shape needs " + std::to_string(elements));
    return it->second;
}

} // namespace detail

inline void find_state(const bindings& b, std::string_view name, std::size_t elements) {
    detail::find_buffer(b, name, elements);
}

// ---------------------------------------------------------------------------------------------------------------
// eval: a scalar node gives a double, a vector node an Eigen::ArrayXd.
// ---------------------------------------------------------------------------------------------------------------

// Declared first: the overloads call each other, and argument-dependent lookup would not look in this namespace.
template <role R, fixed_string Name, class D, class S>
auto eval(const expr::placeholder<R, Name, D, S>&, bindings&);
template <float V>
double eval(const expr::constant<V>&, bindings&);
template <op O, class A, class S>
auto eval(const expr::unary<O, A, S>&, bindings&);
template <op O, class A, class B, class S>
auto eval(const expr::binary<O, A, B, S>&, bindings&);
template <op O, class A>
double eval(const expr::reduce<O, A>&, bindings&);
template <class W, class X>
vector eval(const expr::product<W, X>&, bindings&);
template <fixed_string Name, class A>
auto eval(const expr::named_value<Name, A>&, bindings&);
template <std::size_t HD, float Theta, std::size_t MaxPos, class X, class Pos, rope_scaling S>
vector eval(const expr::rotary<HD, Theta, MaxPos, X, Pos, S>&, bindings&);
template <class S, class X, class Pos>
std::string eval(const expr::cache_write<S, X, Pos>&, bindings&);
template <std::size_t H, std::size_t KV, class Q, class K, class V, class Pos>
vector eval(const expr::decode_attention<H, KV, Q, K, V, Pos>&, bindings&);
template <class E, class Token>
vector eval(const expr::row_lookup<E, Token>&, bindings&);

template <class T>
inline constexpr char type_tag = 0;  // its address identifies type T

// eval, once per node type and evaluation.
template <class E>
auto value_of(const E& e, bindings& b) {
    using R = decltype(eval(e, b));
    const void* key = &type_tag<E>;
    if (auto it = b.memo.find(key); it != b.memo.end()) return std::get<R>(it->second);
    R r = eval(e, b);
    b.memo.emplace(key, r);
    return r;
}

template <role R, fixed_string Name, class D, class S>
auto eval(const expr::placeholder<R, Name, D, S>&, bindings& b) {
    if constexpr (R == role::param && std::is_same_v<D, u32>) {
        auto it = b.indices.find(Name.view());
        if (it == b.indices.end())
            throw usage_error("vkfuse::reference: no value bound for index '" + std::string(Name.view()) + "'");
        return static_cast<double>(it->second);
    } else if constexpr (R == role::state) {
        return std::string(Name.view());  // a cache operand of attention: read by name there
    } else if constexpr (S::rank == 2) {
        static_assert(S::rank <= 1, "vkfuse::reference: a matrix is only evaluated as part of a matvec");
        return 0.0;
    } else if constexpr (R == role::param) {
        auto it = b.params.find(Name.view());
        if (it == b.params.end())
            throw usage_error("vkfuse::reference: no value bound for param '" + std::string(Name.view()) + "'");
        return static_cast<double>(it->second);
    } else if constexpr (S::rank == 0) {
        return static_cast<double>(detail::find_buffer(b, Name.view(), 1)[0]);
    } else {
        const auto data = detail::find_buffer(b, Name.view(), S::size);
        return vector(Eigen::Map<const Eigen::ArrayXf>(data.data(), static_cast<Eigen::Index>(S::size)).cast<double>());
    }
}

template <float V>
double eval(const expr::constant<V>&, bindings&) {
    return static_cast<double>(V);
}

template <op O, class A, class S>
auto eval(const expr::unary<O, A, S>& e, bindings& b) {
    auto a = value_of(e.a, b);
    if constexpr (S::rank == 0)
        return op_traits<O>::reference(a);
    else
        return vector(a.unaryExpr([](double x) { return op_traits<O>::reference(x); }));
}

template <op O, class A, class B, class S>
auto eval(const expr::binary<O, A, B, S>& e, bindings& b) {
    auto a = value_of(e.a, b);
    auto c = value_of(e.b, b);
    if constexpr (S::rank == 0) {
        return op_traits<O>::reference(a, c);
    } else {
        const Eigen::Index n = static_cast<Eigen::Index>(S::size);
        return vector(detail::as_vector(a, n).binaryExpr(detail::as_vector(c, n),
                                                         [](double x, double y) { return op_traits<O>::reference(x, y); }));
    }
}

// The fold op_traits<O> describes: acc = combine(acc, x) from the identity, then the mean or the index.
template <op O, class A>
double eval(const expr::reduce<O, A>& e, bindings& b) {
    constexpr op_info r = op_traits<O>::info;
    const vector a = value_of(e.a, b);
    double acc = r.identity;
    Eigen::Index at = 0;  // the first index at which acc took its final value
    bool finite = true;  // no NaN, no +infinity (argmax)
    for (Eigen::Index i = 0; i < a.size(); ++i) {
        const double next = op_traits<r.combine>::reference(acc, a[i]);
        if (next != acc) at = i;
        acc = next;
        finite = finite && !std::isnan(a[i]) && a[i] != std::numeric_limits<double>::infinity();
    }
    if constexpr (r.indexed)
        return static_cast<double>(finite ? at : a.size());
    else if constexpr (r.mean)
        return acc / static_cast<double>(a.size());
    else
        return acc;
}

template <class W, class X>
vector eval(const expr::product<W, X>& e, bindings& b) {
    constexpr auto rows = static_cast<Eigen::Index>(W::shape::dims[0]);
    constexpr auto cols = static_cast<Eigen::Index>(W::shape::dims[1]);
    const auto data = detail::find_buffer(b, W::name.view(), W::shape::size);
    const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> w(data.data(), rows,
                                                                                                  cols);
    const vector x = value_of(e.x, b);
    return vector(w.cast<double>() * x.matrix());
}

namespace detail {
inline std::vector<double> to_values(double v) { return {v}; }
inline std::vector<double> to_values(const vector& v) { return std::vector<double>(v.data(), v.data() + v.size()); }
} // namespace detail

template <fixed_string Name, class A>
auto eval(const expr::named_value<Name, A>& e, bindings& b) {
    auto value = value_of(e.a, b);
    b.results[std::string(Name.view())] = detail::to_values(value);
    return value;
}

// Rotate-half RoPE in double: the pair (j, j + d/2) of each head turned by pos * theta^(-2j/d) (or the scaled
// frequency).
template <std::size_t HD, float Theta, std::size_t MaxPos, class X, class Pos, rope_scaling S>
vector eval(const expr::rotary<HD, Theta, MaxPos, X, Pos, S>& e, bindings& b) {
    const vector x = value_of(e.a, b);
    const double pos = value_of(e.pos, b);
    vector out(x.size());
    for (Eigen::Index head = 0; head < x.size() / static_cast<Eigen::Index>(HD); ++head)
        for (std::size_t j = 0; j < HD / 2; ++j) {
            const double angle = pos * rope_inverse_frequency(HD, Theta, S, static_cast<std::uint32_t>(j));
            const Eigen::Index lo = head * static_cast<Eigen::Index>(HD) + static_cast<Eigen::Index>(j);
            const Eigen::Index hi = lo + static_cast<Eigen::Index>(HD / 2);
            out[lo] = x[lo] * std::cos(angle) - x[hi] * std::sin(angle);
            out[hi] = x[hi] * std::cos(angle) + x[lo] * std::sin(angle);
        }
    return out;
}

// Writes row `pos` of the named state; the value is the state's name, for attention to read.
template <class S, class X, class Pos>
std::string eval(const expr::cache_write<S, X, Pos>& e, bindings& b) {
    const vector x = value_of(e.a, b);
    const auto pos = static_cast<std::size_t>(value_of(e.pos, b));
    constexpr std::size_t width = S::shape::dims[1];
    find_state(b, S::name.view(), S::shape::size);
    auto& state = b.buffers.find(S::name.view())->second;
    for (std::size_t i = 0; i < width; ++i) {
        const auto v = static_cast<float>(x[static_cast<Eigen::Index>(i)]);
        // the cache holds what its storage can: an f16 cache the value rounded to nearest even, as the device writes it
        state[pos * width + i] =
            S::storage::code == dtype_code::f16 ? formats::to_f32(formats::to_f16(v)) : v;
    }
    return std::string(S::name.view());
}

template <std::size_t H, std::size_t KV, class Q, class K, class V, class Pos>
vector eval(const expr::decode_attention<H, KV, Q, K, V, Pos>& e, bindings& b) {
    constexpr std::size_t hd = expr::decode_attention<H, KV, Q, K, V, Pos>::head_dim;
    constexpr std::size_t width = KV * hd;
    const vector q = value_of(e.q, b);
    const std::string k_name = value_of(e.k, b), v_name = value_of(e.v, b);  // performs the appends
    const auto pos = static_cast<std::size_t>(value_of(e.pos, b));
    const auto& k = b.buffers.find(k_name)->second;
    const auto& v = b.buffers.find(v_name)->second;
    vector out = vector::Zero(static_cast<Eigen::Index>(H * hd));
    for (std::size_t h = 0; h < H; ++h) {
        const std::size_t base = h / (H / KV) * hd;
        std::vector<double> score(pos + 1);
        double top = -std::numeric_limits<double>::infinity();
        for (std::size_t t = 0; t <= pos; ++t) {
            double s = 0;
            for (std::size_t d = 0; d < hd; ++d) s += q[static_cast<Eigen::Index>(h * hd + d)] * k[t * width + base + d];
            score[t] = s / std::sqrt(static_cast<double>(hd));
            top = std::max(top, score[t]);
        }
        double total = 0;
        for (double& s : score) total += (s = std::exp(s - top));
        for (std::size_t t = 0; t <= pos; ++t)
            for (std::size_t d = 0; d < hd; ++d)
                out[static_cast<Eigen::Index>(h * hd + d)] += score[t] / total * v[t * width + base + d];
    }
    return out;
}

template <class E, class Token>
vector eval(const expr::row_lookup<E, Token>& e, bindings& b) {
    constexpr auto cols = static_cast<Eigen::Index>(E::shape::dims[1]);
    const auto table = detail::find_buffer(b, E::name.view(), E::shape::size);
    const auto token = static_cast<Eigen::Index>(value_of(e.token, b));
    return Eigen::Map<const Eigen::ArrayXf>(table.data() + token * cols, cols).cast<double>();
}

using result_map = std::map<std::string, std::vector<double>, std::less<>>;

namespace detail {
template <class Out, class E>
void evaluate_entry(const expr::assignment<Out, E>&, bindings& b, result_map& out) {
    out[std::string(Out::name.view())] = b.results[std::string(Out::name.view())] = to_values(value_of(E{}, b));
}
template <class Effect>
void evaluate_entry(const Effect& e, bindings& b, result_map&) {
    value_of(e, b);  // an append: it writes its state
}
} // namespace detail

// Runs every entry of the program in order; returns each output by name (named results are in b.results).
template <class... Entries>
result_map evaluate(const expr::program<Entries...>&, bindings& b) {
    b.memo.clear();  // inputs, indices and states may have changed since the last evaluation
    result_map out;
    (detail::evaluate_entry(Entries{}, b, out), ...);
    return out;
}

// A repeat<>: the program once per position, in order; the outputs of the last.
template <fixed_string Index, std::size_t Count, class P>
result_map evaluate(const expr::repeated<Index, Count, P>&, bindings& b) {
    result_map out;
    for (std::size_t position = 0; position < Count; ++position) {
        b.indices[std::string(Index.view())] = static_cast<std::uint32_t>(position);
        out = evaluate(P{}, b);
    }
    return out;
}

template <class Out, class E>
result_map evaluate(const expr::assignment<Out, E>&, bindings& b) {
    return evaluate(expr::program<expr::assignment<Out, E>>{}, b);
}

// A stack<L>: the body once per layer, each layer seeing its own slice of every per-layer weight and state (the
// bindings hold all L layers' values of those, layer 0's first) and reading the previous layer's output as its
// input; the outputs of the last layer. The caller's input is left as it was; the states keep their updates.
template <std::size_t L, class In, class Out, class Body>
result_map evaluate(const expr::stack<L, In, Out, Body>&, bindings& b) {
    std::vector<std::string> per_layer;
    for (const auto& leaf : expr::detail::program_leaves<Body>())
        if (leaf.leaf_role == role::weight || leaf.leaf_role == role::state)
            per_layer.emplace_back(leaf.name, leaf.size);
    std::map<std::string, std::vector<float>, std::less<>> all;
    for (const std::string& name : per_layer) {
        auto it = b.buffers.find(name);
        if (it == b.buffers.end())
            throw usage_error("vkfuse::reference: no data bound for '" + name + "' (" + std::to_string(L) +
                              " layers' values, layer 0's first)");
        if (it->second.size() % L != 0)
            throw usage_error("vkfuse::reference: '" + name + "' has " + std::to_string(it->second.size()) +
                              " values, not a whole number of copies for " + std::to_string(L) + " layers");
        all[name] = std::move(it->second);
    }
    const std::string in(In::name.view()), out(Out::name.view());
    const auto saved_input = b.buffers.find(in) != b.buffers.end() ? b.buffers[in] : std::vector<float>{};
    result_map result;
    for (std::size_t layer = 0; layer < L; ++layer) {
        for (const std::string& name : per_layer) {
            const auto& whole = all[name];
            const std::size_t n = whole.size() / L;
            b.buffers[name].assign(whole.begin() + static_cast<std::ptrdiff_t>(layer * n),
                                   whole.begin() + static_cast<std::ptrdiff_t>((layer + 1) * n));
        }
        result = evaluate(Body{}, b);
        for (const std::string& name : per_layer) {  // appends wrote this layer's cache
            auto& whole = all[name];
            std::copy(b.buffers[name].begin(), b.buffers[name].end(),
                      whole.begin() + static_cast<std::ptrdiff_t>(layer * (whole.size() / L)));
        }
        const std::vector<double>& y = result.at(out);
        b.buffers[in].assign(y.begin(), y.end());  // the next layer's input, as the device stores it: f32
    }
    for (auto& [name, values] : all) b.buffers[name] = std::move(values);
    b.buffers[in] = saved_input;
    return result;
}

// steps(...): each step in order; a step's outputs are bound by name as inputs of the steps after it. The outputs
// of every step.
template <class... Steps>
result_map evaluate(const expr::steps<Steps...>&, bindings& b) {
    result_map all;
    auto one = [&](auto step) {
        const result_map outputs = evaluate(step, b);
        for (const auto& [name, values] : outputs) {
            b.buffers[name].assign(values.begin(), values.end());
            all[name] = values;
        }
    };
    (one(Steps{}), ...);
    return all;
}

} // namespace vkfuse::reference
