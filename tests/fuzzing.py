"""A small mutation fuzzer for lstmrt's file loaders and its native model creation, run in a worker process.

    python tests/fuzzing.py loaders --seconds 20 --out summary.json --artifacts DIR
    python tests/fuzzing.py native --seconds 8 --out summary.json --artifacts DIR

tests/test_fuzz.py runs both for a bounded time (LSTMRT_FUZZ_SECONDS to run longer); scripts/reliability_report.py
runs them for the report. Inputs come from the seed corpus tests/fuzz_corpus/ (scripts/make_fuzz_corpus.py) and
are mutated deterministically: input i of a run with seed S is reproducible with `--seed S --only i`.

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
def corpus() -> list:
    """[(name, format, bytes, load kwargs)] of the seed corpus."""
    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    out = []
    for entry in manifest["files"]:
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
    raise ValueError(fmt)


# -- running one input ---------------------------------------------------------------------------------------------
class Runner:
    """Counts outcomes and keeps findings; `artifacts` receives each input before it runs (current.bin)."""

    def __init__(self, artifacts: Path, max_findings: int = 20):
        self.artifacts = artifacts
        self.counts: dict = {}
        self.findings: list = []
        self.max_findings = max_findings
        artifacts.mkdir(parents=True, exist_ok=True)

    def count(self, key: str, outcome: str) -> None:
        self.counts.setdefault(key, {})
        self.counts[key][outcome] = self.counts[key].get(outcome, 0) + 1

    def finding(self, label: str, what: str, data: bytes | None, tb: str) -> None:
        if len(self.findings) < self.max_findings:
            path = None
            if data is not None:
                path = self.artifacts / f"finding-{len(self.findings)}-{label.replace('/', '_')}"
                path.write_bytes(data)
            self.findings.append(
                {"input": label, "what": what, "file": str(path) if path else None, "traceback": tb[-3000:]}
            )


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


def run_loaders(seconds: float, seed: int, artifacts: Path, only=None) -> dict:
    files = corpus()
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
            runner.finding(label, f"{type(exc).__name__}: {str(exc)[:300]}", data, traceback.format_exc())
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
        kind = rng.choice(["lstm", "gru", "rnn", "dense", "act", "affine", "bi", "pool", "add"])
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
            d["cell_clip"] = rng.choice([float("nan"), -1.0, float("inf"), "x", 1e39])
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
            runner.finding(label, f"{type(exc).__name__}: {str(exc)[:300]}", data, traceback.format_exc())
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
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on every platform
        pass
    faulthandler.enable()
    os.environ["LSTMRT_HDF5_TIMEOUT"] = str(HDF5_TIMEOUT_SECONDS)
    run = run_loaders if args.target == "loaders" else run_native
    summary = run(args.seconds, args.seed, args.artifacts, args.only)
    args.out.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
