/* cmd_eigen.c -- ntkhess eigenspace: top-k eigenvectors of H, I, S, the
 * gradient's overlap with them, principal angles between the eigenspaces,
 * and SLQ densities of the bulk with the top-k deflated (docs/eigenspace.md). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const nh_optspec eig_opts[] = {
    {"model", "DIR", NULL, "model directory"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets (see ntkhess train --help)"},
    NH_OPT_LOSS("mse"),
    {"k", "K", NULL, "eigenpairs per operator (1 <= K <= P)"},
    {"ops", "LIST", "H,I,S", "operators, comma-separated, each once: H, I, S"},
    {"tol", "TOL", "1e-10", "Lanczos relative residual tolerance"},
    {"slq-vectors", "M", "16", "SLQ start vectors"},
    {"slq-steps", "m", "30", "SLQ Lanczos steps per vector (at most P - K)"},
    {"grid", "G", "400", "density grid points (>= 2)"},
    {"sigma", "W", "", "Gaussian broadening of the densities (default: node range / 100)"},
    {"seed", "S", "0", "Lanczos and SLQ start-vector seed"},
    {"out", "DIR", NULL, "output directory (replaced whole)"},
    NH_OPT_PARAMS,
    NH_OPT_BATCH,
    {"threads", "T", "auto", "threads"},
    {NULL, NULL, NULL, NULL}};

static const char *const op_name[NH_OP_COUNT] = {"H", "I", "S"};

/* One operator's results. */
typedef struct eig_op {
    nh_op op;
    nh_which which;
    double *ev, *res, *V, *comp, overlap;
    nh_lanczos_info li;
    nh_slq_result full, bulk;
} eig_op;

typedef struct eig_job {
    nh_args a;
    nh_loss loss;
    size_t k, nops, P, M, m, G;
    double tol;
    uint64_t seed;
    const char *in[3], *out, *work;
    nh_net *net;
    nh_dataset d;
    nh_curv *c;
    eig_op op[NH_OP_COUNT];
    double *g, gnorm, *ang[3];
    size_t nprod;
    cJSON *js;
} eig_job;

/* --ops: a comma list of H, I, S, each at most once (exit 2 otherwise). */
static void eig_parse_ops(const nh_cmd *cmd, const char *s, eig_job *j) {
    char buf[64];
    if (strlen(s) >= sizeof buf) nh_die_usage(cmd, "--ops must list H, I, S, got '%s'", s);
    strcpy(buf, s);
    j->nops = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int o = !strcmp(t, "H") ? NH_OP_H : !strcmp(t, "I") ? NH_OP_I : !strcmp(t, "S") ? NH_OP_S : -1;
        if (o < 0) nh_die_usage(cmd, "--ops: unknown operator '%s' (expected H, I or S)", t);
        for (size_t i = 0; i < j->nops; i++)
            if (j->op[i].op == (nh_op)o) nh_die_usage(cmd, "--ops lists %s twice", t);
        /* H and I: the largest (algebraic: I is PSD, H's top is its sharpness);
         * S is indefinite and symmetric-ish about 0: largest magnitude. */
        j->op[j->nops].op = (nh_op)o;
        j->op[j->nops].which = o == NH_OP_S ? NH_WHICH_LM : NH_WHICH_LA;
        j->nops++;
    }
    if (j->nops == 0) nh_die_usage(cmd, "--ops must list at least one of H, I, S");
}

static void eig_parse(const nh_cmd *cmd, int argc, char **argv, eig_job *j) {
    nh_cli_parse(cmd, argc, argv, &j->a);
    nh_cli_threads(&j->a);
    j->loss = nh_arg_loss(cmd, &j->a);
    j->k = (size_t)nh_arg_int(&j->a, "k", 1, (long long)1 << 40);
    eig_parse_ops(cmd, nh_arg_req(&j->a, "ops"), j);
    j->tol = nh_arg_double(&j->a, "tol");
    if (!(j->tol > 0)) nh_die_usage(cmd, "--tol must be > 0, got %g", j->tol);
    j->M = (size_t)nh_arg_int(&j->a, "slq-vectors", 1, 1 << 20);
    j->m = (size_t)nh_arg_int(&j->a, "slq-steps", 1, 1 << 20);
    j->G = (size_t)nh_arg_int(&j->a, "grid", 2, 1 << 24);
    if (nh_arg_str(&j->a, "sigma") && !(nh_arg_double(&j->a, "sigma") > 0)) nh_die_usage(cmd, "--sigma must be > 0");
    j->seed = nh_arg_u64(&j->a, "seed");
    j->out = nh_arg_req(&j->a, "out");
    j->in[0] = nh_arg_req(&j->a, "model"), j->in[1] = nh_arg_req(&j->a, "data"), j->in[2] = nh_arg_req(&j->a, "targets");
}

