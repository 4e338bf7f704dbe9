#!/usr/bin/python3
"""bench_stream_peer.py -- the PyTorch peer of bench_stream.c: a batched data
loop around double-backward H v (as PyHessian does), on the same data and
theta (OUTDIR/theta.npy from bench_stream).  Times one H v and checks it
against bench_stream's (OUTDIR/hv.npy); --top K also times the top-K
eigenvalues by scipy's ARPACK Lanczos (eigsh) on the same H v.
    bench_stream_peer.py X.npy Y.npy WIDTHS B OUTDIR [--top K --tol TOL] [--threads T]
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
        loss = torch.nn.functional.cross_entropy(f(X[i:i + a.batch]), y[i:i + a.batch], reduction="sum") / N
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
res = {"tool": "torch", "N": N, "P": int(theta.size), "batch": a.batch, "threads": int(a.threads), "hvp_s": round(t_hvp, 3),
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
res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps(res))
