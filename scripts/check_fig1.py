#!/usr/bin/python3
"""Check a fig1 summary.json: for k = 1, 2, at every recorded t and for every
nonlinearity, the empirical mean must agree with the theory within
3 standard errors plus the finite-width bias measured in the same run
(bias_I = mean Tr(I^k) - theory Tr(I^k), the I part's bias, which is known
exactly per network; its estimate carries the noise tr_I_se, which is
reported but not added to the allowance):

    |mean - theory| <= 3 se + |bias_I|

Prints one line per failing point and a closing 'N passed, N failed'.
Usage: check_fig1.py DIR/summary.json [--kmax 2]"""
import json
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    kmax = 2
    if "--kmax" in sys.argv:
        kmax = int(sys.argv[sys.argv.index("--kmax") + 1])
    if len(args) != 1:
        print(__doc__)
        return 2
    s = json.load(open(args[0]))
    passed = failed = 0
    worst = {}
    for p in s["points"]:
        if p["k"] > kmax:
            continue
        if any(p[f] is None for f in ("se", "mean", "theory", "bias_I")):
            # JSON null: a non-finite value (the standard error of a single
            # trial is undefined, nh_mean_se); the point cannot be checked
            failed += 1
            print(f"FAIL: {p['act']} k={p['k']} t={p['t']}: null in mean/theory/se/bias_I, cannot check")
            continue
        allow = 3 * p["se"] + abs(p["bias_I"])
        dev = abs(p["mean"] - p["theory"])
        key = (p["act"], p["k"])
        worst[key] = max(worst.get(key, 0), dev / allow)
        if dev <= allow:
            passed += 1
        else:
            failed += 1
            print(f"FAIL: {p['act']} k={p['k']} t={p['t']}: |{p['mean']:.6g} - {p['theory']:.6g}| = {dev:.3g} "
                  f"> 3 se + |bias| = {allow:.3g} (z = {p['z']:.2f})")
    for (act, k), w in sorted(worst.items()):
        print(f"# {act} k={k}: worst |mean - theory| / allowance = {w:.2f}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
