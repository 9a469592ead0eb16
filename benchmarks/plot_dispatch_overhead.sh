#!/usr/bin/env bash
# benchmarks/plot_dispatch_overhead.sh — per-dispatch time against N, log-log, from dispatch_overhead's .tsv.
#
#     bash benchmarks/plot_dispatch_overhead.sh [RESULT.tsv|RESULT.json ...]
#
# Each argument is a result of benchmarks/dispatch_overhead (the .json may be named: the .tsv written next to it is
# read); the PNG goes next to it with the extension .png. Without arguments every
# benchmarks/results/dispatch_overhead-*.tsv is plotted. One colour per variant; solid lines are GPU timestamps,
# dashed lines wall clock; the points are medians over the timed runs.
#
# Needs gnuplot (Debian/Ubuntu: sudo apt-get install gnuplot-nox).
set -euo pipefail

if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot_dispatch_overhead.sh: gnuplot is not installed. Install it with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends gnuplot-nox" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$#" -eq 0 ]; then
    shopt -s nullglob
    set -- "$here"/results/dispatch_overhead-*.tsv
    shopt -u nullglob
    if [ "$#" -eq 0 ]; then
        echo "plot_dispatch_overhead.sh: no $here/results/dispatch_overhead-*.tsv; run dispatch_overhead first." >&2
        exit 1
    fi
fi

# Columns are read by number, not by name: the harness writes the column names as a '#' line, older results wrote
# them as a plain first line, which gnuplot skips as non-numeric. Both plot alike.

# Text from the .tsv header, made safe inside a gnuplot double-quoted string.
quoted() { sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

for input in "$@"; do
    tsv="${input%.json}"
    tsv="${tsv%.tsv}.tsv"
    png="${tsv%.tsv}.png"
    if [ ! -r "$tsv" ]; then
        echo "plot_dispatch_overhead.sh: cannot read $tsv" >&2
        exit 1
    fi
    device="$(sed -n 's/^# device: //p' "$tsv" | head -n 1 | quoted)"
    commit="$(sed -n 's/^# vkfuse commit: //p' "$tsv" | head -n 1 | quoted)"
    runs="$(sed -n 's/^# dispatch_overhead: .*, \([0-9]*\) runs after.*/\1/p' "$tsv" | head -n 1)"
    label() { sed -n "s/^# variant $1: //p" "$tsv" | head -n 1 | tr -s ' ' | quoted; }

    gnuplot <<EOF
set encoding utf8
set terminal pngcairo size 1000,800 font ",11"
set output "$png"
set datafile separator "\t"
set logscale xy
set format x "10^{%T}"
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set xlabel "N (dispatches in a row; for (c) steps inside the one dispatch)"
set ylabel "time per dispatch (µs) = total / N"
set title "Per-dispatch cost, N dispatches in a row (vkfuse $commit)\n$device\nmedian of ${runs:-?} runs; solid = GPU timestamps, dashed = wall clock" noenhanced
set key below maxrows 6 width 2 noenhanced
array key[6] = ["a", "b", "b_raw", "c", "c_workgroup", "c_shared"]
array name[6] = ["$(label a)", "$(label b)", "$(label b_raw)", "$(label c)", "$(label c_workgroup)", "$(label c_shared)"]
array colour[6] = ["#d62728", "#1f77b4", "#17becf", "#2ca02c", "#9467bd", "#ff7f0e"]
pick(i, col) = (strcol(1) eq key[i]) ? column(col) : NaN
plot for [i=1:6] "$tsv" using 2:(pick(i, 6)) with linespoints lw 2 dt 1 pt 7 ps 1.1 lc rgb colour[i] title name[i]." GPU", \
     for [i=1:6] "$tsv" using 2:(pick(i, 3)) with linespoints lw 2 dt 2 pt 6 ps 1.1 lc rgb colour[i] title name[i]." wall"
EOF
    echo "wrote $png"
done
