#!/usr/bin/python3
"""Cost of one `ntkhess sharpness` record in operator products (H v
equivalents), warm-started against cold, on a Fashion-MNIST subset.

    bench/sharp_cost.py [--n 500] [--hidden 100,100,100] [--param mf] [--lr 150]
                        [--steps 300] [--every 5] [--tol 1e-7] [--threads 1]

Runs the same training twice (warm, then --cold) and prints, per operator,
the mean products per record (record 0 excluded: it has no warm vector) and
the wall time per record, as one JSON line.  The NTK column (one J^T u and one
J v per product) is skipped with --no-ntk unless --ntk is given."""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("NTKHESS", os.path.join(ROOT, "build", "ntkhess"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", type=int, default=14)
    ap.add_argument("--hidden", default="100,100,100")
    ap.add_argument("--param", default="mf")
    ap.add_argument("--lr", type=float, default=150)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--tol", default="1e-7")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--ntk", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        d = os.path.join(t, "d")
        subprocess.run([BIN, "data", "fashion-mnist", "--n", str(a.n), "--size", str(a.size), "--loss", "ce",
                        "--out", d], check=True, stderr=subprocess.DEVNULL)
        import numpy as np
        y = np.load(os.path.join(d, "Y.npy")).astype(int)
        np.save(os.path.join(d, "T.npy"), np.eye(10)[y])  # one-hot MSE targets, as in `ntkhess eos`
        w = "%d,%s,10" % (a.size * a.size, a.hidden)
        subprocess.run([BIN, "init", "--widths", w, "--act", "tanh", "--param", a.param, "--out", os.path.join(t, "m")],
                       check=True, stderr=subprocess.DEVNULL)
        res = {"n": a.n, "widths": w, "param": a.param, "lr": a.lr, "steps": a.steps, "every": a.every, "tol": a.tol,
               "threads": a.threads}
        for mode in ("warm", "cold"):
            out = os.path.join(t, mode + ".csv")
            cmd = [BIN, "sharpness", "--model", os.path.join(t, "m"), "--data", os.path.join(d, "X.npy"),
                   "--targets", os.path.join(d, "T.npy"), "--lr", str(a.lr), "--steps", str(a.steps), "--every",
                   str(a.every), "--tol", a.tol, "--threads", a.threads, "--out", out]
            cmd += [] if a.ntk else ["--no-ntk"]
            cmd += ["--cold"] if mode == "cold" else []
            t0 = time.time()
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
            res[mode + "_seconds"] = round(time.time() - t0, 2)
            rows = list(csv.DictReader(open(out)))[1:]
            for op in ("H", "I", "S") + (("NTK",) if a.ntk else ()):
                res["%s_matvecs_%s" % (mode, op)] = round(sum(float(r["matvecs_" + op]) for r in rows) / len(rows), 2)
            res["records"] = len(rows) + 1
        print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
