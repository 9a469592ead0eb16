// vkfuse/vulkan/shader_compiler.hpp — GLSL compute shaders to SPIR-V, in process, with glslang.
//
// Needs no Vulkan device, so code-generator tests can check that their GLSL compiles on machines without a GPU.
// Link: glslang, SPIRV, glslang-default-resource-limits (and glslang's own dependencies, SPIRV-Tools-opt/SPIRV-Tools).
#pragma once

#include "vkfuse/core/error.hpp"

#include <glslang/Public/ResourceLimits.h>
#include <glslang/Public/ShaderLang.h>
#include <glslang/SPIRV/GlslangToSpv.h>
#if __has_include(<glslang/build_info.h>)
#    include <glslang/build_info.h>  // GLSLANG_VERSION_*; older glslang packages do not install it
#endif

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vkfuse::vulkan {

namespace detail {

// ---------------------------------------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------------------------------------

inline constexpr std::uint64_t fnv1a_offset = 14695981039346656037ull;

inline constexpr std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = fnv1a_offset) noexcept {
    for (unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    return hash;
}

// ---------------------------------------------------------------------------------------------------------------------
// Error reports
// ---------------------------------------------------------------------------------------------------------------------

inline std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        if (end == std::string_view::npos) break;
        text.remove_prefix(end + 1);
    }
    return lines;
}

inline std::string_view trim_right(std::string_view s) noexcept {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// glslang locates errors as "ERROR: <string>:<line>: ...". String 0 is the source, -1 the preamble (glslang numbers
// the preamble before the first user string). Returns false for messages without a location, such as the summary.
inline bool parse_error_location(std::string_view message, int& string_index, int& line) noexcept {
    constexpr std::string_view tag = "ERROR: ";
    if (message.substr(0, tag.size()) != tag) return false;
    const char* p = message.data() + tag.size();
    const char* end = message.data() + message.size();
    auto [after_string, e1] = std::from_chars(p, end, string_index);
    if (e1 != std::errc{} || after_string == end || *after_string != ':') return false;
    auto [after_line, e2] = std::from_chars(after_string + 1, end, line);
    return e2 == std::errc{} && after_line != end && *after_line == ':' && line > 0;
}

// Numbered lines around each error line, one line of context either side, '>' marking the error lines.
inline std::string excerpt(std::string_view text, const std::vector<int>& error_lines) {
    const std::vector<std::string_view> lines = split_lines(text);
    const int count = static_cast<int>(lines.size());
    std::vector<bool> marked(lines.size() + 1, false), shown(lines.size() + 1, false);
    for (int line : error_lines) {
        if (line < 1 || line > count) continue;
        marked[line] = true;
        for (int l = std::max(1, line - 1); l <= std::min(count, line + 1); ++l) shown[l] = true;
    }
    const int width = static_cast<int>(std::to_string(count).size());
    std::string out;
    int previous = 0;
    for (int l = 1; l <= count; ++l) {
        if (!shown[l]) continue;
        if (previous != 0 && l != previous + 1) out += "    ...\n";
        std::string number = std::to_string(l);
        out += marked[l] ? "  > " : "    ";
        out.append(static_cast<std::size_t>(width) - number.size(), ' ');
        out += number;
        out += " | ";
        out += lines[static_cast<std::size_t>(l - 1)];
        out += '\n';
        previous = l;
    }
    return out;
}

inline std::string kernel_name(std::string_view label) {
    return label.empty() ? std::string("(unlabelled kernel)") : "'" + std::string(label) + "'";
}

inline std::string glsl_error_report(std::string_view stage, std::string_view log, std::string_view glsl,
                                     std::string_view preamble, std::string_view label) {
    std::string message = "vkfuse: glslang " + std::string(stage) + " failed for kernel " + kernel_name(label) + ":\n";
    std::vector<int> source_lines, preamble_lines;
    for (std::string_view line : split_lines(log)) {
        line = trim_right(line);
        if (line.empty()) continue;
        message += "  ";
        message += line;
        message += '\n';
        int string_index = 0, line_number = 0;
        if (parse_error_location(line, string_index, line_number))
            (string_index < 0 ? preamble_lines : source_lines).push_back(line_number);
    }
    if (!source_lines.empty()) message += "Source lines with errors (marked '>'):\n" + excerpt(glsl, source_lines);
    if (!preamble_lines.empty())
        message += "Preamble lines with errors (marked '>'):\n" + excerpt(preamble, preamble_lines);
    message += "Fix the GLSL if it was written by hand; if vkfuse generated it, this is a code-generator bug, please "
               "report it with this message.";
    return message;
}

// ---------------------------------------------------------------------------------------------------------------------
// glslang
// ---------------------------------------------------------------------------------------------------------------------

// What glslang is told to produce for a Vulkan API version (VK_MAKE_API_VERSION style).
struct glslang_target {
    glslang::EShTargetClientVersion client = glslang::EShTargetVulkan_1_1;
    glslang::EShTargetLanguageVersion spirv = glslang::EShTargetSpv_1_3;
    std::string_view text = "Vulkan 1.1, SPIR-V 1.3";
};

inline glslang_target glslang_target_for(std::uint32_t vulkan_api_version) noexcept {
    const std::uint32_t major = (vulkan_api_version >> 22) & 0x7fu;
    const std::uint32_t minor = (vulkan_api_version >> 12) & 0x3ffu;
    if (major > 1 || minor >= 3) return {glslang::EShTargetVulkan_1_3, glslang::EShTargetSpv_1_6, "Vulkan 1.3, SPIR-V 1.6"};
    if (minor == 2) return {glslang::EShTargetVulkan_1_2, glslang::EShTargetSpv_1_5, "Vulkan 1.2, SPIR-V 1.5"};
    return {};
}

// glslang keeps process-wide tables; it is initialised once and never finalised, so that contexts destroyed during
// static destruction cannot race a finaliser.
inline void ensure_glslang_initialized() {
    static const bool initialized = glslang::InitializeProcess();
    if (!initialized) throw shader_error("vkfuse: glslang::InitializeProcess() failed; the glslang library is unusable.");
}

} // namespace detail

