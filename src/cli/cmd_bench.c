/* cmd_bench.c -- ntkhess bench: time one operation of the finite-width engine
 * (H v, I v, S v, NTK Gram, a GD step, a moment record, ...) on a random
 * network and batch, against this machine's dgemm rate measured in the same
 * process.  Prints one JSON line.  Speed is measured here, never asserted. */
#include "cli.h"
#include "fig1.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define NH_BENCH_MAXW 65
#define NH_TRY_CLI(e) do { nh_status s__ = (e); if (s__ != NH_OK) return s__; } while (0)

static const nh_optspec bench_opts[] = {
    {"widths", "LIST", "196,1000,1000,1", "layer widths n_0,...,n_L"},
    {"N", "N", "256", "batch size (samples)"},
    {"reps", "R", "auto", "timed repetitions after one warm-up (auto: 5; 1 for moments, fig1rec, fig1trial)"},
    {"threads", "T", "auto", "BLAS and OpenMP threads (auto: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS)"},
    {"precision", "f64|f32", "f64", "engine: f64 or f32 (nh_curv_create_ex with NH_PREC_SINGLE)"},
    {"block", "B", "1", "hvp only: B vectors per call (nh_curv_hvp_block); times are per call, per_vector_s too"},
    NH_OPT_ACT("softplus"),
    NH_OPT_LOSS("mse"),
    {"probes", "M", "32", "moments: probes per record (ntkhess measure's default); fig1rec, fig1trial use 4 "
                            "(fig1's before issue 15)"},
    {"anchor", "n", "2000", "size of the square dgemm timed as the rate anchor (0: skip)"},
    {"anchor-reps", "R", "5", "repetitions of the anchor dgemm (median)"},
    {"seed", "S", "0", "seed of the network, data and vectors"},
    {"data", "NAME", "mnist", "trial only: fig1's --data (mnist needs n_0 = 196)"},
    {NULL, NULL, NULL, NULL}};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *t, int r) {
    qsort(t, (size_t)r, sizeof *t, cmp_d);
    return r % 2 ? t[r / 2] : 0.5 * (t[r / 2 - 1] + t[r / 2]);
}

/* Available memory: MemAvailable from /proc/meminfo (bytes), 0 if unknown. */
static double mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024.0;
}
static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: kB */
}

/* dgemm (and sgemm) anchor: square n^3 product, same threads, median of reps
 * after one warm-up; GFLOP/s, NaN when n == 0. */
static void gemm_anchor(const nh_cmd *cmd, size_t an, int areps, int f32, double *dgemm_gf, double *sgemm_gf) {
    *dgemm_gf = *sgemm_gf = NAN;
    if (an == 0) return;
    double *m0 = malloc(3 * an * an * sizeof *m0);
    double *t = malloc((size_t)(areps + 1) * sizeof *t);
    if (!m0 || !t) nh_die(cmd, "out of memory (anchor)");
    for (size_t i = 0; i < 3 * an * an; i++) m0[i] = 1.0 / (double)(1 + i % 7);
    for (int r = 0; r <= areps; r++) {
        double t0 = now_s();
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)an, (int)an, (int)an, 1.0, m0, (int)an,
                    m0 + an * an, (int)an, 0.0, m0 + 2 * an * an, (int)an);
        t[r] = now_s() - t0;
    }
    *dgemm_gf = 2.0 * pow((double)an, 3) / median(t + 1, areps) / 1e9;
    if (f32) {
        float *s0 = (float *)m0;
        for (size_t i = 0; i < 3 * an * an; i++) s0[i] = 1.0f / (float)(1 + i % 7);
        for (int r = 0; r <= areps; r++) {
            double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)an, (int)an, (int)an, 1.0f, s0, (int)an,
                        s0 + an * an, (int)an, 0.0f, s0 + 2 * an * an, (int)an);
            t[r] = now_s() - t0;
        }
        *sgemm_gf = 2.0 * pow((double)an, 3) / median(t + 1, areps) / 1e9;
    }
    free(t);
    free(m0);
}

typedef struct bctx {
    const char *op;
    int f32;
    nh_curv *c, *c32; /* c32: the float32 context timed with --precision f32 (c validates) */
    nh_net *net;
    double *v, *out, *V, *OUT, *K;
    size_t P, B, M;
    size_t products; /* operator products of the last record / trial */
} bctx;

/* One trial of `ntkhess fig1` at its defaults: 64 GD steps with eta = 0.25
 * and a fig1 record (4 probes) every 4 steps, 17 records; theta is
 * restored afterwards so that repetitions are identical. */
static nh_status bench_fig1trial(bctx *x, nh_curv *c) {
    const size_t P = x->P;
    double *save = malloc(P * sizeof *save);
    if (!save) return NH_ENOMEM;
    memcpy(save, nh_net_params(x->net), P * sizeof *save);
    nh_trace_opts to = nh_trace_opts_default();
    to.nprobes = 4;
    to.control = 1;
    nh_trace_result ti, th;
    nh_status st = NH_OK;
    x->products = 0;
    for (int k = 0; k <= 64 && st == NH_OK; k++) {
        if (k > 0) st = nh_curv_gd_step(c, x->net, 0.25);
        if (st == NH_OK && k % 4 == 0) {
            st = nh_curv_trace(c, NH_OP_H, 4, &to, &th);
            if (st == NH_OK) st = nh_curv_trace(c, NH_OP_I, 4, &to, &ti);
            if (st == NH_OK) x->products += th.nproducts + ti.nproducts;
        }
    }
    memcpy(nh_net_params(x->net), save, P * sizeof *save);
    free(save);
    nh_status st2 = nh_curv_refresh(c);
    return st != NH_OK ? st : st2;
}

