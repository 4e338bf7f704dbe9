/* kernels.c -- the infinite-width kernels Sigma, Sigma-dot, Sigma-ddot,
 * Theta, Upsilon, Phi, Xi and Lambda by the layer recursions of the formula
 * sheet (Sec. 2), for one pair of inputs or a whole Gram matrix. */
#include "core/internal.h"
#include "core/act_table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const nh__kernel_names[NH_K_COUNT] = {
    "sigma", "sigmadot", "sigmaddot", "theta", "upsilon", "phi", "xi", "lambda"};

const char *nh_kernel_name(nh_kernel k) {
    return ((int)k >= 0 && k < NH_K_COUNT) ? nh__kernel_names[k] : "unknown";
}

nh_kernel_opts nh_kernel_opts_default(void) {
    nh_kernel_opts o;
    o.act = NH_ACT_SOFTPLUS;
    o.depth = 2;
    o.beta = 0.1;
    o.nq = 0;
    o.exact = 1;
    return o;
}

/* Kernels of one ordered pair (x, x') at one layer.  ph/la hold
 * Phi(x,x'), Lambda(x,x'); phT/laT hold Phi(x',x), Lambda(x',x).  For x = x'
 * the state is the diagonal chain, and (sig, th, ph) are the values
 * Sigma(x,x), Theta(x,x), Phi(x,x) that enter every pair through x. */
typedef struct nh__kst {
    double sig, sd, sdd, th, up, ph, phT, xi, la, laT;
} nh__kst;

static void nh__kst_first(double s1, nh__kst *c) {
    memset(c, 0, sizeof *c);
    c->sig = c->th = s1; /* Sigma(1) = Theta(1) = x.x'/n0 + beta^2 */
}

/* ------------------------------------------------------ moment engine */

/* The moments under Sigma(l) for every pair of a set of inputs come from one
 * of two engines, fixed per layer:
 *  - nh_gauss (tensor Gauss-Hermite, or closed forms): when opts->nq > 0,
 *    for the activations with kinks (smooth = 0 in src/core/act.c: relu,
 *    leaky_relu; their Hermite series converge too slowly), and for the
 *    activations with closed forms when opts->exact;
 *  - otherwise Mehler's formula: with p_n the orthonormal Hermite
 *    polynomials and rho = k12 / sqrt(k11 k22),
 *      E[f(u) h(u')] = sum_n rho^n a_n b_n,
 *      a_n = E[f(sqrt(k11) z) p_n(z)],  b_n = E[h(sqrt(k22) z) p_n(z)].
 *    The coefficients depend on one input only, so they are computed once
 *    per input and layer (1-D quadrature), and each pair costs O(K) flops
 *    instead of O(nq^2) activation evaluations.  Truncation: each series
 *    is cut at the first K whose tail norm (sum_{n>=K} a_n^2)^(1/2) is
 *    <= 1e-8 of its norm; summing each product to the larger of the two
 *    cutoffs leaves an error <= 1e-16 |f| |h| by Cauchy-Schwarz, for every
 *    rho in [-1, 1]. */
#define NH_SERIES_EPS 1e-8
/* 1-D nodes with sqrt(w) below this are skipped: |p_n sqrt(w)| <= 1 for
 * every n < nq (Christoffel), so they contribute < 1e-22 |s_d|. */
#define NH_SERIES_PRUNE 1e-22

typedef struct nh__layer {
    nh_gauss *g;    /* tensor/closed engine, or NULL for the series     */
    size_t    kcap; /* series: coefficients stored per function         */
    double   *coef; /* series: [input][d][kcap], d = derivative 0..3    */
    size_t   *kcut; /* series: [input][d] truncation points              */
} nh__layer;

static void nh__layer_free(nh__layer *ly) {
    nh_gauss_free(ly->g);
    free(ly->coef);
    free(ly->kcut);
    memset(ly, 0, sizeof *ly);
}

/* Q[k][t] = sqrt(w_t) p_k(x_t), k < kcap, for the na active nodes x, by the
 * three-term recurrence of the orthonormal Hermite polynomials (rt[k] =
 * sqrt(k), ri[k] = 1/sqrt(k)). */
