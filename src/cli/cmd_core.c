/* cmd_core.c -- ntkhess init, train, curvature. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NH_MAXDEPTH 64

/* ------------------------------------------------------------------ init */
static const nh_optspec init_opts[] = {
    {"widths", "LIST", NULL, "layer widths n_0,...,n_L (depth L = entries - 1), e.g. 196,1000,1000,1"},
    {"act", "NAME[,NAME...]", "softplus",
     "nonlinearity for every hidden layer, or a comma list of L-1 (one per hidden layer): {acts}; "
     "NAME:P for {act_params}"},
    {"beta", "B", "0.1", "bias scale beta in a~ = W a / sqrt(n) + beta b (ntk, mf)"},
    {"seed", "S", "0", "seed of the parameter generator (xoshiro256**, see docs/conventions.md)"},
    {"param", "ntk|mf|standard", "ntk",
     "parametrization: ntk; mf (mean field: output divided by sqrt(n_{L-1})); standard (PyTorch nn.Linear: "
     "a~ = W a + b, PyTorch's default init)"},
    {"no-bias", "LIST", NULL, "comma list of layers l (0..L-1) without bias b_l"},
    {"out", "DIR", NULL, "model directory to write (config.json, W0.npy, b0.npy, ...)"},
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

/* --act: one spec for all hidden layers or L-1 comma-separated specs. */
static void init_acts(const nh_cmd *cmd, const char *spec, size_t L, nh_act *acts, double *ap) {
    char buf[1024];
    if (strlen(spec) >= sizeof buf) nh_die_usage(cmd, "--act is too long");
    if (spec[0] == ',' || strstr(spec, ",,") || spec[strlen(spec) - 1] == ',')
        nh_die_usage(cmd, "--act: empty entry in '%s'", spec);
    strcpy(buf, spec);
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == NH_MAXDEPTH) nh_die_usage(cmd, "--act: more than %d entries", NH_MAXDEPTH);
        acts[n] = nh_cli_act_spec(cmd, "act", tok, &ap[n]);
        n++;
    }
    if (n == 1)
        for (size_t i = 1; i + 1 < L; i++) { acts[i] = acts[0]; ap[i] = ap[0]; }
    else if (n != L - 1)
        nh_die_usage(cmd, "--act lists %zu activations but --widths gives %zu hidden layer(s)", n, L - 1);
}

/* --no-bias: layer indices 0..L-1. */
static void init_bias(const nh_cmd *cmd, const char *spec, size_t L, unsigned char *bias) {
    for (size_t l = 0; l < L; l++) bias[l] = 1;
    if (!spec) return;
    for (const char *p = spec; *p;) {
        char *end;
        unsigned long v = *p >= '0' && *p <= '9' ? strtoul(p, &end, 10) : (end = (char *)p, 0);
        if (end == p || v >= L) nh_die_usage(cmd, "--no-bias: '%s' is not a list of layers 0..%zu", spec, L - 1);
        bias[v] = 0;
        p = *end == ',' && end[1] ? end + 1 : end;
        if (*p && p == end) nh_die_usage(cmd, "--no-bias: '%s' is not a list of layers 0..%zu", spec, L - 1);
    }
}

