"""Softmax in ONNX graphs: over each step's features, an activation; over time, the weights of an attention pool,
read through to an AttentionPooling layer (torch's `w = torch.softmax(self.attn(out), dim=1)` then
`torch.sum(w * out, dim=1)`, or `torch.bmm(w.unsqueeze(1), out).squeeze(1)`). The weights are tagged (Data.attention)
from the Softmax on: they may move (Transpose, Squeeze, ...), be multiplied by values of an earlier point of the chain
(Mul) and be summed over time (ReduceSum), or both at once (MatMul); any other use is refused, since the weights of
step t depend on later steps, which lstmrt's online softmax has not seen. Part of the graph reader
(onnx_graph.GraphReader)."""

from __future__ import annotations

from dataclasses import replace

from .. import activations as acts
from ..errors import CorruptFileError
from ..layers import AttentionPooling
from . import onnx_fold as fold
from .onnx_values import DIRECTIONS, FEATURES, INPUT_AXES, UNIT, Attention, Data

# the ops that may read a value on its way to an attention pool: moves, the Mul by the values and the pool itself
ATTENTION_OPS = {"Identity", "Dropout", "Cast", "Shape", "Transpose", "Squeeze", "Unsqueeze", "Reshape"}
ATTENTION_OPS |= {"Mul", "MatMul", "ReduceSum"}
ATTENTION_REFUSED = (
    "uses attention weights (a Softmax over time) other than to weigh values and sum them over time (Mul then "
    "ReduceSum, or MatMul): lstmrt reads them only as an attention pool"
)


def is_attention(value) -> bool:
    return isinstance(value, Data) and value.attention is not None


def _unit(tag, size) -> bool:
    """An axis ONNX broadcasts: size 1, and not batch or time (whose size is known only at run time)."""
    return size == 1 and tag not in INPUT_AXES


