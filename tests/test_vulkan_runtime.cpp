// Tests of the Vulkan runtime layer (context, buffer, kernel, sequence, GLSL compiler) on whatever device the loader
// offers — lavapipe on CI. Every context runs under the Khronos validation layer, and every test ends by checking that
// the layer reported nothing.
#include "vkfuse/vulkan.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace vkr = vkfuse::vulkan;

namespace {

// ---------------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------------

vkr::context_options validated() {
    vkr::context_options options;
    options.validation = true;
    return options;
}

// One context for the whole program: creating a validated instance and device costs a noticeable fraction of a second.
vkr::context& shared_context() {
    static vkr::context ctx(validated());
    return ctx;
}

void check_no_validation_messages(vkr::context& ctx) {
    const std::vector<std::string> messages = ctx.take_validation_messages();
    for (const std::string& message : messages) MESSAGE(message);
    CHECK(messages.empty());
}

std::vector<float> random_floats(std::size_t n, unsigned seed) {
    std::mt19937 generator(seed);
    std::uniform_real_distribution<float> distribution(-4.0f, 4.0f);
    std::vector<float> values(n);
    for (float& v : values) v = distribution(generator);
    return values;
}

constexpr std::uint32_t nan_word = 0x7fc00000u;

bool all_nan(const std::vector<float>& values) {
    return std::all_of(values.begin(), values.end(), [](float v) { return std::isnan(v); });
}

// Sets or unsets an environment variable for one scope, restoring the previous value afterwards.
class scoped_environment {
public:
    scoped_environment(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) previous_ = old;
        set(value);
    }
    ~scoped_environment() { set(previous_ ? previous_->c_str() : nullptr); }
    scoped_environment(const scoped_environment&) = delete;
    scoped_environment& operator=(const scoped_environment&) = delete;

private:
    void set(const char* value) {
#if defined(_WIN32)
        _putenv_s(name_.c_str(), value ? value : "");
#else
        if (value)
            setenv(name_.c_str(), value, 1);
        else
            unsetenv(name_.c_str());
#endif
    }
    std::string name_;
    std::optional<std::string> previous_;
};

std::uint32_t groups_for(std::size_t n, std::uint32_t workgroup_size) {
    return static_cast<std::uint32_t>((n + workgroup_size - 1) / workgroup_size);
}

// ---------------------------------------------------------------------------------------------------------------------
// Hand-written kernels
// ---------------------------------------------------------------------------------------------------------------------

constexpr const char* add_glsl = R"(#version 450
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint LANES = 32u;
layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) readonly buffer B { float b[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < uint(y.length())) y[i] = a[i] + b[i];
}
)";

constexpr const char* scale_glsl = R"(#version 450
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint LANES = 32u;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { float scale; uint n; } p;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < p.n) y[i] = p.scale * x[i];
}
)";

constexpr std::uint32_t test_workgroup = 64;

vkr::kernel make_add_kernel(vkr::context& ctx) {
    vkr::kernel_spec spec;
    spec.label = "test/add";
    spec.glsl = add_glsl;
    spec.binding_count = 3;
    spec.workgroup_size = test_workgroup;
    spec.lanes = 8;
    return vkr::kernel(ctx, spec);
}

vkr::kernel make_scale_kernel(vkr::context& ctx) {
    vkr::kernel_spec spec;
    spec.label = "test/scale";
    spec.glsl = scale_glsl;
    spec.binding_count = 2;
    spec.push_constant_bytes = 8;
    spec.workgroup_size = test_workgroup;
    spec.lanes = 8;
    return vkr::kernel(ctx, spec);
}

} // namespace

