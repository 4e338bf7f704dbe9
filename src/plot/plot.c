/* plot.c -- the plotting layer: line / point / bar figures and shaded
 * surfaces from caller-owned arrays, written as PNG and SVG through PLplot's
 * cairo drivers (plot_api.h has the API, docs/plots.md the design notes).
 *
 * PLplot facts this file relies on (PLplot 5.15):
 *  - Global state: every call takes plot_lock, makes a fresh stream with
 *    plmkstrm, ends it with plend1 and returns to the caller's stream.
 *  - plsdev() of an unknown device makes plinit() PROMPT ON STDIN for one;
 *    an unopenable output file makes it prompt for a name, 10 times, then
 *    exit().  So the drivers are looked up with plgDevs and the output files
 *    are created (open O_EXCL) before any stream exists.
 *  - plsfnam() strips "%n" (family-member placeholder): refused in paths.
 *  - plabort() prints to stderr unless the stream has plsError() buffers;
 *    it does here, and an abort turns into NH_EIO.  plexit() calls exit():
 *    the handler installed with plsexit() deletes our temporary files first.
 *  - 2-D arrays are indexed a[ix][iy] (x first), the transpose of the
 *    row-major z[j*nx + i] of the API.
 *  - Log axes take log10 data; plbox's "l" only changes the labels.
 *  - Text is UTF-8 with '#' escapes (#u, #d, ##). */
#include "core/internal.h"

#include <plplot.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(PLFLT) == sizeof(double), "PLplot must be built with double PLFLT");

/* ------------------------------------------------------------- palette */

enum {
    PAL_BG = 0,      /* white background                                  */
    PAL_FG = 1,      /* black: axes, text, NH_COLOR_BLACK                  */
    PAL_SERIES = 2,  /* 2..11: tab10 (NH_COLOR_BLUE .. NH_COLOR_CYAN)       */
    PAL_GRID = 12,   /* light grid lines                                   */
    PAL_HOLE = 13,   /* cells left out of a surface                        */
    PAL_CONTOUR = 14,/* contour lines                                      */
    PAL_NOTE = 15,   /* note text                                          */
    PAL_FRAME = 16,  /* legend frame                                       */
    PAL_MARK = 17,   /* surface marker                                     */
    PAL_N = 18
};

static const unsigned char pal_rgb[PAL_N][3] = {
    {255, 255, 255}, {0, 0, 0},
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
    {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
    {222, 222, 222}, {205, 205, 205}, {255, 255, 255}, {60, 60, 60}, {150, 150, 150},
    {230, 25, 25},
};

/* viridis (matplotlib), 9 anchors, linear in RGB between them */
static const double viridis[9][3] = {
    {68, 1, 84}, {71, 45, 123}, {59, 82, 139}, {44, 114, 142}, {33, 145, 140},
    {40, 174, 128}, {94, 201, 98}, {173, 220, 48}, {253, 231, 37},
};

static int color_index(nh_plot_color c, size_t k) {
    if (c == NH_COLOR_AUTO) return PAL_SERIES + (int)(k % 10);
    if (c == NH_COLOR_BLACK) return PAL_FG;
    return PAL_SERIES + (int)c - (int)NH_COLOR_BLUE;
}

static const char *marker_glyph(nh_plot_marker m) {
    switch (m) {
    case NH_MARKER_PLUS: return "+";
    case NH_MARKER_CIRCLE: return "\xe2\x97\x8b";   /* U+25CB white circle   */
    case NH_MARKER_DOT: return "\xe2\x97\x8f";      /* U+25CF black circle   */
    case NH_MARKER_SQUARE: return "\xe2\x96\xa1";   /* U+25A1 white square   */
    case NH_MARKER_TRIANGLE: return "\xe2\x96\xb3"; /* U+25B3 white triangle */
    case NH_MARKER_DIAMOND: return "\xe2\x97\x87";  /* U+25C7 white diamond  */
    case NH_MARKER_AUTO:
    case NH_MARKER_CROSS:
    default: return "\xc3\x97"; /* U+00D7 multiplication sign */
    }
}

/* ------------------------------------------------------ lock and files */

static pthread_mutex_t plot_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct outfile {
    char *final; /* STEM.ext            */
    char *tmp;   /* STEM.ext.XXXXXX     */
    int   live;  /* tmp exists on disk  */
} outfile;

enum { OUT_PNG = 0, OUT_SVG = 1, OUT_N = 2 };
static const char *const out_ext[OUT_N] = {"png", "svg"};
static const char *const out_dev[OUT_N] = {"pngcairo", "svgcairo"};

/* The files of the call in progress, for the plexit() handler (plot_lock). */
static outfile *plot_active;

static int plot_exit_handler(const char *msg) {
    (void)msg;
    if (plot_active)
        for (int k = 0; k < OUT_N; k++)
            if (plot_active[k].live && plot_active[k].tmp) unlink(plot_active[k].tmp);
    return 1;
}

static void outputs_free(outfile *o) {
    for (int k = 0; k < OUT_N; k++) {
        if (o[k].live && o[k].tmp) unlink(o[k].tmp);
        free(o[k].tmp);
        free(o[k].final);
        o[k].tmp = o[k].final = NULL;
        o[k].live = 0;
    }
}

/* Remove FINAL.tmpPID_N files left by killed writers (a PID that no longer
 * exists; a live process's temporaries are its own business). */
static void outputs_clean_stale(const char *final) {
    const char *slash = strrchr(final, '/');
    char dir[4096];
    const char *base = slash ? slash + 1 : final;
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - final) ? (int)(slash - final) : 1, final);
    else snprintf(dir, sizeof dir, ".");
    DIR *dp = opendir(dir);
    if (!dp) return;
    const size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(dp))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp", 4) != 0) continue;
        char *end;
        long pid = strtol(n + bl + 4, &end, 10);
        if (end == n + bl + 4 || *end != '_' || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, n);
        unlink(path);
    }
    closedir(dp);
}

/* Create STEM.ext.tmpPID_N exclusively (mode 0666 less the umask, like
 * fopen), which also proves the directory writable before PLplot runs. */
