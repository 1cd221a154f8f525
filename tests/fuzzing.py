"""A small mutation fuzzer for lstmrt's file loaders and its native model creation, run in a worker process.

    python tests/fuzzing.py loaders --seconds 20 --out summary.json --artifacts DIR
    python tests/fuzzing.py loaders --format onnx ...     # only the seeds of one format (repeatable)
    python tests/fuzzing.py native --seconds 8 --out summary.json --artifacts DIR

tests/test_fuzz.py runs both for a bounded time (LSTMRT_FUZZ_SECONDS to run longer); scripts/reliability_report.py
runs them for the report. Inputs come from the seed corpus tests/fuzz_corpus/ (scripts/make_fuzz_corpus.py) and
are mutated deterministically: input i of a run with seed S is reproducible with `--seed S --only i` (and the same
--format options: they choose the seeds the inputs cycle through).

Contract checked for every input:
- loaders: lstmrt.load either returns a Model (then predict and, where possible, a stream step must work) or raises
  a lstmrt.LoadError; UnexpectedContentError (the loader's backstop for exceptions no check anticipated) counts as
  a finding, as does any other exception, a warning (but LayerOrderWarning: a forward() the file does not hold
  readably, its modules taken in registration order, said so), a crash or a hang;
- native: lstmrt._native.Model(descs) with mutated layer dicts, and lstmrt.Model with random specs, either build a
  model that then predicts, or raise ValueError / TypeError / KeyError; nothing else.
The worker runs with an address-space limit (a MemoryError then shows a size the loader trusted), a per-input
hang guard (faulthandler), and writes the input it is about to run to the artifacts directory, so a crash can
be reproduced by the parent."""

from __future__ import annotations

import argparse
import faulthandler
import io
import json
import math
import os
import pickletools
import random
import struct
import sys
import time
import traceback
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "fuzz_corpus"
BITFLIP_SEEDS = 24  # seeded bit-flip variants of every seed file, before the timed random phase
HANG_SECONDS = 60  # per input: a hang guard, far above any load of a corpus file (milliseconds)
# libhdf5 can loop forever on a damaged file; the loader's answer is its helper-process timeout (then a
# CorruptFileError). Its default (300 s) is above the hang guard, so the worker shortens it (seen with seed 31).
HDF5_TIMEOUT_SECONDS = HANG_SECONDS / 4
ADDRESS_SPACE = 6 << 30  # the worker's RLIMIT_AS: a declared size that gets allocated fails here, not in the OOM killer
INTERESTING = [
    0,
    1,
    2,
    3,
    7,
    8,
    255,
    256,
    4096,
    65535,
    65536,
    2**24,
    2**24 + 1,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**48,
    2**62,
    2**63 - 1,
    10**9,
    10**12,
    10**18,
    -1,
    -2,
    -(2**31),
    -(2**63),
]
STRINGS = [
    "",
    "os",
    "system",
    "builtins",
    "eval",
    "torch",
    "FloatStorage",
    "LongStorage",
    "storage",
    "cpu",
    "../../etc/passwd",
    "/abs",
    "__reduce__",
    "weight_ih_l0",
    "weight_hh_l0",
    "bias_ih_l0",
    "weight",
    "bias",
    "torch.nn.modules.rnn",
    "LSTM",
    "GRU",
    "RNN",
    "Linear",
    "_modules",
    "_parameters",
    "x" * 300,
    "0",
    "1",
    "99",
    "LSTMCell",
    "Sequential",
    "__torch__.torch.nn.modules.rnn.LSTM",
    "relu",
]


# -- corpus -------------------------------------------------------------------------------------------------------
def corpus(formats=None) -> list:
    """[(name, format, bytes, load kwargs)] of the seed corpus (of those formats only, if given)."""
    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    out = []
    for entry in manifest["files"]:
        if formats and entry["format"] not in formats:
            continue
        args = dict(entry["load"])
        if isinstance(args.get("layers"), str) and args["layers"].endswith(".json"):
            args["layers"] = json.loads((CORPUS / args["layers"]).read_text())
        out.append((entry["file"], entry["format"], (CORPUS / entry["file"]).read_bytes(), args))
    return out


# -- byte-level mutators ------------------------------------------------------------------------------------------
def truncate(data: bytes, rng) -> bytes:
    return data[: rng.randrange(len(data))]


def bitflip(data: bytes, rng) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def byteset(data: bytes, rng) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    return bytes(b)


def int_overwrite(data: bytes, rng) -> bytes:
    """An interesting integer written over 1, 2, 4 or 8 bytes: lengths, counts, offsets and sizes in headers."""
    width = rng.choice([1, 2, 4, 8])
    if len(data) < width:
        return bitflip(data, rng)
    value = rng.choice(INTERESTING) % (1 << (8 * width))
    at = rng.randrange(len(data) - width + 1)
    return data[:at] + value.to_bytes(width, rng.choice(["little", "big"])) + data[at + width :]


def chunk(data: bytes, rng) -> bytes:
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.choice([1, 4, 16, 64, 512]))
    op = rng.randrange(3)
    if op == 0:
        return data[:a] + data[b:]  # delete
    if op == 1:
        return data[:b] + data[a:b] + data[b:]  # duplicate
    return data[:a] + bytes(rng.randrange(256) for _ in range(b - a)) + data[a:]  # insert


BYTE_MUTATORS = [bitflip, bitflip, byteset, int_overwrite, int_overwrite, chunk, truncate]


def bytes_mutation(data: bytes, rng) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    return rng.choice(BYTE_MUTATORS)(data, rng)


# -- structure-aware mutators -------------------------------------------------------------------------------------
def pickle_ops(data: bytes, rng) -> bytes:
    """An opcode-level edit: an integer or string argument replaced, an opcode deleted, duplicated or moved."""
    try:
        ops = [(op, arg, pos) for op, arg, pos in pickletools.genops(data)]
    except Exception:
        return bytes_mutation(data, rng)
    ends = [pos for _, _, pos in ops[1:]] + [len(data)]
    spans = [(op, arg, pos, end) for (op, arg, pos), end in zip(ops, ends)]
    op, arg, pos, end = rng.choice(spans)
    kind = rng.randrange(5)
    if kind == 0 and isinstance(arg, int) and not isinstance(arg, bool):
        value = rng.choice(INTERESTING + [arg + 1, arg - 1, arg * 2, 0])
        if op.name in ("BINPUT", "BINGET"):
            new = op.code.encode("latin1") + bytes([value % 256])
        elif op.name in ("LONG_BINPUT", "LONG_BINGET"):
            new = op.code.encode("latin1") + struct.pack("<I", value % 2**32)
        elif -(2**31) <= value < 2**31:
            new = b"J" + struct.pack("<i", value)  # BININT
        else:
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            new = b"\x8a" + bytes([len(raw)]) + raw  # LONG1
        return data[:pos] + new + data[end:]
    if kind == 1 and isinstance(arg, str):
        text = rng.choice(STRINGS).encode()
        if op.name in ("GLOBAL", "INST"):
            new = op.code.encode("latin1") + rng.choice(STRINGS).encode() + b"\n" + rng.choice(STRINGS).encode() + b"\n"
        else:
            new = b"X" + struct.pack("<I", len(text)) + text  # BINUNICODE
        return data[:pos] + new + data[end:]
    if kind == 2:
        return data[:pos] + data[end:]  # delete the opcode
    if kind == 3:
        return data[:end] + data[pos:end] + data[end:]  # duplicate it
    o2, _a2, p2, e2 = rng.choice(spans)
    if p2 < pos:  # move an earlier opcode to after this one
        return data[:p2] + data[e2:end] + data[p2:e2] + data[end:]
    return data[:pos] + data[end:e2] + data[pos:end] + data[e2:]


