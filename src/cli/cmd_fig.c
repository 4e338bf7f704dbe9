/* cmd_fig.c -- ntkhess fig1, fig2, fig3: the paper's three figures, theory
 * against experiment, as PNG + SVG plots with the data behind them (CSV) and
 * summary.json.  Every figure's output folder is all or nothing (out.c:
 * written into PARENT/.NAME.partial, swapped in whole on success, removed on
 * failure).  fig1's trial loop writes each finished trial at once into the
 * work folder and resumes after a kill; trials are independent (seed, act,
 * trial index), so they can be split across processes. */
#include "cli.h"
#include "fig1.h"
#include "par.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NH_MAXACT 4

static cJSON *fnum(double v) { return nh_cli_json_num(v); }

static void write_json(const nh_cmd *cmd, const char *dir, const char *name, cJSON *js) {
    char *txt = cJSON_Print(js), path[4096];
    if (!txt) nh_die(cmd, "out of memory");
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, dir, name), txt);
    free(txt);
}

static void write_text(const nh_cmd *cmd, const char *dir, const char *name, const char *text) {
    char path[4096];
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, dir, name), text);
}

static void *xmalloc(const nh_cmd *cmd, size_t n, size_t size) {
    void *p = n && size ? calloc(n, size) : malloc(1);
    if (!p) nh_die(cmd, "out of memory");
    return p;
}

static const char *act_title(nh_act a) { return nh_act_title(a); }
static const char *data_title(const char *data) { return !strcmp(data, "mnist") ? "14x14 MNIST" : data; }

/* ------------------------------------------------- all-or-nothing output */

/* The output folder goes through out.c (nh_out_open / nh_out_commit): any
 * exit before the commit removes the work folder.  fig1 keeps it instead
 * once it holds finished trials (fig_keep), for a rerun to resume: its exit
 * hook, registered after out.c's and so run before it, releases the
 * folder. */
static int fig_keep;

static void fig_atexit(void) {
    if (fig_keep) nh_out_release();
}

/* Open OUT (flags: NH_OUTDIR_RESUME keeps a killed run's work folder);
 * returns the folder to write into. */
static const char *fig_open(const nh_cmd *cmd, const char *out, unsigned flags) {
    const char *dir = nh_out_open(cmd, out, flags, NULL, 0);
    atexit(fig_atexit);
    return dir;
}

static void check_plotting(const nh_cmd *cmd) {
    if (nh_plot_available() != NH_OK) nh_die(cmd, "%s (install plplot-driver-cairo)", nh_last_error());
}

/* ---------------------------------------------------------------- shared */

static size_t parse_acts(const nh_cmd *cmd, const char *s, nh_act *acts) {
    size_t n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (n == NH_MAXACT) nh_die_usage(cmd, "--acts: at most %d nonlinearities", NH_MAXACT);
        acts[n] = nh_cli_act_spec(cmd, "acts", tok, NULL);
        n++;
    }
    if (!n) nh_die_usage(cmd, "--acts is empty");
    return n;
}

static double *load_mnist(const nh_cmd *cmd, size_t n, uint64_t seed, size_t *d, double **T) {
    char dir[4096], probe[4200];
    snprintf(dir, sizeof dir, "%s/mnist/digits", nh_data_dir());
    snprintf(probe, sizeof probe, "%s/0.json", dir);
    if (access(probe, R_OK) != 0)
        nh_die(cmd, "MNIST not found in %s/mnist (run scripts/fetch_data.sh, or use --data sphere)", nh_data_dir());
    nh_images im;
    NH_CHECK(cmd, nh_mnist_load(dir, &im));
    if (n > im.n) nh_die(cmd, "--n %zu exceeds the %zu MNIST digits available", n, im.n);
    *d = 14 * 14;
    double *X = xmalloc(cmd, n * *d, sizeof *X);
    *T = xmalloc(cmd, n, sizeof **T);
    NH_CHECK(cmd, nh_images_prepare(&im, n, 14, seed, NH_LOSS_MSE, X, *T, NULL));
    nh_images_free(&im);
    return X;
}

/* Inputs and real targets: 14x14 MNIST (the paper's data), the sphere, or
 * the unit disk.  X: n x d (malloc'ed), T: n. */
static double *load_fig_data(const nh_cmd *cmd, const char *kind, size_t n, uint64_t seed, size_t *d, double **T) {
    if (!strcmp(kind, "mnist")) return load_mnist(cmd, n, seed, d, T);
    if (strcmp(kind, "sphere") && strcmp(kind, "disk"))
        nh_die_usage(cmd, "--data must be mnist, sphere or disk, got '%s'", kind);
    *d = !strcmp(kind, "disk") ? 2 : 196;
    double *X = xmalloc(cmd, n * *d, sizeof *X);
    *T = xmalloc(cmd, n, sizeof **T);
    NH_CHECK(cmd, nh_data_synth(!strcmp(kind, "disk") ? NH_DATA_DISK : NH_DATA_SPHERE, n, *d, NH_LOSS_MSE, 0, seed,
                                X, *T));
    return X;
}

static nh_net *make_net(const nh_cmd *cmd, size_t depth, const size_t *w, nh_act act, double beta, uint64_t seed) {
    nh_net_config c = nh_net_config_default();
    c.depth = depth;
    c.widths = w;
    c.act = act;
    c.beta = beta;
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_net_create(&c, &net));
    nh_net_init_normal(net, seed);
    return net;
}

/* Seed of trial r of nonlinearity a: distinct streams, independent of how
 * trials are split over processes. */
static uint64_t trial_seed(uint64_t seed, nh_act a, size_t r) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ULL + ((uint64_t)a + 1) * 0xbf58476d1ce4e5b9ULL + (uint64_t)r + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Common option rows. */
#define FIG_OPT_QUICK(h) {"quick", NULL, NULL, h}
#define FIG_OPT_THREADS {"threads", "T", "auto", "threads"}
#define FIG_OPT_END {NULL, NULL, NULL, NULL}

/* ------------------------------------------------------------------ fig1 */
static const nh_optspec fig1_opts[] = {
    FIG_OPT_QUICK("small run: the quick values below, about two minutes on 2 cores"),
    {"data", "NAME", "mnist", "mnist (14x14 digits, the paper's data), sphere or disk"},
    {"n", "N", "256", "training points", "64"},
    {"width", "W", "5000", "hidden width n_1 = n_2", "600"},
    {"trials", "R", "250", "independent networks per nonlinearity", "24"},
    NH_OPT_ACTS("softplus,nsoftplus"),
    {"beta", "B", "0.1", "bias scale"},
    {"lr", "ETA", "0.25", "learning rate; t = step * eta"},
    {"steps", "K", "64", "gradient-descent steps"},
    {"every", "E", "4", "record every E steps"},
    {"probes", "M", "1", "probes per record for the remainder Tr(H^k) - Tr(I^k) (docs/figures.md: cost of a trial)"},
    {"precision", "f64|f32", "f32", "curvature engine of the trials (f32: the float32 engine, theta kept float64)"},
    {"seed", "S", "0", "seed of the data selection, the networks and the probes"},
    {"restart", NULL, NULL, "discard the unfinished trials of an earlier run into --out instead of resuming"},
    {"out", "DIR", "", "output directory (fig1.png, fig1.svg, fig1.csv, summary.json, trials_*.csv)"},
    {"replay", "DIR", "", "instead of a run: recompute the trials of --trials-list of the finished run DIR "
                          "(same options) and print their rows as trials_<act>.csv:ROW"},
    {"trials-list", "LIST", "", "with --replay: trial indices, comma-separated (0-based)"},
    FIG_OPT_THREADS,
    FIG_OPT_END};

typedef struct fig1_cfg {
    size_t n, width, trials, depth, nrec, nv, M, nact, d;
    long long steps, every;
    double lr, beta;
    uint64_t seed;
    int quick, restart, f32;
    nh_act acts[NH_MAXACT];
    const char *data, *out, *dir; /* dir: the work folder (rank 0) */
    const char *replay;           /* --replay DIR, or NULL */
    size_t nlist, list[64];       /* --trials-list */
} fig1_cfg;

/* Per nonlinearity ai and value k = i*4 + (q-1) (record i, power q), at
 * [ai * nv + k]: theory and measured mean / standard error. */
typedef struct fig1_res {
    double *tt; /* nrec record times */
    double *thH, *thI, *thS, *mH, *sH, *mI, *sI;
} fig1_res;

/* --trials-list: indices below --trials, at most 64. */
static void fig1_parse_list(const nh_cmd *cmd, const nh_args *a, fig1_cfg *f) {
    const char *s = nh_arg_req(a, "trials-list");
    for (const char *p = s; *p;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || *p == '-' || *p == '+' || (*end && *end != ',') || (*end == ',' && !end[1]))
            nh_die_usage(cmd, "--trials-list: '%s' is not a list of trial indices", s);
        if (v >= f->trials) nh_die_usage(cmd, "--trials-list: trial %llu is not below --trials %zu", v, f->trials);
        if (f->nlist == sizeof f->list / sizeof f->list[0]) nh_die_usage(cmd, "--trials-list: more than 64 trials");
        f->list[f->nlist++] = (size_t)v;
        p = *end ? end + 1 : end;
    }
}

static void fig1_parse(const nh_cmd *cmd, int argc, char **argv, fig1_cfg *f) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    memset(f, 0, sizeof *f);
    f->quick = nh_arg_flag(&a, "quick");
    f->restart = nh_arg_flag(&a, "restart");
    f->n = (size_t)nh_arg_int(&a, "n", 2, 1 << 20);
    f->width = (size_t)nh_arg_int(&a, "width", 1, 1 << 20);
    f->trials = (size_t)nh_arg_int(&a, "trials", 2, 1 << 24);
    f->steps = nh_arg_int(&a, "steps", 0, 1 << 30);
    f->every = nh_arg_int(&a, "every", 1, 1 << 30);
    f->M = (size_t)nh_arg_int(&a, "probes", 1, 1 << 20);
    f->lr = nh_arg_double(&a, "lr");
    if (!(f->lr > 0)) nh_die_usage(cmd, "--lr must be > 0");
    f->beta = nh_arg_double(&a, "beta");
    f->seed = nh_arg_u64(&a, "seed");
    f->depth = 3;
    f->nrec = (size_t)(f->steps / f->every) + 1;
    f->nv = f->nrec * 4;
    f->nact = parse_acts(cmd, nh_arg_req(&a, "acts"), f->acts);
    const char *prec = nh_arg_req(&a, "precision");
    if (!strcmp(prec, "f32")) f->f32 = 1;
    else if (strcmp(prec, "f64")) nh_die_usage(cmd, "--precision must be f64 or f32, got '%s'", prec);
    f->data = nh_arg_req(&a, "data");
    f->replay = nh_arg_str(&a, "replay");
    if (f->replay && !*f->replay) f->replay = NULL;
    if (f->replay) fig1_parse_list(cmd, &a, f);
    else if (nh_arg_flag(&a, "trials-list")) nh_die_usage(cmd, "--trials-list needs --replay DIR");
    f->out = nh_arg_str(&a, "out"); /* required for a run (run_fig1), not for --replay or bench trial */
}

