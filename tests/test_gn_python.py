#!/usr/bin/python3
"""Curvature.gn_delta / gn_step (Python, nh_curv_gn_*): against numpy on the
dense Jacobian.  delta (mu = 0) = -pinv(J) r with r = HC^-1 dC/dY per sample
(the min-norm solution: J J^T has full rank when P > N n_L); mu > 0 =
-J^T (J J^T + mu' I)^-1 r with mu' = mu Tr(J J^T) / (N n_L); a selection gives
the selected columns' step; gn_step moves theta by delta when the loss falls
and restores it bit for bit when it would rise; the softmax cross-entropy is
refused.  Tolerance 1e-9 relative: numpy's SVD/solve against LAPACK's
Cholesky on a K with condition number <= ~1e4 here.  Prints 'N passed, N failed'."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import LIB, asan_reexec, check, close, finish, import_binding, section  # noqa: E402

asan_reexec(LIB)
import numpy as np  # noqa: E402

nh = import_binding()


def residual(c):
    dC, HC = c.dloss(), c.hloss()
    return np.concatenate([np.linalg.solve(HC[i], dC[i]) for i in range(c.N)])


def case(loss, nout, sel=None):
    rng = np.random.default_rng(5)
    n = 6
    X = rng.standard_normal((n, 3))
    T = rng.standard_normal((n, nout)) if loss == "mse" else np.where(rng.random((n, nout)) < 0.5, -1.0, 1.0)
    net = nh.Net([3, 10, 10, nout], act="softplus", seed=3)
    c = nh.Curvature(net, X, T, loss=loss)
    if sel:
        c.select(sel)
    tag = "%s nout %d%s" % (loss, nout, " select " + ",".join(sel) if sel else "")
    J, r = c.jacobian(), residual(c)
    check(J.shape == (n * nout, c.P), tag + ": Jacobian shape")
    close(c.gn_delta(0.0), -np.linalg.pinv(J) @ r, tag + ": delta(mu=0) = -pinv(J) r (min norm)", tol=1e-9)
    K = J @ J.T
    mu = 0.3 * np.trace(K) / (n * nout)
    close(c.gn_delta(0.3), -J.T @ np.linalg.solve(K + mu * np.eye(n * nout), r),
          tag + ": delta(mu=0.3) = -J^T (K + mu' I)^-1 r", tol=1e-9)
    # the undamped BCE step (a Newton step in the outputs) overshoots: damp it
    smu = 1e-3 if loss == "mse" else 10.0
    th0, l0, d = net.params.copy(), c.loss, c.gn_delta(smu)
    info = c.gn_step(smu)
    check(info["accepted"] and info["loss"] < l0 and info["loss0"] == l0, tag + ": gn_step accepted, loss falls",
          "(%r)" % info)
    full = np.zeros_like(th0)
    if sel:
        idx = np.concatenate([np.arange(o, o + z) for name, o, z in net.tensors if name in sel])
        full[idx] = d
    else:
        full = d
    close(net.params, th0 + full, tag + ": theta moved by delta", tol=1e-12)
    close(info["norm"], np.linalg.norm(d), tag + ": info norm = ||delta||", tol=1e-12)


def rejected():
    """Undamped steps on a small saturating tanh net with large targets: the
    linear model overshoots within a few steps, and the rejected step must
    leave theta as it was, bit for bit."""
    rng = np.random.default_rng(8)
    X = 3 * rng.standard_normal((8, 2))
    T = 50 * rng.standard_normal((8, 1))
    net = nh.Net([2, 6, 1], act="tanh", seed=2)
    c = nh.Curvature(net, X, T)
    th0 = net.params.copy()
    seen = False
    for _ in range(40):
        info = c.gn_step(0.0)
        if not info["accepted"]:
            seen = True
            check(info["loss"] == info["loss0"] and info["tried"] > info["loss0"],
                  "rejected step: loss unchanged, tried loss above it", "(%r)" % info)
            check(np.array_equal(net.params, th0), "rejected step: theta restored bit for bit")
            break
        th0 = net.params.copy()
    check(seen, "a Gauss-Newton step of a saturating tanh net is rejected within 40 tries")


def refusals():
    X = np.random.default_rng(1).standard_normal((5, 3))
    T = np.array([0, 1, 2, 1, 0], float)
    c = nh.Curvature(nh.Net([3, 8, 3], seed=1), X, T, loss="ce")
    try:
        c.gn_delta(0.0)
        check(False, "softmax cross-entropy refused")
    except nh.NtkhessError as e:
        check("positive definite" in str(e), "softmax cross-entropy refused with the reason", str(e))
    # the review's case: a confident identity net on one sample, where the
    # pivot test alone had accepted the singular softmax block (|delta| 4.5e6)
    rng = np.random.default_rng(4)
    for s in range(12):
        Xc = 8 * rng.standard_normal((1, 3))
        cc = nh.Curvature(nh.Net([3, 8, 3], act="identity", seed=s), Xc, np.array([float(s % 3)]), loss="ce")
        try:
            cc.gn_delta(0.0)
            check(False, "confident softmax CE (seed %d) refused" % s)
            break
        except nh.NtkhessError as e:
            if "softmax" not in str(e):
                check(False, "confident softmax CE (seed %d) refused by kind" % s, str(e))
                break
    else:
        check(True, "confident softmax CE refused by kind (12 single-sample identity nets)")
    c2 = nh.Curvature(nh.Net([3, 8, 1], seed=1), X, T[:, None] * 0.1)
    try:
        c2.gn_step(-1.0)
        check(False, "mu < 0 refused")
    except nh.NtkhessError:
        check(True, "mu < 0 refused")


def main():
    section("mse, 1 output", case, "mse", 1)
    section("mse, 2 outputs", case, "mse", 2)
    section("bce, 2 outputs", case, "bce", 2)
    section("mse, selection", case, "mse", 1, ["W1", "b2"])
    section("rejected step", rejected)
    section("refusals", refusals)
    finish()


if __name__ == "__main__":
    main()
