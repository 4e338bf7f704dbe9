/* args.c -- option parsing, --help rendering, error exits, shared helpers. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int nh__optindex(const nh_cmd *cmd, const char *name) {
    for (int i = 0; cmd->opts[i].name; i++)
        if (strcmp(cmd->opts[i].name, name) == 0) return i;
    return -1;
}

/* names(0..n-1) joined as "a, b or c" into buf. */
static const char *nh__cli_join(const char *(*name)(int), size_t n, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && k < cap; i++) {
        int w = snprintf(buf + k, cap - k, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", name((int)i));
        if (w < 0) break;
        k += (size_t)w;
    }
    return buf;
}
static const char *nh__loss_name_i(int i) { return nh_loss_name((nh_loss)i); }
static const char *nh__act_name_i(int i) { return nh_act_name((nh_act)i); }

const char *nh_cli_loss_names(void) {
    static char buf[128];
    return buf[0] ? buf : nh__cli_join(nh__loss_name_i, nh_loss_count(), buf, sizeof buf);
}
const char *nh_cli_act_names(void) {
    static char buf[512];
    return buf[0] ? buf : nh__cli_join(nh__act_name_i, nh_act_count(), buf, sizeof buf);
}

/* "mse (real targets), bce (-1/+1 labels) or ce (class ids)" for --help. */
static const char *nh__loss_name_help_i(int i) {
    static char buf[NH_LOSS_COUNT][64];
    snprintf(buf[i], sizeof buf[i], "%s (%s)", nh_loss_name((nh_loss)i), nh_loss_targets((nh_loss)i));
    return buf[i];
}
static const char *nh_cli_loss_names_help(void) {
    static char buf[256];
    return buf[0] ? buf : nh__cli_join(nh__loss_name_help_i, nh_loss_count(), buf, sizeof buf);
}

/* "softplus:beta (default 1) or leaky_relu:slope (default 0.01)". */
static const char *nh__act_param_i(int i) {
    static char buf[NH_ACT_COUNT][64];
    snprintf(buf[i], sizeof buf[i], "%s:%s (default %g)", nh_act_name((nh_act)i), nh_act_param_name((nh_act)i),
             nh_act_default_param((nh_act)i));
    return buf[i];
}
static const char *nh_cli_act_params(void) {
    static char buf[256];
    if (buf[0]) return buf;
    const char *rows[NH_ACT_COUNT];
    size_t n = 0;
    for (int i = 0; i < (int)nh_act_count(); i++)
        if (nh_act_param_name((nh_act)i)) rows[n++] = nh__act_param_i(i);
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof buf; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", rows[i]);
    return buf;
}

void nh_cli_help_text(FILE *out, const char *help) {
    static const struct { const char *key; const char *(*text)(void); } keys[] = {
        {"{acts}", nh_cli_act_names}, {"{act_params}", nh_cli_act_params}, {"{losses}", nh_cli_loss_names_help}};
    for (const char *p = help; *p;) {
        size_t k = 0;
        while (k < sizeof keys / sizeof *keys && strncmp(p, keys[k].key, strlen(keys[k].key)) != 0) k++;
        if (k < sizeof keys / sizeof *keys) { fputs(keys[k].text(), out); p += strlen(keys[k].key); }
        else fputc(*p++, out);
    }
}

nh_loss nh_arg_loss(const nh_cmd *cmd, const nh_args *a) {
    const char *s = nh_arg_req(a, "loss");
    nh_loss l;
    if (nh_loss_from_name(s, &l) != NH_OK) nh_die_usage(cmd, "--loss must be %s, got '%s'", nh_cli_loss_names(), s);
    return l;
}

nh_act nh_cli_act_spec(const nh_cmd *cmd, const char *opt, const char *spec, double *param) {
    nh_act act;
    double p;
    if (nh_act_parse(spec, &act, &p) != NH_OK) nh_die_usage(cmd, "--%s: %s", opt, nh_last_error_detail());
    if (!param && strchr(spec, ':'))
        nh_die_usage(cmd, "--%s: this command takes no activation parameter, got '%s'", opt, spec);
    if (param) *param = p;
    return act;
}

nh_act nh_arg_act(const nh_cmd *cmd, const nh_args *a, double *param) {
    return nh_cli_act_spec(cmd, "act", nh_arg_req(a, "act"), param);
}

