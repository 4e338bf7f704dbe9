/*
 * ntkhess.h -- the public API of libntkhess.
 *
 * The Hessian of the loss of a fully connected network in the NTK
 * parametrization (Jacot, Gabriel, Hongler, "The asymptotic spectrum of the
 * Hessian of DNN throughout training"), measured exactly and matrix-free at
 * finite width.
 *
 * Conventions (docs/conventions.md says it once, in full):
 *  - All dense arrays are row-major, double precision, caller-owned.
 *  - Network: widths n_0..n_L, depth L = number of weight layers.
 *      a~(l+1) = W_l a(l) / sqrt(n_l) + beta b_l,  a(l+1) = sigma(a~(l+1)),
 *      f = out_scale * a~(L), out_scale = 1 (NTK) or 1/sqrt(n_{L-1}) (mean field).
 *  - Parameter vector theta (length P = sum_l (n_l + 1) n_{l+1}):
 *      for l = 0..L-1: W_l (n_{l+1} x n_l, row-major), then b_l (n_{l+1}).
 *  - Outputs Y: N x n_L, sample-major, flat index i*n_L + k.  The NTK Gram
 *    matrix is (N n_L) x (N n_L) with the same index on rows and columns.
 *  - Loss C(Y) = (1/N) sum_i c_i(Y_i).  Time t = k * eta after k gradient
 *    steps of learning rate eta on C (gradient-flow time of C itself).
 *  - Targets: MSE and BCE take N x n_L doubles (BCE labels in {-1,+1});
 *    softmax CE takes N class indices stored as doubles (0..n_L-1).
 *
 * Errors: every function that can fail returns nh_status (NH_OK == 0) and
 * leaves a one-line detail for nh_last_error() (thread-local).  The library
 * never prints, exits or aborts.
 *
 * Threads: a handle may be used by one thread at a time; distinct handles are
 * independent.  BLAS and OpenMP thread counts follow OMP_NUM_THREADS /
 * OPENBLAS_NUM_THREADS unless nh_set_threads() is called.
 */
#ifndef NTKHESS_H
#define NTKHESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NH_BUILDING_LIB) && defined(__GNUC__)
#define NH_API __attribute__((visibility("default")))
#else
#define NH_API
#endif

#define NH_VERSION_MAJOR 0
#define NH_VERSION_MINOR 1
#define NH_VERSION_PATCH 0

/* "0.1.0" */
NH_API const char *nh_version(void);

/* ------------------------------------------------------------------ status */

typedef enum nh_status {
    NH_OK = 0,
    NH_EINVAL,      /* invalid argument (NULL, out of range, unknown name)   */
    NH_ESHAPE,      /* array shapes do not agree                             */
    NH_ENONFINITE,  /* NaN or Inf in an input                                */
    NH_ENOMEM,      /* allocation failed                                     */
    NH_ETOOLARGE,   /* size overflows or exceeds the memory limit            */
    NH_EIO,         /* file could not be opened, read or written             */
    NH_EFORMAT,     /* malformed file contents                               */
    NH_EMAXITER,    /* iteration limit reached without convergence           */
    NH_EDIVERGED,   /* training diverged (non-finite loss or parameters)     */
    NH_ELAPACK,     /* LAPACK reported a failure                             */
    NH_ENUMERIC     /* numerical breakdown (e.g. ODE step underflow)         */
} nh_status;

/* Static name of a status ("invalid argument", ...). */
NH_API const char *nh_strerror(nh_status s);
/* Detail of the last failure in this thread ("" if none). */
NH_API const char *nh_last_error(void);

/* Memory limit (bytes) that size checks compare against before allocating.
 * Default: the machine's physical memory.  0 restores the default. */
NH_API void   nh_set_mem_limit(size_t bytes);
NH_API size_t nh_get_mem_limit(void);

/* Threads used by OpenMP loops and BLAS; <= 0 means the environment's default. */
NH_API void nh_set_threads(int nthreads);

/* ------------------------------------------------------------- activations */

