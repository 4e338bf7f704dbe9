/* curv32.c -- the finite-width curvature engine of curv.c in float32:
 * cached forward/backward passes, H v, I v, S v (Pearlmutter's R-operator),
 * the empirical NTK Gram, G, the gradient and gradient steps.
 *
 * The algorithms and notation are those of curv.c (read it first); only the
 * arithmetic changes.  Inside: a float32 copy of theta, float32 batch buffers
 * Z, A, S1, S2, D, dA, RZ, RA, float32 activations and cblas_sgemm.  At the
 * boundary: every array the caller sees is double.  In double, because they
 * are O(n n_L) or O(n n_L^2) and cost nothing: the outputs Y, the loss, dC/dY,
 * the HC blocks and their application to R(Y), and the sum over layers of
 * the NTK Gram.  Everything of size P or n x width is float32.
 *
 * Accuracy (docs/precision.md): each GEMM of inner size k contributes a
 * relative error ~ sqrt(k) u32 (u32 = 2^-24 ~ 6e-8) to its result; the
 * quantities compose a few of them, so errors of 1e-7..1e-5 are expected,
 * growing mildly with width and depth. */
#include "core/internal.h"
#include "finite/net_impl.h"
#include "core/blas.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct nh_curv32 {
    const nh_net *net;
    size_t  n, L, nout, wmax, P;
    nh_loss loss;
    double  cout;
    double  lossval;
    /* double part: targets, outputs, dC/dY, HC blocks */
    double *T, *Y, *E, *HC;
    /* float part */
    float  *th;                  /* theta in float32 (layout of net->theta) */
    float  *vf, *o1;             /* P-sized conversion buffers (v, result)  */
    float **Z, **A, **S1, **S2, **D, **dA, **RZ, **RA;
    float  *adj, *bufA, *bufB;
    float **ptrs;
    float  *farena;
    double *darena;
};

#define NH32_NPTR 8

void nh_curv32_free(nh_curv32 *c) {
    if (!c) return;
    free(c->farena);
    free(c->darena);
    free(c->ptrs);
    free(c);
}

static float nh32__s(const nh_net *net, size_t l) { return (float)nh__net_wscale(net, l); }
static const float *nh32__W(const nh_curv32 *c, size_t l) { return c->th + c->net->offW[l]; }

/* ---------------------------------------------------------- activations */

static inline float nh32__logistic(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* sigma, sigma', sigma'' at n points in float32 (the formulas of act.c;
 * any output may be NULL). */
static void nh32__act(nh_act a, size_t n, const float *x, float *d0, float *d1, float *d2) {
    for (size_t i = 0; i < n; i++) {
        const float z = x[i];
        float v0, v1, v2;
        switch (a) {
        case NH_ACT_SOFTPLUS:
        case NH_ACT_NSOFTPLUS: {
            /* One exp for softplus and the logistic; log1p(e) by Goldberg's
             * log(u) e / (u - 1), u = fl(1 + e): a few ulps, and glibc's logf
             * is several times faster than its log1pf. */
            float e = expf(-fabsf(z)), u = 1.0f + e, r1 = 1.0f / u;
            float s = z >= 0 ? r1 : e * r1;
            float lp = u == 1.0f ? e : logf(u) * (e / (u - 1.0f));
            v0 = (z > 0 ? z : 0.0f) + lp;
            v1 = s; v2 = s * (1.0f - s);
            if (a == NH_ACT_NSOFTPLUS) {
                const float r = (float)(1.0 / NH_NSOFTPLUS_SD);
                v0 = (v0 - (float)NH_NSOFTPLUS_MU) * r; v1 *= r; v2 *= r;
            }
            break;
        }
        case NH_ACT_TANH: {
            float t = tanhf(z), q = 1.0f - t * t;
            v0 = t; v1 = q; v2 = -2.0f * t * q;
            break;
        }
        case NH_ACT_ARCTAN: {
            float q = 1.0f / (1.0f + z * z);
            v0 = atanf(z); v1 = q; v2 = -2.0f * z * q * q;
            break;
        }
        case NH_ACT_ERF: {
            float g = 1.12837916709551257390f * expf(-z * z);
            v0 = erff(z); v1 = g; v2 = -2.0f * z * g;
            break;
        }
        case NH_ACT_SIGMOID: {
            float s = nh32__logistic(z), q = s * (1.0f - s);
            v0 = s; v1 = q; v2 = q * (1.0f - 2.0f * s);
            break;
        }
        case NH_ACT_GELU: {
            float phi = 0.39894228040143267794f * expf(-0.5f * z * z);
            float Phi = 0.5f * erfcf(-z * 0.70710678118654752440f);
            v0 = z * Phi; v1 = Phi + z * phi; v2 = phi * (2.0f - z * z);
            break;
        }
        case NH_ACT_SIN:
            v0 = sinf(z); v1 = cosf(z); v2 = -v0;
            break;
        case NH_ACT_RELU:
            v0 = z > 0 ? z : 0.0f; v1 = z > 0 ? 1.0f : 0.0f; v2 = 0.0f;
            break;
        case NH_ACT_IDENTITY:
        default:
            v0 = z; v1 = 1.0f; v2 = 0.0f;
            break;
        }
        if (d0) d0[i] = v0;
        if (d1) d1[i] = v1;
        if (d2) d2[i] = v2;
    }
}

