/* sharp.c -- sharpness along training (ntkhess/sharp.h): top eigenpairs of
 * H, I, S and the NTK Gram / N by Lanczos with full reorthogonalization and a
 * convergence test after every product, warm-started from the previous
 * record, so that a record costs a few products once the spectrum moves
 * slowly.  Built on the public product API (nh_curv_hvp/ivp/svp, jvp/vjp).
 * Dot products are plain loops in a fixed order: a run repeats bit for bit,
 * and a resumed run equals the uninterrupted one. */
#include "core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ operators */

static size_t sh_nm(const nh_curv *c) {
    const nh_net *net = nh_curv_net(c);
    return nh_curv_nsamples(c) * nh_net_widths(net)[nh_net_depth(net)];
}

static size_t sh_dim(const nh_curv *c, nh_sharp_op op) {
    return op == NH_SHARP_NTK ? sh_nm(c) : nh_net_nparams(nh_curv_net(c));
}

/* out = A v for A = H, I, S (dim P) or K / N = J J^T / N (dim N n_L). */
static nh_status sh_apply(nh_curv *c, nh_sharp_op op, const double *v, double *out, double *tmpP) {
    switch (op) {
    case NH_SHARP_H: return nh_curv_hvp(c, v, out);
    case NH_SHARP_I: return nh_curv_ivp(c, v, out);
    case NH_SHARP_S: return nh_curv_svp(c, v, out);
    default: break;
    }
    size_t n = nh_curv_nsamples(c), nm = sh_nm(c);
    nh_status st = nh_curv_vjp(c, v, tmpP);
    if (st == NH_OK) st = nh_curv_jvp(c, tmpP, out);
    for (size_t i = 0; st == NH_OK && i < nm; i++) out[i] /= (double)n;
    return st;
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
 * values into idx; the largest residual estimate relative to the largest
 * |Ritz value| into *relres.  Z: eigenvectors (row-major, columns). */
static nh_status sh_ritz(size_t m, const double *alpha, const double *beta, double bnext,
                         const nh_sharp_eig_opts *o, double *T, double *theta, double *Z, size_t *idx,
                         double *relres) {
    memset(T, 0, m * m * sizeof *T);
    for (size_t i = 0; i < m; i++) {
        T[i * m + i] = alpha[i];
        if (i + 1 < m) T[i * m + i + 1] = T[(i + 1) * m + i] = beta[i];
    }
    NH_TRY(nh_eigh(m, T, theta, Z));
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

static void sh_work_free(sh_work *w) {
    free(w->V); free(w->alpha); free(w->beta); free(w->T); free(w->Z); free(w->theta); free(w->tmpP); free(w->idx);
}

static nh_status sh_work_alloc(sh_work *w, size_t dim, size_t mx, size_t P) {
    memset(w, 0, sizeof *w);
    double need = ((double)(mx + 1) * (double)dim + 2.0 * (double)mx * (double)mx + (double)P) * 8.0;
    if (need > (double)nh_get_mem_limit())
        NH_FAIL(NH_ETOOLARGE, "a Krylov basis of %zu x %zu doubles exceeds the memory limit", mx + 1, dim);
    w->V = nh__malloc((mx + 1) * dim * sizeof *w->V);
    w->alpha = nh__malloc(mx * sizeof *w->alpha);
    w->beta = nh__malloc(mx * sizeof *w->beta);
    w->T = nh__malloc(mx * mx * sizeof *w->T);
    w->Z = nh__malloc(mx * mx * sizeof *w->Z);
    w->theta = nh__malloc(mx * sizeof *w->theta);
    w->tmpP = nh__malloc(P * sizeof *w->tmpP);
    w->idx = nh__malloc(mx * sizeof *w->idx);
    if (!w->V || !w->alpha || !w->beta || !w->T || !w->Z || !w->theta || !w->tmpP || !w->idx) {
        sh_work_free(w);
        NH_FAIL(NH_ENOMEM, "out of memory for a Krylov basis of %zu x %zu doubles", mx + 1, dim);
    }
    return NH_OK;
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

/* One Lanczos step on basis row j: beta_j (the norm before normalizing
 * row j + 1) into *bnext. */
static nh_status sh_step(nh_curv *c, nh_sharp_op op, size_t dim, size_t j, sh_work *w, double *bnext) {
    double *vj = w->V + j * dim, *wn = w->V + (j + 1) * dim;
    NH_TRY(sh_apply(c, op, vj, wn, w->tmpP));
    w->alpha[j] = sh_dot(dim, wn, vj);
    *bnext = sh_orth(dim, j + 1, w->V, wn);
    return NH_OK;
}

/* The Lanczos loop: m basis rows on return. */
static nh_status sh_iterate(nh_curv *c, nh_sharp_op op, const nh_sharp_eig_opts *o, size_t dim, size_t mx,
                            sh_work *w, nh_rng *rng, size_t *mout, nh_sharp_eig_res *res) {
    size_t m = 0;
    double relres = INFINITY, scale = 0;
    nh_status st = NH_OK;
    while (m < mx) {
        double b;
        if ((st = sh_step(c, op, dim, m, w, &b)) != NH_OK) break;
        res->nprod++;
        m++;
        /* ||A|| >= |alpha_j|, beta_j: an invariant subspace when beta is at rounding level of that */
        scale = fmax(scale, fabs(w->alpha[m - 1]) + b);
        int invariant = b <= 1e-13 * scale || m == dim;
        if (m >= o->k && (st = sh_ritz(m, w->alpha, w->beta, invariant ? 0 : b, o, w->T, w->theta, w->Z, w->idx,
                                       &relres)) != NH_OK)
            break;
        if (m >= o->k && (invariant || (m >= o->minsteps && relres <= o->tol))) { res->converged = 1; break; }
        if (m == mx) break;
        w->beta[m - 1] = invariant ? 0 : b;
        double *vn = w->V + m * dim;
        if (invariant) {
            if (!sh_fresh(dim, m, w->V, rng, vn)) { res->converged = 1; break; }
        } else {
            for (size_t i = 0; i < dim; i++) vn[i] /= b;
        }
    }
    *mout = m;
    return st;
}

nh_status nh_sharp_eigs(nh_curv *c, nh_sharp_op op, const nh_sharp_eig_opts *o, const double *start,
                        size_t nstart, double *evals, double *evecs, nh_sharp_eig_res *res) {
    if (!c || !o || !evals || !evecs || !res || (start && nstart == 0)) NH_FAIL(NH_EINVAL, "NULL argument");
    if ((unsigned)op >= NH_SHARP_NOPS) NH_FAIL(NH_EINVAL, "unknown operator %d", (int)op);
    if (!(o->tol > 0 && o->tol < 1)) NH_FAIL(NH_EINVAL, "tol must be in (0, 1), got %g", o->tol);
    size_t dim = sh_dim(c, op), mx = o->maxit < dim ? o->maxit : dim, m = 0;
    if (o->k == 0 || o->k > mx) NH_FAIL(NH_EINVAL, "top %zu must be in 1..min(maxit, dimension) = %zu", o->k, mx);
    sh_work w;
    NH_TRY(sh_work_alloc(&w, dim, mx, nh_net_nparams(nh_curv_net(c))));
    nh_rng rng;
    nh_rng_seed(&rng, o->seed);
    res->nprod = 0;
    res->converged = 0;
    sh_start(dim, start, nstart, &rng, w.V);
    nh_status st = sh_iterate(c, op, o, dim, mx, &w, &rng, &m, res);
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
    return st;
}

/* ------------------------------------------------------------- records */

struct nh_sharp {
    nh_sharp_opts o;
    size_t P, nm, n, len[NH_SHARP_NOPS], total;
    double *buf, *vec[NH_SHARP_NOPS], *grad, *iv, *sv;
    int have; /* the vectors hold a record's (or a restored state) */
};

nh_sharp_opts nh_sharp_opts_default(void) {
    nh_sharp_opts o = {1, 1e-7, 100, 4, 0, 1};
    return o;
}

void nh_sharp_free(nh_sharp *s) {
    if (!s) return;
    free(s->buf); free(s->grad); free(s->iv); free(s->sv);
    free(s);
}

nh_status nh_sharp_create(const nh_curv *c, const nh_sharp_opts *o, nh_sharp **out) {
    if (!c || !o || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    *out = NULL;
    if (o->top < 1 || o->top > NH_SHARP_MAXTOP) NH_FAIL(NH_EINVAL, "top must be in 1..%d, got %zu", NH_SHARP_MAXTOP, o->top);
    if (!(o->tol > 0 && o->tol < 1)) NH_FAIL(NH_EINVAL, "tol must be in (0, 1), got %g", o->tol);
    if (o->maxit < 2 || o->min_steps < 1) NH_FAIL(NH_EINVAL, "maxit must be >= 2 and min_steps >= 1");
    size_t P = nh_net_nparams(nh_curv_net(c)), nm = sh_nm(c);
    int ok = 1;
    size_t total = nh__add(nh__mul(3, nh__mul(o->top, P, &ok), &ok), nm, &ok);
    if (!ok || (double)(total + 3 * P) * 8.0 > (double)nh_get_mem_limit())
        NH_FAIL(NH_ETOOLARGE, "warm-start vectors (%zu doubles) exceed the memory limit", total);
    nh_sharp *s = nh__calloc(1, sizeof *s);
    if (!s) NH_FAIL(NH_ENOMEM, "out of memory");
    s->o = *o;
    s->P = P; s->nm = nm; s->n = nh_curv_nsamples(c); s->total = total;
    s->len[NH_SHARP_H] = s->len[NH_SHARP_I] = s->len[NH_SHARP_S] = o->top * P;
    s->len[NH_SHARP_NTK] = nm;
    s->buf = nh__calloc(total, sizeof *s->buf);
    s->grad = nh__malloc(P * sizeof *s->grad);
    s->iv = nh__malloc(P * sizeof *s->iv);
    s->sv = nh__malloc(P * sizeof *s->sv);
    if (!s->buf || !s->grad || !s->iv || !s->sv) { nh_sharp_free(s); NH_FAIL(NH_ENOMEM, "out of memory"); }
    size_t off = 0;
    for (int op = 0; op < NH_SHARP_NOPS; op++) { s->vec[op] = s->buf + off; off += s->len[op]; }
    *out = s;
    return NH_OK;
}

/* The eigen-solves of a record, into row (lam_*, top, matvecs, unconverged). */
static nh_status sh_solves(nh_sharp *s, nh_curv *c, uint64_t step, nh_sharp_row *row) {
    double lamk = NAN;
    for (int op = 0; op < NH_SHARP_NOPS; op++) {
        if (op == NH_SHARP_NTK && !s->o.ntk) break;
        nh_sharp_eig_opts eo = {op == NH_SHARP_NTK ? 1 : s->o.top, op == NH_SHARP_S, s->o.tol, s->o.maxit,
                                s->o.min_steps, step * NH_SHARP_NOPS + (uint64_t)op};
        const double *start = s->have && !s->o.cold ? s->vec[op] : NULL;
        nh_sharp_eig_res r;
        NH_TRY(nh_sharp_eigs(c, (nh_sharp_op)op, &eo, start, eo.k, op == NH_SHARP_NTK ? &lamk : row->top[op],
                             s->vec[op], &r));
        row->matvecs[op] = r.nprod;
        row->unconverged += !r.converged;
    }
    row->lam_H = row->top[0][0];
    row->lam_I = row->top[1][0];
    row->lam_S = row->top[2][0];
    row->lam_NTK = lamk;
    return NH_OK;
}

nh_status nh_sharp_record(nh_sharp *s, nh_curv *c, uint64_t step, nh_sharp_row *row) {
    if (!s || !c || !row) NH_FAIL(NH_EINVAL, "NULL argument");
    if (nh_net_nparams(nh_curv_net(c)) != s->P || sh_nm(c) != s->nm || nh_curv_nsamples(c) != s->n)
        NH_FAIL(NH_EINVAL, "the context's P, N or n_L differ from the tracker's");
    memset(row, 0, sizeof *row);
    for (int op = 0; op < 3; op++)
        for (size_t j = 0; j < NH_SHARP_MAXTOP; j++) row->top[op][j] = j < s->o.top ? 0 : NAN;
    nh_status st = sh_solves(s, c, step, row);
    if (st != NH_OK) { s->have = 0; return st; } /* partly overwritten vectors: no warm start from them */
    s->have = 1;
    size_t P = s->P;
    NH_TRY(nh_curv_grad(c, s->grad));
    double gn = sqrt(sh_dot(P, s->grad, s->grad));
    row->loss = nh_curv_loss(c);
    row->grad_norm = gn;
    row->grad_overlap = gn > 0 ? fabs(sh_dot(P, s->grad, s->vec[NH_SHARP_H])) / gn : NAN;
    /* lam_H split along its eigenvector u: u^T I u + u^T S u = lam_H (one isvp
     * product, counted with H): which of I and S makes the top of H. */
    NH_TRY(nh_curv_isvp(c, s->vec[NH_SHARP_H], s->iv, s->sv));
    row->uIu = sh_dot(P, s->vec[NH_SHARP_H], s->iv);
    row->uSu = sh_dot(P, s->vec[NH_SHARP_H], s->sv);
    row->matvecs[NH_SHARP_H]++;
    return NH_OK;
}

size_t nh_sharp_state_len(const nh_sharp *s) { return s ? s->total : 0; }

nh_status nh_sharp_state_get(const nh_sharp *s, double *state) {
    if (!s || !state) NH_FAIL(NH_EINVAL, "NULL argument");
    memcpy(state, s->buf, s->total * sizeof *state);
    return NH_OK;
}

nh_status nh_sharp_state_set(nh_sharp *s, const double *state) {
    if (!s || !state) NH_FAIL(NH_EINVAL, "NULL argument");
    for (size_t i = 0; i < s->total; i++)
        if (!isfinite(state[i])) NH_FAIL(NH_ENONFINITE, "warm-start state entry %zu is not finite", i);
    memcpy(s->buf, state, s->total * sizeof *state);
    s->have = 1;
    return NH_OK;
}
