/* internal.h -- private helpers shared by the library sources (never installed).
 * Internal names use the nh__ prefix. */
#ifndef NH_INTERNAL_H
#define NH_INTERNAL_H

#define NH_BUILDING_LIB 1
#include "ntkhess.h"
#include <stddef.h>
#include <stdint.h>

/* Internal helpers that libntkhess-io and libntkhess-plot call across the
 * shared-library boundary: exported, but declared only here (never in an
 * installed header), so they are not part of the public API. */
#if defined(__GNUC__)
#define NH_INTERNAL __attribute__((visibility("default")))
#else
#define NH_INTERNAL
#endif

/* Record a failure (thread-local message "func: detail") and return st.
 * One function, so a debugger can break on every failure. */
NH_INTERNAL nh_status nh__fail(nh_status st, const char *func, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#define NH_FAIL(st, ...) return nh__fail((st), __func__, __VA_ARGS__)
/* "a, b or c" from names[0..n-1] into buf[len] (truncated if too small); returns buf. */
const char *nh__join_names(const char *const *names, size_t n, char *buf, size_t len);
/* 1 if src/theory/gauss.c has closed Gaussian moments for act (they ignore nq). */
int nh__gauss_has_closed(nh_act act);
#define NH_TRY(expr) do { nh_status nh__st = (expr); if (nh__st != NH_OK) return nh__st; } while (0)

/* Overflow-checked size arithmetic: *ok is cleared on overflow. */
static inline size_t nh__mul(size_t a, size_t b, int *ok) {
    if (a != 0 && b > SIZE_MAX / a) { *ok = 0; return 0; }
    return a * b;
}
static inline size_t nh__add(size_t a, size_t b, int *ok) {
    if (b > SIZE_MAX - a) { *ok = 0; return 0; }
    return a + b;
}
/* NH_ETOOLARGE unless `bytes` (already overflow-checked, ok != 0) fits the
 * memory limit; `what` names the request in the message. */
NH_INTERNAL nh_status nh__check_bytes(int ok, size_t bytes, const char *func, const char *what);

/* malloc/calloc wrappers: fail-injection hook for the allocation tests.
 * nh__alloc_fail_at(k) makes the k-th next allocation fail (0 = never). */
NH_INTERNAL void *nh__malloc(size_t bytes);
NH_INTERNAL void *nh__calloc(size_t n, size_t size);
NH_INTERNAL void  nh__alloc_fail_at(long k);

/* Count of non-finite entries, index of first in *first. */
NH_INTERNAL size_t nh__count_nonfinite(const double *x, size_t n, size_t *first);

/* sigma, sigma', sigma'' in float32 for the activations whose table row
 * has a float path (act.c, nh__act_row.eval_f); 0 (nothing written) for the
 * others: evaluate those with nh_act_eval_p in double. */
NH_INTERNAL int nh__act_eval_f(nh_act a, double param, size_t n, const float *x, float *d0, float *d1, float *d2);

/* The loss a curvature context was created with (curv.c). */
NH_INTERNAL nh_loss nh__curv_loss_kind(const nh_curv *c);

/* Threads for OpenMP loops (from nh_set_threads or the environment). */
int nh__threads(void);

/* BLAS/LAPACK include in one place. */
#endif
