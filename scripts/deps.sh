#!/usr/bin/env bash
# Make sure the Debian/Ubuntu packages vkfuse needs are installed.
#   as root:  installs whatever is missing (apt-get update + apt-get install)
#   otherwise: prints the one apt-get line to run and exits with status 1
# Usage: scripts/deps.sh            (from any directory)
set -euo pipefail

packages=(
    cmake g++ make                    # toolchain
    libvulkan-dev                     # Vulkan headers + loader
    glslang-dev glslang-tools         # in-process GLSL -> SPIR-V compiler (+ glslangValidator)
    spirv-tools                       # SPIRV-Tools libraries glslang links against
    libeigen3-dev                     # reference results
    doctest-dev                       # tests
    libcli11-dev                      # benchmarks: command-line flags (CLI/CLI.hpp)
    nlohmann-json3-dev                # safetensors headers (the library), benchmarks' JSON results
    mesa-vulkan-drivers               # lavapipe: Vulkan on the CPU
    vulkan-validationlayers           # VK_LAYER_KHRONOS_validation, on in the tests
    vulkan-tools                      # vulkaninfo, for diagnosing the device
    time                              # /usr/bin/time, for scripts/compile_budget.sh
    libpcre2-dev libutf8proc-dev      # the tokenizer: regexes with Unicode properties, NFC
    pkg-config                        # how CMake finds those two
)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: no dpkg-query here (not Debian/Ubuntu); make sure these are installed: ${packages[*]}" >&2
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: all ${#packages[@]} required packages are installed"
    exit 0
fi

echo "deps: missing packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
    echo "deps: installing them: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    echo "deps: done"
else
    echo "deps: not root, so not installing. Run:" >&2
    echo "    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
