/* test_eigen.c -- eigenspace tools (est.c): top-k eigenvectors of H, I, S
 * against LAPACK on small nets (nh_curv_dense + nh_eigh), nh_subspace_overlap
 * against the dense projection, nh_principal_angles against spaces built with
 * known angles, and deflated SLQ (the bulk) against the dense spectrum. */
#include "ntkhess.h"
#include "nh_test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NOTE(...) do { printf("  note: "); printf(__VA_ARGS__); printf("\n"); } while (0)

typedef struct {
    nh_net *net;
    nh_curv *c;
    double *X, *T;
    size_t P, n;
} fix_t;

/* Inputs N(shift, 1): a shift gives the NTK (and H) a few outliers. */
static fix_t make_fix(size_t L, const size_t *w, nh_act act, nh_loss loss, size_t n, double shift, uint64_t seed) {
    fix_t f;
    memset(&f, 0, sizeof f);
    nh_net_config cfg = nh_net_config_default();
    cfg.depth = L; cfg.widths = w; cfg.act = act;
    if (nh_net_create(&cfg, &f.net) != NH_OK) { printf("create: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(f.net, seed);
    f.P = nh_net_nparams(f.net); f.n = n;
    const size_t m = w[L];
    nh_rng r; nh_rng_seed(&r, seed + 100);
    f.X = malloc(n * w[0] * sizeof *f.X);
    f.T = malloc(n * m * sizeof *f.T);
    nh_rng_fill_normal(&r, n * w[0], f.X);
    for (size_t i = 0; i < n * w[0]; i++) f.X[i] += shift;
    for (size_t i = 0; i < n * m; i++) {
        double u = nh_rng_normal(&r);
        f.T[i] = loss == NH_LOSS_MSE ? u : loss == NH_LOSS_BCE ? (u > 0 ? 1.0 : -1.0) : (double)(nh_rng_u64(&r) % m);
    }
    if (nh_curv_create(f.net, f.X, f.T, n, loss, &f.c) != NH_OK) { printf("curv: %s\n", nh_last_error()); exit(1); }
    return f;
}

static void free_fix(fix_t *f) { nh_curv_free(f->c); nh_net_free(f->net); free(f->X); free(f->T); }

/* Dense A = H, I or S: eigenvalues ascending, eigenvectors as columns. */
typedef struct { size_t P; double *A, *w, *V; } dense_t;

static dense_t make_dense(fix_t *f, nh_op op) {
    const size_t P = f->P;
    dense_t d = {P, malloc(P * P * sizeof(double)), malloc(P * sizeof(double)), malloc(P * P * sizeof(double))};
    nh_status st = nh_curv_dense(f->c, op == NH_OP_H ? d.A : NULL, op == NH_OP_I ? d.A : NULL, op == NH_OP_S ? d.A : NULL);
    if (st != NH_OK) { printf("dense: %s\n", nh_last_error()); exit(1); }
    for (size_t a = 0; a < P; a++)
        for (size_t b = a + 1; b < P; b++) d.A[a * P + b] = d.A[b * P + a] = 0.5 * (d.A[a * P + b] + d.A[b * P + a]);
    if (nh_eigh(P, d.A, d.w, d.V) != NH_OK) { printf("eigh: %s\n", nh_last_error()); exit(1); }
    return d;
}

static void free_dense(dense_t *d) { free(d->A); free(d->w); free(d->V); }

/* Indices of the dense eigenvalues in `which` order (LA: descending, LM:
 * |.| descending). */
static void dense_order(const dense_t *d, nh_which which, size_t *ord) {
    const size_t P = d->P;
    for (size_t i = 0; i < P; i++) ord[i] = P - 1 - i;
    if (which != NH_WHICH_LM) return;
    for (size_t i = 1; i < P; i++) {
        size_t t = ord[i], j = i;
        while (j > 0 && fabs(d->w[ord[j - 1]]) < fabs(d->w[t])) { ord[j] = ord[j - 1]; j--; }
        ord[j] = t;
    }
}

/* Rows U[k x P] = the dense eigenvectors ord[0..k-1]. */
static void dense_rows(const dense_t *d, const size_t *ord, size_t k, double *U) {
    for (size_t i = 0; i < k; i++)
        for (size_t p = 0; p < d->P; p++) U[i * d->P + p] = d->V[p * d->P + ord[i]];
}

static const char *opn[3] = {"H", "I", "S"};

/* ------------------------------------------- top-k eigenpairs vs LAPACK */

static void check_topk(fix_t *f, nh_op op, nh_which which, size_t k, const char *tag) {
    const size_t P = f->P;
    dense_t d = make_dense(f, op);
    size_t *ord = malloc(P * sizeof *ord);
    dense_order(&d, which, ord);
    const double an = fmax(fabs(d.w[0]), fabs(d.w[P - 1]));
    const double gap = fabs(d.w[ord[k - 1]] - d.w[ord[k]]);
    /* The angle bound below needs an eigengap after the k-th value. */
    nh_check(gap > 1e-2 * an, "%s %s: eigengap after k = %zu is %.3g ||A|| > 1e-2", tag, opn[op], k, gap / an);
    double *ev = malloc(k * sizeof *ev), *X = malloc(k * P * sizeof *X), *U = malloc(k * P * sizeof *U);
    double ang[16];
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.which = which; lo.seed = 3;
    nh_check(nh_curv_lanczos(f->c, op, k, &lo, ev, X, NULL, NULL) == NH_OK, "%s %s: lanczos (%s)", tag, opn[op], nh_last_error());
    /* Eigenvalues: Lanczos converges to residual 1e-10 ||A||, so eigenvalue
     * errors are <= that (and quadratic in it for isolated ones). */
    for (size_t i = 0; i < k; i++) {
        nh_check_close(ev[i], d.w[ord[i]], 1e-10 * an, 0, "%s %s: eigenvalue %zu vs LAPACK", tag, opn[op], i);
        /* and relative to itself (isolated eigenvalues converge quadratically
         * in the residual, so even the smaller top-k ones meet 1e-10) */
        nh_check_close(ev[i], d.w[ord[i]], 0, 1e-10, "%s %s: eigenvalue %zu vs LAPACK, 1e-10 relative", tag, opn[op], i);
    }
    /* Spans: sin(angle) <= residual / gap <= 1e-10 ||A|| / (1e-2 ||A||). */
    dense_rows(&d, ord, k, U);
    nh_check(nh_principal_angles(k, k, P, X, U, ang) == NH_OK, "%s %s: angles computed", tag, opn[op]);
    nh_check(ang[k - 1] <= 1e-8, "%s %s: top-%zu span == LAPACK's (largest principal angle %.3g <= 1e-8)", tag, opn[op], k, ang[k - 1]);
    NOTE("%s %s: top-%zu largest principal angle to LAPACK %.2e, gap %.3g ||A||", tag, opn[op], k, ang[k - 1], gap / an);
    free(ev); free(X); free(U); free(ord); free_dense(&d);
}

/* ------------------------------------------------------ principal angles */

/* Q: a P x P orthogonal matrix (eigenvectors of a random symmetric one). */
static double *random_orthogonal(size_t P, uint64_t seed) {
    double *A = malloc(P * P * sizeof *A), *w = malloc(P * sizeof *w), *Q = malloc(P * P * sizeof *Q);
    nh_rng r; nh_rng_seed(&r, seed);
    nh_rng_fill_normal(&r, P * P, A);
    for (size_t a = 0; a < P; a++) for (size_t b = a + 1; b < P; b++) A[b * P + a] = A[a * P + b];
    nh_eigh(P, A, w, Q);
    free(A); free(w);
    return Q;
}

/* span(U) (3 rows) and span(V) (5 rows) in R^P with principal angles th:
 * u_i = q_i, v_i = cos th_i q_i + sin th_i q_{3+i}, v_4 = q_7, v_5 = q_8 (q_j
 * the columns of a random orthogonal Q); then each basis is mixed by an
 * invertible triangular matrix, so neither is orthonormal. */
static void test_angles_known(void) {
    const size_t P = 40;
    const double th[3] = {1e-9, 0.3, 1.2};
    double *Q = random_orthogonal(P, 7), U[3 * 40], V[5 * 40], U2[3 * 40], V2[5 * 40];
#define QC(j, p) Q[(p) * P + (j)]
    for (size_t p = 0; p < P; p++) {
        for (size_t i = 0; i < 3; i++) { U[i * P + p] = QC(i, p); V[i * P + p] = cos(th[i]) * QC(i, p) + sin(th[i]) * QC(3 + i, p); }
        V[3 * P + p] = QC(6, p); V[4 * P + p] = QC(7, p);
    }
#undef QC
    for (size_t i = 0; i < 3; i++)
        for (size_t p = 0; p < P; p++) { U2[i * P + p] = 0; for (size_t j = i; j < 3; j++) U2[i * P + p] += (1.0 + (double)(i + j)) * U[j * P + p]; }
    for (size_t i = 0; i < 5; i++)
        for (size_t p = 0; p < P; p++) { V2[i * P + p] = 0; for (size_t j = 0; j <= i; j++) V2[i * P + p] += (j == i ? 2.0 : 0.5) * V[j * P + p]; }
    double a[5], b[5];
    nh_check(nh_principal_angles(3, 5, P, U2, V2, a) == NH_OK, "angles 3 x 5 (%s)", nh_last_error());
    nh_check(nh_principal_angles(5, 3, P, V2, U2, b) == NH_OK, "angles 5 x 3 (%s)", nh_last_error());
    /* Rounding in the mixed bases (condition ~10) gives ~1e-15 absolute
     * errors; 1e-13 keeps 1e-9 to 4 digits, which acos of the cosine
     * (error ~ sqrt(eps) = 1e-8) could not. */
    for (int i = 0; i < 3; i++) {
        nh_check_close(a[i], th[i], 1e-13, 0, "angles: %d-th (ascending) == the constructed one", i);
        nh_check_close(b[i], a[i], 1e-14, 0, "angles: symmetric in the two arguments, %d", i);
    }
    NOTE("principal angle 1e-9 recovered as %.10e (error %.2e)", a[0], fabs(a[0] - 1e-9));
    /* Same space (a different basis): all 0; a space and its complement: pi/2. */
    nh_check(nh_principal_angles(3, 3, P, U, U2, a) == NH_OK && a[2] <= 1e-14, "angles: a space with itself is 0 (%.3g)", a[2]);
    double W[2 * 40];
    for (size_t p = 0; p < P; p++) { W[p] = Q[p * P + 20]; W[P + p] = Q[p * P + 30]; }
    nh_check(nh_principal_angles(3, 2, P, U, W, a) == NH_OK, "angles: orthogonal spaces");
    nh_check_close(a[0], M_PI / 2, 1e-14, 0, "angles: orthogonal spaces give pi/2");
    /* Bad input. */
    nh_check(nh_principal_angles(0, 3, P, U, V, a) == NH_EINVAL, "angles: k1 = 0 refused");
    nh_check(nh_principal_angles(3, 41, P, U, V, a) == NH_EINVAL, "angles: k2 > P refused");
    memcpy(U2 + P, U2, P * sizeof *U2); /* rows 0 and 1 equal */
    nh_check(nh_principal_angles(3, 3, P, U2, U, a) == NH_EINVAL, "angles: dependent rows refused (%s)", nh_last_error());
    U2[5] = NAN;
    nh_check(nh_principal_angles(3, 3, P, U2, U, a) == NH_ENONFINITE, "angles: NaN refused");
    free(Q);
}

/* --------------------------------------------------------------- overlap */

static void test_overlap(fix_t *f) {
    const size_t P = f->P, k = 4;
    dense_t d = make_dense(f, NH_OP_H);
    size_t *ord = malloc(P * sizeof *ord);
    dense_order(&d, NH_WHICH_LA, ord);
    double *g = malloc(P * sizeof *g), *U = malloc(k * P * sizeof *U), *X = malloc(k * P * sizeof *X);
    double *Pk = calloc(P * P, sizeof *Pk), *pg = malloc(P * sizeof *pg), ev[4], comp[4], ov, ovl;
    nh_curv_grad(f->c, g);
    dense_rows(&d, ord, k, U);
    /* The dense projection matrix P_k = sum_i v_i v_i^T applied to g. */
    for (size_t i = 0; i < k; i++)
        for (size_t a = 0; a < P; a++)
            for (size_t b = 0; b < P; b++) Pk[a * P + b] += U[i * P + a] * U[i * P + b];
    for (size_t a = 0; a < P; a++) pg[a] = dot(Pk + a * P, g, P);
    const double want = nrm(pg, P) / nrm(g, P);
    nh_check(nh_subspace_overlap(k, P, U, g, &ov, comp) == NH_OK, "overlap: dense eigenvectors (%s)", nh_last_error());
    /* Rounding of P-term sums only. */
    nh_check_close(ov, want, 1e-14, 1e-12, "overlap: ||U g||/||g|| == ||P_k g||/||g|| (dense projection)");
    double s2 = 0;
    for (size_t i = 0; i < k; i++) {
        nh_check_close(comp[i], fabs(dot(U + i * P, g, P)) / nrm(g, P), 1e-15, 1e-12, "overlap: component %zu", i);
        s2 += comp[i] * comp[i];
    }
    nh_check_close(sqrt(s2), ov, 1e-15, 1e-12, "overlap: sum of squared components == overlap^2");
    /* From Lanczos eigenvectors (signs free): the span error <= 1e-8. */
    nh_curv_lanczos(f->c, NH_OP_H, k, NULL, ev, X, NULL, NULL);
    nh_check(nh_subspace_overlap(k, P, X, g, &ovl, NULL) == NH_OK, "overlap: lanczos eigenvectors");
    nh_check_close(ovl, want, 1e-8, 0, "overlap: lanczos top-%zu of H vs the dense projection", k);
    NOTE("overlap of the gradient with the top-%zu eigenspace of H: %.12f (dense %.12f)", k, ovl, want);
    /* Closed form: unit vectors e_0, e_1 pick g's first two entries. */
    double E[2 * 200];
    memset(E, 0, sizeof E);
    E[0] = 1; E[P + 1] = 1;
    nh_subspace_overlap(2, P, E, g, &ov, NULL);
    nh_check_close(ov, hypot(g[0], g[1]) / nrm(g, P), 1e-16, 1e-14, "overlap: coordinate subspace, closed form");
    /* Bad input. */
    nh_check(nh_subspace_overlap(0, P, U, g, &ov, NULL) == NH_EINVAL, "overlap: k = 0 refused");
    nh_check(nh_subspace_overlap(P + 1, P, U, g, &ov, NULL) == NH_EINVAL, "overlap: k > P refused");
    E[P + 1] = 1.01;
    nh_check(nh_subspace_overlap(2, P, E, g, &ov, NULL) == NH_EINVAL, "overlap: rows not orthonormal refused (%s)", nh_last_error());
    memset(pg, 0, P * sizeof *pg);
    nh_check(nh_subspace_overlap(k, P, U, pg, &ov, NULL) == NH_EINVAL, "overlap: zero g refused");
    free(g); free(U); free(X); free(Pk); free(pg); free(ord); free_dense(&d);
}

/* ----------------------------------------------------------- deflated SLQ */

/* The documented probe stream (est.c), re-implemented. */
static void probe_ref(int gauss, uint64_t seed, uint64_t j, size_t P, double *v) {
    nh_rng r; nh_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (j + 1)));
    if (gauss) { nh_rng_fill_normal(&r, P, v); return; }
    uint64_t b = 0;
    for (size_t i = 0; i < P; i++) {
        if (i % 64 == 0) b = nh_rng_u64(&r);
        v[i] = (b >> (i % 64)) & 1u ? 1.0 : -1.0;
    }
}

