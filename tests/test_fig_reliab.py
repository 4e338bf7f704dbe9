#!/usr/bin/python3
"""Reliability of the figure commands (issue 13 items 1, 9, 10): fig1 resumes
from any state a kill can leave its work folder in (a 0-byte or torn trial
file, torn or edited rows, stale plot temporaries) and ends with exactly the
numbers of an uninterrupted run; a rerun with other options is refused naming
them (--restart starts over); a failing fig3 leaves nothing; a rerun into an
existing folder replaces it whole; --quick takes its values from the option
table.  Tiny settings: every run takes well under a second.  Prints
'N passed, N failed'."""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, cli, finish, section  # noqa: E402

SMALL = ["fig1", "--data", "sphere", "--n", "8", "--width", "20", "--trials", "6", "--steps", "4", "--every", "2"]


def points(d):
    """summary.json points and fig1.csv bytes of a finished fig1 folder."""
    s = json.load(open(os.path.join(d, "summary.json")))
    return s["points"], open(os.path.join(d, "fig1.csv"), "rb").read()


def entries(parent, name):
    """What a run into parent/name left: the folder and its hidden siblings."""
    return sorted(e for e in os.listdir(parent) if e == name or e.startswith("." + name + "."))


def fig1_states(t):
    j = lambda *p: os.path.join(t, *p)
    r = cli(*SMALL, "--out", j("ref"))
    check(r.returncode == 0, "fig1 reference run", r.stderr[-300:])
    ref = points(j("ref"))
    check(entries(t, "ref") == ["ref"], "a finished fig1 leaves only its folder (no work folder, no lock)",
          str(entries(t, "ref")))
    trials = open(j("ref", "trials_softplus.csv")).read().splitlines()
    header, rows = trials[0], trials[1:]
    check(len(rows) == 6 and all(",c=" in x for x in rows), "trial rows carry checksums", str(len(rows)))

    def resume(name, files, what, expect_msg=None):
        w = j("." + name + ".partial")
        os.makedirs(w)
        for fn, text in files.items():
            with open(os.path.join(w, fn), "w") as f:
                f.write(text)
        r = cli(*SMALL, "--out", j(name))
        ok = r.returncode == 0 and os.path.isdir(j(name)) and points(j(name)) == ref
        check(ok, "fig1 resumes from %s and equals the uninterrupted run" % what, r.stderr[-300:])
        check(entries(t, name) == [name], "%s: nothing but the output folder left" % what, str(entries(t, name)))
        left = [e for e in os.listdir(j(name)) if ".tmp" in e]
        check(not left, "%s: no temporaries in the output" % what, str(left))
        if expect_msg:
            check(expect_msg in r.stderr, "%s: says so" % what, r.stderr[-300:])

    # issue 13 item 1: killed while the trial file was 0 bytes
    resume("zero", {"trials_softplus.csv": ""}, "a 0-byte trial file")
    resume("torn_head", {"trials_softplus.csv": header[:30]}, "a header cut short")
    resume("torn_row", {"trials_softplus.csv": header + "\n" + rows[0] + "\n" + rows[1][:40]}, "a torn last row")
    # an edited value keeps its old checksum: the row is dropped and the trial computed again
    bad = rows[2].split(",")
    bad[3] = repr(float(bad[3]) * 1.5)
    resume("edited", {"trials_softplus.csv": "\n".join([header, rows[0], ",".join(bad), rows[3]]) + "\n"},
           "an edited row", "failed their check")
    # stale plot temporaries and half-written outputs of a run killed while plotting
    resume("plotting", {"trials_softplus.csv": "\n".join(trials) + "\n", "fig1.png.tmp999999999_1": "x",
                        "fig1.svg.tmp999999999_2": "<svg", "fig1.csv.tmp.12": "act"}, "a kill during plotting")

    # other options: refused, naming them; the unfinished run is kept; --restart starts over
    w = j(".other.partial")
    os.makedirs(w)
    with open(os.path.join(w, "trials_softplus.csv"), "w") as f:
        f.write("\n".join(trials[:3]) + "\n")
    before = open(os.path.join(w, "trials_softplus.csv")).read()
    args = [a if a != "20" else "30" for a in SMALL]  # --width 30
    r = cli(*args, "--out", j("other"))
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    check(r.returncode == 1 and len(lines) == 1 and "--width 30 here, 20 there" in r.stderr and "--restart" in r.stderr,
          "fig1 with other options is refused naming the option", r.stderr)
    check(not os.path.exists(j("other")) and open(os.path.join(w, "trials_softplus.csv")).read() == before,
          "the refused run leaves the unfinished one as it was")
    r = cli(*args, "--restart", "--out", j("other"))
    r2 = cli(*args, "--out", j("other30"))
    check(r.returncode == 0 and r2.returncode == 0 and points(j("other")) == points(j("other30")),
          "--restart discards it and equals a fresh run", r.stderr[-300:])
    check(entries(t, "other") == ["other"], "--restart leaves nothing else", str(entries(t, "other")))


