/* cmd_widthlaw.c -- `ntkhess widthlaw`: the finite-width law of Figure 1.
 *
 * Reads finished fig1 runs (summary.json and trials_<act>.csv) that differ
 * only in the width, and fits, per nonlinearity, power k and record time t,
 * the deviation d(w) = mean - theory of Tr(H^k) against the width: d = a/w
 * (the expected O(1/w) of a mean), d = a0 + a1/w (Corollary 1: a0 = 0),
 * the free power d = a w^-p, and the trial spread SD = b w^-q (expected
 * q = 1/2).  All fits are weighted least squares with known standard errors
 * (weights 1/SE^2), solved by LAPACK (dgels, dpotri).  --test-width W judges
 * the run at width W against theory + a/W with a fitted on the other widths
 * only.  docs/finite-width.md has the definitions and results. */
#include "cli.h"
#include "core/blas.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WL_MAXRUN 16
#define WL_MAXACT 8
#define WL_EXTRAP 5000.0 /* the paper's Figure 1 width */

static const nh_optspec wl_opts[] = {
    {"runs", "LIST", NULL, "finished fig1 output folders, comma-separated, same options but the width (and trials)"},
    {"out", "DIR", NULL, "output directory (widthlaw.csv, fits.csv, summary.json, widthlaw.png/.svg, check.csv)"},
    {"test-width", "W", "", "judge the run at width W against theory + a/W, a fitted on the other widths"},
    {"trials", "R", "", "use only trials 0..R-1 of every run (the same seeds at every width; default: all)"},
    {NULL, NULL, NULL, NULL}};

/* One fig1 run; values at [ai * nv + i * 4 + (k-1)] as in fig1. */
typedef struct wl_run {
    const char *dir;
    double w;
    size_t R;
    double *theory, *mean, *se, *sd, *se_sd;
} wl_run;

typedef struct wl_set {
    size_t nrun, nact, nrec, nv;
    char acts[WL_MAXACT][32];
    double *t; /* nrec record times */
    cJSON *params; /* the first run's, for the summary */
    size_t rc;     /* --trials: only trial indices < rc (0: all) */
    wl_run run[WL_MAXRUN];
} wl_set;

/* Fits of one (act, k, t); NaN where not fitted. */
typedef struct wl_fit {
    double a, se_a, chi2_a;          /* d = a / w */
    double a0, se_a0, a1, z_a0;      /* d = a0 + a1 / w */
    double d5, se_d5, d5_2, se_d5_2; /* d(5000) from the two laws */
    double p, se_p, ap;              /* d = ap w^-p, when resolved */
    double b, q, se_q, chi2_q;       /* SD = b w^-q */
    int resolved;
} wl_fit;

static void *wl_alloc(const nh_cmd *cmd, size_t n) {
    void *p = calloc(n ? n : 1, sizeof(double));
    if (!p) nh_die(cmd, "out of memory");
    return p;
}

/* ------------------------------------------------------------ the fits */

/* Weighted least squares y ~ X beta (m x p row-major, m >= p, p <= 2) with
 * known standard errors s: beta, its covariance (X^T W X)^-1 (not scaled by
 * chi2: the errors are measured), and chi2.  -1 when singular. */
