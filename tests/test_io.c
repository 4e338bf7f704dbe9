/* test_io.c -- .npy reader/writer and model directories.
 *
 * Round trips, hand-made buffers for every accepted dtype and byte order,
 * format versions 2.0/3.0, a catalogue of malformed files (each with its exact
 * status), truncation at every byte, size limits, fault injection, and
 * interoperability with NumPy itself (tests/data/make_numpy_model.py, run by
 * /usr/bin/python3: python3-numpy is a hard dependency of this test).
 * Everything is written under one mkdtemp directory, removed at the end. */
#include "nh_test.h"
#include "ntkhess.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* Internal fault-injection hook of libntkhess (status.c): the k-th next
 * allocation fails. */
void nh__alloc_fail_at(long k);

static char g_root[512];          /* mkdtemp directory of this run */
static char g_script[1024];       /* tests/data/make_numpy_model.py */
static const char *g_argv0 = "";

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
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int write_text(const char *path, const char *text) {
    return write_bytes(path, text, strlen(text));
}

/* Whole file into a malloc'ed buffer (NULL on failure). */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(1 << 16);
    *n = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

/* A fresh subdirectory of g_root. */
static void make_subdir(char *out, size_t cap, const char *name) {
    path_in(out, cap, g_root, name);
    nh_check(mkdir(out, 0700) == 0, "mkdir %s", out);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted entry names of dir, space-separated ("" if empty or unreadable). */
static void list_dir(const char *dir, char *buf, size_t cap) {
    char *names[64];
    size_t n = 0;
    buf[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "%s%s", i ? " " : "", names[i]);
        free(names[i]);
    }
}

/* Remove the files in dir and dir itself; the check fails if anything could
 * not be removed (for example a leftover subdirectory). */
static void remove_dir(const char *dir) {
    char names[4096], path[1024];
    list_dir(dir, names, sizeof names);
    for (char *tok = strtok(names, " "); tok; tok = strtok(NULL, " ")) {
        path_in(path, sizeof path, dir, tok);
        nh_check(unlink(path) == 0, "remove %s (%s)", path, strerror(errno));
    }
    nh_check(rmdir(dir) == 0, "rmdir %s (%s)", dir, strerror(errno));
}

static int err_has(const char *needle) { return strstr(nh_last_error(), needle) != NULL; }

/* Expected status, and (if given) a substring of the error message. */
static void check_status(nh_status got, nh_status want, const char *needle, const char *what) {
    int ok = got == want && (!needle || err_has(needle));
    nh_check(ok, "%s: status %d (%s) want %d, message \"%s\" should contain \"%s\"", what, (int)got,
             nh_strerror(got), (int)want, nh_last_error(), needle ? needle : "");
}

/* The shared value formula (see tests/data/make_numpy_model.py): one
 * correctly rounded division, so C and NumPy agree bit for bit. */
static double formula(long s, size_t k) {
    double v = (double)(s + (long)k + 1) / 7.0;
    return k % 2 ? -v : v;
}

/* ======================================================= buffer builder */

typedef struct npybuf {
    unsigned char b[8192];
    size_t n;
} npybuf;

/* Preamble for version major.0 + header text as given + data. */
static void npy_build(npybuf *o, int major, const char *header, const void *data, size_t dlen) {
    size_t hlen = strlen(header), k = 0;
    memcpy(o->b, "\x93NUMPY", 6);
    o->b[6] = (unsigned char)major;
    o->b[7] = 0;
    k = 8;
    o->b[k++] = (unsigned char)(hlen & 0xff);
    o->b[k++] = (unsigned char)(hlen >> 8);
    if (major != 1) {
        o->b[k++] = (unsigned char)(hlen >> 16);
        o->b[k++] = (unsigned char)(hlen >> 24);
    }
    memcpy(o->b + k, header, hlen);
    if (dlen) memcpy(o->b + k + hlen, data, dlen);
    o->n = k + hlen + dlen;
}

/* nh_npy_parse on an exact-size heap copy, so that a sanitizer or valgrind
 * sees any read past the end. */
static nh_status parse_exact(const void *p, size_t n, double **data, size_t *ndim, size_t *shape) {
    unsigned char *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    nh_status st = nh_npy_parse(copy, n, data, ndim, shape);
    free(copy);
    return st;
}

/* Parse a v1 buffer with the given header dict and data; expect status want
 * and message substring needle; free any result. */
static void expect_parse(const char *header, const void *data, size_t dlen, nh_status want,
                         const char *needle) {
    npybuf b;
    double dummy, *x = &dummy; /* must be reset to NULL on failure */
    size_t nd, sh[NH_NPY_MAXDIM];
    npy_build(&b, 1, header, data, dlen);
    nh_status st = parse_exact(b.b, b.n, &x, &nd, sh);
    check_status(st, want, needle, header);
    if (st != NH_OK) nh_check(x == NULL, "data NULL after failure: %s", header);
    if (st == NH_OK) free(x);
}

/* ============================================================ round trip */

