/* cmd_meanfield.c -- ntkhess meanfield: the mean-field conjecture of Sec. 3.3
 * at initialization, prediction (nh_predict_meanfield) against the measured
 * distribution over R networks per width.
 *
 * Scaling.  The network is built in the library's mean-field parametrization
 * (NH_PARAM_MF: f = a~(L) / sqrt(w), w = n_{L-1}); nh_curv gives the Hessian
 * Hc of C(f) in theta.  The paper also multiplies the learning rate by w,
 * i.e. it looks at H = w Hc = I_ntk + sqrt(w) gradC(f) . Hess a~(L), so
 *   tr_h  = (1/sqrt(w)) Tr H = sqrt(w) Tr Hc,
 *   tr_h2 = (1/w) Tr H^2     = w Tr Hc^2,
 * and ||S||_F / ||I||_F does not depend on the factor.  Tr Hc = Tr I + Tr S
 * is exact (NTK Gram and G); Tr Hc^2 is exact from the dense Hessian when
 * P <= --dense-max, else a Hutchinson estimate with control variates (its
 * standard error is reported beside the trial-to-trial spread). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MF_MAXW 32

typedef struct mf_cfg {
    nh_act act;
    nh_loss loss;
    size_t depth, n, n0, nout, trials, M, dense_max;
    double beta;
    uint64_t seed;
} mf_cfg;

/* One network: paper-scaled values and how they were obtained. */
typedef struct mf_trial {
    double tr_h, tr_h2, tr_h2_se, tr_i2, tr_s2, ratio;
    double tr_i, tr_lin; /* (1/sqrt(w)) Tr I and G_ntk . grad C(0): tr_h = tr_i + tr_lin + rest */
    int exact;
} mf_trial;

/* Predictions from the limiting kernels. */
typedef struct mf_pred {
    double var_tr_h, lim_tr_h2;
    double bias1;  /* E[tr_h] ~ bias1 / sqrt(w): Tr(HC Theta~) + Tr(HC Phi~), HC at Y = 0 */
    double tr_i2;  /* Tr((HC Theta~)^2) at Y = 0: ||I||_F^2 in the limit                */
} mf_pred;

/* Sample statistics of one quantity over R trials. */
typedef struct mf_stat {
    double mean, var, se_mean, se_var, ad, ad_p;
} mf_stat;

static uint64_t mf_seed(uint64_t seed, size_t w, size_t r) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)w * 0xbf58476d1ce4e5b9ULL + (uint64_t)r + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static nh_net *mf_net(const nh_cmd *cmd, const mf_cfg *f, size_t w, uint64_t seed) {
    size_t wd[34];
    wd[0] = f->n0;
    for (size_t l = 1; l < f->depth; l++) wd[l] = w;
    wd[f->depth] = f->nout;
    nh_net_config c = nh_net_config_default();
    c.depth = f->depth;
    c.widths = wd;
    c.act = f->act;
    c.beta = f->beta;
    c.param = NH_PARAM_MF;
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_net_create(&c, &net));
    nh_net_init_normal(net, seed);
    return net;
}

/* ------------------------------------------------------------ statistics */

