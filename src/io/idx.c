/* idx.c -- IDX files (LeCun's MNIST format), plain or gzip-compressed, and
 * the Fashion-MNIST loader built on them.
 *
 * Layout: bytes 0x00 0x00, the element type (0x08 = unsigned byte, the
 * only one accepted: images and labels of MNIST and Fashion-MNIST), the
 * number of dimensions, then one big-endian u32 per dimension, then the
 * elements, and nothing after.  Images: 0x00000803 (n, rows, cols);
 * labels: 0x00000801 (n).
 *
 * Reading goes through zlib's gzopen/gzread, which decompresses gzip and
 * passes other files through unchanged.  Every header field is checked
 * before it is used, the element count is checked for overflow and against
 * the memory limit before any allocation, and the data buffer grows with
 * the bytes actually decompressed (geometrically, capped at the size the
 * header claims), so a hostile header over a short file costs nothing.
 * Truncation, trailing bytes and corrupt gzip streams (bad codes, CRC or
 * length mismatch, a stream cut short) are NH_EFORMAT; a failing read()
 * is NH_EIO. */
#include "core/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_TYPE_U8 0x08
/* First allocation for the data; then doubled up to the claimed size. */
#define IDX_CHUNK ((size_t)1 << 20)
/* gzread takes an unsigned int length: read at most this much per call. */
#define IDX_MAX_READ ((size_t)1 << 30)

typedef struct idx_ctx {
    const char *func;
    const char *path; /* NULL when parsing memory */
} idx_ctx;

static nh_status idx_fail(const idx_ctx *cx, nh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static nh_status idx_fail(const idx_ctx *cx, nh_status st, const char *fmt, ...) {
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return nh__fail(st, cx->func, "%s%s%s", cx->path ? cx->path : "", cx->path ? ": " : "", detail);
}

/* "(60000, 28, 28)" */
static void idx_shape_str(char *buf, size_t cap, size_t ndim, const size_t *dims) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (size_t d = 0; d < ndim && k < cap; d++) k += (size_t)snprintf(buf + k, cap - k, "%s%zu", d ? ", " : "", dims[d]);
    if (k < cap) snprintf(buf + k, cap - k, ndim == 1 ? ",)" : ")");
}

/* The 4-byte magic: zero, zero, type, ndim. */
static nh_status idx_magic(const idx_ctx *cx, const unsigned char *m, size_t got, size_t *ndim) {
    if (got < 4)
        return idx_fail(cx, NH_EFORMAT, "truncated IDX file: %zu bytes, the magic number needs 4", got);
    const unsigned long magic = (unsigned long)m[0] << 24 | (unsigned long)m[1] << 16 | (unsigned long)m[2] << 8 | m[3];
    if (m[0] != 0 || m[1] != 0)
        return idx_fail(cx, NH_EFORMAT, "not an IDX file (magic 0x%08lx does not start with two zero bytes)", magic);
    if (m[2] != IDX_TYPE_U8)
        return idx_fail(cx, NH_EFORMAT,
                        "unsupported IDX element type 0x%02x (magic 0x%08lx; only unsigned bytes, 0x08, are read)",
                        (unsigned)m[2], magic);
    if (m[3] == 0 || m[3] > NH_IDX_MAXDIM)
        return idx_fail(cx, NH_EFORMAT, "IDX magic 0x%08lx has %u dimensions (1 to %d accepted)", magic,
                        (unsigned)m[3], NH_IDX_MAXDIM);
    *ndim = m[3];
    return NH_OK;
}

/* Dimensions (ndim big-endian u32 at p) and the element count, checked for
 * overflow (NH_EFORMAT) and against the memory limit (NH_ETOOLARGE). */