/* Write, read back, compare bitwise; also check the file layout. */
static void roundtrip_one(const char *dir, size_t ndim, const size_t *shape, int specials) {
    size_t count = 1;
    for (size_t d = 0; d < ndim; d++) count *= shape[d];
    double *x = malloc((count ? count : 1) * sizeof *x);
    for (size_t k = 0; k < count; k++) x[k] = formula(0, k);
    const double special[] = {-0.0, DBL_MIN / 4, DBL_MAX, -DBL_TRUE_MIN, NAN, -INFINITY};
    for (size_t k = 0; specials && k < count && k < 6; k++) x[k] = special[k];
    char path[1024];
    path_in(path, sizeof path, dir, "rt.npy");
    nh_status st = nh_npy_write(path, x, ndim, shape);
    nh_check(st == NH_OK, "write ndim %zu count %zu: %s", ndim, count, nh_last_error());
    double *y = NULL;
    size_t nd = 99, sh[NH_NPY_MAXDIM];
    st = nh_npy_read(path, &y, &nd, sh);
    int same = st == NH_OK && nd == ndim && (count == 0 || memcmp(x, y, count * sizeof *x) == 0);
    for (size_t d = 0; same && d < ndim; d++) same = sh[d] == shape[d];
    nh_check(same, "round trip ndim %zu count %zu bitwise (%s)", ndim, count, nh_last_error());
    size_t n = 0;
    unsigned char *raw = read_bytes(path, &n);
    size_t hlen = raw && n >= 10 ? (size_t)raw[8] | (size_t)raw[9] << 8 : 0;
    nh_check(raw && n >= 10 && raw[6] == 1 && raw[7] == 0 && (10 + hlen) % 64 == 0 &&
                 raw[10 + hlen - 1] == '\n' && n == 10 + hlen + 8 * count,
             "layout ndim %zu: version 1.0, 64-byte aligned header ending in newline", ndim);
    free(raw);
    free(x);
    free(y);
    unlink(path);
}

static void test_roundtrip(void) {
    char dir[1024];
    make_subdir(dir, sizeof dir, "rt");
    static const size_t s3[] = {2, 3, 4}, s2[] = {3, 4}, s1[] = {7}, z1[] = {0}, z3[] = {2, 0, 3},
                        s8[] = {1, 2, 1, 2, 1, 1, 2, 1};
    roundtrip_one(dir, 0, NULL, 0);
    roundtrip_one(dir, 0, NULL, 1);
    roundtrip_one(dir, 1, s1, 1);
    roundtrip_one(dir, 1, z1, 0);
    roundtrip_one(dir, 2, s2, 1);
    roundtrip_one(dir, 3, s3, 0);
    roundtrip_one(dir, 3, z3, 0);
    roundtrip_one(dir, 8, s8, 1);
    /* 0-d: ndim 0, one element */
    double v = 2.5, *y = NULL;
    size_t nd = 9, sh[NH_NPY_MAXDIM];
    char path[1024];
    path_in(path, sizeof path, dir, "scalar.npy");
    nh_check(nh_npy_write(path, &v, 0, NULL) == NH_OK, "write 0-d");
    nh_check(nh_npy_read(path, &y, &nd, sh) == NH_OK && nd == 0 && y && y[0] == 2.5, "read 0-d");
    free(y);
    /* overwrite keeps one file, no temporaries */
    nh_check(nh_npy_write(path, &v, 0, NULL) == NH_OK, "overwrite");
    char names[256];
    list_dir(dir, names, sizeof names);
    nh_check(strcmp(names, "scalar.npy") == 0, "only scalar.npy left, got \"%s\"", names);
    unlink(path);
    remove_dir(dir);
}

/* ================================================================ dtypes */

/* Store the low `size` bytes of bits in the given byte order. */
static void put_bits(unsigned char *p, uint64_t bits, size_t size, int big) {
    for (size_t b = 0; b < size; b++) p[big ? size - 1 - b : b] = (unsigned char)(bits >> (8 * b));
}

typedef struct dtype_case {
    const char *code; /* without byte order, e.g. "i2" */
    size_t size;
    uint64_t bits[4];
    double want[4];
} dtype_case;

static uint64_t f64_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static uint64_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static int host_big(void) {
    uint16_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    return c == 0;
}

/* Parse one 4-element array of a dtype with a byte-order prefix. */
static void dtype_one(const dtype_case *c, char order) {
    char header[128], descr[8];
    int big = order == '>' || ((order == '=' || order == 0) && host_big());
    snprintf(descr, sizeof descr, "%c%s", order, c->code);
    if (order == 0) snprintf(descr, sizeof descr, "%s", c->code);
    snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (4,), }\n", descr);
    unsigned char data[32];
    for (int i = 0; i < 4; i++) put_bits(data + (size_t)i * c->size, c->bits[i], c->size, big);
    npybuf b;
    npy_build(&b, 1, header, data, 4 * c->size);
    double *x = NULL;
    size_t nd, sh[NH_NPY_MAXDIM];
    nh_status st = parse_exact(b.b, b.n, &x, &nd, sh);
    int ok = st == NH_OK && nd == 1 && sh[0] == 4;
    for (int i = 0; ok && i < 4; i++) ok = memcmp(&x[i], &c->want[i], 8) == 0;
    nh_check(ok, "dtype '%s' values (%s)", descr, nh_last_error());
    free(x);
}

