// Runtime misuse of a program throws a vkfuse error that says what happened and what to do, and loses nothing.
#include "support.hpp"

#include <string>
#include <vector>

using namespace vkfuse;

namespace {
constexpr input<"x", 300> x;
constexpr weight<"w", 17, 300> w;
constexpr param<"alpha"> alpha;
constexpr output<"y", 17> y;
constexpr auto layer = (y = w * x * alpha);

std::string what_of(auto&& f) {
    try {
        f();
    } catch (const vkfuse::usage_error& e) {
        return e.what();
    }
    return "(nothing thrown)";
}
} // namespace

TEST_CASE("wrong buffer sizes, unknown names, missing data and params are reported") {
    program prog(vkfuse_test::context(), layer);
    const std::vector<float> ones(300, 1.0f), short_data(299, 1.0f);

    const std::string wrong = what_of([&] { prog.upload("x", short_data); });
    CHECK(wrong.find("299") != std::string::npos);
    CHECK(wrong.find("input 'x' is f32[300]") != std::string::npos);

    const std::string unknown = what_of([&] { prog.upload("z", ones); });
    CHECK(unknown.find("no buffer named 'z'") != std::string::npos);
    CHECK(unknown.find("weight 'w'") != std::string::npos);  // lists what exists

    CHECK(what_of([&] { prog.set_param("beta", 1.0f); }).find("no param named 'beta'") != std::string::npos);

    prog.upload("x", ones);
    CHECK(what_of([&] { prog.run(); }).find("weight 'w' is f32[17, 300]") != std::string::npos);  // never uploaded

    prog.upload("w", std::vector<float>(17 * 300, 0.5f));
    CHECK(what_of([&] { prog.run(); }).find("param 'alpha' was never set") != std::string::npos);

    // After all that, the program still works and the earlier data survived the failed upload.
    prog.set_param("alpha", 2.0f);
    prog.poison();
    prog.run();
    for (float v : prog.download("y")) CHECK(v == doctest::Approx(300.0f));
    vkfuse_test::check_validation_clean();
}

TEST_CASE("binding an external buffer checks its size") {
    program prog(vkfuse_test::context(), layer);
    vulkan::buffer small(vkfuse_test::context(), 16);
    CHECK(what_of([&] { prog.bind("x", small); }).find("bind of a buffer of 16 bytes") != std::string::npos);
    vulkan::buffer right(vkfuse_test::context(), 300 * 4);
    const std::vector<float> twos(300, 2.0f);
    right.upload(std::as_bytes(std::span<const float>(twos)));
    prog.bind("x", right);
    prog.upload("w", std::vector<float>(17 * 300, 1.0f));
    prog.set_param("alpha", 1.0f);
    prog.run();
    for (float v : prog.download("y")) CHECK(v == doctest::Approx(600.0f));
    vkfuse_test::check_validation_clean();
}
