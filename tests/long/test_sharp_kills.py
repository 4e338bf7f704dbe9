#!/usr/bin/python3
"""Long: `ntkhess sharpness` killed with SIGKILL >= 20 times at varied points
(between records, inside a solve, during a checkpoint's save), then finished:
the record file equals an uninterrupted run's byte for byte, and no killed
run ever left FILE.csv (the records grow in FILE.csv.partial, renamed at the
end).  Also one kill loop of `ntkhess eos` (small options) whose
per-step-size CSVs must match, with no unfinished etaI.csv left by a kill.
Prints 'N passed, N failed'."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nhtest import check, finish, section, cli, BIN  # noqa: E402

import numpy as np  # noqa: E402


def kill_loop(args, out, progress, kills, rng):
    """Start the command repeatedly, each time killing it after a random
    delay once `progress` has grown; returns the number of real kills and of
    kills after which `out` existed."""
    killed, leaked = 0, 0
    count = lambda: open(progress).read().count("\n") if os.path.exists(progress) else 0
    for _ in range(kills):
        before = count()
        p = subprocess.Popen([BIN, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while p.poll() is None and count() <= before and time.time() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.05))  # anywhere: mid-solve, mid-checkpoint
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
            p.wait()
            leaked += os.path.exists(out)
        p.wait()
    return killed, leaked


def sharp_kills(t, kills=24):
    rng = random.Random(16)
    d = os.path.join(t, "d")
    check(cli("data", "sphere", "--n", 300, "--dim", 12, "--seed", 2, "--out", d).returncode == 0, "data")
    y = np.load(os.path.join(d, "Y.npy")).ravel()
    np.save(os.path.join(d, "T.npy"), np.stack([y, np.cos(2 * y)], 1))
    check(cli("init", "--widths", "12,96,96,2", "--act", "tanh", "--seed", 4, "--out", os.path.join(d, "m")).returncode == 0,
          "init")
    args = ["sharpness", "--model", os.path.join(d, "m"), "--data", os.path.join(d, "X.npy"), "--targets",
            os.path.join(d, "T.npy"), "--lr", 3.0, "--steps", 400, "--every", 1, "--top", 2, "--checkpoint-every", 2,
            "--threads", 1]
    ref, out = os.path.join(t, "ref.csv"), os.path.join(t, "b.csv")
    r = cli(*args, "--out", ref)
    check(r.returncode == 0, "reference run", r.stderr)
    killed, leaked = kill_loop(args + ["--out", out], out, out + ".partial", kills, rng)
    check(leaked == 0, "no killed run left FILE.csv (only FILE.csv.partial)", leaked)
    r = cli(*args, "--out", out)
    check(r.returncode == 0, "final rerun", r.stderr)
    check(not os.path.exists(out + ".partial"), "FILE.csv.partial renamed at the end")
    check(killed >= 20, "at least 20 runs really killed mid-way", killed)
    check(open(ref).read() == open(out).read(), "%d kills: records == uninterrupted run, byte for byte" % killed)
    check(not os.path.exists(out + ".ckpt") and not os.path.exists(out + ".warm"), "checkpoint folders removed")


def eos_kills(t, kills=6):
    rng = random.Random(8)
    env = dict(os.environ, NTKHESS_DATA=os.environ.get("NTKHESS_DATA", os.path.join(os.path.dirname(BIN), "..", "data")))
    args = ["eos", "--n", 64, "--size", 7, "--hidden", "32,32,32", "--steps", 60, "--every", 2, "--lrs", "20,40",
            "--threads", 1]
    a, b = os.path.join(t, "ea"), os.path.join(t, "eb")
    r = cli(*args, "--out", a, env=env)
    check(r.returncode == 0, "eos: reference run", r.stderr)
    os.makedirs(b, exist_ok=True)
    killed, leaked = 0, 0
    for _ in range(kills):
        p = subprocess.Popen([BIN, *map(str, args), "--out", b], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env)
        time.sleep(rng.uniform(0.2, 1.5))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
        # an etaI.csv exists only with its .done marker (the run finished); never beside its .partial
        for f in ("eta0.csv", "eta1.csv"):
            leaked += os.path.exists(os.path.join(b, f)) and os.path.exists(os.path.join(b, f + ".partial"))
    check(leaked == 0, "eos: no etaI.csv beside an unfinished etaI.csv.partial after a kill", leaked)
    r = cli(*args, "--out", b, env=env)
    check(r.returncode == 0, "eos: final rerun", r.stderr)
    check(killed >= 2, "eos: at least 2 runs killed", killed)
    for f in ("eta0.csv", "eta1.csv"):
        check(open(os.path.join(a, f)).read() == open(os.path.join(b, f)).read(), "eos: %s after kills == reference" % f)


def main():
    with tempfile.TemporaryDirectory() as t:
        section("sharpness kills", sharp_kills, t)
        section("eos kills", eos_kills, t)
    finish()


if __name__ == "__main__":
    main()
