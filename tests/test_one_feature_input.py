"""Univariate models whose forward() takes (batch, time) samples and gives them their feature axis itself:
`x.unsqueeze(-1)`, `x.unsqueeze(2)`, `x[:, :, None]` (the forecasting tutorials' forms; `x.view(B, T, 1)` in ONNX
exports only). They were refused on every path ("call `torch.unsqueeze(x, -1)`", "the input 'x' has 2 axes").
lstmrt reads the unsqueeze as giving one feature, and the model takes (B, T) in predict as the torch module does
(Model(squeeze_input=True)); a stream steps one sample at a time as for any one-feature model. Checked against torch
on the live module, its script and trace files and its ONNX exports (both exporters)."""

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn
from torch_forms import forget_rnn_dispatch, load_as, run_torch

import lstmrt
from lstmrt.cli import main

B, T, H = 3, 8, 6


class Univariate(nn.Module):
    def __init__(self, bidirectional=False):
        super().__init__()
        self.lstm = nn.LSTM(1, H, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(H * (1 + bidirectional), 1)


class UnsqueezeLast(Univariate):
    def forward(self, x):
        x = x.unsqueeze(-1)
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class UnsqueezeTwoEverySteps(Univariate):
    def forward(self, x):
        out, _ = self.lstm(x.unsqueeze(2))
        return self.fc(out).squeeze(-1)


class IndexNone(Univariate):
    def forward(self, x):
        return self.fc(self.lstm(x[:, :, None])[0][:, -1])


class ViewSizes(Univariate):
    def forward(self, x):
        return self.fc(self.lstm(x.view(x.size(0), x.size(1), 1))[0][:, -1])


class Bidirectional(Univariate):
    def __init__(self):
        super().__init__(bidirectional=True)

    def forward(self, x):
        return self.fc(self.lstm(x.unsqueeze(-1))[0]).squeeze(-1)


FORMS = [UnsqueezeLast, UnsqueezeTwoEverySteps, IndexNone]


def _net(cls):
    torch.manual_seed(2)
    return cls().eval()


def _samples(seed=0, batch=B):
    return (2 * np.random.default_rng(seed).standard_normal((batch, T))).astype(np.float32)


@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", FORMS + [Bidirectional], ids=lambda c: c.__name__)
def test_torch_forms_take_batch_and_time(cls, how, tmp_path):
    net = _net(cls)
    X = _samples()
    expected = run_torch(net, torch.from_numpy(X))
    model = load_as(net, how, torch.from_numpy(X), tmp_path)
    assert model.squeeze_input and model.input_size == 1
    assert_close(model.predict(X), expected, what=f"{cls.__name__} {how}")
    assert_close(model.predict(X[1]), expected[1], what="one sequence as (T,)")
    assert_close(model.predict(X[:, :, None]), expected, what="with its feature axis")  # (B, T, 1) still reads
    per_step = cls in (UnsqueezeTwoEverySteps, Bidirectional)  # (B, T) outputs; the others (B, 1), the last step
    lengths = np.array([T, 3, 5])
    got = model.predict(X, lengths=lengths)
    for b, n in enumerate(lengths):
        alone = run_torch(net, torch.from_numpy(X[b : b + 1, :n]))[0]
        assert_close(got[b, :n] if per_step else got[b], alone, what=f"lengths {n}")
    if not model.bidirectional:  # a stream takes one sample per step, a scalar
        stream = model.stream()
        steps = np.stack([stream.step(float(x)) for x in X[0]])  # (T, 1)
        assert_close(steps[:, 0] if per_step else steps[-1], expected[0], what="stream")


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
@pytest.mark.parametrize("cls", FORMS + [ViewSizes], ids=lambda c: c.__name__)
def test_onnx_exports_take_batch_and_time(cls, dynamo, tmp_path):
    """The graph's input is (batch, time); an Unsqueeze (or a Reshape to (B, T, 1)) gives it its feature axis."""
    net = _net(cls)
    X = _samples(1)
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("time")},)
            try:
                torch.onnx.export(net, (torch.from_numpy(X),), str(path), dynamo=True, dynamic_shapes=dims)
            finally:
                forget_rnn_dispatch()
        else:
            axes = {"x": {0: "batch", 1: "time"}}
            torch.onnx.export(
                net, (torch.from_numpy(X),), str(path), dynamo=False, input_names=["x"], dynamic_axes=axes
            )
    model = lstmrt.load(path)
    assert model.squeeze_input
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)), what=f"{cls.__name__} onnx")
    longer = _samples(2, batch=2)[:, :5]
    assert_close(model.predict(longer), run_torch(net, torch.from_numpy(longer)), what="other sizes")


