// Every op against the Eigen reference, at sizes that are and are not multiples of the workgroup size.
#include "support.hpp"

using namespace vkfuse;
using vkfuse_test::check_program;

namespace {

// Inputs in [0.1, 2]: valid for log, sqrt and rsqrt, and free of cancellation in sums.
verify_options positive() {
    verify_options o;
    o.low = 0.1f;
    o.high = 2.0f;
    return o;
}

template <std::size_t N>
struct size_c {
    static constexpr std::size_t value = N;
};

#define VKFUSE_TEST_SIZES size_c<1>, size_c<7>, size_c<255>, size_c<256>, size_c<257>, size_c<4099>

} // namespace

TEST_CASE_TEMPLATE("unary ops match Eigen", S, VKFUSE_TEST_SIZES) {
    constexpr std::size_t n = S::value;
    constexpr input<"x", n> x;
    constexpr output<"y", n> y;
    check_program(y = -x);
    check_program(y = exp(x));
    check_program(y = log(x), positive());
    check_program(y = sqrt(x), positive());
    check_program(y = rsqrt(x), positive());
    check_program(y = tanh(x * c<4.0f>));
    check_program(y = sigmoid(x * c<8.0f>));
    check_program(y = silu(x * c<8.0f>));
    check_program(y = gelu(x * c<4.0f>));
}

TEST_CASE_TEMPLATE("binary ops and broadcasting match Eigen", S, VKFUSE_TEST_SIZES) {
    constexpr std::size_t n = S::value;
    constexpr input<"a", n> a;
    constexpr input<"b", n> b;
    constexpr param<"s"> s;
    constexpr output<"y", n> y;
    check_program(y = a + b);
    check_program(y = a - b * c<0.5f>);
    check_program(y = a * b);
    verify_options divisor;
    divisor.ranges["b"] = {0.5f, 2.0f};
    check_program(y = a / b, divisor);
    check_program(y = max(a, b));
    check_program(y = min(a, b));
    check_program(y = a * s + c<-0.25f>);        // a runtime scalar (push constant) and a literal
    check_program(y = s - a);                     // scalar on the left
    check_program(y = min(c<0.5f>, max(a, s)));   // scalars in max/min
}

TEST_CASE_TEMPLATE("reductions match Eigen", S, VKFUSE_TEST_SIZES) {
    constexpr std::size_t n = S::value;
    constexpr input<"x", n> x;
    constexpr output<"s"> s;
    constexpr output<"y", n> y;
    check_program(s = sum(x), positive());
    check_program(s = mean(x * x), positive());
    check_program(s = reduce_max(x));
    check_program(y = x - reduce_max(x));
    // softmax: a reduction that uses another reduction
    check_program(y = exp(x - reduce_max(x)) / sum(exp(x - reduce_max(x))));
}

TEST_CASE_TEMPLATE("matvec matches Eigen", S, VKFUSE_TEST_SIZES) {
    constexpr std::size_t n = S::value;
    constexpr input<"x", n> x;
    // More rows than columns where that fits lavapipe's 128 MiB limit on one binding; odd row counts throughout.
    constexpr std::size_t tall = n < 2048 ? 2 * n + 3 : n / 3 + 1;
    constexpr weight<"w_tall", tall, n> w_tall;
    constexpr weight<"w_wide", 5, n> w_wide;  // few rows, long dot products
    constexpr output<"t", tall> t;
    constexpr output<"u", 5> u;
    check_program(t = w_tall * x);
    check_program(u = matvec(w_wide, x));
    check_program(u = w_wide * (x * c<2.0f>) + c<1.0f>);  // prologue and epilogue
}

TEST_CASE("matvec at 4096 x 4096 and non-square real sizes") {
    constexpr input<"x", 4096> x;
    constexpr weight<"w", 4096, 4096> w;
    constexpr output<"y", 4096> y;
    check_program(y = w * x);

    constexpr input<"h", 4864> h;
    constexpr weight<"w_down", 896, 4864> w_down;
    constexpr output<"z", 896> z;
    check_program(z = w_down * h);
}
