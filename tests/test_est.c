/* test_est.c -- the spectral toolkit (est.c) against dense truths on networks
 * small enough for P x P matrices (nh_curv_dense + nh_eigh), statistical
 * honesty of the trace estimators over repeated seeds, and a width sweep of
 * the mutual orthogonality of I and S (Proposition 5). */
#include "ntkhess.h"
#include "nh_test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void nh__alloc_fail_at(long k); /* internal fault injection (status.c) */

/* Measured numbers, printed for the record (the runner shows only the
 * summary line unless something fails). */
#define NOTE(...) do { printf("  note: "); printf(__VA_ARGS__); printf("\n"); } while (0)

/* ---------------------------------------------------------------- fixture */

typedef struct {
    nh_net *net;
    nh_curv *c;
    double *X, *T;
    size_t P, n, m;
    nh_loss loss;
} fix_t;

static fix_t make_fix(size_t L, const size_t *w, nh_act act, nh_loss loss, size_t n, uint64_t netseed,
                      uint64_t dataseed) {
    fix_t f;
    memset(&f, 0, sizeof f);
    nh_net_config cfg = nh_net_config_default();
    cfg.depth = L; cfg.widths = w; cfg.act = act;
    if (nh_net_create(&cfg, &f.net) != NH_OK) { printf("create: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(f.net, netseed);
    f.P = nh_net_nparams(f.net); f.n = n; f.m = w[L]; f.loss = loss;
    nh_rng r; nh_rng_seed(&r, dataseed);
    f.X = malloc(n * w[0] * sizeof *f.X);
    f.T = malloc(n * f.m * sizeof *f.T);
    nh_rng_fill_normal(&r, n * w[0], f.X);
    for (size_t i = 0; i < n * f.m; i++) {
        double u = nh_rng_normal(&r);
        if (loss == NH_LOSS_MSE) f.T[i] = u;
        else if (loss == NH_LOSS_BCE) f.T[i] = u > 0 ? 1.0 : -1.0;
        else f.T[i] = (double)(nh_rng_u64(&r) % f.m);
    }
    if (nh_curv_create(f.net, f.X, f.T, n, loss, &f.c) != NH_OK) { printf("curv: %s\n", nh_last_error()); exit(1); }
    return f;
}

static void free_fix(fix_t *f) {
    nh_curv_free(f->c); nh_net_free(f->net); free(f->X); free(f->T);
    memset(f, 0, sizeof *f);
}

/* Dense H, I, S with their eigendecompositions (ascending). */
typedef struct {
    size_t P;
    double *A[3];  /* H, I, S */
    double *w[3];  /* eigenvalues ascending */
    double *V[3];  /* eigenvectors, columns */
} dense_t;

static dense_t make_dense(fix_t *f) {
    dense_t d;
    const size_t P = f->P;
    d.P = P;
    for (int o = 0; o < 3; o++) {
        d.A[o] = malloc(P * P * sizeof(double));
        d.w[o] = malloc(P * sizeof(double));
        d.V[o] = malloc(P * P * sizeof(double));
    }
    if (nh_curv_dense(f->c, d.A[0], d.A[1], d.A[2]) != NH_OK) { printf("dense: %s\n", nh_last_error()); exit(1); }
    /* I from the Jacobian is symmetric up to rounding; symmetrize for eigh. */
    for (size_t a = 0; a < P; a++)
        for (size_t b = a + 1; b < P; b++) {
            double v = 0.5 * (d.A[1][a * P + b] + d.A[1][b * P + a]);
            d.A[1][a * P + b] = d.A[1][b * P + a] = v;
        }
    for (int o = 0; o < 3; o++)
        if (nh_eigh(P, d.A[o], d.w[o], d.V[o]) != NH_OK) { printf("eigh: %s\n", nh_last_error()); exit(1); }
    return d;
}

static void free_dense(dense_t *d) {
    for (int o = 0; o < 3; o++) { free(d->A[o]); free(d->w[o]); free(d->V[o]); }
}

static void matvec(const double *A, const double *x, double *y, size_t P) { for (size_t a = 0; a < P; a++) y[a] = dot(A + a * P, x, P); }
static double opnorm(const dense_t *d, int o) { return fmax(fabs(d->w[o][0]), fabs(d->w[o][d->P - 1])); }
static double tr_pow(const dense_t *d, int o, int k) { double s = 0; for (size_t i = 0; i < d->P; i++) s += pow(d->w[o][i], k); return s; }
static double tr_pow_abs(const dense_t *d, int o, int k) { double s = 0; for (size_t i = 0; i < d->P; i++) s += fabs(pow(d->w[o][i], k)); return s; }

static const char *opname[3] = {"H", "I", "S"};

/* The documented probe stream, re-implemented here (est_api.h). */
static void probe_ref(int gauss, uint64_t seed, uint64_t j, size_t P, double *v) {
    nh_rng r; nh_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (j + 1)));
    if (gauss) { nh_rng_fill_normal(&r, P, v); return; }
    uint64_t b = 0;
    for (size_t i = 0; i < P; i++) {
        if (i % 64 == 0) b = nh_rng_u64(&r);
        v[i] = (b >> (i % 64)) & 1u ? 1.0 : -1.0;
    }
}

/* ---------------------------------------------------------------- Lanczos */

static void check_lanczos(fix_t *f, dense_t *d, int o, nh_which which, size_t k, size_t ncv, const char *tag) {
    const size_t P = f->P;
    double *ev = malloc(k * sizeof *ev), *X = malloc(k * P * sizeof *X), *res = malloc(k * sizeof *res);
    double *want = malloc(k * sizeof *want), *y = malloc(P * sizeof *y);
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.which = which; lo.ncv = ncv; lo.seed = 11; lo.tol = 1e-10;
    nh_lanczos_info info;
    nh_status st = nh_curv_lanczos(f->c, (nh_op)o, k, &lo, ev, X, res, &info);
    nh_check(st == NH_OK, "lanczos %s %s: status (%s)", opname[o], tag, nh_last_error());
    /* Reference: dense eigenvalues in the requested order. */
    const double *w = d->w[o];
    double *tmp = malloc(P * sizeof *tmp);
    memcpy(tmp, w, P * sizeof *tmp);
    if (which == NH_WHICH_LM)
        for (size_t i = 1; i < P; i++) { double t = tmp[i]; size_t j = i; while (j > 0 && fabs(tmp[j - 1]) < fabs(t)) { tmp[j] = tmp[j - 1]; j--; } tmp[j] = t; }
    for (size_t i = 0; i < k; i++) want[i] = which == NH_WHICH_SA ? w[i] : which == NH_WHICH_LA ? w[P - 1 - i] : tmp[i];
    const double an = opnorm(d, o);
    /* 1e-8 relative to each eigenvalue, as demanded; the 1e-12 ||A|| floor
     * covers eigenvalues that are exactly 0 (rank-deficient I), where the
     * products themselves carry rounding ~ eps ||A|| sqrt(P). */
    double maxrel = 0;
    for (size_t i = 0; i < k; i++) {
        double e = fabs(ev[i] - want[i]);
        if (fabs(want[i]) > 1e-6 * an) maxrel = fmax(maxrel, e / fabs(want[i]));
        nh_check_close(ev[i], want[i], 1e-12 * an, 1e-8, "lanczos %s %s: eigenvalue %zu vs LAPACK", opname[o], tag, i);
    }
    /* Explicit residuals: convergence asks |beta y_m| <= 1e-10 max|theta|;
     * the explicit residual differs from that estimate by rounding
     * (~eps ||A|| ncv), so 1e-9 ||A|| has a 10x margin.  And the reported
     * value is the dense ||A x - lambda x|| up to rounding of both products. */
    double maxres = 0, maxorth = 0;
    for (size_t i = 0; i < k; i++) {
        matvec(d->A[o], X + i * P, y, P);
        for (size_t p = 0; p < P; p++) y[p] -= ev[i] * X[i * P + p];
        maxres = fmax(maxres, res[i]);
        nh_check(res[i] <= 1e-9 * an, "lanczos %s %s: residual %zu = %.3g <= 1e-9 ||A|| = %.3g", opname[o], tag, i, res[i], 1e-9 * an);
        nh_check_close(res[i], nrm(y, P), 1e-12 * an, 0, "lanczos %s %s: reported residual %zu == dense", opname[o], tag, i);
        for (size_t j = 0; j <= i; j++) maxorth = fmax(maxorth, fabs(dot(X + i * P, X + j * P, P) - (i == j)));
    }
    nh_check(maxorth <= 1e-10, "lanczos %s %s: eigenvectors orthonormal (max |X X^T - Id| = %.3g)", opname[o], tag, maxorth);
    nh_check(info.nconv == k, "lanczos %s %s: all %zu converged (%zu)", opname[o], tag, k, info.nconv);
    NOTE("lanczos %-2s %-10s k=%zu: max rel eigenvalue error %.2e, max residual %.2e ||A||, %zu products, %zu restarts, %zu breakdowns",
         opname[o], tag, k, maxrel, maxres / an, info.nproducts, info.nrestarts, info.nbreakdowns);
    free(ev); free(X); free(res); free(want); free(y); free(tmp);
}

