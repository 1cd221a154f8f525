"""The ONNX decoder (lstmrt.loaders.onnx_proto, on the wire-format reader lstmrt.loaders.protobuf) against onnx's own
parse of real models: every attribute kind, every supported dtype in raw_data and in the typed fields, packed and
unpacked repeated fields; then the files it must refuse, and damaged files (truncated at every byte, bytes flipped)."""

import io
import math
import os
import re
import struct
import sys
import warnings
import zipfile

import numpy as np
import pytest

from lstmrt.errors import (
    CorruptFileError,
    LoadError,
    ModelTooLargeError,
    UnexpectedContentError,
    UnsafeFileError,
    UnsupportedModelError,
)
from lstmrt.loaders import protobuf
from lstmrt.loaders.onnx_proto import OnnxModel, Unsupported, ValueInfo, parse_onnx, read_onnx

onnx = pytest.importorskip("onnx")
from onnx import AttributeProto, TensorProto, helper, numpy_helper  # noqa: E402

FLIPS = 2000


# -- a protobuf encoder, to write the encodings onnx's serializer never produces (unpacked fields, repeats) ---------
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def unpacked_varints(number: int, values) -> bytes:
    return b"".join(key(number, 0) + varint(v) for v in values)


def unpacked_fixed(number: int, fmt: str, values) -> bytes:
    wire = 5 if struct.calcsize(fmt) == 4 else 1
    return b"".join(key(number, wire) + struct.pack("<" + fmt, v) for v in values)


def packed_varints(number: int, values) -> bytes:
    return ld(number, b"".join(varint(v) for v in values))


# -- comparing with onnx's own parse ----------------------------------------------------------------------------------
def same_array(ours, theirs, what):
    if theirs.dtype.name == "bfloat16":  # ml_dtypes; lstmrt widens bfloat16 to float32, exactly
        theirs = theirs.astype(np.float32)
    assert isinstance(ours, np.ndarray), what
    assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), what
    assert ours.tobytes() == theirs.tobytes(), f"{what}: values differ"


def expected_attribute(attr):
    if attr.ref_attr_name:
        return Unsupported("ref_attr_name")
    value = helper.get_attribute_value(attr)
    kind = attr.type
    if kind == AttributeProto.STRING:
        return value.decode()
    if kind == AttributeProto.STRINGS:
        return tuple(v.decode() for v in value)
    if kind in (AttributeProto.FLOATS, AttributeProto.INTS):
        return tuple(value)
    if kind == AttributeProto.TENSOR:
        return numpy_helper.to_array(value)
    if kind in (AttributeProto.FLOAT, AttributeProto.INT):
        return value
    return Unsupported(AttributeProto.AttributeType.Name(kind))


def same_attribute(ours, theirs, what):
    if isinstance(theirs, np.ndarray):
        same_array(ours, theirs, what)
    elif isinstance(theirs, float):
        assert type(ours) is float and struct.pack("<d", ours) == struct.pack("<d", theirs), what
    else:
        assert type(ours) is type(theirs) and ours == theirs, what


def expected_value_info(info) -> ValueInfo:
    if info.type.WhichOneof("value") != "tensor_type":
        return ValueInfo(info.name, 0, None)
    tensor = info.type.tensor_type
    if not tensor.HasField("shape"):
        return ValueInfo(info.name, tensor.elem_type, None)
    dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in tensor.shape.dim)
    return ValueInfo(info.name, tensor.elem_type, dims)


def assert_agrees(data: bytes) -> OnnxModel:
    """lstmrt's decoding of `data` says what onnx's parse of it says."""
    return assert_same(parse_onnx(data, "model.onnx"), onnx.ModelProto.FromString(data))


def assert_same(model: OnnxModel, ref) -> OnnxModel:
    """lstmrt's decoding `model` says what onnx's `ref` (a ModelProto, its tensors' data loaded) says."""
    assert model.ir_version == ref.ir_version
    assert model.producer == ref.producer_name
    expected_opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in ref.opset_import}
    assert model.opsets == expected_opsets
    graph = model.graph
    assert graph.name == ref.graph.name
    assert len(graph.nodes) == len(ref.graph.node)
    for node, theirs in zip(graph.nodes, ref.graph.node):
        assert (node.op_type, node.name, node.inputs, node.outputs) == (
            theirs.op_type,
            theirs.name,
            tuple(theirs.input),
            tuple(theirs.output),
        )
        assert node.domain == ("" if theirs.domain == "ai.onnx" else theirs.domain)
        assert list(node.attrs) == [a.name for a in theirs.attribute]
        for attr in theirs.attribute:
            same_attribute(node.attrs[attr.name], expected_attribute(attr), f"{node.name}.{attr.name}")
    assert list(graph.initializers) == [t.name for t in ref.graph.initializer]
    for tensor in ref.graph.initializer:
        same_array(graph.initializers[tensor.name], numpy_helper.to_array(tensor), tensor.name)
    assert graph.inputs == tuple(expected_value_info(v) for v in ref.graph.input)
    assert graph.outputs == tuple(expected_value_info(v) for v in ref.graph.output)
    return model


