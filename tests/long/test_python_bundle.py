#!/usr/bin/python3
"""`pip install ./python` after `make` gives a package that works alone.

* `pip wheel ./python` bundles build/libntkhess.so and libntkhess-io.so as
  ntkhess/_libs/ (a platform-tagged wheel) and writes the version read from
  include/ntkhess/core.h into ntkhess/_version.py; NTKHESS_NO_BUNDLE=1 gives
  the pure py3-none-any wheel without any .so;
* installed into a venv, the package loads its bundled copy with no
  NTKHESS_LIB, LD_LIBRARY_PATH or PYTHONPATH, from another directory: model
  files (libntkhess-io) work, __version__ == nh_version() == the header's,
  and from_torch gives torch's gradient on the model's own parameters;
* from the source tree (PYTHONPATH=python) the in-tree build/libntkhess.so
  is found with no variable;
* the build leaves python/ clean.
Long (pip builds and a venv): tests/long/.  Prints 'N passed, N failed'.
"""
import os
import re
import shutil
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nhtest import ROOT, asan_reexec, check, finish, run  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SRC = os.path.join(ROOT, "python")
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
TMP = tempfile.mkdtemp(prefix="nh_test_bundle_")
PIP = ["-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]


def header_version():
    text = open(os.path.join(ROOT, "include", "ntkhess", "core.h")).read()
    return ".".join(re.search(r"#define NH_VERSION_%s (\d+)" % k, text).group(1)
                    for k in ("MAJOR", "MINOR", "PATCH"))


VER = header_version()
# An ASan build (make asan): preload its runtime (LD_PRELOAD is kept in CLEAN:
# it is the sanitizer's, not a variable the package needs).
asan_reexec(os.path.join(BUILD, "libntkhess.so"))
if not check(os.path.isfile(os.path.join(BUILD, "libntkhess.so")), "build/libntkhess.so exists (run make)"):
    finish()
CLEAN = {k: v for k, v in os.environ.items()
         if k not in ("NTKHESS_LIB", "PYTHONPATH", "LD_LIBRARY_PATH", "NTKHESS_NO_BUNDLE")}

# 1. wheels
for bundle in (True, False):
    wh = os.path.join(TMP, "wheel_%d" % bundle)
    env = dict(CLEAN) if bundle else dict(CLEAN, NTKHESS_NO_BUNDLE="1")
    r = run([PY, *PIP, "wheel", "--no-index", "-w", wh, SRC], env=env)
    wheels = sorted(os.listdir(wh)) if os.path.isdir(wh) else []
    tag = "bundled" if bundle else "NTKHESS_NO_BUNDLE=1"
    if not check(r.returncode == 0 and len(wheels) == 1, "pip wheel (%s)" % tag, (r.stderr or "")[-400:] + str(wheels)):
        continue
    w = wheels[0]
    names = zipfile.ZipFile(os.path.join(wh, w)).namelist()
    ver_py = zipfile.ZipFile(os.path.join(wh, w)).read("ntkhess/_version.py").decode()
    check('__version__ = "%s"' % VER in ver_py, "%s: the wheel's _version.py holds core.h's %s" % (tag, VER), ver_py)
    sos = sorted(n for n in names if ".so" in n)
    if bundle:
        check(w.startswith("ntkhess-%s-py3-none-linux" % VER) and
              sos == ["ntkhess/_libs/libntkhess-io.so", "ntkhess/_libs/libntkhess.so.0"],
              "the wheel bundles the built libraries, platform-tagged", "%s %s" % (w, sos))
    else:
        check(w == "ntkhess-%s-py3-none-any.whl" % VER and not sos, "the pure wheel has no .so", "%s %s" % (w, sos))

# 2. a venv install used from elsewhere, with no variable
venv = os.path.join(TMP, "venv")
r = run([PY, "-m", "venv", "--system-site-packages", "--without-pip", venv])
vpy = os.path.join(venv, "bin", "python")
if check(r.returncode == 0, "python3 -m venv --system-site-packages", r.stderr[-300:]):
    r = run([vpy, *PIP, "install", "--no-index", SRC], env=CLEAN)
    if check(r.returncode == 0, "pip install --no-index ./python into the venv", (r.stderr or r.stdout)[-400:]):
        code = r'''
import os, sys, tempfile, numpy as np, ntkhess as nh
print(nh.library_path()); print(nh.__version__, nh.library_version())
d = tempfile.mkdtemp(); n = nh.Net([3, 4, 2], act="tanh", seed=1); n.save(d + "/m")
print(np.array_equal(nh.Net.load(d + "/m").params, n.params))
import torch; torch.manual_seed(0); torch.set_default_dtype(torch.float64)
m = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.SiLU(), torch.nn.Linear(5, 2, bias=False))
X, T = torch.randn(7, 3), torch.randn(7, 2)
loss = 0.5 * ((m(X) - T) ** 2).sum() / 7
g = torch.cat([p.flatten() for p in torch.autograd.grad(loss, list(m.parameters()))]).numpy()
c = nh.Curvature(nh.from_torch(m), X.numpy(), T.numpy())
print(float(np.linalg.norm(c.grad() - g) / np.linalg.norm(g)))
'''
        r = run([vpy, "-c", code], cwd=TMP, env=CLEAN)
        out = r.stdout.split("\n")
        ok = r.returncode == 0 and len(out) >= 4
        if check(ok, "the installed package runs with no variable", (r.stdout + r.stderr)[-500:]):
            check(out[0].startswith(venv) and out[0].endswith("_libs/libntkhess.so.0"),
                  "it loads its bundled library", out[0])
            check(out[1] == "%s %s" % (VER, VER), "__version__ == nh_version() == core.h's", out[1])
            check(out[2] == "True", "model files (libntkhess-io) work from the bundle", out[2])
            check(float(out[3]) < 1e-12, "from_torch from the installed package: torch's gradient",
                  "(rel err %s)" % out[3])

# 3. in-tree, no variable
r = run([PY, "-c", "import ntkhess as nh; print(nh.library_path()); print(nh.__version__)"], cwd=TMP,
        env=dict(CLEAN, PYTHONPATH=SRC))
lines = r.stdout.split()
check(r.returncode == 0 and lines[:2] == [os.path.join(BUILD, "libntkhess.so"), VER] if BUILD == os.path.join(ROOT, "build")
      else r.returncode == 0, "in-tree: build/libntkhess.so found with no variable", (r.stdout + r.stderr)[-300:])
leftovers = [d for d in os.listdir(SRC) if d not in ("ntkhess", "_backend", "pyproject.toml") and not d.startswith(".")]
check(not leftovers, "pip leaves python/ clean", str(leftovers))
shutil.rmtree(TMP, ignore_errors=True)
finish()