static void test_dtypes(void) {
    const float f32v[4] = {1.5f, -0.1f, 3.4e38f, -0.0f};
    const dtype_case cases[] = {
        {"f8", 8, {f64_bits(0.1), f64_bits(-2.5e-300), f64_bits(1e308), f64_bits(-0.0)},
         {0.1, -2.5e-300, 1e308, -0.0}},
        {"f4", 4, {f32_bits(f32v[0]), f32_bits(f32v[1]), f32_bits(f32v[2]), f32_bits(f32v[3])},
         {1.5, (double)-0.1f, (double)3.4e38f, -0.0}},
        {"i8", 8, {(uint64_t)INT64_MIN, (uint64_t)-3, (uint64_t)1 << 40, (uint64_t)1 << 53},
         {-9223372036854775808.0, -3, 1099511627776.0, 9007199254740992.0}},
        {"i4", 4, {0x80000000u, 0xfffffffbu, 70000, 0x7fffffff}, {-2147483648.0, -5, 70000, 2147483647.0}},
        {"i2", 2, {0x8000, 0xfffe, 300, 0x7fff}, {-32768, -2, 300, 32767}},
        {"i1", 1, {0x80, 0xff, 0, 0x7f}, {-128, -1, 0, 127}},
        {"u8", 8, {0, UINT64_MAX, 12345, (uint64_t)1 << 63},
         {0, 18446744073709551616.0, 12345, 9223372036854775808.0}},
        {"u4", 4, {0, 0xffffffffu, 16909060, 7}, {0, 4294967295.0, 16909060, 7}},
        {"u2", 2, {0, 0xffff, 258, 1}, {0, 65535, 258, 1}},
        {"u1", 1, {0, 1, 200, 255}, {0, 1, 200, 255}},
        {"b1", 1, {0, 1, 2, 0}, {0, 1, 1, 0}}, /* any nonzero byte is True */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *orders = cases[i].size == 1 ? "|<>=" : "<>=";
        for (const char *o = orders; *o; o++) dtype_one(&cases[i], *o);
        dtype_one(&cases[i], 0); /* no byte-order character: native */
    }
}

/* ======================================================= header variants */

static void expect_ok_shape(const npybuf *b, size_t ndim, const size_t *shape, const double *want,
                            const char *what) {
    double *x = NULL;
    size_t nd, sh[NH_NPY_MAXDIM], count = 1;
    nh_status st = parse_exact(b->b, b->n, &x, &nd, sh);
    int ok = st == NH_OK && nd == ndim;
    for (size_t d = 0; ok && d < ndim; d++) { ok = sh[d] == shape[d]; count *= shape[d]; }
    for (size_t k = 0; ok && k < count; k++) ok = x[k] == want[k];
    nh_check(ok, "%s (%s)", what, nh_last_error());
    free(x);
}

static void test_versions(void) {
    const double d6[6] = {1, -2, 3, -4, 5, -6};
    const size_t s23[2] = {2, 3}, s6[1] = {6};
    npybuf b;
    const char *h = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }        \n";
    npy_build(&b, 2, h, d6, sizeof d6);
    expect_ok_shape(&b, 2, s23, d6, "version 2.0 (u32 header length)");
    npy_build(&b, 3, h, d6, sizeof d6);
    expect_ok_shape(&b, 2, s23, d6, "version 3.0 (utf-8 header)");
    static const char *const variants[] = {
        "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2, 3)}",
        "{'shape':(2,3),'fortran_order':False,'descr':'<f8'}",
        "  {  'fortran_order' :False ,\t'shape' : ( 2 , 3 , ) , 'descr':'<f8' , }  \n",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }\n",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\r\n",
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        npy_build(&b, 1, variants[i], d6, sizeof d6);
        expect_ok_shape(&b, 2, s23, d6, variants[i]);
    }
    npy_build(&b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", d6, sizeof d6);
    expect_ok_shape(&b, 1, s6, d6, "1-d (6,)");
    npy_build(&b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", d6, 8);
    expect_ok_shape(&b, 0, NULL, d6, "0-d () has one element");
    npy_build(&b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }", NULL, 0);
    expect_ok_shape(&b, 2, (const size_t[]){0, 5}, NULL, "empty (0, 5)");
}

/* ============================================================== malformed */

typedef struct bad_case {
    const char *header;
    size_t dlen; /* bytes of data appended */
    nh_status want;
    const char *needle;
} bad_case;

static void test_malformed(void) {
    static const unsigned char zeros[256];
    static const bad_case cases[] = {
        {"{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 48, NH_EFORMAT, "np.ascontiguousarray"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16, NH_EFORMAT, "'|O'"},
        {"{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", 32, NH_EFORMAT, "'<c16'"},
        {"{'descr': '<U5', 'fortran_order': False, 'shape': (2,), }", 40, NH_EFORMAT, "'<U5'"},
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4, NH_EFORMAT, "unsupported dtype"},
        {"{'descr': '|f8', 'fortran_order': False, 'shape': (2,), }", 16, NH_EFORMAT, "unsupported dtype"},
        {"{'descr': '<i3', 'fortran_order': False, 'shape': (2,), }", 6, NH_EFORMAT, "unsupported dtype"},
        {"{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (2,), }", 16, NH_EFORMAT, "unsupported dtype"},
        {"{'descr': '', 'fortran_order': False, 'shape': (2,), }", 16, NH_EFORMAT, "unsupported dtype"},
        {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", 16, NH_EFORMAT, "structured"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }", 88, NH_EFORMAT,
         "data has 88 bytes, header shape (4, 3) of <f8 needs 96"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }", 104, NH_EFORMAT, "trailing"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 0, NH_EFORMAT, "needs 8"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 8, NH_EFORMAT,
         "more than 8 dimensions"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", 8, NH_EFORMAT, "negative"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (a,), }", 8, NH_EFORMAT, "non-negative integer"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1.5,), }", 8, NH_EFORMAT, "expected"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }", 8,
         NH_EFORMAT, "too large"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 8,
         NH_EFORMAT, "too many elements"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3037000500, 3037000500), }", 8,
         NH_EFORMAT, "too many elements"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3), }", 24, NH_EFORMAT, "not a tuple"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,,), }", 24, NH_EFORMAT, "expected"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': [3], }", 24, NH_EFORMAT, "expected"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,) ", 24, NH_EFORMAT, "expected"},
        {"{'descr': '<f8', 'fortran_order': False, }", 8, NH_EFORMAT, "'shape' missing"},
        {"{'descr': '<f8', 'shape': (1,), }", 8, NH_EFORMAT, "'fortran_order' missing"},
        {"{'fortran_order': False, 'shape': (1,), }", 8, NH_EFORMAT, "'descr' missing"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}", 8, NH_EFORMAT, "unexpected key"},
        {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}", 8, NH_EFORMAT, "repeated"},
        {"{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}", 8, NH_EFORMAT, "True or False"},
        {"{'descr': '<f8', 'fortran_order': False 'shape': (1,)}", 8, NH_EFORMAT, "expected"},
        {"{'descr': '<f8, 'fortran_order': False, 'shape': (1,)}", 8, NH_EFORMAT, "unsupported dtype"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,)", 8, NH_EFORMAT, "expected"},
        {"{'descr': \"<f8', 'fortran_order': False, 'shape': (1,)}", 8, NH_EFORMAT, "closing quote"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} x", 8, NH_EFORMAT, "after '}'"},
        {"'descr': '<f8', 'fortran_order': False, 'shape': (1,)", 8, NH_EFORMAT, "'{'"},
        {"", 8, NH_EFORMAT, "'{'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_parse(cases[i].header, zeros, cases[i].dlen, cases[i].want, cases[i].needle);

    /* preamble problems */
    const char *good = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n";
    npybuf b;
    double *x = NULL;
    size_t nd, sh[NH_NPY_MAXDIM];
    npy_build(&b, 1, good, zeros, 8);
    b.b[10 + 15] = '\0'; /* a NUL byte in the header, after "'<f8'," */
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_EFORMAT, "expected", "NUL in header");
    npy_build(&b, 1, good, zeros, 8);
    b.b[0] = 'X';
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_EFORMAT, "bad magic", "bad magic");
    npy_build(&b, 4, good, zeros, 8);
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_EFORMAT, "version 4.0", "version 4.0");
    npy_build(&b, 1, good, zeros, 8);
    b.b[7] = 1;
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_EFORMAT, "version 1.1", "version 1.1");
    npy_build(&b, 1, good, zeros, 8);
    b.b[9] = 0x40; /* header length 16K + ... beyond the buffer */
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_EFORMAT, "truncated", "header length > buffer");
    npy_build(&b, 2, good, zeros, 8);
    b.b[11] = 0x7f; /* 2 GB header length: refused before any allocation */
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_EFORMAT, "limit", "huge v2 header length");
    check_status(parse_exact("", 0, &x, &nd, sh), NH_EFORMAT, "truncated", "empty buffer");
    check_status(parse_exact("\x93NUM", 4, &x, &nd, sh), NH_EFORMAT, "truncated", "4-byte prefix of magic");
    check_status(parse_exact("PK\x03\x04", 4, &x, &nd, sh), NH_EFORMAT, "bad magic", "a zip (.npz) file");
    check_status(nh_npy_parse(NULL, 10, &x, &nd, sh), NH_EINVAL, NULL, "NULL buffer");
    check_status(nh_npy_parse(b.b, b.n, NULL, &nd, sh), NH_EINVAL, NULL, "NULL data");
}