def json_mutation(value, rng, depth=0):
    """A copy of a JSON value with one node changed: a number to an interesting one, a string to another, a list
    or dict entry dropped, duplicated or replaced by another type."""
    if isinstance(value, dict) and value and depth < 12:
        key = rng.choice(list(value))
        out = dict(value)
        r = rng.random()
        if r < 0.1:
            del out[key]
        elif r < 0.15:
            out[key] = rng.choice([None, [], {}, "x", -1, 1.5, True, 10**30])
        else:
            out[key] = json_mutation(value[key], rng, depth + 1)
        return out
    if isinstance(value, list) and value and depth < 12:
        i = rng.randrange(len(value))
        out = list(value)
        r = rng.random()
        if r < 0.1:
            del out[i]
        elif r < 0.15:
            out.insert(i, out[i])
        elif r < 0.2:
            out[i] = rng.choice([None, [], {}, "x", -1])
        else:
            out[i] = json_mutation(value[i], rng, depth + 1)
        return out
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice(INTERESTING + [value + 1, value - 1, value * 2, 0, 10**40])
    if isinstance(value, float):
        return rng.choice([0.0, -1.0, 1e308, float(value) * 2, 7])
    if isinstance(value, str):
        return rng.choice(STRINGS + ["LSTM", "Dense", "float64", "int8", "relu", "sigmoid", "Functional"])
    return rng.choice([0, "x", None, [], {}])


def json_text_mutation(text: bytes, rng) -> bytes:
    try:
        value = json.loads(text)
    except ValueError:
        return bytes_mutation(text, rng)
    return json.dumps(json_mutation(value, rng)).encode()


def safetensors_header(data: bytes, rng) -> bytes:
    n = struct.unpack("<Q", data[:8])[0]
    header, body = data[8 : 8 + n], data[8 + n :]
    r = rng.random()
    if r < 0.6:
        new = json_text_mutation(header, rng)
        return struct.pack("<Q", len(new)) + new + body
    if r < 0.8:
        return struct.pack("<Q", rng.choice(INTERESTING) % 2**64) + data[8:]
    return data[:8] + bytes_mutation(header, rng) + body


def hdf5_mutation(data: bytes, rng) -> bytes:
    """Edits made with h5py: an attribute (configs, weight_names) mutated, a dataset replaced by one of another
    shape or dtype, or declared huge without data; else a byte-level mutation."""
    import h5py

    buf = io.BytesIO(data)
    try:
        with h5py.File(buf, "r+") as f:
            datasets, groups = [], []
            f.visititems(lambda n, o: (datasets if isinstance(o, h5py.Dataset) else groups).append(n))
            r = rng.random()
            attr_owners = [f] + [f[g] for g in groups]
            owner = rng.choice(attr_owners)
            if r < 0.35 and len(owner.attrs):
                key = rng.choice(list(owner.attrs))
                value = owner.attrs[key]
                if isinstance(value, (bytes, str)):
                    text = value if isinstance(value, bytes) else value.encode()
                    owner.attrs[key] = (
                        json_text_mutation(text, rng) if text[:1] in b"{[" else rng.choice(STRINGS).encode()
                    )
                elif isinstance(value, np.ndarray) and value.size and value.dtype.kind == "S":
                    names = list(value)
                    rng.shuffle(names)
                    owner.attrs[key] = np.array(names[: rng.randint(0, len(names))] or [b"x"])
                else:
                    owner.attrs[key] = rng.choice([b"x", np.int64(-1), np.zeros(3)])
            elif datasets:
                name = rng.choice(datasets)
                old = f[name]
                shape, dtype = old.shape, old.dtype
                del f[name]
                if r < 0.5:
                    f.create_dataset(name, shape=(rng.choice([10**6, 10**9]),) * 2, dtype="f4", chunks=(1, 1))
                elif r < 0.7 and shape:
                    new_shape = tuple(max(0, d + rng.choice([-1, 1, d])) for d in shape)
                    f[name] = np.random.default_rng(rng.randrange(2**32)).standard_normal(new_shape).astype("f4")
                elif r < 0.8:
                    f[name] = np.zeros(shape, rng.choice(["i8", "f8", "f2", "u1"]))
                else:
                    f[name] = np.full(shape or (), rng.choice([np.nan, np.inf, 1e38, -0.0]), dtype)
            else:
                return bytes_mutation(data, rng)
    except Exception:
        return bytes_mutation(data, rng)
    return buf.getvalue()


