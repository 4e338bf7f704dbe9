/* cmd_eos.c -- ntkhess eos and catapult: two figures beyond the lazy regime,
 * with the Hessian split into I and S (docs/beyond-lazy.md).
 *   eos:      full-batch GD on a Fashion-MNIST subset at three step sizes;
 *             lam_H against 2/eta (Cohen et al. 2021, edge of stability).
 *   catapult: a wide network at eta = r 2/lam_0 for r across 0.5 .. 8;
 *             loss spike, final curvature, divergence (Lewkowycz et al. 2020). */
#include "sharp.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EOS_MAXETA 8
#define EOS_MAXDEPTH 16

/* ------------------------------------------------------ shared helpers */

/* Fashion-MNIST (train split) subset: n images pooled to size x size,
 * standardized rows; MSE targets either one-hot over the 10 classes
 * (nout = 10, as in Cohen et al.) or the scalar class code (nout = 1). */
static void eos_data(const nh_cmd *cmd, size_t n, size_t size, uint64_t seed, size_t nout, nh_dataset *d) {
    char dir[4096];
    nh_images im;
    nh_cli_path(dir, sizeof dir, nh_data_dir(), "fashion-mnist");
    nh_status st = nh_fashion_mnist_load(dir, "train", &im);
    if (st != NH_OK) nh_die(cmd, "%s (see docs/data.md: scripts/fetch_data.sh)", nh_last_error());
    size_t dim = size * size, *sel = malloc(n * sizeof *sel);
    d->X = malloc(n * dim * sizeof *d->X);
    d->T = malloc(n * nout * sizeof *d->T);
    double *code = malloc(n * sizeof *code);
    if (!sel || !d->X || !d->T || !code) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_images_prepare(&im, n, size, seed, NH_LOSS_MSE, d->X, code, sel));
    for (size_t i = 0; i < n; i++) {
        if (nout == 1) { d->T[i] = code[i]; continue; }
        for (size_t k = 0; k < nout; k++) d->T[i * nout + k] = (size_t)im.labels[sel[i]] == k ? 1.0 : 0.0;
    }
    d->n = n;
    d->n0 = dim;
    d->nout = nout;
    free(sel); free(code);
    nh_images_free(&im);
}

static nh_net *eos_net(const nh_cmd *cmd, size_t n0, const size_t *hidden, size_t nh, size_t nout, nh_act act,
                       nh_param param, uint64_t seed) {
    size_t w[EOS_MAXDEPTH + 2];
    w[0] = n0;
    for (size_t i = 0; i < nh; i++) w[i + 1] = hidden[i];
    w[nh + 1] = nout;
    nh_net_config c = nh_net_config_default();
    c.depth = nh + 1;
    c.widths = w;
    c.act = act;
    c.param = param;
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_net_create(&c, &net));
    if (param == NH_PARAM_STANDARD) nh_net_init_uniform_fanin(net, seed); /* PyTorch's default init */
    else nh_net_init_normal(net, seed);
    return net;
}

static nh_param eos_param(const nh_cmd *cmd, const nh_args *a) {
    const char *p = nh_arg_req(a, "param");
    if (strcmp(p, "ntk") == 0) return NH_PARAM_NTK;
    if (strcmp(p, "mf") == 0) return NH_PARAM_MF;
    if (strcmp(p, "standard") == 0) return NH_PARAM_STANDARD;
    nh_die_usage(cmd, "--param must be ntk, mf or standard, got '%s'", p);
}

/* The figure note without PLplot escapes, for summary.json. */
static void eos_plain(const char *in, char *out, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 8 < cap; i++) {
        if (in[i] != '#') { out[j++] = in[i]; continue; }
        const char *rep = in[i + 1] == 'g' && in[i + 2] == 'l'   ? "lambda"
                          : in[i + 1] == 'g' && in[i + 2] == 'y' ? "eta"
                          : in[i + 1] == 'd'                     ? "_"
                                                                 : "";
        if (in[i + 1] == 'g') i++;
        if (in[i + 1]) i++;
        j += (size_t)snprintf(out + j, cap - j, "%s", rep);
    }
    out[j] = 0;
}

/* Top eigenvalue of op at the context's theta, cold (seeded) start. */
static double eos_top(const nh_cmd *cmd, nh_curv *c, nh_sharp_op op) {
    nh_sharp_eig_opts eo = {1, 0, 1e-8, 200, 1, 7};
    double lam, *v = malloc(nh_net_nparams(nh_curv_net(c)) * sizeof *v);
    if (!v) nh_die(cmd, "out of memory");
    nh_sharp_eig_res r;
    NH_CHECK(cmd, nh_sharp_eigs(c, op, &eo, NULL, 0, &lam, v, &r));
    free(v);
    return lam;
}

static const char *eos_param_name(nh_param p) {
    return p == NH_PARAM_MF ? "mean-field" : p == NH_PARAM_STANDARD ? "standard (PyTorch)" : "NTK";
}

static void eos_write_json(const nh_cmd *cmd, const char *out, cJSON *js) {
    char path[4096], *txt = cJSON_Print(js);
    if (!txt) nh_die(cmd, "out of memory");
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "summary.json"), txt);
    free(txt);
    cJSON_Delete(js);
}

