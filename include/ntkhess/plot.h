/* ntkhess/plot.h -- plots from caller-owned arrays, PNG + SVG through PLplot (libntkhess-plot).
 * Conventions: see ntkhess.h and docs/conventions.md. */
#ifndef NTKHESS_PLOT_H
#define NTKHESS_PLOT_H

#include "ntkhess/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------- plots */

/* Figures from caller-owned arrays: the plotting code never computes, it
 * only draws what it is given.  Every call writes two files, STEM.png
 * (24-bit RGB, width x height pixels) and STEM.svg (width x height points),
 * through PLplot's pngcairo and svgcairo drivers: white background, black
 * axes and text, a fixed ten-colour palette and the viridis colour map.
 * Each file is first written under a temporary name in the same directory
 * (STEM.png.tmpPID_N), checked to be complete, then renamed into place, so a
 * failed call leaves neither file behind (an older file of the same name is
 * replaced only on success).
 *
 * Text (titles, labels, legend entries, notes) is UTF-8 and goes through
 * PLplot's escape sequences: "#u" / "#d" start super- / subscript (e.g.
 * "Tr(H#uk#d)"), "#gl" is a Greek lambda, "##" is a literal '#'.  A note
 * may hold several lines separated by '\n'.
 *
 * Threads and PLplot state: PLplot keeps global state, so the calls hold a
 * process-wide lock while drawing; each draws in fresh PLplot streams
 * (plmkstrm ... plend1) and restores the caller's current stream, so they
 * may be mixed with other PLplot use in the same process (not concurrently
 * with it).  No plot state survives a call; PLplot's exit handler
 * (plsexit) is replaced during a call and reset to none afterwards.
 *
 * Residual risk: PLplot calls exit() on a few internal failures (out of
 * memory, font files or a driver's shared object missing from an installed
 * driver directory).  The calls check the drivers and create the output
 * files before PLplot runs, so with a working PLplot installation this does
 * not happen; if it does, the temporary files are removed before the
 * process exits. */

/* Colours: NH_COLOR_AUTO gives the k-th series of a panel the k-th entry of
 * the palette (blue, orange, green, red, ..., cyclic); the others are fixed
 * (matplotlib's "tab10" colours, plus black). */
typedef enum nh_plot_color {
    NH_COLOR_AUTO = 0,
    NH_COLOR_BLACK,
    NH_COLOR_BLUE,
    NH_COLOR_ORANGE,
    NH_COLOR_GREEN,
    NH_COLOR_RED,
    NH_COLOR_PURPLE,
    NH_COLOR_BROWN,
    NH_COLOR_PINK,
    NH_COLOR_GREY,
    NH_COLOR_OLIVE,
    NH_COLOR_CYAN,
    NH_COLOR_COUNT
} nh_plot_color;

typedef enum nh_plot_style {
    NH_STYLE_LINE = 0,    /* solid line through the points (broken at skipped ones) */
    NH_STYLE_POINTS,      /* markers, with error bars when yerr is given            */
    NH_STYLE_LINE_POINTS, /* both                                                   */
    NH_STYLE_BARS,        /* vertical bars from y = 0 (from the bottom of a log
                           * axis); a panel's BARS series are grouped side by
                           * side at each x (width 0.8 x the smallest x spacing)  */
    NH_STYLE_COUNT
} nh_plot_style;

typedef enum nh_plot_marker {
    NH_MARKER_AUTO = 0, /* cross */
    NH_MARKER_CROSS,
    NH_MARKER_PLUS,
    NH_MARKER_CIRCLE,   /* open  */
    NH_MARKER_DOT,      /* filled circle */
    NH_MARKER_SQUARE,   /* open  */
    NH_MARKER_TRIANGLE, /* open  */
    NH_MARKER_DIAMOND,  /* open  */
    NH_MARKER_COUNT
} nh_plot_marker;

/* Where a panel's legend goes.  AUTO: an inside corner that covers no
 * drawn point (line, marker, error bar, bar); else, when the y range is
 * automatic and raising its top by at most 30% clears a top corner, that
 * corner with the raised top; else BELOW.  BELOW: under the panel's x
 * label, entries in as many columns as fit.  Panels that would repeat the
 * same legend can set NH_LEGEND_NONE. */
