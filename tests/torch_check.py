#!/usr/bin/python3
"""Cross-check of ntkhess against PyTorch autograd (float64) on the same weights.

For each configuration: `ntkhess init` writes a model directory; this script
loads the same W_l, b_l with NumPy, builds the network of the paper's Sec. 2
in torch and computes, with autograd only, the outputs Y, the gradient, H v
(double backward), I v = J^T HC J v (forward-over-reverse J v, then a VJP),
S v = H v - I v, the NTK Gram J J^T (per-output Jacobians) and G[i][k] =
Tr Hess_theta f_k(x_i) (full per-sample Hessians, small P only).  ntkhess's
`curvature --hvp` outputs must agree to 1e-10 relative (norm-wise): both are
float64 evaluations of the same arithmetic up to summation order, so the
expected difference is ~1e-15 times the condition of the sums; 1e-10 is the
contract the issue states, and the script also prints the worst observed
error so regressions far below the bar are visible.

A second part trains a network in torch by plain gradient descent, saves it
with NumPy (as a PyTorch user would) and checks that ntkhess loads it and
agrees at the trained weights, and that `ntkhess train` reproduces torch's
gradient-descent trajectory (same weights to 1e-10 relative after K steps).

Prints PASS/FAIL lines and a closing 'N passed, N failed'.
"""
import json
import math
import os
import sys
import tempfile

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, rel, cli, finish, BIN  # noqa: E402
MU, SD = 0.8060591833474398, 0.5210705343814393
RTOL = 1e-10


def act_fn(name):
    import torch.nn.functional as F
    return {
        "softplus": lambda z: F.softplus(z, beta=1.0, threshold=40.0),
        "nsoftplus": lambda z: (F.softplus(z, beta=1.0, threshold=40.0) - MU) / SD,
        "tanh": torch.tanh,
        "arctan": torch.atan,
        "erf": torch.erf,
        "sigmoid": torch.sigmoid,
        "gelu": lambda z: F.gelu(z, approximate="none"),
        "sin": torch.sin,
        "identity": lambda z: z,
    }[name]


def load_model(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    L = len(cfg["widths"]) - 1
    Ws = [np.load(os.path.join(d, f"W{l}.npy")) for l in range(L)]
    bs = [np.load(os.path.join(d, f"b{l}.npy")) for l in range(L)]
    return cfg, Ws, bs


def flat(Ws, bs):
    return np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(Ws, bs)])


def make_forward(cfg):
    w = cfg["widths"]
    L = len(w) - 1
    beta = cfg.get("beta", 0.1)
    sig = act_fn(cfg["act"])
    cout = 1.0 / math.sqrt(w[L - 1]) if cfg.get("param", "ntk") == "mf" else 1.0
    shapes = []
    for l in range(L):
        shapes.append((w[l + 1], w[l]))
        shapes.append((w[l + 1],))

    def forward(theta, X):
        off = 0
        a = X
        for l in range(L):
            nW = w[l + 1] * w[l]
            W = theta[off:off + nW].reshape(w[l + 1], w[l])
            off += nW
            b = theta[off:off + w[l + 1]]
            off += w[l + 1]
            z = a @ W.T / math.sqrt(w[l]) + beta * b
            a = sig(z) if l + 1 < L else z
        return cout * a

    return forward


def loss_fn(name, Y, T):
    N = Y.shape[0]
    if name == "mse":
        return 0.5 * ((Y - T) ** 2).sum() / N
    if name == "bce":
        return torch.nn.functional.softplus(-T * Y).sum() / N
    return torch.nn.functional.cross_entropy(Y, T.long().reshape(-1), reduction="sum") / N


def run(*args):
    r = cli(*args)
    if r.returncode != 0:
        raise RuntimeError(f"ntkhess {' '.join(map(str, args))} failed: {r.stderr.strip()}")
    return r