/* Model, data, context; P is set here once (the operators' dimension). */
static void eig_setup(const nh_cmd *cmd, eig_job *j) {
    NH_CHECK(cmd, nh_model_load(j->in[0], &j->net));
    nh_cli_load_data_f32(cmd, j->in[1], j->in[2], j->net, j->loss, &j->d);
    j->c = nh_cli_curv(cmd, j->net, &j->d, j->loss, nh_cli_curv_opts(&j->a));
    j->P = nh_cli_params(cmd, nh_arg_str(&j->a, "params"), j->c, j->js); /* P_B with --params */
    const size_t P = j->P, k = j->k;
    if (k > P) nh_die_usage(cmd, "--k %zu exceeds the number of parameters P = %zu", k, P);
    if (k == P) nh_die_usage(cmd, "--k %zu leaves no bulk to deflate (P = %zu): use K < P", k, P);
    if (j->m > P - k) j->m = P - k; /* the complement's Krylov spaces have at most P - K dimensions */
    /* Vectors of every op, the Lanczos basis (2K + 22 rows at most) and the
     * SLQ basis (m + 1 rows). */
    const double need = ((double)j->nops * (double)k + 2.0 * (double)k + 24.0 + (double)j->m) * (double)P * 8.0;
    if (need > (double)nh_get_mem_limit())
        nh_die(cmd, "K = %zu eigenvectors of %zu operators with P = %zu need %.3g GB (memory limit %.3g GB)", k,
               j->nops, P, need / 1e9, (double)nh_get_mem_limit() / 1e9);
    j->g = malloc(P * sizeof *j->g);
    if (!j->g) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_curv_grad(j->c, j->g));
    j->gnorm = 0;
    for (size_t p = 0; p < P; p++) j->gnorm = hypot(j->gnorm, j->g[p]);
    if (!(j->gnorm > 0)) nh_die(cmd, "the gradient is zero: its overlap with the eigenspaces is undefined");
    j->work = nh_out_open(cmd, j->out, 0, j->in, 3);
}

/* Top-k eigenpairs of one operator and the gradient's overlap with them. */
static void eig_top(const nh_cmd *cmd, eig_job *j, eig_op *e) {
    const size_t k = j->k, P = j->P;
    e->ev = malloc(k * sizeof *e->ev), e->res = malloc(k * sizeof *e->res), e->comp = malloc(k * sizeof *e->comp);
    e->V = malloc(k * P * sizeof *e->V);
    if (!e->ev || !e->res || !e->comp || !e->V) nh_die(cmd, "out of memory");
    nh_lanczos_opts lo = nh_lanczos_opts_default();
    lo.which = e->which;
    lo.tol = j->tol;
    lo.seed = j->seed;
    NH_CHECK(cmd, nh_curv_lanczos(j->c, e->op, k, &lo, e->ev, e->V, e->res, &e->li));
    nh_cli_check_finite(cmd, "eigenvalues", e->ev, k);
    NH_CHECK(cmd, nh_subspace_overlap(k, P, e->V, j->g, &e->overlap, e->comp));
    j->nprod += e->li.nproducts;
}

