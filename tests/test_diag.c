/* test_diag.c -- nh_curv_diag / nh_curv_diag_all: the exact diagonals of
 * H, I, S against the diagonals of the dense matrices (nh_curv_dense:
 * H e_p and S e_p products, I = J^T HC J from the dense Jacobian) on small
 * nets -- depths 1-5, the three losses, tanh, softplus, silu (sigma'' != 0)
 * and relu, NTK, mean-field and standard parametrizations, bias-free
 * layers; batched contexts (B = 1, B = 3 not dividing N = 10) against the
 * unbatched one; float32 contexts; the Hutchinson estimator against the
 * exact diagonal (coverage of 4 SE, SE ~ 1/sqrt(M), determinism); AUTO's
 * choice; argument errors.
 *
 * Tolerances: exact vs dense, 1e-12 of the diagonal's max-abs scale (both
 * sides are sums of O(N P) rounded products in double; observed ~1e-16).
 * Batched vs unbatched: same sums in another order, 1e-12.  float32: the
 * engine's products in single precision, ~1e-7..1e-5 relative
 * (docs/precision.md): 1e-4 of the scale. */
#include "ntkhess.h"
#include "nh_test.h"

#include <stdlib.h>
#include <string.h>

void nh__alloc_fail_at(long k); /* internal fault injection (status.c) */

typedef struct {
    const char *name;
    size_t L, w[6];
    nh_act act;
    nh_loss loss;
    nh_param param;
    unsigned char bias[5]; /* 1 = has bias; all zero = every layer has one */
} cfg_t;

static const cfg_t CFGS[] = {
    {"L1 tanh mse ntk", 1, {4, 3}, NH_ACT_TANH, NH_LOSS_MSE, NH_PARAM_NTK, {0}},
    {"L2 softplus ce std", 2, {4, 6, 3}, NH_ACT_SOFTPLUS, NH_LOSS_CE, NH_PARAM_STANDARD, {0}},
    {"L2 tanh bce mf", 2, {3, 5, 2}, NH_ACT_TANH, NH_LOSS_BCE, NH_PARAM_MF, {0}},
    {"L3 tanh ce ntk", 3, {5, 6, 4, 3}, NH_ACT_TANH, NH_LOSS_CE, NH_PARAM_NTK, {0}},
    {"L3 silu mse mf nobias", 3, {3, 5, 4, 2}, NH_ACT_SILU, NH_LOSS_MSE, NH_PARAM_MF, {1, 0, 1}},
    {"L3 relu ce std", 3, {4, 5, 6, 3}, NH_ACT_RELU, NH_LOSS_CE, NH_PARAM_STANDARD, {0}},
    {"L4 tanh ce ntk", 4, {3, 5, 4, 6, 3}, NH_ACT_TANH, NH_LOSS_CE, NH_PARAM_NTK, {0}},
    {"L4 softplus bce std nobias", 4, {4, 4, 5, 3, 2}, NH_ACT_SOFTPLUS, NH_LOSS_BCE, NH_PARAM_STANDARD, {0, 1, 0, 1}},
    {"L4 silu mse mf", 4, {3, 6, 5, 4, 2}, NH_ACT_SILU, NH_LOSS_MSE, NH_PARAM_MF, {0}},
    {"L5 tanh ce std", 5, {3, 4, 5, 6, 4, 3}, NH_ACT_TANH, NH_LOSS_CE, NH_PARAM_STANDARD, {0}},
    {"L5 softplus mse ntk", 5, {4, 5, 3, 4, 5, 2}, NH_ACT_SOFTPLUS, NH_LOSS_MSE, NH_PARAM_NTK, {0}},
};
#define NCFG (sizeof CFGS / sizeof CFGS[0])
#define N 10

