"""What the ONNX graph reader knows about each tensor of a graph, short of running it: a constant (an ndarray; shape
vectors may hold symbolic sizes), zeros of some shape, a value of the data flow with named axes, or a tensor
lstmrt does not need to compute (refused only if the model's output depends on it)."""

from __future__ import annotations

from dataclasses import dataclass, replace

# axis tags of a Data value: the data input's first two axes keep their names ("x0", "x1": which is time is
# settled by the first recurrent node); "F" features, "D" directions of a recurrent node's Y, "1" an added unit axis;
# "x0*x1" (or "x1*x0") both input axes merged into rows by a reshape, in that order
FEATURES, DIRECTIONS, UNIT, MERGED = "F", "D", "1", "*"
INPUT_AXES = ("x0", "x1")


@dataclass(frozen=True)
class Size:
    """The size of an input axis in a shape vector (Shape of a data tensor): unknown until run time."""

    tag: str


@dataclass(frozen=True)
class Data:
    """A tensor computed from the model input by the first `depth` layers of the chain.
    sizes: per axis, an int, or None for the input axes (batch, time). last: the time axis was reduced to the last
    step. final_of: a bidirectional layer's final state of one direction, (layer, direction), until merged.
    direction: one direction of a bidirectional layer's output sequence, (layer, direction), until merged.
    feature_start: the features are a slice starting there (only a skip connection or an attention pool reads such a
    slice).
    attention: on the way to an attention pool (onnx_attention.py), a weighting that only moves and the pool may read.
    revision: the reader's count of layer changes when the value was made: an op merged into a layer later (a bias
    or an activation into a Dense) changes what the layer outputs, so a value made before is stale."""

    axes: tuple
    sizes: tuple
    depth: int
    last: bool = False
    final_of: tuple | None = None
    direction: tuple | None = None
    feature_start: int | None = None
    revision: int = 0
    attention: Attention | None = None

    def drop(self, i: int) -> Data:
        return replace(self, axes=self.axes[:i] + self.axes[i + 1 :], sizes=self.sizes[:i] + self.sizes[i + 1 :])

    @property
    def features(self) -> int | None:
        return self.sizes[self.axes.index(FEATURES)] if FEATURES in self.axes else None


@dataclass(frozen=True)
class Attention:
    """A Data value's part in an attention pool: the weights of a Softmax over time of `scores` scores per step (1:
    shared by every feature), and once multiplied, the `values` they weigh (an earlier point of the chain). Such a
    value's depth and revision are its scores'."""

    scores: int
    values: Data | None = None


@dataclass(frozen=True)
class Zeros:
    """ConstantOfShape / Expand of a zero: an initial state of zeros. shape: its sizes as far as the graph fixes
    them (None for a size known only at run time, the batch), or None when not followed."""

    shape: tuple | None = None


@dataclass(frozen=True)
class Opaque:
    """A value the reader does not compute (shape arithmetic on run-time sizes, ...); `what` made it."""

    what: str


@dataclass(frozen=True)
class StateInput:
    """A graph input that only feeds initial states: lstmrt's stream carries that state itself."""

    name: str


@dataclass(frozen=True)
class LengthsInput:
    """A graph input that only feeds sequence_lens: predict's `lengths`."""

    name: str


@dataclass(frozen=True)
class Final:
    """Final states (Y_h / Y_c) stacked along axis 0, one entry per direction: (layer, direction, directions,
    which), which "h" or "c"."""

    entries: tuple


ZEROS = Zeros()

# why an op reading a stale value (onnx_graph: a layer's output from before a node was merged into the layer) fails
STALE = "reads a layer's output from before a later node was merged into that layer (the graph branches there)"
