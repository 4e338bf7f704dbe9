#!/usr/bin/env python3
"""Write the seed corpora (fuzz/corpus/<target>/seed-*) and dictionaries
(fuzz/dict/*.dict) for the ntkhess fuzzers.  Standard library only (no
NumPy needed); the .npy files follow NumPy's writer byte for byte (header
padded with spaces to a multiple of 64 bytes, ending in a newline).

Rerunning rewrites the seed-* files and the dictionaries only; inputs the
fuzzers found (named by their SHA-1) are left alone.

    python3 fuzz/gen_seeds.py
"""
import gzip
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
DICT = os.path.join(HERE, "dict")
DELIM = b"#NHFUZZ#"

# ------------------------------------------------------------------ npy

FMT = {  # NumPy kind+size -> struct code
    "f8": "d", "f4": "f", "i8": "q", "i4": "i", "i2": "h", "i1": "b",
    "u8": "Q", "u4": "I", "u2": "H", "u1": "B", "b1": "?",
}


def shape_repr(shape, py2=False):
    suffix = "L" if py2 else ""
    if len(shape) == 0:
        return "()"
    if len(shape) == 1:
        return "(%d%s,)" % (shape[0], suffix)
    return "(" + ", ".join("%d%s" % (s, suffix) for s in shape) + ")"


def npy(values, shape, descr="<f8", version=1, align=64, header=None, py2=False):
    """A .npy file: descr as written (e.g. '<f8', '>i4', '|u1')."""
    order = descr[0] if descr[0] in "<>|=" else "="
    code = descr[-2:]
    end = ">" if order == ">" else "<"
    data = b"".join(struct.pack(end + FMT[code], v) for v in values)
    if header is None:
        header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_repr(shape, py2))
    pre = 10 if version == 1 else 12
    total = pre + len(header) + 1
    pad = (-total) % align
    htext = (header + " " * pad + "\n").encode("latin-1")
    if version == 1:
        preamble = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(htext))
    else:
        preamble = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(htext))
    return preamble + htext + data


def sample_values(code, n):
    if code[0] == "f":
        base = [0.0, -1.5, 3.25, 1e-300 if code == "f8" else 1e-30, -0.0, 2.0 ** 60, 7.0, 0.125]
    elif code == "b1":
        base = [True, False, True, True, False]
    elif code[0] == "i":
        bits = 8 * int(code[1])
        base = [0, -1, 1, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, 42]
    else:
        bits = 8 * int(code[1])
        base = [0, 1, (1 << bits) - 1, 200 % (1 << bits), 7]
    return [base[i % len(base)] for i in range(n)]


