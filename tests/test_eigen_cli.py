"""ntkhess eigenspace and the Python eigenspace tools against LAPACK (numpy)
on small nets: the saved eigenvectors span the dense top-k eigenspaces,
eigenvalues and residuals, the gradient's overlap against the dense
projection, principal angles against numpy's SVD and scipy, the deflated SLQ
trace identity, a bulk density without the outliers the full one has, the
output contract and bad input (exit 2, one line, nothing written)."""
import csv
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, finish, section, cli, expect_error, import_binding, asan_reexec, LIB  # noqa: E402

asan_reexec(LIB)

import numpy as np  # noqa: E402

nh = import_binding()
K = 3


def dense_top(A, k, which):
    """Top-k eigenpairs of a dense symmetric A (numpy's LAPACK)."""
    w, V = np.linalg.eigh(0.5 * (A + A.T))
    idx = np.argsort(-np.abs(w) if which == "LM" else -w, kind="stable")[:k]
    return w[idx], V[:, idx].T


def sines(U, Q):
    """Sines of the principal angles between orthonormal rows U, Q: the
    singular values of U - (U Q^T) Q (full accuracy for small angles)."""
    return np.linalg.svd(U - (U @ Q.T) @ Q, compute_uv=False)


def setup(t, near_min=False, loss="mse"):
    j = lambda *p: os.path.join(t, *p)
    r = cli("init", "--widths", "4,8,6,%d" % (3 if loss == "ce" else 2), "--act", "softplus", "--seed", "2",
            "--out", j("m"))
    check(r.returncode == 0, "init", r.stderr)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 4)) + (2.0 if near_min else 0.0)
    net = nh.Net.load(j("m"))
    if loss == "ce":
        T = rng.integers(0, 3, 10).astype(np.float64)
    elif near_min:  # targets = outputs + noise: S small, I's outliers dominate H
        T = net.forward(X) + 0.1 * rng.standard_normal((10, 2))
    else:
        T = rng.standard_normal((10, 2))
    np.save(j("X.npy"), X)
    np.save(j("T.npy"), T)
    c = nh.Curvature(net, X, T, loss=loss)
    return j, c, ["--model", j("m"), "--data", j("X.npy"), "--targets", j("T.npy"), "--loss", loss]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def contract(j, c, base, tag):
    r = cli("eigenspace", *base, "--k", str(K), "--out", j("o"))
    if not check(r.returncode == 0, "%s: eigenspace runs" % tag, r.stderr):
        return None
    files = sorted(os.listdir(j("o")))
    want = sorted(["vecs_H.npy", "vecs_I.npy", "vecs_S.npy", "evals.csv", "overlap.csv", "angles.csv",
                   "bulk_H.csv", "bulk_I.csv", "bulk_S.csv", "summary.json"])
    check(files == want, "%s: output files" % tag, str(files))
    s = json.load(open(j("o", "summary.json")))
    check(s["P"] == c.P and s["k"] == K and s["options"]["ops"] == "H,I,S", "%s: summary.json header" % tag, str(s)[:200])
    return s


def eigenpairs(j, c, s, tag):
    D = c.dense()
    ev = read_csv(j("o", "evals.csv"))
    for op in "HIS":
        which = "LM" if op == "S" else "LA"
        A = D[op]
        an = np.abs(np.linalg.eigvalsh(0.5 * (A + A.T))).max()
        w, Q = dense_top(A, K + 1, which)
        V = np.load(j("o", "vecs_%s.npy" % op))
        check(V.shape == (K, c.P), "%s %s: vecs shape (k, P)" % (tag, op), str(V.shape))
        got = np.array([float(r["eigenvalue"]) for r in ev if r["op"] == op])
        res = np.array([float(r["residual"]) for r in ev if r["op"] == op])
        # Lanczos stops at residual 1e-10 ||A||: eigenvalue errors are below it.
        check(np.abs(got - w[:K]).max() <= 1e-10 * an, "%s %s: eigenvalues == LAPACK (1e-10 ||A||)" % (tag, op),
              "%s vs %s" % (got, w[:K]))
        check(np.allclose(got, s[op]["eigenvalues"], rtol=0, atol=0), "%s %s: evals.csv == summary.json" % (tag, op))
        # sin(angle) <= residual / gap; the gap after k is asserted first.
        gap = abs(w[K - 1] - w[K])
        check(gap > 1e-2 * an, "%s %s: eigengap %.3g ||A|| after k" % (tag, op, gap / an))
        sn = sines(V, Q[:K])
        check(sn.max() <= 1e-8, "%s %s: saved vectors span the dense top-%d space (max sin %.2e)" % (tag, op, K, sn.max()))
        dres = np.linalg.norm(V @ A - got[:, None] * V, axis=1)
        check(np.allclose(res, dres, rtol=0, atol=1e-12 * an) and res.max() <= 1e-9 * an,
              "%s %s: residuals == ||A v - lambda v|| (dense)" % (tag, op), "%s vs %s" % (res, dres))
        check(np.abs(V @ V.T - np.eye(K)).max() <= 1e-12, "%s %s: orthonormal rows" % (tag, op))


