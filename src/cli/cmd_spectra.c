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
    {"out", "FILE.csv", NULL, "CSV of records; FILE.csv.ckpt/ holds the checkpoint for resuming"},
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
static void measure_record(const nh_cmd *cmd, nh_curv *c, size_t M, uint64_t seed, long long step, double eta,
                           FILE *f) {
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
        if (me != 0) return;
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
    /* Tr(S) exact (G . dC/dY) = Tr(H) - Tr(I) with control variates. */
    double trs1 = th.est[0] - ti.est[0];
    /* A record with an overflowed moment is the start of divergence: stop
     * before writing it, so every row in the file is finite. */
    double all[16] = {ti.est[0], ti.est[1], ti.est[2], ti.est[3], th.est[0], th.est[1], th.est[2], th.est[3],
                      th.se[1], th.se[2], th.se[3], orr.is_fro, orr.i_fro, orr.s_fro, orr.tr_s2, nh_curv_loss(c)};
    if (orr.is_fro != 0 && !isfinite(orr.ratio)) all[15] = orr.ratio;
    for (int q = 0; q < 16; q++)
        if (!isfinite(all[q]))
            nh_die(cmd, "diverged at step %lld: the Hessian moments overflowed (loss %.6g); the records up to the last "
                        "finite state are kept (lower --lr)", step, nh_curv_loss(c));
    fprintf(f, "%lld,%.17g,%.17g", step, (double)step * eta, nh_curv_loss(c));
    for (int k = 0; k < 4; k++) fprintf(f, ",%.17g", ti.est[k]);
    fprintf(f, ",%.17g,%.17g,%.17g", trs1, orr.tr_s2, orr.tr_s2_se);
    for (int k = 0; k < 4; k++) fprintf(f, ",%.17g,%.17g", th.est[k], th.se[k]);
    /* ||IS|| = 0 means orthogonal, whatever the norms: ratio 0, not 0/0. */
    double ratio = orr.is_fro == 0 ? 0.0 : orr.ratio;
    fprintf(f, ",%.17g,%.17g,%.17g,%.17g,%.17g\n", orr.is_fro, orr.i_fro, orr.s_fro, orr.s_fro_se, ratio);
}

