/* mc_sweep.c -- the expensive version of tests/test_theory_mc.c: the same
 * estimators (the test file is #included, without its main) over more
 * widths, draws, depths and activations.  Prints tables; the numbers quoted
 * in docs/theory_validation.md come from here.
 *
 *   build/bench/mc_sweep [kernels] [bias] [rate] [cor1] [xi] [eps]   (default: all)
 *
 * kernels  every kernel vs Monte Carlo, L = 2, 3, 4, five activations:
 *          theory, MC mean, SE, z, and n * (MC - theory) / scale.
 * bias     n * (MC - theory) / scale at small widths with 10^4+ networks:
 *          the O(1/n) finite-width coefficient behind the test's allowance.
 * rate     log-log slope of the RMS per-network deviation vs width.
 * cor1     GD on wide networks vs the per-draw Corollary 1 prediction,
 *          several widths (is the mean deviation O(1/n)?) and two step sizes.
 * xi       depth-4 E[g g'] (plain) at n = 32..256 with 10^4+ networks.
 * eps      the Lambda finite-difference step: eps = 1e-2 .. 1e-5. */
#define MC_NO_MAIN
#include "../tests/test_theory_mc.c"

static int want(int argc, char **argv, const char *s) {
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], s)) return 1;
    return 0;
}

static void print_acc(const mc_cfg *c, const mc_acc *A, double secs) {
    printf("\n## L=%zu n=%zu act=%s beta=%g R=%d (%.1f s)\n", c->L, c->n, nh_act_name(c->act), c->beta, A->R, secs);
    printf("%-18s %12s %12s %10s %7s %14s\n", "quantity", "theory", "MC", "SE", "z", "n*dev/scale");
    double zmax = 0;
    for (int i = 0; i < Q_COUNT; i++) {
        if (A->cnt[i] < 2) continue;
        double m = mc_mean(A, i), se = mc_se(A, i), k = (double)c->n / A->sc[i];
        printf("%-18s %+12.6f %+12.6f %10.2e %+7.2f %+7.3f+-%.3f\n", MC_Q[i].name, A->th[i], A->th[i] + m, se, m / se,
               m * k, se * k);
        if (fabs(m / se) > zmax) zmax = fabs(m / se);
    }
    printf("max |z| = %.2f\n", zmax);
    fflush(stdout);
}

static void sec_kernels(void) {
    printf("\n# kernels: every kernel vs Monte Carlo over networks\n");
    const nh_act acts[5] = {NH_ACT_SOFTPLUS, NH_ACT_NSOFTPLUS, NH_ACT_TANH, NH_ACT_ARCTAN, NH_ACT_ERF};
    const struct { size_t L, n; int R; } g[3] = {{2, 2000, 2000}, {3, 1000, 500}, {4, 256, 300}};
    mc_acc *A = mc_alloc(sizeof *A);
    for (int k = 0; k < 3; k++)
        for (int a = 0; a < 5; a++) {
            mc_cfg c = {g[k].L, g[k].n, acts[a], 0.1};
            double t0 = mc_now();
            mc_run(&c, MC_X2, MC_N0, g[k].R, 3000000u + 10000u * (uint64_t)(k * 5 + a), 2, M_ALL, A);
            print_acc(&c, A, mc_now() - t0);
        }
    free(A);
}

static void sec_bias(void) {
    printf("\n# bias: n * (E[estimator] - theory) / scale at small widths\n");
    const nh_act acts[3] = {NH_ACT_SOFTPLUS, NH_ACT_NSOFTPLUS, NH_ACT_ARCTAN};
    const struct { size_t L, n; int R; } g[6] = {{3, 32, 40000}, {3, 64, 20000}, {3, 128, 10000},
                                                   {4, 32, 40000}, {4, 64, 20000}, {4, 128, 8000}};
    mc_acc *A = mc_alloc(sizeof *A);
    printf("%-3s %-5s %-10s %-18s %10s %10s\n", "L", "n", "act", "quantity", "n*dev/sc", "n*SE/sc");
    for (int k = 0; k < 6; k++)
        for (int a = 0; a < 3; a++) {
            mc_cfg c = {g[k].L, g[k].n, acts[a], 0.1};
            double t0 = mc_now();
            mc_run(&c, MC_X2, MC_N0, g[k].R, 5000000u + 100000u * (uint64_t)(k * 3 + a), 1, M_ALL, A);
            double worst = 0, worst_lo = 0;
            int iw = 0;
            for (int i = 0; i < Q_COUNT; i++) {
                if (A->cnt[i] < 2) continue;
                double kk = (double)c.n / A->sc[i], m = mc_mean(A, i) * kk, se = mc_se(A, i) * kk;
                printf("%-3zu %-5zu %-10s %-18s %+10.3f %10.3f\n", c.L, c.n, nh_act_name(c.act), MC_Q[i].name, m, se);
                /* |coefficient| bounded below at 2 SE: what the data prove */
                if (fabs(m) > worst) { worst = fabs(m); iw = i; worst_lo = fabs(m) - 2 * se; }
            }
            printf("SUMMARY L=%zu n=%zu %s R=%d: max |n dev/scale| = %.3f (%s; >= %.3f at 2 SE)  %.1f s\n", c.L,
                   c.n, nh_act_name(c.act), A->R, worst, MC_Q[iw].name, worst_lo, mc_now() - t0);
            fflush(stdout);
        }
    free(A);
}