/* moments: one record of `ntkhess measure` (cmd_spectra.c measure_record);
 * fig1rec: one record of `ntkhess fig1` (cmd_fig.c fig1_trial). */
static nh_status bench_record(bctx *x, nh_curv *c) {
    nh_trace_opts to = nh_trace_opts_default();
    to.nprobes = x->M;
    to.control = 1;
    nh_trace_result ti, th;
    if (!strcmp(x->op, "fig1rec")) {
        NH_TRY_CLI(nh_curv_trace(c, NH_OP_H, 4, &to, &th));
        NH_TRY_CLI(nh_curv_trace(c, NH_OP_I, 4, &to, &ti));
        x->products = th.nproducts + ti.nproducts;
        return NH_OK;
    }
    NH_TRY_CLI(nh_curv_trace(c, NH_OP_I, 4, &to, &ti));
    NH_TRY_CLI(nh_curv_trace(c, NH_OP_H, 4, &to, &th));
    nh_trace_opts so = to;
    so.control = 0;
    nh_ortho_result o;
    NH_TRY_CLI(nh_curv_orthogonality(c, &so, &o));
    x->products = ti.nproducts + th.nproducts + o.nproducts;
    return NH_OK;
}

static nh_status run_op(bctx *x) {
    const char *op = x->op;
    nh_curv *c = x->f32 ? x->c32 : x->c;
    if (!strcmp(op, "hvp"))
        return x->B > 1 ? nh_curv_hvp_block(c, x->B, x->V, x->OUT) : nh_curv_hvp(c, x->v, x->out);
    if (!strcmp(op, "hvp_scratch")) {
        nh_status st = nh_curv_refresh(c);
        return st != NH_OK ? st : nh_curv_hvp(c, x->v, x->out);
    }
    if (!strcmp(op, "ivp")) return nh_curv_ivp(c, x->v, x->out);
    if (!strcmp(op, "svp")) return nh_curv_svp(c, x->v, x->out);
    if (!strcmp(op, "ntk")) return nh_curv_ntk(c, x->K);
    if (!strcmp(op, "grad")) return nh_curv_grad(c, x->out);
    if (!strcmp(op, "step")) return nh_curv_gd_step(c, x->net, 1e-6);
    if (!strcmp(op, "fig1trial")) return bench_fig1trial(x, c);
    if (!strcmp(op, "moments") || !strcmp(op, "fig1rec")) return bench_record(x, c);
    return NH_EINVAL;
}

