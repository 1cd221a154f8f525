"""ONNX ops that reduce over an axis: pooling over time (ReduceMean / ReduceMax, a GlobalPooling layer) and norms over
the features (LayerNormalization / RMSNormalization, a LayerNorm layer). torch modules exported with both exporters
and graphs built with onnx.helper, each compared with ONNX Runtime running the file; and what must be refused."""

import warnings

import numpy as np
import pytest
from conftest import assert_close
from onnx_build import TensorProto, helper, recurrent_weights, save, value

import lstmrt

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
nn = torch.nn

F_IN, H, T, B = 3, 5, 7, 3


class Pooled(nn.Module):
    """LSTM, an optional nn.LayerNorm, a reduction over time (or none), a Linear."""

    def __init__(self, reduce, norm=False):
        super().__init__()
        self.lstm = nn.LSTM(F_IN, H, batch_first=True)
        self.norm = nn.LayerNorm(H, eps=1e-3) if norm else nn.Identity()
        self.fc = nn.Linear(H, 2)
        self.reduce = reduce

    def forward(self, x):
        out, _ = self.lstm(x)
        out = self.norm(out)
        if self.reduce == "mean":
            out = out.mean(1)
        elif self.reduce == "max":
            out = out.max(1)[0]
        elif self.reduce == "amax":
            out = torch.amax(out, dim=1)
        elif self.reduce == "mean-keepdim":
            out = out.mean(dim=1, keepdim=True)
        return self.fc(out)


def _export(module, path, dynamo):
    """The module, weights randomized (norm weights and biases away from 1 and 0), exported at (B, T): with dynamic
    batch and time by the TorchScript-based exporter; the dynamo exporter fixes the time of its LSTM."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    example = (torch.randn(B, T, F_IN),)
    with warnings.catch_warnings():  # the exporters' deprecation and tracer warnings
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(module.eval(), example, str(path), dynamo=True, input_names=["X"])
        else:
            axes = {"X": {0: "batch", 1: "time"}}
            torch.onnx.export(module.eval(), example, str(path), dynamo=False, input_names=["X"], dynamic_axes=axes)
    return path


def _ort(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
@pytest.mark.parametrize("norm", [False, True], ids=["", "LayerNorm"])
@pytest.mark.parametrize("reduce", ["mean", "max", "amax", "mean-keepdim", "none"])
def test_torch_pooling_and_layer_norm_match_onnxruntime(tmp_path, rng, reduce, norm, dynamo):
    module = Pooled(reduce, norm)
    path = _export(module, tmp_path / "m.onnx", dynamo)
    model = lstmrt.load(path)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert ("LayerNorm" in kinds) is norm
    assert ("GlobalPooling" in kinds) is (reduce != "none")
    X = rng.standard_normal((B, T, F_IN)).astype(np.float32)
    want = _ort(path, X)
    assert_close(model.predict(X), want.reshape(B, 2) if reduce == "mean-keepdim" else want)
    X = rng.standard_normal((B + 1, T + 3, F_IN)).astype(np.float32)  # other sizes than exported: against torch
    with torch.no_grad():
        want = module(torch.from_numpy(X)).numpy()
    assert_close(model.predict(X), want.reshape(B + 1, -1, 2).squeeze(1) if reduce == "mean-keepdim" else want)
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


def _compare_graph(path, rng, lengths=None):
    X = rng.standard_normal((B, T, F_IN)).astype(np.float32)
    feeds = {"X": np.ascontiguousarray(X.transpose(1, 0, 2))}
    if lengths is not None:
        feeds["sequence_lens"] = lengths
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    model = lstmrt.load(path)
    assert_close(model.predict(X, lengths=lengths), want if want.ndim == 2 else want.transpose(1, 0, 2))
    return model


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
    model = _compare_graph(_graph(tmp_path / "m.onnx", rng, nodes, consts, rank=2, opset=opset), rng)
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
    model = _compare_graph(_graph(tmp_path / "m.onnx", rng, nodes, consts, opset=opset), rng)
    norm = model.layers[-1]
    assert (type(norm).__name__, norm.mode, norm.epsilon) == ("LayerNorm", mode, pytest.approx(0.01))


def _refused(path, *fragments):
    with pytest.raises(lstmrt.UnsupportedModelError) as caught:
        lstmrt.load(path)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message


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
    _refused(path, *fragments)


def test_norm_of_each_direction_is_refused(tmp_path, rng):
    """LayerNormalization over the last axis of a bidirectional Y (T, 2, B, H) normalises each direction's H
    features apart; lstmrt's LayerNorm after a bidirectional layer normalises the 2H together."""
    consts = {**recurrent_weights(rng, "LSTM", F_IN, H, directions=2), "scale": np.ones(H, np.float32)}
    nodes = [
        helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="rnn", hidden_size=H, direction="bidirectional"),
        helper.make_node("LayerNormalization", ["Y", "scale"], ["out"], name="norm"),
    ]
    path = save(tmp_path / "m.onnx", nodes, [value("X", ["T", "B", F_IN])], [value("out", 4)], consts, opset=17)
    _refused(path, "node norm (LayerNormalization)", "each direction")