TEST_SUITE("vulkan runtime") {

// ---------------------------------------------------------------------------------------------------------------------
// Context and device choice
// ---------------------------------------------------------------------------------------------------------------------

TEST_CASE("vulkan: the context picks a device and describes it") {
    vkr::context& ctx = shared_context();
    const vkr::device_info& info = ctx.device();
    MESSAGE(info.summary());
    CHECK(ctx.validation_enabled());
    CHECK_FALSE(info.name.empty());
    CHECK_FALSE(info.summary().empty());
    CHECK(info.summary().find(info.name) != std::string::npos);
    CHECK(info.subgroup_size > 0);
    CHECK(info.max_workgroup_invocations >= 64);
    CHECK(info.max_storage_buffers_per_stage >= 4);
    CHECK(info.max_storage_buffer_range > 0);
    CHECK(info.max_push_constant_bytes >= 128);
    CHECK(info.api_version >= VK_API_VERSION_1_1);
    CHECK(ctx.vk_device() != VK_NULL_HANDLE);
    CHECK(ctx.vk_queue() != VK_NULL_HANDLE);
    CHECK_FALSE(vkr::context::list_devices().empty());
    check_no_validation_messages(ctx);
}

TEST_CASE("vulkan: device choice by index and by case-insensitive name") {
    const std::string name = shared_context().device().name;
    const std::vector<std::string> devices = vkr::context::list_devices();
    REQUIRE_FALSE(devices.empty());

    SUBCASE("index 0 through the options") {
        vkr::context_options options = validated();
        options.device = "0";
        vkr::context ctx(options);
        CHECK(devices[0].find(ctx.device().name) != std::string::npos);
        check_no_validation_messages(ctx);
    }
    SUBCASE("upper-cased part of the name through the options") {
        std::string part = name.substr(0, std::min<std::size_t>(name.size(), 6));
        for (char& c : part) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        vkr::context_options options = validated();
        options.device = part;
        vkr::context ctx(options);
        CHECK(vkr::detail::lowercase(ctx.device().name).find(vkr::detail::lowercase(part)) != std::string::npos);
        check_no_validation_messages(ctx);
    }
    SUBCASE("part of the name through VKFUSE_DEVICE") {
        scoped_environment env("VKFUSE_DEVICE", name.substr(0, std::min<std::size_t>(name.size(), 4)).c_str());
        vkr::context ctx(validated());
        CHECK(ctx.device().name.find(name.substr(0, std::min<std::size_t>(name.size(), 4))) != std::string::npos);
        check_no_validation_messages(ctx);
    }
    SUBCASE("a name matching nothing, through the options") {
        vkr::context_options options = validated();
        options.device = "no-such-device";
        try {
            vkr::context ctx(options);
            FAIL("a context was created for a device that does not exist");
        } catch (const vkfuse::device_error& e) {
            const std::string what = e.what();
            MESSAGE(what);
            CHECK(what.find("no-such-device") != std::string::npos);
            CHECK(what.find(devices[0]) != std::string::npos);
            CHECK(what.find("VKFUSE_DEVICE") != std::string::npos);
        }
    }
    SUBCASE("a name matching nothing, through VKFUSE_DEVICE") {
        scoped_environment env("VKFUSE_DEVICE", "no-such-device");
        CHECK_THROWS_AS(vkr::context{validated()}, vkfuse::device_error);
    }
    SUBCASE("an index out of range") {
        vkr::context_options options = validated();
        options.device = std::to_string(devices.size());
        CHECK_THROWS_AS(vkr::context{options}, vkfuse::device_error);
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Buffers
// ---------------------------------------------------------------------------------------------------------------------

TEST_CASE("vulkan: buffer upload and download round-trip") {
    vkr::context& ctx = shared_context();
    for (std::size_t n : {1u, 7u, 257u, 4099u}) {
        CAPTURE(n);
        const std::vector<float> values = random_floats(n, static_cast<unsigned>(n));
        vkr::buffer b(ctx, n * sizeof(float));
        CHECK(b.size() == n * sizeof(float));
        b.upload(values);
        CHECK(b.download<float>() == values);

        b.fill(nan_word);
        CHECK(all_nan(b.download<float>()));
    }
    check_no_validation_messages(ctx);
}

TEST_CASE("vulkan: wrong-size transfers throw usage_error and leave the buffer intact") {
    vkr::context& ctx = shared_context();
    const std::vector<float> values = random_floats(16, 1);
    vkr::buffer b(ctx, values.size() * sizeof(float));
    b.upload(values);

    const std::vector<float> too_short(15, 1.0f);
    try {
        b.upload(too_short);
        FAIL("a short upload was accepted");
    } catch (const vkfuse::usage_error& e) {
        CHECK(std::string(e.what()).find("upload of 60 bytes into a buffer of 64 bytes") != std::string::npos);
    }
    std::vector<float> too_long(17);
    CHECK_THROWS_AS(b.download(std::as_writable_bytes(std::span<float>(too_long))), vkfuse::usage_error);
    CHECK(b.download<float>() == values);

    vkr::buffer odd(ctx, 6);
    CHECK_THROWS_AS(odd.download<float>(), vkfuse::usage_error);
    CHECK_THROWS_AS(vkr::buffer(ctx, 0), vkfuse::usage_error);
    CHECK_THROWS_AS(vkr::buffer(ctx, ctx.device().max_storage_buffer_range + 1), vkfuse::usage_error);

    vkr::buffer moved = std::move(b);
    CHECK(b.empty());
    CHECK_THROWS_AS(b.upload(values), vkfuse::usage_error);
    CHECK(moved.download<float>() == values);
    check_no_validation_messages(ctx);
}

// ---------------------------------------------------------------------------------------------------------------------
// Kernels and sequences
// ---------------------------------------------------------------------------------------------------------------------

TEST_CASE("vulkan: an add kernel computes y = a + b for awkward sizes") {
    vkr::context& ctx = shared_context();
    const vkr::kernel add = make_add_kernel(ctx);
    for (std::size_t n : {1u, 7u, 255u, 256u, 257u, 4099u}) {
        CAPTURE(n);
        const std::vector<float> a = random_floats(n, 10), b = random_floats(n, 11);
        vkr::buffer ba(ctx, n * sizeof(float)), bb(ctx, n * sizeof(float)), by(ctx, n * sizeof(float));
        ba.upload(a);
        bb.upload(b);
        by.fill(nan_word);

        vkr::sequence seq(ctx, {vkr::dispatch{.k = &add,
                                              .buffers = {&ba, &bb, &by},
                                              .groups = {groups_for(n, test_workgroup), 1, 1}}});
        CHECK(seq.dispatch_count() == 1);
        seq.run();
        const std::vector<float> y = by.download<float>();
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < n; ++i) wrong += y[i] != a[i] + b[i];
        CHECK(wrong == 0);
    }
    check_no_validation_messages(ctx);
}

TEST_CASE("vulkan: push constants reach the kernel") {
    vkr::context& ctx = shared_context();
    const vkr::kernel scale = make_scale_kernel(ctx);
    for (std::size_t n : {1u, 7u, 255u, 256u, 257u, 4099u}) {
        CAPTURE(n);
        const std::vector<float> x = random_floats(n, 20);
        vkr::buffer bx(ctx, n * sizeof(float)), by(ctx, n * sizeof(float));
        bx.upload(x);
        by.fill(nan_word);
        const float factor = -2.5f;
        vkr::sequence seq(ctx, {vkr::dispatch{.k = &scale,
                                              .buffers = {&bx, &by},
                                              .groups = {groups_for(n, test_workgroup), 1, 1},
                                              .push_constants = vkr::pack_push_constants(
                                                  factor, static_cast<std::uint32_t>(n))}});
        seq.run();
        const std::vector<float> y = by.download<float>();
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < n; ++i) wrong += y[i] != factor * x[i];
        CHECK(wrong == 0);
    }
    check_no_validation_messages(ctx);
}

TEST_CASE("vulkan: a second dispatch sees the first one's output") {
    vkr::context& ctx = shared_context();
    const vkr::kernel add = make_add_kernel(ctx);
    const vkr::kernel scale = make_scale_kernel(ctx);
    const std::size_t n = 4099;
    const std::vector<float> a = random_floats(n, 30), b = random_floats(n, 31);
    vkr::buffer ba(ctx, n * 4), bb(ctx, n * 4), bt(ctx, n * 4), by(ctx, n * 4), bz(ctx, n * 4);
    ba.upload(a);
    bb.upload(b);
    for (vkr::buffer* poisoned : {&bt, &by, &bz}) poisoned->fill(nan_word);

    const std::array<std::uint32_t, 3> groups{groups_for(n, test_workgroup), 1, 1};
    std::vector<vkr::dispatch> dispatches;
    dispatches.push_back({&add, {&ba, &bb, &bt}, groups, {}});                       // t = a + b
    dispatches.push_back({&add, {&bt, &ba, &by}, groups, {}});                       // y = t + a
    dispatches.push_back({&scale, {&by, &bz}, groups, vkr::pack_push_constants(0.5f, static_cast<std::uint32_t>(n))});  // z = y / 2
    vkr::sequence seq(ctx, std::move(dispatches));
    CHECK(seq.dispatch_count() == 3);

    const auto check_results = [&] {
        const std::vector<float> z = bz.download<float>();
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < n; ++i) wrong += z[i] != 0.5f * ((a[i] + b[i]) + a[i]);
        CHECK(wrong == 0);
    };
    seq.run();
    check_results();

    bz.fill(nan_word);
    by.fill(nan_word);
    seq.run_each_submitted();
    check_results();
    check_no_validation_messages(ctx);
}

