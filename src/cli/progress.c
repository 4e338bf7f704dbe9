/* progress.c -- the progress line of the commands that stream over the data:
 * "H v 12/60 batches, Lanczos 7/40 products, 1:23 left", rewritten in place
 * with \r on stderr and cleared at exit.  On when stderr is a terminal or
 * --progress is given (then also into a pipe); never otherwise, so tests and
 * scripts see unchanged output.  The library only calls back (nh_progress). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    int asked;         /* --progress */
    int shown;         /* a line is on stderr: clear it at exit */
    double t_pass, t_est, last;
    const char *est;
    size_t products;
} g_prog;

void nh_cli_progress_ask(int on) { g_prog.asked = on; }

static void prog_clear(void) {
    if (!g_prog.shown) return;
    fprintf(stderr, "\r%-78s\r", "");
    fflush(stderr);
    g_prog.shown = 0;
}

/* Seconds left from the fraction f done after t seconds: "1:23", or "?" before any. */
static void prog_left(char *buf, size_t cap, double t, double f) {
    if (!(f > 0) || f > 1) { snprintf(buf, cap, "?"); return; }
    long s = (long)(t * (1 - f) / f + 0.5);
    if (s >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
}

static void prog_cb(void *user, const nh_progress *p) {
    (void)user;
    const double now = nh_cli_now();
    /* a new estimator (or a new run of one) restarts its clock; batch 1 restarts the pass's */
    const int fresh = p->est != g_prog.est || (p->est && p->products < g_prog.products);
    if (fresh) g_prog.t_est = now;
    g_prog.est = p->est;
    g_prog.products = p->products;
    if (p->batch == 1) g_prog.t_pass = now;
    /* at most about 4 lines a second, plus the first line of each estimator */
    if (g_prog.shown && !fresh && now - g_prog.last < 0.25) return;
    g_prog.last = now;
    double fb = (double)p->batch / (double)p->nbatch;
    char left[32], line[160];
    int k;
    if (p->est && p->planned) {
        prog_left(left, sizeof left, now - g_prog.t_est, ((double)p->products + fb) / (double)p->planned);
        k = snprintf(line, sizeof line, "%s %zu/%zu batches, %s %zu/%zu products, %s left", p->op, p->batch,
                     p->nbatch, p->est, p->products + 1, p->planned, left);
    } else {
        prog_left(left, sizeof left, now - g_prog.t_pass, fb);
        k = snprintf(line, sizeof line, "%s %zu/%zu batches, %s left", p->op, p->batch, p->nbatch, left);
    }
    fprintf(stderr, "\r%-*s", k < 78 ? 78 : k, line);
    fflush(stderr);
    if (!g_prog.shown) {
        static int registered;
        if (!registered && atexit(prog_clear) == 0) registered = 1;
        g_prog.shown = 1;
    }
}

nh_curv *nh_cli_curv(const nh_cmd *cmd, const nh_net *net, const nh_dataset *d, nh_loss loss,
                     const nh_curv_opts *o) {
    nh_curv *c = NULL;
    if (d->X32) NH_CHECK(cmd, nh_curv_create_x32(net, d->X32, d->T, d->n, loss, o, &c));
    else NH_CHECK(cmd, nh_curv_create_ex(net, d->X, d->T, d->n, loss, o, &c));
    if (g_prog.asked || isatty(fileno(stderr))) nh_curv_set_progress(c, prog_cb, NULL);
    return c;
}
