/* test_plot.c -- the plotting layer (src/plot.c): every plot type into a
 * temporary directory, both files checked (PNG signature, IHDR size, pixels
 * decoded with zlib: white background, enough ink, the palette colours
 * present; SVG well formed), error cases leave no files, many calls in one
 * process (PLplot streams are released), the caller's PLplot stream is kept.
 *
 * NH_PLOT_KEEP=1 keeps the temporary directory (its name is printed).
 * NH_PLOT_EXAMPLES=DIR also writes the documentation examples
 * DIR/example_series, DIR/example_bars, DIR/example_surface (.png + .svg):
 *   NH_PLOT_EXAMPLES=docs/img ./build/tests/test_plot */
#include "ntkhess.h"
#include "nh_test.h"

#include <dirent.h>
#include <pthread.h>
#include <plplot.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------ helpers */

static char tmpdir[256];

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmpdir, name); }

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Entries of tmpdir whose name starts with prefix (final or temporary files). */
static int count_prefix(const char *prefix) {
    DIR *d = opendir(tmpdir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct png_img {
    uint32_t w, h;
    unsigned char *rgb; /* w*h*3 */
} png_img;

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Minimal PNG decoder: 8-bit RGB or RGBA, non-interlaced (what cairo writes). */
static int png_decode(const char *path, png_img *img) {
    size_t len;
    unsigned char *b = read_all(path, &len);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(img, 0, sizeof *img);
    if (!b || len < 33 || memcmp(b, sig, 8) != 0) { free(b); return 0; }
    uint32_t w = be32(b + 16), h = be32(b + 20);
    int depth = b[24], ctype = b[25], inter = b[28];
    int bpp = ctype == 2 ? 3 : ctype == 6 ? 4 : 0;
    if (depth != 8 || !bpp || inter != 0) { free(b); return 0; }
    unsigned char *z = malloc(len);
    size_t zl = 0;
    for (size_t p = 8; p + 12 <= len;) {
        uint32_t cl = be32(b + p);
        if (p + 12 + cl > len) break;
        if (memcmp(b + p + 4, "IDAT", 4) == 0) { memcpy(z + zl, b + p + 8, cl); zl += cl; }
        p += 12 + cl;
    }
    size_t stride = (size_t)w * (size_t)bpp, rawlen = (stride + 1) * h;
    unsigned char *raw = malloc(rawlen);
    uLongf outl = (uLongf)rawlen;
    int ok = uncompress(raw, &outl, z, (uLong)zl) == Z_OK && outl == rawlen;
    free(z);
    free(b);
    if (!ok) { free(raw); return 0; }
    unsigned char *cur = malloc(stride), *prev = calloc(stride, 1);
    img->rgb = malloc((size_t)w * h * 3);
    for (uint32_t y = 0; y < h && ok; y++) {
        const unsigned char *row = raw + y * (stride + 1);
        int f = row[0];
        for (size_t i = 0; i < stride; i++) {
            int a = i >= (size_t)bpp ? cur[i - bpp] : 0, up = prev[i], c = i >= (size_t)bpp ? prev[i - bpp] : 0;
            int x = row[1 + i], v;
            switch (f) {
            case 0: v = x; break;
            case 1: v = x + a; break;
            case 2: v = x + up; break;
            case 3: v = x + (a + up) / 2; break;
            case 4: v = x + paeth(a, up, c); break;
            default: v = 0; ok = 0;
            }
            cur[i] = (unsigned char)v;
        }
        for (uint32_t x = 0; x < w; x++) memcpy(img->rgb + ((size_t)y * w + x) * 3, cur + (size_t)x * bpp, 3);
        memcpy(prev, cur, stride);
    }
    free(cur);
    free(prev);
    free(raw);
    img->w = w, img->h = h;
    if (!ok) { free(img->rgb); img->rgb = NULL; }
    return ok;
}

static double frac_nonwhite(const png_img *im) {
    size_t n = (size_t)im->w * im->h, k = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = im->rgb + 3 * i;
        k += p[0] < 245 || p[1] < 245 || p[2] < 245;
    }
    return (double)k / (double)n;
}

static size_t count_color(const png_img *im, int r, int g, int b, int tol) {
    size_t n = (size_t)im->w * im->h, k = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = im->rgb + 3 * i;
        k += abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol;
    }
    return k;
}

static int is_white(const png_img *im, uint32_t x, uint32_t y) {
    const unsigned char *p = im->rgb + 3 * ((size_t)y * im->w + x);
    return p[0] == 255 && p[1] == 255 && p[2] == 255;
}

/* Starts with <?xml or <svg, ends with </svg>, and the <svg> element is
 * w x h points. */
