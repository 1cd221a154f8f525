"""The implementations `lstmrt bench` times, one builder per framework: each returns Cases (a loop of calls and
a check of its output) for one LSTM layer, or raises Unavailable. Every framework gets the same weights and
`threads`; nothing heavy is imported until a builder runs."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import tempfile
import warnings

import numpy as np

from lstmrt.bench_spec import (
    CHECK_ATOL,
    CHECK_STEPS,
    STREAM_BATCH,
    Case,
    Data,
    Unavailable,
    Weights,
    assert_close,
)


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
def lstmrt_cases(w: Weights, d: Data, model, threads=1):
    H = w.hidden_size
    x = np.ascontiguousarray(d.x_check[0])
    out = np.empty(H, np.float32)
    s = model.stream(threads=threads)

    def step_loop(n):
        step = s.step  # the fast path: float32 C-contiguous x, preallocated out
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
        Case(
            "lstmrt.predict",
            lambda n: predict_loop(n, d.x_seq),
            lambda: model.predict(d.x_seq, threads=threads),
            "seq",
            steps_per_call=len(d.x_seq),
        ),
        Case(
            "lstmrt.predict_b64",
            lambda n: predict_loop(n, d.x_batch),
            lambda: model.predict(d.x_batch, threads=threads),
            "batch",
        ),
        Case("lstmrt.stream_b64", stream_batch_loop, stream_batch_check, "stream_batch"),
    ]


def _torch_cases(w: Weights, d: Data, threads=1):  # torch's threads: set by run_comparison
    torch = _import("torch")
    n_in, H = w.input_size, w.hidden_size
    with torch.no_grad():
        lstm = torch.nn.LSTM(n_in, H, batch_first=True)
        cell = torch.nn.LSTMCell(n_in, H)
        for mod, suffix in ((lstm, "_l0"), (cell, "")):
            for name, value in (("weight_ih", w.w_ih), ("weight_hh", w.w_hh), ("bias_ih", w.b_ih), ("bias_hh", w.b_hh)):
                getattr(mod, name + suffix).copy_(torch.from_numpy(value))
    lstm.eval()
    cell.eval()
    params = [torch.from_numpy(a) for a in (w.w_ih, w.w_hh, w.b_ih, w.b_hh)]
    op = getattr(torch._VF, "lstm_cell", None) or torch.lstm_cell
    x3 = torch.from_numpy(d.x_check[:1, None].copy())  # (1, 1, I)
    x2 = x3[0]  # (1, I)
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
        Case("torch.sequence", lambda n: seq_loop(n, xs), lambda: seq_out(xs)[0], "seq", steps_per_call=xs.shape[1]),
        Case("torch.predict_b64", lambda n: seq_loop(n, xb), lambda: seq_out(xb), "batch"),
    ]


def _onnx_lstm(w: Weights, seq_len: int, step: bool):
    """An ONNX model holding one LSTM node. ONNX stacks gates i, o, f, c; PyTorch i, f, g, o."""
    onnx = _import("onnx")
    from onnx import TensorProto, helper, numpy_helper

    n_in, H = w.input_size, w.hidden_size
    order = np.concatenate([np.arange(k * H, (k + 1) * H) for k in (0, 3, 1, 2)])
    inits = [
        numpy_helper.from_array(w.w_ih[order][None], "W"),
        numpy_helper.from_array(w.w_hh[order][None], "R"),
        numpy_helper.from_array(np.concatenate([w.b_ih[order], w.b_hh[order]])[None], "B"),
    ]
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", f32, [seq_len, 1, n_in])]
    if step:
        inputs += [helper.make_tensor_value_info(n, f32, [1, 1, H]) for n in ("initial_h", "initial_c")]
        outputs = [helper.make_tensor_value_info(n, f32, [1, 1, H]) for n in ("Y_h", "Y_c")]
        node = helper.make_node(
            "LSTM", ["X", "W", "R", "B", "", "initial_h", "initial_c"], ["", "Y_h", "Y_c"], hidden_size=H
        )
    else:
        outputs = [helper.make_tensor_value_info("Y", f32, [seq_len, 1, 1, H])]
        node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], hidden_size=H)
    graph = helper.make_graph([node], "lstm", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], producer_name="lstmrt-bench")
    model.ir_version = 8  # old enough for any onnxruntime that has opset 14
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
    as_ov = ort.OrtValue.ortvalue_from_numpy  # on CPU the OrtValue shares the NumPy buffer

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

    xs = np.ascontiguousarray(d.x_seq[:, None])  # (T, 1, I): ONNX is time-major
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

    step_loop.keep = keep  # the OrtValues must outlive the bindings
    return [
        Case("onnxruntime.step", step_loop, step_check, "step"),
        Case("onnxruntime.sequence", seq_loop, seq_check, "seq", steps_per_call=xs.shape[0]),
    ]


def _tflite_cases(w: Weights, d: Data, threads=1):
    if importlib.util.find_spec("tensorflow") is None:
        raise Unavailable("tensorflow not installed")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    n_in, H = w.input_size, w.hidden_size
    try:
        with _quiet_fds(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TF/Keras deprecation chatter at import and conversion
            tf = _import("tensorflow")
            keras = tf.keras
            x_in = keras.Input(shape=(1, n_in), batch_size=1, name="x")
            # stateful: TFLite keeps h and c in resource variables, so a step is set x, invoke, get h (state passed
            # in and out through Python cost ~1 us more a step); unroll: one step needs no while loop, the
            # converter emits FULLY_CONNECTED + element-wise ops
            layer = keras.layers.LSTM(H, activation="tanh", recurrent_activation="sigmoid", stateful=True, unroll=True)
            model = keras.Model(x_in, layer(x_in))
            layer.set_weights([w.w_ih.T, w.w_hh.T, w.b_ih + w.b_hh])  # Keras gates i, f, c, o = PyTorch's
            blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                Interpreter = tf.lite.Interpreter  # deprecated in favour of ai_edge_litert, same engine
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
            get_tensor(hi)  # a step's output reaches the caller, as it does for every other case

    def step_check():
        interp.reset_all_variables()  # the zero state
        ys = []
        for xt in d.x_check:
            set_tensor(xi, np.ascontiguousarray(xt.reshape(1, 1, n_in)))
            invoke()
            ys.append(get_tensor(hi).reshape(-1).copy())
        return np.stack(ys)

    return [Case("tflite.step", step_loop, step_check, "step")]


BUILDERS = {"torch": _torch_cases, "onnxruntime": _onnxruntime_cases, "tflite": _tflite_cases}


def lstmrt_model(w: Weights):
    import lstmrt

    return lstmrt.Model([lstmrt.LSTM(w.w_ih, w.w_hh, w.b_ih, w.b_hh)])


def build_checked(framework, w: Weights, d: Data, threads, expected, model=None):
    """framework's Cases, each checked against lstmrt's outputs (expected: step, seq, batch, stream_batch) before
    anything is timed. Raises Unavailable, or CheckError naming the column. model: lstmrt's, if already built."""
    if framework == "lstmrt":
        built = lstmrt_cases(w, d, model or lstmrt_model(w), threads)
    else:
        built = BUILDERS[framework](w, d, threads)
    for case in built:
        assert_close(
            case.check(),
            expected[case.expected],
            CHECK_ATOL,
            f"{case.key} vs lstmrt ({case.expected}) at I={w.input_size} H={w.hidden_size}",
        )
    return built


def framework_versions() -> dict:
    versions = {}
    for name, module in (
        ("torch", "torch"),
        ("onnxruntime", "onnxruntime"),
        ("onnx", "onnx"),
        ("tensorflow", "tensorflow"),
    ):
        mod = sys.modules.get(module)
        versions[name] = getattr(mod, "__version__", None) if mod is not None else None
    return versions


def set_torch_threads(n):
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    return previous
