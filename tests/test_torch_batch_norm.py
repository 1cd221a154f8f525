"""nn.BatchNorm1d in a classifier's head, after forward() takes the last step or pools over time: on (B, F) torch
normalizes each feature with its running statistics (eval mode), a per-feature Affine in lstmrt. Built in real
torch with trained-looking statistics and read as the live module, its torch.jit.script and torch.jit.trace files,
and a torch.save(model) file with layers=. On a sequence (B, T, F) torch would normalize dim 1, the time axis:
refused, as are batch statistics and a state dict (which does not record epsilon)."""

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn
from torch_forms import load_as, run_torch

import lstmrt


def _trained(bn: nn.BatchNorm1d) -> None:
    """Statistics and affine parameters away from their initial 0/1, as training leaves them."""
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.3, 3.0)
        if bn.affine:
            bn.weight.normal_()
            bn.bias.normal_()


class LastStepNorm(nn.Module):
    def __init__(self, eps=1e-5, affine=True):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.bn = nn.BatchNorm1d(8, eps=eps, affine=affine)
        self.fc = nn.Linear(8, 2)
        _trained(self.bn)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(torch.relu(self.bn(out[:, -1, :])))


class PooledNorm(nn.Module):
    """A GRU, the mean over time, a head in nn.Sequential with the norm between its layers."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 6, batch_first=True)
        self.head = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5, eps=1e-3), nn.ReLU(), nn.Linear(5, 1))
        _trained(self.head[1])

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out.mean(1))


MODELS = [LastStepNorm, lambda: LastStepNorm(eps=0.1, affine=False), PooledNorm]


@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("make", MODELS, ids=["last-step", "eps-0.1-no-affine", "pooled-sequential"])
def test_predict_returns_what_torch_returns(make, how, tmp_path, rng):
    torch.manual_seed(31)
    net = make().eval()
    X = rng.standard_normal((5, 7, 3)).astype(np.float32)
    model = load_as(net, how, torch.from_numpy(X), tmp_path)
    assert any(isinstance(spec, lstmrt.Affine) for spec in model.layers)
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


def test_a_stream_gives_what_torch_returns_for_the_sequence_so_far(rng):
    torch.manual_seed(32)
    net = LastStepNorm().eval()
    stream = lstmrt.load(net).stream(batch=2)
    X = rng.standard_normal((2, 5, 3)).astype(np.float32)
    for t in range(5):
        assert_close(stream.step(X[:, t]), run_torch(net, torch.from_numpy(X[:, : t + 1].copy())), what=f"step {t}")


def test_a_whole_module_file_takes_its_order_from_layers(tmp_path, rng):
    torch.manual_seed(33)
    net = LastStepNorm(eps=1e-2).eval()
    torch.save(net, tmp_path / "whole.pt")
    model = lstmrt.load(tmp_path / "whole.pt", layers=["lstm", "last_step", "bn", "relu", "fc"])
    X = rng.standard_normal((3, 4, 3)).astype(np.float32)
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


class OnTheSequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.bn = nn.LSTM(3, 8, batch_first=True), nn.BatchNorm1d(5)  # 5 = T: torch accepts it

    def forward(self, x):
        return self.bn(self.lstm(x)[0])


class BatchStatistics(LastStepNorm):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(8, track_running_stats=False)


@pytest.mark.parametrize(
    "make,how,words",
    [
        (OnTheSequence, "live", r"'bn' \(nn.BatchNorm1d\) is applied to a sequence: on \(B, T, F\) torch normalizes"),
        (OnTheSequence, "trace", r"is applied to a sequence"),
        (BatchStatistics, "live", r"has no running statistics \(track_running_stats=False\)"),
        (BatchStatistics, "trace", r"has no running statistics"),
    ],
)
def test_what_is_no_per_feature_layer_is_refused(make, how, words, tmp_path, rng):
    net = make().eval()
    X = torch.from_numpy(rng.standard_normal((2, 5, 3)).astype(np.float32))
    with pytest.raises(lstmrt.ArchitectureError, match=words):
        load_as(net, how, X, tmp_path)


def test_a_trace_in_training_mode_is_refused(tmp_path):
    net = LastStepNorm().train()  # torch then normalizes each batch by its own statistics
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on tracing (deprecation, training mode)
        torch.jit.trace(net, torch.zeros(4, 5, 3), check_trace=False).save(str(tmp_path / "m.pt"))
    with pytest.raises(lstmrt.ArchitectureError, match=r"was traced in training mode.*after model.eval\(\)"):
        lstmrt.load(tmp_path / "m.pt")


def test_a_state_dict_says_what_it_lacks(tmp_path):
    torch.save(LastStepNorm().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(lstmrt.ArchitectureError, match=r"'bn' .* is an nn.BatchNorm1d, whose epsilon a state dict"):
        lstmrt.load(tmp_path / "sd.pt", layers=["lstm", "last_step", "bn", "relu", "fc"])


def test_from_torch_refuses_it_on_a_sequence():
    with pytest.raises(ValueError, match=r"nn.BatchNorm1d on a sequence \(B, T, F\) normalizes dim 1"):
        lstmrt.from_torch(nn.Sequential(nn.LSTM(3, 4), nn.BatchNorm1d(4)))