static int svg_ok(const char *path, int w, int h) {
    size_t len;
    unsigned char *b = read_all(path, &len);
    if (!b) return 0;
    char *t = realloc(b, len + 1);
    if (!t) { free(b); return 0; }
    t[len] = 0;
    int ok = len > 100 && (memcmp(t, "<?xml", 5) == 0 || memcmp(t, "<svg", 4) == 0);
    size_t e = len;
    while (e > 0 && (t[e - 1] == '\n' || t[e - 1] == ' ' || t[e - 1] == '\r')) e--;
    ok = ok && e >= 6 && memcmp(t + e - 6, "</svg>", 6) == 0;
    char want[64];
    snprintf(want, sizeof want, "width=\"%dpt\" height=\"%dpt\"", w, h);
    const char *svg = strstr(t, "<svg");
    ok = ok && svg && strstr(svg, want) && strstr(svg, want) < strchr(svg, '>');
    free(t);
    return ok;
}

/* Check STEM.png and STEM.svg; return the decoded PNG (caller frees rgb). */
static void check_outputs(const char *stem, int w, int h, const char *what, png_img *out) {
    char png[512], svg[512];
    snprintf(png, sizeof png, "%s.png", stem);
    snprintf(svg, sizeof svg, "%s.svg", stem);
    nh_check(file_size(png) > 2000, "%s: %s exists and is not tiny (%ld bytes)", what, png, file_size(png));
    nh_check(file_size(svg) > 2000, "%s: %s exists (%ld bytes)", what, svg, file_size(svg));
    nh_check(svg_ok(svg, w, h), "%s: SVG starts with <?xml/<svg, ends with </svg>, is %dx%d pt", what, w, h);
    png_img im;
    int ok = png_decode(png, &im);
    nh_check(ok, "%s: PNG decodes (signature, 8-bit RGB(A), zlib stream)", what);
    if (ok) {
        nh_check(im.w == (uint32_t)w && im.h == (uint32_t)h, "%s: PNG is %ux%u, requested %dx%d", what,
                 im.w, im.h, w, h);
        nh_check(is_white(&im, 0, 0) && is_white(&im, im.w - 1, 0) && is_white(&im, 0, im.h - 1) &&
                     is_white(&im, im.w - 1, im.h - 1),
                 "%s: white background in the corners", what);
        double f = frac_nonwhite(&im);
        nh_check(f > 0.02 && f < 0.9, "%s: %.1f%% of the pixels are ink", what, 100 * f);
        nh_check(count_color(&im, 0, 0, 0, 40) > 500, "%s: black axes/text present", what);
    }
    if (out) *out = im;
    else free(im.rgb);
}

/* -------------------------------------------------------- sample data */

#define NT 31
#define NE 11

typedef struct fig1_data {
    double t[NT], th[2][4][NT];
    double te[NE], em[2][4][NE], se[2][4][NE];
    nh_plot_series ser[2][8];
    nh_plot_panel pan[2];
    const char *lab[8];
} fig1_data;

/* Figure-1-like data: Tr(H^k)(t), k = 1..4 (magnitudes 10^k), theory
 * curves plus noisy "empirical" means with standard errors. */
static void fig1_fill(fig1_data *d, double scale) {
    static const char *lab[8] = {"k = 1", "k = 2", "k = 3", "k = 4", "mean \xc2\xb1 s.e.", "", "", ""};
    uint64_t s = 12345;
    for (int i = 0; i < NT; i++) d->t[i] = 0.1 * i;
    for (int i = 0; i < NE; i++) d->te[i] = 0.3 * i;
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 4; k++) {
            double a = pow(12.0, k + 1) * (p ? 0.6 : 1.0) * scale, b = (p ? 0.9 : 0.5) / (k + 1);
            for (int i = 0; i < NT; i++) d->th[p][k][i] = a * (0.35 + 0.65 * exp(-b * d->t[i] * (k + 1)));
            for (int i = 0; i < NE; i++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                double u = ((double)(s >> 11) / 9007199254740992.0) - 0.5;
                double v = a * (0.35 + 0.65 * exp(-b * d->te[i] * (k + 1)));
                d->em[p][k][i] = v * (1 + 0.12 * (k + 1) * u);
                d->se[p][k][i] = v * 0.07 * (k + 1);
            }
        }
    for (int p = 0; p < 2; p++) {
        for (int k = 0; k < 4; k++) {
            nh_plot_series *l = &d->ser[p][k], *e = &d->ser[p][4 + k];
            memset(l, 0, sizeof *l);
            memset(e, 0, sizeof *e);
            l->n = NT, l->x = d->t, l->y = d->th[p][k], l->style = NH_STYLE_LINE;
            l->color = (nh_plot_color)(NH_COLOR_BLUE + k), l->label = lab[k];
            e->n = NE, e->x = d->te, e->y = d->em[p][k], e->yerr = d->se[p][k];
            e->style = NH_STYLE_POINTS, e->color = NH_COLOR_BLACK, e->marker = NH_MARKER_CROSS;
            e->label = lab[4 + k];
        }
        nh_plot_panel *q = &d->pan[p];
        memset(q, 0, sizeof *q);
        q->title = p ? "normalized smooth ReLU" : "smooth ReLU";
        q->xlabel = "t";
        q->ylabel = "Tr(H#uk#d)";
        q->nseries = 8, q->series = d->ser[p], q->logy = 1;
    }
}

