#!/usr/bin/env python3
"""The 1/w terms of E[(1/w) Tr H^2] and Var[(1/sqrt(w)) Tr H] for the MSE
(n_L = 1), derived in
docs/meanfield.md: E[tr_h2] ~ lim + c2/w with
  c2 = Tr(Theta~^2)/N^2   ((1/w) Tr I^2)
     + Tr(Upsilon~ Sigma~)/N^2   (grad C(f/sqrt(w)) - grad C(0) = f/(N sqrt(w)) inside Tr S^2),
leaving out the finite-width mean of the empirical Upsilon and the I-S cross
term; and Var[tr_h] ~ var_tr_h + v1/w with
  v1 = (Tr(Xi~ Sigma~) + Tr(Phi~^2))/N^2   (variance of G . f/(N sqrt(w))),
leaving out the fluctuation of Tr I and non-Gaussian corrections to G.
Prints each measured excess, the 1/w term and the z-score of what remains.

Usage: second_moment.py RUN_DIR GRAM_DIR Y.npy
  (GRAM_DIR from `ntkhess gram --act A --depth L --data X.npy --out GRAM_DIR`)"""
import csv
import sys

import numpy as np
from scipy.stats import chi2


def main():
    run, gram, ypath = sys.argv[1:4]
    Y = np.load(ypath).ravel()
    N = len(Y)
    U, S, T = (np.load("%s/%s.npy" % (gram, k)) for k in ("Upsilon", "Sigma", "Theta"))
    lim = Y @ U @ Y / N ** 2
    ci, cu = np.trace(T @ T) / N ** 2, np.trace(U @ S) / N ** 2
    print("lim_tr_h2 = %.6g, c2 = Tr(Theta^2)/N^2 + Tr(Upsilon Sigma)/N^2 = %.4g + %.4g = %.4g\n"
          % (lim, ci, cu, ci + cu))
    print("| w | excess E[tr_h2] - lim (SE) | c2/w | z of excess - c2/w |")
    print("|---|---|---|---|")
    z2 = []
    with open(run + "/widths.csv") as f:
        for r in csv.DictReader(l for l in f if not l.startswith("#")):
            w, m, se = float(r["width"]), float(r["mean_tr_h2"]), float(r["se_mean_tr_h2"])
            z = (m - lim - (ci + cu) / w) / se
            z2.append(z * z)
            print("| %d | %.5f (%.5f) | %.5f | %.1f |" % (w, m - lim, se, (ci + cu) / w, z))
    print("\nchi2 = %.1f on %d widths (p = %.2g)" % (sum(z2), len(z2), chi2.sf(sum(z2), len(z2))))
    Xi, Phi = (np.load("%s/%s.npy" % (gram, k)) for k in ("Xi", "Phi"))
    var = Y @ Xi @ Y / N ** 2
    v1 = (np.trace(Xi @ S) + np.trace(Phi @ Phi)) / N ** 2
    print("\nvar_tr_h = %.6g, v1 = (Tr(Xi Sigma) + Tr(Phi^2))/N^2 = %.4g\n" % (var, v1))
    print("| w | excess Var[tr_h] - var_tr_h (SE) | v1/w | z of excess - v1/w |")
    print("|---|---|---|---|")
    z2 = []
    with open(run + "/widths.csv") as f:
        for r in csv.DictReader(l for l in f if not l.startswith("#")):
            w, v, se = float(r["width"]), float(r["var_tr_h"]), float(r["se_var_tr_h"])
            z = (v - var - v1 / w) / se
            z2.append(z * z)
            print("| %d | %.4g (%.2g) | %.4g | %.1f |" % (w, v - var, se, v1 / w, z))
    print("\nchi2 = %.1f on %d widths (p = %.2g)" % (sum(z2), len(z2), chi2.sf(sum(z2), len(z2))))


if __name__ == "__main__":
    main()
