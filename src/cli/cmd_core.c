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
    NH_CHECK(cmd, nh_model_save(nh_out_open(cmd, out, 0, NULL, 0), net)); /* all or nothing (out.c) */
    nh_out_commit(cmd);
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
    {"steps", "K", NULL, "number of full-batch gradient-descent steps (at most 2^40)"},
    {"out", "DIR", NULL, "model directory for the trained network (plus train.csv); replaced whole"},
    {"log-every", "E", "1", "write a train.csv row every E steps"},
    {"checkpoint-every", "C", "100", "save a checkpoint (in DIR2's work folder .DIR2.partial/) every C steps"},
    {"restart", NULL, NULL, "discard an unfinished run's checkpoint in DIR2's work folder and start over"},
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

typedef struct train_job {
    nh_loss loss;
    double eta;
    long long steps, every, ckev;
    const char *out, *model, *xp, *tp;
    nh_net *net;
    nh_dataset d;
} train_job;

static void train_parse(const nh_cmd *cmd, int argc, char **argv, train_job *j, nh_args *args) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    *args = a;
    nh_cli_threads(&a);
    j->loss = nh_arg_loss(cmd, &a);
    j->eta = nh_arg_double(&a, "lr");
    if (j->eta <= 0) nh_die_usage(cmd, "--lr must be > 0, got %g", j->eta);
    j->steps = nh_arg_int(&a, "steps", 0, NH_MAX_STEPS);
    j->every = nh_arg_int(&a, "log-every", 1, NH_MAX_STEPS);
    j->ckev = nh_arg_int(&a, "checkpoint-every", 1, NH_MAX_STEPS);
    j->out = nh_arg_req(&a, "out");
    j->model = nh_arg_req(&a, "model"), j->xp = nh_arg_req(&a, "data"), j->tp = nh_arg_req(&a, "targets");
    j->net = load_model(cmd, j->model);
    nh_cli_load_data_f32(cmd, j->xp, j->tp, j->net, j->loss, &j->d);
}

/* Everything that changes the result: contents, not names or dates. */
static void train_identity(const nh_cmd *cmd, const train_job *j, nh_ckpt_id *id) {
    memset(id, 0, sizeof *id);
    nh_ckpt_id_add(id, "command", "train");
    nh_ckpt_id_model(cmd, id, j->model, j->net);
    nh_ckpt_id_file(cmd, id, "data", j->xp);
    nh_ckpt_id_file(cmd, id, "targets", j->tp);
    nh_ckpt_id_add(id, "loss", "%s", nh_loss_name(j->loss));
    nh_ckpt_id_add(id, "lr", "%.17g", j->eta);
    nh_ckpt_id_add(id, "steps", "%lld", j->steps);
    nh_ckpt_id_add(id, "log-every", "%lld", j->every);
}

/* Steps start+1..steps; returns the status of the step that failed. */
static nh_status train_loop(const nh_cmd *cmd, train_job *j, nh_run *r, nh_curv *c, long long start, long long *at) {
    double t0 = nh_cli_now();
    for (long long k = start + 1; k <= j->steps; k++) {
        *at = k;
        nh_status st = nh_curv_gd_step(c, j->net, j->eta);
        if (st != NH_OK) return st;
        if (k % j->every == 0 || k == j->steps)
            nh_log_row(cmd, &r->log, "%lld,%.17g,%.17g", k, (double)k * j->eta, nh_curv_loss(c));
        if (k % j->ckev == 0 && k < j->steps) nh_run_checkpoint(r, k, j->net);
        nh_run_poll_signal(r, k, j->net);
        if (k == start + 1 && j->steps - start > 1) nh_cli_estimate(cmd, "steps", nh_cli_now() - t0, j->steps - start);
        nh_cli_progress("train: step", (size_t)(k - start), (size_t)(j->steps - start), nh_cli_now() - t0);
    }
    return NH_OK;
}

