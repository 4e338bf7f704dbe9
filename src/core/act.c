/* act.c -- the activation table: each activation is declared once, in
 * nh__act_table below (name, parameter, smoothness, quadrature hint and its
 * sigma, sigma', sigma'', sigma''' function).  The enum in ntkhess/core.h
 * gives the row indices; the parser, nh_act_name, the error messages, the
 * CLI's help and option lists, the Python lists, nh_gauss_default_nq and the
 * kernels' dispatch all read this table.  To add an activation: an enum
 * value before NH_ACT_COUNT, a point function and one row here (plus closed
 * Gaussian forms in src/theory/gauss.c if it has them); tests/test_net.c and
 * tests/test_kernels.c loop over the table. */
#include "core/internal.h"
#include "core/act_table.h"

#include <math.h>
#include <stdio.h> /* snprintf only */
#include <stdlib.h>
#include <string.h>

#define NH_INV_SQRT_2PI 0.39894228040143267794
#define NH_2_SQRT_PI 1.12837916709551257390

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

/* Both of the above from one exp: each evaluates exp at -|x| (exp(-x) for
 * x >= 0, exp(x) for x < 0), so these are their values bit for bit. */
static inline void nh__logistic_softplus(double x, double *s, double *sp) {
    const double e = exp(-fabs(x));
    *s = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    *sp = x > 0 ? x + log1p(e) : log1p(e);
}

/* ---------------------------------------------- point functions: v[k] = sigma^(k)(z) */

static inline void nh__pt_softplus(double beta, double z, double v[4]) {
    if (isfinite(beta) && beta > 0 && beta != 1.0) {
        /* sigma(x) = softplus(beta x)/beta: sigma^(k)(x) = beta^(k-1) softplus^(k)(beta x). */
        double s, sp;
        nh__logistic_softplus(beta * z, &s, &sp);
        const double q = s * (1.0 - s);
        v[0] = sp / beta; v[1] = s; v[2] = beta * q;
        v[3] = beta * beta * q * (1.0 - 2.0 * s);
        return;
    }
    /* beta = 1 is the plain softplus, bit for bit */
    double s, sp;
    nh__logistic_softplus(z, &s, &sp);
    const double q = s * (1.0 - s);
    v[0] = sp; v[1] = s; v[2] = q; v[3] = q * (1.0 - 2.0 * s);
}
static inline void nh__pt_nsoftplus(double p, double z, double v[4]) {
    (void)p;
    const double r = 1.0 / NH_NSOFTPLUS_SD;
    double s, sp;
    nh__logistic_softplus(z, &s, &sp);
    const double q = s * (1.0 - s);
    v[0] = (sp - NH_NSOFTPLUS_MU) * r; v[1] = s * r; v[2] = q * r;
    v[3] = q * (1.0 - 2.0 * s) * r;
}
static inline void nh__pt_tanh(double p, double z, double v[4]) {
    (void)p;
    double t = tanh(z), q = 1.0 - t * t;
    v[0] = t; v[1] = q; v[2] = -2.0 * t * q; v[3] = q * (6.0 * t * t - 2.0);
}
static inline void nh__pt_arctan(double p, double z, double v[4]) {
    (void)p;
    double q = 1.0 / (1.0 + z * z);
    v[0] = atan(z); v[1] = q; v[2] = -2.0 * z * q * q; v[3] = (6.0 * z * z - 2.0) * q * q * q;
}
static inline void nh__pt_erf(double p, double z, double v[4]) {
    (void)p;
    double g = NH_2_SQRT_PI * exp(-z * z);
    v[0] = erf(z); v[1] = g; v[2] = -2.0 * z * g; v[3] = (4.0 * z * z - 2.0) * g;
}
static inline void nh__pt_sigmoid(double p, double z, double v[4]) {
    (void)p;
    double s = nh__logistic(z), q = s * (1.0 - s);
    v[0] = s; v[1] = q; v[2] = q * (1.0 - 2.0 * s); v[3] = q * (1.0 - 6.0 * s + 6.0 * s * s);
}
static inline void nh__pt_gelu(double p, double z, double v[4]) {
    (void)p;
    double phi = NH_INV_SQRT_2PI * exp(-0.5 * z * z), Phi = 0.5 * erfc(-z / M_SQRT2);
    v[0] = z * Phi; v[1] = Phi + z * phi; v[2] = phi * (2.0 - z * z); v[3] = phi * (z * z * z - 4.0 * z);
}
static inline void nh__pt_sin(double p, double z, double v[4]) {
    (void)p;
    v[0] = sin(z); v[1] = cos(z); v[2] = -v[0]; v[3] = -v[1];
}
static inline void nh__pt_relu(double p, double z, double v[4]) {
    (void)p;
    v[0] = z > 0 ? z : 0.0; v[1] = z > 0 ? 1.0 : 0.0; v[2] = 0.0; v[3] = 0.0;
}
static inline void nh__pt_identity(double p, double z, double v[4]) {
    (void)p;
    v[0] = z; v[1] = 1.0; v[2] = 0.0; v[3] = 0.0;
}
static inline void nh__pt_silu(double p, double z, double v[4]) {
    (void)p;
    /* sigma = x s: sigma^(k) = k s^(k-1) + x s^(k). */
    double s = nh__logistic(z), q = s * (1.0 - s), q2 = q * (1.0 - 2.0 * s),
           q3 = q * (1.0 - 6.0 * s + 6.0 * s * s);
    v[0] = z * s; v[1] = s + z * q; v[2] = 2.0 * q + z * q2; v[3] = 3.0 * q2 + z * q3;
}
static inline void nh__pt_leaky_relu(double slope, double z, double v[4]) {
    double sl = isfinite(slope) ? slope : 0.01;
    v[0] = z > 0 ? z : sl * z; v[1] = z > 0 ? 1.0 : sl; v[2] = 0.0; v[3] = 0.0;
}

