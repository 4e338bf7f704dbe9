/* test_usermodel.c -- the user's own network: the standard (PyTorch nn.Linear)
 * parametrization, per-layer activations with parameters, bias-free layers.
 * Truths: a forward pass written out here with the activation formulas,
 * central finite differences (loss, gradient, outputs, second derivatives),
 * dense matrices, J J^T, and the congruence with the NTK parametrization
 * (same function when W_std = W/sqrt(n_l), b_std = beta b; then
 * H_ntk = D H_std D with D = 1/sqrt(n_l) on W_l, beta on b_l). */
#include "ntkhess.h"
#include "nh_test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXL 4

typedef struct {
    const char *name;
    size_t L, w[MAXL + 1];
    nh_act acts[MAXL];
    double ap[MAXL];           /* NaN = default parameter */
    unsigned char bias[MAXL];
    nh_loss loss;
    size_t n;
} ucase;

static nh_net *make(const ucase *t, nh_param param, double beta) {
    nh_net_config c = nh_net_config_default();
    c.depth = t->L; c.widths = t->w; c.param = param; c.beta = beta;
    c.acts = t->acts; c.act_params = t->ap; c.bias = t->bias;
    nh_net *net = NULL;
    if (nh_net_create(&c, &net) != NH_OK) { printf("create %s: %s\n", t->name, nh_last_error()); exit(1); }
    return net;
}

static void make_data(const ucase *t, uint64_t seed, double **X, double **T) {
    nh_rng r; nh_rng_seed(&r, seed);
    const size_t n0 = t->w[0], nL = t->w[t->L];
    *X = malloc(t->n * n0 * sizeof **X);
    *T = malloc(t->n * nL * sizeof **T);
    nh_rng_fill_normal(&r, t->n * n0, *X);
    for (size_t i = 0; i < t->n * nL; i++) {
        double u = nh_rng_normal(&r);
        if (t->loss == NH_LOSS_MSE) (*T)[i] = u;
        else if (t->loss == NH_LOSS_BCE) (*T)[i] = u > 0 ? 1.0 : -1.0;
        else (*T)[i] = (double)(nh_rng_u64(&r) % nL);
    }
}


/* The activations written out from their definitions (not through act.c). */
static double act_ref(nh_act a, double p, double z) {
    switch (a) {
    case NH_ACT_TANH: return tanh(z);
    case NH_ACT_SILU: return z / (1.0 + exp(-z));
    case NH_ACT_SOFTPLUS: { double b = isnan(p) ? 1.0 : p; return log1p(exp(b * z)) / b; }
    case NH_ACT_LEAKY_RELU: { double s = isnan(p) ? 0.01 : p; return z > 0 ? z : s * z; }
    case NH_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    default: printf("act_ref: add %s\n", nh_act_name(a)); exit(1);
    }
}

/* PyTorch semantics from the raw theta layout: a <- act(W a + b), W_l then b_l (if any). */
static void forward_ref(const ucase *t, const double *theta, const double *x, double *y) {
    double a[64], z[64];
    size_t off = 0;
    memcpy(a, x, t->w[0] * sizeof *a);
    for (size_t l = 0; l < t->L; l++) {
        const size_t ni = t->w[l], no = t->w[l + 1];
        const double *W = theta + off, *b = t->bias[l] ? W + ni * no : NULL;
        off += ni * no + (t->bias[l] ? no : 0);
        for (size_t k = 0; k < no; k++) {
            double s = b ? b[k] : 0.0;
            for (size_t j = 0; j < ni; j++) s += W[k * ni + j] * a[j];
            z[k] = s;
        }
        for (size_t k = 0; k < no; k++) a[k] = l + 1 < t->L ? act_ref(t->acts[l], t->ap[l], z[k]) : z[k];
    }
    memcpy(y, a, t->w[t->L] * sizeof *y);
}


/* Layout, P, offsets, bias flags, activations as configured. */
static void check_layout(const ucase *t, const nh_net *net) {
    size_t P = 0;
    int ok = 1;
    for (size_t l = 0; l < t->L; l++) {
        ok = ok && nh_net_offset_W(net, l) == P && nh_net_has_bias(net, l) == (t->bias[l] != 0);
        P += t->w[l] * t->w[l + 1];
        ok = ok && nh_net_offset_b(net, l) == (t->bias[l] ? P : (size_t)-1);
        if (t->bias[l]) P += t->w[l + 1];
    }
    nh_check(ok && nh_net_nparams(net) == P, "%s: layout W_l, b_l (if any), P = %zu", t->name, P);
    ok = nh_net_has_bias(net, t->L) == 0;
    for (size_t i = 0; i + 1 < t->L; i++) {
        double p = nh_net_act_param_at(net, i), want = isnan(t->ap[i]) ? nh_act_default_param(t->acts[i]) : t->ap[i];
        ok = ok && nh_net_act_at(net, i) == t->acts[i] && (isnan(want) ? isnan(p) : p == want);
    }
    nh_check(ok, "%s: per-layer activations and parameters", t->name);
}

