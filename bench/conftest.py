"""Shared fixtures of the pytest-benchmark suites (run with `python -m pytest bench/`).

Every benchmark parametrized on `shape` runs once per (input_size, hidden_size) of the comparison table, and
checks its own result against the float64 NumPy reference after timing (not timed)."""

import numpy as np
import pytest

from lstmrt import bench_spec as bc

SHAPES = bc.DEFAULT_SIZES
SEED = 0
ATOL = bc.CHECK_ATOL


def pytest_generate_tests(metafunc):
    if "shape" in metafunc.fixturenames:
        metafunc.parametrize("shape", SHAPES, ids=[f"I{i}-H{h}-seed{SEED}" for i, h in SHAPES])


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Every implementation on one thread, as in the comparison script."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def weights(shape):
    return bc.make_weights(*shape, seed=SEED)


@pytest.fixture
def lstmrt_model(weights):
    import lstmrt

    w = weights
    return lstmrt.Model([lstmrt.LSTM(w.w_ih, w.w_hh, w.b_ih, w.b_hh)])


@pytest.fixture
def torch_modules(weights):
    """nn.LSTM and the raw parameters (for torch.lstm_cell) holding the same weights."""
    torch = pytest.importorskip("torch")
    w = weights
    lstm = torch.nn.LSTM(w.input_size, w.hidden_size, batch_first=True).eval()
    with torch.no_grad():
        for name, value in (
            ("weight_ih_l0", w.w_ih),
            ("weight_hh_l0", w.w_hh),
            ("bias_ih_l0", w.b_ih),
            ("bias_hh_l0", w.b_hh),
        ):
            getattr(lstm, name).copy_(torch.from_numpy(value))
    params = tuple(torch.from_numpy(a) for a in (w.w_ih, w.w_hh, w.b_ih, w.b_hh))
    return torch, lstm, params


@pytest.fixture
def rng(shape):
    return np.random.default_rng([SEED, *shape])


class NumpyLSTM:
    """The baseline: a straightforward float32 NumPy LSTM, state carried, x (I,) or (B, I) per step."""

    def __init__(self, w: bc.Weights, batch=None):
        self.w_ih_t = np.ascontiguousarray(w.w_ih.T)
        self.w_hh_t = np.ascontiguousarray(w.w_hh.T)
        self.b = w.b_ih + w.b_hh
        self.H = w.hidden_size
        shape = (self.H,) if batch is None else (batch, self.H)
        self.h, self.c = np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def step(self, x):
        H = self.H
        z = x @ self.w_ih_t + self.h @ self.w_hh_t + self.b
        i = 1.0 / (1.0 + np.exp(-z[..., :H]))
        f = 1.0 / (1.0 + np.exp(-z[..., H : 2 * H]))
        g = np.tanh(z[..., 2 * H : 3 * H])
        o = 1.0 / (1.0 + np.exp(-z[..., 3 * H :]))
        self.c = f * self.c + i * g
        self.h = o * np.tanh(self.c)
        return self.h

    def sequence(self, X):
        """X (T, I) or (B, T, I) from the zero state; the input projection of all steps in one GEMM."""
        H = self.H
        xw = X @ self.w_ih_t + self.b
        h = np.zeros(X.shape[:-2] + (H,), np.float32)
        c = np.zeros_like(h)
        out = np.empty(X.shape[:-1] + (H,), np.float32)
        for t in range(X.shape[-2]):
            z = xw[..., t, :] + h @ self.w_hh_t
            i = 1.0 / (1.0 + np.exp(-z[..., :H]))
            f = 1.0 / (1.0 + np.exp(-z[..., H : 2 * H]))
            g = np.tanh(z[..., 2 * H : 3 * H])
            o = 1.0 / (1.0 + np.exp(-z[..., 3 * H :]))
            c = f * c + i * g
            h = o * np.tanh(c)
            out[..., t, :] = h
        return out


@pytest.fixture
def numpy_lstm():
    return NumpyLSTM


def assert_close(actual, expected, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = float(np.max(np.abs(actual - expected)))
    assert err <= ATOL, f"{what}: max abs error {err:.3g} > {ATOL:g}"


@pytest.fixture
def check():
    return assert_close
