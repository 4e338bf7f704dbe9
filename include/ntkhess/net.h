/* ntkhess/net.h -- the network: parameters, parametrizations, forward pass (libntkhess).
 * Conventions: see ntkhess.h and docs/conventions.md. */
#ifndef NTKHESS_NET_H
#define NTKHESS_NET_H

#include "ntkhess/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------- network */

typedef enum nh_param { NH_PARAM_NTK = 0, NH_PARAM_MF } nh_param;

typedef struct nh_net nh_net; /* opaque */

typedef struct nh_net_config {
    size_t        depth;   /* L >= 1                                   */
    const size_t *widths;  /* L + 1 entries n_0..n_L, each >= 1        */
    nh_act        act;
    double        beta;    /* bias scale, default 0.1                  */
    nh_param      param;   /* NH_PARAM_NTK (default) or NH_PARAM_MF    */
} nh_net_config;

NH_API nh_net_config nh_net_config_default(void);

/* Create a network with all parameters zero.  Checks that P and the
 * per-sample work fit the memory limit before allocating (NH_ETOOLARGE). */
NH_API nh_status nh_net_create(const nh_net_config *cfg, nh_net **out);
NH_API void      nh_net_free(nh_net *net); /* NULL-safe */
NH_API nh_status nh_net_clone(const nh_net *net, nh_net **out);

/* Draw all parameters iid N(0,1) from the documented generator
 * (nh_rng_*): seed -> the same theta on every IEEE-754 machine. */
NH_API void nh_net_init_normal(nh_net *net, uint64_t seed);

NH_API size_t        nh_net_depth(const nh_net *net);
NH_API const size_t *nh_net_widths(const nh_net *net); /* L+1 entries */
NH_API size_t        nh_net_nparams(const nh_net *net); /* P */
NH_API nh_act        nh_net_act(const nh_net *net);
NH_API double        nh_net_beta(const nh_net *net);
NH_API nh_param      nh_net_param(const nh_net *net);
/* Offsets of W_l and b_l inside theta. */
NH_API size_t nh_net_offset_W(const nh_net *net, size_t l);
NH_API size_t nh_net_offset_b(const nh_net *net, size_t l);
/* Borrowed pointer to theta[P]; writes through it change the network. */
NH_API double       *nh_net_params(nh_net *net);
NH_API const double *nh_net_params_const(const nh_net *net);
/* Copy theta in; NH_ENONFINITE if any entry is NaN/Inf. */
NH_API nh_status nh_net_set_params(nh_net *net, const double *theta);

/* Y[n x n_L] = f(X[n x n_0]).  Allocates its own scratch. */
NH_API nh_status nh_net_forward(const nh_net *net, const double *X, size_t n,
                                double *Y);

#ifdef __cplusplus
}
#endif
#endif /* NTKHESS_NET_H */
