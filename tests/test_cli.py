#!/usr/bin/python3
"""CLI contract and bad-input catalogue for ntkhess init / train / curvature.

Every bad input must give exit status 1 (runtime) or 2 (usage), exactly one
line on stderr that names the problem (checked by a keyword), and no crash
(a signal gives a negative return code).  Good inputs must produce the
documented files with the documented shapes.
Prints PASS/FAIL lines and a closing 'N passed, N failed'.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

BIN = os.environ.get("NTKHESS", os.path.join(os.path.dirname(__file__), "..", "build", "ntkhess"))
passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        if os.environ.get("NH_TEST_VERBOSE") == "1":
            print(f"PASS: {what}")
    else:
        failed += 1
        print(f"FAIL: {what} {detail}")


def run(*args, timeout=120):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def expect_error(what, args, keyword, codes=(1, 2)):
    r = run(*args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    ok = r.returncode in codes and len(lines) == 1 and keyword.lower() in r.stderr.lower()
    check(ok, f"bad input: {what}", f"(rc={r.returncode}, stderr={r.stderr.strip()!r})")


def write_raw_npy(path, descr, shape, payload, fortran=False, version=1):
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", str(tuple(shape)))
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]) + len(header).to_bytes(2, "little") + header.encode() + payload)


def main():
    with tempfile.TemporaryDirectory() as t:
        j = lambda *p: os.path.join(t, *p)
        # --- good paths
        r = run("init", "--widths", "4,7,5,1", "--act", "softplus", "--seed", "3", "--out", j("m"))
        check(r.returncode == 0, "init succeeds", r.stderr)
        cfg = json.load(open(j("m", "config.json")))
        check(cfg["widths"] == [4, 7, 5, 1] and cfg["act"] == "softplus" and abs(cfg["beta"] - 0.1) < 1e-15
              and cfg["param"] == "ntk", "config.json contract", str(cfg))
        W0 = np.load(j("m", "W0.npy"))
        check(W0.shape == (7, 4) and W0.dtype == np.float64, "W0.npy shape (n1, n0) float64", str(W0.shape))
        r2 = run("init", "--widths", "4,7,5,1", "--act", "softplus", "--seed", "3", "--out", j("m2"))
        check(r2.returncode == 0 and np.array_equal(np.load(j("m2", "W1.npy")), np.load(j("m", "W1.npy"))),
              "same seed, same weights")
        rng = np.random.default_rng(0)
        X = rng.standard_normal((9, 4))
        Y = rng.standard_normal((9, 1))
        np.save(j("X.npy"), X)
        np.save(j("Y.npy"), Y)
        np.save(j("Y1d.npy"), Y.ravel())
        P = 4 * 7 + 7 + 7 * 5 + 5 + 5 + 1
        np.save(j("v.npy"), rng.standard_normal(P))
        r = run("curvature", "--model", j("m"), "--data", j("X.npy"), "--targets", j("Y.npy"), "--dense",
                "--hvp", j("v.npy"), "--out", j("c"))
        check(r.returncode == 0, "curvature --dense --hvp succeeds", r.stderr)
        shapes = {"grad": (P,), "Y": (9, 1), "G": (9, 1), "ntk": (9, 9), "H": (P, P), "I": (P, P), "S": (P, P),
                  "Hv": (P,), "Iv": (P,), "Sv": (P,), "eigH": (P,), "eigI": (P,), "eigS": (P,)}
        for k, s in shapes.items():
            p = j("c", k + ".npy")
            check(os.path.exists(p) and np.load(p).shape == s, f"curvature writes {k}.npy with shape {s}")
        H, I, S = (np.load(j("c", k + ".npy")) for k in "HIS")
        v = np.load(j("v.npy"))
        e = np.abs(H @ v - np.load(j("c", "Hv.npy"))).max() / (np.abs(H).max() * np.abs(v).sum())
        check(e < 1e-13, "dense H . v == Hv.npy", f"{e}")
        check(np.abs(I + S - H).max() < 1e-13 * np.abs(H).max(), "I + S == H")
        ev = np.load(j("c", "eigI.npy"))
        check(np.allclose(ev, np.linalg.eigvalsh(I), atol=1e-12 * abs(ev).max()), "eigI.npy == numpy eigvalsh(I)")
        s = json.load(open(j("c", "summary.json")))
        check(abs(s["tr_I"][0] - np.trace(I)) < 1e-12 * abs(np.trace(I)), "summary tr_I[0] == Tr(I)")
        check(abs(s["tr_I"][1] - np.trace(I @ I)) < 1e-11 * abs(np.trace(I @ I)), "summary tr_I[1] == Tr(I^2)")
        check(abs(s["tr_S1"] - np.trace(S)) < 1e-11 * np.abs(S).sum(), "summary tr_S1 == Tr(S)")
        r = run("curvature", "--model", j("m"), "--data", j("X.npy"), "--targets", j("Y1d.npy"), "--out", j("c1"))
        check(r.returncode == 0, "1-d targets accepted for n_L = 1", r.stderr)
        # float32 data is accepted and converted
        np.save(j("X32.npy"), X.astype(np.float32))
        r = run("curvature", "--model", j("m"), "--data", j("X32.npy"), "--targets", j("Y.npy"), "--out", j("c32"))
        check(r.returncode == 0, "float32 data accepted", r.stderr)
        r = run("train", "--model", j("m"), "--data", j("X.npy"), "--targets", j("Y.npy"), "--lr", "0.5",
                "--steps", "20", "--out", j("tr"))
        log = np.genfromtxt(j("tr", "train.csv"), delimiter=",", names=True)
        check(r.returncode == 0 and log["loss"][-1] < log["loss"][0], "train lowers the MSE", r.stderr)
        for cmd in ["init", "train", "curvature"]:
            r = run(cmd, "--help")
            check(r.returncode == 0 and "--threads" in r.stdout and "Usage: ntkhess " + cmd in r.stdout,
                  f"{cmd} --help")
        r = run("--help")
        check(r.returncode == 0 and "curvature" in r.stdout, "top-level --help")

        # --- bad inputs (one line each, non-zero exit)
        with open(j("trunc.npy"), "wb") as f:
            f.write(open(j("X.npy"), "rb").read()[:100])
        with open(j("garbage.npy"), "wb") as f:
            f.write(b"this is not a numpy file at all" * 4)
        np.save(j("Xc.npy"), X.astype(np.complex128))
        write_raw_npy(j("Xf.npy"), "<f8", (9, 4), X.T.astype("<f8").tobytes(), fortran=True)
        Xn = X.copy(); Xn[3, 2] = np.nan
        np.save(j("Xnan.npy"), Xn)
        Xi = X.copy(); Xi[0, 0] = np.inf
        np.save(j("Xinf.npy"), Xi)
        np.save(j("X3.npy"), X[:, :3])
        np.save(j("Y8.npy"), Y[:8])
        np.save(j("X1d.npy"), X.ravel())
        np.save(j("vbad.npy"), np.ones(P + 1))
        np.save(j("Ybce.npy"), np.zeros((9, 1)))
        np.save(j("Xempty.npy"), np.zeros((0, 4)))
        base = ["--model", j("m"), "--out", j("bad")]
        cases = [
            ("truncated .npy", ["curvature", *base, "--data", j("trunc.npy"), "--targets", j("Y.npy")], "trunc"),
            ("not an .npy", ["curvature", *base, "--data", j("garbage.npy"), "--targets", j("Y.npy")], "npy"),
            ("complex dtype", ["curvature", *base, "--data", j("Xc.npy"), "--targets", j("Y.npy")], "c16"),
            ("fortran order", ["curvature", *base, "--data", j("Xf.npy"), "--targets", j("Y.npy")], "fortran"),
            ("NaN in data", ["curvature", *base, "--data", j("Xnan.npy"), "--targets", j("Y.npy")], "non-finite"),
            ("Inf in data", ["train", *base, "--data", j("Xinf.npy"), "--targets", j("Y.npy"), "--lr", "1",
                             "--steps", "1"], "non-finite"),
            ("wrong feature count", ["curvature", *base, "--data", j("X3.npy"), "--targets", j("Y.npy")], "n_0"),
            ("row count mismatch", ["curvature", *base, "--data", j("X.npy"), "--targets", j("Y8.npy")], "rows"),
            ("1-d data", ["curvature", *base, "--data", j("X1d.npy"), "--targets", j("Y.npy")], "2-d"),
            ("empty data", ["curvature", *base, "--data", j("Xempty.npy"), "--targets", j("Y.npy")], "empty"),
            ("missing file", ["curvature", *base, "--data", j("nope.npy"), "--targets", j("Y.npy")], "nope.npy"),
            ("hvp length", ["curvature", *base, "--data", j("X.npy"), "--targets", j("Y.npy"), "--hvp",
                            j("vbad.npy")], "shape"),
            ("bce labels 0", ["curvature", *base, "--data", j("X.npy"), "--targets", j("Ybce.npy"), "--loss", "bce"],
             "-1 or +1"),
            ("unknown loss", ["curvature", *base, "--data", j("X.npy"), "--targets", j("Y.npy"), "--loss", "l1"],
             "loss"),
            ("ce with one output", ["curvature", *base, "--data", j("X.npy"), "--targets", j("Y1d.npy"),
                                    "--loss", "ce"], "2 outputs"),
            ("unknown activation", ["init", "--widths", "3,4,1", "--act", "swish", "--out", j("x")], "swish"),
            ("absurd widths", ["init", "--widths", "100000,100000000,1", "--out", j("x")], "memory"),
            ("zero width", ["init", "--widths", "3,0,1", "--out", j("x")], "positive"),
            ("negative width", ["init", "--widths", "3,-4,1", "--out", j("x")], "positive"),
            ("one width", ["init", "--widths", "3", "--out", j("x")], "at least 2"),
            ("bad beta", ["init", "--widths", "3,4,1", "--beta", "nan", "--out", j("x")], "beta"),
            ("bad param", ["init", "--widths", "3,4,1", "--param", "sp", "--out", j("x")], "param"),
            ("unknown option", ["init", "--widths", "3,4,1", "--out", j("x"), "--frobnicate"], "frobnicate"),
            ("missing --out", ["init", "--widths", "3,4,1"], "--out"),
            ("negative lr", ["train", *base, "--data", j("X.npy"), "--targets", j("Y.npy"), "--lr", "-1",
                             "--steps", "2"], "lr"),
            ("steps not a number", ["train", *base, "--data", j("X.npy"), "--targets", j("Y.npy"), "--lr", "1",
                                    "--steps", "ten"], "steps"),
            ("unknown command", ["frob"], "unknown command"),
            ("missing model dir", ["curvature", "--model", j("nomodel"), "--out", j("bad"), "--data", j("X.npy"),
                                   "--targets", j("Y.npy")], "nomodel"),
            ("unwritable output", ["init", "--widths", "3,4,1", "--out", "/proc/ntkhess-cannot-write"], "cannot"),
        ]
        for what, args, kw in cases:
            expect_error(what, args, kw)
        # divergence: huge learning rate stops with a message and writes nothing (issue 13: all or nothing)
        r = run("train", "--model", j("m"), "--data", j("X.npy"), "--targets", j("Y.npy"), "--lr", "1e12",
                "--steps", "200", "--out", j("div"))
        ok = r.returncode == 1 and "diverged" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        left = [f for f in os.listdir(j()) if "div" in f]
        check(ok and not left, "divergent training stops with a message, nothing left behind", r.stderr.strip() + str(left))
        # a corrupt model directory
        os.makedirs(j("mbad"))
        with open(j("mbad", "config.json"), "w") as f:
            f.write('{"widths": [4, 7, 5, 1], "act": "softplus"')
        expect_error("malformed config.json", ["curvature", "--model", j("mbad"), "--out", j("bad"), "--data",
                                               j("X.npy"), "--targets", j("Y.npy")], "config.json")
        os.makedirs(j("mshape"))
        for f in os.listdir(j("m")):
            data = open(j("m", f), "rb").read()
            open(j("mshape", f), "wb").write(data)
        np.save(j("mshape", "W1.npy"), np.zeros((4, 7)))
        expect_error("weight shape mismatch", ["curvature", "--model", j("mshape"), "--out", j("bad"), "--data",
                                               j("X.npy"), "--targets", j("Y.npy")], "W1.npy")
        np.save(j("mshape", "W1.npy"), np.full((5, 7), np.nan))
        expect_error("NaN weights", ["curvature", "--model", j("mshape"), "--out", j("bad"), "--data", j("X.npy"),
                                     "--targets", j("Y.npy")], "W1.npy")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