def torch_truth(cfg, theta_np, X_np, T_np, loss, v_np, with_G):
    fwd = make_forward(cfg)
    theta = torch.tensor(theta_np, requires_grad=True)
    X = torch.tensor(X_np)
    T = torch.tensor(T_np)
    v = torch.tensor(v_np)
    Y = fwd(theta, X)
    C = loss_fn(loss, Y, T)
    (g,) = torch.autograd.grad(C, theta, create_graph=True)
    (Hv,) = torch.autograd.grad(g, theta, grad_outputs=v)
    # I v = J^T HC (J v): J v by forward-over-reverse, HC (J v) by the Hessian of C in Y.
    Jv = torch.autograd.functional.jvp(lambda th: fwd(th, X), theta.detach(), v)[1]
    Yd = Y.detach().requires_grad_(True)
    (gy,) = torch.autograd.grad(loss_fn(loss, Yd, T), Yd, create_graph=True)
    (HCJv,) = torch.autograd.grad(gy, Yd, grad_outputs=Jv)
    (Iv,) = torch.autograd.grad(fwd(theta, X), theta, grad_outputs=HCJv)
    Sv = Hv - Iv
    J = torch.autograd.functional.jacobian(lambda th: fwd(th, X).reshape(-1), theta.detach())
    K = J @ J.T
    out = dict(Y=Y.detach().numpy(), grad=g.detach().numpy(), Hv=Hv.numpy(), Iv=Iv.detach().numpy(),
               Sv=Sv.detach().numpy(), ntk=K.numpy())
    if with_G:
        N, m = Y.shape
        G = np.zeros((N, m))
        for i in range(N):
            for k in range(m):
                Hf = torch.autograd.functional.hessian(lambda th: fwd(th, X[i:i + 1])[0, k], theta.detach())
                G[i, k] = torch.diagonal(Hf).sum().item()
        out["G"] = G
    return out


def compare(tag, tmp, cfg, X, T, loss, v, with_G=True):
    d = os.path.join(tmp, "model")
    np.save(os.path.join(tmp, "X.npy"), X)
    np.save(os.path.join(tmp, "T.npy"), T)
    np.save(os.path.join(tmp, "v.npy"), v)
    out = os.path.join(tmp, "out")
    run("curvature", "--model", d, "--data", os.path.join(tmp, "X.npy"), "--targets", os.path.join(tmp, "T.npy"),
        "--loss", loss, "--hvp", os.path.join(tmp, "v.npy"), "--out", out)
    cfg2, Ws, bs = load_model(d)
    truth = torch_truth(cfg2, flat(Ws, bs), X, T, loss, v, with_G)
    for key in ["Y", "grad", "Hv", "Iv", "Sv", "ntk"] + (["G"] if with_G else []):
        got = np.load(os.path.join(out, f"{key}.npy"))
        e = rel(got, truth[key])
        check(got.size == truth[key].size and e <= RTOL, f"{tag}: {key} vs torch", f"(rel err {e:.3g}, tol {RTOL})")
    s = json.load(open(os.path.join(out, "summary.json")))
    N = X.shape[0]
    with torch.no_grad():
        pass
    return truth, s