/* Standard normal CDF. */
static double mf_phi(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

static int mf_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Anderson-Darling test of normality with mean and variance estimated
 * (case 3): A^2 on the sorted standardized sample, A* = A^2 (1 + 0.75/R +
 * 2.25/R^2), p-value from the piecewise fit of D'Agostino & Stephens (1986),
 * Table 4.9.  Needs R >= 8 for the fit to apply; else p = NaN. */
static void mf_anderson(const double *x, size_t R, double mean, double sd, double *a2, double *p) {
    *a2 = NAN;
    *p = NAN;
    if (R < 8 || !(sd > 0)) return;
    double *z = malloc(R * sizeof *z);
    if (!z) return;
    for (size_t i = 0; i < R; i++) z[i] = (x[i] - mean) / sd;
    qsort(z, R, sizeof *z, mf_cmp);
    double s = 0, n = (double)R;
    for (size_t i = 0; i < R; i++) {
        double lo = mf_phi(z[i]), hi = mf_phi(z[R - 1 - i]);
        lo = fmax(lo, 1e-300);
        hi = fmin(hi, 1.0 - 1e-16);
        s += (2.0 * (double)i + 1.0) * (log(lo) + log1p(-hi));
    }
    free(z);
    double A = -n - s / n, As = A * (1.0 + 0.75 / n + 2.25 / (n * n));
    *a2 = A;
    if (As >= 0.6) *p = exp(1.2937 - 5.709 * As + 0.0186 * As * As);
    else if (As >= 0.34) *p = exp(0.9177 - 4.279 * As - 1.38 * As * As);
    else if (As >= 0.2) *p = 1.0 - exp(-8.318 + 42.796 * As - 59.938 * As * As);
    else *p = 1.0 - exp(-13.436 + 101.14 * As - 223.73 * As * As);
    *p = fmin(fmax(*p, 0.0), 1.0);
}

/* Mean, unbiased variance, SE of the mean, SE of the variance from the
 * fourth central moment (distribution-free: Var(s^2) ~ (m4 - (R-3)/(R-1)
 * s^4) / R), and the Anderson-Darling test. */
static mf_stat mf_stats(const double *x, size_t R) {
    mf_stat s;
    double n = (double)R, m = 0, m2 = 0, m4 = 0;
    for (size_t i = 0; i < R; i++) m += x[i];
    m /= n;
    for (size_t i = 0; i < R; i++) {
        double d = (x[i] - m) * (x[i] - m);
        m2 += d;
        m4 += d * d;
    }
    s.mean = m;
    s.var = m2 / (n - 1);
    s.se_mean = sqrt(s.var / n);
    double v4 = m4 / n - (n - 3) / (n - 1) * s.var * s.var;
    s.se_var = sqrt(fmax(v4, 0.0) / n);
    mf_anderson(x, R, m, sqrt(s.var), &s.ad, &s.ad_p);
    return s;
}

/* ------------------------------------------------------------ prediction */

/* Limiting kernels of the data -> var_tr_h, lim_tr_h2 (the library), and
 * the leading finite-width terms bias1 and Tr((HC Theta~)^2) at Y = 0. */
static void mf_predict(const nh_cmd *cmd, const mf_cfg *f, const double *X, const double *T, mf_pred *pr) {
    size_t n = f->n, q = f->nout;
    nh_kernel_opts ko = nh_kernel_opts_default();
    ko.act = f->act;
    ko.depth = f->depth;
    ko.beta = f->beta;
    double *mats[NH_K_COUNT] = {0};
    const int need[] = {NH_K_THETA, NH_K_UPSILON, NH_K_PHI, NH_K_XI};
    for (int k = 0; k < 4; k++)
        if (!(mats[need[k]] = malloc(n * n * sizeof(double)))) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_kernels_gram(&ko, n, f->n0, X, mats));
    nh_grams g = {n, mats[NH_K_THETA], NULL, mats[NH_K_UPSILON], mats[NH_K_PHI], mats[NH_K_XI], NULL};
    NH_CHECK(cmd, nh_predict_meanfield(&g, f->loss, q, T, NULL, &pr->var_tr_h, &pr->lim_tr_h2));
    double *Y0 = calloc(n * q, sizeof *Y0), *hc = malloc(n * q * q * sizeof *hc), *trc = malloc(n * sizeof *trc);
    if (!Y0 || !hc || !trc) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_loss_eval(f->loss, Y0, T, n, q, NULL, NULL, hc));
    const double *th = mats[NH_K_THETA], *ph = mats[NH_K_PHI];
    pr->bias1 = 0;
    pr->tr_i2 = 0;
    for (size_t i = 0; i < n; i++) {
        trc[i] = 0;
        for (size_t k = 0; k < q; k++) trc[i] += hc[(i * q + k) * q + k];
        pr->bias1 += (th[i * n + i] + ph[i * n + i]) * trc[i];
    }
    /* Tr((HC Theta~)^2) = sum_ij Theta_ij^2 tr(HC_i HC_j) (HC blocks symmetric). */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double t = 0;
            for (size_t a = 0; a < q * q; a++) t += hc[i * q * q + a] * hc[j * q * q + a];
            pr->tr_i2 += th[i * n + j] * th[i * n + j] * t;
        }
    free(Y0); free(hc); free(trc);
    for (int k = 0; k < NH_K_COUNT; k++) free(mats[k]);
}

/* ------------------------------------------------------------- one trial */

