// tests/temp_dir.hpp — a fresh folder per use, removed afterwards, for tests that write files (checkpoints, configs).
// ctest runs test cases as parallel processes, hence the pid; a counter keeps folders of one process apart.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace vkfuse_test {

struct temp_dir {
    std::filesystem::path path;
    explicit temp_dir(std::string_view tag) {
        static std::atomic<int> counter{0};
        path = std::filesystem::temp_directory_path() / ("vkfuse_" + std::string(tag) + "_" +
                                                         std::to_string(::getpid()) + "_" + std::to_string(counter++));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

} // namespace vkfuse_test