/* Theory: Corollary 1 in expectation over the initialization, for
 * nonlinearity ai at the record times. */
static void fig1_theory(const nh_cmd *cmd, const fig1_cfg *f, size_t ai, const double *X, const double *T,
                        fig1_res *res) {
    nh_kernel_opts ko = nh_kernel_opts_default();
    ko.act = f->acts[ai];
    ko.depth = f->depth;
    ko.beta = f->beta;
    double *mats[NH_K_COUNT] = {0};
    const int need[] = {NH_K_SIGMA, NH_K_THETA, NH_K_UPSILON, NH_K_PHI, NH_K_XI, NH_K_LAMBDA};
    for (int q = 0; q < 6; q++) mats[need[q]] = xmalloc(cmd, f->n * f->n, sizeof(double));
    NH_CHECK(cmd, nh_kernels_gram(&ko, f->n, f->d, X, mats));
    nh_grams g = {f->n, mats[NH_K_THETA], mats[NH_K_LAMBDA], mats[NH_K_UPSILON], mats[NH_K_PHI], mats[NH_K_XI],
                  mats[NH_K_SIGMA]};
    nh_moments *mom = xmalloc(cmd, f->nrec, sizeof *mom);
    nh_predict_opts po = nh_predict_opts_default();
    NH_CHECK(cmd, nh_predict_mse_expect(&g, 1, T, f->nrec, res->tt, &po, mom, NULL));
    for (size_t i = 0; i < f->nrec; i++)
        for (size_t q = 0; q < 4; q++) {
            const size_t k = ai * f->nv + i * 4 + q;
            res->thH[k] = mom[i].tr_h[q];
            res->thI[k] = mom[i].tr_i[q];
            res->thS[k] = mom[i].tr_s[q];
        }
    free(mom);
    for (int q = 0; q < NH_K_COUNT; q++) free(mats[q]);
}

/* One record at the current step: Tr(H^k) (control variates: exact
 * Tr(I^k) + estimated remainder; its within-trial Hutchinson SE into hse)
 * and the exact Tr(I^k), timed into cost. */
static void fig1_record(const nh_cmd *cmd, nh_curv *c, const nh_trace_opts *to, double *trH, double *trI,
                        double *hse, nh_fig1_cost *cost) {
    nh_trace_result th, ti;
    double t0 = nh_cli_now();
    /* one NTK Gram for both: H's control variate and the exact Tr(I^k) */
    NH_CHECK(cmd, nh_curv_trace_hi(c, 4, to, &th, &ti));
    cost->trace_h_s += nh_cli_now() - t0;
    cost->products += th.nproducts + ti.nproducts;
    cost->records++;
    for (int q = 0; q < 4; q++) {
        trH[q] = th.est[q];
        trI[q] = ti.est[q];
        if (hse) hse[q] = th.se[q];
    }
}

/* One trial: train a fresh network and record Tr(H^k) and the exact
 * Tr(I^k) every E steps.  The record at step k uses the passes that the
 * step left cached (nh_curv_gd_step ends with the forward and backward
 * pass at the new theta), so nothing is computed twice.  hse (NULL or
 * nrec*4): the within-trial Hutchinson SE; cost (NULL or zeroed): timers. */
static void fig1_trial(const nh_cmd *cmd, const fig1_cfg *f, nh_act act, size_t r, const double *X, const double *T,
                       double *trH, double *trI, double *hse, nh_fig1_cost *cost) {
    nh_fig1_cost spare;
    if (!cost) cost = &spare;
    memset(cost, 0, sizeof *cost);
    const double t_start = nh_cli_now();
    size_t w[4] = {f->d, f->width, f->width, 1};
    nh_net *net = make_net(cmd, 3, w, act, f->beta, trial_seed(f->seed, act, r));
    nh_curv *c = NULL;
    nh_curv_opts co = nh_curv_opts_default();
    co.precision = f->f32 ? NH_PREC_SINGLE : NH_PREC_DOUBLE;
    NH_CHECK(cmd, nh_curv_create_ex(net, X, T, f->n, NH_LOSS_MSE, &co, &c));
    nh_trace_opts to = nh_trace_opts_default();
    to.nprobes = f->M;
    to.control = 1;
    to.seed = trial_seed(f->seed ^ 0x5bd1e995ULL, act, r);
    size_t rec = 0;
    for (long long k = 0; k <= f->steps; k++) {
        if (k > 0) {
            const double t0 = nh_cli_now();
            nh_status st = nh_curv_gd_step(c, net, f->lr);
            cost->step_s += nh_cli_now() - t0;
            cost->steps++;
            if (st != NH_OK)
                nh_die(cmd, "trial %zu (%s) %s at step %lld: %s; lower --lr", r, nh_act_name(act), nh_strerror(st), k,
                       nh_last_error());
        }
        if (k % f->every) continue;
        fig1_record(cmd, c, &to, trH + rec * 4, trI + rec * 4, hse ? hse + rec * 4 : NULL, cost);
        rec++;
    }
    nh_curv_free(c);
    nh_net_free(net);
    cost->total_s = nh_cli_now() - t_start;
}

/* ----------------------------------------------- fig1: the trial files */

/* trials_<act>.csv in the work folder.  Line 1, written atomically with the
 * file (nh_file_write), names the run:
 *   # ntkhess fig1 trials v2 id=SHA256 act=... data=... n=... width=...
 *     beta=... lr=... steps=... every=... probes=... seed=... [precision=f32]
 * (one line; precision=f32 only for the float32 engine, so that float64
 * runs keep the identity they had before --precision existed), id = SHA-256
 * of the key=value text after it: every option that changes a trial's
 * numbers (--trials does not: trial r is the same in any run, rows past
 * --trials are ignored).  Then one row per finished trial:
 *   r,Tr(H^k) x nrec*4,Tr(I^k) x nrec*4,c=CHECK
 * CHECK = the first 16 hex digits of SHA-256(id "," row), so a torn, edited
 * or foreign row is never used (the trial is computed again). */
#define FIG1_MAGIC "# ntkhess fig1 trials v2 id="

typedef struct fig1_file {
    char path[4096];
    char kv[512];  /* the key=value identity text */
    char id[65];   /* its SHA-256 */
    FILE *fp;      /* append stream (rank 0) */
} fig1_file;

static void fig1_ident(const fig1_cfg *f, nh_act act, fig1_file *tf) {
    snprintf(tf->kv, sizeof tf->kv,
             "act=%s data=%s n=%zu width=%zu beta=%.17g lr=%.17g steps=%lld every=%lld probes=%zu seed=%llu",
             nh_act_name(act), f->data, f->n, f->width, f->beta, f->lr, f->steps, f->every, f->M,
             (unsigned long long)f->seed);
    if (f->f32) { /* appended only for f32, so that float64 runs keep their identity */
        const size_t k = strlen(tf->kv);
        snprintf(tf->kv + k, sizeof tf->kv - k, " precision=f32");
    }
    nh_sha256 h;
    unsigned char dg[32];
    nh_sha256_init(&h);
    nh_sha256_update(&h, tf->kv, strlen(tf->kv));
    nh_sha256_final(&h, dg);
    nh_sha256_hex(dg, tf->id);
}

/* CHECK of a row: 16 hex digits. */
static void fig1_row_check(const char *id, const char *row, size_t len, char out[17]) {
    nh_sha256 h;
    unsigned char dg[32];
    char hex[65];
    nh_sha256_init(&h);
    nh_sha256_update(&h, id, strlen(id));
    nh_sha256_update(&h, ",", 1);
    nh_sha256_update(&h, row, len);
    nh_sha256_final(&h, dg);
    nh_sha256_hex(dg, hex);
    memcpy(out, hex, 16);
    out[16] = 0;
}

/* One row (NUL-terminated, without its newline) into H[r], I[r]; 1 if it is
 * complete, finite, its checksum matches and trial r is new. */
static int fig1_parse_row(const fig1_cfg *f, const char *id, char *line, double *row, double *H, double *I,
                          int *done) {
    char *c = strstr(line, ",c="), want[17];
    if (!c || strlen(c + 3) != 16) return 0;
    fig1_row_check(id, line, (size_t)(c - line), want);
    if (memcmp(c + 3, want, 16) != 0) return 0;
    char *p = line, *end;
    long long r = strtoll(p, &end, 10);
    if (end == p || r < 0 || (size_t)r >= f->trials || done[r]) return 0;
    p = end;
    size_t k;
    for (k = 0; k < 2 * f->nv && *p == ','; k++) {
        double v = strtod(p + 1, &end);
        if (end == p + 1 || !isfinite(v)) break;
        row[k] = v;
        p = end;
    }
    if (k != 2 * f->nv || p != c) return 0;
    memcpy(H + (size_t)r * f->nv, row, f->nv * sizeof *row);
    memcpy(I + (size_t)r * f->nv, row + f->nv, f->nv * sizeof *row);
    done[r] = 1;
    return 1;
}

/* Which options differ between our identity text and another header's. */
static void fig1_diff(const char *ours, const char *theirs, char *msg, size_t cap) {
    size_t k = 0;
    msg[0] = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", ours);
    for (char *tok = strtok(buf, " "); tok && k < cap; tok = strtok(NULL, " ")) {
        char key[64];
        const char *eq = strchr(tok, '=');
        if (!eq || (size_t)(eq - tok) + 2 > sizeof key) continue;
        snprintf(key, sizeof key, " %.*s", (int)(eq - tok + 1), tok);
        const char *t = strstr(theirs, key);
        size_t tl = t ? strcspn(t + strlen(key), " \n") : 0;
        if (t && tl == strlen(eq + 1) && !strncmp(t + strlen(key), eq + 1, tl)) continue;
        int w = snprintf(msg + k, cap - k, "%s--%.*s %s here, %.*s there", k ? "; " : "", (int)(eq - tok), tok, eq + 1,
                         (int)tl, t ? t + strlen(key) : "?");
        if (w < 0) break;
        k += (size_t)w;
    }
}

/* Parse a trial file's text buf (len bytes, NUL-terminated, modified) into
 * H, I, done.  Returns the rows used; -1: no usable file (empty, or a header
 * cut short by a kill); -2: the header names another run (buf then holds
 * it, NUL-terminated).  *bad: complete rows that failed their check; *torn:
 * the text does not end with a newline.  Reads nothing else (fuzzed by
 * fuzz/fuzz_fig1_trials.c). */
static long fig1_parse_trials(const fig1_cfg *f, const fig1_file *tf, char *buf, size_t len, double *row, double *H,
                              double *I, int *done, size_t *bad, int *torn) {
    char *nl = strchr(buf, '\n');
    if (!nl) return -1;
    *nl = 0;
    if (strncmp(buf, FIG1_MAGIC, strlen(FIG1_MAGIC)) != 0 || strncmp(buf + strlen(FIG1_MAGIC), tf->id, 64) != 0)
        return -2;
    long got = 0;
    *torn = len > 0 && buf[len - 1] != '\n';
    for (char *line = nl + 1, *e; *line; line = e + 1) {
        e = strchr(line, '\n');
        if (!e) break; /* a torn last row from a kill */
        *e = 0;
        if (fig1_parse_row(f, tf->id, line, row, H, I, done)) got++;
        else if (*line) ++*bad;
    }
    return got;
}