#define NV 20
typedef struct fig2_data {
    double idx[NV], r[2][2][NV]; /* [eigvecs of I / S][vIv / vSv] */
    nh_plot_series ser[2][2];
    nh_plot_panel pan[2];
} fig2_data;

static void fig2_fill(fig2_data *d) {
    for (int i = 0; i < NV; i++) {
        d->idx[i] = i + 1;
        double dec = exp(-0.25 * i);
        d->r[0][0][i] = 40 * dec + 1.0;             /* v^T I v, v eigvec of I */
        d->r[0][1][i] = 0.8 * sin(1.3 * i) * dec;   /* v^T S v                */
        d->r[1][0][i] = 0.5 + 0.3 * cos(0.7 * i);   /* v^T I v, v eigvec of S */
        d->r[1][1][i] = (i % 2 ? -1 : 1) * 12 * dec; /* v^T S v               */
    }
    for (int p = 0; p < 2; p++) {
        for (int k = 0; k < 2; k++) {
            nh_plot_series *s = &d->ser[p][k];
            memset(s, 0, sizeof *s);
            s->n = NV, s->x = d->idx, s->y = d->r[p][k], s->style = NH_STYLE_BARS;
            s->color = k ? NH_COLOR_ORANGE : NH_COLOR_BLUE;
            s->label = k ? "v#uT#d S v" : "v#uT#d I v";
        }
        nh_plot_panel *q = &d->pan[p];
        memset(q, 0, sizeof *q);
        q->title = p ? "eigenvectors v of S" : "eigenvectors v of I";
        q->xlabel = "eigenvector index (by |eigenvalue|)";
        q->ylabel = "Rayleigh quotient";
        q->nseries = 2, q->series = d->ser[p];
    }
}

#define NG 61
typedef struct fig3_data {
    double z[2][NG * NG];
    nh_surface_panel pan[2];
} fig3_data;

/* A narrow valley (smooth ReLU) and a rounder bowl (normalized). */
static void fig3_fill(fig3_data *d) {
    for (int p = 0; p < 2; p++) {
        double ka = p ? 4.0 : 60.0, kb = 1.0;
        for (int j = 0; j < NG; j++)
            for (int i = 0; i < NG; i++) {
                double a = -1 + 2.0 * i / (NG - 1), b = -1 + 2.0 * j / (NG - 1);
                d->z[p][j * NG + i] = 0.02 + 0.5 * (kb * a * a + ka * b * b) + 0.3 * a * a * b * b;
            }
        nh_surface_panel *q = &d->pan[p];
        memset(q, 0, sizeof *q);
        q->nx = q->ny = NG, q->z = d->z[p];
        q->xmin = q->ymin = -1, q->xmax = q->ymax = 1;
        q->title = p ? "normalized smooth ReLU" : "smooth ReLU";
        q->mark = 1, q->mark_x = 0, q->mark_y = 0;
    }
}

/* ------------------------------------------------------------- tests */

