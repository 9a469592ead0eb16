// examples/custom_layer.cpp — the worked example of docs/expressions.md: print the plan and the first kernel's
// GLSL (a compile-time constant), then run the layer and check it against Eigen.
#include <cstdio>
#include <exception>

#include "custom_layer.hpp"

int main() try {
    namespace ex = examples::custom_layer;
    using info = vkfuse::glsl::compiled<ex::layer_type>;
    static_assert(info::kernel_count == 2, "LayerNorm + fc + GELU in one kernel; proj + residual in the next");

    std::printf("%d kernels. Kernel 1 of the layer, as generated at compile time:\n\n%.*s\n", info::kernel_count,
                static_cast<int>(info::sources[0].size()), info::sources[0].data());

    vkfuse::context ctx;
    const auto report = vkfuse::verify(ctx, ex::layer);
    std::printf("on %s: %s -> %s\n", ctx.device().name.c_str(), report.summary().c_str(),
                report.ok() ? "OK" : "MISMATCH");
    return report.ok() ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "custom_layer: %s\n", e.what());
    return 2;
}
