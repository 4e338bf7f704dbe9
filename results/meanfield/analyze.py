#!/usr/bin/env python3
"""Analysis of an `ntkhess meanfield` run: z-scores of each measured quantity
against the mean-field prediction per width, and the fitted finite-width law
dev(w) = a w^-p (weighted least squares on the measured deviations with their
standard errors; p and a with their SEs from the covariance of the fit).

Usage: analyze.py RUN_DIR   (reads RUN_DIR/widths.csv; prints markdown)"""
import csv
import math
import sys

import warnings

import numpy as np
from scipy.optimize import curve_fit


def load(path):
    with open(path) as f:
        head = f.readline()
        pred = dict(kv.split("=") for kv in head[2:].split() if "=" in kv)
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in pred.items()}, rows


def fit(w, dev, se, p0):
    """dev = a w^-p; returns a, se_a, p, se_p, chi2/dof (NaN if < 3 widths)."""
    if len(w) < 3:
        return (math.nan,) * 5
    f = lambda x, a, p: a * x ** (-p)  # noqa: E731
    (a, p), cov = curve_fit(f, w, dev, p0=(dev[0] * w[0] ** p0, p0), sigma=se, absolute_sigma=True,
                            maxfev=20000)
    chi2 = float(np.sum(((dev - f(w, a, p)) / se) ** 2)) / (len(w) - 2)
    return a, math.sqrt(cov[0, 0]), p, math.sqrt(cov[1, 1]), chi2


def main():
    warnings.simplefilter("ignore")
    pred, rows = load(sys.argv[1] + "/widths.csv")
    col = lambda k: np.array([float(r[k]) for r in rows])  # noqa: E731
    w = col("width")
    print("predicted: var_tr_h = %.6g, lim_tr_h2 = %.6g, leading bias of E[tr_h] = %.6g / sqrt(w), "
          "lim ||S||_F/||I||_F/sqrt(w) = %.6g\n" % (pred["var_tr_h"], pred["lim_tr_h2"], pred["bias1"],
                                                    math.sqrt(pred["lim_tr_h2"] / pred["tr_i2_limit"])))
    print("| w | R | mean tr_h | z vs 0 | z vs bias1/sqrt(w) | var tr_h (SE) | z var | AD p | mean tr_h2 (SE) "
          "| z tr_h2 | Hutch SE / spread | ratio/sqrt(w) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m, s = float(r["mean_tr_h"]), float(r["se_mean_tr_h"])
        zb = (m - float(r["bias_pred_tr_h"])) / s
        hs, sd = float(r["hutch_se_tr_h2"]), float(r["sd_tr_h2"])
        print("| %s | %s | %.4g | %.1f | %.1f | %.4g (%.2g) | %.1f | %.3g | %.4g (%.2g) | %.1f | %s | %.4g |" % (
            r["width"], r["trials"], m, m / s, zb, float(r["var_tr_h"]), float(r["se_var_tr_h"]),
            float(r["z_var_tr_h"]), float(r["normality_p"]), float(r["mean_tr_h2"]), float(r["se_mean_tr_h2"]),
            float(r["z_tr_h2"]), "exact" if r["exact_tr_h2"] == "1" else "%.3g" % (hs / sd),
            float(r["ratio_over_sqrt_w"])))
    print("\nDecomposition per network (trials.csv): tr_h = tr_i + tr_lin + rest with tr_i = Tr I / sqrt(w), "
          "tr_lin = G_ntk . grad C(0) (the limit's Gaussian part); tr_h2 = tr_i2 + tr_s2 + 2 Tr(I S) / w with "
          "tr_i2 = Tr I^2 / w, tr_s2 = Tr S^2 / w (paper's H = I + S).\n")
    print("| w | skew tr_h | sqrt(w) E[tr_i] (-> Tr(HC Theta~)) | var tr_lin (SE) | z var lin | AD p lin "
          "| E[tr_i2] vs Tr((HC Theta~)^2)/w | E[tr_s2] (SE) | z tr_s2 vs lim |")
    print("|---|---|---|---|---|---|---|---|---|")
    trials = list(csv.DictReader(open(sys.argv[1] + "/trials.csv")))
    from scipy.stats import skew
    for r in rows:
        w_ = int(r["width"])
        t = {k: np.array([float(x[k]) for x in trials if int(x["width"]) == w_])
             for k in ("tr_h", "tr_i", "tr_i2", "tr_s2")}
        n = len(t["tr_h"])
        ms, ss = t["tr_s2"].mean(), t["tr_s2"].std(ddof=1) / math.sqrt(n)
        print("| %d | %.2f | %.4g | %.4g (%.2g) | %.1f | %.3g | %.4g vs %.4g | %.4g (%.2g) | %.1f |" % (
            w_, skew(t["tr_h"]), t["tr_i"].mean() * math.sqrt(w_), float(r["var_tr_lin"]),
            float(r["se_var_tr_lin"]), float(r["z_var_tr_lin"]), float(r["normality_p_lin"]), t["tr_i2"].mean(),
            pred["tr_i2_limit"] / w_, ms, ss, (ms - pred["lim_tr_h2"]) / ss))
    print("\nChi-square of 'no deviation' over the widths (sum of z^2, dof = widths), and of 'no deviation "
          "at w >= the median width'; fitted finite-width law dev(w) = a w^-p (weighted least squares; "
          "'not resolved' when the SE of p exceeds 1):\n")
    print("| quantity | chi2 (dof, p) all widths | chi2 (dof, p) upper half | a (SE) | p (SE) | chi2/dof of fit |")
    print("|---|---|---|---|---|---|")
    for name, dev, se, p0 in (
            ("E[tr_h] - 0", col("mean_tr_h"), col("se_mean_tr_h"), 0.5),
            ("E[tr_h] - bias1/sqrt(w)", col("mean_tr_h") - col("bias_pred_tr_h"), col("se_mean_tr_h"), 1.0),
            ("Var[tr_h] - var_tr_h", col("var_tr_h") - pred["var_tr_h"], col("se_var_tr_h"), 1.0),
            ("E[tr_h2] - lim_tr_h2", col("mean_tr_h2") - pred["lim_tr_h2"], col("se_mean_tr_h2"), 1.0)):
        from scipy.stats import chi2 as chi2d
        z2 = (dev / se) ** 2
        up = w >= np.median(w)
        cs = "%.1f (%d, %.2g) | %.1f (%d, %.2g)" % (z2.sum(), len(w), chi2d.sf(z2.sum(), len(w)), z2[up].sum(),
                                                   up.sum(), chi2d.sf(z2[up].sum(), up.sum()))
        try:
            with np.errstate(all="ignore"):
                a, sa, p, sp, c = fit(w, dev, se, p0)
        except RuntimeError:
            sp = math.inf
        if not sp < 1:
            print("| %s | %s | not resolved | not resolved | |" % (name, cs))
        else:
            print("| %s | %s | %.4g (%.2g) | %.3f (%.3f) | %.2f |" % (name, cs, a, sa, p, sp, c))


if __name__ == "__main__":
    main()
