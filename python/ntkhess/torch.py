"""PyTorch models <-> ntkhess networks (needs ``torch``; imported on demand).

From Python::

    import ntkhess as nh
    net = nh.from_torch(model)                    # the model itself (param="standard")
    c = nh.Curvature(net, X.reshape(len(X), -1), y, loss="ce")
    top = c.lanczos(5)["eigenvalues"]             # the Hessian of YOUR loss in YOUR parameters
    model2 = nh.to_torch(net)                     # back to nn.Sequential

From the shell::

    /usr/bin/python3 -m ntkhess.torch MODEL.pt OUT_DIR [--param standard|ntk] [--beta B]
    /usr/bin/python3 -m ntkhess.torch STATE.pt OUT_DIR --arch "Sequential(Linear(784, 100), ReLU(), Linear(100, 10))"
    /usr/bin/python3 -m ntkhess.torch --reverse MODEL_DIR OUT.pt [--float32]

Parametrizations
----------------
``param="standard"`` (the default) keeps the model as it is: layer l computes
``W_l a + b_l`` with torch's own arrays (nn.Linear), so the ntkhess parameter
vector is exactly ``torch.cat([p.flatten() for p in model.parameters()])``
and every gradient, Hessian product, eigenvalue and trace is the model's own.
``param="ntk"`` rewrites the same function in the NTK parametrization
(``W_l a / sqrt(n_l) + beta b_l``; theta_ntk = D theta_torch, D = sqrt(n_l) on
W_l and 1/beta on b_l, a missing bias becomes a zero bias): the loss and the
outputs are unchanged but the Hessian is ``D^-1 H_torch D^-1``, which depends
on beta.  Use it only to compare a trained model with the infinite-width
theory (docs/python.md, docs/conventions.md).

What is accepted
----------------
An ``nn.Sequential`` (nested ones are flattened), or a state dict together
with such an architecture (``arch=``), made of:

* ``nn.Linear``, with or without bias (``bias=False``: the layer has no b_l
  and theta has no entries for it in the standard parametrization);
* a leading ``nn.Flatten()`` (pass inputs as ``X.reshape(N, -1)``);
* ``nn.Dropout`` / ``nn.AlphaDropout`` (any p): the identity -- the analysis
  is that of the model in eval mode;
* ``nn.Identity``;
* one activation between two Linears, each layer its own: ``nn.Softplus``
  (any beta; threshold >= 20, see below), ``nn.SiLU``, ``nn.LeakyReLU`` (any
  slope), ``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.GELU()`` (exact erf
  form), and the classes :class:`Arctan`, :class:`Erf`, :class:`Sin`,
  :class:`NSoftplus` below.  ReLU and LeakyReLU are not smooth: their second
  derivative is taken as 0 (torch's autograd does the same away from the kink);
* a trailing ``nn.LogSoftmax(dim=-1)`` or ``nn.Softmax(dim=-1)``: dropped,
  the ntkhess network outputs the logits and the matching loss is ntkhess's
  ``"ce"`` (softmax cross-entropy on the logits, mean over samples = torch's
  ``F.cross_entropy(logits, y)``); the import warns and says so.

Anything else (Conv, BatchNorm, LayerNorm, an activation after the last
Linear, two activations in a row, ...) is refused with a ValueError naming
the module and listing what is supported.

Softplus threshold: torch's ``Softplus(beta, threshold=20)`` returns x where
``beta x > 20``; ntkhess evaluates log(1 + e^(beta x)) / beta everywhere.
Measured (float64): the values differ by log1p(e^-20)/beta = 2.06e-9/beta at
the threshold (and by less than 1 ulp beyond beta x ~ 37), the first
derivatives by 2.06e-9 and the second by 2.06e-9 beta.  Where no
preactivation passes the threshold the two agree to rounding; keep it so (or
use threshold >= 40, as :func:`to_torch` does) when comparing to 1e-10.
"""
import argparse
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NSOFTPLUS_MU = 0.8060591833474398  # NH_NSOFTPLUS_MU (include/ntkhess/core.h)
NSOFTPLUS_SD = 0.5210705343814393  # NH_NSOFTPLUS_SD

