/* data.c -- built-in synthetic data sets (seeded, documented in docs/data.md). */
#include "core/internal.h"

#include <math.h>
#include <string.h>

nh_status nh_data_synth(nh_dataset_kind kind, size_t n, size_t dim, nh_loss loss, size_t nclass, uint64_t seed,
                        double *X, double *T) {
    if (!X || !T) NH_FAIL(NH_EINVAL, "NULL argument");
    if (n == 0) NH_FAIL(NH_EINVAL, "number of samples must be >= 1");
    if (kind == NH_DATA_DISK && dim != 2) NH_FAIL(NH_EINVAL, "the disk data set is 2-dimensional (got dim %zu)", dim);
    if (dim == 0) NH_FAIL(NH_EINVAL, "dimension must be >= 1");
    if (loss == NH_LOSS_CE && nclass < 2) NH_FAIL(NH_EINVAL, "ce targets need at least 2 classes");
    nh_rng r;
    nh_rng_seed(&r, seed);
    /* A fixed random unit direction u drives the target. */
    double u[64] = {0}, un = 0;
    const size_t du = dim < 64 ? dim : 64;
    for (size_t k = 0; k < du; k++) { u[k] = nh_rng_normal(&r); un += u[k] * u[k]; }
    un = sqrt(un);
    for (size_t k = 0; k < du; k++) u[k] /= un;
    for (size_t i = 0; i < n; i++) {
        double *x = X + i * dim;
        if (kind == NH_DATA_DISK) {
            double a, b;
            do { a = 2 * nh_rng_uniform(&r) - 1; b = 2 * nh_rng_uniform(&r) - 1; } while (a * a + b * b > 1.0);
            x[0] = a; x[1] = b;
        } else {
            /* uniform on the sphere of radius sqrt(dim): ||x||^2 / n_0 = 1 */
            double s = 0;
            for (size_t k = 0; k < dim; k++) { x[k] = nh_rng_normal(&r); s += x[k] * x[k]; }
            s = sqrt((double)dim / s);
            for (size_t k = 0; k < dim; k++) x[k] *= s;
        }
        double p = 0;
        for (size_t k = 0; k < du; k++) p += u[k] * x[k];
        /* smooth targets of O(1) size: u.x is N(0,1)-like on the sphere */
        const double y = kind == NH_DATA_DISK ? sin(3.0 * x[0]) * cos(2.0 * x[1]) : sin(2.0 * p);
        if (loss == NH_LOSS_MSE) T[i] = y;
        else if (loss == NH_LOSS_BCE) T[i] = y >= 0 ? 1.0 : -1.0;
        else {
            /* class = bucket of sin(2p) in [-1,1] split evenly */
            size_t c = (size_t)floor((y + 1.0) * 0.5 * (double)nclass);
            T[i] = (double)(c >= nclass ? nclass - 1 : c);
        }
    }
    return NH_OK;
}
