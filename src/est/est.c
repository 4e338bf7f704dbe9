/* est.c -- the spectral measurement toolkit (issue "Spectra at finite
 * width"): trace estimators of Tr(A^k) with standard errors (Hutchinson,
 * Hutch++, exact, control variates from the NTK and G), the exact
 * orthogonality measure ||I S||_F, thick-restart Lanczos eigenpairs,
 * stochastic Lanczos quadrature, Rayleigh quotients and loss-surface
 * slices.  Everything is matrix-free: A in {H, I, S} is only applied through
 * the exact products of curv.c.  Declarations and the documentation of every
 * formula: include/ntkhess.h. */
#include "core/internal.h"
#include "core/blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EST_GOLDEN 0x9e3779b97f4a7c15ULL
/* Lanczos breakdown: the new residual is below this fraction of the largest
 * |A v| seen.  With full reorthogonalization an invariant subspace leaves
 * only rounding (~eps ||A|| sqrt(j)), far below it; a genuine coupling this
 * small changes the Ritz values by at most 1e-12 ||A||. */
#define EST_BREAK 1e-12
/* Columns per block when the thick restart rotates the basis in place. */
#define EST_CHUNK 2048

/* ------------------------------------------------------------- plumbing */

/* The context's network.  curv.c stores it as the first member of struct
 * nh_curv and exports no accessor yet; a pointer to a structure, suitably
 * converted, points to its first member (C11 6.7.2.1p15).  Replace this by
 * the accessor nh_curv_net() once curv.c provides it (requested). */
static const nh_net *est_net(const nh_curv *c) { return nh_curv_net(c); }

static nh_status est_nparams(const nh_curv *c, const char *func, size_t *P) {
    size_t p = nh_curv_dim(c); /* P_B with a parameter selection */
    if (!nh__fits_int(p)) return nh__fail(NH_ETOOLARGE, func, "P = %zu exceeds the BLAS integer range", p);
    *P = p;
    return NH_OK;
}

/* *out = nh__malloc(nvec * P doubles), checked against the memory limit. */
static nh_status est_alloc(const char *func, const char *what, size_t nvec, size_t P, double **out) {
    int ok = 1;
    size_t n = nh__mul(nvec, P, &ok);
    *out = NULL;
    nh_status st = nh__check_bytes(ok, nh__mul(n, sizeof(double), &ok), func, what);
    if (st != NH_OK) return st;
    *out = nh__malloc(n * sizeof(double));
    if (!*out) return nh__fail(NH_ENOMEM, func, "cannot allocate %s (%zu doubles)", what, n);
    return NH_OK;
}

static nh_status est_apply(nh_curv *c, nh_op op, const double *v, double *out) {
    switch (op) {
    case NH_OP_H: return nh_curv_hvp(c, v, out);
    case NH_OP_I: return nh_curv_ivp(c, v, out);
    default: return nh_curv_svp(c, v, out);
    }
}

static double est_dot(size_t P, const double *a, const double *b) { return cblas_ddot((int)P, a, 1, b, 1); }
static double est_nrm(size_t P, const double *a) { return cblas_dnrm2((int)P, a, 1); }

/* Rows of U (k x P) orthonormal to within this, entrywise in U U^T - Id:
 * looser than rounding (Lanczos vectors reach ~1e-14) so that vectors saved
 * and reloaded, or orthonormalized in another library, pass; the overlap
 * and the deflated products then err by about as much. */
#define EST_ORTHO_TOL 1e-6

/* NH_EINVAL unless the k rows of U (k x P, finite) are orthonormal. */
static nh_status est_check_orthonormal(size_t k, size_t P, const double *U, const char *what, const char *func) {
    int ok = 1;
    const size_t kP = nh__mul(k, P, &ok);
    if (!ok || !nh__fits_int(k) || !nh__fits_int(P)) return nh__fail(NH_ETOOLARGE, func, "%s: %zu x %zu too large", what, k, P);
    size_t first = 0, bad = nh__count_nonfinite(U, kP, &first);
    if (bad) return nh__fail(NH_ENONFINITE, func, "%s has %zu non-finite entries (first at %zu)", what, bad, first);
    double *G = NULL;
    NH_TRY(est_alloc(func, "the Gram matrix", k, k, &G));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)k, (int)P, 1.0, U, (int)P, 0.0, G, (int)k);
    double worst = 0.0;
    size_t wi = 0, wj = 0;
    for (size_t i = 0; i < k; i++)
        for (size_t j = i; j < k; j++) {
            const double e = fabs(G[i * k + j] - (i == j ? 1.0 : 0.0));
            if (!(e <= worst)) { worst = e; wi = i; wj = j; }
        }
    free(G);
    if (worst > EST_ORTHO_TOL)
        return nh__fail(NH_EINVAL, func, "%s: rows must be orthonormal (|u_%zu . u_%zu - %d| = %.3g > %g)", what, wi, wj,
                        wi == wj, worst, EST_ORTHO_TOL);
    return NH_OK;
}

/* Random vector of stream j (ntkhess.h: seed ^ (golden * (j + 1))). */
static void est_probe(nh_probe kind, uint64_t seed, uint64_t j, size_t P, double *v) {
    nh_rng r;
    nh_rng_seed(&r, seed ^ (EST_GOLDEN * (j + 1)));
    if (kind == NH_PROBE_GAUSSIAN) { nh_rng_fill_normal(&r, P, v); return; }
    for (size_t i = 0; i < P; i += 64) {
        uint64_t b = nh_rng_u64(&r);
        size_t e = P - i < 64 ? P - i : 64;
        for (size_t t = 0; t < e; t++) v[i + t] = ((b >> t) & 1u) ? 1.0 : -1.0;
    }
}

/* The one mean / standard-error rule of ntkhess (include/ntkhess/est.h). */
double nh_se_from_ss(double ss, size_t n) {
    return n > 1 ? sqrt(fmax(ss, 0.0) / (double)(n - 1) / (double)n) : NAN;
}

void nh_mean_se(size_t n, const double *x, size_t stride, double *mean, double *se) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i * stride];
    const double m = n ? s / (double)n : NAN;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) { double d = x[i * stride] - m; ss += d * d; }
    if (mean) *mean = m;
    if (se) *se = nh_se_from_ss(ss, n);
}

/* ------------------------------------------------------ quadratic forms */

/* x^T A^k x for k = 1..kmax from ceil(kmax/2) products; with ctrl (A = H
 * only) x^T (H^k - I^k) x instead, cancellation-free from I x and S x. */
typedef struct est_quad {
    nh_curv *c;
    size_t   P;
    nh_op    op;
    int      kmax, ctrl;
    double  *a1, *a2;                 /* plain: A x, A^2 x            */
    double  *iv, *sv, *hv, *h2, *i2;  /* control                      */
    size_t   nprod;
} est_quad;

static nh_status est_quad_eval(est_quad *q, const double *x, double out[4]) {
    const size_t P = q->P;
    out[0] = out[1] = out[2] = out[3] = 0.0;
    if (!q->ctrl) {
        NH_TRY(est_apply(q->c, q->op, x, q->a1));
        q->nprod++;
        out[0] = est_dot(P, x, q->a1);
        out[1] = est_dot(P, q->a1, q->a1);
        if (q->kmax >= 3) {
            NH_TRY(est_apply(q->c, q->op, q->a1, q->a2));
            q->nprod++;
            out[2] = est_dot(P, q->a1, q->a2);
            out[3] = est_dot(P, q->a2, q->a2);
        }
        return NH_OK;
    }
    double *iv = q->iv, *sv = q->sv, *hv = q->hv, *h2 = q->h2, *i2 = q->i2;
    NH_TRY(nh_curv_isvp(q->c, x, iv, sv));
    q->nprod++;
    for (size_t p = 0; p < P; p++) { hv[p] = iv[p] + sv[p]; h2[p] = hv[p] + iv[p]; }
    out[0] = est_dot(P, x, sv);      /* x^T (H - I) x            */
    out[1] = est_dot(P, sv, h2);     /* |Hx|^2 - |Ix|^2 = Sx.(Hx + Ix) */
    if (q->kmax >= 3) {
        NH_TRY(nh_curv_hvp(q->c, hv, h2));
        NH_TRY(nh_curv_ivp(q->c, iv, i2));
        q->nprod += 2;
        const double a = est_dot(P, sv, h2);
        for (size_t p = 0; p < P; p++) i2[p] = h2[p] - i2[p]; /* d = H^2 x - I^2 x */
        out[2] = a + est_dot(P, iv, i2);                      /* Hx.H^2x - Ix.I^2x */
        out[3] = 2.0 * est_dot(P, i2, h2) - est_dot(P, i2, i2); /* d.(H^2x + I^2x) */
    }
    return NH_OK;
}

