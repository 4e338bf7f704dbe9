/* fuzz_npy -- .npy reader (src/io/npy.c).
 *
 * Each input is one .npy file.  It goes through both readers, nh_npy_parse
 * (memory) and nh_npy_read (the same bytes as a file: a separate header and
 * data reader), which must agree on the status, the shape and every value
 * bit for bit.  A successful parse must describe a buffer of exactly
 * prod(shape) doubles (ASan checks the reads); a failure must leave *data
 * NULL and a message.  A successful array is written back with nh_npy_write
 * and read again: the round trip must be exact. */
#include "fuzz_common.h"

#include <math.h>

static size_t prod(size_t nd, const size_t *sh) {
    size_t c = 1;
    for (size_t d = 0; d < nd; d++) c *= sh[d];
    return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    nhf_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    double *a = NULL, *b = NULL;
    size_t nda = 99, ndb = 99, sha[NH_NPY_MAXDIM], shb[NH_NPY_MAXDIM];
    nh_status sa = nh_npy_parse(data, size, &a, &nda, sha);
    nhf_note("nh_npy_parse", sa);
    if (sa == NH_OK) {
        NHF_CHECK(a != NULL && nda <= NH_NPY_MAXDIM, "parse: OK with data %p, ndim %zu", (void *)a, nda);
        for (size_t d = nda; d < NH_NPY_MAXDIM; d++) NHF_CHECK(sha[d] == 0, "parse: shape[%zu] = %zu unused", d, sha[d]);
        nhf_touch(a, prod(nda, sha));
    } else {
        NHF_CHECK(a == NULL, "parse failed (%s) but *data is set", nh_strerror(sa));
        NHF_CHECK(nh_last_error()[0] != '\0', "parse failed (%s) without a message", nh_strerror(sa));
    }

    const char *path = nhf_path("in.npy");
    nhf_write(path, data, size);
    nh_status sb = nh_npy_read(path, &b, &ndb, shb);
    NHF_CHECK(sa == sb, "nh_npy_parse says %s, nh_npy_read says %s", nh_strerror(sa), nh_strerror(sb));
    if (sb == NH_OK) {
        NHF_CHECK(nda == ndb && memcmp(sha, shb, sizeof sha) == 0, "parse and read disagree on the shape");
        size_t n = prod(nda, sha);
        NHF_CHECK(n == 0 || memcmp(a, b, n * sizeof(double)) == 0, "parse and read disagree on the values");

        /* Round trip through the writer ('<f8', version 1.0). */
        const char *rt = nhf_path("rt.npy");
        nh_status sw = nh_npy_write(rt, a, nda, sha);
        NHF_CHECK(sw == NH_OK, "nh_npy_write of a parsed array failed: %s", nh_strerror(sw));
        double *c = NULL;
        size_t ndc = 99, shc[NH_NPY_MAXDIM];
        nh_status sc = nh_npy_read(rt, &c, &ndc, shc);
        NHF_CHECK(sc == NH_OK, "re-reading a written array failed: %s", nh_strerror(sc));
        NHF_CHECK(ndc == nda && memcmp(shc, sha, sizeof sha) == 0, "round trip changed the shape");
        NHF_CHECK(n == 0 || memcmp(a, c, n * sizeof(double)) == 0, "round trip changed the values");
        free(c);
        unlink(rt);
    } else {
        NHF_CHECK(b == NULL, "read failed but *data is set");
    }
    unlink(path);
    free(a);
    free(b);
    return 0;
}
