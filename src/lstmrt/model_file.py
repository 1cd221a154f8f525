"""lstmrt's own model file (.lstmrt): a Model's layer descs and float32 weights in one little-endian file that the C
library loads alone (lstmrt_model_load), for programs and boards without Python. Layout: docs/model-file.md.

Writing happens here; reading is the C library's (lstmrt_file_read checks the whole file), and this module turns
the descs it returns back into layer specs."""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

from . import _native
from . import activations as acts
from .errors import CorruptFileError, UnsupportedModelError
from .layers import (
    _KIND,
    MERGE_MODES,
    GRU,
    LSTM,
    Activation,
    Add,
    Affine,
    AttentionPooling,
    Bidirectional,
    Dense,
    Embedding,
    GlobalPooling,
    LayerNorm,
    PReLU,
    SimpleRNN,
)
from .model import Model

MAGIC = b"\x89LSTMRT\n"
VERSION = 2  # written; the C reader reads version 1 too
# magic, version, CRC-32 of the bytes after this field, file size, layers, record size, options offset and size
_HEADER = struct.Struct("<8sIIQIIQQ16x")
# kind, input, hidden, proj, embeddings, directions, merge, 3 activations, cell_clip, linear_before_reset,
# hold_masked_output, go_backwards, final_only, epsilon, norm_mode, pool_mode, add_from, add_offset, 3 activation
# parameters, 4 zero bytes
_FIELDS = struct.Struct("<10if4if4i3f4x")
_ARRAY = struct.Struct("<QQ")  # offset, floats
SLOTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole", "weight_proj")
_RECORD_BYTES = _FIELDS.size + 2 * len(SLOTS) * _ARRAY.size
_ALIGN = 64  # each array starts on a cache line, so a program may use a mapped file's weights in place


def _model_classes() -> dict:
    """The Model classes a file may name, with the options each writes (KerasModel adds Keras' masking)."""
    from .loaders.keras_model import KerasModel

    plain = ("return_sequences", "squeeze_output", "unit_axes", "squeeze_input")
    return {"Model": (Model, plain), "KerasModel": (KerasModel, plain + ("mask_value", "mask_zero", "reverse_output"))}


def to_bytes(model: Model) -> bytes:
    """The model file's bytes."""
    classes = _model_classes()
    name = "KerasModel" if isinstance(model, classes["KerasModel"][0]) else "Model"
    options = model._options()
    # newer options only when used, so that older lstmrt versions read the files that do not use them
    written = {k: options[k] for k in classes[name][1] if k not in ("unit_axes", "squeeze_input") or options[k]}
    options = json.dumps({"class": name, **written}).encode()
    descs = model._descs
    at = _HEADER.size + len(descs) * _RECORD_BYTES
    options_at, at = at, _aligned(at + len(options))
    records, arrays = [], []
    for d in descs:
        refs = []
        for direction in range(2):
            weights = d["weights"][direction] if direction < len(d["weights"]) else {}
            for slot in SLOTS:
                w = weights.get(slot)
                if w is None:
                    refs.append(_ARRAY.pack(0, 0))
                    continue
                refs.append(_ARRAY.pack(at, w.size))
                arrays.append((at, np.ascontiguousarray(w, dtype="<f4").tobytes()))
                at = _aligned(at + 4 * w.size)
        fields = _FIELDS.pack(
            *(d[k] for k in ("kind", "input_size", "hidden_size", "proj_size", "num_embeddings", "num_directions")),
            d["merge_mode"],
            *d["activations"],
            d["cell_clip"],
            *(d[k] for k in ("linear_before_reset", "hold_masked_output", "go_backwards", "final_only")),
            d["epsilon"],
            *(d[k] for k in ("norm_mode", "pool_mode", "add_from", "add_offset")),
            *d["activation_alpha"],
        )
        records.append(fields + b"".join(refs))
    body = bytearray(at)
    body[_HEADER.size : options_at] = b"".join(records)
    body[options_at : options_at + len(options)] = options
    for offset, data in arrays:
        body[offset : offset + len(data)] = data
    header = _HEADER.pack(MAGIC, VERSION, 0, len(body), len(descs), _RECORD_BYTES, options_at, len(options))
    body[: _HEADER.size] = header
    crc = zlib.crc32(memoryview(body)[16:])
    body[12:16] = struct.pack("<I", crc)
    return bytes(body)


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def save(model: Model, file) -> None:
    """Write the model file to `file`: a path or a binary file object."""
    data = to_bytes(model)
    if hasattr(file, "write"):
        file.write(data)
        return
    with open(os.fspath(file), "wb") as f:
        f.write(data)


def looks_like_model_file(head: bytes) -> bool:
    return head.startswith(MAGIC)