static nh_net *make_net(const cfg_t *t, uint64_t seed) {
    nh_net_config c = nh_net_config_default();
    c.depth = t->L; c.widths = t->w; c.act = t->act; c.param = t->param;
    int any = 0;
    for (size_t l = 0; l < t->L; l++) any |= t->bias[l];
    if (any) c.bias = t->bias;
    nh_net *net = NULL;
    if (nh_net_create(&c, &net) != NH_OK) { printf("create failed: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(net, seed);
    if (t->param == NH_PARAM_STANDARD) { /* fan-in scale, so the outputs stay O(1) */
        double *th = nh_net_params(net);
        for (size_t l = 0; l < t->L; l++) {
            const double s = 1.0 / sqrt((double)t->w[l]);
            for (size_t j = 0; j < t->w[l] * t->w[l + 1]; j++) th[nh_net_offset_W(net, l) + j] *= s;
        }
    }
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

static nh_diag_opts exact_opts(void) {
    nh_diag_opts o = nh_diag_opts_default();
    o.method = NH_DIAG_EXACT;
    return o;
}

static const char *OPN[3] = {"H", "I", "S"};

/* Exact diagonals vs dense, batched vs unbatched, float32, single-op calls. */
static void check_exact(const cfg_t *t) {
    nh_net *net = make_net(t, 11);
    const size_t P = nh_net_nparams(net);
    double X[N * 8], T[N * 8];
    make_data(t, 5, X, T);
    nh_curv *c = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 0);
    double *Hm = malloc(3 * P * P * sizeof *Hm), *Im = Hm + P * P, *Sm = Im + P * P;
    double *ref = malloc(3 * P * sizeof *ref), *D = malloc(3 * P * sizeof *D), *SE = malloc(3 * P * sizeof *SE);
    double *Db = malloc(3 * P * sizeof *Db), *one = malloc(2 * P * sizeof *one);
    nh_check(nh_curv_dense(c, Hm, Im, Sm) == NH_OK, "%s: dense", t->name);
    for (int k = 0; k < 3; k++)
        for (size_t p = 0; p < P; p++) ref[k * P + p] = (k == 0 ? Hm : k == 1 ? Im : Sm)[p * P + p];
    nh_diag_opts o = exact_opts();
    nh_diag_info info;
    nh_check(nh_curv_diag_all(c, &o, D, SE, &info) == NH_OK, "%s: diag_all exact", t->name);
    for (int k = 0; k < 3; k++)
        nh_check_array(D + k * P, ref + k * P, P, 1e-300, 1e-12, "%s: diag %s exact vs dense", t->name, OPN[k]);
    double semax = 0;
    for (size_t p = 0; p < 3 * P; p++) semax = fmax(semax, fabs(SE[p]));
    nh_check(semax == 0 && info.method == NH_DIAG_EXACT && info.nproducts == 0, "%s: exact se = 0, info", t->name);
    /* diag H = diag I + diag S as arrays (the definition), to rounding */
    for (size_t p = 0; p < P; p++) one[p] = D[P + p] + D[2 * P + p];
    nh_check_array(D, one, P, 0, 1e-15, "%s: diag H = diag I + diag S", t->name);
    for (int k = 0; k < 3; k++) {
        nh_check(nh_curv_diag(c, (nh_op)k, &o, one, one + P, NULL) == NH_OK, "%s: diag op %s", t->name, OPN[k]);
        nh_check(memcmp(one, D + k * P, P * sizeof *one) == 0, "%s: nh_curv_diag(%s) = row of diag_all", t->name,
                 OPN[k]);
    }
    const size_t Bs[2] = {1, 3};
    for (int b = 0; b < 2; b++) {
        nh_curv *cb = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, Bs[b]);
        nh_check(nh_curv_diag_all(cb, &o, Db, NULL, NULL) == NH_OK, "%s: B=%zu diag", t->name, Bs[b]);
        for (int k = 0; k < 3; k++)
            nh_check_array(Db + k * P, D + k * P, P, 1e-300, 1e-12, "%s: B=%zu diag %s = unbatched", t->name, Bs[b],
                           OPN[k]);
        nh_curv_free(cb);
    }
    for (int b = 0; b < 2; b++) {
        nh_curv *cf = make_ctx(net, X, T, t->loss, NH_PREC_SINGLE, b ? 3 : 0);
        nh_check(nh_curv_diag_all(cf, &o, Db, NULL, NULL) == NH_OK, "%s: float32 B=%d diag", t->name, b ? 3 : 0);
        for (int k = 0; k < 3; k++)
            nh_check_array(Db + k * P, D + k * P, P, 1e-300, 1e-4, "%s: float32 B=%d diag %s vs float64", t->name,
                           b ? 3 : 0, OPN[k]);
        nh_curv_free(cf);
    }
    free(Hm); free(ref); free(D); free(SE); free(Db); free(one);
    nh_curv_free(c);
    nh_net_free(net);
}

/* Hutchinson on the L3 tanh CE net: coverage, SE scaling, determinism, streams. */
static void check_hutchinson(void) {
    const cfg_t *t = &CFGS[3];
    nh_net *net = make_net(t, 11);
    const size_t P = nh_net_nparams(net);
    double X[N * 8], T[N * 8];
    make_data(t, 5, X, T);
    nh_curv *c = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 0);
    double *ex = malloc(3 * P * sizeof *ex), *D = malloc(3 * P * sizeof *D), *SE = malloc(3 * P * sizeof *SE);
    double *D2 = malloc(3 * P * sizeof *D2), *SE2 = malloc(3 * P * sizeof *SE2);
    nh_diag_opts o = exact_opts();
    nh_curv_diag_all(c, &o, ex, NULL, NULL);
    o.method = NH_DIAG_HUTCHINSON; o.nprobes = 400; o.seed = 7;
    nh_diag_info info;
    nh_check(nh_curv_diag_all(c, &o, D, SE, &info) == NH_OK, "hutchinson M=400");
    nh_check(info.method == NH_DIAG_HUTCHINSON && info.nprobes == 400 && info.nproducts == 400, "hutchinson info");
    /* Rule: an entry is covered when |est - exact| <= 4 SE (+ 1e-12 of the
     * scale for zero-variance entries); a normal mean misses 4 SE with
     * probability 6e-5, so >= 95% covered allows for the SE's own noise. */
    for (int k = 0; k < 3; k++) {
        double scale = 0;
        for (size_t p = 0; p < P; p++) scale = fmax(scale, fabs(ex[k * P + p]));
        size_t cov = 0;
        for (size_t p = 0; p < P; p++) cov += fabs(D[k * P + p] - ex[k * P + p]) <= 4 * SE[k * P + p] + 1e-12 * scale;
        nh_check((double)cov >= 0.95 * (double)P, "hutchinson diag %s: %zu of %zu entries within 4 SE", OPN[k], cov, P);
    }
    /* SE ~ 1/sqrt(M): M = 100 vs 400 (nested probes), median ratio ~ 2. */
    o.nprobes = 100;
    nh_curv_diag_all(c, &o, D2, SE2, NULL);
    double *ratio = malloc(P * sizeof *ratio);
    size_t nr = 0;
    for (size_t p = 0; p < P; p++)
        if (SE[p] > 0) ratio[nr++] = SE2[p] / SE[p];
    for (size_t a = 1; a < nr; a++)
        for (size_t b = a; b > 0 && ratio[b - 1] > ratio[b]; b--) { double x = ratio[b]; ratio[b] = ratio[b - 1]; ratio[b - 1] = x; }
    /* the ratio of two SD estimates from 100 and 400 samples: ~10% noise per entry; the median of ~100 entries is within 5% */
    nh_check(nr > P / 2 && ratio[nr / 2] > 1.8 && ratio[nr / 2] < 2.2, "hutchinson SE(M=100)/SE(M=400) median %.3f (want 2)",
             nr ? ratio[nr / 2] : 0.0);
    free(ratio);
    /* determinism: the same seed gives the same bits; another seed differs */
    nh_curv_diag_all(c, &o, D, SE, NULL);
    nh_check(memcmp(D, D2, 3 * P * sizeof *D) == 0 && memcmp(SE, SE2, 3 * P * sizeof *SE) == 0, "hutchinson deterministic");
    o.seed = 8;
    nh_curv_diag_all(c, &o, D, NULL, NULL);
    nh_check(memcmp(D, D2, 3 * P * sizeof *D) != 0, "hutchinson: another seed, other probes");
    /* batched: same probes through the streamed products */
    o.seed = 7;
    nh_curv *cb = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 3);
    nh_curv_diag_all(cb, &o, D, SE, NULL);
    nh_check_array(D, D2, 3 * P, 1e-300, 1e-12, "hutchinson B=3 = unbatched");
    nh_curv_free(cb);
    /* M = 1: the SE is undefined (NaN), the estimate is v o (A v) */
    o.nprobes = 1;
    nh_curv_diag_all(c, &o, D, SE, NULL);
    nh_check(isnan(SE[0]) && isfinite(D[0]), "hutchinson M=1: se NaN");
    free(ex); free(D); free(SE); free(D2); free(SE2);
    nh_curv_free(c);
    nh_net_free(net);
}

