#!/bin/sh
# Before/after of the engine's hot paths (bench/README.md, "perf"): binary
# BASE against binary NEW, alternating within each round (same op, threads and
# precision back to back, the order flipping every round), ROUNDS rounds of
# `ntkhess bench step|hvp|ntk` at widths 196,1000,1000,1, N = 256 (fig1's
# trial), 1 and 2 threads, f64 and f32; then the GEMM-shape probe
# (bench/gemm_shapes.c) and TRIALS rounds of `ntkhess bench trial`.
# Each JSON line gets "bin":"base"|"new" and "round".
# usage: [THREADS="1 2"] bench/perf_compare.sh BASE NEW [ROUNDS] [TRIALS] [RAW]
# (THREADS: the thread counts, e.g. 1 alone while another job holds a core)
# then:  /usr/bin/python3 bench/perf_table.py RAW
set -eu
cd "$(dirname "$0")/.."
base=$1; new=$2; rounds=${3:-5}; trials=${4:-1}
raw=${5:-bench/results-perf.jsonl}
widths=${WIDTHS:-196,1000,1000,1}; N=${NPTS:-256}; threads=${THREADS:-1 2}
: > "$raw"
tag() { sed "s/^{/{\"bin\":\"$1\",\"round\":$2,/" >> "$raw"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "# $(date -u +%FT%TZ) load $(load)" >&2
r=1
while [ "$r" -le "$rounds" ]; do
    if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
    for t in $threads; do
        for op in step hvp ntk; do
            for p in f64 f32; do
                for b in $order; do
                    eval exe=\$$b
                    "$exe" bench "$op" --widths "$widths" --N "$N" --threads "$t" --reps 5 --precision "$p" | tag "$b" "$r"
                done
            done
        done
    done
    if [ -x build/gemm_shapes ]; then
        for t in $threads; do for p in f64 f32; do build/gemm_shapes "$t" "$p" $N $(echo "$widths" | tr , ' ') | tag shapes "$r"; done; done
    fi
    echo "# round $r done $(date -u +%TZ) load $(load)" >&2
    r=$((r + 1))
done
r=1
while [ "$r" -le "$trials" ]; do
    for t in $threads; do
        for b in base new; do
            eval exe=\$$b
            "$exe" bench trial --widths "$widths" --N "$N" --threads "$t" --reps 3 | tag "$b" "$r"
        done
    done
    echo "# trial round $r done $(date -u +%TZ) load $(load)" >&2
    r=$((r + 1))
done
echo ALLDONE >&2
