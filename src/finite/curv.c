/* curv.c -- exact, matrix-free curvature of the loss: H v, I v, S v (the
 * Pearlmutter R-operator on the cached forward/backward passes), J v, J^T u,
 * the empirical NTK Gram, the Hessian-trace vector G, dense matrices for
 * small P, and gradient-descent steps, in float64 or float32.
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
 * V is S v, so H v = I v + S v exactly, by linearity.
 *
 * Layout: this file holds the context, the public functions and the
 * boundary, all in double (targets, outputs, loss, dC/dY, the HC blocks and
 * their application, conversions to and from float32, dense matrices,
 * eigensolvers).  The engine itself is curv_t.h, compiled below once for
 * double and once for float; each nh_curv calls its precision's table of
 * operations. */
#include "core/internal.h"
#include "finite/net_impl.h"
#include "core/blas.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct nh__curv_ops nh__curv_ops;

struct nh_curv {
    const nh_net *net;
    const nh__curv_ops *ops;
    nh_precision prec;
    size_t  n, L, nout, wmax, P; /* n: rows of the current batch */
    size_t  N, B, nbatch;  /* all rows, rows per batch, batches (1: unbatched) */
    size_t  off, cur;      /* first row of the current batch; batch whose passes are cached (NH_NONE) */
    size_t  nreal, nx; /* entries of the engine's arena (curv_t.h); of its separate copy of X (0 if unbatched) */
    size_t  bytes;     /* bytes of the two arenas */
    nh_loss loss;
    double  cout;      /* output scale (1 or 1/sqrt(n_{L-1})) */
    double  lossval;
    double *T, *Yall, *Eall, *HCall; /* targets copy, outputs, dC/dY, HC blocks: all N rows */
    double *Y, *E, *HC; /* views of the current batch's rows */
    double *ry, *adj;  /* R(Y) of a direction and cout HC R(Y)       */
    double *darena;
    double *gd_buf;    /* P doubles (theta before a step) + P reals (gradient); lazy */
    double *acc;       /* streaming accumulator, nacc doubles; lazy */
    size_t  nacc;
    void   *e;         /* the engine of this precision (curv_t.h)   */
    int     x32keep;   /* batched double context on float32 data: the engine keeps it as float, widens per batch */
    nh_progress_fn prog; /* progress callback (NULL: none), its user data, the running estimator's counts */
    void   *prog_user;
    const char *prog_est;
    size_t  prog_done, prog_planned;
    /* Parameter selection (nh_curv_select); nsel = 0: all of theta. */
    size_t  nsel, PB;  /* selected tensors; their total length P_B */
    size_t *sel, *idx; /* the tensors (ascending); the P_B theta indices, ascending */
    unsigned char *lsel; /* 2 L flags: W_l, b_l selected (the block NTK and G), or NULL */
    double *sbuf;      /* 3 P doubles: a scattered input and two full outputs */
};

struct nh__curv_ops {
    nh_status (*init)(nh_curv *c, const double *X, const float *X32); /* exactly one of X, X32 */
    void (*free)(void *e);
    nh_status (*refresh)(nh_curv *c);
    nh_status (*grad)(nh_curv *c, double *grad);
    nh_status (*hvp)(nh_curv *c, const double *v, double *out);
    nh_status (*ivp)(nh_curv *c, const double *v, double *out);
    nh_status (*svp)(nh_curv *c, const double *v, double *out);
    nh_status (*isvp)(nh_curv *c, const double *v, double *iv, double *sv);
    nh_status (*hvp_block)(nh_curv *c, size_t m, const double *V, double *OUT);
    nh_status (*jvp)(nh_curv *c, const double *v, double *jv);
    nh_status (*vjp)(nh_curv *c, const double *u, double *out);
    nh_status (*ntk)(nh_curv *c, double *K);
    nh_status (*G)(nh_curv *c, double *G);
    nh_status (*jacobian)(nh_curv *c, double *J);
    nh_status (*gd_step)(nh_curv *c, nh_net *net, double eta);
    nh_status (*pass)(nh_curv *c);               /* forward and backward passes of the current batch */
    void (*xwiden)(const nh_curv *c, double *X); /* the data copy, as double */
};

#define NH_NONE ((size_t)-1)

#define NH_NTAB 8 /* per-layer tables of the engine: Z, A, S1, S2, D, dA, RZ, RA */

/* ------------------------------------------------- the double boundary */

static const char *nh__prec_name(const nh_curv *c) { return c->prec == NH_PREC_SINGLE ? "float32" : "float64"; }

/* Elementwise loops (activations, Hadamard products, conversions, the theta
 * update) of at least NH_PAR_MIN entries run on OpenMP threads: each entry
 * is the same expression on any thread, so results do not depend on the
 * thread count.  Only when OpenBLAS is its OpenMP build (`make
 * BLAS=openmp`, opt-in): then the GEMMs around these loops use the same
 * pool of threads.  With OpenBLAS's pthread build the two pools' spinning
 * workers take each other's cores (a GD step on 2 threads ran 1.5-2x
 * slower), so there the loops stay on the calling thread.  Below NH_PAR_MIN
 * a parallel region costs more than it saves. */
#ifndef NH_PAR_MIN
#define NH_PAR_MIN 32768
#endif
#ifndef NH_PAR_ANY_BLAS /* 1: threads with any OpenBLAS build (bench/README.md's comparison) */
#define NH_PAR_ANY_BLAS 0
#endif
#define NH_PAR_CH 4096 /* entries per activation call on a thread */
static int nh__par(size_t n) {
    if (n < (size_t)NH_PAR_MIN) return 1;
    /* openblas_get_parallel: 0 sequential, 1 pthreads, 2 OpenMP (a constant; no cache, no race) */
    return NH_PAR_ANY_BLAS || openblas_get_parallel() != 1 ? nh__threads() : 1;
}

/* sigma, sigma', sigma'' of the activation after layer l (l + 1 < L) at cnt points, in double. */
static void nh__act_layer(const nh_net *net, size_t l, size_t cnt, const double *z, double *a, double *s1,
                          double *s2) {
    nh__net_act_eval(net, l, cnt, z, a, s1, s2, NULL);
}

/* dst = (float)src; the number of entries that are not finite in float32
 * (NaN, Inf, or beyond FLT_MAX), index of the first in *first.  The common
 * case (none) is one branch-free, vectorizable pass. */
