/* cmd_fig.c -- ntkhess fig1, fig2, fig3: the paper's three figures, theory
 * against experiment, as PNG + SVG plots with the data behind them (CSV) and
 * summary.json.  fig1's trial loop writes each finished trial at once and
 * resumes after a kill; trials are independent (seed, act, trial index), so
 * they can be split across processes. */
#include "cli.h"
#include "par.h"

#include <cjson/cJSON.h>
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

static const char *act_title(nh_act a) { return nh_act_title(a); }

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

/* Inputs and real targets: 14x14 MNIST (the paper's data), the sphere, or
 * the unit disk.  X: n x d (malloc'ed), T: n. */
static double *load_fig_data(const nh_cmd *cmd, const char *kind, size_t n, uint64_t seed, size_t *d, double **T) {
    double *X;
    if (!strcmp(kind, "mnist")) {
        char dir[4096], probe[4200];
        snprintf(dir, sizeof dir, "%s/mnist/digits", nh_data_dir());
        snprintf(probe, sizeof probe, "%s/0.json", dir);
        if (access(probe, R_OK) != 0)
            nh_die(cmd, "MNIST not found in %s/mnist (run scripts/fetch_data.sh, or use --data sphere)", nh_data_dir());
        nh_images im;
        NH_CHECK(cmd, nh_mnist_load(dir, &im));
        if (n > im.n) nh_die(cmd, "--n %zu exceeds the %zu MNIST digits available", n, im.n);
        *d = 14 * 14;
        X = malloc(n * *d * sizeof *X);
        *T = malloc(n * sizeof **T);
        if (!X || !*T) nh_die(cmd, "out of memory");
        NH_CHECK(cmd, nh_images_prepare(&im, n, 14, seed, NH_LOSS_MSE, X, *T, NULL));
        nh_images_free(&im);
    } else if (!strcmp(kind, "sphere") || !strcmp(kind, "disk")) {
        *d = !strcmp(kind, "disk") ? 2 : 196;
        X = malloc(n * *d * sizeof *X);
        *T = malloc(n * sizeof **T);
        if (!X || !*T) nh_die(cmd, "out of memory");
        NH_CHECK(cmd, nh_data_synth(!strcmp(kind, "disk") ? NH_DATA_DISK : NH_DATA_SPHERE, n, *d, NH_LOSS_MSE, 0,
                                    seed, X, *T));
    } else {
        nh_die_usage(cmd, "--data must be mnist, sphere or disk, got '%s'", kind);
    }
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

/* ------------------------------------------------------------------ fig1 */
static const nh_optspec fig1_opts[] = {
    {"quick", NULL, NULL, "small run, about a minute on 2 cores: N = 64, width 600, 24 trials"},
    {"data", "NAME", "mnist", "mnist (14x14 digits, the paper's data), sphere or disk"},
    {"n", "N", "256", "training points (quick: 64)"},
    {"width", "W", "5000", "hidden width n_1 = n_2 (quick: 600)"},
    {"trials", "R", "250", "independent networks per nonlinearity (quick: 24)"},
    NH_OPT_ACTS("softplus,nsoftplus"),
    {"beta", "B", "0.1", "bias scale"},
    {"lr", "ETA", "0.25", "learning rate; t = step * eta"},
    {"steps", "K", "64", "gradient-descent steps"},
    {"every", "E", "4", "record every E steps"},
    {"probes", "M", "4", "probes per record for the remainder Tr(H^k) - Tr(I^k)"},
    {"seed", "S", "0", "seed of the data selection, the networks and the probes"},
    {"out", "DIR", NULL, "output directory (fig1.png, fig1.svg, fig1.csv, summary.json, trials_*.csv)"},
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

typedef struct fig1_cfg {
    size_t n, width, trials, depth, nrec, M;
    long long steps, every;
    double lr, beta;
    uint64_t seed;
} fig1_cfg;

/* One trial: train a fresh network and record Tr(H^k) (control variates:
 * exact Tr(I^k) + estimated remainder) and the exact Tr(I^k) at each record. */
static void fig1_trial(const nh_cmd *cmd, const fig1_cfg *f, nh_act act, size_t r, const double *X, const double *T,
                       size_t d, double *trH, double *trI) {
    size_t w[4] = {d, f->width, f->width, 1};
    nh_net *net = make_net(cmd, 3, w, act, f->beta, trial_seed(f->seed, act, r));
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create(net, X, T, f->n, NH_LOSS_MSE, &c));
    nh_trace_opts to = nh_trace_opts_default();
    to.nprobes = f->M;
    to.control = 1;
    to.seed = trial_seed(f->seed ^ 0x5bd1e995ULL, act, r);
    size_t rec = 0;
    for (long long k = 0; k <= f->steps; k++) {
        if (k > 0) {
            nh_status st = nh_curv_gd_step(c, net, f->lr);
            if (st != NH_OK)
                nh_die(cmd, "trial %zu (%s) %s at step %lld: %s; lower --lr", r, nh_act_name(act), nh_strerror(st), k,
                       nh_last_error());
        }
        if (k % f->every == 0) {
            nh_trace_result th, ti;
            NH_CHECK(cmd, nh_curv_trace(c, NH_OP_H, 4, &to, &th));
            NH_CHECK(cmd, nh_curv_trace(c, NH_OP_I, 4, &to, &ti));
            for (int q = 0; q < 4; q++) {
                trH[rec * 4 + (size_t)q] = th.est[q];
                trI[rec * 4 + (size_t)q] = ti.est[q];
            }
            rec++;
        }
    }
    nh_curv_free(c);
    nh_net_free(net);
}

/* trials_<act>.csv: a header naming the run, then one line per finished
 * trial: index, then nrec x 4 values of Tr(H^k), then of Tr(I^k).  Returns
 * the number of complete, matching lines loaded (done[r] set). */
static size_t fig1_load_trials(const char *path, const char *header, const fig1_cfg *f, double *H, double *I,
                               int *done) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    size_t cap = 1 << 20, got = 0;
    char *line = malloc(cap);
    if (!line) { fclose(fp); return 0; }
    if (!fgets(line, (int)cap, fp) || strcmp(line, header) != 0) { free(line); fclose(fp); return (size_t)-1; }
    const size_t nv = f->nrec * 4;
    double *row = malloc(2 * nv * sizeof *row);
    if (!row) { free(line); fclose(fp); return 0; }
    while (fgets(line, (int)cap, fp)) {
        size_t len = strlen(line);
        if (!len || line[len - 1] != '\n') break; /* torn last line from a kill */
        char *p = line, *end;
        long long r = strtoll(p, &end, 10);
        if (end == p || r < 0 || (size_t)r >= f->trials) continue;
        p = end;
        if (done[r]) continue; /* the first complete line of a trial wins */
        /* Parse into a scratch row; copy only a complete, finite line, so a
         * torn or duplicate line never overwrites a finished trial (found by
         * fuzz_fig1_trials). */
        size_t k;
        for (k = 0; k < 2 * nv; k++) {
            if (*p != ',') break;
            double v = strtod(p + 1, &end);
            if (end == p + 1 || !isfinite(v)) break;
            row[k] = v;
            p = end;
        }
        if (k == 2 * nv && *p == '\n') {
            memcpy(H + (size_t)r * nv, row, nv * sizeof *row);
            memcpy(I + (size_t)r * nv, row + nv, nv * sizeof *row);
            done[r] = 1;
            got++;
        }
    }
    free(row);
    free(line);
    fclose(fp);
    return got;
}

