/* fuzz_checkpoint -- resumable-run checkpoints (src/cli/ckpt.c): the
 * state.txt parser (checksum, identity, ranges) and model directory behind
 * nh_ckpt_load, the log validation of nh_ckpt_log_check, and a save/load
 * round trip through nh_ckpt_save.
 *
 * The checkpoint code lives in the CLI and reports errors through nh_die()
 * -> exit(); ckpt.c and args.c are compiled with fuzz/cli_shim.h, which turns
 * that exit into a longjmp back here (NHF_CLI_CALL), so a refused checkpoint
 * is an ordinary outcome and the process keeps fuzzing.
 *
 * Input: parts separated by "#NHFUZZ#":
 *   L state.txt # config.json # log.csv # W0.npy # b0.npy # ... (up to b3)
 * where L, the first byte, picks the layout (L % 2): 0, everything in CK/;
 * 1, CK/ without state.txt (must be refused: a checkpoint folder without a
 * state is corrupt, never "no checkpoint").  The identity expected is the
 * one line "id.command train" (gen_seeds.py writes states with a correct
 * sum).  Empty parts leave the file out.  Checks: a returned step is -1 (no
 * network) or >= 0 with a finite network and a state whose rows are >= 1; an
 * exit leaves no network; the log check either exits leaving the log as it
 * was, or leaves exactly the checkpoint's rows, a prefix of the log ending
 * in a newline; a loaded checkpoint saved again loads back with the same
 * step, rows and parameters. */
#define NHF_WANT_CLI 1
#include "fuzz_common.h"
#include "cli.h"

#define DELIM "#NHFUZZ#"
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

static size_t count_lines(const char *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += b[i] == '\n';
    return k;
}

/* The log check: an exit leaves the file as it was; a return leaves the
 * checkpoint's rows, a prefix of the file. */
static void check_log(const char *root, const uint8_t *log, size_t clen, const nh_ckpt_state *st) {
    char csv[1100];
    snprintf(csv, sizeof csv, "%s/log.csv", root);
    nhf_write(csv, log, clen);
    int rc;
    NHF_CLI_CALL(rc, nh_ckpt_log_check(&fuzz_cmd, csv, "step,t,loss", st));
    size_t olen = 0;
    char *out = slurp(csv, &olen);
    if (rc) NHF_CHECK(olen == clen && memcmp(out, log, clen) == 0, "a refused log was changed");
    else {
        NHF_CHECK(olen <= clen && memcmp(out, log, olen) == 0, "the kept log is not a prefix");
        NHF_CHECK(olen > 0 && out[olen - 1] == '\n', "the kept log does not end in a newline");
        NHF_CHECK((long long)count_lines(out, olen) == st->rows, "kept %zu lines, checkpoint has %lld",
                  count_lines(out, olen), st->rows);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    const uint8_t *part[NPARTS];
    size_t plen[NPARTS];
    size_t np = nhf_split(data, size, DELIM, part, plen, NPARTS);
    const int layout = plen[0] ? part[0][0] & 1 : 0;
    const char *root = nhf_path("ckpt");
    nhf_rmtree(root);
    nhf_mkdir(root);
    char ck[1100];
    snprintf(ck, sizeof ck, "%s/ck", root);
    write_dir(ck, part, plen, np, layout == 0);
    nh_ckpt_id id;
    memset(&id, 0, sizeof id);
    nh_ckpt_id_add(&id, "command", "train");

    /* 1. Load. */
    nh_net *net = NULL;
    nh_ckpt_state st;
    long long step = -2;
    int rc;
    NHF_CLI_CALL(rc, step = nh_ckpt_load(&fuzz_cmd, ck, &id, NH_MAX_STEPS, &net, &st));
    if (nhf_debug < 0) nhf_debug = getenv("NH_FUZZ_DEBUG") != NULL;
    if (nhf_debug) dprintf(2, "  nh_ckpt_load: layout %d, %s, step %lld\n", layout, rc ? "exit" : "returned", step);
    if (rc == 0) {
        NHF_CHECK(step >= 0 && net != NULL, "returned step %lld with network %p", step, (void *)net);
        NHF_CHECK(layout == 0, "layout 1 (CK without state) loaded step %lld", step);
        NHF_CHECK(st.rows >= 1 && st.step == step, "state rows %lld, step %lld", st.rows, st.step);
        if (net) NHF_CHECK(nhf_touch(nh_net_params_const(net), nh_net_nparams(net)) == 0, "non-finite theta");
    } else {
        NHF_CHECK(net == NULL, "exit(%d) after a network was loaded", rc - 1000);
    }

    /* 2. The log against the loaded state. */
    if (net) check_log(root, np > 2 ? part[2] : data, np > 2 ? plen[2] : 0, &st);

    /* 3. Save the loaded checkpoint elsewhere and load it back. */
    if (net) {
        char ck2[1100];
        snprintf(ck2, sizeof ck2, "%s/ck2", root);
        int rc3, rc4;
        NHF_CLI_CALL(rc3, nh_ckpt_save(&fuzz_cmd, ck2, &id, step, net, st.rows, "0,0,1"));
        NHF_CHECK(rc3 == 0, "nh_ckpt_save of a loaded checkpoint exited (%d)", rc3 - 1000);
        nh_net *back = NULL;
        nh_ckpt_state st2;
        long long step2 = -2;
        NHF_CLI_CALL(rc4, step2 = nh_ckpt_load(&fuzz_cmd, ck2, &id, NH_MAX_STEPS, &back, &st2));
        NHF_CHECK(rc4 == 0 && step2 == step && back && st2.rows == st.rows, "reload: exit %d, step %lld (saved %lld)",
                  rc4, step2, step);
        if (back)
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
