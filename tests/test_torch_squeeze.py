"""Models whose forward() drops a one-feature output's axis, as forecasters and binary classifiers end it:
`fc(out[:, -1]).squeeze(-1)`, `.view(-1)`, `.flatten()`, `fc(out).squeeze(-1)` per step; and the tutorial form
`h_n.view(-1, hidden_size)` of a one-layer LSTM. They were refused ("cannot follow ... call torch.squeeze"). Each
is built in real torch and read three ways: the live module, its torch.jit.script file and its torch.jit.trace
file. predict then returns torch's shape, (B,) or (B, T); a stream still returns (1,) per step."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn
from torch_forms import load_as, run_torch

import lstmrt
from lstmrt.cli import main


class LastStepHead(nn.Module):
    """An LSTM, its last step, a one-output head, then `finish` (each subclass's reshape)."""

    outputs = 1

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.fc = nn.Linear(8, self.outputs)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.finish(self.fc(out[:, -1, :]))

    def finish(self, y):
        return y.squeeze(-1)


class SqueezeAll(LastStepHead):
    def finish(self, y):
        return y.squeeze()


class SqueezeOne(LastStepHead):
    def finish(self, y):
        return torch.squeeze(y, 1)


class ViewFlat(LastStepHead):
    def finish(self, y):
        return y.view(-1)


class ReshapeFlat(LastStepHead):
    def finish(self, y):
        return y.reshape(-1)


class Flatten(LastStepHead):
    def finish(self, y):
        return torch.sigmoid(y.flatten())  # an element-wise activation after the squeeze


class PerStep(nn.Module):
    """A GRU without batch_first: the head on every step, squeezed to (T, B), then a sigmoid."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 6)
        self.fc = nn.Linear(6, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return torch.sigmoid(self.fc(out).squeeze(-1))


class Tutorial(nn.Module):
    """The well-known time-series tutorial: a zero state made in forward(), h_n.view(-1, hidden_size), ReLUs."""

    def __init__(self):
        super().__init__()
        self.hidden_size = 7
        self.lstm = nn.LSTM(3, 7, batch_first=True)
        self.fc_1, self.fc, self.relu = nn.Linear(7, 16), nn.Linear(16, 1), nn.ReLU()

    def forward(self, x):
        h_0 = torch.zeros(1, x.size(0), self.hidden_size)
        c_0 = torch.zeros(1, x.size(0), self.hidden_size)
        _, (hn, cn) = self.lstm(x, (h_0, c_0))
        hn = hn.view(-1, self.hidden_size)
        return self.fc(self.relu(self.fc_1(self.relu(hn))))


SQUEEZED = [LastStepHead, SqueezeAll, SqueezeOne, ViewFlat, ReshapeFlat, Flatten, PerStep]


def torch_input(cls, X):
    t = torch.from_numpy(X)
    return t.transpose(0, 1).contiguous() if cls is PerStep else t


def torch_output(net, cls, X):
    Y = run_torch(net, torch_input(cls, X))
    return Y.T if cls is PerStep else Y  # (T, B) -> lstmrt's (B, T)


@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", SQUEEZED + [Tutorial], ids=lambda c: c.__name__)
def test_predict_returns_what_torch_returns_in_its_shape(cls, how, tmp_path, rng):
    torch.manual_seed(21)
    net = cls().eval()
    X = rng.standard_normal((4, 6, 3)).astype(np.float32)
    model = load_as(net, how, torch_input(cls, X), tmp_path)
    assert model.squeeze_output is (cls is not Tutorial)
    assert_close(model.predict(X), torch_output(net, cls, X))  # assert_close compares the shapes too


@pytest.mark.parametrize("cls", [LastStepHead, PerStep], ids=lambda c: c.__name__)
def test_one_sequence_and_lengths_keep_the_squeeze(cls, rng):
    torch.manual_seed(22)
    net = cls().eval()
    model = lstmrt.load(net)
    X = rng.standard_normal((3, 7, 3)).astype(np.float32)
    assert_close(model.predict(X[1]), torch_output(net, cls, X[1:2])[0])
    lengths = np.array([7, 4, 2])
    got = model.predict(X, lengths=lengths)
    for b, n in enumerate(lengths):
        alone = torch_output(net, cls, X[b : b + 1, :n])[0]
        assert_close(got[b] if cls is LastStepHead else got[b, :n], alone, what=f"sequence {b}")


def test_a_stream_step_keeps_its_one_feature_axis(rng):
    torch.manual_seed(23)
    net = LastStepHead().eval()
    stream = lstmrt.load(net).stream()
    X = rng.standard_normal((5, 3)).astype(np.float32)
    for t in range(5):
        y = stream.step(X[t])
        assert y.shape == (1,)
        assert_close(y[0], torch_output(net, LastStepHead, X[None, : t + 1])[0], what=f"step {t}")


class Wide(LastStepHead):
    """A squeeze of a 3-output head changes nothing in torch: (B, 3)."""

    outputs = 3


class WideSqueezeAll(Wide):
    def finish(self, y):
        return y.squeeze()


class SqueezedHidden(nn.Module):
    """h_n.squeeze() of a GRU with hidden size 1 drops the hidden axis too: (B,)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 1, batch_first=True)

    def forward(self, x):
        _, h = self.gru(x)
        return torch.sigmoid(h.squeeze())