__all__ = ["Arctan", "Erf", "Sin", "NSoftplus", "TorchImportWarning", "SUPPORTED", "from_torch",
           "to_torch", "parse", "convert", "save", "load_model_dir", "scaling", "flat_params",
           "activation_spec", "linear_layers", "import_sequential", "sequential_to_ntkhess",
           "export_sequential", "main"]

SUPPORTED = ("nn.Linear (bias or not), a leading nn.Flatten, nn.Dropout/nn.AlphaDropout (identity: eval "
             "mode), nn.Identity, one activation per hidden layer among nn.Softplus (any beta, threshold "
             ">= 20), nn.SiLU, nn.LeakyReLU, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU(approximate='none'), "
             "ntkhess.torch.Arctan/Erf/Sin/NSoftplus, a trailing nn.LogSoftmax/nn.Softmax over the last "
             "dimension, nested nn.Sequential")


class TorchImportWarning(UserWarning):
    """What the import changed about the model's meaning (trailing softmax
    dropped, dropout as identity)."""


# ------------------------------------------------- activations torch lacks

class Arctan(nn.Module):
    """arctan(x), ntkhess's ``arctan``."""
    ntkhess_act = "arctan"

    def forward(self, x):
        return torch.atan(x)


class Erf(nn.Module):
    """erf(x), ntkhess's ``erf``."""
    ntkhess_act = "erf"

    def forward(self, x):
        return torch.erf(x)


class Sin(nn.Module):
    """sin(x), ntkhess's ``sin``."""
    ntkhess_act = "sin"

    def forward(self, x):
        return torch.sin(x)


class NSoftplus(nn.Module):
    """(softplus(x) - mu) / s, zero mean and unit variance under N(0, 1):
    ntkhess's ``nsoftplus`` (mu, s = NH_NSOFTPLUS_MU, NH_NSOFTPLUS_SD)."""
    ntkhess_act = "nsoftplus"

    def forward(self, x):
        return (F.softplus(x, beta=1.0, threshold=40.0) - NSOFTPLUS_MU) / NSOFTPLUS_SD


