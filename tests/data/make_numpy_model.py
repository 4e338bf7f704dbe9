#!/usr/bin/python3
"""NumPy side of the .npy / model-directory interoperability tests (test_io.c).

  make_numpy_model.py write DIR    write a model directory with NumPy itself
  make_numpy_model.py check DIR    check a model directory written by ntkhess
  make_numpy_model.py arrays DIR   check the a_<shape>.npy files ntkhess wrote

Every parameter value comes from one formula that C reproduces bit for bit
(a single correctly rounded division, no libm):

  value(s, k) = (+1 if k even else -1) * ((s + k + 1) / 7.0)

k is the flat C-order index in the array and s = 100*l for W_l, 100*l + 50
for b_l (s = 0 for the a_*.npy arrays).  Keep in sync with test_io.c.

The written model deliberately mixes encodings to prove the reader's
conversions: b0 is stored as float32 ('<f4', so C compares with the value
rounded to float) and W1 as big-endian float64 ('>f8').
"""
import json
import os
import sys

import numpy as np

WIDTHS = [3, 5, 4, 2]
ACT, BETA, PARAM = "tanh", 0.25, "mf"


def values(s, shape):
    k = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.float64)
    sign = np.where(np.arange(k.size) % 2 == 0, 1.0, -1.0)
    return (sign * ((s + k + 1) / 7.0)).reshape(shape)


def layer_arrays(widths):
    for l in range(len(widths) - 1):
        yield "W%d.npy" % l, 100 * l, (widths[l + 1], widths[l])
        yield "b%d.npy" % l, 100 * l + 50, (widths[l + 1],)


def write(d):
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"widths": WIDTHS, "act": ACT, "beta": BETA, "param": PARAM}, f)
    for name, s, shape in layer_arrays(WIDTHS):
        a = values(s, shape)
        if name == "b0.npy":
            a = a.astype("<f4")
        elif name == "W1.npy":
            a = a.astype(">f8")
        np.save(os.path.join(d, name), a)


def fail(msg):
    print("make_numpy_model.py: " + msg)
    sys.exit(1)


def check_array(path, s, shape):
    a = np.load(path, allow_pickle=False)
    if a.dtype != np.dtype("<f8") or a.shape != tuple(shape):
        fail("%s: dtype %s shape %s, expected <f8 %s" % (path, a.dtype.str, a.shape, shape))
    if not np.array_equal(a, values(s, shape)):
        fail("%s: values differ from the formula" % path)
    with open(path, "rb") as f:
        head = f.read(10)
        hlen = head[8] | head[9] << 8
    if head[6:8] != b"\x01\x00" or (10 + hlen) % 64 != 0:
        fail("%s: not a version 1.0 file with a 64-byte aligned header" % path)


def check(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    want = {"widths": WIDTHS, "act": ACT, "beta": BETA, "param": PARAM}
    for key, val in want.items():
        if cfg.get(key) != val:
            fail("config.json: %s is %r, expected %r" % (key, cfg.get(key), val))
    P = sum((WIDTHS[l] + 1) * WIDTHS[l + 1] for l in range(len(WIDTHS) - 1))
    if cfg.get("P") != P or "ntkhess_version" not in cfg:
        fail("config.json: P or ntkhess_version wrong: %r" % cfg)
    for name, s, shape in layer_arrays(WIDTHS):
        check_array(os.path.join(d, name), s, shape)


def arrays(d):
    names = sorted(n for n in os.listdir(d) if n.startswith("a_") and n.endswith(".npy"))
    if not names:
        fail("no a_*.npy files in " + d)
    for n in names:
        dims = n[2:-4]
        shape = tuple(int(x) for x in dims.split("x")) if dims else ()
        check_array(os.path.join(d, n), 0, shape)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check", "arrays"):
        fail("usage: make_numpy_model.py write|check|arrays DIR")
    {"write": write, "check": check, "arrays": arrays}[sys.argv[1]](sys.argv[2])
