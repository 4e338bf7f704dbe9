#!/usr/bin/python3
"""ntkhess sharpness / catapult: the record columns against dense eigenvalues
(curvature --dense + numpy.linalg.eigh at the same theta, reached by
`ntkhess train`), warm against cold starts, kill -9 resume bit for bit, bad
inputs.  Prints 'N passed, N failed'."""
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, close, finish, section, cli, expect_error, BIN  # noqa: E402

import numpy as np  # noqa: E402


def rows(path):
    with open(path) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def setup(t, name, widths, act, loss, n, dim, nout, seed=3, param="ntk"):
    d = os.path.join(t, name)
    r = cli("data", "sphere", "--n", n, "--dim", dim, "--seed", seed, "--out", d)
    check(r.returncode == 0, name + ": data", r.stderr)
    X = np.load(os.path.join(d, "X.npy"))
    y = np.load(os.path.join(d, "Y.npy")).ravel()
    if loss == "mse":  # nout smooth targets
        T = np.stack([np.sin((k + 1) * y + k) for k in range(nout)], 1)
    else:  # ce: class ids from the sign pattern of the inputs
        T = (np.argmax(X[:, :nout], 1)).astype(np.float64)
    np.save(os.path.join(d, "T.npy"), T)
    r = cli("init", "--widths", widths, "--act", act, "--seed", seed, "--param", param, "--out", os.path.join(d, "m0"))
    check(r.returncode == 0, name + ": init", r.stderr)
    return d


def dense_at(d, loss, step, lr):
    """Dense H, I, S, NTK and the gradient at the theta of `step` GD steps."""
    m = os.path.join(d, "m0")
    if step > 0:
        m = os.path.join(d, "m%d" % step)
        r = cli("train", "--model", os.path.join(d, "m0"), "--data", os.path.join(d, "X.npy"), "--targets",
                os.path.join(d, "T.npy"), "--loss", loss, "--lr", lr, "--steps", step, "--out", m)
        check(r.returncode == 0, "train to step %d" % step, r.stderr)
    c = os.path.join(d, "c%d" % step)
    r = cli("curvature", "--model", m, "--data", os.path.join(d, "X.npy"), "--targets", os.path.join(d, "T.npy"),
            "--loss", loss, "--dense", "--out", c)
    check(r.returncode == 0, "curvature --dense at step %d" % step, r.stderr)
    g = {k: np.load(os.path.join(c, k + ".npy")) for k in ("H", "I", "S", "ntk", "grad")}
    g["loss_json"] = json.load(open(os.path.join(c, "summary.json")))["loss"]  # printed with 15 digits
    g["loss_train"] = rows(os.path.join(m, "train.csv"))[-1]["loss"] if step > 0 else None  # 17 digits
    return g


