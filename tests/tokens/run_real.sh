#!/usr/bin/env bash
# ctest's tokenizers_real: fetch the published tokenizer files (scripts/fetch_tokenizers, cached in DIR), then run
# the "real:" test cases on them. Exit status 77 (ctest: skipped) with the reason where they cannot be fetched.
#   run_real.sh SOURCE_DIR DIR TEST_PROGRAM
set -uo pipefail
source_dir=$1 dir=$2 program=$3
if ! bash "$source_dir/scripts/fetch_tokenizers" "$dir"; then
    echo "tokenizers_real: SKIPPED: the published tokenizer files could not be fetched (above); the hand-made"
    echo "fixtures (vkfuse_tokens_tests) still ran. Run scripts/fetch_tokenizers where the npm registry is reachable."
    exit 77
fi
VKFUSE_TOKENIZERS_DIR=$dir exec "$program" "--test-case=real:*"
