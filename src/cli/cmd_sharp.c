/* cmd_sharp.c -- ntkhess sharpness: top eigenvalues of H, I, S and the NTK
 * along full-batch gradient descent, warm-started from the previous record,
 * resumable after a kill.  The eigen-solver is built here on the public
 * product API (nh_curv_hvp/ivp/svp, jvp/vjp) so that a warm start can stop
 * after a few products: nh_curv_lanczos tests convergence only at the end of
 * a restart cycle. */
#include "sharp.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ operators */

/* out = A v for A = H, I, S (dim P) or K / N = J J^T / N (dim N n_L), the
 * NTK Gram divided by N, applied without forming it. */
static nh_status sh_apply(nh_curv *c, int op, const double *v, double *out, double *tmpP) {
    switch (op) {
    case SH_H: return nh_curv_hvp(c, v, out);
    case SH_I: return nh_curv_ivp(c, v, out);
    case SH_S: return nh_curv_svp(c, v, out);
    default: break;
    }
    size_t n = nh_curv_nsamples(c), nm = n * nh_net_widths(nh_curv_net(c))[nh_net_depth(nh_curv_net(c))];
    nh_status st = nh_curv_vjp(c, v, tmpP);
    if (st == NH_OK) st = nh_curv_jvp(c, tmpP, out);
    for (size_t i = 0; st == NH_OK && i < nm; i++) out[i] /= (double)n;
    return st;
}

static size_t sh_dim(nh_curv *c, int op) {
    const nh_net *net = nh_curv_net(c);
    return op == SH_K ? nh_curv_nsamples(c) * nh_net_widths(net)[nh_net_depth(net)] : nh_net_nparams(net);
}

static double sh_dot(size_t n, const double *a, const double *b) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* w <- w - V V^T w against rows 0..m-1 of V, twice (classical Gram-Schmidt
 * repeated: "twice is enough"); returns ||w||. */
static double sh_orth(size_t dim, size_t m, const double *V, double *w) {
    for (int pass = 0; pass < 2; pass++)
        for (size_t r = 0; r < m; r++) {
            double h = sh_dot(dim, w, V + r * dim);
            for (size_t i = 0; i < dim; i++) w[i] -= h * V[r * dim + i];
        }
    return sqrt(sh_dot(dim, w, w));
}

/* A unit random vector orthogonal to rows 0..m-1 of V (restart after an
 * invariant subspace); 0 when the basis already spans everything. */
static int sh_fresh(size_t dim, size_t m, const double *V, nh_rng *rng, double *w) {
    for (int t = 0; t < 4; t++) {
        nh_rng_fill_normal(rng, dim, w);
        double nrm = sh_orth(dim, m, V, w);
        if (nrm > 1e-8 * sqrt((double)dim)) {
            for (size_t i = 0; i < dim; i++) w[i] /= nrm;
            return 1;
        }
    }
    return 0;
}

/* Ritz pairs of the m x m tridiagonal (alpha, beta): indices of the k wanted
 * values into idx; returns the largest residual estimate relative to the
 * largest |Ritz value|.  Z: eigenvectors (row-major, columns). */
static nh_status sh_ritz(size_t m, const double *alpha, const double *beta, double bnext, const sh_eig_opts *o,
                         double *T, double *theta, double *Z, size_t *idx, double *relres) {
    memset(T, 0, m * m * sizeof *T);
    for (size_t i = 0; i < m; i++) {
        T[i * m + i] = alpha[i];
        if (i + 1 < m) T[i * m + i + 1] = T[(i + 1) * m + i] = beta[i];
    }
    nh_status st = nh_eigh(m, T, theta, Z);
    if (st != NH_OK) return st;
    size_t k = o->k < m ? o->k : m, lo = 0, hi = m; /* ascending: pick from the ends */
    for (size_t j = 0; j < k; j++) {
        if (!o->lm || fabs(theta[hi - 1]) >= fabs(theta[lo])) idx[j] = --hi;
        else idx[j] = lo++;
    }
    double amax = fmax(fabs(theta[0]), fabs(theta[m - 1])), worst = 0;
    for (size_t j = 0; j < k; j++) worst = fmax(worst, fabs(bnext * Z[(m - 1) * m + idx[j]]));
    *relres = amax > 0 ? worst / amax : (worst > 0 ? INFINITY : 0);
    return NH_OK;
}

