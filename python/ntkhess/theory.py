"""Infinite-width theory: kernels (nh_kernels_pair, nh_kernels_gram) and the
predicted Hessian moments along training (nh_predict_*).

Conventions are those of docs/conventions.md: Gram matrices have entry
``[i, j] = K(x_i, x_j)``; Phi and Lambda are not symmetric; times are the
gradient-flow time ``t = k * eta`` of ``C = (1/N) sum_i c_i``; outputs
``Y`` are ``N x n_L`` (sample-major).
"""
import ctypes

import numpy as np

from . import _arrays as A
from ._lib import NH_EINVAL, NH_ESHAPE, NH_K_COUNT, Grams, NtkhessError, PredictDiag, lib

__all__ = [
    "KERNEL_NAMES", "GRAM_KEYS", "kernel_names", "kernel_opts", "kernels_pair", "kernels_gram",
    "predict_opts", "predict_mse", "predict_mse_expect", "predict_ode", "predict_draw_init",
    "predict_sample", "predict_spectrum_i", "predict_meanfield",
]

#: nh_kernel order: the names nh_kernel_name gives.
KERNEL_NAMES = ("sigma", "sigmadot", "sigmaddot", "theta", "upsilon", "phi", "xi", "lambda")
#: The members of nh_grams, in order (the keys predictions read from a dict).
GRAM_KEYS = ("theta", "lambda", "upsilon", "phi", "xi", "sigma")


def kernel_names():
    """The kernel names as the library spells them (nh_kernel_name, k = 0..7)."""
    L = lib()
    return tuple(L.nh_kernel_name(k).decode() for k in range(NH_K_COUNT))


def kernel_opts(act=None, depth=None, beta=None, nq=None, exact=None):
    """An ``nh_kernel_opts``: the library's defaults (softplus, depth 2,
    beta 0.1, nq 0 = Mehler series engine, exact closed forms on) with the
    given fields replaced."""
    o = lib().nh_kernel_opts_default()
    if act is not None:
        o.act = A.act_id(act)
    if depth is not None:
        if int(depth) < 1:
            raise NtkhessError(NH_EINVAL, "depth must be >= 1, got %r" % (depth,))
        o.depth = int(depth)
    if beta is not None:
        o.beta = float(beta)
    if nq is not None:
        if int(nq) < 0:
            raise NtkhessError(NH_EINVAL, "nq must be >= 0, got %r" % (nq,))
        o.nq = int(nq)
    if exact is not None:
        o.exact = 1 if exact else 0
    return o


def kernels_pair(x, xp, act=None, depth=None, beta=None, nq=None, exact=None, all_layers=False):
    """Every infinite-width kernel of the two inputs ``x`` and ``xp``.

    Parameters
    ----------
    x, xp : array_like, shape (n0,)
        The two inputs.
    act, depth, beta, nq, exact
        As :func:`kernel_opts` (``depth`` = number of weight layers L).
    all_layers : bool
        False: each kernel at depth L; True: at every layer l = 1..L.

    Returns
    -------
    dict
        ``{name: K}`` for the names of :data:`KERNEL_NAMES`; ``K`` is the 2 x 2
        array ``[[K(x,x), K(x,xp)], [K(xp,x), K(xp,xp)]]`` (shape ``(L, 2, 2)``
        with ``all_layers``).  This is the CLI's ``ntkhess kernel`` JSON
        (keys Sigma, SigmaDot, ...) as arrays.
    """
    o = kernel_opts(act, depth, beta, nq, exact)
    x = A.f64("x", x).ravel()
    xp = A.f64("xp", xp).ravel()
    if x.size != xp.size:
        raise NtkhessError(NH_ESHAPE, "x has %d entries but xp has %d" % (x.size, xp.size))
    out = A.empty(o.depth * NH_K_COUNT * 4)
    lib().nh_kernels_pair(ctypes.byref(o), x.size, A.ptr(x), A.ptr(xp), A.ptr(out))
    out = out.reshape(o.depth, NH_K_COUNT, 2, 2)
    if all_layers:
        return {name: out[:, k].copy() for k, name in enumerate(KERNEL_NAMES)}
    return {name: out[-1, k].copy() for k, name in enumerate(KERNEL_NAMES)}


