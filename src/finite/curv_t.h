/* curv_t.h -- the curvature engine, written once for real_t = double and
 * real_t = float.  curv.c includes it twice (as CHOLMOD 5 does for its
 * DOUBLE and SINGLE code): first as is, then with NH_T_SINGLE defined.
 * Every function name goes through FN() (suffix _d or _s); each instance
 * ends in a table of operations (nh__ops_d, nh__ops_s) that the public
 * nh_curv_* functions of curv.c dispatch through.
 *
 * Inside: theta (net->theta itself in double, a float copy in single), the
 * batch buffers Z, A, S1, S2, D, dA, RZ, RA of curv.c's notation, and every
 * matrix product, in real_t.  At the boundary, in double, from curv.c: the
 * outputs Y, the loss, dC/dY, the HC blocks and their application to R(Y),
 * the conversions of the caller's double vectors (narrow and widen), and
 * the reductions the caller sees (NTK layer sum, G, c_l row norms).
 *
 * Only the first block below differs between the precisions: how theta and
 * the caller's vectors enter and leave, the activations (act.c's float
 * path where it has one, else double converted per chunk) and the update of
 * theta in a GD step.  Macros: real_t, FN, GEMM, SYRK, SYMM, NH_T_NP, NH_ENG;
 * none nests. */

#ifdef NH_T_SINGLE
#define real_t float
#define FN(name) name##_s
#define GEMM cblas_sgemm
#define SYRK cblas_ssyrk
#define SYMM cblas_ssymm
#define NH_T_NP 3 /* float P-vectors: theta, a direction, a result */
#else
#define real_t double
#define FN(name) name##_d
#define GEMM cblas_dgemm
#define SYRK cblas_dsyrk
#define SYMM cblas_dsymm
#define NH_T_NP 0
#endif

typedef struct FN(nh__eng) {
    const real_t *th;         /* theta: net->theta (double) or thf (single) */
    real_t *thf, *vb, *ob;    /* single only: theta, a direction, a result   */
    real_t **Z, **A, **S1, **S2, **D, **dA, **RZ, **RA;
    real_t *adj, *bufA, *bufB; /* HC R(Y) seed; two backward buffers        */
    real_t *X;                 /* the data, N x n_0 (= A[0] when unbatched; NULL with X32) */
    float *X32;                /* c->x32keep: the float32 data, N x n_0, widened per batch into A0 */
    real_t *A0;                /* c->x32keep: the pass buffer of the batch's rows of X */
    real_t **ptrs, *arena;
} FN(nh__eng);

#define NH_ENG(c) ((FN(nh__eng) *)(c)->e)

/* Elementwise loops, threaded above NH_PAR_MIN entries (curv.c: nh__par)
 * and vectorized (omp simd: no entry depends on another, and each is the
 * same expression, so the same roundings): x = y o z (x may be y). */
static void FN(nh__mul)(size_t n, real_t *x, const real_t *y, const real_t *z) {
    const int nt = nh__par(n);
#pragma omp parallel for simd schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++) x[i] = y[i] * z[i];
}

/* ------------------------------------------- the precision-specific part */
#ifdef NH_T_SINGLE
static nh_status FN(nh__load_theta)(nh_curv *c, const char *func) {
    FN(nh__eng) *e = NH_ENG(c);
    size_t first = 0, bad = nh__narrow_f(c->net->theta, c->P, e->thf, &first);
    if (bad)
        return nh__fail(NH_EDIVERGED, func, "theta has %zu entries that are not finite in float32 "
                        "(first at index %zu)", bad, first);
    e->th = e->thf;
    return NH_OK;
}
/* dst = src converted; the count of entries not finite in float32. */
static size_t FN(nh__vcopy)(const double *src, size_t len, real_t *dst, size_t *first) {
    return nh__narrow_f(src, len, dst, first);
}
/* The caller's vector v[len] as real_t: converted into buf, checked. */
static nh_status FN(nh__vin)(const double *v, size_t len, real_t *buf, const real_t **vr, const char *func) {
    size_t first = 0, bad = nh__narrow_f(v, len, buf, &first);
    if (bad)
        return nh__fail(NH_ENONFINITE, func, "vector has %zu entries that are not finite in float32 "
                        "(NaN, Inf or beyond 3.4e38; first at index %zu)", bad, first);
    *vr = buf;
    return NH_OK;
}
/* Where a result is computed (buf), and how it reaches the caller (widened). */
static real_t *FN(nh__vbuf)(real_t *buf, double *out) { (void)out; return buf; }
static nh_status FN(nh__vout)(const real_t *o, size_t len, double *out, const char *func) {
    return nh__widen_f(o, len, out, func);
}
/* sigma, sigma', sigma'' of the activation after layer l on cnt entries:
 * act.c's float path where it has one, else in double per chunk, converted. */
static void FN(nh__act_rg)(const nh_net *net, size_t l, size_t cnt, const real_t *z, real_t *a, real_t *s1,
                           real_t *s2) {
    enum { CH = 256 };
    double zd[CH], d0[CH], d1[CH], d2[CH];
    if (nh__act_eval_f(net->acts[l], net->actp[l], cnt, z, a, s1, s2)) return; /* float path (act.c) */
    for (size_t i0 = 0; i0 < cnt; i0 += CH) {
        const size_t k = cnt - i0 < CH ? cnt - i0 : CH;
        for (size_t j = 0; j < k; j++) zd[j] = z[i0 + j];
        nh__act_layer(net, l, k, zd, d0, d1, d2);
        for (size_t j = 0; j < k; j++) {
            a[i0 + j] = (float)d0[j]; s1[i0 + j] = (float)d1[j]; s2[i0 + j] = (float)d2[j];
        }
    }
}
/* old = theta, theta -= eta g in double, its float copy, and the range
 * check, in one pass. */
static size_t FN(nh__step_theta)(nh_curv *c, double *theta, double *old, const real_t *g, double eta) {
    float *th = NH_ENG(c)->thf;
    const size_t P = c->P;
    const int nt = nh__par(P);
    size_t bad = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : bad) num_threads(nt) if (nt > 1)
    for (size_t p = 0; p < P; p++) {
        const double t = theta[p], x = t - eta * (double)g[p];
        const int in = fabs(x) <= (double)FLT_MAX;
        bad += !in;
        old[p] = t;
        theta[p] = x;
        th[p] = in ? (float)x : 0.0f;
    }
    return bad;
}
#else
static nh_status FN(nh__load_theta)(nh_curv *c, const char *func) {
    (void)func;
    NH_ENG(c)->th = c->net->theta;
    return NH_OK;
}
static size_t FN(nh__vcopy)(const double *src, size_t len, real_t *dst, size_t *first) {
    memcpy(dst, src, len * sizeof *dst);
    return nh__count_nonfinite(src, len, first);
}
static nh_status FN(nh__vin)(const double *v, size_t len, real_t *buf, const real_t **vr, const char *func) {
    (void)buf;
    size_t first = 0, bad = nh__count_nonfinite(v, len, &first);
    if (bad) return nh__fail(NH_ENONFINITE, func, "vector has %zu non-finite entries (first at index %zu)", bad, first);
    *vr = v;
    return NH_OK;
}
static real_t *FN(nh__vbuf)(real_t *buf, double *out) { (void)buf; return out; }
static nh_status FN(nh__vout)(const real_t *o, size_t len, double *out, const char *func) {
    (void)o; (void)len; (void)out; (void)func;
    return NH_OK;
}
static void FN(nh__act_rg)(const nh_net *net, size_t l, size_t cnt, const real_t *z, real_t *a, real_t *s1,
                           real_t *s2) {
    nh__act_layer(net, l, cnt, z, a, s1, s2);
}
/* OpenBLAS's daxpy (an FMA where the CPU has one: a loop of our own would
 * round differently, changing every stored trajectory). */