static void test_lanczos(fix_t *f, dense_t *d) {
    for (int o = 0; o < 3; o++) check_lanczos(f, d, o, NH_WHICH_LA, 10, 0, "LA");
    check_lanczos(f, d, 0, NH_WHICH_LA, 10, 14, "LA ncv=14"); /* forces thick restarts */
    check_lanczos(f, d, 2, NH_WHICH_LA, 6, 9, "LA ncv=9");
    check_lanczos(f, d, 0, NH_WHICH_SA, 5, 0, "SA");
    check_lanczos(f, d, 2, NH_WHICH_LM, 6, 0, "LM");
    check_lanczos(f, d, 1, NH_WHICH_LM, 10, 12, "LM ncv=12");

    /* Top eigenvector of H (well separated) against LAPACK's. */
    {
        const size_t P = f->P;
        double ev, *x = malloc(P * sizeof *x);
        nh_curv_lanczos(f->c, NH_OP_H, 1, NULL, &ev, x, NULL, NULL);
        double ov = 0;
        for (size_t p = 0; p < P; p++) ov += x[p] * d->V[0][p * P + P - 1];
        nh_check_close(fabs(ov), 1.0, 1e-10, 0, "lanczos H: top eigenvector == LAPACK's up to sign");
        /* Warm start from the exact eigenvector gives the same eigenvalue to
         * Lanczos accuracy (1e-10 relative, its tolerance). */
        nh_lanczos_opts lo = nh_lanczos_opts_default();
        nh_lanczos_info iw, ic;
        double ew, ec;
        lo.start = x;
        nh_status sw = nh_curv_lanczos(f->c, NH_OP_H, 1, &lo, &ew, NULL, NULL, &iw);
        nh_status sc = nh_curv_lanczos(f->c, NH_OP_H, 1, NULL, &ec, NULL, NULL, &ic);
        nh_check(sw == NH_OK && sc == NH_OK, "lanczos warm and cold start run (%zu, %zu products)",
                 iw.nproducts, ic.nproducts);
        nh_check_close(ew, d->w[0][P - 1], 0, 1e-10, "lanczos warm start: top eigenvalue of H == LAPACK's");
        double *z = calloc(P, sizeof *z);
        lo.start = z;
        nh_check(nh_curv_lanczos(f->c, NH_OP_H, 1, &lo, &ew, NULL, NULL, NULL) == NH_EINVAL,
                 "lanczos: zero start vector refused");
        free(z);
        free(x);
    }
    /* Rank-deficient I: eigenvalues 9, 10 are 0; the Krylov space of one
     * start vector is invariant after <= N n_L + 1 steps (breakdown). */
    {
        double ev[10];
        nh_lanczos_info info;
        nh_status st = nh_curv_lanczos(f->c, NH_OP_I, 10, NULL, ev, NULL, NULL, &info);
        nh_check(st == NH_OK && info.nbreakdowns >= 1, "lanczos I: breakdown reported (%zu)", info.nbreakdowns);
    }
    /* Not converged: maxprod too small. */
    {
        double ev[10], res[10];
        nh_lanczos_opts lo = nh_lanczos_opts_default();
        lo.ncv = 12; lo.maxprod = 12; lo.which = NH_WHICH_LA;
        nh_lanczos_info info;
        nh_status st = nh_curv_lanczos(f->c, NH_OP_S, 10, &lo, ev, NULL, res, &info);
        nh_check(st == NH_EMAXITER && info.nconv < 10, "lanczos: NH_EMAXITER when demanded and not converged (%d, nconv %zu)", (int)st, info.nconv);
        lo.require = 0;
        st = nh_curv_lanczos(f->c, NH_OP_S, 10, &lo, ev, NULL, res, &info);
        nh_check(st == NH_OK && info.nconv < 10, "lanczos: NH_OK with nconv < k when not demanded");
        nh_check(isfinite(ev[0]) && isfinite(res[0]), "lanczos: best approximations returned");
    }
}

/* Full spectrum (k = P) on a tiny net, and S = 0 for a one-layer net. */
static void test_lanczos_tiny(void) {
    const size_t w[3] = {2, 3, 1};
    fix_t f = make_fix(2, w, NH_ACT_TANH, NH_LOSS_MSE, 4, 5, 6);
    dense_t d = make_dense(&f);
    check_lanczos(&f, &d, 0, NH_WHICH_LA, f.P, 0, "k=P");
    check_lanczos(&f, &d, 2, NH_WHICH_SA, f.P, 0, "k=P");
    free_dense(&d);
    free_fix(&f);
    const size_t w1[2] = {3, 2};
    fix_t g = make_fix(1, w1, NH_ACT_TANH, NH_LOSS_MSE, 4, 5, 6);
    double ev[3], res[3];
    nh_status st = nh_curv_lanczos(g.c, NH_OP_S, 3, NULL, ev, NULL, res, NULL);
    nh_check(st == NH_OK && ev[0] == 0 && ev[1] == 0 && ev[2] == 0 && res[0] == 0,
             "lanczos: S == 0 of a linear-in-theta net gives zeros (%s)", nh_last_error());
    free_fix(&g);
}

/* -------------------------------------------------------------------- SLQ */

/* Exact SE of the SLQ k-th moment: the per-vector moment is u^T A^k u with
 * u = v/|v|; Rademacher: Var = 2(|B|_F^2 - sum B_ii^2)/P^2; uniform on the
 * sphere (Gaussian): Var = 2(|B|_F^2 - (Tr B)^2/P)/(P(P+2)), B = A^k. */
