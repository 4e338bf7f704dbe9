/* gauss.c -- Gaussian expectations of the activation and its derivatives.
 *
 * Probabilists' Gauss-Hermite rules by Golub-Welsch (LAPACK dstev on the
 * Jacobi matrix), and the bivariate moments E[s_a(u) s_b(u')] of a centred
 * Gaussian pair by a pruned tensor grid through the Cholesky map of the
 * formula sheet (Sec. 2), with closed forms for erf, ReLU, sin and identity. */
#include "core/internal.h"
#include "core/blas.h"
#include "core/act_table.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Tensor nodes with w_i w_j below this are dropped.  The weights sum to 1 and
 * the integrands grow at most polynomially, so the dropped mass times the
 * integrand stays below 1e-20 even for nq = 4096 (|z| <= 90), yet the kept set
 * is a disc of radius ~12 in (z1, z2) instead of the whole square, so the
 * cost grows like nq instead of nq^2. */
#define NH_GAUSS_PRUNE 1e-30

/* Stack chunk of the inner loop (keeps every call allocation-free). */
#define NH_GAUSS_CHUNK 128

struct nh_gauss {
    nh_act  act;
    size_t  nq;
    int     exact;
    double *z, *w;   /* nodes (ascending) and weights, sum w = 1 */
    size_t *lo, *hi; /* inner range [lo[i], hi[i]) kept for outer node i */
};

/* ------------------------------------------------------------ the rule */

/* Orthonormal probabilists' Hermite polynomials p_k = He_k / sqrt(k!):
 * p_{k+1} = (x p_k - sqrt(k) p_{k-1}) / sqrt(k+1), rt[k] = sqrt(k),
 * ri[k] = 1/sqrt(k) (a multiply in the dependent chain, not a divide).  Returns
 * p_{n-1}(x) and p_n(x) scaled by the same factor 2^-*e (rescaled on the way
 * so that nodes up to |x| ~ 90 do not overflow), and sum_{k<n} p_k(x)^2
 * scaled by 2^-2e. */
static void nh__hermite_tail(size_t n, const double *rt, const double *ri, double x,
                             double *pn1, double *pn, double *sum2, int *e) {
    double pm = 0.0, p = 1.0, s = 1.0; /* p_{-1}, p_0, sum of squares */
    int ex = 0;
    for (size_t k = 0; k + 1 < n; k++) {
        double q = (x * p - rt[k] * pm) * ri[k + 1];
        pm = p; p = q;
        s += p * p;
        if (fabs(p) > 0x1p300) { /* rescale by 2^-300: exact */
            p = ldexp(p, -300); pm = ldexp(pm, -300); s = ldexp(s, -600); ex += 300;
        }
    }
    *pn1 = p;
    *pn = (x * p - rt[n - 1] * pm) * ri[n];
    *sum2 = s;
    *e = ex;
}

nh_status nh_gauss_hermite(size_t nq, double *z, double *w) {
    if (!z || !w) NH_FAIL(NH_EINVAL, "NULL argument");
    if (nq < 1 || nq > NH_GAUSS_NQ_MAX)
        NH_FAIL(NH_EINVAL, "nq = %zu, expected 1..%d", nq, NH_GAUSS_NQ_MAX);
    if (nq == 1) { z[0] = 0.0; w[0] = 1.0; return NH_OK; }
    /* Golub-Welsch: the nodes are the eigenvalues of the symmetric Jacobi
     * matrix of the recurrence (zero diagonal, off-diagonal sqrt(k)). */
    double *off = nh__malloc(3 * (nq + 1) * sizeof *off);
    if (!off) NH_FAIL(NH_ENOMEM, "%zu doubles", 3 * (nq + 1));
    double *rt = off + nq + 1, *ri = rt + nq + 1;
    for (size_t k = 0; k <= nq; k++) { rt[k] = sqrt((double)k); ri[k] = k ? 1.0 / rt[k] : 0.0; }
    for (size_t k = 0; k < nq; k++) { z[k] = 0.0; off[k] = rt[k + 1]; }
    lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'N', (lapack_int)nq, z, off, NULL, 1);
    if (info != 0) { free(off); NH_FAIL(NH_ELAPACK, "dstev info %d", (int)info); }
    /* Golub-Welsch weight = squared first component of the normalized
     * eigenvector.  That eigenvector is (p_0(x), ..., p_{n-1}(x)) / norm, so
     * w = 1 / sum_k p_k(x)^2 exactly; evaluating it from the recurrence keeps
     * the tiny outer weights accurate to relative precision, which the
     * eigenvector computed by dstev would only give to absolute precision.
     * One Newton step (p_n' = sqrt(n) p_{n-1}) first polishes the node. */
    for (size_t i = 0; i < nq; i++) {
        double pn1, pn, s;
        int e;
        nh__hermite_tail(nq, rt, ri, z[i], &pn1, &pn, &s, &e);
        if (pn1 != 0.0) z[i] -= pn / (rt[nq] * pn1);
        nh__hermite_tail(nq, rt, ri, z[i], &pn1, &pn, &s, &e);
        w[i] = ldexp(1.0 / s, -2 * e);
    }
    free(off);
    /* Exact symmetry z_i = -z_{n-1-i}, w_i = w_{n-1-i}: odd integrands then
     * integrate to exactly 0, and the pruned grid stays centred. */
    for (size_t i = 0; i < nq / 2; i++) {
        size_t j = nq - 1 - i;
        double zz = 0.5 * (z[j] - z[i]), ww = 0.5 * (w[i] + w[j]);
        z[i] = -zz; z[j] = zz; w[i] = w[j] = ww;
    }
    if (nq % 2) z[nq / 2] = 0.0;
    /* Normalize: removes the last ulps of the node error from sum w = 1. */
    double sw = 0.0;
    for (size_t i = 0; i < nq; i++) sw += w[i];
    for (size_t i = 0; i < nq; i++) w[i] /= sw;
    return NH_OK;
}