static int run_train(const nh_cmd *cmd, int argc, char **argv) {
    train_job j;
    memset(&j, 0, sizeof j);
    nh_args a;
    train_parse(cmd, argc, argv, &j, &a);
    const char *inputs[] = {j.model, j.xp, j.tp};
    nh_run_spec sp = {cmd, j.out, 0, "train.csv", "step,t,loss", {0}, j.steps, nh_arg_flag(&a, "restart"), inputs, 3};
    train_identity(cmd, &j, &sp.id);
    nh_run r;
    long long start = nh_run_begin(&r, &sp, &j.net);
    nh_curv *c = NULL;
    c = nh_cli_curv(cmd, j.net, &j.d, j.loss, nh_cli_curv_opts(&a));
    if (start < 0) {
        if (!isfinite(nh_curv_loss(c)))
            nh_die(cmd, "the loss at step 0 is not finite (%g); nothing written to %s", nh_curv_loss(c), j.out);
        nh_log_row(cmd, &r.log, "%d,%.17g,%.17g", 0, 0.0, nh_curv_loss(c));
        start = 0;
    }
    long long k = start;
    nh_status st = train_loop(cmd, &j, &r, c, start, &k);
    if (st != NH_OK)
        nh_die(cmd, "%s at step %lld: %s; nothing written to %s (lower --lr)", nh_strerror(st), k,
               nh_last_error_detail(), j.out);
    nh_run_close_log(&r);
    NH_CHECK(cmd, nh_model_save(r.work, j.net)); /* refuses non-finite parameters */
    nh_out_commit(cmd);
    fprintf(stderr, "ntkhess train: %lld steps, t = %.6g, model in %s\n", j.steps, (double)j.steps * j.eta, j.out);
    nh_curv_free(c);
    nh_net_free(j.net);
    nh_dataset_free(&j.d);
    return 0;
}

const nh_cmd nh_cmd_train = {
    "train", "Train a model by full-batch gradient descent.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] --lr ETA --steps K --out DIR2 [--restart]",
    "Each step is theta <- theta - eta grad C(theta) with C = (1/N) sum_i c_i(f(x_i)).\n"
    "After k steps the gradient-flow time is t = k * eta, the time used by every\n"
    "prediction in ntkhess.  DIR2 receives the trained model and train.csv (step,t,loss),\n"
    "all at once when the run completes (an existing DIR2 is replaced whole).  A run\n"
    "whose loss or parameters become non-finite stops with an error and writes nothing.\n"
    "A run that is killed (or stopped by SIGINT, SIGTERM, SIGHUP: it checkpoints and\n"
    "exits 128+signal) resumes when started again with the same arguments and ends in\n"
    "the same state, bit for bit; its work folder .DIR2.partial/ (beside DIR2) holds\n"
    "the checkpoint.  A rerun with another model, data, targets, loss, lr, steps or\n"
    "log-every (compared by content) is refused unless --restart is given.",
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
    {"diag", "METHOD", "", "write diagH.npy, diagI.npy, diagS.npy: exact, hutchinson or auto"},
    {"diag-probes", "M", "64", "Hutchinson probes for --diag"},
    {"diag-seed", "S", "0", "seed of the Hutchinson probes"},
    NH_OPT_PARAMS,
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

static void json_add_array(cJSON *o, const char *key, const double *v, size_t n) {
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(v[i]));
}

/* --hvp V.npy: one entry per parameter. */
static double *curv_direction(const nh_cmd *cmd, const char *path, size_t P) {
    double *v = NULL;
    size_t nd, sh[NH_NPY_MAXDIM];
    NH_CHECK(cmd, nh_npy_read(path, &v, &nd, sh));
    size_t cnt = 1;
    for (size_t i = 0; i < nd; i++) cnt *= sh[i];
    if (!(nd == 1 || (nd == 2 && (sh[0] == 1 || sh[1] == 1))) || cnt != P)
        nh_die(cmd, "%s: direction must have shape (%zu,) (one entry per parameter), got %zu entries", path, P, cnt);
    nh_cli_check_finite(cmd, path, v, P);
    return v;
}

