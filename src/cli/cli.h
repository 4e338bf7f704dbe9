/* cli.h -- the command-line layer: option tables, parsing, messages.
 * The CLI is the only code that prints or exits. */
#ifndef NH_CLI_H
#define NH_CLI_H
#include "ntkhess.h"
#include <stdio.h>

#define NH_EXIT_RUNTIME 1
#define NH_EXIT_USAGE 2

/* One option of a command: --name METAVAR (default) help.  metavar NULL for a
 * flag; def NULL for a required option, "" for an optional one without default.
 * quick: the value under --quick when the option is not given (commands with
 * a --quick flag); nh_cli_parse applies it and --help shows it.  Rows may
 * leave the quick column out: the pragma below keeps -Wextra quiet about it. */
typedef struct nh_optspec {
    const char *name;
    const char *metavar;
    const char *def;
    const char *help;
    const char *quick;
} nh_optspec;
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

/* A help text may name the library's tables instead of copying them:
 * --help prints "{acts}" as "softplus, nsoftplus, ... or leaky_relu",
 * "{act_params}" as "softplus:beta (default 1) or leaky_relu:slope (default
 * 0.01)" and "{losses}" as "mse (real targets), bce (-1/+1 labels) or ce
 * (class ids)".  The usual rows for --loss, --act and --acts: */
#define NH_OPT_LOSS(def) {"loss", "NAME", (def), "loss: {losses}"}
#define NH_OPT_ACT(def) {"act", "NAME", (def), "nonlinearity: {acts}"}
/* --batch B: rows per pass over the data (nh_curv_opts.batch), read by nh_cli_curv_opts. */
#define NH_OPT_BATCH {"batch", "B", "0", "rows per pass over the data (streaming: memory O(B widths) plus the " \
                      "data; results equal up to summation order); 0 = all rows when they fit half the memory " \
                      "limit, else the largest batch that does"}, \
                     {"progress", NULL, NULL, "print a progress line on stderr (batches, products, time left) even " \
                      "when stderr is not a terminal"}
/* --params LIST: a block of parameters (nh_curv_select), applied by nh_cli_params. */
#define NH_OPT_PARAMS {"params", "LIST", "", "restrict H, I, S to the diagonal block of these tensors, comma-" \
                       "separated, named as in the model files (W0,b0,W1,...); vectors then have P_B entries"}
#define NH_OPT_ACTS(def) {"acts", "LIST", (def), "nonlinearities, comma-separated, one panel each: {acts}"}

typedef struct nh_cmd {
    const char *name;
    const char *summary;
    const char *usage;       /* synopsis after "ntkhess NAME" */
    const char *description; /* paragraphs for --help */
    const nh_optspec *opts;  /* terminated by {NULL} */
    int (*run)(const struct nh_cmd *cmd, int argc, char **argv);
} nh_cmd;

#define NH_MAXOPT 48
typedef struct nh_args {
    const nh_cmd *cmd;
    const char *val[NH_MAXOPT]; /* parsed value or default, by option index */
    int given[NH_MAXOPT];
} nh_args;

/* Parse argv (after the command name).  Prints --help and exits 0 on --help;
 * on a usage error prints one line and exits 2. */
void nh_cli_parse(const nh_cmd *cmd, int argc, char **argv, nh_args *a);
void nh_cli_help(const nh_cmd *cmd, FILE *out);

const char *nh_arg_str(const nh_args *a, const char *name);     /* NULL if unset */
int         nh_arg_flag(const nh_args *a, const char *name);
const char *nh_arg_req(const nh_args *a, const char *name);     /* exits 2 if missing */
double      nh_arg_double(const nh_args *a, const char *name);  /* finite, exits 2 */
long long   nh_arg_int(const nh_args *a, const char *name, long long lo, long long hi);
uint64_t    nh_arg_u64(const nh_args *a, const char *name);
/* Comma list of positive sizes; returns count, exits 2 on bad input. */
size_t      nh_arg_sizes(const nh_args *a, const char *name, size_t *out, size_t max);
/* Comma list of doubles; returns count (malloc'ed *out). */
size_t      nh_arg_doubles(const nh_args *a, const char *name, double **out);

/* "mse, bce or ce" and "softplus, ..., silu or leaky_relu", built once from
 * the library's tables. */
const char *nh_cli_loss_names(void);
const char *nh_cli_act_names(void);
/* Print a help text with {acts}, {act_params} and {losses} expanded. */
void nh_cli_help_text(FILE *out, const char *help);
/* --loss as an nh_loss; exits 2 naming the valid losses. */
nh_loss     nh_arg_loss(const nh_cmd *cmd, const nh_args *a);
/* --act "name" or "name:param" (nh_act_parse).  param NULL: the command takes
 * no activation parameter and "name:param" is a usage error.  Exits 2 with the
 * library's message. */