/* ------------------------------------------------------------ conversions */

/* dst = (float)src; the number of entries that are not finite in float32
 * (NaN, Inf, or beyond FLT_MAX), index of the first in *first.  The common
 * case (none) is one branch-free, vectorizable pass. */
static size_t nh32__narrow(const double *src, size_t n, float *dst, size_t *first) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double x = src[i];
        int in = fabs(x) <= (double)FLT_MAX;
        bad += !in;
        dst[i] = in ? (float)x : 0.0f; /* out-of-range casts are UB in ISO C */
    }
    if (bad)
        for (size_t i = 0; i < n; i++)
            if (!(fabs(src[i]) <= (double)FLT_MAX)) { *first = i; break; }
    return bad;
}

/* dst = (double)src; NH_ENUMERIC if src has non-finite entries (float32 overflow). */
static nh_status nh32__widen(const float *src, size_t n, double *dst, const char *func) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        float x = src[i];
        bad += !(fabsf(x) <= FLT_MAX);
        dst[i] = (double)x;
    }
    if (bad) {
        while (fabsf(src[first]) <= FLT_MAX) first++;
        return nh__fail(NH_ENUMERIC, func, "float32 result has %zu non-finite entries (first at index %zu): "
                        "overflow; use the float64 engine", bad, first);
    }
    return NH_OK;
}

/* ---------------------------------------------------------------- create */

