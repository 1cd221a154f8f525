"""Layer specifications: weights in the canonical layout of docs/math.md (PyTorch's), validated on creation.

Each spec is immutable (its arrays are read-only float32 copies) and knows how to describe itself to the C
runtime (`_desc`). Shapes use PyTorch's names: input_size I, hidden_size H, proj_size P.
"""

from __future__ import annotations

import numpy as np

from . import activations as acts

# Codes of enum lstmrt_layer_kind / lstmrt_merge_mode in native/include/lstmrt.h.
_KIND = {
    "lstm": 0,
    "gru": 1,
    "rnn": 2,
    "dense": 3,
    "activation": 4,
    "affine": 5,
    "embedding": 6,
    "norm": 7,
    "global_pool": 8,
    "add": 9,
    "prelu": 10,
    "attention_pool": 11,
}
MERGE_MODES = ("concat", "sum", "mul", "ave")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # the smallest normal float32: the runtime flushes smaller ones to 0


def _required(value, name: str, where: str):
    if value is None:
        raise ValueError(f"{where}: {name} is required")
    return value


def _weight(value, name: str, shape: tuple, where: str, *, optional: bool = False):
    """A read-only float32 C-contiguous copy of `value`, checked against `shape` (None entries: any size)."""
    if value is None:
        if optional:
            return None
        raise ValueError(f"{where}: {name} is required")
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{where}: {name} has dtype {arr.dtype}; expected floating point")
    if arr.ndim != len(shape) or any(want is not None and got != want for got, want in zip(arr.shape, shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{where}: {name} has shape {arr.shape}, expected {want}")
    with np.errstate(over="ignore"):  # a float64 value past float32's range: refused below, by name
        converted = np.array(arr, dtype=np.float32, order="C", copy=True)
    overflowed = np.isinf(converted) & np.isfinite(arr)  # NaN and inf given stay, as torch and Keras keep them
    if overflowed.any():
        at = tuple(int(i) for i in np.argwhere(overflowed)[0])
        raise ValueError(
            f"{where}: {name} holds {float(arr[at]):g} at {list(at)}, past float32's range (lstmrt's weights)"
        )
    arr = converted
    arr.setflags(write=False)
    return arr


class Layer:
    """Base of all layer specs."""

    kind = ""
    input_size: int | None
    output_size: int | None

    def _desc(self, input_size: int) -> dict:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _base_desc(self, input_size: int, hidden_size: int) -> dict:
        return {
            "kind": _KIND[self.kind],
            "input_size": input_size,
            "hidden_size": hidden_size,
            "proj_size": 0,
            "num_embeddings": 0,
            "num_directions": 1,
            "merge_mode": 0,
            "activations": [0, 0, 0],
            "activation_alpha": [0.0, 0.0, 0.0],
            "cell_clip": 0.0,
            "linear_before_reset": 0,
            "hold_masked_output": 0,
            "go_backwards": 0,
            "final_only": 0,
            "weights": [{}],
            "epsilon": 0.0,
            "norm_mode": 0,
            "pool_mode": 0,
            "add_from": 0,
            "add_offset": 0,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._summary()})"

    def _summary(self) -> str:
        return ""

    def parameter_count(self) -> int:
        return sum(int(v.size) for v in vars(self).values() if isinstance(v, np.ndarray))


class _Recurrent(Layer):
    """Options shared by recurrent specs (Keras semantics): hold_masked_output — a masked step repeats the
    previous output instead of 0; go_backwards — process the sequence last step first (outputs stay aligned
    with their input step; predict only); return_sequences=False — in predict, every step outputs the layer's
    final output (pair with Model(return_sequences=False))."""

    gates = 1
    hold_masked_output = False
    go_backwards = False
    return_sequences = True

    def _set_options(self, hold_masked_output, go_backwards, return_sequences):
        self.hold_masked_output = bool(hold_masked_output)
        self.go_backwards = bool(go_backwards)
        self.return_sequences = bool(return_sequences)

    def _option_desc(self) -> dict:
        return {
            "hold_masked_output": int(self.hold_masked_output),
            "go_backwards": int(self.go_backwards),
            "final_only": int(not self.return_sequences),
        }

    def _option_summary(self) -> list:
        names = ("hold_masked_output", "go_backwards")
        return [n for n in names if getattr(self, n)] + ([] if self.return_sequences else ["return_sequences=False"])

    def _direction_weights(self) -> dict:
        return {
            "weight_ih": self.weight_ih,
            "weight_hh": self.weight_hh,
            "bias_ih": self.bias_ih,
            "bias_hh": self.bias_hh,
        }

    @property
    def state_names(self) -> tuple:
        return ("h",)

    @property
    def state_sizes(self) -> tuple:
        return (self.output_size,)


class LSTM(_Recurrent):
    """One LSTM layer, one direction. weight_ih (4H, I), weight_hh (4H, Hr), biases (4H,), gates i, f, g, o.
    Options: weight_hr (P, H) projection (PyTorch proj_size; Hr = P), peephole (3, H) for gates i, f, o (ONNX),
    activations (gate f, candidate g, output h) as ONNX, cell_clip (ONNX: clips gate pre-activations)."""

    kind = "lstm"
    gates = 4

    def __init__(
        self,
        weight_ih,
        weight_hh,
        bias_ih=None,
        bias_hh=None,
        *,
        weight_hr=None,
        peephole=None,
        activations=("sigmoid", "tanh", "tanh"),
        cell_clip=None,
        hold_masked_output=False,
        go_backwards=False,
        return_sequences=True,
    ):
        where = "LSTM"
        w = np.asarray(_required(weight_ih, "weight_ih", where))
        if w.ndim != 2 or w.shape[0] % 4 or w.shape[0] == 0:
            raise ValueError(f"{where}: weight_ih has shape {w.shape}, expected (4*hidden_size, input_size)")
        H = w.shape[0] // 4
        self.hidden_size, self.input_size = H, int(w.shape[1])
        self.weight_ih = _weight(weight_ih, "weight_ih", (4 * H, None), where)
        self.weight_hr = _weight(weight_hr, "weight_hr", (None, H), where, optional=True)
        self.proj_size = 0 if self.weight_hr is None else int(self.weight_hr.shape[0])
        hr = self.proj_size or H
        self.weight_hh = _weight(weight_hh, "weight_hh", (4 * H, hr), where)
        self.bias_ih = _weight(bias_ih, "bias_ih", (4 * H,), where, optional=True)
        self.bias_hh = _weight(bias_hh, "bias_hh", (4 * H,), where, optional=True)
        if peephole is not None and np.shape(peephole) == (3 * H,):
            # ONNX's P[d] has this shape, ordered i, o, f: reshaping it to rows i, f, o would run silently wrong
            raise ValueError(
                f"{where}: peephole has shape ({3 * H},), expected (3, {H}) with rows i, f, o; ONNX's P[d] is "
                f"ordered i, o, f: pass P[d].reshape(3, {H})[[0, 2, 1]]"
            )
        self.peephole = _weight(peephole, "peephole", (3, H), where, optional=True)
        if not isinstance(activations, (tuple, list)) or len(activations) != 3:
            raise ValueError(f"{where}: activations must be 3 names (gate, candidate, output), got {activations!r}")
        self.activations = tuple(acts.canonical(a, where=where, elementwise=True) for a in activations)
        if cell_clip is not None and (
            isinstance(cell_clip, (bool, str)) or not isinstance(cell_clip, (int, float, np.number))
        ):
            raise TypeError(f"{where}: cell_clip must be a number (or None), got {cell_clip!r}")
        if cell_clip is not None and not (float(cell_clip) > 0):
            raise ValueError(f"{where}: cell_clip must be > 0 (or None), got {cell_clip!r}")
        if cell_clip is not None and np.float32(cell_clip) < _FLOAT32_TINY:  # the runtime flushes it to 0: no clip
            raise ValueError(f"{where}: cell_clip {cell_clip!r} is below float32's smallest normal number (1.2e-38)")
        self.cell_clip = None if cell_clip is None else float(cell_clip)
        self._set_options(hold_masked_output, go_backwards, return_sequences)
        self.output_size = hr

    @property
    def state_names(self) -> tuple:
        return ("h", "c")

    @property
    def state_sizes(self) -> tuple:
        return (self.output_size, self.hidden_size)

    def _direction_weights(self) -> dict:
        d = super()._direction_weights()
        d.update(weight_peephole=self.peephole, weight_proj=self.weight_hr)
        return d

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(self.input_size, self.hidden_size)
        d.update(
            proj_size=self.proj_size,
            activations=[acts.code(a) for a in self.activations],
            activation_alpha=[acts.alpha(a) for a in self.activations],
            cell_clip=self.cell_clip or 0.0,
            weights=[self._direction_weights()],
            **self._option_desc(),
        )
        return d

    def _summary(self) -> str:
        extra = [f"proj_size={self.proj_size}"] if self.proj_size else []
        if self.peephole is not None:
            extra.append("peephole")
        if self.activations != ("sigmoid", "tanh", "tanh"):
            extra.append("activations=" + "/".join(self.activations))
        if self.cell_clip:
            extra.append(f"cell_clip={self.cell_clip:g}")
        extra += self._option_summary()
        return ", ".join([f"{self.input_size} -> {self.hidden_size}"] + extra)


class GRU(_Recurrent):
    """One GRU layer, one direction. weight_ih (3H, I), weight_hh (3H, H), biases (3H,), gates r, z, n.
    reset_after=True: n = g(W_in x + b_in + r * (W_hn h + b_hn)) (PyTorch; Keras reset_after=True);
    reset_after=False: n = g(W_in x + b_in + W_hn (r * h) + b_hn) (Keras reset_after=False)."""

    kind = "gru"
    gates = 3

    def __init__(
        self,
        weight_ih,
        weight_hh,
        bias_ih=None,
        bias_hh=None,
        *,
        reset_after=True,
        activations=("sigmoid", "tanh"),
        hold_masked_output=False,
        go_backwards=False,
        return_sequences=True,
    ):
        where = "GRU"
        w = np.asarray(_required(weight_ih, "weight_ih", where))
        if w.ndim != 2 or w.shape[0] % 3 or w.shape[0] == 0:
            raise ValueError(f"{where}: weight_ih has shape {w.shape}, expected (3*hidden_size, input_size)")
        H = w.shape[0] // 3
        self.hidden_size, self.input_size, self.output_size = H, int(w.shape[1]), H
        self.weight_ih = _weight(weight_ih, "weight_ih", (3 * H, None), where)
        self.weight_hh = _weight(weight_hh, "weight_hh", (3 * H, H), where)
        self.bias_ih = _weight(bias_ih, "bias_ih", (3 * H,), where, optional=True)
        self.bias_hh = _weight(bias_hh, "bias_hh", (3 * H,), where, optional=True)
        self.reset_after = bool(reset_after)
        if not isinstance(activations, (tuple, list)) or len(activations) != 2:
            raise ValueError(f"{where}: activations must be 2 names (gate, candidate), got {activations!r}")
        self.activations = tuple(acts.canonical(a, where=where, elementwise=True) for a in activations)
        self._set_options(hold_masked_output, go_backwards, return_sequences)

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(self.input_size, self.hidden_size)
        d.update(
            activations=[acts.code(a) for a in self.activations] + [0],
            activation_alpha=[acts.alpha(a) for a in self.activations] + [0.0],
            linear_before_reset=int(self.reset_after),
            weights=[self._direction_weights()],
            **self._option_desc(),
        )
        return d

    def _summary(self) -> str:
        extra = [] if self.reset_after else ["reset_after=False"]
        if self.activations != ("sigmoid", "tanh"):
            extra.append("activations=" + "/".join(self.activations))
        extra += self._option_summary()
        return ", ".join([f"{self.input_size} -> {self.hidden_size}"] + extra)


class SimpleRNN(_Recurrent):
    """Elman RNN (Keras SimpleRNN, torch nn.RNN): h = act(W_ih x + b_ih + W_hh h + b_hh)."""

    kind = "rnn"

    def __init__(
        self,
        weight_ih,
        weight_hh,
        bias_ih=None,
        bias_hh=None,
        *,
        activation="tanh",
        hold_masked_output=False,
        go_backwards=False,
        return_sequences=True,
    ):
        where = "SimpleRNN"
        w = np.asarray(_required(weight_ih, "weight_ih", where))
        if w.ndim != 2 or w.shape[0] == 0:
            raise ValueError(f"{where}: weight_ih has shape {w.shape}, expected (hidden_size, input_size)")
        H = int(w.shape[0])
        self.hidden_size, self.input_size, self.output_size = H, int(w.shape[1]), H
        self.weight_ih = _weight(weight_ih, "weight_ih", (H, None), where)
        self.weight_hh = _weight(weight_hh, "weight_hh", (H, H), where)
        self.bias_ih = _weight(bias_ih, "bias_ih", (H,), where, optional=True)
        self.bias_hh = _weight(bias_hh, "bias_hh", (H,), where, optional=True)
        self.activation = acts.canonical(activation, where=where, elementwise=True)
        self._set_options(hold_masked_output, go_backwards, return_sequences)

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(self.input_size, self.hidden_size)
        d.update(
            activations=[acts.code(self.activation), 0, 0],
            activation_alpha=[acts.alpha(self.activation), 0.0, 0.0],
            weights=[self._direction_weights()],
            **self._option_desc(),
        )
        return d

    def _summary(self) -> str:
        return ", ".join(
            [f"{self.input_size} -> {self.hidden_size}, activation={self.activation}"] + self._option_summary()
        )


class Bidirectional(Layer):
    """Two recurrent layers of the same kind and sizes, the second run backwards in time; outputs merged as
    Keras does: concat [forward, backward], sum, mul or ave."""

    kind = "bidirectional"

    def __init__(self, forward, backward, merge_mode="concat"):
        if not isinstance(forward, _Recurrent) or type(forward) is not type(backward):
            raise TypeError(
                "Bidirectional: forward and backward must be recurrent layer specs of the same type, "
                f"got {type(forward).__name__} and {type(backward).__name__}"
            )
        same = (
            "input_size",
            "hidden_size",
            "output_size",
            "activations",
            "reset_after",
            "cell_clip",
            "activation",
            "hold_masked_output",
            "return_sequences",
        )
        if forward.go_backwards or backward.go_backwards:
            raise ValueError(
                "Bidirectional: give both directions in forward time order (go_backwards=False); "
                "the backward one is run in reverse"
            )
        for attr in same:
            if getattr(forward, attr, None) != getattr(backward, attr, None):
                raise ValueError(f"Bidirectional: forward and backward differ in {attr}")
        if (getattr(forward, "peephole", None) is None) != (getattr(backward, "peephole", None) is None):
            raise ValueError("Bidirectional: forward and backward differ in peephole")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: unknown merge_mode {merge_mode!r}; supported: {', '.join(MERGE_MODES)}")
        self.forward, self.backward, self.merge_mode = forward, backward, merge_mode
        self.input_size = forward.input_size
        self.output_size = forward.output_size * (2 if merge_mode == "concat" else 1)

    def parameter_count(self) -> int:
        return self.forward.parameter_count() + self.backward.parameter_count()

    def _desc(self, input_size: int) -> dict:
        d = self.forward._desc(input_size)
        d.update(
            num_directions=2,
            merge_mode=MERGE_MODES.index(self.merge_mode),
            weights=[self.forward._direction_weights(), self.backward._direction_weights()],
        )
        return d

    def _summary(self) -> str:
        return f"{self.forward!r}, merge_mode={self.merge_mode!r}"


class Dense(Layer):
    """y = activation(weight @ x + bias) at every time step. weight (O, I) as torch nn.Linear."""

    kind = "dense"

    def __init__(self, weight, bias=None, *, activation="linear"):
        w = np.asarray(weight)
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"Dense: weight has shape {w.shape}, expected (out_features, in_features)")
        self.output_size, self.input_size = int(w.shape[0]), int(w.shape[1])
        self.weight = _weight(weight, "weight", w.shape, "Dense")
        self.bias = _weight(bias, "bias", (self.output_size,), "Dense", optional=True)
        self.activation = acts.canonical(activation, where="Dense")

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(self.input_size, self.output_size)
        d.update(
            activations=[acts.code(self.activation), 0, 0],
            activation_alpha=[acts.alpha(self.activation), 0.0, 0.0],
            weights=[{"weight_ih": self.weight, "bias_ih": self.bias}],
        )
        return d

    def _summary(self) -> str:
        return f"{self.input_size} -> {self.output_size}, activation={self.activation}"