static void nh__series_q(size_t na, size_t kcap, const double *x, const double *sw, const double *rt,
                         const double *ri, double *Q) {
    for (size_t t = 0; t < na; t++) {
        double qm = 0.0, q = sw[t];
        for (size_t k = 0; k < kcap; k++) {
            Q[k * na + t] = q;
            double qn = (x[t] * q - rt[k] * qm) * ri[k + 1];
            qm = q; q = qn;
        }
    }
}

/* Cut each of the 4 series of a (kcap coefficients each) where the dropped
 * tail is below NH_SERIES_EPS of its norm: kcut[d].  Returns 0 if a series
 * needs more than 7/8 of the coefficients (nq must grow). */
static int nh__series_cut(const double *a, size_t kcap, size_t *kcut) {
    int converged = 1;
    for (int d = 0; d < 4; d++) {
        const double *c = a + d * kcap;
        double norm2 = 0.0, tail2 = 0.0;
        for (size_t k = 0; k < kcap; k++) norm2 += c[k] * c[k];
        const double lim = NH_SERIES_EPS * NH_SERIES_EPS * norm2;
        size_t K = kcap;
        while (K > 0 && tail2 + c[K - 1] * c[K - 1] <= lim) {
            tail2 += c[K - 1] * c[K - 1];
            K--;
        }
        kcut[d] = K;
        if (8 * K > 7 * kcap) converged = 0;
    }
    return converged;
}

/* Coefficients a[d*kcap + k] = sum_t w_t s_d(sqrt(var) x_t) p_k(x_t) of
 * one input over the na active nodes x (sw = sqrt(w), Q as nh__series_q;
 * F: 5 na scratch). */
static void nh__series_coef(nh_act act, double var, size_t na, const double *x0, const double *sw, const double *Q,
                            size_t kcap, double *F, double *a) {
    double *x = F + 4 * na;
    const double sv = sqrt(var > 0.0 ? var : 0.0);
    for (size_t t = 0; t < na; t++) x[t] = sv * x0[t];
    nh_act_eval(act, na, x, F, F + na, F + 2 * na, F + 3 * na);
    /* w f p_k = (sqrt(w) f) (sqrt(w) p_k) */
    for (size_t t = 0; t < 4 * na; t++) F[t] *= sw[t % na];
    for (size_t k = 0; k < kcap; k++) {
        const double *q = Q + k * na;
        double c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        for (size_t t = 0; t < na; t++) {
            c0 += q[t] * F[t]; c1 += q[t] * F[na + t];
            c2 += q[t] * F[2 * na + t]; c3 += q[t] * F[3 * na + t];
        }
        a[k] = c0; a[kcap + k] = c1; a[2 * kcap + k] = c2; a[3 * kcap + k] = c3;
    }
}

/* Hermite coefficients of s_d(sqrt(var[i]) z), d = 0..3, for n inputs.  The
 * 1-D rule of nq nodes is exact for degree 2 nq - 1, so coefficients of
 * order < nq/2 carry no visible aliasing (it comes from orders >= 3nq/2);
 * nq doubles until every series is cut within 7/8 of them (or
 * NH_GAUSS_NQ_MAX is reached). */