static double rel2(const double *a, const double *b, const double *c2, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - b[i] - (c2 ? c2[i] : 0.0);
        e += d * d;
        s += a[i] * a[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static const char *const bench_ops[] = {"hvp", "hvp_scratch", "ivp", "svp", "ntk", "grad", "step", "moments",
                                        "fig1rec", "fig1trial", "trial", NULL};

/* The run's options. */
typedef struct bcfg {
    const char *op;
    size_t w[NH_BENCH_MAXW], L, nout, N, B, M, an;
    int reps, areps, f32, is_rec, probes_given, prec_given, act_given;
    const char *data, *threads;
    nh_act act;
    nh_loss loss;
    uint64_t seed;
} bcfg;

static void bench_parse(const nh_cmd *cmd, int argc, char **argv, bcfg *b) {
    memset(b, 0, sizeof *b);
    if (argc > 0 && argv[0][0] != '-') { b->op = argv[0]; argc--; argv++; }
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    const char *op = b->op;
    char names[256];
    size_t k = 0;
    int known = 0;
    for (int i = 0; bench_ops[i]; i++) { /* the list in the messages, from the table */
        k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "", bench_ops[i]);
        known |= op && !strcmp(op, bench_ops[i]);
    }
    if (!op) nh_die_usage(cmd, "missing OP (one of %s)", names);
    if (!known) nh_die_usage(cmd, "unknown OP '%s' (one of %s)", op, names);
    nh_cli_threads(&a);
    const size_t nw = nh_arg_sizes(&a, "widths", b->w, NH_BENCH_MAXW);
    if (nw < 2) nh_die_usage(cmd, "--widths needs at least 2 entries (n_0 and n_L)");
    b->L = nw - 1, b->nout = b->w[b->L];
    b->N = (size_t)nh_arg_int(&a, "N", 1, (long long)1 << 32);
    b->is_rec = !strcmp(op, "moments") || !strcmp(op, "fig1rec") || !strcmp(op, "fig1trial");
    const char *rs = nh_arg_req(&a, "reps");
    b->reps = strcmp(rs, "auto") ? (int)nh_arg_int(&a, "reps", 1, 1000) : (b->is_rec ? 1 : 5);
    const char *prec = nh_arg_req(&a, "precision");
    if (!strcmp(prec, "f32")) b->f32 = 1;
    else if (strcmp(prec, "f64")) nh_die_usage(cmd, "--precision must be f64 or f32, got '%s'", prec);
    b->B = (size_t)nh_arg_int(&a, "block", 1, 4096);
    if (b->B > 1 && strcmp(op, "hvp")) nh_die_usage(cmd, "--block applies to OP hvp only");
    b->act = nh_arg_act(cmd, &a, NULL);
    b->loss = nh_arg_loss(cmd, &a);
    b->M = (size_t)nh_arg_int(&a, "probes", 1, 1 << 20);
    if (strncmp(op, "fig1", 4) == 0 && !nh_arg_flag(&a, "probes")) b->M = 4;
    b->an = (size_t)nh_arg_int(&a, "anchor", 0, 20000);
    b->areps = (int)nh_arg_int(&a, "anchor-reps", 1, 1000);
    b->seed = nh_arg_u64(&a, "seed");
    b->probes_given = nh_arg_flag(&a, "probes");
    b->prec_given = nh_arg_flag(&a, "precision");
    b->act_given = nh_arg_flag(&a, "act");
    b->data = nh_arg_req(&a, "data");
    b->threads = nh_arg_req(&a, "threads");
    if (!strcmp(op, "trial") && !strcmp(rs, "auto")) b->reps = 3;
}

/* Forward-pass flops 2 N sum n_l n_{l+1} and the parameter count. */
static double bench_fwd(const bcfg *b, double *P) {
    double fwd = 0;
    *P = 0;
    for (size_t l = 0; l < b->L; l++) {
        *P += (double)(b->w[l] + 1) * (double)b->w[l + 1];
        fwd += 2.0 * (double)b->N * (double)b->w[l] * (double)b->w[l + 1];
    }
    return fwd;
}

/* Memory the run needs (bytes), checked against MemAvailable and the
 * library's limit before anything large is allocated. */
static double bench_memory(const nh_cmd *cmd, const bcfg *b) {
    const char *op = b->op;
    const size_t N = b->N, B = b->B;
    double P, sumw = 0, wmax = 0;
    bench_fwd(b, &P);
    for (size_t l = 0; l <= b->L; l++) { sumw += (double)b->w[l]; if ((double)b->w[l] > wmax) wmax = (double)b->w[l]; }
    const double nm = (double)N * (double)b->nout, eb = b->f32 ? 4.0 : 8.0;
    double bytes = 8.0 * P /* theta */ + eb * ((double)N * (8.0 * sumw + 2.0 * wmax) + nm * (b->nout + 3.0)) /* cache */;
    if (b->f32) bytes += 4.0 * P; /* float theta copy */
    double extra = 8.0 * 4.0 * P; /* v, out, validation vectors */
    if (!strcmp(op, "hvp") && B > 1)
        extra += 8.0 * (2.0 * (double)B * P + (double)(B < 16 ? B : 16) * (double)N * (2.0 * sumw + 2.0 * wmax + b->nout));
    if (!strcmp(op, "ntk") || b->is_rec) extra += eb * (3.0 * nm * wmax + (double)N * N) + 8.0 * 2.0 * nm * nm;
    if (!strcmp(op, "step")) extra += 8.0 * 2.0 * P;
    if (b->is_rec) extra += 8.0 * (8.0 * P + 4.0 * nm * nm + 2.0 * nm * P / (double)(N > 1 ? N : 1));
    bytes += extra;
    const double an = (double)b->an;
    if (8.0 * 3.0 * an * an > bytes) bytes = 8.0 * 3.0 * an * an; /* anchor runs alone */
    const double avail = mem_available(), lim = (double)nh_get_mem_limit();
    const double cap = avail > 0 && avail < lim ? avail : lim;
    if (bytes > 0.9 * cap)
        nh_die(cmd, "the run needs about %.2f GB but only %.2f GB are available (widths, N or --block too large)",
               bytes / 1e9, cap / 1e9);
    return bytes;
}

/* Network (iid N(0,1) parameters), batch (X, targets N(0,1)), vectors and
 * contexts; X, T and the two validation vectors iv, sv are returned. */
static void bench_setup(const nh_cmd *cmd, const bcfg *b, bctx *x, nh_rng *r, double **X, double **T, double **iv,
                        double **sv) {
    const size_t N = b->N, nout = b->nout;
    nh_net_config cfg = nh_net_config_default();
    cfg.depth = b->L; cfg.widths = b->w; cfg.act = b->act;
    memset(x, 0, sizeof *x);
    x->op = b->op; x->f32 = b->f32; x->B = b->B; x->M = b->M;
    NH_CHECK(cmd, nh_net_create(&cfg, &x->net));
    nh_net_init_normal(x->net, b->seed);
    x->P = nh_net_nparams(x->net);
    nh_rng_seed(r, b->seed + 1);
    const size_t tc = nh_loss_target_count(b->loss, N, nout);
    *X = malloc(N * b->w[0] * sizeof **X), *T = malloc(tc * sizeof **T);
    if (!*X || !*T) nh_die(cmd, "out of memory");
    nh_rng_fill_normal(r, N * b->w[0], *X);
    for (size_t i = 0; i < tc; i++) {
        double u = nh_rng_normal(r);
        (*T)[i] = b->loss == NH_LOSS_MSE ? u : b->loss == NH_LOSS_BCE ? (u > 0 ? 1.0 : -1.0) : (double)(i % nout);
    }
    x->v = malloc(x->P * sizeof *x->v);
    x->out = malloc(x->P * sizeof *x->out);
    *iv = malloc(x->P * sizeof **iv);
    *sv = malloc(x->P * sizeof **sv);
    if (!x->v || !x->out || !*iv || !*sv) nh_die(cmd, "out of memory");
    nh_rng_fill_normal(r, x->P, x->v);
    if (!strcmp(b->op, "ntk") && !(x->K = malloc(N * nout * N * nout * sizeof *x->K))) nh_die(cmd, "out of memory");
    nh_curv_opts copts = nh_curv_opts_default();
    copts.precision = NH_PREC_SINGLE;
    if (b->f32) NH_CHECK(cmd, nh_curv_create_ex(x->net, *X, *T, N, b->loss, &copts, &x->c32));
    NH_CHECK(cmd, nh_curv_create(x->net, *X, *T, N, b->loss, &x->c));
}

/* ntk: u^T K u == |J^T u|^2 for a random u. */
static double bench_check_ntk(const nh_cmd *cmd, const bcfg *b, bctx *x, nh_rng *r, double *iv, char *check) {
    const size_t nn = b->N * b->nout;
    double *u = malloc(nn * sizeof *u);
    if (!u) nh_die(cmd, "out of memory");
    nh_rng_fill_normal(r, nn, u);
    NH_CHECK(cmd, run_op(x));
    double q = 0, g2 = 0;
    for (size_t i = 0; i < nn; i++)
        for (size_t j = 0; j < nn; j++) q += u[i] * x->K[i * nn + j] * u[j];
    NH_CHECK(cmd, nh_curv_vjp(x->c, u, iv));
    for (size_t p = 0; p < x->P; p++) g2 += iv[p] * iv[p];
    snprintf(check, 160, "u^T K u == |J^T u|^2 (K from the %s engine, J^T u in f64)", b->f32 ? "f32" : "f64");
    free(u);
    return fabs(q - g2) / g2;
}

/* grad, step: grad . v == dC/dY . (J v): the gradient is J^T dC/dY. */
static double bench_check_grad(const nh_cmd *cmd, const bcfg *b, bctx *x, char *check) {
    const size_t nn = b->N * b->nout;
    double *jv = malloc(nn * sizeof *jv), *dc = malloc(nn * sizeof *dc);
    if (!jv || !dc) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_curv_grad(b->f32 ? x->c32 : x->c, x->out));
    NH_CHECK(cmd, nh_curv_jvp(x->c, x->v, jv));
    nh_curv_dloss(x->c, dc);
    double a1 = 0, a2 = 0, sc = 0;
    for (size_t p = 0; p < x->P; p++) { a1 += x->out[p] * x->v[p]; sc += fabs(x->out[p] * x->v[p]); }
    for (size_t i = 0; i < nn; i++) a2 += dc[i] * jv[i];
    snprintf(check, 160, "grad . v == dC/dY . J v");
    free(jv);
    free(dc);
    return fabs(a1 - a2) / sc;
}

