/* curv.c -- exact, matrix-free curvature of the loss: H v, I v, S v (the
 * Pearlmutter R-operator on the cached forward/backward passes), J v, J^T u,
 * the empirical NTK Gram, the Hessian-trace vector G, dense matrices for
 * small P, and gradient-descent steps.
 *
 * Notation (per batch of n samples, row-major n x width matrices):
 *   Z[l] = pre-activations a~(l) (l = 1..L), A[l] = activations (A[0] = X),
 *   S1[l], S2[l] = sigma', sigma'' at Z[l], s_l = nh__net_wscale (1/sqrt(n_l),
 *   or 1 in the standard parametrization), beta = nh__net_bscale (beta, 1, or
 *   0 for a layer without bias, whose b_l is absent from theta),
 *   D[l] = dC/dZ[l], dA[l] = dC/dA[l].
 * For a direction v = (V_l, v_l) the R-operator gives RZ, RA (forward) and RD
 * (backward); H v collects s_l (RD^T A + D^T RA) and beta colsum(RD).  The
 * part of RD seeded by HC (RY) is I v; the part from D, dA with sigma'' and
 * V is S v, so H v = I v + S v exactly, by linearity. */
#include "core/internal.h"
#include "finite/net_impl.h"
#include "core/blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct nh_curv {
    const nh_net *net;
    size_t  n, L, nout, wmax;
    nh_loss loss;
    double  cout;      /* output scale (1 or 1/sqrt(n_{L-1})) */
    double  lossval;
    double *T;         /* targets copy */
    double **Z, **A, **S1, **S2, **D, **dA, **RZ, **RA;
    double *Y, *E, *HC, *adj, *bufA, *bufB;
    double **ptrs;
    double *gd_buf;    /* 2P: gradient and the previous theta of nh_curv_gd_step (lazy) */
    double *arena;
};

#define NH_NPTR 8

void nh_curv_free(nh_curv *c) {
    if (!c) return;
    free(c->gd_buf);
    free(c->arena);
    free(c->ptrs);
    free(c);
}

static double nh__s(const nh_net *net, size_t l) { return nh__net_wscale(net, l); }
static const double *nh__W(const nh_net *net, size_t l) { return net->theta + net->offW[l]; }

nh_status nh_curv_create(const nh_net *net, const double *X, const double *T, size_t n,
                         nh_loss loss, nh_curv **out) {
    if (!net || !X || !T || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    *out = NULL;
    if (n == 0) NH_FAIL(NH_EINVAL, "empty batch (N = 0)");
    if (loss < 0 || loss >= NH_LOSS_COUNT) NH_FAIL(NH_EINVAL, "unknown loss %d", (int)loss);
    const size_t L = net->L, nout = net->w[L], n0 = net->w[0];
    int ok = 1;
    size_t first = 0, bad = nh__count_nonfinite(X, nh__mul(n, n0, &ok), &first);
    if (!ok) NH_FAIL(NH_ETOOLARGE, "X size overflows");
    if (bad) NH_FAIL(NH_ENONFINITE, "X has %zu non-finite entries (first at row %zu, column %zu)", bad,
                     first / n0, first % n0);
    NH_TRY(nh_loss_check_targets(loss, T, n, nout));

    size_t wmax = 0, sumw = 0;
    for (size_t l = 0; l <= L; l++) {
        if (net->w[l] > wmax) wmax = net->w[l];
        sumw = nh__add(sumw, net->w[l], &ok);
    }
    const size_t tcount = nh_loss_target_count(loss, n, nout);
    /* Z, A, S1, S2, D, dA, RZ, RA: 8 per layer; Y, E, adj, HC; two backward buffers. */
    size_t total = nh__mul(nh__mul(n, sumw, &ok), NH_NPTR, &ok);
    total = nh__add(total, nh__mul(n, nh__mul(nout, nout + 3, &ok), &ok), &ok);
    total = nh__add(total, nh__mul(nh__mul(n, wmax, &ok), 2, &ok), &ok);
    total = nh__add(total, tcount, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(double), &ok), __func__, "the curvature workspace"));
    if (!nh__fits_int(nh__mul(n, wmax, &ok)) || !nh__fits_int(n * nout * nout))
        NH_FAIL(NH_ETOOLARGE, "batch x width exceeds the BLAS integer range");

    nh_curv *c = nh__calloc(1, sizeof *c);
    if (!c) NH_FAIL(NH_ENOMEM, "out of memory");
    c->ptrs = nh__calloc(NH_NPTR * (L + 1), sizeof *c->ptrs);
    c->arena = nh__malloc(total * sizeof(double));
    if (!c->ptrs || !c->arena) { nh_curv_free(c); NH_FAIL(NH_ENOMEM, "cannot allocate %zu doubles", total); }
    c->net = net; c->n = n; c->L = L; c->nout = nout; c->wmax = wmax; c->loss = loss;
    c->cout = nh__net_out_scale(net);
    double ***tabs[NH_NPTR] = {&c->Z, &c->A, &c->S1, &c->S2, &c->D, &c->dA, &c->RZ, &c->RA};
    double *p = c->arena;
    for (int t = 0; t < NH_NPTR; t++) {
        *tabs[t] = c->ptrs + (size_t)t * (L + 1);
        for (size_t l = 0; l <= L; l++) { (*tabs[t])[l] = p; p += n * net->w[l]; }
    }
    c->Y = p; p += n * nout;
    c->E = p; p += n * nout;
    c->adj = p; p += n * nout;
    c->HC = p; p += n * nout * nout;
    c->bufA = p; p += n * wmax;
    c->bufB = p; p += n * wmax;
    c->T = p; p += tcount;
    memcpy(c->A[0], X, n * n0 * sizeof *X);
    memcpy(c->T, T, tcount * sizeof *T);
    nh_status st = nh_curv_refresh(c);
    if (st != NH_OK) { nh_curv_free(c); return st; }
    *out = c;
    return NH_OK;
}

