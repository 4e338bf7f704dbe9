/* file.c -- the one file module: whole-file reads with a size cap, atomic
 * writes with fsync, all-or-nothing output folders with a lock and a
 * resumable work folder (ntkhess/io.h, "files" section). */
#include "core/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ reads */

static nh_status file_read_fd(int fd, const char *path, size_t cap, char **buf, size_t *len) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) return nh__fail(NH_EIO, "nh_file_read", "%s: cannot stat: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return nh__fail(NH_EIO, "nh_file_read", "%s: cannot read: %s", path, strerror(EISDIR));
    /* A regular file's size is known: refuse before allocating anything. */
    if (S_ISREG(sb.st_mode) && (unsigned long long)sb.st_size > (unsigned long long)cap)
        return nh__fail(NH_ETOOLARGE, "nh_file_read", "%s: %lld bytes, more than the %zu-byte limit", path,
                        (long long)sb.st_size, cap);
    int ok = 1;
    size_t need = nh__add(cap, 2, &ok); /* cap + 1 bytes (to see the excess) + the NUL */
    size_t size = S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1 : 65536;
    if (size > need) size = need;
    nh_status st = nh__check_bytes(ok, size, "nh_file_read", path);
    if (st) return st;
    char *b = nh__malloc(size);
    if (!b) return nh__fail(NH_ENOMEM, "nh_file_read", "%s: cannot allocate %zu bytes", path, size);
    size_t n = 0;
    for (;;) {
        if (n + 1 >= size) { /* keep room for one more byte and the NUL */
            if (size >= need) { /* unreachable: n > cap is caught below */
                free(b);
                return nh__fail(NH_ETOOLARGE, "nh_file_read", "%s: longer than the %zu-byte limit", path, cap);
            }
            size_t ns = size > need / 2 ? need : 2 * size;
            char *nb = realloc(b, ns);
            if (!nb) { free(b); return nh__fail(NH_ENOMEM, "nh_file_read", "%s: cannot allocate", path); }
            b = nb, size = ns;
        }
        ssize_t r = read(fd, b + n, size - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(b);
            return nh__fail(NH_EIO, "nh_file_read", "%s: read error: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > cap) {
            free(b);
            return nh__fail(NH_ETOOLARGE, "nh_file_read", "%s: longer than the %zu-byte limit", path, cap);
        }
    }
    b[n] = 0;
    *buf = b;
    if (len) *len = n;
    return NH_OK;
}

nh_status nh_file_read(const char *path, size_t cap, char **buf, size_t *len) {
    if (!path || !buf) NH_FAIL(NH_EINVAL, "NULL argument");
    *buf = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) NH_FAIL(NH_EIO, "%s: cannot open: %s", path, strerror(errno));
    nh_status st = file_read_fd(fd, path, cap, buf, len);
    close(fd);
    return st;
}

/* ----------------------------------------------------------------- writes */

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        p += w, len -= (size_t)w;
    }
    return 1;
}

/* The folder holding path ("." for a bare name) into buf. */
static const char *parent_of(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) { snprintf(buf, cap, "."); return buf; }
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/name" */
    if (n >= cap) n = cap - 1;
    memcpy(buf, path, n);
    buf[n] = 0;
    return buf;
}

/* fsync a folder so a rename inside it survives a power cut. */
static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    int ok = fsync(fd) == 0 || errno == EINVAL; /* some file systems cannot sync folders */
    close(fd);
    return ok;
}

nh_status nh_file_write(const char *path, const void *data, size_t len) {
    if (!path || (!data && len)) NH_FAIL(NH_EINVAL, "NULL argument");
    size_t plen = strlen(path);
    if (plen == 0 || plen > 4000) NH_FAIL(NH_EINVAL, "path empty or over 4000 bytes");
    char tmp[4096], dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) NH_FAIL(NH_EIO, "cannot create %s: %s", tmp, strerror(errno));
    int ok = write_all(fd, data, len) && fsync(fd) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) { ok = 0; err = errno; }
    if (ok && rename(tmp, path) != 0) { ok = 0; err = errno; }
    if (!ok) {
        unlink(tmp); /* never leave a partial file behind */
        NH_FAIL(NH_EIO, "cannot write %s: %s", path, strerror(err));
    }
    if (!fsync_dir(parent_of(path, dir, sizeof dir)))
        NH_FAIL(NH_EIO, "cannot sync the folder of %s: %s", path, strerror(errno));
    return NH_OK;
}

