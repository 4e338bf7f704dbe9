#!/usr/bin/python3
"""Replay of stored fig1 trials (issue 15): the committed run
results/fig1-small is recomputed for three of its trials from their seeds
(`fig1 --replay DIR --trials-list 3,7,11` with the run's own options, read
from its summary.json) and every replayed row must equal the stored row as
text.  Rows are written with %.17g, which round-trips a double, so equal text
is equal bits.  The stored rows come from this machine's BLAS at 1 thread
(results/fig1-small/README.md); another CPU's kernels may round differently.
Also: a replay with another option is refused naming it, and a trial that
the run did not finish is refused.  And `ntkhess bench trial` (which times
fig1's own trial function) on a tiny network: fig1's defaults, its
product count, and fields that agree with one another.  About 10 s.  Prints
'N passed, N failed'."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import ROOT, check, cli, finish, section  # noqa: E402

RUN = os.path.join(ROOT, "results", "fig1-small")
LIST = [3, 7, 11]
os.environ.setdefault("NTKHESS_DATA", os.path.join(ROOT, "data"))


def run_args():
    """The stored run's options, from its summary.json."""
    p = json.load(open(os.path.join(RUN, "summary.json")))["params"]
    acts = sorted(os.path.basename(f)[7:-4] for f in glob.glob(os.path.join(RUN, "trials_*.csv")))
    opts = {"data": p["data"], "n": p["N"], "width": p["width"], "trials": p["trials"], "beta": repr(p["beta"]),
            "lr": repr(p["lr"]), "steps": p["steps"], "every": p["every"], "probes": p["probes"],
            "precision": p.get("precision", "f64"), "seed": p["seed"], "acts": ",".join(acts), "threads": 1}
    return [a for k, v in opts.items() for a in ("--" + k, str(v))], acts


def stored_rows(act):
    """Rows of the stored trial file by trial index (header skipped)."""
    lines = open(os.path.join(RUN, "trials_%s.csv" % act)).read().splitlines()
    return {int(line.split(",", 1)[0]): line for line in lines[1:] if line}


def test_replay():
    args, acts = run_args()
    check(len(acts) == 2, "the stored run has two nonlinearities", str(acts))
    r = cli("fig1", *args, "--replay", RUN, "--trials-list", ",".join(map(str, LIST)), timeout=300)
    check(r.returncode == 0, "fig1 --replay exits 0", r.stderr[-300:])
    got = {}
    for line in r.stdout.splitlines():
        name, _, row = line.partition(":")
        got.setdefault(name, []).append(row)
    for act in acts:
        rows, ref = got.get("trials_%s.csv" % act, []), stored_rows(act)
        idx = [int(x.split(",", 1)[0]) for x in rows]
        check(idx == LIST, "%s: trials %s replayed" % (act, LIST), str(idx))
        for i, row in zip(idx, rows):
            check(row == ref.get(i), "%s trial %d: replayed row equals the stored row bit for bit" % (act, i),
                  "replayed %s... stored %s..." % (row[:80], (ref.get(i) or "")[:80]))
        # the rows are distinct trials, not one row repeated
        check(len(set(r.split(",", 1)[1] for r in rows)) == len(rows), "%s: the replayed trials differ" % act)


def test_refusals():
    args, _ = run_args()
    i = args.index("--seed")
    other = args[:i + 1] + [str(int(args[i + 1]) + 1)] + args[i + 2:]
    r = cli("fig1", *other, "--replay", RUN, "--trials-list", "3")
    check(r.returncode == 1 and "--seed" in r.stderr, "a replay with another --seed is refused naming it",
          r.stderr[-300:])
    j = args.index("--trials")
    more = args[:j + 1] + [str(int(args[j + 1]) + 5)] + args[j + 2:]
    r = cli("fig1", *more, "--replay", RUN, "--trials-list", args[j + 1])
    check(r.returncode == 1 and "not a finished trial" in r.stderr, "a trial the run did not finish is refused",
          r.stderr[-300:])
    r = cli("fig1", *args, "--trials-list", "3")
    check(r.returncode == 2 and "--replay" in r.stderr, "--trials-list without --replay is a usage error",
          r.stderr[-300:])


def test_bench_trial():
    base = ["bench", "trial", "--widths", "196,20,20,1", "--N", "8", "--data", "sphere", "--anchor", "0"]
    r = cli(*base, "--reps", "3", "--probes", "2")
    check(r.returncode == 0, "bench trial runs", r.stderr[-300:])
    j = json.loads(r.stdout)
    # 17 records x (3 products per probe for k <= 4 with control variates) x 2 probes; Tr(I^k) needs none
    check(j["products"] == 17 * 3 * 2, "bench trial: 102 products with 2 probes", str(j["products"]))
    check(abs(j["hv_equivalents"] - j["median_s"] / j["hv_s"]) <= 0.05 + 1e-3 * j["hv_equivalents"],
          "hv_equivalents = median_s / hv_s (printed to 0.1)", r.stdout)
    b = j["breakdown"]
    parts = b["gd_steps_s"] + b["trace_H_s"] + b["trace_I_s"] + b["other_s"]
    check(abs(parts - b["trial_s"]) <= 1e-3 * b["trial_s"] + 1e-4 and b["other_s"] >= 0,
          "the breakdown adds up to the median trial (4 significant digits printed)", str(b))
    for k in ("k2", "k3", "k4"):
        h = j["hutchinson"][k]
        ok = h["trial_sd"] > 0 and abs(h["probe_sd"] - h["hutch_se"] * 2 ** 0.5) <= 2e-3 * h["probe_sd"]
        check(ok, "%s: probe SD = SE sqrt(M), trial SD > 0" % k, str(h))
    r = cli(*base, "--reps", "1")
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check(j.get("probes") == 1 and j.get("precision") == "f32" and j.get("products") == 17 * 3,
          "bench trial takes fig1's defaults (1 probe, f32) when not given", r.stdout + r.stderr[-200:])
    r = cli("bench", "trial", "--widths", "196,20,30,1", "--N", "8", "--data", "sphere")
    check(r.returncode == 2 and "n_0,W,W,1" in r.stderr, "bench trial refuses a network fig1 does not train",
          r.stderr[-200:])


if __name__ == "__main__":
    section("replay of stored trials", test_replay)
    section("replay refusals", test_refusals)
    section("bench trial", test_bench_trial)
    finish()
