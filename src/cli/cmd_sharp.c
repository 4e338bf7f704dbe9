/* cmd_sharp.c -- ntkhess sharpness: top eigenvalues of H, I, S and the NTK
 * along full-batch gradient descent, warm-started from the previous record,
 * resumable after a kill.  The records are the library's (nh_sharp_record,
 * src/est/sharp.c); this file runs the GD loop, saves the warm-start state
 * beside each checkpoint and writes the CSV all or nothing (FILE.csv.partial,
 * renamed at the end). */
#include "sharp.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- records */

static void sh_header(char *buf, size_t cap, const nh_sharp_opts *o) {
    size_t n = (size_t)snprintf(buf, cap, "step,t,loss,grad_norm,lam_H,lam_I,lam_S,lam_NTK,grad_overlap,uIu,uSu,"
                                          "matvecs_H,matvecs_I,matvecs_S,matvecs_NTK");
    const char *nm = "HIS";
    for (int op = 0; op < 3 && o->top > 1; op++)
        for (size_t j = 1; j <= o->top && n < cap; j++) n += (size_t)snprintf(buf + n, cap - n, ",%c_%zu", nm[op], j);
}

/* One record at `step` (nh_sharp_record), written as a CSV row. */
static void sh_record(const nh_cmd *cmd, nh_curv *c, nh_sharp *s, const sh_opts *o, long long step, nh_log *log) {
    nh_sharp_row r;
    NH_CHECK(cmd, nh_sharp_record(s, c, (uint64_t)step, &r));
    if (r.unconverged && !o->quiet)
        fprintf(stderr, "ntkhess %s: warning: step %lld: %d eigen-solve(s) not converged in --maxit %zu products\n",
                cmd->name, step, r.unconverged, o->rec.maxit);
    char row[2048]; /* nh_log's row limit: 15 + 3 x NH_SHARP_MAXTOP numbers of <= 24 characters fit */
    size_t n = (size_t)snprintf(row, sizeof row, "%lld,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                "%zu,%zu,%zu,%zu", step, (double)step * o->eta, r.loss, r.grad_norm, r.lam_H,
                                r.lam_I, r.lam_S, r.lam_NTK, r.grad_overlap, r.uIu, r.uSu, r.matvecs[0],
                                r.matvecs[1], r.matvecs[2], r.matvecs[3]);
    for (int op = 0; op < 3 && o->rec.top > 1; op++)
        for (size_t j = 0; j < o->rec.top && n < sizeof row; j++)
            n += (size_t)snprintf(row + n, sizeof row - n, ",%.17g", r.top[op][j]);
    nh_log_row(cmd, log, "%s", row);
}

/* ------------------------------------------------------- resumable run */

static const char *sh_warm_path(char *buf, size_t cap, const char *csv, long long step) {
    snprintf(buf, cap, "%s.warm/%lld.npy", csv, step);
    return buf;
}

/* The warm-start vectors beside each checkpoint: a resumed run must start
 * its next solve from the same vectors to repeat the uninterrupted run bit
 * for bit. */
static void sh_warm_save(const nh_cmd *cmd, const char *csv, const nh_sharp *s, long long step) {
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s.warm", csv);
    nh_cli_mkdir(cmd, dir);
    size_t sh[1] = {nh_sharp_state_len(s)};
    double *v = malloc(sh[0] * sizeof *v);
    if (!v) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_sharp_state_get(s, v));
    NH_CHECK(cmd, nh_npy_write(sh_warm_path(path, sizeof path, csv, step), v, 1, sh));
    free(v);
}

static void sh_warm_load(const nh_cmd *cmd, const char *csv, nh_sharp *s, long long step) {
    char path[4096];
    double *v = NULL;
    size_t nd, sh[NH_NPY_MAXDIM];
    if (nh_npy_read(sh_warm_path(path, sizeof path, csv, step), &v, &nd, sh) != NH_OK || nd != 1 ||
        sh[0] != nh_sharp_state_len(s) || nh_sharp_state_set(s, v) != NH_OK)
        nh_die(cmd, "%s: missing or damaged warm-start file of the checkpoint; remove %s.ckpt to start over", path,
               csv);
    free(v);
}

