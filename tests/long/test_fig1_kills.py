#!/usr/bin/python3
"""fig1 under kill -9 at random points (issue 13 item 1): a run killed
anywhere -- in the first second of each nonlinearity (theory, trial file
creation, the first trials), between trials, while writing the summary or
plotting -- and started again with the same arguments ends with exactly the
output of an uninterrupted run: fig1.csv, summary.json's points, fig1.png and
fig1.svg byte for byte.  At least 20 delivered kills (NH_KILLS=N for more),
at least 3 of them in the first second of each of the two nonlinearities.
The smallest fig1 that exercises two nonlinearities and takes a few seconds.
Prints 'N passed, N failed'."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nhtest import BIN, check, cli, finish  # noqa: E402

ARGS = ["fig1", "--data", "sphere", "--n", "16", "--width", "100", "--trials", "40", "--steps", "8", "--every", "4",
        "--acts", "softplus,nsoftplus", "--threads", "1"]
ACTS = ["softplus", "nsoftplus"]


def outputs(d):
    s = json.load(open(os.path.join(d, "summary.json")))
    files = {f: open(os.path.join(d, f), "rb").read() for f in ["fig1.csv", "fig1.png", "fig1.svg"]}
    return s["points"], files


def main():
    need = int(os.environ.get("NH_KILLS", "20"))
    rng = random.Random(int(os.environ.get("NH_KILL_SEED", "1")))
    t = tempfile.mkdtemp(prefix="nh_fig1_kills_")
    j = lambda *p: os.path.join(t, *p)
    try:
        t0 = time.time()
        r = cli(*ARGS, "--out", j("ref"))
        T = time.time() - t0
        check(r.returncode == 0, "uninterrupted reference run", r.stderr[-300:])
        ref = outputs(j("ref"))
        work = j(".res.partial")
        kills, early = 0, {a: 0 for a in ACTS}
        cycles = attempts = 0
        while (kills < need or min(early.values()) < 3) and attempts < 40 * need:
            attempts += 1
            # Where to kill: within the first second of a nonlinearity (its
            # start is the process start for the first; the appearance of its
            # trial file for the second, which follows its theory), or at a
            # uniformly random time of the whole run.
            mode = rng.choice(["first", "second", "any", "any"])
            p = subprocess.Popen([BIN, *ARGS, "--out", j("res")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            start = time.time()
            if mode == "second":
                f = os.path.join(work, "trials_nsoftplus.csv")
                while p.poll() is None and not os.path.exists(f) and time.time() - start < 60:
                    time.sleep(0.002)
                wait = rng.uniform(0.0, 1.0)
            else:
                wait = rng.uniform(0.0, 1.0) if mode == "first" else rng.uniform(0.0, 1.1 * T)
            deadline = time.time() + wait
            while p.poll() is None and time.time() < deadline:
                time.sleep(0.001)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
                if mode in ("first", "second"):
                    early[ACTS[0] if mode == "first" else ACTS[1]] += 1
            p.wait()
            err = p.stderr.read().decode(errors="replace")
            p.stderr.close()
            if p.returncode not in (0, -signal.SIGKILL):
                check(False, "a resumed run failed", "rc=%s %s" % (p.returncode, err[-400:]))
                break
            if p.returncode == 0 or kills >= need and min(early.values()) >= 3:
                # finish this cycle: run to completion, compare, start over
                r = cli(*ARGS, "--out", j("res"))
                same = r.returncode == 0 and outputs(j("res")) == ref
                check(same, "cycle %d: resumed output == uninterrupted (csv, points, png, svg)" % cycles,
                      r.stderr[-300:])
                left = sorted(e for e in os.listdir(t) if e.startswith(".res"))
                check(not left, "cycle %d: no work folder or lock left" % cycles, str(left))
                shutil.rmtree(j("res"), ignore_errors=True)
                cycles += 1
        check(kills >= need, "at least %d kills delivered" % need, "(%d in %d attempts)" % (kills, attempts))
        check(min(early.values()) >= 3, "at least 3 kills in the first second of each nonlinearity", str(early))
        print("# fig1 kill loop: %d kills (%s in the first second), %d cycles, reference run %.2f s"
              % (kills, early, cycles, T))
    finally:
        shutil.rmtree(t, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