def from_bytes(data, where: str = "model file") -> Model:
    """The Model of a model file's bytes. A damaged file raises CorruptFileError, a newer format
    UnsupportedModelError, both naming `where`."""
    data = memoryview(data).cast("B")  # outside the try: a wrong argument is the caller's TypeError
    try:
        descs, options = _native.read_model_file(data)
    except TypeError as exc:  # UNSUPPORTED from C: a newer format version, or a big-endian host
        raise UnsupportedModelError(f"{where}: {exc}") from None
    except ValueError as exc:
        raise CorruptFileError(f"{where}: {exc}") from None
    cls, kwargs = _options(options, where)
    try:
        layers = [_spec(d) for d in descs]
        return cls(layers, input_size=descs[0]["input_size"], **kwargs)
    except (TypeError, ValueError) as exc:  # the C runtime accepted the descs; lstmrt's specs check more
        raise CorruptFileError(f"{where}: {exc}") from None


def _options(raw: bytes, where: str) -> tuple:
    """(Model class, keyword options) from the file's options JSON."""
    try:
        options = json.loads(raw.decode("utf-8")) if raw else {"class": "Model"}
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptFileError(f"{where}: its options are not JSON ({exc})") from None
    if not isinstance(options, dict):
        raise CorruptFileError(f"{where}: its options are {type(options).__name__}, not a JSON object")
    classes = _model_classes()
    if options.get("class") not in classes:
        raise UnsupportedModelError(
            f"{where}: model class {options.get('class')!r}; this lstmrt knows {', '.join(classes)}"
        )
    cls, known = classes[options.pop("class")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UnsupportedModelError(
            f"{where}: options {', '.join(unknown)} are unknown to this lstmrt (a newer version wrote the file?)"
        )
    return cls, options


_KIND_NAMES = {code: name for name, code in _KIND.items()}


def _spec(d: dict):
    """The layer spec a desc (as the binding returns it) describes: the inverse of the specs' _desc."""
    kind = _KIND_NAMES[d["kind"]]
    n_in, H = d["input_size"], d["hidden_size"]
    w = d["weights"][0] if d["weights"] else {}
    if kind in ("lstm", "gru", "rnn"):
        cells = [_recurrent(kind, d, weights) for weights in d["weights"]]
        return cells[0] if len(cells) == 1 else Bidirectional(*cells, merge_mode=MERGE_MODES[d["merge_mode"]])
    if kind == "dense":
        return Dense(w["weight_ih"].reshape(H, n_in), w["bias_ih"], activation=_activations(d, 1)[0])
    if kind == "activation":
        return Activation(_activations(d, 1)[0])
    if kind == "affine":
        ones, zeros = np.ones(n_in, np.float32), np.zeros(n_in, np.float32)
        return Affine(_or(w["weight_ih"], ones), _or(w["bias_ih"], zeros))
    if kind == "prelu":
        return PReLU(w["weight_ih"])
    if kind == "norm":
        mode = LayerNorm.MODES[d["norm_mode"]]
        return LayerNorm(n_in, scale=w["weight_ih"], shift=w["bias_ih"], epsilon=d["epsilon"], mode=mode)
    if kind == "global_pool":
        return GlobalPooling(n_in, GlobalPooling.MODES[d["pool_mode"]])
    if kind == "add":
        return Add(n_in, "input" if d["add_from"] == 0 else d["add_from"] - 1, d["add_offset"])
    if kind == "attention_pool":
        source = "input" if d["add_from"] == 0 else d["add_from"] - 1
        return AttentionPooling(H, source, d["add_offset"], per_feature=n_in != 1)
    return Embedding(w["weight_ih"].reshape(d["num_embeddings"], H))


def _activations(d: dict, slots: int) -> list:
    """The canonical names of a desc's first `slots` activations (the C runtime reads no other slot)."""
    return [acts.from_code(d["activations"][k], d["activation_alpha"][k]) for k in range(slots)]


def _or(value, default):
    return default if value is None else value


def _shaped(value, *shape):
    """A flat weight from the file in its spec's shape; None stays None (an absent array)."""
    return None if value is None else value.reshape(shape)


_CELLS = {"lstm": (LSTM, 3), "gru": (GRU, 2), "rnn": (SimpleRNN, 1)}  # spec class, activation slots it uses


def _recurrent(kind: str, d: dict, w: dict):
    n_in, H, P = d["input_size"], d["hidden_size"], d["proj_size"]
    cls, slots = _CELLS[kind]
    G = cls.gates
    names = _activations(d, slots)
    args = (_shaped(w["weight_ih"], G * H, n_in), _shaped(w["weight_hh"], G * H, P or H), w["bias_ih"], w["bias_hh"])
    options = dict(
        hold_masked_output=bool(d["hold_masked_output"]),
        go_backwards=bool(d["go_backwards"]),
        return_sequences=not d["final_only"],
    )
    if cls is LSTM:
        peephole, proj = _shaped(w["weight_peephole"], 3, H), _shaped(w["weight_proj"], P, H)
        clip = d["cell_clip"] or None
        return LSTM(*args, weight_hr=proj, peephole=peephole, activations=names, cell_clip=clip, **options)
    if cls is GRU:
        return GRU(*args, reset_after=bool(d["linear_before_reset"]), activations=names, **options)
    return SimpleRNN(*args, activation=names[0], **options)