nh_act      nh_arg_act(const nh_cmd *cmd, const nh_args *a, double *param);
/* One activation spec (e.g. an entry of a comma list) for option --opt. */
nh_act      nh_cli_act_spec(const nh_cmd *cmd, const char *opt, const char *spec, double *param);

/* Messages: "ntkhess CMD: error: ..." and exit. */
_Noreturn void nh_die_usage(const nh_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void nh_die_status(const nh_cmd *cmd, nh_status st);
_Noreturn void nh_die(const nh_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define NH_CHECK(cmd, expr) do { nh_status s__ = (expr); if (s__ != NH_OK) nh_die_status((cmd), s__); } while (0)

/* Data loading shared by commands. */
typedef struct nh_dataset {
    double *X;   /* N x n0; NULL when X32 holds the data */
    float  *X32; /* N x n0 float32 as stored (nh_cli_load_data_f32 on a float32 X.npy), else NULL */
    double *T;   /* N x nout (mse, bce) or N labels (ce) */
    size_t  n, n0, nout;
} nh_dataset;
/* Load X.npy (N x n0) and targets (N x nout, or (N,) when nout == 1 or ce)
 * and check them against the network; exits with a clear message on error. */
void nh_cli_load_data(const nh_cmd *cmd, const char *xpath, const char *tpath, const nh_net *net, nh_loss loss,
                      nh_dataset *d);
/* The same, keeping a float32 X.npy as float32 (d->X32, d->X NULL): for
 * commands that use the data only through nh_cli_curv. */
void nh_cli_load_data_f32(const nh_cmd *cmd, const char *xpath, const char *tpath, const nh_net *net, nh_loss loss,
                          nh_dataset *d);
void nh_dataset_free(nh_dataset *d);
/* mkdir -p style for one level; exits on failure. */
void nh_cli_mkdir(const nh_cmd *cmd, const char *dir);
/* path = dir + "/" + name into buf. */
const char *nh_cli_path(char *buf, size_t cap, const char *dir, const char *name);
/* Write an npy (exits on failure). */
void nh_cli_write_npy(const nh_cmd *cmd, const char *dir, const char *name, const double *data, size_t ndim,
                      const size_t *shape);
/* Class ids for --loss ce: integers in [0, NH_MAX_CLASSES) (exit 1 naming the
 * row otherwise); returns the class count, largest label + 1 (at least 2). */
#define NH_MAX_CLASSES 100000
size_t nh_cli_ce_classes(const nh_cmd *cmd, const char *what, const double *T, size_t n);
/* Exit 1 naming what and the index when x[n] has a NaN or an infinity. */
void nh_cli_check_finite(const nh_cmd *cmd, const char *what, const double *x, size_t n);
/* Atomically write text to path (nh_file_write). */
void nh_cli_write_text(const nh_cmd *cmd, const char *path, const char *text);
/* The same for a result: exits 1 first when the text holds a non-finite
 * number (printf's nan or inf, or cJSON's null). */
void nh_cli_write_result(const nh_cmd *cmd, const char *path, const char *text);
/* Progress line on stderr when it is a terminal. */
void nh_cli_progress(const char *what, size_t done, size_t total, double elapsed_s);
double nh_cli_now(void);
/* "about T s for COUNT WHAT": said up front from the time of one unit, when
 * stderr is a terminal or the total is 10 s or more. */
void nh_cli_estimate(const nh_cmd *cmd, const char *what, double one, long long count);
void nh_cli_threads(const nh_args *a);
/* The context options of a command with NH_OPT_BATCH (float64; batch from
 * --batch): a pointer to one static struct, for nh_curv_create_ex. */
const nh_curv_opts *nh_cli_curv_opts(const nh_args *a);
/* progress.c: the context of a command with NH_OPT_BATCH on d (float64 or
 * float32 X), with the progress line installed when stderr is a terminal or
 * --progress was given (nh_cli_curv_opts reads it); exits on error. */
nh_curv *nh_cli_curv(const nh_cmd *cmd, const nh_net *net, const nh_dataset *d, nh_loss loss, const nh_curv_opts *o);
void nh_cli_progress_ask(int on);
struct cJSON;
/* --params LIST (NULL or "" = all of theta): select those tensors of c's
 * network (nh_net_find_tensor names) on c; exits 2 naming the valid tensors
 * for an unknown or repeated name.  With js, adds "params": [names] and
 * "dim": P_B.  Returns nh_curv_dim(c). */
size_t nh_cli_params(const nh_cmd *cmd, const char *list, nh_curv *c, struct cJSON *js);

/* JSON number (cJSON) in the shortest round-trip text (15-17 digits), or
 * null for a non-finite value: cJSON's own printer keeps only 15 digits. */
struct cJSON *nh_cli_json_num(double v);

/* The running command's output, all or nothing (out.c).  nh_out_open
 * refuses (exit 2) an output that is, or contains, one of the inputs, takes
 * the output's lock (exit 1 naming the owner's pid when in use) and returns
 * the work path to write into: the work folder, or with NH_OUTDIR_FILE the
 * file.  nh_out_commit puts it in place; any exit before that removes it
 * (atexit), nh_out_release keeps it for a resume. */
const char *nh_out_open(const nh_cmd *cmd, const char *final, unsigned flags, const char *const *inputs,
                        size_t ninputs);
const char *nh_out_work(void);
int  nh_out_resumed(void);
void nh_out_reset(const nh_cmd *cmd);
void nh_out_commit(const nh_cmd *cmd);
void nh_out_release(void);
void nh_out_lock(void);   /* held around commits and checkpoints: a signal waits */
void nh_out_unlock(void);
/* Signals (out.c): SIGINT/SIGTERM/SIGHUP.  nh_sig_init at the start of main;
 * nh_sig_cooperate(1) in loops that checkpoint on a signal
 * (nh_sig_pending, then nh_sig_exit: one line, exit 128+signal); otherwise
 * a signal removes the work and exits 128+signal at once. */
void nh_sig_init(void);
void nh_sig_command(const nh_cmd *cmd); /* the command named in the messages */
void nh_sig_cooperate(int on);
int  nh_sig_pending(void);
_Noreturn void nh_sig_exit(const nh_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resumable runs (ckpt.c): identity, checkpoint, validated log. */
#define NH_MAX_STEPS ((long long)1 << 40) /* --steps at most 2^40 (documented) */
#define NH_CKPT_ID_MAX 16
typedef struct nh_ckpt_id {
    size_t n;
    char name[NH_CKPT_ID_MAX][24];
    char value[NH_CKPT_ID_MAX][80];
} nh_ckpt_id;
void nh_ckpt_id_add(nh_ckpt_id *id, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void nh_ckpt_id_file(const nh_cmd *cmd, nh_ckpt_id *id, const char *name, const char *path); /* SHA-256 of the bytes */
void nh_ckpt_id_model(const nh_cmd *cmd, nh_ckpt_id *id, const char *dir, const nh_net *net);
/* The low-level pieces (nh_run uses them; so does fuzz/fuzz_checkpoint.c).
 * nh_ckpt_load: -1 when ckdir does not exist; else the step, its network in
 * *net and the log state in *s, or exit 1 (a mismatched identity, a corrupt
 * state or parameters, a step past max_step).  nh_ckpt_log_check: exit 1
 * unless the log at path starts with header and has at least s->rows lines
 * whose last is the checkpoint's; then drops the lines after those.
 * nh_ckpt_save: stage ckdir.new, swap it in (nh_file_replace_dir). */
typedef struct nh_ckpt_state {
    nh_ckpt_id id;
    long long step, rows;
    char params[65], last[65];
} nh_ckpt_state;
long long nh_ckpt_load(const nh_cmd *cmd, const char *ckdir, const nh_ckpt_id *id, long long max_step, nh_net **net,
                       nh_ckpt_state *s);
void nh_ckpt_log_check(const nh_cmd *cmd, const char *path, const char *header, const nh_ckpt_state *s);
void nh_ckpt_save(const nh_cmd *cmd, const char *ckdir, const nh_ckpt_id *id, long long step, const nh_net *net,
                  long long rows, const char *last_row);
typedef struct nh_log {
    FILE *f;
    char path[4400];
    long long rows;   /* lines written, header included */
    char last[2048];  /* the last line, without its newline */
} nh_log;
void nh_log_row(const nh_cmd *cmd, nh_log *log, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
typedef struct nh_run_spec {
    const nh_cmd *cmd;
    const char *out;              /* the output folder, or file when file = 1 */
    int file;
    const char *log_name;         /* folder output: the log's name inside it */
    const char *header;           /* the log's first line */
    nh_ckpt_id id;
    long long max_step;
    int restart;
    const char *const *inputs;    /* refused as outputs */
    size_t ninputs;
} nh_run_spec;
typedef struct nh_run {
    const nh_cmd *cmd;
    char work[4200], ck[4300];
    nh_ckpt_id id;
    long long max_step;
    nh_log log;
} nh_run;
/* Open the output, resume its checkpoint (-1: none; then the log holds the
 * header only) into *net; exits refusing a mismatched or corrupt one. */
long long nh_run_begin(nh_run *r, const nh_run_spec *sp, nh_net **net);
void nh_run_checkpoint(nh_run *r, long long step, const nh_net *net);
void nh_run_poll_signal(nh_run *r, long long step, const nh_net *net);
void nh_run_close_log(nh_run *r);

extern const nh_cmd nh_cmd_init, nh_cmd_train, nh_cmd_curvature, nh_cmd_data, nh_cmd_kernel, nh_cmd_gram,
    nh_cmd_predict, nh_cmd_measure, nh_cmd_spectrum, nh_cmd_landscape, nh_cmd_fig1, nh_cmd_fig2, nh_cmd_fig3,
    nh_cmd_bench;
#endif