/* ------------------------------------------------------------ folder tree */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)ftw;
    if (flag == FTW_DP) rmdir(p); else unlink(p);
    return 0;
}

nh_status nh_file_remove_tree(const char *path) {
    if (!path) NH_FAIL(NH_EINVAL, "NULL argument");
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? NH_OK : nh__fail(NH_EIO, __func__, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        if (unlink(path) != 0) NH_FAIL(NH_EIO, "cannot remove %s: %s", path, strerror(errno));
        return NH_OK;
    }
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (lstat(path, &sb) == 0) NH_FAIL(NH_EIO, "cannot remove %s completely", path);
    return NH_OK;
}

nh_status nh_file_mkdirs(const char *dir) {
    if (!dir || !*dir) NH_FAIL(NH_EINVAL, "empty folder name");
    char p[4096];
    size_t n = strlen(dir);
    if (n >= sizeof p) NH_FAIL(NH_EINVAL, "folder name over 4095 bytes");
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) NH_FAIL(NH_EIO, "cannot create folder %s: %s", p, strerror(errno));
        struct stat sb;
        if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) NH_FAIL(NH_EIO, "%s exists and is not a folder", p);
        p[i] = c;
    }
    return NH_OK;
}

/* fsync every regular file under dir (depth-first), then the folders. */
static int sync_ok;
static int sync_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)ftw;
    int fd = open(p, (flag == FTW_DP ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0) { sync_ok = 0; return 0; }
    if (fsync(fd) != 0 && errno != EINVAL) sync_ok = 0;
    close(fd);
    return 0;
}

/* ---------------------------------------------------------- output folder */

struct nh_outdir {
    char final[4096]; /* the output folder as given */
    char parent[4096];
    char work[8400];  /* PARENT/.NAME.partial */
    char ready[8400]; /* PARENT/.NAME.ready: the finished work folder, about to be swapped in */
    char old[8400];   /* PARENT/.NAME.old: the replaced folder, fallback swap only */
    char lock[8400];  /* PARENT/.NAME.lock */
    char file[12600]; /* NH_OUTDIR_FILE: PARENT/.NAME.partial/NAME, the file being written */
    int lockfd;
    int resumed;
    unsigned flags;
};

/* Split final into parent and base name (trailing slashes dropped). */
static nh_status outdir_names(nh_outdir *d, const char *final) {
    size_t n = strlen(final);
    while (n > 1 && final[n - 1] == '/') n--;
    if (n == 0 || n > 3900) NH_FAIL(NH_EINVAL, "output folder name empty or over 3900 bytes");
    memcpy(d->final, final, n);
    d->final[n] = 0;
    const char *slash = strrchr(d->final, '/');
    const char *base = slash ? slash + 1 : d->final;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        NH_FAIL(NH_EINVAL, "output folder '%s' must name a folder to create or replace", final);
    parent_of(d->final, d->parent, sizeof d->parent);
    snprintf(d->work, sizeof d->work, "%s/.%s.partial", d->parent, base);
    snprintf(d->ready, sizeof d->ready, "%s/.%s.ready", d->parent, base);
    snprintf(d->old, sizeof d->old, "%s/.%s.old", d->parent, base);
    snprintf(d->lock, sizeof d->lock, "%s/.%s.lock", d->parent, base);
    snprintf(d->file, sizeof d->file, "%s/%s", d->work, base);
    return NH_OK;
}

/* Take the lock: an flock on PARENT/.NAME.lock (released by the kernel when
 * the owner dies, so a dead owner never blocks), holding the owner's pid
 * for the message.  The inode check catches a lock file that its previous
 * owner unlinked between our open and our flock. */
