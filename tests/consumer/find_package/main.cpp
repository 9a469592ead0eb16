// Consumer smoke test (find_package): the umbrella header compiles and links in a project that is not vkfuse.
// The lead will make this run a tiny expression on the device.
#include <vkfuse/vkfuse.hpp>

#include <cstdio>

int main() {
    std::puts("vkfuse consumer (find_package): <vkfuse/vkfuse.hpp> compiled and linked");
    return 0;
}