TEST_CASE("vulkan: timing reports GPU and wall time") {
    vkr::context& ctx = shared_context();
    const vkr::kernel add = make_add_kernel(ctx);
    const std::size_t n = 1 << 16;
    vkr::buffer ba(ctx, n * 4), bb(ctx, n * 4), by(ctx, n * 4);
    ba.fill(0);
    bb.fill(0);
    const std::array<std::uint32_t, 3> groups{groups_for(n, test_workgroup), 1, 1};
    vkr::sequence seq(ctx, {{&add, {&ba, &bb, &by}, groups, {}}, {&add, {&by, &bb, &ba}, groups, {}}});

    const vkr::timing once = seq.run();
    const vkr::timing best = seq.run(3);
    const vkr::timing each = seq.run_each_submitted();
    MESSAGE("one command buffer: gpu " << once.gpu_ns << " ns, wall " << once.wall_ns << " ns; each submitted: gpu "
                                       << each.gpu_ns << " ns, wall " << each.wall_ns << " ns");
    CHECK(once.wall_ns > 0);
    CHECK(best.wall_ns > 0);
    CHECK(each.wall_ns > 0);
    if (ctx.device().timestamps) {
        CHECK(once.gpu_ns > 0);
        CHECK(best.gpu_ns > 0);
        CHECK(each.gpu_ns > 0);
    } else {
        CHECK(std::isnan(once.gpu_ns));
    }
    CHECK_THROWS_AS(seq.run(0), vkfuse::usage_error);
    check_no_validation_messages(ctx);
}