static int run_measure(const nh_cmd *cmd, int argc, char **argv) {
    /* MPI (when built with it): the probes of each record are split over the
     * ranks; every rank trains the same network, rank 0 writes. */
    nh_par_init(&argc, &argv);
    const int root = nh_par_is_root();
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_loss loss = nh_arg_loss(cmd, &a);
    double eta = nh_arg_double(&a, "lr");
    if (eta <= 0) nh_die_usage(cmd, "--lr must be > 0, got %g", eta);
    long long steps = nh_arg_int(&a, "steps", 0, (long long)1 << 40);
    long long every = nh_arg_int(&a, "every", 1, (long long)1 << 40);
    size_t M = (size_t)nh_arg_int(&a, "probes", 1, 1 << 24);
    uint64_t seed = nh_arg_u64(&a, "seed");
    const char *out = nh_arg_req(&a, "out");
    const char *model = nh_arg_req(&a, "model"), *xp = nh_arg_req(&a, "data"), *tp = nh_arg_req(&a, "targets");
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_model_load(model, &net));
    nh_dataset d;
    nh_cli_load_data(cmd, xp, tp, net, loss, &d);
    char ck[4096], cfgpath[4096];
    snprintf(ck, sizeof ck, "%s.ckpt", out);
    /* Signature: everything that changes the trajectory or the records. */
    nh_cli_path(cfgpath, sizeof cfgpath, model, "config.json");
    char sig_lr[64], sig_every[64], sig_M[64], sig_seed[64];
    snprintf(sig_lr, sizeof sig_lr, "%.17g", eta);
    snprintf(sig_every, sizeof sig_every, "%lld", every);
    snprintf(sig_M, sizeof sig_M, "%zu", M);
    snprintf(sig_seed, sizeof sig_seed, "%llu", (unsigned long long)seed);
    const char *parts[] = {"measure", cfgpath, xp, tp, nh_arg_str(&a, "loss"), sig_lr, sig_every, sig_M, sig_seed};
    unsigned long long sig = nh_ckpt_signature(parts, sizeof parts / sizeof *parts);
    long long start = nh_ckpt_load(cmd, ck, sig, &net);
    FILE *f = NULL;
    if (!root) {
        /* rank 0 writes the CSV and the checkpoints */
    } else if (start >= 0) {
        nh_ckpt_truncate_csv(cmd, out, start);
        f = fopen(out, "a");
        fprintf(stderr, "ntkhess measure: resuming from step %lld (%s)\n", start, ck);
    } else {
        f = fopen(out, "w");
        if (f) {
            fprintf(f, "step,t,loss,tr_I1,tr_I2,tr_I3,tr_I4,tr_S1,tr_S2,tr_S2_se");
            for (int k = 1; k <= 4; k++) fprintf(f, ",tr_H%d,tr_H%d_se", k, k);
            fprintf(f, ",IS_fro,I_fro,S_fro,S_fro_se,IS_ratio\n");
        }
    }
    if (root && !f) nh_die(cmd, "cannot write %s", out);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create_ex(net, d.X, d.T, d.n, loss, nh_cli_curv_opts(&a), &c));
    if (start < 0) {
        measure_record(cmd, c, M, seed, 0, eta, f);
        if (root && fflush(f) != 0) nh_die(cmd, "cannot write %s", out);
        if (root) nh_ckpt_save(cmd, ck, sig, 0, net);
        start = 0;
    }
    double t0 = nh_cli_now();
    for (long long k = start + 1; k <= steps; k++) {
        nh_status st = nh_curv_gd_step(c, net, eta);
        if (st != NH_OK) {
            if (f) fclose(f);
            nh_die(cmd, "%s at step %lld: %s (records up to the last finite state are in %s)", nh_strerror(st), k,
                   nh_last_error(), out);
        }
        if (k % every == 0 || k == steps) {
            measure_record(cmd, c, M, seed, k, eta, f);
            if (root && fflush(f) != 0) nh_die(cmd, "cannot write %s", out);
            if (root) nh_ckpt_save(cmd, ck, sig, k, net);
        }
        if (root) nh_cli_progress("measure: step", (size_t)(k - start), (size_t)(steps - start), nh_cli_now() - t0);
    }
    if (root && fclose(f) != 0) nh_die(cmd, "cannot write %s", out);
    if (root) { /* complete: a rerun recomputes the same rows.  The state file goes
                 * first, so a kill while removing leaves no checkpoint, never a
                 * state without its weights. */
        char stp[4200];
        unlink(nh_cli_path(stp, sizeof stp, ck, "state.txt"));
        nh_ckpt_remove(ck);
    }
    nh_curv_free(c);
    nh_net_free(net);
    nh_dataset_free(&d);
    nh_par_finalize();
    return 0;
}

