#!/usr/bin/python3
"""Tests of the NTK mapping of ntkhess.torch (python -m ntkhess.torch --param ntk,
and the scripts/torch_import.py shim that keeps it as its default):
PyTorch nn.Sequential <-> ntkhess model directory in the NTK parametrization.
(The default, standard-parametrization import is tested in test_torch_user.py.)

Random float64 nn.Sequential MLPs (depth 1-4, every supported activation,
PyTorch's default initialization, with and without biases, nested containers,
several beta) are imported; then, on the ORIGINAL torch model:

* outputs: ntkhess's f(X) (Python binding) = model(X) to 1e-12 relative;
* gradient of the MSE loss C = (1/2N) sum_i ||f(x_i) - y_i||^2 (ntkhess's
  convention; note nn.MSELoss differs): torch autograd = D grad_ntk;
* Hessian-vector products: torch's double-backward H_torch v equals
  D (H_ntk (D v)) with theta_ntk = D theta_torch, D = sqrt(n_l) on W_l and
  1/beta on b_l, to 1e-10 relative, computed by the binding and, for some
  nets, by `ntkhess curvature --hvp` on the imported directory; the other
  direction H_ntk u = D^-1 H_torch D^-1 u too;
* dense Hessians of small nets: torch.autograd.functional.hessian = D H_ntk D;
* the reverse export (model dir -> nn.Sequential) reproduces f, also for a
  mean-field model made by `ntkhess init --param mf`;
* the script's command line, and every refusal (mixed / repeated / trailing
  activations, non-Linear modules, Softplus beta or threshold, GELU tanh,
  beta = 0 with a bias, width mismatch, state dicts).

Both sides are float64 evaluations of the same functions, so agreement is
~1e-15; the bars are those of the issue (1e-12 outputs, 1e-10 products).
Prints FAIL lines (PASS with NH_TEST_VERBOSE=1) and 'N passed, N failed'.
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import BIN, LIB, ROOT, asan_reexec, import_binding, check, close, finish, rel, run, section  # noqa: E402

BIN = os.path.abspath(BIN)
LIB = os.path.abspath(LIB)
SHIM = os.path.join(ROOT, "scripts", "torch_import.py")
OUT_TOL, HVP_TOL = 1e-12, 1e-10

asan_reexec(LIB)

# Missing pieces fail visibly (no skipping).
try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as e:
    check(False, "import numpy and torch", "(%s; Debian python3-numpy, python3-torch; use /usr/bin/python3)" % e)
    finish()
nh, ti = import_binding(with_torch=True)

import warnings  # noqa: E402
warnings.simplefilter("ignore", ti.TorchImportWarning)  # the notes are tested in test_torch_user.py
torch.set_default_dtype(torch.float64)
TMP = tempfile.mkdtemp(prefix="nh_test_torch_import_")
PYENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))


def pymod(*args, **kw):
    """python3 -m ntkhess.torch ARGS"""
    return run([sys.executable, "-m", "ntkhess.torch", *args], env=kw.pop("env", PYENV), **kw)


def torch_loss(model, X, T):
    """ntkhess's MSE: C = (1/N) sum_i 1/2 ||f(x_i) - y_i||^2."""
    return 0.5 * ((model(X) - T) ** 2).sum() / X.shape[0]


def to_ntk_order(model, tensors):
    """Per-parameter tensors (model.parameters() order) -> a P-vector in
    ntkhess order, zeros where a Linear has no bias."""
    linears, _ = ti.linear_layers(model)
    it = dict(zip([id(p) for p in model.parameters()], tensors))
    out = []
    for m in linears:
        out.append(it[id(m.weight)].detach().numpy().ravel())
        out.append(it[id(m.bias)].detach().numpy() if m.bias is not None else np.zeros(m.out_features))
    return np.concatenate(out)


def from_ntk_order(model, vec):
    """A P-vector in ntkhess order -> tensors in model.parameters() order."""
    linears, _ = ti.linear_layers(model)
    pieces, off = {}, 0
    for m in linears:
        n = m.weight.numel()
        pieces[id(m.weight)] = torch.from_numpy(vec[off:off + n].reshape(m.weight.shape).copy())
        off += n
        if m.bias is not None:
            pieces[id(m.bias)] = torch.from_numpy(vec[off:off + m.out_features].copy())
        off += m.out_features
    return [pieces[id(p)] for p in model.parameters()]