static size_t nh__narrow_f(const double *src, size_t n, float *dst, size_t *first) {
    size_t bad = 0;
    const int nt = nh__par(n);
#pragma omp parallel for simd schedule(static) reduction(+ : bad) num_threads(nt) if (nt > 1)
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
static nh_status nh__widen_f(const float *src, size_t n, double *dst, const char *func) {
    size_t bad = 0, first = 0;
    const int nt = nh__par(n);
#pragma omp parallel for simd schedule(static) reduction(+ : bad) num_threads(nt) if (nt > 1)
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

/* Rows [b B, b B + B) of the data become the current batch: n, off and the
 * views Y, E, HC (the engine points A[0] at its copy of X). */
static void nh__view(nh_curv *c, size_t b) {
    c->off = b * c->B;
    c->n = c->N - c->off < c->B ? c->N - c->off : c->B;
    c->Y = c->Yall + c->off * c->nout;
    c->E = c->Eall + c->off * c->nout;
    c->HC = c->HCall + c->off * c->nout * c->nout;
}

/* C(Y), dC/dY and HC from the outputs of all N rows (c->Yall): the loss is a
 * mean over the data, so it is evaluated once, after every batch's forward
 * pass; NH_EDIVERGED if not finite. */
static nh_status nh__loss_boundary(nh_curv *c, const char *func) {
    const size_t nm = c->N * c->nout;
    size_t first = 0, bad = nh__count_nonfinite(c->Yall, nm, &first);
    if (bad)
        return nh__fail(NH_EDIVERGED, func, "network output has %zu non-finite entries (first at sample %zu)", bad,
                        first / c->nout);
    NH_TRY(nh_loss_eval(c->loss, c->Yall, c->T, c->N, c->nout, &c->lossval, c->Eall, c->HCall));
    if (!isfinite(c->lossval)) return nh__fail(NH_EDIVERGED, func, "loss is not finite");
    return NH_OK;
}

/* adj = cout HC ry: the change of dC/dY along a direction with R(Z[L]) = ry. */
static void nh__hc_apply(const nh_curv *c, const double *ry, double *adj) {
    const size_t n = c->n, m = c->nout;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < m; k++) {
            double s = 0.0;
            for (size_t j = 0; j < m; j++) s += c->HC[(i * m + k) * m + j] * ry[i * m + j];
            adj[i * m + k] = c->cout * s;
        }
}

/* The step buffers, kept across steps: a training loop must not allocate per step. */
static nh_status nh__gd_buffers(nh_curv *c, size_t real_size) {
    if (c->gd_buf) return NH_OK;
    int ok = 1;
    size_t bytes = nh__mul(c->P, sizeof(double) + real_size, &ok);
    NH_TRY(nh__check_bytes(ok, bytes, "nh_curv_gd_step", "the step buffers"));
    c->gd_buf = nh__malloc(bytes);
    if (!c->gd_buf) return nh__fail(NH_ENOMEM, "nh_curv_gd_step", "out of memory");
    return NH_OK;
}

/* A step gave a non-finite theta (bad > 0) or loss: restore theta from gd_buf. */
static nh_status nh__step_failed(nh_curv *c, nh_net *net, double eta, double loss0, size_t bad) {
    memcpy(net->theta, c->gd_buf, c->P * sizeof(double));
    c->ops->refresh(c);
    return nh__fail(NH_EDIVERGED, "nh_curv_gd_step", "gradient step with learning rate %g from loss %.6g gave a "
                    "non-finite %s; parameters kept at the last finite state", eta, loss0,
                    bad ? (c->prec == NH_PREC_SINGLE ? "float32 parameter" : "parameter") : "loss");
}

/* ------------------------------------------------------------- progress */

/* Batch b (0-based) of a pass of op is done: tell the caller's callback. */
static void nh__tick(const nh_curv *c, const char *op, size_t b) {
    if (!c->prog) return;
    nh_progress p = {op, b + 1, c->nbatch, c->prog_est, c->prog_done, c->prog_planned};
    c->prog(c->prog_user, &p);
}

/* A product (one pass over the data) is done: it counts towards the estimator. */
static void nh__product_done(nh_curv *c) {
    if (c->prog_est && c->prog_done < c->prog_planned) c->prog_done++;
}

void nh_curv_set_progress(nh_curv *c, nh_progress_fn fn, void *user) {
    if (!c) return;
    c->prog = fn;
    c->prog_user = user;
}

void nh_curv_progress_plan(nh_curv *c, const char *est, size_t planned) {
    if (!c) return;
    c->prog_est = est;
    c->prog_done = 0;
    c->prog_planned = est ? planned : 0;
}

/* ----------------------------------------- the engine, in both precisions */

#include "finite/curv_t.h"
#define NH_T_SINGLE 1
#include "finite/curv_t.h"
#undef NH_T_SINGLE

/* ---------------------------------------------------------------- context */

nh_curv_opts nh_curv_opts_default(void) {
    nh_curv_opts o;
    o.precision = NH_PREC_DOUBLE;
    o.batch = 0;
    return o;
}

void nh_curv_free(nh_curv *c) {
    if (!c) return;
    if (c->ops) c->ops->free(c->e);
    free(c->gd_buf);
    free(c->acc);
    free(c->darena);
    free(c->sel); free(c->idx); free(c->lsel); free(c->sbuf);
    free(c);
}

typedef struct nh__ws { size_t nd, nr, nx, wmax, bytes; } nh__ws;

/* Sizes of the two arenas (entries) for N rows in batches of B, and their
 * bytes (0 when a size overflows).  B = N gives today's unbatched layout. */
static nh__ws nh__ws_sizes(const nh_net *net, size_t N, size_t B, nh_loss loss, nh_precision prec) {
    const size_t L = net->L, nout = net->w[L], rsize = prec == NH_PREC_SINGLE ? sizeof(float) : sizeof(double);
    nh__ws w = {0, 0, 0, 0, 0};
    int ok = 1;
    size_t sumw = 0;
    for (size_t l = 0; l <= L; l++) {
        if (net->w[l] > w.wmax) w.wmax = net->w[l];
        sumw = nh__add(sumw, net->w[l], &ok);
    }
    /* doubles: Y, E, HC and the targets for all rows; ry, adj for a batch */
    size_t d = nh__mul(N, nh__mul(nout, nout + 2, &ok), &ok);
    d = nh__add(d, nh__mul(B, 2 * nout, &ok), &ok);
    w.nd = nh__add(d, nh_loss_target_count(loss, N, nout), &ok);
    /* reals: the per-layer tables, adj, two backward buffers (+ 3 P-vectors in float32), for a batch */
    size_t r = nh__mul(nh__mul(B, sumw, &ok), NH_NTAB, &ok);
    r = nh__add(r, nh__mul(B, nout, &ok), &ok);
    r = nh__add(r, nh__mul(nh__mul(B, w.wmax, &ok), 2, &ok), &ok);
    if (prec == NH_PREC_SINGLE) r = nh__add(r, nh__mul(net->P, 3, &ok), &ok);
    w.nx = B < N ? nh__mul(N, net->w[0], &ok) : 0; /* batched: the data, apart from the tables */
    w.nr = nh__add(r, w.nx, &ok);
    w.bytes = nh__add(nh__mul(w.nd, sizeof(double), &ok), nh__mul(w.nr, rsize, &ok), &ok);
    if (!ok) w.bytes = 0;
    return w;
}

/* Rows per batch: opts.batch if set (capped at N); else all N rows when
 * their passes fit half the memory limit (the rest is left to the products'
 * workspaces and the estimators' bases), otherwise the largest B that does.
 * Then the whole context is checked against the limit. */
static nh_status nh__plan(const nh_net *net, size_t N, nh_loss loss, const nh_curv_opts *o, size_t *B, nh__ws *w) {
    size_t b = o->batch && o->batch < N ? o->batch : N;
    if (!o->batch) {
        const size_t half = nh_get_mem_limit() / 2;
        nh__ws all = nh__ws_sizes(net, N, N, loss, o->precision), one = nh__ws_sizes(net, N, 1, loss, o->precision);
        if (all.bytes == 0 || all.bytes > half) {
            nh__ws two = nh__ws_sizes(net, N, 2, loss, o->precision);
            size_t per = two.bytes - one.bytes; /* bytes per row of a batch */
            b = one.bytes && per && half > one.bytes ? 1 + (half - one.bytes) / per : 1;
            if (b < 1) b = 1;
            if (b > N) b = N;
        }
    }
    *w = nh__ws_sizes(net, N, b, loss, o->precision);
    NH_TRY(nh__check_bytes(w->bytes != 0, w->bytes, "nh_curv_create", "the curvature workspace"));
    int ok = 1;
    if (!nh__fits_int(nh__mul(b, w->wmax, &ok)) || !nh__fits_int(nh__mul(b, net->w[net->L] * net->w[net->L], &ok)) || !ok)
        return nh__fail(NH_ETOOLARGE, "nh_curv_create", "batch x width exceeds the BLAS integer range (set "
                        "opts.batch smaller)");
    *B = b;
    return NH_OK;
}

/* Entries of X32[n] that are NaN or Inf; the first at *first. */
static size_t nh__count_nonfinite_f(const float *x, size_t n, size_t *first) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !(fabsf(x[i]) <= FLT_MAX);
    if (bad)
        for (size_t i = 0; i < n; i++)
            if (!(fabsf(x[i]) <= FLT_MAX)) { *first = i; break; }
    return bad;
}