def zip_rewrite(data: bytes, rng, member_mutator) -> bytes:
    """The archive with one member's content mutated (the archive itself stays valid: CRCs match), or renamed,
    duplicated, dropped, or recompressed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [(i, zf.read(i.filename)) for i in zf.infolist()]
    except Exception:
        return bytes_mutation(data, rng)
    warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # the duplicate is the point
    out = io.BytesIO()
    weights = [
        5 if i.filename.endswith((".pkl", ".json", ".h5")) else 2 if "/code/" in i.filename else 1 for i, _ in members
    ]
    target = rng.choices(range(len(members)), weights=weights)[0]
    r = rng.random()
    with zipfile.ZipFile(out, "w") as zw:
        for k, (info, content) in enumerate(members):
            if k != target:
                zw.writestr(info, content)
                continue
            if r < 0.8:
                zw.writestr(info, member_mutator(info.filename, content, rng))
            elif r < 0.85:
                zw.writestr(info, content)
                zw.writestr(info, content)  # duplicate name
            elif r < 0.9:
                info.filename = rng.choice(["../", "/", "a/../../"]) + info.filename
                zw.writestr(info, content)
            elif r < 0.95:
                pass  # dropped
            else:
                zw.writestr(info.filename, content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def member_mutation(name: str, content: bytes, rng) -> bytes:
    if name.endswith(".pkl"):
        return pickle_ops(content, rng) if rng.random() < 0.7 else bytes_mutation(content, rng)
    if name.endswith(".json"):
        return json_text_mutation(content, rng) if rng.random() < 0.7 else bytes_mutation(content, rng)
    if name.endswith(".h5"):
        return hdf5_mutation(content, rng) if rng.random() < 0.6 else bytes_mutation(content, rng)
    return bytes_mutation(content, rng)


def legacy_pickle(data: bytes, rng) -> bytes:
    """A torch legacy stream with an opcode edit in its object pickle (the fourth pickle of the stream)."""
    f = io.BytesIO(data)
    try:
        for _ in range(3):
            for op, _arg, _pos in pickletools.genops(f):
                if op.name == "STOP":
                    break
        start = f.tell()
        for op, _arg, _pos in pickletools.genops(f):
            if op.name == "STOP":
                break
        end = f.tell()
    except Exception:
        return bytes_mutation(data, rng)
    return data[:start] + pickle_ops(data[start:end], rng) + data[end:]


MODEL_FILE_HEADER, MODEL_FILE_RECORD = 64, 272  # docs/model-file.md


def model_file_mutation(data: bytes, rng) -> bytes:
    """An lstmrt model file with a field of its header or layer records (or any byte) changed, then, mostly, its
    checksum recomputed: otherwise the checksum refuses nearly every change before the structural checks see it."""
    if len(data) < MODEL_FILE_HEADER:
        return bytes_mutation(data, rng)
    layers = min(int.from_bytes(data[24:28], "little"), 64)
    fields_end = min(len(data), MODEL_FILE_HEADER + layers * MODEL_FILE_RECORD)
    if rng.random() < 0.7:
        width = rng.choice([4, 4, 8])
        at = rng.randrange(0, max(1, fields_end - width), 4)
        value = rng.choice(INTERESTING + [-1, -(2**31), 2**32 - 1, len(data), len(data) - 4])
        mutated = data[:at] + (value % (1 << (8 * width))).to_bytes(width, "little") + data[at + width :]
    else:
        mutated = bytes_mutation(data, rng)
    if rng.random() < 0.9 and len(mutated) >= 16:
        crc = zlib.crc32(mutated[16:]).to_bytes(4, "little")
        mutated = mutated[:12] + crc + mutated[16:]
    return mutated


# -- protobuf (ONNX) ----------------------------------------------------------------------------------------------
# onnx/onnx.proto as far as the mutator needs it: message -> field number -> the message it holds, "str" (text),
# "bytes" or a repeated scalar ("v" varints, "f32"/"f64" fixed) that may be packed in one LEN run; None: not walked
# into (training info, functions: lstmrt skips them). onnx writes proto2, so repeated scalars come unpacked (one tag
# per value) and the mutator writes both encodings.
ONNX_SCHEMA = {
    "Model": {2: "str", 3: "str", 4: "str", 6: "str", 7: "Graph", 8: "OpsetId", 14: "Entry", 20: None, 25: None},
    "OpsetId": {1: "str"},
    "Graph": {1: "Node", 2: "str", 5: "Tensor", 10: "str", 11: "ValueInfo", 12: "ValueInfo", 13: "ValueInfo"},
    "Node": {1: "str", 2: "str", 3: "str", 4: "str", 5: "Attribute", 6: "str", 7: "str", 8: "str"},
    "Attribute": {1: "str", 4: "bytes", 5: "Tensor", 6: "Graph", 7: "f32", 8: "v", 9: "str", 10: "Tensor",
                  11: "Graph", 13: "str", 21: "str"},
    "Tensor": {1: "v", 4: "f32", 5: "v", 6: "bytes", 7: "v", 8: "str", 9: "bytes", 10: "f64", 11: "v", 12: "str",
               13: "Entry"},
    "Entry": {1: "str", 2: "str"},
    "ValueInfo": {1: "str", 2: "Type", 3: "str"},
    "Type": {1: "TensorType", 6: "str"},
    "TensorType": {2: "Shape"},
    "Shape": {1: "Dim"},
    "Dim": {2: "str", 3: "str"},
}  # fmt: skip
ONNX_OPS = [
    "LSTM", "GRU", "RNN", "Gather", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Concat", "MatMul",
    "Add", "Sub", "Mul", "Div", "Gemm", "Identity", "Dropout", "Cast", "Shape", "ConstantOfShape", "Expand",
    "Constant", "Softmax", "LogSoftmax", "Clip", "HardSigmoid", "Relu", "Tanh", "Sigmoid", "Selu", "Elu", "Gelu",
    "If", "Loop", "Scan", "Split", "Equal", "NoSuchOp", "",
]  # fmt: skip
ONNX_ATTRIBUTES = [
    "direction", "hidden_size", "layout", "activations", "activation_alpha", "activation_beta", "clip",
    "input_forget", "linear_before_reset", "axis", "axes", "perm", "to", "allowzero", "transA", "transB", "alpha",
    "beta", "gamma", "value", "value_float", "value_floats", "value_int", "value_ints", "start", "end", "approximate",
    "starts", "ends", "min", "max", "",
]  # fmt: skip
ONNX_ATTRIBUTE_TEXT = ["forward", "reverse", "bidirectional", "Forward", "none", "tanh", "", "\u00e9", "x" * 300]
ONNX_ACTIVATION_LISTS = [
    [], ["Sigmoid", "Tanh", "Tanh"], ["Relu"], ["Tanh"] * 6, ["HardSigmoid", "Affine", "Elu"], ["NoSuch"] * 3,
    ["Sigmoid", "Tanh"], ["LeakyRelu", "ThresholdedRelu", "ScaledTanh"],
]  # fmt: skip
ONNX_TEXT = ["", "x", "missing_tensor", "ai.onnx", "com.microsoft", "ai.onnx.ml", "batch", "time", "0", "-1"]
EXTERNAL_LOCATIONS = ["input.onnx", "input.pt", "", ".", "..", "../fuzz_corpus/MANIFEST.json", "/etc/passwd",
                      "../../etc/passwd", "C:\\x", "a\x00b", "sub/../input.onnx", "missing.bin"]  # fmt: skip
EXTERNAL_NUMBERS = ["0", "1", "4", "-1", "16", "99999999999999999999", "1e3", " 4", "0x10", "", "x"]
INVALID_UTF8 = b"\xff\xfe"
_TEXT_POOLS = {  # (message, field) -> the strings that mean something there (the file's own names are added)
    ("Node", 4): ONNX_OPS,
    ("Node", 7): ["", "ai.onnx", "com.microsoft", "ai.onnx.ml"],
    ("Attribute", 1): ONNX_ATTRIBUTES,
    ("Attribute", 4): ONNX_ATTRIBUTE_TEXT,
    ("Attribute", 9): ONNX_ATTRIBUTE_TEXT + ["Sigmoid", "Tanh", "Relu", "Affine", "HardSigmoid"],
    ("Entry", 1): ["location", "offset", "length", "checksum"],
    ("Entry", 2): EXTERNAL_LOCATIONS + EXTERNAL_NUMBERS,
    ("OpsetId", 1): ["", "ai.onnx", "com.microsoft"],
    ("Dim", 2): ["batch", "time", "", "x"],
}
_ITEM_SIZES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}  # TensorProto types
FLOAT_SPECIALS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e38, 3.4e38, 1e-45, -1.0, 0.5, 1e6]


class PbField:
    """One protobuf field: value is an int (VARINT, FIXED32/64: the raw bits) or bytes (LEN); children the fields
    of a LEN payload walked into as a message; length the length prefix read (None: write the payload's);
    forced: write `length` whatever the payload; pad: extra bytes of an over-long varint value."""

    __slots__ = ("number", "wire", "value", "kind", "children", "length", "forced", "pad")

    def __init__(self, number, wire, value, kind=None, children=None, length=None):
        self.number, self.wire, self.value, self.kind = number, wire, value, kind
        self.children, self.length, self.forced, self.pad = children, length, False, 0

    def copy(self) -> PbField:
        new = PbField(self.number, self.wire, self.value, self.kind, None, self.length)
        new.children = None if self.children is None else [c.copy() for c in self.children]
        new.forced, new.pad = self.forced, self.pad
        return new

    @property
    def payload(self) -> bytes:
        return pb_serialize(self.children) if self.children is not None else self.value


def _read_varint(buf: bytes, pos: int) -> tuple:
    result = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        result |= (buf[i] & 0x7F) << shift
        if buf[i] < 0x80:
            return result & (2**64 - 1), i + 1
        shift += 7
    raise ValueError("bad varint")


def pb_varint(value: int, pad: int = 0) -> bytes:
    """value (an int64 as its 64-bit two's complement: -1 is 10 bytes) as a varint; pad: over-long by that many
    bytes (continuation bits on bytes that add nothing), as no writer does but parsers accept up to 10 bytes."""
    value %= 2**64
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            break
    if pad:
        out[-1] |= 0x80
        out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


def pb_parse(buf: bytes, message: str | None = "Model", depth: int = 0) -> list:
    """The fields of one message as PbFields, walked into the LEN fields the schema says are messages (and, for
    fields it does not know, those that parse as one). ValueError where `buf` is not protobuf."""
    out, pos, known = [], 0, ONNX_SCHEMA.get(message, {})
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        length = None
        if number == 0:
            raise ValueError("field 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise ValueError("cut fixed")
            value, pos = int.from_bytes(buf[pos : pos + size], "little"), pos + size
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("length past the end")
            value, pos = bytes(buf[pos : pos + length]), pos + length
        else:
            raise ValueError(f"wire type {wire}")
        field = PbField(number, wire, value, known.get(number), length=length)
        if wire == 2 and depth < 24 and (field.kind in ONNX_SCHEMA or number not in known and len(value) > 1):
            try:
                field.children = pb_parse(value, field.kind, depth + 1)
            except ValueError:
                field.kind = field.kind if field.kind in ONNX_SCHEMA else "bytes"
        out.append(field)
    return out


def pb_serialize(fields_: list, fix_lengths: bool = True) -> bytes:
    """The fields as bytes. Length prefixes are the payloads' (fix_lengths) or, for fields read from the file,
    the ones read: then a payload that changed size leaves its enclosing messages' prefixes stale."""
    out = bytearray()
    for f in fields_:
        out += pb_varint(f.number << 3 | f.wire)
        if f.wire == 0:
            out += pb_varint(f.value, f.pad)
        elif f.wire == 1:
            out += (f.value % 2**64).to_bytes(8, "little")
        elif f.wire == 5:
            out += (f.value % 2**32).to_bytes(4, "little")
        elif f.wire == 2:
            payload = pb_serialize(f.children, fix_lengths) if f.children is not None else f.value
            stale = f.length is not None and (f.forced or not fix_lengths)
            out += pb_varint(f.length if stale else len(payload), f.pad) + payload
        else:  # an invalid wire type set by a mutation: the tag alone
            pass
    return bytes(out)


def _pb_walk(fields_: list, message, out: list, depth: int = 0) -> list:
    """[(siblings, index, field, message of the siblings, depth)] of every field, depth first."""
    for i, f in enumerate(fields_):
        out.append((fields_, i, f, message, depth))
        if f.children is not None:
            _pb_walk(f.children, f.kind if f.kind in ONNX_SCHEMA else None, out, depth + 1)
    return out


def _is_text(f: PbField, message) -> bool:
    return f.wire == 2 and f.children is None and ONNX_SCHEMA.get(message, {}).get(f.number) == "str"


def _msg(number: int, children: list) -> PbField:
    return PbField(number, 2, b"", None, children)


def _varint_field(number: int, value: int) -> PbField:
    return PbField(number, 0, value % 2**64)


def _text_field(number: int, value) -> PbField:
    return PbField(number, 2, value if isinstance(value, bytes) else value.encode())


def _float_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _repeated(fields_: list, number: int, width: str) -> list:
    """The values of a repeated scalar field in both encodings (raw bits for fixed widths)."""
    values = []
    for f in fields_:
        if f.number != number:
            continue
        if f.wire == 2 and f.children is None or f.wire == 2 and width != "v":
            data = f.value if f.children is None else pb_serialize(f.children)
            if width == "v":
                pos = 0
                while pos < len(data):
                    v, pos = _read_varint(data, pos)
                    values.append(v)
            else:
                size = 4 if width == "f32" else 8
                values += [int.from_bytes(data[i : i + size], "little") for i in range(0, len(data) - size + 1, size)]
        elif f.wire in (0, 1, 5):
            values.append(f.value)
    return values


def _set_repeated(fields_: list, number: int, width: str, values: list, rng) -> None:
    """Replace a repeated scalar field's values, packed or one tag per value (either, as parsers must accept)."""
    at = next((i for i, f in enumerate(fields_) if f.number == number), len(fields_))
    fields_[:] = [f for f in fields_ if f.number != number]
    wire = {"v": 0, "f32": 5, "f64": 1}[width]
    if rng.random() < 0.35:
        if width == "v":
            data = b"".join(pb_varint(v) for v in values)
        else:
            size = 4 if width == "f32" else 8
            data = b"".join((v % 2 ** (8 * size)).to_bytes(size, "little") for v in values)
        new = [PbField(number, 2, data, width)]
    else:
        new = [PbField(number, wire, v) for v in values]
    fields_[at:at] = new


def _mutate_varint(f: PbField, rng) -> None:
    v = f.value
    f.value = (
        rng.choice(
            [0, 1, 2**64 - 1, 2**64 - 2, 2**63 - 1, 2**63, 2**62, 2**32, 2**31, 2**31 - 1, 10**12, v + 1, v - 1, v * 2]
            + [rng.randrange(32)] * 4
            + [x % 2**64 for x in INTERESTING]
        )
        % 2**64
    )


def _mutate_fixed(f: PbField, rng) -> None:
    if f.wire == 5:
        f.value = rng.choice([_float_bits(x) for x in FLOAT_SPECIALS] + [0xFFFFFFFF, 0x7FC00001, f.value ^ 1])
    else:
        f.value = rng.choice([struct.unpack("<Q", struct.pack("<d", x))[0] for x in FLOAT_SPECIALS] + [2**64 - 1])


def _mutate_length(f: PbField, rng) -> None:
    """A LEN field's prefix made to lie (forced), or its payload changed in size (the prefix follows)."""
    payload = f.payload
    n = len(payload)
    r = rng.random()
    if r < 0.5:
        f.length, f.forced = rng.choice([n + 1, n - 1, 0, n * 2, 2**31 - 1, 2**31, 2**32, 2**63, 2**64 - 1]), True
        f.length %= 2**64
    elif r < 0.6:
        f.pad = rng.choice([1, 2, 9 - len(pb_varint(n)), 10 - len(pb_varint(n))])  # 11 bytes: must be refused
    else:
        f.children = None
        extra = bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 8])))
        f.value = rng.choice(
            [b"", payload[: rng.randrange(n + 1)], payload + extra, payload[rng.randrange(n + 1) :], payload * 2]
        )


