/* test_predict.c -- the infinite-width predictions (src/predict.c) against
 * independent truths built here: fixed-step RK4 integrations with this
 * file's own loss derivatives, explicit dense matrix powers, a matrix
 * exponential by scaling and squaring, linear solves, Monte Carlo. */
#include "ntkhess.h"
#include "core/blas.h"
#include "nh_test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

static nh_rng R;

static double *dnew(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static void mm(size_t n, size_t k, size_t m, const double *A, const double *B, double *C) { /* C = A B */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) {
            double s = 0;
            for (size_t l = 0; l < k; l++) s += A[i * k + l] * B[l * m + j];
            C[i * m + j] = s;
        }
}
static void transpose(size_t n, const double *A, double *AT) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) AT[j * n + i] = A[i * n + j];
}

/* Random orthogonal Q (n x n) by Gram-Schmidt applied twice. */
static void rand_orth(size_t n, double *Q) {
    nh_rng_fill_normal(&R, n * n, Q);
    for (size_t j = 0; j < n; j++)
        for (int pass = 0; pass < 2; pass++) {
            for (size_t p = 0; p < j; p++) {
                double d = 0;
                for (size_t i = 0; i < n; i++) d += Q[i * n + j] * Q[i * n + p];
                for (size_t i = 0; i < n; i++) Q[i * n + j] -= d * Q[i * n + p];
            }
            double s = 0;
            for (size_t i = 0; i < n; i++) s += Q[i * n + j] * Q[i * n + j];
            s = sqrt(s);
            for (size_t i = 0; i < n; i++) Q[i * n + j] /= s;
        }
}
/* A = Q diag(lam) Q^T. */
static void from_eig(size_t n, const double *Q, const double *lam, double *A) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t a = 0; a < n; a++) s += Q[i * n + a] * lam[a] * Q[j * n + a];
            A[i * n + j] = s;
        }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) A[i * n + j] = A[j * n + i] = 0.5 * (A[i * n + j] + A[j * n + i]);
}
/* Random SPD matrix with eigenvalues uniform in [lo, hi]. */
static void rand_spd(size_t n, double lo, double hi, double *A) {
    double *Q = dnew(n * n), *lam = dnew(n);
    rand_orth(n, Q);
    for (size_t a = 0; a < n; a++) lam[a] = lo + (hi - lo) * nh_rng_uniform(&R);
    from_eig(n, Q, lam, A);
    free(Q); free(lam);
}

/* A test problem: all six Gram matrices.  (Sigma, Phi, Xi) come from one
 * random feature model so that [[Sigma, Phi^T], [Phi, Xi]] is PSD while Phi
 * is far from symmetric. */
typedef struct prob { size_t n; double *th, *la, *up, *ph, *xi, *si; nh_grams g; } prob;

static void prob_make(prob *p, size_t n, double thlo, double thhi) {
    p->n = n;
    p->th = dnew(n * n); p->la = dnew(n * n); p->up = dnew(n * n);
    p->ph = dnew(n * n); p->xi = dnew(n * n); p->si = dnew(n * n);
    rand_spd(n, thlo, thhi, p->th);
    nh_rng_fill_normal(&R, n * n, p->la);
    for (size_t i = 0; i < n * n; i++) p->la[i] = 0.5 * p->la[i] + 0.2;
    rand_spd(n, 0.1, 2.0, p->up);
    size_t m = 3 * n, q = 2 * n;
    double *A = dnew(q * m);
    nh_rng_fill_normal(&R, q * m, A);
    /* G rows mix Y rows with a non-symmetric map, so Phi != Phi^T clearly */
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < m; c++) A[(n + i) * m + c] += 1.5 * A[((i + 1) % n) * m + c];
    for (size_t i = 0; i < q; i++)
        for (size_t j = 0; j < q; j++) {
            double s = 0;
            for (size_t c = 0; c < m; c++) s += A[i * m + c] * A[j * m + c];
            s /= (double)m;
            if (i < n && j < n) p->si[i * n + j] = s;
            else if (i >= n && j < n) p->ph[(i - n) * n + j] = s; /* E[G_i Y_j] */
            else if (i >= n && j >= n) p->xi[(i - n) * n + j - n] = s;
        }
    free(A);
    p->g = (nh_grams){n, p->th, p->la, p->up, p->ph, p->xi, p->si};
}
static void prob_free(prob *p) {
    free(p->th); free(p->la); free(p->up); free(p->ph); free(p->xi); free(p->si);
}

/* ---------------------------------------- this file's own loss derivatives */

static double logistic(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

/* grad[N x q] and dense HC[(N q) x (N q)] (may be NULL) of C = (1/N) sum c_i. */
static void my_loss(nh_loss loss, size_t n, size_t q, const double *Y, const double *T, double *grad, double *HC) {
    size_t d = n * q;
    if (HC) memset(HC, 0, d * d * sizeof *HC);
    for (size_t i = 0; i < n; i++) {
        if (loss == NH_LOSS_MSE || loss == NH_LOSS_BCE) {
            for (size_t k = 0; k < q; k++) {
                size_t a = i * q + k;
                double y = Y[a];
                if (loss == NH_LOSS_MSE) {
                    grad[a] = (y - T[a]) / (double)n;
                    if (HC) HC[a * d + a] = 1.0 / (double)n;
                } else {
                    grad[a] = -T[a] * logistic(-T[a] * y) / (double)n;
                    if (HC) HC[a * d + a] = 1.0 / ((double)n * (2 + exp(y) + exp(-y))); /* sheet item 11 */
                }
            }
        } else {
            double mx = -INFINITY, z = 0;
            for (size_t k = 0; k < q; k++) mx = fmax(mx, Y[i * q + k]);
            for (size_t k = 0; k < q; k++) z += exp(Y[i * q + k] - mx);
            for (size_t k = 0; k < q; k++) {
                double pk = exp(Y[i * q + k] - mx) / z;
                grad[i * q + k] = (pk - ((size_t)T[i] == k)) / (double)n;
                if (HC)
                    for (size_t l = 0; l < q; l++) {
                        double pl = exp(Y[i * q + l] - mx) / z;
                        HC[(i * q + k) * d + i * q + l] = ((k == l) * pk - pk * pl) / (double)n;
                    }
            }
        }
    }
}

/* Tr((HC Theta~)^k), k = 1..4, from explicit dense (N q)^2 matrices. */
static void dense_tr_i(size_t n, size_t q, const double *th, const double *HC, double tr[4]) {
    size_t d = n * q;
    double *Tt = dnew(d * d), *A = dnew(d * d), *P = dnew(d * d), *P2 = dnew(d * d);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < q; k++)
            for (size_t j = 0; j < n; j++) Tt[(i * q + k) * d + j * q + k] = th[i * n + j]; /* Theta (x) Id */
    mm(d, d, d, HC, Tt, A);
    memcpy(P, A, d * d * sizeof *P);
    for (int k = 0; k < 4; k++) {
        double s = 0;
        for (size_t a = 0; a < d; a++) s += P[a * d + a];
        tr[k] = s;
        mm(d, d, d, P, A, P2);
        memcpy(P, P2, d * d * sizeof *P);
    }
    free(Tt); free(A); free(P); free(P2);
}