class WideLastStepSqueezed(nn.Module):
    """`out[:, -1, :].squeeze()` of 8 features changes nothing, and a module follows it."""

    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(3, 8, batch_first=True), nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1, :].squeeze())


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)

    def forward(self, x):
        out, _ = self.lstm(x)
        return out[:, -1]


class ChildTakesTheLastStep(nn.Module):
    """The last step is taken in a child module: the parent's .squeeze(1) is of (B, 1); an nn.Sigmoid follows."""

    def __init__(self):
        super().__init__()
        self.enc, self.fc, self.act = Encoder(), nn.Linear(8, 1), nn.Sigmoid()

    def forward(self, x):
        return self.act(self.fc(self.enc(x)).squeeze(1))


class FlattenLastTwo(LastStepHead):
    def finish(self, y):
        return y.flatten(-2).clone()


class SqueezedTwice(nn.Module):
    """`fc(h.squeeze()).squeeze()`: the first squeeze drops h_n's layer axis only (hidden size 8), the second the
    head's one feature; a BatchNorm1d and a flatten in the variant below."""

    def __init__(self):
        super().__init__()
        self.lstm, self.fc, self.bn = nn.LSTM(3, 8, batch_first=True), nn.Linear(8, 1), nn.BatchNorm1d(8)

    def forward(self, x):
        _, (h, c) = self.lstm(x)
        return self.fc(h.squeeze()).squeeze()


class NormThenFlattened(SqueezedTwice):
    def forward(self, x):
        _, (h, c) = self.lstm(x)
        return torch.sigmoid(self.fc(self.bn(h.squeeze(-3))).view(-1))


class WideSqueezeThenPool(SqueezedTwice):
    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out.squeeze().mean(1)).squeeze(1)


class WideSqueezeThenLastStep(SqueezedTwice):
    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out.squeeze(-1)[:, -1])