/* The array version of a point function (inlined into its own loop, so the
 * hot loops of the engine have no per-element dispatch). */
#define NH__ACT_ARRAY(pt)                                                                      \
    static void pt##_n(double p, size_t n, const double *x, double *d0, double *d1, double *d2, \
                       double *d3) {                                                           \
        for (size_t i = 0; i < n; i++) {                                                       \
            double v[4];                                                                       \
            pt(p, x[i], v);                                                                    \
            if (d0) d0[i] = v[0];                                                              \
            if (d1) d1[i] = v[1];                                                              \
            if (d2) d2[i] = v[2];                                                              \
            if (d3) d3[i] = v[3];                                                              \
        }                                                                                      \
    }
NH__ACT_ARRAY(nh__pt_softplus)
NH__ACT_ARRAY(nh__pt_nsoftplus)
NH__ACT_ARRAY(nh__pt_tanh)
NH__ACT_ARRAY(nh__pt_arctan)
NH__ACT_ARRAY(nh__pt_erf)
NH__ACT_ARRAY(nh__pt_sigmoid)
NH__ACT_ARRAY(nh__pt_gelu)
NH__ACT_ARRAY(nh__pt_sin)
NH__ACT_ARRAY(nh__pt_relu)
NH__ACT_ARRAY(nh__pt_identity)
NH__ACT_ARRAY(nh__pt_silu)
NH__ACT_ARRAY(nh__pt_leaky_relu)

/* float32 paths (nh__act_row.eval_f) for the single-precision engine, where
 * libm's double functions would dominate a float32 forward pass (softplus:
 * 34 ns per entry in double).  Softplus: one expf for softplus and the
 * logistic, log1p(e) by Goldberg's log(u) e / (u - 1), u = fl(1 + e) (a few
 * ulps; glibc's logf is several times faster than its log1pf); with beta b,
 * sigma = softplus(b x)/b, sigma' = s, sigma'' = b s (1 - s).  nsoftplus is
 * (softplus - mu)/sd.  Tested against the double rows (tests/test_f32.c). */
static void nh__softplus_f(float b, float mu, float r, size_t n, const float *x, float *d0, float *d1, float *d2) {
    for (size_t i = 0; i < n; i++) {
        const float z = b * x[i], e = expf(-fabsf(z)), u = 1.0f + e, r1 = 1.0f / u;
        const float s = z >= 0 ? r1 : e * r1, lp = u == 1.0f ? e : logf(u) * (e / (u - 1.0f));
        d0[i] = (((z > 0 ? z : 0.0f) + lp) / b - mu) * r;
        d1[i] = s * r;
        d2[i] = b * s * (1.0f - s) * r;
    }
}
static void nh__f_softplus(double beta, size_t n, const float *x, float *d0, float *d1, float *d2) {
    nh__softplus_f(isfinite(beta) && beta > 0 ? (float)beta : 1.0f, 0.0f, 1.0f, n, x, d0, d1, d2);
}
static void nh__f_nsoftplus(double p, size_t n, const float *x, float *d0, float *d1, float *d2) {
    (void)p;
    nh__softplus_f(1.0f, (float)NH_NSOFTPLUS_MU, (float)(1.0 / NH_NSOFTPLUS_SD), n, x, d0, d1, d2);
}
static void nh__f_tanh(double p, size_t n, const float *x, float *d0, float *d1, float *d2) {
    (void)p;
    for (size_t i = 0; i < n; i++) {
        float t = tanhf(x[i]), q = 1.0f - t * t;
        d0[i] = t; d1[i] = q; d2[i] = -2.0f * t * q;
    }
}

/* ------------------------------------------------------------------ the table */

/* Nodes per unit variance (nq_per_var) are measured: the smallest nq whose
 * moments agree with nq = 1600 to ~1e-13 at kmax = 0.3, 1.3, 2.6, 5.2
 * (tests/test_kernels.c prints them with NH_TEST_VERBOSE=1).  The error
 * decays like exp(-c sqrt(nq / kmax)), c ~ twice the half-width of the strip
 * of analyticity (softplus, sigmoid, silu: poles at i pi; tanh i pi/2;
 * arctan i).  Kinks converge only algebraically: a fixed 256. */
