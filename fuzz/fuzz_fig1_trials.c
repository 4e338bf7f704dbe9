/* fuzz_fig1_trials -- the fig1 trial-file reader, fig1_parse_trials() in
 * src/cli/cmd_fig.c (trials_<act>.csv: a header line naming the run by the
 * SHA-256 of its options, then "r,v_1,...,v_{2 nv},c=CHECK" per finished
 * trial, CHECK a checksum of the row; a resumed fig1 run loads it).
 *
 * The function is static, so this file #includes cmd_fig.c (compiled with
 * fuzz/cli_shim.h, linked with args.c and the library); nothing in src/ is
 * changed.  It only parses memory, so it is called directly.
 *
 * Input: byte 0 = flags: bits 0-1 -> nrec = 1..4 records (nv = 4 nrec values
 * per half); bit 7 -> the harness writes the expected header line first
 * (else the input must carry it); bit 6 -> the harness signs every line of
 * the body (appends ",c=CHECK" as fig1 does), so that the value parser is
 * reached; byte 1 -> trials = 1..16; the rest is the file body.  Checks: -2
 * (another run) only without the harness's header, -1 only without a
 * complete header line, else the number of done[] flags set, <= trials; ASan
 * checks every write into H and I.  With NH_FUZZ_STRICT=1 it also checks
 * that the values of each trial reported done are those of a complete,
 * correctly signed line for that trial. */
#define NHF_WANT_CLI 1
#include "fuzz_common.h"
#include "cmd_fig.c"

static int strict;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    nhf_init();
    (void)nh_fuzz_stderr(); /* opened once here, not inside a measured run */
    const char *s = getenv("NH_FUZZ_STRICT");
    strict = s && *s && strcmp(s, "0") != 0;
    return 0;
}

/* Strict mode: does some complete, correctly signed line of text for trial r
 * carry exactly h[0..nv) and iv[0..nv)?  Independent of fig1_parse_row. */
static int matches_a_line(const char *text, const fig1_file *tf, const fig1_cfg *f, size_t r, const double *h,
                          const double *iv) {
    const size_t nv = f->nv;
    double *v = malloc(2 * nv * sizeof *v);
    NHF_SETUP(v != NULL, "malloc");
    int found = 0;
    const char *line = strchr(text, '\n');
    while (!found && line && *++line) {
        const char *e = strchr(line, '\n'), *c = NULL;
        if (!e) break;
        for (const char *q = line; q + 3 <= e; q++)
            if (!strncmp(q, ",c=", 3)) c = q;
        char want[17];
        if (c && e - c == 19) {
            fig1_row_check(tf->id, line, (size_t)(c - line), want);
            char *end;
            long long rr = strtoll(line, &end, 10);
            size_t k = 0;
            const char *p = end;
            while (k < 2 * nv && p < c && *p == ',') { v[k++] = strtod(p + 1, &end); p = end; }
            found = !memcmp(c + 3, want, 16) && rr >= 0 && (size_t)rr == r && k == 2 * nv && p == c &&
                    !memcmp(v, h, nv * sizeof *v) && !memcmp(v + nv, iv, nv * sizeof *v);
        }
        line = e;
    }
    free(v);
    return found;
}

/* The body with every line signed as fig1 signs its rows. */
static char *sign_lines(const fig1_file *tf, const uint8_t *body, size_t n, size_t *len) {
    char *out = malloc(n * 2 + 64 + n / 1 * 20 + 1), chk[17];
    NHF_SETUP(out != NULL, "malloc");
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && body[i] != '\n') continue;
        memcpy(out + k, body + start, i - start);
        fig1_row_check(tf->id, out + k, i - start, chk);
        k += i - start;
        if (i < n) k += (size_t)sprintf(out + k, ",c=%s\n", chk);
        start = i + 1;
    }
    out[k] = 0;
    *len = k;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    if (size < 2) return 0;
    fig1_cfg f;
    memset(&f, 0, sizeof f);
    f.nrec = 1 + (data[0] & 3);
    f.nv = 4 * f.nrec;
    f.trials = 1 + data[1] % 16;
    f.n = 8, f.width = 4, f.beta = 0.1, f.lr = 0.25, f.steps = 4, f.every = 4, f.M = 1, f.data = "sphere";
    const int prepend = (data[0] & 0x80) != 0, sign = (data[0] & 0x40) != 0;
    const size_t nv = f.nv;
    fig1_file tf;
    memset(&tf, 0, sizeof tf);
    fig1_ident(&f, NH_ACT_SOFTPLUS, &tf);

    size_t blen = size - 2, hlen = 0;
    char *body = sign ? sign_lines(&tf, data + 2, size - 2, &blen) : NULL, head[700];
    if (prepend) hlen = (size_t)snprintf(head, sizeof head, "%s%s %s\n", FIG1_MAGIC, tf.id, tf.kv);
    char *text = malloc(hlen + blen + 1), *copy = malloc(hlen + blen + 1);
    double *H = malloc(f.trials * nv * sizeof *H), *I = malloc(f.trials * nv * sizeof *I);
    double *row = malloc(2 * nv * sizeof *row);
    int *done = calloc(f.trials, sizeof *done);
    NHF_SETUP(text && copy && H && I && row && done, "malloc");
    memcpy(text, head, hlen);
    memcpy(text + hlen, body ? body : (const char *)data + 2, blen);
    text[hlen + blen] = 0;
    const size_t len = strlen(text); /* an embedded NUL ends the text, as nh_file_read's NUL would */
    memcpy(copy, text, len + 1);
    for (size_t k = 0; k < f.trials * nv; k++) H[k] = I[k] = -12345.0;
    size_t bad = 0;
    int torn = 0;
    long got = fig1_parse_trials(&f, &tf, text, len, row, H, I, done, &bad, &torn);
    if (nhf_debug < 0) nhf_debug = getenv("NH_FUZZ_DEBUG") != NULL;
    if (nhf_debug) dprintf(2, "  fig1_parse_trials: nrec %zu, trials %zu -> %ld\n", f.nrec, f.trials, got);
    if (got == -2) {
        NHF_CHECK(!prepend, "another run reported for a file that starts with the run's header");
    } else if (got == -1) {
        NHF_CHECK(!prepend, "no usable header reported for a file that starts with the run's header");
    } else {
        size_t n = 0;
        for (size_t r = 0; r < f.trials; r++) n += done[r] != 0;
        NHF_CHECK(got >= 0 && n == (size_t)got && n <= f.trials, "returned %ld, %zu trials flagged done (of %zu)",
                  got, n, f.trials);
        if (strict)
            for (size_t r = 0; r < f.trials; r++)
                NHF_CHECK(!done[r] || matches_a_line(copy, &tf, &f, r, H + r * nv, I + r * nv),
                          "trial %zu is flagged done but its values match no complete signed line for it", r);
    }
    free(body); free(text); free(copy); free(H); free(I); free(row); free(done);
    return 0;
}