def main():
    if not os.path.exists(BIN):
        check(False, f"{BIN} built")
        finish()
    rng = np.random.default_rng(2024)
    configs = [
        ("softplus mse L3", [5, 13, 11, 1], "softplus", "mse", 0.1, "ntk"),
        ("nsoftplus mse L3", [4, 9, 7, 1], "nsoftplus", "mse", 0.1, "ntk"),
        ("tanh bce L2", [3, 10, 2], "tanh", "bce", 0.3, "ntk"),
        ("arctan ce L4", [3, 6, 7, 5, 3], "arctan", "ce", 0.1, "ntk"),
        ("erf mse L1", [4, 2], "erf", "mse", 0.1, "ntk"),
        ("gelu mse L4 mf", [3, 6, 5, 6, 2], "gelu", "mse", 0.2, "mf"),
        ("sigmoid bce L3", [3, 5, 6, 1], "sigmoid", "bce", 0.1, "ntk"),
        ("sin ce L3", [2, 6, 5, 3], "sin", "ce", 0.1, "ntk"),
    ]
    for tag, widths, act, loss, beta, param in configs:
        with tempfile.TemporaryDirectory() as tmp:
            run("init", "--widths", ",".join(map(str, widths)), "--act", act, "--beta", beta, "--param", param,
                "--seed", 17, "--out", os.path.join(tmp, "model"))
            N = 6
            X = rng.standard_normal((N, widths[0]))
            m = widths[-1]
            if loss == "mse":
                T = rng.standard_normal((N, m))
            elif loss == "bce":
                T = np.where(rng.standard_normal((N, m)) > 0, 1.0, -1.0)
            else:
                T = rng.integers(0, m, size=N).astype(np.int64)
            cfg, Ws, bs = load_model(os.path.join(tmp, "model"))
            v = rng.standard_normal(flat(Ws, bs).size)
            compare(tag, tmp, cfg, X, T, loss, v)

    # A network trained in torch and saved with NumPy, then loaded by ntkhess.
    with tempfile.TemporaryDirectory() as tmp:
        widths, act, loss, beta = [6, 20, 16, 1], "softplus", "mse", 0.1
        cfg = {"widths": widths, "act": act, "beta": beta, "param": "ntk"}
        fwd = make_forward(cfg)
        P = sum((widths[l] + 1) * widths[l + 1] for l in range(len(widths) - 1))
        theta = torch.tensor(np.random.default_rng(5).standard_normal(P), requires_grad=True)
        X = rng.standard_normal((12, widths[0]))
        T = rng.standard_normal((12, 1))
        Xt, Tt = torch.tensor(X), torch.tensor(T)
        theta0 = theta.detach().numpy().copy()
        lr, K = 0.5, 25
        for _ in range(K):
            C = loss_fn(loss, fwd(theta, Xt), Tt)
            (g,) = torch.autograd.grad(C, theta)
            with torch.no_grad():
                theta -= lr * g
        d = os.path.join(tmp, "model")
        os.makedirs(d)
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        off = 0
        th = theta.detach().numpy()
        for l in range(len(widths) - 1):
            nW = widths[l + 1] * widths[l]
            np.save(os.path.join(d, f"W{l}.npy"), th[off:off + nW].reshape(widths[l + 1], widths[l]))
            off += nW
            np.save(os.path.join(d, f"b{l}.npy"), th[off:off + widths[l + 1]])
            off += widths[l + 1]
        v = rng.standard_normal(P)
        compare("torch-trained softplus mse", tmp, cfg, X, T, loss, v)
        # ntkhess train from the same start reproduces torch's trajectory.
        d0 = os.path.join(tmp, "model0")
        os.makedirs(d0)
        json.dump(cfg, open(os.path.join(d0, "config.json"), "w"))
        off = 0
        for l in range(len(widths) - 1):
            nW = widths[l + 1] * widths[l]
            np.save(os.path.join(d0, f"W{l}.npy"), theta0[off:off + nW].reshape(widths[l + 1], widths[l]))
            off += nW
            np.save(os.path.join(d0, f"b{l}.npy"), theta0[off:off + widths[l + 1]])
            off += widths[l + 1]
        run("train", "--model", d0, "--data", os.path.join(tmp, "X.npy"), "--targets", os.path.join(tmp, "T.npy"),
            "--lr", lr, "--steps", K, "--out", os.path.join(tmp, "trained"))
        _, Ws, bs = load_model(os.path.join(tmp, "trained"))
        e = rel(flat(Ws, bs) - theta0, th - theta0)
        check(e <= RTOL, "ntkhess train == torch gradient descent (25 steps)", f"(rel err of the update {e:.3g})")
        log = np.genfromtxt(os.path.join(tmp, "trained", "train.csv"), delimiter=",", names=True)
        check(abs(log["t"][-1] - K * lr) < 1e-12, "train.csv: t = k * eta", f"({log['t'][-1]})")
    finish()


if __name__ == "__main__":
    sys.exit(main())
