#!/usr/bin/python3
"""Replay of stored fig1 trials (issue 15): the committed run
results/fig1-small is recomputed for three of its trials from their seeds
(`fig1 --replay DIR --trials-list 3,7,11` with the run's own options, read
from its summary.json) and every replayed row must equal the stored row as
text.  Rows are written with %.17g, which round-trips a double, so equal text
is equal bits.  The stored rows come from this machine's BLAS at 1 thread
(results/fig1-small/README.md); another CPU's kernels may round differently.
Also: a replay with another option is refused naming it, and a trial that
the run did not finish is refused.  About 10 s.  Prints 'N passed, N failed'."""
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


if __name__ == "__main__":
    section("replay of stored trials", test_replay)
    section("replay refusals", test_refusals)
    finish()