void nh_cli_help(const nh_cmd *cmd, FILE *out) {
    fprintf(out, "Usage: ntkhess %s %s\n\n%s\n\n%s\n\nOptions:\n", cmd->name, cmd->usage, cmd->summary,
            cmd->description);
    for (int i = 0; cmd->opts[i].name; i++) {
        const nh_optspec *o = &cmd->opts[i];
        char left[96];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(out, "  %-26s ", left);
        nh_cli_help_text(out, o->help);
        if (o->metavar) {
            if (o->def && *o->def) fprintf(out, " (default: %s%s%s)", o->def, o->quick ? "; quick: " : "",
                                           o->quick ? o->quick : "");
            else if (!o->def) fprintf(out, " (required)");
            else fprintf(out, " (optional)");
        }
        fputc('\n', out);
    }
    fprintf(out, "  %-26s %s\n", "--help", "print this help and exit");
    fprintf(out, "\nExit status: 0 on success, 1 on a runtime error, 2 on a usage error.\n"
                 "Conventions (parameter order, time scale, kernels): see docs/conventions.md.\n");
}

_Noreturn void nh_die_usage(const nh_cmd *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "ntkhess%s%s: error: ", cmd ? " " : "", cmd ? cmd->name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'ntkhess %s%s--help')\n", cmd ? cmd->name : "", cmd ? " " : "");
    exit(NH_EXIT_USAGE);
}

_Noreturn void nh_die(const nh_cmd *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "ntkhess%s%s: error: ", cmd ? " " : "", cmd ? cmd->name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(NH_EXIT_RUNTIME);
}

_Noreturn void nh_die_status(const nh_cmd *cmd, nh_status st) {
    nh_die(cmd, "%s: %s", nh_strerror(st), nh_last_error());
}

void nh_cli_parse(const nh_cmd *cmd, int argc, char **argv, nh_args *a) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    /* def "" marks an optional option without a default: unset (NULL). */
    for (int i = 0; cmd->opts[i].name; i++) a->val[i] = (cmd->opts[i].def && *cmd->opts[i].def) ? cmd->opts[i].def : NULL;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) { nh_cli_help(cmd, stdout); exit(0); }
        if (strncmp(s, "--", 2) != 0) nh_die_usage(cmd, "unexpected argument '%s'", s);
        char name[64];
        const char *eq = strchr(s + 2, '=');
        size_t len = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
        if (len == 0 || len >= sizeof name) nh_die_usage(cmd, "bad option '%s'", s);
        memcpy(name, s + 2, len);
        name[len] = 0;
        int k = nh__optindex(cmd, name);
        if (k < 0) nh_die_usage(cmd, "unknown option '--%s'", name);
        if (a->given[k]) nh_die_usage(cmd, "option '--%s' given twice", name);
        a->given[k] = 1;
        if (!cmd->opts[k].metavar) {
            if (eq) nh_die_usage(cmd, "option '--%s' takes no value", name);
            a->val[k] = "1";
        } else if (eq) {
            a->val[k] = eq + 1;
        } else {
            if (i + 1 >= argc) nh_die_usage(cmd, "option '--%s' needs a value (%s)", name, cmd->opts[k].metavar);
            a->val[k] = argv[++i];
        }
    }
    /* --quick: the quick column for the options not given. */
    int q = nh__optindex(cmd, "quick");
    if (q >= 0 && a->given[q])
        for (int i = 0; cmd->opts[i].name; i++)
            if (cmd->opts[i].quick && !a->given[i]) a->val[i] = cmd->opts[i].quick;
    /* --threads is checked here, for every command that has it (init too). */
    int t = nh__optindex(cmd, "threads");
    if (t >= 0 && a->given[t] && strcmp(a->val[t], "auto") != 0) (void)nh_arg_int(a, "threads", 1, 1024);
}