static size_t FN(nh__step_theta)(nh_curv *c, double *theta, double *old, const real_t *g, double eta) {
    size_t first = 0;
    memcpy(old, theta, c->P * sizeof *old);
    cblas_daxpy((int)c->P, -eta, g, 1, theta, 1);
    return nh__count_nonfinite(theta, c->P, &first);
}
#endif

/* The activation after layer l at cnt entries, in parts of NH_PAR_CH on
 * the threads (elementwise: the same values on any number of them). */
static void FN(nh__act)(const nh_net *net, size_t l, size_t cnt, const real_t *z, real_t *a, real_t *s1,
                        real_t *s2) {
    const int nt = nh__par(cnt);
    if (nt < 2) { FN(nh__act_rg)(net, l, cnt, z, a, s1, s2); return; }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t i = 0; i < cnt; i += NH_PAR_CH) {
        const size_t k = cnt - i < NH_PAR_CH ? cnt - i : NH_PAR_CH;
        FN(nh__act_rg)(net, l, k, z + i, a + i, s1 + i, s2 + i);
    }
}

/* --------------------------------------------------- create and passes */

static real_t FN(nh__s)(const nh_net *net, size_t l) { return (real_t)nh__net_wscale(net, l); }
static const real_t *FN(nh__W)(const nh_curv *c, size_t l) { return NH_ENG(c)->th + c->net->offW[l]; }

static void FN(nh__eng_free)(void *p) {
    FN(nh__eng) *e = p;
    if (!e) return;
    free(e->arena);
    free(e->ptrs);
    free(e->X32);
    free(e);
}

/* Float32 data (finite: checked by curv.c): kept as float (c->x32keep),
 * else converted into the context's copy (exact: float widens to double). */
static nh_status FN(nh__init_x32)(nh_curv *c, const float *X32) {
    FN(nh__eng) *e = NH_ENG(c);
    const size_t nx = c->N * c->net->w[0];
    if (!c->x32keep) {
        for (size_t i = 0; i < nx; i++) e->X[i] = (real_t)X32[i];
        return NH_OK;
    }
    e->A0 = e->A[0];
    e->X = NULL;
    e->X32 = nh__malloc(nx * sizeof *e->X32);
    if (!e->X32) return nh__fail(NH_ENOMEM, "nh_curv_create", "cannot allocate the float32 data (%zu entries)", nx);
    memcpy(e->X32, X32, nx * sizeof *e->X32);
    return NH_OK;
}

/* The arena (c->nreal entries, sized and checked by curv.c) and X (or X32). */
static nh_status FN(nh__init)(nh_curv *c, const double *X, const float *X32) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    FN(nh__eng) *e = nh__calloc(1, sizeof *e);
    c->e = e;
    if (!e) return nh__fail(NH_ENOMEM, "nh_curv_create", "out of memory");
    e->ptrs = nh__calloc(NH_NTAB * (L + 1), sizeof *e->ptrs);
    e->arena = nh__malloc(c->nreal * sizeof(real_t));
    if (!e->ptrs || !e->arena)
        return nh__fail(NH_ENOMEM, "nh_curv_create", "cannot allocate %zu entries of %zu bytes", c->nreal,
                        sizeof(real_t));
    real_t ***tabs[NH_NTAB] = {&e->Z, &e->A, &e->S1, &e->S2, &e->D, &e->dA, &e->RZ, &e->RA};
    real_t *p = e->arena;
    for (int t = 0; t < NH_NTAB; t++) {
        *tabs[t] = e->ptrs + (size_t)t * (L + 1);
        for (size_t l = 0; l <= L; l++) { (*tabs[t])[l] = p; p += n * net->w[l]; }
    }
    e->adj = p; p += n * c->nout;
    e->bufA = p; p += n * c->wmax;
    e->bufB = p; p += n * c->wmax;
    if (NH_T_NP) { e->thf = p; p += c->P; e->vb = p; p += c->P; e->ob = p; p += c->P; }
    e->X = c->nx ? p : e->A[0]; /* batched: a separate copy of all N rows; A[0] points into it */
    if (X32) return FN(nh__init_x32)(c, X32);
    size_t first = 0, bad = FN(nh__vcopy)(X, c->N * net->w[0], e->X, &first);
    if (bad)
        return nh__fail(NH_ENONFINITE, "nh_curv_create", "X has %zu entries that are not finite in %s (first at "
                        "row %zu, column %zu)", bad, nh__prec_name(c), first / net->w[0], first % net->w[0]);
    return NH_OK;
}

/* Z[n x n_{l+1}] = s_l A W_l^T + beta b_l. */
static void FN(nh__affine)(const nh_curv *c, size_t l, const real_t *A, real_t *Z) {
    const nh_net *net = c->net;
    const size_t n = c->n, ni = net->w[l], no = net->w[l + 1];
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni, FN(nh__s)(net, l), A, (int)ni,
         FN(nh__W)(c, l), (int)ni, 0.0, Z, (int)no);
    if (!net->bias[l]) return;
    const real_t bs = (real_t)nh__net_bscale(net, l), *b = NH_ENG(c)->th + net->offb[l];
    const int nt = nh__par(n * no);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++)
#pragma omp simd
        for (size_t k = 0; k < no; k++) Z[i * no + k] += bs * b[k];
}

/* The forward pass of the current batch (rows off .. off + n - 1): Z, A,
 * S1, S2 and its rows of Y. */
static void FN(nh__forward)(nh_curv *c) {
    FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L, nm = c->n * c->nout;
    if (e->X32) { /* this batch's rows of the float32 data, widened */
        const float *x = e->X32 + c->off * net->w[0];
        for (size_t i = 0; i < n * net->w[0]; i++) e->A0[i] = (real_t)x[i];
        e->A[0] = e->A0;
    } else
        e->A[0] = e->X + c->off * net->w[0];
    for (size_t l = 0; l < L; l++) {
        FN(nh__affine)(c, l, e->A[l], e->Z[l + 1]);
        if (l + 1 < L)
            FN(nh__act)(net, l, n * net->w[l + 1], e->Z[l + 1], e->A[l + 1], e->S1[l + 1], e->S2[l + 1]);
    }
    for (size_t i = 0; i < nm; i++) c->Y[i] = c->cout * (double)e->Z[L][i];
}

/* The backward pass of the current batch from its rows of dC/dY: D, dA. */
static void FN(nh__backward)(nh_curv *c) {
    FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L, nm = c->n * c->nout;
    for (size_t i = 0; i < nm; i++) e->D[L][i] = (real_t)(c->cout * c->E[i]);
    for (size_t l = L - 1; l >= 1; l--) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, FN(nh__s)(net, l), e->D[l + 1],
             (int)no, FN(nh__W)(c, l), (int)ni, 0.0, e->dA[l], (int)ni);
        FN(nh__mul)(n * ni, e->D[l], e->dA[l], e->S1[l]);
    }
}

/* The passes at the loaded theta.  Unbatched: cached for every product.
 * Batched: every batch's forward pass (for Y and the loss, a mean over all
 * rows); each product then recomputes a batch's passes (nh__pass). */
static nh_status FN(nh__passes)(nh_curv *c, const char *func) {
    if (c->nbatch == 1) {
        FN(nh__forward)(c);
        NH_TRY(nh__loss_boundary(c, func));
        FN(nh__backward)(c);
        return NH_OK;
    }
    c->cur = NH_NONE;
    for (size_t b = 0; b < c->nbatch; b++) {
        nh__view(c, b);
        FN(nh__forward)(c);
        nh__tick(c, "loss", b);
    }
    return nh__loss_boundary(c, func);
}

static nh_status FN(nh__pass)(nh_curv *c) {
    FN(nh__forward)(c);
    FN(nh__backward)(c);
    return NH_OK;
}