static int run_init(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    size_t w[NH_MAXDEPTH + 1];
    size_t nw = nh_arg_sizes(&a, "widths", w, NH_MAXDEPTH + 1);
    if (nw < 2) nh_die_usage(cmd, "--widths needs at least 2 entries (n_0 and n_L)");
    nh_net_config c = nh_net_config_default();
    c.depth = nw - 1;
    c.widths = w;
    nh_act acts[NH_MAXDEPTH];
    double ap[NH_MAXDEPTH];
    unsigned char bias[NH_MAXDEPTH];
    init_acts(cmd, nh_arg_req(&a, "act"), c.depth, acts, ap);
    init_bias(cmd, nh_arg_str(&a, "no-bias"), c.depth, bias);
    c.act = acts[0];
    c.acts = acts;
    c.act_params = ap;
    c.bias = bias;
    c.beta = nh_arg_double(&a, "beta");
    const char *p = nh_arg_req(&a, "param");
    if (strcmp(p, "ntk") == 0) c.param = NH_PARAM_NTK;
    else if (strcmp(p, "mf") == 0) c.param = NH_PARAM_MF;
    else if (strcmp(p, "standard") == 0) c.param = NH_PARAM_STANDARD;
    else nh_die_usage(cmd, "--param must be ntk, mf or standard, got '%s'", p);
    if (c.param == NH_PARAM_STANDARD && nh_arg_flag(&a, "beta"))
        nh_die_usage(cmd, "--beta has no effect with --param standard (layers are W a + b)");
    uint64_t seed = nh_arg_u64(&a, "seed");
    const char *out = nh_arg_req(&a, "out");
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_net_create(&c, &net));
    if (c.param == NH_PARAM_STANDARD) nh_net_init_uniform_fanin(net, seed);
    else nh_net_init_normal(net, seed);
    NH_CHECK(cmd, nh_model_save(out, net));
    fprintf(stderr, "ntkhess init: wrote %s (depth %zu, P = %zu parameters)\n", out, c.depth, nh_net_nparams(net));
    nh_net_free(net);
    return 0;
}

const nh_cmd nh_cmd_init = {
    "init", "Create a network with random parameters and write it as a model directory.",
    "--widths LIST [--act NAME[,NAME...]] [--beta B] [--seed S] [--param ntk|mf|standard]\n"
    "         [--no-bias LIST] --out DIR",
    "The model directory holds config.json ({\"widths\", \"act\", \"beta\", \"param\"}, and\n"
    "\"bias\" when a layer has none) and W0.npy, b0.npy, ..., W{L-1}.npy, b{L-1}.npy (float64,\n"
    "W_l of shape (n_{l+1}, n_l)).  ntk and mf draw every parameter iid N(0,1); standard\n"
    "draws PyTorch's default nn.Linear init, U[-1/sqrt(n_l), 1/sqrt(n_l)) for W_l and b_l.\n"
    "The same seed gives bit-identical parameters on every IEEE-754 machine.",
    init_opts, run_init};

/* --------------------------------------------------------- shared pieces */
static nh_net *load_model(const nh_cmd *cmd, const char *dir) {
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_model_load(dir, &net));
    return net;
}