static nh_status nh__check_create(const nh_net *net, const double *X, const float *X32, const double *T, size_t n,
                                  nh_loss loss, const nh_curv_opts *o) {
    if (o->precision != NH_PREC_DOUBLE && o->precision != NH_PREC_SINGLE)
        return nh__fail(NH_EINVAL, "nh_curv_create", "unknown precision %d", (int)o->precision);
    if (n == 0) return nh__fail(NH_EINVAL, "nh_curv_create", "empty batch (N = 0)");
    if (loss < 0 || loss >= NH_LOSS_COUNT) return nh__fail(NH_EINVAL, "nh_curv_create", "unknown loss %d", (int)loss);
    const size_t n0 = net->w[0];
    int ok = 1;
    const size_t nx = nh__mul(n, n0, &ok);
    size_t first = 0, bad = X ? nh__count_nonfinite(X, nx, &first) : nh__count_nonfinite_f(X32, nx, &first);
    if (!ok) return nh__fail(NH_ETOOLARGE, "nh_curv_create", "X size overflows");
    if (bad)
        return nh__fail(NH_ENONFINITE, "nh_curv_create", "X has %zu non-finite entries (first at row %zu, column "
                        "%zu)", bad, first / n0, first % n0);
    return nh_loss_check_targets(loss, T, n, net->w[net->L]);
}

/* A batched float64 context on float32 data keeps N n_0 floats instead of
 * N n_0 doubles (the engine widens each batch into its pass buffer A[0]). */
static void nh__ws_x32(nh__ws *w, const nh_net *net, size_t N) {
    const size_t nx = N * net->w[0]; /* fits: checked by nh__check_create */
    w->nr -= w->nx;
    w->bytes -= w->nx * sizeof(double) - nx * sizeof(float);
    w->nx = 0;
}