def model_bytes(nodes=(), initializers=(), inputs=(), outputs=(), opsets=(("", 17),), **kwargs) -> bytes:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(
        graph, opset_imports=[helper.make_operatorsetid(d, v) for d, v in opsets], producer_name="tests", **kwargs
    )
    return model.SerializeToString()


def small_model() -> bytes:
    """A real model touching every decoded message: graph, nodes with attributes, initializers, value infos."""
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5, "W")
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [-1], raw=False)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["y"], name="matmul"),
        helper.make_node("Constant", [], ["axes"], name="const", value=axes),
        helper.make_node("ReduceMean", ["y", "axes"], ["z"], name="reduce", keepdims=0),
        helper.make_node("LeakyRelu", ["z"], ["out"], name="act", alpha=0.25),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch"])
    return model_bytes(nodes, [w], [x], [out])


# -- agreement with onnx ----------------------------------------------------------------------------------------------
SAMPLES = {
    np.float32: [0.0, -0.0, 1.5, -3.25e-38, 1e-45, np.inf, -np.inf, np.nan, 3.4e38],
    np.float16: [0.0, -0.0, 1.5, -2.0, 6e-8, 65504.0, np.inf, np.nan],
    np.float64: [0.0, -0.0, 1.5, -1e-320, 1.7e308, -np.inf, np.nan],
    np.int8: [-128, 127, 0, -1],
    np.uint8: [0, 255, 1],
    np.int16: [-32768, 32767, -1],
    np.uint16: [0, 65535, 7],
    np.int32: [-(2**31), 2**31 - 1, -1, 0],
    np.uint32: [0, 2**32 - 1, 2**31],
    np.int64: [-(2**63), 2**63 - 1, -1, 0],
    np.uint64: [0, 2**64 - 1, 2**63],
    np.bool_: [True, False, True, True],
}


@pytest.mark.parametrize("encoding", ["raw_data", "typed"])
@pytest.mark.parametrize("dtype", list(SAMPLES) + ["bfloat16"], ids=lambda d: getattr(d, "__name__", d))
def test_initializers_of_every_dtype(dtype, encoding):
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        values = np.array([0.0, -0.0, 1.5, -2.0, 3.1, 1e38, np.inf, np.nan], dtype=ml_dtypes.bfloat16)
    else:
        values = np.array(SAMPLES[dtype], dtype=dtype)
    code = helper.np_dtype_to_tensor_dtype(values.dtype)
    matrix = np.resize(values, (2, values.size))
    if encoding == "raw_data":
        tensors = [numpy_helper.from_array(matrix, "matrix"), numpy_helper.from_array(values[1], "scalar")]
    else:
        plain = matrix.astype(np.float32) if dtype == "bfloat16" else matrix
        tensors = [
            helper.make_tensor("matrix", code, matrix.shape, plain.flatten().tolist(), raw=False),
            helper.make_tensor("scalar", code, [], [plain.flat[1].item()], raw=False),
        ]
    assert all(t.HasField("raw_data") == (encoding == "raw_data") for t in tensors)
    model = assert_agrees(model_bytes(initializers=tensors))
    assert model.graph.initializers["scalar"].shape == ()
    expected = {np.bool_: np.bool_, "bfloat16": np.float32}.get(dtype, dtype)
    assert model.graph.initializers["matrix"].dtype == expected


def test_attributes_of_every_kind():
    sub = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "body", [], [])
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(2, np.float32), "v"), numpy_helper.from_array(np.array([0, 3]), "i"), [5]
    )
    type_proto = helper.make_tensor_type_proto(TensorProto.FLOAT, [2])
    attrs = dict(
        f=0.1,
        i=-1,
        big=-(2**63),
        s="héllo",
        t=numpy_helper.from_array(np.array([[1, -2]], np.int64), "t"),
        floats=[1.5, -0.0, 1e-40],
        ints=[-1, 0, 2**40, -(2**63)],
        strings=["a", "", "ü"],
        g=sub,
        graphs=[sub, sub],
        tensors=[numpy_helper.from_array(np.zeros(1, np.float32), "z")],
        sparse=sparse,
        sparses=[sparse],
        tp=type_proto,
        tps=[type_proto],
    )
    node = helper.make_node("Custom", ["x", "", "y"], ["out", ""], name="custom", domain="my.domain", **attrs)
    node.attribute.append(helper.make_attribute("empty", [], attr_type=AttributeProto.INTS))
    node.attribute.append(helper.make_attribute_ref("ref", AttributeProto.FLOAT, ref_attr_name="alpha"))
    model = assert_agrees(model_bytes([node], opsets=[("", 17), ("my.domain", 1)]))
    got = model.graph.nodes[0]
    assert got.inputs == ("x", "", "y") and got.outputs == ("out", "")
    assert got.attrs["i"] == -1 and got.attrs["big"] == -(2**63) and got.attrs["ints"][-1] == -(2**63)
    assert got.attrs["f"] == np.float32(0.1) and got.attrs["s"] == "héllo" and got.attrs["empty"] == ()
    assert got.attrs["g"] == Unsupported("GRAPH") and got.attrs["tps"] == Unsupported("TYPE_PROTOS")
    assert got.attrs["ref"] == Unsupported("ref_attr_name")


