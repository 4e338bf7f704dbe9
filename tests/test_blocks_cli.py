"""Parameter blocks on the CLI and in Python: --params on curvature,
spectrum and measure, the per-tensor table of `ntkhess layers`, and
Curvature(..., params=[...]), against the dense H, I, S of the whole network
(`curvature --dense` without --params) restricted to the selected rows and
columns (offsets from the model files' W<l>.npy / b<l>.npy shapes).

Tolerances: a block product is exactly the full product's entries, and the
dense truths are built from the same full products: 1e-10 relative (rounding
only); batched runs differ by the order of the sums (1e-10).  Lanczos
eigenvalues converge to 1e-10 relative residuals: 1e-8.  Hutchinson and SLQ
estimates are random: within 5 standard errors (fixed seeds: deterministic)."""
import csv
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, close, finish, section, cli, expect_error, import_binding, asan_reexec, LIB  # noqa: E402

asan_reexec(LIB)

import numpy as np  # noqa: E402

W = [4, 6, 5, 3]          # depth 3; layer 1 has no bias
BIAS = [True, False, True]


def tensors():
    """(name, offset, size) in theta order, as the model files name them."""
    out, off = [], 0
    for l in range(3):
        out.append(("W%d" % l, off, W[l] * W[l + 1])); off += W[l] * W[l + 1]
        if BIAS[l]:
            out.append(("b%d" % l, off, W[l + 1])); off += W[l + 1]
    return out, off


def index(names):
    ts, _ = tensors()
    return np.concatenate([np.arange(o, o + s) for n, o, s in ts if n in names])


def setup(t):
    j = lambda *p: os.path.join(t, *p)
    r = cli("init", "--widths", ",".join(map(str, W)), "--act", "tanh", "--seed", "2", "--no-bias", "1", "--out", j("m"))
    check(r.returncode == 0, "init", r.stderr)
    rng = np.random.default_rng(1)
    np.save(j("X.npy"), rng.standard_normal((11, 4)))
    np.save(j("T.npy"), rng.integers(0, 3, 11).astype(np.float64))
    base = ["--model", j("m"), "--data", j("X.npy"), "--targets", j("T.npy"), "--loss", "ce"]
    r = cli("curvature", *base, "--dense", "--out", j("full"))
    check(r.returncode == 0, "curvature --dense (the truth)", r.stderr)
    D = {k: np.load(j("full", k + ".npy")) for k in ["H", "I", "S", "grad"]}
    _, P = tensors()
    check(D["H"].shape == (P, P), "full H is P x P", str(D["H"].shape))
    return j, base, D


def blk(D, k, idx):
    return D[k][np.ix_(idx, idx)]


def lam_lm(A):
    w = np.linalg.eigvalsh(A)
    return w[np.argmax(np.abs(w))]


def curvature(j, base, D):
    names = ["W0", "b2"]                      # non-contiguous
    idx = index(names)
    v = np.random.default_rng(3).standard_normal(len(idx))
    np.save(j("vb.npy"), v)
    for tag, extra in [("c0", []), ("c4", ["--batch", "4"])]:
        r = cli("curvature", *base, "--params", "W0,b2", "--dense", "--hvp", j("vb.npy"), "--out", j(tag), *extra)
        check(r.returncode == 0, "curvature --params W0,b2 %s" % " ".join(extra), r.stderr)
        s = json.load(open(j(tag, "summary.json")))
        check(s.get("params") == names and s.get("dim") == len(idx), "summary params and dim", str(s))
        close(s["tr_S1"], np.trace(blk(D, "S", idx)), "%s tr_S1 = Tr S_BB (G of the block)" % tag, 1e-9)
        check(np.load(j(tag, "G.npy")).shape == (11, 3), "%s G.npy (N, n_L)" % tag)
        close(np.load(j(tag, "grad.npy")), D["grad"][idx], "%s grad_B = grad[B]" % tag, 1e-10)
        for k in "HIS":
            close(np.load(j(tag, k + ".npy")), blk(D, k, idx), "%s dense %s_BB" % (tag, k), 1e-10)
            close(np.load(j(tag, k + "v.npy")), blk(D, k, idx) @ v, "%s %s_BB v" % (tag, k), 1e-10)
        IB = blk(D, "I", idx)
        want = [np.trace(np.linalg.matrix_power(IB, k)) for k in range(1, 5)]
        close(s["tr_I"], want, "%s tr_I = Tr(I_BB^k) from the block NTK" % tag, 1e-9)
        K = np.load(j(tag, "ntk.npy"))
        check(K.shape == (33, 33), "block NTK shape (N n_L)^2", str(K.shape))


