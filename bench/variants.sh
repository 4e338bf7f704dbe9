#!/bin/sh
# Several builds of ntkhess side by side (bench/README.md, "perf2"): ROUNDS
# rounds of `ntkhess bench step|hvp|ntk` at widths 196,1000,1000,1, N = 256,
# for each binary NAME=PATH, the binaries' order rotating every round (same
# op, threads and precision back to back).  Each JSON line gets "bin" (NAME)
# and "round".  Used to compare OpenBLAS's pthread and OpenMP builds with the
# engine's elementwise loops serial or threaded.
# usage: [THREADS="1 2"] [OPS="step hvp ntk"] [PRECS="f32 f64"] bench/variants.sh ROUNDS RAW NAME=PATH...
# then:  /usr/bin/python3 bench/variants_table.py RAW
set -eu
cd "$(dirname "$0")/.."
rounds=$1; raw=$2; shift 2
threads=${THREADS:-1 2}; ops=${OPS:-step hvp ntk}; precs=${PRECS:-f32 f64}
widths=${WIDTHS:-196,1000,1000,1}; N=${NPTS:-256}
: > "$raw"
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "# $(date -u +%FT%TZ) load $(load)" >&2
r=1
while [ "$r" -le "$rounds" ]; do
    for t in $threads; do
        for op in $ops; do
            for p in $precs; do
                for nb in "$@"; do
                    name=${nb%%=*}; exe=${nb#*=}
                    "$exe" bench "$op" --widths "$widths" --N "$N" --threads "$t" --reps 5 --precision "$p" |
                        sed "s/^{/{\"bin\":\"$name\",\"round\":$r,/" >> "$raw"
                done
            done
        done
    done
    first=$1; shift; set -- "$@" "$first" # rotate the order
    echo "# round $r done $(date -u +%TZ) load $(load)" >&2
    r=$((r + 1))
done
