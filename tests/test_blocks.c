/* test_blocks.c -- parameter selections (nh_curv_select): per-tensor blocks
 * H_BB, I_BB, S_BB against the dense Hessian's sub-block.  For each network
 * (depths 1-4, the three losses, NTK and standard parametrizations, a layer
 * without bias) and each selection (one tensor, several non-contiguous
 * tensors, every tensor), on an unbatched and a batched context (B = 3 does
 * not divide N = 10): the gradient, H v, I v, S v, isvp, block H v, J v,
 * J^T u, the Jacobian, the dense blocks, G_B (central differences), the
 * block NTK and Tr(I_BB^k) from it, exact traces and traces with control
 * variates, top eigenvalues by Lanczos, SLQ moments, ||I_BB S_BB||_F, and a
 * float32 context's block H v.  Truths: nh_curv_dense / nh_curv_jacobian of
 * the full context (unselected), rows and columns of the selection
 * extracted here from nh_net_tensor's offsets, and LAPACK on those blocks.
 *
 * Tolerances: a block product is the full product's entries (exact), and
 * the dense truth is built from the same full products, so blocks agree to
 * rounding: 1e-10 of the array's scale (observed ~1e-15); batched contexts
 * differ by summation order only.  Lanczos converges to tol 1e-10 relative.
 * Hutchinson estimates and SLQ moments are random: within 5 standard errors
 * (+1e-9 of the scale for an exact-in-expectation case with SE ~ 0); the
 * seeds are fixed, so the test is deterministic. */
#include "ntkhess.h"
#include "nh_test.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t L, w[5];
    nh_act act;
    nh_loss loss;
    nh_param param;
    unsigned char bias[4];
} cfg_t;

static const cfg_t CFGS[] = {
    {"L1 mse ntk", 1, {4, 3}, NH_ACT_TANH, NH_LOSS_MSE, NH_PARAM_NTK, {1}},
    {"L2 ce std nobias0", 2, {4, 5, 3}, NH_ACT_SOFTPLUS, NH_LOSS_CE, NH_PARAM_STANDARD, {0, 1}},
    {"L2 bce ntk", 2, {3, 5, 1}, NH_ACT_TANH, NH_LOSS_BCE, NH_PARAM_NTK, {1, 1}},
    {"L3 ce ntk nobias2", 3, {4, 5, 4, 3}, NH_ACT_TANH, NH_LOSS_CE, NH_PARAM_NTK, {1, 1, 0}},
    {"L3 mse std", 3, {3, 4, 5, 2}, NH_ACT_SOFTPLUS, NH_LOSS_MSE, NH_PARAM_STANDARD, {1, 1, 1}},
    {"L4 bce ntk nobias1", 4, {3, 4, 5, 4, 1}, NH_ACT_TANH, NH_LOSS_BCE, NH_PARAM_NTK, {1, 0, 1, 1}},
};
#define NCFG (sizeof CFGS / sizeof CFGS[0])
#define N 10