/* Forward vs forward_ref; gradient and H v vs central differences. */
static void check_fd(const ucase *t, nh_net *net, nh_curv *c, const double *X, const double *T, const double *v) {
    const size_t P = nh_net_nparams(net), n = t->n, m = t->w[t->L];
    double *theta = nh_net_params(net), *Y = malloc(n * m * 8), *Yr = malloc(n * m * 8);
    nh_net_forward(net, X, n, Y);
    for (size_t i = 0; i < n; i++) forward_ref(t, theta, X + i * t->w[0], Yr + i * m);
    /* Same sums in another order: rounding only, 1e-13 relative to the outputs. */
    nh_check_array(Y, Yr, n * m, 0, 1e-13, "%s: forward == W a + b written out", t->name);
    double *g = malloc(P * 8), *gp = malloc(P * 8), *gm = malloc(P * 8), *fd = malloc(P * 8), *hv = malloc(P * 8);
    double *save = malloc(P * 8);
    nh_curv_grad(c, g);
    memcpy(save, theta, P * 8);
    /* h = eps^(1/3) ~ 6e-6 balances O(h^2) truncation and O(eps/h) rounding:
     * ~1e-10 relative; 1e-7 leaves slack (as test_net.c). */
    const double h = 6e-6;
    for (size_t p = 0; p < P; p++) theta[p] = save[p] + h * v[p];
    double lp = loss_at(net, X, T, n, t->loss);
    grad_at(net, X, T, n, t->loss, gp);
    for (size_t p = 0; p < P; p++) theta[p] = save[p] - h * v[p];
    double lm = loss_at(net, X, T, n, t->loss);
    grad_at(net, X, T, n, t->loss, gm);
    memcpy(theta, save, P * 8);
    nh_check_close((lp - lm) / (2 * h), dot(g, v, P), 1e-7 * nrm(g, P) * nrm(v, P), 0, "%s: grad . v vs FD", t->name);
    for (size_t p = 0; p < P; p++) fd[p] = (gp[p] - gm[p]) / (2 * h);
    nh_curv_hvp(c, v, hv);
    nh_check_array(hv, fd, P, 1e-7 * (nrm(hv, P) + nrm(fd, P)), 0, "%s: H v vs FD of gradient", t->name);
    free(Y); free(Yr); free(g); free(gp); free(gm); free(fd); free(hv); free(save);
}

/* I v + S v == H v; dense H, I, S against the products; I + S == H; block H v. */
static void check_dense(const ucase *t, nh_curv *c, size_t P, const double *v) {
    double *hv = malloc(P * 8), *iv = malloc(P * 8), *sv = malloc(P * 8), *tmp = malloc(P * 8);
    nh_curv_hvp(c, v, hv);
    nh_curv_isvp(c, v, iv, sv);
    for (size_t p = 0; p < P; p++) tmp[p] = iv[p] + sv[p];
    /* Separate code paths summing the same terms: rounding, 1e-12 of ||H v||. */
    nh_check_array(tmp, hv, P, 1e-12 * nrm(hv, P), 0, "%s: I v + S v == H v", t->name);
    double *Hd = malloc(P * P * 8), *Id = malloc(P * P * 8), *Sd = malloc(P * P * 8);
    nh_check(nh_curv_dense(c, Hd, Id, Sd) == NH_OK, "%s: dense", t->name);
    const double hf = nrm(Hd, P * P);
    for (size_t a = 0; a < P; a++) tmp[a] = dot(Hd + a * P, v, P);
    nh_check_array(tmp, hv, P, 1e-12 * hf * nrm(v, P), 0, "%s: dense H v == hvp", t->name);
    for (size_t a = 0; a < P; a++) tmp[a] = dot(Id + a * P, v, P);
    nh_check_array(tmp, iv, P, 1e-12 * hf * nrm(v, P), 0, "%s: dense J^T HC J v == ivp", t->name);
    double maxres = 0;
    for (size_t a = 0; a < P * P; a++) { double e = fabs(Id[a] + Sd[a] - Hd[a]); if (e > maxres) maxres = e; }
    nh_check_close(maxres, 0, 1e-13 * hf, 0, "%s: dense I + S == H", t->name);
    /* Block H v (stacked GEMMs) vs single products: same sums, 1e-12. */
    double *V = malloc(3 * P * 8), *O = malloc(3 * P * 8);
    nh_rng r; nh_rng_seed(&r, 17);
    nh_rng_fill_normal(&r, 3 * P, V);
    nh_curv_hvp_block(c, 3, V, O);
    double worst = 0;
    for (int j = 0; j < 3; j++) {
        nh_curv_hvp(c, V + j * P, tmp);
        for (size_t p = 0; p < P; p++) { double e = fabs(tmp[p] - O[j * P + p]) / nrm(tmp, P); if (e > worst) worst = e; }
    }
    nh_check_close(worst, 0, 1e-12, 0, "%s: block H v == single H v", t->name);
    /* Lanczos top eigenvalue vs LAPACK on the dense H (tol 1e-10 residual). */
    double *ev = malloc(P * 8), top = 0;
    nh_eigvalsh(P, Hd, ev);
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    nh_check(nh_curv_lanczos(c, NH_OP_H, 1, &lo, &top, NULL, NULL, NULL) == NH_OK, "%s: lanczos", t->name);
    nh_check_close(top, ev[P - 1], 1e-9 * fabs(ev[0]) + 1e-9 * fabs(ev[P - 1]), 0, "%s: Lanczos top == dense", t->name);
    free(ev); free(V); free(O); free(Hd); free(Id); free(Sd); free(hv); free(iv); free(sv); free(tmp);
}