def test_attribute_types_inferred_when_absent():
    """Files from before AttributeProto.type: the one value field set says the type."""
    body = helper.make_graph([], "b", [], [])
    node = helper.make_node(
        "Custom", ["x"], ["y"], f=2.5, i=-7, s="s", ints=[-1, 3], floats=[0.5], strings=["a"], g=body
    )
    node.attribute.append(helper.make_attribute("t", numpy_helper.from_array(np.float32(4.0), "t")))
    expected = {a.name: expected_attribute(a) for a in node.attribute}
    for attr in node.attribute:
        attr.ClearField("type")
    got = parse_onnx(model_bytes([node]), "old.onnx").graph.nodes[0].attrs
    assert list(got) == list(expected)
    for name, value in expected.items():
        same_attribute(got[name], value, name)


def test_attribute_without_type_and_with_two_values_or_none():
    node = helper.make_node("Custom", ["x"], ["y"], i=1)
    node.attribute[0].ClearField("type")
    node.attribute[0].f = 2.0
    with pytest.raises(CorruptFileError, match=r"node 0 \(Custom\): attribute 'i' has no type and 2 values"):
        parse_onnx(model_bytes([node]), "m.onnx")
    node.attribute[0].ClearField("f")
    node.attribute[0].ClearField("i")
    with pytest.raises(CorruptFileError, match="attribute 'i' has no type and no value"):
        parse_onnx(model_bytes([node]), "m.onnx")


def test_unpacked_and_mixed_repeated_fields():
    """Protobuf parsers accept repeated scalars packed, unpacked, or both in one message: so does lstmrt."""
    floats = [1.5, -0.0, float("inf"), 3.0, -7.25, 0.5]
    tensor_f = (
        unpacked_varints(1, [2]) + packed_varints(1, [3]) + key(2, 0) + varint(TensorProto.FLOAT)
        + unpacked_fixed(4, "f", floats[:2]) + ld(4, struct.pack("<4f", *floats[2:])) + ld(8, b"F")
    )  # fmt: skip
    longs = [-1, 2**63 - 1, -(2**63), 0, 5, -300]
    tensor_i = (
        unpacked_varints(1, [6]) + key(2, 0) + varint(TensorProto.INT64)
        + unpacked_varints(7, longs[:3]) + packed_varints(7, longs[3:5]) + unpacked_varints(7, longs[5:]) + ld(8, b"I")
    )  # fmt: skip
    shorts = [-32768, 32767, -1]
    tensor_s = (
        packed_varints(1, [3]) + key(2, 0) + varint(TensorProto.INT16) + unpacked_varints(5, shorts) + ld(8, b"S")
    )  # fmt: skip
    doubles = [1e300, -2.5]
    tensor_d = unpacked_varints(1, [2]) + key(2, 0) + varint(11) + unpacked_fixed(10, "d", doubles) + ld(8, b"D")
    tensor_u = unpacked_varints(1, [2]) + key(2, 0) + varint(13) + unpacked_varints(11, [2**64 - 1, 1]) + ld(8, b"U")
    attribute = (
        ld(1, b"axes") + key(20, 0) + varint(AttributeProto.INTS)
        + unpacked_varints(8, [-1, 2]) + packed_varints(8, [-3])
    )  # fmt: skip
    attribute_f = ld(1, b"scales") + key(20, 0) + varint(AttributeProto.FLOATS) + unpacked_fixed(7, "f", [0.5, -1.0])
    node = ld(1, b"x") + ld(2, b"y") + ld(3, b"n") + ld(4, b"Custom") + ld(5, attribute) + ld(5, attribute_f)
    graph = ld(1, node) + b"".join(ld(5, t) for t in (tensor_f, tensor_i, tensor_s, tensor_d, tensor_u))
    data = key(1, 0) + varint(9) + ld(7, graph) + ld(8, ld(1, b"") + key(2, 0) + varint(17))
    model = assert_agrees(data)
    inits = model.graph.initializers
    assert inits["F"].shape == (2, 3) and inits["F"].tobytes() == np.array(floats, np.float32).tobytes()
    assert inits["I"].tolist() == longs and inits["S"].tolist() == shorts and inits["U"].tolist() == [2**64 - 1, 1]
    assert model.graph.nodes[0].attrs == {"axes": (-1, 2, -3), "scales": (0.5, -1.0)}