nh_status nh_curv_refresh(nh_curv *c) {
    if (!c) NH_FAIL(NH_EINVAL, "NULL argument");
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L, nout = c->nout;
    for (size_t l = 0; l < L; l++) {
        nh__layer_affine(net, l, n, c->A[l], c->Z[l + 1]);
        if (l + 1 < L)
            nh__net_act_eval(net, l, n * net->w[l + 1], c->Z[l + 1], c->A[l + 1], c->S1[l + 1], c->S2[l + 1], NULL);
    }
    for (size_t i = 0; i < n * nout; i++) c->Y[i] = c->cout * c->Z[L][i];
    size_t first = 0, bad = nh__count_nonfinite(c->Y, n * nout, &first);
    if (bad) NH_FAIL(NH_EDIVERGED, "network output has %zu non-finite entries (first at sample %zu)", bad, first / nout);
    NH_TRY(nh_loss_eval(c->loss, c->Y, c->T, n, nout, &c->lossval, c->E, c->HC));
    if (!isfinite(c->lossval)) NH_FAIL(NH_EDIVERGED, "loss is not finite");
    for (size_t i = 0; i < n * nout; i++) c->D[L][i] = c->cout * c->E[i];
    for (size_t l = L - 1; l >= 1; l--) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, nh__s(net, l),
                    c->D[l + 1], (int)no, nh__W(net, l), (int)ni, 0.0, c->dA[l], (int)ni);
        for (size_t i = 0; i < n * ni; i++) c->D[l][i] = c->dA[l][i] * c->S1[l][i];
    }
    return NH_OK;
}

size_t nh_curv_nsamples(const nh_curv *c) { return c->n; }
const nh_net *nh_curv_net(const nh_curv *c) { return c->net; }
double nh_curv_loss(const nh_curv *c) { return c->lossval; }
void nh_curv_outputs(const nh_curv *c, double *Y) { memcpy(Y, c->Y, c->n * c->nout * sizeof *Y); }
void nh_curv_dloss(const nh_curv *c, double *dC) { memcpy(dC, c->E, c->n * c->nout * sizeof *dC); }
void nh_curv_hloss(const nh_curv *c, double *hc) { memcpy(hc, c->HC, c->n * c->nout * c->nout * sizeof *hc); }

/* out_W_l = s_l G^T A (+ into out if acc), out_b_l = beta colsum(G). */
static void nh__param_grad(const nh_curv *c, size_t l, const double *G, const double *A, double *out, int acc) {
    const nh_net *net = c->net;
    const size_t n = c->n, ni = net->w[l], no = net->w[l + 1];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)n, nh__s(net, l), G, (int)no, A,
                (int)ni, acc ? 1.0 : 0.0, out + net->offW[l], (int)ni);
    if (!net->bias[l]) return;
    double *b = out + net->offb[l];
    const double bs = nh__net_bscale(net, l);
    if (!acc) memset(b, 0, no * sizeof *b);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < no; k++) b[k] += bs * G[i * no + k];
}

static nh_status nh__check_vec(const nh_curv *c, const double *v, const char *func) {
    size_t first = 0, bad = nh__count_nonfinite(v, c->net->P, &first);
    if (bad) return nh__fail(NH_ENONFINITE, func, "vector has %zu non-finite entries (first at index %zu)", bad, first);
    return NH_OK;
}

nh_status nh_curv_grad(nh_curv *c, double *grad) {
    if (!c || !grad) NH_FAIL(NH_EINVAL, "NULL argument");
    for (size_t l = 0; l < c->L; l++) nh__param_grad(c, l, c->D[l + 1], c->A[l], grad, 0);
    return NH_OK;
}

/* out = J^T adjY: the linear backward pass seeded with dC/dY := adjY. */
static void nh__backward_linear(nh_curv *c, const double *adjY, double *out) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    double *cur = c->bufA, *nxt = c->bufB;
    for (size_t i = 0; i < n * c->nout; i++) cur[i] = c->cout * adjY[i];
    for (size_t l = L; l-- > 0;) {
        nh__param_grad(c, l, cur, c->A[l], out, 0);
        if (l == 0) break;
        const size_t ni = net->w[l], no = net->w[l + 1];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, nh__s(net, l), cur,
                    (int)no, nh__W(net, l), (int)ni, 0.0, nxt, (int)ni);
        for (size_t i = 0; i < n * ni; i++) nxt[i] *= c->S1[l][i];
        double *t = cur; cur = nxt; nxt = t;
    }
}

