/* ntkhess/theory.h -- infinite-width theory: Gaussian expectations, kernels, predictions (libntkhess).
 * Conventions: see ntkhess.h and docs/conventions.md. */
#ifndef NTKHESS_THEORY_H
#define NTKHESS_THEORY_H

#include "ntkhess/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------- Gaussian expectations */

/* Largest number of Gauss-Hermite nodes per axis accepted anywhere. */
#define NH_GAUSS_NQ_MAX 4096

/* Probabilists' Gauss-Hermite rule: E[h(z)], z ~ N(0,1), is approximated by
 * sum_i w[i] h(z[i]), exactly for polynomials of degree <= 2 nq - 1.  Nodes by
 * Golub-Welsch (LAPACK dstev on the Jacobi matrix), polished by one Newton
 * step; weights are the squared first eigenvector components, evaluated from
 * the Hermite recurrence so that the tiny outer weights keep their relative
 * accuracy.  Nodes ascending and exactly symmetric (z[nq-1-i] = -z[i]);
 * weights sum to 1.  z and w: caller-owned arrays of nq doubles.
 * Errors: NH_EINVAL (NULL, nq outside 1..NH_GAUSS_NQ_MAX), NH_ENOMEM,
 * NH_ELAPACK. */
NH_API nh_status nh_gauss_hermite(size_t nq, double *z, double *w);

/* Moments of a centred Gaussian pair (u, u') with covariance
 * [[k11, k12], [k12, k22]], s = sigma and sK its K-th derivative. */
typedef struct nh_gmoments {
    double e00; /* E[s(u)   s(u')  ]  (Sigma without beta^2)          */
    double e11; /* E[s'(u)  s'(u') ]  (Sigma-dot)                     */
    double e22; /* E[s''(u) s''(u')]  (Sigma-ddot)                    */
    double e20; /* E[s''(u) s(u')  ]                                  */
    double e02; /* E[s(u)   s''(u')] = e20 with u and u' swapped      */
    double e31; /* E[s'''(u) s'(u')]                                  */
    double e13; /* E[s'(u) s'''(u')] = e31 with u and u' swapped      */
} nh_gmoments;

/* A quadrature rule bound to an activation: read-only after creation, so
 * one object may be shared by any number of threads. */
typedef struct nh_gauss nh_gauss;

/* Create a rule of nq nodes per axis for act.  exact != 0 uses closed forms
 * where they exist (erf: arcsine kernel and its covariance derivatives;
 * relu: arc-cosine kernels of degrees 1 and 0, second-order moments 0;
 * leaky_relu at its default slope a: (1-a) relu + a x; sin; identity) and
 * quadrature otherwise; exact == 0 always uses
 * quadrature (for tests).  Cost O(nq^2).  Free with nh_gauss_free.
 * Errors: NH_EINVAL (NULL out, unknown act, nq outside
 * 1..NH_GAUSS_NQ_MAX), NH_ENOMEM, NH_ELAPACK. */
NH_API nh_status nh_gauss_create(nh_act act, size_t nq, int exact, nh_gauss **out);
NH_API void      nh_gauss_free(nh_gauss *g); /* NULL-safe */
NH_API size_t    nh_gauss_nq(const nh_gauss *g);

/* Default nodes per axis for act when variances are at most kmax: the
 * moments of the smooth activations then agree with nq = 1600 to ~1e-13.
 * The error decays like exp(-c sqrt(nq / kmax)) (c set by the activation's
 * strip of analyticity), so nq = ceil(per * kmax) with a measured per:
 * softplus/nsoftplus 45, sigmoid 48, silu 60, gelu 75, erf 100, tanh 220,
 * arctan 400, sin 10 (the activation table, src/core/act.c); at least 24, at most
 * NH_GAUSS_NQ_MAX.  identity: 4; relu, leaky_relu: 256 (kinks: algebraic
 * convergence only; their closed forms are the default). */
NH_API size_t nh_gauss_default_nq(nh_act act, double kmax);

