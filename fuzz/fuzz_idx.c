/* fuzz_idx -- IDX reader (src/io/idx.c), plain and gzip-wrapped.
 *
 * Input: one mode byte, then an IDX payload.  Every payload goes through
 * nh_idx_parse (memory); the mode then picks what nh_idx_read (file, via
 * zlib's gzread) gets:
 *   0  the payload as-is: must agree with nh_idx_parse (unless the payload
 *      itself starts with the gzip magic: then it is fuzzed gzip input,
 *      corrupt-stream handling, and only the sanitizers judge);
 *   1  the payload gzip-compressed (level from the length): must agree;
 *   2  the payload gzip-compressed, then cut short at a point derived from
 *      the input: a truncated stream must be refused (doc: NH_EFORMAT);
 *   3  the payload split into two gzip members, plus a few trailing
 *      non-gzip bytes (ignored, zlib's rule): must agree.
 * Agreement means the same status and, on success, the same ndim, dims
 * and bytes. */
#include "fuzz_common.h"

#include <zlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    nhf_init();
    return 0;
}

/* gzip-compress src into a malloc'ed buffer appended to *out (len *olen). */
static void gz_append(const uint8_t *src, size_t n, int level, uint8_t **out, size_t *olen) {
    z_stream z;
    memset(&z, 0, sizeof z);
    NHF_SETUP(deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    uint8_t *buf = realloc(*out, *olen + cap);
    NHF_SETUP(buf != NULL, "realloc");
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    z.next_out = buf + *olen;
    z.avail_out = (uInt)cap;
    NHF_SETUP(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    *olen += cap - z.avail_out;
    *out = buf;
    deflateEnd(&z);
}

static uint32_t fnv(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    const int mode = size ? data[0] & 3 : 0;
    const uint8_t *pl = size ? data + 1 : data;
    const size_t plen = size ? size - 1 : 0;

    unsigned char *a = NULL, *b = NULL;
    size_t nda = 0, ndb = 0, da[NH_IDX_MAXDIM], db[NH_IDX_MAXDIM];
    nh_status sa = nh_idx_parse(pl, plen, &a, &nda, da);
    nhf_note("nh_idx_parse", sa);
    if (sa == NH_OK) {
        NHF_CHECK(a && nda >= 1 && nda <= NH_IDX_MAXDIM, "parse OK with ndim %zu", nda);
        size_t c = 1;
        for (size_t k = 0; k < nda; k++) c *= da[k];
        for (size_t k = nda; k < NH_IDX_MAXDIM; k++) NHF_CHECK(da[k] == 0, "unused dim %zu = %zu", k, da[k]);
        NHF_CHECK(plen == 4 + 4 * nda + c, "parse OK but %zu bytes for %zu elements", plen, c);
        volatile unsigned s = 0;
        for (size_t k = 0; k < c; k++) s += a[k];
        (void)s;
    } else {
        NHF_CHECK(a == NULL && nh_last_error()[0], "parse failed (%s): data set or no message", nh_strerror(sa));
    }

    uint8_t *file = NULL;
    size_t flen = 0;
    int compare = 1, must_fail = 0;
    if (mode == 0) {
        file = malloc(plen + 1);
        NHF_SETUP(file != NULL, "malloc");
        if (plen) memcpy(file, pl, plen);
        flen = plen;
        compare = !(plen >= 2 && pl[0] == 0x1f && pl[1] == 0x8b);
    } else if (mode == 1) {
        gz_append(pl, plen, (int)(plen % 10), &file, &flen);
    } else if (mode == 2) {
        gz_append(pl, plen, Z_DEFAULT_COMPRESSION, &file, &flen);
        flen = 1 + fnv(pl, plen) % (uint32_t)(flen - 1); /* 1 .. flen-1 bytes kept */
        compare = 0;
        must_fail = 1;
    } else {
        const size_t half = plen / 2;
        gz_append(pl, half, 6, &file, &flen);
        gz_append(pl + half, plen - half, 1, &file, &flen);
        uint8_t *f2 = realloc(file, flen + 3);
        NHF_SETUP(f2 != NULL, "realloc");
        file = f2;
        memcpy(file + flen, "\0\x01\x02", 3); /* not a gzip header: ignored */
        flen += 1 + fnv(pl, plen) % 3;
    }
    const char *path = nhf_path("in.idx");
    nhf_write(path, file, flen);
    nh_status sb = nh_idx_read(path, &b, &ndb, db);
    nhf_note("nh_idx_read", sb);
    if (sb != NH_OK) NHF_CHECK(b == NULL && nh_last_error()[0], "read failed (%s): data set or no message", nh_strerror(sb));
    if (must_fail)
        NHF_CHECK(sb != NH_OK, "a gzip stream cut to %zu bytes was accepted (%zu-byte payload)", flen, plen);
    if (compare) {
        NHF_CHECK(sa == sb, "mode %d: nh_idx_parse says %s, nh_idx_read says %s", mode, nh_strerror(sa),
                  nh_strerror(sb));
        if (sa == NH_OK) {
            NHF_CHECK(nda == ndb && memcmp(da, db, sizeof da) == 0, "mode %d: parse and read disagree on dims", mode);
            NHF_CHECK(plen - 4 - 4 * nda == 0 || memcmp(a, b, plen - 4 - 4 * nda) == 0,
                      "mode %d: parse and read disagree on the data", mode);
        }
    }
    unlink(path);
    free(file);
    free(a);
    free(b);
    return 0;
}
