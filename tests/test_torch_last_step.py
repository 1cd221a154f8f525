"""Models whose forward() builds a zero initial state and returns each sequence's last step, the way PyTorch's
tutorials and most classifiers and forecasters write them: `h0 = torch.zeros(...)`, `fc(out[:, -1, :])`,
`fc(h_n[-1])`, `torch.cat((h_n[-2], h_n[-1]), dim=1)`. They were refused ("cannot follow ... torch.size") and
needed layers=, after which predict gave every step. Each is built in real torch and read three ways: the live
module, its torch.jit.script file and its torch.jit.trace file; predict returns torch's (B, O), and a stream
gives at every step what torch returns for the sequence so far."""

import warnings
from typing import Optional

import numpy as np
import pytest
import torch
from torch_forms import load_as, run_torch
from conftest import assert_close
from torch import nn

import lstmrt
from lstmrt.loaders.load import load_with_info


class Tutorial(nn.Module):
    """The PyTorch tutorial forecaster, as written there."""

    def __init__(self, input_size=4, hidden_size=12, num_layers=2, output_size=1):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).to(x.device)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).to(x.device)
        out, _ = self.lstm(x, (h0, c0))
        out = self.fc(out[:, -1, :])
        return out


class DetachedState(nn.Module):
    """The other well-known tutorial: requires_grad_() zeros, detached when passed; a 3-class head."""

    def __init__(self):
        super().__init__()
        self.hidden_dim, self.layer_dim = 10, 2
        self.lstm = nn.LSTM(4, 10, 2, batch_first=True)
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        h0 = torch.zeros(self.layer_dim, x.size(0), self.hidden_dim).requires_grad_()
        c0 = torch.zeros(self.layer_dim, x.size(0), self.hidden_dim).requires_grad_()
        out, (hn, cn) = self.lstm(x, (h0.detach(), c0.detach()))
        return self.fc(out[:, -1, :])


class FinalHidden(nn.Module):
    """Classifier on the last layer's final hidden state, projected LSTM (h_n is the projected output)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 12, num_layers=2, batch_first=True, proj_size=6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        _, (h_n, c_n) = self.lstm(x)
        return torch.softmax(self.fc(h_n[-1]), dim=-1)


class BothDirections(nn.Module):
    """Bidirectional: both directions' final states, forward first (Keras' Bidirectional(return_sequences=False))."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.fc(torch.cat((h_n[-2], h_n[-1]), dim=1))


class BidirectionalOutputLastStep(nn.Module):
    """out[:, -1, :] of a bidirectional GRU stack: the forward direction's last step and the backward direction's
    FIRST step (its output there, after one step), not cat(h_n[-2], h_n[-1]); the BiLSTM classifiers of tutorials."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 6, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        out, _ = self.gru(x)
        return torch.tanh(self.fc(out[:, -1, :]))


class GruSqueeze(nn.Module):
    """GRU with a device-placed zero state sized by x.shape[0], h_n.squeeze(0), a sigmoid after the head."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 9, batch_first=True)
        self.fc = nn.Linear(9, 1)

    def forward(self, x):
        h0 = torch.zeros(1, x.shape[0], 9, device=x.device)
        _, h_n = self.gru(x, h0)
        return torch.sigmoid(self.fc(h_n.squeeze(0)))


class StepsFirst(nn.Module):
    """batch_first=False: out[-1] is the last step. lstmrt's input stays (B, T, I)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, 7, nonlinearity="relu")
        self.fc = nn.Linear(7, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[-1])


class InitHidden(nn.Module):
    """The zero state made by a method forward() calls; a relu between the last step and the head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def init_hidden(self, batch_size: int):
        return torch.zeros(1, batch_size, 8), torch.zeros(1, batch_size, 8)

    def forward(self, x):
        hidden = self.init_hidden(x.size(0))
        out, hidden = self.lstm(x, hidden)
        return self.fc(torch.relu(out[:, -1]))