static nh_status idx_dims(const idx_ctx *cx, const unsigned char *p, size_t got, size_t ndim,
                          size_t dims[NH_IDX_MAXDIM], size_t *count) {
    if (got < 4 * ndim)
        return idx_fail(cx, NH_EFORMAT, "truncated IDX header: %zu dimensions need %zu bytes, only %zu present", ndim,
                        4 * ndim, got);
    int ok = 1;
    size_t c = 1;
    for (size_t d = 0; d < NH_IDX_MAXDIM; d++) dims[d] = 0;
    for (size_t d = 0; d < ndim; d++) {
        const unsigned char *q = p + 4 * d;
        uint32_t v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
        dims[d] = v;
        c = nh__mul(c, dims[d], &ok);
    }
    char sh[128];
    idx_shape_str(sh, sizeof sh, ndim, dims);
    if (!ok) return idx_fail(cx, NH_EFORMAT, "IDX shape %s has too many elements (size overflows)", sh);
    char what[600];
    snprintf(what, sizeof what, "%s%sIDX data of shape %s", cx->path ? cx->path : "", cx->path ? ": " : "", sh);
    NH_TRY(nh__check_bytes(1, c, cx->func, what));
    *count = c;
    return NH_OK;
}

static nh_status idx_length_error(const idx_ctx *cx, size_t ndim, const size_t *dims, size_t need, size_t have) {
    char sh[128];
    idx_shape_str(sh, sizeof sh, ndim, dims);
    if (have < need)
        return idx_fail(cx, NH_EFORMAT, "truncated IDX file: shape %s needs %zu data bytes, only %zu present", sh,
                        need, have);
    return idx_fail(cx, NH_EFORMAT, "trailing bytes after the %zu data bytes of shape %s", need, sh);
}

static void idx_outputs(unsigned char *buf, size_t nd, const size_t *dims, unsigned char **data, size_t *ndim,
                        size_t out_dims[NH_IDX_MAXDIM]) {
    *data = buf;
    *ndim = nd;
    for (size_t d = 0; d < NH_IDX_MAXDIM; d++) out_dims[d] = dims[d];
}

nh_status nh_idx_parse(const void *buf, size_t len, unsigned char **data, size_t *ndim,
                       size_t dims[NH_IDX_MAXDIM]) {
    if (data) *data = NULL;
    if (!data || !ndim || !dims || (!buf && len)) NH_FAIL(NH_EINVAL, "NULL argument");
    const idx_ctx cx = {"nh_idx_parse", NULL};
    const unsigned char *p = buf ? buf : (const unsigned char *)"";
    size_t nd, count, dd[NH_IDX_MAXDIM];
    NH_TRY(idx_magic(&cx, p, len, &nd));
    NH_TRY(idx_dims(&cx, p + 4, len - 4, nd, dd, &count));
    const size_t off = 4 + 4 * nd;
    if (len - off != count) return idx_length_error(&cx, nd, dd, count, len - off);
    unsigned char *out = nh__malloc(count);
    if (!out) return idx_fail(&cx, NH_ENOMEM, "cannot allocate %zu bytes", count);
    if (count) memcpy(out, p + off, count);
    idx_outputs(out, nd, dd, data, ndim, dims);
    return NH_OK;
}

/* ------------------------------------------------------------------- read */

/* After gzread returned less than asked: the reason, or NH_OK for a clean
 * end of file. */
static nh_status gz_status(const idx_ctx *cx, gzFile gz, int saved_errno) {
    int err = Z_OK;
    const char *msg = gzerror(gz, &err);
    switch (err) {
    case Z_OK:
    case Z_STREAM_END: return NH_OK;
    case Z_ERRNO: return idx_fail(cx, NH_EIO, "read error: %s", strerror(saved_errno ? saved_errno : EIO));
    case Z_MEM_ERROR: return idx_fail(cx, NH_ENOMEM, "zlib is out of memory");
    case Z_BUF_ERROR: return idx_fail(cx, NH_EFORMAT, "truncated gzip stream (%s)", msg ? msg : "unexpected end");
    default: return idx_fail(cx, NH_EFORMAT, "corrupt gzip data (%s)", msg ? msg : "zlib error");
    }
}

/* Read up to n bytes; *got receives the count.  NH_OK at a clean end of
 * file (then *got may be < n). */