nh_status nh_curv32_create(const nh_net *net, const double *X, const double *T, size_t n,
                           nh_loss loss, nh_curv32 **out) {
    if (!net || !X || !T || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    *out = NULL;
    if (n == 0) NH_FAIL(NH_EINVAL, "empty batch (N = 0)");
    if (loss < 0 || loss >= NH_LOSS_COUNT) NH_FAIL(NH_EINVAL, "unknown loss %d", (int)loss);
    const size_t L = net->L, nout = net->w[L], n0 = net->w[0], P = net->P;
    int ok = 1;
    const size_t nx = nh__mul(n, n0, &ok);
    if (!ok) NH_FAIL(NH_ETOOLARGE, "X size overflows");
    NH_TRY(nh_loss_check_targets(loss, T, n, nout));
    for (size_t l = 0; l + 1 < L; l++) {
        /* nh32__act has neither silu nor leaky_relu nor activation parameters. */
        const nh_act a = net->acts[l];
        const double p = net->actp[l], def = nh_act_default_param(a);
        if (a == NH_ACT_SILU || a == NH_ACT_LEAKY_RELU || (!isnan(def) && p != def))
            NH_FAIL(NH_EINVAL, "float32 curvature does not support activation %s after layer %zu (use float64)",
                    nh_act_name(a), l);
    }

    size_t wmax = 0, sumw = 0;
    for (size_t l = 0; l <= L; l++) {
        if (net->w[l] > wmax) wmax = net->w[l];
        sumw = nh__add(sumw, net->w[l], &ok);
    }
    const size_t tcount = nh_loss_target_count(loss, n, nout);
    /* floats: 8 per-layer tables, adj, two backward buffers, 3 P-vectors */
    size_t ftot = nh__mul(nh__mul(n, sumw, &ok), NH32_NPTR, &ok);
    ftot = nh__add(ftot, nh__mul(n, nout, &ok), &ok);
    ftot = nh__add(ftot, nh__mul(nh__mul(n, wmax, &ok), 2, &ok), &ok);
    ftot = nh__add(ftot, nh__mul(P, 3, &ok), &ok);
    /* doubles: Y, E, HC, T */
    size_t dtot = nh__mul(n, nh__mul(nout, nout + 2, &ok), &ok);
    dtot = nh__add(dtot, tcount, &ok);
    size_t bytes = nh__add(nh__mul(ftot, sizeof(float), &ok), nh__mul(dtot, sizeof(double), &ok), &ok);
    NH_TRY(nh__check_bytes(ok, bytes, __func__, "the float32 curvature workspace"));
    if (!nh__fits_int(nh__mul(n, wmax, &ok)) || !nh__fits_int(nh__mul(n, nout * nout, &ok)) || !ok)
        NH_FAIL(NH_ETOOLARGE, "batch x width exceeds the BLAS integer range");

    nh_curv32 *c = nh__calloc(1, sizeof *c);
    if (!c) NH_FAIL(NH_ENOMEM, "out of memory");
    c->ptrs = nh__calloc(NH32_NPTR * (L + 1), sizeof *c->ptrs);
    c->farena = nh__malloc(ftot * sizeof(float));
    c->darena = nh__malloc(dtot * sizeof(double));
    if (!c->ptrs || !c->farena || !c->darena) {
        nh_curv32_free(c);
        NH_FAIL(NH_ENOMEM, "cannot allocate %zu floats + %zu doubles", ftot, dtot);
    }
    c->net = net; c->n = n; c->L = L; c->nout = nout; c->wmax = wmax; c->P = P; c->loss = loss;
    c->cout = nh__net_out_scale(net);
    float ***tabs[NH32_NPTR] = {&c->Z, &c->A, &c->S1, &c->S2, &c->D, &c->dA, &c->RZ, &c->RA};
    float *p = c->farena;
    for (int t = 0; t < NH32_NPTR; t++) {
        *tabs[t] = c->ptrs + (size_t)t * (L + 1);
        for (size_t l = 0; l <= L; l++) { (*tabs[t])[l] = p; p += n * net->w[l]; }
    }
    c->adj = p; p += n * nout;
    c->bufA = p; p += n * wmax;
    c->bufB = p; p += n * wmax;
    c->th = p; p += P;
    c->vf = p; p += P;
    c->o1 = p; p += P;
    double *q = c->darena;
    c->Y = q; q += n * nout;
    c->E = q; q += n * nout;
    c->HC = q; q += n * nout * nout;
    c->T = q; q += tcount;
    size_t first = 0, bad = nh32__narrow(X, nx, c->A[0], &first);
    if (bad) {
        nh_curv32_free(c);
        NH_FAIL(NH_ENONFINITE, "X has %zu entries that are not finite in float32 (first at row %zu, column %zu)",
                bad, first / n0, first % n0);
    }
    memcpy(c->T, T, tcount * sizeof *T);
    nh_status st = nh_curv32_refresh(c);
    if (st != NH_OK) { nh_curv32_free(c); return st; }
    *out = c;
    return NH_OK;
}

/* Z[n x n_{l+1}] = s_l A W_l^T + beta b_l, in float32. */
static void nh32__affine(const nh_curv32 *c, size_t l, const float *A, float *Z) {
    const nh_net *net = c->net;
    const size_t n = c->n, ni = net->w[l], no = net->w[l + 1];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni, nh32__s(net, l), A, (int)ni,
                nh32__W(c, l), (int)ni, 0.0f, Z, (int)no);
    const float beta = (float)nh__net_bscale(net, l), *b = net->bias[l] ? c->th + net->offb[l] : c->th;
    for (size_t i = 0; net->bias[l] && i < n; i++)
        for (size_t k = 0; k < no; k++) Z[i * no + k] += beta * b[k];
}

/* The cached passes from c->th (already the float copy of theta). */
static nh_status nh32__passes(nh_curv32 *c, const char *func) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L, nout = c->nout;
    size_t first = 0, bad = 0;
    for (size_t l = 0; l < L; l++) {
        nh32__affine(c, l, c->A[l], c->Z[l + 1]);
        if (l + 1 < L) nh32__act(net->acts[l], n * net->w[l + 1], c->Z[l + 1], c->A[l + 1], c->S1[l + 1], c->S2[l + 1]);
    }
    for (size_t i = 0; i < n * nout; i++) c->Y[i] = c->cout * (double)c->Z[L][i];
    bad = nh__count_nonfinite(c->Y, n * nout, &first);
    if (bad)
        return nh__fail(NH_EDIVERGED, func, "network output has %zu non-finite entries (first at sample %zu)", bad,
                        first / nout);
    NH_TRY(nh_loss_eval(c->loss, c->Y, c->T, n, nout, &c->lossval, c->E, c->HC));
    if (!isfinite(c->lossval)) return nh__fail(NH_EDIVERGED, func, "loss is not finite");
    for (size_t i = 0; i < n * nout; i++) c->D[L][i] = (float)(c->cout * c->E[i]);
    for (size_t l = L - 1; l >= 1; l--) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, nh32__s(net, l),
                    c->D[l + 1], (int)no, nh32__W(c, l), (int)ni, 0.0f, c->dA[l], (int)ni);
        for (size_t i = 0; i < n * ni; i++) c->D[l][i] = c->dA[l][i] * c->S1[l][i];
    }
    return NH_OK;
}