static nh_status nh__series_build(nh_act act, size_t n, const double *var, double kmax,
                                  nh__layer *ly) {
    size_t nq = 4 * nh_gauss_default_nq(act, kmax);
    if (nq < 64) nq = 64;
    if (nq > NH_GAUSS_NQ_MAX) nq = NH_GAUSS_NQ_MAX;
    for (;;) {
        const size_t kcap = nq / 2;
        int ok = 1;
        size_t qbytes = nh__mul(nh__mul(kcap, nq, &ok), sizeof(double), &ok);
        size_t cbytes = nh__mul(nh__mul(n, 4 * kcap, &ok), sizeof(double), &ok);
        NH_TRY(nh__check_bytes(ok, nh__add(qbytes, cbytes, &ok), "nh_kernels",
                               "Hermite coefficients"));
        double *z = nh__malloc(4 * nq * sizeof *z), *w = z ? z + nq : NULL, *sw = z ? z + 2 * nq : NULL;
        double *ri = z ? z + 3 * nq : NULL;
        double *Q = nh__malloc(qbytes), *coef = nh__malloc(cbytes);
        size_t *kcut = nh__malloc(n * 4 * sizeof *kcut);
        nh_status st = NH_OK;
        if (!z || !Q || !coef || !kcut)
            st = nh__fail(NH_ENOMEM, "nh_kernels", "%zu bytes", qbytes + cbytes);
        if (st == NH_OK) st = nh_gauss_hermite(nq, z, w);
        if (st != NH_OK) { free(z); free(Q); free(coef); free(kcut); return st; }
        /* Active nodes [i0, nq - i0); Q[k][t] = sqrt(w) p_k at node i0 + t,
         * bounded by 1, so the recurrence cannot overflow. */
        size_t i0 = 0;
        while (i0 < nq / 2 && sqrt(w[i0]) < NH_SERIES_PRUNE) i0++;
        const size_t na = nq - 2 * i0;
        for (size_t t = 0; t < na; t++) sw[t] = sqrt(w[i0 + t]);
        /* w is not needed any more: reuse it for rt[k] = sqrt(k). */
        double *rt = w;
        for (size_t k = 0; k <= kcap && k < nq; k++) {
            rt[k] = sqrt((double)k);
            ri[k] = k ? 1.0 / rt[k] : 0.0; /* multiply in the recurrence, not divide */
        }
        nh__series_q(na, kcap, z + i0, sw, rt, ri, Q);
        int converged = 1, nomem = 0;
        #pragma omp parallel num_threads(nh__threads()) if (n >= 8)
        {
            double *F = nh__malloc(5 * (na ? na : 1) * sizeof *F);
            if (!F) {
                #pragma omp atomic write
                nomem = 1;
            }
            #pragma omp for schedule(static)
            for (size_t i = 0; i < n; i++) {
                if (!F) continue;
                double *a = coef + i * 4 * kcap;
                nh__series_coef(act, var[i], na, z + i0, sw, Q, kcap, F, a);
                if (!nh__series_cut(a, kcap, kcut + 4 * i)) {
                    #pragma omp atomic write
                    converged = 0;
                }
            }
            free(F);
        }
        free(z);
        free(Q);
        if (nomem) {
            free(coef); free(kcut);
            return nh__fail(NH_ENOMEM, "nh_kernels", "%zu doubles", 5 * na);
        }
        if (converged || nq >= NH_GAUSS_NQ_MAX) {
            ly->g = NULL; ly->kcap = kcap; ly->coef = coef; ly->kcut = kcut;
            return NH_OK;
        }
        free(coef);
        free(kcut);
        nq = 2 * nq > NH_GAUSS_NQ_MAX ? NH_GAUSS_NQ_MAX : 2 * nq;
    }
}

/* Engine for the moments under Sigma(l), var[i] = Sigma(l)(x_i, x_i). */
static nh_status nh__layer_build(const nh_kernel_opts *o, size_t n, const double *var,
                                 nh__layer *ly) {
    memset(ly, 0, sizeof *ly);
    double kmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(var[i]))
            return nh__fail(NH_ENONFINITE, "nh_kernels", "Sigma(x_%zu, x_%zu) = %g", i, i, var[i]);
        if (var[i] > kmax) kmax = var[i];
    }
    if (o->nq > 0) return nh_gauss_create(o->act, o->nq, o->exact, &ly->g);
    if ((o->exact && nh__gauss_has_closed(o->act)) || !nh__act_row_of(o->act)->smooth)
        return nh_gauss_create(o->act, nh_gauss_default_nq(o->act, kmax), o->exact, &ly->g);
    return nh__series_build(o->act, n, var, kmax, ly);
}