def npy_seeds():
    out = {}
    for code in FMT:
        orders = ["|", "<", ">"] if code in ("i1", "u1", "b1") else ["<", ">"]
        for o in orders:
            out["seed-%s%s-2x3" % ({"<": "le-", ">": "be-", "|": "na-"}[o], code)] = npy(
                sample_values(code, 6), (2, 3), o + code)
    for v in (1, 2, 3):
        out["seed-v%d-f8-4" % v] = npy([1.0, 2.0, -3.0, 0.5], (4,), "<f8", version=v)
    out["seed-0d-f8"] = npy([3.5], (), "<f8")
    out["seed-empty-f8-0"] = npy([], (0,), "<f8")
    out["seed-empty-f8-3x0"] = npy([], (3, 0), "<f8")
    out["seed-3d-i2"] = npy(sample_values("i2", 8), (2, 2, 2), "<i2")
    out["seed-8d-u1"] = npy([1, 2], (1, 1, 1, 1, 1, 1, 1, 2), "|u1")
    out["seed-nonfinite-f8"] = npy([float("nan"), float("inf"), -float("inf")], (3,), "<f8")
    out["seed-py2-long-shape"] = npy([1.0, 2.0], (1, 2), "<f8", py2=True, align=16)
    out["seed-align16"] = npy([1.0], (1,), "<f8", align=16)
    out["seed-native-eq-f4"] = npy([1.0, 2.0], (2,), "=f4")
    out["seed-bare-f8"] = npy([1.0], (1,), "f8",
                              header="{'descr': 'f8', 'fortran_order': False, 'shape': (1,)}")
    out["seed-keys-reordered"] = npy([5.0, 6.0], (2, 1), "<f8",
                                     header='{"shape": (2, 1), "fortran_order": False, "descr": "<f8"}')
    # Refused, but interesting neighbours of valid files.
    out["seed-bad-fortran"] = npy([1.0, 2.0], (1, 2), "<f8",
                                  header="{'descr': '<f8', 'fortran_order': True, 'shape': (1, 2), }")
    out["seed-bad-structured"] = npy([1.0], (1,), "<f8",
                                     header="{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }")
    out["seed-bad-truncated"] = npy([1.0, 2.0, 3.0], (3,), "<f8")[:-5]
    out["seed-bad-f2"] = npy([0, 1], (2,), "<u2",
                             header="{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }")
    # Sizes: a product that overflows size_t, a count whose bytes overflow,
    # one over the memory limit (nothing follows the headers).
    for name, shp in (("seed-bad-overflow-product", "(4294967296, 4294967296)"),
                      ("seed-bad-overflow-bytes", "(2305843009213693952,)"),
                      ("seed-bad-too-large", "(100000000,)")):
        out[name] = npy([], (0,), "<f8",
                        header="{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % shp)
    return out

# ------------------------------------------------------------------ csv

def csv_seeds():
    return {
        "seed-header": b"x1,x2,y\n0.5,1,2\n-1e-3,2.5e2,0\n3,4,-7.25\n",
        "seed-noheader": b"1,2,3\n4,5,6\n",
        "seed-crlf-blank": b"a, b ,label\r\n\r\n 1 ,\t2,0\r\n  \t \r\n3,4,1\r\n",
        "seed-no-final-newline": b"1.5,2.5\n3.5,4.5",
        "seed-hexfloat-exp": b"0x1p-3,1E+2,.5,5.\n-0,+7,1e-320,2\n",
        "seed-wide": (",".join("c%d" % i for i in range(12)) + "\n" +
                      ",".join(str(i * 0.25) for i in range(12)) + "\n").encode(),
        "seed-bad-ragged": b"1,2,3\n4,5\n",
        "seed-bad-onecol": b"y\n1\n2\n",
        "seed-bad-nan": b"1,nan\n2,inf\n",
        "seed-bad-overflow": b"1e999,1\n",
        "seed-bad-text": b"1,2\nx,3\n",
        "seed-bad-empty-field": b"1,,3\n",
        "seed-header-only": b"a,b,c\n",
    }

# ------------------------------------------------------------------ idx

def idx(shape, data):
    magic = bytes([0, 0, 8, len(shape)])
    return magic + b"".join(struct.pack(">I", s) for s in shape) + bytes(data)


def idx_seeds():
    images = idx((2, 3, 3), range(18))
    labels = idx((4,), [3, 1, 4, 1])
    table = idx((2, 2), [9, 8, 7, 6])
    empty = idx((0, 28, 28), [])
    out = {}
    for name, p in (("images", images), ("labels", labels), ("2d", table), ("empty", empty)):
        out["seed-raw-" + name] = b"\x00" + p                       # raw file + parse
        out["seed-gz-" + name] = b"\x01" + p                        # gzip-wrapped
        out["seed-gzcut-" + name] = b"\x02" + p                     # truncated gzip
        out["seed-gz2-" + name] = b"\x03" + p                       # two members + garbage
        out["seed-gzfile-" + name] = b"\x00" + gzip.compress(p, 9, mtime=0)  # gzip bytes to mutate
    # 2 MiB of zeros (gzip ~2 KB): the data buffer grows past its first 1 MiB chunk.
    out["seed-gzfile-big"] = b"\x00" + gzip.compress(idx((2, 1024, 1024), bytes(2 << 20)), 9, mtime=0)
    # A header claiming Fashion-MNIST's 60000 x 28 x 28 over 10 bytes of data.
    out["seed-bad-claims-huge"] = b"\x01" + idx((60000, 28, 28), range(10))
    out["seed-bad-overflow"] = b"\x00" + bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3
    out["seed-bad-type"] = b"\x00" + bytes([0, 0, 0x0d, 1]) + struct.pack(">I", 1) + b"\0\0\0\0"
    out["seed-bad-trailing"] = b"\x00" + labels + b"\x00"
    out["seed-bad-4d"] = b"\x00" + bytes([0, 0, 8, 4]) + b"\0\0\0\1" * 4 + b"\x05"
    return out

# ---------------------------------------------------------------- mnist

def mnist_seeds():
    img = [((i * 37) % 256) / 255.0 for i in range(784)]
    one = json.dumps({"data": [round(v, 4) for v in img]}, separators=(",", ":")).encode()
    ints = ("{\"data\": [" + ",".join("1" if i % 3 == 0 else "0" for i in range(784)) + "]}\n").encode()
    two = ("{\"data\":[" + ",".join(("0.5" if i % 2 else "1e-3") for i in range(2 * 784)) + "], \"label\": 7}").encode()
    return {
        "seed-one-image": one,
        "seed-ints-ws": ints,
        "seed-two-images": two,
        "seed-empty-data": b'{"data": []}',
        "seed-bad-range": ("{\"data\":[" + ",".join("1.5" if i == 5 else "0" for i in range(784)) + "]}").encode(),
        "seed-bad-count": b'{"data": [0, 0.5, 1]}',
        "seed-bad-type": b'{"data": [0, "x"]}',
        "seed-bad-toplevel": b"[0, 1]",
        "seed-bad-trailing": b'{"data": []} x',
    }

# ---------------------------------------------------------------- model

def f8(values, shape, descr="<f8"):
    return npy(values, shape, descr)


def model_parts(widths, act="softplus", beta=0.1, param="ntk", P=True, descr="<f8", extra=None):
    cfg = {"widths": widths, "act": act, "beta": beta, "param": param}
    Pn = sum((widths[l] + 1) * widths[l + 1] for l in range(len(widths) - 1))
    if P:
        cfg["P"] = Pn
    if extra:
        cfg.update(extra)
    parts = [json.dumps(cfg, indent=2).encode()]
    k = 0
    for l in range(len(widths) - 1):
        nW = widths[l] * widths[l + 1]
        vals = [((k + i) % 7 - 3) * 0.5 for i in range(nW)]
        parts.append(npy(vals if descr.endswith("f8") or descr.endswith("f4") else [int(v * 2) for v in vals],
                         (widths[l + 1], widths[l]), descr))
        k += nW
        nb = widths[l + 1]
        parts.append(npy([0.25 * i for i in range(nb)], (nb,), "<f8"))
    return parts


def model_theta(widths):
    """theta (W0, b0, W1, b1, ...) of model_parts(widths) as little-endian float64 bytes."""
    import struct
    vals, k = [], 0
    for l in range(len(widths) - 1):
        nW = widths[l] * widths[l + 1]
        vals += [((k + i) % 7 - 3) * 0.5 for i in range(nW)]
        k += nW
        vals += [0.25 * i for i in range(widths[l + 1])]
    return struct.pack("<%dd" % len(vals), *vals)


def model_seeds():
    out = {
        "seed-2-3-1": model_parts([2, 3, 1]),
        "seed-deep-tanh": model_parts([1, 2, 2, 1], act="tanh", P=False),
        "seed-depth4-mf": model_parts([2, 1, 2, 1, 1], act="gelu", param="mf"),
        "seed-f4-weights": model_parts([2, 2], act="erf", beta=-0.0, descr=">f4"),
        "seed-int-weights": model_parts([3, 1], act="relu", descr="<i2"),
        "seed-nsoftplus-nobeta": model_parts([1, 1], act="nsoftplus", P=False),
    }
    bad = model_parts([2, 3, 1])
    bad[0] = b'{"widths": [2, 3, 1], "act": "softplus", "P": 99}'
    out["seed-bad-P"] = bad
    bad2 = model_parts([2, 3, 1])
    bad2[1] = npy([1.0] * 6, (2, 3), "<f8")  # transposed W0
    out["seed-bad-shape"] = bad2
    bad3 = model_parts([1, 1])
    bad3[1] = npy([float("nan")], (1, 1), "<f8")
    out["seed-bad-nan"] = bad3
    out["seed-bad-config-only"] = [b'{"widths": [4, 4], "act": "sin"}']
    return {k: DELIM.join(v) for k, v in out.items()}


def ckpt_state(step, rows, last, params, ident=b"id.command train\n", extra=b""):
    """state.txt of src/cli/ckpt.c with a correct sum line."""
    import hashlib
    body = (b"ntkhess-checkpoint 2\n" + ident + b"step %d\nparams %s\nlog.rows %d\nlog.last %s\n"
            % (step, params.encode(), rows, hashlib.sha256(last).hexdigest().encode()) + extra)
    return body + b"sum " + hashlib.sha256(body).hexdigest().encode() + b"\n"


def checkpoint_seeds():
    import hashlib
    out = {}
    csv = b"step,t,loss\n0,0,1.5\n1,0.25,1.25\n2,0.5,1.0\n3,0.75,0.9\n"
    parts = model_parts([2, 3, 1])
    params = hashlib.sha256(model_theta([2, 3, 1])).hexdigest()
    for layout, (step, rows, last) in enumerate(((2, 4, b"2,0.5,1.0"), (0, 2, b"0,0,1.5"))):
        state = bytes([0x30 + layout]) + ckpt_state(step, rows, last, params)
        out["seed-layout%d" % layout] = DELIM.join([state, parts[0], csv] + parts[1:])
    ok = b"0" + ckpt_state(3, 5, b"3,0.75,0.9", params)
    out["seed-valid-full-log"] = DELIM.join([ok, parts[0], csv] + parts[1:])
    out["seed-log-missing-rows"] = DELIM.join([ok, parts[0], b"step,t,loss\n0,0,1.5\n"] + parts[1:])
    out["seed-log-other-header"] = DELIM.join([ok, parts[0], csv.replace(b"step,t", b"k,t")] + parts[1:])
    out["seed-torn-csv"] = DELIM.join([ok, parts[0], csv + b"4,1.0,0.8"] + parts[1:])
    out["seed-other-identity"] = DELIM.join([b"0" + ckpt_state(1, 3, b"1,0.25,1.25", params, b"id.command measure\n"),
                                            parts[0], csv] + parts[1:])
    out["seed-bad-step"] = DELIM.join([b"0" + ckpt_state(-3, 2, b"x", params), parts[0], csv] + parts[1:])
    out["seed-huge-step"] = DELIM.join([b"0" + ckpt_state(9223372036854775807, 2, b"x", params), parts[0], csv]
                                       + parts[1:])
    out["seed-bad-params"] = DELIM.join([b"0" + ckpt_state(1, 3, b"1,0.25,1.25", "0" * 64), parts[0], csv] + parts[1:])
    out["seed-bad-sum"] = DELIM.join([ok.replace(b"step 3", b"step 2"), parts[0], csv] + parts[1:])
    out["seed-bad-state"] = DELIM.join([b"0garbage\n", parts[0], csv] + parts[1:])
    out["seed-no-model"] = DELIM.join([ok, b"", csv])
    return out

# ----------------------------------------------------------------- fig1

FIG1_HEADER = (b"# ntkhess fig1 trials: act=softplus data=sphere n=8 width=4 beta=0.10000000000000001 "
               b"lr=0.25 steps=4 every=4 probes=1 seed=0\n")


def fig1_line(r, nv, scale=1.0):
    vals = [repr(scale * (r + 1) * (k + 1) / 3.0) for k in range(2 * nv)]
    return ("%d," % r + ",".join(vals) + "\n").encode()


def fig1_seeds():
    out = {}
    for nrec in (1, 2):
        nv = 4 * nrec
        flags = 0x80 | (nrec - 1)
        body = b"".join(fig1_line(r, nv) for r in (0, 2, 1))
        out["seed-nrec%d" % nrec] = bytes([flags, 5]) + body
        out["seed-nrec%d-inline-header" % nrec] = bytes([nrec - 1, 3]) + FIG1_HEADER + body
    nv = 4
    out["seed-torn"] = bytes([0x80, 4]) + fig1_line(0, nv) + fig1_line(1, nv)[:-9]
    out["seed-dup-partial"] = bytes([0x80, 4]) + fig1_line(0, nv) + b"0,9,9\n" + fig1_line(3, nv, 1e-300)
    out["seed-out-of-range"] = bytes([0x80, 1]) + fig1_line(7, nv) + b"-1,1\n"
    out["seed-bad-header"] = bytes([0x00, 2]) + b"# ntkhess fig1 trials: act=tanh\n" + fig1_line(0, nv)
    return out

# ----------------------------------------------------------- dictionaries

def dict_line(tok):
    if isinstance(tok, str):
        tok = tok.encode("latin-1")
    s = "".join(chr(b) if 0x20 <= b < 0x7f and b not in (0x22, 0x5c) else "\\x%02X" % b for b in tok)
    return '"%s"\n' % s


NPY_TOKENS = [b"\x93NUMPY", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"\x93NUMPY\x03\x00",
              "'descr'", "'fortran_order'", "'shape'", '"descr"', "False", "True", ": ", ", ", "()", ",)",
              "L", "{", "}", "\n"] + ["'%s%s'" % (o, c) for c in FMT for o in "<>|="] + [
              "'f2'", "'c16'", "'O'", "'<U3'", "[('a', '<f8')]"]
CSV_TOKENS = [",", "\r\n", "\n", " ", "\t", "1e308", "1e309", "-1e-320", "nan", "inf", "0x1p-3", "0X1P+3",
              ".", "E", "+", "-", "infinity", "x,y,label"]
IDX_TOKENS = [b"\x00\x00\x08\x03", b"\x00\x00\x08\x01", b"\x00\x00\x08\x02", b"\x00\x00\x00\x1c",
              b"\xff\xff\xff\xff", b"\x1f\x8b\x08\x00", b"\x00\x00\x00\x00"]
JSON_TOKENS = ['"data"', '{"data": [', "]}", "[", "]", "{", "}", ",", ":", "null", "true", "false",
               "1e-3", "1.0", "0", "-0", "1e400", '"\\u0000"', "\n"]
ACTS = ["softplus", "nsoftplus", "tanh", "arctan", "erf", "sigmoid", "gelu", "sin", "relu", "identity"]
MODEL_TOKENS = ['"widths"', '"act"', '"beta"', '"param"', '"P"', '"ntk"', '"mf"', "[1, 1]", "9007199254740993",
                "1e20", "-1", DELIM] + ['"%s"' % a for a in ACTS] + NPY_TOKENS[:12]
CKPT_TOKENS = ["ntkhess-checkpoint 2\n", "id.command train\n", "step ", "\nstep ", "params ", "log.rows ",
               "log.last ", "sum ", "-1", "ffffffffffffffff", "99999999999999999999",
               "9223372036854775807"] + MODEL_TOKENS
FIG1_TOKENS = [FIG1_HEADER, ",", "\n", "nan", "inf", "1e-300", "0x1p3", " ", "-", "15,", "0,"]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    sets = {
        "fuzz_npy": (npy_seeds(), NPY_TOKENS, "npy"),
        "fuzz_csv": (csv_seeds(), CSV_TOKENS, "csv"),
        "fuzz_idx": (idx_seeds(), IDX_TOKENS, "idx"),
        "fuzz_mnist_json": (mnist_seeds(), JSON_TOKENS, "mnist_json"),
        "fuzz_model_dir": (model_seeds(), MODEL_TOKENS, "model_dir"),
        "fuzz_checkpoint": (checkpoint_seeds(), CKPT_TOKENS, "checkpoint"),
        "fuzz_fig1_trials": (fig1_seeds(), FIG1_TOKENS, "fig1_trials"),
    }
    total = 0
    for target, (seeds, tokens, dname) in sets.items():
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.remove(os.path.join(d, f))
        for name, data in seeds.items():
            write(os.path.join(d, name), data)
            total += len(data)
        seen = set()
        lines = []
        for t in tokens:
            line = dict_line(t)
            if line not in seen:
                seen.add(line)
                lines.append(line)
        write(os.path.join(DICT, dname + ".dict"),
              ("# libFuzzer dictionary for %s (generated by fuzz/gen_seeds.py)\n" % target + "".join(lines)).encode())
        print("%-18s %3d seeds" % (target, len(seeds)))
    print("seed bytes: %d" % total)


if __name__ == "__main__":
    sys.exit(main())
