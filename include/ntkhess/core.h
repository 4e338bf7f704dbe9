/* ntkhess/core.h -- status, memory limit, threads, activations, losses, the generator and synthetic data (libntkhess).
 * Conventions: see ntkhess.h and docs/conventions.md. */
#ifndef NTKHESS_CORE_H
#define NTKHESS_CORE_H

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
    NH_ENUMERIC,    /* numerical breakdown (e.g. ODE step underflow)         */
    NH_EBUSY        /* in use by another process (an output folder's lock)   */
} nh_status;

/* Static name of a status ("invalid argument", ...). */
NH_API const char *nh_strerror(nh_status s);
/* Detail of the last failure in this thread ("" if none), as
 * "function: detail".  nh_last_error_detail is the same text without the
 * "function: " prefix: a sentence fit for an end user ("unknown activation
 * 'swish' (expected softplus, ...)"). */
NH_API const char *nh_last_error(void);
NH_API const char *nh_last_error_detail(void);

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
    NH_ACT_SILU,         /* x logistic(x) (PyTorch SiLU / swish)                */
    NH_ACT_LEAKY_RELU,   /* x > 0 ? x : a x, a = param (default 0.01); derivatives 2, 3 taken as 0 */
    NH_ACT_COUNT
} nh_act;

/* mu = E[softplus(z)] and s = SD[softplus(z)], z ~ N(0,1), to 16 digits
 * (30-digit adaptive quadrature, mpmath).  The formula sheet's 0.88135... and
 * 0.62247... are wrong: they leave nsoftplus with mean -0.121 and variance
 * 0.70 (docs/deviations.md). */
#define NH_NSOFTPLUS_MU 0.8060591833474398
#define NH_NSOFTPLUS_SD 0.5210705343814393

/* Names come from one table in act.c: nh_act_name(a) for a = 0 ..
 * nh_act_count() - 1 lists every activation (bindings and the CLI read it
 * from here instead of keeping a copy).  nh_act_from_name: NH_EINVAL if
 * unknown, with a message listing the known names. */
NH_API size_t      nh_act_count(void);
NH_API nh_status   nh_act_from_name(const char *name, nh_act *out);
NH_API const char *nh_act_name(nh_act a);
/* Display name for plots and tables ("smooth ReLU (softplus)"; the name when
 * there is no longer one). */
NH_API const char *nh_act_title(nh_act a);
/* Activations with a parameter: softplus (beta: log(1+e^(beta x))/beta, as
 * PyTorch's Softplus(beta)) and leaky_relu (negative slope).  The others have
 * none.  nh_act_default_param: 1 (softplus), 0.01 (leaky_relu), NaN (none).
 * nh_act_parse reads "name" or "name:param" ("softplus:2", "leaky_relu:0.2");
 * *param is the default when no parameter is given; NH_EINVAL for an unknown
 * name, a parameter on an activation without one, or a non-finite or
 * non-positive softplus beta.  nh_act_format writes the inverse ("softplus"
 * for the default parameter) into buf[len] and returns buf. */
NH_API double      nh_act_default_param(nh_act a);
/* The parameter's name ("beta", "slope"), NULL for an activation without one. */
NH_API const char *nh_act_param_name(nh_act a);
NH_API nh_status   nh_act_parse(const char *spec, nh_act *out, double *param);
NH_API const char *nh_act_format(nh_act a, double param, char *buf, size_t len);
/* sigma and its derivatives 1..3 at n points, with the activation's parameter
 * (ignored by activations without one); any output pointer may be NULL. */
NH_API void nh_act_eval_p(nh_act a, double param, size_t n, const double *x, double *d0,
                          double *d1, double *d2, double *d3);
/* sigma and its derivatives 1..3 at n points (default parameter); any output
 * pointer may be NULL. */
NH_API void nh_act_eval(nh_act a, size_t n, const double *x, double *d0,
                        double *d1, double *d2, double *d3);

/* ------------------------------------------------------------------ losses */

typedef enum nh_loss {
    NH_LOSS_MSE = 0,  /* c_i = 1/2 ||Y_i - Y*_i||^2                          */
    NH_LOSS_BCE,      /* c_i = sum_k log(1 + exp(-s_ik Y_ik)), s in {-1,+1}   */
    NH_LOSS_CE,       /* c_i = logsumexp(Y_i) - Y_i[label_i]                  */
    NH_LOSS_COUNT
} nh_loss;

/* Names: nh_loss_name(l) for l = 0 .. nh_loss_count() - 1 ("mse", "bce", "ce"). */
NH_API size_t      nh_loss_count(void);
NH_API nh_status   nh_loss_from_name(const char *name, nh_loss *out);
NH_API const char *nh_loss_name(nh_loss l);
/* What the targets of a loss are, for messages and help: "real targets"
 * (mse), "-1/+1 labels" (bce), "class ids" (ce). */
NH_API const char *nh_loss_targets(nh_loss l);
/* Number of target entries for n samples and nout outputs: n class ids for
 * ce, an n x nout matrix otherwise. */
NH_API size_t      nh_loss_target_count(nh_loss loss, size_t n, size_t nout);

/* Check targets T for a loss: shape, finiteness, BCE labels in {-1,+1}
 * (0/1 are not accepted: map them first), CE labels integers in [0, nout). */
NH_API nh_status nh_loss_check_targets(nh_loss loss, const double *T, size_t n,
                                       size_t nout);
/* C(Y), grad[N x nout] = dC/dY and hc[N x nout x nout] = per-sample blocks of
 * the Hessian HC (block-diagonal across samples).  grad/hc may be NULL. */
NH_API nh_status nh_loss_eval(nh_loss loss, const double *Y, const double *T,
                              size_t n, size_t nout, double *value,
                              double *grad, double *hc);

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

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_CORE_H */
