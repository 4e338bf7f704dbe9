/* ntkhess/est.h -- spectral toolkit: traces, orthogonality, Lanczos, SLQ, Rayleigh quotients, slices (libntkhess).
 * Conventions: see ntkhess.h and docs/conventions.md. */
#ifndef NTKHESS_EST_H
#define NTKHESS_EST_H

#include "ntkhess/curv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------ spectral toolkit */

/* Which curvature operator: H = I + S (Hessian of the loss), I = J^T HC J
 * (Gauss-Newton), S = sum dC/dY_ik Hess f_k(x_i). */
typedef enum nh_op { NH_OP_H = 0, NH_OP_I, NH_OP_S, NH_OP_COUNT } nh_op;

typedef enum nh_probe {
    NH_PROBE_RADEMACHER = 0, /* entries +-1                                 */
    NH_PROBE_GAUSSIAN,       /* entries iid N(0,1)                          */
    NH_PROBE_COUNT
} nh_probe;

/* ------------------------------------------------------ trace estimation */

typedef enum nh_trace_method {
    /* Hutchinson: Tr(A^k) ~ mean_j v_j^T A^k v_j over M probes, from
     * a1 = A v, a2 = A a1: v^T A v = v.a1, v^T A^2 v = |a1|^2,
     * v^T A^3 v = a1.a2, v^T A^4 v = |a2|^2.  Probe j uses stream
     * first_probe + j.  se = sample SD / sqrt(M) (NaN when M = 1). */
    NH_TRACE_HUTCHINSON = 0,
    /* Hutch++ (Meyer, Musco, Musco, Woodruff 2021): s sketch vectors
     * w_i (streams i = 0..s-1, always the first s streams), Q = orth(A W)
     * (P x s, Householder QR), then
     *   Tr(A^k) = sum_i q_i^T A^k q_i  +  mean_j g_j^T A^k g_j,
     *   g_j = (Id - Q Q^T) v_j, v_j from stream s + first_probe + j.
     * The first part is exact given Q; the second is a Hutchinson mean of
     * M deflated probes whose expectation given Q is exactly the rest of
     * the trace, so the estimate is unbiased and se = SD of the M deflated
     * quadratic forms / sqrt(M) is its standard error conditional on the
     * sketch (which is also the unconditional one: the conditional mean
     * does not depend on Q).  The same Q serves every k (a range sketch of
     * A is a range sketch of A^k).  Splitting the M probes over processes
     * (first_probe) recomputes the same sketch in each. */
    NH_TRACE_HUTCHPP,
    /* Exact: sum over the P unit vectors (P ceil(kmax/2) products), se = 0.
     * For small P and for tests; ignores probes, seed and control. */
    NH_TRACE_EXACT,
    NH_TRACE_METHOD_COUNT
} nh_trace_method;

typedef struct nh_trace_opts {
    nh_trace_method method;   /* default NH_TRACE_HUTCHINSON                */
    nh_probe        probe;    /* default NH_PROBE_RADEMACHER                */
    size_t          nprobes;  /* M >= 1 (Hutch++: deflated probes); 32      */
    size_t          sketch;   /* Hutch++ sketch size s; 0 = M; min(s, P)    */
    size_t          first_probe; /* stream offset j0 of the probes; 0       */
    uint64_t        seed;     /* default 0                                  */
    /* Control variates from the exact parts (default 0 = off):
     *   Tr(I^k) = Tr((HC Theta~)^k) from the NTK Gram (nh_curv_ntk,
     *     nh_ntk_trace_powers: (N n_L)^2 memory, O((N n_L)^3) time),
     *   Tr(S) = G . dC/dY (nh_curv_G).
     * A = I: every k exact, no products.  A = S: k = 1 exact, k >= 2 plain.
     * A = H: k = 1 exact (Tr I + Tr S); for k >= 2 the estimate is
     *   Tr(I^k) + E[v^T H^k v - v^T I^k v],
     * with the remainder computed without cancellation from I v, S v
     * (v^T(H^2 - I^2)v = Sv.(Hv + Iv), ...); its variance is that of the
     * mixed and S terms only, small when I dominates and I S ~ 0.  Costs
     * 1 product per probe for kmax <= 2, 3 for kmax <= 4 (isvp, hvp, ivp). */
    int             control;
} nh_trace_opts;

