/* npy.c -- NumPy .npy reader and writer (format versions 1.0, 2.0, 3.0).
 *
 * Layout: "\x93NUMPY", major, minor, header length (u16 LE for 1.0, u32 LE for
 * 2.0/3.0), then a Python dict literal
 *     {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n', then the raw C-order data.
 *
 * The header is parsed by hand (a tiny fixed grammar) rather than by a general
 * evaluator, so that any byte string gives either a valid header or a precise
 * one-line error.  Every size is checked before it is used: a corrupt or
 * hostile file yields NH_EFORMAT / NH_ETOOLARGE, never a crash or a huge
 * allocation. */
#include "core/internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* Largest header we accept: NumPy itself refuses headers over 10000 bytes by
 * default; a valid header for the dtypes we accept is well under 1 KB. */
#define NPY_MAX_HEADER (1u << 20)

/* ------------------------------------------------------------ diagnostics */

/* Where a failure is reported: the public function's name (prefix of the
 * message) and the file name, NULL when parsing memory. */
typedef struct npy_ctx {
    const char *func;
    const char *path;
} npy_ctx;

/* Record "func: path: detail" and return st. */
static nh_status npy_fail(const npy_ctx *cx, nh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static nh_status npy_fail(const npy_ctx *cx, nh_status st, const char *fmt, ...) {
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return nh__fail(st, cx->func, "%s%s%s", cx->path ? cx->path : "", cx->path ? ": " : "",
                    detail);
}

/* Python-style shape text: "()", "(3,)", "(2, 4)". */
static void npy_shape_str(char *buf, size_t cap, size_t ndim, const size_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf, cap, "(");
    for (size_t d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%zu", d ? ", " : "", shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, ndim == 1 ? ",)" : ")");
}

/* Printable copy of untrusted header text for messages (non-printing bytes
 * become '?', long text is cut with "..."). */
static void npy_quote(char *buf, size_t cap, const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++, k++)
        buf[k] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (k + 4 >= cap && n > k) { memcpy(buf + k, "...", 3); k += 3; }
    buf[k] = '\0';
}

/* ----------------------------------------------------------------- dtypes */

typedef enum { NPY_FLOAT, NPY_INT, NPY_UINT, NPY_BOOL } npy_kind;

typedef struct npy_dtype {
    npy_kind kind;
    size_t size;   /* bytes per element: 1, 2, 4 or 8 */
    int big;       /* big-endian data */
    char text[16]; /* descr as written, for messages */
} npy_dtype;

static int host_is_big_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

/* Map a descr string ('<f8', '|u1', '>i4', '=f4', 'f8') to a dtype.  Returns 0
 * if the type is not one we accept. */
static int npy_dtype_from_descr(const char *s, size_t n, npy_dtype *dt) {
    char order = '=';
    if (n > 0 && (s[0] == '<' || s[0] == '>' || s[0] == '=' || s[0] == '|')) {
        order = s[0];
        s++;
        n--;
    }
    if (n != 2) return 0;
    static const struct { char code; npy_kind kind; } kinds[] = {
        {'f', NPY_FLOAT}, {'i', NPY_INT}, {'u', NPY_UINT}, {'b', NPY_BOOL}};
    int found = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (s[0] == kinds[i].code) { dt->kind = kinds[i].kind; found = 1; }
    if (!found || s[1] < '1' || s[1] > '8') return 0;
    dt->size = (size_t)(s[1] - '0');
    if (dt->kind == NPY_FLOAT && dt->size != 4 && dt->size != 8) return 0;
    if (dt->kind == NPY_BOOL && dt->size != 1) return 0;
    if (dt->size != 1 && dt->size != 2 && dt->size != 4 && dt->size != 8) return 0;
    /* '|' means "byte order not applicable": only meaningful for 1 byte. */
    if (order == '|' && dt->size != 1) return 0;
    dt->big = order == '>' || (order == '=' && host_is_big_endian());
    return 1;
}

/* The element at p (dtype dt) as a double.  Bytes are assembled by
 * shifts, so the code does not depend on the host byte order. */
