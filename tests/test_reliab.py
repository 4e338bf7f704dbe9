#!/usr/bin/python3
"""Issue 13 (reliability, round two), items 2-11 for the commands train,
measure, init, data, curvature, spectrum, predict: each case checks the exit
code, the one-line message and that nothing is left behind (no output, no
.NAME.partial / .NAME.lock temporaries).  Item 1 (fig1) is tested with fig1.
Prints 'N passed, N failed'."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import BIN, check, cli, finish, section  # noqa: E402


def one_line(r, code, kw):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    return r.returncode == code and len(lines) == 1 and kw.lower() in r.stderr.lower()


def err(r):
    return "(rc=%s, stderr=%r)" % (r.returncode, r.stderr.strip())


def entries(d, name):
    """Everything in folder d that belongs to output `name` (itself and its temporaries)."""
    return sorted(f for f in os.listdir(d) if f == name or f.startswith("." + name + "."))


def start(args):
    return subprocess.Popen([BIN, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            universal_newlines=True)


def wait_for(path, proc, limit=60):
    t0 = time.time()
    while not os.path.exists(path) and proc.poll() is None and time.time() - t0 < limit:
        time.sleep(0.01)
    return os.path.exists(path)


def kill_after_checkpoint(args, workdir, sig=signal.SIGKILL):
    """Start a run and kill it once its work folder holds a checkpoint."""
    p = start(args)
    ok = wait_for(os.path.join(workdir, "checkpoint", "state.txt"), p)
    if p.poll() is None:
        p.send_signal(sig)
    p.wait()
    return ok, p


def restate(path, edit):
    """Rewrite a checkpoint state.txt with edit(text) and a correct sum line."""
    text = open(path).read()
    body = edit(text[:text.index("sum ")])
    open(path, "w").write(body + "sum " + hashlib.sha256(body.encode()).hexdigest() + "\n")


def resume_identity(t, j, train):
    """Items 2 and 8: a rerun with other options or other content is refused
    naming what changed; --restart starts over."""
    out = j("r2")
    ok, _ = kill_after_checkpoint(train + ["--steps", "100000", "--out", out], j(".r2.partial"))
    check(ok, "item 2: a checkpoint exists after the kill")
    r = cli(*train, "--steps", "100", "--out", out)
    check(one_line(r, 1, "differs from this one in: steps") and "--restart" in r.stderr, "item 2: --steps changed -> refused, named",
          err(r))
    check(entries(t, "r2") == [".r2.partial"], "item 2: refusal keeps the work folder, writes no output",
          str(entries(t, "r2")))
    # item 8: same-size data with the same date (cp -p) and a rewritten W0.npy, compared by content
    shutil.copytree(j("d"), j("d8"), copy_function=shutil.copy2)
    X = np.load(j("d8", "X.npy"))
    np.save(j("d8", "X.npy"), X[::-1].copy())
    st = os.stat(j("d", "X.npy"))
    os.utime(j("d8", "X.npy"), ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.copy2(j("d8", "X.npy"), j("d", "X.npy"))  # same name, size and mtime, other bytes
    r = cli(*train, "--steps", "100000", "--out", out)
    check(one_line(r, 1, "in: data"), "item 8: same-size data with the same mtime -> refused, 'data' named", err(r))
    shutil.copy2(j("d0", "X.npy"), j("d", "X.npy"))
    W = np.load(j("m0", "W0.npy"))
    W[0, 0] += 1e-3
    np.save(j("m0", "W0.npy"), W)
    r = cli(*train, "--steps", "100000", "--out", out)
    check(one_line(r, 1, "in: model"), "item 8: a replaced W0.npy -> refused, 'model' named", err(r))
    shutil.copy2(j("m00", "W0.npy"), j("m0", "W0.npy"))
    r = cli(*train, "--steps", "50", "--out", out, "--restart")
    rows = open(os.path.join(out, "train.csv")).read().splitlines() if r.returncode == 0 else []
    check(r.returncode == 0 and rows[-1].startswith("50,") and entries(t, "r2") == ["r2"],
          "item 2: --restart starts over; output complete, no temporaries", err(r) + str(entries(t, "r2")))


def corrupt_checkpoint(t, j, train):
    """Items 4, 7, 8: a corrupt state, corrupt arrays or a damaged log are refused."""
    out, work = j("r4"), j(".r4.partial")
    state = os.path.join(work, "checkpoint", "state.txt")
    ok, _ = kill_after_checkpoint(train + ["--steps", "100000", "--out", out], work)
    check(ok, "item 4: a checkpoint exists after the kill")
    good = open(state).read()
    step = [l for l in good.splitlines() if l.startswith("step ")][0]
    open(state, "w").write(good.replace(step, "step 9223372036854775807"))
    t0 = time.time()
    r = cli(*train, "--steps", "100000", "--out", out, timeout=30)
    check(one_line(r, 1, "corrupt") and time.time() - t0 < 10, "item 4: step 2^63-1 (checksum off) -> corrupt, fast",
          err(r))
    open(state, "w").write(good)
    restate(state, lambda s: s.replace(step, "step 9223372036854775807"))
    r = cli(*train, "--steps", "100000", "--out", out, timeout=30)
    check(one_line(r, 1, "corrupt"), "item 4: step 2^63-1 with a valid checksum -> range check", err(r))
    restate(state, lambda s: s.replace(step, "step -5"))
    r = cli(*train, "--steps", "100000", "--out", out, timeout=30)
    check(one_line(r, 1, "corrupt"), "item 4: negative step -> refused", err(r))
    open(state, "w").write(good)
    wpath = os.path.join(work, "checkpoint", "W1.npy")
    wgood = open(wpath, "rb").read()
    W = np.load(wpath)
    W[1, 2] *= 1.5
    np.save(wpath, W)
    r = cli(*train, "--steps", "100000", "--out", out, timeout=30)
    check(one_line(r, 1, "checksum"), "item 8: a hand-edited checkpoint array -> refused", err(r))
    open(wpath, "wb").write(wgood)
    log = os.path.join(work, "train.csv")
    lines = open(log).read().splitlines(True)
    open(log, "w").write("".join(lines[:3]))
    r = cli(*train, "--steps", "100000", "--out", out, timeout=30)
    check(one_line(r, 1, "does not match") and open(log).read() == "".join(lines[:3]),
          "item 7: a truncated log -> refused, not shortened further", err(r))
    os.remove(log)
    r = cli(*train, "--steps", "100000", "--out", out, timeout=30)
    check(one_line(r, 1, "cannot be read"), "item 7: a deleted log -> refused (no headerless file)", err(r))
    check(not os.path.exists(log) and not os.path.exists(out), "item 7: nothing written by the refusals")
    r = cli(*train, "--steps", "30", "--out", out, "--restart")
    check(r.returncode == 0 and entries(t, "r4") == ["r4"], "item 4: --restart recovers", err(r))


def signals(t, j, train):
    """Item 11: SIGTERM/SIGINT/SIGHUP checkpoint, one line, exit 128+signal; the rerun resumes."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        name = "s%d" % sig
        out = j(name)
        p = start(train + ["--steps", "400000", "--out", out])
        wait_for(os.path.join(j("." + name + ".partial"), "train.csv"), p)
        time.sleep(0.3)
        p.send_signal(sig)
        _, e = p.communicate()
        lines = [l for l in e.splitlines() if l.strip() and " about " not in l]  # the up-front time estimate aside
        check(p.returncode == 128 + sig and len(lines) == 1 and "rerun the same command to resume" in e,
              "item 11: %s -> exit %d with one line saying how to resume" % (sig.name, 128 + sig),
              "(rc=%s, %r)" % (p.returncode, e))
        check(os.path.exists(os.path.join(j("." + name + ".partial"), "checkpoint", "state.txt"))
              and not os.path.exists(out), "item 11: %s leaves the checkpoint, no output" % sig.name)
    r = cli(*train, "--steps", "20", "--out", j("s15"), "--restart")
    check(r.returncode == 0, "item 11: --restart after a signal", err(r))
    # a non-resumable command stopped by a signal: one line, nothing left
    p = start(["gram", "--depth", "3", "--data", j("big", "X.npy"), "--out", j("g")])
    time.sleep(0.4)
    p.send_signal(signal.SIGTERM)
    _, e = p.communicate()
    check(p.returncode == 143 and "nothing written" in e and entries(t, "g") == [],
          "item 11: gram stopped by SIGTERM -> exit 143, nothing left", "(rc=%s, %r, %s)" % (p.returncode, e,
                                                                                          entries(t, "g")))