/* Moments for inputs i and j (indices into the layer's input set). */
static nh_status nh__layer_moments(const nh__layer *ly, size_t i, size_t j, double k11,
                                   double k12, double k22, nh_gmoments *m) {
    if (ly->g) return nh_gauss_moments(ly->g, k11, k12, k22, m);
    if (!isfinite(k12)) return nh__fail(NH_ENONFINITE, "nh_kernels", "Sigma(x,x') = %g", k12);
    const double s = sqrt(k11 * k22);
    double rho = s > 0.0 ? k12 / s : 0.0;
    if (fabs(rho) > 1.0 + 1e-8)
        return nh__fail(NH_EINVAL, "nh_kernels", "covariance (%g, %g, %g) is not PSD", k11, k12, k22);
    if (rho > 1.0) rho = 1.0;
    if (rho < -1.0) rho = -1.0;
    const size_t kc = ly->kcap;
    const double *a = ly->coef + i * 4 * kc, *b = ly->coef + j * 4 * kc;
    const double *a0 = a, *a1 = a + kc, *a2 = a + 2 * kc, *a3 = a + 3 * kc;
    const double *b0 = b, *b1 = b + kc, *b2 = b + 2 * kc, *b3 = b + 3 * kc;
    size_t K = 0;
    for (int d = 0; d < 4; d++) {
        if (ly->kcut[4 * i + d] > K) K = ly->kcut[4 * i + d];
        if (ly->kcut[4 * j + d] > K) K = ly->kcut[4 * j + d];
    }
    double e00 = 0, e11 = 0, e22 = 0, e20 = 0, e02 = 0, e31 = 0, e13 = 0, p = 1.0;
    for (size_t k = 0; k < K; k++) {
        e00 += p * a0[k] * b0[k]; e11 += p * a1[k] * b1[k]; e22 += p * a2[k] * b2[k];
        e20 += p * a2[k] * b0[k]; e02 += p * a0[k] * b2[k];
        e31 += p * a3[k] * b1[k]; e13 += p * a1[k] * b3[k];
        p *= rho;
    }
    m->e00 = e00; m->e11 = e11; m->e22 = e22; m->e20 = e20; m->e02 = e02;
    m->e31 = e31; m->e13 = e13;
    return NH_OK;
}

/* One layer l -> l+1 (sheet Sec. 2).  a, b: diagonal states of x = x_i and
 * x' = x_j at layer l; c: the pair at layer l; ly: the engine for the
 * moments under Sigma(l).  E20(x',x) = e02 and E31(x',x) = e13 give the
 * transposed Phi and Lambda.  o may alias c. */
static nh_status nh__step(const nh__layer *ly, size_t i, size_t j, double beta2,
                          const nh__kst *a, const nh__kst *b, const nh__kst *c, nh__kst *o) {
    nh_gmoments m;
    nh_status st = nh__layer_moments(ly, i, j, a->sig, c->sig, b->sig, &m);
    if (st != NH_OK) return st;
    const double Ax = a->ph + a->th, Ay = b->ph + b->th; /* A(x), A(x') */
    const double T = c->th, P = c->ph, PT = c->phT, sd = m.e11, sdd = m.e22;
    nh__kst n;
    n.sd = sd;
    n.sdd = sdd;
    n.sig = m.e00 + beta2;
    n.th = T * sd + n.sig;
    n.up = c->up * sd + T * T * sdd + 2.0 * T * sd;
    n.ph = P * sd + Ax * m.e20;
    n.phT = PT * sd + Ay * m.e02;
    n.xi = c->xi * sd + (Ax * Ay + P * PT) * sdd + P * Ay * m.e13 + PT * Ax * m.e31;
    n.la = c->la * sd + T * (P * sdd + Ax * m.e31) + n.ph;
    n.laT = c->laT * sd + T * (PT * sdd + Ay * m.e13) + n.phT;
    *o = n;
    return NH_OK;
}

/* Value of kernel k from a pair state; transposed: the (x',x) entry. */
static double nh__kst_get(const nh__kst *c, int k, int transposed) {
    switch (k) {
    case NH_K_SIGMA: return c->sig;
    case NH_K_SIGMADOT: return c->sd;
    case NH_K_SIGMADDOT: return c->sdd;
    case NH_K_THETA: return c->th;
    case NH_K_UPSILON: return c->up;
    case NH_K_PHI: return transposed ? c->phT : c->ph;
    case NH_K_XI: return c->xi;
    default: return transposed ? c->laT : c->la;
    }
}

static nh_status nh__check_opts(const char *func, const nh_kernel_opts *o) {
    if ((int)o->act < 0 || o->act >= NH_ACT_COUNT)
        return nh__fail(NH_EINVAL, func, "unknown activation %d", (int)o->act);
    if (o->depth < 1) return nh__fail(NH_EINVAL, func, "depth must be >= 1");
    if (o->nq > NH_GAUSS_NQ_MAX)
        return nh__fail(NH_EINVAL, func, "nq = %zu > %d", o->nq, NH_GAUSS_NQ_MAX);
    if (!isfinite(o->beta)) return nh__fail(NH_ENONFINITE, func, "beta = %g", o->beta);
    return NH_OK;
}

