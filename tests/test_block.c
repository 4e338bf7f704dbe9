/* test_block.c -- nh_curv_hvp_block (the m vectors batched through the
 * R-passes) against m single nh_curv_hvp products: depths 1..5, one and
 * several outputs, the three losses, both parametrizations, block sizes that
 * are and are not multiples of the internal chunk (16); plus the argument
 * checks (NULL, m = 0, a non-finite entry in a later vector). */
#include "ntkhess.h"
#include "nh_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t L;
    size_t w[7];
    nh_act act;
    nh_loss loss;
    nh_param param;
    size_t n;
} cfg_t;

static void run_cfg(const cfg_t *t, size_t m) {
    nh_net_config nc = nh_net_config_default();
    nc.depth = t->L; nc.widths = t->w; nc.act = t->act; nc.param = t->param; nc.beta = 0.3;
    nh_net *net = NULL;
    if (nh_net_create(&nc, &net) != NH_OK) { printf("FAIL: create %s: %s\n", t->name, nh_last_error()); nh_t_fail++; return; }
    nh_net_init_normal(net, 7);
    const size_t n = t->n, n0 = t->w[0], nL = t->w[t->L], P = nh_net_nparams(net);
    nh_rng r; nh_rng_seed(&r, 11);
    double *X = malloc(n * n0 * sizeof *X), *T = malloc(n * nL * sizeof *T);
    nh_rng_fill_normal(&r, n * n0, X);
    for (size_t i = 0; i < n * nL; i++) {
        double u = nh_rng_normal(&r);
        T[i] = t->loss == NH_LOSS_MSE ? u : t->loss == NH_LOSS_BCE ? (u > 0 ? 1.0 : -1.0) : (double)(i % nL);
    }
    nh_curv *c = NULL;
    if (nh_curv_create(net, X, T, n, t->loss, &c) != NH_OK) {
        printf("FAIL: curv %s: %s\n", t->name, nh_last_error()); nh_t_fail++;
        nh_net_free(net); free(X); free(T); return;
    }
    double *V = malloc(m * P * sizeof *V), *B = malloc(m * P * sizeof *B), *S = malloc(m * P * sizeof *S);
    nh_rng_fill_normal(&r, m * P, V);
    for (size_t q = 0; q < m * P; q++) B[q] = NAN; /* every entry must be written */
    nh_status st = nh_curv_hvp_block(c, m, V, B);
    nh_check(st == NH_OK, "%s m=%zu: block status %d (%s)", t->name, m, (int)st, nh_last_error());
    for (size_t j = 0; j < m; j++) nh_curv_hvp(c, V + j * P, S + j * P);
    double e = 0, s = 0;
    int finite = 1;
    for (size_t q = 0; q < m * P; q++) {
        if (!isfinite(B[q])) finite = 0;
        e = fmax(e, fabs(B[q] - S[q]));
        s = fmax(s, fabs(S[q]));
    }
    nh_check(finite && e <= 1e-13 * s, "%s m=%zu: block == %zu single H v (max err %.3g, scale %.3g)", t->name, m,
             m, e, s);
    /* The cached passes are untouched: a single product afterwards is unchanged. */
    double *h = malloc(P * sizeof *h);
    nh_curv_hvp(c, V, h);
    nh_check(memcmp(h, S, P * sizeof *h) == 0, "%s m=%zu: context unchanged by the block product", t->name, m);
    free(h);
    nh_curv_free(c); nh_net_free(net);
    free(X); free(T); free(V); free(B); free(S);
}

int main(void) {
    const cfg_t cfgs[] = {
        {"L1 mse", 1, {5, 3}, NH_ACT_TANH, NH_LOSS_MSE, NH_PARAM_NTK, 6},
        {"L2 softplus mse", 2, {4, 9, 1}, NH_ACT_SOFTPLUS, NH_LOSS_MSE, NH_PARAM_NTK, 7},
        {"L3 softplus mse", 3, {6, 11, 8, 1}, NH_ACT_SOFTPLUS, NH_LOSS_MSE, NH_PARAM_NTK, 9},
        {"L3 tanh bce 2 out", 3, {3, 10, 7, 2}, NH_ACT_TANH, NH_LOSS_BCE, NH_PARAM_NTK, 8},
        {"L3 gelu ce 4 out mf", 3, {5, 12, 9, 4}, NH_ACT_GELU, NH_LOSS_CE, NH_PARAM_MF, 10},
        {"L4 arctan mse 3 out", 4, {4, 8, 13, 6, 3}, NH_ACT_ARCTAN, NH_LOSS_MSE, NH_PARAM_NTK, 5},
        {"L5 erf mse wide first", 5, {30, 6, 7, 8, 5, 1}, NH_ACT_ERF, NH_LOSS_MSE, NH_PARAM_NTK, 4},
    };
    const size_t ms[] = {1, 2, 8, 17, 33};
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++)
        for (size_t k = 0; k < sizeof ms / sizeof *ms; k++) run_cfg(&cfgs[i], ms[k]);

    /* Argument checks. */
    size_t w[] = {3, 5, 1};
    nh_net_config nc = nh_net_config_default();
    nc.depth = 2; nc.widths = w;
    nh_net *net = NULL;
    nh_net_create(&nc, &net);
    nh_net_init_normal(net, 1);
    double X[6] = {1, 2, 3, -1, 0.5, 0}, T[2] = {0.1, -0.2};
    nh_curv *c = NULL;
    nh_curv_create(net, X, T, 2, NH_LOSS_MSE, &c);
    const size_t P = nh_net_nparams(net);
    double *V = calloc(3 * P, sizeof *V), *O = calloc(3 * P, sizeof *O);
    nh_check(nh_curv_hvp_block(NULL, 1, V, O) == NH_EINVAL, "NULL context -> NH_EINVAL");
    nh_check(nh_curv_hvp_block(c, 1, NULL, O) == NH_EINVAL, "NULL V -> NH_EINVAL");
    nh_check(nh_curv_hvp_block(c, 1, V, NULL) == NH_EINVAL, "NULL OUT -> NH_EINVAL");
    nh_check(nh_curv_hvp_block(c, 0, V, O) == NH_OK, "m = 0 -> NH_OK");
    V[2 * P + 1] = INFINITY;
    nh_check(nh_curv_hvp_block(c, 3, V, O) == NH_ENONFINITE, "Inf in the third vector -> NH_ENONFINITE");
    nh_check(strstr(nh_last_error(), "non-finite") != NULL, "message names the non-finite entry: %s", nh_last_error());
    free(V); free(O);
    nh_curv_free(c); nh_net_free(net);
    NH_TEST_END();
}