static int nh__req_index(const nh_args *a, const char *name) {
    int k = nh__optindex(a->cmd, name);
    if (k < 0) { fprintf(stderr, "ntkhess: internal error: option --%s not declared\n", name); exit(70); }
    return k;
}
const char *nh_arg_str(const nh_args *a, const char *name) { return a->val[nh__req_index(a, name)]; }
int nh_arg_flag(const nh_args *a, const char *name) { return a->given[nh__req_index(a, name)]; }
const char *nh_arg_req(const nh_args *a, const char *name) {
    const char *v = nh_arg_str(a, name);
    if (!v || !*v) nh_die_usage(a->cmd, "missing required option --%s", name);
    return v;
}

double nh_arg_double(const nh_args *a, const char *name) {
    const char *s = nh_arg_req(a, name);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v))
        nh_die_usage(a->cmd, "--%s expects a finite number, got '%s'", name, s);
    return v;
}

long long nh_arg_int(const nh_args *a, const char *name, long long lo, long long hi) {
    const char *s = nh_arg_req(a, name);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE)
        nh_die_usage(a->cmd, "--%s expects an integer, got '%s'", name, s);
    if (v < lo || v > hi) nh_die_usage(a->cmd, "--%s must be in [%lld, %lld], got %lld", name, lo, hi, v);
    return v;
}

uint64_t nh_arg_u64(const nh_args *a, const char *name) {
    const char *s = nh_arg_req(a, name);
    char *end;
    errno = 0;
    if (*s == '-') nh_die_usage(a->cmd, "--%s expects a non-negative integer, got '%s'", name, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno == ERANGE)
        nh_die_usage(a->cmd, "--%s expects a non-negative integer, got '%s'", name, s);
    return (uint64_t)v;
}

size_t nh_arg_sizes(const nh_args *a, const char *name, size_t *out, size_t max) {
    const char *s = nh_arg_req(a, name);
    size_t n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        if (*p == '-' || *p == '+') nh_die_usage(a->cmd, "--%s: '%s' is not a list of positive integers", name, s);
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno == ERANGE || v == 0 || v > (1ULL << 40))
            nh_die_usage(a->cmd, "--%s: '%s' is not a list of positive integers", name, s);
        if (n == max) nh_die_usage(a->cmd, "--%s: more than %zu entries", name, max);
        out[n++] = (size_t)v;
        p = end;
        if (*p == ',') { p++; if (!*p) nh_die_usage(a->cmd, "--%s: trailing comma in '%s'", name, s); }
        else if (*p) nh_die_usage(a->cmd, "--%s: '%s' is not a list of positive integers", name, s);
    }
    if (n == 0) nh_die_usage(a->cmd, "--%s is empty", name);
    return n;
}

size_t nh_arg_doubles(const nh_args *a, const char *name, double **out) {
    const char *s = nh_arg_req(a, name);
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    double *v = malloc(cap * sizeof *v);
    if (!v) nh_die(a->cmd, "out of memory");
    size_t n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(x))
            nh_die_usage(a->cmd, "--%s: '%s' is not a comma-separated list of finite numbers", name, s);
        v[n++] = x;
        p = end;
        if (*p == ',') { p++; if (!*p) nh_die_usage(a->cmd, "--%s: trailing comma", name); }
        else if (*p) nh_die_usage(a->cmd, "--%s: '%s' is not a comma-separated list of finite numbers", name, s);
    }
    if (n == 0) nh_die_usage(a->cmd, "--%s is empty", name);
    *out = v;
    return n;
}

void nh_cli_threads(const nh_args *a) {
    const char *t = nh_arg_str(a, "threads");
    if (t && strcmp(t, "auto") != 0) nh_set_threads((int)nh_arg_int(a, "threads", 1, 1024));
}

const nh_curv_opts *nh_cli_curv_opts(const nh_args *a) {
    static nh_curv_opts o;
    o = nh_curv_opts_default();
    o.batch = (size_t)nh_arg_int(a, "batch", 0, LLONG_MAX);
    nh_cli_progress_ask(nh_arg_flag(a, "progress"));
    return &o;
}