typedef enum nh_act {
    NH_ACT_SOFTPLUS = 0, /* log(1+e^x), the "smooth ReLU"                      */
    NH_ACT_NSOFTPLUS,    /* (softplus - mu)/s, zero mean unit variance N(0,1) */
    NH_ACT_TANH,
    NH_ACT_ARCTAN,
    NH_ACT_ERF,
    NH_ACT_SIGMOID,
    NH_ACT_GELU,         /* x Phi(x), Phi the standard normal CDF              */
    NH_ACT_SIN,
    NH_ACT_RELU,         /* max(0,x); sigma'' and sigma''' taken as 0 (not smooth) */
    NH_ACT_IDENTITY,     /* linear network (useful for tests)                  */
    NH_ACT_COUNT
} nh_act;

/* mu and s of the normalized softplus (formula sheet, Sec. 0). */
#define NH_NSOFTPLUS_MU 0.8813545367880043
#define NH_NSOFTPLUS_SD 0.6224754644077389

/* Parse a command-line name ("softplus", "nsoftplus", "tanh", "arctan", "erf",
 * "sigmoid", "gelu", "sin", "relu", "identity"). NH_EINVAL if unknown. */
NH_API nh_status   nh_act_from_name(const char *name, nh_act *out);
NH_API const char *nh_act_name(nh_act a);
/* sigma and its derivatives 1..3 at n points; any output pointer may be NULL. */
NH_API void nh_act_eval(nh_act a, size_t n, const double *x, double *d0,
                        double *d1, double *d2, double *d3);

/* ------------------------------------------------------------------ losses */

typedef enum nh_loss {
    NH_LOSS_MSE = 0,  /* c_i = 1/2 ||Y_i - Y*_i||^2                          */
    NH_LOSS_BCE,      /* c_i = sum_k log(1 + exp(-s_ik Y_ik)), s in {-1,+1}   */
    NH_LOSS_CE,       /* c_i = logsumexp(Y_i) - Y_i[label_i]                  */
    NH_LOSS_COUNT
} nh_loss;

NH_API nh_status   nh_loss_from_name(const char *name, nh_loss *out);
NH_API const char *nh_loss_name(nh_loss l);

/* Check targets T for a loss: shape, finiteness, BCE labels in {-1,+1}
 * (0/1 are not accepted: map them first), CE labels integers in [0, nout). */
NH_API nh_status nh_loss_check_targets(nh_loss loss, const double *T, size_t n,
                                       size_t nout);
/* C(Y), grad[N x nout] = dC/dY and hc[N x nout x nout] = per-sample blocks of
 * the Hessian HC (block-diagonal across samples).  grad/hc may be NULL. */
NH_API nh_status nh_loss_eval(nh_loss loss, const double *Y, const double *T,
                              size_t n, size_t nout, double *value,
                              double *grad, double *hc);

/* ----------------------------------------------------------------- network */

typedef enum nh_param { NH_PARAM_NTK = 0, NH_PARAM_MF } nh_param;

typedef struct nh_net nh_net; /* opaque */

typedef struct nh_net_config {
    size_t        depth;   /* L >= 1                                   */
    const size_t *widths;  /* L + 1 entries n_0..n_L, each >= 1        */
    nh_act        act;
    double        beta;    /* bias scale, default 0.1                  */
    nh_param      param;   /* NH_PARAM_NTK (default) or NH_PARAM_MF    */
} nh_net_config;

NH_API nh_net_config nh_net_config_default(void);

/* Create a network with all parameters zero.  Checks that P and the
 * per-sample work fit the memory limit before allocating (NH_ETOOLARGE). */
NH_API nh_status nh_net_create(const nh_net_config *cfg, nh_net **out);
NH_API void      nh_net_free(nh_net *net); /* NULL-safe */
NH_API nh_status nh_net_clone(const nh_net *net, nh_net **out);

/* Draw all parameters iid N(0,1) from the documented generator
 * (nh_rng_*): seed -> the same theta on every IEEE-754 machine. */
NH_API void nh_net_init_normal(nh_net *net, uint64_t seed);

NH_API size_t        nh_net_depth(const nh_net *net);
NH_API const size_t *nh_net_widths(const nh_net *net); /* L+1 entries */
NH_API size_t        nh_net_nparams(const nh_net *net); /* P */
NH_API nh_act        nh_net_act(const nh_net *net);
NH_API double        nh_net_beta(const nh_net *net);
NH_API nh_param      nh_net_param(const nh_net *net);
/* Offsets of W_l and b_l inside theta. */
NH_API size_t nh_net_offset_W(const nh_net *net, size_t l);
NH_API size_t nh_net_offset_b(const nh_net *net, size_t l);
/* Borrowed pointer to theta[P]; writes through it change the network. */
NH_API double       *nh_net_params(nh_net *net);
NH_API const double *nh_net_params_const(const nh_net *net);
/* Copy theta in; NH_ENONFINITE if any entry is NaN/Inf. */
NH_API nh_status nh_net_set_params(nh_net *net, const double *theta);