size_t nh_gauss_default_nq(nh_act act, double kmax) {
    /* Nodes per unit variance (or a fixed count for kinks and polynomials)
     * come from the activation's row in src/core/act.c, where they are
     * measured; the error decays like exp(-c sqrt(nq / kmax)), so nq grows
     * linearly with kmax. */
    const nh__act_row *r = nh__act_row_of(act);
    if (r && r->nq_fixed) return r->nq_fixed;
    double per = r ? r->nq_per_var : 400.0;
    double n = (kmax > 0.0) ? ceil(per * kmax) : 0.0; /* NaN -> 0 */
    if (!(n >= 24.0)) n = 24.0;
    if (n > NH_GAUSS_NQ_MAX) n = NH_GAUSS_NQ_MAX;
    return (size_t)n;
}

nh_status nh_gauss_create(nh_act act, size_t nq, int exact, nh_gauss **out) {
    if (!out) NH_FAIL(NH_EINVAL, "NULL argument");
    *out = NULL;
    if ((int)act < 0 || act >= NH_ACT_COUNT) NH_FAIL(NH_EINVAL, "unknown activation %d", (int)act);
    if (nq < 1 || nq > NH_GAUSS_NQ_MAX)
        NH_FAIL(NH_EINVAL, "nq = %zu, expected 1..%d", nq, NH_GAUSS_NQ_MAX);
    nh_gauss *g = nh__calloc(1, sizeof *g);
    if (!g) NH_FAIL(NH_ENOMEM, "nh_gauss");
    g->act = act; g->nq = nq; g->exact = exact != 0;
    g->z = nh__malloc(nq * sizeof *g->z);
    g->w = nh__malloc(nq * sizeof *g->w);
    g->lo = nh__malloc(nq * sizeof *g->lo);
    g->hi = nh__malloc(nq * sizeof *g->hi);
    if (!g->z || !g->w || !g->lo || !g->hi) {
        nh_gauss_free(g);
        NH_FAIL(NH_ENOMEM, "rule of %zu nodes", nq);
    }
    nh_status st = nh_gauss_hermite(nq, g->z, g->w);
    if (st != NH_OK) { nh_gauss_free(g); return st; }
    /* w is unimodal and symmetric, so the kept inner nodes of each outer
     * node form one centred interval. */
    for (size_t i = 0; i < nq; i++) {
        size_t lo = 0;
        while (lo < nq / 2 && g->w[i] * g->w[lo] < NH_GAUSS_PRUNE) lo++;
        g->lo[i] = lo;
        g->hi[i] = (g->w[i] * g->w[lo] < NH_GAUSS_PRUNE) ? lo : nq - lo;
    }
    *out = g;
    return NH_OK;
}

void nh_gauss_free(nh_gauss *g) {
    if (!g) return;
    free(g->z); free(g->w); free(g->lo); free(g->hi);
    free(g);
}

size_t nh_gauss_nq(const nh_gauss *g) { return g ? g->nq : 0; }

