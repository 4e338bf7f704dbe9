/* ckpt.c -- resumable runs (train, measure).
 *
 * A run writes into its output's work folder (out.c, nh_outdir with
 * NH_OUTDIR_RESUME): the log (train.csv or the measure CSV) and
 * checkpoint/, which holds the network at the last checkpointed step
 * (config.json + W*.npy, b*.npy) and state.txt:
 *
 *   ntkhess-checkpoint 2
 *   id.NAME VALUE          one line per identity field (the command, SHA-256
 *                          of the model, data and targets, every option that
 *                          changes the result)
 *   step K                 0 <= K <= the run's --steps
 *   params HEX             SHA-256 of the network's parameters (theta bytes)
 *   log.rows R             lines of the log at step K, header included
 *   log.last HEX           SHA-256 of the log's line R (without its newline)
 *   sum HEX                SHA-256 of every byte above
 *
 * A rerun with another identity is refused naming the fields that differ
 * (--restart starts over); a state whose sum, step or params do not check is
 * refused as corrupt; a log that lacks the recorded rows or whose row R
 * differs is refused, never shortened past the checkpoint; rows written
 * after the checkpoint (before a kill) are dropped and recomputed, which
 * gives the same bytes because every step is deterministic given theta. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_MAGIC "ntkhess-checkpoint 2\n"
#define CKPT_STATE_CAP (64u << 10) /* a state file is a few hundred bytes */
#define LOG_CAP ((size_t)1 << 32)  /* 4 GiB of log: far above any real run */

static void sha_text(const char *s, size_t n, char hex[65]) {
    nh_sha256 c;
    unsigned char d[32];
    nh_sha256_init(&c);
    nh_sha256_update(&c, s, n);
    nh_sha256_final(&c, d);
    nh_sha256_hex(d, hex);
}

/* ---------------------------------------------------------------- identity */

