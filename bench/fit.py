#!/usr/bin/env python3
"""Log-log exponents from the raw output of bench/scaling.sh: time ~ x^p for
x = width, N, depth (H v, NTK Gram, GD step) and for the infinite-width Gram
benchmark (N, depth); the block-of-8 H v; peak resident sizes; and the
projected time of the full-size Figure 1.  Usage: fit.py RAW.jsonl"""
import json
import math
import sys


def fit(xs, ys):
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    n = len(lx)
    mx, my = sum(lx) / n, sum(ly) / n
    sxx = sum((a - mx) ** 2 for a in lx)
    sxy = sum((a - mx) * (b - my) for a, b in zip(lx, ly))
    p = sxy / sxx
    return p, math.exp(my - p * mx)


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    for r in rows:
        if "meta" in r:
            print("# " + json.dumps(r))
    sw = {}
    for r in rows:
        if "sweep" in r:
            sw.setdefault(r["sweep"], []).append(r)
    print("| sweep | op | x | median (s) | exponent p (time ~ x^p) |")
    print("|---|---|---|---|---|")
    for name, key in (("width", lambda r: r["widths"][1]), ("N", lambda r: r["N"]),
                      ("depth", lambda r: len(r["widths"]) - 1)):
        for op in ("hvp", "ntk", "step"):
            pts = [(key(r), r["median_s"]) for r in sw.get(name, []) if r.get("op") == op]
            if len(pts) >= 2:
                p, _ = fit([a for a, _ in pts], [b for _, b in pts])
                xs = ", ".join("%d: %.3g" % (a, b) for a, b in pts)
                extra = ""
                if len(pts) >= 3:
                    # the last two points (the local exponent at the large end);
                    # for depth: L >= 3 only (L = 2 has no n x n layer at all)
                    sub = [q for q in pts if q[0] >= 3] if name == "depth" else pts[-2:]
                    if len(sub) >= 2:
                        p2, _ = fit([a for a, _ in sub], [b for _, b in sub])
                        extra = "; %s: %.2f" % ("L >= 3" if name == "depth" else "last two", p2)
                print("| %s | %s | %s | | %.2f%s |" % (name, op, xs, p, extra))
    for name, key in (("gram_N", "n"), ("gram_depth", "depth")):
        pts = [(r[key], r["median_s"]) for r in sw.get(name, [])]
        if len(pts) >= 2:
            p, _ = fit([a for a, _ in pts], [b for _, b in pts])
            xs = ", ".join("%d: %.3g" % (a, b) for a, b in pts)
            print("| %s | gram (6 kernels) | %s | | %.2f |" % (name, xs, p))
    print()
    blk = sw.get("block", [])
    for N in sorted({r["N"] for r in blk}):
        s = [r for r in blk if r["N"] == N and r["block"] == 1]
        b = [r for r in blk if r["N"] == N and r["block"] > 1]
        if s and b:
            print("block of %d at N=%d, widths %s: per vector %.4g s vs single %.4g s (ratio %.2f)" % (
                b[0]["block"], N, b[0]["widths"], b[0]["per_vector_s"], s[0]["median_s"],
                b[0]["per_vector_s"] / s[0]["median_s"]))
    rss = [(r["op"], r["widths"], r["N"], r.get("block", 1), r["peak_rss_mb"]) for r in rows if "peak_rss_mb" in r]
    if rss:
        print("peak RSS (MB), largest per op:")
        best = {}
        for op, w, N, b, m in rss:
            k = op + ("/block%d" % b if b > 1 else "")
            if k not in best or m > best[k][2]:
                best[k] = (w, N, m)
        for k, (w, N, m) in sorted(best.items()):
            print("  %-12s %-28s N=%-4d %.0f MB" % (k, ",".join(map(str, w)), N, m))
    # Figure 1 projection: trial = 64 steps + 17 records; 250 trials x 2 acts.
    f1 = sw.get("fig1", [])
    def get(op, w):
        for r in f1:
            if r["op"] == op and r["widths"][1] == w:
                return r
    for w in (1000, 5000):
        st, rec, tr = get("step", w), get("fig1rec", w), get("fig1trial", w)
        if w == 1000:
            st = st or next((r for r in sw.get("width", []) if r["op"] == "step" and r["widths"][1] == 1000), None)
        if st and rec:
            comp = 64 * st["median_s"] + 17 * rec["median_s"]
            line = "width %d: trial = 64 x %.3g s + 17 x %.3g s = %.1f s" % (w, st["median_s"], rec["median_s"], comp)
            if tr:
                line += " (measured whole trial: %.1f s)" % tr["median_s"]
            if w == 5000:
                tot = 500 * comp
                line += "; full Figure 1 (500 trials) = %.0f s = %.1f h on %d threads" % (
                    tot, tot / 3600, st["threads"])
                line += "; dgemm %.1f GFLOP/s in that run" % st["dgemm_gflops"]
            print(line)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results-scaling.jsonl")