static nh_net *make_net(const cfg_t *t, uint64_t seed) {
    nh_net_config c = nh_net_config_default();
    c.depth = t->L; c.widths = t->w; c.act = t->act; c.param = t->param; c.bias = t->bias;
    nh_net *net = NULL;
    if (nh_net_create(&c, &net) != NH_OK) { printf("create failed: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(net, seed);
    if (t->param == NH_PARAM_STANDARD) /* keep standard-parametrization outputs O(1) */
        for (size_t p = 0; p < nh_net_nparams(net); p++) nh_net_params(net)[p] *= 0.5;
    return net;
}

/* The shared random data (nh_test.h) for cfg t. */
static void make_data(const cfg_t *t, uint64_t seed, double *X, double *T) {
    nh_test_data(t->loss, N, t->w[0], t->w[t->L], seed, X, T);
}

static nh_curv *make_ctx(const nh_net *net, const double *X, const double *T, nh_loss loss, size_t batch) {
    return nh_test_ctx(net, X, T, N, loss, NH_PREC_DOUBLE, batch);
}

static double *dalloc(size_t n) { double *p = calloc(n ? n : 1, sizeof *p); if (!p) exit(1); return p; }

/* The theta indices of a selection, from nh_net_tensor's offsets (sorted tensors). */
static size_t sel_index(const nh_net *net, size_t nsel, const size_t *sel, size_t *idx) {
    size_t k = 0, off, len;
    for (size_t t = 0; t < nh_net_ntensors(net); t++)
        for (size_t i = 0; i < nsel; i++)
            if (sel[i] == t) {
                nh_net_tensor(net, t, NULL, &off, &len);
                for (size_t j = 0; j < len; j++) idx[k++] = off + j;
            }
    return k;
}

static void sub_block(const double *A, size_t P, const size_t *idx, size_t PB, double *Ab) {
    for (size_t a = 0; a < PB; a++)
        for (size_t b = 0; b < PB; b++) Ab[a * PB + b] = A[idx[a] * P + idx[b]];
}

static void matvec(const double *A, size_t n, const double *v, double *out) {
    for (size_t a = 0; a < n; a++) { double s = 0; for (size_t b = 0; b < n; b++) s += A[a * n + b] * v[b]; out[a] = s; }
}

static double tr_pow(const double *A, size_t n, int k) { /* Tr(A^k) from the eigenvalues */
    double *w = dalloc(n), s = 0;
    nh_eigvalsh(n, A, w);
    for (size_t i = 0; i < n; i++) s += pow(w[i], k);
    free(w);
    return s;
}

typedef struct {
    const cfg_t *t;
    nh_net *net;
    double *X, *T, *H, *I, *S, *J, *grad;
    size_t P, nm;
} truth_t;

/* Products of the selected context c against the full truths. */
static void check_products(const truth_t *u, nh_curv *c, const size_t *idx, size_t PB, const char *tag) {
    const size_t P = u->P, nm = u->nm;
    double *Hb = dalloc(PB * PB), *Ib = dalloc(PB * PB), *Sb = dalloc(PB * PB), *v = dalloc(3 * PB);
    double *got = dalloc(3 * PB), *want = dalloc(3 * PB), *g2 = dalloc(PB), *jv = dalloc(nm), *jw = dalloc(nm);
    sub_block(u->H, P, idx, PB, Hb); sub_block(u->I, P, idx, PB, Ib); sub_block(u->S, P, idx, PB, Sb);
    nh_rng r; nh_rng_seed(&r, 99);
    nh_rng_fill_normal(&r, 3 * PB, v);
    nh_check(nh_curv_dim(c) == PB, "%s: dim %zu == P_B %zu", tag, nh_curv_dim(c), PB);
    nh_check(nh_curv_grad(c, got) == NH_OK, "%s: grad", tag);
    for (size_t j = 0; j < PB; j++) want[j] = u->grad[idx[j]];
    nh_check_array(got, want, PB, 0, 1e-10, "%s: grad_B = grad[B]", tag);
    const double *mats[3] = {Hb, Ib, Sb};
    nh_status (*ops[3])(nh_curv *, const double *, double *) = {nh_curv_hvp, nh_curv_ivp, nh_curv_svp};
    const char *nms[3] = {"H", "I", "S"};
    for (int o = 0; o < 3; o++) {
        nh_check(ops[o](c, v, got) == NH_OK, "%s: %s v", tag, nms[o]);
        matvec(mats[o], PB, v, want);
        nh_check_array(got, want, PB, 0, 1e-10, "%s: %s_BB v", tag, nms[o]);
    }
    nh_check(nh_curv_isvp(c, v, got, g2) == NH_OK, "%s: isvp", tag);
    matvec(Ib, PB, v, want);
    nh_check_array(got, want, PB, 0, 1e-10, "%s: isvp I_BB v", tag);
    matvec(Sb, PB, v, want);
    nh_check_array(g2, want, PB, 0, 1e-10, "%s: isvp S_BB v", tag);
    nh_check(nh_curv_hvp_block(c, 3, v, got) == NH_OK, "%s: hvp_block", tag);
    for (int j = 0; j < 3; j++) matvec(Hb, PB, v + j * PB, want + j * PB);
    nh_check_array(got, want, 3 * PB, 0, 1e-10, "%s: block H_BB V (3 vectors)", tag);
    /* J_B v_B = J[:, B] v_B and J_B^T u = (J^T u)_B from the full Jacobian. */
    nh_check(nh_curv_jvp(c, v, jv) == NH_OK, "%s: jvp", tag);
    for (size_t a = 0; a < nm; a++) { double s = 0; for (size_t j = 0; j < PB; j++) s += u->J[a * P + idx[j]] * v[j]; jw[a] = s; }
    nh_check_array(jv, jw, nm, 0, 1e-10, "%s: J_B v", tag);
    nh_check(nh_curv_vjp(c, jw, got) == NH_OK, "%s: vjp", tag);
    for (size_t j = 0; j < PB; j++) { double s = 0; for (size_t a = 0; a < nm; a++) s += u->J[a * P + idx[j]] * jw[a]; want[j] = s; }
    nh_check_array(got, want, PB, 0, 1e-10, "%s: J_B^T u", tag);
    free(v); free(got); free(want); free(g2); free(jv); free(jw);
    free(Hb); free(Ib); free(Sb);
}

/* Dense blocks, Jacobian, block NTK, Tr(I_BB^k). */
static void check_dense(const truth_t *u, nh_curv *c, const size_t *idx, size_t PB, const char *tag) {
    const size_t P = u->P, nm = u->nm, m = u->t->w[u->t->L];
    double *Hb = dalloc(PB * PB), *Ib = dalloc(PB * PB), *Sb = dalloc(PB * PB), *W = dalloc(3 * PB * PB);
    double *Jb = dalloc(nm * PB), *Jw = dalloc(nm * PB), *K = dalloc(nm * nm), *Kw = dalloc(nm * nm), *HC = dalloc(N * m * m);
    sub_block(u->H, P, idx, PB, Hb); sub_block(u->I, P, idx, PB, Ib); sub_block(u->S, P, idx, PB, Sb);
    nh_check(nh_curv_dense(c, W, W + PB * PB, W + 2 * PB * PB) == NH_OK, "%s: dense", tag);
    nh_check_array(W, Hb, PB * PB, 0, 1e-10, "%s: dense H_BB", tag);
    nh_check_array(W + PB * PB, Ib, PB * PB, 0, 1e-10, "%s: dense I_BB", tag);
    nh_check_array(W + 2 * PB * PB, Sb, PB * PB, 0, 1e-10, "%s: dense S_BB", tag);
    nh_check(nh_curv_jacobian(c, Jb) == NH_OK, "%s: jacobian", tag);
    for (size_t a = 0; a < nm; a++)
        for (size_t j = 0; j < PB; j++) Jw[a * PB + j] = u->J[a * P + idx[j]];
    nh_check_array(Jb, Jw, nm * PB, 0, 1e-10, "%s: J_B = J[:, B]", tag);
    nh_check(nh_curv_ntk(c, K) == NH_OK, "%s: ntk %s", tag, nh_last_error());
    for (size_t a = 0; a < nm; a++)
        for (size_t b = 0; b < nm; b++) { double s = 0; for (size_t j = 0; j < PB; j++) s += Jw[a * PB + j] * Jw[b * PB + j]; Kw[a * nm + b] = s; }
    nh_check_array(K, Kw, nm * nm, 0, 1e-10, "%s: block NTK = J_B J_B^T", tag);
    double tr[3];
    nh_curv_hloss(c, HC);
    nh_check(nh_ntk_trace_powers(N, m, K, HC, 3, tr) == NH_OK, "%s: trace powers", tag);
    for (int k = 1; k <= 3; k++)
        nh_check_close(tr[k - 1], tr_pow(Ib, PB, k), 1e-12, 1e-9, "%s: Tr(I_BB^%d) from the block NTK", tag, k);
    free(Hb); free(Ib); free(Sb); free(W); free(Jb); free(Jw); free(K); free(Kw); free(HC);
}

/* Traces (exact, Hutchinson with control variates), Lanczos, SLQ. */
static void check_estimators(const truth_t *u, nh_curv *c, const size_t *idx, size_t PB, int proper, const char *tag) {
    const size_t P = u->P;
    double *A[3];
    const nh_op ops[3] = {NH_OP_H, NH_OP_I, NH_OP_S};
    const char *nms[3] = {"H", "I", "S"};
    const double *full[3] = {u->H, u->I, u->S};
    for (int o = 0; o < 3; o++) {
        A[o] = dalloc(PB * PB);
        sub_block(full[o], P, idx, PB, A[o]);
        const double t1 = tr_pow(A[o], PB, 1), t2 = tr_pow(A[o], PB, 2), scale = tr_pow(A[o], PB, 2);
        nh_trace_opts to = nh_trace_opts_default();
        nh_trace_result tr;
        to.method = NH_TRACE_EXACT;
        nh_check(nh_curv_trace(c, ops[o], 2, &to, &tr) == NH_OK, "%s: exact trace %s", tag, nms[o]);
        nh_check_close(tr.est[0], t1, 1e-10 * sqrt(scale), 1e-9, "%s: exact Tr %s_BB", tag, nms[o]);
        nh_check_close(tr.est[1], t2, 1e-10 * scale, 1e-9, "%s: exact Tr %s_BB^2", tag, nms[o]);
        to = nh_trace_opts_default();
        to.nprobes = 64; to.control = 1; to.seed = 5;
        nh_check(nh_curv_trace(c, ops[o], 1, &to, &tr) == NH_OK, "%s: trace with control variates %s: %s", tag, nms[o], nh_last_error());
        nh_check_close(tr.est[0], t1, 5 * tr.se[0] + 1e-9 * sqrt(scale), 0, "%s: Tr %s_BB with control variates within 5 SE", tag, nms[o]);
        (void)proper; /* Tr I_BB from the block NTK, Tr S_BB = G_B . dC/dY: no probes needed */
        nh_check(tr.se[0] == 0 && tr.nprobes == 0, "%s: Tr %s_BB exact from the control variates", tag, nms[o]);
        double *w = dalloc(PB), ev[2];
        nh_eigvalsh(PB, A[o], w);
        size_t k = PB >= 2 ? 2 : 1;
        nh_lanczos_opts lo = nh_lanczos_opts_default();
        nh_check(nh_curv_lanczos(c, ops[o], k, &lo, ev, NULL, NULL, NULL) == NH_OK, "%s: lanczos %s", tag, nms[o]);
        for (size_t j = 0; j < k; j++)
            nh_check_close(ev[j], w[PB - 1 - j], 1e-8 * fmax(fabs(w[PB - 1]), fabs(w[0])), 0, "%s: lambda_%zu(%s_BB)", tag, j + 1, nms[o]);
        nh_slq_opts so = nh_slq_opts_default();
        so.nvec = 32; so.nsteps = PB < 12 ? PB : 12; so.seed = 3;
        nh_slq_result sr;
        nh_check(nh_curv_slq(c, ops[o], &so, NULL, NULL, 0, NULL, 0, NULL, &sr) == NH_OK, "%s: slq %s", tag, nms[o]);
        nh_check_close(sr.moments[0], t1 / (double)PB, 5 * sr.moments_se[0] + 1e-9 * sqrt(scale), 0, "%s: SLQ moment 1 of %s_BB", tag, nms[o]);
        nh_check_close(sr.moments[1], t2 / (double)PB, 5 * sr.moments_se[1] + 1e-9 * scale, 0, "%s: SLQ moment 2 of %s_BB", tag, nms[o]);
        free(w);
        free(A[o]);
    }
}

/* ||I_BB S_BB||_F and ||I_BB||_F (exact, through the block NTK) of nh_curv_orthogonality. */
static void check_ortho(const truth_t *u, nh_curv *c, const size_t *idx, size_t PB, const char *tag) {
    double *Ib = dalloc(PB * PB), *Sb = dalloc(PB * PB), is = 0, ii = 0;
    sub_block(u->I, u->P, idx, PB, Ib); sub_block(u->S, u->P, idx, PB, Sb);
    for (size_t a = 0; a < PB; a++)
        for (size_t b = 0; b < PB; b++) {
            double x = 0;
            for (size_t k = 0; k < PB; k++) x += Ib[a * PB + k] * Sb[k * PB + b];
            is += x * x;
            ii += Ib[a * PB + b] * Ib[a * PB + b];
        }
    nh_ortho_result r;
    nh_check(nh_curv_orthogonality(c, NULL, &r) == NH_OK, "%s: orthogonality", tag);
    /* is_fro drops eigenpairs of HC K HC below 64 eps of the largest: 1e-6 of the scale. */
    nh_check_close(r.is_fro, sqrt(is), 1e-6 * sqrt(ii) * (1 + sqrt(is)), 1e-6, "%s: ||I_BB S_BB||_F", tag);
    nh_check_close(r.i_fro, sqrt(ii), 1e-12, 1e-9, "%s: ||I_BB||_F", tag);
    free(Ib); free(Sb);
}

/* A float32 context with the same selection: block H v within float32 accuracy of the float64 one. */
static void check_single(const truth_t *u, size_t nsel, const size_t *sel, size_t PB, const char *tag) {
    nh_curv_opts o = nh_curv_opts_default();
    o.precision = NH_PREC_SINGLE;
    nh_curv *c = NULL;
    if (nh_curv_create_ex(u->net, u->X, u->T, N, u->t->loss, &o, &c) != NH_OK) { printf("ctx32: %s\n", nh_last_error()); exit(1); }
    nh_curv *d = make_ctx(u->net, u->X, u->T, u->t->loss, 0);
    nh_curv_select(c, nsel, sel);
    nh_curv_select(d, nsel, sel);
    double *v = dalloc(PB), *a = dalloc(PB), *b = dalloc(PB);
    for (size_t j = 0; j < PB; j++) v[j] = cos((double)j);
    nh_check(nh_curv_hvp(c, v, a) == NH_OK && nh_curv_hvp(d, v, b) == NH_OK, "%s: float32 block H v", tag);
    /* docs/precision.md: float32 products ~1e-7..1e-5 relative. */
    nh_check_array(a, b, PB, 0, 1e-4, "%s: float32 block H v = float64", tag);
    free(v); free(a); free(b);
    nh_curv_free(c); nh_curv_free(d);
}

/* G_B[i][k] = sum_{p in B} d^2 f_k(x_i)/dtheta_p^2 against central differences
 * of the full Jacobian's column p along theta_p (h = 1e-5: truncation ~1e-10,
 * rounding ~1e-11 of the scale; tolerance 1e-6 relative), and
 * G_B . dC/dY = Tr S_BB of the dense block (rounding: 1e-9). */
static void check_G(const truth_t *u, nh_curv *c, const size_t *idx, size_t PB, const char *tag) {
    const size_t P = u->P, nm = u->nm;
    double *G = dalloc(nm), *Gw = dalloc(nm), *Jp = dalloc(nm * P), *Jm = dalloc(nm * P), *E = dalloc(nm);
    nh_check(nh_curv_G(c, G) == NH_OK, "%s: G of the block", tag);
    nh_net *net = u->net;
    nh_curv *f = make_ctx(net, u->X, u->T, u->t->loss, 0);
    double *th = nh_net_params(net);
    const double h = 1e-5;
    for (size_t j = 0; j < PB; j++) {
        const double t0 = th[idx[j]];
        th[idx[j]] = t0 + h; nh_curv_refresh(f); nh_curv_jacobian(f, Jp);
        th[idx[j]] = t0 - h; nh_curv_refresh(f); nh_curv_jacobian(f, Jm);
        th[idx[j]] = t0;
        for (size_t a = 0; a < nm; a++) Gw[a] += (Jp[a * P + idx[j]] - Jm[a * P + idx[j]]) / (2 * h);
    }
    nh_curv_free(f);
    nh_check_array(G, Gw, nm, 1e-9, 1e-6, "%s: G_B = sum_B d2f/dtheta_p2 (central differences)", tag);
    double *Sb = dalloc(PB * PB), trS = 0, gs = 0, sc = 0;
    sub_block(u->S, P, idx, PB, Sb);
    for (size_t j = 0; j < PB; j++) { trS += Sb[j * PB + j]; sc += fabs(Sb[j * PB + j]); }
    nh_curv_dloss(c, E);
    for (size_t a = 0; a < nm; a++) gs += G[a] * E[a];
    nh_check_close(gs, trS, 1e-9 * (sc + 1e-3), 0, "%s: G_B . dC/dY = Tr S_BB", tag);
    free(G); free(Gw); free(Jp); free(Jm); free(E); free(Sb);
}

static void run_cfg(const cfg_t *t) {
    truth_t u;
    memset(&u, 0, sizeof u);
    u.t = t;
    u.net = make_net(t, 11);
    const size_t P = u.P = nh_net_nparams(u.net), m = t->w[t->L], nm = u.nm = N * m, nt = nh_net_ntensors(u.net);
    u.X = dalloc(N * t->w[0]); u.T = dalloc(nm);
    make_data(t, 12, u.X, u.T);
    u.H = dalloc(P * P); u.I = dalloc(P * P); u.S = dalloc(P * P); u.J = dalloc(nm * P); u.grad = dalloc(P);
    nh_curv *full = make_ctx(u.net, u.X, u.T, t->loss, 0);
    nh_curv_dense(full, u.H, u.I, u.S);
    nh_curv_jacobian(full, u.J);
    nh_curv_grad(full, u.grad);
    /* Selections: the last tensor; tensors 0 and nt-1 (non-contiguous for nt >= 3); every tensor. */
    size_t sels[3][8], nsel[3] = {1, nt >= 3 ? 2 : 1, nt};
    sels[0][0] = nt - 1;
    sels[1][0] = nt - 1; sels[1][1] = 0; /* given out of order: sorted by the context */
    for (size_t i = 0; i < nt; i++) sels[2][i] = nt - 1 - i;
    size_t *idx = malloc(P * sizeof *idx);
    for (int s = 0; s < 3; s++) {
        const size_t PB = sel_index(u.net, nsel[s], sels[s], idx);
        for (int b = 0; b < 2; b++) {
            char tag[128];
            snprintf(tag, sizeof tag, "%s sel%d B=%s", t->name, s, b ? "3" : "all");
            nh_curv *c = make_ctx(u.net, u.X, u.T, t->loss, b ? 3 : 0);
            nh_check(nh_curv_select(c, nsel[s], sels[s]) == NH_OK, "%s: select", tag);
            check_products(&u, c, idx, PB, tag);
            check_dense(&u, c, idx, PB, tag);
            if (b == 0) check_estimators(&u, c, idx, PB, PB < P, tag);
            if (b == 0) check_single(&u, nsel[s], sels[s], PB, tag);
            check_ortho(&u, c, idx, PB, tag);
            check_G(&u, c, idx, PB, tag);
            nh_check(nh_curv_select(c, 0, NULL) == NH_OK && nh_curv_dim(c) == P, "%s: select(0) restores all", tag);
            nh_curv_free(c);
        }
    }
    free(idx);
    nh_curv_free(full);
    free(u.X); free(u.T); free(u.H); free(u.I); free(u.S); free(u.J); free(u.grad);
    nh_net_free(u.net);
}

/* Names, offsets and refusals. */
static void check_tensors(void) {
    const cfg_t *t = &CFGS[3]; /* W0 b0 W1 b1 W2 (layer 2 without bias) */
    nh_net *net = make_net(t, 1);
    const char *want[5] = {"W0", "b0", "W1", "b1", "W2"};
    nh_check(nh_net_ntensors(net) == 5, "ntensors = 5 with a bias-free last layer");
    size_t sum = 0;
    for (size_t i = 0; i < 5; i++) {
        const char *name; size_t off, len, ti = 99;
        nh_check(nh_net_tensor(net, i, &name, &off, &len) == NH_OK && strcmp(name, want[i]) == 0, "tensor %zu is %s", i, want[i]);
        const size_t l = i / 2, wo = want[i][0] == 'W' ? nh_net_offset_W(net, l) : nh_net_offset_b(net, l);
        nh_check(off == wo && off == sum, "tensor %s offset %zu", want[i], off);
        sum += len;
        nh_check(nh_net_find_tensor(net, want[i], &ti) == NH_OK && ti == i, "find %s", want[i]);
    }
    nh_check(sum == nh_net_nparams(net), "tensor lengths sum to P");
    size_t ti;
    nh_check(nh_net_tensor(net, 5, NULL, NULL, NULL) == NH_EINVAL, "tensor index out of range refused");
    nh_check(nh_net_find_tensor(net, "b2", &ti) == NH_EINVAL && strstr(nh_last_error(), "W0, b0, W1, b1, W2"),
             "b2 of a bias-free layer refused naming the valid tensors: %s", nh_last_error());
    double X[N * 4], T[N * 3]; /* make_data draws N n_L target entries */
    make_data(t, 2, X, T);
    nh_curv *c = make_ctx(net, X, T, t->loss, 0);
    size_t dup[2] = {1, 1}, bad[1] = {5};
    nh_check(nh_curv_select(c, 2, dup) == NH_EINVAL && strstr(nh_last_error(), "b0"), "duplicate refused: %s", nh_last_error());
    nh_check(nh_curv_select(c, 1, bad) == NH_EINVAL, "unknown tensor refused");
    nh_check(nh_curv_dim(c) == nh_net_nparams(net), "a refused selection leaves all of theta");
    nh_curv_free(c);
    nh_net_free(net);
}

int main(void) {
    check_tensors();
    for (size_t i = 0; i < NCFG; i++) run_cfg(&CFGS[i]);
    NH_TEST_END();
}
