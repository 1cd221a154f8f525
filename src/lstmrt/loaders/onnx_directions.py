"""A bidirectional node's two directions read apart and merged again, as tf2onnx writes Keras' Bidirectional: each
direction sliced out of Y, each one's final output taken as a step of it (the forward direction's last step, the
backward one's first), then the two concatenated along the features (merge_mode="concat"), added ("sum") or
multiplied ("mul"). torch's `torch.cat((h_n[-2], h_n[-1]), 1)` merges the two final states the same way. Part of
the graph reader (onnx_graph.GraphReader): merging makes the Bidirectional layer merge as the graph does; a
direction alone is refused wherever it is used."""

from __future__ import annotations

from dataclasses import replace

from ..errors import CorruptFileError
from ..layers import Bidirectional
from .onnx_values import DIRECTIONS, FEATURES, Data

# the ops that merge the two directions, and the Bidirectional merge mode each makes
MERGES = {"Concat": "concat", "Add": "sum", "Mul": "mul"}


def both_directions(a, b) -> bool:
    """a and b are each one direction of a bidirectional layer (a sequence or a final state): a merge's operands."""
    return all(isinstance(p, Data) and (p.direction or p.final_of) for p in (a, b))


class DirectionOps:
    """GraphReader's methods for one direction of a bidirectional layer's output."""

    def _selects_direction(self, x, axis: int) -> bool:
        """x is the last layer's Y, a bidirectional layer's, and `axis` its directions."""
        return (
            x.axes[axis] == DIRECTIONS
            and x.sizes[axis] == 2
            and x.depth == len(self.layers)
            and isinstance(self.layers[-1], Bidirectional)
            and not x.last
        )

    def _one_direction(self, node, x, axis: int, index: int, keep_axis: bool) -> Data:
        """Direction `index` of x (Slice keeps the axis with size 1, Gather drops it)."""
        if index not in (0, 1, -1, -2):
            raise self._refuse(node, f"selects direction {index} of 2")
        x = replace(x, direction=(x.depth - 1, index % 2))
        if keep_axis:
            return replace(x, sizes=x.sizes[:axis] + (1,) + x.sizes[axis + 1 :])
        return x.drop(axis)

    def _direction_final(self, node, x, axis: int, index: int):
        """x[index] along time, for one direction of a bidirectional layer: its final output (the forward
        direction's last step, the backward one's first), as the direction's final state; None for another step."""
        layer, direction = x.direction
        if self._axis_name(x.axes[axis]) != "time":
            return None
        final = index == 0 if direction == 1 else self._last_index(node, x, x.axes[axis], index)
        if not final:
            return None
        return replace(x, direction=None, final_of=(layer, direction), last=True)

    def _merge_directions(self, node, a, b):
        """The two directions of a bidirectional layer (sequences or final states) merged by `node`: the layer's
        output, with its merge mode and return_sequences set as the graph computes them."""
        mode = MERGES.get(node.op_type)
        parts = [p.direction or p.final_of for p in (a, b)]
        finals = [p.final_of is not None for p in (a, b)]
        layer = parts[0][0]
        if (
            mode is None
            or parts[1][0] != layer
            or finals[0] != finals[1]
            or sorted(d for _, d in parts) != [0, 1]
            or a.axes != b.axes
        ):
            raise self._refuse(node, "combines values that are not the two directions of one bidirectional layer")
        if mode == "concat":
            if node.attrs.get("axis") is None:
                raise CorruptFileError(f"{self.node_where} has no axis (ONNX requires one)")
            if parts[0][1] != 0 or node.attrs["axis"] % len(a.axes) != a.axes.index(FEATURES):
                raise self._refuse(
                    node,
                    "concatenates a bidirectional layer's two directions other than forward then backward along "
                    "the features",
                )
        spec = self.layers[layer]
        if spec.merge_mode != "concat":
            raise self._refuse(node, "merges the directions of a bidirectional layer a second time")
        self._changed(layer)  # refused there if later layers read this one
        merged = Bidirectional(spec.forward, spec.backward, mode)
        if finals[0]:
            for direction in (merged.forward, merged.backward):
                direction.return_sequences = False  # Keras semantics: each direction's final output
        self.layers[layer] = merged
        size = a.features * (2 if mode == "concat" else 1)
        return replace(a, direction=None, final_of=None, sizes=self._with_features(a, size), revision=self.revision)