static void FN(nh__xwiden)(const nh_curv *c, double *X) {
    const real_t *x = NH_ENG(c)->X;
    const float *x32 = NH_ENG(c)->X32;
    for (size_t i = 0; i < c->N * c->net->w[0]; i++) X[i] = x32 ? (double)x32[i] : (double)x[i];
}

static nh_status FN(nh__refresh)(nh_curv *c) {
    NH_TRY(FN(nh__load_theta)(c, "nh_curv_refresh"));
    return FN(nh__passes)(c, "nh_curv_refresh");
}

/* ------------------------------------------------ gradient and R-passes */

/* out_W_l = s_l G^T A (+= if acc), out_b_l = beta colsum(G) (+= if acc). */
static void FN(nh__param_grad)(const nh_curv *c, size_t l, const real_t *G, const real_t *A, real_t *out, int acc) {
    const nh_net *net = c->net;
    const size_t n = c->n, ni = net->w[l], no = net->w[l + 1];
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)n, FN(nh__s)(net, l), G, (int)no, A,
         (int)ni, acc ? 1.0 : 0.0, out + net->offW[l], (int)ni);
    if (!net->bias[l]) return;
    real_t *b = out + net->offb[l];
    const real_t bs = (real_t)nh__net_bscale(net, l);
    if (!acc) memset(b, 0, no * sizeof *b);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < no; k++) b[k] += bs * G[i * no + k];
}

static void FN(nh__grad_into)(const nh_curv *c, real_t *g) {
    const FN(nh__eng) *e = NH_ENG(c);
    for (size_t l = 0; l < c->L; l++) FN(nh__param_grad)(c, l, e->D[l + 1], e->A[l], g, 0);
}

static nh_status FN(nh__grad)(nh_curv *c, double *grad) {
    real_t *o = FN(nh__vbuf)(NH_ENG(c)->ob, grad);
    FN(nh__grad_into)(c, o);
    return FN(nh__vout)(o, c->P, grad, "nh_curv_grad");
}

/* out = J^T adjY: the linear backward pass seeded with dC/dY := adjY. */
static void FN(nh__backward_linear)(nh_curv *c, const real_t *adjY, real_t *out) {
    FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n;
    const real_t co = (real_t)c->cout;
    real_t *cur = e->bufA, *nxt = e->bufB;
    for (size_t i = 0; i < n * c->nout; i++) cur[i] = co * adjY[i];
    for (size_t l = c->L; l-- > 0;) {
        FN(nh__param_grad)(c, l, cur, e->A[l], out, 0);
        if (l == 0) break;
        const size_t ni = net->w[l], no = net->w[l + 1];
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, FN(nh__s)(net, l), cur, (int)no,
             FN(nh__W)(c, l), (int)ni, 0.0, nxt, (int)ni);
        FN(nh__mul)(n * ni, nxt, nxt, e->S1[l]);
        real_t *t = cur; cur = nxt; nxt = t;
    }
}

/* Forward R-pass of nb stacked samples blocks (nb = 1: the cached batch):
 * RZ[l+1] = s_l (A V_l^T + RA W_l^T) + beta v_l, RA[l+1] = S1 o RZ[l+1].
 * V holds nb directions at stride P; RZ, RA the nb blocks of n rows each. */
static void FN(nh__rforward_n)(const nh_curv *c, size_t nb, const real_t *V, real_t **RZ, real_t **RA) {
    const FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L, P = c->P;
    for (size_t l = 0; l < L; l++) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const real_t s = FN(nh__s)(net, l), bs = (real_t)nh__net_bscale(net, l);
        for (size_t j = 0; j < nb; j++)
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni, s, e->A[l], (int)ni,
                 V + j * P + net->offW[l], (int)ni, 0.0, RZ[l + 1] + j * n * no, (int)no);
        if (l > 0)
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(nb * n), (int)no, (int)ni, s, RA[l], (int)ni,
                 FN(nh__W)(c, l), (int)ni, 1.0, RZ[l + 1], (int)no);
        for (size_t j = 0; j < nb; j++) {
            const real_t *vb = V + j * P + (net->bias[l] ? net->offb[l] : 0);
            real_t *rz = RZ[l + 1] + j * n * no;
            for (size_t i = 0; net->bias[l] && i < n; i++)
                for (size_t k = 0; k < no; k++) rz[i * no + k] += bs * vb[k];
            if (l + 1 < L) {
                const real_t *s1 = e->S1[l + 1];
                real_t *ra = RA[l + 1] + j * n * no;
                FN(nh__mul)(n * no, ra, s1, rz);
            }
        }
    }
}

/* seed[n x n_L] = cout HC (cout RZL): the R of dC/dY, HC applied in double. */
static void FN(nh__hc)(nh_curv *c, const real_t *rzL, real_t *seed) {
    const size_t nm = c->n * c->nout;
    for (size_t i = 0; i < nm; i++) c->ry[i] = (double)rzL[i];
    nh__hc_apply(c, c->ry, c->adj);
    for (size_t i = 0; i < nm; i++) seed[i] = (real_t)c->adj[i];
}

/* One backward R-step from layer l+1 to l for nb blocks: nxt = R(D[l]) from
 * cur = R(D[l+1]) (have: cur is set; else only the D V_l and sigma'' terms). */
static void FN(nh__rstep)(const nh_curv *c, size_t l, size_t nb, const real_t *V, const real_t *cur, int have,
                          real_t **RZ, real_t *nxt) {
    const FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n, ni = net->w[l], no = net->w[l + 1];
    const real_t s = FN(nh__s)(net, l);
    /* R(dA[l]) = s_l (D V_l + RD W_l), the RD W_l part stacked over the blocks. */
    for (size_t j = 0; j < nb; j++)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, s, e->D[l + 1], (int)no,
             V + j * c->P + net->offW[l], (int)ni, 0.0, nxt + j * n * ni, (int)ni);
    if (have)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(nb * n), (int)ni, (int)no, s, cur, (int)no,
             FN(nh__W)(c, l), (int)ni, 1.0, nxt, (int)ni);
    const real_t *s1 = e->S1[l], *s2 = e->S2[l], *da = e->dA[l];
    const size_t m = n * ni;
    const int nt = nh__par(m);
    for (size_t j = 0; j < nb; j++) {
        real_t *x = nxt + j * m;
        const real_t *rz = RZ[l] + j * m;
#pragma omp parallel for simd schedule(static) num_threads(nt) if (nt > 1)
        for (size_t i = 0; i < m; i++) x[i] = x[i] * s1[i] + da[i] * s2[i] * rz[i];
    }
}

/* Backward R-pass.  rdY = the R of dC/dY (NULL for zero: then out = S v). */
static void FN(nh__backward_r)(nh_curv *c, const real_t *v, const real_t *rdY, real_t *out) {
    FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    real_t *cur = e->bufA, *nxt = e->bufB;
    int have = rdY != NULL;
    const real_t co = (real_t)c->cout;
    if (have)
        for (size_t i = 0; i < c->n * c->nout; i++) cur[i] = co * rdY[i];
    for (size_t l = c->L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        if (have) {
            FN(nh__param_grad)(c, l, cur, e->A[l], out, 0);
        } else {
            memset(out + net->offW[l], 0, ni * no * sizeof *out);
            if (net->bias[l]) memset(out + net->offb[l], 0, no * sizeof *out);
        }
        if (l == 0) break;
        /* + s_l D[l+1]^T RA[l] */
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)c->n, FN(nh__s)(net, l), e->D[l + 1],
             (int)no, e->RA[l], (int)ni, 1.0, out + net->offW[l], (int)ni);
        FN(nh__rstep)(c, l, 1, v, cur, have, e->RZ, nxt);
        have = 1;
        real_t *t = cur; cur = nxt; nxt = t;
    }
}

/* ----------------------------------------------------------- products */

