/* sharp.h -- sharpness along training (cmd_sharp.c), shared with the eos and
 * catapult figures (cmd_eos.c).  Private to the CLI: the numerics (the
 * warm-started eigen-solves of a record) are the library's nh_sharp
 * (ntkhess/sharp.h); this runs the GD loop, the checkpoints and the CSV. */
#ifndef NH_CLI_SHARP_H
#define NH_CLI_SHARP_H
#include "cli.h"

/* Options of a recorded run. */
typedef struct sh_opts {
    double    eta;
    long long steps, every, ckev;
    nh_sharp_opts rec;           /* top, tol, maxit, min_steps, cold, ntk   */
    nh_curv_opts curv;           /* context options (batch: --batch)          */
    int       quiet;
    int       restart; /* 1: drop an unfinished run's checkpoint first */
} sh_opts;

/* Full-batch GD from *net for o->steps steps, writing records to csv
 * through CSV.partial, renamed to csv only when the run is complete (so a
 * killed run never leaves a csv that looks finished); resumes from csv's
 * checkpoint (CSV.ckpt, CSV.warm, continuing CSV.partial) when one with
 * identity id exists (and exits refusing one of another identity: ckpt.c).
 * Returns NH_OK or NH_EDIVERGED (then *kend is the step that diverged; *net
 * holds the last finite state; csv holds the records up to it).  Dies on
 * other errors. */
nh_status sh_run(const nh_cmd *cmd, nh_net **net, const nh_dataset *d, nh_loss loss, const sh_opts *o,
                 const char *csv, const nh_ckpt_id *id, long long *kend);

/* A numeric CSV with a header: rows x cols doubles (malloc'ed), column
 * index by name (-1 when absent). */
typedef struct sh_table {
    size_t  rows, cols;
    char  **names;
    double *v;
} sh_table;
void sh_table_read(const nh_cmd *cmd, const char *path, sh_table *t);
int  sh_table_col(const sh_table *t, const char *name);
void sh_table_free(sh_table *t);

#endif
