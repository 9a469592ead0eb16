// Compile-time facts: text building, exact float literals, shapes, lowering and sharing, and that the GLSL of a
// program is a constant expression.
#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

#include <vkfuse/vkfuse.hpp>

#include "../examples/fused_ffn.hpp"

using namespace vkfuse;

// ---- text and numbers
static_assert(build_text<[](auto& t) { t << "x = " << 42 << ";"; }>().view() == "x = 42;");
static_assert(decltype(build_text<[](auto& t) { t << "abc"; }>())::size() == 3);  // exactly sized
static_assert(format_v<0>.view() == "0");
static_assert(format_v<-9223372036854775807LL - 1>.view() == "-9223372036854775808");
static_assert(format_v<18446744073709551615ULL>.view() == "18446744073709551615");
static_assert(format_v<0.1f>.view() == "0.1");
static_assert(format_v<1e-6f>.view() == "0.000001");
static_assert(format_v<-2.5f>.view() == "-2.5");
static_assert(format_v<100.0f>.view() == "100.0");
static_assert(format_v<3.14159265f>.view() == "3.1415927");
static_assert(format_v<-0.0f>.view() == "-0.0");
static_assert(format_v<1e30f>.view() == "uintBitsToFloat(0x7149f2cau)");  // outside the exact-decimal range

// ---- shapes and nodes
static_assert(shape<>::rank == 0 && shape<7>::size == 7 && shape<3, 5>::size == 15);
static_assert(std::is_empty_v<decltype(input<"x", 4>{} + input<"x", 4>{})>);  // nodes hold no data
static_assert(std::is_same_v<decltype(weight<"w", 3, 4>{} * input<"x", 4>{})::shape, shape<3>>);
static_assert(std::is_same_v<decltype(input<"x", 4>{} * c<2.0f>)::shape, shape<4>>);
static_assert(std::is_same_v<decltype(sum(input<"x", 4>{}))::shape, shape<>>);

// ---- lowering: equal sub-expressions become one node
namespace {
constexpr input<"x", 8> x;
constexpr output<"y", 8> y;
constexpr auto twice = (y = exp(x) + exp(x));
using twice_t = decltype(twice);
constexpr auto& twice_plan = glsl::compiled<twice_t>::plan;
static_assert(twice_plan.g.size == 3);  // x, exp(x), the sum
static_assert(twice_plan.kernel_count == 1 && twice_plan.buffer_count == 2);
} // namespace

// ---- the demo's GLSL is a compile-time constant
namespace ex = examples::fused_ffn;
constexpr std::string_view demo_kernel_0 = glsl::source<ex::layer_type, 0>;
constexpr std::string_view demo_kernel_1 = glsl::source<ex::layer_type, 1>;
static_assert(demo_kernel_0.starts_with("#version 450\n"));
static_assert(demo_kernel_1.find("p_y[i] = ") != std::string_view::npos);
static_assert(glsl::kernel_count<ex::layer_type> == 2);

TEST_CASE("one expression type always yields the same text") {
    // Built twice, through two routes: the constant and a fresh build.
    constexpr auto again = build_text<[](auto& t) { glsl::emit_shader(t, glsl::compiled<ex::layer_type>::plan, 0); }>();
    CHECK(again.view() == demo_kernel_0);
}

TEST_CASE("float literals read back bit-exactly through a correctly rounded parser") {
    // The same reading glslang does: decimal -> double (strtod) -> float.
    std::mt19937 rng(7);
    int exact = 0;
    for (int i = 0; i < 200000; ++i) {
        const float v = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
        if (!std::isfinite(v)) continue;
        char buffer[64] = {};
        detail::writing_sink sink{buffer};
        text<detail::writing_sink> t(sink);
        t << float_literal{v};
        const std::string s(buffer, sink.size);
        if (s.find("uintBitsToFloat") != std::string::npos) continue;
        const float back = static_cast<float>(std::strtod(s.c_str(), nullptr));
        REQUIRE_MESSAGE(std::bit_cast<std::uint32_t>(back) == std::bit_cast<std::uint32_t>(v), s);
        ++exact;
    }
    CHECK(exact > 50000);
}
