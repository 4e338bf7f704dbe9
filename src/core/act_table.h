/* act_table.h -- the activation table's row (private to libntkhess).
 * One row per nh_act in src/core/act.c; read by act.c, src/theory/gauss.c
 * (default nodes) and src/theory/kernels.c (dispatch). */
#ifndef NH_ACT_TABLE_H
#define NH_ACT_TABLE_H
#include "ntkhess.h"

/* sigma and derivatives 1..3 at n points with parameter p; outputs may be NULL. */
typedef void (*nh__act_fn)(double p, size_t n, const double *x, double *d0, double *d1, double *d2,
                           double *d3);

/* sigma, sigma', sigma'' in float32 at n points (the single-precision
 * curvature engine); a row without one (NULL) is evaluated in double. */
typedef void (*nh__act_fn_f)(double p, size_t n, const float *x, float *d0, float *d1, float *d2);

typedef struct nh__act_row {
    const char *name;     /* command-line and file name                        */
    const char *title;    /* display name for plots (NULL: the name)           */
    const char *param;    /* the parameter's name ("beta", "slope") or NULL    */
    double param_default; /* NaN without a parameter                           */
    int param_positive;   /* the parameter must be > 0                         */
    int smooth;           /* 1: C^3, derivatives exact; 0: kinks, sigma'' = sigma''' = 0 */
    double nq_per_var;    /* Gauss-Hermite nodes per unit variance for ~1e-13  */
    size_t nq_fixed;      /* nonzero: nodes independent of the variance        */
    nh__act_fn eval;
    nh__act_fn_f eval_f;  /* float32 path or NULL (only where double libm would
                             dominate a float32 forward pass; docs/precision.md) */
} nh__act_row;

/* The row of a, NULL for a value outside 0..NH_ACT_COUNT-1. */
const nh__act_row *nh__act_row_of(nh_act a);

#endif