/* All seven moments at once, one pass over a pruned tensor grid (nodes with
 * w_i w_j < 1e-30 dropped) through the Cholesky map
 *   u = sqrt(k11) z1,  u' = (k12/sqrt(k11)) z1 + sqrt(k22 - k12^2/k11) z2,
 * evaluating sigma..sigma''' once per node.  Valid for singular covariances
 * (x = x'): k22 - k12^2/k11 within 8 ulps of 0 (either sign) is taken as 0,
 * and k11 = 0 is handled.  Cost O(nq) to O(nq^2) activation evaluations.
 * Errors: NH_EINVAL (NULL; k11 < 0, k22 < 0 or |k12| > sqrt(k11 k22)
 * (1 + 1e-8)), NH_ENONFINITE. */
NH_API nh_status nh_gauss_moments(const nh_gauss *g, double k11, double k12, double k22,
                                  nh_gmoments *m);

/* out[d] = E[s_d(u)], u ~ N(0, k), d = 0..3 (sigma and its derivatives).
 * Errors: NH_EINVAL (NULL, k < 0), NH_ENONFINITE. */
NH_API nh_status nh_gauss_mean(const nh_gauss *g, double k, double out[4]);

/* ------------------------------------------------- infinite-width kernels */

/* The kernels of the formula sheet, Sec. 2, in the order of the output
 * arrays.  Argument order matters for PHI and LAMBDA:
 *   PHI(x,x') = lim E[g(x) f(x')],  LAMBDA(x,x') = lim grad g(x) . grad f(x'),
 * with g = Tr Hess_theta f.  The others are symmetric.  SIGMADOT and
 * SIGMADDOT at layer l are expectations under Sigma(l-1) (sheet Sec. 1);
 * at l = 1 they are undefined and returned as 0. */
typedef enum nh_kernel {
    NH_K_SIGMA = 0, /* Sigma     = lim E[f(x) f(x')]                        */
    NH_K_SIGMADOT,  /* Sigma-dot = E[s'(u) s'(u')], u ~ Sigma(l-1)          */
    NH_K_SIGMADDOT, /* Sigma-ddot = E[s''(u) s''(u')]                       */
    NH_K_THETA,     /* NTK                                                  */
    NH_K_UPSILON,   /* lim Tr(H f(x) H f(x'))                               */
    NH_K_PHI,       /* lim E[g(x) f(x')]            (not symmetric)         */
    NH_K_XI,        /* lim E[g(x) g(x')]                                    */
    NH_K_LAMBDA,    /* lim grad g(x) . grad f(x')   (not symmetric)         */
    NH_K_COUNT
} nh_kernel;

/* "sigma", "sigmadot", "sigmaddot", "theta", "upsilon", "phi", "xi",
 * "lambda"; "unknown" outside the enum. */
NH_API const char *nh_kernel_name(nh_kernel k);

typedef struct nh_kernel_opts {
    nh_act act;   /* default NH_ACT_SOFTPLUS                                 */
    size_t depth; /* L >= 1, number of weight layers; default 2              */
    double beta;  /* bias scale, finite; default 0.1                         */
    /* Engine for the Gaussian moments.  0 (default): closed forms where
     * they exist (see exact), relu and leaky_relu (kinks) by tensor quadrature with
     * nh_gauss_default_nq, every other activation by Mehler's Hermite
     * series E[f(u) h(u')] = sum_n rho^n a_n b_n with per-input
     * coefficients (1-D Gauss-Hermite, rule doubled until each series'
     * tail is below 1e-8 of its norm: truncation <= 1e-16 relative), so a
     * pair costs O(100) flops; agrees with tensor quadrature at large nq
     * to ~1e-15.  nq > 0 (<= NH_GAUSS_NQ_MAX): tensor Gauss-Hermite with
     * nq nodes per axis at every layer (nh_gauss_moments), the reference
     * for convergence studies. */
    size_t nq;
    int    exact; /* closed forms for erf, relu, leaky_relu, sin, identity; default 1 */
} nh_kernel_opts;

NH_API nh_kernel_opts nh_kernel_opts_default(void);

/* Every kernel at every layer for the two inputs x0 = x and x1 = xp
 * (n0 doubles each):
 *   out[((l-1) * NH_K_COUNT + k) * 4 + 2 a + b] = K^(l)(x_a, x_b)
 * for l = 1..depth, k < NH_K_COUNT, a, b in {0, 1}; out holds
 * depth * NH_K_COUNT * 4 doubles, caller-owned.  Layer 1: Sigma = Theta =
 * x.x'/n0 + beta^2, the second-order kernels 0.
 * Errors: NH_EINVAL (NULL, n0 = 0, depth = 0, bad opts), NH_ENONFINITE
 * (x, xp or beta not finite, or a kernel overflows), NH_ETOOLARGE,
 * NH_ENOMEM, NH_ELAPACK. */
