"""Compare lstmrt with PyTorch, ONNX Runtime and TFLite on one LSTM layer, measured in the same process.

Used by `lstmrt bench` and `bench/compare.py`. Every implementation gets the same weights (PyTorch layout,
gates i, f, g, o), one thread, and is checked against lstmrt's output before it is timed; lstmrt itself is
checked against a float64 NumPy reference. Timing is interleaved: each round runs every implementation once
(a batch of calls sized to take `min_time`), in rotated order, so that a burst of load from other processes
hits all columns alike; the reported number is the median over rounds.

Nothing heavy is imported at module level: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lstmrt import bench_floor
from lstmrt.bench_timing import calibrate, time_calls

# --- what is measured -------------------------------------------------------------------------------------
DEFAULT_SIZES = ((8, 32), (16, 64), (32, 128), (64, 256), (128, 512))  # (input_size, hidden_size)
SEQ_LEN = 1000          # whole-sequence runs: B=1, T=1000, reported per step
BATCH, BATCH_SEQ_LEN = 64, 100   # batched predict
STREAM_BATCH = 64       # model.stream(batch=64)
CHECK_STEPS = 8         # steps from the zero state used to check a step implementation
FRAMEWORKS = ("torch", "onnxruntime", "tflite")

ROUNDS, QUICK_ROUNDS = 15, 3
MIN_TIME, QUICK_MIN_TIME = 0.02, 0.002   # seconds per timed batch of calls

# fp32 implementations with different summation orders; outputs are bounded by 1 (h = o * tanh(c))
CHECK_ATOL = 1e-4
REFERENCE_ATOL = 1e-4   # lstmrt (fp32) vs the float64 reference

# --- the floor: time to do the FLOPs or to read the weights once, whichever is longer ----------------------
# One Zen 5 core at ~4 GHz: 2 FMA pipes x 16 fp32 lanes x 2 FLOPs x 4 GHz = 256 GFLOP/s (we use 255).
PEAK_FLOPS = 255e9
# Sustained read bandwidth by where the packed weights fit (Zen 5: 48 KiB L1d, 1 MiB L2, L3 beyond).
CACHE_LEVELS = ((48 * 1024, 512e9, "L1"), (1024 * 1024, 256e9, "L2"), (math.inf, 128e9, "L3"))

# --- targets (issue "speed"): ratio = the competitor's time / lstmrt's time, at least this much -------------
STEP_TARGETS = ((32, 5.0), (64, 3.0), (128, 2.0), (math.inf, 1.25))   # (largest hidden_size, ratio)
PREDICT_TARGETS = ((64, 2.0), (math.inf, 1.2))
BATCHED_TARGET = {256: 1.0}      # hidden_size -> ratio vs torch, B=64 T=100
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
    loop: Callable[[int], None]     # runs n calls, state carried
    check: Callable[[], np.ndarray]  # outputs on the check input, compared with `expected`
    expected: str                    # which lstmrt output to compare with: step, seq, batch, stream_batch
    steps_per_call: int = 1
    calls: int = 1
    samples: list = field(default_factory=list)   # seconds per unit (step or call), one per round


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
    xw = X @ w_ih.T + b                      # (B, T, 4H): the input part of every step at once
    h, c = np.zeros((B, H)), np.zeros((B, H))
    if state is not None:
        h, c = (np.broadcast_to(np.asarray(a, np.float64), (B, H)).copy() for a in state)
    out = np.empty((B, T, H))
    for t in range(T):
        z = xw[:, t] + h @ w_hh.T
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out[:, t] = h
    return out[0] if single else out


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # no overflow warning for large |z|


def floor_us(input_size: int, hidden_size: int) -> dict:
    """Lower bound for one step: max(FLOPs at PEAK_FLOPS, weight bytes at the bandwidth of the cache they
    fit in). Biases and the element-wise gate work are left out: they are small and the peers' floor did too."""
    gates = 4 * hidden_size
    flops = 2 * gates * (input_size + hidden_size)
    weight_bytes = 4 * gates * (input_size + hidden_size)
    _, bandwidth, level = next(lv for lv in CACHE_LEVELS if weight_bytes <= lv[0])
    compute_us, memory_us = flops / PEAK_FLOPS * 1e6, weight_bytes / bandwidth * 1e6
    return {"floor_us": max(compute_us, memory_us), "flops": flops, "weight_bytes": weight_bytes,
            "cache": level, "compute_us": compute_us, "memory_us": memory_us}


def _target(table, hidden_size):
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


