/* predict.c -- infinite-width predictions of the Hessian moments from Gram
 * matrices given as input (Theorem 1, Corollary 1 corrected, Proposition 1,
 * Sec. 3.3).  Formula sheet: docs/formulas.md, Sec. 3 items 8-11 and Sec. 4.
 *
 * Every network Gram matrix is block-diagonal over the outputs
 * (Theta~ = Theta (x) Id_{n_L}), so an N x n_L output array is handled as
 * n_L columns that all see the same N x N kernel: Theta~ v is one gemm
 * Theta * V with V of shape N x n_L.  Several draws are stacked side by side
 * as more columns (N x W, W = draws * n_L, column b*n_L + k). */
#include "core/internal.h"
#include "core/blas.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NH_PRED_BATCH_DEFAULT 32

nh_predict_opts nh_predict_opts_default(void) {
    nh_predict_opts o;
    o.psd_tol = 1e-8;
    o.rtol = 1e-10;
    o.atol = 1e-12;
    o.h0 = 0.0;
    o.max_steps = 10000000;
    o.nsamples = 1000;
    o.seed = 0;
    o.batch = NH_PRED_BATCH_DEFAULT;
    return o;
}

/* ---------------------------------------------------------------- checks */

static nh_status opts_get(const nh_predict_opts *in, nh_predict_opts *o, const char *func) {
    *o = in ? *in : nh_predict_opts_default();
    if (!(o->psd_tol >= 0)) return nh__fail(NH_EINVAL, func, "psd_tol must be >= 0 (got %g)", o->psd_tol);
    if (!(o->rtol > 0) || !isfinite(o->rtol) || !(o->atol >= 0) || !isfinite(o->atol))
        return nh__fail(NH_EINVAL, func, "need rtol > 0 and atol >= 0, finite (got %g, %g)", o->rtol, o->atol);
    if (!(o->h0 >= 0) || !isfinite(o->h0)) return nh__fail(NH_EINVAL, func, "h0 must be >= 0 (got %g)", o->h0);
    if (o->max_steps == 0) return nh__fail(NH_EINVAL, func, "max_steps must be >= 1");
    if (o->batch == 0) o->batch = NH_PRED_BATCH_DEFAULT;
    return NH_OK;
}

static nh_status check_dims(const nh_grams *g, size_t nout, const char *func) {
    if (!g) return nh__fail(NH_EINVAL, func, "NULL Gram matrices");
    if (g->n == 0) return nh__fail(NH_EINVAL, func, "N = 0 training points");
    if (nout == 0) return nh__fail(NH_EINVAL, func, "nout = 0 outputs");
    int ok = 1;
    size_t nno = nh__mul(g->n, nout, &ok);
    nh__mul(g->n, g->n, &ok);
    if (!ok || !nh__fits_int(g->n) || !nh__fits_int(nno))
        return nh__fail(NH_ETOOLARGE, func, "N = %zu, nout = %zu exceed the BLAS index range", g->n, nout);
    return NH_OK;
}

/* NULL, non-finite and (if sym) asymmetric Gram matrices are rejected here. */
static nh_status check_gram(const double *K, size_t n, const char *name, int sym, double tol,
                            const char *func) {
    if (!K) return nh__fail(NH_EINVAL, func, "Gram matrix %s is NULL", name);
    size_t first = 0, bad = nh__count_nonfinite(K, n * n, &first);
    if (bad)
        return nh__fail(NH_ENONFINITE, func, "%s has %zu non-finite entries (first [%zu][%zu])", name, bad,
                        first / n, first % n);
    if (!sym) return NH_OK;
    double scale = 0, asym = 0;
    size_t wi = 0, wj = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double a = fabs(K[i * n + j]), d = fabs(K[i * n + j] - K[j * n + i]);
            if (a > scale) scale = a;
            if (d > asym) { asym = d; wi = i; wj = j; }
        }
    if (asym > tol * scale)
        return nh__fail(NH_EINVAL, func, "%s is not symmetric: |K[%zu][%zu] - K[%zu][%zu]| = %g > %g * %g", name,
                        wi, wj, wj, wi, asym, tol, scale);
    return NH_OK;
}

static nh_status check_times(size_t nt, const double *t, const char *func) {
    if (nt == 0 || !t) return nh__fail(NH_EINVAL, func, "no times given");
    for (size_t i = 0; i < nt; i++) {
        if (!isfinite(t[i])) return nh__fail(NH_ENONFINITE, func, "time %zu is %g", i, t[i]);
        if (i == 0 && t[0] < 0) return nh__fail(NH_EINVAL, func, "times must be >= 0 (t[0] = %g)", t[0]);
        if (i > 0 && !(t[i] > t[i - 1]))
            return nh__fail(NH_EINVAL, func, "times must be strictly increasing (t[%zu] = %g after %g)", i, t[i],
                            t[i - 1]);
    }
    return NH_OK;
}

static nh_status check_array(const double *x, size_t n, const char *name, const char *func) {
    if (!x) return nh__fail(NH_EINVAL, func, "%s is NULL", name);
    size_t first = 0, bad = nh__count_nonfinite(x, n, &first);
    if (bad) return nh__fail(NH_ENONFINITE, func, "%s has %zu non-finite entries (first at %zu)", name, bad, first);
    return NH_OK;
}

/* ------------------------------------------------------------ allocation */

/* One checked allocation carved into pieces, so every exit frees one block. */
typedef struct plan { size_t total; int ok; } plan;
static void plan_add(plan *p, size_t a, size_t b) {
    p->total = nh__add(p->total, nh__mul(nh__mul(a, b, &p->ok), sizeof(double), &p->ok), &p->ok);
}
static nh_status plan_alloc(plan *p, double **out, const char *func, const char *what) {
    nh_status st = nh__check_bytes(p->ok, p->total, func, what);
    if (st != NH_OK) return st;
    *out = nh__malloc(p->total);
    if (!*out) return nh__fail(NH_ENOMEM, func, "%s: cannot allocate %zu bytes", what, p->total);
    return NH_OK;
}
static double *carve(double **cur, size_t a, size_t b) {
    double *r = *cur;
    *cur += a * b;
    return r;
}

/* ---------------------------------------------------------- linear algebra */

/* A (n x n, symmetric, row-major) is overwritten by its eigenvectors
 * (column a = eigenvector a); w gets the eigenvalues, ascending.  Negative
 * eigenvalues >= -tol * max|w| are clipped to 0; below that the matrix is
 * rejected as not PSD. */
static nh_status eigh_psd(size_t n, double *A, double *w, double tol, const char *name, size_t *clipped,
                          double *wmin, double *wmax, const char *func) {
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, A, (lapack_int)n, w);
    if (info != 0) return nh__fail(NH_ELAPACK, func, "dsyevd on %s failed (info %d)", name, (int)info);
    double big = fmax(fabs(w[0]), fabs(w[n - 1]));
    size_t c = 0;
    if (wmin) *wmin = w[0];
    if (wmax) *wmax = w[n - 1];
    for (size_t a = 0; a < n && w[a] < 0; a++) {
        if (!(w[a] >= -tol * big))
            return nh__fail(NH_EINVAL, func,
                            "%s is not positive semi-definite: eigenvalue %g < -psd_tol * %g (psd_tol %g)", name,
                            w[a], big, tol);
        w[a] = 0.0;
        c++;
    }
    if (clipped) *clipped = c;
    return NH_OK;
}

