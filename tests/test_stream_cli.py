"""--batch B on curvature, spectrum, measure, landscape and train: the
streamed run writes the same numbers as the unbatched one (float64: equal up
to the order of the sums over rows, tolerance 1e-12 relative; Lanczos
eigenvalues to its 1e-10 residual tolerance), and curvature --no-ntk says in
summary.json what it skipped and why.  Python: Curvature(..., batch=B)
gives the unbatched numbers (same 1e-12 reason) and holds fewer bytes."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, close, finish, section, cli, ROOT, LIB, asan_reexec  # noqa: E402

asan_reexec(LIB)  # an ASan build (make asan) needs its runtime preloaded to load the library

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


def python_batch():
    os.environ.setdefault("NTKHESS_LIB", LIB)
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import ntkhess as nh
    rng = np.random.default_rng(3)
    net = nh.Net([5, 7, 6, 4], act="tanh", seed=1)
    X, T = rng.standard_normal((13, 5)), rng.integers(0, 4, 13)
    c0 = nh.Curvature(net, X, T, loss="ce")
    v, V, u = rng.standard_normal(net.P), rng.standard_normal((3, net.P)), rng.standard_normal((13, 4))
    check(c0.batch == 13, "Curvature default batch = N", str(c0.batch))
    for B in (1, 5):
        c = nh.Curvature(net, X, T, loss="ce", batch=B)
        check(c.batch == B and c.nbytes < c0.nbytes, "Curvature batch=%d: batch and fewer bytes" % B,
              str((c.batch, c.nbytes, c0.nbytes)))
        close(c.loss, c0.loss, "batch=%d loss" % B, 1e-12)
        close(c.grad(), c0.grad(), "batch=%d grad" % B, 1e-12)
        close(c.hvp(v), c0.hvp(v), "batch=%d H v" % B, 1e-12)
        close(c.hvp(V), c0.hvp(V), "batch=%d block H v" % B, 1e-12)
        close(c.ivp(v), c0.ivp(v), "batch=%d I v" % B, 1e-12)
        close(c.svp(v), c0.svp(v), "batch=%d S v" % B, 1e-12)
        close(c.vjp(u), c0.vjp(u), "batch=%d J^T u" % B, 1e-12)
        close(c.jvp(v), c0.jvp(v), "batch=%d J v" % B, 1e-12)
        close(c.G(), c0.G(), "batch=%d G" % B, 1e-12)
        close(c.ntk(), c0.ntk(), "batch=%d NTK" % B, 1e-12)
    for bad in (-1, 1.5, True):
        try:
            nh.Curvature(net, X, T, loss="ce", batch=bad)
            check(False, "batch=%r rejected" % (bad,))
        except nh.NtkhessError as e:
            check(e.name == "NH_EINVAL", "batch=%r rejected with NH_EINVAL" % (bad,), str(e))


def main():
    with tempfile.TemporaryDirectory() as t:
        j, base = setup(t)
        section("curvature", curvature, j, base)
        section("spectrum", spectrum, j, base)
        section("train/measure/landscape", train_measure_landscape, j, base)
    section("python batch=", python_batch)
    finish()


if __name__ == "__main__":
    main()