/* Load the finished trials of tf into H, I, done; dies naming the options
 * that differ when the file belongs to another run.  Returns the rows used,
 * -1 if there is no usable file (missing, empty, or a torn header). */
static long fig1_load(const nh_cmd *cmd, const fig1_cfg *f, fig1_file *tf, double *H, double *I, int *done,
                      size_t *bad, int *torn) {
    char *buf = NULL;
    size_t len = 0;
    const size_t cap = ((size_t)64 << 20) + 2 * f->trials * (32 + 2 * f->nv * 26);
    if (access(tf->path, F_OK) != 0) return -1;
    NH_CHECK(cmd, nh_file_read(tf->path, cap, &buf, &len));
    double *row = xmalloc(cmd, 2 * f->nv, sizeof *row);
    long got = fig1_parse_trials(f, tf, buf, len, row, H, I, done, bad, torn);
    free(row);
    if (got == -2) {
        char diff[1024];
        fig1_diff(tf->kv, buf, diff, sizeof diff);
        nh_die(cmd, "%s: the unfinished run in this output folder used other options (%s); rerun with those to "
                    "resume it, or add --restart to discard it", tf->path, *diff ? diff : "an older format");
    }
    free(buf);
    return got;
}

/* Open trial file ai for appending (rank 0): load what a killed run
 * finished, or create the file with its header in one atomic write. */
static size_t fig1_open_trials(const nh_cmd *cmd, const fig1_cfg *f, size_t ai, fig1_file *tf, double *H,
                               double *I, int *done) {
    char name[80];
    snprintf(name, sizeof name, "trials_%s.csv", nh_act_name(f->acts[ai]));
    nh_cli_path(tf->path, sizeof tf->path, f->dir, name);
    fig1_ident(f, f->acts[ai], tf);
    size_t bad = 0;
    int torn = 0;
    long have = fig1_load(cmd, f, tf, H, I, done, &bad, &torn);
    if (have < 0) {
        char head[700];
        snprintf(head, sizeof head, "%s%s %s\n", FIG1_MAGIC, tf->id, tf->kv);
        NH_CHECK(cmd, nh_file_write(tf->path, head, strlen(head)));
        have = 0;
    }
    if (!(tf->fp = fopen(tf->path, "a"))) nh_die(cmd, "cannot write %s", tf->path);
    if (torn) fputc('\n', tf->fp); /* the fragment stays on a line of its own, ignored */
    if (have || bad)
        fprintf(stderr, "ntkhess fig1: %s: resuming with %ld finished trials%s\n", nh_act_name(f->acts[ai]), have,
                bad ? " (rows that failed their check are computed again)" : "");
    return (size_t)have;
}

/* Row r of a trial file, as fig1 appends it: "r,H...,I...,c=CHECK" (malloc'ed, no newline). */
static char *fig1_format_row(const nh_cmd *cmd, const fig1_file *tf, const fig1_cfg *f, size_t r, const double *h,
                             const double *i) {
    size_t cap = 64 + 2 * f->nv * 26, k = 0;
    char *row = xmalloc(cmd, cap, 1), chk[17];
    k += (size_t)snprintf(row + k, cap - k, "%zu", r);
    for (size_t q = 0; q < f->nv; q++) k += (size_t)snprintf(row + k, cap - k, ",%.17g", h[q]);
    for (size_t q = 0; q < f->nv; q++) k += (size_t)snprintf(row + k, cap - k, ",%.17g", i[q]);
    fig1_row_check(tf->id, row, k, chk);
    snprintf(row + k, cap - k, ",c=%s", chk);
    return row;
}

static void fig1_append(const nh_cmd *cmd, fig1_file *tf, const fig1_cfg *f, size_t r, const double *h,
                        const double *i) {
    char *row = fig1_format_row(cmd, tf, f, r, h, i);
    if (fprintf(tf->fp, "%s\n", row) < 0 || fflush(tf->fp) != 0) nh_die(cmd, "cannot write %s", tf->path);
    free(row);
}

/* A resumed work folder keeps only the trial files of this run's
 * nonlinearities: everything else (outputs and plot temporaries of the
 * killed run, other nonlinearities' trials) is made again or dropped. */
static void fig1_clean_work(const nh_cmd *cmd, const fig1_cfg *f) {
    DIR *dp = opendir(f->dir);
    if (!dp) nh_die(cmd, "cannot read %s", f->dir);
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        int keep = 0;
        for (size_t ai = 0; ai < f->nact; ai++) {
            char name[80];
            snprintf(name, sizeof name, "trials_%s.csv", nh_act_name(f->acts[ai]));
            keep |= !strcmp(e->d_name, name);
        }
        char path[4096];
        if (!keep) NH_CHECK(cmd, nh_file_remove_tree(nh_cli_path(path, sizeof path, f->dir, e->d_name)));
    }
    closedir(dp);
}

/* ------------------------------------------- fig1: trials over the ranks */

/* Progress and, once, the estimated time left (from the first trial). */
typedef struct fig1_clock {
    double t0;
    size_t todo; /* unfinished trials of the nonlinearity in progress */
    int told;
} fig1_clock;

static void fig1_tick(const nh_cmd *cmd, const fig1_cfg *f, size_t ai, fig1_clock *ck, size_t ndone) {
    char what[64];
    snprintf(what, sizeof what, "fig1 %s: trial", nh_act_name(f->acts[ai]));
    nh_cli_progress(what, ndone, f->trials, nh_cli_now() - ck->t0);
    if (ck->told) return;
    ck->told = 1;
    const size_t left = ck->todo + (f->nact - ai - 1) * f->trials; /* the first trial's time, per rank */
    nh_cli_estimate(cmd, "trials", (nh_cli_now() - ck->t0) / (double)nh_par_size(), (long long)left);
}

/* SIGINT/SIGTERM/SIGHUP (out.c records them while fig1 cooperates): stop
 * between rounds, every finished trial on disk, the work folder kept. */
static void fig1_poll_signal(const nh_cmd *cmd, const fig1_cfg *f, size_t ai, size_t ndone) {
    if (!nh_sig_pending()) return;
    fig_keep = 1;
    nh_sig_exit(cmd, "after %zu of %zu trials of %s; rerun the same command to resume", ndone, f->trials,
                nh_act_name(f->acts[ai]));
}

/* The unfinished trials in order; in each round the k-th of R goes to rank
 * k (a fresh run: trial r on rank r mod R).  A trial's numbers depend only
 * on (seed, act, r), never on the rank that computes it.  Rank 0 gathers
 * each round and appends it in trial order. */
static void fig1_run_trials(const nh_cmd *cmd, const fig1_cfg *f, size_t ai, const double *X, const double *T,
                            fig1_file *tf, double *H, double *I, int *done, fig1_clock *ck) {
    const int root = nh_par_is_root();
    const size_t nranks = (size_t)nh_par_size(), me = (size_t)nh_par_rank(), nv = f->nv, rlen = 1 + 2 * nv;
    size_t ntodo = 0, *todo = xmalloc(cmd, f->trials, sizeof *todo);
    double *sbuf = xmalloc(cmd, rlen, sizeof *sbuf), *rbuf = root ? xmalloc(cmd, nranks * rlen, sizeof *rbuf) : NULL;
    for (size_t r = 0; r < f->trials; r++)
        if (!done[r]) todo[ntodo++] = r;
    size_t ndone = f->trials - ntodo;
    ck->t0 = nh_cli_now();
    ck->todo = ntodo;
    for (size_t b = 0; b < ntodo; b += nranks) {
        sbuf[0] = -1.0;
        if (b + me < ntodo) {
            fig1_trial(cmd, f, f->acts[ai], todo[b + me], X, T, sbuf + 1, sbuf + 1 + nv, NULL, NULL);
            sbuf[0] = (double)todo[b + me];
        }
        nh_par_gather(sbuf, rlen, rbuf);
        for (size_t q = 0; root && q < nranks; q++) {
            const double *o = rbuf + q * rlen;
            if (!(o[0] >= 0)) continue;
            const size_t r = (size_t)o[0];
            memcpy(H + r * nv, o + 1, nv * sizeof *H);
            memcpy(I + r * nv, o + 1 + nv, nv * sizeof *I);
            fig1_append(cmd, tf, f, r, H + r * nv, I + r * nv);
            fig_keep = 1; /* a finished trial: a failure from here on keeps the work folder */
            done[r] = 1;
            fig1_tick(cmd, f, ai, ck, ++ndone);
        }
        if (root) fig1_poll_signal(cmd, f, ai, ndone);
    }
    free(todo); free(sbuf); free(rbuf);
}

/* Nonlinearity ai: load or run its trials, then the mean and standard
 * error over trials of every value (rank 0 holds them all). */
static void fig1_measure(const nh_cmd *cmd, const fig1_cfg *f, size_t ai, const double *X, const double *T,
                         fig1_res *res, fig1_clock *ck) {
    const int root = nh_par_is_root();
    const size_t nv = f->nv;
    double *H = xmalloc(cmd, f->trials * nv, sizeof *H), *I = xmalloc(cmd, f->trials * nv, sizeof *I);
    int *done = xmalloc(cmd, f->trials, sizeof *done);
    /* Reachable from a static while in use: the error paths exit (nh_die)
     * from below, and a leak checker must not count them. */
    static void *volatile live[3];
    live[0] = H, live[1] = I, live[2] = done;
    fig1_file tf;
    memset(&tf, 0, sizeof tf);
    /* Rank 0 reads the finished trials and tells the others which. */
    if (root) fig1_open_trials(cmd, f, ai, &tf, H, I, done);
    nh_par_bcast(done, f->trials * sizeof *done);
    fig1_run_trials(cmd, f, ai, X, T, &tf, H, I, done, ck);
    if (root && fclose(tf.fp) != 0) nh_die(cmd, "cannot write %s", tf.path);
    for (size_t k = 0; root && k < nv; k++) {
        nh_mean_se(f->trials, H + k, nv, &res->mH[ai * nv + k], &res->sH[ai * nv + k]);
        nh_mean_se(f->trials, I + k, nv, &res->mI[ai * nv + k], &res->sI[ai * nv + k]);
    }
    free(H); free(I); free(done);
    live[0] = live[1] = live[2] = NULL;
}

static void fig1_res_alloc(const nh_cmd *cmd, const fig1_cfg *f, fig1_res *res) {
    const size_t m = f->nact * f->nv;
    res->tt = xmalloc(cmd, f->nrec, sizeof *res->tt);
    for (size_t i = 0; i < f->nrec; i++) res->tt[i] = (double)((long long)i * f->every) * f->lr;
    double **arr[7] = {&res->thH, &res->thI, &res->thS, &res->mH, &res->sH, &res->mI, &res->sI};
    for (int q = 0; q < 7; q++) *arr[q] = xmalloc(cmd, m, sizeof(double));
}

static void fig1_res_free(fig1_res *res) {
    free(res->tt); free(res->thH); free(res->thI); free(res->thS);
    free(res->mH); free(res->sH); free(res->mI); free(res->sI);
}

/* ------------------------------------------------ fig1: summary and csv */

