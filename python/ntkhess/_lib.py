"""Loading libntkhess, the ctypes mirror of include/ntkhess.h, and errors.

Everything that depends on the C ABI lives here: the structure layouts (field
names are those of the header, so tests can compare offsets with a C
compiler's), the prototypes of the exported functions, and the mapping of
nh_status to :class:`NtkhessError`.
"""
import ctypes
import ctypes.util
import os
import threading
from ctypes import POINTER, Structure, c_char_p, c_double, c_int, c_size_t, c_uint64, c_void_p

# ------------------------------------------------------------------ status

#: nh_status values, by code (include/ntkhess.h).
STATUS_NAMES = (
    "NH_OK", "NH_EINVAL", "NH_ESHAPE", "NH_ENONFINITE", "NH_ENOMEM", "NH_ETOOLARGE",
    "NH_EIO", "NH_EFORMAT", "NH_EMAXITER", "NH_EDIVERGED", "NH_ELAPACK", "NH_ENUMERIC",
    "NH_EBUSY",
)
NH_OK, NH_EINVAL, NH_ESHAPE, NH_ENONFINITE, NH_ENOMEM, NH_ETOOLARGE = range(6)
NH_EIO, NH_EFORMAT, NH_EMAXITER, NH_EDIVERGED, NH_ELAPACK, NH_ENUMERIC, NH_EBUSY = range(6, 13)

# nh_strerror's texts, used when the library itself is not available.
_STRERROR = (
    "ok", "invalid argument", "shape mismatch", "non-finite value", "out of memory", "too large",
    "i/o error", "malformed file", "no convergence", "diverged", "LAPACK failure", "numerical breakdown",
    "in use",
)


class NtkhessError(Exception):
    """A failure reported by libntkhess (or by the binding's own argument checks).

    Attributes
    ----------
    status : int
        The ``nh_status`` code (``NH_EINVAL == 1``, ...).
    name : str
        Its enumerator name, e.g. ``"NH_EINVAL"``.
    strerror : str
        ``nh_strerror(status)``, e.g. ``"invalid argument"``.
    detail : str
        ``nh_last_error()`` right after the failing call (``"function: what"``),
        or the binding's message for checks done in Python.
    function : str or None
        The C function that failed (``None`` for checks done in Python).
    """

    def __init__(self, status, detail="", function=None):
        self.status = int(status)
        if 0 <= self.status < len(STATUS_NAMES):
            self.name = STATUS_NAMES[self.status]
            self.strerror = _STRERROR[self.status]
        else:
            self.name = "NH_UNKNOWN(%d)" % self.status
            self.strerror = "unknown status"
        self.detail = detail
        self.function = function
        msg = "%s (%s)" % (self.name, self.strerror)
        if detail:
            msg += ": " + detail
        elif function:
            msg += " in " + function
        super().__init__(msg)


# --------------------------------------------------------------- structures

class NetConfig(Structure):
    _fields_ = [("depth", c_size_t), ("widths", POINTER(c_size_t)), ("act", c_int),
                ("beta", c_double), ("param", c_int), ("acts", POINTER(c_int)),
                ("act_params", POINTER(c_double)), ("bias", POINTER(ctypes.c_ubyte))]


class CurvOpts(Structure):
    """nh_curv_opts: precision (nh_precision: 0 double, 1 single), batch (rows per pass; 0 = automatic)."""
    _fields_ = [("precision", c_int), ("batch", c_size_t)]


class TraceOpts(Structure):
    _fields_ = [("method", c_int), ("probe", c_int), ("nprobes", c_size_t), ("sketch", c_size_t),
                ("first_probe", c_size_t), ("seed", c_uint64), ("control", c_int)]


class TraceResult(Structure):
    _fields_ = [("est", c_double * 4), ("se", c_double * 4), ("nprobes", c_size_t),
                ("nproducts", c_size_t)]


class DiagOpts(Structure):
    """nh_diag_opts: method (0 auto, 1 exact, 2 hutchinson), nprobes, seed, max_cost (H v products)."""
    _fields_ = [("method", c_int), ("nprobes", c_size_t), ("seed", c_uint64), ("max_cost", c_double)]