def _mutate_text(f: PbField, message, names: list, rng) -> None:
    pool = _TEXT_POOLS.get((message, f.number), ONNX_TEXT + STRINGS[:12])
    if (message, f.number) in (("Node", 1), ("Node", 2), ("Tensor", 8), ("ValueInfo", 1)) or rng.random() < 0.2:
        pool = pool + names * 3  # a name of the file: rewires the graph
    choice = rng.random()
    if choice < 0.05:
        f.value = INVALID_UTF8
    elif choice < 0.1:
        f.value = f.value + rng.choice([b"_", b"\x00", b" "])
    else:
        f.value = rng.choice(pool).encode()


def _mutate_structure(siblings: list, i: int, by_kind: dict, rng) -> None:
    """A field deleted, duplicated, swapped with a sibling (node order!), or copied into another message of the
    same type (an LSTM's attribute into a Gemm, an initializer's dims into another tensor)."""
    f = siblings[i]
    r = rng.random()
    if r < 0.3:
        del siblings[i]
    elif r < 0.55:
        siblings.insert(rng.choice([i + 1, len(siblings)]), f.copy())
    elif r < 0.8 and len(siblings) > 1:
        same = [k for k, g in enumerate(siblings) if g.number == f.number and k != i]
        j = rng.choice(same) if same and rng.random() < 0.8 else rng.randrange(len(siblings))
        siblings[i], siblings[j] = siblings[j], siblings[i]
    else:
        for messages in by_kind.values():
            if any(m.children is siblings for m in messages):
                target = rng.choice(messages)
                target.children.insert(rng.randrange(len(target.children) + 1), f.copy())
                return
        siblings.insert(i, f.copy())


