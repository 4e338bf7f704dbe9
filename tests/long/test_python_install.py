#!/usr/bin/python3
"""Installation of the Python package `ntkhess` (python/), offline, exactly as
docs/python.md documents it: `/usr/bin/python3 -m pip install --no-index
--target DIR ./python`, into a venv made with --system-site-packages, with
--no-build-isolation, and `pip wheel`; the library lookup order
($NTKHESS_LIB, in-tree build/, installed soname) checked in subprocesses.
The rest of the binding's tests (ABI, agreement with the CLI, behaviour) are
tests/test_python.py (make check).  Prints a FAIL line per failure (PASS
lines with NH_TEST_VERBOSE=1) and ends with 'N passed, N failed'.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nhtest import ROOT, BIN, LIB, asan_reexec, check, finish, run, section  # noqa: E402

BIN, LIB = os.path.abspath(BIN), os.path.abspath(LIB)
PY = sys.executable
# The version lives in include/ntkhess/core.h only.
with open(os.path.join(ROOT, "include", "ntkhess", "core.h")) as _fh:
    VERSION = ".".join(re.findall(r"^#define NH_VERSION_(?:MAJOR|MINOR|PATCH) (\d+)", _fh.read(), re.M))

asan_reexec(LIB)

try:
    import numpy as np
except ImportError as e:  # fail visibly: NumPy is a requirement (python3-numpy)
    check(False, "import numpy", "(%s; install python3-numpy and run with /usr/bin/python3)" % e)
    finish()

TMP = tempfile.mkdtemp(prefix="nh_test_python_")
SRC = os.path.join(ROOT, "python")


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
check(dist == ["ntkhess-%s.dist-info" % VERSION], "installed metadata", "(%s)" % dist)
check(nh.__version__ == nh.library_version() == VERSION, "package and library versions",
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
    # pip wheel: a pure-Python wheel holding the package and nothing binary.
    wh = os.path.join(TMP, "wheel")
    r = run([PY, "-m", "pip", "wheel", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
             "-w", wh, SRC], env=dict(os.environ, NTKHESS_NO_BUNDLE="1"))  # the pure wheel; bundled: test_python_bundle.py
    wheels = sorted(os.listdir(wh)) if os.path.isdir(wh) else []
    if check(r.returncode == 0 and wheels == ["ntkhess-%s-py3-none-any.whl" % VERSION], "pip wheel", str(wheels)):
        import zipfile
        names = zipfile.ZipFile(os.path.join(wh, wheels[0])).namelist()
        check(all(n.startswith(("ntkhess/", "ntkhess-%s.dist-info/" % VERSION)) for n in names)
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


section("install (venv, no isolation, wheel)", t_install_more)
section("library lookup", t_lookup)

shutil.rmtree(TMP, ignore_errors=True)
finish()