/* Forward R-pass: RZ[l], RA[l] for direction v. */
static void nh__rforward(nh_curv *c, const double *v) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    for (size_t l = 0; l < L; l++) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const double s = nh__s(net, l);
        double *rz = c->RZ[l + 1];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni, s, c->A[l], (int)ni,
                    v + net->offW[l], (int)ni, 0.0, rz, (int)no);
        if (l > 0)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni, s, c->RA[l], (int)ni,
                        nh__W(net, l), (int)ni, 1.0, rz, (int)no);
        const double *vb = net->bias[l] ? v + net->offb[l] : v, bs = nh__net_bscale(net, l);
        for (size_t i = 0; net->bias[l] && i < n; i++)
            for (size_t k = 0; k < no; k++) rz[i * no + k] += bs * vb[k];
        if (l + 1 < L)
            for (size_t i = 0; i < n * no; i++) c->RA[l + 1][i] = c->S1[l + 1][i] * rz[i];
    }
}

/* adj = HC (cout RZ[L]): the change of dC/dY along v. */
static void nh__hc_apply(nh_curv *c) {
    const size_t n = c->n, m = c->nout;
    const double *rz = c->RZ[c->L];
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < m; k++) {
            double s = 0.0;
            for (size_t j = 0; j < m; j++) s += c->HC[(i * m + k) * m + j] * rz[i * m + j];
            c->adj[i * m + k] = c->cout * s;
        }
}

/* Backward R-pass.  rdY = the R of dC/dY (NULL for zero: then out = S v). */
static void nh__backward_r(nh_curv *c, const double *v, const double *rdY, double *out) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    double *cur = c->bufA, *nxt = c->bufB;
    int have = rdY != NULL;
    if (have)
        for (size_t i = 0; i < n * c->nout; i++) cur[i] = c->cout * rdY[i];
    for (size_t l = L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const double s = nh__s(net, l);
        if (have) {
            nh__param_grad(c, l, cur, c->A[l], out, 0);
        } else {
            memset(out + net->offW[l], 0, ni * no * sizeof *out);
            if (net->bias[l]) memset(out + net->offb[l], 0, no * sizeof *out);
        }
        if (l == 0) break;
        /* + s_l D[l+1]^T RA[l] */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)n, s, c->D[l + 1], (int)no,
                    c->RA[l], (int)ni, 1.0, out + net->offW[l], (int)ni);
        /* R(dA[l]) = s_l (RD W_l + D V_l) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, s, c->D[l + 1], (int)no,
                    v + net->offW[l], (int)ni, 0.0, nxt, (int)ni);
        if (have)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, s, cur, (int)no,
                        nh__W(net, l), (int)ni, 1.0, nxt, (int)ni);
        const double *s1 = c->S1[l], *s2 = c->S2[l], *da = c->dA[l], *rz = c->RZ[l];
        for (size_t i = 0; i < n * ni; i++) nxt[i] = nxt[i] * s1[i] + da[i] * s2[i] * rz[i];
        have = 1;
        double *t = cur; cur = nxt; nxt = t;
    }
}

#define NH_CHECK_OP(c, v, o)                                                        \
    do {                                                                            \
        if (!(c) || !(v) || !(o)) NH_FAIL(NH_EINVAL, "NULL argument");              \
        NH_TRY(nh__check_vec((c), (v), __func__));                                  \
    } while (0)

nh_status nh_curv_hvp(nh_curv *c, const double *v, double *out) {
    NH_CHECK_OP(c, v, out);
    nh__rforward(c, v);
    nh__hc_apply(c);
    nh__backward_r(c, v, c->adj, out);
    return NH_OK;
}

nh_status nh_curv_ivp(nh_curv *c, const double *v, double *out) {
    NH_CHECK_OP(c, v, out);
    nh__rforward(c, v);
    nh__hc_apply(c);
    nh__backward_linear(c, c->adj, out);
    return NH_OK;
}

nh_status nh_curv_svp(nh_curv *c, const double *v, double *out) {
    NH_CHECK_OP(c, v, out);
    nh__rforward(c, v);
    nh__backward_r(c, v, NULL, out);
    return NH_OK;
}

nh_status nh_curv_isvp(nh_curv *c, const double *v, double *iv, double *sv) {
    NH_CHECK_OP(c, v, iv);
    if (!sv) NH_FAIL(NH_EINVAL, "NULL argument");
    nh__rforward(c, v);
    nh__hc_apply(c);
    nh__backward_linear(c, c->adj, iv);
    nh__backward_r(c, v, NULL, sv);
    return NH_OK;
}

/* Block H v: the m vectors go through the R-passes together, in chunks of mb.
 * The GEMMs with W_l (RA W_l^T forward, RD W_l backward) run once per layer on
 * the stacked (mb n) x n_l matrices; the weight-gradient part of each vector,
 * s_l (RD_j^T A + D^T RA_j), is one GEMM with inner dimension 2n on the
 * concatenations [RD_j; D] and [A; RA_j].  Same sums as nh_curv_hvp, so the
 * results agree with m single products to rounding. */
