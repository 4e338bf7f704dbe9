/* ntkhess/curv.h -- finite-width curvature: H v, I v, S v, NTK, G, dense matrices, training steps (libntkhess).
 * Conventions: see ntkhess.h and docs/conventions.md. */
#ifndef NTKHESS_CURV_H
#define NTKHESS_CURV_H

#include "ntkhess/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* -------------------------------------------------------------- curvature */

/* A curvature context binds a network (borrowed, must outlive it), a batch
 * X[n x n_0] and targets (copied) and a loss, and caches the forward and
 * backward passes at the current theta.  After theta changes, call
 * nh_curv_refresh().  All products below are exact (no finite differences). */
typedef struct nh_curv nh_curv;

/* Arithmetic of a context.  NH_PREC_SINGLE keeps every batch-sized buffer,
 * a float32 copy of theta and every matrix product (cblas_sgemm) in single
 * precision -- about half the memory and up to twice the BLAS speed.  The
 * API stays in double either way: P-vectors, outputs, the NTK Gram and G are
 * double arrays, converted at the boundary; the loss, dC/dY, the HC blocks
 * and their application, and the sums the caller sees (NTK layer sum, G)
 * are evaluated in double.  Measured float32 errors per operation:
 * docs/precision.md (~1e-7..1e-5 relative).  In single precision:
 * NH_ENONFINITE for a vector or X entry beyond the float32 range,
 * NH_ENUMERIC when a result overflows float32, NH_EDIVERGED when theta does
 * (nh_curv_refresh re-takes the float copy of theta: call it after theta
 * changes, as for double). */
typedef enum nh_precision { NH_PREC_DOUBLE = 0, NH_PREC_SINGLE } nh_precision;

/* Streaming (docs/streaming.md).  batch = B > 0 runs every operation that
 * sums over the data (loss, gradient, H v, I v, S v, isvp, block H v, J v,
 * J^T u, G, the dense Jacobian and matrices, GD steps, and through them every
 * estimator of est.h) over batches of B rows, recomputing each batch's
 * forward/backward passes and summing the batches' results in double in
 * batch order: the context holds O(B sum(widths)) pass buffers plus the data
 * (N x n_0 in the context's precision) and the O(N n_L^2) outputs, loss
 * derivatives and targets.  Results equal the unbatched ones up to summation
 * order.  batch = 0 (default): all rows when their passes fit half the
 * memory limit (nh_get_mem_limit) -- then exactly the unbatched engine --
 * else the largest B that fits.  batch >= N is unbatched.  The exact NTK
 * Gram needs (N n_L)^2 memory whatever B is: nh_curv_ntk refuses it over
 * the limit with NH_ETOOLARGE and the bytes needed. */
typedef struct nh_curv_opts {
    nh_precision precision; /* NH_PREC_DOUBLE (default) or NH_PREC_SINGLE */
    size_t batch;           /* rows per pass; 0 = automatic (above) */
} nh_curv_opts;

NH_API nh_curv_opts nh_curv_opts_default(void);

/* A context with options opts (NULL = nh_curv_opts_default()); errors as
 * nh_curv_create, plus NH_EINVAL for an unknown precision. */
NH_API nh_status nh_curv_create_ex(const nh_net *net, const double *X,
                                   const double *T, size_t n, nh_loss loss,
                                   const nh_curv_opts *opts, nh_curv **out);
/* The same on float32 data X[n x n_0] (copied as float32, never widened as
 * a whole): a float32 context copies it; a batched float64 context keeps
 * the float32 copy and widens each batch's rows into its pass buffer (no
 * N x n_0 double copy); an unbatched float64 context widens it into its
 * passes.  Results equal nh_curv_create_ex on the widened X bit for bit.
 * NH_ENONFINITE for a NaN or Inf entry. */
NH_API nh_status nh_curv_create_x32(const nh_net *net, const float *X,
                                    const double *T, size_t n, nh_loss loss,
                                    const nh_curv_opts *opts, nh_curv **out);
/* The float64 context (nh_curv_create_ex with the default options). */
NH_API nh_status nh_curv_create(const nh_net *net, const double *X,
                                const double *T, size_t n, nh_loss loss,
                                nh_curv **out);
NH_API nh_precision nh_curv_precision(const nh_curv *c);
NH_API void      nh_curv_free(nh_curv *c); /* NULL-safe */
/* Recompute the cached passes; NH_EDIVERGED if the loss is not finite. */
NH_API nh_status nh_curv_refresh(nh_curv *c);

NH_API size_t nh_curv_nsamples(const nh_curv *c);
/* Rows per batch (= nsamples when unbatched). */
NH_API size_t nh_curv_batch(const nh_curv *c);
/* Bytes the context holds (its arenas, the streaming accumulator and the
 * step buffers once allocated, a parameter selection's 3 P doubles and P_B
 * indices); excludes the borrowed network. */
