"""Small library utilities: version, threads, memory limit, activations,
losses, symmetric eigensolvers, synthetic data, Gauss-Hermite rules and the
seeded generator."""
import ctypes
from collections.abc import Sequence

import numpy as np

from . import _arrays as A
from ._lib import DATASETS, NH_EINVAL, NtkhessError, Rng, lib

__all__ = [
    "library_version", "library_path", "set_threads", "set_mem_limit", "get_mem_limit", "act_eval",
    "loss_eval", "check_targets", "eigvalsh", "eigh", "data_synth", "gauss_hermite", "rng_normal",
    "ACTIVATIONS", "LOSSES",
]

class _TableNames(Sequence):
    """The names of one of the library's tables (nh_act_name or nh_loss_name
    for 0 .. count - 1), read from the library on first use: the tables are
    declared once, in src/core/act.c and src/core/loss.c, never copied here."""

    def __init__(self, count, name):
        self._count, self._name, self._names = count, name, None

    def _load(self):
        if self._names is None:
            L = lib()
            count = getattr(L, self._count, None)
            if count is None:  # not among _lib's prototypes: declare it here
                count = getattr(L._cdll, self._count)
                count.restype, count.argtypes = ctypes.c_size_t, []
            name = getattr(L, self._name)
            self._names = tuple(name(i).decode() for i in range(int(count())))
        return self._names

    def __getitem__(self, i):
        return self._load()[i]

    def __len__(self):
        return len(self._load())

    def __eq__(self, other):
        if isinstance(other, (tuple, list, _TableNames)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self):
        return hash(self._load())

    def __repr__(self):
        return repr(self._load())


#: Names accepted for ``act`` (nh_act order), from the library's table.
ACTIVATIONS = _TableNames("nh_act_count", "nh_act_name")
#: Names accepted for ``loss`` (nh_loss order), from the library's table.
LOSSES = _TableNames("nh_loss_count", "nh_loss_name")


def library_version():
    """nh_version() of the loaded library, e.g. "0.1.0"."""
    return lib().nh_version().decode()


def library_path():
    """Path (or name) of the loaded libntkhess."""
    return lib().path


def set_threads(n):
    """Threads for OpenMP loops and BLAS; n <= 0 restores the environment's
    default (nh_set_threads)."""
    lib().nh_set_threads(int(n))


def set_mem_limit(nbytes):
    """Memory limit for the library's size checks; 0 = physical memory."""
    lib().nh_set_mem_limit(int(nbytes))


def get_mem_limit():
    return lib().nh_get_mem_limit()


def act_eval(act, x):
    """sigma and its first three derivatives at x: returns (d0, d1, d2, d3),
    each of x's shape (nh_act_eval_p).  act: a name or "name:param"
    ("softplus:2" = log(1 + e^(2x))/2, "leaky_relu:0.2")."""
    if isinstance(act, int):
        a, par = act, lib().nh_act_default_param(act)
    else:
        a, par = A.act_spec(act)
    x = A.f64("x", x)
    outs = [np.empty_like(x) for _ in range(4)]
    lib().nh_act_eval_p(a, par, x.size, A.ptr(x), *(A.ptr(o) for o in outs))
    return tuple(outs)


def check_targets(loss, T, nout=None):
    """Validate targets for a loss (nh_loss_check_targets); returns the
    C-contiguous targets.  Raises NtkhessError with the library's message."""
    lid = A.loss_id(loss)
    T0 = A.f64("T", T)
    n = T0.shape[0] if T0.ndim >= 1 else 0
    T, nout = A.targets(lid, T0, n, nout)
    lib().nh_loss_check_targets(lid, A.ptr(T), n, nout)
    return T


def loss_eval(loss, Y, T):
    """C(Y), dC/dY (N, nout) and the HC blocks (N, nout, nout) for outputs
    Y (N, nout) and targets T (nh_loss_eval; C is the mean over samples)."""
    lid = A.loss_id(loss)
    Y = A.matrix("Y", Y)
    n, nout = Y.shape
    T, _ = A.targets(lid, T, n, nout)
    v = ctypes.c_double()
    g, hc = A.empty(n, nout), A.empty(n, nout, nout)
    lib().nh_loss_eval(lid, A.ptr(Y), A.ptr(T), n, nout, ctypes.addressof(v), A.ptr(g), A.ptr(hc))
    return v.value, g, hc


def _square(name, M):
    M = A.matrix(name, M)
    if M.shape[0] != M.shape[1]:
        raise NtkhessError(2, "%s: expected a square matrix, got %s" % (name, A.shape_str(M.shape)))
    return M


def eigvalsh(M):
    """Eigenvalues (ascending) of a symmetric matrix (nh_eigvalsh, LAPACK)."""
    M = _square("M", M)
    w = A.empty(M.shape[0])
    lib().nh_eigvalsh(M.shape[0], A.ptr(M), A.ptr(w))
    return w


def eigh(M):
    """(w, V): ascending eigenvalues and eigenvectors as the columns of V
    (nh_eigh)."""
    M = _square("M", M)
    p = M.shape[0]
    w, V = A.empty(p), A.empty(p, p)
    lib().nh_eigh(p, A.ptr(M), A.ptr(w), A.ptr(V))
    return w, V


def data_synth(kind, n, dim, loss="mse", nclass=2, seed=0):
    """Seeded synthetic data (nh_data_synth): kind "sphere" or "disk";
    returns X (n, dim) and T (n,) (real targets, -1/+1 labels or class ids
    according to the loss).  ``ntkhess data`` writes the same arrays."""
    k = A.enum(DATASETS, "data set", kind)
    n, dim = int(n), int(dim)
    if n < 1 or dim < 1:
        raise NtkhessError(NH_EINVAL, "n and dim must be >= 1")
    X, T = A.empty(n, dim), A.empty(n)
    lib().nh_data_synth(k, n, dim, A.loss_id(loss), int(nclass), int(seed), A.ptr(X), A.ptr(T))
    return X, T


def gauss_hermite(nq):
    """Probabilists' Gauss-Hermite rule (nodes z, weights w) with nq nodes:
    E[h(z)], z ~ N(0,1) ~ sum w h(z) (nh_gauss_hermite)."""
    z, w = A.empty(int(nq)), A.empty(int(nq))
    lib().nh_gauss_hermite(int(nq), A.ptr(z), A.ptr(w))
    return z, w


def rng_normal(seed, n):
    """The first n normals of the library's generator seeded with ``seed``
    (xoshiro256** + polar method; bit-identical on every IEEE machine).
    ``Net(widths, seed=s).params`` equals ``rng_normal(s, P)``."""
    r = Rng()
    lib().nh_rng_seed(ctypes.byref(r), int(seed))
    out = A.empty(int(n))
    lib().nh_rng_fill_normal(ctypes.byref(r), out.size, A.ptr(out))
    return out