/* Exact Tr Hc and Tr I, Tr I^2 of the library's Hessian Hc, and lin =
 * G . grad C(0), the part of Tr S whose law the limit describes. */
static void mf_exact_parts(const nh_cmd *cmd, nh_curv *c, nh_loss loss, const double *T, size_t n, size_t q, double *trh,
                           double tri[2], double *lin) {
    size_t m = n * q;
    double *K = malloc(m * m * sizeof *K), *hc = malloc(m * q * sizeof *hc);
    double *G = malloc(m * sizeof *G), *dC = malloc(m * sizeof *dC), *d0 = malloc(m * sizeof *d0);
    if (!K || !hc || !G || !dC || !d0) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_curv_ntk(c, K));
    nh_curv_hloss(c, hc);
    NH_CHECK(cmd, nh_ntk_trace_powers(n, q, K, hc, 2, tri));
    NH_CHECK(cmd, nh_curv_G(c, G));
    nh_curv_dloss(c, dC);
    double trs = 0;
    for (size_t i = 0; i < m; i++) trs += G[i] * dC[i];
    *trh = tri[0] + trs;
    memset(K, 0, m * sizeof *K); /* outputs Y = 0: grad C(0) into d0 */
    NH_CHECK(cmd, nh_loss_eval(loss, K, T, n, q, NULL, d0, NULL));
    *lin = 0;
    for (size_t i = 0; i < m; i++) *lin += G[i] * d0[i];
    free(K); free(hc); free(G); free(dC); free(d0);
}

/* Tr Hc^2 and Tr S^2 from the dense P x P matrices (exact). */
static void mf_dense(const nh_cmd *cmd, nh_curv *c, size_t P, double *trh2, double *trs2) {
    double *Hm = malloc(P * P * sizeof *Hm), *Sm = malloc(P * P * sizeof *Sm);
    if (!Hm || !Sm) nh_die(cmd, "out of memory for the dense %zu x %zu Hessian", P, P);
    NH_CHECK(cmd, nh_curv_dense(c, Hm, NULL, Sm));
    double h = 0, s = 0;
    for (size_t i = 0; i < P * P; i++) {
        h += Hm[i] * Hm[i];
        s += Sm[i] * Sm[i];
    }
    *trh2 = h;
    *trs2 = s;
    free(Hm); free(Sm);
}

static void mf_trial_run(const nh_cmd *cmd, const mf_cfg *f, size_t w, size_t r, const double *X, const double *T,
                         mf_trial *t) {
    uint64_t seed = mf_seed(f->seed, w, r);
    nh_net *net = mf_net(cmd, f, w, seed);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create(net, X, T, f->n, f->loss, &c));
    size_t P = nh_net_nparams(net);
    double trh, tri[2], trh2, trs2, se = 0, lin;
    mf_exact_parts(cmd, c, f->loss, T, f->n, f->nout, &trh, tri, &lin);
    t->exact = P <= f->dense_max;
    if (t->exact) {
        mf_dense(cmd, c, P, &trh2, &trs2);
    } else {
        nh_trace_opts o = nh_trace_opts_default();
        o.nprobes = f->M;
        o.seed = seed;
        o.control = 1;
        nh_trace_result rh, rs;
        NH_CHECK(cmd, nh_curv_trace(c, NH_OP_H, 2, &o, &rh));
        o.control = 0;
        NH_CHECK(cmd, nh_curv_trace(c, NH_OP_S, 2, &o, &rs));
        trh2 = rh.est[1];
        se = rh.se[1];
        trs2 = rs.est[1];
    }
    double dw = (double)w;
    t->tr_h = sqrt(dw) * trh;
    t->tr_i = sqrt(dw) * tri[0];
    t->tr_lin = sqrt(dw) * lin; /* G of the MF net is G_ntk / sqrt(w) */
    t->tr_h2 = dw * trh2;
    t->tr_h2_se = dw * se;
    t->tr_i2 = dw * tri[1]; /* (1/w) Tr I^2 with I = w Ic */
    t->tr_s2 = dw * trs2; /* (1/w) Tr S^2 with S = w Sc */
    t->ratio = sqrt(fmax(trs2, 0.0) / tri[1]);
    nh_curv_free(c);
    nh_net_free(net);
}

