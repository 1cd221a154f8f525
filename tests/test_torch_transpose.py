"""Batch and time swapped in forward(): `x.permute(1, 0, 2)` / `x.transpose(0, 1)` into a recurrent module that is
not batch_first, and back out of it, as older tutorials and sequence-to-one models write them. They were refused
("call torch.permute") while their ONNX exports loaded. lstmrt's data is batch-first wherever torch's is not, so a
swap computes nothing; what it changes is which axis is time for the indexing, pooling and attention after it, and
whether a recurrent module reads the data along its own layout: a batch_first module feeding one that is not (torch
then runs the second over the batch axis) is refused, where it used to load and give other numbers. Each form is
built in real torch and read three ways (live, script, trace); predict, streams and lengths= against torch."""

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn
from torch_forms import load_as, perturb, run_torch

import lstmrt


class PermuteIn(nn.Module):
    """The classic: batch-first input permuted for a time-first LSTM, its last step out[-1]."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        out, _ = self.lstm(x.permute(1, 0, 2))
        return self.fc(out[-1])


class SwapBack(nn.Module):
    """Swapped in and back out, then indexed batch-first; a stacked GRU."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 5, num_layers=2)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.gru(x.transpose(0, 1))
        out = out.transpose(1, 0)
        return self.fc(out[:, -1, :])


class SequenceOut(nn.Module):
    """Every step's output, swapped back to (batch, time, features); a skip of the input added batch-first."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 3)
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        out, _ = self.lstm(torch.transpose(x, 0, 1))
        return self.fc(out.transpose(0, 1)) + x


class PooledTimeFirst(nn.Module):
    """Pooled over dim 0, the time axis of the time-first data."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        out, _ = self.lstm(x.permute(1, 0, 2).contiguous())
        return self.fc(out.mean(0))


class AttentionAfterSwap(nn.Module):
    """Swapped back batch-first before attention over dim 1."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6)
        self.attn = nn.Linear(6, 1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        out, _ = self.lstm(x.permute(1, 0, 2))
        out = out.permute(1, 0, 2)
        w = torch.softmax(self.attn(out), dim=1)
        return self.fc(torch.sum(w * out, dim=1))


MODELS = [PermuteIn, SwapBack, SequenceOut, PooledTimeFirst, AttentionAfterSwap]


def build(cls, batch=3, steps=9):
    torch.manual_seed(len(cls.__name__))
    return perturb(cls()).eval(), torch.randn(batch, steps, 3)


@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_predict_matches_torch(tmp_path, cls, how):
    net, x = build(cls)
    model = load_as(net, how, x, tmp_path)
    for batch, steps in ((3, 9), (2, 5)):  # a batch and length other than the trace's
        assert_close(model.predict(x[:batch, :steps].numpy()), run_torch(net, x[:batch, :steps]))


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_stream_matches_torch_on_every_prefix(tmp_path, cls):
    net, x = build(cls, steps=6)
    model = load_as(net, "script", x, tmp_path)
    stream = model.stream(batch=3)
    for t in range(6):
        got = stream.step(x[:, t].numpy())
        want = run_torch(net, x[:, : t + 1])
        assert_close(got, want[:, -1] if model.return_sequences else want)


@pytest.mark.parametrize("cls", [PermuteIn, PooledTimeFirst], ids=lambda c: c.__name__)
def test_lengths_match_torch_on_unpadded_sequences(tmp_path, cls):
    net, x = build(cls)
    model = load_as(net, "live", x, tmp_path)
    lengths = np.array([9, 4, 1])
    got = model.predict(x.numpy(), lengths=lengths)
    for b, n in enumerate(lengths):
        assert_close(got[b], run_torch(net, x[b : b + 1, :n])[0])


class MixedLayouts(nn.Module):
    """A batch_first LSTM feeding one that is not: torch runs the second over the batch axis."""

    def __init__(self):
        super().__init__()
        self.a = nn.LSTM(3, 4, batch_first=True)
        self.b = nn.LSTM(4, 5)

    def forward(self, x):
        return self.b(self.a(x)[0])[0]


class LastStepOfTheWrongAxis(nn.Module):
    """Swapped back batch-first, then indexed as if still time-first."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4)

    def forward(self, x):
        out, _ = self.lstm(x.transpose(0, 1))
        return out.transpose(0, 1)[-1]


class SkipAcrossTheSwap(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 3)

    def forward(self, x):
        return self.lstm(x.transpose(0, 1))[0] + x


class ChannelsFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0].permute(0, 2, 1)


class SwapAfterTheLastStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0][:, -1].transpose(0, 1)


class WeightsAcrossTheSwap(nn.Module):
    """Weights over dim 1 of the batch-first scores, multiplied by the time-first output."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4)
        self.attn = nn.Linear(4, 1)

    def forward(self, x):
        out, _ = self.lstm(x.transpose(0, 1))
        w = torch.softmax(self.attn(out.transpose(0, 1)), dim=1)
        return torch.sum(w * out, dim=1)


REFUSED = {
    MixedLayouts: r"'b' is time-first but gets the sequence as \(batch, time, features\): torch runs it over the batch",
    LastStepOfTheWrongAxis: r"index -1 on dimension 0, which is not the last step",
    SkipAcrossTheSwap: r"adds terms whose batch and time axes are swapped",
    ChannelsFirst: r"torch.permute to the axis order \[0, 2, 1\]: lstmrt follows swapping batch and time",
    WeightsAcrossTheSwap: r"weighs values whose batch and time axes are swapped against the scores'",
    SwapAfterTheLastStep: r"torch.transpose of \(batch, features\) data after the last step was taken",
}


@pytest.mark.parametrize("how", ["live", "trace"])
@pytest.mark.parametrize("cls", list(REFUSED), ids=lambda c: c.__name__)
def test_refused_with_the_reason(tmp_path, cls, how):
    torch.manual_seed(0)
    example = torch.randn(3, 3, 3)  # batch = time: torch runs every one of these
    with pytest.raises(lstmrt.LoadError, match=REFUSED[cls]):
        load_as(cls().eval(), how, example, tmp_path)
