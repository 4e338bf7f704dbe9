/* cmd_layers.c -- `ntkhess layers`: a per-tensor table of the diagonal
 * blocks H_BB, I_BB, S_BB (traces and extreme eigenvalues), one row per
 * tensor of the model (W0, b0, W1, ...) and a row "all" for the whole of
 * theta, each through a parameter selection (nh_curv_select). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const nh_optspec layers_opts[] = {
    {"model", "DIR", NULL, "model directory"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets (see ntkhess train --help)"},
    NH_OPT_LOSS("mse"),
    {"out", "FILE.csv", NULL, "the table: tensor,size,tr_H,tr_H_se,tr_I,tr_S,tr_S_se,lam_H,lam_I,lam_S"},
    {"no-ntk", NULL, NULL, "estimate Tr I_BB by Hutchinson instead of the exact block NTK Gram (large N n_L)"},
    {"probes", "M", "64", "Rademacher probes of the Hutchinson Tr I_BB (--no-ntk, or the Gram over the memory "
                          "limit; >= 2)"},
    {"seed", "S", "0", "probe and Lanczos start-vector seed"},
    {"tol", "TOL", "1e-10", "Lanczos relative residual tolerance"},
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

typedef struct layers_row {
    double trH, trH_se, trI, trS, trS_se, lamH, lamI, lamS;
} layers_row;

typedef struct layers_job {
    size_t M;
    uint64_t seed;
    double tol;
    int no_ntk;
} layers_job;

/* Traces of the current block: Tr S_BB = G_B . dC/dY and Tr I_BB from the
 * block NTK, both exact (the control variates of nh_curv_trace), and
 * Tr H_BB = Tr I_BB + Tr S_BB.  Without the Gram (--no-ntk, or over the
 * memory limit) Tr I_BB is a Hutchinson estimate; its SE is tr_H's. */
static void layers_traces(const nh_cmd *cmd, nh_curv *c, const layers_job *j, layers_row *r) {
    nh_trace_opts o = nh_trace_opts_default();
    nh_trace_result ts, ti;
    o.nprobes = j->M;
    o.seed = j->seed;
    o.control = 1;
    NH_CHECK(cmd, nh_curv_trace(c, NH_OP_S, 1, &o, &ts));
    o.control = !j->no_ntk;
    nh_status st = nh_curv_trace(c, NH_OP_I, 1, &o, &ti);
    if (st == NH_ETOOLARGE && o.control) { o.control = 0; st = nh_curv_trace(c, NH_OP_I, 1, &o, &ti); }
    NH_CHECK(cmd, st);
    r->trS = ts.est[0]; r->trS_se = ts.se[0];
    r->trI = ti.est[0];
    r->trH = r->trI + r->trS; r->trH_se = ti.se[0];
}

/* The extreme eigenvalue: largest (H, I) or signed largest magnitude (S), as `sharpness`. */
static double layers_lam(const nh_cmd *cmd, nh_curv *c, const layers_job *j, nh_op op) {
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.which = op == NH_OP_S ? NH_WHICH_LM : NH_WHICH_LA;
    lo.tol = j->tol;
    lo.seed = j->seed;
    double ev = 0;
    NH_CHECK(cmd, nh_curv_lanczos(c, op, 1, &lo, &ev, NULL, NULL, NULL));
    return ev;
}

static void layers_fill(const nh_cmd *cmd, nh_curv *c, const layers_job *j, layers_row *r) {
    layers_traces(cmd, c, j, r);
    r->lamH = layers_lam(cmd, c, j, NH_OP_H);
    r->lamI = layers_lam(cmd, c, j, NH_OP_I);
    r->lamS = layers_lam(cmd, c, j, NH_OP_S);
}

/* One CSV line; the standard errors are empty when undefined (one probe). */
static size_t layers_line(char *p, size_t cap, const char *name, size_t size, const layers_row *r) {
    return (size_t)snprintf(p, cap, "%s,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", name, size, r->trH,
                            r->trH_se, r->trI, r->trS, r->trS_se, r->lamH, r->lamI, r->lamS);
}