/* Jacobian vs FD of outputs, jvp, NTK == J J^T, G vs FD, Tr S == G . dC/dY. */
static void check_jac(const ucase *t, nh_net *net, nh_curv *c, const double *X, const double *T, const double *v) {
    const size_t P = nh_net_nparams(net), n = t->n, m = t->w[t->L], nm = n * m;
    double *theta = nh_net_params(net);
    double *J = malloc(nm * P * 8), *Yp = malloc(nm * 8), *Ym = malloc(nm * 8), *jv = malloc(nm * 8), *jfd = malloc(nm * 8);
    nh_curv_jacobian(c, J);
    const double h = 6e-6; /* as in check_fd */
    double *save = malloc(P * 8);
    memcpy(save, theta, P * 8);
    for (size_t p = 0; p < P; p++) theta[p] = save[p] + h * v[p];
    nh_net_forward(net, X, n, Yp);
    for (size_t p = 0; p < P; p++) theta[p] = save[p] - h * v[p];
    nh_net_forward(net, X, n, Ym);
    memcpy(theta, save, P * 8);
    free(save);
    for (size_t i = 0; i < nm; i++) { jfd[i] = (Yp[i] - Ym[i]) / (2 * h); jv[i] = dot(J + i * P, v, P); }
    nh_check_array(jv, jfd, nm, 1e-7 * nrm(jfd, nm), 0, "%s: J v vs FD of outputs", t->name);
    nh_curv_jvp(c, v, Yp);
    nh_check_array(Yp, jv, nm, 1e-12 * nrm(jv, nm), 0, "%s: jvp == J v", t->name);
    double *K = malloc(nm * nm * 8), *JJ = malloc(nm * nm * 8);
    nh_curv_ntk(c, K);
    for (size_t a = 0; a < nm; a++) for (size_t b = 0; b < nm; b++) JJ[a * nm + b] = dot(J + a * P, J + b * P, P);
    /* Layer outer products vs explicit J J^T: rounding, 1e-13 of max |K|. */
    nh_check_array(K, JJ, nm * nm, 0, 1e-13, "%s: NTK == J J^T", t->name);
    /* G_k(x_i) = Tr of the parameter Hessian of f_k(x_i), by central
     * differences of the exact Jacobian (h = 1e-5: truncation ~1e-10,
     * rounding ~2e-11 per entry, summed over P: 1e-7 of sum |d2f| is safe). */
    double *G = malloc(nm * 8), *Gfd = calloc(nm, 8), *Gabs = calloc(nm, 8), *Jp = malloc(nm * P * 8), *Jm = malloc(nm * P * 8);
    nh_check(nh_curv_G(c, G) == NH_OK, "%s: G (%s)", t->name, nh_last_error());
    for (size_t p = 0; p < P; p++) {
        const double th = theta[p], hh = 1e-5;
        nh_curv *cc = NULL;
        theta[p] = th + hh; nh_curv_create(net, X, T, n, t->loss, &cc); nh_curv_jacobian(cc, Jp); nh_curv_free(cc);
        theta[p] = th - hh; nh_curv_create(net, X, T, n, t->loss, &cc); nh_curv_jacobian(cc, Jm); nh_curv_free(cc);
        theta[p] = th;
        for (size_t i = 0; i < nm; i++) { double d = (Jp[i * P + p] - Jm[i * P + p]) / (2 * hh); Gfd[i] += d; Gabs[i] += fabs(d); }
    }
    double sc = 0; for (size_t i = 0; i < nm; i++) if (Gabs[i] > sc) sc = Gabs[i];
    nh_check_array(G, Gfd, nm, 1e-7 * sc + 1e-12, 0, "%s: G vs FD trace of Hess f", t->name);
    double *Sd = malloc(P * P * 8), *E = malloc(nm * 8), trs = 0;
    nh_curv_dense(c, NULL, NULL, Sd);
    nh_curv_dloss(c, E);
    for (size_t a = 0; a < P; a++) trs += Sd[a * P + a];
    nh_check_close(dot(G, E, nm), trs, 1e-12 * nrm(Sd, P * P), 0, "%s: Tr(S) == G . dC/dY", t->name);
    free(Sd); free(E); free(G); free(Gfd); free(Gabs); free(Jp); free(Jm);
    free(J); free(Yp); free(Ym); free(jv); free(jfd); free(K); free(JJ);
}

/* One gradient step moves theta by exactly -eta grad (the same daxpy). */
static void check_gd(const ucase *t, nh_net *net, const double *X, const double *T) {
    const size_t P = nh_net_nparams(net);
    nh_net *cl = NULL;
    nh_net_clone(net, &cl);
    nh_curv *c = NULL;
    nh_curv_create(cl, X, T, t->n, t->loss, &c);
    double *g = malloc(P * 8), *want = malloc(P * 8);
    nh_curv_grad(c, g);
    const double *th = nh_net_params_const(cl);
    for (size_t p = 0; p < P; p++) want[p] = th[p] - 0.05 * g[p];
    nh_check(nh_curv_gd_step(c, cl, 0.05) == NH_OK, "%s: gd step", t->name);
    /* daxpy may fuse the multiply-add: 1 ulp of each entry. */
    nh_check_array(nh_net_params_const(cl), want, P, 0, 1e-15, "%s: gd step == theta - eta grad", t->name);
    nh_check_close(nh_curv_loss(c), loss_at(cl, X, T, t->n, t->loss), 0, 1e-14, "%s: loss after step", t->name);
    free(g); free(want); nh_curv_free(c); nh_net_free(cl);
}

