/* test_stream.c -- streaming contexts (nh_curv_opts.batch = B): every
 * operation that sums over the data, run over batches of B rows, against
 * the same operation of the unbatched context on the same network and data:
 * loss, outputs, dC/dY, HC, gradient, H v, I v, S v, isvp, block H v, J v,
 * J^T u, G, the dense Jacobian and H, I, S, the NTK Gram, GD steps, and the
 * estimators on top (Lanczos, Hutchinson traces).  B = 1, a B that does not
 * divide N, and B = N (bit-identical to the default); depths 1-3, softplus
 * and tanh, the three losses, NTK and standard parametrizations, float64
 * and float32.  Also: the automatic batch under a memory limit, the NTK
 * Gram refused over the limit, and the context's bytes linear in B.
 *
 * Tolerances: float64 batched results differ from unbatched ones only by
 * the order of the sums over rows (batch partial sums added in double):
 * 1e-12 of the array's max-abs scale (observed ~1e-15).  float32: each
 * batch's partial result is rounded to float32 before the double sum, and
 * docs/precision.md measures float32 products at ~1e-7..1e-5 relative; two
 * float32 evaluations of one product may differ by twice that: 1e-4. */
#include "ntkhess.h"
#include "nh_test.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t L, w[5];
    nh_act act;
    nh_loss loss;
    nh_param param;
} cfg_t;

static const cfg_t CFGS[] = {
    {"L1 tanh mse ntk", 1, {4, 3}, NH_ACT_TANH, NH_LOSS_MSE, NH_PARAM_NTK},
    {"L2 softplus ce std", 2, {4, 6, 3}, NH_ACT_SOFTPLUS, NH_LOSS_CE, NH_PARAM_STANDARD},
    {"L2 tanh bce ntk", 2, {3, 5, 2}, NH_ACT_TANH, NH_LOSS_BCE, NH_PARAM_NTK},
    {"L3 tanh ce ntk", 3, {5, 6, 4, 3}, NH_ACT_TANH, NH_LOSS_CE, NH_PARAM_NTK},
    {"L3 softplus mse std", 3, {3, 5, 4, 2}, NH_ACT_SOFTPLUS, NH_LOSS_MSE, NH_PARAM_STANDARD},
    {"L3 softplus bce std", 3, {4, 4, 5, 1}, NH_ACT_SOFTPLUS, NH_LOSS_BCE, NH_PARAM_STANDARD},
};
#define NCFG (sizeof CFGS / sizeof CFGS[0])
#define N 10