/* C (m x W) = alpha A (m x k) B (k x W) + beta C, all row-major dense. */
static void gemm_nn(size_t m, size_t W, size_t k, double alpha, const double *A, const double *B, double beta,
                    double *C) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)W, (int)k, alpha, A, (int)k, B, (int)W,
                beta, C, (int)W);
}

/* Tr(B), Tr(B^2), Tr(B^3), Tr(B^4) of a symmetric n x n B from one syrk
 * (B2 = B B^T = B^2, upper triangle only). */
static void trace_powers_sym(size_t n, const double *B, double *B2, double tr[4]) {
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)n, 1.0, B, (int)n, 0.0, B2, (int)n);
    double t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    for (size_t i = 0; i < n; i++) {
        t1 += B[i * n + i];
        t2 += B2[i * n + i];
        t3 += B2[i * n + i] * B[i * n + i];
        t4 += B2[i * n + i] * B2[i * n + i];
        double s3 = 0, s4 = 0;
        for (size_t j = i + 1; j < n; j++) {
            s3 += B2[i * n + j] * B[i * n + j];
            s4 += B2[i * n + j] * B2[i * n + j];
        }
        t3 += 2 * s3;
        t4 += 2 * s4;
    }
    tr[0] = t1; tr[1] = t2; tr[2] = t3; tr[3] = t4;
}

/* Same for a general n x n M: Tr M^3 = sum M2_ab M_ba, Tr M^4 = sum M2_ab M2_ba. */
static void trace_powers_gen(size_t n, const double *M, double *M2, double tr[4]) {
    gemm_nn(n, n, n, 1.0, M, M, 0.0, M2);
    double t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    for (size_t a = 0; a < n; a++) {
        t1 += M[a * n + a];
        t2 += M2[a * n + a];
        for (size_t b = 0; b < n; b++) {
            t3 += M2[a * n + b] * M[b * n + a];
            t4 += M2[a * n + b] * M2[b * n + a];
        }
    }
    tr[0] = t1; tr[1] = t2; tr[2] = t3; tr[3] = t4;
}

static double *mfield(nh_moments *m, int j) {
    return j < 4 ? &m->tr_i[j] : j < 8 ? &m->tr_s[j - 4] : &m->tr_h[j - 8];
}
static void moments_finish(nh_moments *m) {
    m->tr_s[2] = m->tr_s[3] = 0.0; /* Tr S^k -> 0 for k > 2 (Prop. 4) */
    for (int k = 0; k < 4; k++) m->tr_h[k] = m->tr_i[k] + m->tr_s[k];
}

/* Welford accumulators, one per time: numerically safe mean and variance. */
typedef struct acc { nh_moments mean, m2; size_t cnt; } acc;
static void acc_add(acc *a, nh_moments *x) {
    a->cnt++;
    for (int j = 0; j < 12; j++) {
        double *mu = mfield(&a->mean, j), *q = mfield(&a->m2, j), v = *mfield(x, j);
        double d = v - *mu;
        *mu += d / (double)a->cnt;
        *q += d * (v - *mu);
    }
}
static void acc_out(acc *a, nh_moments *mean, nh_moments *se) {
    *mean = a->mean;
    if (!se) return;
    for (int j = 0; j < 12; j++) *mfield(se, j) = nh_se_from_ss(*mfield(&a->m2, j), a->cnt);
}

/* ------------------------------------------------ MSE closed form (Cor. 1) */

/* phi(l) = (1 - e^{-t l/N}) / l = (t/N) (-expm1(-x)/x), x = t l/N; the second
 * form has no cancellation and no division by a tiny l; -> t/N as x -> 0. */
static double phi_fun(double t, double lam, double n) {
    double x = t * lam / n;
    if (x < 1e-300) return t / n;
    return (t / n) * (-expm1(-x) / x);
}

/* Symmetrised, clipped eigendecomposition of Theta: V (n x n), lam (n). */
static nh_status theta_eig(const nh_grams *g, double tol, double *V, double *lam, nh_predict_diag *diag,
                           const char *func) {
    size_t n = g->n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) V[i * n + j] = 0.5 * (g->theta[i * n + j] + g->theta[j * n + i]);
    size_t c = 0;
    double wmin = 0, wmax = 0;
    nh_status st = eigh_psd(n, V, lam, tol, "theta", &c, &wmin, &wmax, func);
    if (st != NH_OK) return st;
    if (diag) { diag->theta_clipped = c; diag->theta_eig_min = wmin; diag->theta_eig_max = wmax; }
    return NH_OK;
}

/* Tr(I^k) = nout Tr(Theta^k) / N^k: HC = Id/N and Theta~ has nout blocks. */
static void mse_tr_i(size_t n, size_t nout, const double *lam, double tr[4]) {
    for (int k = 0; k < 4; k++) tr[k] = 0.0;
    for (size_t a = 0; a < n; a++) {
        double x = lam[a] / (double)n, p = x;
        for (int k = 0; k < 4; k++) { tr[k] += p; p *= x; }
    }
    for (int k = 0; k < 4; k++) tr[k] *= (double)nout;
}

typedef struct mse_ws {
    size_t n, nout, nb, w;
    const double *V, *lam, *Lam, *Ups, *Ystar, *G0;
    double *Ut, *tmp, *EU, *PU, *Yt, *Gt;
} mse_ws;

/* Ut = V^T (Y* - Y0) for all stacked columns. */
static void mse_setup(mse_ws *s, const double *Y0) {
    size_t n = s->n, w = s->w;
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < w; c++) s->tmp[i * w + c] = s->Ystar[i * s->nout + c % s->nout] - Y0[i * w + c];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)w, (int)n, 1.0, s->V, (int)n, s->tmp, (int)w,
                0.0, s->Ut, (int)w);
}

/* State at time t: Yt, Gt; per-draw Tr S, Tr S^2 into trs[nb], trs2[nb]. */
static void mse_at(mse_ws *s, double t, double *trs, double *trs2) {
    size_t n = s->n, w = s->w, nout = s->nout;
    double dn = (double)n;
    for (size_t a = 0; a < n; a++) {
        double e = exp(-t * s->lam[a] / dn);
        for (size_t c = 0; c < w; c++) s->tmp[a * w + c] = e * s->Ut[a * w + c];
    }
    gemm_nn(n, w, n, 1.0, s->V, s->tmp, 0.0, s->EU); /* E u */
    for (size_t a = 0; a < n; a++) {
        double p = phi_fun(t, s->lam[a], dn);
        for (size_t c = 0; c < w; c++) s->tmp[a * w + c] = p * s->Ut[a * w + c];
    }
    gemm_nn(n, w, n, 1.0, s->V, s->tmp, 0.0, s->PU); /* (Id - E) Theta^{-1} u */
    memcpy(s->Gt, s->G0, n * w * sizeof *s->Gt);
    gemm_nn(n, w, n, 1.0, s->Lam, s->PU, 1.0, s->Gt); /* G(0) + Lambda phi u */
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < w; c++) s->Yt[i * w + c] = s->Ystar[i * nout + c % nout] - s->EU[i * w + c];
    gemm_nn(n, w, n, 1.0, s->Ups, s->EU, 0.0, s->tmp); /* Upsilon E u */
    for (size_t b = 0; b < s->nb; b++) {
        double a1 = 0, a2 = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < nout; k++) {
                size_t c = i * w + b * nout + k;
                a1 += s->Gt[c] * s->EU[c];
                a2 += s->EU[c] * s->tmp[c];
            }
        /* grad C(Y(t)) = (Y(t) - Y*)/N = -E u / N */
        trs[b] = -a1 / dn;
        trs2[b] = a2 / (dn * dn);
    }
}

