#!/usr/bin/env bash
# ctest `generate_script`: scripts/generate end to end on the tiny-qwen2 fixture (one small build of tools/generate,
# kept in BUILDS between runs), and the ways it must refuse.
#
#   1. the prompt of tests/fixtures/tiny-qwen2/expected.json, --max-new its number of generated ids: the `tokens:`
#      line is prompt_ids then generated_ids, exactly, and the --logits file holds transformers' logits (within 1e-4
#      of the largest magnitude);
#   1b. --prompt on a copy of the fixture with a hand-made tokenizer.json: the prompt's ids as Hugging Face gives them,
#      the same tokens as --ids, and a `text:` line;
#   2. errors: a missing folder, --prompt without a tokenizer.json, --ids with --prompt, --max-seq too small, a
#      prompt id outside the vocabulary (from the built program), an unsupported architecture (at configure time), a
#      bad option, --logits naming an input — each a message and exit status 1 or 2, no crash, no input changed.
#
# Usage: tests/generate/check_generate.sh BUILDS   (CXX, VKFUSE_VALIDATION and VKFUSE_CACHE_DIR are passed through)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
builds=${1:?usage: check_generate.sh BUILDS}
mkdir -p "$builds"
export VKFUSE_GENERATE_DIR="$builds"
export VKFUSE_CACHE_DIR=${VKFUSE_CACHE_DIR:-$builds/vkfuse-cache}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vkfuse_generate_test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

fixture="$repo/tests/fixtures/tiny-qwen2"
failures=0
failed() {
    echo "FAILED: $*" >&2
    failures=$((failures + 1))
}

# expected.json is one line of JSON; its id lists are flat arrays of integers.
ids_of() { grep -o "\"$1\": *\[[0-9, ]*\]" "$fixture/expected.json" | sed 's/.*\[//; s/\]//; s/ //g'; }
prompt=$(ids_of prompt_ids)
generated=$(ids_of generated_ids)
new=$(($(tr -cd , <<<"$generated" | wc -c) + 1))
[[ -n $prompt && -n $generated ]] || { echo "cannot read the ids of $fixture/expected.json" >&2; exit 1; }

# ---- 1. the fixture's tokens and logits
echo "== scripts/generate $fixture --ids $prompt --max-new $new --logits ..."
status=0
"$repo/scripts/generate" "$fixture" --ids "$prompt" --max-new "$new" --logits "$scratch/logits.json" \
    >"$scratch/out" 2>"$scratch/err" || status=$?
cat "$scratch/out"
cat "$scratch/err" >&2
if [[ $status -ne 0 ]]; then
    failed "scripts/generate exited with status $status"
else
    [[ $(grep -c '^tokens: ' "$scratch/out") -eq 1 ]] || failed "not exactly one 'tokens:' line"
    got=$(sed -n 's/^tokens: //p' "$scratch/out")
    want="$prompt,$generated"
    [[ $got == "$want" ]] || failed "tokens: got $got, want $want"
    for line in '^prefill: ' '^decode: .* ms/token, .* tokens/s' '^build: .* s .*load: .* s'; do
        grep -q "$line" "$scratch/out" || failed "no line matching '$line'"
    done

    # The logits: every prompt position, then each generated token's, against transformers' (the same layout).
    numbers() {  # the numbers of the arrays under key $1 in file $2, one a line
        tr -d '\n ' <"$2" | grep -o "\"$1\":\[\[[^\"]*" | sed 's/^"[a-z_]*"://' | tr -c '0-9eE.+-' '\n' |
            grep -v '^$' || true
    }
    for key in logits generation_logits; do
        numbers "$key" "$fixture/expected.json" >"$scratch/want.$key"
        numbers "$key" "$scratch/logits.json" >"$scratch/got.$key"
        if [[ ! -s "$scratch/want.$key" ]] ||
           [[ $(wc -l <"$scratch/want.$key") -ne $(wc -l <"$scratch/got.$key") ]]; then
            failed "$key: $(wc -l <"$scratch/got.$key") values, want $(wc -l <"$scratch/want.$key")"
            continue
        fi
        if ! paste "$scratch/want.$key" "$scratch/got.$key" | awk -v key="$key" '
            function abs(v) { return v < 0 ? -v : v }
            BEGIN { largest = 0; worst = 0 }
            { want[NR] = $1; got[NR] = $2; if (abs($1) > largest) largest = abs($1) }
            END {
                tolerance = 1e-4 * (largest > 1 ? largest : 1)
                for (i = 1; i <= NR; i++) if (abs(want[i] - got[i]) > worst) worst = abs(want[i] - got[i])
                printf "%s: %d values, largest difference %.3g (tolerance %.3g)\n", key, NR, worst, tolerance
                exit !(worst <= tolerance)
            }'; then
            failed "$key differ from transformers' beyond the tolerance"
        fi
    done
fi

