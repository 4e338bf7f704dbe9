/* loss.c -- C(Y) = (1/N) sum_i c_i(Y_i), its gradient and Hessian blocks.
 * Each loss is declared once, in nh__loss_table below (name, target kind,
 * target check, per-sample value/gradient/Hessian); nh_loss_from_name,
 * nh_loss_name, the messages, the CLI's --loss help and the Python list read
 * it.  To add a loss: an enum value before NH_LOSS_COUNT in ntkhess/core.h,
 * its two functions and one row here, and a case in tests/test_net.c's
 * finite-difference loop over the losses. */
#include "core/internal.h"

#include <math.h>
#include <stdio.h> /* snprintf only */
#include <string.h>

/* log(1 + e^x), stable. */
static inline double nh__log1pexp(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static inline double nh__logistic(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* ------------------------------------------------------- per-loss functions */

/* Target checks beyond finiteness (T has nh_loss_target_count entries). */
static nh_status nh__mse_check(const double *T, size_t n, size_t nout) {
    (void)T; (void)n; (void)nout;
    return NH_OK;
}
static nh_status nh__bce_check(const double *T, size_t n, size_t nout) {
    for (size_t i = 0; i < n * nout; i++)
        if (T[i] != 1.0 && T[i] != -1.0)
            NH_FAIL(NH_EINVAL, "bce labels must be -1 or +1; entry %zu is %g", i, T[i]);
    return NH_OK;
}
static nh_status nh__ce_check(const double *T, size_t n, size_t nout) {
    if (nout < 2) NH_FAIL(NH_EINVAL, "ce needs at least 2 outputs (classes), the network has %zu", nout);
    for (size_t i = 0; i < n; i++)
        if (T[i] != floor(T[i]) || T[i] < 0 || T[i] >= (double)nout)
            NH_FAIL(NH_EINVAL, "ce labels must be integers in [0, %zu); entry %zu is %g", nout, i, T[i]);
    return NH_OK;
}

/* One sample: *total += c_i(y) (term by term), g = dc_i/dy / N and
 * h = d2c_i/dy2 / N (nout x nout, zeroed by the caller); g, h may be NULL.
 * t: the sample's targets (nout values, or one class id). */
static void nh__mse_sample(const double *y, const double *t, size_t nout, double invn, double *total,
                           double *g, double *h) {
    for (size_t k = 0; k < nout; k++) {
        double r = y[k] - t[k];
        *total += 0.5 * r * r;
        if (g) g[k] = r * invn;
        if (h) h[k * nout + k] = invn;
    }
}
static void nh__bce_sample(const double *y, const double *t, size_t nout, double invn, double *total,
                           double *g, double *h) {
    for (size_t k = 0; k < nout; k++) {
        double s = t[k], m = s * y[k];
        *total += nh__log1pexp(-m);
        /* d/dy log(1+e^{-s y}) = -s * logistic(-s y) */
        if (g) g[k] = -s * nh__logistic(-m) * invn;
        /* logistic(y)(1-logistic(y)) = 1/(2 + e^y + e^-y) */
        if (h) { double p = nh__logistic(y[k]); h[k * nout + k] = p * (1.0 - p) * invn; }
    }
}
static void nh__ce_sample(const double *y, const double *t, size_t nout, double invn, double *total,
                          double *g, double *h) {
    size_t lab = (size_t)t[0];
    double mx = y[0];
    for (size_t k = 1; k < nout; k++) if (y[k] > mx) mx = y[k];
    double z = 0.0;
    for (size_t k = 0; k < nout; k++) z += exp(y[k] - mx);
    *total += mx + log(z) - y[lab];
    for (size_t k = 0; k < nout; k++) {
        double pk = exp(y[k] - mx) / z;
        if (g) g[k] = (pk - (k == lab ? 1.0 : 0.0)) * invn;
        if (h)
            for (size_t m = 0; m < nout; m++) {
                double pm = exp(y[m] - mx) / z;
                h[k * nout + m] = ((k == m ? pk : 0.0) - pk * pm) * invn;
            }
    }
}

/* ------------------------------------------------------------------ the table */

typedef struct nh__loss_row {
    const char *name;
    const char *targets; /* what the targets are, for help and messages       */
    int class_ids;       /* 1: one class id per sample; 0: nout values each   */
    nh_status (*check)(const double *T, size_t n, size_t nout);
    void (*sample)(const double *y, const double *t, size_t nout, double invn, double *total,
                   double *g, double *h);
} nh__loss_row;

static const nh__loss_row nh__loss_table[] = {
    [NH_LOSS_MSE] = {"mse", "real targets", 0, nh__mse_check, nh__mse_sample},
    [NH_LOSS_BCE] = {"bce", "-1/+1 labels", 0, nh__bce_check, nh__bce_sample},
    [NH_LOSS_CE] = {"ce", "class ids", 1, nh__ce_check, nh__ce_sample},
};
_Static_assert(sizeof nh__loss_table / sizeof nh__loss_table[0] == NH_LOSS_COUNT,
               "nh__loss_table needs one row per nh_loss (NH_LOSS_COUNT)");

static const nh__loss_row *nh__loss_row_of(nh_loss l) {
    return (l >= 0 && l < NH_LOSS_COUNT && nh__loss_table[l].name) ? &nh__loss_table[l] : NULL;
}

size_t nh_loss_count(void) { return NH_LOSS_COUNT; }

const char *nh_loss_name(nh_loss l) {
    const nh__loss_row *r = nh__loss_row_of(l);
    return r ? r->name : "unknown";
}

const char *nh_loss_targets(nh_loss l) {
    const nh__loss_row *r = nh__loss_row_of(l);
    return r ? r->targets : "unknown";
}

nh_status nh_loss_from_name(const char *name, nh_loss *out) {
    if (!name || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    const char *names[NH_LOSS_COUNT];
    for (int l = 0; l < NH_LOSS_COUNT; l++) {
        names[l] = nh_loss_name((nh_loss)l);
        if (strcmp(name, names[l]) == 0) { *out = (nh_loss)l; return NH_OK; }
    }
    char list[128];
    NH_FAIL(NH_EINVAL, "unknown loss '%.64s' (expected %s)", name,
            nh__join_names(names, NH_LOSS_COUNT, list, sizeof list));
}

size_t nh_loss_target_count(nh_loss loss, size_t n, size_t nout) {
    const nh__loss_row *r = nh__loss_row_of(loss);
    return r && r->class_ids ? n : n * nout;
}

nh_status nh_loss_check_targets(nh_loss loss, const double *T, size_t n, size_t nout) {
    if (!T || n == 0 || nout == 0) NH_FAIL(NH_EINVAL, "empty targets");
    const nh__loss_row *r = nh__loss_row_of(loss);
    if (!r) NH_FAIL(NH_EINVAL, "unknown loss %d", (int)loss);
    size_t cnt = nh_loss_target_count(loss, n, nout), first = 0;
    size_t bad = nh__count_nonfinite(T, cnt, &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "targets have %zu non-finite entries (first at index %zu)", bad, first);
    return r->check(T, n, nout);
}

nh_status nh_loss_eval(nh_loss loss, const double *Y, const double *T, size_t n,
                       size_t nout, double *value, double *grad, double *hc) {
    if (!Y || !T || n == 0 || nout == 0) NH_FAIL(NH_EINVAL, "empty input");
    const nh__loss_row *r = nh__loss_row_of(loss);
    if (!r) NH_FAIL(NH_EINVAL, "unknown loss %d", (int)loss);
    const double invn = 1.0 / (double)n;
    const size_t tstride = r->class_ids ? 1 : nout;
    double total = 0.0;
    if (hc) memset(hc, 0, n * nout * nout * sizeof *hc);
    for (size_t i = 0; i < n; i++)
        r->sample(Y + i * nout, T + i * tstride, nout, invn, &total, grad ? grad + i * nout : NULL,
                  hc ? hc + i * nout * nout : NULL);
    if (value) *value = total * invn;
    return NH_OK;
}