static void rate_one(mc_cfg c, int nw, const size_t *w, const int *R, uint64_t seed, int nprobe, int flags) {
    double s[F_COUNT], se[F_COUNT], lr[F_COUNT * 16];
    double t0 = mc_now();
    mc_rate(c, nw, w, R, seed, nprobe, flags, s, se, lr);
    printf("\n## rate L=%zu %s widths", c.L, nh_act_name(c.act));
    for (int i = 0; i < nw; i++) printf(" %zu(R=%d)", w[i], R[i]);
    printf("  (%.1f s)\n", mc_now() - t0);
    printf("%-14s", "family");
    for (int i = 0; i < nw; i++) printf(" %11s", "RMS");
    printf(" %8s %6s %6s\n", "slope", "SE", "z(-.5)");
    for (int f = 0; f < F_COUNT; f++) {
        if (!isfinite(s[f])) continue;
        printf("%-14s", MC_FAM[f]);
        for (int i = 0; i < nw; i++) printf(" %11.4e", exp(lr[f * nw + i]));
        printf(" %+8.3f %6.3f %+6.2f\n", s[f], se[f], (s[f] + 0.5) / se[f]);
    }
    fflush(stdout);
}

static void sec_rate(void) {
    printf("\n# rate: RMS over draws of (per-network kernel - theory), pooled per family\n");
    printf("# (pooled: D^2 = sum over the family's entries of ((K_hat - K)/scale)^2)\n");
    {
        const size_t w[4] = {250, 1000, 4000, 16000};
        const int R[4] = {400, 400, 400, 200};
        rate_one((mc_cfg){2, 0, NH_ACT_SOFTPLUS, 0.1}, 4, w, R, 7000000, 2, M_ALL);
        rate_one((mc_cfg){2, 0, NH_ACT_TANH, 0.1}, 4, w, R, 7100000, 2, M_ALL);
    }
    {
        const size_t w[3] = {250, 1000, 4000};
        const int R[3] = {200, 60, 16};
        rate_one((mc_cfg){3, 0, NH_ACT_SOFTPLUS, 0.1}, 3, w, R, 7200000, 2, M_ALL);
        rate_one((mc_cfg){3, 0, NH_ACT_NSOFTPLUS, 0.1}, 3, w, R, 7300000, 2, M_ALL);
    }
    {
        const size_t w[4] = {64, 128, 256, 512};
        const int R[4] = {800, 400, 160, 40};
        rate_one((mc_cfg){4, 0, NH_ACT_NSOFTPLUS, 0.1}, 4, w, R, 7400000, 2, M_ALL);
    }
}

static void sec_cor1(void) {
    printf("\n# cor1: GD vs per-draw nh_predict_mse (L=3, N=8 sphere points, MSE)\n");
    const size_t N = 8, n0 = 4;
    double X[8 * 4], Ys[8];
    mc_ok(nh_data_synth(NH_DATA_SPHERE, N, n0, NH_LOSS_MSE, 0, 5, X, Ys), "nh_data_synth");
    const double ts[4] = {0, 1, 3, 6};
    const struct { size_t n; int R; double eta; nh_act act; } g[] = {
        {200, 160, 0.02, NH_ACT_NSOFTPLUS}, {400, 80, 0.02, NH_ACT_NSOFTPLUS}, {800, 40, 0.02, NH_ACT_NSOFTPLUS},
        {1600, 16, 0.02, NH_ACT_NSOFTPLUS}, {400, 40, 0.005, NH_ACT_NSOFTPLUS}, {400, 80, 0.02, NH_ACT_SOFTPLUS},
    };
    mc_cor1 *C = mc_alloc(sizeof *C);
    for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
        mc_cfg c = {3, g[k].n, g[k].act, 0.1};
        mc_grams GR;
        mc_grams_make(&c, N, n0, X, &GR);
        double t0 = mc_now();
        mc_cor1_run(&c, N, n0, X, Ys, &GR, 4, ts, g[k].eta, g[k].R, 9000000u + 1000u * k, 2, C);
        printf("\n## cor1 L=3 n=%zu %s eta=%g R=%d (%.1f s)\n", c.n, nh_act_name(c.act), g[k].eta, g[k].R,
               mc_now() - t0);
        printf("%-5s %-7s %11s %11s %9s %7s %9s %10s %11s\n", "t", "qty", "mean|pred|", "meas-pred", "SE", "z",
               "disc", "n*dev/sc", "RMS(dev)");
        for (int j = 0; j < 4; j++)
            for (int qq = 0; qq < C_COUNT; qq++) {
                double m, se, disc, scale;
                mc_cor1_stats(C, j, qq, &m, &se, &disc, &scale);
                if (j == 0 && (qq == C_TRS || qq == C_Y || qq == C_G)) continue;
                double rms = sqrt(C->s2[j][qq] / C->R);
                printf("%-5g %-7s %+11.5f %+11.3e %9.2e %+7.2f %+9.1e %+10.3f %11.3e\n", ts[j], MC_CQ[qq], scale, m,
                       se, m / se, disc, m * (double)c.n / scale, rms);
            }
        fflush(stdout);
        mc_grams_free(&GR);
    }
    free(C);
}