# --- quieting native libraries (TensorFlow logs from C++ straight to the file descriptors) ----------------
@contextlib.contextmanager
def _quiet_fds():
    """Send fds 1 and 2 (and sys.stdout/stderr) to a temp file meanwhile; if the block raises, the tail of
    what was captured is appended to the exception's message."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    sink = tempfile.TemporaryFile(mode="w+")
    try:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    except Exception as exc:
        sink.flush()
        sink.seek(0)
        tail = sink.read().strip().splitlines()[-3:]
        if tail:
            exc.args = (f"{exc} [output: {' | '.join(tail)}]",)
        raise
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        sink.close()


def _import(name):
    """Import a framework or raise Unavailable (ImportError of any kind: absent, blocked, broken)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"{name} not importable ({exc})") from None


# --- the implementations ----------------------------------------------------------------------------------
@dataclass
class Data:
    x_check: np.ndarray   # (CHECK_STEPS, I)
    x_seq: np.ndarray     # (SEQ_LEN, I)
    x_batch: np.ndarray   # (BATCH, BATCH_SEQ_LEN, I)
    x_stream_batch: np.ndarray  # (STREAM_BATCH, CHECK_STEPS, I)


def _make_data(input_size, seed, seq_len):
    rng = np.random.default_rng(seed + 1)

    def x(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return Data(x(CHECK_STEPS, input_size), x(seq_len, input_size), x(BATCH, BATCH_SEQ_LEN, input_size),
                x(STREAM_BATCH, CHECK_STEPS, input_size))


def _lstmrt_cases(w: Weights, d: Data, model, threads=1):
    H = w.hidden_size
    x = np.ascontiguousarray(d.x_check[0])
    out = np.empty(H, np.float32)
    s = model.stream(threads=threads)

    def step_loop(n):
        step = s.step   # the fast path: float32 C-contiguous x, preallocated out
        for _ in range(n):
            step(x, out)

    def step_check():
        fresh = model.stream(threads=threads)
        return np.stack([fresh.step(np.ascontiguousarray(xt), np.empty(H, np.float32)) for xt in d.x_check])

    xb = np.ascontiguousarray(d.x_stream_batch[:, 0])
    outb = np.empty((STREAM_BATCH, H), np.float32)
    sb = model.stream(batch=STREAM_BATCH, threads=threads)

    def stream_batch_loop(n):
        step = sb.step
        for _ in range(n):
            step(xb, outb)

    def stream_batch_check():
        fresh = model.stream(batch=STREAM_BATCH, threads=threads)
        ys = [fresh.step(np.ascontiguousarray(d.x_stream_batch[:, t])).copy() for t in range(CHECK_STEPS)]
        return np.stack(ys, axis=1)

    def predict_loop(n, X):
        predict = model.predict
        for _ in range(n):
            predict(X, threads=threads)

    return [
        Case("lstmrt.step", step_loop, step_check, "step"),
        Case("lstmrt.predict", lambda n: predict_loop(n, d.x_seq), lambda: model.predict(d.x_seq, threads=threads),
             "seq",
             steps_per_call=len(d.x_seq)),
        Case("lstmrt.predict_b64", lambda n: predict_loop(n, d.x_batch),
             lambda: model.predict(d.x_batch, threads=threads), "batch"),
        Case("lstmrt.stream_b64", stream_batch_loop, stream_batch_check, "stream_batch"),
    ]


def _torch_cases(w: Weights, d: Data, threads=1):  # torch's threads: set by run_comparison
    torch = _import("torch")
    n_in, H = w.input_size, w.hidden_size
    with torch.no_grad():
        lstm = torch.nn.LSTM(n_in, H, batch_first=True)
        cell = torch.nn.LSTMCell(n_in, H)
        for mod, suffix in ((lstm, "_l0"), (cell, "")):
            for name, value in (("weight_ih", w.w_ih), ("weight_hh", w.w_hh), ("bias_ih", w.b_ih),
                                ("bias_hh", w.b_hh)):
                getattr(mod, name + suffix).copy_(torch.from_numpy(value))
    lstm.eval()
    cell.eval()
    params = [torch.from_numpy(a) for a in (w.w_ih, w.w_hh, w.b_ih, w.b_hh)]
    op = getattr(torch._VF, "lstm_cell", None) or torch.lstm_cell
    x3 = torch.from_numpy(d.x_check[:1, None].copy())  # (1, 1, I)
    x2 = x3[0]                                         # (1, I)
    state = {}

    def zeros2():
        return torch.zeros(1, H), torch.zeros(1, H)

    def lstm_step_loop(n):
        hc = state.setdefault("lstm", (torch.zeros(1, 1, H), torch.zeros(1, 1, H)))
        with torch.inference_mode():
            for _ in range(n):
                _, hc = lstm(x3, hc)
        state["lstm"] = hc

    def lstm_step_check():
        hc, ys = (torch.zeros(1, 1, H), torch.zeros(1, 1, H)), []
        with torch.inference_mode():
            for xt in d.x_check:
                y, hc = lstm(torch.from_numpy(xt[None, None].copy()), hc)
                ys.append(y[0, 0].numpy().copy())
        return np.stack(ys)

    def cell_loop(n, fn, key):
        h, c = state.setdefault(key, zeros2())
        with torch.inference_mode():
            for _ in range(n):
                h, c = fn(x2, (h, c))
        state[key] = (h, c)

    def cell_check(fn):
        (h, c), ys = zeros2(), []
        with torch.inference_mode():
            for xt in d.x_check:
                h, c = fn(torch.from_numpy(xt[None].copy()), (h, c))
                ys.append(h[0].numpy().copy())
        return np.stack(ys)

    def op_fn(x, hc):
        return op(x, hc, *params)

    xs = torch.from_numpy(d.x_seq[None].copy())
    xb = torch.from_numpy(d.x_batch.copy())

    def seq_loop(n, X):
        with torch.inference_mode():
            for _ in range(n):
                lstm(X)

    def seq_out(X):
        with torch.inference_mode():
            return lstm(X)[0].numpy().copy()

    return [
        Case("torch.lstm_step", lstm_step_loop, lstm_step_check, "step"),
        Case("torch.lstmcell", lambda n: cell_loop(n, cell, "cell"), lambda: cell_check(cell), "step"),
        Case("torch.lstm_cell_op", lambda n: cell_loop(n, op_fn, "op"), lambda: cell_check(op_fn), "step"),
        Case("torch.sequence", lambda n: seq_loop(n, xs), lambda: seq_out(xs)[0], "seq",
             steps_per_call=xs.shape[1]),
        Case("torch.predict_b64", lambda n: seq_loop(n, xb), lambda: seq_out(xb), "batch"),
    ]


def _onnx_lstm(w: Weights, seq_len: int, step: bool):
    """An ONNX model holding one LSTM node. ONNX stacks gates i, o, f, c; PyTorch i, f, g, o."""
    onnx = _import("onnx")
    from onnx import TensorProto, helper, numpy_helper

    n_in, H = w.input_size, w.hidden_size
    order = np.concatenate([np.arange(k * H, (k + 1) * H) for k in (0, 3, 1, 2)])
    inits = [numpy_helper.from_array(w.w_ih[order][None], "W"), numpy_helper.from_array(w.w_hh[order][None], "R"),
             numpy_helper.from_array(np.concatenate([w.b_ih[order], w.b_hh[order]])[None], "B")]
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", f32, [seq_len, 1, n_in])]
    if step:
        inputs += [helper.make_tensor_value_info(n, f32, [1, 1, H]) for n in ("initial_h", "initial_c")]
        outputs = [helper.make_tensor_value_info(n, f32, [1, 1, H]) for n in ("Y_h", "Y_c")]
        node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "initial_h", "initial_c"], ["", "Y_h", "Y_c"],
                                hidden_size=H)
    else:
        outputs = [helper.make_tensor_value_info("Y", f32, [seq_len, 1, 1, H])]
        node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], hidden_size=H)
    graph = helper.make_graph([node], "lstm", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], producer_name="lstmrt-bench")
    model.ir_version = 8   # old enough for any onnxruntime that has opset 14
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _onnxruntime_cases(w: Weights, d: Data, threads=1):
    ort = _import("onnxruntime")
    H = w.hidden_size

    def session(blob):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])

    step_sess = session(_onnx_lstm(w, 1, step=True))
    seq_sess = session(_onnx_lstm(w, d.x_seq.shape[0], step=False))
    as_ov = ort.OrtValue.ortvalue_from_numpy   # on CPU the OrtValue shares the NumPy buffer

    # Ping-pong: binding k reads state buffer k and writes buffer 1-k, so no step copies or rebinds anything.
    x = np.ascontiguousarray(d.x_check[0].reshape(1, 1, -1))
    hs = [np.zeros((1, 1, H), np.float32) for _ in range(2)]
    cs = [np.zeros((1, 1, H), np.float32) for _ in range(2)]
    keep = [as_ov(x)] + [as_ov(a) for a in hs + cs]
    ov_x, ov_h, ov_c = keep[0], keep[1:3], keep[3:5]
    bindings = []
    for k in range(2):
        b = step_sess.io_binding()
        b.bind_ortvalue_input("X", ov_x)
        b.bind_ortvalue_input("initial_h", ov_h[k])
        b.bind_ortvalue_input("initial_c", ov_c[k])
        b.bind_ortvalue_output("Y_h", ov_h[1 - k])
        b.bind_ortvalue_output("Y_c", ov_c[1 - k])
        bindings.append(b)
    parity = [0]
    run = step_sess.run_with_iobinding

    def step_loop(n):
        k = parity[0]
        for _ in range(n):
            run(bindings[k])
            k ^= 1
        parity[0] = k

    def step_check():
        for a in hs + cs:
            a[...] = 0.0
        parity[0], ys, saved = 0, [], x.copy()
        for xt in d.x_check:
            x[0, 0] = xt
            step_loop(1)
            ys.append(hs[parity[0]][0, 0].copy())
        x[...] = saved
        return np.stack(ys)

    xs = np.ascontiguousarray(d.x_seq[:, None])   # (T, 1, I): ONNX is time-major
    ys = np.empty((xs.shape[0], 1, 1, H), np.float32)
    seq_binding = seq_sess.io_binding()
    keep += [as_ov(xs), as_ov(ys)]
    seq_binding.bind_ortvalue_input("X", keep[-2])
    seq_binding.bind_ortvalue_output("Y", keep[-1])

    def seq_loop(n):
        for _ in range(n):
            seq_sess.run_with_iobinding(seq_binding)

    def seq_check():
        seq_loop(1)
        return ys[:, 0, 0].copy()

    step_loop.keep = keep   # the OrtValues must outlive the bindings
    return [Case("onnxruntime.step", step_loop, step_check, "step"),
            Case("onnxruntime.sequence", seq_loop, seq_check, "seq", steps_per_call=xs.shape[0])]