nh_status nh_curv32_refresh(nh_curv32 *c) {
    if (!c) NH_FAIL(NH_EINVAL, "NULL argument");
    size_t first = 0, bad = nh32__narrow(c->net->theta, c->P, c->th, &first);
    if (bad) NH_FAIL(NH_EDIVERGED, "theta has %zu entries that are not finite in float32 (first at index %zu)", bad, first);
    return nh32__passes(c, __func__);
}

size_t nh_curv32_nsamples(const nh_curv32 *c) { return c->n; }
const nh_net *nh_curv32_net(const nh_curv32 *c) { return c->net; }
double nh_curv32_loss(const nh_curv32 *c) { return c->lossval; }
void nh_curv32_outputs(const nh_curv32 *c, double *Y) { memcpy(Y, c->Y, c->n * c->nout * sizeof *Y); }
void nh_curv32_dloss(const nh_curv32 *c, double *dC) { memcpy(dC, c->E, c->n * c->nout * sizeof *dC); }

/* out_W_l = s_l G^T A (+= if acc), out_b_l = beta colsum(G) (+= if acc). */
static void nh32__param_grad(const nh_curv32 *c, size_t l, const float *G, const float *A, float *out, int acc) {
    const nh_net *net = c->net;
    const size_t n = c->n, ni = net->w[l], no = net->w[l + 1];
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)n, nh32__s(net, l), G, (int)no, A,
                (int)ni, acc ? 1.0f : 0.0f, out + net->offW[l], (int)ni);
    if (!net->bias[l]) return;
    float *b = out + net->offb[l];
    const float beta = (float)nh__net_bscale(net, l);
    if (!acc) memset(b, 0, no * sizeof *b);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < no; k++) b[k] += beta * G[i * no + k];
}

nh_status nh_curv32_grad(nh_curv32 *c, double *grad) {
    if (!c || !grad) NH_FAIL(NH_EINVAL, "NULL argument");
    for (size_t l = 0; l < c->L; l++) nh32__param_grad(c, l, c->D[l + 1], c->A[l], c->o1, 0);
    return nh32__widen(c->o1, c->P, grad, __func__);
}

/* out = J^T adjY (float adjY, already scaled by nothing: cout applied here). */
static void nh32__backward_linear(nh_curv32 *c, const float *adjY, float *out) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    const float co = (float)c->cout;
    float *cur = c->bufA, *nxt = c->bufB;
    for (size_t i = 0; i < n * c->nout; i++) cur[i] = co * adjY[i];
    for (size_t l = L; l-- > 0;) {
        nh32__param_grad(c, l, cur, c->A[l], out, 0);
        if (l == 0) break;
        const size_t ni = net->w[l], no = net->w[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, nh32__s(net, l), cur,
                    (int)no, nh32__W(c, l), (int)ni, 0.0f, nxt, (int)ni);
        const float *s1 = c->S1[l];
        for (size_t i = 0; i < n * ni; i++) nxt[i] *= s1[i];
        float *t = cur; cur = nxt; nxt = t;
    }
}

static void nh32__rforward(nh_curv32 *c, const float *v) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    for (size_t l = 0; l < L; l++) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const float s = nh32__s(net, l), beta = (float)nh__net_bscale(net, l);
        float *rz = c->RZ[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni, s, c->A[l], (int)ni,
                    v + net->offW[l], (int)ni, 0.0f, rz, (int)no);
        if (l > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni, s, c->RA[l], (int)ni,
                        nh32__W(c, l), (int)ni, 1.0f, rz, (int)no);
        const float *vb = net->bias[l] ? v + net->offb[l] : v;
        for (size_t i = 0; net->bias[l] && i < n; i++)
            for (size_t k = 0; k < no; k++) rz[i * no + k] += beta * vb[k];
        if (l + 1 < L) {
            const float *s1 = c->S1[l + 1];
            float *ra = c->RA[l + 1];
            for (size_t i = 0; i < n * no; i++) ra[i] = s1[i] * rz[i];
        }
    }
}

