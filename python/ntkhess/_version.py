"""The package version, kept in one place: include/ntkhess/core.h
(NH_VERSION_MAJOR/MINOR/PATCH).  In the source tree it is read from that
header; a wheel built by python/_backend carries this file with the number
written in (the backend reads the same header)."""
import os
import re


def version_from_header(path):
    """"MAJOR.MINOR.PATCH" from core.h's NH_VERSION_* macros (ValueError if absent)."""
    with open(path) as fh:
        text = fh.read()
    parts = []
    for k in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(r"^\s*#\s*define\s+NH_VERSION_%s\s+(\d+)\s*$" % k, text, re.M)
        if not m:
            raise ValueError("%s: no NH_VERSION_%s" % (path, k))
        parts.append(m.group(1))
    return ".".join(parts)


def _find():
    here = os.path.dirname(os.path.abspath(__file__))
    header = os.path.join(os.path.dirname(os.path.dirname(here)), "include", "ntkhess", "core.h")
    try:
        return version_from_header(header)
    except (OSError, ValueError):
        return "0+unknown"


__version__ = _find()
