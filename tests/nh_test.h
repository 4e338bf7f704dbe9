/* nh_test.h -- tiny test harness (in the spirit of gsl_test).
 * nh_check_close(got, want, atol, rtol, fmt, ...) passes iff
 * |got - want| <= atol + rtol |want|, and never for NaN/Inf.
 * Each test binary ends with NH_TEST_END(), which prints
 * "N passed, N failed" and returns the exit status. */
#ifndef NH_TEST_H
#define NH_TEST_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntkhess.h"

/* Small helpers several tests share (one copy). */
static double dot(const double *a, const double *b, size_t n) { double s = 0; for (size_t i = 0; i < n; i++) s += a[i] * b[i]; return s; }
static double nrm(const double *a, size_t n) { return sqrt(dot(a, a, n)); }
/* The loss / gradient of net on (X, T) through a fresh curvature context. */
static double loss_at(nh_net *net, const double *X, const double *T, size_t n, nh_loss loss) {
    nh_curv *c = NULL;
    if (nh_curv_create(net, X, T, n, loss, &c) != NH_OK) { printf("%s\n", nh_last_error()); exit(1); }
    double v = nh_curv_loss(c);
    nh_curv_free(c);
    return v;
}
static void grad_at(nh_net *net, const double *X, const double *T, size_t n, nh_loss loss, double *g) {
    nh_curv *c = NULL;
    nh_curv_create(net, X, T, n, loss, &c);
    nh_curv_grad(c, g);
    nh_curv_free(c);
}

/* Random data for a test net: X ~ N(0,1) [n x n0]; targets per loss: MSE
 * N(0,1), BCE +-1, CE a class index in 0..nL-1 (all from one stream). */
static void nh_test_data(nh_loss loss, size_t n, size_t n0, size_t nL, uint64_t seed, double *X, double *T) {
    nh_rng r; nh_rng_seed(&r, seed);
    nh_rng_fill_normal(&r, n * n0, X);
    for (size_t i = 0; i < n * nL; i++) {
        double u = nh_rng_normal(&r);
        if (loss == NH_LOSS_MSE) T[i] = u;
        else if (loss == NH_LOSS_BCE) T[i] = u > 0 ? 1.0 : -1.0;
        else T[i] = (double)(nh_rng_u64(&r) % nL);
    }
}

/* A context of the given precision and batch (0 = automatic); exits on failure. */
static nh_curv *nh_test_ctx(const nh_net *net, const double *X, const double *T, size_t n, nh_loss loss,
                            nh_precision prec, size_t batch) {
    nh_curv_opts o = nh_curv_opts_default();
    o.precision = prec; o.batch = batch;
    nh_curv *c = NULL;
    if (nh_curv_create_ex(net, X, T, n, loss, &o, &c) != NH_OK) { printf("ctx: %s\n", nh_last_error()); exit(1); }
    return c;
}

static int nh_t_pass = 0, nh_t_fail = 0, nh_t_verbose = -1;

static int nh_t_is_verbose(void) {
    if (nh_t_verbose < 0) { const char *v = getenv("NH_TEST_VERBOSE"); nh_t_verbose = v && *v == '1'; }
    return nh_t_verbose;
}

static void nh_t_report(int ok, const char *detail, const char *fmt, va_list ap) {
    if (ok) nh_t_pass++; else nh_t_fail++;
    if (!ok || nh_t_is_verbose()) {
        printf("%s: ", ok ? "PASS" : "FAIL");
        vprintf(fmt, ap);
        printf(" %s\n", detail);
        fflush(stdout);
    }
}

/* Plain boolean check. */
static void nh_check(int ok, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); nh_t_report(ok, "", fmt, ap); va_end(ap);
}

static void nh_check_close(double got, double want, double atol, double rtol, const char *fmt, ...) {
    char buf[256];
    double err = fabs(got - want);
    int ok = isfinite(got) && isfinite(want) && err <= atol + rtol * fabs(want);
    snprintf(buf, sizeof buf, "(%.17g observed vs %.17g expected, |err| %.3g, tol %.3g)", got, want,
             err, atol + rtol * fabs(want));
    va_list ap; va_start(ap, fmt); nh_t_report(ok, buf, fmt, ap); va_end(ap);
}

/* Max-abs comparison of arrays relative to a scale: passes iff
 * max_i |got_i - want_i| <= atol + rtol * max_i |want_i|. */
static void nh_check_array(const double *got, const double *want, size_t n, double atol, double rtol,
                           const char *fmt, ...) {
    char buf[256];
    double maxerr = 0, scale = 0; size_t worst = 0; int finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i])) { finite = 0; worst = i; break; }
        double e = fabs(got[i] - want[i]);
        if (e > maxerr) { maxerr = e; worst = i; }
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    int ok = finite && maxerr <= atol + rtol * scale;
    snprintf(buf, sizeof buf, "(n=%zu, max |err| %.3g at %zu, scale %.3g, tol %.3g%s)", n, maxerr, worst,
             scale, atol + rtol * scale, finite ? "" : ", NON-FINITE");
    va_list ap; va_start(ap, fmt); nh_t_report(ok, buf, fmt, ap); va_end(ap);
}

#define NH_TEST_END()                                                        \
    do {                                                                     \
        printf("%d passed, %d failed\n", nh_t_pass, nh_t_fail);              \
        return nh_t_fail ? 1 : 0;                                            \
    } while (0)
#endif