static void test_series(void) {
    static fig1_data d;
    fig1_fill(&d, 1.0);
    char stem[300];
    path_in(stem, sizeof stem, "fig1");
    nh_plot_spec sp = {0};
    sp.path = stem, sp.width = 1200, sp.height = 500;
    sp.title = "Moments of the Hessian during training";
    sp.note = "quick mode: N = 64, width 1000, 20 trials";
    sp.npanels = 2, sp.panels = d.pan;
    nh_plot_report rep;
    nh_status st = nh_plot_xy(&sp, &rep);
    nh_check(st == NH_OK, "series plot: %s (%s)", nh_strerror(st), nh_last_error());
    nh_check(rep.n_drawn == 2 * 4 * (NT + NE) && rep.n_nonfinite == 0 && rep.n_nonpositive == 0,
             "series report: drawn %zu, nonfinite %zu, nonpositive %zu", rep.n_drawn, rep.n_nonfinite,
             rep.n_nonpositive);
    png_img im;
    check_outputs(stem, 1200, 500, "series", &im);
    if (im.rgb) {
        /* the four theory colours of tab10 are drawn */
        nh_check(count_color(&im, 31, 119, 180, 12) > 200, "series: blue line pixels");
        nh_check(count_color(&im, 255, 127, 14, 12) > 200, "series: orange line pixels");
        nh_check(count_color(&im, 44, 160, 44, 12) > 200, "series: green line pixels");
        nh_check(count_color(&im, 214, 39, 40, 12) > 200, "series: red line pixels");
        free(im.rgb);
    }
    nh_check(count_prefix("fig1.png.tmp") == 0 && count_prefix("fig1.svg.tmp") == 0, "series: no temporary files left");

    /* different data -> different picture; same data -> same PNG bytes */
    static fig1_data d2;
    fig1_fill(&d2, 50.0);
    char stem2[300], stem3[300];
    path_in(stem2, sizeof stem2, "fig1b");
    path_in(stem3, sizeof stem3, "fig1c");
    nh_plot_spec sp2 = sp;
    sp2.path = stem2, sp2.panels = d2.pan;
    nh_check(nh_plot_xy(&sp2, NULL) == NH_OK, "series plot with other data");
    nh_plot_spec sp3 = sp;
    sp3.path = stem3;
    nh_check(nh_plot_xy(&sp3, NULL) == NH_OK, "series plot again");
    char a[320], b[320], c[320];
    snprintf(a, sizeof a, "%s.png", stem);
    snprintf(b, sizeof b, "%s.png", stem2);
    snprintf(c, sizeof c, "%s.png", stem3);
    size_t la, lb, lc;
    unsigned char *ba = read_all(a, &la), *bb = read_all(b, &lb), *bc = read_all(c, &lc);
    nh_check(ba && bb && (la != lb || memcmp(ba, bb, la) != 0), "different data give different PNGs");
    nh_check(ba && bc && la == lc && memcmp(ba, bc, la) == 0, "same data give identical PNGs");
    free(ba), free(bb), free(bc);

    /* overwriting an existing plot works (rename over the old file) */
    nh_check(nh_plot_xy(&sp, NULL) == NH_OK, "series plot overwrites an existing file");
    check_outputs(stem, 1200, 500, "series (overwritten)", NULL);
}

static void test_bars(void) {
    static fig2_data d;
    fig2_fill(&d);
    char stem[300];
    path_in(stem, sizeof stem, "fig2");
    nh_plot_spec sp = {0};
    sp.path = stem, sp.npanels = 2, sp.panels = d.pan;
    sp.title = "Mutual orthogonality of I and S";
    nh_status st = nh_plot_xy(&sp, NULL);
    nh_check(st == NH_OK, "bar plot: %s (%s)", nh_strerror(st), nh_last_error());
    png_img im;
    check_outputs(stem, 1120, 460, "bars (default size)", &im);
    if (im.rgb) {
        nh_check(count_color(&im, 31, 119, 180, 4) > 1000, "bars: blue bars");
        nh_check(count_color(&im, 255, 127, 14, 4) > 1000, "bars: orange bars");
        free(im.rgb);
    }
    /* markers instead of bars, single panel, log x */
    d.ser[0][0].style = d.ser[0][1].style = NH_STYLE_LINE_POINTS;
    d.ser[0][0].marker = NH_MARKER_CIRCLE, d.ser[0][1].marker = NH_MARKER_SQUARE;
    d.pan[0].logx = 1;
    sp.npanels = 1, sp.width = 640, sp.height = 480;
    nh_check(nh_plot_xy(&sp, NULL) == NH_OK, "line+points plot with log x: %s", nh_last_error());
    check_outputs(stem, 640, 480, "line+points", NULL);
}

static void test_surface(void) {
    static fig3_data d;
    fig3_fill(&d);
    char stem[300];
    path_in(stem, sizeof stem, "fig3");
    nh_surface_spec sp = {0};
    sp.path = stem, sp.width = 1200, sp.height = 520;
    sp.title = "Loss surface around a minimum";
    sp.xlabel = "a (4th eigenvector of I)", sp.ylabel = "b (1st eigenvector of I)", sp.zlabel = "loss";
    sp.npanels = 2, sp.panels = d.pan;
    nh_plot_report rep;
    nh_status st = nh_plot_surface(&sp, &rep);
    nh_check(st == NH_OK, "surface plot: %s (%s)", nh_strerror(st), nh_last_error());
    nh_check(rep.n_drawn == 2 * NG * NG && rep.n_nonfinite == 0, "surface report: %zu drawn", rep.n_drawn);
    png_img im;
    check_outputs(stem, 1200, 520, "surface", &im);
    if (im.rgb) {
        double f = frac_nonwhite(&im);
        nh_check(f > 0.3, "surface: shading covers %.0f%% of the image", 100 * f);
        /* both ends of viridis are present */
        nh_check(count_color(&im, 68, 1, 84, 25) > 50, "surface: dark viridis end present");
        nh_check(count_color(&im, 253, 231, 37, 25) > 50, "surface: yellow viridis end present");
        free(im.rgb);
    }
    /* holes and log scale: a NaN block, a zero, shared scale */
    static double z2[NG * NG];
    memcpy(z2, d.z[1], sizeof z2);
    for (int j = 5; j < 10; j++)
        for (int i = 5; i < 12; i++) z2[j * NG + i] = NAN;
    z2[30 * NG + 30] = 0.0;
    d.pan[1].z = z2;
    sp.logz = 1, sp.shared_scale = 1, sp.ncontours = 6, sp.nshades = 20;
    sp.note = "logz, shared scale, holes";
    st = nh_plot_surface(&sp, &rep);
    nh_check(st == NH_OK, "surface with holes, logz: %s (%s)", nh_strerror(st), nh_last_error());
    nh_check(rep.n_nonfinite == 35 && rep.n_nonpositive == 1 && rep.n_drawn == 2 * NG * NG - 36,
             "surface holes counted: nonfinite %zu, nonpositive %zu", rep.n_nonfinite, rep.n_nonpositive);
    check_outputs(stem, 1200, 520, "surface (holes)", &im);
    if (im.rgb) {
        nh_check(count_color(&im, 205, 205, 205, 0) > 100, "surface: grey hole cells painted");
        free(im.rgb);
    }
}

