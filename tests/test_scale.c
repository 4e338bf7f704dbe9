/* test_scale.c -- float32 data without widening (nh_curv_create_x32,
 * nh_npy_read_f32) and the progress callback (nh_curv_set_progress,
 * nh_curv_progress_plan).
 *
 * float32 X: float widens to double exactly, so a context on X32 must give
 * the results of nh_curv_create_ex on the widened X bit for bit (memcmp, no
 * tolerance), batched (B = 3, 4 of N = 10) and unbatched, float64 and
 * float32, for every product; a batched float64 context holds N n_0 floats
 * instead of doubles (nh_curv_bytes smaller by exactly N n_0 4 bytes).
 * Progress: the callback's counts against what the operation must do (one
 * call per batch, batches 1..nbatch in order; Lanczos/SLQ product counts
 * equal to the estimator's own nproducts), so every check is exact. */
#include "ntkhess.h"
#include "ntkhess/io.h"
#include "nh_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 10

static nh_net *make_net(size_t L, const size_t *w, nh_act act, nh_param param) {
    nh_net_config c = nh_net_config_default();
    c.depth = L; c.widths = w; c.act = act; c.param = param;
    nh_net *net = NULL;
    if (nh_net_create(&c, &net) != NH_OK) { printf("create failed: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(net, 3);
    return net;
}

/* X as float32 and its exact widening; class labels or real targets. */
static void make_data(size_t n0, size_t m, nh_loss loss, float *X32, double *X, double *T) {
    nh_rng r; nh_rng_seed(&r, 17);
    for (size_t i = 0; i < N * n0; i++) { X32[i] = (float)nh_rng_normal(&r); X[i] = (double)X32[i]; }
    for (size_t i = 0; i < N * m; i++)
        T[i] = loss == NH_LOSS_CE ? (double)(nh_rng_u64(&r) % m)
             : loss == NH_LOSS_BCE ? (nh_rng_normal(&r) > 0 ? 1.0 : -1.0) : nh_rng_normal(&r);
}

enum { K_LOSS, K_Y, K_GRAD, K_HV, K_IV, K_SV, K_ISI, K_ISS, K_BLK, K_JV, K_VJP, K_G, K_NTK, K_N };
static const char *KN[K_N] = {"loss", "Y", "grad", "H v", "I v", "S v", "isvp I", "isvp S", "block H v", "J v",
                              "J^T u", "G", "NTK"};

static void results(nh_curv *c, const double *V, const double *U, double **r) {
    r[K_LOSS][0] = nh_curv_loss(c);
    nh_curv_outputs(c, r[K_Y]);
    int ok = nh_curv_grad(c, r[K_GRAD]) == NH_OK && nh_curv_hvp(c, V, r[K_HV]) == NH_OK;
    ok &= nh_curv_ivp(c, V, r[K_IV]) == NH_OK && nh_curv_svp(c, V, r[K_SV]) == NH_OK;
    ok &= nh_curv_isvp(c, V, r[K_ISI], r[K_ISS]) == NH_OK && nh_curv_hvp_block(c, 2, V, r[K_BLK]) == NH_OK;
    ok &= nh_curv_jvp(c, V, r[K_JV]) == NH_OK && nh_curv_vjp(c, U, r[K_VJP]) == NH_OK;
    ok &= nh_curv_G(c, r[K_G]) == NH_OK && nh_curv_ntk(c, r[K_NTK]) == NH_OK;
    nh_check(ok, "all operations succeed (%s)", ok ? "" : nh_last_error());
}

static void x32_case(size_t L, const size_t *w, nh_act act, nh_loss loss, nh_param param, const char *name) {
    nh_net *net = make_net(L, w, act, param);
    const size_t P = nh_net_nparams(net), n0 = w[0], m = w[L];
    float *X32 = malloc(N * n0 * sizeof *X32);
    double *X = malloc(N * n0 * sizeof *X), *T = malloc(N * m * sizeof *T);
    double *V = malloc(2 * P * sizeof *V), *U = malloc(N * m * sizeof *U);
    make_data(n0, m, loss, X32, X, T);
    nh_rng r; nh_rng_seed(&r, 5);
    nh_rng_fill_normal(&r, 2 * P, V);
    nh_rng_fill_normal(&r, N * m, U);
    const size_t len[K_N] = {1, N * m, P, P, P, P, P, P, 2 * P, N * m, P, N * m, N * m * N * m};
    double *a[K_N], *b[K_N];
    for (int k = 0; k < K_N; k++) { a[k] = malloc(len[k] * sizeof(double)); b[k] = malloc(len[k] * sizeof(double)); }
    const size_t Bs[] = {0, 3, 4};
    for (int prec = 0; prec < 2; prec++)
        for (size_t ib = 0; ib < 3; ib++) {
            nh_curv_opts o = nh_curv_opts_default();
            o.precision = prec ? NH_PREC_SINGLE : NH_PREC_DOUBLE;
            o.batch = Bs[ib];
            nh_curv *cd = NULL, *cf = NULL;
            int ok = nh_curv_create_ex(net, X, T, N, loss, &o, &cd) == NH_OK;
            ok &= nh_curv_create_x32(net, X32, T, N, loss, &o, &cf) == NH_OK;
            nh_check(ok, "%s %s B=%zu: both contexts (%s)", name, prec ? "f32" : "f64", Bs[ib], ok ? "" : nh_last_error());
            if (!ok) { nh_curv_free(cd); nh_curv_free(cf); continue; }
            results(cd, V, U, a);
            results(cf, V, U, b);
            for (int k = 0; k < K_N; k++)
                nh_check(memcmp(a[k], b[k], len[k] * sizeof(double)) == 0, "%s %s B=%zu: %s bit-identical on X32",
                         name, prec ? "f32" : "f64", Bs[ib], KN[k]);
            /* Batched float64: N n0 floats instead of doubles; otherwise the same bytes. */
            const size_t save = !prec && Bs[ib] ? N * n0 * (sizeof(double) - sizeof(float)) : 0;
            nh_check(nh_curv_bytes(cd) - nh_curv_bytes(cf) == save, "%s %s B=%zu: bytes %zu vs %zu (saves %zu)", name,
                     prec ? "f32" : "f64", Bs[ib], nh_curv_bytes(cf), nh_curv_bytes(cd), save);
            nh_curv_free(cd);
            nh_curv_free(cf);
        }
    for (int k = 0; k < K_N; k++) { free(a[k]); free(b[k]); }
    free(X32); free(X); free(T); free(V); free(U);
    nh_net_free(net);
}

static void x32_errors(void) {
    const size_t w[] = {3, 4, 2};
    nh_net *net = make_net(2, w, NH_ACT_TANH, NH_PARAM_NTK);
    float X32[N * 3];
    double X[N * 3], T[N * 2];
    make_data(3, 2, NH_LOSS_MSE, X32, X, T);
    X32[7] = NAN;
    nh_curv *c = NULL;
    nh_check(nh_curv_create_x32(net, X32, T, N, NH_LOSS_MSE, NULL, &c) == NH_ENONFINITE && !c,
             "NaN in X32: NH_ENONFINITE (%s)", nh_last_error());
    X32[7] = INFINITY;
    nh_check(nh_curv_create_x32(net, X32, T, N, NH_LOSS_MSE, NULL, &c) == NH_ENONFINITE && !c, "Inf in X32: NH_ENONFINITE");
    nh_check(nh_curv_create_x32(net, NULL, T, N, NH_LOSS_MSE, NULL, &c) == NH_EINVAL, "NULL X32: NH_EINVAL");
    nh_net_free(net);
}

/* A float32 .npy in both byte orders: nh_npy_read_f32 returns the same floats, nh_npy_read their widening. */
static void npy_f32(void) {
    const float v[6] = {1.5f, -2.25f, 3.0e-30f, 1.0e30f, 0.1f, -0.0f};
    char dir[] = "/tmp/nh_test_scale_XXXXXX";
    if (!mkdtemp(dir)) { nh_check(0, "mkdtemp"); return; }
    for (int big = 0; big < 2; big++) {
        char path[256], hdr[128];
        snprintf(path, sizeof path, "%s/x%d.npy", dir, big);
        int k = snprintf(hdr, sizeof hdr, "{'descr': '%cf4', 'fortran_order': False, 'shape': (2, 3), }", big ? '>' : '<');
        while ((10 + k + 1) % 64) hdr[k++] = ' ';
        hdr[k++] = '\n';
        FILE *f = fopen(path, "wb");
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 255), (unsigned char)(k >> 8)};
        fwrite(pre, 1, 10, f);
        fwrite(hdr, 1, (size_t)k, f);
        for (int i = 0; i < 6; i++) {
            unsigned char b[4];
            memcpy(b, &v[i], 4); /* little-endian host (x86, arm64) */
            if (big) { unsigned char t = b[0]; b[0] = b[3]; b[3] = t; t = b[1]; b[1] = b[2]; b[2] = t; }
            fwrite(b, 1, 4, f);
        }
        fclose(f);
        double *d = NULL;
        float *s = NULL;
        size_t nd = 0, sh[NH_NPY_MAXDIM];
        nh_status st = nh_npy_read_f32(path, &d, &s, &nd, sh);
        nh_check(st == NH_OK && !d && s && nd == 2 && sh[0] == 2 && sh[1] == 3 && memcmp(s, v, sizeof v) == 0,
                 "%s f4: nh_npy_read_f32 keeps float32 bits", big ? "big-endian" : "little-endian");
        free(s);
        st = nh_npy_read(path, &d, &nd, sh);
        int same = st == NH_OK;
        for (int i = 0; same && i < 6; i++) same = d[i] == (double)v[i];
        nh_check(same, "%s f4: nh_npy_read widens exactly", big ? "big-endian" : "little-endian");
        free(d);
        d = NULL; s = NULL;
        remove(path);
    }
    /* A float64 file through nh_npy_read_f32: *data, no *data32. */
    char path[256];
    snprintf(path, sizeof path, "%s/d.npy", dir);
    const double dv[3] = {1, 2, 3};
    const size_t dsh[1] = {3};
    double *d = NULL;
    float *s = (float *)1;
    size_t nd, sh[NH_NPY_MAXDIM];
    nh_check(nh_npy_write(path, dv, 1, dsh) == NH_OK && nh_npy_read_f32(path, &d, &s, &nd, sh) == NH_OK && !s && d &&
             d[2] == 3.0, "f8 file via nh_npy_read_f32: double data");
    free(d);
    remove(path);
    rmdir(dir);
}

