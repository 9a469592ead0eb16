// vkfuse/vkfuse.hpp — everything: write a layer as one C++ expression, get its fused GLSL at compile time, run it
// on the best Vulkan device, and check it against Eigen.
//
//     #include <vkfuse/vkfuse.hpp>
//     using namespace vkfuse;
//     constexpr input<"x", 896> x;  constexpr weight<"w", 896, 896> w;  constexpr output<"y", 896> y;
//     vkfuse::context ctx;
//     auto report = vkfuse::verify(ctx, y = x + w * x);   // runs on the device and in Eigen, compares
#pragma once

#include "core/error.hpp"         // vkfuse::error and its kinds
#include "core/fixed_string.hpp"  // names as template arguments
#include "core/text.hpp"          // compile-time text: count, then write
#include "core/types.hpp"         // f32, f16, shape<...>

#include "expr/node.hpp"  // input, weight, param, c<v>: the leaves; the node types
#include "expr/ops.hpp"   // + - * /, matvec, exp ... gelu, sum/mean/reduce_max, output

#include "plan/graph.hpp"    // the expression as a constexpr DAG
#include "plan/kernels.hpp"  // where dispatch boundaries fall

#include "glsl/emit.hpp"    // GLSL for one kernel
#include "glsl/source.hpp"  // glsl::source<Program, K>: the text as a compile-time constant

#include "vulkan.hpp"          // context, buffer, kernel, sequence
#include "vulkan/program.hpp"  // vkfuse::program: a program type made runnable

#include "reference/eval.hpp"    // the Eigen evaluator
#include "reference/verify.hpp"  // vkfuse::verify: device against Eigen on random data
