"""ONNX graphs built with onnx.helper for the loader tests: value types, a checked save, a recurrent node's weights."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def value(name, shape, elem=TensorProto.FLOAT):
    """A value's type; shape: dimensions, or the rank of a shape left unknown."""
    return helper.make_tensor_value_info(name, elem, [None] * shape if isinstance(shape, int) else shape)


def save(path, nodes, inputs, outputs, inits, *, opset=14, ir_version=8, **save_options):
    """Save a graph with onnx.save, checked first by onnx.checker. inits: name -> array."""
    tensors = [numpy_helper.from_array(v, name) for name, v in inits.items()]
    graph = helper.make_graph(nodes, "g", inputs, outputs, tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path), **save_options)
    return path


def recurrent_weights(rng, op, inputs, hidden, directions=1, peephole=False):
    """W, R, B (and P) of an ONNX LSTM/GRU/RNN node, random, by slot name."""
    gates = GATES[op]
    shapes = {
        "W": (gates * hidden, inputs),
        "R": (gates * hidden, hidden),
        "B": (2 * gates * hidden,),
        **({"P": (3 * hidden,)} if peephole else {}),
    }
    return {
        name: (0.5 * rng.standard_normal((directions, *shape))).astype(np.float32) for name, shape in shapes.items()
    }


def compare_time_first(path, X, lengths=None):
    """lstmrt.load(path).predict(X, lengths) against ONNX Runtime running the file fed X (B, T, F) time-first as "X"
    (and lengths as "sequence_lens"); its output (T, B, O) or (B, O). Returns the loaded model."""
    import lstmrt
    from conftest import assert_close

    ort = pytest.importorskip("onnxruntime")
    feeds = {"X": np.ascontiguousarray(X.transpose(1, 0, 2))}
    if lengths is not None:
        feeds["sequence_lens"] = lengths
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    model = lstmrt.load(path)
    assert_close(model.predict(X, lengths=lengths), want if want.ndim == 2 else want.transpose(1, 0, 2))
    return model


def assert_refused(path, *fragments):
    """lstmrt.load(path) raises UnsupportedModelError, whose message starts with the path and holds each fragment."""
    import lstmrt

    with pytest.raises(lstmrt.UnsupportedModelError) as caught:
        lstmrt.load(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message
