/*
 * ntkhess.h -- the public API of libntkhess.
 *
 * The Hessian of the loss of a fully connected network in the NTK
 * parametrization (Jacot, Gabriel, Hongler, "The asymptotic spectrum of the
 * Hessian of DNN throughout training"), measured exactly and matrix-free at
 * finite width.
 *
 * Conventions (docs/conventions.md says it once, in full):
 *  - All dense arrays are row-major, double precision, caller-owned.
 *  - Network: widths n_0..n_L, depth L = number of weight layers.
 *      a~(l+1) = W_l a(l) / sqrt(n_l) + beta b_l,  a(l+1) = sigma(a~(l+1)),
 *      f = out_scale * a~(L), out_scale = 1 (NTK) or 1/sqrt(n_{L-1}) (mean field).
 *  - Parameter vector theta (length P = sum_l (n_l + 1) n_{l+1}):
 *      for l = 0..L-1: W_l (n_{l+1} x n_l, row-major), then b_l (n_{l+1}).
 *  - Outputs Y: N x n_L, sample-major, flat index i*n_L + k.  The NTK Gram
 *    matrix is (N n_L) x (N n_L) with the same index on rows and columns.
 *  - Loss C(Y) = (1/N) sum_i c_i(Y_i).  Time t = k * eta after k gradient
 *    steps of learning rate eta on C (gradient-flow time of C itself).
 *  - Targets: MSE and BCE take N x n_L doubles (BCE labels in {-1,+1});
 *    softmax CE takes N class indices stored as doubles (0..n_L-1).
 *
 * Errors: every function that can fail returns nh_status (NH_OK == 0) and
 * leaves a one-line detail for nh_last_error() (thread-local).  The library
 * never prints, exits or aborts.
 *
 * Threads: a handle may be used by one thread at a time; distinct handles are
 * independent.  BLAS and OpenMP thread counts follow OMP_NUM_THREADS /
 * OPENBLAS_NUM_THREADS unless nh_set_threads() is called.
 */
#ifndef NTKHESS_H
#define NTKHESS_H

/* Per-module headers; a program may include only the ones it uses.
 *   libntkhess     (numerics): core.h net.h curv.h est.h theory.h
 *   libntkhess-io  (files)   : io.h
 *   libntkhess-plot (PLplot) : plot.h */
#include "ntkhess/core.h"
#include "ntkhess/net.h"
#include "ntkhess/curv.h"
#include "ntkhess/est.h"
#include "ntkhess/sharp.h"
#include "ntkhess/theory.h"
#include "ntkhess/io.h"
#include "ntkhess/plot.h"

#endif /* NTKHESS_H */