/* ============================================================ truncation */

/* Every proper prefix of a valid file must fail cleanly (from memory and,
 * for version 1.0, from a file), and single-byte corruptions must never
 * crash. */
static void truncation_of(const npybuf *b, const char *what, const char *dir) {
    size_t bad_at = SIZE_MAX, bad_file_at = SIZE_MAX;
    char path[1024];
    path_in(path, sizeof path, dir, "trunc.npy");
    for (size_t k = 0; k < b->n; k++) {
        double dummy, *x = &dummy; /* must be reset to NULL */
        size_t nd, sh[NH_NPY_MAXDIM];
        nh_status st = parse_exact(b->b, k, &x, &nd, sh);
        if ((st != NH_EFORMAT || x != NULL) && bad_at == SIZE_MAX) bad_at = k;
        if (dir) {
            write_bytes(path, b->b, k);
            x = NULL;
            st = nh_npy_read(path, &x, &nd, sh);
            if ((st != NH_EFORMAT || x != NULL) && bad_file_at == SIZE_MAX) bad_file_at = k;
        }
    }
    nh_check(bad_at == SIZE_MAX, "%s: every prefix (0..%zu bytes) gives NH_EFORMAT, first bad %zu", what,
             b->n - 1, bad_at);
    if (dir) {
        nh_check(bad_file_at == SIZE_MAX, "%s: every truncated file gives NH_EFORMAT, first bad %zu", what,
                 bad_file_at);
        unlink(path);
    }
    /* corrupt each byte in turn: any status is fine, no crash, no leak */
    size_t oks = 0;
    for (size_t k = 0; k < b->n; k++) {
        static const unsigned char vals[] = {0x00, 0x7f, 0x80, 0xff, '(', ')', ',', '\'', '9', ' '};
        for (size_t v = 0; v < sizeof vals; v++) {
            npybuf c = *b;
            c.b[k] = vals[v];
            double *x = NULL;
            size_t nd, sh[NH_NPY_MAXDIM];
            if (parse_exact(c.b, c.n, &x, &nd, sh) == NH_OK) oks++;
            free(x);
        }
    }
    nh_check(1, "%s: %zu single-byte corruptions survived (%zu parsed OK)", what, b->n * 10, oks);
    double *x = NULL;
    size_t nd, sh[NH_NPY_MAXDIM];
    nh_check(parse_exact(b->b, b->n, &x, &nd, sh) == NH_OK, "%s: the full buffer parses", what);
    free(x);
}