static nh_status nh__create(const nh_net *net, const double *X, const float *X32, const double *T, size_t n,
                            nh_loss loss, const nh_curv_opts *opts, nh_curv **out) {
    if (!net || (!X && !X32) || !T || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    *out = NULL;
    const nh_curv_opts o = opts ? *opts : nh_curv_opts_default();
    NH_TRY(nh__check_create(net, X, X32, T, n, loss, &o));
    size_t B = n;
    nh__ws w;
    NH_TRY(nh__plan(net, n, loss, &o, &B, &w));
    const int x32keep = X32 && o.precision == NH_PREC_DOUBLE && B < n;
    if (x32keep) nh__ws_x32(&w, net, n);
    const size_t L = net->L, nout = net->w[L];
    nh_curv *c = nh__calloc(1, sizeof *c);
    if (!c) NH_FAIL(NH_ENOMEM, "out of memory");
    c->darena = nh__malloc(w.nd * sizeof(double));
    if (!c->darena) { free(c); NH_FAIL(NH_ENOMEM, "cannot allocate %zu doubles", w.nd); }
    c->net = net; c->prec = o.precision; c->L = L; c->nout = nout; c->wmax = w.wmax; c->P = net->P;
    c->N = n; c->B = B; c->nbatch = (n + B - 1) / B; c->cur = NH_NONE;
    c->nreal = w.nr; c->nx = w.nx; c->bytes = w.bytes; c->loss = loss; c->cout = nh__net_out_scale(net);
    c->ops = o.precision == NH_PREC_SINGLE ? &nh__ops_s : &nh__ops_d;
    c->x32keep = x32keep;
    double *p = c->darena;
    c->Yall = p; p += n * nout;
    c->Eall = p; p += n * nout;
    c->ry = p; p += B * nout;
    c->adj = p; p += B * nout;
    c->HCall = p; p += n * nout * nout;
    c->T = p;
    memcpy(c->T, T, nh_loss_target_count(loss, n, nout) * sizeof *T);
    nh__view(c, 0);
    nh_status st = c->ops->init(c, X, X32);
    if (st == NH_OK) st = c->ops->refresh(c);
    if (st != NH_OK) { nh_curv_free(c); return st; }
    *out = c;
    return NH_OK;
}

nh_status nh_curv_create_ex(const nh_net *net, const double *X, const double *T, size_t n, nh_loss loss,
                            const nh_curv_opts *opts, nh_curv **out) {
    return nh__create(net, X, NULL, T, n, loss, opts, out);
}

nh_status nh_curv_create_x32(const nh_net *net, const float *X, const double *T, size_t n, nh_loss loss,
                             const nh_curv_opts *opts, nh_curv **out) {
    return nh__create(net, NULL, X, T, n, loss, opts, out);
}

nh_status nh_curv_create(const nh_net *net, const double *X, const double *T, size_t n, nh_loss loss,
                         nh_curv **out) {
    return nh_curv_create_ex(net, X, T, n, loss, NULL, out);
}

nh_status nh_curv_refresh(nh_curv *c) {
    if (!c) NH_FAIL(NH_EINVAL, "NULL argument");
    return c->ops->refresh(c);
}

size_t nh_curv_nsamples(const nh_curv *c) { return c->N; }
nh_loss nh__curv_loss_kind(const nh_curv *c) { return c->loss; }
size_t nh_curv_batch(const nh_curv *c) { return c->B; }
size_t nh_curv_bytes(const nh_curv *c) {
    size_t gd = c->gd_buf ? c->P * 2 * sizeof(double) : 0;
    size_t sel = c->nsel ? 3 * c->P * sizeof(double) + c->PB * sizeof(size_t) : 0; /* a selection's buffers */
    return c->bytes + c->nacc * sizeof(double) + gd + sel;
}
const nh_net *nh_curv_net(const nh_curv *c) { return c->net; }
nh_precision nh_curv_precision(const nh_curv *c) { return c->prec; }
double nh_curv_loss(const nh_curv *c) { return c->lossval; }
void nh_curv_outputs(const nh_curv *c, double *Y) { memcpy(Y, c->Yall, c->N * c->nout * sizeof *Y); }
void nh_curv_dloss(const nh_curv *c, double *dC) { memcpy(dC, c->Eall, c->N * c->nout * sizeof *dC); }
void nh_curv_hloss(const nh_curv *c, double *hc) { memcpy(hc, c->HCall, c->N * c->nout * c->nout * sizeof *hc); }

/* ------------------------------------------------------------ streaming */

/* Make batch b current, recomputing its passes unless they are cached. */
static nh_status nh__batch(nh_curv *c, size_t b) {
    if (c->cur == b) return NH_OK;
    nh__view(c, b);
    c->cur = NH_NONE;
    NH_TRY(c->ops->pass(c));
    c->cur = b;
    return NH_OK;
}

/* The accumulator, at least len doubles. */
static nh_status nh__acc(nh_curv *c, size_t len) {
    if (c->nacc >= len) return NH_OK;
    int ok = 1;
    NH_TRY(nh__check_bytes(ok, nh__mul(len, sizeof(double), &ok), "nh_curv", "the streaming accumulator"));
    double *a = realloc(c->acc, len * sizeof *a);
    if (!a) return nh__fail(NH_ENOMEM, "nh_curv", "cannot allocate the streaming accumulator");
    c->acc = a;
    c->nacc = len;
    return NH_OK;
}

typedef nh_status (*nh__vop)(nh_curv *c, const double *v, double *out);

static nh_status nh__grad_op(nh_curv *c, const double *v, double *out);

/* The name of a streamed product, for progress lines. */
static const char *nh__opname(const nh_curv *c, nh__vop op) {
    return op == c->ops->hvp ? "H v" : op == c->ops->ivp ? "I v" : op == c->ops->svp ? "S v"
         : op == c->ops->vjp ? "J^T u" : op == nh__grad_op ? "gradient" : "rows";
}

/* out[P] = the sum over the batches, in batch order, of op's result on each
 * batch (v advances vrow entries per row: the u of J^T u).  Unbatched: op. */
static nh_status nh__stream_sum(nh_curv *c, nh__vop op, const double *v, size_t vrow, double *out) {
    if (c->nbatch == 1) {
        NH_TRY(op(c, v, out));
        nh__tick(c, nh__opname(c, op), 0);
        nh__product_done(c);
        return NH_OK;
    }
    NH_TRY(nh__acc(c, c->P));
    for (size_t b = 0; b < c->nbatch; b++) {
        NH_TRY(nh__batch(c, b));
        NH_TRY(op(c, v ? v + c->off * vrow : NULL, b ? c->acc : out));
        if (b)
            for (size_t p = 0; p < c->P; p++) out[p] += c->acc[p];
        nh__tick(c, nh__opname(c, op), b);
    }
    nh__product_done(c);
    return NH_OK;
}

/* out = op's per-row result (orow entries per row), batch by batch. */
static nh_status nh__stream_rows(nh_curv *c, nh__vop op, const double *v, double *out, size_t orow) {
    if (c->nbatch == 1) return op(c, v, out);
    for (size_t b = 0; b < c->nbatch; b++) {
        NH_TRY(nh__batch(c, b));
        NH_TRY(op(c, v, out + c->off * orow));
        nh__tick(c, "rows", b);
    }
    return NH_OK;
}

static nh_status nh__grad_op(nh_curv *c, const double *v, double *out) { (void)v; return c->ops->grad(c, out); }
static nh_status nh__G_op(nh_curv *c, const double *v, double *out) { (void)v; return c->ops->G(c, out); }
static nh_status nh__jac_op(nh_curv *c, const double *v, double *out) { (void)v; return c->ops->jacobian(c, out); }

/* m vectors on the current batch: the block engine, or single products where it has no block form. */
static nh_status nh__block1(nh_curv *c, size_t m, const double *V, double *OUT) {
    if (m > 1 && c->L >= 2) return c->ops->hvp_block(c, m, V, OUT);
    for (size_t j = 0; j < m; j++) NH_TRY(c->ops->hvp(c, V + j * c->P, OUT + j * c->P));
    return NH_OK;
}

/* Batched block H v: chunks of vectors whose partial sums fit 64 MB. */
static nh_status nh__stream_block(nh_curv *c, size_t m, const double *V, double *OUT) {
    const size_t P = c->P;
    size_t mb = ((size_t)64 << 20) / (P * sizeof(double));
    mb = mb < 1 ? 1 : mb > 16 ? 16 : mb;
    if (mb > m) mb = m;
    NH_TRY(nh__acc(c, mb * P));
    for (size_t j0 = 0; j0 < m; j0 += mb) {
        const size_t nb = m - j0 < mb ? m - j0 : mb;
        for (size_t b = 0; b < c->nbatch; b++) {
            NH_TRY(nh__batch(c, b));
            NH_TRY(nh__block1(c, nb, V + j0 * P, b ? c->acc : OUT + j0 * P));
            if (b)
                for (size_t p = 0; p < nb * P; p++) OUT[j0 * P + p] += c->acc[p];
            nh__tick(c, "H V (block)", b);
        }
    }
    return NH_OK;
}

/* ---------------------------------------------- parameter selection (blocks)
 * With a selection B (nh_curv_select), the public products act on P_B-vectors:
 * the input is scattered into a zero P-vector, the full product runs with the
 * selection suspended, and the output's B entries are gathered.  (A v)_B with
 * v zero outside B is exactly A_BB v_B, so every block product is exact and
 * costs one full product. */

static void nh__sel_scatter(const nh_curv *c, const double *vb, double *v) {
    memset(v, 0, c->P * sizeof *v);
    for (size_t j = 0; j < c->PB; j++) v[c->idx[j]] = vb[j];
}
static void nh__sel_gather(const nh_curv *c, const double *v, double *vb) {
    for (size_t j = 0; j < c->PB; j++) vb[j] = v[c->idx[j]];
}

/* f on the full theta: the input scattered when vsel, the output gathered
 * when osel (else f writes out directly). */
static nh_status nh__sel_call(nh_curv *c, nh__vop f, const double *v, int vsel, double *out, int osel) {
    double *x = c->sbuf, *y = c->sbuf + c->P;
    if (vsel) nh__sel_scatter(c, v, x);
    const size_t ns = c->nsel;
    c->nsel = 0;
    nh_status st = f(c, vsel ? x : v, osel ? y : out);
    c->nsel = ns;
    if (st == NH_OK && osel) nh__sel_gather(c, y, out);
    return st;
}

static nh_status nh__grad_full(nh_curv *c, const double *v, double *out) { (void)v; return nh_curv_grad(c, out); }

static nh_status nh__sel_isvp(nh_curv *c, const double *v, double *iv, double *sv) {
    double *x = c->sbuf, *y = x + c->P, *z = y + c->P;
    nh__sel_scatter(c, v, x);
    const size_t ns = c->nsel;
    c->nsel = 0;
    nh_status st = nh_curv_isvp(c, x, y, z);
    c->nsel = ns;
    if (st == NH_OK) { nh__sel_gather(c, y, iv); nh__sel_gather(c, z, sv); }
    return st;
}

/* A temporary full array of cnt doubles, checked against the memory limit. */
static nh_status nh__sel_tmp(size_t a, size_t b, const char *func, const char *what, double **out) {
    int ok = 1;
    size_t cnt = nh__mul(a, b, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(cnt, sizeof(double), &ok), func, what));
    *out = nh__malloc((cnt ? cnt : 1) * sizeof **out);
    if (!*out) return nh__fail(NH_ENOMEM, func, "cannot allocate %s", what);
    return NH_OK;
}

