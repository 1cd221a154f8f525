"""The ONNX ops that compute on the data, read as lstmrt layers: recurrent nodes (LSTM, GRU, RNN), MatMul / Gemm
(Dense), a per-feature Add / Sub / Mul / Div by a constant (a Dense's bias or an Affine), PRelu with a slope per
feature (PReLU), an Add of two data values (a skip connection), Gather of token ids (Embedding) and element-wise
activations, merged into the Dense before them where they fit (Softmax's: onnx_attention.py). A Mul or MatMul of
attention weights is the attention pool's (onnx_attention.py). Part of the graph reader (onnx_graph.GraphReader),
whose state and bookkeeping they use."""

from __future__ import annotations

import numpy as np

from .. import activations as acts
from ..errors import CorruptFileError, LoadError
from ..layers import Activation, Add, Affine, Bidirectional, Dense, Embedding, PReLU
from . import onnx_activations
from .clip_ops import clip_plan
from . import onnx_fold as fold
from .onnx_attention import is_attention
from .onnx_directions import both_directions
from .onnx_layers import recurrent_spec
from .onnx_values import (
    DIRECTIONS,
    FEATURES,
    INPUT_AXES,
    MERGED,
    STALE,
    UNIT,
    Data,
    Final,
    LengthsInput,
    StateInput,
    Zeros,
)

_FLOAT32_MAX = float(np.finfo(np.float32).max)