typedef struct sh_work {
    double *V, *alpha, *beta, *T, *theta, *Z, *tmpP;
    size_t *idx;
} sh_work;

static nh_status sh_work_alloc(sh_work *w, size_t dim, size_t mx, size_t P) {
    memset(w, 0, sizeof *w);
    double need = ((double)(mx + 1) * (double)dim + 2.0 * (double)mx * (double)mx + (double)P) * 8.0;
    if (need > (double)nh_get_mem_limit()) return NH_ETOOLARGE;
    w->V = malloc((mx + 1) * dim * sizeof *w->V);
    w->alpha = malloc(mx * sizeof *w->alpha);
    w->beta = malloc(mx * sizeof *w->beta);
    w->T = malloc(mx * mx * sizeof *w->T);
    w->Z = malloc(mx * mx * sizeof *w->Z);
    w->theta = malloc(mx * sizeof *w->theta);
    w->tmpP = malloc(P * sizeof *w->tmpP);
    w->idx = malloc(mx * sizeof *w->idx);
    if (!w->V || !w->alpha || !w->beta || !w->T || !w->Z || !w->theta || !w->tmpP || !w->idx) return NH_ENOMEM;
    return NH_OK;
}

static void sh_work_free(sh_work *w) {
    free(w->V); free(w->alpha); free(w->beta); free(w->T); free(w->Z); free(w->theta); free(w->tmpP); free(w->idx);
}

/* The first basis vector: the warm rows summed, or a seeded Gaussian. */
static void sh_start(size_t dim, const double *start, size_t nstart, nh_rng *rng, double *v) {
    double nrm = 0;
    if (start) {
        memset(v, 0, dim * sizeof *v);
        for (size_t r = 0; r < nstart; r++)
            for (size_t i = 0; i < dim; i++) v[i] += start[r * dim + i];
        nrm = sqrt(sh_dot(dim, v, v));
    }
    if (!(nrm > 0) || !isfinite(nrm)) {
        nh_rng_fill_normal(rng, dim, v);
        nrm = sqrt(sh_dot(dim, v, v));
    }
    for (size_t i = 0; i < dim; i++) v[i] /= nrm;
}

/* One Lanczos step on basis row j: returns beta_j (the norm before
 * normalizing row j + 1) in *bnext. */
static nh_status sh_step(nh_curv *c, int op, size_t dim, size_t j, sh_work *w, double *bnext) {
    double *vj = w->V + j * dim, *wn = w->V + (j + 1) * dim;
    nh_status st = sh_apply(c, op, vj, wn, w->tmpP);
    if (st != NH_OK) return st;
    w->alpha[j] = sh_dot(dim, wn, vj);
    *bnext = sh_orth(dim, j + 1, w->V, wn);
    return NH_OK;
}