static nh_status nh__sel_block(nh_curv *c, size_t m, const double *V, double *OUT) {
    const size_t P = c->P, PB = c->PB;
    double *W = NULL;
    NH_TRY(nh__sel_tmp(2 * m, P, "nh_curv_hvp_block", "the scattered block of vectors", &W));
    for (size_t j = 0; j < m; j++) nh__sel_scatter(c, V + j * PB, W + j * P);
    const size_t ns = c->nsel;
    c->nsel = 0;
    nh_status st = nh_curv_hvp_block(c, m, W, W + m * P);
    c->nsel = ns;
    if (st == NH_OK)
        for (size_t j = 0; j < m; j++) nh__sel_gather(c, W + (m + j) * P, OUT + j * PB);
    free(W);
    return st;
}

/* J_B: the selected columns of the full Jacobian. */
static nh_status nh__sel_jacobian(nh_curv *c, double *J) {
    const size_t P = c->P, PB = c->PB, rows = c->N * c->nout;
    double *F = NULL;
    NH_TRY(nh__sel_tmp(rows, P, "nh_curv_jacobian", "the full Jacobian", &F));
    const size_t ns = c->nsel;
    c->nsel = 0;
    nh_status st = nh_curv_jacobian(c, F);
    c->nsel = ns;
    if (st == NH_OK)
        for (size_t r = 0; r < rows; r++) nh__sel_gather(c, F + r * P, J + r * PB);
    free(F);
    return st;
}

static void nh__symmetrize(size_t P, double *A);

/* H_BB, I_BB, S_BB row by row from block products of the unit P_B-vectors
 * (I_BB too: J_B^T HC J_B e_j = (I e_j)_B, exact). */
/* Dense n x n H, I, S (each may be NULL) column by column from products with
 * unit vectors (n = P, or P_B under a selection), symmetrized. */
static nh_status nh__dense_cols(nh_curv *c, size_t n, double *Hm, double *Im, double *Sm, const char *func,
                                const char *what) {
    int ok = 1;
    NH_TRY(nh__check_bytes(ok, nh__mul(nh__mul(n, n, &ok), 3 * sizeof(double), &ok), func, what));
    double *e = nh__calloc(n, sizeof *e);
    if (!e) NH_FAIL(NH_ENOMEM, "out of memory");
    nh_status st = NH_OK;
    for (size_t p = 0; p < n && st == NH_OK; p++) {
        e[p] = 1.0;
        if (Hm) st = nh_curv_hvp(c, e, Hm + p * n);
        if (Im && st == NH_OK) st = nh_curv_ivp(c, e, Im + p * n);
        if (Sm && st == NH_OK) st = nh_curv_svp(c, e, Sm + p * n);
        e[p] = 0.0;
    }
    free(e);
    NH_TRY(st);
    if (Hm) nh__symmetrize(n, Hm);
    if (Im) nh__symmetrize(n, Im);
    if (Sm) nh__symmetrize(n, Sm);
    return NH_OK;
}

static nh_status nh__sel_dense(nh_curv *c, double *Hm, double *Im, double *Sm) {
    return nh__dense_cols(c, c->PB, Hm, Im, Sm, "nh_curv_dense", "dense P_B x P_B matrices");
}

/* Validated, sorted copy of the requested tensors in *out. */
static nh_status nh__sel_check(const nh_net *net, size_t nsel, const size_t *tensors, size_t **out) {
    const size_t nt = nh_net_ntensors(net);
    if (nsel > nt) NH_FAIL(NH_EINVAL, "%zu tensors selected, the network has %zu", nsel, nt);
    size_t *s = nh__malloc(nsel * sizeof *s);
    if (!s) NH_FAIL(NH_ENOMEM, "out of memory");
    for (size_t i = 0; i < nsel; i++) {
        size_t t = tensors[i], j = i;
        if (t >= nt) { free(s); NH_FAIL(NH_EINVAL, "tensor %zu out of range (the network has %zu)", t, nt); }
        for (; j > 0 && s[j - 1] > t; j--) s[j] = s[j - 1]; /* insertion sort: nt is small */
        if (j > 0 && s[j - 1] == t) {
            const char *name = NULL;
            nh_net_tensor(net, t, &name, NULL, NULL);
            free(s);
            NH_FAIL(NH_EINVAL, "tensor %s selected twice", name);
        }
        s[j] = t;
    }
    *out = s;
    return NH_OK;
}

/* idx, lsel and sbuf of the sorted selection s (nsel tensors). */
static nh_status nh__sel_build(nh_curv *c, size_t nsel, size_t *s) {
    const nh_net *net = c->net;
    size_t PB = 0, off, len;
    for (size_t i = 0; i < nsel; i++) { nh_net_tensor(net, s[i], NULL, NULL, &len); PB += len; }
    c->idx = nh__malloc(PB * sizeof *c->idx);
    c->lsel = nh__calloc(2 * c->L, 1);
    int ok = 1;
    NH_TRY(nh__check_bytes(ok, nh__mul(c->P, 3 * sizeof(double), &ok), "nh_curv_select", "the selection buffers"));
    c->sbuf = nh__malloc(3 * c->P * sizeof *c->sbuf);
    if (!c->idx || !c->lsel || !c->sbuf) NH_FAIL(NH_ENOMEM, "cannot allocate the selection (P_B = %zu)", PB);
    size_t k = 0;
    for (size_t i = 0; i < nsel; i++) {
        nh_net_tensor(net, s[i], NULL, &off, &len);
        for (size_t j = 0; j < len; j++) c->idx[k++] = off + j;
        for (size_t l = 0; l < c->L; l++) {
            if (net->offW[l] == off) c->lsel[2 * l] = 1;
            if (net->offb[l] == off) c->lsel[2 * l + 1] = 1;
        }
    }
    c->sel = s; c->nsel = nsel; c->PB = PB;
    return NH_OK;
}