static double npy_decode(const unsigned char *p, const npy_dtype *dt) {
    uint64_t u = 0;
    for (size_t b = 0; b < dt->size; b++) {
        size_t src = dt->big ? b : dt->size - 1 - b;
        u = (u << 8) | p[src];
    }
    switch (dt->kind) {
    case NPY_BOOL: return u != 0;
    case NPY_UINT: return (double)u;
    case NPY_INT: {
        unsigned bits = (unsigned)(8 * dt->size);
        if (bits < 64 && (u >> (bits - 1)) & 1) u |= ~(uint64_t)0 << bits; /* sign-extend */
        int64_t v;
        memcpy(&v, &u, sizeof v);
        return (double)v;
    }
    case NPY_FLOAT:
        if (dt->size == 4) {
            uint32_t u32 = (uint32_t)u;
            float f;
            memcpy(&f, &u32, sizeof f);
            return (double)f;
        } else {
            double d;
            memcpy(&d, &u, sizeof d);
            return d;
        }
    }
    return 0.0;
}

/* Convert n raw elements stored at the start of out (as bytes) to doubles in
 * place.  Runs backwards: element i is read from byte size*i and written to
 * byte 8*i >= size*i, so no unread element is overwritten. */
static void npy_convert_inplace(double *out, size_t n, const npy_dtype *dt) {
    if (dt->kind == NPY_FLOAT && dt->size == 8 && dt->big == host_is_big_endian()) return;
    const unsigned char *raw = (const unsigned char *)out;
    for (size_t i = n; i-- > 0;) {
        double v = npy_decode(raw + dt->size * i, dt);
        out[i] = v;
    }
}

/* ------------------------------------------------------------ header text */

typedef struct npy_header {
    npy_dtype dtype;
    size_t ndim;
    size_t shape[NH_NPY_MAXDIM];
    size_t count;   /* product of shape (1 for 0-d) */
    size_t nbytes;  /* count * dtype.size */
} npy_header;

/* Cursor over the header text. */
typedef struct npy_lex {
    const char *s;
    size_t n, i;
    const npy_ctx *cx;
} npy_lex;

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Characters of a bare word: True, False, 12, 12L, -3 (the sign is kept so
 * that a negative dimension gets its own message). */
static int is_word(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '_' || c == '+' || c == '-';
}

static void lex_ws(npy_lex *lx) {
    while (lx->i < lx->n && is_space(lx->s[lx->i])) lx->i++;
}

static int lex_peek(npy_lex *lx) {
    lex_ws(lx);
    return lx->i < lx->n ? (unsigned char)lx->s[lx->i] : -1;
}

/* Report a grammar error at the current position with a short excerpt. */
static nh_status lex_error(npy_lex *lx, const char *expected) {
    char near[40];
    size_t left = lx->n - lx->i;
    npy_quote(near, sizeof near, lx->s + lx->i, left < 24 ? left : 24);
    return npy_fail(lx->cx, NH_EFORMAT, "bad .npy header: expected %s at offset %zu, found '%s'",
                    expected, lx->i, lx->i < lx->n ? near : "end of header");
}

static nh_status lex_expect(npy_lex *lx, char c, const char *what) {
    if (lex_peek(lx) != (unsigned char)c) return lex_error(lx, what);
    lx->i++;
    return NH_OK;
}

/* A quoted string (single or double quotes, no escapes: none are needed for
 * the keys and dtype codes that can appear). */
static nh_status lex_string(npy_lex *lx, const char **str, size_t *len) {
    int q = lex_peek(lx);
    if (q != '\'' && q != '"') return lex_error(lx, "a quoted string");
    size_t start = ++lx->i;
    while (lx->i < lx->n && lx->s[lx->i] != q && lx->s[lx->i] != '\\') lx->i++;
    if (lx->i >= lx->n || lx->s[lx->i] != q) return lex_error(lx, "a closing quote");
    *str = lx->s + start;
    *len = lx->i - start;
    lx->i++;
    return NH_OK;
}

/* A bare word (True, False, a number). */
static void lex_word(npy_lex *lx, const char **w, size_t *len) {
    lex_ws(lx);
    size_t start = lx->i;
    while (lx->i < lx->n && is_word(lx->s[lx->i])) lx->i++;
    *w = lx->s + start;
    *len = lx->i - start;
}

