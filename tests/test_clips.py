"""Clipping to bounds lstmrt has no activation for (clip_ops): torch's clamp / clip / clamp_min / clamp_max in
forward() (live, script, trace) and their ONNX exports (Clip, Max), Keras's capped and thresholded ReLU (the clipped
ReLU of speech models, ReLU(max_value=20)) as a layer, inside TimeDistributed and as a Dense's activation. Each is
lstmrt's relu / relu6 / hard_tanh between Affine layers, compared here with the framework that defines it, and the
plan itself with NumPy's clip at the edges (bounds, ±inf, NaN). ONNX Clip / Max / Min nodes written by hand are in
test_load_onnx.py's GRAPHS."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by Keras

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import assert_close, keras_framework, save_keras  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch_forms import forget_rnn_dispatch, load_as, run_torch  # noqa: E402

import lstmrt  # noqa: E402
from lstmrt.loaders.clip_ops import clip_layers, clip_plan  # noqa: E402

B, T, FEATURES, H, OUT = 2, 7, 3, 6, 4  # batch, steps, input features, hidden, outputs


# -- the plan against NumPy's clip ----------------------------------------------------------------------------------
BOUNDS = [
    *[(0, 20), (0, 0.5), (-2.5, None), (None, 1.5), (-3, 5), (-4, 4), (2, 7), (0, None), (0, 6), (-1, 1)],
    *[(-1e6, None), (None, 1e6), (-10, 1e6), (0.1, 1e4), (-1e4, -7.3), (-0.001, 123456.7), (13.7, 300)],  # a probe's
]


@pytest.mark.parametrize("low, high", BOUNDS, ids=[f"{lo}-{hi}" for lo, hi in BOUNDS])
def test_clip_layers_are_numpy_clip_exactly(low, high):
    """x or the bound, bit for bit, whatever the bounds' size or place (a probe found the earlier plan, relu and
    relu6 moved and scaled to the bounds, 0.01 off for clamp(min=-1e6)); ±inf clipped, NaN kept."""
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.uniform(-30, 30, 200), [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30]])
    values = np.concatenate([values, [b for b in (low, high) if b is not None]]).astype(np.float32)
    model = lstmrt.Model(clip_layers(low, high, "clip"), input_size=1)
    got = model.predict(values.reshape(1, -1, 1)).reshape(-1)
    low_, high_ = -np.inf if low is None else low, np.inf if high is None else high
    expected = np.clip(values, np.float32(low_), np.float32(high_))
    assert np.array_equal(got, expected, equal_nan=True)


def test_clip_plan_uses_lstmrt_activations_alone_where_it_can():
    assert clip_plan(0, 6, "c") == ["relu6"]
    assert clip_plan(-1, 1, "c") == ["hard_tanh"]
    assert clip_plan(0, None, "c") == ["relu"]
    assert clip_plan(None, None, "c") == []
    assert clip_plan(-2.5, 1e6, "c") == ["clip_min(-2.5)", "clip_max(1000000)"]
    assert clip_plan(0, 20, "c") == ["relu", "clip_max(20)"]


@pytest.mark.parametrize(
    "low, high, words",
    [
        (2, -2, "c: the lower bound 2 is not below the upper bound -2"),
        (1, 1, "c: the lower bound 1 is not below the upper bound 1"),
        (0, float("inf"), "c: the bound inf is not finite in float32"),
        (-1e39, None, "c: the bound -1e+39 is not finite in float32"),
        ("0", 1, "c: the bound '0' is not a number"),
        (True, None, "c: the bound True is not a number"),
    ],
)
def test_clip_plan_refuses(low, high, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        clip_plan(low, high, "c")


# -- torch ------------------------------------------------------------------------------------------------------------
class Clamped(nn.Module):
    """LSTM -> Linear scaled past every bound -> one clip form."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, H, batch_first=True)
        self.fc = nn.Linear(H, OUT)
        self.cap = 4.0

    def head(self, x):
        return self.fc(self.lstm(x)[0]) * 6.0  # past every bound below


class ClampBoth(Clamped):
    def forward(self, x):
        return torch.clamp(self.head(x), 0, 20)


class ClampMinKeyword(Clamped):
    def forward(self, x):
        return self.head(x).clamp(min=-2.5)


class ClipBoth(Clamped):
    def forward(self, x):
        return torch.clip(self.head(x), -3, 5)


class ClampMax(Clamped):
    def forward(self, x):
        return self.head(x).clamp_max(1.5)


class ClampMinMethod(Clamped):
    def forward(self, x):
        return self.head(x).clamp_min(0.5)


class ClampKeywordsSwapped(Clamped):
    def forward(self, x):
        return torch.clamp(self.head(x), max=2.0, min=-1.0)


class ClampAttributeBound(Clamped):
    def forward(self, x):
        return torch.clamp(self.head(x), None, self.cap)


class HardtanhOtherBounds(Clamped):
    def forward(self, x):
        return F.hardtanh(self.head(x), 0.0, 20.0)


class ClampWide(Clamped):
    """Bounds far from the data and from each other (a probe found the first plan, relu / relu6 moved and scaled
    to them, 0.01 off here)."""

    def forward(self, x):
        return torch.clamp(torch.clamp(self.head(x), min=-1e6), -0.001, 123456.7)


class ClampInput(Clamped):
    """A clip of the input itself, before any layer: its activation is the model's first layer."""

    def forward(self, x):
        return self.fc(self.lstm(torch.clamp(x, min=0.25))[0])