/* The products: H v == I v + S v (f32: against the f64 H v as well); with
 * --block, the block's last product against the single one. */
static double bench_check_hv(const nh_cmd *cmd, const bcfg *b, bctx *x, nh_rng *r, double *iv, double *sv,
                             double tol, char *check) {
    double err;
    NH_CHECK(cmd, nh_curv_hvp(x->c, x->v, x->out));
    if (b->f32) {
        double *h32 = malloc(x->P * sizeof *h32);
        if (!h32) nh_die(cmd, "out of memory");
        NH_CHECK(cmd, nh_curv_isvp(x->c32, x->v, iv, sv));
        NH_CHECK(cmd, nh_curv_hvp(x->c32, x->v, h32));
        double e1 = rel2(h32, iv, sv, x->P), e2 = rel2(x->out, h32, NULL, x->P);
        err = e1 > e2 ? e1 : e2;
        snprintf(check, 160, "f32: Hv == Iv + Sv and Hv(f32) == Hv(f64), max relative 2-norm error");
        free(h32);
    } else {
        NH_CHECK(cmd, nh_curv_isvp(x->c, x->v, iv, sv));
        err = rel2(x->out, iv, sv, x->P);
        snprintf(check, 160, "Hv == Iv + Sv (relative 2-norm)");
    }
    const size_t B = b->B;
    if (B > 1 && err <= tol) {
        x->V = malloc(B * x->P * sizeof *x->V);
        x->OUT = malloc(B * x->P * sizeof *x->OUT);
        if (!x->V || !x->OUT) nh_die(cmd, "out of memory (block of %zu vectors)", B);
        nh_rng_fill_normal(r, B * x->P, x->V);
        memcpy(x->V + (B - 1) * x->P, x->v, x->P * sizeof *x->v);
        NH_CHECK(cmd, nh_curv_hvp_block(b->f32 ? x->c32 : x->c, B, x->V, x->OUT));
        double e2 = rel2(x->OUT + (B - 1) * x->P, x->out, NULL, x->P);
        if (e2 > err) err = e2;
        snprintf(check, 160, "Hv == Iv + Sv and block Hv == single Hv (relative 2-norm)");
    }
    return err;
}