/* mean_r u_r^T A^k u_r for u_r = P_perp z_r / |P_perp z_r|, by dense products:
 * what SLQ with m >= 3 steps returns exactly (Gauss quadrature is exact for
 * degree <= 2m - 1). */
static void deflated_quad_ref(const dense_t *d, size_t q, const double *D, const nh_slq_opts *o, double mom[4]) {
    const size_t P = d->P;
    double *u = malloc(P * sizeof *u), *a = malloc(P * sizeof *a), *b = malloc(P * sizeof *b);
    memset(mom, 0, 4 * sizeof *mom);
    for (size_t r = 0; r < o->nvec; r++) {
        probe_ref(o->probe == NH_PROBE_GAUSSIAN, o->seed, r, P, u);
        for (size_t i = 0; i < q; i++) {
            double c = dot(D + i * P, u, P);
            for (size_t p = 0; p < P; p++) u[p] -= c * D[i * P + p];
        }
        double n = nrm(u, P);
        for (size_t p = 0; p < P; p++) u[p] /= n;
        memcpy(a, u, P * sizeof *a);
        for (int k = 0; k < 4; k++) { /* a = A^(k+1) u */
            for (size_t p = 0; p < P; p++) b[p] = dot(d->A + p * P, a, P);
            memcpy(a, b, P * sizeof *a);
            mom[k] += dot(u, a, P) / (double)o->nvec;
        }
    }
    free(u); free(a); free(b);
}