def _tflite_cases(w: Weights, d: Data, threads=1):
    if importlib.util.find_spec("tensorflow") is None:
        raise Unavailable("tensorflow not installed")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    n_in, H = w.input_size, w.hidden_size
    try:
        with _quiet_fds(), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # TF/Keras deprecation chatter at import and conversion
            tf = _import("tensorflow")
            keras = tf.keras
            x_in = keras.Input(shape=(1, n_in), batch_size=1, name="x")
            # stateful: TFLite keeps h and c in resource variables, so a step is set x, invoke, get h (state passed
            # in and out through Python cost ~1 us more a step); unroll: one step needs no while loop, the
            # converter emits FULLY_CONNECTED + element-wise ops
            layer = keras.layers.LSTM(H, activation="tanh", recurrent_activation="sigmoid", stateful=True,
                                      unroll=True)
            model = keras.Model(x_in, layer(x_in))
            layer.set_weights([w.w_ih.T, w.w_hh.T, w.b_ih + w.b_hh])   # Keras gates i, f, c, o = PyTorch's
            blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                Interpreter = tf.lite.Interpreter   # deprecated in favour of ai_edge_litert, same engine
            interp = Interpreter(model_content=blob, num_threads=threads)
            interp.allocate_tensors()
    except Unavailable:
        raise
    except Exception as exc:
        raise Unavailable(f"TFLite conversion failed: {type(exc).__name__}: {exc}") from None
    (xi,) = [det["index"] for det in interp.get_input_details()]
    (hi,) = [det["index"] for det in interp.get_output_details()]
    x = np.ascontiguousarray(d.x_check[0].reshape(1, 1, n_in))
    set_tensor, get_tensor, invoke = interp.set_tensor, interp.get_tensor, interp.invoke

    def step_loop(n, xv=x):
        for _ in range(n):
            set_tensor(xi, xv)
            invoke()
            get_tensor(hi)   # a step's output reaches the caller, as it does for every other case

    def step_check():
        interp.reset_all_variables()   # the zero state
        ys = []
        for xt in d.x_check:
            set_tensor(xi, np.ascontiguousarray(xt.reshape(1, 1, n_in)))
            invoke()
            ys.append(get_tensor(hi).reshape(-1).copy())
        return np.stack(ys)

    return [Case("tflite.step", step_loop, step_check, "step")]