static int wl_wls(size_t m, size_t p, const double *X, const double *y, const double *s, double *beta,
                  double cov[4], double *chi2) {
    double A[2 * WL_MAXRUN], b[WL_MAXRUN];
    for (size_t j = 0; j < m; j++) {
        if (!(s[j] > 0) || !isfinite(y[j])) return -1;
        for (size_t c = 0; c < p; c++) A[j * p + c] = X[j * p + c] / s[j];
        b[j] = y[j] / s[j];
    }
    if (LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', (lapack_int)m, (lapack_int)p, 1, A, (lapack_int)p, b, 1) != 0) return -1;
    *chi2 = 0;
    for (size_t j = p; j < m; j++) *chi2 += b[j] * b[j]; /* dgels leaves the residuals of Q^T b there */
    for (size_t c = 0; c < p; c++) beta[c] = b[c];
    /* A's upper triangle is R with X^T W X = R^T R: dpotri gives its inverse. */
    if (LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', (lapack_int)p, A, (lapack_int)p) != 0) return -1;
    for (size_t r = 0; r < p; r++)
        for (size_t c = 0; c < p; c++) cov[r * p + c] = r <= c ? A[r * p + c] : A[c * p + r];
    return 0;
}

/* d = a / w on the runs in use[] (value index v). */
static int wl_fit_inv(const wl_set *S, const int *use, size_t v, double *a, double *se_a, double *chi2, size_t *m) {
    double X[WL_MAXRUN], y[WL_MAXRUN], s[WL_MAXRUN], cov[4];
    size_t n = 0;
    for (size_t j = 0; j < S->nrun; j++) {
        if (!use[j]) continue;
        const wl_run *r = &S->run[j];
        X[n] = 1 / r->w, y[n] = r->mean[v] - r->theory[v], s[n] = r->se[v], n++;
    }
    *m = n;
    if (n < 1 || wl_wls(n, 1, X, y, s, a, cov, chi2)) return -1;
    *se_a = sqrt(cov[0]);
    return 0;
}

/* d = a0 + a1 / w, the free power (log space, only where every d has one
 * sign and |d| > 2 SE), and SD = b w^-q, on all runs. */
static void wl_fit_laws(const wl_set *S, size_t v, wl_fit *F) {
    const size_t m = S->nrun;
    double X[2 * WL_MAXRUN], y[WL_MAXRUN], s[WL_MAXRUN], ly[WL_MAXRUN], ls[WL_MAXRUN], beta[2], cov[4], chi2;
    int sign = 0, resolved = 1;
    for (size_t j = 0; j < m; j++) {
        const wl_run *r = &S->run[j];
        const double d = r->mean[v] - r->theory[v];
        X[2 * j] = 1, X[2 * j + 1] = 1 / r->w, y[j] = d, s[j] = r->se[v];
        const int sg = d > 0 ? 1 : -1;
        if (j == 0) sign = sg;
        if (sg != sign || !(fabs(d) > 2 * r->se[v])) resolved = 0;
        ly[j] = log(fabs(d)), ls[j] = r->se[v] / fabs(d); /* delta method: SE of log|d| */
    }
    if (m >= 2 && !wl_wls(m, 2, X, y, s, beta, cov, &chi2)) {
        F->a0 = beta[0], F->a1 = beta[1], F->se_a0 = sqrt(cov[0]), F->z_a0 = beta[0] / sqrt(cov[0]);
        const double u = 1 / WL_EXTRAP;
        F->d5_2 = beta[0] + beta[1] * u, F->se_d5_2 = sqrt(cov[0] + 2 * u * cov[1] + u * u * cov[3]);
    }
    for (size_t j = 0; j < m; j++) X[2 * j + 1] = -log(S->run[j].w);
    F->resolved = resolved && m >= 2 && !wl_wls(m, 2, X, ly, ls, beta, cov, &chi2);
    if (F->resolved) F->ap = sign * exp(beta[0]), F->p = beta[1], F->se_p = sqrt(cov[3]);
    for (size_t j = 0; j < m; j++) {
        const wl_run *r = &S->run[j];
        ly[j] = log(r->sd[v]), ls[j] = r->se_sd[v] / r->sd[v];
    }
    if (m >= 2 && !wl_wls(m, 2, X, ly, ls, beta, cov, &chi2))
        F->b = exp(beta[0]), F->q = beta[1], F->se_q = sqrt(cov[3]), F->chi2_q = chi2;
}

static void wl_fit_all(const nh_cmd *cmd, const wl_set *S, wl_fit *F) {
    int use[WL_MAXRUN];
    for (size_t j = 0; j < S->nrun; j++) use[j] = 1;
    for (size_t v = 0; v < S->nact * S->nv; v++) {
        wl_fit *f = &F[v];
        const double nan = NAN;
        *f = (wl_fit){nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, 0};
        size_t m;
        if (wl_fit_inv(S, use, v, &f->a, &f->se_a, &f->chi2_a, &m)) nh_die(cmd, "the fit d = a/w failed (zero SE?)");
        f->d5 = f->a / WL_EXTRAP, f->se_d5 = f->se_a / WL_EXTRAP;
        wl_fit_laws(S, v, f);
    }
}

/* ------------------------------------------------------- reading runs */

static cJSON *wl_read_json(const nh_cmd *cmd, const char *dir) {
    char path[4096];
    nh_cli_path(path, sizeof path, dir, "summary.json");
    FILE *fp = fopen(path, "rb");
    if (!fp) nh_die(cmd, "%s: no summary.json (not a finished fig1 run)", dir);
    char *txt = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 65536 > cap && !(txt = realloc(txt, cap = 2 * cap + 65536))) nh_die(cmd, "out of memory");
        got = fread(txt + len, 1, cap - len - 1, fp);
        len += got;
    } while (got > 0);
    fclose(fp);
    txt[len] = 0;
    cJSON *js = cJSON_Parse(txt);
    free(txt);
    cJSON *fig = cJSON_GetObjectItem(js, "figure");
    if (!js || !cJSON_IsString(fig) || strcmp(fig->valuestring, "fig1"))
        nh_die(cmd, "%s/summary.json: not a fig1 summary", dir);
    return js;
}