static double slq_exact_se(const dense_t *d, int o, int k, int gauss, size_t M) {
    const size_t P = d->P;
    double fro2 = 0, tr = 0, dg2 = 0;
    for (size_t j = 0; j < P; j++) { double l = pow(d->w[o][j], k); fro2 += l * l; tr += l; }
    for (size_t i = 0; i < P; i++) {
        double b = 0;
        for (size_t j = 0; j < P; j++) { double vij = d->V[o][i * P + j]; b += vij * vij * pow(d->w[o][j], k); }
        dg2 += b * b;
    }
    double var = gauss ? 2 * (fro2 - tr * tr / P) / ((double)P * (P + 2)) : 2 * (fro2 - dg2) / ((double)P * P);
    return sqrt(fmax(var, 0) / (double)M);
}

static void test_slq(fix_t *f, dense_t *d) {
    const size_t P = f->P, M = 40, m = 30, ng = 4001;
    double *nodes = malloc(M * m * sizeof *nodes), *wts = malloc(M * m * sizeof *wts);
    double *grid = malloc(ng * sizeof *grid), *dens = malloc(ng * sizeof *dens);
    double *u = malloc(P * sizeof *u), *y = malloc(P * sizeof *y), *z = malloc(P * sizeof *z);
    for (int gauss = 0; gauss < 2; gauss++)
        for (int o = 0; o < 3; o++) {
            nh_slq_opts so = nh_slq_opts_default();
            so.nvec = M; so.nsteps = m; so.seed = 77; so.probe = gauss ? NH_PROBE_GAUSSIAN : NH_PROBE_RADEMACHER;
            const double an = opnorm(d, o), lo = d->w[o][0], hi = d->w[o][P - 1], sigma = 0.01 * an;
            for (size_t g = 0; g < ng; g++) grid[g] = lo - 8 * sigma + (hi - lo + 16 * sigma) * (double)g / (double)(ng - 1);
            nh_slq_result sr;
            nh_status st = nh_curv_slq(f->c, (nh_op)o, &so, nodes, wts, ng, grid, sigma, dens, &sr);
            nh_check(st == NH_OK, "slq %s: status (%s)", opname[o], nh_last_error());
            nh_check(sr.nproducts <= M * m, "slq %s: at most M m products (%zu)", opname[o], sr.nproducts);
            /* Weights sum to 1 (first components of orthonormal eigenvectors
             * of each T_r); the density integrates to 1 up to trapezoid error
             * and the Gaussian tails beyond 8 sigma (~1e-15). */
            double ws = 0; for (size_t i = 0; i < M * m; i++) ws += wts[i];
            nh_check_close(ws, 1.0, 1e-12, 0, "slq %s: weights sum to 1", opname[o]);
            double integ = 0; const double hgrid = grid[1] - grid[0];
            for (size_t g = 0; g + 1 < ng; g++) integ += 0.5 * hgrid * (dens[g] + dens[g + 1]);
            nh_check_close(integ, 1.0, 1e-6, 0, "slq %s: density integrates to 1", opname[o]);
            /* Per-vector Gauss quadrature is exact for degree <= 2m-1: the
             * quadrature moments of vector r equal u_r^T A^k u_r from the
             * dense matrix (u_r from the documented stream), to rounding of
             * ||A||^k. */
            double maxq = 0;
            for (size_t r = 0; r < M; r += 7) {
                probe_ref(gauss, 77, r, P, u);
                double n0 = nrm(u, P);
                for (size_t p = 0; p < P; p++) u[p] /= n0;
                memcpy(y, u, P * sizeof *y);
                for (int k = 1; k <= 4; k++) {
                    matvec(d->A[o], y, z, P); memcpy(y, z, P * sizeof *y);
                    double want = dot(u, y, P), got = 0;
                    for (size_t i = 0; i < m; i++) got += (double)M * wts[r * m + i] * pow(nodes[r * m + i], k);
                    maxq = fmax(maxq, fabs(got - want) / pow(an, k));
                }
            }
            nh_check(maxq <= 1e-11, "slq %s: per-vector quadrature == u^T A^k u (max err %.2e ||A||^k)", opname[o], maxq);
            /* Moments vs the exact Tr(A^k)/P within 4 exact SEs (4 sigma:
             * a false alarm rate ~6e-5 per check under the CLT); the 1e-12
             * floor is for the exactly-known cases (SE ~ 0). */
            for (int k = 1; k <= 4; k++) {
                double ex = tr_pow(d, o, k) / (double)P, se = slq_exact_se(d, o, k, gauss, M);
                nh_check_close(sr.moments[k - 1], ex, 4 * se + 1e-12 * pow(an, k), 0,
                               "slq %s %s: moment %d vs exact eigenvalue moment (4 SE)", opname[o], gauss ? "gauss" : "rade", k);
                if (se > 1e-9 * pow(an, k))
                    nh_check(sr.moments_se[k - 1] > 0.5 * se && sr.moments_se[k - 1] < 2 * se,
                             "slq %s: reported SE of moment %d (%.3g) within 2x of the exact SE (%.3g)", opname[o], k,
                             sr.moments_se[k - 1], se);
                if (k == 2)
                    NOTE("slq %s %s: moment 2 = %.6g vs exact %.6g (|diff| = %.2f exact SE), breakdowns %zu", opname[o],
                         gauss ? "gauss" : "rade", sr.moments[1], ex, fabs(sr.moments[1] - ex) / se, sr.nbreakdowns);
            }
        }
    free(nodes); free(wts); free(grid); free(dens); free(u); free(y); free(z);
}

/* ----------------------------------------------------------------- traces */

