/* bench_gram.c -- time nh_kernels_gram: N inputs (default 1024), depth 4,
 * softplus by quadrature, all six kernels (Sigma, Theta, Upsilon, Phi, Xi,
 * Lambda).  Prints one JSON line: median seconds over the repetitions and
 * Gram entries (pairs (i,j), all six kernels each) per second.
 * Usage: bench_gram [N] [depth] [reps] [act] */
#include "ntkhess.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double nh_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int nh_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1024;
    size_t depth = argc > 2 ? (size_t)atol(argv[2]) : 4;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    nh_kernel_opts o = nh_kernel_opts_default();
    o.depth = depth;
    if (argc > 4 && nh_act_from_name(argv[4], &o.act) != NH_OK) {
        fprintf(stderr, "%s\n", nh_last_error());
        return 2;
    }
    if (n < 2 || depth < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_gram [N>=2] [depth>=1] [reps>=1] [act]\n");
        return 2;
    }
    /* Inputs: standard normal rows in n0 = 16 dimensions scaled to
     * |x|^2/n0 = 1, so Sigma(1)(x,x) = 1 + beta^2 and the correlations are
     * spread over (-1, 1) as for real data. */
    const size_t n0 = 16;
    double *X = malloc(n * n0 * sizeof *X);
    double *K[NH_K_COUNT] = {0};
    const int want[] = {NH_K_SIGMA, NH_K_THETA, NH_K_UPSILON, NH_K_PHI, NH_K_XI, NH_K_LAMBDA};
    for (int k = 0; k < 6; k++) K[want[k]] = malloc(n * n * sizeof(double));
    double *t = malloc((size_t)reps * sizeof *t);
    if (!X || !t) return 1;
    for (int k = 0; k < 6; k++) if (!K[want[k]]) return 1;
    nh_rng r;
    nh_rng_seed(&r, 42);
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < n0; j++) { X[i * n0 + j] = nh_rng_normal(&r); s += X[i * n0 + j] * X[i * n0 + j]; }
        for (size_t j = 0; j < n0; j++) X[i * n0 + j] *= sqrt((double)n0 / s);
    }
    for (int rep = 0; rep < reps; rep++) {
        double t0 = nh_now();
        nh_status st = nh_kernels_gram(&o, n, n0, X, K);
        t[rep] = nh_now() - t0;
        if (st != NH_OK) { fprintf(stderr, "nh_kernels_gram: %s\n", nh_last_error()); return 1; }
    }
    qsort(t, (size_t)reps, sizeof *t, nh_cmp);
    double med = t[reps / 2];
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("{\"bench\":\"gram\",\"n\":%zu,\"n0\":%zu,\"depth\":%zu,\"act\":\"%s\",\"kernels\":6,"
           "\"threads\":%d,\"reps\":%d,\"median_s\":%.4f,\"entries\":%zu,\"entries_per_s\":%.4g,"
           "\"check_theta_00\":%.17g}\n",
           n, n0, depth, nh_act_name(o.act), threads, reps, med, n * n, (double)(n * n) / med,
           K[NH_K_THETA][0]);
    for (int k = 0; k < NH_K_COUNT; k++) free(K[k]);
    free(X);
    free(t);
    return 0;
}