static void test_truncation(void) {
    char dir[1024];
    make_subdir(dir, sizeof dir, "trunc");
    const double d6[6] = {1, 2, 3, 4, 5, 6};
    const float f6[6] = {1, 2, 3, 4, 5, 6};
    npybuf b;
    npy_build(&b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n", d6, sizeof d6);
    truncation_of(&b, "v1.0 <f8", dir);
    npy_build(&b, 2, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }\n", f6, sizeof f6);
    truncation_of(&b, "v2.0 >f4", dir);
    npy_build(&b, 3, "{'descr': '|u1', 'fortran_order': False, 'shape': (), }\n", "\x07", 1);
    truncation_of(&b, "v3.0 |u1 0-d", NULL);
    remove_dir(dir);
}

/* ================================================================ limits */

static void test_limits(void) {
    char dir[1024], path[1024];
    make_subdir(dir, sizeof dir, "limits");
    npybuf b;
    double *x = NULL;
    size_t nd, sh[NH_NPY_MAXDIM];
    /* 8 TB of doubles: NH_ETOOLARGE, never a malloc */
    npy_build(&b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }", NULL, 0);
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_ETOOLARGE, "memory limit", "8 TB shape");
    path_in(path, sizeof path, dir, "huge.npy");
    write_bytes(path, b.b, b.n);
    check_status(nh_npy_read(path, &x, &nd, sh), NH_ETOOLARGE, "huge.npy", "8 TB shape from a file");
    /* a small limit makes a small array too large; f4 -> 8 bytes per double */
    nh_set_mem_limit(1000);
    npy_build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (200,), }", (char[800]){0}, 800);
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_ETOOLARGE, "memory limit", "1600 B > 1000 B limit");
    nh_set_mem_limit(0);
    nh_check(parse_exact(b.b, b.n, &x, &nd, sh) == NH_OK && nd == 1 && sh[0] == 200, "default limit");
    free(x);
    x = NULL;
    /* allocation failures: parse has one allocation, read two (header, data) */
    nh__alloc_fail_at(1);
    check_status(parse_exact(b.b, b.n, &x, &nd, sh), NH_ENOMEM, NULL, "parse, allocation fails");
    write_bytes(path, b.b, b.n);
    for (long k = 1; k <= 2; k++) {
        nh__alloc_fail_at(k);
        check_status(nh_npy_read(path, &x, &nd, sh), NH_ENOMEM, NULL, "read, allocation fails");
        nh_check(x == NULL, "data NULL after ENOMEM");
    }
    nh__alloc_fail_at(0);
    unlink(path);
    remove_dir(dir);
}

/* ====================================================== read/write errors */

static void test_file_errors(void) {
    char dir[1024], path[1024], names[1024];
    make_subdir(dir, sizeof dir, "ferr");
    double *x = NULL, v[3] = {1, 2, 3};
    size_t nd, sh[NH_NPY_MAXDIM], s3[1] = {3};
    path_in(path, sizeof path, dir, "missing.npy");
    check_status(nh_npy_read(path, &x, &nd, sh), NH_EIO, "missing.npy: cannot open: No such file",
                 "read missing file");
    check_status(nh_npy_read(dir, &x, &nd, sh), NH_EIO, "directory", "read a directory");
    path_in(path, sizeof path, dir, "nodir/x.npy");
    check_status(nh_npy_write(path, v, 1, s3), NH_EIO, "nodir/x.npy", "write into a missing directory");
    check_status(nh_npy_write(NULL, v, 1, s3), NH_EINVAL, NULL, "write NULL path");
    path_in(path, sizeof path, dir, "x.npy");
    check_status(nh_npy_write(path, NULL, 1, s3), NH_EINVAL, NULL, "write NULL data");
    check_status(nh_npy_write(path, v, 9, (size_t[9]){1, 1, 1, 1, 1, 1, 1, 1, 3}), NH_EINVAL, "ndim 9",
                 "write ndim 9");
    check_status(nh_npy_write(path, v, 2, (size_t[2]){SIZE_MAX, 3}), NH_ETOOLARGE, NULL, "write overflow");
    check_status(nh_npy_read(NULL, &x, &nd, sh), NH_EINVAL, NULL, "read NULL path");
    /* a failed write leaves the good file and no temporary behind */
    nh_check(nh_npy_write(path, v, 1, s3) == NH_OK, "write good x.npy");
    nh__alloc_fail_at(1);
    check_status(nh_npy_write(path, (double[3]){7, 8, 9}, 1, s3), NH_ENOMEM, NULL, "write, allocation fails");
    nh__alloc_fail_at(0);
    nh_check(nh_npy_read(path, &x, &nd, sh) == NH_OK && x[0] == 1 && x[2] == 3, "good file intact");
    free(x);
    /* rename onto a non-empty directory fails: EIO, temporary removed */
    char sub[1024], inner[1024];
    path_in(sub, sizeof sub, dir, "sub.npy");
    mkdir(sub, 0700);
    path_in(inner, sizeof inner, sub, "keep");
    write_text(inner, "k");
    check_status(nh_npy_write(sub, v, 1, s3), NH_EIO, "rename", "rename onto a directory");
    list_dir(dir, names, sizeof names);
    nh_check(strcmp(names, "sub.npy x.npy") == 0, "no temporaries after failures: \"%s\"", names);
    remove_dir(sub);
    unlink(path);
    remove_dir(dir);
}

/* ================================================================ models */

static const size_t kWidths[4] = {3, 5, 4, 2};

