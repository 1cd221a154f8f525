"""Attention pooling in forward(), the sequence classifier head `w = torch.softmax(self.attn(out), dim=1);
ctx = torch.sum(w * out, dim=1)` in the ways code spells it: (w * out).sum(1), F.softmax(dim=-2), a (B, T) softmax
after .squeeze(-1) with torch.bmm(w.unsqueeze(1), out) or w.unsqueeze(-1) * out, a Linear -> tanh -> Linear
scorer, one score per feature, time first without batch_first. They were refused ("cannot follow ... call
torch.softmax"). Each is built in real torch and read three ways: the live module, its torch.jit.script file and
its torch.jit.trace file. The model gets an AttentionPooling layer and returns torch's (B, O); a stream gives at
every step what torch returns for the sequence so far."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from torch import nn
from torch_forms import load_as, perturb, run_torch

import lstmrt

FORMS = ["live", "script", "trace"]
SHAPES = [(3, 7), (1, 40)]


class _Attended(nn.Module):
    """An LSTM (4 -> 8), a scorer and a head; each subclass pools in one of the ways code writes it."""

    def __init__(self, scores=1, batch_first=True):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=batch_first)
        self.attn = nn.Linear(8, scores)
        self.fc = nn.Linear(8, 3)


class SumOfProduct(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        ctx = torch.sum(w * out, dim=1)
        return self.fc(ctx)


class MethodSum(_Attended):
    """F.softmax over dim=-2, the values first, .sum(1); dropout on the weights (a no-op in eval mode)."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = self.drop(F.softmax(self.attn(out), dim=-2))
        return self.fc((out * w).sum(1))


class SoftmaxMethod(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = self.attn(out).softmax(dim=1)
        return self.fc(torch.sum(torch.mul(out, w), 1))


class SqueezedBmm(_Attended):
    """(B, T) scores, then torch.bmm of (B, 1, T) weights and (B, T, H) values."""

    def forward(self, x):
        out, _ = self.lstm(x)
        scores = self.attn(out).squeeze(-1)
        w = torch.softmax(scores, dim=1)
        ctx = torch.bmm(w.unsqueeze(1), out).squeeze(1)
        return self.fc(ctx)


class SqueezedUnsqueezed(_Attended):
    """(B, T) scores, softmax over their last axis, the weights given their feature axis back."""

    def forward(self, x):
        out, _ = self.lstm(x)
        w = F.softmax(self.attn(out).squeeze(2), dim=-1)
        return self.fc((w.unsqueeze(-1) * out).sum(dim=1))


class TransposedBmm(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), 1)
        return self.fc(torch.matmul(w.transpose(1, 2), out).squeeze(1))


class SqueezedWeights(_Attended):
    """The weights squeezed after the softmax, (B, T), then given the axis bmm needs."""

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1).squeeze(2)
        return self.fc(torch.bmm(w.unsqueeze(1), out).squeeze(1))


class TimeFirst(nn.Module):
    """Without batch_first: (T, B, F), softmax and sum over dim 0; a GRU."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 6)
        self.attn = nn.Linear(6, 1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        out, _ = self.gru(x)
        w = torch.softmax(self.attn(out), dim=0)
        return self.fc(torch.sum(w * out, dim=0))


class TanhScorer(nn.Module):
    """nn.Sequential(Linear, Tanh, Linear) scores a stacked LSTM's output; a head with an activation."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, num_layers=2, batch_first=True)
        self.attn = nn.Sequential(nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 1))
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return torch.log_softmax(self.fc(torch.sum(w * out, dim=1)), dim=1)


class ScorerWithSoftmax(nn.Module):
    """The scorer and the softmax over time in one nn.Sequential, as tutorials write it: w = self.attention(out)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.attention = nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 1), nn.Softmax(dim=1))
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = self.attention(out)
        return self.fc(torch.sum(w * out, dim=1))


class AdditiveScorer(nn.Module):
    """self.v(torch.tanh(self.W(out))) on a GRU, a two-layer head."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 7, batch_first=True)
        self.W, self.v = nn.Linear(7, 5), nn.Linear(5, 1, bias=False)
        self.fc1, self.fc2 = nn.Linear(7, 6), nn.Linear(6, 2)

    def forward(self, x):
        out, _ = self.gru(x)
        scores = self.v(torch.tanh(self.W(out))).squeeze(-1)
        w = F.softmax(scores, dim=1)
        ctx = (w.unsqueeze(-1) * out).sum(1)
        return self.fc2(torch.relu(self.fc1(ctx)))