/* adj = HC (cout RZ[L]), HC applied in double. */
static void nh32__hc_apply(nh_curv32 *c) {
    const size_t n = c->n, m = c->nout;
    const float *rz = c->RZ[c->L];
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < m; k++) {
            double s = 0.0;
            for (size_t j = 0; j < m; j++) s += c->HC[(i * m + k) * m + j] * (double)rz[i * m + j];
            c->adj[i * m + k] = (float)(c->cout * s);
        }
}

/* Backward R-pass, as nh__backward_r in curv.c (rdY NULL: out = S v). */
static void nh32__backward_r(nh_curv32 *c, const float *v, const float *rdY, float *out) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    const float co = (float)c->cout;
    float *cur = c->bufA, *nxt = c->bufB;
    int have = rdY != NULL;
    if (have)
        for (size_t i = 0; i < n * c->nout; i++) cur[i] = co * rdY[i];
    for (size_t l = L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const float s = nh32__s(net, l);
        if (have) {
            nh32__param_grad(c, l, cur, c->A[l], out, 0);
        } else {
            memset(out + net->offW[l], 0, ni * no * sizeof *out);
            if (net->bias[l]) memset(out + net->offb[l], 0, no * sizeof *out);
        }
        if (l == 0) break;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)n, s, c->D[l + 1], (int)no,
                    c->RA[l], (int)ni, 1.0f, out + net->offW[l], (int)ni);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, s, c->D[l + 1], (int)no,
                    v + net->offW[l], (int)ni, 0.0f, nxt, (int)ni);
        if (have)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, s, cur, (int)no,
                        nh32__W(c, l), (int)ni, 1.0f, nxt, (int)ni);
        const float *s1 = c->S1[l], *s2 = c->S2[l], *da = c->dA[l], *rz = c->RZ[l];
        for (size_t i = 0; i < n * ni; i++) nxt[i] = nxt[i] * s1[i] + da[i] * s2[i] * rz[i];
        have = 1;
        float *t = cur; cur = nxt; nxt = t;
    }
}

/* NULL checks, then v -> c->vf with range check. */
static nh_status nh32__load_vec(nh_curv32 *c, const double *v, const char *func) {
    size_t first = 0, bad = nh32__narrow(v, c->P, c->vf, &first);
    if (bad)
        return nh__fail(NH_ENONFINITE, func, "vector has %zu entries that are not finite in float32 "
                        "(NaN, Inf or beyond 3.4e38; first at index %zu)", bad, first);
    return NH_OK;
}

#define NH32_CHECK_OP(c, v, o)                                                      \
    do {                                                                            \
        if (!(c) || !(v) || !(o)) NH_FAIL(NH_EINVAL, "NULL argument");              \
        NH_TRY(nh32__load_vec((c), (v), __func__));                                 \
    } while (0)

nh_status nh_curv32_hvp(nh_curv32 *c, const double *v, double *out) {
    NH32_CHECK_OP(c, v, out);
    nh32__rforward(c, c->vf);
    nh32__hc_apply(c);
    nh32__backward_r(c, c->vf, c->adj, c->o1);
    return nh32__widen(c->o1, c->P, out, __func__);
}

nh_status nh_curv32_ivp(nh_curv32 *c, const double *v, double *out) {
    NH32_CHECK_OP(c, v, out);
    nh32__rforward(c, c->vf);
    nh32__hc_apply(c);
    nh32__backward_linear(c, c->adj, c->o1);
    return nh32__widen(c->o1, c->P, out, __func__);
}

nh_status nh_curv32_svp(nh_curv32 *c, const double *v, double *out) {
    NH32_CHECK_OP(c, v, out);
    nh32__rforward(c, c->vf);
    nh32__backward_r(c, c->vf, NULL, c->o1);
    return nh32__widen(c->o1, c->P, out, __func__);
}

nh_status nh_curv32_isvp(nh_curv32 *c, const double *v, double *iv, double *sv) {
    NH32_CHECK_OP(c, v, iv);
    if (!sv) NH_FAIL(NH_EINVAL, "NULL argument");
    nh32__rforward(c, c->vf);
    nh32__hc_apply(c);
    nh32__backward_linear(c, c->adj, c->o1);
    NH_TRY(nh32__widen(c->o1, c->P, iv, __func__));
    nh32__backward_r(c, c->vf, NULL, c->o1);
    return nh32__widen(c->o1, c->P, sv, __func__);
}