/* The formula model of make_numpy_model.py: tanh, beta 0.25, mean field. */
static nh_net *formula_net(void) {
    nh_net_config c = nh_net_config_default();
    c.depth = 3;
    c.widths = kWidths;
    c.act = NH_ACT_TANH;
    c.beta = 0.25;
    c.param = NH_PARAM_MF;
    nh_net *net = NULL;
    if (nh_net_create(&c, &net) != NH_OK) return NULL;
    double *th = nh_net_params(net);
    for (size_t l = 0; l < 3; l++) {
        for (size_t k = 0; k < kWidths[l] * kWidths[l + 1]; k++)
            th[nh_net_offset_W(net, l) + k] = formula(100 * (long)l, k);
        for (size_t k = 0; k < kWidths[l + 1]; k++)
            th[nh_net_offset_b(net, l) + k] = formula(100 * (long)l + 50, k);
    }
    return net;
}

/* Same architecture, hyper-parameters and bitwise-same theta. */
static int nets_equal(const nh_net *a, const nh_net *b) {
    if (!a || !b || nh_net_depth(a) != nh_net_depth(b) || nh_net_act(a) != nh_net_act(b) ||
        nh_net_param(a) != nh_net_param(b) || nh_net_nparams(a) != nh_net_nparams(b) ||
        memcmp(&(double){nh_net_beta(a)}, &(double){nh_net_beta(b)}, 8) != 0)
        return 0;
    if (memcmp(nh_net_widths(a), nh_net_widths(b), (nh_net_depth(a) + 1) * sizeof(size_t))) return 0;
    return memcmp(nh_net_params_const(a), nh_net_params_const(b), nh_net_nparams(a) * 8) == 0;
}

static void test_model_roundtrip(void) {
    char dir[1024], names[1024];
    path_in(dir, sizeof dir, g_root, "model"); /* nh_model_save creates it */
    nh_net_config c = nh_net_config_default();
    const size_t w[3] = {4, 6, 3};
    c.depth = 2;
    c.widths = w;
    c.act = NH_ACT_GELU;
    c.beta = 0.1 + 0.2; /* 0.30000000000000004: needs 17 digits */
    c.param = NH_PARAM_MF;
    nh_net *net = NULL, *back = NULL;
    nh_check(nh_net_create(&c, &net) == NH_OK, "create net (%s)", nh_last_error());
    if (!net) return;
    nh_net_init_normal(net, 42);
    nh_check(nh_model_save(dir, net) == NH_OK, "save model (%s)", nh_last_error());
    nh_check(nh_model_load(dir, &back) == NH_OK && nets_equal(net, back), "load == saved, bitwise (%s)",
             nh_last_error());
    nh_net_free(back);
    back = NULL;
    c.param = NH_PARAM_NTK;
    c.act = NH_ACT_SOFTPLUS;
    nh_net *net2 = NULL;
    nh_net_create(&c, &net2);
    nh_net_init_normal(net2, 7);
    nh_check(nh_model_save(dir, net2) == NH_OK, "save over an existing model (%s)", nh_last_error());
    nh_check(nh_model_load(dir, &back) == NH_OK && nets_equal(net2, back), "reload the overwrite");
    list_dir(dir, names, sizeof names);
    nh_check(strcmp(names, "W0.npy W1.npy b0.npy b1.npy config.json") == 0, "model files only: \"%s\"",
             names);
    nh_net_free(back);
    nh_net_free(net);
    nh_net_free(net2);
    remove_dir(dir);
}

/* Overwrite config.json in dir, load, expect a status and message part. */
static void expect_config(const char *dir, const char *json, nh_status want, const char *needle) {
    char path[1024];
    path_in(path, sizeof path, dir, "config.json");
    write_text(path, json);
    static double dummy;
    nh_net *net = (nh_net *)(void *)&dummy; /* must be reset to NULL on failure */
    nh_status st = nh_model_load(dir, &net);
    check_status(st, want, needle, json);
    if (st != NH_OK) nh_check(net == NULL, "*out NULL after failure");
    else nh_net_free(net);
}