class Activation(Layer):
    """An element-wise (or, for softmax, per-step) activation between layers."""

    kind = "activation"
    input_size = output_size = None

    def __init__(self, name):
        self.activation = acts.canonical(name, where="Activation")

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(input_size, input_size)
        d["activations"] = [acts.code(self.activation), 0, 0]
        d["activation_alpha"] = [acts.alpha(self.activation), 0.0, 0.0]
        return d

    def _summary(self) -> str:
        return repr(self.activation)


class Affine(Layer):
    """y = x * scale + shift, per feature (a fitted normalisation such as Keras Normalization)."""

    kind = "affine"

    def __init__(self, scale, shift):
        s = np.asarray(scale)
        if s.ndim != 1 or s.size == 0:
            raise ValueError(f"Affine: scale has shape {s.shape}, expected (features,)")
        self.input_size = self.output_size = int(s.size)
        self.scale = _weight(scale, "scale", (s.size,), "Affine")
        self.shift = _weight(shift, "shift", (s.size,), "Affine")

    @classmethod
    def from_batch_norm(cls, mean, variance, epsilon, scale=None, shift=None) -> Affine:
        """A batch normalisation at inference, (x - mean) / sqrt(variance + epsilon) * scale + shift per feature,
        folded in float64 (scale None: ones; shift None: zeros): torch's nn.BatchNorm1d, Keras' BatchNormalization,
        ONNX's BatchNormalization."""
        mean = np.asarray(mean, np.float64).reshape(-1)
        gamma = 1.0 if scale is None else np.asarray(scale, np.float64).reshape(-1)
        beta = 0.0 if shift is None else np.asarray(shift, np.float64).reshape(-1)
        factor = gamma / np.sqrt(np.asarray(variance, np.float64).reshape(-1) + float(epsilon))
        return cls(np.broadcast_to(factor, mean.shape), beta - mean * factor)

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(self.input_size, self.input_size)
        d["weights"] = [{"weight_ih": self.scale, "bias_ih": self.shift}]
        return d

    def _summary(self) -> str:
        return f"{self.input_size} features"


