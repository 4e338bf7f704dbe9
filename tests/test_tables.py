#!/usr/bin/python3
"""One table per enumeration: the activations and losses are declared once in
the library (src/core/act.c, src/core/loss.c).  This test reads the tables from
libntkhess itself (ctypes, nh_act_count/nh_act_name/...) and checks that every
copy shown to a user equals them, so drift fails here:
  - the CLI: every --act/--acts/--loss help line lists exactly the table's
    names, the parser accepts every name, and the unknown-name message lists them;
  - the docs: the tables in docs/conventions.md (names in order, parameter
    defaults, loss targets);
  - the Python package: ntkhess.ACTIVATIONS and ntkhess.LOSSES;
  - no hand-typed list left: no C string literal in src/ (outside the two
    tables) and no Python sequence literal in python/ names three or more
    activations, or every loss.
Prints FAIL lines and a closing 'N passed, N failed'.
"""
import ctypes
import math
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhtest import BIN, LIB, ROOT, asan_reexec, check, cli, finish, section  # noqa: E402

asan_reexec(LIB)  # an ASan build (make asan) needs its runtime preloaded to load the library


def library_tables():
    """(acts, losses, params): acts = [(name, default param or None, title)], losses = [(name, targets)],
    params = {name: parameter name or None}."""
    L = ctypes.CDLL(LIB)
    for fn, res, args in (("nh_act_count", ctypes.c_size_t, []), ("nh_loss_count", ctypes.c_size_t, []),
                          ("nh_act_name", ctypes.c_char_p, [ctypes.c_int]),
                          ("nh_act_title", ctypes.c_char_p, [ctypes.c_int]),
                          ("nh_act_default_param", ctypes.c_double, [ctypes.c_int]),
                          ("nh_loss_name", ctypes.c_char_p, [ctypes.c_int]),
                          ("nh_loss_targets", ctypes.c_char_p, [ctypes.c_int])):
        getattr(L, fn).restype = res
        getattr(L, fn).argtypes = args
    L.nh_act_param_name.restype, L.nh_act_param_name.argtypes = ctypes.c_char_p, [ctypes.c_int]
    params = {}
    acts = []
    for i in range(L.nh_act_count()):
        pn = L.nh_act_param_name(i)
        params[L.nh_act_name(i).decode()] = pn.decode() if pn else None
        p = L.nh_act_default_param(i)
        acts.append((L.nh_act_name(i).decode(), None if math.isnan(p) else p, L.nh_act_title(i).decode()))
    losses = [(L.nh_loss_name(i).decode(), L.nh_loss_targets(i).decode()) for i in range(L.nh_loss_count())]
    return acts, losses, params