/* ------------------------------------------------------- closed forms */

/* Closed forms of the Gaussian moments, per activation (the activations
 * without a row in nh__closed use quadrature). */
static void nh__erf_moments(double k11, double k12, double k22, nh_gmoments *m) {
    /* Arcsine kernel (Williams 1997) and its covariance derivatives by
     * Price's theorem: d/dk12 E[f g] = E[f' g'], d/dk11 E[f g] = E[f'' g]/2. */
    double A = 1.0 + 2.0 * k11, B = 1.0 + 2.0 * k22, D = A * B - 4.0 * k12 * k12;
    if (D < 1.0) D = 1.0; /* D >= 1 for every PSD covariance */
    double sD = sqrt(D), r = 2.0 * k12 / sqrt(A * B);
    if (r > 1.0) r = 1.0;
    if (r < -1.0) r = -1.0;
    m->e00 = M_2_PI * asin(r);
    m->e11 = 2.0 * M_2_PI / sD;
    m->e22 = 8.0 * M_2_PI * k12 / (D * sD);
    m->e20 = -4.0 * M_2_PI * k12 / (A * sD);
    m->e02 = -4.0 * M_2_PI * k12 / (B * sD);
    m->e31 = -4.0 * M_2_PI * B / (D * sD);
    m->e13 = -4.0 * M_2_PI * A / (D * sD);
}
static void nh__erf_mean(double k, double out[4]) {
    /* E[erf'] = (2/sqrt(pi)) (1+2k)^{-1/2}; Price for erf''' */
    out[1] = M_2_SQRTPI / sqrt(1.0 + 2.0 * k);
    out[3] = -2.0 * M_2_SQRTPI / ((1.0 + 2.0 * k) * sqrt(1.0 + 2.0 * k));
}
static void nh__relu_moments(double k11, double k12, double k22, nh_gmoments *m) {
    /* Arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009); relu'' = 0
     * by convention, so the second-order moments are 0. */
    if (k11 <= 0.0 || k22 <= 0.0) return; /* relu(0) = step(0) = 0 */
    double s = sqrt(k11 * k22), c = k12 / s;
    if (c > 1.0) c = 1.0;
    if (c < -1.0) c = -1.0;
    double t = acos(c);
    m->e00 = s / (2.0 * M_PI) * (sin(t) + (M_PI - t) * c);
    m->e11 = (M_PI - t) / (2.0 * M_PI);
}
static void nh__relu_mean(double k, double out[4]) {
    out[0] = sqrt(k / (2.0 * M_PI));
    out[1] = k > 0.0 ? 0.5 : 0.0;
}
/* leaky_relu = (1-a) relu + a x at its default slope a (the kernels use the
 * default parameter): the arc-cosine moments plus the linear part, with
 * E[relu(u) u'] = k12/2 and E[step(u)] = 1/2 (0 when k = 0, as relu). */
static void nh__leaky_moments(double k11, double k12, double k22, nh_gmoments *m) {
    const double a = nh_act_default_param(NH_ACT_LEAKY_RELU), b = 1.0 - a;
    nh__relu_moments(k11, k12, k22, m);
    const double h1 = k11 > 0.0 ? 0.5 : 0.0, h2 = k22 > 0.0 ? 0.5 : 0.0;
    m->e00 = b * b * m->e00 + a * k12; /* a b k12 (both cross terms) + a^2 k12 */
    m->e11 = b * b * m->e11 + a * b * (h1 + h2) + a * a;
}
static void nh__leaky_mean(double k, double out[4]) {
    const double a = nh_act_default_param(NH_ACT_LEAKY_RELU), b = 1.0 - a;
    nh__relu_mean(k, out);
    out[0] *= b;
    out[1] = b * out[1] + a;
}

static void nh__sin_moments(double k11, double k12, double k22, nh_gmoments *m) {
    /* E[e^{i(u +- u')}] = exp(-(k11 + k22 +- 2 k12)/2). */
    double e = exp(-0.5 * (k11 + k22));
    m->e00 = e * sinh(k12);
    m->e11 = e * cosh(k12);
    m->e22 = m->e00;  /* sin'' = -sin */
    m->e20 = -m->e00;
    m->e02 = -m->e00;
    m->e31 = -m->e11; /* sin''' = -cos */
    m->e13 = -m->e11;
}
static void nh__sin_mean(double k, double out[4]) {
    out[1] = exp(-0.5 * k);
    out[3] = -out[1];
}
static void nh__identity_moments(double k11, double k12, double k22, nh_gmoments *m) {
    (void)k11; (void)k22;
    m->e00 = k12;
    m->e11 = 1.0;
}
static void nh__identity_mean(double k, double out[4]) {
    (void)k;
    out[1] = 1.0;
}