/* Per-output backward stacks (k-major blocks of n x n_l), as in curv.c. */
static void nh32__dk_seed(const nh_curv32 *c, float *cur) {
    const size_t n = c->n, m = c->nout;
    memset(cur, 0, m * n * m * sizeof *cur);
    for (size_t k = 0; k < m; k++)
        for (size_t i = 0; i < n; i++) cur[(k * n + i) * m + k] = (float)c->cout;
}

static void nh32__dk_step(const nh_curv32 *c, size_t l, const float *cur, float *dak, float *nxt) {
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, ni = net->w[l], no = net->w[l + 1];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(m * n), (int)ni, (int)no, nh32__s(net, l), cur,
                (int)no, nh32__W(c, l), (int)ni, 0.0f, dak, (int)ni);
    const float *s1 = c->S1[l];
    for (size_t k = 0; k < m; k++) {
        const float *src = dak + k * n * ni;
        float *dst = nxt + k * n * ni;
        for (size_t i = 0; i < n * ni; i++) dst[i] = src[i] * s1[i];
    }
}

nh_status nh_curv32_ntk(nh_curv32 *c, double *K) {
    if (!c || !K) NH_FAIL(NH_EINVAL, "NULL argument");
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, L = c->L, nm = n * m;
    int ok = 1;
    size_t stack = nh__mul(nm, c->wmax, &ok);
    size_t total = nh__add(nh__mul(stack, 3, &ok), nh__add(nh__mul(n, n, &ok), nh__mul(nm, nm, &ok), &ok), &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(float), &ok), __func__, "the float32 NTK workspace"));
    if (!nh__fits_int(stack) || !nh__fits_int(nm * nm)) NH_FAIL(NH_ETOOLARGE, "NTK too large for BLAS integers");
    float *work = nh__malloc(total * sizeof *work);
    if (!work) NH_FAIL(NH_ENOMEM, "cannot allocate the float32 NTK workspace (%zu floats)", total);
    float *cur = work, *nxt = cur + stack, *dak = nxt + stack, *Ga = dak + stack, *Gd = Ga + n * n;
    memset(K, 0, nm * nm * sizeof *K);
    nh32__dk_seed(c, cur);
    for (size_t l = L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const float s = nh32__s(net, l), b2 = (float)(nh__net_bscale(net, l) * nh__net_bscale(net, l));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)ni, s * s, c->A[l], (int)ni,
                    c->A[l], (int)ni, 0.0f, Ga, (int)n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nm, (int)nm, (int)no, 1.0f, cur, (int)no, cur,
                    (int)no, 0.0f, Gd, (int)nm);
#pragma omp parallel for schedule(static) if (n * n * m * m > 65536)
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < m; k++)
                for (size_t j = 0; j < n; j++)
                    for (size_t kk = 0; kk < m; kk++)
                        K[(i * m + k) * nm + j * m + kk] +=
                            (double)((Ga[i * n + j] + b2) * Gd[(k * n + i) * nm + kk * n + j]);
        if (l == 0) break;
        nh32__dk_step(c, l, cur, dak, nxt);
        float *t = cur; cur = nxt; nxt = t;
    }
    free(work);
    return NH_OK;
}

/* out[i] = ||A[l][i]||^2 / n_l + beta^2 (accumulated in double). */
static void nh32__cl(const nh_curv32 *c, size_t l, float *out) {
    const size_t ni = c->net->w[l];
    const double s2 = nh__net_wscale2(c->net, l), b2 = nh__net_bscale(c->net, l) * nh__net_bscale(c->net, l);
    for (size_t i = 0; i < c->n; i++) {
        double acc = 0.0;
        const float *a = c->A[l] + i * ni;
        for (size_t j = 0; j < ni; j++) acc += (double)a[j] * a[j];
        out[i] = (float)(s2 * acc + b2);
    }
}

