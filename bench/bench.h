/* bench.h -- timing helpers: one warmup, then repeat until >= min_s of work
 * and >= 5 runs; report median and min (CLOCK_MONOTONIC). */
#ifndef NH_BENCH_H
#define NH_BENCH_H
#include <stdlib.h>
#include <time.h>

static double nhb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int nhb_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
typedef struct { double median, min; int reps; } nhb_result;

/* fn(ctx) is the timed operation. */
static nhb_result nhb_time(void (*fn)(void *), void *ctx, double min_s, int min_reps, int max_reps) {
    double t[1000];
    if (max_reps > 1000) max_reps = 1000;
    fn(ctx); /* warmup */
    int r = 0;
    double total = 0;
    while (r < max_reps && (r < min_reps || total < min_s)) {
        double t0 = nhb_now();
        fn(ctx);
        t[r] = nhb_now() - t0;
        total += t[r++];
    }
    qsort(t, (size_t)r, sizeof *t, nhb_cmp);
    nhb_result res = {r % 2 ? t[r / 2] : 0.5 * (t[r / 2 - 1] + t[r / 2]), t[0], r};
    return res;
}
#endif
