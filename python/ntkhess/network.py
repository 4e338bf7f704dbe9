"""Finite-width networks (nh_net) and their exact curvature operators (nh_curv).

Parameter vector theta (length P): for l = 0..L-1, W_l (n_{l+1} x n_l,
row-major), then b_l if layer l has a bias -- the order of every P-vector
here, of the CLI's grad.npy / Hv.npy and of
``torch.cat([p.flatten() for p in model.parameters()])`` for an
``nn.Sequential`` of ``nn.Linear`` layers.

Parametrizations (``param``; docs/conventions.md):

* ``"standard"``: ``a~(l+1) = W_l a(l) + b_l`` -- PyTorch's nn.Linear, the
  arrays as they are (what :func:`ntkhess.from_torch` gives by default);
  every gradient and Hessian is in these parameters; beta plays no role;
* ``"ntk"`` (default of :class:`Net`): ``a~(l+1) = W_l a(l) / sqrt(n_l) +
  beta b_l``, the parametrization of the infinite-width theory;
* ``"mf"``: NTK layers with the output scaled by 1/sqrt(n_{L-1}).

``a(l+1) = sigma_l(a~(l+1))`` (one activation per hidden layer, or one for
all), ``f = a~(L)`` (times the output scale).
"""
import ctypes
import os

import numpy as np

from . import _arrays as A
from ._lib import (DIAG_METHODS, NH_EDIVERGED, NH_EINVAL, NH_ESHAPE, NH_SHARP_MAXTOP, OPS, PARAMS, PROBES,
                   TRACE_METHODS, WHICH, CurvOpts, DiagInfo, GnInfo, LanczosInfo, NtkhessError, OrthoResult, SharpRow,
                   SlqResult, TraceResult, lib)

__all__ = ["Net", "Curvature"]