NH_API nh_trace_opts nh_trace_opts_default(void);

typedef struct nh_trace_result {
    double est[4];    /* est[k-1] ~ Tr(A^k), k = 1..kmax; 0 beyond kmax    */
    double se[4];     /* standard errors; 0 when exact, NaN when M = 1      */
    size_t nprobes;   /* quadratic forms averaged (M; P for EXACT; 0 when
                         every requested k was exact)                       */
    size_t nproducts; /* operator products used                             */
} nh_trace_result;

/* Tr(A^k), k = 1..kmax (1 <= kmax <= 4), for A = op, with standard errors.
 * opts NULL = nh_trace_opts_default().
 * Products: Hutchinson M ceil(kmax/2); Hutch++ s + (s + M) ceil(kmax/2);
 * exact P ceil(kmax/2); with control for A = H, 1 or 3 per quadratic form
 * (as above) plus s for the Hutch++ sketch.
 * Memory: 3 P doubles (6 P with control), + s P for Hutch++.
 * Errors: NH_EINVAL (NULL, op, kmax, M < 1, method or probe out of range),
 * NH_ETOOLARGE, NH_ENOMEM, NH_ELAPACK (QR), errors of the products. */
NH_API nh_status nh_curv_trace(nh_curv *c, nh_op op, int kmax,
                               const nh_trace_opts *opts,
                               nh_trace_result *res);

/* Tr(H^k) as nh_curv_trace(c, NH_OP_H, kmax, opts, resH) and the exact
 * Tr(I^k) as nh_curv_trace(c, NH_OP_I, kmax, control on, resI) (from the
 * NTK Gram; se 0, nproducts 0), in one call: with opts->control (and a
 * method other than EXACT) the H estimate already builds the NTK Gram for
 * its control variate, and its Tr(I^k) is handed out instead of being
 * built a second time (fig1's records).  Same numbers, bit for bit, as the
 * two calls.  Errors: as nh_curv_trace. */
NH_API nh_status nh_curv_trace_hi(nh_curv *c, int kmax,
                                  const nh_trace_opts *opts,
                                  nh_trace_result *resH,
                                  nh_trace_result *resI);

/* --------------------------------------------- orthogonality of I and S */

typedef struct nh_ortho_result {
    double is_fro;    /* ||I S||_F, exact                                  */
    double i_fro;     /* ||I||_F = sqrt(Tr((HC Theta~)^2)), exact          */
    double s_fro;     /* ||S||_F = sqrt(Tr(S^2)), estimated per opts       */
    double s_fro_se;  /* its SE, se(Tr S^2) / (2 ||S||_F); 0 when exact    */
    double ratio;     /* is_fro / (i_fro s_fro): <= 1 up to the error of
                         the s_fro estimate; NaN if 0/0                    */
    double ratio_se;  /* ratio * s_fro_se / s_fro (delta method)           */
    double tr_s2, tr_s2_se; /* Tr(S^2) and its SE, as estimated            */
    size_t nproducts; /* S products + J^T products + those of Tr(S^2)      */
} nh_ortho_result;

/* Mutual orthogonality of I and S (Proposition 5: ||I S||_F -> 0 with the
 * width while ||I||_F, ||S||_F stay O(1)).  With M = HC Theta~ HC
 * (N n_L square, PSD) = U diag(l) U^T,
 *   ||I S||_F^2 = Tr(S I I S) = Tr(S J^T M J S) = sum_j l_j |S J^T u_j|^2,
 * i.e. one vjp and one svp per eigenpair with l_j > 64 eps max(l) (the
 * others contribute below rounding): at most 2 N n_L products, memory
 * O((N n_L)^2 + P).  Tr(S^2) = ||S||_F^2 is estimated with nh_curv_trace
 * (op S, kmax 2) under opts (NULL = default; NH_TRACE_EXACT for P products
 * and an exact value).
 * Errors: as nh_curv_trace, plus those of nh_curv_ntk. */
NH_API nh_status nh_curv_orthogonality(nh_curv *c, const nh_trace_opts *opts,
                                       nh_ortho_result *res);

/* ------------------------------------------------------------- Lanczos */

