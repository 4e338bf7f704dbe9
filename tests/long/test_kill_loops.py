#!/usr/bin/python3
"""Kill -9 loops (issue 13): train and measure are killed with SIGKILL at
random points (from the first milliseconds, before any checkpoint, to the
middle of checkpoint writes) at least KILLS times each (default 20,
$NH_KILLS), resumed by rerunning the same command, and the final outputs
must equal an uninterrupted run's byte for byte.  After every kill the
output's folder may hold only the output itself and its .NAME.partial /
.NAME.lock.  Prints the kill counts and 'N passed, N failed'."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nhtest import BIN, check, cli, finish, section  # noqa: E402

KILLS = int(os.environ.get("NH_KILLS", "20"))


def files(d):
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, d)] = open(p, "rb").read()
    return out


def loop(name, args, parent, out, ref_out, rng):
    """Kill runs of args (writing out) until KILLS kills landed, then finish."""
    t0 = time.time()
    r = cli(*args(ref_out))
    t_ref = time.time() - t0
    check(r.returncode == 0, "%s: uninterrupted run" % name, r.stderr)
    kills = attempts = 0
    stray = set()
    while kills < KILLS and attempts < 10 * KILLS:
        attempts += 1
        p = subprocess.Popen([BIN, *args(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Mostly early (start-up, first checkpoint), sometimes late in a run.
        time.sleep(rng.uniform(0, 0.15) if rng.random() < 0.5 else rng.uniform(0, 0.5 * t_ref))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        base = os.path.basename(out)
        stray |= {f for f in os.listdir(parent) if f not in (base, "." + base + ".partial", "." + base + ".lock")}
        if os.path.exists(out):  # it finished before the kill: start over to keep killing
            subprocess.run(["rm", "-rf", out])
    r = cli(*args(out))
    check(r.returncode == 0, "%s: final rerun" % name, r.stderr)
    check(kills >= KILLS, "%s: %d kills landed (of %d attempts)" % (name, kills, attempts))
    check(not stray, "%s: nothing but the output and its work folder and lock after kills" % name, str(stray))
    a = files(ref_out) if os.path.isdir(ref_out) else {"": open(ref_out, "rb").read()}
    b = files(out) if os.path.isdir(out) else {"": open(out, "rb").read()}
    check(a == b and len(a) > 0, "%s: outputs after %d kills == uninterrupted run, byte for byte (%d files)"
          % (name, kills, len(a)), str(sorted(set(a) ^ set(b))))
    leftover = [f for f in os.listdir(parent) if f.startswith(".")]
    check(not leftover, "%s: no temporaries after the final run" % name, str(leftover))
    print("%s: %d kills in %d attempts, uninterrupted run %.2f s" % (name, kills, attempts, t_ref))


def main():
    rng = random.Random(int(os.environ.get("NH_KILL_SEED", "13")))
    with tempfile.TemporaryDirectory() as t:
        j = lambda *p: os.path.join(t, *p)
        cli("data", "sphere", "--n", "64", "--dim", "10", "--out", j("d"))
        cli("init", "--widths", "10,200,200,1", "--out", j("m"))
        for sub in ("tr", "trref", "me", "meref"):
            os.makedirs(j(sub))
        common = ["--model", j("m"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"), "--lr", "0.5"]
        train = lambda out: ["train", *common, "--steps", "2000", "--log-every", "3", "--checkpoint-every", "37",
                             "--out", out]
        measure = lambda out: ["measure", *common, "--steps", "60", "--every", "2", "--probes", "3",
                               "--out", out]
        section("train", loop, "train", train, j("tr"), j("tr", "run"), j("trref", "run"), rng)
        section("measure", loop, "measure", measure, j("me"), j("me", "m.csv"), j("meref", "m.csv"), rng)
    finish()


if __name__ == "__main__":
    main()