class ComputeOps:
    """GraphReader's methods for the ops that add or change a layer of the chain."""

    # -- recurrent nodes ----------------------------------------------------------------------------------------
    def _recurrent(self, node, args):
        x = args[0] if args else None
        if not isinstance(x, Data) or x.depth != len(self.layers) or x.last or x.final_of or x.direction:
            raise self._refuse(node, "reads an input that is not the output of the layers before it")
        if x.feature_start is not None:  # it would run on the slice's width, dropping the slice (a probe's find)
            raise self._refuse(
                node,
                "reads a slice of the features before it (x[..., a:b]): lstmrt's layers read all the features of "
                "the layer before (a slice is read only as a skip connection)",
            )
        layout = node.attrs.get("layout", 0)
        if layout not in (0, 1):
            raise CorruptFileError(f"{self.node_where} has layout {layout!r}; ONNX defines 0 and 1")
        time, batch = (x.axes[0], x.axes[1]) if layout == 0 else (x.axes[1], x.axes[0])
        if len(x.axes) != 3 or x.axes[2] != FEATURES or {time, batch} != set(INPUT_AXES):
            raise self._refuse(node, f"reads axes {x.axes}; expected (time, batch, features) for layout={layout}")
        if self.time_axis not in (None, time):
            raise self._refuse(node, "runs over the batch axis of the layers before it")
        self.time_axis = time
        weights = {}
        for slot, key in ((1, "W"), (2, "R"), (3, "B"), (7, "P")):
            if slot < len(args) and args[slot] is not None:
                weights[key] = self._weight(node, args[slot], key)
        lengths = args[4] if len(args) > 4 else None
        if lengths is not None and not isinstance(lengths, LengthsInput):
            raise self._refuse(node, "has sequence_lens that are not a graph input: pass lengths= to predict instead")
        for slot, name in ((5, "initial_h"), (6, "initial_c")):
            init = args[slot] if len(args) > slot else None
            if isinstance(init, np.ndarray) and init.dtype != object and not init.any():
                continue
            if init is not None and not isinstance(init, (Zeros, StateInput)):
                raise self._refuse(
                    node,
                    f"starts from an {name} that is not zero nor a graph input: lstmrt's streams start from zeros "
                    "(set stream.state to start elsewhere)",
                )
        input_size = x.sizes[2] if x.sizes[2] is not None else weights.get("W", np.zeros((0, 0, 0))).shape[-1]
        try:
            spec = recurrent_spec(node, self.node_where, weights, input_size)
        except ValueError as exc:
            if isinstance(exc, LoadError):
                raise
            raise self._refuse(node, f"has weights lstmrt cannot use: {exc}") from None
        D = 2 if isinstance(spec, Bidirectional) else 1
        H = (spec.forward if D == 2 else spec).hidden_size
        self._check_initial_states(node, args, layout, D, H)
        self._append(spec)
        index = len(self.layers) - 1
        if layout == 0:
            y = Data((time, DIRECTIONS, batch, FEATURES), (None, D, None, H), len(self.layers), revision=self.revision)
        else:
            y = Data((batch, time, DIRECTIONS, FEATURES), (None, None, D, H), len(self.layers), revision=self.revision)
        finals = [Final(tuple((index, d, D, which) for d in range(D))) for which in ("h", "c")]
        return [y] + finals

    def _check_initial_states(self, node, args, layout, D, H) -> None:
        """A constant initial state has ONNX's shape, (directions, batch, hidden) (layout 1: batch first): ONNX Runtime
        refuses any other. torch's dynamo exporter writes an nn.LSTM(proj_size=P) as a node of hidden size P with
        an initial_c as wide as its cells, which ONNX's LSTM cannot express."""
        for slot, name in ((5, "initial_h"), (6, "initial_c")):
            init = args[slot] if len(args) > slot else None
            numeric = isinstance(init, np.ndarray) and init.dtype != object
            shape = init.shape if numeric or isinstance(init, Zeros) else None
            if shape is None:  # a graph input, or zeros of a shape the reader did not follow
                continue
            directions = shape[0 if layout == 0 else 1] if len(shape) == 3 else None
            if len(shape) != 3 or shape[2] not in (H, None) or directions not in (D, None):
                expected = "(directions, batch, hidden)" if layout == 0 else "(batch, directions, hidden)"
                raise self._refuse(
                    node,
                    f"has an {name} of shape {_shown(shape)} where ONNX expects {expected} with {D} direction(s) and "
                    f"hidden size {H} (torch's exporter writes an nn.LSTM with proj_size so, which ONNX's LSTM cannot "
                    "express: load the torch module or its TorchScript file)",
                )

    def _weight(self, node, value, name) -> np.ndarray:
        if not isinstance(value, np.ndarray) or value.dtype == object or value.dtype.kind != "f":
            raise self._refuse(node, f"has a {name} that is not a constant floating-point tensor")
        return value.astype(np.float32)

    # -- ops that compute ---------------------------------------------------------------------------------------
    def _op_MatMul(self, node, x, w):
        if is_attention(x) or is_attention(w):
            return [self._attention_matmul(node, x, w)]
        if not isinstance(x, Data) or not isinstance(w, np.ndarray) or w.ndim != 2 or fold.symbolic(w):
            raise self._refuse(node, "multiplies the data by something other than a constant matrix")
        self._check_features(node, x, w.shape[0])
        self._append(Dense(w.astype(np.float32).T))
        return [self._output(x, sizes=self._with_features(x, w.shape[1]))]

    def _op_Gemm(self, node, x, w, c=None):
        attrs = node.attrs
        if (
            not isinstance(x, Data)
            or len(x.axes) != 2
            or attrs.get("transA", 0)
            or not isinstance(w, np.ndarray)
            or w.ndim != 2
        ):
            raise self._refuse(node, "is not (batch, features) data times a constant matrix")
        weight = (w if attrs.get("transB", 0) else w.T) * attrs.get("alpha", 1.0)
        self._check_features(node, x, weight.shape[1])
        bias = None
        if c is not None:
            if not isinstance(c, np.ndarray) or c.size not in (1, weight.shape[0]):
                raise self._refuse(node, "adds a C that is not a constant per output feature")
            bias = np.broadcast_to(c.reshape(-1) * attrs.get("beta", 1.0), weight.shape[0])
        self._append(Dense(weight.astype(np.float32), None if bias is None else bias.astype(np.float32)))
        return [self._output(x, sizes=self._with_features(x, weight.shape[0]))]

    def _op_Add(self, node, a, b):
        if isinstance(a, Data) and isinstance(b, Data):
            if both_directions(a, b):
                return [self._merge_directions(node, a, b)]
            return [self._skip(node, a, b)]
        x, c = (a, b) if isinstance(a, Data) else (b, a)
        shift = self._per_feature(node, x, c)
        last = self.layers[-1] if self.layers else None
        if isinstance(last, Dense) and last.bias is None and last.activation == "linear":
            self.layers[-1] = Dense(last.weight, shift)  # MatMul + Add: nn.Linear as exporters write it
            self._changed(len(self.layers) - 1)
            return [self._output(x)]
        return self._affine(x, shift=shift)

    def _op_Sub(self, node, a, b):
        if isinstance(b, (Data, Final)) or isinstance(a, np.ndarray):
            raise self._refuse(node, "subtracts the data from a constant or from data")
        return self._affine(a, shift=-self._per_feature(node, a, b))

    def _op_Mul(self, node, a, b):
        if is_attention(a) or is_attention(b):
            return [self._weigh(node, a, b)]
        x, c = (a, b) if isinstance(a, Data) else (b, a)
        if isinstance(c, Data) and both_directions(a, b):
            return [self._merge_directions(node, a, b)]
        silu = self._silu(node, a, b) if isinstance(c, Data) else None
        if silu is not None:
            return [silu]
        if any(isinstance(v, Data) and self._stale(v) for v in (a, b)):  # let through by _run for _silu alone
            raise self._refuse(node, STALE)
        if isinstance(c, Data):
            raise self._refuse(
                node,
                "multiplies two data values (lstmrt reads a product of data only as attention: the weights of a "
                "Softmax over time times an earlier point of the chain)",
            )
        return self._affine(x, scale=self._per_feature(node, x, c))

    def _op_Max(self, node, *args):
        """Max(x, c) with one constant number c: the clip to [c, inf) (torch's clamp(min=c) exports so)."""
        return [self._clip_by(node, args, "min")]

    def _op_Min(self, node, *args):
        """Min(x, c) with one constant number c: the clip to (-inf, c]."""
        return [self._clip_by(node, args, "max")]

    def _clip_by(self, node, args, bound: str):
        data = [a for a in args if isinstance(a, (Data, Final))]
        constants = [_scalar(a) for a in args if not isinstance(a, (Data, Final))]
        if len(args) != 2 or len(data) != 1 or None in constants:
            raise self._refuse(node, f"takes the {node.op_type.lower()} of other than the data and one constant number")
        if not isinstance(data[0], Data):
            raise self._refuse(node, "clips a final state")
        self._check_latest(node, data[0])
        c = constants[0]
        return self._clip_to(node, data[0], *((c, None) if bound == "min" else (None, c)))

    def _op_Div(self, node, a, b):
        if isinstance(b, (Data, Final)) or isinstance(a, np.ndarray):
            raise self._refuse(node, "divides by data, or a constant by it")
        return self._affine(a, scale=1 / self._per_feature(node, a, b, "divisor"))

    def _affine(self, x, *, scale=None, shift=None) -> list:
        """A per-feature scale or shift by a constant (checked by _per_feature) as an Affine layer."""
        size = (scale if shift is None else shift).shape
        self._append(
            Affine(
                np.ones(size, np.float32) if scale is None else scale,
                np.zeros(size, np.float32) if shift is None else shift,
            )
        )
        return [self._output(x)]

    def _op_PRelu(self, node, x, slope):
        """PRelu with one slope for all is leaky_relu(slope), an activation (torch's nn.PReLU() exports a (1, 1)
        slope); with one slope per feature (nn.PReLU(features)), a PReLU layer of its own after the chain."""
        if not isinstance(slope, np.ndarray) or fold.symbolic(slope) or slope.dtype.kind not in "fiu":
            raise self._refuse(node, "has a slope computed at run time")
        if slope.size == 1:
            name = acts.with_parameter("leaky_relu", float(slope.reshape(-1)[0]), where="PRelu slope")
            return [self._activation(node, x, name)]
        if not isinstance(x, Data):
            raise self._refuse(node, "applies PRelu to a final state")
        slopes = self._per_feature(node, x, slope, what="slope")
        bad = np.flatnonzero(~np.isfinite(slopes))
        if bad.size:  # refused as leaky_relu refuses a non-finite slope
            raise self._refuse(node, f"has a non-finite slope {slopes[bad[0]]} for feature {bad[0]}")
        self._append(PReLU(slopes))
        return [self._output(x)]

    def _op_Log(self, node, x):
        """Log of a Sigmoid's output: log_sigmoid, which is torch's nn.LogSigmoid as both its exporters write it."""
        last = self.layers[-1] if self.layers else None
        # a SimpleRNN's activation is inside its recurrence: only an output activation may become log_sigmoid
        if (
            not isinstance(x, Data)
            or x.depth != len(self.layers)
            or not isinstance(last, (Dense, Activation))
            or last.activation != "sigmoid"
        ):
            raise self._refuse(node, "takes the log of a value other than a Sigmoid's output (read as log_sigmoid)")
        self._check_latest(node, x)
        if isinstance(last, Dense):
            self.layers[-1] = Dense(last.weight, last.bias, activation="log_sigmoid")
        else:
            self.layers[-1] = Activation("log_sigmoid")
        self._changed(len(self.layers) - 1)
        return [self._output(x)]

    def _silu(self, node, a, b):
        """x * sigmoid(x), as torch exports nn.SiLU: the Sigmoid just applied to x (merged into the Dense that made
        x, or an Activation layer after it) times x itself is that layer's activation silu. None for other
        products."""
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, (Dense, Activation)) or last.activation != "sigmoid":
            return None
        for gate, x in ((a, b), (b, a)):
            if gate.depth != len(self.layers) or self._stale(gate) or gate.axes != x.axes or gate.feature_start:
                continue
            merged = isinstance(last, Dense) and x.depth == gate.depth and x.revision == self.unmerged.get(x.depth)
            after = isinstance(last, Activation) and x.depth == gate.depth - 1 and not self._stale(x)
            if (merged or after) and x.feature_start is None and not (x.last or x.direction or x.final_of):
                self.layers[-1] = Dense(last.weight, last.bias, activation="silu") if merged else Activation("silu")
                self._changed(len(self.layers) - 1)
                return self._output(gate)
        return None

    def _activation(self, node, x, name=None):
        """x after the element-wise activation `name` (by default, the node's op read as one), merged into the Dense
        before it when that has none."""
        if not isinstance(x, Data):
            raise self._refuse(node, "applies an activation to a final state")
        self._check_latest(node, x)
        if name is None and node.op_type == "Clip":
            return self._clip_to(node, x, *self._clip_bounds(node))
        name = name or self._activation_name(node, x)
        last = self.layers[-1] if self.layers else None
        if isinstance(last, Dense) and last.activation == "linear" and x.depth == len(self.layers):
            self.layers[-1] = Dense(last.weight, last.bias, activation=name)
            self.unmerged[x.depth] = x.revision  # the Dense's output without it, for x * sigmoid(x) (_silu)
            self._changed(len(self.layers) - 1)
        else:
            self._append(Activation(name))
        return self._output(x)

    def _activation_name(self, node, x) -> str:
        op, attrs = node.op_type, node.attrs
        if op in onnx_activations.ELEMENTWISE:
            try:
                return onnx_activations.elementwise(op, attrs)
            except ValueError as exc:
                raise self._refuse(node, f"cannot be computed by lstmrt: {exc}") from None
        if op == "Gelu" and attrs.get("approximate", "none") in ("none", "tanh"):
            return {"none": "gelu", "tanh": "gelu_tanh"}[attrs.get("approximate", "none")]
        raise self._refuse(node, f"has attributes {attrs} lstmrt does not compute")

    def _clip_bounds(self, node) -> list:
        """Clip's (min, max): attributes before opset 11, constant inputs since; either may be left out (None)."""
        if self.opset < 11:
            return [node.attrs.get("min"), node.attrs.get("max")]
        names = (list(node.inputs[1:3]) + ["", ""])[:2]
        bounds = [None if not n else self.values.get(n) for n in names]
        if any(n and _scalar(b) is None for n, b in zip(names, bounds)):
            raise self._refuse(node, "clips to bounds that are not one constant number each")
        return [_scalar(b) for b in bounds]

    def _clip_to(self, node, x, low, high):
        """x clipped to [low, high] (None or ±FLT_MAX, the defaults of opset 6: no bound), as clip_ops plans it: its
        first activation merged into a Dense before it as other activations are, the other an Activation layer."""
        bounds = [None if b is not None and abs(b) >= _FLOAT32_MAX else b for b in (low, high)]
        try:
            plan = clip_plan(*bounds, "clips") or ["linear"]
        except ValueError as exc:
            raise self._refuse(node, str(exc)) from None
        x = self._activation(node, x, plan[0])
        for name in plan[1:]:
            self._append(Activation(name))
            x = self._output(x)
        return x

    def _embedding(self, node, table, ids):
        """Gather of rows of a constant table by the token ids of the input: nn.Embedding, Keras Embedding."""
        if not isinstance(table, np.ndarray) or table.ndim != 2 or table.dtype.kind != "f" or node.attrs.get("axis", 0):
            raise self._refuse(node, "looks up the input ids in something other than a constant table")
        if ids.depth != 0 or FEATURES in ids.axes:
            raise self._refuse(node, "looks up ids that are not the model input")
        self._append(Embedding(table.astype(np.float32)))
        return self._output(ids, axes=ids.axes + (FEATURES,), sizes=ids.sizes + (table.shape[1],))

    def _skip(self, node, a, b):
        """Add of two data values: a skip connection, when one is an earlier point of the other's chain."""
        late, early = (a, b) if a.depth >= b.depth else (b, a)
        if (
            late.depth == early.depth
            or late.axes != early.axes
            or late.last
            or early.last
            or early.final_of
            or early.direction
        ):
            raise self._refuse(node, "adds two data values that are not a layer's output and an earlier point of it")
        self._check_latest(node, late)
        if late.features != early.features:
            raise self._refuse(node, f"adds {early.features} features to {late.features}")
        source = "input" if early.depth == 0 else early.depth - 1
        self._append(Add(late.features, source=source, start=early.feature_start or 0))
        return self._output(late)

    # -- helpers ------------------------------------------------------------------------------------------------
    def _check_features(self, node, x, size):
        self._check_latest(node, x)
        if not x.axes or x.axes[-1] != FEATURES:
            raise self._refuse(node, f"multiplies axis {x.axes[-1] if x.axes else None}, not the features")
        if x.features not in (None, size):
            raise self._refuse(node, f"expects {size} features; the layers before output {x.features}")

    def _per_feature(self, node, x, c, what="constant") -> np.ndarray:
        """A constant that varies along no axis of x but the features, and the directions of a bidirectional layer
        not yet concatenated, wherever these axes are (ONNX aligns the constant's axes with the data's last ones):
        one value per feature of the lstmrt layer (or one for all), directions first as the concatenation has them."""
        if not isinstance(x, Data):  # Y_h or Y_c of every layer and direction: one layer's must be taken first
            raise self._refuse(node, f"combines a final state with a {what}")
        if not isinstance(c, np.ndarray) or fold.symbolic(c) or c.dtype.kind not in "fiu":
            raise self._refuse(node, "combines the data with a value computed at run time")
        self._check_latest(node, x)
        if x.features is None:
            raise self._refuse(node, f"combines data of an unknown feature count with a {what}")
        if c.ndim > len(x.axes):
            raise self._refuse(node, f"combines data of axes {x.axes} with a {what} of more axes, shape {c.shape}")
        aligned = c.reshape((1,) * (len(x.axes) - c.ndim) + c.shape)
        for i, (tag, n, size) in enumerate(zip(x.axes, aligned.shape, x.sizes)):
            if n != 1 and tag not in (DIRECTIONS, FEATURES):
                raise self._refuse(
                    node,
                    f"combines the data with a {what} of shape {c.shape} varying along {self._axis_name(tag)} "
                    f"(axis {i}): lstmrt has one {what} per feature",
                )
            if n not in (1, size):
                counted = "features" if tag == FEATURES else "directions"
                raise self._refuse(node, f"combines {size} {counted} with a {what} of shape {c.shape}")
        kept = [x.axes.index(tag) for tag in (DIRECTIONS, FEATURES) if tag in x.axes]
        values = aligned.transpose(kept + [i for i in range(len(x.axes)) if i not in kept])
        values = values.reshape([aligned.shape[i] for i in kept])
        return np.broadcast_to(values, [x.sizes[i] for i in kept]).astype(np.float32).reshape(-1)

    def _axis_name(self, tag) -> str:
        """What an axis tag of a Data value is, for messages (input axes: as the first recurrent node runs)."""
        if tag in INPUT_AXES:
            return "time" if tag == (self.time_axis or "x1") else "batch"
        if MERGED in tag:
            return "batch and time merged"
        return {FEATURES: "the features", DIRECTIONS: "the directions", UNIT: "an added axis of size 1"}[tag]


def _scalar(value):
    """A bound given as a number or a one-element constant, else None."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        return float(value.reshape(-1)[0])
    return None


def _shown(shape) -> str:
    """A shape for messages: a run-time size as '?'."""
    return "(" + ", ".join("?" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