void sh_eigs(const nh_cmd *cmd, nh_curv *c, int op, const sh_eig_opts *o, const double *start, size_t nstart,
             double *evals, double *evecs, sh_eig_res *res) {
    size_t dim = sh_dim(c, op), mx = o->maxit < dim ? o->maxit : dim, m = 0;
    if (o->k == 0 || o->k > mx) nh_die(cmd, "--top %zu must be in 1..min(--maxit, dimension) = %zu", o->k, mx);
    sh_work w;
    nh_status st = sh_work_alloc(&w, dim, mx, nh_net_nparams(nh_curv_net(c)));
    if (st == NH_ETOOLARGE) nh_die(cmd, "a Krylov basis of %zu x %zu doubles exceeds the memory limit", mx + 1, dim);
    if (st != NH_OK) nh_die(cmd, "out of memory for a Krylov basis of %zu x %zu doubles", mx + 1, dim);
    nh_rng rng;
    nh_rng_seed(&rng, o->seed);
    res->nprod = 0;
    res->converged = 0;
    if (st == NH_OK) sh_start(dim, start, nstart, &rng, w.V);
    double relres = INFINITY, scale = 0;
    while (st == NH_OK && m < mx) {
        double b;
        st = sh_step(c, op, dim, m, &w, &b);
        if (st != NH_OK) break;
        res->nprod++;
        m++;
        /* ||A|| >= |alpha_j|, beta_j: an invariant subspace when beta is at rounding level of that */
        scale = fmax(scale, fabs(w.alpha[m - 1]) + b);
        int invariant = b <= 1e-13 * scale || m == dim;
        if (m >= o->k) st = sh_ritz(m, w.alpha, w.beta, invariant ? 0 : b, o, w.T, w.theta, w.Z, w.idx, &relres);
        if (st != NH_OK) break;
        if (m >= o->k && (invariant || (m >= o->minsteps && relres <= o->tol))) {
            res->converged = 1;
            break;
        }
        if (m == mx) break;
        w.beta[m - 1] = invariant ? 0 : b;
        double *vn = w.V + m * dim;
        if (invariant) {
            if (!sh_fresh(dim, m, w.V, &rng, vn)) { res->converged = 1; break; }
        } else {
            for (size_t i = 0; i < dim; i++) vn[i] /= b;
        }
    }
    for (size_t j = 0; st == NH_OK && j < o->k; j++) {
        evals[j] = w.theta[w.idx[j]];
        double *x = evecs + j * dim;
        memset(x, 0, dim * sizeof *x);
        for (size_t r = 0; r < m; r++) {
            double z = w.Z[r * m + w.idx[j]];
            for (size_t i = 0; i < dim; i++) x[i] += z * w.V[r * dim + i];
        }
    }
    sh_work_free(&w);
    if (st != NH_OK) nh_die_status(cmd, st);
}

/* ------------------------------------------------------------- records */

/* Warm-start state: the previous record's eigenvectors, k rows of P for H,
 * I and S, one row of N n_L for K / N.  Saved beside each checkpoint, since
 * a resumed run must start its next solve from the same vectors to repeat
 * the uninterrupted run bit for bit. */
typedef struct sh_state {
    size_t  len[SH_NOPS];
    double *buf, *vec[SH_NOPS], *grad;
    size_t  total;
    int     have;
} sh_state;

static void sh_state_init(const nh_cmd *cmd, sh_state *s, size_t P, size_t nm, size_t k) {
    memset(s, 0, sizeof *s);
    s->len[SH_H] = s->len[SH_I] = s->len[SH_S] = k * P;
    s->len[SH_K] = nm;
    s->total = 3 * k * P + nm;
    if ((double)(s->total + P) * 8.0 > (double)nh_get_mem_limit()) nh_die(cmd, "warm-start vectors exceed the memory limit");
    s->buf = calloc(s->total, sizeof *s->buf);
    s->grad = malloc(P * sizeof *s->grad);
    if (!s->buf || !s->grad) nh_die(cmd, "out of memory");
    size_t off = 0;
    for (int op = 0; op < SH_NOPS; op++) { s->vec[op] = s->buf + off; off += s->len[op]; }
}

static void sh_state_free(sh_state *s) { free(s->buf); free(s->grad); }

static void sh_header(char *buf, size_t cap, const sh_opts *o) {
    size_t n = (size_t)snprintf(buf, cap, "step,t,loss,grad_norm,lam_H,lam_I,lam_S,lam_NTK,grad_overlap,uIu,uSu,"
                                          "matvecs_H,matvecs_I,matvecs_S,matvecs_NTK");
    const char *nm = "HIS";
    for (int op = 0; op < 3 && o->top > 1; op++)
        for (size_t j = 1; j <= o->top && n < cap; j++) n += (size_t)snprintf(buf + n, cap - n, ",%c_%zu", nm[op], j);
}

/* One record at `step`: eigen-solves warm-started from s (unless cold), the
 * gradient and its overlap |g . u_H| / |g| with the top eigenvector of H. */