static int word_is(const char *w, size_t n, const char *lit) {
    return n == strlen(lit) && memcmp(w, lit, n) == 0;
}

/* 'descr': a dtype string we can convert.  Lists (structured dtypes) and
 * unknown codes are rejected with the code in the message. */
static nh_status parse_descr(npy_lex *lx, npy_header *h) {
    if (lex_peek(lx) == '[')
        return npy_fail(lx->cx, NH_EFORMAT,
                        "structured dtype (list 'descr') is not supported; save a plain numeric array");
    const char *s;
    size_t n;
    NH_TRY(lex_string(lx, &s, &n));
    char shown[sizeof h->dtype.text];
    npy_quote(shown, sizeof shown, s, n);
    if (!npy_dtype_from_descr(s, n, &h->dtype))
        return npy_fail(lx->cx, NH_EFORMAT,
                        "unsupported dtype '%s' (accepted: f8 f4 i8 i4 i2 i1 u8 u4 u2 u1 b1, "
                        "either byte order)", shown);
    memcpy(h->dtype.text, shown, sizeof shown);
    return NH_OK;
}

static nh_status parse_fortran(npy_lex *lx) {
    const char *w;
    size_t n;
    lex_word(lx, &w, &n);
    if (word_is(w, n, "False")) return NH_OK;
    if (word_is(w, n, "True"))
        return npy_fail(lx->cx, NH_EFORMAT,
                        "fortran_order is True (column-major data is not supported); "
                        "save np.ascontiguousarray(a) instead");
    lx->i -= n;
    return lex_error(lx, "True or False for 'fortran_order'");
}

/* One non-negative dimension: decimal digits, optional Python 2 'L' suffix
 * (old NumPy on Python 2 wrote "(3L, 4L)"). */
static nh_status parse_dim(npy_lex *lx, size_t *dim) {
    const char *w;
    size_t n;
    lex_word(lx, &w, &n);
    size_t digits = n > 0 && w[n - 1] == 'L' ? n - 1 : n;
    if (n > 1 && w[0] == '-')
        return npy_fail(lx->cx, NH_EFORMAT, "bad .npy header: negative dimension in 'shape'");
    int ok = 1;
    size_t v = 0;
    for (size_t k = 0; k < digits; k++) {
        if (w[k] < '0' || w[k] > '9') digits = 0;
        else v = nh__add(nh__mul(v, 10, &ok), (size_t)(w[k] - '0'), &ok);
    }
    if (digits == 0) {
        lx->i -= n;
        return lex_error(lx, "a non-negative integer in 'shape'");
    }
    if (!ok) return npy_fail(lx->cx, NH_EFORMAT, "bad .npy header: dimension too large in 'shape'");
    *dim = v;
    return NH_OK;
}

/* 'shape': a tuple "()", "(3,)", "(2, 4)", "(2, 4,)".  "(3)" is an int in
 * Python, not a tuple, and NumPy rejects it, so we do too. */
static nh_status parse_shape(npy_lex *lx, npy_header *h) {
    NH_TRY(lex_expect(lx, '(', "'(' starting the 'shape' tuple"));
    h->ndim = 0;
    int trailing_comma = 0;
    while (lex_peek(lx) != ')') {
        if (h->ndim == NH_NPY_MAXDIM)
            return npy_fail(lx->cx, NH_EFORMAT, "shape has more than %d dimensions",
                            NH_NPY_MAXDIM);
        NH_TRY(parse_dim(lx, &h->shape[h->ndim++]));
        trailing_comma = lex_peek(lx) == ',';
        if (trailing_comma) lx->i++;
        else if (lex_peek(lx) != ')') return lex_error(lx, "',' or ')' in 'shape'");
    }
    lx->i++;
    if (h->ndim == 1 && !trailing_comma)
        return npy_fail(lx->cx, NH_EFORMAT,
                        "bad .npy header: 'shape' (%zu) is not a tuple (a 1-d shape is written (%zu,))",
                        h->shape[0], h->shape[0]);
    return NH_OK;
}

/* The dict: exactly the keys descr, fortran_order, shape, in any order, each
 * once, optional trailing comma, only whitespace after '}'. */