class PerFeature(_Attended):
    """One score per feature: a softmax over time for each."""

    def __init__(self):
        super().__init__(scores=8)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc((torch.softmax(self.attn(out), 1) * out).sum(1))


class Bidirectional(nn.Module):
    """A bidirectional LSTM: the values are both directions, 2H wide."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True, bidirectional=True)
        self.attn = nn.Linear(12, 1)
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return torch.sigmoid(self.fc(torch.sum(w * out, dim=1)))


class InputValues(_Attended):
    """The LSTM scores the steps, the input's features are pooled: values earlier in the chain than `out`."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return self.fc((w * x).sum(1))


class SlicedValues(_Attended):
    """The values are features 2 to 5 of the LSTM's 8."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return self.fc(torch.sum(w * out[:, :, 2:6], dim=1))


class AttentionBlock(nn.Module):
    """A user-defined attention module, with an nn.Softmax: it does not see the LSTM, and takes time as dim 1."""

    def __init__(self, hidden):
        super().__init__()
        self.score = nn.Linear(hidden, 1)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, out):
        w = self.softmax(self.score(out))
        return torch.sum(w * out, dim=1)


class WithAttentionBlock(nn.Module):
    def __init__(self, batch_first=True):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=batch_first)
        self.attention = AttentionBlock(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(self.attention(out))


MODELS = [
    SumOfProduct,
    MethodSum,
    SoftmaxMethod,
    SqueezedBmm,
    SqueezedUnsqueezed,
    TransposedBmm,
    SqueezedWeights,
    TimeFirst,
    TanhScorer,
    ScorerWithSoftmax,
    AdditiveScorer,
    PerFeature,
    Bidirectional,
    InputValues,
    SlicedValues,
    WithAttentionBlock,
]
CAUSAL = [cls for cls in MODELS if cls is not Bidirectional]  # a backward direction reads the steps to come


def build(cls):
    torch.manual_seed(sum(map(ord, cls.__name__)))
    return perturb(cls().eval())


def torch_input(cls, X):
    t = torch.from_numpy(X)
    return t.transpose(0, 1).contiguous() if cls is TimeFirst else t


def torch_output(net, cls, X):
    return run_torch(net, torch_input(cls, X))


@pytest.mark.parametrize("how", FORMS)
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_predict_returns_what_torch_returns(cls, how, tmp_path, rng):
    net = build(cls)
    model = load_as(net, how, torch_input(cls, rng.standard_normal((2, 5, 4)).astype(np.float32)), tmp_path)
    assert not model.return_sequences
    assert any(isinstance(layer, lstmrt.AttentionPooling) for layer in model.layers)
    for batch, steps in SHAPES:
        X = rng.standard_normal((batch, steps, 4)).astype(np.float32)
        assert_close(model.predict(X), torch_output(net, cls, X), what=f"({batch}, {steps})")


@pytest.mark.parametrize("cls", CAUSAL, ids=lambda c: c.__name__)
def test_a_stream_gives_at_each_step_what_torch_returns_for_the_sequence_so_far(cls, rng):
    net = build(cls)
    X = rng.standard_normal((2, 9, 4)).astype(np.float32)
    stream = lstmrt.load(net).stream(batch=2)
    for t in range(X.shape[1]):
        assert_close(stream.step(X[:, t]), torch_output(net, cls, X[:, : t + 1].copy()), what=f"step {t}")


@pytest.mark.parametrize("cls", [SumOfProduct, PerFeature], ids=lambda c: c.__name__)
def test_lengths_pool_each_sequence_as_torch_does_on_it_alone(cls, rng):
    net = build(cls)
    X, lengths = rng.standard_normal((3, 9, 4)).astype(np.float32), np.array([9, 4, 1])
    got = lstmrt.load(net).predict(X, lengths=lengths)
    for i, n in enumerate(lengths):
        assert_close(got[i], torch_output(net, cls, X[i : i + 1, :n].copy())[0], what=f"sequence {i}")


def test_the_model_is_the_chain_then_an_attention_pool_of_an_earlier_layer():
    model = lstmrt.load(build(TanhScorer))
    assert [type(s).__name__ for s in model.layers] == [
        "LSTM",
        "LSTM",
        "Dense",
        "Activation",
        "Dense",
        "AttentionPooling",
        "Dense",
        "Activation",
    ]
    pool = model.layers[5]
    assert (pool.source, pool.start, pool.output_size, pool.per_feature) == (1, 0, 8, False)
    assert lstmrt.load(build(PerFeature)).layers[2].per_feature
    assert lstmrt.load(build(InputValues)).layers[2].source == "input"


class SqueezeThatChangesNothing(nn.Module):
    """A softmax over the features after a squeeze(-1) of 3 features (which torch leaves): read as before."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.softmax(self.fc(out).squeeze(-1), dim=-1)