def test_the_option_survives_a_model_file_and_pickling(tmp_path):
    import pickle

    model = lstmrt.load(_net(UnsqueezeLast))
    model.save(tmp_path / "m.lstmrt")
    again = lstmrt.load(tmp_path / "m.lstmrt")
    X = _samples(3)
    assert again.squeeze_input and np.array_equal(again.predict(X), model.predict(X))
    assert pickle.loads(pickle.dumps(model)).squeeze_input
    assert "predict takes a batch as (B, T)" in repr(model)
    plain = lstmrt.Model(model.layers, return_sequences=False)  # without the option a 2-D X is one (T, 1) sequence
    with pytest.raises(ValueError, match=r"X has shape \(3, 8\), expected \(T,\), \(T, 1\) or \(B, T, 1\)"):
        plain.predict(X)
    with open(tmp_path / "plain.lstmrt", "wb") as f:
        plain.save(f)
    assert b"squeeze_input" not in (tmp_path / "plain.lstmrt").read_bytes()  # older versions read such files


def test_the_cli_runs_a_csv_through_a_bidirectional_one(tmp_path):
    """A bidirectional model runs through predict: the CSV's (T, 1) rows are one sequence, not T of one step."""
    net = _net(Bidirectional)
    X = _samples(4, batch=1)
    load_as(net, "script", None, tmp_path)  # writes tmp_path / "m.pt"
    np.savetxt(tmp_path / "x.csv", X[0])
    assert main(["run", str(tmp_path / "m.pt"), str(tmp_path / "x.csv"), "-o", str(tmp_path / "y.npy")]) == 0
    assert_close(np.load(tmp_path / "y.npy")[:, 0], run_torch(net, torch.from_numpy(X))[0])


class UnsqueezeFirst(Univariate):
    def forward(self, x):
        return self.fc(self.lstm(x.unsqueeze(0))[0][0])


class ViewWholeBatch(Univariate):
    def forward(self, x):
        return self.fc(self.lstm(x.view(1, -1, 1))[0])  # the batch joined into one sequence


class ViewSwapped(Univariate):
    def forward(self, x):
        return self.fc(self.lstm(x.view(x.size(1), x.size(0), 1))[0])  # a view, not a transpose


@pytest.mark.parametrize("how", ["live", "trace"])
def test_other_unsqueezes_of_the_input_are_refused(how, tmp_path):
    net = _net(UnsqueezeFirst)
    with pytest.raises(lstmrt.ArchitectureError, match=r"torch.unsqueeze at dim 0: lstmrt follows x.unsqueeze\(-1\)"):
        load_as(net, how, torch.zeros(T, 1), tmp_path)


@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", [ViewSizes, ViewWholeBatch, ViewSwapped], ids=lambda c: c.__name__)
def test_views_of_the_input_are_refused_on_the_torch_paths(cls, how, tmp_path):
    """x.view(B, T, 1) gives one feature; x.view(1, -1, 1) and x.view(T, B, 1) move the samples, and the walker
    does not tell x.size(0) from x.size(1): all refused (a probe found the latter two loaded, 0.06 off). Their ONNX
    exports carry the sizes, and the good one loads there (test_onnx_exports_take_batch_and_time)."""
    with pytest.raises(lstmrt.ArchitectureError, match=r"torch\.(view|reshape)"):
        load_as(_net(cls), how, torch.from_numpy(_samples()), tmp_path)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(squeeze_input="yes"), "squeeze_input must be True or False"),
        (dict(squeeze_input=True, input_size=3), "squeeze_input needs one input feature; the model takes 3 features"),
    ],
)
def test_model_option_checks(kwargs, words):
    with pytest.raises((TypeError, ValueError), match=words):
        lstmrt.Model([lstmrt.Activation("tanh")], **({"input_size": 1} | kwargs))
    tokens = [lstmrt.Embedding(np.ones((4, 2), np.float32))]
    with pytest.raises(ValueError, match="squeeze_input needs one input feature; the model takes token ids"):
        lstmrt.Model(tokens, squeeze_input=True)