def test_repeated_singular_fields_merge_and_wrong_wire_types_are_skipped():
    """A message field given twice is merged (a graph in two parts), a scalar given twice keeps its last value,
    and a known field in a wire type its declaration does not allow is an unknown field, as in protobuf."""
    first = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="a")], "first", [], [])
    second = helper.make_graph(
        [helper.make_node("Neg", ["y"], ["z"], name="b")],
        "second",
        [],
        [],
        [numpy_helper.from_array(np.ones(3, np.float16), "w")],
    )
    data = (
        key(1, 0) + varint(3) + ld(1, b"oops") + key(1, 0) + varint(8)
        + ld(7, first.SerializeToString()) + key(2, 5) + b"\0\0\0\0" + ld(7, second.SerializeToString())
    )  # fmt: skip
    model = assert_agrees(data)
    assert model.ir_version == 8 and model.graph.name == "second"
    assert [n.op_type for n in model.graph.nodes] == ["Relu", "Neg"]


def test_value_info_shapes_and_types():
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, None]),
        helper.make_tensor_value_info("scalar", TensorProto.INT64, []),
        helper.make_tensor_value_info("unranked", TensorProto.FLOAT16, None),
        helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [2]),
        helper.make_value_info("untyped", onnx.TypeProto()),
    ]
    model = assert_agrees(model_bytes(inputs=inputs, outputs=inputs[:1]))
    assert model.graph.inputs == (
        ValueInfo("x", TensorProto.FLOAT, ("batch", 3, None)),
        ValueInfo("scalar", TensorProto.INT64, ()),
        ValueInfo("unranked", TensorProto.FLOAT16, None),
        ValueInfo("seq", 0, None),
        ValueInfo("untyped", 0, None),
    )


def test_opsets_and_model_fields():
    data = model_bytes(opsets=[("ai.onnx", 20), ("com.microsoft", 1), ("ai.onnx.ml", 3)], ir_version=7)
    model = assert_agrees(data)
    assert model.opsets == {"": 20, "com.microsoft": 1, "ai.onnx.ml": 3}
    assert (model.ir_version, model.producer) == (7, "tests")
    with pytest.raises(CorruptFileError, match="opset_import names domain '' twice"):
        parse_onnx(model_bytes(opsets=[("", 17), ("ai.onnx", 17)]), "m.onnx")


def test_torch_export(tmp_path):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(5, 2)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Net().eval(), (torch.randn(1, 4, 3),), str(path), dynamo=False, input_names=["x"],
            dynamic_axes={"x": {0: "batch", 1: "time"}},
        )  # fmt: skip
    assert_agrees(path.read_bytes())
    model = read_onnx(path)
    lstms = [n for n in model.graph.nodes if n.op_type == "LSTM"]
    assert len(lstms) == 2 and all(n.attrs["hidden_size"] == 5 for n in lstms)
    weights = model.graph.initializers[lstms[0].inputs[1]]
    assert weights.shape == (1, 20, 3) and weights.dtype == np.float32
    assert model.graph.inputs[0] == ValueInfo("x", TensorProto.FLOAT, ("batch", "time", 3))


# -- external data ---------------------------------------------------------------------------------------------------
_AUDIT = {"hooked": False, "paths": None}  # the real paths opened while a test records them (see `opened`)


def _audit(event, args):
    if _AUDIT["paths"] is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _AUDIT["paths"].append(os.path.realpath(os.fsdecode(args[0])))


@pytest.fixture
def opened(tmp_path):
    """A function giving the real paths of the files under tmp_path opened so far in the test, from the audit
    event "open" that every open() and os.open() raises: it sees a file opened through a symlink as what it is.
    The hook is installed once: audit hooks cannot be removed, and this one records only inside the fixture."""
    if not _AUDIT["hooked"]:
        sys.addaudithook(_audit)
        _AUDIT["hooked"] = True
    _AUDIT["paths"] = paths = []
    root = os.path.realpath(tmp_path)
    yield lambda: [p for p in paths if p.startswith(root + os.sep)]
    _AUDIT["paths"] = None


EXTERNAL_TENSORS = {  # sizes around the thresholds below; "empty": 0 bytes at the end of its file
    "W": np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5,
    "big": np.linspace(-1, 1, 300, dtype=np.float32),
    "half": np.arange(35, dtype=np.float16).reshape(5, 7) / 8,
    "ids": np.arange(-4, 5, dtype=np.int64),
    "mask": np.arange(11) % 3 == 0,
    "empty": np.zeros((0, 3), np.float32),
    "tiny": np.float32(2.5),
}


def external_model(directory, **options):
    """A real model with initializers and a Constant node, saved in `directory` by onnx.save with
    save_as_external_data=True and `options`."""
    value = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(4, 10), "const_value")
    nodes = [helper.make_node("Constant", [], ["c"], name="const", value=value)]
    data = model_bytes(nodes, [numpy_helper.from_array(v, k) for k, v in EXTERNAL_TENSORS.items()])
    directory.mkdir(exist_ok=True)
    path = directory / "model.onnx"
    onnx.save(onnx.ModelProto.FromString(data), str(path), save_as_external_data=True, **options)
    return path


