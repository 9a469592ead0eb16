// Float literals written by vkfuse read back bit-exactly in a real shader: glslang parses them, the device stores
// them, and the bits are compared with the floats they were written from.
#include "support.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

std::string literal(float v) {
    char buffer[64] = {};
    vkfuse::detail::writing_sink sink{buffer};
    vkfuse::text<vkfuse::detail::writing_sink> t(sink);
    t << vkfuse::float_literal{v};
    return std::string(buffer, sink.size);
}

} // namespace

TEST_CASE("float literals survive glslang and the device bit for bit") {
    std::vector<float> values = {0.1f, 1e-6f, 1e-5f, 0.7978846f, 0.044715f, -2.5f, 3.4028235e38f, 1.17549435e-38f,
                                 1e-45f, -0.0f, 0.0f, 1.0f / 3.0f, 123456789.0f, 16777217.0f,
                                 std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> exponent(-126, 127);  // every normal binade
    while (values.size() < 512) {  // random mantissas over the whole exponent range
        const float v = std::ldexp(std::uniform_real_distribution<float>(1.0f, 2.0f)(rng), exponent(rng));
        values.push_back(values.size() % 2 ? v : -v);
    }
    std::string glsl = "#version 450\nlayout(local_size_x_id = 0) in;\nlayout(constant_id = 1) const uint LANES = 1u;\n"
                       "layout(set = 0, binding = 0, std430) writeonly buffer Out { float y[]; };\nvoid main() {\n"
                       "    if (gl_GlobalInvocationID.x != 0u) return;\n";
    for (std::size_t i = 0; i < values.size(); ++i)
        glsl += "    y[" + std::to_string(i) + "] = " + literal(values[i]) + ";\n";
    glsl += "}\n";

    auto& ctx = vkfuse_test::context();
    vkfuse::vulkan::kernel_spec spec;
    spec.label = "test/literals";
    spec.glsl = glsl;
    spec.binding_count = 1;
    spec.workgroup_size = 64;
    spec.lanes = 1;
    vkfuse::vulkan::kernel k(ctx, spec);
    vkfuse::vulkan::buffer out(ctx, values.size() * sizeof(float));
    out.fill(0x7fc00000u);
    vkfuse::vulkan::sequence seq(ctx, {vkfuse::vulkan::dispatch{.k = &k, .buffers = {&out}, .groups = {1, 1, 1}}});
    seq.run();
    const std::vector<float> back = out.download<float>();
    for (std::size_t i = 0; i < values.size(); ++i) {
        INFO(literal(values[i]));
        // Denormals may be flushed to zero by a device's float controls; everything else must be exact.
        if (std::fpclassify(values[i]) == FP_SUBNORMAL) continue;
        CHECK(std::bit_cast<std::uint32_t>(back[i]) == std::bit_cast<std::uint32_t>(values[i]));
    }
    vkfuse_test::check_validation_clean();
}
