"""One step with state carried: lstmrt stream.step(out=) vs torch vs a NumPy baseline, grouped per shape.

Each benchmark times its step, then (untimed) sets a known state, takes one step and compares with the float64
reference. Run: python -m pytest bench/test_bench_step.py  (add --benchmark-max-time=1 for steadier numbers)."""

import numpy as np
import pytest

from lstmrt import bench_spec as bc

STREAMS = bc.STREAM_BATCH
pytestmark = pytest.mark.benchmark(max_time=0.2, min_rounds=5)


@pytest.fixture
def inputs(shape, rng):
    """x and a known state (h, c) for the single-stream and the batched case, float32."""
    n_in, H = shape

    def f32(*s, scale=1.0):
        return (scale * rng.standard_normal(s)).astype(np.float32)

    return {
        "x": f32(n_in),
        "h": f32(H, scale=0.5),
        "c": f32(H),
        "xb": f32(STREAMS, n_in),
        "hb": f32(STREAMS, H, scale=0.5),
        "cb": f32(STREAMS, H),
    }


def _expected(weights, x, h, c):
    X = x[..., None, :]  # one step: (1, I) or (B, 1, I)
    return bc.reference_lstm(X, weights, state=(h, c))[..., 0, :]


def _group(benchmark, what, shape):
    benchmark.group = f"{what} I={shape[0]} H={shape[1]}"


# --- batch 1 ----------------------------------------------------------------------------------------------
def test_step_lstmrt(benchmark, shape, weights, lstmrt_model, inputs, check):
    _group(benchmark, "step", shape)
    s = lstmrt_model.stream()
    x, out = inputs["x"], np.empty(shape[1], np.float32)
    benchmark(s.step, x, out)
    s.state = [(inputs["h"], inputs["c"])]
    check(s.step(x, out), _expected(weights, x, inputs["h"], inputs["c"]), "lstmrt stream.step")


def test_step_torch_lstm_cell_op(benchmark, shape, weights, torch_modules, inputs, check):
    _group(benchmark, "step", shape)
    torch, _, params = torch_modules
    op = getattr(torch._VF, "lstm_cell", None) or torch.lstm_cell
    x = torch.from_numpy(inputs["x"][None])
    state = [(torch.zeros(1, shape[1]), torch.zeros(1, shape[1]))]

    def step():
        state[0] = op(x, state[0], *params)

    with torch.inference_mode():
        benchmark(step)
        state[0] = (torch.from_numpy(inputs["h"][None]), torch.from_numpy(inputs["c"][None]))
        step()
    check(state[0][0][0].numpy(), _expected(weights, inputs["x"], inputs["h"], inputs["c"]), "torch lstm_cell")


def test_step_torch_nn_lstm(benchmark, shape, weights, torch_modules, inputs, check):
    _group(benchmark, "step", shape)
    torch, lstm, _ = torch_modules
    x = torch.from_numpy(inputs["x"][None, None])
    state = [(torch.zeros(1, 1, shape[1]), torch.zeros(1, 1, shape[1]))]

    def step():
        y, state[0] = lstm(x, state[0])
        return y

    with torch.inference_mode():
        benchmark(step)
        state[0] = (torch.from_numpy(inputs["h"][None, None]), torch.from_numpy(inputs["c"][None, None]))
        y = step()
    check(y[0, 0].numpy(), _expected(weights, inputs["x"], inputs["h"], inputs["c"]), "torch nn.LSTM step")


def test_step_numpy(benchmark, shape, weights, numpy_lstm, inputs, check):
    _group(benchmark, "step", shape)
    net = numpy_lstm(weights)
    benchmark(net.step, inputs["x"])
    net.h, net.c = inputs["h"].copy(), inputs["c"].copy()
    check(net.step(inputs["x"]), _expected(weights, inputs["x"], inputs["h"], inputs["c"]), "NumPy step")


# --- STREAMS independent streams stepped together -----------------------------------------------------------
def test_stream_batch_lstmrt(benchmark, shape, weights, lstmrt_model, inputs, check):
    _group(benchmark, f"step batch={STREAMS}", shape)
    s = lstmrt_model.stream(batch=STREAMS)
    xb, out = inputs["xb"], np.empty((STREAMS, shape[1]), np.float32)
    benchmark(s.step, xb, out)
    s.state = [(inputs["hb"], inputs["cb"])]
    check(s.step(xb, out), _expected(weights, xb, inputs["hb"], inputs["cb"]), "lstmrt stream(batch).step")


def test_stream_batch_torch_lstm_cell_op(benchmark, shape, weights, torch_modules, inputs, check):
    _group(benchmark, f"step batch={STREAMS}", shape)
    torch, _, params = torch_modules
    op = getattr(torch._VF, "lstm_cell", None) or torch.lstm_cell
    x = torch.from_numpy(inputs["xb"])
    state = [(torch.zeros(STREAMS, shape[1]), torch.zeros(STREAMS, shape[1]))]

    def step():
        state[0] = op(x, state[0], *params)

    with torch.inference_mode():
        benchmark(step)
        state[0] = (torch.from_numpy(inputs["hb"]), torch.from_numpy(inputs["cb"]))
        step()
    check(state[0][0].numpy(), _expected(weights, inputs["xb"], inputs["hb"], inputs["cb"]), "torch lstm_cell batch")


def test_stream_batch_numpy(benchmark, shape, weights, numpy_lstm, inputs, check):
    _group(benchmark, f"step batch={STREAMS}", shape)
    net = numpy_lstm(weights, batch=STREAMS)
    benchmark(net.step, inputs["xb"])
    net.h, net.c = inputs["hb"].copy(), inputs["cb"].copy()
    check(net.step(inputs["xb"]), _expected(weights, inputs["xb"], inputs["hb"], inputs["cb"]), "NumPy batch step")
