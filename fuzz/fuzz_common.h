/* fuzz_common.h -- helpers shared by the libFuzzer targets (header-only:
 * each target is one translation unit that includes it once).
 *
 *  - nhf_init(): once per process; sets the library's memory limit to
 *    NHF_MEM_LIMIT (so a tiny header claiming a huge but "valid" array is
 *    refused with NH_ETOOLARGE instead of tripping libFuzzer's malloc limit)
 *    and creates a private scratch directory (NH_FUZZ_TMPDIR, else /dev/shm,
 *    else $TMPDIR or /tmp), removed at exit.
 *  - files: nhf_path, nhf_write, nhf_rmtree, nhf_mkdir.
 *  - nhf_split(): cut an input at a delimiter (the multi-file targets).
 *  - NHF_CHECK(): a failed invariant aborts with a message, which libFuzzer
 *    records as a crash like any sanitizer report (written to fd 2 directly,
 *    so the CLI shim's stderr redirection does not hide it).
 *  - with NHF_WANT_CLI defined: the other half of cli_shim.h (exit -> longjmp).
 */
#ifndef NH_FUZZ_COMMON_H
#define NH_FUZZ_COMMON_H

#include "ntkhess.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NHF_MEM_LIMIT
#define NHF_MEM_LIMIT ((size_t)64 << 20)
#endif

static char nhf_base[512];
static int nhf_debug = -1;

/* NH_FUZZ_DEBUG=1: print each reader's status (to check what seeds reach). */
static void nhf_note(const char *what, nh_status st) {
    if (nhf_debug < 0) nhf_debug = getenv("NH_FUZZ_DEBUG") != NULL;
    if (nhf_debug) dprintf(2, "  %s: %s%s%s\n", what, nh_strerror(st), st ? " -- " : "", st ? nh_last_error() : "");
}