/* Exact parts: trI[k-1] = Tr(I^k) (needI), *trS = Tr S = G . dC/dY (needS). */
static nh_status est_exact_parts(nh_curv *c, int kmax, int needI, int needS, double trI[4], double *trS,
                                 const char *func) {
    const nh_net *net = est_net(c);
    const size_t n = nh_curv_nsamples(c), m = nh_net_widths(net)[nh_net_depth(net)];
    int ok = 1;
    const size_t nm = nh__mul(n, m, &ok);
    if (needI) {
        size_t cnt = nh__add(nh__mul(nm, nm, &ok), nh__mul(nm, m, &ok), &ok);
        NH_TRY(nh__check_bytes(ok, nh__mul(cnt, sizeof(double), &ok), func, "the NTK Gram matrix"));
        double *K = nh__malloc(cnt * sizeof *K);
        if (!K) return nh__fail(NH_ENOMEM, func, "cannot allocate the NTK Gram matrix");
        double *HC = K + nm * nm;
        nh_status st = nh_curv_ntk(c, K);
        if (st == NH_OK) {
            nh_curv_hloss(c, HC);
            st = nh_ntk_trace_powers(n, m, K, HC, kmax, trI);
        }
        free(K);
        NH_TRY(st);
    }
    if (needS) {
        double *G = nh__malloc(2 * nm * sizeof *G);
        if (!G) return nh__fail(NH_ENOMEM, func, "out of memory");
        double *E = G + nm;
        nh_status st = nh_curv_G(c, G);
        if (st == NH_OK) {
            nh_curv_dloss(c, E);
            double s = 0.0;
            for (size_t i = 0; i < nm; i++) s += G[i] * E[i];
            *trS = s;
        }
        free(G);
        NH_TRY(st);
    }
    return NH_OK;
}

/* ---------------------------------------------------------------- trace */

nh_trace_opts nh_trace_opts_default(void) {
    nh_trace_opts o;
    o.method = NH_TRACE_HUTCHINSON;
    o.probe = NH_PROBE_RADEMACHER;
    o.nprobes = 32;
    o.sketch = 0;
    o.first_probe = 0;
    o.seed = 0;
    o.control = 0;
    return o;
}

static nh_status est_check_trace_opts(const nh_trace_opts *o, const char *func) {
    if ((int)o->method < 0 || o->method >= NH_TRACE_METHOD_COUNT)
        return nh__fail(NH_EINVAL, func, "unknown trace method %d", (int)o->method);
    if (o->method == NH_TRACE_EXACT) return NH_OK;
    if ((int)o->probe < 0 || o->probe >= NH_PROBE_COUNT)
        return nh__fail(NH_EINVAL, func, "unknown probe distribution %d", (int)o->probe);
    if (o->nprobes < 1) return nh__fail(NH_EINVAL, func, "need at least one probe (got 0)");
    return NH_OK;
}

/* Exact parts of the control variates and which k they settle: base[k-1]
 * and known[k-1]; *ctrl when the probes then estimate H^k - I^k. */
static nh_status est_trace_base(nh_curv *c, nh_op op, int kmax, double base[4], int known[4], int *ctrl,
                                double trI_out[4], const char *func) {
    double trI[4] = {0, 0, 0, 0}, trS = 0.0;
    const int needI = op != NH_OP_S, needS = op != NH_OP_I;
    NH_TRY(est_exact_parts(c, kmax, needI, needS, trI, &trS, func));
    if (trI_out) memcpy(trI_out, trI, sizeof trI);
    for (int k = 0; k < kmax; k++) {
        if (op == NH_OP_I) { base[k] = trI[k]; known[k] = 1; }
        else if (op == NH_OP_S) { if (k == 0) { base[0] = trS; known[0] = 1; } }
        else { base[k] = k == 0 ? trI[0] + trS : trI[k]; known[k] = k == 0; }
    }
    *ctrl = op == NH_OP_H;
    return NH_OK;
}

/* Work arrays of one trace estimate: the probe x and the quadratic-form
 * vectors (work), the Hutch++ sketch Q (s rows) and tau, vals (4 per probe). */
typedef struct est_tr {
    est_quad q;
    double *work, *Q, *vals, *tau;
    size_t M, s;
} est_tr;

static void est_tr_free(est_tr *t) { free(t->work); free(t->Q); free(t->vals); free(t->tau); }

static nh_status est_tr_alloc(est_tr *t, const nh_trace_opts *o, const char *func) {
    const size_t P = t->q.P;
    t->M = o->method == NH_TRACE_EXACT ? P : o->nprobes;
    if (o->method == NH_TRACE_HUTCHPP) { t->s = o->sketch ? o->sketch : t->M; if (t->s > P) t->s = P; }
    if (o->method == NH_TRACE_HUTCHPP && !nh__fits_int(t->s)) return nh__fail(NH_ETOOLARGE, func, "sketch size too large");
    const size_t s = t->s;
    nh_status st = est_alloc(func, "the probe vectors", t->q.ctrl ? 6 : 3, P, &t->work);
    if (st == NH_OK && s) st = est_alloc(func, "the Hutch++ sketch", s, P, &t->Q);
    if (st == NH_OK) st = est_alloc(func, "the quadratic forms", 4, o->method == NH_TRACE_EXACT ? 1 : t->M, &t->vals);
    if (st == NH_OK && s && !(t->tau = nh__malloc((s + 1) * sizeof *t->tau))) st = nh__fail(NH_ENOMEM, func, "out of memory");
    if (st != NH_OK) return st;
    double *w = t->work;
    if (t->q.ctrl) { t->q.iv = w + P; t->q.sv = w + 2 * P; t->q.hv = w + 3 * P; t->q.h2 = w + 4 * P; t->q.i2 = w + 5 * P; }
    else { t->q.a1 = w + P; t->q.a2 = w + 2 * P; }
    return NH_OK;
}

/* Exact: part += the quadratic forms of the P unit vectors. */
static nh_status est_tr_exact(est_tr *t, double part[4]) {
    const size_t P = t->q.P;
    double *x = t->work, f[4];
    nh_status st = NH_OK;
    memset(x, 0, P * sizeof *x);
    for (size_t p = 0; p < P && st == NH_OK; p++) {
        x[p] = 1.0;
        st = est_quad_eval(&t->q, x, f);
        x[p] = 0.0;
        for (int k = 0; k < 4; k++) part[k] += f[k];
    }
    return st;
}

/* Hutch++: sketch Y = A W (rows), Q = orth(Y) by Householder QR, part +=
 * the quadratic forms of Q's rows.  The row-major s x P array is the
 * column-major P x s matrix. */
static nh_status est_tr_sketch(est_tr *t, const nh_trace_opts *o, double part[4], const char *func) {
    const size_t P = t->q.P, s = t->s;
    double *x = t->work, *Q = t->Q, f[4];
    for (size_t i = 0; i < s; i++) {
        est_probe(o->probe, o->seed, i, P, x);
        const nh_status st = est_apply(t->q.c, t->q.op, x, Q + i * P);
        t->q.nprod++;
        if (st != NH_OK) return st;
    }
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)P, (lapack_int)s, Q, (lapack_int)P, t->tau);
    if (info == 0)
        info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)P, (lapack_int)s, (lapack_int)s, Q, (lapack_int)P, t->tau);
    if (info != 0) return nh__fail(NH_ELAPACK, func, "QR of the Hutch++ sketch failed (info = %d)", (int)info);
    for (size_t i = 0; i < s; i++) {
        nh_status st = est_quad_eval(&t->q, Q + i * P, f);
        for (int k = 0; k < 4; k++) part[k] += f[k];
        if (st != NH_OK) return st;
    }
    return NH_OK;
}