def overlap(j, c, s, tag):
    D = c.dense()
    g = c.grad()
    rows = read_csv(j("o", "overlap.csv"))
    for op in "HIS":
        _, Q = dense_top(D[op], K, "LM" if op == "S" else "LA")
        want = np.linalg.norm(Q.T @ (Q @ g)) / np.linalg.norm(g)  # dense projection P_k g
        mine = [r for r in rows if r["op"] == op]
        got = float(mine[-1]["overlap_top_i"])
        # the saved span is within 1e-8 of the dense one (above)
        check(abs(got - want) <= 1e-8, "%s %s: ||P_k g||/||g|| == dense projection" % (tag, op), "%r vs %r" % (got, want))
        check(abs(s[op]["overlap"] - got) <= 1e-15, "%s %s: summary overlap == csv" % (tag, op))
        V = np.load(j("o", "vecs_%s.npy" % op))
        comp = np.abs(V @ g) / np.linalg.norm(g)
        gotc = np.array([float(r["component"]) for r in mine])
        check(np.allclose(gotc, comp, rtol=1e-12, atol=1e-15), "%s %s: components |u_i.g|/||g||" % (tag, op))
        cum = np.sqrt(np.cumsum(comp ** 2))
        check(np.allclose([float(r["overlap_top_i"]) for r in mine], cum, rtol=1e-12, atol=1e-15),
              "%s %s: overlap_top_i cumulative" % (tag, op))


def angles(j, c, s, tag):
    from scipy.linalg import subspace_angles
    rows = read_csv(j("o", "angles.csv"))
    for pair in ["H-I", "H-S", "I-S"]:
        a, b = pair.split("-")
        U, V = np.load(j("o", "vecs_%s.npy" % a)), np.load(j("o", "vecs_%s.npy" % b))
        cosv = np.clip(np.linalg.svd(U @ V.T, compute_uv=False), -1, 1)
        want = np.sort(np.arccos(cosv))           # numpy SVD, independently
        got = np.array([float(r["angle_rad"]) for r in rows if r["pair"] == pair])
        deg = np.array([float(r["angle_deg"]) for r in rows if r["pair"] == pair])
        # arccos of a cosine carries ~1e-8 near 0; these angles are far from 0
        check(got.shape == (K,) and np.abs(got - want).max() <= 1e-7, "%s %s: angles == arccos(svd(U V^T))" % (tag, pair),
              "%s vs %s" % (got, want))
        sp = np.sort(subspace_angles(U.T, V.T))    # scipy (sine/cosine mix)
        check(np.abs(got - sp).max() <= 1e-12, "%s %s: angles == scipy.linalg.subspace_angles" % (tag, pair),
              "%s vs %s" % (got, sp))
        check(np.allclose(deg, np.degrees(got), rtol=1e-15, atol=0), "%s %s: degrees" % (tag, pair))
        check(np.allclose(s["angles"][pair]["radians"], got, rtol=0, atol=0), "%s %s: summary angles" % (tag, pair))


def traces(j, c, s, tag):
    D = c.dense()
    for op in "HIS":
        w = np.linalg.eigvalsh(0.5 * (D[op] + D[op].T))
        an = np.abs(w).max()
        tr = s[op]["traces"]
        for p in range(4):
            exact = np.sum(w ** (p + 1))
            # SLQ is a Monte Carlo estimate: 4 standard errors (fixed seed)
            for key in ["from_deflated", "from_full"]:
                est, se = tr[key][p], tr[key + "_se"][p]
                check(abs(est - exact) <= 4 * se + 1e-9 * an ** (p + 1),
                      "%s %s: %s Tr(A^%d) within 4 SE" % (tag, op, key, p + 1), "(%.8g vs %.8g, se %.3g)" % (est, exact, se))
        # deflation removes the outliers' share of the variance
        check(tr["from_deflated_se"][1] < tr["from_full_se"][1], "%s %s: deflated SE(Tr A^2) < full SE" % (tag, op),
              "(%.3g vs %.3g)" % (tr["from_deflated_se"][1], tr["from_full_se"][1]))