static double wl_num(const nh_cmd *cmd, const cJSON *o, const char *key, const char *dir) {
    const cJSON *it = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(it)) nh_die(cmd, "%s/summary.json: '%s' missing or not a number", dir, key);
    return it->valuedouble;
}

/* Every option but the width and the trial count must agree with run 0's;
 * the differing one is named (exit 2). */
static void wl_match(const nh_cmd *cmd, const wl_set *S, const cJSON *par, const char *dir) {
    static const char *const keys[] = {"data", "N", "depth", "beta", "lr", "steps", "every", "probes",
                                       "precision", "seed", "loss"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *x = cJSON_GetObjectItem(S->params, keys[i]), *y = cJSON_GetObjectItem(par, keys[i]);
        if (!x || !y || !cJSON_Compare(x, y, 1)) {
            char *a = x ? cJSON_PrintUnformatted(x) : NULL, *b = y ? cJSON_PrintUnformatted(y) : NULL;
            nh_die_usage(cmd, "%s and %s differ in --%s (%s vs %s); only --width and --trials may differ",
                         S->run[0].dir, dir, !strcmp(keys[i], "N") ? "n" : keys[i], a ? a : "missing", b ? b : "missing");
        }
    }
}

/* Act index of name in S (run 0 defines the list; later runs must match). */
static size_t wl_act(const nh_cmd *cmd, wl_set *S, const char *name, int first, const char *dir) {
    for (size_t ai = 0; ai < S->nact; ai++)
        if (!strcmp(S->acts[ai], name)) return ai;
    if (!first) {
        nh_die_usage(cmd, "%s and %s differ in --acts (%s only in the second)", S->run[0].dir, dir, name);
    }
    if (S->nact == WL_MAXACT || strlen(name) >= sizeof S->acts[0]) nh_die(cmd, "%s: too many or too long acts", dir);
    snprintf(S->acts[S->nact], sizeof S->acts[0], "%s", name);
    return S->nact++;
}

/* The points of summary.json: theory, mean, se per (act, record, k); the
 * record times must be run 0's. */
static void wl_points(const nh_cmd *cmd, wl_set *S, wl_run *r, const cJSON *js, int first) {
    const cJSON *pts = cJSON_GetObjectItem(js, "points"), *p;
    size_t cnt[WL_MAXACT][4] = {{0}}, n = 0;
    if (!cJSON_IsArray(pts)) nh_die(cmd, "%s/summary.json: no points", r->dir);
    cJSON_ArrayForEach(p, pts) {
        const cJSON *an = cJSON_GetObjectItem(p, "act");
        if (!cJSON_IsString(an)) nh_die(cmd, "%s/summary.json: a point without act", r->dir);
        const size_t ai = wl_act(cmd, S, an->valuestring, first, r->dir);
        const double kd = wl_num(cmd, p, "k", r->dir), t = wl_num(cmd, p, "t", r->dir);
        if (!(kd >= 1 && kd <= 4)) nh_die(cmd, "%s/summary.json: k = %g", r->dir, kd);
        const size_t q = (size_t)kd - 1, i = cnt[ai][q]++;
        if (i >= S->nrec) nh_die(cmd, "%s/summary.json: more records than steps / every + 1", r->dir);
        if (first && q == 0) S->t[i] = t;
        if (fabs(S->t[i] - t) > 1e-12 * (1 + fabs(t))) nh_die(cmd, "%s: record %zu at t = %g, not %g", r->dir, i, t, S->t[i]);
        const size_t v = ai * S->nv + i * 4 + q;
        r->theory[v] = wl_num(cmd, p, "theory", r->dir);
        r->mean[v] = wl_num(cmd, p, "mean", r->dir);
        r->se[v] = wl_num(cmd, p, "se", r->dir);
        n++;
    }
    if (n != S->nact * S->nv) {
        nh_die_usage(cmd, "%s and %s differ in --acts (%zu points, expected %zu)", S->run[0].dir, r->dir, n,
                     S->nact * S->nv);
    }
}

/* Spread of the trials of act ai from trials_<act>.csv: SD (n - 1) and its
 * SE from the fourth moment, var(s^2) ~ (m4 - s^4 (R-3)/(R-1)) / R; the
 * trials' mean must be summary.json's.  With --trials (S->rc) only trial
 * indices < rc count, and their mean and SD / sqrt(rc) replace summary.json's
 * (fig1's SE is the same SD / sqrt(R)): the runs then share their seeds. */
