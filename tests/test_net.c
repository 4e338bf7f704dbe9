/* test_net.c -- the finite-width engine against independent truths:
 * central finite differences (loss, gradient, Jacobian, second derivatives),
 * dense matrices built column by column, operator identities, for depths
 * 1..4, several nonlinearities, all three losses and both parametrizations. */
#include "ntkhess.h"
#include "core/act_table.h"
#include "nh_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t L;
    size_t w[6];
    nh_act act;
    nh_loss loss;
    nh_param param;
    double beta;
    size_t n;
} cfg_t;

static nh_net *make_net(const cfg_t *t, uint64_t seed) {
    nh_net_config c = nh_net_config_default();
    c.depth = t->L; c.widths = t->w; c.act = t->act; c.beta = t->beta; c.param = t->param;
    nh_net *net = NULL;
    if (nh_net_create(&c, &net) != NH_OK) { printf("create failed: %s\n", nh_last_error()); exit(1); }
    nh_net_init_normal(net, seed);
    return net;
}

static void make_data(const cfg_t *t, uint64_t seed, double **X, double **T) {
    nh_rng r; nh_rng_seed(&r, seed);
    size_t n0 = t->w[0], nL = t->w[t->L];
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



static void run_case(const cfg_t *t) {
    nh_net *net = make_net(t, 1234 + t->L);
    double *X, *T;
    make_data(t, 99 + t->L, &X, &T);
    const size_t P = nh_net_nparams(net), n = t->n, m = t->w[t->L], nm = n * m;
    double *theta = nh_net_params(net);
    nh_curv *c = NULL;
    nh_status st = nh_curv_create(net, X, T, n, t->loss, &c);
    nh_check(st == NH_OK, "%s: create (%s)", t->name, nh_last_error());
    double *g = malloc(P * 8), *v = malloc(P * 8), *hv = malloc(P * 8), *iv = malloc(P * 8), *sv = malloc(P * 8);
    double *gp = malloc(P * 8), *gm = malloc(P * 8), *fd = malloc(P * 8), *tmp = malloc(P * 8);
    nh_rng r; nh_rng_seed(&r, 7);
    nh_rng_fill_normal(&r, P, v);
    nh_curv_grad(c, g);

    /* 1. gradient vs central differences of C along v.  h = eps^(1/3) ~ 6e-6
     * balances O(h^2) truncation against O(eps/h) rounding; the directional
     * error is then ~1e-10 relative to ||g|| ||v||, so 1e-7 leaves slack. */
    {
        const double h = 6e-6;
        double *save = malloc(P * 8); memcpy(save, theta, P * 8);
        for (size_t p = 0; p < P; p++) theta[p] = save[p] + h * v[p];
        double lp = loss_at(net, X, T, n, t->loss);
        for (size_t p = 0; p < P; p++) theta[p] = save[p] - h * v[p];
        double lm = loss_at(net, X, T, n, t->loss);
        memcpy(theta, save, P * 8);
        nh_check_close((lp - lm) / (2 * h), dot(g, v, P), 1e-7 * nrm(g, P) * nrm(v, P), 0, "%s: gradient . v vs FD", t->name);
        /* 2. H v vs central differences of the gradient (same h reasoning). */
        for (size_t p = 0; p < P; p++) theta[p] = save[p] + h * v[p];
        grad_at(net, X, T, n, t->loss, gp);
        for (size_t p = 0; p < P; p++) theta[p] = save[p] - h * v[p];
        grad_at(net, X, T, n, t->loss, gm);
        memcpy(theta, save, P * 8);
        free(save);
        for (size_t p = 0; p < P; p++) fd[p] = (gp[p] - gm[p]) / (2 * h);
        nh_curv_hvp(c, v, hv);
        double scale = nrm(hv, P) + nrm(fd, P);
        nh_check_array(hv, fd, P, 1e-7 * scale, 0, "%s: H v vs FD of gradient", t->name);
    }
    /* 3. I v + S v == H v (separate code paths through the R-pass), to rounding. */
    nh_curv_isvp(c, v, iv, sv);
    for (size_t p = 0; p < P; p++) tmp[p] = iv[p] + sv[p];
    nh_check_array(tmp, hv, P, 1e-12 * nrm(hv, P), 0, "%s: I v + S v == H v", t->name);
    nh_curv_ivp(c, v, tmp);
    nh_check_array(tmp, iv, P, 1e-14 * nrm(iv, P), 0, "%s: ivp == isvp's I part", t->name);
    nh_curv_svp(c, v, tmp);
    nh_check_array(tmp, sv, P, 1e-14 * (nrm(sv, P) + 1e-300), 0, "%s: svp == isvp's S part", t->name);

    /* 4. Dense: H from P unit-vector products, I = J^T HC J from the explicit
     * Jacobian, S from P S-products.  Residuals normalized by ||H||_F ||v||. */
    double *Hd = malloc(P * P * 8), *Id = malloc(P * P * 8), *Sd = malloc(P * P * 8);
    st = nh_curv_dense(c, Hd, Id, Sd);
    nh_check(st == NH_OK, "%s: dense", t->name);
    double hf = nrm(Hd, P * P);
    for (size_t a = 0; a < P; a++) tmp[a] = dot(Hd + a * P, v, P);
    nh_check_array(tmp, hv, P, 1e-12 * hf * nrm(v, P), 0, "%s: dense H v == hvp", t->name);
    for (size_t a = 0; a < P; a++) tmp[a] = dot(Id + a * P, v, P);
    nh_check_array(tmp, iv, P, 1e-12 * hf * nrm(v, P), 0, "%s: dense(J^T HC J) v == ivp", t->name);
    double maxres = 0;
    for (size_t a = 0; a < P * P; a++) { double e = fabs(Id[a] + Sd[a] - Hd[a]); if (e > maxres) maxres = e; }
    nh_check_close(maxres, 0, 1e-13 * hf, 0, "%s: dense I + S == H", t->name);

    /* 5. Jacobian vs central differences of the outputs (h = 6e-6 as above). */
    double *J = malloc(nm * P * 8), *Yp = malloc(nm * 8), *Ym = malloc(nm * 8), *jv = malloc(nm * 8), *jfd = malloc(nm * 8);
    nh_curv_jacobian(c, J);
    {
        const double h = 6e-6;
        double *save = malloc(P * 8); memcpy(save, theta, P * 8);
        for (size_t p = 0; p < P; p++) theta[p] = save[p] + h * v[p];
        nh_net_forward(net, X, n, Yp);
        for (size_t p = 0; p < P; p++) theta[p] = save[p] - h * v[p];
        nh_net_forward(net, X, n, Ym);
        memcpy(theta, save, P * 8); free(save);
        for (size_t i = 0; i < nm; i++) { jfd[i] = (Yp[i] - Ym[i]) / (2 * h); jv[i] = dot(J + i * P, v, P); }
        nh_check_array(jv, jfd, nm, 1e-7 * nrm(jfd, nm), 0, "%s: Jacobian v vs FD of outputs", t->name);
        nh_curv_jvp(c, v, Yp);
        nh_check_array(Yp, jv, nm, 1e-12 * nrm(jv, nm), 0, "%s: jvp == J v", t->name);
    }
    /* 6. NTK from layer outer products == J J^T. */
    double *K = malloc(nm * nm * 8), *JJ = malloc(nm * nm * 8);
    nh_curv_ntk(c, K);
    for (size_t a = 0; a < nm; a++) for (size_t b = 0; b < nm; b++) JJ[a * nm + b] = dot(J + a * P, J + b * P, P);
    nh_check_array(K, JJ, nm * nm, 0, 1e-13, "%s: NTK == J J^T", t->name);
    /* 7. Tr(I^k) == Tr((HC Theta)^k), k = 1..4.  I^k via dense products,
     * (HC Theta)^k via the NTK: relative 1e-11 covers k-fold products of
     * P-length sums at condition ~1. */
    {
        double *HC = malloc(n * m * m * 8), *M = calloc(nm * nm, 8);
        nh_curv_hloss(c, HC);
        for (size_t i = 0; i < n; i++)
            for (size_t a = 0; a < m; a++)
                for (size_t b = 0; b < nm; b++) {
                    double s = 0; for (size_t q = 0; q < m; q++) s += HC[(i * m + a) * m + q] * K[(i * m + q) * nm + b];
                    M[(i * m + a) * nm + b] = s;
                }
        double *Pk = malloc(P * P * 8), *Pn = malloc(P * P * 8), *Mk = malloc(nm * nm * 8), *Mn = malloc(nm * nm * 8);
        memcpy(Pk, Id, P * P * 8); memcpy(Mk, M, nm * nm * 8);
        for (int k = 1; k <= 4; k++) {
            double ti = 0, tm = 0;
            for (size_t a = 0; a < P; a++) ti += Pk[a * P + a];
            for (size_t a = 0; a < nm; a++) tm += Mk[a * nm + a];
            nh_check_close(ti, tm, 1e-300, 1e-11, "%s: Tr(I^%d) == Tr((HC Theta)^%d)", t->name, k, k);
            for (size_t a = 0; a < P; a++) for (size_t b = 0; b < P; b++) { double s = 0; for (size_t q = 0; q < P; q++) s += Pk[a * P + q] * Id[q * P + b]; Pn[a * P + b] = s; }
            for (size_t a = 0; a < nm; a++) for (size_t b = 0; b < nm; b++) { double s = 0; for (size_t q = 0; q < nm; q++) s += Mk[a * nm + q] * M[q * nm + b]; Mn[a * nm + b] = s; }
            double *s1 = Pk; Pk = Pn; Pn = s1; double *s2 = Mk; Mk = Mn; Mn = s2;
        }
        free(HC); free(M); free(Pk); free(Pn); free(Mk); free(Mn);
    }
    /* 8. G vs the trace of the parameter Hessian of each f_k(x_i), by central
     * differences of the exact Jacobian: d^2 f/dtheta_p^2 ~ (J(+h e_p) - J(-h e_p))_p / 2h.
     * h = 1e-5: truncation h^2 f''' ~ 1e-10, rounding eps/h ~ 2e-11 per entry,
     * summed over P entries; 1e-7 relative to sum_p |d2f| is safe. */
    if (P <= 400) {
        double *G = malloc(nm * 8), *Gfd = calloc(nm, 8), *Gabs = calloc(nm, 8);
        nh_status sg = nh_curv_G(c, G);
        nh_check(sg == NH_OK, "%s: G status (%s)", t->name, nh_last_error());
        double *Jp = malloc(nm * P * 8), *Jm = malloc(nm * P * 8);
        const double h = 1e-5;
        for (size_t p = 0; p < P; p++) {
            double th = theta[p];
            nh_curv *cc = NULL;
            theta[p] = th + h; nh_curv_create(net, X, T, n, t->loss, &cc); nh_curv_jacobian(cc, Jp); nh_curv_free(cc);
            theta[p] = th - h; nh_curv_create(net, X, T, n, t->loss, &cc); nh_curv_jacobian(cc, Jm); nh_curv_free(cc);
            theta[p] = th;
            for (size_t i = 0; i < nm; i++) { double d = (Jp[i * P + p] - Jm[i * P + p]) / (2 * h); Gfd[i] += d; Gabs[i] += fabs(d); }
        }
        double sc = 0; for (size_t i = 0; i < nm; i++) if (Gabs[i] > sc) sc = Gabs[i];
        nh_check_array(G, Gfd, nm, 1e-7 * sc + 1e-12, 0, "%s: G vs FD trace of Hess f", t->name);
        /* and Tr(S) = G . dC/dY from the dense S */
        double *E = malloc(nm * 8), trs = 0; nh_curv_dloss(c, E);
        for (size_t a = 0; a < P; a++) trs += Sd[a * P + a];
        nh_check_close(dot(G, E, nm), trs, 1e-12 * nrm(Sd, P * P), 0, "%s: Tr(S) == G . dC/dY", t->name);
        free(E); free(Jp); free(Jm); free(G); free(Gfd); free(Gabs);
    }
    free(J); free(Yp); free(Ym); free(jv); free(jfd); free(K); free(JJ);
    free(Hd); free(Id); free(Sd);
    free(g); free(v); free(hv); free(iv); free(sv); free(gp); free(gm); free(fd); free(tmp);
    nh_curv_free(c); nh_net_free(net); free(X); free(T);
}

static void test_losses(void) {
    /* dC/dY and HC vs central differences of nh_loss_eval (h = 6e-6 on O(1) values). */
    const size_t n = 5, m = 3;
    double Y[15], T[15], Tc[5], g[15], hc[45], gp[15], gm[15], vp, vm;
    nh_rng r; nh_rng_seed(&r, 3);
    for (int i = 0; i < 15; i++) { Y[i] = 1.7 * nh_rng_normal(&r); T[i] = nh_rng_normal(&r) > 0 ? 1 : -1; }
    for (int i = 0; i < 5; i++) Tc[i] = (double)(i % 3);
    nh_check(nh_loss_count() == NH_LOSS_COUNT, "nh_loss_count");
    for (int L = 0; L < NH_LOSS_COUNT; L++) {
        /* one class id per sample, or a value per output */
        const double *TT = nh_loss_target_count((nh_loss)L, n, m) == n ? Tc : T;
        nh_loss_eval((nh_loss)L, Y, TT, n, m, NULL, g, hc);
        const double h = 6e-6;
        for (size_t q = 0; q < n * m; q++) {
            double y0 = Y[q];
            Y[q] = y0 + h; nh_loss_eval((nh_loss)L, Y, TT, n, m, &vp, gp, NULL);
            Y[q] = y0 - h; nh_loss_eval((nh_loss)L, Y, TT, n, m, &vm, gm, NULL);
            Y[q] = y0;
            nh_check_close(g[q], (vp - vm) / (2 * h), 1e-9, 0, "loss %s: dC/dY[%zu] vs FD", nh_loss_name((nh_loss)L), q);
            size_t i = q / m, k = q % m;
            for (size_t kk = 0; kk < m; kk++)
                nh_check_close(hc[(i * m + kk) * m + k], (gp[i * m + kk] - gm[i * m + kk]) / (2 * h), 1e-9, 0,
                               "loss %s: HC[%zu][%zu,%zu] vs FD", nh_loss_name((nh_loss)L), i, kk, k);
        }
    }
    /* BCE weight at Y = 0 is 1/4 per sample (sheet §3 item 11), i.e. 1/(4N). */
    double y0 = 0, t0 = 1, h0;
    nh_loss_eval(NH_LOSS_BCE, &y0, &t0, 1, 1, NULL, NULL, &h0);
    nh_check_close(h0, 0.25, 0, 1e-15, "bce HC at Y=0 is 1/4");
}

/* sigma at x with parameter p from libm, written independently of act.c: the
 * test of each activation's value.  A new activation needs a case here. */
static int act_reference(nh_act a, double p, double x, double *v) {
    double lg = 1.0 / (1.0 + exp(-x));
    switch (a) {
    case NH_ACT_SOFTPLUS: *v = log1p(exp(p * x)) / p; return 1;
    case NH_ACT_NSOFTPLUS: *v = (log1p(exp(x)) - NH_NSOFTPLUS_MU) / NH_NSOFTPLUS_SD; return 1;
    case NH_ACT_TANH: *v = tanh(x); return 1;
    case NH_ACT_ARCTAN: *v = atan(x); return 1;
    case NH_ACT_ERF: *v = erf(x); return 1;
    case NH_ACT_SIGMOID: *v = lg; return 1;
    case NH_ACT_GELU: *v = 0.5 * x * (1.0 + erf(x / sqrt(2.0))); return 1;
    case NH_ACT_SIN: *v = sin(x); return 1;
    case NH_ACT_RELU: *v = x > 0 ? x : 0.0; return 1;
    case NH_ACT_IDENTITY: *v = x; return 1;
    case NH_ACT_SILU: *v = x * lg; return 1;
    case NH_ACT_LEAKY_RELU: *v = x > 0 ? x : p * x; return 1;
    default: return 0;
    }
}

/* Every row of the activation table: name round trip, value against libm,
 * derivatives 1..3 against central differences of the one below (at the
 * default parameter and one other), kinks with sigma'' = sigma''' = 0. */
static void test_act_table_row(nh_act a, const double *xs, size_t nx) {
    const nh__act_row *row = nh__act_row_of(a);
    nh_check(row && row->name && *row->name && row->eval, "act %d: table row filled", (int)a);
    if (!row) return;
    nh_act b = NH_ACT_COUNT;
    double prm = 0;
    nh_check(nh_act_from_name(row->name, &b) == NH_OK && b == a, "act %s: name round trip", row->name);
    nh_check(nh_act_parse(row->name, &b, &prm) == NH_OK && b == a &&
                 (row->param ? prm == row->param_default : isnan(prm)),
             "act %s: parse gives the default parameter", row->name);
    nh_check(strcmp(nh_act_title(a), row->title ? row->title : row->name) == 0, "act %s: title", row->name);
    nh_check(nh_act_param_name(a) == row->param && (row->param == NULL) == isnan(row->param_default),
             "act %s: parameter name and default go together", row->name);
    /* default parameter, and one more where there is a parameter (positive
     * for softplus's beta). */
    double ps[2] = {row->param_default, row->param_positive ? 2.5 : 0.2};
    for (int ip = 0; ip < (row->param ? 2 : 1); ip++) {
        const double p = ps[ip], pa = isnan(p) ? 1.0 : fabs(p);
        char lab[64];
        nh_act_format(a, p, lab, sizeof lab);
        for (size_t i = 0; i < nx; i++) {
            double x = xs[i], h = 1e-5, d[4], u[4], w[4], xp = x + h, xm = x - h, ref;
            if (!row->smooth && x == 0.0) continue; /* the kink: no derivative */
            nh_act_eval_p(a, p, 1, &x, d, d + 1, d + 2, d + 3);
            nh_act_eval_p(a, p, 1, &xp, u, u + 1, u + 2, u + 3);
            nh_act_eval_p(a, p, 1, &xm, w, w + 1, w + 2, w + 3);
            nh_check(act_reference(a, p, x, &ref), "act %s: the test has a reference value", row->name);
            /* libm against libm through other identities: a few ulps of O(1..7) values. */
            nh_check_close(d[0], ref, 1e-14, 1e-14, "act %s: value at %g", lab, x);
            /* central differences: error O(h^2 sigma'''') ~ 1e-10 p^3, plus rounding 1e-16/h */
            for (int k = 0; k < 3; k++)
                nh_check_close(d[k + 1], (u[k] - w[k]) / (2 * h), 1e-8 * (1 + pa * pa * pa), 1e-8,
                               "act %s: derivative %d at %g", lab, k + 1, x);
            if (!row->smooth) nh_check(d[2] == 0.0 && d[3] == 0.0, "act %s: sigma'' = sigma''' = 0 (kink)", row->name);
        }
    }
}

static void test_activations(void) {
    double xs[7] = {-7.3, -2.1, -0.37, 0.0, 0.41, 1.9, 6.8};
    nh_check(nh_act_count() == NH_ACT_COUNT, "nh_act_count");
    for (int a = 0; a < NH_ACT_COUNT; a++) test_act_table_row((nh_act)a, xs, 7);
    nh_check(strcmp(nh_act_name(NH_ACT_COUNT), "unknown") == 0, "name past the table");
    double x = 0.3, d[4], x2 = -0.3;
    nh_act_eval(NH_ACT_RELU, 1, &x, d, d + 1, d + 2, d + 3);
    nh_check(d[0] == 0.3 && d[1] == 1 && d[2] == 0 && d[3] == 0, "relu at 0.3");
    nh_act_eval(NH_ACT_RELU, 1, &x2, d, d + 1, d + 2, d + 3);
    nh_check(d[0] == 0 && d[1] == 0, "relu at -0.3");
    /* softplus must not overflow at large |x| */
    double big[2] = {800, -800}, o[2];
    nh_act_eval(NH_ACT_SOFTPLUS, 2, big, o, NULL, NULL, NULL);
    nh_check(o[0] == 800 && o[1] >= 0 && o[1] < 1e-300, "softplus stable at +-800");
    nh_act_eval(NH_ACT_LEAKY_RELU, 1, &x2, d, d + 1, d + 2, d + 3);
    nh_check(d[0] == 0.01 * -0.3 && d[1] == 0.01 && d[2] == 0 && d[3] == 0, "leaky_relu at -0.3");
    nh_act_eval_p(NH_ACT_LEAKY_RELU, 0.2, 1, &x2, d, d + 1, d + 2, d + 3);
    nh_check(d[0] == 0.2 * -0.3 && d[1] == 0.2, "leaky_relu:0.2 at -0.3");
    /* softplus with beta: derivatives against central differences (h = 1e-5,
     * O(h^2 beta^k) error), and log(1+e^(beta x))/beta at one point. */
    for (int i = 0; i < 7; i++) {
        double bt = 2.5, xx = xs[i], h = 1e-5, dd[4], p[4], q[4], xp = xx + h, xm = xx - h;
        nh_act_eval_p(NH_ACT_SOFTPLUS, bt, 1, &xx, dd, dd + 1, dd + 2, dd + 3);
        nh_act_eval_p(NH_ACT_SOFTPLUS, bt, 1, &xp, p, p + 1, p + 2, p + 3);
        nh_act_eval_p(NH_ACT_SOFTPLUS, bt, 1, &xm, q, q + 1, q + 2, q + 3);
        for (int k = 0; k < 3; k++)
            nh_check_close(dd[k + 1], (p[k] - q[k]) / (2 * h), 1e-7, 1e-7, "softplus:2.5 derivative %d at %g",
                           k + 1, xx);
        if (i == 4) nh_check_close(dd[0], log1p(exp(2.5 * 0.41)) / 2.5, 0, 1e-15, "softplus:2.5 value");
    }
    nh_act act;
    double prm;
    nh_check(nh_act_from_name("bogus", &act) == NH_EINVAL, "unknown activation rejected");
    nh_check(nh_act_parse("softplus:2", &act, &prm) == NH_OK && act == NH_ACT_SOFTPLUS && prm == 2.0,
             "parse softplus:2");
    nh_check(nh_act_parse("leaky_relu", &act, &prm) == NH_OK && prm == 0.01, "parse leaky_relu default");
    nh_check(nh_act_parse("tanh:2", &act, &prm) == NH_EINVAL, "tanh takes no parameter");
    nh_check(nh_act_parse("softplus:-1", &act, &prm) == NH_EINVAL, "softplus beta > 0");
    nh_check(nh_act_parse("softplus:x", &act, &prm) == NH_EINVAL, "parameter must be a number");
    char buf[64];
    nh_check(strcmp(nh_act_format(NH_ACT_SOFTPLUS, 2.0, buf, sizeof buf), "softplus:2") == 0 &&
             strcmp(nh_act_format(NH_ACT_SOFTPLUS, 1.0, buf, sizeof buf), "softplus") == 0,
             "format round-trips");
}

static void test_rng(void) {
    /* Golden values: the same seed must give these exact doubles on every machine. */
    nh_rng r; nh_rng_seed(&r, 42);
    double z[4]; nh_rng_fill_normal(&r, 4, z);
    const char *env = getenv("NH_PRINT_GOLDEN");
    if (env) printf("golden %a %a %a %a\n", z[0], z[1], z[2], z[3]);
    static const double want[4] = {-0x1.73d2feb0fb377p-1, -0x1.b088028693f9cp-3, 0x1.c5e21f7812a4cp-3, 0x1.0ba8bb0c5fa51p-1};
    for (int i = 0; i < 4; i++) nh_check(z[i] == want[i], "rng golden normal %d: %a vs %a", i, z[i], want[i]);
    /* moments of 2e5 normals: mean within 4 SE (SE = 1/sqrt(n)), var within 4 SE (sqrt(2/n)) */
    nh_rng_seed(&r, 7);
    double s = 0, s2 = 0; const int N = 200000;
    for (int i = 0; i < N; i++) { double u = nh_rng_normal(&r); s += u; s2 += u * u; }
    nh_check_close(s / N, 0, 4 / sqrt((double)N), 0, "rng mean");
    nh_check_close(s2 / N, 1, 4 * sqrt(2.0 / N), 0, "rng variance");
}

static void test_errors(void) {
    size_t w[3] = {3, 0, 1};
    nh_net_config c = nh_net_config_default();
    nh_net *net = NULL;
    c.depth = 2; c.widths = w;
    nh_check(nh_net_create(&c, &net) == NH_EINVAL && net == NULL, "zero width rejected");
    size_t huge[3] = {100000, 100000000, 1};
    c.widths = huge;
    nh_check(nh_net_create(&c, &net) == NH_ETOOLARGE, "absurd width -> NH_ETOOLARGE (%s)", nh_last_error());
    size_t ok_w[3] = {2, 3, 1};
    c.widths = ok_w;
    nh_check(nh_net_create(&c, &net) == NH_OK, "small net ok");
    double X[4] = {1, NAN, 0, 1}, T[2] = {0, 0}, Y[2];
    nh_curv *cv = NULL;
    nh_check(nh_curv_create(net, X, T, 2, NH_LOSS_MSE, &cv) == NH_ENONFINITE, "NaN in X rejected");
    X[1] = 0.5;
    double Tb[2] = {0, 1};
    nh_check(nh_curv_create(net, X, Tb, 2, NH_LOSS_BCE, &cv) == NH_EINVAL, "bce label 0 rejected");
    nh_check(nh_curv_create(net, X, T, 0, NH_LOSS_MSE, &cv) == NH_EINVAL, "empty batch rejected");
    nh_check(nh_net_forward(net, X, 2, Y) == NH_OK, "forward ok");
    /* divergence: huge learning rate on a huge target -> NH_EDIVERGED, theta unchanged */
    double Tbig[2] = {1e100, -1e100};
    nh_net_init_normal(net, 5);
    nh_check(nh_curv_create(net, X, Tbig, 2, NH_LOSS_MSE, &cv) == NH_OK, "create for divergence");
    size_t P = nh_net_nparams(net);
    double *save = malloc(P * 8); memcpy(save, nh_net_params(net), P * 8);
    nh_status st = NH_OK;
    for (int k = 0; k < 50 && st == NH_OK; k++) st = nh_curv_gd_step(cv, net, 1e150);
    nh_check(st == NH_EDIVERGED, "divergence detected (%s)", nh_last_error());
    size_t bad = 0; for (size_t p = 0; p < P; p++) bad += !isfinite(nh_net_params(net)[p]);
    nh_check(bad == 0, "parameters stay finite after divergence");
    free(save);
    nh_curv_free(cv);
    nh_net_free(net);
    nh_curv_free(NULL); nh_net_free(NULL);
}

static void test_alloc_failures(void) {
    /* Make the k-th allocation fail on the create paths: each must return
     * NH_ENOMEM cleanly (leaks are caught by the ASan/LSan build). */
    extern void nh__alloc_fail_at(long);
    size_t w[4] = {3, 5, 4, 2};
    nh_net_config c = nh_net_config_default(); c.depth = 3; c.widths = w;
    double X[6] = {1, 2, 3, 4, 5, 6}, T[4] = {0, 1, 1, 0};
    for (long k = 1; k <= 12; k++) {
        nh_net *net = NULL; nh_curv *cv = NULL;
        nh__alloc_fail_at(k);
        nh_status s1 = nh_net_create(&c, &net), s2 = NH_OK;
        if (s1 == NH_OK) { nh_net_init_normal(net, 1); s2 = nh_curv_create(net, X, T, 2, NH_LOSS_MSE, &cv); }
        nh__alloc_fail_at(0);
        nh_check((s1 == NH_ENOMEM && !net) || (s1 == NH_OK && (s2 == NH_OK || (s2 == NH_ENOMEM && !cv))),
                 "alloc failure %ld handled (%d, %d)", k, (int)s1, (int)s2);
        nh_curv_free(cv); nh_net_free(net);
    }
}

int main(void) {
    test_activations();
    test_losses();
    test_rng();
    test_errors();
    test_alloc_failures();
    const cfg_t cases[] = {
        {"L1 identity mse", 1, {4, 3}, NH_ACT_IDENTITY, NH_LOSS_MSE, NH_PARAM_NTK, 0.1, 5},
        {"L1 tanh ce", 1, {4, 3}, NH_ACT_TANH, NH_LOSS_CE, NH_PARAM_NTK, 0.1, 5},
        {"L2 softplus mse", 2, {3, 7, 1}, NH_ACT_SOFTPLUS, NH_LOSS_MSE, NH_PARAM_NTK, 0.1, 6},
        {"L2 arctan bce", 2, {3, 7, 2}, NH_ACT_ARCTAN, NH_LOSS_BCE, NH_PARAM_NTK, 0.3, 5},
        {"L2 erf ce", 2, {4, 6, 3}, NH_ACT_ERF, NH_LOSS_CE, NH_PARAM_NTK, 0.1, 4},
        {"L3 nsoftplus mse", 3, {3, 7, 5, 1}, NH_ACT_NSOFTPLUS, NH_LOSS_MSE, NH_PARAM_NTK, 0.1, 6},
        {"L3 tanh mse mf", 3, {3, 6, 5, 2}, NH_ACT_TANH, NH_LOSS_MSE, NH_PARAM_MF, 0.1, 4},
        {"L3 gelu bce", 3, {2, 5, 6, 1}, NH_ACT_GELU, NH_LOSS_BCE, NH_PARAM_NTK, 0.5, 5},
        {"L3 sigmoid ce", 3, {3, 5, 4, 3}, NH_ACT_SIGMOID, NH_LOSS_CE, NH_PARAM_NTK, 0.1, 4},
        {"L4 softplus mse", 4, {3, 6, 5, 4, 1}, NH_ACT_SOFTPLUS, NH_LOSS_MSE, NH_PARAM_NTK, 0.1, 5},
        {"L4 sin ce", 4, {2, 5, 4, 6, 2}, NH_ACT_SIN, NH_LOSS_CE, NH_PARAM_NTK, 0.2, 4},
        {"L4 arctan bce mf", 4, {3, 4, 5, 4, 1}, NH_ACT_ARCTAN, NH_LOSS_BCE, NH_PARAM_MF, 0.1, 5},
        {"L5 tanh mse", 5, {2, 4, 5, 3, 4, 1}, NH_ACT_TANH, NH_LOSS_MSE, NH_PARAM_NTK, 0.1, 4},
        {"L3 relu mse", 3, {3, 6, 5, 1}, NH_ACT_RELU, NH_LOSS_MSE, NH_PARAM_NTK, 0.1, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
    NH_TEST_END();
}
