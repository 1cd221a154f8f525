"""Model: an immutable chain of layers packed once into the C runtime; shareable between threads."""

from __future__ import annotations

import numpy as np

from . import _native
from ._arrays import as_float_array, checked_count, describe_shape, raise_token_problem
from .layers import (
    Add,
    AttentionPooling,
    Bidirectional,
    Embedding,
    GlobalPooling,
    Layer,
    is_recurrent,
    state_layout,
)


class Model:
    """A chain of layer specs (lstmrt.LSTM, GRU, SimpleRNN, Bidirectional, Dense, Activation, Affine, PReLU,
    LayerNorm, GlobalPooling, AttentionPooling, Embedding, Add) in the canonical layout of docs/math.md.

    `return_sequences=False` makes `predict` return only each sequence's last output (Keras semantics);
    streams always return the output for the sequence ending at the current step. `squeeze_output=True` (a model
    with one output feature) makes `predict` drop that axis, (B, T) or (B,), as a torch forward() ending in
    `.squeeze(-1)` does; a stream's step still returns (1,) or (N, 1). `unit_axes` (positions, ascending) makes
    `predict` of a batch insert axes of size 1 there, as an ONNX graph whose output keeps them, (B, 1, O) or
    (B, O, 1); a stream's step does not. `squeeze_input=True` (a model with one input feature) makes `predict` take
    a batch as (B, T), as a torch forward() starting with `x.unsqueeze(-1)` does, where a 2-D X is otherwise one
    sequence's (T, 1)."""

    def __init__(
        self,
        layers,
        *,
        input_size=None,
        return_sequences=True,
        squeeze_output=False,
        unit_axes=(),
        squeeze_input=False,
    ):
        layers = list(layers) if not isinstance(layers, Layer) else [layers]
        if not layers:
            raise ValueError("Model needs at least one layer")
        for i, spec in enumerate(layers):
            if not isinstance(spec, Layer):
                raise TypeError(f"layer {i}: expected an lstmrt layer spec, got {type(spec).__name__}")
        flags = (("return_sequences", return_sequences), ("squeeze_output", squeeze_output))
        for name, flag in flags + (("squeeze_input", squeeze_input),):
            if not isinstance(flag, (bool, np.bool_)):  # "no" would be True
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if input_size is not None:
            input_size = checked_count(input_size, "input_size")
        size = input_size if input_size is not None else layers[0].input_size
        if size is None:  # Activations first keep the width: the first layer that knows its input's tells it
            size = next((spec.input_size for spec in layers if spec.input_size is not None), None)
        if size is None:
            raise ValueError("input_size is required when the first layer is an Activation")
        self._input_size = int(size)
        descs, final_only = [], None  # final_only: the last layer that outputs its final output at every step
        widths = []  # each layer's output features, which a later Add may read
        for i, spec in enumerate(layers):
            if isinstance(spec, Embedding) and i != 0:
                raise ValueError(f"layer {i}: an Embedding must be the first layer")
            if isinstance(spec, (GlobalPooling, AttentionPooling)) and final_only is not None:
                # predict would pool copies of that final output while a stream pools the steps themselves
                raise ValueError(
                    f"layer {i} ({type(spec).__name__}) pools the steps of layer {final_only}, which has "
                    "return_sequences=False (its final output at every step): pool a full sequence instead"
                )
            if is_recurrent(spec) and not (spec.forward if isinstance(spec, Bidirectional) else spec).return_sequences:
                final_only = i
            if spec.input_size is not None and spec.input_size != size:
                prev = f"layer {i - 1} ({type(layers[i - 1]).__name__}) outputs" if i else "the model input has"
                raise ValueError(
                    f"layer {i} ({type(spec).__name__}) expects {spec.input_size} input features but {prev} {size}"
                )
            if isinstance(spec, (Add, AttentionPooling)):
                self._check_source(i, spec, widths)
            descs.append(spec._desc(size))
            size = spec.output_size if spec.output_size is not None else size
            widths.append(size)
        self._native = _native.Model(descs)
        self._descs = tuple(descs)  # what the C runtime was given: Model.save writes it
        self._layers = tuple(layers)
        self._output_size = int(size)
        self._tokens = isinstance(layers[0], Embedding)
        self._return_sequences = bool(return_sequences)
        self._squeeze_output = bool(squeeze_output)
        if self._squeeze_output and self._output_size != 1:
            raise ValueError(f"squeeze_output needs one output feature; the model outputs {self._output_size}")
        self._squeeze_input = bool(squeeze_input)
        if self._squeeze_input and (self._input_size != 1 or self._tokens):
            what = "token ids" if self._tokens else f"{self._input_size} features"
            raise ValueError(f"squeeze_input needs one input feature; the model takes {what}")
        rank = 1 + self._return_sequences + (not self._squeeze_output)  # predict's result for a batch
        self._unit_axes = tuple(unit_axes)
        if (
            not all(isinstance(a, int) and not isinstance(a, bool) for a in self._unit_axes)
            or list(self._unit_axes) != sorted(set(self._unit_axes))
            or any(not 0 <= a <= rank + i for i, a in enumerate(self._unit_axes))
        ):
            raise ValueError(f"unit_axes must be ascending positions in a result of {rank} axes, got {unit_axes!r}")
        # state layout of the C runtime (layers.state_layout): per recurrent layer and direction, h (batch, Hr) then
        # c (batch, H); per global pool, its value (batch, F), for a mean its low part (batch, F), its count (batch, 1)
        self._state_layout = [(i, names, sizes) for i, spec in enumerate(layers) for names, sizes in state_layout(spec)]

    def _check_source(self, i: int, spec, widths: list) -> None:
        """The point an Add or AttentionPooling reads comes before it and has the features it reads."""
        name, verb = type(spec).__name__, "adds" if isinstance(spec, Add) else "attends to"
        if spec.source != "input" and spec.source >= i:
            raise ValueError(
                f"layer {i} ({name}) {verb} the output of layer {spec.source}: it must be an earlier layer"
            )
        width = self._input_size if spec.source == "input" else widths[spec.source]
        read = spec.input_size if isinstance(spec, Add) else spec.output_size
        if spec.start + read > width:
            what = "the model input has" if spec.source == "input" else f"layer {spec.source} outputs"
            raise ValueError(
                f"layer {i} ({name}) {verb} features [{spec.start}, {spec.start + read}) but {what} {width}"
            )

    def __copy__(self):  # immutable (the weights live in the C model): a copy can be itself
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        """Pickling (multiprocessing, caches) keeps the layer specs and options; unpickling packs them again."""
        return _rebuild, (type(self), self._layers, self._options())

    def _options(self) -> dict:
        """The keyword arguments that rebuild this model from its layers (subclasses add theirs)."""
        return {
            "input_size": self._input_size,
            "return_sequences": self._return_sequences,
            "squeeze_output": self._squeeze_output,
            "unit_axes": list(self._unit_axes),
            "squeeze_input": self._squeeze_input,
        }

    def save(self, file) -> None:
        """Write lstmrt's model file (.lstmrt by convention; docs/model-file.md): the layers, weights and options,
        which lstmrt.load reads back and the C library loads without Python (lstmrt_model_load_file). file: a path
        or a binary file object."""
        from .model_file import save

        save(self, file)

    # -- description ---------------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self._input_size

    @property
    def output_size(self) -> int:
        return self._output_size

    @property
    def layers(self) -> tuple:
        return self._layers

    @property
    def return_sequences(self) -> bool:
        """False: predict returns only each sequence's last output."""
        return self._return_sequences

    @property
    def unit_axes(self) -> tuple:
        """Where predict of a batch inserts axes of size 1 (an ONNX graph's output shape); () for none."""
        return self._unit_axes

    @property
    def squeeze_output(self) -> bool:
        """True: predict drops the one output feature's axis."""
        return self._squeeze_output

    @property
    def squeeze_input(self) -> bool:
        """True: predict takes a batch of one-feature sequences as (B, T), without the feature axis."""
        return self._squeeze_input

    @property
    def parameter_count(self) -> int:
        return sum(spec.parameter_count() for spec in self._layers)

    @property
    def weight_bytes(self) -> int:
        """Bytes of packed weights held by the C runtime."""
        return self._native.weight_bytes

    @property
    def bidirectional(self) -> bool:
        return self._native.bidirectional

    def __repr__(self) -> str:
        lines = [f"lstmrt.Model: {self.input_size} -> {self.output_size}, {self.parameter_count:,} parameters"]
        for i, spec in enumerate(self._layers):
            lines.append(f"  ({i}) {spec!r}")
        if not self._return_sequences:
            lines.append("  predict returns the last step only")
        if self._squeeze_output:
            lines.append("  predict drops the output's feature axis (one feature)")
        if self._unit_axes:
            lines.append(f"  predict of a batch adds axes of size 1 at {self._unit_axes}")
        if self._squeeze_input:
            lines.append("  predict takes a batch as (B, T): one input feature, without its axis")
        return "\n".join(lines)

    # -- inference -----------------------------------------------------------------------------------------
    def predict(self, X, lengths=None, mask=None, *, threads=1):
        """X (T, I) -> (T, O) or (B, T, I) -> (B, T, O), each sequence from the zero state. A model with one input
        feature also takes one sequence as (T,); token ids come as (T,) or (B, T).

        lengths (B,): steps past a sequence's length are padding: its outputs there are zero and the backward
        direction of a bidirectional layer starts at its own last step. mask (B, T) or (T,): False marks steps
        to skip (Keras masking: state carried through). With return_sequences=False the result is (O,) or
        (B, O): the output at each sequence's last step. squeeze_output drops the O axis. NaN/Inf in X propagate
        to the outputs they reach.
        threads: split the batch over up to this many threads (at least 8 sequences each); the result equals
        the one-thread result up to float rounding (summation order may differ). Fewer than 16 sequences instead
        share each step between the threads, as Model.stream(threads=) does: bit-identical. The model keeps
        those threads (started by the first such call); a call right after another finds them awake, and a
        short call after a pause runs alone rather than wait ~100 µs for them to wake."""
        threads = checked_count(threads, "threads")
        X = as_float_array(X, "X", tokens=self._tokens)
        ids, given = X, X.shape  # messages name the caller's array, not the one with the added axes
        # one input feature (token ids, a sensor's samples) may come without its axis: (T,) is one sequence, as
        # Stream.run takes it. A float (B, T) is not: a 2-D float X is one sequence's (T, I)
        bare = self._tokens or self._squeeze_input or (self.input_size == 1 and X.ndim == 1)
        single = X.ndim == (1 if bare else 2)
        if bare and X.ndim in (1, 2):
            X = X[..., None]
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or X.shape[2] != self.input_size:
            want = "(T,) or (B, T)" if bare else f"(T, {self.input_size}) or (B, T, {self.input_size})"
            if self.input_size == 1 and not bare:
                want = "(T,), (T, 1) or (B, T, 1)"
            raise ValueError(f"X has shape {describe_shape(given)}, expected {want}")
        B, T = X.shape[:2]
        if B == 0 or T == 0:
            raise ValueError(f"X has shape {describe_shape(given)}: empty batch or sequence")
        lengths = self._check_lengths(lengths, B, T, single)
        mask = self._check_mask(mask, B, T, single)
        try:
            Y = self._native.predict(
                np.require(X, np.float32, "CA"), lengths, mask, int(min(threads, _native.MAX_THREADS))
            )
        except ValueError:
            if self._tokens:
                raise_token_problem(ids, ("step",) if single else ("row", "step"), self._layers[0].num_embeddings)
            raise
        if not self._return_sequences:
            last = (lengths - 1) if lengths is not None else np.full(B, T - 1)
            Y = Y[np.arange(B), np.maximum(last, 0)]
            if lengths is not None:
                Y[lengths == 0] = 0.0
        if self._squeeze_output:
            Y = np.ascontiguousarray(Y[..., 0])
        if single:
            return Y[0]
        return np.expand_dims(Y, self._unit_axes) if self._unit_axes else Y

    @staticmethod
    def _check_lengths(lengths, B, T, single):
        if lengths is None:
            return None
        arr = np.asarray(lengths)
        if single and arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.dtype.kind not in "iu" or arr.shape != (B,):
            problem = ValueError if arr.dtype.kind in "iu" else TypeError  # a wrong dtype is a TypeError, as for X
            raise problem(
                f"lengths must be {B} integer(s) (one per sequence), got {describe_shape(arr.shape)} of {arr.dtype}"
            )
        if arr.size and (arr.min() < 0 or arr.max() > T):
            raise ValueError(
                f"lengths must lie in [0, {T}] (the number of steps), got min {arr.min()}, max {arr.max()}"
            )
        return np.ascontiguousarray(arr, dtype=np.int32)

    @staticmethod
    def _check_mask(mask, B, T, single):
        if mask is None:
            return None
        arr = np.asarray(mask)
        if single and arr.ndim == 1:
            arr = arr[None]
        if arr.shape != (B, T) or arr.dtype.kind not in "biu":
            problem = ValueError if arr.dtype.kind in "biu" else TypeError
            raise problem(
                f"mask must be a boolean array of shape ({B}, {T}), got {describe_shape(arr.shape)} of {arr.dtype}"
            )
        return np.ascontiguousarray(arr != 0, dtype=np.uint8)

    def stream(self, batch=None, *, threads=1):
        """A stream from the zero state: step(x) with x (I,) -> (O,); with batch=N, N independent streams
        stepped together: x (N, I) -> (N, O). Each thread should use its own streams.

        threads: share the steps of a single stream between this many threads, each computing a slice of the hidden
        units of its LSTM/GRU layers (step() from 128 KB of weights, e.g. LSTM I=32, H=128; run() from 48 KB of
        recurrent weights), or, with batch >= 4, a share of the rows: bit-identical results, ~1.5x faster per step
        at H = 128 on two cores. Hidden units are split only in layers the fused kernels run: hidden size a multiple
        of 16, no projection, peephole or cell clip, default activations, a GRU in reset-after form. The workers
        poll for ~50 µs after each step, then sleep; a step after a longer pause runs alone rather than wait ~100 µs
        for them to wake, and steps in quick succession wake them again. `stream.threads` says whether a team was
        started."""
        from .stream import Stream

        return Stream(self, batch, threads)


def _rebuild(cls, layers, options):
    return cls(layers, **options)