class KeywordSpotter(nn.Module):
    """Token ids in: an Embedding, a GRU, the final state."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.gru = nn.GRU(6, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        _, h_n = self.gru(self.embed(ids))
        return self.fc(h_n[-1])


class OptionalState(nn.Module):
    """The BiLSTM classifier shape: an optional initial state made when absent (`if hidden is None`), sizes from
    attributes and the input (num_layers * 2, len(x)), x.new_zeros, x.to(self.device), h_n indexed through
    num_layers, and log_softmax over dim 1 of the (B, F) result."""

    def __init__(self):
        super().__init__()
        self.num_layers, self.device = 2, torch.device("cpu")
        self.lstm = nn.LSTM(4, 6, self.num_layers, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(12, 3)

    def forward(self, x, hidden: Optional[torch.Tensor] = None):
        x = x.to(self.device)
        if hidden is None:
            hidden = torch.zeros(self.num_layers * 2, len(x), 6)
        _, (h_n, _) = self.lstm(x, (hidden, x.new_zeros(self.num_layers * 2, x.size(0), 6)))
        last = torch.cat((h_n[self.num_layers * 2 - 2], h_n[-1]), dim=1)
        return torch.log_softmax(self.fc(last), dim=1)


class SoftmaxModuleHead(nn.Module):
    """nn.LogSoftmax(dim=1) after the last step: dim 1 of (B, F) is the feature axis. h_n[num_layers - 1]."""

    def __init__(self):
        super().__init__()
        self.num_layers = 2
        self.gru = nn.GRU(4, 7, self.num_layers, batch_first=True)
        self.fc, self.out = nn.Linear(7, 5), nn.LogSoftmax(dim=1)

    def forward(self, x):
        _, h_n = self.gru(x)
        return self.out(self.fc(h_n[self.num_layers - 1]))


MODELS = [
    Tutorial,
    DetachedState,
    FinalHidden,
    BothDirections,
    BidirectionalOutputLastStep,
    GruSqueeze,
    StepsFirst,
    InitHidden,
    KeywordSpotter,
    OptionalState,
    SoftmaxModuleHead,
]


def inputs(cls, rng, batch=3, steps=9):
    if cls is KeywordSpotter:
        return rng.integers(0, 20, size=(batch, steps)).astype(np.int64)
    return rng.standard_normal((batch, steps, 4)).astype(np.float32)


def torch_input(cls, X):
    t = torch.from_numpy(X)
    return t.transpose(0, 1).contiguous() if cls is StepsFirst else t


def torch_output(net, cls, X):
    return run_torch(net, torch_input(cls, X))


def loaded(net, cls, X, how, tmp_path):
    return load_as(net, how, torch_input(cls, X), tmp_path)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")  # torch's own note
@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_predict_returns_what_torch_returns(cls, how, tmp_path, rng):
    torch.manual_seed(3)
    net = cls().eval()
    X = inputs(cls, rng)
    model = loaded(net, cls, X, how, tmp_path)
    assert not model.return_sequences
    assert_close(model.predict(X), torch_output(net, cls, X))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize(
    "cls", [Tutorial, FinalHidden, GruSqueeze, StepsFirst, KeywordSpotter], ids=lambda c: c.__name__
)
def test_a_stream_gives_at_each_step_what_torch_returns_for_the_sequence_so_far(cls, rng):
    torch.manual_seed(4)
    net = cls().eval()
    X = inputs(cls, rng, batch=2, steps=6)
    stream = lstmrt.load(net).stream(batch=2)
    for t in range(X.shape[1]):
        assert_close(stream.step(X[:, t]), torch_output(net, cls, X[:, : t + 1].copy()), what=f"step {t}")


@pytest.mark.parametrize("how", ["live", "trace"])
def test_a_bidirectional_output_last_step_with_lengths_is_each_sequence_run_alone(how, tmp_path, rng):
    """predict(X, lengths=) of out[:, -1]: the output at each sequence's own last step, both directions run over
    that sequence only (torch on the unpadded sequence)."""
    torch.manual_seed(6)
    net = BidirectionalOutputLastStep().eval()
    X = inputs(BidirectionalOutputLastStep, rng, batch=3, steps=9)
    lengths = np.array([9, 4, 1])
    got = loaded(net, BidirectionalOutputLastStep, X, how, tmp_path).predict(X, lengths=lengths)
    for b, n in enumerate(lengths):
        assert_close(got[b], run_torch(net, torch.from_numpy(X[b : b + 1, :n].copy()))[0], what=f"sequence {b}")


def test_the_order_is_the_forward_code(rng):
    model, info = load_with_info(Tutorial().eval())
    assert info["order"] == "forward() code"
    assert [type(s).__name__ for s in model.layers] == ["LSTM", "LSTM", "Dense"]
    assert [s.return_sequences for s in model.layers[:2]] == [True, False]


# -- what is still refused, and why ------------------------------------------------------------------------------
class _Refused(nn.Module):
    def __init__(self, bidirectional=False, num_layers=1):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, num_layers=num_layers, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(16 if bidirectional else 8, 2)


class FirstLayerState(_Refused):
    def __init__(self):
        super().__init__(num_layers=2)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.fc(h_n[0])


class WholeFinalState(_Refused):
    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.fc(h_n)


class CellState(_Refused):
    def forward(self, x):
        _, (_, c_n) = self.lstm(x)
        return self.fc(c_n[-1])


class DirectionsSwapped(_Refused):
    def __init__(self):
        super().__init__(bidirectional=True)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.fc(torch.cat((h_n[-1], h_n[-2]), dim=1))


class BackwardOnly(_Refused):
    def __init__(self):
        super().__init__(bidirectional=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.fc(h_n[-1])


class NonZeroState(_Refused):
    def forward(self, x):
        h0 = torch.ones(1, x.size(0), 8)
        out, _ = self.lstm(x, (h0, h0))
        return self.fc(out[:, -1])


class RecurrentAfterLastStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.second = nn.GRU(4, 8, batch_first=True), nn.GRU(8, 8, batch_first=True)

    def forward(self, x):
        out, _ = self.first(x)
        y, _ = self.second(out[:, -1])  # torch reads a 2-D input as one unbatched sequence
        return y


@pytest.mark.parametrize(
    "cls, words",
    [
        (FirstLayerState, r"h_n\[0\] is the final state of layer 0 of 2"),
        (WholeFinalState, r"a final state of every layer and direction"),
        (CellState, r"c_n is the LSTM's cell state"),
        (DirectionsSwapped, r"concatenated backward direction first"),
        (BackwardOnly, r"one direction's final state of a bidirectional module"),
        (NonZeroState, r"called with more than its input and a zero initial state"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
@pytest.mark.parametrize("how", ["live", "trace"])
def test_what_lstmrt_cannot_compute_is_refused_with_the_reason(cls, words, how, tmp_path, rng):
    torch.manual_seed(5)
    net = cls().eval()
    X = inputs(cls, rng)
    with pytest.raises(lstmrt.ArchitectureError, match=rf"cannot follow {cls.__name__}.forward .*{words}.*layers="):
        loaded(net, cls, X, how, tmp_path)


def test_a_recurrent_module_after_the_last_step_is_refused(tmp_path, rng):
    net = RecurrentAfterLastStep().eval()
    with pytest.raises(lstmrt.ArchitectureError, match=r"'second' is recurrent but comes after .* last step"):
        lstmrt.load(net)


# -- a state dict records no forward(): "last_step" in layers= says it ------------------------------------------
@pytest.mark.parametrize(
    "cls, layers",
    [
        (Tutorial, ["lstm", "last_step", "fc"]),
        (BothDirections, ["lstm", "last_step", "fc"]),
        (GruSqueeze, ["gru", "last_step", "fc", "sigmoid"]),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_a_state_dict_takes_last_step_in_layers(cls, layers, tmp_path, rng):
    torch.manual_seed(6)
    net = cls().eval()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    X = inputs(cls, rng)
    model = lstmrt.load(tmp_path / "sd.pt", layers=layers)
    assert_close(model.predict(X), torch_output(net, cls, X))


def test_the_state_dict_warning_names_last_step(tmp_path):
    torch.save(Tutorial().state_dict(), tmp_path / "sd.pt")
    with pytest.warns(lstmrt.LayerOrderWarning, match=r"'last_step' where forward\(\) takes out\[:, -1\]"):
        lstmrt.load(tmp_path / "sd.pt")


@pytest.mark.parametrize(
    "layers, words",
    [
        (["last_step", "lstm", "fc"], r"last step is taken before any recurrent module \('last_step' in layers=\)"),
        (["lstm", "last_step", "fc", "last_step"], r"last step is taken twice"),
        (["lstm", "fc", "last_stop"], r"'last_stop' is neither a module .* nor 'last_step'"),
    ],
    ids=["first", "twice", "misspelt"],
)
def test_last_step_in_the_wrong_place_is_refused(layers, words, tmp_path):
    torch.save(Tutorial().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        lstmrt.load(tmp_path / "sd.pt", layers=layers)


def test_the_cli_takes_last_step_in_layers(tmp_path, rng, capsys):
    from lstmrt.cli import main

    torch.manual_seed(7)
    net = Tutorial().eval()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    X = inputs(Tutorial, rng, batch=1)[0]
    np.save(tmp_path / "x.npy", X)
    assert (
        main(
            [
                "run",
                str(tmp_path / "sd.pt"),
                str(tmp_path / "x.npy"),
                "-o",
                str(tmp_path / "y.npy"),
                "--layers",
                "lstm,last_step,fc",
            ]
        )
        == 0
    )
    # a stream: every step's output is the model's output for the sequence so far, the last one torch's
    assert_close(np.load(tmp_path / "y.npy")[-1], torch_output(net, Tutorial, X[None])[0])


class GivenState(nn.Module):
    """The char-RNN shape: the caller passes the state in. lstmrt's sequences start from zero, so this model is
    what lstmrt computes only when the state given is zero: refused (it loaded, and differed by 0.06)."""

    def __init__(self):
        super().__init__()
        self.gru, self.fc = nn.GRU(4, 6, batch_first=True), nn.Linear(6, 3)

    def forward(self, x, hidden):
        out, hidden = self.gru(x, hidden)
        return self.fc(out[:, -1]), hidden


@pytest.mark.parametrize("how", ["live", "script", "trace"])
def test_a_state_given_to_forward_is_refused(how, tmp_path, rng):
    net = GivenState().eval()
    X, h = torch.from_numpy(inputs(GivenState, rng)), torch.randn(1, 3, 6)
    if how == "live":
        source = net
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = torch.jit.script(net) if how == "script" else torch.jit.trace(net, (X, h))
        compiled.save(str(tmp_path / "m.pt"))
        source = tmp_path / "m.pt"
    words = r"gru starts from the state 'hidden', an input of forward\(\): lstmrt starts each sequence from a zero"
    if how == "trace":  # a trace names its inputs after the values it was given
        words = r"gru starts from the state '\w+', an input of forward\(\)"
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        lstmrt.load(source)
