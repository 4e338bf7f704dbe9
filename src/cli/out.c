/* out.c -- the running command's output (all or nothing, through
 * nh_outdir) and its signals.
 *
 * Output: a command opens its output once (nh_out_open), writes into the
 * work folder it gets back, and commits at the end (nh_out_commit).  Every
 * other exit -- nh_die, a usage error, exit() anywhere -- aborts it through
 * an atexit hook, so a failed command leaves nothing new behind.
 *
 * Signals: the handler of SIGINT, SIGTERM and SIGHUP only writes the
 * signal's number to a pipe; one waiter thread reads it and runs ordinary
 * code, not a handler.  Commit and
 * checkpoint writes hold nh_out_crit, so the waiter acts only between
 * them: the current atomic write always finishes.  A command that can
 * resume (train, measure) calls nh_sig_cooperate: the waiter then only
 * records the signal, and the loop checkpoints and exits 128+signal via
 * nh_sig_exit.  Otherwise the waiter removes the work folder, prints one
 * line and exits 128+signal itself. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static nh_outdir *out_dir;
static const nh_cmd *out_cmd;
static pthread_mutex_t out_crit = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t sig_pending;
static int sig_coop;
static int out_keep; /* a resumable work folder: a signal keeps it */

void nh_out_lock(void) { pthread_mutex_lock(&out_crit); }
void nh_out_unlock(void) { pthread_mutex_unlock(&out_crit); }

static void out_atexit(void) {
    if (!out_dir) return;
    nh_out_lock();
    nh_outdir_abort(out_dir);
    out_dir = NULL;
    nh_out_unlock();
}

/* a and b name the same file, or a lies inside the folder b. */
static int same_or_inside(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb)) return 0;
    size_t n = strlen(rb);
    return strcmp(ra, rb) == 0 || (strncmp(ra, rb, n) == 0 && (ra[n] == '/' || (n == 1 && rb[0] == '/')));
}

const char *nh_out_open(const nh_cmd *cmd, const char *final, unsigned flags, const char *const *inputs,
                        size_t ninputs) {
    for (size_t i = 0; i < ninputs; i++)
        if (inputs[i] && same_or_inside(inputs[i], final))
            nh_die_usage(cmd, "the output %s %s the input %s; choose another --out", final,
                         flags & NH_OUTDIR_FILE ? "is" : "is or contains", inputs[i]);
    static int hooked;
    if (!hooked) { atexit(out_atexit); hooked = 1; }
    nh_outdir *d = NULL;
    nh_status st = nh_outdir_open_ex(final, flags, &d);
    if (st == NH_EBUSY) nh_die(cmd, "%s", nh_last_error_detail());
    if (st != NH_OK) nh_die_status(cmd, st);
    nh_out_lock();
    out_dir = d;
    out_cmd = cmd;
    out_keep = (flags & NH_OUTDIR_RESUME) != 0;
    nh_out_unlock();
    return flags & NH_OUTDIR_FILE ? nh_outdir_file(d) : nh_outdir_path(d);
}

void nh_out_release(void) {
    nh_out_lock();
    nh_outdir_release(out_dir);
    out_dir = NULL;
    nh_out_unlock();
}

const char *nh_out_work(void) { return out_dir ? nh_outdir_path(out_dir) : NULL; }
int nh_out_resumed(void) { return out_dir && nh_outdir_resumed(out_dir); }

void nh_out_reset(const nh_cmd *cmd) {
    if (out_dir) NH_CHECK(cmd, nh_outdir_reset(out_dir));
}

void nh_out_commit(const nh_cmd *cmd) {
    if (!out_dir) return;
    nh_out_lock();
    nh_status st = nh_outdir_commit(out_dir); /* frees it, also on failure */
    out_dir = NULL;
    nh_out_unlock();
    if (st != NH_OK) nh_die_status(cmd, st);
}

/* ---------------------------------------------------------------- signals */

static const char *sig_name(int s) {
    return s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : s == SIGHUP ? "SIGHUP" : "a signal";
}

static int sig_pipe[2] = {-1, -1};

/* The handler only forwards the signal's number to the waiter thread (a
 * write is async-signal-safe); handlers, unlike masks, hold in the threads
 * that OpenBLAS starts before main. */
static void sig_forward(int s) {
    unsigned char c = (unsigned char)s;
    int e = errno;
    if (write(sig_pipe[1], &c, 1) < 0) { /* the waiter is gone: nothing better to do */ }
    errno = e;
}

static void *sig_waiter(void *arg) {
    (void)arg;
    for (;;) {
        unsigned char c;
        ssize_t got = read(sig_pipe[0], &c, 1);
        if (got < 0 && errno == EINTR) continue;
        if (got != 1) return NULL;
        int s = c;
        nh_out_lock(); /* waits for a commit or checkpoint in progress */
        if (sig_coop && !sig_pending) { /* the loop checkpoints and exits */
            sig_pending = s;
            nh_out_unlock();
            continue;
        }
        /* Not resumable, or a second signal: stop now. */
        char msg[512];
        int n;
        if ((sig_coop || out_keep) && out_dir) { /* keep the last checkpoint for a resume */
            n = snprintf(msg, sizeof msg, "ntkhess %s: interrupted by %s; rerun the same command to resume from "
                         "its last checkpoint\n", out_cmd ? out_cmd->name : "", sig_name(s));
            nh_outdir_release(out_dir);
        } else if (out_dir) {
            n = snprintf(msg, sizeof msg, "ntkhess %s: interrupted by %s; nothing written to %s\n",
                         out_cmd ? out_cmd->name : "", sig_name(s), nh_outdir_final(out_dir));
            nh_outdir_abort(out_dir);
        } else if (out_cmd) {
            n = snprintf(msg, sizeof msg, "ntkhess %s: interrupted by %s; nothing written\n", out_cmd->name, sig_name(s));
        } else {
            n = snprintf(msg, sizeof msg, "ntkhess: interrupted by %s\n", sig_name(s));
        }
        out_dir = NULL;
        if (n > 0 && write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0) { /* nothing to do */ }
        _exit(128 + s);
    }
}

void nh_sig_init(void) {
    if (pipe2(sig_pipe, O_CLOEXEC) != 0) return;
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int ok = pthread_create(&th, &at, sig_waiter, NULL) == 0;
    pthread_attr_destroy(&at);
    if (!ok) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_forward;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

void nh_sig_command(const nh_cmd *cmd) {
    nh_out_lock();
    out_cmd = cmd;
    nh_out_unlock();
}

void nh_sig_cooperate(int on) {
    nh_out_lock();
    sig_coop = on;
    nh_out_unlock();
}

int nh_sig_pending(void) { return sig_pending; }

_Noreturn void nh_sig_exit(const nh_cmd *cmd, const char *fmt, ...) {
    int s = sig_pending;
    nh_out_lock();
    if (out_dir) nh_outdir_release(out_dir); /* keep the work folder: the rerun resumes it */
    out_dir = NULL;
    nh_out_unlock();
    va_list ap;
    fprintf(stderr, "ntkhess %s: interrupted by %s ", cmd->name, sig_name(s));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(128 + s);
}