/* Dot product in a fixed order (same value whatever the thread). */
static double nh__dot(size_t n, const double *x, const double *y) {
    double s = 0.0;
    for (size_t k = 0; k < n; k++) s += x[k] * y[k];
    return s;
}

nh_status nh_kernels_pair(const nh_kernel_opts *opts, size_t n0, const double *x,
                          const double *xp, double *out) {
    if (!opts || !x || !xp || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    if (n0 == 0) NH_FAIL(NH_EINVAL, "n0 = 0");
    NH_TRY(nh__check_opts(__func__, opts));
    size_t bad;
    if (nh__count_nonfinite(x, n0, &bad)) NH_FAIL(NH_ENONFINITE, "x[%zu] is not finite", bad);
    if (nh__count_nonfinite(xp, n0, &bad)) NH_FAIL(NH_ENONFINITE, "xp[%zu] is not finite", bad);
    const size_t L = opts->depth;
    int ok = 1;
    size_t bytes = nh__mul(nh__mul(L, (size_t)NH_K_COUNT * 4, &ok), sizeof(double), &ok);
    NH_TRY(nh__check_bytes(ok, bytes, __func__, "output"));
    const double b2 = opts->beta * opts->beta;
    nh__kst d[2], c;
    nh__kst_first(nh__dot(n0, x, x) / (double)n0 + b2, &d[0]);
    nh__kst_first(nh__dot(n0, xp, xp) / (double)n0 + b2, &d[1]);
    nh__kst_first(nh__dot(n0, x, xp) / (double)n0 + b2, &c);
    for (size_t l = 1;; l++) {
        double *o = out + (l - 1) * NH_K_COUNT * 4;
        for (int k = 0; k < NH_K_COUNT; k++) {
            o[4 * k + 0] = nh__kst_get(&d[0], k, 0);
            o[4 * k + 1] = nh__kst_get(&c, k, 0);
            o[4 * k + 2] = nh__kst_get(&c, k, 1);
            o[4 * k + 3] = nh__kst_get(&d[1], k, 0);
        }
        if (nh__count_nonfinite(o, NH_K_COUNT * 4, &bad))
            NH_FAIL(NH_ENONFINITE, "%s at layer %zu is not finite",
                    nh_kernel_name((nh_kernel)(bad / 4)), l);
        if (l == L) break;
        const double var[2] = {d[0].sig, d[1].sig};
        nh__layer ly;
        NH_TRY(nh__layer_build(opts, 2, var, &ly));
        nh__kst e[2], ec;
        nh_status st = nh__step(&ly, 0, 1, b2, &d[0], &d[1], &c, &ec);
        for (size_t i = 0; i < 2 && st == NH_OK; i++)
            st = nh__step(&ly, i, i, b2, &d[i], &d[i], &d[i], &e[i]);
        nh__layer_free(&ly);
        if (st != NH_OK) return st;
        d[0] = e[0]; d[1] = e[1]; c = ec;
    }
    return NH_OK;
}

/* Diagonal states D[l * n + i] (layer l + 1, input i) of every input at
 * every layer, building the moment engine ly[l] of each transition. */
static nh_status nh__gram_diag(const nh_kernel_opts *opts, size_t n, size_t n0, const double *X, nh__kst *D,
                               double *var, nh__layer *ly) {
    const size_t L = opts->depth;
    const double b2 = opts->beta * opts->beta;
    for (size_t i = 0; i < n; i++) {
        const double *xi = X + i * n0;
        nh__kst_first(nh__dot(n0, xi, xi) / (double)n0 + b2, &D[i]);
    }
    for (size_t l = 0; l + 1 < L; l++) {
        for (size_t i = 0; i < n; i++) var[i] = D[l * n + i].sig;
        NH_TRY(nh__layer_build(opts, n, var, &ly[l]));
        int err = 0;
        #pragma omp parallel for schedule(static) num_threads(nh__threads()) if (n >= 64)
        for (size_t i = 0; i < n; i++) {
            const nh__kst *d = &D[l * n + i];
            if (nh__step(&ly[l], i, i, b2, d, d, d, &D[(l + 1) * n + i]) != NH_OK) {
                #pragma omp atomic write
                err = 1;
            }
        }
        if (err) return nh__fail(NH_ENONFINITE, "nh_kernels_gram", "diagonal kernels at layer %zu are not finite", l + 2);
    }
    return NH_OK;
}

/* The off-diagonal pairs i < j, layer by layer from the diagonal states.
 * Rows get shorter with i: dynamic scheduling balances them.  Each pair is
 * computed by the same code whichever thread runs it. */
static nh_status nh__gram_pairs(const nh_kernel_opts *opts, size_t n, size_t n0, const double *X, const nh__kst *D,
                                const nh__layer *ly, double *const out[NH_K_COUNT]) {
    const size_t L = opts->depth;
    const double b2 = opts->beta * opts->beta;
    int err = 0;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nh__threads()) if (n >= 8)
    for (size_t i = 0; i < n; i++) {
        int e;
        #pragma omp atomic read
        e = err;
        if (e) continue;
        for (size_t j = i + 1; j < n; j++) {
            nh__kst c;
            nh__kst_first(nh__dot(n0, X + i * n0, X + j * n0) / (double)n0 + b2, &c);
            for (size_t l = 0; l + 1 < L; l++) {
                if (nh__step(&ly[l], i, j, b2, &D[l * n + i], &D[l * n + j], &c, &c) != NH_OK) {
                    #pragma omp atomic write
                    err = 1;
                    break;
                }
            }
            for (int k = 0; k < NH_K_COUNT; k++) {
                if (!out[k]) continue;
                out[k][i * n + j] = nh__kst_get(&c, k, 0);
                out[k][j * n + i] = nh__kst_get(&c, k, 1);
            }
        }
    }
    if (err) return nh__fail(NH_ENONFINITE, "nh_kernels_gram", "kernels are not finite or not PSD");
    return NH_OK;
}

