#!/usr/bin/env bash
# Plots benchmarks/decode's results: time per token against context length, one line per strategy, for each weight
# format in the file (one panel each), with the memory-bandwidth floor of the same run as a dashed line.
#
#     bash benchmarks/plot_decode.sh [RESULT.tsv ...]   (default: every benchmarks/results/decode-*.tsv)
#
# The PNG goes next to the .tsv. Needs gnuplot (Debian/Ubuntu: sudo apt-get install gnuplot-nox).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -eq 0 ]]; then
    shopt -s nullglob
    set -- "$here"/results/decode-*.tsv
    shopt -u nullglob
fi
for tsv in "$@"; do
    png="${tsv%.tsv}.png"
    heading="$(sed -n '1s/^# //p' "$tsv" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
    formats=$(awk -F'\t' '!/^#/ { if (!($2 in seen)) { seen[$2] = 1; printf "%s ", $2 } }' "$tsv")
    [[ -n "$formats" ]] || { echo "plot_decode.sh: no rows in $tsv" >&2; continue; }
    count=$(wc -w <<<"$formats")
    tables=()
    for f in $formats; do
        table="$(mktemp)"
        # context, then GPU us per token of each strategy, then the floor
        awk -F'\t' -v fmt="$f" '
            /^#/ || $2 != fmt { next }
            {
                if (!($4 in seenc)) { seenc[$4] = 1; ctx[++n] = $4 }
                if (!($3 in seens)) { seens[$3] = 1; strat[++m] = $3 }
                t[$4, $3] = $5; floor_us[$4] = $8
            }
            END {
                printf "context"; for (s = 1; s <= m; ++s) printf "\t%s", strat[s]; printf "\tfloor\n"
                for (c = 1; c <= n; ++c) {
                    printf "%s", ctx[c]
                    for (s = 1; s <= m; ++s) printf "\t%s", ((ctx[c], strat[s]) in t) ? t[ctx[c], strat[s]] : "NaN"
                    printf "\t%s\n", floor_us[ctx[c]]
                }
            }' "$tsv" > "$table"
        tables+=("$table")
    done
    {
        echo "set terminal pngcairo size 1100,$((330 * ((count + 1) / 2) + 60)) noenhanced"
        echo "set output \"$png\""
        echo "set multiplot layout $(((count + 1) / 2)),2 title \"decode: GPU time per token against context\\n$heading\""
        echo "set logscale y"
        echo "set xlabel \"context (positions attended)\""
        echo "set ylabel \"us per token\""
        echo "set key bottom right font \",9\""
        echo "set grid"
        i=0
        for f in $formats; do
            t="${tables[$i]}"
            n=$(head -1 "$t" | awk -F'\t' '{ print NF }')
            echo "set title \"$f\""
            echo "plot for [c=2:$((n - 1))] \"$t\" using 1:c with linespoints lw 2 title columnheader(c), \"$t\" using 1:$n with lines dt 2 lw 2 lc rgb \"black\" title \"floor\""
            i=$((i + 1))
        done
        echo "unset multiplot"
    } | gnuplot
    rm -f "${tables[@]}"
    echo "plot_decode.sh: wrote $png"
done
