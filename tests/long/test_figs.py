#!/usr/bin/python3
"""The paper's figures end to end: fig1 --quick agrees with theory (checked by
scripts/check_fig1.py on its summary.json), a killed fig1 resumes without
losing trials and ends with the same numbers, fig2/fig3 --quick produce their
plots and show the paper's qualitative findings, and bad input gives one-line
errors.  Prints 'N passed, N failed'."""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nhtest import ROOT, check, cli, finish, BIN  # noqa: E402


def run(*args, env=None, timeout=900):
    return cli(*args, env=env, timeout=timeout, cwd=ROOT)


def png_ok(path):
    try:
        b = open(path, "rb").read(32)
        return b[:8] == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 10000
    except OSError:
        return False


def main():
    with tempfile.TemporaryDirectory() as t:
        j = lambda *p: os.path.join(t, *p)
        # fig1 --quick, the README's main job
        t0 = time.time()
        r = run("fig1", "--quick", "--out", j("f1"))
        dt = time.time() - t0
        check(r.returncode == 0, "fig1 --quick runs", r.stderr[-500:])
        for f in ["fig1.png", "fig1.svg", "fig1.csv", "summary.json"]:
            check(os.path.exists(j("f1", f)), f"fig1 writes {f}")
        check(png_ok(j("f1", "fig1.png")), "fig1.png is a PNG with content")
        s = json.load(open(j("f1", "summary.json")))
        pts = s["points"]
        keys = {"act", "k", "t", "theory", "mean", "se", "z"}
        check(len(pts) > 0 and all(keys <= set(p) for p in pts), "summary points have act,k,t,theory,mean,se,z")
        check(s["params"]["quick"] and s["params"]["N"] == 64, "summary records the run's parameters")
        c = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "check_fig1.py"), j("f1", "summary.json")],
                           capture_output=True, text=True)
        check(c.returncode == 0, "fig1 --quick: k = 1, 2 within 3 SE + measured finite-width bias at every t",
              c.stdout[-800:])
        print(f"# fig1 --quick took {dt:.1f} s; " + " ".join(l[2:] for l in c.stdout.splitlines() if l.startswith("#")))
        t0s = {p["act"]: p["tr_S_theory"] for p in pts if p["k"] == 1 and p["t"] == 0}
        check(t0s.get("softplus", -1) > 0 and t0s.get("nsoftplus", 1) < 0,
              "E[Tr S(0)] > 0 for softplus and < 0 for nsoftplus (the paper's remark)", str(t0s))
        # fig1 resume after kill -9: same points as an uninterrupted run
        small = ["fig1", "--data", "sphere", "--n", "16", "--width", "200", "--trials", "40", "--steps", "8",
                 "--every", "4"]
        r = run(*small, "--out", j("ref"))
        check(r.returncode == 0, "small fig1 reference run", r.stderr[-300:])
        # Kill each attempt once it has finished two more trials (progress-
        # triggered, so the test does not depend on the machine's speed).
        killed = 0
        # The trials of an unfinished run live in the work folder .res.partial
        # (the output folder res appears only when the run completes).
        tfile = j(".res.partial", "trials_softplus.csv")
        count = lambda: open(tfile).read().count("\n") if os.path.exists(tfile) else 0
        t_ref = 0.0
        for _ in range(4):
            before = count()
            p = subprocess.Popen([BIN, *small, "--out", j("res")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 cwd=ROOT)
            deadline = time.time() + 120
            while p.poll() is None and count() < before + 3 and time.time() < deadline:
                time.sleep(0.01)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed += 1
            p.wait()
        lines = count()
        r = run(*small, "--out", j("res"))
        check(r.returncode == 0, "fig1 rerun after kills completes", r.stderr[-300:])
        check(killed >= 2, "fig1 was really killed mid-run at least twice", f"({killed}, run {t_ref:.2f}s)")
        a = json.load(open(j("ref", "summary.json")))["points"]
        b = json.load(open(j("res", "summary.json")))["points"]
        check(a == b, "fig1 after kills == uninterrupted (every point, exactly)")
        # fig2 --quick, fig3 --quick
        r = run("fig2", "--quick", "--out", j("f2"))
        check(r.returncode == 0 and png_ok(j("f2", "fig2.png")), "fig2 --quick", r.stderr[-300:])
        s2 = json.load(open(j("f2", "summary.json")))
        iI, sI = s2["eigvec_of_I_vIv"], s2["eigvec_of_I_vSv"]
        iS, sS = s2["eigvec_of_S_vIv"], s2["eigvec_of_S_vSv"]
        check(all(iI[k] > 10 * abs(sI[k]) for k in range(3)), "fig2: top eigenvectors of I have v'Iv >> |v'Sv|")
        check(sum(abs(x) for x in sS) > 2 * sum(abs(x) for x in iS), "fig2: eigenvectors of S carry mostly S")
        r = run("fig3", "--quick", "--out", j("f3"))
        check(r.returncode == 0 and png_ok(j("f3", "fig3.png")), "fig3 --quick", r.stderr[-300:])
        s3 = {p["act"]: p for p in json.load(open(j("f3", "summary.json")))["panels"]}
        # at the polished minimum (quick: lambda1/lambda4 = 72 against 9.2, measured)
        check(s3["softplus"]["narrowness"] > 3 * s3["nsoftplus"]["narrowness"],
              "fig3: the smooth ReLU valley is narrower than the normalized one",
              f"{s3['softplus']['narrowness']:.3g} vs {s3['nsoftplus']['narrowness']:.3g}")
        for a, p in s3.items():
            # a minimum: the polish reaches the double-precision floor (~1e-27 measured);
            # |grad| <= sqrt(2 lambda_max C) ~ 1e-13 there
            check(p["loss_min"] < 1e-20 and p["grad_norm"] < 1e-10 and p["loss_min"] <= p["gd"]["loss"],
                  f"fig3 {a}: trained to a minimum", f"loss {p['loss_min']:.3g}, |grad| {p['grad_norm']:.3g}")
            hold, fail = p["grids"]
            check(hold["max_rel_err"] <= 0.05 and fail["max_rel_err"] >= 0.5 and hold["radius"] < fail["radius"],
                  f"fig3 {a}: the quadratic model holds within 5% at R_hold and fails by >= 50% at R_fail",
                  f"{hold['max_rel_err']:.3g} at {hold['radius']:.3g}, {fail['max_rel_err']:.3g} at {fail['radius']:.3g}")
            check(abs(p["model"]["uHu"] - p["lambda_y"]) <= 1e-6 * p["lambda_y"] + 1e-12,
                  f"fig3 {a}: u'Hu = lambda_y at a minimum (H = I there: S vanishes with the residual)")
            check(p["polish"]["distance"] > 0 and p["gd"]["distance"] > 0 and p["polish"]["steps"] >= 1,
                  f"fig3 {a}: the distances moved by GD and by the polish are reported")
            for g in ("hold", "fail"):
                rows = open(j("f3", f"fig3_{a}_{g}.csv")).read().splitlines()
                check(len(rows) == 1 + 21 * 21 and rows[0] == "a_dir1,b_dir4,loss,model,rel_err",
                      f"fig3 {a}: {g} grid CSV has the 21 x 21 grid")
        # bad input
        os.makedirs(j("empty"))
        env = dict(os.environ, NTKHESS_DATA=j("empty"))
        for what, args, kw, e in [
            ("missing MNIST data", ["fig1", "--quick", "--out", j("x")], "fetch_data.sh", env),
            ("N larger than the data set", ["fig1", "--n", "20000", "--trials", "2", "--out", j("x")], "exceeds", None),
            ("unknown figure option", ["fig1", "--quick", "--bogus", "--out", j("x")], "bogus", None),
            ("unknown nonlinearity", ["fig1", "--acts", "swish", "--out", j("x")], "swish", None),
            ("fig2 k beyond P", ["fig2", "--data", "sphere", "--n", "8", "--width", "2", "--k", "60000", "--out",
                                 j("x")], "exceeds", None),
            ("fig3 bad dirs", ["fig3", "--dirs", "1", "--out", j("x")], "dirs", None),
        ]:
            r = run(*args, env=e)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            check(r.returncode in (1, 2) and len(lines) == 1 and kw in r.stderr, f"bad input: {what}",
                  f"rc={r.returncode} {r.stderr.strip()!r}")
    finish()


if __name__ == "__main__":
    sys.exit(main())