def kernels_gram(X, act=None, depth=None, beta=None, nq=None, exact=None, kernels=None):
    """Gram matrices of the infinite-width kernels at depth L on the rows of X.

    Parameters
    ----------
    X : array_like, shape (N, n0)
    act, depth, beta, nq, exact
        As :func:`kernel_opts`.
    kernels : iterable of str, optional
        Names from :data:`KERNEL_NAMES` to compute (default: all eight).

    Returns
    -------
    dict
        ``{name: K}`` with ``K[i, j] = K(x_i, x_j)``, shape (N, N).  The dict
        can be passed as ``grams`` to the ``predict_*`` functions.
    """
    o = kernel_opts(act, depth, beta, nq, exact)
    X = A.matrix("X", X)
    n, n0 = X.shape
    names = KERNEL_NAMES if kernels is None else tuple(kernels)
    if not names:
        raise NtkhessError(NH_EINVAL, "kernels: ask for at least one kernel")
    mats = {}
    ptrs = (ctypes.c_void_p * NH_K_COUNT)()
    for name in names:
        if name not in KERNEL_NAMES:
            raise NtkhessError(NH_EINVAL, "unknown kernel %r (expected one of %s)"
                               % (name, ", ".join(KERNEL_NAMES)))
        k = KERNEL_NAMES.index(name)
        mats[name] = A.empty(n, n)
        ptrs[k] = A.ptr(mats[name])
    lib().nh_kernels_gram(ctypes.byref(o), n, n0, A.ptr(X), ptrs)
    return {name: mats[name] for name in names}


# ------------------------------------------------------------- predictions

_POPT_FIELDS = ("psd_tol", "rtol", "atol", "h0", "max_steps", "nsamples", "seed", "batch")


def predict_opts(**kw):
    """An ``nh_predict_opts``: the library's defaults (psd_tol 1e-8, rtol
    1e-10, atol 1e-12, h0 0 = automatic, max_steps 1e7, nsamples 1000,
    seed 0, batch 0 = 32) with the given fields replaced."""
    o = lib().nh_predict_opts_default()
    for k, v in kw.items():
        if k not in _POPT_FIELDS:
            raise TypeError("unknown prediction option %r (expected one of %s)"
                            % (k, ", ".join(_POPT_FIELDS)))
        if v is None:
            continue
        if k in ("psd_tol", "rtol", "atol", "h0"):
            setattr(o, k, float(v))
        else:
            if int(v) < 0:
                raise NtkhessError(NH_EINVAL, "%s must be >= 0, got %r" % (k, v))
            setattr(o, k, int(v))
    return o


def _grams(g, need):
    """nh_grams from a dict-like (or attribute) object; returns (struct, arrays)."""
    arrays, n = {}, None
    for key in GRAM_KEYS:
        if hasattr(g, "get"):
            v = g.get(key)
        else:
            v = getattr(g, key, None)
        if v is None:
            if key in need:
                raise NtkhessError(NH_EINVAL, "grams: the %r Gram matrix is required here (needs %s)"
                                   % (key, ", ".join(need)))
            continue
        a = A.matrix("grams[%r]" % key, v)
        if a.shape[0] != a.shape[1] or (n is not None and a.shape[0] != n):
            raise NtkhessError(NH_ESHAPE, "grams[%r]: expected an N x N matrix with N = %s, got %s"
                               % (key, n if n is not None else "its row count", A.shape_str(a.shape)))
        n = a.shape[0]
        arrays[key] = a
    if n is None:
        raise NtkhessError(NH_EINVAL, "grams: no Gram matrix given")
    s = Grams(n, *(A.ptr(arrays.get(key)) for key in GRAM_KEYS))
    return s, arrays


def _diag(d):
    return {f: getattr(d, f) for f, _ in PredictDiag._fields_}


def _moments(m, prefix=""):
    """(nt, 12) buffer laid out as nh_moments[nt] -> dict of (nt, 4) arrays."""
    return {prefix + "tr_i": m[:, 0:4].copy(), prefix + "tr_s": m[:, 4:8].copy(),
            prefix + "tr_h": m[:, 8:12].copy()}


