/* par.c -- optional MPI layer of the CLI: the only file that includes mpi.h.
 * See par.h.  Without NH_USE_MPI every function is the one-process version. */
#include "par.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NH_USE_MPI
#include <limits.h>
#include <mpi.h>
#include <time.h>
#include <unistd.h>

static int par_on, par_rank, par_size = 1, par_done;
static int par_saved_fd = -1; /* the real stderr of a non-root rank */
static FILE *par_capture;     /* where that rank's stderr goes meanwhile */

static void par_pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* Copy what a non-root rank wrote to stderr to the real stderr. */
static void par_release_stderr(int show) {
    if (par_saved_fd < 0) return;
    fflush(stderr);
    if (show && par_capture) {
        char buf[4096];
        size_t n;
        rewind(par_capture);
        while ((n = fread(buf, 1, sizeof buf, par_capture)) > 0)
            if (write(par_saved_fd, buf, n) < 0) break;
    }
    dup2(par_saved_fd, 2);
    close(par_saved_fd);
    par_saved_fd = -1;
    if (par_capture) fclose(par_capture);
    par_capture = NULL;
}

/* Any exit after nh_par_init and before nh_par_finalize: an error (nh_die,
 * a usage error, a non-zero return) aborts the whole job, never a hang. */
static void par_on_exit(int status, void *arg) {
    (void)arg;
    if (!par_on || par_done) return;
    if (status == 0) { nh_par_finalize(); return; }
    if (par_rank != 0) {
        /* If rank 0 hit the same error it aborts the job within this pause
         * and its line is the only one; otherwise show ours. */
        fflush(stderr);
        par_pause_ms(2000);
        par_release_stderr(1);
    }
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
    _exit(status);
}

/* Started by mpirun/mpiexec (OpenMPI, or a PMI launcher such as MPICH's
 * hydra)?  A plain run of an MPI build does not initialize MPI at all: no
 * singleton start-up, no MPI messages, exactly the one-process program. */
static int par_launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

void nh_par_init(int *argc, char ***argv) {
    if (par_on || !par_launched()) return;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "ntkhess: error: MPI_Init failed\n");
        exit(1);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &par_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &par_size);
    par_on = 1;
    on_exit(par_on_exit, NULL);
    if (par_rank != 0) {
        fflush(stderr);
        par_capture = tmpfile();
        par_saved_fd = par_capture ? dup(2) : -1;
        if (par_saved_fd >= 0) dup2(fileno(par_capture), 2);
    }
}

void nh_par_finalize(void) {
    if (!par_on || par_done) return;
    par_done = 1;
    par_release_stderr(0);
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

int nh_par_rank(void) { return par_on ? par_rank : 0; }
int nh_par_size(void) { return par_on ? par_size : 1; }
int nh_par_have_mpi(void) { return 1; }

static int par_count(size_t n) {
    if (n > (size_t)INT_MAX) {
        fprintf(stderr, "ntkhess: error: MPI message of %zu doubles is too large\n", n);
        nh_par_abort(1);
    }
    return (int)n;
}

void nh_par_gather(const double *send, size_t n, double *recv) {
    if (!par_on || par_size == 1) { if (recv != send && n) memcpy(recv, send, n * sizeof *send); return; }
    MPI_Gather(send, par_count(n), MPI_DOUBLE, recv, par_count(n), MPI_DOUBLE, 0, MPI_COMM_WORLD);
}

void nh_par_sum(double *buf, size_t n) {
    if (!par_on || par_size == 1 || !n) return;
    double *all = NULL;
    if (par_rank == 0 && !(all = malloc((size_t)par_size * n * sizeof *all))) {
        fprintf(stderr, "ntkhess: error: out of memory\n");
        nh_par_abort(1);
    }
    nh_par_gather(buf, n, all);
    if (par_rank == 0) {
        for (size_t i = 0; i < n; i++) {
            double s = 0.0;
            for (int r = 0; r < par_size; r++) s += all[(size_t)r * n + i];
            buf[i] = s;
        }
        free(all);
    }
    MPI_Bcast(buf, par_count(n), MPI_DOUBLE, 0, MPI_COMM_WORLD);
}

void nh_par_bcast(void *buf, size_t n) {
    if (!par_on || par_size == 1 || !n) return;
    MPI_Bcast(buf, par_count(n), MPI_BYTE, 0, MPI_COMM_WORLD);
}

void nh_par_barrier(void) {
    if (par_on && par_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

_Noreturn void nh_par_abort(int code) {
    exit(code ? code : 1); /* par_on_exit turns this into MPI_Abort */
}

#else /* one process */

void nh_par_init(int *argc, char ***argv) { (void)argc; (void)argv; }
void nh_par_finalize(void) {}
int nh_par_rank(void) { return 0; }
int nh_par_size(void) { return 1; }
int nh_par_have_mpi(void) { return 0; }
void nh_par_gather(const double *send, size_t n, double *recv) {
    if (recv != send && n) memcpy(recv, send, n * sizeof *send);
}
void nh_par_sum(double *buf, size_t n) { (void)buf; (void)n; }
void nh_par_bcast(void *buf, size_t n) { (void)buf; (void)n; }
void nh_par_barrier(void) {}
_Noreturn void nh_par_abort(int code) { exit(code ? code : 1); }
#endif

int nh_par_is_root(void) { return nh_par_rank() == 0; }