def join(names):
    """'a, b or c', as the library and the CLI write a list."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def commands():
    r = cli("--help")
    block = r.stdout.split("Commands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^  ([a-z0-9]+)\s{2,}\S", block, re.M)]


def test_library(acts, losses):
    names = [a[0] for a in acts]
    check(len(names) >= 12 and len(set(names)) == len(names), "activation names unique", names)
    check([l[0] for l in losses] == ["mse", "bce", "ce"], "losses mse, bce, ce in nh_loss order", losses)
    check(all(a[2] for a in acts), "every activation has a title")
    check(all(l[1] for l in losses), "every loss names its targets")


def test_cli_help(acts, losses, params):
    act_list, loss_list = join(a[0] for a in acts), join("%s (%s)" % l for l in losses)
    param_list = join("%s:%s (default %g)" % (a[0], params[a[0]], a[1]) for a in acts if params[a[0]])
    seen = {"act": 0, "acts": 0, "loss": 0, "act_params": 0}
    for cmd in commands():
        out = cli(cmd, "--help").stdout
        check("{" + "acts}" not in out and "{" + "losses}" not in out and "{" + "act_params}" not in out,
              "%s --help: every {...} name list expanded" % cmd)
        for m in re.finditer(r"^  --(act|acts|loss) (\S+)\s+(.*)$", out, re.M):
            opt, text = m.group(1), m.group(3)
            seen[opt] += 1
            want = loss_list if opt == "loss" else act_list
            check(want in text, "%s --help: --%s lists the library's names" % (cmd, opt),
                  "(got %r, want ...%r...)" % (text, want))
        if "leaky_relu:" in out or "softplus:" in out:  # a command that takes parameters names them all
            seen["act_params"] += 1
            check(param_list in out, "%s --help: the parameters are the library's" % cmd, param_list)
    # train, curvature, measure, spectrum, landscape, predict, data, bench take --loss;
    # init, kernel, gram, predict, fig3, bench take --act; fig1, fig2 take --acts.
    check(seen["loss"] >= 7 and seen["act"] >= 5 and seen["acts"] >= 2, "the option rows are found", seen)


def test_cli_parse(acts, losses):
    for name, param, _ in acts:
        r = cli("kernel", "--act", name, "--depth", "1", "--x", "1,0.5", "--y", "0.3,-1")
        check(r.returncode == 0, "kernel --act %s accepted" % name, r.stderr.strip())
    r = cli("kernel", "--act", "swish", "--depth", "1", "--x", "1", "--y", "1")
    check(r.returncode == 2 and join(a[0] for a in acts) in r.stderr,
          "unknown --act: the message lists the table", r.stderr.strip())
    with tempfile.TemporaryDirectory() as tmp:
        for name, _ in losses:
            r = cli("data", "sphere", "--n", "8", "--dim", "3", "--loss", name, "--out", os.path.join(tmp, name))
            check(r.returncode == 0, "data --loss %s accepted" % name, r.stderr.strip())
    r = cli("train", "--loss", "hinge")
    check(r.returncode == 2 and join(l[0] for l in losses) in r.stderr,
          "unknown --loss: the message lists the table", r.stderr.strip())


def doc_table(path, header):
    """Rows (lists of cells) of the markdown table whose header starts with header."""
    lines = open(path, encoding="utf-8").read().splitlines()
    for i, l in enumerate(lines):
        if l.startswith(header):
            rows = []
            for r in lines[i + 2:]:
                if not r.startswith("|"):
                    break
                rows.append([c.strip() for c in r.strip().strip("|").split("|")])
            return rows
    return []


def test_docs(acts, losses):
    path = os.path.join(ROOT, "docs", "conventions.md")
    rows = doc_table(path, "| `--act` |")
    names = [r[0].strip("`") for r in rows]
    check(names == [a[0] for a in acts], "docs/conventions.md: activation table = library table",
          "(docs %s, library %s)" % (names, [a[0] for a in acts]))
    for r, (name, param, _) in zip(rows, acts):
        m = re.search(r"\(([-0-9.e]+)\)", r[2])
        got = float(m.group(1)) if m else None
        check(got == param and (param is None) == (r[2] == "–"),
              "docs: %s parameter default" % name, "(docs %r, library %r)" % (r[2], param))
    rows = doc_table(path, "| `--loss` |")
    check([r[0].strip("`") for r in rows] == [l[0] for l in losses], "docs/conventions.md: loss table = library table",
          rows)


def test_python(acts, losses):
    env = dict(os.environ, NTKHESS_LIB=LIB, PYTHONPATH=os.path.join(ROOT, "python"))
    code = "import ntkhess as nh; print(list(nh.ACTIVATIONS)); print(list(nh.LOSSES))"
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=env, timeout=120)
    out = r.stdout.splitlines()
    check(r.returncode == 0 and len(out) == 2, "python: import ntkhess", r.stderr.strip()[-300:])
    if len(out) == 2:
        check(out[0] == str([a[0] for a in acts]), "python: ntkhess.ACTIVATIONS = library table", out[0])
        check(out[1] == str([l[0] for l in losses]), "python: ntkhess.LOSSES = library table", out[1])


def runs(text, names):
    """Sets of table names written one after another, separated only by
    commas, bars, slashes, spaces, quotes, 'or' or 'and' (a list, not prose)."""
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    name = r"(?<![A-Za-z0-9_])(?:%s)(?![A-Za-z0-9_])" % alt
    sep = r"(?:[\s,|/\"']|\bor\b|\band\b)+"
    return [set(re.findall(name, m.group(0))) for m in re.finditer(r"%s(?:%s%s)*" % (name, sep, name), text)]


def test_no_copies(acts, losses):
    """No hand-typed list: a C string literal or a Python sequence literal
    with a run of >= 3 activation names or of every loss name ("mse, bce or
    ce", "mse|bce|ce").  The tables are the exception."""
    anames, lnames = [a[0] for a in acts], [l[0] for l in losses]
    tables = {os.path.join("src", "core", "act.c"), os.path.join("src", "core", "loss.c")}
    bad = []
    for top, pat in (("src", r'"((?:[^"\\\n]|\\.)*)"'), ("python", r"[(\[]\s*((?:[\"'][^\"'\n]*[\"']\s*,\s*){2,}[\"'][^\"'\n]*[\"'])")):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith((".c", ".h", ".py")):
                    continue
                path = os.path.join(d, f)
                rel = os.path.relpath(path, ROOT)
                if rel in tables:
                    continue
                src = open(path, encoding="utf-8").read()
                if top == "src":  # comments are prose, not lists a parser uses
                    src = re.sub(r"/\*.*?\*/|//[^\n]*", "", src, flags=re.S)
                for m in re.finditer(pat, src, re.S):
                    s = m.group(1)
                    if any(len(r) >= 3 for r in runs(s, anames)) or set(lnames) in runs(s, lnames):
                        bad.append("%s: %r" % (rel, s[:80]))
    check(not bad, "no hand-typed activation or loss list in src/ or python/", "\n  " + "\n  ".join(bad))


def main():
    check(os.path.isfile(LIB) and os.path.isfile(BIN), "built library and CLI", (LIB, BIN))
    acts, losses, params = library_tables()
    check([n for n, p in params.items() if p] == [a[0] for a in acts if a[1] is not None],
          "an activation has a parameter name exactly when it has a default", params)
    section("cli help", test_cli_help, acts, losses, params)
    for name, fn in (("library", test_library), ("cli parse", test_cli_parse),
                     ("docs", test_docs), ("python", test_python), ("no copies", test_no_copies)):
        section(name, fn, acts, losses)
    finish()


if __name__ == "__main__":
    main()