static void wl_trials(const nh_cmd *cmd, const wl_set *S, wl_run *r, size_t ai) {
    char path[4096], name[64];
    snprintf(name, sizeof name, "trials_%s.csv", S->acts[ai]);
    FILE *fp = fopen(nh_cli_path(path, sizeof path, r->dir, name), "r");
    if (!fp) nh_die(cmd, "cannot open %s", path);
    const size_t nv = S->nv;
    double *x = wl_alloc(cmd, r->R * nv);
    size_t R = 0, nrow = 0, cap = 64 + 52 * nv;
    char *line = malloc(cap), *seen = S->rc ? calloc(S->rc, 1) : NULL; /* --trials: each index once */
    if (!line || (S->rc && !seen)) nh_die(cmd, "out of memory");
    while (getline(&line, &cap, fp) > 0) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (nrow++ == r->R) nh_die(cmd, "%s: more rows than the %zu trials of summary.json", path, r->R);
        char *p = strchr(line, ','), *end;
        const unsigned long long idx = strtoull(line, &end, 10);
        if (end != p) nh_die(cmd, "%s: a row without its trial index", path);
        if (S->rc && idx >= S->rc) continue;
        if (S->rc && seen[idx]++) nh_die(cmd, "%s: trial %llu twice", path, idx);
        for (size_t v = 0; v < nv; v++) { /* the Tr(H^k) block; Tr(I^k) follows */
            if (!p) nh_die(cmd, "%s: short row", path);
            x[R * nv + v] = strtod(p + 1, &end);
            if (end == p + 1) nh_die(cmd, "%s: bad number in a row", path);
            p = *end == ',' ? end : NULL;
        }
        R++;
    }
    free(line), free(seen);
    fclose(fp);
    if (nrow != r->R) nh_die(cmd, "%s: %zu rows, summary.json has %zu trials", path, nrow, r->R);
    if (S->rc && R != S->rc) nh_die(cmd, "%s: %zu of the trials 0..%zu", path, R, S->rc - 1);
    for (size_t v = 0; v < nv; v++) {
        double m = 0, m2 = 0, m4 = 0;
        for (size_t j = 0; j < R; j++) m += x[j * nv + v] / (double)R;
        for (size_t j = 0; j < R; j++) {
            const double e = x[j * nv + v] - m;
            m2 += e * e, m4 += e * e * e * e / (double)R;
        }
        const double s2 = m2 / (double)(R - 1), vs2 = (m4 - s2 * s2 * (double)(R - 3) / (double)(R - 1)) / (double)R;
        const size_t k = ai * nv + v;
        if (S->rc) r->mean[k] = m, r->se[k] = sqrt(s2 / (double)R);
        else if (fabs(m - r->mean[k]) > 1e-9 * (fabs(m) + sqrt(s2)))
            nh_die(cmd, "%s: trial mean %.17g is not summary.json's %.17g", path, m, r->mean[k]);
        r->sd[k] = sqrt(s2);
        r->se_sd[k] = sqrt(fmax(vs2, 0)) / (2 * r->sd[k]);
    }
    free(x);
}

static void wl_load(const nh_cmd *cmd, wl_set *S, size_t j) {
    wl_run *r = &S->run[j];
    cJSON *js = wl_read_json(cmd, r->dir), *par = cJSON_GetObjectItem(js, "params");
    if (!cJSON_IsObject(par)) nh_die(cmd, "%s/summary.json: no params", r->dir);
    r->w = wl_num(cmd, par, "width", r->dir);
    r->R = (size_t)wl_num(cmd, par, "trials", r->dir);
    if (j == 0) {
        const double steps = wl_num(cmd, par, "steps", r->dir), every = wl_num(cmd, par, "every", r->dir);
        if (!(every >= 1 && steps >= 0 && r->R >= 4)) nh_die(cmd, "%s: need steps >= 0, every >= 1, trials >= 4", r->dir);
        S->nrec = (size_t)(steps / every) + 1, S->nv = S->nrec * 4;
        S->t = wl_alloc(cmd, S->nrec);
        S->params = cJSON_Duplicate(par, 1);
    } else {
        wl_match(cmd, S, par, r->dir);
        for (size_t i = 0; i < j; i++)
            if (S->run[i].w == r->w) {
                nh_die_usage(cmd, "%s and %s have the same --width %g", S->run[i].dir, r->dir, r->w);
            }
    }
    if (r->R < 4) nh_die(cmd, "%s: %zu trials; the spread's SE needs at least 4", r->dir, r->R);
    const size_t n = WL_MAXACT * S->nv;
    r->theory = wl_alloc(cmd, n), r->mean = wl_alloc(cmd, n), r->se = wl_alloc(cmd, n);
    r->sd = wl_alloc(cmd, n), r->se_sd = wl_alloc(cmd, n);
    wl_points(cmd, S, r, js, j == 0);
    cJSON_Delete(js);
    if (S->rc > r->R) nh_die_usage(cmd, "--trials %zu: %s has %zu trials", S->rc, r->dir, r->R);
    for (size_t ai = 0; ai < S->nact; ai++) wl_trials(cmd, S, r, ai);
    if (S->rc) r->R = S->rc;
    for (size_t v = 0; v < S->nact * S->nv; v++) /* the same data and options: the same theory */
        if (fabs(r->theory[v] - S->run[0].theory[v]) > 1e-9 * fabs(S->run[0].theory[v]))
            nh_die(cmd, "%s: theory %.17g differs from %s's %.17g", r->dir, r->theory[v], S->run[0].dir,
                   S->run[0].theory[v]);
}

