// vkfuse/vulkan.hpp — the Vulkan runtime: context, buffers, kernels, sequences and the GLSL compiler.
#pragma once

#include "vkfuse/vulkan/buffer.hpp"
#include "vkfuse/vulkan/context.hpp"
#include "vkfuse/vulkan/kernel.hpp"
#include "vkfuse/vulkan/sequence.hpp"
#include "vkfuse/vulkan/shader_compiler.hpp"
