/* bench_core.c -- H v, I v, S v, NTK Gram, G and one training step on the
 * finite-width engine, against this machine's dgemm rate measured in the same
 * run.  Usage: bench_core [--widths 196,1000,1000,1] [--N 256] [--min-s 1].
 * Prints one JSON line per operation. */
#include "ntkhess.h"
#include "bench.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { nh_curv *c; nh_net *net; double *v, *out, *out2, *K, *G; size_t P; } ctx_t;

static void op_gemm(void *p) {
    double **m = p;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2000, 2000, 2000, 1.0, m[0], 2000, m[1], 2000, 0.0, m[2], 2000);
}
static void op_refresh(void *p) { ctx_t *x = p; nh_curv_refresh(x->c); }
static void op_grad(void *p) { ctx_t *x = p; nh_curv_refresh(x->c); nh_curv_grad(x->c, x->out); }
static void op_hvp(void *p) { ctx_t *x = p; nh_curv_hvp(x->c, x->v, x->out); }
static void op_hvp_scratch(void *p) { ctx_t *x = p; nh_curv_refresh(x->c); nh_curv_hvp(x->c, x->v, x->out); }
static void op_ivp(void *p) { ctx_t *x = p; nh_curv_ivp(x->c, x->v, x->out); }
static void op_svp(void *p) { ctx_t *x = p; nh_curv_svp(x->c, x->v, x->out); }
static void op_ntk(void *p) { ctx_t *x = p; nh_curv_ntk(x->c, x->K); }
static void op_G(void *p) { ctx_t *x = p; nh_curv_G(x->c, x->G); }
static void op_step(void *p) { ctx_t *x = p; nh_curv_gd_step(x->c, x->net, 1e-3); }
/* One full moment record as `ntkhess measure` writes it (M = 32 probes):
 * exact Tr(I^k), Tr(H^k) with control variates, ||IS||_F, ||S||_F. */
static size_t rec_products;
static void op_record(void *p) {
    ctx_t *x = p;
    nh_trace_opts to = nh_trace_opts_default();
    to.nprobes = 32; to.control = 1;
    nh_trace_result ti, th;
    nh_curv_trace(x->c, NH_OP_I, 4, &to, &ti);
    nh_curv_trace(x->c, NH_OP_H, 4, &to, &th);
    to.control = 0;
    nh_ortho_result o;
    nh_curv_orthogonality(x->c, &to, &o);
    rec_products = ti.nproducts + th.nproducts + o.nproducts;
}