nh_status nh_curv_hvp_block(nh_curv *c, size_t m, const double *V, double *OUT) {
    if (!c || !V || !OUT) NH_FAIL(NH_EINVAL, "NULL argument");
    if (m == 0) return NH_OK;
    const nh_net *net = c->net;
    const size_t P = net->P, n = c->n, L = c->L, nout = c->nout;
    for (size_t j = 0; j < m; j++) NH_TRY(nh__check_vec(c, V + j * P, __func__));
    if (m == 1 || L < 2) {
        for (size_t j = 0; j < m; j++) NH_TRY(nh_curv_hvp(c, V + j * P, OUT + j * P));
        return NH_OK;
    }
    size_t sumw = 0, wmax = 0;
    for (size_t l = 1; l <= L; l++) { sumw += net->w[l]; if (net->w[l] > wmax) wmax = net->w[l]; }
    if (net->w[0] > wmax) wmax = net->w[0];
    /* Per vector: RZ and RA of layers 1..L, two backward buffers, adj. */
    const size_t per = n * (2 * sumw + 2 * wmax + nout);
    const size_t cat = 2 * n * 2 * wmax; /* [RD_j; D] and [A; RA_j] */
    size_t mb = m < 16 ? m : 16;
    while (mb > 1 && ((double)(mb * per) * sizeof(double) > 1e9 || !nh__fits_int(mb * n * wmax))) mb--;
    int ok = 1;
    size_t total = nh__add(nh__mul(mb, per, &ok), cat, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(double), &ok), __func__, "the block H v workspace"));
    double *ws = nh__malloc(total * sizeof(double));
    if (!ws) NH_FAIL(NH_ENOMEM, "cannot allocate %zu doubles for the block H v workspace", total);
    double *RZb[64], *RAb[64], **RZ = RZb, **RA = RAb, **tab = NULL;
    if (L + 1 > 64) {
        tab = nh__malloc(2 * (L + 1) * sizeof *tab);
        if (!tab) { free(ws); NH_FAIL(NH_ENOMEM, "out of memory"); }
        RZ = tab; RA = tab + L + 1;
    }
    double *p = ws;
    RZ[0] = RA[0] = NULL;
    for (size_t l = 1; l <= L; l++) { RZ[l] = p; p += mb * n * net->w[l]; RA[l] = p; p += mb * n * net->w[l]; }
    double *cur = p; p += mb * n * wmax;
    double *nxt = p; p += mb * n * wmax;
    double *adj = p; p += mb * n * nout;
    double *Xc = p; p += 2 * n * wmax;
    double *Yc = p;
    const int in = (int)n;

    for (size_t j0 = 0; j0 < m; j0 += mb) {
        const size_t b = m - j0 < mb ? m - j0 : mb;
        const double *Vb = V + j0 * P;
        double *Ob = OUT + j0 * P;
        const int bn = (int)(b * n);
        /* R-forward. */
        for (size_t l = 0; l < L; l++) {
            const size_t ni = net->w[l], no = net->w[l + 1];
            const double s = nh__s(net, l);
            double *rz = RZ[l + 1];
            for (size_t j = 0; j < b; j++)
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, in, (int)no, (int)ni, s, c->A[l], (int)ni,
                            Vb + j * P + net->offW[l], (int)ni, 0.0, rz + j * n * no, (int)no);
            if (l > 0)
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bn, (int)no, (int)ni, s, RA[l], (int)ni,
                            nh__W(net, l), (int)ni, 1.0, rz, (int)no);
            for (size_t j = 0; j < b; j++) {
                const double *vb = Vb + j * P + (net->bias[l] ? net->offb[l] : 0), bs = nh__net_bscale(net, l);
                double *r = rz + j * n * no;
                for (size_t i = 0; net->bias[l] && i < n; i++)
                    for (size_t k = 0; k < no; k++) r[i * no + k] += bs * vb[k];
                if (l + 1 < L) {
                    const double *s1 = c->S1[l + 1];
                    double *ra = RA[l + 1] + j * n * no;
                    for (size_t i = 0; i < n * no; i++) ra[i] = s1[i] * r[i];
                }
            }
        }
        /* adj = HC (cout RZ[L]); the backward seed is cout adj. */
        for (size_t j = 0; j < b; j++) {
            const double *rz = RZ[L] + j * n * nout;
            double *a = adj + j * n * nout, *cj = cur + j * n * nout;
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < nout; k++) {
                    double s = 0.0;
                    for (size_t q = 0; q < nout; q++) s += c->HC[(i * nout + k) * nout + q] * rz[i * nout + q];
                    a[i * nout + k] = c->cout * s;
                    cj[i * nout + k] = c->cout * a[i * nout + k];
                }
        }
        /* R-backward. */
        for (size_t l = L; l-- > 0;) {
            const size_t ni = net->w[l], no = net->w[l + 1];
            const double s = nh__s(net, l);
            if (l > 0) {
                memcpy(Xc + n * no, c->D[l + 1], n * no * sizeof *Xc);
                memcpy(Yc, c->A[l], n * ni * sizeof *Yc);
            }
            for (size_t j = 0; j < b; j++) {
                double *o = Ob + j * P;
                const double *cj = cur + j * n * no;
                if (l == 0) {
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, in, s, cj, (int)no,
                                c->A[0], (int)ni, 0.0, o + net->offW[0], (int)ni);
                } else {
                    memcpy(Xc, cj, n * no * sizeof *Xc);
                    memcpy(Yc + n * ni, RA[l] + j * n * ni, n * ni * sizeof *Yc);
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, 2 * in, s, Xc, (int)no,
                                Yc, (int)ni, 0.0, o + net->offW[l], (int)ni);
                }
                if (!net->bias[l]) continue;
                double *bb = o + net->offb[l];
                const double bs = nh__net_bscale(net, l);
                memset(bb, 0, no * sizeof *bb);
                for (size_t i = 0; i < n; i++)
                    for (size_t k = 0; k < no; k++) bb[k] += bs * cj[i * no + k];
            }
            if (l == 0) break;
            /* R(dA[l]) = s_l (D V_l + RD W_l), the RD W_l part stacked. */
            for (size_t j = 0; j < b; j++)
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, in, (int)ni, (int)no, s, c->D[l + 1], (int)no,
                            Vb + j * P + net->offW[l], (int)ni, 0.0, nxt + j * n * ni, (int)ni);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bn, (int)ni, (int)no, s, cur, (int)no,
                        nh__W(net, l), (int)ni, 1.0, nxt, (int)ni);
            const double *s1 = c->S1[l], *s2 = c->S2[l], *da = c->dA[l];
            for (size_t j = 0; j < b; j++) {
                double *x = nxt + j * n * ni;
                const double *rz = RZ[l] + j * n * ni;
                for (size_t i = 0; i < n * ni; i++) x[i] = x[i] * s1[i] + da[i] * s2[i] * rz[i];
            }
            double *t = cur; cur = nxt; nxt = t;
        }
    }
    free(tab);
    free(ws);
    return NH_OK;
}

