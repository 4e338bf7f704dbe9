"""A minimal PEP 517 / PEP 660 build backend for the pure-Python ntkhess package.

Why not setuptools: pip builds a package in an isolated environment into which
it first installs the backend named in pyproject.toml's `requires`.  Offline
(no index reachable, as on the machines ntkhess is built on) that download is
impossible, so `pip install ./python` with a setuptools backend only works
with `--no-build-isolation`.  This backend uses the standard library only and
is found through `backend-path`, so `requires = []` and pip needs nothing from
an index, with or without build isolation.  It writes nothing into the source
tree.

What it builds:
  * a wheel  ntkhess-<version>-py3-none-any.whl  holding the package directory
    ntkhess/ (*.py and py.typed only) and a .dist-info (METADATA, WHEEL,
    top_level.txt, RECORD);
  * an sdist ntkhess-<version>.tar.gz (PKG-INFO, pyproject.toml, _backend/,
    ntkhess/);
  * an editable wheel (PEP 660) holding one .pth file that puts this source
    directory on sys.path.
Metadata comes from the [project] table of pyproject.toml (name,
description, requires-python); the version is dynamic, read from
include/ntkhess/core.h (NH_VERSION_*) next to python/ -- the one place it is
kept -- or, in an unpacked sdist, from its PKG-INFO.  The wheel's
ntkhess/_version.py carries that number written in.

Bundled library: when the repository's build/ holds libntkhess.so (after
`make`), the wheel also carries ntkhess/_libs/libntkhess.so.0 and
libntkhess-io.so (the io library finds the core beside it through its
$ORIGIN rpath), so an installed package works alone; the wheel is then
tagged for this platform (py3-none-<platform>) instead of py3-none-any.
NTKHESS_NO_BUNDLE=1 builds the pure-Python wheel regardless.
"""
import base64
import hashlib
import io
import os
import re
import sysconfig
import tarfile
import time
import zipfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)  # the python/ directory (the project root)
_PKG = "ntkhess"
_REPO = os.path.dirname(_ROOT)  # the repository, when building from its python/
_HEADER = os.path.join(_REPO, "include", "ntkhess", "core.h")


def _header_version(path):
    """The package's own parser (ntkhess/_version.py), loaded from its file so
    that building imports nothing of the package: one copy of the rule."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_nh_version", os.path.join(_ROOT, _PKG, "_version.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        return mod.version_from_header(path)
    except ValueError as e:
        raise RuntimeError(str(e)) from None


def _dynamic_version():
    if os.path.isfile(_HEADER):
        return _header_version(_HEADER)
    pkg_info = os.path.join(_ROOT, "PKG-INFO")  # an unpacked sdist
    if os.path.isfile(pkg_info):
        with open(pkg_info) as f:
            for line in f:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    raise RuntimeError("version: neither %s nor an sdist's PKG-INFO found" % _HEADER)


def _project():
    path = os.path.join(_ROOT, "pyproject.toml")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        import tomllib  # Python >= 3.11
        proj = tomllib.loads(raw.decode("utf-8")).get("project", {})
    except ImportError:  # older Pythons: the few flat keys we need
        proj, inside = {}, False
        for line in raw.decode("utf-8").splitlines():
            s = line.strip()
            if s.startswith("["):
                inside = s == "[project]"
                continue
            m = re.match(r'^([A-Za-z-]+)\s*=\s*"([^"]*)"\s*$', s)
            if inside and m:
                proj[m.group(1)] = m.group(2)
    if "version" not in proj:
        proj["version"] = _dynamic_version()
    for key in ("name", "version"):
        if key not in proj:
            raise RuntimeError("pyproject.toml: [project] has no %r" % key)
    return proj


def _metadata(proj):
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % proj["name"],
        "Version: %s" % proj["version"],
    ]
    if proj.get("description"):
        lines.append("Summary: %s" % proj["description"])
    if proj.get("requires-python"):
        lines.append("Requires-Python: %s" % proj["requires-python"])
    for dep in proj.get("dependencies", []) or []:
        lines.append("Requires-Dist: %s" % dep)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _dist_name(proj):
    return re.sub(r"[-_.]+", "_", proj["name"]).lower(), proj["version"]


def _package_files():
    """(archive name, absolute path) of the package's files, sorted."""
    out = []
    top = os.path.join(_ROOT, _PKG)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith(".py") or fn == "py.typed":
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, _ROOT).replace(os.sep, "/")
                out.append((rel, full))
    if not out:
        raise RuntimeError("no package files under %s" % top)
    return out