typedef enum nh_plot_legend {
    NH_LEGEND_AUTO = 0,
    NH_LEGEND_TOP_RIGHT,
    NH_LEGEND_TOP_LEFT,
    NH_LEGEND_BOTTOM_LEFT,
    NH_LEGEND_BOTTOM_RIGHT,
    NH_LEGEND_BELOW,
    NH_LEGEND_NONE,
    NH_LEGEND_COUNT
} nh_plot_legend;

/* One data series (all arrays caller-owned, read only).  A point is skipped
 * (and counted in nh_plot_report) when x, y or yerr is NaN/Inf, or when a
 * coordinate is <= 0 on a log axis.  An error bar y +- yerr that reaches
 * below the bottom of a log axis is drawn down to the axis. */
typedef struct nh_plot_series {
    size_t         n;      /* number of points, >= 1                       */
    const double  *x;      /* [n]                                          */
    const double  *y;      /* [n]                                          */
    const double  *yerr;   /* [n] error-bar half-widths (>= 0), or NULL    */
    nh_plot_style  style;
    nh_plot_color  color;
    nh_plot_marker marker; /* for POINTS and LINE_POINTS                  */
    const char    *label;  /* legend entry; NULL or "" = not in the legend */
} nh_plot_series;

/* One panel (axes box).  Limits: a pair with min < max (both finite, and
 * > 0 on a log axis) is used as given; otherwise (e.g. both 0) the range
 * is taken from the data (error bars and bar bases included) and padded;
 * on a log axis it is widened to whole decades when fewer than two would
 * be inside (PLplot labels log axes at whole decades only). */
typedef struct nh_plot_panel {
    const char           *title;   /* above the panel, or NULL          */
    const char           *xlabel;  /* or NULL                           */
    const char           *ylabel;  /* or NULL                           */
    size_t                nseries; /* 1..64                             */
    const nh_plot_series *series;  /* [nseries]                         */
    int                   logx;    /* nonzero: log10 x axis (no BARS)   */
    int                   logy;    /* nonzero: log10 y axis             */
    double                xmin, xmax, ymin, ymax;
    nh_plot_legend        legend;
} nh_plot_panel;

/* A figure of npanels panels side by side, left to right. */
typedef struct nh_plot_spec {
    const char          *path;    /* output stem: writes path.png, path.svg
                                   * ("out.png" or "out.svg" is taken as the
                                   * stem "out"); the directory must exist;
                                   * no "%n" (a PLplot placeholder)        */
    int                  width;   /* pixels; 0 = 560 per panel (series) or
                                   * 600 per panel (surface); 64..16384     */
    int                  height;  /* pixels; 0 = 460 (+ 22 per note line); 64..16384 */
    const char          *title;   /* over the whole figure, or NULL        */
    const char          *note;    /* small text at the bottom left (run
                                   * parameters, "quick mode: ..."), or NULL */
    size_t               npanels; /* 1..16                                  */
    const nh_plot_panel *panels;  /* [npanels]                              */
} nh_plot_spec;

/* What a plotting call dropped.  When anything was dropped, a line saying
 * so ("not shown: ...") is added to the figure under the note. */
typedef struct nh_plot_report {
    size_t n_drawn;       /* points (grid nodes) drawn                        */
    size_t n_nonfinite;   /* skipped: NaN/Inf in x, y, yerr (or z)            */
    size_t n_nonpositive; /* skipped: <= 0 on a log axis (or log colour scale) */
} nh_plot_report;

/* NH_OK when PLplot's pngcairo and svgcairo drivers are installed, else
 * NH_EIO (the message names the missing driver, or a PLPLOT_DRV_DIR that
 * holds no cairo driver).  Cheap: reads PLplot's driver table, writes
 * nothing. */
NH_API nh_status nh_plot_available(void);

