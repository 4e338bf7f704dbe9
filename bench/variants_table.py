#!/usr/bin/env python3
"""Table of bench/variants.sh's RAW file: per op, threads and precision, each
binary's median time and GEMM fraction (f64: frac_dgemm, f32: frac_sgemm, both
against the anchor GEMM timed in the same process) over the rounds, and its
median paired time ratio against the first binary of the file.
usage: bench/variants_table.py RAW"""
import json, statistics as st, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
bins = list(dict.fromkeys(r["bin"] for r in rows))
by = defaultdict(dict)  # (op, t, p) -> {(bin, round): row}
for r in rows:
    by[(r["op"], r["threads"], r["precision"])][(r["bin"], r["round"])] = r
frac = lambda r: r["frac_sgemm"] if r["precision"] == "f32" else r["frac_dgemm"]
print("| op | threads | precision | " + " | ".join(f"{b}: s, frac, /{bins[0]}" for b in bins) + " |")
print("|---|---|---|" + "---|" * len(bins))
for key in sorted(by, key=lambda k: (k[1], k[0], k[2])):
    d = by[key]
    cells = []
    for b in bins:
        rs = [v for (bb, _), v in d.items() if bb == b]
        if not rs:
            cells.append("-"); continue
        ratios = [d[(b, rd)]["median_s"] / d[(bins[0], rd)]["median_s"] for (bb, rd) in d if bb == b and (bins[0], rd) in d]
        cells.append(f"{st.median(r['median_s'] for r in rs):.4f}, {st.median(frac(r) for r in rs):.2f}, "
                     f"×{st.median(ratios):.3f}")
    print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