def _bundled_libs():
    """(archive name, bytes) of the built shared libraries, or [] when the
    repository has no build (or NTKHESS_NO_BUNDLE=1)."""
    if os.environ.get("NTKHESS_NO_BUNDLE") == "1":
        return []
    build = os.path.join(_REPO, os.environ.get("BUILD", "build"))
    core = os.path.join(build, "libntkhess.so")
    if not os.path.isfile(core):
        return []
    out = [(_PKG + "/_libs/libntkhess.so.0", _read(core))]
    io_lib = os.path.join(build, "libntkhess-io.so")
    if os.path.isfile(io_lib):
        out.append((_PKG + "/_libs/libntkhess-io.so", _read(io_lib)))
    return out


def _wheel_files(proj):
    """The package's files for a wheel: _version.py with the version written
    in, plus the bundled libraries."""
    files = []
    for rel, full in _package_files():
        if rel == _PKG + "/_version.py":
            data = ('"""Written by python/_backend from include/ntkhess/core.h."""\n'
                    '__version__ = "%s"\n' % proj["version"]).encode("utf-8")
        else:
            data = _read(full)
        files.append((rel, data))
    return files + _bundled_libs()


def _platform_tag():
    return re.sub(r"[^A-Za-z0-9]", "_", sysconfig.get_platform())


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def _wheel_meta(tag):
    pure = "true" if tag == "py3-none-any" else "false"
    return ("Wheel-Version: 1.0\nGenerator: ntkhess_backend\nRoot-Is-Purelib: %s\nTag: %s\n"
            % (pure, tag)).encode("ascii")


def _write_wheel(wheel_directory, files, proj):
    """files: list of (archive name, bytes).  Returns the wheel's basename."""
    dist, version = _dist_name(proj)
    info = "%s-%s.dist-info" % (dist, version)
    binary = any(n.startswith(_PKG + "/_libs/") for n, _ in files)
    tag = "py3-none-" + _platform_tag() if binary else "py3-none-any"
    wheel_name = "%s-%s-%s.whl" % (dist, version, tag)
    meta = [
        (info + "/METADATA", _metadata(proj)),
        (info + "/WHEEL", _wheel_meta(tag)),
        (info + "/top_level.txt", (_PKG + "\n").encode("ascii")),
    ]
    entries = list(files) + meta
    record = [_record_line(n, d) for n, d in entries] + [info + "/RECORD,,"]
    entries.append((info + "/RECORD", ("\n".join(record) + "\n").encode("utf-8")))
    os.makedirs(wheel_directory, exist_ok=True)
    path = os.path.join(wheel_directory, wheel_name)
    tmp = path + ".tmp"
    # Fixed timestamps: the same sources give the same wheel, byte for byte.
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = (0o755 if name.endswith((".so", ".so.0")) else 0o644) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    os.replace(tmp, path)
    return wheel_name


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------ PEP 517 hooks

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    proj = _project()
    dist, version = _dist_name(proj)
    info = "%s-%s.dist-info" % (dist, version)
    d = os.path.join(metadata_directory, info)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "wb") as f:
        f.write(_metadata(proj))
    with open(os.path.join(d, "WHEEL"), "wb") as f:
        f.write(_wheel_meta("py3-none-" + _platform_tag() if _bundled_libs() else "py3-none-any"))
    with open(os.path.join(d, "top_level.txt"), "wb") as f:
        f.write((_PKG + "\n").encode("ascii"))
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    proj = _project()
    return _write_wheel(wheel_directory, _wheel_files(proj), proj)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    proj = _project()
    dist, version = _dist_name(proj)
    pth = ("%s\n" % _ROOT).encode("utf-8")
    return _write_wheel(wheel_directory, [("__editable__.%s-%s.pth" % (dist, version), pth)], proj)


def build_sdist(sdist_directory, config_settings=None):
    proj = _project()
    dist, version = _dist_name(proj)
    base = "%s-%s" % (dist, version)
    members = [("pyproject.toml", os.path.join(_ROOT, "pyproject.toml")),
               ("_backend/ntkhess_backend.py", os.path.join(_HERE, "ntkhess_backend.py"))]
    members += _package_files()
    os.makedirs(sdist_directory, exist_ok=True)
    name = base + ".tar.gz"
    path = os.path.join(sdist_directory, name)
    tmp = path + ".tmp"
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))

    def add(tf, arcname, data):
        ti = tarfile.TarInfo(base + "/" + arcname)
        ti.size, ti.mtime, ti.mode = len(data), mtime, 0o644
        tf.addfile(ti, io.BytesIO(data))

    with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        add(tf, "PKG-INFO", _metadata(proj))
        for arc, full in members:
            if arc == _PKG + "/_version.py":
                add(tf, arc, ('__version__ = "%s"\n' % version).encode("utf-8"))
            else:
                add(tf, arc, _read(full))
    os.replace(tmp, path)
    return name
