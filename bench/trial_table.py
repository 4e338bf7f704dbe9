#!/usr/bin/python3
"""Tables for bench/trial_cost.sh and bench/trial_fracs.sh (issue 15).
usage: trial_table.py cost RAW | fracs RAW
cost: per (threads, precision, probes, widths) the trial's median_s, hv_s,
hv_equivalents, breakdown, Hutchinson ratios; then the width scaling of the
trial time (log-log slope between consecutive widths) and the projection of
the paper's Figure 1 (width 5000, N 256, 250 trials x 2 nonlinearities).
fracs: median frac_dgemm and median_s per (op, threads) over the rounds."""
import json
import math
import statistics
import sys


def load(path):
    return [json.loads(l) for l in open(path) if l.startswith("{")]


def cost(rows):
    print("| binary | threads | precision | probes | widths | median s | H v s | H v equivalents | steps s | trace H s |"
          " trace I s | other s | SE/SD k=2,3,4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, h = r["breakdown"], r["hutchinson"]
        ratio = ",".join("%.2f" % h[k]["ratio"] if h[k]["ratio"] is not None else "-" for k in ("k2", "k3", "k4"))
        print("| %s | %d | %s | %d | %s | %.2f | %.4f | %.0f | %.2f | %.2f | %.2f | %.2f | %s |" % (
            r.get("bin", "-"), r["threads"], r["precision"], r["probes"], ",".join(map(str, r["widths"])), r["median_s"], r["hv_s"],
            r["hv_equivalents"], b["gd_steps_s"], b["trace_H_s"], b["trace_I_s"], b["other_s"], ratio))
    scal = [r for r in rows if r["reps"] == 1 and r["threads"] == 2 and r.get("bin", "new") == "new"]
    scal.sort(key=lambda r: r["widths"][1])
    if len(scal) < 2:
        return
    print("\nwidth scaling (2 threads, current defaults):")
    for a, b in zip(scal, scal[1:]):
        p = math.log(b["median_s"] / a["median_s"]) / math.log(b["widths"][1] / a["widths"][1])
        print("  %d -> %d: %.2f s -> %.2f s, exponent %.2f" % (a["widths"][1], b["widths"][1], a["median_s"],
                                                             b["median_s"], p))
    a, b = scal[-2], scal[-1]
    p = math.log(b["median_s"] / a["median_s"]) / math.log(b["widths"][1] / a["widths"][1])
    t_meas = b["median_s"] * (5000 / b["widths"][1]) ** p
    t5000 = b["median_s"] * (5000 / b["widths"][1]) ** max(p, 2.0)
    print("  projected trial at width 5000: %.0f s with the measured exponent %.2f; %.0f s with exponent"
          " max(p, 2) (the W x W layer's flops grow as W^2), used below" % (t_meas, p, t5000))
    total = 500 * t5000
    print("  paper's Figure 1 (500 trials): %.1f h on this machine (2 threads, one process)" % (total / 3600))
    print("  64-core node, 32 two-thread processes: ceil(500/32) = 16 waves x %.0f s = %.1f h"
          % (t5000, 16 * t5000 / 3600))
    for k in (4, 16):
        waves = math.ceil(500 / (32 * k))
        print("  MPI over %d such nodes (%d ranks of 2 threads): %d waves x %.0f s = %.2f h"
              % (k, 32 * k, waves, t5000, waves * t5000 / 3600))


def fracs(rows):
    key = {}
    for r in rows:
        key.setdefault((r["op"], r["precision"], r["threads"]), []).append(r)
    print("| op | precision | threads | median s | fraction of the gemm rate (median) | range | gemm GFLOP/s (median) |"
          " rounds |")
    print("|---|---|---|---|---|---|---|---|")
    for (op, prec, t), rs in sorted(key.items()):
        fk, gk = ("frac_sgemm", "sgemm_gflops") if prec == "f32" else ("frac_dgemm", "dgemm_gflops")
        f = [r[fk] for r in rs]
        print("| %s | %s | %d | %.4f | %.2f | %.2f-%.2f | %.1f | %d |" % (
            op, prec, t, statistics.median(r["median_s"] for r in rs), statistics.median(f), min(f), max(f),
            statistics.median(r[gk] for r in rs), len(rs)))


if __name__ == "__main__":
    {"cost": cost, "fracs": fracs}[sys.argv[1]](load(sys.argv[2]))
