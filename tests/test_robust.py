#!/usr/bin/python3
"""Robustness: a full disk (a tiny tmpfs, or a file-size limit where mounting is
not allowed) gives one-line errors and never replaces a good output file by a
partial one; a diverging run fails with one line and writes nothing (issue 13).
Prints 'N passed, N failed'."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

BIN = os.path.abspath(os.environ.get("NTKHESS", os.path.join(os.path.dirname(__file__), "..", "build", "ntkhess")))
passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        if os.environ.get("NH_TEST_VERBOSE") == "1":
            print(f"PASS: {what}")
    else:
        failed += 1
        print(f"FAIL: {what} {detail}")


def run(*args, cwd=None, pre=""):
    cmd = " ".join([pre, BIN] + [f"'{a}'" for a in map(str, args)])
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=cwd, timeout=300)


def one_line_error(r, kw):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    return r.returncode == 1 and len(lines) == 1 and kw.lower() in r.stderr.lower()


def main():
    with tempfile.TemporaryDirectory() as t:
        j = lambda *p: os.path.join(t, *p)
        # good outputs first, on a normal disk
        run("data", "sphere", "--n", "64", "--dim", "10", "--out", j("d"))
        run("init", "--widths", "10,40,40,1", "--out", j("m"))
        # --- a full disk: 256 KiB tmpfs
        fs = j("tiny")
        os.makedirs(fs)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", fs],
                                 capture_output=True).returncode == 0
        check(mounted, "a tiny tmpfs can be mounted (root) for the full-disk tests")
        if mounted:
            try:
                r = run("curvature", "--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"),
                        "--out", os.path.join(fs, "c"))
                check(r.returncode == 0, "curvature fits on the tmpfs", r.stderr)
                good = {f: open(os.path.join(fs, "c", f), "rb").read() for f in os.listdir(os.path.join(fs, "c"))}
                # fill the disk, then overwrite the same outputs with a bigger problem
                with open(os.path.join(fs, "filler"), "wb") as f:
                    try:
                        f.write(b"\0" * (256 * 1024 - 40 * 1024))
                    except OSError:
                        pass
                run("data", "sphere", "--n", "400", "--dim", "10", "--out", j("d2"))
                r = run("curvature", "--model", j("m"), "--data", j("d2", "X.npy"), "--targets", j("d2", "Y.npy"),
                        "--out", os.path.join(fs, "c"))
                check(one_line_error(r, "no space"), "full disk: curvature fails with one line naming the problem",
                      repr(r.stderr))
                now = {f: open(os.path.join(fs, "c", f), "rb").read() for f in os.listdir(os.path.join(fs, "c"))}
                check(all(now.get(f) == b for f, b in good.items()) and set(now) == set(good),
                      "full disk: every earlier good output is intact and no temporary file is left",
                      str(sorted(set(now) ^ set(good))))
                r = run("init", "--widths", "10,300,300,1", "--out", os.path.join(fs, "big"))
                check(one_line_error(r, "no space"), "full disk: init", repr(r.stderr))
                check(not os.path.exists(os.path.join(fs, "big", "config.json")),
                      "full disk: no loadable half-written model")
                r = run("data", "sphere", "--n", "5000", "--dim", "20", "--out", os.path.join(fs, "dd"))
                check(one_line_error(r, "no space"), "full disk: data", repr(r.stderr))
                check(not os.path.exists(os.path.join(fs, "dd", "X.npy")), "full disk: no partial X.npy")
                r = run("train", "--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"), "--lr",
                        "0.5", "--steps", "3000", "--out", os.path.join(fs, "tr"))
                check(r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, "full disk: train",
                      repr(r.stderr))
                r = run("measure", "--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"),
                        "--lr", "0.5", "--steps", "4000", "--every", "1", "--probes", "1",
                        "--out", os.path.join(fs, "meas.csv"))
                check(one_line_error(r, "no space"), "full disk: measure --probes 1 fails for the disk, not divergence",
                      repr(r.stderr))
                check(sorted(os.listdir(fs)) == ["c", "filler"], "full disk: no output or temporary of the failed runs",
                      str(sorted(os.listdir(fs))))
                r = run("fig2", "--data", "sphere", "--n", "16", "--width", "30", "--k", "3", "--out",
                        os.path.join(fs, "f2"))
                check(r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, "full disk: fig2 plots",
                      repr(r.stderr))
                check(not any(n.startswith("fig2.png") or n.startswith("fig2.svg")
                              for n in (os.listdir(os.path.join(fs, "f2")) if os.path.isdir(os.path.join(fs, "f2"))
                                        else [])), "full disk: no partial plot files")
            finally:
                subprocess.run(["umount", fs])
        # --- a file-size limit (RLIMIT_FSIZE): a write error, not a SIGXFSZ kill
        r = run("data", "sphere", "--n", "5000", "--dim", "50", "--out", j("lim"), pre="ulimit -f 64;")
        check(one_line_error(r, "too large") or one_line_error(r, "write"),
              "file-size limit: one-line write error, no signal", f"rc={r.returncode} {r.stderr!r}")
        check(not os.path.exists(j("lim", "X.npy")), "file-size limit: no partial X.npy")
        # --- divergence: one line, nothing written, no temporaries (all or nothing)
        r = run("train", "--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"), "--lr", "1e9",
                "--steps", "50", "--out", j("div"))
        left = [f for f in os.listdir(t) if "div" in f]
        check(one_line_error(r, "diverged") and not left, "diverging training: message, nothing left behind",
              repr(r.stderr) + str(left))
        r = run("measure", "--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"), "--lr", "1e9",
                "--steps", "50", "--every", "1", "--probes", "2", "--out", j("div.csv"))
        left = [f for f in os.listdir(t) if "div" in f]
        check(one_line_error(r, "diverged") and not left, "diverging measure: message, nothing left behind",
              repr(r.stderr) + str(left))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