/* Line / point / bar figure: Figure 1 (Tr(H^k)(t), theory lines and
 * empirical means with standard-error bars, log y, two panels) and
 * Figure 2 (Rayleigh quotients v^T I v, v^T S v for the leading
 * eigenvectors, grouped BARS or POINTS in two colours).
 * report may be NULL; it is zeroed, then filled once the data are checked
 * (so it is meaningful on NH_OK, NH_EIO and NH_ENONFINITE).
 * Errors: NH_EINVAL (NULL spec, path, panels, series, x or y; npanels,
 * nseries or n out of range; an enum out of range; a negative yerr; BARS
 * on a log x axis; a bad size; "%n" in the path; a log axis with no
 * positive value, or explicit log limits <= 0), NH_ENONFINITE (a panel has
 * no finite point), NH_ETOOLARGE (n > INT_MAX/2, PLplot's limit, or over
 * the memory limit), NH_ENOMEM, NH_EIO (missing driver; directory missing
 * or not writable; STEM.png or STEM.svg is a directory; PLplot failed or
 * wrote an incomplete file; rename failed).  On error no new or temporary
 * file is left; older files of the same names are kept, except when the
 * last step, renaming the SVG, fails: the PNG already renamed is removed. */
NH_API nh_status nh_plot_xy(const nh_plot_spec *spec, nh_plot_report *report);

/* One panel of a surface figure: values on a regular nx x ny grid,
 *   z[j*nx + i] = f(x_i, y_j),  x_i = xmin + i (xmax - xmin)/(nx - 1),
 *                               y_j = ymin + j (ymax - ymin)/(ny - 1),
 * i.e. row-major with one row per y value (NumPy's Z[j, i] from
 * meshgrid(x, y), the matplotlib contourf convention).  z is caller-owned. */
typedef struct nh_surface_panel {
    size_t        nx, ny;                 /* each >= 2                      */
    const double *z;                      /* [ny x nx]                      */
    double        xmin, xmax, ymin, ymax; /* finite, xmin < xmax, ymin < ymax */
    const char   *title;                  /* above the panel, or NULL       */
    int           mark;                   /* nonzero: a red "+" at         */
    double        mark_x, mark_y;         /*   (mark_x, mark_y), e.g. the minimum */
} nh_surface_panel;

/* Figure 3: a loss surface along two directions, panels side by side, each
 * with filled colour shading (viridis), contour lines and its colour bar.
 * Grid nodes whose value is NaN/Inf (or <= 0 with logz) are left out: the
 * cell around each is painted light grey, and they are counted. */
typedef struct nh_surface_spec {
    const char             *path;      /* as in nh_plot_spec               */
    int                     width;     /* 0 = 600 per panel                */
    int                     height;    /* 0 = 500 (+ 22 per note line)     */
    const char             *title;     /* or NULL                          */
    const char             *note;      /* or NULL                          */
    const char             *xlabel;    /* shared by the panels, or NULL    */
    const char             *ylabel;    /* or NULL                          */
    const char             *zlabel;    /* colour-bar label, or NULL        */
    size_t                  npanels;   /* 1..16                            */
    const nh_surface_panel *panels;    /* [npanels]                        */
    int                     logz;      /* nonzero: shade and contour log10 z;
                                        * the colour bar is labelled in z
                                        * (10^k) and spans at least one
                                        * whole decade                     */
    int                     shared_scale; /* nonzero: one colour range for
                                        * all panels (default: per panel)  */
    int                     ncontours; /* contour lines per panel, at
                                        * lo + k (hi - lo)/(ncontours + 1),
                                        * k = 1..ncontours: 0 = 11, < 0 =
                                        * none, at most 100                */
    int                     nshades;   /* colour bands: 0 = 24, 2..256.
                                        * Each contour is a band edge when
                                        * ncontours + 1 divides nshades.
                                        * SVG size grows with grid cells x
                                        * bands (61 x 61, 24: ~2.5 MB)     */
} nh_surface_spec;

/* Errors: NH_EINVAL (NULL spec, path, panels or z; nx or ny < 2; bad
 * extent, size, ncontours or nshades; mark not finite; "%n" in the path;
 * logz with no positive value in a panel), NH_ENONFINITE (a panel has no
 * finite value), NH_ETOOLARGE (nx * ny overflows or exceeds the memory
 * limit, or nx, ny > INT_MAX/2), NH_ENOMEM, NH_EIO (as nh_plot_xy).
 * report may be NULL (as nh_plot_xy; n_drawn counts grid nodes). */
NH_API nh_status nh_plot_surface(const nh_surface_spec *spec, nh_plot_report *report);

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_PLOT_H */