static void run_standard(const ucase *t) {
    nh_net *net = make(t, NH_PARAM_STANDARD, 0.1);
    check_layout(t, net);
    nh_net_init_uniform_fanin(net, 100 + t->L);
    /* Scale the fan-in init up so that S (sigma'' terms) is not negligible. */
    double *theta = nh_net_params(net);
    for (size_t p = 0; p < nh_net_nparams(net); p++) theta[p] *= 1.7;
    double *X, *T;
    make_data(t, 7 + t->L, &X, &T);
    const size_t P = nh_net_nparams(net);
    nh_curv *c = NULL;
    nh_check(nh_curv_create(net, X, T, t->n, t->loss, &c) == NH_OK, "%s: create (%s)", t->name, nh_last_error());
    double *v = malloc(P * 8);
    nh_rng r; nh_rng_seed(&r, 5);
    nh_rng_fill_normal(&r, P, v);
    check_fd(t, net, c, X, T, v);
    check_dense(t, c, P, v);
    check_jac(t, net, c, X, T, v);
    check_gd(t, net, X, T);
    free(v); nh_curv_free(c); nh_net_free(net); free(X); free(T);
}

/* D: 1/sqrt(n_l) on W_l, beta on b_l -- d theta_std / d theta_ntk. */
static void diag_D(const nh_net *net, double beta, double *D) {
    const size_t *w = nh_net_widths(net);
    for (size_t l = 0; l < nh_net_depth(net); l++) {
        size_t oW = nh_net_offset_W(net, l);
        for (size_t k = 0; k < w[l] * w[l + 1]; k++) D[oW + k] = 1.0 / sqrt((double)w[l]);
        if (nh_net_has_bias(net, l))
            for (size_t k = 0; k < w[l + 1]; k++) D[nh_net_offset_b(net, l) + k] = beta;
    }
}

/* NTK-param net theta and the standard net theta_std = D theta: the same
 * function, so the same loss and outputs; by the chain rule g_ntk = D g_std,
 * H_ntk = D H_std D (and I, S alike), NTK_ntk = J_std D^2 J_std^T. */
static void run_congruence(const ucase *t) {
    const double beta = 0.3;
    nh_net *nn = make(t, NH_PARAM_NTK, beta), *ns = make(t, NH_PARAM_STANDARD, 7.0 /* ignored */);
    nh_net_init_normal(nn, 40 + t->L);
    const size_t P = nh_net_nparams(nn), n = t->n, nm = n * t->w[t->L];
    double *D = malloc(P * 8), *ts = nh_net_params(ns);
    const double *tn = nh_net_params_const(nn);
    diag_D(nn, beta, D);
    for (size_t p = 0; p < P; p++) ts[p] = D[p] * tn[p];
    double *X, *T;
    make_data(t, 3 + t->L, &X, &T);
    nh_curv *cn = NULL, *cs = NULL;
    nh_curv_create(nn, X, T, n, t->loss, &cn);
    nh_curv_create(ns, X, T, n, t->loss, &cs);
    /* Same function through differently rounded products: 1e-13 relative. */
    nh_check_close(nh_curv_loss(cs), nh_curv_loss(cn), 0, 1e-13, "%s: congruence: same loss", t->name);
    double *gn = malloc(P * 8), *gs = malloc(P * 8);
    nh_curv_grad(cn, gn);
    nh_curv_grad(cs, gs);
    for (size_t p = 0; p < P; p++) gs[p] *= D[p];
    nh_check_array(gs, gn, P, 0, 1e-12, "%s: congruence: grad_ntk == D grad_std", t->name);
    double *M[3], *Ms[3];
    for (int k = 0; k < 3; k++) { M[k] = malloc(P * P * 8); Ms[k] = malloc(P * P * 8); }
    nh_curv_dense(cn, M[0], M[1], M[2]);
    nh_curv_dense(cs, Ms[0], Ms[1], Ms[2]);
    const char *nm3[3] = {"H", "I", "S"};
    for (int k = 0; k < 3; k++) {
        for (size_t a = 0; a < P; a++)
            for (size_t b = 0; b < P; b++) Ms[k][a * P + b] *= D[a] * D[b];
        /* Entrywise to 1e-12 of the largest entry of H_ntk: rounding only. */
        double sc = 0; for (size_t a = 0; a < P * P; a++) if (fabs(M[0][a]) > sc) sc = fabs(M[0][a]);
        nh_check_array(Ms[k], M[k], P * P, 1e-12 * sc, 0, "%s: congruence: %s_ntk == D %s_std D", t->name, nm3[k], nm3[k]);
    }
    double *J = malloc(nm * P * 8), *K = malloc(nm * nm * 8), *KJ = malloc(nm * nm * 8);
    nh_curv_jacobian(cs, J);
    nh_curv_ntk(cn, K);
    for (size_t a = 0; a < nm; a++)
        for (size_t b = 0; b < nm; b++) {
            double s = 0; for (size_t p = 0; p < P; p++) s += J[a * P + p] * D[p] * D[p] * J[b * P + p];
            KJ[a * nm + b] = s;
        }
    nh_check_array(K, KJ, nm * nm, 0, 1e-12, "%s: congruence: NTK_ntk == J_std D^2 J_std^T", t->name);
    for (int k = 0; k < 3; k++) { free(M[k]); free(Ms[k]); }
    free(J); free(K); free(KJ); free(D); free(gn); free(gs);
    nh_curv_free(cn); nh_curv_free(cs); nh_net_free(nn); nh_net_free(ns); free(X); free(T);
}