static void sh_record(const nh_cmd *cmd, nh_curv *c, const sh_opts *o, sh_state *s, long long step, nh_log *log) {
    size_t P = nh_net_nparams(nh_curv_net(c));
    double lam[3][SH_MAXTOP], lamk = NAN;
    size_t nprod[SH_NOPS] = {0};
    int unconv = 0;
    for (int op = 0; op < SH_NOPS; op++) {
        if (op == SH_K && !o->ntk) break;
        sh_eig_opts eo = {op == SH_K ? 1 : o->top, op == SH_S, o->tol, o->maxit, o->minsteps,
                          (uint64_t)step * SH_NOPS + (uint64_t)op};
        const double *start = s->have && !o->cold ? s->vec[op] : NULL;
        sh_eig_res r;
        sh_eigs(cmd, c, op, &eo, start, eo.k, op == SH_K ? &lamk : lam[op], s->vec[op], &r);
        nprod[op] = r.nprod;
        unconv += !r.converged;
    }
    s->have = 1;
    NH_CHECK(cmd, nh_curv_grad(c, s->grad));
    double gn = sqrt(sh_dot(P, s->grad, s->grad));
    double ov = gn > 0 ? fabs(sh_dot(P, s->grad, s->vec[SH_H])) / gn : NAN;
    /* lam_H split along its eigenvector u: u^T I u + u^T S u = lam_H (one isvp
     * product, counted with H): which of I and S makes the top of H. */
    double *iv = malloc(P * sizeof *iv), *sv = malloc(P * sizeof *sv);
    if (!iv || !sv) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_curv_isvp(c, s->vec[SH_H], iv, sv));
    double uiu = sh_dot(P, s->vec[SH_H], iv), usu = sh_dot(P, s->vec[SH_H], sv);
    free(iv); free(sv);
    nprod[SH_H]++;
    if (unconv && !o->quiet)
        fprintf(stderr, "ntkhess %s: warning: step %lld: %d eigen-solve(s) not converged in --maxit %zu products\n",
                cmd->name, step, unconv, o->maxit);
    char row[2048]; /* nh_log's row limit: 15 + 3 x SH_MAXTOP numbers of <= 24 characters fit */
    size_t n = (size_t)snprintf(row, sizeof row, "%lld,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                "%zu,%zu,%zu,%zu", step, (double)step * o->eta, nh_curv_loss(c), gn, lam[SH_H][0],
                                lam[SH_I][0], lam[SH_S][0], lamk, ov, uiu, usu, nprod[0], nprod[1], nprod[2], nprod[3]);
    for (int op = 0; op < 3 && o->top > 1; op++)
        for (size_t j = 0; j < o->top && n < sizeof row; j++) n += (size_t)snprintf(row + n, sizeof row - n, ",%.17g", lam[op][j]);
    nh_log_row(cmd, log, "%s", row);
}

/* ------------------------------------------------------- resumable run */

static const char *sh_warm_path(char *buf, size_t cap, const char *csv, long long step) {
    snprintf(buf, cap, "%s.warm/%lld.npy", csv, step);
    return buf;
}

static void sh_warm_save(const nh_cmd *cmd, const char *csv, const sh_state *s, long long step) {
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s.warm", csv);
    nh_cli_mkdir(cmd, dir);
    size_t sh[1] = {s->total};
    NH_CHECK(cmd, nh_npy_write(sh_warm_path(path, sizeof path, csv, step), s->buf, 1, sh));
}

static void sh_warm_load(const nh_cmd *cmd, const char *csv, sh_state *s, long long step) {
    char path[4096];
    double *v = NULL;
    size_t nd, sh[NH_NPY_MAXDIM];
    if (nh_npy_read(sh_warm_path(path, sizeof path, csv, step), &v, &nd, sh) != NH_OK || nd != 1 || sh[0] != s->total)
        nh_die(cmd, "%s: missing or damaged warm-start file of the checkpoint; remove %s.ckpt to start over", path,
               csv);
    memcpy(s->buf, v, s->total * sizeof *v);
    free(v);
    s->have = 1;
}

/* Open the record file: on resume, checked against the checkpoint (header,
 * rows, last row) and cut after its last checkpointed row, with that row
 * remembered for the next checkpoint; else new, with its header. */
static void sh_open_log(const nh_cmd *cmd, const char *csv, const char *header, const nh_ckpt_state *cs,
                        long long start, nh_log *log) {
    memset(log, 0, sizeof *log);
    snprintf(log->path, sizeof log->path, "%s", csv);
    if (start < 0) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", csv);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) { *slash = 0; nh_cli_mkdir(cmd, parent); } /* missing parents */
        log->f = fopen(csv, "w");
        if (!log->f) nh_die(cmd, "cannot write %s: %s", csv, strerror(errno));
        nh_log_row(cmd, log, "%s", header);
        return;
    }
    nh_ckpt_log_check(cmd, csv, header, cs);
    FILE *f = fopen(csv, "r");
    char line[sizeof log->last];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        memcpy(log->last, line, sizeof line);
    }
    if (f) fclose(f);
    log->rows = cs->rows;
    log->f = fopen(csv, "a");
    if (!log->f) nh_die(cmd, "cannot append to %s: %s", csv, strerror(errno));
}