/* Open the record file (part = CSV.partial): on resume, checked against the
 * checkpoint (header, rows, last row) and cut after its last checkpointed
 * row, with that row remembered for the next checkpoint; else new, with its
 * header, and an older CSV of the same name removed (it is not this run's). */
static void sh_open_log(const nh_cmd *cmd, const char *csv, const char *part, const char *header,
                        const nh_ckpt_state *cs, long long start, nh_log *log) {
    memset(log, 0, sizeof *log);
    snprintf(log->path, sizeof log->path, "%s", part);
    if (start < 0) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", csv);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) { *slash = 0; nh_cli_mkdir(cmd, parent); } /* missing parents */
        if (remove(csv) != 0 && errno != ENOENT) nh_die(cmd, "cannot remove the older %s: %s", csv, strerror(errno));
        log->f = fopen(part, "w");
        if (!log->f) nh_die(cmd, "cannot write %s: %s", part, strerror(errno));
        nh_log_row(cmd, log, "%s", header);
        return;
    }
    struct stat sb;
    if (stat(part, &sb) != 0 && stat(csv, &sb) == 0) rename(csv, part); /* a checkpoint of a version without .partial */
    nh_ckpt_log_check(cmd, part, header, cs);
    FILE *f = fopen(part, "r");
    char line[sizeof log->last];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        memcpy(log->last, line, sizeof line);
    }
    if (f) fclose(f);
    log->rows = cs->rows;
    log->f = fopen(part, "a");
    if (!log->f) nh_die(cmd, "cannot append to %s: %s", part, strerror(errno));
}

/* Warm vectors first, then the checkpoint (model, identity, log state), then
 * the previous warm file: a kill anywhere leaves a checkpoint with its own. */
static void sh_checkpoint(const nh_cmd *cmd, const char *csv, const nh_ckpt_id *id, const nh_sharp *s, nh_log *log,
                          long long k, long long *saved, const nh_net *net) {
    char ck[4096], old[4096];
    if (fflush(log->f) != 0 || fsync(fileno(log->f)) != 0) nh_die(cmd, "cannot write %s: %s", log->path, strerror(errno));
    sh_warm_save(cmd, csv, s, k);
    nh_ckpt_save(cmd, (snprintf(ck, sizeof ck, "%s.ckpt", csv), ck), id, k, net, log->rows, log->last);
    if (*saved > 0) remove(sh_warm_path(old, sizeof old, csv, *saved));
    *saved = k;
}

/* The end of a run: the records synced to disk, the checkpoint dropped, then
 * CSV.partial renamed to CSV and the folder synced (as nh_file_write does).
 * A kill between the two leaves a complete CSV.partial and no checkpoint: a
 * rerun starts over, never a CSV that looks complete but is not. */
static void sh_finish(const nh_cmd *cmd, const char *csv, nh_log *log) {
    char ck[4096], wd[4096], dir[4096];
    if (fflush(log->f) != 0 || fsync(fileno(log->f)) != 0 || fclose(log->f) != 0)
        nh_die(cmd, "cannot write %s: %s", log->path, strerror(errno));
    log->f = NULL;
    snprintf(ck, sizeof ck, "%s.ckpt", csv);
    snprintf(wd, sizeof wd, "%s.warm", csv);
    NH_CHECK(cmd, nh_file_remove_tree(ck));
    NH_CHECK(cmd, nh_file_remove_tree(wd));
    if (rename(log->path, csv) != 0) nh_die(cmd, "cannot rename %s to %s: %s", log->path, csv, strerror(errno));
    snprintf(dir, sizeof dir, "%s", csv);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno != EINVAL) nh_die(cmd, "cannot sync the folder of %s: %s", csv, strerror(errno));
        close(fd);
    }
}

