#!/usr/bin/env bash
# benchmarks/plot_layer_strategies.sh — time per layer and token against dispatches, log-log, from the .tsv that
# layer_strategies writes next to its JSON.
#
#     bash benchmarks/plot_layer_strategies.sh [RESULT.tsv ...]   (default: every benchmarks/results/layer_strategies-*.tsv)
#
# One point per strategy, wall clock and GPU timestamps (medians), the wall-clock range as an error bar, and the wall
# clock of a decode loop (set_index before every run; from files that have that column). The PNG goes next to the .tsv. Needs gnuplot (Debian/Ubuntu: sudo apt-get install gnuplot-nox).
set -euo pipefail
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot_layer_strategies.sh: gnuplot is not installed. Install it with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends gnuplot-nox" >&2
    exit 1
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$#" -eq 0 ]; then
    shopt -s nullglob
    set -- "$here"/results/layer_strategies-*.tsv
    shopt -u nullglob
fi
for tsv in "$@"; do
    png="${tsv%.tsv}.png"
    heading="$(sed -n '1s/^# //p' "$tsv" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
    gnuplot <<GNUPLOT
set terminal pngcairo size 900,650 noenhanced
set output "$png"
set title "Qwen2.5-0.5B decoder layer, one token: time against dispatches\n$heading"
set logscale xy
set xrange [0.5:60]
set xlabel "dispatches per layer and token"
set ylabel "µs per layer and token (median)"
set key top left
set grid
plot "$tsv" using 2:3:5:6 with yerrorbars pt 7 ps 1.4 lc rgb "#1f77b4" title "wall clock (min-max)", \
     "$tsv" using 2:4 with points pt 9 ps 1.6 lc rgb "#d62728" title "GPU timestamps", \
     "$tsv" using 2:7 with points pt 5 ps 1.2 lc rgb "#2ca02c" title "wall clock, a new position every run (decode loop)", \
     "$tsv" using 2:3:1 with labels offset 2,0.8 left notitle
GNUPLOT
    echo "plot_layer_strategies.sh: wrote $png"
done
