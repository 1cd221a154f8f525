"""The oracle: a float64 NumPy implementation of docs/math.md, written from that page and nothing else.

Plain loops over time steps, one function per block of equations, no shared code with the runtime. It reads the
canonical weights from lstmrt layer specs (their attributes are the layout of docs/math.md, section 1).

Entry points:
    predict(layers, X, lengths=None, mask=None, return_sequences=True)   like Model.predict on (B, T, I)
    run(layers, X, state=None) -> (Y, state)                              like a batched Stream.run
States are lists with one tuple per recurrent layer: (h, c) for an LSTM, (h,) otherwise, arrays (B, size).
"""

from __future__ import annotations

import math

import numpy as np
from lstmrt.layers import (
    GRU,
    LSTM,
    Activation,
    Add,
    AttentionPooling,
    Affine,
    Bidirectional,
    Dense,
    Embedding,
    GlobalPooling,
    LayerNorm,
    PReLU,
    SimpleRNN,
)

# math.erf element-wise: exact to double precision, no SciPy needed.
erf = np.vectorize(math.erf, otypes=[np.float64])

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _relu6(x):
    return np.where(x < 0, 0.0, np.where(x > 6, 6.0, x))


def _softplus(x):
    return np.where(x > 0, x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _softsign(x):
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(x), np.sign(x), x / (1.0 + np.abs(x)))


def _softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _with_expm1(f):
    def g(*args):
        with np.errstate(over="ignore", invalid="ignore"):
            return f(*args)

    return g


# docs/math.md section 7. np.where(x < 0, ...) style keeps NaN where the comparison is false.
ACTIVATIONS = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.where(x < 0, 0.0, x),
    "linear": lambda x: x,
    "hard_sigmoid": lambda x: np.where(0.2 * x + 0.5 < 0, 0.0, np.where(0.2 * x + 0.5 > 1, 1.0, 0.2 * x + 0.5)),
    "hard_sigmoid_v3": lambda x: _relu6(x + 3.0) / 6.0,
    "elu": _with_expm1(lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))),
    "softsign": _softsign,
    "softplus": _with_expm1(_softplus),
    "selu": _with_expm1(lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))),
    "exponential": _with_expm1(np.exp),
    "relu6": _relu6,
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1.0 + erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
    "hard_silu": lambda x: x * _relu6(x + 3.0) / 6.0,
    "mish": _with_expm1(lambda x: x * np.tanh(_softplus(x))),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "hard_tanh": lambda x: np.where(x < -1, -1.0, np.where(x > 1, 1.0, x)),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "log_sigmoid": lambda x: np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x))),
    "sparse_plus": lambda x: np.where(x <= -1, 0.0, np.where(x < 1, (x + 1) ** 2 / 4, x)),
    "sparse_sigmoid": lambda x: np.where(x <= -1, 0.0, np.where(x >= 1, 1.0, (x + 1) / 2)),
}


def _squareplus(x, b):
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(x * x + b)
        return np.where(x >= 0, (x + s) / 2, b / (2 * (s - x)))


def _zero_keeping_nan(x):
    return np.where(np.isnan(x), x, 0.0)


# Activations with a parameter a: (its value when the name gives none, f(x, a)).
PARAMETRIC = {
    "leaky_relu": (0.2, lambda x, a: np.where(x < 0, a * x, x)),
    "celu": (1.0, _with_expm1(lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0) / a)))),
    "hard_shrink": (0.5, lambda x, a: np.where(np.abs(x) > a, x, _zero_keeping_nan(x))),
    "soft_shrink": (0.5, lambda x, a: np.where(x > a, x - a, np.where(x < -a, x + a, _zero_keeping_nan(x)))),
    "squareplus": (4.0, _squareplus),
    "clip_min": (0.0, lambda x, a: np.where(x < a, a, x)),  # NaN < a is False: NaN kept
    "clip_max": (0.0, lambda x, a: np.where(x > a, a, x)),
}


def activate(name: str, x):
    """name as lstmrt spells it: "relu", "leaky_relu" (the default parameter) or "leaky_relu(0.01)"."""
    x = np.asarray(x, np.float64)
    key, _, given = name.partition("(")
    if key in PARAMETRIC:
        default, f = PARAMETRIC[key]
        return f(x, float(given.rstrip(")")) if given else default)
    return ACTIVATIONS[name](x)