void nh_ckpt_id_add(nh_ckpt_id *id, const char *name, const char *fmt, ...) {
    if (id->n >= NH_CKPT_ID_MAX) { fprintf(stderr, "ntkhess: internal error: identity too long\n"); exit(70); }
    snprintf(id->name[id->n], sizeof id->name[0], "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(id->value[id->n], sizeof id->value[0], fmt, ap);
    va_end(ap);
    id->n++;
}

void nh_ckpt_id_file(const nh_cmd *cmd, nh_ckpt_id *id, const char *name, const char *path) {
    nh_sha256 c;
    unsigned char d[32];
    char hex[65];
    nh_sha256_init(&c);
    NH_CHECK(cmd, nh_sha256_file(&c, path));
    nh_sha256_final(&c, d);
    nh_sha256_hex(d, hex);
    nh_ckpt_id_add(id, name, "%s", hex);
}

static void params_hex(const nh_net *net, char hex[65]) {
    sha_text((const char *)nh_net_params_const(net), nh_net_nparams(net) * sizeof(double), hex);
}

/* The model by content: config.json's bytes and the parameters as loaded
 * (whatever files hold them). */
void nh_ckpt_id_model(const nh_cmd *cmd, nh_ckpt_id *id, const char *dir, const nh_net *net) {
    char path[4200], *text = NULL, hex[65];
    size_t len = 0;
    NH_CHECK(cmd, nh_file_read(nh_cli_path(path, sizeof path, dir, "config.json"), 1u << 20, &text, &len));
    nh_sha256 c;
    unsigned char d[32];
    nh_sha256_init(&c);
    nh_sha256_update(&c, text, len);
    nh_sha256_update(&c, nh_net_params_const(net), nh_net_nparams(net) * sizeof(double));
    nh_sha256_final(&c, d);
    nh_sha256_hex(d, hex);
    free(text);
    nh_ckpt_id_add(id, "model", "%s", hex);
}

/* ------------------------------------------------------------------- state */

/* Parse state.txt strictly; 0 on any defect. */
static int state_parse(char *text, size_t len, nh_ckpt_state *s) {
    const long long max_step = NH_MAX_STEPS;
    char *sum = NULL;
    for (char *p = text; p < text + len; p = strchr(p, '\n') + 1) { /* the last "sum " line */
        if (!strchr(p, '\n')) return 0;
        if (!strncmp(p, "sum ", 4)) { sum = p; break; }
    }
    if (!sum || strlen(text) != len || strncmp(text, CKPT_MAGIC, strlen(CKPT_MAGIC))) return 0;
    char want[65], got[65];
    sha_text(text, (size_t)(sum - text), want);
    if (sscanf(sum, "sum %64[0-9a-f]\n", got) != 1 || strcmp(got, want) || sum + 69 != text + len) return 0;
    memset(s, 0, sizeof *s);
    int have = 0;
    for (char *line = text + strlen(CKPT_MAGIC); line < sum;) {
        char *nl = strchr(line, '\n');
        *nl = 0;
        char name[64], val[128], extra;
        if (sscanf(line, "id.%63[a-z0-9_-] %127s%c", name, val, &extra) == 2) {
            if (s->id.n >= NH_CKPT_ID_MAX || strlen(val) >= sizeof s->id.value[0]) return 0;
            nh_ckpt_id_add(&s->id, name, "%s", val);
        } else if (sscanf(line, "step %lld%c", &s->step, &extra) == 1) have |= 1;
        else if (sscanf(line, "log.rows %lld%c", &s->rows, &extra) == 1) have |= 2;
        else if (sscanf(line, "params %64[0-9a-f]%c", s->params, &extra) == 1) have |= 4;
        else if (sscanf(line, "log.last %64[0-9a-f]%c", s->last, &extra) == 1) have |= 8;
        else return 0;
        line = nl + 1;
    }
    /* Range checks before any arithmetic on them. */
    return have == 15 && s->step >= 0 && s->step <= max_step && s->rows >= 1 && s->rows <= max_step + 2 &&
           strlen(s->params) == 64 && strlen(s->last) == 64;
}

/* "model, lr" -- the identity fields that differ. */
static void id_diff(const nh_ckpt_id *a, const nh_ckpt_id *b, char *buf, size_t cap) {
    buf[0] = 0;
    for (size_t i = 0; i < a->n; i++) {
        int same = 0;
        for (size_t j = 0; j < b->n && !same; j++)
            same = !strcmp(a->name[i], b->name[j]) && !strcmp(a->value[i], b->value[j]);
        if (!same) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", *buf ? ", " : "", a->name[i]);
    }
    for (size_t j = 0; j < b->n; j++) {
        int found = 0;
        for (size_t i = 0; i < a->n && !found; i++) found = !strcmp(a->name[i], b->name[j]);
        if (!found) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", *buf ? ", " : "", b->name[j]);
    }
}

/* Refuse to go on, keeping the work folder for the user to inspect or
 * restart. */
_Noreturn static void refuse(const nh_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(const nh_cmd *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nh_out_release();
    nh_die(cmd, "%s; rerun with --restart to start over, or choose another --out", msg);
}

/* The checkpointed step (>= 0) with its network in *net and its log state,
 * or -1 when ckdir holds no checkpoint. */
long long nh_ckpt_load(const nh_cmd *cmd, const char *ckdir, const nh_ckpt_id *id, long long max_step,
                       nh_net **net, nh_ckpt_state *s) {
    char path[4200], *text = NULL;
    size_t len = 0;
    struct stat sb;
    if (stat(ckdir, &sb) != 0) return -1;
    nh_status st = nh_file_read(nh_cli_path(path, sizeof path, ckdir, "state.txt"), CKPT_STATE_CAP, &text, &len);
    if (st != NH_OK || !state_parse(text, len, s)) {
        free(text);
        refuse(cmd, "the checkpoint %s is corrupt (%s)", ckdir,
               st != NH_OK ? nh_last_error_detail() : "state.txt fails its checksum or range checks");
    }
    free(text);
    char diff[512];
    id_diff(id, &s->id, diff, sizeof diff);
    if (*diff) refuse(cmd, "the unfinished run in %s differs from this one in: %s", ckdir, diff);
    if (s->step > max_step) refuse(cmd, "the checkpoint %s is at step %lld, past --steps %lld", ckdir, s->step, max_step);
    nh_net *n = NULL;
    st = nh_model_load(ckdir, &n);
    if (st != NH_OK) refuse(cmd, "the checkpoint %s is corrupt (%s)", ckdir, nh_last_error_detail());
    char hex[65];
    params_hex(n, hex);
    if (strcmp(hex, s->params)) {
        nh_net_free(n);
        refuse(cmd, "the checkpoint %s is corrupt (its parameters fail their checksum)", ckdir);
    }
    nh_net_free(*net);
    *net = n;
    return s->step;
}

/* ---------------------------------------------------------------------- log */

void nh_log_row(const nh_cmd *cmd, nh_log *log, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(log->last, sizeof log->last, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof log->last) nh_die(cmd, "internal error: log row too long");
    if (fprintf(log->f, "%s\n", log->last) < 0 || fflush(log->f) != 0)
        nh_die(cmd, "cannot write %s: %s", log->path, strerror(errno));
    log->rows++;
}

void nh_ckpt_log_check(const nh_cmd *cmd, const char *path, const char *header, const nh_ckpt_state *s) {
    char *text = NULL;
    size_t len = 0;
    nh_status st = nh_file_read(path, LOG_CAP, &text, &len);
    if (st != NH_OK) refuse(cmd, "the log %s of the checkpointed run cannot be read (%s)", path, nh_last_error_detail());
    long long rows = 0;
    size_t keep = 0;
    char *line = text, *nl, hex[65] = "";
    while (rows < s->rows && (nl = memchr(line, '\n', len - (size_t)(line - text)))) {
        if (rows == 0 && ((size_t)(nl - line) != strlen(header) || memcmp(line, header, strlen(header)))) break;
        sha_text(line, (size_t)(nl - line), hex);
        rows++;
        line = nl + 1;
        keep = (size_t)(line - text);
    }
    if (rows < s->rows || strcmp(hex, s->last)) {
        free(text);
        refuse(cmd, "the log %s does not match its checkpoint at step %lld (%s)", path, s->step,
               rows < s->rows ? "rows are missing or its header differs" : "its last checkpointed row differs");
    }
    if (keep < len) NH_CHECK(cmd, nh_file_write(path, text, keep)); /* rows after the checkpoint */
    free(text);
}

/* Check the log against the checkpoint, drop rows past it, reopen it. */
static void log_resume(const nh_cmd *cmd, nh_log *log, const char *header, const nh_ckpt_state *s) {
    nh_ckpt_log_check(cmd, log->path, header, s);
    log->f = fopen(log->path, "a");
    if (!log->f) nh_die(cmd, "cannot append to %s: %s", log->path, strerror(errno));
    log->rows = s->rows;
}

/* ---------------------------------------------------------------------- run */

long long nh_run_begin(nh_run *r, const nh_run_spec *sp, nh_net **net) {
    memset(r, 0, sizeof *r);
    r->cmd = sp->cmd;
    r->id = sp->id;
    r->max_step = sp->max_step;
    const char *w = nh_out_open(sp->cmd, sp->out, NH_OUTDIR_RESUME | (sp->file ? NH_OUTDIR_FILE : 0), sp->inputs,
                                sp->ninputs);
    if (sp->restart) nh_out_reset(sp->cmd);
    snprintf(r->work, sizeof r->work, "%s", nh_out_work());
    nh_cli_path(r->ck, sizeof r->ck, r->work, "checkpoint");
    if (sp->file) snprintf(r->log.path, sizeof r->log.path, "%s", w);
    else nh_cli_path(r->log.path, sizeof r->log.path, r->work, sp->log_name);
    nh_ckpt_state s;
    long long start = nh_ckpt_load(sp->cmd, r->ck, &r->id, sp->max_step, net, &s);
    if (start >= 0) {
        log_resume(sp->cmd, &r->log, sp->header, &s);
        fprintf(stderr, "ntkhess %s: resuming from step %lld (%s)\n", sp->cmd->name, start, r->ck);
    } else {
        nh_out_reset(sp->cmd); /* work without a checkpoint (a killed first step, another command's): start clean */
        r->log.f = fopen(r->log.path, "w");
        if (!r->log.f) nh_die(sp->cmd, "cannot write %s: %s", r->log.path, strerror(errno));
        nh_log_row(sp->cmd, &r->log, "%s", sp->header);
    }
    nh_sig_cooperate(1);
    return start;
}

void nh_ckpt_save(const nh_cmd *cmd, const char *ckdir, const nh_ckpt_id *id, long long step, const nh_net *net,
                  long long rows, const char *last_row) {
    char stage[4400], path[4500], hex[65], lasthex[65];
    if (snprintf(stage, sizeof stage, "%s.new", ckdir) >= (int)sizeof stage) nh_die(cmd, "path too long: %s", ckdir);
    size_t cap = 512 + id->n * 128, n = 0;
    char *text = malloc(cap);
    if (!text) nh_die(cmd, "out of memory");
    n += (size_t)snprintf(text + n, cap - n, "%s", CKPT_MAGIC);
    for (size_t i = 0; i < id->n; i++) n += (size_t)snprintf(text + n, cap - n, "id.%s %s\n", id->name[i], id->value[i]);
    params_hex(net, hex);
    sha_text(last_row, strlen(last_row), lasthex);
    n += (size_t)snprintf(text + n, cap - n, "step %lld\nparams %s\nlog.rows %lld\nlog.last %s\n", step, hex, rows,
                          lasthex);
    sha_text(text, n, hex);
    n += (size_t)snprintf(text + n, cap - n, "sum %s\n", hex);
    nh_out_lock(); /* a signal waits for the whole checkpoint */
    nh_status st = nh_file_remove_tree(stage);
    if (st == NH_OK) st = nh_model_save(stage, net);
    if (st == NH_OK) st = nh_file_write(nh_cli_path(path, sizeof path, stage, "state.txt"), text, n);
    if (st == NH_OK) st = nh_file_replace_dir(stage, ckdir);
    nh_out_unlock();
    free(text);
    if (st != NH_OK) nh_die_status(cmd, st);
}

void nh_run_checkpoint(nh_run *r, long long step, const nh_net *net) {
    if (fflush(r->log.f) != 0 || fsync(fileno(r->log.f)) != 0)
        nh_die(r->cmd, "cannot write %s: %s", r->log.path, strerror(errno));
    nh_ckpt_save(r->cmd, r->ck, &r->id, step, net, r->log.rows, r->log.last);
}

/* After the last step: close the log, drop the checkpoint, commit. */
void nh_run_close_log(nh_run *r) {
    nh_sig_cooperate(0);
    if (r->log.f && fclose(r->log.f) != 0) nh_die(r->cmd, "cannot write %s: %s", r->log.path, strerror(errno));
    r->log.f = NULL;
    NH_CHECK(r->cmd, nh_file_remove_tree(r->ck));
}

/* A signal arrived: checkpoint at step and exit 128+signal, keeping the work. */
void nh_run_poll_signal(nh_run *r, long long step, const nh_net *net) {
    if (!nh_sig_pending()) return;
    nh_run_checkpoint(r, step, net);
    nh_sig_exit(r->cmd, "at step %lld; rerun the same command to resume (checkpoint in %s)", step, r->ck);
}
