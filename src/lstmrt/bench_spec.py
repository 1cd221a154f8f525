"""What `lstmrt bench` measures and what the speed issue asks of it: the sizes, the targets, the floor model of
the issue's Zen 5, the weights every implementation gets (PyTorch layout, gates i, f, g, o) and the float64 NumPy
LSTM that checks lstmrt. Shared by bench_compare, bench_peers, bench_report and the pytest-benchmark suites."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# --- what is measured -------------------------------------------------------------------------------------
DEFAULT_SIZES = ((8, 32), (16, 64), (32, 128), (64, 256), (128, 512))  # (input_size, hidden_size)
SEQ_LEN = 1000  # whole-sequence runs: B=1, T=1000, reported per step
BATCH, BATCH_SEQ_LEN = 64, 100  # batched predict
STREAM_BATCH = 64  # model.stream(batch=64)
CHECK_STEPS = 8  # steps from the zero state used to check a step implementation
FRAMEWORKS = ("torch", "onnxruntime", "tflite")

ROUNDS, QUICK_ROUNDS = 15, 3
MIN_TIME, QUICK_MIN_TIME = 0.02, 0.002  # seconds per timed batch of calls

# fp32 implementations with different summation orders; outputs are bounded by 1 (h = o * tanh(c))
CHECK_ATOL = 1e-4
REFERENCE_ATOL = 1e-4  # lstmrt (fp32) vs the float64 reference

# --- the floor: time to do the FLOPs or to read the weights once, whichever is longer ----------------------
# One Zen 5 core at ~4 GHz: 2 FMA pipes x 16 fp32 lanes x 2 FLOPs x 4 GHz = 256 GFLOP/s (we use 255).
PEAK_FLOPS = 255e9
# Sustained read bandwidth by where the packed weights fit (Zen 5: 48 KiB L1d, 1 MiB L2, L3 beyond).
CACHE_LEVELS = ((48 * 1024, 512e9, "L1"), (1024 * 1024, 256e9, "L2"), (math.inf, 128e9, "L3"))

# --- targets (issue "speed"): ratio = the competitor's time / lstmrt's time, at least this much -------------
STEP_TARGETS = ((32, 5.0), (64, 3.0), (128, 2.0), (math.inf, 1.25))  # (largest hidden_size, ratio)
PREDICT_TARGETS = ((64, 2.0), (math.inf, 1.2))
BATCHED_TARGET = {256: 1.0}  # hidden_size -> ratio vs torch, B=64 T=100
ON_THE_LINE = 0.02  # a ratio this close to its target can flip between runs (rounds spread by ~2%)
STREAM_BATCH_TARGET = {64: 8.0}  # hidden_size -> single step / per-stream cost of stream(batch=64)
# The reading of the step targets: "within 1.2x of the floor plus the call", here with this machine's
# floor measured by bench_floor (the peers' ratios above assume the issue's Zen 5).
FLOOR_TARGET = 1.2

# Columns: key -> (framework, label, unit). "step" results are µs per step; "call" results µs per call.
COLUMNS = {
    "torch.lstm_step": ("torch", "torch nn.LSTM step", "step"),
    "torch.lstmcell": ("torch", "torch nn.LSTMCell", "step"),
    "torch.lstm_cell_op": ("torch", "torch lstm_cell op", "step"),
    "onnxruntime.step": ("onnxruntime", "ONNX Runtime IOBinding", "step"),
    "tflite.step": ("tflite", "TFLite interpreter", "step"),
    "torch.sequence": ("torch", "torch whole sequence", "step"),
    "onnxruntime.sequence": ("onnxruntime", "ORT whole sequence", "step"),
    "torch.predict_b64": ("torch", f"torch B={BATCH} T={BATCH_SEQ_LEN}", "call"),
    "lstmrt.step": ("lstmrt", "lstmrt stream.step", "step"),
    "lstmrt.predict": ("lstmrt", f"lstmrt predict T={SEQ_LEN}", "step"),
    "lstmrt.predict_b64": ("lstmrt", f"lstmrt predict B={BATCH} T={BATCH_SEQ_LEN}", "call"),
    "lstmrt.stream_b64": ("lstmrt", f"lstmrt stream(batch={STREAM_BATCH}).step", "call"),
}
FRAMEWORK_STEP_KEYS = ("torch.lstm_step", "torch.lstmcell", "torch.lstm_cell_op", "onnxruntime.step", "tflite.step")
FRAMEWORK_SEQ_KEYS = ("torch.sequence", "onnxruntime.sequence")


class Unavailable(Exception):
    """A framework cannot be benchmarked here (not installed, or it failed to build the model)."""


class CheckError(AssertionError):
    """An implementation's output disagrees with lstmrt's: its timing would be meaningless."""


@dataclass
class Case:
    key: str
    loop: Callable[[int], None]  # runs n calls, state carried
    check: Callable[[], np.ndarray]  # outputs on the check input, compared with `expected`
    expected: str  # which lstmrt output to compare with: step, seq, batch, stream_batch
    steps_per_call: int = 1
    calls: int = 1
    samples: list = field(default_factory=list)  # seconds per unit (step or call), one per round


@dataclass
class Weights:
    """One LSTM layer in PyTorch's layout: gates i, f, g, o stacked along the first axis."""

    w_ih: np.ndarray  # (4H, I)
    w_hh: np.ndarray  # (4H, H)
    b_ih: np.ndarray  # (4H,)
    b_hh: np.ndarray  # (4H,)

    @property
    def input_size(self) -> int:
        return self.w_ih.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.w_hh.shape[1]