nh_status nh_curv_jvp(nh_curv *c, const double *v, double *jv) {
    NH_CHECK_OP(c, v, jv);
    nh__rforward(c, v);
    for (size_t i = 0; i < c->n * c->nout; i++) jv[i] = c->cout * c->RZ[c->L][i];
    return NH_OK;
}

nh_status nh_curv_vjp(nh_curv *c, const double *u, double *out) {
    if (!c || !u || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    size_t first = 0, bad = nh__count_nonfinite(u, c->n * c->nout, &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "u has %zu non-finite entries (first at index %zu)", bad, first);
    nh__backward_linear(c, u, out);
    return NH_OK;
}

/* Per-output backward: Dk[l] stacked as nout blocks of n x n_l (row k*n + i),
 * Dk = d f_k / dZ[l].  Step from layer l+1 to l: dAk = s_l Dk W_l, Dk = dAk o S1. */
static void nh__dk_seed(const nh_curv *c, double *cur) {
    const size_t n = c->n, m = c->nout;
    memset(cur, 0, m * n * m * sizeof *cur);
    for (size_t k = 0; k < m; k++)
        for (size_t i = 0; i < n; i++) cur[(k * n + i) * m + k] = c->cout;
}

static void nh__dk_step(const nh_curv *c, size_t l, const double *cur, double *dak, double *nxt) {
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, ni = net->w[l], no = net->w[l + 1];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(m * n), (int)ni, (int)no, nh__s(net, l), cur,
                (int)no, nh__W(net, l), (int)ni, 0.0, dak, (int)ni);
    for (size_t k = 0; k < m; k++) {
        const double *s1 = c->S1[l];
        const double *src = dak + k * n * ni;
        double *dst = nxt + k * n * ni;
        for (size_t i = 0; i < n * ni; i++) dst[i] = src[i] * s1[i];
    }
}

nh_status nh_curv_ntk(nh_curv *c, double *K) {
    if (!c || !K) NH_FAIL(NH_EINVAL, "NULL argument");
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, L = c->L, nm = n * m;
    int ok = 1;
    size_t stack = nh__mul(nm, c->wmax, &ok);
    size_t total = nh__add(nh__mul(stack, 3, &ok), nh__add(nh__mul(n, n, &ok), nh__mul(nm, nm, &ok), &ok), &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(double), &ok), __func__, "the NTK workspace"));
    if (!nh__fits_int(stack) || !nh__fits_int(nm * nm)) NH_FAIL(NH_ETOOLARGE, "NTK too large for BLAS integers");
    double *work = nh__malloc(total * sizeof *work);
    if (!work) NH_FAIL(NH_ENOMEM, "cannot allocate the NTK workspace (%zu doubles)", total);
    double *cur = work, *nxt = cur + stack, *dak = nxt + stack, *Ga = dak + stack, *Gd = Ga + n * n;
    memset(K, 0, nm * nm * sizeof *K);
    nh__dk_seed(c, cur);
    for (size_t l = L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const double bs = nh__net_bscale(net, l), b2 = bs * bs;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)ni, nh__s(net, l) * nh__s(net, l), c->A[l], (int)ni,
                    c->A[l], (int)ni, 0.0, Ga, (int)n);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nm, (int)nm, (int)no, 1.0, cur, (int)no, cur,
                    (int)no, 0.0, Gd, (int)nm);
#pragma omp parallel for schedule(static) if (n * n * m * m > 65536)
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < m; k++)
                for (size_t j = 0; j < n; j++)
                    for (size_t kk = 0; kk < m; kk++)
                        K[(i * m + k) * nm + j * m + kk] += (Ga[i * n + j] + b2) * Gd[(k * n + i) * nm + kk * n + j];
        if (l == 0) break;
        nh__dk_step(c, l, cur, dak, nxt);
        double *t = cur; cur = nxt; nxt = t;
    }
    free(work);
    return NH_OK;
}

/* Row norms: out[i] = s^2 ||A[i]||^2 + beta^2 -- the c_l of the sheet. */
static void nh__cl(const nh_curv *c, size_t l, double *out) {
    const size_t ni = c->net->w[l];
    const double s2 = nh__net_wscale2(c->net, l), bs = nh__net_bscale(c->net, l), b2 = bs * bs;
    for (size_t i = 0; i < c->n; i++) {
        double acc = 0.0;
        const double *a = c->A[l] + i * ni;
        for (size_t j = 0; j < ni; j++) acc += a[j] * a[j];
        out[i] = s2 * acc + b2;
    }
}