/* The M probes (deflated by Q for Hutch++) from stream off on: their mean
 * and standard error per k. */
static nh_status est_tr_probes(est_tr *t, const nh_trace_opts *o, size_t off, double mean[4], double se[4]) {
    const size_t P = t->q.P, s = t->s;
    double *x = t->work;
    for (size_t j = 0; j < t->M; j++) {
        est_probe(o->probe, o->seed, off + j, P, x);
        if (s) { /* x -= Q^T (Q x) */
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)s, (int)P, 1.0, t->Q, (int)P, x, 1, 0.0, t->tau, 1);
            cblas_dgemv(CblasRowMajor, CblasTrans, (int)s, (int)P, -1.0, t->Q, (int)P, t->tau, 1, 1.0, x, 1);
        }
        NH_TRY(est_quad_eval(&t->q, x, t->vals + 4 * j));
    }
    for (int k = 0; k < t->q.kmax; k++) nh_mean_se(t->M, t->vals + k, 4, &mean[k], &se[k]);
    return NH_OK;
}

static nh_status est_check_trace_args(const nh_curv *c, nh_op op, int kmax, const nh_trace_opts *o, size_t *P,
                                      const char *func) {
    if ((int)op < 0 || op >= NH_OP_COUNT) return nh__fail(NH_EINVAL, func, "unknown operator %d", (int)op);
    if (kmax < 1 || kmax > 4) return nh__fail(NH_EINVAL, func, "kmax must be in 1..4 (got %d)", kmax);
    NH_TRY(est_check_trace_opts(o, func));
    return est_nparams(c, func, P);
}

/* nh_curv_trace; trI (NULL or 4): the exact Tr(I^k) when the control
 * variate built it (then *haveI = 1). */
static nh_status est_trace(nh_curv *c, nh_op op, int kmax, const nh_trace_opts *opts, nh_trace_result *res,
                           double *trI, int *haveI, const char *func) {
    if (!c || !res) return nh__fail(NH_EINVAL, func, "NULL argument");
    memset(res, 0, sizeof *res);
    const nh_trace_opts o = opts ? *opts : nh_trace_opts_default();
    est_tr t;
    memset(&t, 0, sizeof t);
    NH_TRY(est_check_trace_args(c, op, kmax, &o, &t.q.P, func));
    double base[4] = {0, 0, 0, 0}, part[4] = {0, 0, 0, 0}, mean[4] = {0, 0, 0, 0}, se[4] = {0, 0, 0, 0};
    int known[4] = {0, 0, 0, 0}, allknown = 1;
    if (o.control && o.method != NH_TRACE_EXACT) {
        NH_TRY(est_trace_base(c, op, kmax, base, known, &t.q.ctrl, trI, func));
        if (haveI) *haveI = op != NH_OP_S;
    }
    for (int k = 0; k < kmax; k++) allknown &= known[k];
    if (allknown) {
        for (int k = 0; k < kmax; k++) res->est[k] = base[k];
        return NH_OK;
    }
    t.q.c = c; t.q.op = op; t.q.kmax = kmax;
    nh_status st = est_tr_alloc(&t, &o, func);
    if (st != NH_OK) { est_tr_free(&t); return st; }
    if (o.method == NH_TRACE_EXACT) st = est_tr_exact(&t, part);
    else {
        if (t.s) st = est_tr_sketch(&t, &o, part, func);
        if (st == NH_OK) st = est_tr_probes(&t, &o, o.first_probe + t.s, mean, se);
    }
    res->nprobes = t.M;
    res->nproducts = t.q.nprod;
    est_tr_free(&t);
    NH_TRY(st);
    for (int k = 0; k < kmax; k++) {
        if (known[k]) { res->est[k] = base[k]; res->se[k] = 0.0; }
        else { res->est[k] = base[k] + part[k] + mean[k]; res->se[k] = se[k]; }
    }
    return NH_OK;
}

nh_status nh_curv_trace(nh_curv *c, nh_op op, int kmax, const nh_trace_opts *opts, nh_trace_result *res) {
    return est_trace(c, op, kmax, opts, res, NULL, NULL, __func__);
}

nh_status nh_curv_trace_hi(nh_curv *c, int kmax, const nh_trace_opts *opts, nh_trace_result *resH,
                           nh_trace_result *resI) {
    if (!resI) NH_FAIL(NH_EINVAL, "NULL argument");
    memset(resI, 0, sizeof *resI);
    double trI[4] = {0, 0, 0, 0};
    int haveI = 0;
    NH_TRY(est_trace(c, NH_OP_H, kmax, opts, resH, trI, &haveI, __func__));
    if (!haveI) { /* no control variate: the exact Tr(I^k) on its own (the
                     * control settles every k, so no other option is read) */
        nh_trace_opts oi = nh_trace_opts_default();
        oi.control = 1;
        return est_trace(c, NH_OP_I, kmax, &oi, resI, NULL, NULL, __func__);
    }
    for (int k = 0; k < kmax; k++) resI->est[k] = trI[k];
    return NH_OK;
}

/* -------------------------------------------------------- orthogonality */

/* M = HC K HC (HC block-diagonal with symmetric m x m blocks), symmetrized;
 * T1: nm x nm scratch. */
static void est_hc_k_hc(size_t n, size_t m, const double *K, const double *HC, double *T1, double *Mm) {
    const size_t nm = n * m;
    for (size_t i = 0; i < n; i++)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nm, (int)m, 1.0, HC + i * m * m, (int)m,
                    K + i * m * nm, (int)nm, 0.0, T1 + i * m * nm, (int)nm);
    for (size_t j = 0; j < n; j++)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nm, (int)m, (int)m, 1.0, T1 + j * m, (int)nm,
                    HC + j * m * m, (int)m, 0.0, Mm + j * m, (int)nm);
    for (size_t a = 0; a < nm; a++)
        for (size_t b = a + 1; b < nm; b++) {
            double v = 0.5 * (Mm[a * nm + b] + Mm[b * nm + a]);
            Mm[a * nm + b] = Mm[b * nm + a] = v;
        }
}

/* ||I S||_F^2 = sum_j lam_j |S J^T u_j|^2 over the eigenpairs (lam, U) of
 * HC K HC above the rounding floor (u, x, sx: scratch; *nprod += 2 each). */
static nh_status est_is_fro2(nh_curv *c, size_t nm, size_t P, const double *lam, const double *U, double *u,
                             double *x, double *sx, double *acc, size_t *nprod) {
    const double thr = 64.0 * 2.220446049250313e-16 * fabs(lam[nm - 1]);
    nh_status st = NH_OK;
    for (size_t j = 0; j < nm && st == NH_OK; j++) {
        if (!(lam[j] > thr)) continue;
        const double r = sqrt(lam[j]);
        for (size_t a = 0; a < nm; a++) u[a] = r * U[a * nm + j];
        st = nh_curv_vjp(c, u, x);
        if (st == NH_OK) st = nh_curv_svp(c, x, sx);
        *nprod += 2;
        if (st == NH_OK) { double t = est_nrm(P, sx); *acc += t * t; }
    }
    return st;
}