/* ------------------------------------------------------------ outputs */

static void wl_cat(const nh_cmd *cmd, char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void wl_cat(const nh_cmd *cmd, char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        const int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) nh_die(cmd, "formatting failed");
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        *cap = 2 * (*cap + (size_t)n) + 4096;
        if (!(*buf = realloc(*buf, *cap))) nh_die(cmd, "out of memory");
    }
}

/* widthlaw.csv: one row per (act, k, t, width). */
static void wl_write_data(const nh_cmd *cmd, const wl_set *S, const char *dir) {
    char *b = NULL, path[4096];
    size_t len = 0, cap = 0;
    wl_cat(cmd, &b, &len, &cap, "act,k,t,width,trials,theory,mean,se,d,sd,se_sd,w_d,w_se\n");
    for (size_t ai = 0; ai < S->nact; ai++)
        for (size_t q = 0; q < 4; q++)
            for (size_t i = 0; i < S->nrec; i++)
                for (size_t j = 0; j < S->nrun; j++) {
                    const wl_run *r = &S->run[j];
                    const size_t v = ai * S->nv + i * 4 + q;
                    const double d = r->mean[v] - r->theory[v];
                    wl_cat(cmd, &b, &len, &cap, "%s,%zu,%.17g,%.17g,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n",
                           S->acts[ai], q + 1, S->t[i], r->w, r->R, r->theory[v], r->mean[v], r->se[v], d, r->sd[v],
                           r->se_sd[v], d * r->w, r->se[v] * r->w);
                }
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, dir, "widthlaw.csv"), b);
    free(b);
}

static const char *const wl_fit_keys[] = {"a", "se_a", "p", "se_p", "q", "se_q", "a0", "z_a0", "d_5000", "se_d_5000",
                                          "chi2_a", "se_a0", "a1", "d_5000_2p", "se_d_5000_2p", "ap", "b", "chi2_q"};
#define WL_NFIT (sizeof wl_fit_keys / sizeof wl_fit_keys[0])

static void wl_fit_vals(const wl_fit *f, double *x) {
    const double v[] = {f->a,    f->se_a,  f->p,  f->se_p,   f->q,     f->se_q,     f->a0, f->z_a0, f->d5,
                        f->se_d5, f->chi2_a, f->se_a0, f->a1, f->d5_2, f->se_d5_2, f->ap,  f->b,   f->chi2_q};
    memcpy(x, v, sizeof v);
}

/* fits.csv and the fits of summary.json. */
static void wl_write_fits(const nh_cmd *cmd, const wl_set *S, const wl_fit *F, const char *dir, cJSON *arr) {
    char *b = NULL, path[4096];
    size_t len = 0, cap = 0;
    wl_cat(cmd, &b, &len, &cap, "act,k,t");
    for (size_t c = 0; c < WL_NFIT; c++) wl_cat(cmd, &b, &len, &cap, ",%s", wl_fit_keys[c]);
    wl_cat(cmd, &b, &len, &cap, ",dof_a,power\n");
    for (size_t ai = 0; ai < S->nact; ai++)
        for (size_t q = 0; q < 4; q++)
            for (size_t i = 0; i < S->nrec; i++) {
                const size_t v = ai * S->nv + i * 4 + q;
                double x[WL_NFIT];
                wl_fit_vals(&F[v], x);
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "act", S->acts[ai]);
                cJSON_AddNumberToObject(o, "k", (double)q + 1);
                cJSON_AddItemToObject(o, "t", nh_cli_json_num(S->t[i]));
                wl_cat(cmd, &b, &len, &cap, "%s,%zu,%.17g", S->acts[ai], q + 1, S->t[i]);
                for (size_t c = 0; c < WL_NFIT; c++) {
                    wl_cat(cmd, &b, &len, &cap, ",%.17g", x[c]);
                    cJSON_AddItemToObject(o, wl_fit_keys[c], nh_cli_json_num(x[c]));
                }
                const char *pw = F[v].resolved ? "resolved" : "not resolved";
                wl_cat(cmd, &b, &len, &cap, ",%zu,%s\n", S->nrun - 1, pw);
                cJSON_AddStringToObject(o, "power", pw);
                cJSON_AddItemToArray(arr, o);
            }
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, dir, "fits.csv"), b);
    free(b);
}