static void test_report_and_log(void) {
    double x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {1, NAN, 3, -1, 5, 0}, e[6] = {0.1, 0.1, INFINITY, 0.1, 0.1, 0.1};
    nh_plot_series s = {0};
    s.n = 6, s.x = x, s.y = y, s.yerr = e, s.style = NH_STYLE_LINE_POINTS, s.label = "data";
    nh_plot_panel p = {0};
    p.nseries = 1, p.series = &s, p.logy = 1, p.title = "drops";
    char stem[300];
    path_in(stem, sizeof stem, "drops");
    nh_plot_spec sp = {0};
    sp.path = stem, sp.npanels = 1, sp.panels = &p, sp.width = 400, sp.height = 300;
    nh_plot_report rep;
    nh_status st = nh_plot_xy(&sp, &rep);
    nh_check(st == NH_OK, "plot with dropped points: %s", nh_last_error());
    nh_check(rep.n_drawn == 2 && rep.n_nonfinite == 2 && rep.n_nonpositive == 2,
             "dropped points counted: drawn %zu nonfinite %zu nonpositive %zu", rep.n_drawn, rep.n_nonfinite,
             rep.n_nonpositive);
    check_outputs(stem, 400, 300, "drops", NULL);
    /* explicit limits */
    p.xmin = 0.5, p.xmax = 10, p.ymin = 0.01, p.ymax = 100;
    nh_check(nh_plot_xy(&sp, NULL) == NH_OK, "explicit log limits");
    p.ymin = -1;
    nh_check(nh_plot_xy(&sp, NULL) == NH_EINVAL, "ymin < 0 on a log axis -> NH_EINVAL");
}

