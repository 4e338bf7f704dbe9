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

/* Room for one more row of ncols values (doubling; the budget counts the
 * values and the X, T copies made from them). */
static nh_status grow_values(const csv_ctx *cx, size_t rows, size_t ncols, double **vals, size_t *vcap) {
    if ((rows + 1) * ncols <= *vcap) return NH_OK;
    int ok = 1;
    size_t ncap = *vcap ? nh__mul(*vcap, 2, &ok) : nh__mul(ncols, 64, &ok);
    size_t bytes = nh__mul(ncap, sizeof(double), &ok);
    NH_TRY(nh__check_bytes(ok, nh__mul(bytes, 2, &ok), cx->func, cx->name ? cx->name : "CSV data"));
    double *nv = realloc(*vals, bytes);
    if (!nv) return csv_fail(cx, NH_ENOMEM, "cannot allocate %zu values", ncap);
    *vals = nv;
    *vcap = ncap;
    return NH_OK;
}

/* The nf fields of data line `line` as finite numbers into out[nf]. */
static nh_status parse_row(const csv_ctx *cx, const csv_field *f, size_t nf, size_t line, locale_t loc,
                           double *out) {
    for (size_t c = 0; c < nf; c++) {
        double v = 0;
        char shown[48];
        csv_quote(shown, sizeof shown, f[c].s, f[c].n);
        if (f[c].n == 0) return csv_fail(cx, NH_EFORMAT, "line %zu, column %zu: empty field", line, c + 1);
        if (!field_number(f[c].s, f[c].n, &v, loc))
            return csv_fail(cx, NH_EFORMAT, "line %zu, column %zu: '%s' is not a number", line, c + 1, shown);
        if (!isfinite(v))
            return csv_fail(cx, NH_ENONFINITE, "line %zu, column %zu: '%s' is not finite%s", line, c + 1, shown,
                            isnan(v) ? "" : " (NaN/Inf or out of double range)");
        out[c] = v;
    }
    return NH_OK;
}

/* The parsed table: rows x ncols values, row-major. */
typedef struct csv_table {
    double *vals;
    size_t vcap, ncols, rows, first_line;
    int have_cols;
} csv_table;

/* One non-blank line: the first fixes the column count (and is skipped when
 * no field is a number: a header); the others must match it. */
static nh_status table_line(const csv_ctx *cx, csv_table *tb, const csv_field *f, size_t nf, size_t line,
                            locale_t loc) {
    if (!tb->have_cols) {
        tb->have_cols = 1;
        tb->ncols = nf;
        tb->first_line = line;
        int any = 0;
        double v;
        for (size_t c = 0; c < nf && !any; c++) any = field_number(f[c].s, f[c].n, &v, loc);
        if (!any) return NH_OK; /* header */
    }
    if (nf != tb->ncols)
        return csv_fail(cx, NH_EFORMAT, "line %zu has %zu fields, expected %zu (as on line %zu): ragged row", line,
                        nf, tb->ncols, tb->first_line);
    if (tb->ncols < 2)
        return csv_fail(cx, NH_EFORMAT, "line %zu has one column; need inputs and a target (at least 2 columns; "
                        "the separator is a comma)", line);
    NH_TRY(grow_values(cx, tb->rows, tb->ncols, &tb->vals, &tb->vcap));
    NH_TRY(parse_row(cx, f, nf, line, loc, tb->vals + tb->rows * tb->ncols));
    tb->rows++;
    return NH_OK;
}

/* Every line of text into tb (blank lines skipped, CRLF accepted). */
static nh_status parse_lines(const csv_ctx *cx, const char *text, size_t len, csv_table *tb) {
    csv_field *f = NULL;
    size_t fcap = 0, nf = 0, line = 0;
    nh_status st = NH_OK;
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
        if (q != e) {
            st = split_line(cx, p, e, &f, &fcap, &nf);
            if (st == NH_OK) st = table_line(cx, tb, f, nf, line, loc);
        }
        p = next;
    }
    free(f);
    if (loc) freelocale(loc);
    if (st == NH_OK && tb->rows == 0)
        st = csv_fail(cx, NH_EFORMAT, "no data rows%s", tb->have_cols ? " (only a header line)" : " (empty file)");
    return st;
}

/* Split the table into X (rows x (ncols-1)) and T (the label column). */
static nh_status split_xt(const csv_ctx *cx, const csv_table *tb, long label_col, double **X, double **T) {
    const size_t ncols = tb->ncols, rows = tb->rows, d = ncols - 1;
    long nc = (long)ncols;
    long k = label_col < 0 ? nc + label_col : label_col;
    if (k < 0 || k >= nc)
        return csv_fail(cx, NH_EINVAL, "label column %ld is out of range for %zu columns (0..%zu, or -1..-%zu)",
                        label_col, ncols, ncols - 1, ncols);
    const size_t lc = (size_t)k;
    double *x = nh__malloc(rows * d * sizeof *x), *t = nh__malloc(rows * sizeof *t);
    if (!x || !t) { free(x); free(t); return csv_fail(cx, NH_ENOMEM, "cannot allocate %zu rows", rows); }
    for (size_t i = 0; i < rows; i++) {
        const double *r = tb->vals + i * ncols;
        size_t j = 0;
        for (size_t c = 0; c < ncols; c++)
            if (c != lc) x[i * d + j++] = r[c];
        t[i] = r[lc];
    }
    *X = x;
    *T = t;
    return NH_OK;
}

static nh_status csv_parse(const csv_ctx *cx, const char *text, size_t len, long label_col, double **X, double **T,
                           size_t *n_out, size_t *d_out) {
    csv_table tb = {0};
    nh_status st = parse_lines(cx, text, len, &tb);
    if (st == NH_OK) st = split_xt(cx, &tb, label_col, X, T);
    free(tb.vals);
    if (st != NH_OK) return st;
    *n_out = tb.rows;
    *d_out = tb.ncols - 1;
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