/* Fixed-step RK4 of dY = -Theta grad, dG = -Lambda grad with this file's grad;
 * Y, G (N x q) advanced in place from t0 to t1 with nsteps steps. */
static void rk4(nh_loss loss, size_t n, size_t q, const double *th, const double *la, const double *T, double *Y,
                double *G, double t0, double t1, size_t nsteps) {
    size_t d = n * q;
    double h = (t1 - t0) / (double)nsteps;
    double *gr = dnew(d), *Yt = dnew(d), *kY[4], *kG[4];
    for (int s = 0; s < 4; s++) { kY[s] = dnew(d); kG[s] = dnew(d); }
    static const double c[4] = {0, 0.5, 0.5, 1};
    for (size_t st = 0; st < nsteps; st++) {
        for (int s = 0; s < 4; s++) {
            for (size_t a = 0; a < d; a++) Yt[a] = Y[a] + (s ? c[s] * h * kY[s - 1][a] : 0.0);
            my_loss(loss, n, q, Yt, T, gr, NULL);
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < q; k++) {
                    double sy = 0, sg = 0;
                    for (size_t j = 0; j < n; j++) {
                        sy += th[i * n + j] * gr[j * q + k];
                        sg += la[i * n + j] * gr[j * q + k];
                    }
                    kY[s][i * q + k] = -sy;
                    kG[s][i * q + k] = -sg;
                }
        }
        for (size_t a = 0; a < d; a++) {
            Y[a] += h / 6 * (kY[0][a] + 2 * kY[1][a] + 2 * kY[2][a] + kY[3][a]);
            G[a] += h / 6 * (kG[0][a] + 2 * kG[1][a] + 2 * kG[2][a] + kG[3][a]);
        }
    }
    free(gr); free(Yt);
    for (int s = 0; s < 4; s++) { free(kY[s]); free(kG[s]); }
}

/* Moments of Theorem 1 from (Y, G) by this file's formulas. */
static void my_moments(nh_loss loss, size_t n, size_t q, const prob *p, const double *T, const double *Y,
                       const double *G, nh_moments *m) {
    size_t d = n * q;
    double *gr = dnew(d), *HC = dnew(d * d);
    my_loss(loss, n, q, Y, T, gr, HC);
    dense_tr_i(n, q, p->th, HC, m->tr_i);
    double s1 = 0, s2 = 0;
    for (size_t a = 0; a < d; a++) s1 += G[a] * gr[a];
    for (size_t k = 0; k < q; k++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) s2 += gr[i * q + k] * p->up[i * n + j] * gr[j * q + k];
    m->tr_s[0] = s1; m->tr_s[1] = s2; m->tr_s[2] = m->tr_s[3] = 0;
    for (int k = 0; k < 4; k++) m->tr_h[k] = m->tr_i[k] + m->tr_s[k];
    free(gr); free(HC);
}

static void check_moments(const nh_moments *got, const nh_moments *want, double tol, const char *what, double t) {
    double gi[12], wi[12];
    for (int k = 0; k < 4; k++) {
        gi[k] = got->tr_i[k]; gi[4 + k] = got->tr_s[k]; gi[8 + k] = got->tr_h[k];
        wi[k] = want->tr_i[k]; wi[4 + k] = want->tr_s[k]; wi[8 + k] = want->tr_h[k];
    }
    for (int j = 0; j < 12; j++) {
        double scale = fmax(fabs(wi[j]), 1e-3 * fabs(wi[j < 4 ? 0 : j < 8 ? 4 : 8]) + 1e-300);
        nh_check_close(gi[j], wi[j], tol * scale, 0, "%s t=%g moment %s%d", what, t,
                       j < 4 ? "TrI^" : j < 8 ? "TrS^" : "TrH^", j % 4 + 1);
    }
}

/* E = exp(-t Theta / N) by scaling and squaring of a Taylor series. */
static void expm_neg(size_t n, const double *th, double t, double *E) {
    double nrm = 0;
    for (size_t i = 0; i < n * n; i++) nrm = fmax(nrm, fabs(th[i]));
    nrm *= (double)n * t / (double)n;
    int sq = 0;
    while (nrm > 0.25) { nrm /= 2; sq++; }
    double sc = -t / (double)n / ldexp(1.0, sq);
    double *A = dnew(n * n), *P = dnew(n * n), *P2 = dnew(n * n);
    for (size_t i = 0; i < n * n; i++) A[i] = sc * th[i];
    for (size_t i = 0; i < n * n; i++) E[i] = P[i] = (i % (n + 1) == 0);
    for (int k = 1; k <= 25; k++) {
        mm(n, n, n, P, A, P2);
        for (size_t i = 0; i < n * n; i++) { P[i] = P2[i] / k; E[i] += P[i]; }
    }
    for (int s = 0; s < sq; s++) {
        mm(n, n, n, E, E, P2);
        memcpy(E, P2, n * n * sizeof *E);
    }
    free(A); free(P); free(P2);
}

/* X = Theta^{-1} B (Theta SPD), B n x m. */
static void spd_solve(size_t n, size_t m, const double *th, const double *B, double *X) {
    double *A = dnew(n * n);
    memcpy(A, th, n * n * sizeof *A);
    memcpy(X, B, n * m * sizeof *X);
    lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)n, (lapack_int)m, A, (lapack_int)n, X,
                                    (lapack_int)m);
    nh_check(info == 0, "dposv in the test (info %d)", (int)info);
    free(A);
}

/* ------------------------------------------------------------------ tests */

static const double TIMES[] = {0.0, 0.25, 1.0, 4.0, 16.0};
#define NTIMES 5

/* Corollary 1 closed form vs the library's own DP45 on the same ODE and vs
 * RK4 here; Tr I^k vs explicit matrix powers. */