/* diag of the per-sample layer kernel K(l) = sum_p (dZ[l]_m/dtheta_p)^2, for
 * l = 1..L-1, into dK[l] (n x n_l).  K(1) = c_1 I; K(l+1) = c_{l+1} I +
 * s_l^2 M K(l) M^T with M = W_l diag(S1[l][i]).  Only diag K(2) is needed for
 * L <= 3 (one GEMM with W o W); deeper nets carry the full n_l x n_l K(l)
 * per sample, O(n_l^2 (n_{l-1} + n_{l+1})) each. */
static nh_status nh__diagK(nh_curv *c, double **dK) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    int ok = 1;
    double *cl = nh__malloc(n * sizeof *cl), *c1 = nh__malloc(n * sizeof *c1);
    if (!cl || !c1) { free(cl); free(c1); NH_FAIL(NH_ENOMEM, "out of memory"); }
    nh__cl(c, 0, c1);
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < net->w[1]; m++) dK[1][i * net->w[1] + m] = c1[i];
    nh_status st = NH_OK;
    if (L >= 3) {
        /* diag K(2) = c_2 + s_1^2 (S1[1]^2 o dK[1]) (W_1 o W_1)^T */
        const size_t n1 = net->w[1], n2 = net->w[2];
        double *wsq = nh__malloc(n1 * n2 * sizeof *wsq), *u = nh__malloc(n * n1 * sizeof *u);
        if (!wsq || !u) { free(wsq); free(u); free(cl); free(c1); NH_FAIL(NH_ENOMEM, "out of memory"); }
        const double *W1 = nh__W(net, 1);
        for (size_t i = 0; i < n1 * n2; i++) wsq[i] = W1[i] * W1[i];
        for (size_t i = 0; i < n * n1; i++) u[i] = c->S1[1][i] * c->S1[1][i] * dK[1][i];
        nh__cl(c, 1, cl);
        for (size_t i = 0; i < n; i++)
            for (size_t m = 0; m < n2; m++) dK[2][i * n2 + m] = cl[i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n2, (int)n1, nh__net_wscale2(net, 1), u, (int)n1,
                    wsq, (int)n1, 1.0, dK[2], (int)n2);
        free(wsq);
        free(u);
    }
    if (L >= 4) {
        size_t w2 = nh__mul(c->wmax, c->wmax, &ok);
        st = nh__check_bytes(ok, nh__mul(w2, 4 * sizeof(double), &ok), "nh_curv_G", "the per-sample layer kernels");
        double *M = NULL, *Kc = NULL, *Tm = NULL, *Kn = NULL;
        if (st == NH_OK) {
            M = nh__malloc(w2 * sizeof *M); Kc = nh__malloc(w2 * sizeof *Kc);
            Tm = nh__malloc(w2 * sizeof *Tm); Kn = nh__malloc(w2 * sizeof *Kn);
            if (!M || !Kc || !Tm || !Kn) st = nh__fail(NH_ENOMEM, "nh_curv_G", "out of memory");
        }
        double **cls = NULL;
        if (st == NH_OK) {
            cls = nh__calloc(L, sizeof *cls);
            if (!cls) st = nh__fail(NH_ENOMEM, "nh_curv_G", "out of memory");
            for (size_t l = 2; st == NH_OK && l < L; l++) {
                cls[l] = nh__malloc(n * sizeof **cls);
                if (!cls[l]) st = nh__fail(NH_ENOMEM, "nh_curv_G", "out of memory");
                else nh__cl(c, l - 1, cls[l]);
            }
        }
        for (size_t i = 0; st == NH_OK && i < n; i++) {
            /* K(2) = c_2 I + c_1 s_1^2 M1 M1^T */
            const size_t n1 = net->w[1], n2 = net->w[2];
            const double *W1 = nh__W(net, 1), *s1 = c->S1[1] + i * n1;
            for (size_t a = 0; a < n2; a++)
                for (size_t b = 0; b < n1; b++) M[a * n1 + b] = W1[a * n1 + b] * s1[b];
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n2, (int)n1, c1[i] * nh__net_wscale2(net, 1), M, (int)n1,
                        0.0, Kc, (int)n2);
            for (size_t a = 0; a < n2; a++) {
                Kc[a * n2 + a] += cls[2][i];
                for (size_t b = 0; b < a; b++) Kc[a * n2 + b] = Kc[b * n2 + a];
            }
            for (size_t l = 2; l + 1 < L; l++) {
                const size_t ni = net->w[l], no = net->w[l + 1];
                const double *Wl = nh__W(net, l), *sl = c->S1[l] + i * ni;
                for (size_t a = 0; a < no; a++)
                    for (size_t b = 0; b < ni; b++) M[a * ni + b] = Wl[a * ni + b] * sl[b];
                cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, (int)no, (int)ni, 1.0, Kc, (int)ni, M, (int)ni,
                            0.0, Tm, (int)ni);
                const double s2 = nh__net_wscale2(net, l);
                for (size_t a = 0; a < no; a++) {
                    double acc = 0.0;
                    for (size_t b = 0; b < ni; b++) acc += Tm[a * ni + b] * M[a * ni + b];
                    dK[l + 1][i * no + a] = cls[l + 1][i] + s2 * acc;
                }
                if (l + 2 < L) {
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)no, (int)no, (int)ni, s2, Tm, (int)ni, M,
                                (int)ni, 0.0, Kn, (int)no);
                    for (size_t a = 0; a < no; a++) Kn[a * no + a] += cls[l + 1][i];
                    double *t = Kc; Kc = Kn; Kn = t;
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