/* A horizontal (vertical) reference line as a two-point series. */
static void eos_hline(nh_plot_series *s, double *xy, double x0, double x1, double y, nh_plot_color col) {
    xy[0] = x0; xy[1] = x1; xy[2] = y; xy[3] = y;
    memset(s, 0, sizeof *s);
    s->n = 2; s->x = xy; s->y = xy + 2; s->style = NH_STYLE_LINE; s->color = col;
}

/* ----------------------------------------------------------------- eos */

static const nh_optspec eos_opts[] = {
    {"out", "DIR", NULL, "output directory (eos.png, eos.svg, eta*.csv, summary.json)"},
    {"quick", NULL, NULL, "small run (N = 500, 14x14 inputs, hidden 100,100,100, 500 steps): about 75 s of CPU"},
    {"n", "N", "", "images (default 5000; quick 500)"},
    {"size", "S", "", "side of the pooled images: 28, 14 or 7 (default 28; quick 14)"},
    {"hidden", "LIST", "", "hidden widths (default 200,200,200; quick 100,100,100)"},
    {"param", "standard|mf|ntk", "standard",
     "parametrization: standard (PyTorch nn.Linear, PyTorch's init), mf (mean field) or ntk (near lazy here)"},
    {"lrs", "LIST", "", "up to 8 step sizes (default: 2/eta = 2.2, 1.6 and 1.3 x lam_max(H) at init)"},
    {"steps", "K", "", "GD steps per step size (default 2000; quick 500)"},
    {"every", "E", "", "a record every E steps (default 10; quick 5)"},
    {"tol", "TOL", "1e-5", "relative Ritz residual of the eigen-solves"},
    {"seed", "S", "0", "seed of the image selection and of the initial parameters"},
    NH_OPT_BATCH,
    {"restart", NULL, NULL, "drop an unfinished run's checkpoints and start over"},
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

typedef struct eos_cfg {
    size_t n, size, hidden[EOS_MAXDEPTH], nh, neta;
    double eta[EOS_MAXETA], tol;
    long long steps, every;
    nh_param param;
    uint64_t seed;
    int quick;
    nh_curv_opts curv; /* --batch */
} eos_cfg;

static void eos_parse(const nh_cmd *cmd, const nh_args *a, eos_cfg *f) {
    memset(f, 0, sizeof *f);
    f->quick = nh_arg_flag(a, "quick");
    f->n = nh_arg_str(a, "n") ? (size_t)nh_arg_int(a, "n", 1, 60000) : f->quick ? 500 : 5000;
    f->size = nh_arg_str(a, "size") ? (size_t)nh_arg_int(a, "size", 1, 28) : f->quick ? 14 : 28;
    if (28 % f->size) nh_die_usage(cmd, "--size must be 28, 14 or 7, got %zu", f->size);
    if (nh_arg_str(a, "hidden")) f->nh = nh_arg_sizes(a, "hidden", f->hidden, EOS_MAXDEPTH);
    else { f->nh = 3; f->hidden[0] = f->hidden[1] = f->hidden[2] = f->quick ? 100 : 200; }
    f->param = eos_param(cmd, a);
    f->steps = nh_arg_str(a, "steps") ? nh_arg_int(a, "steps", 1, 1 << 30) : f->quick ? 500 : 2000;
    f->every = nh_arg_str(a, "every") ? nh_arg_int(a, "every", 1, 1 << 30) : f->quick ? 5 : 10;
    f->tol = nh_arg_double(a, "tol");
    if (!(f->tol > 0 && f->tol < 1)) nh_die_usage(cmd, "--tol must be in (0, 1)");
    f->seed = nh_arg_u64(a, "seed");
    f->curv = *nh_cli_curv_opts(a);
    if (nh_arg_str(a, "lrs")) {
        double *v;
        f->neta = nh_arg_doubles(a, "lrs", &v);
        if (f->neta < 1 || f->neta > EOS_MAXETA) nh_die_usage(cmd, "--lrs takes 1 to %d step sizes", EOS_MAXETA);
        for (size_t i = 0; i < f->neta; i++) {
            if (!(v[i] > 0)) nh_die_usage(cmd, "--lrs entries must be > 0");
            f->eta[i] = v[i];
        }
        free(v);
    } /* else eos_default_lrs, from the initial sharpness */
}

static void eos_id(const eos_cfg *f, size_t i, nh_ckpt_id *id) {
    memset(id, 0, sizeof *id);
    nh_ckpt_id_add(id, "command", "eos");
    nh_ckpt_id_add(id, "data", "%zu,%zu,%llu", f->n, f->size, (unsigned long long)f->seed);
    char hid[80] = "";
    for (size_t j = 0; j < f->nh; j++) snprintf(hid + strlen(hid), sizeof hid - strlen(hid), "%s%zu", j ? "," : "", f->hidden[j]);
    nh_ckpt_id_add(id, "hidden", "%s", hid);
    nh_ckpt_id_add(id, "param", "%d", (int)f->param);
    nh_ckpt_id_add(id, "lr", "%.17g", f->eta[i]);
    nh_ckpt_id_add(id, "steps", "%lld,%lld", f->steps, f->every);
    nh_ckpt_id_add(id, "tol", "%.17g", f->tol);
    nh_ckpt_id_add(id, "run", "%zu", i);
    /* the batch changes the sums' order (records equal to rounding); 0 keeps older identities */
    if (f->curv.batch) nh_ckpt_id_add(id, "batch", "%zu", f->curv.batch);
}

/* Per step size: where lam_H first reaches 2/eta, and the mean and SD of
 * x eta/2 for x = lam_H, lam_I, lam_S, uIu, uSu over the records from there on. */
#define EOS_NQ 5
static const char *const eos_q[EOS_NQ] = {"lam_H", "lam_I", "lam_S", "uIu", "uSu"};

typedef struct eos_stat {
    long long arrive; /* -1: never */
    double    mean[EOS_NQ], sd[EOS_NQ], final_loss;
    size_t    nafter;
    long long diverged; /* step, or -1 */
} eos_stat;

static void eos_stats(const sh_table *t, double eta, eos_stat *s) {
    int cs = sh_table_col(t, "step"), cl = sh_table_col(t, "loss"), c[EOS_NQ];
    for (int q = 0; q < EOS_NQ; q++) c[q] = sh_table_col(t, eos_q[q]);
    s->arrive = -1;
    size_t r0 = t->rows;
    for (size_t r = 0; r < t->rows && s->arrive < 0; r++)
        if (t->v[r * t->cols + c[0]] >= 2.0 / eta) { s->arrive = (long long)t->v[r * t->cols + cs]; r0 = r; }
    s->nafter = t->rows - r0;
    s->final_loss = t->rows ? t->v[(t->rows - 1) * t->cols + cl] : NAN;
    for (int q = 0; q < EOS_NQ; q++) {
        double m = 0, m2 = 0;
        for (size_t r = r0; r < t->rows; r++) {
            double x = t->v[r * t->cols + c[q]] * eta / 2;
            m += x; m2 += x * x;
        }
        double nn = (double)s->nafter;
        s->mean[q] = nn > 0 ? m / nn : NAN;
        s->sd[q] = nn > 1 ? sqrt(fmax(0, (m2 - nn * s->mean[q] * s->mean[q]) / (nn - 1))) : NAN;
    }
}

/* Which part carries the instability: the split lam_H = u^T I u + u^T S u
 * along the top eigenvector u of H, averaged after the arrival. */
static const char *eos_carrier(const eos_stat *s) {
    if (s->arrive < 0) return "none (2/eta not reached)";
    double share = s->mean[3] / s->mean[0];
    if (share >= 0.75) return "I";
    if (share <= 0.25) return "S";
    return "both";
}

static cJSON *eos_stat_json(double eta, const eos_stat *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "eta", nh_cli_json_num(eta));
    cJSON_AddItemToObject(o, "two_over_eta", nh_cli_json_num(2 / eta));
    cJSON_AddItemToObject(o, "first_step_lam_H_ge_2_over_eta", s->arrive >= 0 ? cJSON_CreateNumber((double)s->arrive) : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "records_after", (double)s->nafter);
    const char *const *nm = eos_q;
    for (int q = 0; q < EOS_NQ; q++) {
        char k1[64], k2[64];
        snprintf(k1, 64, "mean_%s_eta_over_2_after", nm[q]);
        snprintf(k2, 64, "sd_%s_eta_over_2_after", nm[q]);
        cJSON_AddItemToObject(o, k1, nh_cli_json_num(s->mean[q]));
        cJSON_AddItemToObject(o, k2, nh_cli_json_num(s->sd[q]));
    }
    cJSON_AddItemToObject(o, "share_of_I_in_lam_H_after", nh_cli_json_num(s->mean[3] / s->mean[0]));
    cJSON_AddStringToObject(o, "carrier", eos_carrier(s));
    cJSON_AddItemToObject(o, "final_loss", nh_cli_json_num(s->final_loss));
    cJSON_AddItemToObject(o, "diverged_at_step", s->diverged >= 0 ? cJSON_CreateNumber((double)s->diverged) : cJSON_CreateNull());
    return o;
}