def _f64(a, shape=None):
    return np.zeros(shape) if a is None else np.asarray(a, np.float64)


# -- cells (sections 2, 3, 4): one step of one direction for rows (B, ·) -------------------------------------
def lstm_step(spec: LSTM, x, h, c):
    H = spec.hidden_size
    f_act, g_act, h_act = spec.activations
    a = x @ _f64(spec.weight_ih).T + h @ _f64(spec.weight_hh).T + _f64(spec.bias_ih, 4 * H) + _f64(spec.bias_hh, 4 * H)
    a_i, a_f, a_g, a_o = (a[:, k * H : (k + 1) * H] for k in range(4))
    p = None if spec.peephole is None else _f64(spec.peephole)
    if p is not None:
        a_i, a_f = a_i + p[0] * c, a_f + p[1] * c
    clip = spec.cell_clip
    if clip:
        a_i, a_f, a_g = (np.clip(v, -clip, clip) for v in (a_i, a_f, a_g))
    c_new = activate(f_act, a_f) * c + activate(f_act, a_i) * activate(g_act, a_g)
    if p is not None:
        a_o = a_o + p[2] * c_new
    if clip:
        a_o = np.clip(a_o, -clip, clip)
    m = activate(f_act, a_o) * activate(h_act, c_new)
    h_new = m if spec.weight_hr is None else m @ _f64(spec.weight_hr).T
    return h_new, c_new


def gru_step(spec: GRU, x, h):
    H = spec.hidden_size
    f_act, g_act = spec.activations
    W, U = _f64(spec.weight_ih), _f64(spec.weight_hh)
    b_i, b_h = _f64(spec.bias_ih, 3 * H), _f64(spec.bias_hh, 3 * H)
    gx = x @ W.T + b_i
    r = activate(f_act, gx[:, :H] + h @ U[:H].T + b_h[:H])
    z = activate(f_act, gx[:, H : 2 * H] + h @ U[H : 2 * H].T + b_h[H : 2 * H])
    if spec.reset_after:
        n = activate(g_act, gx[:, 2 * H :] + r * (h @ U[2 * H :].T + b_h[2 * H :]))
    else:
        n = activate(g_act, gx[:, 2 * H :] + (r * h) @ U[2 * H :].T + b_h[2 * H :])
    return (1.0 - z) * n + z * h


def rnn_step(spec: SimpleRNN, x, h):
    H = spec.hidden_size
    a = x @ _f64(spec.weight_ih).T + _f64(spec.bias_ih, H) + h @ _f64(spec.weight_hh).T + _f64(spec.bias_hh, H)
    return activate(spec.activation, a)


def cell_step(spec, x, state: tuple) -> tuple:
    if isinstance(spec, LSTM):
        return lstm_step(spec, x, *state)
    if isinstance(spec, GRU):
        return (gru_step(spec, x, state[0]),)
    return (rnn_step(spec, x, state[0]),)


def zero_cell_state(spec, batch: int) -> tuple:
    return tuple(np.zeros((batch, n)) for n in spec.state_sizes)


# -- sequences (section 5) -------------------------------------------------------------------------------------
def direction(spec, X, active, reverse: bool, state: tuple, final_only: bool, ends=None):
    """One direction over (B, T, I): inactive rows carry state and output 0 (or h with hold_masked_output).
    final_only: every step gets the output of the last step run within each sequence's length (ends, (B,); T
    when None): step ends - 1, or step 0 in reverse; the zero state for an empty sequence."""
    B, T, _ = X.shape
    Y = np.zeros((B, T, spec.output_size))
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        new = cell_step(spec, X[:, t], state)
        keep = active[:, t][:, None]
        state = tuple(np.where(keep, n, o) for n, o in zip(new, state))
        held = state[0] if spec.hold_masked_output else 0.0
        Y[:, t] = np.where(keep, state[0], held)
    if final_only:
        ends = np.full(B, T) if ends is None else np.asarray(ends)
        last = np.where(ends == 0, -1, 0 if reverse else ends - 1)
        final = np.where((last >= 0)[:, None], Y[np.arange(B), np.maximum(last, 0)], state[0])
        Y[:] = final[:, None, :]
    return Y, state


def merge(mode: str, yf, yb):
    if mode == "concat":
        return np.concatenate([yf, yb], axis=-1)
    if mode == "sum":
        return yf + yb
    if mode == "mul":
        return yf * yb
    return 0.5 * (yf + yb)