static nh_status outputs_create(const char *func, const char *path, outfile *o) {
    static unsigned long counter; /* under plot_lock */
    size_t len = strlen(path), cap = len + 48;
    if (len > 4 && (strcmp(path + len - 4, ".png") == 0 || strcmp(path + len - 4, ".svg") == 0))
        len -= 4; /* "out.png" means the stem "out" */
    for (int k = 0; k < OUT_N; k++) {
        o[k].final = nh__malloc(len + 5);
        o[k].tmp = nh__malloc(cap);
        if (!o[k].final || !o[k].tmp) return nh__fail(NH_ENOMEM, func, "cannot allocate a path");
        snprintf(o[k].final, len + 5, "%.*s.%s", (int)len, path, out_ext[k]);
        struct stat st;
        if (stat(o[k].final, &st) == 0 && S_ISDIR(st.st_mode))
            return nh__fail(NH_EIO, func, "%s is a directory", o[k].final);
        outputs_clean_stale(o[k].final);
        int fd = -1, err = 0;
        for (int tries = 0; tries < 100 && fd < 0; tries++) {
            snprintf(o[k].tmp, cap, "%s.tmp%ld_%lu", o[k].final, (long)getpid(), ++counter);
            fd = open(o[k].tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            err = errno;
            if (fd < 0 && err != EEXIST) break;
        }
        if (fd < 0)
            return nh__fail(NH_EIO, func, "cannot create a file next to %s: %s", o[k].final, strerror(err));
        o[k].live = 1;
        close(fd);
    }
    return NH_OK;
}

/* Read the first `nh` and last `nt` bytes of a file. */
static int file_ends(const char *name, unsigned char *head, size_t nh, unsigned char *tail, size_t nt,
                     long *size) {
    FILE *f = fopen(name, "rb");
    if (!f) return 0;
    int ok = fseek(f, 0, SEEK_END) == 0 && (*size = ftell(f)) >= (long)(nh > nt ? nh : nt) &&
             fseek(f, 0, SEEK_SET) == 0 && fread(head, 1, nh, f) == nh &&
             fseek(f, -(long)nt, SEEK_END) == 0 && fread(tail, 1, nt, f) == nt;
    fclose(f);
    return ok;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Is the temporary file a complete PNG of the right size / a complete SVG? */
static nh_status check_output(const char *func, int k, const char *name, int w, int h) {
    unsigned char head[24], tail[64];
    long size = 0;
    if (k == OUT_PNG) {
        static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        if (!file_ends(name, head, 24, tail, 12, &size) || memcmp(head, sig, 8) != 0 ||
            memcmp(head + 12, "IHDR", 4) != 0 || memcmp(tail + 4, "IEND", 4) != 0)
            return nh__fail(NH_EIO, func, "PLplot wrote an incomplete PNG (%ld bytes)", size);
        if (be32(head + 16) != (uint32_t)w || be32(head + 20) != (uint32_t)h)
            return nh__fail(NH_EIO, func, "PLplot wrote a %ux%u PNG, not %dx%d",
                            (unsigned)be32(head + 16), (unsigned)be32(head + 20), w, h);
        return NH_OK;
    }
    if (!file_ends(name, head, 5, tail, 16, &size))
        return nh__fail(NH_EIO, func, "PLplot wrote an incomplete SVG (%ld bytes)", size);
    size_t e = 16;
    while (e > 0 && (tail[e - 1] == '\n' || tail[e - 1] == '\r' || tail[e - 1] == ' ')) e--;
    if ((memcmp(head, "<?xml", 5) != 0 && memcmp(head, "<svg", 4) != 0) || e < 6 ||
        memcmp(tail + e - 6, "</svg>", 6) != 0)
        return nh__fail(NH_EIO, func, "PLplot wrote an incomplete SVG (%ld bytes)", size);
    return NH_OK;
}

static nh_status outputs_commit(const char *func, outfile *o, int w, int h) {
    for (int k = 0; k < OUT_N; k++) NH_TRY(check_output(func, k, o[k].tmp, w, h));
    for (int k = 0; k < OUT_N; k++) {
        if (rename(o[k].tmp, o[k].final) != 0) {
            int err = errno;
            if (k == OUT_SVG) unlink(o[OUT_PNG].final); /* all or nothing */
            return nh__fail(NH_EIO, func, "cannot rename %s into place: %s", o[k].tmp,
                            strerror(err));
        }
        o[k].live = 0;
    }
    return NH_OK;
}

/* ------------------------------------------------------------- drivers */

/* Are pngcairo and svgcairo installed?  plgDevs loads PLplot's driver
 * table: it calls plexit() (exit!) when PLPLOT_DRV_DIR names a directory
 * without drivers, and plabort() (a message on stderr) when the directory
 * is missing.  So a PLPLOT_DRV_DIR without the cairo driver is refused
 * first, and plgDevs runs inside a scratch stream whose plsError buffers
 * take any message.  Caller holds plot_lock. */
static nh_status check_drivers(const char *func) {
    const char *env = getenv("PLPLOT_DRV_DIR");
    if (env && *env) {
        char info[4096];
        int n = snprintf(info, sizeof info, "%s/cairo.driver_info", env);
        if (n < 0 || (size_t)n >= sizeof info || access(info, R_OK) != 0)
            return nh__fail(NH_EIO, func,
                            "PLPLOT_DRV_DIR=%s has no cairo driver (cairo.driver_info); unset it or "
                            "point it to PLplot's drivers directory", env);
    }
    PLINT prev = 0, strm = -1, errcode = 0;
    char errmsg[2048] = "";
    plgstrm(&prev);
    plmkstrm(&strm);
    if (strm < 0) {
        plsstrm(prev);
        return nh__fail(NH_EIO, func, "PLplot has no free stream");
    }
    plsError(&errcode, errmsg);
    const char *menus[256], *devs[256];
    const char **pm = menus, **pd = devs;
    int ndev = 256, found[OUT_N] = {0, 0};
    plgDevs(&pm, &pd, &ndev);
    for (int i = 0; i < ndev && i < 256; i++)
        for (int k = 0; k < OUT_N; k++)
            if (pd[i] && strcmp(pd[i], out_dev[k]) == 0) found[k] = 1;
    plend1();
    plsstrm(prev);
    for (int k = 0; k < OUT_N; k++)
        if (!found[k])
            return nh__fail(NH_EIO, func, "PLplot driver %s is not installed (Debian: plplot-driver-cairo)%s%s",
                            out_dev[k], errcode ? "; PLplot: " : "", errcode ? errmsg : "");
    return NH_OK;
}

nh_status nh_plot_available(void) {
    pthread_mutex_lock(&plot_lock);
    nh_status st = check_drivers(__func__);
    pthread_mutex_unlock(&plot_lock);
    return st;
}

/* -------------------------------------------------------------- streams */

/* Page geometry shared by the drawing code, known after plinit. */
typedef struct page {
    int    w, h;     /* pixels                                   */
    double ch_mm;    /* character height (mm)                    */
    double chx, chy; /* character height in normalized page units */
} page;

typedef void (*draw_fn)(const void *ctx, const page *pg);

/* Character height in pixels for a page, scaled with the panel size. */
static double char_px(int w, int h, size_t npanels) {
    double pw = (double)w / (double)npanels, s = pw < h ? pw : h;
    double c = 0.026 * s;
    if (c < 8.0) c = 8.0;
    if (c > 64.0) c = 64.0;
    return c;
}

static nh_status render(const char *func, int k, const char *file, int w, int h, size_t npanels,
                        draw_fn draw, const void *ctx) {
    PLINT prev = 0, strm = -1, errcode = 0;
    char errmsg[2048] = "";
    plgstrm(&prev);
    plmkstrm(&strm);
    if (strm < 0) {
        plsstrm(prev);
        return nh__fail(NH_EIO, func, "PLplot has no free stream");
    }
    plsError(&errcode, errmsg);
    plsdev(out_dev[k]);
    plsfnam(file);
    plspage(0.0, 0.0, w, h, 0, 0);
    PLINT r[PAL_N], g[PAL_N], b[PAL_N];
    for (int i = 0; i < PAL_N; i++) r[i] = pal_rgb[i][0], g[i] = pal_rgb[i][1], b[i] = pal_rgb[i][2];
    plscmap0(r, g, b, PAL_N);
    PLFLT pos[9], cr[9], cg[9], cb[9];
    for (int i = 0; i < 9; i++) {
        pos[i] = i / 8.0;
        cr[i] = viridis[i][0] / 255.0, cg[i] = viridis[i][1] / 255.0, cb[i] = viridis[i][2] / 255.0;
    }
    plscmap1n(256);
    plscmap1l(1, 9, pos, cr, cg, cb, NULL);
    plinit();
    if (!errcode) {
        pladv(0);
        PLFLT x0, x1, y0, y1;
        plgspa(&x0, &x1, &y0, &y1); /* page in mm */
        page pg;
        pg.w = w, pg.h = h;
        double px_per_mm = (double)w / (x1 - x0);
        pg.ch_mm = char_px(w, h, npanels) / px_per_mm;
        pg.chx = pg.ch_mm / (x1 - x0);
        pg.chy = pg.ch_mm / (y1 - y0);
        plschr(pg.ch_mm, 1.0);
        plsmaj(0.6 * pg.ch_mm, 1.0);
        plsmin(0.35 * pg.ch_mm, 1.0);
        plwidth(1.0);
        plcol0(PAL_FG);
        draw(ctx, &pg);
    }
    plend1();
    plsstrm(prev);
    if (errcode) {
        size_t n = strlen(errmsg);
        while (n && (errmsg[n - 1] == '\n' || errmsg[n - 1] == ' ')) errmsg[--n] = 0;
        const char *m = errmsg;
        while (*m == '\n') m++;
        return nh__fail(NH_EIO, func, "PLplot (%s): %s", out_dev[k], m);
    }
    return NH_OK;
}

/* Render every output and commit them; the caller holds plot_lock. */
static nh_status write_figure(const char *func, const char *path, int w, int h, size_t npanels,
                              draw_fn draw, const void *ctx) {
    outfile o[OUT_N];
    memset(o, 0, sizeof o);
    nh_status st = check_drivers(func);
    if (st == NH_OK) st = outputs_create(func, path, o);
    if (st == NH_OK) {
        plot_active = o;
        plsexit(plot_exit_handler);
        for (int k = 0; k < OUT_N && st == NH_OK; k++)
            st = render(func, k, o[k].tmp, w, h, npanels, draw, ctx);
        plsexit(NULL);
        plot_active = NULL;
    }
    if (st == NH_OK) st = outputs_commit(func, o, w, h);
    outputs_free(o);
    return st;
}

/* ---------------------------------------------------- shared validation */

static nh_status check_common(const char *func, const char *path, int *w, int *h, size_t npanels,
                              int wdef, int hdef, const char *note) {
    if (!path || !*path) return nh__fail(NH_EINVAL, func, "path is NULL or empty");
    if (strstr(path, "%n")) return nh__fail(NH_EINVAL, func, "path contains \"%%n\" (PLplot placeholder)");
    if (strlen(path) > 4000) return nh__fail(NH_EINVAL, func, "path too long");
    if (npanels < 1 || npanels > 16) return nh__fail(NH_EINVAL, func, "npanels %zu not in 1..16", npanels);
    int lines = 0;
    if (note && *note) {
        lines = 1;
        for (const char *c = note; *c; c++) lines += *c == '\n';
    }
    if (*w == 0) *w = wdef * (int)npanels;
    if (*h == 0) *h = hdef + 22 * lines;
    if (*w < 64 || *w > 16384 || *h < 64 || *h > 16384)
        return nh__fail(NH_EINVAL, func, "size %dx%d not in 64..16384", *w, *h);
    return NH_OK;
}

static int is_text(const char *s) { return s && *s; }

/* Draw the note lines and the "not shown" line at the bottom left. */
static void draw_note(const page *pg, const char *note, const char *dropped) {
    int nl = 0;
    char line[1024];
    const char *lines[64];
    size_t lens[64];
    if (note && *note) {
        const char *s = note;
        while (nl < 63) {
            const char *e = strchr(s, '\n');
            lines[nl] = s;
            lens[nl++] = e ? (size_t)(e - s) : strlen(s);
            if (!e) break;
            s = e + 1;
        }
    }
    if (dropped && *dropped) lines[nl] = dropped, lens[nl++] = strlen(dropped);
    if (!nl) return;
    plvpor(0.0, 1.0, 0.0, 1.0);
    plwind(0.0, 1.0, 0.0, 1.0);
    plschr(0.0, 0.85);
    plcol0(PAL_NOTE);
    for (int i = 0; i < nl; i++) {
        size_t n = lens[i] < sizeof line - 1 ? lens[i] : sizeof line - 1;
        memcpy(line, lines[i], n);
        line[n] = 0;
        double y = (0.8 + 1.45 * (nl - 1 - i)) * pg->chy;
        plptex(0.6 * pg->chx, y, 1.0, 0.0, 0.0, line);
    }
    plschr(0.0, 1.0);
    plcol0(PAL_FG);
}

static int note_lines(const char *note, const char *dropped) {
    int n = 0;
    if (note && *note) {
        n = 1;
        for (const char *c = note; *c; c++) n += *c == '\n';
    }
    return n + (dropped && *dropped ? 1 : 0);
}

static void draw_title(const page *pg, const char *title) {
    if (!is_text(title)) return;
    plvpor(0.0, 1.0, 0.0, 1.0);
    plwind(0.0, 1.0, 0.0, 1.0);
    plschr(0.0, 1.25);
    plcol0(PAL_FG);
    plptex(0.5, 1.0 - 1.3 * pg->chy, 1.0, 0.0, 0.5, title);
    plschr(0.0, 1.0);
}

static void format_dropped(char *buf, size_t cap, size_t nonfinite, size_t nonpos, int surface) {
    buf[0] = 0;
    if (!nonfinite && !nonpos) return;
    const char *what = surface ? "grid value" : "point";
    int k = snprintf(buf, cap, "not shown: ");
    if (nonfinite)
        k += snprintf(buf + k, cap - (size_t)k, "%zu non-finite %s%s%s", nonfinite, what,
                      nonfinite == 1 ? "" : "s", nonpos ? ", " : "");
    if (nonpos)
        snprintf(buf + k, cap - (size_t)k, "%zu %s%s <= 0 on a log scale", nonpos, what,
                 nonpos == 1 ? "" : "s");
}

/* ============================================================ xy plots */

typedef struct xy_series {
    const nh_plot_series *s;
    PLFLT         *x, *y, *lo, *hi; /* transformed; lo/hi of error bars (lo may be -INF) */
    unsigned char *ok;
    int            col;
    double         bar_off;         /* BARS: offset of this series in the group */
} xy_series;

typedef struct xy_panel {
    const nh_plot_panel *p;
    xy_series           *ser;
    double               x0, x1, y0, y1; /* world window (log10 where log) */
    double               bar_w;          /* BARS: width of one bar         */
    int                  legend;         /* NH_LEGEND_*, NONE without labels */
    size_t               nlegend;
    int                  yauto;          /* y range from the data           */
    PLFLT               *samp;           /* [2*nsamp] world points covered by
                                          * the drawing (legend placement)  */
    size_t               nsamp;
} xy_panel;

typedef struct xy_fig {
    const nh_plot_spec *spec;
    xy_panel           *pan;
    char                dropped[160];
    int                 any_title, any_xlabel, any_ylabel;
} xy_fig;

static double tr_log(double v, int lg) { return lg ? log10(v) : v; }

/* Fixed-point-free range helpers. */
static void range_add(double *lo, double *hi, double v) {
    if (!isfinite(v)) return;
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

static void auto_range(double lo, double hi, int lg, double pad, double *a, double *b) {
    double span = hi - lo;
    if (lg) {
        /* PLplot labels only whole decades: keep at least two inside, and
         * snap an end to a decade less than 0.15 decades beyond it */
        if (span < 1e-12) { *a = floor(lo - 0.5); *b = ceil(hi + 0.5); return; }
        double p = fmax(pad * span, 0.03);
        *a = lo - p, *b = hi + p;
        if (*a - floor(*a) < 0.15) *a = floor(*a);
        if (ceil(*b) - *b < 0.15) *b = ceil(*b);
        if (floor(*b + 1e-9) - ceil(*a - 1e-9) < 1) *a = floor(*a), *b = ceil(*b);
        if (*b - *a < 1) *b = *a + 1;
        return;
    }
    if (span <= 0 || span < 1e-12 * fabs(hi)) {
        double d = fabs(hi) > 0 ? 0.1 * fabs(hi) : 0.5;
        *a = lo - d, *b = hi + d;
        return;
    }
    *a = lo - pad * span, *b = hi + pad * span;
}

/* Points of the drawing, in world units, for the legend placement:
 * markers, error-bar ends, 8 points up each bar, 4 inside each segment. */
static nh_status xy_samples(const char *func, xy_panel *pp) {
    const nh_plot_panel *p = pp->p;
    size_t ns = 0;
    for (size_t is = 0; is < p->nseries; is++) {
        const xy_series *q = &pp->ser[is];
        int line = q->s->style == NH_STYLE_LINE || q->s->style == NH_STYLE_LINE_POINTS;
        for (size_t i = 0; i < q->s->n; i++) {
            if (!q->ok[i]) continue;
            ns += 1 + (q->s->yerr ? 2 : 0) + (q->s->style == NH_STYLE_BARS ? 8 : 0);
            ns += line && i + 1 < q->s->n && q->ok[i + 1] ? 4 : 0;
        }
    }
    int ok = 1;
    size_t bytes = nh__mul(ns, 2 * sizeof(PLFLT), &ok);
    NH_TRY(nh__check_bytes(ok, bytes, func, "legend samples"));
    pp->samp = nh__malloc(bytes ? bytes : 1);
    if (!pp->samp) return nh__fail(NH_ENOMEM, func, "cannot allocate %zu bytes", bytes);
    size_t k = 0;
#define ADD(X, Y) (pp->samp[2 * k] = (X), pp->samp[2 * k + 1] = (Y), k++)
    for (size_t is = 0; is < p->nseries; is++) {
        const xy_series *q = &pp->ser[is];
        int bars = q->s->style == NH_STYLE_BARS;
        int line = q->s->style == NH_STYLE_LINE || q->s->style == NH_STYLE_LINE_POINTS;
        double base = p->logy ? pp->y0 : 0.0;
        for (size_t i = 0; i < q->s->n; i++) {
            if (!q->ok[i]) continue;
            double cx = q->x[i] + (bars ? q->bar_off : 0.0);
            ADD(cx, q->y[i]);
            if (q->s->yerr) {
                ADD(cx, q->hi[i]);
                ADD(cx, isfinite(q->lo[i]) ? q->lo[i] : pp->y0);
            }
            if (bars)
                for (int t = 0; t < 8; t++) ADD(cx, base + (q->y[i] - base) * (t + 0.5) / 8.0);
            if (line && i + 1 < q->s->n && q->ok[i + 1])
                for (int u = 1; u < 5; u++)
                    ADD(q->x[i] + (q->x[i + 1] - q->x[i]) * u / 5.0, q->y[i] + (q->y[i + 1] - q->y[i]) * u / 5.0);
        }
    }
#undef ADD
    pp->nsamp = k;
    return NH_OK;
}

/* Validate series is of panel ip. */
static nh_status xy_series_check(const char *func, const nh_plot_panel *p, size_t ip, size_t is) {
    const nh_plot_series *s = &p->series[is];
    if (!s->x || !s->y || s->n < 1)
        return nh__fail(NH_EINVAL, func, "panel %zu series %zu: NULL x or y, or n = 0", ip, is);
    if (s->n > (size_t)INT_MAX / 2)
        return nh__fail(NH_ETOOLARGE, func, "panel %zu series %zu: n = %zu too large for PLplot", ip, is, s->n);
    if ((unsigned)s->style >= NH_STYLE_COUNT || (unsigned)s->color >= NH_COLOR_COUNT ||
        (unsigned)s->marker >= NH_MARKER_COUNT)
        return nh__fail(NH_EINVAL, func, "panel %zu series %zu: style, color or marker out of range", ip, is);
    if (s->style == NH_STYLE_BARS && p->logx) return nh__fail(NH_EINVAL, func, "panel %zu: bars on a log x axis", ip);
    if (s->yerr)
        for (size_t i = 0; i < s->n; i++)
            if (s->yerr[i] < 0)
                return nh__fail(NH_EINVAL, func, "panel %zu series %zu: yerr[%zu] = %g < 0", ip, is, i, s->yerr[i]);
    return NH_OK;
}

/* Data ranges and point counts of one panel while its series are loaded. */
typedef struct xy_range {
    double xlo, xhi, ylo, yhi;
    size_t nbars, ok, nonfinite, nonpos;
} xy_range;

/* Copy series is into axis units (log10 on log axes), marking the points
 * that can be drawn and widening the ranges. */
static nh_status xy_series_load(const char *func, const nh_plot_panel *p, xy_series *q, size_t is, xy_range *r) {
    const nh_plot_series *s = &p->series[is];
    q->s = s;
    int ok_mem = 1;
    size_t bytes = nh__mul(s->n, 4 * sizeof(PLFLT) + 1, &ok_mem);
    NH_TRY(nh__check_bytes(ok_mem, bytes, func, "series copy"));
    q->x = nh__malloc(bytes);
    if (!q->x) return nh__fail(NH_ENOMEM, func, "cannot allocate %zu bytes", bytes);
    q->y = q->x + s->n, q->lo = q->y + s->n, q->hi = q->lo + s->n;
    q->ok = (unsigned char *)(q->hi + s->n);
    q->col = color_index(s->color, is);
    if (s->style == NH_STYLE_BARS) r->nbars++;
    for (size_t i = 0; i < s->n; i++) {
        double x = s->x[i], y = s->y[i], e = s->yerr ? s->yerr[i] : 0.0;
        q->ok[i] = 0;
        if (!isfinite(x) || !isfinite(y) || !isfinite(e)) { r->nonfinite++; continue; }
        if ((p->logx && x <= 0) || (p->logy && y <= 0)) { r->nonpos++; continue; }
        q->ok[i] = 1;
        r->ok++;
        q->x[i] = tr_log(x, p->logx);
        q->y[i] = tr_log(y, p->logy);
        if (p->logy) {
            q->hi[i] = log10(y + e);
            q->lo[i] = y - e > 0 ? log10(y - e) : -INFINITY;
        } else {
            q->hi[i] = y + e, q->lo[i] = y - e;
        }
        range_add(&r->xlo, &r->xhi, q->x[i]);
        range_add(&r->ylo, &r->yhi, q->y[i]);
        if (s->yerr) { range_add(&r->ylo, &r->yhi, q->lo[i]); range_add(&r->ylo, &r->yhi, q->hi[i]); }
    }
    return NH_OK;
}

/* Smallest spacing of distinct x among the bar series' points. */
static double xy_bar_spacing(const xy_panel *pp) {
    const nh_plot_panel *p = pp->p;
    double dmin = INFINITY;
    for (size_t a = 0; a < p->nseries; a++) {
        const xy_series *qa = &pp->ser[a];
        if (qa->s->style != NH_STYLE_BARS) continue;
        for (size_t i = 0; i < qa->s->n; i++) {
            if (!qa->ok[i]) continue;
            for (size_t b = 0; b < p->nseries; b++) {
                const xy_series *qb = &pp->ser[b];
                if (qb->s->style != NH_STYLE_BARS) continue;
                for (size_t j = 0; j < qb->s->n; j++) {
                    double d = fabs(qb->x[j] - qa->x[i]);
                    if (qb->ok[j] && d > 0 && d < dmin) dmin = d;
                }
                if (qa->s->n * qb->s->n > 4000000) break; /* enough */
            }
        }
    }
    return isfinite(dmin) ? dmin : 1.0;
}

/* Bars: group width 0.8 x the smallest spacing, split among the bar series;
 * the x range grows by half a group and the y range includes 0. */
static void xy_bar_layout(xy_panel *pp, xy_range *r) {
    const nh_plot_panel *p = pp->p;
    const double gw = 0.8 * xy_bar_spacing(pp);
    pp->bar_w = gw / (double)r->nbars;
    size_t kb = 0;
    for (size_t a = 0; a < p->nseries; a++) {
        if (pp->ser[a].s->style != NH_STYLE_BARS) continue;
        pp->ser[a].bar_off = ((double)kb - 0.5 * (double)(r->nbars - 1)) * pp->bar_w;
        kb++;
    }
    r->xlo -= 0.5 * gw, r->xhi += 0.5 * gw;
    if (!p->logy) range_add(&r->ylo, &r->yhi, 0.0);
}

/* The axis windows: the panel's limits when given, else padded data ranges. */
static nh_status xy_window(const char *func, xy_panel *pp, size_t ip, const xy_range *r) {
    const nh_plot_panel *p = pp->p;
    if (isfinite(p->xmin) && isfinite(p->xmax) && p->xmin < p->xmax) {
        if (p->logx && p->xmin <= 0) return nh__fail(NH_EINVAL, func, "panel %zu: xmin <= 0 on a log axis", ip);
        pp->x0 = tr_log(p->xmin, p->logx), pp->x1 = tr_log(p->xmax, p->logx);
    } else {
        auto_range(r->xlo, r->xhi, p->logx, r->nbars ? 0.01 : 0.03, &pp->x0, &pp->x1);
    }
    if (isfinite(p->ymin) && isfinite(p->ymax) && p->ymin < p->ymax) {
        if (p->logy && p->ymin <= 0) return nh__fail(NH_EINVAL, func, "panel %zu: ymin <= 0 on a log axis", ip);
        pp->y0 = tr_log(p->ymin, p->logy), pp->y1 = tr_log(p->ymax, p->logy);
    } else {
        pp->yauto = 1;
        auto_range(r->ylo, r->yhi, p->logy, 0.05, &pp->y0, &pp->y1);
        if (r->nbars && !p->logy && r->ylo >= 0 && pp->y0 < 0) pp->y0 = 0; /* bars sit on the axis */
        if (r->nbars && !p->logy && r->yhi <= 0 && pp->y1 > 0) pp->y1 = 0;
    }
    return NH_OK;
}

/* Validate and load panel ip; r returns its point counts. */
static nh_status xy_panel_prepare(const char *func, const nh_plot_panel *p, size_t ip, xy_fig *fig, xy_range *r) {
    xy_panel *pp = &fig->pan[ip];
    pp->p = p;
    if (!p->series || p->nseries < 1) return nh__fail(NH_EINVAL, func, "panel %zu: no series", ip);
    if (p->nseries > 64) return nh__fail(NH_EINVAL, func, "panel %zu: more than 64 series", ip);
    if ((unsigned)p->legend >= NH_LEGEND_COUNT)
        return nh__fail(NH_EINVAL, func, "panel %zu: legend position %d out of range", ip, (int)p->legend);
    fig->any_title |= is_text(p->title);
    fig->any_xlabel |= is_text(p->xlabel);
    fig->any_ylabel |= is_text(p->ylabel);
    pp->ser = nh__calloc(p->nseries, sizeof *pp->ser);
    if (!pp->ser) return nh__fail(NH_ENOMEM, func, "cannot allocate series");
    for (size_t is = 0; is < p->nseries; is++) {
        NH_TRY(xy_series_check(func, p, ip, is));
        NH_TRY(xy_series_load(func, p, &pp->ser[is], is, r));
    }
    return NH_OK;
}

static nh_status xy_prepare(const char *func, const nh_plot_spec *spec, xy_fig *fig, nh_plot_report *rep) {
    size_t nonfinite = 0, nonpos = 0, drawn = 0;
    for (size_t ip = 0; ip < spec->npanels; ip++) {
        const nh_plot_panel *p = &spec->panels[ip];
        xy_panel *pp = &fig->pan[ip];
        xy_range r = {INFINITY, -INFINITY, INFINITY, -INFINITY, 0, 0, 0, 0};
        nh_status st = xy_panel_prepare(func, p, ip, fig, &r);
        nonpos += r.nonpos;
        NH_TRY(st);
        nonfinite += r.nonfinite;
        if (!r.ok) {
            if (rep) rep->n_drawn = drawn, rep->n_nonfinite = nonfinite, rep->n_nonpositive = nonpos;
            if (r.nonfinite) return nh__fail(NH_ENONFINITE, func, "panel %zu: no finite point", ip);
            return nh__fail(NH_EINVAL, func, "panel %zu: no positive value for the log axis", ip);
        }
        drawn += r.ok;
        if (r.nbars) xy_bar_layout(pp, &r);
        NH_TRY(xy_window(func, pp, ip, &r));
        pp->nlegend = 0;
        for (size_t is = 0; is < p->nseries; is++) pp->nlegend += is_text(p->series[is].label);
        pp->legend = pp->nlegend ? (int)p->legend : NH_LEGEND_NONE;
        NH_TRY(xy_samples(func, pp));
    }
    format_dropped(fig->dropped, sizeof fig->dropped, nonfinite, nonpos, 0);
    if (rep) rep->n_drawn = drawn, rep->n_nonfinite = nonfinite, rep->n_nonpositive = nonpos;
    return NH_OK;
}

static void xy_free(xy_fig *fig, size_t npanels) {
    if (!fig->pan) return;
    for (size_t ip = 0; ip < npanels; ip++) {
        xy_panel *pp = &fig->pan[ip];
        if (!pp->ser) continue;
        for (size_t is = 0; is < pp->p->nseries; is++) free(pp->ser[is].x);
        free(pp->ser);
        free(pp->samp);
    }
    free(fig->pan);
}

/* Viewport of a panel in normalized page coordinates. */
typedef struct box { double x0, x1, y0, y1; } box;

/* Width, in characters, of PLplot's numeric labels on an axis from a to b
 * (world units, log10 when lg), following pldtik/pldprec: tick spacing
 * 1, 2 or 5 x 10^k, fixed point with the tick's decimals, scaled labels
 * ("x10^n" at the end of the axis) beyond 1e5 or below 1e-4. */
static double label_chars(double a, double b, int lg) {
    if (lg) {
        double w = 2.0;
        for (int e = 0; e < 2; e++) {
            double k = e ? floor(b + 1e-9) : ceil(a - 1e-9);
            char t[32];
            int n = snprintf(t, sizeof t, "%.0f", k);
            if (2.0 + 0.75 * n > w) w = 2.0 + 0.75 * n;
        }
        return w;
    }
    double range = fabs(b - a);
    if (!(range > 0) || !isfinite(range)) return 4.0;
    double t1 = log10(range), np = floor(t1), t2;
    t1 -= np;
    if (t1 > 0.7781512503) t2 = 2;
    else if (t1 > 0.4771212549) t2 = 1;
    else if (t1 > 0.1760912591) t2 = 5, np -= 1;
    else t2 = 2, np -= 1;
    double tick = t2 * pow(10.0, np), vmax = fmax(fabs(a), fabs(b));
    if (vmax >= 1e5 || vmax < 1e-4) return 4.0;
    int prec = tick >= 1 ? 0 : (int)ceil(-log10(tick) - 1e-9);
    double w = 1.0;
    double ends[2] = {ceil(fmin(a, b) / tick - 1e-9) * tick, floor(fmax(a, b) / tick + 1e-9) * tick};
    for (int e = 0; e < 2; e++) {
        char t[64];
        int n = snprintf(t, sizeof t, "%.*f", prec, ends[e] == 0 ? 0.0 : ends[e]);
        double cw = (double)n - (t[0] == '-' ? 0.35 : 0.0) - (strchr(t, '.') ? 0.5 : 0.0);
        if (cw > w) w = cw;
    }
    return w;
}

#define CHAR_W 0.72  /* digit width / character height (DejaVu Sans via cairo) */
#define TICK_GAP 1.4 /* axis to numeric labels, in character heights        */

static size_t utf8_len(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Resolved legend and window of a panel (computed at draw time, when the
 * page geometry is known). */
typedef struct xy_res {
    double y1;         /* top of the window (raised for a legend)  */
    int    where;      /* NH_LEGEND_*, never AUTO                   */
    int    nrow, ncol; /* BELOW: layout                            */
    double ent_w;      /* one legend entry, page units              */
    double lw, lh;     /* legend box estimate, page units           */
} xy_res;

typedef struct xy_layout {
    double left_ch;    /* left margin of each panel, characters     */
    double ylab_disp;  /* y label offset, characters                */
    double below_ch;   /* legend band under the x labels            */
    xy_res res[16];
} xy_layout;

static box xy_viewport(const page *pg, const xy_fig *fig, const xy_layout *lay, size_t ip) {
    const nh_plot_spec *spec = fig->spec;
    double left = lay->left_ch * pg->chx, right = 1.8 * pg->chx;
    double top = (is_text(spec->title) ? 2.9 : 0.6) * pg->chy + (fig->any_title ? 2.2 : 0.9) * pg->chy;
    int nl = note_lines(spec->note, fig->dropped);
    double bottom = (fig->any_xlabel ? 4.6 : 3.0) * pg->chy + lay->below_ch * pg->chy +
                    (nl ? 0.4 + 1.45 * nl : 0.0) * pg->chy;
    double pw = 1.0 / (double)spec->npanels;
    box b;
    b.x0 = (double)ip * pw + left;
    b.x1 = (double)(ip + 1) * pw - right;
    b.y0 = bottom;
    b.y1 = 1.0 - top;
    return b;
}

static void legend_size(const page *pg, const xy_panel *pp, double vw, xy_res *r) {
    size_t maxlen = 1;
    for (size_t is = 0; is < pp->p->nseries; is++) {
        const char *l = pp->p->series[is].label;
        if (is_text(l) && utf8_len(l) > maxlen) maxlen = utf8_len(l);
    }
    r->ent_w = 0.075 * vw + (1.6 + 0.9 * 0.75 * (double)maxlen + 1.2) * pg->chx;
    r->lw = r->ent_w + 0.6 * pg->chx;
    r->lh = (2.0 * (double)pp->nlegend + 1.0) * pg->chy;
}

/* Decide where the legend goes: see nh_plot_legend in plot_api.h. */
static void xy_resolve(const page *pg, const xy_panel *pp, const box *vb, xy_res *r) {
    r->y1 = pp->y1;
    r->where = pp->legend;
    r->nrow = r->ncol = 0;
    if (r->where == NH_LEGEND_NONE) return;
    double vw = vb->x1 - vb->x0, vh = vb->y1 - vb->y0;
    legend_size(pg, pp, vw, r);
    if (r->where == NH_LEGEND_AUTO) {
        double lw = r->lw / vw + 0.03, lh = r->lh / vh + 0.03; /* incl. offsets */
        static const int corner[4] = {NH_LEGEND_TOP_RIGHT, NH_LEGEND_TOP_LEFT, NH_LEGEND_BOTTOM_RIGHT,
                                      NH_LEGEND_BOTTOM_LEFT};
        size_t cnt[4] = {0, 0, 0, 0};
        double ytop[2] = {0, 0}; /* highest sample in the x band of the top corners */
        double sx = 1.0 / (pp->x1 - pp->x0), sy = 1.0 / (pp->y1 - pp->y0);
        for (size_t k = 0; k < pp->nsamp; k++) {
            double X = (pp->samp[2 * k] - pp->x0) * sx, Y = (pp->samp[2 * k + 1] - pp->y0) * sy;
            if (X < -0.01 || X > 1.01) continue;
            int right = X > 1 - lw, left = X < lw;
            if (right && Y > ytop[0]) ytop[0] = Y;
            if (left && Y > ytop[1]) ytop[1] = Y;
            if (Y < -0.01 || Y > 1.01) continue;
            int top = Y > 1 - lh, bot = Y < lh;
            cnt[0] += top && right;
            cnt[1] += top && left;
            cnt[2] += bot && right;
            cnt[3] += bot && left;
        }
        int best = 0;
        for (int c = 1; c < 4; c++)
            if (cnt[c] < cnt[best]) best = c;
        if (lw > 0.9 || lh > 0.9) r->where = NH_LEGEND_BELOW;
        else if (cnt[best] == 0) r->where = corner[best];
        else if (pp->yauto) {
            double span = pp->y1 - pp->y0, grow[2], ynew[2];
            for (int c = 0; c < 2; c++) {
                double need = fmax(ytop[c], 0.0) * span / (1.0 - lh - 0.02);
                ynew[c] = pp->y0 + need;
                if (pp->p->logy) ynew[c] = ceil(ynew[c] - 1e-9);
                if (ynew[c] < pp->y1) ynew[c] = pp->y1;
                grow[c] = (ynew[c] - pp->y0) / span;
            }
            int c = grow[1] < grow[0] ? 1 : 0;
            if (grow[c] <= 1.3) r->where = corner[c], r->y1 = ynew[c];
            else r->where = NH_LEGEND_BELOW;
        } else r->where = NH_LEGEND_BELOW;
    }
    if (r->where == NH_LEGEND_BELOW) {
        int n = (int)pp->nlegend;
        r->ncol = (int)floor(vw / r->ent_w);
        if (r->ncol < 1) r->ncol = 1;
        if (r->ncol > n) r->ncol = n;
        r->nrow = (n + r->ncol - 1) / r->ncol;
        r->ncol = (n + r->nrow - 1) / r->nrow; /* balance the columns */
    }
}

static void xy_layout_compute(const page *pg, const xy_fig *fig, xy_layout *lay) {
    const nh_plot_spec *spec = fig->spec;
    double lab = 0;
    for (size_t ip = 0; ip < spec->npanels; ip++) {
        const xy_panel *pp = &fig->pan[ip];
        double c = label_chars(pp->y0, pp->y1, pp->p->logy);
        if (c > lab) lab = c;
    }
    lay->ylab_disp = lab * CHAR_W + TICK_GAP + 1.3;
    lay->left_ch = lab * CHAR_W + TICK_GAP + (fig->any_ylabel ? 2.2 : 0.0) + 0.6;
    lay->below_ch = 0;
    for (int pass = 0; pass < 2; pass++) { /* the band changes the viewports */
        double band = 0;
        for (size_t ip = 0; ip < spec->npanels; ip++) {
            box vb = xy_viewport(pg, fig, lay, ip);
            xy_resolve(pg, &fig->pan[ip], &vb, &lay->res[ip]);
            if (lay->res[ip].where == NH_LEGEND_BELOW) {
                double b = 2.0 * lay->res[ip].nrow + 1.2;
                if (b > band) band = b;
            }
        }
        if (band == lay->below_ch) break;
        lay->below_ch = band;
    }
    /* the raised tops may widen the labels: recompute the margin */
    for (size_t ip = 0; ip < spec->npanels; ip++) {
        double c = label_chars(fig->pan[ip].y0, lay->res[ip].y1, fig->pan[ip].p->logy);
        if (c > lab) lab = c;
    }
    lay->ylab_disp = lab * CHAR_W + TICK_GAP + 1.3;
    lay->left_ch = lab * CHAR_W + TICK_GAP + (fig->any_ylabel ? 2.2 : 0.0) + 0.6;
}

static void xy_legend(const page *pg, const xy_fig *fig, const xy_panel *pp, const xy_res *r,
                      const box *vb) {
    if (r->where == NH_LEGEND_NONE) return;
    PLINT pos = PL_POSITION_VIEWPORT, opt0 = PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX;
    double ox = 0.015, oy = 0.02;
    PLINT nrow = 0, ncol = 0;
    switch (r->where) {
    case NH_LEGEND_TOP_LEFT: pos |= PL_POSITION_INSIDE | PL_POSITION_TOP | PL_POSITION_LEFT; break;
    case NH_LEGEND_BOTTOM_LEFT: pos |= PL_POSITION_INSIDE | PL_POSITION_BOTTOM | PL_POSITION_LEFT; break;
    case NH_LEGEND_BOTTOM_RIGHT: pos |= PL_POSITION_INSIDE | PL_POSITION_BOTTOM | PL_POSITION_RIGHT; break;
    case NH_LEGEND_BELOW:
        pos |= PL_POSITION_OUTSIDE | PL_POSITION_BOTTOM;
        opt0 |= PL_LEGEND_ROW_MAJOR;
        ox = 0.0;
        oy = ((fig->any_xlabel ? 4.5 : 2.9) + 0.1) * pg->chy / (vb->y1 - vb->y0);
        nrow = r->nrow, ncol = r->ncol;
        break;
    default: pos |= PL_POSITION_INSIDE | PL_POSITION_TOP | PL_POSITION_RIGHT; break;
    }
    PLINT opt[64], tcol[64], bcol[64], bpat[64], lcol[64], lsty[64], scol[64], snum[64];
    PLFLT bscale[64], bwid[64], lwid[64], sscale[64];
    const char *text[64], *sym[64];
    PLINT k = 0;
    for (size_t is = 0; is < pp->p->nseries && k < 64; is++) {
        const nh_plot_series *s = &pp->p->series[is];
        if (!is_text(s->label)) continue;
        int col = pp->ser[is].col;
        opt[k] = s->style == NH_STYLE_LINE ? PL_LEGEND_LINE
               : s->style == NH_STYLE_POINTS ? PL_LEGEND_SYMBOL
               : s->style == NH_STYLE_LINE_POINTS ? (PL_LEGEND_LINE | PL_LEGEND_SYMBOL)
               : PL_LEGEND_COLOR_BOX;
        tcol[k] = PAL_FG;
        text[k] = s->label;
        bcol[k] = col, bpat[k] = 0, bscale[k] = 0.8, bwid[k] = 1.0;
        lcol[k] = col, lsty[k] = 1, lwid[k] = 2.2;
        scol[k] = col, sscale[k] = 1.15 / 0.9;
        snum[k] = s->style == NH_STYLE_LINE_POINTS ? 2 : 1;
        sym[k] = marker_glyph(s->marker);
        k++;
    }
    if (!nrow) nrow = k, ncol = 1;
    PLFLT lw_out, lh_out;
    plschr(0.0, 0.9);
    plwidth(1.0);
    pllegend(&lw_out, &lh_out, opt0, pos, ox, oy, 0.075, PAL_BG, PAL_FRAME, 1, nrow, ncol, k, opt,
             0.7, 1.0, 2.2, 0.0, tcol, text, bcol, bpat, bscale, bwid, lcol, lsty, lwid, scol, sscale,
             snum, sym);
    plschr(0.0, 1.0);
}

/* Axes box, panel title and axis labels: the frame shared by the xy and
 * surface panels (plbox options xo, yo). */
static void draw_frame(const char *xo, const char *yo, const char *title, const char *xlabel, const char *ylabel,
                       double ylab_disp) {
    plwidth(1.2);
    plcol0(PAL_FG);
    plbox(xo, 0.0, 0, yo, 0.0, 0);
    if (is_text(title)) {
        plschr(0.0, 1.1);
        plmtex("t", 0.8, 0.5, 0.5, title);
        plschr(0.0, 1.0);
    }
    if (is_text(xlabel)) plmtex("b", 3.1, 0.5, 0.5, xlabel);
    if (is_text(ylabel)) plmtex("l", ylab_disp, 0.5, 0.5, ylabel);
}

static void xy_draw_bars(const xy_panel *pp, const xy_series *q) {
    const double base = pp->p->logy ? pp->y0 : 0.0;
    for (size_t i = 0; i < q->s->n; i++) {
        if (!q->ok[i] || q->y[i] == base) continue;
        double cx = q->x[i] + q->bar_off, hw = 0.5 * pp->bar_w * 0.92;
        PLFLT bx[4] = {cx - hw, cx + hw, cx + hw, cx - hw};
        PLFLT by[4] = {base, base, q->y[i], q->y[i]};
        plfill(4, bx, by);
    }
}

/* One polyline per run of drawable points. */
static void xy_draw_lines(const xy_series *q) {
    const size_t n = q->s->n;
    plwidth(2.2);
    size_t i = 0;
    while (i < n) {
        while (i < n && !q->ok[i]) i++;
        size_t j = i;
        while (j < n && q->ok[j]) j++;
        if (j - i >= 2) plline((PLINT)(j - i), q->x + i, q->y + i);
        i = j;
    }
}

/* Error bars with caps (cap: half width in world x); a bar reaching below
 * the window is drawn to its bottom edge without the lower cap. */
static void xy_draw_errbars(const xy_panel *pp, const xy_series *q, double y1, double cap) {
    const nh_plot_series *s = q->s;
    const double ylo_clip = pp->y0 - 1e-9 * (y1 - pp->y0);
    plwidth(1.3);
    double off = s->style == NH_STYLE_BARS ? q->bar_off : 0.0;
    if (s->style == NH_STYLE_BARS) plcol0(PAL_FG);
    for (size_t i = 0; i < s->n; i++) {
        if (!q->ok[i] || s->yerr[i] <= 0) continue;
        double cx = q->x[i] + off;
        if (cx < pp->x0 || cx > pp->x1) continue;
        int clipped = !(q->lo[i] >= ylo_clip);
        PLFLT ex[2] = {cx, cx}, ey[2] = {clipped ? pp->y0 : q->lo[i], q->hi[i]};
        plline(2, ex, ey);
        PLFLT cxs[2] = {cx - cap, cx + cap}, cys[2] = {q->hi[i], q->hi[i]};
        if (q->hi[i] <= y1) plline(2, cxs, cys);
        if (!clipped) {
            cys[0] = cys[1] = q->lo[i];
            plline(2, cxs, cys);
        }
    }
}

static void xy_draw_markers(const xy_panel *pp, const xy_series *q, double y1) {
    plschr(0.0, 1.15);
    plwidth(1.0);
    const char *g = marker_glyph(q->s->marker);
    for (size_t i = 0; i < q->s->n; i++) {
        if (!q->ok[i]) continue;
        if (q->x[i] < pp->x0 || q->x[i] > pp->x1 || q->y[i] < pp->y0 || q->y[i] > y1) continue;
        plstring(1, q->x + i, q->y + i, g);
    }
    plschr(0.0, 1.0);
}

static void xy_draw_panel(const page *pg, const xy_fig *fig, const xy_layout *lay, size_t ip) {
    const xy_panel *pp = &fig->pan[ip];
    const xy_res *r = &lay->res[ip];
    const nh_plot_panel *p = pp->p;
    box vb = xy_viewport(pg, fig, lay, ip);
    double y1 = r->y1;
    plvpor(vb.x0, vb.x1, vb.y0, vb.y1);
    plwind(pp->x0, pp->x1, pp->y0, y1);
    /* grid */
    plcol0(PAL_GRID);
    plwidth(0.8);
    plbox(p->logx ? "gl" : "g", 0.0, 0, p->logy ? "gl" : "g", 0.0, 0);
    double xs = (pp->x1 - pp->x0) / (vb.x1 - vb.x0); /* world x per page unit */
    double cap = 0.3 * pg->chx * xs;
    /* bars first, then lines, error bars and markers on top */
    for (int pass = 0; pass < 4; pass++) {
        for (size_t is = 0; is < p->nseries; is++) {
            const xy_series *q = &pp->ser[is];
            const nh_plot_style st = q->s->style;
            plcol0(q->col);
            if (pass == 0 && st == NH_STYLE_BARS) xy_draw_bars(pp, q);
            else if (pass == 1 && (st == NH_STYLE_LINE || st == NH_STYLE_LINE_POINTS)) xy_draw_lines(q);
            else if (pass == 2 && q->s->yerr) xy_draw_errbars(pp, q, y1, cap);
            else if (pass == 3 && (st == NH_STYLE_POINTS || st == NH_STYLE_LINE_POINTS)) xy_draw_markers(pp, q, y1);
        }
    }
    draw_frame(p->logx ? "bcnstl" : "bcnst", p->logy ? "bcnstvl" : "bcnstv", p->title, p->xlabel, p->ylabel,
               lay->ylab_disp);
    plwidth(1.0);
    xy_legend(pg, fig, pp, r, &vb);
}

static void xy_draw(const void *ctx, const page *pg) {
    const xy_fig *fig = ctx;
    xy_layout lay;
    xy_layout_compute(pg, fig, &lay);
    draw_title(pg, fig->spec->title);
    for (size_t ip = 0; ip < fig->spec->npanels; ip++) xy_draw_panel(pg, fig, &lay, ip);
    draw_note(pg, fig->spec->note, fig->dropped);
}

nh_status nh_plot_xy(const nh_plot_spec *spec, nh_plot_report *report) {
    if (report) memset(report, 0, sizeof *report);
    if (!spec) NH_FAIL(NH_EINVAL, "spec is NULL");
    int w = spec->width, h = spec->height;
    NH_TRY(check_common(__func__, spec->path, &w, &h, spec->npanels, 560, 460, spec->note));
    if (!spec->panels) NH_FAIL(NH_EINVAL, "panels is NULL");
    xy_fig fig;
    memset(&fig, 0, sizeof fig);
    fig.spec = spec;
    fig.pan = nh__calloc(spec->npanels, sizeof *fig.pan);
    if (!fig.pan) NH_FAIL(NH_ENOMEM, "cannot allocate panels");
    nh_status st = xy_prepare(__func__, spec, &fig, report);
    if (st == NH_OK) {
        pthread_mutex_lock(&plot_lock);
        st = write_figure(__func__, spec->path, w, h, spec->npanels, xy_draw, &fig);
        pthread_mutex_unlock(&plot_lock);
    }
    xy_free(&fig, spec->npanels);
    return st;
}

/* ============================================================ surfaces */

typedef struct sf_panel {
    const nh_surface_panel *p;
    PLFLT        **z;      /* [nx][ny], PLplot order, holes filled in */
    PLFLT         *xg, *yg;
    unsigned char *hole;   /* [ny*nx] API order                       */
    size_t         nholes;
    double         zlo, zhi; /* colour range (transformed)            */
    PLFLT         *edges;  /* nshades + 1                             */
    PLFLT         *clev;   /* ncont                                   */
} sf_panel;

typedef struct sf_fig {
    const nh_surface_spec *spec;
    sf_panel              *pan;
    int                    nshades, ncont;
    char                   dropped[160];
    int                    any_title;
} sf_fig;

static void sf_free(sf_fig *fig, size_t npanels) {
    if (!fig->pan) return;
    for (size_t ip = 0; ip < npanels; ip++) {
        sf_panel *q = &fig->pan[ip];
        free(q->z);
        free(q->hole);
        free(q->edges);
    }
    free(fig->pan);
}

/* Fill holes by repeated averaging of filled 4-neighbours (only so that
 * plshades and plcont see a smooth field; the holes are painted over). */
static void sf_inpaint(sf_panel *q, size_t nx, size_t ny, unsigned char *done) {
    size_t n = nx * ny, left = 0;
    for (size_t k = 0; k < n; k++) {
        done[k] = !q->hole[k];
        left += q->hole[k];
    }
    while (left) {
        size_t filled = 0;
        for (size_t j = 0; j < ny; j++)
            for (size_t i = 0; i < nx; i++) {
                size_t k = j * nx + i;
                if (done[k]) continue;
                double s = 0;
                int c = 0;
                if (i > 0 && done[k - 1] == 1) s += q->z[i - 1][j], c++;
                if (i + 1 < nx && done[k + 1] == 1) s += q->z[i + 1][j], c++;
                if (j > 0 && done[k - nx] == 1) s += q->z[i][j - 1], c++;
                if (j + 1 < ny && done[k + nx] == 1) s += q->z[i][j + 1], c++;
                if (c) { q->z[i][j] = s / c; done[k] = 2; filled++; }
            }
        for (size_t k = 0; k < n; k++)
            if (done[k] == 2) done[k] = 1;
        left -= filled;
        if (!filled) break; /* cannot happen: at least one valid node */
    }
}

static nh_status sf_check_panel(const char *func, const nh_surface_panel *p, size_t ip) {
    if (!p->z) return nh__fail(NH_EINVAL, func, "panel %zu: z is NULL", ip);
    if (p->nx < 2 || p->ny < 2) return nh__fail(NH_EINVAL, func, "panel %zu: grid %zu x %zu, need >= 2 x 2", ip, p->nx, p->ny);
    if (!(isfinite(p->xmin) && isfinite(p->xmax) && isfinite(p->ymin) && isfinite(p->ymax) &&
          p->xmin < p->xmax && p->ymin < p->ymax))
        return nh__fail(NH_EINVAL, func, "panel %zu: bad extent [%g, %g] x [%g, %g]", ip, p->xmin, p->xmax, p->ymin, p->ymax);
    if (p->mark && !(isfinite(p->mark_x) && isfinite(p->mark_y)))
        return nh__fail(NH_EINVAL, func, "panel %zu: mark is not finite", ip);
    if (p->nx > (size_t)INT_MAX / 2 || p->ny > (size_t)INT_MAX / 2)
        return nh__fail(NH_ETOOLARGE, func, "panel %zu: grid too large for PLplot", ip);
    return NH_OK;
}

/* The panel's grid: z as PLplot's column pointers (z[i][j]), the node
 * coordinates xg, yg, the hole map (2 n bytes: holes, in-paint marks), the
 * shade edges and contour levels. */
static nh_status sf_alloc_panel(const char *func, const sf_fig *fig, sf_panel *q) {
    const nh_surface_panel *p = q->p;
    int ok = 1;
    size_t n = nh__mul(p->nx, p->ny, &ok);
    size_t bytes = nh__add(nh__mul(n, sizeof(PLFLT) + 2, &ok), nh__mul(p->nx + p->ny, sizeof(PLFLT), &ok), &ok);
    bytes = nh__add(bytes, nh__mul(p->nx, sizeof(PLFLT *), &ok), &ok);
    NH_TRY(nh__check_bytes(ok, bytes, func, "surface copy"));
    q->z = nh__malloc(p->nx * sizeof(PLFLT *) + n * sizeof(PLFLT) + (p->nx + p->ny) * sizeof(PLFLT));
    q->hole = nh__malloc(2 * n);
    q->edges = nh__malloc(((size_t)fig->nshades + 1 + (size_t)fig->ncont) * sizeof(PLFLT));
    if (!q->z || !q->hole || !q->edges) return nh__fail(NH_ENOMEM, func, "cannot allocate the grid");
    q->clev = q->edges + fig->nshades + 1;
    PLFLT *data = (PLFLT *)(q->z + p->nx);
    q->xg = data + n;
    q->yg = q->xg + p->nx;
    for (size_t i = 0; i < p->nx; i++) {
        q->z[i] = data + i * p->ny;
        q->xg[i] = p->xmin + (p->xmax - p->xmin) * (double)i / (double)(p->nx - 1);
    }
    for (size_t j = 0; j < p->ny; j++) q->yg[j] = p->ymin + (p->ymax - p->ymin) * (double)j / (double)(p->ny - 1);
    return NH_OK;
}

/* Copy z (log10 with logz), marking holes (non-finite; <= 0 with logz);
 * *ok, *nf, *nonpos count drawable, non-finite and non-positive values. */
static void sf_load_values(sf_panel *q, int logz, size_t *okc, size_t *nf, size_t *nonpos) {
    const nh_surface_panel *p = q->p;
    q->zlo = INFINITY, q->zhi = -INFINITY;
    for (size_t j = 0; j < p->ny; j++)
        for (size_t i = 0; i < p->nx; i++) {
            double v = p->z[j * p->nx + i];
            int hole = 0;
            if (!isfinite(v)) hole = 1, ++*nf;
            else if (logz && v <= 0) hole = 1, ++*nonpos;
            q->hole[j * p->nx + i] = (unsigned char)hole;
            q->nholes += (size_t)hole;
            if (hole) { q->z[i][j] = 0; continue; }
            v = logz ? log10(v) : v;
            q->z[i][j] = v;
            range_add(&q->zlo, &q->zhi, v);
            ++*okc;
        }
}

/* Colour range (widened when flat; whole decades with logz), shade edges
 * and contour levels of one panel. */
static void sf_levels(const sf_fig *fig, sf_panel *q, int logz) {
    double lo = q->zlo, hi = q->zhi, span = hi - lo;
    if (!(span > 1e-12 * fmax(fabs(lo), fabs(hi))) || span <= 0) {
        double d = fabs(hi) > 0 ? 0.05 * fabs(hi) : 0.5;
        lo -= d, hi += d, span = hi - lo;
    }
    if (logz && ceil(lo - 1e-9) > floor(hi + 1e-9)) {
        /* no whole decade inside: the colour bar would carry no label */
        lo = floor(lo), hi = ceil(hi), span = hi - lo;
    }
    q->zlo = lo, q->zhi = hi;
    for (int k = 0; k <= fig->nshades; k++) q->edges[k] = lo + span * k / fig->nshades;
    q->edges[0] = lo - 1e-9 * span, q->edges[fig->nshades] = hi + 1e-9 * span;
    for (int k = 0; k < fig->ncont; k++) q->clev[k] = lo + span * (k + 1) / (fig->ncont + 1);
}

static void sf_share_scale(sf_fig *fig, size_t npanels) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t ip = 0; ip < npanels; ip++) {
        range_add(&lo, &hi, fig->pan[ip].zlo);
        range_add(&lo, &hi, fig->pan[ip].zhi);
    }
    for (size_t ip = 0; ip < npanels; ip++) fig->pan[ip].zlo = lo, fig->pan[ip].zhi = hi;
}

static nh_status sf_prepare(const char *func, const nh_surface_spec *spec, sf_fig *fig, nh_plot_report *rep) {
    size_t nonfinite = 0, nonpos = 0, drawn = 0;
    fig->nshades = spec->nshades ? spec->nshades : 24;
    fig->ncont = spec->ncontours == 0 ? 11 : spec->ncontours < 0 ? 0 : spec->ncontours;
    if (fig->nshades < 2 || fig->nshades > 256)
        return nh__fail(NH_EINVAL, func, "nshades %d not in 2..256", spec->nshades);
    if (spec->ncontours > 100) return nh__fail(NH_EINVAL, func, "ncontours %d > 100", spec->ncontours);
    for (size_t ip = 0; ip < spec->npanels; ip++) {
        const nh_surface_panel *p = &spec->panels[ip];
        sf_panel *q = &fig->pan[ip];
        q->p = p;
        fig->any_title |= is_text(p->title);
        NH_TRY(sf_check_panel(func, p, ip));
        NH_TRY(sf_alloc_panel(func, fig, q));
        size_t pan_ok = 0, pan_nf = 0;
        sf_load_values(q, spec->logz, &pan_ok, &pan_nf, &nonpos);
        nonfinite += pan_nf;
        if (!pan_ok) {
            if (rep) rep->n_drawn = drawn, rep->n_nonfinite = nonfinite, rep->n_nonpositive = nonpos;
            if (pan_nf) return nh__fail(NH_ENONFINITE, func, "panel %zu: no finite value", ip);
            return nh__fail(NH_EINVAL, func, "panel %zu: no positive value for logz", ip);
        }
        drawn += pan_ok;
        if (q->nholes) sf_inpaint(q, p->nx, p->ny, q->hole + p->nx * p->ny);
    }
    if (spec->shared_scale) sf_share_scale(fig, spec->npanels);
    for (size_t ip = 0; ip < spec->npanels; ip++) sf_levels(fig, &fig->pan[ip], spec->logz);
    format_dropped(fig->dropped, sizeof fig->dropped, nonfinite, nonpos, 1);
    if (rep) rep->n_drawn = drawn, rep->n_nonfinite = nonfinite, rep->n_nonpositive = nonpos;
    return NH_OK;
}

/* Margins of the surface panels, in characters. */
typedef struct sf_layout {
    double left_ch, ylab_disp, right_ch;
} sf_layout;

static void sf_layout_compute(const sf_fig *fig, sf_layout *lay) {
    const nh_surface_spec *spec = fig->spec;
    double lab = 0, zlab = 0;
    for (size_t ip = 0; ip < spec->npanels; ip++) {
        const sf_panel *q = &fig->pan[ip];
        lab = fmax(lab, label_chars(q->p->ymin, q->p->ymax, 0));
        zlab = fmax(zlab, label_chars(q->zlo, q->zhi, spec->logz));
    }
    lay->ylab_disp = lab * CHAR_W + TICK_GAP + 1.3;
    lay->left_ch = lab * CHAR_W + TICK_GAP + (is_text(spec->ylabel) ? 2.2 : 0.0) + 0.6;
    /* gap, bar, numbers, label, gap to the next panel */
    lay->right_ch = 1.0 + 1.3 + 1.0 + zlab * CHAR_W + (is_text(spec->zlabel) ? 2.4 : 0.0) + 1.2;
}

static box sf_viewport(const page *pg, const sf_fig *fig, const sf_layout *lay, size_t ip) {
    const nh_surface_spec *spec = fig->spec;
    double left = lay->left_ch * pg->chx, right = lay->right_ch * pg->chx;
    double top = (is_text(spec->title) ? 2.9 : 0.6) * pg->chy + (fig->any_title ? 2.2 : 0.9) * pg->chy;
    int nl = note_lines(spec->note, fig->dropped);
    double bottom = (is_text(spec->xlabel) ? 4.6 : 3.0) * pg->chy + (nl ? 0.4 + 1.45 * nl : 0.0) * pg->chy;
    double pw = 1.0 / (double)spec->npanels;
    box b = {(double)ip * pw + left, (double)(ip + 1) * pw - right, bottom, 1.0 - top};
    return b;
}

/* Grey squares over the grid nodes that had no value. */
static void sf_draw_holes(const sf_panel *q) {
    const nh_surface_panel *p = q->p;
    plcol0(PAL_HOLE);
    double dx = 0.5 * (p->xmax - p->xmin) / (double)(p->nx - 1);
    double dy = 0.5 * (p->ymax - p->ymin) / (double)(p->ny - 1);
    for (size_t j = 0; j < p->ny; j++)
        for (size_t i = 0; i < p->nx; i++) {
            if (!q->hole[j * p->nx + i]) continue;
            double cx = q->xg[i], cy = q->yg[j];
            PLFLT bx[4] = {fmax(cx - dx, p->xmin), fmin(cx + dx, p->xmax), fmin(cx + dx, p->xmax),
                           fmax(cx - dx, p->xmin)};
            PLFLT by[4] = {fmax(cy - dy, p->ymin), fmax(cy - dy, p->ymin), fmin(cy + dy, p->ymax),
                           fmin(cy + dy, p->ymax)};
            plfill(4, bx, by);
        }
}

/* The mark: a red "+" with a white rim, 1.4 characters across. */
static void sf_draw_mark(const page *pg, const nh_surface_panel *p, const box *vb) {
    if (!(p->mark && p->mark_x >= p->xmin && p->mark_x <= p->xmax && p->mark_y >= p->ymin && p->mark_y <= p->ymax))
        return;
    double hx = 0.7 * pg->chx * (p->xmax - p->xmin) / (vb->x1 - vb->x0);
    double hy = 0.7 * pg->chy * (p->ymax - p->ymin) / (vb->y1 - vb->y0);
    for (int layer = 0; layer < 2; layer++) {
        double e = layer ? 1.0 : 1.25;
        PLFLT ax[2] = {p->mark_x - e * hx, p->mark_x + e * hx}, ay[2] = {p->mark_y, p->mark_y};
        PLFLT bx[2] = {p->mark_x, p->mark_x}, by[2] = {p->mark_y - e * hy, p->mark_y + e * hy};
        plcol0(layer ? PAL_MARK : PAL_BG);
        plwidth(layer ? 2.5 : 5.5);
        plline(2, ax, ay);
        plline(2, bx, by);
    }
}

static void sf_draw_colorbar(const page *pg, const sf_fig *fig, const sf_panel *q, const box *vb) {
    const nh_surface_spec *spec = fig->spec;
    double vw = vb->x1 - vb->x0;
    const char *axis_opts[1] = {spec->logz ? "bcvtml" : "bcvtm"};
    PLINT label_opts[1] = {PL_COLORBAR_LABEL_RIGHT};
    const char *labels[1] = {is_text(spec->zlabel) ? spec->zlabel : ""};
    PLFLT ticks[1] = {0.0};
    PLINT sub[1] = {0};
    PLINT nvals[1] = {fig->nshades + 1};
    const PLFLT *vals[1] = {q->edges};
    PLFLT cw, chh;
    plwidth(1.0);
    plcolorbar(&cw, &chh, PL_COLORBAR_SHADE, PL_POSITION_RIGHT | PL_POSITION_OUTSIDE | PL_POSITION_VIEWPORT,
               1.0 * pg->chx / vw, 0.0, 1.3 * pg->chx / vw, 1.0, PAL_BG, PAL_FG, 1, 0.0, 0.0, 0, 0.0,
               is_text(spec->zlabel) ? 1 : 0, label_opts, labels, 1, axis_opts, ticks, sub, nvals,
               (PLFLT_MATRIX)vals);
}

static void sf_draw_panel(const page *pg, const sf_fig *fig, const sf_layout *lay, size_t ip) {
    const nh_surface_spec *spec = fig->spec;
    const sf_panel *q = &fig->pan[ip];
    const nh_surface_panel *p = q->p;
    box vb = sf_viewport(pg, fig, lay, ip);
    plvpor(vb.x0, vb.x1, vb.y0, vb.y1);
    plwind(p->xmin, p->xmax, p->ymin, p->ymax);
    PLINT nx = (PLINT)p->nx, ny = (PLINT)p->ny;
    plpsty(0);
    plshades((PLFLT_MATRIX)q->z, nx, ny, NULL, p->xmin, p->xmax, p->ymin, p->ymax, q->edges,
             fig->nshades + 1, 0.0, 0, 0.0, plfill, 1, NULL, NULL);
    if (fig->ncont > 0) {
        PLcGrid cg;
        cg.xg = q->xg, cg.yg = q->yg, cg.zg = NULL;
        cg.nx = nx, cg.ny = ny;
        plcol0(PAL_CONTOUR);
        plwidth(0.9);
        plcont((PLFLT_MATRIX)q->z, nx, ny, 1, nx, 1, ny, q->clev, fig->ncont, pltr1, &cg);
    }
    if (q->nholes) sf_draw_holes(q);
    sf_draw_mark(pg, p, &vb);
    draw_frame("bcnst", "bcnstv", p->title, spec->xlabel, spec->ylabel, lay->ylab_disp);
    sf_draw_colorbar(pg, fig, q, &vb);
}

static void sf_draw(const void *ctx, const page *pg) {
    const sf_fig *fig = ctx;
    sf_layout lay;
    sf_layout_compute(fig, &lay);
    draw_title(pg, fig->spec->title);
    for (size_t ip = 0; ip < fig->spec->npanels; ip++) sf_draw_panel(pg, fig, &lay, ip);
    draw_note(pg, fig->spec->note, fig->dropped);
}

nh_status nh_plot_surface(const nh_surface_spec *spec, nh_plot_report *report) {
    if (report) memset(report, 0, sizeof *report);
    if (!spec) NH_FAIL(NH_EINVAL, "spec is NULL");
    int w = spec->width, h = spec->height;
    NH_TRY(check_common(__func__, spec->path, &w, &h, spec->npanels, 600, 500, spec->note));
    if (!spec->panels) NH_FAIL(NH_EINVAL, "panels is NULL");
    sf_fig fig;
    memset(&fig, 0, sizeof fig);
    fig.spec = spec;
    fig.pan = nh__calloc(spec->npanels, sizeof *fig.pan);
    if (!fig.pan) NH_FAIL(NH_ENOMEM, "cannot allocate panels");
    nh_status st = sf_prepare(__func__, spec, &fig, report);
    if (st == NH_OK) {
        pthread_mutex_lock(&plot_lock);
        st = write_figure(__func__, spec->path, w, h, spec->npanels, sf_draw, &fig);
        pthread_mutex_unlock(&plot_lock);
    }
    sf_free(&fig, spec->npanels);
    return st;
}
