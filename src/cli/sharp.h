/* sharp.h -- sharpness along training (cmd_sharp.c), shared with the eos and
 * catapult figures (cmd_eos.c).  Private to the CLI. */
#ifndef NH_CLI_SHARP_H
#define NH_CLI_SHARP_H
#include "cli.h"

/* Which operator a record's eigen-solve uses. */
enum { SH_H = 0, SH_I, SH_S, SH_K, SH_NOPS };
#define SH_MAXTOP 16 /* --top: a record row stays within nh_log's 2048 characters */

/* Top eigenpairs by Lanczos with full reorthogonalization and no restart,
 * testing convergence after every product (so a good warm start stops
 * early).  Exactness: every returned value is a Ritz value whose residual
 * estimate |beta_m y_m| is <= tol * max|Ritz value| (converged = 1), or the
 * best after maxit products (converged = 0). */
typedef struct sh_eig_opts {
    size_t k;        /* wanted pairs                                     */
    int    lm;       /* 0: largest algebraic; 1: largest magnitude       */
    double tol;      /* relative residual                                */
    size_t maxit;    /* Krylov dimension cap (memory maxit x dim)        */
    size_t minsteps; /* products before the first convergence test       */
    uint64_t seed;   /* random start (cold) and restart vectors          */
} sh_eig_opts;

typedef struct sh_eig_res {
    size_t nprod;
    int    converged;
} sh_eig_res;

/* evals[k] (descending, or by |.| descending for lm), evecs[k x dim] rows.
 * start: nstart unit rows (dim each) summed into the start vector, or NULL
 * for a seeded Gaussian start.  Dies (cmd) on errors. */
void sh_eigs(const nh_cmd *cmd, nh_curv *c, int op, const sh_eig_opts *o, const double *start, size_t nstart,
             double *evals, double *evecs, sh_eig_res *res); /* dies on errors */

/* Options of a recorded run. */
typedef struct sh_opts {
    double    eta;
    long long steps, every, ckev;
    size_t    top, maxit, minsteps;
    double    tol;
    int       cold; /* 1: no warm starts (for checks and benchmarks) */
    int       ntk;  /* 1: lam_NTK column computed                    */
    int       quiet;
    int       restart; /* 1: drop an unfinished run's checkpoint first */
} sh_opts;

/* Full-batch GD from *net for o->steps steps, writing records to csv; resumes
 * from csv's checkpoint (CSV.ckpt, CSV.warm) when one with identity id exists
 * (and exits refusing one of another identity: ckpt.c).  Returns NH_OK or
 * NH_EDIVERGED (then *kend is the step that diverged; *net holds the last
 * finite state).  Dies on other errors. */
nh_status sh_run(const nh_cmd *cmd, nh_net **net, const nh_dataset *d, nh_loss loss, const sh_opts *o,
                 const char *csv, const nh_ckpt_id *id, long long *kend);

/* A numeric CSV with a header: rows x cols doubles (malloc'ed), column
 * index by name (-1 when absent). */
typedef struct sh_table {
    size_t  rows, cols;
    char  **names;
    double *v;
} sh_table;
void sh_table_read(const nh_cmd *cmd, const char *path, sh_table *t);
int  sh_table_col(const sh_table *t, const char *name);
void sh_table_free(sh_table *t);

#endif