NH_API nh_status nh_kernels_pair(const nh_kernel_opts *opts, size_t n0, const double *x,
                                 const double *xp, double *out);

/* Gram matrices at depth L = opts->depth of the n inputs X[n x n0]
 * (row-major): for each k with out[k] != NULL, out[k] is a caller-owned
 * n x n row-major array that receives K^(L)(x_i, x_j) at [i*n + j]
 * (out has NH_K_COUNT entries; NULL for kernels not wanted, at least one
 * non-NULL).  All kernels come from one pass: the diagonal chain of each
 * input once, then each pair i < j once, giving [i][j] and [j][i] (Phi and
 * Lambda by the transposition rule, not symmetrized).  OpenMP-parallel over
 * pairs; the result does not depend on the number of threads.  Workspace
 * O(n depth) plus, with the series engine, n * 4 * K doubles per layer
 * (K coefficients per function, at Sigma(x,x) ~ 1.3: ~120 for softplus,
 * ~560 tanh, ~1000 arctan; K grows linearly with Sigma(x,x)).  Cost with
 * the defaults (2 cores, n = 1024, depth 4): 0.3-0.4 s for softplus,
 * 0.7 s tanh, 2.4 s arctan.  Entries of
 * the pair function and the Gram matrix for the same inputs agree to
 * ~1e-15 (the series rule size depends on the largest Sigma(x,x)).
 * Errors: NH_EINVAL (NULL, n or n0 = 0, depth = 0, bad opts, all outputs
 * NULL), NH_ENONFINITE (X or beta not finite, or a kernel overflows),
 * NH_ETOOLARGE (workspace over the memory limit), NH_ENOMEM, NH_ELAPACK. */
NH_API nh_status nh_kernels_gram(const nh_kernel_opts *opts, size_t n, size_t n0,
                                 const double *X, double *const out[NH_K_COUNT]);



/* ------------------------------------------------------------ predictions */

/* Limiting Gram matrices of the N training points, each N x N, row-major,
 * entry [i][j] = K(x_i, x_j), caller-owned and read only.  The network Gram
 * matrices are block-diagonal over the n_L outputs (Theta~_{ik,jm} =
 * Theta(x_i,x_j) delta_km): only the N x N scalar kernels are passed, the
 * N n_L square is never formed (except the HC Theta~ product of softmax CE).
 * Each function lists the members it reads; the others may be NULL.
 *   theta   NTK Theta, symmetric PSD.
 *   lambda  Lambda(x_i,x_j) = lim grad g(x_i) . grad f(x_j)   (not symmetric)
 *   upsilon Upsilon, symmetric.
 *   phi     Phi(x_i,x_j) = lim E[g(x_i) f(x_j)]                 (not symmetric)
 *   xi      Xi = lim E[g(x_i) g(x_j)], symmetric.
 *   sigma   Sigma = lim E[f(x_i) f(x_j)], symmetric.
 * Symmetric inputs must be symmetric within psd_tol * max|K| (NH_EINVAL);
 * every entry read must be finite (NH_ENONFINITE). */
typedef struct nh_grams {
    size_t        n; /* N >= 1 */
    const double *theta;
    const double *lambda;
    const double *upsilon;
    const double *phi;
    const double *xi;
    const double *sigma;
} nh_grams;

typedef struct nh_predict_opts {
    /* Eigenvalues of a matrix that must be PSD (Theta, the covariance of
     * (Y(0), G(0))) that are >= -psd_tol * max|eigenvalue| are clipped to 0
     * (counted in nh_predict_diag); more negative ones give NH_EINVAL.
     * Also the relative symmetry tolerance.  Default 1e-8; INFINITY clips
     * everything. */
    double   psd_tol;
    /* Dormand-Prince 5(4) error control, per component (max norm):
     * |err| <= atol + rtol |value|.  Defaults 1e-10 and 1e-12. */
    double   rtol, atol;
    double   h0;        /* first step; 0 = automatic (default) */
    size_t   max_steps; /* accepted+rejected steps per integration; default 10^7 */
    size_t   nsamples;  /* draws for nh_predict_sample, >= 2; default 1000 */
    uint64_t seed;      /* nh_rng seed of the draws; default 0 */
    /* Draws integrated together as one ODE (one step size for the batch):
     * results depend on it only at the rtol level.  0 = default 32. */
    size_t   batch;
} nh_predict_opts;

