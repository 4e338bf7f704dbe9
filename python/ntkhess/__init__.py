"""ntkhess: Python bindings of libntkhess (ctypes on NumPy arrays).

The Hessian of the loss of fully connected networks, measured exactly at
finite width -- in the standard parametrization (your PyTorch model as it
is: :func:`from_torch`), the NTK or the mean-field one -- and the
infinite-width theory of Jacot, Gabriel & Hongler, "The asymptotic spectrum of the Hessian
of DNN throughout training" (ICLR 2020).  Every convention (parametrization,
parameter order, losses, time t = k eta, kernels) is that of the C library:
docs/conventions.md; the binding itself is described in docs/python.md.

Finite width::

    import numpy as np, ntkhess as nh
    net = nh.Net([3, 50, 50, 1], act="softplus", beta=0.1, seed=0)
    X = np.random.randn(20, 3); T = np.random.randn(20, 1)
    c = nh.Curvature(net, X, T, loss="mse")
    g, hv = c.grad(), c.hvp(np.ones(net.nparams))
    top = c.lanczos(3, op="H")["eigenvalues"]

Your PyTorch model (``param="standard"``: theta is
``torch.cat([p.flatten() for p in model.parameters()])``)::

    net = nh.from_torch(model)                               # nn.Sequential of Linear + activations
    c = nh.Curvature(net, X, y, loss="ce")
    from scipy.sparse.linalg import eigsh
    top5 = eigsh(c.as_linear_operator("H"), k=5, which="LA")[0]

Infinite width::

    K = nh.kernels_gram(X, act="softplus", depth=3)          # dict of N x N
    pred = nh.predict_mse_expect(K, T, [0.0, 1.0, 10.0])     # moments (nt, 4)

The shared library is found through $NTKHESS_LIB, else a copy bundled in
the installed package, else the in-tree build/libntkhess.so, else an
installed libntkhess.so.0 (see :func:`library_candidates`); it is loaded on first use.  Errors raise
:class:`NtkhessError` (status name + nh_last_error() text).
"""
from ._lib import STATUS_NAMES, NtkhessError, library_candidates, load_library
from .misc import (ACTIVATIONS, LOSSES, act_eval, check_targets, data_synth, eigh, eigvalsh,
                   gauss_hermite, get_mem_limit, library_path, library_version, loss_eval,
                   rng_normal, set_mem_limit, set_threads)
from .network import Curvature, Net
from .eigen import principal_angles, subspace_overlap
from .theory import (GRAM_KEYS, KERNEL_NAMES, kernel_names, kernel_opts, kernels_gram, kernels_pair,
                     predict_draw_init, predict_meanfield, predict_mse, predict_mse_expect,
                     predict_ode, predict_opts, predict_sample, predict_spectrum_i)

from ._version import __version__


def from_torch(model, param="standard", beta=0.1, arch=None):
    """An :class:`Net` computing what the PyTorch ``model`` computes (see
    :func:`ntkhess.torch.from_torch`; needs torch, imported on first call).
    param="standard" (default) is the model itself; "ntk" rewrites it in the
    NTK parametrization for comparisons with the theory."""
    from .torch import from_torch as f
    return f(model, param=param, beta=beta, arch=arch)


def to_torch(net, dtype=None):
    """An ``nn.Sequential`` computing the same f as ``net`` (a :class:`Net`
    or a model directory; see :func:`ntkhess.torch.to_torch`)."""
    from .torch import to_torch as f
    return f(net) if dtype is None else f(net, dtype)


__all__ = [
    "__version__", "NtkhessError", "STATUS_NAMES", "load_library", "library_candidates",
    "library_path", "library_version", "set_threads", "set_mem_limit", "get_mem_limit",
    "ACTIVATIONS", "LOSSES", "act_eval", "loss_eval", "check_targets", "eigvalsh", "eigh",
    "data_synth", "gauss_hermite", "rng_normal",
    "Net", "Curvature", "from_torch", "to_torch",
    "subspace_overlap", "principal_angles",
    "KERNEL_NAMES", "GRAM_KEYS", "kernel_names", "kernel_opts", "kernels_pair", "kernels_gram",
    "predict_opts", "predict_mse", "predict_mse_expect", "predict_ode", "predict_draw_init",
    "predict_sample", "predict_spectrum_i", "predict_meanfield",
]