static cJSON *fig1_params_json(const fig1_cfg *f, double elapsed) {
    cJSON *par = cJSON_CreateObject();
    cJSON_AddBoolToObject(par, "quick", f->quick);
    cJSON_AddStringToObject(par, "data", f->data);
    cJSON_AddNumberToObject(par, "N", (double)f->n);
    cJSON_AddNumberToObject(par, "depth", 3);
    cJSON_AddNumberToObject(par, "width", (double)f->width);
    cJSON_AddNumberToObject(par, "trials", (double)f->trials);
    cJSON_AddItemToObject(par, "beta", fnum(f->beta));
    cJSON_AddItemToObject(par, "lr", fnum(f->lr));
    cJSON_AddNumberToObject(par, "steps", (double)f->steps);
    cJSON_AddNumberToObject(par, "every", (double)f->every);
    cJSON_AddNumberToObject(par, "probes", (double)f->M);
    cJSON_AddStringToObject(par, "precision", f->f32 ? "f32" : "f64");
    cJSON_AddNumberToObject(par, "seed", (double)f->seed);
    cJSON_AddStringToObject(par, "loss", "mse");
    cJSON_AddItemToObject(par, "seconds", fnum(elapsed));
    return par;
}

/* Point (ai, record i, power q) as a JSON object and a CSV line at *p. */
static cJSON *fig1_point(const fig1_cfg *f, const fig1_res *s, size_t ai, size_t i, int q, char **p) {
    const size_t k = ai * f->nv + i * 4 + (size_t)q;
    const double z = (s->mH[k] - s->thH[k]) / s->sH[k];
    const double bias = s->mI[k] - s->thI[k]; /* the finite-width bias of the I part, measured */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "act", nh_act_name(f->acts[ai]));
    cJSON_AddNumberToObject(o, "k", q + 1);
    const char *keys[] = {"t", "theory", "mean", "se", "z", "tr_I_theory", "tr_I_mean", "tr_I_se", "bias_I",
                          "tr_S_theory"};
    const double vals[] = {s->tt[i], s->thH[k], s->mH[k], s->sH[k], z, s->thI[k], s->mI[k], s->sI[k], bias, s->thS[k]};
    for (int j = 0; j < 10; j++) cJSON_AddItemToObject(o, keys[j], fnum(vals[j]));
    *p += sprintf(*p, "%s,%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", nh_act_name(f->acts[ai]), q + 1,
                  s->tt[i], s->thH[k], s->mH[k], s->sH[k], z, s->thI[k], s->mI[k], s->sI[k], bias);
    return o;
}

/* summary.json and fig1.csv into the work folder. */
static void fig1_emit(const nh_cmd *cmd, const fig1_cfg *f, const fig1_res *s, double elapsed) {
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "figure", "fig1");
    cJSON_AddItemToObject(js, "params", fig1_params_json(f, elapsed));
    cJSON *pts = cJSON_AddArrayToObject(js, "points");
    char *csv = xmalloc(cmd, 256 + f->nact * f->nv * 260, 1), *p = csv;
    p += sprintf(p, "act,k,t,theory,mean,se,z,tr_I_theory,tr_I_mean,tr_I_se,bias_I\n");
    for (size_t ai = 0; ai < f->nact; ai++)
        for (int q = 0; q < 4; q++)
            for (size_t i = 0; i < f->nrec; i++) cJSON_AddItemToArray(pts, fig1_point(f, s, ai, i, q, &p));
    write_text(cmd, f->dir, "fig1.csv", csv);
    free(csv);
    write_json(cmd, f->dir, "summary.json", js);
    cJSON_Delete(js);
}

/* ----------------------------------------------------------- fig1: plot */

/* Panel ai: the four theory lines and the measured means +- se; ys holds
 * the 8 y arrays of the panel (nrec each), ye the 4 error arrays. */
static void fig1_panel(const fig1_cfg *f, const fig1_res *s, size_t ai, nh_plot_series *ser, double *ys, double *ye,
                       nh_plot_panel *pan) {
    static const char *const labels[4] = {"Tr(H) theory", "Tr(H#u2#d) theory", "Tr(H#u3#d) theory",
                                          "Tr(H#u4#d) theory"};
    const size_t nv = f->nv, nrec = f->nrec;
    for (size_t q = 0; q < 4; q++) {
        double *yt = ys + q * 2 * nrec, *ym = yt + nrec, *yq = ye + q * nrec;
        for (size_t i = 0; i < nrec; i++) {
            yt[i] = s->thH[ai * nv + i * 4 + q];
            ym[i] = s->mH[ai * nv + i * 4 + q];
            yq[i] = s->sH[ai * nv + i * 4 + q];
        }
        nh_plot_series *sl = &ser[q], *sp = &ser[4 + q];
        sl->n = nrec; sl->x = s->tt; sl->y = yt; sl->style = NH_STYLE_LINE;
        sl->color = (nh_plot_color)(NH_COLOR_BLUE + (int)q); sl->label = labels[q];
        sp->n = nrec; sp->x = s->tt; sp->y = ym; sp->yerr = yq; sp->style = NH_STYLE_POINTS;
        sp->color = NH_COLOR_BLACK; sp->marker = NH_MARKER_CROSS;
        sp->label = q == 0 ? "experiment: mean +/- s.e." : NULL;
    }
    pan->title = act_title(f->acts[ai]);
    pan->xlabel = "t (gradient-flow time, t = step #gy)";
    pan->ylabel = "Tr(H#uk#d)";
    pan->nseries = 8;
    pan->series = ser;
    double lo = INFINITY, hi = 0;
    for (size_t k = 0; k < nv; k++) {
        double v = fabs(s->thH[ai * nv + k]);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    pan->logy = hi > 30 * lo; /* log only when the moments span decades */
    pan->legend = ai == 0 ? NH_LEGEND_BELOW : NH_LEGEND_NONE;
}

/* One panel per nonlinearity, theory lines + mean +- se. */
static void fig1_plot(const nh_cmd *cmd, const fig1_cfg *f, const fig1_res *s) {
    const size_t nact = f->nact, nrec = f->nrec;
    nh_plot_series *ser = xmalloc(cmd, nact * 8, sizeof *ser);
    nh_plot_panel *pan = xmalloc(cmd, nact, sizeof *pan);
    double *ys = xmalloc(cmd, nact * 8 * nrec, sizeof *ys), *ye = xmalloc(cmd, nact * 4 * nrec, sizeof *ye);
    for (size_t ai = 0; ai < nact; ai++)
        fig1_panel(f, s, ai, ser + ai * 8, ys + ai * 8 * nrec, ye + ai * 4 * nrec, pan + ai);
    char note[512], stem[4096];
    snprintf(note, sizeof note,
             "%s%s, N = %zu, L = 3, widths %zu, %zu trials, MSE, #gb = %g, #gy = %g, %zu probes; theory: Corollary 1 "
             "(expectation)",
             f->quick ? "quick mode: " : "", data_title(f->data), f->n, f->width, f->trials, f->beta, f->lr, f->M);
    nh_plot_spec spec = {0};
    spec.path = nh_cli_path(stem, sizeof stem, f->dir, "fig1");
    spec.title = "Moments of the Hessian during training: theory (lines) and experiment (points)";
    spec.note = note;
    spec.npanels = nact;
    spec.panels = pan;
    nh_plot_report rep;
    NH_CHECK(cmd, nh_plot_xy(&spec, &rep));
    free(ser); free(pan); free(ys); free(ye);
}

/* Rank 0 opens the output folder: resumes a killed run's work folder
 * (--restart: starts over) and keeps only its trial files. */
static void fig1_open(const nh_cmd *cmd, fig1_cfg *f) {
    f->dir = fig_open(cmd, f->out, f->restart ? 0u : NH_OUTDIR_RESUME);
    nh_sig_cooperate(1); /* a signal stops between trials, keeping them (fig1_poll_signal) */
    if (!nh_out_resumed()) return;
    fig_keep = 1; /* never discard a killed run's trials on a failure */
    fig1_clean_work(cmd, f);
}

/* --replay DIR: the trials of --trials-list of the finished run in DIR,
 * computed again from their seeds (the options must be that run's: its
 * trial files' identity is checked), printed as trials_<act>.csv:ROW in
 * the file's own format, so that a test compares them with the stored
 * rows as text: %.17g round-trips, so equal text is equal bits. */
static void fig1_replay(const nh_cmd *cmd, fig1_cfg *f, const double *X, const double *T) {
    double *H = xmalloc(cmd, f->trials * f->nv, sizeof *H), *I = xmalloc(cmd, f->trials * f->nv, sizeof *I);
    double *h = xmalloc(cmd, 2 * f->nv, sizeof *h);
    int *done = xmalloc(cmd, f->trials, sizeof *done);
    for (size_t ai = 0; ai < f->nact; ai++) {
        fig1_file tf;
        char name[80];
        size_t bad = 0;
        int torn = 0;
        memset(&tf, 0, sizeof tf);
        memset(done, 0, f->trials * sizeof *done);
        snprintf(name, sizeof name, "trials_%s.csv", nh_act_name(f->acts[ai]));
        nh_cli_path(tf.path, sizeof tf.path, f->replay, name);
        fig1_ident(f, f->acts[ai], &tf);
        if (fig1_load(cmd, f, &tf, H, I, done, &bad, &torn) < 0) nh_die(cmd, "--replay: no trials in %s", tf.path);
        for (size_t j = 0; j < f->nlist; j++) {
            const size_t r = f->list[j];
            if (!done[r]) nh_die(cmd, "--replay: trial %zu is not a finished trial of %s", r, tf.path);
            fig1_trial(cmd, f, f->acts[ai], r, X, T, h, h + f->nv, NULL, NULL);
            char *row = fig1_format_row(cmd, &tf, f, r, h, h + f->nv);
            printf("%s:%s\n", name, row);
            free(row);
        }
    }
    if (fflush(stdout) != 0) nh_die(cmd, "cannot write to stdout");
    free(H); free(I); free(h); free(done);
}

static int run_fig1(const nh_cmd *cmd, int argc, char **argv) {
    /* MPI (when built with it): trials spread over the ranks, rank 0 writes. */
    nh_par_init(&argc, &argv);
    const int root = nh_par_is_root();
    fig1_cfg f;
    fig1_parse(cmd, argc, argv, &f);
    if (f.replay) {
        double *T, *X = load_fig_data(cmd, f.data, f.n, f.seed, &f.d, &T);
        if (root) fig1_replay(cmd, &f, X, T);
        free(X); free(T);
        nh_par_finalize();
        return 0;
    }
    if (!f.out || !*f.out) nh_die_usage(cmd, "missing required option --out");
    check_plotting(cmd);
    double *T, *X = load_fig_data(cmd, f.data, f.n, f.seed, &f.d, &T);
    if (root) fig1_open(cmd, &f);
    fig1_res res;
    fig1_res_alloc(cmd, &f, &res);
    fig1_clock ck = {0, 0, 0};
    const double t_start = nh_cli_now();
    for (size_t ai = 0; ai < f.nact; ai++) {
        fig1_theory(cmd, &f, ai, X, T, &res);
        fig1_measure(cmd, &f, ai, X, T, &res, &ck);
    }
    const double elapsed = nh_cli_now() - t_start;
    if (root) { /* rank 0 writes the results */
        fig1_poll_signal(cmd, &f, f.nact - 1, f.trials);
        fig1_emit(cmd, &f, &res, elapsed);
        fig1_plot(cmd, &f, &res);
        nh_out_commit(cmd);
        fprintf(stderr, "ntkhess fig1: wrote %s/fig1.png, fig1.svg, fig1.csv, summary.json (%.1f s)\n", f.out,
                elapsed);
    }
    fig1_res_free(&res);
    free(X); free(T);
    nh_par_finalize();
    return 0;
}

const nh_cmd nh_cmd_fig1 = {
    "fig1", "The paper's Figure 1: Tr(H^k)(t), k = 1..4, theory against experiment.",
    "[--quick] [--data mnist|sphere] [--n N] [--width W] [--trials R] [--acts LIST] [--restart] --out DIR",
    "For each nonlinearity: the expectation over initialization of Corollary 1\n"
    "(corrected; MSE, L = 3) as lines, and the mean over R independently initialized\n"
    "networks of widths n_0,W,W,1 trained by gradient descent as points with\n"
    "standard-error bars, at t = 0, E eta, 2 E eta, ...  Each measured Tr(H^k) is\n"
    "exact Tr(I^k) (from the NTK Gram) plus a Hutchinson estimate of the remainder.\n"
    "Writes fig1.png, fig1.svg, fig1.csv and summary.json (a \"points\" array of\n"
    "{act, k, t, theory, mean, se, z, ...}; bias_I = mean Tr(I^k) - theory Tr(I^k)\n"
    "is the measured finite-width bias of the I part) and the trials behind them,\n"
    "trials_<act>.csv.  The output folder appears complete or not at all: the run\n"
    "works in DIR's sibling .NAME.partial and replaces DIR whole at the end.  Each\n"
    "finished trial is written there at once, with a checksum and the run's identity\n"
    "(a SHA-256 of every option that changes a trial): a killed run started again with\n"
    "the same arguments resumes without losing a finished trial and ends with the same\n"
    "numbers, bit for bit; other options are refused, naming them (--restart discards\n"
    "the unfinished run).  After the first trial the run says about how long it will\n"
    "take; progress goes to stderr when it is a terminal.  Defaults are the paper's\n"
    "(N = 256, width 5000, 250 trials); --quick runs in about two minutes on 2 cores.",
    fig1_opts, run_fig1};

/* ------------------------------------ fig1's trial for `ntkhess bench trial` */

struct nh_fig1_bench {
    fig1_cfg f;
    double *X, *T;
};

nh_fig1_bench *nh_fig1_bench_open(const nh_cmd *cmd, int argc, char **argv) {
    nh_fig1_bench *b = xmalloc(cmd, 1, sizeof *b);
    fig1_parse(&nh_cmd_fig1, argc, argv, &b->f);
    b->X = load_fig_data(cmd, b->f.data, b->f.n, b->f.seed, &b->f.d, &b->T);
    return b;
}

size_t nh_fig1_bench_nvalues(const nh_fig1_bench *b) { return b->f.nv; }

void nh_fig1_bench_info(const nh_fig1_bench *b, size_t *probes, int *f32, nh_act *act, size_t *d) {
    *probes = b->f.M, *f32 = b->f.f32, *act = b->f.acts[0], *d = b->f.d;
}

void nh_fig1_bench_trial(const nh_cmd *cmd, nh_fig1_bench *b, size_t r, double *trH, double *trI, double *hse,
                         nh_fig1_cost *cost) {
    fig1_trial(cmd, &b->f, b->f.acts[0], r, b->X, b->T, trH, trI, hse, cost);
}

double nh_fig1_bench_hv(const nh_cmd *cmd, nh_fig1_bench *b, int reps) {
    const fig1_cfg *f = &b->f;
    size_t w[4] = {f->d, f->width, f->width, 1};
    nh_net *net = make_net(cmd, 3, w, f->acts[0], f->beta, trial_seed(f->seed, f->acts[0], 0));
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create(net, b->X, b->T, f->n, NH_LOSS_MSE, &c));
    const size_t P = nh_net_nparams(net);
    double *v = xmalloc(cmd, 2 * P, sizeof *v), *t = xmalloc(cmd, (size_t)reps, sizeof *t);
    for (size_t p = 0; p < P; p++) v[p] = (double)(p % 7) - 3.0;
    NH_CHECK(cmd, nh_curv_hvp(c, v, v + P)); /* warm-up */
    for (int k = 0; k < reps; k++) {
        const double t0 = nh_cli_now();
        NH_CHECK(cmd, nh_curv_hvp(c, v, v + P));
        t[k] = nh_cli_now() - t0;
    }
    for (int i = 1; i < reps; i++) /* median: insertion sort of a few values */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) { double s = t[j]; t[j] = t[j - 1]; t[j - 1] = s; }
    const double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    free(v); free(t);
    nh_curv_free(c);
    nh_net_free(net);
    return med;
}