static nh_status parse_dict(npy_lex *lx, npy_header *h) {
    int seen[3] = {0, 0, 0};
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    NH_TRY(lex_expect(lx, '{', "'{' starting the header dict"));
    while (lex_peek(lx) != '}') {
        const char *k;
        size_t kn;
        NH_TRY(lex_string(lx, &k, &kn));
        int which = -1;
        for (int j = 0; j < 3; j++)
            if (word_is(k, kn, keys[j])) which = j;
        char shown[40];
        npy_quote(shown, sizeof shown, k, kn);
        if (which < 0) return npy_fail(lx->cx, NH_EFORMAT, "bad .npy header: unexpected key '%s'", shown);
        if (seen[which]) return npy_fail(lx->cx, NH_EFORMAT, "bad .npy header: key '%s' repeated", shown);
        seen[which] = 1;
        NH_TRY(lex_expect(lx, ':', "':' after a key"));
        NH_TRY(which == 0 ? parse_descr(lx, h) : which == 1 ? parse_fortran(lx) : parse_shape(lx, h));
        if (lex_peek(lx) == ',') lx->i++;
        else if (lex_peek(lx) != '}') return lex_error(lx, "',' or '}' in the header dict");
    }
    lx->i++;
    for (int j = 0; j < 3; j++)
        if (!seen[j]) return npy_fail(lx->cx, NH_EFORMAT, "bad .npy header: key '%s' missing", keys[j]);
    if (lex_peek(lx) != -1) return lex_error(lx, "only whitespace after '}'");
    return NH_OK;
}

/* Element count and byte size.  A product that overflows cannot describe a
 * real array (NH_EFORMAT); one that merely exceeds the memory limit is
 * NH_ETOOLARGE (checked before any allocation). */
static nh_status npy_sizes(const npy_ctx *cx, npy_header *h) {
    int ok = 1;
    size_t count = 1;
    for (size_t d = 0; d < h->ndim; d++) count = nh__mul(count, h->shape[d], &ok);
    size_t nbytes = nh__mul(count, h->dtype.size, &ok);
    char sh[200];
    npy_shape_str(sh, sizeof sh, h->ndim, h->shape);
    if (!ok || count > SIZE_MAX / sizeof(double))
        return npy_fail(cx, NH_EFORMAT, "shape %s has too many elements (size overflows)", sh);
    h->count = count;
    h->nbytes = nbytes;
    char what[300];
    snprintf(what, sizeof what, "%s%sarray of shape %s", cx->path ? cx->path : "",
             cx->path ? ": " : "", sh);
    return nh__check_bytes(1, count * sizeof(double), cx->func, what);
}

/* ---------------------------------------------------------------- preamble */

/* Check magic and version in the first 8 bytes of p[0..len); *hoff is where
 * the header text starts (10 for version 1.0, 12 for 2.0 and 3.0). */