/* Warm vectors first, then the checkpoint (model, identity, log state), then
 * the previous warm file: a kill anywhere leaves a checkpoint with its own. */
static void sh_checkpoint(const nh_cmd *cmd, const char *csv, const nh_ckpt_id *id, const sh_state *s, nh_log *log,
                          long long k, long long *saved, const nh_net *net) {
    char ck[4096], old[4096];
    if (fflush(log->f) != 0 || fsync(fileno(log->f)) != 0) nh_die(cmd, "cannot write %s: %s", csv, strerror(errno));
    sh_warm_save(cmd, csv, s, k);
    nh_ckpt_save(cmd, (snprintf(ck, sizeof ck, "%s.ckpt", csv), ck), id, k, net, log->rows, log->last);
    if (*saved > 0) remove(sh_warm_path(old, sizeof old, csv, *saved));
    *saved = k;
}

nh_status sh_run(const nh_cmd *cmd, nh_net **net, const nh_dataset *d, nh_loss loss, const sh_opts *o,
                 const char *csv, const nh_ckpt_id *id, long long *kend) {
    char ck[4096], wd[4096], header[2048];
    snprintf(ck, sizeof ck, "%s.ckpt", csv);
    snprintf(wd, sizeof wd, "%s.warm", csv);
    sh_header(header, sizeof header, o);
    if (o->restart) { NH_CHECK(cmd, nh_file_remove_tree(ck)); NH_CHECK(cmd, nh_file_remove_tree(wd)); }
    nh_ckpt_state cs;
    long long start = nh_ckpt_load(cmd, ck, id, o->steps, net, &cs);
    sh_state s;
    sh_state_init(cmd, &s, nh_net_nparams(*net), d->n * d->nout, o->top);
    if (start >= 0) sh_warm_load(cmd, csv, &s, start);
    if (start >= 0 && !o->quiet) fprintf(stderr, "ntkhess %s: resuming from step %lld (%s)\n", cmd->name, start, ck);
    nh_log log;
    sh_open_log(cmd, csv, header, &cs, start, &log);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create(*net, d->X, d->T, d->n, loss, &c));
    if (start < 0) { start = 0; sh_record(cmd, c, o, &s, 0, &log); }
    nh_status st = NH_OK;
    long long k, saved = start;
    double t0 = nh_cli_now();
    for (k = start + 1; k <= o->steps; k++) {
        st = nh_curv_gd_step(c, *net, o->eta);
        if (st != NH_OK) break;
        if (k % o->every == 0 || k == o->steps) sh_record(cmd, c, o, &s, k, &log);
        if (k % o->ckev == 0 && k < o->steps) sh_checkpoint(cmd, csv, id, &s, &log, k, &saved, *net);
        if (!o->quiet) nh_cli_progress("sharpness: step", (size_t)(k - start), (size_t)(o->steps - start), nh_cli_now() - t0);
    }
    if (fclose(log.f) != 0) nh_die(cmd, "cannot write %s", csv);
    nh_curv_free(c);
    sh_state_free(&s);
    *kend = st == NH_OK ? o->steps : k;
    if (st == NH_OK) { NH_CHECK(cmd, nh_file_remove_tree(ck)); NH_CHECK(cmd, nh_file_remove_tree(wd)); }
    return st;
}

/* --------------------------------------------------------- CSV reading */