static void mse_ws_plan(plan *p, size_t n, size_t w) { plan_add(p, 6 * n, w); }
static void mse_ws_carve(mse_ws *s, double **cur) {
    size_t n = s->n, w = s->w;
    s->Ut = carve(cur, n, w); s->tmp = carve(cur, n, w); s->EU = carve(cur, n, w);
    s->PU = carve(cur, n, w); s->Yt = carve(cur, n, w); s->Gt = carve(cur, n, w);
}

nh_status nh_predict_mse(const nh_grams *g, size_t nout, const double *Ystar, const double *Y0, const double *G0,
                         size_t nt, const double *t, const nh_predict_opts *opts, double *Y, double *G,
                         nh_moments *mom, nh_predict_diag *diag) {
    static const char *fn = "nh_predict_mse";
    if (diag) memset(diag, 0, sizeof *diag);
    nh_predict_opts o;
    NH_TRY(opts_get(opts, &o, fn));
    NH_TRY(check_dims(g, nout, fn));
    size_t n = g->n;
    NH_TRY(check_gram(g->theta, n, "theta", 1, o.psd_tol, fn));
    NH_TRY(check_gram(g->lambda, n, "lambda", 0, o.psd_tol, fn));
    NH_TRY(check_gram(g->upsilon, n, "upsilon", 0, o.psd_tol, fn));
    NH_TRY(check_times(nt, t, fn));
    NH_TRY(nh_loss_check_targets(NH_LOSS_MSE, Ystar, n, nout));
    NH_TRY(check_array(Y0, n * nout, "Y0", fn));
    NH_TRY(check_array(G0, n * nout, "G0", fn));

    plan p = {0, 1};
    plan_add(&p, n, n + 1);
    mse_ws_plan(&p, n, nout);
    double *mem = NULL, *cur;
    NH_TRY(plan_alloc(&p, &mem, fn, "MSE prediction workspace"));
    cur = mem;
    mse_ws s = {.n = n, .nout = nout, .nb = 1, .w = nout, .Lam = g->lambda, .Ups = g->upsilon, .Ystar = Ystar,
                .G0 = G0};
    double *V = carve(&cur, n, n), *lam = carve(&cur, n, 1);
    mse_ws_carve(&s, &cur);
    s.V = V; s.lam = lam;
    nh_status st = theta_eig(g, o.psd_tol, V, lam, diag, fn);
    if (st == NH_OK) {
        double tri[4];
        mse_tr_i(n, nout, lam, tri);
        mse_setup(&s, Y0);
        for (size_t it = 0; it < nt; it++) {
            double trs, trs2;
            mse_at(&s, t[it], &trs, &trs2);
            if (Y) memcpy(Y + it * n * nout, s.Yt, n * nout * sizeof *Y);
            if (G) memcpy(G + it * n * nout, s.Gt, n * nout * sizeof *G);
            if (mom) {
                memcpy(mom[it].tr_i, tri, sizeof tri);
                mom[it].tr_s[0] = trs;
                mom[it].tr_s[1] = trs2;
                moments_finish(&mom[it]);
            }
        }
    }
    free(mem);
    return st;
}

/* The Grams in the eigenbasis V of Theta, where E and phi are diagonal:
 * Lp = V^T Lambda^T V = (Lambda V)^T V, Mp = V^T M V, Up = V^T Ups V,
 * Pp_a = v_a^T Phi v_a (= v_a^T Phi^T v_a), with M = E[u u^T] summed over
 * outputs = nout Sigma + Y* Y*^T, u = Y* - Y(0).  T1, M: n x n scratch. */
static void expect_basis(const nh_grams *g, size_t nout, const double *Ystar, const double *V, double *M, double *T1,
                         double *Lp, double *Mp, double *Up, double *Pp) {
    const size_t n = g->n;
    const int ni = (int)n;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, ni, (int)nout, 1.0, Ystar, (int)nout, Ystar, (int)nout,
                0.0, M, ni);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) M[i * n + j] += (double)nout * 0.5 * (g->sigma[i * n + j] + g->sigma[j * n + i]);
    gemm_nn(n, n, n, 1.0, g->lambda, V, 0.0, T1);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, ni, ni, 1.0, T1, ni, V, ni, 0.0, Lp, ni);
    gemm_nn(n, n, n, 1.0, M, V, 0.0, T1);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, ni, ni, 1.0, V, ni, T1, ni, 0.0, Mp, ni);
    gemm_nn(n, n, n, 1.0, g->upsilon, V, 0.0, T1);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, ni, ni, 1.0, V, ni, T1, ni, 0.0, Up, ni);
    gemm_nn(n, n, n, 1.0, g->phi, V, 0.0, T1);
    for (size_t a = 0; a < n; a++) Pp[a] = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < n; a++) Pp[a] += V[i * n + a] * T1[i * n + a];
}

/* E Tr S and E Tr S^2 at time t from the eigenbasis quantities; ev, pv:
 * n scratch. */
static void expect_at(size_t n, size_t nout, double t, const double *lam, const double *Lp, const double *Mp,
                      const double *Up, const double *Pp, double *ev, double *pv, double trs[2]) {
    const double dn = (double)n;
    for (size_t a = 0; a < n; a++) {
        ev[a] = exp(-t * lam[a] / dn);
        pv[a] = phi_fun(t, lam[a], dn);
    }
    double s1 = 0, s2 = 0, s3 = 0;
    for (size_t a = 0; a < n; a++) {
        double r1 = 0, r2 = 0;
        for (size_t b = 0; b < n; b++) {
            r1 += Lp[a * n + b] * ev[b] * Mp[b * n + a];
            r2 += Up[a * n + b] * ev[b] * Mp[b * n + a];
        }
        s1 += pv[a] * r1;
        s2 += ev[a] * r2;
        s3 += ev[a] * Pp[a];
    }
    /* E Tr S = -(1/N) Tr(phi Lambda^T E M) + (nout/N) Tr(E Phi^T) */
    trs[0] = -s1 / dn + (double)nout * s3 / dn;
    trs[1] = s2 / (dn * dn); /* (1/N^2) Tr(E Ups E M) */
}

static nh_status expect_checks(const nh_grams *g, size_t nout, const double *Ystar, size_t nt, const double *t,
                               const nh_predict_opts *o, const char *fn) {
    NH_TRY(check_dims(g, nout, fn));
    size_t n = g->n;
    NH_TRY(check_gram(g->theta, n, "theta", 1, o->psd_tol, fn));
    NH_TRY(check_gram(g->lambda, n, "lambda", 0, o->psd_tol, fn));
    NH_TRY(check_gram(g->upsilon, n, "upsilon", 0, o->psd_tol, fn));
    NH_TRY(check_gram(g->phi, n, "phi", 0, o->psd_tol, fn));
    NH_TRY(check_gram(g->sigma, n, "sigma", 1, o->psd_tol, fn));
    NH_TRY(check_times(nt, t, fn));
    return nh_loss_check_targets(NH_LOSS_MSE, Ystar, n, nout);
}

