"""ONNX ops that reduce over an axis: pooling over time (ReduceMean / ReduceMax, a GlobalPooling layer) and norms over
the features (LayerNormalization / RMSNormalization, a LayerNorm layer). torch modules exported by the TorchScript-based
exporter (the default exporter's: tests/test_load_onnx.py) and graphs built with onnx.helper, each compared with ONNX
Runtime running the file; and what must be refused."""

import warnings

import numpy as np
import pytest
from conftest import assert_close
from onnx_build import TensorProto, assert_refused, compare_time_first, helper, recurrent_weights, save, value
from torch_forms import Pooled

import lstmrt

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
nn = torch.nn

F_IN, H, T, B = 3, 5, 7, 3


def _export(module, path):
    """The module exported at (B, T) with dynamic batch and time by the TorchScript-based exporter (the default
    exporter's files of these modules: tests/test_load_onnx.py, whose fixture orders torch 2.13's exports)."""
    example = (torch.randn(B, T, F_IN),)
    with warnings.catch_warnings():  # the exporter's deprecation and tracer warnings
        warnings.simplefilter("ignore")
        axes = {"X": {0: "batch", 1: "time"}}
        torch.onnx.export(module.eval(), example, str(path), dynamo=False, input_names=["X"], dynamic_axes=axes)
    return path