NH_API nh_predict_opts nh_predict_opts_default(void);

/* Predicted moments at one time.  Index k-1 holds the k-th moment. */
typedef struct nh_moments {
    double tr_i[4]; /* Tr(I^k) = Tr((HC Theta~)^k)                         */
    double tr_s[4]; /* Tr(S), Tr(S^2); [2], [3] are 0 (vanish in the limit) */
    double tr_h[4]; /* Tr(H^k) = Tr(I^k) + Tr(S^k)                         */
} nh_moments;

/* Diagnostics; every function that takes one zeroes it first (NULL = not
 * wanted).  The eigenvalue fields are set only by the functions that
 * decompose the matrix, 0 otherwise. */
typedef struct nh_predict_diag {
    size_t theta_clipped; /* negative eigenvalues of Theta raised to 0      */
    double theta_eig_min; /* smallest eigenvalue of Theta before clipping   */
    double theta_eig_max;
    size_t cov_clipped;   /* same, 2N x 2N covariance of (Y(0), G(0))       */
    double cov_eig_min;
    size_t ode_steps;     /* accepted ODE steps, summed over integrations   */
    size_t ode_rejected;  /* rejected ODE steps                             */
    size_t ode_evals;     /* right-hand-side evaluations                    */
} nh_predict_diag;

/* Times: nt >= 1 values t[0] < t[1] < ... (strictly increasing, finite,
 * t[0] >= 0; NH_EINVAL otherwise), in gradient-flow time of
 * C = (1/N) sum_i c_i (so the MSE relaxes as e^{-t Theta~/N}).
 * Per-time outputs: Y and G arrays are nt x N x nout (time-major, then the
 * usual sample-major N x nout), mom is nt entries; each may be NULL. */

/* Corollary 1 (corrected, formula sheet Sec. 3 item 9), one draw, MSE loss
 * C = (1/2N)||Y - Y*||^2.  Reads theta, lambda, upsilon.  Ystar, Y0, G0:
 * N x nout.  With E = e^{-t Theta/N} and u = Y* - Y(0), per output column:
 *   Y(t) = Y* - E u,  G(t) = G(0) + Lambda phi(Theta) u,
 *   Tr S = G(t)^T grad C(Y(t)) = -(1/N) G(0)^T E u - (1/N) u^T phi Lambda^T E u,
 *   Tr S^2 = (1/N^2) u^T E Upsilon E u,  Tr I^k = nout Tr(Theta^k) / N^k,
 * where phi(l) = (1 - e^{-t l/N})/l (-> t/N as l -> 0) replaces
 * (Id - E) Theta^{-1}: one eigendecomposition of Theta, no inverse, valid
 * for singular Theta.  Negative eigenvalues are clipped (see psd_tol). */
NH_API nh_status nh_predict_mse(const nh_grams *g, size_t nout,
                                const double *Ystar, const double *Y0,
                                const double *G0, size_t nt, const double *t,
                                const nh_predict_opts *opts, double *Y,
                                double *G, nh_moments *mom,
                                nh_predict_diag *diag);

/* Corollary 1 in expectation over the initialization (closed form), MSE.
 * Reads theta, lambda, upsilon, phi, sigma.  With M = nout Sigma + Y* Y*^T
 * (N x N, Y* Y*^T = sum over output columns):
 *   E[Tr S]   = -(1/N) Tr(phi(Theta) Lambda^T E M) + (nout/N) Tr(E Phi^T),
 *   E[Tr S^2] = (1/N^2) Tr(E Upsilon E M),  Tr I^k deterministic.
 * At t = 0, E[Tr S] = (nout/N) Tr Phi (sheet item 10).  mean: nt entries. */
NH_API nh_status nh_predict_mse_expect(const nh_grams *g, size_t nout,
                                       const double *Ystar, size_t nt,
                                       const double *t,
                                       const nh_predict_opts *opts,
                                       nh_moments *mean, nh_predict_diag *diag);