static nh_status gz_read_full(const idx_ctx *cx, gzFile gz, unsigned char *dst, size_t n, size_t *got) {
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < IDX_MAX_READ ? n - *got : IDX_MAX_READ;
        errno = 0;
        int r = gzread(gz, dst + *got, (unsigned)want);
        int e = errno;
        if (r < 0) {
            nh_status st = gz_status(cx, gz, e);
            return st != NH_OK ? st : idx_fail(cx, NH_EFORMAT, "corrupt gzip data");
        }
        *got += (size_t)r;
        if ((size_t)r < want) return gz_status(cx, gz, e);
    }
    return NH_OK;
}

/* The data block: grow the buffer with what arrives, then make sure nothing
 * follows. */
static nh_status idx_read_data(const idx_ctx *cx, gzFile gz, size_t nd, const size_t *dims, size_t count,
                               unsigned char **out) {
    size_t cap = count < IDX_CHUNK ? count : IDX_CHUNK, have = 0;
    unsigned char *buf = nh__malloc(cap);
    if (!buf) return idx_fail(cx, NH_ENOMEM, "cannot allocate %zu bytes", cap);
    nh_status st = NH_OK;
    while (st == NH_OK && have < count) {
        if (have == cap) {
            size_t ncap = cap > count / 2 ? count : 2 * cap;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) { st = idx_fail(cx, NH_ENOMEM, "cannot allocate %zu bytes", ncap); break; }
            buf = nb;
            cap = ncap;
        }
        size_t got = 0;
        st = gz_read_full(cx, gz, buf + have, cap - have, &got);
        have += got;
        if (st == NH_OK && have < cap) st = idx_length_error(cx, nd, dims, count, have);
    }
    if (st == NH_OK) {
        unsigned char extra;
        size_t got = 0;
        st = gz_read_full(cx, gz, &extra, 1, &got);
        if (st == NH_OK && got) st = idx_length_error(cx, nd, dims, count, count + 1);
    }
    if (st != NH_OK) { free(buf); return st; }
    *out = buf;
    return NH_OK;
}

nh_status nh_idx_read(const char *path, unsigned char **data, size_t *ndim, size_t dims[NH_IDX_MAXDIM]) {
    if (data) *data = NULL;
    if (!path || !data || !ndim || !dims) NH_FAIL(NH_EINVAL, "NULL argument");
    const idx_ctx cx = {"nh_idx_read", path};
    struct stat sb;
    if (stat(path, &sb) != 0) return idx_fail(&cx, NH_EIO, "cannot open: %s", strerror(errno));
    if (S_ISDIR(sb.st_mode)) return idx_fail(&cx, NH_EIO, "cannot read: %s", strerror(EISDIR));
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) return idx_fail(&cx, errno == ENOMEM ? NH_ENOMEM : NH_EIO, "cannot open: %s", strerror(errno ? errno : EIO));
    gzbuffer(gz, 1u << 17);
    unsigned char hdr[4 + 4 * NH_IDX_MAXDIM];
    size_t got = 0, nd = 0, count = 0, dd[NH_IDX_MAXDIM] = {0};
    unsigned char *buf = NULL;
    nh_status st = gz_read_full(&cx, gz, hdr, 4, &got);
    if (st == NH_OK) st = idx_magic(&cx, hdr, got, &nd);
    if (st == NH_OK) st = gz_read_full(&cx, gz, hdr + 4, 4 * nd, &got);
    if (st == NH_OK) st = idx_dims(&cx, hdr + 4, got, nd, dd, &count);
    if (st == NH_OK) st = idx_read_data(&cx, gz, nd, dd, count, &buf);
    int zc = gzclose_r(gz);
    if (st == NH_OK && zc != Z_OK)
        st = zc == Z_ERRNO ? idx_fail(&cx, NH_EIO, "close failed: %s", strerror(errno))
                           : idx_fail(&cx, NH_EFORMAT, "truncated or corrupt gzip stream (zlib status %d at close)", zc);
    if (st != NH_OK) { free(buf); return st; }
    idx_outputs(buf, nd, dd, data, ndim, dims);
    return NH_OK;
}

/* ---------------------------------------------------------- Fashion-MNIST */

#define FASHION_SIDE 28
#define FASHION_CLASSES 10