TEST_CASE("vulkan: dispatch mistakes throw usage_error before anything runs") {
    vkr::context& ctx = shared_context();
    const vkr::kernel add = make_add_kernel(ctx);
    const vkr::kernel scale = make_scale_kernel(ctx);
    vkr::buffer b1(ctx, 64), b2(ctx, 64), b3(ctx, 64);

    SUBCASE("too few buffers") {
        try {
            vkr::sequence seq(ctx, {{&add, {&b1, &b2}, {1, 1, 1}, {}}});
            FAIL("a dispatch with a missing binding was accepted");
        } catch (const vkfuse::usage_error& e) {
            const std::string what = e.what();
            CHECK(what.find("test/add") != std::string::npos);
            CHECK(what.find("binds 2 buffers") != std::string::npos);
        }
    }
    SUBCASE("too many buffers") {
        CHECK_THROWS_AS(vkr::sequence(ctx, {{&add, {&b1, &b2, &b3, &b1}, {1, 1, 1}, {}}}), vkfuse::usage_error);
    }
    SUBCASE("a null buffer") {
        CHECK_THROWS_AS(vkr::sequence(ctx, {{&add, {&b1, nullptr, &b3}, {1, 1, 1}, {}}}), vkfuse::usage_error);
    }
    SUBCASE("push constants of the wrong size") {
        CHECK_THROWS_AS(vkr::sequence(ctx, {{&scale, {&b1, &b2}, {1, 1, 1}, vkr::pack_push_constants(1.0f)}}),
                        vkfuse::usage_error);
    }
    SUBCASE("no kernel") {
        CHECK_THROWS_AS(vkr::sequence(ctx, {{nullptr, {}, {1, 1, 1}, {}}}), vkfuse::usage_error);
    }
    SUBCASE("no dispatches") {
        CHECK_THROWS_AS(vkr::sequence(ctx, {}), vkfuse::usage_error);
    }
    SUBCASE("more bindings than the device allows") {
        vkr::kernel_spec spec;
        spec.label = "test/too_many_bindings";
        spec.glsl = add_glsl;
        spec.binding_count = ctx.device().max_storage_buffers_per_stage + 1;
        spec.workgroup_size = test_workgroup;
        try {
            vkr::kernel k(ctx, spec);
            FAIL("a kernel with too many bindings was accepted");
        } catch (const vkfuse::usage_error& e) {
            const std::string what = e.what();
            CHECK(what.find("test/too_many_bindings") != std::string::npos);
            CHECK(what.find(std::to_string(ctx.device().max_storage_buffers_per_stage)) != std::string::npos);
        }
    }
    SUBCASE("a workgroup size of zero") {
        vkr::kernel_spec spec;
        spec.label = "test/zero";
        spec.glsl = add_glsl;
        spec.binding_count = 3;
        spec.workgroup_size = 0;
        CHECK_THROWS_AS(vkr::kernel(ctx, spec), vkfuse::usage_error);
    }
    check_no_validation_messages(ctx);
}