typedef enum nh_which {
    NH_WHICH_LA = 0, /* largest algebraic: values descending               */
    NH_WHICH_SA,     /* smallest algebraic: values ascending               */
    NH_WHICH_LM,     /* largest magnitude: |values| descending             */
    NH_WHICH_COUNT
} nh_which;

typedef struct nh_lanczos_opts {
    nh_which which;    /* default NH_WHICH_LA                              */
    size_t   ncv;      /* basis size m: 0 = min(P, max(2k + 1, k + 20));
                          must be >= k + 1 unless it equals P             */
    double   tol;      /* converged when the Ritz residual estimate
                          |beta_m y_m| <= tol * max|Ritz value|; 1e-10      */
    size_t   maxprod;  /* stop after the restart cycle in which the Lanczos
                          products reach maxprod; 0 = 100 m                */
    uint64_t seed;     /* start vector: Gaussian, stream 0; after a
                          breakdown, fresh vectors from streams 1, 2, ...  */
    int      require;  /* 1 (default): NH_EMAXITER unless all k converged */
    const double *start; /* P entries or NULL (default): the start vector
                          (normalized here; NH_EINVAL if zero or non-finite)
                          instead of the seeded Gaussian, for warm starts
                          from a previous eigenvector                      */
} nh_lanczos_opts;

NH_API nh_lanczos_opts nh_lanczos_opts_default(void);

typedef struct nh_lanczos_info {
    size_t nconv;       /* wanted pairs that met tol (<= k)                */
    size_t nproducts;   /* Lanczos products + one per residual computed    */
    size_t nrestarts;   /* thick restarts                                  */
    size_t nbreakdowns; /* invariant subspaces found (then continued with a
                           fresh random vector orthogonal to the basis, so
                           repeated eigenvalues are found with multiplicity) */
    double anorm;       /* max |Ritz value| seen: an estimate of ||A||_2   */
} nh_lanczos_info;

/* The k wanted eigenpairs of A = op by thick-restart Lanczos (Wu & Simon
 * 2000) with full reorthogonalization: the three-term recurrence, then
 * classical Gram-Schmidt against the whole basis, repeated once when the
 * DGKS criterion asks (norm dropped below 1/sqrt(2)); O(m^2 P) flops per
 * cycle besides the products.
 * The projected matrix is tridiagonal, plus an arrowhead after restarts, so
 * its eigenpairs come from LAPACK dsyevd on the m x m projection; restarts
 * keep k + (m - k)/2 Ritz vectors.  Memory (m + 2) P + m min(P, 2048)
 * doubles.  Products: one per Lanczos step (m in the first cycle, then
 * m - k - (m - k)/2 per restarted cycle), plus k for the residuals.
 *   evals[k]   eigenvalues, ordered as `which` says (required);
 *   evecs[k*P] unit eigenvectors as rows (row-major), or NULL;
 *   resid[k]   explicit residuals ||A x - lambda x||, one extra product
 *              each, or NULL (then not computed).
 * 1 <= k <= P (NH_EINVAL otherwise: a k-th eigenvalue must exist).  When not
 * every pair converged within maxprod, the best approximations are still
 * returned, info->nconv < k, and the status is NH_EMAXITER if
 * opts->require, NH_OK otherwise.  info may be NULL.
 * Errors: NH_EINVAL, NH_ETOOLARGE, NH_ENOMEM, NH_ELAPACK, NH_EMAXITER. */
NH_API nh_status nh_curv_lanczos(nh_curv *c, nh_op op, size_t k,
                                 const nh_lanczos_opts *opts, double *evals,
                                 double *evecs, double *resid,
                                 nh_lanczos_info *info);

/* ------------------------------------------ stochastic Lanczos quadrature */