BUILDERS = {"torch": _torch_cases, "onnxruntime": _onnxruntime_cases, "tflite": _tflite_cases}


def framework_versions() -> dict:
    versions = {}
    for name, module in (("torch", "torch"), ("onnxruntime", "onnxruntime"), ("onnx", "onnx"),
                         ("tensorflow", "tensorflow")):
        mod = sys.modules.get(module)
        versions[name] = getattr(mod, "__version__", None) if mod is not None else None
    return versions


# --- timing -----------------------------------------------------------------------------------------------
def _measure(cases, rounds, min_time):
    for case in cases:
        case.calls = calibrate(case.loop, min_time)
    gc_was_enabled = gc.isenabled()
    gc.disable()   # a collection inside one timed batch would skew that column only
    try:
        for r in range(rounds):
            k = r % len(cases)
            for case in cases[k:] + cases[:k]:   # rotate the order: no column always runs first
                case.samples.append(time_calls(case.loop, case.calls) / (case.calls * case.steps_per_call))
    finally:
        if gc_was_enabled:
            gc.enable()


def _summary(samples):
    us = sorted(s * 1e6 for s in samples)
    q = statistics.quantiles(us, n=4) if len(us) > 1 else [us[0]] * 3
    return {"median_us": statistics.median(us), "min_us": us[0], "q1_us": q[0], "q3_us": q[2],
            "rounds_us": [s * 1e6 for s in samples]}