/* ---------------------------------------------------------------- output */

typedef struct mf_width {
    size_t w;
    mf_stat h, h2, ratio, lin;
    double hutch_se, exact;
} mf_width;

static void mf_summary(const nh_cmd *cmd, const char *out, const mf_pred *pr, const mf_width *ws, size_t nw,
                       size_t R) {
    cJSON *root = cJSON_CreateObject(), *p = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!root || !p || !arr) nh_die(cmd, "out of memory");
    cJSON_AddItemToObject(p, "var_tr_h", nh_cli_json_num(pr->var_tr_h));
    cJSON_AddItemToObject(p, "lim_tr_h2", nh_cli_json_num(pr->lim_tr_h2));
    cJSON_AddItemToObject(root, "predicted", p);
    for (size_t i = 0; i < nw; i++) {
        const mf_width *x = &ws[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) nh_die(cmd, "out of memory");
        cJSON_AddItemToObject(o, "width", cJSON_CreateNumber((double)x->w));
        cJSON_AddItemToObject(o, "trials", cJSON_CreateNumber((double)R));
        cJSON_AddItemToObject(o, "mean_tr_h", nh_cli_json_num(x->h.mean));
        cJSON_AddItemToObject(o, "var_tr_h", nh_cli_json_num(x->h.var));
        cJSON_AddItemToObject(o, "mean_tr_h2", nh_cli_json_num(x->h2.mean));
        cJSON_AddItemToObject(o, "se_var_tr_h", nh_cli_json_num(x->h.se_var));
        cJSON_AddItemToObject(o, "se_mean_tr_h2", nh_cli_json_num(x->h2.se_mean));
        cJSON_AddItemToObject(o, "normality_p", nh_cli_json_num(x->h.ad_p));
        cJSON_AddItemToObject(o, "ratio_S_I", nh_cli_json_num(x->ratio.mean));
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddItemToObject(root, "widths", arr);
    char *txt = cJSON_Print(root), path[4096];
    if (!txt) nh_die(cmd, "out of memory");
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "summary.json"), txt);
    free(txt);
    cJSON_Delete(root);
}

/* Appends printf-formatted text to a growing buffer. */
__attribute__((format(printf, 5, 6))) static void mf_cat(const nh_cmd *cmd, char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) nh_die(cmd, "formatting failed");
        if (*buf && *len + (size_t)k < *cap) { *len += (size_t)k; return; }
        size_t nc = (*cap ? *cap * 2 : 4096) + (size_t)k;
        char *nb = realloc(*buf, nc);
        if (!nb) nh_die(cmd, "out of memory");
        *buf = nb;
        *cap = nc;
    }
}

/* widths.csv: every statistic with z-scores against the prediction. */
static void mf_widths_csv(const nh_cmd *cmd, const char *out, const mf_pred *pr, const mf_width *ws, size_t nw,
                          size_t R) {
    char *b = NULL, path[4096];
    size_t len = 0, cap = 0;
    mf_cat(cmd, &b, &len, &cap,
           "# predicted var_tr_h=%.17g lim_tr_h2=%.17g bias1=%.17g tr_i2_limit=%.17g\n"
           "width,trials,mean_tr_h,se_mean_tr_h,z_mean_tr_h,bias_pred_tr_h,var_tr_h,se_var_tr_h,z_var_tr_h,"
           "ad_stat,normality_p,mean_tr_h2,se_mean_tr_h2,z_tr_h2,sd_tr_h2,hutch_se_tr_h2,exact_tr_h2,"
           "ratio_S_I,se_ratio_S_I,ratio_over_sqrt_w,ratio_over_sqrt_w_limit,var_tr_lin,se_var_tr_lin,z_var_tr_lin,"
           "normality_p_lin\n",
           pr->var_tr_h, pr->lim_tr_h2, pr->bias1, pr->tr_i2);
    double rlim = sqrt(pr->lim_tr_h2 / pr->tr_i2);
    for (size_t i = 0; i < nw; i++) {
        const mf_width *x = &ws[i];
        double sw = sqrt((double)x->w);
        mf_cat(cmd, &b, &len, &cap,
               "%zu,%zu,%.17g,%.17g,%.6g,%.17g,%.17g,%.17g,%.6g,%.6g,%.6g,%.17g,%.17g,%.6g,%.17g,%.17g,%g,%.17g,"
               "%.17g,%.17g,%.17g,%.17g,%.17g,%.6g,%.6g\n",
               x->w, R, x->h.mean, x->h.se_mean, x->h.mean / x->h.se_mean, pr->bias1 / sw, x->h.var, x->h.se_var,
               (x->h.var - pr->var_tr_h) / x->h.se_var, x->h.ad, x->h.ad_p, x->h2.mean, x->h2.se_mean,
               (x->h2.mean - pr->lim_tr_h2) / x->h2.se_mean, sqrt(x->h2.var), x->hutch_se, x->exact, x->ratio.mean,
               x->ratio.se_mean, x->ratio.mean / sw, rlim, x->lin.var, x->lin.se_var,
               (x->lin.var - pr->var_tr_h) / x->lin.se_var, x->lin.ad_p);
    }
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "widths.csv"), b);
    free(b);
}