static void nh__sel_clear(nh_curv *c) {
    free(c->sel); free(c->idx); free(c->lsel); free(c->sbuf);
    c->sel = c->idx = NULL; c->lsel = NULL; c->sbuf = NULL;
    c->nsel = 0; c->PB = 0;
}

nh_status nh_curv_select(nh_curv *c, size_t nsel, const size_t *tensors) {
    if (!c || (nsel && !tensors)) NH_FAIL(NH_EINVAL, "NULL argument");
    size_t *s = NULL;
    if (nsel) NH_TRY(nh__sel_check(c->net, nsel, tensors, &s));
    nh__sel_clear(c);
    if (nsel == 0 || nsel == nh_net_ntensors(c->net)) { free(s); return NH_OK; } /* all of theta */
    nh_status st = nh__sel_build(c, nsel, s);
    if (st != NH_OK) { c->sel = s; nh__sel_clear(c); }
    return st;
}

size_t nh_curv_dim(const nh_curv *c) { return c->nsel ? c->PB : c->P; }
size_t nh_curv_selection(const nh_curv *c, const size_t **tensors) {
    if (tensors) *tensors = c->sel;
    return c->nsel;
}

/* ------------------------------------------------------------- products */

#define NH_CHECK3(a, b, d) do { if (!(a) || !(b) || !(d)) NH_FAIL(NH_EINVAL, "NULL argument"); } while (0)

nh_status nh_curv_grad(nh_curv *c, double *grad) {
    if (!c || !grad) NH_FAIL(NH_EINVAL, "NULL argument");
    if (c->nsel) return nh__sel_call(c, nh__grad_full, NULL, 0, grad, 1);
    return nh__stream_sum(c, nh__grad_op, NULL, 0, grad);
}
nh_status nh_curv_hvp(nh_curv *c, const double *v, double *out) {
    NH_CHECK3(c, v, out);
    if (c->nsel) return nh__sel_call(c, nh_curv_hvp, v, 1, out, 1);
    return nh__stream_sum(c, c->ops->hvp, v, 0, out);
}
nh_status nh_curv_ivp(nh_curv *c, const double *v, double *out) {
    NH_CHECK3(c, v, out);
    if (c->nsel) return nh__sel_call(c, nh_curv_ivp, v, 1, out, 1);
    return nh__stream_sum(c, c->ops->ivp, v, 0, out);
}
nh_status nh_curv_svp(nh_curv *c, const double *v, double *out) {
    NH_CHECK3(c, v, out);
    if (c->nsel) return nh__sel_call(c, nh_curv_svp, v, 1, out, 1);
    return nh__stream_sum(c, c->ops->svp, v, 0, out);
}
nh_status nh_curv_jvp(nh_curv *c, const double *v, double *jv) {
    NH_CHECK3(c, v, jv);
    if (c->nsel) return nh__sel_call(c, nh_curv_jvp, v, 1, jv, 0);
    return nh__stream_rows(c, c->ops->jvp, v, jv, c->nout);
}
nh_status nh_curv_vjp(nh_curv *c, const double *u, double *out) {
    NH_CHECK3(c, u, out);
    if (c->nsel) return nh__sel_call(c, nh_curv_vjp, u, 0, out, 1);
    return nh__stream_sum(c, c->ops->vjp, u, c->nout, out);
}

nh_status nh_curv_isvp(nh_curv *c, const double *v, double *iv, double *sv) {
    NH_CHECK3(c, v, iv);
    if (!sv) NH_FAIL(NH_EINVAL, "NULL argument");
    if (c->nsel) return nh__sel_isvp(c, v, iv, sv);
    if (c->nbatch == 1) return c->ops->isvp(c, v, iv, sv);
    const size_t P = c->P;
    NH_TRY(nh__acc(c, 2 * P));
    for (size_t b = 0; b < c->nbatch; b++) {
        NH_TRY(nh__batch(c, b));
        NH_TRY(c->ops->isvp(c, v, b ? c->acc : iv, b ? c->acc + P : sv));
        if (b)
            for (size_t p = 0; p < P; p++) { iv[p] += c->acc[p]; sv[p] += c->acc[P + p]; }
        nh__tick(c, "I v + S v", b);
    }
    nh__product_done(c);
    return NH_OK;
}

nh_status nh_curv_hvp_block(nh_curv *c, size_t m, const double *V, double *OUT) {
    NH_CHECK3(c, V, OUT);
    if (m == 0) return NH_OK;
    if (c->nsel) return nh__sel_block(c, m, V, OUT);
    if (c->nbatch > 1) return nh__stream_block(c, m, V, OUT);
    return nh__block1(c, m, V, OUT);
}

/* The exact NTK Gram needs K itself, the unbatched passes (a batched
 * context computes it through a temporary unbatched one) and the per-output
 * stacks: refused over the memory limit, pointing to the estimators. */
static nh_status nh__ntk_fits(const nh_curv *c) {
    const size_t nm = c->N * c->nout, rsize = c->prec == NH_PREC_SINGLE ? sizeof(float) : sizeof(double);
    int ok = 1;
    size_t need = nh__mul(nh__mul(nm, nm, &ok), sizeof(double) + rsize, &ok);
    need = nh__add(need, nh__mul(nh__mul(nm, 3 * c->wmax, &ok), rsize, &ok), &ok);
    if (c->nbatch > 1) need = nh__add(need, nh__ws_sizes(c->net, c->N, c->N, c->loss, c->prec).bytes, &ok);
    if (ok && need <= nh_get_mem_limit()) return NH_OK;
    return nh__fail(NH_ETOOLARGE, "nh_curv_ntk", "the exact NTK Gram of N = %zu rows x %zu outputs needs %.4g GB "
                    "(%zu bytes), more than the %.4g GB memory limit; use the estimators instead (nh_curv_trace, "
                    "nh_curv_lanczos, nh_curv_slq on NH_OP_I)", c->N, c->nout, ok ? (double)need / 1e9 : INFINITY,
                    ok ? need : SIZE_MAX, (double)nh_get_mem_limit() / 1e9);
}