/* Full and deflated SLQ of one operator on one grid; writes bulk_OP.csv. */
static void eig_bulk(const nh_cmd *cmd, eig_job *j, eig_op *e, cJSON *jo) {
    const size_t nn = j->M * j->m, G = j->G;
    double *nd = malloc(2 * nn * sizeof *nd), *wt = malloc(2 * nn * sizeof *wt);
    double *grid = malloc(G * sizeof *grid), *den = malloc(2 * G * sizeof *den);
    if (!nd || !wt || !grid || !den) nh_die(cmd, "out of memory");
    nh_slq_opts so = nh_slq_opts_default();
    so.nvec = j->M, so.nsteps = j->m, so.seed = j->seed;
    NH_CHECK(cmd, nh_curv_slq(j->c, e->op, &so, nd, wt, 0, NULL, 0, NULL, &e->full));
    so.ndeflate = j->k, so.deflate = e->V;
    NH_CHECK(cmd, nh_curv_slq(j->c, e->op, &so, nd + nn, wt + nn, 0, NULL, 0, NULL, &e->bulk));
    j->nprod += e->full.nproducts + e->bulk.nproducts;
    nh_cli_check_finite(cmd, "SLQ nodes", nd, 2 * nn);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < 2 * nn; i++)
        if (wt[i] > 0) { lo = fmin(lo, nd[i]); hi = fmax(hi, nd[i]); }
    const double range = hi - lo > 0 ? hi - lo : fabs(hi) + 1e-300;
    const double sigma = nh_arg_str(&j->a, "sigma") ? nh_arg_double(&j->a, "sigma") : range / 100;
    lo -= 5 * sigma, hi += 5 * sigma;
    for (size_t i = 0; i < G; i++) grid[i] = lo + (hi - lo) * (double)i / (double)(G - 1);
    NH_CHECK(cmd, nh_slq_density(nn, nd + nn, wt + nn, G, grid, sigma, den));
    NH_CHECK(cmd, nh_slq_density(nn, nd, wt, G, grid, sigma, den + G));
    char *csv = malloc(64 + G * 80), *p = csv, name[32], path[4200];
    if (!csv) nh_die(cmd, "out of memory");
    p += sprintf(p, "eigenvalue,density_bulk,density_full\n");
    for (size_t i = 0; i < G; i++) p += sprintf(p, "%.17g,%.17g,%.17g\n", grid[i], den[i], den[G + i]);
    snprintf(name, sizeof name, "bulk_%s.csv", op_name[e->op]);
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, j->work, name), csv);
    cJSON_AddItemToObject(jo, "sigma", nh_cli_json_num(sigma));
    free(csv); free(nd); free(wt); free(grid); free(den);
}

static void jarr(cJSON *o, const char *key, const double *v, size_t n) {
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, nh_cli_json_num(v[i]));
}

/* summary.json's entry of one operator: eigenpairs, overlap, moments, and
 * the trace check Tr(A^p) = sum_i lambda_i^p + (P - K) bulk moment vs P
 * times the full moment (each +- its SE). */
static void eig_json_op(const eig_job *j, const eig_op *e, cJSON *jo) {
    const size_t k = j->k, P = j->P;
    cJSON_AddStringToObject(jo, "which", e->which == NH_WHICH_LM ? "LM" : "LA");
    jarr(jo, "eigenvalues", e->ev, k);
    jarr(jo, "residuals", e->res, k);
    cJSON_AddNumberToObject(jo, "nconv", (double)e->li.nconv);
    cJSON_AddNumberToObject(jo, "lanczos_products", (double)e->li.nproducts);
    cJSON_AddItemToObject(jo, "overlap", nh_cli_json_num(e->overlap));
    jarr(jo, "overlap_components", e->comp, k);
    double tf[4], tfs[4], tb[4], tbs[4];
    for (int q = 0; q < 4; q++) {
        double s = 0;
        for (size_t i = 0; i < k; i++) s += pow(e->ev[i], q + 1);
        tf[q] = (double)P * e->full.moments[q], tfs[q] = (double)P * e->full.moments_se[q];
        tb[q] = s + (double)(P - k) * e->bulk.moments[q], tbs[q] = (double)(P - k) * e->bulk.moments_se[q];
    }
    cJSON *sf = cJSON_AddObjectToObject(jo, "slq_full"), *sb = cJSON_AddObjectToObject(jo, "slq_bulk");
    /* Standard errors need two vectors or more (undefined, left out, with
     * one: never a null that could pass for divergence). */
    const int se = j->M >= 2;
    jarr(sf, "moments_over_P", e->full.moments, 4);
    if (se) jarr(sf, "moments_se", e->full.moments_se, 4);
    cJSON_AddNumberToObject(sf, "products", (double)e->full.nproducts);
    jarr(sb, "moments_over_P_minus_k", e->bulk.moments, 4);
    if (se) jarr(sb, "moments_se", e->bulk.moments_se, 4);
    cJSON_AddNumberToObject(sb, "products", (double)e->bulk.nproducts);
    cJSON *tc = cJSON_AddObjectToObject(jo, "traces");
    jarr(tc, "from_full", tf, 4);
    if (se) jarr(tc, "from_full_se", tfs, 4);
    jarr(tc, "from_deflated", tb, 4);
    if (se) jarr(tc, "from_deflated_se", tbs, 4);
}