def densities(j, c, s, tag, outliers):
    D = c.dense()
    for op in "HIS":
        rows = read_csv(j("o", "bulk_%s.csv" % op))
        x = np.array([float(r["eigenvalue"]) for r in rows])
        db = np.array([float(r["density_bulk"]) for r in rows])
        df = np.array([float(r["density_full"]) for r in rows])
        check(len(rows) == 400 and (db >= 0).all() and (df >= 0).all(), "%s %s: bulk csv (400 rows, >= 0)" % (tag, op))
        # Grid spans the nodes +- 5 sigma at spacing ~sigma/4: integrals 1
        # within 1e-3 (trapezoid, tails beyond 5 sigma ~ 3e-7).
        for name, d in [("bulk", db), ("full", df)]:
            area = np.trapz(d, x)
            check(abs(area - 1) <= 1e-3, "%s %s: %s density integrates to 1" % (tag, op, name), "(%.6f)" % area)
        if not outliers or op != "H":
            continue
        w = np.sort(np.linalg.eigvalsh(0.5 * (D["H"] + D["H"].T)))[::-1]
        no = 2  # one outlier per output (the mean feature of the shifted inputs)
        check(w[no - 1] > 3 * max(abs(w[no]), abs(w[-1])), "%s: H has %d outliers (%.3g > 3 x %.3g)" % (tag, no, w[no - 1], w[no]))
        sig = s["H"]["sigma"]
        cut = x > w[K] + 8 * sig       # past the bulk's edge (lambda_{K+1}) by 8 sigma
        check(w[no - 1] > w[K] + 12 * sig, "%s: outliers beyond the cut by 4 sigma" % tag)
        fb, ff = np.trapz(db * cut, x), np.trapz(df * cut, x)
        # full: each outlier carries weight ~1/P per vector (16 vectors);
        # bulk: only Gaussian tails from >= 8 sigma, exp(-32) ~ 1e-14
        check(ff > 0.3 * no / c.P, "%s: the full density has the outliers (mass %.3g beyond the bulk)" % (tag, ff))
        check(fb < 1e-10, "%s: the bulk density has none (mass %.3g)" % (tag, fb))


def python_api(j, c, s, tag):
    from scipy.linalg import subspace_angles
    r = c.eigenspace(K)
    for op in "HIS":
        V = np.load(j("o", "vecs_%s.npy" % op))
        an = abs(r[op]["eigenvalues"]).max()
        # same seed and algorithm: equal up to threaded summation order
        check(np.allclose(r[op]["eigenvalues"], s[op]["eigenvalues"], rtol=0, atol=1e-12 * an),
              "%s python eigenspace %s: eigenvalues == CLI" % (tag, op))
        check(sines(r[op]["eigenvectors"], V).max() <= 1e-10, "%s python %s: same span as the CLI" % (tag, op))
        check(abs(r[op]["overlap"] - s[op]["overlap"]) <= 1e-10, "%s python %s: overlap == CLI" % (tag, op))
        check(np.allclose(r[op]["slq_bulk"]["moments"], s[op]["slq_bulk"]["moments_over_P_minus_k"], rtol=1e-8,
                          atol=1e-12), "%s python %s: bulk moments == CLI" % (tag, op))
        ev, U = c.top_eigenvectors(op, K)
        check(np.allclose(ev, r[op]["eigenvalues"], rtol=0, atol=1e-12 * an) and U.shape == (K, c.P),
              "%s top_eigenvectors(%s)" % (tag, op))
    check(np.abs(r["angles"]["H-I"] - np.sort(subspace_angles(r["H"]["eigenvectors"].T, r["I"]["eigenvectors"].T))).max()
          <= 1e-12, "%s python angles H-I == scipy" % tag)
    # Free functions: closed forms on coordinate subspaces.
    P = c.P
    E = np.eye(P)[:2]
    g = np.arange(1.0, P + 1)
    ov, comp = nh.subspace_overlap(E, g)
    check(abs(ov - np.hypot(1, 2) / np.linalg.norm(g)) <= 1e-15 and np.allclose(comp, [1, 2] / np.linalg.norm(g)),
          "subspace_overlap: coordinate subspace")
    th = 1e-9
    U = np.eye(P)[:1]
    V = (np.cos(th) * np.eye(P)[0] + np.sin(th) * np.eye(P)[1])[None]
    a = nh.principal_angles(U, V)
    check(abs(a[0] - th) <= 1e-16 * 10, "principal_angles: 1e-9 angle to full accuracy (%.17g)" % a[0])
    try:
        nh.subspace_overlap(2 * E, g)
        check(False, "subspace_overlap: non-orthonormal rows refused")
    except nh.NtkhessError as e:
        check("orthonormal" in str(e), "subspace_overlap: non-orthonormal rows refused", str(e))