static int run_fig1(const nh_cmd *cmd, int argc, char **argv) {
    /* MPI (when built with it): trials spread over the ranks, rank 0 writes. */
    nh_par_init(&argc, &argv);
    const int root = nh_par_is_root();
    const size_t nranks = (size_t)nh_par_size(), me = (size_t)nh_par_rank();
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    const int quick = nh_arg_flag(&a, "quick");
    fig1_cfg f;
    memset(&f, 0, sizeof f);
    f.n = (size_t)(quick && !a.given[2] ? 64 : nh_arg_int(&a, "n", 2, 1 << 20));
    f.width = (size_t)(quick && !a.given[3] ? 600 : nh_arg_int(&a, "width", 1, 1 << 20));
    f.trials = (size_t)(quick && !a.given[4] ? 24 : nh_arg_int(&a, "trials", 2, 1 << 24));
    f.steps = nh_arg_int(&a, "steps", 0, 1 << 30);
    f.every = nh_arg_int(&a, "every", 1, 1 << 30);
    f.M = (size_t)nh_arg_int(&a, "probes", 1, 1 << 20);
    f.lr = nh_arg_double(&a, "lr");
    if (!(f.lr > 0)) nh_die_usage(cmd, "--lr must be > 0");
    f.beta = nh_arg_double(&a, "beta");
    f.seed = nh_arg_u64(&a, "seed");
    f.depth = 3;
    f.nrec = (size_t)(f.steps / f.every) + 1;
    nh_act acts[NH_MAXACT];
    size_t nact = parse_acts(cmd, nh_arg_req(&a, "acts"), acts);
    const char *out = nh_arg_req(&a, "out");
    const char *dataname = nh_arg_req(&a, "data");
    if (nh_plot_available() != NH_OK) nh_die(cmd, "%s (install plplot-driver-cairo)", nh_last_error());
    size_t d;
    double *T, *X = load_fig_data(cmd, dataname, f.n, f.seed, &d, &T);
    if (root) nh_cli_mkdir(cmd, out);
    double *tt = malloc(f.nrec * sizeof *tt);
    if (!tt) nh_die(cmd, "out of memory");
    for (size_t i = 0; i < f.nrec; i++) tt[i] = (double)((long long)i * f.every) * f.lr;

    const size_t nv = f.nrec * 4;
    double *theoryH = calloc(nact * nv, sizeof *theoryH), *theoryI = calloc(nact * nv, sizeof *theoryI);
    double *theoryS = calloc(nact * nv, sizeof *theoryS);
    if (!theoryS) nh_die(cmd, "out of memory");
    double *meanH = calloc(nact * nv, sizeof *meanH), *seH = calloc(nact * nv, sizeof *seH);
    double *meanI = calloc(nact * nv, sizeof *meanI), *seI = calloc(nact * nv, sizeof *seI);
    if (!theoryH || !theoryI || !meanH || !seH || !meanI || !seI) nh_die(cmd, "out of memory");
    double t_start = nh_cli_now();
    for (size_t ai = 0; ai < nact; ai++) {
        /* Theory: Corollary 1 in expectation over the initialization. */
        nh_kernel_opts ko = nh_kernel_opts_default();
        ko.act = acts[ai];
        ko.depth = f.depth;
        ko.beta = f.beta;
        double *mats[NH_K_COUNT] = {0};
        const int need[] = {NH_K_SIGMA, NH_K_THETA, NH_K_UPSILON, NH_K_PHI, NH_K_XI, NH_K_LAMBDA};
        for (int q = 0; q < 6; q++)
            if (!(mats[need[q]] = malloc(f.n * f.n * sizeof(double)))) nh_die(cmd, "out of memory");
        NH_CHECK(cmd, nh_kernels_gram(&ko, f.n, d, X, mats));
        nh_grams g = {f.n, mats[NH_K_THETA], mats[NH_K_LAMBDA], mats[NH_K_UPSILON], mats[NH_K_PHI], mats[NH_K_XI],
                      mats[NH_K_SIGMA]};
        nh_moments *mom = malloc(f.nrec * sizeof *mom);
        if (!mom) nh_die(cmd, "out of memory");
        nh_predict_opts po = nh_predict_opts_default();
        NH_CHECK(cmd, nh_predict_mse_expect(&g, 1, T, f.nrec, tt, &po, mom, NULL));
        for (size_t i = 0; i < f.nrec; i++)
            for (int q = 0; q < 4; q++) {
                theoryH[ai * nv + i * 4 + (size_t)q] = mom[i].tr_h[q];
                theoryI[ai * nv + i * 4 + (size_t)q] = mom[i].tr_i[q];
                theoryS[ai * nv + i * 4 + (size_t)q] = mom[i].tr_s[q];
            }
        free(mom);
        for (int q = 0; q < NH_K_COUNT; q++) free(mats[q]);

        /* Trials, resumable. */
        char path[4096], name[64], header[512];
        snprintf(name, sizeof name, "trials_%s.csv", nh_act_name(acts[ai]));
        nh_cli_path(path, sizeof path, out, name);
        snprintf(header, sizeof header,
                 "# ntkhess fig1 trials: act=%s data=%s n=%zu width=%zu beta=%.17g lr=%.17g steps=%lld every=%lld "
                 "probes=%zu seed=%llu\n",
                 nh_act_name(acts[ai]), dataname, f.n, f.width, f.beta, f.lr, f.steps, f.every, f.M,
                 (unsigned long long)f.seed);
        double *H = malloc(f.trials * nv * sizeof *H), *I = malloc(f.trials * nv * sizeof *I);
        int *done = calloc(f.trials, sizeof *done);
        if (!H || !I || !done) nh_die(cmd, "out of memory for %zu trials", f.trials);
        /* Rank 0 reads the finished trials and tells the others which. */
        size_t have = 0;
        FILE *fp = NULL;
        if (root) {
            have = fig1_load_trials(path, header, &f, H, I, done);
            if (have == (size_t)-1) {
                nh_die(cmd, "%s belongs to a run with other parameters; remove it or choose another --out", path);
            } else if (have == 0 && access(path, F_OK) != 0) {
                fp = fopen(path, "w");
                if (fp) fputs(header, fp);
            } else {
                fp = fopen(path, "a");
                /* End a torn last line (a kill mid-write) so that the next
                 * row starts a line of its own: the fragment stays ignored. */
                FILE *tail = fopen(path, "rb");
                if (fp && tail && fseek(tail, -1, SEEK_END) == 0 && fgetc(tail) != '\n') fputc('\n', fp);
                if (tail) fclose(tail);
                if (have)
                    fprintf(stderr, "ntkhess fig1: %s: resuming with %zu finished trials\n", nh_act_name(acts[ai]), have);
            }
            if (!fp) nh_die(cmd, "cannot write %s", path);
        }
        nh_par_bcast(done, f.trials * sizeof *done);
        /* The unfinished trials in order; in each round the k-th of R goes to
         * rank k (a fresh run: trial r on rank r mod R).  A trial's numbers
         * depend only on (seed, act, r), never on the rank that computes it.
         * Rank 0 gathers each round and appends it in trial order. */
        size_t ntodo = 0, *todo = malloc(f.trials * sizeof *todo);
        const size_t rlen = 1 + 2 * nv;
        double *sbuf = malloc(rlen * sizeof *sbuf), *rbuf = root ? malloc(nranks * rlen * sizeof *rbuf) : NULL;
        if (!todo || !sbuf || (root && !rbuf)) nh_die(cmd, "out of memory for %zu trials", f.trials);
        for (size_t r = 0; r < f.trials; r++)
            if (!done[r]) todo[ntodo++] = r;
        double t0 = nh_cli_now();
        size_t ndone = f.trials - ntodo;
        for (size_t b = 0; b < ntodo; b += nranks) {
            sbuf[0] = -1.0;
            if (b + me < ntodo) {
                const size_t r = todo[b + me];
                fig1_trial(cmd, &f, acts[ai], r, X, T, d, sbuf + 1, sbuf + 1 + nv);
                sbuf[0] = (double)r;
            }
            nh_par_gather(sbuf, rlen, rbuf);
            for (size_t q = 0; root && q < nranks; q++) {
                const double *o = rbuf + q * rlen;
                if (!(o[0] >= 0)) continue;
                const size_t r = (size_t)o[0];
                memcpy(H + r * nv, o + 1, nv * sizeof *H);
                memcpy(I + r * nv, o + 1 + nv, nv * sizeof *I);
                fprintf(fp, "%zu", r);
                for (size_t k = 0; k < nv; k++) fprintf(fp, ",%.17g", H[r * nv + k]);
                for (size_t k = 0; k < nv; k++) fprintf(fp, ",%.17g", I[r * nv + k]);
                fputc('\n', fp);
                if (fflush(fp) != 0) nh_die(cmd, "cannot write %s", path);
                done[r] = 1;
                ndone++;
                char what[64];
                snprintf(what, sizeof what, "fig1 %s: trial", nh_act_name(acts[ai]));
                nh_cli_progress(what, ndone, f.trials, nh_cli_now() - t0);
            }
        }
        free(todo); free(sbuf); free(rbuf);
        if (root && fclose(fp) != 0) nh_die(cmd, "cannot write %s", path);
        /* Mean and standard error over trials (rank 0 holds them all). */
        for (size_t k = 0; root && k < nv; k++) {
            double sh = 0, sh2 = 0, si = 0, si2 = 0;
            for (size_t r = 0; r < f.trials; r++) {
                sh += H[r * nv + k];
                si += I[r * nv + k];
            }
            double mh = sh / (double)f.trials, mi = si / (double)f.trials;
            for (size_t r = 0; r < f.trials; r++) {
                sh2 += (H[r * nv + k] - mh) * (H[r * nv + k] - mh);
                si2 += (I[r * nv + k] - mi) * (I[r * nv + k] - mi);
            }
            const double R = (double)f.trials;
            meanH[ai * nv + k] = mh;
            seH[ai * nv + k] = sqrt(sh2 / (R - 1) / R);
            meanI[ai * nv + k] = mi;
            seI[ai * nv + k] = sqrt(si2 / (R - 1) / R);
        }
        free(H); free(I); free(done);
    }
    const double elapsed = nh_cli_now() - t_start;
    if (!root) { /* rank 0 writes the results */
        free(theoryH); free(theoryI); free(theoryS); free(meanH); free(seH); free(meanI); free(seI); free(tt);
        free(X); free(T);
        nh_par_finalize();
        return 0;
    }

    /* summary.json, fig1.csv */
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "figure", "fig1");
    cJSON *par = cJSON_AddObjectToObject(js, "params");
    cJSON_AddBoolToObject(par, "quick", quick);
    cJSON_AddStringToObject(par, "data", dataname);
    cJSON_AddNumberToObject(par, "N", (double)f.n);
    cJSON_AddNumberToObject(par, "depth", 3);
    cJSON_AddNumberToObject(par, "width", (double)f.width);
    cJSON_AddNumberToObject(par, "trials", (double)f.trials);
    cJSON_AddItemToObject(par, "beta", fnum(f.beta));
    cJSON_AddItemToObject(par, "lr", fnum(f.lr));
    cJSON_AddNumberToObject(par, "steps", (double)f.steps);
    cJSON_AddNumberToObject(par, "every", (double)f.every);
    cJSON_AddNumberToObject(par, "probes", (double)f.M);
    cJSON_AddNumberToObject(par, "seed", (double)f.seed);
    cJSON_AddStringToObject(par, "loss", "mse");
    cJSON_AddItemToObject(par, "seconds", fnum(elapsed));
    cJSON *pts = cJSON_AddArrayToObject(js, "points");
    size_t cap = 256 + nact * nv * 260;
    char *csv = malloc(cap), *p = csv;
    if (!csv) nh_die(cmd, "out of memory");
    p += sprintf(p, "act,k,t,theory,mean,se,z,tr_I_theory,tr_I_mean,tr_I_se,bias_I\n");
    for (size_t ai = 0; ai < nact; ai++)
        for (int q = 0; q < 4; q++)
            for (size_t i = 0; i < f.nrec; i++) {
                size_t k = ai * nv + i * 4 + (size_t)q;
                double z = (meanH[k] - theoryH[k]) / seH[k];
                double bias = meanI[k] - theoryI[k]; /* the finite-width bias of the I part, measured */
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "act", nh_act_name(acts[ai]));
                cJSON_AddNumberToObject(o, "k", q + 1);
                cJSON_AddItemToObject(o, "t", fnum(tt[i]));
                cJSON_AddItemToObject(o, "theory", fnum(theoryH[k]));
                cJSON_AddItemToObject(o, "mean", fnum(meanH[k]));
                cJSON_AddItemToObject(o, "se", fnum(seH[k]));
                cJSON_AddItemToObject(o, "z", fnum(z));
                cJSON_AddItemToObject(o, "tr_I_theory", fnum(theoryI[k]));
                cJSON_AddItemToObject(o, "tr_I_mean", fnum(meanI[k]));
                cJSON_AddItemToObject(o, "tr_I_se", fnum(seI[k]));
                cJSON_AddItemToObject(o, "bias_I", fnum(bias));
                cJSON_AddItemToObject(o, "tr_S_theory", fnum(theoryS[k]));
                cJSON_AddItemToArray(pts, o);
                p += sprintf(p, "%s,%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", nh_act_name(acts[ai]),
                             q + 1, tt[i], theoryH[k], meanH[k], seH[k], z, theoryI[k], meanI[k], seI[k], bias);
            }
    char path[4096];
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "fig1.csv"), csv);
    free(csv);
    write_json(cmd, out, "summary.json", js);
    cJSON_Delete(js);

    /* Plot: one panel per nonlinearity, theory lines + mean +- se. */
    nh_plot_series *ser = calloc(nact * 8, sizeof *ser);
    nh_plot_panel *pan = calloc(nact, sizeof *pan);
    double *ys = malloc(nact * 8 * f.nrec * sizeof *ys);
    if (!ser || !pan || !ys) nh_die(cmd, "out of memory");
    static const char *const labels[4] = {"Tr(H) theory", "Tr(H#u2#d) theory", "Tr(H#u3#d) theory",
                                          "Tr(H#u4#d) theory"};
    for (size_t ai = 0; ai < nact; ai++) {
        for (int q = 0; q < 4; q++) {
            double *yt = ys + ((ai * 8) + (size_t)q * 2) * f.nrec, *ym = yt + f.nrec;
            double *ye = malloc(f.nrec * sizeof *ye);
            if (!ye) nh_die(cmd, "out of memory");
            for (size_t i = 0; i < f.nrec; i++) {
                yt[i] = theoryH[ai * nv + i * 4 + (size_t)q];
                ym[i] = meanH[ai * nv + i * 4 + (size_t)q];
                ye[i] = seH[ai * nv + i * 4 + (size_t)q];
            }
            nh_plot_series *sl = &ser[ai * 8 + (size_t)q], *sp = &ser[ai * 8 + 4 + (size_t)q];
            sl->n = f.nrec; sl->x = tt; sl->y = yt; sl->style = NH_STYLE_LINE;
            sl->color = (nh_plot_color)(NH_COLOR_BLUE + q); sl->label = labels[q];
            sp->n = f.nrec; sp->x = tt; sp->y = ym; sp->yerr = ye; sp->style = NH_STYLE_POINTS;
            sp->color = NH_COLOR_BLACK; sp->marker = NH_MARKER_CROSS;
            sp->label = q == 0 ? "experiment: mean +/- s.e." : NULL;
        }
        pan[ai].title = act_title(acts[ai]);
        pan[ai].xlabel = "t (gradient-flow time, t = step #gy)";
        pan[ai].ylabel = "Tr(H#uk#d)";
        pan[ai].nseries = 8;
        pan[ai].series = &ser[ai * 8];
        double lo = INFINITY, hi = 0;
        for (size_t k = 0; k < nv; k++) {
            double v = fabs(theoryH[ai * nv + k]);
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        pan[ai].logy = hi > 30 * lo; /* log only when the moments span decades */
        pan[ai].legend = ai == 0 ? NH_LEGEND_BELOW : NH_LEGEND_NONE;
    }
    char note[512];
    snprintf(note, sizeof note,
             "%s%s, N = %zu, L = 3, widths %zu, %zu trials, MSE, #gb = %g, #gy = %g, %zu probes; theory: Corollary 1 "
             "(expectation)",
             quick ? "quick mode: " : "", !strcmp(dataname, "mnist") ? "14x14 MNIST" : dataname, f.n, f.width, f.trials,
             f.beta, f.lr, f.M);
    nh_plot_spec spec = {0};
    char stem[4096];
    spec.path = nh_cli_path(stem, sizeof stem, out, "fig1");
    spec.title = "Moments of the Hessian during training: theory (lines) and experiment (points)";
    spec.note = note;
    spec.npanels = nact;
    spec.panels = pan;
    nh_plot_report rep;
    NH_CHECK(cmd, nh_plot_xy(&spec, &rep));
    for (size_t s = 0; s < nact * 8; s++)
        if (ser[s].yerr) free((void *)ser[s].yerr);
    free(ser); free(pan); free(ys);
    fprintf(stderr, "ntkhess fig1: wrote %s/fig1.png, fig1.svg, fig1.csv, summary.json (%.1f s)\n", out, elapsed);
    free(theoryH); free(theoryI); free(theoryS); free(meanH); free(seH); free(meanI); free(seI); free(tt); free(X); free(T);
    nh_par_finalize();
    return 0;
}

