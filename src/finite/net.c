/* net.c -- the MLP: parameter layout, initialization, forward pass. */
#include "core/internal.h"
#include "finite/net_impl.h"
#include "core/blas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nh_net_config nh_net_config_default(void) {
    nh_net_config c;
    c.depth = 0;
    c.widths = NULL;
    c.act = NH_ACT_SOFTPLUS;
    c.beta = 0.1;
    c.param = NH_PARAM_NTK;
    c.acts = NULL;
    c.act_params = NULL;
    c.bias = NULL;
    return c;
}

void nh_net_free(nh_net *net) {
    if (!net) return;
    free(net->w);
    free(net->acts);
    free(net->actp);
    free(net->bias);
    free(net->offW);
    free(net->offb);
    free(net->theta);
    free(net->tname);
    free(net);
}

/* The activation after hidden layer i and its parameter (NaN for none),
 * validated as nh_act_parse would. */
static nh_status nh__cfg_act(const nh_net_config *cfg, size_t i, nh_act *a, double *p) {
    *a = cfg->acts ? cfg->acts[i] : cfg->act;
    if ((int)*a < 0 || *a >= NH_ACT_COUNT) NH_FAIL(NH_EINVAL, "unknown activation %d after layer %zu", (int)*a, i);
    const double def = nh_act_default_param(*a);
    *p = def;
    if (isnan(def) || !cfg->act_params || isnan(cfg->act_params[i])) return NH_OK;
    *p = cfg->act_params[i];
    if (!isfinite(*p)) NH_FAIL(NH_ENONFINITE, "activation parameter after layer %zu is not finite", i);
    if (*a == NH_ACT_SOFTPLUS && !(*p > 0))
        NH_FAIL(NH_EINVAL, "softplus beta after layer %zu must be > 0 (got %g)", i, *p);
    return NH_OK;
}

/* Everything about cfg that does not need memory; P on success. */
static nh_status nh__cfg_check(const nh_net_config *cfg, size_t *Pout) {
    if (cfg->depth < 1) NH_FAIL(NH_EINVAL, "depth must be >= 1 (got %zu)", cfg->depth);
    if (cfg->depth > 1000) NH_FAIL(NH_EINVAL, "depth %zu is absurd (limit 1000)", cfg->depth);
    if (!cfg->widths) NH_FAIL(NH_EINVAL, "widths is NULL");
    if ((int)cfg->act < 0 || cfg->act >= NH_ACT_COUNT) NH_FAIL(NH_EINVAL, "unknown activation %d", (int)cfg->act);
    if (cfg->param != NH_PARAM_NTK && cfg->param != NH_PARAM_MF && cfg->param != NH_PARAM_STANDARD)
        NH_FAIL(NH_EINVAL, "unknown parametrization %d", (int)cfg->param);
    if (!isfinite(cfg->beta)) NH_FAIL(NH_ENONFINITE, "beta is not finite");
    const size_t L = cfg->depth;
    for (size_t i = 0; i + 1 < L; i++) {
        nh_act a;
        double p;
        NH_TRY(nh__cfg_act(cfg, i, &a, &p));
    }
    int ok = 1;
    size_t P = 0;
    for (size_t l = 0; l <= L; l++)
        if (cfg->widths[l] < 1) NH_FAIL(NH_EINVAL, "width n_%zu must be >= 1 (got %zu)", l, cfg->widths[l]);
    for (size_t l = 0; l < L; l++) {
        const size_t hasb = !cfg->bias || cfg->bias[l];
        P = nh__add(P, nh__mul(nh__add(cfg->widths[l], hasb, &ok), cfg->widths[l + 1], &ok), &ok);
    }
    /* The network alone needs theta; every use needs at least a gradient and
     * a direction too, so ask for 3P up front: a width that cannot be trained
     * is refused here, before any allocation. */
    NH_TRY(nh__check_bytes(ok, nh__mul(P, 3 * sizeof(double), &ok), "nh_net_create", "the parameter vector (3 copies)"));
    if (!nh__fits_int(P)) NH_FAIL(NH_ETOOLARGE, "P = %zu parameters exceeds the BLAS integer range", P);
    *Pout = P;
    return NH_OK;
}

