"""Stream.step of a model with one input feature (a sensor filter: one sample in, one estimate out) takes the sample
as a number, as a token model takes an id: a Python or NumPy float, a 0-d array, or (N,) for N streams. Each steps
exactly as the float32 (1,) / (N, 1) array does, a float on the fast path (no allocation with out=), and the
outputs are the torch module's."""

import copy

import numpy as np
import pytest
import torch
from conftest import assert_close, bytes_allocated_beyond_a_no_op

import lstmrt

HIDDEN = 17
STEPS = 12


class Filter(torch.nn.Module):
    """The sensor filter of the README's use case: an LSTM over one feature and a linear head."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(1, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, 1)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y)


@pytest.fixture
def net(rng):
    torch.manual_seed(int(rng.integers(2**31)))
    return Filter().eval()


def torch_outputs(net, X):
    """X (B, T) samples -> (B, T) outputs of the module in float64 (its weights are float32 values)."""
    with torch.no_grad():
        return copy.deepcopy(net).double()(torch.from_numpy(X[..., None].astype(np.float64)))[..., 0].numpy()


SAMPLE_FORMS = {
    "float": float,
    "np.float64": np.float64,
    "np.float32": np.float32,
    "np.float16": np.float16,
    "0-d float32": lambda v: np.array(v, np.float32),
    "0-d float64": lambda v: np.array(v, np.float64),
}


@pytest.mark.parametrize("form", SAMPLE_FORMS)
def test_one_sample_steps_as_a_number(net, rng, form):
    X = rng.standard_normal((1, STEPS)).astype(np.float16).astype(np.float32)  # exact in every form
    model = lstmrt.load(net)
    s32 = model.stream()
    want = np.stack([s32.step(np.array([v], np.float32)).copy() for v in X[0]])
    s = model.stream()
    got = np.stack([s.step(SAMPLE_FORMS[form](v)).copy() for v in X[0]])
    assert np.array_equal(got, want), "a number steps as its float32 (1,) array"
    assert_close(got[:, 0], torch_outputs(net, X)[0])


def test_n_streams_step_one_sample_each_as_n(net, rng):
    X = rng.standard_normal((3, STEPS)).astype(np.float32)
    model = lstmrt.load(net)
    s = model.stream(batch=3)
    got = np.stack([s.step(X[:, t]).copy() for t in range(STEPS)], axis=1)  # (3,), not (3, 1)
    assert_close(got[..., 0], torch_outputs(net, X))


def test_run_takes_samples_without_the_feature_axis(net, rng):
    """As step: a stream's run of a one-feature model takes (T,) samples, or (N, T) for N streams."""
    X = rng.standard_normal((3, STEPS)).astype(np.float32)
    model = lstmrt.load(net)
    assert_close(model.stream().run(X[0])[:, 0], torch_outputs(net, X[:1])[0])
    assert_close(model.stream(batch=3).run(X)[..., 0], torch_outputs(net, X))
    with pytest.raises(ValueError, match=r"X has shape \(3, 12\), expected \(T, 1\)"):
        model.stream().run(X)  # one stream: (N, T) is not its shape


def test_float_sample_step_without_allocating(net):
    """With out= given, stepping a Python float allocates no more than a call of a function that does nothing:
    the sample is written into a float the stream owns, not converted to a new array by the binding."""

    s = lstmrt.load(net).stream()
    out = np.empty(1, np.float32)
    for x in (0.5, np.float64(0.5), np.float32(0.5)):
        assert bytes_allocated_beyond_a_no_op(s.step, x, out) <= 0, type(x).__name__


@pytest.mark.parametrize(
    "x,exc,words",
    [
        (
            1,
            TypeError,
            "x has dtype int64; expected floating-point",
        ),  # integers stay refused for float models (README, Inputs)
        (True, TypeError, "got bool"),
        (np.array(1), TypeError, "dtype int64; expected floating-point"),
        (np.zeros((1, 1), np.float32), ValueError, r"x has shape \(1, 1\), expected \(1,\)"),
    ],
)
def test_not_a_sample_refused(net, x, exc, words):
    s = lstmrt.load(net).stream()
    with pytest.raises(exc, match=words):
        s.step(x)


def test_a_number_is_not_a_sample_of_several_features(rng):
    lstm = torch.nn.LSTM(3, HIDDEN, batch_first=True)
    s = lstmrt.load(lstm).stream()
    with pytest.raises(ValueError, match=r"x has shape \(\), expected \(3,\)"):
        s.step(0.5)
    with pytest.raises(ValueError, match=r"x has shape \(2,\), expected \(2, 3\)"):
        lstmrt.load(lstm).stream(batch=2).step(np.zeros(2, np.float32))