def layers(j, base, D):
    ts, P = tensors()
    for tag, extra in [("exact", []), ("hutch", ["--no-ntk", "--probes", "200", "--batch", "4"])]:
        r = cli("layers", *base, "--out", j(tag + ".csv"), *extra)
        check(r.returncode == 0, "layers %s" % " ".join(extra), r.stderr)
        rows = {row["tensor"]: row for row in csv.DictReader(open(j(tag + ".csv")))}
        check(list(rows) == [t[0] for t in ts] + ["all"], "layers rows: every tensor, then all", str(list(rows)))
        for n, o, size in ts + [("all", 0, P)]:
            row = {k: float(x) for k, x in rows[n].items() if k != "tensor"}
            idx = np.arange(o, o + size)
            H, I, S = blk(D, "H", idx), blk(D, "I", idx), blk(D, "S", idx)
            check(row["size"] == size, "%s %s size" % (tag, n), str(row["size"]))
            sc = np.abs(np.linalg.eigvalsh(H)).max() + np.abs(np.linalg.eigvalsh(I)).max()
            close(row["tr_S"], np.trace(S), "%s %s tr_S exact (G of the block)" % (tag, n), 1e-9)
            check(row["tr_S_se"] == 0, "%s %s tr_S_se = 0" % (tag, n))
            check(abs(row["tr_H"] - row["tr_I"] - row["tr_S"]) <= 1e-12 * sc, "%s %s tr_H = tr_I + tr_S" % (tag, n))
            if tag == "exact":
                close(row["tr_I"], np.trace(I), "%s %s tr_I exact (block NTK)" % (tag, n), 1e-9)
                close(row["tr_H"], np.trace(H), "%s %s tr_H exact" % (tag, n), 1e-9)
                check(row["tr_H_se"] == 0, "%s %s tr_H_se = 0" % (tag, n))
            else:
                se = row["tr_H_se"]
                check(se > 0 and abs(row["tr_I"] - np.trace(I)) <= 5 * se, "%s %s tr_I within 5 SE (Hutchinson)" % (tag, n),
                      "(%r vs %r, se %r)" % (row["tr_I"], np.trace(I), se))
            check(abs(row["lam_H"] - np.linalg.eigvalsh(H)[-1]) <= 1e-8 * sc, "%s %s lam_H" % (tag, n), str(row))
            check(abs(row["lam_I"] - np.linalg.eigvalsh(I)[-1]) <= 1e-8 * sc, "%s %s lam_I" % (tag, n), str(row))
            check(abs(row["lam_S"] - lam_lm(S)) <= 1e-8 * sc, "%s %s lam_S signed largest magnitude" % (tag, n),
                  "(%r vs %r)" % (row["lam_S"], lam_lm(S)))


def spectrum(j, base, D):
    idx = index(["W1"])
    H = blk(D, "H", idx)
    r = cli("spectrum", *base, "--params", "W1", "--top", "3", "--json")
    check(r.returncode == 0, "spectrum --params W1 --top 3", r.stderr)
    s = json.loads(r.stdout)
    check(s["params"] == ["W1"] and s["dim"] == 30, "spectrum json params, dim", r.stdout[:200])
    close(s["eigenvalues"], np.linalg.eigvalsh(H)[::-1][:3], "spectrum top-3 of H_BB (W1)", 1e-8)
    r = cli("spectrum", *base, "--params", "W1,b0", "--of", "I", "--density", "--vectors", "64",
            "--lanczos-steps", "10", "--json")
    check(r.returncode == 0, "spectrum --params W1,b0 --density", r.stderr)
    s = json.loads(r.stdout)
    idx = index(["W1", "b0"])
    I = blk(D, "I", idx)
    for k in (1, 2):
        want = np.trace(np.linalg.matrix_power(I, k)) / len(idx)
        m, se = s["moments_over_P"][k - 1], s["moments_over_P_se"][k - 1]
        check(abs(m - want) <= 5 * se, "SLQ moment %d of I_BB within 5 SE" % k, "(%r vs %r, se %r)" % (m, want, se))


def measure(j, base, D):
    idx = index(["W0", "b0"])
    r = cli("measure", *base, "--params", "W0,b0", "--lr", "0.1", "--steps", "0", "--every", "1",
            "--probes", "200", "--out", j("meas.csv"))
    check(r.returncode == 0, "measure --params W0,b0", r.stderr)
    row = {k: float(x) for k, x in list(csv.DictReader(open(j("meas.csv"))))[0].items() if x != ""}
    I, H = blk(D, "I", idx), blk(D, "H", idx)
    close(row["tr_I1"], np.trace(I), "measure tr_I1 = Tr I_BB exactly", 1e-9)
    close(row["tr_I2"], np.trace(I @ I), "measure tr_I2 = Tr I_BB^2 exactly", 1e-9)
    close(row["tr_H1"], np.trace(H), "measure tr_H1 = Tr H_BB exactly", 1e-9)
    close(row["tr_S1"], np.trace(blk(D, "S", idx)), "measure tr_S1 = Tr S_BB exactly", 1e-9)
    S = blk(D, "S", idx)
    check(abs(row["tr_S2"] - np.trace(S @ S)) <= 5 * row["tr_S2_se"], "measure tr_S2 within 5 SE", str(row))