static void test_mse_closed_vs_ode(void) {
    size_t n = 6, q = 2, d = n * q;
    prob p;
    prob_make(&p, n, 0.1 * (double)n, 2.0 * (double)n); /* lambda/N in [0.1, 2] */
    double *Ys = dnew(d), *Y0 = dnew(d), *G0 = dnew(d);
    nh_rng_fill_normal(&R, d, Ys); nh_rng_fill_normal(&R, d, Y0); nh_rng_fill_normal(&R, d, G0);
    double *Yc = dnew(NTIMES * d), *Gc = dnew(NTIMES * d), *Yo = dnew(NTIMES * d), *Go = dnew(NTIMES * d);
    nh_moments mc[NTIMES], mo[NTIMES];
    nh_predict_diag dg;
    nh_status st = nh_predict_mse(&p.g, q, Ys, Y0, G0, NTIMES, TIMES, NULL, Yc, Gc, mc, &dg);
    nh_check(st == NH_OK, "nh_predict_mse ok (%s)", nh_last_error());
    nh_check(dg.theta_clipped == 0, "SPD theta: nothing clipped");
    st = nh_predict_ode(&p.g, NH_LOSS_MSE, q, Ys, Y0, G0, NTIMES, TIMES, NULL, Yo, Go, mo, &dg);
    nh_check(st == NH_OK, "nh_predict_ode mse ok (%s)", nh_last_error());
    printf("  MSE DP45: %zu steps, %zu rejected, %zu evals to t=16\n", dg.ode_steps, dg.ode_rejected, dg.ode_evals);
    nh_check_array(Yo, Yc, NTIMES * d, 0, 1e-9, "MSE Y(t): DP45 vs closed form");
    nh_check_array(Go, Gc, NTIMES * d, 0, 1e-9, "MSE G(t): DP45 vs closed form");
    double worst = 0;
    for (size_t it = 0; it < NTIMES; it++) {
        check_moments(&mo[it], &mc[it], 1e-9, "MSE DP45 vs closed", TIMES[it]);
        worst = fmax(worst, fabs(mo[it].tr_s[0] - mc[it].tr_s[0]) / fabs(mc[it].tr_s[0]));
    }
    printf("  MSE Tr S: DP45 vs closed form max rel diff %.3g\n", worst);

    /* RK4 here: h = 1e-3 */
    double *Y = dnew(d), *G = dnew(d);
    memcpy(Y, Y0, d * sizeof *Y); memcpy(G, G0, d * sizeof *G);
    double maxe = 0;
    for (size_t it = 0; it < NTIMES; it++) {
        if (it > 0) rk4(NH_LOSS_MSE, n, q, p.th, p.la, Ys, Y, G, TIMES[it - 1], TIMES[it],
                        (size_t)((TIMES[it] - TIMES[it - 1]) / 1e-3 + 0.5));
        nh_check_array(Yc + it * d, Y, d, 0, 1e-9, "MSE Y(t=%g): closed form vs RK4", TIMES[it]);
        nh_check_array(Gc + it * d, G, d, 0, 1e-9, "MSE G(t=%g): closed form vs RK4", TIMES[it]);
        nh_moments mr;
        my_moments(NH_LOSS_MSE, n, q, &p, Ys, Y, G, &mr); /* Tr I^k by explicit powers */
        check_moments(&mc[it], &mr, 1e-9, "MSE closed vs RK4+dense", TIMES[it]);
        for (size_t a = 0; a < d; a++) maxe = fmax(maxe, fabs(Gc[it * d + a] - G[a]));
    }
    printf("  MSE G: closed form vs RK4 max abs diff %.3g\n", maxe);
    free(Y); free(G);
    free(Ys); free(Y0); free(G0); free(Yc); free(Gc); free(Yo); free(Go);
    prob_free(&p);
}

/* phi(lambda) as this file computes it: a series where cancellation bites. */
static double my_phi(double t, double lam, double n) {
    double x = t * lam / n;
    if (x < 1e-4) return t / n * (1 - x / 2 + x * x / 6 - x * x * x / 24);
    return (1 - exp(-x)) / lam;
}

/* Eigenvalues 1e-14 .. 1 (and an exactly singular Theta): no NaN, and the
 * result matches the exact-eigenbasis reference with phi -> t/N. */
static void test_mse_small_lambda(void) {
    size_t n = 8, q = 1;
    prob p;
    prob_make(&p, n, 1, 2);
    double *Q = dnew(n * n), *lam = dnew(n);
    rand_orth(n, Q);
    for (size_t a = 0; a < n; a++) lam[a] = pow(10.0, -14.0 + 14.0 * (double)a / (double)(n - 1));
    from_eig(n, Q, lam, p.th);
    double *Ys = dnew(n), *Y0 = dnew(n), *G0 = dnew(n);
    nh_rng_fill_normal(&R, n, Ys); nh_rng_fill_normal(&R, n, Y0); nh_rng_fill_normal(&R, n, G0);
    double ts[3] = {0.0, 1.0, 50.0};
    double *Yc = dnew(3 * n), *Gc = dnew(3 * n);
    nh_moments mc[3];
    nh_predict_diag dg;
    nh_status st = nh_predict_mse(&p.g, q, Ys, Y0, G0, 3, ts, NULL, Yc, Gc, mc, &dg);
    nh_check(st == NH_OK, "small-lambda theta accepted (%s)", nh_last_error());
    printf("  small-lambda theta: eig min %.3g max %.3g, %zu clipped\n", dg.theta_eig_min, dg.theta_eig_max,
           dg.theta_clipped);
    int finite = 1;
    for (size_t i = 0; i < 3 * n; i++) finite &= isfinite(Yc[i]) && isfinite(Gc[i]);
    for (int it = 0; it < 3; it++)
        for (int k = 0; k < 4; k++) finite &= isfinite(mc[it].tr_h[k]);
    nh_check(finite, "small-lambda: no NaN/Inf anywhere");
    /* reference: exact Q and lambda */
    double *u = dnew(n), *cu = dnew(n), *Yr = dnew(n), *Gr = dnew(n), *pu = dnew(n);
    for (size_t i = 0; i < n; i++) u[i] = Ys[i] - Y0[i];
    for (size_t a = 0; a < n; a++) {
        cu[a] = 0;
        for (size_t i = 0; i < n; i++) cu[a] += Q[i * n + a] * u[i];
    }
    for (int it = 0; it < 3; it++) {
        for (size_t i = 0; i < n; i++) {
            double ye = 0, yp = 0;
            for (size_t a = 0; a < n; a++) {
                ye += Q[i * n + a] * exp(-ts[it] * lam[a] / (double)n) * cu[a];
                yp += Q[i * n + a] * my_phi(ts[it], lam[a], (double)n) * cu[a];
            }
            Yr[i] = Ys[i] - ye;
            pu[i] = yp;
        }
        for (size_t i = 0; i < n; i++) {
            Gr[i] = G0[i];
            for (size_t j = 0; j < n; j++) Gr[i] += p.la[i * n + j] * pu[j];
        }
        nh_check_array(Yc + it * n, Yr, n, 0, 1e-12, "small-lambda Y(t=%g) vs exact eigenbasis", ts[it]);
        nh_check_array(Gc + it * n, Gr, n, 0, 1e-12, "small-lambda G(t=%g) vs exact eigenbasis (phi -> t/N)",
                       ts[it]);
    }
    /* exactly singular Theta (rank n-3): limit phi(0) = t/N is what the ODE
     * does on the null space; compare with RK4 */
    for (size_t a = 0; a < 3; a++) lam[a] = 0.0;
    for (size_t a = 3; a < n; a++) lam[a] = 0.5 + (double)a;
    from_eig(n, Q, lam, p.th);
    st = nh_predict_mse(&p.g, q, Ys, Y0, G0, 3, ts, NULL, Yc, Gc, mc, &dg);
    nh_check(st == NH_OK, "singular theta accepted (%s)", nh_last_error());
    printf("  singular theta: eig min %.3g, %zu clipped\n", dg.theta_eig_min, dg.theta_clipped);
    double *Y = dnew(n), *G = dnew(n);
    memcpy(Y, Y0, n * sizeof *Y); memcpy(G, G0, n * sizeof *G);
    rk4(NH_LOSS_MSE, n, q, p.th, p.la, Ys, Y, G, 0, 1, 2000);
    nh_check_array(Gc + n, G, n, 0, 1e-9, "singular theta: G(1) vs RK4");
    nh_check_array(Yc + n, Y, n, 0, 1e-9, "singular theta: Y(1) vs RK4");
    free(Y); free(G);
    free(Q); free(lam); free(Ys); free(Y0); free(G0); free(Yc); free(Gc);
    free(u); free(cu); free(Yr); free(Gr); free(pu);
    prob_free(&p);
}