# Reference functions, used to check modules that declare ntkhess_act.
_REFERENCE = {
    "softplus": lambda z: F.softplus(z, beta=1.0, threshold=40.0),
    "nsoftplus": lambda z: (F.softplus(z, beta=1.0, threshold=40.0) - NSOFTPLUS_MU) / NSOFTPLUS_SD,
    "tanh": torch.tanh, "arctan": torch.atan, "erf": torch.erf, "sigmoid": torch.sigmoid,
    "gelu": lambda z: F.gelu(z), "sin": torch.sin, "relu": torch.relu, "identity": lambda z: z,
    "silu": F.silu, "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
}
_DEFAULT_PARAM = {"softplus": 1.0, "leaky_relu": 0.01}
_DROPOUTS = (nn.Dropout, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _fmt_act(name, param=None):
    """"name" or "name:param" (shortest round-trip float) as config.json wants."""
    if param is None or float(param) == _DEFAULT_PARAM.get(name):
        return name
    return "%s:%r" % (name, float(param))


def activation_spec(m):
    """The ntkhess activation string of module ``m`` ("tanh", "softplus:2.0",
    "leaky_relu:0.2", ...), or None if ``m`` is not an activation.

    Raises ValueError for an activation ntkhess cannot represent exactly
    (Softplus threshold < 20, GELU's tanh approximation, a module whose
    ``ntkhess_act`` is unknown or does not match its output)."""
    custom = getattr(m, "ntkhess_act", None)
    if isinstance(custom, str):
        if custom not in _REFERENCE:
            raise ValueError("%s declares ntkhess_act=%r, not an ntkhess activation (%s)"
                             % (type(m).__name__, custom, ", ".join(_REFERENCE)))
        z = torch.linspace(-6.0, 6.0, 97, dtype=torch.float64)
        with torch.no_grad():
            got = m(z)
        want = _REFERENCE[custom](z)
        if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-12, atol=1e-12):
            raise ValueError("%s declares ntkhess_act=%r but does not compute it (max diff %.3g on [-6, 6])"
                             % (type(m).__name__, custom, float((got - want).abs().max())))
        return custom
    if isinstance(m, nn.Softplus):
        beta = float(m.beta)
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError("nn.Softplus(beta=%g): ntkhess needs a finite beta > 0" % beta)
        if float(m.threshold) < 20.0:
            raise ValueError("nn.Softplus(threshold=%g): torch then returns x wherever beta x > %g, which "
                             "differs from log(1 + e^(beta x))/beta by more than 2e-9/beta; use threshold "
                             ">= 20" % (float(m.threshold), float(m.threshold)))
        return _fmt_act("softplus", beta)
    if isinstance(m, nn.LeakyReLU):
        return _fmt_act("leaky_relu", float(m.negative_slope))
    if isinstance(m, nn.GELU):
        approx = getattr(m, "approximate", "none")
        if approx != "none":
            raise ValueError("nn.GELU(approximate=%r): ntkhess's gelu is the exact x Phi(x); use "
                             "approximate='none'" % approx)
        return "gelu"
    table = ((nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid"), (nn.ReLU, "relu"), (nn.SiLU, "silu"))
    for cls, name in table:
        if type(m) is cls:
            return name
    return None


def _children(model):
    if isinstance(model, nn.Sequential):
        out = []
        for m in model.children():
            out.extend(_children(m))
        return out
    return [model]


def _refuse(i, m, why):
    raise ValueError("module %d (%s): %s.  Supported: %s." % (i, type(m).__name__, why, SUPPORTED))


def _softmax_dim_ok(m):
    return getattr(m, "dim", None) in (None, -1, 1)


def parse(model):
    """Parse ``model`` into a dict: "linears" (the nn.Linear modules),
    "acts" (L-1 activation strings), "flatten" (a leading nn.Flatten),
    "output" ("logits", "log_softmax" or "softmax"), "loss" ("ce" after a
    softmax, else None) and "notes" (what the import changes about the
    model's meaning).  Raises ValueError naming the first unsupported module."""
    if not isinstance(model, nn.Sequential):
        raise ValueError("expected an nn.Sequential (or a state dict with arch=), got %s.  Supported: %s."
                         % (type(model).__name__, SUPPORTED))
    mods = _children(model)
    if not mods:
        raise ValueError("empty nn.Sequential")
    linears, gaps, cur = [], [], []
    info = {"flatten": False, "output": "logits", "loss": None, "notes": []}
    dropouts = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            if linears:
                gaps.append(cur)
            elif cur:
                _refuse(cur[0][0], mods[cur[0][0]], "comes before the first nn.Linear")
            linears.append(m)
            cur = []
            continue
        if isinstance(m, nn.Flatten):
            if linears or cur or i != 0:
                _refuse(i, m, "nn.Flatten is accepted only as the first module")
            if m.start_dim != 1 or m.end_dim != -1:
                _refuse(i, m, "nn.Flatten(start_dim=%d, end_dim=%d): only the default (1, -1)"
                        % (m.start_dim, m.end_dim))
            info["flatten"] = True
            continue
        if isinstance(m, _DROPOUTS):
            dropouts.append(i)
            continue
        if type(m) is nn.Identity:
            continue
        if isinstance(m, (nn.LogSoftmax, nn.Softmax)):
            if not linears or i != len(mods) - 1 or cur:
                _refuse(i, m, "a softmax is accepted only as the last module, right after an nn.Linear")
            if not _softmax_dim_ok(m):
                _refuse(i, m, "softmax over dim=%r: only the last dimension" % m.dim)
            info["output"] = "log_softmax" if isinstance(m, nn.LogSoftmax) else "softmax"
            info["loss"] = "ce"
            info["notes"].append(
                "the trailing nn.%s (module %d) is dropped: the ntkhess network outputs the logits; use "
                "loss='ce' (softmax cross-entropy on the logits, mean over samples = torch's "
                "F.cross_entropy(logits, y) = NLLLoss on the log-softmax)" % (type(m).__name__, i))
            break
        try:
            name = activation_spec(m)
        except ValueError as e:
            _refuse(i, m, str(e))
        if name is None:
            _refuse(i, m, "not supported (ntkhess handles fully connected networks only)")
        if not linears:
            _refuse(i, m, "comes before the first nn.Linear")
        cur.append((i, name))
    if not linears:
        raise ValueError("no nn.Linear in the model.  Supported: %s." % SUPPORTED)
    if cur:
        _refuse(cur[0][0], mods[cur[0][0]], "an activation after the last nn.Linear: ntkhess networks output "
                "the last layer's preactivation (only a trailing LogSoftmax/Softmax is accepted there)")
    acts = []
    for g in gaps:
        if len(g) > 1:
            _refuse(g[1][0], mods[g[1][0]], "a second activation between two nn.Linear layers (modules %s)"
                    % [i for i, _ in g])
        acts.append(g[0][1] if g else "identity")
    for l in range(1, len(linears)):
        if linears[l].in_features != linears[l - 1].out_features:
            raise ValueError("nn.Linear %d has in_features %d but the previous layer has out_features %d"
                             % (l, linears[l].in_features, linears[l - 1].out_features))
    if dropouts:
        info["notes"].append("dropout (modules %s) is the identity: the analysis is that of the model in "
                             "eval mode" % dropouts)
    if info["flatten"]:
        info["notes"].append("the leading nn.Flatten is the caller's: pass inputs as X.reshape(N, -1)")
    info["linears"], info["acts"] = linears, acts
    return info


def linear_layers(model):
    """(list of nn.Linear, activation): the activation string when all
    hidden layers share one ("identity" for a single layer), else the list."""
    p = parse(model)
    acts = p["acts"]
    return p["linears"], (acts[0] if acts and len(set(acts)) == 1 else (acts or "identity"))


def _act_field(acts):
    """config.json's "act": one string when uniform, else the list."""
    if not acts:
        return "identity"
    return acts[0] if len(set(acts)) == 1 else list(acts)


def _with_arch(model, arch):
    """A module from ``model``, or from a state dict loaded into ``arch``."""
    if isinstance(model, dict):
        if arch is None:
            raise ValueError("a state dict holds no architecture: pass arch= (an nn.Sequential with the "
                             "same layers; its parameters are replaced), or save the module itself")
        import copy
        # float64 first: loading a float64 state dict into float32 would round
        m = copy.deepcopy(arch).to(torch.float64)
        m.load_state_dict(model)  # strict: names and shapes must match
        return m
    if arch is not None:
        raise ValueError("arch= is for state dicts; model is already a %s" % type(model).__name__)
    return model


def convert(model, param="standard", beta=0.1, arch=None):
    """(config dict, [W_l], [b_l or None], parse info) without writing.

    standard: the arrays as they are, b_l None where the Linear has no bias
    (config "bias" lists the flags).  ntk: W_l = sqrt(n_l) V_l, b_l = c_l /
    beta (zeros where there is no bias)."""
    model = _with_arch(model, arch)
    if param not in ("standard", "ntk"):
        raise ValueError("param must be 'standard' or 'ntk', got %r" % (param,))
    info = parse(model)
    linears = info["linears"]
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    Ws, bs = [], []
    beta = float(beta)
    if param == "ntk" and not math.isfinite(beta):
        raise ValueError("beta must be finite, got %r" % beta)
    for l, m in enumerate(linears):
        V = m.weight.detach().cpu().double().numpy()
        c = None if m.bias is None else m.bias.detach().cpu().double().numpy()
        if param == "standard":
            Ws.append(np.ascontiguousarray(V))
            bs.append(None if c is None else np.ascontiguousarray(c))
            continue
        Ws.append(np.ascontiguousarray(math.sqrt(widths[l]) * V))
        if c is None or (beta == 0.0 and not np.any(c)):
            bs.append(np.zeros(widths[l + 1]))
        elif beta == 0.0:
            raise ValueError("beta = 0 but nn.Linear %d has a non-zero bias: b = c / beta is undefined "
                             "(choose beta > 0, e.g. the default 0.1)" % l)
        else:
            bs.append(np.ascontiguousarray(c / beta))
    for l in range(len(Ws)):
        if not (np.all(np.isfinite(Ws[l])) and (bs[l] is None or np.all(np.isfinite(bs[l])))):
            raise ValueError("layer %d has non-finite parameters" % l)
    cfg = {"widths": widths, "act": _act_field(info["acts"]), "param": param}
    if param == "ntk":
        cfg["beta"] = beta
        plain = len(set(info["acts"])) <= 1 and all(":" not in a for a in info["acts"])
        if not plain or any(b is None for b in (m.bias for m in linears)):
            info["notes"].append("param='ntk': mixed activations, activation parameters or bias-free layers "
                                 "are outside what the infinite-width theory describes (one default "
                                 "activation, all biases); the finite-width results are still exact")
    else:
        flags = [b is not None for b in bs]
        if not all(flags):
            cfg["bias"] = flags
    cfg["P"] = sum(W.size + (0 if b is None else b.size) for W, b in zip(Ws, bs))
    return cfg, Ws, bs, info


def _write_dir(cfg, Ws, bs, out_dir):
    """config.json last (atomically), so an interrupted import never leaves
    a loadable half-model; stale b_l.npy of bias-free layers are removed."""
    os.makedirs(out_dir, exist_ok=True)
    cfg_path = os.path.join(out_dir, "config.json")
    if os.path.exists(cfg_path):
        os.remove(cfg_path)
    for l, (W, b) in enumerate(zip(Ws, bs)):
        np.save(os.path.join(out_dir, "W%d.npy" % l), W)
        bp = os.path.join(out_dir, "b%d.npy" % l)
        if b is None:
            if os.path.exists(bp):
                os.remove(bp)
        else:
            np.save(bp, b)
    tmp = cfg_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(cfg, fh)
        fh.write("\n")
    os.replace(tmp, cfg_path)


def _notify(info):
    for n in info["notes"]:
        if not n.startswith("the leading nn.Flatten"):
            warnings.warn("ntkhess.from_torch: " + n, TorchImportWarning, stacklevel=3)


def save(model, out_dir, param="standard", beta=0.1, arch=None):
    """Write ``model`` as an ntkhess model directory (config.json, W{l}.npy,
    b{l}.npy, float64).  Returns the config dict, plus "notes" and "loss"
    (what :func:`parse` found)."""
    cfg, Ws, bs, info = convert(model, param, beta, arch)
    _write_dir(cfg, Ws, bs, out_dir)
    _notify(info)
    return dict(cfg, notes=info["notes"], loss=info["loss"])


def from_torch(model, param="standard", beta=0.1, arch=None):
    """An :class:`ntkhess.Net` computing what ``model`` computes.

    param="standard" (default): the model itself -- theta is
    ``torch.cat([p.flatten() for p in model.parameters()])`` and every result
    (grad, H v, eigenvalues, traces) is that of the model's own loss in its
    own parameters; ``beta`` plays no role.  param="ntk": the same function in
    the NTK parametrization with bias scale ``beta`` (for comparisons with the
    infinite-width theory; its Hessian is D^-1 H D^-1, see the module doc).
    ``model`` may be a state dict when ``arch`` is the architecture.

    The returned net carries ``net.torch_info``: {"notes": [...], "loss":
    "ce" after a trailing softmax else None, "flatten": bool, "output"}; the
    notes are also issued as :class:`TorchImportWarning`.  Dropout counts as
    the identity (eval mode).
    """
    from .network import Net
    cfg, Ws, bs, info = convert(model, param, beta, arch)
    L = len(Ws)
    acts = cfg["act"] if isinstance(cfg["act"], list) else [cfg["act"]] * (L - 1)
    net = Net(cfg["widths"], act=acts if len(set(acts)) > 1 else (acts[0] if acts else "identity"),
              beta=cfg.get("beta", 0.1), param=param, seed=None,
              bias=[b is not None for b in bs])
    parts = []
    for W, b in zip(Ws, bs):
        parts.append(W.ravel())
        if b is not None:
            parts.append(b)
    net.set_params(np.concatenate(parts))
    net.torch_info = {k: info[k] for k in ("notes", "loss", "flatten", "output")}
    _notify(info)
    return net


# --------------------------------------------------------------- reverse

def _parse_act(spec):
    name, _, p = str(spec).partition(":")
    return name, (float(p) if p else _DEFAULT_PARAM.get(name))


def load_model_dir(model_dir):
    """(config dict with defaults filled in, [W_l], [b_l or None]) from a
    model directory, with NumPy only (no libntkhess needed).  The config's
    "acts" holds the L-1 activation strings."""
    with open(os.path.join(model_dir, "config.json")) as fh:
        raw = json.load(fh)
    widths = [int(w) for w in raw["widths"]]
    L = len(widths) - 1
    acts = raw["act"] if isinstance(raw["act"], list) else [raw["act"]] * (L - 1)
    if len(acts) != L - 1:
        raise ValueError("%s: 'act' lists %d activations, the widths need %d" % (model_dir, len(acts), L - 1))
    bias = [bool(b) for b in raw.get("bias", [True] * L)]
    cfg = {"widths": widths, "act": raw["act"], "acts": list(acts), "beta": float(raw.get("beta", 0.1)),
           "param": raw.get("param", "ntk"), "bias": bias}
    Ws, bs = [], []
    for l in range(L):
        W = np.load(os.path.join(model_dir, "W%d.npy" % l)).astype(np.float64)
        if W.shape != (widths[l + 1], widths[l]):
            raise ValueError("%s: W%d has shape %s, expected (%d, %d)"
                             % (model_dir, l, W.shape, widths[l + 1], widths[l]))
        Ws.append(W)
        if not bias[l]:
            bs.append(None)
            continue
        b = np.load(os.path.join(model_dir, "b%d.npy" % l)).astype(np.float64).reshape(-1)
        if b.shape != (widths[l + 1],):
            raise ValueError("%s: b%d has shape %s, expected (%d,)" % (model_dir, l, b.shape, widths[l + 1]))
        bs.append(b)
    return cfg, Ws, bs


def _out_scale(cfg):
    w = cfg["widths"]
    return 1.0 / math.sqrt(w[-2]) if cfg.get("param", "ntk") == "mf" else 1.0


def _act_module(spec):
    name, p = _parse_act(spec)
    table = {"softplus": lambda: nn.Softplus(beta=p, threshold=40.0), "tanh": nn.Tanh,
             "sigmoid": nn.Sigmoid, "gelu": lambda: nn.GELU(), "relu": nn.ReLU, "identity": nn.Identity,
             "arctan": Arctan, "erf": Erf, "sin": Sin, "nsoftplus": NSoftplus, "silu": nn.SiLU,
             "leaky_relu": lambda: nn.LeakyReLU(p)}
    if name not in table:
        raise ValueError("unknown activation %r" % spec)
    return table[name]()


def to_torch(net, dtype=torch.float64):
    """An nn.Sequential computing the same f as ``net`` (an ntkhess.Net or a
    model directory).  Standard parametrization: the arrays as they are.
    NTK / mean field: V_l = W_l / sqrt(n_l), c_l = beta b_l (the mean-field
    last layer also carries 1/sqrt(n_{L-1})).  Softplus is exported with
    threshold=40 (exact in float64)."""
    if isinstance(net, (str, bytes, os.PathLike)):
        cfg, Ws, bs = load_model_dir(net)
    else:
        cfg = {"widths": list(net.widths), "acts": net.acts, "beta": net.beta, "param": net.param}
        Ws = [net.W(l).copy() for l in range(net.depth)]
        bs = [net.b(l).copy() if has else None for l, has in enumerate(net.bias)]
    w, L, std = cfg["widths"], len(cfg["widths"]) - 1, cfg["param"] == "standard"
    mods = []
    for l in range(L):
        lin = nn.Linear(w[l], w[l + 1], bias=bs[l] is not None).to(dtype)
        s = _out_scale(cfg) if l == L - 1 else 1.0
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(Ws[l] if std else Ws[l] * (s / math.sqrt(w[l]))))
            if bs[l] is not None:
                lin.bias.copy_(torch.from_numpy(bs[l] if std else bs[l] * (s * cfg["beta"])))
        mods.append(lin)
        if l < L - 1:
            mods.append(_act_module(cfg["acts"][l]))
    return nn.Sequential(*mods)


def scaling(cfg):
    """D (length P, ntkhess parameter order) with theta_ntk = D * theta_torch
    for an NTK or mean-field config: sqrt(n_l) on W_l, 1/beta on b_l (for "mf"
    the last layer's entries are also divided by 1/sqrt(n_{L-1})).  Then
    grad_torch = D * grad_ntk and H_torch v = D * (H_ntk (D * v)).  A
    standard config gives D = 1."""
    w, beta = cfg["widths"], float(cfg.get("beta", 0.1))
    L = len(w) - 1
    if cfg.get("param", "ntk") == "standard":
        flags = cfg.get("bias") or [True] * L
        return np.ones(sum(w[l + 1] * (w[l] + (1 if flags[l] else 0)) for l in range(L)))
    if beta == 0.0:
        raise ValueError("beta = 0: the biases have no ntkhess counterpart (d f / d b = 0)")
    parts = []
    for l in range(L):
        s = _out_scale(cfg) if l == L - 1 else 1.0
        parts.append(np.full(w[l + 1] * w[l], math.sqrt(w[l]) / s))
        parts.append(np.full(w[l + 1], 1.0 / (beta * s)))
    return np.concatenate(parts)


def flat_params(model):
    """The NTK-import layout of the Linear parameters as a float64 vector
    (W_0, b_0, W_1, ...; a missing bias contributes zeros) and the boolean
    mask of the entries that are real torch parameters.  (The standard import
    is simply torch.cat([p.flatten() for p in model.parameters()]).)"""
    vals, mask = [], []
    for m in parse(model)["linears"]:
        vals.append(m.weight.detach().cpu().double().numpy().ravel())
        mask.append(np.ones(m.weight.numel(), dtype=bool))
        if m.bias is None:
            vals.append(np.zeros(m.out_features))
            mask.append(np.zeros(m.out_features, dtype=bool))
        else:
            vals.append(m.bias.detach().cpu().double().numpy())
            mask.append(np.ones(m.out_features, dtype=bool))
    return np.concatenate(vals), np.concatenate(mask)


# Earlier names (scripts/torch_import.py), NTK mapping by default as before.
def sequential_to_ntkhess(model, beta=0.1):
    """NTK mapping without writing: (config, [W_l], [b_l])."""
    cfg, Ws, bs, _ = convert(model, "ntk", beta)
    return cfg, Ws, bs


def import_sequential(model, out_dir, beta=0.1, param="ntk"):
    """Write a model directory; NTK mapping by default (the earlier
    behaviour; :func:`save` defaults to the standard parametrization)."""
    return save(model, out_dir, param, beta)


export_sequential = to_torch


def _torch_load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch without the weights_only argument
        return torch.load(path, map_location="cpu")


def _arch_from_expr(expr):
    """--arch: a Python expression over torch.nn's names and this module's
    activations (the user's own command line, evaluated as code)."""
    ns = {k: getattr(nn, k) for k in dir(nn) if not k.startswith("_")}
    ns.update({"nn": nn, "torch": torch, "Arctan": Arctan, "Erf": Erf, "Sin": Sin, "NSoftplus": NSoftplus})
    m = eval(expr, ns)  # noqa: S307 - the caller's own architecture expression
    if not isinstance(m, nn.Module):
        raise ValueError("--arch %r is a %s, not an nn.Module" % (expr, type(m).__name__))
    return m


def main(argv=None, default_param="standard", prog=None):
    ap = argparse.ArgumentParser(
        prog=prog or "python3 -m ntkhess.torch",
        description="Import a PyTorch nn.Sequential MLP (torch.save(model, path), or a state dict with "
                    "--arch) into an ntkhess model directory, or export a model directory (--reverse).",
        epilog="--param standard (default): the model itself, theta = torch.cat([p.flatten() for p in "
               "model.parameters()]).  --param ntk: the same function in the NTK parametrization "
               "(W_l = sqrt(n_l) V_l, b_l = c_l / beta), for comparisons with the theory only: its "
               "Hessian is not the model's.  Dropout is the identity (eval mode); a trailing "
               "LogSoftmax/Softmax is dropped (use --loss ce).  Supported: " + SUPPORTED + ".")
    ap.add_argument("src", help="MODEL.pt (import) or MODEL_DIR (--reverse)")
    ap.add_argument("dst", help="OUT_DIR (import) or OUT.pt (--reverse)")
    ap.add_argument("--param", choices=("standard", "ntk"), default=default_param,
                    help="parametrization of the imported network (default %s)" % default_param)
    ap.add_argument("--beta", type=float, default=0.1, help="with --param ntk: bias scale beta (default 0.1)")
    ap.add_argument("--arch", metavar="EXPR",
                    help="when MODEL.pt is a state dict: the architecture as a Python expression over "
                         "torch.nn names, e.g. \"Sequential(Linear(3, 50), Tanh(), Linear(50, 1))\"")
    ap.add_argument("--reverse", action="store_true", help="model directory -> torch.save(nn.Sequential)")
    ap.add_argument("--float32", action="store_true", help="with --reverse: float32 parameters")
    a = ap.parse_args(argv)
    tag = ap.prog.split()[-1]
    try:
        if a.reverse:
            model = to_torch(a.src, torch.float32 if a.float32 else torch.float64)
            torch.save(model, a.dst)
            print("%s: wrote %s (%s)" % (tag, a.dst, model), file=sys.stderr)
            return 0
        model = _torch_load(a.src)
        arch = _arch_from_expr(a.arch) if a.arch else None
        if isinstance(model, dict) and arch is None:
            raise ValueError("%s holds a state dict, not a module: give its architecture with --arch "
                             "\"Sequential(...)\" or save the module itself (torch.save(model, path))" % a.src)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TorchImportWarning)  # printed below instead
            cfg = save(model, a.dst, a.param, a.beta, arch)
    except (ValueError, OSError, KeyError, RuntimeError, SyntaxError, NameError, TypeError) as e:
        print("%s: error: %s" % (tag, e), file=sys.stderr)
        return 1
    extra = (", beta %g" % cfg["beta"]) if a.param == "ntk" else ""
    print("%s: wrote %s (param %s, widths %s, act %s%s, P = %d)"
          % (tag, a.dst, a.param, cfg["widths"], cfg["act"], extra, cfg["P"]), file=sys.stderr)
    for n in cfg["notes"]:
        print("%s: note: %s" % (tag, n), file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run through the importable module so that pickles of Arctan, Erf, ...
    # refer to ntkhess.torch.<class>, loadable wherever ntkhess is.
    from ntkhess import torch as _self
    sys.exit(_self.main())