def predict_mse(grams, Ystar, Y0, G0, t, **opts):
    """Corollary 1, one draw, MSE loss (nh_predict_mse).

    Parameters
    ----------
    grams : dict
        Reads ``theta``, ``lambda``, ``upsilon`` (N x N; e.g. from
        :func:`kernels_gram`).
    Ystar, Y0, G0 : array_like, shape (N, nout) (or (N,) for nout = 1)
        Targets, outputs and G = Tr Hess f at t = 0.
    t : float or sequence
        Strictly increasing gradient-flow times (>= 0).
    **opts
        Fields of :func:`predict_opts` (``psd_tol``).

    Returns
    -------
    dict
        ``t``; ``Y``, ``G`` of shape (nt, N, nout); ``tr_i`` (Tr(I^k)),
        ``tr_s`` (Tr S, Tr S^2, 0, 0), ``tr_h`` (Tr(H^k)), each (nt, 4), column
        k-1 for the k-th moment (the CLI's CSV columns tr_I1..tr_H4);
        ``diag`` (dict of nh_predict_diag).
    """
    g, keep = _grams(grams, ("theta", "lambda", "upsilon"))
    n = g.n
    Ystar = A.f64("Ystar", Ystar)
    Ystar = A.matrix("Ystar", Ystar, n, 1 if Ystar.ndim == 1 else None, allow_vector=True)
    nout = Ystar.shape[1]
    Y0 = A.matrix("Y0", Y0, n, nout, allow_vector=True)
    G0 = A.matrix("G0", G0, n, nout, allow_vector=True)
    t = A.times(t)
    o = predict_opts(**opts)
    nt = t.size
    Y, G, m, d = A.empty(nt, n, nout), A.empty(nt, n, nout), A.empty(nt, 12), PredictDiag()
    lib().nh_predict_mse(ctypes.byref(g), nout, A.ptr(Ystar), A.ptr(Y0), A.ptr(G0), nt, A.ptr(t),
                         ctypes.byref(o), A.ptr(Y), A.ptr(G), A.ptr(m), ctypes.byref(d))
    out = {"t": t.copy(), "Y": Y, "G": G}
    out.update(_moments(m))
    out["diag"] = _diag(d)
    return out


def predict_mse_expect(grams, Ystar, t, **opts):
    """Corollary 1 in expectation over the initialization, closed form, MSE
    (nh_predict_mse_expect).  Reads ``theta``, ``lambda``, ``upsilon``,
    ``phi``, ``sigma``.  ``Ystar``: (N, nout).

    Returns ``{"t", "tr_i", "tr_s", "tr_h", "diag"}`` (moments (nt, 4) as in
    :func:`predict_mse`); the CLI's ``predict --expect`` for the MSE.
    """
    g, keep = _grams(grams, ("theta", "lambda", "upsilon", "phi", "sigma"))
    n = g.n
    Ystar = A.f64("Ystar", Ystar)
    Ystar = A.matrix("Ystar", Ystar, n, 1 if Ystar.ndim == 1 else None, allow_vector=True)
    nout = Ystar.shape[1]
    t = A.times(t)
    o = predict_opts(**opts)
    m, d = A.empty(t.size, 12), PredictDiag()
    lib().nh_predict_mse_expect(ctypes.byref(g), nout, A.ptr(Ystar), t.size, A.ptr(t), ctypes.byref(o),
                                A.ptr(m), ctypes.byref(d))
    out = {"t": t.copy()}
    out.update(_moments(m))
    out["diag"] = _diag(d)
    return out


def predict_ode(grams, T, Y0, G0, t, loss="mse", nout=None, **opts):
    """Theorem 1, one draw, any loss: the ODEs dY/dt = -Theta~ grad C(Y),
    dG/dt = -Lambda~ grad C(Y) by Dormand-Prince 5(4) (nh_predict_ode).

    Reads ``theta``, ``lambda``, ``upsilon``.  ``T``: targets ((N, nout) for
    mse/bce with bce labels -1/+1; N class ids for ce).  ``Y0``, ``G0``:
    (N, nout).  ``nout`` defaults to T's columns (mse/bce) or to Y0's columns
    (ce).  Options: ``rtol``, ``atol``, ``h0``, ``max_steps``, ``psd_tol``.
    Returns the same dict as :func:`predict_mse`.
    """
    g, keep = _grams(grams, ("theta", "lambda", "upsilon"))
    n = g.n
    lid = A.loss_id(loss)
    if nout is None and lid == 2:
        y0 = A.f64("Y0", Y0)
        nout = y0.shape[1] if y0.ndim == 2 else None
    T, nout = A.targets(lid, T, n, nout)
    Y0 = A.matrix("Y0", Y0, n, nout, allow_vector=True)
    G0 = A.matrix("G0", G0, n, nout, allow_vector=True)
    t = A.times(t)
    o = predict_opts(**opts)
    nt = t.size
    Y, G, m, d = A.empty(nt, n, nout), A.empty(nt, n, nout), A.empty(nt, 12), PredictDiag()
    lib().nh_predict_ode(ctypes.byref(g), lid, nout, A.ptr(T), A.ptr(Y0), A.ptr(G0), nt, A.ptr(t),
                         ctypes.byref(o), A.ptr(Y), A.ptr(G), A.ptr(m), ctypes.byref(d))
    out = {"t": t.copy(), "Y": Y, "G": G}
    out.update(_moments(m))
    out["diag"] = _diag(d)
    return out