static void test_trace_basic(fix_t *f, dense_t *d) {
    const size_t P = f->P;
    nh_trace_result r, r2, ra, rb;
    nh_trace_opts o = nh_trace_opts_default();
    /* Exact method == sum of eigenvalue powers (relative 1e-10 of sum |l|^k:
     * P products, each exact to rounding). */
    o.method = NH_TRACE_EXACT;
    for (int op = 0; op < 3; op++) {
        nh_status st = nh_curv_trace(f->c, (nh_op)op, 4, &o, &r);
        nh_check(st == NH_OK && r.nproducts == 2 * P, "trace exact %s: status, 2P products (%zu)", opname[op], r.nproducts);
        for (int k = 1; k <= 4; k++)
            nh_check_close(r.est[k - 1], tr_pow(d, op, k), 1e-10 * tr_pow_abs(d, op, k), 0, "trace exact Tr(%s^%d)", opname[op], k);
    }
    /* One run of each stochastic method: within 4 SE of the truth. */
    const char *mname[2] = {"hutchinson", "hutch++"};
    for (int meth = 0; meth < 2; meth++)
        for (int pr = 0; pr < 2; pr++)
            for (int op = 0; op < 3; op++) {
                o = nh_trace_opts_default();
                o.method = meth ? NH_TRACE_HUTCHPP : NH_TRACE_HUTCHINSON;
                o.probe = pr ? NH_PROBE_GAUSSIAN : NH_PROBE_RADEMACHER;
                o.nprobes = 64; o.sketch = 16; o.seed = 5;
                nh_status st = nh_curv_trace(f->c, (nh_op)op, 4, &o, &r);
                size_t want = meth ? 16 + 2 * (16 + 64) : 2 * 64;
                nh_check(st == NH_OK && r.nproducts == want, "trace %s %s: status, products %zu == %zu", mname[meth], opname[op], r.nproducts, want);
                for (int k = 1; k <= 4; k++)
                    nh_check_close(r.est[k - 1], tr_pow(d, op, k), 4 * r.se[k - 1] + 1e-12 * tr_pow_abs(d, op, k), 0,
                                   "trace %s %s %s: Tr(%s^%d) within 4 SE", mname[meth], pr ? "gauss" : "rade", opname[op], opname[op], k);
            }
    /* Reproducible: the same seed gives bit-identical results. */
    o = nh_trace_opts_default(); o.nprobes = 16; o.seed = 9;
    nh_curv_trace(f->c, NH_OP_H, 4, &o, &r);
    nh_curv_trace(f->c, NH_OP_H, 4, &o, &r2);
    nh_check(memcmp(r.est, r2.est, sizeof r.est) == 0 && memcmp(r.se, r2.se, sizeof r.se) == 0, "trace: same seed, same bits");
    /* Splittable: probes [0, 32) + [32, 64) == [0, 64) (mean of equal halves). */
    for (int meth = 0; meth < 2; meth++) {
        o = nh_trace_opts_default(); o.method = meth ? NH_TRACE_HUTCHPP : NH_TRACE_HUTCHINSON; o.sketch = 8; o.seed = 9;
        o.nprobes = 64; nh_curv_trace(f->c, NH_OP_S, 4, &o, &r);
        o.nprobes = 32; nh_curv_trace(f->c, NH_OP_S, 4, &o, &ra);
        o.first_probe = 32; nh_curv_trace(f->c, NH_OP_S, 4, &o, &rb);
        for (int k = 0; k < 4; k++)
            nh_check_close(0.5 * (ra.est[k] + rb.est[k]), r.est[k], 1e-12 * fabs(r.est[k]) + 1e-14, 0,
                           "trace %s: split over two probe ranges == one run (k=%d)", mname[meth], k + 1);
    }
    /* The documented stream: M = 1 Hutchinson is v^T A v, v from stream 0. */
    {
        double *v = malloc(P * sizeof *v), *y = malloc(P * sizeof *y);
        for (int g = 0; g < 2; g++) {
            o = nh_trace_opts_default(); o.nprobes = 1; o.seed = 1234; o.probe = g ? NH_PROBE_GAUSSIAN : NH_PROBE_RADEMACHER;
            o.first_probe = 3;
            nh_curv_trace(f->c, NH_OP_H, 2, &o, &r);
            probe_ref(g, 1234, 3, P, v);
            matvec(d->A[0], v, y, P);
            nh_check_close(r.est[0], dot(v, y, P), 1e-12 * nrm(v, P) * nrm(y, P), 0, "trace: probe stream as documented (%s)", g ? "gauss" : "rade");
            nh_check(isnan(r.se[0]), "trace: SE is NaN for one probe");
        }
        free(v); free(y);
    }
    /* Control variates: I exact from the NTK (no products), Tr S and Tr H
     * exact, Tr(H^k) k >= 2 as Tr(I^k) + remainder with a smaller SE. */
    o = nh_trace_opts_default(); o.control = 1; o.nprobes = 64; o.seed = 3;
    nh_curv_trace(f->c, NH_OP_I, 4, &o, &r);
    nh_check(r.nproducts == 0, "trace control I: no products");
    for (int k = 1; k <= 4; k++)
        nh_check_close(r.est[k - 1], tr_pow(d, 1, k), 1e-10 * tr_pow_abs(d, 1, k), 0, "trace control: Tr(I^%d) exact", k);
    nh_curv_trace(f->c, NH_OP_S, 1, &o, &r);
    nh_check_close(r.est[0], tr_pow(d, 2, 1), 1e-10 * tr_pow_abs(d, 2, 1), 0, "trace control: Tr(S) = G . dC/dY exact");
    nh_status st = nh_curv_trace(f->c, NH_OP_H, 4, &o, &r);
    o.control = 0;
    nh_curv_trace(f->c, NH_OP_H, 4, &o, &r2);
    nh_check(st == NH_OK && r.nproducts == 3 * 64, "trace control H: 3 products per probe (%zu)", r.nproducts);
    nh_check_close(r.est[0], tr_pow(d, 0, 1), 1e-10 * tr_pow_abs(d, 0, 1), 0, "trace control: Tr(H) = Tr I + Tr S exact");
    for (int k = 2; k <= 4; k++) {
        nh_check_close(r.est[k - 1], tr_pow(d, 0, k), 4 * r.se[k - 1] + 1e-12 * tr_pow_abs(d, 0, k), 0, "trace control: Tr(H^%d) within 4 SE", k);
        nh_check(r.se[k - 1] < r2.se[k - 1], "trace control: Tr(H^%d) SE %.3g < plain %.3g", k, r.se[k - 1], r2.se[k - 1]);
        NOTE("Tr(H^%d): control-variate SE %.3g vs plain Hutchinson SE %.3g (x%.1f smaller)", k, r.se[k - 1], r2.se[k - 1], r2.se[k - 1] / r.se[k - 1]);
    }
}

/* Honesty: across R independent seeds, |est - exact| <= 2 SE in about 95%
 * of the runs.  The count is binomial(R, 0.95) if the SE is honest and the
 * estimate near-normal; its 99.9% band is 0.95 +- 3.29 sqrt(.95 .05 / R),
 * i.e. [0.899, 1] for R = 200.  Also the SE's scale: the SD of the R
 * estimates over the RMS of the reported SEs is 1 for an honest SE; its
 * sampling error is ~ 1/sqrt(2R) = 5% for near-normal estimates, so
 * [0.8, 1.25] is a ~4-sigma band. */
/* nh_curv_trace_hi: the same bits as the two calls it replaces (H with the
 * caller's options, I with the control variate: exact), for the control on
 * and off and every method, and Tr(I^k) exact against the dense I (1e-10 as
 * above); NULL outputs refused. */
static void test_trace_hi(fix_t *f, dense_t *d) {
    for (int meth = 0; meth < 3; meth++)
        for (int ctl = 0; ctl < 2; ctl++) {
            nh_trace_opts o = nh_trace_opts_default(), oi = nh_trace_opts_default();
            o.method = meth == 0 ? NH_TRACE_HUTCHINSON : meth == 1 ? NH_TRACE_HUTCHPP : NH_TRACE_EXACT;
            o.nprobes = 6, o.control = ctl, o.seed = 77;
            oi.control = 1;
            nh_trace_result h1, i1, h2, i2;
            nh_status s1 = nh_curv_trace(f->c, NH_OP_H, 4, &o, &h1), s2 = nh_curv_trace(f->c, NH_OP_I, 4, &oi, &i1);
            nh_status s3 = nh_curv_trace_hi(f->c, 4, &o, &h2, &i2);
            nh_check(s1 == NH_OK && s2 == NH_OK && s3 == NH_OK, "trace_hi method %d control %d: status", meth, ctl);
            nh_check(!memcmp(h1.est, h2.est, sizeof h1.est) && !memcmp(h1.se, h2.se, sizeof h1.se) &&
                         h1.nproducts == h2.nproducts,
                     "trace_hi method %d control %d: Tr(H^k), SE, products bit for bit as nh_curv_trace(H)", meth, ctl);
            nh_check(!memcmp(i1.est, i2.est, sizeof i1.est), "trace_hi method %d control %d: Tr(I^k) bit for bit",
                     meth, ctl);
            for (int k = 1; k <= 4; k++)
                nh_check_close(i2.est[k - 1], tr_pow(d, 1, k), 1e-10 * tr_pow_abs(d, 1, k), 0,
                               "trace_hi Tr(I^%d) exact", k);
        }
    nh_trace_result a, b;
    nh_check(nh_curv_trace_hi(f->c, 4, NULL, &a, NULL) == NH_EINVAL &&
                 nh_curv_trace_hi(f->c, 4, NULL, NULL, &b) == NH_EINVAL && nh_curv_trace_hi(NULL, 4, NULL, &a, &b) == NH_EINVAL,
             "trace_hi: NULL arguments refused");
    nh_check(nh_curv_trace_hi(f->c, 5, NULL, &a, &b) == NH_EINVAL, "trace_hi: kmax 5 refused");
    /* options nh_curv_trace accepts for H are accepted here too: EXACT
     * ignores nprobes, and the I half must not read it (review) */
    nh_trace_opts ex = nh_trace_opts_default();
    ex.method = NH_TRACE_EXACT, ex.nprobes = 0;
    nh_check(nh_curv_trace(f->c, NH_OP_H, 2, &ex, &a) == NH_OK && nh_curv_trace_hi(f->c, 2, &ex, &a, &b) == NH_OK,
             "trace_hi: EXACT with nprobes 0 accepted as by nh_curv_trace: %s", nh_last_error());
}

