/* fig1.h -- fig1's trial, shared by `ntkhess fig1` (cmd_fig.c) and `ntkhess
 * bench trial` (cmd_bench.c), so that the benchmark times the very function
 * the figure runs, at the figure's own defaults. */
#ifndef NH_CLI_FIG1_H
#define NH_CLI_FIG1_H

#include "cli.h"

/* Wall time of the phases of one trial (seconds) and its work. */
typedef struct nh_fig1_cost {
    double total_s, step_s; /* the whole trial; the GD steps (gradient, update, forward + backward) */
    double trace_h_s;       /* nh_curv_trace(H): NTK Gram, G, the Hutchinson products */
    double trace_i_s;       /* 0 since the exact Tr(I^k) comes with trace_h_s (nh_curv_trace_hi); kept for the JSON */
    size_t steps, records, products;
} nh_fig1_cost;

typedef struct nh_fig1_bench nh_fig1_bench;

/* fig1's options parsed from argv exactly as `ntkhess fig1` parses them
 * (so unset options take fig1's defaults) and its data loaded; --out is
 * not needed.  Dies (nh_die) on errors. */
nh_fig1_bench *nh_fig1_bench_open(const nh_cmd *cmd, int argc, char **argv);
/* Values per trial (records x 4); the probes, precision and first nonlinearity. */
size_t nh_fig1_bench_nvalues(const nh_fig1_bench *b);
void nh_fig1_bench_info(const nh_fig1_bench *b, size_t *probes, int *f32, nh_act *act, size_t *d);
/* Trial r of the first nonlinearity (fig1's trial function): Tr(H^k),
 * Tr(I^k) and the Hutchinson standard error of Tr(H^k) within the trial
 * (NaN with 1 probe), nvalues each (hse may be NULL), and its cost. */
void nh_fig1_bench_trial(const nh_cmd *cmd, nh_fig1_bench *b, size_t r, double *trH, double *trI, double *hse,
                         nh_fig1_cost *cost);
/* Median of reps single float64 H v on trial 0's initial network and data. */
double nh_fig1_bench_hv(const nh_cmd *cmd, nh_fig1_bench *b, int reps);
void nh_fig1_bench_close(nh_fig1_bench *b);

#endif