/* Principal angles of every pair of operators (in --ops order), angles.csv. */
static void eig_angles(const nh_cmd *cmd, eig_job *j, cJSON *js) {
    const size_t k = j->k;
    char *csv = malloc(64 + 3 * k * 120), *p = csv, path[4200];
    if (!csv) nh_die(cmd, "out of memory");
    p += sprintf(p, "pair,i,angle_rad,angle_deg\n");
    cJSON *ja = cJSON_AddObjectToObject(js, "angles");
    double *ang = malloc(k * sizeof *ang), *deg = malloc(k * sizeof *deg);
    if (!ang || !deg) nh_die(cmd, "out of memory");
    for (size_t a = 0; a < j->nops; a++)
        for (size_t b = a + 1; b < j->nops; b++) {
            char pair[8];
            snprintf(pair, sizeof pair, "%s-%s", op_name[j->op[a].op], op_name[j->op[b].op]);
            NH_CHECK(cmd, nh_principal_angles(k, k, j->P, j->op[a].V, j->op[b].V, ang));
            for (size_t i = 0; i < k; i++) {
                deg[i] = ang[i] * 180.0 / 3.14159265358979323846;
                p += sprintf(p, "%s,%zu,%.17g,%.17g\n", pair, i + 1, ang[i], deg[i]);
            }
            cJSON *jp = cJSON_AddObjectToObject(ja, pair);
            jarr(jp, "radians", ang, k);
            jarr(jp, "degrees", deg, k);
        }
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, j->work, "angles.csv"), csv);
    free(csv); free(ang); free(deg);
}

/* evals.csv, overlap.csv and the vectors. */
static void eig_tables(const nh_cmd *cmd, eig_job *j) {
    const size_t k = j->k;
    char *ev = malloc(64 + 3 * k * 80), *ov = malloc(64 + 3 * k * 80), *p = ev, *q = ov, path[4200];
    if (!ev || !ov) nh_die(cmd, "out of memory");
    p += sprintf(p, "op,i,eigenvalue,residual\n");
    q += sprintf(q, "op,i,component,overlap_top_i\n");
    for (size_t o = 0; o < j->nops; o++) {
        const eig_op *e = &j->op[o];
        const char *nm = op_name[e->op];
        double s2 = 0;
        for (size_t i = 0; i < k; i++) {
            s2 += e->comp[i] * e->comp[i];
            p += sprintf(p, "%s,%zu,%.17g,%.17g\n", nm, i + 1, e->ev[i], e->res[i]);
            /* the row i = K: ||P_K g|| / ||g|| (up to rounding, the overlap) */
            q += sprintf(q, "%s,%zu,%.17g,%.17g\n", nm, i + 1, e->comp[i], i + 1 == k ? e->overlap : fmin(1.0, sqrt(s2)));
        }
        char name[32];
        size_t sh[2] = {k, j->P};
        snprintf(name, sizeof name, "vecs_%s.npy", nm);
        nh_cli_write_npy(cmd, j->work, name, e->V, 2, sh);
    }
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, j->work, "evals.csv"), ev);
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, j->work, "overlap.csv"), ov);
    free(ev); free(ov);
}

/* The effective value of every option (defaults included). */
static void eig_json_opts(const eig_job *j, cJSON *js) {
    cJSON *o = cJSON_AddObjectToObject(js, "options");
    for (size_t i = 0; eig_opts[i].name; i++) {
        const char *v = nh_arg_str(&j->a, eig_opts[i].name);
        if (v) cJSON_AddStringToObject(o, eig_opts[i].name, v); /* unset (no default): left out */
    }
}

static void eig_free(eig_job *j) {
    for (size_t o = 0; o < j->nops; o++) { free(j->op[o].ev); free(j->op[o].res); free(j->op[o].V); free(j->op[o].comp); }
    free(j->g);
    cJSON_Delete(j->js);
    nh_curv_free(j->c);
    nh_net_free(j->net);
    nh_dataset_free(&j->d);
}

/* Say up front about how long: one timed H v times the products expected
 * (Lanczos ~3 (K + 20) per operator, two SLQ runs of M m). */
