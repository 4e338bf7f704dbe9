/* fuzz_fig1_trials -- the fig1 trial-file reader, fig1_load_trials() in
 * src/cli/cmd_fig.c (trials_<act>.csv: a header line naming the run, then
 * "r,v_1,...,v_{2 nv}" per finished trial; a resumed fig1 run loads it).
 *
 * The function is static, so this file #includes cmd_fig.c (compiled with
 * fuzz/cli_shim.h, linked with args.c and the library); nothing in src/ is
 * changed.  It only reads files, so it is called directly.
 *
 * Input: byte 0 = flags: bits 0-1 -> nrec = 1..4 records (nv = 4 nrec values
 * per half); bit 7 -> the harness writes the expected header line first
 * (else the input must carry it); byte 1 -> trials = 1..16; the rest is the
 * file body.  Checks: the return is (size_t)-1 only for a header mismatch,
 * else the number of done[] flags set, <= trials; ASan checks every write
 * into H and I.  With NH_FUZZ_STRICT=1 it also checks that the values of
 * each trial reported done are those of a complete line for that trial
 * (a later partial line for the same trial must not overwrite them). */
#define NHF_WANT_CLI 1
#include "fuzz_common.h"
#include "cmd_fig.c"

static const char HEADER[] =
    "# ntkhess fig1 trials: act=softplus data=sphere n=8 width=4 beta=0.10000000000000001 lr=0.25 steps=4 "
    "every=4 probes=1 seed=0\n";

static int strict;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    nhf_init();
    (void)nh_fuzz_stderr(); /* opened once here, not inside a measured run */
    const char *s = getenv("NH_FUZZ_STRICT");
    strict = s && *s && strcmp(s, "0") != 0;
    return 0;
}

/* Strict mode: does some complete line for trial r ("r" then exactly 2 nv
 * ",value" fields, then the newline) carry exactly h[0..nv) and iv[0..nv)?
 * Same tokenizer as fig1_load_trials. */
static int matches_a_line(const char *path, const fig1_cfg *f, size_t r, const double *h, const double *iv) {
    FILE *fp = fopen(path, "r");
    NHF_SETUP(fp != NULL, path);
    size_t cap = 1 << 20, nv = f->nrec * 4;
    char *line = malloc(cap);
    double *v = malloc(2 * nv * sizeof *v);
    NHF_SETUP(line && v, "malloc");
    int found = 0;
    if (fgets(line, (int)cap, fp))
        while (!found && fgets(line, (int)cap, fp)) {
            size_t len = strlen(line);
            if (!len || line[len - 1] != '\n') break;
            char *p = line, *end;
            long long rr = strtoll(p, &end, 10);
            if (end == p || rr < 0 || (size_t)rr != r) continue;
            p = end;
            size_t k;
            for (k = 0; k < 2 * nv; k++) {
                if (*p != ',') break;
                v[k] = strtod(p + 1, &end);
                if (end == p + 1) break;
                p = end;
            }
            found = k == 2 * nv && *p == '\n' && memcmp(v, h, nv * sizeof *v) == 0 &&
                    memcmp(v + nv, iv, nv * sizeof *v) == 0;
        }
    free(line);
    free(v);
    fclose(fp);
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    if (size < 2) return 0;
    fig1_cfg f;
    memset(&f, 0, sizeof f);
    f.nrec = 1 + (data[0] & 3);
    f.trials = 1 + data[1] % 16;
    const int prepend = (data[0] & 0x80) != 0;
    const size_t nv = f.nrec * 4;

    const char *path = nhf_path("trials_softplus.csv");
    FILE *fp = fopen(path, "wb");
    NHF_SETUP(fp != NULL, path);
    if (prepend) fputs(HEADER, fp);
    if (size > 2) fwrite(data + 2, 1, size - 2, fp);
    NHF_SETUP(fclose(fp) == 0, path);

    double *H = malloc(f.trials * nv * sizeof *H), *I = malloc(f.trials * nv * sizeof *I);
    int *done = calloc(f.trials, sizeof *done);
    NHF_SETUP(H && I && done, "malloc");
    for (size_t k = 0; k < f.trials * nv; k++) H[k] = I[k] = -12345.0;
    size_t got = fig1_load_trials(path, HEADER, &f, H, I, done);
    if (nhf_debug < 0) nhf_debug = getenv("NH_FUZZ_DEBUG") != NULL;
    if (nhf_debug) dprintf(2, "  fig1_load_trials: nrec %zu, trials %zu -> %zd\n", f.nrec, f.trials, (ssize_t)got);
    if (got == (size_t)-1) {
        NHF_CHECK(!prepend, "header mismatch reported for a file that starts with the header");
    } else {
        size_t n = 0;
        for (size_t r = 0; r < f.trials; r++) n += done[r] != 0;
        NHF_CHECK(n == got && got <= f.trials, "returned %zu, %zu trials flagged done (of %zu)", got, n, f.trials);
        if (strict)
            for (size_t r = 0; r < f.trials; r++)
                NHF_CHECK(!done[r] || matches_a_line(path, &f, r, H + r * nv, I + r * nv),
                          "trial %zu is flagged done but its values match no complete line for it "
                          "(overwritten by a later line)", r);
    }
    free(H);
    free(I);
    free(done);
    unlink(path);
    return 0;
}