/* Panels: loss, lam_H with 2/eta, lam_I with 2/eta, lam_S; one colour per eta. */
static void eos_plot(const nh_cmd *cmd, const char *out, const eos_cfg *f, sh_table *t, const char *note) {
    static const char *const col[5] = {"loss", "lam_H", "lam_I", "lam_S", "uSu"};
    static const char *const ttl[5] = {"loss", "#gl#dmax#u(H) and 2/#gy", "#gl#dmax#u(I) and 2/#gy",
                                       "#gl(S), largest |.|", "u#uT#d S u, u: top eigenvector of H"};
    nh_plot_series ser[5][2 * EOS_MAXETA];
    nh_plot_panel pan[5];
    double ref[EOS_MAXETA][4];
    char lab[EOS_MAXETA][64];
    double *own[10 * EOS_MAXETA];
    size_t nown = 0;
    memset(pan, 0, sizeof pan);
    for (int p = 0; p < 5; p++) {
        size_t ns = 0;
        for (size_t i = 0; i < f->neta; i++) {
            int cs = sh_table_col(&t[i], "step"), cy = sh_table_col(&t[i], col[p]);
            nh_plot_series *s = &ser[p][ns++];
            memset(s, 0, sizeof *s);
            s->n = t[i].rows; s->style = NH_STYLE_LINE; s->color = (nh_plot_color)(NH_COLOR_BLUE + i % 10);
            double *x = malloc(t[i].rows * sizeof *x), *y = malloc(t[i].rows * sizeof *y);
            if (!x || !y) nh_die(cmd, "out of memory");
            own[nown++] = x; own[nown++] = y;
            for (size_t r = 0; r < t[i].rows; r++) { x[r] = t[i].v[r * t[i].cols + cs]; y[r] = t[i].v[r * t[i].cols + cy]; }
            s->x = x; s->y = y;
            snprintf(lab[i], 64, "#gy = %g", f->eta[i]);
            s->label = p == 0 ? lab[i] : NULL;
            if (p == 1 || p == 2) eos_hline(&ser[p][ns++], ref[i], 0, (double)f->steps, 2 / f->eta[i], s->color);
        }
        pan[p].title = ttl[p]; pan[p].xlabel = "step"; pan[p].nseries = ns; pan[p].series = ser[p];
        pan[p].logy = p == 0; pan[p].legend = p == 0 ? NH_LEGEND_AUTO : NH_LEGEND_NONE;
    }
    nh_plot_spec spec = {0};
    char stem[4096];
    spec.path = nh_cli_path(stem, sizeof stem, out, "eos");
    spec.title = "Edge of stability: full-batch GD, top eigenvalues of H = I + S (lines: 2/#gy)";
    spec.note = note; spec.npanels = 5; spec.panels = pan; spec.width = 5 * 420;
    NH_CHECK(cmd, nh_plot_xy(&spec, NULL));
    for (size_t k = 0; k < nown; k++) free(own[k]);
}