def torch_hvp(model, X, T, v_vec):
    params = list(model.parameters())
    loss = torch_loss(model, X, T)
    g = torch.autograd.grad(loss, params, create_graph=True)
    vs = from_ntk_order(model, v_vec)
    dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
    hv = torch.autograd.grad(dot, params)
    return to_ntk_order(model, [gi.detach() for gi in g]), to_ntk_order(model, hv)


def seq(*mods):
    return nn.Sequential(*mods)


def build(kind, seed):
    torch.manual_seed(seed)
    L = nn.Linear
    return {
        "d1-linear": lambda: seq(L(5, 3)),
        "d2-softplus": lambda: seq(L(4, 16), nn.Softplus(), L(16, 2)),
        "d3-tanh": lambda: seq(L(3, 12), nn.Tanh(), L(12, 10), nn.Tanh(), L(10, 1)),
        "d4-gelu": lambda: seq(L(4, 8), nn.GELU(), L(8, 8), nn.GELU(), L(8, 6), nn.GELU(), L(6, 3)),
        "d2-sigmoid": lambda: seq(L(6, 9), nn.Sigmoid(), L(9, 2)),
        "d3-arctan": lambda: seq(L(3, 7), ti.Arctan(), L(7, 7), ti.Arctan(), L(7, 2)),
        "d3-erf": lambda: seq(L(4, 6), ti.Erf(), L(6, 5), ti.Erf(), L(5, 1)),
        "d2-sin": lambda: seq(L(2, 11), ti.Sin(), L(11, 3)),
        "d4-nsoftplus": lambda: seq(L(3, 5), ti.NSoftplus(), L(5, 6), ti.NSoftplus(), L(6, 4), ti.NSoftplus(),
                                    L(4, 2)),
        "d3-relu": lambda: seq(L(5, 9), nn.ReLU(), L(9, 8), nn.ReLU(), L(8, 2)),
        "d2-identity": lambda: seq(L(3, 4), nn.Identity(), L(4, 2)),
        "d3-no-act": lambda: seq(L(3, 4), L(4, 5), L(5, 2)),
        "d3-nobias": lambda: seq(L(4, 6, bias=False), nn.Tanh(), L(6, 5), nn.Tanh(), L(5, 2, bias=False)),
        "d3-nested": lambda: seq(seq(L(3, 6), nn.Softplus(threshold=40.0)), seq(L(6, 6), nn.Softplus()),
                                 L(6, 2)),
    }[kind]()


CASES = [("d1-linear", 0.1), ("d2-softplus", 0.1), ("d3-tanh", 0.5), ("d4-gelu", 0.1), ("d2-sigmoid", 1.0),
         ("d3-arctan", 0.1), ("d3-erf", 0.2), ("d2-sin", 0.1), ("d4-nsoftplus", 0.1), ("d3-relu", 0.1),
         ("d2-identity", 0.3), ("d3-no-act", 0.1), ("d3-nobias", 0.1), ("d3-nested", 0.25)]
CLI_CASES = {"d3-tanh", "d4-gelu", "d3-nobias"}
EXPECT_ACT = {"d1-linear": "identity", "d2-softplus": "softplus", "d3-tanh": "tanh", "d4-gelu": "gelu",
              "d2-sigmoid": "sigmoid", "d3-arctan": "arctan", "d3-erf": "erf", "d2-sin": "sin",
              "d4-nsoftplus": "nsoftplus", "d3-relu": "relu", "d2-identity": "identity",
              "d3-no-act": "identity", "d3-nobias": "tanh", "d3-nested": "softplus"}