def make_weights(input_size: int, hidden_size: int, seed: int = 0) -> Weights:
    """PyTorch's default initialisation, U(-1/sqrt(H), 1/sqrt(H)), from a fixed seed."""
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(hidden_size)
    H4 = 4 * hidden_size

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(np.float32)

    return Weights(u(H4, input_size), u(H4, hidden_size), u(H4), u(H4))


def reference_lstm(X: np.ndarray, w: Weights, state=None) -> np.ndarray:
    """Float64 NumPy LSTM: X (T, I) or (B, T, I) -> h for every step, same leading shape. state: (h, c),
    each (H,) or (B, H); default zeros."""
    X = np.asarray(X, np.float64)
    single = X.ndim == 2
    if single:
        X = X[None]
    B, T, _ = X.shape
    H = w.hidden_size
    w_ih, w_hh = w.w_ih.astype(np.float64), w.w_hh.astype(np.float64)
    b = w.b_ih.astype(np.float64) + w.b_hh.astype(np.float64)
    xw = X @ w_ih.T + b  # (B, T, 4H): the input part of every step at once
    h, c = np.zeros((B, H)), np.zeros((B, H))
    if state is not None:
        h, c = (np.broadcast_to(np.asarray(a, np.float64), (B, H)).copy() for a in state)
    out = np.empty((B, T, H))
    for t in range(T):
        z = xw[:, t] + h @ w_hh.T
        i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out[:, t] = h
    return out[0] if single else out


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warning for large |z|


def floor_us(input_size: int, hidden_size: int) -> dict:
    """Lower bound for one step: max(FLOPs at PEAK_FLOPS, weight bytes at the bandwidth of the cache they
    fit in). Biases and the element-wise gate work are left out: they are small and the peers' floor did too."""
    gates = 4 * hidden_size
    flops = 2 * gates * (input_size + hidden_size)
    weight_bytes = 4 * gates * (input_size + hidden_size)
    _, bandwidth, level = next(lv for lv in CACHE_LEVELS if weight_bytes <= lv[0])
    compute_us, memory_us = flops / PEAK_FLOPS * 1e6, weight_bytes / bandwidth * 1e6
    return {
        "floor_us": max(compute_us, memory_us),
        "flops": flops,
        "weight_bytes": weight_bytes,
        "cache": level,
        "compute_us": compute_us,
        "memory_us": memory_us,
    }


def target(table, hidden_size):
    return next(ratio for bound, ratio in table if hidden_size <= bound)


def parse_sizes(text: str) -> list:
    """'8x32,16x64' -> [(8, 32), (16, 64)] (input_size x hidden_size)."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        pieces = part.split("x")
        if len(pieces) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in pieces):
            raise ValueError(f"bad size {part!r}: expected INPUTxHIDDEN with positive integers, e.g. 8x32")
        sizes.append((int(pieces[0]), int(pieces[1])))
    if not sizes:
        raise ValueError("no sizes given")
    return sizes


@dataclass
class Data:
    x_check: np.ndarray  # (CHECK_STEPS, I)
    x_seq: np.ndarray  # (SEQ_LEN, I)
    x_batch: np.ndarray  # (BATCH, BATCH_SEQ_LEN, I)
    x_stream_batch: np.ndarray  # (STREAM_BATCH, CHECK_STEPS, I)


def make_data(input_size, seed, seq_len):
    rng = np.random.default_rng(seed + 1)

    def x(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return Data(
        x(CHECK_STEPS, input_size),
        x(seq_len, input_size),
        x(BATCH, BATCH_SEQ_LEN, input_size),
        x(STREAM_BATCH, CHECK_STEPS, input_size),
    )


def assert_close(actual, expected, atol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise CheckError(f"{what}: shape {actual.shape} != {expected.shape}")
    err = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    if not err <= atol:  # also catches NaN
        raise CheckError(f"{what}: max abs error {err:.3g} > {atol:.1g}")