static void eig_estimate(const nh_cmd *cmd, eig_job *j) {
    double *v = calloc(j->P, sizeof *v), *hv = malloc(j->P * sizeof *hv);
    if (!v || !hv) nh_die(cmd, "out of memory");
    v[0] = 1;
    const double t0 = nh_cli_now();
    NH_CHECK(cmd, nh_curv_hvp(j->c, v, hv));
    j->nprod++;
    const double per_op = 3.0 * ((double)j->k + 20.0) + 2.0 * (double)j->M * (double)j->m;
    nh_cli_estimate(cmd, "Hessian-vector products", nh_cli_now() - t0, (long long)((double)j->nops * per_op));
    free(v); free(hv);
}

static int run_eigenspace(const nh_cmd *cmd, int argc, char **argv) {
    eig_job j;
    memset(&j, 0, sizeof j);
    eig_parse(cmd, argc, argv, &j);
    j.js = cJSON_CreateObject();
    eig_setup(cmd, &j);
    cJSON_AddNumberToObject(j.js, "P", (double)j.P);
    cJSON_AddNumberToObject(j.js, "N", (double)j.d.n);
    cJSON_AddNumberToObject(j.js, "k", (double)j.k);
    cJSON_AddNumberToObject(j.js, "slq_steps", (double)j.m);
    cJSON_AddItemToObject(j.js, "grad_norm", nh_cli_json_num(j.gnorm));
    eig_json_opts(&j, j.js);
    eig_estimate(cmd, &j);
    const double t0 = nh_cli_now();
    const size_t stages = 2 * j.nops;
    for (size_t o = 0; o < j.nops; o++) {
        cJSON *jo = cJSON_AddObjectToObject(j.js, op_name[j.op[o].op]);
        eig_top(cmd, &j, &j.op[o]);
        nh_cli_progress("eigenspace: stage", 2 * o + 1, stages, nh_cli_now() - t0);
        eig_bulk(cmd, &j, &j.op[o], jo);
        nh_cli_progress("eigenspace: stage", 2 * o + 2, stages, nh_cli_now() - t0);
        eig_json_op(&j, &j.op[o], jo);
    }
    eig_angles(cmd, &j, j.js);
    eig_tables(cmd, &j);
    cJSON_AddNumberToObject(j.js, "products", (double)j.nprod);
    char *txt = cJSON_Print(j.js), path[4200];
    nh_cli_write_result(cmd, nh_cli_path(path, sizeof path, j.work, "summary.json"), txt);
    free(txt);
    nh_out_commit(cmd);
    for (size_t o = 0; o < j.nops; o++)
        printf("%s: lambda_1 = %.10g, overlap(grad, top-%zu) = %.6f\n", op_name[j.op[o].op], j.op[o].ev[0], j.k,
               j.op[o].overlap);
    eig_free(&j);
    return 0;
}

const nh_cmd nh_cmd_eigenspace = {
    "eigenspace", "Top-k eigenvectors of H, I, S, gradient overlap, principal angles, bulk densities.",
    "--model DIR --data X.npy --targets Y.npy [--loss L] --k K [--ops H,I,S] --out DIR",
    "For each operator of --ops: the top K eigenpairs by thick-restart Lanczos (H and I:\n"
    "largest algebraic; S: largest magnitude), the overlap ||P_K g|| / ||g|| of the\n"
    "gradient g with their span, and two SLQ densities on one grid: the full one and\n"
    "that of the bulk, the operator restricted to the orthogonal complement of the K\n"
    "eigenvectors (the P - K remaining eigenvalues; each density integrates to 1).\n"
    "Then the principal angles between the top-K eigenspaces of each pair.  Writes\n"
    "vecs_OP.npy (K x P rows), evals.csv (op,i,eigenvalue,residual), overlap.csv\n"
    "(op,i,component |u_i.g|/||g||,overlap_top_i ||P_i g||/||g||), angles.csv\n"
    "(pair,i,angle_rad,angle_deg), bulk_OP.csv (eigenvalue,density_bulk,density_full)\n"
    "and summary.json (all of it, moments, the trace check Tr(A^p) = sum lambda_i^p +\n"
    "(P - K) bulk moment, products, the options).  The output folder is written all\n"
    "or nothing.  See docs/eigenspace.md.",
    eig_opts, run_eigenspace};
