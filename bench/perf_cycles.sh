#!/bin/sh
# Load-robust companion of bench/perf_compare.sh (1 thread only): the CPU
# time (task-clock) of one op, from `perf stat` on two runs of `ntkhess bench
# OP` with --reps 5 and --reps 25 (the difference is 20 reps; setup,
# validation and the anchor cancel: --anchor 64).  CPU time counts only while
# the process runs, so other jobs' load changes it less than wall time (shared
# caches and memory bandwidth aside); this machine's perf has no hardware
# cycle counters.  BASE and NEW alternate, ROUNDS rounds.
# usage: [WIDTHS=196,1000,1000,1 NPTS=256 OPS="step hvp ntk"] bench/perf_cycles.sh BASE NEW [ROUNDS] [RAW]
# (one JSON line per measurement)
set -eu
cd "$(dirname "$0")/.."
base=$1; new=$2; rounds=${3:-3}; raw=${4:-bench/results-perf-cpu.jsonl}
widths=${WIDTHS:-196,1000,1000,1}; npts=${NPTS:-256}; ops=${OPS:-step hvp ntk}
: > "$raw"
count() { # exe op prec reps -> CPU microseconds
    perf stat -x, -e task-clock -o /tmp/perf_cycles.$$ "$1" bench "$2" --widths "$widths" \
        --N "$npts" --threads 1 --reps "$4" --precision "$3" --anchor 64 > /dev/null
    awk -F, '/task-clock/ {printf "%d\n", $1 * 1000}' /tmp/perf_cycles.$$
}
r=1
while [ "$r" -le "$rounds" ]; do
    for op in $ops; do
        for p in f64 f32; do
            for b in base new; do
                eval exe=\$$b
                set -- $(count "$exe" "$op" "$p" 5) $(count "$exe" "$op" "$p" 25)
                echo "{\"bin\":\"$b\",\"round\":$r,\"op\":\"$op\",\"precision\":\"$p\",\"cpu_us_per_rep\":$((($2 - $1) / 20))}" >> "$raw"
            done
        done
    done
    echo "# cpu round $r done $(date -u +%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    r=$((r + 1))
done
rm -f /tmp/perf_cycles.$$
