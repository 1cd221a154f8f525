"""An ONNX graph read as a chain of lstmrt layers, without running it: each tensor is followed through the nodes
(in their order, which ONNX requires to be topological) as a constant, zeros, or a Data value whose axes are
named, so that the Transposes, Squeezes and Reshapes exporters put around recurrent nodes are understood rather
than matched by pattern. What the model's output depends on and lstmrt cannot compute is refused by name.

The walk and the bookkeeping of the chain of layers are here; the ops are GraphReader's methods from
onnx_shape_ops.py (ops that move data), onnx_compute_ops.py (ops that add or change layers), onnx_directions.py
(a bidirectional layer's directions read apart and merged), onnx_reductions.py (pooling over time, norms over the
features) and onnx_attention.py (Softmax, and the attention pool a Softmax over time starts)."""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np

from ..errors import CorruptFileError, LoadError, UnsupportedModelError
from ..layers import Embedding
from . import onnx_activations
from . import onnx_fold as fold
from .onnx_attention import ATTENTION_OPS, ATTENTION_REFUSED, AttentionOps, is_attention
from .onnx_compute_ops import ComputeOps
from .onnx_directions import DirectionOps
from .onnx_reductions import ReductionOps
from .onnx_shape_ops import ShapeOps
from .onnx_values import (
    DIRECTIONS,
    FEATURES,
    INPUT_AXES,
    UNIT,
    Data,
    Final,
    LengthsInput,
    Opaque,
    StateInput,
    STALE,
)

RECURRENT = ("LSTM", "GRU", "RNN")
# ops that move a tensor around without computing on it: an input's role is traced through them
_MOVES = {"Identity", "Cast", "Transpose", "Squeeze", "Unsqueeze", "Reshape", "Slice", "Gather", "Concat", "Expand"}
# element-wise ONNX ops after a layer, read as an lstmrt activation (by _activation_name)
_ACTIVATIONS = (*onnx_activations.ELEMENTWISE, "Gelu", "Clip")


# the Python type of each attribute this reader reads, as the decoder gives it (the same name has one ONNX type
# across the ops here); anything else is a damaged file
_ATTRIBUTE_TYPES = {
    **dict.fromkeys(("axis", "to", "allowzero", "transA", "transB", "start", "end", "layout", "hidden_size"), int),
    **dict.fromkeys(("keepdims", "training_mode"), int),
    **dict.fromkeys(("alpha", "beta", "gamma", "lambd", "bias", "min", "max", "clip", "epsilon"), float),
    **dict.fromkeys(("perm", "axes", "starts", "ends", "activations"), tuple),
    **dict.fromkeys(("approximate", "direction"), str),
    "value": np.ndarray,
}

_CONTROL_FLOW = ("If", "Loop", "Scan")
_CONTROL_FLOW_REFUSED = (
    "is control flow, which lstmrt does not run: it reads recurrent layers only as ONNX LSTM / GRU / RNN nodes "
    "(tf2onnx leaves as a Loop the Keras layers it cannot convert to plain ops, such as a GRU, a SimpleRNN, a masked "
    "layer or Keras 3's TimeDistributed: load the Keras file itself)"
)