/* dir/base.gz if it exists, else dir/base (malloc'ed). */
static char *fashion_path(const char *dir, const char *base) {
    size_t len = strlen(dir) + strlen(base) + 8;
    char *p = nh__malloc(len);
    if (!p) return NULL;
    snprintf(p, len, "%s/%s.gz", dir, base);
    struct stat sb;
    if (stat(p, &sb) != 0) {
        snprintf(p, len, "%s/%s", dir, base);
        if (stat(p, &sb) != 0) snprintf(p, len, "%s/%s.gz", dir, base); /* name the usual file */
    }
    return p;
}

nh_status nh_fashion_mnist_load(const char *dir, const char *split, nh_images *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!out) NH_FAIL(NH_EINVAL, "NULL argument");
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    if (!split) split = "test";
    const char *prefix;
    if (strcmp(split, "test") == 0) prefix = "t10k";
    else if (strcmp(split, "train") == 0) prefix = "train";
    else NH_FAIL(NH_EINVAL, "unknown split '%s' (expected test or train)", split);
    char base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    char *ipath = fashion_path(dir, base);
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    char *lpath = fashion_path(dir, base);
    unsigned char *img = NULL, *lab = NULL;
    size_t ind = 0, lnd = 0, idims[NH_IDX_MAXDIM], ldims[NH_IDX_MAXDIM];
    nh_status st = ipath && lpath ? NH_OK : nh__fail(NH_ENOMEM, __func__, "cannot allocate a path");
    if (st == NH_OK) st = nh_idx_read(ipath, &img, &ind, idims);
    if (st == NH_OK && (ind != 3 || idims[1] != FASHION_SIDE || idims[2] != FASHION_SIDE)) {
        char sh[128];
        idx_shape_str(sh, sizeof sh, ind, idims);
        st = nh__fail(NH_EFORMAT, __func__, "%s: images of shape %s, expected (n, 28, 28) (magic 0x00000803)",
                      ipath, sh);
    }
    if (st == NH_OK) st = nh_idx_read(lpath, &lab, &lnd, ldims);
    if (st == NH_OK && lnd != 1) {
        char sh[128];
        idx_shape_str(sh, sizeof sh, lnd, ldims);
        st = nh__fail(NH_EFORMAT, __func__, "%s: labels of shape %s, expected (n,) (magic 0x00000801)", lpath, sh);
    }
    if (st == NH_OK && ldims[0] != idims[0])
        st = nh__fail(NH_EFORMAT, __func__, "%s has %zu labels but %s has %zu images", lpath, ldims[0], ipath,
                      idims[0]);
    const size_t n = st == NH_OK ? idims[0] : 0, npix = (size_t)FASHION_SIDE * FASHION_SIDE;
    for (size_t i = 0; st == NH_OK && i < n; i++)
        if (lab[i] >= FASHION_CLASSES)
            st = nh__fail(NH_EFORMAT, __func__, "%s: label %u of image %zu is not a class 0..9", lpath,
                          (unsigned)lab[i], i);
    if (st == NH_OK) {
        int ok = 1;
        size_t bytes = nh__mul(nh__mul(n, npix, &ok), sizeof(double), &ok);
        st = nh__check_bytes(ok, bytes, __func__, "Fashion-MNIST images as doubles");
        if (st == NH_OK) {
            out->pixels = nh__malloc(bytes);
            out->labels = nh__malloc(n * sizeof(int));
            if (!out->pixels || !out->labels) st = nh__fail(NH_ENOMEM, __func__, "cannot allocate %zu images", n);
        }
    }
    if (st == NH_OK) {
        for (size_t k = 0; k < n * npix; k++) out->pixels[k] = (double)img[k] / 255.0;
        for (size_t i = 0; i < n; i++) out->labels[i] = lab[i];
        out->n = n;
        out->rows = out->cols = FASHION_SIDE;
        out->nclass = FASHION_CLASSES;
    }
    free(img);
    free(lab);
    free(ipath);
    free(lpath);
    if (st != NH_OK) nh_images_free(out);
    return st;
}
