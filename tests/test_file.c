/* test_file.c -- the file module (src/io/file.c, src/io/hash.c): capped
 * reads, atomic writes, all-or-nothing output folders, the lock, SHA-256. */
#include "ntkhess.h"
#include "nh_test.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char root[256];

static const char *P(const char *name) {
    static char buf[4][512];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, name);
    return buf[k];
}
static int exists(const char *p) { struct stat sb; return lstat(p, &sb) == 0; }
static void put(const char *p, const char *text) {
    FILE *f = fopen(p, "w");
    if (f) { fputs(text, f); fclose(f); }
}
/* Number of entries of a folder (without . and ..), -1 if missing. */
static int count(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void test_read(void) {
    put(P("ten"), "0123456789");
    char *b = NULL;
    size_t n = 99;
    nh_check(nh_file_read(P("ten"), 10, &b, &n) == NH_OK && n == 10 && b[10] == 0 && !strcmp(b, "0123456789"),
             "read: a file of exactly cap bytes is read whole, NUL-terminated");
    free(b);
    nh_check(nh_file_read(P("ten"), 9, &b, &n) == NH_ETOOLARGE && b == NULL, "read: one byte over cap -> NH_ETOOLARGE (%s)",
             nh_last_error());
    double t0 = (double)clock();
    nh_check(nh_file_read("/dev/zero", 1 << 20, &b, &n) == NH_ETOOLARGE && b == NULL,
             "read: /dev/zero (a stream without size) stops at cap + 1 bytes");
    nh_check(((double)clock() - t0) / CLOCKS_PER_SEC < 1.0, "read: /dev/zero with a 1 MiB cap fails in under a second");
    nh_check(nh_file_read(P("missing"), 10, &b, &n) == NH_EIO, "read: a missing file -> NH_EIO");
    nh_check(nh_file_read(root, 10, &b, &n) == NH_EIO, "read: a folder -> NH_EIO");
    put(P("empty"), "");
    nh_check(nh_file_read(P("empty"), 0, &b, &n) == NH_OK && n == 0 && b && b[0] == 0, "read: empty file, cap 0");
    free(b);
}

static void test_write(void) {
    nh_check(nh_file_write(P("w.txt"), "first", 5) == NH_OK, "write: new file");
    nh_check(nh_file_write(P("w.txt"), "2nd", 3) == NH_OK, "write: replace");
    char *b = NULL;
    nh_check(nh_file_read(P("w.txt"), 100, &b, NULL) == NH_OK && !strcmp(b, "2nd"), "write: replaced whole (no tail of the old)");
    free(b);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", P("w.txt"), (long)getpid());
    nh_check(!exists(tmp), "write: no temporary left");
    nh_check(nh_file_write(P("nodir/x"), "a", 1) == NH_EIO && !exists(P("nodir")), "write: into a missing folder -> NH_EIO");
}

static void test_outdir(void) {
    nh_outdir *d = NULL;
    char fin[512]; /* P's buffers rotate: keep a copy */
    snprintf(fin, sizeof fin, "%s", P("a/b/out"));
    nh_check(nh_outdir_open(fin, &d) == NH_OK && d, "outdir: open creates missing parents (%s)", nh_last_error());
    if (!d) return;
    nh_check(!exists(fin) && exists(P("a/b/.out.partial")) && exists(P("a/b/.out.lock")),
             "outdir: output absent until commit; work folder and lock present");
    char p[600];
    snprintf(p, sizeof p, "%s/old.txt", nh_outdir_path(d));
    put(p, "old");
    snprintf(p, sizeof p, "%s/same.txt", nh_outdir_path(d));
    put(p, "v1");
    nh_check(nh_outdir_commit(d) == NH_OK, "outdir: commit");
    nh_check(count(fin) == 2 && count(P("a/b")) == 1, "outdir: output has its 2 files; nothing beside it");
    /* Replace: the new folder has same.txt only; old.txt must not survive. */
    nh_check(nh_outdir_open(fin, &d) == NH_OK, "outdir: reopen");
    snprintf(p, sizeof p, "%s/same.txt", nh_outdir_path(d));
    put(p, "v2");
    nh_check(count(fin) == 2, "outdir: the old output is untouched before commit");
    nh_check(nh_outdir_commit(d) == NH_OK, "outdir: commit the replacement");
    char *b = NULL;
    nh_check(count(fin) == 1 && !exists(P("a/b/out/old.txt")), "outdir: replaced whole, never mixed");
    nh_check(nh_file_read(P("a/b/out/same.txt"), 10, &b, NULL) == NH_OK && !strcmp(b, "v2"), "outdir: new contents");
    free(b);
    nh_check(count(P("a/b")) == 1, "outdir: no temporaries after the replacement");
    /* Abort leaves nothing new, and the old output stays. */
    nh_check(nh_outdir_open(fin, &d) == NH_OK, "outdir: open for abort");
    snprintf(p, sizeof p, "%s/junk", nh_outdir_path(d));
    put(p, "x");
    nh_outdir_abort(d);
    nh_outdir_abort(NULL);
    nh_check(count(P("a/b")) == 1 && count(fin) == 1, "outdir: abort leaves only the old output (%d %d)", count(P("a/b")), count(fin));
    nh_check(nh_outdir_open(P("fresh"), &d) == NH_OK, "outdir: open a fresh one");
    nh_outdir_abort(d);
    nh_check(!exists(P("fresh")) && !exists(P(".fresh.partial")) && !exists(P(".fresh.lock")),
             "outdir: abort of a new output leaves nothing at all");
    put(P("afile"), "x");
    nh_check(nh_outdir_open(P("afile"), &d) == NH_EINVAL && !d, "outdir: an existing regular file is refused");
    nh_check(nh_outdir_open(P("."), &d) == NH_EINVAL, "outdir: '.' refused");
}

static void test_stale_and_resume(void) {
    /* Leftovers of a killed run: work folder, ready and old folders, a lock with a dead pid. */
    mkdir(P(".s.partial"), 0755), put(P(".s.partial/f"), "1");
    mkdir(P(".s.ready"), 0755), put(P(".s.ready/g"), "1");
    mkdir(P(".s.old"), 0755);
    put(P(".s.lock"), "999999\n");
    nh_outdir *d = NULL;
    nh_check(nh_outdir_open(P("s"), &d) == NH_OK, "stale: a dead owner's lock does not block (%s)", nh_last_error());
    nh_check(d && !nh_outdir_resumed(d) && count(P(".s.partial")) == 0 && !exists(P(".s.ready")) && !exists(P(".s.old")),
             "stale: temporaries of a dead owner removed; fresh empty work folder");
    nh_outdir_abort(d);
    /* Resumable: the work folder survives a release and is found again. */
    nh_check(nh_outdir_open_ex(P("r"), NH_OUTDIR_RESUME, &d) == NH_OK && !nh_outdir_resumed(d), "resume: first open");
    put(P(".r.partial/ckpt"), "step 5");
    nh_outdir_release(d);
    nh_check(exists(P(".r.partial/ckpt")) && !exists(P(".r.lock")) && !exists(P("r")), "resume: release keeps the work, drops the lock");
    nh_check(nh_outdir_open_ex(P("r"), NH_OUTDIR_RESUME, &d) == NH_OK && nh_outdir_resumed(d) && exists(P(".r.partial/ckpt")),
             "resume: reopened with its work");
    nh_check(nh_outdir_reset(d) == NH_OK && count(P(".r.partial")) == 0 && !nh_outdir_resumed(d), "resume: reset empties it");
    nh_outdir_abort(d);
    mkdir(P(".q.partial"), 0755), put(P(".q.partial/x"), "1");
    nh_check(nh_outdir_open(P("q"), &d) == NH_OK && count(P(".q.partial")) == 0, "resume: a plain open discards old work");
    nh_outdir_abort(d);
}

static void test_file_mode(void) {
    nh_outdir *d = NULL;
    put(P("f.csv"), "old\n");
    nh_check(nh_outdir_open_ex(P("f.csv"), NH_OUTDIR_FILE, &d) == NH_OK && nh_outdir_file(d), "file mode: open");
    if (!d) return;
    char want[600];
    snprintf(want, sizeof want, "%s/f.csv", nh_outdir_path(d));
    nh_check(!strcmp(nh_outdir_file(d), want), "file mode: the file is written inside the work folder");
    put(nh_outdir_file(d), "new\n");
    char *b = NULL;
    nh_check(nh_file_read(P("f.csv"), 10, &b, NULL) == NH_OK && !strcmp(b, "old\n"), "file mode: old file until commit");
    free(b);
    nh_check(nh_outdir_commit(d) == NH_OK, "file mode: commit");
    nh_check(nh_file_read(P("f.csv"), 10, &b, NULL) == NH_OK && !strcmp(b, "new\n"), "file mode: replaced");
    free(b);
    nh_check(!exists(P(".f.csv.partial")) && !exists(P(".f.csv.lock")), "file mode: no temporaries");
    nh_check(nh_outdir_open_ex(P("g.csv"), NH_OUTDIR_FILE, &d) == NH_OK && nh_outdir_commit(d) == NH_EIO &&
                 !exists(P("g.csv")) && !exists(P(".g.csv.partial")),
             "file mode: committing an unwritten file fails and leaves nothing");
    nh_check(nh_outdir_open_ex(root, NH_OUTDIR_FILE, &d) == NH_EINVAL, "file mode: an existing folder is refused");
    mkdir(P("src"), 0755), put(P("src/new"), "1");
    mkdir(P("dst"), 0755), put(P("dst/old"), "1");
    nh_check(nh_file_replace_dir(P("src"), P("dst")) == NH_OK && exists(P("dst/new")) && !exists(P("dst/old")) &&
                 !exists(P("src")) && !exists(P("dst.old")),
             "replace_dir: the new folder in place of the old, nothing else left");
}

static void test_lock(void) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_t pid = fork();
    if (pid == 0) { /* the owner: open, tell the parent, wait to be killed */
        nh_outdir *d = NULL;
        char c = nh_outdir_open(P("L"), &d) == NH_OK ? 'y' : 'n';
        if (write(fds[1], &c, 1) != 1) _exit(1);
        for (;;) pause();
    }
    char c = 0;
    if (read(fds[0], &c, 1) != 1) c = 0;
    nh_check(c == 'y', "lock: the child owns the folder");
    nh_outdir *d = NULL;
    char want[64];
    snprintf(want, sizeof want, "process %ld", (long)pid);
    nh_status st = nh_outdir_open(P("L"), &d);
    nh_check(st == NH_EBUSY && !d && strstr(nh_last_error(), want), "lock: a live owner -> NH_EBUSY naming its pid (%s)",
             nh_last_error());
    nh_check(exists(P(".L.partial")), "lock: the refused open leaves the owner's work alone");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    st = nh_outdir_open(P("L"), &d);
    nh_check(st == NH_OK, "lock: after kill -9 of the owner the folder can be taken (%s)", nh_last_error());
    nh_check(nh_outdir_commit(d) == NH_OK && count(P("L")) == 0 && !exists(P(".L.lock")), "lock: commit releases it");
    close(fds[0]), close(fds[1]);
}