// ---------------------------------------------------------------------------------------------------------------------
// GLSL compilation
// ---------------------------------------------------------------------------------------------------------------------

TEST_CASE("vulkan: a GLSL error names the kernel and quotes the offending line") {
    vkr::context& ctx = shared_context();
    const char* broken = "#version 450\n"                                       // 1
                         "layout(local_size_x_id = 0) in;\n"                     // 2
                         "layout(set = 0, binding = 0) buffer Y { float y[]; };\n"  // 3
                         "void main() {\n"                                       // 4
                         "    uint i = gl_GlobalInvocationID.x;\n"               // 5
                         "    y[i] = 1.0 +* 2.0;\n"                              // 6
                         "}\n";                                                  // 7
    const auto check_report = [](const std::string& what, const char* label) {
        MESSAGE(what);
        CHECK(what.find(label) != std::string::npos);
        CHECK(what.find("0:6:") != std::string::npos);                            // glslang's own location
        CHECK(what.find("> 6 |     y[i] = 1.0 +* 2.0;") != std::string::npos);  // the line, numbered and marked
        CHECK(what.find("5 |     uint i = gl_GlobalInvocationID.x;") != std::string::npos);  // context before
        CHECK(what.find("7 | }") != std::string::npos);                                       // context after
        CHECK(what.find("3 | layout") == std::string::npos);                                  // nothing further away
    };

    SUBCASE("through context::spirv") {
        try {
            (void)ctx.spirv(broken, {}, "test/broken_spirv");
            FAIL("broken GLSL compiled");
        } catch (const vkfuse::shader_error& e) {
            check_report(e.what(), "test/broken_spirv");
        }
    }
    SUBCASE("through a kernel") {
        vkr::kernel_spec spec;
        spec.label = "test/broken_kernel";
        spec.glsl = broken;
        spec.binding_count = 1;
        spec.workgroup_size = test_workgroup;
        try {
            vkr::kernel k(ctx, spec);
            FAIL("broken GLSL compiled");
        } catch (const vkfuse::shader_error& e) {
            check_report(e.what(), "test/broken_kernel");
        }
    }
    SUBCASE("an error in the preamble is located there") {
        try {
            (void)ctx.spirv(add_glsl, "#define A 1\nthis is not glsl\n", "test/broken_preamble");
            FAIL("a broken preamble compiled");
        } catch (const vkfuse::shader_error& e) {
            const std::string what = e.what();
            MESSAGE(what);
            CHECK(what.find("Preamble") != std::string::npos);
            CHECK(what.find("> 2 | this is not glsl") != std::string::npos);
        }
    }
    check_no_validation_messages(ctx);
}

