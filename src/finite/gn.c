/* gn.c -- the Gauss-Newton (Levenberg-Marquardt) step in function space,
 *   delta = -J^T (K + mu' I)^{-1} r,   K = J J^T (the empirical NTK Gram),
 *   r = HC^{-1} dC/dY (per sample; = Y - Y* for the MSE),
 *   mu' = mu Tr(K) / (N n_L).
 * With mu = 0 it is the minimum-norm solution of the linearized equation
 * J delta = -r: the point gradient descent converges to in the lazy regime
 * (GD moves theta only within the row space of J), reached in a few steps
 * instead of ~1/(eta lambda_min) of them.  Only the public products of
 * curv.c are used (nh_curv_ntk, nh_curv_vjp), so a parameter selection
 * (nh_curv_select) is respected: K is then J_B J_B^T, delta a P_B-vector
 * and the step moves only the selected tensors. */
#include "core/internal.h"
#include "core/blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A loss-Hessian block is refused as singular when a Cholesky pivot falls
 * below this fraction of its diagonal entry: a positive definite block (MSE:
 * I/N; BCE: a positive diagonal) has ratio 1 or O(1), while the softmax
 * cross-entropy's blocks annihilate the all-ones vector, leaving a last
 * pivot of rounding size (~1e-16). */
#define GN_PIVOT 1e-10

/* Solve the nout x nout block A x = b in place (b) by LAPACK's Cholesky;
 * 0 if A is not positive definite in the GN_PIVOT sense (dpotrf alone would
 * accept the softmax block's rounding-size last pivot).  The diagonal entry
 * A_jj is the squared norm of row j of L, so the ratio needs no copy of A. */
static int gn_block_solve(size_t k, double *A, double *b) {
    if (!nh__fits_int(k) || LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, A, (lapack_int)k) != 0) return 0;
    for (size_t j = 0; j < k; j++) {
        double ajj = 0;
        for (size_t q = 0; q <= j; q++) ajj += A[j * k + q] * A[j * k + q];
        if (!(A[j * k + j] * A[j * k + j] > GN_PIVOT * ajj)) return 0;
    }
    return LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, 1, A, (lapack_int)k, b, 1) == 0;
}

/* r[m] = HC_i^{-1} (dC/dY)_i per sample i; hc: workspace [n x nout x nout].
 * The softmax cross-entropy is refused by kind: its blocks diag(p) - p p^T
 * are singular, but with a probability within ~1e-6 of 1 rounding leaves a
 * last pivot far above GN_PIVOT, so the pivot test alone would let through
 * a step that explodes along the all-ones direction.  The pivot test stays
 * for the others (a BCE block that underflows). */
static nh_status gn_residual(nh_curv *c, size_t n, size_t nout, double *hc, double *r, const char *func) {
    if (nh__curv_loss_kind(c) == NH_LOSS_CE)
        return nh__fail(NH_EINVAL, func, "a Gauss-Newton step needs a loss with positive definite output Hessian "
                        "(MSE, BCE); the softmax cross-entropy's is singular");
    nh_curv_dloss(c, r);
    nh_curv_hloss(c, hc);
    for (size_t i = 0; i < n; i++)
        if (!gn_block_solve(nout, hc + i * nout * nout, r + i * nout))
            return nh__fail(NH_EINVAL, func, "the loss Hessian of sample %zu is not positive definite (a "
                            "Gauss-Newton step needs the MSE or a loss with positive definite output Hessian)", i);
    return NH_OK;
}

/* The loss the quadratic model of C in the outputs predicts after the step:
 * C + g.s + s'HC s / 2 with s = J delta = -K a = mu' a - r, a = (K + mu' I)^{-1} r. */
static double gn_predict(nh_curv *c, size_t n, size_t nout, const double *r, const double *a, double mu_abs,
                         double *g, double *hc) {
    nh_curv_dloss(c, g);
    nh_curv_hloss(c, hc);
    double pred = nh_curv_loss(c);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nout; k++) {
            const double sk = mu_abs * a[i * nout + k] - r[i * nout + k];
            double hs = 0;
            for (size_t q = 0; q < nout; q++)
                hs += hc[(i * nout + k) * nout + q] * (mu_abs * a[i * nout + q] - r[i * nout + q]);
            pred += g[i * nout + k] * sk + 0.5 * sk * hs;
        }
    return pred;
}

/* K + mu' I (mu' = mu Tr(K)/m, into *mu_abs) solved against r in place, by Cholesky. */
static nh_status gn_damped_solve(size_t m, double mu, double *K, double *r, double *mu_abs, const char *func) {
    double tr = 0;
    for (size_t i = 0; i < m; i++) tr += K[i * m + i];
    *mu_abs = mu * tr / (double)m;
    for (size_t i = 0; i < m; i++) K[i * m + i] += *mu_abs;
    lapack_int info = tr > 0 && isfinite(tr)
                          ? LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', (lapack_int)m, 1, K, (lapack_int)m, r, 1)
                          : 1;
    if (info != 0)
        return nh__fail(NH_ENUMERIC, func, "K + mu I (NTK Gram %zu x %zu, mu' = %g) is not positive "
                        "definite (leading minor %d): the Jacobian has dependent rows; use mu > 0",
                        m, m, *mu_abs, (int)info);
    return NH_OK;
}

/* delta[P_B] = the step; *mu_abs = the damping added to K's diagonal;
 * *pred (if pred) = the loss the model predicts after the step. */