nh_status nh_curv_orthogonality(nh_curv *c, const nh_trace_opts *opts, nh_ortho_result *res) {
    if (!c || !res) NH_FAIL(NH_EINVAL, "NULL argument");
    memset(res, 0, sizeof *res);
    const nh_trace_opts o = opts ? *opts : nh_trace_opts_default();
    NH_TRY(est_check_trace_opts(&o, __func__));
    size_t P = 0;
    NH_TRY(est_nparams(c, __func__, &P));
    const nh_net *net = est_net(c);
    const size_t n = nh_curv_nsamples(c), m = nh_net_widths(net)[nh_net_depth(net)];
    int ok = 1;
    const size_t nm = nh__mul(n, m, &ok);
    /* K, T1 (= HC K), M, U: 4 (N n_L)^2; HC; lam, u. */
    size_t cnt = nh__add(nh__mul(nh__mul(nm, nm, &ok), 4, &ok), nh__add(nh__mul(nm, m, &ok), 2 * nm, &ok), &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(cnt, sizeof(double), &ok), __func__, "the NTK workspace"));
    if (!nh__fits_int(nm) || !nh__fits_int(nm * nm)) NH_FAIL(NH_ETOOLARGE, "N n_L too large for BLAS integers");
    double *K = nh__malloc(cnt * sizeof *K), *vec = NULL;
    if (!K) NH_FAIL(NH_ENOMEM, "cannot allocate the NTK workspace");
    nh_status st = est_alloc(__func__, "two P-vectors", 2, P, &vec);
    if (st != NH_OK) { free(K); return st; }
    double *T1 = K + nm * nm, *Mm = T1 + nm * nm, *U = Mm + nm * nm, *HC = U + nm * nm, *lam = HC + nm * m,
           *u = lam + nm;
    double *x = vec, *sx = vec + P;
    double tr[2] = {0, 0};
    st = nh_curv_ntk(c, K);
    if (st == NH_OK) {
        nh_curv_hloss(c, HC);
        st = nh_ntk_trace_powers(n, m, K, HC, 2, tr);
    }
    if (st == NH_OK) {
        est_hc_k_hc(n, m, K, HC, T1, Mm);
        st = nh_eigh(nm, Mm, lam, U);
    }
    double acc = 0.0;
    size_t nprod = 0;
    if (st == NH_OK) st = est_is_fro2(c, nm, P, lam, U, u, x, sx, &acc, &nprod);
    free(K); free(vec);
    NH_TRY(st);
    nh_trace_result tres;
    NH_TRY(nh_curv_trace(c, NH_OP_S, 2, &o, &tres));
    res->is_fro = sqrt(acc);
    res->i_fro = sqrt(fmax(tr[1], 0.0));
    res->tr_s2 = tres.est[1];
    res->tr_s2_se = tres.se[1];
    res->s_fro = sqrt(fmax(tres.est[1], 0.0));
    res->s_fro_se = res->s_fro > 0 ? tres.se[1] / (2.0 * res->s_fro) : tres.se[1] == 0 ? 0.0 : INFINITY;
    const double den = res->i_fro * res->s_fro;
    res->ratio = den > 0 ? res->is_fro / den : (res->is_fro == 0 ? NAN : INFINITY);
    res->ratio_se = res->s_fro > 0 ? res->ratio * res->s_fro_se / res->s_fro : NAN;
    res->nproducts = nprod + tres.nproducts;
    return NH_OK;
}

/* -------------------------------------------------------------- Lanczos */

nh_lanczos_opts nh_lanczos_opts_default(void) {
    nh_lanczos_opts o;
    o.which = NH_WHICH_LA;
    o.ncv = 0;
    o.tol = 1e-10;
    o.maxprod = 0;
    o.seed = 0;
    o.require = 1;
    o.start = NULL;
    return o;
}

/* w -= V^T (V w) for the nrows rows of V, hsum += V w. */
static void est_orth_pass(const double *V, size_t nrows, size_t P, double *w, double *h, double *hsum) {
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nrows, (int)P, 1.0, V, (int)P, w, 1, 0.0, h, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)nrows, (int)P, -1.0, V, (int)P, h, 1, 1.0, w, 1);
    if (hsum) for (size_t i = 0; i < nrows; i++) hsum[i] += h[i];
}

/* Full reorthogonalization of w against the nrows rows of V: one classical
 * Gram-Schmidt pass, and a second one only when the first removed more
 * than 1 - 1/sqrt(2) of the norm (the DGKS criterion: "twice is enough").
 * hsum += the removed coefficients.  Returns ||w||. */
static double est_reorth(const double *V, size_t nrows, size_t P, double *w, double *h, double *hsum) {
    const double n0 = est_nrm(P, w);
    est_orth_pass(V, nrows, P, w, h, hsum);
    double n1 = est_nrm(P, w);
    if (n1 < 0.7071067811865476 * n0) {
        est_orth_pass(V, nrows, P, w, h, hsum);
        n1 = est_nrm(P, w);
    }
    return n1;
}

/* A unit vector orthogonal to the nrows rows of V into w, from the next
 * streams after *stream (Gaussian); 0 if the rows span everything. */
static int est_fresh(const double *V, size_t nrows, size_t P, uint64_t seed, uint64_t *stream, double *w, double *h) {
    for (int attempt = 0; attempt < 4; attempt++) {
        est_probe(NH_PROBE_GAUSSIAN, seed, ++*stream, P, w);
        const double n0 = est_nrm(P, w);
        est_orth_pass(V, nrows, P, w, h, NULL);
        est_orth_pass(V, nrows, P, w, h, NULL);
        double n1 = est_nrm(P, w);
        if (n1 < 1e-4 * n0) { est_orth_pass(V, nrows, P, w, h, NULL); n1 = est_nrm(P, w); }
        if (n1 > 1e-10 * n0) {
            cblas_dscal((int)P, 1.0 / n1, w, 1);
            return 1;
        }
    }
    return 0;
}

/* ord[0..m-1]: Ritz indices (theta ascending) in the order `which` wants. */
static void est_order(nh_which which, size_t m, const double *theta, size_t *ord) {
    for (size_t i = 0; i < m; i++) ord[i] = which == NH_WHICH_SA ? i : m - 1 - i;
    if (which != NH_WHICH_LM) return;
    for (size_t i = 1; i < m; i++) { /* stable insertion sort by |theta| descending */
        size_t t = ord[i], j = i;
        while (j > 0 && fabs(theta[ord[j - 1]]) < fabs(theta[t])) { ord[j] = ord[j - 1]; j--; }
        ord[j] = t;
    }
}

/* State of one thick-restart Lanczos run (nh_curv_lanczos).  V: m + 1 basis
 * rows; w: the work vector followed by the restart block (m x chunk); small:
 * T, Tw, YT (m x m each), theta, beta, h, hsum (m + 1 each). */
typedef struct est_lz {
    nh_curv *c;
    nh_op op;
    nh_lanczos_opts o;
    size_t P, k, m, chunk, mm, nprod, nrestart, nbreak, nconv;
    double *V, *w, *blk, *small, *T, *Tw, *YT, *theta, *beta, *h, *hsum;
    size_t *ord;
    uint64_t stream;
    double anorm_run, anorm;
    int exhausted;
} est_lz;

static void lz_free(est_lz *z) { free(z->V); free(z->w); free(z->small); free(z->ord); }

/* Arguments, the basis size m and the product budget. */
static nh_status lz_check(est_lz *z, size_t k, const nh_lanczos_opts *opts, const char *func) {
    if ((int)z->op < 0 || z->op >= NH_OP_COUNT) return nh__fail(NH_EINVAL, func, "unknown operator %d", (int)z->op);
    z->o = opts ? *opts : nh_lanczos_opts_default();
    const nh_lanczos_opts *o = &z->o;
    if ((int)o->which < 0 || o->which >= NH_WHICH_COUNT)
        return nh__fail(NH_EINVAL, func, "unknown eigenvalue selection %d", (int)o->which);
    if (!(o->tol > 0) || !isfinite(o->tol)) return nh__fail(NH_EINVAL, func, "tol must be finite and > 0 (got %g)", o->tol);
    NH_TRY(est_nparams(z->c, func, &z->P));
    const size_t P = z->P;
    if (k < 1 || k > P) return nh__fail(NH_EINVAL, func, "k = %zu eigenpairs requested, need 1 <= k <= P = %zu", k, P);
    size_t m = o->ncv ? o->ncv : (2 * k + 1 > k + 20 ? 2 * k + 1 : k + 20);
    if (m > P) m = P;
    if (m < k + 1 && m < P) return nh__fail(NH_EINVAL, func, "ncv = %zu must exceed k = %zu (or equal P)", m, k);
    int ok = 1;
    if (!nh__fits_int(nh__mul(m, m, &ok)) || !ok) return nh__fail(NH_ETOOLARGE, func, "ncv too large");
    z->k = k;
    z->m = m;
    return NH_OK;
}

