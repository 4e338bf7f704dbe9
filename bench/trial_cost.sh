#!/bin/sh
# Cost of one fig1 trial (issue 15), before and after, same run: `ntkhess
# bench trial` at widths 196,1000,1000,1, N = 256 with the old defaults
# (--precision f64 --probes 4: "before") and fig1's current defaults
# ("after"; and --probes 2, which measures the single-probe SD), on 1 and 2
# threads, alternating; then one trial at widths 250,
# 500, 1000 (current defaults, 2 threads) for the width scaling of the
# projection.  Each line: median_s, hv_s, hv_equivalents and the breakdown.
# With BASE=path, every line runs the binary BASE and then build/ntkhess
# (JSON lines tagged "bin":"base"|"new"): before/after of a code change.
# usage: [BASE=binary] bench/trial_cost.sh [REPS] [RAW]   (REPS trials on 2 threads, 1 on 1 thread; default 3, bench/results-trial-cost.jsonl)
# then:  /usr/bin/python3 bench/trial_table.py cost RAW
set -eu
cd "$(dirname "$0")/.."
reps=${1:-3}
raw=${2:-bench/results-trial-cost.jsonl}
: > "$raw"
b=trial
trial() { # the arguments of `bench trial`, run with BASE (if set) and build/ntkhess
    if [ -n "${BASE:-}" ]; then
        "$BASE" bench trial --N 256 "$@" | sed 's/^{/{"bin":"base",/'
        build/ntkhess bench trial --N 256 "$@" | sed 's/^{/{"bin":"new",/'
    else
        build/ntkhess bench trial --N 256 "$@"
    fi
}
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for t in 2 1; do
    n=$reps; [ "$t" = 1 ] && n=1 # 1 thread: one trial each (a "before" trial takes minutes under load)
    $b --widths 196,1000,1000,1 --threads "$t" --reps "$n" --precision f64 --probes 4 >> "$raw"
    $b --widths 196,1000,1000,1 --threads "$t" --reps "$n" >> "$raw"
    $b --widths 196,1000,1000,1 --threads "$t" --reps "$n" --probes 2 >> "$raw"
    echo "# threads $t done $(date -u +%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
for w in 250 500 1000; do
    $b --widths 196,$w,$w,1 --threads 2 --reps 1 >> "$raw"
done
echo "# end $(date -u +%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
