"""--batch B on curvature, spectrum, measure, landscape and train: the
streamed run writes the same numbers as the unbatched one (float64: equal up
to the order of the sums over rows, tolerance 1e-12 relative; Lanczos
eigenvalues to its 1e-10 residual tolerance), and curvature --no-ntk says in
summary.json what it skipped and why."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, close, finish, section, cli  # noqa: E402

import numpy as np  # noqa: E402


def setup(t):
    j = lambda *p: os.path.join(t, *p)
    r = cli("init", "--widths", "4,6,5,3", "--act", "tanh", "--seed", "2", "--out", j("m"))
    check(r.returncode == 0, "init", r.stderr)
    rng = np.random.default_rng(1)
    np.save(j("X.npy"), rng.standard_normal((11, 4)))
    np.save(j("T.npy"), rng.integers(0, 3, 11).astype(np.float64))
    P = 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3
    np.save(j("v.npy"), rng.standard_normal(P))
    return j, ["--model", j("m"), "--data", j("X.npy"), "--targets", j("T.npy"), "--loss", "ce"]


def curvature(j, base):
    outs = {}
    for name, extra in [("c0", []), ("c3", ["--batch", "3"]), ("c1", ["--batch", "1"])]:
        r = cli("curvature", *base, "--out", j(name), "--hvp", j("v.npy"), "--dense", *extra)
        check(r.returncode == 0, "curvature %s" % " ".join(extra), r.stderr)
        outs[name] = name
    for name in ["c3", "c1"]:
        for f in ["grad", "Y", "G", "Hv", "Iv", "Sv", "ntk", "H", "I", "S"]:
            close(np.load(j(name, f + ".npy")), np.load(j("c0", f + ".npy")), "curvature %s %s = unbatched" % (name, f),
                  1e-12)
        s0, s1 = json.load(open(j("c0", "summary.json"))), json.load(open(j(name, "summary.json")))
        close(s1["tr_I"], s0["tr_I"], "curvature %s tr_I = unbatched" % name, 1e-12)
        check(s1["batch"] == int(name[1:]) and s0["batch"] == 11, "summary.json batch", str((s0["batch"], s1["batch"])))
    r = cli("curvature", *base, "--out", j("cn"), "--no-ntk", "--batch", "4")
    s = json.load(open(j("cn", "summary.json")))
    check(r.returncode == 0 and not os.path.exists(j("cn", "ntk.npy")) and "ntk.npy" in s.get("skipped", {})
          and "tr_I" in s["skipped"] and "GB" in s["skipped"]["tr_I"], "--no-ntk: skipped quantities and why", str(s))
    close(np.load(j("cn", "grad.npy")), np.load(j("c0", "grad.npy")), "--no-ntk --batch 4 still writes grad", 1e-12)


def spectrum(j, base):
    ev = []
    for extra in [[], ["--batch", "2"]]:
        r = cli("spectrum", *base, "--top", "3", "--json", *extra)
        check(r.returncode == 0, "spectrum --top 3 %s" % " ".join(extra), r.stderr)
        ev.append(json.loads(r.stdout)["eigenvalues"])
    close(ev[1], ev[0], "spectrum --batch 2: top-3 eigenvalues of H = unbatched", 1e-9)


def train_measure_landscape(j, base):
    for extra, out in [([], "t0"), (["--batch", "4"], "t4")]:
        r = cli("train", *base, "--lr", "0.1", "--steps", "4", "--out", j(out), *extra)
        check(r.returncode == 0, "train %s" % " ".join(extra), r.stderr)
    for f in ["W0", "W1", "W2"]:
        close(np.load(j("t4", f + ".npy")), np.load(j("t0", f + ".npy")), "train --batch 4: %s = unbatched" % f, 1e-12)
    for extra, out in [([], "m0.csv"), (["--batch", "5"], "m5.csv")]:
        r = cli("measure", *base, "--lr", "0.1", "--steps", "2", "--every", "1", "--probes", "4", "--out", j(out), *extra)
        check(r.returncode == 0, "measure %s" % " ".join(extra), r.stderr)
    a = np.genfromtxt(j("m0.csv"), delimiter=",", names=True)
    b = np.genfromtxt(j("m5.csv"), delimiter=",", names=True)
    num = [n for n in a.dtype.names if n not in ("wall_s", "time_s", "elapsed_s")]
    close(np.array([b[n] for n in num], dtype=float), np.array([a[n] for n in num], dtype=float),
          "measure --batch 5: records = unbatched", 1e-9)
    for extra, out in [([], "l0"), (["--batch", "3"], "l3")]:
        r = cli("landscape", *base, "--grid", "3", "--dirs", "1,2", "--out", j(out), *extra)
        check(r.returncode == 0, "landscape %s" % " ".join(extra), r.stderr)
    close(np.load(j("l3", "landscape.npy")), np.load(j("l0", "landscape.npy")), "landscape --batch 3 = unbatched", 1e-9)


def main():
    with tempfile.TemporaryDirectory() as t:
        j, base = setup(t)
        section("curvature", curvature, j, base)
        section("spectrum", spectrum, j, base)
        section("train/measure/landscape", train_measure_landscape, j, base)
    finish()


if __name__ == "__main__":
    main()