class DiagInfo(Structure):
    _fields_ = [("method", c_int), ("nprobes", c_size_t), ("nproducts", c_size_t),
                ("exact_flops", c_double), ("hvp_flops", c_double), ("exact_cost", c_double)]


class OrthoResult(Structure):
    _fields_ = [("is_fro", c_double), ("i_fro", c_double), ("s_fro", c_double),
                ("s_fro_se", c_double), ("ratio", c_double), ("ratio_se", c_double),
                ("tr_s2", c_double), ("tr_s2_se", c_double), ("nproducts", c_size_t)]


class LanczosOpts(Structure):
    _fields_ = [("which", c_int), ("ncv", c_size_t), ("tol", c_double), ("maxprod", c_size_t),
                ("seed", c_uint64), ("require", c_int), ("start", c_void_p)]


class LanczosInfo(Structure):
    _fields_ = [("nconv", c_size_t), ("nproducts", c_size_t), ("nrestarts", c_size_t),
                ("nbreakdowns", c_size_t), ("anorm", c_double)]


class SlqOpts(Structure):
    _fields_ = [("nvec", c_size_t), ("nsteps", c_size_t), ("probe", c_int), ("seed", c_uint64),
                ("ndeflate", c_size_t), ("deflate", c_void_p)]


class SlqResult(Structure):
    _fields_ = [("moments", c_double * 4), ("moments_se", c_double * 4), ("nproducts", c_size_t),
                ("nbreakdowns", c_size_t)]


class KernelOpts(Structure):
    _fields_ = [("act", c_int), ("depth", c_size_t), ("beta", c_double), ("nq", c_size_t),
                ("exact", c_int)]


class Grams(Structure):
    _fields_ = [("n", c_size_t), ("theta", c_void_p), ("lambda_", c_void_p), ("upsilon", c_void_p),
                ("phi", c_void_p), ("xi", c_void_p), ("sigma", c_void_p)]


class PredictOpts(Structure):
    _fields_ = [("psd_tol", c_double), ("rtol", c_double), ("atol", c_double), ("h0", c_double),
                ("max_steps", c_size_t), ("nsamples", c_size_t), ("seed", c_uint64),
                ("batch", c_size_t)]


class Moments(Structure):
    _fields_ = [("tr_i", c_double * 4), ("tr_s", c_double * 4), ("tr_h", c_double * 4)]


class PredictDiag(Structure):
    _fields_ = [("theta_clipped", c_size_t), ("theta_eig_min", c_double),
                ("theta_eig_max", c_double), ("cov_clipped", c_size_t), ("cov_eig_min", c_double),
                ("ode_steps", c_size_t), ("ode_rejected", c_size_t), ("ode_evals", c_size_t)]


class SharpOpts(Structure):
    _fields_ = [("top", c_size_t), ("tol", c_double), ("maxit", c_size_t), ("min_steps", c_size_t),
                ("cold", c_int), ("ntk", c_int)]


NH_SHARP_MAXTOP = 16


class SharpRow(Structure):
    _fields_ = [("loss", c_double), ("grad_norm", c_double), ("lam_H", c_double), ("lam_I", c_double),
                ("lam_S", c_double), ("lam_NTK", c_double), ("grad_overlap", c_double), ("uIu", c_double),
                ("uSu", c_double), ("top", c_double * (3 * NH_SHARP_MAXTOP)), ("matvecs", c_size_t * 4),
                ("unconverged", c_int)]


class Rng(Structure):
    _fields_ = [("s", c_uint64 * 4), ("spare", c_double), ("has_spare", c_int)]


class GMoments(Structure):
    _fields_ = [("e00", c_double), ("e11", c_double), ("e22", c_double), ("e20", c_double),
                ("e02", c_double), ("e31", c_double), ("e13", c_double)]


class GnInfo(Structure):
    _fields_ = [("loss0", c_double), ("loss", c_double), ("tried", c_double), ("pred", c_double),
                ("norm", c_double), ("mu_abs", c_double), ("accepted", c_int)]


