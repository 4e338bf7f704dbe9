/* model.c -- model directories: config.json + W0.npy, b0.npy, ... W{L-1}.npy,
 * b{L-1}.npy (W_l of shape (n_{l+1}, n_l), b_l of shape (n_{l+1},)).
 *
 * config.json: {"widths": [n_0, ..., n_L], "act": "softplus", "beta": 0.1,
 * "param": "ntk"}; "beta" (default 0.1) and "param" ("ntk" (default), "mf"
 * or "standard") are optional; "act" is one name ("softplus", "softplus:2",
 * as nh_act_parse reads) for every hidden layer or a list of L-1 such names,
 * one per hidden layer; "bias" (optional) is a list of L booleans, false for
 * a layer without bias (its b_l.npy is then neither read nor written).
 * Other keys are ignored except "P", which, if present, must equal the
 * parameter count (a cheap consistency check).
 *
 * Every failure names the file (and key) at fault; every path frees what it
 * allocated through a single cleanup exit. */
#include "core/internal.h"
#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_NAME "config.json"
#define CONFIG_MAX_BYTES (1u << 20) /* a real config is a few hundred bytes */
#define PATH_CAP 4096
#define MAX_EXACT_INT 9007199254740992.0 /* 2^53: integers a JSON double holds exactly */

/* ----------------------------------------------------------------- helpers */

/* dir + "/" + name into buf; NH_EINVAL if it does not fit. */
static nh_status join_path(char *buf, const char *dir, const char *name, const char *func) {
    int k = snprintf(buf, PATH_CAP, "%s/%s", dir, name);
    if (k < 0 || k >= PATH_CAP)
        return nh__fail(NH_EINVAL, func, "path '%s/%s' is longer than %d bytes", dir, name, PATH_CAP - 1);
    return NH_OK;
}

/* "(4, 3)" / "(4,)" as Python prints shapes, for messages. */
static void shape_str(char *buf, size_t cap, size_t ndim, const size_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (size_t d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%zu", d ? ", " : "", shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, ndim == 1 ? ",)" : ")");
}

/* Read a whole (small) file into a NUL-terminated buffer (io/file.c, capped:
 * a file over CONFIG_MAX_BYTES cannot be a config and would only cost memory). */
static nh_status read_small_file(const char *path, char **text, size_t *len) {
    nh_status st = nh_file_read(path, CONFIG_MAX_BYTES, text, len);
    if (st != NH_OK) { /* the detail is in the buffer nh__fail writes: copy it first */
        char detail[512];
        snprintf(detail, sizeof detail, "%s", nh_last_error_detail());
        return nh__fail(st, "nh_model_load", "%s", detail);
    }
    return NH_OK;
}

/* Write text and a final newline to path through "path.tmp.<pid>" + rename(),
 * so that a failed write never replaces a good file with a partial one. */
static nh_status write_file_atomic(const char *path, const char *text, size_t len) {
    char tmp[PATH_CAP + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return nh__fail(NH_EIO, "nh_model_save", "cannot create %s: %s", tmp, strerror(errno));
    int ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) { ok = 0; err = errno; }
    if (ok && rename(tmp, path) != 0) { ok = 0; err = errno; }
    if (ok) return NH_OK;
    remove(tmp);
    return nh__fail(NH_EIO, "nh_model_save", "cannot write %s: %s", path, strerror(err));
}

/* ------------------------------------------------------------ config.json */

/* Parsed config; widths is owned (free()). */
typedef struct model_cfg {
    nh_net_config net;
    size_t *widths;
    nh_act *acts;         /* L-1, owned, or NULL */
    double *act_params;   /* L-1, owned, or NULL */
    unsigned char *bias;  /* L, owned, or NULL */
    int has_P;
    double P;
} model_cfg;

static void cfg_free(model_cfg *c) {
    free(c->widths);
    free(c->acts);
    free(c->act_params);
    free(c->bias);
}

#define CFG_FAIL(...) nh__fail(NH_EFORMAT, "nh_model_load", __VA_ARGS__)

