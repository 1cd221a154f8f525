"""The ONNX ops that reduce over an axis of the data: ReduceMean / ReduceMax over time, a GlobalPooling layer (torch's
out.mean(1) and out.max(1)[0], Keras' GlobalAveragePooling1D / GlobalMaxPooling1D through tf2onnx), and
LayerNormalization / RMSNormalization over the features, a LayerNorm layer (torch's nn.LayerNorm and nn.RMSNorm);
BatchNormalization in inference where the features are its axis 1, an Affine (torch's nn.BatchNorm1d after the last
step).
Part of the graph reader (onnx_graph.GraphReader)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..layers import Affine, GlobalPooling, LayerNorm
from . import onnx_fold as fold
from .onnx_values import DIRECTIONS, FEATURES, UNIT, Data, Opaque

_POOLS = {"ReduceMean": "average", "ReduceMax": "max"}


class ReductionOps:
    """GraphReader's methods for the ops that pool over time or normalise over the features."""

    def _op_ReduceMean(self, node, x, axes=None):
        return [self._pool(node, x, axes)]

    _op_ReduceMax = _op_ReduceMean

    def _pool(self, node, x, axes) -> Data:
        if not isinstance(x, Data):
            raise self._refuse(node, "reduces a final state")
        self._check_latest(node, x)
        axes = fold.axes_of(node, [x, axes], self.opset, 18)
        if axes is None:
            raise self._refuse(node, "reduces over every axis; lstmrt pools over time only")
        axes = sorted({a % len(x.axes) for a in axes})
        reduced = [a for a in axes if not (x.axes[a] in (UNIT, DIRECTIONS) and x.sizes[a] == 1)]
        names = " and ".join(self._axis_name(x.axes[a]) for a in reduced) or "nothing"
        if len(reduced) != 1 or self._axis_name(x.axes[reduced[0]]) != "time" or x.last:
            hint = ""
            if FEATURES in (x.axes[a] for a in reduced):
                hint = (
                    " (a layer norm is read as one LayerNormalization node; tf2onnx writes Keras' "
                    "LayerNormalization as separate ops: load the Keras file itself)"
                )
            raise self._refuse(node, f"reduces over {names}; lstmrt pools over time only{hint}")
        self._refuse_lengths(node, "pools over time", "pools")
        if x.features is None:
            raise self._refuse(node, "pools data of an unknown feature count")
        self._append(GlobalPooling(x.features, _POOLS[node.op_type]))
        return self._pooled_over_time(node, x, axes)

    def _refuse_lengths(self, node, doing: str, onnx_does: str) -> None:
        """A pool over time in a graph with sequence_lens: ONNX's Y is zero past each length, and ONNX pools those
        steps too, where lstmrt pools each sequence's own steps only."""
        if self.facts.get("lengths_inputs"):
            raise self._refuse(
                node,
                f"{doing} in a graph with sequence_lens: ONNX {onnx_does} the zero steps past each length too, "
                "lstmrt only the steps of each sequence",
            )

    def _pooled_over_time(self, node, x: Data, axes: list, **changes) -> Data:
        """x reduced over `axes` (time, and axes of size 1) by the pool just appended: its output at each sequence's
        end (the pool of the whole sequence), the reduced axes kept as size 1 (keepdims, ONNX's default) or
        dropped."""
        pooled = self._output(x, last=True, **changes)
        if node.attrs.get("keepdims", 1):
            tags = tuple(UNIT if i in axes else tag for i, tag in enumerate(pooled.axes))
            sizes = tuple(1 if i in axes else size for i, size in enumerate(pooled.sizes))
            return replace(pooled, axes=tags, sizes=sizes)
        for a in reversed(axes):
            pooled = pooled.drop(a)
        return pooled

    def _op_LayerNormalization(self, node, x, scale, shift=None):
        return self._norm(node, x, scale, shift, "layer")

    def _op_RMSNormalization(self, node, x, scale):
        return self._norm(node, x, scale, None, "rms")

    def _norm(self, node, x, scale, shift, mode) -> list:
        if not isinstance(x, Data):
            raise self._refuse(node, "normalises a final state")
        self._check_latest(node, x)
        axis = node.attrs.get("axis", -1) % len(x.axes)
        normalised = [a for a in range(axis, len(x.axes)) if not (x.axes[a] in (UNIT, DIRECTIONS) and x.sizes[a] == 1)]
        if [x.axes[a] for a in normalised] != [FEATURES] or x.features is None:
            names = " and ".join(self._axis_name(x.axes[a]) for a in normalised)
            raise self._refuse(node, f"normalises over {names}; lstmrt's LayerNorm normalises each step's features")
        if DIRECTIONS in x.axes and x.sizes[x.axes.index(DIRECTIONS)] != 1:
            raise self._refuse(node, "normalises each direction of a bidirectional layer on its own")
        weights = [self._norm_weight(node, x, w, what) for w, what in ((scale, "scale"), (shift, "bias"))]
        epsilon = node.attrs.get("epsilon", 1e-5)
        try:
            spec = LayerNorm(x.features, scale=weights[0], shift=weights[1], epsilon=epsilon, mode=mode)
        except ValueError as exc:
            raise self._refuse(node, f"has parameters lstmrt cannot use: {exc}") from None
        self._append(spec)
        statistics = Opaque(f"{node.op_type}'s statistics")
        return [self._output(x), statistics, statistics]

    def _op_BatchNormalization(self, node, x, scale, bias, mean, var):
        """Inference-mode BatchNormalization of axis 1 (torch's nn.BatchNorm1d after the last step, (B, F)) when
        axis 1 holds the features: a per-feature Affine, folded in float64."""
        if not isinstance(x, Data):
            raise self._refuse(node, "normalises a final state")
        self._check_latest(node, x)
        if node.attrs.get("training_mode", 0):
            raise self._refuse(node, "normalises with the batch's statistics (training_mode=1)")
        if len(x.axes) < 2 or x.axes[1] != FEATURES or x.features is None:
            where = self._axis_name(x.axes[1]) if len(x.axes) > 1 else "nothing"
            raise self._refuse(
                node, f"normalises axis 1 ({where}); lstmrt's per-feature scale needs the features there"
            )
        parts = ((scale, "scale"), (bias, "bias"), (mean, "mean"), (var, "variance"))
        scale, bias, mean, var = [self._norm_weight(node, x, value, what) for value, what in parts]
        spec = Affine.from_batch_norm(mean, var, node.attrs.get("epsilon", 1e-5), scale, bias)
        if not np.all(np.isfinite(spec.scale)):
            raise self._refuse(node, "has a variance and epsilon whose square root is not a positive number")
        self._append(spec)
        statistics = Opaque("BatchNormalization's statistics")
        return [self._output(x), statistics, statistics]

    def _norm_weight(self, node, x, value, what):
        """A norm's scale or bias: a constant per feature (one for all is broadcast), or None when absent."""
        if value is None:
            return None
        if not isinstance(value, np.ndarray) or fold.symbolic(value) or value.dtype.kind not in "fiu":
            raise self._refuse(node, f"has a {what} computed at run time")
        if value.size not in (1, x.features) or value.size > 1 and value.shape[-1] != value.size:
            raise self._refuse(node, f"has a {what} of shape {value.shape} for {x.features} features")
        return np.broadcast_to(value.reshape(-1), (x.features,)).astype(np.float32)