TEST_CASE("vulkan: the SPIR-V cache keys on preamble and source") {
    vkr::context& ctx = shared_context();
    const std::string source = "#version 450\n"
                               "layout(local_size_x_id = 0) in;\n"
                               "layout(set = 0, binding = 0) buffer Y { uint y[]; };\n"
                               "#ifndef VKFUSE_TEST_VALUE\n"
                               "#define VKFUSE_TEST_VALUE 7u\n"
                               "#endif\n"
                               "void main() { y[gl_GlobalInvocationID.x] = VKFUSE_TEST_VALUE; }\n";
    const std::size_t before = ctx.spirv_cache_size();
    const auto first = ctx.spirv(source, {}, "test/cache");
    CHECK(ctx.spirv_cache_size() == before + 1);
    const auto again = ctx.spirv(source, {}, "test/cache");
    CHECK(ctx.spirv_cache_size() == before + 1);
    CHECK(again.data() == first.data());
    CHECK(first.size() > 5);
    CHECK(first[0] == 0x07230203u);  // the SPIR-V magic number

    const auto other = ctx.spirv(source, "#define VKFUSE_TEST_VALUE 9u\n", "test/cache");
    CHECK(ctx.spirv_cache_size() == before + 2);
    CHECK_FALSE(std::equal(other.begin(), other.end(), first.begin(), first.end()));

    // The preamble really lands after #version and changes what runs.
    vkr::kernel_spec spec;
    spec.label = "test/preamble";
    spec.glsl = source;
    spec.binding_count = 1;
    spec.workgroup_size = test_workgroup;
    spec.preamble = "#define VKFUSE_TEST_VALUE 9u\n";
    const vkr::kernel k(ctx, spec);
    CHECK(ctx.spirv_cache_size() == before + 2);
    vkr::buffer y(ctx, test_workgroup * sizeof(std::uint32_t));
    y.fill(0);
    vkr::sequence(ctx, {{&k, {&y}, {1, 1, 1}, {}}}).run();
    const std::vector<std::uint32_t> values = y.download<std::uint32_t>();
    CHECK(std::all_of(values.begin(), values.end(), [](std::uint32_t v) { return v == 9u; }));
    check_no_validation_messages(ctx);
}

TEST_CASE("vulkan: compile_glsl works without a device") {
    const std::vector<std::uint32_t> words = vkr::compile_glsl(add_glsl, {}, "test/no_device");
    REQUIRE(words.size() > 5);
    CHECK(words[0] == 0x07230203u);
    CHECK_THROWS_AS(vkr::compile_glsl("#version 450\nvoid main() { nope(); }\n", {}, "x"), vkfuse::shader_error);
}

} // TEST_SUITE