static void test_model_config_errors(void) {
    char dir[1024], path[1024];
    path_in(dir, sizeof dir, g_root, "cfg");
    nh_net *net = formula_net();
    nh_check(net && nh_model_save(dir, net) == NH_OK, "save formula model (%s)", nh_last_error());
    nh_net_free(net);
    const char *W = "\"widths\": [3, 5, 4, 2]";
    char json[512];
    /* optional keys take their defaults */
    snprintf(json, sizeof json, "{%s, \"act\": \"tanh\"}", W);
    path_in(path, sizeof path, dir, "config.json");
    write_text(path, json);
    net = NULL;
    nh_check(nh_model_load(dir, &net) == NH_OK && nh_net_beta(net) == 0.1 &&
                 nh_net_param(net) == NH_PARAM_NTK && nh_net_act(net) == NH_ACT_TANH,
             "defaults beta 0.1, param ntk (%s)", nh_last_error());
    nh_net_free(net);
    expect_config(dir, "not json", NH_EFORMAT, "config.json: invalid JSON near line 1");
    expect_config(dir, "{\n\"act\": \"tanh\",\n \"widths\": [3, 5,, 4]}", NH_EFORMAT, "line 3");
    expect_config(dir, "[3, 5, 4, 2]", NH_EFORMAT, "must be a JSON object");
    expect_config(dir, "{\"act\": \"tanh\"}", NH_EFORMAT, "config.json: key 'widths' missing");
    expect_config(dir, "{\"widths\": [3], \"act\": \"tanh\"}", NH_EFORMAT, ">= 2 positive integers");
    expect_config(dir, "{\"widths\": \"3,5\", \"act\": \"tanh\"}", NH_EFORMAT, ">= 2 positive integers");
    expect_config(dir, "{\"widths\": [3, 0, 4, 2], \"act\": \"tanh\"}", NH_EFORMAT, "entry 1");
    expect_config(dir, "{\"widths\": [3, 5, 4.5, 2], \"act\": \"tanh\"}", NH_EFORMAT, "entry 2");
    expect_config(dir, "{\"widths\": [3, -5, 4, 2], \"act\": \"tanh\"}", NH_EFORMAT, "entry 1");
    expect_config(dir, "{\"widths\": [3, \"5\", 4, 2], \"act\": \"tanh\"}", NH_EFORMAT, "entry 1");
    snprintf(json, sizeof json, "{%s}", W);
    expect_config(dir, json, NH_EFORMAT, "key 'act' missing");
    snprintf(json, sizeof json, "{%s, \"act\": 3}", W);
    expect_config(dir, json, NH_EFORMAT, "key 'act' must be a string");
    snprintf(json, sizeof json, "{%s, \"act\": \"swish\"}", W);
    expect_config(dir, json, NH_EFORMAT, "unknown activation 'swish'");
    snprintf(json, sizeof json, "{%s, \"act\": \"tanh\", \"beta\": \"0.1\"}", W);
    expect_config(dir, json, NH_EFORMAT, "key 'beta'");
    snprintf(json, sizeof json, "{%s, \"act\": \"tanh\", \"beta\": 1e999}", W);
    expect_config(dir, json, NH_EFORMAT, "key 'beta' must be a finite number");
    snprintf(json, sizeof json, "{%s, \"act\": \"tanh\", \"param\": \"sp\"}", W);
    expect_config(dir, json, NH_EFORMAT, "key 'param'");
    snprintf(json, sizeof json, "{%s, \"act\": \"tanh\", \"P\": 100}", W);
    expect_config(dir, json, NH_EFORMAT, "key 'P' is 100 but the widths give 54");
    snprintf(json, sizeof json, "{%s, \"act\": \"tanh\", \"P\": 54, \"note\": [1, {}]}", W);
    expect_config(dir, json, NH_OK, NULL);
    expect_config(dir, "{\"widths\": [3, 5, 2], \"act\": \"tanh\"}", NH_ESHAPE, "W1.npy: expected shape (2, 5), got (4, 5)");
    /* over the 1 MB cap */
    size_t big = (1u << 20) + 10;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    expect_config(dir, huge, NH_ETOOLARGE, "limit");
    free(huge);
    unlink(path);
    net = NULL;
    check_status(nh_model_load(dir, &net), NH_EIO, "config.json: cannot open", "no config.json");
    check_status(nh_model_load(NULL, &net), NH_EINVAL, NULL, "load NULL dir");
    remove_dir(dir);
}

/* Replace one array file, load, expect a status, then restore the model. */
static void expect_array(const char *dir, const char *name, const double *x, size_t ndim,
                         const size_t *shape, nh_status want, const char *needle) {
    char path[1024];
    path_in(path, sizeof path, dir, name);
    if (x) nh_npy_write(path, x, ndim, shape);
    else unlink(path);
    nh_net *net = NULL;
    nh_status st = nh_model_load(dir, &net);
    check_status(st, want, needle, name);
    nh_net_free(net);
    nh_net *good = formula_net();
    nh_model_save(dir, good);
    nh_net_free(good);
}

static void test_model_array_errors(void) {
    char dir[1024], path[1024];
    path_in(dir, sizeof dir, g_root, "arr");
    nh_net *net = formula_net();
    nh_check(net && nh_model_save(dir, net) == NH_OK, "save formula model");
    nh_net_free(net);
    double buf[64] = {0};
    expect_array(dir, "W1.npy", buf, 2, (size_t[]){5, 4}, NH_ESHAPE, "W1.npy: expected shape (4, 5), got (5, 4)");
    expect_array(dir, "W0.npy", buf, 1, (size_t[]){15}, NH_ESHAPE, "W0.npy: expected shape (5, 3), got (15,)");
    expect_array(dir, "b0.npy", buf, 2, (size_t[]){5, 1}, NH_ESHAPE, "b0.npy: expected shape (5,), got (5, 1)");
    expect_array(dir, "b2.npy", buf, 0, NULL, NH_ESHAPE, "b2.npy: expected shape (2,), got ()");
    buf[3] = NAN;
    buf[5] = INFINITY;
    expect_array(dir, "W2.npy", buf, 2, (size_t[]){2, 4}, NH_ENONFINITE,
                 "W2.npy: 2 non-finite value(s), first at flat index 3 = [0, 3]");
    expect_array(dir, "b1.npy", NULL, 0, NULL, NH_EIO, "b1.npy: cannot open");
    path_in(path, sizeof path, dir, "W0.npy");
    write_text(path, "garbage, not a .npy file");
    net = NULL;
    check_status(nh_model_load(dir, &net), NH_EFORMAT, "W0.npy: not a .npy file", "corrupt W0.npy");
    net = formula_net();
    nh_model_save(dir, net);
    nh_net_free(net);
    /* every allocation failure is reported and leaks nothing */
    long k;
    nh_status st = NH_ENOMEM;
    int all_enomem = 1;
    for (k = 1; k < 100 && st == NH_ENOMEM; k++) {
        nh__alloc_fail_at(k);
        net = NULL;
        st = nh_model_load(dir, &net);
        if (st != NH_OK && (st != NH_ENOMEM || net)) all_enomem = 0;
        nh_net_free(net);
    }
    nh__alloc_fail_at(0);
    nh_check(st == NH_OK && all_enomem, "load with allocation %ld.. failing: ENOMEM each time, then OK",
             k - 1);
    remove_dir(dir);
}