/* out = H v, I v or S v. */
static nh_status FN(nh__op)(nh_curv *c, const double *v, double *out, int op, const char *func) {
    FN(nh__eng) *e = NH_ENG(c);
    const real_t *vr = NULL;
    NH_TRY(FN(nh__vin)(v, c->P, e->vb, &vr, func));
    real_t *o = FN(nh__vbuf)(e->ob, out);
    FN(nh__rforward_n)(c, 1, vr, e->RZ, e->RA);
    if (op != NH_OP_S) FN(nh__hc)(c, e->RZ[c->L], e->adj);
    if (op == NH_OP_H) FN(nh__backward_r)(c, vr, e->adj, o);
    else if (op == NH_OP_I) FN(nh__backward_linear)(c, e->adj, o);
    else FN(nh__backward_r)(c, vr, NULL, o);
    return FN(nh__vout)(o, c->P, out, func);
}

static nh_status FN(nh__hvp)(nh_curv *c, const double *v, double *out) {
    return FN(nh__op)(c, v, out, NH_OP_H, "nh_curv_hvp");
}
static nh_status FN(nh__ivp)(nh_curv *c, const double *v, double *out) {
    return FN(nh__op)(c, v, out, NH_OP_I, "nh_curv_ivp");
}
static nh_status FN(nh__svp)(nh_curv *c, const double *v, double *out) {
    return FN(nh__op)(c, v, out, NH_OP_S, "nh_curv_svp");
}

static nh_status FN(nh__isvp)(nh_curv *c, const double *v, double *iv, double *sv) {
    FN(nh__eng) *e = NH_ENG(c);
    const real_t *vr = NULL;
    NH_TRY(FN(nh__vin)(v, c->P, e->vb, &vr, "nh_curv_isvp"));
    FN(nh__rforward_n)(c, 1, vr, e->RZ, e->RA);
    FN(nh__hc)(c, e->RZ[c->L], e->adj);
    real_t *o = FN(nh__vbuf)(e->ob, iv);
    FN(nh__backward_linear)(c, e->adj, o);
    NH_TRY(FN(nh__vout)(o, c->P, iv, "nh_curv_isvp"));
    o = FN(nh__vbuf)(e->ob, sv);
    FN(nh__backward_r)(c, vr, NULL, o);
    return FN(nh__vout)(o, c->P, sv, "nh_curv_isvp");
}

static nh_status FN(nh__jvp)(nh_curv *c, const double *v, double *jv) {
    FN(nh__eng) *e = NH_ENG(c);
    const real_t *vr = NULL;
    NH_TRY(FN(nh__vin)(v, c->P, e->vb, &vr, "nh_curv_jvp"));
    FN(nh__rforward_n)(c, 1, vr, e->RZ, e->RA);
    const size_t nm = c->n * c->nout;
    for (size_t i = 0; i < nm; i++) jv[i] = c->cout * (double)e->RZ[c->L][i];
    size_t first = 0, bad = nh__count_nonfinite(jv, nm, &first);
    if (bad) return nh__fail(NH_ENUMERIC, "nh_curv_jvp", "J v has %zu non-finite entries (overflow)", bad);
    return NH_OK;
}

static nh_status FN(nh__vjp)(nh_curv *c, const double *u, double *out) {
    FN(nh__eng) *e = NH_ENG(c);
    size_t first = 0, bad = FN(nh__vcopy)(u, c->n * c->nout, e->adj, &first);
    if (bad)
        return nh__fail(NH_ENONFINITE, "nh_curv_vjp", "u has %zu entries that are not finite in %s (first at "
                        "index %zu)", bad, nh__prec_name(c), first);
    real_t *o = FN(nh__vbuf)(e->ob, out);
    FN(nh__backward_linear)(c, e->adj, o);
    return FN(nh__vout)(o, c->P, out, "nh_curv_vjp");
}

/* --------------------------------------------------------- block H v */

/* Block H v: the m vectors go through the R-passes together, in chunks of
 * mb.  The GEMMs with W_l (RA W_l^T forward, RD W_l backward) run once per
 * layer on the stacked (mb n) x n_l matrices; the weight-gradient part of
 * each vector, s_l (RD_j^T A + D^T RA_j), is one GEMM with inner dimension 2n
 * on [RD_j; D] and [A; RA_j].  Same sums as H v, so the results agree with m
 * single products to rounding. */
typedef struct FN(nh__blk) {
    size_t mb;
    real_t *RZb[64], *RAb[64], **RZ, **RA, **tab;
    real_t *cur, *nxt, *Xc, *Yc, *Vr, *Or, *ws;
} FN(nh__blk);

static void FN(nh__blk_free)(FN(nh__blk) *b) { free(b->tab); free(b->ws); }

static nh_status FN(nh__blk_alloc)(const nh_curv *c, size_t m, FN(nh__blk) *b) {
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L, wmax = c->wmax;
    size_t sumw = 0;
    for (size_t l = 1; l <= L; l++) sumw += net->w[l];
    /* Per vector: RZ, RA of layers 1..L, two backward buffers (+ v and its result in single). */
    const size_t per = n * (2 * sumw + 2 * wmax) + (NH_T_NP ? 2 * c->P : 0);
    size_t mb = m < 16 ? m : 16;
    while (mb > 1 && ((double)(mb * per) * sizeof(real_t) > 1e9 || !nh__fits_int(mb * n * wmax))) mb--;
    int ok = 1;
    size_t total = nh__add(nh__mul(mb, per, &ok), 4 * n * wmax, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(real_t), &ok), "nh_curv_hvp_block", "the block H v workspace"));
    if (!nh__fits_int(mb * n * wmax) || !nh__fits_int(2 * n))
        return nh__fail(NH_ETOOLARGE, "nh_curv_hvp_block", "batch x width exceeds the BLAS integer range");
    memset(b, 0, sizeof *b);
    b->mb = mb;
    b->ws = nh__malloc(total * sizeof(real_t));
    b->RZ = b->RZb; b->RA = b->RAb;
    if (L + 1 > 64) {
        b->tab = nh__malloc(2 * (L + 1) * sizeof *b->tab);
        b->RZ = b->tab; b->RA = b->tab ? b->tab + L + 1 : NULL;
    }
    if (!b->ws || (L + 1 > 64 && !b->tab)) {
        FN(nh__blk_free)(b);
        return nh__fail(NH_ENOMEM, "nh_curv_hvp_block", "cannot allocate %zu entries for the block H v workspace",
                        total);
    }
    real_t *p = b->ws;
    b->RZ[0] = b->RA[0] = NULL;
    for (size_t l = 1; l <= L; l++) { b->RZ[l] = p; p += mb * n * net->w[l]; b->RA[l] = p; p += mb * n * net->w[l]; }
    b->cur = p; p += mb * n * wmax;
    b->nxt = p; p += mb * n * wmax;
    b->Xc = p; p += 2 * n * wmax;
    b->Yc = p; p += 2 * n * wmax;
    if (NH_T_NP) { b->Vr = p; p += mb * c->P; b->Or = p; }
    return NH_OK;
}

/* The backward R-pass of nb blocks into Ob (nb results at stride P). */
static void FN(nh__blk_backward)(const nh_curv *c, FN(nh__blk) *b, size_t nb, const real_t *Vb, real_t *Ob) {
    const FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n, P = c->P;
    real_t *cur = b->cur, *nxt = b->nxt;
    for (size_t l = c->L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        if (l > 0) {
            memcpy(b->Xc + n * no, e->D[l + 1], n * no * sizeof *b->Xc);
            memcpy(b->Yc, e->A[l], n * ni * sizeof *b->Yc);
        }
        for (size_t j = 0; j < nb; j++) {
            real_t *o = Ob + j * P;
            const real_t *cj = cur + j * n * no;
            if (l > 0) {
                memcpy(b->Xc, cj, n * no * sizeof *b->Xc);
                memcpy(b->Yc + n * ni, b->RA[l] + j * n * ni, n * ni * sizeof *b->Yc);
            }
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)(l > 0 ? 2 * n : n),
                 FN(nh__s)(net, l), l > 0 ? b->Xc : cj, (int)no, l > 0 ? b->Yc : e->A[0], (int)ni, 0.0,
                 o + net->offW[l], (int)ni);
            if (!net->bias[l]) continue;
            real_t *bb = o + net->offb[l];
            const real_t bs = (real_t)nh__net_bscale(net, l);
            memset(bb, 0, no * sizeof *bb);
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < no; k++) bb[k] += bs * cj[i * no + k];
        }
        if (l == 0) break;
        FN(nh__rstep)(c, l, nb, Vb, cur, 1, b->RZ, nxt);
        real_t *t = cur; cur = nxt; nxt = t;
    }
}