const nh_cmd nh_cmd_measure = {
    "measure", "Train by gradient descent and record the Hessian's moments along the way.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] --lr ETA --steps K --every E\n"
    "         [--probes M] --out FILE.csv",
    "At step 0 and every E steps (t = step * eta) writes one CSV row: step, t, loss;\n"
    "tr_I1..tr_I4 exact from the NTK Gram (Tr((HC Theta)^k)); tr_S1 exact (G . dC/dY);\n"
    "tr_S2 = ||S||_F^2 by Hutchinson with its standard error; tr_H1..tr_H4 with control\n"
    "variates (exact Tr(I^k) plus an estimate of the remainder) and standard errors\n"
    "(tr_H1 is exact); IS_fro = ||I S||_F exact, I_fro, S_fro (+ se), and\n"
    "IS_ratio = ||IS||_F / (||I||_F ||S||_F).  Rows are flushed as they are written;\n"
    "a run that is killed and started again with the same arguments resumes from\n"
    "the last record (FILE.csv.ckpt/) and ends with the same rows.",
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
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

static int run_spectrum(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_loss loss = nh_arg_loss(cmd, &a);
    nh_op op = parse_op(cmd, nh_arg_req(&a, "of"));
    const int top = nh_arg_str(&a, "top") != NULL, dens = nh_arg_flag(&a, "density");
    if (top == dens) nh_die_usage(cmd, "give exactly one of --top K and --density");
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_model_load(nh_arg_req(&a, "model"), &net));
    const size_t P = nh_net_nparams(net);
    nh_dataset d;
    nh_cli_load_data(cmd, nh_arg_req(&a, "data"), nh_arg_req(&a, "targets"), net, loss, &d);
    const char *outdir = nh_arg_str(&a, "out");
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "of", nh_arg_str(&a, "of"));
    cJSON_AddNumberToObject(js, "P", (double)P);
    nh_curv *c = NULL;
    if (top) {
        long long K = nh_arg_int(&a, "top", 1, (long long)1 << 40);
        if ((size_t)K > P) nh_die_usage(cmd, "--top %lld exceeds the number of parameters P = %zu", K, P);
        double need = ((double)K + 22.0) * 2.0 * (double)P * 8.0;
        if (need > (double)nh_get_mem_limit()) nh_die(cmd, "Lanczos with K = %lld and P = %zu needs %.3g GB", K, P, need / 1e9);
        NH_CHECK(cmd, nh_curv_create_ex(net, d.X, d.T, d.n, loss, nh_cli_curv_opts(&a), &c));
        nh_lanczos_opts lo = nh_lanczos_opts_default();
        lo.which = nh_arg_flag(&a, "smallest") ? NH_WHICH_SA : NH_WHICH_LA;
        lo.tol = nh_arg_double(&a, "tol");
        if (!(lo.tol > 0)) nh_die_usage(cmd, "--tol must be > 0");
        lo.seed = nh_arg_u64(&a, "seed");
        double *ev = malloc((size_t)K * sizeof *ev), *res = malloc((size_t)K * sizeof *res);
        double *V = malloc((size_t)K * P * sizeof *V);
        if (!ev || !res || !V) nh_die(cmd, "out of memory");
        nh_lanczos_info info;
        NH_CHECK(cmd, nh_curv_lanczos(c, op, (size_t)K, &lo, ev, V, res, &info));
        jarr(js, "eigenvalues", ev, (size_t)K);
        jarr(js, "residuals", res, (size_t)K);
        cJSON_AddNumberToObject(js, "products", (double)info.nproducts);
        cJSON_AddNumberToObject(js, "restarts", (double)info.nrestarts);
        if (nh_arg_flag(&a, "rayleigh")) {
            double *ri = malloc((size_t)K * sizeof *ri), *rs = malloc((size_t)K * sizeof *rs);
            if (!ri || !rs) nh_die(cmd, "out of memory");
            NH_CHECK(cmd, nh_curv_rayleigh(c, (size_t)K, V, ri, rs));
            jarr(js, "rayleigh_I", ri, (size_t)K);
            jarr(js, "rayleigh_S", rs, (size_t)K);
            free(ri); free(rs);
        }
        if (outdir) {
            nh_cli_mkdir(cmd, outdir);
            size_t sh1[1] = {(size_t)K}, sh2[2] = {(size_t)K, P};
            nh_cli_write_npy(cmd, outdir, "eigenvalues.npy", ev, 1, sh1);
            nh_cli_write_npy(cmd, outdir, "residuals.npy", res, 1, sh1);
            if (nh_arg_flag(&a, "save-vectors")) nh_cli_write_npy(cmd, outdir, "eigenvectors.npy", V, 2, sh2);
        }
        if (!nh_arg_flag(&a, "json")) {
            printf("# k eigenvalue residual (%s, P = %zu, %zu products)\n", nh_arg_str(&a, "of"), P, info.nproducts);
            for (long long k = 0; k < K; k++) printf("%lld %.17g %.3g\n", k + 1, ev[k], res[k]);
        }
        free(ev); free(res); free(V);
    } else {
        nh_slq_opts so = nh_slq_opts_default();
        so.nvec = (size_t)nh_arg_int(&a, "vectors", 1, 1 << 20);
        so.nsteps = (size_t)nh_arg_int(&a, "lanczos-steps", 1, 1 << 20);
        if (so.nsteps > P) so.nsteps = P;
        so.seed = nh_arg_u64(&a, "seed");
        size_t G = (size_t)nh_arg_int(&a, "grid", 2, 1 << 24);
        NH_CHECK(cmd, nh_curv_create_ex(net, d.X, d.T, d.n, loss, nh_cli_curv_opts(&a), &c));
        size_t nn = so.nvec * so.nsteps;
        double *nodes = malloc(nn * sizeof *nodes), *w = malloc(nn * sizeof *w);
        if (!nodes || !w) nh_die(cmd, "out of memory");
        nh_slq_result r;
        NH_CHECK(cmd, nh_curv_slq(c, op, &so, nodes, w, 0, NULL, 0, NULL, &r));
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < nn; i++)
            if (w[i] > 0) { if (nodes[i] < lo) lo = nodes[i]; if (nodes[i] > hi) hi = nodes[i]; }
        double range = hi - lo > 0 ? hi - lo : fabs(hi) + 1e-300;
        double sigma = nh_arg_str(&a, "sigma") ? nh_arg_double(&a, "sigma") : range / 100;
        if (!(sigma > 0)) nh_die_usage(cmd, "--sigma must be > 0");
        lo -= 5 * sigma;
        hi += 5 * sigma;
        double *grid = malloc(G * sizeof *grid), *den = malloc(G * sizeof *den);
        if (!grid || !den) nh_die(cmd, "out of memory");
        for (size_t i = 0; i < G; i++) grid[i] = lo + (hi - lo) * (double)i / (double)(G - 1);
        NH_CHECK(cmd, nh_curv_slq(c, op, &so, NULL, NULL, G, grid, sigma, den, &r));
        jarr(js, "moments_over_P", r.moments, 4);
        jarr(js, "moments_over_P_se", r.moments_se, 4);
        cJSON_AddNumberToObject(js, "sigma", sigma);
        if (outdir) {
            nh_cli_mkdir(cmd, outdir);
            size_t cap = 64 + G * 60;
            char *csv = malloc(cap), *p = csv;
            if (!csv) nh_die(cmd, "out of memory");
            p += sprintf(p, "eigenvalue,density\n");
            for (size_t i = 0; i < G; i++) p += sprintf(p, "%.17g,%.17g\n", grid[i], den[i]);
            char path[4096];
            nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, outdir, "density.csv"), csv);
            free(csv);
            size_t sh[1] = {nn};
            nh_cli_write_npy(cmd, outdir, "nodes.npy", nodes, 1, sh);
            nh_cli_write_npy(cmd, outdir, "weights.npy", w, 1, sh);
        }
        if (!nh_arg_flag(&a, "json")) {
            printf("# SLQ of %s: P = %zu, %zu vectors x %zu steps; moments Tr(A^k)/P, k = 1..4:\n",
                   nh_arg_str(&a, "of"), P, so.nvec, so.nsteps);
            for (int k = 0; k < 4; k++) printf("%d %.10g +- %.3g\n", k + 1, r.moments[k], r.moments_se[k]);
        }
        free(nodes); free(w); free(grid); free(den);
    }
    if (nh_arg_flag(&a, "json")) {
        char *txt = cJSON_PrintUnformatted(js);
        printf("%s\n", txt);
        free(txt);
    }
    cJSON_Delete(js);
    nh_curv_free(c);
    nh_net_free(net);
    nh_dataset_free(&d);
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
    "\"residuals\", ...).",
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
    nh_cli_load_data(cmd, nh_arg_req(&a, "data"), nh_arg_req(&a, "targets"), net, loss, &d);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create_ex(net, d.X, d.T, d.n, loss, nh_cli_curv_opts(&a), &c));
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.seed = nh_arg_u64(&a, "seed");
    double *ev = malloc(K * sizeof *ev), *V = malloc(K * P * sizeof *V), *res = malloc(K * sizeof *res);
    double *L = malloc((size_t)G * (size_t)G * sizeof *L);
    if (!ev || !V || !res || !L) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_curv_lanczos(c, NH_OP_I, K, &lo, ev, V, res, NULL));
    NH_CHECK(cmd, nh_curv_slice(c, net, V + (dirs[0] - 1) * P, V + (dirs[1] - 1) * P, R, (size_t)G, L));
    nh_cli_mkdir(cmd, out);
    size_t sh[2] = {(size_t)G, (size_t)G};
    nh_cli_write_npy(cmd, out, "landscape.npy", L, 2, sh);
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
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "landscape.csv"), csv);
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
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "summary.json"), txt);
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