nh_status nh_predict_mse_expect(const nh_grams *g, size_t nout, const double *Ystar, size_t nt, const double *t,
                                const nh_predict_opts *opts, nh_moments *mean, nh_predict_diag *diag) {
    static const char *fn = "nh_predict_mse_expect";
    if (diag) memset(diag, 0, sizeof *diag);
    nh_predict_opts o;
    NH_TRY(opts_get(opts, &o, fn));
    NH_TRY(expect_checks(g, nout, Ystar, nt, t, &o, fn));
    if (!mean) NH_FAIL(NH_EINVAL, "mean is NULL");
    const size_t n = g->n;
    plan p = {0, 1};
    plan_add(&p, 6 * n, n);
    plan_add(&p, 4, n);
    double *mem = NULL, *cur;
    NH_TRY(plan_alloc(&p, &mem, fn, "MSE expectation workspace"));
    cur = mem;
    double *V = carve(&cur, n, n), *M = carve(&cur, n, n), *T1 = carve(&cur, n, n);
    double *Lp = carve(&cur, n, n), *Mp = carve(&cur, n, n), *Up = carve(&cur, n, n);
    double *lam = carve(&cur, n, 1), *Pp = carve(&cur, n, 1), *ev = carve(&cur, n, 1), *pv = carve(&cur, n, 1);
    nh_status st = theta_eig(g, o.psd_tol, V, lam, diag, fn);
    if (st == NH_OK) {
        expect_basis(g, nout, Ystar, V, M, T1, Lp, Mp, Up, Pp);
        double tri[4];
        mse_tr_i(n, nout, lam, tri);
        for (size_t it = 0; it < nt; it++) {
            nh_moments *m = &mean[it];
            memcpy(m->tr_i, tri, sizeof tri);
            expect_at(n, nout, t[it], lam, Lp, Mp, Up, Pp, ev, pv, m->tr_s);
            moments_finish(m);
        }
    }
    free(mem);
    return st;
}

/* ---------------------------------------------- ODE, Dormand-Prince 5(4) */

/* Butcher tableau (the system is autonomous, so the nodes c are unused);
 * row 6 is also the 5th-order weight b (FSAL), dp_e = b - b* the error. */
static const double dp_a[7][6] = {
    {0, 0, 0, 0, 0, 0},
    {1.0 / 5, 0, 0, 0, 0, 0},
    {3.0 / 40, 9.0 / 40, 0, 0, 0, 0},
    {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656, 0},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
static const double dp_e[7] = {71.0 / 57600,    0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200,
                               22.0 / 525, -1.0 / 40};

typedef struct ode_ws {
    size_t n, nout, nb, w;
    nh_loss loss;
    const double *T, *Th, *Lam, *Ups;
    /* state (N x W each) and stage gradients k[0..6] = grad C at the stages */
    double *Y, *G, *Yn, *Gn, *Ys, *S, *Se, *ey, *eg, *k[7];
    double *yb, *gb, *hc, *B, *B2; /* per-draw scratch */
    nh_moments *m;                 /* nb per-draw moments */
    nh_predict_diag *diag;
} ode_ws;

/* Gr = grad C(Yin) for every stacked draw (gathered to N x nout when the
 * draws are interleaved, since nh_loss_eval wants one contiguous sample). */
static nh_status ode_grad(ode_ws *s, const double *Yin, double *Gr) {
    size_t n = s->n, nout = s->nout, w = s->w;
    if (s->diag) s->diag->ode_evals++;
    if (s->nb == 1) return nh_loss_eval(s->loss, Yin, s->T, n, nout, NULL, Gr, NULL);
    for (size_t b = 0; b < s->nb; b++) {
        for (size_t i = 0; i < n; i++) memcpy(s->yb + i * nout, Yin + i * w + b * nout, nout * sizeof(double));
        NH_TRY(nh_loss_eval(s->loss, s->yb, s->T, n, nout, NULL, s->gb, NULL));
        for (size_t i = 0; i < n; i++) memcpy(Gr + i * w + b * nout, s->gb + i * nout, nout * sizeof(double));
    }
    return NH_OK;
}

/* Moments of every draw at the current state (k[0] = grad C(Y), FSAL). */
static nh_status ode_moments(ode_ws *s) {
    size_t n = s->n, nout = s->nout, w = s->w;
    const double *gr = s->k[0];
    gemm_nn(n, w, n, 1.0, s->Ups, gr, 0.0, s->S); /* Upsilon gradC */
    for (size_t b = 0; b < s->nb; b++) {
        nh_moments *m = &s->m[b];
        double a1 = 0, a2 = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < nout; k++) {
                size_t c = i * w + b * nout + k;
                a1 += s->G[c] * gr[c];
                a2 += gr[c] * s->S[c];
            }
        m->tr_s[0] = a1; /* Tr S = G^T grad C */
        m->tr_s[1] = a2; /* Tr S^2 = grad C^T Upsilon~ grad C */
        for (size_t i = 0; i < n; i++) memcpy(s->yb + i * nout, s->Y + i * w + b * nout, nout * sizeof(double));
        NH_TRY(nh_loss_eval(s->loss, s->yb, s->T, n, nout, NULL, NULL, s->hc));
        for (int k = 0; k < 4; k++) m->tr_i[k] = 0.0;
        if (s->loss == NH_LOSS_CE) {
            /* HC couples the classes of one sample: (HC Theta~)_{ik,jl} = HC_i[k][l] Theta_ij */
            size_t q = n * nout;
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < nout; k++)
                    for (size_t j = 0; j < n; j++)
                        for (size_t l = 0; l < nout; l++)
                            s->B[(i * nout + k) * q + j * nout + l] = s->hc[(i * nout + k) * nout + l] * s->Th[i * n + j];
            trace_powers_gen(q, s->B, s->B2, m->tr_i);
        } else {
            /* HC diagonal: per output column, Tr (D Theta)^k = Tr (D^1/2 Theta D^1/2)^k */
            for (size_t k = 0; k < nout; k++) {
                for (size_t i = 0; i < n; i++) s->yb[i] = sqrt(fmax(s->hc[(i * nout + k) * nout + k], 0.0));
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < n; j++) s->B[i * n + j] = s->yb[i] * s->Th[i * n + j] * s->yb[j];
                double tr[4];
                trace_powers_sym(n, s->B, s->B2, tr);
                for (int p = 0; p < 4; p++) m->tr_i[p] += tr[p];
            }
        }
        moments_finish(m);
    }
    return NH_OK;
}

/* Max over components of |err| / (atol + rtol max(|old|, |new|)); INFINITY
 * for a non-finite component, so such steps are rejected. */
static double err_norm(size_t len, const double *e, const double *old, const double *nw, double rtol, double atol) {
    double r = 0;
    for (size_t i = 0; i < len; i++) {
        double sc = atol + rtol * fmax(fabs(old[i]), fabs(nw[i]));
        double v = fabs(e[i]) / sc;
        if (!(v <= DBL_MAX) || !isfinite(nw[i])) return INFINITY;
        if (v > r) r = v;
    }
    return r;
}