#: C struct name -> ctypes class; a field named ``lambda_`` is ``lambda`` in C.
STRUCTS = {
    "nh_net_config": NetConfig, "nh_trace_opts": TraceOpts, "nh_trace_result": TraceResult,
    "nh_ortho_result": OrthoResult, "nh_lanczos_opts": LanczosOpts,
    "nh_lanczos_info": LanczosInfo, "nh_slq_opts": SlqOpts, "nh_slq_result": SlqResult,
    "nh_kernel_opts": KernelOpts, "nh_grams": Grams, "nh_predict_opts": PredictOpts,
    "nh_moments": Moments, "nh_predict_diag": PredictDiag, "nh_rng": Rng,
    "nh_gmoments": GMoments, "nh_sharp_opts": SharpOpts, "nh_sharp_row": SharpRow,
    "nh_gn_info": GnInfo,
}

# Enumerations that the binding names itself (the C library parses act and
# loss names, so its own error messages apply to those).
OPS = {"H": 0, "I": 1, "S": 2}
WHICH = {"LA": 0, "SA": 1, "LM": 2}
PROBES = {"rademacher": 0, "gaussian": 1}
TRACE_METHODS = {"hutchinson": 0, "hutchpp": 1, "exact": 2}
DIAG_METHODS = {"auto": 0, "exact": 1, "hutchinson": 2}
PARAMS = {"ntk": 0, "mf": 1, "standard": 2}
DATASETS = {"sphere": 0, "disk": 1}
NH_K_COUNT = 8
NH_NPY_MAXDIM = 8

# -------------------------------------------------------------- prototypes

_S = c_int          # nh_status and the enums
_P = c_void_p       # every pointer: arrays are passed as addresses
_Z = c_size_t
_D = c_double
_PP = POINTER(c_void_p)

