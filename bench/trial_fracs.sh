#!/bin/sh
# dgemm fractions of fig1's hot paths (issue 15): one GD step, one H v and the
# NTK Gram at widths 196,1000,1000,1, N = 256, on 1 and 2 threads, each as a
# fraction of a 2000^3 dgemm timed in the same process (`ntkhess bench`'s
# frac_dgemm; the float32 engine, fig1's default now, against an sgemm:
# frac_sgemm).  ROUNDS paired rounds; within a round the thread counts and
# the ops alternate, so that a load change hits both thread counts alike.
# usage: [BIN=build/ntkhess] [THREADS="1 2"] bench/trial_fracs.sh [ROUNDS] [RAW]   (default 3, bench/results-trial-fracs.jsonl)
# then:  /usr/bin/python3 bench/trial_table.py fracs RAW
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
raw=${2:-bench/results-trial-fracs.jsonl}
bin=${BIN:-build/ntkhess}; threads=${THREADS:-1 2}
: > "$raw"
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
r=1
while [ "$r" -le "$rounds" ]; do
    for t in $threads; do
        for op in step hvp ntk; do
            for p in f64 f32; do
                "$bin" bench "$op" --widths 196,1000,1000,1 --N 256 --threads "$t" --reps 5 --precision "$p" >> "$raw"
            done
        done
    done
    echo "# round $r done $(date -u +%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    r=$((r + 1))
done
