/* cmd_data.c -- ntkhess data KIND: write built-in data sets as X.npy, Y.npy. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const nh_optspec data_opts[] = {
    {"n", "N", "256", "number of samples"},
    {"dim", "D", "", "input dimension (sphere: default 196; disk: 2)"},
    {"seed", "S", "0", "seed of the data generator"},
    {"loss", "NAME", "mse", "target type: mse (real), bce (-1/+1 labels) or ce (class ids)"},
    {"classes", "K", "10", "number of classes for --loss ce"},
    {"out", "DIR", NULL, "output directory (X.npy, Y.npy)"},
    {NULL, NULL, NULL, NULL}};

static int run_data(const nh_cmd *cmd, int argc, char **argv) {
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        nh_cli_help(cmd, stdout);
        return 0;
    }
    if (argc < 1 || argv[0][0] == '-') nh_die_usage(cmd, "missing the data set name (sphere or disk)");
    const char *kind = argv[0];
    nh_args a;
    nh_cli_parse(cmd, argc - 1, argv + 1, &a);
    nh_dataset_kind k;
    size_t dim;
    if (strcmp(kind, "sphere") == 0) { k = NH_DATA_SPHERE; dim = 196; }
    else if (strcmp(kind, "disk") == 0) { k = NH_DATA_DISK; dim = 2; }
    else nh_die_usage(cmd, "unknown data set '%s' (expected sphere or disk)", kind);
    if (nh_arg_str(&a, "dim")) dim = (size_t)nh_arg_int(&a, "dim", 1, 1 << 24);
    size_t n = (size_t)nh_arg_int(&a, "n", 1, (long long)1 << 32);
    nh_loss loss;
    if (nh_loss_from_name(nh_arg_req(&a, "loss"), &loss) != NH_OK)
        nh_die_usage(cmd, "--loss must be mse, bce or ce, got '%s'", nh_arg_str(&a, "loss"));
    size_t K = (size_t)nh_arg_int(&a, "classes", 2, 1 << 20);
    const char *out = nh_arg_req(&a, "out");
    double need = (double)n * ((double)dim + 1) * 8.0;
    if (need > (double)nh_get_mem_limit()) nh_die(cmd, "%zu samples of dimension %zu need %.3g GB", n, dim, need / 1e9);
    double *X = malloc(n * dim * sizeof *X), *T = malloc(n * sizeof *T);
    if (!X || !T) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_data_synth(k, n, dim, loss, K, nh_arg_u64(&a, "seed"), X, T));
    nh_cli_mkdir(cmd, out);
    size_t shX[2] = {n, dim}, shY[2] = {n, 1};
    nh_cli_write_npy(cmd, out, "X.npy", X, 2, shX);
    nh_cli_write_npy(cmd, out, "Y.npy", T, loss == NH_LOSS_CE ? 1 : 2, shY);
    fprintf(stderr, "ntkhess data: wrote %s/X.npy (%zu x %zu) and %s/Y.npy\n", out, n, dim, out);
    free(X);
    free(T);
    return 0;
}

const nh_cmd nh_cmd_data = {
    "data", "Write a built-in data set as X.npy and Y.npy.",
    "sphere|disk [--n N] [--dim D] [--seed S] [--loss mse|bce|ce] [--classes K] --out DIR",
    "sphere: x uniform on the sphere ||x||^2 = D (so ||x||^2/n_0 = 1), target\n"
    "y = sin(2 u.x) with u a random unit vector (supported on the first 64 axes).\n"
    "disk: x uniform on the unit disk (D = 2), y = sin(3 x_1) cos(2 x_2) (the\n"
    "paper's Figure 3 data).  bce labels are sign(y) in {-1,+1}; ce classes are K\n"
    "equal buckets of y in [-1,1].  Y.npy is (N, 1), or (N,) for ce.",
    data_opts, run_data};
