/* net_impl.h -- the network struct, shared by net.c and curv*.c only. */
#ifndef NH_NET_IMPL_H
#define NH_NET_IMPL_H
#include "core/internal.h"

struct nh_net {
    size_t   L;       /* depth                                  */
    size_t  *w;       /* widths n_0..n_L                        */
    nh_act   act;     /* the config's act (nh_net_act)          */
    nh_act  *acts;    /* L-1 (>= 1 allocated): after layer i    */
    double  *actp;    /* their parameters (NaN: none)           */
    unsigned char *bias; /* L flags: layer l has b_l            */
    double   beta;
    nh_param param;
    size_t   P;
    size_t  *offW, *offb; /* offsets of W_l, b_l in theta ((size_t)-1: no b_l) */
    double  *theta;
    char   (*tname)[24]; /* tensor names W<l>, b<l>, in theta order (nh_net_tensor) */
    size_t   ntens;
};

/* The scalings of every layer, in one place: layer l computes
 * wscale_l W_l a + bscale_l b_l and f = out_scale a~(L). */
/* 1/sqrt(n_l) (NTK, MF) or 1 (standard). */
double nh__net_wscale(const nh_net *net, size_t l);
/* wscale_l^2 = 1/n_l (NTK, MF; computed as such, not as a square) or 1. */
double nh__net_wscale2(const nh_net *net, size_t l);
/* beta (NTK, MF) or 1 (standard); 0 for a layer without bias, so that
 * kernel sums (bscale_l^2 terms) need no special case. */
double nh__net_bscale(const nh_net *net, size_t l);
/* 1 (NTK, standard) or 1/sqrt(n_{L-1}) (mean field). */
double nh__net_out_scale(const nh_net *net);
/* sigma and derivatives 1..3 of the activation after layer l (l + 1 < L). */
void nh__net_act_eval(const nh_net *net, size_t l, size_t n, const double *x, double *d0, double *d1, double *d2,
                      double *d3);
/* Z[n x n_{l+1}] = wscale_l A W_l^T + bscale_l b_l. */
void nh__layer_affine(const nh_net *net, size_t l, size_t n, const double *A, double *Z);
#endif