def all_tensors(model):
    node_tensors = [a.t for n in model.graph.node for a in n.attribute if a.type == AttributeProto.TENSOR]
    return [*model.graph.initializer, *node_tensors]


def external_locations(path) -> dict:
    """tensor name -> location, of the tensors of the model at `path` that keep their data in an external file."""
    model = onnx.load(str(path), load_external_data=False)
    return {
        t.name: {e.key: e.value for e in t.external_data}["location"]
        for t in all_tensors(model)
        if t.data_location == TensorProto.EXTERNAL
    }


@pytest.mark.parametrize(
    "options",
    [
        dict(all_tensors_to_one_file=True, location="weights.bin", size_threshold=0),
        dict(all_tensors_to_one_file=True, location="weights.bin", size_threshold=100, convert_attribute=True),
        dict(all_tensors_to_one_file=False, size_threshold=0, convert_attribute=True),
    ],
    ids=["one-file", "one-file-size_threshold-100-attributes", "file-per-tensor-attributes"],
)
def test_external_data_reads_as_onnx_reads_it(tmp_path, opened, options):
    path = external_model(tmp_path / "model", **options)
    locations = external_locations(path)
    inline = {*EXTERNAL_TENSORS, "const_value"} - set(locations)
    if options["size_threshold"] == 0:
        assert inline == ({"const_value"} if not options.get("convert_attribute") else set())
    else:  # onnx compares sys.getsizeof(raw_data), 33 bytes over the data, with the threshold
        assert inline == {"W", "mask", "empty", "tiny"}
    before = len(opened())
    model = read_onnx(path)
    files = [os.path.realpath(path), *{os.path.realpath(path.parent / loc) for loc in locations.values()}]
    assert sorted(opened()[before:]) == sorted(files)  # the model and each data file, once
    assert_same(model, onnx.load(str(path)))
    external = model.graph.initializers["big"]
    assert not external.flags.writeable and external.tobytes() == EXTERNAL_TENSORS["big"].tobytes()
    with pytest.raises(UnsupportedModelError, match=r"^m.onnx: tensor '\w+' keeps its data in an external file "
                       r"\('[^']+'\); reading it needs the model's directory"):  # fmt: skip
        parse_onnx(path.read_bytes(), "m.onnx")


def one_file_model(directory):
    """external_model in `directory`, every tensor's data in weights.bin."""
    return external_model(directory, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)


def edit_big(path, edit: dict):
    """The model at `path` rewritten with the external_data entries of tensor 'big' changed by `edit` (key -> value;
    None removes the key): the file a hostile or broken exporter would write."""
    model = onnx.load(str(path), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.name == "big")
    entries = {e.key: e.value for e in tensor.external_data}
    entries.update(edit)
    del tensor.external_data[:]
    for k, v in entries.items():
        if v is not None:
            tensor.external_data.add(key=k, value=v)
    path.write_bytes(model.SerializeToString())  # not onnx.save: it would append the data to weights.bin again
    return path


