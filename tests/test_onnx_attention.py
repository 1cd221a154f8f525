"""Attention pooling in ONNX graphs: a Softmax over time of scores computed from the chain, times an earlier point of
it, summed over time (Mul then ReduceSum, or torch's bmm as MatMul then Squeeze), read as an AttentionPooling layer.
torch modules exported by both torch exporters, each compared with ONNX Runtime running the file (at two shapes, and
a stream stepped against each prefix); graphs built with onnx.helper for Softmax's axes before opset 13, the values
lstmrt reads, and what must be refused, by node name and reason."""

import warnings

import numpy as np
import pytest
from conftest import assert_close
from onnx_build import TensorProto, assert_refused, helper, recurrent_weights, save, value

import lstmrt

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from torch_forms import forget_rnn_dispatch, perturb  # noqa: E402  (torch_forms needs torch)

nn = torch.nn

F_IN, H, T, B = 3, 5, 7, 3
SHAPES = [(B, T), (1, 40)]  # (batch, time): the export's, and others


class Attentive(nn.Module):
    """An RNN, softmax attention over its output sequence, a Linear to 2. scorer: "linear" (Linear(H, 1)), "tanh"
    (Linear -> Tanh -> Linear(., 1)) or "per-feature" (Linear(H, H): a softmax over time per feature); pool: "sum"
    (torch.sum(w * out, dim=1)) or "bmm" (torch.bmm(w.unsqueeze(1), out).squeeze(1) of scores squeezed to (B, T))."""

    def __init__(self, rnn="lstm", scorer="linear", pool="sum", bidirectional=False):
        super().__init__()
        cell = nn.LSTM if rnn == "lstm" else nn.GRU
        self.rnn = cell(F_IN, H, batch_first=True, bidirectional=bidirectional)
        width = 2 * H if bidirectional else H
        if scorer == "tanh":
            self.attn = nn.Sequential(nn.Linear(width, 4), nn.Tanh(), nn.Linear(4, 1))
        else:
            self.attn = nn.Linear(width, width if scorer == "per-feature" else 1)
        self.fc = nn.Linear(width, 2)
        self.pool = pool
        perturb(self)

    def forward(self, x):
        out, _ = self.rnn(x)
        scores = self.attn(out)
        if self.pool == "bmm":
            w = torch.softmax(scores.squeeze(-1), dim=1)
            ctx = torch.bmm(w.unsqueeze(1), out).squeeze(1)
        else:
            w = torch.softmax(scores, dim=1)
            ctx = torch.sum(w * out, dim=1)
        return self.fc(ctx)


FORMS = {  # id -> Attentive's options
    "LSTM-linear-sum": {},
    "LSTM-tanh-sum": {"scorer": "tanh"},
    "LSTM-linear-bmm": {"pool": "bmm"},
    "LSTM-per-feature-sum": {"scorer": "per-feature"},
    "bidirectional-LSTM-linear-sum": {"bidirectional": True},
    "GRU-tanh-bmm": {"rnn": "gru", "scorer": "tanh", "pool": "bmm"},
}


def _module(form):
    torch.manual_seed(0)
    return Attentive(**FORMS[form]).eval()


def _export_legacy(form, path, opset):
    """The TorchScript-based exporter's file, batch and time dynamic."""
    with warnings.catch_warnings():  # the exporter's deprecation and tracer warnings
        warnings.simplefilter("ignore")
        axes = {"X": {0: "batch", 1: "time"}}
        example = (torch.randn(B, T, F_IN),)
        torch.onnx.export(
            _module(form), example, str(path), dynamo=False, opset_version=opset, input_names=["X"], dynamic_axes=axes
        )
    return path


@pytest.fixture(scope="module")
def dynamo_file(tmp_path_factory):
    """form -> path of FORMS[form] exported by torch.onnx.export's default exporter, batch and time dynamic."""
    pytest.importorskip("onnxscript")  # the default exporter needs it
    files = {}

    def export(form):
        if form not in files:
            path = tmp_path_factory.mktemp("dynamo") / "model.onnx"
            forget_rnn_dispatch()
            try:
                with warnings.catch_warnings():  # torch.export's warnings; its progress lines go to stdout
                    warnings.simplefilter("ignore")
                    dynamic = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("time")},)
                    example = (torch.randn(B, T, F_IN),)
                    torch.onnx.export(
                        _module(form), example, str(path), dynamo=True, input_names=["X"], dynamic_shapes=dynamic
                    )
            finally:
                forget_rnn_dispatch()  # as found: later exports (other test files) are not made static by these
            files[form] = path
        return files[form]

    return export