nh_status nh_curv_ntk(nh_curv *c, double *K) {
    if (!c || !K) NH_FAIL(NH_EINVAL, "NULL argument");
    NH_TRY(nh__ntk_fits(c));
    if (c->nbatch == 1) return c->ops->ntk(c, K);
    int ok = 1;
    size_t nx = nh__mul(c->N, c->net->w[0], &ok);
    double *X = nh__malloc(nx * sizeof *X);
    if (!X) NH_FAIL(NH_ENOMEM, "cannot allocate the data for the NTK");
    c->ops->xwiden(c, X);
    nh_curv_opts o = {c->prec, c->N};
    nh_curv *t = NULL;
    nh_status st = nh_curv_create_ex(c->net, X, c->T, c->N, c->loss, &o, &t);
    free(X);
    if (st == NH_OK && c->nsel) st = nh_curv_select(t, c->nsel, c->sel); /* the block Gram */
    if (st == NH_OK) st = t->ops->ntk(t, K);
    nh_curv_free(t);
    return st;
}

nh_status nh_curv_G(nh_curv *c, double *G) {
    if (!c || !G) NH_FAIL(NH_EINVAL, "NULL argument");
    return nh__stream_rows(c, nh__G_op, NULL, G, c->nout);
}

nh_status nh_curv_jacobian(nh_curv *c, double *J) {
    if (!c || !J) NH_FAIL(NH_EINVAL, "NULL argument");
    if (c->nsel) return nh__sel_jacobian(c, J);
    return nh__stream_rows(c, nh__jac_op, NULL, J, c->nout * c->P);
}

/* Batched step: the streamed gradient in double, theta -= eta grad, refresh. */
static nh_status nh__gd_stream(nh_curv *c, nh_net *net, double eta) {
    const size_t P = c->P;
    NH_TRY(nh__gd_buffers(c, sizeof(double)));
    double *old = c->gd_buf, *g = old + P;
    NH_TRY(nh__stream_sum(c, nh__grad_op, NULL, 0, g));
    memcpy(old, net->theta, P * sizeof *old);
    const double loss0 = c->lossval;
    for (size_t p = 0; p < P; p++) net->theta[p] -= eta * g[p];
    size_t first = 0, bad = nh__count_nonfinite(net->theta, P, &first);
    nh_status st = bad ? NH_EDIVERGED : c->ops->refresh(c);
    if (st != NH_OK) return nh__step_failed(c, net, eta, loss0, bad);
    return NH_OK;
}

nh_status nh_curv_gd_step(nh_curv *c, nh_net *net, double eta) {
    if (!c || !net) NH_FAIL(NH_EINVAL, "NULL argument");
    if (c->net != net) NH_FAIL(NH_EINVAL, "the context is bound to another network");
    if (!isfinite(eta) || eta <= 0) NH_FAIL(NH_EINVAL, "learning rate must be finite and > 0 (got %g)", eta);
    if (c->nbatch > 1) return nh__gd_stream(c, net, eta);
    return c->ops->gd_step(c, net, eta);
}

/* ------------------------------------------------------ dense matrices */

/* Rows of H, S are H e_p, S e_p; symmetrize the rounding so eigensolvers see a symmetric matrix. */
static void nh__symmetrize(size_t P, double *A) {
    for (size_t a = 0; a < P; a++)
        for (size_t b = a + 1; b < P; b++) {
            double v = 0.5 * (A[a * P + b] + A[b * P + a]);
            A[a * P + b] = A[b * P + a] = v;
        }
}

/* Im = J^T HC J from the dense Jacobian of all N rows. */
static nh_status nh__dense_I(nh_curv *c, double *Im) {
    const size_t P = c->P, nm = c->N * c->nout, m = c->nout;
    int ok = 1;
    size_t jb = nh__mul(nm, P, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(jb, 2 * sizeof(double), &ok), "nh_curv_dense", "the dense Jacobian"));
    if (!nh__fits_int(nm) || !nh__fits_int(P)) NH_FAIL(NH_ETOOLARGE, "the dense Jacobian exceeds the BLAS range");
    double *J = nh__malloc(jb * sizeof *J), *HJ = nh__malloc(jb * sizeof *HJ);
    if (!J || !HJ) { free(J); free(HJ); NH_FAIL(NH_ENOMEM, "out of memory"); }
    nh_status st = nh_curv_jacobian(c, J);
    if (st == NH_OK) {
        for (size_t i = 0; i < c->N; i++)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)P, (int)m, 1.0, c->HCall + i * m * m,
                        (int)m, J + i * m * P, (int)P, 0.0, HJ + i * m * P, (int)P);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)P, (int)P, (int)nm, 1.0, J, (int)P, HJ, (int)P,
                    0.0, Im, (int)P);
    }
    free(J);
    free(HJ);
    return st;
}

nh_status nh_curv_dense(nh_curv *c, double *Hm, double *Im, double *Sm) {
    if (!c) NH_FAIL(NH_EINVAL, "NULL argument");
    if (c->nsel) return nh__sel_dense(c, Hm, Im, Sm);
    /* I from the Jacobian (nh__dense_I), H and S by columns. */
    NH_TRY(nh__dense_cols(c, c->P, Hm, NULL, Sm, __func__, "dense P x P matrices"));
    return Im ? nh__dense_I(c, Im) : NH_OK;
}

/* ------------------------------------------------------- eigensolvers */

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

/* ------------------------------------------- Tr((HC K)^k) from the NTK */

nh_status nh_ntk_trace_powers(size_t n, size_t nout, const double *K, const double *HC, int kmax, double *tr) {
    if (!K || !HC || !tr || n == 0 || nout == 0 || kmax < 1) NH_FAIL(NH_EINVAL, "NULL or empty argument");
    const size_t nm = n * nout, m = nout;
    int ok = 1;
    size_t sq = nh__mul(nm, nm, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(sq, 3 * sizeof(double), &ok), __func__, "the exact Tr(I^k) (three (N n_L)^2 "
                          "matrices; estimate it with nh_curv_trace or nh_curv_slq instead)"));
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

/* ------------------------------------------------------------ diagonals */

nh_diag_opts nh_diag_opts_default(void) {
    nh_diag_opts o;
    o.method = NH_DIAG_AUTO;
    o.nprobes = 64;
    o.seed = 0;
    o.max_cost = 50.0;
    return o;
}

/* Flops per sample of the exact diagonals and of one H v (est.h's formula). */
static void nh__diag_flops(const nh_net *net, double *exact, double *hv) {
    const size_t L = net->L;
    double w2 = 0.0, inner = 0.0, sumw = 0.0, nL = (double)net->w[L];
    for (size_t l = 0; l < L; l++) {
        const double a = (double)net->w[l], b = (double)net->w[l + 1];
        w2 += a * b;
        if (l >= 1) inner += a * b;
        sumw += b;
    }
    double e = 2.0 * nL * inner + nL * (nL + 1.0) * sumw + 4.0 * w2;
    if (L >= 3) e += 2.0 * (double)net->w[L - 2] * (double)net->w[L - 1];
    if (L >= 4) {
        const double a = (double)net->w[L - 2], b = (double)net->w[L - 1];
        e += 2.0 * a * a * b;
        for (size_t k = 1; k + 3 <= L; k++) {
            const double nk = (double)net->w[k], nk1 = (double)net->w[k + 1];
            e += 2.0 * nk1 * nk1 * nk + (k >= 2 ? 2.0 * nk * nk * nk1 : 0.0);
        }
    }
    *exact = e;
    *hv = 12.0 * w2;
}

