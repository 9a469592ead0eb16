// tests/support.hpp — what every device test shares: one validated context per test process, and checks that a
// program agrees with Eigen on both reduction paths with no validation message.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <vkfuse/vkfuse.hpp>

namespace vkfuse_test {

// The context of this test process: lavapipe here, validation layer on.
inline vkfuse::context& context() {
    // Disk caches inside the build tree (tests/CMakeLists.txt defines the folder), not in the user's home.
    static vkfuse::context ctx(vkfuse::context_options{.validation = true,
                                                       .device = {},
#ifdef VKFUSE_TEST_CACHE_DIR
                                                       .cache_directory = std::string(VKFUSE_TEST_CACHE_DIR)
#endif
    });
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

namespace vkfuse_test {

// Runs `program` under strategy S for each position in `positions` (the index "pos"), states persisting on the
// device and in the reference, checking every output, named result and state at every step. Returns the device's
// outputs of the last step, so strategies can be compared with each other.
template <vkfuse::strategy S, class Program>
std::map<std::string, std::vector<float>, std::less<>> check_steps(const Program& program,
                                                                   const vkfuse::verify_options& options,
                                                                   std::initializer_list<std::uint32_t> positions,
                                                                   double tolerance = 1e-5) {
    vkfuse::program<std::remove_cvref_t<Program>, S> prog(context());
    vkfuse::reference::bindings host = vkfuse::randomize(prog, options);
    std::map<std::string, std::vector<float>, std::less<>> last;
    for (const std::uint32_t pos : positions) {
        prog.set_index("pos", pos);
        host.indices["pos"] = pos;
        const vkfuse::verify_report r = vkfuse::check(prog, program, host);
        INFO(vkfuse::strategy_name(S) << " at position " << pos << ": " << r.summary());
        CHECK(r.ok(tolerance));
        last = r.device;
    }
    check_validation_clean();
    return last;
}

// Relative L2 distance of two result sets (every result both have).
inline double distance(const std::map<std::string, std::vector<float>, std::less<>>& a,
                       const std::map<std::string, std::vector<float>, std::less<>>& b) {
    double diff = 0, norm = 0;
    for (const auto& [name, va] : a) {
        auto it = b.find(name);
        if (it == b.end() || it->second.size() != va.size()) return 1.0;
        for (std::size_t i = 0; i < va.size(); ++i) {
            diff += (double(va[i]) - it->second[i]) * (double(va[i]) - it->second[i]);
            norm += double(va[i]) * va[i];
        }
    }
    return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

} // namespace vkfuse_test