def _ort(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


def _time_size(path):
    """The file's static time size, or None where the time axis is dynamic."""
    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return dims[1].dim_value if dims[1].HasField("dim_value") else None


def _check_torch_file(path, form, rng):
    model = lstmrt.load(path)
    (pool,) = [layer for layer in model.layers if isinstance(layer, lstmrt.AttentionPooling)]
    assert pool.source == 0 and pool.start == 0
    assert pool.per_feature is (FORMS[form].get("scorer") == "per-feature")
    assert not model.return_sequences
    static = _time_size(path)
    for batch, time in SHAPES if static is None else [(B, static)]:
        X = rng.standard_normal((batch, time, F_IN)).astype(np.float32)
        assert_close(model.predict(X), _ort(path, X))
    if model.bidirectional:
        return  # not streamed: the backward direction needs the whole sequence
    # a stream's step outputs the pool of its sequence so far: ONNX Runtime on each prefix
    X = rng.standard_normal((1, static or T, F_IN)).astype(np.float32)
    stream = model.stream()
    got = np.stack([stream.step(x).copy() for x in X[0]])
    prefixes = range(1, X.shape[1] + 1) if static is None else [static]
    assert_close(got[[t - 1 for t in prefixes]], np.concatenate([_ort(path, X[:, :t]) for t in prefixes]))


@pytest.mark.parametrize("opset", [17, 11])
@pytest.mark.parametrize("form", list(FORMS))
def test_torch_attention_matches_onnxruntime(tmp_path, rng, form, opset):
    """Opset 11 writes torch.softmax(dim=1) of (B, T, 1) as Transpose, Softmax(axis=2), Transpose (Softmax coerces
    to 2-D before opset 13) and ReduceSum's axes as an attribute."""
    _check_torch_file(_export_legacy(form, tmp_path / "m.onnx", opset), form, rng)


@pytest.mark.parametrize("form", list(FORMS))
def test_torch_default_exporter_attention_matches_onnxruntime(dynamo_file, rng, form):
    _check_torch_file(dynamo_file(form), form, rng)


# -- graphs built with onnx.helper --------------------------------------------------------------------------------
def _graph(path, rng, nodes, consts, *, rank=2, opset=17, lengths=False, scores=1):
    """X (T, B, F) -> an LSTM node -> "seq" (T, B, H) and "out" (B, T, H) -> a Dense to `scores` per step, "score"
    (B, T, scores) and "score_tb" (T, B, scores) -> nodes -> "pooled"."""
    consts = {
        **recurrent_weights(rng, "LSTM", F_IN, H),
        "dir": np.array([1], np.int64),
        "attn_W": rng.standard_normal((H, scores)).astype(np.float32),
        "attn_b": rng.standard_normal(scores).astype(np.float32),
        **consts,
    }
    inputs = ["X", "W", "R", "B"] + (["sequence_lens"] if lengths else [])
    squeeze = ["Y", "dir"] if opset >= 13 else ["Y"]
    head = [
        helper.make_node("LSTM", inputs, ["Y"], name="rnn", hidden_size=H),
        helper.make_node("Squeeze", squeeze, ["seq"], name="squeeze", **({} if opset >= 13 else {"axes": [1]})),
        helper.make_node("Transpose", ["seq"], ["out"], name="batch_first", perm=[1, 0, 2]),
        helper.make_node("MatMul", ["out", "attn_W"], ["score_mm"], name="attn_matmul"),
        helper.make_node("Add", ["score_mm", "attn_b"], ["score"], name="attn_bias"),
        helper.make_node("Transpose", ["score"], ["score_tb"], name="score_time_first", perm=[1, 0, 2]),
    ]
    graph_inputs = [value("X", ["T", "B", F_IN])]
    graph_inputs += [value("sequence_lens", ["B"], TensorProto.INT32)] if lengths else []
    return save(path, head + nodes, graph_inputs, [value("pooled", rank)], consts, opset=opset)


def _softmax(source="score", axis=1, op="Softmax"):
    return helper.make_node(op, [source], ["w"], name="softmax", axis=axis)


def _weigh(weights="w", values="out", op="Mul"):
    return helper.make_node(op, [weights, values], ["weighted"], name="weigh")


def _sum(axes, opset=17, keepdims=0, source="weighted", op="ReduceSum"):
    """ReduceSum of `source` over `axes` to "pooled": the axes an input from opset 13 (constant "sum_axes")."""
    if opset >= 13:
        return helper.make_node(op, [source, "sum_axes"], ["pooled"], name="pool", keepdims=keepdims)
    return helper.make_node(op, [source], ["pooled"], name="pool", keepdims=keepdims, axes=axes)


def _axes(axes):
    return {"sum_axes": np.array(axes, np.int64)}


def _compare(path, X, lengths=None):
    """lstmrt.load(path).predict(X) against ONNX Runtime fed X (B, T, F) time-first; the graph's output is batch
    first. Returns the model."""
    feeds = {"X": np.ascontiguousarray(X.transpose(1, 0, 2))}
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    model = lstmrt.load(path)
    assert_close(model.predict(X), want)
    return model


ACCEPTED = {  # id -> (nodes, constants, graph options, AttentionPooling's (source, start, features, per_feature))
    "mul-reduce-sum": ([_softmax(), _weigh(), _sum([1])], _axes([1]), {}, (0, 0, H, False)),
    "mul-reduce-sum-keepdims": (
        [_softmax(), _weigh(), _sum([1], keepdims=1)],
        _axes([1]),
        {"rank": 3},
        (0, 0, H, False),
    ),
    "time-first": (
        [_softmax("score_tb", axis=0), _weigh(values="seq"), _sum([0])],
        _axes([0]),
        {},
        (0, 0, H, False),
    ),
    "values-are-the-input": (
        [_softmax("score_tb", axis=0), _weigh(values="X"), _sum([0])],
        _axes([0]),
        {},
        ("input", 0, F_IN, False),
    ),
    "values-a-feature-slice": (
        [
            helper.make_node("Slice", ["out", "s_start", "s_end", "s_axis"], ["part"], name="slice"),
            _softmax(),
            _weigh(values="part"),
            _sum([1]),
        ],
        {"s_start": np.array([1]), "s_end": np.array([4]), "s_axis": np.array([2]), **_axes([1])},
        {},
        (0, 1, 3, False),
    ),
    "per-feature-scores": ([_softmax(), _weigh(), _sum([1])], _axes([1]), {"scores": H}, (0, 0, H, True)),
    "bmm": (
        [
            helper.make_node("Squeeze", ["score", "last"], ["score_bt"], name="squeeze_score"),
            _softmax("score_bt", axis=1),
            helper.make_node("Unsqueeze", ["w", "one"], ["w_row"], name="unsqueeze"),
            _weigh("w_row", op="MatMul"),
            helper.make_node("Squeeze", ["weighted", "one"], ["pooled"], name="squeeze_pool"),
        ],
        {"last": np.array([-1]), "one": np.array([1])},
        {},
        (0, 0, H, False),
    ),
    # before opset 13 Softmax(axis=1) of (B, T, 1) normalises over (T * 1): over time only, exactly
    "opset-11-axis-1-of-one-score": ([_softmax(), _weigh(), _sum([1], opset=11)], {}, {"opset": 11}, (0, 0, H, False)),
    "opset-12-bmm": (
        [
            helper.make_node("Squeeze", ["score"], ["score_bt"], name="squeeze_score", axes=[-1]),
            _softmax("score_bt", axis=1),
            helper.make_node("Unsqueeze", ["w"], ["w_row"], name="unsqueeze", axes=[1]),
            _weigh("w_row", op="MatMul"),
            helper.make_node("Squeeze", ["weighted"], ["pooled"], name="squeeze_pool", axes=[1]),
        ],
        {},
        {"opset": 12},
        (0, 0, H, False),
    ),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_attention_read_as_the_graph_computes_it(tmp_path, rng, name):
    nodes, consts, options, (source, start, features, per_feature) = ACCEPTED[name]
    path = _graph(tmp_path / "m.onnx", rng, nodes, consts, **options)
    for batch, time in SHAPES:
        model = _compare(path, rng.standard_normal((batch, time, F_IN)).astype(np.float32))
    pool = model.layers[-1]
    assert isinstance(pool, lstmrt.AttentionPooling)
    assert (pool.source, pool.start, pool.output_size, pool.per_feature) == (source, start, features, per_feature)


REFUSED = {  # id -> (nodes, constants, graph options, what the message names)
    "softmax-over-the-features-as-weights": (
        [_softmax(axis=-1), _weigh(), _sum([1])],
        _axes([1]),
        {"scores": H},
        ("node weigh (Mul)", "multiplies two data values"),
    ),
    "weights-without-softmax": (
        [helper.make_node("Sigmoid", ["score"], ["w"], name="gate"), _weigh(), _sum([1])],
        _axes([1]),
        {},
        ("node weigh (Mul)", "multiplies two data values"),
    ),
    "softmax-over-batch": (
        [_softmax(axis=0), _weigh(), _sum([1])],
        _axes([1]),
        {},
        ("node softmax (Softmax)", "normalises over batch"),
    ),
    "sum-over-batch": (
        [_softmax(), _weigh(), _sum([0])],
        _axes([0]),
        {},
        ("node pool (ReduceSum)", "over batch; an attention pool sums over time"),
    ),
    "sum-over-the-features": (
        [_softmax(), _weigh(), _sum([2])],
        _axes([2]),
        {"rank": 2},
        ("node pool (ReduceSum)", "over the features"),
    ),
    "sum-over-every-axis": (
        [_softmax(), _weigh(), helper.make_node("ReduceSum", ["weighted"], ["pooled"], name="pool", keepdims=0)],
        {},
        {"rank": 0},
        ("node pool (ReduceSum)", "every axis or none"),
    ),
    "mean-instead-of-sum": (
        [_softmax(), _weigh(), _sum([1], op="ReduceMean")],
        _axes([1]),
        {"opset": 18},  # ReduceMean's axes an input
        ("node pool (ReduceMean)", "uses attention weights"),
    ),
    "sum-without-weights": (
        [_sum([1], source="out")],
        _axes([1]),
        {},
        ("node pool (ReduceSum)", "sums values other than attention weights times values"),
    ),
    "where-masked-scores": (
        [helper.make_node("Where", ["mask", "score", "neg"], ["masked"], name="mask"), _softmax("masked")]
        + [_weigh(), _sum([1])],
        {"mask": np.array([True, False, True]).reshape(1, 3, 1), "neg": np.array(-1e9, np.float32), **_axes([1])},
        {},
        ("node mask (Where)", "not supported"),
    ),
    "add-masked-scores": (
        [helper.make_node("Add", ["score", "mask"], ["masked"], name="mask"), _softmax("masked")]
        + [_weigh(), _sum([1])],
        {"mask": np.array([0, -1e9, 0, 0, 0, 0, 0], np.float32).reshape(1, T, 1), **_axes([1])},
        {},
        ("node mask (Add)", "varying along time"),
    ),
    "weights-times-a-constant": (
        [_softmax(), _weigh(values="c"), _sum([1])],
        {"c": np.ones((1, 1, H), np.float32), **_axes([1])},
        {"rank": 2},
        ("node weigh (Mul)", "not data of the chain"),
    ),
    "weights-times-a-later-layer": (  # a Dense on the scores, after the Softmax read them
        [_softmax(), helper.make_node("MatMul", ["score", "later_W"], ["later"], name="later"), _weigh(values="later")]
        + [_sum([1])],
        {"later_W": np.ones((1, H), np.float32), **_axes([1])},
        {},
        ("node weigh (Mul)", "not an earlier point of the chain"),
    ),
    "weights-times-the-last-step": (
        [
            helper.make_node("Gather", ["out", "last_i"], ["last"], name="last_step", axis=1),
            helper.make_node("Unsqueeze", ["last", "one"], ["last_row"], name="unsqueeze"),
            _softmax(),
            _weigh(values="last_row"),
            _sum([1]),
        ],
        {"last_i": np.array(-1), "one": np.array([1]), **_axes([1])},
        {},
        ("node weigh (Mul)", "not an earlier point of the chain"),
    ),
    "weights-not-broadcast-step-by-step": (  # (B, T, 1) by (T, B, H)
        [_softmax(), _weigh(values="seq"), _sum([1])],
        _axes([1]),
        {},
        ("node weigh (Mul)", "do not broadcast step by step"),
    ),
    "weights-as-the-output": (
        [_softmax(), helper.make_node("Identity", ["w"], ["pooled"])],
        {},
        {"rank": 3},
        ("is attention weights",),
    ),
    "weights-into-a-dense": (
        [_softmax(), helper.make_node("MatMul", ["w", "dense_W"], ["pooled"], name="dense")],
        {"dense_W": np.ones((1, 2), np.float32)},
        {"rank": 3},
        ("node dense (MatMul)", "not data of the chain"),
    ),
    "weighted-values-as-the-output": (
        [_softmax(), _weigh(), helper.make_node("Identity", ["weighted"], ["pooled"])],
        {},
        {"rank": 3},
        ("weighted by them",),
    ),
    "weighted-values-into-a-dense": (
        [_softmax(), _weigh(), helper.make_node("MatMul", ["weighted", "dense_W"], ["pooled"], name="dense")],
        {"dense_W": np.ones((H, 2), np.float32)},
        {"rank": 3},
        ("node dense (MatMul)", "other than to sum them over time"),
    ),
    "log-softmax-over-time": (
        [_softmax(op="LogSoftmax"), _weigh(), _sum([1])],
        _axes([1]),
        {},
        ("node softmax (LogSoftmax)", "normalises over time"),
    ),
    "values-times-weights-matmul": (  # out^T (B, H, T) @ w (B, T, 1): lstmrt reads the weights first
        [
            helper.make_node("Transpose", ["out"], ["out_t"], name="transpose", perm=[0, 2, 1]),
            _softmax(),
            helper.make_node("MatMul", ["out_t", "w"], ["pooled"], name="weigh"),
        ],
        {},
        {"rank": 3},
        ("node weigh (MatMul)", "weights (batch, 1, time) times values"),
    ),
    "bmm-without-unsqueeze": (  # (B, T) @ (B, T, H): a matrix of the batch by time
        [
            helper.make_node("Squeeze", ["score", "last"], ["score_bt"], name="squeeze_score"),
            _softmax("score_bt", axis=1),
            helper.make_node("MatMul", ["w", "out"], ["pooled"], name="weigh"),
        ],
        {"last": np.array([-1])},
        {"rank": 3},
        ("node weigh (MatMul)", "weights (batch, 1, time) times values"),
    ),
    "with-sequence-lens": (
        [_softmax(), _weigh(), _sum([1])],
        _axes([1]),
        {"lengths": True},
        ("node pool (ReduceSum)", "sequence_lens"),
    ),
    # before opset 13 Softmax(axis=1) of (B, T, H) normalises over T * H values at once
    "opset-11-over-time-and-features": (
        [_softmax(), _weigh(), _sum([1], opset=11)],
        {},
        {"opset": 11, "scores": H},
        ("node softmax (Softmax)", "normalises over time and the features"),
    ),
    "opset-11-time-first-axis-0": (  # (T, B, 1) coerced at axis 0: over time and batch
        [_softmax("score_tb", axis=0), _weigh(values="seq"), _sum([0], opset=11)],
        {},
        {"opset": 11},
        ("node softmax (Softmax)", "normalises over time and batch"),
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_naming_the_node(tmp_path, rng, name):
    nodes, consts, options, fragments = REFUSED[name]
    path = _graph(tmp_path / "m.onnx", rng, nodes, consts, **options)
    assert_refused(path, *fragments)


def test_softmax_over_the_features_stays_an_activation(tmp_path, rng):
    """Before opset 13, Softmax(axis=2) of (B, T, H, 1) normalises each step's H features: a softmax activation."""
    nodes = [
        helper.make_node("Unsqueeze", ["out"], ["out4"], name="unsqueeze", axes=[3]),
        helper.make_node("Softmax", ["out4"], ["pooled"], name="softmax", axis=2),
    ]
    path = _graph(tmp_path / "m.onnx", rng, nodes, {}, rank=4, opset=11)
    X = rng.standard_normal((B, T, F_IN)).astype(np.float32)
    model = _compare(path, X)
    assert model.layers[-1].activation == "softmax"