nh_status nh_curv_G(nh_curv *c, double *G) {
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
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(double), &ok), __func__, "the G workspace"));
    double *work = nh__malloc(total * sizeof *work);
    double **dK = nh__calloc(L + 1, sizeof *dK);
    if (!work || !dK) { free(work); free(dK); NH_FAIL(NH_ENOMEM, "cannot allocate the G workspace"); }
    double *cur = work, *nxt = cur + stack, *dak = nxt + stack, *p = dak + stack;
    for (size_t l = 1; l < L; l++) { dK[l] = p; p += n * net->w[l]; }
    nh_status st = nh__diagK(c, dK);
    if (st == NH_OK) {
        /* g_k(x_i) = sum_{l=1}^{L-1} sum_m (df_k/dA[l])_m sigma''(Z[l]_m) K(l)_mm */
        nh__dk_seed(c, cur);
        for (size_t l = L - 1; l >= 1; l--) {
            const size_t ni = net->w[l];
            nh__dk_step(c, l, cur, dak, nxt);
            for (size_t k = 0; k < m; k++)
                for (size_t i = 0; i < n; i++) {
                    const double *d = dak + (k * n + i) * ni, *s2 = c->S2[l] + i * ni, *kk = dK[l] + i * ni;
                    double acc = 0.0;
                    for (size_t j = 0; j < ni; j++) acc += d[j] * s2[j] * kk[j];
                    G[i * m + k] += acc;
                }
            double *t = cur; cur = nxt; nxt = t;
        }
    }
    free(work);
    free(dK);
    return st;
}

nh_status nh_curv_jacobian(nh_curv *c, double *J) {
    if (!c || !J) NH_FAIL(NH_EINVAL, "NULL argument");
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, L = c->L, nm = n * m, P = net->P;
    int ok = 1;
    size_t stack = nh__mul(nm, c->wmax, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(stack, 3 * sizeof(double), &ok), __func__, "the Jacobian workspace"));
    double *work = nh__malloc(3 * stack * sizeof *work);
    if (!work) NH_FAIL(NH_ENOMEM, "out of memory");
    double *cur = work, *nxt = cur + stack, *dak = nxt + stack;
    nh__dk_seed(c, cur);
    for (size_t l = L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const double s = nh__s(net, l);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < m; k++) {
                double *row = J + (i * m + k) * P;
                const double *d = cur + (k * n + i) * no, *a = c->A[l] + i * ni;
                for (size_t o = 0; o < no; o++) {
                    for (size_t q = 0; q < ni; q++) row[net->offW[l] + o * ni + q] = s * d[o] * a[q];
                    if (net->bias[l]) row[net->offb[l] + o] = nh__net_bscale(net, l) * d[o];
                }
            }
        if (l == 0) break;
        nh__dk_step(c, l, cur, dak, nxt);
        double *t = cur; cur = nxt; nxt = t;
    }
    free(work);
    return NH_OK;
}

nh_status nh_curv_dense(nh_curv *c, double *Hm, double *Im, double *Sm) {
    if (!c) NH_FAIL(NH_EINVAL, "NULL argument");
    const size_t P = c->net->P, nm = c->n * c->nout, m = c->nout;
    int ok = 1;
    size_t pp = nh__mul(P, P, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(pp, 3 * sizeof(double), &ok), __func__, "dense P x P matrices"));
    double *e = nh__calloc(P, sizeof *e);
    if (!e) NH_FAIL(NH_ENOMEM, "out of memory");
    for (size_t p = 0; p < P; p++) {
        e[p] = 1.0;
        nh__rforward(c, e);
        if (Hm) { nh__hc_apply(c); nh__backward_r(c, e, c->adj, Hm + p * P); }
        if (Sm) nh__backward_r(c, e, NULL, Sm + p * P);
        e[p] = 0.0;
    }
    free(e);
    /* Rows of H, S are H e_p; symmetrize the rounding so eigensolvers see a symmetric matrix. */
    double *mats[2] = {Hm, Sm};
    for (int t = 0; t < 2; t++) {
        double *A = mats[t];
        if (!A) continue;
        for (size_t a = 0; a < P; a++)
            for (size_t b = a + 1; b < P; b++) {
                double v = 0.5 * (A[a * P + b] + A[b * P + a]);
                A[a * P + b] = A[b * P + a] = v;
            }
    }
    if (Im) {
        size_t jb = nh__mul(nm, P, &ok);
        NH_TRY(nh__check_bytes(ok, nh__mul(jb, 2 * sizeof(double), &ok), __func__, "the dense Jacobian"));
        double *J = nh__malloc(jb * sizeof *J), *HJ = nh__malloc(jb * sizeof *HJ);
        if (!J || !HJ) { free(J); free(HJ); NH_FAIL(NH_ENOMEM, "out of memory"); }
        nh_curv_jacobian(c, J);
        for (size_t i = 0; i < c->n; i++)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)P, (int)m, 1.0,
                        c->HC + i * m * m, (int)m, J + i * m * P, (int)P, 0.0, HJ + i * m * P, (int)P);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)P, (int)P, (int)nm, 1.0, J, (int)P, HJ, (int)P,
                    0.0, Im, (int)P);
        free(J);
        free(HJ);
    }
    return NH_OK;
}