int main(int argc, char **argv) {
    size_t w[16] = {196, 1000, 1000, 1}, nw = 4, N = 256;
    double min_s = 1.0;
    int record = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--widths")) {
            nw = 0;
            for (char *s = strtok(argv[i + 1], ","); s && nw < 16; s = strtok(NULL, ",")) w[nw++] = (size_t)atol(s);
        } else if (!strcmp(argv[i], "--N")) N = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--min-s")) min_s = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--record")) record = atoi(argv[i + 1]);
    }
    const size_t L = nw - 1;
    /* dgemm anchor: n = 2000 square, 2 n^3 flops */
    double *m[3];
    for (int k = 0; k < 3; k++) { m[k] = malloc(2000 * 2000 * sizeof(double)); for (size_t i = 0; i < 4000000; i++) m[k][i] = 1.0 / (1 + i % 7); }
    nhb_result g = nhb_time(op_gemm, m, min_s, 3, 50);
    const double peak = 2.0 * 8e9 / g.median;
    for (int k = 0; k < 3; k++) free(m[k]);
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    printf("{\"op\":\"dgemm2000\",\"median_s\":%.6g,\"gflops\":%.4g,\"openblas_threads\":\"%s\"}\n", g.median,
           peak / 1e9, thr ? thr : "default");

    nh_net_config cfg = nh_net_config_default();
    cfg.depth = L; cfg.widths = w; cfg.act = NH_ACT_SOFTPLUS;
    ctx_t x = {0};
    if (nh_net_create(&cfg, &x.net) != NH_OK) { fprintf(stderr, "%s\n", nh_last_error()); return 1; }
    nh_net_init_normal(x.net, 1);
    x.P = nh_net_nparams(x.net);
    nh_rng r; nh_rng_seed(&r, 2);
    double *X = malloc(N * w[0] * sizeof *X), *T = malloc(N * w[L] * sizeof *T);
    nh_rng_fill_normal(&r, N * w[0], X);
    nh_rng_fill_normal(&r, N * w[L], T);
    if (nh_curv_create(x.net, X, T, N, NH_LOSS_MSE, &x.c) != NH_OK) { fprintf(stderr, "%s\n", nh_last_error()); return 1; }
    x.v = malloc(x.P * sizeof *x.v); x.out = malloc(x.P * sizeof *x.out); x.out2 = malloc(x.P * sizeof *x.out2);
    x.K = malloc(N * w[L] * N * w[L] * sizeof *x.K); x.G = malloc(N * w[L] * sizeof *x.G);
    nh_rng_fill_normal(&r, x.P, x.v);
    /* Validate before timing: H v == I v + S v to rounding. */
    double *iv = malloc(x.P * sizeof *iv), *sv = malloc(x.P * sizeof *sv), e = 0, s = 0;
    nh_curv_hvp(x.c, x.v, x.out);
    nh_curv_isvp(x.c, x.v, iv, sv);
    for (size_t p = 0; p < x.P; p++) { e += pow(x.out[p] - iv[p] - sv[p], 2); s += x.out[p] * x.out[p]; }
    if (!(sqrt(e / s) < 1e-12)) { fprintf(stderr, "validation failed: |Hv - Iv - Sv|/|Hv| = %g\n", sqrt(e / s)); return 1; }

    /* GEMM flop counts of this implementation (fwd volume = 2 N sum n_l n_{l+1}). */
    double fwd = 0, first = 2.0 * (double)N * (double)w[0] * (double)w[1];
    for (size_t l = 0; l < L; l++) fwd += 2.0 * (double)N * (double)w[l] * (double)w[l + 1];
    const double rest = fwd - first;
    const double f_refresh = fwd + rest;                 /* forward + backward to dA */
    const double f_grad = f_refresh + fwd;               /* + weight gradients */
    const double f_rfwd = first + 2 * rest;              /* R-forward */
    const double f_hvp = f_rfwd + fwd + 3 * rest;        /* + R-backward */
    const double f_ivp = f_rfwd + fwd + rest;
    const double f_svp = f_rfwd + fwd + 2 * rest;
    const double f_ntk = rest + 2.0 * N * N * (double)(L) * 0;  /* backprop of D, plus Gram GEMMs below */
    double f_ntk_gram = 0;
    for (size_t l = 0; l < L; l++) f_ntk_gram += 2.0 * N * N * ((double)w[l] + (double)w[l + 1]) * (double)(w[L] * w[L]);
    struct { const char *name; void (*fn)(void *); double flops; } ops[] = {
        {"refresh", op_refresh, f_refresh}, {"grad", op_grad, f_grad}, {"hvp", op_hvp, f_hvp},
        {"hvp_scratch", op_hvp_scratch, f_refresh + f_hvp}, {"ivp", op_ivp, f_ivp}, {"svp", op_svp, f_svp},
        {"ntk", op_ntk, f_ntk + f_ntk_gram}, {"G", op_G, 0}, {"step", op_step, f_grad + f_refresh},
    };
    double t_grad = 0, t_hvp = 0;
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
        nhb_result res = nhb_time(ops[k].fn, &x, min_s, 5, 200);
        if (!strcmp(ops[k].name, "grad")) t_grad = res.median;
        if (!strcmp(ops[k].name, "hvp")) t_hvp = res.median;
        double gf = ops[k].flops / res.median;
        printf("{\"op\":\"%s\",\"widths\":\"", ops[k].name);
        for (size_t l = 0; l <= L; l++) printf("%s%zu", l ? "," : "", w[l]);
        printf("\",\"N\":%zu,\"P\":%zu,\"median_s\":%.6g,\"min_s\":%.6g,\"reps\":%d,\"flops\":%.6g,\"gflops\":%.4g,"
               "\"frac_dgemm\":%.3f,\"ratio_to_grad\":%.3f}\n",
               N, x.P, res.median, res.min, res.reps, ops[k].flops, gf / 1e9, gf / peak,
               t_grad > 0 ? res.median / t_grad : 0.0);
        fflush(stdout);
    }
    if (record) {
        nhb_result res = nhb_time(op_record, &x, 0, 1, 1); /* one warmup + one timed record */
        printf("{\"op\":\"moment_record\",\"probes\":32,\"N\":%zu,\"P\":%zu,\"median_s\":%.6g,\"products\":%zu,"
               "\"hvp_equivalents\":%.1f}\n", N, x.P, res.median, rec_products, res.median / t_hvp);
    }
    nh_curv_free(x.c); nh_net_free(x.net);
    free(X); free(T); free(x.v); free(x.out); free(x.out2); free(x.K); free(x.G); free(iv); free(sv);
    return 0;
}
