"""float32 data, progress lines and the curvature refusal (issue 12).

- A float32 X.npy stays float32 (no float64 copy): curvature and spectrum on
  it write exactly the bytes of the runs on the same values stored as
  float64 (float widens to double exactly, so no tolerance), batched and not.
- Python: Curvature(net, X32, ...) keeps the caller's float32 array (shares
  its memory) and gives the float64 results bit for bit.
- --progress into a pipe: progress lines ("... batches ...") appear on
  stderr; stdout and every output file are the same as without it, and
  without --progress nothing is printed (stderr is a pipe here).
- curvature without --no-ntk on N = 30,000 rows x 10 classes refuses at
  once (before the context), naming the bytes needed and --no-ntk, and
  writes nothing; with --no-ntk the same data runs."""
import filecmp
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, finish, section, cli, import_binding, run, BIN, LIB, asan_reexec  # noqa: E402

asan_reexec(LIB)

import numpy as np  # noqa: E402


def setup(t):
    j = lambda *p: os.path.join(t, *p)
    r = cli("init", "--widths", "4,6,5,3", "--act", "tanh", "--seed", "2", "--param", "standard", "--out", j("m"))
    check(r.returncode == 0, "init", r.stderr)
    rng = np.random.default_rng(1)
    X32 = rng.standard_normal((11, 4)).astype(np.float32)
    np.save(j("X32.npy"), X32)
    np.save(j("X64.npy"), X32.astype(np.float64))
    np.save(j("T.npy"), rng.integers(0, 3, 11).astype(np.float64))
    P = 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3
    np.save(j("v.npy"), rng.standard_normal(P))
    base = ["--model", j("m"), "--targets", j("T.npy"), "--loss", "ce"]
    return j, base, X32


def same_dirs(a, b, files):
    return all(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False) for f in files)


def float32_cli(j, base):
    files = ["grad.npy", "Y.npy", "G.npy", "Hv.npy", "Iv.npy", "Sv.npy", "ntk.npy", "summary.json"]
    for extra in [[], ["--batch", "3"]]:
        tag = "b" + (extra[1] if extra else "all")
        for x in ("32", "64"):
            r = cli("curvature", *base, "--data", j("X%s.npy" % x), "--hvp", j("v.npy"), "--out", j(tag + x), *extra)
            check(r.returncode == 0, "curvature on float%s X %s" % (x, " ".join(extra)), r.stderr)
        check(same_dirs(j(tag + "32"), j(tag + "64"), files), "curvature %s: float32 X.npy gives the float64 run's "
              "bytes" % " ".join(extra))
    out = []
    for x in ("32", "64"):
        r = cli("spectrum", *base, "--data", j("X%s.npy" % x), "--top", "2", "--json", "--batch", "4")
        check(r.returncode == 0, "spectrum on float%s X" % x, r.stderr)
        out.append(r.stdout)
    check(out[0] == out[1], "spectrum --batch 4: float32 X.npy prints the float64 run's output", out[0][:200])


def float32_python(j, X32):
    nh = import_binding()
    net = nh.Net.load(j("m"))
    T = np.load(j("T.npy"))
    v = np.load(j("v.npy"))
    for batch in (0, 3):
        c32 = nh.Curvature(net, X32, T, loss="ce", batch=batch)
        c64 = nh.Curvature(net, X32.astype(np.float64), T, loss="ce", batch=batch)
        check(c32.X.dtype == np.float32 and np.shares_memory(c32.X, X32), "Python batch=%d: float32 X not copied" % batch)
        check(np.array_equal(c32.hvp(v), c64.hvp(v)) and np.array_equal(c32.grad(), c64.grad()),
              "Python batch=%d: H v and grad on float32 X = float64 bit for bit" % batch)


def progress(j, base):
    args = ["spectrum", *base, "--data", j("X64.npy"), "--top", "2", "--json", "--batch", "3"]
    r0 = cli(*args)
    r1 = cli(*args, "--progress")
    check(r0.returncode == 0 and r1.returncode == 0, "spectrum with and without --progress", r1.stderr)
    check(r0.stderr == "", "no progress line into a pipe without --progress", repr(r0.stderr[:200]))
    check("batches" in r1.stderr and "Lanczos" in r1.stderr  and "left" in r1.stderr,
          "--progress: lines with batches, Lanczos products and time left", repr(r1.stderr[:300]))
    check(r1.stdout == r0.stdout, "--progress: stdout unchanged")
    c = ["curvature", *base, "--data", j("X64.npy"), "--batch", "4", "--hvp", j("v.npy")]
    r0 = cli(*c, "--out", j("p0"))
    r1 = cli(*c, "--out", j("p1"), "--progress")
    files = ["grad.npy", "Y.npy", "G.npy", "Hv.npy", "ntk.npy", "summary.json"]
    check(r0.returncode == 0 and r1.returncode == 0 and "batches" in r1.stderr and r0.stderr == "" and
          same_dirs(j("p0"), j("p1"), files), "curvature --progress: lines on stderr, the same outputs", r1.stderr[:300])


def refusal(j):
    r = cli("init", "--widths", "2,5,10", "--act", "tanh", "--out", j("big"))
    rng = np.random.default_rng(3)
    np.save(j("Xb.npy"), rng.standard_normal((30000, 2)).astype(np.float32))
    np.save(j("Tb.npy"), rng.integers(0, 10, 30000).astype(np.float64))
    base = ["curvature", "--model", j("big"), "--data", j("Xb.npy"), "--targets", j("Tb.npy"), "--loss", "ce"]
    t0 = time.time()
    r = cli(*base, "--out", j("bo"))
    dt = time.time() - t0
    # (N n_L)^2 = 9e10 entries: K plus three matrices of its size for Tr(I^k) = 2.88e12 bytes
    check(r.returncode == 1 and "--no-ntk" in r.stderr and "2880024000000 bytes" in r.stderr and
          not os.path.exists(j("bo")) and dt < 20, "curvature refuses the exact NTK up front (%.2f s)" % dt,
          r.stderr.strip())
    r = cli(*base, "--out", j("bn"), "--no-ntk", "--batch", "5000")
    s = json.load(open(j("bn", "summary.json"))) if r.returncode == 0 else {}
    check(r.returncode == 0 and s.get("N") == 30000 and "ntk.npy" in s.get("skipped", {}),
          "the same data with --no-ntk runs", r.stderr)


with tempfile.TemporaryDirectory() as t:
    j, base, X32 = setup(t)
    section("float32 X through the CLI", float32_cli, j, base)
    section("float32 X through Python", float32_python, j, X32)
    section("progress lines", progress, j, base)
    section("curvature refusal", refusal, j)
finish()