nh_status nh_net_create(const nh_net_config *cfg, nh_net **out) {
    if (!cfg || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    *out = NULL;
    size_t P = 0;
    NH_TRY(nh__cfg_check(cfg, &P));
    const size_t L = cfg->depth, nh = L > 1 ? L - 1 : 1;
    nh_net *net = nh__calloc(1, sizeof *net);
    if (!net) NH_FAIL(NH_ENOMEM, "out of memory");
    net->L = L;
    net->act = cfg->acts && L > 1 ? cfg->acts[0] : cfg->act;
    net->beta = cfg->beta;
    net->param = cfg->param;
    net->P = P;
    net->w = nh__malloc((L + 1) * sizeof *net->w);
    net->acts = nh__malloc(nh * sizeof *net->acts);
    net->actp = nh__malloc(nh * sizeof *net->actp);
    net->bias = nh__malloc(L * sizeof *net->bias);
    net->offW = nh__malloc(L * sizeof *net->offW);
    net->offb = nh__malloc(L * sizeof *net->offb);
    net->theta = nh__calloc(P ? P : 1, sizeof *net->theta);
    net->tname = nh__malloc(2 * L * sizeof *net->tname);
    if (!net->w || !net->acts || !net->actp || !net->bias || !net->offW || !net->offb || !net->theta || !net->tname) {
        nh_net_free(net);
        NH_FAIL(NH_ENOMEM, "cannot allocate %zu parameters", P);
    }
    memcpy(net->w, cfg->widths, (L + 1) * sizeof *net->w);
    net->acts[0] = net->act;
    net->actp[0] = nh_act_default_param(net->act);
    for (size_t i = 0; i + 1 < L; i++) nh__cfg_act(cfg, i, &net->acts[i], &net->actp[i]); /* checked above */
    size_t off = 0;
    for (size_t l = 0; l < L; l++) {
        net->bias[l] = !cfg->bias || cfg->bias[l];
        net->offW[l] = off;
        off += net->w[l] * net->w[l + 1];
        net->offb[l] = net->bias[l] ? off : (size_t)-1;
        if (net->bias[l]) off += net->w[l + 1];
        snprintf(net->tname[net->ntens++], sizeof *net->tname, "W%zu", l);
        if (net->bias[l]) snprintf(net->tname[net->ntens++], sizeof *net->tname, "b%zu", l);
    }
    *out = net;
    return NH_OK;
}

nh_status nh_net_clone(const nh_net *net, nh_net **out) {
    if (!net || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    nh_net_config c = nh_net_config_default();
    c.depth = net->L; c.widths = net->w; c.act = net->act; c.beta = net->beta; c.param = net->param;
    c.acts = net->acts; c.act_params = net->actp; c.bias = net->bias;
    NH_TRY(nh_net_create(&c, out));
    memcpy((*out)->theta, net->theta, net->P * sizeof(double));
    return NH_OK;
}

void nh_net_init_normal(nh_net *net, uint64_t seed) {
    nh_rng r;
    nh_rng_seed(&r, seed);
    nh_rng_fill_normal(&r, net->P, net->theta); /* sequential: same theta for any thread count */
}

void nh_net_init_uniform_fanin(nh_net *net, uint64_t seed) {
    nh_rng r;
    nh_rng_seed(&r, seed);
    /* theta order is layer by layer, W_l then b_l, all with the bound of n_l. */
    for (size_t l = 0; l < net->L; l++) {
        const double bound = 1.0 / sqrt((double)net->w[l]);
        const size_t cnt = net->w[l + 1] * (net->w[l] + (net->bias[l] ? 1 : 0));
        double *t = net->theta + net->offW[l];
        for (size_t k = 0; k < cnt; k++) t[k] = (2.0 * nh_rng_uniform(&r) - 1.0) * bound;
    }
}

size_t nh_net_depth(const nh_net *net) { return net->L; }
const size_t *nh_net_widths(const nh_net *net) { return net->w; }
size_t nh_net_nparams(const nh_net *net) { return net->P; }
nh_act nh_net_act(const nh_net *net) { return net->act; }
nh_act nh_net_act_at(const nh_net *net, size_t i) { return i + 1 < net->L ? net->acts[i] : net->act; }
double nh_net_act_param_at(const nh_net *net, size_t i) {
    return i + 1 < net->L ? net->actp[i] : nh_act_default_param(net->act);
}
int nh_net_has_bias(const nh_net *net, size_t l) { return l < net->L && net->bias[l]; }

int nh_net_is_plain(const nh_net *net) {
    const double def = nh_act_default_param(net->act);
    for (size_t i = 0; i + 1 < net->L; i++)
        if (net->acts[i] != net->act || !(isnan(def) ? isnan(net->actp[i]) : net->actp[i] == def)) return 0;
    for (size_t l = 0; l < net->L; l++)
        if (!net->bias[l]) return 0;
    return 1;
}
double nh_net_beta(const nh_net *net) { return net->beta; }
nh_param nh_net_param(const nh_net *net) { return net->param; }
size_t nh_net_offset_W(const nh_net *net, size_t l) { return l < net->L ? net->offW[l] : net->P; }
size_t nh_net_offset_b(const nh_net *net, size_t l) { return l < net->L ? net->offb[l] : net->P; }
double *nh_net_params(nh_net *net) { return net->theta; }
const double *nh_net_params_const(const nh_net *net) { return net->theta; }

/* ---------------------------------------------------------------- tensors */

size_t nh_net_ntensors(const nh_net *net) { return net->ntens; }

nh_status nh_net_tensor(const nh_net *net, size_t t, const char **name, size_t *offset, size_t *len) {
    if (!net) NH_FAIL(NH_EINVAL, "NULL argument");
    if (t >= net->ntens) NH_FAIL(NH_EINVAL, "tensor %zu out of range (the network has %zu)", t, net->ntens);
    /* Tensor t is W_l or b_l: walk the layers (L is small). */
    size_t k = 0;
    for (size_t l = 0; l < net->L; l++) {
        const int isb = net->bias[l] && k + 1 == t;
        if (k == t || isb) {
            if (name) *name = net->tname[t];
            if (offset) *offset = isb ? net->offb[l] : net->offW[l];
            if (len) *len = isb ? net->w[l + 1] : net->w[l] * net->w[l + 1];
            return NH_OK;
        }
        k += net->bias[l] ? 2 : 1;
    }
    NH_FAIL(NH_EINVAL, "tensor %zu out of range", t); /* unreachable: t < ntens */
}

nh_status nh_net_find_tensor(const nh_net *net, const char *name, size_t *t) {
    if (!net || !name || !t) NH_FAIL(NH_EINVAL, "NULL argument");
    for (size_t i = 0; i < net->ntens; i++)
        if (strcmp(net->tname[i], name) == 0) { *t = i; return NH_OK; }
    char list[512];
    size_t k = 0;
    for (size_t i = 0; i < net->ntens && k + 32 < sizeof list; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", net->tname[i]);
    if (k + 32 >= sizeof list) snprintf(list + k, sizeof list - k, ", ...");
    NH_FAIL(NH_EINVAL, "no tensor named '%.64s'; this network's tensors are %s", name, list);
}

nh_status nh_net_set_params(nh_net *net, const double *theta) {
    if (!net || !theta) NH_FAIL(NH_EINVAL, "NULL argument");
    size_t first = 0, bad = nh__count_nonfinite(theta, net->P, &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "theta has %zu non-finite entries (first at index %zu)", bad, first);
    memcpy(net->theta, theta, net->P * sizeof *theta);
    return NH_OK;
}

double nh__net_wscale(const nh_net *net, size_t l) {
    return net->param == NH_PARAM_STANDARD ? 1.0 : 1.0 / sqrt((double)net->w[l]);
}

double nh__net_wscale2(const nh_net *net, size_t l) {
    return net->param == NH_PARAM_STANDARD ? 1.0 : 1.0 / (double)net->w[l];
}

double nh__net_bscale(const nh_net *net, size_t l) {
    if (!net->bias[l]) return 0.0;
    return net->param == NH_PARAM_STANDARD ? 1.0 : net->beta;
}

double nh__net_out_scale(const nh_net *net) {
    return net->param == NH_PARAM_MF ? 1.0 / sqrt((double)net->w[net->L - 1]) : 1.0;
}

void nh__net_act_eval(const nh_net *net, size_t l, size_t n, const double *x, double *d0, double *d1, double *d2,
                      double *d3) {
    nh_act_eval_p(net->acts[l], net->actp[l], n, x, d0, d1, d2, d3);
}

void nh__layer_affine(const nh_net *net, size_t l, size_t n, const double *A, double *Z) {
    const size_t ni = net->w[l], no = net->w[l + 1];
    const double *W = net->theta + net->offW[l];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni,
                nh__net_wscale(net, l), A, (int)ni, W, (int)ni, 0.0, Z, (int)no);
    if (!net->bias[l]) return;
    const double bs = nh__net_bscale(net, l), *b = net->theta + net->offb[l];
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < no; k++) Z[i * no + k] += bs * b[k];
}

nh_status nh_net_forward(const nh_net *net, const double *X, size_t n, double *Y) {
    if (!net || !X || !Y) NH_FAIL(NH_EINVAL, "NULL argument");
    if (n == 0) NH_FAIL(NH_EINVAL, "empty batch");
    size_t first = 0, bad = nh__count_nonfinite(X, n * net->w[0], &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "X has %zu non-finite entries (first at index %zu)", bad, first);
    size_t wmax = 0;
    for (size_t l = 0; l <= net->L; l++) if (net->w[l] > wmax) wmax = net->w[l];
    int ok = 1;
    size_t bytes = nh__mul(nh__mul(n, wmax, &ok), 2 * sizeof(double), &ok);
    NH_TRY(nh__check_bytes(ok, bytes, __func__, "the forward pass"));
    if (!nh__fits_int(n) || !nh__fits_int(n * wmax)) NH_FAIL(NH_ETOOLARGE, "batch too large for BLAS");
    double *a = nh__malloc(n * wmax * sizeof *a), *z = nh__malloc(n * wmax * sizeof *z);
    if (!a || !z) { free(a); free(z); NH_FAIL(NH_ENOMEM, "out of memory"); }
    const double *in = X;
    for (size_t l = 0; l < net->L; l++) {
        nh__layer_affine(net, l, n, in, z);
        size_t m = n * net->w[l + 1];
        if (l + 1 < net->L) { nh__net_act_eval(net, l, m, z, a, NULL, NULL, NULL); in = a; }
    }
    const double c = nh__net_out_scale(net);
    for (size_t i = 0; i < n * net->w[net->L]; i++) Y[i] = c * z[i];
    free(a);
    free(z);
    return NH_OK;
}
