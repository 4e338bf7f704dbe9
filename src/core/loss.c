/* loss.c -- C(Y) = (1/N) sum_i c_i(Y_i), its gradient and Hessian blocks. */
#include "core/internal.h"

#include <math.h>
#include <string.h>

static const char *const nh__loss_names[NH_LOSS_COUNT] = {"mse", "bce", "ce"};
static const char *const nh__loss_targets[NH_LOSS_COUNT] = {"real targets", "-1/+1 labels", "class ids"};

nh_status nh_loss_from_name(const char *name, nh_loss *out) {
    if (!name || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    for (int l = 0; l < NH_LOSS_COUNT; l++)
        if (strcmp(name, nh__loss_names[l]) == 0) { *out = (nh_loss)l; return NH_OK; }
    char list[64];
    NH_FAIL(NH_EINVAL, "unknown loss '%.64s' (expected %s)", name,
            nh__join_names(nh__loss_names, NH_LOSS_COUNT, list, sizeof list));
}

const char *nh_loss_targets(nh_loss l) {
    return (l >= 0 && l < NH_LOSS_COUNT) ? nh__loss_targets[l] : "unknown";
}

size_t nh_loss_count(void) { return NH_LOSS_COUNT; }

size_t nh_loss_target_count(nh_loss loss, size_t n, size_t nout) {
    return loss == NH_LOSS_CE ? n : n * nout;
}

const char *nh_loss_name(nh_loss l) {
    return (l >= 0 && l < NH_LOSS_COUNT) ? nh__loss_names[l] : "unknown";
}

nh_status nh_loss_check_targets(nh_loss loss, const double *T, size_t n, size_t nout) {
    if (!T || n == 0 || nout == 0) NH_FAIL(NH_EINVAL, "empty targets");
    size_t cnt = nh_loss_target_count(loss, n, nout), first = 0;
    size_t bad = nh__count_nonfinite(T, cnt, &first);
    if (bad) NH_FAIL(NH_ENONFINITE, "targets have %zu non-finite entries (first at index %zu)", bad, first);
    if (loss == NH_LOSS_BCE) {
        for (size_t i = 0; i < cnt; i++)
            if (T[i] != 1.0 && T[i] != -1.0)
                NH_FAIL(NH_EINVAL, "bce labels must be -1 or +1; entry %zu is %g", i, T[i]);
    } else if (loss == NH_LOSS_CE) {
        if (nout < 2) NH_FAIL(NH_EINVAL, "ce needs at least 2 outputs (classes), the network has %zu", nout);
        for (size_t i = 0; i < n; i++)
            if (T[i] != floor(T[i]) || T[i] < 0 || T[i] >= (double)nout)
                NH_FAIL(NH_EINVAL, "ce labels must be integers in [0, %zu); entry %zu is %g", nout, i, T[i]);
    } else if (loss != NH_LOSS_MSE) {
        NH_FAIL(NH_EINVAL, "unknown loss %d", (int)loss);
    }
    return NH_OK;
}

/* log(1 + e^x), stable. */
static inline double nh__log1pexp(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static inline double nh__logistic(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

nh_status nh_loss_eval(nh_loss loss, const double *Y, const double *T, size_t n,
                       size_t nout, double *value, double *grad, double *hc) {
    if (!Y || !T || n == 0 || nout == 0) NH_FAIL(NH_EINVAL, "empty input");
    const double invn = 1.0 / (double)n;
    double total = 0.0;
    if (hc) memset(hc, 0, n * nout * nout * sizeof *hc);
    for (size_t i = 0; i < n; i++) {
        const double *y = Y + i * nout;
        double *g = grad ? grad + i * nout : NULL;
        double *h = hc ? hc + i * nout * nout : NULL;
        if (loss == NH_LOSS_MSE) {
            for (size_t k = 0; k < nout; k++) {
                double r = y[k] - T[i * nout + k];
                total += 0.5 * r * r;
                if (g) g[k] = r * invn;
                if (h) h[k * nout + k] = invn;
            }
        } else if (loss == NH_LOSS_BCE) {
            for (size_t k = 0; k < nout; k++) {
                double s = T[i * nout + k], m = s * y[k];
                total += nh__log1pexp(-m);
                /* d/dy log(1+e^{-s y}) = -s * logistic(-s y) */
                if (g) g[k] = -s * nh__logistic(-m) * invn;
                /* logistic(y)(1-logistic(y)) = 1/(2 + e^y + e^-y) */
                if (h) { double p = nh__logistic(y[k]); h[k * nout + k] = p * (1.0 - p) * invn; }
            }
        } else { /* CE */
            size_t lab = (size_t)T[i];
            double mx = y[0];
            for (size_t k = 1; k < nout; k++) if (y[k] > mx) mx = y[k];
            double z = 0.0;
            for (size_t k = 0; k < nout; k++) z += exp(y[k] - mx);
            total += mx + log(z) - y[lab];
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
    }
    if (value) *value = total * invn;
    return NH_OK;
}