# ---- 1b. --prompt: text through the folder's tokenizer.json (a hand-made one whose ids fit the fixture's 131), the
# same tokens as the ids Hugging Face's tokenizers gives for it (tests/fixtures/tokenizers/expected.js's library:
# "ab 12 ab" with its template is 44,2,30,31,44,1), and the new tokens as text
mkdir -p "$scratch/text-model"
cp "$fixture"/*.json "$fixture"/*.safetensors "$scratch/text-model/"
cp "$repo/tests/fixtures/tokenizers/metaspace.json" "$scratch/text-model/tokenizer.json"
echo "== scripts/generate $scratch/text-model --prompt 'ab 12 ab' --max-new 3"
status=0
"$repo/scripts/generate" "$scratch/text-model" --prompt "ab 12 ab" --max-new 3 >"$scratch/out" 2>"$scratch/err" ||
    status=$?
cat "$scratch/out"
if [[ $status -ne 0 ]]; then
    cat "$scratch/err" >&2
    failed "--prompt: exit status $status"
else
    got=$(sed -n 's/^tokens: //p' "$scratch/out")
    [[ $got == 44,2,30,31,44,1,* ]] || failed "--prompt: tokens $got do not start with the prompt's ids 44,2,30,31,44,1"
    grep -q '^text: "' "$scratch/out" || failed "--prompt: no 'text:' line"
    "$repo/scripts/generate" "$scratch/text-model" --ids 44,2,30,31,44,1 --max-new 3 >"$scratch/out-ids" 2>/dev/null ||
        failed "--ids 44,2,30,31,44,1 failed"
    [[ $(sed -n 's/^tokens: //p' "$scratch/out-ids") == "$got" ]] || failed "--prompt and --ids give other tokens"
fi

# ---- 2. refusals: a message on stderr, exit status 1 or 2
refuses() {  # refuses 'what' 'expected message part' args...
    local what=$1 message=$2
    shift 2
    local status=0
    echo "== $what: scripts/generate $*"
    "$repo/scripts/generate" "$@" >"$scratch/out" 2>"$scratch/err" || status=$?
    sed 's/^/   /' "$scratch/err"
    if [[ $status -ne 1 && $status -ne 2 ]]; then
        failed "$what: exit status $status (want 1 or 2)"
    elif ! grep -qF -- "$message" "$scratch/err"; then
        failed "$what: the message does not say '$message'"
    elif grep -q '^tokens: ' "$scratch/out"; then
        failed "$what: printed tokens"
    fi
}
refuses "a missing folder" "is not a folder" "$scratch/no-such-model" --ids 1
refuses "--max-seq too small" "run with --max-seq $(($(tr -cd , <<<"$prompt" | wc -c) + 1 + new)) or more" \
    "$fixture" --ids "$prompt" --max-new "$new" --max-seq 10
refuses "an id outside the vocabulary" "not below the model's vocab_size" "$fixture" --ids 1,131 --max-new 2
refuses "more positions than the model has" "more than the model's max_position_embeddings" \
    "$fixture" --ids 1 --max-new 299
refuses "a bad option" "unknown option --temperature" "$fixture" --temperature 0.7
refuses "--prompt without a tokenizer.json" "tokenizer.json does not exist" "$fixture" --prompt "ab" --max-new 1
refuses "--ids and --prompt together" "give one of them" "$scratch/text-model" --ids 1 --prompt "ab" --max-new 1
# an output never replaces an input: --logits naming the checkpoint's own file (through another path) is refused,
# and the file is left as it was
cp -r "$fixture" "$scratch/own-model"
sum_before=$(cksum <"$scratch/own-model/model.safetensors")
refuses "--logits naming the model's weights" "a file of the model" \
    "$scratch/own-model" --ids 1 --max-new 1 --logits "$scratch/own-model/../own-model/model.safetensors"
[[ $(cksum <"$scratch/own-model/model.safetensors") == "$sum_before" ]] || failed "--logits changed the weights"
refuses "a bad --dtype" "--dtype f8: not one of" "$fixture" --dtype f8
refuses "a huge --max-new" "--max-new 1000000000: at most 1048576 new tokens" "$fixture" --ids 1 --max-new 1000000000
mkdir -p "$scratch/config-folder/config.json" "$scratch/config-link"
ln -s "$scratch/nowhere.json" "$scratch/config-link/config.json"
refuses "a config.json that is a folder" "is not a regular file" "$scratch/config-folder" --ids 1
refuses "a config.json that is a dangling link" "which does not exist" "$scratch/config-link" --ids 1
# a folder whose path holds characters a shell or sed treats specially: its message names it intact
odd="$scratch/a|b&c d"
mkdir -p "$odd"
echo '{"architectures": ["GPT2LMHeadModel"], "n_embd": 768}' >"$odd/config.json"
refuses "a model folder named with | and &" "$odd/config.json" "$odd" --ids 1
# config values the program's compile-time checks would refuse: named at configure time, before any compiling
bad_config() {  # bad_config NAME 'python-free edit: a sed expression applied to the fixture's config.json'
    mkdir -p "$scratch/$1"
    sed "$2" "$fixture/config.json" >"$scratch/$1/config.json"
    cp "$fixture/model.safetensors" "$scratch/$1/"
}
bad_config theta-one 's/"rope_theta": *[0-9.eE+]*/"rope_theta": 1.0/'
refuses "rope_theta 1" "rope_theta 1.0 must be greater than 1" "$scratch/theta-one" --ids 1
llama="$repo/tests/fixtures/tiny-llama"
mkdir -p "$scratch/freq-order"
sed 's/"low_freq_factor": *[0-9.]*/"low_freq_factor": 8.0/' "$llama/config.json" >"$scratch/freq-order/config.json"
refuses "llama3 low_freq_factor above high_freq_factor" "must be greater than low_freq_factor 8.0" \
    "$scratch/freq-order" --ids 1
mkdir -p "$scratch/gpt2"
echo '{"architectures": ["GPT2LMHeadModel"], "n_embd": 768, "n_layer": 12}' >"$scratch/gpt2/config.json"
refuses "an unsupported architecture" "GPT2LMHeadModel] is not supported" "$scratch/gpt2" --ids 1

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all checks passed"
