"""Arithmetic by constants in forward(): the input normalisation of sensor models (`(x - self.mean) / self.std`
with buffers, and the output scaled back), scaled residuals (`a + 0.5 * b`), scaled attention scores, `1 - p`,
learned per-feature gains, a bidirectional module's final states summed or averaged (`(h_n[-2] + h_n[-1]) / 2`).
They were refused ("arithmetic on the network's data", "holds parameters of its own") while their ONNX exports
loaded. Each is built in real torch and read three ways (the live module, its torch.jit.script file, its
torch.jit.trace file, where numbers become tensors the trace captured); predict, streams and lengths= are compared
with torch."""

import math

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn
from torch.nn import functional as F
from torch_forms import load_as, perturb, run_torch

import lstmrt

FORMS = ["live", "script", "trace"]


class SensorNorm(nn.Module):
    """A forecaster of raw readings far from zero: normalised by stored statistics, its output scaled back."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([1013.0, 20.0, -300.0]))
        self.register_buffer("std", torch.tensor([9.0, 0.5, 40.0]))
        self.register_buffer("target_mean", torch.tensor(1013.0))
        self.register_buffer("target_std", torch.tensor(9.0))
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        x = (x - self.mean) / self.std
        out, _ = self.lstm(x)
        return self.fc(out[:, -1]) * self.target_std + self.target_mean


class EpsilonNorm(nn.Module):
    """Statistics as a variance, the square root taken in forward(): constants computed from the module's tensors."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.randn(3))
        self.register_buffer("var", torch.rand(3) + 0.2)
        self.gru = nn.GRU(3, 6, batch_first=True)

    def forward(self, x):
        x = (x - self.mean) / torch.sqrt(self.var + 1e-5)
        return self.gru(x)[0]