class Net:
    """A fully connected network (wraps ``nh_net``).

    ``Net(widths, act="softplus", beta=0.1, param="ntk", seed=0, bias=None)``
    creates the network ``n_0 -> ... -> n_L`` in the parametrization
    ``param`` ("ntk", "mf" or "standard", see the module doc).  ``act`` is one
    activation for every hidden layer or a list of L-1, each a name or
    "name:param" ("softplus:2" = PyTorch's Softplus(beta=2),
    "leaky_relu:0.2"); ``bias`` a list of L flags (False: layer l has no b_l
    and theta no entries for it), None = all.  ``seed`` draws the parameters
    from the documented generator, as ``ntkhess init --seed`` does: iid
    N(0, 1) for ntk/mf, PyTorch's default nn.Linear init U(-1/sqrt(n_l),
    1/sqrt(n_l)) for standard; ``seed=None`` leaves all parameters 0.
    ``Net.load(dir)`` reads a model directory (config.json + W{l}.npy,
    b{l}.npy), :meth:`save` writes one; :func:`ntkhess.from_torch` imports a
    PyTorch model.

    :attr:`params` is a writable NumPy *view* of theta (writes change the
    network; refresh any :class:`Curvature` on it afterwards), and
    :meth:`get_params` a copy.  A view keeps the network alive.
    """

    def __init__(self, widths, act="softplus", beta=0.1, param="ntk", seed=0, bias=None):
        L = lib()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise NtkhessError(NH_EINVAL, "widths: need n_0, ..., n_L (at least two entries, each >= 1),"
                               " got %r" % (widths,))
        self._h = None
        depth = len(widths) - 1
        cfg = L.nh_net_config_default()
        wc = (ctypes.c_size_t * len(widths))(*widths)
        cfg.depth = depth
        cfg.widths = ctypes.cast(wc, ctypes.POINTER(ctypes.c_size_t))
        specs = [act] * (depth - 1) if isinstance(act, (str, int)) else list(act)
        if len(specs) != depth - 1:
            raise NtkhessError(NH_EINVAL, "act: a list needs one activation per hidden layer (%d), got %d"
                               % (depth - 1, len(specs)))
        parsed = [(s, L.nh_act_default_param(s)) if isinstance(s, int) else A.act_spec(s) for s in specs]
        if isinstance(act, int):
            cfg.act = act
        elif isinstance(act, str):
            cfg.act = A.act_spec(act)[0]
        elif parsed:
            cfg.act = parsed[0][0]
        keep = [wc]  # the arrays must outlive nh_net_create
        plain = isinstance(act, (str, int)) and all(
            p == L.nh_act_default_param(a) or (p != p) for a, p in parsed)
        if not plain and depth > 1:  # per-layer activations or parameters
            ac = (ctypes.c_int * (depth - 1))(*[a for a, _ in parsed])
            pc = (ctypes.c_double * (depth - 1))(*[p for _, p in parsed])
            cfg.acts = ctypes.cast(ac, ctypes.POINTER(ctypes.c_int))
            cfg.act_params = ctypes.cast(pc, ctypes.POINTER(ctypes.c_double))
            keep += [ac, pc]
        if bias is not None:
            flags = [1 if b else 0 for b in bias]
            if len(flags) != depth:
                raise NtkhessError(NH_EINVAL, "bias: one flag per layer (%d), got %d" % (depth, len(flags)))
            bc = (ctypes.c_ubyte * depth)(*flags)
            cfg.bias = ctypes.cast(bc, ctypes.POINTER(ctypes.c_ubyte))
            keep.append(bc)
        cfg.beta = float(beta)
        cfg.param = A.enum(PARAMS, "parametrization", param)
        h = ctypes.c_void_p()
        L.nh_net_create(ctypes.byref(cfg), ctypes.byref(h))
        self._h = h
        if seed is not None:
            self.init(seed)

    @classmethod
    def _wrap(cls, h):
        self = cls.__new__(cls)
        self._h = h
        return self

    @classmethod
    def load(cls, directory):
        """Read a model directory (nh_model_load)."""
        h = ctypes.c_void_p()
        lib().nh_model_load(os.fsencode(directory), ctypes.byref(h))
        return cls._wrap(h)

    def save(self, directory):
        """Write a model directory (nh_model_save: creates one directory level,
        config.json written last and atomically)."""
        lib().nh_model_save(os.fsencode(directory), self._h)

    def clone(self):
        """An independent copy (nh_net_clone)."""
        h = ctypes.c_void_p()
        lib().nh_net_clone(self._h, ctypes.byref(h))
        return Net._wrap(h)

    def __del__(self):
        h = getattr(self, "_h", None)
        if h is not None and h.value:
            try:
                lib().nh_net_free(h)
            except Exception:  # interpreter shutdown
                pass
            self._h = None

    def init_normal(self, seed):
        """Redraw every parameter iid N(0, 1) from ``seed`` (nh_net_init_normal)."""
        lib().nh_net_init_normal(self._h, int(seed))

    def init_uniform_fanin(self, seed):
        """Redraw every parameter of layer l iid U(-1/sqrt(n_l), 1/sqrt(n_l))
        from ``seed``: PyTorch's default nn.Linear init, with the documented
        generator (nh_net_init_uniform_fanin)."""
        lib().nh_net_init_uniform_fanin(self._h, int(seed))

    def init(self, seed):
        """The parametrization's init, as ``ntkhess init``: uniform fan-in for
        standard, N(0, 1) otherwise."""
        if self.param == "standard":
            self.init_uniform_fanin(seed)
        else:
            self.init_normal(seed)

    # -------------------------------------------------------- properties
    @property
    def depth(self):
        """L, the number of weight layers."""
        return lib().nh_net_depth(self._h)

    @property
    def widths(self):
        """(n_0, ..., n_L)."""
        w = lib().nh_net_widths(self._h)
        return tuple(int(w[i]) for i in range(self.depth + 1))

    @property
    def act(self):
        """The nonlinearity's name ("softplus", ...): that of every hidden
        layer when they share one, else the first hidden layer's (see
        :attr:`acts`)."""
        return A.act_name(lib().nh_net_act(self._h))

    @property
    def acts(self):
        """The L-1 hidden layers' activations as "name" or "name:param"."""
        h = self._h
        return [A.act_format(lib().nh_net_act_at(h, i), lib().nh_net_act_param_at(h, i))
                for i in range(self.depth - 1)]

    @property
    def bias(self):
        """L flags: whether layer l has a bias b_l."""
        return tuple(bool(lib().nh_net_has_bias(self._h, l)) for l in range(self.depth))

    @property
    def is_plain(self):
        """One default activation everywhere and every bias present: with
        param="ntk", the networks the infinite-width theory describes."""
        return bool(lib().nh_net_is_plain(self._h))

    @property
    def beta(self):
        return lib().nh_net_beta(self._h)

    @property
    def param(self):
        """"ntk", "mf" or "standard"."""
        p = lib().nh_net_param(self._h)
        return {v: k for k, v in PARAMS.items()}[p]

    @property
    def nparams(self):
        """P = sum_l (n_l + 1) n_{l+1}."""
        return lib().nh_net_nparams(self._h)

    P = nparams

    @property
    def tensors(self):
        """The named tensors of theta, in theta order, as the model files
        name them: a list of (name, offset, size), "W<l>" then "b<l>" (no
        "b<l>" for a layer without bias)."""
        out = []
        for t in range(lib().nh_net_ntensors(self._h)):
            name, off, size = ctypes.c_char_p(), ctypes.c_size_t(), ctypes.c_size_t()
            lib().nh_net_tensor(self._h, t, ctypes.byref(name), ctypes.byref(off), ctypes.byref(size))
            out.append((name.value.decode(), off.value, size.value))
        return out

    def offset_W(self, l):
        """Offset of W_l in theta."""
        self._check_layer(l)
        return lib().nh_net_offset_W(self._h, int(l))

    def offset_b(self, l):
        """Offset of b_l in theta (NtkhessError if layer l has no bias)."""
        self._check_layer(l)
        if not lib().nh_net_has_bias(self._h, int(l)):
            raise NtkhessError(NH_EINVAL, "layer %d has no bias" % int(l))
        return lib().nh_net_offset_b(self._h, int(l))

    def _check_layer(self, l):
        if not 0 <= int(l) < self.depth:
            raise NtkhessError(NH_EINVAL, "layer %r out of range 0..%d" % (l, self.depth - 1))

    # --------------------------------------------------------- parameters
    @property
    def params(self):
        """Writable NumPy view (P,) of theta; writes change the network."""
        P = self.nparams
        addr = lib().nh_net_params(self._h)
        buf = (ctypes.c_double * P).from_address(addr)
        buf._owner = self  # the view's base chain keeps the network alive
        return np.frombuffer(buf, dtype=np.float64)

    @params.setter
    def params(self, theta):
        self.set_params(theta)

    def get_params(self):
        """A copy (P,) of theta."""
        return self.params.copy()

    def set_params(self, theta):
        """Copy theta (P,) in (nh_net_set_params; NH_ENONFINITE on NaN/Inf)."""
        theta = A.vector("theta", theta, self.nparams)
        lib().nh_net_set_params(self._h, A.ptr(theta))

    def W(self, l):
        """View of W_l, shape (n_{l+1}, n_l)."""
        w = self.widths
        o = self.offset_W(l)
        return self.params[o:o + w[l + 1] * w[l]].reshape(w[l + 1], w[l])

    def b(self, l):
        """View of b_l, shape (n_{l+1},) (NtkhessError if layer l has no bias)."""
        o = self.offset_b(l)
        return self.params[o:o + self.widths[l + 1]]

    # ------------------------------------------------------------ forward
    def forward(self, X):
        """f(X): X (N, n_0) -> Y (N, n_L); a single input (n_0,) gives (n_L,)."""
        w = self.widths
        X = A.f64("X", X)
        single = X.ndim == 1
        if single:
            X = X.reshape(1, -1)
        A.check_shape("X", X, (None, w[0]))
        Y = A.empty(X.shape[0], w[-1])
        lib().nh_net_forward(self._h, A.ptr(X), X.shape[0], A.ptr(Y))
        return Y[0] if single else Y

    __call__ = forward

    def __repr__(self):
        acts = self.acts
        act = acts[0] if acts and len(set(acts)) == 1 else (acts or self.act)
        extra = "" if all(self.bias) else ", bias=%r" % (list(self.bias),)
        beta = "" if self.param == "standard" else ", beta=%r" % self.beta
        return "Net(widths=%r, act=%r%s, param=%r%s, P=%d)" % (
            list(self.widths), act, beta, self.param, extra, self.nparams)