static void test_sha(void) {
    /* FIPS 180-4 / NIST example digests. */
    static const struct { const char *msg; const char *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"}};
    for (int i = 0; i < 3; i++) {
        nh_sha256 c;
        unsigned char d[32];
        char hex[65];
        nh_sha256_init(&c);
        nh_sha256_update(&c, v[i].msg, strlen(v[i].msg));
        nh_sha256_final(&c, d);
        nh_sha256_hex(d, hex);
        nh_check(!strcmp(hex, v[i].hex), "sha256 NIST vector %d", i);
    }
    nh_sha256 c;
    unsigned char d[32];
    char hex[65], a[1000];
    memset(a, 'a', sizeof a);
    nh_sha256_init(&c);
    for (int i = 0; i < 1000; i++) nh_sha256_update(&c, a, sizeof a); /* split updates across blocks */
    nh_sha256_final(&c, d);
    nh_sha256_hex(d, hex);
    nh_check(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256 of a million 'a'");
    put(P("abc"), "abc");
    nh_sha256_init(&c);
    nh_check(nh_sha256_file(&c, P("abc")) == NH_OK, "sha256_file");
    nh_sha256_final(&c, d);
    nh_sha256_hex(d, hex);
    nh_check(!strcmp(hex, v[1].hex), "sha256_file equals the in-memory digest");
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/nh_test_file.%ld", (long)getpid());
    if (mkdir(root, 0755) != 0) { perror(root); return 1; }
    test_read();
    test_write();
    test_outdir();
    test_stale_and_resume();
    test_lock();
    test_file_mode();
    test_sha();
    nh_file_remove_tree(root);
    NH_TEST_END();
}