static void layers_parse(const nh_cmd *cmd, const nh_args *a, layers_job *j) {
    j->no_ntk = nh_arg_flag(a, "no-ntk");
    j->M = (size_t)nh_arg_int(a, "probes", 2, 1 << 24);
    j->seed = nh_arg_u64(a, "seed");
    j->tol = nh_arg_double(a, "tol");
    if (!(j->tol > 0)) nh_die_usage(cmd, "--tol must be > 0");
}

static int run_layers(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    layers_job j;
    layers_parse(cmd, &a, &j);
    const nh_loss loss = nh_arg_loss(cmd, &a);
    const char *in[3] = {nh_arg_req(&a, "model"), nh_arg_req(&a, "data"), nh_arg_req(&a, "targets")};
    const char *out = nh_arg_req(&a, "out");
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_model_load(in[0], &net));
    nh_dataset d;
    nh_cli_load_data_f32(cmd, in[1], in[2], net, loss, &d);
    nh_curv *c = NULL;
    c = nh_cli_curv(cmd, net, &d, loss, nh_cli_curv_opts(&a));
    const size_t nt = nh_net_ntensors(net), cap = (nt + 2) * 512;
    char *csv = malloc(cap);
    if (!csv) nh_die(cmd, "out of memory");
    size_t k = (size_t)snprintf(csv, cap, "tensor,size,tr_H,tr_H_se,tr_I,tr_S,tr_S_se,lam_H,lam_I,lam_S\n");
    const double t0 = nh_cli_now();
    for (size_t t = 0; t <= nt; t++) { /* t = nt: the row "all" */
        const char *name = "all";
        if (t < nt) nh_net_tensor(net, t, &name, NULL, NULL);
        NH_CHECK(cmd, nh_curv_select(c, t < nt ? 1 : 0, &t));
        layers_row r;
        layers_fill(cmd, c, &j, &r);
        k += layers_line(csv + k, cap - k, name, nh_curv_dim(c), &r);
        nh_cli_progress("layers: tensor", t + 1, nt + 1, nh_cli_now() - t0);
    }
    const char *f = nh_out_open(cmd, out, NH_OUTDIR_FILE, in, 3);
    nh_cli_write_result(cmd, f, csv);
    nh_out_commit(cmd);
    fputs(csv, stdout);
    free(csv);
    nh_curv_free(c);
    nh_net_free(net);
    nh_dataset_free(&d);
    return 0;
}

const nh_cmd nh_cmd_layers = {
    "layers", "Per-tensor table of Tr and the top eigenvalue of the blocks H_BB, I_BB, S_BB.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] [--no-ntk [--probes M]] --out FILE.csv",
    "One row per tensor of the model (W0, b0, W1, ..., named as the model files; a\n"
    "layer without bias has no b row) and a row \"all\" (the whole Hessian): size =\n"
    "P_B; tr_I = Tr(I_BB) exact from the block NTK Gram J_B J_B^T; tr_S = Tr(S_BB)\n"
    "exact from the block's G (G_B . dC/dY); tr_H = tr_I + tr_S.  With --no-ntk (or\n"
    "when the Gram exceeds the memory limit) tr_I is a Hutchinson estimate with M\n"
    "probes and tr_H_se its standard error (the SE columns are 0 when exact; tr_S_se\n"
    "is always 0).  lam_H, lam_I = the largest\n"
    "eigenvalue, lam_S = the eigenvalue of largest magnitude, signed (Lanczos on each\n"
    "block).  The off-diagonal blocks are not in the table: the block traces add up\n"
    "to the row \"all\", the eigenvalues do not.  Also printed on standard output.\n"
    "One block: ntkhess spectrum / curvature / measure --params W0,b0.",
    layers_opts, run_layers};