/* diag K(l), l = 1..L-1, as nh__diagK in curv.c, in float32. */
static nh_status nh32__diagK(nh_curv32 *c, float **dK) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    int ok = 1;
    float *cl = nh__malloc(n * sizeof *cl), *c1 = nh__malloc(n * sizeof *c1);
    if (!cl || !c1) { free(cl); free(c1); NH_FAIL(NH_ENOMEM, "out of memory"); }
    nh32__cl(c, 0, c1);
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < net->w[1]; a++) dK[1][i * net->w[1] + a] = c1[i];
    nh_status st = NH_OK;
    if (L >= 3) {
        const size_t n1 = net->w[1], n2 = net->w[2];
        float *wsq = nh__malloc(n1 * n2 * sizeof *wsq), *u = nh__malloc(n * n1 * sizeof *u);
        if (!wsq || !u) { free(wsq); free(u); free(cl); free(c1); NH_FAIL(NH_ENOMEM, "out of memory"); }
        const float *W1 = nh32__W(c, 1);
        for (size_t i = 0; i < n1 * n2; i++) wsq[i] = W1[i] * W1[i];
        for (size_t i = 0; i < n * n1; i++) u[i] = c->S1[1][i] * c->S1[1][i] * dK[1][i];
        nh32__cl(c, 1, cl);
        for (size_t i = 0; i < n; i++)
            for (size_t a = 0; a < n2; a++) dK[2][i * n2 + a] = cl[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n2, (int)n1, (float)nh__net_wscale2(net, 1), u,
                    (int)n1, wsq, (int)n1, 1.0f, dK[2], (int)n2);
        free(wsq);
        free(u);
    }
    if (L >= 4) {
        size_t w2 = nh__mul(c->wmax, c->wmax, &ok);
        st = nh__check_bytes(ok, nh__mul(w2, 4 * sizeof(float), &ok), "nh_curv32_G", "the per-sample layer kernels");
        float *M = NULL, *Kc = NULL, *Tm = NULL, *Kn = NULL;
        if (st == NH_OK) {
            M = nh__malloc(w2 * sizeof *M); Kc = nh__malloc(w2 * sizeof *Kc);
            Tm = nh__malloc(w2 * sizeof *Tm); Kn = nh__malloc(w2 * sizeof *Kn);
            if (!M || !Kc || !Tm || !Kn) st = nh__fail(NH_ENOMEM, "nh_curv32_G", "out of memory");
        }
        float **cls = NULL;
        if (st == NH_OK) {
            cls = nh__calloc(L, sizeof *cls);
            if (!cls) st = nh__fail(NH_ENOMEM, "nh_curv32_G", "out of memory");
            for (size_t l = 2; st == NH_OK && l < L; l++) {
                cls[l] = nh__malloc(n * sizeof **cls);
                if (!cls[l]) st = nh__fail(NH_ENOMEM, "nh_curv32_G", "out of memory");
                else nh32__cl(c, l - 1, cls[l]);
            }
        }
        for (size_t i = 0; st == NH_OK && i < n; i++) {
            const size_t n1 = net->w[1], n2 = net->w[2];
            const float *W1 = nh32__W(c, 1), *s1 = c->S1[1] + i * n1;
            for (size_t a = 0; a < n2; a++)
                for (size_t b = 0; b < n1; b++) M[a * n1 + b] = W1[a * n1 + b] * s1[b];
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n2, (int)n1, (float)((double)c1[i] * nh__net_wscale2(net, 1)),
                        M, (int)n1, 0.0f, Kc, (int)n2);
            for (size_t a = 0; a < n2; a++) {
                Kc[a * n2 + a] += cls[2][i];
                for (size_t b = 0; b < a; b++) Kc[a * n2 + b] = Kc[b * n2 + a];
            }
            for (size_t l = 2; l + 1 < L; l++) {
                const size_t ni = net->w[l], no = net->w[l + 1];
                const float *Wl = nh32__W(c, l), *sl = c->S1[l] + i * ni;
                for (size_t a = 0; a < no; a++)
                    for (size_t b = 0; b < ni; b++) M[a * ni + b] = Wl[a * ni + b] * sl[b];
                cblas_ssymm(CblasRowMajor, CblasRight, CblasUpper, (int)no, (int)ni, 1.0f, Kc, (int)ni, M, (int)ni,
                            0.0f, Tm, (int)ni);
                const float s2 = (float)nh__net_wscale2(net, l);
                for (size_t a = 0; a < no; a++) {
                    double acc = 0.0;
                    for (size_t b = 0; b < ni; b++) acc += (double)Tm[a * ni + b] * M[a * ni + b];
                    dK[l + 1][i * no + a] = cls[l + 1][i] + (float)(s2 * acc);
                }
                if (l + 2 < L) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)no, (int)no, (int)ni, s2, Tm, (int)ni, M,
                                (int)ni, 0.0f, Kn, (int)no);
                    for (size_t a = 0; a < no; a++) Kn[a * no + a] += cls[l + 1][i];
                    float *t = Kc; Kc = Kn; Kn = t;
                }
            }
        }
        if (cls) for (size_t l = 0; l < L; l++) free(cls[l]);
        free(cls); free(M); free(Kc); free(Tm); free(Kn);
    }
    free(cl);
    free(c1);
    return st;
}

