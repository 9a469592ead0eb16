#!/usr/bin/env bash
# benchmarks/plot_matvec_bandwidth.sh — each weight format's matvec bandwidth as a fraction of the copy kernel's, one
# group of bars per matrix shape (the plain matvec variant), from the .tsv matvec_bandwidth writes next to its JSON.
#
#     bash benchmarks/plot_matvec_bandwidth.sh [RESULT.tsv ...]   (default: every benchmarks/results/matvec_bandwidth-*.tsv)
#
# The PNG goes next to the .tsv. Needs gnuplot (Debian/Ubuntu: sudo apt-get install gnuplot-nox).
set -euo pipefail
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot_matvec_bandwidth.sh: gnuplot is not installed. Install it with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends gnuplot-nox" >&2
    exit 1
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$#" -eq 0 ]; then
    shopt -s nullglob
    set -- "$here"/results/matvec_bandwidth-*.tsv
    shopt -u nullglob
fi
for tsv in "$@"; do
    png="${tsv%.tsv}.png"
    heading="$(sed -n '1s/^# //p' "$tsv" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
    # one row per shape, one column per format: the plain matvec's fraction of copy bandwidth, in percent
    # (a matrix split over several bindings is still the plain matvec: "matvec, 3 pieces")
    table="$(mktemp)"
    awk -F'\t' '
        /^#/ { next }
        $4 ~ /^matvec(, [0-9]+ pieces)?$/ {
            shape = $2 "x" $3
            if (!(shape in seen)) { seen[shape] = 1; order[++n] = shape }
            if (!($1 in known)) { known[$1] = 1; formats[++m] = $1 }
            value[shape, $1] = 100 * $8
        }
        END {
            printf "shape"; for (f = 1; f <= m; ++f) printf "\t%s", formats[f]; printf "\n"
            for (s = 1; s <= n; ++s) {
                printf "%s", order[s]
                for (f = 1; f <= m; ++f) printf "\t%s", ((order[s], formats[f]) in value) ? value[order[s], formats[f]] : "NaN"
                printf "\n"
            }
        }' "$tsv" > "$table"
    columns=$(head -1 "$table" | awk -F'\t' '{ print NF }')
    gnuplot <<GNUPLOT
set terminal pngcairo size 1000,600 noenhanced
set output "$png"
set title "matvec: weight bytes streamed per second, as a fraction of a copy kernel's bandwidth\n$heading"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:110]
set ylabel "% of copy bandwidth (median run)"
set xlabel "matrix rows x columns"
set key top left
set grid ytics
plot for [c=2:$columns] "$table" using c:xtic(1) title columnheader(c)
GNUPLOT
    rm -f "$table"
    echo "plot_matvec_bandwidth.sh: wrote $png"
done
