/* net_impl.h -- the network struct, shared by net.c and curv.c only. */
#ifndef NH_NET_IMPL_H
#define NH_NET_IMPL_H
#include "core/internal.h"

struct nh_net {
    size_t   L;       /* depth                                  */
    size_t  *w;       /* widths n_0..n_L                        */
    nh_act   act;
    double   beta;
    nh_param param;
    size_t   P;
    size_t  *offW, *offb; /* offsets of W_l, b_l in theta       */
    double  *theta;
};

/* 1 (NTK) or 1/sqrt(n_{L-1}) (mean field). */
double nh__net_out_scale(const nh_net *net);
/* Z[n x n_{l+1}] = A W_l^T / sqrt(n_l) + beta b_l. */
void nh__layer_affine(const nh_net *net, size_t l, size_t n, const double *A, double *Z);
#endif