static nh_status FN(nh__hvp_block)(nh_curv *c, size_t m, const double *V, double *OUT) {
    const size_t P = c->P, nm = c->n * c->nout;
    FN(nh__blk) b;
    NH_TRY(FN(nh__blk_alloc)(c, m, &b));
    nh_status st = NH_OK;
    for (size_t j0 = 0; j0 < m && st == NH_OK; j0 += b.mb) {
        const size_t nb = m - j0 < b.mb ? m - j0 : b.mb;
        const real_t *Vb = NULL;
        st = FN(nh__vin)(V + j0 * P, nb * P, b.Vr, &Vb, "nh_curv_hvp_block");
        if (st != NH_OK) break;
        real_t *Ob = FN(nh__vbuf)(b.Or, OUT + j0 * P);
        FN(nh__rforward_n)(c, nb, Vb, b.RZ, b.RA);
        for (size_t j = 0; j < nb; j++) {
            /* The backward seed: cout times HC (cout RZ[L]). */
            real_t *cj = b.cur + j * nm;
            FN(nh__hc)(c, b.RZ[c->L] + j * nm, cj);
            for (size_t i = 0; i < nm; i++) cj[i] *= (real_t)c->cout;
        }
        FN(nh__blk_backward)(c, &b, nb, Vb, Ob);
        st = FN(nh__vout)(Ob, nb * P, OUT + j0 * P, "nh_curv_hvp_block");
    }
    FN(nh__blk_free)(&b);
    return st;
}

/* ---------------------------------------------- NTK, G, Jacobian, steps */

/* Per-output backward: Dk[l] stacked as nout blocks of n x n_l (row k*n + i),
 * Dk = d f_k / dZ[l].  Step from layer l+1 to l: dAk = s_l Dk W_l, Dk = dAk o S1. */
static void FN(nh__dk_seed)(const nh_curv *c, real_t *cur) {
    const size_t n = c->n, m = c->nout;
    memset(cur, 0, m * n * m * sizeof *cur);
    for (size_t k = 0; k < m; k++)
        for (size_t i = 0; i < n; i++) cur[(k * n + i) * m + k] = (real_t)c->cout;
}

static void FN(nh__dk_step)(const nh_curv *c, size_t l, const real_t *cur, real_t *dak, real_t *nxt) {
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, ni = net->w[l], no = net->w[l + 1];
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(m * n), (int)ni, (int)no, FN(nh__s)(net, l), cur, (int)no,
         FN(nh__W)(c, l), (int)ni, 0.0, dak, (int)ni);
    const real_t *s1 = NH_ENG(c)->S1[l];
    for (size_t k = 0; k < m; k++) {
        const real_t *src = dak + k * n * ni;
        real_t *dst = nxt + k * n * ni;
        FN(nh__mul)(n * ni, dst, src, s1);
    }
}

/* *out = three stacks of n n_L x wmax entries, then extra entries (checked). */
static nh_status FN(nh__stacks)(const nh_curv *c, size_t extra, const char *func, const char *what, real_t **out) {
    int ok = 1;
    size_t stack = nh__mul(c->n * c->nout, c->wmax, &ok);
    size_t total = nh__add(nh__mul(stack, 3, &ok), extra, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(real_t), &ok), func, what));
    if (!nh__fits_int(stack)) return nh__fail(NH_ETOOLARGE, func, "%s exceeds the BLAS integer range", what);
    *out = nh__malloc(total * sizeof **out);
    if (!*out) return nh__fail(NH_ENOMEM, func, "cannot allocate %s (%zu entries)", what, total);
    return NH_OK;
}

static nh_status FN(nh__ntk)(nh_curv *c, double *K) {
    const FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, nm = n * m, stack = nm * c->wmax;
    int ok = 1;
    size_t extra = nh__add(nh__mul(n, n, &ok), nh__mul(nm, nm, &ok), &ok);
    if (!ok || !nh__fits_int(nh__mul(nm, nm, &ok)) || !ok)
        return nh__fail(NH_ETOOLARGE, "nh_curv_ntk", "NTK too large for BLAS integers");
    real_t *work;
    NH_TRY(FN(nh__stacks)(c, extra, "nh_curv_ntk", "the NTK workspace", &work));
    real_t *cur = work, *nxt = cur + stack, *dak = nxt + stack, *Ga = dak + stack, *Gd = Ga + n * n;
    memset(K, 0, nm * nm * sizeof *K);
    FN(nh__dk_seed)(c, cur);
    for (size_t l = c->L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        /* A parameter selection keeps only its tensors' terms (the block Gram J_B J_B^T). */
        const real_t ws = c->lsel ? c->lsel[2 * l] : 1, bs = c->lsel ? c->lsel[2 * l + 1] : 1;
        const real_t s = FN(nh__s)(net, l), b2 = bs * (real_t)(nh__net_bscale(net, l) * nh__net_bscale(net, l));
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)ni, ws * s * s, e->A[l], (int)ni, e->A[l],
             (int)ni, 0.0, Ga, (int)n);
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nm, (int)nm, (int)no, 1.0, cur, (int)no, cur, (int)no, 0.0,
             Gd, (int)nm);
        /* The layer sum in double. */
#pragma omp parallel for schedule(static) num_threads(nh__threads()) if (n * n * m * m > 65536)
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < m; k++)
                for (size_t j = 0; j < n; j++)
                    for (size_t kk = 0; kk < m; kk++)
                        K[(i * m + k) * nm + j * m + kk] += (double)((Ga[i * n + j] + b2) * Gd[(k * n + i) * nm + kk * n + j]);
        if (l == 0) break;
        FN(nh__dk_step)(c, l, cur, dak, nxt);
        real_t *t = cur; cur = nxt; nxt = t;
    }
    free(work);
    size_t first = 0, bad = nh__count_nonfinite(K, nm * nm, &first);
    if (bad) return nh__fail(NH_ENUMERIC, "nh_curv_ntk", "K has %zu non-finite entries (overflow)", bad);
    return NH_OK;
}

/* Row norms: out[i] = s^2 ||A[l][i]||^2 + beta^2 (the c_l of the sheet), summed in double.  A parameter
 * selection keeps the terms of its tensors only (W_l: the first, b_l: the second): G of the block. */
static void FN(nh__cl)(const nh_curv *c, size_t l, real_t *out) {
    const size_t ni = c->net->w[l];
    const double ws = c->lsel ? c->lsel[2 * l] : 1, bsel = c->lsel ? c->lsel[2 * l + 1] : 1;
    const double s2 = ws * nh__net_wscale2(c->net, l), bs = nh__net_bscale(c->net, l), b2 = bsel * bs * bs;
    for (size_t i = 0; i < c->n; i++) {
        double acc = 0.0;
        const real_t *a = NH_ENG(c)->A[l] + i * ni;
        for (size_t j = 0; j < ni; j++) acc += (double)a[j] * a[j];
        out[i] = (real_t)(s2 * acc + b2);
    }
}