static nh_status lz_alloc(est_lz *z, const char *func) {
    const size_t m = z->m, P = z->P;
    int ok = 1;
    z->chunk = P < EST_CHUNK ? P : EST_CHUNK;
    nh_status st = est_alloc(func, "the Lanczos basis", m + 1, P, &z->V);
    if (st == NH_OK) st = est_alloc(func, "the Lanczos work vectors", 1, P + m * z->chunk, &z->w);
    if (st == NH_OK) {
        size_t cnt = nh__add(nh__mul(m, 3 * m, &ok), 6 * (m + 1), &ok);
        st = nh__check_bytes(ok, nh__mul(cnt, sizeof(double), &ok), func, "the projected matrix");
        if (st == NH_OK) {
            z->small = nh__calloc(cnt, sizeof *z->small);
            z->ord = nh__malloc(m * sizeof *z->ord);
            if (!z->small || !z->ord) st = nh__fail(NH_ENOMEM, func, "out of memory");
        }
    }
    if (st != NH_OK) return st;
    z->blk = z->w + P;
    z->T = z->small;
    z->Tw = z->T + m * m;
    z->YT = z->Tw + m * m;
    z->theta = z->YT + m * m;
    z->beta = z->theta + (m + 1);
    z->h = z->beta + (m + 1);
    z->hsum = z->h + (m + 1);
    return NH_OK;
}

/* V[0] = the normalized start vector (opts.start or stream 0 of the seed). */
static nh_status lz_start(est_lz *z, const char *func) {
    if (z->o.start) memcpy(z->V, z->o.start, z->P * sizeof *z->V);
    else est_probe(NH_PROBE_GAUSSIAN, z->o.seed, 0, z->P, z->V);
    const double n0 = est_nrm(z->P, z->V);
    if (!(n0 > 0.0) || !isfinite(n0))
        return nh__fail(NH_EINVAL, func, "start vector has norm %g (need finite and > 0)", n0);
    cblas_dscal((int)z->P, 1.0 / n0, z->V, 1);
    return NH_OK;
}

/* Lanczos steps j0..m-1: the three-term recurrence (not across a restart,
 * whose couplings the full pass removes), then full reorthogonalization.
 * On an invariant subspace with no fresh direction left: exhausted, mm = j+1. */
static nh_status lz_extend(est_lz *z, size_t j0) {
    const size_t P = z->P, m = z->m;
    double *V = z->V, *w = z->w, *T = z->T, *beta = z->beta;
    z->mm = m;
    for (size_t j = j0; j < m; j++) {
        const double *vj = V + j * P;
        const nh_status st = est_apply(z->c, z->op, vj, w);
        z->nprod++;
        if (st != NH_OK) return st;
        z->anorm_run = fmax(z->anorm_run, est_nrm(P, w));
        if (j > j0) cblas_daxpy((int)P, -beta[j - 1], V + (j - 1) * P, 1, w, 1);
        const double a = est_dot(P, vj, w);
        cblas_daxpy((int)P, -a, vj, 1, w, 1);
        memset(z->hsum, 0, (j + 1) * sizeof *z->hsum);
        double b = est_reorth(V, j + 1, P, w, z->h, z->hsum);
        T[j * m + j] = a + z->hsum[j];
        if (!(b > EST_BREAK * z->anorm_run)) {
            b = 0.0;
            z->nbreak++;
            if (j + 1 >= P || !est_fresh(V, j + 1, P, z->o.seed, &z->stream, w, z->h)) {
                z->exhausted = 1;
                z->mm = j + 1;
                beta[j] = 0.0;
                return NH_OK;
            }
        } else {
            cblas_dscal((int)P, 1.0 / b, w, 1);
        }
        beta[j] = b;
        memcpy(V + (j + 1) * P, w, P * sizeof *w);
        if (j + 1 < m) T[(j + 1) * m + j] = T[j * m + j + 1] = b;
    }
    return NH_OK;
}

/* Rayleigh-Ritz on the leading mm x mm projection: theta, Tw (eigenvectors),
 * ord, anorm, and nconv of the k wanted pairs. */
static nh_status lz_ritz(est_lz *z, const char *func) {
    const size_t mm = z->mm, m = z->m;
    for (size_t a = 0; a < mm; a++) memcpy(z->Tw + a * mm, z->T + a * m, mm * sizeof *z->Tw);
    lapack_int linfo = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)mm, z->Tw, (lapack_int)mm, z->theta);
    if (linfo != 0) return nh__fail(NH_ELAPACK, func, "dsyevd failed (info = %d)", (int)linfo);
    const double blast = z->beta[mm - 1];
    z->anorm = 0.0;
    for (size_t i = 0; i < mm; i++) z->anorm = fmax(z->anorm, fabs(z->theta[i]));
    est_order(z->o.which, mm, z->theta, z->ord);
    z->nconv = 0;
    for (size_t i = 0; i < z->k && i < mm; i++)
        if (blast * fabs(z->Tw[(mm - 1) * mm + z->ord[i]]) <= z->o.tol * z->anorm) z->nconv++;
    return NH_OK;
}

/* Thick restart: keep nk Ritz vectors, then the residual direction; the
 * basis is rotated in place chunk by chunk.  Returns nk. */
static size_t lz_restart(est_lz *z) {
    const size_t m = z->m, P = z->P, k = z->k, chunk = z->chunk;
    const size_t nk = k + (m - k) / 2;
    double *V = z->V, *T = z->T, *Tw = z->Tw, *YT = z->YT;
    const double blast = z->beta[m - 1];
    for (size_t i = 0; i < nk; i++)
        for (size_t a = 0; a < m; a++) YT[i * m + a] = Tw[a * m + z->ord[i]];
    for (size_t c0 = 0; c0 < P; c0 += chunk) {
        const size_t cw = P - c0 < chunk ? P - c0 : chunk;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nk, (int)cw, (int)m, 1.0, YT, (int)m, V + c0,
                    (int)P, 0.0, z->blk, (int)cw);
        for (size_t i = 0; i < nk; i++) memcpy(V + i * P + c0, z->blk + i * cw, cw * sizeof *z->blk);
    }
    memcpy(V + nk * P, V + m * P, P * sizeof *V);
    memset(T, 0, m * m * sizeof *T);
    for (size_t i = 0; i < nk; i++) {
        T[i * m + i] = z->theta[z->ord[i]];
        T[i * m + nk] = T[nk * m + i] = blast * Tw[(m - 1) * m + z->ord[i]];
    }
    z->nrestart++;
    return nk;
}

/* The k wanted pairs: evals, Ritz vectors x_i = V^T y_i (evecs) and residual
 * norms |A x_i - theta_i x_i| (resid).  mm >= k unless no fresh vector could
 * be drawn; the missing pairs are NaN (vectors zero). */
static nh_status lz_vectors(est_lz *z, double *evals, double *evecs, double *resid) {
    const size_t P = z->P, mm = z->mm, k = z->k, kk = k < mm ? k : mm;
    for (size_t i = kk; i < k; i++) {
        evals[i] = NAN;
        if (resid) resid[i] = NAN;
        if (evecs) memset(evecs + i * P, 0, P * sizeof *evecs);
    }
    for (size_t i = 0; i < kk; i++) {
        evals[i] = z->theta[z->ord[i]];
        for (size_t a = 0; a < mm; a++) z->YT[i * mm + a] = z->Tw[a * mm + z->ord[i]];
    }
    if (!evecs && !resid) return NH_OK;
    double *x = z->V + z->m * P; /* the residual row is free now */
    for (size_t i = 0; i < kk; i++) {
        double *xi = evecs ? evecs + i * P : x;
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)mm, (int)P, 1.0, z->V, (int)P, z->YT + i * mm, 1, 0.0, xi, 1);
        const double nx = est_nrm(P, xi);
        cblas_dscal((int)P, 1.0 / nx, xi, 1);
        if (!resid) continue;
        const nh_status st = est_apply(z->c, z->op, xi, z->w);
        z->nprod++;
        if (st != NH_OK) return st;
        cblas_daxpy((int)P, -evals[i], xi, 1, z->w, 1);
        resid[i] = est_nrm(P, z->w);
    }
    return NH_OK;
}