static nh_status outdir_lock(nh_outdir *d) {
    for (int tries = 0; tries < 8; tries++) {
        int fd = open(d->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) NH_FAIL(NH_EIO, "cannot create the lock file %s: %s", d->lock, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            char pid[32] = "";
            ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
            close(fd);
            if (e != EWOULDBLOCK) NH_FAIL(NH_EIO, "cannot lock %s: %s", d->lock, strerror(e));
            pid[r > 0 ? r : 0] = 0;
            pid[strcspn(pid, "\n")] = 0;
            NH_FAIL(NH_EBUSY, "%s is in use by process %s (lock file %s); wait for it or stop it", d->final,
                    *pid ? pid : "?", d->lock);
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(d->lock, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            char pid[32];
            int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)k, 0) != k) {
                int e = errno;
                unlink(d->lock);
                close(fd);
                NH_FAIL(NH_EIO, "cannot write the lock file %s: %s", d->lock, strerror(e));
            }
            d->lockfd = fd;
            return NH_OK;
        }
        close(fd); /* lost a race with the previous owner's release: try again */
    }
    NH_FAIL(NH_EBUSY, "%s: the lock file %s keeps changing; another run is starting there", d->final, d->lock);
}

static void outdir_unlock(nh_outdir *d) {
    if (d->lockfd < 0) return;
    unlink(d->lock); /* before close: the next owner's inode check needs it */
    close(d->lockfd);
    d->lockfd = -1;
}

nh_status nh_outdir_open_ex(const char *final_path, unsigned flags, nh_outdir **out) {
    if (!final_path || !out) NH_FAIL(NH_EINVAL, "NULL argument");
    *out = NULL;
    nh_outdir *d = nh__calloc(1, sizeof *d);
    if (!d) NH_FAIL(NH_ENOMEM, "cannot allocate");
    d->lockfd = -1;
    d->flags = flags;
    nh_status st = outdir_names(d, final_path);
    if (!st) st = nh_file_mkdirs(d->parent);
    struct stat sb;
    const int want_dir = !(flags & NH_OUTDIR_FILE);
    if (!st && stat(d->final, &sb) == 0 && (S_ISDIR(sb.st_mode) != want_dir))
        st = nh__fail(NH_EINVAL, "nh_outdir_open", "%s exists and is %s", d->final, want_dir ? "not a folder" : "a folder");
    if (!st) st = outdir_lock(d);
    /* We hold the lock, so every temporary here belongs to a dead owner. */
    if (!st) st = nh_file_remove_tree(d->ready);
    if (!st) st = nh_file_remove_tree(d->old);
    if (!st && !(flags & NH_OUTDIR_RESUME)) st = nh_file_remove_tree(d->work);
    if (!st) {
        d->resumed = lstat(d->work, &sb) == 0 && S_ISDIR(sb.st_mode);
        if (!d->resumed && lstat(d->work, &sb) == 0) st = nh_file_remove_tree(d->work);
    }
    if (!st && !d->resumed && mkdir(d->work, 0755) != 0)
        st = nh__fail(NH_EIO, "nh_outdir_open", "cannot create %s: %s", d->work, strerror(errno));
    if (st) { nh_outdir_abort(d); return st; }
    *out = d;
    return NH_OK;
}

nh_status nh_outdir_open(const char *final_path, nh_outdir **out) {
    return nh_outdir_open_ex(final_path, 0, out);
}

const char *nh_outdir_path(const nh_outdir *d) { return d ? d->work : NULL; }
const char *nh_outdir_final(const nh_outdir *d) { return d ? d->final : NULL; }
const char *nh_outdir_file(const nh_outdir *d) { return d && (d->flags & NH_OUTDIR_FILE) ? d->file : NULL; }
int nh_outdir_resumed(const nh_outdir *d) { return d ? d->resumed : 0; }

nh_status nh_outdir_reset(nh_outdir *d) {
    if (!d) NH_FAIL(NH_EINVAL, "NULL argument");
    NH_TRY(nh_file_remove_tree(d->work));
    if (mkdir(d->work, 0755) != 0) NH_FAIL(NH_EIO, "cannot create %s: %s", d->work, strerror(errno));
    d->resumed = 0;
    return NH_OK;
}

