#!/usr/bin/python3
"""Import a PyTorch MLP (nn.Sequential of nn.Linear and one activation) into an
ntkhess model directory, and export a model directory back to nn.Sequential.

Usage
-----
    /usr/bin/python3 scripts/torch_import.py MODEL.pt OUT_DIR [--beta B]
    /usr/bin/python3 scripts/torch_import.py --reverse MODEL_DIR OUT.pt [--float32]

MODEL.pt is a whole module saved with ``torch.save(model, "MODEL.pt")`` (not a
state dict).  OUT_DIR receives config.json and W0.npy, b0.npy, ... (float64),
readable by ``ntkhess curvature --model OUT_DIR`` and ``ntkhess.Net.load``.
``--reverse`` writes ``torch.save(nn.Sequential)`` of a model directory.  As a
module::

    sys.path.insert(0, "scripts"); import torch_import as ti
    cfg = ti.import_sequential(model, "out_dir", beta=0.1)   # writes the directory
    cfg, Ws, bs = ti.sequential_to_ntkhess(model, beta=0.1)  # arrays only
    model2 = ti.export_sequential("out_dir")                 # the reverse
    D = ti.scaling(cfg)                                      # theta_ntk = D * theta_torch

The mapping (docs/python.md derives it)
---------------------------------------
A standard ``nn.Linear(n_l, n_{l+1})`` with weight V_l and bias c_l computes
``V_l a + c_l``; ntkhess's layer l computes ``W_l a / sqrt(n_l) + beta b_l``.
They agree for every input iff

    W_l = sqrt(n_l) V_l,        b_l = c_l / beta,

i.e. theta_ntk = D theta_torch with D diagonal: sqrt(n_l) on the entries of
W_l, 1/beta on those of b_l (parameter order: W_0 row-major, b_0, W_1, b_1, ...
in both).  With C_torch(theta) = C_ntk(D theta):

    grad_torch = D grad_ntk,      H_torch = D H_ntk D,
    H_torch v = D (H_ntk (D v))   (a torch direction v maps to D v).

Supported architectures
-----------------------
``Linear, act, Linear, act, ..., Linear``: the last module is a Linear (the
network output has no nonlinearity), the same activation between every pair
of Linears (none at all means ``identity``), consecutive widths match; nested
nn.Sequential containers are flattened.  Activations:

    nn.Softplus(beta=1, threshold>=20)  -> softplus  (torch returns x above the
        threshold; ntkhess's log(1+e^x) differs there by log1p(e^-x) <= 2.1e-9
        at x = 20, below 1 ulp beyond x ~ 37: keep preactivations under the
        threshold, or use threshold=40 as export_sequential does)
    nn.Tanh -> tanh, nn.Sigmoid -> sigmoid, nn.GELU(approximate='none') -> gelu,
    nn.ReLU -> relu (sigma'' = 0 in both autograd and ntkhess), nn.Identity ->
    identity, and any module with a string attribute ``ntkhess_act``: the
    classes Arctan, Erf, Sin, NSoftplus below (checked numerically against
    the named function on import).

Refused, with a message: other modules (Conv, Dropout, BatchNorm, Flatten,
...), mixed or repeated activations, an activation after the last Linear,
Softplus with beta != 1 or threshold < 20, the tanh approximation of GELU,
beta = 0 with a non-zero bias.  A Linear without bias imports with b = 0.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NSOFTPLUS_MU = 0.8060591833474398  # NH_NSOFTPLUS_MU (include/ntkhess.h)
NSOFTPLUS_SD = 0.5210705343814393  # NH_NSOFTPLUS_SD

__all__ = ["Arctan", "Erf", "Sin", "NSoftplus", "activation_name", "sequential_to_ntkhess",
           "import_sequential", "export_sequential", "load_model_dir", "scaling", "linear_layers",
           "flat_params", "main"]


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
}


def activation_name(m):
    """The ntkhess name of an activation module, None if ``m`` is not one.

    Raises ValueError for an activation ntkhess cannot represent exactly
    (Softplus with beta != 1 or threshold < 20, GELU's tanh approximation, a
    module whose ``ntkhess_act`` is unknown or does not match its output).
    """
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
        if float(m.beta) != 1.0:
            raise ValueError("nn.Softplus(beta=%g): ntkhess's softplus is log(1 + e^x), beta = 1 only"
                             % float(m.beta))
        if float(m.threshold) < 20.0:
            raise ValueError("nn.Softplus(threshold=%g): thresholds below 20 make torch's softplus differ "
                             "from log(1 + e^x) by more than 2e-9; use threshold >= 20" % float(m.threshold))
        return "softplus"
    if isinstance(m, nn.GELU):
        approx = getattr(m, "approximate", "none")
        if approx != "none":
            raise ValueError("nn.GELU(approximate=%r): ntkhess's gelu is the exact x Phi(x); use "
                             "approximate='none'" % approx)
        return "gelu"
    table = ((nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid"), (nn.ReLU, "relu"), (nn.Identity, "identity"))
    for cls, name in table:
        if type(m) is cls:
            return name
    return None


def _flatten(model):
    if isinstance(model, nn.Sequential):
        out = []
        for m in model.children():
            out.extend(_flatten(m))
        return out
    return [model]


def linear_layers(model):
    """Parse ``model`` into (list of nn.Linear, activation name).

    Raises ValueError (with the offending module) for anything that does not
    fit ``Linear (act Linear)*`` with one activation throughout."""
    if not isinstance(model, nn.Sequential):
        raise ValueError("expected an nn.Sequential, got %s" % type(model).__name__)
    mods = _flatten(model)
    if not mods:
        raise ValueError("empty nn.Sequential")
    linears, gaps, cur = [], [], []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            if linears:
                gaps.append(cur)
            elif cur:
                raise ValueError("module %d (%s) comes before the first nn.Linear; the network must start "
                                 "with nn.Linear" % (i, type(m).__name__))
            linears.append(m)
            cur = []
            continue
        name = activation_name(m)
        if name is None:
            raise ValueError("module %d (%s) is neither nn.Linear nor a supported activation (ntkhess "
                             "handles fully connected networks only)" % (i, type(m).__name__))
        if not linears:
            raise ValueError("module %d (%s) comes before the first nn.Linear" % (i, type(m).__name__))
        cur.append((i, name))
    if cur:
        raise ValueError("the network ends with an activation (%s, module %d); ntkhess networks have no "
                         "output nonlinearity: the last module must be nn.Linear"
                         % (type(mods[cur[0][0]]).__name__, cur[0][0]))
    names = set()
    for g in gaps:
        if len(g) > 1:
            raise ValueError("modules %s: more than one activation between two nn.Linear layers"
                             % [i for i, _ in g])
        names.add(g[0][1] if g else "identity")
    if len(names) > 1:
        raise ValueError("mixed activations %s; ntkhess uses one nonlinearity in every hidden layer"
                         % sorted(names))
    act = names.pop() if names else "identity"
    for l in range(1, len(linears)):
        if linears[l].in_features != linears[l - 1].out_features:
            raise ValueError("nn.Linear %d has in_features %d but the previous layer has out_features %d"
                             % (l, linears[l].in_features, linears[l - 1].out_features))
    return linears, act


def sequential_to_ntkhess(model, beta=0.1):
    """Convert without writing: returns (config dict, [W_l], [b_l]) with
    W_l = sqrt(n_l) V_l and b_l = c_l / beta as float64 arrays."""
    beta = float(beta)
    if not math.isfinite(beta):
        raise ValueError("beta must be finite, got %r" % beta)
    linears, act = linear_layers(model)
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    Ws, bs = [], []
    for l, m in enumerate(linears):
        V = m.weight.detach().cpu().double().numpy()
        Ws.append(np.ascontiguousarray(math.sqrt(widths[l]) * V))
        if m.bias is None:
            bs.append(np.zeros(widths[l + 1]))
            continue
        c = m.bias.detach().cpu().double().numpy()
        if beta == 0.0:
            if np.any(c != 0):
                raise ValueError("beta = 0 but nn.Linear %d has a non-zero bias: b = c / beta is undefined "
                                 "(choose beta > 0, e.g. the default 0.1)" % l)
            bs.append(np.zeros(widths[l + 1]))
        else:
            bs.append(np.ascontiguousarray(c / beta))
    for l in range(len(Ws)):
        if not (np.all(np.isfinite(Ws[l])) and np.all(np.isfinite(bs[l]))):
            raise ValueError("layer %d has non-finite parameters" % l)
    cfg = {"widths": widths, "act": act, "beta": beta, "param": "ntk"}
    return cfg, Ws, bs


def import_sequential(model, out_dir, beta=0.1):
    """Write ``model`` as an ntkhess model directory (config.json last, so an
    interrupted import never leaves a loadable half-model).  Returns the
    config dict (with "P")."""
    cfg, Ws, bs = sequential_to_ntkhess(model, beta)
    os.makedirs(out_dir, exist_ok=True)
    cfg_path = os.path.join(out_dir, "config.json")
    if os.path.exists(cfg_path):
        os.remove(cfg_path)
    for l, (W, b) in enumerate(zip(Ws, bs)):
        np.save(os.path.join(out_dir, "W%d.npy" % l), W)
        np.save(os.path.join(out_dir, "b%d.npy" % l), b)
    w = cfg["widths"]
    cfg["P"] = sum((w[l] + 1) * w[l + 1] for l in range(len(w) - 1))
    tmp = cfg_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(cfg, fh)
        fh.write("\n")
    os.replace(tmp, cfg_path)
    return cfg


def load_model_dir(model_dir):
    """(config dict with defaults filled in, [W_l], [b_l]) from a model
    directory, with NumPy only (no libntkhess needed)."""
    with open(os.path.join(model_dir, "config.json")) as fh:
        cfg = json.load(fh)
    widths = [int(w) for w in cfg["widths"]]
    cfg = {"widths": widths, "act": cfg["act"], "beta": float(cfg.get("beta", 0.1)),
           "param": cfg.get("param", "ntk")}
    Ws, bs = [], []
    for l in range(len(widths) - 1):
        W = np.load(os.path.join(model_dir, "W%d.npy" % l)).astype(np.float64)
        b = np.load(os.path.join(model_dir, "b%d.npy" % l)).astype(np.float64).reshape(-1)
        if W.shape != (widths[l + 1], widths[l]) or b.shape != (widths[l + 1],):
            raise ValueError("%s: W%d/b%d have shapes %s/%s, expected (%d, %d)/(%d,)"
                             % (model_dir, l, l, W.shape, b.shape, widths[l + 1], widths[l], widths[l + 1]))
        Ws.append(W)
        bs.append(b)
    return cfg, Ws, bs


def _out_scale(cfg):
    w = cfg["widths"]
    return 1.0 / math.sqrt(w[-2]) if cfg.get("param", "ntk") == "mf" else 1.0


def _act_module(name):
    table = {"softplus": lambda: nn.Softplus(beta=1.0, threshold=40.0), "tanh": nn.Tanh,
             "sigmoid": nn.Sigmoid, "gelu": lambda: nn.GELU(), "relu": nn.ReLU, "identity": nn.Identity,
             "arctan": Arctan, "erf": Erf, "sin": Sin, "nsoftplus": NSoftplus}
    if name not in table:
        raise ValueError("unknown activation %r" % name)
    return table[name]()


def export_sequential(model_dir, dtype=torch.float64):
    """The reverse: an nn.Sequential computing the same f as the model
    directory (V_l = W_l / sqrt(n_l), c_l = beta b_l; for the mean-field
    parametrization the last layer also carries 1/sqrt(n_{L-1}))."""
    cfg, Ws, bs = load_model_dir(model_dir)
    w, beta, L = cfg["widths"], cfg["beta"], len(cfg["widths"]) - 1
    mods = []
    for l in range(L):
        lin = nn.Linear(w[l], w[l + 1], bias=True).to(dtype)
        s = _out_scale(cfg) if l == L - 1 else 1.0
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(Ws[l] * (s / math.sqrt(w[l]))))
            lin.bias.copy_(torch.from_numpy(bs[l] * (s * beta)))
        mods.append(lin)
        if l < L - 1:
            mods.append(_act_module(cfg["act"]))
    return nn.Sequential(*mods)


def scaling(cfg):
    """D (length P, ntkhess parameter order) with theta_ntk = D * theta_torch:
    sqrt(n_l) on W_l, 1/beta on b_l (for "mf" the last layer's entries are
    also divided by out_scale = 1/sqrt(n_{L-1})).  Then grad_torch =
    D * grad_ntk and H_torch v = D * (H_ntk (D * v))."""
    w, beta = cfg["widths"], float(cfg.get("beta", 0.1))
    if beta == 0.0:
        raise ValueError("beta = 0: the biases have no ntkhess counterpart (d f / d b = 0)")
    L = len(w) - 1
    parts = []
    for l in range(L):
        s = _out_scale(cfg) if l == L - 1 else 1.0
        parts.append(np.full(w[l + 1] * w[l], math.sqrt(w[l]) / s))
        parts.append(np.full(w[l + 1], 1.0 / (beta * s)))
    return np.concatenate(parts)


def flat_params(model):
    """torch parameters of the Linear layers in ntkhess order, as a float64
    NumPy vector of length P (a missing bias contributes zeros), and the
    boolean mask of the entries that are real torch parameters."""
    linears, _ = linear_layers(model)
    vals, mask = [], []
    for m in linears:
        vals.append(m.weight.detach().cpu().double().numpy().ravel())
        mask.append(np.ones(m.weight.numel(), dtype=bool))
        if m.bias is None:
            vals.append(np.zeros(m.out_features))
            mask.append(np.zeros(m.out_features, dtype=bool))
        else:
            vals.append(m.bias.detach().cpu().double().numpy())
            mask.append(np.ones(m.out_features, dtype=bool))
    return np.concatenate(vals), np.concatenate(mask)


def _torch_load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch without the weights_only argument
        return torch.load(path, map_location="cpu")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Import a torch nn.Sequential MLP (saved with torch.save(model, path)) into an "
                    "ntkhess model directory, or export a model directory (--reverse).",
        epilog="Mapping: W_l = sqrt(n_l) V_l, b_l = c_l / beta (docs/python.md).")
    ap.add_argument("src", help="MODEL.pt (import) or MODEL_DIR (--reverse)")
    ap.add_argument("dst", help="OUT_DIR (import) or OUT.pt (--reverse)")
    ap.add_argument("--beta", type=float, default=0.1, help="ntkhess bias scale beta (default 0.1)")
    ap.add_argument("--reverse", action="store_true", help="model directory -> torch.save(nn.Sequential)")
    ap.add_argument("--float32", action="store_true", help="with --reverse: float32 parameters")
    a = ap.parse_args(argv)
    try:
        if a.reverse:
            model = export_sequential(a.src, torch.float32 if a.float32 else torch.float64)
            torch.save(model, a.dst)
            print("torch_import: wrote %s (%s)" % (a.dst, model), file=sys.stderr)
            return 0
        model = _torch_load(a.src)
        if isinstance(model, dict):
            raise ValueError("%s holds a state dict, not a module: save the module itself "
                             "(torch.save(model, path)) or call import_sequential from Python" % a.src)
        cfg = import_sequential(model, a.dst, a.beta)
    except (ValueError, OSError, KeyError) as e:
        print("torch_import: error: %s" % e, file=sys.stderr)
        return 1
    print("torch_import: wrote %s (widths %s, act %s, beta %g, P = %d)"
          % (a.dst, cfg["widths"], cfg["act"], cfg["beta"], cfg["P"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run through the importable module so that pickles of Arctan, Erf, ...
    # refer to torch_import.<class>, loadable wherever torch_import is.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_import as _self
    sys.exit(_self.main())
