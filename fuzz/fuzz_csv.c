/* fuzz_csv -- numeric CSV reader (src/io/csv.c).
 *
 * Each input is one CSV text.  The label column is taken from the input
 * length (len % 7 - 3, so -3..3: out-of-range values are exercised too).
 * nh_csv_parse (memory) and nh_csv_read (the same bytes as a file, read in
 * blocks) must agree on the status and on every value.  On success: n >= 1,
 * d >= 1, X is n x d and T is n, all finite (ASan checks the sizes). */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    nhf_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    const long label_col = (long)(size % 7) - 3;
    double *X = NULL, *T = NULL, *X2 = NULL, *T2 = NULL;
    size_t n = 0, d = 0, n2 = 0, d2 = 0;
    nh_status sa = nh_csv_parse((const char *)data, size, "fuzz.csv", label_col, &X, &T, &n, &d);
    nhf_note("nh_csv_parse", sa);
    if (sa == NH_OK) {
        NHF_CHECK(X && T && n >= 1 && d >= 1, "parse OK with n = %zu, d = %zu", n, d);
        NHF_CHECK(nhf_touch(X, n * d) == 0, "parse OK with a non-finite input value");
        NHF_CHECK(nhf_touch(T, n) == 0, "parse OK with a non-finite target");
    } else {
        NHF_CHECK(!X && !T, "parse failed (%s) but outputs are set", nh_strerror(sa));
        NHF_CHECK(nh_last_error()[0] != '\0', "parse failed without a message");
    }
    const char *path = nhf_path("in.csv");
    nhf_write(path, data, size);
    nh_status sb = nh_csv_read(path, label_col, &X2, &T2, &n2, &d2);
    NHF_CHECK(sa == sb, "nh_csv_parse says %s, nh_csv_read says %s", nh_strerror(sa), nh_strerror(sb));
    if (sb == NH_OK) {
        NHF_CHECK(n == n2 && d == d2, "parse (%zu x %zu) and read (%zu x %zu) disagree", n, d, n2, d2);
        NHF_CHECK(memcmp(X, X2, n * d * sizeof *X) == 0 && memcmp(T, T2, n * sizeof *T) == 0,
                  "parse and read disagree on the values");
    }
    unlink(path);
    free(X); free(T); free(X2); free(T2);
    return 0;
}
