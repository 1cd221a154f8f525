"""Everyday forward() forms a probe found refused on the live / script / trace paths: sizes unpacked from the input
(`B, T, _ = x.shape`), an initial state kept as a buffer of zeros (`register_buffer("h0", torch.zeros(...))`,
expanded to the batch), and in-place activations (`F.relu(y, inplace=True)` traced as torch.relu_, `y.tanh_()`).
Each is checked against torch; a buffer that is not zeros, and an in-place change another name reads, stay refused."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from torch import nn
from torch_forms import load_as, run_torch

import lstmrt

B, T, I, H = 2, 5, 3, 6  # noqa: E741


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(I, H, batch_first=True)
        self.fc = nn.Linear(H, 2)


class ShapeUnpacked(Base):
    def forward(self, x):
        batch, _, _ = x.shape
        h0 = torch.zeros(1, batch, 6)  # a literal: TorchScript reads no module-level names
        out, _ = self.lstm(x, (h0, torch.zeros(1, batch, 6)))
        return self.fc(out[:, -1])


class ZeroBuffer(Base):
    def __init__(self, value=0.0):
        super().__init__()
        self.register_buffer("h0", torch.full((1, 1, H), value))

    def forward(self, x):
        h0 = self.h0.expand(1, x.size(0), 6).contiguous()
        out, _ = self.lstm(x, (h0, h0))
        return self.fc(out[:, -1])


class NonZeroBuffer(ZeroBuffer):
    def __init__(self):
        super().__init__(0.5)


class ReluInPlace(Base):
    def forward(self, x):
        return F.relu(self.fc(self.lstm(x)[0]), inplace=True)


class TanhInPlace(Base):
    def forward(self, x):
        y = self.fc(self.lstm(x)[0])
        return y.tanh_()


class SigmoidInPlaceReadAgain(Base):
    def forward(self, x):
        y = self.fc(self.lstm(x)[0])
        z = y.sigmoid_()
        return y + z  # both names hold the activated tensor: lstmrt follows only the result


FORMS = [ShapeUnpacked, ZeroBuffer, ReluInPlace, TanhInPlace]


@pytest.mark.parametrize("how", ["live", "script", "trace"])
@pytest.mark.parametrize("cls", FORMS, ids=lambda c: c.__name__)
def test_forms_match_torch(cls, how, tmp_path):
    torch.manual_seed(4)
    net = cls().eval()
    X = torch.from_numpy((2 * np.random.default_rng(3).standard_normal((B, T, I))).astype(np.float32))
    model = load_as(net, how, X, tmp_path)
    assert_close(model.predict(X.numpy()), run_torch(net, X), what=f"{cls.__name__} {how}")


@pytest.mark.parametrize("how", ["live", "trace"])
def test_a_buffer_that_is_not_zeros_is_refused(how, tmp_path):
    with pytest.raises(lstmrt.ArchitectureError, match=r"holds parameters of its own \(h0\)"):
        load_as(NonZeroBuffer().eval(), how, torch.zeros(B, T, I), tmp_path)


def test_an_in_place_change_read_under_two_names(tmp_path):
    """The scripted code reads y after y.sigmoid_() changed it: refused, as for the other in-place activations.
    The trace names one tensor (torch.add(y, y) of the activated y), which lstmrt then follows."""
    torch.manual_seed(4)
    net = SigmoidInPlaceReadAgain().eval()
    with pytest.raises(lstmrt.ArchitectureError, match=r"a tensor that sigmoid changed in place"):
        load_as(net, "live", torch.zeros(B, T, I), tmp_path)
    X = torch.from_numpy(np.random.default_rng(5).standard_normal((B, T, I)).astype(np.float32))
    assert_close(load_as(net, "trace", X, tmp_path).predict(X.numpy()), run_torch(net, X))
