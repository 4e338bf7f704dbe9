/* status.c -- error codes, thread-local error detail, memory limit, threads,
 * allocation wrappers with fault injection. */
#include "core/internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char nh__msg[512];
static _Thread_local size_t nh__msg_detail; /* offset past "function: " */

#define NH__STR2(x) #x
#define NH__STR(x) NH__STR2(x)
const char *nh_version(void) {
    return NH__STR(NH_VERSION_MAJOR) "." NH__STR(NH_VERSION_MINOR) "." NH__STR(NH_VERSION_PATCH);
}

const char *nh_strerror(nh_status s) {
    switch (s) {
    case NH_OK: return "ok";
    case NH_EINVAL: return "invalid argument";
    case NH_ESHAPE: return "shape mismatch";
    case NH_ENONFINITE: return "non-finite value";
    case NH_ENOMEM: return "out of memory";
    case NH_ETOOLARGE: return "too large";
    case NH_EIO: return "i/o error";
    case NH_EFORMAT: return "malformed file";
    case NH_EMAXITER: return "no convergence";
    case NH_EDIVERGED: return "diverged";
    case NH_ELAPACK: return "LAPACK failure";
    case NH_ENUMERIC: return "numerical breakdown";
    case NH_EBUSY: return "in use";
    }
    return "unknown status";
}

const char *nh_last_error(void) { return nh__msg; }
const char *nh_last_error_detail(void) { return nh__msg + nh__msg_detail; }

nh_status nh__fail(nh_status st, const char *func, const char *fmt, ...) {
    int k = snprintf(nh__msg, sizeof nh__msg, "%s: ", func);
    if (k < 0 || (size_t)k >= sizeof nh__msg) k = 0;
    nh__msg_detail = (size_t)k;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nh__msg + k, sizeof nh__msg - (size_t)k, fmt, ap);
    va_end(ap);
    return st;
}

static size_t nh__mem_limit = 0;

size_t nh_get_mem_limit(void) {
    if (nh__mem_limit) return nh__mem_limit;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psz <= 0) return (size_t)1 << 34; /* 16 GiB if unknown */
    double b = (double)pages * (double)psz;
    return b >= (double)SIZE_MAX ? SIZE_MAX : (size_t)b;
}
void nh_set_mem_limit(size_t bytes) { nh__mem_limit = bytes; }

nh_status nh__check_bytes(int ok, size_t bytes, const char *func, const char *what) {
    if (!ok) return nh__fail(NH_ETOOLARGE, func, "%s: size overflows size_t", what);
    size_t lim = nh_get_mem_limit();
    if (bytes > lim)
        return nh__fail(NH_ETOOLARGE, func, "%s needs %.3g GB, more than the %.3g GB memory limit",
                        what, (double)bytes / 1e9, (double)lim / 1e9);
    return NH_OK;
}

static long nh__fail_countdown = 0;
void nh__alloc_fail_at(long k) { nh__fail_countdown = k; }
static int nh__inject(void) {
    if (nh__fail_countdown <= 0) return 0;
    return --nh__fail_countdown == 0;
}
void *nh__malloc(size_t bytes) {
    if (nh__inject()) return NULL;
    return malloc(bytes ? bytes : 1);
}
void *nh__calloc(size_t n, size_t size) {
    if (nh__inject()) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

/* The common case (none) is one vectorized pass: x * 0 is 0 for a finite x
 * and NaN otherwise, and a NaN survives a sum in any order. */
size_t nh__count_nonfinite(const double *x, size_t n, size_t *first) {
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (size_t i = 0; i < n; i++) acc += x[i] * 0.0;
    if (acc == 0.0) return 0;
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) { if (!c && first) *first = i; c++; }
    return c;
}

static int nh__nthreads = 0;
void nh_set_threads(int nthreads) {
    nh__nthreads = nthreads > 0 ? nthreads : 0;
#ifdef _OPENMP
    if (nthreads > 0) omp_set_num_threads(nthreads);
#endif
    extern void openblas_set_num_threads(int);
    if (nthreads > 0) openblas_set_num_threads(nthreads);
}
int nh__threads(void) {
    if (nh__nthreads > 0) return nh__nthreads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