// ---------------------------------------------------------------------------------------------------------------------
// compile_glsl
// ---------------------------------------------------------------------------------------------------------------------

// Everything besides the GLSL, the preamble and the target that decides which SPIR-V compile_glsl produces: the
// glslang it was built with and the fixed settings below. The disk cache keys on it (see cache.hpp), so change the
// settings text together with any setting in compile_glsl, or old cache files would be taken for new output.
inline std::string compiler_identity() {
    std::string identity = "glslang";
#if defined(GLSLANG_VERSION_MAJOR)
    identity += " " + std::to_string(GLSLANG_VERSION_MAJOR) + "." + std::to_string(GLSLANG_VERSION_MINOR) + "." +
                std::to_string(GLSLANG_VERSION_PATCH) + GLSLANG_VERSION_FLAVOR;
#else
    identity += " (version unknown at build time)";
#endif
    identity += ", SPIR-V generator " + std::to_string(glslang::GetSpirvGeneratorVersion());
    identity += "; GLSL 450, Vulkan rules, default resource limits, spirv-opt off";
    return identity;
}

// Compiles one GLSL compute shader for the Vulkan API version `vulkan_api_version` (VK_MAKE_API_VERSION style; 1.1
// gives SPIR-V 1.3, 1.2 gives 1.5, 1.3 and later give 1.6). `preamble` is inserted after the #version line, e.g.
// "#define VKFUSE_SUBGROUP_ARITHMETIC 1\n". Throws vkfuse::shader_error naming `label` and quoting the offending lines.
inline std::vector<std::uint32_t> compile_glsl(std::string_view glsl, std::string_view preamble = {},
                                               std::string_view label = {},
                                               std::uint32_t vulkan_api_version = (1u << 22) | (1u << 12)) {
    detail::ensure_glslang_initialized();

    const detail::glslang_target target = detail::glslang_target_for(vulkan_api_version);

    // glslang reads C strings; string_views need not be terminated.
    const std::string source(glsl);
    const std::string preamble_text(preamble);
    const char* source_ptr = source.c_str();
    const int source_length = static_cast<int>(source.size());

    glslang::TShader shader(EShLangCompute);
    shader.setStringsWithLengths(&source_ptr, &source_length, 1);
    if (!preamble_text.empty()) shader.setPreamble(preamble_text.c_str());
    shader.setEnvInput(glslang::EShSourceGlsl, EShLangCompute, glslang::EShClientVulkan, 100);
    shader.setEnvClient(glslang::EShClientVulkan, target.client);
    shader.setEnvTarget(glslang::EShTargetSpv, target.spirv);
    const auto messages = static_cast<EShMessages>(EShMsgSpvRules | EShMsgVulkanRules);
    if (!shader.parse(GetDefaultResources(), 450, false, messages))
        throw shader_error(detail::glsl_error_report("compilation", shader.getInfoLog(), glsl, preamble, label));

    glslang::TProgram program;
    program.addShader(&shader);
    if (!program.link(messages))
        throw shader_error(detail::glsl_error_report("linking", program.getInfoLog(), glsl, preamble, label));

    std::vector<unsigned int> words;
    spv::SpvBuildLogger logger;
    glslang::SpvOptions options;
    options.disableOptimizer = true;  // drivers optimise anyway; spirv-opt would only add compile time
    glslang::GlslangToSpv(*program.getIntermediate(EShLangCompute), words, &logger, &options);
    if (words.empty())
        throw shader_error(detail::glsl_error_report("SPIR-V generation", logger.getAllMessages(), glsl, preamble,
                                                     label));
    return std::vector<std::uint32_t>(words.begin(), words.end());
}

} // namespace vkfuse::vulkan
