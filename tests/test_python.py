#!/usr/bin/python3
"""Tests of the Python package `ntkhess` (python/, ctypes bindings of libntkhess).

1. Installation, offline, exactly as docs/python.md documents it:
   `/usr/bin/python3 -m pip install --no-index --target DIR ./python`, and into a
   venv made with --system-site-packages; the rest of the tests import the copy
   installed in DIR (if that install fails, it is a FAIL and the tests go on
   with the in-tree python/ so the other failures still show).  The library
   lookup order ($NTKHESS_LIB, in-tree build/, installed soname) is checked in
   subprocesses.
2. ABI: every ctypes structure has the size and field offsets that the C
   compiler gives for include/ntkhess.h, and every bound function exists.
3. Agreement with the CLI on the same inputs: `kernel` JSON vs kernels_pair,
   `gram` .npy vs kernels_gram, `predict` CSV (and --spectrum) vs the
   predict_* functions, `curvature --hvp --dense` outputs vs Curvature (grad,
   Y, G, ntk, Hv, Iv, Sv, H, I, S, summary.json) for mse, bce and ce, and
   `spectrum --top 3 --json` vs Curvature.lanczos.
   Tolerance 1e-12 relative (norm-wise, per array).  The CLI and the binding
   call the same library functions on the same float64 inputs (.npy files are
   exact, numbers on the command line are written with repr() and parsed back
   exactly, JSON/CSV outputs are printed round-trip, %.17g): the arithmetic is
   the same, so the results are expected to be bit-identical.  1e-12 leaves
   room only for reduction orders that depend on the thread count (OpenMP /
   OpenBLAS) should the two processes run with different ones: a few ulps
   times the condition of the sums.  Lanczos eigenvalues are compared to the
   Lanczos tolerance (1e-10 relative to the largest |eigenvalue|), and to
   dense eigenvalues to 1e-8.
4. Python-side behaviour: NtkhessError (status name, nh_last_error text), shape
   checks, conversion of lists / float32 / Fortran-order inputs, the params
   view (writes through, keeps the network alive), block products, traces,
   orthogonality, SLQ, Rayleigh quotients, slices, gradient steps, losses,
   activations, data, the generator.

Run with /usr/bin/python3 (NumPy from Debian).  Prints a FAIL line per failure
(PASS lines with NH_TEST_VERBOSE=1) and ends with 'N passed, N failed'.
"""
import csv
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("NTKHESS", os.path.join(ROOT, os.environ.get("BUILD", "build"), "ntkhess")))
LIB = os.path.abspath(os.environ.get("NTKHESS_LIB", os.path.join(os.path.dirname(BIN), "libntkhess.so")))
PY = sys.executable
RTOL = 1e-12          # CLI vs binding: same code, same inputs (see above)
LANCZOS_TOL = 1e-10   # the Lanczos tolerance used on both sides
VERBOSE = os.environ.get("NH_TEST_VERBOSE") == "1"


def asan_reexec():
    """`make asan` builds libntkhess.so with ASan/UBSan instrumentation but
    without linking their runtimes (the CLI and C tests link them); Python
    can load such a library only with the runtimes preloaded.  Re-execute
    this script once with LD_PRELOAD set (leak detection off: CPython keeps
    its objects until exit).  A normal build loads directly and nothing
    happens."""
    if os.environ.get("NH_TEST_ASAN_REEXEC") or not os.path.isfile(LIB):
        return
    # An instrumented library either names the ASan runtime (it aborts the
    # process if loaded without it first) or leaves its symbols undefined.
    if b"libasan.so" not in open(LIB, "rb").read():
        import ctypes
        try:
            ctypes.CDLL(LIB)
            return
        except OSError as e:
            if "__asan" not in str(e) and "__ubsan" not in str(e):
                return
    cc = os.environ.get("CC", "cc")
    pre = []
    for name in ("asan", "ubsan"):
        r = subprocess.run([cc, "-print-file-name=lib%s.so" % name], stdout=subprocess.PIPE,
                           universal_newlines=True)
        if r.returncode == 0 and os.path.isabs(r.stdout.strip()):
            pre.append(r.stdout.strip())
    env = dict(os.environ, NH_TEST_ASAN_REEXEC="1",
               LD_PRELOAD=" ".join(pre + [os.environ.get("LD_PRELOAD", "")]).strip(),
               ASAN_OPTIONS="detect_leaks=0:" + os.environ.get("ASAN_OPTIONS", ""))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


asan_reexec()

passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        if VERBOSE:
            print("PASS: %s %s" % (what, str(detail).strip().splitlines()[-1][:200] if str(detail).strip() else ""))
    else:
        failed += 1
        print("FAIL: %s %s" % (what, detail))
    sys.stdout.flush()
    return ok


def finish():
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


try:
    import numpy as np
except ImportError as e:  # fail visibly: NumPy is a requirement (python3-numpy)
    check(False, "import numpy", "(%s; install python3-numpy and run with /usr/bin/python3)" % e)
    finish()