ESCAPES = {  # id -> location of tensor 'big', from (model directory, the file outside it)
    "parent": lambda d, outside: "../outside.bin",
    "parent-from-a-subdirectory": lambda d, outside: "sub/../../outside.bin",
    "parent-with-backslashes": lambda d, outside: "..\\outside.bin",
    "absolute": lambda d, outside: str(outside),
    "drive-letter": lambda d, outside: "C:/outside.bin",
    "symlink-to-a-file": lambda d, outside: (d / "link.bin").symlink_to(outside) or "link.bin",
    "symlink-to-a-directory": lambda d, outside: (d / "up").symlink_to(outside.parent) or "up/outside.bin",
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_external_data_outside_the_model_directory_is_refused_unopened(tmp_path, opened, name):
    path = one_file_model(tmp_path / "model")
    outside = tmp_path / "outside.bin"  # the very bytes of weights.bin: read, it would load without error
    outside.write_bytes((path.parent / "weights.bin").read_bytes())
    (path.parent / "sub").mkdir()
    location = ESCAPES[name](path.parent, outside)
    edit_big(path, {"location": location})
    before = len(opened())
    with pytest.raises(UnsafeFileError) as caught:
        read_onnx(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: tensor 'big' keeps its data in {location!r}, "), message
    assert "only from the model's directory" in message
    inside = os.path.realpath(path.parent) + os.sep
    files = opened()[before:]
    assert os.path.realpath(path) in files and all(f.startswith(inside) for f in files), files


def test_external_data_through_a_symlink_inside_the_directory(tmp_path):
    path = one_file_model(tmp_path / "model")
    (path.parent / "sub").mkdir()
    (path.parent / "sub" / "link.bin").symlink_to(path.parent / "weights.bin")
    edit_big(path, {"location": "sub/./link.bin"})
    assert read_onnx(path).graph.initializers["big"].tobytes() == EXTERNAL_TENSORS["big"].tobytes()


DAMAGE = {  # id -> (edit of tensor 'big''s external_data, the message's pattern); 'big' is not the last in the file
    "offset-past-the-end": ({"offset": "100000"}, r"external data offset 100,000 is past the end of 'weights.bin' "
                            r"\([0-9,]+ bytes\)"),
    "length-past-the-end": ({"length": "100000"}, r"external data of 100,000 bytes at offset [0-9,]+ runs past the "
                            r"end of 'weights.bin' \([0-9,]+ bytes\)"),
    "length-short": ({"length": "1196"}, r"of dims \(300,\) needs 1,200 bytes, its external data \('weights.bin', "
                     r"offset [0-9,]+\) holds 1,196"),
    "no-length-and-more-data-after": ({"length": None}, r"needs 1,200 bytes, its external data .* holds"),
    "negative-offset": ({"offset": "-4"}, r"external data offset '-4' is not a non-negative integer"),
    "length-not-a-number": ({"length": "1.2e3"}, r"length '1.2e3' is not a non-negative integer"),
    "offset-of-30-digits": ({"offset": "9" * 30}, r"offset '9{30}' is not a non-negative integer"),
    "offset-of-5000-zeros-then-100000": ({"offset": "0" * 5000 + "100000"}, r"offset 100,000 is past the end"),
    "missing-file": ({"location": "gone.bin"}, r"external data file 'gone.bin' is missing from "),
    "no-location": ({"location": None}, r"keeps its data in an external file but names no location"),
    "location-a-directory": ({"location": "sub"}, r"external data location 'sub' is not a regular file"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(DAMAGE))
def test_external_data_damaged(tmp_path, name):
    edit, pattern = DAMAGE[name]
    path = one_file_model(tmp_path / "model")
    (path.parent / "sub").mkdir()
    edit_big(path, edit)
    with pytest.raises(CorruptFileError, match="^" + re.escape(f"{path}: tensor 'big'") + r"[: ].*" + pattern) as e:
        read_onnx(path)
    assert not isinstance(e.value, UnexpectedContentError)


def test_external_data_offset_and_length_defaults(tmp_path):
    """offset defaults to 0 and length to the end of the file: a file holding the tensor alone."""
    path = one_file_model(tmp_path / "model")
    (path.parent / "big.bin").write_bytes(EXTERNAL_TENSORS["big"].tobytes())
    edit_big(path, {"location": "big.bin", "offset": None, "length": None, "checksum": "ignored"})
    assert read_onnx(path).graph.initializers["big"].tobytes() == EXTERNAL_TENSORS["big"].tobytes()


def test_external_data_entries_without_data_location_external_are_ignored():
    """data_location alone says where the data is (as in onnx and ONNX Runtime): here, raw_data."""
    tensor = numpy_helper.from_array(np.ones(3, np.float32), "w")
    tensor.external_data.add(key="location", value="../../etc/passwd")
    model = parse_onnx(model_bytes(initializers=[tensor]), "m.onnx")
    assert model.graph.initializers["w"].tolist() == [1.0, 1.0, 1.0]


def test_external_data_past_the_load_limit(tmp_path, monkeypatch):
    path = one_file_model(tmp_path / "model")
    monkeypatch.setenv("LSTMRT_MAX_LOAD_BYTES", "1000")
    with pytest.raises(ModelTooLargeError, match=r"tensor 'big' of dims \(300,\) brings the tensors to"):
        read_onnx(path)


# -- what lstmrt refuses ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tensor, kind",
    [
        (lambda: helper.make_tensor("names", TensorProto.STRING, [2], [b"a", b"b"]), "STRING"),
        (lambda: numpy_helper.from_array(np.ones(2, np.complex64), "names"), "COMPLEX64"),
        (lambda: helper.make_tensor("names", TensorProto.FLOAT8E4M3FN, [2], [1.0, 2.0]), "FLOAT8E4M3FN"),
    ],
    ids=["string", "complex64", "float8"],
)
def test_unsupported_dtypes_are_refused_naming_the_tensor(tensor, kind):
    with pytest.raises(UnsupportedModelError, match=rf"m.onnx: tensor 'names' has data type {kind}; lstmrt reads"):
        parse_onnx(model_bytes(initializers=[tensor()]), "m.onnx")


def test_segments_and_sparse_initializers_are_refused():
    tensor = numpy_helper.from_array(np.ones(2, np.float32), "part")
    tensor.segment.begin, tensor.segment.end = 0, 2
    with pytest.raises(UnsupportedModelError, match="tensor 'part' is one segment"):
        parse_onnx(model_bytes(initializers=[tensor]), "m.onnx")
    model = onnx.ModelProto.FromString(model_bytes())
    model.graph.sparse_initializer.append(
        helper.make_sparse_tensor(numpy_helper.from_array(np.ones(1, np.float32), "v"),
                                  numpy_helper.from_array(np.array([1]), "i"), [3])
    )  # fmt: skip
    with pytest.raises(UnsupportedModelError, match="sparse initializers"):
        parse_onnx(model.SerializeToString(), "m.onnx")


def test_dims_larger_than_the_data():
    raw = numpy_helper.from_array(np.zeros(4, np.float32), "huge")
    raw.dims[:] = [10**6, 10**6]
    with pytest.raises(CorruptFileError, match=r"tensor 'huge' of dims \(1000000, 1000000\) needs "
                       r"4,000,000,000,000 bytes, its raw_data holds 16"):  # fmt: skip
        parse_onnx(model_bytes(initializers=[raw]), "m.onnx")
    typed = helper.make_tensor("huge", TensorProto.INT64, [3], [1, 2, 3], raw=False)
    typed.dims[:] = [10**12]
    with pytest.raises(CorruptFileError, match="needs 1,000,000,000,000 values, it holds 3"):
        parse_onnx(model_bytes(initializers=[typed]), "m.onnx")
    empty = numpy_helper.from_array(np.zeros(0, np.float32), "empty")
    empty.dims[:] = [0, 2**62, 2**62]
    with pytest.raises(CorruptFileError, match="too large for any array"):
        parse_onnx(model_bytes(initializers=[empty]), "m.onnx")
    negative = helper.make_tensor("neg", TensorProto.FLOAT, [2], [1.0, 2.0])
    negative.dims[:] = [-2]
    with pytest.raises(CorruptFileError, match=r"tensor 'neg' has negative dims \(-2,\)"):
        parse_onnx(model_bytes(initializers=[negative]), "m.onnx")


def test_tensors_past_the_load_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMRT_MAX_LOAD_BYTES", "8192")
    small = numpy_helper.from_array(np.ones(1500, np.float32), "small")
    large = numpy_helper.from_array(np.ones((2, 600), np.float16), "large")  # counted as float32: 4,800 bytes
    parse_onnx(model_bytes(initializers=[small]), "m.onnx")
    with pytest.raises(ModelTooLargeError, match=r"m.onnx: tensor 'large' of dims \(2, 600\) brings the tensors to "
                       r".*over the load limit of 8.0 KiB \(set by LSTMRT_MAX_LOAD_BYTES\)"):  # fmt: skip
        parse_onnx(model_bytes(initializers=[small, large]), "m.onnx")
    attribute = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(3000, np.float32)))
    with pytest.raises(
        ModelTooLargeError, match=r"m.onnx: node 0 \(Constant\): attribute 'value': tensor of dims \(3000,\) brings"
    ):
        parse_onnx(model_bytes([attribute]), "m.onnx")
    path = tmp_path / "big.onnx"
    path.write_bytes(model_bytes(initializers=[numpy_helper.from_array(np.ones(3000, np.float32), "w")]))
    with pytest.raises(ModelTooLargeError, match="the file brings"):
        read_onnx(path)


