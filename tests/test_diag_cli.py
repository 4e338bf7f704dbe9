"""curvature --diag (exact, hutchinson, auto) and Curvature.diag (Python):
the written diagonals against the diagonals of the dense H, I, S of the same
run (--dense: H e_p products and J^T HC J; tolerance 1e-12 relative, both
sides double sums of the same order of magnitude, observed ~1e-16),
--batch 3 against unbatched (same sums in another order, 1e-12), the
Hutchinson files (SE files, coverage within 4 SE, the summary's method and
cost), the all-or-nothing output on a bad --diag, and the Python binding
against the CLI's files (same library, same sums: 1e-13) and against
PyTorch's Hessian diagonal of the same network (torch.autograd.functional.
hessian in float64: 1e-10 relative, two exact computations in double)."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, close, finish, section, cli, expect_error, import_binding, LIB, asan_reexec  # noqa: E402

asan_reexec(LIB)

import numpy as np  # noqa: E402


def setup(t, widths, act, loss):
    j = lambda *p: os.path.join(t, *p)
    r = cli("init", "--widths", widths, "--act", act, "--seed", "2", "--out", j("m"))
    check(r.returncode == 0, "init %s" % widths, r.stderr)
    w = [int(x) for x in widths.split(",")]
    rng = np.random.default_rng(1)
    np.save(j("X.npy"), rng.standard_normal((11, w[0])))
    if loss == "ce":
        np.save(j("T.npy"), rng.integers(0, w[-1], 11).astype(np.float64))
    else:
        np.save(j("T.npy"), rng.standard_normal((11, w[-1])))
    return j, ["--model", j("m"), "--data", j("X.npy"), "--targets", j("T.npy"), "--loss", loss]


def exact_vs_dense(t, widths, act, loss):
    j, base = setup(t, widths, act, loss)
    r = cli("curvature", *base, "--out", j("d"), "--dense", "--diag", "exact", "--no-ntk")
    check(r.returncode == 0, "curvature --dense --diag exact (%s)" % widths, r.stderr)
    for op in "HIS":
        close(np.load(j("d", "diag%s.npy" % op)), np.diag(np.load(j("d", "%s.npy" % op))),
              "%s %s: diag%s.npy = diag of the dense %s" % (widths, loss, op, op), 1e-12)
        check(not os.path.exists(j("d", "diag%s_se.npy" % op)), "exact: no diag%s_se.npy" % op)
    s = json.load(open(j("d", "summary.json")))["diag"]
    check(s["method"] == "exact" and s["requested"] == "exact" and s["probes"] == 0 and s["exact_cost_hvp"] > 0,
          "summary.json diag (exact)", str(s))
    r = cli("curvature", *base, "--out", j("b"), "--diag", "exact", "--no-ntk", "--batch", "3")
    check(r.returncode == 0, "curvature --diag exact --batch 3", r.stderr)
    for op in "HIS":
        close(np.load(j("b", "diag%s.npy" % op)), np.load(j("d", "diag%s.npy" % op)),
              "%s --batch 3: diag%s = unbatched" % (widths, op), 1e-12)
    return j, base


def hutchinson_auto(t):
    j, base = exact_vs_dense(t, "4,6,5,3", "tanh", "ce")
    r = cli("curvature", *base, "--out", j("h"), "--diag", "hutchinson", "--diag-probes", "300", "--diag-seed", "4",
            "--no-ntk")
    check(r.returncode == 0, "curvature --diag hutchinson", r.stderr)
    s = json.load(open(j("h", "summary.json")))["diag"]
    check(s["method"] == "hutchinson" and s["probes"] == 300 and s["products"] == 300 and s["seed"] == 4,
          "summary.json diag (hutchinson)", str(s))
    for op in "HIS":
        est, se = np.load(j("h", "diag%s.npy" % op)), np.load(j("h", "diag%s_se.npy" % op))
        ex = np.load(j("d", "diag%s.npy" % op))
        check(est.shape == se.shape == ex.shape == (ex.size,), "diag%s_se.npy shape" % op)
        # rule: >= 95% of entries within 4 SE (a normal mean misses 4 SE with probability 6e-5)
        cov = np.mean(np.abs(est - ex) <= 4 * se + 1e-12 * np.abs(ex).max())
        check(cov >= 0.95, "hutchinson diag%s: %.3f of entries within 4 SE" % (op, cov))
    r = cli("curvature", *base, "--out", j("a"), "--diag", "auto", "--no-ntk")
    s = json.load(open(j("a", "summary.json")))["diag"]
    check(r.returncode == 0 and s["method"] == "exact" and s["requested"] == "auto" and s["max_cost_hvp"] == 50,
          "--diag auto on a small net: exact", str(s))
    close(np.load(j("a", "diagH.npy")), np.load(j("d", "diagH.npy")), "--diag auto = exact", 0)
    expect_error("--diag nonsense", ["curvature", *base, "--out", j("x"), "--diag", "nonsense"], "--diag", codes=(2,))
    check(not os.path.exists(j("x")), "bad --diag: no output folder")
    return j


def python_binding(j):
    nh = import_binding()
    net = nh.Net.load(j("m"))
    X, T = np.load(j("X.npy")), np.load(j("T.npy"))
    c = nh.Curvature(net, X, T, loss="ce")
    for op in "HIS":
        d, se = c.diag(op, method="exact")
        close(d, np.load(j("d", "diag%s.npy" % op)), "Curvature.diag(%s) = CLI file" % op, 1e-13)
        check(np.all(se == 0) and c.diag_info["method"] == "exact", "Curvature.diag(%s): se 0, method" % op)
    D, SE = c.diag("all", method="hutchinson", probes=300, seed=4)
    for k, op in enumerate("HIS"):
        close(D[k], np.load(j("h", "diag%s.npy" % op)), "Curvature.diag(all) hutchinson %s = CLI" % op, 1e-13)
        close(SE[k], np.load(j("h", "diag%s_se.npy" % op)), "Curvature.diag(all) SE %s = CLI" % op, 1e-13)
    check(c.diag_info["method"] == "hutchinson" and c.diag_info["nproducts"] == 300, "diag_info", str(c.diag_info))
    try:
        c.diag("H", method="nope")
        check(False, "Curvature.diag: bad method raises")
    except nh.NtkhessError:
        check(True, "Curvature.diag: bad method raises")
    try:
        import torch
    except ImportError:
        check(False, "torch import (needed for the independent Hessian diagonal)")
        return
    # The same network in torch (NTK parametrization, tanh, beta from the model), Hessian of the CE loss.
    torch.set_default_dtype(torch.float64)
    theta = torch.tensor(net.params)
    w = [4, 6, 5, 3]
    beta = net.beta
    Xt, lab = torch.tensor(X), torch.tensor(T).long()

    def loss_fn(th):
        a, off = Xt, 0
        for l in range(3):
            W = th[off:off + w[l] * w[l + 1]].reshape(w[l + 1], w[l]); off += w[l] * w[l + 1]
            b = th[off:off + w[l + 1]]; off += w[l + 1]
            z = a @ W.T / np.sqrt(w[l]) + beta * b
            a = torch.tanh(z) if l < 2 else z
        return torch.nn.functional.cross_entropy(a, lab)

    Ht = torch.autograd.functional.hessian(loss_fn, theta).numpy()
    close(c.diag("H", method="exact")[0], np.diag(Ht), "Curvature.diag(H) = torch Hessian diagonal", 1e-10)


def main():
    with tempfile.TemporaryDirectory() as t:
        j = section("hutchinson, auto, errors", hutchinson_auto, t)
        if j:
            section("python binding", python_binding, j)
    for widths, act, loss in [("3,5,4,6,2", "softplus", "mse"), ("3,4,5,6,4,3", "silu", "ce"),
                              ("4,5,3", "relu", "mse")]:
        with tempfile.TemporaryDirectory() as t:
            section("exact vs dense %s" % widths, exact_vs_dense, t, widths, act, loss)
    finish()


if __name__ == "__main__":
    main()
