// shaders_gen/regenerate.cpp — writes the GLSL of every example program into a folder, one file per kernel:
// <example>[.<strategy>].<kernel number>.comp (fused unless a strategy is named). The committed copies in shaders_gen/ are golden files: the `golden_glsl` test
// regenerates them and compares byte for byte, so any change to generated code shows up in review as a diff.
//
//     vkfuse_regenerate_shaders <output folder>        (or: cmake --build build --target regenerate_shaders)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "../examples/custom_layer.hpp"
#include "../examples/decoder_layer.hpp"
#include "../examples/fused_ffn.hpp"

namespace {

template <class Program, vkfuse::strategy How = vkfuse::strategy::fused>
bool write_program(const std::filesystem::path& folder, std::string_view name) {
    using info = vkfuse::glsl::compiled<Program, How>;
    for (int k = 0; k < info::kernel_count; ++k) {
        const auto path = folder / (std::string(name) + "." + std::to_string(k + 1) + ".comp");
        std::ofstream out(path, std::ios::binary);
        const std::string_view text = info::sources[static_cast<std::size_t>(k)];
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        if (!out) {
            std::fprintf(stderr, "regenerate: cannot write %s\n", path.c_str());
            return false;
        }
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <output folder>\n", argv[0]);
        return 2;
    }
    const std::filesystem::path folder = argv[1];
    std::filesystem::create_directories(folder);
    using decoder = examples::decoder_layer::qwen25_05b::program_type;
    const bool ok = write_program<examples::fused_ffn::layer_type>(folder, "fused_ffn") &&
                    write_program<examples::custom_layer::layer_type>(folder, "custom_layer") &&
                    write_program<decoder>(folder, "decoder_layer.fused") &&
                    write_program<decoder, vkfuse::strategy::single_dispatch>(folder, "decoder_layer.single_dispatch") &&
                    write_program<decoder, vkfuse::strategy::persistent>(folder, "decoder_layer.persistent");
    return ok ? 0 : 1;
}
