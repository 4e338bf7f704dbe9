/* gemm_shapes.c -- the GEMM rate at the shapes of fig1's hot paths (issue 15):
 * each GEMM of one GD step and of one H v at widths n0,n1,n2,n3 and batch N,
 * timed alone (same transposes, beta = 0 or 1 as the engine calls them), and
 * the square 2000^3 rate, in the same process.  The ceiling of an op's
 * frac_dgemm is its GEMMs' own rate over the square rate (the elementwise work
 * only lowers it further).
 * build: cc -O2 -std=c11 bench/gemm_shapes.c -o build/gemm_shapes \
 *        -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas
 * usage: build/gemm_shapes THREADS f64|f32 [N n0 n1 n2 n3]  -> one JSON line */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static int f32;
/* median seconds of C[M x Nn] = op(A) op(B) (+ C when beta = 1), row-major. */
static double tgemm(int ta, int tb, int M, int Nn, int K, double beta, int reps) {
    size_t e = f32 ? 4 : 8;
    void *A = calloc((size_t)M * K, e), *B = calloc((size_t)K * Nn, e), *C = calloc((size_t)M * Nn, e);
    double t[15];
    for (size_t i = 0; i < (size_t)M * K; i++) f32 ? (((float *)A)[i] = 0.5f) : (((double *)A)[i] = 0.5);
    for (size_t i = 0; i < (size_t)K * Nn; i++) f32 ? (((float *)B)[i] = 0.25f) : (((double *)B)[i] = 0.25);
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        if (f32)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, Nn, K, 1.0f,
                        A, ta ? M : K, B, tb ? K : Nn, (float)beta, C, Nn);
        else
            cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, Nn, K, 1.0,
                        A, ta ? M : K, B, tb ? K : Nn, beta, C, Nn);
        if (r >= 0) t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    free(A); free(B); free(C);
    return t[reps / 2];
}
typedef struct { const char *op; int ta, tb, M, Nn, K; double beta; } shape;
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: gemm_shapes THREADS f64|f32 [N n0 n1 n2 n3]\n"); return 2; }
    openblas_set_num_threads(atoi(argv[1]));
    f32 = !strcmp(argv[2], "f32");
    int N = argc > 3 ? atoi(argv[3]) : 256, w[4] = {196, 1000, 1000, 1};
    for (int i = 0; i < 4 && argc > 4 + i; i++) w[i] = atoi(argv[4 + i]);
    /* the engine's calls: forward A W^T (NT), gradient G^T A (TN), backward D W (NN) */
    shape s[32];
    int ns = 0;
    for (int l = 0; l < 3; l++) s[ns++] = (shape){"fwd", 0, 1, N, w[l + 1], w[l], 0};
    for (int l = 0; l < 3; l++) s[ns++] = (shape){"grad", 1, 0, w[l + 1], w[l], N, 0};
    for (int l = 1; l < 3; l++) s[ns++] = (shape){"bwd", 0, 0, N, w[l], w[l + 1], 0};
    for (int l = 1; l < 3; l++) s[ns++] = (shape){"fwd_acc", 0, 1, N, w[l + 1], w[l], 1};  /* RA W^T, += */
    for (int l = 1; l < 3; l++) s[ns++] = (shape){"grad_acc", 1, 0, w[l + 1], w[l], N, 1}; /* D^T RA, += */
    for (int l = 1; l < 3; l++) s[ns++] = (shape){"bwd_acc", 0, 0, N, w[l], w[l + 1], 1};  /* RD W, += */
    double ts[32], fl[32];
    const int reps = 9;
    for (int i = 0; i < ns; i++) {
        ts[i] = tgemm(s[i].ta, s[i].tb, s[i].M, s[i].Nn, s[i].K, s[i].beta, reps);
        fl[i] = 2.0 * s[i].M * s[i].Nn * s[i].K;
    }
    const double tq = tgemm(0, 0, 2000, 2000, 2000, 0, 5), sq = 2.0 * 8e9 / tq / 1e9;
    /* step = fwd + grad + bwd; H v = every shape (A V^T, RA W^T, G^T A, D^T RA, D V, RD W) */
    double st = 0, sf = 0, ht = 0, hf = 0;
    for (int i = 0; i < ns; i++) {
        const char *o = s[i].op;
        if (!strcmp(o, "fwd") || !strcmp(o, "grad") || !strcmp(o, "bwd")) { st += ts[i]; sf += fl[i]; }
        ht += ts[i]; hf += fl[i];
    }
    printf("{\"threads\":%s,\"precision\":\"%s\",\"N\":%d,\"widths\":[%d,%d,%d,%d],\"square_gflops\":%.2f,"
           "\"step_gemm_gflops\":%.2f,\"step_gemm_frac\":%.3f,\"hv_gemm_gflops\":%.2f,\"hv_gemm_frac\":%.3f,\"shapes\":[",
           argv[1], f32 ? "f32" : "f64", N, w[0], w[1], w[2], w[3], sq, sf / st / 1e9, sf / st / 1e9 / sq, hf / ht / 1e9,
           hf / ht / 1e9 / sq);
    for (int i = 0; i < ns; i++)
        printf("%s{\"op\":\"%s\",\"M\":%d,\"N\":%d,\"K\":%d,\"gflops\":%.2f}", i ? "," : "", s[i].op, s[i].M, s[i].Nn,
               s[i].K, fl[i] / ts[i] / 1e9);
    printf("]}\n");
    return 0;
}