void nh_fig1_bench_close(nh_fig1_bench *b) {
    if (!b) return;
    free(b->X); free(b->T); free(b);
}

/* ------------------------------------------------------------------ fig2 */
static const nh_optspec fig2_opts[] = {
    FIG_OPT_QUICK("small run: the quick values below"),
    {"data", "NAME", "mnist", "mnist, sphere or disk"},
    {"n", "N", "256", "training points", "64"},
    {"width", "W", "1000", "hidden width", "300"},
    NH_OPT_ACT("nsoftplus"),
    {"beta", "B", "0.1", "bias scale"},
    {"k", "K", "20", "leading eigenvectors of I and of S"},
    {"lr", "ETA", "1", "learning rate for optional training first"},
    {"steps", "S", "0", "gradient-descent steps before measuring (0: at initialization)"},
    {"seed", "S", "0", "seed"},
    {"out", "DIR", NULL, "output directory (fig2.png, fig2.svg, fig2.csv, summary.json)"},
    FIG_OPT_THREADS,
    FIG_OPT_END};

typedef struct fig2_cfg {
    size_t n, width, K, d, P;
    nh_act act;
    double beta, lr;
    long long steps;
    uint64_t seed;
    int quick;
    const char *out, *data, *dir;
} fig2_cfg;

/* The Rayleigh quotients: rq[0], rq[1] = v^T I v, v^T S v on the leading
 * eigenvectors of I; rq[2], rq[3] on those of S (by |eigenvalue|). */
typedef struct fig2_res {
    double *rq[4], evI0, evS0, loss;
} fig2_res;

static void fig2_parse(const nh_cmd *cmd, int argc, char **argv, fig2_cfg *f) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    memset(f, 0, sizeof *f);
    f->quick = nh_arg_flag(&a, "quick");
    f->n = (size_t)nh_arg_int(&a, "n", 2, 1 << 20);
    f->width = (size_t)nh_arg_int(&a, "width", 1, 1 << 20);
    f->act = nh_arg_act(cmd, &a, NULL);
    f->beta = nh_arg_double(&a, "beta");
    f->lr = nh_arg_double(&a, "lr");
    f->K = (size_t)nh_arg_int(&a, "k", 1, 1 << 16);
    f->steps = nh_arg_int(&a, "steps", 0, 1 << 30);
    f->seed = nh_arg_u64(&a, "seed");
    f->out = nh_arg_req(&a, "out");
    f->data = nh_arg_req(&a, "data");
    if (!(f->lr > 0)) nh_die_usage(cmd, "--lr must be > 0");
}

/* Say up front about how long: one timed H v, and a GD step costing about
 * one product; each Lanczos run takes about 3 (K + 20) products (as
 * spectrum's estimate, measured on thick restarts at these sizes). */
static void fig2_estimate(const nh_cmd *cmd, nh_curv *c, size_t P, long long steps, size_t K) {
    double *v = xmalloc(cmd, P, sizeof *v), *hv = xmalloc(cmd, P, sizeof *hv);
    for (size_t p = 0; p < P; p++) v[p] = 0.0;
    v[0] = 1.0;
    double t0 = nh_cli_now();
    NH_CHECK(cmd, nh_curv_hvp(c, v, hv));
    nh_cli_estimate(cmd, "products and steps", nh_cli_now() - t0, steps + 6 * ((long long)K + 20));
    free(v); free(hv);
}

/* Train (optionally), then Lanczos on I (largest) and S (largest
 * magnitude) and the Rayleigh quotients of both families. */
static void fig2_compute(const nh_cmd *cmd, fig2_cfg *f, const double *X, const double *T, fig2_res *res) {
    size_t w[4] = {f->d, f->width, f->width, 1};
    nh_net *net = make_net(cmd, 3, w, f->act, f->beta, trial_seed(f->seed, f->act, 0));
    const size_t P = f->P = nh_net_nparams(net), K = f->K;
    if (K > P) nh_die_usage(cmd, "--k %zu exceeds the number of parameters P = %zu", K, P);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create(net, X, T, f->n, NH_LOSS_MSE, &c));
    fig2_estimate(cmd, c, P, f->steps, K);
    for (long long s = 0; s < f->steps; s++) NH_CHECK(cmd, nh_curv_gd_step(c, net, f->lr));
    double *V = xmalloc(cmd, K * P, sizeof *V), *ev = xmalloc(cmd, K, sizeof *ev);
    for (int q = 0; q < 4; q++) res->rq[q] = xmalloc(cmd, K, sizeof(double));
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.seed = f->seed;
    NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_I, K, &lo, ev, V, NULL, NULL));
    res->evI0 = ev[0];
    NH_CHECK(cmd, nh_curv_rayleigh(c, K, V, res->rq[0], res->rq[1]));
    lo.which = NH_WHICH_LM;
    NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_S, K, &lo, ev, V, NULL, NULL));
    res->evS0 = ev[0];
    NH_CHECK(cmd, nh_curv_rayleigh(c, K, V, res->rq[2], res->rq[3]));
    res->loss = nh_curv_loss(c);
    free(V); free(ev);
    nh_curv_free(c);
    nh_net_free(net);
}

