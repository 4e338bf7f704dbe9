#!/usr/bin/env bash
# Scaling of H v, the NTK Gram and one GD step with the width, the batch size N
# and the depth; the infinite-width Gram benchmark with N and the depth; the
# block-of-8 H v; and the pieces of the full-size Figure 1 (width 5000).
# Usage: bench/scaling.sh [THREADS] [RAW.jsonl]   then  bench/fit.py RAW.jsonl
# Environment: QUICK=1 (small sizes, a smoke test), SKIP5000=1.
set -u
cd "$(dirname "$0")/.."
T=${1:-2}
RAW=${2:-bench/results-scaling.jsonl}
PY=${PY:-/usr/bin/python3}
B=build/ntkhess
G=build/bench/bench_gram
export OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T
[ -x $B ] && [ -x $G ] || { echo "scaling.sh: run make bench first" >&2; exit 2; }
if [ "${QUICK:-0}" = 1 ]; then
  WS="50 100"; NS="16 32"; DS="2 3"; W0=100; N0=32; GN="64 128"; GD="2 3"; GN0=128; BIG=""
else
  WS="250 500 1000 2000"; NS="64 128 256 512"; DS="2 3 4 5"; W0=1000; N0=256; GN="256 512 1024 2048"; GD="2 3 4 5"; GN0=1024
  BIG=196,5000,5000,1
  [ "${SKIP5000:-0}" = 1 ] && BIG=""
fi
A="--threads $T --anchor-reps 3"
hid() { local L=$1 w=$2 s=196; for ((i = 1; i < L; i++)); do s="$s,$w"; done; echo "$s,1"; }
: > "$RAW"
{
  echo "{\"meta\":\"scaling\",\"date\":\"$(date -u +%FT%TZ)\",\"threads\":$T,\"nproc\":$(nproc),\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
  for W in $WS; do for op in hvp ntk step; do
    $B bench $op --widths 196,$W,$W,1 --N $N0 $A | sed 's/^{/{"sweep":"width",/'; done; done
  for N in $NS; do for op in hvp ntk step; do
    $B bench $op --widths 196,$W0,$W0,1 --N $N $A | sed 's/^{/{"sweep":"N",/'; done; done
  for L in $DS; do for op in hvp ntk step; do
    $B bench $op --widths $(hid $L $W0) --N $N0 $A | sed 's/^{/{"sweep":"depth",/'; done; done
  for N in 64 256; do for b in 1 8; do
    $B bench hvp --widths 196,$W0,$W0,1 --N $N --block $b $A | sed 's/^{/{"sweep":"block",/'; done; done
  # one thread: the per-core dgemm rate and H v (for the many-core projection)
  $B bench hvp --widths 196,$W0,$W0,1 --N $N0 --threads 1 --anchor-reps 3 | sed 's/^{/{"sweep":"1thread",/'
  for N in $GN; do $G $N 4 3 softplus | sed 's/^{/{"sweep":"gram_N",/'; done
  for D in $GD; do $G $GN0 $D 3 softplus | sed 's/^{/{"sweep":"gram_depth",/'; done
  # Figure 1 pieces: one record (4 probes) and one trial at width 1000; step,
  # H v and one record at the full width 5000.
  $B bench fig1rec --widths 196,$W0,$W0,1 --N $N0 $A | sed 's/^{/{"sweep":"fig1",/'
  $B bench fig1trial --widths 196,$W0,$W0,1 --N $N0 $A | sed 's/^{/{"sweep":"fig1",/'
  $B bench moments --widths 196,$W0,$W0,1 --N $N0 $A | sed 's/^{/{"sweep":"fig1",/'
  if [ -n "$BIG" ]; then
    for op in step hvp; do $B bench $op --widths $BIG --N 256 --reps 3 $A | sed 's/^{/{"sweep":"fig1",/'; done
    $B bench fig1rec --widths $BIG --N 256 $A | sed 's/^{/{"sweep":"fig1",/'
  fi
  echo "{\"meta\":\"end\",\"date\":\"$(date -u +%FT%TZ)\",\"loadavg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
} | tee -a "$RAW" >/dev/null
$PY bench/fit.py "$RAW"