/* Cycles of extend / Rayleigh-Ritz / thick restart until k pairs converge,
 * the product budget is spent or the space is exhausted. */
static nh_status lz_iterate(est_lz *z, const char *func) {
    const size_t maxprod = z->o.maxprod ? z->o.maxprod : 100 * z->m;
    size_t j0 = 0;
    for (;;) {
        NH_TRY(lz_extend(z, j0));
        NH_TRY(lz_ritz(z, func));
        if (z->nconv == z->k || z->nprod >= maxprod || z->exhausted || z->mm < z->m) return NH_OK;
        j0 = lz_restart(z);
    }
}

nh_status nh_curv_lanczos(nh_curv *c, nh_op op, size_t k, const nh_lanczos_opts *opts, double *evals,
                          double *evecs, double *resid, nh_lanczos_info *info) {
    if (info) memset(info, 0, sizeof *info);
    if (!c || !evals) NH_FAIL(NH_EINVAL, "NULL argument");
    est_lz z;
    memset(&z, 0, sizeof z);
    z.c = c;
    z.op = op;
    NH_TRY(lz_check(&z, k, opts, __func__));
    nh_curv_progress_plan(c, "Lanczos", z.o.maxprod ? z.o.maxprod : 100 * z.m); /* progress lines: an upper bound */
    nh_status st = lz_alloc(&z, __func__);
    if (st == NH_OK) st = lz_start(&z, __func__);
    if (st == NH_OK) st = lz_iterate(&z, __func__);
    if (st == NH_OK) st = lz_vectors(&z, evals, evecs, resid);
    nh_curv_progress_plan(c, NULL, 0);
    lz_free(&z);
    if (info) {
        info->nconv = z.nconv;
        info->nproducts = z.nprod;
        info->nrestarts = z.nrestart;
        info->nbreakdowns = z.nbreak;
        info->anorm = z.anorm;
    }
    NH_TRY(st);
    if (z.nconv < k && z.o.require)
        NH_FAIL(NH_EMAXITER, "%zu of %zu eigenpairs converged to tol %g within %zu products (ncv %zu)", z.nconv, k,
                z.o.tol, z.nprod, z.m);
    return NH_OK;
}

/* ------------------------------------------------------------------ SLQ */

nh_slq_opts nh_slq_opts_default(void) {
    nh_slq_opts o;
    o.nvec = 16;
    o.nsteps = 30;
    o.probe = NH_PROBE_RADEMACHER;
    o.seed = 0;
    o.ndeflate = 0;
    o.deflate = NULL;
    return o;
}

/* Work of one SLQ run: the Lanczos basis V (m + 1 rows, the last is w) and
 * small: per vector alpha, beta, d, e, h, hsum (m each), Z (m^2); over all
 * vectors the nodes nd and weights wt (M m each) and the moments (4 M). */
typedef struct est_slq {
    nh_curv *c;
    nh_op op;
    size_t P, m, M, nprod, nbreak;
    double *V, *w, *small, *alpha, *beta, *d, *e, *h, *hsum, *Z, *nd, *wt, *mom;
    const double *D; /* q deflated rows (opts.deflate) or NULL            */
    size_t q;
    double *hd;      /* q coefficients                                     */
} est_slq;

static nh_status est_slq_check(const nh_curv *c, nh_op op, const nh_slq_opts *o, size_t ngrid, const double *grid,
                               double sigma, const double *density, size_t *P, const char *func) {
    if ((int)op < 0 || op >= NH_OP_COUNT) return nh__fail(NH_EINVAL, func, "unknown operator %d", (int)op);
    if ((int)o->probe < 0 || o->probe >= NH_PROBE_COUNT)
        return nh__fail(NH_EINVAL, func, "unknown probe distribution %d", (int)o->probe);
    if (o->nvec < 1) return nh__fail(NH_EINVAL, func, "need at least one start vector (got 0)");
    NH_TRY(est_nparams(c, func, P));
    const size_t m = o->nsteps, q = o->ndeflate;
    if (q) {
        if (q >= *P) return nh__fail(NH_EINVAL, func, "ndeflate = %zu must be below P = %zu", q, *P);
        if (!o->deflate) return nh__fail(NH_EINVAL, func, "NULL deflate with ndeflate = %zu", q);
        NH_TRY(est_check_orthonormal(q, *P, o->deflate, "deflate", func));
        if (m < 1 || m > *P - q)
            return nh__fail(NH_EINVAL, func, "nsteps = %zu must be in 1..P - ndeflate = %zu", m, *P - q);
    }
    if (m < 1 || m > *P) return nh__fail(NH_EINVAL, func, "nsteps = %zu must be in 1..P = %zu", m, *P);
    if (ngrid && (!grid || !density)) return nh__fail(NH_EINVAL, func, "NULL grid or density with ngrid = %zu", ngrid);
    if (ngrid && (!(sigma > 0) || !isfinite(sigma)))
        return nh__fail(NH_EINVAL, func, "sigma must be finite and > 0 (got %g)", sigma);
    if (ngrid) {
        size_t first = 0, bad = nh__count_nonfinite(grid, ngrid, &first);
        if (bad) return nh__fail(NH_ENONFINITE, func, "grid has %zu non-finite entries (first at %zu)", bad, first);
    }
    int ok = 1;
    if (!nh__fits_int(nh__mul(m, m, &ok)) || !ok) return nh__fail(NH_ETOOLARGE, func, "nsteps too large");
    return NH_OK;
}

static nh_status est_slq_alloc(est_slq *q, const char *func) {
    const size_t m = q->m, M = q->M;
    int ok = 1;
    NH_TRY(est_alloc(func, "the Lanczos basis", m + 1, q->P, &q->V));
    size_t cnt = nh__add(nh__mul(m, m + 6, &ok), nh__mul(M, nh__add(nh__mul(2, m, &ok), 4, &ok), &ok), &ok);
    cnt = nh__add(cnt, q->q, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(cnt, sizeof(double), &ok), func, "the SLQ nodes"));
    if (!(q->small = nh__calloc(cnt, sizeof *q->small))) return nh__fail(NH_ENOMEM, func, "out of memory");
    q->w = q->V + m * q->P;
    q->alpha = q->small; q->beta = q->alpha + m; q->d = q->beta + m; q->e = q->d + m;
    q->h = q->e + m; q->hsum = q->h + m; q->Z = q->hsum + m;
    q->nd = q->Z + m * m; q->wt = q->nd + M * m; q->mom = q->wt + M * m; q->hd = q->mom + 4 * M;
    return NH_OK;
}

/* Lanczos from the unit start vector V[0] with full reorthogonalization:
 * alpha, beta of the mm <= m steps taken (fewer on breakdown). */
static nh_status est_slq_lanczos(est_slq *q, size_t *mm) {
    const size_t P = q->P, m = q->m;
    double *V = q->V, *w = q->w, anorm = 0.0;
    *mm = m;
    for (size_t j = 0; j < m; j++) {
        /* Deflated: P_perp A P_perp v.  v is in the complement up to
         * rounding already; projecting it again keeps that rounding from
         * reaching A's outliers, and projecting A v removes them. */
        if (q->q) est_orth_pass(q->D, q->q, P, V + j * P, q->hd, NULL);
        const nh_status st = est_apply(q->c, q->op, V + j * P, w);
        q->nprod++;
        if (st != NH_OK) return st;
        if (q->q) est_reorth(q->D, q->q, P, w, q->hd, NULL);
        anorm = fmax(anorm, est_nrm(P, w));
        if (j > 0) cblas_daxpy((int)P, -q->beta[j - 1], V + (j - 1) * P, 1, w, 1);
        const double a = est_dot(P, V + j * P, w);
        cblas_daxpy((int)P, -a, V + j * P, 1, w, 1);
        memset(q->hsum, 0, (j + 1) * sizeof *q->hsum);
        const double b = est_reorth(V, j + 1, P, w, q->h, q->hsum);
        q->alpha[j] = a + q->hsum[j];
        if (j + 1 == m) break;
        if (!(b > EST_BREAK * anorm)) { *mm = j + 1; q->nbreak++; break; }
        q->beta[j] = b;
        memcpy(V + (j + 1) * P, w, P * sizeof *w);
        cblas_dscal((int)P, 1.0 / b, V + (j + 1) * P, 1);
    }
    return NH_OK;
}

