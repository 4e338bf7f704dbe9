/* rng.c -- the documented generator: xoshiro256** (Blackman & Vigna) seeded
 * by splitmix64; normals by Marsaglia's polar method.  The logarithm is built
 * from +, -, *, / and frexp/ldexp only (IEEE-exact), so a seed yields
 * bit-identical parameters on every IEEE-754 machine whatever its libm. */
#include "core/internal.h"

#include <math.h>

static uint64_t nh__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nh_rng_seed(nh_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = nh__splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0;
}

static inline uint64_t nh__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nh_rng_u64(nh_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = nh__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = nh__rotl(s[3], 45);
    return result;
}

double nh_rng_uniform(nh_rng *r) { return (double)(nh_rng_u64(r) >> 11) * 0x1.0p-53; }

/* log(x) for x > 0 from IEEE-exact operations: x = m 2^e with m in
 * [sqrt(1/2), sqrt(2)), log m = 2 atanh(z), z = (m-1)/(m+1), |z| < 0.1716;
 * 12 series terms leave a truncation below 1e-19 relative. */
static double nh__exact_log(double x) {
    int e;
    double m = frexp(x, &e); /* m in [0.5, 1) */
    if (m < 0.70710678118654752440) { m *= 2.0; e -= 1; }
    double z = (m - 1.0) / (m + 1.0), z2 = z * z, term = z, sum = 0.0;
    double acc[12];
    for (int k = 0; k < 12; k++) { acc[k] = term / (double)(2 * k + 1); term *= z2; }
    for (int k = 11; k >= 0; k--) sum += acc[k]; /* small terms first */
    return 2.0 * sum + (double)e * 0.69314718055994530942;
}

double nh_rng_normal(nh_rng *r) {
    if (r->has_spare) { r->has_spare = 0; return r->spare; }
    double u, v, s;
    do {
        u = 2.0 * nh_rng_uniform(r) - 1.0;
        v = 2.0 * nh_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * nh__exact_log(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

void nh_rng_fill_normal(nh_rng *r, size_t n, double *x) {
    for (size_t i = 0; i < n; i++) x[i] = nh_rng_normal(r);
}