# name: (restype, argtypes, returns nh_status)
_PROTOS = {
    "nh_version": (c_char_p, [], False),
    "nh_strerror": (c_char_p, [_S], False),
    "nh_last_error": (c_char_p, [], False),
    "nh_set_mem_limit": (None, [_Z], False),
    "nh_get_mem_limit": (_Z, [], False),
    "nh_set_threads": (None, [c_int], False),
    "nh_act_from_name": (_S, [c_char_p, _P], True),
    "nh_act_name": (c_char_p, [_S], False),
    "nh_act_eval": (None, [_S, _Z, _P, _P, _P, _P, _P], False),
    "nh_act_default_param": (_D, [_S], False),
    "nh_act_parse": (_S, [c_char_p, _P, _P], True),
    "nh_act_format": (c_char_p, [_S, _D, c_char_p, _Z], False),
    "nh_act_eval_p": (None, [_S, _D, _Z, _P, _P, _P, _P, _P], False),
    "nh_loss_from_name": (_S, [c_char_p, _P], True),
    "nh_loss_name": (c_char_p, [_S], False),
    "nh_loss_check_targets": (_S, [_S, _P, _Z, _Z], True),
    "nh_loss_eval": (_S, [_S, _P, _P, _Z, _Z, _P, _P, _P], True),
    "nh_net_config_default": (NetConfig, [], False),
    "nh_net_create": (_S, [POINTER(NetConfig), _PP], True),
    "nh_net_free": (None, [_P], False),
    "nh_net_clone": (_S, [_P, _PP], True),
    "nh_net_init_normal": (None, [_P, c_uint64], False),
    "nh_net_init_uniform_fanin": (None, [_P, c_uint64], False),
    "nh_net_depth": (_Z, [_P], False),
    "nh_net_widths": (POINTER(c_size_t), [_P], False),
    "nh_net_nparams": (_Z, [_P], False),
    "nh_net_act": (_S, [_P], False),
    "nh_net_act_at": (_S, [_P, _Z], False),
    "nh_net_act_param_at": (_D, [_P, _Z], False),
    "nh_net_is_plain": (c_int, [_P], False),
    "nh_net_has_bias": (c_int, [_P, _Z], False),
    "nh_net_beta": (_D, [_P], False),
    "nh_net_param": (_S, [_P], False),
    "nh_net_offset_W": (_Z, [_P, _Z], False),
    "nh_net_offset_b": (_Z, [_P, _Z], False),
    "nh_net_params": (_P, [_P], False),
    "nh_net_set_params": (_S, [_P, _P], True),
    "nh_net_forward": (_S, [_P, _P, _Z, _P], True),
    "nh_curv_create": (_S, [_P, _P, _P, _Z, _S, _PP], True),
    "nh_curv_create_ex": (_S, [_P, _P, _P, _Z, _S, POINTER(CurvOpts), _PP], True),
    "nh_curv_create_x32": (_S, [_P, _P, _P, _Z, _S, POINTER(CurvOpts), _PP], True),
    "nh_curv_batch": (_Z, [_P], False),
    "nh_curv_bytes": (_Z, [_P], False),
    "nh_curv_free": (None, [_P], False),
    "nh_curv_refresh": (_S, [_P], True),
    "nh_curv_nsamples": (_Z, [_P], False),
    "nh_curv_loss": (_D, [_P], False),
    "nh_curv_outputs": (None, [_P, _P], False),
    "nh_curv_dloss": (None, [_P, _P], False),
    "nh_curv_hloss": (None, [_P, _P], False),
    "nh_curv_grad": (_S, [_P, _P], True),
    "nh_curv_hvp": (_S, [_P, _P, _P], True),
    "nh_curv_ivp": (_S, [_P, _P, _P], True),
    "nh_curv_svp": (_S, [_P, _P, _P], True),
    "nh_curv_isvp": (_S, [_P, _P, _P, _P], True),
    "nh_curv_hvp_block": (_S, [_P, _Z, _P, _P], True),
    "nh_curv_jvp": (_S, [_P, _P, _P], True),
    "nh_curv_vjp": (_S, [_P, _P, _P], True),
    "nh_curv_ntk": (_S, [_P, _P], True),
    "nh_ntk_trace_powers": (_S, [_Z, _Z, _P, _P, c_int, _P], True),
    "nh_curv_G": (_S, [_P, _P], True),
    "nh_curv_jacobian": (_S, [_P, _P], True),
    "nh_curv_dense": (_S, [_P, _P, _P, _P], True),
    "nh_eigvalsh": (_S, [_Z, _P, _P], True),
    "nh_eigh": (_S, [_Z, _P, _P, _P], True),
    "nh_curv_gd_step": (_S, [_P, _P, _D], True),
    "nh_curv_gn_delta": (_S, [_P, _D, _P], True),
    "nh_curv_gn_step": (_S, [_P, _P, _D, POINTER(GnInfo)], True),
    "nh_rng_seed": (None, [POINTER(Rng), c_uint64], False),
    "nh_rng_u64": (c_uint64, [POINTER(Rng)], False),
    "nh_rng_uniform": (_D, [POINTER(Rng)], False),
    "nh_rng_normal": (_D, [POINTER(Rng)], False),
    "nh_rng_fill_normal": (None, [POINTER(Rng), _Z, _P], False),
    "nh_data_synth": (_S, [_S, _Z, _Z, _S, _Z, c_uint64, _P, _P], True),
    "nh_model_load": (_S, [c_char_p, _PP], True),
    "nh_model_save": (_S, [c_char_p, _P], True),
    "nh_gauss_hermite": (_S, [_Z, _P, _P], True),
    "nh_gauss_create": (_S, [_S, _Z, c_int, _PP], True),
    "nh_gauss_free": (None, [_P], False),
    "nh_gauss_nq": (_Z, [_P], False),
    "nh_gauss_default_nq": (_Z, [_S, _D], False),
    "nh_gauss_moments": (_S, [_P, _D, _D, _D, POINTER(GMoments)], True),
    "nh_gauss_mean": (_S, [_P, _D, _P], True),
    "nh_kernel_name": (c_char_p, [_S], False),
    "nh_kernel_opts_default": (KernelOpts, [], False),
    "nh_kernels_pair": (_S, [POINTER(KernelOpts), _Z, _P, _P, _P], True),
    "nh_kernels_gram": (_S, [POINTER(KernelOpts), _Z, _Z, _P, _P], True),
    "nh_predict_opts_default": (PredictOpts, [], False),
    "nh_predict_mse": (_S, [POINTER(Grams), _Z, _P, _P, _P, _Z, _P, POINTER(PredictOpts),
                            _P, _P, _P, POINTER(PredictDiag)], True),
    "nh_predict_mse_expect": (_S, [POINTER(Grams), _Z, _P, _Z, _P, POINTER(PredictOpts), _P,
                                   POINTER(PredictDiag)], True),
    "nh_predict_ode": (_S, [POINTER(Grams), _S, _Z, _P, _P, _P, _Z, _P, POINTER(PredictOpts),
                            _P, _P, _P, POINTER(PredictDiag)], True),
    "nh_predict_draw_init": (_S, [POINTER(Grams), _Z, _Z, POINTER(PredictOpts), _P, _P,
                                  POINTER(PredictDiag)], True),
    "nh_predict_sample": (_S, [POINTER(Grams), _S, _Z, _P, _Z, _P, POINTER(PredictOpts), _P, _P,
                               POINTER(PredictDiag)], True),
    "nh_predict_spectrum_i": (_S, [POINTER(Grams), _S, _Z, _P, _P, _P], True),
    "nh_predict_meanfield": (_S, [POINTER(Grams), _S, _Z, _P, _P, _P, _P], True),
    "nh_trace_opts_default": (TraceOpts, [], False),
    "nh_curv_trace": (_S, [_P, _S, c_int, POINTER(TraceOpts), POINTER(TraceResult)], True),
    "nh_diag_opts_default": (DiagOpts, [], False),
    "nh_curv_diag": (_S, [_P, _S, POINTER(DiagOpts), _P, _P, POINTER(DiagInfo)], True),
    "nh_curv_diag_all": (_S, [_P, POINTER(DiagOpts), _P, _P, POINTER(DiagInfo)], True),
    "nh_curv_orthogonality": (_S, [_P, POINTER(TraceOpts), POINTER(OrthoResult)], True),
    "nh_lanczos_opts_default": (LanczosOpts, [], False),
    "nh_curv_lanczos": (_S, [_P, _S, _Z, POINTER(LanczosOpts), _P, _P, _P, POINTER(LanczosInfo)],
                        True),
    "nh_slq_opts_default": (SlqOpts, [], False),
    "nh_curv_slq": (_S, [_P, _S, POINTER(SlqOpts), _P, _P, _Z, _P, _D, _P, POINTER(SlqResult)],
                    True),
    "nh_slq_density": (_S, [_Z, _P, _P, _Z, _P, _D, _P], True),
    "nh_subspace_overlap": (_S, [_Z, _Z, _P, _P, _P, _P], True),
    "nh_principal_angles": (_S, [_Z, _Z, _Z, _P, _P, _P], True),
    "nh_curv_rayleigh": (_S, [_P, _Z, _P, _P, _P], True),
    "nh_sharp_opts_default": (SharpOpts, [], False),
    "nh_sharp_create": (_S, [_P, POINTER(SharpOpts), _PP], True),
    "nh_sharp_free": (None, [_P], False),
    "nh_sharp_record": (_S, [_P, _P, c_uint64, POINTER(SharpRow)], True),
    "nh_sharp_state_len": (_Z, [_P], False),
    "nh_sharp_state_get": (_S, [_P, _P], True),
    "nh_sharp_state_set": (_S, [_P, _P], True),
    "nh_curv_slice": (_S, [_P, _P, _P, _P, _D, _Z, _P], True),
    "nh_net_ntensors": (_Z, [_P], False),
    "nh_net_tensor": (_S, [_P, _Z, POINTER(c_char_p), POINTER(c_size_t), POINTER(c_size_t)], True),
    "nh_net_find_tensor": (_S, [_P, c_char_p, POINTER(c_size_t)], True),
    "nh_curv_select": (_S, [_P, _Z, POINTER(c_size_t)], True),
    "nh_curv_dim": (_Z, [_P], False),
    "nh_curv_selection": (_Z, [_P, POINTER(POINTER(c_size_t))], False),
}