/* Start vector r: Gauss quadrature nodes and weights (the tridiagonal's
 * eigenvalues and squared first components / M) and its moments. */
static nh_status est_slq_vector(est_slq *q, const nh_slq_opts *o, size_t r, const char *func) {
    const size_t P = q->P, m = q->m;
    est_probe(o->probe, o->seed, r, P, q->V);
    if (q->q) est_reorth(q->D, q->q, P, q->V, q->hd, NULL); /* P_perp z */
    const double n0 = est_nrm(P, q->V);
    if (!(n0 > 1e-10 * sqrt((double)P)))
        return nh__fail(NH_EINVAL, func, "start vector %zu lies in the deflated space (seed %llu)", r,
                        (unsigned long long)o->seed);
    cblas_dscal((int)P, 1.0 / n0, q->V, 1);
    size_t mm = m;
    NH_TRY(est_slq_lanczos(q, &mm));
    memcpy(q->d, q->alpha, mm * sizeof *q->d);
    if (mm > 1) memcpy(q->e, q->beta, (mm - 1) * sizeof *q->e);
    lapack_int linfo = LAPACKE_dstev(LAPACK_ROW_MAJOR, 'V', (lapack_int)mm, q->d, q->e, q->Z, (lapack_int)mm);
    if (linfo != 0) return nh__fail(NH_ELAPACK, func, "dstev failed (info = %d)", (int)linfo);
    double mk[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < m; i++) {
        const double th = i < mm ? q->d[i] : 0.0, tw = i < mm ? q->Z[i] * q->Z[i] : 0.0; /* Z[0][i] */
        q->nd[r * m + i] = th;
        q->wt[r * m + i] = tw / (double)q->M;
        double pw = tw;
        for (int k = 0; k < 4; k++) { pw *= th; mk[k] += pw; }
    }
    for (int k = 0; k < 4; k++) q->mom[4 * r + k] = mk[k];
    return NH_OK;
}

/* density[g] = sum_i wt_i N(grid[g]; nd_i, sigma^2) over nn nodes. */
static void est_density(size_t nn, const double *nd, const double *wt, size_t ngrid, const double *grid, double sigma,
                        double *density) {
    const double cst = 1.0 / (sigma * sqrt(2.0 * 3.14159265358979323846));
    for (size_t g = 0; g < ngrid; g++) {
        double s = 0.0;
        for (size_t i = 0; i < nn; i++) {
            if (wt[i] == 0.0) continue;
            const double z = (grid[g] - nd[i]) / sigma;
            s += wt[i] * exp(-0.5 * z * z);
        }
        density[g] = cst * s;
    }
}

static void est_slq_density(const est_slq *q, size_t ngrid, const double *grid, double sigma, double *density) {
    est_density(q->M * q->m, q->nd, q->wt, ngrid, grid, sigma, density);
}

nh_status nh_curv_slq(nh_curv *c, nh_op op, const nh_slq_opts *opts, double *nodes, double *weights, size_t ngrid,
                      const double *grid, double sigma, double *density, nh_slq_result *res) {
    if (res) memset(res, 0, sizeof *res);
    if (!c) NH_FAIL(NH_EINVAL, "NULL argument");
    const nh_slq_opts o = opts ? *opts : nh_slq_opts_default();
    est_slq q;
    memset(&q, 0, sizeof q);
    NH_TRY(est_slq_check(c, op, &o, ngrid, grid, sigma, density, &q.P, __func__));
    q.c = c; q.op = op; q.m = o.nsteps; q.M = o.nvec;
    q.q = o.ndeflate; q.D = q.q ? o.deflate : NULL;
    nh_status st = est_slq_alloc(&q, __func__);
    nh_curv_progress_plan(c, "SLQ", q.M * q.m);
    for (size_t r = 0; r < q.M && st == NH_OK; r++) st = est_slq_vector(&q, &o, r, __func__);
    nh_curv_progress_plan(c, NULL, 0);
    if (st == NH_OK) {
        if (nodes) memcpy(nodes, q.nd, q.M * q.m * sizeof *nodes);
        if (weights) memcpy(weights, q.wt, q.M * q.m * sizeof *weights);
        if (ngrid) est_slq_density(&q, ngrid, grid, sigma, density);
        if (res) {
            for (int k = 0; k < 4; k++) nh_mean_se(q.M, q.mom + k, 4, &res->moments[k], &res->moments_se[k]);
            res->nproducts = q.nprod;
            res->nbreakdowns = q.nbreak;
        }
    }
    free(q.V); free(q.small);
    return st;
}

nh_status nh_slq_density(size_t nn, const double *nodes, const double *weights, size_t ngrid, const double *grid,
                         double sigma, double *density) {
    if ((nn && (!nodes || !weights)) || (ngrid && (!grid || !density))) NH_FAIL(NH_EINVAL, "NULL argument");
    if (!(sigma > 0) || !isfinite(sigma)) NH_FAIL(NH_EINVAL, "sigma must be finite and > 0 (got %g)", sigma);
    size_t first = 0, bad = 0;
    if ((bad = nh__count_nonfinite(grid, ngrid, &first)))
        NH_FAIL(NH_ENONFINITE, "grid has %zu non-finite entries (first at %zu)", bad, first);
    if ((bad = nh__count_nonfinite(nodes, nn, &first)))
        NH_FAIL(NH_ENONFINITE, "nodes have %zu non-finite entries (first at %zu)", bad, first);
    if ((bad = nh__count_nonfinite(weights, nn, &first)))
        NH_FAIL(NH_ENONFINITE, "weights have %zu non-finite entries (first at %zu)", bad, first);
    est_density(nn, nodes, weights, ngrid, grid, sigma, density);
    return NH_OK;
}

/* ----------------------------------------------------------- eigenspaces */

nh_status nh_subspace_overlap(size_t k, size_t P, const double *U, const double *g, double *overlap, double *comp) {
    if (!U || !g || !overlap) NH_FAIL(NH_EINVAL, "NULL argument");
    if (k < 1 || k > P) NH_FAIL(NH_EINVAL, "k = %zu rows, need 1 <= k <= P = %zu", k, P);
    NH_TRY(est_check_orthonormal(k, P, U, "U", __func__));
    size_t first = 0, bad = nh__count_nonfinite(g, P, &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "g has %zu non-finite entries (first at %zu)", bad, first);
    const double gn = est_nrm(P, g);
    if (!(gn > 0)) NH_FAIL(NH_EINVAL, "g is zero: the overlap is undefined");
    double *h = NULL;
    NH_TRY(est_alloc(__func__, "the projection", 1, k, &h));
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)k, (int)P, 1.0, U, (int)P, g, 1, 0.0, h, 1);
    /* |U g| / |g| without forming P_k g; clamped: rounding may exceed 1. */
    *overlap = fmin(1.0, cblas_dnrm2((int)k, h, 1) / gn);
    if (comp) for (size_t i = 0; i < k; i++) comp[i] = fabs(h[i]) / gn;
    free(h);
    return NH_OK;
}

/* Q (k x P rows, in place) = an orthonormal basis of the rows of Q by
 * Householder QR (the row-major k x P array is the column-major P x k
 * matrix); NH_EINVAL when a diagonal of R is below 1e-10 of the largest row
 * norm (linearly dependent rows).  tau: k scratch. */