typedef struct nh__closed_row {
    void (*moments)(double k11, double k12, double k22, nh_gmoments *m); /* m zeroed first */
    void (*mean)(double k, double out[4]);                               /* out zeroed first */
} nh__closed_row;
static const nh__closed_row nh__closed[NH_ACT_COUNT] = {
    [NH_ACT_ERF] = {nh__erf_moments, nh__erf_mean},
    [NH_ACT_RELU] = {nh__relu_moments, nh__relu_mean},
    [NH_ACT_SIN] = {nh__sin_moments, nh__sin_mean},
    [NH_ACT_IDENTITY] = {nh__identity_moments, nh__identity_mean},
    [NH_ACT_LEAKY_RELU] = {nh__leaky_moments, nh__leaky_mean},
};

int nh__gauss_has_closed(nh_act act) {
    return act >= 0 && act < NH_ACT_COUNT && nh__closed[act].moments != NULL;
}

static void nh__closed_moments(nh_act act, double k11, double k12, double k22, nh_gmoments *m) {
    memset(m, 0, sizeof *m);
    nh__closed[act].moments(k11, k12, k22, m);
}

static void nh__closed_mean(nh_act act, double k, double out[4]) {
    out[0] = out[1] = out[2] = out[3] = 0.0;
    nh__closed[act].mean(k, out);
}

/* ---------------------------------------------------------- quadrature */

/* E[s_d(v z)] for d = 0..3, z ~ N(0,1): 1-D rule. */
static void nh__quad_mean(const nh_gauss *g, double v, double out[4]) {
    double x[NH_GAUSS_CHUNK], s[4][NH_GAUSS_CHUNK];
    double acc[4] = {0, 0, 0, 0};
    for (size_t i0 = 0; i0 < g->nq; i0 += NH_GAUSS_CHUNK) {
        size_t nb = g->nq - i0 < NH_GAUSS_CHUNK ? g->nq - i0 : NH_GAUSS_CHUNK;
        for (size_t t = 0; t < nb; t++) x[t] = v * g->z[i0 + t];
        nh_act_eval(g->act, nb, x, s[0], s[1], s[2], s[3]);
        for (size_t t = 0; t < nb; t++)
            for (int d = 0; d < 4; d++) acc[d] += g->w[i0 + t] * s[d][t];
    }
    for (int d = 0; d < 4; d++) out[d] = acc[d];
}

/* Tensor rule through the Cholesky map u = a z1, u' = r z1 + c z2 with
 * a = sqrt(k11), r = k12/a, c = sqrt(k22 - k12^2/k11).  For each outer node
 * the four inner sums S_b = sum_j w_j s_b(u'_ij) are formed once and shared by
 * the seven moments, so sigma..sigma''' are evaluated once per node. */
