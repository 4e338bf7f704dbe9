#!/usr/bin/python3
"""Deprecated shim: the PyTorch importer now lives in the package, as
``ntkhess.torch`` (``python3 -m ntkhess.torch``, ``ntkhess.from_torch``,
``ntkhess.to_torch``; docs/python.md).

This script keeps its earlier command line and default, the NTK mapping
(W_l = sqrt(n_l) V_l, b_l = c_l / beta), for existing scripts:

    /usr/bin/python3 scripts/torch_import.py MODEL.pt OUT_DIR [--beta B] [--param standard|ntk]
    /usr/bin/python3 scripts/torch_import.py --reverse MODEL_DIR OUT.pt [--float32]

New code: ``python3 -m ntkhess.torch MODEL.pt OUT_DIR`` imports the model
itself (--param standard, the default there).  As a module this file
re-exports ntkhess.torch (so pickles naming torch_import.Arctan, ... load).
"""
import os
import sys

_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")
if os.path.isdir(os.path.join(_PY, "ntkhess")) and _PY not in sys.path:
    sys.path.insert(0, _PY)

from ntkhess.torch import *  # noqa: E402,F401,F403
from ntkhess.torch import _children as _flatten, _torch_load, main as _main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(_main(default_param="ntk", prog="torch_import.py"))