static void mf_plot(const nh_cmd *cmd, const char *out, const mf_cfg *f, const mf_pred *pr, const mf_width *ws,
                    size_t nw) {
    double x[MF_MAXW], y[3][MF_MAXW], e[3][MF_MAXW], py[3][MF_MAXW];
    double rlim = sqrt(pr->lim_tr_h2 / pr->tr_i2);
    for (size_t i = 0; i < nw; i++) {
        double sw = sqrt((double)ws[i].w);
        x[i] = (double)ws[i].w;
        y[0][i] = ws[i].h.var; e[0][i] = ws[i].h.se_var; py[0][i] = pr->var_tr_h;
        y[1][i] = ws[i].h2.mean; e[1][i] = ws[i].h2.se_mean; py[1][i] = pr->lim_tr_h2;
        y[2][i] = ws[i].ratio.mean / sw; e[2][i] = ws[i].ratio.se_mean / sw; py[2][i] = rlim;
    }
    static const char *const titles[3] = {"Var[Tr H / sqrt(w)]", "E[Tr H#u2#d / w]",
                                          "(||S||#dF#u / ||I||#dF#u) / sqrt(w)"};
    nh_plot_series ser[6];
    nh_plot_panel pan[3];
    memset(ser, 0, sizeof ser);
    memset(pan, 0, sizeof pan);
    for (int k = 0; k < 3; k++) {
        nh_plot_series *sl = &ser[2 * k], *sp = &ser[2 * k + 1];
        sl->n = nw; sl->x = x; sl->y = py[k]; sl->style = NH_STYLE_LINE; sl->color = NH_COLOR_BLUE;
        sl->label = "mean-field prediction (limit w -> infinity)";
        sp->n = nw; sp->x = x; sp->y = y[k]; sp->yerr = e[k]; sp->style = NH_STYLE_POINTS;
        sp->color = NH_COLOR_BLACK; sp->marker = NH_MARKER_CROSS; sp->label = "measured +/- s.e.";
        pan[k].title = titles[k]; pan[k].xlabel = "width w"; pan[k].nseries = 2; pan[k].series = &ser[2 * k];
        pan[k].logx = nw > 1; pan[k].legend = k == 0 ? NH_LEGEND_BELOW : NH_LEGEND_NONE;
        double lo = py[k][0], hi = py[k][0];
        for (size_t i = 0; i < nw; i++) { lo = fmin(lo, y[k][i] - e[k][i]); hi = fmax(hi, y[k][i] + e[k][i]); }
        pan[k].logy = lo > 0 && hi > 30 * lo; /* log only when the values span decades */
    }
    char note[512], stem[4096];
    snprintf(note, sizeof note, "%s, L = %zu, N = %zu, %zu networks per width, %s loss, #gb = %g, mean-field parametrization at initialization",
             nh_act_name(f->act), f->depth, f->n, f->trials, nh_loss_name(f->loss), f->beta);
    nh_plot_spec spec = {0};
    spec.path = nh_cli_path(stem, sizeof stem, out, "meanfield");
    spec.title = "Mean-field conjecture (Sec. 3.3): measured against predicted";
    spec.note = note;
    spec.npanels = 3;
    spec.panels = pan;
    NH_CHECK(cmd, nh_plot_xy(&spec, NULL));
}

/* ------------------------------------------------------------------ main */

