/* ntkhess/sharp.h -- sharpness along training: top eigenvalues of H, I, S and
 * the NTK Gram, warm-started from the previous record (libntkhess).
 * Used by `ntkhess sharpness`, `eos`, `catapult` and Curvature.sharpness.
 * Conventions: see ntkhess.h and docs/conventions.md; docs/beyond-lazy.md. */
#ifndef NTKHESS_SHARP_H
#define NTKHESS_SHARP_H

#include "ntkhess/curv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which operator an eigen-solve uses: H, I, S (dimension P) or K/N = J J^T / N,
 * the NTK Gram divided by N (dimension N n_L), applied without forming it. */
typedef enum nh_sharp_op { NH_SHARP_H = 0, NH_SHARP_I, NH_SHARP_S, NH_SHARP_NTK, NH_SHARP_NOPS } nh_sharp_op;

/* --top limit: a record (15 + 3 k numbers) stays a short CSV row. */
#define NH_SHARP_MAXTOP 16

/* Top eigenpairs by Lanczos with full reorthogonalization and no restart,
 * testing convergence after every product (so a good warm start stops after
 * a few products; nh_curv_lanczos tests only at the end of a restart cycle).
 * Every returned value is a Ritz value whose residual estimate |beta_m y_m| is
 * <= tol * max|Ritz value| (converged = 1), or the best after maxit products
 * (converged = 0). */
typedef struct nh_sharp_eig_opts {
    size_t   k;        /* wanted pairs, 1..min(maxit, dimension)           */
    int      lm;       /* 0: largest algebraic; 1: largest magnitude       */
    double   tol;      /* relative residual, in (0, 1)                     */
    size_t   maxit;    /* Krylov dimension cap (memory maxit x dimension)  */
    size_t   minsteps; /* products before the first convergence test       */
    uint64_t seed;     /* random start (cold) and restart vectors          */
} nh_sharp_eig_opts;

typedef struct nh_sharp_eig_res {
    size_t nprod;      /* operator products used                          */
    int    converged;
} nh_sharp_eig_res;

/* evals[k] (descending, or by |.| descending when lm), evecs[k x dim] rows
 * (caller-owned; dim = P, or N n_L for NH_SHARP_NTK).  start: nstart unit
 * rows (dim each) summed into the start vector, or NULL for a seeded
 * Gaussian start.  NH_EINVAL for bad options, NH_ETOOLARGE when the Krylov
 * basis exceeds the memory limit, NH_ENOMEM, or a product's error. */
NH_API nh_status nh_sharp_eigs(nh_curv *c, nh_sharp_op op, const nh_sharp_eig_opts *o, const double *start,
                               size_t nstart, double *evals, double *evecs, nh_sharp_eig_res *res);

/* Options of a sharpness record (defaults: nh_sharp_opts_default). */
typedef struct nh_sharp_opts {
    size_t top;       /* eigenvalues of H, I and S per record, 1..NH_SHARP_MAXTOP; 1 */
    double tol;       /* relative Ritz residual, in (0, 1); 1e-7                    */
    size_t maxit;     /* products per eigen-solve at most, >= 2; 100                */
    size_t min_steps; /* products before the first convergence test, >= 1; 4        */
    int    cold;      /* 1: every solve from a seeded random vector (checks); 0      */
    int    ntk;       /* 1: lam_NTK computed (else NaN, 0 products); 1               */
} nh_sharp_opts;
NH_API nh_sharp_opts nh_sharp_opts_default(void);

/* One record at the context's current theta. */
typedef struct nh_sharp_row {
    double loss, grad_norm;
    double lam_H, lam_I;     /* largest eigenvalues of H and I                      */
    double lam_S;            /* eigenvalue of S largest in magnitude, signed        */
    double lam_NTK;          /* largest eigenvalue of J J^T / N (NaN when !ntk)     */
    double grad_overlap;     /* |g . u_H| / |g|, u_H the top unit eigenvector of H  */
    double uIu, uSu;         /* u_H^T I u_H + u_H^T S u_H = lam_H                   */
    double top[3][NH_SHARP_MAXTOP]; /* [H, I, S][j]: the top entries j < top         */
    size_t matvecs[NH_SHARP_NOPS];  /* products per solve; H includes the uIu/uSu
                                       isvp pair; NTK counts J^T u + J v as one     */
    int    unconverged;      /* solves that reached maxit without converging        */
} nh_sharp_row;

/* A sharpness tracker: the options and the warm-start vectors (the previous
 * record's eigenvectors: top rows of P for H, I and S, one row of N n_L for
 * the NTK), sized for contexts with the network and N of c. */
typedef struct nh_sharp nh_sharp;
NH_API nh_status nh_sharp_create(const nh_curv *c, const nh_sharp_opts *o, nh_sharp **out);
NH_API void      nh_sharp_free(nh_sharp *s);

/* One record at c's theta (c: the same P, n_L and N as at creation):
 * eigen-solves warm-started from the previous record's vectors (unless
 * cold, or before the first record), seeded by step (step NH_SHARP_NOPS +
 * op) so that a run repeats bit for bit; the gradient, its overlap and the
 * split of lam_H along u_H.  The tracker's vectors become this record's. */
NH_API nh_status nh_sharp_record(nh_sharp *s, nh_curv *c, uint64_t step, nh_sharp_row *row);

/* Warm-start state for a checkpoint: nh_sharp_state_len doubles.  get copies
 * it out (zeros before the first record); set restores it, after which the
 * next record warm-starts from it as the uninterrupted run would. */
NH_API size_t    nh_sharp_state_len(const nh_sharp *s);
NH_API nh_status nh_sharp_state_get(const nh_sharp *s, double *state);
NH_API nh_status nh_sharp_state_set(nh_sharp *s, const double *state);

#ifdef __cplusplus
}
#endif

#endif /* NTKHESS_SHARP_H */