def bad(j, base):
    for cmd, extra in [("spectrum", ["--top", "1"]), ("curvature", ["--out", j("bad")]),
                       ("measure", ["--lr", "0.1", "--steps", "0", "--every", "1", "--out", j("bad.csv")])]:
        expect_error("%s --params b1 (layer 1 has no bias)" % cmd, [cmd, *base, "--params", "b1", *extra],
                     "W0, b0, W1, W2, b2", codes=(2,))
    expect_error("--params W0,W0", ["spectrum", *base, "--params", "W0,W0", "--top", "1"], "twice", codes=(2,))


def python(j, D):
    nh = import_binding()
    if nh is None:
        return
    net = nh.load_model(j("m")) if hasattr(nh, "load_model") else nh.Net.load(j("m"))
    X, T = np.load(j("X.npy")), np.load(j("T.npy"))
    check([t[0] for t in net.tensors] == [t[0] for t in tensors()[0]], "Net.tensors names", str(net.tensors))
    idx = index(["W0", "b2"])
    for batch in (0, 4):
        c = nh.Curvature(net, X, T, loss="ce", batch=batch, params=["b2", "W0"])
        check(c.P == len(idx) and c.params == ["W0", "b2"], "Curvature params: P = P_B, names in theta order",
              str((c.P, c.params)))
        v = np.random.default_rng(5).standard_normal(len(idx))
        close(c.hvp(v), blk(D, "H", idx) @ v, "python H_BB v batch=%d" % batch, 1e-10)
        close(c.grad(), D["grad"][idx], "python grad_B batch=%d" % batch, 1e-10)
        close(c.dense("I")["I"], blk(D, "I", idx), "python dense I_BB batch=%d" % batch, 1e-10)
        ev = c.lanczos(2, op="H")["eigenvalues"]
        close(ev, np.linalg.eigvalsh(blk(D, "H", idx))[::-1][:2], "python lanczos top-2 of H_BB", 1e-8)
        close((c.G() * c.dloss()).sum(), np.trace(blk(D, "S", idx)), "python G of the block: G_B . dC/dY = Tr S_BB",
              1e-9)
        c.select(None)
        check(c.P == tensors()[1] and c.params is None, "select(None): all of theta", str(c.P))
    c = nh.Curvature(net, X, T, loss="ce")
    try:
        c.select("W0,b1")
        check(False, "python select of an unknown tensor refused")
    except nh.NtkhessError as e:
        check(e.name == "NH_EINVAL" and "W0, b0, W1, W2, b2" in str(e), "python unknown tensor refused naming the valid",
              str(e))


def diag(j, base, D):
    """curvature --params --diag: the block's diagonal (exact: the full diagonal's
    entries, to rounding; Hutchinson with probes on the block: within 5 SE)."""
    idx = index(["W0", "b2"])
    r = cli("curvature", *base, "--params", "W0,b2", "--no-ntk", "--diag", "exact", "--out", j("dg"))
    if not check(r.returncode == 0, "curvature --params W0,b2 --diag exact", r.stderr):
        return
    for op in "HIS":
        got = np.load(j("dg", "diag%s.npy" % op))
        want = np.diag(D[op])[idx]
        check(got.shape == (len(idx),), "--diag %s with --params: P_B entries" % op, str(got.shape))
        close(got, want, "--params --diag exact %s == dense diagonal's block" % op, 1e-10)
    r = cli("curvature", *base, "--params", "W0,b2", "--no-ntk", "--diag", "hutchinson", "--diag-probes", "200",
            "--out", j("dh"))
    if not check(r.returncode == 0, "curvature --params W0,b2 --diag hutchinson", r.stderr):
        return
    for op in "HIS":
        got, se = np.load(j("dh", "diag%s.npy" % op)), np.load(j("dh", "diag%s_se.npy" % op))
        want = np.diag(D[op])[idx]
        z = np.abs(got - want) / np.maximum(se, 1e-300)
        # probes on the block only; fixed seed: deterministic, 5 SE per entry
        check(got.shape == (len(idx),) and (z <= 5).all(), "--params --diag hutchinson %s within 5 SE" % op,
              "max z %.2f" % z.max())


def main():
    with tempfile.TemporaryDirectory() as t:
        j, base, D = setup(t)
        section("curvature --params", curvature, j, base, D)
        section("layers", layers, j, base, D)
        section("spectrum --params", spectrum, j, base, D)
        section("measure --params", measure, j, base, D)
        section("diag --params", diag, j, base, D)
        section("bad names", bad, j, base)
        section("python params", python, j, D)
    finish()


if __name__ == "__main__":
    main()