def rel(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return float("inf")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def close(a, b, what, tol=RTOL):
    e = rel(a, b)
    return check(e <= tol, what, "(rel err %.3g, tol %.0e)" % (e, tol))


def run(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)


def cli(*args):
    r = run([BIN] + [str(a) for a in args])
    if r.returncode != 0:
        raise RuntimeError("ntkhess %s failed (%d): %s" % (" ".join(map(str, args)), r.returncode,
                                                          r.stderr.strip()))
    return r.stdout


def section(name, fn):
    """Run a group of checks; an unexpected exception is one FAIL, not a crash."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report and continue
        check(False, name, "raised %s: %s" % (type(e).__name__, e))
        if VERBOSE:
            traceback.print_exc()


TMP = tempfile.mkdtemp(prefix="nh_test_python_")
SRC = os.path.join(ROOT, "python")

# ------------------------------------------------------------- 1. install

for path, what in ((BIN, "CLI"), (LIB, "shared library")):
    if not check(os.path.isfile(path), "%s exists" % what, "(%s; run make)" % path):
        finish()

PIP_INSTALL = [PY, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check"]
TARGET = os.path.join(TMP, "site")
r = run(PIP_INSTALL + ["--target", TARGET, SRC])
installed = check(r.returncode == 0 and os.path.isfile(os.path.join(TARGET, "ntkhess", "__init__.py")),
                  "offline pip install --no-index --target DIR ./python",
                  "" if r.returncode == 0 else "(exit %d: %s)" % (r.returncode, (r.stderr or r.stdout)[-800:]))
os.environ["NTKHESS_LIB"] = LIB
if installed:
    sys.path.insert(0, TARGET)
else:
    sys.path.insert(0, SRC)
try:
    import ntkhess as nh
except Exception as e:  # noqa: BLE001
    check(False, "import ntkhess", "(%s: %s)" % (type(e).__name__, e))
    finish()
if installed:
    check(os.path.dirname(os.path.abspath(nh.__file__)) == os.path.join(TARGET, "ntkhess"),
          "the tests use the installed copy", "(%s)" % nh.__file__)
dist = [d for d in os.listdir(TARGET) if d.endswith(".dist-info")] if installed else []
check(dist == ["ntkhess-0.1.0.dist-info"], "installed metadata", "(%s)" % dist)
check(nh.__version__ == nh.library_version() == "0.1.0", "package and library versions",
      "(%s, %s)" % (nh.__version__, nh.library_version()))
check(os.path.samefile(nh.library_path(), LIB), "NTKHESS_LIB selects the library", "(%s)" % nh.library_path())


def t_install_more():
    # A venv that sees Debian's NumPy; pip from the system (the venv has none).
    venv = os.path.join(TMP, "venv")
    r = run([PY, "-m", "venv", "--system-site-packages", "--without-pip", venv])
    vpy = os.path.join(venv, "bin", "python")
    if not check(r.returncode == 0, "python3 -m venv --system-site-packages", r.stderr[-300:]):
        return
    r = run([vpy, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check", SRC])
    check(r.returncode == 0, "offline pip install ./python into a venv", (r.stderr or r.stdout)[-500:])
    code = ("import ntkhess as nh, numpy as np; n = nh.Net([2, 3, 1], seed=1); "
            "print(nh.__file__); print(float(n.forward(np.ones((1, 2)))[0, 0]))")
    r = run([vpy, "-c", code], cwd=TMP, env=dict(os.environ, NTKHESS_LIB=LIB))
    lines = r.stdout.split()
    ok = r.returncode == 0 and len(lines) == 2 and lines[0].startswith(venv)
    check(ok, "the venv's ntkhess imports and runs", r.stderr[-300:])
    if ok:
        ref = float(nh.Net([2, 3, 1], seed=1).forward(np.ones((1, 2)))[0, 0])
        check(float(lines[1]) == ref, "the venv's ntkhess computes the same f(x)")
    # With build isolation off too (the other documented variant).
    r = run(PIP_INSTALL + ["--no-build-isolation", "--target", os.path.join(TMP, "site2"), SRC])
    check(r.returncode == 0, "offline pip install --no-build-isolation --target", (r.stderr or r.stdout)[-500:])
    # pip wheel with NTKHESS_NO_BUNDLE=1: a pure-Python wheel holding the
    # package and nothing binary (the bundled wheel: tests/long/test_python_bundle.py).
    wh = os.path.join(TMP, "wheel")
    r = run([PY, "-m", "pip", "wheel", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
             "-w", wh, SRC], env=dict(os.environ, NTKHESS_NO_BUNDLE="1"))
    wheels = sorted(os.listdir(wh)) if os.path.isdir(wh) else []
    if check(r.returncode == 0 and wheels == ["ntkhess-0.1.0-py3-none-any.whl"], "pip wheel", str(wheels)):
        import zipfile
        names = zipfile.ZipFile(os.path.join(wh, wheels[0])).namelist()
        check(all(n.startswith(("ntkhess/", "ntkhess-0.1.0.dist-info/")) for n in names)
              and "ntkhess/network.py" in names and not any(n.endswith((".so", ".pyc")) for n in names),
              "wheel contents", str(names))
    # The build writes nothing into the source tree.
    leftovers = [d for d in os.listdir(SRC) if d not in ("ntkhess", "_backend", "pyproject.toml")
                 and not d.startswith(".")]
    check(not leftovers, "pip leaves python/ clean", str(leftovers))


def t_lookup():
    env = {k: v for k, v in os.environ.items() if k not in ("NTKHESS_LIB", "PYTHONPATH", "LD_LIBRARY_PATH")}
    code = "import ntkhess as nh; print(nh.library_path()); print(nh.library_version())"
    # In-tree: python/ntkhess finds ../../build/libntkhess.so without help.
    intree = os.path.join(ROOT, "build", "libntkhess.so")
    r = run([PY, "-c", code], cwd=TMP, env=dict(env, PYTHONPATH=SRC))
    if os.path.isfile(intree):
        check(r.returncode == 0 and r.stdout.split()[0] == intree, "in-tree lookup finds build/libntkhess.so",
              (r.stdout + r.stderr)[-300:])
    else:
        check(r.returncode == 0, "in-tree lookup falls back to an installed copy", (r.stdout + r.stderr)[-300:])
    # Installed copy: the package from --target (no build/ next to it) and
    # libntkhess.so.0 on the loader's path.
    libdir = os.path.join(TMP, "libdir")
    os.makedirs(libdir, exist_ok=True)
    shutil.copy(LIB, os.path.join(libdir, "libntkhess.so.0"))
    pkgdir = TARGET if installed else SRC
    r = run([PY, "-c", code], cwd=TMP, env=dict(env, PYTHONPATH=pkgdir, LD_LIBRARY_PATH=libdir))
    if installed:
        check(r.returncode == 0 and "libntkhess.so.0" in r.stdout.split()[0],
              "installed package loads libntkhess.so.0 from the loader's path", (r.stdout + r.stderr)[-300:])
    # An explicit NTKHESS_LIB that does not exist is an error naming it.
    bad = os.path.join(TMP, "nope", "libntkhess.so")
    r = run([PY, "-c", code], cwd=TMP, env=dict(env, PYTHONPATH=pkgdir, NTKHESS_LIB=bad))
    check(r.returncode != 0 and "OSError" in r.stderr and bad in r.stderr and "NTKHESS_LIB" in r.stderr,
          "a bad NTKHESS_LIB fails with a clear OSError", r.stderr[-300:])


# ---------------------------------------------------------------- 2. ABI

def t_abi():
    from ntkhess import _lib
    check(not nh.load_library().missing, "every bound function is exported", str(nh.load_library().missing))
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not check(cc is not None, "a C compiler for the layout check"):
        return
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "ntkhess.h"', "int main(void) {"]
    for cname, cls in _lib.STRUCTS.items():
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (cname, cname))
        for f, _ in cls._fields_:
            cf = f.rstrip("_")
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (cname, f, cname, cf))
    lines += ["return 0;", "}"]
    src = os.path.join(TMP, "layout.c")
    with open(src, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    exe = os.path.join(TMP, "layout")
    r = run([cc, "-I", os.path.join(ROOT, "include"), src, "-o", exe])
    if not check(r.returncode == 0, "compile the layout probe", r.stderr[-500:]):
        return
    want = dict(l.split() for l in run([exe]).stdout.splitlines())
    import ctypes
    bad = []
    for cname, cls in _lib.STRUCTS.items():
        if int(want[cname]) != ctypes.sizeof(cls):
            bad.append("sizeof %s: C %s, ctypes %d" % (cname, want[cname], ctypes.sizeof(cls)))
        for f, _ in cls._fields_:
            off = getattr(cls, f).offset
            if int(want["%s.%s" % (cname, f)]) != off:
                bad.append("%s.%s: C %s, ctypes %d" % (cname, f, want["%s.%s" % (cname, f)], off))
    check(not bad, "ctypes structures match the header (%d structures)" % len(_lib.STRUCTS), "; ".join(bad))
    # Enumerations the binding names itself.
    enums = {"NH_OP_H": 0, "NH_OP_I": 1, "NH_OP_S": 2, "NH_WHICH_LA": 0, "NH_WHICH_SA": 1, "NH_WHICH_LM": 2,
             "NH_PROBE_RADEMACHER": 0, "NH_PROBE_GAUSSIAN": 1, "NH_TRACE_HUTCHINSON": 0,
             "NH_TRACE_HUTCHPP": 1, "NH_TRACE_EXACT": 2, "NH_PARAM_NTK": 0, "NH_PARAM_MF": 1,
             "NH_DATA_SPHERE": 0, "NH_DATA_DISK": 1, "NH_K_COUNT": 8, "NH_LOSS_CE": 2, "NH_ENUMERIC": 11}
    src2 = os.path.join(TMP, "enums.c")
    with open(src2, "w") as fh:
        fh.write('#include <stdio.h>\n#include "ntkhess.h"\nint main(void) {\n')
        for k in enums:
            fh.write('printf("%s %%d\\n", (int)%s);\n' % (k, k))
        fh.write("return 0;\n}\n")
    r = run([cc, "-I", os.path.join(ROOT, "include"), src2, "-o", exe + "2"])
    if check(r.returncode == 0, "compile the enum probe", r.stderr[-300:]):
        got = {k: int(v) for k, v in (l.split() for l in run([exe + "2"]).stdout.splitlines())}
        check(got == enums, "enumeration values match the header", str(got))


# ------------------------------------------------------ 3. CLI agreement

rng = np.random.default_rng(20240601)
KEYMAP = {"Sigma": "sigma", "SigmaDot": "sigmadot", "SigmaDDot": "sigmaddot", "Theta": "theta",
          "Upsilon": "upsilon", "Phi": "phi", "Xi": "xi", "Lambda": "lambda"}


def vec_arg(v):
    return ",".join(repr(float(x)) for x in v)


def t_kernel():
    n0 = 5
    for act, depth, beta, nq in (("softplus", 3, 0.1, None), ("tanh", 2, 0.3, None), ("erf", 4, 0.0, None),
                                 ("relu", 3, 0.2, None), ("gelu", 1, 0.1, None), ("nsoftplus", 2, 0.5, 48)):
        x, y = rng.standard_normal(n0), rng.standard_normal(n0)
        args = ["kernel", "--act", act, "--depth", depth, "--beta", repr(beta), "--x=" + vec_arg(x),
                "--y=" + vec_arg(y), "--layers"]
        if nq:
            args += ["--nq", nq]
        js = json.loads(cli(*args))
        py = nh.kernels_pair(x, y, act=act, depth=depth, beta=beta, nq=nq, all_layers=True)
        top = np.array([js[k] for k in KEYMAP])
        mine = np.array([py[v][-1] for v in KEYMAP.values()])
        close(mine, top, "kernel %s depth %d: depth-L kernels vs `ntkhess kernel`" % (act, depth))
        lay = np.array([[e[k] for k in KEYMAP] for e in js["layers"]])
        mine = np.stack([py[v] for v in KEYMAP.values()], axis=1)
        close(mine, lay, "kernel %s depth %d: every layer vs --layers" % (act, depth))
        d = nh.kernels_pair(x, y, act=act, depth=depth, beta=beta, nq=nq)
        check(set(d) == set(nh.KERNEL_NAMES) and all(v.shape == (2, 2) for v in d.values()),
              "kernels_pair returns a dict of 2 x 2 arrays")


def t_gram():
    X = rng.standard_normal((9, 4))
    xp = os.path.join(TMP, "gram_X.npy")
    np.save(xp, X)
    for act, depth, beta, nq in (("softplus", 3, 0.1, None), ("tanh", 2, 0.25, None), ("sin", 3, 0.1, 40)):
        out = os.path.join(TMP, "gram_%s" % act)
        args = ["gram", "--act", act, "--depth", depth, "--beta", repr(beta), "--data", xp, "--out", out]
        if nq:
            args += ["--nq", nq]
        cli(*args)
        py = nh.kernels_gram(X, act=act, depth=depth, beta=beta, nq=nq)
        for f in ("Sigma", "Theta", "Upsilon", "Phi", "Xi", "Lambda"):
            close(py[KEYMAP[f]], np.load(os.path.join(out, f + ".npy")),
                  "gram %s: %s vs `ntkhess gram`" % (act, f))
        # Subset of kernels: same values.
        sub = nh.kernels_gram(X, act=act, depth=depth, beta=beta, nq=nq, kernels=["theta", "phi"])
        check(sorted(sub) == ["phi", "theta"] and rel(sub["theta"], py["theta"]) == 0
              and rel(sub["phi"], py["phi"]) == 0, "kernels_gram(kernels=...) gives the same matrices")
        # Gram entries vs the pair function.
        pr = nh.kernels_pair(X[1], X[4], act=act, depth=depth, beta=beta, nq=nq)
        close([py[k][1, 4] for k in KEYMAP.values()], [pr[k][0, 1] for k in KEYMAP.values()],
              "gram %s: entry [1, 4] vs kernels_pair" % act, tol=1e-13)


def read_csv(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def moments_cols(p, suffix=""):
    """The CLI's CSV columns from a prediction dict."""
    cols = {}
    for k in range(4):
        cols["tr_I%d%s" % (k + 1, suffix)] = p["tr_i" + suffix][:, k]
        cols["tr_H%d%s" % (k + 1, suffix)] = p["tr_h" + suffix][:, k]
    for k in range(2):
        cols["tr_S%d%s" % (k + 1, suffix)] = p["tr_s" + suffix][:, k]
    return cols


def compare_csv(tab, p, what, se=False):
    cols = moments_cols(p)
    if se:
        cols.update(moments_cols(p, "_se"))
    close(p["t"], tab["t"], what + ": times")
    for k, v in sorted(cols.items()):
        close(v, tab[k], "%s: %s" % (what, k))


def t_predict():
    N, n0, depth, act = 8, 3, 3, "softplus"
    X = rng.standard_normal((N, n0))
    xp = os.path.join(TMP, "pred_X.npy")
    np.save(xp, X)
    K = nh.kernels_gram(X, act=act, depth=depth)
    times = [0.0, 0.25, 1.5, 10.0]
    targs = ["--act", act, "--depth", depth, "--data", xp, "--times=" + vec_arg(times)]
    # MSE, expectation (closed form).
    T = rng.standard_normal((N, 2))
    tp = os.path.join(TMP, "pred_T.npy")
    np.save(tp, T)
    out = os.path.join(TMP, "pred_expect.csv")
    cli("predict", *targs, "--targets", tp, "--expect", "--out", out)
    compare_csv(read_csv(out), nh.predict_mse_expect(K, T, times), "predict mse --expect")
    # MSE, one draw from a real network's Y(0), G(0); limiting spectrum.
    net = nh.Net([n0, 30, 30, 2], act=act, seed=7)
    c = nh.Curvature(net, X, T)
    Y0, G0 = c.outputs(), c.G()
    y0p, g0p = os.path.join(TMP, "pred_Y0.npy"), os.path.join(TMP, "pred_G0.npy")
    np.save(y0p, Y0)
    np.save(g0p, G0)
    spec = os.path.join(TMP, "pred_spec.npy")
    cli("predict", *targs, "--targets", tp, "--y0", y0p, "--g0", g0p, "--out", out, "--spectrum", spec)
    p = nh.predict_mse(K, T, Y0, G0, times)
    compare_csv(read_csv(out), p, "predict mse --y0/--g0")
    check(p["Y"].shape == (4, N, 2) and p["G"].shape == (4, N, 2), "predict_mse returns Y, G (nt, N, nout)")
    close(p["Y"][0], Y0, "predict_mse: Y(0) = Y0", tol=1e-14)
    eig = nh.predict_spectrum_i(K, T)
    S = np.load(spec)
    close(np.tile(eig, (len(times), 1)), S, "predict --spectrum (mse) vs predict_spectrum_i")
    # BCE, one draw: the ODE; spectrum at Y(t).
    Tb = np.where(rng.standard_normal((N, 1)) > 0, 1.0, -1.0)
    tbp = os.path.join(TMP, "pred_Tb.npy")
    np.save(tbp, Tb)
    Y0b, G0b = Y0[:, :1].copy(), G0[:, :1].copy()
    np.save(y0p, Y0b)
    np.save(g0p, G0b)
    cli("predict", *targs, "--targets", tbp, "--loss", "bce", "--y0", y0p, "--g0", g0p, "--out", out,
        "--spectrum", spec)
    p = nh.predict_ode(K, Tb, Y0b, G0b, times, loss="bce")
    compare_csv(read_csv(out), p, "predict bce --y0/--g0 (ODE)")
    S = np.load(spec)
    mine = np.array([nh.predict_spectrum_i(K, Tb, p["Y"][i], loss="bce") for i in range(len(times))])
    close(mine, S, "predict --spectrum (bce, Y(t)) vs predict_spectrum_i")
    # CE, expectation by sampling, with standard errors.
    Tc = rng.integers(0, 3, N).astype(np.float64)
    Tc[0] = 2.0
    tcp = os.path.join(TMP, "pred_Tc.npy")
    np.save(tcp, Tc)
    cli("predict", *targs, "--targets", tcp, "--loss", "ce", "--expect", "--samples", 20, "--seed", 3,
        "--out", out)
    p = nh.predict_sample(K, Tc, times, loss="ce", nsamples=20, seed=3)
    compare_csv(read_csv(out), p, "predict ce --expect (sampling)", se=True)
    # Draws and the MSE one-draw formula agree with the sampled mean's definition.
    Yd, Gd, _ = nh.predict_draw_init(K, 2, 5, seed=11)
    check(Yd.shape == (5, N, 2) and np.all(np.isfinite(Gd)), "predict_draw_init shapes")
    mf = nh.predict_meanfield(K, T)
    g = -T / N
    want = sum(g[:, k] @ K["xi"] @ g[:, k] for k in range(2))
    close(mf["var_tr_h"], want, "predict_meanfield var_tr_h = sum_k gradC_k^T Xi gradC_k", tol=1e-13)


def make_data(N, n0, nout, loss):
    X = rng.standard_normal((N, n0))
    if loss == "mse":
        T = rng.standard_normal((N, nout))
    elif loss == "bce":
        T = np.where(rng.standard_normal((N, nout)) > 0, 1.0, -1.0)
    else:
        T = rng.integers(0, nout, N).astype(np.float64)
    return X, T


def t_curvature():
    cases = (("mse", [4, 7, 6, 2], "tanh", 0.1), ("bce", [3, 6, 1], "softplus", 0.2),
             ("ce", [3, 5, 4, 4, 3], "gelu", 0.1), ("mse", [2, 4, 3, 3, 3, 1], "erf", 0.5))
    for idx, (loss, widths, act, beta) in enumerate(cases):
        tag = "curvature %s %s L=%d" % (loss, act, len(widths) - 1)
        m = os.path.join(TMP, "model%d" % idx)
        cli("init", "--widths", ",".join(map(str, widths)), "--act", act, "--beta", repr(beta),
            "--seed", 10 + idx, "--out", m)
        net = nh.Net.load(m)
        same = nh.Net(widths, act=act, beta=beta, seed=10 + idx)
        check(np.array_equal(net.params, same.params), tag + ": Net(seed=s) equals `ntkhess init --seed s`")
        check(net.widths == tuple(widths) and net.act == act and net.beta == beta and net.param == "ntk",
              tag + ": loaded configuration")
        X, T = make_data(7, widths[0], widths[-1], loss)
        xp, tp, vp = (os.path.join(TMP, "c%d_%s.npy" % (idx, s)) for s in ("X", "T", "v"))
        np.save(xp, X)
        np.save(tp, T)
        v = rng.standard_normal(net.nparams)
        np.save(vp, v)
        out = os.path.join(TMP, "curv%d" % idx)
        cli("curvature", "--model", m, "--data", xp, "--targets", tp, "--loss", loss, "--hvp", vp, "--dense",
            "--out", out)
        ld = lambda f: np.load(os.path.join(out, f))  # noqa: E731
        c = nh.Curvature(net, X, T, loss=loss)
        close(c.grad(), ld("grad.npy"), tag + ": grad")
        close(c.outputs(), ld("Y.npy"), tag + ": Y")
        close(c.G(), ld("G.npy"), tag + ": G")
        K = c.ntk()
        close(K, ld("ntk.npy"), tag + ": ntk")
        close(c.hvp(v), ld("Hv.npy"), tag + ": Hv")
        iv, sv = c.isvp(v)
        close(iv, ld("Iv.npy"), tag + ": Iv")
        close(sv, ld("Sv.npy"), tag + ": Sv")
        close(c.ivp(v), ld("Iv.npy"), tag + ": ivp", tol=1e-10)
        close(c.svp(v), ld("Sv.npy"), tag + ": svp", tol=1e-10)
        D = c.dense()
        for k in "HIS":
            close(D[k], ld(k + ".npy"), tag + ": dense " + k)
            close(nh.eigvalsh(D[k]), ld("eig%s.npy" % k), tag + ": eigenvalues of " + k)
        with open(os.path.join(out, "summary.json")) as fh:
            sj = json.load(fh)
        close(c.loss, sj["loss"], tag + ": loss")
        close(c.trace_i_exact(4, K), sj["tr_I"], tag + ": Tr(I^k) from the NTK")
        close(float(np.sum(c.G() * c.dloss())), sj["tr_S1"], tag + ": Tr S = G . dC/dY")
        # Lanczos vs `spectrum --top 3 --json`, on H and on I (smallest too).
        for of, extra, which in (("H", [], "LA"), ("I", [], "LA"), ("H", ["--smallest"], "SA")):
            js = json.loads(cli("spectrum", "--model", m, "--data", xp, "--targets", tp, "--loss", loss,
                                "--of", of, "--top", 3, "--json", *extra))
            lz = c.lanczos(3, op=of, which=which, tol=LANCZOS_TOL, seed=0)
            scale = max(abs(lz["eigenvalues"]).max(), 1e-300)
            err = float(np.abs(lz["eigenvalues"] - np.array(js["eigenvalues"])).max() / scale)
            check(err <= LANCZOS_TOL, "%s: Lanczos %s %s vs `spectrum --top 3 --json`" % (tag, of, which),
                  "(rel err %.3g)" % err)
            dense = nh.eigvalsh(D[of])
            ref = dense[::-1][:3] if which == "LA" else dense[:3]
            err = float(np.abs(lz["eigenvalues"] - ref).max() / max(abs(dense).max(), 1e-300))
            check(err <= 1e-8, "%s: Lanczos %s %s vs dense eigenvalues" % (tag, of, which), "(rel err %.3g)" % err)
            Vq = lz["eigenvectors"]
            close(c.hvp(Vq) if of == "H" else c.ivp(Vq), lz["eigenvalues"][:, None] * Vq,
                  "%s: Lanczos %s eigenvectors" % (tag, of), tol=1e-8)
        # A model saved by the binding is read by the CLI identically.
        pm = os.path.join(TMP, "pymodel%d" % idx)
        net2 = nh.Net(widths, act=act, beta=beta, seed=None)
        check(not net2.params.any(), tag + ": seed=None leaves theta = 0")
        net2.params[:] = rng.standard_normal(net2.nparams)
        net2.save(pm)
        out2 = os.path.join(TMP, "curv%d_py" % idx)
        cli("curvature", "--model", pm, "--data", xp, "--targets", tp, "--loss", loss, "--hvp", vp, "--out", out2)
        c2 = nh.Curvature(net2, X, T, loss=loss)
        close(c2.hvp(v), np.load(os.path.join(out2, "Hv.npy")), tag + ": Net.save -> CLI, Hv")
        close(c2.grad(), np.load(os.path.join(out2, "grad.npy")), tag + ": Net.save -> CLI, grad")
        for l in range(net2.depth):
            check(np.array_equal(np.load(os.path.join(pm, "W%d.npy" % l)), net2.W(l))
                  and np.array_equal(np.load(os.path.join(pm, "b%d.npy" % l)), net2.b(l)),
                  tag + ": W%d, b%d files equal the views" % (l, l))


# ------------------------------------------------ 4. Python-side behaviour

def t_errors():
    try:
        nh.Net([3, 4, 1], act="nope")
        check(False, "unknown activation raises")
    except nh.NtkhessError as e:
        check(e.name == "NH_EINVAL" and e.status == 1 and e.strerror == "invalid argument"
              and "nope" in e.detail and e.function == "nh_act_from_name" and "NH_EINVAL" in str(e),
              "NtkhessError carries the status name and nh_last_error()", repr(str(e)))
    try:
        nh.Net.load(os.path.join(TMP, "no_such_model"))
        check(False, "loading a missing model raises")
    except nh.NtkhessError as e:
        check(e.name == "NH_EIO" and e.detail != "", "missing model directory: NH_EIO", str(e))
    net = nh.Net([2, 3, 1], seed=0)
    bad = np.ones(net.nparams)
    bad[2] = np.nan
    try:
        net.set_params(bad)
        check(False, "NaN parameters raise")
    except nh.NtkhessError as e:
        check(e.name == "NH_ENONFINITE", "set_params with NaN: NH_ENONFINITE", str(e))
    c = nh.Curvature(net, np.ones((3, 2)), np.zeros((3, 1)))
    for what, fn in (("hvp of a wrong length", lambda: c.hvp(np.ones(net.nparams + 1))),
                     ("X with a wrong width", lambda: nh.Curvature(net, np.ones((3, 5)), np.zeros(3))),
                     ("targets with a wrong length", lambda: nh.Curvature(net, np.ones((3, 2)), np.zeros(4))),
                     ("a 3-D block", lambda: c.hvp(np.ones((1, 1, net.nparams)))),
                     ("forward with a wrong width", lambda: net.forward(np.ones((2, 3))))):
        try:
            fn()
            check(False, what + " raises")
        except nh.NtkhessError as e:
            check(e.name == "NH_ESHAPE" and "expected shape" in e.detail, what + ": NH_ESHAPE", str(e))
    for what, fn, name in (
            ("bce labels 0/1", lambda: nh.Curvature(net, np.ones((2, 2)), np.array([0.0, 1.0]), loss="bce"),
             "NH_EINVAL"),
            ("unknown loss", lambda: nh.Curvature(net, np.ones((2, 2)), np.zeros(2), loss="hinge"), "NH_EINVAL"),
            ("unknown operator", lambda: c.trace("Q"), "NH_EINVAL"),
            ("k > P in Lanczos", lambda: c.lanczos(net.nparams + 1), "NH_EINVAL"),
            ("missing Gram matrix", lambda: nh.predict_mse({"theta": np.eye(3)}, np.zeros(3), np.zeros(3),
                                                            np.zeros(3), [0.0]), "NH_EINVAL"),
            ("decreasing times", lambda: nh.predict_mse_expect(nh.kernels_gram(np.eye(3)), np.zeros(3), [1.0, 0.5]),
             "NH_EINVAL"),
            ("non-finite X", lambda: nh.Curvature(net, np.array([[1.0, np.inf]]), np.zeros(1)), "NH_ENONFINITE"),
            ("depth 0 kernels", lambda: nh.kernels_pair([1.0], [1.0], depth=0), "NH_EINVAL")):
        try:
            fn()
            check(False, what + " raises")
        except nh.NtkhessError as e:
            check(e.name == name and e.detail, "%s: %s" % (what, name), str(e))
    try:
        nh.predict_mse_expect(nh.kernels_gram(np.eye(3)), np.zeros(3), [0.0], bogus=1)
        check(False, "unknown prediction option raises")
    except TypeError:
        check(True, "unknown prediction option: TypeError")
    check(nh.STATUS_NAMES[11] == "NH_ENUMERIC" and nh.STATUS_NAMES[12] == "NH_EBUSY" and len(nh.STATUS_NAMES) == 13, "status names")


def t_params_and_inputs():
    net = nh.Net([3, 4, 2], act="sigmoid", beta=0.3, seed=5)
    X = rng.standard_normal((5, 3))
    T = rng.standard_normal((5, 2))
    p = net.params
    check(p.flags.writeable and p.shape == (net.nparams,) and p.dtype == np.float64, "params is a writable view")
    check(np.array_equal(p, nh.rng_normal(5, net.nparams)), "params = rng_normal(seed, P) (documented generator)")
    c = nh.Curvature(net, X, T)
    l0, y0 = c.loss, net.forward(X)
    # The forward pass by hand, in the documented parametrization.
    a = X.T
    for l in range(net.depth):
        z = net.W(l) @ a / np.sqrt(net.widths[l]) + net.beta * net.b(l)[:, None]
        a = 1 / (1 + np.exp(-z)) if l < net.depth - 1 else z
    close(y0, a.T, "forward = W a / sqrt(n) + beta b by NumPy", tol=1e-14)
    close(net(X[0]), y0[0], "forward of one input (n0,)", tol=0)
    p[0] += 0.5
    check(net.get_params()[0] == p[0] and not np.array_equal(net.forward(X), y0), "writes through the view")
    check(c.loss == l0, "the context keeps its cached passes until refresh")
    c.refresh()
    check(c.loss != l0, "refresh picks up the new theta")
    net.W(0)[1, 2] = 3.0
    check(net.params[net.offset_W(0) + 1 * 3 + 2] == 3.0, "W(l) is a view at offset_W + i n_l + j")
    net.b(1)[1] = -2.0
    check(net.params[net.offset_b(1) + 1] == -2.0, "b(l) is a view at offset_b")
    cp = net.get_params()
    view = net.params
    del net, c, p
    gc.collect()
    check(np.array_equal(view, cp), "a params view keeps the network alive")
    # Conversions: lists, float32, Fortran order, non-contiguous slices.
    net = nh.Net([3, 4, 2], act="tanh", seed=2)
    v = rng.standard_normal(net.nparams)
    ref_c = nh.Curvature(net, X, T)
    ref = ref_c.hvp(v)
    c2 = nh.Curvature(net, np.asfortranarray(X), T.tolist())
    close(c2.hvp(list(v)), ref, "lists and Fortran-order inputs", tol=0)
    big = np.zeros((net.nparams, 2))
    big[:, 0] = v
    close(c2.hvp(big[:, 0]), ref, "a strided vector", tol=0)
    c3 = nh.Curvature(net, X.astype(np.float32), T.astype(np.float32))
    check(np.all(np.isfinite(c3.hvp(v.astype(np.float32)))), "float32 inputs are converted")
    check(ref_c.hvp(v).dtype == np.float64, "outputs are float64")
    # clone is independent
    n2 = net.clone()
    n2.params[:] = 0
    check(net.params.any() and not n2.params.any(), "clone is an independent copy")


def t_operators():
    for loss, widths, act in (("mse", [3, 6, 5, 2], "softplus"), ("ce", [3, 5, 3], "arctan"),
                              ("bce", [2, 4, 4, 4, 1], "sin")):
        tag = "%s %s" % (loss, act)
        net = nh.Net(widths, act=act, beta=0.2, seed=4)
        X, T = make_data(6, widths[0], widths[-1], loss)
        c = nh.Curvature(net, X, T, loss=loss)
        P = net.nparams
        D = c.dense()
        H, Im, S = D["H"], D["I"], D["S"]
        V = rng.standard_normal((4, P))
        close(c.hvp(V), V @ H.T, tag + ": hvp of a block = dense H", tol=1e-12)
        close(c.hvp(V), np.array([c.hvp(r) for r in V]), tag + ": hvp block = rows", tol=1e-13)
        close(c.ivp(V), V @ Im.T, tag + ": ivp block", tol=1e-12)
        close(c.svp(V), V @ S.T, tag + ": svp block", tol=1e-11)
        iv, sv = c.isvp(V)
        close(iv + sv, c.hvp(V), tag + ": Iv + Sv = Hv", tol=1e-13)
        J = c.jacobian()
        close(c.jvp(V[0]).ravel(), J @ V[0], tag + ": jvp = J v", tol=1e-13)
        u = rng.standard_normal((6, widths[-1]))
        close(c.vjp(u), J.T @ u.ravel(), tag + ": vjp = J^T u", tol=1e-13)
        close(c.ntk(), J @ J.T, tag + ": ntk = J J^T", tol=1e-13)
        HC = c.hloss()
        Hc = np.zeros((J.shape[0], J.shape[0]))
        no = widths[-1]
        for i in range(6):
            Hc[i * no:(i + 1) * no, i * no:(i + 1) * no] = HC[i]
        close(Im, J.T @ Hc @ J, tag + ": I = J^T HC J", tol=1e-12)
        val, g, hc = nh.loss_eval(loss, c.outputs(), T)
        close(val, c.loss, tag + ": loss_eval = C", tol=1e-15)
        close(g, c.dloss(), tag + ": loss_eval gradient = dC/dY", tol=1e-15)
        close(hc, HC, tag + ": loss_eval HC", tol=1e-15)
        close(c.grad(), J.T @ g.ravel(), tag + ": grad = J^T dC/dY", tol=1e-13)
        pw = [np.linalg.matrix_power(H, k) for k in (1, 2, 3, 4)]
        tr = c.trace("H", 4, method="exact")
        close(tr["est"], [np.trace(x) for x in pw], tag + ": exact trace of H^k", tol=1e-11)
        check(np.all(tr["se"] == 0) and tr["nprobes"] == P, tag + ": exact trace: se = 0, P probes")
        tI = c.trace("I", 4, control=True)
        close(tI["est"], [np.trace(np.linalg.matrix_power(Im, k)) for k in (1, 2, 3, 4)],
              tag + ": trace of I with control variates is exact", tol=1e-10)
        close(c.trace_i_exact(4), tI["est"], tag + ": trace_i_exact", tol=1e-12)
        th = c.trace("S", 2, nprobes=64, seed=3)
        check(th["est"].shape == (2,) and np.all(np.isfinite(th["se"])) and th["nproducts"] == 64,
              tag + ": Hutchinson estimate with standard errors")
        hp = c.trace("H", 2, method="hutchpp", nprobes=8, sketch=P, seed=1)
        close(hp["est"][1], np.trace(pw[1]), tag + ": Hutch++ with a full sketch is exact", tol=1e-9)
        o = c.orthogonality(method="exact")
        close(o["is_fro"], np.linalg.norm(Im @ S), tag + ": ||I S||_F", tol=1e-9)
        close(o["s_fro"], np.linalg.norm(S), tag + ": ||S||_F (exact)", tol=1e-11)
        close(o["i_fro"], np.linalg.norm(Im), tag + ": ||I||_F", tol=1e-11)
        sq = c.slq("I", nvec=4, nsteps=min(P, 20), seed=2, grid=np.linspace(-1, 5, 50), sigma=0.1)
        check(sq["nodes"].shape == (4, min(P, 20)) and abs(sq["weights"].sum() - 1) < 1e-12
              and sq["density"].shape == (50,), tag + ": slq shapes, weights sum to 1")
        ri, rs = c.rayleigh(V)
        close(ri, np.einsum("ij,jk,ik->i", V, Im, V) / np.einsum("ij,ij->i", V, V), tag + ": Rayleigh I", 1e-12)
        close(rs, np.einsum("ij,jk,ik->i", V, S, V) / np.einsum("ij,ij->i", V, V), tag + ": Rayleigh S", 1e-10)
        th0 = net.get_params()
        u1, u2 = V[0] / np.linalg.norm(V[0]), V[1] / np.linalg.norm(V[1])
        sl = c.slice(u1, u2, 0.1, 3)
        check(sl.shape == (3, 3) and sl[1, 1] == c.loss and np.array_equal(net.params, th0),
              tag + ": slice centre = C, theta restored")
        g0, l0 = c.grad(), c.loss
        l1 = c.gd_step(0.01)
        close(net.params, th0 - 0.01 * g0, tag + ": gd_step = theta - eta grad", tol=1e-15)
        check(l1 == c.loss and l1 != l0, tag + ": gd_step refreshes")


def t_misc():
    x = np.linspace(-2, 2, 11)
    d0, d1, d2, d3 = nh.act_eval("tanh", x)
    close(d0, np.tanh(x), "act_eval tanh", tol=1e-15)
    close(d1, 1 - np.tanh(x) ** 2, "act_eval tanh'", tol=1e-14)
    d0, d1, _, _ = nh.act_eval("softplus", x)
    close(d0, np.log1p(np.exp(x)), "act_eval softplus", tol=1e-15)
    d = os.path.join(TMP, "data")
    cli("data", "sphere", "--n", 9, "--dim", 4, "--seed", 5, "--out", d)
    X, T = nh.data_synth("sphere", 9, 4, seed=5)
    close(X, np.load(os.path.join(d, "X.npy")), "data_synth = `ntkhess data sphere`", tol=0)
    close(T, np.load(os.path.join(d, "Y.npy")).ravel(), "data_synth targets", tol=0)
    z, w = nh.gauss_hermite(20)
    close([w.sum(), w @ z ** 2, w @ z ** 4], [1, 1, 3], "Gauss-Hermite moments", tol=1e-13)
    A = rng.standard_normal((5, 5))
    A = A + A.T
    wv, V = nh.eigh(A)
    close(V @ np.diag(wv) @ V.T, A, "eigh reconstructs", tol=1e-13)
    close(nh.eigvalsh(A), np.linalg.eigvalsh(A), "eigvalsh vs NumPy", tol=1e-13)
    lim = nh.get_mem_limit()
    nh.set_mem_limit(1 << 20)
    try:
        nh.Net([1000, 1000, 1000, 1])
        check(False, "memory limit enforced")
    except nh.NtkhessError as e:
        check(e.name == "NH_ETOOLARGE", "memory limit: NH_ETOOLARGE", str(e))
    finally:
        nh.set_mem_limit(0)
    check(nh.get_mem_limit() == lim, "memory limit restored")
    nh.set_threads(1)
    K1 = nh.kernels_gram(rng.standard_normal((6, 3)), depth=3)
    nh.set_threads(0)
    check(all(np.all(np.isfinite(v)) for v in K1.values()), "set_threads")
    check(nh.check_targets("ce", [0, 2, 1], nout=3).shape == (3,), "check_targets")


section("install (venv, no isolation, wheel)", t_install_more)
section("library lookup", t_lookup)
section("ABI", t_abi)
section("kernel vs CLI", t_kernel)
section("gram vs CLI", t_gram)
section("predict vs CLI", t_predict)
section("curvature/spectrum vs CLI", t_curvature)
section("errors", t_errors)
section("params and input conversion", t_params_and_inputs)
section("operators", t_operators)
section("misc", t_misc)

shutil.rmtree(TMP, ignore_errors=True)
finish()
