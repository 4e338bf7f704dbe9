/* cmd_spectra.c -- ntkhess measure, spectrum, landscape: the finite-width
 * measurement toolkit (traces with error bars, Lanczos, SLQ, slices). */
#include "cli.h"
#include "par.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static nh_op parse_op(const nh_cmd *cmd, const char *s) {
    if (!strcmp(s, "H")) return NH_OP_H;
    if (!strcmp(s, "I")) return NH_OP_I;
    if (!strcmp(s, "S")) return NH_OP_S;
    nh_die_usage(cmd, "--of must be H, I or S, got '%s'", s);
}

static cJSON *jnum(double v) { return nh_cli_json_num(v); }
static void jarr(cJSON *o, const char *key, const double *v, size_t n) {
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, jnum(v[i]));
}

/* --------------------------------------------------------------- measure */
static const nh_optspec measure_opts[] = {
    {"model", "DIR", NULL, "model directory at t = 0"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets (see ntkhess train --help)"},
    NH_OPT_LOSS("mse"),
    {"lr", "ETA", NULL, "learning rate eta (> 0); t = step * eta"},
    {"steps", "K", NULL, "gradient-descent steps"},
    {"every", "E", NULL, "record every E steps (and at step 0)"},
    {"probes", "M", "32", "Rademacher probes per record for the estimated traces (>= 1)"},
    {"seed", "S", "0", "probe seed (the same probes at every record)"},
    {"out", "FILE.csv", NULL, "CSV of records, written when the run completes (work folder: .FILE.csv.partial/)"},
    {"restart", NULL, NULL, "discard an unfinished run's checkpoint and start over"},
    NH_OPT_PARAMS,
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

/* Pool per-rank Hutchinson results (n_r probes, mean_r, se_r) into those of
 * all n = sum n_r probes: the mean weighted by n_r, and the sample variance
 * from the within-rank sums of squares se_r^2 n_r (n_r - 1) plus the
 * between-rank part n_r (mean_r - mean)^2 (Chan et al.'s parallel variance). */
static void pool_mean_se(size_t R, const double *n, const double *mean, const double *se, double *m_out,
                         double *se_out) {
    double N = 0, s = 0;
    for (size_t r = 0; r < R; r++) { N += n[r]; s += n[r] * mean[r]; }
    const double m = s / N;
    double ss = 0;
    for (size_t r = 0; r < R; r++) {
        if (n[r] > 1) ss += se[r] * se[r] * n[r] * (n[r] - 1);
        if (n[r] > 0) ss += n[r] * (mean[r] - m) * (mean[r] - m);
    }
    *m_out = m;
    *se_out = N > 1 ? sqrt(ss / (N - 1) / N) : NAN;
}

/* One record.  Under MPI the M probes are split over the ranks (rank r takes
 * M_r consecutive probes from first_probe j_r, the same probe vectors as one
 * process), each returns its (M_r, mean_r, se_r), and rank 0 pools them and
 * writes the row; the exact parts (Tr I^k, Tr S, ||IS||) come from rank 0. */
static void measure_row(const nh_cmd *cmd, nh_run *r, size_t M, long long step, double eta, double loss,
                        const nh_trace_result *ti, const nh_trace_result *th, const nh_ortho_result *orr);

static void measure_record(const nh_cmd *cmd, nh_curv *c, size_t M, uint64_t seed, long long step, double eta,
                           nh_run *run) {
    const size_t R = (size_t)nh_par_size(), me = (size_t)nh_par_rank();
    const size_t Mr = M / R + (me < M % R), j0 = me * (M / R) + (me < M % R ? me : M % R);
    nh_trace_opts to = nh_trace_opts_default();
    to.nprobes = Mr ? Mr : 1;
    to.first_probe = j0;
    to.seed = seed;
    to.control = 1;
    nh_trace_result ti, th;
    nh_trace_opts so = to;
    so.control = 0;
    nh_ortho_result orr;
    memset(&ti, 0, sizeof ti);
    memset(&th, 0, sizeof th);
    memset(&orr, 0, sizeof orr);
    if (me == 0) {
        NH_CHECK(cmd, nh_curv_trace(c, NH_OP_I, 4, &to, &ti));
        NH_CHECK(cmd, nh_curv_trace(c, NH_OP_H, 4, &to, &th));
        NH_CHECK(cmd, nh_curv_orthogonality(c, &so, &orr));
    } else if (Mr) { /* the probe parts only: the calls nh_curv_orthogonality makes */
        NH_CHECK(cmd, nh_curv_trace(c, NH_OP_H, 4, &to, &th));
        nh_trace_result ts;
        NH_CHECK(cmd, nh_curv_trace(c, NH_OP_S, 2, &so, &ts));
        orr.tr_s2 = ts.est[1];
        orr.tr_s2_se = ts.se[1];
    }
    if (R > 1) {
        /* Per rank: M_r, Tr(H^k) k = 2..4 and SEs, Tr(S^2) and SE. */
        enum { NV = 9 };
        double mine[NV] = {(double)Mr, th.est[1], th.est[2], th.est[3], th.se[1], th.se[2], th.se[3], orr.tr_s2,
                           orr.tr_s2_se};
        double *all = me == 0 ? malloc(R * NV * sizeof *all) : NULL;
        if (me == 0 && !all) nh_die(cmd, "out of memory");
        nh_par_gather(mine, NV, all);
        if (me != 0) { free(all); return; }
        double *n = malloc(3 * R * sizeof *n), *mean = n + R, *se = mean + R;
        if (!n) nh_die(cmd, "out of memory");
        for (size_t r = 0; r < R; r++) n[r] = all[r * NV];
        for (int k = 1; k < 4; k++) { /* remainders about the exact Tr(I^k) of rank 0 */
            for (size_t r = 0; r < R; r++) {
                mean[r] = all[r * NV + (size_t)k] - ti.est[k];
                se[r] = all[r * NV + 3 + (size_t)k];
            }
            double m;
            pool_mean_se(R, n, mean, se, &m, &th.se[k]);
            th.est[k] = ti.est[k] + m;
        }
        for (size_t r = 0; r < R; r++) { mean[r] = all[r * NV + 7]; se[r] = all[r * NV + 8]; }
        pool_mean_se(R, n, mean, se, &orr.tr_s2, &orr.tr_s2_se);
        /* As nh_curv_orthogonality derives them from Tr(S^2). */
        orr.s_fro = sqrt(fmax(orr.tr_s2, 0.0));
        orr.s_fro_se = orr.s_fro > 0 ? orr.tr_s2_se / (2.0 * orr.s_fro) : orr.tr_s2_se == 0 ? 0.0 : INFINITY;
        const double den = orr.i_fro * orr.s_fro;
        orr.ratio = den > 0 ? orr.is_fro / den : (orr.is_fro == 0 ? NAN : INFINITY);
        orr.ratio_se = orr.s_fro > 0 ? orr.ratio * orr.s_fro_se / orr.s_fro : NAN;
        free(n);
        free(all);
    }
    measure_row(cmd, run, M, step, eta, nh_curv_loss(c), &ti, &th, &orr);
}

/* A standard error: empty with one probe (undefined, not divergence). */
static int se_field(char *p, size_t cap, size_t M, double se) {
    return M >= 2 ? snprintf(p, cap, ",%.17g", se) : snprintf(p, cap, ",");
}

/* Format and log one record; a non-finite value is the start of divergence:
 * stop before writing it (the command then fails and writes nothing). */
static void measure_row(const nh_cmd *cmd, nh_run *r, size_t M, long long step, double eta, double loss,
                        const nh_trace_result *ti, const nh_trace_result *th, const nh_ortho_result *orr) {
    /* Tr(S) exact (G . dC/dY) = Tr(H) - Tr(I) with control variates. */
    double trs1 = th->est[0] - ti->est[0];
    /* ||IS|| = 0 means orthogonal, whatever the norms: ratio 0, not 0/0. */
    double ratio = orr->is_fro == 0 ? 0.0 : orr->ratio;
    double all[17] = {ti->est[0], ti->est[1], ti->est[2], ti->est[3], th->est[0], th->est[1], th->est[2], th->est[3],
                      orr->is_fro, orr->i_fro, orr->s_fro, orr->tr_s2, loss, ratio, th->se[1], th->se[2], th->se[3]};
    for (int q = 0; q < (M >= 2 ? 17 : 14); q++)
        if (!isfinite(all[q]))
            nh_die(cmd, "diverged at step %lld: the Hessian moments overflowed (loss %.6g); nothing written to the "
                        "output (lower --lr)", step, loss);
    if (!r) return; /* MPI ranks other than 0 */
    char row[2048];
    size_t n = 0, cap = sizeof row;
    n += (size_t)snprintf(row + n, cap - n, "%lld,%.17g,%.17g", step, (double)step * eta, loss);
    for (int k = 0; k < 4; k++) n += (size_t)snprintf(row + n, cap - n, ",%.17g", ti->est[k]);
    n += (size_t)snprintf(row + n, cap - n, ",%.17g,%.17g", trs1, orr->tr_s2);
    n += (size_t)se_field(row + n, cap - n, M, orr->tr_s2_se);
    for (int k = 0; k < 4; k++) {
        n += (size_t)snprintf(row + n, cap - n, ",%.17g", th->est[k]);
        n += (size_t)se_field(row + n, cap - n, M, th->se[k]);
    }
    n += (size_t)snprintf(row + n, cap - n, ",%.17g,%.17g,%.17g", orr->is_fro, orr->i_fro, orr->s_fro);
    n += (size_t)se_field(row + n, cap - n, M, orr->s_fro_se);
    snprintf(row + n, cap - n, ",%.17g", ratio);
    nh_log_row(cmd, &r->log, "%s", row);
}

#define MEASURE_HEADER                                                                                             \
    "step,t,loss,tr_I1,tr_I2,tr_I3,tr_I4,tr_S1,tr_S2,tr_S2_se,tr_H1,tr_H1_se,tr_H2,tr_H2_se,tr_H3,tr_H3_se,tr_H4," \
    "tr_H4_se,IS_fro,I_fro,S_fro,S_fro_se,IS_ratio"

typedef struct measure_job {
    nh_loss loss;
    double eta;
    long long steps, every;
    size_t M;
    uint64_t seed;
    const char *out, *model, *xp, *tp;
    int restart;
    nh_net *net;
    nh_dataset d;
    const nh_curv_opts *copts; /* --batch */
    const char *params;        /* --params */
} measure_job;

static void measure_parse(const nh_cmd *cmd, int argc, char **argv, measure_job *j) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    j->copts = nh_cli_curv_opts(&a);
    j->loss = nh_arg_loss(cmd, &a);
    j->eta = nh_arg_double(&a, "lr");
    if (j->eta <= 0) nh_die_usage(cmd, "--lr must be > 0, got %g", j->eta);
    j->steps = nh_arg_int(&a, "steps", 0, NH_MAX_STEPS);
    j->every = nh_arg_int(&a, "every", 1, NH_MAX_STEPS);
    j->M = (size_t)nh_arg_int(&a, "probes", 1, 1 << 24);
    j->seed = nh_arg_u64(&a, "seed");
    j->out = nh_arg_req(&a, "out");
    j->model = nh_arg_req(&a, "model"), j->xp = nh_arg_req(&a, "data"), j->tp = nh_arg_req(&a, "targets");
    j->restart = nh_arg_flag(&a, "restart");
    j->params = nh_arg_str(&a, "params");
    NH_CHECK(cmd, nh_model_load(j->model, &j->net));
    nh_cli_load_data_f32(cmd, j->xp, j->tp, j->net, j->loss, &j->d);
}

/* Rank 0 opens the output and resumes; the others get its step and theta. */
static long long measure_begin(const nh_cmd *cmd, measure_job *j, nh_run *r) {
    long long start = -1;
    if (nh_par_is_root()) {
        const char *inputs[] = {j->model, j->xp, j->tp};
        nh_run_spec sp = {cmd, j->out, 1, NULL, MEASURE_HEADER, {0}, j->steps, j->restart, inputs, 3};
        nh_ckpt_id_add(&sp.id, "command", "measure");
        nh_ckpt_id_model(cmd, &sp.id, j->model, j->net);
        nh_ckpt_id_file(cmd, &sp.id, "data", j->xp);
        nh_ckpt_id_file(cmd, &sp.id, "targets", j->tp);
        nh_ckpt_id_add(&sp.id, "loss", "%s", nh_loss_name(j->loss));
        nh_ckpt_id_add(&sp.id, "lr", "%.17g", j->eta);
        nh_ckpt_id_add(&sp.id, "steps", "%lld", j->steps);
        nh_ckpt_id_add(&sp.id, "every", "%lld", j->every);
        nh_ckpt_id_add(&sp.id, "probes", "%zu", j->M);
        nh_ckpt_id_add(&sp.id, "seed", "%llu", (unsigned long long)j->seed);
        if (j->params) nh_ckpt_id_add(&sp.id, "params", "%s", j->params);
        start = nh_run_begin(r, &sp, &j->net);
    }
    if (nh_par_size() > 1) {
        nh_par_bcast(&start, sizeof start);
        nh_par_bcast(nh_net_params(j->net), nh_net_nparams(j->net) * sizeof(double));
    }
    return start;
}

/* Steps start+1..steps with a record (and a checkpoint) every E steps. */
static void measure_loop(const nh_cmd *cmd, measure_job *j, nh_run *r, nh_curv *c, long long start) {
    double t0 = nh_cli_now();
    for (long long k = start + 1; k <= j->steps; k++) {
        nh_status st = nh_curv_gd_step(c, j->net, j->eta);
        if (st != NH_OK)
            nh_die(cmd, "%s at step %lld: %s; nothing written to %s (lower --lr)", nh_strerror(st), k,
                   nh_last_error_detail(), j->out);
        if (k % j->every == 0 || k == j->steps) {
            measure_record(cmd, c, j->M, j->seed, k, j->eta, r);
            if (r && k < j->steps) nh_run_checkpoint(r, k, j->net);
        }
        if (r) nh_run_poll_signal(r, k, j->net);
        if (r && k == start + 1 && j->steps - start > 1) nh_cli_estimate(cmd, "steps", nh_cli_now() - t0, j->steps - start);
        if (r) nh_cli_progress("measure: step", (size_t)(k - start), (size_t)(j->steps - start), nh_cli_now() - t0);
    }
}

static int run_measure(const nh_cmd *cmd, int argc, char **argv) {
    /* MPI (when built with it): the probes of each record are split over the
     * ranks; every rank trains the same network, rank 0 writes. */
    nh_par_init(&argc, &argv);
    measure_job j;
    memset(&j, 0, sizeof j);
    measure_parse(cmd, argc, argv, &j);
    nh_run run, *r = nh_par_is_root() ? &run : NULL;
    long long start = measure_begin(cmd, &j, &run);
    nh_curv *c = NULL;
    c = nh_cli_curv(cmd, j.net, &j.d, j.loss, j.copts);
    nh_cli_params(cmd, j.params, c, NULL);
    if (start < 0) {
        measure_record(cmd, c, j.M, j.seed, 0, j.eta, r);
        if (r && j.steps > 0) nh_run_checkpoint(r, 0, j.net);
        start = 0;
    }
    measure_loop(cmd, &j, r, c, start);
    if (r) {
        nh_run_close_log(r);
        nh_out_commit(cmd);
    }
    nh_curv_free(c);
    nh_net_free(j.net);
    nh_dataset_free(&j.d);
    nh_par_finalize();
    return 0;
}

const nh_cmd nh_cmd_measure = {
    "measure", "Train by gradient descent and record the Hessian's moments along the way.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] --lr ETA --steps K --every E\n"
    "         [--probes M] --out FILE.csv [--restart]",
    "At step 0 and every E steps (t = step * eta) writes one CSV row: step, t, loss;\n"
    "tr_I1..tr_I4 exact from the NTK Gram (Tr((HC Theta)^k)); tr_S1 exact (G . dC/dY);\n"
    "tr_S2 = ||S||_F^2 by Hutchinson with its standard error; tr_H1..tr_H4 with control\n"
    "variates (exact Tr(I^k) plus an estimate of the remainder) and standard errors\n"
    "(tr_H1 is exact); IS_fro = ||I S||_F exact, I_fro, S_fro (+ se), and\n"
    "IS_ratio = ||IS||_F / (||I||_F ||S||_F).  With --probes 1 the standard-error\n"
    "columns are empty (undefined for one probe).  FILE.csv appears when the run\n"
    "completes (replacing an older one); a run that diverges writes nothing.  A run\n"
    "that is killed (or stopped by SIGINT, SIGTERM, SIGHUP: it checkpoints and exits\n"
    "128+signal) resumes from its last record when started again with the same\n"
    "arguments and ends with the same bytes; its work folder is .FILE.csv.partial/\n"
    "beside FILE.csv.  A rerun with another model, data, targets (compared by content)\n"
    "or options is refused unless --restart is given.  --params W0,b0,...: every column\n"
    "is of the diagonal block of those tensors (H_BB, I_BB, S_BB; tr_I from the block\n"
    "NTK, tr_S1 from the block's G, both exact).",
    measure_opts, run_measure};

/* -------------------------------------------------------------- spectrum */
static const nh_optspec spectrum_opts[] = {
    {"model", "DIR", NULL, "model directory"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets"},
    NH_OPT_LOSS("mse"),
    {"of", "H|I|S", "H", "which matrix"},
    {"top", "K", "", "the K largest eigenvalues by Lanczos (1 <= K <= P)"},
    {"smallest", NULL, NULL, "with --top: the K smallest instead"},
    {"density", NULL, NULL, "eigenvalue density by stochastic Lanczos quadrature"},
    {"vectors", "M", "16", "--density: random start vectors"},
    {"lanczos-steps", "m", "30", "--density: Lanczos steps per vector"},
    {"sigma", "W", "", "--density: Gaussian broadening (default: range / 100)"},
    {"grid", "G", "400", "--density: grid points"},
    {"rayleigh", NULL, NULL, "with --top: also v^T I v and v^T S v of each eigenvector (Figure 2)"},
    {"tol", "TOL", "1e-10", "Lanczos relative residual tolerance"},
    {"seed", "S", "0", "start-vector seed"},
    {"json", NULL, NULL, "print one JSON object on standard output"},
    {"out", "DIR", "", "write eigenvalues.npy (+ eigenvectors.npy) or density.csv here"},
    {"save-vectors", NULL, NULL, "with --top and --out: also write eigenvectors.npy (K x P)"},
    NH_OPT_PARAMS,
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

typedef struct spectrum_job {
    nh_args a;
    nh_loss loss;
    nh_op op;
    int top, json;
    const char *outdir, *in[3];
    nh_net *net;
    size_t P;
    nh_dataset d;
    nh_curv *c;
    cJSON *js;
} spectrum_job;

static void spectrum_parse(const nh_cmd *cmd, int argc, char **argv, spectrum_job *j) {
    nh_cli_parse(cmd, argc, argv, &j->a);
    nh_cli_threads(&j->a);
    j->loss = nh_arg_loss(cmd, &j->a);
    j->op = parse_op(cmd, nh_arg_req(&j->a, "of"));
    j->top = nh_arg_str(&j->a, "top") != NULL;
    if (j->top == nh_arg_flag(&j->a, "density")) nh_die_usage(cmd, "give exactly one of --top K and --density");
    j->json = nh_arg_flag(&j->a, "json");
    j->in[0] = nh_arg_req(&j->a, "model"), j->in[1] = nh_arg_req(&j->a, "data"), j->in[2] = nh_arg_req(&j->a, "targets");
    NH_CHECK(cmd, nh_model_load(j->in[0], &j->net));
    j->P = nh_net_nparams(j->net);
    nh_cli_load_data_f32(cmd, j->in[1], j->in[2], j->net, j->loss, &j->d);
    j->outdir = nh_arg_str(&j->a, "out");
    j->js = cJSON_CreateObject();
    cJSON_AddStringToObject(j->js, "of", nh_arg_str(&j->a, "of"));
    cJSON_AddNumberToObject(j->js, "P", (double)j->P);
}

/* Time one product to say up front how long about `products` will take. */
static void spectrum_estimate(const nh_cmd *cmd, const spectrum_job *j, double products) {
    double *v = calloc(j->P, sizeof *v), *hv = malloc(j->P * sizeof *hv);
    if (!v || !hv) nh_die(cmd, "out of memory");
    v[0] = 1;
    double t0 = nh_cli_now();
    NH_CHECK(cmd, nh_curv_hvp(j->c, v, hv));
    nh_cli_estimate(cmd, "Hessian-vector products", nh_cli_now() - t0, (long long)products);
    free(v); free(hv);
}

static void spectrum_top(const nh_cmd *cmd, spectrum_job *j) {
    long long K = nh_arg_int(&j->a, "top", 1, (long long)1 << 40);
    const size_t P = j->P;
    if ((size_t)K > P) nh_die_usage(cmd, "--top %lld exceeds the number of parameters P = %zu", K, P);
    double need = ((double)K + 22.0) * 2.0 * (double)P * 8.0;
    if (need > (double)nh_get_mem_limit()) nh_die(cmd, "Lanczos with K = %lld and P = %zu needs %.3g GB", K, P, need / 1e9);
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.which = nh_arg_flag(&j->a, "smallest") ? NH_WHICH_SA : NH_WHICH_LA;
    lo.tol = nh_arg_double(&j->a, "tol");
    if (!(lo.tol > 0)) nh_die_usage(cmd, "--tol must be > 0");
    lo.seed = nh_arg_u64(&j->a, "seed");
    spectrum_estimate(cmd, j, 3.0 * ((double)K + 20.0));
    double *ev = malloc((size_t)K * sizeof *ev), *res = malloc((size_t)K * sizeof *res);
    double *V = malloc((size_t)K * P * sizeof *V);
    if (!ev || !res || !V) nh_die(cmd, "out of memory");
    nh_lanczos_info info;
    NH_CHECK(cmd, nh_curv_lanczos(j->c, j->op, (size_t)K, &lo, ev, V, res, &info));
    nh_cli_check_finite(cmd, "eigenvalues", ev, (size_t)K);
    jarr(j->js, "eigenvalues", ev, (size_t)K);
    jarr(j->js, "residuals", res, (size_t)K);
    cJSON_AddNumberToObject(j->js, "products", (double)info.nproducts);
    cJSON_AddNumberToObject(j->js, "restarts", (double)info.nrestarts);
    if (nh_arg_flag(&j->a, "rayleigh")) {
        double *ri = malloc((size_t)K * sizeof *ri), *rs = malloc((size_t)K * sizeof *rs);
        if (!ri || !rs) nh_die(cmd, "out of memory");
        NH_CHECK(cmd, nh_curv_rayleigh(j->c, (size_t)K, V, ri, rs));
        jarr(j->js, "rayleigh_I", ri, (size_t)K);
        jarr(j->js, "rayleigh_S", rs, (size_t)K);
        free(ri); free(rs);
    }
    if (j->outdir) {
        const char *w = nh_out_open(cmd, j->outdir, 0, j->in, 3); /* replaced whole: no stale eigenvectors */
        size_t sh1[1] = {(size_t)K}, sh2[2] = {(size_t)K, P};
        nh_cli_write_npy(cmd, w, "eigenvalues.npy", ev, 1, sh1);
        nh_cli_write_npy(cmd, w, "residuals.npy", res, 1, sh1);
        if (nh_arg_flag(&j->a, "save-vectors")) nh_cli_write_npy(cmd, w, "eigenvectors.npy", V, 2, sh2);
        nh_out_commit(cmd);
    }
    if (!j->json) {
        printf("# k eigenvalue residual (%s, P = %zu, %zu products)\n", nh_arg_str(&j->a, "of"), P, info.nproducts);
        for (long long k = 0; k < K; k++) printf("%lld %.17g %.3g\n", k + 1, ev[k], res[k]);
    }
    free(ev); free(res); free(V);
}

static void density_write(const nh_cmd *cmd, const spectrum_job *j, size_t G, const double *grid, const double *den,
                          size_t nn, const double *nodes, const double *w) {
    const char *dir = nh_out_open(cmd, j->outdir, 0, j->in, 3);
    char *csv = malloc(64 + G * 60), *p = csv;
    if (!csv) nh_die(cmd, "out of memory");
    p += sprintf(p, "eigenvalue,density\n");
    for (size_t i = 0; i < G; i++) p += sprintf(p, "%.17g,%.17g\n", grid[i], den[i]);
    char path[4200];
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, dir, "density.csv"), csv);
    free(csv);
    size_t sh[1] = {nn};
    nh_cli_write_npy(cmd, dir, "nodes.npy", nodes, 1, sh);
    nh_cli_write_npy(cmd, dir, "weights.npy", w, 1, sh);
    nh_out_commit(cmd);
}

static void spectrum_density(const nh_cmd *cmd, spectrum_job *j) {
    nh_slq_opts so = nh_slq_opts_default();
    so.nvec = (size_t)nh_arg_int(&j->a, "vectors", 1, 1 << 20);
    so.nsteps = (size_t)nh_arg_int(&j->a, "lanczos-steps", 1, 1 << 20);
    if (so.nsteps > j->P) so.nsteps = j->P;
    so.seed = nh_arg_u64(&j->a, "seed");
    size_t G = (size_t)nh_arg_int(&j->a, "grid", 2, 1 << 24);
    spectrum_estimate(cmd, j, 2.0 * (double)so.nvec * (double)so.nsteps);
    size_t nn = so.nvec * so.nsteps;
    double *nodes = malloc(nn * sizeof *nodes), *w = malloc(nn * sizeof *w);
    if (!nodes || !w) nh_die(cmd, "out of memory");
    nh_slq_result r;
    NH_CHECK(cmd, nh_curv_slq(j->c, j->op, &so, nodes, w, 0, NULL, 0, NULL, &r));
    nh_cli_check_finite(cmd, "SLQ nodes", nodes, nn);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < nn; i++)
        if (w[i] > 0) { if (nodes[i] < lo) lo = nodes[i]; if (nodes[i] > hi) hi = nodes[i]; }
    double range = hi - lo > 0 ? hi - lo : fabs(hi) + 1e-300;
    double sigma = nh_arg_str(&j->a, "sigma") ? nh_arg_double(&j->a, "sigma") : range / 100;
    if (!(sigma > 0)) nh_die_usage(cmd, "--sigma must be > 0");
    lo -= 5 * sigma;
    hi += 5 * sigma;
    double *grid = malloc(G * sizeof *grid), *den = malloc(G * sizeof *den);
    if (!grid || !den) nh_die(cmd, "out of memory");
    for (size_t i = 0; i < G; i++) grid[i] = lo + (hi - lo) * (double)i / (double)(G - 1);
    NH_CHECK(cmd, nh_curv_slq(j->c, j->op, &so, NULL, NULL, G, grid, sigma, den, &r));
    nh_cli_check_finite(cmd, "density", den, G);
    jarr(j->js, "moments_over_P", r.moments, 4);
    jarr(j->js, "moments_over_P_se", r.moments_se, 4);
    cJSON_AddNumberToObject(j->js, "sigma", sigma);
    if (j->outdir) density_write(cmd, j, G, grid, den, nn, nodes, w);
    if (!j->json) {
        printf("# SLQ of %s: P = %zu, %zu vectors x %zu steps; moments Tr(A^k)/P, k = 1..4:\n",
               nh_arg_str(&j->a, "of"), j->P, so.nvec, so.nsteps);
        for (int k = 0; k < 4; k++) printf("%d %.10g +- %.3g\n", k + 1, r.moments[k], r.moments_se[k]);
    }
    free(nodes); free(w); free(grid); free(den);
}