void sh_table_read(const nh_cmd *cmd, const char *path, sh_table *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f) nh_die(cmd, "cannot read %s: %s", path, strerror(errno));
    static char line[1 << 16];
    if (!fgets(line, sizeof line, f)) nh_die(cmd, "%s: empty", path);
    line[strcspn(line, "\r\n")] = 0;
    t->cols = 1;
    for (char *p = line; *p; p++) t->cols += *p == ',';
    t->names = calloc(t->cols, sizeof *t->names);
    if (!t->names) nh_die(cmd, "out of memory");
    char *save = NULL, *tok = strtok_r(line, ",", &save);
    for (size_t j = 0; tok && j < t->cols; j++, tok = strtok_r(NULL, ",", &save)) t->names[j] = strdup(tok);
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        if (t->rows == cap) {
            cap = cap ? 2 * cap : 64;
            double *v = realloc(t->v, cap * t->cols * sizeof *v);
            if (!v) nh_die(cmd, "out of memory");
            t->v = v;
        }
        char *p = line;
        for (size_t j = 0; j < t->cols; j++) {
            char *e;
            t->v[t->rows * t->cols + j] = strtod(p, &e);
            if (e == p) t->v[t->rows * t->cols + j] = NAN;
            p = strchr(e, ',');
            p = p ? p + 1 : e;
        }
        t->rows++;
    }
    fclose(f);
}

int sh_table_col(const sh_table *t, const char *name) {
    for (size_t j = 0; j < t->cols; j++)
        if (t->names[j] && strcmp(t->names[j], name) == 0) return (int)j;
    return -1;
}