/* "widths": a list of >= 2 integers, each >= 1. */
static nh_status cfg_widths(const char *path, const cJSON *root, model_cfg *c) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "widths");
    if (!w) return CFG_FAIL("%s: key 'widths' missing", path);
    int n = cJSON_IsArray(w) ? cJSON_GetArraySize(w) : 0;
    if (n < 2)
        return CFG_FAIL("%s: key 'widths' must be a list of >= 2 positive integers", path);
    c->widths = nh__malloc((size_t)n * sizeof(size_t));
    if (!c->widths) return nh__fail(NH_ENOMEM, "nh_model_load", "cannot allocate widths");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, w) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : 0.0;
        if (!(v >= 1 && v <= MAX_EXACT_INT && v == floor(v)))
            return CFG_FAIL("%s: key 'widths': entry %d is not a positive integer", path, i);
        c->widths[i++] = (size_t)v;
    }
    c->net.depth = (size_t)n - 1;
    c->net.widths = c->widths;
    return NH_OK;
}

/* One activation spec ("name" or "name:param") for hidden layer i (i < 0: all). */
static nh_status cfg_act_one(const char *path, const cJSON *e, int i, nh_act *a, double *p) {
    char where[48] = "";
    if (i >= 0) snprintf(where, sizeof where, " entry %d", i);
    if (!cJSON_IsString(e)) return CFG_FAIL("%s: key 'act'%s must be a string", path, where);
    if (nh_act_parse(e->valuestring, a, p) == NH_OK) return NH_OK;
    char why[300]; /* the library's message names the table's activations */
    snprintf(why, sizeof why, "%s", nh_last_error_detail());
    return CFG_FAIL("%s: key 'act'%s: %s", path, where, why);
}

/* "act" (required): one spec for every hidden layer, or a list of L-1. */
static nh_status cfg_act(const char *path, const cJSON *root, model_cfg *c) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "act");
    if (!a) return CFG_FAIL("%s: key 'act' missing", path);
    const size_t nh = c->net.depth - 1;
    if (!cJSON_IsArray(a) && !cJSON_IsString(a))
        return CFG_FAIL("%s: key 'act' must be a string or a list of %zu strings", path, nh);
    if (cJSON_IsArray(a) && (size_t)cJSON_GetArraySize(a) != nh)
        return CFG_FAIL("%s: key 'act' lists %d activations but the widths give %zu hidden layer(s)", path,
                        cJSON_GetArraySize(a), nh);
    c->acts = nh__malloc((nh ? nh : 1) * sizeof *c->acts);
    c->act_params = nh__malloc((nh ? nh : 1) * sizeof *c->act_params);
    if (!c->acts || !c->act_params) return nh__fail(NH_ENOMEM, "nh_model_load", "out of memory");
    if (cJSON_IsString(a)) {
        NH_TRY(cfg_act_one(path, a, -1, &c->net.act, &c->act_params[0]));
        for (size_t i = 0; i < nh; i++) { c->acts[i] = c->net.act; c->act_params[i] = c->act_params[0]; }
    } else {
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, a) { NH_TRY(cfg_act_one(path, e, i, &c->acts[i], &c->act_params[i])); i++; }
        if (nh) c->net.act = c->acts[0];
    }
    c->net.acts = c->acts;
    c->net.act_params = c->act_params;
    return NH_OK;
}

/* "bias" (optional): a list of L booleans. */
static nh_status cfg_bias(const char *path, const cJSON *root, model_cfg *c) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "bias");
    if (!b) return NH_OK;
    const size_t L = c->net.depth;
    if (!cJSON_IsArray(b) || (size_t)cJSON_GetArraySize(b) != L)
        return CFG_FAIL("%s: key 'bias' must be a list of %zu booleans (one per layer)", path, L);
    c->bias = nh__malloc(L * sizeof *c->bias);
    if (!c->bias) return nh__fail(NH_ENOMEM, "nh_model_load", "out of memory");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, b) {
        if (!cJSON_IsBool(e)) return CFG_FAIL("%s: key 'bias': entry %d is not true or false", path, i);
        c->bias[i++] = cJSON_IsTrue(e) ? 1 : 0;
    }
    c->net.bias = c->bias;
    return NH_OK;
}

/* "beta" (optional): a finite number. */
static nh_status cfg_beta(const char *path, const cJSON *root, model_cfg *c) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "beta");
    if (!b) return NH_OK;
    if (!cJSON_IsNumber(b) || !isfinite(b->valuedouble))
        return CFG_FAIL("%s: key 'beta' must be a finite number", path);
    c->net.beta = b->valuedouble;
    return NH_OK;
}