nh_status sh_run(const nh_cmd *cmd, nh_net **net, const nh_dataset *d, nh_loss loss, const sh_opts *o,
                 const char *csv, const nh_ckpt_id *id, long long *kend) {
    char ck[4096], wd[4096], part[4096], header[2048];
    snprintf(ck, sizeof ck, "%s.ckpt", csv);
    snprintf(wd, sizeof wd, "%s.warm", csv);
    snprintf(part, sizeof part, "%s.partial", csv);
    sh_header(header, sizeof header, &o->rec);
    if (o->restart) { NH_CHECK(cmd, nh_file_remove_tree(ck)); NH_CHECK(cmd, nh_file_remove_tree(wd)); }
    nh_ckpt_state cs;
    long long start = nh_ckpt_load(cmd, ck, id, o->steps, net, &cs);
    nh_curv *c = NULL;
    NH_CHECK(cmd, nh_curv_create_ex(*net, d->X, d->T, d->n, loss, &o->curv, &c));
    nh_sharp *s = NULL;
    NH_CHECK(cmd, nh_sharp_create(c, &o->rec, &s));
    if (start >= 0) sh_warm_load(cmd, csv, s, start);
    if (start >= 0 && !o->quiet) fprintf(stderr, "ntkhess %s: resuming from step %lld (%s)\n", cmd->name, start, ck);
    nh_log log;
    sh_open_log(cmd, csv, part, header, &cs, start, &log);
    if (start < 0) { start = 0; sh_record(cmd, c, s, o, 0, &log); }
    nh_status st = NH_OK;
    long long k, saved = start;
    double t0 = nh_cli_now();
    for (k = start + 1; k <= o->steps; k++) {
        st = nh_curv_gd_step(c, *net, o->eta);
        if (st != NH_OK) break;
        if (k % o->every == 0 || k == o->steps) sh_record(cmd, c, s, o, k, &log);
        if (k % o->ckev == 0 && k < o->steps) sh_checkpoint(cmd, csv, id, s, &log, k, &saved, *net);
        if (!o->quiet) nh_cli_progress("sharpness: step", (size_t)(k - start), (size_t)(o->steps - start), nh_cli_now() - t0);
    }
    nh_curv_free(c);
    nh_sharp_free(s);
    *kend = st == NH_OK ? o->steps : k;
    if (st != NH_OK && st != NH_EDIVERGED) { fclose(log.f); return st; }
    sh_finish(cmd, csv, &log); /* a diverged run is finished too: its records end at the last finite step */
    return st;
}

/* --------------------------------------------------------- CSV reading */

void sh_table_read(const nh_cmd *cmd, const char *path, sh_table *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f) nh_die(cmd, "cannot read %s: %s", path, strerror(errno));
    static char line[1 << 16];
    if (!fgets(line, sizeof line, f)) nh_die(cmd, "%s: empty", path);
    line[strcspn(line, "\r\n")] = 0;
    t->cols = 1;
    for (char *p = line; *p; p++) t->cols += *p == ',';
    t->names = calloc(t->cols, sizeof *t->names);
    if (!t->names) nh_die(cmd, "out of memory");
    char *save = NULL, *tok = strtok_r(line, ",", &save);
    for (size_t j = 0; tok && j < t->cols; j++, tok = strtok_r(NULL, ",", &save)) t->names[j] = strdup(tok);
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        if (t->rows == cap) {
            cap = cap ? 2 * cap : 64;
            double *v = realloc(t->v, cap * t->cols * sizeof *v);
            if (!v) nh_die(cmd, "out of memory");
            t->v = v;
        }
        char *p = line;
        for (size_t j = 0; j < t->cols; j++) {
            char *e;
            t->v[t->rows * t->cols + j] = strtod(p, &e);
            if (e == p) t->v[t->rows * t->cols + j] = NAN;
            p = strchr(e, ',');
            p = p ? p + 1 : e;
        }
        t->rows++;
    }
    fclose(f);
}

int sh_table_col(const sh_table *t, const char *name) {
    for (size_t j = 0; j < t->cols; j++)
        if (t->names[j] && strcmp(t->names[j], name) == 0) return (int)j;
    return -1;
}

