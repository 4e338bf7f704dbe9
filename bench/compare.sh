#!/usr/bin/env bash
# ntkhess bench against the PyTorch peer (../shared/bench/peer_torch.py) on the
# same configurations, with the same thread count, in one run; then the ratio
# table (bench/ratios.py).
# Usage: bench/compare.sh [THREADS] [RAW.jsonl]
#   RAW (default bench/results-compare.jsonl) receives every JSON line, the
#   table goes to stdout.  Environment: WIDTHS (space-separated list of width
#   lists, default "196,1000,1000,1 196,2000,2000,1"), N (256), PY (/usr/bin/python3).
set -u
cd "$(dirname "$0")/.."
T=${1:-2}
RAW=${2:-bench/results-compare.jsonl}
N=${N:-256}
PY=${PY:-/usr/bin/python3}
WIDTHS=${WIDTHS:-"196,1000,1000,1 196,2000,2000,1"}
PEER=../shared/bench/peer_torch.py
B=build/ntkhess
export OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T
[ -x $B ] || { echo "compare.sh: build $B first (make)" >&2; exit 2; }
[ -f $PEER ] || { echo "compare.sh: $PEER not found" >&2; exit 2; }
: > "$RAW"
{
  echo "{\"meta\":\"compare\",\"date\":\"$(date -u +%FT%TZ)\",\"threads\":$T,\"N\":$N,\"nproc\":$(nproc),\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
  for W in $WIDTHS; do
    for op in hvp hvp_scratch ivp svp ntk step; do
      $B bench $op --widths $W --N $N --threads $T --reps 7
    done
    $B bench hvp --widths $W --N $N --threads $T --reps 5 --block 8
    $PY $PEER hvp --widths $W --N $N --reps 7 --threads $T
    $PY $PEER ntk --widths $W --N $N --reps 5 --threads $T
    $PY $PEER train --widths $W --N $N --lr 0.001 --steps 10 --every 10 --probes 1 --threads $T | \
      $PY -c 'import json,sys; d=json.loads(sys.stdin.read()); d.pop("records",None); print(json.dumps(d))'
    $PY $PEER trace --widths $W --N $N --probes 4 --threads $T
  done
  echo "{\"meta\":\"end\",\"date\":\"$(date -u +%FT%TZ)\",\"loadavg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
} | tee -a "$RAW" >/dev/null
$PY bench/ratios.py "$RAW"