/* One Dormand-Prince step of size h from (Y, G), k[0] = grad C(Y).  Since the
 * right-hand side -Theta grad C(Y), -Lambda grad C(Y) depends on Y only, each
 * stage is Y - h Theta (sum_l a_jl k_l): one gemm per stage. */
static nh_status dp_step(ode_ws *s, double h, const nh_predict_opts *o, double *err) {
    size_t n = s->n, w = s->w, len = n * w;
    for (int j = 1; j < 7; j++) {
        memset(s->S, 0, len * sizeof *s->S);
        for (int l = 0; l < j; l++) {
            double a = dp_a[j][l];
            if (a != 0.0) cblas_daxpy((int)len, a, s->k[l], 1, s->S, 1);
        }
        double *dst = j == 6 ? s->Yn : s->Ys;
        memcpy(dst, s->Y, len * sizeof *dst);
        gemm_nn(n, w, n, -h, s->Th, s->S, 1.0, dst);
        if (j == 6) { /* S = sum b_l k_l: G_new = G - h Lambda S */
            memcpy(s->Gn, s->G, len * sizeof *s->Gn);
            gemm_nn(n, w, n, -h, s->Lam, s->S, 1.0, s->Gn);
        }
        NH_TRY(ode_grad(s, dst, s->k[j]));
    }
    memset(s->Se, 0, len * sizeof *s->Se);
    for (int l = 0; l < 7; l++)
        if (dp_e[l] != 0.0) cblas_daxpy((int)len, dp_e[l], s->k[l], 1, s->Se, 1);
    gemm_nn(n, w, n, -h, s->Th, s->Se, 0.0, s->ey);
    gemm_nn(n, w, n, -h, s->Lam, s->Se, 0.0, s->eg);
    double e1 = err_norm(len, s->ey, s->Y, s->Yn, o->rtol, o->atol);
    double e2 = err_norm(len, s->eg, s->G, s->Gn, o->rtol, o->atol);
    *err = fmax(e1, e2);
    return NH_OK;
}

/* Initial step (Hairer, Norsett & Wanner, Sec. II.4) in the max norm. */
static nh_status dp_h0(ode_ws *s, const nh_predict_opts *o, double span, double *h) {
    size_t n = s->n, w = s->w, len = n * w;
    if (o->h0 > 0) { *h = fmin(o->h0, span); return NH_OK; }
    double *fy = s->ey, *fg = s->eg;
    gemm_nn(n, w, n, -1.0, s->Th, s->k[0], 0.0, fy);
    gemm_nn(n, w, n, -1.0, s->Lam, s->k[0], 0.0, fg);
    double d0 = 0, d1 = 0;
    for (size_t i = 0; i < len; i++) {
        double sy = o->atol + o->rtol * fabs(s->Y[i]), sg = o->atol + o->rtol * fabs(s->G[i]);
        d0 = fmax(d0, fmax(fabs(s->Y[i]) / sy, fabs(s->G[i]) / sg));
        d1 = fmax(d1, fmax(fabs(fy[i]) / sy, fabs(fg[i]) / sg));
    }
    double hh = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    hh = fmin(hh, span);
    for (size_t i = 0; i < len; i++) s->Ys[i] = s->Y[i] + hh * fy[i];
    NH_TRY(ode_grad(s, s->Ys, s->k[1]));
    for (size_t i = 0; i < len; i++) s->Se[i] = s->k[1][i] - s->k[0][i];
    gemm_nn(n, w, n, -1.0, s->Th, s->Se, 0.0, fy); /* f(y1) - f(y0) */
    gemm_nn(n, w, n, -1.0, s->Lam, s->Se, 0.0, fg);
    double d2 = 0;
    for (size_t i = 0; i < len; i++) {
        double sy = o->atol + o->rtol * fabs(s->Y[i]), sg = o->atol + o->rtol * fabs(s->G[i]);
        d2 = fmax(d2, fmax(fabs(fy[i]) / sy, fabs(fg[i]) / sg) / hh);
    }
    double dm = fmax(d1, d2);
    double h1 = (!(dm > 1e-15)) ? fmax(1e-6, hh * 1e-3) : pow(0.01 / dm, 0.2);
    double hn = fmin(100 * hh, h1);
    if (!(hn > 0) || !isfinite(hn)) hn = hh; /* d2 overflowed: keep the first guess */
    *h = fmin(hn, span);
    return NH_OK;
}

/* Per-time output of an integration. */
typedef struct sink { double *Y, *G; nh_moments *mom; acc *acc; } sink;

static nh_status sink_record(ode_ws *s, sink *k, size_t it) {
    size_t nw = s->n * s->w;
    if (k->Y) memcpy(k->Y + it * nw, s->Y, nw * sizeof(double));
    if (k->G) memcpy(k->G + it * nw, s->G, nw * sizeof(double));
    if (!k->mom && !k->acc) return NH_OK;
    NH_TRY(ode_moments(s));
    if (k->mom) k->mom[it] = s->m[0];
    if (k->acc)
        for (size_t b = 0; b < s->nb; b++) acc_add(&k->acc[it], &s->m[b]);
    return NH_OK;
}

/* Integrate from (s->Y, s->G) at t = 0 through every t[it], landing exactly
 * on each (the step is shortened, or stretched by <= 1 %, to hit it). */
static nh_status ode_run(ode_ws *s, size_t nt, const double *t, const nh_predict_opts *o, sink *out) {
    static const char *fn = "nh_predict_ode";
    size_t len = s->n * s->w, it = 0, steps = 0;
    NH_TRY(ode_grad(s, s->Y, s->k[0]));
    if (nh__count_nonfinite(s->k[0], len, NULL))
        return nh__fail(NH_ENUMERIC, fn, "non-finite loss gradient at t = 0");
    double tc = 0.0;
    while (it < nt && t[it] == 0.0) NH_TRY(sink_record(s, out, it++));
    if (it == nt) return NH_OK;
    double h;
    NH_TRY(dp_h0(s, o, t[nt - 1], &h));
    int rejected_last = 0;
    while (it < nt) {
        double target = t[it], hs = h;
        int hit = 0;
        if (tc + 1.01 * h >= target) { hs = target - tc; hit = 1; }
        if (!(hs > 16 * DBL_EPSILON * fmax(fabs(tc), fabs(target))))
            return nh__fail(NH_ENUMERIC, fn, "step size underflow (h = %g) at t = %.17g before reaching %g", hs, tc,
                            target);
        if (++steps > o->max_steps)
            return nh__fail(NH_EMAXITER, fn, "more than %zu steps at t = %.17g (target %g)", o->max_steps, tc, target);
        double err;
        NH_TRY(dp_step(s, hs, o, &err));
        double fac;
        if (err <= 1.0) {
            tc = hit ? target : tc + hs;
            double *p;
            p = s->Y; s->Y = s->Yn; s->Yn = p;
            p = s->G; s->G = s->Gn; s->Gn = p;
            p = s->k[0]; s->k[0] = s->k[6]; s->k[6] = p; /* FSAL */
            if (s->diag) s->diag->ode_steps++;
            fac = err > 0 ? fmin(5.0, fmax(0.2, 0.9 * pow(err, -0.2))) : 5.0;
            if (rejected_last) fac = fmin(fac, 1.0);
            rejected_last = 0;
            double hn = hs * fac;
            h = (hit && hs < h) ? fmax(h, hn) : hn; /* a shortened last step says little about h */
            if (hit) NH_TRY(sink_record(s, out, it++));
        } else {
            if (s->diag) s->diag->ode_rejected++;
            fac = isfinite(err) ? fmax(0.2, 0.9 * pow(err, -0.2)) : 0.1;
            h = hs * fac;
            rejected_last = 1;
        }
    }
    return NH_OK;
}

