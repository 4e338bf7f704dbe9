/* bench_stream.c -- a streaming context on a data set from .npy files:
 * create (the loss pass), one H v, the top-K eigenvalues of H (Lanczos) and
 * one SLQ density of H, each timed (CLOCK_MONOTONIC), and the peak RSS.
 * Network: widths from argv, tanh, standard parametrization (PyTorch
 * nn.Linear init, seeded), softmax cross-entropy on class ids.
 *   bench_stream X.npy Y.npy WIDTHS B K TOL SLQ_STEPS [OUTDIR]
 * K = 0 or SLQ_STEPS = 0 skips that part; $NH_BENCH_SLQ_M SLQ vectors (default 1).
 * A float32 X.npy stays float32 (nh_curv_create_x32: no N x n_0 double copy).
 * OUTDIR: theta.npy, v.npy, hv.npy for the PyTorch peer (bench_stream_peer.py).
 * Threads: $NH_BENCH_THREADS (default 1).  One JSON line on stdout. */
#include "ntkhess.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void die(const char *what) {
    fprintf(stderr, "bench_stream: %s: %s\n", what, nh_last_error());
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: bench_stream X.npy Y.npy WIDTHS B K TOL SLQ_STEPS [OUTDIR]\n");
        return 2;
    }
    const int th = getenv("NH_BENCH_THREADS") ? atoi(getenv("NH_BENCH_THREADS")) : 1;
    nh_set_threads(th);
    double *X = NULL, *T = NULL;
    float *X32 = NULL;
    size_t nd, shx[8], sht[8], w[16], L = 0;
    if (nh_npy_read_f32(argv[1], &X, &X32, &nd, shx) != NH_OK || nd != 2) die("X");
    if (nh_npy_read(argv[2], &T, &nd, sht) != NH_OK) die("Y");
    for (char *s = argv[3]; *s && L < 16; s = strchr(s, ',') ? strchr(s, ',') + 1 : s + strlen(s)) w[L++] = strtoul(s, NULL, 10);
    const size_t N = shx[0], B = strtoul(argv[4], NULL, 10), K = strtoul(argv[5], NULL, 10);
    const size_t steps = strtoul(argv[7], NULL, 10);
    nh_net_config cfg = nh_net_config_default();
    cfg.depth = L - 1; cfg.widths = w; cfg.act = NH_ACT_TANH; cfg.param = NH_PARAM_STANDARD;
    nh_net *net = NULL;
    if (nh_net_create(&cfg, &net) != NH_OK) die("net");
    nh_net_init_uniform_fanin(net, 1);
    const size_t P = nh_net_nparams(net);
    nh_curv_opts o = nh_curv_opts_default();
    o.batch = B;
    nh_curv *c = NULL;
    double t0 = nhb_now();
    if ((X32 ? nh_curv_create_x32(net, X32, T, N, NH_LOSS_CE, &o, &c) : nh_curv_create_ex(net, X, T, N, NH_LOSS_CE, &o,
                                                                                           &c)) != NH_OK)
        die("create");
    double t_create = nhb_now() - t0;
    double *v = malloc(P * sizeof *v), *hv = malloc(P * sizeof *hv);
    nh_rng r; nh_rng_seed(&r, 7);
    nh_rng_fill_normal(&r, P, v);
    t0 = nhb_now();
    if (nh_curv_hvp(c, v, hv) != NH_OK) die("hvp");
    double t_hvp = nhb_now() - t0;
    double *ev = malloc((K + 1) * sizeof *ev);
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.tol = strtod(argv[6], NULL);
    nh_lanczos_info info;
    t0 = nhb_now();
    memset(&info, 0, sizeof info);
    if (K && nh_curv_lanczos(c, NH_OP_H, K, &lo, ev, NULL, NULL, &info) != NH_OK) die("lanczos"); /* K = 0: skip */
    double t_top = nhb_now() - t0;
    nh_slq_opts so = nh_slq_opts_default();
    so.nvec = getenv("NH_BENCH_SLQ_M") ? strtoul(getenv("NH_BENCH_SLQ_M"), NULL, 10) : 1; so.nsteps = steps;
    double *nodes = malloc((so.nvec * steps + 1) * sizeof *nodes), *wts = malloc((so.nvec * steps + 1) * sizeof *wts);
    nh_slq_result sr;
    t0 = nhb_now();
    memset(&sr, 0, sizeof sr);
    if (steps && nh_curv_slq(c, NH_OP_H, &so, nodes, wts, 0, NULL, 0, NULL, &sr) != NH_OK) die("slq"); /* 0: skip */
    double t_slq = nhb_now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"tool\":\"ntkhess\",\"x\":\"%s\",\"N\":%zu,\"P\":%zu,\"batch\":%zu,\"threads\":%d,\"context_mb\":%.1f,\"create_s\":%.3f,"
           "\"hvp_s\":%.3f,\"top_s\":%.3f,\"top_products\":%zu,\"top\":[", X32 ? "float32" : "float64", N, P, nh_curv_batch(c), th,
           nh_curv_bytes(c) / 1e6, t_create, t_hvp, t_top, info.nproducts);
    for (size_t k = 0; k < K; k++) printf("%s%.10g", k ? "," : "", ev[k]);
    printf("],\"slq_s\":%.3f,\"slq_products\":%zu,\"slq_m1\":%.6g,\"peak_rss_mb\":%.1f}\n", t_slq, sr.nproducts,
           sr.moments[0], ru.ru_maxrss / 1024.0);
    if (argc > 8) {
        char p[4096];
        size_t sh[1] = {P};
        snprintf(p, sizeof p, "%s/theta.npy", argv[8]); if (nh_npy_write(p, nh_net_params(net), 1, sh) != NH_OK) die(p);
        snprintf(p, sizeof p, "%s/v.npy", argv[8]); if (nh_npy_write(p, v, 1, sh) != NH_OK) die(p);
        snprintf(p, sizeof p, "%s/hv.npy", argv[8]); if (nh_npy_write(p, hv, 1, sh) != NH_OK) die(p);
    }
    nh_curv_free(c); nh_net_free(net);
    free(X); free(X32); free(T); free(v); free(hv); free(ev); free(nodes); free(wts);
    return 0;
}