/* The standard parametrization ignores beta: bit-identical loss, gradient, H v. */
static void test_beta_free(const ucase *t) {
    nh_net *a = make(t, NH_PARAM_STANDARD, 0.1), *b = make(t, NH_PARAM_STANDARD, 5.0);
    nh_net_init_uniform_fanin(a, 9);
    nh_net_init_uniform_fanin(b, 9);
    double *X, *T;
    make_data(t, 11, &X, &T);
    const size_t P = nh_net_nparams(a);
    nh_curv *ca = NULL, *cb = NULL;
    nh_curv_create(a, X, T, t->n, t->loss, &ca);
    nh_curv_create(b, X, T, t->n, t->loss, &cb);
    double *v = malloc(P * 8), *g1 = malloc(P * 8), *g2 = malloc(P * 8), *h1 = malloc(P * 8), *h2 = malloc(P * 8);
    for (size_t p = 0; p < P; p++) v[p] = sin((double)p);
    nh_curv_grad(ca, g1); nh_curv_grad(cb, g2);
    nh_curv_hvp(ca, v, h1); nh_curv_hvp(cb, v, h2);
    nh_check(nh_curv_loss(ca) == nh_curv_loss(cb) && !memcmp(g1, g2, P * 8) && !memcmp(h1, h2, P * 8),
             "%s: standard: beta 0.1 and 5 give identical loss, grad, H v", t->name);
    free(v); free(g1); free(g2); free(h1); free(h2);
    nh_curv_free(ca); nh_curv_free(cb); nh_net_free(a); nh_net_free(b); free(X); free(T);
}

/* PyTorch's nn.Linear default: U[-1/sqrt(n_l), 1/sqrt(n_l)) for W_l and b_l. */
static void test_init(void) {
    const size_t w[3] = {400, 300, 2};
    const unsigned char bias[2] = {1, 0};
    nh_net_config c = nh_net_config_default();
    c.depth = 2; c.widths = w; c.param = NH_PARAM_STANDARD; c.bias = bias;
    nh_net *net = NULL, *net2 = NULL;
    nh_net_create(&c, &net);
    nh_net_create(&c, &net2);
    nh_net_init_uniform_fanin(net, 2026);
    nh_net_init_uniform_fanin(net2, 2026);
    const size_t P = nh_net_nparams(net);
    const double *th = nh_net_params_const(net);
    nh_check(P == 400 * 300 + 300 + 300 * 2 && !memcmp(th, nh_net_params_const(net2), P * 8), "init: same seed, same theta");
    /* The documented recipe, redone here: theta[p] = (2u - 1)/sqrt(n_l) in theta order. */
    nh_rng r; nh_rng_seed(&r, 2026);
    int same = 1;
    for (size_t p = 0; p < P; p++) {
        double bound = 1.0 / sqrt(p < 400 * 300 + 300 ? 400.0 : 300.0);
        same = same && th[p] == (2.0 * nh_rng_uniform(&r) - 1.0) * bound;
    }
    nh_check(same, "init: theta[p] == (2u - 1)/sqrt(n_l), u = nh_rng_uniform, in theta order");
    for (size_t l = 0; l < 2; l++) {
        const double b = 1.0 / sqrt((double)w[l]);
        const size_t cnt = w[l + 1] * (w[l] + bias[l]), o = nh_net_offset_W(net, l);
        double lo = 1, hi = -1, s2 = 0;
        for (size_t k = 0; k < cnt; k++) { double x = th[o + k]; if (x < lo) lo = x; if (x > hi) hi = x; s2 += x * x; }
        nh_check(lo >= -b && hi < b && lo < -0.99 * b && hi > 0.99 * b, "init: layer %zu fills [-1/sqrt(n), 1/sqrt(n))", l);
        /* E x^2 = b^2/3; SE of the mean of x^2 is sqrt(4/45) b^2 / sqrt(cnt): 5 SE. */
        nh_check_close(s2 / (double)cnt, b * b / 3, 5 * sqrt(4.0 / 45) * b * b / sqrt((double)cnt), 0,
                       "init: layer %zu variance b^2/3", l);
    }
    nh_net_free(net); nh_net_free(net2);
}

