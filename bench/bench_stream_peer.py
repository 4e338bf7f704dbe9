#!/usr/bin/python3
"""bench_stream_peer.py -- the PyTorch peer of bench_stream.c: a batched data
loop around double-backward H v (as PyHessian does), on the same data and
theta (OUTDIR/theta.npy from bench_stream).  Times one H v and checks it
against bench_stream's (OUTDIR/hv.npy); --top K also times the top-K
eigenvalues by scipy's ARPACK Lanczos (eigsh) on the same H v.  --power K
runs PyHessian's top-K eigenvalues (hessian.eigenvalues: power iteration
with deflation, maxIter 100, tol 1e-3 on the relative eigenvalue change)
and --slq M,m PyHessian's density (hessian.density: M Rademacher vectors, m
Lanczos steps with full reorthogonalization), both on flat vectors with the
same arithmetic as PyHessian's lists of tensors; each reports its product
count and time.  A float32 X.npy is kept float32 and each batch converted
to float64 (as a DataLoader feeding a float64 model would).
    bench_stream_peer.py X.npy Y.npy WIDTHS B OUTDIR [--top K --tol TOL] [--power K] [--slq M,m] [--threads T]
One JSON line on stdout."""
import argparse
import json
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("X"); ap.add_argument("Y"); ap.add_argument("widths"); ap.add_argument("batch", type=int)
ap.add_argument("outdir"); ap.add_argument("--top", type=int, default=0); ap.add_argument("--tol", type=float, default=1e-2)
ap.add_argument("--threads", default="1")
ap.add_argument("--power", type=int, default=0); ap.add_argument("--slq", default="")
a = ap.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = a.threads
import numpy as np  # noqa: E402
import resource  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(a.threads))
X = torch.from_numpy(np.load(a.X))
y = torch.from_numpy(np.load(a.Y)).long()
w = [int(s) for s in a.widths.split(",")]
theta = np.load(os.path.join(a.outdir, "theta.npy"))
N = X.shape[0]
params, off = [], 0
for l in range(len(w) - 1):
    W = torch.from_numpy(theta[off:off + w[l + 1] * w[l]].reshape(w[l + 1], w[l]).copy()); off += w[l + 1] * w[l]
    b = torch.from_numpy(theta[off:off + w[l + 1]].copy()); off += w[l + 1]
    params += [W.requires_grad_(), b.requires_grad_()]


def f(x):
    for l in range(len(w) - 1):
        x = torch.nn.functional.linear(x, params[2 * l], params[2 * l + 1])
        if l + 2 < len(w):
            x = torch.tanh(x)
    return x


def hvp(v):
    vs, o = [], 0
    for p in params:
        vs.append(torch.from_numpy(v[o:o + p.numel()]).view_as(p)); o += p.numel()
    out = [torch.zeros_like(p) for p in params]
    for i in range(0, N, a.batch):
        loss = torch.nn.functional.cross_entropy(f(X[i:i + a.batch].double()), y[i:i + a.batch], reduction="sum") / N
        g = torch.autograd.grad(loss, params, create_graph=True)
        hv = torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, vs)), params)
        for oi, h in zip(out, hv):
            oi += h
    return torch.cat([o.reshape(-1) for o in out]).numpy()


v = np.load(os.path.join(a.outdir, "v.npy"))
t0 = time.perf_counter()
hv = hvp(v)
t_hvp = time.perf_counter() - t0
ref = np.load(os.path.join(a.outdir, "hv.npy"))
res = {"tool": "torch", "x": str(np.load(a.X, mmap_mode="r").dtype), "N": N, "P": int(theta.size), "batch": a.batch,
       "threads": int(a.threads), "hvp_s": round(t_hvp, 3),
       "hvp_rel_err_vs_ntkhess": float(np.linalg.norm(hv - ref) / np.linalg.norm(ref))}
if a.top:
    from scipy.sparse.linalg import LinearOperator, eigsh
    count = [0]

    def mv(x):
        count[0] += 1
        return hvp(np.ascontiguousarray(x, dtype=np.float64).ravel())
    t0 = time.perf_counter()
    ev = eigsh(LinearOperator((theta.size, theta.size), matvec=mv, dtype=np.float64), k=a.top, which="LA",
               tol=a.tol, return_eigenvectors=False)
    res.update(top_s=round(time.perf_counter() - t0, 3), top_products=count[0], top=sorted(ev.tolist(), reverse=True))
count = [0]


def hv_count(x):
    count[0] += 1
    return hvp(np.ascontiguousarray(x, dtype=np.float64))


def normalization(x):
    return x / (np.sqrt(x @ x) + 1e-6)  # pyhessian.utils.normalization


def orthnormal(x, vs):
    for u in vs:
        x = x - (x @ u) * u
    return normalization(x)


def pyhessian_eigenvalues(top_n, max_iter=100, tol=1e-3):
    """pyhessian.hessian.eigenvalues, on flat vectors."""
    gen = torch.Generator().manual_seed(0)
    evals, evecs = [], []
    while len(evals) < top_n:
        ev = None
        v = normalization(torch.randn(theta.size, generator=gen, dtype=torch.float64).numpy())
        for _ in range(max_iter):
            v = orthnormal(v, evecs)
            Hv = hv_count(v)
            tmp = float(Hv @ v)
            v = normalization(Hv)
            if ev is None:
                ev = tmp
            elif abs(ev - tmp) / (abs(ev) + 1e-6) < tol:
                break
            else:
                ev = tmp
        evals.append(ev)
        evecs.append(v)
    return evals


def pyhessian_density(n_v, iters):
    """pyhessian.hessian.density: Lanczos with full reorthogonalization; nodes and weights."""
    gen = torch.Generator().manual_seed(1)
    nodes, weights = [], []
    for _ in range(n_v):
        v = normalization(torch.randint(0, 2, (theta.size,), generator=gen).double().numpy() * 2 - 1)
        vl, al, bl = [v], [], []
        for i in range(iters):
            if i == 0:
                wp = hv_count(v)
                al.append(float(wp @ v))
                w = wp - al[-1] * v
            else:
                beta = float(np.sqrt(w @ w))
                bl.append(beta)
                v = orthnormal(w if beta != 0 else torch.randn(theta.size, generator=gen, dtype=torch.float64).numpy(), vl)
                vl.append(v)
                wp = hv_count(v)
                al.append(float(wp @ v))
                w = wp - al[-1] * v - beta * vl[-2]
        T = np.diag(al) + np.diag(bl, 1) + np.diag(bl, -1)
        ev, U = np.linalg.eigh(T)
        nodes.append(ev.tolist())
        weights.append((U[0] ** 2).tolist())
    return nodes, weights


if a.power:
    count[0] = 0
    t0 = time.perf_counter()
    ev = pyhessian_eigenvalues(a.power)
    res.update(power_s=round(time.perf_counter() - t0, 3), power_products=count[0], power_top=ev)
if a.slq:
    M, m = (int(s) for s in a.slq.split(","))
    count[0] = 0
    t0 = time.perf_counter()
    nd, wt = pyhessian_density(M, m)
    res.update(slq_s=round(time.perf_counter() - t0, 3), slq_products=count[0],
               slq_m1=float(np.mean([np.dot(n, w_) for n, w_ in zip(nd, wt)])))
res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps(res))
