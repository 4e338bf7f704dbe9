#!/usr/bin/python3
"""Curvature.sharpness (Python, nh_sharp_record): the records equal the CLI's
`ntkhess sharpness` CSV bit for bit (same model, data, batch, threads), the
lam columns equal dense eigenvalues at every record, and a model imported
from PyTorch (standard parametrization) gives torch's own Hessian
eigenvalues along torch's own GD.  Prints 'N passed, N failed'."""
import csv
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import LIB, asan_reexec, check, cli, close, finish, import_binding, section  # noqa: E402

asan_reexec(LIB)
import numpy as np  # noqa: E402

nh, ti = import_binding(with_torch=True)
import torch  # noqa: E402
import warnings  # noqa: E402

warnings.simplefilter("ignore", ti.TorchImportWarning)  # notes on the import: tested in test_torch_user.py
nh.set_threads(1)  # the CLI runs use --threads 1: the same BLAS threading, the same bits


def csv_cols(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def setup(t, name, widths, act, loss, n, nout, seed):
    d = os.path.join(t, name)
    r = cli("data", "sphere", "--n", n, "--dim", widths.split(",")[0], "--seed", seed, "--out", d)
    check(r.returncode == 0, name + ": data", r.stderr)
    X = np.load(os.path.join(d, "X.npy"))
    y = np.load(os.path.join(d, "Y.npy")).ravel()
    T = np.stack([np.sin((k + 1) * y + k) for k in range(nout)], 1) if loss == "mse" else \
        np.argmax(X[:, :nout], 1).astype(np.float64)
    np.save(os.path.join(d, "T.npy"), T)
    r = cli("init", "--widths", widths, "--act", act, "--seed", seed, "--out", os.path.join(d, "m"))
    check(r.returncode == 0, name + ": init", r.stderr)
    return d, X, T


def cli_equal(t, name, widths, act, loss, nout, batch, top, cold=False):
    """Python records == the CLI's CSV, every column, bit for bit (%.17g
    round-trips a double, so parsing the CSV gives the same bits)."""
    d, X, T = setup(t, name, widths, act, loss, 30, nout, 4)
    out = os.path.join(d, "s.csv")
    extra = ["--cold"] if cold else []
    r = cli("sharpness", "--model", os.path.join(d, "m"), "--data", os.path.join(d, "X.npy"), "--targets",
            os.path.join(d, "T.npy"), "--loss", loss, "--lr", 0.7, "--steps", 9, "--every", 2, "--top", top,
            "--batch", batch, "--threads", 1, "--out", out, *extra)
    check(r.returncode == 0, name + ": CLI sharpness", r.stderr)
    want = csv_cols(out)
    net = nh.Net.load(os.path.join(d, "m"))
    c = nh.Curvature(net, X, T, loss, batch=batch)
    got = c.sharpness(0.7, 9, every=2, top=top, cold=cold)
    check(got["diverged_at"] is None, name + ": no divergence")
    check(sorted(want) == sorted(k for k in got if k != "diverged_at"), name + ": the CLI's columns",
          (sorted(want), sorted(got)))
    check(list(got["step"]) == [0, 2, 4, 6, 8, 9], name + ": records at 0, 2, 4, 6, 8 and the last step")
    bad = [k for k in want if k in got and not np.array_equal(want[k], got[k], equal_nan=True)]
    check(not bad, name + ": every column == the CLI's bit for bit", bad)


def dense_truth(t):
    """lam_H, lam_I, lam_S (largest |.|, signed), the top-3 lists and
    uIu + uSu against numpy on the dense matrices at each record, reached by
    an independent gd_step loop on a clone."""
    d, X, T = setup(t, "dense", "4,7,5,2", "tanh", "mse", 14, 2, 6)
    net = nh.Net.load(os.path.join(d, "m"))
    twin = net.clone()
    rec = nh.Curvature(net, X, T, "mse").sharpness(0.5, 6, every=3, top=3, tol=1e-12)
    c, done = nh.Curvature(twin, X, T, "mse"), 0
    for i, k in enumerate(rec["step"]):
        while done < k:
            c.gd_step(0.5)
            done += 1
        D = c.dense("HIS")
        eH, eI, eS = (np.linalg.eigvalsh(D[m]) for m in "HIS")
        eS = eS[np.argsort(-np.abs(eS))]
        # Ritz residual <= 1e-12 |lam|: eigenvalue errors ~1e-12 relative or less; 1e-9 for rounding in both
        tol = 1e-9
        close(rec["lam_H"][i], eH[-1], "dense: step %d: lam_H" % k, tol)
        close(rec["lam_I"][i], eI[-1], "dense: step %d: lam_I" % k, tol)
        close(rec["lam_S"][i], eS[0], "dense: step %d: lam_S (signed, largest |.|)" % k, tol)
        close(rec["lam_NTK"][i], eI[-1], "dense: step %d: mse: lam_NTK == lam_I" % k, tol)
        close([rec["H_%d" % j][i] for j in (1, 2, 3)], eH[::-1][:3], "dense: step %d: H_1..H_3" % k, tol)
        close([rec["S_%d" % j][i] for j in (1, 2, 3)], eS[:3], "dense: step %d: S_1..S_3" % k, tol)
        close(rec["uIu"][i] + rec["uSu"][i], eH[-1], "dense: step %d: uIu + uSu == lam_H" % k, tol)
        close(rec["loss"][i], c.loss, "dense: step %d: loss == the twin's" % k, 0)


def torch_model(t):
    """from_torch (standard parametrization): the lam columns against torch's
    dense Hessian / Gauss-Newton of C = (1/2N) sum ||f(x_i) - y_i||^2 along
    torch's own GD (theta -= lr grad, in the model's parameters)."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6), torch.nn.Tanh(),
                                torch.nn.Linear(6, 2)).double()
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((20, 4)), rng.standard_normal((20, 2))
    net = nh.from_torch(model)
    check(net.param == "standard", "torch: imported in the standard parametrization", net.param)
    lr, steps = 0.3, 8
    rec = nh.Curvature(net, X, Y, "mse").sharpness(lr, steps, every=4, tol=1e-12)
    shapes = [p.shape for p in model.parameters()]
    sizes = [int(np.prod(s)) for s in shapes]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
    Xt, Yt = torch.tensor(X), torch.tensor(Y)

    def f(th):  # the model as a function of its flat parameters (order irrelevant to eigenvalues)
        ps = [pp.reshape(s) for pp, s in zip(torch.split(th, sizes), shapes)]
        h = torch.tanh(Xt @ ps[0].T + ps[1])
        h = torch.tanh(h @ ps[2].T + ps[3])
        return h @ ps[4].T + ps[5]

    loss = lambda th: 0.5 * ((f(th) - Yt) ** 2).sum() / Xt.shape[0]
    k = 0
    for i, s in enumerate(rec["step"]):
        while k < s:
            g = torch.autograd.grad(loss(theta.requires_grad_()), theta)[0]
            theta = (theta - lr * g).detach()
            k += 1
        th = theta.detach()
        H = torch.autograd.functional.hessian(loss, th).numpy()
        J = torch.autograd.functional.jacobian(f, th).reshape(-1, th.numel()).numpy()
        I = J.T @ J / X.shape[0]  # mse: HC = 1/N per output
        eH, eI, eS = np.linalg.eigvalsh(H), np.linalg.eigvalsh(I), np.linalg.eigvalsh(H - I)
        # two float64 implementations of the same GD and Hessian: ~1e-14 apart; 1e-9 as for the dense case
        close(rec["loss"][i], float(loss(th)), "torch: step %d: loss" % s, 1e-12)
        close(rec["lam_H"][i], eH[-1], "torch: step %d: lam_H == torch Hessian's" % s, 1e-9)
        close(rec["lam_I"][i], eI[-1], "torch: step %d: lam_I == torch Gauss-Newton's" % s, 1e-9)
        close(rec["lam_S"][i], eS[np.argmax(np.abs(eS))], "torch: step %d: lam_S == torch H - GN's" % s, 1e-9)
    close(net.params, theta.numpy(), "torch: the trained parameters == torch's GD", 1e-12)


def errors_and_divergence(t):
    d, X, T = setup(t, "err", "3,5,1", "tanh", "mse", 8, 1, 2)
    c = nh.Curvature(nh.Net.load(os.path.join(d, "m")), X, T, "mse")
    for kw in ({"lr": 0}, {"lr": 0.1, "top": 0}, {"lr": 0.1, "top": 17}, {"lr": 0.1, "tol": 2.0}):
        try:
            c.sharpness(steps=2, **kw)
            check(False, "sharpness(%r) refused" % kw)
        except nh.NtkhessError as e:
            check(e.status == 1, "sharpness(%r) refused with NH_EINVAL" % kw, e)
    r = c.sharpness(1e6, 50, every=1)
    k = r["diverged_at"]
    check(k is not None and list(r["step"]) == list(range(k)), "a divergent lr stops with the records before it", k)
    check(np.all(np.isfinite(c.net.params)), "the network keeps the last finite theta")


def main():
    with tempfile.TemporaryDirectory() as t:
        section("cli mse", cli_equal, t, "mse", "5,9,7,2", "tanh", "mse", 2, 0, 2)
        section("cli ce cold", cli_equal, t, "ce", "5,8,6,3", "softplus", "ce", 3, 0, 1, True)
        section("cli batch 7", cli_equal, t, "b7", "5,9,7,2", "tanh", "mse", 2, 7, 3)
        section("dense", dense_truth, t)
        section("torch", torch_model, t)
        section("errors", errors_and_divergence, t)
    finish()


if __name__ == "__main__":
    main()
