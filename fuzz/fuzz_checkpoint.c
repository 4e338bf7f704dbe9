/* fuzz_checkpoint -- resumable-run checkpoints (src/cli/ckpt.c): the
 * state.txt parser and model directory behind nh_ckpt_load, the CSV
 * truncation of nh_ckpt_truncate_csv, and a save/load round trip.
 *
 * The checkpoint code lives in the CLI and reports errors through nh_die()
 * -> exit(); ckpt.c and args.c are compiled with fuzz/cli_shim.h, which turns
 * that exit into a longjmp back here (NHF_CLI_CALL), so a refused checkpoint
 * is an ordinary outcome and the process keeps fuzzing.
 *
 * Input: parts separated by "#NHFUZZ#":
 *   L state.txt # config.json # log.csv # W0.npy # b0.npy # ... (up to b3)
 * where L, the first byte, picks the layout (L % 4):
 *   0  everything in CK/            1  everything in CK.new/ (no CK/)
 *   2  everything in CK.old/        3  model in CK/ without state.txt, and
 *                                      everything in CK.new/: must be "no
 *                                      checkpoint" (-1), the main one wins.
 * The signature expected is 5eed5eed (state.txt: "signature 5eed5eed\nstep N\n").
 * Empty parts leave the file out.  Checks: a returned step is -1 (no network)
 * or >= 0 with a finite network; an exit leaves no network; the CSV
 * truncation never exits and only drops lines; a loaded checkpoint saved
 * again with nh_ckpt_save loads back with the same step and parameters. */
#define NHF_WANT_CLI 1
#include "fuzz_common.h"
#include "cli.h"

#define DELIM "#NHFUZZ#"
#define SIG 0x5eed5eedULL
#define NPARTS (3 + 8)

static int run_stub(const nh_cmd *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; return 0; }
static const nh_optspec no_opts[] = {{NULL, NULL, NULL, NULL}};
static const nh_cmd fuzz_cmd = {"train", "fuzz", "", "", no_opts, run_stub};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    nhf_init();
    (void)nh_fuzz_stderr(); /* opened once here, not inside a measured run */
    return 0;
}

static void write_dir(const char *dir, const uint8_t **part, const size_t *plen, size_t np, int with_state) {
    char f[1200];
    nhf_mkdir(dir);
    if (with_state && plen[0] > 1) {
        snprintf(f, sizeof f, "%s/state.txt", dir);
        nhf_write(f, part[0] + 1, plen[0] - 1);
    }
    if (np > 1 && plen[1]) {
        snprintf(f, sizeof f, "%s/config.json", dir);
        nhf_write(f, part[1], plen[1]);
    }
    for (size_t k = 3; k < np; k++) {
        if (!plen[k]) continue;
        snprintf(f, sizeof f, "%s/%c%zu.npy", dir, (k - 3) % 2 ? 'b' : 'W', (k - 3) / 2);
        nhf_write(f, part[k], plen[k]);
    }
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    NHF_SETUP(f != NULL, path);
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    NHF_SETUP(b != NULL, "malloc");
    size_t got;
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) { cap *= 2; b = realloc(b, cap); NHF_SETUP(b != NULL, "realloc"); }
    }
    fclose(f);
    *len = n;
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    const uint8_t *part[NPARTS];
    size_t plen[NPARTS];
    size_t np = nhf_split(data, size, DELIM, part, plen, NPARTS);
    const int layout = plen[0] ? part[0][0] & 3 : 0;

    const char *root = nhf_path("ckpt");
    nhf_rmtree(root);
    nhf_mkdir(root);
    char ck[1100], alt[1200];
    snprintf(ck, sizeof ck, "%s/ck", root);
    if (layout == 0) write_dir(ck, part, plen, np, 1);
    else {
        snprintf(alt, sizeof alt, "%s.%s", ck, layout == 2 ? "old" : "new");
        write_dir(alt, part, plen, np, 1);
        if (layout == 3) write_dir(ck, part, plen, np, 0);
    }

    /* 1. Load. */
    nh_net *net = NULL;
    long long step = -2;
    int rc;
    NHF_CLI_CALL(rc, step = nh_ckpt_load(&fuzz_cmd, ck, SIG, &net));
    if (nhf_debug < 0) nhf_debug = getenv("NH_FUZZ_DEBUG") != NULL;
    if (nhf_debug) dprintf(2, "  nh_ckpt_load: layout %d, %s, step %lld (%s)\n", layout, rc ? "exit" : "returned", step, nh_last_error());
    if (rc == 0) {
        NHF_CHECK(step >= -1, "nh_ckpt_load returned %lld", step);
        NHF_CHECK((step == -1) == (net == NULL), "step %lld with network %p", step, (void *)net);
        if (layout == 3) NHF_CHECK(step == -1, "layout 3 (CK without state) loaded step %lld", step);
        if (net) NHF_CHECK(nhf_touch(nh_net_params_const(net), nh_net_nparams(net)) == 0, "non-finite theta");
    } else {
        NHF_CHECK(net == NULL, "exit(%d) after a network was loaded", rc - 1000);
        step = -1;
    }

    /* 2. CSV truncation (always, with the loaded step or one from the input). */
    char csv[1100];
    snprintf(csv, sizeof csv, "%s/log.csv", root);
    const size_t clen = np > 2 ? plen[2] : 0;
    nhf_write(csv, np > 2 ? part[2] : data, clen);
    const long long keep = step >= 0 ? step : (long long)(clen % 64);
    int rc2;
    NHF_CLI_CALL(rc2, nh_ckpt_truncate_csv(&fuzz_cmd, csv, keep));
    NHF_CHECK(rc2 == 0, "nh_ckpt_truncate_csv exited (%d)", rc2 - 1000);
    size_t olen = 0;
    char *out = slurp(csv, &olen);
    NHF_CHECK(olen <= clen, "truncation grew the CSV from %zu to %zu bytes", clen, olen);
    NHF_CHECK(olen == 0 || out[olen - 1] == '\n', "truncated CSV does not end in a newline");
    free(out);

    /* 3. Save the loaded checkpoint elsewhere and load it back. */
    if (net) {
        char ck2[1100];
        snprintf(ck2, sizeof ck2, "%s/ck2", root);
        int rc3, rc4;
        NHF_CLI_CALL(rc3, nh_ckpt_save(&fuzz_cmd, ck2, SIG, step, net));
        NHF_CHECK(rc3 == 0, "nh_ckpt_save of a loaded checkpoint exited (%d)", rc3 - 1000);
        nh_net *back = NULL;
        long long step2 = -2;
        NHF_CLI_CALL(rc4, step2 = nh_ckpt_load(&fuzz_cmd, ck2, SIG, &back));
        NHF_CHECK(rc4 == 0 && step2 == step && back, "reload: exit %d, step %lld (saved %lld)", rc4, step2, step);
        NHF_CHECK(nh_net_nparams(back) == nh_net_nparams(net) &&
                      memcmp(nh_net_params_const(back), nh_net_params_const(net),
                             nh_net_nparams(net) * sizeof(double)) == 0,
                  "checkpoint round trip changed theta");
        nh_net_free(back);
    }
    nh_net_free(net);
    nhf_rmtree(root);
    return 0;
}
