/* csv.c -- numeric CSV files: one sample per line, comma-separated numbers,
 * one column the target and the others the inputs (docs/data.md).
 *
 * Grammar (deliberately small, so that every file is either read exactly
 * or refused with the line and column of the problem):
 *   - fields are separated by ',', surrounded by optional spaces or tabs;
 *     no quoting, no escapes;
 *   - lines end in LF or CRLF; the last line need not end;
 *   - blank lines (only spaces/tabs) are ignored anywhere;
 *   - the first non-blank line is a header when none of its fields is a
 *     number (it then only fixes the column count);
 *   - every other line has the same number of fields, each a number that
 *     strtod reads completely and that is finite. */
#include "core/internal.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Longest field that can hold a number (longer ones are refused). */
#define CSV_MAX_FIELD 255

typedef struct csv_ctx {
    const char *func;
    const char *name; /* file name or NULL */
} csv_ctx;

static nh_status csv_fail(const csv_ctx *cx, nh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static nh_status csv_fail(const csv_ctx *cx, nh_status st, const char *fmt, ...) {
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return nh__fail(st, cx->func, "%s%s%s", cx->name ? cx->name : "", cx->name ? ": " : "", detail);
}

/* Printable excerpt of a field for messages. */
static void csv_quote(char *buf, size_t cap, const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++, k++) buf[k] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (k + 4 >= cap && n > k) { memcpy(buf + k, "...", 3); k += 3; }
    buf[k] = '\0';
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Field [s, s+n) trimmed -> number.  Returns 1 and *v when the whole field
 * is a number (finite or not), 0 otherwise.  Read in the "C" locale (a
 * decimal point, whatever LC_NUMERIC the program set) when loc is given. */
static int field_number(const char *s, size_t n, double *v, locale_t loc) {
    if (n == 0 || n > CSV_MAX_FIELD) return 0;
    char buf[CSV_MAX_FIELD + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double x = loc ? strtod_l(buf, &end, loc) : strtod(buf, &end);
    if (end != buf + n) return 0;
    *v = x;
    return 1;
}

/* One trimmed field of a line. */
typedef struct csv_field {
    const char *s;
    size_t n;
} csv_field;

/* Split [s, e) at commas into a growable field list. */
static nh_status split_line(const csv_ctx *cx, const char *s, const char *e, csv_field **f, size_t *cap,
                            size_t *nf) {
    *nf = 0;
    const char *p = s;
    for (;;) {
        const char *q = p;
        while (q < e && *q != ',') q++;
        const char *a = p, *b = q;
        while (a < b && is_blank(*a)) a++;
        while (b > a && is_blank(b[-1])) b--;
        if (*nf == *cap) {
            size_t ncap = *cap ? 2 * *cap : 16;
            csv_field *nfp = realloc(*f, ncap * sizeof **f);
            if (!nfp) return csv_fail(cx, NH_ENOMEM, "cannot allocate %zu fields", ncap);
            *f = nfp;
            *cap = ncap;
        }
        (*f)[(*nf)++] = (csv_field){a, (size_t)(b - a)};
        if (q >= e) break;
        p = q + 1;
    }
    return NH_OK;
}

static nh_status csv_parse(const csv_ctx *cx, const char *text, size_t len, long label_col, double **X, double **T,
                           size_t *n_out, size_t *d_out) {
    csv_field *f = NULL;
    size_t fcap = 0, nf = 0, ncols = 0, rows = 0, vcap = 0, line = 0, first_line = 0;
    double *vals = NULL;
    nh_status st = NH_OK;
    int have_cols = 0;
    const char *p = text, *end = text + len;
    locale_t loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    while (st == NH_OK && p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        const char *next = e ? e + 1 : end;
        if (!e) e = end;
        line++;
        if (e > p && e[-1] == '\r') e--;
        const char *q = p;
        while (q < e && is_blank(*q)) q++;
        if (q == e) { p = next; continue; } /* blank */
        st = split_line(cx, p, e, &f, &fcap, &nf);
        if (st != NH_OK) break;
        if (!have_cols) {
            have_cols = 1;
            ncols = nf;
            first_line = line;
            int any = 0;
            double v;
            for (size_t c = 0; c < nf && !any; c++) any = field_number(f[c].s, f[c].n, &v, loc);
            if (!any) { p = next; continue; } /* header */
        }
        if (nf != ncols) {
            st = csv_fail(cx, NH_EFORMAT, "line %zu has %zu fields, expected %zu (as on line %zu): ragged row", line,
                          nf, ncols, first_line);
            break;
        }
        if (ncols < 2) {
            st = csv_fail(cx, NH_EFORMAT, "line %zu has one column; need inputs and a target (at least 2 columns; "
                          "the separator is a comma)",
                          line);
            break;
        }
        if ((rows + 1) * ncols > vcap) {
            int ok = 1;
            size_t ncap = vcap ? nh__mul(vcap, 2, &ok) : nh__mul(ncols, 64, &ok);
            size_t bytes = nh__mul(ncap, sizeof(double), &ok);
            /* the values, then X and T beside them */
            st = nh__check_bytes(ok, nh__mul(bytes, 2, &ok), cx->func, cx->name ? cx->name : "CSV data");
            if (st != NH_OK) break;
            double *nv = realloc(vals, bytes);
            if (!nv) { st = csv_fail(cx, NH_ENOMEM, "cannot allocate %zu values", ncap); break; }
            vals = nv;
            vcap = ncap;
        }
        for (size_t c = 0; c < nf; c++) {
            double v = 0;
            char shown[48];
            csv_quote(shown, sizeof shown, f[c].s, f[c].n);
            if (f[c].n == 0) {
                st = csv_fail(cx, NH_EFORMAT, "line %zu, column %zu: empty field", line, c + 1);
                break;
            }
            if (!field_number(f[c].s, f[c].n, &v, loc)) {
                st = csv_fail(cx, NH_EFORMAT, "line %zu, column %zu: '%s' is not a number", line, c + 1, shown);
                break;
            }
            if (!isfinite(v)) {
                st = csv_fail(cx, NH_ENONFINITE, "line %zu, column %zu: '%s' is not finite%s", line, c + 1, shown,
                              isnan(v) ? "" : " (NaN/Inf or out of double range)");
                break;
            }
            vals[rows * ncols + c] = v;
        }
        if (st == NH_OK) rows++;
        p = next;
    }
    free(f);
    if (loc) freelocale(loc);
    if (st == NH_OK && rows == 0)
        st = csv_fail(cx, NH_EFORMAT, "no data rows%s", have_cols ? " (only a header line)" : " (empty file)");
    size_t lc = 0;
    if (st == NH_OK) {
        long nc = (long)ncols;
        long k = label_col < 0 ? nc + label_col : label_col;
        if (k < 0 || k >= nc)
            st = csv_fail(cx, NH_EINVAL, "label column %ld is out of range for %zu columns (0..%zu, or -1..-%zu)",
                          label_col, ncols, ncols - 1, ncols);
        else lc = (size_t)k;
    }
    double *x = NULL, *t = NULL;
    const size_t d = ncols - 1;
    if (st == NH_OK) {
        x = nh__malloc(rows * d * sizeof *x);
        t = nh__malloc(rows * sizeof *t);
        if (!x || !t) st = csv_fail(cx, NH_ENOMEM, "cannot allocate %zu rows", rows);
    }
    if (st == NH_OK) {
        for (size_t i = 0; i < rows; i++) {
            const double *r = vals + i * ncols;
            size_t k = 0;
            for (size_t c = 0; c < ncols; c++)
                if (c != lc) x[i * d + k++] = r[c];
            t[i] = r[lc];
        }
    }
    free(vals);
    if (st != NH_OK) { free(x); free(t); return st; }
    *X = x;
    *T = t;
    *n_out = rows;
    *d_out = d;
    return NH_OK;
}

static int csv_args_ok(double **X, double **T, size_t *n, size_t *d) {
    if (X) *X = NULL;
    if (T) *T = NULL;
    return X && T && n && d;
}

nh_status nh_csv_parse(const char *text, size_t len, const char *name, long label_col, double **X, double **T,
                       size_t *n, size_t *d) {
    if (!csv_args_ok(X, T, n, d) || (!text && len)) NH_FAIL(NH_EINVAL, "NULL argument");
    const csv_ctx cx = {"nh_csv_parse", name};
    return csv_parse(&cx, text ? text : "", len, label_col, X, T, n, d);
}

nh_status nh_csv_read(const char *path, long label_col, double **X, double **T, size_t *n, size_t *d) {
    if (!csv_args_ok(X, T, n, d) || !path) NH_FAIL(NH_EINVAL, "NULL argument");
    const csv_ctx cx = {"nh_csv_read", path};
    /* Capped read (io/file.c): a regular file over the cap is refused by its
     * size, a stream (/dev/zero, a pipe) after cap + 1 bytes. */
    char *buf = NULL;
    size_t len = 0;
    nh_status st = nh_file_read(path, NH_CSV_MAX_BYTES, &buf, &len);
    if (st != NH_OK) { /* it names the path; copied: nh__fail writes the same buffer */
        char detail[512];
        snprintf(detail, sizeof detail, "%s", nh_last_error_detail());
        return nh__fail(st, cx.func, "%s", detail);
    }
    st = csv_parse(&cx, buf, len, label_col, X, T, n, d);
    free(buf);
    return st;
}