static nh_status npy_version(const npy_ctx *cx, const unsigned char *p, size_t len, size_t *hoff) {
    if (memcmp(p, NPY_MAGIC, len < NPY_MAGIC_LEN ? len : NPY_MAGIC_LEN) != 0)
        return npy_fail(cx, NH_EFORMAT, "not a .npy file (bad magic: no \\x93NUMPY at the start)");
    if (len < NPY_MAGIC_LEN + 2)
        return npy_fail(cx, NH_EFORMAT, "truncated .npy file: %zu bytes, the preamble needs 10", len);
    unsigned major = p[6], minor = p[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return npy_fail(cx, NH_EFORMAT, "unsupported .npy format version %u.%u (1.0, 2.0, 3.0 are)",
                        major, minor);
    *hoff = major == 1 ? 10 : 12;
    return NH_OK;
}

/* Header length from the preamble p[0..len) (u16 LE for 1.0, u32 LE else). */
static nh_status npy_hlen(const npy_ctx *cx, const unsigned char *p, size_t len, size_t hoff,
                          size_t *hlen) {
    if (len < hoff)
        return npy_fail(cx, NH_EFORMAT, "truncated .npy file: %zu bytes, the version %u.0 preamble needs %zu",
                        len, (unsigned)p[6], hoff);
    *hlen = (size_t)p[8] | (size_t)p[9] << 8;
    if (hoff == 12) *hlen |= (size_t)p[10] << 16 | (size_t)p[11] << 24;
    if (*hlen > NPY_MAX_HEADER)
        return npy_fail(cx, NH_EFORMAT, "header length %zu exceeds the %u-byte limit", *hlen,
                        NPY_MAX_HEADER);
    return NH_OK;
}

/* Parse the header text (p, hlen) and compute sizes. */
static nh_status npy_header_text(const npy_ctx *cx, const char *p, size_t hlen, npy_header *h) {
    npy_lex lx = {p, hlen, 0, cx};
    memset(h, 0, sizeof *h);
    NH_TRY(parse_dict(&lx, h));
    return npy_sizes(cx, h);
}

/* Data length check, with the numbers in the message. */
static nh_status npy_check_length(const npy_ctx *cx, const npy_header *h, size_t have) {
    if (have == h->nbytes) return NH_OK;
    char sh[200];
    npy_shape_str(sh, sizeof sh, h->ndim, h->shape);
    return npy_fail(cx, NH_EFORMAT, "data has %zu bytes, header shape %s of %s needs %zu (%s)", have,
                    sh, h->dtype.text, h->nbytes,
                    have < h->nbytes ? "file truncated" : "trailing bytes after the data");
}

/* Set the caller's outputs after success. */
static void npy_outputs(const npy_header *h, double *buf, double **data, size_t *ndim,
                        size_t shape[NH_NPY_MAXDIM]) {
    *data = buf;
    *ndim = h->ndim;
    for (size_t d = 0; d < NH_NPY_MAXDIM; d++) shape[d] = d < h->ndim ? h->shape[d] : 0;
}

/* ------------------------------------------------------------------ parse */

nh_status nh_npy_parse(const void *buf, size_t len, double **data, size_t *ndim,
                       size_t shape[NH_NPY_MAXDIM]) {
    if (!data || !ndim || !shape || (!buf && len)) NH_FAIL(NH_EINVAL, "NULL argument");
    *data = NULL;
    const npy_ctx cx = {"nh_npy_parse", NULL};
    const unsigned char *p = buf ? buf : (const unsigned char *)"";
    size_t hoff, hlen;
    NH_TRY(npy_version(&cx, p, len, &hoff));
    NH_TRY(npy_hlen(&cx, p, len, hoff, &hlen));
    if (len - hoff < hlen)
        return npy_fail(&cx, NH_EFORMAT, "truncated .npy header: length %zu, only %zu bytes follow",
                        hlen, len - hoff);
    npy_header h;
    NH_TRY(npy_header_text(&cx, (const char *)p + hoff, hlen, &h));
    NH_TRY(npy_check_length(&cx, &h, len - hoff - hlen));
    double *out = nh__malloc(h.count * sizeof(double));
    if (!out) return npy_fail(&cx, NH_ENOMEM, "cannot allocate %zu doubles", h.count);
    if (h.nbytes) memcpy(out, p + hoff + hlen, h.nbytes);
    npy_convert_inplace(out, h.count, &h.dtype);
    npy_outputs(&h, out, data, ndim, shape);
    return NH_OK;
}

/* ------------------------------------------------------------------- read */

/* fread exactly n bytes; returns the count actually read. */
static size_t read_full(FILE *f, void *dst, size_t n) {
    return n ? fread(dst, 1, n, f) : 0;
}

/* Read and parse the preamble and header of an open file. */
static nh_status npy_read_header(const npy_ctx *cx, FILE *f, npy_header *h, size_t *data_off) {
    unsigned char pre[12];
    size_t hoff, hlen, got = read_full(f, pre, 8);
    if (!ferror(f) && npy_version(cx, pre, got, &hoff) == NH_OK) got += read_full(f, pre + 8, hoff - 8);
    if (ferror(f)) return npy_fail(cx, NH_EIO, "read error: %s", strerror(errno));
    NH_TRY(npy_version(cx, pre, got < 8 ? got : 8, &hoff));
    NH_TRY(npy_hlen(cx, pre, got, hoff, &hlen));
    nh_status st;
    char *text = nh__malloc(hlen);
    if (!text) return npy_fail(cx, NH_ENOMEM, "cannot allocate the %zu-byte header", hlen);
    size_t hgot = read_full(f, text, hlen);
    if (ferror(f)) st = npy_fail(cx, NH_EIO, "read error: %s", strerror(errno));
    else if (hgot < hlen)
        st = npy_fail(cx, NH_EFORMAT, "truncated .npy header: length %zu, only %zu bytes follow", hlen, hgot);
    else st = npy_header_text(cx, text, hlen, h);
    free(text);
    *data_off = hoff + hlen;
    return st;
}

/* Read the data block (h->nbytes) into a fresh buffer of count elements of
 * elsize bytes and check nothing follows it.  For a regular file the length is
 * checked (by size) before allocating, so a header claiming gigabytes over a
 * tiny file costs nothing. */
static nh_status npy_read_block(const npy_ctx *cx, FILE *f, const npy_header *h, size_t data_off, size_t elsize,
                                void **out) {
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) {
        size_t have = (uint64_t)sb.st_size >= data_off ? (size_t)((uint64_t)sb.st_size - data_off) : 0;
        NH_TRY(npy_check_length(cx, h, have));
    }
    void *buf = nh__malloc(h->count ? h->count * elsize : 1);
    if (!buf) return npy_fail(cx, NH_ENOMEM, "cannot allocate %zu values of %zu bytes", h->count, elsize);
    size_t got = read_full(f, buf, h->nbytes);
    nh_status st = NH_OK;
    if (ferror(f)) st = npy_fail(cx, NH_EIO, "read error: %s", strerror(errno));
    else if (got < h->nbytes) st = npy_check_length(cx, h, got);
    else if (fgetc(f) != EOF) st = npy_check_length(cx, h, got + 1);
    if (st != NH_OK) { free(buf); return st; }
    *out = buf;
    return NH_OK;
}