def t_cases():
    rng = np.random.default_rng(7)
    for k, (kind, beta) in enumerate(CASES):
        model = build(kind, 100 + k)
        d = os.path.join(TMP, kind)
        cfg = ti.save(model, d, param="ntk", beta=beta)
        tag = "%s (beta %g)" % (kind, beta)
        check(cfg["act"] == EXPECT_ACT[kind] and cfg["beta"] == beta, tag + ": detected activation",
              "(%s)" % cfg["act"])
        net = nh.Net.load(d)
        check(net.widths == tuple(cfg["widths"]) and net.nparams == cfg["P"], tag + ": ntkhess loads it")
        linears, _ = ti.linear_layers(model)
        N = 9
        X = torch.from_numpy(rng.standard_normal((N, linears[0].in_features)))
        T = torch.from_numpy(rng.standard_normal((N, linears[-1].out_features)))
        with torch.no_grad():
            Yt = model(X).numpy()
        close(net.forward(X.numpy()), Yt, tag + ": f(X) ntkhess = torch", OUT_TOL)
        # The mapping theta_ntk = D theta_torch.
        D = ti.scaling(cfg)
        th_t, mask = ti.flat_params(model)
        close(net.params[mask], (D * th_t)[mask], tag + ": theta_ntk = D theta_torch", 1e-15)
        check(np.all(net.params[~mask] == 0), tag + ": missing biases import as 0")
        # Gradient and HVP on the original torch model.
        v_t = rng.standard_normal(D.size) * mask
        g_t, hv_t = torch_hvp(model, X, T, v_t)
        c = nh.Curvature(net, X.numpy(), T.numpy(), loss="mse")
        close(torch_loss(model, X, T).item(), c.loss, tag + ": loss", OUT_TOL)
        close((D * c.grad())[mask], g_t[mask], tag + ": grad_torch = D grad_ntk", HVP_TOL)
        hv_map = D * c.hvp(D * v_t)
        close(hv_map[mask], hv_t[mask], tag + ": H_torch v = D H_ntk (D v) (binding)", HVP_TOL)
        # The other direction: H_ntk u = D^-1 H_torch (D^-1 u).
        if mask.all():
            u = rng.standard_normal(D.size)
            _, hv_u = torch_hvp(model, X, T, u / D)
            close(c.hvp(u), hv_u / D, tag + ": H_ntk u = D^-1 H_torch D^-1 u", HVP_TOL)
        if kind in CLI_CASES:
            xp, tp, vp = (os.path.join(TMP, "%s_%s.npy" % (kind, s)) for s in ("X", "T", "v"))
            np.save(xp, X.numpy())
            np.save(tp, T.numpy())
            np.save(vp, D * v_t)
            out = os.path.join(TMP, kind + "_curv")
            r = run([BIN, "curvature", "--model", d, "--data", xp, "--targets", tp, "--hvp", vp,
                     "--no-ntk", "--out", out])
            if check(r.returncode == 0, tag + ": ntkhess curvature --hvp runs", r.stderr[-300:]):
                hv_cli = D * np.load(os.path.join(out, "Hv.npy"))
                close(hv_cli[mask], hv_t[mask], tag + ": H_torch v = D H_ntk (D v) (CLI)", HVP_TOL)
                close((D * np.load(os.path.join(out, "grad.npy")))[mask], g_t[mask],
                      tag + ": grad (CLI)", HVP_TOL)
        # Reverse export.
        back = ti.export_sequential(d)
        with torch.no_grad():
            close(back(X).numpy(), Yt, tag + ": export_sequential reproduces f", OUT_TOL)
        th_b, _ = ti.flat_params(back)
        close(th_b[mask], th_t[mask], tag + ": export_sequential recovers V, c", 1e-15)


def t_dense():
    rng = np.random.default_rng(3)
    for kind, beta in (("d2-softplus", 0.1), ("d3-erf", 0.7)):
        model = build(kind, 5)
        d = os.path.join(TMP, kind + "_dense")
        cfg = ti.save(model, d, param="ntk", beta=beta)
        net = nh.Net.load(d)
        linears, _ = ti.linear_layers(model)
        X = torch.from_numpy(rng.standard_normal((5, linears[0].in_features)))
        T = torch.from_numpy(rng.standard_normal((5, linears[-1].out_features)))
        params = list(model.parameters())
        shapes = [p.shape for p in params]
        sizes = [p.numel() for p in params]

        def f(flat):
            chunks = torch.split(flat, sizes)
            ps = [c.reshape(s) for c, s in zip(chunks, shapes)]
            h = X
            i = 0
            for m in ti._children(model):
                if isinstance(m, nn.Linear):
                    h = h @ ps[i].T + ps[i + 1]
                    i += 2
                else:
                    h = m(h)
            return 0.5 * ((h - T) ** 2).sum() / X.shape[0]

        flat = torch.cat([p.detach().reshape(-1) for p in params])
        Ht = torch.autograd.functional.hessian(f, flat).numpy()
        D = ti.scaling(cfg)
        Hn = nh.Curvature(net, X.numpy(), T.numpy()).dense("H")["H"]
        close(np.diag(D) @ Hn @ np.diag(D), Ht, "%s: dense H_torch = D H_ntk D" % kind, HVP_TOL)
        ev_t, ev_n = np.linalg.eigvalsh(Ht), np.linalg.eigvalsh(Hn)
        check(rel(ev_t, ev_n) > 1e-3, "%s: the spectra differ (congruence, not similarity)" % kind,
              "(rel diff %.3g)" % rel(ev_t, ev_n))