def recurrent_layer(spec, X, active, states: list, whole_sequence: bool, ends=None):
    """Returns outputs and the new state tuples of each direction."""
    if isinstance(spec, Bidirectional):
        final = whole_sequence and not spec.forward.return_sequences
        yf, sf = direction(spec.forward, X, active, False, states[0], final, ends)
        yb, sb = direction(spec.backward, X, active, True, states[1], final, ends)
        return merge(spec.merge_mode, yf, yb), [sf, sb]
    final = whole_sequence and not spec.return_sequences
    y, s = direction(spec, X, active, spec.go_backwards, states[0], final, ends)
    return y, [s]


def prelu(X, slope):
    """x >= 0 keeps x (so -0.0 stays -0.0), else slope * x (NaN is not >= 0: it stays NaN; -inf * 0 is NaN)."""
    with np.errstate(invalid="ignore", over="ignore"):  # np.where computes slope * x everywhere
        return np.where(X >= 0, X, slope * X)


def step_layer(spec, X):
    """Section 6: layers that act on each step on its own."""
    if isinstance(spec, Dense):
        return activate(spec.activation, X @ _f64(spec.weight).T + _f64(spec.bias, spec.output_size))
    if isinstance(spec, Activation):
        return activate(spec.activation, X)
    if isinstance(spec, Affine):
        return X * _f64(spec.scale) + _f64(spec.shift)
    if isinstance(spec, PReLU):
        return prelu(X, _f64(spec.slope))
    if isinstance(spec, LayerNorm):
        mean = X.mean(-1, keepdims=True)
        statistic = (X * X).mean(-1, keepdims=True) if spec.mode == "rms" else X.var(-1, keepdims=True)
        centred = X - mean if spec.mode == "layer" else X
        scale = 1.0 if spec.scale is None else _f64(spec.scale)
        shift = 0.0 if spec.shift is None else _f64(spec.shift)
        return centred / np.sqrt(statistic + spec.epsilon) * scale + shift
    if isinstance(spec, Embedding):
        ids = X[..., 0]
        assert np.all(ids == np.floor(ids)) and ids.min() >= 0 and ids.max() < spec.num_embeddings
        return _f64(spec.weight)[ids.astype(np.int64)]
    raise TypeError(f"not a per-step layer: {spec!r}")


def pool_layer(spec: GlobalPooling, X, active, state: tuple):
    """Section 6: step t outputs the mean of the active steps up to t (0 / 0 before the first) or the max of every
    step up to t. state as lstmrt's stream keeps it: (mean, mean_low, count) or (max, count), count (B, 1)."""
    *parts, count = (np.array(a, np.float64).reshape(len(X), -1) for a in state)
    value = sum(parts)  # mean + mean_low
    total = value * count  # the sum behind a mean
    Y = np.empty_like(X)
    for t in range(X.shape[1]):
        if spec.mode == "max":
            count += 1
            value = np.where(count == 1, X[:, t], np.maximum(value, X[:, t]))  # np.maximum keeps NaN
            Y[:, t] = value
        else:
            take = active[:, t][:, None]
            total = total + np.where(take, X[:, t], 0.0)
            count += take
            with np.errstate(invalid="ignore", divide="ignore"):
                Y[:, t] = total / count
    if spec.mode == "max":
        return Y, (Y[:, -1], count)
    return Y, (np.nan_to_num(total / np.maximum(count, 1)), np.zeros_like(value), count)