/* The data block as doubles (converted in place from the file's dtype). */
static nh_status npy_read_data(const npy_ctx *cx, FILE *f, const npy_header *h, size_t data_off,
                               double **out) {
    void *buf = NULL;
    NH_TRY(npy_read_block(cx, f, h, data_off, sizeof(double), &buf));
    npy_convert_inplace(buf, h->count, &h->dtype);
    *out = buf;
    return NH_OK;
}

/* float32 data read raw into buf (count floats): to the host's byte order. */
static void npy_f32_native(float *buf, size_t n, const npy_dtype *dt) {
    if (dt->big == host_is_big_endian()) return;
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = (unsigned char *)(buf + i), t0 = b[0], t1 = b[1];
        b[0] = b[3]; b[1] = b[2]; b[2] = t1; b[3] = t0;
    }
}

/* A float32 file's data block as float32 (no widening). */
static nh_status npy_read_f32data(const npy_ctx *cx, FILE *f, const npy_header *h, size_t data_off, float **out) {
    void *buf = NULL;
    NH_TRY(npy_read_block(cx, f, h, data_off, sizeof(float), &buf));
    npy_f32_native(buf, h->count, &h->dtype);
    *out = buf;
    return NH_OK;
}

nh_status nh_npy_read(const char *path, double **data, size_t *ndim, size_t shape[NH_NPY_MAXDIM]) {
    return nh_npy_read_f32(path, data, NULL, ndim, shape);
}

nh_status nh_npy_read_f32(const char *path, double **data, float **data32, size_t *ndim,
                          size_t shape[NH_NPY_MAXDIM]) {
    if (!path || !data || !ndim || !shape) NH_FAIL(NH_EINVAL, "NULL argument");
    *data = NULL;
    if (data32) *data32 = NULL;
    const npy_ctx cx = {data32 ? "nh_npy_read_f32" : "nh_npy_read", path};
    FILE *f = fopen(path, "rb");
    if (!f) return npy_fail(&cx, NH_EIO, "cannot open: %s", strerror(errno));
    struct stat sb;
    nh_status st = NH_OK;
    npy_header h;
    size_t off = 0;
    double *buf = NULL;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode))
        st = npy_fail(&cx, NH_EIO, "cannot read: %s", strerror(EISDIR));
    if (st == NH_OK) st = npy_read_header(&cx, f, &h, &off);
    const int f32 = st == NH_OK && data32 && h.dtype.kind == NPY_FLOAT && h.dtype.size == 4;
    if (st == NH_OK && f32) st = npy_read_f32data(&cx, f, &h, off, data32);
    else if (st == NH_OK) st = npy_read_data(&cx, f, &h, off, &buf);
    fclose(f);
    if (st == NH_OK) npy_outputs(&h, buf, data, ndim, shape);
    return st;
}