/* --test-width: run jt against theory + a/w, a fitted on the other runs;
 * check.csv and the summary's "check".  Returns the number of failures. */
static size_t wl_check(const nh_cmd *cmd, const wl_set *S, size_t jt, const char *dir, cJSON *js) {
    int use[WL_MAXRUN];
    for (size_t j = 0; j < S->nrun; j++) use[j] = j != jt;
    const wl_run *r = &S->run[jt];
    char *b = NULL, path[4096], worst[96] = "";
    size_t len = 0, cap = 0, fail = 0, n = 0;
    double wz = 0;
    wl_cat(cmd, &b, &len, &cap, "act,k,t,width,theory,mean,se,z_plain,term,se_term,z,pass\n");
    for (size_t ai = 0; ai < S->nact; ai++)
        for (size_t q = 0; q < 4; q++)
            for (size_t i = 0; i < S->nrec; i++) {
                const size_t v = ai * S->nv + i * 4 + q;
                double a, se_a, chi2;
                size_t m;
                if (wl_fit_inv(S, use, v, &a, &se_a, &chi2, &m)) nh_die(cmd, "the leave-one-out fit failed");
                const double d = r->mean[v] - r->theory[v], term = a / r->w, se_t = se_a / r->w;
                const double z = (d - term) / sqrt(r->se[v] * r->se[v] + se_t * se_t);
                const int pass = fabs(z) <= 3; /* 3 SE, as fig1's check; never loosened */
                fail += !pass, n++;
                if (fabs(z) > fabs(wz)) wz = z, snprintf(worst, sizeof worst, "%s k=%zu t=%g", S->acts[ai], q + 1, S->t[i]);
                wl_cat(cmd, &b, &len, &cap, "%s,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d\n",
                       S->acts[ai], q + 1, S->t[i], r->w, r->theory[v], r->mean[v], r->se[v], d / r->se[v], term, se_t,
                       z, pass);
            }
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, dir, "check.csv"), b);
    free(b);
    cJSON *o = cJSON_AddObjectToObject(js, "check");
    cJSON_AddNumberToObject(o, "width", r->w);
    cJSON_AddNumberToObject(o, "points", (double)n);
    cJSON_AddNumberToObject(o, "passed", (double)(n - fail));
    cJSON_AddNumberToObject(o, "failed", (double)fail);
    cJSON_AddItemToObject(o, "worst_z", nh_cli_json_num(wz));
    cJSON_AddStringToObject(o, "worst_point", worst);
    printf("check width %g against theory + a/w fitted on the other %zu widths: %zu passed, %zu failed, worst z = %.3f "
           "(%s)\n", r->w, S->nrun - 1, n - fail, fail, wz, worst);
    return fail;
}

/* ---------------------------------------------------------------- plot */

/* Panel q (power k = q + 1): w d(t) +- w SE per (act, width), and the
 * fitted a(t) of d = a/w per act: under the law the widths collapse on it. */