/* grad.npy, Y.npy, G.npy and the summary's loss and Tr(S); P: the context's dim (P_B with --params). */
static void curv_basic(const nh_cmd *cmd, nh_curv *c, const char *w, size_t P, size_t n, size_t m, nh_loss loss,
                       cJSON *js) {
    const size_t nm = n * m;
    double *buf = malloc((P > nm ? P : nm) * sizeof *buf);
    double *E = malloc(nm * sizeof *E), *G = malloc(nm * sizeof *G);
    if (!buf || !E || !G) nh_die(cmd, "out of memory");
    size_t shP[1] = {P}, shY[2] = {n, m};
    NH_CHECK(cmd, nh_curv_grad(c, buf));
    nh_cli_write_npy(cmd, w, "grad.npy", buf, 1, shP);
    nh_curv_outputs(c, buf);
    nh_cli_write_npy(cmd, w, "Y.npy", buf, 2, shY);
    NH_CHECK(cmd, nh_curv_G(c, G));
    nh_cli_write_npy(cmd, w, "G.npy", G, 2, shY);
    nh_curv_dloss(c, E);
    double trS = 0;
    for (size_t i = 0; i < nm; i++) trS += G[i] * E[i];
    cJSON_AddNumberToObject(js, "N", (double)n);
    cJSON_AddNumberToObject(js, "P", (double)nh_net_nparams(nh_curv_net(c)));
    cJSON_AddStringToObject(js, "loss_name", nh_loss_name(loss));
    cJSON_AddItemToObject(js, "loss", nh_cli_json_num(nh_curv_loss(c)));
    cJSON_AddItemToObject(js, "tr_S1", nh_cli_json_num(trS));
    free(buf); free(E); free(G);
}

/* ntk.npy and Tr(I^k) = Tr((HC Theta)^k) exactly, k = 1..4, from the Gram. */
static void curv_ntk(const nh_cmd *cmd, nh_curv *c, const char *w, size_t n, size_t m, cJSON *js) {
    const size_t nm = n * m;
    double *K = malloc(nm * nm * sizeof *K), *HC = malloc(n * m * m * sizeof *HC);
    if (!K || !HC) nh_die(cmd, "out of memory for the %zu x %zu NTK", nm, nm);
    NH_CHECK(cmd, nh_curv_ntk(c, K));
    size_t shK[2] = {nm, nm};
    nh_cli_write_npy(cmd, w, "ntk.npy", K, 2, shK);
    nh_curv_hloss(c, HC);
    double tr[4];
    NH_CHECK(cmd, nh_ntk_trace_powers(n, m, K, HC, 4, tr));
    json_add_array(js, "tr_I", tr, 4);
    free(K); free(HC);
}

static void curv_hvp(const nh_cmd *cmd, nh_curv *c, const char *w, const double *v, size_t P) {
    double *iv = malloc(P * sizeof *iv), *sv = malloc(P * sizeof *sv), *hv = malloc(P * sizeof *hv);
    if (!iv || !sv || !hv) nh_die(cmd, "out of memory");
    size_t shP[1] = {P};
    NH_CHECK(cmd, nh_curv_hvp(c, v, hv));
    NH_CHECK(cmd, nh_curv_isvp(c, v, iv, sv));
    nh_cli_write_npy(cmd, w, "Hv.npy", hv, 1, shP);
    nh_cli_write_npy(cmd, w, "Iv.npy", iv, 1, shP);
    nh_cli_write_npy(cmd, w, "Sv.npy", sv, 1, shP);
    free(iv); free(sv); free(hv);
}

static void curv_dense(const nh_cmd *cmd, nh_curv *c, const char *w, size_t P) {
    double *H = malloc(P * P * sizeof *H), *Im = malloc(P * P * sizeof *Im), *S = malloc(P * P * sizeof *S);
    double *ev = malloc(P * sizeof *ev);
    if (!H || !Im || !S || !ev) nh_die(cmd, "out of memory for dense matrices (P = %zu)", P);
    NH_CHECK(cmd, nh_curv_dense(c, H, Im, S));
    size_t shPP[2] = {P, P}, shP[1] = {P};
    const char *names[3] = {"H", "I", "S"};
    double *mats[3] = {H, Im, S};
    for (int t = 0; t < 3; t++) {
        char nm1[16], nm2[16];
        snprintf(nm1, sizeof nm1, "%s.npy", names[t]);
        snprintf(nm2, sizeof nm2, "eig%s.npy", names[t]);
        nh_cli_write_npy(cmd, w, nm1, mats[t], 2, shPP);
        NH_CHECK(cmd, nh_eigvalsh(P, mats[t], ev));
        nh_cli_write_npy(cmd, w, nm2, ev, 1, shP);
    }
    free(H); free(Im); free(S); free(ev);
}

/* --diag METHOD, --diag-probes, --diag-seed, checked before any output is written. */
static nh_diag_opts curv_diag_opts(const nh_cmd *cmd, const nh_args *a) {
    static const char *const names[3] = {"auto", "exact", "hutchinson"}; /* the enum's order */
    const char *m = nh_arg_str(a, "diag");
    nh_diag_opts o = nh_diag_opts_default();
    int k = 0;
    while (m && k < 3 && strcmp(m, names[k]) != 0) k++;
    if (m && k == 3) nh_die_usage(cmd, "--diag must be exact, hutchinson or auto (got '%s')", m);
    o.method = (nh_diag_method)k;
    o.nprobes = (size_t)nh_arg_int(a, "diag-probes", 1, 100000000);
    o.seed = nh_arg_u64(a, "diag-seed");
    return o;
}