static void test_errors(void) {
    double x[3] = {1, 2, 3}, y[3] = {1, 2, 3}, nan3[3] = {NAN, NAN, INFINITY};
    nh_plot_series s = {0};
    s.n = 3, s.x = x, s.y = y;
    nh_plot_panel p = {0};
    p.nseries = 1, p.series = &s;
    char stem[300];
    path_in(stem, sizeof stem, "err");
    nh_plot_spec sp = {0};
    sp.path = stem, sp.npanels = 1, sp.panels = &p;

    nh_check(nh_plot_xy(NULL, NULL) == NH_EINVAL, "NULL spec -> NH_EINVAL");
    nh_plot_spec b = sp;
    b.path = NULL;
    nh_check(nh_plot_xy(&b, NULL) == NH_EINVAL, "NULL path -> NH_EINVAL");
    b = sp, b.path = "";
    nh_check(nh_plot_xy(&b, NULL) == NH_EINVAL, "empty path -> NH_EINVAL");
    b = sp, b.panels = NULL;
    nh_check(nh_plot_xy(&b, NULL) == NH_EINVAL, "NULL panels -> NH_EINVAL");
    b = sp, b.npanels = 0;
    nh_check(nh_plot_xy(&b, NULL) == NH_EINVAL, "zero panels -> NH_EINVAL");
    b = sp, b.width = 10;
    nh_check(nh_plot_xy(&b, NULL) == NH_EINVAL, "width 10 -> NH_EINVAL");
    char pct[320];
    snprintf(pct, sizeof pct, "%s/a%%nb", tmpdir);
    b = sp, b.path = pct;
    nh_check(nh_plot_xy(&b, NULL) == NH_EINVAL, "%%n in path -> NH_EINVAL");
    p.nseries = 0;
    nh_check(nh_plot_xy(&sp, NULL) == NH_EINVAL, "empty panel (nseries 0) -> NH_EINVAL");
    p.nseries = 1;
    s.n = 0;
    nh_check(nh_plot_xy(&sp, NULL) == NH_EINVAL, "empty series (n 0) -> NH_EINVAL");
    s.n = 3, s.x = NULL;
    nh_check(nh_plot_xy(&sp, NULL) == NH_EINVAL, "NULL x -> NH_EINVAL");
    s.x = x, s.style = NH_STYLE_COUNT;
    nh_check(nh_plot_xy(&sp, NULL) == NH_EINVAL, "bad style -> NH_EINVAL");
    s.style = NH_STYLE_BARS, p.logx = 1;
    nh_check(nh_plot_xy(&sp, NULL) == NH_EINVAL, "bars on log x -> NH_EINVAL");
    s.style = NH_STYLE_LINE, p.logx = 0;
    double neg[3] = {0.1, -0.1, 0.1};
    s.yerr = neg;
    nh_check(nh_plot_xy(&sp, NULL) == NH_EINVAL, "negative yerr -> NH_EINVAL");
    s.yerr = NULL, s.y = nan3;
    nh_plot_report rep;
    nh_check(nh_plot_xy(&sp, &rep) == NH_ENONFINITE && rep.n_nonfinite == 3,
             "all non-finite -> NH_ENONFINITE (report %zu)", rep.n_nonfinite);
    double neg3[3] = {-1, 0, -2};
    s.y = neg3, p.logy = 1;
    nh_check(nh_plot_xy(&sp, NULL) == NH_EINVAL, "log y, nothing positive -> NH_EINVAL");
    s.y = y, p.logy = 0;
    nh_check(count_prefix("err") == 0, "failed calls left no files");

    /* unwritable locations -> NH_EIO, nothing created */
    char missing[320], notdir[320], filepath[320];
    snprintf(missing, sizeof missing, "%s/no/such/dir/plot", tmpdir);
    b = sp, b.path = missing;
    nh_check(nh_plot_xy(&b, NULL) == NH_EIO, "missing directory -> NH_EIO (%s)", nh_last_error());
    path_in(filepath, sizeof filepath, "afile");
    FILE *f = fopen(filepath, "w");
    if (f) fclose(f);
    snprintf(notdir, sizeof notdir, "%s/afile/plot", tmpdir);
    b.path = notdir;
    nh_check(nh_plot_xy(&b, NULL) == NH_EIO, "parent is a file -> NH_EIO");
    char dirstem[320], dirpng[330];
    path_in(dirstem, sizeof dirstem, "isdir");
    snprintf(dirpng, sizeof dirpng, "%s.png", dirstem);
    mkdir(dirpng, 0755);
    b.path = dirstem;
    nh_check(nh_plot_xy(&b, NULL) == NH_EIO, "STEM.png is a directory -> NH_EIO");
    nh_check(count_prefix("isdir") == 1, "no files left next to the directory");
    rmdir(dirpng);
    if (geteuid() != 0) { /* root ignores permissions */
        char ro[320], rostem[330];
        path_in(ro, sizeof ro, "ro");
        mkdir(ro, 0555);
        snprintf(rostem, sizeof rostem, "%s/plot", ro);
        b.path = rostem;
        nh_check(nh_plot_xy(&b, NULL) == NH_EIO, "read-only directory -> NH_EIO");
        rmdir(ro);
    }
    /* an error leaves an existing plot untouched */
    nh_check(nh_plot_xy(&sp, NULL) == NH_OK, "good plot before a failing one");
    char png[320];
    snprintf(png, sizeof png, "%s.png", stem);
    long before = file_size(png);
    s.y = nan3;
    nh_check(nh_plot_xy(&sp, NULL) == NH_ENONFINITE && file_size(png) == before,
             "failing call keeps the old file");
    s.y = y;

    /* surface errors */
    double z[4] = {1, 2, 3, 4}, zn[4] = {NAN, NAN, NAN, NAN};
    nh_surface_panel q = {0};
    q.nx = 2, q.ny = 2, q.z = z, q.xmin = 0, q.xmax = 1, q.ymin = 0, q.ymax = 1;
    char sstem[300];
    path_in(sstem, sizeof sstem, "serr");
    nh_surface_spec ss = {0};
    ss.path = sstem, ss.npanels = 1, ss.panels = &q;
    nh_check(nh_plot_surface(NULL, NULL) == NH_EINVAL, "surface: NULL spec -> NH_EINVAL");
    q.nx = 1;
    nh_check(nh_plot_surface(&ss, NULL) == NH_EINVAL, "surface: nx 1 -> NH_EINVAL");
    q.nx = 2, q.z = NULL;
    nh_check(nh_plot_surface(&ss, NULL) == NH_EINVAL, "surface: NULL z -> NH_EINVAL");
    q.z = z, q.xmax = 0;
    nh_check(nh_plot_surface(&ss, NULL) == NH_EINVAL, "surface: empty extent -> NH_EINVAL");
    q.xmax = 1, q.z = zn;
    nh_check(nh_plot_surface(&ss, NULL) == NH_ENONFINITE, "surface: all NaN -> NH_ENONFINITE");
    q.z = z, ss.nshades = 1;
    nh_check(nh_plot_surface(&ss, NULL) == NH_EINVAL, "surface: nshades 1 -> NH_EINVAL");
    ss.nshades = 0;
    double zneg[4] = {-1, 0, -2, -3};
    q.z = zneg, ss.logz = 1;
    nh_check(nh_plot_surface(&ss, NULL) == NH_EINVAL, "surface: logz, nothing positive -> NH_EINVAL");
    q.z = z, ss.logz = 0;
    nh_check(count_prefix("serr") == 0, "surface: failed calls left no files");
    nh_check(nh_plot_surface(&ss, NULL) == NH_OK, "surface: 2x2 grid works (%s)", nh_last_error());
    ss.path = missing;
    nh_check(nh_plot_surface(&ss, NULL) == NH_EIO, "surface: missing directory -> NH_EIO");
}