class _Lib:
    """The loaded library: attribute access gives prototyped C functions.

    Functions that return ``nh_status`` raise :class:`NtkhessError` on any
    value other than ``NH_OK``.  A function missing from the loaded library
    (an older build) raises NtkhessError(NH_EINVAL) when called, not at load.
    """

    def __init__(self, cdll, path):
        self._cdll = cdll
        self.path = path
        self.missing = []
        for name, (res, args, status) in _PROTOS.items():
            try:
                f = getattr(cdll, name)
            except AttributeError:
                self.missing.append(name)
                continue
            f.restype = res
            f.argtypes = args
            if status:
                f.errcheck = self._errcheck
            setattr(self, name, f)

    def _errcheck(self, result, func, args):
        if result != NH_OK:
            detail = self._cdll.nh_last_error()
            detail = detail.decode("utf-8", "replace") if detail else ""
            raise NtkhessError(result, detail, func.__name__)
        return result

    def __getattr__(self, name):  # only reached for names not set above
        if name in _PROTOS:
            raise NtkhessError(NH_EINVAL, "%s is not exported by %s (an older libntkhess?)"
                               % (name, self.path))
        raise AttributeError(name)


_lock = threading.Lock()
_loaded = None


def library_candidates():
    """The paths tried, in order, when no library was loaded explicitly.

    1. ``$NTKHESS_LIB`` when set (then nothing else is tried);
    2. ``ntkhess/_libs/libntkhess.so.0`` inside the package: the copy that
       ``pip install ./python`` bundles when the repository was built with
       ``make`` first, so an installed package works alone;
    3. ``build/libntkhess.so`` of the source tree the package is imported
       from (``python/ntkhess/../../build``: the in-tree build from ``make``);
    4. ``ctypes.util.find_library("ntkhess")`` (an installed copy known to
       ldconfig);
    5. ``libntkhess.so.0`` through the dynamic loader's own search
       (``LD_LIBRARY_PATH``, ``/etc/ld.so.cache``);
    6. ``/usr/local/lib/libntkhess.so.0`` (``make install``'s default prefix,
       in case ``ldconfig`` has not been run since).

    For each, ``libntkhess-io.so`` beside it is preferred (it pulls the core
    library in through its ``$ORIGIN`` rpath and adds the file functions).
    """
    env = os.environ.get("NTKHESS_LIB")
    if env:
        return [env]
    out = []
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = os.path.join(here, "_libs", "libntkhess.so.0")
    if os.path.isfile(bundled):
        out.append(bundled)
    top = os.path.dirname(os.path.dirname(here))
    intree = os.path.join(top, "build", "libntkhess.so")
    # Only a source tree (its header beside build/) counts: an installed
    # package's ../../build is someone else's directory.
    if os.path.isfile(intree) and os.path.isfile(os.path.join(top, "include", "ntkhess", "core.h")):
        out.append(intree)
    found = ctypes.util.find_library("ntkhess")
    if found:
        out.append(found)
    out.append("libntkhess.so.0")
    out.append("/usr/local/lib/libntkhess.so.0")
    return out