/* ----------------------------------------------------------------- train */
static const nh_optspec train_opts[] = {
    {"model", "DIR", NULL, "model directory to start from"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets: (N, n_L) for mse, labels -1/+1 (N, n_L) for bce, class ids (N,) for ce"},
    NH_OPT_LOSS("mse"),
    {"lr", "ETA", NULL, "learning rate eta (> 0)"},
    {"steps", "K", NULL, "number of full-batch gradient-descent steps"},
    {"out", "DIR", NULL, "model directory for the trained network (plus train.csv)"},
    {"log-every", "E", "1", "write a train.csv row every E steps"},
    {"checkpoint-every", "C", "100", "save a checkpoint (DIR2/checkpoint/) every C steps for resuming"},
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

static int run_train(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_loss loss = nh_arg_loss(cmd, &a);
    double eta = nh_arg_double(&a, "lr");
    if (eta <= 0) nh_die_usage(cmd, "--lr must be > 0, got %g", eta);
    long long steps = nh_arg_int(&a, "steps", 0, (long long)1 << 40);
    long long every = nh_arg_int(&a, "log-every", 1, (long long)1 << 40);
    long long ckev = nh_arg_int(&a, "checkpoint-every", 1, (long long)1 << 40);
    const char *out = nh_arg_req(&a, "out");
    const char *model = nh_arg_req(&a, "model"), *xp = nh_arg_req(&a, "data"), *tp = nh_arg_req(&a, "targets");
    nh_net *net = load_model(cmd, model);
    nh_dataset d;
    nh_cli_load_data(cmd, xp, tp, net, loss, &d);
    nh_cli_mkdir(cmd, out);
    char path[4096], ck[4096], cfgpath[4096], sig_lr[64], sig_ev[64];
    nh_cli_path(path, sizeof path, out, "train.csv");
    nh_cli_path(ck, sizeof ck, out, "checkpoint");
    nh_cli_path(cfgpath, sizeof cfgpath, model, "config.json");
    snprintf(sig_lr, sizeof sig_lr, "%.17g", eta);
    snprintf(sig_ev, sizeof sig_ev, "%lld", every);
    const char *parts[] = {"train", cfgpath, xp, tp, nh_arg_str(&a, "loss"), sig_lr, sig_ev};
    unsigned long long sig = nh_ckpt_signature(parts, sizeof parts / sizeof *parts);
    long long start = nh_ckpt_load(cmd, ck, sig, &net);
    FILE *log;
    if (start >= 0) {
        nh_ckpt_truncate_csv(cmd, path, start);
        log = fopen(path, "a");
        fprintf(stderr, "ntkhess train: resuming from step %lld (%s)\n", start, ck);
    } else {
        start = 0;
        log = fopen(path, "w");
    }
    if (!log) nh_die(cmd, "cannot write %s", path);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create_ex(net, d.X, d.T, d.n, loss, nh_cli_curv_opts(&a), &c));
    if (start == 0) fprintf(log, "step,t,loss\n%d,%.17g,%.17g\n", 0, 0.0, nh_curv_loss(c));
    double t0 = nh_cli_now();
    nh_status st = NH_OK;
    long long k;
    for (k = start + 1; k <= steps; k++) {
        st = nh_curv_gd_step(c, net, eta);
        if (st != NH_OK) break;
        if (k % every == 0 || k == steps) {
            fprintf(log, "%lld,%.17g,%.17g\n", k, (double)k * eta, nh_curv_loss(c));
            if (fflush(log) != 0) nh_die(cmd, "cannot write %s", path);
        }
        if (k % ckev == 0 && k < steps) nh_ckpt_save(cmd, ck, sig, k, net);
        nh_cli_progress("train: step", (size_t)(k - start), (size_t)(steps - start), nh_cli_now() - t0);
    }
    int bad = fclose(log) != 0;
    /* Always save the last finite state, also after divergence. */
    nh_status sv = nh_model_save(out, net);
    if (sv == NH_OK && st == NH_OK) nh_ckpt_remove(ck);
    nh_curv_free(c);
    nh_net_free(net);
    nh_dataset_free(&d);
    if (bad) nh_die(cmd, "cannot write %s", path);
    if (sv != NH_OK) nh_die_status(cmd, sv);
    if (st != NH_OK)
        nh_die(cmd, "%s at step %lld: %s (the last finite state is saved in %s)", nh_strerror(st), k, nh_last_error(),
               out);
    fprintf(stderr, "ntkhess train: %lld steps, t = %.6g, model in %s\n", steps, (double)steps * eta, out);
    return 0;
}

const nh_cmd nh_cmd_train = {
    "train", "Train a model by full-batch gradient descent.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] --lr ETA --steps K --out DIR2",
    "Each step is theta <- theta - eta grad C(theta) with C = (1/N) sum_i c_i(f(x_i)).\n"
    "After k steps the gradient-flow time is t = k * eta, the time used by every\n"
    "prediction in ntkhess.  DIR2 receives the trained model and train.csv (step,t,loss).\n"
    "A run whose loss or parameters become non-finite stops with an error and keeps\n"
    "the last finite state in DIR2.  A run that is killed and started again with the\n"
    "same arguments resumes from its last checkpoint and ends in the same state.",
    train_opts, run_train};

/* ------------------------------------------------------------- curvature */
static const nh_optspec curv_opts[] = {
    {"model", "DIR", NULL, "model directory"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets (see ntkhess train --help)"},
    NH_OPT_LOSS("mse"),
    {"out", "DIR", NULL, "output directory"},
    {"dense", NULL, NULL, "also write dense H.npy, I.npy, S.npy and their eigenvalues (small P only)"},
    {"hvp", "V.npy", "", "a direction v (P,): write Hv.npy, Iv.npy, Sv.npy"},
    {"no-ntk", NULL, NULL, "skip ntk.npy (the (N n_L)^2 Gram matrix)"},
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

static void json_add_array(cJSON *o, const char *key, const double *v, size_t n) {
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(v[i]));
}

static int run_curvature(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_loss loss = nh_arg_loss(cmd, &a);
    const char *out = nh_arg_req(&a, "out");
    nh_net *net = load_model(cmd, nh_arg_req(&a, "model"));
    nh_dataset d;
    nh_cli_load_data(cmd, nh_arg_req(&a, "data"), nh_arg_req(&a, "targets"), net, loss, &d);
    const size_t P = nh_net_nparams(net), n = d.n, m = d.nout, nm = n * m;
    double *v = NULL;
    if (nh_arg_str(&a, "hvp")) {
        size_t nd, sh[NH_NPY_MAXDIM];
        NH_CHECK(cmd, nh_npy_read(nh_arg_str(&a, "hvp"), &v, &nd, sh));
        size_t cnt = 1;
        for (size_t i = 0; i < nd; i++) cnt *= sh[i];
        if (!(nd == 1 || (nd == 2 && (sh[0] == 1 || sh[1] == 1))) || cnt != P)
            nh_die(cmd, "%s: direction must have shape (%zu,) (one entry per parameter), got %zu entries",
                   nh_arg_str(&a, "hvp"), P, cnt);
    }
    if (nh_arg_flag(&a, "dense")) {
        /* Three P x P matrices, a copy for the eigensolver and the Jacobian. */
        size_t lim = nh_get_mem_limit();
        double need = 5.0 * (double)P * (double)P * 8.0 + (double)nm * (double)P * 16.0;
        if (need > (double)lim)
            nh_die(cmd, "--dense with P = %zu needs %.3g GB, more than the %.3g GB memory limit", P, need / 1e9,
                   (double)lim / 1e9);
    }
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create_ex(net, d.X, d.T, n, loss, nh_cli_curv_opts(&a), &c));
    nh_cli_mkdir(cmd, out);
    double *buf = malloc((P > nm ? P : nm) * sizeof *buf);
    double *E = malloc(nm * sizeof *E), *G = malloc(nm * sizeof *G);
    if (!buf || !E || !G) nh_die(cmd, "out of memory");
    size_t shP[1] = {P}, shY[2] = {n, m};
    NH_CHECK(cmd, nh_curv_grad(c, buf));
    nh_cli_write_npy(cmd, out, "grad.npy", buf, 1, shP);
    nh_curv_outputs(c, buf);
    nh_cli_write_npy(cmd, out, "Y.npy", buf, 2, shY);
    NH_CHECK(cmd, nh_curv_G(c, G));
    nh_cli_write_npy(cmd, out, "G.npy", G, 2, shY);
    nh_curv_dloss(c, E);
    double trS = 0;
    for (size_t i = 0; i < nm; i++) trS += G[i] * E[i];
    cJSON *js = cJSON_CreateObject();
    cJSON_AddNumberToObject(js, "N", (double)n);
    cJSON_AddNumberToObject(js, "P", (double)P);
    cJSON_AddStringToObject(js, "loss_name", nh_loss_name(loss));
    cJSON_AddNumberToObject(js, "loss", nh_curv_loss(c));
    cJSON_AddNumberToObject(js, "tr_S1", trS);
    cJSON_AddNumberToObject(js, "batch", (double)nh_curv_batch(c));
    if (!nh_arg_flag(&a, "no-ntk")) {
        double *K = malloc(nm * nm * sizeof *K), *HC = malloc(n * m * m * sizeof *HC);
        if (!K || !HC) nh_die(cmd, "out of memory for the %zu x %zu NTK", nm, nm);
        NH_CHECK(cmd, nh_curv_ntk(c, K));
        size_t shK[2] = {nm, nm};
        nh_cli_write_npy(cmd, out, "ntk.npy", K, 2, shK);
        /* Tr(I^k) = Tr((HC Theta)^k) exactly, k = 1..4, from the Gram matrix. */
        nh_curv_hloss(c, HC);
        double tr[4];
        NH_CHECK(cmd, nh_ntk_trace_powers(n, m, K, HC, 4, tr));
        json_add_array(js, "tr_I", tr, 4);
        free(K); free(HC);
    } else { /* what was skipped and why: the exact quantities need the (N n_L)^2 Gram */
        char why[256];
        snprintf(why, sizeof why, "--no-ntk: the exact NTK Gram needs (N n_L)^2 = %.4g GB; estimate Tr(I^k) and "
                 "the spectrum of I with ntkhess spectrum or measure", (double)nm * (double)nm * 8.0 / 1e9);
        cJSON *sk = cJSON_AddObjectToObject(js, "skipped");
        cJSON_AddStringToObject(sk, "ntk.npy", why);
        cJSON_AddStringToObject(sk, "tr_I", why);
    }
    if (v) {
        double *iv = malloc(P * sizeof *iv), *sv = malloc(P * sizeof *sv), *hv = malloc(P * sizeof *hv);
        if (!iv || !sv || !hv) nh_die(cmd, "out of memory");
        NH_CHECK(cmd, nh_curv_hvp(c, v, hv));
        NH_CHECK(cmd, nh_curv_isvp(c, v, iv, sv));
        nh_cli_write_npy(cmd, out, "Hv.npy", hv, 1, shP);
        nh_cli_write_npy(cmd, out, "Iv.npy", iv, 1, shP);
        nh_cli_write_npy(cmd, out, "Sv.npy", sv, 1, shP);
        free(iv); free(sv); free(hv);
    }
    if (nh_arg_flag(&a, "dense")) {
        double *H = malloc(P * P * sizeof *H), *Im = malloc(P * P * sizeof *Im), *S = malloc(P * P * sizeof *S);
        double *w = malloc(P * sizeof *w);
        if (!H || !Im || !S || !w) nh_die(cmd, "out of memory for dense matrices (P = %zu)", P);
        NH_CHECK(cmd, nh_curv_dense(c, H, Im, S));
        size_t shPP[2] = {P, P};
        const char *names[3] = {"H", "I", "S"};
        double *mats[3] = {H, Im, S};
        for (int t = 0; t < 3; t++) {
            char nm1[16], nm2[16];
            snprintf(nm1, sizeof nm1, "%s.npy", names[t]);
            snprintf(nm2, sizeof nm2, "eig%s.npy", names[t]);
            nh_cli_write_npy(cmd, out, nm1, mats[t], 2, shPP);
            NH_CHECK(cmd, nh_eigvalsh(P, mats[t], w));
            nh_cli_write_npy(cmd, out, nm2, w, 1, shP);
        }
        free(H); free(Im); free(S); free(w);
    }
    char *txt = cJSON_Print(js);
    char path[4096];
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "summary.json"), txt);
    free(txt);
    cJSON_Delete(js);
    free(buf); free(E); free(G); free(v);
    nh_curv_free(c);
    nh_net_free(net);
    nh_dataset_free(&d);
    return 0;
}

const nh_cmd nh_cmd_curvature = {
    "curvature", "Exact curvature of the loss at the model's parameters.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] [--dense] [--hvp V.npy] --out DIR",
    "Writes grad.npy (P), Y.npy (network outputs, N x n_L), G.npy (N x n_L, G[i][k] =\n"
    "Tr Hess_theta f_k(x_i)), ntk.npy ((N n_L) x (N n_L), index i*n_L + k) and\n"
    "summary.json (loss, exact Tr(I^k) for k = 1..4 from the NTK, Tr(S) = G . dC/dY).\n"
    "--hvp adds Hv.npy, Iv.npy, Sv.npy (H = I + S, I = J^T HC J); --dense adds H.npy,\n"
    "I.npy, S.npy and their ascending eigenvalues eigH.npy, eigI.npy, eigS.npy.\n"
    "theta order: for l = 0..L-1, W_l (n_{l+1} x n_l, row-major) then b_l.",
    curv_opts, run_curvature};