/* Many calls: PLplot has 100 stream slots; plend1 must free ours.  The
 * caller's current stream is restored. */
static void test_many_calls(void) {
    double x[2] = {0, 1}, y[2] = {0, 1};
    nh_plot_series s = {0};
    s.n = 2, s.x = x, s.y = y;
    nh_plot_panel p = {0};
    p.nseries = 1, p.series = &s;
    char stem[300];
    path_in(stem, sizeof stem, "many");
    nh_plot_spec sp = {0};
    sp.path = stem, sp.npanels = 1, sp.panels = &p, sp.width = 96, sp.height = 72;
    PLINT before = -1, after = -2;
    plsstrm(7); /* a caller's stream, never initialised */
    plgstrm(&before);
    int ok = 1;
    for (int i = 0; i < 60 && ok; i++) ok = nh_plot_xy(&sp, NULL) == NH_OK;
    plgstrm(&after);
    nh_check(ok, "60 plots in one process (120 PLplot streams): %s", nh_last_error());
    nh_check(before == 7 && after == 7, "caller's PLplot stream kept (%d -> %d)", (int)before, (int)after);
    plsstrm(0);
}

/* Concurrent calls are serialized inside the library. */
typedef struct thr_arg {
    int id, ok;
} thr_arg;

static void *thr_main(void *arg) {
    thr_arg *a = arg;
    double x[50], y[50];
    for (int i = 0; i < 50; i++) x[i] = i, y[i] = sin(0.2 * i + a->id);
    nh_plot_series s = {0};
    s.n = 50, s.x = x, s.y = y, s.style = NH_STYLE_LINE_POINTS, s.label = "sin";
    nh_plot_panel p = {0};
    p.nseries = 1, p.series = &s, p.title = "thread";
    char stem[300], name[32];
    snprintf(name, sizeof name, "thr%d", a->id);
    path_in(stem, sizeof stem, name);
    nh_plot_spec sp = {0};
    sp.path = stem, sp.npanels = 1, sp.panels = &p, sp.width = 320, sp.height = 240;
    a->ok = 1;
    for (int r = 0; r < 4; r++) a->ok &= nh_plot_xy(&sp, NULL) == NH_OK;
    return NULL;
}

static void test_threads(void) {
    pthread_t t[4];
    thr_arg a[4];
    int started = 0;
    for (int i = 0; i < 4; i++) {
        a[i].id = i, a[i].ok = 0;
        if (pthread_create(&t[i], NULL, thr_main, &a[i]) == 0) started++;
        else break;
    }
    int ok = started == 4;
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        ok &= a[i].ok;
    }
    nh_check(ok, "4 threads x 4 plots at once");
    for (int i = 0; i < 4 && ok; i++) {
        char stem[300], name[32];
        snprintf(name, sizeof name, "thr%d", i);
        path_in(stem, sizeof stem, name);
        check_outputs(stem, 320, 240, name, NULL);
    }
}

/* "STEM.png" as the path is the stem STEM */
static void test_extension_stem(void) {
    double x[2] = {0, 1};
    nh_plot_series s = {0};
    s.n = 2, s.x = x, s.y = x;
    nh_plot_panel p = {0};
    p.nseries = 1, p.series = &s;
    char path[300], stem[300];
    path_in(path, sizeof path, "ext.png");
    path_in(stem, sizeof stem, "ext");
    nh_plot_spec sp = {0};
    sp.path = path, sp.npanels = 1, sp.panels = &p, sp.width = 200, sp.height = 150;
    nh_check(nh_plot_xy(&sp, NULL) == NH_OK, "path with .png extension");
    check_outputs(stem, 200, 150, "ext.png -> ext.{png,svg}", NULL);
    nh_check(count_prefix("ext.png.") == 0, "no ext.png.png");
}

/* Temporaries of killed writers (STEM.png.tmpPID_N with a dead PID) are
 * removed by the next plot of STEM; a live process's are left alone. */