size_t nh_cli_params(const nh_cmd *cmd, const char *list, nh_curv *c, struct cJSON *js) {
    if (!list || !*list) return nh_curv_dim(c);
    const nh_net *net = nh_curv_net(c);
    const size_t nt = nh_net_ntensors(net);
    size_t *sel = malloc(nt * sizeof *sel), n = 0;
    char *copy = strdup(list);
    if (!sel || !copy) nh_die(cmd, "out of memory");
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t t;
        if (nh_net_find_tensor(net, tok, &t) != NH_OK) nh_die_usage(cmd, "--params: %s", nh_last_error_detail());
        for (size_t i = 0; i < n; i++)
            if (sel[i] == t) nh_die_usage(cmd, "--params: %s given twice", tok);
        sel[n++] = t; /* n <= nt: a name repeats otherwise */
    }
    if (n == 0) nh_die_usage(cmd, "--params: no tensor named in '%s'", list);
    NH_CHECK(cmd, nh_curv_select(c, n, sel));
    if (js) {
        cJSON *arr = cJSON_AddArrayToObject(js, "params");
        for (size_t i = 0; i < n; i++) {
            const char *name = NULL;
            nh_net_tensor(net, sel[i], &name, NULL, NULL);
            cJSON_AddItemToArray(arr, cJSON_CreateString(name));
        }
        cJSON_AddNumberToObject(js, "dim", (double)nh_curv_dim(c));
    }
    free(sel);
    free(copy);
    return nh_curv_dim(c);
}

void nh_dataset_free(nh_dataset *d) {
    free(d->X);
    free(d->X32);
    free(d->T);
    memset(d, 0, sizeof *d);
}

/* d->X, or d->X32 for a float32 file when keep32: 2-D, N >= 1, n_0 columns, finite. */
static void load_x(const nh_cmd *cmd, const char *xpath, size_t n0, int keep32, nh_dataset *d) {
    size_t nd, sh[NH_NPY_MAXDIM];
    nh_status st = nh_npy_read_f32(xpath, &d->X, keep32 ? &d->X32 : NULL, &nd, sh);
    if (st != NH_OK) nh_die_status(cmd, st);
    if (nd != 2) nh_die(cmd, "%s: data must be 2-D (N, n_0), got %zu dimensions", xpath, nd);
    if (sh[0] == 0) nh_die(cmd, "%s: data is empty (N = 0)", xpath);
    if (sh[1] != n0) nh_die(cmd, "%s: data has %zu features per sample but the network's n_0 is %zu", xpath, sh[1], n0);
    d->n = sh[0];
    d->n0 = n0;
    size_t first = 0, bad = 0;
    for (size_t i = 0; i < d->n * n0; i++)
        if (!isfinite(d->X ? d->X[i] : (double)d->X32[i])) { if (!bad) first = i; bad++; }
    if (bad) nh_die(cmd, "%s: %zu non-finite values (first at row %zu, column %zu)", xpath, bad, first / n0, first % n0);
}

static void load_data(const nh_cmd *cmd, const char *xpath, const char *tpath, const nh_net *net, nh_loss loss,
                      int keep32, nh_dataset *d) {
    memset(d, 0, sizeof *d);
    size_t nd, sh[NH_NPY_MAXDIM];
    const size_t n0 = nh_net_widths(net)[0], nout = nh_net_widths(net)[nh_net_depth(net)];
    load_x(cmd, xpath, n0, keep32, d);
    d->nout = nout;
    nh_status st = nh_npy_read(tpath, &d->T, &nd, sh);
    if (st != NH_OK) nh_die_status(cmd, st);
    if (loss == NH_LOSS_CE) {
        if (!(nd == 1 || (nd == 2 && sh[1] == 1)))
            nh_die(cmd, "%s: ce targets must be integer labels of shape (N,), got %zu dimensions", tpath, nd);
    } else {
        int ok = (nd == 2 && sh[1] == nout) || (nd == 1 && nout == 1);
        if (!ok) {
            if (nd == 2) nh_die(cmd, "%s: targets have %zu columns but the network has %zu outputs", tpath, sh[1], nout);
            nh_die(cmd, "%s: targets must have shape (N, %zu), got %zu dimensions", tpath, nout, nd);
        }
    }
    if (sh[0] != d->n) nh_die(cmd, "%s has %zu rows but %s has %zu samples", tpath, sh[0], xpath, d->n);
    st = nh_loss_check_targets(loss, d->T, d->n, nout);
    if (st != NH_OK) nh_die(cmd, "%s: %s", tpath, nh_last_error());
}

void nh_cli_load_data(const nh_cmd *cmd, const char *xpath, const char *tpath, const nh_net *net, nh_loss loss,
                      nh_dataset *d) {
    load_data(cmd, xpath, tpath, net, loss, 0, d);
}

