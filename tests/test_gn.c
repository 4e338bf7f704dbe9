/* test_gn.c -- the Gauss-Newton step in function space (nh_curv_gn_delta,
 * nh_curv_gn_step, src/finite/gn.c) against truths built here from the dense
 * Jacobian J (nh_curv_jacobian) with this file's own Gaussian elimination:
 *   - mu = 0: J delta = -r and delta = -J^T (J J^T)^{-1} r, the minimum-norm
 *     solution (in the row space of J);
 *   - mu > 0: delta = -(J^T J + mu' I)^{-1} J^T r, a P x P solve (the
 *     push-through identity of the library's n x n formula);
 *   - BCE: r = HC^{-1} dC/dY from the closed forms of the loss;
 *   - a selection: the same with the selected columns J_B, and the step moves
 *     only the selected entries of theta, by delta_B;
 *   - a batched context gives the unbatched step;
 *   - a small overparametrized net goes from loss O(1) to < 1e-20 in a few
 *     steps, the loss never rising (the sequence is printed);
 *   - errors: NULL, mu < 0 or NaN, another net, the softmax cross-entropy.
 * Tolerances: the library (Cholesky) and the truth (Gaussian elimination)
 * both solve with K = J J^T (or J^T J + mu' I), backward-stably: they agree
 * to ~cond(K) * 1e-16; these small nets are well conditioned (observed
 * ||J delta + r|| / ||r|| ~ 2e-12), so 1e-10 for the residual and 1e-9
 * relative to the array's scale for the steps leave room for other BLAS. */
#include "ntkhess.h"
#include "nh_test.h"

#include <stdlib.h>
#include <string.h>

#define TOL 1e-9

void nh__alloc_fail_at(long k); /* internal fault injection (status.c) */