static const nh_optspec mf_opts[] = {
    NH_OPT_ACT("softplus"),
    {"depth", "L", "3", "weight layers (hidden layers of equal width w)"},
    {"beta", "B", "0.1", "bias scale"},
    {"data", "X.npy", NULL, "inputs (N, n_0), e.g. from 'ntkhess data'"},
    {"targets", "Y.npy", NULL, "targets (N, n_L), or (N,) labels for ce"},
    NH_OPT_LOSS("mse"),
    {"widths", "LIST", NULL, "hidden widths w, comma-separated"},
    {"trials", "R", "50", "independent networks per width (>= 8: the normality test needs them)"},
    {"probes", "M", "32", "Hutchinson probes for Tr H^2 and Tr S^2 when P > --dense-max"},
    {"dense-max", "P", "1500", "exact (dense) Tr H^2 when the parameter count is at most P"},
    {"seed", "S", "0", "seed of the networks and probes"},
    {"out", "DIR", NULL, "output directory (summary.json, widths.csv, trials.csv, meanfield.png/.svg)"},
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

/* n_0 from X.npy and n_L from the targets (columns; ce: largest label + 1). */
static void mf_shapes(const nh_cmd *cmd, const char *xp, const char *tp, nh_loss loss, size_t *n0, size_t *nout) {
    double *buf = NULL;
    size_t nd, sh[NH_NPY_MAXDIM];
    NH_CHECK(cmd, nh_npy_read(xp, &buf, &nd, sh));
    if (nd != 2 || sh[1] == 0) nh_die(cmd, "%s: data must be 2-D (N, n_0) with n_0 >= 1", xp);
    *n0 = sh[1];
    free(buf);
    NH_CHECK(cmd, nh_npy_read(tp, &buf, &nd, sh));
    *nout = nd == 2 ? sh[1] : 1;
    if (loss == NH_LOSS_CE) *nout = nh_cli_ce_classes(cmd, tp, buf, sh[0]); /* checked labels */
    free(buf);
    if (*nout == 0) nh_die(cmd, "%s: targets have no columns", tp);
}

static void mf_parse(const nh_cmd *cmd, nh_args *a, mf_cfg *f, size_t *ws, size_t *nw) {
    memset(f, 0, sizeof *f);
    f->act = nh_arg_act(cmd, a, NULL);
    f->loss = nh_arg_loss(cmd, a);
    f->depth = (size_t)nh_arg_int(a, "depth", 2, 32);
    f->beta = nh_arg_double(a, "beta");
    f->trials = (size_t)nh_arg_int(a, "trials", 8, 1 << 20); /* the normality test needs 8 */
    f->M = (size_t)nh_arg_int(a, "probes", 2, 1 << 20);
    f->dense_max = (size_t)nh_arg_int(a, "dense-max", 0, 20000);
    f->seed = nh_arg_u64(a, "seed");
    *nw = nh_arg_sizes(a, "widths", ws, MF_MAXW);
    if (*nw == 0) nh_die_usage(cmd, "--widths is empty");
}

static void mf_width_run(const nh_cmd *cmd, const mf_cfg *f, size_t w, const double *X, const double *T,
                         mf_width *res, char **csv, size_t *len, size_t *cap) {
    size_t R = f->trials;
    double *h = malloc(R * sizeof *h), *h2 = malloc(R * sizeof *h2), *rt = malloc(R * sizeof *rt), ss = 0;
    double *ln = malloc(R * sizeof *ln);
    if (!h || !h2 || !rt || !ln) nh_die(cmd, "out of memory");
    double t0 = nh_cli_now();
    res->w = w;
    res->exact = 1;
    for (size_t r = 0; r < R; r++) {
        mf_trial t;
        mf_trial_run(cmd, f, w, r, X, T, &t);
        h[r] = t.tr_h; h2[r] = t.tr_h2; rt[r] = t.ratio; ln[r] = t.tr_lin;
        ss += t.tr_h2_se * t.tr_h2_se;
        if (!t.exact) res->exact = 0;
        mf_cat(cmd, csv, len, cap, "%zu,%zu,%llu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d,%.17g,%.17g\n", w, r,
               (unsigned long long)mf_seed(f->seed, w, r), t.tr_h, t.tr_h2, t.tr_h2_se, t.tr_i2, t.tr_s2, t.ratio,
               t.exact, t.tr_i, t.tr_lin);
        nh_cli_progress("meanfield", r + 1, R, nh_cli_now() - t0);
    }
    res->h = mf_stats(h, R);
    res->h2 = mf_stats(h2, R);
    res->ratio = mf_stats(rt, R);
    res->lin = mf_stats(ln, R);
    res->hutch_se = sqrt(ss / (double)R);
    fprintf(stderr, "ntkhess meanfield: width %zu: %zu networks in %.1f s\n", w, R, nh_cli_now() - t0);
    free(h); free(h2); free(rt); free(ln);
}

static int run_meanfield(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    mf_cfg f;
    size_t ws[MF_MAXW], nw;
    mf_parse(cmd, &a, &f, ws, &nw);
    const char *xp = nh_arg_req(&a, "data"), *tp = nh_arg_req(&a, "targets"), *out = nh_arg_req(&a, "out");
    if (nh_plot_available() != NH_OK) nh_die(cmd, "%s (install plplot-driver-cairo)", nh_last_error());
    mf_shapes(cmd, xp, tp, f.loss, &f.n0, &f.nout);
    nh_net *net0 = mf_net(cmd, &f, ws[0], 0);
    nh_dataset d;
    nh_cli_load_data(cmd, xp, tp, net0, f.loss, &d);
    nh_net_free(net0);
    f.n = d.n;
    const char *inputs[2] = {xp, tp};
    const char *w = nh_out_open(cmd, out, 0, inputs, 2); /* all or nothing (out.c) */
    mf_pred pr;
    mf_predict(cmd, &f, d.X, d.T, &pr);
    mf_width res[MF_MAXW];
    char *csv = NULL, path[4096];
    size_t len = 0, cap = 0;
    mf_cat(cmd, &csv, &len, &cap, "width,trial,seed,tr_h,tr_h2,hutch_se_tr_h2,tr_i2,tr_s2,ratio_S_I,exact,tr_i,tr_lin\n");
    for (size_t i = 0; i < nw; i++) mf_width_run(cmd, &f, ws[i], d.X, d.T, &res[i], &csv, &len, &cap);
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, w, "trials.csv"), csv);
    free(csv);
    mf_summary(cmd, w, &pr, res, nw, f.trials);
    mf_widths_csv(cmd, w, &pr, res, nw, f.trials);
    mf_plot(cmd, w, &f, &pr, res, nw);
    nh_out_commit(cmd);
    fprintf(stderr, "ntkhess meanfield: wrote %s/summary.json, widths.csv, trials.csv, meanfield.png, meanfield.svg\n",
            out);
    nh_dataset_free(&d);
    return 0;
}

