#!/usr/bin/env bash
# Compile-time budget of the examples' translation units — the demo (examples/fused_ffn.cpp) and the decoder layer
# under all three strategies (examples/decoder_layer.cpp): each compiled alone, with exactly the flags of the build
# (from <build>/compile_commands.json), under /usr/bin/time -v. Fails if one takes more than 30 s of wall time or
# more than 2048 MB of peak memory (override with VKFUSE_BUDGET_SECONDS / VKFUSE_BUDGET_MB).
# Also run by ctest as `compile_budget`.
# Usage: scripts/compile_budget.sh [build dir, default build/] [example names, default: fused_ffn decoder_layer]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

build=${1:-build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
shift || true
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(fused_ffn decoder_layer)
budget_s=${VKFUSE_BUDGET_SECONDS:-30}
budget_mb=${VKFUSE_BUDGET_MB:-2048}

if [[ ! -x /usr/bin/time ]]; then
    echo "compile_budget: /usr/bin/time is missing; run scripts/deps.sh" >&2
    exit 1
fi

check_one() {
    local name=$1
    local source_file="$repo/examples/$name.cpp"
    if [[ ! -f "$source_file" ]]; then
        echo "compile_budget: $source_file does not exist" >&2
        return 1
    fi

    extract() {
        cmake -DVKFUSE_COMPILE_COMMANDS="$build/compile_commands.json" -DVKFUSE_SOURCE="$source_file" \
              -DVKFUSE_OBJECT="$scratch/$name.o" -DVKFUSE_OUT="$scratch/command" \
              -P "$repo/cmake/vkfuse_compile_command.cmake"
    }

    if [[ ! -f "$build/compile_commands.json" ]] || ! extract >/dev/null 2>&1; then
        echo "compile_budget: no compile command for examples/$name.cpp in $build yet; configuring $build"
        if [[ -f "$build/CMakeCache.txt" ]]; then
            cmake -S "$repo" -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
        else
            cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
        fi
        extract
    fi

    directory=$(sed -n 1p "$scratch/command")
    command=$(sed -n 2p "$scratch/command")

    echo "compile_budget: in $directory"
    echo "compile_budget: /usr/bin/time -v $command"
    status=0
    ( cd "$directory" && /usr/bin/time -v -o "$scratch/time" bash -c "$command" ) || status=$?
    if [[ $status -ne 0 ]]; then
        echo "compile_budget: the compile failed (exit status $status)" >&2
        [[ -f "$scratch/time" ]] && cat "$scratch/time" >&2
        return 1
    fi

    wall=$(awk -F': ' '/Elapsed \(wall clock\) time/ {
        n = split($2, part, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + part[i]
        printf "%.2f", s }' "$scratch/time")
    rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$scratch/time")
    rss_mb=$(awk -v kb="$rss_kb" 'BEGIN { printf "%.0f", kb / 1024 }')

    echo "compile_budget: wall ${wall} s (budget ${budget_s} s), peak RSS ${rss_mb} MB (budget ${budget_mb} MB)"

    over=0
    if awk -v a="$wall" -v b="$budget_s" 'BEGIN { exit !(a > b) }'; then
        echo "compile_budget: OVER BUDGET: ${wall} s > ${budget_s} s" >&2
        over=1
    fi
    if awk -v a="$rss_mb" -v b="$budget_mb" 'BEGIN { exit !(a > b) }'; then
        echo "compile_budget: OVER BUDGET: ${rss_mb} MB > ${budget_mb} MB" >&2
        over=1
    fi
    if [[ $over -ne 0 ]]; then
        return 1
    fi
    echo "compile_budget: within budget"
}

failed=0
for name in "${names[@]}"; do
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/vkfuse_budget.XXXXXX")
    check_one "$name" || failed=1
    rm -rf "$scratch"
done
exit "$failed"