def dense_case(t, name, widths, act, loss, nout, top, param="ntk"):
    """lam_H, lam_I, lam_S, lam_NTK, the top-k columns, grad_norm and
    grad_overlap at every record against numpy on the dense matrices."""
    n, lr = 12, 0.5
    d = setup(t, name, widths, act, loss, n, 5, nout, param=param)
    out = os.path.join(d, "s.csv")
    r = cli("sharpness", "--model", os.path.join(d, "m0"), "--data", os.path.join(d, "X.npy"), "--targets",
            os.path.join(d, "T.npy"), "--loss", loss, "--lr", lr, "--steps", 6, "--every", 2, "--top", top,
            "--tol", "1e-12", "--out", out, "--threads", 1)
    check(r.returncode == 0, name + ": sharpness runs", r.stderr)
    rec = rows(out)
    check([int(x["step"]) for x in rec] == [0, 2, 4, 6], name + ": records at steps 0, 2, 4, 6")
    for x in rec:
        s = int(x["step"])
        g = dense_at(d, loss, s, lr)
        # The same GD steps as `train`: the loss agrees to the last bit with train.csv (17 digits);
        # curvature's summary.json prints 15 digits.
        if s > 0:
            check(x["loss"] == g["loss_train"], "%s step %d: loss == train's (bit for bit)" % (name, s),
                  (x["loss"], g["loss_train"]))
        close(x["loss"], g["loss_json"], "%s step %d: loss == curvature's" % (name, s), 1e-14)
        eH, UH = np.linalg.eigh(g["H"])
        eI, eS = np.linalg.eigvalsh(g["I"]), np.linalg.eigvalsh(g["S"])
        eK = np.linalg.eigvalsh(g["ntk"]) / n
        eSm = eS[np.argsort(-np.abs(eS))]
        # Lanczos residual <= 1e-12 ||A|| bounds the eigenvalue error; 1e-9 leaves room for rounding
        # in both the products and the dense matrices (each ~1e-14 relative).
        tol = 1e-9
        close(x["lam_H"], eH[-1], "%s step %d: lam_H == max eig(H)" % (name, s), tol)
        close(x["lam_I"], eI[-1], "%s step %d: lam_I == max eig(I)" % (name, s), tol)
        close(x["lam_S"], eSm[0], "%s step %d: lam_S == eig(S) of largest |.| (signed)" % (name, s), tol)
        close(x["lam_NTK"], eK[-1], "%s step %d: lam_NTK == max eig(NTK Gram) / N" % (name, s), tol)
        if loss == "mse":  # HC = 1/N: I = J^T J / N and K / N = J J^T / N share their nonzero spectrum
            close(x["lam_NTK"], x["lam_I"], "%s step %d: mse: lam_NTK == lam_I" % (name, s), tol)
        close(x["grad_norm"], np.linalg.norm(g["grad"]), "%s step %d: grad_norm" % (name, s), 1e-12)
        ov = abs(g["grad"] @ UH[:, -1]) / np.linalg.norm(g["grad"])
        # eigenvector error ~ residual / gap: 1e-12 / (gap ~ 1e-2) with margin
        check(abs(x["grad_overlap"] - ov) <= 1e-7, "%s step %d: grad_overlap" % (name, s), (x["grad_overlap"], ov))
        u = UH[:, -1]
        close(x["uIu"], u @ g["I"] @ u, "%s step %d: uIu = u_H^T I u_H" % (name, s), 1e-7)
        close(x["uIu"] + x["uSu"], eH[-1], "%s step %d: uIu + uSu == lam_H" % (name, s), 1e-9)
        if top > 1:
            for op, e in (("H", eH[::-1]), ("I", eI[::-1]), ("S", eSm)):
                got = [x["%s_%d" % (op, j + 1)] for j in range(top)]
                close(got, e[:top], "%s step %d: %s_1..%s_%d == top %d dense eigenvalues" % (name, s, op, op, top, top),
                      tol)


def warm_cold(t):
    """Warm starts give the cold values (independent random starts) and
    fewer products in total for H and I."""
    d = setup(t, "wc", "10,40,40,2", "tanh", "mse", 60, 10, 2, seed=5)
    args = ["sharpness", "--model", os.path.join(d, "m0"), "--data", os.path.join(d, "X.npy"), "--targets",
            os.path.join(d, "T.npy"), "--lr", 1.0, "--steps", 30, "--every", 3, "--tol", "1e-10", "--threads", 1]
    rw = cli(*args, "--out", os.path.join(d, "w.csv"))
    rc = cli(*args, "--cold", "--out", os.path.join(d, "c.csv"))
    check(rw.returncode == 0 and rc.returncode == 0, "warm/cold: both run", rw.stderr + rc.stderr)
    w, c = rows(os.path.join(d, "w.csv")), rows(os.path.join(d, "c.csv"))
    check(len(w) == len(c) == 11, "warm/cold: 11 records each")
    for col in ("lam_H", "lam_I", "lam_S", "lam_NTK"):
        # residual tol 1e-10 on both sides: eigenvalues agree to ~1e-10 relative; 1e-8 with margin
        close([x[col] for x in w], [x[col] for x in c], "warm vs cold: %s along training" % col, 1e-8)
    for col in ("matvecs_H", "matvecs_I"):
        sw, sc = sum(x[col] for x in w[1:]), sum(x[col] for x in c[1:])
        check(sw < sc, "warm start saves products: %s %d < cold %d" % (col, sw, sc))
    check(w[0]["matvecs_H"] == c[0]["matvecs_H"], "first record: no warm vector yet, the same seeded start")