/* sh_run, skipped when CSV.done names the same identity: a rerun after a
 * kill resumes at the step size it was in, not from the first.  The marker
 * holds the status and the last step, so a diverged run is reported again. */
static nh_status eos_run_one(const nh_cmd *cmd, nh_net **net, const nh_dataset *d, const sh_opts *o, const char *csv,
                             const nh_ckpt_id *id, long long *kend) {
    char done[4200], key[2048] = "", text[2200], have[2200] = "";
    for (size_t j = 0; j < id->n; j++)
        snprintf(key + strlen(key), sizeof key - strlen(key), "%s=%s;", id->name[j], id->value[j]);
    snprintf(done, sizeof done, "%s.done", csv);
    FILE *f = fopen(done, "r");
    int st0 = -1, ok = f && fgets(have, sizeof have, f) && fscanf(f, "%d %lld", &st0, kend) == 2;
    if (f) fclose(f);
    have[strcspn(have, "\n")] = 0;
    if (ok && strcmp(have, key) == 0 && !o->restart) return (nh_status)st0;
    remove(done);
    nh_status st = sh_run(cmd, net, d, NH_LOSS_MSE, o, csv, id, kend);
    snprintf(text, sizeof text, "%s\n%d %lld\n", key, (int)st, *kend);
    nh_cli_write_text(cmd, done, text);
    return st;
}

static void eos_note(char *note, size_t cap, const eos_cfg *f) {
    char hid[128] = "";
    for (size_t i = 0; i < f->nh; i++)
        snprintf(hid + strlen(hid), sizeof hid - strlen(hid), "%s%zu", i ? "," : "", f->hidden[i]);
    snprintf(note, cap,
             "%sFashion-MNIST train subset N = %zu, %zux%zu inputs, tanh MLP hidden %s, 10 outputs, MSE on one-hot "
             "targets, %s parametrization, full-batch GD, %lld steps, a record every %lld",
             f->quick ? "quick mode: " : "", f->n, f->size, f->size, hid,
             eos_param_name(f->param), f->steps, f->every);
}

/* Without --lrs: 2/eta = 2.2, 1.6, 1.3 x lam_max(H) at init, so each run must
 * sharpen by that factor to reach the edge, in any parametrization. */
static double eos_default_lrs(const nh_cmd *cmd, eos_cfg *f, const nh_dataset *d) {
    nh_net *net = eos_net(cmd, d->n0, f->hidden, f->nh, 10, NH_ACT_TANH, f->param, f->seed);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create_ex(net, d->X, d->T, d->n, NH_LOSS_MSE, &f->curv, &c));
    double lam0 = eos_top(cmd, c, NH_SHARP_H), fac[3] = {2.2, 1.6, 1.3};
    nh_curv_free(c);
    nh_net_free(net);
    if (f->neta == 0) {
        f->neta = 3;
        for (int i = 0; i < 3; i++) f->eta[i] = 2 / (fac[i] * lam0);
    }
    return lam0;
}