static void ode_plan(plan *p, size_t n, size_t nout, size_t nb, nh_loss loss) {
    size_t w = nb * nout;
    plan_add(p, 16 * n, w);
    plan_add(p, 2 * n, nout);
    plan_add(p, n * nout, nout);
    size_t q = loss == NH_LOSS_CE ? n * nout : n;
    plan_add(p, 2 * q, q);
    plan_add(p, nb, sizeof(nh_moments) / sizeof(double) + 1);
}
static void ode_carve(ode_ws *s, double **cur) {
    size_t n = s->n, w = s->w, nout = s->nout;
    s->Y = carve(cur, n, w); s->G = carve(cur, n, w); s->Yn = carve(cur, n, w); s->Gn = carve(cur, n, w);
    s->Ys = carve(cur, n, w); s->S = carve(cur, n, w); s->Se = carve(cur, n, w); s->ey = carve(cur, n, w);
    s->eg = carve(cur, n, w);
    for (int j = 0; j < 7; j++) s->k[j] = carve(cur, n, w);
    s->yb = carve(cur, n, nout); s->gb = carve(cur, n, nout); s->hc = carve(cur, n * nout, nout);
    size_t q = s->loss == NH_LOSS_CE ? n * nout : n;
    s->B = carve(cur, q, q); s->B2 = carve(cur, q, q);
    s->m = (nh_moments *)(void *)carve(cur, s->nb, sizeof(nh_moments) / sizeof(double) + 1);
}

static nh_status ode_checks(const nh_grams *g, nh_loss loss, size_t nout, const double *T, size_t nt,
                            const double *t, const nh_predict_opts *o, const char *fn) {
    NH_TRY(check_dims(g, nout, fn));
    if ((int)loss < 0 || loss >= NH_LOSS_COUNT) return nh__fail(NH_EINVAL, fn, "unknown loss %d", (int)loss);
    size_t n = g->n;
    NH_TRY(check_gram(g->theta, n, "theta", 1, o->psd_tol, fn));
    NH_TRY(check_gram(g->lambda, n, "lambda", 0, o->psd_tol, fn));
    NH_TRY(check_gram(g->upsilon, n, "upsilon", 0, o->psd_tol, fn));
    NH_TRY(check_times(nt, t, fn));
    NH_TRY(nh_loss_check_targets(loss, T, n, nout));
    if (loss == NH_LOSS_CE) {
        int ok = 1;
        size_t q = n * nout;
        NH_TRY(nh__check_bytes(ok, nh__mul(nh__mul(q, q, &ok), 2 * sizeof(double), &ok), fn,
                               "softmax HC Theta~ square"));
    }
    return NH_OK;
}

nh_status nh_predict_ode(const nh_grams *g, nh_loss loss, size_t nout, const double *T, const double *Y0,
                         const double *G0, size_t nt, const double *t, const nh_predict_opts *opts, double *Y,
                         double *G, nh_moments *mom, nh_predict_diag *diag) {
    static const char *fn = "nh_predict_ode";
    if (diag) memset(diag, 0, sizeof *diag);
    nh_predict_opts o;
    NH_TRY(opts_get(opts, &o, fn));
    NH_TRY(ode_checks(g, loss, nout, T, nt, t, &o, fn));
    size_t n = g->n;
    NH_TRY(check_array(Y0, n * nout, "Y0", fn));
    NH_TRY(check_array(G0, n * nout, "G0", fn));
    plan p = {0, 1};
    ode_plan(&p, n, nout, 1, loss);
    double *mem = NULL, *cur;
    NH_TRY(plan_alloc(&p, &mem, fn, "ODE workspace"));
    cur = mem;
    ode_ws s = {.n = n, .nout = nout, .nb = 1, .w = nout, .loss = loss, .T = T, .Th = g->theta,
                .Lam = g->lambda, .Ups = g->upsilon, .diag = diag};
    ode_carve(&s, &cur);
    memcpy(s.Y, Y0, n * nout * sizeof(double));
    memcpy(s.G, G0, n * nout * sizeof(double));
    sink out = {Y, G, mom, NULL};
    nh_status st = ode_run(&s, nt, t, &o, &out);
    free(mem);
    return st;
}

/* ------------------------------------------------------ initial draws */

/* F (2N x 2N) with F F^T = [[Sigma, Phi^T], [Phi, Xi]]: rows 0..N-1 give
 * Y(0), rows N..2N-1 give G(0), so E[G_i Y_j] = C[N+i][j] = Phi_ij. */
static nh_status draw_factor(const nh_grams *g, double tol, double *F, double *w, nh_predict_diag *diag,
                             const char *fn) {
    size_t n = g->n, m = 2 * n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            F[i * m + j] = 0.5 * (g->sigma[i * n + j] + g->sigma[j * n + i]);
            F[i * m + n + j] = g->phi[j * n + i];
            F[(n + i) * m + j] = g->phi[i * n + j];
            F[(n + i) * m + n + j] = 0.5 * (g->xi[i * n + j] + g->xi[j * n + i]);
        }
    size_t c = 0;
    double wmin = 0;
    NH_TRY(eigh_psd(m, F, w, tol, "covariance [[sigma, phi^T], [phi, xi]]", &c, &wmin, NULL, fn));
    if (diag) { diag->cov_clipped = c; diag->cov_eig_min = wmin; }
    for (size_t a = 0; a < m; a++) w[a] = sqrt(w[a]);
    for (size_t i = 0; i < m; i++)
        for (size_t a = 0; a < m; a++) F[i * m + a] *= w[a];
    return NH_OK;
}

/* Draws s0..s0+nb-1 of the documented stream into Y0, G0 laid out N x W
 * (column b*nout + k); z is 2N scratch, x 2N scratch. */
static void draw_batch(const double *F, size_t n, size_t nout, size_t nb, nh_rng *r, double *z, double *x,
                       double *Y0, double *G0) {
    size_t m = 2 * n, w = nb * nout;
    for (size_t b = 0; b < nb; b++)
        for (size_t k = 0; k < nout; k++) {
            nh_rng_fill_normal(r, m, z);
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)m, 1.0, F, (int)m, z, 1, 0.0, x, 1);
            for (size_t i = 0; i < n; i++) {
                Y0[i * w + b * nout + k] = x[i];
                G0[i * w + b * nout + k] = x[n + i];
            }
        }
}