static void test_model_save_errors(void) {
    char dir[1024], file[1024];
    nh_net *net = formula_net();
    path_in(dir, sizeof dir, g_root, "no/such/dir");
    check_status(nh_model_save(dir, net), NH_EIO, "cannot create directory", "save under a missing parent");
    path_in(file, sizeof file, g_root, "plainfile");
    write_text(file, "x");
    check_status(nh_model_save(file, net), NH_EIO, "not a directory", "save onto a regular file");
    unlink(file);
    path_in(dir, sizeof dir, g_root, "nan");
    nh_net_params(net)[7] = NAN;
    check_status(nh_model_save(dir, net), NH_ENONFINITE, "theta[7]", "save a NaN parameter");
    nh_check(access(dir, F_OK) != 0, "nothing written for a NaN model");
    check_status(nh_model_save(dir, NULL), NH_EINVAL, NULL, "save NULL net");
    nh_net_free(net);
}

/* ================================================================= NumPy */

/* Locate tests/data/make_numpy_model.py: $NH_TEST_DATA, ./tests/data, or
 * relative to the binary (build/tests/test_io). */
static int find_script(void) {
    const char *env = getenv("NH_TEST_DATA");
    char cand[3][1024];
    snprintf(cand[0], sizeof cand[0], "%s/make_numpy_model.py", env ? env : "");
    snprintf(cand[1], sizeof cand[1], "tests/data/make_numpy_model.py");
    const char *slash = strrchr(g_argv0, '/');
    snprintf(cand[2], sizeof cand[2], "%.*s/../../tests/data/make_numpy_model.py",
             slash ? (int)(slash - g_argv0) : 1, slash ? g_argv0 : ".");
    for (int i = env ? 0 : 1; i < 3; i++)
        if (access(cand[i], R_OK) == 0) { snprintf(g_script, sizeof g_script, "%s", cand[i]); return 1; }
    return 0;
}

/* Run the script with a mode and directory; 1 on exit status 0. */
static int run_script(const char *mode, const char *dir) {
    char cmd[3072];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' %s '%s'", g_script, mode, dir);
    fflush(stdout);
    int rc = system(cmd);
    return rc == 0;
}

/* Load a model NumPy wrote (with a float32 and a big-endian file). */
static void numpy_to_c(void) {
    char dir[1024];
    make_subdir(dir, sizeof dir, "from_numpy");
    nh_check(run_script("write", dir), "make_numpy_model.py write %s", dir);
    nh_net *net = NULL, *want = formula_net();
    nh_status st = nh_model_load(dir, &net);
    nh_check(st == NH_OK, "load the NumPy-written model (%s)", nh_last_error());
    if (st == NH_OK) {
        /* b0 was stored as float32: the expected values are rounded to float */
        double *th = nh_net_params(want);
        for (size_t k = 0; k < kWidths[1]; k++) {
            size_t i = nh_net_offset_b(want, 0) + k;
            th[i] = (double)(float)th[i];
        }
        nh_check(nets_equal(net, want), "NumPy model == formula (<f8, <f4 b0, >f8 W1), bitwise");
    }
    nh_net_free(net);
    nh_net_free(want);
    remove_dir(dir);
}

/* NumPy loads what ntkhess writes: a model and arrays of several ranks. */
static void c_to_numpy(void) {
    char dir[1024], path[1024];
    path_in(dir, sizeof dir, g_root, "to_numpy");
    nh_net *net = formula_net();
    nh_check(nh_model_save(dir, net) == NH_OK, "save formula model for NumPy");
    nh_net_free(net);
    nh_check(run_script("check", dir), "make_numpy_model.py check: NumPy reads our model");
    remove_dir(dir);
    make_subdir(dir, sizeof dir, "arrays_to_numpy");
    static const struct { size_t ndim, shape[3]; const char *name; } arrs[] = {
        {0, {0}, "a_.npy"}, {1, {7}, "a_7.npy"}, {1, {0}, "a_0.npy"},
        {2, {3, 4}, "a_3x4.npy"}, {3, {2, 3, 4}, "a_2x3x4.npy"}};
    double x[24];
    for (size_t k = 0; k < 24; k++) x[k] = formula(0, k);
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        path_in(path, sizeof path, dir, arrs[i].name);
        nh_check(nh_npy_write(path, x, arrs[i].ndim, arrs[i].shape) == NH_OK, "write %s", arrs[i].name);
    }
    nh_check(run_script("arrays", dir), "make_numpy_model.py arrays: NumPy reads 0-d..3-d arrays");
    remove_dir(dir);
}

static void test_numpy(void) {
    int have_py = access("/usr/bin/python3", X_OK) == 0;
    nh_check(have_py, "/usr/bin/python3 exists (python3-numpy is a hard dependency of test_io)");
    int have_script = find_script();
    nh_check(have_script, "tests/data/make_numpy_model.py found (run from the repository root or set "
                          "NH_TEST_DATA)");
    if (!have_py || !have_script) return;
    numpy_to_c();
    c_to_numpy();
}

/* ================================================================== main */

int main(int argc, char **argv) {
    (void)argc;
    g_argv0 = argv[0];
    const char *tmp = getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/nh_test_io.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_root)) {
        printf("FAIL: mkdtemp %s: %s\n", g_root, strerror(errno));
        return 1;
    }
    test_roundtrip();
    test_dtypes();
    test_versions();
    test_malformed();
    test_truncation();
    test_limits();
    test_file_errors();
    test_model_roundtrip();
    test_model_config_errors();
    test_model_array_errors();
    test_model_save_errors();
    test_numpy();
    char left[1024];
    list_dir(g_root, left, sizeof left);
    nh_check(left[0] == '\0', "every file the tests wrote was removed (left: \"%s\")", left);
    remove_dir(g_root);
    nh_check(access(g_root, F_OK) != 0, "temporary directory %s removed", g_root);
    NH_TEST_END();
}
