"""Whole sequences from the zero state: predict T=1000 (batch 1) and B=64 T=100, lstmrt vs torch nn.LSTM vs a
NumPy baseline, grouped per shape. Each benchmark checks its output against the float64 reference (untimed).
Run: python -m pytest bench/test_bench_sequence.py"""

import functools

import numpy as np
import pytest

from lstmrt import bench_spec as bc

pytestmark = pytest.mark.benchmark(max_time=0.3, min_rounds=3)
SEQUENCES = {"T": (1, bc.SEQ_LEN), "batched": (bc.BATCH, bc.BATCH_SEQ_LEN)}  # name -> (B, T)


@pytest.fixture(params=list(SEQUENCES))
def seq(request, shape):
    """(label, X (B, T, I) float32, float64 reference (B, T, H)); the reference is computed once per case."""
    B, T = SEQUENCES[request.param]
    X, expected = _data(shape, B, T)
    return f"predict B={B} T={T}", X, expected


@functools.lru_cache(maxsize=None)
def _data(shape, B, T):
    rng = np.random.default_rng([0, *shape, B, T])
    X = rng.standard_normal((B, T, shape[0])).astype(np.float32)
    return X, bc.reference_lstm(X, bc.make_weights(*shape, seed=0))  # seed as in conftest.SEED


def _group(benchmark, label, shape):
    benchmark.group = f"{label} I={shape[0]} H={shape[1]}"


def test_predict_lstmrt(benchmark, shape, seq, lstmrt_model, check):
    label, X, expected = seq
    _group(benchmark, label, shape)
    check(benchmark(lstmrt_model.predict, X), expected, f"lstmrt {label}")


def test_predict_torch(benchmark, shape, seq, torch_modules, check):
    label, X, expected = seq
    _group(benchmark, label, shape)
    torch, lstm, _ = torch_modules
    Xt = torch.from_numpy(X)
    with torch.inference_mode():
        y, _ = benchmark(lstm, Xt)
    check(y.numpy(), expected, f"torch nn.LSTM {label}")


def test_predict_numpy(benchmark, shape, seq, weights, numpy_lstm, check):
    label, X, expected = seq
    _group(benchmark, label, shape)
    check(benchmark(numpy_lstm(weights).sequence, X), expected, f"NumPy {label}")