def fig3_fails_clean(t):
    j = lambda *p: os.path.join(t, *p)
    diverge = ["fig3", "--n", "8", "--width", "10", "--grid", "3", "--lr", "1e8", "--steps", "5"]
    r = cli(*diverge, "--out", j("sub", "f3"))
    check(r.returncode == 1 and "non-finite" in r.stderr, "diverging fig3 fails", r.stderr[-300:])
    check(not os.path.exists(j("sub", "f3")) and entries(j("sub"), "f3") == [],
          "diverging fig3 leaves nothing (no folder, no work folder, no lock)", str(os.listdir(j("sub"))))
    ok = ["fig3", "--n", "8", "--width", "10", "--grid", "3", "--steps", "2", "--dirs", "1,2"]
    r = cli(*ok, "--out", j("f3"))
    check(r.returncode == 0, "small fig3 runs", r.stderr[-300:])
    for p in json.load(open(j("f3", "summary.json")))["panels"]:
        # 2 GD steps leave loss ~0.1; the Gauss-Newton polish reaches the rounding floor (~1e-30 measured)
        check(p["gd"]["steps"] == 2 and p["gd"]["loss"] > 1e-3 and p["loss_min"] < 1e-20 and p["grad_norm"] < 1e-10,
              f"small fig3 {p['act']}: the polish reaches a minimum", f"{p['gd']['loss']:.3g} -> {p['loss_min']:.3g}")
        hold, fail = p["grids"]
        check(hold["max_rel_err"] <= 0.05 and fail["max_rel_err"] >= 0.5,
              f"small fig3 {p['act']}: the quadratic model within 5% at R_hold, >= 50% off at R_fail",
              f"{hold['max_rel_err']:.3g}, {fail['max_rel_err']:.3g}")
    r = cli(*ok[:-2], "--dirs", "1,2", "--polish", "0", "--radii", "0.5,2", "--out", j("f3p0"))
    s0 = json.load(open(j("f3p0", "summary.json")))["panels"][0] if r.returncode == 0 else {}
    check(r.returncode == 0 and s0["polish"]["tries"] == 0 and s0["loss_min"] == s0["gd"]["loss"]
          and [g["radius"] for g in s0["grids"]] == [0.5, 2], "--polish 0 keeps GD's point; --radii sets the grids")
    snap = {e: open(j("f3", e), "rb").read() for e in os.listdir(j("f3"))}
    r = cli(*diverge, "--out", j("f3"))
    now = {e: open(j("f3", e), "rb").read() for e in os.listdir(j("f3"))}
    check(r.returncode == 1 and now == snap and entries(t, "f3") == ["f3"],
          "a failing fig3 into an existing folder leaves it exactly as it was")