/* summary.json (with how far apart the two families are) and fig2.csv. */
static void fig2_emit(const nh_cmd *cmd, const fig2_cfg *f, const fig2_res *s) {
    const size_t K = f->K;
    double *const *rq = s->rq;
    char *csv = xmalloc(cmd, 128 + K * 120, 1), *p = csv;
    p += sprintf(p, "index,eigvec_of_I__vIv,eigvec_of_I__vSv,eigvec_of_S__vIv,eigvec_of_S__vSv\n");
    for (size_t i = 0; i < K; i++)
        p += sprintf(p, "%zu,%.17g,%.17g,%.17g,%.17g\n", i + 1, rq[0][i], rq[1][i], rq[2][i], rq[3][i]);
    write_text(cmd, f->dir, "fig2.csv", csv);
    free(csv);
    double maxSonI = 0, maxIonS = 0, minIonI = INFINITY, minSonS = INFINITY;
    for (size_t i = 0; i < K; i++) {
        maxSonI = fmax(maxSonI, fabs(rq[1][i]));
        maxIonS = fmax(maxIonS, fabs(rq[2][i]));
        minIonI = fmin(minIonI, fabs(rq[0][i]));
        minSonS = fmin(minSonS, fabs(rq[3][i]));
    }
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "figure", "fig2");
    cJSON *par = cJSON_AddObjectToObject(js, "params");
    cJSON_AddBoolToObject(par, "quick", f->quick);
    cJSON_AddStringToObject(par, "data", f->data);
    cJSON_AddStringToObject(par, "act", nh_act_name(f->act));
    const char *pk[] = {"N", "width", "P", "k", "steps"};
    const double pv[] = {(double)f->n, (double)f->width, (double)f->P, (double)K, (double)f->steps};
    for (int j = 0; j < 5; j++) cJSON_AddNumberToObject(par, pk[j], pv[j]);
    cJSON_AddItemToObject(par, "loss", fnum(s->loss));
    const char *keys[4] = {"eigvec_of_I_vIv", "eigvec_of_I_vSv", "eigvec_of_S_vIv", "eigvec_of_S_vSv"};
    for (int q = 0; q < 4; q++) {
        cJSON *arr = cJSON_AddArrayToObject(js, keys[q]);
        for (size_t i = 0; i < K; i++) cJSON_AddItemToArray(arr, fnum(rq[q][i]));
    }
    cJSON_AddItemToObject(js, "top_eig_I", fnum(s->evI0));
    cJSON_AddItemToObject(js, "top_abs_eig_S", fnum(s->evS0));
    cJSON_AddItemToObject(js, "gap_I_over_S_on_I_vectors", fnum(minIonI / maxSonI));
    cJSON_AddItemToObject(js, "gap_S_over_I_on_S_vectors", fnum(minSonS / maxIonS));
    write_json(cmd, f->dir, "summary.json", js);
    cJSON_Delete(js);
}

/* Two panels, eigenvectors of I and of S; bars of v^T I v (blue) and v^T S v (orange). */
static void fig2_plot(const nh_cmd *cmd, const fig2_cfg *f, const fig2_res *r) {
    const size_t K = f->K;
    double *idx = xmalloc(cmd, K, sizeof *idx);
    for (size_t i = 0; i < K; i++) idx[i] = (double)(i + 1);
    nh_plot_series s[4] = {
        {K, idx, r->rq[0], NULL, NH_STYLE_BARS, NH_COLOR_BLUE, NH_MARKER_AUTO, "v#uT#d I v"},
        {K, idx, r->rq[1], NULL, NH_STYLE_BARS, NH_COLOR_ORANGE, NH_MARKER_AUTO, "v#uT#d S v"},
        {K, idx, r->rq[2], NULL, NH_STYLE_BARS, NH_COLOR_BLUE, NH_MARKER_AUTO, "v#uT#d I v"},
        {K, idx, r->rq[3], NULL, NH_STYLE_BARS, NH_COLOR_ORANGE, NH_MARKER_AUTO, "v#uT#d S v"}};
    nh_plot_panel pan[2] = {{0}, {0}};
    pan[0].title = "leading eigenvectors v of I";
    pan[1].title = "leading eigenvectors v of S (by |eigenvalue|)";
    for (int q = 0; q < 2; q++) {
        pan[q].xlabel = "eigenvector index";
        pan[q].ylabel = "Rayleigh quotient";
        pan[q].nseries = 2;
        pan[q].series = &s[2 * q];
        pan[q].legend = NH_LEGEND_AUTO;
    }
    char note[512], stem[4096];
    snprintf(note, sizeof note, "%s%s, N = %zu, L = 3, width %zu, %s, #gb = %g, %s", f->quick ? "quick mode: " : "",
             data_title(f->data), f->n, f->width, act_title(f->act), f->beta,
             f->steps ? "after training" : "at initialization");
    nh_plot_spec spec = {0};
    spec.path = nh_cli_path(stem, sizeof stem, f->dir, "fig2");
    spec.title = "Mutual orthogonality of I and S: Rayleigh quotients";
    spec.note = note;
    spec.npanels = 2;
    spec.panels = pan;
    NH_CHECK(cmd, nh_plot_xy(&spec, NULL));
    free(idx);
}

static int run_fig2(const nh_cmd *cmd, int argc, char **argv) {
    fig2_cfg f;
    fig2_parse(cmd, argc, argv, &f);
    check_plotting(cmd);
    double *T, *X = load_fig_data(cmd, f.data, f.n, f.seed, &f.d, &T);
    f.dir = fig_open(cmd, f.out, 0);
    fig2_res res;
    fig2_compute(cmd, &f, X, T, &res);
    fig2_emit(cmd, &f, &res);
    fig2_plot(cmd, &f, &res);
    nh_out_commit(cmd);
    fprintf(stderr, "ntkhess fig2: wrote %s/fig2.png, fig2.svg, fig2.csv, summary.json\n", f.out);
    for (int q = 0; q < 4; q++) free(res.rq[q]);
    free(X); free(T);
    return 0;
}

const nh_cmd nh_cmd_fig2 = {
    "fig2", "The paper's Figure 2: Rayleigh quotients of the leading eigenvectors of I and S.",
    "[--quick] [--data mnist|sphere] [--n N] [--width W] [--act NAME] [--k K] --out DIR",
    "For the K leading eigenvectors v of I (Lanczos, largest eigenvalues) and of S\n"
    "(largest |eigenvalue|), plots v^T I v and v^T S v (L = 3, MSE; by default the\n"
    "normalized smooth ReLU at initialization, as in the paper).  Writes fig2.png,\n"
    "fig2.svg, fig2.csv and summary.json (with the gap between the two families);\n"
    "the output folder appears complete or not at all and replaces DIR whole.",
    fig2_opts, run_fig2};

/* ------------------------------------------------------------------ fig3
 * Train to a minimum theta* (GD, then a Gauss-Newton polish to the
 * double-precision floor: nh_curv_gn_step, the minimum-norm correction in
 * the NTK metric, i.e. the point GD itself converges to in the lazy
 * regime), take the top eigenvectors u (y) and v (x) of I, and compare the
 * loss on the u, v plane with the second-order model
 *   q(a, b) = C* + a g.u + b g.v + (a^2 u'Hu + 2ab u'Hv + b^2 v'Hv) / 2
 * at two radii: the largest where q is within FIG3_HOLD of the loss rise
 * C - C*, the smallest where it is off by FIG3_FAIL or more. */
#define FIG3_HOLD 0.05
#define FIG3_FAIL 0.5
#define FIG3_FLOOR 1e-26    /* the polish stops below this loss (double-precision floor of outputs O(1)) */
#define FIG3_SCAN_LO (-16)  /* radii scanned: 10^(k/4) * 3/sqrt(lambda_x), k = LO..HI */
#define FIG3_SCAN_HI 8

static const nh_optspec fig3_opts[] = {
    FIG_OPT_QUICK("small run: the quick values below"),
    {"n", "N", "32", "points uniform on the unit disk"},
    {"width", "W", "1000", "hidden width n_1 = n_2 = n_3 (L = 4)", "150"},
    NH_OPT_ACTS("softplus,nsoftplus"),
    {"beta", "B", "0.1", "bias scale"},
    {"lr", "ETA", "1", "learning rate"},
    {"steps", "K", "3000", "maximum gradient-descent steps towards the minimum", "1500"},
    {"tol", "C", "1e-6", "stop gradient descent once the loss is below C"},
    {"polish", "K", "500", "then at most K Gauss-Newton tries towards the minimum (0: none)"},
    {"dirs", "I,J", "1,4", "eigenvectors of I (y axis, x axis), 1 = largest"},
    {"grid", "G", "41", "grid points per axis", "21"},
    {"radii", "R1,R2", "", "half-widths of the two grids (default: where the quadratic model holds and fails)"},
    {"seed", "S", "0", "seed"},
    {"out", "DIR", NULL, "output directory (fig3.png, fig3.svg, fig3_<act>_{hold,fail}.csv, summary.json)"},
    FIG_OPT_THREADS,
    FIG_OPT_END};

typedef struct fig3_cfg {
    size_t n, width, nact, dirs[2], G, K;
    nh_act acts[NH_MAXACT];
    double beta, lr, tol, radii[2];
    long long steps, polish;
    uint64_t seed;
    int quick;
    const char *out, *dir;
} fig3_cfg;

/* The second-order model at theta*: C*, g.u, g.v, u'Hu, u'Hv, v'Hv. */
typedef struct fig3_model { double c0, gu, gv, huu, huv, hvv; } fig3_model;

static double fig3_q(const fig3_model *m, double a, double b) {
    return m->c0 + a * m->gu + b * m->gv + 0.5 * (a * a * m->huu + 2 * a * b * m->huv + b * b * m->hvv);
}

/* One panel (one nonlinearity): training, the minimum, the model, the scan
 * and the two grids (L[0], L[1], each G x G). */
typedef struct fig3_panel {
    double loss0, loss_gd, grad_gd, loss, grad, dist_gd, dist_polish, mu;
    long long steps, psteps, ptries;
    double ly, lx, *ev, *ev_gd; /* top K eigenvalues of I at the minimum and after GD (before the polish) */
    fig3_model m;
    size_t nscan;
    double scan_r[FIG3_SCAN_HI - FIG3_SCAN_LO + 1], scan_e[FIG3_SCAN_HI - FIG3_SCAN_LO + 1];
    double r_hold, r_fail; /* from the scan; NaN when not reached */
    double R[2], emax[2], emed[2], *L[2];
} fig3_panel;

static void fig3_parse(const nh_cmd *cmd, int argc, char **argv, fig3_cfg *f) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    memset(f, 0, sizeof *f);
    f->quick = nh_arg_flag(&a, "quick");
    f->n = (size_t)nh_arg_int(&a, "n", 2, 1 << 20);
    f->width = (size_t)nh_arg_int(&a, "width", 1, 1 << 20);
    f->nact = parse_acts(cmd, nh_arg_req(&a, "acts"), f->acts);
    f->beta = nh_arg_double(&a, "beta");
    f->lr = nh_arg_double(&a, "lr");
    f->tol = nh_arg_double(&a, "tol");
    f->steps = nh_arg_int(&a, "steps", 0, 1 << 30);
    f->polish = nh_arg_int(&a, "polish", 0, 1 << 20);
    if (nh_arg_sizes(&a, "dirs", f->dirs, 2) != 2) nh_die_usage(cmd, "--dirs needs two indices I,J");
    f->G = (size_t)nh_arg_int(&a, "grid", 2, 4096);
    f->seed = nh_arg_u64(&a, "seed");
    f->out = nh_arg_req(&a, "out");
    if (!(f->lr > 0)) nh_die_usage(cmd, "--lr must be > 0");
    const char *rs = nh_arg_str(&a, "radii");
    if (rs && *rs) {
        double *r = NULL;
        if (nh_arg_doubles(&a, "radii", &r) != 2 || !(r[0] > 0) || !(r[1] > 0))
            nh_die_usage(cmd, "--radii needs two radii R1,R2 > 0");
        f->radii[0] = r[0], f->radii[1] = r[1];
        free(r);
    }
    f->K = f->dirs[0] > f->dirs[1] ? f->dirs[0] : f->dirs[1];
}