class OneHiddenFlattened(nn.Module):
    """h_n.view(-1) / h_n.flatten() of a GRU with hidden size 1: (B,)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 1, batch_first=True)

    def forward(self, x):
        _, h = self.gru(x)
        return torch.tanh(h.flatten())


class OneHiddenViewed(OneHiddenFlattened):
    def forward(self, x):
        _, h = self.gru(x)
        return h.view(-1)


class RowsOfTheFeatures(nn.Module):
    """out[:, -1].view(-1, hidden) before the head, as tutorials write it: (B, H) unchanged."""

    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(3, 8, batch_first=True), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1].view(-1, 8))


class RowsOfAPool(RowsOfTheFeatures):
    def forward(self, x):
        return self.fc(self.lstm(x)[0].mean(1).reshape(-1, 8))


NO_OPS_AND_MORE = [
    Wide,
    WideSqueezeAll,
    SqueezedHidden,
    WideLastStepSqueezed,
    ChildTakesTheLastStep,
    FlattenLastTwo,
    SqueezedTwice,
    NormThenFlattened,
    WideSqueezeThenPool,
    WideSqueezeThenLastStep,
    OneHiddenFlattened,
    OneHiddenViewed,
    RowsOfTheFeatures,
    RowsOfAPool,
]


@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", NO_OPS_AND_MORE, ids=lambda c: c.__name__)
def test_a_squeeze_does_what_it_does_in_torch_at_the_sizes_there(cls, how, tmp_path, rng):
    torch.manual_seed(25)
    net = cls().eval()
    X = rng.standard_normal((4, 6, 3)).astype(np.float32)
    model = load_as(net, how, torch.from_numpy(X), tmp_path)
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


class SequenceFlattened(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(3, 8, batch_first=True), nn.Linear(8, 1)

    def forward(self, x):
        return self.fc(self.lstm(x)[0]).view(-1)  # (B * T,): batch and time joined


class WideFlattened(Wide):
    def finish(self, y):
        return y.view(-1)  # (B * 3,)


class RowsOfASequence(RowsOfTheFeatures):
    def forward(self, x):
        return self.fc(self.lstm(x)[0].reshape(-1, 8))  # (B * T, 8): batch and time joined


class RowsOfOtherWidth(RowsOfTheFeatures):
    def forward(self, x):
        return self.lstm(x)[0][:, -1].view(-1, 4)  # (2B, 4): each row split in two


class BatchSqueezed(LastStepHead):
    def finish(self, y):
        return y.squeeze(0)


class TimeSqueezed(SequenceFlattened):
    def forward(self, x):
        return self.fc(self.lstm(x)[0]).squeeze(1)


class SoftmaxAfter(LastStepHead):
    def finish(self, y):
        return torch.softmax(y.squeeze(-1), dim=-1)  # across the batch


class PoolAfter(SequenceFlattened):
    def forward(self, x):
        return self.fc(self.lstm(x)[0]).squeeze(-1).mean(1)


class ViewBySize(LastStepHead):
    def finish(self, y):
        return y.view(y.size(0), -1)


class StackedTutorial(Tutorial):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 7, num_layers=2, batch_first=True)

    def forward(self, x):
        _, (hn, cn) = self.lstm(x)
        return self.fc(self.relu(self.fc_1(hn.view(-1, self.hidden_size))))


class WrongHidden(Tutorial):
    def forward(self, x):
        _, (hn, cn) = self.lstm(x)
        return hn.view(-1, 1)


class WideStateFlattened(Tutorial):
    def forward(self, x):
        _, (hn, cn) = self.lstm(x)
        return hn.flatten()  # (B * 7,)


class LastStepOfDropped(SequenceFlattened):
    def forward(self, x):
        return self.fc(self.lstm(x)[0]).squeeze(-1)[:, -1]  # drops the feature axis, then indexes time


class StateSqueezedLast(Tutorial):
    def forward(self, x):
        _, (hn, cn) = self.lstm(x)
        return hn.squeeze(-1)


@pytest.mark.parametrize(
    "cls,words",
    [
        (SequenceFlattened, r"\.view\(-1\) of a sequence \(batch, time, features\) .* joins its batch and time axes"),
        (WideFlattened, r"flattening \(B, 3\) into one axis \(by forward\(\) of .*\) joins its batch and feature"),
        (WideStateFlattened, r"flattening \(B, 7\) into one axis"),
        (LastStepOfDropped, r"taking each sequence's last step .* comes after the output's feature axis was squeezed"),
        (RowsOfASequence, r"\.view\(-1, 8\) of a sequence \(batch, time, features\) with 8 features .* moves values"),
        (RowsOfOtherWidth, r"\.view\(-1, 4\) of \(batch, features\) with 8 features .* moves values between rows"),
        (BatchSqueezed, r"squeezing dimension 0 of \(batch, features\) .*: lstmrt drops the feature axis only"),
        (TimeSqueezed, r"squeezing dimension 1 of a sequence"),
        (SoftmaxAfter, r"the activation 'softmax' .* comes after the output's feature axis was squeezed"),
        (PoolAfter, r"the mean over time .* comes after the output's feature axis was squeezed"),
        (ViewBySize, r"torch.view to \[\(a size of the data\), -1\]"),
        (StackedTutorial, r"torch.view of h_n: h_n of 2 states .* would join them into the batch axis"),
        (WrongHidden, r"lstmrt follows h_n.view\(-1, 7\)"),
        (StateSqueezedLast, r"squeezing h_n on dimension -1, which keeps its layer axis"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
@pytest.mark.parametrize("how", ["live", "trace"])
def test_what_lstmrt_cannot_compute_is_refused_with_the_reason(cls, words, how, tmp_path, rng):
    net = cls().eval()
    X = torch.from_numpy(rng.standard_normal((3, 5, 3)).astype(np.float32))
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        load_as(net, how, X, tmp_path)


# -- a state dict records no forward(): "squeeze" in layers= says it ------------------------------------------------
def test_a_state_dict_takes_squeeze_in_layers(tmp_path, rng):
    torch.manual_seed(24)
    net = Flatten().eval()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    model = lstmrt.load(tmp_path / "sd.pt", layers=["lstm", "last_step", "fc", "squeeze", "sigmoid"])
    X = rng.standard_normal((4, 6, 3)).astype(np.float32)
    assert_close(model.predict(X), torch_output(net, Flatten, X))


@pytest.mark.parametrize(
    "layers,words",
    [
        (["lstm", "squeeze", "fc"], r"squeezed \('squeeze' in layers=\) but the model outputs 8 features there"),
        (["squeeze", "lstm", "fc"], r"the data is squeezed before any layer \('squeeze' in layers=\)"),
        (["lstm", "fc", "squeeze", "softmax"], r"the activation 'softmax' comes after the output's feature axis"),
        (["lstm", "fc", "squeeze", "last_step"], r"taking each sequence's last step .* comes after the output's"),
        (["lstm", "last_step", "fc", "squeeze", "squeeze"], r"another squeeze \('squeeze' in layers=\) comes after"),
    ],
)
def test_squeeze_in_the_wrong_place_in_layers_is_refused(layers, words, tmp_path):
    torch.save(LastStepHead().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        lstmrt.load(tmp_path / "sd.pt", layers=layers)


# -- the Model option itself ---------------------------------------------------------------------------------------
def test_squeeze_output_needs_one_output_feature():
    with pytest.raises(ValueError, match=r"squeeze_output needs one output feature; the model outputs [24]"):
        lstmrt.Model([lstmrt.Dense(np.ones((4, 2), np.float32))], squeeze_output=True)


def test_a_pickled_model_keeps_squeeze_output_and_repr_says_it(rng):
    model = lstmrt.load(LastStepHead().eval())
    again = pickle.loads(pickle.dumps(model))
    assert again.squeeze_output and "drops the output's feature axis" in repr(again)
    X = rng.standard_normal((2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


class BidirectionalPerStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(3, 4, batch_first=True, bidirectional=True), nn.Linear(8, 1)

    def forward(self, x):
        return self.fc(self.lstm(x)[0]).squeeze(-1)


@pytest.mark.parametrize("cls", [PerStep, BidirectionalPerStep], ids=lambda c: c.__name__)
def test_the_cli_writes_a_row_per_step_whether_it_streams_or_predicts(cls, tmp_path, rng):
    torch.manual_seed(26)
    net = cls().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        torch.jit.script(net).save(str(tmp_path / "m.pt"))
    X = rng.standard_normal((6, 3)).astype(np.float32)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    assert main(["run", str(tmp_path / "m.pt"), str(tmp_path / "x.csv"), "-o", str(tmp_path / "y.csv")]) == 0
    Y = np.loadtxt(tmp_path / "y.csv", delimiter=",", ndmin=2)
    assert Y.shape == (6, 1)
    assert_close(Y[:, 0], torch_output(net, cls, X[None])[0], atol=1e-5)


class FlattenModuleHead(nn.Module):
    """nn.Flatten modules in an nn.Sequential head: Flatten(0) drops the one feature (B,), Flatten() changes nothing."""

    def __init__(self, flatten):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.head = nn.Sequential(nn.Linear(8, 1), flatten)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


@pytest.mark.parametrize("how", ["live", "script", "trace", "whole"])
@pytest.mark.parametrize("flatten", [nn.Flatten(0), nn.Flatten(), nn.Flatten(-2)], ids=["0", "default", "-2"])
def test_flatten_modules_do_what_they_do_in_torch(flatten, how, tmp_path, rng):
    torch.manual_seed(27)
    net = FlattenModuleHead(flatten).eval()
    X = rng.standard_normal((4, 5, 3)).astype(np.float32)
    if how == "whole":
        torch.save(net, tmp_path / "whole.pt")
        model = lstmrt.load(tmp_path / "whole.pt", layers=["lstm", "last_step", "head"])
    else:
        model = load_as(net, how, torch.from_numpy(X), tmp_path)
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


def test_a_flatten_module_after_the_drop_is_named():
    net = FlattenModuleHead(nn.Sequential(nn.Flatten(0), nn.Flatten(0))).eval()
    with pytest.raises(lstmrt.ArchitectureError, match=r"another squeeze \(by nn.Flatten 'head.1.1'\) comes after"):
        lstmrt.load(net)


def test_from_torch_refuses_a_flatten_of_a_sequence():
    with pytest.raises(ValueError, match=r"nn.Flatten on a sequence \(B, T, F\) joins its axes"):
        lstmrt.from_torch(nn.Sequential(nn.LSTM(3, 4), nn.Flatten()))
