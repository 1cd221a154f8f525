"""ONNX model files decoded into plain Python data (onnx/onnx.proto is the schema), with protobuf.py reading the
wire format: no onnx or protobuf package at run time.

Decoded: the model's IR version, opset imports and producer; the main graph's nodes (attributes with their values),
initializers as NumPy arrays, and the types of its inputs and outputs. Not decoded, on purpose: subgraphs and the
other values an interpreter of plain tensor graphs cannot use (attributes of those kinds become Unsupported, so
recursion stops at model -> graph -> node -> attribute -> tensor), model-local functions, training info, value_info,
doc strings and metadata. Fields of the wrong wire type are unknown fields and skipped, and a singular message given
twice is merged, as protobuf parsers do; a field number absent from the schema is skipped.

External data (TensorProto.data_location EXTERNAL: `location`, `offset`, `length` in external_data, as onnx.save(...,
save_as_external_data=True) and torch.onnx.export's default exporter write the weights) is read from the model's
directory, each data file opened once and only the named ranges read, after the size checks and the load limit.
A location that is absolute, has a drive letter or a `..` component, or leads outside the model's directory through
a symlink is an UnsafeFileError, raised before that file is opened (ONNX Runtime refuses the same paths). Other
keys (checksum, ...) are ignored.

Errors: CorruptFileError for anything malformed (including what is not ONNX at all, and external data missing or
not covering its tensor), UnsupportedModelError for a well-formed file holding what lstmrt does not read (segments,
sparse initializers, string or complex tensors, external data when parsing bytes with no directory),
ModelTooLargeError before allocating tensors past the load limit (lstmrt.loaders.safety.Budget).

Tensors (initializers, TENSOR attributes) stored in raw_data, as exporters write them, are views of the parsed bytes:
no copy, read-only when those are `bytes`, and keeping them alive; external ones are read-only views of the bytes
read for them; BOOL and BFLOAT16 tensors, and those stored in the typed fields (float_data, int32_data, ...), are
arrays of their own."""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptFileError, UnsafeFileError, UnsupportedModelError
from .protobuf import (
    FIXED32,
    FIXED64,
    LEN,
    VARINT,
    Repeated,
    as_float32,
    as_int32,
    as_int64,
    fields,
    merged,
    text,
)
from .safety import Budget, file_errors

DATA_TYPE_NAMES = {
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
    15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
    20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
    27: "FLOAT6E2M3", 28: "FLOAT6E3M2",
}  # fmt: skip
# How each supported type is stored (little-endian, as raw_data holds it). BOOL and BFLOAT16 are converted after:
# to bool (any non-zero byte is true) and to float32 (NumPy has no bfloat16).
_STORAGE = {
    1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "u1", 10: "<f2", 11: "<f8", 12: "<u4",
    13: "<u8", 16: "<u2",
}  # fmt: skip
_BOOL, _BFLOAT16 = 9, 16
# the NumPy type of each supported type's values once decoded
NUMPY_TYPES = {
    code: np.bool_ if code == _BOOL else np.float32 if code == _BFLOAT16 else np.dtype(storage).type
    for code, storage in _STORAGE.items()
}
# The typed field holding a type's values when raw_data is absent (TensorProto: float_data 4, int32_data 5,
# int64_data 7, double_data 10, uint64_data 11), and the wire encoding of each. The rest use int32_data: one varint per
# element whatever its width, float16/bfloat16 as their bit patterns.
_TYPED_WIRE = {4: FIXED32, 5: VARINT, 7: VARINT, 10: FIXED64, 11: VARINT}
_TYPED_FIELD = {1: 4, 7: 7, 11: 10, 12: 11, 13: 11}
_INT32_DATA = 5