/* "param" (optional): "ntk", "mf" or "standard".  "P" (optional): a number, checked
 * against the network once it is built. */
static nh_status cfg_param(const char *path, const cJSON *root, model_cfg *c) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "param");
    if (p) {
        const char *s = cJSON_IsString(p) ? p->valuestring : "";
        if (strcmp(s, "ntk") == 0) c->net.param = NH_PARAM_NTK;
        else if (strcmp(s, "mf") == 0) c->net.param = NH_PARAM_MF;
        else if (strcmp(s, "standard") == 0) c->net.param = NH_PARAM_STANDARD;
        else return CFG_FAIL("%s: key 'param' must be \"ntk\", \"mf\" or \"standard\"", path);
    }
    const cJSON *P = cJSON_GetObjectItemCaseSensitive(root, "P");
    if (P && !cJSON_IsNumber(P)) return CFG_FAIL("%s: key 'P' must be a number", path);
    c->has_P = P != NULL;
    c->P = P ? P->valuedouble : 0.0;
    return NH_OK;
}

/* Parse and validate the JSON text of config.json into c. */
static nh_status cfg_parse(const char *path, const char *text, size_t len, model_cfg *c) {
    cJSON *root = NULL;
    NH_TRY(nh__json_parse_strict("nh_model_load", path, text, len, &root)); /* duplicates, NUL, trailing bytes */
    nh_status st = cJSON_IsObject(root) ? NH_OK
                                        : CFG_FAIL("%s: top level must be a JSON object", path);
    c->net = nh_net_config_default();
    if (st == NH_OK) st = cfg_widths(path, root, c);
    if (st == NH_OK) st = cfg_act(path, root, c);
    if (st == NH_OK) st = cfg_bias(path, root, c);
    if (st == NH_OK) st = cfg_beta(path, root, c);
    if (st == NH_OK) st = cfg_param(path, root, c);
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------------- load */

/* Read one parameter array (W_l or b_l) and copy it into theta at dst after
 * checking its shape (NH_ESHAPE) and finiteness (NH_ENONFINITE). */
static nh_status load_array(const char *dir, const char *name, size_t ndim, const size_t *want,
                            double *dst) {
    char path[PATH_CAP];
    NH_TRY(join_path(path, dir, name, "nh_model_load"));
    double *x = NULL;
    size_t nd, shape[NH_NPY_MAXDIM];
    NH_TRY(nh_npy_read(path, &x, &nd, shape)); /* its message names the path */
    nh_status st = NH_OK;
    int same = nd == ndim;
    for (size_t d = 0; same && d < ndim; d++) same = shape[d] == want[d];
    size_t n = ndim == 2 ? want[0] * want[1] : want[0], first = 0, bad = 0;
    if (same) bad = nh__count_nonfinite(x, n, &first);
    if (!same) {
        char ws[64], gs[200];
        shape_str(ws, sizeof ws, ndim, want);
        shape_str(gs, sizeof gs, nd, shape);
        st = nh__fail(NH_ESHAPE, "nh_model_load", "%s: expected shape %s, got %s", path, ws, gs);
    } else if (bad) {
        char at[64] = "";
        if (ndim == 2) snprintf(at, sizeof at, " = [%zu, %zu]", first / want[1], first % want[1]);
        st = nh__fail(NH_ENONFINITE, "nh_model_load",
                      "%s: %zu non-finite value(s), first at flat index %zu%s (value %g)", path, bad,
                      first, at, x[first]);
    } else {
        memcpy(dst, x, n * sizeof(double));
    }
    free(x);
    return st;
}

/* Read W_l and b_l for every layer into the network's theta. */
static nh_status load_layers(const char *dir, nh_net *net) {
    const size_t *w = nh_net_widths(net);
    double *theta = nh_net_params(net);
    for (size_t l = 0; l < nh_net_depth(net); l++) {
        char name[64];
        size_t shapeW[2] = {w[l + 1], w[l]};
        snprintf(name, sizeof name, "W%zu.npy", l);
        NH_TRY(load_array(dir, name, 2, shapeW, theta + nh_net_offset_W(net, l)));
        if (!nh_net_has_bias(net, l)) continue; /* b_l.npy, if present, is not ours */
        snprintf(name, sizeof name, "b%zu.npy", l);
        NH_TRY(load_array(dir, name, 1, &w[l + 1], theta + nh_net_offset_b(net, l)));
    }
    return NH_OK;
}

/* "P", if given, must match the parameter count of the widths. */
static nh_status check_P(const char *path, const model_cfg *c, const nh_net *net) {
    if (!c->has_P || c->P == (double)nh_net_nparams(net)) return NH_OK;
    return CFG_FAIL("%s: key 'P' is %.17g but the widths give %zu parameters", path, c->P,
                    nh_net_nparams(net));
}

nh_status nh_model_load(const char *dir, nh_net **out) {
    if (!dir || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    *out = NULL;
    char path[PATH_CAP];
    NH_TRY(join_path(path, dir, CONFIG_NAME, __func__));
    char *text = NULL;
    size_t len = 0;
    model_cfg cfg = {.widths = NULL};
    nh_net *net = NULL;
    nh_status st = read_small_file(path, &text, &len);
    if (st == NH_OK) st = cfg_parse(path, text, len, &cfg);
    if (st == NH_OK) st = nh_net_create(&cfg.net, &net);
    if (st == NH_OK) st = check_P(path, &cfg, net);
    if (st == NH_OK) st = load_layers(dir, net);
    free(text);
    cfg_free(&cfg);
    if (st != NH_OK) nh_net_free(net);
    else *out = net;
    return st;
}

/* ------------------------------------------------------------------- save */

/* Create dir (one level) unless it already is a directory. */
static nh_status ensure_dir(const char *dir) {
    if (mkdir(dir, 0777) == 0) return NH_OK;
    int err = errno;
    struct stat sb;
    if (err == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return NH_OK;
    if (err == EEXIST) return nh__fail(NH_EIO, "nh_model_save", "%s exists and is not a directory", dir);
    return nh__fail(NH_EIO, "nh_model_save", "cannot create directory %s: %s", dir, strerror(err));
}

/* Write W_l.npy and b_l.npy for every layer. */
static nh_status save_layers(const char *dir, const nh_net *net) {
    const size_t *w = nh_net_widths(net);
    const double *theta = nh_net_params_const(net);
    for (size_t l = 0; l < nh_net_depth(net); l++) {
        char name[64], path[PATH_CAP];
        size_t shapeW[2] = {w[l + 1], w[l]};
        snprintf(name, sizeof name, "W%zu.npy", l);
        NH_TRY(join_path(path, dir, name, "nh_model_save"));
        NH_TRY(nh_npy_write(path, theta + nh_net_offset_W(net, l), 2, shapeW));
        if (!nh_net_has_bias(net, l)) continue;
        snprintf(name, sizeof name, "b%zu.npy", l);
        NH_TRY(join_path(path, dir, name, "nh_model_save"));
        NH_TRY(nh_npy_write(path, theta + nh_net_offset_b(net, l), 1, &w[l + 1]));
    }
    return NH_OK;
}

/* A finite double as a raw JSON number that reads back bit for bit: the
 * shortest of %.15g, %.16g, %.17g that strtod returns exactly.  cJSON's own
 * printer is not used because (1.7.15) it accepts "%.15g" when it is merely
 * within DBL_EPSILON relative, so 0.1 + 0.2 would be saved as 0.3. */
static cJSON *exact_number(double x) {
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) break;
    }
    for (char *p = buf; *p; p++)
        if (*p == ',') *p = '.'; /* a locale with a decimal comma: JSON needs '.' */
    return cJSON_CreateRaw(buf);
}

/* Add a number to an object (name given) or an array (name NULL). */
static int add_number(cJSON *to, const char *name, double x) {
    cJSON *v = exact_number(x);
    if (!v) return 0;
    if (name) cJSON_AddItemToObject(to, name, v);
    else cJSON_AddItemToArray(to, v);
    return 1;
}

/* "name" or "name:param" with the shortest param that reads back exactly
 * ("leaky_relu:0.2" rather than 17 digits). */
static const char *act_spec(char *buf, size_t cap, nh_act a, double p) {
    if (isnan(p) || p == nh_act_default_param(a)) { snprintf(buf, cap, "%s", nh_act_name(a)); return buf; }
    char num[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(num, sizeof num, "%.*g", digits, p);
        if (strtod(num, NULL) == p) break;
    }
    snprintf(buf, cap, "%s:%s", nh_act_name(a), num);
    return buf;
}

/* "act": one spec when every hidden layer shares activation and parameter
 * (the plain name for the default parameter), else the list of L-1 specs. */
static int add_act(cJSON *root, const nh_net *net) {
    const size_t nh = nh_net_depth(net) - 1;
    char buf[64];
    int same = 1;
    for (size_t i = 1; i < nh; i++) {
        double p0 = nh_net_act_param_at(net, 0), p = nh_net_act_param_at(net, i);
        same = same && nh_net_act_at(net, i) == nh_net_act_at(net, 0) && (isnan(p0) ? isnan(p) : p == p0);
    }
    if (nh == 0) return cJSON_AddStringToObject(root, "act", nh_act_name(nh_net_act(net))) != NULL;
    if (same)
        return cJSON_AddStringToObject(root, "act", act_spec(buf, sizeof buf, nh_net_act_at(net, 0),
                                                             nh_net_act_param_at(net, 0))) != NULL;
    cJSON *a = cJSON_AddArrayToObject(root, "act");
    for (size_t i = 0; a && i < nh; i++) {
        cJSON *s = cJSON_CreateString(act_spec(buf, sizeof buf, nh_net_act_at(net, i), nh_net_act_param_at(net, i)));
        if (!s) return 0;
        cJSON_AddItemToArray(a, s);
    }
    return a != NULL;
}

/* "bias": only when some layer has none (older readers then refuse nothing else). */
static int add_bias(cJSON *root, const nh_net *net) {
    const size_t L = nh_net_depth(net);
    int all = 1;
    for (size_t l = 0; l < L; l++) all = all && nh_net_has_bias(net, l);
    if (all) return 1;
    cJSON *b = cJSON_AddArrayToObject(root, "bias");
    for (size_t l = 0; b && l < L; l++) {
        cJSON *e = cJSON_CreateBool(nh_net_has_bias(net, l));
        if (!e) return 0;
        cJSON_AddItemToArray(b, e);
    }
    return b != NULL;
}

/* The config as a cJSON tree, NULL if an allocation failed. */
static cJSON *config_json(const nh_net *net) {
    cJSON *root = cJSON_CreateObject(), *ws = cJSON_CreateArray();
    int ok = root && ws;
    if (ok) cJSON_AddItemToObject(root, "widths", ws);
    else cJSON_Delete(ws);
    for (size_t l = 0; ok && l <= nh_net_depth(net); l++)
        ok = add_number(ws, NULL, (double)nh_net_widths(net)[l]);
    const nh_param pm = nh_net_param(net);
    ok = ok && add_act(root, net) && add_bias(root, net);
    /* beta means nothing in the standard parametrization: not written. */
    if (pm != NH_PARAM_STANDARD) ok = ok && add_number(root, "beta", nh_net_beta(net));
    ok = ok && cJSON_AddStringToObject(root, "param", pm == NH_PARAM_MF ? "mf" : pm == NH_PARAM_STANDARD ? "standard" : "ntk") &&
         add_number(root, "P", (double)nh_net_nparams(net)) &&
         cJSON_AddStringToObject(root, "ntkhess_version", nh_version());
    if (!ok) { cJSON_Delete(root); return NULL; }
    return root;
}

/* Weights first and config.json last: config.json is the commit marker, so
 * a save interrupted part-way into a new directory leaves no loadable
 * half-model behind. */
nh_status nh_model_save(const char *dir, const nh_net *net) {
    if (!dir || !net) NH_FAIL(NH_EINVAL, "NULL argument");
    /* Refuse to write a model that nh_model_load would reject. */
    if (!isfinite(nh_net_beta(net))) NH_FAIL(NH_ENONFINITE, "beta is not finite");
    size_t first = 0;
    if (nh__count_nonfinite(nh_net_params_const(net), nh_net_nparams(net), &first))
        NH_FAIL(NH_ENONFINITE, "theta[%zu] is not finite; not saving %s", first, dir);
    char path[PATH_CAP];
    NH_TRY(join_path(path, dir, CONFIG_NAME, __func__));
    NH_TRY(ensure_dir(dir));
    NH_TRY(save_layers(dir, net));
    cJSON *root = config_json(net);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) NH_FAIL(NH_ENOMEM, "cannot build %s", path);
    nh_status st = write_file_atomic(path, text, strlen(text));
    cJSON_free(text);
    return st;
}