/* D[3P] = diag H, I, S exactly, summed over the batches in order. */
static nh_status nh__diag_exact(nh_curv *c, double *D) {
    const size_t P = c->P;
    double *dH = D, *dI = D + P, *dS = D + 2 * P;
    if (c->nbatch > 1) NH_TRY(nh__acc(c, 2 * P));
    double *acc = c->nbatch > 1 ? c->acc : NULL;
    NH_TRY(c->prec == NH_PREC_SINGLE ? nh__diag_stream_s(c, dI, dS, acc) : nh__diag_stream_d(c, dI, dS, acc));
    for (size_t p = 0; p < P; p++) dH[p] = dI[p] + dS[p];
    size_t first = 0, bad = nh__count_nonfinite(D, 3 * P, &first);
    if (bad) NH_FAIL(NH_ENUMERIC, "diagonal has %zu non-finite entries (overflow)", bad);
    return NH_OK;
}

/* Rademacher probe of stream j: the vectors of nh_curv_trace (est.c). */
static void nh__diag_probe(uint64_t seed, uint64_t j, size_t P, double *v) {
    nh_rng r;
    nh_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (j + 1)));
    for (size_t i = 0; i < P; i += 64) {
        uint64_t b = nh_rng_u64(&r);
        size_t e = P - i < 64 ? P - i : 64;
        for (size_t t = 0; t < e; t++) v[i + t] = ((b >> t) & 1u) ? 1.0 : -1.0;
    }
}

/* D[3P] = mean_j v_j o (A v_j) for A = H, I, S (Welford), SE[3P] from the
 * sums of squared deviations (NULL: not wanted). */
static nh_status nh__diag_hutch(nh_curv *c, const nh_diag_opts *o, double *D, double *SE) {
    /* With a selection the probes live on the block (isvp takes P_B-vectors). */
    const size_t P = nh_curv_dim(c), M = o->nprobes;
    int ok = 1;
    size_t len = nh__mul(P, 9, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(len, sizeof(double), &ok), "nh_curv_diag", "the Hutchinson vectors"));
    double *w = nh__malloc(len * sizeof *w);
    if (!w) NH_FAIL(NH_ENOMEM, "cannot allocate the Hutchinson vectors");
    double *v = w, *iv = w + P, *sv = w + 2 * P, *ss = w + 3 * P, *x = w + 6 * P;
    memset(D, 0, 3 * P * sizeof *D);
    memset(ss, 0, 3 * P * sizeof *ss);
    nh_status st = NH_OK;
    for (size_t j = 0; j < M && st == NH_OK; j++) {
        nh__diag_probe(o->seed, j, P, v);
        st = nh_curv_isvp(c, v, iv, sv);
        for (size_t p = 0; p < P && st == NH_OK; p++) {
            x[P + p] = v[p] * iv[p];
            x[2 * P + p] = v[p] * sv[p];
            x[p] = x[P + p] + x[2 * P + p];
        }
        for (size_t p = 0; p < 3 * P && st == NH_OK; p++) {
            const double d = x[p] - D[p];
            D[p] += d / (double)(j + 1);
            ss[p] += d * (x[p] - D[p]);
        }
    }
    if (st == NH_OK && SE)
        for (size_t p = 0; p < 3 * P; p++) SE[p] = nh_se_from_ss(ss[p], M);
    free(w);
    return st;
}

nh_status nh_curv_diag_all(nh_curv *c, const nh_diag_opts *opts, double *D, double *SE, nh_diag_info *info) {
    if (!c || !D) NH_FAIL(NH_EINVAL, "NULL argument");
    const nh_diag_opts o = opts ? *opts : nh_diag_opts_default();
    if ((int)o.method < 0 || o.method >= NH_DIAG_METHOD_COUNT) NH_FAIL(NH_EINVAL, "unknown method %d", (int)o.method);
    if (!(o.max_cost >= 0)) NH_FAIL(NH_EINVAL, "max_cost must be >= 0 (got %g)", o.max_cost);
    double ex = 0.0, hv = 0.0;
    nh__diag_flops(c->net, &ex, &hv);
    const int exact = o.method == NH_DIAG_EXACT || (o.method == NH_DIAG_AUTO && ex <= o.max_cost * hv);
    if (!exact && o.nprobes < 1) NH_FAIL(NH_EINVAL, "need at least one probe (got 0)");
    nh_diag_info in = {exact ? NH_DIAG_EXACT : NH_DIAG_HUTCHINSON, exact ? 0 : o.nprobes, exact ? 0 : o.nprobes,
                       ex * (double)c->N, hv * (double)c->N, ex / hv};
    if (info) *info = in;
    if (!exact) return nh__diag_hutch(c, &o, D, SE);
    if (SE) memset(SE, 0, 3 * nh_curv_dim(c) * sizeof *SE);
    if (!c->nsel) return nh__diag_exact(c, D);
    /* A selection: the exact diagonals of the whole theta, then the block's
     * entries (diag of A_BB is the B part of diag A). */
    int ok = 1;
    const size_t len = nh__mul(c->P, 3, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(len, sizeof(double), &ok), "nh_curv_diag", "the full diagonals"));
    double *F = nh__malloc(len * sizeof *F);
    if (!F) NH_FAIL(NH_ENOMEM, "cannot allocate the full diagonals");
    nh_status st = nh__diag_exact(c, F);
    for (size_t t = 0; t < 3 && st == NH_OK; t++) nh__sel_gather(c, F + t * c->P, D + t * c->PB);
    free(F);
    return st;
}

nh_status nh_curv_diag(nh_curv *c, nh_op op, const nh_diag_opts *opts, double *diag, double *se,
                       nh_diag_info *info) {
    if (!c || !diag) NH_FAIL(NH_EINVAL, "NULL argument");
    if ((int)op < 0 || op >= NH_OP_COUNT) NH_FAIL(NH_EINVAL, "unknown operator %d", (int)op);
    const size_t P = nh_curv_dim(c);
    int ok = 1;
    size_t len = nh__mul(P, se ? 6 : 3, &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(len, sizeof(double), &ok), __func__, "the three diagonals"));
    double *D = nh__malloc(len * sizeof *D);
    if (!D) NH_FAIL(NH_ENOMEM, "out of memory");
    nh_status st = nh_curv_diag_all(c, opts, D, se ? D + 3 * P : NULL, info);
    if (st == NH_OK) {
        memcpy(diag, D + (size_t)op * P, P * sizeof *diag);
        if (se) memcpy(se, D + 3 * P + (size_t)op * P, P * sizeof *se);
    }
    free(D);
    return st;
}