typedef struct nh_slq_opts {
    size_t   nvec;   /* M random start vectors, >= 1; default 16           */
    size_t   nsteps; /* m Lanczos steps per vector, 1 <= m <= P - ndeflate;
                        default 30                                         */
    nh_probe probe;  /* start vector j: probe from stream j, normalized     */
    uint64_t seed;
    /* Deflation (default 0 and NULL: none).  deflate: ndeflate x P rows,
     * orthonormal (to 1e-6; NH_EINVAL otherwise), 0 <= ndeflate < P, e.g.
     * the top-k eigenvectors from nh_curv_lanczos.  SLQ then runs on the
     * operator restricted to the orthogonal complement, with P_perp = Id -
     * D^T D: start vectors P_perp z / |P_perp z|, every product
     * P_perp A P_perp v, and the Lanczos basis reorthogonalized against D
     * too.  The weights sum to 1 over the complement: nodes, weights,
     * density and moments describe the P - ndeflate remaining eigenvalues
     * (the bulk), moments[k-1] ~ Tr_perp(A^k) / (P - ndeflate).  When the
     * rows of D are eigenvectors with eigenvalues lambda_1..lambda_q
     * (q = ndeflate), the bulk is exactly the rest of the spectrum and
     *   Tr(A^k) = sum_i lambda_i^k + (P - q) moments[k-1]
     * up to the SLQ error (moments_se).  With approximate eigenvectors
     * (Ritz residuals r_i) the deflated part leaks O(r_i) into the bulk.
     * Gaussian probes make the projected start vectors exactly uniform on
     * the complement's sphere; projected Rademacher probes are not of
     * constant norm, a ratio bias of relative order q / (P - q)^2. */
    size_t        ndeflate;
    const double *deflate;
} nh_slq_opts;

NH_API nh_slq_opts nh_slq_opts_default(void);

typedef struct nh_slq_result {
    double moments[4];    /* sum_j w_j theta_j^k ~ Tr(A^k) / P, k = 1..4   */
    double moments_se[4]; /* SD over the M vectors / sqrt(M); NaN if M = 1 */
    size_t nproducts;
    size_t nbreakdowns;   /* vectors whose Krylov space became invariant
                             before m steps (then exact with fewer nodes)  */
} nh_slq_result;

/* Spectral density of A = op by stochastic Lanczos quadrature (Ubaru, Chen,
 * Saad 2017): for each unit start vector u_r, m Lanczos steps with full
 * reorthogonalization, tridiagonal T_r eigenpairs by LAPACK dstev; nodes =
 * Ritz values theta, weights = (first eigenvector components)^2 / M, so all
 * weights sum to 1 and sum_j w_j f(theta_j) ~ Tr f(A) / P (exact in u_r for
 * polynomials of degree <= 2m - 1).
 *   nodes, weights: M*m doubles (vector r at r*m; slots past a breakdown
 *     have node 0 and weight 0), either or both may be NULL;
 *   density[ngrid] at grid[ngrid]: sum_j w_j N(x; theta_j, sigma^2), a
 *     probability density (multiply by P for eigenvalues per unit);
 *     ngrid may be 0 (grid, density unused), else sigma > 0.
 * Reorthogonalization as in nh_curv_lanczos.  Products: M m (fewer after
 * breakdowns), plus O(M m^2 P) flops (O(M m q P) more with q deflated
 * vectors).  Memory: (m + 1) P doubles.  res
 * may be NULL.
 * Errors: NH_EINVAL, NH_ETOOLARGE, NH_ENOMEM, NH_ELAPACK. */
NH_API nh_status nh_curv_slq(nh_curv *c, nh_op op, const nh_slq_opts *opts,
                             double *nodes, double *weights, size_t ngrid,
                             const double *grid, double sigma,
                             double *density, nh_slq_result *res);

/* density[g] = sum_i weights[i] N(grid[g]; nodes[i], sigma^2) over the nn
 * nodes (slots with weight 0 skipped): the broadened density of
 * nh_curv_slq's nodes and weights, for grids chosen after seeing the nodes
 * (no second SLQ run).  Errors: NH_EINVAL (NULL with nn or ngrid > 0,
 * sigma not finite and > 0), NH_ENONFINITE (grid, nodes or weights). */
NH_API nh_status nh_slq_density(size_t nn, const double *nodes, const double *weights, size_t ngrid,
                                const double *grid, double sigma, double *density);

/* ------------------------------------------------------------- eigenspaces */

/* Overlap of g (P entries, not zero) with the span of the k orthonormal rows
 * of U (k x P, orthonormal to 1e-6, else NH_EINVAL; e.g. eigenvectors from
 * nh_curv_lanczos):  *overlap = ||U g|| / ||g|| = ||P_k g|| / ||g|| in
 * [0, 1], and comp[i] = |u_i . g| / ||g|| (comp may be NULL), so that
 * overlap^2 = sum_i comp[i]^2.  1 <= k <= P.  O(k^2 P) flops for the check.
 * Errors: NH_EINVAL (NULL, k, zero g, rows not orthonormal), NH_ENONFINITE,
 * NH_ETOOLARGE, NH_ENOMEM. */
