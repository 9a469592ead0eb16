// The doctest main of vkfuse_tests: every tests/test_*.cpp (except test_no_device.cpp) is linked into one program.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
