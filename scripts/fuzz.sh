#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...] -- build the libFuzzer targets of
# fuzz/ and run each for SECONDS (default 30) on its committed corpus.
#
# Exit status 0 only when every target ran its time without a crash, a
# sanitizer report (ASan, UBSan, LeakSanitizer), a failed invariant, a
# timeout (-timeout=10 per input) or running out of memory
# (-rss_limit_mb=2048).  The last line is "N passed, N failed" (one count
# per target).  Needs clang (clang-14 is fine) and its libFuzzer runtime
# (Debian: clang-14 libclang-rt-14-dev) besides the library's own build
# dependencies.  See docs/fuzzing.md.
#
# Environment: FUZZ_CC (a clang; default: the first clang on PATH),
# FUZZ_JOBS (targets run at once, default 1), FUZZ_ARGS (extra libFuzzer
# flags).  Nothing outside fuzz/build/ is written: new inputs go to
# fuzz/build/ci/corpus/<target>/ (the committed corpus is only read),
# crash reproducers to fuzz/build/ci/artifacts/<target>/, logs to
# fuzz/build/ci/logs/<target>.log.
set -uo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-30}
case "$SECS" in ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2;; esac
shift $(( $# > 0 ? 1 : 0 ))
JOBS=${FUZZ_JOBS:-1}

echo "== building fuzz targets (make -f fuzz/Makefile)"
if ! make -s -f fuzz/Makefile -j"$(nproc 2>/dev/null || echo 2)" >/dev/null; then
    echo "fuzz.sh: build failed (needs clang and libclang-rt-dev for libFuzzer; see docs/fuzzing.md)" >&2
    make -f fuzz/Makefile 2>&1 | tail -20 >&2
    echo "0 passed, 1 failed"
    exit 1
fi

if [ $# -gt 0 ]; then TARGETS=("$@"); else read -r -a TARGETS <<<"$(make -s -f fuzz/Makefile list)"; fi

CI=fuzz/build/ci
rm -rf "$CI"
mkdir -p "$CI/logs"
TMPBASE=$( { [ -d /dev/shm ] && [ -w /dev/shm ] && mktemp -d /dev/shm/nhfuzz-ci.XXXXXX; } || mktemp -d)
trap 'rm -rf "$TMPBASE"' EXIT
export NH_FUZZ_TMPDIR="$TMPBASE"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

dict_of() {  # fuzz_npy -> fuzz/dict/npy.dict
    local d="fuzz/dict/${1#fuzz_}.dict"
    [ -f "$d" ] && echo "-dict=$d"
}

run_one() {
    local t=$1 bin=fuzz/build/$1 log=$CI/logs/$1.log
    mkdir -p "$CI/corpus/$t" "$CI/artifacts/$t"
    if [ ! -x "$bin" ]; then echo "no such target: $t" >"$log"; echo 127 >"$CI/logs/$t.rc"; return; fi
    # shellcheck disable=SC2046,SC2086
    "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        $(dict_of "$t") -artifact_prefix="$CI/artifacts/$t/" ${FUZZ_ARGS:-} \
        "$CI/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
    echo $? >"$CI/logs/$t.rc"
}

echo "== running ${#TARGETS[@]} targets for ${SECS}s each (FUZZ_JOBS=$JOBS)"
running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

pass=0 fail=0
for t in "${TARGETS[@]}"; do
    log=$CI/logs/$t.log
    rc=$(cat "$CI/logs/$t.rc" 2>/dev/null || echo 1)
    arts=$(find "$CI/artifacts/$t" -type f 2>/dev/null | head -5)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    if [ "$rc" = 0 ] && [ -z "$arts" ]; then
        pass=$((pass + 1))
        printf 'PASS %-18s %10s execs  %s\n' "$t" "${execs:-?}" "${cov:-}"
    else
        fail=$((fail + 1))
        printf 'FAIL %-18s exit %s  (log: %s)\n' "$t" "$rc" "$log"
        grep -E 'ERROR: |SUMMARY: |runtime error|invariant failed|\*\*\* [a-z]|#[0-9]+ 0x[0-9a-f]+ in ' "$log" |
            grep -vE ' in (fuzzer::|__sanitizer|__libc_start|_start |main |__pthread_kill|raise |abort )' |
            head -25 | sed 's/^/    /'
        for a in $arts; do echo "    reproducer: $a  (rerun: fuzz/build/$t $a)"; done
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