def test_names_given_twice():
    tensors = [numpy_helper.from_array(np.ones(1, np.float32), "w")] * 2
    with pytest.raises(CorruptFileError, match="m.onnx: two initializers are named 'w'"):
        parse_onnx(model_bytes(initializers=tensors), "m.onnx")
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    node.attribute.extend([helper.make_attribute("alpha", 1.0), helper.make_attribute("alpha", 2.0)])
    with pytest.raises(CorruptFileError, match=r"m.onnx: node 'relu' \(Relu\): attribute 'alpha' is given twice"):
        parse_onnx(model_bytes([node]), "m.onnx")
    unnamed = numpy_helper.from_array(np.ones(1, np.float32), "")
    with pytest.raises(CorruptFileError, match="an initializer has no name"):
        parse_onnx(model_bytes(initializers=[unnamed]), "m.onnx")


def test_invalid_utf8():
    data = model_bytes([helper.make_node("Relu", ["x"], ["y"], name="relu_node")])
    bad = data.replace(b"relu_node", b"relu\xffnode")
    assert len(bad) == len(data)
    with pytest.raises(CorruptFileError, match=r"m.onnx: node 0: name: invalid UTF-8 at byte 4"):
        parse_onnx(bad, "m.onnx")


def test_what_is_not_onnx(rng):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.pkl", b"\x80\x02}q\x00.")
    candidates = {
        "empty": b"",
        "no graph": onnx.ModelProto(ir_version=8).SerializeToString(),
        "zip": buf.getvalue(),
        "text": b"hello, world\n" * 10,
        "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    }
    for name, data in candidates.items():
        with pytest.raises(CorruptFileError, match="^x.onnx: ") as info:
            parse_onnx(data, "x.onnx")
        assert not isinstance(info.value, UnexpectedContentError), name
    with pytest.raises(CorruptFileError, match="x.onnx: no graph: not an ONNX model"):
        parse_onnx(candidates["no graph"], "x.onnx")


# -- damaged files ----------------------------------------------------------------------------------------------------
def test_truncation_at_every_byte():
    data = small_model()
    assert_agrees(data)
    for end in range(len(data)):
        try:
            parse_onnx(data[:end], "cut.onnx")
        except CorruptFileError as exc:
            assert not isinstance(exc, UnexpectedContentError), f"cut at {end}: {exc}"
            assert str(exc).startswith("cut.onnx: ")


def test_flipped_bytes(rng):
    data = small_model()
    for i in range(FLIPS):
        bad = bytearray(data)
        for pos in rng.integers(0, len(data), 1 + i % 3):
            bad[pos] = int(rng.integers(0, 256))
        try:
            model = parse_onnx(bytes(bad), "flip.onnx")
        except LoadError as exc:
            assert not isinstance(exc, UnexpectedContentError), f"mutation {i}: {exc}"
            assert str(exc).startswith("flip.onnx: ")
        else:
            assert isinstance(model, OnnxModel)


# -- the wire format --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, message",
    [
        (key(1, 0) + b"\xff" * 10 + b"\x01", "varint at byte 1 runs over 10 bytes"),
        (key(1, 0) + b"\xff\xff", "varint at byte 1 runs past the end"),
        (b"\x80", "varint at byte 0 runs past the end"),
        (key(1, 2) + varint(5) + b"abc", "field 1 declares 5 bytes at byte 2, past the end of its 5-byte message"),
        (key(1, 2) + varint(2**63) + b"abc", "declares 9,223,372,036,854,775,808 bytes"),
        (key(3, 5) + b"\0\0", "field 3 at byte 1 is cut off"),
        (key(3, 1) + b"\0" * 7, "field 3 at byte 1 is cut off"),
        (key(2, 3), r"wire type 3 \(start group\)"),
        (key(2, 4), r"wire type 4 \(end group\)"),
        (key(2, 6), r"wire type 6 \(undefined\)"),
        (key(2, 7), r"wire type 7 \(undefined\)"),
        (key(0, 0) + b"\0", "field number 0"),
        (varint(2**29 << 3), "field number 536870912"),
    ],
    ids=range(13),
)
def test_malformed_wire_format(data, message):
    with pytest.raises(CorruptFileError, match=f"^msg: .*{message}"):
        list(protobuf.fields(data, "msg"))


