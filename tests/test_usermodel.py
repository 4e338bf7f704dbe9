"""The standard parametrization through the CLI against PyTorch on the model's own parameters.

`ntkhess init --param standard` (mixed activations, a bias-free layer) writes a model folder;
the same weights go into a torch nn.Sequential (Linear, SiLU, Linear(bias=False),
Softplus(beta=2), Linear).  Then `ntkhess curvature` and `ntkhess spectrum` must give torch's
loss, gradient (in the order of model.parameters()), H v, I v (Gauss-Newton by jvp/vjp), dense
H and its top eigenvalues, for MSE (1/(2N) sum of squares), cross-entropy (torch's mean) and
BCE (ntkhess's sum over outputs of log(1 + exp(-s y)), mean over samples).
Tolerances: 1e-10 relative (float64 on both sides; the sums differ only in order).
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, close, finish, section, cli  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn.utils import stateless  # noqa: E402

torch.set_default_dtype(torch.float64)
TMP = tempfile.mkdtemp(prefix="nh_test_usermodel_")
WIDTHS = [6, 8, 7, 3]


def torch_model(d):
    m = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.SiLU(), torch.nn.Linear(8, 7, bias=False),
                            torch.nn.Softplus(beta=2), torch.nn.Linear(7, 3))
    with torch.no_grad():
        m[0].weight.copy_(torch.from_numpy(np.load(os.path.join(d, "W0.npy"))))
        m[0].bias.copy_(torch.from_numpy(np.load(os.path.join(d, "b0.npy"))))
        m[2].weight.copy_(torch.from_numpy(np.load(os.path.join(d, "W1.npy"))))
        m[4].weight.copy_(torch.from_numpy(np.load(os.path.join(d, "W2.npy"))))
        m[4].bias.copy_(torch.from_numpy(np.load(os.path.join(d, "b2.npy"))))
    return m


def torch_loss(loss, Y, T):
    if loss == "mse":
        return 0.5 * ((Y - T) ** 2).sum() / Y.shape[0]
    if loss == "ce":
        return torch.nn.functional.cross_entropy(Y, T.long())
    return torch.nn.functional.softplus(-T * Y).sum() / Y.shape[0]


def t_init():
    d = os.path.join(TMP, "model")
    r = cli("init", "--widths", ",".join(map(str, WIDTHS)), "--act", "silu,softplus:2", "--no-bias", "1",
            "--param", "standard", "--seed", "3", "--out", d)
    if not check(r.returncode == 0, "init --param standard", r.stderr):
        return None
    cfg = json.load(open(os.path.join(d, "config.json")))
    check(cfg["param"] == "standard" and cfg["act"] == ["silu", "softplus:2"] and cfg["bias"] == [True, False, True]
          and "beta" not in cfg and not os.path.exists(os.path.join(d, "b1.npy")),
          "config.json: param, act list, bias flags, no beta, no b1.npy", str(cfg))
    ok = True
    for l in range(3):
        W = np.load(os.path.join(d, "W%d.npy" % l))
        b = 1 / np.sqrt(WIDTHS[l])
        ok = ok and W.shape == (WIDTHS[l + 1], WIDTHS[l]) and W.min() >= -b and W.max() < b
    check(ok, "init: W_l in [-1/sqrt(n_l), 1/sqrt(n_l)) (PyTorch's nn.Linear default)")
    return d


def t_loss(d, loss):
    rng = np.random.default_rng(1)
    N = 10
    X = rng.standard_normal((N, 6))
    if loss == "mse":
        T = rng.standard_normal((N, 3))
    elif loss == "ce":
        T = rng.integers(0, 3, N).astype(np.float64)
    else:
        T = np.where(rng.standard_normal((N, 3)) > 0, 1.0, -1.0)
    m = torch_model(d)
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for p in m.parameters()]
    theta = torch.cat([p.detach().flatten() for p in m.parameters()])
    P = theta.numel()
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)

    def unflat(th):
        out, o = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            out[n] = th[o:o + k].reshape(s)
            o += k
        return out

    def f(th):
        return stateless.functional_call(m, unflat(th), (Xt,))

    def C(th):
        return torch_loss(loss, f(th), Tt)

    v = torch.from_numpy(rng.standard_normal(P))
    for name, arr in (("X", X), ("T", T), ("v", v.numpy())):
        np.save(os.path.join(TMP, "%s_%s.npy" % (name, loss)), arr)
    out = os.path.join(TMP, "curv_" + loss)
    r = cli("curvature", "--model", d, "--data", os.path.join(TMP, "X_%s.npy" % loss), "--targets",
            os.path.join(TMP, "T_%s.npy" % loss), "--loss", loss, "--hvp", os.path.join(TMP, "v_%s.npy" % loss),
            "--dense", "--out", out)
    if not check(r.returncode == 0, "%s: curvature" % loss, r.stderr):
        return
    summ = json.load(open(os.path.join(out, "summary.json")))
    th = theta.clone().requires_grad_(True)
    c = C(th)
    g, = torch.autograd.grad(c, th, create_graph=True)
    hv, = torch.autograd.grad(g, th, v)
    check(summ["P"] == P == 6 * 8 + 8 + 8 * 7 + 7 * 3 + 3, "%s: P = %d (no b1)" % (loss, P))
    close([summ["loss"]], [c.item()], "%s: loss == torch" % loss, 1e-12)
    close(np.load(os.path.join(out, "grad.npy")), g.detach().numpy(), "%s: grad == torch (parameters() order)" % loss, 1e-10)
    close(np.load(os.path.join(out, "Hv.npy")), hv.numpy(), "%s: H v == torch double backward" % loss, 1e-10)
    # Gauss-Newton I v = J^T HC J v: jvp through f, the loss Hessian in Y, vjp back.
    Y0, jv = torch.autograd.functional.jvp(f, (theta,), (v,))
    Yv = Y0.detach().requires_grad_(True)
    gy, = torch.autograd.grad(torch_loss(loss, Yv, Tt), Yv, create_graph=True)
    hcjv, = torch.autograd.grad(gy, Yv, jv)
    _, iv = torch.autograd.functional.vjp(f, (theta,), hcjv)
    close(np.load(os.path.join(out, "Iv.npy")), iv[0].numpy(), "%s: I v == torch J^T HC J v" % loss, 1e-10)
    H = torch.autograd.functional.hessian(C, theta).numpy()
    close(np.load(os.path.join(out, "H.npy")), H, "%s: dense H == torch Hessian" % loss, 1e-10)
    ev = np.linalg.eigvalsh(H)
    close([np.trace(np.load(os.path.join(out, "H.npy")))], [np.trace(H)], "%s: Tr H == torch" % loss, 1e-10)
    r = cli("spectrum", "--model", d, "--data", os.path.join(TMP, "X_%s.npy" % loss), "--targets",
            os.path.join(TMP, "T_%s.npy" % loss), "--loss", loss, "--of", "H", "--top", "5", "--json")
    if check(r.returncode == 0, "%s: spectrum --top 5" % loss, r.stderr):
        got = sorted(json.loads(r.stdout)["eigenvalues"], reverse=True)
        close(got, ev[::-1][:5], "%s: top-5 eigenvalues of H == numpy on the torch Hessian" % loss, 1e-10)


def t_train(d):
    """3 steps of `ntkhess train` == 3 steps of plain GD in torch on the model's own loss."""
    X, T = os.path.join(TMP, "X_mse.npy"), os.path.join(TMP, "T_mse.npy")
    out = os.path.join(TMP, "trained")
    r = cli("train", "--model", d, "--data", X, "--targets", T, "--loss", "mse", "--lr", "0.3", "--steps", "3",
            "--out", out)
    if not check(r.returncode == 0, "train --param standard model", r.stderr):
        return
    m = torch_model(d)
    Xt, Tt = torch.from_numpy(np.load(X)), torch.from_numpy(np.load(T))
    for _ in range(3):
        m.zero_grad()
        torch_loss("mse", m(Xt), Tt).backward()
        with torch.no_grad():
            for p in m.parameters():
                p -= 0.3 * p.grad
    got = np.concatenate([np.load(os.path.join(out, f)).ravel() for f in ("W0.npy", "b0.npy", "W1.npy", "W2.npy", "b2.npy")])
    want = torch.cat([p.detach().flatten() for p in m.parameters()]).numpy()
    # Rounding of 3 steps of the same arithmetic in another order.
    close(got, want, "train: 3 GD steps == torch SGD on the model's parameters", 1e-12)


d = section("init", t_init)
if d:
    for loss in ("mse", "ce", "bce"):
        section("loss " + loss, t_loss, d, loss)
    section("train", t_train, d)
shutil.rmtree(TMP, ignore_errors=True)
finish()