/* diagH/I/S.npy (+ _se when estimated) and summary.json's "diag". */
static void curv_diag(const nh_cmd *cmd, const char *req, const nh_diag_opts *po, nh_curv *c, const char *w,
                      size_t P, cJSON *js) {
    const nh_diag_opts o = *po;
    double *D = malloc(6 * P * sizeof *D);
    if (!D) nh_die(cmd, "out of memory for the diagonals (P = %zu)", P);
    nh_diag_info info;
    NH_CHECK(cmd, nh_curv_diag_all(c, &o, D, D + 3 * P, &info));
    const int est = info.method == NH_DIAG_HUTCHINSON;
    size_t shP[1] = {P};
    const char *ops[3] = {"H", "I", "S"};
    for (int t = 0; t < 3; t++) {
        char nm1[32];
        snprintf(nm1, sizeof nm1, "diag%s.npy", ops[t]);
        nh_cli_write_npy(cmd, w, nm1, D + (size_t)t * P, 1, shP);
        if (!est) continue;
        snprintf(nm1, sizeof nm1, "diag%s_se.npy", ops[t]);
        nh_cli_write_npy(cmd, w, nm1, D + (size_t)(3 + t) * P, 1, shP);
    }
    cJSON *dj = cJSON_AddObjectToObject(js, "diag");
    cJSON_AddStringToObject(dj, "requested", req);
    cJSON_AddStringToObject(dj, "method", est ? "hutchinson" : "exact");
    cJSON_AddNumberToObject(dj, "probes", (double)info.nprobes);
    cJSON_AddNumberToObject(dj, "products", (double)info.nproducts);
    if (est) cJSON_AddNumberToObject(dj, "seed", (double)o.seed);
    cJSON_AddNumberToObject(dj, "exact_flops", info.exact_flops);
    cJSON_AddNumberToObject(dj, "hvp_flops", info.hvp_flops);
    cJSON_AddNumberToObject(dj, "exact_cost_hvp", info.exact_cost);
    cJSON_AddNumberToObject(dj, "max_cost_hvp", o.max_cost);
    free(D);
}

static void curv_check_dense_memory(const nh_cmd *cmd, size_t P, size_t nm) {
    /* Three P x P matrices, a copy for the eigensolver and the Jacobian. */
    size_t lim = nh_get_mem_limit();
    double need = 5.0 * (double)P * (double)P * 8.0 + (double)nm * (double)P * 16.0;
    if (need > (double)lim)
        nh_die(cmd, "--dense with P = %zu needs %.3g GB, more than the %.3g GB memory limit", P, need / 1e9,
               (double)lim / 1e9);
}

/* Without --no-ntk: refuse before any large allocation (the context, the
 * passes) when the exact NTK Gram and Tr(I^k) cannot fit: the Gram K plus
 * three matrices of its size in nh_ntk_trace_powers, and the HC blocks. */
static void curv_check_ntk_memory(const nh_cmd *cmd, size_t n, size_t m) {
    const double nm = (double)n * (double)m, need = 4.0 * nm * nm * 8.0 + nm * (double)m * 8.0;
    const size_t lim = nh_get_mem_limit();
    if (need <= (double)lim) return;
    nh_die(cmd, "the exact NTK Gram of N = %zu rows x %zu outputs and its Tr(I^k) need %.4g GB (%.0f bytes), more "
           "than the %.4g GB memory limit; rerun with --no-ntk (grad, Y, G and the products are still written) and "
           "estimate Tr(I^k) and the spectrum of I with ntkhess spectrum or measure", n, m, need / 1e9, need,
           (double)lim / 1e9);
}

/* --no-ntk: what was skipped and why (the exact quantities need the (N n_L)^2 Gram). */
static void curv_skipped(size_t nm, cJSON *js) {
    char why[256];
    snprintf(why, sizeof why, "--no-ntk: the exact NTK Gram needs (N n_L)^2 = %.4g GB; estimate Tr(I^k) and the "
             "spectrum of I with ntkhess spectrum or measure", (double)nm * (double)nm * 8.0 / 1e9);
    cJSON *sk = cJSON_AddObjectToObject(js, "skipped");
    cJSON_AddStringToObject(sk, "ntk.npy", why);
    cJSON_AddStringToObject(sk, "tr_I", why);
}