static void test_stale_temporaries(void) {
    long dead = 0;
    for (long pid = 4000000; pid > 300000 && !dead; pid -= 7919) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/%ld", pid);
        if (access(proc, F_OK) != 0) dead = pid; /* no such process */
    }
    char stale[400], live[400], name[64];
    snprintf(name, sizeof name, "stale.png.tmp%ld_1", dead);
    path_in(stale, sizeof stale, name);
    snprintf(name, sizeof name, "stale.svg.tmp%ld_3", (long)getppid());
    path_in(live, sizeof live, name);
    FILE *f1 = fopen(stale, "w"), *f2 = fopen(live, "w");
    if (f1) fclose(f1);
    if (f2) fclose(f2);
    nh_check(dead > 0 && f1 && f2, "stale temporaries: set up (dead pid %ld)", dead);
    double x[2] = {0, 1};
    nh_plot_series s = {0};
    s.n = 2, s.x = x, s.y = x;
    nh_plot_panel p = {0};
    p.nseries = 1, p.series = &s;
    char stem[300];
    path_in(stem, sizeof stem, "stale");
    nh_plot_spec sp = {0};
    sp.path = stem, sp.npanels = 1, sp.panels = &p, sp.width = 200, sp.height = 150;
    nh_check(nh_plot_xy(&sp, NULL) == NH_OK, "plot next to stale temporaries");
    nh_check(access(stale, F_OK) != 0, "a dead writer's temporary is removed");
    nh_check(access(live, F_OK) == 0, "a live process's temporary is kept");
    unlink(live);
}

static void write_examples(const char *dir) {
    char stem[512];
    static fig1_data d1;
    fig1_fill(&d1, 1.0);
    nh_plot_spec s1 = {0};
    snprintf(stem, sizeof stem, "%s/example_series", dir);
    s1.path = stem, s1.width = 1200, s1.height = 520, s1.npanels = 2, s1.panels = d1.pan;
    s1.title = "Figure 1 (synthetic data): moments Tr(H#uk#d) during training";
    s1.note = "example data, not a measurement: theory = lines, empirical mean \xc2\xb1 standard error = crosses";
    d1.pan[1].legend = NH_LEGEND_NONE; /* the same entries as the left panel */
    nh_status st = nh_plot_xy(&s1, NULL);
    nh_check(st == NH_OK, "example series -> %s: %s", stem, nh_last_error());

    static fig2_data d2;
    fig2_fill(&d2);
    nh_plot_spec s2 = {0};
    snprintf(stem, sizeof stem, "%s/example_bars", dir);
    s2.path = stem, s2.width = 1200, s2.height = 480, s2.npanels = 2, s2.panels = d2.pan;
    s2.title = "Figure 2 (synthetic data): Rayleigh quotients of I and S";
    s2.note = "example data, not a measurement";
    st = nh_plot_xy(&s2, NULL);
    nh_check(st == NH_OK, "example bars -> %s: %s", stem, nh_last_error());

    static fig3_data d3;
    fig3_fill(&d3);
    nh_surface_spec s3 = {0};
    snprintf(stem, sizeof stem, "%s/example_surface", dir);
    s3.path = stem, s3.width = 1200, s3.height = 540, s3.npanels = 2, s3.panels = d3.pan;
    s3.title = "Figure 3 (synthetic data): loss surface along two eigenvectors of I";
    s3.xlabel = "a (4th eigenvector)", s3.ylabel = "b (1st eigenvector)", s3.zlabel = "loss";
    s3.note = "example data, not a measurement; + marks the minimum";
    st = nh_plot_surface(&s3, NULL);
    nh_check(st == NH_OK, "example surface -> %s: %s", stem, nh_last_error());
}

static void cleanup_dir(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/nh_test_plot_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    nh_status av = nh_plot_available();
    if (av != NH_OK) {
        /* no cairo drivers: the calls must fail cleanly */
        printf("SKIP: %s\n", nh_last_error());
        double x[2] = {0, 1};
        nh_plot_series s = {0};
        s.n = 2, s.x = x, s.y = x;
        nh_plot_panel p = {0};
        p.nseries = 1, p.series = &s;
        char stem[300];
        path_in(stem, sizeof stem, "nodrv");
        nh_plot_spec sp = {0};
        sp.path = stem, sp.npanels = 1, sp.panels = &p;
        nh_check(nh_plot_xy(&sp, NULL) == NH_EIO && count_prefix("nodrv") == 0,
                 "without drivers: NH_EIO and no files");
        cleanup_dir();
        NH_TEST_END();
    }
    nh_check(1, "pngcairo and svgcairo available");
    test_series();
    test_bars();
    test_surface();
    test_report_and_log();
    test_errors();
    test_many_calls();
    test_threads();
    test_extension_stem();
    test_stale_temporaries();
    const char *ex = getenv("NH_PLOT_EXAMPLES");
    if (ex && *ex) write_examples(ex);
    const char *keep = getenv("NH_PLOT_KEEP"); /* debugging: look at the files */
    if (keep && *keep == '1') printf("kept %s\n", tmpdir);
    else cleanup_dir();
    NH_TEST_END();
}