# --- one size ---------------------------------------------------------------------------------------------
def bench_size(input_size, hidden_size, *, frameworks, rounds, min_time, seed=0, seq_len=SEQ_LEN, log=None,
               machine=None, threads=1):
    import lstmrt

    w = make_weights(input_size, hidden_size, seed)
    d = _make_data(input_size, seed, seq_len)
    model = lstmrt.Model([lstmrt.LSTM(w.w_ih, w.w_hh, w.b_ih, w.b_hh)])
    expected = {"step": model.predict(d.x_check), "seq": model.predict(d.x_seq),
                "batch": model.predict(d.x_batch), "stream_batch": model.predict(d.x_stream_batch)}
    # lstmrt against the float64 oracle, then every other implementation against lstmrt
    for what, X in (("step", d.x_check), ("seq", d.x_seq), ("batch", d.x_batch),
                    ("stream_batch", d.x_stream_batch)):
        _assert_close(expected[what], reference_lstm(X, w), REFERENCE_ATOL,
                      f"lstmrt predict ({what}) vs float64 reference at I={input_size} H={hidden_size}")

    results, cases = {}, []
    for fw in ("lstmrt",) + tuple(frameworks):
        try:
            built = _lstmrt_cases(w, d, model, threads) if fw == "lstmrt" else BUILDERS[fw](w, d, threads)
        except Unavailable as exc:
            reason = str(exc)
            if log:
                log(f"  {fw}: n/a ({reason})")
            for key, (owner, _, _) in COLUMNS.items():
                if owner == fw:
                    results[key] = {"status": "n/a", "reason": reason}
            continue
        for case in built:
            got = case.check()
            _assert_close(got, expected[case.expected], CHECK_ATOL,
                          f"{case.key} vs lstmrt ({case.expected}) at I={input_size} H={hidden_size}")
            cases.append(case)
    for key, (owner, _, _) in COLUMNS.items():
        if owner not in ("lstmrt",) + tuple(frameworks):
            results.setdefault(key, {"status": "n/a", "reason": "not selected"})

    _measure(cases, rounds, min_time)
    for case in cases:
        results[case.key] = {"status": "ok", "unit": COLUMNS[case.key][2], **_summary(case.samples),
                             "calls_per_round": case.calls}
    entry = {"input_size": input_size, "hidden_size": hidden_size, **floor_us(input_size, hidden_size),
             **(bench_floor.floor_us(machine, input_size, hidden_size) if machine else {}), "results": results}
    entry["ratios"] = _ratios(entry)
    return entry