static int run_spectrum(const nh_cmd *cmd, int argc, char **argv) {
    spectrum_job j;
    memset(&j, 0, sizeof j);
    spectrum_parse(cmd, argc, argv, &j);
    j.c = nh_cli_curv(cmd, j.net, &j.d, j.loss, nh_cli_curv_opts(&j.a));
    j.P = nh_cli_params(cmd, nh_arg_str(&j.a, "params"), j.c, j.js); /* P_B with --params */
    if (j.top) spectrum_top(cmd, &j);
    else spectrum_density(cmd, &j);
    if (j.json) {
        char *txt = cJSON_PrintUnformatted(j.js);
        printf("%s\n", txt);
        free(txt);
    }
    cJSON_Delete(j.js);
    nh_curv_free(j.c);
    nh_net_free(j.net);
    nh_dataset_free(&j.d);
    return 0;
}

const nh_cmd nh_cmd_spectrum = {
    "spectrum", "Top eigenpairs (Lanczos) or the eigenvalue density (SLQ) of H, I or S.",
    "--model DIR --data X.npy --targets Y.npy [--loss L] [--of H|I|S] (--top K | --density)\n"
    "         [--rayleigh] [--json] [--out DIR]",
    "--top K: thick-restart Lanczos with full reorthogonalization on exact matrix-free\n"
    "products; eigenvalues descending with residual norms ||A q - lambda q||.\n"
    "--rayleigh adds q^T I q and q^T S q for each eigenvector q (the paper's Figure 2).\n"
    "--density: stochastic Lanczos quadrature, a Gaussian-broadened density that\n"
    "integrates to 1 (multiply by P for eigenvalues per unit), and the moments\n"
    "Tr(A^k)/P with standard errors.  --json prints one JSON object (\"eigenvalues\",\n"
    "\"residuals\", ...).  --params W0,b0,...: of the diagonal block of those tensors\n"
    "(H_BB, I_BB or S_BB; eigenvectors and moments over P_B = \"dim\" entries; the\n"
    "JSON names them in \"params\").  Per-tensor tables: ntkhess layers.",
    spectrum_opts, run_spectrum};