/* Xi at depth 4 (the largest bias coefficient in "bias"): plain E[g g'] with
 * many networks at growing width, to tell an O(1/n) bias (n * dev constant)
 * from a genuine discrepancy (n * dev growing like n). */
static void sec_xi(void) {
    printf("\n# xi: depth-4 E[g g'] and E[f f'], E[g f'] at growing width (f, g and Theta only)\n");
    const struct { size_t n; int R; } g[4] = {{32, 80000}, {64, 40000}, {128, 20000}, {256, 8000}};
    mc_acc *A = mc_alloc(sizeof *A);
    for (int k = 0; k < 4; k++) {
        mc_cfg c = {4, g[k].n, NH_ACT_NSOFTPLUS, 0.1};
        double t0 = mc_now();
        mc_run(&c, MC_X2, MC_N0, g[k].R, 8000000u + 1000000u * (uint64_t)k, 0, 0, A);
        print_acc(&c, A, mc_now() - t0);
    }
    free(A);
}

/* Lambda's finite-difference step: the per-network Lambda at three eps. */
static void sec_eps(void) {
    printf("\n# eps: Lambda by central differences of g, four steps (one network each)\n");
    const mc_cfg cs[3] = {{2, 1000, NH_ACT_SOFTPLUS, 0.1}, {3, 500, NH_ACT_NSOFTPLUS, 0.1}, {4, 200, NH_ACT_TANH, 0.1}};
    for (int k = 0; k < 3; k++) {
        nh_net *net = mc_net(&cs[k], MC_N0, 42);
        const size_t P = nh_net_nparams(net);
        double *th = nh_net_params(net), *save = mc_alloc(P * 8), *u = mc_alloc(P * 8);
        memcpy(save, th, P * 8);
        const double T0[2] = {0, 0}, e1[2] = {0, 1};
        nh_curv *cv = NULL;
        mc_ok(nh_curv_create(net, MC_X2, T0, 2, NH_LOSS_MSE, &cv), "create");
        nh_curv_vjp(cv, e1, u);
        printf("L=%zu n=%zu %s: Lambda(x,x') at eps", cs[k].L, cs[k].n, nh_act_name(cs[k].act));
        const double eps[4] = {1e-2, 1e-3, 1e-4, 1e-5};
        for (int i = 0; i < 4; i++) {
            double Gp[2], Gm[2];
            for (size_t p = 0; p < P; p++) th[p] = save[p] + eps[i] * u[p];
            nh_curv_refresh(cv); nh_curv_G(cv, Gp);
            for (size_t p = 0; p < P; p++) th[p] = save[p] - eps[i] * u[p];
            nh_curv_refresh(cv); nh_curv_G(cv, Gm);
            printf("  %g: %.12f", eps[i], (Gp[0] - Gm[0]) / (2 * eps[i]));
        }
        printf("\n");
        memcpy(th, save, P * 8);
        nh_curv_free(cv); nh_net_free(net); free(save); free(u);
    }
}

int main(int argc, char **argv) {
    double t0 = mc_now();
    printf("mc_sweep: inputs x = (1.2,-0.5,0.8,1.0), x' = (0.3,1.1,-0.9,1.3), beta = 0.1\n");
    if (want(argc, argv, "eps")) sec_eps();
    if (want(argc, argv, "xi")) sec_xi();
    if (want(argc, argv, "kernels")) sec_kernels();
    if (want(argc, argv, "bias")) sec_bias();
    if (want(argc, argv, "rate")) sec_rate();
    if (want(argc, argv, "cor1")) sec_cor1();
    printf("\nmc_sweep: %.1f s\n", mc_now() - t0);
    return 0;
}