/* Expectation closed form: vs the sheet's formula evaluated here with an
 * explicit matrix exponential and a linear solve; vs sampling (4 SE); at
 * t = 0 vs (nout/N) Tr Phi. */
static void test_mse_expectation(void) {
    size_t n = 6, q = 2, d = n * q;
    prob p;
    prob_make(&p, n, 0.1 * (double)n, 2.0 * (double)n);
    for (size_t i = 0; i < n; i++) /* strongly non-symmetric Lambda: Lambda vs Lambda^T must matter */
        for (size_t j = 0; j < n; j++) p.la[i * n + j] = (j > i ? 2.0 : 0.0) + 0.1 * nh_rng_normal(&R);
    double *Ys = dnew(d);
    nh_rng_fill_normal(&R, d, Ys);
    double ts[4] = {0.0, 0.5, 2.0, 8.0};
    nh_moments me[4], ms[4], se[4];
    nh_predict_diag dg;
    nh_status st = nh_predict_mse_expect(&p.g, q, Ys, 4, ts, NULL, me, &dg);
    nh_check(st == NH_OK, "mse_expect ok (%s)", nh_last_error());
    double trphi = 0;
    for (size_t i = 0; i < n; i++) trphi += p.ph[i * n + i];
    nh_check_close(me[0].tr_s[0], (double)q * trphi / (double)n, 1e-13, 1e-12, "E Tr S(0) = (nout/N) Tr Phi");

    /* the sheet's formula with explicit matrices */
    double *E = dnew(n * n), *M = dnew(n * n), *IE = dnew(n * n), *Ph = dnew(n * n), *LT = dnew(n * n);
    double *A = dnew(n * n), *B = dnew(n * n), *C = dnew(n * n), *ThT = dnew(n * n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double s = (double)q * p.si[i * n + j];
            for (size_t k = 0; k < q; k++) s += Ys[i * q + k] * Ys[j * q + k];
            M[i * n + j] = s;
        }
    transpose(n, p.la, LT);
    for (int it = 0; it < 4; it++) {
        expm_neg(n, p.th, ts[it], E);
        for (size_t i = 0; i < n * n; i++) IE[i] = (i % (n + 1) == 0) - E[i];
        spd_solve(n, n, p.th, IE, ThT); /* Theta^{-1}(Id - E) = (Id - E) Theta^{-1} (they commute) */
        mm(n, n, n, ThT, LT, A); mm(n, n, n, A, E, B); mm(n, n, n, B, M, C);
        double t1 = 0;
        for (size_t i = 0; i < n; i++) t1 += C[i * n + i];
        transpose(n, p.ph, Ph);
        mm(n, n, n, E, Ph, A);
        double t2 = 0;
        for (size_t i = 0; i < n; i++) t2 += A[i * n + i];
        double ets = -t1 / (double)n + (double)q * t2 / (double)n;
        mm(n, n, n, E, p.up, A); mm(n, n, n, A, E, B); mm(n, n, n, B, M, C);
        double t3 = 0;
        for (size_t i = 0; i < n; i++) t3 += C[i * n + i];
        double ets2 = t3 / (double)(n * n);
        nh_check_close(me[it].tr_s[0], ets, 1e-12, 1e-10, "E Tr S(t=%g) vs sheet formula (expm + solve)", ts[it]);
        nh_check_close(me[it].tr_s[1], ets2, 1e-12, 1e-10, "E Tr S^2(t=%g) vs sheet formula", ts[it]);
    }
    free(E); free(M); free(IE); free(Ph); free(LT); free(A); free(B); free(C); free(ThT);

    nh_predict_opts o = nh_predict_opts_default();
    o.nsamples = 40000;
    o.seed = 7;
    st = nh_predict_sample(&p.g, NH_LOSS_MSE, q, Ys, 4, ts, &o, ms, se, &dg);
    nh_check(st == NH_OK, "sample mse ok (%s)", nh_last_error());
    /* the same with Lambda transposed, to show the sampling check can tell */
    nh_moments mw[4];
    double *LaT = dnew(n * n), zw = 0;
    transpose(n, p.la, LaT);
    nh_grams gw = p.g;
    gw.lambda = LaT;
    nh_predict_mse_expect(&gw, q, Ys, 4, ts, NULL, mw, NULL);
    free(LaT);
    for (int it = 0; it < 4; it++) {
        for (int k = 0; k < 2; k++) {
            double z = (ms[it].tr_s[k] - me[it].tr_s[k]) / se[it].tr_s[k];
            printf("  E Tr S^%d(t=%g): closed %.6g, sampled %.6g +- %.3g (z = %.2f)\n", k + 1, ts[it],
                   me[it].tr_s[k], ms[it].tr_s[k], se[it].tr_s[k], z);
            nh_check(fabs(z) < 4, "E Tr S^%d(t=%g): closed form within 4 SE of sampling (z=%.2f)", k + 1, ts[it], z);
        }
        nh_check_close(ms[it].tr_i[1], me[it].tr_i[1], 0, 1e-13, "sampled Tr I^2 deterministic");
        if (it > 0) {
            /* the sheet's Lambda^T read as Lambda: must be rejected */
            double z = (ms[it].tr_s[0] - mw[it].tr_s[0]) / se[it].tr_s[0];
            printf("  E Tr S(t=%g) with Lambda in place of Lambda^T: %.6g (z = %.1f)\n", ts[it], mw[it].tr_s[0], z);
            zw = fmax(zw, fabs(z));
        }
        nh_check(se[it].tr_i[0] == 0.0, "Tr I has zero SE for the MSE");
    }
    nh_check(zw > 10, "Lambda in place of Lambda^T rejected by sampling (max z %.1f)", zw);
    free(Ys);
    prob_free(&p);
}