const nh_cmd nh_cmd_fig1 = {
    "fig1", "The paper's Figure 1: Tr(H^k)(t), k = 1..4, theory against experiment.",
    "[--quick] [--data mnist|sphere] [--n N] [--width W] [--trials R] [--acts LIST] --out DIR",
    "For each nonlinearity: the expectation over initialization of Corollary 1\n"
    "(corrected; MSE, L = 3) as lines, and the mean over R independently initialized\n"
    "networks of widths n_0,W,W,1 trained by gradient descent as points with\n"
    "standard-error bars, at t = 0, E eta, 2 E eta, ...  Each measured Tr(H^k) is\n"
    "exact Tr(I^k) (from the NTK Gram) plus a Hutchinson estimate of the remainder.\n"
    "Writes fig1.png, fig1.svg, fig1.csv and summary.json (a \"points\" array of\n"
    "{act, k, t, theory, mean, se, z, ...}; bias_I = mean Tr(I^k) - theory Tr(I^k)\n"
    "is the measured finite-width bias of the I part).  Each finished trial goes to\n"
    "trials_<act>.csv at once: a killed run started again with the same arguments\n"
    "resumes without losing a finished trial.  Progress goes to stderr when it is a\n"
    "terminal.  Defaults are the paper's (N = 256, width 5000, 250 trials); --quick\n"
    "runs in about two minutes on 2 cores.",
    fig1_opts, run_fig1};