class PReLU(Layer):
    """y = x if x >= 0 else slope * x, per feature: a leaky ReLU with a learned slope for each feature (torch
    nn.PReLU(num_parameters=features), Keras PReLU, ONNX PRelu). x = -0.0 gives -0.0 and NaN stays NaN."""

    kind = "prelu"

    def __init__(self, slope):
        s = np.asarray(slope)
        if s.ndim != 1 or s.size == 0:
            raise ValueError(f"PReLU: slope has shape {s.shape}, expected (features,)")
        self.input_size = self.output_size = int(s.size)
        self.slope = _weight(slope, "slope", (s.size,), "PReLU")

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(self.input_size, self.input_size)
        d["weights"] = [{"weight_ih": self.slope}]
        return d

    def _summary(self) -> str:
        return f"{self.input_size} features"


class LayerNorm(Layer):
    """Normalisation over the features of each step (docs/math.md):
    mode "layer": y = (x - mean) / sqrt(var + epsilon) * scale + shift (torch nn.LayerNorm, Keras LayerNormalization);
    mode "rms": y = x / sqrt(mean(x^2) + epsilon) * scale (torch nn.RMSNorm);
    mode "variance_scale": y = x / sqrt(var + epsilon) * scale (Keras 3 LayerNormalization(rms_scaling=True)).
    scale None means ones, shift None zeros; the RMS modes take no shift."""

    kind = "norm"
    MODES = ("layer", "rms", "variance_scale")

    def __init__(self, features, *, scale=None, shift=None, epsilon=1e-5, mode="layer"):
        if isinstance(features, bool) or not isinstance(features, (int, np.integer)) or features < 1:
            raise ValueError(f"LayerNorm: features must be a positive int, got {features!r}")
        if mode not in self.MODES:
            raise ValueError(f"LayerNorm: unknown mode {mode!r}; supported: {', '.join(self.MODES)}")
        if mode != "layer" and shift is not None:
            raise ValueError(f"LayerNorm: mode {mode!r} has no shift")
        if isinstance(epsilon, (bool, str)) or not isinstance(epsilon, (int, float, np.number)):
            raise TypeError(f"LayerNorm: epsilon must be a number, got {epsilon!r}")
        eps = float(epsilon)
        if not (np.isfinite(eps) and 0 <= eps <= _FLOAT32_MAX):
            raise ValueError(f"LayerNorm: epsilon must be finite and >= 0 (in float32, the runtime's), got {epsilon!r}")
        self.input_size = self.output_size = int(features)
        self.scale = None if scale is None else _weight(scale, "scale", (self.input_size,), "LayerNorm")
        self.shift = None if shift is None else _weight(shift, "shift", (self.input_size,), "LayerNorm")
        self.epsilon, self.mode = eps, mode

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(self.input_size, self.input_size)
        d["weights"] = [{"weight_ih": self.scale, "bias_ih": self.shift}]
        d.update(epsilon=self.epsilon, norm_mode=self.MODES.index(self.mode))
        return d

    def _summary(self) -> str:
        mode = "" if self.mode == "layer" else f", mode={self.mode!r}"
        return f"{self.input_size} features, epsilon={self.epsilon:g}{mode}"


