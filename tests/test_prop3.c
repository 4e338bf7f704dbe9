/* test_prop3.c -- Proposition 3 (App. C, with the corrected index range):
 *   rank(S) <= 2 (n_1 + ... + n_{L-1}) N n_L   and   rank(I) <= N n_L,
 * checked on dense Hessians of small networks across depths, widths, N and
 * n_L, in cases where both bounds are below P (so a generic full-rank matrix
 * would fail them).
 *
 * Numerical rank: the number of eigenvalues with |lambda| > tol, tol =
 * P eps ||A||_2 (the usual LAPACK-style tolerance: eigenvalues below it are
 * indistinguishable from rounding of a P x P symmetric eigenproblem).  The
 * count is only meaningful if the spectrum has a clear gap at the cut, so
 * each case also checks that the smallest kept |lambda| is > 1e4 tol (the
 * rank cannot move with the tolerance by four decades). */
#include "ntkhess.h"
#include "nh_test.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pcase {
    const char *name;
    size_t depth;
    size_t w[5];
    size_t n;
    nh_act act;
    nh_param param;
} pcase;

static int cmp_abs_desc(const void *a, const void *b) {
    double x = fabs(*(const double *)a), y = fabs(*(const double *)b);
    return (x < y) - (x > y);
}

/* Numerical rank of the symmetric P x P matrix A; *gap = smallest kept
 * |lambda| / tol (INFINITY when rank 0), *top = ||A||_2. */
static size_t num_rank(size_t P, const double *A, double *gap, double *top) {
    double *ev = malloc(P * sizeof *ev);
    if (!ev || nh_eigvalsh(P, A, ev) != NH_OK) { free(ev); return (size_t)-1; }
    qsort(ev, P, sizeof *ev, cmp_abs_desc);
    *top = fabs(ev[0]);
    double tol = (double)P * DBL_EPSILON * *top;
    size_t r = 0;
    while (r < P && fabs(ev[r]) > tol) r++;
    *gap = r ? fabs(ev[r - 1]) / tol : INFINITY;
    free(ev);
    return r;
}

static void run_case(const pcase *c) {
    nh_net_config cfg = nh_net_config_default();
    cfg.depth = c->depth;
    cfg.widths = c->w;
    cfg.act = c->act;
    cfg.param = c->param;
    nh_net *net = NULL;
    nh_check(nh_net_create(&cfg, &net) == NH_OK, "%s: create", c->name);
    if (!net) return;
    nh_net_init_normal(net, 7 + c->depth);
    size_t n0 = c->w[0], nL = c->w[c->depth], P = nh_net_nparams(net), hid = 0;
    for (size_t l = 1; l < c->depth; l++) hid += c->w[l];
    double *X = malloc(c->n * n0 * sizeof *X), *T = malloc(c->n * nL * sizeof *T);
    double *Im = malloc(P * P * sizeof *Im), *Sm = malloc(P * P * sizeof *Sm);
    nh_rng rng;
    nh_rng_seed(&rng, 100 + c->n);
    nh_rng_fill_normal(&rng, c->n * n0, X);
    nh_rng_fill_normal(&rng, c->n * nL, T); /* targets far from f: dC/dY != 0 */
    nh_curv *cv = NULL;
    nh_check(nh_curv_create(net, X, T, c->n, NH_LOSS_MSE, &cv) == NH_OK, "%s: curv", c->name);
    nh_check(nh_curv_dense(cv, NULL, Im, Sm) == NH_OK, "%s: dense I, S", c->name);
    size_t bS = 2 * hid * c->n * nL, bI = c->n * nL;
    nh_check(bS < P && bI < P, "%s: both bounds below P (%zu, %zu < %zu), so the test can fail", c->name, bS, bI, P);
    double gS, gI, tS, tI;
    size_t rS = num_rank(P, Sm, &gS, &tS), rI = num_rank(P, Im, &gI, &tI);
    printf("prop3: %-28s P=%5zu  rank(S)=%4zu <= %4zu   rank(I)=%3zu <= %3zu   (||S||_2=%.3g ||I||_2=%.3g)\n",
           c->name, P, rS, bS, rI, bI, tS, tI);
    nh_check(tS > 0 && tI > 0, "%s: S and I non-zero", c->name);
    nh_check(rS <= bS, "%s: rank(S) = %zu <= 2 (sum n_l) N n_L = %zu", c->name, rS, bS);
    nh_check(rI <= bI, "%s: rank(I) = %zu <= N n_L = %zu", c->name, rI, bI);
    nh_check(gS > 1e4 && gI > 1e4, "%s: clear gap at the cut (kept/tol: S %.3g, I %.3g)", c->name, gS, gI);
    /* I = J^T HC J with HC = Id/N and J of full row rank for distinct
     * generic inputs: the bound on I is attained exactly. */
    nh_check(rI == bI, "%s: rank(I) = N n_L exactly (generic J)", c->name);
    /* At N = 1, n_L = 1 the bound is attained (each hidden unit adds the two
     * directions of App. C).  For L = 2 the exact rank is known: per hidden
     * unit m, S acts on span{e_{v_km}, k <= n_L} + span{(x_i, beta) in the
     * unit's input weights, i <= N}, so rank(S) = n_1 (n_L + min(N, n_0+1))
     * for generic weights -- below the bound as soon as N > 1. */
    if (c->n == 1 && nL == 1) nh_check(rS == bS, "%s: bound attained at N = 1 (%zu)", c->name, rS);
    if (c->depth == 2) {
        size_t m = c->n < n0 + 1 ? c->n : n0 + 1, want = c->w[1] * (nL + m);
        nh_check(rS == want, "%s: L = 2: rank(S) = n_1 (n_L + min(N, n_0+1)) = %zu (got %zu)", c->name, want, rS);
    }
    nh_curv_free(cv);
    nh_net_free(net);
    free(X); free(T); free(Im); free(Sm);
}

int main(void) {
    static const pcase cases[] = {
        {"L2 w6 N1 softplus", 2, {20, 6, 1}, 1, NH_ACT_SOFTPLUS, NH_PARAM_NTK},
        {"L2 w6 N3 softplus", 2, {20, 6, 1}, 3, NH_ACT_SOFTPLUS, NH_PARAM_NTK},
        {"L2 w10 N2 tanh nL2", 2, {30, 10, 2}, 2, NH_ACT_TANH, NH_PARAM_NTK},
        {"L3 w8 N1 softplus", 3, {12, 8, 8, 1}, 1, NH_ACT_SOFTPLUS, NH_PARAM_NTK},
        {"L3 w8 N2 tanh", 3, {12, 8, 8, 1}, 2, NH_ACT_TANH, NH_PARAM_NTK},
        {"L3 w12 N2 erf mf", 3, {10, 12, 12, 1}, 2, NH_ACT_ERF, NH_PARAM_MF},
        {"L3 w10,6 N2 gelu nL2", 3, {16, 10, 6, 2}, 2, NH_ACT_GELU, NH_PARAM_NTK},
        {"L4 w6 N1 softplus", 4, {10, 6, 6, 6, 1}, 1, NH_ACT_SOFTPLUS, NH_PARAM_NTK},
        {"L4 w8 N1 arctan", 4, {8, 8, 8, 8, 1}, 1, NH_ACT_ARCTAN, NH_PARAM_NTK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
    NH_TEST_END();
}