/* Validate before timing; the run stops when the check fails. */
static double bench_validate(const nh_cmd *cmd, const bcfg *b, bctx *x, nh_rng *r, double *iv, double *sv,
                             char *check) {
    const double tol = b->f32 ? 1e-3 : 1e-11;
    double err;
    if (!strcmp(b->op, "ntk")) err = bench_check_ntk(cmd, b, x, r, iv, check);
    else if (!strcmp(b->op, "grad") || !strcmp(b->op, "step")) err = bench_check_grad(cmd, b, x, check);
    else err = bench_check_hv(cmd, b, x, r, iv, sv, tol, check);
    if (!(err <= tol)) nh_die(cmd, "validation failed before timing: %s: error %.3g > %.3g", check, err, tol);
    return err;
}

/* Timings of the run, and of a single H v for the records. */
typedef struct btime {
    double med, tmin, hv_med;
    size_t products;
} btime;

/* One warm-up (records: the validation warmed the context), then reps. */
static void bench_time(const nh_cmd *cmd, const bcfg *b, bctx *x, btime *tm) {
    double *t = malloc((size_t)b->reps * sizeof *t);
    if (!t) nh_die(cmd, "out of memory");
    if (!b->is_rec) NH_CHECK(cmd, run_op(x));
    for (int k = 0; k < b->reps; k++) {
        double t0 = now_s();
        NH_CHECK(cmd, run_op(x));
        t[k] = now_s() - t0;
    }
    tm->tmin = t[0];
    for (int k = 1; k < b->reps; k++) if (t[k] < tm->tmin) tm->tmin = t[k];
    tm->med = median(t, b->reps);
    free(t);
    tm->hv_med = NAN;
    tm->products = 0;
    if (!b->is_rec) return;
    /* H v equivalents of a record: time single H v in the same process. */
    double th[5];
    nh_curv *hc = b->f32 ? x->c32 : x->c;
    nh_curv_hvp(hc, x->v, x->out);
    for (int k = 0; k < 5; k++) { double t0 = now_s(); nh_curv_hvp(hc, x->v, x->out); th[k] = now_s() - t0; }
    tm->hv_med = median(th, 5);
    tm->products = x->products;
}

/* GEMM flop counts of this implementation: fwd = 2 N sum n_l n_{l+1},
 * rest = fwd without the input layer; NaN for the records. */
static double bench_flops(const bcfg *b) {
    double P;
    const double fwd = bench_fwd(b, &P), first = 2.0 * (double)b->N * (double)b->w[0] * (double)b->w[1];
    const double rest = fwd - first;
    const char *op = b->op;
    if (!strcmp(op, "hvp")) return (2 * fwd + 4 * rest) * (double)b->B;
    if (!strcmp(op, "hvp_scratch")) return (fwd + rest) + (2 * fwd + 4 * rest);
    if (!strcmp(op, "ivp")) return 2 * fwd + 2 * rest;
    if (!strcmp(op, "svp")) return 2 * fwd + 3 * rest;
    if (!strcmp(op, "grad")) return fwd;
    if (!strcmp(op, "step")) return fwd + (fwd + rest);
    if (!strcmp(op, "ntk")) {
        double flops = (double)b->nout * rest, N = (double)b->N, no = (double)b->nout;
        for (size_t l = 0; l < b->L; l++) flops += 2.0 * N * N * ((double)b->w[l] + no * no * (double)b->w[l + 1]);
        return flops;
    }
    return NAN;
}

/* printf into the line buffer. */
static void bput(char **p, char *end, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bput(char **p, char *end, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*p, (size_t)(end - *p), fmt, ap);
    va_end(ap);
    if (k > 0) *p += (size_t)k < (size_t)(end - *p) ? (size_t)k : (size_t)(end - *p) - 1;
}

static void bput_num(char **p, char *end, const char *key, const char *fmt, double v) {
    if (!isfinite(v)) { bput(p, end, "\"%s\":null,", key); return; }
    bput(p, end, "\"%s\":", key);
    bput(p, end, fmt, v);
    bput(p, end, ",");
}

/* Results of the run for the output line. */
typedef struct bres {
    btime tm;
    double flops, dgemm_gf, sgemm_gf, err, bytes, rss;
    size_t P;
    const char *check;
} bres;

/* The one JSON line, built whole and written with one call, so that a
 * killed or failed run never leaves half a line. */