/* Theorem 1, one draw, any loss: integrates dY/dt = -Theta~ grad C(Y),
 * dG/dt = -Lambda~ grad C(Y) from (Y0, G0) (N x nout each) with an adaptive
 * Dormand-Prince 5(4) method that lands exactly on every requested time.
 * Reads theta, lambda, upsilon.  T: targets as nh_loss_check_targets wants
 * (N x nout for MSE/BCE, N labels for CE).  Moments per time:
 *   Tr I^k = Tr((HC(Y) Theta~)^k), Tr S = G^T grad C, Tr S^2 =
 *   sum over outputs gradC^T Upsilon gradC.
 * Errors: NH_ENUMERIC (step-size underflow or non-finite state, message
 * gives t), NH_EMAXITER (max_steps), NH_EINVAL/NH_ENONFINITE (inputs). */
NH_API nh_status nh_predict_ode(const nh_grams *g, nh_loss loss, size_t nout,
                                const double *T, const double *Y0,
                                const double *G0, size_t nt, const double *t,
                                const nh_predict_opts *opts, double *Y,
                                double *G, nh_moments *mom,
                                nh_predict_diag *diag);

/* Draws of the initial pair: per draw and output column, the 2N-vector
 * (Y(0), G(0)) is centred Gaussian with covariance
 *   [[Sigma, Phi^T], [Phi, Xi]],  i.e. E[Y_i Y_j] = Sigma_ij,
 *   E[G_i Y_j] = Phi_ij = Phi(x_i, x_j),  E[G_i G_j] = Xi_ij,
 * independent across output columns and draws.  The covariance is
 * eigendecomposed once (negative eigenvalues clipped, see psd_tol) and each
 * column is F z with F = V diag(sqrt(max(l,0))), z from nh_rng_normal of an
 * nh_rng seeded with opts->seed; order: draw s = 0..m-1, column k =
 * 0..nout-1, 2N normals each.  Reads phi, xi, sigma.  Y0, G0: m x N x nout. */
NH_API nh_status nh_predict_draw_init(const nh_grams *g, size_t nout, size_t m,
                                      const nh_predict_opts *opts, double *Y0,
                                      double *G0, nh_predict_diag *diag);

/* Expectation over the initialization by sampling: opts->nsamples draws of
 * nh_predict_draw_init (same seed, same draws), each propagated by
 * nh_predict_mse (MSE) or by the ODE of nh_predict_ode (BCE, CE; in batches
 * of opts->batch draws), moments averaged.  mean and se (standard error of
 * the mean, sample SD / sqrt(M)) have nt entries each; se may be NULL.
 * Reads all six Gram matrices. */
NH_API nh_status nh_predict_sample(const nh_grams *g, nh_loss loss,
                                   size_t nout, const double *T, size_t nt,
                                   const double *t, const nh_predict_opts *opts,
                                   nh_moments *mean, nh_moments *se,
                                   nh_predict_diag *diag);

/* Limiting spectrum of I at outputs Y (N x nout): the N nout eigenvalues,
 * ascending, of HC(Y)^{1/2} Theta~ HC(Y)^{1/2} (the non-zero eigenvalues of
 * I are among them).  Per class blocks for MSE/BCE; the full N nout square
 * for softmax CE.  Reads theta.  eig: N nout doubles.  Theta is used as
 * given (not clipped), so tiny negative values may appear. */
NH_API nh_status nh_predict_spectrum_i(const nh_grams *g, nh_loss loss,
                                       size_t nout, const double *T,
                                       const double *Y, double *eig);

/* Mean-field limit at initialization (Sec. 3.3, sheet Sec. 4): with
 * gradC = grad C(Y) (Y = NULL means Y = 0, so gradC = -Y* / N for the MSE),
 *   (1/sqrt(w)) Tr H -> N(0, var_tr_h),  var_tr_h  = sum_k gradC_k^T Xi gradC_k,
 *   (1/w) Tr H^2 -> lim_tr_h2,             lim_tr_h2 = sum_k gradC_k^T Upsilon gradC_k.
 * Reads xi, upsilon.  Either output may be NULL. */
NH_API nh_status nh_predict_meanfield(const nh_grams *g, nh_loss loss,
                                      size_t nout, const double *T,
                                      const double *Y, double *var_tr_h,
                                      double *lim_tr_h2);

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_THEORY_H */