static int run_eos(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    eos_cfg f;
    eos_parse(cmd, &a, &f);
    const char *out = nh_arg_req(&a, "out");
    NH_CHECK(cmd, nh_plot_available());
    nh_cli_mkdir(cmd, out);
    nh_dataset d;
    eos_data(cmd, f.n, f.size, f.seed, 10, &d);
    double lam0 = eos_default_lrs(cmd, &f, &d);
    sh_table t[EOS_MAXETA];
    cJSON *js = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(js, "runs");
    cJSON_AddItemToObject(js, "lam_H_init", nh_cli_json_num(lam0));
    double t0 = nh_cli_now();
    for (size_t i = 0; i < f.neta; i++) {
        nh_net *net = eos_net(cmd, d.n0, f.hidden, f.nh, 10, NH_ACT_TANH, f.param, f.seed);
        /* lam_NTK is skipped: for MSE it equals lam_I (tested), at N x 10 dimensions. */
        sh_opts o = {.eta = f.eta[i], .steps = f.steps, .every = f.every, .ckev = 100,
                     .rec = {.top = 1, .tol = f.tol, .maxit = 200, .min_steps = 4, .cold = 0, .ntk = 0},
                     .curv = f.curv, .quiet = 1, .restart = nh_arg_flag(&a, "restart")};
        char csv[4096], name[64];
        snprintf(name, sizeof name, "eta%zu.csv", i);
        long long kend;
        nh_ckpt_id id;
        eos_id(&f, i, &id);
        nh_status st = eos_run_one(cmd, &net, &d, &o, nh_cli_path(csv, sizeof csv, out, name), &id, &kend);
        sh_table_read(cmd, csv, &t[i]);
        eos_stat s;
        eos_stats(&t[i], f.eta[i], &s);
        s.diverged = st == NH_OK ? -1 : kend;
        cJSON_AddItemToArray(runs, eos_stat_json(f.eta[i], &s));
        fprintf(stderr, "ntkhess eos: eta %g: lam_H >= 2/eta first at step %lld; after: lam_H eta/2 = %.3f +- %.3f, "
                        "lam_I eta/2 = %.3f, lam_S eta/2 = %.3f, uIu eta/2 = %.3f, uSu eta/2 = %.3f; carrier %s (%.0f s)\n",
                f.eta[i], s.arrive, s.mean[0], s.sd[0], s.mean[1], s.mean[2], s.mean[3], s.mean[4], eos_carrier(&s),
                nh_cli_now() - t0);
        nh_net_free(net);
    }
    char note[512];
    eos_note(note, sizeof note, &f);
    cJSON_AddStringToObject(js, "setup", note);
    cJSON_AddItemToObject(js, "seconds", nh_cli_json_num(nh_cli_now() - t0));
    eos_plot(cmd, out, &f, t, note);
    eos_write_json(cmd, out, js);
    for (size_t i = 0; i < f.neta; i++) sh_table_free(&t[i]);
    nh_dataset_free(&d);
    fprintf(stderr, "ntkhess eos: wrote %s/eos.png, eos.svg, eta*.csv, summary.json\n", out);
    return 0;
}

const nh_cmd nh_cmd_eos = {
    "eos", "Edge-of-stability figure: sharpness of H, I, S along full-batch GD at three step sizes.",
    "--out DIR [--quick] [--param standard|mf|ntk] [--lrs LIST] [--steps K] [--every E] [--batch B]",
    "A tanh MLP (hidden 200,200,200) with 10 outputs, MSE on one-hot targets, trained by\n"
    "full-batch GD on a 5,000-image subset of Fashion-MNIST (the train split; CIFAR-10, used by\n"
    "Cohen et al. 2021, is not available here) at each step size, recorded as 'ntkhess sharpness'\n"
    "does (DIR/eta0.csv, ...; resumable).  By default the step sizes put 2/eta at 2.2, 1.6 and\n"
    "1.3 times lam_max(H) at initialization.  eos.png: loss, lam_H and lam_I with the lines\n"
    "2/eta, lam_S, u^T S u along the top eigenvector u of H.  summary.json: per step size, the\n"
    "first step where lam_H >= 2/eta, the mean and SD of x eta/2 (x = lam_H, lam_I, lam_S, uIu,\n"
    "uSu) over the records from there on, and which of I and S carries the instability: I when\n"
    "mean uIu >= 0.75 mean lam_H, S when <= 0.25, else both (lam_H = uIu + uSu).\n"
    "--batch B streams every pass over batches of B rows (full-batch GD all the same; records\n"
    "equal up to the order of the sums).  See docs/beyond-lazy.md.",
    eos_opts, run_eos};

/* ------------------------------------------------------------ catapult */

static const nh_optspec cat_opts[] = {
    {"out", "DIR", NULL, "output directory (catapult.png, catapult.svg, catapult.csv, losses.csv, summary.json)"},
    {"quick", NULL, NULL, "small run (N = 128, 7x7 inputs, width 1024, 300 steps)"},
    {"n", "N", "", "images (default 512; quick 128)"},
    {"size", "S", "", "side of the pooled images: 28, 14 or 7 (default 14; quick 7)"},
    {"hidden", "LIST", "", "hidden widths (default 4096: one hidden layer; quick 1024)"},
    NH_OPT_ACT("relu"),
    {"param", "ntk|mf|standard", "ntk", "parametrization"},
    {"ratios", "LIST", "0.5,0.9,1.1,1.3,1.5,1.75,2,2.5,3,4,5,6,8,10,12,14",
     "step sizes as multiples of 2/lam_0 (lam_0: top eigenvalue of the NTK Gram / N at init)"},
    {"steps", "K", "", "GD steps per step size (default 1000; quick 300)"},
    {"seed", "S", "0", "seed of the image selection and of the initial parameters"},
    {"threads", "T", "auto", "threads for BLAS and OpenMP"},
    {NULL, NULL, NULL, NULL}};

typedef struct cat_cfg {
    size_t n, size, hidden[EOS_MAXDEPTH], nh, nr;
    double *ratio;
    long long steps;
    nh_act act;
    nh_param param;
    uint64_t seed;
    int quick;
} cat_cfg;