static void wl_panel(const wl_set *S, const wl_fit *F, size_t q, nh_plot_series *ser, double *buf, nh_plot_panel *pan,
                     char (*lab)[64]) {
    static const char *const titles[4] = {"k = 1", "k = 2", "k = 3", "k = 4"};
    const size_t nrec = S->nrec;
    size_t ns = 0;
    for (size_t ai = 0; ai < S->nact && ns + S->nrun + 1 <= 64; ai++) {
        for (size_t j = 0; j < S->nrun; j++, ns++) {
            const wl_run *r = &S->run[j];
            double *y = buf + ns * 2 * nrec, *e = y + nrec;
            for (size_t i = 0; i < nrec; i++) {
                const size_t v = ai * S->nv + i * 4 + q;
                y[i] = (r->mean[v] - r->theory[v]) * r->w, e[i] = r->se[v] * r->w;
            }
            snprintf(lab[ns], 64, "%s, w = %g", S->acts[ai], r->w);
            ser[ns] = (nh_plot_series){nrec, S->t, y, e, NH_STYLE_POINTS,
                                       (nh_plot_color)(NH_COLOR_BLUE + (int)(j % 10)),
                                       (nh_plot_marker)(NH_MARKER_CROSS + (int)(ai % 7)), q == 0 ? lab[ns] : NULL};
        }
        double *y = buf + ns * 2 * nrec;
        for (size_t i = 0; i < nrec; i++) y[i] = F[ai * S->nv + i * 4 + q].a;
        snprintf(lab[ns], 64, "%s: a(t), fit d = a/w", S->acts[ai]);
        ser[ns] = (nh_plot_series){nrec, S->t, y, NULL, NH_STYLE_LINE, ai ? NH_COLOR_GREY : NH_COLOR_BLACK,
                                   NH_MARKER_AUTO, q == 0 ? lab[ns] : NULL};
        ns++;
    }
    *pan = (nh_plot_panel){titles[q], "t (gradient-flow time)", "w (mean - theory) of Tr(H#uk#d)", ns, ser};
    pan->legend = q == 0 ? NH_LEGEND_BELOW : NH_LEGEND_NONE;
}

static void wl_plot(const nh_cmd *cmd, const wl_set *S, const wl_fit *F, const char *dir) {
    nh_plot_series *ser = calloc(4 * 64, sizeof *ser);
    double *buf = calloc(4 * 64 * 2 * S->nrec, sizeof *buf);
    char(*lab)[64] = calloc(4 * 64, sizeof *lab);
    nh_plot_panel pan[4];
    if (!ser || !buf || !lab) nh_die(cmd, "out of memory");
    for (size_t q = 0; q < 4; q++) wl_panel(S, F, q, ser + q * 64, buf + q * 64 * 2 * S->nrec, pan + q, lab + q * 64);
    char note[512], stem[4096];
    const cJSON *N = cJSON_GetObjectItem(S->params, "N");
    snprintf(note, sizeof note, "fig1 runs, N = %g, widths %g..%g (%zu runs); points: w (mean - theory) +- w s.e.; "
             "lines: a(t) of the weighted fit d = a/w on all widths", cJSON_IsNumber(N) ? N->valuedouble : 0,
             S->run[0].w, S->run[S->nrun - 1].w, S->nrun);
    nh_plot_spec spec = {0};
    spec.path = nh_cli_path(stem, sizeof stem, dir, "widthlaw");
    spec.title = "Finite-width law of Figure 1: deviation from Corollary 1 times the width";
    spec.note = note;
    spec.height = 520 + 26 * (int)pan[0].nseries; /* room for the legend below the first panel */
    spec.npanels = 4;
    spec.panels = pan;
    nh_plot_report rep;
    NH_CHECK(cmd, nh_plot_xy(&spec, &rep));
    free(ser), free(buf), free(lab);
}

/* ----------------------------------------------------------- the command */

static void wl_parse_runs(const nh_cmd *cmd, char *list, wl_set *S) {
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (S->nrun == WL_MAXRUN) nh_die_usage(cmd, "--runs: at most %d runs", WL_MAXRUN);
        S->run[S->nrun++].dir = tok;
    }
    if (S->nrun < 2) nh_die_usage(cmd, "--runs: need at least two fig1 runs of different widths");
}

static void wl_summary(const nh_cmd *cmd, const wl_set *S, cJSON *js, const char *dir) {
    cJSON_AddStringToObject(js, "law", "d = mean - theory of Tr(H^k); fits d = a/w, d = a0 + a1/w, d = ap w^-p, "
                                       "SD = b w^-q; weighted least squares, weights 1/SE^2");
    cJSON_AddItemToObject(js, "params", cJSON_Duplicate(S->params, 1));
    cJSON_AddStringToObject(js, "trials_used", S->rc ? "0..R-1 of every run (--trials R: the same seeds)" : "all");
    cJSON *runs = cJSON_AddArrayToObject(js, "runs");
    for (size_t j = 0; j < S->nrun; j++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dir", S->run[j].dir);
        cJSON_AddNumberToObject(o, "width", S->run[j].w);
        cJSON_AddNumberToObject(o, "trials", (double)S->run[j].R);
        cJSON_AddItemToArray(runs, o);
    }
    char *txt = cJSON_Print(js), path[4096];
    if (!txt) nh_die(cmd, "out of memory");
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, dir, "summary.json"), txt);
    free(txt);
}