NH_API nh_status nh_subspace_overlap(size_t k, size_t P, const double *U, const double *g, double *overlap,
                                     double *comp);

/* Principal angles between the row spaces of U (k1 x P) and V (k2 x P),
 * 1 <= k1, k2 <= P, rows linearly independent (any basis: each is
 * orthonormalized by Householder QR, LAPACK dgeqrf/dorgqr; NH_EINVAL when a
 * diagonal of R is below 1e-10 of the largest row norm).  angles[min(k1,
 * k2)] in radians, ascending, in [0, pi/2].  With Qa, Qb the orthonormal
 * bases (ka >= kb) and M = Qa Qb^T, the cosines are the singular values of M
 * and the sines those of Qb - M^T Qa (LAPACK dgesvd); an angle below pi/4
 * is taken from its sine, the others from their cosine (Knyazev & Argentati
 * 2002), so small angles keep full relative accuracy instead of the
 * sqrt(eps) of acos near 1.  Memory (max(k1, k2) + 2 min(k1, k2)) P doubles.
 * Errors: NH_EINVAL, NH_ENONFINITE, NH_ETOOLARGE, NH_ENOMEM, NH_ELAPACK. */
NH_API nh_status nh_principal_angles(size_t k1, size_t k2, size_t P, const double *U, const double *V,
                                     double *angles);

/* ---------------------------------------------------- Rayleigh quotients */

/* For nvec vectors V[nvec x P] (rows, any non-zero norm): ri[j] =
 * v^T I v / v^T v and rs[j] = v^T S v / v^T v (the paper's Figure 2),
 * one isvp product per vector.  ri or rs may be NULL.
 * Errors: NH_EINVAL (NULL c or V, both outputs NULL, a zero row),
 * NH_ENONFINITE, NH_ENOMEM. */
NH_API nh_status nh_curv_rayleigh(nh_curv *c, size_t nvec, const double *V,
                                  double *ri, double *rs);

/* ------------------------------------------------------ loss-surface slice */

/* out[i*G + j] = C(theta + a_i u + b_j v) on the G x G grid
 * a_i = R (2i - (G - 1)) / (G - 1), b_j likewise (a = b = 0 when G = 1; for
 * odd G the centre is exactly (0, 0)).  u, v: P-vectors used as given (pass
 * unit vectors, e.g. eigenvectors of I from nh_curv_lanczos).  net must be
 * the network c was created on (its theta is written, then restored bit
 * for bit, and c refreshed, before returning -- also on errors).  A grid
 * point whose loss or outputs are not finite gets +INFINITY.  One forward
 * pass per point.
 * Errors: NH_EINVAL (NULL, G == 0, R < 0 or not finite, net not c's),
 * NH_ENONFINITE (u, v), NH_ENOMEM. */
NH_API nh_status nh_curv_slice(nh_curv *c, nh_net *net, const double *u,
                               const double *v, double R, size_t G,
                               double *out);

/* ------------------------------------------------------------- diagonals
 * diag(H), diag(I), diag(S) (P entries each) of the loss Hessian, exactly or
 * by the Hutchinson estimator (docs/diagonals.md).
 * EXACT: per-sample second derivatives w.r.t. the pre-activations,
 *   diag I from the n_L per-output backward passes (d f/dZ[l]) and HC,
 *   diag S from the recursion Rz_k = M_k^T Rz_{k+1} M_k + diag(sigma'' dC/dA)
 *   (only diagonals, i.e. GEMMs with squared weights, for L <= 3; dense
 *   n_k x n_k matrices per sample for L >= 4), diag H = diag I + diag S.
 *   Cost per sample, in flops (W2 = sum_{l=0}^{L-1} n_l n_{l+1}):
 *     2 n_L sum_{l=1}^{L-1} n_l n_{l+1} + n_L (n_L + 1) sum_{l=1}^{L} n_l + 4 W2
 *     + [L >= 3] 2 n_{L-2} n_{L-1}
 *     + [L >= 4] (2 n_{L-2}^2 n_{L-1} + sum_{k=1}^{L-3} 2 n_{k+1}^2 n_k
 *                 + sum_{k=2}^{L-3} 2 n_k^2 n_{k+1}),
 *   against ~12 W2 per sample for one H v.  se = 0.
 * HUTCHINSON: M Rademacher probes v_j (stream j of seed, as nh_curv_trace),
 *   diag(A) ~ mean_j v_j o (A v_j), se = per-entry sample SD / sqrt(M)
 *   (NaN when M = 1).  One nh_curv_isvp per probe gives H, I and S.
 *   Unbiased; Var = sum_{q != p} A_pq^2 / M per entry.
 * AUTO: EXACT when its cost is at most max_cost H v products, else
 *   HUTCHINSON. */
