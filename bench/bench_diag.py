"""bench_diag.py -- cost of the exact diagonals (nh_curv_diag_all, EXACT)
in units of one H v on the same context, against the flop model of
include/ntkhess/est.h (info.exact_cost), on random data, tanh, softmax
cross-entropy, standard parametrization, float64.
  make && /usr/bin/python3 bench/bench_diag.py [N] [THREADS]
Prints one line per network: P, H v time (median of 3), exact diagonal time,
their ratio and the model's."""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("NTKHESS_LIB", os.path.join(ROOT, "build", "libntkhess.so"))
sys.path.insert(0, os.path.join(ROOT, "python"))
import numpy as np  # noqa: E402
import ntkhess as nh  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
nh.set_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
for widths in ([784, 1000, 1000, 10], [784, 256, 256, 256, 10], [784, 128, 128, 128, 128, 10]):
    net = nh.Net(widths, act="tanh", seed=1, param="standard")
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((N, widths[0])), rng.integers(0, widths[-1], N)
    c = nh.Curvature(net, X, T, loss="ce")
    v = rng.standard_normal(net.P)
    th = []
    for _ in range(3):
        t0 = time.perf_counter(); c.hvp(v); th.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    c.diag("all", method="exact")
    te = time.perf_counter() - t0
    hv = float(np.median(th))
    print("widths %s N %d P %d: H v %.3f s, exact diagonals %.3f s = %.1f H v (model %.2f)"
          % (",".join(map(str, widths)), N, net.P, hv, te, te / hv, c.diag_info["exact_cost"]), flush=True)