/* Sampler: E[G_i Y_j] = Phi_ij (not Phi_ji), E[Y Y^T] = Sigma, E[G G^T] = Xi. */
static void test_draws(void) {
    size_t n = 5, M = 40000;
    prob p;
    prob_make(&p, n, 1, 2);
    double *Y = dnew(M * n), *G = dnew(M * n);
    nh_predict_opts o = nh_predict_opts_default();
    o.seed = 3;
    nh_predict_diag dg;
    nh_status st = nh_predict_draw_init(&p.g, 1, M, &o, Y, G, &dg);
    nh_check(st == NH_OK, "draw_init ok (%s)", nh_last_error());
    printf("  covariance of (Y0, G0): eig min %.3g, %zu clipped\n", dg.cov_eig_min, dg.cov_clipped);
    double zmax[3] = {0, 0, 0}, zT = 1e300;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double s[3] = {0, 0, 0}, s2[3] = {0, 0, 0};
            for (size_t m = 0; m < M; m++) {
                double v[3] = {G[m * n + i] * Y[m * n + j], Y[m * n + i] * Y[m * n + j], G[m * n + i] * G[m * n + j]};
                for (int c = 0; c < 3; c++) { s[c] += v[c]; s2[c] += v[c] * v[c]; }
            }
            const double *want[3] = {p.ph, p.si, p.xi};
            for (int c = 0; c < 3; c++) {
                double mu = s[c] / (double)M, sd = sqrt((s2[c] / (double)M - mu * mu) / (double)M);
                zmax[c] = fmax(zmax[c], fabs(mu - want[c][i * n + j]) / sd);
                if (c == 0 && fabs(p.ph[i * n + j] - p.ph[j * n + i]) > 0.3)
                    zT = fmin(zT, fabs(mu - p.ph[j * n + i]) / sd); /* the wrong order */
            }
        }
    printf("  draws: max z  E[G_i Y_j]-Phi_ij %.2f, E[YY]-Sigma %.2f, E[GG]-Xi %.2f; vs Phi_ji min z %.1f\n",
           zmax[0], zmax[1], zmax[2], zT);
    nh_check(zmax[0] < 4.5 && zmax[1] < 4.5 && zmax[2] < 4.5, "draw covariances match Phi, Sigma, Xi");
    nh_check(zT > 10, "the transposed order Phi_ji is rejected (z > 10)");
    /* same seed, same draws */
    double *Y2 = dnew(n), *G2 = dnew(n);
    nh_predict_draw_init(&p.g, 1, 1, &o, Y2, G2, NULL);
    nh_check(memcmp(Y2, Y, n * sizeof *Y) == 0 && memcmp(G2, G, n * sizeof *G) == 0, "draws reproducible by seed");
    free(Y2); free(G2); free(Y); free(G);
    prob_free(&p);
}

/* BCE and CE: library DP45 vs RK4 here, moments vs dense formulas. */
static void test_ce_ode(nh_loss loss) {
    size_t n = 6, q = loss == NH_LOSS_CE ? 3 : 2, d = n * q;
    const char *nm = nh_loss_name(loss);
    prob p;
    prob_make(&p, n, 0.2 * (double)n, 3.0 * (double)n);
    double *T = dnew(d), *Y0 = dnew(d), *G0 = dnew(d);
    if (loss == NH_LOSS_CE)
        for (size_t i = 0; i < n; i++) T[i] = (double)(nh_rng_u64(&R) % q);
    else
        for (size_t a = 0; a < d; a++) T[a] = nh_rng_uniform(&R) < 0.5 ? -1.0 : 1.0;
    nh_rng_fill_normal(&R, d, Y0); nh_rng_fill_normal(&R, d, G0);
    double ts[4] = {0.0, 0.5, 3.0, 20.0};
    double *Yo = dnew(4 * d), *Go = dnew(4 * d);
    nh_moments mo[4];
    nh_predict_diag dg;
    nh_status st = nh_predict_ode(&p.g, loss, q, T, Y0, G0, 4, ts, NULL, Yo, Go, mo, &dg);
    nh_check(st == NH_OK, "%s ode ok (%s)", nm, nh_last_error());
    printf("  %s DP45: %zu steps, %zu rejected\n", nm, dg.ode_steps, dg.ode_rejected);
    double *Y = dnew(d), *G = dnew(d);
    memcpy(Y, Y0, d * sizeof *Y); memcpy(G, G0, d * sizeof *G);
    double maxe = 0;
    for (int it = 0; it < 4; it++) {
        if (it > 0) rk4(loss, n, q, p.th, p.la, T, Y, G, ts[it - 1], ts[it], (size_t)((ts[it] - ts[it - 1]) / 1e-3));
        nh_check_array(Yo + it * d, Y, d, 0, 1e-9, "%s Y(t=%g) DP45 vs RK4", nm, ts[it]);
        nh_check_array(Go + it * d, G, d, 0, 1e-9, "%s G(t=%g) DP45 vs RK4", nm, ts[it]);
        for (size_t a = 0; a < d; a++) maxe = fmax(maxe, fabs(Yo[it * d + a] - Y[a]));
        nh_moments mr;
        my_moments(loss, n, q, &p, T, Y, G, &mr);
        check_moments(&mo[it], &mr, 1e-9, nm, ts[it]);
    }
    printf("  %s Y: DP45 vs RK4 max abs diff %.3g\n", nm, maxe);
    /* spectrum of I: its power sums are Tr I^k at t = 0 */
    double *eig = dnew(d);
    st = nh_predict_spectrum_i(&p.g, loss, q, T, Y0, eig);
    nh_check(st == NH_OK, "%s spectrum ok (%s)", nm, nh_last_error());
    int sorted = 1;
    for (size_t a = 1; a < d; a++) sorted &= eig[a] >= eig[a - 1];
    nh_check(sorted, "%s spectrum ascending", nm);
    for (int k = 0; k < 4; k++) {
        double s = 0;
        for (size_t a = 0; a < d; a++) s += pow(eig[a], k + 1);
        nh_check_close(s, mo[0].tr_i[k], 0, 1e-10, "%s sum eig^%d = Tr I^%d", nm, k + 1, k + 1);
    }
    /* d/dt Tr S at t = 0: -gradC^T Lambda^T gradC - G^T HC Theta gradC */
    double *gr = dnew(d), *HC = dnew(d * d);
    my_loss(loss, n, q, Y0, T, gr, HC);
    double dts = 0;
    for (size_t k = 0; k < q; k++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) dts -= gr[i * q + k] * p.la[i * n + j] * gr[j * q + k];
    for (size_t a = 0; a < d; a++)
        for (size_t b = 0; b < d; b++) {
            double tg = 0; /* (Theta~ gradC)_b */
            size_t i = b / q, k = b % q;
            for (size_t j = 0; j < n; j++) tg += p.th[i * n + j] * gr[j * q + k];
            dts -= G0[a] * HC[a * d + b] * tg;
        }
    double hh = 1e-3, th3[3] = {0, hh, 2 * hh};
    nh_moments m3[3];
    nh_predict_ode(&p.g, loss, q, T, Y0, G0, 3, th3, NULL, NULL, NULL, m3, NULL);
    double fd = (-3 * m3[0].tr_s[0] + 4 * m3[1].tr_s[0] - m3[2].tr_s[0]) / (2 * hh);
    nh_check_close(fd, dts, 1e-5, 1e-5, "%s d/dt Tr S(0): finite difference vs corrected formula", nm);
    free(gr); free(HC); free(eig);
    free(T); free(Y0); free(G0); free(Yo); free(Go); free(Y); free(G);
    prob_free(&p);
}