static int run_curvature(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_loss loss = nh_arg_loss(cmd, &a);
    const char *out = nh_arg_req(&a, "out");
    const char *inputs[] = {nh_arg_req(&a, "model"), nh_arg_req(&a, "data"), nh_arg_req(&a, "targets"), nh_arg_str(&a, "hvp")};
    nh_net *net = load_model(cmd, inputs[0]);
    nh_dataset d;
    nh_cli_load_data_f32(cmd, inputs[1], inputs[2], net, loss, &d);
    const size_t n = d.n, m = d.nout;
    const nh_diag_opts dopts = curv_diag_opts(cmd, &a);
    if (!nh_arg_flag(&a, "no-ntk")) curv_check_ntk_memory(cmd, n, m);
    nh_curv *c = nh_cli_curv(cmd, net, &d, loss, nh_cli_curv_opts(&a));
    cJSON *js = cJSON_CreateObject();
    const size_t P = nh_cli_params(cmd, nh_arg_str(&a, "params"), c, js); /* P_B with --params */
    double *v = inputs[3] ? curv_direction(cmd, inputs[3], P) : NULL;
    if (nh_arg_flag(&a, "dense")) curv_check_dense_memory(cmd, P, n * m);
    const char *w = nh_out_open(cmd, out, 0, inputs, 4);
    curv_basic(cmd, c, w, P, n, m, loss, js);
    cJSON_AddNumberToObject(js, "batch", (double)nh_curv_batch(c));
    if (!nh_arg_flag(&a, "no-ntk")) curv_ntk(cmd, c, w, n, m, js);
    else curv_skipped(n * m, js);
    if (v) curv_hvp(cmd, c, w, v, P);
    if (nh_arg_flag(&a, "dense")) curv_dense(cmd, c, w, P);
    if (nh_arg_str(&a, "diag")) curv_diag(cmd, nh_arg_str(&a, "diag"), &dopts, c, w, P, js);
    char *txt = cJSON_Print(js), path[4200];
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, w, "summary.json"), txt);
    nh_out_commit(cmd);
    free(txt);
    cJSON_Delete(js);
    free(v);
    nh_curv_free(c);
    nh_net_free(net);
    nh_dataset_free(&d);
    return 0;
}

const nh_cmd nh_cmd_curvature = {
    "curvature", "Exact curvature of the loss at the model's parameters.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] [--dense] [--hvp V.npy] [--diag METHOD] --out DIR",
    "Writes grad.npy (P), Y.npy (network outputs, N x n_L), G.npy (N x n_L, G[i][k] =\n"
    "Tr Hess_theta f_k(x_i)), ntk.npy ((N n_L) x (N n_L), index i*n_L + k) and\n"
    "summary.json (loss, exact Tr(I^k) for k = 1..4 from the NTK, Tr(S) = G . dC/dY).\n"
    "--hvp adds Hv.npy, Iv.npy, Sv.npy (H = I + S, I = J^T HC J); --dense adds H.npy,\n"
    "I.npy, S.npy and their ascending eigenvalues eigH.npy, eigI.npy, eigS.npy.\n"
    "--diag adds diagH.npy, diagI.npy, diagS.npy (P,): exact (per-output backward\n"
    "passes; docs/diagonals.md gives the cost), hutchinson (--diag-probes M Rademacher\n"
    "probes, + diagH_se.npy, diagI_se.npy, diagS_se.npy) or auto (exact when it costs\n"
    "at most 50 H v products); summary.json's \"diag\" says which and its cost.\n"
    "theta order: for l = 0..L-1, W_l (n_{l+1} x n_l, row-major) then b_l.\n"
    "--params W0,b0,...: the diagonal block of those tensors: grad.npy, Hv.npy, ...\n"
    "and the --hvp direction have P_B = \"dim\" entries, H.npy, I.npy, S.npy are\n"
    "P_B x P_B, ntk.npy is the block Gram J_B J_B^T (tr_I = Tr(I_BB^k) exact), G.npy\n"
    "sums d^2 f/dtheta_p^2 over the block only (tr_S1 = Tr S_BB).",
    curv_opts, run_curvature};
