#!/usr/bin/env python3
"""Tables of bench/perf_compare.sh's RAW file (bench/README.md, "perf"):
per op, threads and precision, the median time and GEMM fraction of BASE and
NEW (f64 against the dgemm of the same process, f32 against its sgemm), the
median over rounds of the paired time ratio new / base, the load; the GEMM-shape
probe's ceilings (the op's GEMMs alone over the square rate) and each op's
fraction against that ceiling; the trial rows.
and, for a RAW of bench/perf_cycles.sh, the CPU time per op, 1 thread.
usage: bench/perf_table.py RAW"""
import json, statistics as st, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
med = st.median
if rows and "cpu_us_per_rep" in rows[0]:
    cpu = defaultdict(dict)
    for r in rows:
        cpu[(r["op"], r["precision"])].setdefault(r["bin"], {})[r["round"]] = r["cpu_us_per_rep"] / 1e3
    print("| op (1 thread) | precision | base CPU ms | new CPU ms | new/base (paired, median [min, max]) |")
    print("|---|---|---|---|---|")
    for (op, p), d in cpu.items():
        b, n = d.get("base", {}), d.get("new", {})
        rat = [n[k] / b[k] for k in n if k in b]
        if rat:
            print(f"| {op} | {p} | {med(b.values()):.1f} | {med(n.values()):.1f} | {med(rat):.3f} [{min(rat):.2f}, {max(rat):.2f}] |")
    sys.exit(0)
ops = defaultdict(list)
shapes = defaultdict(list)
trials = defaultdict(list)
for r in rows:
    if r["bin"] == "shapes":
        shapes[(r["threads"], r["precision"])].append(r)
    elif r["op"] in ("step", "hvp", "ntk"):
        ops[(r["op"], r["threads"], r["precision"], r["bin"])].append(r)
    elif r["op"] == "trial":
        trials[(r["threads"], r["bin"])].append(r)

def frac(r):
    return r["frac_sgemm"] if r["precision"] == "f32" else r["frac_dgemm"]

ceil = {}
print("GEMM-shape probe (bench/gemm_shapes.c; medians over rounds):")
print("| threads | precision | square GF/s | step GEMMs / square | H v GEMMs / square |")
print("|---|---|---|---|---|")
for (t, p), rs in sorted(shapes.items()):
    ceil[(t, p)] = (med(r["step_gemm_frac"] for r in rs), med(r["hv_gemm_frac"] for r in rs))
    print(f"| {t} | {p} | {med(r['square_gflops'] for r in rs):.1f} | {ceil[(t, p)][0]:.2f} | {ceil[(t, p)][1]:.2f} |")
print()
print("| op | threads | precision | base s | new s | new/base (paired, median [min, max]) | base frac | new frac | new frac / shape ceiling |")
print("|---|---|---|---|---|---|---|---|---|")
for op in ("step", "hvp", "ntk"):
    for t in (1, 2):
        for p in ("f64", "f32"):
            b, n = ops.get((op, t, p, "base"), []), ops.get((op, t, p, "new"), [])
            if not b or not n:
                continue
            bb = {r["round"]: r["median_s"] for r in b}
            ratios = [r["median_s"] / bb[r["round"]] for r in n if r["round"] in bb]
            fn = med(frac(r) for r in n)
            c = ceil.get((t, p), (None, None))
            c = c[0] if op == "step" else c[1] if op == "hvp" else None
            rel = f"{fn / c:.2f}" if c else "-"
            print(f"| {op} | {t} | {p} | {med(r['median_s'] for r in b):.4f} | {med(r['median_s'] for r in n):.4f} | "
                  f"{med(ratios):.3f} [{min(ratios):.2f}, {max(ratios):.2f}] | {med(frac(r) for r in b):.2f} | {fn:.2f} | {rel} |")
if trials:
    print()
    print("| threads | binary | trial median s | H v s | H v equivalents | steps s | trace H s | trace I s |")
    print("|---|---|---|---|---|---|---|---|")
    for (t, b), rs in sorted(trials.items(), key=lambda x: (-x[0][0], x[0][1])):
        g = lambda k: med(r.get(k, r.get("breakdown", {}).get(k, float("nan"))) for r in rs)
        print(f"| {t} | {b} | {g('median_s'):.2f} | {g('hv_s'):.4f} | {g('hv_equivalents'):.0f} | {g('gd_steps_s'):.2f} | "
              f"{g('trace_H_s'):.2f} | {g('trace_I_s'):.2f} |")