static nh_net *make_net(const cfg_t *t, uint64_t seed) {
    nh_net_config c = nh_net_config_default();
    c.depth = t->L; c.widths = t->w; c.act = t->act; c.param = t->param;
    nh_net *net = NULL;
    if (nh_net_create(&c, &net) != NH_OK) { printf("create failed: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(net, seed);
    return net;
}

/* The shared random data (nh_test.h) for cfg t. */
static void make_data(const cfg_t *t, uint64_t seed, double *X, double *T) {
    nh_test_data(t->loss, N, t->w[0], t->w[t->L], seed, X, T);
}

static nh_curv *make_ctx(const nh_net *net, const double *X, const double *T, nh_loss loss, nh_precision prec,
                         size_t batch) {
    return nh_test_ctx(net, X, T, N, loss, prec, batch);
}

typedef struct { double *a, *b; size_t len; } pair_t;

/* Every per-context result of one context into r (P-vectors from fixed directions). */
enum { R_LOSS, R_Y, R_E, R_HC, R_GRAD, R_HV, R_IV, R_SV, R_ISI, R_ISS, R_BLK, R_JV, R_VJP, R_G, R_J, R_HM, R_IM,
       R_SM, R_K, R_NRES };

static void results(nh_curv *c, const double *V, const double *U, double **r, size_t *len) {
    const size_t P = nh_net_nparams(nh_curv_net(c)), m = len[R_Y] / N;
    r[R_LOSS][0] = nh_curv_loss(c);
    nh_curv_outputs(c, r[R_Y]); nh_curv_dloss(c, r[R_E]); nh_curv_hloss(c, r[R_HC]);
    int ok = nh_curv_grad(c, r[R_GRAD]) == NH_OK;
    ok &= nh_curv_hvp(c, V, r[R_HV]) == NH_OK && nh_curv_ivp(c, V, r[R_IV]) == NH_OK;
    ok &= nh_curv_svp(c, V, r[R_SV]) == NH_OK && nh_curv_isvp(c, V, r[R_ISI], r[R_ISS]) == NH_OK;
    ok &= nh_curv_hvp_block(c, 3, V, r[R_BLK]) == NH_OK;
    ok &= nh_curv_jvp(c, V, r[R_JV]) == NH_OK && nh_curv_vjp(c, U, r[R_VJP]) == NH_OK;
    ok &= nh_curv_G(c, r[R_G]) == NH_OK && nh_curv_jacobian(c, r[R_J]) == NH_OK;
    ok &= nh_curv_dense(c, r[R_HM], r[R_IM], r[R_SM]) == NH_OK && nh_curv_ntk(c, r[R_K]) == NH_OK;
    nh_check(ok, "all operations succeed (%s)", ok ? "" : nh_last_error());
    (void)P; (void)m;
}

static const char *RNAMES[R_NRES] = {"loss", "Y", "dC/dY", "HC", "grad", "H v", "I v", "S v", "isvp I", "isvp S",
                                     "block H v", "J v", "J^T u", "G", "Jacobian", "dense H", "dense I", "dense S",
                                     "NTK"};

static void compare_cfg(const cfg_t *t, nh_precision prec) {
    nh_net *net = make_net(t, 7);
    const size_t P = nh_net_nparams(net), m = t->w[t->L];
    double *X = malloc(N * t->w[0] * sizeof *X), *T = malloc(N * m * sizeof *T);
    make_data(t, 11, X, T);
    size_t len[R_NRES] = {1, N * m, N * m, N * m * m, P, P, P, P, P, P, 3 * P, N * m, P, N * m, N * m * P, P * P,
                          P * P, P * P, N * m * N * m};
    double *ref[R_NRES], *got[R_NRES];
    for (int k = 0; k < R_NRES; k++) { ref[k] = malloc(len[k] * sizeof(double)); got[k] = malloc(len[k] * sizeof(double)); }
    double *V = malloc(3 * P * sizeof *V), *U = malloc(N * m * sizeof *U);
    nh_rng r; nh_rng_seed(&r, 5);
    nh_rng_fill_normal(&r, 3 * P, V);
    nh_rng_fill_normal(&r, N * m, U);
    const double tol = prec == NH_PREC_SINGLE ? 1e-4 : 1e-12;
    const char *pn = prec == NH_PREC_SINGLE ? "f32" : "f64";

    nh_curv *c0 = make_ctx(net, X, T, t->loss, prec, 0);
    nh_check(nh_curv_batch(c0) == N, "%s %s: default batch = all %d rows", t->name, pn, N);
    results(c0, V, U, ref, len);
    /* B = N explicitly: the unbatched engine, bit for bit. */
    nh_curv *cn = make_ctx(net, X, T, t->loss, prec, N);
    results(cn, V, U, got, len);
    int same = 1;
    for (int k = 0; k < R_NRES; k++) same &= memcmp(ref[k], got[k], len[k] * sizeof(double)) == 0;
    nh_check(same, "%s %s: batch = N bit-identical to the default", t->name, pn);
    nh_curv_free(cn);

    const size_t Bs[] = {1, 3, 4};
    for (size_t ib = 0; ib < 3; ib++) {
        nh_curv *c = make_ctx(net, X, T, t->loss, prec, Bs[ib]);
        nh_check(nh_curv_batch(c) == Bs[ib] && nh_curv_nsamples(c) == N, "%s %s B=%zu: batch and N", t->name, pn, Bs[ib]);
        results(c, V, U, got, len);
        for (int k = 0; k < R_NRES; k++)
            nh_check_array(got[k], ref[k], len[k], 1e-300, tol, "%s %s B=%zu: %s", t->name, pn, Bs[ib], RNAMES[k]);
        /* Three GD steps on copies of the network: same parameters and loss. */
        nh_net *n1 = make_net(t, 7), *n2 = make_net(t, 7);
        nh_curv *u1 = make_ctx(n1, X, T, t->loss, prec, 0), *u2 = make_ctx(n2, X, T, t->loss, prec, Bs[ib]);
        int ok = 1;
        for (int s = 0; s < 3; s++) ok &= nh_curv_gd_step(u1, n1, 0.1) == NH_OK && nh_curv_gd_step(u2, n2, 0.1) == NH_OK;
        nh_check(ok, "%s %s B=%zu: GD steps", t->name, pn, Bs[ib]);
        nh_check_array(nh_net_params(n2), nh_net_params(n1), P, 1e-300, tol, "%s %s B=%zu: theta after 3 GD steps",
                       t->name, pn, Bs[ib]);
        nh_check_close(nh_curv_loss(u2), nh_curv_loss(u1), 0, tol, "%s %s B=%zu: loss after 3 GD steps", t->name,
                       pn, Bs[ib]);
        nh_curv_free(u1); nh_curv_free(u2); nh_net_free(n1); nh_net_free(n2);
        nh_curv_free(c);
    }
    nh_curv_free(c0);
    for (int k = 0; k < R_NRES; k++) { free(ref[k]); free(got[k]); }
    free(V); free(U); free(X); free(T);
    nh_net_free(net);
}

/* The estimators run on the streamed products: Lanczos top-2 of H and a
 * Hutchinson trace of I with the same seed agree with the unbatched ones. */
static void test_estimators(void) {
    const cfg_t *t = &CFGS[3];
    nh_net *net = make_net(t, 3);
    double X[N * 5], T[N * 3];
    make_data(t, 4, X, T);
    nh_curv *a = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 0), *b = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 3);
    double ea[2], eb[2];
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    int ok = nh_curv_lanczos(a, NH_OP_H, 2, &lo, ea, NULL, NULL, NULL) == NH_OK &&
             nh_curv_lanczos(b, NH_OP_H, 2, &lo, eb, NULL, NULL, NULL) == NH_OK;
    nh_check(ok, "lanczos on both contexts (%s)", ok ? "" : nh_last_error());
    /* Lanczos converges to 1e-10 relative residual by default; both runs see the same operator to 1e-15 */
    nh_check_array(eb, ea, 2, 0, 1e-9, "lanczos top-2 of H: batched = unbatched");
    nh_trace_opts to = nh_trace_opts_default();
    to.nprobes = 8;
    nh_trace_result ra, rb;
    ok = nh_curv_trace(a, NH_OP_I, 2, &to, &ra) == NH_OK && nh_curv_trace(b, NH_OP_I, 2, &to, &rb) == NH_OK;
    nh_check(ok, "trace on both contexts");
    /* same probes, products equal to 1e-15: the estimates agree to rounding */
    nh_check_array(rb.est, ra.est, 2, 0, 1e-12, "Hutchinson Tr(I), Tr(I^2): batched = unbatched");
    nh_curv_free(a); nh_curv_free(b);
    nh_net_free(net);
}

