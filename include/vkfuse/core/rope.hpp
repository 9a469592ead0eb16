// vkfuse/core/rope.hpp — RoPE's frequencies: plain (theta^(-2i/d)) and Llama 3's scaled ones.
//
// One definition for the cos/sin table the runtime fills, for the Eigen reference, and for the model loader's check
// against config.json (model/config.hpp computes the same numbers from a config; tests compare the two).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace vkfuse {

// Llama 3's RoPE scaling (rope_type "llama3" in config.json): low frequencies divided by `factor`, high ones kept,
// a smooth ramp between, by wavelength relative to `original_positions`. original_positions == 0 means no scaling.
// A structural type, so it is a template argument of rope<...> and part of the expression's type.
struct rope_scaling {
    float factor = 1.0f;
    float low_freq_factor = 1.0f;
    float high_freq_factor = 4.0f;
    std::uint32_t original_positions = 0;

    constexpr bool scaled() const { return original_positions != 0; }
};

// The inverse frequency of pair `pair` (dimensions pair and pair + head_dim / 2) in double, by transformers'
// formulas (modeling_rope_utils.py, _compute_default_rope_parameters and _compute_llama3_parameters).
inline double rope_inverse_frequency(std::uint32_t head_dim, double theta, const rope_scaling& s, std::uint32_t pair) {
    const double plain = 1.0 / std::pow(theta, 2.0 * pair / static_cast<double>(head_dim));
    if (!s.scaled()) return plain;
    const double original = s.original_positions;
    const double wavelength = 2 * std::numbers::pi / plain;
    if (wavelength < original / s.high_freq_factor) return plain;
    if (wavelength > original / s.low_freq_factor) return plain / s.factor;
    const double smooth = (original / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return (1 - smooth) * plain / s.factor + smooth * plain;
}

} // namespace vkfuse