_ATTRIBUTE_TYPES = {
    1: "FLOAT", 2: "INT", 3: "STRING", 4: "TENSOR", 5: "GRAPH", 6: "FLOATS", 7: "INTS", 8: "STRINGS",
    9: "TENSORS", 10: "GRAPHS", 11: "SPARSE_TENSOR", 12: "SPARSE_TENSORS", 13: "TYPE_PROTO", 14: "TYPE_PROTOS",
}  # fmt: skip
# AttributeProto field number -> the type it holds, to infer a missing `type` (files from before it existed).
_FIELD_TYPE = {2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 10: 9, 11: 10, 22: 11, 23: 12, 14: 13, 15: 14}
# The wire types each value field may have (the others are strings or messages: LEN).
_VALUE_WIRES = {2: (FIXED32,), 3: (VARINT,), 7: (FIXED32, LEN), 8: (VARINT, LEN)}
_DEFAULT_DOMAINS = ("", "ai.onnx")  # two spellings of the standard operator set
_DRIVE = re.compile(r"[A-Za-z]:")  # C:\x, C:x: a Windows path, absolute or on another drive
_DECIMAL = re.compile(r"0*[0-9]{1,20}")


@dataclass(frozen=True)
class Unsupported:
    """An attribute value lstmrt does not decode: kind is its AttributeProto type (GRAPH, GRAPHS, TENSORS,
    SPARSE_TENSOR(S), TYPE_PROTO(S), or "type N" for a type newer than this reader) or "ref_attr_name" (a reference
    to an attribute of an enclosing function)."""

    kind: str


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output. elem_type: TensorProto data type (0 when not a tensor or not given); shape: one
    entry per dimension, an int (dim_value), a str (dim_param, a symbolic size) or None (unknown); None when the
    rank is unknown."""

    name: str
    elem_type: int
    shape: tuple | None


@dataclass(frozen=True)
class Node:
    """inputs may hold "" for an optional input left out; attrs maps names to float, int, str, np.ndarray, tuples
    of float/int/str, or Unsupported. domain "" is the standard operator set (also spelled "ai.onnx" in files)."""

    op_type: str
    domain: str
    name: str
    inputs: tuple
    outputs: tuple
    attrs: dict


@dataclass(frozen=True)
class Graph:
    """initializers: name -> array, in file order. inputs may list initializers too (IR < 4 required it)."""

    name: str
    nodes: tuple
    initializers: dict
    inputs: tuple
    outputs: tuple


@dataclass(frozen=True)
class OnnxModel:
    """opsets: domain ("" = the standard ai.onnx set) -> version."""

    ir_version: int
    opsets: dict
    producer: str
    graph: Graph


def read_onnx(path) -> OnnxModel:
    """The model in an .onnx file, its size checked against the load limit before it is read; tensors kept in
    external files are read from the file's directory (see parse_onnx)."""
    where = os.fsdecode(os.fspath(path))
    with open(path, "rb") as f:
        Budget(where).take(os.fstat(f.fileno()).st_size // 4, 4, "the file")
        data = f.read()
    return parse_onnx(data, where, directory=os.path.dirname(where) or os.curdir)


def parse_onnx(data, where: str, budget: Budget | None = None, *, directory=None) -> OnnxModel:
    """The model serialized in `data` (bytes-like); `where` names it in error messages; tensors are counted
    against `budget` (a new Budget(where) by default). directory: the model file's directory, where tensors with
    external data are read (each file opened once, only the ranges the tensors name read); without it, such
    tensors are refused."""
    budget = Budget(where) if budget is None else budget
    # file_errors is a backstop only: every malformation has its own check
    with _ExternalFiles(directory) as external, file_errors(where, reading=True):
        return _model(data, where, budget, external)


def _model(data, where: str, budget: Budget, external: _ExternalFiles) -> OnnxModel:
    ir_version, producer, graphs, opset_parts = 0, b"", [], []
    for number, wire, value in fields(data, where):
        if number == 1 and wire == VARINT:
            ir_version = as_int64(value)
        elif number == 2 and wire == LEN:
            producer = value
        elif number == 7 and wire == LEN:
            graphs.append(value)
        elif number == 8 and wire == LEN:
            opset_parts.append(value)
    if not graphs:
        raise CorruptFileError(f"{where}: no graph: not an ONNX model")
    opsets = {}
    for part in opset_parts:
        domain, version = _opset(part, f"{where}: opset_import")
        if domain in opsets:
            raise CorruptFileError(f"{where}: opset_import names domain {domain!r} twice")
        opsets[domain] = version
    producer = text(producer, f"{where}: producer_name")
    return OnnxModel(ir_version, opsets, producer, _graph(merged(graphs), where, budget, external))


def _opset(buf, where: str) -> tuple:
    domain, version = b"", 0
    for number, wire, value in fields(buf, where):
        if number == 1 and wire == LEN:
            domain = value
        elif number == 2 and wire == VARINT:
            version = as_int64(value)
    return _domain(domain, where), version


def _domain(raw, where: str) -> str:
    domain = text(raw, f"{where}: domain")
    return "" if domain in _DEFAULT_DOMAINS else domain


def _graph(buf, where: str, budget: Budget, external: _ExternalFiles) -> Graph:
    name, nodes, initializers, inputs, outputs = b"", [], [], [], []
    for number, wire, value in fields(buf, f"{where}: graph"):
        if wire != LEN:  # every field read here is a string or a message
            continue
        if number == 1:
            nodes.append(value)
        elif number == 2:
            name = value
        elif number == 5:
            initializers.append(value)
        elif number == 11:
            inputs.append(value)
        elif number == 12:
            outputs.append(value)
        elif number == 15:
            raise UnsupportedModelError(f"{where}: the graph has sparse initializers, which lstmrt does not read")
    tensors = {}
    for part in initializers:
        tensor_name, array = _tensor(part, where, budget, external)
        if not tensor_name:
            raise CorruptFileError(f"{where}: an initializer has no name")
        if tensor_name in tensors:
            raise CorruptFileError(f"{where}: two initializers are named {tensor_name!r}")
        tensors[tensor_name] = array
    return Graph(
        name=text(name, f"{where}: graph name"),
        nodes=tuple(_node(part, where, i, budget, external) for i, part in enumerate(nodes)),
        initializers=tensors,
        inputs=tuple(_value_info(part, f"{where}: graph input") for part in inputs),
        outputs=tuple(_value_info(part, f"{where}: graph output") for part in outputs),
    )


def _node(buf, where: str, index: int, budget: Budget, external: _ExternalFiles) -> Node:
    here = f"{where}: node {index}"
    inputs, outputs, attributes, name, op_type, domain = [], [], [], b"", b"", b""
    for number, wire, value in fields(buf, here):
        if wire != LEN:
            continue
        if number == 1:
            inputs.append(value)
        elif number == 2:
            outputs.append(value)
        elif number == 3:
            name = value
        elif number == 4:
            op_type = value
        elif number == 5:
            attributes.append(value)
        elif number == 7:
            domain = value
    name, op_type = text(name, f"{here}: name"), text(op_type, f"{here}: op_type")
    here = f"{where}: node {name!r} ({op_type})" if name else f"{here} ({op_type})"
    attrs = {}
    for part in attributes:
        key, value = _attribute(part, here, budget, external)
        if key in attrs:
            raise CorruptFileError(f"{here}: attribute {key!r} is given twice")
        attrs[key] = value
    return Node(
        op_type=op_type,
        domain=_domain(domain, here),
        name=name,
        inputs=tuple(text(v, f"{here}: input") for v in inputs),
        outputs=tuple(text(v, f"{here}: output") for v in outputs),
        attrs=attrs,
    )


def _attribute(buf, where: str, budget: Budget, external: _ExternalFiles) -> tuple:
    name, kind, ref, scalars, s, tensors, strings = b"", 0, b"", {}, b"", [], []
    floats, ints, present = Repeated(FIXED32), Repeated(VARINT), set()
    for number, wire, value in fields(buf, f"{where}: attribute"):
        if number == 1 and wire == LEN:
            name = value
        elif number == 20 and wire == VARINT:
            kind = as_int32(value)
        elif number == 21 and wire == LEN:
            ref = value
        elif number in _FIELD_TYPE and wire in _VALUE_WIRES.get(number, (LEN,)):
            present.add(number)
            if number in (2, 3):
                scalars[number] = value
            elif number == 4:
                s = value
            elif number == 5:
                tensors.append(value)
            elif number == 7:
                floats.add(wire, value)
            elif number == 8:
                ints.add(wire, value)
            elif number == 9:
                strings.append(value)
    name = text(name, f"{where}: attribute name")
    if not name:
        raise CorruptFileError(f"{where}: an attribute has no name")
    here = f"{where}: attribute {name!r}"
    if ref:
        return name, Unsupported("ref_attr_name")
    if kind == 0:  # UNDEFINED or absent: the one value field set says which
        if len(present) != 1:
            what = "no value" if not present else f"{len(present)} values"
            raise CorruptFileError(f"{here} has no type and {what}")
        kind = _FIELD_TYPE[present.pop()]
    if kind not in _ATTRIBUTE_TYPES:
        return name, Unsupported(f"type {kind}")
    if kind == 1:
        return name, as_float32(scalars.get(2, 0))
    if kind == 2:
        return name, as_int64(scalars.get(3, 0))
    if kind == 3:
        return name, text(s, here)
    if kind == 4:
        if not tensors:
            raise CorruptFileError(f"{here} is a TENSOR attribute without a tensor")
        return name, _tensor(merged(tensors), here, budget, external)[1]
    if kind == 6:
        return name, tuple(floats.raw(here).view(np.float32).tolist())
    if kind == 7:
        return name, tuple(ints.raw(here).view(np.int64).tolist())
    if kind == 8:
        return name, tuple(text(v, here) for v in strings)
    return name, Unsupported(_ATTRIBUTE_TYPES[kind])


def _tensor(buf, where: str, budget: Budget, external: _ExternalFiles) -> tuple:
    """(name, array) of one TensorProto, its size checked against its data and then `budget` before the array
    is made (and before its external data is read)."""
    dims, typed = Repeated(VARINT), {number: Repeated(wire) for number, wire in _TYPED_WIRE.items()}
    data_type, name, raw, location, entries, segment = 0, b"", None, 0, [], False
    for number, wire, value in fields(buf, f"{where}: tensor"):
        if number == 1:
            dims.add(wire, value)
        elif number in typed:
            typed[number].add(wire, value)
        elif wire == VARINT and number == 2:
            data_type = as_int32(value)
        elif wire == VARINT and number == 14 and as_int32(value) in (0, 1):  # data_location: DEFAULT, EXTERNAL
            location = value
        elif wire != LEN:
            continue
        elif number == 3:
            segment = True
        elif number == 8:
            name = value
        elif number == 9:
            raw = value
        elif number == 13:
            entries.append(value)
    name = text(name, f"{where}: tensor name")
    here = f"{where}: tensor {name!r}" if name else f"{where}: tensor"
    if segment:
        raise UnsupportedModelError(f"{here} is one segment of a tensor split in several, which lstmrt does not read")
    shape = dims.raw(here).view(np.int64)
    if (shape < 0).any():
        raise CorruptFileError(f"{here} has negative dims {tuple(shape.tolist())}")
    shape = tuple(shape.tolist())
    if data_type not in _STORAGE:
        raise UnsupportedModelError(
            f"{here} has data type {DATA_TYPE_NAMES.get(data_type, data_type)}; lstmrt reads "
            + ", ".join(DATA_TYPE_NAMES[t] for t in _STORAGE)
        )
    storage = np.dtype(_STORAGE[data_type])
    count = math.prod(shape)
    if math.prod(d for d in shape if d) * storage.itemsize >= 1 << 63:  # NumPy refuses such a shape, even empty
        raise CorruptFileError(f"{here} has dims {shape}, too large for any array")
    # The data must hold exactly the elements dims declare: checked before the budget, so a huge dims over a
    # short buffer reads as the damage it is rather than as a model too large.
    field = typed[_TYPED_FIELD.get(data_type, _INT32_DATA)]
    span = None
    if location == 1:  # data_location alone decides, as in onnx and ONNX Runtime: external_data is else ignored
        span = external.find(_external_entries(entries, here), here)
        if span.length != count * storage.itemsize:
            raise CorruptFileError(
                f"{here} of dims {shape} needs {count * storage.itemsize:,} bytes, its external data "
                f"({span.location!r}, offset {span.offset:,}) holds {span.length:,}"
            )
    elif raw is not None and len(raw) != count * storage.itemsize:
        raise CorruptFileError(
            f"{here} of dims {shape} needs {count * storage.itemsize:,} bytes, its raw_data holds {len(raw):,}"
        )
    elif raw is None and field.count(here) != count:
        raise CorruptFileError(f"{here} of dims {shape} needs {count:,} values, it holds {field.count(here):,}")
    budget.take(count, storage.itemsize, f"{here.removeprefix(f'{budget.source}: ')} of dims {shape}")
    if span is not None:  # external data wins over raw_data, as in onnx's own reader
        raw = external.read(span, here)
    if raw is not None:  # raw_data wins over the typed fields, as in onnx's own reader
        array = np.frombuffer(raw, storage)
        if not array.dtype.isnative:
            array = array.astype(storage.newbyteorder("="))
    else:  # unsigned values cut to the type's width (as onnx's own reader does), seen as the type
        array = field.raw(here).astype(f"u{storage.itemsize}", copy=False).view(storage.newbyteorder("="))
    if data_type == _BOOL:
        array = array != 0
    elif data_type == _BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return name, array.reshape(shape)


def _external_entries(entries: list, where: str) -> dict:
    """TensorProto.external_data (StringStringEntryProto key 1, value 2) as a dict; a key given twice keeps its
    last value, as in onnx and ONNX Runtime."""
    out = {}
    for entry in entries:
        key, value = b"", b""
        for number, wire, part in fields(entry, f"{where}: external_data"):
            if number == 1 and wire == LEN:
                key = part
            elif number == 2 and wire == LEN:
                value = part
        out[text(key, f"{where}: external_data key")] = text(value, f"{where}: external_data value")
    return out


# -- external data ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Span:
    """Where one tensor's bytes are: `length` bytes at `offset` of the open data file `path` (a real path)."""

    location: str
    path: str
    offset: int
    length: int


class _ExternalFiles:
    """The data files of one load, each opened once. Paths are checked as ONNX Runtime checks them (a location
    is relative, without `..`, and still inside the model's directory once symlinks are resolved), so that a
    model cannot make lstmrt read a file of the machine it was not given: a hostile file would otherwise read,
    say, ~/.ssh/id_rsa into its weights and out through the model's outputs."""

    def __init__(self, directory):
        self.directory = None if directory is None else os.path.realpath(directory)
        self.files = {}  # real path -> (open file, size)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for f, _ in self.files.values():
            f.close()
        self.files.clear()

    def find(self, entries: dict, where: str) -> _Span:
        """The span `entries` (location, offset, length) name, every check done and nothing read yet."""
        location = entries.get("location", "")
        if self.directory is None:
            raise UnsupportedModelError(
                f"{where} keeps its data in an external file ({location!r}); reading it needs the model's "
                "directory: load the model from its path (lstmrt.load(path)) or pass parse_onnx(directory=)"
            )
        if not location:
            raise CorruptFileError(f"{where} keeps its data in an external file but names no location")
        if "\0" in location:
            raise CorruptFileError(f"{where}: external data location {location!r} holds a NUL character")
        parts = location.replace("\\", "/").split("/")
        unsafe = (
            "an absolute path" if os.path.isabs(location) or location.startswith(("/", "\\"))
            else "a path with a drive letter" if _DRIVE.match(location)
            else "a path with a '..' component" if ".." in parts
            else None
        )  # fmt: skip
        path = os.path.realpath(os.path.join(self.directory, location))
        if unsafe is None and not _inside(path, self.directory):
            unsafe = "a path leading outside the model's directory through a symlink"
        if unsafe is not None:
            raise UnsafeFileError(
                f"{where} keeps its data in {location!r}, {unsafe}: lstmrt reads external data only from the "
                f"model's directory ({self.directory})"
            )
        offset = _offset(entries, "offset", 0, where)
        length = _offset(entries, "length", None, where)
        size = self._open(path, location, where)
        if offset > size:
            raise CorruptFileError(
                f"{where}: external data offset {offset:,} is past the end of {location!r} ({size:,} bytes)"
            )
        length = size - offset if length is None else length
        if length > size - offset:
            raise CorruptFileError(
                f"{where}: external data of {length:,} bytes at offset {offset:,} runs past the end of "
                f"{location!r} ({size:,} bytes)"
            )
        return _Span(location, path, offset, length)

    def _open(self, path: str, location: str, where: str) -> int:
        """The size of the data file at `path`, opened now unless it already is."""
        if path not in self.files:
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would block or never end
                    raise CorruptFileError(f"{where}: external data location {location!r} is not a regular file")
                f = open(path, "rb")
            except FileNotFoundError:
                raise CorruptFileError(
                    f"{where}: external data file {location!r} is missing from {self.directory}"
                ) from None
            except OSError as exc:
                raise CorruptFileError(f"{where}: external data file {location!r}: {exc.strerror}") from None
            self.files[path] = f, os.fstat(f.fileno()).st_size
        return self.files[path][1]

    def read(self, span: _Span, where: str) -> bytes:
        f = self.files[span.path][0]
        f.seek(span.offset)
        data = f.read(span.length)
        if len(data) != span.length:  # the file shrank since it was opened
            raise CorruptFileError(f"{where}: external data file {span.location!r} is truncated")
        return data


def _inside(path: str, directory: str) -> bool:
    try:
        return os.path.commonpath([directory, path]) == directory
    except ValueError:  # on Windows, paths on two drives
        return False


def _offset(entries: dict, key: str, default, where: str):
    """A non-negative decimal integer of external_data, or `default` when absent. Over 20 digits (past 2**64, what
    no file holds) is refused before int() meets a string of any length."""
    value = entries.get(key)
    if value is None:
        return default
    if not _DECIMAL.fullmatch(value):
        raise CorruptFileError(
            f"{where}: external data {key} {value!r} is not a non-negative integer (of at most 20 digits)"
        )
    return int(value.lstrip("0") or "0")  # int() counts leading zeros against its 4,300-digit limit


def _value_info(buf, where: str) -> ValueInfo:
    name, types = b"", []
    for number, wire, value in fields(buf, where):
        if number == 1 and wire == LEN:
            name = value
        elif number == 2 and wire == LEN:
            types.append(value)
    name = text(name, f"{where} name")
    here = f"{where} {name!r}"
    elem_type, shape = _tensor_type(merged(types), here) if types else (0, None)
    return ValueInfo(name, elem_type, shape)


def _tensor_type(buf, where: str) -> tuple:
    """(elem_type, shape) of a TypeProto holding a tensor type; (0, None) for other types (sequence, map, ...)."""
    parts = []
    for number, wire, value in fields(buf, where):
        if wire != LEN:
            continue
        if number == 1:
            parts.append(value)
        elif number in (4, 5, 7, 8, 9):  # another member of the `value` oneof: it replaces tensor_type
            parts = []
    if not parts:
        return 0, None
    elem_type, shapes = 0, []
    for number, wire, value in fields(merged(parts), where):
        if number == 1 and wire == VARINT:
            elem_type = as_int32(value)
        elif number == 2 and wire == LEN:
            shapes.append(value)
    if not shapes:
        return elem_type, None
    dims = [value for number, wire, value in fields(merged(shapes), where) if number == 1 and wire == LEN]
    return elem_type, tuple(_dim(d, where) for d in dims)


def _dim(buf, where: str):
    dim = None
    for number, wire, value in fields(buf, where):
        if number == 1 and wire == VARINT:
            dim = as_int64(value)
        elif number == 2 and wire == LEN:
            dim = text(value, f"{where}: dim_param")
    return dim