def _assert_close(actual, expected, atol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise CheckError(f"{what}: shape {actual.shape} != {expected.shape}")
    err = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    if not err <= atol:   # also catches NaN
        raise CheckError(f"{what}: max abs error {err:.3g} > {atol:.1g}")


def _median(results, key):
    r = results.get(key, {})
    return r.get("median_us") if r.get("status") == "ok" else None


def _ratios(entry) -> dict:
    """Each ratio: competitor time / lstmrt time, with its target (None: informational) and verdict."""
    res, H = entry["results"], entry["hidden_size"]

    def ratio(name, competitor_key, competitor_us, mine_us, target):
        value = competitor_us / mine_us if competitor_us and mine_us else None
        ok = None if value is None or target is None else value >= target
        return {"name": name, "vs": competitor_key, "value": value, "target": target, "pass": ok}

    def fastest(keys):
        found = [(_median(res, k), k) for k in keys if _median(res, k)]
        return min(found) if found else (None, None)

    step_us, step_key = fastest(FRAMEWORK_STEP_KEYS)
    seq_us, seq_key = fastest(FRAMEWORK_SEQ_KEYS)
    single, batched = _median(res, "lstmrt.step"), _median(res, "lstmrt.stream_b64")
    bound = entry.get("floor_here_plus_call_us")
    over_floor = single / bound if single and bound else None
    return {
        "floor": {"name": "stream.step / (this machine's floor + call), at most", "vs": None, "value": over_floor,
                  "target": FLOOR_TARGET if over_floor else None, "at_most": True,
                  "pass": None if over_floor is None else over_floor <= FLOOR_TARGET},
        "step": ratio("stream.step vs fastest framework step", step_key, step_us, single,
                      _target(STEP_TARGETS, H)),
        "predict": ratio(f"predict T={SEQ_LEN} vs faster of torch/ORT whole sequence", seq_key, seq_us,
                         _median(res, "lstmrt.predict"), _target(PREDICT_TARGETS, H)),
        "batched": ratio(f"predict B={BATCH} T={BATCH_SEQ_LEN} vs torch", "torch.predict_b64",
                         _median(res, "torch.predict_b64"), _median(res, "lstmrt.predict_b64"),
                         BATCHED_TARGET.get(H)),
        "stream_batch": ratio(f"stream(batch={STREAM_BATCH}) per-stream cost vs single stream step", "lstmrt.step",
                              single, batched / STREAM_BATCH if batched else None, STREAM_BATCH_TARGET.get(H)),
    }


# --- the whole run ----------------------------------------------------------------------------------------
def run_comparison(sizes=DEFAULT_SIZES, *, rounds=None, quick=False, frameworks=FRAMEWORKS, isa=None,
                   min_time=None, seed=0, log=None, threads=1) -> dict:
    """Benchmark every size; returns the report (what write_outputs saves as JSON). threads: what every
    implementation may use (torch.set_num_threads, ORT intra-op threads, the TFLite interpreter's, lstmrt's
    predict/stream threads=); this machine's one-core floor is measured only for threads=1."""
    previous_isa = os.environ.get("LSTMRT_ISA")
    if isa:
        # read once, at the first kernel lookup: this works if nothing in the process has run lstmrt yet
        os.environ["LSTMRT_ISA"] = isa
    try:
        import lstmrt

        tier = lstmrt.kernel_tier()   # the first lookup, if nothing ran before: fixes the tier
    finally:
        if isa:   # the tier is fixed now; leave the environment as we found it
            if previous_isa is None:
                del os.environ["LSTMRT_ISA"]
            else:
                os.environ["LSTMRT_ISA"] = previous_isa

    rounds = rounds or (QUICK_ROUNDS if quick else ROUNDS)
    min_time = min_time or (QUICK_MIN_TIME if quick else MIN_TIME)
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        raise ValueError(f"unknown framework(s) {sorted(unknown)}; choose from {', '.join(FRAMEWORKS)}")
    notes = []
    if isa and tier != isa:
        notes.append(f"requested kernel tier {isa!r} but running {tier!r} (LSTMRT_ISA only lowers the tier, and "
                     "is read once per process)")
    if threads < 1:
        raise ValueError("threads must be at least 1")
    torch_threads = _set_torch_threads(threads) if "torch" in frameworks else None
    load_before = _loadavg()
    if log and threads == 1:
        log("this machine's floor (bandwidth and FMA probes) ...")
    machine = None if threads > 1 else bench_floor.measure(
        [bench_floor.step_weight_bytes(i, h) for i, h in sizes], rounds=rounds, min_time=min_time)
    entries = []
    try:
        for input_size, hidden_size in sizes:
            if log:
                log(f"I={input_size} H={hidden_size} ...")
            entries.append(bench_size(input_size, hidden_size, frameworks=frameworks, rounds=rounds,
                                      min_time=min_time, seed=seed, log=log, machine=machine, threads=threads))
    finally:
        if torch_threads is not None:
            sys.modules["torch"].set_num_threads(torch_threads)
    return {
        "meta": {
            "lstmrt": lstmrt.__version__, "kernel_tier": tier, "cpu_features": lstmrt.cpu_features(),
            "requested_isa": isa, "frameworks": framework_versions(), "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpu": _cpu_name(),
            "threads": threads, "rounds": rounds, "min_time_s": min_time, "quick": bool(quick), "seed": seed,
            "seq_len": SEQ_LEN, "batch": BATCH, "batch_seq_len": BATCH_SEQ_LEN, "stream_batch": STREAM_BATCH,
            "loadavg_before": load_before, "loadavg_after": _loadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine_floor": machine and {"peak_flops": machine["peak_flops"], "call_us": machine["call_s"] * 1e6,
                                          "bandwidth": {str(b): bw for b, bw in machine["bandwidth"].items()}},
            "floor_model": {"peak_flops": PEAK_FLOPS,
                            "cache_levels": [[lv[0] if lv[0] != math.inf else None, lv[1], lv[2]]
                                             for lv in CACHE_LEVELS]},
            "notes": notes,
        },
        "sizes": entries,
    }


def _set_torch_threads(n):
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    return previous


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# --- reporting --------------------------------------------------------------------------------------------
def _fmt(us):
    """The peers' table style: 615, 47, 9.4, 0.41, 0.040."""
    if us is None:
        return "n/a"
    if us >= 20:
        return f"{us:.0f}"
    if us >= 1:
        return f"{us:.1f}"
    return f"{us:.2f}" if us >= 0.1 else f"{us:.3f}"