def _mutate_wire(f: PbField, message, rng) -> None:
    """The field renumbered (within its message's schema: node input <-> output, raw_data -> float_data, ...,
    or to an invalid number) or given another wire type."""
    if rng.random() < 0.6:
        numbers = list(ONNX_SCHEMA.get(message, {})) + [rng.randrange(1, 40), 2**29 - 1, 2**29, 0]
        f.number = rng.choice(numbers)
        if f.number == 0 or f.number >= 2**29:
            f.number %= 2**32  # kept as the tag's bits: the parser must refuse it
        return
    wire = rng.choice([0, 1, 2, 5, 3, 4, 6, 7])
    if wire == 2 and f.wire != 2:
        f.value, f.children = pb_varint(f.value) if isinstance(f.value, int) else b"", None
    elif wire != 2 and f.wire == 2:
        f.value, f.children = len(f.payload), None
    f.wire = wire


def _tensor_mutation(t: PbField, rng) -> None:
    """A TensorProto changed as a whole: dims (permuted, one changed, one added or dropped; the data resized to
    match or not), data_type, values (NaN, huge, an int64 shape constant or axis), data moved from raw_data to
    the typed field, or its data made external."""
    fields_ = t.children
    dims = [int(v) for v in _repeated(fields_, 1, "v")]
    dtype = next((f.value for f in fields_ if f.number == 2 and f.wire == 0), 0)
    raw = next((f for f in fields_ if f.number == 9 and f.wire == 2), None)
    size = _ITEM_SIZES.get(dtype, 4)
    r = rng.random()

    def resize(count):
        if raw is not None and rng.random() < 0.75 and count * size <= 1 << 20:  # dims to match, within reason
            raw.children = None
            need = max(0, count) * size
            raw.value = (raw.value * (need // max(1, len(raw.value)) + 1))[:need] if raw.value else bytes(need)

    if r < 0.35:
        k = rng.randrange(max(1, len(dims)))
        new = list(dims)
        op = rng.randrange(5)
        if op == 0:
            rng.shuffle(new)
        elif op == 1 and new:
            new[k] = rng.choice([0, 1, new[k] + 1, max(0, new[k] - 1), 2**31, 2**40, 2**64 - 1])
        elif op == 2:
            new.insert(rng.randrange(len(new) + 1), rng.choice([1, 1, 2, 0]))
        elif op == 3 and new:
            del new[k]
        else:
            new = rng.choice([[], [0], [1], list(reversed(new))])
        _set_repeated(fields_, 1, "v", [v % 2**64 for v in new], rng)
        resize(math.prod(new))
    elif r < 0.5:
        new = rng.choice([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 23, 28, 29, 2**31 - 1, 2**64 - 1])
        fields_[:] = [f for f in fields_ if f.number != 2] + [_varint_field(2, new)]
        if rng.random() < 0.6 and new in _ITEM_SIZES:
            size = _ITEM_SIZES[new]
            resize(math.prod(dims))
    elif r < 0.75 and raw is not None and len(raw.payload) >= size:
        data = bytearray(raw.payload)
        at = rng.randrange(len(data) // size) * size
        if dtype == 7:  # int64: shape vectors, axes, indices, Slice bounds
            value = rng.choice(INTERESTING + [-1, -2, -3, 0, 1, 2, 3, 4, 5, 2**62, -(2**62)])
            data[at : at + 8] = (value % 2**64).to_bytes(8, "little")
        elif dtype == 1:
            data[at : at + 4] = struct.pack("<f", rng.choice(FLOAT_SPECIALS))
        else:
            data[at] ^= 0xFF
        raw.children, raw.value = None, bytes(data)
    elif r < 0.85 and raw is not None and dtype in (1, 7, 6, 11):
        data = raw.payload
        fields_.remove(raw)
        if dtype == 1:
            values, number, width = (
                [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)],
                4,
                "f32",
            )
        elif dtype == 11:
            values, number, width = (
                [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)],
                10,
                "f64",
            )
        else:
            w = 8 if dtype == 7 else 4
            values = [int.from_bytes(data[i : i + w], "little", signed=True) for i in range(0, len(data), w)]
            number, width = (7 if dtype == 7 else 5), "v"
        if rng.random() < 0.3 and values:
            values = values[: rng.randrange(len(values))]
        _set_repeated(fields_, number, width, values, rng)
    else:
        entries = [("location", rng.choice(EXTERNAL_LOCATIONS))]
        for key in ("offset", "length"):
            if rng.random() < 0.5:
                entries.append((key, rng.choice(EXTERNAL_NUMBERS)))
        if rng.random() < 0.2:
            entries.append(("location", rng.choice(EXTERNAL_LOCATIONS)))  # given twice: the last one counts
        fields_ += [_msg(13, [_text_field(1, k), _text_field(2, v)]) for k, v in entries]
        fields_.append(_varint_field(14, rng.choice([1, 1, 1, 0, 2, 2**64 - 1])))
        if rng.random() < 0.5 and raw is not None:
            fields_.remove(raw)


def _new_attribute(rng, names: list) -> PbField:
    """An AttributeProto from scratch: a name that means something to the graph reader, and a value of the
    type it expects or of another, with its `type` field right, wrong or left out."""
    name = rng.choice(ONNX_ATTRIBUTES + names)
    kind = rng.choice(["INT", "INT", "FLOAT", "STRING", "INTS", "FLOATS", "STRINGS", "TENSOR", "GRAPH", "NONE"])
    children = [_text_field(1, name)]
    if kind == "INT":
        children.append(_varint_field(3, rng.choice(INTERESTING + [0, 1, 2, 3, 4, 5, -1])))
        type_code = 2
    elif kind == "FLOAT":
        children.append(PbField(2, 5, _float_bits(rng.choice(FLOAT_SPECIALS + [0.2, 1 / 6]))))
        type_code = 1
    elif kind == "STRING":
        children.append(_text_field(4, rng.choice(ONNX_ATTRIBUTE_TEXT + ONNX_OPS[:6])))
        type_code = 3
    elif kind == "INTS":
        values = rng.choice([[], [0], [1], [-1], [0, 2, 1, 3], [1, 0, 2], [0, 0, -1], [2**62], list(range(10))])
        _set_repeated(children, 8, "v", [v % 2**64 for v in values], rng)
        type_code = 7
    elif kind == "FLOATS":
        values = rng.choice([[], [0.2], [0.2, 0.5], [float("nan")], [1e38] * 4])
        _set_repeated(children, 7, "f32", [_float_bits(v) for v in values], rng)
        type_code = 6
    elif kind == "STRINGS":
        children += [_text_field(9, s) for s in rng.choice(ONNX_ACTIVATION_LISTS)]
        type_code = 8
    elif kind == "TENSOR":
        dims = rng.choice([[], [1], [3], [0], [2, 2]])
        dtype = rng.choice([1, 7, 6, 9, 11, 8])
        tensor = [_varint_field(1, d) for d in dims] + [_varint_field(2, dtype)]
        tensor.append(PbField(9, 2, bytes(math.prod(dims) * _ITEM_SIZES.get(dtype, 4))))
        children.append(_msg(5, tensor))
        type_code = 4
    elif kind == "GRAPH":
        children.append(_msg(6, []))
        type_code = 5
    else:
        type_code = None
    r = rng.random()
    if type_code is not None and r < 0.8:
        children.append(_varint_field(20, type_code))
    elif r < 0.9:
        children.append(_varint_field(20, rng.choice([0, 1, 2, 3, 4, 6, 7, 8, 15, 99, 2**64 - 1])))
    return _msg(5, children)


def _node_mutation(node: PbField, names: list, rng) -> None:
    """An attribute added (replacing one of that name, mostly), an attribute's type changed, or an input slot
    emptied / added (an LSTM's optional P, sequence_lens, initial_h)."""
    fields_ = node.children
    r = rng.random()
    if r < 0.6:
        new = _new_attribute(rng, names)
        name = new.children[0].value
        if rng.random() < 0.8:
            fields_[:] = [f for f in fields_ if not (f.number == 5 and f.children and _attr_name(f) == name)]
        fields_.append(new)
    elif r < 0.75:
        attrs = [f for f in fields_ if f.number == 5 and f.children is not None]
        if attrs:
            a = rng.choice(attrs)
            a.children = [f for f in a.children if f.number != 20] + [_varint_field(20, rng.randrange(16))]
    else:
        inputs = [i for i, f in enumerate(fields_) if f.number == 1]
        if inputs and rng.random() < 0.5:
            fields_[rng.choice(inputs)].value = rng.choice([b"", rng.choice(names or ["x"]).encode()])
        else:
            at = inputs[-1] + 1 if inputs else 0
            fields_.insert(at, _text_field(1, rng.choice(names + ["", "missing_tensor"])))


def _pick(walk: list, test, rng) -> tuple:
    """A walk entry whose field and message pass `test` (None when none does)."""
    chosen = [entry for entry in walk if test(entry[2], entry[3])]
    return rng.choice(chosen) if chosen else None


def _attr_name(f: PbField) -> bytes:
    return next((c.value for c in f.children if c.number == 1 and c.wire == 2), b"")


# edit -> (which fields it applies to, the edit of one field)
_PB_EDITS = {
    "varint": (lambda f, m: f.wire == 0, _mutate_varint),
    "fixed": (lambda f, m: f.wire in (1, 5), _mutate_fixed),
    "length": (lambda f, m: f.wire == 2, _mutate_length),
    "text": (_is_text, None),
}


def protobuf_mutation(data: bytes, rng) -> bytes:
    """An ONNX file mutated at the level of its protobuf fields, anywhere in model -> graph -> node -> attribute
    -> tensor (most damage worth finding is deep): a varint or fixed value changed, a length prefix made to lie or
    a payload resized, a field deleted / duplicated / swapped / copied to another message, renumbered or given
    another wire type, a string replaced (op_type, attribute names and values, tensor names so that inputs point
    to other or missing tensors), a tensor's dims / data_type / values / storage changed, an attribute added to a
    node. 1-3 edits; lengths mostly rewritten to fit, sometimes left stale."""
    try:
        tree = pb_parse(data)
    except ValueError:
        return bytes_mutation(data, rng)
    if pb_serialize(tree) != data:  # not a faithful walk (an over-long varint in the file?): byte-level instead
        return bytes_mutation(data, rng)
    names = sorted(
        {f.value.decode("utf-8", "replace") for _s, _i, f, m, _d in _pb_walk(tree, "Model", []) if _is_text(f, m)}
        - {""}
    )
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        walk = _pb_walk(tree, "Model", [])
        if not walk:
            return bytes_mutation(data, rng)
        by_kind = {}
        for _s, _i, f, _m, _d in walk:
            if f.children is not None and f.kind in ONNX_SCHEMA:
                by_kind.setdefault(f.kind, []).append(f)

        op = rng.choices(
            ["varint", "fixed", "length", "structure", "text", "wire", "tensor", "node"],
            weights=[14, 4, 10, 14, 16, 6, 20, 16],
        )[0]
        entry = _pick(walk, _PB_EDITS[op][0], rng) if op in _PB_EDITS else None
        if op == "tensor" and by_kind.get("Tensor"):
            _tensor_mutation(rng.choice(by_kind["Tensor"]), rng)
        elif op == "node" and by_kind.get("Node"):
            _node_mutation(rng.choice(by_kind["Node"]), names, rng)
        elif op == "text" and entry is not None:
            _mutate_text(entry[2], entry[3], names, rng)
        elif entry is not None:
            _PB_EDITS[op][1](entry[2], rng)
        elif op == "wire":
            _s, _i, f, message, _d = rng.choice(walk)
            _mutate_wire(f, message, rng)
        else:
            siblings, i, _f, _m, _d = rng.choice(walk)
            _mutate_structure(siblings, i, by_kind, rng)
    mutated = pb_serialize(tree, fix_lengths=rng.random() < 0.9)
    return mutated if mutated != data else bytes_mutation(data, rng)  # a no-op edit (a name replaced by itself)


def mutators_for(fmt: str) -> list:
    """(name, function(data, rng)) for a corpus format, structure-aware ones first."""
    if fmt in ("torch-zip", "torchscript"):
        return [("zip-member", lambda d, r: zip_rewrite(d, r, member_mutation))] * 3 + [("bytes", bytes_mutation)]
    if fmt == "torch-legacy":
        return [("pickle-ops", legacy_pickle)] * 2 + [("bytes", bytes_mutation)] * 2
    if fmt == "safetensors":
        return [("header", safetensors_header)] * 3 + [("bytes", bytes_mutation)]
    if fmt == "keras":
        return [
            (
                "keras-zip-or-h5",
                lambda d, r: zip_rewrite(d, r, member_mutation) if d[:2] == b"PK" else hdf5_mutation(d, r),
            )
        ] * 2 + [("bytes", bytes_mutation)] * 2
    if fmt == "lstmrt":
        return [("model-file", model_file_mutation)] * 3 + [("bytes", bytes_mutation)]
    if fmt == "onnx":
        return [("protobuf", protobuf_mutation)] * 3 + [("bytes", bytes_mutation)]
    raise ValueError(fmt)


# -- running one input ---------------------------------------------------------------------------------------------
class Runner:
    """Counts outcomes and keeps findings, one per signature (the exception at the root of the chain and the
    innermost lstmrt line it came from: a bug met again is counted, not kept again, so that a frequent one does not
    hide rarer ones); `artifacts` receives each input before it runs (current.bin), and each finding's input
    (finding-N-LABEL) and traceback (finding-N-LABEL.txt)."""

    def __init__(self, artifacts: Path, max_findings: int = 20):
        self.artifacts = artifacts
        self.counts: dict = {}
        self.findings: list = []
        self.max_findings = max_findings
        artifacts.mkdir(parents=True, exist_ok=True)

    def count(self, key: str, outcome: str) -> None:
        self.counts.setdefault(key, {})
        self.counts[key][outcome] = self.counts[key].get(outcome, 0) + 1

    def finding(self, label: str, what: str, data: bytes | None, tb: str, exc: BaseException | None = None) -> None:
        signature = _signature(exc) if exc is not None else what
        for known in self.findings:
            if known["signature"] == signature:
                known["repeats"] += 1
                return
        if len(self.findings) < self.max_findings:
            path = None
            if data is not None:
                path = self.artifacts / f"finding-{len(self.findings)}-{label.replace('/', '_')}"
                path.write_bytes(data)
                path.with_name(path.name + ".txt").write_text(f"{label}: {what}\n\n{tb}")
            self.findings.append(
                {
                    "input": label,
                    "what": what,
                    "signature": signature,
                    "repeats": 0,
                    "file": str(path) if path else None,
                    "traceback": tb[-3000:],
                }
            )


def _signature(exc: BaseException) -> str:
    """The root exception of a chain (an UnexpectedContentError's cause) and the innermost lstmrt frame it passed."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    frames = traceback.extract_tb(root.__traceback__)
    where = next(
        (f for f in reversed(frames) if f"{os.sep}lstmrt{os.sep}" in f.filename), frames[-1] if frames else None
    )
    return f"{type(root).__name__} at {Path(where.filename).name}:{where.lineno}" if where else type(root).__name__


def _loader_outcome(path: Path, args: dict) -> str:
    import lstmrt
    from lstmrt.errors import LayerOrderWarning, LoadError, UnexpectedContentError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LayerOrderWarning)  # other warnings stay errors (the caller's filter)
            model = lstmrt.load(path, **args)
    except UnexpectedContentError as exc:
        raise AssertionError(f"backstop: {exc}") from exc
    except LoadError as exc:
        return type(exc).__name__
    tokens = model.layers and type(model.layers[0]).__name__ == "Embedding"
    X = (
        np.zeros((2, 3), np.int64)
        if tokens
        else np.linspace(-1, 1, 2 * 3 * model.input_size, dtype=np.float32).reshape(2, 3, model.input_size)
    )
    model.predict(X)
    if not model.bidirectional:
        model.stream().step(X[0, :1] if tokens else X[0, 0])
    return "loaded, LayerOrderWarning" if caught else "loaded"


def run_loaders(seconds: float, seed: int, artifacts: Path, only=None, formats=None) -> dict:
    files = corpus(formats)
    if not files:
        raise ValueError(f"no seed file of format {', '.join(formats)} in {CORPUS}")
    runner = Runner(artifacts)
    work = Path(artifacts) / "work"
    work.mkdir(exist_ok=True)
    current = Path(artifacts) / "current.json"
    start = time.monotonic()
    iterations = 0

    def run_one(label, fmt, data, args, mutation):
        nonlocal iterations
        name = f"input{Path(label.split('#')[0]).suffix or ''}"
        path = work / name
        path.write_bytes(data)
        current.write_text(json.dumps({"input": label, "file": str(path)}))
        (Path(artifacts) / "current.bin").write_bytes(data)
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # users run with warnings as errors too
                outcome = _loader_outcome(path, args)
            runner.count(f"{label.split('#')[0]} {mutation}", outcome)
        except Exception as exc:
            runner.count(f"{label.split('#')[0]} {mutation}", "FINDING")
            runner.finding(label, f"{type(exc).__name__}: {str(exc)[:300]}", data, traceback.format_exc(), exc)
        finally:
            faulthandler.cancel_dump_traceback_later()
        iterations += 1

    # 1. every seed file must load, 2. systematic truncations and seeded bit flips, 3. random mutations until the
    # time is up
    for name, fmt, data, args in files:
        run_one(f"{name}#original", fmt, data, args, "original")
    cut_counts = flip_counts = 0
    for name, fmt, data, args in files if only is None else ():
        cuts = sorted({0, 1, 7, 8, 9, 16, len(data) - 1, *range(0, len(data), max(1, len(data) // 24))})
        for cut in cuts:
            run_one(f"{name}#truncate-{cut}", fmt, data[:cut], args, "truncate")
            cut_counts += 1
        for flip_seed in range(BITFLIP_SEEDS):
            run_one(
                f"{name}#bitflip-{flip_seed}", fmt, bitflip(data, random.Random(f"flip:{flip_seed}")), args, "bitflip"
            )
            flip_counts += 1
    i = 0
    while time.monotonic() - start < seconds or only is not None:
        if only is not None and i > only:
            break
        name, fmt, data, args = files[i % len(files)]
        rng = random.Random(f"{seed}:{i}")
        mname, mutate = rng.choice(mutators_for(fmt))
        if only is None or i == only:
            try:
                mutated = mutate(data, rng)
            except Exception as exc:  # a mutator bug is not a loader finding, but must not stop the run
                mutated = bytes_mutation(data, rng)
                runner.count("mutator errors", type(exc).__name__)
            run_one(f"{name}#{seed}:{i}", fmt, mutated, args, mname)
        i += 1
    return {
        "target": "loaders",
        "seed": seed,
        "iterations": iterations,
        "truncations": cut_counts,
        "bitflips": flip_counts,
        "mutations": i,
        "files": len(files),
        "formats": sorted({fmt for _n, fmt, _d, _a in files}),
        "seconds": round(time.monotonic() - start, 1),
        "counts": runner.counts,
        "findings": runner.findings,
    }


# -- native model creation ----------------------------------------------------------------------------------------
def random_specs(rng):
    """A short chain of random lstmrt layer specs (usually valid: the mutations make them wrong)."""
    import lstmrt

    def arr(*shape):
        return np.asarray(np.random.default_rng(rng.randrange(2**32)).uniform(-0.5, 0.5, shape), np.float32)

    size = rng.randint(1, 6)
    specs = []
    widths = [size]  # the model input, then each layer's output: what an Add may read
    if rng.random() < 0.15:
        V = rng.randint(1, 6)
        specs.append(lstmrt.Embedding(arr(V, size)))
        widths = [1, size]
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["lstm", "gru", "rnn", "dense", "act", "affine", "bi", "pool", "add", "attention"])
        H = rng.randint(1, 6)
        if kind == "lstm":
            P = rng.choice([0, 0, rng.randint(1, H)])
            hr = P or H
            spec = lstmrt.LSTM(
                arr(4 * H, size),
                arr(4 * H, hr),
                arr(4 * H),
                arr(4 * H),
                weight_hr=arr(P, H) if P else None,
                peephole=arr(3, H) if rng.random() < 0.3 else None,
                cell_clip=rng.choice([None, 0.5]),
                go_backwards=rng.random() < 0.1,
            )
        elif kind == "gru":
            spec = lstmrt.GRU(arr(3 * H, size), arr(3 * H, H), arr(3 * H), arr(3 * H), reset_after=rng.random() < 0.5)
        elif kind == "rnn":
            spec = lstmrt.SimpleRNN(arr(H, size), arr(H, H), arr(H), None, activation=rng.choice(["tanh", "relu"]))
        elif kind == "dense":
            spec = lstmrt.Dense(
                arr(H, size),
                arr(H) if rng.random() < 0.5 else None,
                activation=rng.choice(["linear", "softmax", "relu"]),
            )
        elif kind == "act":
            spec = lstmrt.Activation(rng.choice(["relu", "tanh", "softmax", "gelu"]))
        elif kind == "affine":
            spec = lstmrt.Affine(arr(size), arr(size))
        elif kind == "pool":
            spec = lstmrt.GlobalPooling(size, rng.choice(["average", "max"]))
        elif kind == "add":
            point = rng.choice([p for p, w in enumerate(widths) if w >= size])  # the last point always is
            start = rng.randint(0, max(0, widths[point] - size))
            spec = lstmrt.Add(size, "input" if point == 0 else point - 1, start)
        elif kind == "attention":  # one score per step (then any slice of any point), or one per feature
            point = rng.choice([p for p, w in enumerate(widths) if size == 1 or w >= size])
            features = rng.randint(1, widths[point]) if size == 1 else size
            start = rng.randint(0, widths[point] - features)
            spec = lstmrt.AttentionPooling(features, "input" if point == 0 else point - 1, start, per_feature=size > 1)
        else:
            spec = lstmrt.Bidirectional(
                lstmrt.GRU(arr(3 * H, size), arr(3 * H, H)),
                lstmrt.GRU(arr(3 * H, size), arr(3 * H, H)),
                rng.choice(["concat", "sum", "mul", "ave"]),
            )
        specs.append(spec)
        size = spec.output_size if spec.output_size is not None else size
        widths.append(size)
    return specs


def descs_of(specs):
    size = specs[0].input_size or 3
    out = []
    for spec in specs:
        out.append(spec._desc(size))
        size = spec.output_size if spec.output_size is not None else size
    return out


_INT_FIELDS = (
    "kind",
    "input_size",
    "hidden_size",
    "proj_size",
    "num_embeddings",
    "num_directions",
    "merge_mode",
    "linear_before_reset",
    "hold_masked_output",
    "go_backwards",
    "final_only",
    "norm_mode",
    "pool_mode",
    "add_from",
    "add_offset",
)
_ARRAYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole", "weight_proj")


def mutate_descs(descs, rng):
    descs = [dict(d, weights=[dict(w) for w in d["weights"]]) for d in descs]
    for _ in range(rng.choice([1, 1, 2, 3])):
        d = rng.choice([x for x in descs if isinstance(x, dict)] or [{}])
        weights = d.get("weights")
        if not (isinstance(weights, list) and all(isinstance(w, dict) for w in weights)):
            continue  # an earlier mutation replaced it: nothing to edit in place
        r = rng.random()
        if r < 0.35:
            field = rng.choice(_INT_FIELDS)
            old = d.get(field) if isinstance(d.get(field), int) else 0
            d[field] = rng.choice(INTERESTING + [old + 1, old - 1, 0, 1, 2, 4, 5])
        elif r < 0.65:
            w = rng.choice(d["weights"]) if d["weights"] else {}
            key = rng.choice(_ARRAYS)
            old = w.get(key)
            n = old.size if isinstance(old, np.ndarray) else rng.randint(0, 40)
            w[key] = rng.choice(
                [
                    None,
                    np.zeros(max(0, n + rng.choice([-1, 1, -n, n])), np.float32),
                    np.zeros(0, np.float32),
                    np.zeros((n, 2), np.float32)[:, 0] if n else None,
                    np.zeros(n, np.float64),
                    np.zeros(n, np.int32),
                    np.zeros((max(n, 1), 1), np.float32),
                    [0.5] * n,
                    np.float32(1.0),
                    "weights",
                ]
            )
        elif r < 0.75:
            d["weights"] = rng.choice([[], [{}], d["weights"] * 2, d["weights"] * 3, "x", [None]])
        elif r < 0.82:
            d["activations"] = rng.choice([[], [99, 0, 0], [-1], [0, 0, 0, 0], [17, 18, 0], ["relu"], None])
        elif r < 0.88:
            d[rng.choice(_INT_FIELDS)] = rng.choice([None, "1", 1.5, [1], 2**70])
        elif r < 0.92:
            d.pop(rng.choice(list(d)), None)
        elif r < 0.96:
            d["cell_clip"] = rng.choice([float("nan"), -1.0, float("inf"), "x", 1e39, 1e-39])
        else:
            descs.insert(rng.randrange(len(descs) + 1), rng.choice([None, 3, {}, "layer", dict(d)]))
    return descs


def _native_outcome(descs) -> str:
    from lstmrt import _native

    try:
        m = _native.Model(descs)
    except (ValueError, TypeError, KeyError) as exc:
        return type(exc).__name__
    X = np.linspace(-1, 1, 2 * 3 * m.input_size, dtype=np.float32).reshape(2, 3, m.input_size)
    try:
        m.predict(X)
    except ValueError as exc:  # token ids out of range for an embedding model: a clean refusal
        if "token" not in str(exc):
            raise
        return "built (bad token)"
    return "built"


def _spec_outcome(specs, rng) -> str:
    import lstmrt

    try:
        model = lstmrt.Model(specs, input_size=rng.choice([None, None, 0, 3, -1]), return_sequences=rng.random() < 0.8)
    except (ValueError, TypeError) as exc:
        return type(exc).__name__
    tokens = type(specs[0]).__name__ == "Embedding"
    X = np.zeros((2, 3), np.int64) if tokens else np.ones((2, 3, model.input_size), np.float32)
    model.predict(X)
    if not model.bidirectional:
        model.stream(batch=2).step(X[:, :1] if tokens else X[:, 0])
    return "built"


def run_native(seconds: float, seed: int, artifacts: Path, only=None) -> dict:
    import pickle

    runner = Runner(artifacts)
    current = Path(artifacts) / "current.json"
    start, i = time.monotonic(), 0
    while time.monotonic() - start < seconds or only is not None:
        if only is not None and i > only:
            break
        rng = random.Random(f"{seed}:{i}")
        label = f"native#{seed}:{i}"
        if only is not None and i != only:
            i += 1
            continue
        specs = random_specs(rng)
        mode = "desc" if rng.random() < 0.7 else "spec"
        descs = mutate_descs(descs_of(specs), rng) if mode == "desc" else None
        current.write_text(json.dumps({"input": label, "mode": mode}))
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                outcome = _native_outcome(descs) if mode == "desc" else _spec_outcome(specs, rng)
            runner.count(mode, outcome)
        except Exception as exc:
            runner.count(mode, "FINDING")
            data = pickle.dumps(descs if mode == "desc" else None)
            runner.finding(label, f"{type(exc).__name__}: {str(exc)[:300]}", data, traceback.format_exc(), exc)
        finally:
            faulthandler.cancel_dump_traceback_later()
        i += 1
    return {
        "target": "native",
        "seed": seed,
        "iterations": i,
        "seconds": round(time.monotonic() - start, 1),
        "counts": runner.counts,
        "findings": runner.findings,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="lstmrt fuzz worker (see the module docstring)")
    ap.add_argument("target", choices=["loaders", "native"])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", type=int, default=None, help="run only mutation number N (reproduce a finding)")
    ap.add_argument(
        "--format",
        action="append",
        dest="formats",
        help="loaders: only the seed files of this format (repeatable; the formats of tests/fuzz_corpus/MANIFEST.json)",
    )
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.formats and args.target != "loaders":
        ap.error("--format selects seed files: loaders only")
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on every platform
        pass
    faulthandler.enable()
    os.environ["LSTMRT_HDF5_TIMEOUT"] = str(HDF5_TIMEOUT_SECONDS)
    if args.target == "loaders":
        summary = run_loaders(args.seconds, args.seed, args.artifacts, args.only, args.formats)
    else:
        summary = run_native(args.seconds, args.seed, args.artifacts, args.only)
    args.out.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
