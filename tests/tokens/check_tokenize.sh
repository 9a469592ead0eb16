#!/usr/bin/env bash
# ctest's tokenize_tool: tools/tokenize (what scripts/tokenize runs) on the hand-made fixtures — ids as Hugging Face's
# tokenizers gives them (tests/fixtures/tokenizers/expected.js), --special, --decode, and its refusals.
#   check_tokenize.sh TOKENIZE_PROGRAM FIXTURES_DIR
set -uo pipefail
tokenize=$1 fixtures=$2
failures=0
expect() {  # expect NAME WANT GOT
    if [[ "$2" != "$3" ]]; then
        echo "FAIL $1: want [$2], got [$3]"
        failures=$((failures + 1))
    else
        echo "ok   $1"
    fi
}
input='["Hello world", "a 你 b"]'
expect "byte-level ids" $'[271,267]\n[97,32,278,32,98]' "$(printf '%s' "$input" | "$tokenize" "$fixtures/byte_level.json")"
expect "byte-level ids with the BOS" $'[284,271,267]\n[284,97,32,278,32,98]' \
    "$(printf '%s' "$input" | "$tokenize" "$fixtures/byte_level.json" --special)"
expect "sentencepiece ids from a file" $'[259,287,315,274,313]\n[307,259,231,192,163,259,261]' \
    "$(work=$(mktemp -d); printf "%s" "$input" >"$work/in.json"; "$tokenize" "$fixtures/sentencepiece.json" "$work/in.json"; rm -rf "$work")"
expect "decode" $'"<s> Hello world"\n"a 你 b"' \
    "$(printf '[[1,259,287,315,274,313],[307,259,231,192,163,259,261]]' | "$tokenize" "$fixtures/sentencepiece.json" --decode)"
# refusals: exit status 1 and a message naming what is wrong
message=$(printf '["ok", 3]' | "$tokenize" "$fixtures/byte_level.json" 2>&1 >/dev/null); status=$?
expect "a number among the strings" "1 tokenize: error: tokenize: item 1 is not a string" "$status $message"
message=$(printf '["\xff"]' | "$tokenize" "$fixtures/byte_level.json" 2>&1 >/dev/null); status=$?
[[ $status == 1 && $message == *"UTF-8"* ]]; expect "invalid UTF-8 input" 0 $?
message=$("$tokenize" "$fixtures/no-such-dir" </dev/null 2>&1 >/dev/null); status=$?
[[ $status == 1 && $message == *"does not exist"* ]]; expect "a missing tokenizer.json" 0 $?
message=$(printf '[[1, 99999999]]' | "$tokenize" "$fixtures/byte_level.json" --decode 2>&1 >/dev/null); status=$?
[[ $status == 1 && $message == *"id 99999999 is not in the vocabulary"* ]]; expect "an id outside the vocabulary" 0 $?
echo "tokenize_tool: $failures failures"
[[ $failures == 0 ]]