/* Config validation and the plain/theory predicate. */
static void test_config(void) {
    const size_t w[4] = {3, 4, 4, 1};
    nh_act acts[2] = {NH_ACT_SOFTPLUS, NH_ACT_TANH};
    double ap[2] = {0.0, NAN};
    nh_net_config c = nh_net_config_default();
    c.depth = 3; c.widths = w; c.acts = acts; c.act_params = ap;
    nh_net *net = NULL;
    nh_check(nh_net_create(&c, &net) == NH_EINVAL && strstr(nh_last_error(), "softplus beta"), "softplus beta 0 refused");
    ap[0] = INFINITY;
    nh_check(nh_net_create(&c, &net) == NH_ENONFINITE, "infinite activation parameter refused");
    acts[1] = (nh_act)99; ap[0] = NAN;
    nh_check(nh_net_create(&c, &net) == NH_EINVAL, "unknown per-layer activation refused");
    acts[1] = NH_ACT_TANH;
    c.param = (nh_param)7;
    nh_check(nh_net_create(&c, &net) == NH_EINVAL, "unknown parametrization refused");
    c.param = NH_PARAM_NTK;
    nh_check(nh_net_create(&c, &net) == NH_OK && !nh_net_is_plain(net) && nh_net_act(net) == NH_ACT_SOFTPLUS &&
             nh_net_act_param_at(net, 0) == 1.0 && isnan(nh_net_act_param_at(net, 1)),
             "mixed activations: not plain; NaN parameter = default");
    nh_net_free(net);
    acts[1] = NH_ACT_SOFTPLUS;
    nh_check(nh_net_create(&c, &net) == NH_OK && nh_net_is_plain(net), "same activation, default parameter: plain");
    nh_net_free(net);
    unsigned char bias[3] = {1, 0, 1};
    c.bias = bias;
    nh_check(nh_net_create(&c, &net) == NH_OK && !nh_net_is_plain(net) && nh_net_nparams(net) == 16 + 16 + 5,
             "bias-free layer: not plain, P = 12+4 + 16 + 4+1");
    nh_net *cl = NULL;
    nh_check(nh_net_clone(net, &cl) == NH_OK && nh_net_nparams(cl) == 37 && !nh_net_has_bias(cl, 1) &&
             nh_net_act_at(cl, 1) == NH_ACT_SOFTPLUS, "clone keeps bias flags and activations");
    nh_net_free(net); nh_net_free(cl);
}

/* One float32 context (nh_curv_create_ex, NH_PREC_SINGLE) against float64:
 * H v, the gradient and G on the same network. */
static void f32_vs_f64(nh_net *net, const ucase *t, const double *X, const double *T, const char *name) {
    const size_t P = nh_net_nparams(net), nm = t->n * t->w[t->L];
    nh_curv_opts o = nh_curv_opts_default();
    o.precision = NH_PREC_SINGLE;
    nh_curv *c = NULL, *c32 = NULL;
    nh_curv_create(net, X, T, t->n, t->loss, &c);
    nh_check(nh_curv_create_ex(net, X, T, t->n, t->loss, &o, &c32) == NH_OK && c && c32 &&
             nh_curv_precision(c32) == NH_PREC_SINGLE, "f32 %s: create (%s)", name, nh_last_error());
    if (!c || !c32) { nh_curv_free(c); nh_curv_free(c32); return; }
    double *v = malloc(P * 8), *h = malloc(P * 8), *h32 = malloc(P * 8), *g = malloc(P * 8), *g32 = malloc(P * 8);
    double *G = malloc(nm * 8), *G32 = malloc(nm * 8);
    for (size_t p = 0; p < P; p++) v[p] = cos(3.0 * (double)p);
    nh_curv_hvp(c, v, h); nh_curv_hvp(c32, v, h32);
    nh_curv_grad(c, g); nh_curv_grad(c32, g32);
    nh_curv_G(c, G); nh_curv_G(c32, G32);
    /* float32 rounding (6e-8) through a few layers of sums: 1e-4 of the norm. */
    nh_check_array(h32, h, P, 1e-4 * nrm(h, P), 0, "f32 %s: H v vs float64", name);
    nh_check_array(g32, g, P, 1e-4 * nrm(g, P), 0, "f32 %s: grad vs float64", name);
    nh_check_array(G32, G, nm, 1e-4 * nrm(G, nm), 0, "f32 %s: G vs float64", name);
    free(v); free(h); free(h32); free(g); free(g32); free(G); free(G32);
    nh_curv_free(c); nh_curv_free(c32);
}

/* float32 path: standard, bias-free, per-layer activations with parameters. */
static void test_f32(void) {
    ucase t = {"f32", 3, {5, 7, 6, 2}, {NH_ACT_TANH, NH_ACT_SOFTPLUS}, {NAN, NAN}, {1, 0, 1}, NH_LOSS_MSE, 6};
    nh_net *net = make(&t, NH_PARAM_STANDARD, 0.1);
    nh_net_init_uniform_fanin(net, 4);
    double *X, *T;
    make_data(&t, 2, &X, &T);
    f32_vs_f64(net, &t, X, T, "standard bias-free tanh,softplus");
    nh_net_free(net);
    t.acts[0] = NH_ACT_SILU; t.acts[1] = NH_ACT_SOFTPLUS; t.ap[1] = 2.0;
    net = make(&t, NH_PARAM_STANDARD, 0.1);
    nh_net_init_uniform_fanin(net, 5);
    f32_vs_f64(net, &t, X, T, "standard silu,softplus:2");
    nh_net_free(net);
    t.acts[0] = NH_ACT_LEAKY_RELU; t.ap[0] = 0.2;
    net = make(&t, NH_PARAM_NTK, 0.1);
    f32_vs_f64(net, &t, X, T, "ntk leaky:0.2,softplus:2");
    nh_net_free(net);
    free(X); free(T);
}