/* M[a][b] = W_l[a][b] S1[l][i][b]: the per-sample Jacobian of layer l. */
static void FN(nh__msample)(const nh_curv *c, size_t l, size_t i, real_t *M) {
    const size_t ni = c->net->w[l], no = c->net->w[l + 1];
    const real_t *W = FN(nh__W)(c, l), *s = NH_ENG(c)->S1[l] + i * ni;
    for (size_t a = 0; a < no; a++)
        for (size_t b = 0; b < ni; b++) M[a * ni + b] = W[a * ni + b] * s[b];
}

/* diag K(2) = c_2 + s_1^2 (S1[1]^2 o dK[1]) (W_1 o W_1)^T: one GEMM. */
static nh_status FN(nh__diagK2)(nh_curv *c, real_t **dK, real_t *cl) {
    const nh_net *net = c->net;
    const size_t n = c->n, n1 = net->w[1], n2 = net->w[2];
    real_t *wsq = nh__malloc(n1 * n2 * sizeof *wsq), *u = nh__malloc(n * n1 * sizeof *u);
    if (!wsq || !u) { free(wsq); free(u); return nh__fail(NH_ENOMEM, "nh_curv_G", "out of memory"); }
    const real_t *W1 = FN(nh__W)(c, 1), *S1 = NH_ENG(c)->S1[1];
    for (size_t i = 0; i < n1 * n2; i++) wsq[i] = W1[i] * W1[i];
    for (size_t i = 0; i < n * n1; i++) u[i] = S1[i] * S1[i] * dK[1][i];
    FN(nh__cl)(c, 1, cl);
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < n2; a++) dK[2][i * n2 + a] = cl[i];
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n2, (int)n1, (real_t)nh__net_wscale2(net, 1), u, (int)n1,
         wsq, (int)n1, 1.0, dK[2], (int)n2);
    free(wsq);
    free(u);
    return NH_OK;
}

/* Deep nets, one sample i: K(2) = c_2 I + c_1 s_1^2 M1 M1^T, then
 * K(l+1) = c_{l+1} I + s_l^2 M K(l) M^T, keeping diag K(l+1) in dK[l+1].
 * w4 holds four wmax^2 matrices; cls[l][i] = c_l of sample i. */
static void FN(nh__diagK_sample)(nh_curv *c, size_t i, real_t **dK, real_t **cls, const real_t *c1, real_t *w4) {
    const nh_net *net = c->net;
    const size_t w2 = c->wmax * c->wmax, n1 = net->w[1], n2 = net->w[2];
    real_t *M = w4, *Kc = w4 + w2, *Tm = w4 + 2 * w2, *Kn = w4 + 3 * w2;
    FN(nh__msample)(c, 1, i, M);
    SYRK(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n2, (int)n1, (real_t)((double)c1[i] * nh__net_wscale2(net, 1)), M, (int)n1,
         0.0, Kc, (int)n2);
    for (size_t a = 0; a < n2; a++) {
        Kc[a * n2 + a] += cls[2][i];
        for (size_t b = 0; b < a; b++) Kc[a * n2 + b] = Kc[b * n2 + a];
    }
    for (size_t l = 2; l + 1 < c->L; l++) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const real_t s2 = (real_t)nh__net_wscale2(net, l);
        FN(nh__msample)(c, l, i, M);
        SYMM(CblasRowMajor, CblasRight, CblasUpper, (int)no, (int)ni, 1.0, Kc, (int)ni, M, (int)ni, 0.0, Tm, (int)ni);
        for (size_t a = 0; a < no; a++) {
            double acc = 0.0;
            for (size_t b = 0; b < ni; b++) acc += (double)Tm[a * ni + b] * M[a * ni + b];
            dK[l + 1][i * no + a] = cls[l + 1][i] + (real_t)((double)s2 * acc);
        }
        if (l + 2 < c->L) {
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)no, (int)no, (int)ni, s2, Tm, (int)ni, M, (int)ni, 0.0,
                 Kn, (int)no);
            for (size_t a = 0; a < no; a++) Kn[a * no + a] += cls[l + 1][i];
            real_t *t = Kc; Kc = Kn; Kn = t;
        }
    }
}

/* diag of the per-sample layer kernel K(l) = sum_p (dZ[l]_m/dtheta_p)^2, for
 * l = 1..L-1, into dK[l] (n x n_l).  K(1) = c_1 I; only diag K(2) is needed
 * for L <= 3 (one GEMM with W o W); deeper nets carry the full n_l x n_l K(l)
 * per sample, O(n_l^2 (n_{l-1} + n_{l+1})) each. */
static nh_status FN(nh__diagK)(nh_curv *c, real_t **dK) {
    const size_t n = c->n, L = c->L, n1 = c->net->w[1];
    int ok = 1;
    size_t w4 = nh__mul(nh__mul(c->wmax, c->wmax, &ok), 4, &ok);
    size_t total = nh__add(nh__mul(n, L + 1, &ok), L >= 4 ? w4 : 0, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(real_t), &ok), "nh_curv_G", "the per-sample layer kernels"));
    if (L >= 4 && !nh__fits_int(c->wmax * c->wmax))
        return nh__fail(NH_ETOOLARGE, "nh_curv_G", "layer kernels exceed the BLAS integer range");
    real_t *buf = nh__malloc(total * sizeof *buf);
    real_t **cls = nh__calloc(L + 1, sizeof *cls);
    if (!buf || !cls) { free(buf); free(cls); return nh__fail(NH_ENOMEM, "nh_curv_G", "out of memory"); }
    for (size_t l = 0; l <= L; l++) cls[l] = buf + l * n; /* cls[l] = c_l = row norms of A[l-1] */
    real_t *c1 = cls[1];
    FN(nh__cl)(c, 0, c1);
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < n1; a++) dK[1][i * n1 + a] = c1[i];
    nh_status st = L >= 3 ? FN(nh__diagK2)(c, dK, cls[2]) : NH_OK;
    if (st == NH_OK && L >= 4) {
        for (size_t l = 3; l < L; l++) FN(nh__cl)(c, l - 1, cls[l]);
        for (size_t i = 0; i < n; i++) FN(nh__diagK_sample)(c, i, dK, cls, c1, buf + (L + 1) * n);
    }
    free(cls);
    free(buf);
    return st;
}

static nh_status FN(nh__G)(nh_curv *c, double *G) {
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, L = c->L, nm = n * m, stack = nm * c->wmax;
    memset(G, 0, nm * sizeof *G);
    if (L == 1) return NH_OK; /* f is linear in theta */
    int ok = 1;
    size_t sumw = 0;
    for (size_t l = 1; l < L; l++) sumw = nh__add(sumw, net->w[l], &ok);
    size_t extra = nh__mul(n, sumw, &ok);
    if (!ok) return nh__fail(NH_ETOOLARGE, "nh_curv_G", "the G workspace size overflows");
    real_t *work;
    NH_TRY(FN(nh__stacks)(c, extra, "nh_curv_G", "the G workspace", &work));
    real_t **dK = nh__calloc(L + 1, sizeof *dK);
    if (!dK) { free(work); return nh__fail(NH_ENOMEM, "nh_curv_G", "cannot allocate the G workspace"); }
    real_t *cur = work, *nxt = cur + stack, *dak = nxt + stack, *p = dak + stack;
    for (size_t l = 1; l < L; l++) { dK[l] = p; p += n * net->w[l]; }
    nh_status st = FN(nh__diagK)(c, dK);
    if (st == NH_OK) {
        /* g_k(x_i) = sum_{l=1}^{L-1} sum_m (df_k/dA[l])_m sigma''(Z[l]_m) K(l)_mm, summed in double */
        FN(nh__dk_seed)(c, cur);
        for (size_t l = L - 1; l >= 1; l--) {
            const size_t ni = net->w[l];
            FN(nh__dk_step)(c, l, cur, dak, nxt);
            for (size_t k = 0; k < m; k++)
                for (size_t i = 0; i < n; i++) {
                    const real_t *d = dak + (k * n + i) * ni, *s2 = NH_ENG(c)->S2[l] + i * ni, *kk = dK[l] + i * ni;
                    double acc = 0.0;
                    for (size_t j = 0; j < ni; j++) acc += (double)(d[j] * s2[j] * kk[j]);
                    G[i * m + k] += acc;
                }
            real_t *t = cur; cur = nxt; nxt = t;
        }
        size_t first = 0, bad = nh__count_nonfinite(G, nm, &first);
        if (bad) st = nh__fail(NH_ENUMERIC, "nh_curv_G", "G has %zu non-finite entries (overflow)", bad);
    }
    free(work);
    free(dK);
    return st;
}