def predict_draw_init(grams, nout, m, **opts):
    """m draws of the initial pair (Y(0), G(0)) from its Gaussian law
    (covariance [[Sigma, Phi^T], [Phi, Xi]]; nh_predict_draw_init).

    Reads ``phi``, ``xi``, ``sigma``.  Options: ``seed``, ``psd_tol``.
    Returns ``(Y0, G0, diag)`` with Y0, G0 of shape (m, N, nout).
    """
    g, keep = _grams(grams, ("phi", "xi", "sigma"))
    nout, m = int(nout), int(m)
    if nout < 1 or m < 1:
        raise NtkhessError(NH_EINVAL, "nout and m must be >= 1, got %d and %d" % (nout, m))
    o = predict_opts(**opts)
    Y0, G0, d = A.empty(m, g.n, nout), A.empty(m, g.n, nout), PredictDiag()
    lib().nh_predict_draw_init(ctypes.byref(g), nout, m, ctypes.byref(o), A.ptr(Y0), A.ptr(G0),
                               ctypes.byref(d))
    return Y0, G0, _diag(d)


def predict_sample(grams, T, t, loss="mse", nout=None, **opts):
    """Expectation over the initialization by sampling (nh_predict_sample):
    ``nsamples`` draws of :func:`predict_draw_init` (``seed``), each propagated
    by the MSE closed form or the ODE, moments averaged.

    Reads all six Gram matrices.  Returns ``{"t", "tr_i", "tr_s", "tr_h",
    "tr_i_se", "tr_s_se", "tr_h_se", "diag"}`` (standard errors of the
    mean); the CLI's ``predict --expect`` for bce/ce.
    """
    g, keep = _grams(grams, GRAM_KEYS)
    lid = A.loss_id(loss)
    T, nout = A.targets(lid, T, g.n, nout)
    t = A.times(t)
    o = predict_opts(**opts)
    mean, se, d = A.empty(t.size, 12), A.empty(t.size, 12), PredictDiag()
    lib().nh_predict_sample(ctypes.byref(g), lid, nout, A.ptr(T), t.size, A.ptr(t), ctypes.byref(o),
                            A.ptr(mean), A.ptr(se), ctypes.byref(d))
    out = {"t": t.copy()}
    out.update(_moments(mean))
    out.update(_moments(se, prefix="se_"))
    for k in ("tr_i", "tr_s", "tr_h"):
        out[k + "_se"] = out.pop("se_" + k)
    out["diag"] = _diag(d)
    return out


def predict_spectrum_i(grams, T, Y=None, loss="mse", nout=None):
    """Limiting spectrum of I at outputs Y (nh_predict_spectrum_i): the
    N nout eigenvalues, ascending, of HC(Y)^{1/2} Theta~ HC(Y)^{1/2}.

    Reads ``theta``.  ``Y``: (N, nout), default zeros (as the CLI's
    ``predict --spectrum`` uses for the MSE and ``--expect``)."""
    g, keep = _grams(grams, ("theta",))
    lid = A.loss_id(loss)
    if nout is None and lid == 2 and Y is not None:
        y = A.f64("Y", Y)
        nout = y.shape[1] if y.ndim == 2 else None
    T, nout = A.targets(lid, T, g.n, nout)
    Y = np.zeros((g.n, nout)) if Y is None else A.matrix("Y", Y, g.n, nout, allow_vector=True)
    eig = A.empty(g.n * nout)
    lib().nh_predict_spectrum_i(ctypes.byref(g), lid, nout, A.ptr(T), A.ptr(Y), A.ptr(eig))
    return eig


def predict_meanfield(grams, T, Y=None, loss="mse", nout=None):
    """Mean-field limit at initialization (nh_predict_meanfield): returns
    ``{"var_tr_h", "lim_tr_h2"}`` (Tr H / sqrt(w) -> N(0, var_tr_h),
    Tr H^2 / w -> lim_tr_h2).  Reads ``xi``, ``upsilon``.  ``Y`` None means
    Y = 0."""
    g, keep = _grams(grams, ("xi", "upsilon"))
    lid = A.loss_id(loss)
    if nout is None and lid == 2 and Y is not None:
        y = A.f64("Y", Y)
        nout = y.shape[1] if y.ndim == 2 else None
    T, nout = A.targets(lid, T, g.n, nout)
    if Y is not None:
        Y = A.matrix("Y", Y, g.n, nout, allow_vector=True)
    v, l2 = ctypes.c_double(), ctypes.c_double()
    lib().nh_predict_meanfield(ctypes.byref(g), lid, nout, A.ptr(T), A.ptr(Y), ctypes.addressof(v),
                               ctypes.addressof(l2))
    return {"var_tr_h": v.value, "lim_tr_h2": l2.value}