typedef enum nh_diag_method {
    NH_DIAG_AUTO = 0, NH_DIAG_EXACT, NH_DIAG_HUTCHINSON, NH_DIAG_METHOD_COUNT
} nh_diag_method;

typedef struct nh_diag_opts {
    nh_diag_method method; /* default NH_DIAG_AUTO                          */
    size_t   nprobes;      /* Hutchinson probes M >= 1; default 64            */
    uint64_t seed;         /* default 0                                       */
    double   max_cost;     /* AUTO bound in H v products; default 50          */
} nh_diag_opts;

typedef struct nh_diag_info {
    nh_diag_method method; /* NH_DIAG_EXACT or NH_DIAG_HUTCHINSON, as used    */
    size_t nprobes;        /* probes averaged (0 when exact)                  */
    size_t nproducts;      /* isvp products used (0 when exact)               */
    double exact_flops;    /* the exact method's cost, flops (all samples)    */
    double hvp_flops;      /* one H v's cost by the same count                */
    double exact_cost;     /* exact_flops / hvp_flops, in H v products        */
} nh_diag_info;

NH_API nh_diag_opts nh_diag_opts_default(void);

/* diag[P] = the diagonal of op (H, I or S); se[P] its per-entry standard
 * error (0 when exact; se may be NULL); info may be NULL.  opts NULL =
 * nh_diag_opts_default().  Streams over the context's batches.  With a
 * parameter selection (nh_curv_select) P is nh_curv_dim: the diagonal of the
 * block A_BB (exact: the full diagonals' B entries, + 3 P doubles; Hutchinson:
 * probes on the block).
 * Errors: NH_EINVAL (NULL, op, method, M < 1, max_cost < 0 or NaN),
 * NH_ETOOLARGE / NH_ENOMEM (exact: B (3 n_L w + sum_{l=1}^{L-1} n_l + 3 w)
 * + w^2 (5 w^2 for L >= 4) reals, w = max width, B = rows per batch, + 2 P
 * floats in float32, + 2 P doubles when batched; Hutchinson: 9 P doubles),
 * NH_ENUMERIC (overflow), errors of the products. */
NH_API nh_status nh_curv_diag(nh_curv *c, nh_op op, const nh_diag_opts *opts,
                              double *diag, double *se, nh_diag_info *info);
/* All three at once: D[3 x P] rows diag H, diag I, diag S; SE[3 x P] (may
 * be NULL) likewise; the cost of one nh_curv_diag call. */
NH_API nh_status nh_curv_diag_all(nh_curv *c, const nh_diag_opts *opts,
                                  double *D, double *SE, nh_diag_info *info);

/* ---- mean and standard error: the one rule used by every estimator and
 * command (traces, SLQ moments, sampled predictions, fig1 trials, measure).
 * nh_mean_se: mean of the n values x[i*stride] and the standard error of
 * that mean, sample SD / sqrt(n), in two passes (mean, then the sum of
 * squared deviations ss).  n = 1: the standard error is undefined and se =
 * NaN -- callers report it as missing (CSV "nan", JSON null) and must never
 * take it for divergence; n = 0: mean = se = NaN.  mean or se may be NULL.
 * nh_se_from_ss: the same standard error from ss of n values (e.g. a
 * Welford accumulator), NaN for n < 2; a rounding-negative ss counts as 0. */
NH_API void nh_mean_se(size_t n, const double *x, size_t stride, double *mean, double *se);
NH_API double nh_se_from_ss(double ss, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_EST_H */