static nh_status draw_checks(const nh_grams *g, size_t nout, const nh_predict_opts *o, const char *fn) {
    NH_TRY(check_dims(g, nout, fn));
    size_t n = g->n;
    if (!nh__fits_int(2 * n)) return nh__fail(NH_ETOOLARGE, fn, "2N = %zu exceeds the BLAS index range", 2 * n);
    NH_TRY(check_gram(g->phi, n, "phi", 0, o->psd_tol, fn));
    NH_TRY(check_gram(g->xi, n, "xi", 1, o->psd_tol, fn));
    NH_TRY(check_gram(g->sigma, n, "sigma", 1, o->psd_tol, fn));
    return NH_OK;
}

nh_status nh_predict_draw_init(const nh_grams *g, size_t nout, size_t m, const nh_predict_opts *opts, double *Y0,
                               double *G0, nh_predict_diag *diag) {
    static const char *fn = "nh_predict_draw_init";
    if (diag) memset(diag, 0, sizeof *diag);
    nh_predict_opts o;
    NH_TRY(opts_get(opts, &o, fn));
    NH_TRY(draw_checks(g, nout, &o, fn));
    if (m == 0) NH_FAIL(NH_EINVAL, "m = 0 draws");
    if (!Y0 || !G0) NH_FAIL(NH_EINVAL, "NULL output array");
    size_t n = g->n;
    plan p = {0, 1};
    plan_add(&p, 2 * n, 2 * n);
    plan_add(&p, 6, n);
    double *mem = NULL, *cur;
    NH_TRY(plan_alloc(&p, &mem, fn, "covariance factor"));
    cur = mem;
    double *F = carve(&cur, 2 * n, 2 * n), *w = carve(&cur, 2 * n, 1), *z = carve(&cur, 2 * n, 1),
           *x = carve(&cur, 2 * n, 1);
    nh_status st = draw_factor(g, o.psd_tol, F, w, diag, fn);
    if (st == NH_OK) {
        nh_rng r;
        nh_rng_seed(&r, o.seed);
        for (size_t s = 0; s < m; s++)
            draw_batch(F, n, nout, 1, &r, z, x, Y0 + s * n * nout, G0 + s * n * nout);
    }
    free(mem);
    return st;
}

/* Shared state of nh_predict_sample's two engines. */
typedef struct sample_ws {
    const nh_grams *g;
    size_t n, nout, nb, w, M, nt;
    const double *T, *t;
    const nh_predict_opts *o;
    double *F, *z, *x, *Y0, *G0;
    nh_rng *r;
    acc *ac;
    nh_predict_diag *diag;
} sample_ws;

/* MSE: one eigendecomposition of Theta, then the closed form per batch of
 * draws at every time. */
static nh_status sample_mse(sample_ws *q, double **cur, const char *fn) {
    const size_t n = q->n, nout = q->nout, nb = q->nb;
    mse_ws s = {.n = n, .nout = nout, .nb = nb, .w = q->w, .Lam = q->g->lambda, .Ups = q->g->upsilon,
                .Ystar = q->T, .G0 = q->G0};
    double *V = carve(cur, n, n), *lam = carve(cur, n, 1);
    mse_ws_carve(&s, cur);
    double *trs = carve(cur, nb, 1), *trs2 = carve(cur, nb, 1);
    s.V = V; s.lam = lam;
    NH_TRY(theta_eig(q->g, q->o->psd_tol, V, lam, q->diag, fn));
    nh_moments m;
    mse_tr_i(n, nout, lam, m.tr_i);
    for (size_t done = 0; done < q->M; done += s.nb) {
        s.nb = q->M - done < nb ? q->M - done : nb;
        s.w = s.nb * nout; /* the last batch may be narrower */
        draw_batch(q->F, n, nout, s.nb, q->r, q->z, q->x, q->Y0, q->G0);
        mse_setup(&s, q->Y0);
        for (size_t it = 0; it < q->nt; it++) {
            mse_at(&s, q->t[it], trs, trs2);
            for (size_t b = 0; b < s.nb; b++) {
                m.tr_s[0] = trs[b];
                m.tr_s[1] = trs2[b];
                moments_finish(&m);
                acc_add(&q->ac[it], &m);
            }
        }
    }
    return NH_OK;
}

/* BCE, CE: the ODE per batch of draws. */
static nh_status sample_ode(sample_ws *q, nh_loss loss, double **cur) {
    const nh_grams *g = q->g;
    const size_t n = q->n, nb = q->nb;
    ode_ws s = {.n = n, .nout = q->nout, .nb = nb, .w = q->w, .loss = loss, .T = q->T, .Th = g->theta,
                .Lam = g->lambda, .Ups = g->upsilon, .diag = q->diag};
    ode_carve(&s, cur);
    sink out = {NULL, NULL, NULL, q->ac};
    for (size_t done = 0; done < q->M; done += s.nb) {
        s.nb = q->M - done < nb ? q->M - done : nb;
        s.w = s.nb * q->nout;
        draw_batch(q->F, n, q->nout, s.nb, q->r, q->z, q->x, q->Y0, q->G0);
        memcpy(s.Y, q->Y0, n * s.w * sizeof(double));
        memcpy(s.G, q->G0, n * s.w * sizeof(double));
        NH_TRY(ode_run(&s, q->nt, q->t, q->o, &out));
    }
    return NH_OK;
}

nh_status nh_predict_sample(const nh_grams *g, nh_loss loss, size_t nout, const double *T, size_t nt,
                            const double *t, const nh_predict_opts *opts, nh_moments *mean, nh_moments *se,
                            nh_predict_diag *diag) {
    static const char *fn = "nh_predict_sample";
    if (diag) memset(diag, 0, sizeof *diag);
    nh_predict_opts o;
    NH_TRY(opts_get(opts, &o, fn));
    NH_TRY(ode_checks(g, loss, nout, T, nt, t, &o, fn));
    NH_TRY(draw_checks(g, nout, &o, fn));
    if (o.nsamples < 2) NH_FAIL(NH_EINVAL, "nsamples must be >= 2 for a standard error (got %zu)", o.nsamples);
    if (!mean) NH_FAIL(NH_EINVAL, "mean is NULL");
    size_t n = g->n, M = o.nsamples, nb = o.batch < M ? o.batch : M;
    int ok = 1;
    if (!nh__fits_int(nh__mul(nh__mul(n, nb, &ok), nout, &ok)) || !ok)
        NH_FAIL(NH_ETOOLARGE, "N * batch * nout exceeds the BLAS index range");
    size_t w = nb * nout;

    plan p = {0, 1};
    plan_add(&p, 2 * n, 2 * n);
    plan_add(&p, 6, n);
    plan_add(&p, 2 * n, w); /* Y0, G0 of a batch */
    plan_add(&p, nt, sizeof(acc) / sizeof(double) + 1);
    if (loss == NH_LOSS_MSE) {
        plan_add(&p, n, n + 1);
        mse_ws_plan(&p, n, w);
        plan_add(&p, 2, nb);
    } else {
        ode_plan(&p, n, nout, nb, loss);
    }
    double *mem = NULL, *cur;
    NH_TRY(plan_alloc(&p, &mem, fn, "sampling workspace"));
    cur = mem;
    double *F = carve(&cur, 2 * n, 2 * n), *ew = carve(&cur, 2 * n, 1), *z = carve(&cur, 2 * n, 1),
           *x = carve(&cur, 2 * n, 1);
    double *Y0 = carve(&cur, n, w), *G0 = carve(&cur, n, w);
    acc *ac = (acc *)(void *)carve(&cur, nt, sizeof(acc) / sizeof(double) + 1);
    memset(ac, 0, nt * sizeof *ac);
    nh_status st = draw_factor(g, o.psd_tol, F, ew, diag, fn);
    nh_rng r;
    nh_rng_seed(&r, o.seed);
    sample_ws sw = {.g = g, .n = n, .nout = nout, .nb = nb, .w = w, .M = M, .T = T, .nt = nt, .t = t,
                    .o = &o, .F = F, .z = z, .x = x, .Y0 = Y0, .G0 = G0, .r = &r, .ac = ac, .diag = diag};
    if (st == NH_OK && loss == NH_LOSS_MSE) st = sample_mse(&sw, &cur, fn);
    else if (st == NH_OK) st = sample_ode(&sw, loss, &cur);
    if (st == NH_OK)
        for (size_t it = 0; it < nt; it++) acc_out(&ac[it], &mean[it], se ? &se[it] : NULL);
    free(mem);
    return st;
}

