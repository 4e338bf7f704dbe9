/* ntkhess/net.h -- the network: parameters, parametrizations, forward pass (libntkhess).
 * Conventions: see ntkhess.h and docs/conventions.md. */
#ifndef NTKHESS_NET_H
#define NTKHESS_NET_H

#include "ntkhess/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------- network */

/* NTK (default): layer l is W_l a / sqrt(n_l) + beta b_l, output scale 1.
 * MF: the same layers, output scaled by 1/sqrt(n_{L-1}).
 * STANDARD: layer l is W_l a + b_l with the stored arrays as they are
 * (PyTorch nn.Linear semantics), no width scaling, beta ignored, output
 * scale 1.  Same function as NTK when W_std = W_ntk / sqrt(n_l) and
 * b_std = beta b_ntk; see docs/conventions.md, "Parametrizations". */
typedef enum nh_param { NH_PARAM_NTK = 0, NH_PARAM_MF, NH_PARAM_STANDARD } nh_param;

typedef struct nh_net nh_net; /* opaque */

typedef struct nh_net_config {
    size_t        depth;   /* L >= 1                                   */
    const size_t *widths;  /* L + 1 entries n_0..n_L, each >= 1        */
    nh_act        act;     /* every hidden layer's activation when acts is NULL */
    double        beta;    /* bias scale, default 0.1 (ignored by STANDARD) */
    nh_param      param;   /* NH_PARAM_NTK (default), NH_PARAM_MF or NH_PARAM_STANDARD */
    /* Optional per-layer activations: L-1 entries, entry i applied to the
     * output of layer i (the pre-activation a~(i+1)).  NULL: act everywhere. */
    const nh_act        *acts;
    /* Optional activation parameters, L-1 entries (softplus beta, leaky_relu
     * slope; ignored by activations without one; NaN = the default).  NULL:
     * every layer's default parameter (nh_act_default_param). */
    const double        *act_params;
    /* Optional bias flags, L entries: 0 = layer l has no b_l, which then is
     * absent from theta (P shrinks).  NULL: every layer has a bias. */
    const unsigned char *bias;
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
/* PyTorch's default nn.Linear init: every entry of W_l and b_l iid
 * U[-1/sqrt(n_l), 1/sqrt(n_l)) (kaiming_uniform with a = sqrt(5) gives this
 * bound), drawn in theta order as (2u - 1)/sqrt(n_l), u = nh_rng_uniform from
 * the documented generator: seed -> the same theta on every IEEE-754
 * machine.  The init of `ntkhess init --param standard`.  The draws differ
 * from torch's own generator; only the distribution is PyTorch's. */
NH_API void nh_net_init_uniform_fanin(nh_net *net, uint64_t seed);

NH_API size_t        nh_net_depth(const nh_net *net);
NH_API const size_t *nh_net_widths(const nh_net *net); /* L+1 entries */
NH_API size_t        nh_net_nparams(const nh_net *net); /* P */
/* The config's act when all hidden layers share one activation, else the
 * first hidden layer's (see nh_net_act_at). */
NH_API nh_act        nh_net_act(const nh_net *net);
/* Activation and its parameter after layer i (0 <= i < L-1): applied to
 * a~(i+1).  The parameter is NaN for activations without one. */
NH_API nh_act        nh_net_act_at(const nh_net *net, size_t i);
NH_API double        nh_net_act_param_at(const nh_net *net, size_t i);
/* 1 if every hidden layer uses nh_net_act(net) with its default parameter
 * and every layer has a bias: the networks the infinite-width theory
 * (kernels, predictions) describes, together with NH_PARAM_NTK. */
NH_API int           nh_net_is_plain(const nh_net *net);
NH_API double        nh_net_beta(const nh_net *net);
NH_API nh_param      nh_net_param(const nh_net *net);
/* Offsets of W_l and b_l inside theta (l < L; P for l >= L).  Order: for
 * l = 0..L-1, W_l (row-major n_{l+1} x n_l) then b_l if the layer has one:
 * torch.cat([p.flatten() for p in model.parameters()]).  nh_net_offset_b is
 * (size_t)-1 for a layer without bias. */
NH_API size_t nh_net_offset_W(const nh_net *net, size_t l);
NH_API size_t nh_net_offset_b(const nh_net *net, size_t l);
NH_API int    nh_net_has_bias(const nh_net *net, size_t l); /* 0 for l >= L */
/* Named tensors (blocks of theta), as the model files name them: for
 * l = 0..L-1, "W<l>" (n_{l+1} x n_l) then "b<l>" if layer l has a bias, in
 * theta order; t indexes them (0 .. nh_net_ntensors - 1).  nh_net_tensor
 * gives its name (static storage until the network is freed; may be NULL),
 * offset in theta and length (either may be NULL); NH_EINVAL for t out of
 * range.  nh_net_find_tensor: NH_EINVAL naming the valid names when there
 * is no tensor of that name. */
NH_API size_t    nh_net_ntensors(const nh_net *net);
NH_API nh_status nh_net_tensor(const nh_net *net, size_t t, const char **name, size_t *offset, size_t *len);
NH_API nh_status nh_net_find_tensor(const nh_net *net, const char *name, size_t *t);
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
