#!/bin/sh
# bench_stream.sh -- streaming curvature on Fashion-MNIST train: network
# 784,1000,1000,10 (tanh, standard parametrization), softmax cross-entropy;
# one H v, the top-K eigenvalues of H (Lanczos, tol TOL) and one SLQ density
# (1 vector, STEPS steps): wall time and peak RSS (/usr/bin/time -v) at each
# batch size in BATCHES and each thread count in THREADS, then the PyTorch
# peer (bench_stream_peer.py: batched double-backward H v, checked against
# ntkhess's) on the same data and theta, in the same run.
#   make build/bench/bench_stream && sh bench/bench_stream.sh
# Environment: N (rows, default 60000), BATCHES ("1000 5000"), THREADS ("1 2"),
# K (5), TOL (1e-2), STEPS (10), PEER_TOP (0: the peer times H v only),
# WORK (/tmp/nh_bench_stream).  Full size: ~65 s per H v on 2 shared cores.
set -eu
N=${N:-60000}; BATCHES=${BATCHES:-"1000 5000"}; THREADS=${THREADS:-"1 2"}
K=${K:-5}; TOL=${TOL:-1e-2}; STEPS=${STEPS:-10}; PEER_TOP=${PEER_TOP:-0}
WORK=${WORK:-/tmp/nh_bench_stream}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NTKHESS:-$ROOT/build/ntkhess}; BS=$ROOT/build/bench/bench_stream
W=784,1000,1000,10
mkdir -p "$WORK/out"
if [ ! -f "$WORK/fm60k/X.npy" ]; then
    "$BIN" data fashion-mnist --split train --n 60000 --size 28 --loss ce --out "$WORK/fm60k" >&2
fi
D=$WORK/fm60k
if [ "$N" != 60000 ]; then
    D=$WORK/fm$N
    [ -f "$D/X.npy" ] || /usr/bin/python3 -c "
import numpy as np, os, sys
os.makedirs('$D', exist_ok=True)
np.save('$D/X.npy', np.load('$WORK/fm60k/X.npy')[:$N]); np.save('$D/Y.npy', np.load('$WORK/fm60k/Y.npy')[:$N])"
fi
for T in $THREADS; do
    for B in $BATCHES; do
        line=$(NH_BENCH_THREADS=$T /usr/bin/time -v -o "$WORK/time.txt" "$BS" "$D/X.npy" "$D/Y.npy" $W "$B" "$K" "$TOL" \
            "$STEPS" "$WORK/out")
        rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$WORK/time.txt")
        wall=$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$WORK/time.txt")
        echo "$line" | sed "s/}\$/,\"time_v_max_rss_kb\":$rss,\"time_v_wall\":\"$wall\"}/"
        if [ "$PEER_TOP" -gt 0 ]; then top="--top $PEER_TOP --tol $TOL"; else top=""; fi
        /usr/bin/time -v -o "$WORK/time_peer.txt" /usr/bin/python3 "$ROOT/bench/bench_stream_peer.py" "$D/X.npy" \
            "$D/Y.npy" $W "$B" "$WORK/out" --threads "$T" $top
    done
done
