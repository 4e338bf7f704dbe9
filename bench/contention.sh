#!/bin/sh
# 2-thread ops while one other process keeps a core busy (a shell busy loop,
# started and stopped here), as on a shared machine: each binary NAME=PATH
# (optionally NAME=PATH@ENV=VALUE, e.g. new=build/ntkhess@OMP_WAIT_POLICY=passive),
# ROUNDS rounds, the order rotating; then the same without the busy process.
# Each JSON line gets "bin", "round" and "hog" (1: busy loop running).
# usage: bench/contention.sh ROUNDS RAW NAME=PATH[@ENV=VALUE]...
# then:  /usr/bin/python3 bench/variants_table.py RAW  (hog rows are tagged "NAME+hog")
set -eu
cd "$(dirname "$0")/.."
rounds=$1; raw=$2; shift 2
: > "$raw"
for hog in 1 0; do
    if [ "$hog" = 1 ]; then sh -c 'while :; do :; done' & hpid=$!; fi
    r=1
    while [ "$r" -le "$rounds" ]; do
        for op in step hvp; do
            for nb in "$@"; do
                name=${nb%%=*}; rest=${nb#*=}; exe=${rest%%@*}; env=""
                [ "$exe" != "$rest" ] && env=${rest#*@}
                tag=$name; [ "$hog" = 1 ] && tag="$name+hog"
                env $env "$exe" bench "$op" --widths 196,1000,1000,1 --N 256 --threads 2 --reps 5 --precision f32 |
                    sed "s/^{/{\"bin\":\"$tag\",\"round\":$r,\"hog\":$hog,/" >> "$raw"
            done
        done
        first=$1; shift; set -- "$@" "$first"
        r=$((r + 1))
    done
    if [ "$hog" = 1 ]; then kill "$hpid"; wait "$hpid" 2>/dev/null || true; fi
    echo "# hog $hog done $(date -u +%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
