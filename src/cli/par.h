/* par.h -- optional MPI layer of the CLI (the library stays MPI-free).
 *
 * Built with -DNH_USE_MPI (the Makefile does so when it finds OpenMPI, unless
 * MPI=0), these wrap MPI_COMM_WORLD; without it they are the trivial
 * one-process versions (rank 0 of 1), so callers need no #ifdef.
 *
 * Errors: after nh_par_init, a rank that exits without nh_par_finalize (an
 * nh_die anywhere) aborts the whole job (MPI_Abort), so mpirun exits non-zero
 * instead of hanging.  Ranks other than 0 write their stderr to a private
 * file; on an error it is shown only if rank 0 has not aborted the job first
 * (errors that every rank hits give one line, rank 0's).  Only rank 0 prints
 * progress and writes files. */
#ifndef NH_CLI_PAR_H
#define NH_CLI_PAR_H
#include <stddef.h>

void nh_par_init(int *argc, char ***argv);
void nh_par_finalize(void);
int  nh_par_rank(void);
int  nh_par_size(void);
int  nh_par_is_root(void);
/* 1 when this binary was built with MPI. */
int  nh_par_have_mpi(void);
/* Root receives the n doubles of every rank, rank-major, into recv
 * (size * n); recv is ignored on the other ranks.  Deterministic order. */
void nh_par_gather(const double *send, size_t n, double *recv);
/* Elementwise sum over ranks in rank order (a gather then an ordered sum on
 * the root, broadcast back), so the result does not depend on MPI's
 * reduction order: buf (n) in, sum out on every rank. */
void nh_par_sum(double *buf, size_t n);
/* Broadcast n bytes from the root. */
void nh_par_bcast(void *buf, size_t n);
void nh_par_barrier(void);
/* Abort the whole job with exit code code (plain exit without MPI). */
_Noreturn void nh_par_abort(int code);
#endif