@pytest.mark.parametrize("how", FORMS)
def test_a_softmax_over_the_features_after_a_squeeze_is_still_one(how, tmp_path, rng):
    net = build(SqueezeThatChangesNothing)
    X = rng.standard_normal((2, 5, 4)).astype(np.float32)
    model = load_as(net, how, torch.from_numpy(X), tmp_path)
    assert model.return_sequences and not any(isinstance(s, lstmrt.AttentionPooling) for s in model.layers)
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


# -- what is refused, and why ------------------------------------------------------------------------------------
class FeatureSoftmax(_Attended):
    def __init__(self):
        super().__init__(scores=8)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=-1)
        return self.fc((w * out).sum(1))


class SequentialSoftmaxOverFeatures(ScorerWithSoftmax):
    """The softmax in the scorer's nn.Sequential over its one feature: every weight is 1."""

    def __init__(self):
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(8, 1), nn.Softmax(dim=-1))


class NoSoftmax(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.sigmoid(self.attn(out))
        return self.fc((w * out).sum(1))


class ScoresFromTheInput(nn.Module):
    """The scores come from the input, the values from the LSTM: two branches."""

    def __init__(self):
        super().__init__()
        self.lstm, self.attn, self.fc = nn.LSTM(4, 8, batch_first=True), nn.Linear(4, 1), nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(x), dim=1)
        return self.fc((w * out).sum(1))


class ValuesAfterTheScores(nn.Module):
    """The scores come from the first LSTM, the values from a second one after it."""

    def __init__(self):
        super().__init__()
        self.first, self.second = nn.LSTM(4, 8, batch_first=True), nn.LSTM(8, 8, batch_first=True)
        self.attn, self.fc = nn.Linear(8, 1), nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.first(x)
        later, _ = self.second(out)
        w = torch.softmax(self.attn(out), dim=1)
        return self.fc((w * later).sum(1))


class QueryFromTheFinalState(_Attended):
    def forward(self, x):
        out, (h_n, _) = self.lstm(x)
        scores = torch.bmm(out, h_n[-1].unsqueeze(2)).squeeze(2)
        w = torch.softmax(scores, dim=1)
        return self.fc(torch.bmm(w.unsqueeze(1), out).squeeze(1))


