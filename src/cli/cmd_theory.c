/* cmd_theory.c -- ntkhess kernel, gram, predict: the infinite-width theory. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* JSON keys of the kernels, in nh_kernel order (the CLI contract). */
static const char *const nh_kernel_keys[NH_K_COUNT] = {"Sigma", "SigmaDot", "SigmaDDot", "Theta",
                                                        "Upsilon", "Phi", "Xi", "Lambda"};

static nh_kernel_opts parse_kernel_opts(const nh_cmd *cmd, const nh_args *a) {
    nh_kernel_opts o = nh_kernel_opts_default();
    o.act = nh_arg_act(cmd, a, NULL);
    o.depth = (size_t)nh_arg_int(a, "depth", 1, 1000);
    o.beta = nh_arg_double(a, "beta");
    if (nh_arg_str(a, "nq")) o.nq = (size_t)nh_arg_int(a, "nq", 1, NH_GAUSS_NQ_MAX);
    return o;
}

/* A number for JSON: round-trip text, or null for a non-finite value (flagged). */
static cJSON *json_num(double v, int *nonfinite) {
    if (!isfinite(v)) *nonfinite = 1;
    return nh_cli_json_num(v);
}

static cJSON *kernel_block(const double *out, size_t l, size_t k, int *nf) {
    const double *b = out + (l * NH_K_COUNT + k) * 4;
    cJSON *rows = cJSON_CreateArray();
    for (int r = 0; r < 2; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; c < 2; c++) cJSON_AddItemToArray(row, json_num(b[2 * r + c], nf));
        cJSON_AddItemToArray(rows, row);
    }
    return rows;
}

/* ---------------------------------------------------------------- kernel */
static const nh_optspec kernel_opts[] = {
    NH_OPT_ACT("softplus"),
    {"depth", "L", NULL, "depth L >= 1 (number of weight layers)"},
    {"beta", "B", "0.1", "bias scale beta"},
    {"x", "V1", NULL, "first input, comma-separated"},
    {"y", "V2", NULL, "second input, comma-separated, same length"},
    {"layers", NULL, NULL, "add a \"layers\" array with every kernel at every l = 1..L"},
    {"nq", "Q", "", "Gauss-Hermite nodes per axis (default: chosen per activation for ~1e-13)"},
    {NULL, NULL, NULL, NULL}};

static int run_kernel(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_kernel_opts o = parse_kernel_opts(cmd, &a);
    double *x, *y;
    size_t n0 = nh_arg_doubles(&a, "x", &x), n1 = nh_arg_doubles(&a, "y", &y);
    if (n0 != n1) nh_die_usage(cmd, "--x has %zu entries but --y has %zu; they must have the same length", n0, n1);
    double *out = malloc(o.depth * NH_K_COUNT * 4 * sizeof *out);
    if (!out) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_kernels_pair(&o, n0, x, y, out));
    int nf = 0;
    cJSON *js = cJSON_CreateObject();
    for (int k = 0; k < NH_K_COUNT; k++) cJSON_AddItemToObject(js, nh_kernel_keys[k], kernel_block(out, o.depth - 1, (size_t)k, &nf));
    if (nh_arg_flag(&a, "layers")) {
        cJSON *arr = cJSON_AddArrayToObject(js, "layers");
        for (size_t l = 0; l < o.depth; l++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "l", (double)(l + 1));
            for (int k = 0; k < NH_K_COUNT; k++) cJSON_AddItemToObject(e, nh_kernel_keys[k], kernel_block(out, l, (size_t)k, &nf));
            cJSON_AddItemToArray(arr, e);
        }
    }
    char *txt = cJSON_PrintUnformatted(js);
    if (nf) nh_die(cmd, "a kernel value is not finite (inputs too large for this depth?)");
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(js);
    free(out); free(x); free(y);
    return 0;
}

const nh_cmd nh_cmd_kernel = {
    "kernel", "Infinite-width kernels of two inputs, as JSON.",
    "[--act NAME] --depth L [--beta B] --x V1 --y V2 [--layers]",
    "Prints one JSON object with keys Sigma, SigmaDot, SigmaDDot, Theta, Upsilon,\n"
    "Phi, Xi, Lambda; each value is [[K(x,x), K(x,y)], [K(y,x), K(y,y)]] at depth L.\n"
    "Phi(x,y) = lim E[g(x) f(y)] and Lambda(x,y) = lim grad g(x) . grad f(y) are not\n"
    "symmetric (g = Tr Hess_theta f).  SigmaDot(l), SigmaDDot(l) are expectations under\n"
    "Sigma(l-1); at l = 1 they are undefined and given as 0.  Recursions: the corrected\n"
    "formula sheet (docs/deviations.md lists every change from the paper).",
    kernel_opts, run_kernel};