#define NH__NOPARAM NULL, NAN, 0
/* Every field written out (eval_f NULL: no float32 path), so clang's
 * -Wmissing-field-initializers stays quiet. */
static const nh__act_row nh__act_table[] = {
    [NH_ACT_SOFTPLUS] = {"softplus", "smooth ReLU (softplus)", "beta", 1.0, 1, 1, 45.0, 0, nh__pt_softplus_n, nh__f_softplus},
    [NH_ACT_NSOFTPLUS] = {"nsoftplus", "normalized smooth ReLU", NH__NOPARAM, 1, 45.0, 0, nh__pt_nsoftplus_n, nh__f_nsoftplus},
    [NH_ACT_TANH] = {"tanh", NULL, NH__NOPARAM, 1, 220.0, 0, nh__pt_tanh_n, nh__f_tanh},
    [NH_ACT_ARCTAN] = {"arctan", NULL, NH__NOPARAM, 1, 400.0, 0, nh__pt_arctan_n, NULL},
    [NH_ACT_ERF] = {"erf", NULL, NH__NOPARAM, 1, 100.0, 0, nh__pt_erf_n, NULL},
    [NH_ACT_SIGMOID] = {"sigmoid", NULL, NH__NOPARAM, 1, 48.0, 0, nh__pt_sigmoid_n, NULL},
    [NH_ACT_GELU] = {"gelu", NULL, NH__NOPARAM, 1, 75.0, 0, nh__pt_gelu_n, NULL},
    [NH_ACT_SIN] = {"sin", NULL, NH__NOPARAM, 1, 10.0, 0, nh__pt_sin_n, NULL},
    [NH_ACT_RELU] = {"relu", NULL, NH__NOPARAM, 0, 0.0, 256, nh__pt_relu_n, NULL},
    [NH_ACT_IDENTITY] = {"identity", NULL, NH__NOPARAM, 1, 0.0, 4, nh__pt_identity_n, NULL}, /* exact for nq >= 2 */
    [NH_ACT_SILU] = {"silu", NULL, NH__NOPARAM, 1, 60.0, 0, nh__pt_silu_n, NULL}, /* 48: 5.8e-12 */
    [NH_ACT_LEAKY_RELU] = {"leaky_relu", NULL, "slope", 0.01, 0, 0, 0.0, 256, nh__pt_leaky_relu_n, NULL},
};
_Static_assert(sizeof nh__act_table / sizeof nh__act_table[0] == NH_ACT_COUNT,
               "nh__act_table needs one row per nh_act (NH_ACT_COUNT)");

const nh__act_row *nh__act_row_of(nh_act a) {
    return (a >= 0 && a < NH_ACT_COUNT && nh__act_table[a].name) ? &nh__act_table[a] : NULL;
}

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

const char *nh_act_name(nh_act a) {
    const nh__act_row *r = nh__act_row_of(a);
    return r ? r->name : "unknown";
}

const char *nh_act_title(nh_act a) {
    const nh__act_row *r = nh__act_row_of(a);
    return r ? (r->title ? r->title : r->name) : "unknown";
}

nh_status nh_act_from_name(const char *name, nh_act *out) {
    if (!name || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    const char *names[NH_ACT_COUNT];
    for (int a = 0; a < NH_ACT_COUNT; a++) {
        names[a] = nh_act_name((nh_act)a);
        if (strcmp(name, names[a]) == 0) { *out = (nh_act)a; return NH_OK; }
    }
    char list[256];
    NH_FAIL(NH_EINVAL, "unknown activation '%.64s' (expected %s)", name,
            nh__join_names(names, NH_ACT_COUNT, list, sizeof list));
}

double nh_act_default_param(nh_act a) {
    const nh__act_row *r = nh__act_row_of(a);
    return r ? r->param_default : NAN;
}

const char *nh_act_param_name(nh_act a) {
    const nh__act_row *r = nh__act_row_of(a);
    return r ? r->param : NULL;
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
    const nh__act_row *r = nh__act_row_of(a);
    double p = r->param_default;
    if (colon) {
        if (!r->param) NH_FAIL(NH_EINVAL, "activation '%s' takes no parameter ('%s')", name, spec);
        char *end = NULL;
        p = strtod(colon + 1, &end);
        if (end == colon + 1 || *end || !isfinite(p))
            NH_FAIL(NH_EINVAL, "activation '%s': parameter '%s' is not a finite number", name, colon + 1);
        if (r->param_positive && !(p > 0))
            NH_FAIL(NH_EINVAL, "%s %s must be > 0 (got %g)", name, r->param, p);
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
    /* An unknown value evaluates as identity (as before the table). */
    const nh__act_row *r = nh__act_row_of(a);
    (r ? r->eval : nh__act_table[NH_ACT_IDENTITY].eval)(param, n, x, d0, d1, d2, d3);
}

int nh__act_eval_f(nh_act a, double param, size_t n, const float *x, float *d0, float *d1, float *d2) {
    const nh__act_row *r = nh__act_row_of(a);
    if (!r || !r->eval_f) return 0;
    r->eval_f(param, n, x, d0, d1, d2);
    return 1;
}
