// Runtime misuse of a program throws a vkfuse error that says what happened and what to do, and loses nothing.
#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
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

TEST_CASE("downloads are typed and only of values something wrote, and outputs cannot be uploaded") {
    constexpr input<"v", 40> v;
    constexpr weight<"m", 40, 40> m;
    constexpr output<"scores", 40> scores;
    constexpr output_of<"best", u32> best;
    constexpr auto layer_with_index = layer_graph(scores = m * v, best = argmax(m * v));
    program prog(vkfuse_test::context(), layer_with_index);

    CHECK(what_of([&] { prog.download("scores"); }).find("nothing has written it yet; run() the program first") !=
          std::string::npos);
    CHECK(what_of([&] { prog.download("v"); }).find("upload(\"v\", ...) it first") != std::string::npos);
    CHECK(what_of([&] { prog.upload("scores", std::vector<float>(40, 1.0f)); })
              .find("the program computes it, so it cannot be uploaded") != std::string::npos);

    std::vector<float> values(40, 0.0f), identity(40 * 40, 0.0f);
    values[17] = 3.0f;
    for (int i = 0; i < 40; ++i) identity[static_cast<std::size_t>(i) * 41] = 1.0f;
    prog.upload("v", values);
    prog.upload("m", identity);
    CHECK(prog.download("v") == values);  // what was uploaded reads back
    prog.run();
    CHECK(what_of([&] { prog.download("best"); }).find("download it with download_indices(\"best\")") !=
          std::string::npos);
    CHECK(what_of([&] { prog.download_indices("scores"); }).find("download it with download(\"scores\")") !=
          std::string::npos);
    CHECK(prog.download_indices("best") == std::vector<std::uint32_t>{17});
    CHECK(prog.download("scores") == values);
    vkfuse_test::check_validation_clean();
}

TEST_CASE("states start zeroed and reset, and params and positions change without re-recording") {
    constexpr uint_param<"pos"> pos;
    constexpr input<"k", 6> k;
    constexpr param<"scale"> scale;
    constexpr state<"cache", 5, 6> cache;
    constexpr output<"y", 6> y;
    constexpr auto step = layer_graph(y = k * scale, append(cache, k * scale, pos));
    program prog(vkfuse_test::context(), step);
    CHECK(prog.download("cache") == std::vector<float>(30, 0.0f));  // zeroed when the program was made

    prog.upload("k", std::vector<float>{1, 2, 3, 4, 5, 6});
    for (std::uint32_t p = 0; p < 5; ++p) {
        prog.set_index("pos", p);
        prog.set_param("scale", static_cast<float>(p + 1));
        prog.run();
    }
    CHECK(prog.recordings() == 1);  // five positions and five scales, one recording
    const std::vector<float> cache_after = prog.download("cache");
    for (std::size_t p = 0; p < 5; ++p)
        for (std::size_t i = 0; i < 6; ++i) CHECK(cache_after[p * 6 + i] == static_cast<float>((p + 1) * (i + 1)));
    CHECK(prog.download("y")[5] == 30.0f);

    prog.reset_state("cache");
    CHECK(prog.download("cache") == std::vector<float>(30, 0.0f));
    CHECK(what_of([&] { prog.reset_state("k"); }).find("only states can be reset") != std::string::npos);

    // bind() changes what the commands point at, so the next run records them again
    vulkan::buffer other(vkfuse_test::context(), 6 * sizeof(float));
    other.upload(std::vector<float>(6, 1.0f));
    prog.bind("k", other);
    prog.run();
    CHECK(prog.recordings() == 2);
    CHECK(prog.download("y") == std::vector<float>(6, 5.0f));
    vkfuse_test::check_validation_clean();
}

TEST_CASE("one program run from two threads at once: calls take turns and results stay right") {
    program prog(vkfuse_test::context(), layer);
    prog.upload("x", std::vector<float>(300, 1.0f));
    prog.upload("w", std::vector<float>(17 * 300, 0.5f));
    prog.set_param("alpha", 1.0f);
    std::atomic<int> wrong{0};
    auto worker = [&] {
        for (int i = 0; i < 20; ++i) {
            prog.run();
            for (float v : prog.download("y"))
                if (v != 150.0f) ++wrong;
        }
    };
    std::thread a(worker), b(worker);
    a.join();
    b.join();
    CHECK(wrong == 0);
    CHECK(prog.recordings() == 1);
    vkfuse_test::check_validation_clean();
}

