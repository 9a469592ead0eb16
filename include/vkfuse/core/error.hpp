// vkfuse/core/error.hpp — the one exception hierarchy of vkfuse.
//
// Every runtime failure the library reports is a vkfuse::error. Messages say what happened and what to do about it,
// so that a user reading only e.what() can fix the problem.
#pragma once

#include <stdexcept>
#include <string>

namespace vkfuse {

// Base of every exception vkfuse throws.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A Vulkan call failed; carries the VkResult as an int so this header needs no Vulkan include.
class vulkan_error : public error {
public:
    vulkan_error(int result, const std::string& what) : error(what), result_(result) {}
    int result() const noexcept { return result_; }

private:
    int result_;
};

// No usable Vulkan device (no loader, no driver, or VKFUSE_DEVICE matched nothing).
class device_error : public error {
public:
    using error::error;
};

// glslang rejected generated or user GLSL; the message quotes the offending lines.
class shader_error : public error {
public:
    using error::error;
};

// The program was used wrongly at run time: a buffer of the wrong size, a missing binding, an unknown name.
class usage_error : public error {
public:
    using error::error;
};

// A computation produced values that are not finite (NaN or an infinity) where a result needs finite ones: a model
// whose logits overflowed has no next token. The message names where (the position).
class numeric_error : public error {
public:
    using error::error;
};

// A model file (a safetensors file, a sharded checkpoint's index) cannot be opened, is malformed, or contradicts
// itself. Model files are untrusted input, so every defect found in one is this error; the message names the file
// and, where there is one, the tensor.
class checkpoint_error : public error {
public:
    using error::error;
};

} // namespace vkfuse