static nh_status gn_solve(nh_curv *c, double mu, double *delta, double *mu_abs, double *pred, const char *func) {
    const nh_net *net = nh_curv_net(c);
    const size_t n = nh_curv_nsamples(c), nout = nh_net_widths(net)[nh_net_depth(net)];
    int ok = 1;
    const size_t m = nh__mul(n, nout, &ok), mm = nh__mul(m, m, &ok);
    const size_t words = nh__add(nh__add(mm, nh__mul(m, 3, &ok), &ok), nh__mul(m, nout, &ok), &ok);
    NH_TRY(nh__check_bytes(ok && nh__fits_int(m), nh__mul(words, sizeof(double), &ok), func,
                           "the NTK Gram and the residual"));
    double *K = nh__malloc(words * sizeof *K);
    if (!K) return nh__fail(NH_ENOMEM, func, "out of memory (the NTK Gram, %zu x %zu)", m, m);
    double *r = K + mm, *a = r + m, *g = a + m, *hc = g + m;
    nh_status st = gn_residual(c, n, nout, hc, r, func);
    if (st == NH_OK) st = nh_curv_ntk(c, K);
    if (st == NH_OK) {
        memcpy(a, r, m * sizeof *a);
        st = gn_damped_solve(m, mu, K, a, mu_abs, func);
    }
    if (st == NH_OK) st = nh_curv_vjp(c, a, delta);
    if (st == NH_OK && pred) *pred = gn_predict(c, n, nout, r, a, *mu_abs, g, hc);
    free(K);
    if (st != NH_OK) return st;
    const size_t PB = nh_curv_dim(c);
    for (size_t p = 0; p < PB; p++) delta[p] = -delta[p];
    size_t first = 0, bad = nh__count_nonfinite(delta, PB, &first);
    if (bad) return nh__fail(NH_ENUMERIC, func, "the step has %zu non-finite entries (first at %zu)", bad, first);
    return NH_OK;
}

static nh_status gn_check_mu(double mu, const char *func) {
    if (!(mu >= 0) || !isfinite(mu)) return nh__fail(NH_EINVAL, func, "mu must be finite and >= 0 (got %g)", mu);
    return NH_OK;
}

nh_status nh_curv_gn_delta(nh_curv *c, double mu, double *delta) {
    if (!c || !delta) NH_FAIL(NH_EINVAL, "NULL argument");
    NH_TRY(gn_check_mu(mu, __func__));
    double mu_abs = 0;
    return gn_solve(c, mu, delta, &mu_abs, NULL, __func__);
}

/* theta[selected entries] += delta (the selection's tensors in theta order,
 * as the products gather them). */
static void gn_apply(const nh_curv *c, double *theta, const double *delta) {
    const nh_net *net = nh_curv_net(c);
    const size_t *sel = NULL;
    const size_t ns = nh_curv_selection(c, &sel);
    if (!ns) {
        const size_t P = nh_net_nparams(net);
        for (size_t p = 0; p < P; p++) theta[p] += delta[p];
        return;
    }
    size_t pos = 0;
    for (size_t t = 0; t < ns; t++) {
        size_t off = 0, len = 0;
        nh_net_tensor(net, sel[t], NULL, &off, &len); /* cannot fail: the selection was checked */
        for (size_t k = 0; k < len; k++) theta[off + k] += delta[pos++];
    }
}

nh_status nh_curv_gn_step(nh_curv *c, nh_net *net, double mu, nh_gn_info *info) {
    if (!c || !net) NH_FAIL(NH_EINVAL, "NULL argument");
    if (nh_curv_net(c) != net) NH_FAIL(NH_EINVAL, "the context is bound to another network");
    NH_TRY(gn_check_mu(mu, __func__));
    const size_t P = nh_net_nparams(net), PB = nh_curv_dim(c);
    int ok = 1;
    NH_TRY(nh__check_bytes(ok, nh__mul(nh__add(P, PB, &ok), sizeof(double), &ok), __func__, "the step and theta copy"));
    double *save = nh__malloc((P + PB) * sizeof *save);
    if (!save) NH_FAIL(NH_ENOMEM, "out of memory (the step, %zu doubles)", P + PB);
    double *delta = save + P, mu_abs = 0, pred = 0;
    const double loss0 = nh_curv_loss(c);
    nh_status st = gn_solve(c, mu, delta, &mu_abs, &pred, __func__);
    if (st != NH_OK) { free(save); return st; }
    double *theta = nh_net_params(net);
    memcpy(save, theta, P * sizeof *save);
    gn_apply(c, theta, delta);
    nh_status s1 = nh_curv_refresh(c);
    const double loss = nh_curv_loss(c);
    /* Accept only a finite loss that did not rise (Levenberg-Marquardt: the
     * caller raises mu after a refusal); else theta is restored bit for bit. */
    const int accepted = s1 == NH_OK && loss <= loss0;
    if (!accepted) {
        memcpy(theta, save, P * sizeof *save);
        st = nh_curv_refresh(c);
        if (st == NH_OK && s1 == NH_ENOMEM) st = s1; /* a real error, not the loss */
    }
    if (info) {
        double s = 0;
        for (size_t p = 0; p < PB; p++) s += delta[p] * delta[p];
        *info = (nh_gn_info){loss0, accepted ? loss : loss0, isfinite(loss) ? loss : INFINITY, pred, sqrt(s), mu_abs,
                             accepted};
    }
    free(save);
    return st;
}
