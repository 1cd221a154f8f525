"""An ONNX graph read as a chain of lstmrt layers, without running it: each tensor is followed through the nodes
(in their order, which ONNX requires to be topological) as a constant, zeros, or a Data value whose axes are
named, so that the Transposes, Squeezes and Reshapes exporters put around recurrent nodes are understood rather
than matched by pattern. What the model's output depends on and lstmrt cannot compute is refused by name."""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np

from .. import activations as acts
from ..errors import CorruptFileError, LoadError, UnsupportedModelError
from ..layers import Activation, Add, Affine, Bidirectional, Dense, Embedding
from . import onnx_activations
from . import onnx_fold as fold
from .onnx_layers import recurrent_spec
from .onnx_reshape import reshape_data
from .onnx_values import (
    DIRECTIONS,
    FEATURES,
    INPUT_AXES,
    UNIT,
    Data,
    Final,
    LengthsInput,
    Opaque,
    Size,
    StateInput,
    Zeros,
)

RECURRENT = ("LSTM", "GRU", "RNN")
# ops that move a tensor around without computing on it: an input's role is traced through them
_MOVES = {"Identity", "Cast", "Transpose", "Squeeze", "Unsqueeze", "Reshape", "Slice", "Gather", "Concat", "Expand"}
# element-wise ONNX ops after a layer, read as an lstmrt activation (by _activation_name)
_ACTIVATIONS = (*onnx_activations.ELEMENTWISE, "Gelu", "Softmax", "LogSoftmax", "Clip")


# the Python type of each attribute this reader reads, as the decoder gives it (the same name has one ONNX type
# across the ops here); anything else is a damaged file
_ATTRIBUTE_TYPES = {
    **dict.fromkeys(("axis", "to", "allowzero", "transA", "transB", "start", "end", "layout", "hidden_size"), int),
    **dict.fromkeys(("alpha", "beta", "gamma", "lambd", "bias", "min", "max", "clip"), float),
    **dict.fromkeys(("perm", "axes", "starts", "ends", "activations"), tuple),
    **dict.fromkeys(("approximate", "direction"), str),
    "value": np.ndarray,
}

_CLIPS = {(0.0, 6.0): "relu6", (-1.0, 1.0): "hard_tanh"}  # Clip's (min, max) -> lstmrt activation
_STALE = "reads a layer's output from before a later node was merged into that layer (the graph branches there)"


