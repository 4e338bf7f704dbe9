"""Shared helpers for the Python test scripts (one copy, imported by each).

Usage at the top of a test script:
    import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from nhtest import check, close, rel, finish, section, run, cli, expect_error, ROOT, BIN, LIB

Each script prints FAIL lines (PASS too with NH_TEST_VERBOSE=1) and ends with
finish(): the closing line 'N passed, N failed' and exit status 1 on failure.
"""
import os
import subprocess
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
BIN = os.environ.get("NTKHESS", os.path.join(ROOT, BUILD, "ntkhess"))
LIB = os.environ.get("NTKHESS_LIB", os.path.join(ROOT, BUILD, "libntkhess.so"))
VERBOSE = os.environ.get("NH_TEST_VERBOSE") == "1"

_count = {"passed": 0, "failed": 0}


def check(ok, what, detail=""):
    """One assertion: FAIL line when not ok; returns ok."""
    if ok:
        _count["passed"] += 1
        if VERBOSE:
            d = str(detail).strip()
            print("PASS: %s %s" % (what, d.splitlines()[-1][:200] if d else ""))
    else:
        _count["failed"] += 1
        print("FAIL: %s %s" % (what, detail))
    sys.stdout.flush()
    return bool(ok)


def counts():
    return _count["passed"], _count["failed"]


def finish():
    print("%d passed, %d failed" % counts())
    sys.exit(1 if _count["failed"] else 0)


def rel(a, b):
    """Relative 2-norm error of a against b (inf on a shape mismatch)."""
    import numpy as np
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return float("inf")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def close(a, b, what, tol):
    e = rel(a, b)
    return check(e <= tol, what, "(rel err %.3g, tol %.0e)" % (e, tol))


def section(name, fn, *args):
    """Run a group of checks; an unexpected exception is one FAIL, not a crash."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - report and continue
        check(False, name, "raised %s: %s" % (type(e).__name__, e))
        if VERBOSE:
            traceback.print_exc()
        return None


def run(args, timeout=600, **kw):
    """Run a command (list), capturing text output."""
    return subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, **kw)


def cli(*args, timeout=600, **kw):
    """Run the ntkhess CLI with the given arguments."""
    return run([BIN, *args], timeout=timeout, **kw)


def expect_error(what, args, keyword, codes=(1, 2)):
    """A bad input: exit code in codes, exactly one stderr line naming keyword."""
    r = cli(*args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    ok = r.returncode in codes and len(lines) == 1 and keyword.lower() in r.stderr.lower()
    return check(ok, "bad input: %s" % what, "(rc=%s, stderr=%r)" % (r.returncode, r.stderr.strip()))


def import_binding(with_torch=False):
    """The in-tree Python package on this build's library (NTKHESS_LIB = LIB):
    returns ntkhess, or (ntkhess, ntkhess.torch); a failure is one FAIL and
    the script's end."""
    os.environ["NTKHESS_LIB"] = LIB
    sys.path.insert(0, os.path.join(ROOT, "python"))
    try:
        import ntkhess as nh
        nh.library_version()
        if not with_torch:
            return nh
        import ntkhess.torch as nt
        return nh, nt
    except Exception as e:  # noqa: BLE001
        check(False, "import ntkhess%s (python/, %s)" % (" and ntkhess.torch" if with_torch else "", LIB),
              "(%s: %s)" % (type(e).__name__, e))
        finish()


def asan_reexec(lib=LIB):
    """`make asan` builds libntkhess.so with ASan/UBSan instrumentation but
    without linking their runtimes; Python can load such a library only with
    the runtimes preloaded.  Re-execute the calling script once with
    LD_PRELOAD set (leak detection off: CPython keeps its objects until exit).
    A normal build loads directly and nothing happens."""
    if os.environ.get("NH_TEST_ASAN_REEXEC") or not os.path.isfile(lib):
        return
    if b"libasan.so" not in open(lib, "rb").read():
        import ctypes
        try:
            ctypes.CDLL(lib)
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