static void test_deflated_slq(fix_t *f, nh_op op, size_t q, const char *tag) {
    const size_t P = f->P;
    dense_t d = make_dense(f, op);
    size_t *ord = malloc(P * sizeof *ord);
    dense_order(&d, NH_WHICH_LA, ord);
    const double an = fmax(fabs(d.w[0]), fabs(d.w[P - 1]));
    double *D = malloc(q * P * sizeof *D), *X = malloc(q * P * sizeof *X), ev[8];
    dense_rows(&d, ord, q, D);
    nh_slq_opts o = nh_slq_opts_default();
    o.nvec = 40; o.nsteps = 12; o.probe = NH_PROBE_GAUSSIAN; o.seed = 5;
    o.ndeflate = q; o.deflate = D;
    nh_slq_result r;
    const size_t nn = o.nvec * o.nsteps;
    double *nodes = malloc(nn * sizeof *nodes), *wts = malloc(nn * sizeof *wts);
    nh_check(nh_curv_slq(f->c, op, &o, nodes, wts, 0, NULL, 0, NULL, &r) == NH_OK, "%s: deflated SLQ (%s)", tag, nh_last_error());
    /* 1) The implementation: moments == the dense quadratic forms of the
     * same projected start vectors (only rounding: 1e-10 ||A||^k). */
    double ref[4];
    deflated_quad_ref(&d, q, D, &o, ref);
    for (int k = 0; k < 4; k++)
        nh_check_close(r.moments[k], ref[k], 1e-10 * pow(an, k + 1), 0, "%s: bulk moment %d == mean u^T A^k u (P_perp u)", tag, k + 1);
    /* 2) The trace identity, Tr(A^k) = sum_{i<=q} lambda_i^k + (P - q) m_k,
     * within 4 SE (Monte Carlo over 40 fixed-seed vectors). */
    for (int k = 0; k < 4; k++) {
        double tr = 0, top = 0;
        for (size_t i = 0; i < P; i++) tr += pow(d.w[i], k + 1);
        for (size_t i = 0; i < q; i++) top += pow(d.w[ord[i]], k + 1);
        const double est = top + (double)(P - q) * r.moments[k], se = (double)(P - q) * r.moments_se[k];
        nh_check_close(est, tr, 4 * se + 1e-10 * pow(an, k + 1), 0, "%s: deflated sum + (P-q) bulk moment %d == Tr(A^%d)", tag, k + 1, k + 1);
        NOTE("%s: Tr(A^%d) dense %.6g, deflated estimate %.6g +- %.2g", tag, k + 1, tr, est, se);
    }
    /* 3) Weights sum to 1 per vector over the complement. */
    double ws = 0;
    for (size_t i = 0; i < nn; i++) ws += wts[i];
    nh_check_close(ws, 1.0, 1e-12, 0, "%s: bulk weights sum to 1", tag);
    /* 4) The bulk's Ritz values lie in [lambda_min, lambda_{q+1}] (the
     * restricted operator's spectrum), up to rounding. */
    double hi = -INFINITY;
    for (size_t i = 0; i < nn; i++) if (wts[i] > 0) hi = fmax(hi, nodes[i]);
    nh_check(hi <= d.w[ord[q]] + 1e-10 * an, "%s: largest bulk node %.10g <= lambda_{q+1} = %.10g", tag, hi, d.w[ord[q]]);
    /* 5) Deflating Lanczos eigenvectors (as the CLI does) gives the same
     * moments up to the span error (angle <= 1e-8: moments within 1e-7). */
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    nh_curv_lanczos(f->c, op, q, &lo, ev, X, NULL, NULL);
    nh_slq_result r2;
    o.deflate = X;
    nh_check(nh_curv_slq(f->c, op, &o, NULL, NULL, 0, NULL, 0, NULL, &r2) == NH_OK, "%s: SLQ deflating lanczos vectors", tag);
    for (int k = 0; k < 4; k++)
        nh_check_close(r2.moments[k], r.moments[k], 1e-7 * pow(an, k + 1), 0, "%s: moment %d, lanczos vs exact deflation", tag, k + 1);
    free(D); free(X); free(nodes); free(wts); free(ord); free_dense(&d);
}

