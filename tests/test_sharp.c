/* test_sharp.c -- the sharpness tracker (ntkhess/sharp.h, src/est/sharp.c):
 * nh_sharp_eigs against dense eigenvalues (nh_curv_dense, nh_curv_ntk +
 * nh_eigh), a record against dense values, the warm-start state saved and
 * restored (a resumed tracker repeats the uninterrupted one bit for bit),
 * argument errors, the memory limit and injected allocation failures. */
#include "ntkhess.h"
#include "nh_test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void nh__alloc_fail_at(long k); /* internal fault injection (status.c) */

typedef struct {
    nh_net *net;
    nh_curv *c;
    double *X, *T;
    size_t P, n, m;
} fix_t;

static fix_t make_fix(size_t n, uint64_t seed) {
    static const size_t w[4] = {4, 6, 5, 2};
    fix_t f;
    memset(&f, 0, sizeof f);
    nh_net_config cfg = nh_net_config_default();
    cfg.depth = 3; cfg.widths = w; cfg.act = NH_ACT_TANH;
    if (nh_net_create(&cfg, &f.net) != NH_OK) { printf("create: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(f.net, seed);
    f.P = nh_net_nparams(f.net); f.n = n; f.m = 2;
    nh_rng r; nh_rng_seed(&r, seed + 100);
    f.X = malloc(n * 4 * sizeof *f.X);
    f.T = malloc(n * 2 * sizeof *f.T);
    nh_rng_fill_normal(&r, n * 4, f.X);
    nh_rng_fill_normal(&r, n * 2, f.T);
    if (nh_curv_create(f.net, f.X, f.T, n, NH_LOSS_MSE, &f.c) != NH_OK) { printf("curv: %s\n", nh_last_error()); exit(1); }
    return f;
}

static void free_fix(fix_t *f) { nh_curv_free(f->c); nh_net_free(f->net); free(f->X); free(f->T); }

/* Ascending eigenvalues of a dense p x p matrix. */
static void eigvals(size_t p, const double *A, double *w) {
    double *V = malloc(p * p * sizeof *V);
    if (nh_eigh(p, A, w, V) != NH_OK) { printf("eigh: %s\n", nh_last_error()); exit(1); }
    free(V);
}

/* The top 3 of H, I, S (by |.|) and the NTK / N by nh_sharp_eigs, cold. */
static void t_eigs(void) {
    fix_t f = make_fix(10, 3);
    size_t P = f.P, nm = f.n * f.m;
    double *D[3], *w = malloc(P * sizeof *w), *K = malloc(nm * nm * sizeof *K), *wk = malloc(nm * sizeof *wk);
    for (int k = 0; k < 3; k++) D[k] = malloc(P * P * sizeof *D[k]);
    nh_check(nh_curv_dense(f.c, D[0], D[1], D[2]) == NH_OK, "dense H, I, S");
    nh_check(nh_curv_ntk(f.c, K) == NH_OK, "NTK Gram");
    eigvals(nm, K, wk);
    double *evec = malloc(3 * (P > nm ? P : nm) * sizeof *evec), ev[3];
    const char *nm3 = "HIS";
    for (int op = 0; op < 3; op++) {
        eigvals(P, D[op], w);
        double want[3];
        size_t lo = 0, hi = P;
        for (int j = 0; j < 3; j++) /* H, I: the largest; S: the largest |.| */
            want[j] = (op < 2 || fabs(w[hi - 1]) >= fabs(w[lo])) ? w[--hi] : w[lo++];
        nh_sharp_eig_opts eo = {3, op == 2, 1e-12, 100, 1, 11};
        nh_sharp_eig_res r;
        nh_check(nh_sharp_eigs(f.c, (nh_sharp_op)op, &eo, NULL, 0, ev, evec, &r) == NH_OK && r.converged,
                 "eigs %c: converged", nm3[op]);
        /* residual <= 1e-12 |lam_max|: the values to ~1e-12 of the scale; 1e-9 leaves rounding room */
        nh_check_array(ev, want, 3, 0, 1e-9, "eigs %c: top 3 == dense", nm3[op]);
        nh_check(r.nprod <= P, "eigs %c: at most P products (%zu)", nm3[op], r.nprod);
    }
    nh_sharp_eig_opts eo = {1, 0, 1e-12, 100, 1, 5};
    nh_sharp_eig_res r;
    nh_check(nh_sharp_eigs(f.c, NH_SHARP_NTK, &eo, NULL, 0, ev, evec, &r) == NH_OK, "eigs NTK");
    nh_check_close(ev[0], wk[nm - 1] / (double)f.n, 0, 1e-9, "eigs NTK: == max eig(K) / N");
    /* errors */
    eo.k = 0;
    nh_check(nh_sharp_eigs(f.c, NH_SHARP_H, &eo, NULL, 0, ev, evec, &r) == NH_EINVAL, "eigs: k = 0 refused");
    eo.k = P + 1;
    nh_check(nh_sharp_eigs(f.c, NH_SHARP_H, &eo, NULL, 0, ev, evec, &r) == NH_EINVAL, "eigs: k > P refused");
    eo.k = 1; eo.tol = 0;
    nh_check(nh_sharp_eigs(f.c, NH_SHARP_H, &eo, NULL, 0, ev, evec, &r) == NH_EINVAL, "eigs: tol 0 refused");
    eo.tol = 1e-8;
    nh_check(nh_sharp_eigs(f.c, (nh_sharp_op)7, &eo, NULL, 0, ev, evec, &r) == NH_EINVAL, "eigs: bad op refused");
    nh_check(nh_sharp_eigs(NULL, NH_SHARP_H, &eo, NULL, 0, ev, evec, &r) == NH_EINVAL, "eigs: NULL refused");
    for (int k = 0; k < 3; k++) free(D[k]);
    free(w); free(K); free(wk); free(evec);
    free_fix(&f);
}

/* A record against dense values, and a tracker restored from another's
 * state repeating it bit for bit. */
static void t_record_state(void) {
    fix_t f = make_fix(12, 7);
    nh_sharp_opts o = nh_sharp_opts_default();
    o.top = 2; o.tol = 1e-12;
    nh_sharp *a = NULL, *b = NULL;
    nh_check(nh_sharp_create(f.c, &o, &a) == NH_OK, "create");
    nh_sharp_row r0, ra, rb;
    nh_check(nh_sharp_record(a, f.c, 0, &r0) == NH_OK, "record 0");
    double *H = malloc(f.P * f.P * sizeof *H), *w = malloc(f.P * sizeof *w), *g = malloc(f.P * sizeof *g);
    nh_curv_dense(f.c, H, NULL, NULL);
    eigvals(f.P, H, w);
    nh_check_close(r0.lam_H, w[f.P - 1], 0, 1e-9, "record: lam_H == dense");
    nh_check_close(r0.top[0][1], w[f.P - 2], 0, 1e-9, "record: H_2 == dense");
    nh_check_close(r0.uIu + r0.uSu, r0.lam_H, 0, 1e-9, "record: uIu + uSu == lam_H");
    nh_check_close(r0.lam_NTK, r0.lam_I, 0, 1e-9, "record: mse: lam_NTK == lam_I");
    nh_curv_grad(f.c, g);
    nh_check_close(r0.grad_norm, nrm(g, f.P), 0, 1e-14, "record: grad_norm");
    nh_check(r0.loss == nh_curv_loss(f.c) && r0.unconverged == 0, "record: loss, converged");
    nh_check(isnan(r0.top[0][2]), "record: entries past top are NaN");
    nh_check(nh_curv_gd_step(f.c, f.net, 0.3) == NH_OK, "gd step");
    nh_check(nh_sharp_record(a, f.c, 1, &ra) == NH_OK, "record 1");
    size_t len = nh_sharp_state_len(a);
    nh_check(len == 3 * 2 * f.P + f.n * f.m, "state length 3 top P + N n_L (%zu)", len);
    double *st = malloc(len * sizeof *st);
    nh_check(nh_sharp_state_get(a, st) == NH_OK, "state get");
    nh_check(nh_sharp_create(f.c, &o, &b) == NH_OK && nh_sharp_state_set(b, st) == NH_OK, "a second tracker, restored");
    nh_curv_gd_step(f.c, f.net, 0.3);
    nh_check(nh_sharp_record(a, f.c, 2, &ra) == NH_OK && nh_sharp_record(b, f.c, 2, &rb) == NH_OK, "record 2 twice");
    nh_check(memcmp(&ra, &rb, sizeof ra) == 0, "restored tracker == uninterrupted one, bit for bit");
    nh_check(ra.matvecs[0] < r0.matvecs[0], "warm start: fewer H products than the first record (%zu < %zu)",
             ra.matvecs[0], r0.matvecs[0]);
    st[0] = NAN;
    nh_check(nh_sharp_state_set(b, st) == NH_ENONFINITE, "state set: NaN refused");
    nh_sharp_free(a); nh_sharp_free(b); nh_sharp_free(NULL);
    free(H); free(w); free(g); free(st);
    free_fix(&f);
}

static void t_errors(void) {
    fix_t f = make_fix(8, 2), f2 = make_fix(9, 2);
    nh_sharp_opts o = nh_sharp_opts_default();
    nh_sharp *s = NULL;
    nh_sharp_row r;
    nh_check(o.top == 1 && o.tol == 1e-7 && o.maxit == 100 && o.min_steps == 4 && !o.cold && o.ntk, "defaults");
    nh_check(nh_sharp_create(NULL, &o, &s) == NH_EINVAL && s == NULL, "create: NULL context");
    o.top = 0;
    nh_check(nh_sharp_create(f.c, &o, &s) == NH_EINVAL, "create: top 0");
    o.top = NH_SHARP_MAXTOP + 1;
    nh_check(nh_sharp_create(f.c, &o, &s) == NH_EINVAL, "create: top 17");
    o.top = 1; o.maxit = 1;
    nh_check(nh_sharp_create(f.c, &o, &s) == NH_EINVAL, "create: maxit 1");
    o.maxit = 100; o.tol = 1;
    nh_check(nh_sharp_create(f.c, &o, &s) == NH_EINVAL, "create: tol 1");
    o.tol = 1e-7;
    size_t lim = nh_get_mem_limit();
    nh_set_mem_limit(64);
    nh_check(nh_sharp_create(f.c, &o, &s) == NH_ETOOLARGE, "create: over the memory limit");
    nh_set_mem_limit(lim);
    nh_check(nh_sharp_create(f.c, &o, &s) == NH_OK, "create");
    nh_check(nh_sharp_record(s, f2.c, 0, &r) == NH_EINVAL, "record: a context of another N refused");
    nh_check(nh_sharp_record(s, f.c, 0, NULL) == NH_EINVAL, "record: NULL row refused");
    /* injected allocation failures: each is an error status, none crashes or leaks (ASan) */
    int fails = 0, oks = 0;
    for (long k = 1; k <= 40; k++) {
        nh__alloc_fail_at(k);
        nh_status st = nh_sharp_record(s, f.c, 0, &r);
        nh__alloc_fail_at(0);
        fails += st == NH_ENOMEM;
        oks += st == NH_OK;
        if (st != NH_OK && st != NH_ENOMEM) nh_check(0, "record with allocation %ld failing: %s", k, nh_strerror(st));
    }
    nh_check(fails > 0 && oks > 0, "record: injected failures give NH_ENOMEM (%d), later ones pass (%d)", fails, oks);
    nh_check(nh_sharp_record(s, f.c, 0, &r) == NH_OK && isfinite(r.lam_H), "record after the failures");
    for (long k = 1; k <= 5; k++) { /* the tracker, its state, gradient and two product buffers */
        nh_sharp *t = NULL;
        nh__alloc_fail_at(k);
        nh_status st = nh_sharp_create(f.c, &o, &t);
        nh__alloc_fail_at(0);
        nh_check(st == NH_ENOMEM && t == NULL, "create with allocation %ld failing: NH_ENOMEM", k);
        nh_sharp_free(t);
    }
    nh_sharp_free(s);
    free_fix(&f); free_fix(&f2);
}

int main(void) {
    nh_set_threads(1);
    t_eigs();
    t_record_state();
    t_errors();
    NH_TEST_END();
}
