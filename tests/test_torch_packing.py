"""Packed sequences in forward(): `pack_padded_sequence(x, lengths, ...)` into the recurrent modules and
`pad_packed_sequence` out of them, forward(x, lengths), the usual way torch code trains on sequences of several
lengths. It was refused, asking for layers=; it is read as the same chain, the lengths given to
`predict(X, lengths=...)`, which runs each sequence over its own steps as packing does. Built in real torch, read
live and from torch.jit.script files, compared with torch called with the same lengths."""

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch_forms import load_as, perturb

import lstmrt


class TextClassifier(nn.Module):
    """Token ids, a bidirectional LSTM over the packed batch, both directions' final states to a head."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 4)
        self.lstm = nn.LSTM(4, 6, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(12, 3)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.emb(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        return self.fc(torch.cat((h[-2], h[-1]), dim=1))


class Tagger(nn.Module):
    """Stacked packed modules (an LSTM into a GRU), padded back to the input's length, a head on every step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, num_layers=2, batch_first=True)
        self.gru = nn.GRU(6, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = self.gru(out)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return torch.tanh(self.fc(out))


class TimeFirst(nn.Module):
    """(T, B, F) input, sorted lengths, a GRU's last layer's final state, as older tutorials write it."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 5, num_layers=2)
        self.fc = nn.Linear(5, 1)

    def forward(self, x, lengths):
        _, h_n = self.gru(pack_padded_sequence(x, lengths))
        return torch.sigmoid(self.fc(h_n[-1]))


class TimeFirstPadded(nn.Module):
    """Padded back time first and run on by an LSTM that is not batch_first (it reads the padding too, past the
    steps compared)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 5)
        self.lstm = nn.LSTM(5, 4)

    def forward(self, x, lengths):
        out, _ = pad_packed_sequence(self.gru(pack_padded_sequence(x, lengths))[0])
        return self.lstm(out)[0]


LENGTHS = np.array([7, 3, 5])


def build(cls):
    torch.manual_seed(len(cls.__name__))
    net = perturb(cls()).eval()
    x = torch.randint(0, 20, (3, 7)) if cls is TextClassifier else torch.randn(3, 7, 3)
    return net, x


def run(net, x, lengths):
    """torch's output for batch-first `x`; TimeFirst takes it time first, with its lengths sorted."""
    with torch.no_grad():
        if isinstance(net, (TimeFirst, TimeFirstPadded)):
            order = np.argsort(-lengths, kind="stable")
            out = net(x[order].transpose(0, 1), torch.tensor(lengths[order])).numpy()
            out = out.transpose(1, 0, 2) if out.ndim == 3 else out
            return out[np.argsort(order)]
        return net(x, torch.tensor(lengths)).numpy()


@pytest.mark.parametrize("how", ["live", "script"])
@pytest.mark.parametrize("cls", [TextClassifier, Tagger, TimeFirst, TimeFirstPadded], ids=lambda c: c.__name__)
def test_predict_with_lengths_matches_torch(tmp_path, cls, how):
    net, x = build(cls)
    model = load_as(net, how, None, tmp_path)
    got, want = model.predict(x.numpy(), lengths=LENGTHS), run(net, x, LENGTHS)
    if model.return_sequences:  # torch's head sees padding zeros past a length, where lstmrt's outputs are 0
        for b, n in enumerate(LENGTHS):
            assert_close(got[b, :n], want[b, :n])
            assert not got[b, n:].any()
    else:
        assert_close(got, want)
    full = np.full(3, x.shape[1])
    assert_close(model.predict(x.numpy()), run(net, x, full))  # no lengths: every sequence whole


def test_each_sequence_alone_matches_its_packed_run(tmp_path):
    net, x = build(TextClassifier)
    model = load_as(net, "script", None, tmp_path)
    for b, n in enumerate(LENGTHS):
        assert_close(model.predict(x[b, :n].numpy()), run(net, x[b : b + 1, :n], np.array([n]))[0])


class LastPaddedStep(TextClassifier):
    def forward(self, x, lengths):
        out, _ = self.lstm(pack_padded_sequence(self.emb(x), lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True)
        return self.fc(out[:, -1])


class MeanOfPadded(TextClassifier):
    def forward(self, x, lengths):
        out, _ = self.lstm(pack_padded_sequence(self.emb(x), lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True)
        return self.fc(out.mean(1))


class PaddedWithOnes(TextClassifier):
    def forward(self, x, lengths):
        out, _ = self.lstm(pack_padded_sequence(self.emb(x), lengths, batch_first=True, enforce_sorted=False))
        return pad_packed_sequence(out, batch_first=True, padding_value=1.0)[0]


class LengthsFromTheData(TextClassifier):
    def forward(self, x, lengths):
        counted = torch.full_like(lengths, 7)
        out, _ = self.lstm(pack_padded_sequence(self.emb(x), counted, batch_first=True, enforce_sorted=False))
        return pad_packed_sequence(out, batch_first=True)[0]


class PackedIntoALinear(TextClassifier):
    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.emb(x), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return torch.tanh(out.data)


REFUSED = {
    LastPaddedStep: r"index -1 on dimension 1 of a tensor pad_packed_sequence made: torch reads its zeros",
    MeanOfPadded: r"torch.mean of a tensor pad_packed_sequence made",
    PaddedWithOnes: r"pads with 1.0: lstmrt's outputs past a sequence's length are 0",
    LengthsFromTheData: r"packs with lengths that are not an input of forward\(\)",
    PackedIntoALinear: r"indexing `out\[0\]`.* \(this forward\(\) packs padded sequences: lstmrt follows",
}


@pytest.mark.parametrize("cls", list(REFUSED), ids=lambda c: c.__name__)
def test_refused_with_the_reason(tmp_path, cls):
    with pytest.raises(lstmrt.LoadError, match=REFUSED[cls]):
        load_as(cls().eval(), "script", None, tmp_path)