class GlobalPooling(Layer):
    """The mean or max over the steps so far, per feature (docs/math.md): Keras GlobalAveragePooling1D /
    GlobalMaxPooling1D, torch out.mean(1) / out.max(1). Step t outputs the pool of steps 0..t, so a stream returns
    the pool of its sequence so far; pair with Model(return_sequences=False) for the frameworks' (B, F) result.
    mode "average": the mean of the steps a mask leaves active (before the first: NaN, Keras's 0 / 0);
    mode "max": the max of every step, masked or not, as Keras's GlobalMaxPooling1D (which ignores the mask).
    State per sequence: the pooled value; for "average" the part of the mean below float32 precision (mean_low: the
    mean is mean + mean_low, exact on long streams); the number of steps pooled (it stops at 2^24, from where the
    mean moves as an average over roughly the last 2^24 steps)."""

    kind = "global_pool"
    MODES = ("average", "max")

    def __init__(self, features, mode="average"):
        if isinstance(features, bool) or not isinstance(features, (int, np.integer)) or not 1 <= features <= 1 << 24:
            raise ValueError(f"GlobalPooling: features must be an int in [1, 16777216], got {features!r}")
        if mode not in self.MODES:
            raise ValueError(f"GlobalPooling: unknown mode {mode!r}; supported: {', '.join(self.MODES)}")
        self.input_size = self.output_size = int(features)
        self.mode = mode

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(self.input_size, self.input_size)
        d["pool_mode"] = self.MODES.index(self.mode)
        return d

    @property
    def state_names(self) -> tuple:
        return ("mean", "mean_low", "count") if self.mode == "average" else ("max", "count")

    @property
    def state_sizes(self) -> tuple:
        return (self.input_size,) * len(self.state_names[:-1]) + (1,)

    def _summary(self) -> str:
        return f"{self.input_size} features, mode={self.mode!r}"