/* AUTO: exact when the cost bound allows; the cost formula; errors. */
static void check_auto_errors(void) {
    const cfg_t *t = &CFGS[6];
    nh_net *net = make_net(t, 3);
    const size_t P = nh_net_nparams(net);
    double X[N * 8], T[N * 8];
    make_data(t, 5, X, T);
    nh_curv *c = make_ctx(net, X, T, t->loss, NH_PREC_DOUBLE, 0);
    double *D = malloc(3 * P * sizeof *D), *SE = malloc(3 * P * sizeof *SE);
    nh_diag_info info;
    nh_diag_opts o = nh_diag_opts_default();
    nh_check(o.method == NH_DIAG_AUTO && o.nprobes == 64 && o.max_cost == 50.0, "default opts");
    nh_check(nh_curv_diag_all(c, &o, D, SE, &info) == NH_OK && info.method == NH_DIAG_EXACT, "auto: small net exact");
    /* widths 3,5,4,6,3 (est.h's formula): 2*3*(20+24+18) + 3*4*18 + 4*(15+20+24+18) + 2*4*6
     * + (2*4^2*6 + 2*4^2*5) = 1296 flops per sample; H v: 12 * 77 = 924 */
    nh_check_close(info.exact_flops, 1296.0 * N, 0, 1e-15, "auto: exact flops");
    nh_check_close(info.hvp_flops, 924.0 * N, 0, 1e-15, "auto: H v flops");
    nh_check_close(info.exact_cost, 1296.0 / 924.0, 0, 1e-15, "auto: cost in H v products");
    o.max_cost = 1.0;
    nh_check(nh_curv_diag_all(c, &o, D, SE, &info) == NH_OK && info.method == NH_DIAG_HUTCHINSON &&
                 info.nprobes == 64, "auto: over the bound, Hutchinson");
    o = nh_diag_opts_default();
    nh_check(nh_curv_diag(NULL, NH_OP_H, &o, D, NULL, NULL) == NH_EINVAL, "error: NULL context");
    nh_check(nh_curv_diag(c, NH_OP_H, &o, NULL, NULL, NULL) == NH_EINVAL, "error: NULL output");
    nh_check(nh_curv_diag(c, NH_OP_COUNT, &o, D, NULL, NULL) == NH_EINVAL, "error: bad op");
    o.method = NH_DIAG_METHOD_COUNT;
    nh_check(nh_curv_diag(c, NH_OP_H, &o, D, NULL, NULL) == NH_EINVAL, "error: bad method");
    o.method = NH_DIAG_HUTCHINSON; o.nprobes = 0;
    nh_check(nh_curv_diag(c, NH_OP_H, &o, D, NULL, NULL) == NH_EINVAL, "error: zero probes");
    o = nh_diag_opts_default(); o.max_cost = NAN;
    nh_check(nh_curv_diag(c, NH_OP_H, &o, D, NULL, NULL) == NH_EINVAL, "error: NaN max_cost");
    /* allocation failures anywhere inside (exact, Hutchinson, batched): NH_ENOMEM or NH_OK, never a crash or leak */
    nh_curv *cb = make_ctx(net, X, T, t->loss, NH_PREC_SINGLE, 3);
    int bad = 0;
    for (long k = 1; k <= 8; k++)
        for (int m = 0; m < 4; m++) {
            o = nh_diag_opts_default(); o.method = m & 1 ? NH_DIAG_HUTCHINSON : NH_DIAG_EXACT; o.nprobes = 2;
            nh__alloc_fail_at(k);
            nh_status st = m < 2 ? nh_curv_diag(c, NH_OP_S, &o, D, SE, NULL) : nh_curv_diag_all(cb, &o, D, SE, NULL);
            nh__alloc_fail_at(0);
            bad += st != NH_OK && st != NH_ENOMEM;
        }
    nh_check(bad == 0, "allocation failures give NH_ENOMEM or NH_OK (%d other statuses)", bad);
    nh_set_mem_limit(2000);
    o = nh_diag_opts_default(); o.method = NH_DIAG_EXACT;
    nh_check(nh_curv_diag_all(c, &o, D, SE, NULL) == NH_ETOOLARGE, "exact workspace over the memory limit -> NH_ETOOLARGE");
    nh_set_mem_limit(0);
    nh_curv_free(cb);
    free(D); free(SE);
    nh_curv_free(c);
    nh_net_free(net);
}

int main(void) {
    for (size_t i = 0; i < NCFG; i++) check_exact(&CFGS[i]);
    check_hutchinson();
    check_auto_errors();
    NH_TEST_END();
}