def kill_resume(t, kills=3):
    """kill -9 mid-run, rerun: the record file equals an uninterrupted run's
    byte for byte, and the checkpoint folders are gone at the end.  Until
    then the records grow in FILE.csv.partial: a killed run leaves no FILE.csv."""
    d = setup(t, "kr", "10,64,64,3", "tanh", "mse", 200, 10, 3, seed=7)
    args = ["sharpness", "--model", os.path.join(d, "m0"), "--data", os.path.join(d, "X.npy"), "--targets",
            os.path.join(d, "T.npy"), "--lr", 2.0, "--steps", 120, "--every", 2, "--top", 2,
            "--checkpoint-every", 3, "--threads", 1]
    ref, out = os.path.join(d, "ref.csv"), os.path.join(d, "b.csv")
    r = cli(*args, "--out", ref)
    check(r.returncode == 0, "kill/resume: reference run", r.stderr)
    killed, leaked = 0, 0
    part = out + ".partial"
    count = lambda: open(part).read().count("\n") if os.path.exists(part) else 0
    for i in range(kills):
        before = count()
        p = subprocess.Popen([BIN, *map(str, args), "--out", out], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        want = before + 3 + i  # vary the kill point
        while p.poll() is None and count() < want and time.time() < deadline:
            time.sleep(0.002)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
        leaked += os.path.exists(out)
    check(leaked == 0 and os.path.exists(part), "kill/resume: killed runs leave FILE.csv.partial, never FILE.csv",
          leaked)
    r = cli(*args, "--out", out)
    check(r.returncode == 0, "kill/resume: final rerun", r.stderr)
    check(not os.path.exists(part), "kill/resume: FILE.csv.partial renamed at the end")
    check("resuming from step" in r.stderr, "kill/resume: the final rerun resumed from a checkpoint", r.stderr)
    check(killed >= 2, "kill/resume: at least 2 runs really killed mid-way", killed)
    check(open(ref).read() == open(out).read(), "kill/resume: records == uninterrupted run, byte for byte")
    check(not os.path.exists(out + ".ckpt") and not os.path.exists(out + ".warm"),
          "kill/resume: checkpoint and warm-start folders removed at the end")
    return killed


def bad_inputs(t):
    d = setup(t, "bad", "5,6,1", "tanh", "mse", 8, 5, 1)
    base = ["sharpness", "--model", os.path.join(d, "m0"), "--data", os.path.join(d, "X.npy"), "--targets",
            os.path.join(d, "T.npy"), "--lr", 0.1, "--steps", 2, "--out", os.path.join(d, "s.csv")]
    check(cli(*base, "--batch", 8).returncode == 0, "--batch N (the full batch) is accepted")
    check(cli(*base, "--batch", "all").returncode == 0, "--batch all is accepted")
    expect_error("--batch -1", base + ["--batch", -1], "--batch")
    # a fresh run over an older FILE.csv removes it first: a run killed before its end leaves none
    old = os.path.join(d, "old.csv")
    open(old, "w").write("step\n0\n")
    long = [a if a != os.path.join(d, "s.csv") else old for a in base]
    long[long.index("--steps") + 1] = 100000
    p = subprocess.Popen([BIN, *map(str, long)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not os.path.exists(old + ".partial") and time.time() < deadline:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    check(not os.path.exists(old) and os.path.exists(old + ".partial"),
          "a fresh run removes an older FILE.csv; killed, it leaves only FILE.csv.partial")
    expect_error("--top 0", base + ["--top", 0], "--top")
    nolr = [a for i, a in enumerate(base) if a != "--lr" and (i == 0 or base[i - 1] != "--lr")]
    expect_error("--lr 0", nolr + ["--lr", 0], "--lr must be > 0")
    # --out with missing parent folders: created (the first-hour rule of every command)
    deep = os.path.join(d, "new", "sub", "s.csv")
    r = cli(*[a if a != os.path.join(d, "s.csv") else deep for a in base])
    check(r.returncode == 0 and len(rows(deep)) == 3, "--out under missing folders creates them", r.stderr)
    # a checkpoint of other arguments is refused, naming what differs, not silently reused
    d2 = setup(t, "bad2", "5,64,64,1", "tanh", "mse", 200, 5, 1)
    run2 = ["sharpness", "--model", os.path.join(d2, "m0"), "--data", os.path.join(d2, "X.npy"), "--targets",
            os.path.join(d2, "T.npy"), "--steps", 100000, "--checkpoint-every", 1, "--threads", 1,
            "--out", os.path.join(d2, "s.csv")]
    p = subprocess.Popen([BIN, *map(str, run2), "--lr", "0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(d2, "s.csv.ckpt", "state.txt")) and time.time() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    expect_error("checkpoint of another --lr", run2 + ["--lr", 0.2], "lr")
    # and a damaged one is refused as corrupt
    with open(os.path.join(d2, "s.csv.ckpt", "state.txt"), "a") as f:
        f.write("x")
    expect_error("corrupt checkpoint", run2 + ["--lr", 0.1], "corrupt")
    r = cli(*[a if a != 100000 else 3 for a in run2], "--lr", 0.1, "--restart")
    check(r.returncode == 0 and "resuming" not in r.stderr and not os.path.exists(os.path.join(d2, "s.csv.ckpt")),
          "--restart drops the corrupt checkpoint and runs from step 0", r.stderr)


def batched(t):
    """--batch B streams the passes (docs/streaming.md): the records equal the
    unbatched run's.  Each product differs from the unbatched one only in the
    order of the sums over rows (~1e-16 relative); 12 GD steps and Lanczos
    solves to a 1e-12 residual keep the eigenvalues within ~1e-13, so 1e-10
    relative on the lam columns is far above rounding yet catches any real
    error (a missing batch, a wrong scale: >= 1e-3)."""
    d = setup(t, "bat", "5,16,12,2", "tanh", "mse", 22, 5, 2, seed=9)
    base = ["sharpness", "--model", os.path.join(d, "m0"), "--data", os.path.join(d, "X.npy"), "--targets",
            os.path.join(d, "T.npy"), "--lr", 0.8, "--steps", 12, "--every", 3, "--top", 2, "--tol", "1e-12",
            "--threads", 1]
    ref = os.path.join(d, "all.csv")
    check(cli(*base, "--batch", "all", "--out", ref).returncode == 0, "batch: unbatched run")
    R = rows(ref)
    for B in (1, 5, 8):  # 5 and 8 do not divide N = 22
        out = os.path.join(d, "b%d.csv" % B)
        r = cli(*base, "--batch", B, "--out", out)
        check(r.returncode == 0, "batch %d: runs" % B, r.stderr)
        got = rows(out)
        check(len(got) == len(R) == 5, "batch %d: 5 records" % B)
        for col in ("loss", "grad_norm", "lam_H", "lam_I", "lam_S", "lam_NTK", "uIu", "H_2", "I_2", "S_2"):
            close([x[col] for x in got], [x[col] for x in R], "batch %d: %s == unbatched" % (B, col), 1e-10)
    # eos --batch: the same records as without (tiny network)
    env = dict(os.environ, NTKHESS_DATA=os.environ.get("NTKHESS_DATA", os.path.join(os.path.dirname(BIN), "..", "data")))
    args = ["eos", "--n", 24, "--size", 7, "--hidden", "8,8,8", "--steps", 12, "--every", 4, "--lrs", "5", "--tol", "1e-12",
            "--threads", 1]
    a, b = os.path.join(t, "eos_all"), os.path.join(t, "eos_b7")
    ra, rb = cli(*args, "--out", a, env=env), cli(*args, "--batch", 7, "--out", b, env=env)
    check(ra.returncode == 0 and rb.returncode == 0, "eos --batch 7: runs", ra.stderr + rb.stderr)
    if ra.returncode == 0 and rb.returncode == 0:
        A, Bb = rows(os.path.join(a, "eta0.csv")), rows(os.path.join(b, "eta0.csv"))
        for col in ("loss", "lam_H", "lam_I", "lam_S"):
            close([x[col] for x in Bb], [x[col] for x in A], "eos --batch 7: %s == unbatched" % col, 1e-10)


def catapult_smoke(t):
    """A tiny catapult sweep: below 2/lam0 the loss never rises; far above
    the run diverges; the summary's lam0 equals lam_I of `sharpness` at init."""
    out = os.path.join(t, "cat")
    env = dict(os.environ, NTKHESS_DATA=os.environ.get("NTKHESS_DATA", os.path.join(os.path.dirname(BIN), "..", "data")))
    r = cli("catapult", "--out", out, "--n", 32, "--size", 7, "--hidden", 256, "--steps", 60, "--ratios",
            "0.5,1.5,200", "--threads", 1, env=env)
    check(r.returncode == 0, "catapult: tiny sweep runs", r.stderr)
    if r.returncode:
        return
    s = json.load(open(os.path.join(out, "summary.json")))
    runs = s["runs"]
    check(runs[0]["peak_loss_over_initial"] == 1 and not runs[0]["diverged"], "catapult: r = 0.5: loss never rises")
    check(runs[2]["diverged"], "catapult: r = 200: diverged")
    L = np.genfromtxt(os.path.join(out, "losses.csv"), delimiter=",", names=True)
    check(np.all(np.diff(L["r05"]) < 0), "catapult: r = 0.5: losses.csv strictly decreasing")
    check(all(os.path.exists(os.path.join(out, f)) for f in ("catapult.png", "catapult.svg", "catapult.csv")),
          "catapult: figure and CSV written")


def eos_smoke(t):
    """A tiny eos run: default step sizes put 2/eta at 2.2, 1.6, 1.3 x lam_max(H)
    at init (the step-0 record of every run, same init); the summary's
    arrival step is the first record with lam_H >= 2/eta."""
    out = os.path.join(t, "eos")
    env = dict(os.environ, NTKHESS_DATA=os.environ.get("NTKHESS_DATA", os.path.join(os.path.dirname(BIN), "..", "data")))
    r = cli("eos", "--out", out, "--n", 64, "--size", 7, "--hidden", "16,16,16", "--steps", 40, "--every", 4,
            "--threads", 1, env=env)
    check(r.returncode == 0, "eos: tiny run", r.stderr)
    if r.returncode:
        return
    s = json.load(open(os.path.join(out, "summary.json")))
    lam0 = s["lam_H_init"]
    for i, (fac, run) in enumerate(zip((2.2, 1.6, 1.3), s["runs"])):
        rec = rows(os.path.join(out, "eta%d.csv" % i))
        # the same cold solve (seed, tol 1e-8 vs the record's 1e-5): agree far below 1e-6
        close(rec[0]["lam_H"], lam0, "eos: run %d: step-0 lam_H == summary lam_H_init" % i, 1e-6)
        close(2 / run["eta"], fac * lam0, "eos: run %d: 2/eta == %g lam_H(0)" % (i, fac), 1e-14)
        first = next((int(x["step"]) for x in rec if x["lam_H"] >= 2 / run["eta"]), None)
        check(first == run["first_step_lam_H_ge_2_over_eta"], "eos: run %d: arrival step from the CSV" % i,
              (first, run["first_step_lam_H_ge_2_over_eta"]))
    check(all(os.path.exists(os.path.join(out, f)) for f in ("eos.png", "eos.svg")), "eos: figure written")


def main():
    with tempfile.TemporaryDirectory() as t:
        section("dense mse", dense_case, t, "mse", "5,7,6,2", "tanh", "mse", 2, 3)
        section("dense ce", dense_case, t, "ce", "5,6,5,3", "softplus", "ce", 3, 1)
        section("dense mse standard", dense_case, t, "std", "5,8,6,2", "tanh", "mse", 2, 2, "standard")
        section("warm vs cold", warm_cold, t)
        section("kill -9 resume", kill_resume, t)
        section("bad inputs", bad_inputs, t)
        section("batched", batched, t)
        section("catapult", catapult_smoke, t)
        section("eos", eos_smoke, t)
    finish()


if __name__ == "__main__":
    main()