/* The full density has outliers at the top q eigenvalues; the deflated one
 * does not. */
static void test_outliers(fix_t *f, size_t q) {
    const size_t P = f->P;
    dense_t d = make_dense(f, NH_OP_H);
    size_t *ord = malloc(P * sizeof *ord);
    dense_order(&d, NH_WHICH_LA, ord);
    const double l1 = d.w[ord[0]], lq = d.w[ord[q - 1]], lb = d.w[ord[q]];
    nh_check(lq > 3 * fabs(lb) && lq > 3 * fabs(d.w[0]), "outliers: lambda_%zu = %.4g > 3 |bulk| (lambda_%zu = %.4g, min %.4g)", q, lq, q + 1, lb, d.w[0]);
    double *X = malloc(q * P * sizeof *X), ev[8];
    nh_curv_lanczos(f->c, NH_OP_H, q, NULL, ev, X, NULL, NULL);
    nh_slq_opts o = nh_slq_opts_default();
    o.nvec = 16; o.nsteps = 20;
    const double sigma = 0.02 * l1;
    double grid[2] = {l1, 0.5 * (lb + d.w[0])}, full[2], bulk[2];
    nh_slq_result rf, rb;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &o, NULL, NULL, 2, grid, sigma, full, &rf) == NH_OK, "outliers: full SLQ");
    o.ndeflate = q; o.deflate = X;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &o, NULL, NULL, 2, grid, sigma, bulk, &rb) == NH_OK, "outliers: deflated SLQ");
    /* The full density at lambda_1: the weight ~1/P of one eigenvalue spread
     * over sigma; the bulk's there: a Gaussian tail from >= 20 sigma away,
     * exp(-200) ~ 1e-87, so 1e-30 is a generous bound. */
    nh_check(full[0] > 0.1 / ((double)P * sigma * 2.5066), "outliers: full density at lambda_1 = %.3g > 0.1 / (P sigma sqrt(2 pi))", full[0]);
    nh_check(bulk[0] < 1e-30, "outliers: bulk density at lambda_1 = %.3g (none)", bulk[0]);
    nh_check(bulk[1] > 0 && full[1] > 0, "outliers: both densities positive inside the bulk");
    NOTE("outliers: lambda_1 %.4g, lambda_%zu %.4g, lambda_%zu %.4g; density at lambda_1 full %.3g, bulk %.3g", l1, q, lq, q + 1, lb, full[0], bulk[0]);
    /* nh_slq_density on the nodes == the density nh_curv_slq returned. */
    const size_t nn = o.nvec * o.nsteps;
    double *nodes = malloc(nn * sizeof *nodes), *w = malloc(nn * sizeof *w), dd[2];
    nh_curv_slq(f->c, NH_OP_H, &o, nodes, w, 0, NULL, 0, NULL, NULL);
    nh_check(nh_slq_density(nn, nodes, w, 2, grid, sigma, dd) == NH_OK, "nh_slq_density runs");
    nh_check(dd[0] == bulk[0] && dd[1] == bulk[1], "nh_slq_density == nh_curv_slq's density (same sums)");
    nh_check(nh_slq_density(nn, nodes, w, 2, grid, 0.0, dd) == NH_EINVAL, "nh_slq_density: sigma 0 refused");
    free(X); free(ord); free(nodes); free(w); free_dense(&d);
}