/* ------------------------------------------------------------- landscape */
static const nh_optspec landscape_opts[] = {
    {"model", "DIR", NULL, "model directory (e.g. a trained network at a minimum)"},
    {"data", "X.npy", NULL, "inputs"},
    {"targets", "Y.npy", NULL, "targets"},
    NH_OPT_LOSS("mse"),
    {"dirs", "I,J", "1,4", "eigenvectors of I by rank, 1 = largest eigenvalue (Figure 3: 1,4)"},
    {"grid", "G", "41", "grid points per axis (>= 1)"},
    {"radius", "R", "1", "the grid spans [-R, R] along each direction (> 0)"},
    {"out", "DIR", NULL, "output directory (landscape.npy, landscape.csv, summary.json)"},
    {"seed", "S", "0", "Lanczos start-vector seed"},
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

static int run_landscape(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_loss loss = nh_arg_loss(cmd, &a);
    size_t dirs[2];
    if (nh_arg_sizes(&a, "dirs", dirs, 2) != 2) nh_die_usage(cmd, "--dirs needs two indices I,J");
    long long G = nh_arg_int(&a, "grid", 1, 1 << 16);
    double R = nh_arg_double(&a, "radius");
    if (!(R > 0)) nh_die_usage(cmd, "--radius must be > 0, got %g", R);
    const char *out = nh_arg_req(&a, "out");
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_model_load(nh_arg_req(&a, "model"), &net));
    const size_t P = nh_net_nparams(net);
    size_t K = dirs[0] > dirs[1] ? dirs[0] : dirs[1];
    if (K > P) nh_die_usage(cmd, "--dirs index %zu exceeds the number of parameters P = %zu", K, P);
    nh_dataset d;
    nh_cli_load_data_f32(cmd, nh_arg_req(&a, "data"), nh_arg_req(&a, "targets"), net, loss, &d);
    nh_curv *c = NULL;
    c = nh_cli_curv(cmd, net, &d, loss, nh_cli_curv_opts(&a));
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.seed = nh_arg_u64(&a, "seed");
    double *ev = malloc(K * sizeof *ev), *V = malloc(K * P * sizeof *V), *res = malloc(K * sizeof *res);
    double *L = malloc((size_t)G * (size_t)G * sizeof *L);
    if (!ev || !V || !res || !L) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_I, K, &lo, ev, V, res, NULL));
    NH_CHECK(cmd, nh_curv_slice(c, net, V + (dirs[0] - 1) * P, V + (dirs[1] - 1) * P, R, (size_t)G, L));
    const char *in[] = {nh_arg_req(&a, "model"), nh_arg_req(&a, "data"), nh_arg_req(&a, "targets")};
    const char *w = nh_out_open(cmd, out, 0, in, 3);
    size_t sh[2] = {(size_t)G, (size_t)G};
    nh_cli_write_npy(cmd, w, "landscape.npy", L, 2, sh);
    size_t cap = 64 + (size_t)G * (size_t)G * 80;
    char *csv = malloc(cap), *p = csv;
    if (!csv) nh_die(cmd, "out of memory");
    p += sprintf(p, "a,b,loss\n");
    for (long long i = 0; i < G; i++)
        for (long long j = 0; j < G; j++) {
            double ai = G > 1 ? R * (2.0 * (double)i - (double)(G - 1)) / (double)(G - 1) : 0;
            double bj = G > 1 ? R * (2.0 * (double)j - (double)(G - 1)) / (double)(G - 1) : 0;
            p += sprintf(p, "%.17g,%.17g,%.17g\n", ai, bj, L[i * G + j]);
        }
    char path[4096];
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, w, "landscape.csv"), csv);
    cJSON *js = cJSON_CreateObject();
    cJSON_AddNumberToObject(js, "dir_a", (double)dirs[0]);
    cJSON_AddNumberToObject(js, "dir_b", (double)dirs[1]);
    cJSON_AddItemToObject(js, "eig_a", jnum(ev[dirs[0] - 1]));
    cJSON_AddItemToObject(js, "eig_b", jnum(ev[dirs[1] - 1]));
    jarr(js, "eigenvalues_I", ev, K);
    cJSON_AddItemToObject(js, "radius", jnum(R));
    cJSON_AddNumberToObject(js, "grid", (double)G);
    cJSON_AddItemToObject(js, "loss_at_center", jnum(nh_curv_loss(c)));
    char *txt = cJSON_Print(js);
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, w, "summary.json"), txt);
    nh_out_commit(cmd);
    free(txt); cJSON_Delete(js); free(csv);
    free(ev); free(V); free(res); free(L);
    nh_curv_free(c); nh_net_free(net); nh_dataset_free(&d);
    return 0;
}

const nh_cmd nh_cmd_landscape = {
    "landscape", "The loss surface along two eigenvectors of I.",
    "--model DIR --data X.npy --targets Y.npy [--loss L] --dirs I,J --grid G --radius R --out DIR",
    "Computes the top max(I,J) eigenvectors u_1, u_2, ... of I by Lanczos and writes\n"
    "C(theta + a u_I + b u_J) on a G x G grid with a, b in [-R, R]: landscape.npy\n"
    "(G x G, row = a, column = b), landscape.csv (a,b,loss) and summary.json (the\n"
    "eigenvalues).  The paper's Figure 3 uses --dirs 1,4.",
    landscape_opts, run_landscape};
