#!/usr/bin/python3
"""kill -9 and resume: train and measure killed mid-way several times, then
run to completion, give the files of an uninterrupted run bit for bit.
Prints 'N passed, N failed'."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nhtest import check, cli as run, finish, BIN  # noqa: E402


def kill_resume(what, args, outputs, tmp, progress, kills=4):
    """Run once uninterrupted into A; run into B killing each attempt with
    SIGKILL once its progress file (relative to the output) has grown by two
    lines, then run to completion; the outputs must be identical."""
    ref = os.path.join(tmp, what + "_ref")
    os.makedirs(ref)
    r = run(*[a.replace("@OUT@", ref) for a in args])
    check(r.returncode == 0, f"{what}: reference run", r.stderr)
    b = os.path.join(tmp, what + "_b")
    os.makedirs(b)
    pf = os.path.join(b, progress)
    count = lambda: open(pf).read().count("\n") if os.path.exists(pf) else 0
    killed = 0
    for _ in range(kills):
        before = count()
        p = subprocess.Popen([BIN, *[a.replace("@OUT@", b) for a in args]], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while p.poll() is None and count() < before + 2 and time.time() < deadline:
            time.sleep(0.005)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
    r = run(*[a.replace("@OUT@", b) for a in args])
    check(r.returncode == 0, f"{what}: final rerun", r.stderr)
    check(killed >= 2, f"{what}: at least 2 runs were really killed mid-way", f"({killed})")
    for o in outputs:
        pa, pb = os.path.join(ref, o), os.path.join(b, o)
        if o.endswith(".npy"):
            same = os.path.exists(pb) and np.array_equal(np.load(pa), np.load(pb))
        else:
            same = os.path.exists(pb) and open(pa).read() == open(pb).read()
        check(same, f"{what}: {o} after kills == uninterrupted")


def main():
    with tempfile.TemporaryDirectory() as t:
        j = lambda *p: os.path.join(t, *p)
        # kill -9 and resume
        run("data", "sphere", "--n", "64", "--dim", "10", "--out", j("d2"))
        run("init", "--widths", "10,300,300,1", "--act", "softplus", "--out", j("m2"))
        kill_resume("train", ["train", "--model", j("m2"), "--data", j("d2", "X.npy"), "--targets", j("d2", "Y.npy"),
                              "--lr", "0.5", "--steps", "300", "--log-every", "10", "--checkpoint-every", "7",
                              "--out", "@OUT@/run"], ["run/train.csv", "run/W0.npy", "run/W2.npy", "run/b1.npy"], t,
                    ".run.partial/train.csv")  # the log grows in the work folder until the run completes
        kill_resume("measure", ["measure", "--model", j("m2"), "--data", j("d2", "X.npy"), "--targets",
                                j("d2", "Y.npy"), "--lr", "0.5", "--steps", "60", "--every", "3", "--probes", "4",
                                "--out", "@OUT@/m.csv"], ["m.csv"], t, ".m.csv.partial/m.csv")
    finish()


if __name__ == "__main__":
    sys.exit(main())
