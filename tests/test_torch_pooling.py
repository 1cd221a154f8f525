"""Models whose forward() pools a recurrent module's output over time, the usual text classifier and sequence
classifier head: `out.mean(dim=1)`, `torch.max(out, 1)[0]`, `out.amax(1)` (dim 0 without batch_first). They were
refused ("cannot follow ... call torch.mean"). Each is built in real torch and read three ways: the live module,
its torch.jit.script file and its torch.jit.trace file. The model gets a GlobalPooling layer and returns torch's
(B, O); a stream gives at every step what torch returns for the sequence so far."""

import numpy as np
import pytest
import torch
from torch_forms import load_as, run_torch
from conftest import assert_close
from torch import nn

import lstmrt
from lstmrt.loaders.load import load_with_info


class TextClassifier(nn.Module):
    """Token ids, a bidirectional LSTM, the mean over time, a linear head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(6, 7, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(14, 3)

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        return self.fc(out.mean(dim=1))


class StepsFirstMax(nn.Module):
    """batch_first=False: time is dim 0. log_softmax over dim 1, the features of the pooled (B, F)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 9)
        self.fc = nn.Linear(9, 5)

    def forward(self, x):
        out, _ = self.gru(x)
        return torch.log_softmax(self.fc(out.max(dim=0)[0]), dim=1)


class StackedMax(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, num_layers=2, batch_first=True)
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.sigmoid(self.fc(torch.max(out, 1)[0]))


class PerStepThenMean(nn.Module):
    """A linear layer and tanh applied to every step, then the mean of those."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.mean(torch.tanh(self.fc(out)), dim=1)


class ProjectedNormAmax(nn.Module):
    """A projected LSTM, a LayerNorm per step, torch.amax over time, nn.Softmax(dim=1) after the head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 10, batch_first=True, proj_size=5)
        self.norm = nn.LayerNorm(5)
        self.fc, self.out = nn.Linear(5, 3), nn.Softmax(dim=1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.out(self.fc(torch.amax(self.norm(out), 1)))


MODELS = [TextClassifier, StepsFirstMax, StackedMax, PerStepThenMean, ProjectedNormAmax]
CAUSAL = [StepsFirstMax, StackedMax, PerStepThenMean, ProjectedNormAmax]


class _Pooled(nn.Module):
    """One RNN and a head; each subclass pools in one of the ways code writes it."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)


class MeanPositional(_Pooled):
    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out.mean(1))


class MeanFunction(_Pooled):
    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(torch.mean(out, 1))


class MeanNegativeDim(_Pooled):
    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out.mean(dim=-2))


class MaxValues(_Pooled):
    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out.max(1).values)


class MaxFunctionValues(_Pooled):
    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(torch.max(out, dim=1).values)


class MaxUnpacked(_Pooled):
    def forward(self, x):
        out, _ = self.rnn(x)
        pooled, _ = torch.max(out, dim=1, keepdim=False)
        return self.fc(pooled)


class AmaxMethod(_Pooled):
    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out.amax(dim=1))


FORMS = [MeanPositional, MeanFunction, MeanNegativeDim, MaxValues, MaxFunctionValues, MaxUnpacked, AmaxMethod]


def inputs(cls, rng, batch=3, steps=8):
    if cls is TextClassifier:
        return rng.integers(0, 20, size=(batch, steps)).astype(np.int64)
    return rng.standard_normal((batch, steps, 4)).astype(np.float32)


def torch_input(cls, X):
    t = torch.from_numpy(X)
    return t.transpose(0, 1).contiguous() if cls is StepsFirstMax else t


def torch_output(net, cls, X):
    return run_torch(net, torch_input(cls, X))


def loaded(net, cls, X, how, tmp_path):
    return load_as(net, how, torch_input(cls, X), tmp_path)


_PROJECTION_NOTE = "ignore:LSTM with projections is not supported with oneDNN"  # torch's own note


@pytest.mark.filterwarnings(_PROJECTION_NOTE)
@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", MODELS + FORMS, ids=lambda c: c.__name__)
def test_predict_returns_what_torch_returns(cls, how, tmp_path, rng):
    torch.manual_seed(11)
    net = cls().eval()
    X = inputs(cls, rng)
    model = loaded(net, cls, X, how, tmp_path)
    assert not model.return_sequences
    assert_close(model.predict(X), torch_output(net, cls, X))


@pytest.mark.filterwarnings(_PROJECTION_NOTE)
@pytest.mark.parametrize("cls", CAUSAL, ids=lambda c: c.__name__)
def test_a_stream_gives_at_each_step_what_torch_returns_for_the_sequence_so_far(cls, rng):
    torch.manual_seed(12)
    net = cls().eval()
    X = inputs(cls, rng, batch=2, steps=7)
    stream = lstmrt.load(net).stream(batch=2)
    for t in range(X.shape[1]):
        assert_close(stream.step(X[:, t]), torch_output(net, cls, X[:, : t + 1].copy()), what=f"step {t}")


@pytest.mark.parametrize("cls", [TextClassifier, PerStepThenMean], ids=lambda c: c.__name__)
def test_lengths_pool_each_sequence_as_torch_does_on_it_alone(cls, rng):
    """torch's mean over a padded batch counts the padding; lstmrt's lengths= pools each sequence's own steps,
    which is torch's result for the sequence without its padding."""
    torch.manual_seed(13)
    net = cls().eval()
    X, lengths = inputs(cls, rng, batch=3, steps=9), np.array([9, 4, 1])
    got = lstmrt.load(net).predict(X, lengths=lengths)
    for i, n in enumerate(lengths):
        assert_close(got[i], torch_output(net, cls, X[i : i + 1, :n].copy())[0], what=f"sequence {i}")


def test_the_model_is_the_recurrent_layers_then_a_global_pooling(rng):
    model, info = load_with_info(TextClassifier().eval())
    assert info["order"] == "forward() code"
    assert [type(s).__name__ for s in model.layers] == ["Embedding", "Bidirectional", "GlobalPooling", "Dense"]
    assert model.layers[1].forward.return_sequences and model.layers[2].mode == "average"
    assert lstmrt.load(StepsFirstMax().eval()).layers[1].mode == "max"


# -- what is refused, and why ------------------------------------------------------------------------------------
class _Refused(nn.Module):
    def __init__(self, batch_first=True):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=batch_first)
        self.fc = nn.Linear(8, 2)