/* ------------------------------------------------------------------ fig2 */
static const nh_optspec fig2_opts[] = {
    {"quick", NULL, NULL, "small run: N = 64, width 300"},
    {"data", "NAME", "mnist", "mnist, sphere or disk"},
    {"n", "N", "256", "training points (quick: 64)"},
    {"width", "W", "1000", "hidden width (quick: 300)"},
    NH_OPT_ACT("nsoftplus"),
    {"beta", "B", "0.1", "bias scale"},
    {"k", "K", "20", "leading eigenvectors of I and of S"},
    {"lr", "ETA", "1", "learning rate for optional training first"},
    {"steps", "S", "0", "gradient-descent steps before measuring (0: at initialization)"},
    {"seed", "S", "0", "seed"},
    {"out", "DIR", NULL, "output directory (fig2.png, fig2.svg, fig2.csv, summary.json)"},
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

static int run_fig2(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    const int quick = nh_arg_flag(&a, "quick");
    size_t n = (size_t)(quick && !a.given[2] ? 64 : nh_arg_int(&a, "n", 2, 1 << 20));
    size_t width = (size_t)(quick && !a.given[3] ? 300 : nh_arg_int(&a, "width", 1, 1 << 20));
    nh_act act = nh_arg_act(cmd, &a, NULL);
    double beta = nh_arg_double(&a, "beta"), lr = nh_arg_double(&a, "lr");
    size_t K = (size_t)nh_arg_int(&a, "k", 1, 1 << 16);
    long long steps = nh_arg_int(&a, "steps", 0, 1 << 30);
    uint64_t seed = nh_arg_u64(&a, "seed");
    const char *out = nh_arg_req(&a, "out"), *dataname = nh_arg_req(&a, "data");
    if (!(lr > 0)) nh_die_usage(cmd, "--lr must be > 0");
    if (nh_plot_available() != NH_OK) nh_die(cmd, "%s (install plplot-driver-cairo)", nh_last_error());
    size_t d;
    double *T, *X = load_fig_data(cmd, dataname, n, seed, &d, &T);
    size_t w[4] = {d, width, width, 1};
    nh_net *net = make_net(cmd, 3, w, act, beta, trial_seed(seed, act, 0));
    const size_t P = nh_net_nparams(net);
    if (K > P) nh_die_usage(cmd, "--k %zu exceeds the number of parameters P = %zu", K, P);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create(net, X, T, n, NH_LOSS_MSE, &c));
    for (long long s = 0; s < steps; s++) NH_CHECK(cmd, nh_curv_gd_step(c, net, lr));
    nh_cli_mkdir(cmd, out);
    double *V = malloc(K * P * sizeof *V), *ev = malloc(K * sizeof *ev);
    double *rq[4];
    for (int q = 0; q < 4; q++) rq[q] = malloc(K * sizeof(double));
    if (!V || !ev || !rq[0] || !rq[1] || !rq[2] || !rq[3]) nh_die(cmd, "out of memory");
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.seed = seed;
    double evI0 = 0, evS0 = 0;
    /* Leading eigenvectors of I (largest), then of S (largest magnitude). */
    NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_I, K, &lo, ev, V, NULL, NULL));
    evI0 = ev[0];
    NH_CHECK(cmd, nh_curv_rayleigh(c, K, V, rq[0], rq[1]));
    lo.which = NH_WHICH_LM;
    NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_S, K, &lo, ev, V, NULL, NULL));
    evS0 = ev[0];
    NH_CHECK(cmd, nh_curv_rayleigh(c, K, V, rq[2], rq[3]));
    double *idx = malloc(K * sizeof *idx);
    if (!idx) nh_die(cmd, "out of memory");
    for (size_t i = 0; i < K; i++) idx[i] = (double)(i + 1);
    size_t cap = 128 + K * 120;
    char *csv = malloc(cap), *p = csv;
    if (!csv) nh_die(cmd, "out of memory");
    p += sprintf(p, "index,eigvec_of_I__vIv,eigvec_of_I__vSv,eigvec_of_S__vIv,eigvec_of_S__vSv\n");
    for (size_t i = 0; i < K; i++)
        p += sprintf(p, "%zu,%.17g,%.17g,%.17g,%.17g\n", i + 1, rq[0][i], rq[1][i], rq[2][i], rq[3][i]);
    char path[4096];
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "fig2.csv"), csv);
    free(csv);
    /* Summary: how far apart the two families are. */
    double maxSonI = 0, maxIonS = 0, minIonI = INFINITY, minSonS = INFINITY;
    for (size_t i = 0; i < K; i++) {
        if (fabs(rq[1][i]) > maxSonI) maxSonI = fabs(rq[1][i]);
        if (fabs(rq[2][i]) > maxIonS) maxIonS = fabs(rq[2][i]);
        if (fabs(rq[0][i]) < minIonI) minIonI = fabs(rq[0][i]);
        if (fabs(rq[3][i]) < minSonS) minSonS = fabs(rq[3][i]);
    }
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "figure", "fig2");
    cJSON *par = cJSON_AddObjectToObject(js, "params");
    cJSON_AddBoolToObject(par, "quick", quick);
    cJSON_AddStringToObject(par, "data", dataname);
    cJSON_AddStringToObject(par, "act", nh_act_name(act));
    cJSON_AddNumberToObject(par, "N", (double)n);
    cJSON_AddNumberToObject(par, "width", (double)width);
    cJSON_AddNumberToObject(par, "P", (double)P);
    cJSON_AddNumberToObject(par, "k", (double)K);
    cJSON_AddNumberToObject(par, "steps", (double)steps);
    cJSON_AddItemToObject(par, "loss", fnum(nh_curv_loss(c)));
    cJSON *arr[4];
    const char *keys[4] = {"eigvec_of_I_vIv", "eigvec_of_I_vSv", "eigvec_of_S_vIv", "eigvec_of_S_vSv"};
    for (int q = 0; q < 4; q++) {
        arr[q] = cJSON_AddArrayToObject(js, keys[q]);
        for (size_t i = 0; i < K; i++) cJSON_AddItemToArray(arr[q], fnum(rq[q][i]));
    }
    cJSON_AddItemToObject(js, "top_eig_I", fnum(evI0));
    cJSON_AddItemToObject(js, "top_abs_eig_S", fnum(evS0));
    cJSON_AddItemToObject(js, "gap_I_over_S_on_I_vectors", fnum(minIonI / maxSonI));
    cJSON_AddItemToObject(js, "gap_S_over_I_on_S_vectors", fnum(minSonS / maxIonS));
    write_json(cmd, out, "summary.json", js);
    cJSON_Delete(js);
    /* Plot: two panels, eigenvectors of I and of S; bars of v^T I v (blue) and v^T S v (orange). */
    nh_plot_series s[4] = {
        {K, idx, rq[0], NULL, NH_STYLE_BARS, NH_COLOR_BLUE, NH_MARKER_AUTO, "v#uT#d I v"},
        {K, idx, rq[1], NULL, NH_STYLE_BARS, NH_COLOR_ORANGE, NH_MARKER_AUTO, "v#uT#d S v"},
        {K, idx, rq[2], NULL, NH_STYLE_BARS, NH_COLOR_BLUE, NH_MARKER_AUTO, "v#uT#d I v"},
        {K, idx, rq[3], NULL, NH_STYLE_BARS, NH_COLOR_ORANGE, NH_MARKER_AUTO, "v#uT#d S v"}};
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
    snprintf(note, sizeof note, "%s%s, N = %zu, L = 3, width %zu, %s, #gb = %g, %s", quick ? "quick mode: " : "",
             !strcmp(dataname, "mnist") ? "14x14 MNIST" : dataname, n, width, act_title(act), beta,
             steps ? "after training" : "at initialization");
    nh_plot_spec spec = {0};
    spec.path = nh_cli_path(stem, sizeof stem, out, "fig2");
    spec.title = "Mutual orthogonality of I and S: Rayleigh quotients";
    spec.note = note;
    spec.npanels = 2;
    spec.panels = pan;
    NH_CHECK(cmd, nh_plot_xy(&spec, NULL));
    fprintf(stderr, "ntkhess fig2: wrote %s/fig2.png, fig2.svg, fig2.csv, summary.json\n", out);
    for (int q = 0; q < 4; q++) free(rq[q]);
    free(V); free(ev); free(idx); free(X); free(T);
    nh_curv_free(c);
    nh_net_free(net);
    return 0;
}