/* Sampling path for BCE/CE: equals the average of RK4 runs from the same draws
 * (batching 5 with a ragged last batch, and batch 1). */
static void test_ce_sample(nh_loss loss) {
    size_t n = 5, q = loss == NH_LOSS_CE ? 3 : 1, d = n * q, M = 12;
    const char *nm = nh_loss_name(loss);
    prob p;
    prob_make(&p, n, 0.2 * (double)n, 2.0 * (double)n);
    double *T = dnew(d);
    if (loss == NH_LOSS_CE)
        for (size_t i = 0; i < n; i++) T[i] = (double)(nh_rng_u64(&R) % q);
    else
        for (size_t a = 0; a < d; a++) T[a] = nh_rng_uniform(&R) < 0.5 ? -1.0 : 1.0;
    double ts[3] = {0.0, 1.0, 4.0};
    nh_predict_opts o = nh_predict_opts_default();
    o.nsamples = M; o.seed = 11; o.batch = 5;
    nh_moments mean[3], se[3], mean1[3];
    nh_predict_diag dg;
    nh_status st = nh_predict_sample(&p.g, loss, q, T, 3, ts, &o, mean, se, &dg);
    nh_check(st == NH_OK, "%s sample ok (%s)", nm, nh_last_error());
    o.batch = 1;
    st = nh_predict_sample(&p.g, loss, q, T, 3, ts, &o, mean1, NULL, NULL);
    nh_check(st == NH_OK, "%s sample batch 1 ok", nm);
    double *Y0 = dnew(M * d), *G0 = dnew(M * d);
    nh_predict_draw_init(&p.g, q, M, &o, Y0, G0, NULL);
    double sum[3][12], sum2[3][12];
    memset(sum, 0, sizeof sum); memset(sum2, 0, sizeof sum2);
    for (size_t m = 0; m < M; m++) {
        double *Y = Y0 + m * d, *G = G0 + m * d;
        for (int it = 0; it < 3; it++) {
            if (it > 0) rk4(loss, n, q, p.th, p.la, T, Y, G, ts[it - 1], ts[it], (size_t)((ts[it] - ts[it - 1]) / 2e-3));
            nh_moments mr;
            my_moments(loss, n, q, &p, T, Y, G, &mr);
            for (int k = 0; k < 4; k++) {
                double v[3] = {mr.tr_i[k], mr.tr_s[k], mr.tr_h[k]};
                for (int c = 0; c < 3; c++) { sum[it][c * 4 + k] += v[c]; sum2[it][c * 4 + k] += v[c] * v[c]; }
            }
        }
    }
    for (int it = 0; it < 3; it++) {
        nh_moments want, wse;
        for (int j = 0; j < 12; j++) {
            double mu = sum[it][j] / (double)M, var = (sum2[it][j] - M * mu * mu) / (double)(M - 1);
            double s = sqrt(fmax(var, 0) / (double)M);
            if (j < 4) { want.tr_i[j] = mu; wse.tr_i[j] = s; }
            else if (j < 8) { want.tr_s[j - 4] = mu; wse.tr_s[j - 4] = s; }
            else { want.tr_h[j - 8] = mu; wse.tr_h[j - 8] = s; }
        }
        check_moments(&mean[it], &want, 1e-8, "sampled mean vs RK4 average", ts[it]);
        check_moments(&mean1[it], &mean[it], 1e-8, "sampled mean batch 1 vs 5", ts[it]);
        nh_check_close(se[it].tr_s[0], wse.tr_s[0], 1e-10, 1e-6, "%s SE of Tr S(t=%g)", nm, ts[it]);
        nh_check_close(se[it].tr_i[1], wse.tr_i[1], 1e-10, 1e-6, "%s SE of Tr I^2(t=%g)", nm, ts[it]);
    }
    free(Y0); free(G0); free(T);
    prob_free(&p);
}

/* PD Theta: Y(t) -> Y*, G(t) -> G0 + Lambda Theta^{-1} (Y* - Y0), S -> 0. */
static void test_mse_convergence(void) {
    size_t n = 7, q = 2, d = n * q;
    prob p;
    prob_make(&p, n, 0.5 * (double)n, 3.0 * (double)n);
    double *Ys = dnew(d), *Y0 = dnew(d), *G0 = dnew(d), *u = dnew(d), *x = dnew(d), *Ginf = dnew(d);
    nh_rng_fill_normal(&R, d, Ys); nh_rng_fill_normal(&R, d, Y0); nh_rng_fill_normal(&R, d, G0);
    for (size_t a = 0; a < d; a++) u[a] = Ys[a] - Y0[a];
    spd_solve(n, q, p.th, u, x);
    mm(n, n, q, p.la, x, Ginf);
    for (size_t a = 0; a < d; a++) Ginf[a] += G0[a];
    double ts[3] = {1, 20, 200};
    double *Yc = dnew(3 * d), *Gc = dnew(3 * d);
    nh_moments mc[3];
    nh_predict_mse(&p.g, q, Ys, Y0, G0, 3, ts, NULL, Yc, Gc, mc, NULL);
    double e[3];
    for (int it = 0; it < 3; it++) {
        e[it] = 0;
        for (size_t a = 0; a < d; a++) e[it] = fmax(e[it], fabs(Yc[it * d + a] - Ys[a]));
    }
    printf("  MSE max|Y(t)-Y*|: t=1 %.3g, t=20 %.3g, t=200 %.3g; Tr S^2(200) = %.3g\n", e[0], e[1], e[2],
           mc[2].tr_s[1]);
    nh_check(e[0] > e[1] && e[1] > e[2] && e[2] < 1e-12, "Y(t) -> Y*");
    nh_check_array(Gc + 2 * d, Ginf, d, 0, 1e-12, "G(inf) = G0 + Lambda Theta^{-1} u");
    nh_check(fabs(mc[2].tr_s[0]) < 1e-12 && mc[2].tr_s[1] < 1e-20, "Tr S, Tr S^2 -> 0");
    free(Ys); free(Y0); free(G0); free(u); free(x); free(Ginf); free(Yc); free(Gc);
    prob_free(&p);
}