class GraphReader(ShapeOps, ComputeOps, DirectionOps, ReductionOps, AttentionOps):
    """Reads one OnnxModel; `read()` gives (layers, Model options, facts for load's info)."""

    def __init__(self, model, where: str):
        self.where, self.graph = where, model.graph
        self.opset = model.opsets.get("", model.opsets.get("ai.onnx", 1))
        self.values = dict(self.graph.initializers)
        self.layers = []
        self.revision, self.layer_revisions = 0, []  # layer changes so far; per layer, its last change
        self.unmerged = {}  # depth -> the revision of a Dense's output before an activation was merged into it
        self.time_axis = None  # "x0" or "x1", settled by the first recurrent node
        self.static = {}  # input axis tag -> its size in the graph's declared input shape (exporters bake it in)
        self.facts = {}

    def read(self):
        self.nodes = self._live_nodes()
        for index, node in self.nodes:
            # refused first: a loop's body reads the data input by name, so the input's role would be missed
            if node.op_type in _CONTROL_FLOW:
                raise UnsupportedModelError(f"{self._node_where(index, node)} {_CONTROL_FLOW_REFUSED}")
        self._bind_inputs()
        for index, node in self.nodes:
            self.node_where = self._node_where(index, node)
            args = [self._value(name) if name else None for name in node.inputs]
            outputs = self._run(node, args)
            for name, value in zip(node.outputs, outputs):
                if name:
                    self.values[name] = value
        return self._outputs()

    def _node_where(self, index, node) -> str:
        return f"{self.where}: node {node.name or '#' + str(index)} ({node.op_type})"

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
        # a float (batch, time) input: one feature per step, which an Unsqueeze must make an axis of (torch's
        # x.unsqueeze(-1)); _op_Unsqueeze adds it, and predict then takes (B, T) (Model(squeeze_input=True))
        bare = not tokens and len(shape) == 2
        if len(shape) != (2 if tokens or bare else 3):
            raise UnsupportedModelError(
                f"{self.where}: the input {x.name!r} has {len(shape)} axes; lstmrt reads (batch, time, features) or "
                "(time, batch, features) sequences, (batch, time) samples of one feature, or (batch, time) token ids"
            )
        self.static = {tag: d if isinstance(d, int) else None for tag, d in zip(INPUT_AXES, shape)}
        features = () if tokens or bare else (shape[2] if isinstance(shape[2], int) else None,)
        self.values[x.name] = Data(INPUT_AXES + (FEATURES,) * bool(features), (None, None) + features, 0)
        self.facts.update(input=x.name, tokens=tokens, one_feature=bare)

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
        final_output = isinstance(y, Final)  # Y_h itself: (1, B, H), its layers-and-directions axis of size 1
        if final_output:
            y = self._final_data(y, "the graph's output")
        if isinstance(y, Data) and self._stale(y):
            raise UnsupportedModelError(f"{self.where}: the output {outputs[0].name!r} {STALE}")
        if is_attention(y):
            raise UnsupportedModelError(
                f"{self.where}: the output {outputs[0].name!r} is attention weights (a Softmax over time) or values "
                "weighted by them; lstmrt outputs them summed over time only (an attention pool)"
            )
        if not isinstance(y, Data) or y.depth == 0 and not self.layers:
            raise UnsupportedModelError(f"{self.where}: the output {outputs[0].name!r} is not computed from the input")
        if y.direction or y.final_of:
            raise UnsupportedModelError(
                f"{self.where}: the output {outputs[0].name!r} is one direction of a bidirectional layer; lstmrt "
                "outputs both, merged"
            )
        if y.depth != len(self.layers):
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
        if self.facts["one_feature"]:
            options["squeeze_input"] = True
        # axes of size 1 the graph's output keeps ((B, 1, O) after out[:, -1:], (B, O, 1) after unsqueeze(-1)):
        # predict keeps them too, where its axes come in the graph's order (batch first)
        units = [i for i, (a, s) in enumerate(zip(y.axes, y.sizes)) if a in (UNIT, DIRECTIONS) and s == 1]
        units = [0] + [i + 1 for i in units] if final_output else units
        if units and (y.last or kept[0] != time):
            options["unit_axes"] = tuple(units)
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
        data = [a for a in args if isinstance(a, (Data, Final, StateInput, LengthsInput))]
        stale = [a for a in data if isinstance(a, Data) and self._stale(a)]
        if stale and not (
            node.op_type == "Mul" and len(stale) == 1 and stale[0].revision == self.unmerged.get(stale[0].depth)
        ):
            raise self._refuse(node, STALE)  # (a Dense's output times its merged Sigmoid's: _silu reads that)
        if node.op_type not in ATTENTION_OPS and any(is_attention(a) for a in data):
            raise self._refuse(node, ATTENTION_REFUSED)
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

    # -- the chain of layers: what the ops of both mixins use ---------------------------------------------------
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
        if x.direction:
            raise self._refuse(node, "reads one direction of a bidirectional layer's output (not both merged)")
        if x.depth != len(self.layers):
            raise self._refuse(node, "reads a value other than the last layer's output (the graph branches)")
        if x.feature_start is not None:
            raise self._refuse(
                node, "reads a slice of the features (lstmrt adds such slices only as a skip connection)"
            )

    @staticmethod
    def _with_features(x, size) -> tuple:
        return tuple(size if a == FEATURES else s for a, s in zip(x.axes, x.sizes))

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