/* Y[n x n_L] = f(X[n x n_0]).  Allocates its own scratch. */
NH_API nh_status nh_net_forward(const nh_net *net, const double *X, size_t n,
                                double *Y);

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

/* --------------------------------------------------------------- training */

/* One full-batch gradient-descent step theta -= eta * grad C on the context's
 * batch, then refresh.  Returns NH_EDIVERGED (theta restored to the last
 * finite state) when the new loss or parameters are not finite. */
NH_API nh_status nh_curv_gd_step(nh_curv *c, nh_net *net, double eta);

/* -------------------------------------------------------------------- rng */

/* The generator behind every seeded draw: xoshiro256** seeded by splitmix64;
 * normals by Marsaglia's polar method with a log built from IEEE-exact
 * operations only, so a seed gives bit-identical draws on any IEEE machine. */
typedef struct nh_rng { uint64_t s[4]; double spare; int has_spare; } nh_rng;
NH_API void     nh_rng_seed(nh_rng *r, uint64_t seed);
NH_API uint64_t nh_rng_u64(nh_rng *r);
NH_API double   nh_rng_uniform(nh_rng *r); /* [0,1), 53 bits */
NH_API double   nh_rng_normal(nh_rng *r);
NH_API void     nh_rng_fill_normal(nh_rng *r, size_t n, double *x);

/* ------------------------------------------------------------------- data */

typedef enum nh_dataset_kind {
    NH_DATA_SPHERE = 0, /* uniform on the sphere ||x||^2 = dim; y = sin(2 u.x) */
    NH_DATA_DISK        /* uniform on the unit disk (dim 2); y = sin(3 x1) cos(2 x2) */
} nh_dataset_kind;

/* Seeded synthetic data: X[n x dim]; T[n] with real targets (mse), -1/+1
 * labels (bce, the sign of y) or class ids (ce, nclass even buckets of y).
 * u is a unit vector drawn from the seed (its first min(dim, 64) entries). */
NH_API nh_status nh_data_synth(nh_dataset_kind kind, size_t n, size_t dim,
                               nh_loss loss, size_t nclass, uint64_t seed,
                               double *X, double *T);

/* --------------------------------------------------------------------- io */

/* .npy files (NumPy format 1.0-3.0).  Reading accepts little- or big-endian
 * f8, f4, i8, i4, i2, i1, u8, u4, u2, u1, b1, C order, 0 to 8 dims, and
 * converts to double; checks that the data length matches the header.
 * *data is malloc'ed (free(); non-NULL even for 0 elements) and NULL on
 * failure.  ndim and shape[8] are outputs.  NH_EFORMAT: malformed file or a
 * shape product that overflows; NH_ETOOLARGE: it fits size_t but not the
 * memory limit (checked before allocating); NH_EIO: cannot read. */
#define NH_NPY_MAXDIM 8
NH_API nh_status nh_npy_read(const char *path, double **data, size_t *ndim,
                             size_t shape[NH_NPY_MAXDIM]);
/* Same from memory (used by the fuzzers). */
NH_API nh_status nh_npy_parse(const void *buf, size_t len, double **data,
                              size_t *ndim, size_t shape[NH_NPY_MAXDIM]);
/* Write '<f8', C order; atomically (temporary file + rename). */
NH_API nh_status nh_npy_write(const char *path, const double *data,
                              size_t ndim, const size_t *shape);

/* Model directory: config.json + W0.npy, b0.npy, ... (float64, W_l of shape
 * (n_{l+1}, n_l)).  config.json has "widths" and "act" (required), "beta"
 * (default 0.1), "param" (default "ntk") and optionally "P", which must match.
 * Save creates one directory level, refuses non-finite parameters, and writes
 * config.json last (atomically), so an interrupted save never leaves a
 * loadable half-model.  Not safe for two threads saving to the same path. */
NH_API nh_status nh_model_load(const char *dir, nh_net **out);
NH_API nh_status nh_model_save(const char *dir, const nh_net *net);

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_H */
