#!/usr/bin/env python3
"""ntkhess meanfield (quick): summary.json schema; every per-network value
against numpy on the dense H, I, S of the same network rebuilt from its seed
(`ntkhess init --param mf` + `ntkhess curvature --dense`); the per-width
statistics against numpy/scipy on those values; the prediction against
gradC^T Xi gradC and gradC^T Upsilon gradC from `ntkhess gram`; the
Hutchinson path against the dense one; bad inputs give one-line errors."""
import csv
import json
import math
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import check, close, finish, section, cli, expect_error  # noqa: E402

SUMMARY_KEYS = {"width", "trials", "mean_tr_h", "var_tr_h", "mean_tr_h2", "se_var_tr_h", "se_mean_tr_h2",
                "normality_p", "ratio_S_I"}


def must(r, what):
    if not check(r.returncode == 0, what, r.stderr.strip()[-300:]):
        raise RuntimeError(what + " failed")


def read_trials(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def ad_p(x):
    """Anderson-Darling normality (mean, variance estimated): A^2 and the
    D'Agostino & Stephens (1986) p-value, written from the reference."""
    from scipy.stats import norm
    n = len(x)
    z = np.sort((x - x.mean()) / x.std(ddof=1))
    i = np.arange(1, n + 1)
    a2 = -n - np.mean((2 * i - 1) * (norm.logcdf(z) + norm.logsf(z[::-1])))
    s = a2 * (1 + 0.75 / n + 2.25 / n ** 2)
    if s >= 0.6:
        p = math.exp(1.2937 - 5.709 * s + 0.0186 * s * s)
    elif s >= 0.34:
        p = math.exp(0.9177 - 4.279 * s - 1.38 * s * s)
    elif s >= 0.2:
        p = 1 - math.exp(-8.318 + 42.796 * s - 59.938 * s * s)
    else:
        p = 1 - math.exp(-13.436 + 101.14 * s - 223.73 * s * s)
    return a2, min(max(p, 0.0), 1.0)


def dense_values(tmp, row, w, depth, n0, data, loss):
    """tr_h, tr_h2, ratio of one network from numpy on its dense matrices."""
    model, cur = os.path.join(tmp, "m"), os.path.join(tmp, "c")
    widths = ",".join(str(v) for v in [n0] + [w] * (depth - 1) + [1])
    must(cli("init", "--widths", widths, "--act", "softplus", "--param", "mf", "--seed", row["seed"],
             "--out", model), "init from the trial's seed")
    must(cli("curvature", "--model", model, "--data", data + "/X.npy", "--targets", data + "/Y.npy",
             "--loss", loss, "--dense", "--out", cur), "curvature --dense")
    H, I, S = (np.load(os.path.join(cur, k + ".npy")) for k in ("H", "I", "S"))
    return (math.sqrt(w) * np.trace(H), w * np.sum(H * H), np.linalg.norm(S) / np.linalg.norm(I),
            math.sqrt(w) * np.trace(I))


def g_lin(tmp, row, w, depth, n0, data):
    """G_ntk . grad C(0) for the MSE: the MF net's G is G_ntk / sqrt(w)."""
    model, cur = os.path.join(tmp, "m"), os.path.join(tmp, "c")
    widths = ",".join(str(v) for v in [n0] + [w] * (depth - 1) + [1])
    must(cli("init", "--widths", widths, "--param", "mf", "--seed", row["seed"], "--out", model), "init")
    must(cli("curvature", "--model", model, "--data", data + "/X.npy", "--targets", data + "/Y.npy",
             "--out", cur), "curvature")
    Y = np.load(data + "/Y.npy").reshape(-1)
    return math.sqrt(w) * np.load(cur + "/G.npy").reshape(-1) @ (-Y / len(Y))


def test_dense_case(tmp):
    data = os.path.join(tmp, "d")
    must(cli("data", "sphere", "--n", "6", "--dim", "5", "--seed", "3", "--out", data), "data sphere")
    out = os.path.join(tmp, "o")
    R, depth, widths = 10, 3, (4, 6)
    must(cli("meanfield", "--data", data + "/X.npy", "--targets", data + "/Y.npy", "--widths", "4,6",
             "--depth", str(depth), "--trials", str(R), "--seed", "5", "--out", out, "--threads", "1"),
         "meanfield tiny dense run")
    js = json.load(open(os.path.join(out, "summary.json")))
    check(set(js) == {"predicted", "widths"}, "summary.json top-level keys", sorted(js))
    check(set(js["predicted"]) == {"var_tr_h", "lim_tr_h2"}, "summary.json predicted keys", js["predicted"])
    check([e["width"] for e in js["widths"]] == list(widths), "one entry per width, in order")
    check(all(set(e) == SUMMARY_KEYS for e in js["widths"]), "summary.json width entry keys",
          [sorted(e) for e in js["widths"]])
    check(all(e["trials"] == R for e in js["widths"]), "trials per width")
    for ext in ("png", "svg"):
        check(os.path.getsize(os.path.join(out, "meanfield." + ext)) > 1000, "plot meanfield." + ext + " written")
    rows = read_trials(os.path.join(out, "trials.csv"))
    check(len(rows) == R * len(widths), "trials.csv has R rows per width")
    for e in js["widths"]:
        w = e["width"]
        mine = [r for r in rows if int(r["width"]) == w]
        vals = np.array([dense_values(tmp, r, w, depth, 5, data, "mse") for r in mine])
        got = np.array([[float(r[k]) for k in ("tr_h", "tr_h2", "ratio_S_I")] for r in mine])
        # Same float64 network; Tr H from NTK + G (command) vs trace of the dense H (numpy): rounding only.
        close(got[:, 0], vals[:, 0], "w=%d: tr_h = sqrt(w) Tr Hc vs numpy trace of dense H" % w, 1e-10)
        close(got[:, 1], vals[:, 1], "w=%d: tr_h2 = w ||Hc||_F^2 vs numpy" % w, 1e-10)
        close(got[:, 2], vals[:, 2], "w=%d: ||S||_F/||I||_F vs numpy" % w, 1e-10)
        close([float(r["tr_i"]) for r in mine], vals[:, 3], "w=%d: tr_i = sqrt(w) Tr Ic vs numpy" % w, 1e-10)
        close(float(mine[0]["tr_lin"]), g_lin(tmp, mine[0], w, depth, 5, data), "w=%d: tr_lin" % w, 1e-12)
        h, h2 = vals[:, 0], vals[:, 1]
        m2 = np.mean((h - h.mean()) ** 2) * R
        m4 = np.sum((h - h.mean()) ** 4)
        sev = math.sqrt(max(m4 / R - (R - 3) / (R - 1) * h.var(ddof=1) ** 2, 0) / R)
        # Statistics over R = 10 values recomputed independently: rounding of ~1e-12 relative.
        close(e["mean_tr_h"], h.mean(), "w=%d: mean_tr_h" % w, 1e-9)
        close(e["var_tr_h"], m2 / (R - 1), "w=%d: var_tr_h (unbiased)" % w, 1e-9)
        close(e["se_var_tr_h"], sev, "w=%d: se_var_tr_h (fourth-moment formula)" % w, 1e-8)
        close(e["mean_tr_h2"], h2.mean(), "w=%d: mean_tr_h2" % w, 1e-9)
        close(e["se_mean_tr_h2"], h2.std(ddof=1) / math.sqrt(R), "w=%d: se_mean_tr_h2" % w, 1e-8)
        close(e["ratio_S_I"], vals[:, 2].mean(), "w=%d: ratio_S_I (mean over networks)" % w, 1e-9)
        a2, p = ad_p(h)
        from scipy.stats import anderson
        close(a2, anderson(h).statistic, "w=%d: our A^2 = scipy.stats.anderson" % w, 1e-10)
        close(e["normality_p"], p, "w=%d: Anderson-Darling p-value" % w, 1e-8)
    gram = os.path.join(tmp, "g")
    must(cli("gram", "--act", "softplus", "--depth", str(depth), "--beta", "0.1", "--data", data + "/X.npy",
             "--out", gram), "gram")
    Y = np.load(data + "/Y.npy").reshape(-1)
    g = -Y / len(Y)  # grad C(0) of C = (1/2N)||Y - Y*||^2
    Xi, Ups = np.load(gram + "/Xi.npy"), np.load(gram + "/Upsilon.npy")
    # Same kernels, products in a different order: rounding.
    close(js["predicted"]["var_tr_h"], g @ Xi @ g, "predicted var_tr_h = gradC^T Xi gradC", 1e-12)
    close(js["predicted"]["lim_tr_h2"], g @ Ups @ g, "predicted lim_tr_h2 = gradC^T Upsilon gradC", 1e-12)
    return data, rows


def test_hutchinson(tmp, data, dense_rows):
    out = os.path.join(tmp, "oh")
    must(cli("meanfield", "--data", data + "/X.npy", "--targets", data + "/Y.npy", "--widths", "4,6", "--depth",
             "3", "--trials", "10", "--seed", "5", "--dense-max", "0", "--probes", "48", "--out", out,
             "--threads", "1"), "meanfield Hutchinson run")
    rows = read_trials(os.path.join(out, "trials.csv"))
    check(all(r["exact"] == "0" for r in rows), "estimator path taken (exact = 0)")
    a = np.array([float(r["tr_h"]) for r in rows])
    b = np.array([float(r["tr_h"]) for r in dense_rows])
    close(a, b, "tr_h is exact on both paths (same seeds)", 1e-13)
    est = np.array([float(r["tr_h2"]) for r in rows])
    se = np.array([float(r["hutch_se_tr_h2"]) for r in rows])
    ref = np.array([float(r["tr_h2"]) for r in dense_rows])
    z = (est - ref) / se
    check(np.all(se > 0) and np.all(np.abs(z) < 5), "Hutchinson tr_h2 within 5 SE of the dense value",
          "(max |z| %.2f)" % np.max(np.abs(z)))
    # the sum of 20 independent deviations: |z| < 4 has probability 1 - 6e-5 if the SEs are right
    zt = np.sum(est - ref) / math.sqrt(np.sum(se ** 2))
    check(abs(zt) < 4, "Hutchinson tr_h2 unbiased over 20 networks", "(z %.2f)" % zt)


def test_bce(tmp):
    data = os.path.join(tmp, "db")
    must(cli("data", "sphere", "--n", "5", "--dim", "4", "--loss", "bce", "--out", data), "data bce")
    out = os.path.join(tmp, "ob")
    must(cli("meanfield", "--data", data + "/X.npy", "--targets", data + "/Y.npy", "--loss", "bce", "--widths",
             "5", "--depth", "2", "--trials", "8", "--out", out, "--threads", "1"), "meanfield bce")
    rows = read_trials(os.path.join(out, "trials.csv"))
    v = dense_values(tmp, rows[0], 5, 2, 4, data, "bce")
    close([float(rows[0][k]) for k in ("tr_h", "tr_h2", "ratio_S_I", "tr_i")], v, "bce: one network vs numpy",
          1e-10)


def test_errors(tmp, data):
    base = ["meanfield", "--data", data + "/X.npy", "--targets", data + "/Y.npy", "--out", tmp + "/e"]
    expect_error("no --widths", base, "widths", codes=(2,))
    expect_error("width 0", base + ["--widths", "0"], "widths", codes=(2,))
    expect_error("too few trials", base + ["--widths", "4", "--trials", "2"], "trials", codes=(2,))
    expect_error("unknown act", base + ["--widths", "4", "--act", "nope"], "nope", codes=(2,))
    expect_error("depth 1", base + ["--widths", "4", "--depth", "1"], "depth", codes=(2,))
    expect_error("missing data", ["meanfield", "--data", tmp + "/none.npy", "--targets", data + "/Y.npy",
                                  "--widths", "4", "--out", tmp + "/e"], "none.npy")
    expect_error("ce labels not integers", base + ["--widths", "4", "--loss", "ce"], "not an integer")
    expect_error("output folder holds the inputs", ["meanfield", "--data", data + "/X.npy", "--targets",
                                                    data + "/Y.npy", "--widths", "4", "--out", data], "input")
    check(not os.path.exists(tmp + "/e"), "no output folder left by the failed runs")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        res = section("dense case", test_dense_case, tmp)
        if res:
            section("hutchinson", test_hutchinson, tmp, *res)
            section("errors", test_errors, tmp, res[0])
        section("bce", test_bce, tmp)
    finish()


if __name__ == "__main__":
    main()