def attention_layer(spec: AttentionPooling, E, V, active, state: tuple):
    """Section 6: step t outputs the softmax-weighted mean of the values of the active steps up to t, computed over
    all of them at once (lstmrt keeps a running softmax). E (B, T, C) scores, V (B, T, F) values. state as lstmrt's
    stream keeps it, (mean, mean_low, max_score, weight_sum): the steps before are one step of score
    max_score + log(weight_sum) and value mean + mean_low. A step of weight 0 adds nothing (not even 0 * inf)."""
    mean, low, best, total = (np.array(a, np.float64).reshape(len(E), -1) for a in state)
    with np.errstate(divide="ignore"):
        past_score = np.where(total > 0, best + np.log(total), -np.inf)
    poisoned = np.isnan(best)
    scores = np.concatenate([past_score[:, None], np.where(active[..., None], E, -np.inf)], axis=1)
    values = np.concatenate([(mean + low)[:, None], V], axis=1)
    Y = np.empty(V.shape)
    for t in range(1, E.shape[1] + 1):
        s = scores[:, : t + 1]
        bad = poisoned | np.any(np.isnan(s) | (s == np.inf), axis=1)
        with np.errstate(invalid="ignore"):
            top = np.max(np.where(np.isfinite(s), s, -np.inf), axis=1, keepdims=True)
            w = np.exp(s - top)
            w = np.where(np.isfinite(w), w, 0.0)
        w = np.broadcast_to(w, s.shape[:2] + (V.shape[2],)) if s.shape[2] == 1 else w
        with np.errstate(invalid="ignore", divide="ignore"):
            weighted = np.where(w > 0, w * values[:, : t + 1], 0.0).sum(axis=1) / w.sum(axis=1)
        bad = np.broadcast_to(bad, weighted.shape) if bad.shape[1] == 1 else bad
        Y[:, t - 1] = np.where(bad, np.nan, weighted)
    return Y


def _is_recurrent(spec) -> bool:
    return isinstance(spec, (LSTM, GRU, SimpleRNN, Bidirectional))


def _cells(spec) -> list:
    return [spec.forward, spec.backward] if isinstance(spec, Bidirectional) else [spec]


def _forward(layers, X, active, states, whole_sequence, ends=None):
    new_states = []
    k = 0
    points = [X]  # the model input, then each layer's output: what an Add reads
    for spec in layers:
        if isinstance(spec, Add):
            source = points[0 if spec.source == "input" else spec.source + 1]
            X = X + source[..., spec.start : spec.start + spec.input_size]
        elif _is_recurrent(spec):
            n = len(_cells(spec))
            X, s = recurrent_layer(spec, X, active, states[k : k + n], whole_sequence, ends)
            new_states += s
            k += n
        elif isinstance(spec, GlobalPooling):
            X, s = pool_layer(spec, X, active, states[k])
            new_states.append(s)
            k += 1
        elif isinstance(spec, AttentionPooling):
            source = points[0 if spec.source == "input" else spec.source + 1]
            X = attention_layer(spec, X, source[..., spec.start : spec.start + spec.output_size], active, states[k])
            new_states.append(states[k])  # not carried on: compare a stream's outputs, not its attention state
            k += 1
        else:
            X = step_layer(spec, X)
        points.append(X)
    return X, new_states


def zero_state(layers, batch: int) -> list:
    """One tuple per recurrent direction (a bidirectional layer has two) and per pool, zeros."""
    state = []
    for spec in layers:
        if isinstance(spec, (GlobalPooling, AttentionPooling)):
            state.append(tuple(np.zeros((batch, size)) for size in spec.state_sizes))
        elif _is_recurrent(spec):
            state += [zero_cell_state(cell, batch) for cell in _cells(spec)]
    return state


def _as_input(X):
    X = np.asarray(X, np.float64)
    return X[..., None] if X.ndim == 2 else X  # token ids (B, T) -> (B, T, 1)


def predict(layers, X, lengths=None, mask=None, return_sequences=True):
    """Model.predict for a batch: X (B, T, I) (or token ids (B, T)) -> (B, T, O), or (B, O) when
    return_sequences is False."""
    X = _as_input(X)
    B, T, _ = X.shape
    active = np.ones((B, T), bool)
    if lengths is not None:
        active &= np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    if mask is not None:
        active &= np.asarray(mask, bool)
    Y, _ = _forward(layers, X, active, zero_state(layers, B), True, lengths)
    if lengths is not None:
        Y[np.arange(T)[None, :] >= np.asarray(lengths)[:, None]] = 0.0
    if return_sequences:
        return Y
    last = np.full(B, T - 1) if lengths is None else np.asarray(lengths) - 1
    out = Y[np.arange(B), np.maximum(last, 0)]
    out[last < 0] = 0.0
    return out


def run(layers, X, state=None):
    """A batched stream: X (B, T, I) from `state` (zero when None), every step active, final_only ignored."""
    X = _as_input(X)
    B, T, _ = X.shape
    state = zero_state(layers, B) if state is None else [tuple(np.asarray(a, np.float64) for a in s) for s in state]
    return _forward(layers, X, np.ones((B, T), bool), state, False)
