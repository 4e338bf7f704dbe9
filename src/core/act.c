/* act.c -- nonlinearities and their first three derivatives. */
#include "core/internal.h"

#include <math.h>
#include <stdio.h> /* snprintf only */
#include <stdlib.h>
#include <string.h>

static const char *const nh__act_names[NH_ACT_COUNT] = {
    "softplus", "nsoftplus", "tanh", "arctan", "erf",
    "sigmoid",  "gelu",      "sin",  "relu",   "identity", "silu", "leaky_relu"};

size_t nh_act_count(void) { return NH_ACT_COUNT; }

const char *nh__join_names(const char *const *names, size_t n, char *buf, size_t len) {
    size_t k = 0;
    if (!len) return buf;
    buf[0] = 0;
    for (size_t i = 0; i < n && k < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + k, len - k, "%s%s", sep, names[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
    return buf;
}

nh_status nh_act_from_name(const char *name, nh_act *out) {
    if (!name || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    for (int a = 0; a < NH_ACT_COUNT; a++)
        if (strcmp(name, nh__act_names[a]) == 0) { *out = (nh_act)a; return NH_OK; }
    char list[256];
    NH_FAIL(NH_EINVAL, "unknown activation '%.64s' (expected %s)", name,
            nh__join_names(nh__act_names, NH_ACT_COUNT, list, sizeof list));
}

const char *nh_act_name(nh_act a) {
    return (a >= 0 && a < NH_ACT_COUNT) ? nh__act_names[a] : "unknown";
}

/* logistic(x) without overflow for either sign. */
static inline double nh__logistic(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
/* log(1+e^x) without overflow: x + log1p(e^-x) for x > 0. */
static inline double nh__softplus(double x) {
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

#define NH_INV_SQRT_2PI 0.39894228040143267794
#define NH_2_SQRT_PI 1.12837916709551257390

double nh_act_default_param(nh_act a) {
    if (a == NH_ACT_SOFTPLUS) return 1.0;
    if (a == NH_ACT_LEAKY_RELU) return 0.01;
    return NAN;
}

nh_status nh_act_parse(const char *spec, nh_act *out, double *param) {
    if (!spec || !out || !param) NH_FAIL(NH_EINVAL, "NULL argument");
    char name[32];
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len >= sizeof name) NH_FAIL(NH_EINVAL, "unknown activation '%.40s'", spec);
    memcpy(name, spec, len); name[len] = 0;
    nh_act a;
    NH_TRY(nh_act_from_name(name, &a));
    double p = nh_act_default_param(a);
    if (colon) {
        if (isnan(p)) NH_FAIL(NH_EINVAL, "activation '%s' takes no parameter ('%s')", name, spec);
        char *end = NULL;
        p = strtod(colon + 1, &end);
        if (end == colon + 1 || *end || !isfinite(p))
            NH_FAIL(NH_EINVAL, "activation '%s': parameter '%s' is not a finite number", name, colon + 1);
        if (a == NH_ACT_SOFTPLUS && !(p > 0))
            NH_FAIL(NH_EINVAL, "softplus beta must be > 0 (got %g)", p);
    }
    *out = a; *param = p;
    return NH_OK;
}

const char *nh_act_format(nh_act a, double param, char *buf, size_t len) {
    if (!buf || !len) return "";
    double d = nh_act_default_param(a);
    if (isnan(d) || param == d) snprintf(buf, len, "%s", nh_act_name(a));
    else snprintf(buf, len, "%s:%.17g", nh_act_name(a), param);
    return buf;
}

void nh_act_eval(nh_act a, size_t n, const double *x, double *d0, double *d1,
                 double *d2, double *d3) {
    nh_act_eval_p(a, nh_act_default_param(a), n, x, d0, d1, d2, d3);
}

void nh_act_eval_p(nh_act a, double param, size_t n, const double *x, double *d0, double *d1,
                   double *d2, double *d3) {
    /* softplus with beta != 1: sigma(x) = softplus(beta x)/beta, so
     * sigma^(k)(x) = beta^(k-1) softplus^(k)(beta x). */
    const double bsp = (a == NH_ACT_SOFTPLUS && isfinite(param) && param > 0) ? param : 1.0;
    for (size_t i = 0; i < n; i++) {
        const double z = x[i];
        double v0, v1, v2, v3;
        switch (a) {
        case NH_ACT_SOFTPLUS:
            if (bsp != 1.0) {
                double s = nh__logistic(bsp * z), q = s * (1.0 - s);
                v0 = nh__softplus(bsp * z) / bsp; v1 = s; v2 = bsp * q;
                v3 = bsp * bsp * q * (1.0 - 2.0 * s);
                break;
            }
            /* beta = 1 is the plain softplus, bit for bit */
            __attribute__((fallthrough));
        case NH_ACT_NSOFTPLUS: {
            double s = nh__logistic(z), q = s * (1.0 - s);
            v0 = nh__softplus(z); v1 = s; v2 = q; v3 = q * (1.0 - 2.0 * s);
            if (a == NH_ACT_NSOFTPLUS) {
                const double r = 1.0 / NH_NSOFTPLUS_SD;
                v0 = (v0 - NH_NSOFTPLUS_MU) * r; v1 *= r; v2 *= r; v3 *= r;
            }
            break;
        }
        case NH_ACT_TANH: {
            double t = tanh(z), q = 1.0 - t * t;
            v0 = t; v1 = q; v2 = -2.0 * t * q; v3 = q * (6.0 * t * t - 2.0);
            break;
        }
        case NH_ACT_ARCTAN: {
            double q = 1.0 / (1.0 + z * z);
            v0 = atan(z); v1 = q; v2 = -2.0 * z * q * q; v3 = (6.0 * z * z - 2.0) * q * q * q;
            break;
        }
        case NH_ACT_ERF: {
            double g = NH_2_SQRT_PI * exp(-z * z);
            v0 = erf(z); v1 = g; v2 = -2.0 * z * g; v3 = (4.0 * z * z - 2.0) * g;
            break;
        }
        case NH_ACT_SIGMOID: {
            double s = nh__logistic(z), q = s * (1.0 - s);
            v0 = s; v1 = q; v2 = q * (1.0 - 2.0 * s); v3 = q * (1.0 - 6.0 * s + 6.0 * s * s);
            break;
        }
        case NH_ACT_GELU: {
            double phi = NH_INV_SQRT_2PI * exp(-0.5 * z * z), Phi = 0.5 * erfc(-z / M_SQRT2);
            v0 = z * Phi; v1 = Phi + z * phi; v2 = phi * (2.0 - z * z); v3 = phi * (z * z * z - 4.0 * z);
            break;
        }
        case NH_ACT_SIN:
            v0 = sin(z); v1 = cos(z); v2 = -v0; v3 = -v1;
            break;
        case NH_ACT_RELU:
            v0 = z > 0 ? z : 0.0; v1 = z > 0 ? 1.0 : 0.0; v2 = 0.0; v3 = 0.0;
            break;
        case NH_ACT_SILU: {
            /* sigma = x s: sigma^(k) = k s^(k-1) + x s^(k). */
            double s = nh__logistic(z), q = s * (1.0 - s), q2 = q * (1.0 - 2.0 * s),
                   q3 = q * (1.0 - 6.0 * s + 6.0 * s * s);
            v0 = z * s; v1 = s + z * q; v2 = 2.0 * q + z * q2; v3 = 3.0 * q2 + z * q3;
            break;
        }
        case NH_ACT_LEAKY_RELU: {
            double sl = isfinite(param) ? param : 0.01;
            v0 = z > 0 ? z : sl * z; v1 = z > 0 ? 1.0 : sl; v2 = 0.0; v3 = 0.0;
            break;
        }
        case NH_ACT_IDENTITY:
        default:
            v0 = z; v1 = 1.0; v2 = 0.0; v3 = 0.0;
            break;
        }
        if (d0) d0[i] = v0;
        if (d1) d1[i] = v1;
        if (d2) d2[i] = v2;
        if (d3) d3[i] = v3;
    }
}