static void test_honesty(fix_t *f, dense_t *d) {
    const int R = 200;
    const double lo_band = 0.95 - 3.29 * sqrt(0.95 * 0.05 / R);
    struct { nh_op op; nh_trace_method meth; nh_probe pr; size_t M, s; int ctrl; const char *name; } cases[] = {
        {NH_OP_H, NH_TRACE_HUTCHINSON, NH_PROBE_RADEMACHER, 100, 0, 0, "hutchinson rade"},
        {NH_OP_H, NH_TRACE_HUTCHINSON, NH_PROBE_GAUSSIAN, 100, 0, 0, "hutchinson gauss"},
        {NH_OP_H, NH_TRACE_HUTCHPP, NH_PROBE_RADEMACHER, 50, 12, 0, "hutch++ rade"},
        {NH_OP_H, NH_TRACE_HUTCHPP, NH_PROBE_GAUSSIAN, 50, 12, 0, "hutch++ gauss"},
        {NH_OP_H, NH_TRACE_HUTCHINSON, NH_PROBE_RADEMACHER, 100, 0, 1, "control rade"},
        {NH_OP_S, NH_TRACE_HUTCHINSON, NH_PROBE_RADEMACHER, 100, 0, 0, "hutchinson rade"},
        {NH_OP_S, NH_TRACE_HUTCHINSON, NH_PROBE_GAUSSIAN, 100, 0, 0, "hutchinson gauss"},
        {NH_OP_S, NH_TRACE_HUTCHPP, NH_PROBE_RADEMACHER, 50, 12, 0, "hutch++ rade"},
        {NH_OP_S, NH_TRACE_HUTCHPP, NH_PROBE_GAUSSIAN, 50, 12, 0, "hutch++ gauss"},
    };
    double *est = malloc(2 * R * sizeof *est), *ses = malloc(2 * R * sizeof *ses);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int hit[2] = {0, 0};
        for (int rr = 0; rr < R; rr++) {
            nh_trace_opts o = nh_trace_opts_default();
            o.method = cases[ci].meth; o.probe = cases[ci].pr; o.nprobes = cases[ci].M; o.sketch = cases[ci].s;
            o.control = cases[ci].ctrl; o.seed = 1000 + (uint64_t)rr;
            nh_trace_result r;
            nh_curv_trace(f->c, cases[ci].op, 2, &o, &r);
            for (int k = 0; k < 2; k++) {
                est[k * R + rr] = r.est[k]; ses[k * R + rr] = r.se[k];
                if (fabs(r.est[k] - tr_pow(d, cases[ci].op, k + 1)) <= 2 * r.se[k]) hit[k]++;
            }
        }
        for (int k = 0; k < 2; k++) {
            if (cases[ci].ctrl && k == 0) continue; /* exact, SE 0 */
            double frac = (double)hit[k] / R, m = 0, v = 0, s2 = 0;
            for (int rr = 0; rr < R; rr++) { m += est[k * R + rr]; s2 += ses[k * R + rr] * ses[k * R + rr]; }
            m /= R;
            for (int rr = 0; rr < R; rr++) v += (est[k * R + rr] - m) * (est[k * R + rr] - m);
            double calib = sqrt(v / (R - 1)) / sqrt(s2 / R);
            nh_check(frac >= lo_band && frac <= 1.0, "honesty Tr(%s^%d) %s: %.3f of %d runs within 2 SE (band [%.3f, 1])",
                     opname[cases[ci].op], k + 1, cases[ci].name, frac, R, lo_band);
            nh_check(calib > 0.8 && calib < 1.25, "honesty Tr(%s^%d) %s: SD(est)/RMS(SE) = %.3f in (0.8, 1.25)",
                     opname[cases[ci].op], k + 1, cases[ci].name, calib);
            NOTE("honesty Tr(%s^%d) %-16s: coverage(2 SE) = %.3f, SD(est)/RMS(SE) = %.3f, RMS SE / |Tr| = %.2e", opname[cases[ci].op],
                 k + 1, cases[ci].name, frac, calib, sqrt(s2 / R) / fabs(tr_pow(d, cases[ci].op, k + 1)));
        }
    }
    free(est); free(ses);
}

/* ---------------------------------------------------------- orthogonality */

static void test_ortho(fix_t *f, dense_t *d, const char *tag) {
    const size_t P = f->P;
    double *IS = malloc(P * P * sizeof *IS);
    const double *Im = d->A[1], *Sm = d->A[2];
    for (size_t a = 0; a < P; a++)
        for (size_t b = 0; b < P; b++) {
            double s = 0;
            for (size_t q = 0; q < P; q++) s += Im[a * P + q] * Sm[q * P + b];
            IS[a * P + b] = s;
        }
    const double isf = nrm(IS, P * P), inf = nrm(Im, P * P), snf = nrm(Sm, P * P);
    nh_trace_opts o = nh_trace_opts_default();
    o.method = NH_TRACE_EXACT;
    nh_ortho_result r;
    nh_status st = nh_curv_orthogonality(f->c, &o, &r);
    nh_check(st == NH_OK, "ortho %s: status (%s)", tag, nh_last_error());
    /* 1e-10 relative: both sides are sums of exact products; the dense
     * matmul's rounding is ~ eps sqrt(P) ||I|| ||S|| / ||IS|| ~ 1e-13 here. */
    nh_check_close(r.is_fro, isf, 0, 1e-10, "ortho %s: ||IS||_F == norm(I @ S)", tag);
    nh_check_close(r.i_fro, inf, 0, 1e-10, "ortho %s: ||I||_F", tag);
    nh_check_close(r.s_fro, snf, 0, 1e-10, "ortho %s: ||S||_F (exact method)", tag);
    nh_check_close(r.ratio, isf / (inf * snf), 0, 1e-10, "ortho %s: ratio", tag);
    nh_check(r.s_fro_se == 0, "ortho %s: exact ||S||_F has SE 0", tag);
    NOTE("ortho %s: ||IS||_F = %.6g (dense %.6g), ||I||_F = %.4g, ||S||_F = %.4g, ratio %.4f, %zu products (P = %zu, N n_L = %zu)",
         tag, r.is_fro, isf, r.i_fro, r.s_fro, r.ratio, r.nproducts, P, f->n * f->m);
    o = nh_trace_opts_default(); o.nprobes = 64; o.seed = 4;
    st = nh_curv_orthogonality(f->c, &o, &r);
    nh_check(st == NH_OK && r.s_fro_se > 0, "ortho %s: estimated ||S||_F has an SE", tag);
    nh_check_close(r.s_fro, snf, 4 * r.s_fro_se, 0, "ortho %s: estimated ||S||_F within 4 SE", tag);
    nh_check_close(r.is_fro, isf, 0, 1e-10, "ortho %s: ||IS||_F independent of the ||S|| estimate", tag);
    free(IS);
}

