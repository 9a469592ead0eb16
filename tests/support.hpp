// tests/support.hpp — what every device test shares: one validated context per test process, and checks that a
// program agrees with Eigen on both reduction paths with no validation message.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <vkfuse/vkfuse.hpp>

namespace vkfuse_test {

// The context of this test process: lavapipe here, validation layer on.
inline vkfuse::context& context() {
    static vkfuse::context ctx(vkfuse::context_options{.validation = true, .device = {}});
    return ctx;
}

// Fails the current test if the validation layer said anything since the last call.
inline void check_validation_clean() {
    const std::vector<std::string> messages = context().take_validation_messages();
    std::string all;
    for (const auto& m : messages) all += m + "\n";
    CHECK_MESSAGE(messages.empty(), "validation layer: " << all);
}

// Verifies `program` against Eigen on random inputs with the subgroup path and with the shared-memory path.
template <class Program>
void check_program(const Program& program, vkfuse::verify_options options = {}, double tolerance = 1e-5) {
    for (const bool subgroups : {true, false}) {
        const vkfuse::verify_report r =
            vkfuse::verify(context(), program, options, vkfuse::program_options{.subgroups = subgroups});
        INFO("subgroups " << subgroups << ": " << r.summary());
        CHECK(r.ok(tolerance));
        CHECK(!r.device.empty());
    }
    check_validation_clean();
}

} // namespace vkfuse_test