class _PointReader(Layer):
    """A layer that reads an earlier point of the chain besides its input: features [start, start + features) of the
    model input (source="input") or of the output of the layer at index `source` of the Model's list."""

    def _set_point(self, features, source, start) -> int:
        """Validates and keeps source and start; returns features as an int."""
        name = type(self).__name__
        if isinstance(features, bool) or not isinstance(features, (int, np.integer)) or not 1 <= features <= 1 << 24:
            raise ValueError(f"{name}: features must be an int in [1, 16777216], got {features!r}")
        if source != "input" and (isinstance(source, bool) or not isinstance(source, (int, np.integer)) or source < 0):
            raise ValueError(f'{name}: source must be "input" or the index of an earlier layer, got {source!r}')
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < 1 << 24:
            raise ValueError(f"{name}: start must be an int in [0, 16777216), got {start!r}")
        self.source = source if source == "input" else int(source)
        self.start = int(start)
        return int(features)

    def _point_desc(self, input_size: int, hidden_size: int) -> dict:
        d = self._base_desc(input_size, hidden_size)
        d.update(add_from=0 if self.source == "input" else self.source + 1, add_offset=self.start)
        return d

    def _point_summary(self, features: int) -> str:
        source = "input" if self.source == "input" else f"layer {self.source}"
        return f"{source}[{self.start}:{self.start + features}]"