/* --------------------------------------------------------------- Rayleigh */

static void test_rayleigh(fix_t *f, dense_t *d) {
    const size_t P = f->P, nv = 6;
    double *V = malloc(nv * P * sizeof *V), ri[6], rs[6], *y = malloc(P * sizeof *y);
    for (size_t j = 0; j < nv; j++)
        for (size_t p = 0; p < P; p++) V[j * P + p] = (j < 3 ? d->V[1][p * P + P - 1 - j] : d->V[2][p * P + P - 1 - (j - 3)]) * (1.0 + (double)j);
    nh_status st = nh_curv_rayleigh(f->c, nv, V, ri, rs);
    nh_check(st == NH_OK, "rayleigh: status");
    for (size_t j = 0; j < nv; j++) {
        const double *v = V + j * P, vv = dot(v, v, P);
        matvec(d->A[1], v, y, P);
        nh_check_close(ri[j], dot(v, y, P) / vv, 1e-12 * opnorm(d, 1), 0, "rayleigh: v^T I v / v^T v, vector %zu", j);
        matvec(d->A[2], v, y, P);
        nh_check_close(rs[j], dot(v, y, P) / vv, 1e-12 * opnorm(d, 0), 0, "rayleigh: v^T S v / v^T v, vector %zu", j);
    }
    NOTE("rayleigh (Fig. 2): top-3 eigvecs of I: (vIv, vSv) = (%.3g, %.3g) (%.3g, %.3g) (%.3g, %.3g); of S: (%.3g, %.3g) (%.3g, %.3g) (%.3g, %.3g)",
         ri[0], rs[0], ri[1], rs[1], ri[2], rs[2], ri[3], rs[3], ri[4], rs[4], ri[5], rs[5]);
    memset(V + P, 0, P * sizeof *V);
    nh_check(nh_curv_rayleigh(f->c, 2, V, ri, rs) == NH_EINVAL, "rayleigh: zero vector -> NH_EINVAL");
    free(V); free(y);
}

/* ------------------------------------------------------------------ slice */

static void test_slice(fix_t *f) {
    const size_t P = f->P, G = 5;
    double ev[2], *U = malloc(2 * P * sizeof *U), out[25], *hv0 = malloc(P * sizeof *hv0), *hv1 = malloc(P * sizeof *hv1);
    nh_curv_lanczos(f->c, NH_OP_I, 2, NULL, ev, U, NULL, NULL);
    double *theta = nh_net_params(f->net), *save = malloc(P * sizeof *save);
    memcpy(save, theta, P * sizeof *save);
    const double loss0 = nh_curv_loss(f->c), R = 0.3;
    nh_curv_hvp(f->c, U, hv0);
    nh_status st = nh_curv_slice(f->c, f->net, U, U + P, R, G, out);
    nh_check(st == NH_OK, "slice: status (%s)", nh_last_error());
    nh_check(memcmp(save, theta, P * sizeof *save) == 0, "slice: theta restored bit for bit");
    nh_check(nh_curv_loss(f->c) == loss0, "slice: context refreshed (loss unchanged)");
    nh_curv_hvp(f->c, U, hv1);
    nh_check(memcmp(hv0, hv1, P * sizeof *hv0) == 0, "slice: context caches restored (H v unchanged)");
    nh_check(out[2 * G + 2] == loss0, "slice: centre (0, 0) == the loss (%.17g vs %.17g)", out[2 * G + 2], loss0);
    /* Grid point (a, b) = (-R, +R): a direct forward pass on a clone. */
    nh_net *cl = NULL;
    nh_net_clone(f->net, &cl);
    double *th = nh_net_params(cl), *Y = malloc(f->n * f->m * sizeof *Y), val;
    for (size_t p = 0; p < P; p++) th[p] = save[p] + (-R) * U[p] + R * U[P + p];
    nh_net_forward(cl, f->X, f->n, Y);
    nh_loss_eval(f->loss, Y, f->T, f->n, f->m, &val, NULL, NULL);
    /* Same arithmetic in the same order: equal to rounding of the sum (1e-14). */
    nh_check_close(out[0 * G + 4], val, 0, 1e-14, "slice: point (-R, +R) == direct forward evaluation");
    NOTE("slice: C at (0,0) = %.6g, (-R,0) = %.6g, (R,0) = %.6g, (0,-R) = %.6g, (0,R) = %.6g (R = %.2f)", loss0, out[2],
         out[4 * G + 2], out[2 * G], out[2 * G + 4], R);
    /* Second differences of a small 3 x 3 slice (r = 1e-3) are the Hessian
     * in the plane: (C(r,0) + C(-r,0) - 2C)/r^2 = u^T H u and the mixed
     * difference /(4 r^2) = u^T H v, up to O(r^2) ~ 1e-6 truncation and
     * eps C / r^2 ~ 1e-10 rounding; 1e-4 relative to ||H|| is safe. */
    {
        const double rr = 1e-3;
        double o3[9], *hu = malloc(P * sizeof *hu);
        nh_curv_slice(f->c, f->net, U, U + P, rr, 3, o3);
        nh_curv_hvp(f->c, U, hu);
        const double uhu = dot(U, hu, P), uhv = dot(U + P, hu, P), hn = nrm(hu, P);
        nh_check_close((o3[2 * 3 + 1] + o3[0 * 3 + 1] - 2 * o3[4]) / (rr * rr), uhu, 1e-4 * hn, 0,
                       "slice: second difference along u == u^T H u");
        nh_check_close((o3[2 * 3 + 2] - o3[2 * 3 + 0] - o3[0 * 3 + 2] + o3[0]) / (4 * rr * rr), uhv, 1e-4 * hn, 0,
                       "slice: mixed difference == u^T H v");
        free(hu);
    }
    double one;
    st = nh_curv_slice(f->c, f->net, U, U + P, R, 1, &one);
    nh_check(st == NH_OK && one == loss0, "slice: G = 1 is the single point (0, 0)");
    nh_check(nh_curv_slice(f->c, cl, U, U + P, R, G, out) == NH_EINVAL, "slice: another net -> NH_EINVAL");
    nh_check(nh_curv_slice(f->c, f->net, U, U + P, R, 0, out) == NH_EINVAL, "slice: G = 0 -> NH_EINVAL");
    nh_check(nh_curv_slice(f->c, f->net, U, U + P, -1, G, out) == NH_EINVAL, "slice: R < 0 -> NH_EINVAL");
    nh_net_free(cl);
    free(U); free(save); free(Y); free(hv0); free(hv1);
}

/* -------------------------------------------------------------- bad input */

