#!/usr/bin/env bash
# Every libFuzzer target of fuzz/ for FUZZ_SECONDS (default 30) on its
# committed corpus (scripts/fuzz.sh, docs/fuzzing.md); one count per target.
cd "$(dirname "$0")/../.." || exit 1
bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}" 2>&1