/* ------------------------------------------------------- model directories */

static char g_dir[256];

static void write_text(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    if (!f) { printf("cannot write %s\n", path); exit(1); }
    fputs(text, f);
    fclose(f);
}

static int file_exists(const char *name) {
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return stat(path, &sb) == 0;
}

/* Save, load: every field and theta bit for bit; b_l.npy only where a bias is. */
static void test_model_roundtrip(void) {
    ucase t = {"model", 4, {3, 5, 4, 4, 2}, {NH_ACT_SILU, NH_ACT_SOFTPLUS, NH_ACT_LEAKY_RELU}, {NAN, 2.0, 0.2},
               {1, 0, 1, 0}, NH_LOSS_MSE, 1};
    nh_net *net = make(&t, NH_PARAM_STANDARD, 0.1), *back = NULL;
    nh_net_init_uniform_fanin(net, 77);
    nh_check(nh_model_save(g_dir, net) == NH_OK, "model: save standard, act list, bias flags (%s)", nh_last_error());
    nh_check(file_exists("b0.npy") && !file_exists("b1.npy") && file_exists("b2.npy") && !file_exists("b3.npy"),
             "model: b_l.npy written only for layers with bias");
    {
        char path[512], text[2048] = "";
        snprintf(path, sizeof path, "%s/config.json", g_dir);
        FILE *f = fopen(path, "r");
        size_t got = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f) fclose(f);
        text[got] = 0;
        nh_check(strstr(text, "\"silu\", \"softplus:2\", \"leaky_relu:0.2\"") && strstr(text, "\"standard\"") &&
                 strstr(text, "true, false, true, false") && !strstr(text, "beta"),
                 "model: config.json has the act list (shortest parameters), bias flags, no beta: %s", text);
    }
    nh_check(nh_model_load(g_dir, &back) == NH_OK, "model: load (%s)", nh_last_error());
    int same = back && nh_net_param(back) == NH_PARAM_STANDARD && nh_net_nparams(back) == nh_net_nparams(net) &&
               !memcmp(nh_net_params_const(back), nh_net_params_const(net), nh_net_nparams(net) * 8);
    for (size_t i = 0; same && i < 3; i++)
        same = nh_net_act_at(back, i) == nh_net_act_at(net, i) &&
               (i == 0 ? isnan(nh_net_act_param_at(back, 0)) : nh_net_act_param_at(back, i) == nh_net_act_param_at(net, i));
    for (size_t l = 0; same && l < 4; l++) same = nh_net_has_bias(back, l) == nh_net_has_bias(net, l);
    nh_check(same, "model: round trip keeps param, activations, parameters, bias flags, theta bit for bit");
    nh_net_free(back);
    nh_net_free(net);
    /* The exact format, as an importer writes it. */
    write_text("config.json", "{\"widths\": [3, 5, 4, 4, 2], \"act\": [\"silu\", \"softplus:2\", \"leaky_relu:0.2\"],\n"
                              " \"bias\": [true, false, true, false], \"param\": \"standard\", \"P\": 68}\n");
    nh_check(nh_model_load(g_dir, &back) == NH_OK && nh_net_act_param_at(back, 1) == 2.0 &&
             nh_net_act_param_at(back, 2) == 0.2 && !nh_net_has_bias(back, 3) && nh_net_nparams(back) == 68,
             "model: hand-written config with act list and bias flags (%s)", nh_last_error());
    nh_net_free(back);
    write_text("config.json", "{\"widths\": [3, 5, 4, 4, 2], \"act\": \"softplus:2\", \"param\": \"standard\"}\n");
    write_text("b1.npy", "not read");
    write_text("b3.npy", "not read");
    /* all biases now: b1/b3 are not valid npy files, so the load must fail on them */
    nh_check(nh_model_load(g_dir, &back) != NH_OK, "model: without 'bias', every b_l.npy is required");
    write_text("config.json", "{\"widths\": [3, 5, 4, 4, 2], \"act\": \"softplus:2\", \"param\": \"standard\", "
                              "\"bias\": [true, false, true, false]}\n");
    nh_check(nh_model_load(g_dir, &back) == NH_OK && nh_net_act_at(back, 2) == NH_ACT_SOFTPLUS &&
             nh_net_act_param_at(back, 2) == 2.0 && !nh_net_is_plain(back),
             "model: one 'softplus:2' for all layers; b_l.npy of a bias-free layer ignored");
    nh_net_free(back);
    static const struct { const char *cfg, *needle; } bad[] = {
        {"{\"widths\": [3, 5, 4, 4, 2], \"act\": [\"silu\", \"tanh\"]}", "lists 2 activations"},
        {"{\"widths\": [3, 5, 4, 4, 2], \"act\": [\"silu\", \"tanh\", 3]}", "entry 2 must be a string"},
        {"{\"widths\": [3, 5, 4, 4, 2], \"act\": [\"silu\", \"tanh\", \"swish\"]}", "unknown activation 'swish'"},
        {"{\"widths\": [3, 5, 2], \"act\": \"tanh:2\"}", "takes no parameter"},
        {"{\"widths\": [3, 5, 2], \"act\": \"softplus:0\"}", "beta must be > 0"},
        {"{\"widths\": [3, 5, 2], \"act\": \"tanh\", \"bias\": [true]}", "list of 2 booleans"},
        {"{\"widths\": [3, 5, 2], \"act\": \"tanh\", \"bias\": [true, 1]}", "entry 1 is not true or false"},
        {"{\"widths\": [3, 5, 2], \"act\": \"tanh\", \"param\": \"pytorch\"}", "\"standard\""},
        {"{\"widths\": [3, 5, 2], \"act\": \"tanh\", \"bias\": [true, false], \"P\": 32}", "'P' is 32 but the widths give 30"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        write_text("config.json", bad[k].cfg);
        nh_status st = nh_model_load(g_dir, &back);
        nh_check(st == NH_EFORMAT && strstr(nh_last_error(), bad[k].needle), "model: %s refused: '%s' in \"%s\"",
                 bad[k].cfg, bad[k].needle, nh_last_error());
    }
}