/* batch = 0 under a small memory limit picks B < N; results still agree;
 * the context's bytes are affine in B with slope the per-row pass buffers. */
static void test_budget(void) {
    const cfg_t *t = &CFGS[4];
    nh_net *net = make_net(t, 9);
    const size_t P = nh_net_nparams(net);
    double X[N * 3], T[N * 2];
    make_data(t, 8, X, T);
    nh_curv *c1 = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 1), *c2 = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 2);
    nh_curv *c4 = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 4), *cN = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 0);
    size_t b1 = nh_curv_bytes(c1), b2 = nh_curv_bytes(c2), b4 = nh_curv_bytes(c4), bN = nh_curv_bytes(cN);
    /* per row: 8 tables of sum(widths) = 14, adj 2, two buffers of wmax = 5, ry and adj 2 + 2: (112+2+10+4) x 8 bytes */
    nh_check(b2 - b1 == 128 * 8 && b4 - b2 == 2 * 128 * 8, "bytes affine in B: %zu %zu %zu (slope %zu per row)", b1,
             b2, b4, b2 - b1);
    nh_check(b1 < bN, "B = 1 holds less than all rows (%zu < %zu)", b1, bN);
    /* a limit that holds the B = 1 context but not all rows' passes in half of it */
    nh_set_mem_limit(2 * b4 + 100);
    nh_curv *ca = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 0);
    size_t B = nh_curv_batch(ca);
    nh_check(B == 4, "automatic batch under the limit: B = %zu (4 rows fit half the limit)", B);
    double *v = malloc(P * sizeof *v), *h1 = malloc(P * sizeof *h1), *h2 = malloc(P * sizeof *h2);
    for (size_t p = 0; p < P; p++) v[p] = sin(1.0 + p);
    int ok = nh_curv_hvp(ca, v, h1) == NH_OK && nh_curv_hvp(cN, v, h2) == NH_OK;
    nh_check(ok, "hvp under the limit");
    nh_check_array(h1, h2, P, 1e-300, 1e-12, "automatic batch: H v = unbatched");
    /* The NTK Gram (N n_L)^2 doubles plus the unbatched passes: over the limit, refused with the bytes. */
    double *K = malloc(N * 2 * N * 2 * sizeof *K);
    nh_status st = nh_curv_ntk(ca, K);
    nh_check(st == NH_ETOOLARGE && strstr(nh_last_error(), "bytes") && strstr(nh_last_error(), "estimators"),
             "NTK over the limit: NH_ETOOLARGE with the bytes and the estimators (%s)", nh_last_error());
    nh_set_mem_limit(0);
    nh_check(nh_curv_ntk(ca, K) == NH_OK, "NTK of the batched context without the limit");
    nh_curv_free(ca);
    free(K); free(v); free(h1); free(h2);
    nh_curv_free(c1); nh_curv_free(c2); nh_curv_free(c4); nh_curv_free(cN);
    nh_net_free(net);
}

int main(void) {
    for (size_t k = 0; k < NCFG; k++) {
        compare_cfg(&CFGS[k], NH_PREC_DOUBLE);
        compare_cfg(&CFGS[k], NH_PREC_SINGLE);
    }
    test_estimators();
    test_budget();
    NH_TEST_END();
}
