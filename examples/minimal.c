/* minimal.c -- ntkhess from C using only the public header and only the
 * core library (libntkhess: no file formats, no plots).
 * Build against an installed copy (make install PREFIX=DIR; set
 * PKG_CONFIG_PATH=DIR/lib/pkgconfig and LD_LIBRARY_PATH=DIR/lib when DIR is
 * not a system prefix), from this folder:
 *   cc minimal.c $(pkg-config --cflags --libs ntkhess) -lm -o minimal
 * (-lm for this program's own pow and sqrt).  After a staged install
 * (make install DESTDIR=STAGE PREFIX=/usr), the same line with
 *   PKG_CONFIG_PATH=STAGE/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=STAGE
 * in the environment.  From the repository root, without installing:
 *   cc -Iinclude examples/minimal.c -Lbuild -lntkhess -Wl,-rpath,'$ORIGIN/build' -lm -o minimal
 * A 3-layer softplus network on 32 points of the built-in sphere data:
 * loss, exact H v against I v + S v, Tr(I) from the NTK, and the top
 * eigenvalue of H by Lanczos. */
#include <ntkhess.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(x) do { nh_status s_ = (x); if (s_ != NH_OK) { \
    fprintf(stderr, "%s: %s\n", nh_strerror(s_), nh_last_error()); return 1; } } while (0)

int main(void) {
    size_t w[] = {10, 64, 64, 1}, N = 32;
    nh_net_config cfg = nh_net_config_default();
    cfg.depth = 3; cfg.widths = w; cfg.act = NH_ACT_SOFTPLUS;
    nh_net *net; nh_curv *c;
    CHECK(nh_net_create(&cfg, &net));
    nh_net_init_normal(net, 42);
    double *X = malloc(N * 10 * sizeof *X), *T = malloc(N * sizeof *T);
    CHECK(nh_data_synth(NH_DATA_SPHERE, N, 10, NH_LOSS_MSE, 0, 1, X, T));
    CHECK(nh_curv_create(net, X, T, N, NH_LOSS_MSE, &c));
    size_t P = nh_net_nparams(net);
    double *v = malloc(P * sizeof *v), *hv = malloc(P * sizeof *hv), *iv = malloc(P * sizeof *iv),
           *sv = malloc(P * sizeof *sv), *K = malloc(N * N * sizeof *K), *HC = malloc(N * sizeof *HC);
    nh_rng r; nh_rng_seed(&r, 7); nh_rng_fill_normal(&r, P, v);
    CHECK(nh_curv_hvp(c, v, hv));
    CHECK(nh_curv_isvp(c, v, iv, sv));
    double err = 0, nrm = 0;
    for (size_t p = 0; p < P; p++) { err += pow(hv[p] - iv[p] - sv[p], 2); nrm += hv[p] * hv[p]; }
    CHECK(nh_curv_ntk(c, K));
    nh_curv_hloss(c, HC);
    double tr[2];
    CHECK(nh_ntk_trace_powers(N, 1, K, HC, 2, tr));
    double top;
    CHECK(nh_curv_lanczos(c, NH_OP_H, 1, NULL, &top, NULL, NULL, NULL));
    printf("ntkhess %s: P = %zu, loss = %.6f\n", nh_version(), P, nh_curv_loss(c));
    printf("|Hv - (Iv + Sv)| / |Hv| = %.2e\n", sqrt(err / nrm));
    printf("Tr(I) = %.6f, Tr(I^2) = %.6f, top eigenvalue of H = %.6f\n", tr[0], tr[1], top);
    int ok = sqrt(err / nrm) < 1e-12 && top > 0;
    nh_curv_free(c); nh_net_free(net);
    free(X); free(T); free(v); free(hv); free(iv); free(sv); free(K); free(HC);
    return ok ? 0 : 1;
}