class GraphReader:
    """Reads one OnnxModel; `read()` gives (layers, Model options, facts for load's info)."""

    def __init__(self, model, where: str):
        self.where, self.graph = where, model.graph
        self.opset = model.opsets.get("", model.opsets.get("ai.onnx", 1))
        self.values = dict(self.graph.initializers)
        self.layers = []
        self.revision, self.layer_revisions = 0, []  # layer changes so far; per layer, its last change
        self.time_axis = None  # "x0" or "x1", settled by the first recurrent node
        self.static = {}  # input axis tag -> its size in the graph's declared input shape (exporters bake it in)
        self.facts = {}

    def read(self):
        self.nodes = self._live_nodes()
        self._bind_inputs()
        for index, node in self.nodes:
            self.node_where = f"{self.where}: node {node.name or '#' + str(index)} ({node.op_type})"
            args = [self._value(name) if name else None for name in node.inputs]
            outputs = self._run(node, args)
            for name, value in zip(node.outputs, outputs):
                if name:
                    self.values[name] = value
        return self._outputs()

    # -- inputs and outputs -------------------------------------------------------------------------------------
    def _live_nodes(self) -> list:
        """(index, node) of the nodes the graph's outputs depend on. A node whose result nobody reads must not
        count: it would make an input look like data, or make the reader merge an op into a layer that the
        model's output reads unmerged."""
        nodes = self.graph.nodes
        producer = {name: index for index, node in enumerate(nodes) for name in node.outputs if name}
        todo, live = [v.name for v in self.graph.outputs], set()
        while todo:
            index = producer.get(todo.pop())
            if index is None or index in live:
                continue
            live.add(index)
            if any(getattr(v, "kind", None) in ("GRAPH", "GRAPHS") for v in nodes[index].attrs.values()):
                live = range(len(nodes))  # a subgraph may read any tensor of the graph: keep every node
                break
            todo += [name for name in nodes[index].inputs if name]
        return [(index, node) for index, node in enumerate(nodes) if index in live]

    def _bind_inputs(self):
        roles = self._input_roles()
        data = [v for v in self.graph.inputs if roles.get(v.name) == "data"]
        if len(data) != 1:
            named = ", ".join(repr(v.name) for v in data) or "none"
            raise UnsupportedModelError(
                f"{self.where}: lstmrt runs models with one data input; inputs the output depends on: {named}"
            )
        for v in self.graph.inputs:
            if roles.get(v.name) == "state":
                self.values[v.name] = StateInput(v.name)
            elif roles.get(v.name) == "lengths":
                self.values[v.name] = LengthsInput(v.name)
        self.facts["state_inputs"] = [v.name for v in self.graph.inputs if roles.get(v.name) == "state"]
        self.facts["lengths_inputs"] = [v.name for v in self.graph.inputs if roles.get(v.name) == "lengths"]
        (x,) = data
        shape = x.shape if x.shape is not None else (None, None, None)
        tokens = x.elem_type in (6, 7)  # int32 / int64 ids: an Embedding's input
        if len(shape) != (2 if tokens else 3):
            raise UnsupportedModelError(
                f"{self.where}: the input {x.name!r} has {len(shape)} axes; lstmrt reads (batch, time, features) or "
                "(time, batch, features) sequences, or (batch, time) token ids"
            )
        self.static = {tag: d if isinstance(d, int) else None for tag, d in zip(INPUT_AXES, shape)}
        features = () if tokens else (shape[2] if isinstance(shape[2], int) else None,)
        self.values[x.name] = Data(INPUT_AXES + (FEATURES,) * (not tokens), (None, None) + features, 0)
        self.facts.update(input=x.name, tokens=tokens)

    def _input_roles(self) -> dict:
        """Each graph input (that is not an initializer): "data" if a computation reads it, else "state" when it
        reaches only initial_h / initial_c, "lengths" when only sequence_lens (through ops that move it)."""
        consumers = {}
        for _, node in self.nodes:
            for slot, name in enumerate(node.inputs):
                consumers.setdefault(name, []).append((node, slot))
        roles = {}
        for v in self.graph.inputs:
            if v.name in self.graph.initializers:
                continue
            uses, todo, seen = set(), [v.name], set()
            while todo:
                name = todo.pop()
                for node, slot in consumers.get(name, ()):
                    if node.op_type in RECURRENT:
                        uses.add({0: "data", 4: "lengths", 5: "state", 6: "state"}.get(slot, "data"))
                    elif node.op_type == "Shape":
                        continue
                    elif node.op_type in _MOVES and (slot == 0 or node.op_type == "Concat"):
                        todo += [o for o in node.outputs if o and o not in seen]
                        seen.update(node.outputs)
                    else:
                        uses.add("data")
            roles[v.name] = next((r for r in ("data", "state", "lengths") if r in uses), None)
        return roles

    def _outputs(self):
        outputs = self.graph.outputs
        if not outputs:
            raise CorruptFileError(f"{self.where}: the graph has no output")
        y = self._value(outputs[0].name)
        for extra in outputs[1:]:
            if not isinstance(self._value(extra.name), (Final, StateInput)):
                raise UnsupportedModelError(
                    f"{self.where}: the graph has several outputs; lstmrt computes the first ({outputs[0].name!r}) "
                    f"and reads further outputs only when they are final states, not {extra.name!r}"
                )
        if isinstance(y, Final):
            y = self._final_data(y, "the graph's output")
        if isinstance(y, Data) and self._stale(y):
            raise UnsupportedModelError(f"{self.where}: the output {outputs[0].name!r} {_STALE}")
        if not isinstance(y, Data) or y.depth == 0 and not self.layers:
            raise UnsupportedModelError(f"{self.where}: the output {outputs[0].name!r} is not computed from the input")
        if y.depth != len(self.layers) or y.final_of:
            raise UnsupportedModelError(f"{self.where}: the output {outputs[0].name!r} is not the last layer's")
        kept = [a for a, s in zip(y.axes, y.sizes) if not (a in (UNIT, DIRECTIONS) and s == 1)]
        batch_time = [a for a in kept if a in INPUT_AXES]
        if len(batch_time) != (1 if y.last else 2) or kept[-1] != FEATURES and FEATURES in kept:
            raise UnsupportedModelError(
                f"{self.where}: the output {outputs[0].name!r} has axes {y.axes} (sizes {y.sizes}); lstmrt outputs "
                "(batch, time, features), or (batch, features) for a last step"
            )
        time = self.time_axis or "x1"
        self.facts.update(
            input_layout="(time, batch, features)" if time == "x0" else "(batch, time, features)",
            output_layout=None if y.last else "time first" if kept[0] == time else "batch first",
        )
        options = {"return_sequences": not y.last, "squeeze_output": FEATURES not in kept}
        return self.layers, options, self.facts

    # -- nodes --------------------------------------------------------------------------------------------------
    def _value(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise CorruptFileError(
                f"{self.where}: tensor {name!r} is used before any node computes it (the graph is not in order)"
            ) from None

    def _run(self, node, args) -> list:
        for name, value in node.attrs.items():
            kind = _ATTRIBUTE_TYPES.get(name)
            if kind is not None and not isinstance(value, kind):
                raise CorruptFileError(f"{self.node_where} has attribute {name} of type {type(value).__name__}")
        if node.domain not in ("", "ai.onnx"):
            raise self._refuse(node, f"is in domain {node.domain!r}; lstmrt reads standard ONNX operators")
        if node.op_type in RECURRENT:
            return self._recurrent(node, args)
        if node.op_type in ("If", "Loop", "Scan"):  # their subgraphs read outer tensors this reader does not follow
            raise self._refuse(node, "is control flow: export the recurrent layer as an ONNX LSTM / GRU / RNN node")
        data = [a for a in args if isinstance(a, (Data, Final, StateInput, LengthsInput))]
        if any(isinstance(a, Data) and self._stale(a) for a in data):
            raise self._refuse(node, _STALE)
        if not data:
            try:
                value = fold.fold(node, args, self.opset)
            except (ValueError, IndexError, TypeError, OverflowError, AttributeError) as exc:  # absent or contradictory
                raise CorruptFileError(f"{self.node_where} cannot compute its constant inputs: {exc}") from exc
            return [Opaque(node.op_type) if value is None else value]
        name = node.op_type
        if isinstance(data[0], (StateInput, LengthsInput)) and name in _MOVES:
            return [data[0]]  # a slice of a state input per layer: the stream keeps that state itself
        handler = getattr(self, "_op_" + name, None)
        if handler is not None:
            try:
                inspect.signature(handler).bind(node, *args)
            except TypeError:
                raise CorruptFileError(
                    f"{self.node_where} has {len(args)} inputs, a number the op does not take"
                ) from None
            try:
                return handler(node, *args)
            except ValueError as exc:  # fold.ints and friends: parameters that are not constants lstmrt can read
                if isinstance(exc, LoadError):
                    raise
                raise self._refuse(node, f"has parameters lstmrt cannot read: {exc}") from exc
        if name in _ACTIVATIONS:
            return [self._activation(node, args[0])]
        raise self._refuse(node, "is not supported in the data path of a model")

    def _refuse(self, node, why: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.node_where} {why}")

    def _recurrent(self, node, args):
        x = args[0] if args else None
        if not isinstance(x, Data) or x.depth != len(self.layers) or x.last or x.final_of:
            raise self._refuse(node, "reads an input that is not the output of the layers before it")
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
        self._append(spec)
        D = 2 if isinstance(spec, Bidirectional) else 1
        index, H = len(self.layers) - 1, (spec.forward if D == 2 else spec).hidden_size
        if layout == 0:
            y = Data((time, DIRECTIONS, batch, FEATURES), (None, D, None, H), len(self.layers), revision=self.revision)
        else:
            y = Data((batch, time, DIRECTIONS, FEATURES), (None, None, D, H), len(self.layers), revision=self.revision)
        finals = [Final(tuple((index, d, D, which) for d in range(D))) for which in ("h", "c")]
        return [y] + finals

    def _weight(self, node, value, name) -> np.ndarray:
        if not isinstance(value, np.ndarray) or value.dtype == object or value.dtype.kind != "f":
            raise self._refuse(node, f"has a {name} that is not a constant floating-point tensor")
        return value.astype(np.float32)

    # -- ops that move data values --------------------------------------------------------------------------
    def _op_Identity(self, node, x, *_):
        return [x]

    _op_Dropout = _op_Identity

    def _op_Cast(self, node, x):
        if isinstance(x, Data) and fold.CAST_TYPES.get(node.attrs.get("to")) not in (np.float32, np.float64):
            raise self._refuse(node, "casts the data to a non-float type")
        return [x]

    def _op_Shape(self, node, x):
        if not isinstance(x, Data):
            return [Opaque("Shape of a state")]
        shape = np.array([Size(a) if s is None else s for a, s in zip(x.axes, x.sizes)], dtype=object)
        return [shape[node.attrs.get("start", 0) : node.attrs.get("end")]]

    def _op_Transpose(self, node, x):
        if not isinstance(x, Data):
            raise self._refuse(node, "transposes a final state")
        perm = node.attrs.get("perm", tuple(reversed(range(len(x.axes)))))
        if sorted(perm) != list(range(len(x.axes))):
            raise CorruptFileError(f"{self.node_where} has perm {perm}, not a permutation of {len(x.axes)} axes")
        return [replace(x, axes=tuple(x.axes[p] for p in perm), sizes=tuple(x.sizes[p] for p in perm))]

    def _op_Squeeze(self, node, x, axes=None):
        axes = fold.axes_of(node, [x, axes], self.opset, 13)
        if isinstance(x, Final):
            return [self._final_data(x, self.node_where)]
        if axes is None:
            axes = [i for i, s in enumerate(x.sizes) if s == 1]
        for i in sorted((a % len(x.axes) for a in axes), reverse=True):
            if x.sizes[i] != 1 and not (x.axes[i] == FEATURES and x.sizes[i] is None):
                raise self._refuse(node, f"squeezes axis {i} ({x.axes[i]}) of size {x.sizes[i] or 'unknown'}")
            x = x.drop(i)
        return [x]

    def _op_Unsqueeze(self, node, x, axes=None):
        if not isinstance(x, Data):
            raise self._refuse(node, "adds an axis to a final state")
        added = fold.axes_of(node, [x, axes], self.opset, 13)
        if added is None:
            raise self._refuse(node, "has no axes")
        rank = len(x.axes) + len(added)
        for i in sorted(a % rank for a in added):
            x = replace(x, axes=x.axes[:i] + (UNIT,) + x.axes[i:], sizes=x.sizes[:i] + (1,) + x.sizes[i:])
        return [x]

    def _op_Reshape(self, node, x, shape):
        if isinstance(x, Final):
            return [self._final_data(x, self.node_where)]
        if not isinstance(shape, np.ndarray) or shape.ndim != 1:
            raise self._refuse(node, "reshapes the data to a shape computed at run time")
        # a symbolic size (Shape of the data) copies that axis, as a 0 copies the axis at its position
        target = [("copy", s.tag) if isinstance(s, Size) else s for s in shape.tolist()]
        if not all(isinstance(t, (int, tuple)) for t in target):
            raise self._refuse(node, "reshapes the data to a shape computed at run time")
        result = reshape_data(x, target, node.attrs.get("allowzero", 0), self.static)
        if isinstance(result, str):
            raise self._refuse(node, f"reshapes axes {x.axes} (sizes {x.sizes}) to {target}: {result}")
        return [result]

    def _op_Gather(self, node, x, indices):
        if isinstance(indices, Data):
            return [self._embedding(node, x, indices)]
        index = self._single_index(node, indices)
        if isinstance(x, Final):
            if node.attrs.get("axis", 0) != 0:
                raise self._refuse(node, "selects within a final state")
            return [self._final_data(Final((x.entries[index],)), self.node_where)]
        axis = node.attrs.get("axis", 0) % len(x.axes)
        if x.axes[axis] == DIRECTIONS and x.sizes[axis] == 1:
            return [x.drop(axis)]
        if self._is_last_step(x, axis, index):
            return [replace(x.drop(axis), last=True)]
        raise self._refuse(node, f"selects index {index} of axis {x.axes[axis]}; lstmrt reads only the last step")

    def _op_Slice(self, node, x, *params):
        if not isinstance(x, Data):
            raise self._refuse(node, "slices a final state")
        for axis, start, end, step in fold.slice_params(node, [x, *params], self.opset, len(x.axes)):
            whole = start == 0 and end >= fold.INT_MAX and step == 1
            if whole:
                continue
            if x.axes[axis] == FEATURES and step == 1 and x.features is not None:
                x = self._feature_slice(node, x, start, end)
                continue
            if step == 1 and end >= fold.INT_MAX and self._is_last_step(x, axis, start):
                x = replace(x, axes=x.axes[:axis] + (UNIT,) + x.axes[axis + 1 :], last=True)
                x = replace(x, sizes=x.sizes[:axis] + (1,) + x.sizes[axis + 1 :])
                continue
            raise self._refuse(node, f"slices axis {x.axes[axis]} [{start}:{end}:{step}]; lstmrt reads whole steps")
        return [x]

    def _feature_slice(self, node, x, start, end):
        """x[..., start:end]: kept for a skip connection, which adds such a slice of an earlier point."""
        first, stop, _ = slice(start, end).indices(x.features)
        if stop <= first:
            raise self._refuse(node, f"slices features [{start}:{end}] of {x.features} to nothing")
        offset = (x.feature_start or 0) + first
        return replace(x, sizes=self._with_features(x, stop - first), feature_start=offset)

    def _op_Concat(self, node, *parts):
        if all(isinstance(p, Final) for p in parts):
            return [Final(tuple(e for p in parts for e in p.entries))]
        directions = [p.final_of for p in parts if isinstance(p, Data)]
        if len(parts) == 2 and all(directions) and [d[1] for d in directions] == [0, 1]:
            a, b = parts
            if directions[0][0] == directions[1][0] and node.attrs.get("axis") % len(a.axes) == a.axes.index(FEATURES):
                spec = self.layers[directions[0][0]]
                if spec.forward.return_sequences:
                    self._changed(directions[0][0])
                    for direction in (spec.forward, spec.backward):
                        direction.return_sequences = False  # Keras semantics: each direction's final output
                size = a.features + b.features
                sizes = tuple(size if s == a.features else s for s in a.sizes)
                return [replace(a, final_of=None, sizes=sizes, revision=self.revision)]
        raise self._refuse(node, "concatenates data values (only a bidirectional layer's two final states are read)")

    # -- ops that compute ---------------------------------------------------------------------------------------
    def _op_MatMul(self, node, x, w):
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
        if not isinstance(a, Data) or isinstance(b, Data):
            raise self._refuse(node, "subtracts the data from a constant or from data")
        return self._affine(a, shift=-self._per_feature(node, a, b))

    def _op_Mul(self, node, a, b):
        x, c = (a, b) if isinstance(a, Data) else (b, a)
        if isinstance(c, Data):
            raise self._refuse(node, "multiplies two data values")
        return self._affine(x, scale=self._per_feature(node, x, c))

    def _op_Div(self, node, a, b):
        if not isinstance(a, Data) or isinstance(b, Data):
            raise self._refuse(node, "divides by data")
        return self._affine(a, scale=1 / self._per_feature(node, a, b))

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
        """PRelu with one slope for all: leaky_relu(slope) (torch's nn.PReLU() exports a (1, 1) slope)."""
        if not isinstance(slope, np.ndarray) or fold.symbolic(slope) or slope.dtype.kind not in "fiu":
            raise self._refuse(node, "has a slope computed at run time")
        if slope.size != 1:
            raise self._refuse(
                node, f"has a slope of shape {slope.shape}, not one value: lstmrt's leaky_relu has no per-feature slope"
            )
        name = acts.with_parameter("leaky_relu", float(slope.reshape(-1)[0]), where="PRelu slope")
        return [self._activation(node, x, name)]

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

    def _activation(self, node, x, name=None):
        """x after the element-wise activation `name` (by default, the node's op read as one), merged into the Dense
        before it when that has none."""
        if not isinstance(x, Data):
            raise self._refuse(node, "applies an activation to a final state")
        self._check_latest(node, x)
        name = name or self._activation_name(node, x)
        last = self.layers[-1] if self.layers else None
        if isinstance(last, Dense) and last.activation == "linear" and x.depth == len(self.layers):
            self.layers[-1] = Dense(last.weight, last.bias, activation=name)
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
        if op in ("Softmax", "LogSoftmax"):
            axis = attrs.get("axis", -1 if self.opset >= 13 else 1) % len(x.axes)
            if x.axes[axis] == FEATURES and (self.opset >= 13 or axis == len(x.axes) - 1):
                return acts.canonical(op)  # "logsoftmax" is an alias of log_softmax
            raise self._refuse(node, f"normalises over axis {axis} ({x.axes[axis]}); lstmrt's softmax is per step")
        if op == "Clip":
            return self._clip(node)
        raise self._refuse(node, f"has attributes {attrs} lstmrt does not compute")

    def _clip(self, node) -> str:
        bounds = [self.values.get(n) if n else None for n in node.inputs[1:3]]
        low = node.attrs.get("min") if self.opset < 11 else bounds[0] if bounds else None
        high = node.attrs.get("max") if self.opset < 11 else bounds[1] if len(bounds) > 1 else None
        name = _CLIPS.get((_scalar(low), _scalar(high)))
        if name is None:
            raise self._refuse(node, "clips to bounds other than [0, 6] (relu6) and [-1, 1] (hard_tanh)")
        return name

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
        if late.depth == early.depth or late.axes != early.axes or late.last or early.last or early.final_of:
            raise self._refuse(node, "adds two data values that are not a layer's output and an earlier point of it")
        self._check_latest(node, late)
        if late.features != early.features:
            raise self._refuse(node, f"adds {early.features} features to {late.features}")
        source = "input" if early.depth == 0 else early.depth - 1
        self._append(Add(late.features, source=source, start=early.feature_start or 0))
        return self._output(late)

    # -- helpers ------------------------------------------------------------------------------------------------
    def _append(self, spec):
        if isinstance(spec, Embedding) and self.layers:
            raise UnsupportedModelError(f"{self.node_where} looks up tokens after other layers")
        self.layers.append(spec)
        self.layer_revisions.append(None)
        self._changed(len(self.layers) - 1)

    def _changed(self, index):
        """Layer `index` was added or changed in place (merged with the op of `node`): values made from it before
        are stale. Only the last layer may change, so that no later layer has read the old version."""
        if index != len(self.layers) - 1:
            raise UnsupportedModelError(f"{self.node_where} changes layer {index}, which later layers already read")
        self.revision += 1
        self.layer_revisions[index] = self.revision

    def _stale(self, x: Data) -> bool:
        return x.depth > 0 and x.revision < self.layer_revisions[x.depth - 1]

    def _output(self, x: Data, **changes) -> Data:
        """x as the output of the last layer, as it is now."""
        return replace(x, depth=len(self.layers), revision=self.revision, **changes)

    def _check_latest(self, node, x):
        """Layers form a chain: an op that adds one must read the output of the last layer (not a branch of an
        earlier point, nor one direction's final state)."""
        if x.final_of:
            raise self._refuse(node, "reads one direction's final state of a bidirectional layer (not both)")
        if x.depth != len(self.layers):
            raise self._refuse(node, "reads a value other than the last layer's output (the graph branches)")
        if x.feature_start is not None:
            raise self._refuse(
                node, "reads a slice of the features (lstmrt adds such slices only as a skip connection)"
            )

    def _check_features(self, node, x, size):
        self._check_latest(node, x)
        if not x.axes or x.axes[-1] != FEATURES:
            raise self._refuse(node, f"multiplies axis {x.axes[-1] if x.axes else None}, not the features")
        if x.features not in (None, size):
            raise self._refuse(node, f"expects {size} features; the layers before output {x.features}")

    @staticmethod
    def _with_features(x, size) -> tuple:
        return tuple(size if a == FEATURES else s for a, s in zip(x.axes, x.sizes))

    def _per_feature(self, node, x, c) -> np.ndarray:
        """A constant broadcast over batch and time: one value per feature (or one for all)."""
        if not isinstance(c, np.ndarray) or fold.symbolic(c) or c.dtype.kind not in "fiu":
            raise self._refuse(node, "combines the data with a value computed at run time")
        self._check_latest(node, x)
        if not x.axes or x.axes[-1] != FEATURES:
            raise self._refuse(
                node, f"combines axis {x.axes[-1] if x.axes else None} with a constant, not the features"
            )
        features = x.features
        flat = c.reshape(-1).astype(np.float32)
        if c.ndim > len(x.axes) or c.ndim and any(n != 1 for n in c.shape[:-1]) or flat.size not in (1, features):
            raise self._refuse(node, f"combines the data with a constant of shape {c.shape}, not one per feature")
        if features is None:
            raise self._refuse(node, "combines data of an unknown feature count with a constant")
        return np.broadcast_to(flat, (features,)).copy()

    def _single_index(self, node, indices) -> int:
        if not isinstance(indices, np.ndarray) or indices.ndim != 0 or indices.dtype.kind not in "iu":
            raise self._refuse(node, "selects with indices that are not one constant")
        return int(indices)

    def _is_last_step(self, x, axis, index) -> bool:
        tag = x.axes[axis]
        if tag not in INPUT_AXES or x.last or tag != (self.time_axis or tag):
            return False
        return index == -1 or self.static.get(tag) is not None and index == self.static[tag] - 1

    def _final_data(self, final: Final, where: str) -> Data:
        """Y_h read as the model's data: the last layer's final output, which is its output at the last step."""
        if len(final.entries) != 1:
            raise UnsupportedModelError(f"{where} reads the final states of several layers or directions at once")
        layer, direction, count, which = final.entries[0]
        if which != "h" or layer != len(self.layers) - 1:
            raise UnsupportedModelError(
                f"{where} reads the final {'cell state' if which == 'c' else 'state'} of layer {layer}; lstmrt reads "
                "only the last layer's final h"
            )
        spec = self.layers[layer]
        H = spec.forward.output_size if count == 2 else spec.output_size
        batch = "x1" if self.time_axis == "x0" else "x0"
        if count == 1 and spec.go_backwards and spec.return_sequences:
            spec.return_sequences = False  # a reverse direction's final h is its output at step 0
            self._changed(layer)
        data = Data((batch, FEATURES), (None, H), layer + 1, last=True, revision=self.revision)
        return replace(data, final_of=(layer, direction)) if count == 2 else data


def _scalar(value):
    """A bound given as a number or a one-element constant, else None."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        return float(value.reshape(-1)[0])
    return None