const nh_cmd nh_cmd_meanfield = {
    "meanfield", "Mean-field conjecture (Sec. 3.3) at initialization: prediction against R networks per width.",
    "--data X.npy --targets Y.npy --widths LIST [--act A] [--depth L] [--loss L] [--trials R] --out DIR",
    "Networks n_0, w, ..., w, n_L in the mean-field parametrization (output divided\n"
    "by sqrt(w)) with the learning rate multiplied by w, i.e. H = w Hc with Hc the\n"
    "Hessian of C(f) in theta, at initialization.  Measured per network:\n"
    "tr_h = (1/sqrt(w)) Tr H = sqrt(w) Tr Hc (exact: Tr I + G.gradC) and\n"
    "tr_h2 = (1/w) Tr H^2 = w Tr Hc^2 (exact from the dense Hessian when P <=\n"
    "--dense-max, else Hutchinson with control variates), and ||S||_F / ||I||_F.\n"
    "Predicted (nh_predict_meanfield, gradC = grad C(0)): tr_h -> N(0, gradC^T Xi~\n"
    "gradC), tr_h2 -> gradC^T Upsilon~ gradC.  Per width: mean, variance (SE from\n"
    "the fourth moment), Anderson-Darling normality p-value (D'Agostino & Stephens\n"
    "1986), z-scores.  Writes summary.json, widths.csv (every statistic, z-scores,\n"
    "the Hutchinson SE beside the trial spread), trials.csv (one row per network)\n"
    "and meanfield.png/.svg.  docs/meanfield.md has the definitions and results.",
    mf_opts, run_meanfield};