static void bench_emit(const bcfg *b, const bres *s) {
    char line[4096], *p = line, *end = line + sizeof line;
    const double gf = s->flops / s->tm.med / 1e9, anchor = b->f32 ? s->sgemm_gf : s->dgemm_gf;
    bput(&p, end, "{\"op\":\"%s\",\"widths\":[", b->op);
    for (size_t l = 0; l <= b->L; l++) bput(&p, end, "%s%zu", l ? "," : "", b->w[l]);
    bput(&p, end, "],\"N\":%zu,\"P\":%zu,\"act\":\"%s\",\"loss\":\"%s\",\"threads\":%d,\"precision\":\"%s\",\"block\":%zu,",
         b->N, s->P, nh_act_name(b->act), nh_loss_name(b->loss), openblas_get_num_threads(), b->f32 ? "f32" : "f64",
         b->B);
    bput(&p, end, "\"median_s\":%.6g,\"min_s\":%.6g,\"reps\":%d,", s->tm.med, s->tm.tmin, b->reps);
    if (b->B > 1) bput(&p, end, "\"per_vector_s\":%.6g,", s->tm.med / (double)b->B);
    bput_num(&p, end, "flops", "%.6g", s->flops);
    bput_num(&p, end, "gflops", "%.4g", isfinite(s->flops) ? gf : NAN);
    bput(&p, end, "\"dgemm_n\":%zu,", b->an);
    bput_num(&p, end, "dgemm_gflops", "%.4g", s->dgemm_gf);
    if (b->f32) bput_num(&p, end, "sgemm_gflops", "%.4g", s->sgemm_gf);
    bput_num(&p, end, "frac_dgemm", "%.3f", isfinite(s->flops) ? gf / s->dgemm_gf : NAN);
    if (b->f32) bput_num(&p, end, "frac_sgemm", "%.3f", isfinite(s->flops) ? gf / anchor : NAN);
    if (b->is_rec)
        bput(&p, end, "\"probes\":%zu,\"products\":%zu,\"hvp_median_s\":%.6g,\"hv_equivalents\":%.1f,", b->M,
             s->tm.products, s->tm.hv_med, s->tm.med / s->tm.hv_med);
    bput(&p, end, "\"check\":\"%s\",\"check_err\":%.3g,\"mem_estimate_mb\":%.1f,\"peak_rss_mb\":%.1f}\n", s->check,
         s->err, s->bytes / 1048576.0, s->rss);
    fwrite(line, 1, (size_t)(p - line), stdout);
    fflush(stdout);
}

/* ------------------------------------------------- bench trial: fig1's trial */

/* Trials 0..R-1 of fig1 (its trial function, its defaults) and what they cost. */
typedef struct btrial {
    int R;
    size_t nv, M;
    double *t, *step, *trh, *tri, *hv; /* per trial; hv: a single f64 H v timed right after it */
    double *H, *se;               /* R x nv: Tr(H^k) and its within-trial Hutchinson SE */
    size_t products;
} btrial;

/* fig1's own parse of the options that bench passes on (the rest: fig1's defaults). */
static nh_fig1_bench *bench_trial_open(const nh_cmd *cmd, const bcfg *b) {
    if (b->L != 3 || b->w[1] != b->w[2] || b->nout != 1)
        nh_die_usage(cmd, "trial: --widths must be n_0,W,W,1 (fig1's network)");
    char n[32], w[32], m[32], seed[32];
    snprintf(n, sizeof n, "%zu", b->N);
    snprintf(w, sizeof w, "%zu", b->w[1]);
    snprintf(m, sizeof m, "%zu", b->M);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)b->seed);
    char *argv[20];
    int argc = 0;
    const char *kv[][2] = {{"--data", b->data}, {"--n", n}, {"--width", w}, {"--threads", b->threads},
                           {"--seed", seed}, {"--acts", b->act_given ? nh_act_name(b->act) : NULL},
                           {"--probes", b->probes_given ? m : NULL},
                           {"--precision", b->prec_given ? (b->f32 ? "f32" : "f64") : NULL}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kv[i][1]) { argv[argc++] = (char *)kv[i][0]; argv[argc++] = (char *)kv[i][1]; }
    nh_fig1_bench *fb = nh_fig1_bench_open(cmd, argc, argv);
    size_t d, M;
    int f32;
    nh_act act;
    nh_fig1_bench_info(fb, &M, &f32, &act, &d);
    if (d != b->w[0]) nh_die_usage(cmd, "trial: n_0 = %zu but --data %s has %zu inputs", b->w[0], b->data, d);
    return fb;
}

static void bench_trial_run(const nh_cmd *cmd, nh_fig1_bench *fb, btrial *x) {
    const size_t nv = x->nv, R = (size_t)x->R;
    double *trI = malloc(nv * sizeof *trI);
    x->t = calloc(5 * R + 2 * R * nv, sizeof *x->t);
    if (!trI || !x->t) nh_die(cmd, "out of memory");
    x->step = x->t + R, x->trh = x->step + R, x->tri = x->trh + R, x->hv = x->tri + R;
    x->H = x->hv + R, x->se = x->H + R * nv;
    for (size_t r = 0; r < R; r++) {
        nh_fig1_cost c;
        nh_fig1_bench_trial(cmd, fb, r, x->H + r * nv, trI, x->se + r * nv, &c);
        x->t[r] = c.total_s, x->step[r] = c.step_s, x->trh[r] = c.trace_h_s, x->tri[r] = c.trace_i_s;
        x->products = c.products;
        x->hv[r] = nh_fig1_bench_hv(cmd, fb, 3); /* the unit, under the load the trial saw */
        fprintf(stderr, "ntkhess bench trial: trial %zu: %.3f s, H v %.4f s\n", r, c.total_s, x->hv[r]);
    }
    free(trI);
}