static nh_status est_orth_rows(size_t k, size_t P, double *Q, double *tau, const char *what, const char *func) {
    double rmax = 0.0;
    for (size_t i = 0; i < k; i++) rmax = fmax(rmax, est_nrm(P, Q + i * P));
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)P, (lapack_int)k, Q, (lapack_int)P, tau);
    if (info != 0) return nh__fail(NH_ELAPACK, func, "QR of %s failed (info = %d)", what, (int)info);
    for (size_t i = 0; i < k; i++)
        if (!(fabs(Q[i * P + i]) > 1e-10 * rmax))
            return nh__fail(NH_EINVAL, func, "the rows of %s are linearly dependent (row %zu)", what, i);
    info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)P, (lapack_int)k, (lapack_int)k, Q, (lapack_int)P, tau);
    if (info != 0) return nh__fail(NH_ELAPACK, func, "QR of %s failed (info = %d)", what, (int)info);
    return NH_OK;
}

/* Singular values (descending) of the k x n row-major matrix A (destroyed). */
static nh_status est_svals(size_t k, size_t n, double *A, double *s, double *superb, const char *func) {
    double u = 0, vt = 0;
    lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)k, (lapack_int)n, A, (lapack_int)n, s,
                                     &u, 1, &vt, 1, superb);
    if (info != 0) return nh__fail(NH_ELAPACK, func, "dgesvd failed (info = %d)", (int)info);
    return NH_OK;
}

/* The angles from orthonormal Qa (ka x P), Qb (kb x P), ka >= kb; B: kb x P
 * scratch; small: M and its copy (ka kb each), cosines, sines, and dgesvd's
 * superb (kb each). */
static nh_status est_angles(size_t ka, size_t kb, size_t P, const double *Qa, const double *Qb, double *B,
                            double *small, double *angles, const char *func) {
    double *M = small, *Mc = M + ka * kb, *cs = Mc + ka * kb, *sn = cs + kb, *sup = sn + kb;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ka, (int)kb, (int)P, 1.0, Qa, (int)P, Qb, (int)P, 0.0,
                M, (int)kb);
    memcpy(Mc, M, ka * kb * sizeof *M);
    NH_TRY(est_svals(ka, kb, Mc, cs, sup, func)); /* cosines, descending */
    memcpy(B, Qb, kb * P * sizeof *B);              /* B = Qb - M^T Qa: Qb's part outside span(Qa) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kb, (int)P, (int)ka, -1.0, M, (int)kb, Qa, (int)P, 1.0,
                B, (int)P);
    NH_TRY(est_svals(kb, P, B, sn, sup, func));   /* sines, descending */
    for (size_t i = 0; i < kb; i++) {
        const double c = fmin(cs[i], 1.0), s = fmin(sn[kb - 1 - i], 1.0);
        angles[i] = c * c >= 0.5 ? asin(s) : acos(c);
    }
    return NH_OK;
}

nh_status nh_principal_angles(size_t k1, size_t k2, size_t P, const double *U, const double *V, double *angles) {
    if (!U || !V || !angles) NH_FAIL(NH_EINVAL, "NULL argument");
    if (k1 < 1 || k1 > P || k2 < 1 || k2 > P)
        NH_FAIL(NH_EINVAL, "k1 = %zu and k2 = %zu rows, need 1 <= k <= P = %zu", k1, k2, P);
    int ok = 1;
    if (!nh__fits_int(P) || !nh__fits_int(nh__mul(k1 > k2 ? k1 : k2, P, &ok)) || !ok)
        NH_FAIL(NH_ETOOLARGE, "%zu x %zu exceeds the BLAS integer range", k1 > k2 ? k1 : k2, P);
    size_t first = 0, bad = nh__count_nonfinite(U, k1 * P, &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "U has %zu non-finite entries (first at %zu)", bad, first);
    if ((bad = nh__count_nonfinite(V, k2 * P, &first)))
        NH_FAIL(NH_ENONFINITE, "V has %zu non-finite entries (first at %zu)", bad, first);
    /* Qa: the larger set, so that the kb sines come from a kb x P matrix. */
    const int swap = k2 > k1;
    const size_t ka = swap ? k2 : k1, kb = swap ? k1 : k2;
    const double *A0 = swap ? V : U, *B0 = swap ? U : V;
    double *Q = NULL, *small = NULL;
    NH_TRY(est_alloc(__func__, "the orthonormal bases", ka + 2 * kb, P, &Q));
    nh_status st = est_alloc(__func__, "the cosine matrix", 1, 2 * ka * kb + 2 * kb + ka + 1, &small);
    if (st == NH_OK) {
        double *Qa = Q, *Qb = Q + ka * P, *B = Qb + kb * P;
        memcpy(Qa, A0, ka * P * sizeof *Q);
        memcpy(Qb, B0, kb * P * sizeof *Q);
        st = est_orth_rows(ka, P, Qa, small, swap ? "V" : "U", __func__);
        if (st == NH_OK) st = est_orth_rows(kb, P, Qb, small, swap ? "U" : "V", __func__);
        if (st == NH_OK) st = est_angles(ka, kb, P, Qa, Qb, B, small, angles, __func__);
    }
    free(Q); free(small);
    return st;
}

/* ----------------------------------------------------- Rayleigh quotients */

nh_status nh_curv_rayleigh(nh_curv *c, size_t nvec, const double *V, double *ri, double *rs) {
    if (!c || !V || (!ri && !rs)) NH_FAIL(NH_EINVAL, "NULL argument");
    size_t P = 0;
    NH_TRY(est_nparams(c, __func__, &P));
    for (size_t j = 0; j < nvec; j++)
        if (!(est_nrm(P, V + j * P) > 0)) NH_FAIL(NH_EINVAL, "vector %zu has zero norm", j);
    double *work = NULL;
    NH_TRY(est_alloc(__func__, "two P-vectors", 2, P, &work));
    double *iv = work, *sv = work + P;
    nh_status st = NH_OK;
    for (size_t j = 0; j < nvec && st == NH_OK; j++) {
        const double *v = V + j * P;
        st = nh_curv_isvp(c, v, iv, sv);
        if (st != NH_OK) break;
        const double vv = est_dot(P, v, v);
        if (ri) ri[j] = est_dot(P, v, iv) / vv;
        if (rs) rs[j] = est_dot(P, v, sv) / vv;
    }
    free(work);
    return st;
}

/* ------------------------------------------------------------------ slice */

nh_status nh_curv_slice(nh_curv *c, nh_net *net, const double *u, const double *v, double R, size_t G, double *out) {
    if (!c || !net || !u || !v || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    if (est_net(c) != net) NH_FAIL(NH_EINVAL, "the context is bound to another network");
    if (G == 0) NH_FAIL(NH_EINVAL, "grid of zero size");
    if (!(R >= 0) || !isfinite(R)) NH_FAIL(NH_EINVAL, "radius must be finite and >= 0 (got %g)", R);
    const size_t P = nh_net_nparams(net);
    size_t first = 0, bad = nh__count_nonfinite(u, P, &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "u has %zu non-finite entries (first at %zu)", bad, first);
    bad = nh__count_nonfinite(v, P, &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "v has %zu non-finite entries (first at %zu)", bad, first);
    double *save = NULL;
    NH_TRY(est_alloc(__func__, "the parameter copy", 1, P, &save));
    double *theta = nh_net_params(net);
    memcpy(save, theta, P * sizeof *save);
    const double den = G > 1 ? (double)(G - 1) : 1.0;
    for (size_t i = 0; i < G; i++) {
        const double a = R * (2.0 * (double)i - (double)(G - 1)) / den;
        for (size_t j = 0; j < G; j++) {
            const double b = R * (2.0 * (double)j - (double)(G - 1)) / den;
            for (size_t p = 0; p < P; p++) theta[p] = save[p] + a * u[p] + b * v[p];
            nh_status s1 = nh_curv_refresh(c);
            out[i * G + j] = s1 == NH_OK ? nh_curv_loss(c) : INFINITY;
        }
    }
    memcpy(theta, save, P * sizeof *save);
    free(save);
    return nh_curv_refresh(c);
}