/* Per draw, MSE: d/dt Tr S at t = 0 equals -(1/N^2) u^T Lambda u +
 * (1/N^2) G0^T Theta u (from dG = -Lambda gradC, dY = -Theta gradC); the
 * paper's literal +G(0) sign would flip the second term. */
static void test_mse_sign(void) {
    size_t n = 6, q = 1;
    prob p;
    prob_make(&p, n, 0.5, 3.0); /* small PSD theta */
    double *Ys = dnew(n), *Y0 = dnew(n), *G0 = dnew(n);
    nh_rng_fill_normal(&R, n, Ys); nh_rng_fill_normal(&R, n, Y0); nh_rng_fill_normal(&R, n, G0);
    for (size_t i = 0; i < n; i++) G0[i] *= 5; /* make the G term dominate */
    double dn = (double)n, a1 = 0, a2 = 0, s0 = 0;
    for (size_t i = 0; i < n; i++) {
        double ui = Ys[i] - Y0[i];
        s0 += G0[i] * (Y0[i] - Ys[i]) / dn;
        for (size_t j = 0; j < n; j++) {
            double uj = Ys[j] - Y0[j];
            a1 += ui * p.la[i * n + j] * uj;
            a2 += G0[i] * p.th[i * n + j] * uj;
        }
    }
    double want = (-a1 + a2) / (dn * dn), paper = (-a1 - a2) / (dn * dn);
    double hh = 1e-4, th[5] = {0, hh, 2 * hh, 3 * hh, 4 * hh};
    nh_moments m[5];
    nh_predict_mse(&p.g, q, Ys, Y0, G0, 5, th, NULL, NULL, NULL, m, NULL);
    /* 4th-order one-sided difference */
    double fd = (-25 * m[0].tr_s[0] + 48 * m[1].tr_s[0] - 36 * m[2].tr_s[0] + 16 * m[3].tr_s[0] - 3 * m[4].tr_s[0]) /
                (12 * hh);
    printf("  d/dt Tr S(0): FD %.10g, corrected %.10g, paper's sign %.10g\n", fd, want, paper);
    nh_check_close(m[0].tr_s[0], s0, 1e-14, 1e-12, "Tr S(0) = G0^T (Y0 - Y*)/N");
    nh_check_close(fd, want, 1e-9, 1e-7, "d/dt Tr S(0) matches the corrected formula");
    nh_check(fabs(fd - paper) > 1e-3 * fabs(want), "and not the literal paper sign");
    free(Ys); free(Y0); free(G0);
    prob_free(&p);
}

/* Mean field at Y = 0, MSE: gradC = -Y* / N. */
static void test_meanfield(void) {
    size_t n = 5, q = 2, d = n * q;
    prob p;
    prob_make(&p, n, 1, 2);
    double *Ys = dnew(d);
    nh_rng_fill_normal(&R, d, Ys);
    double v = 0, u = 0, dn = (double)n;
    for (size_t k = 0; k < q; k++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                v += Ys[i * q + k] * p.xi[i * n + j] * Ys[j * q + k] / (dn * dn);
                u += Ys[i * q + k] * p.up[i * n + j] * Ys[j * q + k] / (dn * dn);
            }
    double gv, gu;
    nh_status st = nh_predict_meanfield(&p.g, NH_LOSS_MSE, q, Ys, NULL, &gv, &gu);
    nh_check(st == NH_OK, "meanfield ok");
    nh_check_close(gv, v, 0, 1e-12, "mean field Var (1/sqrt w) Tr H = gradC^T Xi gradC, gradC = -Y*/N");
    nh_check_close(gu, u, 0, 1e-12, "mean field (1/w) Tr H^2 -> gradC^T Upsilon gradC");
    /* MSE spectrum: eig(Theta)/N, nout times */
    double *eig = dnew(d), *lam = dnew(n), *A = dnew(n * n);
    memcpy(A, p.th, n * n * sizeof *A);
    LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)n, A, (lapack_int)n, lam);
    double *Y = dnew(d);
    st = nh_predict_spectrum_i(&p.g, NH_LOSS_MSE, q, Ys, Y, eig);
    nh_check(st == NH_OK, "mse spectrum ok");
    double *want = dnew(d);
    for (size_t a = 0; a < d; a++) want[a] = lam[a / q] / dn;
    nh_check_array(eig, want, d, 0, 1e-12, "MSE spectrum of I = eig(Theta)/N, each nout times");
    free(eig); free(lam); free(A); free(Y); free(want); free(Ys);
    prob_free(&p);
}

/* Clipping of tiny negative eigenvalues is reported; big ones are errors. */
static void test_clipping(void) {
    size_t n = 6, q = 1;
    prob p;
    prob_make(&p, n, 1, 2);
    double *Q = dnew(n * n), *lam = dnew(n);
    rand_orth(n, Q);
    for (size_t a = 0; a < n; a++) lam[a] = 1.0 + (double)a;
    lam[0] = -3e-12;
    from_eig(n, Q, lam, p.th);
    double *Ys = dnew(n), *Y0 = dnew(n), *G0 = dnew(n), ts[2] = {0, 100}, Yc[12];
    nh_rng_fill_normal(&R, n, Ys); nh_rng_fill_normal(&R, n, Y0); nh_rng_fill_normal(&R, n, G0);
    nh_moments m[2];
    nh_predict_diag dg;
    nh_status st = nh_predict_mse(&p.g, q, Ys, Y0, G0, 2, ts, NULL, Yc, NULL, m, &dg);
    nh_check(st == NH_OK && dg.theta_clipped == 1, "tiny negative eigenvalue clipped (%zu)", dg.theta_clipped);
    nh_check_close(dg.theta_eig_min, -3e-12, 1e-14, 0, "reported most negative eigenvalue");
    int fin = 1;
    for (size_t i = 0; i < 2 * n; i++) fin &= isfinite(Yc[i]);
    for (int k = 0; k < 4; k++) fin &= isfinite(m[1].tr_h[k]);
    nh_check(fin, "clipped theta: finite outputs");
    lam[0] = -0.5;
    from_eig(n, Q, lam, p.th);
    st = nh_predict_mse(&p.g, q, Ys, Y0, G0, 2, ts, NULL, NULL, NULL, m, &dg);
    nh_check(st == NH_EINVAL, "indefinite theta rejected (%s)", nh_last_error());
    free(Q); free(lam); free(Ys); free(Y0); free(G0);
    prob_free(&p);
}