def test_fields_and_scalar_views():
    data = (
        key(1, 0) + varint(-1) + key(2, 5) + struct.pack("<f", -1.5) + key(3, 1) + struct.pack("<d", 0.1)
        + ld(4, b"xyz") + key(536870911, 0) + varint(2**70 + 3)
    )  # fmt: skip
    got = list(protobuf.fields(data, "msg"))
    assert [(n, w) for n, w, _ in got] == [(1, 0), (2, 5), (3, 1), (4, 2), (536870911, 0)]
    assert protobuf.as_int64(got[0][2]) == -1 and protobuf.as_int32(got[0][2]) == -1
    assert protobuf.as_float32(got[1][2]) == -1.5 and protobuf.as_float64(got[2][2]) == 0.1
    assert bytes(got[3][2]) == b"xyz" and got[4][2] == 3  # past 64 bits: the low 64 kept, as protobuf does


def test_packed_varints_match_a_plain_decoder(rng):
    shifts = rng.integers(0, 65, 70_000)  # over one NumPy pass (65,536 varints): the chunked path
    values = [int.from_bytes(rng.bytes(8), "little") >> int(s) for s in shifts]  # 1 to 10 bytes each
    values[:4] = [0, 2**64 - 1, 2**63, 127]
    data = b"".join(varint(v) for v in values)
    assert protobuf.packed_varints(data, "run").tolist() == values
    assert protobuf.count_varints(data) == len(values)
    assert protobuf.packed_varints(bytes([1, 2, 3]), "run").tolist() == [1, 2, 3]
    assert protobuf.packed_varints(b"", "run").tolist() == []
    with pytest.raises(CorruptFileError, match="run: the last varint of a packed run is cut off"):
        protobuf.packed_varints(data[:-1] + b"\x80", "run")
    with pytest.raises(CorruptFileError, match="run: a varint in a packed run runs over 10 bytes"):
        protobuf.packed_varints(b"\x01" + b"\xff" * 10 + b"\x01", "run")


def test_packed_fixed_width_runs():
    floats = protobuf.packed_floats(struct.pack("<3f", 1.0, -2.5, math.inf), "run")
    assert floats.dtype == np.float32 and floats.tolist() == [1.0, -2.5, math.inf]
    assert protobuf.packed_doubles(struct.pack("<d", 0.1), "run").tolist() == [0.1]
    with pytest.raises(CorruptFileError, match="run: a packed run of 6 bytes is not whole 4-byte values"):
        protobuf.packed_floats(b"\0" * 6, "run")