def _fmt_ratio(r):
    if r["value"] is None:
        return "n/a"
    text = f"{r['value']:.2f}x"
    if r["target"] is None:
        return text
    if f"{r['value']:.2f}" == f"{r['target']:.2f}":   # 1.197 would print as the target it misses
        text = f"{r['value']:.3f}x"
    sign = "<=" if r.get("at_most") else ">="
    verdict = "PASS" if r["pass"] else "MISS"
    if abs(r["value"] / r["target"] - 1) < ON_THE_LINE:
        verdict += " (on the line)"
    return f"{text} ({sign}{r['target']:g}x) {verdict}"


def threads_text(meta):
    n = meta.get("threads", 1)
    return f"{n} thread{'s' if n > 1 else ''}"


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def format_report(report) -> str:
    meta, entries = report["meta"], report["sizes"]
    fw = ", ".join(f"{k} {v}" for k, v in meta["frameworks"].items() if v)
    lines = [
        f"lstmrt {meta['lstmrt']}, kernel tier {meta['kernel_tier']} | {fw or 'no frameworks'} | "
        f"numpy {meta['numpy']} | {meta['cpu'] or meta['machine']}",
        f"{threads_text(meta)} each; median of {meta['rounds']} interleaved rounds "
        f"({'quick' if meta['quick'] else 'full'}); "
        f"load average before/after: {meta['loadavg_before']} / {meta['loadavg_after']}",
    ]
    lines += [f"note: {n}" for n in meta["notes"]]
    lines += ["", f"Single LSTM layer, batch 1, state carried: median us per step (whole sequence: T={SEQ_LEN})", ""]
    step_cols = list(FRAMEWORK_STEP_KEYS)
    header = ["I, H"] + [COLUMNS[k][1] for k in step_cols] + ["torch / ORT whole sequence", "floor (Zen 5 model)",
                                                                "floor here + call", "lstmrt stream.step",
                                                                f"lstmrt predict T={SEQ_LEN}"]
    lines += [_row(header), _row(["---"] * len(header))]
    for e in entries:
        res = e["results"]
        seq = " / ".join(_fmt(_median(res, k)) for k in FRAMEWORK_SEQ_KEYS)
        cells = [f"{e['input_size']}, {e['hidden_size']}"] + [_fmt(_median(res, k)) for k in step_cols]
        here = e.get("floor_here_us")
        here = f"{_fmt(here)} + {_fmt(e['floor_here_plus_call_us'] - here)}" if here else "n/a"
        cells += [seq, _fmt(e["floor_us"]), here, _fmt(_median(res, "lstmrt.step")),
                  _fmt(_median(res, "lstmrt.predict"))]
        lines.append(_row(cells))

    lines += ["", f"Batched: predict B={BATCH} T={BATCH_SEQ_LEN} (ms per call); stream(batch={STREAM_BATCH}).step "
                  "(us per stream)", ""]
    header = ["I, H", f"torch B={BATCH} T={BATCH_SEQ_LEN}", f"lstmrt B={BATCH} T={BATCH_SEQ_LEN}",
              "lstmrt single stream.step", f"lstmrt stream(batch={STREAM_BATCH}) per stream"]
    lines += [_row(header), _row(["---"] * len(header))]
    for e in entries:
        res = e["results"]
        ms = [(_median(res, k) or 0) / 1e3 or None for k in ("torch.predict_b64", "lstmrt.predict_b64")]
        per_stream = _median(res, "lstmrt.stream_b64")
        lines.append(_row([f"{e['input_size']}, {e['hidden_size']}", *(f"{m:.3g}" if m else "n/a" for m in ms),
                           _fmt(_median(res, "lstmrt.step")),
                           _fmt(per_stream / STREAM_BATCH if per_stream else None)]))

    lines += ["", "Ratios vs targets (competitor time / lstmrt time; the competitor in brackets)", ""]
    names = ("step", "predict", "batched", "stream_batch")  # the targets; "floor" is reported below
    header = ["I, H", "stream.step vs fastest framework step", f"predict T={SEQ_LEN} vs faster whole sequence",
              f"B={BATCH} T={BATCH_SEQ_LEN} vs torch", f"stream(batch={STREAM_BATCH}) per stream vs single step"]
    lines += [_row(header), _row(["---"] * len(header))]
    passed = total = 0
    for e in entries:
        cells = [f"{e['input_size']}, {e['hidden_size']}"]
        for name in names:
            r = e["ratios"][name]
            text = _fmt_ratio(r)
            if r["vs"] and name in ("step", "predict") and r["value"] is not None:
                text += f" [{COLUMNS[r['vs']][1]}]"
            cells.append(text)
            if r["pass"] is not None:
                total += 1
                passed += bool(r["pass"])
        lines.append(_row(cells))
    lines += ["", f"targets met: {passed} of {total} measured"
              + (" (numbers from a busy machine are indicative only)" if _busy(meta) else "")]
    machine = meta.get("machine_floor")
    if machine:
        floors = [e["ratios"]["floor"] for e in entries if e["ratios"]["floor"]["value"] is not None]
        lines += ["", f"This machine's floor (bench_floor, {meta['kernel_tier']} probes, best of rounds): FMA peak "
                      f"{machine['peak_flops'] / 1e9:.0f} GFLOP/s, step call {machine['call_us']:.2f} us, read "
                      "bandwidth at the weights' size " + ", ".join(
                          f"{int(b) // 1024} KB {bw / 1e9:.0f} GB/s" for b, bw in machine["bandwidth"].items()),
                  "stream.step / (floor here + call), the issue's \"within 1.2x of the floor plus the call\": "
                  + ", ".join(f"{e['hidden_size']}: {_fmt_ratio(e['ratios']['floor'])}" for e in entries),
                  f"within 1.2x: {sum(bool(r['pass']) for r in floors)} of {len(floors)} sizes"]
    return "\n".join(lines)


