/* ckpt.c -- resumable runs: a checkpoint directory beside the output holds
 * the model at the last completed step and a state file naming the run's
 * arguments.  A rerun with the same arguments loads it, drops CSV rows past
 * that step, and continues; results equal an uninterrupted run's because
 * every step is deterministic given theta. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

static unsigned long long nh__fnv(const char *s, unsigned long long h) {
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ULL; }
    return h;
}

unsigned long long nh_ckpt_signature(const char *const *parts, size_t n) {
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        const char *p = parts[i] ? parts[i] : "(null)";
        h = nh__fnv(p, h);
        h = nh__fnv("\x1f", h);
        struct stat sb; /* a data file that changed invalidates the checkpoint */
        if (parts[i] && stat(parts[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            char buf[64];
            snprintf(buf, sizeof buf, "%lld:%lld", (long long)sb.st_size, (long long)sb.st_mtime);
            h = nh__fnv(buf, h);
        }
    }
    return h;
}

/* Returns the checkpointed step (>= 0) and loads its network into *net, or
 * -1 when there is no usable checkpoint (then *net is untouched). */
long long nh_ckpt_load(const nh_cmd *cmd, const char *ckdir_in, unsigned long long sig, nh_net **net) {
    char path[4096], dirs[3][4096];
    /* A kill between the two renames of nh_ckpt_save leaves the newest whole
     * checkpoint in .new (its state file is written last) or .old. */
    snprintf(dirs[0], sizeof dirs[0], "%s", ckdir_in);
    snprintf(dirs[1], sizeof dirs[1], "%s.new", ckdir_in);
    snprintf(dirs[2], sizeof dirs[2], "%s.old", ckdir_in);
    FILE *f = NULL;
    const char *ckdir = NULL;
    for (int i = 0; i < 3 && !f; i++) {
        struct stat sb;
        if (i > 0 && stat(dirs[0], &sb) == 0) break; /* the main one exists but lacks state: none */
        f = fopen(nh_cli_path(path, sizeof path, dirs[i], "state.txt"), "r");
        if (f) ckdir = dirs[i];
    }
    if (!f) return -1;
    unsigned long long s = 0;
    long long step = -1;
    int ok = fscanf(f, "signature %llx\nstep %lld\n", &s, &step) == 2;
    fclose(f);
    if (!ok || step < 0) nh_die(cmd, "%s: corrupt checkpoint state; remove the directory to start over", ckdir);
    if (s != sig)
        nh_die(cmd, "%s holds a checkpoint of a run with other arguments or data; remove it (or choose another "
                    "output) to start over", ckdir);
    nh_net *n = NULL;
    NH_CHECK(cmd, nh_model_load(ckdir, &n));
    nh_net_free(*net);
    *net = n;
    return step;
}

void nh_ckpt_save(const nh_cmd *cmd, const char *ckdir, unsigned long long sig, long long step, const nh_net *net) {
    nh_cli_mkdir(cmd, ckdir);
    /* Stage the model and its state in ckdir.new, then swap directories:
     * at any kill point either the old or the new checkpoint is whole
     * (a leftover .new or .old is ignored and replaced next time). */
    char stage[4096], path[4096], text[128];
    snprintf(stage, sizeof stage, "%s.new", ckdir);
    NH_CHECK(cmd, nh_model_save(stage, net));
    snprintf(text, sizeof text, "signature %llx\nstep %lld\n", sig, step);
    nh_cli_write_text(cmd, nh_cli_path(path, sizeof path, stage, "state.txt"), text);
    /* Swap: ckdir -> ckdir.old, stage -> ckdir, remove old. */
    char old[4096];
    snprintf(old, sizeof old, "%s.old", ckdir);
    nh_ckpt_remove(old); /* a leftover from a kill */
    if (rename(ckdir, old) != 0 && errno != ENOENT) nh_die(cmd, "cannot rotate checkpoint %s: %s", ckdir, strerror(errno));
    if (rename(stage, ckdir) != 0) nh_die(cmd, "cannot install checkpoint %s: %s", ckdir, strerror(errno));
    nh_ckpt_remove(old);
}

/* Remove a checkpoint directory: it holds only our flat files, so unlink
 * every entry (a kill can leave any subset of them) and then the folder. */
void nh_ckpt_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(nh_cli_path(path, sizeof path, dir, e->d_name));
    closedir(d);
    rmdir(dir);
}

/* Keep the header and the rows whose first field (the step) is <= step. */
void nh_ckpt_truncate_csv(const nh_cmd *cmd, const char *csv, long long step) {
    FILE *f = fopen(csv, "r");
    if (!f) return;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap), line[65536];
    if (!out) nh_die(cmd, "out of memory");
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        if (l == 0 || line[l - 1] != '\n') break; /* a torn last line is dropped */
        if (!first) {
            char *end;
            long long s = strtoll(line, &end, 10);
            if (end == line || s > step) continue;
        }
        first = 0;
        if (len + l + 1 > cap) {
            cap = 2 * (len + l + 1);
            char *o2 = realloc(out, cap);
            if (!o2) nh_die(cmd, "out of memory");
            out = o2;
        }
        memcpy(out + len, line, l);
        len += l;
    }
    fclose(f);
    out[len] = 0;
    nh_cli_write_text(cmd, csv, out);
    free(out);
}