/* Per k = 2..4: the within-trial Hutchinson SE (mean over trials and
 * records) against the trial-to-trial SD of Tr(H^k) (mean over records). */
static void bench_trial_stats(char **p, char *end, const btrial *x) {
    const size_t nv = x->nv, R = (size_t)x->R, nrec = nv / 4;
    for (int q = 1; q < 4; q++) {
        double se = 0, sd = 0;
        for (size_t i = 0; i < nrec; i++) {
            double m = 0, v = 0;
            for (size_t r = 0; r < R; r++) {
                m += x->H[r * nv + i * 4 + (size_t)q];
                se += x->se[r * nv + i * 4 + (size_t)q];
            }
            m /= (double)R;
            for (size_t r = 0; r < R; r++) { double d = x->H[r * nv + i * 4 + (size_t)q] - m; v += d * d; }
            sd += R > 1 ? sqrt(v / (double)(R - 1)) : NAN;
        }
        se /= (double)(R * nrec), sd /= (double)nrec;
        bput(p, end, "\"k%d\":{", q + 1);
        /* se = sd1 / sqrt(M): sd1, one probe's SD, is what M = 1 adds to a trial (not measurable at M = 1) */
        const double sd1 = se * sqrt((double)x->M);
        bput_num(p, end, "hutch_se", "%.4g", x->M > 1 ? se : NAN);
        bput_num(p, end, "probe_sd", "%.4g", x->M > 1 ? sd1 : NAN);
        bput_num(p, end, "trial_sd", "%.4g", sd);
        bput_num(p, end, "ratio", "%.3f", x->M > 1 ? se / sd : NAN);
        bput_num(p, end, "ratio_1probe", "%.3f", x->M > 1 ? sd1 / sd : NAN);
        (*p)[-1] = '}'; /* the last comma closes the object */
        bput(p, end, ",");
    }
}

static double med_of(const double *v, int R) {
    double t[256];
    const int n = R < 256 ? R : 256;
    memcpy(t, v, (size_t)n * sizeof *t);
    return median(t, n);
}

/* The breakdown is the median trial's own (lower median for even R), so that its parts add up. */
static void bench_trial_emit(const bcfg *b, const btrial *x, double dgemm, int f32, nh_act act) {
    char line[4096], *p = line, *end = line + sizeof line;
    const double med = med_of(x->t, x->R), hv = med_of(x->hv, x->R);
    size_t im = 0, below = (size_t)-1;
    for (int r = 0; r < x->R; r++) { /* the trial closest below the median */
        size_t cnt = 0;
        for (int q = 0; q < x->R; q++) cnt += x->t[q] < x->t[r];
        if (cnt == (size_t)(x->R - 1) / 2 && below == (size_t)-1) below = (size_t)r;
    }
    im = below == (size_t)-1 ? 0 : below;
    const double st = x->step[im], th = x->trh[im], ti = x->tri[im], tt = x->t[im];
    double tmin = x->t[0];
    for (int r = 1; r < x->R; r++) tmin = x->t[r] < tmin ? x->t[r] : tmin;
    bput(&p, end, "{\"op\":\"trial\",\"widths\":[%zu,%zu,%zu,1],\"N\":%zu,\"act\":\"%s\",\"data\":\"%s\",", b->w[0],
         b->w[1], b->w[2], b->N, nh_act_name(act), b->data);
    bput(&p, end, "\"threads\":%d,\"precision\":\"%s\",\"probes\":%zu,\"reps\":%d,", openblas_get_num_threads(),
         f32 ? "f32" : "f64", x->M, x->R);
    bput(&p, end, "\"median_s\":%.6g,\"min_s\":%.6g,\"hv_s\":%.6g,\"hv_equivalents\":%.1f,\"products\":%zu,", med,
         tmin, hv, med / hv, x->products);
    bput(&p, end, "\"breakdown\":{\"trial_s\":%.4g,\"gd_steps_s\":%.4g,\"trace_H_s\":%.4g,", tt, st, th);
    bput(&p, end, "\"trace_I_s\":%.4g,\"other_s\":%.4g,",
         ti, tt - st - th - ti);
    bput(&p, end, "\"ntk_s_est\":%.4g,\"products_s_est\":%.4g},", 2 * ti, th - ti);
    bput(&p, end, "\"hutchinson\":{");
    bench_trial_stats(&p, end, x);
    p[-1] = '}';
    bput(&p, end, ",");
    bput_num(&p, end, "dgemm_gflops", "%.4g", dgemm);
    p[-1] = '}';
    bput(&p, end, "\n");
    fwrite(line, 1, (size_t)(p - line), stdout);
    fflush(stdout);
}

/* bench trial: R trials (0..R-1), then R single f64 H v on trial 0's network. */
static int run_bench_trial(const nh_cmd *cmd, const bcfg *b) {
    nh_fig1_bench *fb = bench_trial_open(cmd, b);
    btrial x;
    memset(&x, 0, sizeof x);
    int f32;
    nh_act act;
    size_t d;
    nh_fig1_bench_info(fb, &x.M, &f32, &act, &d);
    x.R = b->reps, x.nv = nh_fig1_bench_nvalues(fb);
    bench_trial_run(cmd, fb, &x);
    double dg, sg;
    gemm_anchor(cmd, b->an, b->areps, 0, &dg, &sg);
    bench_trial_emit(b, &x, dg, f32, act);
    free(x.t);
    nh_fig1_bench_close(fb);
    return 0;
}

