// Every op against the Eigen reference, at sizes that are and are not multiples of the workgroup size.
#include "support.hpp"

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

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

// True where the fused plan's first kernel reads buffer `name` through a vec4 view too.
template <class Program>
constexpr bool reads_as_vec4(std::string_view name) {
    constexpr auto& p = plan::plan_v<Program, strategy::fused>;
    for (int i = 0; i < p.kernels[0].binding_count; ++i) {
        const auto& bd = p.kernels[0].bindings[i];
        if (p.buffers[bd.buffer].name.view() == name) return bd.vec4;
    }
    return false;
}

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

// Lengths that divide by 4 take the vec4 loop (plan::kernel_scope::vectorized_reduction): 4 (one vec4), 260 (65 vec4s,
// not a multiple of the workgroup) and 4100 (1025, several trips per invocation).
TEST_CASE_TEMPLATE("reductions read four elements a trip where the length allows", S, size_c<4>, size_c<260>,
                   size_c<4100>) {
    constexpr std::size_t n = S::value;
    constexpr input<"x", n> x;
    constexpr output<"s"> s;
    constexpr output<"y", n> y;
    constexpr output_of<"best", u32> best;
    static_assert(reads_as_vec4<decltype(s = sum(x))>("x"));
    check_program(s = sum(x), positive());
    check_program(s = mean(x * x + c<1.0f>), positive());
    // logits of +-100: a softmax without its max overflows exp
    verify_options logits;
    logits.low = -100.0f;
    logits.high = 100.0f;
    check_program(y = exp(x - reduce_max(x)) / sum(exp(x - reduce_max(x))), logits);
    check_program(best = argmax(x), logits);

    // ties: the first index holding the maximum wins, inside one vec4, across vec4s of different invocations, and
    // across trips of one invocation
    program prog(vkfuse_test::context(), best = argmax(x));
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> dist(-100.0f, 99.0f);
    std::vector<std::vector<std::size_t>> cases = {{n - 1}, {n / 2, n - 1}};
    if (n >= 8) cases.push_back({5, 6});   // one vec4: elements 4..7
    if (n >= 8) cases.push_back({3, 4});   // the last of vec4 0, the first of vec4 1
    if (n > 4 * 256 + 1) cases.push_back({4 * 256 + 1, 4 * 256 + 2, n - 2});  // invocation 0's second trip
    for (const std::vector<std::size_t>& at : cases) {
        std::vector<float> data(n);
        for (float& v : data) v = dist(rng);
        for (std::size_t i : at) data[i] = 100.0f;
        prog.upload("x", data);
        prog.poison();
        prog.run();
        INFO("n " << n << ", maximum first at " << at.front());
        CHECK(prog.download_indices("best") == std::vector<std::uint32_t>{static_cast<std::uint32_t>(at.front())});
    }
    vkfuse_test::check_validation_clean();
}

TEST_CASE("a reduction over an embedding row reads the table four at a time") {
    constexpr uint_param<"pos"> token;
    constexpr weight<"embed", 37, 52> embed;  // 13 vec4s a row, an odd number of rows
    constexpr output<"y", 52> y;
    constexpr auto program = (y = embedding(embed, token) * rsqrt(mean(embedding(embed, token) *
                                                                          embedding(embed, token)) + c<1e-5f>));
    static_assert(reads_as_vec4<std::remove_cvref_t<decltype(program)>>("embed"));
    vkfuse_test::check_steps<strategy::fused>(program, {}, {0, 17, 36});
    vkfuse_test::check_steps<strategy::single_dispatch>(program, {}, {5});
    vkfuse_test::check_steps<strategy::persistent>(program, {}, {36});
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