static nh_status nh__syev(size_t p, const double *A, double *w, double *V, const char *func) {
    int ok = 1;
    if (!nh__fits_int(p)) return nh__fail(NH_ETOOLARGE, func, "matrix too large for LAPACK");
    NH_TRY(nh__check_bytes(ok, nh__mul(nh__mul(p, p, &ok), sizeof(double), &ok), func, "eigensolver copy"));
    double *B = V ? V : nh__malloc(p * p * sizeof *B);
    if (!B) return nh__fail(NH_ENOMEM, func, "out of memory");
    memcpy(B, A, p * p * sizeof *B);
    size_t first = 0, bad = nh__count_nonfinite(B, p * p, &first);
    lapack_int info = 0;
    if (!bad) info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, V ? 'V' : 'N', 'U', (lapack_int)p, B, (lapack_int)p, w);
    if (!V) free(B);
    if (bad) return nh__fail(NH_ENONFINITE, func, "matrix has %zu non-finite entries", bad);
    if (info != 0) return nh__fail(NH_ELAPACK, func, "dsyevd failed (info = %d)", (int)info);
    return NH_OK;
}

nh_status nh_eigvalsh(size_t p, const double *A, double *w) {
    if (!A || !w || p == 0) NH_FAIL(NH_EINVAL, "NULL or empty argument");
    return nh__syev(p, A, w, NULL, __func__);
}

nh_status nh_eigh(size_t p, const double *A, double *w, double *V) {
    if (!A || !w || !V || p == 0) NH_FAIL(NH_EINVAL, "NULL or empty argument");
    return nh__syev(p, A, w, V, __func__);
}

nh_status nh_curv_gd_step(nh_curv *c, nh_net *net, double eta) {
    if (!c || !net) NH_FAIL(NH_EINVAL, "NULL argument");
    if (c->net != net) NH_FAIL(NH_EINVAL, "the context is bound to another network");
    if (!isfinite(eta) || eta <= 0) NH_FAIL(NH_EINVAL, "learning rate must be finite and > 0 (got %g)", eta);
    const size_t P = net->P;
    /* Kept across steps: a training loop must not allocate 2P doubles per step. */
    if (!c->gd_buf) {
        int ok = 1;
        NH_TRY(nh__check_bytes(ok, nh__mul(P, 2 * sizeof(double), &ok), __func__, "the step buffers"));
        c->gd_buf = nh__malloc(2 * P * sizeof(double));
        if (!c->gd_buf) NH_FAIL(NH_ENOMEM, "out of memory");
    }
    double *g = c->gd_buf, *old = c->gd_buf + P;
    nh_curv_grad(c, g);
    memcpy(old, net->theta, P * sizeof *old);
    const double loss0 = c->lossval;
    cblas_daxpy((int)P, -eta, g, 1, net->theta, 1);
    size_t first = 0, bad = nh__count_nonfinite(net->theta, P, &first);
    nh_status st = bad ? NH_EDIVERGED : nh_curv_refresh(c);
    if (st != NH_OK) {
        memcpy(net->theta, old, P * sizeof *old);
        nh_curv_refresh(c);
        NH_FAIL(NH_EDIVERGED, "gradient step with learning rate %g from loss %.6g gave a non-finite %s; "
                "parameters kept at the last finite state", eta, loss0, bad ? "parameter" : "loss");
    }
    return NH_OK;
}

nh_status nh_ntk_trace_powers(size_t n, size_t nout, const double *K, const double *HC, int kmax, double *tr) {
    if (!K || !HC || !tr || n == 0 || nout == 0 || kmax < 1) NH_FAIL(NH_EINVAL, "NULL or empty argument");
    const size_t nm = n * nout, m = nout;
    int ok = 1;
    size_t sq = nh__mul(nm, nm, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(sq, 3 * sizeof(double), &ok), __func__, "the HC Theta powers"));
    if (!nh__fits_int(nm)) NH_FAIL(NH_ETOOLARGE, "matrix too large for BLAS");
    double *M = nh__malloc(sq * sizeof *M), *Mk = nh__malloc(sq * sizeof *Mk), *Mn = nh__malloc(sq * sizeof *Mn);
    if (!M || !Mk || !Mn) { free(M); free(Mk); free(Mn); NH_FAIL(NH_ENOMEM, "out of memory"); }
    /* M = HC K: HC is block-diagonal with n blocks of m x m. */
    for (size_t i = 0; i < n; i++)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nm, (int)m, 1.0, HC + i * m * m, (int)m,
                    K + i * m * nm, (int)nm, 0.0, M + i * m * nm, (int)nm);
    memcpy(Mk, M, sq * sizeof *M);
    for (int k = 0; k < kmax; k++) {
        double s = 0.0;
        for (size_t i = 0; i < nm; i++) s += Mk[i * nm + i];
        tr[k] = s;
        if (k + 1 < kmax) {
            /* Tr(M^{k+2}) needs only the diagonal of Mk M when it is the last power. */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nm, (int)nm, (int)nm, 1.0, Mk, (int)nm, M,
                        (int)nm, 0.0, Mn, (int)nm);
            double *t = Mk; Mk = Mn; Mn = t;
        }
    }
    free(M); free(Mk); free(Mn);
    size_t first = 0;
    if (nh__count_nonfinite(tr, (size_t)kmax, &first)) NH_FAIL(NH_ENONFINITE, "trace of power %zu is not finite", first + 1);
    return NH_OK;
}
