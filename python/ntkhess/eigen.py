"""Eigenspace tools on plain arrays (nh_subspace_overlap, nh_principal_angles);
the operator-side ones are methods of :class:`ntkhess.Curvature`
(``top_eigenvectors``, ``eigenspace``, ``slq(deflate=...)``).  See
docs/eigenspace.md."""
import numpy as np

from . import _arrays as A
from ._lib import lib

__all__ = ["subspace_overlap", "principal_angles"]


def _rows(name, U, P=None):
    U = A.f64(name, U)
    return A.matrix(name, U.reshape(1, -1) if U.ndim == 1 else U, None, P)


def subspace_overlap(U, g):
    """Overlap of g (P,) with the span of the orthonormal rows of U (k, P)
    (or one unit vector (P,)): returns (||U g|| / ||g||, |u_i . g| / ||g||
    (k,)).  NtkhessError(NH_EINVAL) when the rows are not orthonormal to
    1e-6, g is zero or k > P."""
    g = A.f64("g", g)
    U = _rows("U", U, g.size)
    g = A.vector("g", g, U.shape[1])
    k, P = U.shape
    ov = np.zeros(1)
    comp = A.empty(k)
    lib().nh_subspace_overlap(k, P, A.ptr(U), A.ptr(g), A.ptr(ov), A.ptr(comp))
    return float(ov[0]), comp


def principal_angles(U, V):
    """Principal angles (radians, ascending, min(k1, k2) of them) between the
    row spaces of U (k1, P) and V (k2, P): any bases with independent rows
    (orthonormalized by QR); small angles keep full relative accuracy."""
    U = _rows("U", U)
    V = _rows("V", V, U.shape[1])
    out = A.empty(min(U.shape[0], V.shape[0]))
    lib().nh_principal_angles(U.shape[0], V.shape[0], U.shape[1], A.ptr(U), A.ptr(V), A.ptr(out))
    return out