class AdditiveQuery(nn.Module):
    """Bahdanau's scores: the final state added to every step's projection."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.W, self.U, self.v, self.fc = nn.Linear(8, 5), nn.Linear(8, 5), nn.Linear(5, 1), nn.Linear(8, 3)

    def forward(self, x):
        out, (h_n, _) = self.lstm(x)
        w = torch.softmax(self.v(torch.tanh(self.W(out) + self.U(h_n[-1]).unsqueeze(1))), dim=1)
        return self.fc((w * out).sum(1))


class Masked(_Attended):
    def forward(self, x, mask):
        out, _ = self.lstm(x)
        scores = self.attn(out).squeeze(-1).masked_fill(mask == 0, -1e9)
        w = torch.softmax(scores, dim=1)
        return self.fc((w.unsqueeze(-1) * out).sum(1))


class SumOverFeatures(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return torch.sum(w * out, dim=2)


class MeanOfProduct(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return self.fc((w * out).mean(1))


class KeptTimeAxis(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return self.fc(torch.sum(w * out, dim=1, keepdim=True))


class WithoutUnsqueeze(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out).squeeze(-1), dim=1)
        return self.fc((w * out).sum(1))


class ReturnsTheWeights(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return self.fc(torch.sum(w * out, dim=1)), w


class WeightsOut(_Attended):
    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.softmax(self.attn(out), dim=1)


REFUSED = {
    FeatureSoftmax: r"multiplies weights that are a softmax over the features \(dim=-1\) rather than over time",
    NoSoftmax: r"multiplies two tensors of the data \(weights without a softmax over time",
    SequentialSoftmaxOverFeatures: r"multiplies two tensors of the data \(weights without a softmax over time",
    ScoresFromTheInput: r"weighs values that are not an earlier point of the chain the attention scores are computed",
    ValuesAfterTheScores: r"weighs values that are not an earlier point of the chain",
    QueryFromTheFinalState: r"scores the steps against a final state \(a query.*a stream does not have yet",
    AdditiveQuery: r"is a final state with an axis added \(unsqueeze\): scores the steps against a final state",
    Masked: r"masks the scores: lstmrt masks padded steps by their lengths instead",
    SumOverFeatures: r"sums the weighted values over dimension 2 \(features\); lstmrt's attention sums them over "
    r"time, dim=1",
    MeanOfProduct: r"`torch.mean\(.*\)` on the attention's weighted values; lstmrt sums them over time",
    KeptTimeAxis: r"sums with keepdim=True",
    WithoutUnsqueeze: r"multiplies weights of axes \(batch, time\) by values of axes \(batch, time, features\)",
    ReturnsTheWeights: r"returns 2 outputs, and output 2 is computed from the data too",
    WeightsOut: r"the returned value is attention weights, the softmax over time `torch.softmax\(.*\)`, which lstmrt",
}


@pytest.mark.parametrize("how", ["live", "trace"])
@pytest.mark.parametrize("cls", list(REFUSED), ids=lambda c: c.__name__)
def test_what_lstmrt_cannot_compute_is_refused_with_the_reason(cls, how, tmp_path):
    net = build(cls)
    example = torch.randn(2, 5, 4)
    if cls is Masked:
        example = (example, torch.ones(2, 5))
    if how == "trace" and cls is WithoutUnsqueeze:
        example = torch.randn(8, 8, 4)  # torch broadcasts (B, T) weights against (B, T, H) when B = T = H
    with pytest.raises(lstmrt.ArchitectureError, match=rf"cannot follow {cls.__name__}.forward .*{REFUSED[cls]}"):
        load_as(net, how, example, tmp_path)


class TooManyScores(nn.Module):
    """Three scores per step for one value feature: torch broadcasts the value to three contexts."""

    def __init__(self):
        super().__init__()
        self.lstm, self.attn = nn.LSTM(4, 1, batch_first=True), nn.Linear(1, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return (torch.softmax(self.attn(out), dim=1) * out).sum(1)


class ContextPerScore(_Attended):
    """bmm of (B, H, T) weights: one context per score, (B, H, H), where lstmrt takes one score per step."""

    def __init__(self):
        super().__init__(scores=8)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(self.attn(out), dim=1)
        return torch.bmm(w.transpose(1, 2), out).squeeze(1)


@pytest.mark.parametrize(
    "cls, words",
    [
        (TooManyScores, r"weighs 1 feature\(s\) of the output of layer 0 with 3 scores per step"),
        (ContextPerScore, r"takes one score per step, but its scores have 8 features"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
@pytest.mark.parametrize("how", ["live", "trace"])
def test_scores_that_are_neither_one_per_step_nor_one_per_feature_are_refused(cls, words, how, tmp_path):
    with pytest.raises(lstmrt.ArchitectureError, match=rf"the attention pool \(by forward\(\) of .*\) {words}"):
        load_as(build(cls), how, torch.randn(2, 5, 4), tmp_path)


class TimeFirstAttentionBlock(WithAttentionBlock):
    """The same attention module after an LSTM without batch_first: its dim 1 is then the batch axis."""

    def __init__(self):
        super().__init__(batch_first=False)


@pytest.mark.parametrize("how", ["live", "trace"])
def test_an_attention_module_after_a_time_first_lstm_is_refused(how, tmp_path):
    words = r"normalizes over dimension 1, the time axis of batch_first data, but module 'lstm' before it is not"
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        load_as(build(TimeFirstAttentionBlock), how, torch.randn(5, 2, 4), tmp_path)


# -- a state dict records no forward(): "attention(<module>)" in layers= says where the values are -----------------
@pytest.mark.parametrize(
    "cls, layers",
    [
        (SumOfProduct, ["lstm", "attn", "attention(lstm)", "fc"]),
        (TanhScorer, ["lstm", "attn.0", "tanh", "attn.2", "attention(lstm)", "fc", "log_softmax"]),
        (AdditiveScorer, ["gru", "W", "tanh", "v", "attention(gru)", "fc1", "relu", "fc2"]),
        (PerFeature, ["lstm", "attn", "attention(lstm)", "fc"]),
        (InputValues, ["lstm", "attn", "attention(input)", "fc"]),
        (SlicedValues, ["lstm", "attn", "attention(lstm[2:6])", "fc"]),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_a_state_dict_takes_attention_in_layers(cls, layers, tmp_path, rng):
    net = build(cls)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    model = lstmrt.load(tmp_path / "sd.pt", layers=layers)
    X = rng.standard_normal((3, 7, 4)).astype(np.float32)
    assert_close(model.predict(X), torch_output(net, cls, X))


def test_a_whole_module_file_takes_attention_in_layers(tmp_path, rng):
    """torch.save(model): a module tree without forward() code."""
    net = build(AdditiveScorer)
    torch.save(net, tmp_path / "m.pt")
    X = rng.standard_normal((2, 6, 4)).astype(np.float32)
    model = lstmrt.load(tmp_path / "m.pt", layers=["gru", "W", "Tanh", "v", "attention(gru)", "fc1", "ReLU", "fc2"])
    assert_close(model.predict(X), torch_output(net, AdditiveScorer, X))


@pytest.mark.parametrize(
    "cls, layers, words",
    [
        (
            SumOfProduct,
            ["attention(lstm)", "lstm", "attn", "fc"],
            r"'attention\(lstm\)' attends to the output of 'lstm'",
        ),
        (
            SumOfProduct,
            ["lstm", "attn", "attention(lstm)", "attention(lstm)", "fc"],
            r"the attention pool over time is taken \('attention\(lstm\)' in layers=\) after the attention pool",
        ),
        (
            SumOfProduct,
            ["lstm", "attn", "attention(lstm", "fc"],
            r"an attention pool over time .*'attention\(<module>\)'",
        ),
        (TooManyScores, ["lstm", "attn", "attention(lstm)"], r"weighs 1 feature\(s\) of the output of layer 0 with 3"),
    ],
    ids=["before", "twice", "misspelt", "wrong-scores"],
)
def test_attention_in_the_wrong_place_in_layers_is_refused(cls, layers, words, tmp_path):
    torch.save(build(cls).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        lstmrt.load(tmp_path / "sd.pt", layers=layers)


class MultiHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        attended, _ = self.mha(out, out, out)
        return self.fc(attended[:, -1])


@pytest.mark.parametrize("how", ["live", "script"])  # torch's own trace of it fails its sanity checks
def test_multi_head_attention_is_refused_naming_it(how, tmp_path):
    """It said "mha is called with more than its input and a zero initial state", as for a recurrent module."""
    with pytest.raises(lstmrt.LoadError, match=r"mha \(MultiheadAttention\) is called with inputs besides the data"):
        load_as(MultiHead().eval(), how, torch.zeros(2, 5, 4), tmp_path)