class AttentionOps:
    """GraphReader's methods for Softmax and the attention pool it may start."""

    def _op_Softmax(self, node, x):
        if not isinstance(x, Data):
            return [self._activation(node, x, "softmax")]  # refused there: a final state
        over, kept = self._softmax_axes(node, x)
        if FEATURES in over and set(kept) <= {FEATURES}:
            return [self._activation(node, x, "softmax")]
        if len(kept) == 1 and kept[0] in INPUT_AXES and self._axis_name(kept[0]) == "time":
            return [self._weights(node, x)]
        names = " and ".join(self._axis_name(tag) for tag in kept) or "an axis of size 1"
        raise self._refuse(
            node,
            f"normalises over {names}; lstmrt reads a softmax over each step's features (an activation) or over "
            "time (the weights of an attention pool)",
        )

    def _op_LogSoftmax(self, node, x):
        if isinstance(x, Data):
            over, kept = self._softmax_axes(node, x)
            if FEATURES not in over or not set(kept) <= {FEATURES}:
                names = " and ".join(self._axis_name(tag) for tag in kept) or "an axis of size 1"
                raise self._refuse(node, f"normalises over {names}; lstmrt's log_softmax is over each step's features")
        return [self._activation(node, x, acts.canonical(node.op_type))]

    def _softmax_axes(self, node, x) -> tuple:
        """The tags of the axes a (Log)Softmax normalises over, and of those of them not of size 1. From opset 13
        one axis; before, the input is coerced to 2-D at `axis`, a softmax over every axis from it on."""
        rank = len(x.axes)
        axis = node.attrs.get("axis", -1 if self.opset >= 13 else 1)
        if not -rank <= axis < rank:
            raise CorruptFileError(f"{self.node_where} has axis {axis} for data of {rank} axes")
        axes = [axis % rank] if self.opset >= 13 else range(axis % rank, rank)
        over = [x.axes[a] for a in axes]
        return over, [x.axes[a] for a in axes if not _unit(x.axes[a], x.sizes[a])]

    def _weights(self, node, scores: Data) -> Data:
        """Softmax over time of the scores, the last layer's output: one per step, or one per feature."""
        self._check_latest(node, scores)
        if scores.last:
            raise self._refuse(node, "normalises a last step over time")
        if DIRECTIONS in scores.axes and scores.sizes[scores.axes.index(DIRECTIONS)] != 1:
            raise self._refuse(node, "normalises each direction of a bidirectional layer on its own")
        count = scores.features if FEATURES in scores.axes else 1  # a squeezed feature axis was of size 1
        if count is None:
            raise self._refuse(node, "normalises scores of an unknown count over time")
        return replace(scores, attention=Attention(count))

    # -- the weights times the values, summed over time ---------------------------------------------------------
    def _weigh(self, node, a, b) -> Data:
        """Mul of the weights and the values they pool: the weighted values, one step each, until summed."""
        weights, values = (a, b) if is_attention(a) else (b, a)
        self._check_weights(node, weights, values)
        shape = _broadcast((weights.axes, weights.sizes), (values.axes, values.sizes))
        if shape is None:
            raise self._refuse(
                node,
                f"multiplies attention weights of axes {weights.axes} (sizes {weights.sizes}) and values of axes "
                f"{values.axes} (sizes {values.sizes}), which do not broadcast step by step",
            )
        axes, sizes = shape
        kept = sorted(tag for tag, size in zip(axes, sizes) if not _unit(tag, size))
        if kept != sorted((*INPUT_AXES, FEATURES)) or sizes[axes.index(FEATURES)] != values.features:
            raise self._refuse(
                node, f"weighs values of axes {values.axes} (sizes {values.sizes}) to axes {axes} (sizes {sizes})"
            )
        return replace(weights, axes=axes, sizes=sizes, attention=replace(weights.attention, values=values))

    def _op_ReduceSum(self, node, x, axes=None):
        if not is_attention(x) or x.attention.values is None:
            raise self._refuse(
                node,
                "sums values other than attention weights times values (a Softmax over time, then Mul): lstmrt "
                "reads a sum over time only as an attention pool",
            )
        axes = fold.axes_of(node, [x, axes], self.opset, 13)
        if not axes:
            raise self._refuse(node, "sums over every axis or none; an attention pool sums over time")
        axes = sorted({a % len(x.axes) for a in axes})
        reduced = [x.axes[a] for a in axes if not _unit(x.axes[a], x.sizes[a])]
        if len(reduced) != 1 or reduced[0] not in INPUT_AXES or self._axis_name(reduced[0]) != "time":
            names = " and ".join(self._axis_name(tag) for tag in reduced) or "axes of size 1"
            raise self._refuse(node, f"sums attention-weighted values over {names}; an attention pool sums over time")
        self._pool_attention(node, x, x.attention.values)
        return [self._pooled_over_time(node, x, axes, attention=None)]

    def _attention_matmul(self, node, weights, values) -> Data:
        """MatMul of the weights (batch, 1, time) and the values (batch, time, features): torch's bmm, pooled."""
        if not is_attention(weights) or weights.attention.scores != 1:
            raise self._refuse(
                node,
                "multiplies matrices of attention weights other than as weights (batch, 1, time) times values "
                "(batch, time, features)",
            )
        self._check_weights(node, weights, values)
        waxes, vaxes = weights.axes, values.axes
        time = waxes[-1]
        if (
            len(waxes) < 2
            or len(vaxes) < 2
            or time not in INPUT_AXES
            or self._axis_name(time) != "time"
            or not _unit(waxes[-2], weights.sizes[-2])
            or vaxes[-2:] != (time, FEATURES)
        ):
            raise self._refuse(
                node,
                f"multiplies attention weights of axes {waxes} and values of axes {vaxes}; lstmrt reads weights "
                "(batch, 1, time) times values (batch, time, features)",
            )
        shape = _broadcast((waxes[:-2], weights.sizes[:-2]), (vaxes[:-2], values.sizes[:-2]))
        batch = next(tag for tag in INPUT_AXES if tag != time)
        if shape is None or [tag for tag, size in zip(*shape) if not _unit(tag, size)] != [batch]:
            raise self._refuse(
                node, f"multiplies attention weights of axes {waxes} and values of axes {vaxes} per batch"
            )
        self._pool_attention(node, weights, values)
        axes, sizes = (*shape[0], UNIT, FEATURES), (*shape[1], 1, values.features)
        return self._output(weights, axes=axes, sizes=sizes, last=True, attention=None)

    def _check_weights(self, node, weights: Data, values) -> None:
        """weights: a Softmax's weights not yet multiplied; values: an earlier point of the scores' chain."""
        if weights.attention.values is not None:
            raise self._refuse(node, "uses attention-weighted values other than to sum them over time")
        if not isinstance(values, Data) or is_attention(values):
            raise self._refuse(node, "multiplies attention weights by a value that is not data of the chain")
        if values.depth > weights.depth or values.last or values.final_of or values.direction:
            raise self._refuse(
                node,
                "multiplies attention weights by data that is not an earlier point of the chain that computed the "
                "scores (a layer's output sequence, or the input)",
            )
        if values.features is None:
            raise self._refuse(node, "weighs values of an unknown feature count")

    def _pool_attention(self, node, weights: Data, values: Data) -> None:
        """Appends the AttentionPooling layer of the weights' scores (the last layer's output) and the values."""
        if weights.depth != len(self.layers):
            raise self._refuse(node, "pools with scores that are not the last layer's output (the graph branches)")
        self._refuse_lengths(node, "pools with attention", "attends")
        scores = weights.attention.scores
        if scores not in (1, values.features):
            raise self._refuse(node, f"weighs {values.features} features with {scores} scores per step")
        source = "input" if values.depth == 0 else values.depth - 1
        spec = AttentionPooling(values.features, source, values.feature_start or 0, per_feature=scores > 1)
        self._append(spec)


def _broadcast(a: tuple, b: tuple):
    """(axes, sizes) of ONNX's broadcast of two (axes, sizes), aligned from the last axis, when each aligned pair is
    the same axis or one of the two is of size 1; else None."""
    n = max(len(a[0]), len(b[0]))
    (axes_a, sizes_a), (axes_b, sizes_b) = [((UNIT,) * (n - len(t)) + t, (1,) * (n - len(t)) + s) for t, s in (a, b)]
    axes, sizes = [], []
    for ta, sa, tb, sb in zip(axes_a, sizes_a, axes_b, sizes_b):
        if _unit(ta, sa):
            ta, sa = tb, sb
        elif not _unit(tb, sb) and (ta, sa) != (tb, sb):
            return None
        axes.append(ta)
        sizes.append(sa)
    return tuple(axes), tuple(sizes)