class KeepDim(_Refused):
    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out.mean(dim=1, keepdim=True))


class FeatureAxis(_Refused):
    def forward(self, x):
        out, _ = self.lstm(x)
        return out.max(-1)[0]


class BatchAxis(_Refused):
    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(torch.mean(out, 0))


class BatchAxisStepsFirst(_Refused):
    def __init__(self):
        super().__init__(batch_first=False)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out.mean(1))


class TwoAxes(_Refused):
    def forward(self, x):
        out, _ = self.lstm(x)
        return out.mean((1, 2))


class EveryElement(_Refused):
    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.amax(out)


class Indices(_Refused):
    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.max(out, 1)[1].float()


class IndicesAttribute(_Refused):
    def forward(self, x):
        out, _ = self.lstm(x)
        return out.max(dim=1).indices.float()


class AfterLastStep(_Refused):
    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return h_n[-1].mean(1)


class PooledInput(_Refused):
    def forward(self, x):
        out, _ = self.lstm(x.mean(1, keepdim=True))
        return self.fc(out[:, -1])


@pytest.mark.parametrize(
    "cls, words",
    [
        (KeepDim, r"torch.mean with keepdim=True keeps the time axis as size 1"),
        (FeatureAxis, r"torch.max over dimension -1 \(features\) of the \(batch, time, features\), batch_first"),
        (BatchAxis, r"torch.mean over dimension 0 \(batch\) .* pools over the time axis alone, dim=1"),
        (BatchAxisStepsFirst, r"over dimension 1 \(batch\) of the \(time, batch, features\) sequence.* dim=0"),
        (TwoAxes, r"torch.mean over dimension 2 \(features\)"),
        (EveryElement, r"torch.amax of every element of the sequence"),
        (Indices, r"the indices of torch.max over time .* follows its values"),
        (IndicesAttribute, r"the indices of torch.max over time"),
        (AfterLastStep, r"torch.mean after the last step was taken: .* no time axis to pool"),
        (PooledInput, r"the sequence torch.mean pools does not come from an nn.LSTM, nn.GRU or nn.RNN"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
@pytest.mark.parametrize("how", ["live", "trace"])
def test_what_lstmrt_cannot_compute_is_refused_with_the_reason(cls, words, how, tmp_path, rng):
    net = cls().eval()
    X = rng.standard_normal((3, 5, 4)).astype(np.float32)
    with pytest.raises(lstmrt.ArchitectureError, match=rf"cannot follow {cls.__name__}.forward .*{words}.*layers="):
        loaded(net, cls, X, how, tmp_path)


class RecurrentAfterPooling(nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.second = nn.GRU(4, 8, batch_first=True), nn.GRU(8, 8, batch_first=True)

    def forward(self, x):
        y, _ = self.second(self.first(x)[0].mean(1))  # torch reads a 2-D input as one unbatched sequence
        return y


def test_a_recurrent_module_after_pooling_is_refused():
    with pytest.raises(
        lstmrt.ArchitectureError, match=r"'second' is recurrent but comes after the mean over time was taken"
    ):
        lstmrt.load(RecurrentAfterPooling().eval())


# -- a state dict records no forward(): "mean_over_time" / "max_over_time" in layers= say it ---------------------
@pytest.mark.parametrize(
    "cls, layers",
    [
        (TextClassifier, ["embed", "lstm", "mean_over_time", "fc"]),
        (StackedMax, ["lstm", "max_over_time", "fc", "sigmoid"]),
        (PerStepThenMean, ["lstm", "fc", "tanh", "mean_over_time"]),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_a_state_dict_takes_pooling_in_layers(cls, layers, tmp_path, rng):
    torch.manual_seed(14)
    net = cls().eval()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    X = inputs(cls, rng)
    model = lstmrt.load(tmp_path / "sd.pt", layers=layers)
    assert_close(model.predict(X), torch_output(net, cls, X))


@pytest.mark.parametrize(
    "layers, words",
    [
        (["mean_over_time", "lstm", "fc"], r"the mean over time is taken before any recurrent module"),
        (
            ["lstm", "last_step", "max_over_time", "fc"],
            r"the max over time is taken \('max_over_time' in layers=\) after each sequence's last step was "
            r"\('last_step' in layers=\), which left no time axis",
        ),
        (["lstm", "max_over_time", "mean_over_time", "fc"], r"the mean over time is taken .* after the max over"),
        (["lstm", "mean_over_tim", "fc"], r"nor 'last_step', 'mean_over_time', 'max_over_time' or 'squeeze'"),
    ],
    ids=["first", "after-last-step", "twice", "misspelt"],
)
def test_pooling_in_the_wrong_place_in_layers_is_refused(layers, words, tmp_path):
    torch.save(StackedMax().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        lstmrt.load(tmp_path / "sd.pt", layers=layers)


def test_a_recurrent_module_after_pooling_in_layers_is_refused(tmp_path):
    torch.save(RecurrentAfterPooling().state_dict(), tmp_path / "sd.pt")
    words = r"'second' is recurrent but comes after the max over time was taken \('max_over_time' in layers=\)"
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        lstmrt.load(tmp_path / "sd.pt", layers=["first", "max_over_time", "second"])


def test_the_cli_takes_pooling_in_layers(tmp_path, rng):
    from lstmrt.cli import main

    torch.manual_seed(15)
    net = StackedMax().eval()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    X = inputs(StackedMax, rng, batch=1)[0]
    np.save(tmp_path / "x.npy", X)
    args = ["run", str(tmp_path / "sd.pt"), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]
    assert main([*args, "--layers", "lstm,max_over_time,fc,sigmoid"]) == 0
    # a stream: every step's output is the model's output for the sequence so far, the last one torch's
    assert_close(np.load(tmp_path / "y.npy")[-1], torch_output(net, StackedMax, X[None])[0])