nh_status nh_curv32_G(nh_curv32 *c, double *G) {
    if (!c || !G) NH_FAIL(NH_EINVAL, "NULL argument");
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, L = c->L, nm = n * m;
    memset(G, 0, nm * sizeof *G);
    if (L == 1) return NH_OK; /* f is linear in theta */
    int ok = 1;
    size_t stack = nh__mul(nm, c->wmax, &ok);
    size_t sumw = 0;
    for (size_t l = 1; l < L; l++) sumw = nh__add(sumw, net->w[l], &ok);
    size_t total = nh__add(nh__mul(stack, 3, &ok), nh__mul(n, sumw, &ok), &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(float), &ok), __func__, "the float32 G workspace"));
    if (!nh__fits_int(stack)) NH_FAIL(NH_ETOOLARGE, "G workspace too large for BLAS integers");
    float *work = nh__malloc(total * sizeof *work);
    float **dK = nh__calloc(L + 1, sizeof *dK);
    if (!work || !dK) { free(work); free(dK); NH_FAIL(NH_ENOMEM, "cannot allocate the float32 G workspace"); }
    float *cur = work, *nxt = cur + stack, *dak = nxt + stack, *p = dak + stack;
    for (size_t l = 1; l < L; l++) { dK[l] = p; p += n * net->w[l]; }
    nh_status st = nh32__diagK(c, dK);
    if (st == NH_OK) {
        nh32__dk_seed(c, cur);
        for (size_t l = L - 1; l >= 1; l--) {
            const size_t ni = net->w[l];
            nh32__dk_step(c, l, cur, dak, nxt);
            for (size_t k = 0; k < m; k++)
                for (size_t i = 0; i < n; i++) {
                    const float *d = dak + (k * n + i) * ni, *s2 = c->S2[l] + i * ni, *kk = dK[l] + i * ni;
                    double acc = 0.0;
                    for (size_t j = 0; j < ni; j++) acc += (double)(d[j] * s2[j] * kk[j]);
                    G[i * m + k] += acc;
                }
            float *t = cur; cur = nxt; nxt = t;
        }
        size_t first = 0, bad = nh__count_nonfinite(G, nm, &first);
        if (bad) st = nh__fail(NH_ENUMERIC, __func__, "float32 G has %zu non-finite entries (overflow)", bad);
    }
    free(work);
    free(dK);
    return st;
}

nh_status nh_curv32_gd_step(nh_curv32 *c, nh_net *net, double eta) {
    if (!c || !net) NH_FAIL(NH_EINVAL, "NULL argument");
    if (c->net != net) NH_FAIL(NH_EINVAL, "the context is bound to another network");
    if (!isfinite(eta) || eta <= 0) NH_FAIL(NH_EINVAL, "learning rate must be finite and > 0 (got %g)", eta);
    const size_t P = net->P;
    int ok = 1;
    NH_TRY(nh__check_bytes(ok, nh__mul(P, sizeof(double), &ok), __func__, "the saved parameters"));
    double *old = nh__malloc(P * sizeof *old);
    if (!old) NH_FAIL(NH_ENOMEM, "out of memory");
    for (size_t l = 0; l < c->L; l++) nh32__param_grad(c, l, c->D[l + 1], c->A[l], c->o1, 0);
    memcpy(old, net->theta, P * sizeof *old);
    const double loss0 = c->lossval;
    /* One pass: the double update, its float copy, and the range check. */
    const float *g = c->o1;
    float *th = c->th;
    double *theta = net->theta;
    size_t bad = 0;
    for (size_t p = 0; p < P; p++) {
        double x = theta[p] - eta * (double)g[p];
        int in = fabs(x) <= (double)FLT_MAX;
        bad += !in;
        theta[p] = x;
        th[p] = in ? (float)x : 0.0f;
    }
    nh_status st = bad ? NH_EDIVERGED : nh32__passes(c, __func__);
    if (st != NH_OK) {
        memcpy(net->theta, old, P * sizeof *old);
        nh_curv32_refresh(c);
        free(old);
        NH_FAIL(NH_EDIVERGED, "gradient step with learning rate %g from loss %.6g gave a non-finite %s; "
                "parameters kept at the last finite state", eta, loss0, bad ? "float32 parameter" : "loss");
    }
    free(old);
    return NH_OK;
}