/* Same network in both parametrizations saved and loaded: same loss. */
static void test_model_congruence(void) {
    const size_t w[3] = {3, 4, 2};
    nh_net_config c = nh_net_config_default();
    c.depth = 2; c.widths = w; c.act = NH_ACT_TANH; c.beta = 0.25;
    nh_net *nn = NULL, *ns = NULL, *back = NULL;
    nh_net_create(&c, &nn);
    c.param = NH_PARAM_STANDARD;
    nh_net_create(&c, &ns);
    nh_net_init_normal(nn, 5);
    double *D = malloc(nh_net_nparams(nn) * 8);
    diag_D(nn, 0.25, D);
    for (size_t p = 0; p < nh_net_nparams(nn); p++) nh_net_params(ns)[p] = D[p] * nh_net_params_const(nn)[p];
    nh_model_save(g_dir, ns);
    nh_model_load(g_dir, &back);
    double X[6] = {0.3, -1, 2, 0.5, 0.1, -0.7}, Yn[4], Yb[4];
    nh_net_forward(nn, X, 2, Yn);
    nh_net_forward(back, X, 2, Yb);
    /* 1e-14: the same function, products rounded differently. */
    nh_check_array(Yb, Yn, 4, 0, 1e-14, "model: saved standard net == NTK net with W/sqrt(n), beta b");
    free(D); nh_net_free(nn); nh_net_free(ns); nh_net_free(back);
}

#define A_(x) NH_ACT_##x
static const ucase cases[] = {
    {"L1 mse", 1, {4, 2}, {A_(TANH)}, {NAN}, {1}, NH_LOSS_MSE, 5},
    {"L1 nobias ce", 1, {4, 3}, {A_(TANH)}, {NAN}, {0}, NH_LOSS_CE, 6},
    {"L2 silu bce", 2, {3, 5, 2}, {A_(SILU)}, {NAN}, {1, 1}, NH_LOSS_BCE, 4},
    {"L2 softplus:2 nobias0 mse", 2, {3, 6, 1}, {A_(SOFTPLUS)}, {2.0}, {0, 1}, NH_LOSS_MSE, 5},
    {"L3 silu,tanh ce", 3, {4, 5, 4, 3}, {A_(SILU), A_(TANH)}, {NAN, NAN}, {1, 1, 1}, NH_LOSS_CE, 4},
    {"L3 tanh,softplus:2 nobias1 mse", 3, {3, 4, 5, 2}, {A_(TANH), A_(SOFTPLUS)}, {NAN, 2.0}, {1, 0, 1}, NH_LOSS_MSE, 4},
    {"L3 leaky:0.2,silu bce", 3, {3, 4, 4, 1}, {A_(LEAKY_RELU), A_(SILU)}, {0.2, NAN}, {1, 1, 0}, NH_LOSS_BCE, 5},
    {"L4 silu,tanh,softplus:2 nobias2 ce", 4, {3, 4, 3, 4, 3}, {A_(SILU), A_(TANH), A_(SOFTPLUS)}, {NAN, NAN, 2.0},
     {1, 1, 0, 1}, NH_LOSS_CE, 3},
    {"L4 softplus:2,leaky,tanh mse", 4, {2, 3, 4, 3, 2}, {A_(SOFTPLUS), A_(LEAKY_RELU), A_(TANH)}, {2.0, NAN, NAN},
     {0, 1, 1, 0}, NH_LOSS_MSE, 4},
};

int main(void) {
    const size_t nc = sizeof cases / sizeof *cases;
    for (size_t i = 0; i < nc; i++) run_standard(&cases[i]);
    for (size_t i = 0; i < nc; i++) run_congruence(&cases[i]);
    test_beta_free(&cases[5]);
    test_beta_free(&cases[7]);
    test_init();
    test_config();
    test_f32();
    snprintf(g_dir, sizeof g_dir, "/tmp/nh_test_usermodel.XXXXXX");
    if (!mkdtemp(g_dir)) { printf("FAIL: mkdtemp\n"); return 1; }
    test_model_roundtrip();
    test_model_congruence();
    const char *files[] = {"config.json", "W0.npy", "W1.npy", "W2.npy", "W3.npy", "b0.npy", "b1.npy", "b2.npy", "b3.npy"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", g_dir, files[k]);
        remove(path);
    }
    rmdir(g_dir);
    NH_TEST_END();
}