static void test_bad_input(fix_t *f) {
    const size_t P = f->P;
    nh_trace_result r;
    nh_trace_opts o = nh_trace_opts_default();
    nh_check(nh_curv_trace(f->c, NH_OP_H, 0, &o, &r) == NH_EINVAL, "trace: kmax 0 -> NH_EINVAL");
    nh_check(nh_curv_trace(f->c, NH_OP_H, 5, &o, &r) == NH_EINVAL, "trace: kmax 5 -> NH_EINVAL");
    nh_check(nh_curv_trace(f->c, (nh_op)7, 1, &o, &r) == NH_EINVAL, "trace: bad op -> NH_EINVAL");
    nh_check(nh_curv_trace(f->c, NH_OP_H, 1, &o, NULL) == NH_EINVAL, "trace: NULL result -> NH_EINVAL");
    o.nprobes = 0;
    nh_check(nh_curv_trace(f->c, NH_OP_H, 1, &o, &r) == NH_EINVAL, "trace: 0 probes -> NH_EINVAL");
    o = nh_trace_opts_default(); o.method = (nh_trace_method)9;
    nh_check(nh_curv_trace(f->c, NH_OP_H, 1, &o, &r) == NH_EINVAL, "trace: bad method -> NH_EINVAL");
    o = nh_trace_opts_default(); o.probe = (nh_probe)9;
    nh_check(nh_curv_trace(f->c, NH_OP_H, 1, &o, &r) == NH_EINVAL, "trace: bad probe -> NH_EINVAL");
    o = nh_trace_opts_default(); o.nprobes = 0;
    nh_ortho_result orr;
    nh_check(nh_curv_orthogonality(f->c, &o, &orr) == NH_EINVAL, "ortho: 0 probes -> NH_EINVAL");

    double ev[4], *X = malloc(4 * P * sizeof *X);
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    nh_check(nh_curv_lanczos(f->c, NH_OP_H, 0, &lo, ev, NULL, NULL, NULL) == NH_EINVAL, "lanczos: k = 0 -> NH_EINVAL");
    double *big = malloc((P + 1) * sizeof *big);
    nh_check(nh_curv_lanczos(f->c, NH_OP_H, P + 1, &lo, big, NULL, NULL, NULL) == NH_EINVAL, "lanczos: k = P + 1 (index beyond P) -> NH_EINVAL");
    free(big);
    lo.ncv = 4;
    nh_check(nh_curv_lanczos(f->c, NH_OP_H, 4, &lo, ev, X, NULL, NULL) == NH_EINVAL, "lanczos: ncv <= k -> NH_EINVAL");
    lo = nh_lanczos_opts_default(); lo.tol = 0;
    nh_check(nh_curv_lanczos(f->c, NH_OP_H, 4, &lo, ev, X, NULL, NULL) == NH_EINVAL, "lanczos: tol 0 -> NH_EINVAL");
    lo = nh_lanczos_opts_default(); lo.which = (nh_which)5;
    nh_check(nh_curv_lanczos(f->c, NH_OP_H, 4, &lo, ev, X, NULL, NULL) == NH_EINVAL, "lanczos: bad which -> NH_EINVAL");
    nh_check(nh_curv_lanczos(f->c, NH_OP_H, 4, NULL, NULL, X, NULL, NULL) == NH_EINVAL, "lanczos: NULL evals -> NH_EINVAL");
    free(X);

    nh_slq_opts so = nh_slq_opts_default();
    double grid[3] = {0, 1, 2}, dens[3];
    so.nvec = 0;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &so, NULL, NULL, 0, NULL, 0, NULL, NULL) == NH_EINVAL, "slq: 0 vectors -> NH_EINVAL");
    so = nh_slq_opts_default(); so.nsteps = 0;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &so, NULL, NULL, 0, NULL, 0, NULL, NULL) == NH_EINVAL, "slq: 0 steps -> NH_EINVAL");
    so.nsteps = P + 1;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &so, NULL, NULL, 0, NULL, 0, NULL, NULL) == NH_EINVAL, "slq: steps > P -> NH_EINVAL");
    so = nh_slq_opts_default();
    nh_check(nh_curv_slq(f->c, NH_OP_H, &so, NULL, NULL, 3, grid, 0.0, dens, NULL) == NH_EINVAL, "slq: sigma 0 -> NH_EINVAL");
    nh_check(nh_curv_slq(f->c, NH_OP_H, &so, NULL, NULL, 3, NULL, 0.1, dens, NULL) == NH_EINVAL, "slq: NULL grid -> NH_EINVAL");
    nh_check(nh_curv_rayleigh(f->c, 1, NULL, ev, NULL) == NH_EINVAL, "rayleigh: NULL V -> NH_EINVAL");
}

/* Allocation failures anywhere inside: a clean status, never a crash
 * (ASan/valgrind builds also see no leak). */
static void test_alloc_failures(fix_t *f) {
    int bad = 0;
    double ev[3], dens[2], grid[2] = {0, 1};
    for (long k = 1; k <= 12; k++) {
        nh_trace_result r; nh_ortho_result orr;
        nh_trace_opts o = nh_trace_opts_default(); o.nprobes = 4; o.method = NH_TRACE_HUTCHPP; o.sketch = 2; o.control = 1;
        nh_slq_opts so = nh_slq_opts_default(); so.nvec = 2; so.nsteps = 5;
        nh_status s[4];
        nh__alloc_fail_at(k); s[0] = nh_curv_trace(f->c, NH_OP_H, 4, &o, &r);
        nh__alloc_fail_at(k); s[1] = nh_curv_lanczos(f->c, NH_OP_H, 3, NULL, ev, NULL, NULL, NULL);
        nh__alloc_fail_at(k); s[2] = nh_curv_slq(f->c, NH_OP_S, &so, NULL, NULL, 2, grid, 0.1, dens, NULL);
        nh__alloc_fail_at(k); s[3] = nh_curv_orthogonality(f->c, &o, &orr);
        nh__alloc_fail_at(0);
        for (int i = 0; i < 4; i++) if (s[i] != NH_OK && s[i] != NH_ENOMEM) bad++;
    }
    nh_check(bad == 0, "allocation failures give NH_ENOMEM or NH_OK (%d other statuses)", bad);
    nh_set_mem_limit(1000);
    double e1;
    nh_check(nh_curv_lanczos(f->c, NH_OP_H, 1, NULL, &e1, NULL, NULL, NULL) == NH_ETOOLARGE, "lanczos: basis over the memory limit -> NH_ETOOLARGE");
    nh_set_mem_limit(0);
}

/* ------------------------------------------------------------ width sweep */

/* Proposition 5 / Theorem 1 at finite width: L = 3, n_0 = 4, n_L = 1,
 * N = 8 fixed inputs and targets, widths 20, 80, 320, averaged over 6
 * initializations.  ||IS||_F is exact; ||S||_F^2 = Tr(S^2) and Tr(S^3),
 * Tr(S^4) by Hutchinson (64 Rademacher probes: S has ~w N n_L comparable
 * eigenvalues, so the relative SE of the even moments is small). */