class Add(_PointReader):
    """A residual / skip connection: y = x + s[start : start + features] at every step, s an earlier point of the
    chain: the model input (source="input") or the output of the layer at index `source` of the Model's list. torch:
    `self.lin(out) + x[:, :, 0:1]` (the audio-effect skip), `out = lstm2(out) + out`; Keras: Add of two layers."""

    kind = "add"

    def __init__(self, features, source="input", start=0):
        self.input_size = self.output_size = self._set_point(features, source, start)

    def _desc(self, input_size: int) -> dict:
        return self._point_desc(self.input_size, self.input_size)

    def _summary(self) -> str:
        return self._point_summary(self.input_size)


class AttentionPooling(_PointReader):
    """Softmax attention over the steps so far (docs/math.md): step t outputs sum over tau <= t of softmax(e)(tau)
    v(tau), with scores e this layer's input and values v the features [start, start + features) of an earlier point
    of the chain (source: "input" or a layer index, as Add's). torch: `w = torch.softmax(self.score(out), dim=1);
    (w * out).sum(1)`, the score a Linear(H, 1) or Linear -> tanh -> Linear. Scores: one per step, shared by every
    feature, or one per feature (per_feature=True, a softmax over time for each feature). Like GlobalPooling, a
    stream returns the pool of its sequence so far; pair with Model(return_sequences=False) for the (B, F) result.
    A masked step is not attended (its weight is 0); before the first step of non-zero weight the output is NaN.
    State per sequence: the weighted mean and its part below float32 precision (mean, mean_low), and per score the
    largest seen and the sum of the weights relative to it (max_score, weight_sum; the sum stops at 2^24)."""

    kind = "attention_pool"

    def __init__(self, features, source, start=0, *, per_feature=False):
        self.output_size = self._set_point(features, source, start)
        self.per_feature = bool(per_feature) and self.output_size > 1  # one feature: the same computation
        self.input_size = self.output_size if self.per_feature else 1

    def _desc(self, input_size: int) -> dict:
        return self._point_desc(self.input_size, self.output_size)

    @property
    def state_names(self) -> tuple:
        return ("mean", "mean_low", "max_score", "weight_sum")

    @property
    def state_sizes(self) -> tuple:
        return (self.output_size, self.output_size, self.input_size, self.input_size)

    def _summary(self) -> str:
        return self._point_summary(self.output_size) + (", per_feature=True" if self.per_feature else "")