TEST_CASE("an input or output larger than one binding can address fails at construction with its true size") {
    // 40 000 000 f32 = 160 000 000 bytes: more than lavapipe's 128 MiB per binding. Weights that large are split over
    // bindings (tests/test_split_tensors.cpp); inputs, outputs and states are not. (Shapes of 2^32 elements or more
    // fail to compile: tests/compile_fail/too_many_elements.cpp.)
    constexpr input<"x_big", 40000000> x;
    constexpr output<"y", 40000000> y;
    const auto& device = vkfuse_test::context().device();
    if (device.max_storage_buffer_range >= 160000000ull) return;  // a device with room for it
    const std::string what = what_of([&] { program prog(vkfuse_test::context(), y = x + x); });
    CHECK(what.find("input 'x_big' is f32[40000000] = 160000000 bytes") != std::string::npos);
    CHECK(what.find("maxStorageBufferRange") != std::string::npos);
}

TEST_CASE("a program whose buffers exceed the device's memory is refused before it allocates, with the bytes") {
    // A context with a budget of 4000 bytes of device memory: the layer's weight alone (17 x 300 f32) is 20400.
    vkfuse::context small({.cache_directory = "off", .memory_budget = 4000});
    CHECK(small.device().memory_bytes == 4000u);
    const std::string what = what_of([&] { program prog(small, layer); });
    CHECK(what.find("its buffers need") != std::string::npos);
    CHECK(what.find("more than the 4000 bytes") != std::string::npos);
    CHECK(what.find("VKFUSE_MEMORY_BUDGET") != std::string::npos);
    // within the budget it runs as ever, and the budget does not grow a device
    vkfuse::context roomy({.cache_directory = "off", .memory_budget = 1u << 30});
    CHECK(roomy.device().memory_bytes ==
          std::min<std::uint64_t>(1u << 30, vkfuse_test::context().device().memory_bytes));
    program fits(roomy, layer);
    CHECK(fits.dispatch_count >= 1);
}

TEST_CASE("pipeline statistics come from the driver where it offers them, else a usage_error that says so") {
    vkfuse::context asked({.cache_directory = "off", .pipeline_statistics = true});
    program prog(asked, layer);
    CHECK(what_of([&] { (void)prog.pipeline_statistics(prog.dispatch_count); }).find("no shader") != std::string::npos);
    if (asked.device().pipeline_statistics) {  // a driver with VK_KHR_pipeline_executable_properties
        CHECK_FALSE(prog.pipeline_statistics(0).empty());
    } else {  // lavapipe, among others
        const std::string what = what_of([&] { (void)prog.pipeline_statistics(0); });
        CHECK(what.find("VK_KHR_pipeline_executable_properties") != std::string::npos);
        CHECK(what.find(asked.device().name) != std::string::npos);
    }
    // not asked for: never enabled, whatever the device offers
    program plain(vkfuse_test::context(), layer);
    CHECK(what_of([&] { (void)plain.pipeline_statistics(0); }).find("pipeline_statistics") != std::string::npos);
}

TEST_CASE("a device that runs out of memory, or is lost, while a program is made or run: an error that says so") {
    const auto error_of = [](auto&& f) -> std::string {
        try {
            f();
        } catch (const vkfuse::vulkan_error& e) {
            return e.what();
        }
        return "(nothing thrown)";
    };
    vkfuse::context ctx({.cache_directory = "off"});
    const std::vector<float> ones(300, 1.0f), halves(17 * 300, 0.5f);
    // an allocation of the program's buffers fails: the error names it, the result and what to do
    ctx.inject_failures({.allocation = 2});
    const std::string oom = error_of([&] { program prog(ctx, layer); });
    CHECK(oom.find("vkAllocateMemory failed with VK_ERROR_OUT_OF_DEVICE_MEMORY") != std::string::npos);
    CHECK(oom.find("The device ran out of memory") != std::string::npos);
    // the context goes on: the same program, made again, runs right
    program prog(ctx, layer);
    prog.upload("x", ones);
    prog.upload("w", halves);
    prog.set_param("alpha", 2.0f);
    prog.poison();
    prog.run();
    for (const float v : prog.download("y")) CHECK(v == doctest::Approx(300.0f));
    // the device is lost during a run: that run and every later one say so, and nothing aborts
    ctx.inject_failures({.submission = 1});
    const std::string lost = error_of([&] { prog.run(); });
    CHECK(lost.find("vkQueueSubmit failed with VK_ERROR_DEVICE_LOST") != std::string::npos);
    CHECK(lost.find("create a new one") != std::string::npos);
    CHECK(error_of([&] { prog.run(); }).find("VK_ERROR_DEVICE_LOST") != std::string::npos);
}