static int run_bench(const nh_cmd *cmd, int argc, char **argv) {
    bcfg b;
    bench_parse(cmd, argc, argv, &b);
    if (!strcmp(b.op, "trial")) return run_bench_trial(cmd, &b);
    bres s;
    memset(&s, 0, sizeof s);
    s.bytes = bench_memory(cmd, &b);
    bctx x;
    nh_rng r;
    double *X, *T, *iv, *sv;
    bench_setup(cmd, &b, &x, &r, &X, &T, &iv, &sv);
    char check[160];
    s.err = bench_validate(cmd, &b, &x, &r, iv, sv, check);
    s.check = check;
    bench_time(cmd, &b, &x, &s.tm);
    /* Peak resident size of the run itself, then the rate anchor (after the
     * timing, so that its 3 n^2 doubles do not count in peak_rss_mb). */
    s.rss = peak_rss_mb();
    gemm_anchor(cmd, b.an, b.areps, b.f32, &s.dgemm_gf, &s.sgemm_gf);
    s.flops = bench_flops(&b);
    s.P = x.P;
    bench_emit(&b, &s);
    nh_curv_free(x.c32);
    nh_curv_free(x.c);
    nh_net_free(x.net);
    free(X); free(T); free(x.v); free(x.out); free(iv); free(sv); free(x.V); free(x.OUT); free(x.K);
    return 0;
}

const nh_cmd nh_cmd_bench = {
    "bench", "Time one operation of the finite-width engine against this machine's dgemm rate.",
    "OP [--widths LIST] [--N N] [--reps R] [--threads T] [--precision f64|f32] [--block B]",
    "OP is one of:\n"
    "  hvp          H v on the cached forward/backward passes (--block B: B vectors per\n"
    "               call through nh_curv_hvp_block)\n"
    "  hvp_scratch  refresh (forward + backward) then H v\n"
    "  ivp, svp     I v (Gauss-Newton), S v\n"
    "  ntk          the empirical NTK Gram matrix (N n_L)^2\n"
    "  grad         the gradient on the cached passes\n"
    "  step         one gradient-descent step (gradient, update, refresh)\n"
    "  moments      one full record of `ntkhess measure` (exact Tr(I^k), Tr(H^k) with\n"
    "               control variates, ||IS||_F exact, ||S||_F; M probes), also in H v\n"
    "               equivalents (its time over a single H v timed in the same process)\n"
    "  fig1rec      one record of `ntkhess fig1` (Tr(H^k), Tr(I^k), k <= 4, 4 probes)\n"
    "  fig1trial    one trial of `ntkhess fig1` at its defaults (64 GD steps, eta 0.25,\n"
    "               a record every 4 steps: 17 records); products counts the records' only\n"
    "  trial        fig1's own trial function at fig1's own defaults (docs/figures.md):\n"
    "               trials 0..R-1 (--reps, default 3) of the first nonlinearity, with\n"
    "               median_s, hv_s (a float64 H v after each trial), hv_equivalents, the\n"
    "               breakdown of the median trial and, per k = 2..4, the Hutchinson SE,\n"
    "               the single-probe SD and the trial-to-trial SD of Tr(H^k); --precision,\n"
    "               --probes and --act go to fig1 only when given; --data is fig1's\n"
    "               (mnist: n_0 = 196)\n"
    "The network (iid N(0,1) parameters) and the batch (X, targets N(0,1)) are random,\n"
    "seeded by --seed.  Before timing, the result is validated (H v == I v + S v;\n"
    "u^T K u == |J^T u|^2 for ntk; grad . v == dC/dY . J v for grad and step; the block\n"
    "against a single product) and the run stops if it fails.  Before allocating, the\n"
    "memory the run needs is compared with MemAvailable and the library's memory limit;\n"
    "a run that does not fit stops with a one-line error.  Timing: one warm-up (none\n"
    "for moments, fig1rec, fig1trial), then R repetitions, median and minimum\n"
    "(CLOCK_MONOTONIC).  The rate anchor is a square\n"
    "dgemm (sgemm too for f32) of size --anchor with the same threads, median of\n"
    "--anchor-reps after one warm-up, timed in the same process right after the\n"
    "operation (peak_rss_mb is read before it, so it is the operation's own peak).\n"
    "Output: one JSON line with op, widths, N, P, act, loss, threads, precision, block,\n"
    "median_s, min_s, reps, [per_vector_s], flops (the GEMM flops of this\n"
    "implementation; null for moments, fig1rec, fig1trial), gflops, dgemm_n, dgemm_gflops,\n"
    "frac_dgemm (gflops / dgemm_gflops), [sgemm_gflops, frac_sgemm], [probes,\n"
    "products, hvp_median_s, hv_equivalents], check, check_err, mem_estimate_mb and\n"
    "peak_rss_mb (getrusage ru_maxrss).  --precision f32 times a float32 context\n"
    "(nh_curv_create_ex, NH_PREC_SINGLE), validated against the f64 one.",
    bench_opts, run_bench};