#define NHF_CHECK(cond, ...)                                                        \
    do {                                                                            \
        if (!(cond)) {                                                              \
            dprintf(2, "\n*** invariant failed at %s:%d: %s\n*** ", __FILE__,        \
                    __LINE__, #cond);                                               \
            dprintf(2, __VA_ARGS__);                                                \
            dprintf(2, "\n*** last library error: %s\n", nh_last_error());          \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* Harness failure (not a finding): say so and stop. */
#define NHF_SETUP(cond, what)                                                       \
    do {                                                                            \
        if (!(cond)) {                                                              \
            dprintf(2, "fuzz harness: %s: %s\n", (what), strerror(errno));         \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* Remove path: a file, or a directory and everything below it. */
static void nhf_rmtree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            char sub[1024];
            while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                    nhf_rmtree(sub);
                }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void nhf_cleanup(void) {
    if (nhf_base[0]) nhf_rmtree(nhf_base);
}

static int nhf_dir_ok(const char *d) {
    struct stat sb;
    return d && *d && stat(d, &sb) == 0 && S_ISDIR(sb.st_mode) && access(d, W_OK | X_OK) == 0;
}

static void nhf_init(void) {
    if (nhf_base[0]) return;
    nh_set_mem_limit(NHF_MEM_LIMIT);
    const char *dir = getenv("NH_FUZZ_TMPDIR");
    if (!nhf_dir_ok(dir)) dir = "/dev/shm";
    if (!nhf_dir_ok(dir)) dir = getenv("TMPDIR");
    if (!nhf_dir_ok(dir)) dir = "/tmp";
    snprintf(nhf_base, sizeof nhf_base, "%s/nhfuzz.XXXXXX", dir);
    NHF_SETUP(mkdtemp(nhf_base) != NULL, "mkdtemp");
    atexit(nhf_cleanup);
}

/* nhf_base + "/" + name in a static ring of buffers (up to 8 live at once). */
static const char *nhf_path(const char *name) {
    static char ring[8][1024];
    static unsigned k;
    char *p = ring[k++ % 8];
    snprintf(p, sizeof ring[0], "%s/%s", nhf_base, name);
    return p;
}

static void nhf_write(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    NHF_SETUP(f != NULL, path);
    NHF_SETUP(len == 0 || fwrite(data, 1, len, f) == len, path);
    NHF_SETUP(fclose(f) == 0, path);
}

static void nhf_mkdir(const char *path) {
    NHF_SETUP(mkdir(path, 0700) == 0 || errno == EEXIST, path);
}

/* Split data at every occurrence of delim into at most max parts (the last
 * part keeps any further delimiters).  Returns the number of parts (>= 1). */
static size_t nhf_split(const uint8_t *data, size_t size, const char *delim, const uint8_t **part,
                        size_t *plen, size_t max) {
    const size_t dl = strlen(delim);
    size_t n = 0, start = 0;
    for (size_t i = 0; n + 1 < max && i + dl <= size;) {
        if (memcmp(data + i, delim, dl) == 0) {
            part[n] = data + start;
            plen[n++] = i - start;
            i += dl;
            start = i;
        } else {
            i++;
        }
    }
    part[n] = data + start;
    plen[n++] = size - start;
    return n;
}

/* Read every double (so ASan sees an allocation shorter than claimed) and
 * count the non-finite ones. */
static size_t nhf_touch(const double *x, size_t n) {
    size_t bad = 0;
    volatile double sink = 0;
    for (size_t i = 0; i < n; i++) {
        sink += x[i];
        bad += !(x[i] - x[i] == 0);
    }
    (void)sink;
    return bad;
}

/* A copy of data[0..size) that ends exactly where a PROT_NONE page begins.
 * ASan only checks instrumented code; the system libcjson is not, so an
 * over-read by cJSON past the end of a length-bounded text would go
 * unnoticed in a malloc'ed buffer.  Here it faults (SEGV, a crash). */
static const char *nhf_guarded(const uint8_t *data, size_t size) {
    static uint8_t *base;
    static size_t cap;
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t need = (size + pg - 1) / pg * pg;
    if (need == 0) need = pg;
    if (need > cap) {
        if (base) munmap(base, cap + pg);
        base = mmap(NULL, need + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        NHF_SETUP(base != MAP_FAILED, "mmap");
        NHF_SETUP(mprotect(base + need, pg, PROT_NONE) == 0, "mprotect");
        cap = need;
    }
    uint8_t *p = base + cap - size;
    if (size) memcpy(p, data, size);
    return (const char *)p;
}

#ifdef NHF_WANT_CLI
/* The other half of cli_shim.h. */
static jmp_buf nhf_cli_jmp;
static volatile int nhf_cli_armed;
static volatile int nhf_cli_code;

_Noreturn void nh_fuzz_exit(int code) {
    if (nhf_cli_armed) {
        nhf_cli_armed = 0;
        nhf_cli_code = code & 0xff;
        longjmp(nhf_cli_jmp, 1);
    }
    (exit)(code);
}

FILE *nh_fuzz_stderr(void) {
#pragma push_macro("stderr")
#undef stderr
    static FILE *f;
    if (!f) f = getenv("NH_FUZZ_VERBOSE") ? stderr : fopen("/dev/null", "w");
    if (!f) f = stderr;
    return f;
#pragma pop_macro("stderr")
}

/* Run stmt, a CLI call that may exit(): rc = 0 when it returned, 1000 + the
 * exit code when it exited.  Not nestable.  Locals assigned inside stmt are
 * only meaningful when rc == 0. */
#define NHF_CLI_CALL(rc, stmt)                                                      \
    do {                                                                            \
        if (setjmp(nhf_cli_jmp) == 0) {                                             \
            nhf_cli_armed = 1;                                                      \
            stmt;                                                                   \
            nhf_cli_armed = 0;                                                      \
            (rc) = 0;                                                               \
        } else {                                                                    \
            (rc) = 1000 + nhf_cli_code;                                             \
        }                                                                           \
    } while (0)
#endif

#endif /* NH_FUZZ_COMMON_H */