static void cat_parse(const nh_cmd *cmd, const nh_args *a, cat_cfg *f) {
    memset(f, 0, sizeof *f);
    f->quick = nh_arg_flag(a, "quick");
    f->n = nh_arg_str(a, "n") ? (size_t)nh_arg_int(a, "n", 1, 60000) : f->quick ? 128 : 512;
    f->size = nh_arg_str(a, "size") ? (size_t)nh_arg_int(a, "size", 1, 28) : f->quick ? 7 : 14;
    if (28 % f->size) nh_die_usage(cmd, "--size must be 28, 14 or 7, got %zu", f->size);
    if (nh_arg_str(a, "hidden")) f->nh = nh_arg_sizes(a, "hidden", f->hidden, EOS_MAXDEPTH);
    else { f->nh = 1; f->hidden[0] = f->quick ? 1024 : 4096; }
    f->act = nh_arg_act(cmd, a, NULL);
    f->param = eos_param(cmd, a);
    f->nr = nh_arg_doubles(a, "ratios", &f->ratio);
    for (size_t i = 0; i < f->nr; i++)
        if (!(f->ratio[i] > 0)) nh_die_usage(cmd, "--ratios entries must be > 0");
    f->steps = nh_arg_str(a, "steps") ? nh_arg_int(a, "steps", 1, 1 << 30) : f->quick ? 300 : 1000;
    f->seed = nh_arg_u64(a, "seed");
}

/* One step size: the loss at every step (NaN after divergence), its peak,
 * and the final lam_H, lam_I.  Diverged: non-finite, or the loss at the end
 * above the initial loss (it never came back). */
typedef struct cat_res {
    double max_ratio, final_loss, lam_H, lam_I;
    long long peak_step;
    int diverged;
} cat_res;

static void cat_one(const nh_cmd *cmd, const nh_net *net0, const nh_dataset *d, double eta, long long K,
                    double *loss, cat_res *r) {
    nh_net *net = NULL;
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_net_clone(net0, &net));
    NH_CHECK(cmd, nh_curv_create(net, d->X, d->T, d->n, NH_LOSS_MSE, &c));
    loss[0] = nh_curv_loss(c);
    r->max_ratio = 1; r->peak_step = 0; r->diverged = 0;
    long long k;
    for (k = 1; k <= K; k++) {
        nh_status st = nh_curv_gd_step(c, net, eta);
        if (st == NH_EDIVERGED || (st == NH_OK && !(nh_curv_loss(c) < 1e12 * loss[0]))) { r->diverged = 1; break; }
        NH_CHECK(cmd, st);
        loss[k] = nh_curv_loss(c);
        if (loss[k] / loss[0] > r->max_ratio) { r->max_ratio = loss[k] / loss[0]; r->peak_step = k; }
    }
    for (; k <= K; k++) loss[k] = NAN;
    r->final_loss = loss[K];
    if (!r->diverged && !(loss[K] < loss[0])) r->diverged = 1;
    r->lam_H = r->diverged ? NAN : eos_top(cmd, c, NH_SHARP_H);
    r->lam_I = r->diverged ? NAN : eos_top(cmd, c, NH_SHARP_I);
    nh_curv_free(c);
    nh_net_free(net);
}

static void cat_write_csv(const nh_cmd *cmd, const char *out, const cat_cfg *f, double lam0, const cat_res *r,
                          const double *L) {
    char path[4096];
    size_t cap = 256 + f->nr * 200 + (size_t)(f->steps + 1) * (f->nr + 1) * 26, len = 0;
    char *txt = malloc(cap);
    if (!txt) nh_die(cmd, "out of memory");
    len += (size_t)snprintf(txt + len, cap - len, "ratio,eta,peak_loss_over_initial,peak_step,final_loss,"
                                                  "lam_H_final,lam_I_final,lam_H_final_eta_over_2,diverged\n");
    for (size_t i = 0; i < f->nr; i++) {
        double eta = f->ratio[i] * 2 / lam0;
        len += (size_t)snprintf(txt + len, cap - len, "%.17g,%.17g,%.17g,%lld,%.17g,%.17g,%.17g,%.17g,%d\n",
                                f->ratio[i], eta, r[i].max_ratio, r[i].peak_step, r[i].final_loss, r[i].lam_H,
                                r[i].lam_I, r[i].lam_H * eta / 2, r[i].diverged);
    }
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "catapult.csv"), txt);
    len = (size_t)snprintf(txt, cap, "step");
    for (size_t i = 0; i < f->nr; i++) len += (size_t)snprintf(txt + len, cap - len, ",r%g", f->ratio[i]);
    for (long long k = 0; k <= f->steps; k++) {
        len += (size_t)snprintf(txt + len, cap - len, "\n%lld", k);
        for (size_t i = 0; i < f->nr; i++)
            len += (size_t)snprintf(txt + len, cap - len, ",%.10g", L[i * (size_t)(f->steps + 1) + (size_t)k]);
    }
    snprintf(txt + len, cap - len, "\n");
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, out, "losses.csv"), txt);
    free(txt);
}

/* Panels: loss / initial loss against the step; the peak of that ratio and
 * the final lam_H, lam_I against eta lam_0 / 2, with 2/eta and lam_0. */