class Embedding(Layer):
    """Token ids in (one per step), rows of weight (num_embeddings, embedding_dim) out. First layer only."""

    kind = "embedding"

    def __init__(self, weight):
        w = np.asarray(weight)
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"Embedding: weight has shape {w.shape}, expected (num_embeddings, embedding_dim)")
        self.num_embeddings, self.output_size = int(w.shape[0]), int(w.shape[1])
        self.input_size = 1
        self.weight = _weight(weight, "weight", w.shape, "Embedding")

    def _desc(self, input_size: int) -> dict:
        d = self._base_desc(1, self.output_size)
        d.update(num_embeddings=self.num_embeddings, weights=[{"weight_ih": self.weight}])
        return d

    def _summary(self) -> str:
        return f"{self.num_embeddings} tokens -> {self.output_size}"


def is_recurrent(spec: Layer) -> bool:
    return isinstance(spec, (_Recurrent, Bidirectional))


def state_layout(spec: Layer) -> list:
    """The state a layer keeps per sequence, in the C runtime's order: (names, sizes) per direction or pool."""
    if isinstance(spec, (GlobalPooling, AttentionPooling)):
        return [(spec.state_names, spec.state_sizes)]
    if not is_recurrent(spec):
        return []
    cell = spec.forward if isinstance(spec, Bidirectional) else spec
    return [(cell.state_names, cell.state_sizes)] * (2 if isinstance(spec, Bidirectional) else 1)