typedef struct {
    size_t calls, bad_order, last_batch, nbatch, est_calls, max_products, planned, over;
    const char *op, *est;
} prog_log;

static void on_progress(void *user, const nh_progress *p) {
    prog_log *g = user;
    g->calls++;
    /* batches arrive 1..nbatch in order within each pass */
    if (p->batch != (g->last_batch % p->nbatch) + 1) g->bad_order++;
    g->last_batch = p->batch;
    g->nbatch = p->nbatch;
    g->op = p->op;
    if (p->est) {
        g->est_calls++;
        g->est = p->est;
        g->planned = p->planned;
        if (p->products > g->max_products) g->max_products = p->products;
        if (p->products >= p->planned) g->over++;
    }
}

static void progress(void) {
    const size_t w[] = {4, 6, 3};
    nh_net *net = make_net(2, w, NH_ACT_TANH, NH_PARAM_STANDARD);
    const size_t P = nh_net_nparams(net);
    float X32[N * 4];
    double X[N * 4], T[N * 3];
    make_data(4, 3, NH_LOSS_CE, X32, X, T);
    nh_curv_opts o = nh_curv_opts_default();
    o.batch = 3; /* 4 batches: 3, 3, 3, 1 rows */
    nh_curv *c = NULL;
    if (nh_curv_create_x32(net, X32, T, N, NH_LOSS_CE, &o, &c) != NH_OK) { nh_check(0, "ctx: %s", nh_last_error()); return; }
    prog_log g;
    memset(&g, 0, sizeof g);
    nh_curv_set_progress(c, on_progress, &g);
    double *v = calloc(P, sizeof *v), *hv = malloc(P * sizeof *hv);
    v[0] = 1;
    nh_status st0;
    st0 = nh_curv_hvp(c, v, hv);
    nh_check(st0 == NH_OK && g.calls == 4 && g.bad_order == 0 && g.nbatch == 4 && g.last_batch == 4 &&
             strcmp(g.op, "H v") == 0 && g.est_calls == 0, "H v: one call per batch, 1..4 (%zu calls)", g.calls);
    memset(&g, 0, sizeof g);
    nh_check(nh_curv_refresh(c) == NH_OK && g.calls == 4 && strcmp(g.op, "loss") == 0, "refresh: the loss pass, 4 calls");
    /* Lanczos: every product is one pass of 4 batches, counted towards "Lanczos" and never past its plan. */
    memset(&g, 0, sizeof g);
    double ev[2];
    nh_lanczos_info info;
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    nh_status st = nh_curv_lanczos(c, NH_OP_H, 2, &lo, ev, NULL, NULL, &info);
    nh_check(st == NH_OK && g.est_calls == 4 * info.nproducts && g.est && strcmp(g.est, "Lanczos") == 0 &&
             g.max_products + 1 == info.nproducts && g.over == 0 && g.bad_order == 0,
             "Lanczos: %zu calls for %zu products (max reported %zu of %zu planned)", g.est_calls, info.nproducts,
             g.max_products, g.planned);
    memset(&g, 0, sizeof g);
    nh_check(nh_curv_hvp(c, v, hv) == NH_OK && g.est_calls == 0, "after Lanczos: no estimator reported");
    nh_slq_opts so = nh_slq_opts_default();
    so.nvec = 2; so.nsteps = 5;
    nh_slq_result sr;
    memset(&g, 0, sizeof g);
    st = nh_curv_slq(c, NH_OP_H, &so, NULL, NULL, 0, NULL, 0, NULL, &sr);
    nh_check(st == NH_OK && g.est && strcmp(g.est, "SLQ") == 0 && g.planned == 10 && g.est_calls == 4 * sr.nproducts &&
             g.max_products + 1 == sr.nproducts, "SLQ: %zu calls for %zu products of 10 planned", g.est_calls,
             sr.nproducts);
    /* Unbatched: one call per product. */
    nh_curv *cu = NULL;
    nh_curv_create_x32(net, X32, T, N, NH_LOSS_CE, NULL, &cu);
    memset(&g, 0, sizeof g);
    nh_curv_set_progress(cu, on_progress, &g);
    nh_check(nh_curv_hvp(cu, v, hv) == NH_OK && g.calls == 1 && g.nbatch == 1, "unbatched H v: one call");
    nh_curv_set_progress(cu, NULL, NULL);
    memset(&g, 0, sizeof g);
    nh_check(nh_curv_hvp(cu, v, hv) == NH_OK && g.calls == 0, "callback removed: no call");
    nh_curv_free(cu);
    free(v); free(hv);
    nh_curv_free(c);
    nh_net_free(net);
}

int main(void) {
    const size_t w1[] = {3, 4}, w2[] = {4, 6, 3}, w3[] = {5, 6, 4, 2};
    x32_case(1, w1, NH_ACT_TANH, NH_LOSS_MSE, NH_PARAM_NTK, "L1 tanh mse");
    x32_case(2, w2, NH_ACT_SOFTPLUS, NH_LOSS_CE, NH_PARAM_STANDARD, "L2 softplus ce std");
    x32_case(3, w3, NH_ACT_TANH, NH_LOSS_BCE, NH_PARAM_NTK, "L3 tanh bce");
    x32_errors();
    npy_f32();
    progress();
    NH_TEST_END();
}
