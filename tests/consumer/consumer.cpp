// tests/consumer/consumer.cpp — what a user's program does with vkfuse, built by both consumer projects (one through
// find_package after cmake --install, one through add_subdirectory): form a layer, run it on the device, check it.
#include <cstdio>
#include <exception>

#include <vkfuse/vkfuse.hpp>

using namespace vkfuse;

int main() try {
    constexpr input<"x", 100> x;
    constexpr weight<"w", 33, 100> w;
    constexpr output<"y", 33> y;
    context ctx;
    const verify_report report = verify(ctx, y = silu(w * (x * rsqrt(mean(x * x) + c<1e-6f>))));
    std::printf("vkfuse consumer on %s: %s\n", ctx.device().name.c_str(), report.summary().c_str());
    return report.ok() ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "vkfuse consumer: %s\n", e.what());
    return 1;
}