static int run_widthlaw(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    static wl_set S;
    char *list = strdup(nh_arg_req(&a, "runs"));
    const char *out = nh_arg_req(&a, "out"), *tw = nh_arg_str(&a, "test-width");
    if (!list) nh_die(cmd, "out of memory");
    wl_parse_runs(cmd, list, &S);
    const double wt = tw && *tw ? nh_arg_double(&a, "test-width") : 0;
    const char *rcs = nh_arg_str(&a, "trials");
    S.rc = rcs && *rcs ? (size_t)nh_arg_int(&a, "trials", 4, 1 << 30) : 0;
    if (nh_plot_available() != NH_OK) nh_die(cmd, "%s (install plplot-driver-cairo)", nh_last_error());
    for (size_t j = 0; j < S.nrun; j++) wl_load(cmd, &S, j);
    for (size_t j = 1; j < S.nrun; j++) /* by width, for the tables */
        for (size_t i = j; i > 0 && S.run[i].w < S.run[i - 1].w; i--) {
            wl_run tmp = S.run[i];
            S.run[i] = S.run[i - 1], S.run[i - 1] = tmp;
        }
    size_t jt = S.nrun;
    for (size_t j = 0; wt && j < S.nrun; j++)
        if (S.run[j].w == wt) jt = j;
    if (wt && jt == S.nrun) nh_die_usage(cmd, "--test-width %g is not the width of one of --runs", wt);
    const char *inputs[WL_MAXRUN];
    for (size_t j = 0; j < S.nrun; j++) inputs[j] = S.run[j].dir;
    const char *dir = nh_out_open(cmd, out, 0, inputs, S.nrun); /* all or nothing (out.c) */
    wl_fit *F = calloc(S.nact * S.nv, sizeof *F);
    if (!F) nh_die(cmd, "out of memory");
    wl_fit_all(cmd, &S, F);
    cJSON *js = cJSON_CreateObject();
    wl_write_data(cmd, &S, dir);
    wl_write_fits(cmd, &S, F, dir, cJSON_AddArrayToObject(js, "fits"));
    const size_t fail = jt < S.nrun ? wl_check(cmd, &S, jt, dir, js) : 0;
    wl_summary(cmd, &S, js, dir);
    wl_plot(cmd, &S, F, dir);
    nh_out_commit(cmd);
    fprintf(stderr, "ntkhess widthlaw: wrote %s/widthlaw.csv, fits.csv, %ssummary.json, widthlaw.png, widthlaw.svg\n",
            out, jt < S.nrun ? "check.csv, " : "");
    cJSON_Delete(js), free(F), free(list);
    return fail ? NH_EXIT_RUNTIME : 0;
}

const nh_cmd nh_cmd_widthlaw = {
    "widthlaw", "Finite-width law of Figure 1: fig1's deviation from theory against the width, fitted.",
    "--runs DIR1,DIR2,... --out DIR [--test-width W] [--trials R]",
    "Reads finished fig1 runs (summary.json, trials_<act>.csv) with the same\n"
    "options except --width and --trials (any other difference is refused, exit\n"
    "2, naming the option).  Per nonlinearity, power k and record time t: the\n"
    "deviation d(w) = mean - theory of Tr(H^k) with its SE, and the trial spread\n"
    "SD(w) (sample SD of the trials; its SE from their fourth moment).  Weighted\n"
    "least squares (weights 1/SE^2, LAPACK; parameter SEs from (X^T W X)^-1, the\n"
    "errors being measured, with chi2 reported): d = a/w (the expected O(1/w) of\n"
    "the mean); d = a0 + a1/w (Corollary 1 needs a0 = 0: z_a0 = a0 / SE); the\n"
    "free power d = ap w^-p, fitted on log|d| only where every d has one sign and\n"
    "|d| > 2 SE, else 'not resolved'; SD = b w^-q (expected q = 1/2), on log SD.\n"
    "d_5000 = a/5000 (the paper's width; d_5000_2p from the two-parameter law).\n"
    "--test-width W: the run at width W against theory + a/W with a fitted on the\n"
    "OTHER widths only, z = (d - a/W) / sqrt(SE^2 + SE(a/W)^2), pass |z| <= 3;\n"
    "check.csv per point, the count and worst z on stdout; exit 1 if any fails.\n"
    "--trials R: every run contributes its trials 0..R-1 only (fig1 seeds trial r\n"
    "the same way at every width, so this compares the same seeds; refused if a\n"
    "run has fewer).\n"
    "Writes widthlaw.csv, fits.csv, summary.json, widthlaw.png/.svg (w d(t)\n"
    "against t per k: under the law the widths collapse on a(t)).  See\n"
    "docs/finite-width.md.",
    wl_opts, run_widthlaw};