void nh_cli_load_data_f32(const nh_cmd *cmd, const char *xpath, const char *tpath, const nh_net *net, nh_loss loss,
                          nh_dataset *d) {
    load_data(cmd, xpath, tpath, net, loss, 1, d);
}

void nh_cli_mkdir(const nh_cmd *cmd, const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) nh_die(cmd, "%s exists and is not a directory", dir);
        return;
    }
    /* Missing parents too (mkdir -p): a first run into out/fig1 just works. */
    if (nh_file_mkdirs(dir) != NH_OK) nh_die(cmd, "%s", nh_last_error_detail());
}

const char *nh_cli_path(char *buf, size_t cap, const char *dir, const char *name) {
    int k = snprintf(buf, cap, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= cap) { fprintf(stderr, "ntkhess: error: path too long: %s/%s\n", dir, name); exit(NH_EXIT_USAGE); }
    return buf;
}

void nh_cli_write_npy(const nh_cmd *cmd, const char *dir, const char *name, const double *data, size_t ndim,
                      const size_t *shape) {
    size_t count = 1;
    for (size_t i = 0; i < ndim; i++) count *= shape[i];
    nh_cli_check_finite(cmd, name, data, count);
    char path[4096];
    nh_status st = nh_npy_write(nh_cli_path(path, sizeof path, dir, name), data, ndim, shape);
    if (st != NH_OK) nh_die_status(cmd, st);
}

size_t nh_cli_ce_classes(const nh_cmd *cmd, const char *what, const double *T, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        /* Checked before any conversion: a label of 1e20 must not reach size_t. */
        if (!(T[i] >= 0 && T[i] < NH_MAX_CLASSES) || T[i] != (double)(long)T[i])
            nh_die(cmd, "%s: class label %g at row %zu is not an integer in [0, %d)", what, T[i], i, NH_MAX_CLASSES);
        if (T[i] > mx) mx = T[i];
    }
    return mx >= 1 ? (size_t)mx + 1 : 2;
}

void nh_cli_check_finite(const nh_cmd *cmd, const char *what, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            nh_die(cmd, "%s: %s: entry %zu is %g; no output written", what, nh_strerror(NH_ENONFINITE), i, x[i]);
}

/* A word of text output that stands for a non-finite number: printf's nan,
 * inf, or cJSON's null. */
static const char *nonfinite_word(const char *t) {
    for (const char *p = t; *p;) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) { p++; continue; }
        const char *q = p;
        while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')) q++;
        size_t n = (size_t)(q - p);
        if ((n == 3 && (!strncasecmp(p, "nan", 3) || !strncasecmp(p, "inf", 3))) || (n == 8 && !strncasecmp(p, "infinity", 8)) ||
            (n == 4 && !strncmp(p, "null", 4)))
            return p;
        p = q;
    }
    return NULL;
}

void nh_cli_write_result(const nh_cmd *cmd, const char *path, const char *text) {
    const char *bad = nonfinite_word(text);
    if (bad) nh_die(cmd, "%s: %s ('%.8s'); no output written", path, nh_strerror(NH_ENONFINITE), bad);
    nh_cli_write_text(cmd, path, text);
}

void nh_cli_write_text(const nh_cmd *cmd, const char *path, const char *text) {
    nh_status st = nh_file_write(path, text, strlen(text));
    if (st != NH_OK) nh_die_status(cmd, st);
}

double nh_cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nh_cli_estimate(const nh_cmd *cmd, const char *what, double one, long long count) {
    double total = one * (double)count;
    if (total < 10.0 && !isatty(fileno(stderr))) return; /* quick runs stay quiet */
    fprintf(stderr, "ntkhess %s: about %.2g s for %lld %s (%.3g s each)\n", cmd->name, total, count, what, one);
}

void nh_cli_progress(const char *what, size_t done, size_t total, double elapsed) {
    if (!isatty(fileno(stderr))) return;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double left = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\r%s %zu/%zu  %.3g/s  %.0fs left   ", what, done, total, rate, left);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

cJSON *nh_cli_json_num(double v) {
    if (!isfinite(v)) return cJSON_CreateNull();
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}
