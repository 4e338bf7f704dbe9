#!/bin/sh
# bench_stream.sh -- streaming curvature on Fashion-MNIST train: network
# 784,1000,1000,10 (tanh, standard parametrization), softmax cross-entropy,
# X kept in float32 (X32.npy: the float64 `ntkhess data` output rounded once;
# both tools use it, ntkhess without widening it, the peer per batch); one
# H v, the top-K eigenvalues of H (Lanczos, tol TOL) and one SLQ density
# (SLQ_M vectors, STEPS steps): wall time and peak RSS (/usr/bin/time -v) at
# each batch size in BATCHES and each thread count in THREADS, then the
# PyTorch peer (bench_stream_peer.py: batched double-backward H v checked
# against ntkhess's; PyHessian's power iteration for the top PEER_POWER
# eigenvalues and its SLQ density when PEER_SLQ=1) on the same data and
# theta, in the same run.
#   make build/bench/bench_stream && sh bench/bench_stream.sh
# Environment: N (rows, default 60000), BATCHES ("1000 5000"), THREADS ("1 2"),
# K (5), TOL (1e-3), STEPS (10), SLQ_M (1), PEER_POWER (0: no power iteration),
# PEER_SLQ (0), PEER_TOP (0: no eigsh), WORK (/tmp/nh_bench_scale).
# Full size: ~30-60 s per H v per tool on 2 shared cores.
set -eu
N=${N:-60000}; BATCHES=${BATCHES:-"1000 5000"}; THREADS=${THREADS:-"1 2"}
K=${K:-5}; TOL=${TOL:-1e-3}; STEPS=${STEPS:-10}; SLQ_M=${SLQ_M:-1}
PEER_POWER=${PEER_POWER:-0}; PEER_SLQ=${PEER_SLQ:-0}; PEER_TOP=${PEER_TOP:-0}
WORK=${WORK:-/tmp/nh_bench_scale}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NTKHESS:-$ROOT/build/ntkhess}; BS=$ROOT/build/bench/bench_stream
W=${W:-784,1000,1000,10}
mkdir -p "$WORK/out"
if [ ! -f "$WORK/fm60k/X.npy" ]; then
    "$BIN" data fashion-mnist --split train --n 60000 --size 28 --loss ce --out "$WORK/fm60k" >&2
fi
D=$WORK/fm$N
[ -f "$D/X32.npy" ] || /usr/bin/python3 -c "
import numpy as np, os
os.makedirs('$D', exist_ok=True)
np.save('$D/X32.npy', np.load('$WORK/fm60k/X.npy', mmap_mode='r')[:$N].astype(np.float32))
np.save('$D/Y.npy', np.load('$WORK/fm60k/Y.npy')[:$N])"
echo "{\"host\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\",\"nproc\":$(nproc),\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"date\":\"$(date -u +%FT%TZ)\",\"N\":$N,\"K\":$K,\"TOL\":$TOL,\"STEPS\":$STEPS,\"SLQ_M\":$SLQ_M}"
for T in $THREADS; do
    for B in $BATCHES; do
        line=$(NH_BENCH_THREADS=$T NH_BENCH_SLQ_M=$SLQ_M OPENBLAS_NUM_THREADS=$T /usr/bin/time -v -o "$WORK/time.txt" \
            "$BS" "$D/X32.npy" "$D/Y.npy" $W "$B" "$K" "$TOL" "$STEPS" "$WORK/out")
        rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$WORK/time.txt")
        wall=$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$WORK/time.txt")
        echo "$line" | sed "s/}\$/,\"time_v_max_rss_kb\":$rss,\"time_v_wall\":\"$wall\"}/"
        extra=""
        [ "$PEER_TOP" -gt 0 ] && extra="$extra --top $PEER_TOP --tol $TOL"
        [ "$PEER_POWER" -gt 0 ] && extra="$extra --power $PEER_POWER"
        [ "$PEER_SLQ" -gt 0 ] && extra="$extra --slq $SLQ_M,$STEPS"
        line=$(/usr/bin/time -v -o "$WORK/time_peer.txt" /usr/bin/python3 "$ROOT/bench/bench_stream_peer.py" "$D/X32.npy" \
            "$D/Y.npy" $W "$B" "$WORK/out" --threads "$T" $extra)
        rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$WORK/time_peer.txt")
        wall=$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$WORK/time_peer.txt")
        echo "$line" | sed "s/}\$/,\"time_v_max_rss_kb\":$rss,\"time_v_wall\":\"$wall\"}/"
    done
done