/* ---------------------------------------------------- spectrum, mean field */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

nh_status nh_predict_spectrum_i(const nh_grams *g, nh_loss loss, size_t nout, const double *T, const double *Y,
                                double *eig) {
    static const char *fn = "nh_predict_spectrum_i";
    NH_TRY(check_dims(g, nout, fn));
    if ((int)loss < 0 || loss >= NH_LOSS_COUNT) NH_FAIL(NH_EINVAL, "unknown loss %d", (int)loss);
    size_t n = g->n, q = loss == NH_LOSS_CE ? n * nout : n;
    NH_TRY(check_gram(g->theta, n, "theta", 1, nh_predict_opts_default().psd_tol, fn));
    NH_TRY(nh_loss_check_targets(loss, T, n, nout));
    NH_TRY(check_array(Y, n * nout, "Y", fn));
    if (!eig) NH_FAIL(NH_EINVAL, "eig is NULL");
    plan p = {0, 1};
    plan_add(&p, q, q);
    plan_add(&p, n * nout, nout);
    plan_add(&p, n * nout, nout);
    plan_add(&p, 2 * nout, 1);
    double *mem = NULL, *cur;
    NH_TRY(plan_alloc(&p, &mem, fn, "spectrum workspace"));
    cur = mem;
    double *B = carve(&cur, q, q), *hc = carve(&cur, n * nout, nout), *R = carve(&cur, n * nout, nout),
           *w = carve(&cur, 2 * nout, 1);
    nh_status st = nh_loss_eval(loss, Y, T, n, nout, NULL, NULL, hc);
    if (st == NH_OK && loss != NH_LOSS_CE) {
        /* HC diagonal: Theta~ and HC split into nout N x N problems */
        for (size_t k = 0; k < nout && st == NH_OK; k++) {
            for (size_t i = 0; i < n; i++) R[i] = sqrt(fmax(hc[(i * nout + k) * nout + k], 0.0));
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++)
                    B[i * n + j] = R[i] * 0.5 * (g->theta[i * n + j] + g->theta[j * n + i]) * R[j];
            lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)n, B, (lapack_int)n, eig + k * n);
            if (info != 0) st = nh__fail(NH_ELAPACK, fn, "dsyevd failed (info %d)", (int)info);
        }
        if (st == NH_OK) qsort(eig, n * nout, sizeof *eig, cmp_double);
    } else if (st == NH_OK) {
        /* R_i = HC_i^{1/2} (PSD n_L x n_L, clipped), then
         * (HC^1/2 Theta~ HC^1/2)_{ik,jl} = Theta_ij (R_i R_j)_kl */
        for (size_t i = 0; i < n && st == NH_OK; i++) {
            double *Vi = R + i * nout * nout;
            memcpy(Vi, hc + i * nout * nout, nout * nout * sizeof *Vi);
            lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)nout, Vi, (lapack_int)nout, w);
            if (info != 0) { st = nh__fail(NH_ELAPACK, fn, "dsyevd failed (info %d)", (int)info); break; }
            double *tmp = B; /* scratch: nout x nout */
            for (size_t a = 0; a < nout; a++) w[a] = sqrt(fmax(w[a], 0.0));
            for (size_t k = 0; k < nout; k++)
                for (size_t l = 0; l < nout; l++) {
                    double v = 0;
                    for (size_t a = 0; a < nout; a++) v += Vi[k * nout + a] * w[a] * Vi[l * nout + a];
                    tmp[k * nout + l] = v;
                }
            memcpy(Vi, tmp, nout * nout * sizeof *Vi);
        }
        if (st == NH_OK) {
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                    double th = 0.5 * (g->theta[i * n + j] + g->theta[j * n + i]);
                    const double *Ri = R + i * nout * nout, *Rj = R + j * nout * nout;
                    for (size_t k = 0; k < nout; k++)
                        for (size_t l = 0; l < nout; l++) {
                            double v = 0;
                            for (size_t r = 0; r < nout; r++) v += Ri[k * nout + r] * Rj[r * nout + l];
                            B[(i * nout + k) * q + j * nout + l] = th * v;
                        }
                }
            lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)q, B, (lapack_int)q, eig);
            if (info != 0) st = nh__fail(NH_ELAPACK, fn, "dsyevd failed (info %d)", (int)info);
        }
    }
    free(mem);
    return st;
}

nh_status nh_predict_meanfield(const nh_grams *g, nh_loss loss, size_t nout, const double *T, const double *Y,
                               double *var_tr_h, double *lim_tr_h2) {
    static const char *fn = "nh_predict_meanfield";
    NH_TRY(check_dims(g, nout, fn));
    if ((int)loss < 0 || loss >= NH_LOSS_COUNT) NH_FAIL(NH_EINVAL, "unknown loss %d", (int)loss);
    size_t n = g->n;
    double tol = nh_predict_opts_default().psd_tol;
    NH_TRY(check_gram(g->xi, n, "xi", 1, tol, fn));
    NH_TRY(check_gram(g->upsilon, n, "upsilon", 0, tol, fn));
    NH_TRY(nh_loss_check_targets(loss, T, n, nout));
    if (Y) NH_TRY(check_array(Y, n * nout, "Y", fn));
    plan p = {0, 1};
    plan_add(&p, 3 * n, nout);
    double *mem = NULL, *cur;
    NH_TRY(plan_alloc(&p, &mem, fn, "mean-field workspace"));
    cur = mem;
    double *Yz = carve(&cur, n, nout), *gc = carve(&cur, n, nout), *tmp = carve(&cur, n, nout);
    if (!Y) memset(Yz, 0, n * nout * sizeof *Yz);
    nh_status st = nh_loss_eval(loss, Y ? Y : Yz, T, n, nout, NULL, gc, NULL);
    if (st == NH_OK) {
        double v = 0, u = 0;
        gemm_nn(n, nout, n, 1.0, g->xi, gc, 0.0, tmp);
        for (size_t i = 0; i < n * nout; i++) v += gc[i] * tmp[i];
        gemm_nn(n, nout, n, 1.0, g->upsilon, gc, 0.0, tmp);
        for (size_t i = 0; i < n * nout; i++) u += gc[i] * tmp[i];
        if (var_tr_h) *var_tr_h = v;
        if (lim_tr_h2) *lim_tr_h2 = u;
    }
    free(mem);
    return st;
}