def _busy(meta):
    load = meta.get("loadavg_before") or [0]
    return load[0] > 0.5 * (os.cpu_count() or 1)


def plot_report(report, path) -> bool:
    """µs per step against hidden_size, log-log. False when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    entries = report["sizes"]
    hs = [e["hidden_size"] for e in entries]
    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key in FRAMEWORK_STEP_KEYS + FRAMEWORK_SEQ_KEYS + ("lstmrt.step", "lstmrt.predict"):
        ys = [_median(e["results"], key) for e in entries]
        if not any(ys):
            continue
        mine = key.startswith("lstmrt")
        ax.plot(hs, [y if y else float("nan") for y in ys], marker="o", label=COLUMNS[key][1],
                linestyle="--" if "seq" in key or "predict" in key else "-", linewidth=2.5 if mine else 1.2,
                color="black" if key == "lstmrt.step" else None)
    ax.plot(hs, [e["floor_us"] for e in entries], linestyle=":", color="gray", label="floor (Zen 5 model)")
    if all(e.get("floor_here_plus_call_us") for e in entries):
        ax.plot(hs, [e["floor_here_plus_call_us"] for e in entries], linestyle="-.", color="gray",
                label="floor here + call (measured)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(hs, [str(h) for h in hs])
    ax.set_xlabel("hidden_size (input_size as in the table)")
    ax.set_ylabel("µs per step (median)")
    meta = report["meta"]
    ax.set_title(f"One LSTM layer, batch 1 — lstmrt {meta['lstmrt']} ({meta['kernel_tier']}), 1 thread")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def write_outputs(report, text, out_dir) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "bench.json"), "table": os.path.join(out_dir, "bench.md")}
    with open(paths["json"], "w") as f:
        json.dump(report, f, indent=1, default=_json_default)
    with open(paths["table"], "w") as f:
        f.write(text + "\n")
    png = os.path.join(out_dir, "bench.png")
    if plot_report(report, png):
        paths["png"] = png
    return paths


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --- command line -----------------------------------------------------------------------------------------
def add_arguments(parser):
    parser.add_argument("--sizes", default=None, metavar="IxH,...",
                        help="input_size x hidden_size list (default: " +
                             ",".join(f"{i}x{h}" for i, h in DEFAULT_SIZES) + ")")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"interleaved rounds; the median is reported (default {ROUNDS}, --quick {QUICK_ROUNDS})")
    parser.add_argument("--quick", action="store_true", help="few short rounds: a smoke run, noisy numbers")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help="comma-separated subset of " + ", ".join(FRAMEWORKS) + " (lstmrt always runs)")
    parser.add_argument("--isa", choices=("scalar", "avx2", "avx512"), default=None,
                        help="lower lstmrt's kernel tier (sets LSTMRT_ISA); the tier used is always reported")
    parser.add_argument("--out", default=os.path.join("bench", "results"), metavar="DIR",
                        help="where to write bench.json, bench.md and bench.png (default: bench/results)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads every implementation may use (default 1: the issue's one thread each)")


def run_from_args(args) -> int:
    try:
        sizes = parse_sizes(args.sizes) if args.sizes else DEFAULT_SIZES
        frameworks = tuple(f.strip() for f in args.frameworks.split(",") if f.strip())
        frameworks = tuple("onnxruntime" if f in ("ort", "onnx") else f for f in frameworks)
        if args.rounds is not None and args.rounds < 1:
            raise ValueError("--rounds must be at least 1")
        report = run_comparison(sizes, rounds=args.rounds, quick=args.quick, frameworks=frameworks, isa=args.isa,
                                seed=args.seed, threads=args.threads,
                                log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except (ValueError, CheckError) as exc:
        print(f"lstmrt bench: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, CheckError) else 2
    text = format_report(report)
    print(text)
    paths = write_outputs(report, text, args.out)
    print("\nwrote " + ", ".join(paths.values()))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/compare.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