static nh_status FN(nh__jacobian)(nh_curv *c, double *J) {
    const nh_net *net = c->net;
    const size_t n = c->n, m = c->nout, nm = n * m, P = c->P, stack = nm * c->wmax;
    real_t *work;
    NH_TRY(FN(nh__stacks)(c, 0, "nh_curv_jacobian", "the Jacobian workspace", &work));
    real_t *cur = work, *nxt = cur + stack, *dak = nxt + stack;
    FN(nh__dk_seed)(c, cur);
    for (size_t l = c->L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        const real_t s = FN(nh__s)(net, l), bs = (real_t)nh__net_bscale(net, l);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < m; k++) {
                double *row = J + (i * m + k) * P;
                const real_t *d = cur + (k * n + i) * no, *a = NH_ENG(c)->A[l] + i * ni;
                for (size_t o = 0; o < no; o++) {
                    for (size_t q = 0; q < ni; q++) row[net->offW[l] + o * ni + q] = (double)(s * d[o] * a[q]);
                    if (net->bias[l]) row[net->offb[l] + o] = (double)(bs * d[o]);
                }
            }
        if (l == 0) break;
        FN(nh__dk_step)(c, l, cur, dak, nxt);
        real_t *t = cur; cur = nxt; nxt = t;
    }
    free(work);
    return NH_OK;
}

/* theta -= eta grad on the double parameters, then the passes; on a
 * non-finite result theta is restored (curv.c: nh__step_failed). */
static nh_status FN(nh__gd_step)(nh_curv *c, nh_net *net, double eta) {
    const size_t P = c->P;
    NH_TRY(nh__gd_buffers(c, sizeof(real_t)));
    double *old = c->gd_buf;
    real_t *g = (real_t *)(old + P);
    FN(nh__grad_into)(c, g);
    const double loss0 = c->lossval;
    size_t bad = FN(nh__step_theta)(c, net->theta, old, g, eta);
    nh_status st = bad ? NH_EDIVERGED : FN(nh__passes)(c, "nh_curv_gd_step");
    if (st != NH_OK) return nh__step_failed(c, net, eta, loss0, bad);
    return NH_OK;
}

/* ------------------------------------------------- diagonals (nh_curv_diag)
 * Per sample, the Hessian of C w.r.t. Z[k] is Hz_k = Iz_k + Rz_k with
 *   Iz_k = Dk^T HC Dk            (Dk = d f / dZ[k], the per-output stacks),
 *   Rz_L = 0, Rz_k = M_k^T Rz_{k+1} M_k + diag(S2[k] o dA[k]),
 *   M_k = s_k W_k diag(S1[k])    (dZ[k+1]/dZ[k]).
 * Z[l+1] is linear in W_l, b_l, so the diagonal of a block is
 *   W_l[r][c]: s_l^2 sum_i Hz_{l+1}[i][r][r] A[l][i][c]^2,  b_l[r]: beta_l^2 sum_i Hz_{l+1}[i][r][r]:
 * one GEMM with squared activations per layer, for I (Iz) and S (Rz). */

/* out_W_l = s_l^2 q^T (A o A), out_b_l = beta_l^2 colsum(q), q[n x n_{l+1}]; asq = A[l] o A[l]. */
static void FN(nh__diag_param)(const nh_curv *c, size_t l, const real_t *q, const real_t *asq, real_t *out) {
    const nh_net *net = c->net;
    const size_t n = c->n, ni = net->w[l], no = net->w[l + 1];
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)n, (real_t)nh__net_wscale2(net, l), q,
         (int)no, asq, (int)ni, 0.0, out + net->offW[l], (int)ni);
    if (!net->bias[l]) return;
    const double bs = nh__net_bscale(net, l);
    for (size_t k = 0; k < no; k++) {
        double acc = 0.0;
        for (size_t i = 0; i < n; i++) acc += (double)q[i * no + k];
        out[net->offb[l] + k] = (real_t)(bs * bs * acc);
    }
}

/* q[i][r] = sum_{k,k'} HC_i[k][k'] Dk[k][i][r] Dk[k'][i][r] (= diag Iz), summed in double; cur: the stacks, width w. */
static void FN(nh__diag_iz)(const nh_curv *c, const real_t *cur, size_t w, real_t *q, double *row) {
    const size_t n = c->n, m = c->nout;
    for (size_t i = 0; i < n; i++) {
        const double *hc = c->HC + i * m * m;
        memset(row, 0, w * sizeof *row);
        for (size_t k = 0; k < m; k++) {
            const real_t *uk = cur + (k * n + i) * w;
            for (size_t k2 = k; k2 < m; k2++) {
                const double h = (k2 == k ? 1.0 : 2.0) * hc[k * m + k2]; /* HC symmetric */
                if (h == 0.0) continue;
                const real_t *u2 = cur + (k2 * n + i) * w;
                for (size_t r = 0; r < w; r++) row[r] += h * (double)uk[r] * (double)u2[r];
            }
        }
        for (size_t r = 0; r < w; r++) q[i * w + r] = (real_t)row[r];
    }
}

/* Deep nets (L >= 4), one sample i: the dense Rz_{L-2}, then Rz_k for k =
 * L-3..1, adding diag(M_k^T Rz_{k+1} M_k) to dR[k][i].  w4: 4 wmax^2. */
static void FN(nh__diag_rz_sample)(const nh_curv *c, size_t i, real_t **dR, real_t *w4) {
    const FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t L = c->L, w2 = c->wmax * c->wmax;
    real_t *M = w4, *T = w4 + w2, *Rc = w4 + 2 * w2, *Rn = w4 + 3 * w2;
    size_t k = L - 2, nk = net->w[k], nk1 = net->w[k + 1];
    /* Rz_{L-2} = s^2 M^T diag(d_{L-1}) M + diag(d_{L-2}), d_k = S2[k] o dA[k]. */
    FN(nh__msample)(c, k, i, M);
    for (size_t r = 0; r < nk1; r++)
        for (size_t b = 0; b < nk; b++) T[r * nk + b] = M[r * nk + b] * e->S2[k + 1][i * nk1 + r] * e->dA[k + 1][i * nk1 + r];
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)nk, (int)nk1, (real_t)nh__net_wscale2(net, k), M,
         (int)nk, T, (int)nk, 0.0, Rc, (int)nk);
    for (size_t a = 0; a < nk; a++) Rc[a * nk + a] += e->S2[k][i * nk + a] * e->dA[k][i * nk + a];
    for (k = L - 3; k >= 1; k--) {
        nk = net->w[k]; nk1 = net->w[k + 1];
        const real_t s2 = (real_t)nh__net_wscale2(net, k);
        FN(nh__msample)(c, k, i, M);
        /* Rc is stored in full (a GEMM result): GEMM, which OpenBLAS runs faster than SYMM */
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nk1, (int)nk, (int)nk1, 1.0, Rc, (int)nk1, M, (int)nk, 0.0,
             T, (int)nk);
        for (size_t b = 0; b < nk; b++) {
            double acc = 0.0;
            for (size_t r = 0; r < nk1; r++) acc += (double)M[r * nk + b] * (double)T[r * nk + b];
            dR[k][i * nk + b] += (real_t)((double)s2 * acc);
        }
        if (k == 1) break;
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)nk, (int)nk1, s2, M, (int)nk, T, (int)nk, 0.0,
             Rn, (int)nk);
        for (size_t a = 0; a < nk; a++) Rn[a * nk + a] += e->S2[k][i * nk + a] * e->dA[k][i * nk + a];
        real_t *t = Rc; Rc = Rn; Rn = t;
    }
}