static nh_net *make_net(size_t L, const size_t *w, nh_act act, uint64_t seed) {
    nh_net_config c = nh_net_config_default();
    c.depth = L; c.widths = w; c.act = act;
    nh_net *net = NULL;
    if (nh_net_create(&c, &net) != NH_OK) { printf("create: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(net, seed);
    return net;
}

/* Solve A x = b (A k x k, copied) by Gaussian elimination with partial pivoting; x overwrites b. */
static void solve(size_t k, const double *A0, double *b) {
    double *A = malloc(k * k * sizeof *A);
    memcpy(A, A0, k * k * sizeof *A);
    for (size_t j = 0; j < k; j++) {
        size_t p = j;
        for (size_t i = j + 1; i < k; i++) if (fabs(A[i * k + j]) > fabs(A[p * k + j])) p = i;
        for (size_t q = 0; q < k; q++) { double t = A[j * k + q]; A[j * k + q] = A[p * k + q]; A[p * k + q] = t; }
        double t = b[j]; b[j] = b[p]; b[p] = t;
        for (size_t i = j + 1; i < k; i++) {
            double f = A[i * k + j] / A[j * k + j];
            for (size_t q = j; q < k; q++) A[i * k + q] -= f * A[j * k + q];
            b[i] -= f * b[j];
        }
    }
    for (size_t i = k; i-- > 0;) {
        for (size_t q = i + 1; q < k; q++) b[i] -= A[i * k + q] * b[q];
        b[i] /= A[i * k + i];
    }
    free(A);
}

/* The min-norm truth -J^T (J J^T + mu' I)^{-1} r, J[m x p]; returns mu' = mu Tr(JJ^T)/m. */
static double truth_rowspace(size_t m, size_t p, const double *J, const double *r, double mu, double *delta) {
    double *K = calloc(m * m, sizeof *K), *a = malloc(m * sizeof *a), tr = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) K[i * m + j] = dot(J + i * p, J + j * p, p);
    for (size_t i = 0; i < m; i++) tr += K[i * m + i];
    const double mua = mu * tr / (double)m;
    for (size_t i = 0; i < m; i++) K[i * m + i] += mua;
    memcpy(a, r, m * sizeof *a);
    solve(m, K, a);
    for (size_t q = 0; q < p; q++) {
        double s = 0;
        for (size_t i = 0; i < m; i++) s += J[i * p + q] * a[i];
        delta[q] = -s;
    }
    free(K); free(a);
    return mua;
}

/* The parameter-space truth -(J^T J + mua I)^{-1} J^T r (mua > 0). */
static void truth_param(size_t m, size_t p, const double *J, const double *r, double mua, double *delta) {
    double *A = calloc(p * p, sizeof *A);
    for (size_t i = 0; i < m; i++)
        for (size_t q = 0; q < p; q++)
            for (size_t s = 0; s < p; s++) A[q * p + s] += J[i * p + q] * J[i * p + s];
    for (size_t q = 0; q < p; q++) {
        A[q * p + q] += mua;
        double s = 0;
        for (size_t i = 0; i < m; i++) s += J[i * p + q] * r[i];
        delta[q] = -s;
    }
    solve(p, A, delta);
    free(A);
}

/* res = J delta + r (m entries). */
static double residual_rel(size_t m, size_t p, const double *J, const double *delta, const double *r) {
    double e = 0;
    for (size_t i = 0; i < m; i++) { double v = dot(J + i * p, delta, p) + r[i]; e += v * v; }
    return sqrt(e) / nrm(r, m);
}

/* An MSE problem on a 2-input, 1-output net of depth 3 (n <= 8 rows): the
 * context, its dense Jacobian J (n x P) and the residual r = Y - T. */
typedef struct gn_fix {
    nh_net *net;
    nh_curv *c;
    size_t n, P;
    double X[16], T[8], r[8], *J;
} gn_fix;

static void gn_fix_mse(gn_fix *f, const size_t w[4], size_t n, uint64_t net_seed, uint64_t data_seed) {
    double Y[8];
    f->n = n;
    f->net = make_net(3, w, NH_ACT_SOFTPLUS, net_seed);
    f->P = nh_net_nparams(f->net);
    nh_test_data(NH_LOSS_MSE, n, 2, 1, data_seed, f->X, f->T);
    f->c = nh_test_ctx(f->net, f->X, f->T, n, NH_LOSS_MSE, NH_PREC_DOUBLE, 0);
    f->J = malloc(n * f->P * sizeof *f->J);
    nh_check(nh_curv_jacobian(f->c, f->J) == NH_OK, "dense Jacobian");
    nh_curv_outputs(f->c, Y);
    for (size_t i = 0; i < n; i++) f->r[i] = Y[i] - f->T[i];
}

static void gn_fix_free(gn_fix *f) {
    free(f->J);
    nh_curv_free(f->c);
    nh_net_free(f->net);
}

/* MSE on a small net (P > N): mu = 0 exact min-norm, mu > 0 the damped step, batched = unbatched. */
static void test_mse(void) {
    const size_t w[4] = {2, 12, 12, 1};
    gn_fix f;
    gn_fix_mse(&f, w, 6, 11, 5);
    nh_net *net = f.net;
    nh_curv *c = f.c;
    const size_t n = f.n, P = f.P;
    const double *X = f.X, *T = f.T, *r = f.r, *J = f.J;
    double *d = malloc(P * sizeof *d), *t = malloc(P * sizeof *t);
    nh_check(nh_curv_gn_delta(c, 0.0, d) == NH_OK, "gn_delta mu = 0: %s", nh_last_error());
    const double res = residual_rel(n, P, J, d, r);
    printf("MSE P = %zu, N = %zu: ||J delta + r|| / ||r|| = %.3g (mu = 0)\n", P, n, res);
    /* exact linear algebra on a well-conditioned K: rounding only */
    nh_check(res < 1e-10, "mu = 0 solves J delta = -r (%.3g)", res);
    truth_rowspace(n, P, J, r, 0.0, t);
    nh_check_array(d, t, P, 0, TOL, "mu = 0: the minimum-norm solution -J^T (J J^T)^{-1} r");
    nh_check(nrm(d, P) > 0, "the step is not zero");
    { /* mu = 0 on a copy of the net: the linearized outputs hit the targets, predicted loss 0 */
        nh_net *n0 = NULL;
        nh_net_clone(net, &n0);
        nh_curv *c0 = nh_test_ctx(n0, X, T, n, NH_LOSS_MSE, NH_PREC_DOUBLE, 0);
        nh_gn_info i0;
        nh_check(nh_curv_gn_step(c0, n0, 0.0, &i0) == NH_OK, "gn_step mu = 0");
        /* pred = C + g.s + s'HC s / 2 cancels to 0: rounding of the sum, ~1e-16 C */
        nh_check(fabs(i0.pred) <= 1e-14 * i0.loss0, "mu = 0 predicts loss 0 (%.3g of %.3g)", i0.pred, i0.loss0);
        nh_check(i0.accepted ? i0.loss == i0.tried && i0.tried <= i0.loss0 : i0.loss == i0.loss0 && i0.tried > i0.loss0,
                 "accepted iff the loss did not rise (tried %.3g from %.3g)", i0.tried, i0.loss0);
        nh_curv_free(c0);
        nh_net_free(n0);
    }
    const double mua = truth_rowspace(n, P, J, r, 0.1, t);
    nh_check(nh_curv_gn_delta(c, 0.1, d) == NH_OK, "gn_delta mu = 0.1");
    nh_check_array(d, t, P, 0, TOL, "mu = 0.1: -J^T (J J^T + mu' I)^{-1} r");
    truth_param(n, P, J, r, mua, t);
    nh_check_array(d, t, P, 0, TOL, "mu = 0.1: -(J^T J + mu' I)^{-1} J^T r (parameter space)");
    nh_gn_info info;
    nh_check(nh_curv_gn_step(c, net, 0.1, &info) == NH_OK, "gn_step mu = 0.1");
    nh_check_close(info.mu_abs, mua, 0, 1e-12, "info.mu_abs = mu Tr(K)/m");
    nh_check_close(info.norm, nrm(t, P), 0, TOL, "info.norm = ||delta||");
    { /* the predicted loss: the MSE of the linearized outputs, ||J delta + r||^2 / 2N */
        double e = 0;
        for (size_t i = 0; i < n; i++) { double v = dot(J + i * P, t, P) + r[i]; e += v * v; }
        nh_check_close(info.pred, e / (2.0 * (double)n), 0, TOL, "info.pred = ||J delta + r||^2 / 2N");
    }
    /* batched: the same NTK Gram and J^T a up to summation order */
    nh_curv *cb = nh_test_ctx(net, X, T, n, NH_LOSS_MSE, NH_PREC_DOUBLE, 4);
    nh_check(nh_curv_gn_delta(c, 0.0, t) == NH_OK && nh_curv_gn_delta(cb, 0.0, d) == NH_OK, "batched gn_delta");
    nh_check_array(d, t, P, 0, TOL, "batch 4 of 6 rows = unbatched");
    nh_curv_free(cb);
    free(d); free(t);
    gn_fix_free(&f);
}

/* BCE, 2 outputs: r = HC^{-1} dC/dY = (-s sigma(-sY)) / (sigma(Y) sigma(-Y)) per entry (the 1/N cancels). */
static void test_bce(void) {
    const size_t w[3] = {3, 10, 2}, n = 5, m = 10;
    nh_net *net = make_net(2, w, NH_ACT_TANH, 3);
    const size_t P = nh_net_nparams(net);
    double X[15], T[10], Y[10], r[10];
    nh_test_data(NH_LOSS_BCE, n, 3, 2, 9, X, T);
    nh_curv *c = nh_test_ctx(net, X, T, n, NH_LOSS_BCE, NH_PREC_DOUBLE, 0);
    nh_curv_outputs(c, Y);
    for (size_t i = 0; i < m; i++) {
        double s = T[i], y = Y[i], sg = 1 / (1 + exp(-y));
        r[i] = -s * (1 / (1 + exp(s * y))) / (sg * (1 - sg));
    }
    double *J = malloc(m * P * sizeof *J), *d = malloc(P * sizeof *d), *t = malloc(P * sizeof *t);
    nh_curv_jacobian(c, J);
    nh_check(nh_curv_gn_delta(c, 0.0, d) == NH_OK, "BCE gn_delta: %s", nh_last_error());
    const double res = residual_rel(m, P, J, d, r);
    nh_check(res < 1e-10, "BCE: J delta = -HC^{-1} dC/dY (%.3g)", res);
    truth_rowspace(m, P, J, r, 0.0, t);
    nh_check_array(d, t, P, 0, TOL, "BCE: minimum-norm solution");
    free(J); free(d); free(t);
    nh_curv_free(c);
    nh_net_free(net);
}

/* Selection {W1, b2}: J_B = the selected columns; the step moves only them. */
static void test_select(void) {
    const size_t w[4] = {2, 8, 8, 1};
    gn_fix f;
    gn_fix_mse(&f, w, 5, 21, 4);
    nh_net *net = f.net;
    nh_curv *c = f.c;
    const size_t n = f.n, P = f.P;
    const double *r = f.r, *J = f.J;
    size_t sel[2], off[2], len[2];
    nh_net_find_tensor(net, "W1", &sel[0]);
    nh_net_find_tensor(net, "b2", &sel[1]);
    for (int k = 0; k < 2; k++) nh_net_tensor(net, sel[k], NULL, &off[k], &len[k]);
    nh_check(nh_curv_select(c, 2, sel) == NH_OK, "select W1, b2");
    const size_t PB = nh_curv_dim(c);
    nh_check(PB == len[0] + len[1], "P_B = %zu", PB);
    double *JB = malloc(n * PB * sizeof *JB), *d = malloc(PB * sizeof *d), *t = malloc(PB * sizeof *t);
    for (size_t i = 0; i < n; i++) /* the columns of W1 then b2 (theta order) */
        for (size_t k = 0, q = 0; k < 2; k++)
            for (size_t j = 0; j < len[k]; j++) JB[i * PB + q++] = J[i * P + off[k] + j];
    nh_check(nh_curv_gn_delta(c, 0.0, d) == NH_OK, "selected gn_delta: %s", nh_last_error());
    nh_check(residual_rel(n, PB, JB, d, r) < 1e-10, "selection: J_B delta_B = -r");
    truth_rowspace(n, PB, JB, r, 0.0, t);
    nh_check_array(d, t, PB, 0, TOL, "selection: minimum-norm in the block");
    double *th0 = malloc(P * sizeof *th0);
    memcpy(th0, nh_net_params(net), P * sizeof *th0);
    nh_gn_info info;
    /* mu = 10: a short step along a descent direction, so the loss falls and the step is taken */
    nh_check(nh_curv_gn_step(c, net, 10, &info) == NH_OK && info.accepted, "selected gn_step accepted");
    const double *th = nh_net_params(net);
    size_t moved_out = 0, q = 0;
    double maxerr = 0;
    truth_rowspace(n, PB, JB, r, 10, t);
    for (size_t p = 0; p < P; p++) {
        int in = (p >= off[0] && p < off[0] + len[0]) || (p >= off[1] && p < off[1] + len[1]);
        if (!in) moved_out += th[p] != th0[p];
        else { double e = fabs((th[p] - th0[p]) - t[q++]); if (e > maxerr) maxerr = e; }
    }
    nh_check(moved_out == 0, "the step leaves unselected entries bit for bit (%zu moved)", moved_out);
    nh_check(maxerr <= TOL * nrm(t, PB), "the selected entries move by delta_B (max err %.3g)", maxerr);
    free(JB); free(d); free(t); free(th0);
    gn_fix_free(&f);
}

/* Overparametrized net from loss O(1): quadratic convergence to < 1e-20. */
static void test_converge(void) {
    const size_t w[4] = {2, 20, 20, 1}, n = 8;
    nh_net *net = make_net(3, w, NH_ACT_SOFTPLUS, 7);
    double X[16], T[8];
    nh_test_data(NH_LOSS_MSE, n, 2, 1, 8, X, T);
    for (size_t i = 0; i < n; i++) T[i] *= 2; /* a loss of O(1), far from the initial function */
    nh_curv *c = nh_test_ctx(net, X, T, n, NH_LOSS_MSE, NH_PREC_DOUBLE, 0);
    double loss[16], mu = 0;
    size_t k = 0;
    int rose = 0;
    loss[0] = nh_curv_loss(c);
    printf("GN from loss %.3e:", loss[0]);
    while (k < 15 && loss[k] > 1e-22) {
        nh_gn_info info;
        if (nh_curv_gn_step(c, net, mu, &info) != NH_OK) { printf(" error %s", nh_last_error()); break; }
        if (!info.accepted) { mu = mu > 0 ? mu * 10 : 1e-6; continue; } /* Levenberg-Marquardt */
        rose |= nh_curv_loss(c) > loss[k];
        loss[++k] = nh_curv_loss(c);
        mu /= 10;
        printf(" %.3e", loss[k]);
    }
    printf("\n");
    nh_check(loss[0] > 0.5, "the start is far from a minimum (loss %.3g)", loss[0]);
    nh_check(loss[k] < 1e-20, "loss < 1e-20 after %zu steps (%.3g)", k, loss[k]);
    nh_check(k <= 10, "at most 10 steps (%zu)", k);
    nh_check(!rose, "the loss never rose");
    /* quadratic convergence doubles the exponent each step (loss_{k+1} ~ loss_k^2);
     * linear convergence would keep log loss_{k+1} / log loss_k near 1 */
    int quad = 1, nq = 0;
    for (size_t j = 0; j < k; j++)
        if (loss[j] < 1e-4 && loss[j] > 1e-20) { quad &= loss[j + 1] <= pow(loss[j], 1.7); nq++; }
    nh_check(quad && nq >= 2, "quadratic convergence: loss_{k+1} <= loss_k^1.7 below 1e-4 (%d steps)", nq);
    nh_curv_free(c);
    nh_net_free(net);
}

static void test_errors(void) {
    const size_t w[3] = {2, 4, 3}, n = 4;
    nh_net *net = make_net(2, w, NH_ACT_TANH, 1), *other = NULL;
    nh_net_clone(net, &other);
    double X[8], T[12], d[64];
    nh_test_data(NH_LOSS_CE, n, 2, 3, 2, X, T);
    nh_curv *ce = nh_test_ctx(net, X, T, n, NH_LOSS_CE, NH_PREC_DOUBLE, 0);
    nh_check(nh_net_nparams(net) <= 64, "scratch size");
    nh_check(nh_curv_gn_delta(ce, 0.1, d) == NH_EINVAL && strstr(nh_last_error(), "nh_curv_gn_delta"),
             "softmax CE refused, the message names the called function: %s", nh_last_error());
    nh_check(nh_curv_gn_step(ce, net, 0.1, NULL) == NH_EINVAL && strstr(nh_last_error(), "nh_curv_gn_step"),
             "softmax CE step refused: %s", nh_last_error());
    nh_curv_free(ce);
    /* A confident softmax (weights scaled by 40, one sample): with a
     * probability near 1 the block's last Cholesky pivot is rounding-size
     * relative to eps/(1-p), which can pass the pivot test, so the refusal is
     * by loss kind (review of 2026-12-07). */
    {
        const size_t w1[3] = {2, 4, 3};
        nh_net *big = make_net(2, w1, NH_ACT_TANH, 3);
        double *th = nh_net_params(big);
        for (size_t p = 0; p < nh_net_nparams(big); p++) th[p] *= 40.0;
        double X1[2] = {3.0, -2.0}, T1[1] = {0};
        nh_curv *c1 = nh_test_ctx(big, X1, T1, 1, NH_LOSS_CE, NH_PREC_DOUBLE, 0);
        nh_check(nh_curv_gn_delta(c1, 0.0, d) == NH_EINVAL, "confident softmax CE refused: %s", nh_last_error());
        nh_curv_free(c1);
        nh_net_free(big);
    }
    nh_test_data(NH_LOSS_MSE, n, 2, 3, 2, X, T);
    nh_curv *c = nh_test_ctx(net, X, T, n, NH_LOSS_MSE, NH_PREC_DOUBLE, 0);
    nh_check(nh_curv_gn_delta(NULL, 0, d) == NH_EINVAL, "NULL context");
    nh_check(nh_curv_gn_delta(c, 0, NULL) == NH_EINVAL, "NULL delta");
    nh_check(nh_curv_gn_delta(c, -1e-3, d) == NH_EINVAL, "mu < 0");
    nh_check(nh_curv_gn_delta(c, NAN, d) == NH_EINVAL, "mu NaN");
    nh_check(nh_curv_gn_step(c, NULL, 0, NULL) == NH_EINVAL, "NULL net");
    nh_check(nh_curv_gn_step(c, other, 0, NULL) == NH_EINVAL, "another net");
    nh_check(nh_curv_gn_step(c, net, INFINITY, NULL) == NH_EINVAL, "mu Inf");
    /* injected allocation failures: NH_ENOMEM with theta untouched bit for bit, never a crash or leak (ASan) */
    const size_t P = nh_net_nparams(net);
    double th0[64];
    memcpy(th0, nh_net_params(net), P * sizeof *th0);
    int fails = 0, oks = 0, kept = 1;
    for (long k = 1; k <= 30; k++) {
        nh__alloc_fail_at(k);
        nh_status st = nh_curv_gn_step(c, net, 1e3, NULL); /* mu large: a short step */
        nh__alloc_fail_at(0);
        if (st == NH_ENOMEM) { fails++; kept &= !memcmp(th0, nh_net_params(net), P * sizeof *th0); }
        else if (st == NH_OK) { oks++; memcpy(nh_net_params(net), th0, P * sizeof *th0); nh_curv_refresh(c); }
        else nh_check(0, "gn_step with allocation %ld failing: %s", k, nh_strerror(st));
    }
    nh_check(fails > 0 && oks > 0 && kept, "injected failures: NH_ENOMEM (%d) with theta kept, later ones pass (%d)",
             fails, oks);
    nh_curv_free(c);
    nh_net_free(net);
    nh_net_free(other);
}

int main(void) {
    test_mse();
    test_bce();
    test_select();
    test_converge();
    test_errors();
    NH_TEST_END();
}
