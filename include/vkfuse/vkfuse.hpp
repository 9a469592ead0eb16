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
#include "core/rope.hpp"          // RoPE's frequencies, Llama 3's scaling

#include "formats/half.hpp"     // f16 and bf16 storage: exact widening, round-to-nearest-even narrowing
#include "formats/blocks.hpp"   // q8_0 and q4_0 blocks, byte for byte GGUF's
#include "formats/convert.hpp"  // whole tensors from one format to another, threaded; what each format costs

#include "expr/node.hpp"  // input, weight, param, c<v>: the leaves; the node types
#include "expr/operators.hpp"  // + - * /, matvec, exp ... gelu, sum/mean/reduce_max, output

#include "ops/traits.hpp"  // what each elementwise op and reduction is: its GLSL, its reference, its cost

#include "plan/graph.hpp"      // the expression as a constexpr DAG
#include "plan/make_plan.hpp"  // where dispatch boundaries fall, and every kernel described completely

#include "glsl/shader.hpp"  // the GLSL of one shader, printed from the plan
#include "glsl/source.hpp"  // glsl::source<Program, K>: the text as a compile-time constant

#include "vulkan.hpp"            // the generic runtime: context, buffer, kernel, sequence
#include "program/program.hpp"   // vkfuse::program: a plan made runnable
#include "program/decode_loop.hpp"  // vkfuse::decode_loop: greedy decoding with the loop on the device

#include "reference/eval.hpp"    // the Eigen evaluator
#include "reference/verify.hpp"  // vkfuse::verify: device against Eigen on random data

// Not included here: vkfuse/checkpoint/safetensors.hpp (model files; it brings nlohmann-json, about 2.5 s of compile
// time for every translation unit). Include it where checkpoints are read.