def _op(op):
    return A.enum(OPS, "operator (H, I or S)", op)


class Curvature:
    """Exact curvature of the loss of ``net`` on a batch (wraps ``nh_curv``).

    ``Curvature(net, X, T, loss="mse")``: X (N, n_0); targets T of shape
    (N, n_L) for mse/bce (bce labels -1/+1; (N,) allowed when n_L = 1) or N
    class ids for ce.  The loss is ``C = (1/N) sum_i c_i(f(x_i))``;
    ``H = I + S`` with ``I = J^T HC J`` (Gauss-Newton) and
    ``S = sum dC/dY_ik Hess f_k(x_i)``.

    Every P-vector and operator is in the parameters of ``net``'s own
    parametrization (``net.param``): for ``from_torch(model)`` (standard),
    the torch model's own ``parameters()``, so grad, H v and the spectrum are
    those of the model's loss; for an "ntk" network they are the NTK
    parametrization's (the theory's), which differ from the standard ones by
    the congruence D H D (docs/conventions.md).

    The context caches the forward and backward passes at the network's
    current theta: after changing the parameters (``net.params[...] = ``,
    ``set_params``), call :meth:`refresh`.  :meth:`gd_step` refreshes itself.
    The network stays alive as long as the context.

    ``batch=B`` streams every operation over batches of B rows (memory
    O(B sum(widths)) plus the data; results equal the unbatched ones up to
    the order of the sums, docs/streaming.md); ``batch=0`` (default) uses all
    rows when they fit half the memory limit, batches otherwise.  A float32
    ``X`` is passed without a float64 copy (results equal those on
    ``X.astype(float64)`` bit for bit).
    """

    def __init__(self, net, X, T, loss="mse", batch=0, params=None):
        if not isinstance(net, Net):
            raise NtkhessError(NH_EINVAL, "net must be an ntkhess.Net, got %s" % type(net).__name__)
        L = lib()
        self._h = None
        w = net.widths
        self.net = net
        # float32 X stays float32 (nh_curv_create_x32: no float64 copy of the data)
        x32 = isinstance(X, np.ndarray) and X.dtype == np.float32
        X = A.check_shape("X", np.ascontiguousarray(X), (None, w[0])) if x32 else A.matrix("X", X, None, w[0])
        self.loss_id = A.loss_id(loss)
        # (ce labels are checked against n_L by the library, with its message)
        T, _ = A.targets(self.loss_id, T, X.shape[0], w[-1])
        self._X, self._T = X, T
        h = ctypes.c_void_p()
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
            raise NtkhessError(NH_EINVAL, "batch must be an integer >= 0, got %r" % (batch,))
        opts = CurvOpts(0, int(batch))
        create = L.nh_curv_create_x32 if x32 else L.nh_curv_create_ex
        create(net._h, A.ptr(X), A.ptr(T), X.shape[0], self.loss_id, ctypes.byref(opts), ctypes.byref(h))
        self._h = h
        if params is not None:
            self.select(params)

    def select(self, params=None):
        """Restrict the context to the diagonal blocks H_BB, I_BB, S_BB of
        the tensors ``params`` (names as in :attr:`Net.tensors`, e.g.
        ``["W0", "b0"]``, or one comma-separated string; None or [] = all of
        theta).  Afterwards every vector (grad, products, eigenvectors,
        dense matrices) has :attr:`P` = P_B entries, the selected entries of
        theta in theta order; :meth:`ntk` is the block Gram J_B J_B^T and
        :meth:`G` sums over the block's parameters only (G_B . dC/dY =
        Tr S_BB); the loss, outputs, gd_step and slice use all of theta
        (docs/blocks.md)."""
        if params is None:
            names = []
        elif isinstance(params, str):
            names = [p for p in params.split(",") if p]
        else:
            names = [str(p) for p in params]
        idx = (ctypes.c_size_t * max(len(names), 1))()
        for i, name in enumerate(names):
            t = ctypes.c_size_t()
            lib().nh_net_find_tensor(self.net._h, name.encode(), ctypes.byref(t))
            idx[i] = t.value
        lib().nh_curv_select(self._h, len(names), idx)

    @property
    def params(self):
        """Names of the selected tensors (theta order), or None for all of theta."""
        sel = ctypes.POINTER(ctypes.c_size_t)()
        n = lib().nh_curv_selection(self._h, ctypes.byref(sel))
        if n == 0:
            return None
        names = [t[0] for t in self.net.tensors]
        return [names[sel[i]] for i in range(n)]

    @property
    def batch(self):
        """Rows per pass over the data (= N when unbatched)."""
        return int(lib().nh_curv_batch(self._h))

    @property
    def nbytes(self):
        """Bytes the context holds (nh_curv_bytes): pass buffers, data, accumulators."""
        return int(lib().nh_curv_bytes(self._h))

    def __del__(self):
        h = getattr(self, "_h", None)
        if h is not None and h.value:
            try:
                lib().nh_curv_free(h)
            except Exception:
                pass
            self._h = None

    # ------------------------------------------------------------ basics
    @property
    def X(self):
        return self._X

    @property
    def T(self):
        return self._T

    @property
    def loss_name(self):
        return A.loss_name(self.loss_id)

    @property
    def N(self):
        """Number of samples."""
        return lib().nh_curv_nsamples(self._h)

    @property
    def P(self):
        """Length of the vectors: P, or P_B with a parameter selection (:meth:`select`)."""
        return lib().nh_curv_dim(self._h)

    @property
    def nout(self):
        return self.net.widths[-1]

    def refresh(self):
        """Recompute the cached passes after theta changed (NH_EDIVERGED if
        the loss is not finite)."""
        lib().nh_curv_refresh(self._h)

    @property
    def loss(self):
        """C at the cached theta."""
        return lib().nh_curv_loss(self._h)

    def outputs(self):
        """Network outputs Y (N, n_L)."""
        Y = A.empty(self.N, self.nout)
        lib().nh_curv_outputs(self._h, A.ptr(Y))
        return Y

    def dloss(self):
        """dC/dY (N, n_L) (carries the 1/N)."""
        E = A.empty(self.N, self.nout)
        lib().nh_curv_dloss(self._h, A.ptr(E))
        return E

    def hloss(self):
        """Per-sample blocks of HC (N, n_L, n_L) (carry the 1/N)."""
        H = A.empty(self.N, self.nout, self.nout)
        lib().nh_curv_hloss(self._h, A.ptr(H))
        return H

    def grad(self):
        """dC/dtheta (P,)."""
        g = A.empty(self.P)
        lib().nh_curv_grad(self._h, A.ptr(g))
        return g

    # ---------------------------------------------------------- products
    def _vecs(self, v):
        v = A.f64("v", v)
        P = self.P
        if v.ndim == 1:
            A.check_shape("v", v, (P,))
        elif v.ndim == 2:
            A.check_shape("v (a block of row vectors)", v, (None, P))
        else:
            raise NtkhessError(NH_ESHAPE, "v: expected shape (P,) or (m, P) with P = %d, got %s"
                               % (P, A.shape_str(v.shape)))
        return v

    def _apply(self, fn, v):
        v = self._vecs(v)
        out = np.empty_like(v)
        rows = v.reshape(-1, self.P)
        orows = out.reshape(-1, self.P)
        for j in range(rows.shape[0]):
            fn(self._h, A.ptr(rows[j]), A.ptr(orows[j]))
        return out

    def hvp(self, v):
        """H v, exact.  v: (P,) or a block (m, P) of row vectors (one
        nh_curv_hvp_block call)."""
        v = self._vecs(v)
        out = np.empty_like(v)
        if v.ndim == 1:
            lib().nh_curv_hvp(self._h, A.ptr(v), A.ptr(out))
        elif v.shape[0] > 0:
            lib().nh_curv_hvp_block(self._h, v.shape[0], A.ptr(v), A.ptr(out))
        return out

    def ivp(self, v):
        """I v = J^T HC J v (Gauss-Newton).  v: (P,) or (m, P)."""
        return self._apply(lib().nh_curv_ivp, v)

    def svp(self, v):
        """S v = H v - I v.  v: (P,) or (m, P)."""
        return self._apply(lib().nh_curv_svp, v)

    def isvp(self, v):
        """(I v, S v) from one shared forward R-pass.  v: (P,) or (m, P)."""
        v = self._vecs(v)
        iv, sv = np.empty_like(v), np.empty_like(v)
        P = self.P
        for r, a, b in zip(v.reshape(-1, P), iv.reshape(-1, P), sv.reshape(-1, P)):
            lib().nh_curv_isvp(self._h, A.ptr(r), A.ptr(a), A.ptr(b))
        return iv, sv

    def jvp(self, v):
        """J v = (dY/dtheta) v, shape (N, n_L)."""
        v = A.vector("v", v, self.P)
        out = A.empty(self.N, self.nout)
        lib().nh_curv_jvp(self._h, A.ptr(v), A.ptr(out))
        return out

    def vjp(self, u):
        """J^T u for u (N, n_L), shape (P,)."""
        u = A.matrix("u", u, self.N, self.nout, allow_vector=True)
        out = A.empty(self.P)
        lib().nh_curv_vjp(self._h, A.ptr(u), A.ptr(out))
        return out

    # ---------------------------------------------------- exact matrices
    def ntk(self):
        """Empirical NTK Gram J J^T, shape (N n_L, N n_L), index i*n_L + k."""
        m = self.N * self.nout
        K = A.empty(m, m)
        lib().nh_curv_ntk(self._h, A.ptr(K))
        return K

    def trace_i_exact(self, kmax=4, K=None):
        """Tr(I^k) = Tr((HC Theta~)^k), k = 1..kmax, exactly from the NTK Gram
        (nh_ntk_trace_powers; K: a precomputed :meth:`ntk`)."""
        m = self.N * self.nout
        K = self.ntk() if K is None else A.matrix("K", K, m, m)
        HC = self.hloss()
        tr = A.empty(int(kmax))
        lib().nh_ntk_trace_powers(self.N, self.nout, A.ptr(K), A.ptr(HC), int(kmax), A.ptr(tr))
        return tr

    def G(self):
        """G[i, k] = Tr Hess_theta f_k(x_i), exact, shape (N, n_L)."""
        G = A.empty(self.N, self.nout)
        lib().nh_curv_G(self._h, A.ptr(G))
        return G

    def jacobian(self):
        """Dense J = dY/dtheta, shape (N n_L, P) (small P only)."""
        J = A.empty(self.N * self.nout, self.P)
        lib().nh_curv_jacobian(self._h, A.ptr(J))
        return J

    def dense(self, which="HIS"):
        """Dense matrices (small P only): a dict with the requested members of
        "H", "I", "S", each (P, P)."""
        P = self.P
        out = {k: A.empty(P, P) for k in "HIS" if k in which.upper()}
        if not out:
            raise NtkhessError(NH_EINVAL, "dense: which must name at least one of H, I, S")
        lib().nh_curv_dense(self._h, A.ptr(out.get("H")), A.ptr(out.get("I")), A.ptr(out.get("S")))
        return out

    # ---------------------------------------------------------- training
    def gd_step(self, eta):
        """One gradient-descent step theta -= eta grad C on this batch (the
        network's parameters change), then refresh; returns the new loss.
        NH_EDIVERGED (theta restored) when the result is not finite."""
        lib().nh_curv_gd_step(self._h, self.net._h, float(eta))
        return self.loss

    def gn_delta(self, mu=0.0):
        """The Gauss-Newton step in function space (nh_curv_gn_delta), not
        applied: delta = -J^T (K + mu' I)^-1 r with K = J J^T, r = HC^-1 dC/dY
        per sample (Y - Y* for the MSE), mu' = mu Tr K / (N n_L).  mu = 0: the
        minimum-norm solution of J delta = -r.  (P,) or (P_B,) with a
        selection.  NH_EINVAL for the softmax cross-entropy (singular HC)."""
        d = A.empty(self.P)
        lib().nh_curv_gn_delta(self._h, float(mu), A.ptr(d))
        return d

    def gn_step(self, mu=0.0):
        """Try theta + gn_delta(mu) (nh_curv_gn_step): kept if the loss does
        not rise, else theta is restored bit for bit.  Returns a dict: loss0,
        loss, tried, pred (the loss the model in the outputs predicts: the
        gain ratio (loss0 - tried) / (loss0 - pred) steers mu in
        Levenberg-Marquardt), norm (||delta||), mu_abs, accepted (bool)."""
        info = GnInfo()
        lib().nh_curv_gn_step(self._h, self.net._h, float(mu), ctypes.byref(info))
        out = {k: getattr(info, k) for k, _ in GnInfo._fields_}
        out["accepted"] = bool(out["accepted"])
        return out

    # ------------------------------------------------------ sharpness
    SHARP_COLUMNS = ("step", "t", "loss", "grad_norm", "lam_H", "lam_I", "lam_S", "lam_NTK", "grad_overlap",
                     "uIu", "uSu", "matvecs_H", "matvecs_I", "matvecs_S", "matvecs_NTK")

    def sharpness(self, lr, steps, every=1, top=1, tol=1e-7, cold=False, ntk=True, maxit=100, min_steps=4):
        """Sharpness along full-batch gradient descent, as ``ntkhess sharpness``
        (nh_sharp_record, docs/beyond-lazy.md): trains ``self.net`` in place by
        ``steps`` GD steps of size ``lr`` (the same steps as :meth:`gd_step`)
        and records at steps 0, every, 2 every, ..., steps the top eigenvalues
        of H, I, S and the NTK Gram / N, warm-started from the previous record.

        top: eigenvalues of H, I and S per record (1..16; > 1 adds H_1..H_k,
        I_1..I_k, S_1..S_k); tol: relative Ritz residual; cold: no warm
        starts; ntk: compute lam_NTK (else NaN); maxit, min_steps: products
        per solve at most / before the first convergence test.

        Returns a dict of numpy arrays, one per CSV column of the CLI (step, t,
        loss, grad_norm, lam_H, lam_I, lam_S, lam_NTK, grad_overlap, uIu, uSu,
        matvecs_H, matvecs_I, matvecs_S, matvecs_NTK[, H_1.., I_1.., S_1..]),
        equal to the CLI's records bit for bit on the same model, data, batch
        and threads; plus "diverged_at": the step whose GD update was not
        finite (records stop before it; the network keeps the last finite
        theta), or None.  A solve that reached maxit unconverged warns."""
        import warnings
        lr, steps, every, top = float(lr), int(steps), int(every), int(top)
        if not lr > 0 or steps < 0 or every < 1 or not 1 <= top <= NH_SHARP_MAXTOP:
            raise NtkhessError(NH_EINVAL, "sharpness: need lr > 0, steps >= 0, every >= 1, top in 1..%d"
                               % NH_SHARP_MAXTOP)
        L = lib()
        o = L.nh_sharp_opts_default()
        o.top, o.tol, o.maxit, o.min_steps = top, float(tol), int(maxit), int(min_steps)
        o.cold, o.ntk = (1 if cold else 0), (1 if ntk else 0)
        h = ctypes.c_void_p()
        L.nh_sharp_create(self._h, ctypes.byref(o), ctypes.byref(h))
        names = list(self.SHARP_COLUMNS)
        if top > 1:
            names += ["%s_%d" % (op, j + 1) for op in "HIS" for j in range(top)]
        recs, diverged = [], None
        row = SharpRow()

        def record(k):
            L.nh_sharp_record(h, self._h, k, ctypes.byref(row))
            if row.unconverged:
                warnings.warn("sharpness: step %d: %d eigen-solve(s) not converged in maxit %d products"
                              % (k, row.unconverged, maxit), RuntimeWarning, stacklevel=3)
            r = [k, k * lr, row.loss, row.grad_norm, row.lam_H, row.lam_I, row.lam_S, row.lam_NTK,
                 row.grad_overlap, row.uIu, row.uSu] + list(row.matvecs)
            if top > 1:
                r += [row.top[op * NH_SHARP_MAXTOP + j] for op in range(3) for j in range(top)]
            recs.append(r)

        try:
            record(0)
            for k in range(1, steps + 1):
                try:
                    self.gd_step(lr)
                except NtkhessError as e:
                    if e.status != NH_EDIVERGED:
                        raise
                    diverged = k
                    break
                if k % every == 0 or k == steps:
                    record(k)
        finally:
            L.nh_sharp_free(h)
        out = {}
        for j, n in enumerate(names):
            col = [r[j] for r in recs]
            ints = n == "step" or n.startswith("matvecs_")
            out[n] = np.array(col, dtype=np.int64 if ints else np.float64)
        out["diverged_at"] = diverged
        return out

    # -------------------------------------------------- spectral toolkit
    @staticmethod
    def _trace_opts(method=None, probe=None, nprobes=None, sketch=None, first_probe=None, seed=None,
                    control=None):
        o = lib().nh_trace_opts_default()
        if method is not None:
            o.method = A.enum(TRACE_METHODS, "trace method", method)
        if probe is not None:
            o.probe = A.enum(PROBES, "probe", probe)
        for k, v in (("nprobes", nprobes), ("sketch", sketch), ("first_probe", first_probe),
                     ("seed", seed)):
            if v is not None:
                if int(v) < 0:
                    raise NtkhessError(NH_EINVAL, "%s must be >= 0, got %r" % (k, v))
                setattr(o, k, int(v))
        if control is not None:
            o.control = 1 if control else 0
        return o

    def trace(self, op="H", kmax=4, method=None, probe=None, nprobes=None, sketch=None,
              first_probe=None, seed=None, control=None):
        """Tr(A^k), k = 1..kmax (<= 4), for A = op in {"H", "I", "S"}
        (nh_curv_trace).

        method: "hutchinson" (default), "hutchpp" or "exact"; probe:
        "rademacher" (default) or "gaussian"; nprobes (32), sketch (0 = M),
        first_probe (0), seed (0); control: exact control variates (Tr I^k
        from the NTK Gram, Tr S = G . dC/dY).

        Returns {"est": (kmax,), "se": (kmax,), "nprobes", "nproducts"}.
        """
        o = self._trace_opts(method, probe, nprobes, sketch, first_probe, seed, control)
        r = TraceResult()
        lib().nh_curv_trace(self._h, _op(op), int(kmax), ctypes.byref(o), ctypes.byref(r))
        k = int(kmax)
        return {"est": np.array(r.est[:k]), "se": np.array(r.se[:k]), "nprobes": r.nprobes,
                "nproducts": r.nproducts}

    def diag(self, op="H", method="auto", probes=None, seed=None, max_cost=None):
        """The diagonal of A = op in {"H", "I", "S"}, or of all three for
        op="all" (nh_curv_diag, nh_curv_diag_all; docs/diagonals.md).

        method: "auto" (exact when it costs at most max_cost H v products,
        default 50), "exact" or "hutchinson" (probes Rademacher vectors,
        default 64, from seed, default 0).  Returns (diag, se): (P,) arrays,
        or (3, P) rows H, I, S for op="all"; se is 0 when exact, NaN for one
        probe.  self.diag_info then holds the nh_diag_info fields (method
        used, probes, products, exact_flops, hvp_flops, exact_cost).
        """
        o = lib().nh_diag_opts_default()
        o.method = A.enum(DIAG_METHODS, "diagonal method", method)
        for k, v in (("nprobes", probes), ("seed", seed)):
            if v is not None:
                if int(v) < 0:
                    raise NtkhessError(NH_EINVAL, "%s must be >= 0, got %r" % (k, v))
                setattr(o, k, int(v))
        if max_cost is not None:
            o.max_cost = float(max_cost)
        info = DiagInfo()
        if str(op).lower() == "all":
            d, se = A.empty(3, self.P), A.empty(3, self.P)
            lib().nh_curv_diag_all(self._h, ctypes.byref(o), A.ptr(d), A.ptr(se), ctypes.byref(info))
        else:
            d, se = A.empty(self.P), A.empty(self.P)
            lib().nh_curv_diag(self._h, _op(op), ctypes.byref(o), A.ptr(d), A.ptr(se), ctypes.byref(info))
        names = {v: k for k, v in DIAG_METHODS.items()}
        self.diag_info = {f: getattr(info, f) for f, _ in DiagInfo._fields_}
        self.diag_info["method"] = names.get(info.method, info.method)
        return d, se

    def orthogonality(self, method=None, probe=None, nprobes=None, sketch=None, first_probe=None,
                      seed=None):
        """||I S||_F (exact), ||I||_F (exact), ||S||_F (estimated per the trace
        options) and their ratio (nh_curv_orthogonality).  Returns a dict of
        the nh_ortho_result fields."""
        o = self._trace_opts(method, probe, nprobes, sketch, first_probe, seed, None)
        r = OrthoResult()
        lib().nh_curv_orthogonality(self._h, ctypes.byref(o), ctypes.byref(r))
        return {f: getattr(r, f) for f, _ in OrthoResult._fields_}

    def lanczos(self, k, op="H", which="LA", ncv=0, tol=1e-10, maxprod=0, seed=0, require=True,
                vectors=True, residuals=True, start=None):
        """The k wanted eigenpairs of A = op by thick-restart Lanczos
        (nh_curv_lanczos).

        which: "LA" (largest algebraic, descending; default), "SA" (smallest,
        ascending) or "LM" (largest magnitude); ncv (0 = automatic), tol
        (relative residual, 1e-10), maxprod (0 = 100 ncv), seed (start
        vector), require (raise NH_EMAXITER unless all converged), start (a
        start vector (P,), e.g. the previous top eigenvector: a warm start).

        Returns {"eigenvalues": (k,), "eigenvectors": (k, P) rows or None,
        "residuals": ||A x - lambda x|| (k,) or None, "nconv", "nproducts",
        "nrestarts", "nbreakdowns", "anorm"}.
        """
        k = int(k)
        if k < 1:
            raise NtkhessError(NH_EINVAL, "k must be >= 1, got %d" % k)
        o = lib().nh_lanczos_opts_default()
        o.which = A.enum(WHICH, "which", which)
        o.ncv, o.tol, o.maxprod, o.seed = int(ncv), float(tol), int(maxprod), int(seed)
        o.require = 1 if require else 0
        if start is not None:
            start = A.vector("start", start, self.P)
            o.start = A.ptr(start)
        ev = A.empty(k)
        V = A.empty(k, self.P) if vectors else None
        res = A.empty(k) if residuals else None
        info = LanczosInfo()
        lib().nh_curv_lanczos(self._h, _op(op), k, ctypes.byref(o), A.ptr(ev), A.ptr(V), A.ptr(res),
                              ctypes.byref(info))
        out = {"eigenvalues": ev, "eigenvectors": V, "residuals": res}
        out.update({f: getattr(info, f) for f, _ in LanczosInfo._fields_})
        return out

    def slq(self, op="H", nvec=16, nsteps=30, probe="rademacher", seed=0, grid=None, sigma=None, deflate=None):
        """Spectral density of A = op by stochastic Lanczos quadrature
        (nh_curv_slq): nvec start vectors, nsteps Lanczos steps each.

        Returns {"nodes": (nvec, nsteps), "weights": (nvec, nsteps) (summing to
        1), "moments": Tr(A^k)/P estimates (4,), "moments_se", "nproducts",
        "nbreakdowns"} and, when ``grid`` is given (sigma > 0 required),
        "grid" and "density" (a probability density on the grid).

        deflate: (q, P) orthonormal rows (e.g. ``top_eigenvectors``), or None:
        the density of the bulk, A restricted to their orthogonal complement
        (nsteps <= P - q); moments ~ Tr_perp(A^k) / (P - q), and with exact
        eigenvectors Tr(A^k) = sum_i lambda_i^k + (P - q) moments[k-1]."""
        o = lib().nh_slq_opts_default()
        o.nvec, o.nsteps = int(nvec), int(nsteps)
        o.probe = A.enum(PROBES, "probe", probe)
        o.seed = int(seed)
        if deflate is not None:
            deflate = A.f64("deflate", deflate)
            deflate = A.matrix("deflate", deflate.reshape(1, -1) if deflate.ndim == 1 else deflate, None, self.P)
            o.ndeflate, o.deflate = deflate.shape[0], A.ptr(deflate)
        if o.nvec < 1 or o.nsteps < 1:
            raise NtkhessError(NH_EINVAL, "nvec and nsteps must be >= 1")
        nodes, weights = A.empty(o.nvec, o.nsteps), A.empty(o.nvec, o.nsteps)
        den = None
        if grid is not None:
            grid = A.f64("grid", grid).ravel()
            if sigma is None or not float(sigma) > 0:
                raise NtkhessError(NH_EINVAL, "slq: a grid needs sigma > 0, got %r" % (sigma,))
            den = A.empty(grid.size)
        r = SlqResult()
        lib().nh_curv_slq(self._h, _op(op), ctypes.byref(o), A.ptr(nodes), A.ptr(weights),
                          0 if grid is None else grid.size, A.ptr(grid),
                          0.0 if sigma is None else float(sigma), A.ptr(den), ctypes.byref(r))
        out = {"nodes": nodes, "weights": weights, "moments": np.array(r.moments[:]),
               "moments_se": np.array(r.moments_se[:]), "nproducts": r.nproducts,
               "nbreakdowns": r.nbreakdowns}
        if grid is not None:
            out["grid"], out["density"] = grid.copy(), den
        return out

    def top_eigenvectors(self, op="H", k=1, which=None, tol=1e-10, seed=0):
        """The k top eigenpairs of op by Lanczos: (eigenvalues (k,), eigenvectors
        (k, P) orthonormal rows).  which: None = "LA" for H and I (largest),
        "LM" for S (largest magnitude: S is indefinite); or "LA", "SA", "LM"."""
        if which is None:
            which = "LM" if str(op).upper() == "S" else "LA"
        r = self.lanczos(k, op=op, which=which, tol=tol, seed=seed, residuals=False)
        return r["eigenvalues"], r["eigenvectors"]

    def eigenspace(self, k, ops="HIS", tol=1e-10, seed=0, slq_vectors=16, slq_steps=30):
        """What ``ntkhess eigenspace`` computes, as arrays: for each op in ops
        (a string or list of "H", "I", "S") a dict {"eigenvalues" (k,),
        "eigenvectors" (k, P), "residuals", "overlap" (||P_k grad|| /
        ||grad||), "overlap_components" (k,), "slq_full", "slq_bulk" (the
        :meth:`slq` results without and with the k eigenvectors deflated,
        slq_steps capped at P - k)}, and "angles": {"H-I": principal angles
        (k,) radians, ...} for each pair in ops order."""
        from .eigen import principal_angles, subspace_overlap
        k = int(k)
        if not 1 <= k < self.P:
            raise NtkhessError(NH_EINVAL, "eigenspace: need 1 <= k < P = %d, got %d" % (self.P, k))
        names = [str(o).upper() for o in (ops.replace(",", "") if isinstance(ops, str) else ops)]
        g = self.grad()
        m = min(int(slq_steps), self.P - k)
        out = {"angles": {}}
        for op in names:
            which = "LM" if op == "S" else "LA"
            r = self.lanczos(k, op=op, which=which, tol=tol, seed=seed)
            ov, comp = subspace_overlap(r["eigenvectors"], g)
            out[op] = {"eigenvalues": r["eigenvalues"], "eigenvectors": r["eigenvectors"],
                       "residuals": r["residuals"], "overlap": ov, "overlap_components": comp,
                       "slq_full": self.slq(op, slq_vectors, m, seed=seed),
                       "slq_bulk": self.slq(op, slq_vectors, m, seed=seed, deflate=r["eigenvectors"])}
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                out["angles"]["%s-%s" % (names[a], names[b])] = principal_angles(
                    out[names[a]]["eigenvectors"], out[names[b]]["eigenvectors"])
        return out

    def rayleigh(self, V):
        """Rayleigh quotients (v^T I v / v^T v, v^T S v / v^T v) of the rows of
        V (m, P) or of one vector (P,) (nh_curv_rayleigh)."""
        V = A.f64("V", V)
        single = V.ndim == 1
        V = A.matrix("V", V.reshape(1, -1) if single else V, None, self.P)
        m = V.shape[0]
        ri, rs = A.empty(m), A.empty(m)
        lib().nh_curv_rayleigh(self._h, m, A.ptr(V), A.ptr(ri), A.ptr(rs))
        return (ri[0], rs[0]) if single else (ri, rs)

    def slice(self, u, v, R, G):
        """Loss on the G x G grid theta + a_i u + b_j v, a, b in [-R, R]
        (nh_curv_slice); theta is restored afterwards.  Returns (G, G)."""
        u = A.vector("u", u, self.net.nparams)  # slices move all of theta, whatever the selection
        v = A.vector("v", v, self.net.nparams)
        out = A.empty(int(G), int(G))
        lib().nh_curv_slice(self._h, self.net._h, A.ptr(u), A.ptr(v), float(R), int(G), A.ptr(out))
        return out

    # ------------------------------------------------------ scipy views
    def as_linear_operator(self, op="H"):
        """A ``scipy.sparse.linalg.LinearOperator`` view of ``op``: "H", "I"
        (Gauss-Newton) or "S" (P x P, in the parameters of ``self.net``'s own
        parametrization -- for a :func:`ntkhess.from_torch` import with
        param="standard", the torch model's own parameters), or "NTK" (the
        empirical NTK Gram J J^T, (N n_L) x (N n_L), index i*n_L + k).

        Symmetric, float64; products are exact (one C product per vector,
        H blocks in one call), so ``scipy.sparse.linalg.eigsh(A, k=5,
        which="LA")``, ``cg``, ``minres`` work on it.  float32 (or any
        real) input vectors are converted to float64.  The view uses the
        cached passes: :meth:`refresh` after changing theta.  Needs scipy
        (ImportError with a message otherwise)."""
        try:
            from scipy.sparse.linalg import LinearOperator
        except ImportError as e:
            raise ImportError("Curvature.as_linear_operator needs scipy (Debian: python3-scipy; pip: "
                              "scipy); the products themselves are available without it as c.hvp, "
                              "c.ivp, c.svp, c.jvp/c.vjp (%s)" % e) from e
        key = str(op).upper()
        if key == "NTK":
            m = self.N * self.nout
            shape = (self.N, self.nout)

            def mv(u):
                u = np.asarray(u, dtype=np.float64).reshape(shape)
                return self.jvp(self.vjp(u)).reshape(-1)

            def mm(U):
                U = np.asarray(U, dtype=np.float64)
                return np.stack([mv(U[:, j]) for j in range(U.shape[1])], axis=1).reshape(m, -1)

            return LinearOperator((m, m), matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np.float64)
        if key not in OPS:
            raise NtkhessError(NH_EINVAL, "unknown operator %r (expected 'H', 'I', 'S' or 'NTK')" % (op,))
        f = {"H": self.hvp, "I": self.ivp, "S": self.svp}[key]
        P = self.P

        def mv(v):
            return f(np.asarray(v, dtype=np.float64).reshape(P))

        def mm(V):
            # the binding takes blocks of row vectors: (k, P) in, (k, P) out
            V = np.asarray(V, dtype=np.float64).reshape(P, -1)
            return f(np.ascontiguousarray(V.T)).T

        return LinearOperator((P, P), matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np.float64)

    def __repr__(self):
        return "Curvature(%r, N=%d, loss=%r)" % (self.net, self.N, self.loss_name)