def replace_whole(t):
    j = lambda *p: os.path.join(t, *p)
    os.makedirs(j("f2"))
    open(j("f2", "stale.txt"), "w").write("old run")
    open(j("f2", "fig2.png"), "w").write("old")
    r = cli("fig2", "--quick", "--data", "sphere", "--width", "10", "--k", "2", "--out", j("f2"))
    check(r.returncode == 0, "fig2 into an existing folder", r.stderr[-300:])
    check(sorted(os.listdir(j("f2"))) == ["fig2.csv", "fig2.png", "fig2.svg", "summary.json"],
          "the existing folder is replaced whole (the old run's files are gone)", str(os.listdir(j("f2"))))
    # --quick takes the quick column of the option table; a given option wins
    s = json.load(open(j("f2", "summary.json")))["params"]
    check(s["quick"] and s["N"] == 64 and s["width"] == 10, "--quick: N from the quick column, --width as given",
          str(s))
    h = cli("fig1", "--help").stdout
    check("(default: 256; quick: 64)" in h and "(default: 5000; quick: 600)" in h, "--help shows the quick column")
    h = cli("fig3", "--help").stdout
    check("(default: 41; quick: 21)" in h, "fig3 --help shows the quick grid")


def busy(t):
    """A second run into a folder in use is refused naming the owner's pid."""
    j = lambda *p: os.path.join(t, *p)
    import subprocess
    import time
    from nhtest import BIN
    args = ["fig1", "--data", "sphere", "--n", "16", "--width", "200", "--trials", "400", "--steps", "8", "--every", "4",
            "--acts", "softplus", "--out", j("busy")]
    p = subprocess.Popen([BIN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while p.poll() is None and not os.path.exists(j(".busy.partial", "trials_softplus.csv")) and time.time() < deadline:
            time.sleep(0.01)
        r = cli(*args)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        check(p.poll() is None and r.returncode == 1 and len(lines) == 1 and str(p.pid) in r.stderr,
              "a second fig1 into a folder in use is refused naming the owner's pid", r.stderr)
    finally:
        p.kill()
        p.wait()
    r = cli(*[a if a != "400" else "4" for a in args])
    check(r.returncode == 0, "after the owner is killed, a rerun resumes and completes", r.stderr[-300:])


def signals(t):
    """SIGINT stops fig1 between trials keeping them (exit 130, one line
    saying how to resume; the rerun equals an uninterrupted run) and stops
    fig2 leaving nothing."""
    j = lambda *p: os.path.join(t, *p)
    import signal
    import subprocess
    import time
    from nhtest import BIN
    args = ["fig1", "--data", "sphere", "--n", "16", "--width", "100", "--trials", "60", "--steps", "8", "--every",
            "4", "--acts", "softplus"]
    r = cli(*args, "--out", j("sref"))
    check(r.returncode == 0, "signals: reference fig1", r.stderr[-300:])
    p = subprocess.Popen([BIN, *args, "--out", j("sig")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    f = j(".sig.partial", "trials_softplus.csv")
    deadline = time.time() + 30
    while p.poll() is None and time.time() < deadline and (not os.path.exists(f) or
                                                           open(f).read().count("\n") < 4):
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1].decode()
    lines = [x for x in err.splitlines() if x.strip() and " about " not in x]
    check(p.returncode == 130 and len(lines) == 1 and "SIGINT" in err and "resume" in err and os.path.exists(f)
          and not os.path.exists(j("sig")), "fig1 on SIGINT: exit 130, one line, trials kept, no output yet", err)
    r = cli(*args, "--out", j("sig"))
    check(r.returncode == 0 and "resuming with" in r.stderr and points(j("sig")) == points(j("sref")),
          "fig1 resumed after SIGINT equals the uninterrupted run", r.stderr[-300:])
    p = subprocess.Popen([BIN, "fig2", "--data", "sphere", "--n", "64", "--width", "400", "--k", "40", "--out",
                          j("sig2")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while p.poll() is None and time.time() < deadline and not os.path.exists(j(".sig2.partial")):
        time.sleep(0.005)
    time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1].decode()
    check(p.returncode == 130 and entries(t, "sig2") == [], "fig2 on SIGINT: exit 130, nothing left",
          "rc=%s %s %s" % (p.returncode, err, entries(t, "sig2")))


def main():
    t = tempfile.mkdtemp(prefix="nh_fig_reliab_")
    try:
        section("fig1 resume states", fig1_states, t)
        section("fig3 failure leaves nothing", fig3_fails_clean, t)
        section("replace whole, quick column", replace_whole, t)
        section("folder in use", busy, t)
        section("signals", signals, t)
    finally:
        shutil.rmtree(t, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
