/* main.c -- ntkhess: command dispatch and top-level help. */
#include "cli.h"
#include "par.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

extern const nh_cmd nh_cmd_sharpness, nh_cmd_eos, nh_cmd_catapult; /* cmd_sharp.c, cmd_eos.c */
extern const nh_cmd nh_cmd_meanfield;                              /* cmd_meanfield.c */
extern const nh_cmd nh_cmd_eigenspace;                             /* cmd_eigen.c */
extern const nh_cmd nh_cmd_layers;                                 /* cmd_layers.c */
extern const nh_cmd nh_cmd_widthlaw;                               /* cmd_widthlaw.c */
static const nh_cmd *const nh_cmds[] = {&nh_cmd_data,   &nh_cmd_init,    &nh_cmd_train, &nh_cmd_curvature,
                                        &nh_cmd_kernel, &nh_cmd_gram,    &nh_cmd_predict, &nh_cmd_measure,
                                        &nh_cmd_spectrum, &nh_cmd_eigenspace, &nh_cmd_layers, &nh_cmd_landscape, &nh_cmd_fig1,   &nh_cmd_fig2,
                                        &nh_cmd_fig3,    &nh_cmd_bench,
                                        &nh_cmd_sharpness, &nh_cmd_eos, &nh_cmd_catapult, &nh_cmd_meanfield, &nh_cmd_widthlaw, NULL};

static void usage(FILE *out) {
    fprintf(out,
            "Usage: ntkhess COMMAND [OPTIONS]\n\n"
            "The Hessian of the loss of deep fully connected networks (standard, NTK\n"
            "and mean-field parametrizations):\n"
            "exact finite-width curvature and the infinite-width theory of Jacot,\n"
            "Gabriel & Hongler, \"The asymptotic spectrum of the Hessian of DNN\n"
            "throughout training\".\n\nCommands:\n");
    for (int i = 0; nh_cmds[i]; i++) fprintf(out, "  %-12s %s\n", nh_cmds[i]->name, nh_cmds[i]->summary);
    fprintf(out, "\n'ntkhess COMMAND --help' describes each command and all its options.\n"
                 "  --version    print the version and exit\n"
                 "  --help       print this help and exit\n");
}

int main(int argc, char **argv) {
    /* A file-size limit (ulimit -f) must give a write error and a message,
     * not a silent kill by SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    /* SIGINT, SIGTERM, SIGHUP: forwarded to one waiter thread (out.c). */
    nh_sig_init();
    if (argc < 2) { usage(stderr); return NH_EXIT_USAGE; }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) { printf("ntkhess %s\n", nh_version()); return 0; }
    /* Hidden: whether this binary was built with MPI (docs/mpi.md). */
    if (strcmp(argv[1], "--mpi-info") == 0) { printf("mpi %s\n", nh_par_have_mpi() ? "yes" : "no"); return 0; }
    for (int i = 0; nh_cmds[i]; i++)
        if (strcmp(argv[1], nh_cmds[i]->name) == 0) {
            nh_sig_command(nh_cmds[i]);
            return nh_cmds[i]->run(nh_cmds[i], argc - 2, argv + 2);
        }
    fprintf(stderr, "ntkhess: error: unknown command '%s' (see 'ntkhess --help')\n", argv[1]);
    return NH_EXIT_USAGE;
}