/* Gradient descent until the loss is below tol or the steps run out. */
static long long fig3_train(const nh_cmd *cmd, const fig3_cfg *f, nh_act act, nh_curv *c, nh_net *net) {
    long long s;
    const double t0 = nh_cli_now();
    for (s = 0; s < f->steps && nh_curv_loss(c) > f->tol; s++) {
        NH_CHECK(cmd, nh_curv_gd_step(c, net, f->lr));
        if (s == 20) /* the time of 20 steps estimates the worst case */
            nh_cli_estimate(cmd, "training steps at most", (nh_cli_now() - t0) / 21.0,
                            (long long)(f->steps - s) * (long long)f->nact);
        if (s % 50) continue;
        char what[64];
        snprintf(what, sizeof what, "fig3 %s: step", nh_act_name(act));
        nh_cli_progress(what, (size_t)s + 1, (size_t)f->steps, nh_cli_now() - t0);
    }
    return s;
}

static double dotp(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static double nrm2(const double *a, size_t n) { return sqrt(dotp(a, a, n)); }

static double fig3_gradnorm(const nh_cmd *cmd, nh_curv *c, double *g) {
    NH_CHECK(cmd, nh_curv_grad(c, g));
    return nrm2(g, nh_curv_dim(c));
}

static double fig3_dist(const double *a, const double *b, size_t P) {
    double s = 0;
    for (size_t p = 0; p < P; p++) s += (a[p] - b[p]) * (a[p] - b[p]);
    return sqrt(s);
}

/* Levenberg-Marquardt (Nielsen's rule): Gauss-Newton steps with damping mu
 * (relative to K's mean eigenvalue); after a step that lowered the loss, mu
 * shrinks by max(1/3, 1 - (2 rho - 1)^3), rho = actual / predicted decrease;
 * after one that would have raised it (theta kept), mu grows by nu, nu
 * doubling.  Until the loss is below FIG3_FLOOR, stalls at the rounding
 * floor, or the tries run out.  The loss never rises. */
static void fig3_polish(const nh_cmd *cmd, const fig3_cfg *f, nh_curv *c, nh_net *net, fig3_panel *pp) {
    double mu = 1e-6, nu = 2;
    for (pp->ptries = 0; pp->ptries < f->polish && nh_curv_loss(c) > FIG3_FLOOR && mu < 1e8; pp->ptries++) {
        nh_gn_info in;
        nh_status st = nh_curv_gn_step(c, net, mu, &in);
        if (st == NH_ENUMERIC) { mu = mu > 0 ? 10 * mu : 1e-12; continue; } /* K + mu I singular to rounding */
        NH_CHECK(cmd, st);
        if (!in.accepted) { mu *= nu, nu *= 2; continue; }
        pp->psteps++;
        const double rho = (in.loss0 - in.tried) / (in.loss0 - in.pred), t = 2 * rho - 1;
        mu *= fmax(1.0 / 3, 1 - t * t * t), nu = 2;
        if (in.loss > 0.5 * in.loss0 && in.loss < 1e-16) break; /* no longer quadratic: the rounding floor */
    }
    pp->mu = mu;
}

/* GD, then the polish; the losses, gradient norms and distances moved. */
static void fig3_minimize(const nh_cmd *cmd, const fig3_cfg *f, nh_act act, nh_curv *c, nh_net *net,
                          fig3_panel *pp) {
    const size_t P = nh_net_nparams(net);
    double *th0 = xmalloc(cmd, 3 * P, sizeof *th0), *thg = th0 + P, *g = thg + P;
    memcpy(th0, nh_net_params(net), P * sizeof *th0);
    pp->loss0 = nh_curv_loss(c);
    pp->steps = fig3_train(cmd, f, act, c, net);
    pp->loss_gd = nh_curv_loss(c);
    pp->grad_gd = fig3_gradnorm(cmd, c, g);
    memcpy(thg, nh_net_params(net), P * sizeof *thg);
    pp->dist_gd = fig3_dist(thg, th0, P);
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.seed = f->seed;
    pp->ev_gd = xmalloc(cmd, f->K, sizeof *pp->ev_gd);
    NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_I, f->K, &lo, pp->ev_gd, NULL, NULL, NULL));
    fig3_polish(cmd, f, c, net, pp);
    pp->loss = nh_curv_loss(c);
    pp->grad = fig3_gradnorm(cmd, c, g);
    pp->dist_polish = fig3_dist(nh_net_params(net), thg, P);
    free(th0);
}

/* The model's coefficients at theta* (2 H v products and the gradient). */
static void fig3_fit_model(const nh_cmd *cmd, nh_curv *c, const double *u, const double *v, fig3_model *m) {
    const size_t P = nh_curv_dim(c);
    double *g = xmalloc(cmd, 3 * P, sizeof *g), *hu = g + P, *hv = hu + P;
    NH_CHECK(cmd, nh_curv_grad(c, g));
    NH_CHECK(cmd, nh_curv_hvp(c, u, hu));
    NH_CHECK(cmd, nh_curv_hvp(c, v, hv));
    *m = (fig3_model){nh_curv_loss(c), dotp(g, u, P), dotp(g, v, P), dotp(u, hu, P),
                      0.5 * (dotp(u, hv, P) + dotp(v, hu, P)), dotp(v, hv, P)};
    free(g);
}

static int fig3_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* |C - q| / (C - C*) on the G x G grid L of half-width R, centre excluded
 * (no rise there); a point with no finite rise counts as infinite error. */
static void fig3_model_err(const nh_cmd *cmd, const fig3_model *m, const double *L, size_t G, double R,
                           double *emax, double *emed) {
    double *e = xmalloc(cmd, G * G, sizeof *e);
    size_t k = 0;
    const double den = G > 1 ? (double)(G - 1) : 1.0;
    for (size_t i = 0; i < G; i++)
        for (size_t j = 0; j < G; j++) {
            const double a = R * (2.0 * (double)i - (double)(G - 1)) / den;
            const double b = R * (2.0 * (double)j - (double)(G - 1)) / den;
            if (a == 0 && b == 0) continue;
            const double rise = L[i * G + j] - m->c0;
            e[k++] = rise > 0 && isfinite(rise) ? fabs(L[i * G + j] - fig3_q(m, a, b)) / rise : INFINITY;
        }
    qsort(e, k, sizeof *e, fig3_cmp);
    *emax = k ? e[k - 1] : 0;
    *emed = k ? (k % 2 ? e[k / 2] : 0.5 * (e[k / 2 - 1] + e[k / 2])) : 0;
    free(e);
}

/* Radii 10^(k/4) 3/sqrt(lambda_x): the model's largest error at the 8
 * points (+-R, 0, +-R)^2 (one 3 x 3 slice each), until it reaches
 * FIG3_FAIL.  r_hold: the last radius before the error first exceeds
 * FIG3_HOLD; r_fail: the first with error >= FIG3_FAIL (NaN if none). */
static void fig3_scan(const nh_cmd *cmd, nh_curv *c, nh_net *net, const double *u, const double *v,
                      fig3_panel *pp) {
    const double R0 = 3.0 / sqrt(pp->lx > 0 ? pp->lx : 1e-300);
    double L9[9], emed;
    int held = 1;
    pp->r_hold = pp->r_fail = NAN;
    pp->nscan = 0;
    for (int k = FIG3_SCAN_LO; k <= FIG3_SCAN_HI; k++) {
        const double R = R0 * pow(10.0, k / 4.0);
        NH_CHECK(cmd, nh_curv_slice(c, net, u, v, R, 3, L9));
        double e;
        fig3_model_err(cmd, &pp->m, L9, 3, R, &e, &emed);
        pp->scan_r[pp->nscan] = R, pp->scan_e[pp->nscan++] = e;
        held &= e <= FIG3_HOLD;
        if (held) pp->r_hold = R;
        if (e >= FIG3_FAIL) { pp->r_fail = R; break; }
    }
}

/* Nonlinearity act: the minimum, the eigenvectors dirs of I, the model, the
 * radii and the two grids (L[g][i*G + j]: row i = y direction, column j = x). */
static void fig3_compute(const nh_cmd *cmd, const fig3_cfg *f, nh_act act, const double *X, const double *T,
                         fig3_panel *pp) {
    size_t w[5] = {2, f->width, f->width, f->width, 1};
    nh_net *net = make_net(cmd, 4, w, act, f->beta, trial_seed(f->seed, act, 0));
    const size_t P = nh_net_nparams(net), K = f->K;
    if (K > P) nh_die_usage(cmd, "--dirs index %zu exceeds the number of parameters P = %zu", K, P);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create(net, X, T, f->n, NH_LOSS_MSE, &c));
    fig3_minimize(cmd, f, act, c, net, pp);
    double *V = xmalloc(cmd, K * P, sizeof *V);
    pp->ev = xmalloc(cmd, K, sizeof *pp->ev);
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.seed = f->seed;
    NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_I, K, &lo, pp->ev, V, NULL, NULL));
    pp->ly = pp->ev[f->dirs[0] - 1], pp->lx = pp->ev[f->dirs[1] - 1];
    const double *u = V + (f->dirs[0] - 1) * P, *v = V + (f->dirs[1] - 1) * P;
    fig3_fit_model(cmd, c, u, v, &pp->m);
    fig3_scan(cmd, c, net, u, v, pp);
    const double auto_r[2] = {isnan(pp->r_hold) ? pp->scan_r[0] : pp->r_hold,
                              isnan(pp->r_fail) ? pp->scan_r[pp->nscan - 1] : pp->r_fail};
    for (int g = 0; g < 2; g++) {
        pp->R[g] = f->radii[g] > 0 ? f->radii[g] : auto_r[g];
        /* slice: out[i*G + j] = C(theta + a_i u + b_j v), u = e_y (rows), v = e_x
         * (columns), which is the plot's z[j*nx + i] layout with rows = y.  The
         * scan saw 8 points per radius: should the whole hold grid exceed
         * FIG3_HOLD, its radius steps down the scan's ladder (at most 8 times). */
        for (int shrink = 0;; shrink++) {
            NH_CHECK(cmd, nh_curv_slice(c, net, u, v, pp->R[g], f->G, pp->L[g]));
            fig3_model_err(cmd, &pp->m, pp->L[g], f->G, pp->R[g], &pp->emax[g], &pp->emed[g]);
            if (g == 1 || f->radii[g] > 0 || pp->emax[g] <= FIG3_HOLD || shrink == 8) break;
            pp->R[g] /= pow(10.0, 0.25);
        }
    }
    free(V);
    nh_curv_free(c);
    nh_net_free(net);
}

static const char *const fig3_grid_name[2] = {"hold", "fail"};

/* fig3_<act>_<grid>.csv: a, b, the loss, the model and its relative error. */
static void fig3_write_csv(const nh_cmd *cmd, const fig3_cfg *f, nh_act act, const fig3_panel *pp, int g) {
    const size_t G = f->G;
    const double R = pp->R[g], den = G > 1 ? (double)(G - 1) : 1.0;
    char name[96];
    snprintf(name, sizeof name, "fig3_%s_%s.csv", nh_act_name(act), fig3_grid_name[g]);
    char *csv = xmalloc(cmd, 128 + G * G * 128, 1), *p = csv;
    p += sprintf(p, "a_dir%zu,b_dir%zu,loss,model,rel_err\n", f->dirs[0], f->dirs[1]);
    for (size_t i = 0; i < G; i++)
        for (size_t j = 0; j < G; j++) {
            const double a = R * (2.0 * (double)i - (double)(G - 1)) / den;
            const double b = R * (2.0 * (double)j - (double)(G - 1)) / den;
            const double C = pp->L[g][i * G + j], q = fig3_q(&pp->m, a, b), rise = C - pp->m.c0;
            p += sprintf(p, "%.17g,%.17g,%.17g,%.17g,%.6g\n", a, b, C, q,
                         a == 0 && b == 0 ? 0.0 : rise > 0 ? fabs(C - q) / rise : INFINITY);
        }
    write_text(cmd, f->dir, name, csv);
    free(csv);
}

