"""Argument conversion shared by the binding: C-contiguous float64 arrays,
shape checks that raise NtkhessError, and name -> enum lookups."""
import ctypes

import numpy as np

from ._lib import NH_EINVAL, NH_ESHAPE, NtkhessError, lib


def f64(name, a):
    """``a`` as a C-contiguous float64 array (no copy when it already is one)."""
    if a is None:
        raise NtkhessError(NH_EINVAL, "%s: required, got None" % name)
    try:
        return np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise NtkhessError(NH_EINVAL, "%s: cannot convert to a float64 array (%s)" % (name, e))


def ptr(a):
    """Address of an array's data, or None (NULL)."""
    return None if a is None else a.ctypes.data


def empty(*shape):
    return np.empty(shape, dtype=np.float64)


def shape_str(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_shape(name, a, shape):
    """Require a.shape == shape; None in shape matches any length."""
    ok = a.ndim == len(shape) and all(s is None or s == t for s, t in zip(shape, a.shape))
    if not ok:
        want = shape_str(["*" if s is None else s for s in shape])
        raise NtkhessError(NH_ESHAPE, "%s: expected shape %s, got %s" % (name, want, shape_str(a.shape)))
    return a


def vector(name, a, n=None):
    a = f64(name, a)
    return check_shape(name, a, (n,))


def matrix(name, a, rows=None, cols=None, allow_vector=False):
    """A 2-D array; with allow_vector a 1-D array of length rows is taken as
    (rows, 1) when cols == 1."""
    a = f64(name, a)
    if allow_vector and a.ndim == 1 and cols == 1 and (rows is None or a.shape[0] == rows):
        a = a.reshape(-1, 1)
    return check_shape(name, a, (rows, cols))


def times(t):
    """Times for the predictions: a scalar or a 1-D sequence, as float64."""
    a = f64("t", t)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1 or a.size == 0:
        raise NtkhessError(NH_ESHAPE, "t: expected a non-empty 1-D sequence of times, got shape %s"
                           % shape_str(a.shape))
    return a


def act_id(name):
    """nh_act for a name (parsed by the library: "softplus", "tanh", ...)."""
    if isinstance(name, int):
        return name
    out = ctypes.c_int()
    lib().nh_act_from_name(str(name).encode(), ctypes.addressof(out))
    return out.value


def act_spec(spec):
    """(nh_act, parameter) for "name" or "name:param" (nh_act_parse: the
    parameter is the default, NaN for activations without one, when absent)."""
    if ":" not in str(spec):  # plain names: nh_act_from_name's own message
        a = act_id(spec)
        return a, lib().nh_act_default_param(a)
    out, par = ctypes.c_int(), ctypes.c_double()
    lib().nh_act_parse(str(spec).encode(), ctypes.addressof(out), ctypes.addressof(par))
    return out.value, par.value


def act_format(a, param):
    """"name" or "name:param" (nh_act_format, the inverse of act_spec)."""
    buf = ctypes.create_string_buffer(64)
    return lib().nh_act_format(a, float(param), buf, len(buf)).decode()


def act_name(a):
    return lib().nh_act_name(a).decode()


def loss_id(name):
    if isinstance(name, int):
        return name
    out = ctypes.c_int()
    lib().nh_loss_from_name(str(name).encode(), ctypes.addressof(out))
    return out.value


def loss_name(l):
    return lib().nh_loss_name(l).decode()


def enum(table, what, name):
    """Look a name up in one of the binding's enum tables (case-insensitive)."""
    if isinstance(name, int) and not isinstance(name, bool):
        if name in table.values():
            return name
    else:
        for k, v in table.items():
            if str(name).lower() == k.lower():
                return v
    raise NtkhessError(NH_EINVAL, "unknown %s %r (expected one of %s)"
                       % (what, name, ", ".join(repr(k) for k in table)))


def targets(loss, T, n, nout=None):
    """Targets as the library wants them, and the number of outputs.

    MSE/BCE: (n, nout), or (n,) when nout == 1.  CE: n class ids, shape (n,)
    or (n, 1); nout defaults to the largest label + 1 (at least 2), as in the
    CLI.  Returns (C-contiguous array, nout).
    """
    T = f64("T", T)
    if loss == 2:  # NH_LOSS_CE
        if T.ndim == 2 and T.shape[1] == 1:
            T = T.reshape(-1)
        check_shape("T (class ids for ce)", T, (n,))
        if nout is None:
            nout = max(int(T.max()) + 1, 2) if T.size else 2
        return np.ascontiguousarray(T), int(nout)
    if T.ndim == 1:
        if nout not in (None, 1):
            raise NtkhessError(NH_ESHAPE, "T: expected shape (%d, %d), got (%d,)" % (n, nout, T.shape[0]))
        T = T.reshape(-1, 1)
    check_shape("T", T, (n, nout))
    return T, int(T.shape[1])
