// A machine without any Vulkan driver: creating a context must fail with a vkfuse::device_error that tells the user
// what to install. Its own program, because the loader reads the driver environment variables once per instance and
// the main test program needs a working device.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "vkfuse/vulkan.hpp"

#include <cstdlib>
#include <string>

namespace {

// Points the loader at a driver manifest that does not exist (VK_DRIVER_FILES for current loaders, VK_ICD_FILENAMES
// for older ones), so lavapipe stays invisible even where it is installed.
void hide_all_drivers() {
    const char* nowhere = "/nonexistent/vkfuse_no_such_vulkan_driver.json";
#if defined(_WIN32)
    _putenv_s("VK_DRIVER_FILES", nowhere);
    _putenv_s("VK_ICD_FILENAMES", nowhere);
#else
    setenv("VK_DRIVER_FILES", nowhere, 1);
    setenv("VK_ICD_FILENAMES", nowhere, 1);
    unsetenv("VK_ADD_DRIVER_FILES");
#endif
}

} // namespace

TEST_CASE("no device: creating a context throws device_error saying what to install") {
    hide_all_drivers();
    try {
        vkfuse::vulkan::context ctx;
        FAIL("a context was created with no Vulkan driver visible: " << ctx.device().summary());
    } catch (const vkfuse::device_error& e) {
        const std::string what = e.what();
        MESSAGE(what);
        CHECK(what.find("mesa-vulkan-drivers") != std::string::npos);
        CHECK(what.find("VKFUSE_DEVICE") != std::string::npos);
        CHECK(what.find("VK_DRIVER_FILES") != std::string::npos);  // the variable that hides the drivers is named
    }
}

TEST_CASE("no device: list_devices is empty rather than throwing") {
    hide_all_drivers();
    CHECK(vkfuse::vulkan::context::list_devices().empty());
}

TEST_CASE("no device: the GLSL compiler still works") {
    const auto words = vkfuse::vulkan::compile_glsl("#version 450\nlayout(local_size_x = 1) in;\nvoid main() {}\n");
    REQUIRE_FALSE(words.empty());
    CHECK(words[0] == 0x07230203u);
}