static void test_slq_bad(fix_t *f) {
    const size_t P = f->P;
    double *D = calloc(2 * P, sizeof *D);
    D[0] = 1; D[P + 1] = 1;
    nh_slq_opts o = nh_slq_opts_default();
    o.nsteps = 5;
    o.ndeflate = 2;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &o, NULL, NULL, 0, NULL, 0, NULL, NULL) == NH_EINVAL, "slq: NULL deflate refused");
    o.deflate = D;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &o, NULL, NULL, 0, NULL, 0, NULL, NULL) == NH_OK, "slq: coordinate deflation runs");
    o.ndeflate = P;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &o, NULL, NULL, 0, NULL, 0, NULL, NULL) == NH_EINVAL, "slq: ndeflate = P refused");
    o.ndeflate = 2; o.nsteps = P - 1;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &o, NULL, NULL, 0, NULL, 0, NULL, NULL) == NH_EINVAL, "slq: nsteps > P - ndeflate refused (%s)", nh_last_error());
    o.nsteps = 5; D[P] = 0.5;
    nh_check(nh_curv_slq(f->c, NH_OP_H, &o, NULL, NULL, 0, NULL, 0, NULL, NULL) == NH_EINVAL, "slq: non-orthonormal deflate refused");
    free(D);
}

int main(void) {
    nh_set_threads(1);
    {   /* mse, two hidden layers, inputs shifted: outliers in H */
        const size_t w[] = {3, 8, 6, 2};
        fix_t f = make_fix(3, w, NH_ACT_SOFTPLUS, NH_LOSS_MSE, 6, 0.0, 1);
        check_topk(&f, NH_OP_H, NH_WHICH_LA, 4, "mse");
        check_topk(&f, NH_OP_I, NH_WHICH_LA, 4, "mse");
        check_topk(&f, NH_OP_S, NH_WHICH_LM, 4, "mse");
        test_overlap(&f);
        test_deflated_slq(&f, NH_OP_H, 3, "mse H");
        test_deflated_slq(&f, NH_OP_S, 2, "mse S");
        test_slq_bad(&f);
        free_fix(&f);
    }
    {   /* ce, 3 classes, tanh */
        const size_t w[] = {4, 7, 3};
        fix_t f = make_fix(2, w, NH_ACT_TANH, NH_LOSS_CE, 5, 0.0, 2);
        check_topk(&f, NH_OP_H, NH_WHICH_LA, 3, "ce");
        check_topk(&f, NH_OP_I, NH_WHICH_LA, 3, "ce");
        check_topk(&f, NH_OP_S, NH_WHICH_LM, 3, "ce");
        test_deflated_slq(&f, NH_OP_I, 2, "ce I");
        free_fix(&f);
    }
    {   /* outliers: inputs N(2, 1), targets the outputs + N(0, 0.01): S is
         * small and I = J^T J / N has one outlier per output (the mean
         * feature), well above the bulk */
        const size_t w[] = {5, 12, 3};
        fix_t f = make_fix(2, w, NH_ACT_SOFTPLUS, NH_LOSS_MSE, 10, 2.0, 3);
        nh_curv_outputs(f.c, f.T);
        nh_rng r; nh_rng_seed(&r, 33);
        for (size_t i = 0; i < f.n * 3; i++) f.T[i] += 0.1 * nh_rng_normal(&r);
        nh_curv_free(f.c);
        if (nh_curv_create(f.net, f.X, f.T, f.n, NH_LOSS_MSE, &f.c) != NH_OK) { printf("curv: %s\n", nh_last_error()); return 1; }
        test_outliers(&f, 3);
        free_fix(&f);
    }
    test_angles_known();
    NH_TEST_END();
}