NH_API size_t nh_curv_bytes(const nh_curv *c);
/* The network the context is bound to (borrowed). */
NH_API const nh_net *nh_curv_net(const nh_curv *c);
NH_API double nh_curv_loss(const nh_curv *c);
/* Network outputs Y[n x n_L], dC/dY[n x n_L], HC blocks[n x n_L x n_L]. */
NH_API void nh_curv_outputs(const nh_curv *c, double *Y);
NH_API void nh_curv_dloss(const nh_curv *c, double *dC);
NH_API void nh_curv_hloss(const nh_curv *c, double *hc);
/* grad[P] = dC/dtheta. */
NH_API nh_status nh_curv_grad(nh_curv *c, double *grad);

/* out[P] = H v, I v (= J^T HC J v, Gauss-Newton) or S v (= H v - I v, the
 * part weighted by dC/dY).  v and out must not overlap. */
NH_API nh_status nh_curv_hvp(nh_curv *c, const double *v, double *out);
NH_API nh_status nh_curv_ivp(nh_curv *c, const double *v, double *out);
NH_API nh_status nh_curv_svp(nh_curv *c, const double *v, double *out);
/* I v and S v from one shared forward R-pass (H v = Iv + Sv). */
NH_API nh_status nh_curv_isvp(nh_curv *c, const double *v, double *iv,
                              double *sv);
/* Block forms: m vectors V[m x P] -> OUT[m x P]. */
NH_API nh_status nh_curv_hvp_block(nh_curv *c, size_t m, const double *V,
                                   double *OUT);
/* J v: jv[n x n_L] = (dY/dtheta) v.  J^T u: out[P] for u[n x n_L]. */
NH_API nh_status nh_curv_jvp(nh_curv *c, const double *v, double *jv);
NH_API nh_status nh_curv_vjp(nh_curv *c, const double *u, double *out);

/* Empirical NTK Gram K[(n n_L) x (n n_L)] = J J^T, computed from per-layer
 * outer products without forming J (memory O(n^2 + n sum n_l)).  NH_ETOOLARGE
 * (with the bytes needed) when K, its workspace and, for a batched context,
 * the unbatched passes exceed the memory limit: use the estimators. */
NH_API nh_status nh_curv_ntk(nh_curv *c, double *K);

/* tr[k-1] = Tr((HC K)^k) for k = 1..kmax (= Tr(I^k) when K is the NTK Gram),
 * K[(n nout) x (n nout)], HC[n x nout x nout] blocks as from nh_curv_hloss. */
NH_API nh_status nh_ntk_trace_powers(size_t n, size_t nout, const double *K,
                                     const double *HC, int kmax, double *tr);

/* G[n x n_L], G[i][k] = Tr Hess_theta f_k(x_i) = sum_p d^2 f_k(x_i)/dtheta_p^2,
 * exact.  Cost: O(n n_L sum n_l n_{l+1}) for L <= 3; for L >= 4 an extra
 * O(n sum_{l=2}^{L-2} n_l^2 (n_{l-1} + n_{l+1})) for the per-sample layer
 * kernels (see docs/conventions.md). */
NH_API nh_status nh_curv_G(nh_curv *c, double *G);

/* Dense matrices, for small P only (checked against the memory limit):
 * J[(n n_L) x P]; Hm, Im, Sm = H, I, S [P x P], each may be NULL. */
NH_API nh_status nh_curv_jacobian(nh_curv *c, double *J);
NH_API nh_status nh_curv_dense(nh_curv *c, double *Hm, double *Im, double *Sm);

/* Eigenvalues (ascending) of a symmetric P x P matrix A (copied). */
NH_API nh_status nh_eigvalsh(size_t p, const double *A, double *w);
/* Eigenvalues (ascending) and eigenvectors (columns of V, row-major P x P). */
NH_API nh_status nh_eigh(size_t p, const double *A, double *w, double *V);

/* --------------------------------------------------------------- progress */

/* Progress of a multi-pass operation (the library never prints: a caller
 * installs a callback and prints it, as the CLI's --progress does). */
typedef struct nh_progress {
    const char *op;     /* the running pass: "H v", "I v", "S v", "I v + S v", "J^T u", "gradient", "rows", "loss" */
    size_t batch;       /* batches done in this pass (1..nbatch)                 */
    size_t nbatch;      /* batches per pass (1: unbatched)                        */
    const char *est;    /* the running estimator ("Lanczos", "SLQ", ...) or NULL */
    size_t products;    /* its products done, before this pass                   */
    size_t planned;     /* its products planned (an upper bound; 0 without est)  */
} nh_progress;
typedef void (*nh_progress_fn)(void *user, const nh_progress *p);

/* Call fn(user, p) after every batch of every pass over the data (fn NULL:
 * none).  fn must not call back into the context. */
NH_API void nh_curv_set_progress(nh_curv *c, nh_progress_fn fn, void *user);
/* For estimators (est.h calls it; user code may too): products of the
 * context count towards the estimator est, planned at most; est NULL ends it. */
