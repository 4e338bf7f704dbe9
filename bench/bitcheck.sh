#!/bin/sh
# Bit-identity check of an engine change (bench/README.md, "perf"): small fig1
# runs (n 128, width 300: 38400 entries per layer, above the engines'
# threading threshold) with binary A and binary B, float64 and float32, 1 and 2
# threads, softplus, nsoftplus, tanh, silu; every trial row of
# B must equal A's byte for byte at the same thread count.  (1 and 2 threads
# differ in both: OpenBLAS's threaded GEMM sums in another order.)
# usage: bench/bitcheck.sh BIN_A BIN_B [WORKDIR]
set -eu
a=$1; b=$2; w=${3:-$(mktemp -d)}; mkdir -p "$w"
fail=0
for p in f64 f32; do
    for t in 1 2; do
        for bin in A B; do
            eval exe=\$$(echo "$bin" | tr AB ab)
            OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$exe" fig1 --data sphere --n 128 --width 300 --trials 2 \
                --steps 16 --every 4 --probes 2 --acts softplus,nsoftplus,tanh,silu --precision "$p" \
                --out "$w/$bin-$p-$t" > "$w/$bin-$p-$t.log" 2>&1
        done
        for f in "$w/A-$p-$t"/trials_*.csv; do
            g="$w/B-$p-$t/$(basename "$f")"
            if cmp -s "$f" "$g"; then echo "same  $p threads $t $(basename "$f")"; else echo "DIFF  $p threads $t $(basename "$f")"; fail=1; fi
        done
    done
done
exit $fail