def t_reverse_mf_and_cli():
    rng = np.random.default_rng(11)
    for param in ("ntk", "mf"):
        m = os.path.join(TMP, "init_" + param)
        r = run([BIN, "init", "--widths", "3,8,7,2", "--act", "erf", "--beta", "0.3", "--param", param,
                 "--seed", "4", "--out", m])
        if not check(r.returncode == 0, "ntkhess init --param " + param, r.stderr[-200:]):
            continue
        model = ti.export_sequential(m)
        X = rng.standard_normal((6, 3))
        with torch.no_grad():
            Yt = model(torch.from_numpy(X)).numpy()
        close(Yt, nh.Net.load(m).forward(X), "export of an %s model reproduces f" % param, OUT_TOL)
        # The mf scaling maps gradients too.
        cfg = json.load(open(os.path.join(m, "config.json")))
        D = ti.scaling(cfg)
        T = rng.standard_normal((6, 2))
        g_t, _ = torch_hvp(model, torch.from_numpy(X), torch.from_numpy(T), np.zeros(D.size))
        c = nh.Curvature(nh.Net.load(m), X, T)
        close(D * c.grad(), g_t, "%s: grad_torch = D grad_ntk" % param, HVP_TOL)
    # Command line, both directions: python -m ntkhess.torch --param ntk, and
    # the scripts/torch_import.py shim whose default stays the NTK mapping.
    model = build("d3-tanh", 42)
    pt = os.path.join(TMP, "model.pt")
    torch.save(model, pt)
    cfg, Ws, bs = ti.sequential_to_ntkhess(model, 0.5)
    for how, cmd in (("python -m ntkhess.torch --param ntk", [sys.executable, "-m", "ntkhess.torch", "--param", "ntk"]),
                     ("scripts/torch_import.py (shim, NTK default)", [sys.executable, SHIM])):
        out = os.path.join(TMP, "cli_import_%d" % len(how))
        r = run(cmd + [pt, out, "--beta", "0.5"], env=PYENV)
        if check(r.returncode == 0, how + " MODEL.pt OUT_DIR --beta 0.5", r.stderr[-300:]):
            check(all(np.array_equal(np.load(os.path.join(out, "W%d.npy" % l)), Ws[l])
                      and np.array_equal(np.load(os.path.join(out, "b%d.npy" % l)), bs[l]) for l in range(3)),
                  how + ": writes W_l = sqrt(n_l) V_l, b_l = c_l / beta")
            c2 = json.load(open(os.path.join(out, "config.json")))
            check(c2["beta"] == 0.5 and c2["param"] == "ntk", how + ": config.json", "(%s)" % c2)
    pt2 = os.path.join(TMP, "back.pt")
    r = pymod("--reverse", out, pt2)
    if check(r.returncode == 0, "python -m ntkhess.torch --reverse", r.stderr[-300:]):
        back = ti._torch_load(pt2)
        X = torch.from_numpy(rng.standard_normal((4, 3)))
        with torch.no_grad():
            close(back(X).numpy(), model(X).numpy(), "--reverse round trip reproduces f", OUT_TOL)
    # Custom activations survive torch.save (pickled as ntkhess.torch.Arctan).
    m2 = build("d3-arctan", 1)
    pt3 = os.path.join(TMP, "arctan.pt")
    torch.save(m2, pt3)
    r = pymod(pt3, os.path.join(TMP, "arctan_dir"), "--param", "ntk", cwd=TMP)
    check(r.returncode == 0, "the module imports a saved net with a custom activation", r.stderr[-300:])
    sd = os.path.join(TMP, "state.pt")
    torch.save(model.state_dict(), sd)
    r = pymod(sd, os.path.join(TMP, "sd_dir"), "--param", "ntk")
    check(r.returncode == 1 and "state dict" in r.stderr and "--arch" in r.stderr,
          "a state dict without --arch is refused with a message", r.stderr[-200:])
    r = pymod(sd, os.path.join(TMP, "sd_dir"), "--param", "ntk", "--beta", "0.5", "--arch",
              "Sequential(Linear(3, 12), Tanh(), Linear(12, 10), Tanh(), Linear(10, 1))")
    if check(r.returncode == 0, "a state dict with --arch imports", r.stderr[-300:]):
        check(all(np.array_equal(np.load(os.path.join(TMP, "sd_dir", "W%d.npy" % l)), Ws[l]) for l in range(3)),
              "state dict + --arch gives the module's arrays")


