#!/usr/bin/python3
"""CLI contract for kernel, gram, predict, measure, spectrum, landscape, plus
kill -9 resume tests for train and measure.  Prints 'N passed, N failed'."""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

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


def run(*args, timeout=300):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def expect_error(what, args, keyword):
    r = run(*args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check(r.returncode in (1, 2) and len(lines) == 1 and keyword.lower() in r.stderr.lower(),
          f"bad input: {what}", f"(rc={r.returncode}, stderr={r.stderr.strip()!r})")


def kill_resume(what, args, outputs, tmp, progress, kills=4):
    """Run once uninterrupted into A; run into B killing each attempt with
    SIGKILL once its progress file (relative to the output) has grown by two
    lines, then run to completion; the outputs must be identical."""
    ref = os.path.join(tmp, what + "_ref")
    os.makedirs(ref)
    r = run(*[a.replace("@OUT@", ref) for a in args])
    check(r.returncode == 0, f"{what}: reference run", r.stderr)
    b = os.path.join(tmp, what + "_b")
    os.makedirs(b)
    pf = os.path.join(b, progress)
    count = lambda: open(pf).read().count("\n") if os.path.exists(pf) else 0
    killed = 0
    for _ in range(kills):
        before = count()
        p = subprocess.Popen([BIN, *[a.replace("@OUT@", b) for a in args]], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while p.poll() is None and count() < before + 2 and time.time() < deadline:
            time.sleep(0.005)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
    r = run(*[a.replace("@OUT@", b) for a in args])
    check(r.returncode == 0, f"{what}: final rerun", r.stderr)
    check(killed >= 2, f"{what}: at least 2 runs were really killed mid-way", f"({killed})")
    for o in outputs:
        pa, pb = os.path.join(ref, o), os.path.join(b, o)
        if o.endswith(".npy"):
            same = os.path.exists(pb) and np.array_equal(np.load(pa), np.load(pb))
        else:
            same = os.path.exists(pb) and open(pa).read() == open(pb).read()
        check(same, f"{what}: {o} after kills == uninterrupted")


def main():
    with tempfile.TemporaryDirectory() as t:
        j = lambda *p: os.path.join(t, *p)
        # kernel: JSON contract and symmetry
        r = run("kernel", "--act", "softplus", "--depth", "3", "--x", "1,0.5,-0.3", "--y", "0.2,1.1,0.4", "--layers")
        check(r.returncode == 0, "kernel runs", r.stderr)
        k = json.loads(r.stdout)
        keys = ["Sigma", "SigmaDot", "SigmaDDot", "Theta", "Upsilon", "Phi", "Xi", "Lambda"]
        check(all(x in k and np.array(k[x]).shape == (2, 2) for x in keys), "kernel JSON has the 8 2x2 kernels")
        check(len(k["layers"]) == 3 and k["layers"][2]["Theta"] == k["Theta"], "--layers: per-layer values")
        for x in ["Sigma", "Theta", "Upsilon", "Xi"]:
            check(k[x][0][1] == k[x][1][0], f"{x} symmetric")
        check(k["Phi"][0][1] != k["Phi"][1][0], "Phi not symmetric (argument order kept)")
        x = np.array([1, 0.5, -0.3])
        check(abs(k["layers"][0]["Sigma"][0][0] - (x @ x / 3 + 0.01)) < 1e-15, "Sigma(1)(x,x) = x.x/n0 + beta^2")
        # erf closed form at depth 2: Sigma(2) = (2/pi) asin(2 s12 / sqrt((1+2 s11)(1+2 s22))) + beta^2
        y = np.array([0.2, 1.1, 0.4])
        r = run("kernel", "--act", "erf", "--depth", "2", "--x", "1,0.5,-0.3", "--y", "0.2,1.1,0.4")
        ke = json.loads(r.stdout)
        s11, s22, s12 = x @ x / 3 + .01, y @ y / 3 + .01, x @ y / 3 + .01
        want = 2 / np.pi * np.arcsin(2 * s12 / np.sqrt((1 + 2 * s11) * (1 + 2 * s22))) + 0.01
        check(abs(ke["Sigma"][0][1] - want) < 1e-14, "erf Sigma(2) == arcsine closed form", f"{ke['Sigma'][0][1]} {want}")
        expect_error("kernel vectors of different lengths", ["kernel", "--depth", "2", "--x", "1,2", "--y", "1"], "same length")
        expect_error("kernel non-finite input", ["kernel", "--depth", "2", "--x", "1,nan", "--y", "1,2"], "finite")
        expect_error("kernel depth 0", ["kernel", "--depth", "0", "--x", "1", "--y", "1"], "depth")
        expect_error("kernel unknown activation", ["kernel", "--act", "swish", "--depth", "2", "--x", "1", "--y", "1"], "swish")
        # data + gram + predict
        r = run("data", "sphere", "--n", "24", "--dim", "6", "--seed", "2", "--out", j("d"))
        check(r.returncode == 0, "data sphere", r.stderr)
        r = run("gram", "--act", "tanh", "--depth", "3", "--data", j("d", "X.npy"), "--out", j("g"))
        check(r.returncode == 0, "gram runs", r.stderr)
        G = {n: np.load(j("g", n + ".npy")) for n in ["Sigma", "Theta", "Upsilon", "Phi", "Xi", "Lambda"]}
        check(all(v.shape == (24, 24) for v in G.values()), "gram writes six 24x24 matrices")
        X = np.load(j("d", "X.npy"))
        r = run("kernel", "--act", "tanh", "--depth", "3", "--x", ",".join(map(repr, X[3])), "--y", ",".join(map(repr, X[7])))
        kk = json.loads(r.stdout)
        for n in G:
            check(abs(G[n][3, 7] - kk[n][0][1]) <= 1e-12 * max(1, abs(kk[n][0][1])) and
                  abs(G[n][7, 3] - kk[n][1][0]) <= 1e-12 * max(1, abs(kk[n][1][0])), f"gram {n}[i][j] == kernel(x_i, x_j)")
        r = run("predict", "--act", "tanh", "--depth", "3", "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"),
                "--times", "0,1,10", "--expect", "--out", j("p.csv"))
        check(r.returncode == 0, "predict --expect runs", r.stderr)
        lines = open(j("p.csv")).read().splitlines()
        check(lines[0] == "t,tr_I1,tr_I2,tr_I3,tr_I4,tr_S1,tr_S2,tr_H1,tr_H2,tr_H3,tr_H4" and len(lines) == 4,
              "predict CSV header contract")
        row = np.array(lines[1].split(","), float)
        Th = G["Theta"]
        check(abs(row[1] - np.trace(Th) / 24) < 1e-12 * row[1], "tr_I1 = Tr(Theta)/N")
        check(abs(row[2] - np.trace(Th @ Th) / 24 ** 2) < 1e-12 * row[2], "tr_I2 = Tr(Theta^2)/N^2")
        check(abs(row[5] - np.trace(G["Phi"]) / 24) < 1e-12 * max(abs(row[5]), 1e-3), "E[Tr S(0)] = Tr(Phi)/N")
        check(abs(row[7] - row[1] - row[5]) < 1e-14 and abs(row[8] - row[2] - row[6]) < 1e-14, "tr_H = tr_I + tr_S")
        # per-draw prediction from a network's own Y(0), G(0)
        run("init", "--widths", "6,50,50,1", "--act", "tanh", "--out", j("m"))
        run("curvature", "--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"), "--out", j("c"))
        r = run("predict", "--act", "tanh", "--depth", "3", "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"),
                "--times", "0,2", "--y0", j("c", "Y.npy"), "--g0", j("c", "G.npy"))
        check(r.returncode == 0, "predict --y0 --g0 runs", r.stderr)
        row = np.array(r.stdout.splitlines()[1].split(","), float)
        Y0, G0, T = np.load(j("c", "Y.npy")), np.load(j("c", "G.npy")), np.load(j("d", "Y.npy"))
        check(abs(row[5] - G0.ravel() @ (Y0 - T).ravel() / 24) < 1e-12, "per-draw Tr S(0) = G(0).dC/dY")
        np.save(j("yb.npy"), np.sign(T + 1e-9))
        r = run("predict", "--act", "tanh", "--depth", "2", "--data", j("d", "X.npy"), "--targets", j("yb.npy"),
                "--loss", "bce", "--times", "0,1", "--expect", "--samples", "50")
        check(r.returncode == 0 and "tr_H4_se" in r.stdout.splitlines()[0], "predict bce --expect has se columns", r.stderr)
        base = ["predict", "--depth", "2", "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy")]
        expect_error("predict times not increasing", [*base, "--times", "0,2,1", "--expect"], "increasing")
        expect_error("predict negative time", [*base, "--times", "-1,2", "--expect"], ">= 0")
        expect_error("predict needs --expect or --y0", [*base, "--times", "0,1"], "--expect")
        expect_error("predict depth 0", ["predict", "--depth", "0", "--data", j("d", "X.npy"), "--targets",
                                         j("d", "Y.npy"), "--times", "1", "--expect"], "depth")
        # measure / spectrum / landscape
        r = run("measure", "--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"), "--lr", "0.5",
                "--steps", "10", "--every", "5", "--probes", "8", "--out", j("meas.csv"))
        check(r.returncode == 0, "measure runs", r.stderr)
        hdr = open(j("meas.csv")).readline().strip().split(",")
        need = ["t", "loss", "tr_I1", "tr_I4", "tr_S1", "tr_S2", "tr_S2_se", "tr_H1", "tr_H4", "tr_H4_se", "IS_fro",
                "I_fro", "S_fro"]
        check(all(n in hdr for n in need), "measure CSV columns", str(hdr))
        M = np.genfromtxt(j("meas.csv"), delimiter=",", names=True)
        check(len(M) == 3 and list(M["t"]) == [0, 2.5, 5], "measure records at t = 0 and every E steps")
        s0 = json.load(open(j("c", "summary.json")))
        check(abs(M["tr_I1"][0] - s0["tr_I"][0]) < 1e-12 * s0["tr_I"][0], "measure tr_I1 == curvature tr_I")
        check(abs(M["tr_S1"][0] - s0["tr_S1"]) < 1e-10 * max(1e-3, abs(s0["tr_S1"])), "measure tr_S1 == curvature tr_S1")
        r = run("spectrum", "--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"), "--of", "I",
                "--top", "4", "--json")
        sp = json.loads(r.stdout)
        ev = sp["eigenvalues"]
        check(len(ev) == 4 and all(ev[i] >= ev[i + 1] for i in range(3)) and len(sp["residuals"]) == 4,
              "spectrum --top --json: 4 eigenvalues, descending, residuals")
        K = np.load(j("c", "ntk.npy"))
        wK = np.sort(np.linalg.eigvalsh(K / 24))[::-1][:4]
        check(np.allclose(ev, wK, rtol=1e-8), "top eigenvalues of I == eigenvalues of Theta/N", f"{ev} {wK}")
        P = 6 * 50 + 50 + 50 * 50 + 50 + 50 + 1
        base = ["--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy")]
        expect_error("spectrum --top 0", ["spectrum", *base, "--top", "0"], "top")
        expect_error("spectrum --top beyond P", ["spectrum", *base, "--top", str(P + 1)], "exceeds")
        expect_error("spectrum --of X", ["spectrum", *base, "--top", "2", "--of", "X"], "--of")
        expect_error("spectrum needs --top or --density", ["spectrum", *base], "--top")
        expect_error("landscape eigen-index beyond P", ["landscape", *base, "--dirs", f"1,{P + 1}", "--out", j("l")], "exceeds")
        expect_error("landscape grid of zero size", ["landscape", *base, "--grid", "0", "--out", j("l")], "grid")
        expect_error("landscape radius 0", ["landscape", *base, "--radius", "0", "--out", j("l")], "radius")
        expect_error("measure probes < 1", ["measure", *base, "--lr", "1", "--steps", "2", "--every", "1", "--probes",
                                            "0", "--out", j("x.csv")], "probes")
        r = run("landscape", *base, "--dirs", "1,4", "--grid", "5", "--radius", "0.3", "--out", j("l"))
        L = np.load(j("l", "landscape.npy"))
        s = json.load(open(j("l", "summary.json")))
        check(r.returncode == 0 and L.shape == (5, 5) and abs(L[2, 2] - s["loss_at_center"]) < 1e-15,
              "landscape centre == loss", r.stderr)
        # kill -9 and resume
        run("data", "sphere", "--n", "64", "--dim", "10", "--out", j("d2"))
        run("init", "--widths", "10,300,300,1", "--act", "softplus", "--out", j("m2"))
        kill_resume("train", ["train", "--model", j("m2"), "--data", j("d2", "X.npy"), "--targets", j("d2", "Y.npy"),
                              "--lr", "0.5", "--steps", "300", "--log-every", "10", "--checkpoint-every", "7",
                              "--out", "@OUT@/run"], ["run/train.csv", "run/W0.npy", "run/W2.npy", "run/b1.npy"], t,
                    ".run.partial/train.csv")  # the log grows in the work folder until the run completes
        kill_resume("measure", ["measure", "--model", j("m2"), "--data", j("d2", "X.npy"), "--targets",
                                j("d2", "Y.npy"), "--lr", "0.5", "--steps", "60", "--every", "3", "--probes", "4",
                                "--out", "@OUT@/m.csv"], ["m.csv"], t, ".m.csv.partial/m.csv")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