def bad_input(j, c, base):
    P = c.P
    for what, extra, key in [("--k 0", ["--k", "0"], "--k"), ("--k > P", ["--k", str(P + 1)], "exceeds"),
                             ("--k = P", ["--k", str(P)], "bulk"), ("unknown op", ["--k", "2", "--ops", "H,X"], "X"),
                             ("op twice", ["--k", "2", "--ops", "I,I"], "twice")]:
        expect_error(what, ["eigenspace", *base, *extra, "--out", j("bad")], key, codes=(2,))
        check(not os.path.exists(j("bad")), "bad input %s: nothing written" % what)


def batched(j, c, base, s):
    r = cli("eigenspace", *base, "--k", str(K), "--ops", "I", "--batch", "3", "--out", j("ob"))
    check(r.returncode == 0, "eigenspace --batch 3", r.stderr)
    sb = json.load(open(j("ob", "summary.json")))
    an = abs(np.array(s["I"]["eigenvalues"])).max()
    # streamed products equal up to summation order; Lanczos to 1e-10
    check(np.allclose(sb["I"]["eigenvalues"], s["I"]["eigenvalues"], rtol=0, atol=1e-10 * an),
          "eigenspace --batch 3: eigenvalues of I == unbatched")
    check(sorted(os.listdir(j("ob"))) == sorted(["vecs_I.npy", "evals.csv", "overlap.csv", "angles.csv", "bulk_I.csv",
                                                 "summary.json"]), "--ops I: its files only")


def params(j, c, base):
    """--params W1,b2: the block's top eigenpairs and overlap against the dense sub-block."""
    r = cli("eigenspace", *base, "--k", "2", "--ops", "H,I", "--params", "W1,b2", "--out", j("op"))
    if not check(r.returncode == 0, "eigenspace --params W1,b2", r.stderr):
        return
    net = nh.Net.load(j("m"))
    idx = np.concatenate([np.arange(off, off + n) for name, off, n in net.tensors if name in ("W1", "b2")])
    s = json.load(open(j("op", "summary.json")))
    check(s["params"] == ["W1", "b2"] and s["dim"] == len(idx) and s["P"] == len(idx), "--params: summary dim P_B",
          str({k: s.get(k) for k in ("params", "dim", "P")}))
    D = c.dense()
    g = c.grad()[idx]
    for op in "HI":
        A = D[op][np.ix_(idx, idx)]
        an = np.abs(np.linalg.eigvalsh(0.5 * (A + A.T))).max()
        w, Q = dense_top(A, 3, "LA")
        V = np.load(j("op", "vecs_%s.npy" % op))
        check(V.shape == (2, len(idx)), "--params %s: vecs shape (k, P_B)" % op, str(V.shape))
        # Lanczos stops at residual 1e-10 ||A_BB||: eigenvalue errors are below it.
        check(np.abs(np.array(s[op]["eigenvalues"]) - w[:2]).max() <= 1e-10 * an,
              "--params %s: eigenvalues == the dense sub-block's (1e-10)" % op, "%s vs %s" % (s[op]["eigenvalues"], w[:2]))
        want = np.linalg.norm(Q[:2] @ g) / np.linalg.norm(g)
        got = float([r for r in read_csv(j("op", "overlap.csv")) if r["op"] == op and r["i"] == "2"][0]["overlap_top_i"])
        # the saved span is within ~1e-8 of the dense one when the gap is not tiny
        check(abs(got - want) <= 1e-7, "--params %s: ||P_k g_B||/||g_B|| == dense block projection" % op,
              "%r vs %r" % (got, want))
    expect_error("--params unknown", ["eigenspace", *base, "--k", "2", "--params", "W9", "--out", j("bad")], "W9",
                 codes=(2,))


def main():
    for tag, near, loss in [("mse", False, "mse"), ("near-min", True, "mse"), ("ce", False, "ce")]:
        with tempfile.TemporaryDirectory() as t:
            j, c, base = setup(t, near, loss)
            s = section(tag + " contract", contract, j, c, base, tag)
            if s is None:
                continue
            section(tag + " eigenpairs", eigenpairs, j, c, s, tag)
            section(tag + " overlap", overlap, j, c, s, tag)
            section(tag + " angles", angles, j, c, s, tag)
            section(tag + " traces", traces, j, c, s, tag)
            section(tag + " densities", densities, j, c, s, tag, near)
            if tag == "mse":
                section("python api", python_api, j, c, s, tag)
                section("bad input", bad_input, j, c, base)
                section("batched", batched, j, c, base, s)
                section("params", params, j, c, base)
    finish()


main()