def lock(t, j, train):
    """Item 11: a second run into a folder in use is refused naming the owner's pid."""
    out = j("L")
    p = start(train + ["--steps", "400000", "--out", out])
    wait_for(os.path.join(j(".L.partial"), "train.csv"), p)
    r = cli(*train, "--steps", "400000", "--out", out)
    check(one_line(r, 1, "in use by process %d" % p.pid), "item 11: concurrent run refused with the owner's pid",
          err(r))
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = cli(*train, "--steps", "20", "--out", out, "--restart")
    check(r.returncode == 0 and entries(t, "L") == ["L"], "item 11: a killed owner's lock does not block", err(r))


def outputs(t, j, base):
    """Items 5, 9, 10, 11: no non-finite output, no partial or mixed folders, inputs never overwritten."""
    np.save(j("Yhuge.npy"), np.load(j("d", "Y.npy")) * 1e300)
    r = cli("predict", "--depth", "2", "--data", j("d", "X.npy"), "--targets", j("Yhuge.npy"), "--times", "0,1",
            "--expect", "--out", j("p.csv"))
    check(one_line(r, 1, "non-finite") and not os.path.exists(j("p.csv")), "item 5: predict x1e300 -> error, no CSV",
          err(r))
    r = cli("train", *base, "--targets", j("Yhuge.npy"), "--lr", "0.1", "--steps", "5", "--out", j("nf"))
    check(one_line(r, 1, "not finite") and entries(t, "nf") == [], "item 9: non-finite loss at step 0 -> nothing",
          err(r) + str(entries(t, "nf")))
    # a folder rewritten by a different run is replaced whole
    np.save(j("v331.npy"), np.ones(331))
    r1 = cli("curvature", "--model", j("m331"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"),
             "--hvp", j("v331.npy"), "--out", j("c"))
    r2 = cli("curvature", *base, "--targets", j("d", "Y.npy"), "--out", j("c"), "--no-ntk")
    check(r1.returncode == 0 and r2.returncode == 0 and not os.path.exists(j("c", "Hv.npy"))
          and np.load(j("c", "grad.npy")).size == 1591 and entries(t, "c") == ["c"],
          "item 9: rewriting a folder leaves no old Hv.npy beside the new grad.npy", err(r2))
    sp = ["spectrum", *base, "--targets", j("d", "Y.npy"), "--of", "I"]
    r1 = cli(*sp, "--top", "3", "--save-vectors", "--out", j("s"))
    r2 = cli(*sp, "--top", "2", "--out", j("s"))
    check(r1.returncode == 0 and r2.returncode == 0 and not os.path.exists(j("s", "eigenvectors.npy"))
          and np.load(j("s", "eigenvalues.npy")).shape == (2,), "item 10: no stale eigenvectors.npy", err(r2))
    r = cli("train", *base, "--targets", j("d", "Y.npy"), "--lr", "0.1", "--steps", "5", "--out", j("m0"))
    check(one_line(r, 2, "input") and np.array_equal(np.load(j("m0", "W0.npy")), np.load(j("m00", "W0.npy"))),
          "item 11: train --out equal to --model refused, model intact", err(r))
    r = cli("data", "npy", "--x", j("d", "X.npy"), "--y", j("d", "Y.npy"), "--out", j("d"))
    check(one_line(r, 2, "input"), "item 11: an output folder holding an input is refused", err(r))
    os.makedirs(j("a"))
    open(j(".dd.lock"), "w").write("999999999\n")  # a stale lock of a dead process
    os.makedirs(j(".dd.partial"))
    os.makedirs(j(".tj.partial"))
    open(j(".tj.partial", "junk.npy"), "w").write("x")  # a killed curvature's work, no checkpoint
    r = cli("train", *base, "--targets", j("d", "Y.npy"), "--lr", "0.1", "--steps", "3", "--out", j("tj"))
    check(r.returncode == 0 and "junk.npy" not in os.listdir(j("tj")) and entries(t, "tj") == ["tj"],
          "item 9: a work folder without a checkpoint is not carried into train's output", err(r))
    r = cli("data", "sphere", "--n", "8", "--dim", "3", "--out", j("a", "b", "dd"))
    r2 = cli("data", "sphere", "--n", "8", "--dim", "3", "--out", j("dd"))
    check(r.returncode == 0 and os.path.exists(j("a", "b", "dd", "Y.npy")) and r2.returncode == 0
          and entries(t, "dd") == ["dd"], "item 9: missing parents created; stale lock and work folder cleaned",
          err(r) + err(r2) + str(entries(t, "dd")))


def bounds(t, j, base):
    """Items 6 and 11: option and file bounds, strict JSON, capped readers."""
    for bad in ("abc", "-1", "0", ""):
        r = cli("init", "--widths", "3,4,1", "--threads", bad, "--out", j("ti"))
        check(one_line(r, 2, "threads") and entries(t, "ti") == [], "item 6: init --threads %r refused" % bad, err(r))
    shutil.copytree(j("m0"), j("mj"))
    cfg = open(j("mj", "config.json")).read()
    for what, text in (("duplicate key", cfg.replace('{', '{"widths": [1, 1],', 1)), ("trailing bytes", cfg + "xyz"),
                       ("embedded NUL", cfg.replace('"softplus"', '"softplus\\u0000x"'))):
        open(j("mj", "config.json"), "w").write(text)
        r = cli("curvature", "--model", j("mj"), "--data", j("d", "X.npy"), "--targets", j("d", "Y.npy"),
                "--out", j("cj"))
        check(one_line(r, 1, "config.json") and entries(t, "cj") == [], "item 11: config.json with a %s refused" % what,
              err(r))
    for label in (1e12, 1e20, 2.5, -1):
        y = np.zeros(32)
        y[3] = label
        np.save(j("lab.npy"), y)
        r = cli("predict", "--depth", "2", "--loss", "ce", "--data", j("d", "X.npy"), "--targets", j("lab.npy"),
                "--times", "1", "--expect", "--samples", "2", "--out", j("pl.csv"))
        check(one_line(r, 1, "class label") and not os.path.exists(j("pl.csv")),
              "item 11: predict --loss ce label %g refused (at most 100000 classes)" % label, err(r))
    t0 = time.time()
    r = cli("data", "csv", "--file", "/dev/zero", "--out", j("z"), timeout=60)
    check(one_line(r, 1, "limit") and time.time() - t0 < 10 and entries(t, "z") == [],
          "item 11: data csv --file /dev/zero fails fast (%.2f s)" % (time.time() - t0), err(r))
    r = cli("train", *base, "--targets", j("d", "Y.npy"), "--lr", "0.1", "--steps", "2199023255553", "--out", j("x"))
    check(one_line(r, 2, "steps"), "item 4: --steps above 2^40 refused", err(r))


def probes1(t, j, base):
    """Item 3: measure --probes 1 works; its standard errors are empty, not divergence."""
    r = cli("measure", *base, "--targets", j("d", "Y.npy"), "--lr", "0.5", "--steps", "4", "--every", "2",
            "--probes", "1", "--out", j("p1.csv"))
    rows = open(j("p1.csv")).read().splitlines() if r.returncode == 0 else ["", ""]
    head, last = rows[0].split(","), rows[-1].split(",")
    se = [i for i, h in enumerate(head) if h.endswith("_se")]
    vals = [float(v) for i, v in enumerate(last) if i not in se]
    check(r.returncode == 0 and len(rows) == 4 and all(last[i] == "" for i in se) and np.isfinite(vals).all()
          and entries(t, "p1.csv") == ["p1.csv"], "item 3: measure --probes 1: 3 records, SE empty, the rest finite",
          err(r))


def main():
    with tempfile.TemporaryDirectory() as t:
        j = lambda *p: os.path.join(t, *p)
        cli("data", "sphere", "--n", "32", "--dim", "20", "--out", j("d"))
        cli("data", "sphere", "--n", "2048", "--dim", "20", "--out", j("big"))
        cli("init", "--widths", "20,30,30,1", "--out", j("m0"))
        cli("init", "--widths", "20,10,10,1", "--out", j("m331"))
        shutil.copytree(j("m0"), j("m00"))
        shutil.copytree(j("d"), j("d0"))
        base = ["--model", j("m0"), "--data", j("d", "X.npy")]
        train = ["train", *base, "--targets", j("d", "Y.npy"), "--lr", "0.01", "--checkpoint-every", "50"]
        section("resume identity", resume_identity, t, j, train)
        section("corrupt checkpoint", corrupt_checkpoint, t, j, train)
        section("signals", signals, t, j, train)
        section("lock", lock, t, j, train)
        section("outputs", outputs, t, j, base)
        section("bounds", bounds, t, j, base)
        section("probes 1", probes1, t, j, base)
    finish()


if __name__ == "__main__":
    main()