void sh_table_free(sh_table *t) {
    for (size_t j = 0; j < t->cols; j++) free(t->names[j]);
    free(t->names);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* ----------------------------------------------------------- sharpness */

static const nh_optspec sharp_opts[] = {
    {"model", "DIR", NULL, "model directory to start from"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets (see ntkhess train --help)"},
    NH_OPT_LOSS("mse"),
    {"lr", "ETA", NULL, "learning rate eta (> 0)"},
    {"steps", "K", NULL, "number of full-batch gradient-descent steps"},
    {"every", "E", "1", "a record every E steps (and at steps 0 and K)"},
    {"top", "k", "1", "eigenvalues per operator (1..16): k > 1 adds columns H_1..H_k, I_1..I_k, S_1..S_k"},
    {"batch", "B", "all", "batch for the curvature: only 'all' (or N) for now; minibatch streaming is issue 12"},
    {"tol", "TOL", "1e-7", "converged when the Ritz residual is <= TOL x the largest |Ritz value|"},
    {"maxit", "M", "100", "at most M products per eigen-solve (memory: M vectors of P doubles)"},
    {"min-steps", "M0", "4", "products before the first convergence test of a warm-started solve"},
    {"cold", NULL, NULL, "no warm starts: every solve from a seeded random vector (for checks and benchmarks)"},
    {"no-ntk", NULL, NULL, "skip lam_NTK (written as nan)"},
    {"checkpoint-every", "C", "50", "save a checkpoint (FILE.csv.ckpt, FILE.csv.warm) every C steps"},
    {"restart", NULL, NULL, "drop an unfinished run's checkpoint and start over"},
    {"out", "FILE.csv", NULL, "the records"},
    {"threads", "T", "auto", "threads for BLAS and OpenMP (a resumed run must use the same)"},
    {NULL, NULL, NULL, NULL}};

static void sharp_parse(const nh_cmd *cmd, const nh_args *a, size_t n, sh_opts *o) {
    memset(o, 0, sizeof *o);
    o->eta = nh_arg_double(a, "lr");
    if (!(o->eta > 0)) nh_die_usage(cmd, "--lr must be > 0, got %g", o->eta);
    o->steps = nh_arg_int(a, "steps", 0, (long long)1 << 40);
    o->every = nh_arg_int(a, "every", 1, (long long)1 << 40);
    o->ckev = nh_arg_int(a, "checkpoint-every", 1, (long long)1 << 40);
    o->top = (size_t)nh_arg_int(a, "top", 1, SH_MAXTOP);
    o->tol = nh_arg_double(a, "tol");
    if (!(o->tol > 0 && o->tol < 1)) nh_die_usage(cmd, "--tol must be in (0, 1), got %g", o->tol);
    o->maxit = (size_t)nh_arg_int(a, "maxit", 2, 100000);
    o->minsteps = (size_t)nh_arg_int(a, "min-steps", 1, 100000);
    o->cold = nh_arg_flag(a, "cold");
    o->ntk = !nh_arg_flag(a, "no-ntk");
    o->restart = nh_arg_flag(a, "restart");
    const char *b = nh_arg_req(a, "batch");
    char nb[32];
    snprintf(nb, sizeof nb, "%zu", n);
    if (strcmp(b, "all") != 0 && strcmp(b, nb) != 0)
        nh_die_usage(cmd, "--batch %s: only the full batch (all, or %zu) is supported for now (streaming: issue 12)", b, n);
}

static int run_sharpness(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_loss loss = nh_arg_loss(cmd, &a);
    const char *model = nh_arg_req(&a, "model"), *xp = nh_arg_req(&a, "data"), *tp = nh_arg_req(&a, "targets");
    const char *out = nh_arg_req(&a, "out");
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_model_load(model, &net));
    nh_dataset d;
    nh_cli_load_data(cmd, xp, tp, net, loss, &d);
    sh_opts o;
    sharp_parse(cmd, &a, d.n, &o);
    /* The checkpoint identity: everything that changes a record. */
    nh_ckpt_id id = {0};
    nh_ckpt_id_add(&id, "command", "sharpness");
    nh_ckpt_id_model(cmd, &id, model, net);
    nh_ckpt_id_file(cmd, &id, "data", xp);
    nh_ckpt_id_file(cmd, &id, "targets", tp);
    nh_ckpt_id_add(&id, "loss", "%s", nh_loss_name(loss));
    nh_ckpt_id_add(&id, "lr", "%.17g", o.eta);
    nh_ckpt_id_add(&id, "steps", "%lld", o.steps);
    nh_ckpt_id_add(&id, "every", "%lld", o.every);
    nh_ckpt_id_add(&id, "top", "%zu", o.top);
    nh_ckpt_id_add(&id, "tol", "%.17g", o.tol);
    nh_ckpt_id_add(&id, "maxit", "%zu,%zu", o.maxit, o.minsteps);
    nh_ckpt_id_add(&id, "cold-ntk", "%d,%d", o.cold, o.ntk); /* names: [a-z0-9_-] */
    long long kend;
    double t0 = nh_cli_now();
    nh_status st = sh_run(cmd, &net, &d, loss, &o, out, &id, &kend);
    if (st != NH_OK) nh_die(cmd, "%s at step %lld: %s", nh_strerror(st), kend, nh_last_error());
    fprintf(stderr, "ntkhess sharpness: %lld steps, records in %s (%.1f s)\n", o.steps, out, nh_cli_now() - t0);
    nh_net_free(net);
    nh_dataset_free(&d);
    return 0;
}

const nh_cmd nh_cmd_sharpness = {
    "sharpness", "Top eigenvalues of H, I, S and the NTK along full-batch gradient descent.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] --lr ETA --steps K [--every E] [--top k] --out FILE.csv",
    "Trains as 'ntkhess train' (theta <- theta - eta grad C, the same steps bit for bit) and\n"
    "writes a record at steps 0, E, 2E, ..., K: step,t,loss,grad_norm, lam_H and lam_I (largest\n"
    "eigenvalues of H and I = J^T HC J), lam_S (the eigenvalue of S = H - I largest in magnitude,\n"
    "signed), lam_NTK (largest eigenvalue of the NTK Gram J J^T divided by N; equal to lam_I for\n"
    "mse, whose HC is 1/N), grad_overlap = |g . u_H| / |g| (u_H the top unit eigenvector of H),\n"
    "uIu and uSu = u_H^T I u_H and u_H^T S u_H (they sum to lam_H: which part makes the top of H),\n"
    "and matvecs_* (operator products used by each solve: H v, I v, S v, with the one I v, S v\n"
    "pair of uIu, uSu counted under H; for NTK one J^T u and one J v).  The solves are Lanczos with full reorthogonalization on exact products, started\n"
    "from the previous record's eigenvectors and stopped when every wanted Ritz residual is <=\n"
    "TOL x the largest |Ritz value| (tested after each product, from --min-steps on), so a\n"
    "record costs a few products once the spectrum moves slowly.  A warm start can in principle\n"
    "miss an eigenvalue that overtakes the tracked one faster than Lanczos finds it: --cold\n"
    "gives independent solves to compare.  Only full-batch curvature for now (--batch all):\n"
    "minibatch streaming is issue 12.  A run that is killed and started again with the same\n"
    "arguments (and --threads) resumes from FILE.csv.ckpt and writes the same file bit for bit.",
    sharp_opts, run_sharpness};