static void cat_plot(const nh_cmd *cmd, const char *out, const cat_cfg *f, double lam0, const cat_res *r,
                     const double *L, const char *note) {
    size_t K1 = (size_t)f->steps + 1, nr = f->nr < 6 ? f->nr : 6, nl = 0;
    nh_plot_series s0[6], s1[3], s2[4];
    char lab[6][32];
    double *buf = malloc((K1 * (nr + 1) + 8 * f->nr + 16) * sizeof *buf);
    if (!buf) nh_die(cmd, "out of memory");
    double *steps = buf, *rel = buf + K1, *x = rel + K1 * nr, *pk = x + f->nr, *lh = pk + f->nr, *li = lh + f->nr;
    double *two = li + f->nr, *l0 = two + f->nr, *ref = l0 + f->nr;
    for (size_t k = 0; k < K1; k++) steps[k] = (double)k;
    for (size_t j = 0; j < f->nr; j++) {
        size_t i = f->nr <= 6 ? j : j * (f->nr - 1) / 5; /* at most 6 curves, spread over the sweep */
        if (j < nr) {
            for (size_t k = 0; k < K1; k++) rel[nl * K1 + k] = L[i * K1 + k] / L[i * K1];
            snprintf(lab[nl], 32, "#gy#gl#d0#u/2 = %g", f->ratio[i]);
            s0[nl] = (nh_plot_series){K1, steps, rel + nl * K1, NULL, NH_STYLE_LINE, NH_COLOR_AUTO, 0, lab[nl]};
            nl++;
        }
        x[j] = f->ratio[j]; pk[j] = r[j].diverged ? NAN : r[j].max_ratio; lh[j] = r[j].lam_H; li[j] = r[j].lam_I;
        two[j] = lam0 / f->ratio[j]; l0[j] = lam0;
    }
    s1[0] = (nh_plot_series){f->nr, x, pk, NULL, NH_STYLE_LINE_POINTS, NH_COLOR_BLACK, NH_MARKER_CIRCLE, "peak loss / initial"};
    eos_hline(&s1[1], ref, 1, 1, 1, NH_COLOR_GREY);
    ref[2] = 1; ref[3] = fmax(2, pk[0]);
    for (size_t j = 0; j < f->nr; j++) if (isfinite(pk[j]) && pk[j] > ref[3]) ref[3] = pk[j];
    s1[1].label = "#gy = 2/#gl#d0";
    s1[2] = s1[1]; s1[2].x = ref + 4; ref[4] = ref[5] = 2; s1[2].color = NH_COLOR_RED; s1[2].label = "#gy = 4/#gl#d0";
    s2[0] = (nh_plot_series){f->nr, x, lh, NULL, NH_STYLE_LINE_POINTS, NH_COLOR_BLUE, NH_MARKER_CIRCLE, "final #gl#dmax#u(H)"};
    s2[1] = (nh_plot_series){f->nr, x, li, NULL, NH_STYLE_LINE_POINTS, NH_COLOR_ORANGE, NH_MARKER_CROSS, "final #gl#dmax#u(I)"};
    s2[2] = (nh_plot_series){f->nr, x, two, NULL, NH_STYLE_LINE, NH_COLOR_GREY, 0, "2/#gy"};
    s2[3] = (nh_plot_series){f->nr, x, l0, NULL, NH_STYLE_LINE, NH_COLOR_BLACK, 0, "#gl#d0"};
    nh_plot_panel pan[3] = {
        {"loss / initial loss", "step", NULL, nl, s0, 0, 1, 0, 0, 0, 0, NH_LEGEND_BELOW},
        {"peak of the loss (divergence: not shown)", "#gy#gl#d0#u/2", NULL, 3, s1, 1, 1, 0, 0, 0, 0, NH_LEGEND_AUTO},
        {"curvature at the end", "#gy#gl#d0#u/2", NULL, 4, s2, 1, 1, 0, 0, 0, 0, NH_LEGEND_AUTO}};
    nh_plot_spec spec = {0};
    char stem[4096];
    spec.path = nh_cli_path(stem, sizeof stem, out, "catapult");
    spec.title = "Catapult: full-batch GD at #gy = r 2/#gl#d0 (#gl#d0#u: top eigenvalue of the NTK Gram / N at init)";
    spec.note = note; spec.npanels = 3; spec.panels = pan; spec.width = 3 * 520; spec.height = 720;
    NH_CHECK(cmd, nh_plot_xy(&spec, NULL));
    free(buf);
}

static cJSON *cat_summary(const cat_cfg *f, double lam0, double lamH0, const cat_res *r, const char *note) {
    cJSON *js = cJSON_CreateObject();
    char plain[512];
    eos_plain(note, plain, sizeof plain);
    cJSON_AddStringToObject(js, "setup", plain);
    cJSON_AddItemToObject(js, "lam0_NTK_over_N", nh_cli_json_num(lam0));
    cJSON_AddItemToObject(js, "lam_H_init", nh_cli_json_num(lamH0));
    cJSON_AddItemToObject(js, "eta_crit_2_over_lam0", nh_cli_json_num(2 / lam0));
    cJSON_AddItemToObject(js, "eta_4_over_lam0", nh_cli_json_num(4 / lam0));
    double first_spike = NAN, last_ok = NAN, first_div = NAN;
    int below = 1, nbelow = 0;
    for (size_t i = 0; i < f->nr; i++) {
        double q = f->ratio[i];
        if (!r[i].diverged && r[i].max_ratio > 1 && !(first_spike <= q)) first_spike = q;
        if (!r[i].diverged && !(last_ok >= q)) last_ok = q;
        if (r[i].diverged && !(first_div <= q)) first_div = q;
        if (!r[i].diverged && q > 1) { below &= r[i].lam_H * q * 2 / lam0 / 2 <= 1; nbelow++; }
    }
    cJSON_AddItemToObject(js, "smallest_ratio_with_loss_spike", nh_cli_json_num(first_spike));
    cJSON_AddItemToObject(js, "largest_converging_ratio", nh_cli_json_num(last_ok));
    cJSON_AddItemToObject(js, "smallest_diverging_ratio", nh_cli_json_num(first_div));
    cJSON_AddBoolToObject(js, "final_lam_H_below_2_over_eta_for_all_converging_ratios_above_1", below && nbelow > 0);
    cJSON *arr = cJSON_AddArrayToObject(js, "runs");
    for (size_t i = 0; i < f->nr; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "ratio", nh_cli_json_num(f->ratio[i]));
        cJSON_AddItemToObject(o, "eta", nh_cli_json_num(f->ratio[i] * 2 / lam0));
        cJSON_AddItemToObject(o, "peak_loss_over_initial", nh_cli_json_num(r[i].max_ratio));
        cJSON_AddNumberToObject(o, "peak_step", (double)r[i].peak_step);
        cJSON_AddItemToObject(o, "final_loss", nh_cli_json_num(r[i].final_loss));
        cJSON_AddItemToObject(o, "lam_H_final", nh_cli_json_num(r[i].lam_H));
        cJSON_AddItemToObject(o, "lam_I_final", nh_cli_json_num(r[i].lam_I));
        cJSON_AddBoolToObject(o, "diverged", r[i].diverged);
        cJSON_AddItemToArray(arr, o);
    }
    return js;
}