/* ------------------------------------------------------------------ gram */
static const nh_optspec gram_opts[] = {
    NH_OPT_ACT("softplus"),
    {"depth", "L", NULL, "depth L >= 1"},
    {"beta", "B", "0.1", "bias scale beta"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"out", "DIR", NULL, "output directory"},
    {"nq", "Q", "", "Gauss-Hermite nodes per axis (default: automatic)"},
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

static double *load_X(const nh_cmd *cmd, const char *path, size_t *n, size_t *n0) {
    double *X;
    size_t nd, sh[NH_NPY_MAXDIM];
    NH_CHECK(cmd, nh_npy_read(path, &X, &nd, sh));
    if (nd != 2) nh_die(cmd, "%s: data must be 2-D (N, n_0), got %zu dimensions", path, nd);
    if (sh[0] == 0 || sh[1] == 0) nh_die(cmd, "%s: data is empty", path);
    for (size_t i = 0; i < sh[0] * sh[1]; i++)
        if (!isfinite(X[i])) nh_die(cmd, "%s: non-finite value at row %zu, column %zu", path, i / sh[1], i % sh[1]);
    *n = sh[0];
    *n0 = sh[1];
    return X;
}

static const char *const nh_gram_files[NH_K_COUNT] = {"Sigma.npy", NULL, NULL, "Theta.npy", "Upsilon.npy",
                                                       "Phi.npy", "Xi.npy", "Lambda.npy"};

static void compute_grams(const nh_cmd *cmd, const nh_kernel_opts *o, size_t n, size_t n0, const double *X,
                          double *mats[NH_K_COUNT]) {
    double need = 6.0 * (double)n * (double)n * 8.0;
    if (need > (double)nh_get_mem_limit()) nh_die(cmd, "six %zu x %zu Gram matrices need %.3g GB", n, n, need / 1e9);
    for (int k = 0; k < NH_K_COUNT; k++) {
        mats[k] = NULL;
        if (nh_gram_files[k] && !(mats[k] = malloc(n * n * sizeof(double)))) nh_die(cmd, "out of memory");
    }
    NH_CHECK(cmd, nh_kernels_gram(o, n, n0, X, mats));
}

static int run_gram(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_kernel_opts o = parse_kernel_opts(cmd, &a);
    size_t n, n0;
    double *X = load_X(cmd, nh_arg_req(&a, "data"), &n, &n0);
    const char *out = nh_arg_req(&a, "out");
    double *mats[NH_K_COUNT];
    double t0 = nh_cli_now();
    compute_grams(cmd, &o, n, n0, X, mats);
    double dt = nh_cli_now() - t0;
    const char *in = nh_arg_req(&a, "data");
    const char *w = nh_out_open(cmd, out, 0, &in, 1);
    size_t sh[2] = {n, n};
    for (int k = 0; k < NH_K_COUNT; k++)
        if (mats[k]) { nh_cli_write_npy(cmd, w, nh_gram_files[k], mats[k], 2, sh); free(mats[k]); }
    nh_out_commit(cmd);
    fprintf(stderr, "ntkhess gram: N = %zu, depth %zu, %s: 6 kernels in %.3g s, written to %s\n", n, o.depth,
            nh_act_name(o.act), dt, out);
    free(X);
    return 0;
}

const nh_cmd nh_cmd_gram = {
    "gram", "Gram matrices of the infinite-width kernels on a data set.",
    "[--act NAME] --depth L [--beta B] --data X.npy --out DIR",
    "Writes Sigma.npy, Theta.npy, Upsilon.npy, Phi.npy, Xi.npy, Lambda.npy, each N x N\n"
    "with entry [i][j] = K(x_i, x_j) at depth L (Phi and Lambda are not symmetric).",
    gram_opts, run_gram};

/* --------------------------------------------------------------- predict */
static const nh_optspec predict_opts[] = {
    NH_OPT_ACT("softplus"),
    {"depth", "L", NULL, "depth L >= 1"},
    {"beta", "B", "0.1", "bias scale beta"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets: (N, n_L) for mse/bce (labels -1/+1), class ids (N,) for ce"},
    NH_OPT_LOSS("mse"),
    {"classes", "K", "", "number of outputs for ce (default: largest label + 1; labels and K at most 100000)"},
    {"times", "T1,T2,...", NULL, "increasing gradient-flow times t = k * eta"},
    {"expect", NULL, NULL, "expectation over the initialization (closed form for mse, sampling otherwise)"},
    {"y0", "Y0.npy", "", "one draw: network outputs at t = 0, (N, n_L)"},
    {"g0", "G0.npy", "", "one draw: G at t = 0, (N, n_L) (ntkhess curvature writes both)"},
    {"samples", "M", "1000", "draws of (Y(0), G(0)) for --expect with bce/ce"},
    {"seed", "S", "0", "seed of those draws"},
    {"out", "FILE.csv", "", "CSV output (default: standard output)"},
    {"spectrum", "FILE.npy", "", "also write the limiting spectrum of I, (n_t, N n_L), at each time"},
    {"nq", "Q", "", "Gauss-Hermite nodes per axis (default: automatic)"},
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

static double *load_matrix(const nh_cmd *cmd, const char *path, size_t n, size_t nout) {
    double *M;
    size_t nd, sh[NH_NPY_MAXDIM];
    NH_CHECK(cmd, nh_npy_read(path, &M, &nd, sh));
    int ok = (nd == 2 && sh[0] == n && sh[1] == nout) || (nd == 1 && nout == 1 && sh[0] == n);
    if (!ok) nh_die(cmd, "%s: expected shape (%zu, %zu)", path, n, nout);
    for (size_t i = 0; i < n * nout; i++)
        if (!isfinite(M[i])) nh_die(cmd, "%s: non-finite value at index %zu", path, i);
    return M;
}

typedef struct predict_job {
    nh_kernel_opts ko;
    nh_loss loss;
    int expect, have_se;
    const char *y0p, *g0p, *xpath, *tpath, *out, *spec;
    double *t, *X, *T, *Y0, *G0;
    size_t nt, n, n0, nout;
    nh_predict_opts po;
} predict_job;

/* Targets and the output count (ce: class ids, bounded by NH_MAX_CLASSES). */
static void predict_targets(const nh_cmd *cmd, const nh_args *a, predict_job *j) {
    size_t nd, sh[NH_NPY_MAXDIM];
    NH_CHECK(cmd, nh_npy_read(j->tpath, &j->T, &nd, sh));
    if (nd < 1 || nd > 2 || sh[0] != j->n) nh_die(cmd, "%s: expected %zu rows of targets", j->tpath, j->n);
    nh_cli_check_finite(cmd, j->tpath, j->T, nd == 1 ? sh[0] : sh[0] * sh[1]);
    if (j->loss == NH_LOSS_CE) {
        if (!(nd == 1 || sh[1] == 1)) nh_die(cmd, "%s: ce targets are class ids of shape (N,)", j->tpath);
        size_t k = nh_cli_ce_classes(cmd, j->tpath, j->T, j->n);
        j->nout = nh_arg_str(a, "classes") ? (size_t)nh_arg_int(a, "classes", 2, NH_MAX_CLASSES) : k;
    } else {
        j->nout = nd == 1 ? 1 : sh[1];
    }
    NH_CHECK(cmd, nh_loss_check_targets(j->loss, j->T, j->n, j->nout));
}

static void predict_parse(const nh_cmd *cmd, int argc, char **argv, predict_job *j) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    j->ko = parse_kernel_opts(cmd, &a);
    j->loss = nh_arg_loss(cmd, &a);
    j->expect = nh_arg_flag(&a, "expect");
    j->y0p = nh_arg_str(&a, "y0"), j->g0p = nh_arg_str(&a, "g0");
    if (j->expect == (j->y0p != NULL)) nh_die_usage(cmd, "give either --expect or --y0 Y0.npy --g0 G0.npy");
    if ((j->y0p != NULL) != (j->g0p != NULL)) nh_die_usage(cmd, "--y0 and --g0 go together");
    j->nt = nh_arg_doubles(&a, "times", &j->t);
    for (size_t i = 0; i < j->nt; i++) {
        if (j->t[i] < 0) nh_die_usage(cmd, "--times must be >= 0, got %g", j->t[i]);
        if (i && j->t[i] <= j->t[i - 1])
            nh_die_usage(cmd, "--times must be strictly increasing (%g after %g)", j->t[i], j->t[i - 1]);
    }
    j->out = nh_arg_str(&a, "out"), j->spec = nh_arg_str(&a, "spectrum");
    j->xpath = nh_arg_req(&a, "data"), j->tpath = nh_arg_req(&a, "targets");
    const char *inputs[] = {j->xpath, j->tpath, j->y0p, j->g0p};
    for (int i = 0; i < 4; i++) /* an output equal to an input is refused */
        if (inputs[i] && ((j->out && !strcmp(inputs[i], j->out)) || (j->spec && !strcmp(inputs[i], j->spec))))
            nh_die_usage(cmd, "the output would overwrite the input %s; choose another name", inputs[i]);
    j->X = load_X(cmd, j->xpath, &j->n, &j->n0);
    predict_targets(cmd, &a, j);
    j->po = nh_predict_opts_default();
    j->po.nsamples = (size_t)nh_arg_int(&a, "samples", 2, (long long)1 << 32);
    j->po.seed = nh_arg_u64(&a, "seed");
    j->Y0 = j->y0p ? load_matrix(cmd, j->y0p, j->n, j->nout) : NULL;
    j->G0 = j->g0p ? load_matrix(cmd, j->g0p, j->n, j->nout) : NULL;
}

static void predict_compute(const nh_cmd *cmd, predict_job *j, const nh_grams *g, nh_moments *mom, nh_moments *se,
                            double *Yt) {
    nh_predict_diag diag;
    if (j->expect && j->loss == NH_LOSS_MSE) {
        NH_CHECK(cmd, nh_predict_mse_expect(g, j->nout, j->T, j->nt, j->t, &j->po, mom, &diag));
    } else if (j->expect) {
        NH_CHECK(cmd, nh_predict_sample(g, j->loss, j->nout, j->T, j->nt, j->t, &j->po, mom, se, &diag));
        j->have_se = 1;
    } else if (j->loss == NH_LOSS_MSE) {
        NH_CHECK(cmd, nh_predict_mse(g, j->nout, j->T, j->Y0, j->G0, j->nt, j->t, &j->po, Yt, NULL, mom, &diag));
    } else {
        NH_CHECK(cmd, nh_predict_ode(g, j->loss, j->nout, j->T, j->Y0, j->G0, j->nt, j->t, &j->po, Yt, NULL, mom, &diag));
    }
    if (diag.theta_clipped)
        fprintf(stderr, "ntkhess predict: warning: %zu negative eigenvalues of the NTK Gram clipped to 0 (min %.3g)\n",
                diag.theta_clipped, diag.theta_eig_min);
}

/* The limiting spectrum of I at each time, (n_t, N n_L); NULL unless asked. */
static double *predict_spectrum(const nh_cmd *cmd, const predict_job *j, const nh_grams *g, const double *Yt) {
    if (!j->spec) return NULL;
    size_t m = j->n * j->nout;
    double *eig = malloc(j->nt * m * sizeof *eig), *Yz = calloc(m, sizeof *Yz);
    if (!eig || !Yz) nh_die(cmd, "out of memory");
    for (size_t i = 0; i < j->nt; i++) {
        const double *Yi = (j->expect || j->loss == NH_LOSS_MSE) ? Yz : Yt + i * m;
        NH_CHECK(cmd, nh_predict_spectrum_i(g, j->loss, j->nout, j->T, Yi, eig + i * m));
    }
    free(Yz);
    nh_cli_check_finite(cmd, "the limiting spectrum", eig, j->nt * m);
    return eig;
}

/* CSV: the contract's columns, then standard errors when sampled.  Every
 * value is checked first: a non-finite moment fails the command. */
static char *predict_csv(const nh_cmd *cmd, const predict_job *j, const nh_moments *mom, const nh_moments *se) {
    size_t cap = 512 + j->nt * 1024;
    char *csv = malloc(cap), *p = csv;
    if (!csv) nh_die(cmd, "out of memory");
    p += sprintf(p, "t,tr_I1,tr_I2,tr_I3,tr_I4,tr_S1,tr_S2,tr_H1,tr_H2,tr_H3,tr_H4%s\n",
                 j->have_se ? ",tr_I1_se,tr_I2_se,tr_I3_se,tr_I4_se,tr_S1_se,tr_S2_se,tr_H1_se,tr_H2_se,tr_H3_se,tr_H4_se" : "");
    for (size_t i = 0; i < j->nt; i++) {
        for (int s = 0; s < 1 + j->have_se; s++) {
            const nh_moments *q = s ? &se[i] : &mom[i];
            double v[10] = {q->tr_i[0], q->tr_i[1], q->tr_i[2], q->tr_i[3], q->tr_s[0], q->tr_s[1],
                            q->tr_h[0], q->tr_h[1], q->tr_h[2], q->tr_h[3]};
            for (int k = 0; k < 10; k++)
                if (!isfinite(v[k]))
                    nh_die(cmd, "%s: the predicted moments at t = %g are not finite (targets or times too large?); "
                                "no output written", nh_strerror(NH_ENONFINITE), j->t[i]);
            if (!s) p += sprintf(p, "%.17g", j->t[i]);
            for (int k = 0; k < 10; k++) p += sprintf(p, ",%.17g", v[k]);
        }
        p += sprintf(p, "\n");
    }
    return csv;
}

static int run_predict(const nh_cmd *cmd, int argc, char **argv) {
    predict_job j;
    memset(&j, 0, sizeof j);
    predict_parse(cmd, argc, argv, &j);
    double *mats[NH_K_COUNT];
    compute_grams(cmd, &j.ko, j.n, j.n0, j.X, mats);
    nh_grams g = {j.n, mats[NH_K_THETA], mats[NH_K_LAMBDA], mats[NH_K_UPSILON], mats[NH_K_PHI], mats[NH_K_XI],
                  mats[NH_K_SIGMA]};
    nh_moments *mom = calloc(j.nt, sizeof *mom), *se = calloc(j.nt, sizeof *se);
    double *Yt = malloc(j.nt * j.n * j.nout * sizeof *Yt);
    if (!mom || !se || !Yt) nh_die(cmd, "out of memory");
    predict_compute(cmd, &j, &g, mom, se, Yt);
    double *eig = predict_spectrum(cmd, &j, &g, Yt);
    char *csv = predict_csv(cmd, &j, mom, se);
    /* Everything is computed and checked: now the outputs, each atomic. */
    if (eig) {
        size_t shs[2] = {j.nt, j.n * j.nout};
        NH_CHECK(cmd, nh_npy_write(j.spec, eig, 2, shs));
    }
    if (j.out) nh_cli_write_result(cmd, j.out, csv);
    else fputs(csv, stdout);
    free(csv); free(eig);
    for (int k = 0; k < NH_K_COUNT; k++) free(mats[k]);
    free(mom); free(se); free(Yt); free(j.X); free(j.T); free(j.Y0); free(j.G0); free(j.t);
    return 0;
}

const nh_cmd nh_cmd_predict = {
    "predict", "Predicted Hessian moments Tr(H^k) = Tr(I^k) + Tr(S^k) along training.",
    "[--act NAME] --depth L [--beta B] --data X.npy --targets Y.npy [--loss NAME]\n"
    "         --times T1,T2,... (--expect | --y0 Y0.npy --g0 G0.npy) [--out FILE.csv]",
    "Theorem 1 and Corollary 1 (corrected; docs/deviations.md) at the gradient-flow\n"
    "times t = k * eta of C = (1/N) sum_i c_i(f(x_i)).  MSE: closed form from one\n"
    "eigendecomposition of the NTK Gram (e^{-t Theta/N}).  bce/ce: the ODEs\n"
    "dY/dt = -Theta~ grad C(Y), dG/dt = -Lambda~ grad C(Y) by adaptive Dormand-Prince 5(4).\n"
    "--expect averages over the initialization: closed form for mse; for bce/ce,\n"
    "--samples draws of (Y(0), G(0)) from their Gaussian law (covariances Sigma, Phi,\n"
    "Xi), with standard-error columns appended.  --y0/--g0 predict one network from\n"
    "its own Y(0), G(0) (ntkhess curvature writes Y.npy and G.npy).\n"
    "CSV columns: t,tr_I1,tr_I2,tr_I3,tr_I4,tr_S1,tr_S2,tr_H1,tr_H2,tr_H3,tr_H4\n"
    "(Tr(S^k) = 0 for k > 2 in the limit, so tr_H3 = tr_I3 and tr_H4 = tr_I4).",
    predict_opts, run_predict};