class Square(nn.Module):
    ntkhess_act = "tanh"  # lies

    def forward(self, x):
        return x * x


def t_refusals():
    L = nn.Linear
    bad = [
        ("two activations in a row", seq(L(3, 4), nn.Tanh(), nn.Tanh(), L(4, 1)), "second activation"),
        ("activation after the last Linear", seq(L(3, 4), nn.Tanh(), L(4, 1), nn.Tanh()), "after the last"),
        ("activation first", seq(nn.Tanh(), L(3, 1)), "before the first"),
        ("a Conv layer", seq(nn.Conv1d(1, 1, 3), L(3, 1)), "Conv1d"),
        ("BatchNorm", seq(L(3, 4), nn.BatchNorm1d(4), L(4, 1)), "BatchNorm1d"),
        ("Flatten in the middle", seq(L(3, 4), nn.Flatten(), L(4, 1)), "first module"),
        ("a softmax in the middle", seq(L(3, 4), nn.Softmax(dim=1), L(4, 1)), "last module"),
        ("a softmax over dim 0", seq(L(3, 4), nn.Softmax(dim=0)), "dim=0"),
        ("Softplus(threshold=10)", seq(L(3, 4), nn.Softplus(threshold=10.0), L(4, 1)), "threshold"),
        ("GELU(approximate='tanh')", seq(L(3, 4), nn.GELU(approximate="tanh"), L(4, 1)), "approximate"),
        ("width mismatch", seq(L(3, 4), nn.Tanh(), L(5, 1)), "in_features"),
        ("not a Sequential", L(3, 1), "nn.Sequential"),
        ("empty", seq(), "empty"),
        ("a module lying about ntkhess_act", seq(L(3, 4), Square(), L(4, 1)), "does not compute"),
    ]
    for what, model, msg in bad:
        try:
            ti.import_sequential(model, os.path.join(TMP, "refused"), beta=0.1)
            check(False, "refuses " + what)
        except ValueError as e:
            # every refusal of a module lists what is supported
            listed = "Supported:" in str(e) or "in_features" in str(e) or "empty" in str(e)
            check(msg in str(e) and listed, "refuses " + what, "(%s)" % e)
    check(not os.path.exists(os.path.join(TMP, "refused", "config.json")), "a refused import writes no model")
    m = seq(L(3, 4), nn.Tanh(), L(4, 1))
    try:
        ti.sequential_to_ntkhess(m, beta=0.0)
        check(False, "refuses beta = 0 with a non-zero bias")
    except ValueError as e:
        check("beta = 0" in str(e), "refuses beta = 0 with a non-zero bias", "(%s)" % e)
    with torch.no_grad():
        for p in (m[0].bias, m[2].bias):
            p.zero_()
    cfg, Ws, bs = ti.sequential_to_ntkhess(m, beta=0.0)
    check(cfg["beta"] == 0.0 and all(not b.any() for b in bs), "beta = 0 with zero biases is accepted")
    d = os.path.join(TMP, "beta0")
    ti.import_sequential(m, d, beta=0.0)
    X = np.random.default_rng(0).standard_normal((3, 3))
    with torch.no_grad():
        close(nh.Net.load(d).forward(X), m(torch.from_numpy(X)).numpy(), "beta = 0 model reproduces f", OUT_TOL)


section("imported nets vs torch autograd", t_cases)
section("dense Hessians", t_dense)
section("reverse export, mean field, command line", t_reverse_mf_and_cli)
section("refusals", t_refusals)
shutil.rmtree(TMP, ignore_errors=True)
finish()
