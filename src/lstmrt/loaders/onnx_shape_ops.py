"""The ONNX ops that move a data value without computing on it (Identity, Cast, Shape, Transpose, Squeeze,
Unsqueeze, Reshape, Gather, Slice, Concat): each renames, drops or adds axes of the value, or reads a step, a slice
of the features or a final state out of it. Part of the graph reader (onnx_graph.GraphReader): they add no layer
(a Gather of token ids is handed to its _embedding), though reading final states may stop the recurrent layer that
made them returning sequences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import CorruptFileError
from . import onnx_fold as fold
from .onnx_directions import both_directions
from .onnx_reshape import reshape_data
from .onnx_values import DIRECTIONS, FEATURES, INPUT_AXES, UNIT, Data, Final, Opaque, Size


# ONNX's Y is zero past each sequence's length: its last step is not a shorter sequence's final output
LAST_STEP_WITH_LENGTHS = (
    "reads the last step of a sequence in a graph with sequence_lens, where ONNX gives zeros for the sequences "
    "shorter than the input; Y_h holds each sequence's final output"
)


class ShapeOps:
    """GraphReader's `_op_<OpType>` methods for ops that move data; they use its state and bookkeeping."""

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
        positions = sorted(a % rank for a in added)
        if self._bare_input(x):
            # the (batch, time) samples of a one-feature input, given their feature axis
            if positions != [2]:
                raise self._refuse(
                    node,
                    f"adds axes {added} to the (batch, time) input; lstmrt reads it as one "
                    "feature per step, an axis added last (x.unsqueeze(-1))",
                )
            return [replace(x, axes=x.axes + (FEATURES,), sizes=x.sizes + (1,))]
        for i in positions:
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
        if self._bare_input(x) and result.axes[:2] == x.axes and result.sizes[2:] == (1,):
            result = replace(result, axes=x.axes + (FEATURES,))  # x.view(B, T, 1) of a (batch, time) input
        return [result]

    def _bare_input(self, x) -> bool:
        """x is the (batch, time) samples of a one-feature input, not yet given a feature axis."""
        return isinstance(x, Data) and x.depth == 0 and FEATURES not in x.axes and not self.facts["tokens"]

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
        if self._selects_direction(x, axis):
            return [self._one_direction(node, x, axis, index, keep_axis=False)]
        final = x.direction and self._direction_final(node, x, axis, index)
        if final:
            return [final.drop(axis)]
        if self._is_last_step(node, x, axis, index):
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
            one = step == 1 and (end == start + 1 or start == -1 and end >= fold.INT_MAX)
            if one and self._selects_direction(x, axis):
                x = self._one_direction(node, x, axis, start, keep_axis=True)
                continue
            final = one and x.direction and self._direction_final(node, x, axis, start)
            if final:
                x = replace(final, axes=x.axes[:axis] + (UNIT,) + x.axes[axis + 1 :])
                x = replace(x, sizes=x.sizes[:axis] + (1,) + x.sizes[axis + 1 :])
                continue
            if step == 1 and end >= fold.INT_MAX and self._is_last_step(node, x, axis, start):
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
        if first == 0 and stop == x.features:
            return x  # all of them: no slice
        offset = (x.feature_start or 0) + first
        return replace(x, sizes=self._with_features(x, stop - first), feature_start=offset)

    def _op_Concat(self, node, *parts):
        if all(isinstance(p, Final) for p in parts):
            return [Final(tuple(e for p in parts for e in p.entries))]
        if len(parts) == 2 and both_directions(*parts):
            return [self._merge_directions(node, *parts)]
        raise self._refuse(
            node, "concatenates data values (only a bidirectional layer's two directions are read concatenated)"
        )

    def _single_index(self, node, indices) -> int:
        if not isinstance(indices, np.ndarray) or indices.ndim != 0 or indices.dtype.kind not in "iu":
            raise self._refuse(node, "selects with indices that are not one constant")
        return int(indices)

    def _is_last_step(self, node, x, axis, index) -> bool:
        tag = x.axes[axis]
        if tag not in INPUT_AXES or x.last or tag != (self.time_axis or tag):
            return False
        return self._last_index(node, x, tag, index)

    def _last_index(self, node, x, tag, index) -> bool:
        """index is the last along input axis `tag` (time) of x: -1. Step T-1 of a time axis the graph fixes at T
        (torch's out[:, 4] exported with a static shape) is the last step at that length only, and lstmrt runs any
        length: refused."""
        steps = self.static.get(tag)
        if steps is not None and index == steps - 1:
            raise self._refuse(
                node,
                f"selects step {index} of a time axis the graph fixes at {steps} steps, which is the last step only at "
                "that length, while lstmrt runs sequences of any length; export the last step as index -1 "
                "(out[:, -1]) or with a dynamic time axis",
            )
        last = index == -1
        if last and self.facts.get("lengths_inputs") and x.depth:
            raise self._refuse(node, LAST_STEP_WITH_LENGTHS)
        return last