static void fig3_add_nums(cJSON *o, const char *const *k, const double *v, int n) {
    for (int j = 0; j < n; j++) cJSON_AddItemToObject(o, k[j], fnum(v[j]));
}

/* The panel's summary object: training, the minimum, I's spectrum, the model, the scan and the grids. */
static cJSON *fig3_emit_panel(const nh_cmd *cmd, const fig3_cfg *f, nh_act act, const fig3_panel *pp) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "act", nh_act_name(act));
    const char *k1[] = {"loss_init", "loss_min", "grad_norm"};
    fig3_add_nums(o, k1, (double[]){pp->loss0, pp->loss, pp->grad}, 3);
    cJSON_AddNumberToObject(o, "steps", (double)pp->steps);
    cJSON *gd = cJSON_AddObjectToObject(o, "gd");
    const char *k2[] = {"loss", "grad_norm", "distance"};
    cJSON_AddNumberToObject(gd, "steps", (double)pp->steps);
    fig3_add_nums(gd, k2, (double[]){pp->loss_gd, pp->grad_gd, pp->dist_gd}, 3);
    cJSON *po = cJSON_AddObjectToObject(o, "polish");
    cJSON_AddNumberToObject(po, "steps", (double)pp->psteps);
    cJSON_AddNumberToObject(po, "tries", (double)pp->ptries);
    const char *k3[] = {"loss", "grad_norm", "distance", "distance_over_r_hold", "mu_final"};
    fig3_add_nums(po, k3, (double[]){pp->loss, pp->grad, pp->dist_polish, pp->dist_polish / pp->R[0], pp->mu}, 5);
    cJSON *evs = cJSON_AddArrayToObject(o, "eigenvalues_I");
    for (size_t k = 0; k < f->K; k++) cJSON_AddItemToArray(evs, fnum(pp->ev[k]));
    const char *k4[] = {"lambda_y", "lambda_x", "narrowness"};
    fig3_add_nums(o, k4, (double[]){pp->ly, pp->lx, pp->ly / pp->lx}, 3);
    evs = cJSON_AddArrayToObject(gd, "eigenvalues_I");
    for (size_t k = 0; k < f->K; k++) cJSON_AddItemToArray(evs, fnum(pp->ev_gd[k]));
    cJSON_AddItemToObject(gd, "narrowness", fnum(pp->ev_gd[f->dirs[0] - 1] / pp->ev_gd[f->dirs[1] - 1]));
    cJSON *m = cJSON_AddObjectToObject(o, "model");
    const char *k5[] = {"C_min", "g_u", "g_v", "uHu", "uHv", "vHv"};
    fig3_add_nums(m, k5, (double[]){pp->m.c0, pp->m.gu, pp->m.gv, pp->m.huu, pp->m.huv, pp->m.hvv}, 6);
    cJSON *sc = cJSON_AddArrayToObject(o, "scan");
    for (size_t k = 0; k < pp->nscan; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "radius", fnum(pp->scan_r[k]));
        cJSON_AddItemToObject(e, "max_rel_err", fnum(pp->scan_e[k]));
        cJSON_AddItemToArray(sc, e);
    }
    const char *k6[] = {"r_hold", "r_fail"};
    fig3_add_nums(o, k6, (double[]){pp->r_hold, pp->r_fail}, 2);
    cJSON *gr = cJSON_AddArrayToObject(o, "grids");
    for (int g = 0; g < 2; g++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", fig3_grid_name[g]);
        const char *k7[] = {"radius", "max_rel_err", "median_rel_err"};
        fig3_add_nums(e, k7, (double[]){pp->R[g], pp->emax[g], pp->emed[g]}, 3);
        cJSON_AddItemToArray(gr, e);
        fig3_write_csv(cmd, f, act, pp, g);
    }
    return o;
}

static cJSON *fig3_summary(const fig3_cfg *f) {
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "figure", "fig3");
    cJSON *par = cJSON_AddObjectToObject(js, "params");
    cJSON_AddBoolToObject(par, "quick", f->quick);
    const char *pk[] = {"N", "depth", "width", "grid", "dir_y", "dir_x", "lr", "steps", "tol", "polish",
                        "hold_threshold", "fail_threshold"};
    const double pv[] = {(double)f->n, 4, (double)f->width, (double)f->G, (double)f->dirs[0], (double)f->dirs[1],
                         f->lr, (double)f->steps, f->tol, (double)f->polish, FIG3_HOLD, FIG3_FAIL};
    for (int j = 0; j < 12; j++) cJSON_AddItemToObject(par, pk[j], fnum(pv[j]));
    cJSON_AddBoolToObject(par, "radii_given", f->radii[0] > 0);
    cJSON_AddArrayToObject(js, "panels");
    return js;
}

static void fig3_plot(const nh_cmd *cmd, const fig3_cfg *f, size_t npan, nh_surface_panel *pan) {
    char note[512], xl[64], yl[64], stem[4096];
    snprintf(note, sizeof note, "%sunit disk, N = %zu, L = 4, widths %zu, MSE, #gb = %g; trained to a minimum "
             "(GD, then Gauss-Newton); per nonlinearity: the radius where the quadratic model holds (error <= %g%%) "
             "and one where it fails (>= %g%%)", f->quick ? "quick mode: " : "", f->n, f->width, f->beta,
             100 * FIG3_HOLD, 100 * FIG3_FAIL);
    snprintf(xl, sizeof xl, "along eigenvector %zu of I", f->dirs[1]);
    snprintf(yl, sizeof yl, "along eigenvector %zu of I", f->dirs[0]);
    nh_surface_spec spec = {0};
    spec.path = nh_cli_path(stem, sizeof stem, f->dir, "fig3");
    spec.title = "Loss surface around a global minimum";
    spec.note = note;
    spec.xlabel = xl;
    spec.ylabel = yl;
    spec.zlabel = "loss rise C - C*";
    spec.width = 720 * (int)npan;
    spec.npanels = npan;
    spec.panels = pan;
    spec.logz = 1;
    NH_CHECK(cmd, nh_plot_surface(&spec, NULL));
}

/* The two panels of nonlinearity act (grids hold and fail), titles in t[2];
 * z = the loss rise C - C* (in place of L: the CSVs are written already),
 * so the log colour scale spans the surface rather than C*'s rounding
 * floor; the centre (rise 0) is left out (grey). */
static void fig3_panels(const fig3_cfg *f, nh_act act, fig3_panel *pp, char (*t)[160], nh_surface_panel *pan) {
    for (int g = 0; g < 2; g++) {
        for (size_t k = 0; k < f->G * f->G; k++) pp->L[g][k] -= pp->m.c0;
        snprintf(t[g], sizeof t[g], "%s, #gl#d%zu#u/#gl#d%zu#u = %.3g: model error %.2g%%", act_title(act),
                 f->dirs[0], f->dirs[1], pp->ly / pp->lx, 100 * pp->emax[g]);
        pan[g] = (nh_surface_panel){.nx = f->G, .ny = f->G, .z = pp->L[g], .xmin = -pp->R[g], .xmax = pp->R[g],
                                    .ymin = -pp->R[g], .ymax = pp->R[g], .title = t[g], .mark = 1};
    }
}

static int run_fig3(const nh_cmd *cmd, int argc, char **argv) {
    fig3_cfg f;
    fig3_parse(cmd, argc, argv, &f);
    check_plotting(cmd);
    const size_t G = f.G, npan = 2 * f.nact;
    double *X = xmalloc(cmd, f.n * 2, sizeof *X), *T = xmalloc(cmd, f.n, sizeof *T);
    NH_CHECK(cmd, nh_data_synth(NH_DATA_DISK, f.n, 2, NH_LOSS_MSE, 0, f.seed, X, T));
    f.dir = fig_open(cmd, f.out, 0);
    double *Z = xmalloc(cmd, npan * G * G, sizeof *Z);
    nh_surface_panel *pan = xmalloc(cmd, npan, sizeof *pan);
    char (*titles)[160] = xmalloc(cmd, npan, sizeof *titles);
    cJSON *js = fig3_summary(&f);
    for (size_t ai = 0; ai < f.nact; ai++) {
        fig3_panel pp;
        memset(&pp, 0, sizeof pp);
        pp.L[0] = Z + 2 * ai * G * G, pp.L[1] = pp.L[0] + G * G;
        fig3_compute(cmd, &f, f.acts[ai], X, T, &pp);
        cJSON_AddItemToArray(cJSON_GetObjectItem(js, "panels"), fig3_emit_panel(cmd, &f, f.acts[ai], &pp));
        fig3_panels(&f, f.acts[ai], &pp, titles + 2 * ai, pan + 2 * ai);
        free(pp.ev);
        free(pp.ev_gd);
    }
    write_json(cmd, f.dir, "summary.json", js);
    cJSON_Delete(js);
    fig3_plot(cmd, &f, npan, pan);
    nh_out_commit(cmd);
    fprintf(stderr, "ntkhess fig3: wrote %s/fig3.png, fig3.svg, summary.json\n", f.out);
    free(Z); free(pan); free(titles); free(X); free(T);
    return 0;
}

const nh_cmd nh_cmd_fig3 = {
    "fig3", "The paper's Figure 3: the loss surface along eigenvectors 1 and 4 of I.",
    "[--quick] [--n N] [--width W] [--acts LIST] [--dirs I,J] [--grid G] [--polish K] [--radii R1,R2] --out DIR",
    "Networks of depth L = 4 (widths 2,W,W,W,1) are trained on points uniform on\n"
    "the unit disk to a global minimum: gradient descent (until the loss is below\n"
    "--tol or --steps run out), then at most --polish Levenberg-Marquardt\n"
    "Gauss-Newton tries (the minimum-norm correction in the NTK metric: the limit\n"
    "of GD on the linearized network) down to the double-precision floor; the\n"
    "summary reports the loss, gradient norm and distance moved of each stage.\n"
    "At the minimum the loss is evaluated on grids along eigenvectors I (y axis)\n"
    "and J (x axis) of I and compared with its second-order model (gradient and\n"
    "Hessian at the minimum).\n"
    "Two grids per nonlinearity: the largest radius where the model is within 5%\n"
    "of the loss rise everywhere and the smallest where it is off by 50% (scanned\n"
    "along the axes and diagonals; --radii overrides).  Panels: smooth ReLU against\n"
    "normalized smooth ReLU (the narrow valley of the first, its reduction by\n"
    "normalization); titles give lambda_I / lambda_J and the model's error.  The\n"
    "output folder appears complete or not at all (a diverging run leaves\n"
    "nothing) and replaces DIR whole.",
    fig3_opts, run_fig3};