void sh_table_free(sh_table *t) {
    for (size_t j = 0; j < t->cols; j++) free(t->names[j]);
    free(t->names);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* ----------------------------------------------------------- sharpness */

static const nh_optspec sharp_opts[] = {
    {"model", "DIR", NULL, "model directory to start from"},
    {"data", "X.npy", NULL, "inputs, shape (N, n_0)"},
    {"targets", "Y.npy", NULL, "targets (see ntkhess train --help)"},
    NH_OPT_LOSS("mse"),
    {"lr", "ETA", NULL, "learning rate eta (> 0)"},
    {"steps", "K", NULL, "number of full-batch gradient-descent steps"},
    {"every", "E", "1", "a record every E steps (and at steps 0 and K)"},
    {"top", "k", "1", "eigenvalues per operator (1..16): k > 1 adds columns H_1..H_k, I_1..I_k, S_1..S_k"},
    {"batch", "B", "0", "rows per pass over the data for the curvature and the GD steps (streaming, docs/streaming.md: "
                        "records equal up to summation order); all = N; 0 = all rows when they fit half the memory "
                        "limit, else the largest batch that does"},
    {"tol", "TOL", "1e-7", "converged when the Ritz residual is <= TOL x the largest |Ritz value|"},
    {"maxit", "M", "100", "at most M products per eigen-solve (memory: M vectors of P doubles)"},
    {"min-steps", "M0", "4", "products before the first convergence test of a warm-started solve"},
    {"cold", NULL, NULL, "no warm starts: every solve from a seeded random vector (for checks and benchmarks)"},
    {"no-ntk", NULL, NULL, "skip lam_NTK (written as nan)"},
    {"checkpoint-every", "C", "50", "save a checkpoint (FILE.csv.ckpt, FILE.csv.warm) every C steps"},
    {"restart", NULL, NULL, "drop an unfinished run's checkpoint and start over"},
    {"out", "FILE.csv", NULL, "the records"},
    {"threads", "T", "auto", "threads for BLAS and OpenMP (a resumed run must use the same)"},
    {NULL, NULL, NULL, NULL}};

/* --batch B, all (= N) or 0 (automatic). */
static size_t sharp_batch(const nh_args *a, size_t n) {
    const char *b = nh_arg_req(a, "batch");
    return strcmp(b, "all") == 0 ? n : (size_t)nh_arg_int(a, "batch", 0, (long long)1 << 40);
}

static void sharp_parse(const nh_cmd *cmd, const nh_args *a, size_t n, sh_opts *o) {
    memset(o, 0, sizeof *o);
    o->eta = nh_arg_double(a, "lr");
    if (!(o->eta > 0)) nh_die_usage(cmd, "--lr must be > 0, got %g", o->eta);
    o->steps = nh_arg_int(a, "steps", 0, (long long)1 << 40);
    o->every = nh_arg_int(a, "every", 1, (long long)1 << 40);
    o->ckev = nh_arg_int(a, "checkpoint-every", 1, (long long)1 << 40);
    o->rec = nh_sharp_opts_default();
    o->rec.top = (size_t)nh_arg_int(a, "top", 1, NH_SHARP_MAXTOP);
    o->rec.tol = nh_arg_double(a, "tol");
    if (!(o->rec.tol > 0 && o->rec.tol < 1)) nh_die_usage(cmd, "--tol must be in (0, 1), got %g", o->rec.tol);
    o->rec.maxit = (size_t)nh_arg_int(a, "maxit", 2, 100000);
    o->rec.min_steps = (size_t)nh_arg_int(a, "min-steps", 1, 100000);
    o->rec.cold = nh_arg_flag(a, "cold");
    o->rec.ntk = !nh_arg_flag(a, "no-ntk");
    o->restart = nh_arg_flag(a, "restart");
    o->curv = nh_curv_opts_default();
    o->curv.batch = sharp_batch(a, n);
}

static int run_sharpness(const nh_cmd *cmd, int argc, char **argv) {
    nh_args a;
    nh_cli_parse(cmd, argc, argv, &a);
    nh_cli_threads(&a);
    nh_loss loss = nh_arg_loss(cmd, &a);
    const char *model = nh_arg_req(&a, "model"), *xp = nh_arg_req(&a, "data"), *tp = nh_arg_req(&a, "targets");
    const char *out = nh_arg_req(&a, "out");
    nh_net *net = NULL;
    NH_CHECK(cmd, nh_model_load(model, &net));
    nh_dataset d;
    nh_cli_load_data(cmd, xp, tp, net, loss, &d);
    sh_opts o;
    sharp_parse(cmd, &a, d.n, &o);
    /* The checkpoint identity: everything that changes a record. */
    nh_ckpt_id id = {0};
    nh_ckpt_id_add(&id, "command", "sharpness");
    nh_ckpt_id_model(cmd, &id, model, net);
    nh_ckpt_id_file(cmd, &id, "data", xp);
    nh_ckpt_id_file(cmd, &id, "targets", tp);
    nh_ckpt_id_add(&id, "loss", "%s", nh_loss_name(loss));
    nh_ckpt_id_add(&id, "lr", "%.17g", o.eta);
    nh_ckpt_id_add(&id, "steps", "%lld", o.steps);
    nh_ckpt_id_add(&id, "every", "%lld", o.every);
    nh_ckpt_id_add(&id, "top", "%zu", o.rec.top);
    nh_ckpt_id_add(&id, "tol", "%.17g", o.rec.tol);
    nh_ckpt_id_add(&id, "maxit", "%zu,%zu", o.rec.maxit, o.rec.min_steps);
    nh_ckpt_id_add(&id, "cold-ntk", "%d,%d", o.rec.cold, o.rec.ntk); /* names: [a-z0-9_-] */
    /* the batch changes the sums' order (records equal to rounding, not bit for bit); 0 keeps older identities */
    if (o.curv.batch) nh_ckpt_id_add(&id, "batch", "%zu", o.curv.batch);
    long long kend;
    double t0 = nh_cli_now();
    nh_status st = sh_run(cmd, &net, &d, loss, &o, out, &id, &kend);
    if (st != NH_OK) nh_die(cmd, "%s at step %lld: %s", nh_strerror(st), kend, nh_last_error());
    fprintf(stderr, "ntkhess sharpness: %lld steps, records in %s (%.1f s)\n", o.steps, out, nh_cli_now() - t0);
    nh_net_free(net);
    nh_dataset_free(&d);
    return 0;
}

const nh_cmd nh_cmd_sharpness = {
    "sharpness", "Top eigenvalues of H, I, S and the NTK along full-batch gradient descent.",
    "--model DIR --data X.npy --targets Y.npy [--loss NAME] --lr ETA --steps K [--every E] [--top k] [--batch B] --out FILE.csv",
    "Trains as 'ntkhess train' (theta <- theta - eta grad C, the same steps bit for bit) and\n"
    "writes a record at steps 0, E, 2E, ..., K: step,t,loss,grad_norm, lam_H and lam_I (largest\n"
    "eigenvalues of H and I = J^T HC J), lam_S (the eigenvalue of S = H - I largest in magnitude,\n"
    "signed), lam_NTK (largest eigenvalue of the NTK Gram J J^T divided by N; equal to lam_I for\n"
    "mse, whose HC is 1/N), grad_overlap = |g . u_H| / |g| (u_H the top unit eigenvector of H),\n"
    "uIu and uSu = u_H^T I u_H and u_H^T S u_H (they sum to lam_H: which part makes the top of H),\n"
    "and matvecs_* (operator products used by each solve: H v, I v, S v, with the one I v, S v\n"
    "pair of uIu, uSu counted under H; for NTK one J^T u and one J v).  The solves are Lanczos with full reorthogonalization on exact products, started\n"
    "from the previous record's eigenvectors and stopped when every wanted Ritz residual is <=\n"
    "TOL x the largest |Ritz value| (tested after each product, from --min-steps on), so a\n"
    "record costs a few products once the spectrum moves slowly.  A warm start can in principle\n"
    "miss an eigenvalue that overtakes the tracked one faster than Lanczos finds it: --cold\n"
    "gives independent solves to compare.  --batch B streams the passes over batches of B rows\n"
    "(memory O(B widths); the GD steps and records stay full-batch, equal to the unbatched ones\n"
    "up to the order of the sums).  The records go to FILE.csv.partial, renamed to FILE.csv\n"
    "only when the run ends (a killed run never leaves a FILE.csv); a diverged run ends there\n"
    "too, its records stopping at the last finite step.  A run that is killed and started again\n"
    "with the same arguments (and --threads) resumes from FILE.csv.ckpt, continues\n"
    "FILE.csv.partial and writes the same file bit for bit.",
    sharp_opts, run_sharpness};