static void test_width_sweep(void) {
    const size_t widths[3] = {20, 80, 320}, N = 8, nseed = 6;
    double ratio[3], trs2[3], trs3[3], trs4[3], isf[3], se3[3], se4[3];
    nh_rng r; nh_rng_seed(&r, 2024);
    double X[8 * 4], T[8];
    nh_rng_fill_normal(&r, N * 4, X);
    for (size_t i = 0; i < N; i++) T[i] = sin(2 * X[i * 4]) + 0.5 * X[i * 4 + 1];
    for (int wi = 0; wi < 3; wi++) {
        const size_t w = widths[wi], ws[4] = {4, w, w, 1};
        ratio[wi] = trs2[wi] = trs3[wi] = trs4[wi] = isf[wi] = se3[wi] = se4[wi] = 0;
        for (size_t s = 0; s < nseed; s++) {
            nh_net_config cfg = nh_net_config_default();
            cfg.depth = 3; cfg.widths = ws; cfg.act = NH_ACT_SOFTPLUS;
            nh_net *net = NULL; nh_curv *c = NULL;
            nh_net_create(&cfg, &net);
            nh_net_init_normal(net, 100 + s);
            nh_curv_create(net, X, T, N, NH_LOSS_MSE, &c);
            nh_trace_opts o = nh_trace_opts_default(); o.nprobes = 64; o.seed = 7 + s;
            nh_ortho_result orr;
            nh_trace_result tr;
            nh_status st = nh_curv_orthogonality(c, &o, &orr);
            st = st == NH_OK ? nh_curv_trace(c, NH_OP_S, 4, &o, &tr) : st;
            nh_check(st == NH_OK, "sweep w=%zu seed %zu: status (%s)", w, s, nh_last_error());
            ratio[wi] += orr.ratio / nseed; isf[wi] += orr.is_fro / nseed;
            trs2[wi] += tr.est[1] / nseed; trs3[wi] += fabs(tr.est[2]) / nseed; trs4[wi] += tr.est[3] / nseed;
            se3[wi] += tr.se[2] * tr.se[2] / (nseed * nseed); se4[wi] += tr.se[3] * tr.se[3] / (nseed * nseed);
            nh_curv_free(c); nh_net_free(net);
        }
        NOTE("sweep w=%3zu (P=%zu): ||IS||/(||I|| ||S||) = %.4f, ||IS||_F = %.4g, Tr S^2 = %.4g, |Tr S^3| = %.3g (+-%.1g), Tr S^4 = %.3g (+-%.1g)",
             w, (4 + 1) * w + (w + 1) * w + (w + 1), ratio[wi], isf[wi], trs2[wi], trs3[wi], sqrt(se3[wi]), trs4[wi], sqrt(se4[wi]));
    }
    double slope_r = 0, slope_4 = 0, slope_3 = 0;
    {   /* least-squares slopes in log-log */
        double mx = 0, my = 0, m4 = 0, m3 = 0, sxx = 0, sxy = 0, sx4 = 0, sx3 = 0;
        for (int i = 0; i < 3; i++) { mx += log((double)widths[i]) / 3; my += log(ratio[i]) / 3; m4 += log(trs4[i]) / 3; m3 += log(trs3[i]) / 3; }
        for (int i = 0; i < 3; i++) {
            double dx = log((double)widths[i]) - mx;
            sxx += dx * dx; sxy += dx * (log(ratio[i]) - my); sx4 += dx * (log(trs4[i]) - m4); sx3 += dx * (log(trs3[i]) - m3);
        }
        slope_r = sxy / sxx; slope_4 = sx4 / sxx; slope_3 = sx3 / sxx;
    }
    NOTE("sweep slopes (log-log vs width): ratio %.3f, Tr S^4 %.3f, |Tr S^3| %.3f", slope_r, slope_4, slope_3);
    nh_check(ratio[0] > ratio[1] && ratio[1] > ratio[2], "sweep: ||IS||/(||I|| ||S||) decreases with width (%.4f > %.4f > %.4f)",
             ratio[0], ratio[1], ratio[2]);
    nh_check(slope_r < -0.25, "sweep: ratio slope %.3f < -0.25 (Proposition 5: -> 0)", slope_r);
    nh_check(trs4[0] > trs4[1] && trs4[1] > trs4[2], "sweep: Tr S^4 decreases with width (%.3g > %.3g > %.3g)", trs4[0], trs4[1], trs4[2]);
    nh_check(trs3[2] < trs3[0], "sweep: |Tr S^3| smaller at w=320 than at w=20 (%.3g < %.3g)", trs3[2], trs3[0]);
    /* Tr S^2 stays O(1): within a factor 3 across a 16x width range. */
    double mn = fmin(trs2[0], fmin(trs2[1], trs2[2])), mxv = fmax(trs2[0], fmax(trs2[1], trs2[2]));
    nh_check(mxv < 3 * mn, "sweep: Tr S^2 stays O(1) (%.3g .. %.3g)", mn, mxv);
}

/* nh_mean_se / nh_se_from_ss: closed forms on small samples, the one n = 1
 * rule (SE undefined -> NaN, the mean still the value), strides. */
static void test_mean_se(void) {
    const double x[8] = {1, 10, 2, 20, 3, 30, 4, 40};
    double m = 0, se = 0;
    nh_mean_se(4, x, 2, &m, &se); /* 1,2,3,4: mean 5/2, var 5/3, se = sqrt(5/3 / 4) */
    nh_check(m == 2.5 && fabs(se - sqrt(5.0 / 12.0)) < 1e-15, "mean_se of 1..4 (stride 2): %g %g", m, se);
    nh_mean_se(4, x + 1, 2, &m, &se); /* 10..40: 10x the above, exactly representable sums */
    nh_check(m == 25.0 && fabs(se - 10 * sqrt(5.0 / 12.0)) < 1e-14, "mean_se of 10..40: %g %g", m, se);
    nh_mean_se(1, x + 3, 1, &m, &se);
    nh_check(m == 20.0 && isnan(se), "n = 1: the mean is the value, the SE undefined (NaN): %g %g", m, se);
    nh_mean_se(0, x, 1, &m, &se);
    nh_check(isnan(m) && isnan(se), "n = 0: mean and SE NaN");
    nh_mean_se(3, x, 0, &m, NULL); /* stride 0: three copies of x[0], se pointer may be NULL */
    nh_check(m == 1.0, "stride 0, se NULL: %g", m);
    nh_check(nh_se_from_ss(-1e-30, 3) == 0.0, "a rounding-negative sum of squares gives SE 0");
    nh_check(isnan(nh_se_from_ss(1.0, 1)) && fabs(nh_se_from_ss(6.0, 4) - sqrt(0.5)) < 1e-15,
             "nh_se_from_ss: NaN for n = 1, sqrt(ss / (n-1) / n) else");
}

int main(void) {
    clock_t t0 = clock();
    nh_set_threads(2);
    {
        /* P = (4+1)12 + (12+1)12 + 13 = 229; N = 8, MSE, softplus. */
        const size_t w[4] = {4, 12, 12, 1};
        fix_t f = make_fix(3, w, NH_ACT_SOFTPLUS, NH_LOSS_MSE, 8, 31, 32);
        dense_t d = make_dense(&f);
        NOTE("dense net: P = %zu, ||H|| = %.4g, ||I|| = %.4g, ||S|| = %.4g", f.P, opnorm(&d, 0), opnorm(&d, 1), opnorm(&d, 2));
        test_lanczos(&f, &d);
        test_slq(&f, &d);
        test_trace_basic(&f, &d);
        test_trace_hi(&f, &d);
        test_honesty(&f, &d);
        test_ortho(&f, &d, "mse");
        test_rayleigh(&f, &d);
        test_slice(&f);
        test_bad_input(&f);
        test_alloc_failures(&f);
        free_dense(&d);
        free_fix(&f);
    }
    {
        /* Non-diagonal HC: softmax CE with 3 classes, and BCE with 2 outputs. */
        const size_t w[3] = {3, 10, 3};
        fix_t f = make_fix(2, w, NH_ACT_TANH, NH_LOSS_CE, 5, 41, 42);
        dense_t d = make_dense(&f);
        test_ortho(&f, &d, "ce");
        check_lanczos(&f, &d, 0, NH_WHICH_LA, 10, 0, "LA ce");
        free_dense(&d);
        free_fix(&f);
        const size_t w2[4] = {3, 8, 8, 2};
        fix_t g = make_fix(3, w2, NH_ACT_GELU, NH_LOSS_BCE, 6, 51, 52);
        dense_t e = make_dense(&g);
        test_ortho(&g, &e, "bce");
        free_dense(&e);
        free_fix(&g);
    }
    test_lanczos_tiny();
    test_width_sweep();
    test_mean_se();
    NOTE("cpu time %.1f s", (double)(clock() - t0) / CLOCKS_PER_SEC);
    NH_TEST_END();
}