static int run_catapult(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    cat_cfg f;
    cat_parse(cmd, &a, &f);
    const char *out = nh_arg_req(&a, "out");
    NH_CHECK(cmd, nh_plot_available());
    nh_cli_mkdir(cmd, out);
    nh_dataset d;
    eos_data(cmd, f.n, f.size, f.seed, 1, &d);
    nh_net *net0 = eos_net(cmd, d.n0, f.hidden, f.nh, 1, f.act, f.param, f.seed);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create(net0, d.X, d.T, d.n, NH_LOSS_MSE, &c));
    double lam0 = eos_top(cmd, c, NH_SHARP_I), lamH0 = eos_top(cmd, c, NH_SHARP_H), t0 = nh_cli_now();
    nh_curv_free(c);
    size_t K1 = (size_t)f.steps + 1;
    double *L = malloc(f.nr * K1 * sizeof *L);
    cat_res *r = calloc(f.nr, sizeof *r);
    if (!L || !r) nh_die(cmd, "out of memory");
    for (size_t i = 0; i < f.nr; i++) {
        cat_one(cmd, net0, &d, f.ratio[i] * 2 / lam0, f.steps, L + i * K1, &r[i]);
        fprintf(stderr, "ntkhess catapult: eta lam0/2 = %g: peak loss %.3g x initial at step %lld, final lam_H %.4g "
                        "(2/eta %.4g)%s (%.0f s)\n", f.ratio[i], r[i].max_ratio, r[i].peak_step, r[i].lam_H,
                lam0 / f.ratio[i], r[i].diverged ? ", diverged" : "", nh_cli_now() - t0);
    }
    char note[512], hid[128] = "";
    for (size_t i = 0; i < f.nh; i++) snprintf(hid + strlen(hid), sizeof hid - strlen(hid), "%s%zu", i ? "," : "", f.hidden[i]);
    snprintf(note, sizeof note, "%sFashion-MNIST train subset N = %zu, %zux%zu inputs, %s network hidden %s, 1 output, "
             "MSE, %s parametrization, %lld GD steps; #gl#d0#u = %.5g, #gl#dmax#u(H) at init = %.5g",
             f.quick ? "quick mode: " : "", f.n, f.size, f.size, nh_act_name(f.act), hid,
             eos_param_name(f.param), f.steps, lam0, lamH0);
    cat_write_csv(cmd, out, &f, lam0, r, L);
    cat_plot(cmd, out, &f, lam0, r, L, note);
    eos_write_json(cmd, out, cat_summary(&f, lam0, lamH0, r, note));
    fprintf(stderr, "ntkhess catapult: wrote %s/catapult.png, catapult.svg, catapult.csv, losses.csv, summary.json\n", out);
    free(L); free(r); free(f.ratio);
    nh_net_free(net0);
    nh_dataset_free(&d);
    return 0;
}

const nh_cmd nh_cmd_catapult = {
    "catapult", "Catapult figure: a wide network trained at step sizes across 2/lam_0 .. 4/lam_0 and beyond.",
    "--out DIR [--quick] [--ratios LIST] [--steps K] [--act NAME]",
    "A wide one-hidden-layer network (NTK parametrization, MSE, one output, Fashion-MNIST\n"
    "subset) trained by full-batch GD at eta = r 2/lam_0 for each r of --ratios, where lam_0 is\n"
    "the top eigenvalue of the NTK Gram / N at initialization (= lam_max(I) for MSE).  The\n"
    "lazy theory predicts a monotone loss for r < 1; Lewkowycz et al. (2020) predict for\n"
    "1 < r < r_max (r_max = 2 in their solvable model) a loss spike, then convergence to a\n"
    "flatter point with lam_max < 2/eta, and divergence beyond r_max.  Writes catapult.csv (per\n"
    "r: peak loss / initial, its step, final loss, final lam_max(H), lam_max(I), diverged),\n"
    "losses.csv, catapult.png/svg and summary.json (thresholds and the measured boundary).\n"
    "Diverged: the loss became non-finite or ended above its initial value.",
    cat_opts, run_catapult};