/* dR[k] = diag Rz_k (n x n_k), k = 1..L-1: d_k, plus for k = L-2 the squared-
 * weight GEMM s^2 S1^2 o (d_{L-1} (W o W)), plus for k <= L-3 the dense
 * per-sample recursion.  tmp: n wmax + wmax^2 (+ 4 wmax^2 when L >= 4). */
static void FN(nh__diag_rz)(const nh_curv *c, real_t **dR, real_t *tmp) {
    const FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L;
    for (size_t k = 1; k < L; k++)
        for (size_t j = 0; j < n * net->w[k]; j++) dR[k][j] = e->S2[k][j] * e->dA[k][j];
    if (L < 3) return;
    const size_t k = L - 2, nk = net->w[k], nk1 = net->w[k + 1];
    real_t *u = tmp, *wsq = tmp + n * c->wmax;
    const real_t *W = FN(nh__W)(c, k);
    for (size_t j = 0; j < nk * nk1; j++) wsq[j] = W[j] * W[j];
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)nk, (int)nk1, (real_t)nh__net_wscale2(net, k),
         dR[k + 1], (int)nk1, wsq, (int)nk, 0.0, u, (int)nk);
    for (size_t j = 0; j < n * nk; j++) dR[k][j] += e->S1[k][j] * e->S1[k][j] * u[j];
    if (L >= 4)
        for (size_t i = 0; i < n; i++) FN(nh__diag_rz_sample)(c, i, dR, wsq);
}

/* The workspace of the exact diagonals, sized for the context's largest
 * batch (c->B rows) and reused by every batch: three per-output stacks,
 * dR (n sum(widths)), q, A o A, the S recursion's n wmax + wmax^2 (+ 4
 * wmax^2 for L >= 4), and in single precision two float P-vectors. */
typedef struct FN(nh__dws) { real_t *work, **dR; double *row; } FN(nh__dws);

static void FN(nh__dws_free)(FN(nh__dws) *w) { free(w->work); free(w->dR); free(w->row); }

static nh_status FN(nh__dws_alloc)(const nh_curv *c, FN(nh__dws) *w) {
    const size_t B = c->B, L = c->L, wmax = c->wmax;
    int ok = 1;
    size_t sumw = 0;
    for (size_t l = 1; l < L; l++) sumw = nh__add(sumw, c->net->w[l], &ok);
    size_t w2 = nh__mul(wmax, wmax, &ok), stack = nh__mul(nh__mul(B, c->nout, &ok), wmax, &ok);
    size_t total = nh__add(nh__mul(stack, 3, &ok), nh__mul(B, nh__add(sumw, 3 * wmax, &ok), &ok), &ok);
    total = nh__add(total, nh__mul(w2, L >= 4 ? 5 : 1, &ok), &ok);
    total = nh__add(total, NH_T_NP ? nh__mul(c->P, 2, &ok) : 0, &ok);
    memset(w, 0, sizeof *w);
    NH_TRY(nh__check_bytes(ok, nh__mul(total, sizeof(real_t), &ok), "nh_curv_diag", "the diagonal workspace"));
    if (!nh__fits_int(stack) || !nh__fits_int(w2))
        return nh__fail(NH_ETOOLARGE, "nh_curv_diag", "the diagonal workspace exceeds the BLAS integer range");
    w->work = nh__malloc(total * sizeof(real_t));
    w->dR = nh__calloc(L + 1, sizeof *w->dR);
    w->row = nh__malloc(wmax * sizeof *w->row);
    if (!w->work || !w->dR || !w->row) {
        FN(nh__dws_free)(w);
        return nh__fail(NH_ENOMEM, "nh_curv_diag", "cannot allocate the diagonal workspace (%zu entries)", total);
    }
    return NH_OK;
}

/* The current batch's diag I and diag S (P each, overwritten, double). */
static nh_status FN(nh__diag_batch)(nh_curv *c, FN(nh__dws) *w, double *dI, double *dS) {
    const FN(nh__eng) *e = NH_ENG(c);
    const nh_net *net = c->net;
    const size_t n = c->n, L = c->L, wmax = c->wmax, stack = c->B * c->nout * wmax;
    real_t *cur = w->work, *nxt = cur + stack, *dak = nxt + stack, *p = dak + stack, **dR = w->dR;
    for (size_t l = 1; l < L; l++) { dR[l] = p; p += c->B * net->w[l]; }
    real_t *q = p, *asq = q + c->B * wmax, *tmp = asq + c->B * wmax, *ob = tmp + c->B * wmax + wmax * wmax * (L >= 4 ? 5 : 1);
    real_t *oI = FN(nh__vbuf)(ob, dI), *oS = FN(nh__vbuf)(NH_T_NP ? ob + c->P : ob, dS);
    FN(nh__diag_rz)(c, dR, tmp);
    FN(nh__dk_seed)(c, cur);
    for (size_t l = L; l-- > 0;) {
        const size_t ni = net->w[l], no = net->w[l + 1];
        for (size_t j = 0; j < n * ni; j++) asq[j] = e->A[l][j] * e->A[l][j];
        FN(nh__diag_iz)(c, cur, no, q, w->row);
        FN(nh__diag_param)(c, l, q, asq, oI);
        if (l + 1 < L) {
            FN(nh__diag_param)(c, l, dR[l + 1], asq, oS);
        } else {
            memset(oS + net->offW[l], 0, ni * no * sizeof *oS);
            if (net->bias[l]) memset(oS + net->offb[l], 0, no * sizeof *oS);
        }
        if (l == 0) break;
        FN(nh__dk_step)(c, l, cur, dak, nxt);
        real_t *t = cur; cur = nxt; nxt = t;
    }
    NH_TRY(FN(nh__vout)(oI, c->P, dI, "nh_curv_diag"));
    return FN(nh__vout)(oS, c->P, dS, "nh_curv_diag");
}

#ifndef NH_T_SINGLE
static nh_status nh__batch(nh_curv *c, size_t b); /* curv.c: make batch b current */
#endif

/* diag I, diag S summed over the batches in order (acc: P doubles per
 * output for the batches after the first; NULL when unbatched). */
static nh_status FN(nh__diag_stream)(nh_curv *c, double *dI, double *dS, double *acc) {
    FN(nh__dws) w;
    NH_TRY(FN(nh__dws_alloc)(c, &w));
    nh_status st = NH_OK;
    const size_t P = c->P;
    for (size_t b = 0; b < c->nbatch && st == NH_OK; b++) {
        if (c->nbatch > 1) st = nh__batch(c, b);
        if (st == NH_OK) st = FN(nh__diag_batch)(c, &w, b ? acc : dI, b ? acc + P : dS);
        if (st == NH_OK && b)
            for (size_t p = 0; p < P; p++) { dI[p] += acc[p]; dS[p] += acc[P + p]; }
    }
    FN(nh__dws_free)(&w);
    return st;
}

static const nh__curv_ops FN(nh__ops) = {
    FN(nh__init), FN(nh__eng_free), FN(nh__refresh), FN(nh__grad), FN(nh__hvp), FN(nh__ivp), FN(nh__svp),
    FN(nh__isvp), FN(nh__hvp_block), FN(nh__jvp), FN(nh__vjp), FN(nh__ntk), FN(nh__G), FN(nh__jacobian),
    FN(nh__gd_step), FN(nh__pass), FN(nh__xwiden),
};

#undef real_t
#undef FN
#undef GEMM
#undef SYRK
#undef SYMM
#undef NH_T_NP
#undef NH_ENG
