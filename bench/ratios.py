#!/usr/bin/env python3
"""Ratio table from the raw output of bench/compare.sh (JSON lines):
peer (PyTorch) time / ntkhess time for H v (retained graph vs cached passes,
and from scratch), I v, the NTK Gram, one GD step and one Hutchinson probe
(H v + S v); ntkhess's fraction of the dgemm rate; the per-vector cost of a
block of 8 H v products against single products.  Usage: ratios.py RAW.jsonl"""
import json
import sys


def main(path):
    nt, peer, meta = {}, {}, []
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if "meta" in d:
            meta.append(d)
        elif "op" in d:
            w = ",".join(str(x) for x in d["widths"])
            key = d["op"] + ("_block%d" % d["block"] if d.get("block", 1) > 1 else "")
            nt[(w, key)] = d
        elif "cmd" in d:
            w = ",".join(str(x) for x in d["widths"])
            peer[(w, d["cmd"])] = d
    for m in meta:
        print("# " + json.dumps(m))
    widths = []
    for (w, _) in nt:
        if w not in widths:
            widths.append(w)
    print("| op | widths | ntkhess median (s) | frac. of dgemm | peer median (s) | peer / ntkhess |")
    print("|---|---|---|---|---|---|")
    for w in widths:
        def row(name, key, pt, note=""):
            d = nt.get((w, key))
            if d is None:
                return
            t = d["median_s"]
            fr = d.get("frac_dgemm")
            frs = "%.2f" % fr if fr is not None else "—"
            if pt is None:
                print("| %s | %s | %.4g | %s | — | — |" % (name, w, t, frs))
            else:
                print("| %s | %s | %.4g | %s | %.4g%s | %.1f |" % (name, w, t, frs, pt, note, pt / t))
        ph, pn, ptr, ptc = peer.get((w, "hvp")), peer.get((w, "ntk")), peer.get((w, "train")), peer.get((w, "trace"))
        row("`H v`, passes reused", "hvp", ph and ph["hvp_reuse_graph_s"]["median"], " (retained graph)")
        row("`H v` from scratch", "hvp_scratch", ph and ph["hvp_s"]["median"])
        row("`I v`", "ivp", ph and ph["gnvp_s"]["median"], " (GN product)")
        row("`S v`", "svp", None)
        row("NTK Gram", "ntk", pn and pn["ntk_s"]["median"])
        row("one GD step", "step", ptr and ptr["step_s"]["median"])
        hv, sv = nt.get((w, "hvp")), nt.get((w, "svp"))
        if ptc and hv and sv:
            t = hv["median_s"] + sv["median_s"]
            pp = ptc["per_probe_s"]
            print("| Hutchinson probe (`H v` + `S v`) | %s | %.4g | — | %.4g | %.1f |" % (w, t, pp, pp / t))
    print()
    print("| widths | single `H v` (s) | block of 8, per vector (s) | block / single | dgemm GFLOP/s (single run) |")
    print("|---|---|---|---|---|")
    for w in widths:
        s, b = nt.get((w, "hvp")), nt.get((w, "hvp_block8"))
        if s and b:
            print("| %s | %.4g | %.4g | %.2f | %.1f |" % (w, s["median_s"], b["per_vector_s"],
                                                        b["per_vector_s"] / s["median_s"], s["dgemm_gflops"]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results-compare.jsonl")