class ScaledResidual(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.LSTM(4, 6, batch_first=True)
        self.l2 = nn.LSTM(6, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        a, _ = self.l1(x)
        b, _ = self.l2(a)
        out = a + 0.5 * b
        return self.fc(out[:, -1]) / 4


class ScaledScores(nn.Module):
    """Attention pooling with the scores divided by sqrt(H), as dot-product attention scales them."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.attn = nn.Linear(8, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out) / math.sqrt(8), dim=1)
        return self.fc(torch.sum(w * out, dim=1))


class Complement(nn.Module):
    """1 - p, a buffer minus the data, and a negation, with a number attribute of the module."""

    def __init__(self):
        super().__init__()
        self.scale = 3.0
        self.register_buffer("ceiling", torch.tensor([2.0, 5.0]))
        self.gru = nn.GRU(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.gru(x * self.scale)
        return self.ceiling - (1.0 - torch.sigmoid(-self.fc(out)))


class LearnedGain(nn.Module):
    """A per-feature gain and offset held as parameters of the module, and a division by an integer."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.gain = nn.Parameter(torch.randn(6))
        self.offset = nn.Parameter(torch.randn(1, 1, 6))
        self.fc = nn.Linear(6, 1)

    def forward(self, x):
        out, _ = self.lstm(x / 2)
        return self.fc(self.gain * out + self.offset).squeeze(-1) * 10.0


class AveragedDirections(nn.Module):
    """The two directions' final states averaged, of a two-layer bidirectional module."""

    def __init__(self, cell=nn.LSTM):
        super().__init__()
        self.rnn = cell(3, 5, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        _, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        return self.fc((h[-2] + h[-1]) / 2)


class SummedDirections(AveragedDirections):
    def __init__(self):
        super().__init__(nn.GRU)

    def forward(self, x):
        _, h_n = self.rnn(x)
        return self.fc(h_n[-1] + h_n[-2])


class ScaledActivations(nn.Module):
    """Softplus and Hardtanh with constants lstmrt's activations lack, as modules and functions: each is lstmrt's
    activation between Affine layers (softplus(beta x) / beta; hard_tanh of x moved and scaled to the bounds)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.soft = nn.Softplus(beta=2.0)
        self.clip = nn.Hardtanh(-0.2, 0.3)
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        out, _ = self.lstm(x)
        out = self.clip(self.fc(self.soft(out) - 0.4))
        return F.hardtanh(F.softplus(self.fc(out), beta=0.5, threshold=30.0), 0.5, 2.0)


MODELS = {
    "sensor_norm": (SensorNorm, lambda x: x * torch.tensor([9.0, 0.5, 40.0]) + torch.tensor([1013.0, 20.0, -300.0])),
    "epsilon_norm": (EpsilonNorm, None),
    "scaled_residual": (ScaledResidual, None),
    "scaled_scores": (ScaledScores, None),
    "complement": (Complement, None),
    "learned_gain": (LearnedGain, None),
    "averaged_directions": (AveragedDirections, None),
    "summed_directions": (SummedDirections, None),
    "scaled_activations": (ScaledActivations, lambda x: 3 * x),
}


def build(name, batch=3, steps=11):
    make, data = MODELS[name]
    torch.manual_seed(sum(map(ord, name)))
    net = perturb(make()).eval()
    x = torch.randn(batch, steps, net.state_dict()[next(k for k in net.state_dict() if "weight_ih" in k)].shape[1])
    return net, data(x) if data else x


@pytest.mark.parametrize("how", FORMS)
@pytest.mark.parametrize("name", list(MODELS))
def test_predict_matches_torch(tmp_path, name, how):
    net, x = build(name)
    model = load_as(net, how, x, tmp_path)
    for batch, steps in ((3, 11), (2, 4)):
        xs = x[:batch, :steps]
        assert_close(model.predict(xs.numpy()), run_torch(net, xs))


@pytest.mark.parametrize("name", [n for n in MODELS if "directions" not in n])  # bidirectional: no stream
def test_stream_matches_torch_on_every_prefix(tmp_path, name):
    net, x = build(name, steps=8)
    model = load_as(net, "script", x, tmp_path)
    stream = model.stream(batch=x.shape[0])
    for t in range(x.shape[1]):
        got = stream.step(x[:, t].numpy())
        want = run_torch(net, x[:, : t + 1])
        want = want[:, -1] if model.return_sequences else want
        assert_close(got.reshape(want.shape), want)


@pytest.mark.parametrize("name", ["sensor_norm", "averaged_directions", "scaled_scores"])
def test_lengths_match_torch_on_unpadded_sequences(tmp_path, name):
    net, x = build(name)
    model = load_as(net, "trace", x, tmp_path)
    lengths = np.array([11, 5, 1])
    got = model.predict(x.numpy(), lengths=lengths)
    for b, n in enumerate(lengths):
        assert_close(got[b], run_torch(net, x[b : b + 1, :n])[0])


def test_each_op_is_its_own_affine_layer_so_offset_data_keeps_its_digits(tmp_path):
    """(x - mean) / std folded into x * (1/std) - mean/std loses ~5e-5 on readings near 1013 with std 9 (float32's
    spacing there is 6e-5); one layer per op rounds where torch rounds."""
    net, x = build("sensor_norm")
    model = load_as(net, "script", x, tmp_path)
    affines = [layer for layer in model.layers if isinstance(layer, lstmrt.Affine)]
    assert len(affines) == 4
    np.testing.assert_array_equal(affines[0].scale, np.ones(3, np.float32))
    np.testing.assert_array_equal(affines[0].shift, -np.array([1013.0, 20.0, -300.0], np.float32))
    first = lstmrt.Model(model.layers[:2]).predict(x.numpy())
    want = ((x - net.mean) / net.std).numpy()
    assert np.abs(first - want).max() <= 2e-7 * np.abs(want).max()


def test_directions_summed_become_the_bidirectional_layers_merge(tmp_path):
    net, x = build("averaged_directions")
    model = load_as(net, "live", x, tmp_path)
    assert model.layers[1].merge_mode == "sum"
    assert isinstance(model.layers[2], lstmrt.Affine)


class ReciprocalOfData(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return 2.0 / (self.lstm(x)[0] + 3.0)


class PerStepTensor(nn.Module):
    """A buffer of one value per step and feature: torch broadcasts it over the batch, one row per step."""

    def __init__(self):
        super().__init__()
        self.register_buffer("ramp", torch.arange(12.0).reshape(4, 3))
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x * self.ramp)[0]


class FeaturesDown(nn.Module):
    """One value per feature, but down dim -2: torch multiplies step t by the t-th value (three steps here)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("gain", torch.tensor([[1.0], [2.0], [3.0]]))
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x * self.gain)[0]


class Widening(nn.Module):
    """One feature times three gains: torch widens the data to three features."""

    def __init__(self):
        super().__init__()
        self.register_buffer("gain", torch.tensor([1.0, 2.0, 3.0]))
        self.lstm = nn.LSTM(3, 1, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0] * self.gain


class ShiftedIds(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 3)
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(self.emb(x + 1))[0]


class InPlaceScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        out, _ = self.lstm(x)
        out *= 2.0
        return out


class FloorDivision(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return torch.div(self.lstm(x)[0], 2.0, rounding_mode="floor")


class ZeroStd(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("std", torch.tensor([1.0, 0.0, 2.0]))
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x / self.std)[0]


class WeightedSubtraction(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.ones(3))
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(torch.sub(x, self.mean, alpha=2))[0]


class OneDirectionTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True, bidirectional=True)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return h[-1] + h[-1]


class LowThreshold(nn.Module):
    """Softplus(beta=2, threshold=5): torch's x from 2x > 5 on, where softplus(2x) / 2 is 3e-3 above it."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.act = nn.Softplus(beta=2.0, threshold=5.0)

    def forward(self, x):
        return self.act(self.lstm(x)[0])


REFUSED = {
    ReciprocalOfData: r"call `torch.reciprocal",
    PerStepTensor: r"computes with a constant of shape \(4, 3\) on data of 3 feature\(s\) and 3 axes",
    FeaturesDown: r"computes with a constant of shape \(3, 1\) on data of 3 feature\(s\) and 3 axes",
    Widening: r"computes with a constant of shape \(3,\) on data of 1 feature\(s\)",
    ShiftedIds: r"computes with the token ids before the nn.Embedding",
    InPlaceScale: r"changes the tensor in place; lstmrt follows arithmetic by constants written out of place",
    FloorDivision: r"lstmrt follows div without rounding_mode='floor'",
    ZeroStd: r"divides by zero",
    WeightedSubtraction: r"holds parameters of its own \(mean\), .* lstmrt follows sub without alpha",
    OneDirectionTwice: r"a direction's final state is added to itself",
    LowThreshold: r"Softplus\(beta=2.0, threshold=5.0\); lstmrt computes softplus\(beta x\) / beta",
}


@pytest.mark.parametrize("how", ["live", "trace"])
@pytest.mark.parametrize("cls", list(REFUSED), ids=lambda c: c.__name__)
def test_refused_with_the_reason(tmp_path, cls, how):
    torch.manual_seed(0)
    net = cls().eval()
    example = torch.randint(0, 8, (2, 4)) if cls is ShiftedIds else torch.randn(2, 3 if cls is FeaturesDown else 4, 3)
    with pytest.raises(lstmrt.LoadError, match=REFUSED[cls]):
        load_as(net, how, example, tmp_path)