static void nh__quad_moments(const nh_gauss *g, double k11, double k12, double k22,
                             nh_gmoments *m) {
    const size_t nq = g->nq;
    const double *z = g->z, *w = g->w;
    memset(m, 0, sizeof *m);
    if (k11 <= 0.0) {
        /* u = 0 almost surely: the moments factor. */
        double x0 = 0.0, a[4], b[4];
        nh_act_eval(g->act, 1, &x0, &a[0], &a[1], &a[2], &a[3]);
        nh__quad_mean(g, k22 > 0.0 ? sqrt(k22) : 0.0, b);
        m->e00 = a[0] * b[0]; m->e11 = a[1] * b[1]; m->e22 = a[2] * b[2];
        m->e20 = a[2] * b[0]; m->e02 = a[0] * b[2]; m->e31 = a[3] * b[1];
        m->e13 = a[1] * b[3];
        return;
    }
    const double a = sqrt(k11), r = k12 / a;
    const double c2 = k22 - r * r;
    /* Singular covariance (x = x'): rounding leaves c2 a few ulps of k22 on
     * either side of 0.  Treating such c as 0 changes the moments by O(c^2),
     * i.e. at the rounding level, and takes the exact 1-D path. */
    const double c = c2 > 8.0 * DBL_EPSILON * k22 ? sqrt(c2) : 0.0;

    double ux[NH_GAUSS_CHUNK], A[4][NH_GAUSS_CHUNK];
    double vx[NH_GAUSS_CHUNK], B[4][NH_GAUSS_CHUNK];
    double e00 = 0, e11 = 0, e22 = 0, e20 = 0, e02 = 0, e31 = 0, e13 = 0;
    for (size_t i0 = 0; i0 < nq; i0 += NH_GAUSS_CHUNK) {
        size_t nb = nq - i0 < NH_GAUSS_CHUNK ? nq - i0 : NH_GAUSS_CHUNK;
        for (size_t t = 0; t < nb; t++) ux[t] = a * z[i0 + t];
        nh_act_eval(g->act, nb, ux, A[0], A[1], A[2], A[3]);
        if (c == 0.0) { /* u' = r z1: the inner integral is a point value */
            for (size_t t = 0; t < nb; t++) vx[t] = r * z[i0 + t];
            nh_act_eval(g->act, nb, vx, B[0], B[1], B[2], B[3]);
        }
        for (size_t t = 0; t < nb; t++) {
            const size_t i = i0 + t;
            double S0, S1, S2, S3;
            if (c == 0.0) {
                S0 = B[0][t]; S1 = B[1][t]; S2 = B[2][t]; S3 = B[3][t];
            } else {
                S0 = S1 = S2 = S3 = 0.0;
                const double mi = r * z[i];
                for (size_t j0 = g->lo[i]; j0 < g->hi[i]; j0 += NH_GAUSS_CHUNK) {
                    size_t mb = g->hi[i] - j0 < NH_GAUSS_CHUNK ? g->hi[i] - j0 : NH_GAUSS_CHUNK;
                    for (size_t s = 0; s < mb; s++) vx[s] = mi + c * z[j0 + s];
                    nh_act_eval(g->act, mb, vx, B[0], B[1], B[2], B[3]);
                    for (size_t s = 0; s < mb; s++) {
                        const double wj = w[j0 + s];
                        S0 += wj * B[0][s]; S1 += wj * B[1][s];
                        S2 += wj * B[2][s]; S3 += wj * B[3][s];
                    }
                }
            }
            const double wi = w[i];
            e00 += wi * A[0][t] * S0; e11 += wi * A[1][t] * S1; e22 += wi * A[2][t] * S2;
            e20 += wi * A[2][t] * S0; e02 += wi * A[0][t] * S2;
            e31 += wi * A[3][t] * S1; e13 += wi * A[1][t] * S3;
        }
    }
    m->e00 = e00; m->e11 = e11; m->e22 = e22; m->e20 = e20; m->e02 = e02;
    m->e31 = e31; m->e13 = e13;
}

/* ------------------------------------------------------------- public */

/* Relative slack on |k12| <= sqrt(k11 k22) before a covariance is rejected:
 * kernels computed by quadrature carry ~1e-13 errors. */
#define NH_GAUSS_PSD_SLACK 1e-8

static nh_status nh__check_cov(const char *func, double k11, double k12, double k22) {
    if (!isfinite(k11) || !isfinite(k12) || !isfinite(k22))
        return nh__fail(NH_ENONFINITE, func, "covariance (%g, %g, %g)", k11, k12, k22);
    if (k11 < 0.0 || k22 < 0.0 ||
        fabs(k12) > sqrt(k11 * k22) * (1.0 + NH_GAUSS_PSD_SLACK) + 1e-300)
        return nh__fail(NH_EINVAL, func, "covariance (%g, %g, %g) is not PSD", k11, k12, k22);
    return NH_OK;
}

nh_status nh_gauss_moments(const nh_gauss *g, double k11, double k12, double k22,
                           nh_gmoments *m) {
    if (!g || !m) NH_FAIL(NH_EINVAL, "NULL argument");
    NH_TRY(nh__check_cov(__func__, k11, k12, k22));
    if (g->exact && nh__gauss_has_closed(g->act)) nh__closed_moments(g->act, k11, k12, k22, m);
    else nh__quad_moments(g, k11, k12, k22, m);
    return NH_OK;
}

nh_status nh_gauss_mean(const nh_gauss *g, double k, double out[4]) {
    if (!g || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    if (!isfinite(k)) NH_FAIL(NH_ENONFINITE, "variance %g", k);
    if (k < 0.0) NH_FAIL(NH_EINVAL, "variance %g < 0", k);
    if (g->exact && nh__gauss_has_closed(g->act)) nh__closed_mean(g->act, k, out);
    else nh__quad_mean(g, sqrt(k), out);
    return NH_OK;
}