static void test_bad_input(void) {
    size_t n = 4, q = 1;
    prob p;
    prob_make(&p, n, 1, 2);
    double Ys[4] = {1, -1, 1, -1}, Y0[4] = {0}, G0[4] = {0}, ts[3] = {0, 1, 2}, bad_t[3] = {0, 2, 1};
    nh_moments m[3];
    nh_status st;
    st = nh_predict_mse(&p.g, q, Ys, Y0, G0, 3, bad_t, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "times not increasing -> NH_EINVAL (%s)", nh_last_error());
    st = nh_predict_ode(&p.g, NH_LOSS_BCE, q, Ys, Y0, G0, 3, bad_t, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "ode: times not increasing -> NH_EINVAL");
    double neg_t[2] = {-1, 1};
    st = nh_predict_mse(&p.g, q, Ys, Y0, G0, 2, neg_t, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "negative time -> NH_EINVAL");
    nh_grams g0 = p.g;
    g0.n = 0;
    st = nh_predict_mse(&g0, q, Ys, Y0, G0, 3, ts, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "N = 0 -> NH_EINVAL (%s)", nh_last_error());
    st = nh_predict_ode(&g0, NH_LOSS_MSE, q, Ys, Y0, G0, 3, ts, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "ode N = 0 -> NH_EINVAL");
    st = nh_predict_mse(NULL, q, Ys, Y0, G0, 3, ts, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "NULL grams -> NH_EINVAL");
    double keep = p.la[5];
    p.la[5] = NAN;
    st = nh_predict_mse(&p.g, q, Ys, Y0, G0, 3, ts, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_ENONFINITE, "NaN in Lambda -> NH_ENONFINITE (%s)", nh_last_error());
    p.la[5] = keep;
    keep = p.ph[2];
    p.ph[2] = INFINITY;
    st = nh_predict_mse_expect(&p.g, q, Ys, 3, ts, NULL, m, NULL);
    nh_check(st == NH_ENONFINITE, "Inf in Phi -> NH_ENONFINITE");
    p.ph[2] = keep;
    keep = p.th[1];
    p.th[1] += 0.1;
    st = nh_predict_ode(&p.g, NH_LOSS_MSE, q, Ys, Y0, G0, 3, ts, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "asymmetric Theta -> NH_EINVAL (%s)", nh_last_error());
    p.th[1] = keep;
    st = nh_predict_ode(&p.g, (nh_loss)7, q, Ys, Y0, G0, 3, ts, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "unknown loss -> NH_EINVAL (%s)", nh_last_error());
    st = nh_predict_sample(&p.g, (nh_loss)-1, q, Ys, 3, ts, NULL, m, NULL, NULL);
    nh_check(st == NH_EINVAL, "sample: unknown loss -> NH_EINVAL");
    double lab01[4] = {0, 1, 1, 0};
    st = nh_predict_ode(&p.g, NH_LOSS_BCE, q, lab01, Y0, G0, 3, ts, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "BCE labels 0/1 -> NH_EINVAL");
    nh_predict_opts o = nh_predict_opts_default();
    o.nsamples = 1;
    st = nh_predict_sample(&p.g, NH_LOSS_MSE, q, Ys, 3, ts, &o, m, NULL, NULL);
    nh_check(st == NH_EINVAL, "nsamples = 1 -> NH_EINVAL");
    o = nh_predict_opts_default();
    o.rtol = -1;
    st = nh_predict_ode(&p.g, NH_LOSS_MSE, q, Ys, Y0, G0, 3, ts, &o, NULL, NULL, m, NULL);
    nh_check(st == NH_EINVAL, "rtol < 0 -> NH_EINVAL");
    /* ODE failures */
    o = nh_predict_opts_default();
    o.max_steps = 3;
    st = nh_predict_ode(&p.g, NH_LOSS_BCE, q, Ys, Ys, G0, 3, ts, &o, NULL, NULL, m, NULL);
    nh_check(st == NH_EMAXITER, "max_steps -> NH_EMAXITER (%s)", nh_last_error());
    o = nh_predict_opts_default();
    o.rtol = 1e-300; o.atol = 0;
    st = nh_predict_ode(&p.g, NH_LOSS_BCE, q, Ys, Ys, G0, 3, ts, &o, NULL, NULL, m, NULL);
    nh_check(st == NH_ENUMERIC, "unreachable tolerance -> NH_ENUMERIC step underflow (%s)", nh_last_error());
    for (size_t i = 0; i < n * n; i++) p.th[i] *= 1e306;
    for (size_t i = 0; i < n * n; i++) p.la[i] *= 1e306;
    st = nh_predict_ode(&p.g, NH_LOSS_MSE, q, Ys, Y0, G0, 3, ts, NULL, NULL, NULL, m, NULL);
    nh_check(st == NH_ENUMERIC, "overflowing state -> NH_ENUMERIC (%s)", nh_last_error());
    prob_free(&p);
}

void nh__alloc_fail_at(long k); /* library-internal fault injection (static link) */

static void test_alloc_fail(void) {
    size_t n = 4, q = 1;
    prob p;
    prob_make(&p, n, 1, 2);
    double Ys[4] = {1, -1, 1, -1}, Y0[4] = {0}, G0[4] = {0}, ts[2] = {0, 1};
    nh_moments m[2];
    nh__alloc_fail_at(1);
    nh_check(nh_predict_mse(&p.g, q, Ys, Y0, G0, 2, ts, NULL, NULL, NULL, m, NULL) == NH_ENOMEM, "mse: ENOMEM");
    nh__alloc_fail_at(1);
    nh_check(nh_predict_ode(&p.g, NH_LOSS_BCE, q, Ys, Y0, G0, 2, ts, NULL, NULL, NULL, m, NULL) == NH_ENOMEM,
             "ode: ENOMEM");
    nh__alloc_fail_at(1);
    nh_check(nh_predict_sample(&p.g, NH_LOSS_BCE, q, Ys, 2, ts, NULL, m, NULL, NULL) == NH_ENOMEM, "sample: ENOMEM");
    nh__alloc_fail_at(0);
    nh_set_mem_limit(100);
    nh_check(nh_predict_mse_expect(&p.g, q, Ys, 2, ts, NULL, m, NULL) == NH_ETOOLARGE, "memory limit: ETOOLARGE (%s)",
             nh_last_error());
    nh_set_mem_limit(0);
    prob_free(&p);
}

int main(void) {
    nh_rng_seed(&R, 20240601);
    test_mse_closed_vs_ode();
    test_mse_small_lambda();
    test_mse_expectation();
    test_draws();
    test_ce_ode(NH_LOSS_BCE);
    test_ce_ode(NH_LOSS_CE);
    test_ce_sample(NH_LOSS_BCE);
    test_ce_sample(NH_LOSS_CE);
    test_mse_convergence();
    test_mse_sign();
    test_meanfield();
    test_clipping();
    test_bad_input();
    test_alloc_fail();
    NH_TEST_END();
}
