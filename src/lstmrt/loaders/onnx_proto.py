"""ONNX model files decoded into plain Python data (onnx/onnx.proto is the schema), with protobuf.py reading the
wire format: no onnx or protobuf package at run time.

Decoded: the model's IR version, opset imports and producer; the main graph's nodes (attributes with their values),
initializers as NumPy arrays, and the types of its inputs and outputs. Not decoded, on purpose: subgraphs and the
other values an interpreter of plain tensor graphs cannot use (attributes of those kinds become Unsupported, so
recursion stops at model -> graph -> node -> attribute -> tensor), model-local functions, training info, value_info,
doc strings and metadata. Fields of the wrong wire type are unknown fields and skipped, and a singular message given
twice is merged, as protobuf parsers do; a field number absent from the schema is skipped.

Errors: CorruptFileError for anything malformed (including what is not ONNX at all), UnsupportedModelError for a
well-formed file holding what lstmrt does not read (external data, segments, sparse initializers, string or complex
tensors), ModelTooLargeError before allocating tensors past the load limit (lstmrt.loaders.safety.Budget).

Tensors (initializers, TENSOR attributes) stored in raw_data, as exporters write them, are views of the parsed bytes:
no copy, read-only when those are `bytes`, and keeping them alive; BOOL and BFLOAT16 tensors, and those stored in
the typed fields (float_data, int32_data, ...), are arrays of their own."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptFileError, UnsupportedModelError
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
    """The model in an .onnx file, its size checked against the load limit before it is read."""
    where = os.fsdecode(os.fspath(path))
    with open(path, "rb") as f:
        Budget(where).take(os.fstat(f.fileno()).st_size // 4, 4, "the file")
        data = f.read()
    return parse_onnx(data, where)


def parse_onnx(data, where: str, budget: Budget | None = None) -> OnnxModel:
    """The model serialized in `data` (bytes-like); `where` names it in error messages; tensors are counted
    against `budget` (a new Budget(where) by default)."""
    budget = Budget(where) if budget is None else budget
    with file_errors(where, reading=True):  # a backstop only: every malformation has its own check
        return _model(data, where, budget)


def _model(data, where: str, budget: Budget) -> OnnxModel:
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
    return OnnxModel(ir_version, opsets, producer, _graph(merged(graphs), where, budget))


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


def _graph(buf, where: str, budget: Budget) -> Graph:
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
        tensor_name, array = _tensor(part, where, budget)
        if not tensor_name:
            raise CorruptFileError(f"{where}: an initializer has no name")
        if tensor_name in tensors:
            raise CorruptFileError(f"{where}: two initializers are named {tensor_name!r}")
        tensors[tensor_name] = array
    return Graph(
        name=text(name, f"{where}: graph name"),
        nodes=tuple(_node(part, where, i, budget) for i, part in enumerate(nodes)),
        initializers=tensors,
        inputs=tuple(_value_info(part, f"{where}: graph input") for part in inputs),
        outputs=tuple(_value_info(part, f"{where}: graph output") for part in outputs),
    )


def _node(buf, where: str, index: int, budget: Budget) -> Node:
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
        key, value = _attribute(part, here, budget)
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


def _attribute(buf, where: str, budget: Budget) -> tuple:
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
        return name, _tensor(merged(tensors), here, budget)[1]
    if kind == 6:
        return name, tuple(floats.raw(here).view(np.float32).tolist())
    if kind == 7:
        return name, tuple(ints.raw(here).view(np.int64).tolist())
    if kind == 8:
        return name, tuple(text(v, here) for v in strings)
    return name, Unsupported(_ATTRIBUTE_TYPES[kind])


def _tensor(buf, where: str, budget: Budget) -> tuple:
    """(name, array) of one TensorProto, its size checked against its data and then `budget` before the array
    is made."""
    dims, typed = Repeated(VARINT), {number: Repeated(wire) for number, wire in _TYPED_WIRE.items()}
    data_type, name, raw, location, external_data, segment = 0, b"", None, 0, False, False
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
            external_data = True  # location, offset, length: never looked at
    name = text(name, f"{where}: tensor name")
    here = f"{where}: tensor {name!r}" if name else f"{where}: tensor"
    if location == 1 or external_data:
        raise UnsupportedModelError(
            f"{here} keeps its data in an external file; lstmrt reads only self-contained .onnx files "
            "(re-save with onnx.save(model, path, save_as_external_data=False))"
        )
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
    if raw is not None and len(raw) != count * storage.itemsize:
        raise CorruptFileError(
            f"{here} of dims {shape} needs {count * storage.itemsize:,} bytes, its raw_data holds {len(raw):,}"
        )
    if raw is None and field.count(here) != count:
        raise CorruptFileError(f"{here} of dims {shape} needs {count:,} values, it holds {field.count(here):,}")
    budget.take(count, storage.itemsize, f"{here.removeprefix(f'{budget.source}: ')} of dims {shape}")
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