const nh_cmd nh_cmd_fig2 = {
    "fig2", "The paper's Figure 2: Rayleigh quotients of the leading eigenvectors of I and S.",
    "[--quick] [--data mnist|sphere] [--n N] [--width W] [--act NAME] [--k K] --out DIR",
    "For the K leading eigenvectors v of I (Lanczos, largest eigenvalues) and of S\n"
    "(largest |eigenvalue|), plots v^T I v and v^T S v (L = 3, MSE; by default the\n"
    "normalized smooth ReLU at initialization, as in the paper).  Writes fig2.png,\n"
    "fig2.svg, fig2.csv and summary.json (with the gap between the two families).",
    fig2_opts, run_fig2};

/* ------------------------------------------------------------------ fig3 */
static const nh_optspec fig3_opts[] = {
    {"quick", NULL, NULL, "small run: width 150, grid 21"},
    {"n", "N", "32", "points uniform on the unit disk"},
    {"width", "W", "1000", "hidden width n_1 = n_2 = n_3 (L = 4) (quick: 150)"},
    NH_OPT_ACTS("softplus,nsoftplus"),
    {"beta", "B", "0.1", "bias scale"},
    {"lr", "ETA", "1", "learning rate"},
    {"steps", "K", "3000", "maximum gradient-descent steps towards the minimum (quick: 1500)"},
    {"tol", "C", "1e-6", "stop training once the loss is below C"},
    {"dirs", "I,J", "1,4", "eigenvectors of I (y axis, x axis), 1 = largest"},
    {"grid", "G", "41", "grid points per axis (quick: 21)"},
    {"radius", "R", "", "half-width of the grid (default: 3/sqrt(lambda_J) per panel)"},
    {"seed", "S", "0", "seed"},
    {"out", "DIR", NULL, "output directory (fig3.png, fig3.svg, fig3_<act>.csv, summary.json)"},
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

static int run_fig3(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    const int quick = nh_arg_flag(&a, "quick");
    size_t n = (size_t)nh_arg_int(&a, "n", 2, 1 << 20);
    size_t width = (size_t)(quick && !a.given[2] ? 150 : nh_arg_int(&a, "width", 1, 1 << 20));
    nh_act acts[NH_MAXACT];
    size_t nact = parse_acts(cmd, nh_arg_req(&a, "acts"), acts);
    double beta = nh_arg_double(&a, "beta"), lr = nh_arg_double(&a, "lr"), tol = nh_arg_double(&a, "tol");
    long long steps = quick && !a.given[6] ? 1500 : nh_arg_int(&a, "steps", 0, 1 << 30);
    size_t dirs[2];
    if (nh_arg_sizes(&a, "dirs", dirs, 2) != 2) nh_die_usage(cmd, "--dirs needs two indices I,J");
    size_t G = (size_t)(quick && !a.given[9] ? 21 : nh_arg_int(&a, "grid", 2, 4096));
    uint64_t seed = nh_arg_u64(&a, "seed");
    const char *out = nh_arg_req(&a, "out");
    if (!(lr > 0)) nh_die_usage(cmd, "--lr must be > 0");
    double Rfix = nh_arg_str(&a, "radius") ? nh_arg_double(&a, "radius") : 0;
    if (nh_arg_str(&a, "radius") && !(Rfix > 0)) nh_die_usage(cmd, "--radius must be > 0");
    if (nh_plot_available() != NH_OK) nh_die(cmd, "%s (install plplot-driver-cairo)", nh_last_error());
    double *X = malloc(n * 2 * sizeof *X), *T = malloc(n * sizeof *T);
    if (!X || !T) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_data_synth(NH_DATA_DISK, n, 2, NH_LOSS_MSE, 0, seed, X, T));
    nh_cli_mkdir(cmd, out);
    size_t K = dirs[0] > dirs[1] ? dirs[0] : dirs[1];
    double *Z = malloc(nact * G * G * sizeof *Z);
    nh_surface_panel *pan = calloc(nact, sizeof *pan);
    char (*titles)[160] = calloc(nact, sizeof *titles);
    if (!Z || !pan || !titles) nh_die(cmd, "out of memory");
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "figure", "fig3");
    cJSON *par = cJSON_AddObjectToObject(js, "params");
    cJSON_AddBoolToObject(par, "quick", quick);
    cJSON_AddNumberToObject(par, "N", (double)n);
    cJSON_AddNumberToObject(par, "depth", 4);
    cJSON_AddNumberToObject(par, "width", (double)width);
    cJSON_AddNumberToObject(par, "grid", (double)G);
    cJSON_AddNumberToObject(par, "dir_y", (double)dirs[0]);
    cJSON_AddNumberToObject(par, "dir_x", (double)dirs[1]);
    cJSON *res = cJSON_AddArrayToObject(js, "panels");
    for (size_t ai = 0; ai < nact; ai++) {
        size_t w[5] = {2, width, width, width, 1};
        nh_net *net = make_net(cmd, 4, w, acts[ai], beta, trial_seed(seed, acts[ai], 0));
        const size_t P = nh_net_nparams(net);
        if (K > P) nh_die_usage(cmd, "--dirs index %zu exceeds the number of parameters P = %zu", K, P);
        nh_curv *c = NULL;
        NH_CHECK(cmd, nh_curv_create(net, X, T, n, NH_LOSS_MSE, &c));
        const double loss0 = nh_curv_loss(c);
        long long s;
        double t0 = nh_cli_now();
        for (s = 0; s < steps && nh_curv_loss(c) > tol; s++) {
            NH_CHECK(cmd, nh_curv_gd_step(c, net, lr));
            if (s % 50 == 0) {
                char what[64];
                snprintf(what, sizeof what, "fig3 %s: step", nh_act_name(acts[ai]));
                nh_cli_progress(what, (size_t)s + 1, (size_t)steps, nh_cli_now() - t0);
            }
        }
        double *V = malloc(K * P * sizeof *V), *ev = malloc(K * sizeof *ev);
        if (!V || !ev) nh_die(cmd, "out of memory");
        nh_lanczos_opts lo = nh_lanczos_opts_default();
        lo.seed = seed;
        NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_I, K, &lo, ev, V, NULL, NULL));
        const double ly = ev[dirs[0] - 1], lx = ev[dirs[1] - 1];
        const double R = Rfix > 0 ? Rfix : 3.0 / sqrt(lx > 0 ? lx : 1e-300);
        double *L = Z + ai * G * G;
        /* slice: out[i*G + j] = C(theta + a_i u + b_j v), u = e_y (rows), v = e_x (columns),
         * which is the plot's z[j*nx + i] layout with rows = y. */
        NH_CHECK(cmd, nh_curv_slice(c, net, V + (dirs[0] - 1) * P, V + (dirs[1] - 1) * P, R, G, L));
        char name[64], path[4096];
        snprintf(name, sizeof name, "fig3_%s.csv", nh_act_name(acts[ai]));
        size_t cap = 64 + G * G * 80;
        char *csv = malloc(cap), *p = csv;
        if (!csv) nh_die(cmd, "out of memory");
        p += sprintf(p, "a_dir%zu,b_dir%zu,loss\n", dirs[0], dirs[1]);
        for (size_t i = 0; i < G; i++)
            for (size_t j = 0; j < G; j++)
                p += sprintf(p, "%.17g,%.17g,%.17g\n", R * (2.0 * (double)i - (double)(G - 1)) / (double)(G - 1),
                             R * (2.0 * (double)j - (double)(G - 1)) / (double)(G - 1), L[i * G + j]);
        nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, name), csv);
        free(csv);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "act", nh_act_name(acts[ai]));
        cJSON_AddItemToObject(o, "loss_init", fnum(loss0));
        cJSON_AddItemToObject(o, "loss_min", fnum(nh_curv_loss(c)));
        cJSON_AddNumberToObject(o, "steps", (double)s);
        cJSON_AddItemToObject(o, "radius", fnum(R));
        cJSON *evs = cJSON_AddArrayToObject(o, "eigenvalues_I");
        for (size_t k = 0; k < K; k++) cJSON_AddItemToArray(evs, fnum(ev[k]));
        cJSON_AddItemToObject(o, "lambda_y", fnum(ly));
        cJSON_AddItemToObject(o, "lambda_x", fnum(lx));
        cJSON_AddItemToObject(o, "narrowness", fnum(ly / lx));
        cJSON_AddItemToArray(res, o);
        snprintf(titles[ai], sizeof titles[ai], "%s: #gl#d%zu#u/#gl#d%zu#u = %.3g", act_title(acts[ai]), dirs[0],
                 dirs[1], ly / lx);
        pan[ai].nx = G; pan[ai].ny = G; pan[ai].z = L;
        pan[ai].xmin = -R; pan[ai].xmax = R; pan[ai].ymin = -R; pan[ai].ymax = R;
        pan[ai].title = titles[ai];
        pan[ai].mark = 1;
        free(V); free(ev);
        nh_curv_free(c);
        nh_net_free(net);
    }
    write_json(cmd, out, "summary.json", js);
    cJSON_Delete(js);
    char note[512], xl[64], yl[64], stem[4096];
    snprintf(note, sizeof note, "%sunit disk, N = %zu, L = 4, widths %zu, MSE, #gb = %g; trained to a minimum by GD",
             quick ? "quick mode: " : "", n, width, beta);
    snprintf(xl, sizeof xl, "along eigenvector %zu of I", dirs[1]);
    snprintf(yl, sizeof yl, "along eigenvector %zu of I", dirs[0]);
    nh_surface_spec spec = {0};
    spec.path = nh_cli_path(stem, sizeof stem, out, "fig3");
    spec.title = "Loss surface around a global minimum";
    spec.note = note;
    spec.xlabel = xl;
    spec.ylabel = yl;
    spec.zlabel = "loss";
    spec.npanels = nact;
    spec.panels = pan;
    spec.logz = 1;
    NH_CHECK(cmd, nh_plot_surface(&spec, NULL));
    fprintf(stderr, "ntkhess fig3: wrote %s/fig3.png, fig3.svg, summary.json\n", out);
    free(Z); free(pan); free(titles); free(X); free(T);
    return 0;
}

const nh_cmd nh_cmd_fig3 = {
    "fig3", "The paper's Figure 3: the loss surface along eigenvectors 1 and 4 of I.",
    "[--quick] [--n N] [--width W] [--acts LIST] [--dirs I,J] [--grid G] --out DIR",
    "Networks of depth L = 4 (widths 2,W,W,W,1) are trained by gradient descent on\n"
    "points uniform on the unit disk to a global minimum (loss below --tol), then\n"
    "the loss is evaluated on a grid along eigenvectors I (y axis) and J (x axis)\n"
    "of I.  One panel per nonlinearity: smooth ReLU against normalized smooth ReLU\n"
    "(the narrow valley of the first, its reduction by normalization).  The panel\n"
    "titles give lambda_I / lambda_J, the narrowness of the valley.",
    fig3_opts, run_fig3};
