/* blas.h -- the one place that includes CBLAS and LAPACKE, plus checked
 * size_t -> blasint / lapack_int conversions. */
#ifndef NH_BLAS_H
#define NH_BLAS_H
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <stddef.h>

/* 1 iff every value fits a BLAS/LAPACK int. */
static inline int nh__fits_int(size_t a) { return a <= (size_t)INT_MAX; }
#endif
