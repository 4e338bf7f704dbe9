/* fuzz_model_dir -- model directory reader (src/io/model.c: config.json via
 * cJSON, then W{l}.npy / b{l}.npy via nh_npy_read).
 *
 * Input: parts separated by the 8 bytes "#NHFUZZ#":
 *   config.json # W0.npy # b0.npy # W1.npy # b1.npy # ... (up to W3, b3)
 * An empty part leaves that file out.  Every iteration writes the parts into
 * a fresh directory, runs nh_model_load, and removes the directory.  On
 * success the network must be consistent (depth <= 4, P = sum (n_l+1) n_{l+1},
 * finite theta) and survive nh_model_save + nh_model_load unchanged (widths,
 * act, beta, param, theta bit for bit). */
#include "fuzz_common.h"

#include <math.h>

#define DELIM "#NHFUZZ#"
#define MAX_ARRAYS 8

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    nhf_init();
    return 0;
}

static void same_net(const nh_net *a, const nh_net *b) {
    NHF_CHECK(nh_net_depth(a) == nh_net_depth(b), "round trip changed the depth");
    NHF_CHECK(memcmp(nh_net_widths(a), nh_net_widths(b), (nh_net_depth(a) + 1) * sizeof(size_t)) == 0,
              "round trip changed the widths");
    NHF_CHECK(nh_net_act(a) == nh_net_act(b) && nh_net_param(a) == nh_net_param(b),
              "round trip changed act or param");
    double ba = nh_net_beta(a), bb = nh_net_beta(b);
    NHF_CHECK(memcmp(&ba, &bb, sizeof ba) == 0, "round trip changed beta: %.17g -> %.17g", ba, bb);
    NHF_CHECK(nh_net_nparams(a) == nh_net_nparams(b) &&
                  memcmp(nh_net_params_const(a), nh_net_params_const(b), nh_net_nparams(a) * sizeof(double)) == 0,
              "round trip changed theta");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    const uint8_t *part[1 + MAX_ARRAYS];
    size_t plen[1 + MAX_ARRAYS];
    size_t np = nhf_split(data, size, DELIM, part, plen, 1 + MAX_ARRAYS);

    const char *dir = nhf_path("model");
    nhf_rmtree(dir);
    nhf_mkdir(dir);
    char file[1100];
    snprintf(file, sizeof file, "%s/config.json", dir);
    nhf_write(file, part[0], plen[0]);
    for (size_t k = 1; k < np; k++) {
        if (!plen[k]) continue;
        snprintf(file, sizeof file, "%s/%c%zu.npy", dir, k % 2 ? 'W' : 'b', (k - 1) / 2);
        nhf_write(file, part[k], plen[k]);
    }

    nh_net *net = (nh_net *)(uintptr_t)1;
    nh_status st = nh_model_load(dir, &net);
    nhf_note("nh_model_load", st);
    if (st != NH_OK) {
        NHF_CHECK(net == NULL, "load failed (%s) but *out was set", nh_strerror(st));
        NHF_CHECK(nh_last_error()[0], "load failed (%s) without a message", nh_strerror(st));
    } else {
        NHF_CHECK(net != NULL, "load OK with a NULL network");
        const size_t L = nh_net_depth(net), *w = nh_net_widths(net);
        NHF_CHECK(L >= 1 && L <= MAX_ARRAYS / 2, "depth %zu from %zu files", L, np - 1);
        size_t P = 0;
        for (size_t l = 0; l < L; l++) P += (w[l] + 1) * w[l + 1];
        NHF_CHECK(P == nh_net_nparams(net), "P = %zu, widths give %zu", nh_net_nparams(net), P);
        NHF_CHECK(nhf_touch(nh_net_params_const(net), P) == 0, "loaded a non-finite parameter");
        NHF_CHECK(isfinite(nh_net_beta(net)), "loaded a non-finite beta");

        const char *rt = nhf_path("model_rt");
        nhf_rmtree(rt);
        nh_status ss = nh_model_save(rt, net);
        NHF_CHECK(ss == NH_OK, "saving a loaded model failed: %s", nh_strerror(ss));
        nh_net *back = NULL;
        nh_status sl = nh_model_load(rt, &back);
        NHF_CHECK(sl == NH_OK, "reloading a saved model failed: %s", nh_strerror(sl));
        same_net(net, back);
        nh_net_free(back);
        nhf_rmtree(rt);
        nh_net_free(net);
    }
    nhf_rmtree(dir);
    return 0;
}