nh_status nh_file_replace_dir(const char *src, const char *dst) {
    if (!src || !dst) NH_FAIL(NH_EINVAL, "NULL argument");
    struct stat sb;
    if (lstat(dst, &sb) != 0) {
        if (rename(src, dst) != 0) NH_FAIL(NH_EIO, "cannot rename %s to %s: %s", src, dst, strerror(errno));
        return NH_OK;
    }
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_EXCHANGE) == 0) return nh_file_remove_tree(src);
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        NH_FAIL(NH_EIO, "cannot replace %s: %s", dst, strerror(errno));
#endif
    char old[4200];
    if (snprintf(old, sizeof old, "%s.old", dst) >= (int)sizeof old) NH_FAIL(NH_EINVAL, "path too long: %s", dst);
    NH_TRY(nh_file_remove_tree(old));
    if (rename(dst, old) != 0) NH_FAIL(NH_EIO, "cannot move %s aside: %s", dst, strerror(errno));
    if (rename(src, dst) != 0) NH_FAIL(NH_EIO, "cannot rename %s to %s: %s", src, dst, strerror(errno));
    return nh_file_remove_tree(old);
}

/* Put the finished folder `ready` at final: an atomic exchange when the
 * file system has one (final is whole, old or new, at every instant), else
 * two renames (a kill between them leaves final absent, never mixed). */
static nh_status outdir_swap(nh_outdir *d) {
    struct stat sb;
    if (lstat(d->final, &sb) != 0) {
        if (rename(d->ready, d->final) != 0) NH_FAIL(NH_EIO, "cannot rename into %s: %s", d->final, strerror(errno));
        return NH_OK;
    }
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, d->ready, AT_FDCWD, d->final, RENAME_EXCHANGE) == 0)
        return nh_file_remove_tree(d->ready); /* now the old folder */
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        NH_FAIL(NH_EIO, "cannot replace %s: %s", d->final, strerror(errno));
#endif
    if (rename(d->final, d->old) != 0) NH_FAIL(NH_EIO, "cannot move %s aside: %s", d->final, strerror(errno));
    if (rename(d->ready, d->final) != 0) NH_FAIL(NH_EIO, "cannot rename into %s: %s", d->final, strerror(errno));
    return nh_file_remove_tree(d->old);
}

nh_status nh_outdir_commit(nh_outdir *d) {
    if (!d) NH_FAIL(NH_EINVAL, "NULL argument");
    sync_ok = 1;
    nftw(d->work, sync_entry, 16, FTW_DEPTH | FTW_PHYS);
    nh_status st = NH_OK;
    if (!sync_ok) st = nh__fail(NH_EIO, "nh_outdir_commit", "cannot sync the files of %s", d->work);
    if (!st && (d->flags & NH_OUTDIR_FILE)) { /* one file: a plain atomic rename over final */
        struct stat sb;
        if (lstat(d->file, &sb) != 0 || !S_ISREG(sb.st_mode))
            st = nh__fail(NH_EIO, "nh_outdir_commit", "%s was not written", d->file);
        else if (rename(d->file, d->final) != 0)
            st = nh__fail(NH_EIO, "nh_outdir_commit", "cannot rename into %s: %s", d->final, strerror(errno));
        if (!st) st = nh_file_remove_tree(d->work);
        if (!st && !fsync_dir(d->parent))
            st = nh__fail(NH_EIO, "nh_outdir_commit", "cannot sync the folder %s: %s", d->parent, strerror(errno));
        if (st) { nh_outdir_abort(d); return st; }
        outdir_unlock(d);
        free(d);
        return NH_OK;
    }
    /* .partial -> .ready first, so a kill during the swap never leaves a
     * finished folder looking like resumable work. */
    if (!st && rename(d->work, d->ready) != 0)
        st = nh__fail(NH_EIO, "nh_outdir_commit", "cannot rename %s: %s", d->work, strerror(errno));
    if (!st) st = outdir_swap(d);
    if (!st && !fsync_dir(d->parent))
        st = nh__fail(NH_EIO, "nh_outdir_commit", "cannot sync the folder %s: %s", d->parent, strerror(errno));
    if (st) {
        nh_file_remove_tree(d->ready);
        nh_outdir_abort(d);
        return st;
    }
    outdir_unlock(d);
    free(d);
    return NH_OK;
}

void nh_outdir_abort(nh_outdir *d) {
    if (!d) return;
    if (d->lockfd >= 0) nh_file_remove_tree(d->work); /* only the lock's owner may touch it */
    outdir_unlock(d);
    free(d);
}

void nh_outdir_release(nh_outdir *d) {
    if (!d) return;
    outdir_unlock(d);
    free(d);
}
