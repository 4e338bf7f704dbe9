#!/usr/bin/env bash
# ntkhess against the PyTorch peer, same machine, same thread count, one run.
# Usage: bench/run_core.sh [THREADS] > results.jsonl  (then bench/ratios.py)
set -u
cd "$(dirname "$0")/.."
T=${1:-2}
export OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T
PEER=../shared/bench/peer_torch.py
for W in 196,1000,1000,1 196,2000,2000,1; do
  build/bench/bench_core --widths $W --N 256 --min-s 1
  /usr/bin/python3 $PEER hvp --widths $W --N 256 --reps 7 --threads $T
  /usr/bin/python3 $PEER ntk --widths $W --N 256 --reps 5 --threads $T 2>/dev/null || true
done
build/bench/bench_gram 1024 4 3 softplus