NH_API void nh_curv_progress_plan(nh_curv *c, const char *est, size_t planned);

/* ------------------------------------------------------ parameter blocks */

/* Restrict the context to the diagonal blocks H_BB, I_BB, S_BB of the
 * tensors tensors[0..nsel-1] (indices of nh_net_tensor; any order, no
 * duplicates: NH_EINVAL).  nsel = 0 (the default), or every tensor, selects
 * all of theta.  With a selection, nh_curv_grad, hvp, ivp, svp, isvp,
 * hvp_block, jvp, vjp, jacobian and dense take and return P_B-vectors
 * (P_B = nh_curv_dim): the selected entries of theta in theta order.  Each
 * block product is exact and costs one full product (the input is scattered
 * into a zero P-vector and the product's entries of the block gathered);
 * nh_curv_dense builds the P_B x P_B blocks from P_B products each.
 * nh_curv_ntk returns the block Gram J_B J_B^T (only the selected tensors'
 * terms), so nh_ntk_trace_powers on it gives Tr(I_BB^k) exactly, and
 * nh_curv_G returns G_B[i][k] = sum_{p in B} d^2 f_k(x_i)/dtheta_p^2 (the
 * selected layers' terms of the per-sample kernels), so Tr S_BB = G_B . dC/dY
 * exactly (the trace estimators' control variates use both).  The loss, outputs, GD
 * steps and slices always use all of theta.  Every estimator of est.h works
 * on the block through these products, with vectors of length P_B. */
NH_API nh_status nh_curv_select(nh_curv *c, size_t nsel, const size_t *tensors);
/* P_B: the length of the vectors the products take (P without a selection). */
NH_API size_t    nh_curv_dim(const nh_curv *c);
/* The selected tensors (ascending; NULL and 0 when all of theta). */
NH_API size_t    nh_curv_selection(const nh_curv *c, const size_t **tensors);

/* --------------------------------------------------------------- training */

/* One full-batch gradient-descent step theta -= eta * grad C on the context's
 * batch, then refresh.  Returns NH_EDIVERGED (theta restored to the last
 * finite state) when the new loss or parameters are not finite. */
NH_API nh_status nh_curv_gd_step(nh_curv *c, nh_net *net, double eta);

/* Gauss-Newton (Levenberg-Marquardt) step in function space:
 *   delta = -J^T (K + mu' I)^{-1} r,  K = J J^T (nh_curv_ntk, n n_L square),
 *   r = HC_i^{-1} (dC/dY)_i per sample (= Y - Y*, the residual, for the MSE),
 *   mu' = mu Tr(K) / (n n_L)  (mu is relative to K's mean eigenvalue).
 * mu = 0 gives the minimum-norm solution of J delta = -r: the limit of
 * gradient descent on the linearized network (which moves theta only in the
 * row space of J), i.e. GD's own minimum in the lazy regime, in a few steps.
 * Losses: the MSE, or any loss whose per-sample output Hessians HC_i are
 * positive definite (BCE); the softmax cross-entropy (singular HC_i) gives
 * NH_EINVAL.  With a parameter selection (nh_curv_select) J is J_B: delta is
 * a P_B-vector and the step moves only the selected tensors.  Memory: the
 * NTK Gram, (n n_L)^2 doubles (NH_ETOOLARGE over the limit).
 * nh_curv_gn_delta writes delta[P_B] without moving theta.
 * nh_curv_gn_step adds delta to net's theta (net must be c's) and refreshes
 * c; if the new loss is not finite or above the old one, theta is restored
 * bit for bit and info->accepted = 0 (raise mu and retry).  info may be NULL.
 * Errors: NH_EINVAL (NULL, mu < 0 or not finite, net not c's, the loss),
 * NH_ENUMERIC (K + mu' I not positive definite: dependent rows of J with
 * mu = 0; or a non-finite step), NH_ETOOLARGE, NH_ENOMEM. */
typedef struct nh_gn_info {
    double loss0;    /* loss before the step                              */
    double loss;     /* loss after it (= loss0 when not accepted)         */
    double tried;    /* loss at theta + delta (Inf if not finite)         */
    double pred;     /* loss predicted by the quadratic model of C in the
                      * outputs, C + g'J delta + (J delta)'HC (J delta)/2:
                      * (loss0 - tried)/(loss0 - pred) is the gain ratio
                      * that steers mu in Levenberg-Marquardt             */
    double norm;     /* ||delta|| of the step tried                       */
    double mu_abs;   /* the damping mu' added to K's diagonal             */
    int    accepted; /* 1: theta moved; 0: the loss would have risen      */
} nh_gn_info;
NH_API nh_status nh_curv_gn_delta(nh_curv *c, double mu, double *delta);
NH_API nh_status nh_curv_gn_step(nh_curv *c, nh_net *net, double mu,
                                 nh_gn_info *info);

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_CURV_H */
