// vkfuse/reference/eval.hpp — the same expression types, evaluated on the CPU with Eigen.
//
// The reference is the judge of every GPU result, so it is kept independent of the GPU path: it walks the
// expression *types* directly (not the lowered DAG the GLSL comes from) and computes in double precision, so a bug
// in lowering, sharing or emission cannot hide by being repeated here.
#pragma once

#include <cmath>
#include <cstddef>
#include <map>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../expr/node.hpp"

namespace vkfuse::reference {

// Host data for the leaves, by name: f32 buffers (vectors and row-major matrices) and f32 params.
struct bindings {
    std::map<std::string, std::vector<float>, std::less<>> buffers;
    std::map<std::string, float, std::less<>> params;
};

using vector = Eigen::ArrayXd;

namespace detail {

// The scalar functions, in double. The GPU's formulas are the same ones in f32.
inline double apply(op o, double x) {
    switch (o) {
    case op::neg: return -x;
    case op::exp: return std::exp(x);
    case op::log: return std::log(x);
    case op::sqrt: return std::sqrt(x);
    case op::rsqrt: return 1.0 / std::sqrt(x);
    case op::tanh: return std::tanh(x);
    case op::sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case op::silu: return x / (1.0 + std::exp(-x));
    case op::gelu: {
        const double k = std::sqrt(2.0 / std::numbers::pi);
        return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
    }
    default: throw error("vkfuse::reference: unary op not handled");
    }
}

inline double apply(op o, double a, double b) {
    switch (o) {
    case op::add: return a + b;
    case op::sub: return a - b;
    case op::mul: return a * b;
    case op::div: return a / b;
    case op::max: return a > b ? a : b;
    case op::min: return a < b ? a : b;
    default: throw error("vkfuse::reference: binary op not handled");
    }
}

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

// ---------------------------------------------------------------------------------------------------------------
// eval: a scalar node gives a double, a vector node an Eigen::ArrayXd.
// ---------------------------------------------------------------------------------------------------------------

// Declared first: the overloads call each other, and argument-dependent lookup would not look in this namespace.
template <role R, fixed_string Name, class D, class S>
auto eval(const expr::placeholder<R, Name, D, S>&, const bindings&);
template <float V>
double eval(const expr::constant<V>&, const bindings&);
template <op O, class A, class S>
auto eval(const expr::unary<O, A, S>&, const bindings&);
template <op O, class A, class B, class S>
auto eval(const expr::binary<O, A, B, S>&, const bindings&);
template <op O, class A>
double eval(const expr::reduce<O, A>&, const bindings&);
template <class W, class X>
vector eval(const expr::product<W, X>&, const bindings&);

template <role R, fixed_string Name, class D, class S>
auto eval(const expr::placeholder<R, Name, D, S>&, const bindings& b) {
    static_assert(S::rank <= 1, "vkfuse::reference: a matrix is only evaluated as part of a matvec");
    if constexpr (R == role::param) {
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
double eval(const expr::constant<V>&, const bindings&) {
    return static_cast<double>(V);
}

template <op O, class A, class S>
auto eval(const expr::unary<O, A, S>& e, const bindings& b) {
    auto a = eval(e.a, b);
    if constexpr (S::rank == 0)
        return detail::apply(O, a);
    else
        return vector(a.unaryExpr([](double x) { return detail::apply(O, x); }));
}

template <op O, class A, class B, class S>
auto eval(const expr::binary<O, A, B, S>& e, const bindings& b) {
    auto a = eval(e.a, b);
    auto c = eval(e.b, b);
    if constexpr (S::rank == 0) {
        return detail::apply(O, a, c);
    } else {
        const Eigen::Index n = static_cast<Eigen::Index>(S::size);
        return vector(detail::as_vector(a, n).binaryExpr(detail::as_vector(c, n),
                                                         [](double x, double y) { return detail::apply(O, x, y); }));
    }
}

template <op O, class A>
double eval(const expr::reduce<O, A>& e, const bindings& b) {
    const vector a = eval(e.a, b);
    if constexpr (O == op::sum) return a.sum();
    else if constexpr (O == op::mean) return a.mean();
    else return a.maxCoeff();
}

template <class W, class X>
vector eval(const expr::product<W, X>& e, const bindings& b) {
    constexpr auto rows = static_cast<Eigen::Index>(W::shape::dims[0]);
    constexpr auto cols = static_cast<Eigen::Index>(W::shape::dims[1]);
    const auto data = detail::find_buffer(b, W::name.view(), W::shape::size);
    const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> w(data.data(), rows,
                                                                                                  cols);
    const vector x = eval(e.x, b);
    return vector(w.cast<double>() * x.matrix());
}

// The output of a program `y = e`, as doubles.
template <class Out, class E>
std::vector<double> evaluate(const expr::assignment<Out, E>& program, const bindings& b) {
    const auto value = eval(program.e, b);
    if constexpr (Out::shape::rank == 0)
        return {value};
    else
        return std::vector<double>(value.data(), value.data() + value.size());
}

} // namespace vkfuse::reference
