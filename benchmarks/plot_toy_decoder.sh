#!/usr/bin/env bash
# benchmarks/plot_toy_decoder.sh — time per token against dispatches per token, log-log, from toy_decoder's .tsv.
#
#     bash benchmarks/plot_toy_decoder.sh [RESULT.tsv ...]     (default: every benchmarks/results/toy_decoder-*.tsv)
#
# One colour per variant, one point per configuration (D, L), labelled; wall-clock medians per token. The PNG goes
# next to the .tsv. Needs gnuplot (Debian/Ubuntu: sudo apt-get install gnuplot-nox).
set -euo pipefail
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot_toy_decoder.sh: gnuplot is not installed. Install it with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends gnuplot-nox" >&2
    exit 1
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$#" -eq 0 ]; then
    shopt -s nullglob
    set -- "$here"/results/toy_decoder-*.tsv
    shopt -u nullglob
fi
for tsv in "$@"; do
    png="${tsv%.tsv}.png"
    title="$(basename "${tsv%.tsv}")"
    gnuplot <<GNUPLOT
set terminal pngcairo size 1000,700 noenhanced
set output "$png"
set title "$title: time per token against dispatches per token (64 tokens; labels D/L)"
set logscale xy
set xlabel "dispatches per token"
set ylabel "wall-clock µs per token (median)"
set key top left
set grid
set datafile separator "\t"
plot for [v in "single_dispatch fused per_op per_op_each_submitted"] \
    "$tsv" using (strcol(3) eq v ? \$4 : 1/0):5 with points pt 7 ps 1.5 title v, \
    "$tsv" using 4:5:(sprintf("%d/%d", \$1, \$2)) with labels offset 2.5,0.5 font ",8" notitle
GNUPLOT
    echo "plot_toy_decoder.sh: wrote $png"
done