def _io_candidates(cand):
    """libntkhess-io next to a core library path (or by soname for a bare name)."""
    d, b = os.path.split(cand)
    if not b.startswith("libntkhess.so"):
        return []
    same = os.path.join(d, b.replace("libntkhess.so", "libntkhess-io.so", 1))
    if not d:
        return [same]
    plain = os.path.join(d, "libntkhess-io.so")
    return [plain] if plain == same else [plain, same]


def load_library(path=None):
    """Load libntkhess (once) and return the binding object.

    ``path`` forces a specific file (it replaces any library loaded before);
    otherwise the first loadable of :func:`library_candidates` is used.
    Raises ``OSError`` listing what was tried when none loads.
    """
    global _loaded
    with _lock:
        if path is None and _loaded is not None:
            return _loaded
        tried = [path] if path is not None else library_candidates()
        errors = []
        for cand in tried:
            # The binding needs the numerics (libntkhess) and the files
            # (libntkhess-io, which loads libntkhess.so.0 beside it): prefer
            # the io library next to the named core library; a core library
            # alone still serves everything but the file functions.
            cdll = None
            for io_path in _io_candidates(cand):
                try:
                    cdll = ctypes.CDLL(io_path)
                    break
                except OSError:
                    cdll = None
            try:
                if cdll is None:
                    cdll = ctypes.CDLL(cand)
            except OSError as e:
                errors.append("%s: %s" % (cand, e))
                continue
            if not hasattr(cdll, "nh_version"):
                errors.append("%s: not libntkhess (no nh_version)" % cand)
                continue
            _loaded = _Lib(cdll, cand)
            return _loaded
        raise OSError("ntkhess: cannot load libntkhess; tried:\n  " + "\n  ".join(errors) +
                      "\nBuild it with `make` in the repository, install it with `make install`,"
                      " or set NTKHESS_LIB to the path of libntkhess.so.")


def lib():
    """The loaded library (loading it on first use)."""
    return _loaded if _loaded is not None else load_library()