nh_status nh_kernels_gram(const nh_kernel_opts *opts, size_t n, size_t n0, const double *X,
                          double *const out[NH_K_COUNT]) {
    if (!opts || !X || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    if (n == 0 || n0 == 0) NH_FAIL(NH_EINVAL, "n = %zu, n0 = %zu", n, n0);
    NH_TRY(nh__check_opts(__func__, opts));
    int want = 0;
    for (int k = 0; k < NH_K_COUNT; k++) want |= out[k] != NULL;
    if (!want) NH_FAIL(NH_EINVAL, "no output requested");
    int ok = 1;
    size_t nx = nh__mul(n, n0, &ok), bad;
    if (!ok) NH_FAIL(NH_ETOOLARGE, "n x n0 overflows");
    if (nh__count_nonfinite(X, nx, &bad))
        NH_FAIL(NH_ENONFINITE, "X[%zu][%zu] is not finite", bad / n0, bad % n0);
    const size_t L = opts->depth;
    /* Diagonal states of every input at every layer, and one moment
     * engine per layer transition. */
    size_t bytes = nh__mul(nh__mul(n, L, &ok), sizeof(nh__kst) + sizeof(double), &ok);
    NH_TRY(nh__check_bytes(ok, bytes, __func__, "diagonal kernels"));
    nh__kst *D = nh__malloc(n * L * sizeof *D);
    double *var = nh__malloc(n * sizeof *var);
    nh__layer *ly = nh__calloc(L, sizeof *ly);
    nh_status st = NH_OK;
    if (!D || !var || !ly) st = nh__fail(NH_ENOMEM, __func__, "%zu bytes", bytes);
    if (st == NH_OK) st = nh__gram_diag(opts, n, n0, X, D, var, ly);
    if (st == NH_OK)
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < NH_K_COUNT; k++)
                if (out[k]) out[k][i * n + i] = nh__kst_get(&D[(L - 1) * n + i], k, 0);
    if (st == NH_OK) st = nh__gram_pairs(opts, n, n0, X, D, ly, out);
    for (int k = 0; k < NH_K_COUNT && st == NH_OK; k++)
        if (out[k] && nh__count_nonfinite(out[k], n * n, &bad))
            st = nh__fail(NH_ENONFINITE, __func__, "%s[%zu][%zu] is not finite",
                          nh_kernel_name((nh_kernel)k), bad / n, bad % n);
    if (ly)
        for (size_t l = 0; l < L; l++) nh__layer_free(&ly[l]);
    free(ly);
    free(var);
    free(D);
    return st;
}