class ClampLastStep(Clamped):
    """After the last step: data (B, F)."""

    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.clamp(self.fc(out[:, -1]) * 6.0, -1.0, 3.0)


TORCH_FORMS = [
    ClampBoth,
    ClampMinKeyword,
    ClipBoth,
    ClampMax,
    ClampMinMethod,
    ClampKeywordsSwapped,
    ClampAttributeBound,
    HardtanhOtherBounds,
    ClampWide,
    ClampInput,
    ClampLastStep,
]


def _net(cls, seed: int):
    torch.manual_seed(seed)
    return cls().eval()


@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", TORCH_FORMS, ids=lambda c: c.__name__)
def test_torch_clamps_match_torch(cls, how, tmp_path):
    net = _net(cls, 3)
    X = torch.from_numpy((2 * np.random.default_rng(5).standard_normal((B, T, FEATURES))).astype(np.float32))
    expected = run_torch(net, X)
    model = load_as(net, how, X, tmp_path)
    assert_close(model.predict(X.numpy()), expected, what=f"{cls.__name__} {how}")
    if cls is not ClampLastStep:  # a stream steps the same model
        stream = model.stream(batch=B)
        steps = np.stack([stream.step(X[:, t].numpy()) for t in range(T)], axis=1)
        assert_close(steps, expected, what=f"{cls.__name__} {how} stream")
    lower, upper = expected.min(), expected.max()
    assert lower < 0.5 or upper > 1.5  # the data reaches past the bounds: the clip is exercised


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
@pytest.mark.parametrize("cls", [ClampBoth, ClipBoth, ClampMinMethod, ClampMax], ids=lambda c: c.__name__)
def test_torch_clamps_exported_to_onnx(cls, dynamo, tmp_path):
    """torch exports the clamps as Clip (either bound may be left out) or, from dynamo, clamp_min as Max."""
    net = _net(cls, 4)
    X = torch.from_numpy((2 * np.random.default_rng(6).standard_normal((B, T, FEATURES))).astype(np.float32))
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("time")}
            try:
                torch.onnx.export(net, (X,), str(path), dynamo=True, input_names=["x"], dynamic_shapes=(dims,))
            finally:
                forget_rnn_dispatch()  # or later test files' exports get a static time axis
        else:
            axes = {"x": {0: "batch", 1: "time"}}
            torch.onnx.export(net, (X,), str(path), dynamo=False, input_names=["x"], dynamic_axes=axes)
    assert_close(lstmrt.load(path).predict(X.numpy()), run_torch(net, X), what=f"{cls.__name__} onnx")


class ClampTensorBounds(Clamped):
    def forward(self, x):
        return torch.clamp(self.head(x), torch.zeros(OUT), torch.ones(OUT))


class ClampOutOfOrder(Clamped):
    def forward(self, x):
        return torch.clamp(self.head(x), 2.0, -2.0)


@pytest.mark.parametrize("how", ["live", "trace"])
@pytest.mark.parametrize(
    "cls, words",
    [
        (ClampTensorBounds, "lstmrt clips to bounds that are numbers"),
        (ClampOutOfOrder, "the lower bound 2 is not below the upper bound -2"),
    ],
    ids=["tensor-bounds", "out-of-order"],
)
def test_torch_clamps_refused(cls, words, how, tmp_path):
    net = _net(cls, 3)
    X = torch.zeros(B, T, FEATURES)
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        load_as(net, how, X, tmp_path)


# -- Keras ------------------------------------------------------------------------------------------------------------
def keras_clipped(K):
    """ReLU(max_value) and ReLU(threshold) as layers, in TimeDistributed and as Dense's activation."""
    L = K.layers
    return K.Sequential(
        [
            K.Input((T, FEATURES)),
            L.LSTM(H, return_sequences=True),
            L.Dense(H),
            L.ReLU(max_value=20.0),  # the clipped ReLU of DeepSpeech-style models
            L.Dense(H),
            L.ReLU(max_value=0.5),
            L.Dense(H),
            L.ReLU(threshold=0.7),
            L.Dense(H),
            L.ReLU(max_value=2.0, threshold=0.4),
            L.Dense(H),
            L.TimeDistributed(L.ReLU(max_value=1.5)),
            L.Dense(H, activation=L.ReLU(max_value=2.5)),
            L.Dense(OUT, activation=L.ReLU(threshold=0.3)),
        ]
    )


@pytest.mark.parametrize("fmt", ["live", "keras", "h5"])
@pytest.mark.parametrize("version", ["keras3", "tf_keras"])
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file:UserWarning")
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_clipped_relu_matches_keras(version, fmt, tmp_path):
    K = keras_framework(version)
    model = keras_clipped(K)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        layer.set_weights([(2 * rng.standard_normal(w.shape)).astype(np.float32) for w in layer.get_weights()])
    X = (2 * rng.standard_normal((B, T, FEATURES))).astype(np.float32)
    expected = np.asarray(model(X, training=False))
    loaded = lstmrt.load(save_keras(model, fmt, tmp_path / "m")[0])
    assert_close(loaded.predict(X), expected, what=f"{version} {fmt}")
    activations = [layer.activation for layer in loaded.layers if isinstance(layer, lstmrt.Activation)]
    assert activations == [
        *["relu", "clip_max(20)", "relu", "clip_max(0.5)", "hard_shrink(0.7)", "relu"],
        *["hard_shrink(0.4)", "relu", "clip_max(2)", "relu", "clip_max(1.5)", "relu", "clip_max(2.5)"],
        *["hard_shrink(0.3)", "relu"],  # Dense(activation=ReLU(threshold=0.3)): the Dense, then these
    ]
