"""pytest-benchmark suites: lstmrt against torch and a NumPy baseline, one group per shape.

    python -m pytest bench/ --benchmark-columns=median,ops --benchmark-group-by=group

Not collected by the default test run (testpaths = tests). Every benchmark first checks its result against the
float64 reference (lstmrt.bench_compare.reference_lstm), so a fast wrong kernel cannot pass."""

import numpy as np
import pytest

import lstmrt
from lstmrt.bench_compare import make_weights, reference_lstm

SIZES = [(8, 32), (16, 64), (32, 128), (64, 256), (128, 512)]
ATOL = 1e-4
SEQ_LEN = 1000


def _ids(sizes):
    return [f"I{i}-H{h}" for i, h in sizes]


def _model(w):
    return lstmrt.Model([lstmrt.LSTM(w.w_ih, w.w_hh, w.b_ih, w.b_hh)])


def _numpy_step(w):
    """A straightforward NumPy LSTM step (the baseline a user would write first)."""
    wih, whh, b = w.w_ih, w.w_hh, (w.b_ih + w.b_hh)
    H = whh.shape[1]

    def step(x, h, c):
        g = wih @ x + whh @ h + b
        i, f, gg, o = (1 / (1 + np.exp(-g[:H])), 1 / (1 + np.exp(-g[H:2 * H])), np.tanh(g[2 * H:3 * H]),
                       1 / (1 + np.exp(-g[3 * H:])))
        c = f * c + i * gg
        return o * np.tanh(c), c

    return step


def _inputs(input_size, steps, seed=1):
    return np.random.default_rng(seed).standard_normal((steps, input_size)).astype(np.float32)


@pytest.mark.parametrize("size", SIZES, ids=_ids(SIZES))
def test_step_lstmrt(benchmark, size):
    benchmark.group = f"step I={size[0]} H={size[1]}"
    w = make_weights(*size)
    X = _inputs(size[0], 16)
    s = _model(w).stream()
    out = np.empty(size[1], np.float32)
    first = [s.step(x).copy() for x in X]
    np.testing.assert_allclose(first, reference_lstm(X, w), atol=ATOL)
    benchmark(s.step, X[0], out)


@pytest.mark.parametrize("size", SIZES, ids=_ids(SIZES))
def test_step_torch_lstm_cell(benchmark, size):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    benchmark.group = f"step I={size[0]} H={size[1]}"
    w = make_weights(*size)
    X = torch.from_numpy(_inputs(size[0], 16))
    wih, whh, bih, bhh = (torch.from_numpy(a) for a in (w.w_ih, w.w_hh, w.b_ih, w.b_hh))
    h = c = torch.zeros(1, size[1])
    outs = []
    with torch.no_grad():
        for x in X:
            h, c = torch.lstm_cell(x[None], (h, c), wih, whh, bih, bhh)
            outs.append(h[0].numpy().copy())
        np.testing.assert_allclose(outs, reference_lstm(X.numpy(), w), atol=ATOL)
        benchmark(torch.lstm_cell, X[0][None], (h, c), wih, whh, bih, bhh)


@pytest.mark.parametrize("size", SIZES, ids=_ids(SIZES))
def test_step_numpy(benchmark, size):
    benchmark.group = f"step I={size[0]} H={size[1]}"
    w = make_weights(*size)
    X = _inputs(size[0], 16)
    step = _numpy_step(w)
    h = c = np.zeros(size[1], np.float32)
    outs = []
    for x in X:
        h, c = step(x, h, c)
        outs.append(h)
    np.testing.assert_allclose(outs, reference_lstm(X, w), atol=ATOL)
    benchmark(step, X[0], h, c)


@pytest.mark.parametrize("size", SIZES, ids=_ids(SIZES))
def test_sequence_lstmrt(benchmark, size):
    benchmark.group = f"sequence T={SEQ_LEN} I={size[0]} H={size[1]}"
    w = make_weights(*size)
    X = _inputs(size[0], SEQ_LEN)
    model = _model(w)
    np.testing.assert_allclose(model.predict(X), reference_lstm(X, w), atol=ATOL)
    benchmark(model.predict, X)


@pytest.mark.parametrize("size", SIZES, ids=_ids(SIZES))
def test_sequence_torch(benchmark, size):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    benchmark.group = f"sequence T={SEQ_LEN} I={size[0]} H={size[1]}"
    w = make_weights(*size)
    X = torch.from_numpy(_inputs(size[0], SEQ_LEN))[None]
    net = torch.nn.LSTM(*size, batch_first=True)
    with torch.no_grad():
        for p, a in zip(net.parameters(), (w.w_ih, w.w_hh, w.b_ih, w.b_hh)):
            p.copy_(torch.from_numpy(a))
        np.testing.assert_allclose(net(X)[0][0].numpy(), reference_lstm(X[0].numpy(), w), atol=ATOL)
        benchmark(net, X)
