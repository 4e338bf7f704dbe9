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

NH_API nh_status nh_curv_create(const nh_net *net, const double *X,
                                const double *T, size_t n, nh_loss loss,
                                nh_curv **out);
NH_API void      nh_curv_free(nh_curv *c); /* NULL-safe */
/* Recompute the cached passes; NH_EDIVERGED if the loss is not finite. */
NH_API nh_status nh_curv_refresh(nh_curv *c);

NH_API size_t nh_curv_nsamples(const nh_curv *c);
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
 * outer products without forming J (memory O(n^2 + n sum n_l)). */
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

/* ------------------------------------------------- curvature in float32 */

/* A float32 curvature context: the semantics of nh_curv (same network,
 * batch, loss, cached forward/backward passes, exact R-operator products)
 * with every batch-sized buffer and every matrix product (cblas_sgemm) in
 * single precision -- about half the memory and up to twice the BLAS speed.
 * The API stays in double: P-vectors, outputs, the NTK Gram and G are
 * double arrays, converted at the boundary.  The loss, dC/dY and the HC
 * blocks are evaluated in double from the float outputs.  Relative errors
 * against the double engine (docs/precision.md) are ~1e-7..1e-5 depending on
 * quantity and width; the theory (kernels, ODEs) has no float32 path.
 *
 * The context borrows the double network (it must outlive the context) and
 * keeps a float32 copy of theta, taken at create and at every
 * nh_curv32_refresh(): after theta changes, call nh_curv32_refresh (the
 * float copy is otherwise stale).  X and T are copied (X converted to
 * float).  Shapes, ordering and the meaning of every output are those of
 * the nh_curv function of the same name (docs/conventions.md).
 *
 * Errors: NH_EINVAL (NULL, n == 0, unknown loss), NH_ENONFINITE (NaN/Inf in
 * X, or X entries beyond the float32 range), NH_ETOOLARGE (workspace over the
 * memory limit or the BLAS integer range; checked before allocating),
 * NH_ENOMEM, NH_EDIVERGED (theta beyond the float32 range, or non-finite
 * outputs or loss), target errors as nh_loss_check_targets. */
typedef struct nh_curv32 nh_curv32;

NH_API nh_status nh_curv32_create(const nh_net *net, const double *X,
                                  const double *T, size_t n, nh_loss loss,
                                  nh_curv32 **out);
NH_API void      nh_curv32_free(nh_curv32 *c); /* NULL-safe */
/* Re-copy theta to float32 and recompute the cached passes; NH_EDIVERGED
 * if theta overflows float32 or the outputs or loss are not finite. */
NH_API nh_status nh_curv32_refresh(nh_curv32 *c);

NH_API size_t        nh_curv32_nsamples(const nh_curv32 *c);
NH_API const nh_net *nh_curv32_net(const nh_curv32 *c); /* borrowed */
/* C(Y), in double, of the float32 outputs. */
NH_API double nh_curv32_loss(const nh_curv32 *c);
/* Y[n x n_L] (the float32 outputs, widened) and dC/dY[n x n_L]. */
NH_API void nh_curv32_outputs(const nh_curv32 *c, double *Y);
NH_API void nh_curv32_dloss(const nh_curv32 *c, double *dC);

/* grad[P] = dC/dtheta (computed in float32, returned in double).
 * NH_ENUMERIC if the float32 result overflowed. */
NH_API nh_status nh_curv32_grad(nh_curv32 *c, double *grad);

/* out[P] = H v, I v, S v; iv, sv from one shared forward R-pass.  v[P] is
 * converted to float32: NH_ENONFINITE if it has NaN/Inf or an entry beyond
 * the float32 range; NH_ENUMERIC if a result overflowed float32.  v and the
 * outputs must not overlap.  H v = I v + S v to float32 rounding. */
NH_API nh_status nh_curv32_hvp(nh_curv32 *c, const double *v, double *out);
NH_API nh_status nh_curv32_ivp(nh_curv32 *c, const double *v, double *out);
NH_API nh_status nh_curv32_svp(nh_curv32 *c, const double *v, double *out);
NH_API nh_status nh_curv32_isvp(nh_curv32 *c, const double *v, double *iv,
                                double *sv);

/* Empirical NTK Gram K[(n n_L) x (n n_L)] (double, caller-owned) = J J^T:
 * per-layer Gram matrices in float32 (sgemm), summed over layers in double.
 * Workspace O(n^2 n_L^2 + n n_L max n_l) floats, checked before allocating. */
NH_API nh_status nh_curv32_ntk(nh_curv32 *c, double *K);

/* G[n x n_L] = Tr Hess_theta f_k(x_i), the algorithm of nh_curv_G in
 * float32 (same cost; for L >= 4 the per-sample layer kernels are float32
 * n_l x n_l matrices). */
NH_API nh_status nh_curv32_G(nh_curv32 *c, double *G);

/* One gradient step theta -= eta * grad on the double parameters of net
 * (which must be the context's network), with the float32 gradient, then
 * refresh.  NH_EDIVERGED (theta restored, context refreshed) when the new
 * theta, outputs or loss are not finite; NH_EINVAL for eta <= 0 or not
 * finite, or another network. */
NH_API nh_status nh_curv32_gd_step(nh_curv32 *c, nh_net *net, double eta);

/* --------------------------------------------------------------- training */

/* One full-batch gradient-descent step theta -= eta * grad C on the context's
 * batch, then refresh.  Returns NH_EDIVERGED (theta restored to the last
 * finite state) when the new loss or parameters are not finite. */
NH_API nh_status nh_curv_gd_step(nh_curv *c, nh_net *net, double eta);

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_CURV_H */