def _ort(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


@pytest.mark.parametrize("norm", [False, True], ids=["", "LayerNorm"])
@pytest.mark.parametrize("reduce", ["mean", "max", "amax", "mean-keepdim", "none"])
def test_torch_pooling_and_layer_norm_match_onnxruntime(tmp_path, rng, reduce, norm):
    torch.manual_seed(0)
    module = Pooled(F_IN, H, reduce, norm)
    path = _export(module, tmp_path / "m.onnx")
    model = lstmrt.load(path)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert ("LayerNorm" in kinds) is norm
    assert ("GlobalPooling" in kinds) is (reduce != "none")
    X = rng.standard_normal((B, T, F_IN)).astype(np.float32)
    want = _ort(path, X)
    assert_close(model.predict(X), want)
    X = rng.standard_normal((B + 1, T + 3, F_IN)).astype(np.float32)  # other sizes than exported: against torch
    with torch.no_grad():
        want = module(torch.from_numpy(X)).numpy()
    assert_close(model.predict(X), want)
    if reduce != "none":  # a stream's output is the pool of its sequence so far
        s = model.stream()
        got = np.stack([s.step(x).copy() for x in X[0]])
        with torch.no_grad():
            prefixes = [module(torch.from_numpy(X[:1, : t + 1])).numpy().reshape(2) for t in range(T + 3)]
        assert_close(got, np.stack(prefixes))


# -- graphs built with onnx.helper --------------------------------------------------------------------------------
def _graph(path, rng, nodes, consts, *, lengths=False, rank=3, opset=18, features=H):
    """X (T, B, F) -> an LSTM node "rnn" -> Y squeezed to "seq" (T, B, H) -> nodes -> "out"."""
    consts = {**recurrent_weights(rng, "LSTM", F_IN, H), "dir": np.array([1], np.int64), **consts}
    inputs = ["X", "W", "R", "B"] + (["sequence_lens"] if lengths else [])
    head = [
        helper.make_node("LSTM", inputs, ["Y"], name="rnn", hidden_size=H),
        helper.make_node("Squeeze", ["Y", "dir"], ["seq"], name="squeeze"),
    ]
    graph_inputs = [value("X", ["T", "B", F_IN])]
    graph_inputs += [value("sequence_lens", ["B"], TensorProto.INT32)] if lengths else []
    return save(path, head + nodes, graph_inputs, [value("out", rank)], consts, opset=opset)


def _reduce(op, axes, keepdims=0, opset=18):
    """ReduceX of "seq" over `axes` to "out": axes an input from opset 18, an attribute before."""
    if opset >= 18:
        return [helper.make_node(op, ["seq", "axes"], ["out"], name="reduce", keepdims=keepdims)], {
            "axes": np.array(axes, np.int64)
        }
    return [helper.make_node(op, ["seq"], ["out"], name="reduce", keepdims=keepdims, axes=axes)], {}


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
def test_reduce_over_time_is_global_pooling(tmp_path, rng, op, opset):
    nodes, consts = _reduce(op, [0], opset=opset)
    model = compare_time_first(
        _graph(tmp_path / "m.onnx", rng, nodes, consts, rank=2, opset=opset),
        rng.standard_normal((B, T, F_IN)).astype(np.float32),
    )
    assert model.layers[-1].mode == {"ReduceMean": "average", "ReduceMax": "max"}[op]
    assert not model.return_sequences


def _norm(op, epsilon, shift=True):
    scale = np.array([0.5, -1.0, 2.0, 0.0, 1.5], np.float32)  # all different: a reversed or ignored scale shows
    consts = {"scale": scale, **({"shift": np.array([0.1, -0.2, 0.3, 0.0, 1.0], np.float32)} if shift else {})}
    inputs = ["seq", "scale"] + (["shift"] if shift else [])
    return [helper.make_node(op, inputs, ["out"], name="norm", axis=-1, epsilon=epsilon)], consts


@pytest.mark.parametrize(
    "op, opset, shift, mode",
    [
        ("LayerNormalization", 17, True, "layer"),
        ("LayerNormalization", 17, False, "layer"),
        ("RMSNormalization", 23, False, "rms"),
    ],
)
def test_norm_over_the_features_is_a_layer_norm(tmp_path, rng, op, opset, shift, mode):
    nodes, consts = _norm(op, 0.01, shift)
    model = compare_time_first(
        _graph(tmp_path / "m.onnx", rng, nodes, consts, opset=opset),
        rng.standard_normal((B, T, F_IN)).astype(np.float32),
    )
    norm = model.layers[-1]
    assert (type(norm).__name__, norm.mode, norm.epsilon) == ("LayerNorm", mode, pytest.approx(0.01))


REFUSED = {  # id -> (nodes and constants, output rank, options, what the message names)
    "mean-over-batch": (_reduce("ReduceMean", [1]), 2, {}, ("node reduce (ReduceMean)", "reduces over batch")),
    "mean-over-features": (
        _reduce("ReduceMean", [-1]),
        2,
        {},
        ("reduces over the features", "LayerNormalization"),
    ),
    "max-over-time-and-features": (_reduce("ReduceMax", [0, 2]), 1, {}, ("reduces over time and the features",)),
    "mean-over-every-axis": (
        ([helper.make_node("ReduceMean", ["seq"], ["out"], name="reduce", keepdims=0)], {}),
        0,
        {},
        ("reduces over every axis",),
    ),
    "mean-with-sequence-lens": (
        _reduce("ReduceMean", [0]),
        2,
        {"lengths": True},
        ("node reduce (ReduceMean)", "sequence_lens"),
    ),
    "batch-norm-of-axis-1-batch": (  # "seq" is (T, B, H): axis 1 is the batch, as torch's on (T, B, F)
        (
            [helper.make_node("BatchNormalization", ["seq", "s", "b", "m", "v"], ["out"], name="bn")],
            {k: np.ones(B, np.float32) for k in "sbmv"},
        ),
        3,
        {},
        ("node bn (BatchNormalization)", "normalises axis 1 (batch)"),
    ),
    "layer-norm-over-time-and-features": (
        ([helper.make_node("LayerNormalization", ["seq", "scale"], ["out"], name="norm", axis=0)], {}),
        3,
        {"opset": 17, "scale_shape": (T, B, H)},
        ("node norm (LayerNormalization)", "normalises over time"),
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_naming_the_node(tmp_path, rng, name):
    (nodes, consts), rank, options, fragments = REFUSED[name]
    options = dict(options)
    if "scale_shape" in options:
        consts = {"scale": np.ones(options.pop("scale_shape"), np.float32)}
    path = _graph(tmp_path / "m.onnx", rng, nodes, consts, rank=rank, **options)
    assert_refused(path, *fragments)


def test_norm_of_each_direction_is_refused(tmp_path, rng):
    """LayerNormalization over the last axis of a bidirectional Y (T, 2, B, H) normalises each direction's H
    features apart; lstmrt's LayerNorm after a bidirectional layer normalises the 2H together."""
    consts = {**recurrent_weights(rng, "LSTM", F_IN, H, directions=2), "scale": np.ones(H, np.float32)}
    nodes = [
        helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="rnn", hidden_size=H, direction="bidirectional"),
        helper.make_node("LayerNormalization", ["Y", "scale"], ["out"], name="norm"),
    ]
    path = save(tmp_path / "m.onnx", nodes, [value("X", ["T", "B", F_IN])], [value("out", 4)], consts, opset=17)
    assert_refused(path, "node norm (LayerNormalization)", "each direction")