/* ------------------------------------------------------------------ write */

/* The version 1.0 header for '<f8' data: dict padded with spaces so that
 * preamble + header is a multiple of 64 bytes, ending in '\n' (as NumPy
 * writes it, so the data are aligned).  Returns the total length. */
static size_t npy_make_header(char *buf, size_t cap, size_t ndim, const size_t *shape) {
    char sh[256];
    npy_shape_str(sh, sizeof sh, ndim, shape);
    int k = snprintf(buf + 10, cap - 10, "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }", sh);
    size_t total = 10 + (size_t)k + 1;
    size_t padded = (total + 63) / 64 * 64;
    memset(buf + 10 + k, ' ', padded - total);
    buf[padded - 1] = '\n';
    size_t hlen = padded - 10;
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    return padded;
}

/* Write n doubles little-endian: directly on a little-endian host, through a
 * byte-swapping bounce buffer otherwise. */
static int write_f8_le(FILE *f, const double *x, size_t n) {
    if (!host_is_big_endian()) return n == 0 || fwrite(x, sizeof(double), n, f) == n;
    unsigned char tmp[4096];
    for (size_t i = 0; i < n;) {
        size_t m = n - i < sizeof tmp / 8 ? n - i : sizeof tmp / 8;
        for (size_t j = 0; j < m; j++) {
            unsigned char b[8];
            memcpy(b, &x[i + j], 8);
            for (int q = 0; q < 8; q++) tmp[8 * j + (size_t)q] = b[7 - q];
        }
        if (fwrite(tmp, 8, m, f) != m) return 0;
        i += m;
    }
    return 1;
}

/* Write header + data to the open temporary file and close it (the close is
 * where buffered write errors such as ENOSPC surface). */
static nh_status npy_write_stream(const npy_ctx *cx, FILE *f, const char *tmp, const char *hdr,
                                  size_t hlen, const double *data, size_t count) {
    int ok = fwrite(hdr, 1, hlen, f) == hlen && write_f8_le(f, data, count) && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) { ok = 0; err = errno; }
    if (!ok) return npy_fail(cx, NH_EIO, "write to %s failed: %s", tmp, strerror(err));
    return NH_OK;
}

nh_status nh_npy_write(const char *path, const double *data, size_t ndim, const size_t *shape) {
    if (!path || (ndim && !shape)) NH_FAIL(NH_EINVAL, "NULL argument");
    if (ndim > NH_NPY_MAXDIM) NH_FAIL(NH_EINVAL, "%s: ndim %zu exceeds %d", path, ndim, NH_NPY_MAXDIM);
    int ok = 1;
    size_t count = 1;
    for (size_t d = 0; d < ndim; d++) count = nh__mul(count, shape[d], &ok);
    nh__mul(count, sizeof(double), &ok);
    if (!ok) NH_FAIL(NH_ETOOLARGE, "%s: shape size overflows", path);
    if (count && !data) NH_FAIL(NH_EINVAL, "NULL data for %zu elements", count);
    const npy_ctx cx = {"nh_npy_write", path};
    char hdr[512];
    size_t hlen = npy_make_header(hdr, sizeof hdr, ndim, shape);
    size_t tlen = strlen(path) + 32;
    char *tmp = nh__malloc(tlen);
    if (!tmp) NH_FAIL(NH_ENOMEM, "cannot allocate a path");
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    nh_status st;
    FILE *f = fopen(tmp, "wb");
    int created = f != NULL;
    if (!f) st = npy_fail(&cx, NH_EIO, "cannot create %s: %s", tmp, strerror(errno));
    else st = npy_write_stream(&cx, f, tmp, hdr, hlen, data, count);
    if (st == NH_OK && rename(tmp, path) != 0)
        st = npy_fail(&cx, NH_EIO, "cannot rename %s into place: %s", tmp, strerror(errno));
    if (st != NH_OK && created) remove(tmp); /* never leave a partial file behind */
    free(tmp);
    return st;
}
