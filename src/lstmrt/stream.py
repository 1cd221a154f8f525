"""Stream: recurrent state for one sequence (or N stepped together), stepped sample by sample."""

from __future__ import annotations

import numpy as np

from . import _native
from ._arrays import as_float_array, checked_count, describe_shape, raise_token_problem, reject_output

try:  # the Cython hot path (lstmrt/_step.pyx); the binding's own step works without it
    from ._step import StepFunction
except ImportError:  # pragma: no cover - only when built without Cython
    StepFunction = None


MAX_BATCH = _native.MAX_STREAM_BATCH  # the C library's limits (lstmrt.h)
MAX_THREADS = _native.MAX_THREADS
_MAX_POOL_COUNT = 1 << 24  # a GlobalPooling's count and an AttentionPooling's weight sum stop there (lstmrt.h)


def _bind_step(native):
    """The fastest available step callable for a native stream."""
    if StepFunction is None:
        return native.step
    return StepFunction(native, native.x_shape, native.y_shape).step  # a METH_FASTCALL method: no argument tuple


class Stream:
    """Created by Model.stream(). Holds state and scratch allocated once; step() never allocates when given
    `out=`. A failed call (bad shape, dtype, token) raises and leaves the state exactly as it was."""

    def __init__(self, model, batch=None, threads=1):
        batch = None if batch is None else checked_count(batch, "batch", MAX_BATCH)
        threads = checked_count(threads, "threads", MAX_THREADS)
        if model.bidirectional:
            raise ValueError(
                "this model has a bidirectional (or go_backwards) layer: it needs the whole "
                "sequence, so it cannot be streamed step by step; use model.predict(X)"
            )
        self._model = model
        self._batched = batch is not None
        self._native = _native.Stream(model._native, int(batch or 1), self._batched)
        if threads > 1:
            self._native.set_threads(int(threads))
        # The hot path: a callable bound on the instance, so a call costs no Python frame.
        self.step = _bind_step(self._native)

    def step(self, x, out=None):  # noqa: F811 - documentation; instances use the callable bound above
        """x (I,) -> (O,) or, batched, (N, I) -> (N, O). out: a float32 C-contiguous array to write into.
        A model with one input feature takes one stream's sample as a float or 0-d array (s.step(0.25)) and N
        streams' samples as (N,); a token model takes an id as an int or a 0-d / (1,) integer array (or floats
        holding integers), and N streams' ids as (N,) or (N, 1). float32 arrays, floats and contiguous integer ids
        are the fast path."""
        return self._native.step(x, out)

    @property
    def threads(self):
        """Threads sharing each step: the count asked for when the stream has one sequence and a layer that gains
        (an LSTM/GRU of at least 48 KB of recurrent weights), else 1."""
        return self._native.threads

    @property
    def model(self):
        return self._model

    @property
    def batch(self):
        """N for a batched stream, None for a single one."""
        return self._native.batch if self._batched else None

    def run(self, X, out=None):
        """A chunk of steps, state carried: X (T, I) -> (T, O); batched (N, T, I) -> (N, T, O). A model with one
        input feature also takes X without that axis: (T,) or, batched, (N, T). out: a float32 C-contiguous array
        of the output's shape to write into (a block-by-block loop then allocates no output)."""
        m = self._model
        X = as_float_array(X, "X", tokens=m._tokens)
        if m.input_size == 1 and X.ndim == (1 if not self._batched else 2):
            X = X[..., None]  # one feature (token ids, a sensor's samples) without its axis, as step takes it
        want_ndim = 3 if self._batched else 2
        lead = (self._native.batch,) if self._batched else ()
        if X.ndim != want_ndim or X.shape[: len(lead)] != lead or X.shape[-1] != m.input_size:
            want = describe_shape(lead + ("T", m.input_size))
            raise ValueError(f"X has shape {describe_shape(X.shape)}, expected {want}")
        steps = X.shape[-2]
        if steps == 0:
            shape = lead + (0, m.output_size)
            if out is None:
                return np.zeros(shape, dtype=np.float32)
            if not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == shape):
                reject_output(out, shape)
            return out
        try:
            return self._native.run(np.require(X, np.float32, "CA"), steps, out)
        except ValueError:
            if m._tokens:
                raise_token_problem(X, ("row", "step") if self._batched else ("step",), m.layers[0].num_embeddings)
            raise

    def reset(self, rows=None):
        """Back to the zero state. rows: of a batched stream, only those sequences (an index or a sequence of
        indices in [0, N)); the other rows keep their state, as when one microphone of N restarts."""
        if rows is None:
            self._native.reset()
            return
        if not self._batched:
            raise ValueError("rows= applies to a batched stream (model.stream(batch=N)); reset() resets this one")
        n = self._native.batch
        index = np.asarray(rows)
        if (index.dtype.kind not in "iu" and index.size) or index.ndim > 1:  # [] is float64: no row
            raise TypeError(f"rows must be an integer or a sequence of integers, got {rows!r}")
        if index.size and not (0 <= index.min() and index.max() < n):
            raise ValueError(f"rows must lie in [0, {n - 1}] (the stream's batch), got {rows!r}")
        flat = self._native.get_state()  # a fresh array: its views below write into it
        for layer in self._state_views(flat):
            for rows_by_size in layer:
                rows_by_size[index.astype(np.intp)] = 0.0
        self._native.set_state(flat)

    def _state_views(self, flat):
        """Per stateful layer, its state arrays as (N, size) views of the flat state of lstmrt_stream_get_state."""
        n, offset = self._native.batch, 0
        for _, _names, sizes in self._model._state_layout:
            views = []
            for size in sizes:
                views.append(flat[offset : offset + n * size].reshape(n, size))
                offset += n * size
            yield views

    def copy(self):
        """An independent stream with the same model and a copy of this state."""
        other = object.__new__(Stream)
        other._model, other._batched = self._model, self._batched
        other._native = self._native.copy()
        other.step = _bind_step(other._native)
        return other

    def __copy__(self):  # a stream's value is its state: copy.copy(s) must not share it
        return self.copy()

    def __deepcopy__(self, memo):  # the model is immutable and shared, as copy() does
        return self.copy()

    def __reduce__(self):
        """Pickling keeps the model (its layer specs), batch, threads and state: the stream resumes where it was,
        in another process or after a restart."""
        return _rebuild_stream, (self._model, self.batch, self.threads, self.state)

    @property
    def state(self):
        """One tuple per recurrent layer and pool: (h, c) for an LSTM, (h,) for a GRU/SimpleRNN, (mean, mean_low,
        count) or (max, count) for a GlobalPooling (count: the steps pooled, shape (1,)), (mean, mean_low, max_score,
        weight_sum) for an AttentionPooling; arrays (size,) or, batched, (N, size). Copies: modifying them does not
        change the stream."""
        return [
            tuple(a if self._batched else a[0].copy() for a in views)
            for views in self._state_views(self._native.get_state())
        ]

    @state.setter
    def state(self, value):
        layout = self._model._state_layout
        if not isinstance(value, (list, tuple)) or len(value) != len(layout):
            raise ValueError(f"state must be a list of {len(layout)} tuple(s), one per recurrent layer or pool")
        n = self._native.batch
        pieces = []
        for k, ((index, names, sizes), entry) in enumerate(zip(layout, value)):
            if isinstance(entry, np.ndarray) or not isinstance(entry, (list, tuple)) or len(entry) != len(names):
                raise ValueError(f"state[{k}] (layer {index}) must be a tuple ({', '.join(names)})")
            for name, size, arr in zip(names, sizes, entry):
                a = as_float_array(arr, f"state[{k}].{name}")
                want = (n, size) if self._batched else (size,)
                if a.shape != want:
                    raise ValueError(
                        f"state[{k}].{name} (layer {index}) has shape {describe_shape(a.shape)}, "
                        f"expected {describe_shape(want)}"
                    )
                if name == "count" and not np.all((a >= 0) & (a <= _MAX_POOL_COUNT) & (a == np.floor(a))):
                    raise ValueError(
                        f"state[{k}].count (layer {index}) must hold whole numbers of steps in [0, {_MAX_POOL_COUNT}]"
                    )
                if name == "weight_sum" and not np.all((a >= 0) & (a <= _MAX_POOL_COUNT)):
                    raise ValueError(
                        f"state[{k}].weight_sum (layer {index}) must hold sums of weights in [0, {_MAX_POOL_COUNT}]"
                    )
                pieces.append(a.reshape(-1))
        flat = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
        self._native.set_state(flat)

    def __repr__(self):
        kind = f"batch={self._native.batch}" if self._batched else "single"
        if self.threads > 1:
            kind += f", threads={self.threads}"
        return f"<lstmrt.Stream {kind}, {self._model.input_size} -> {self._model.output_size}>"


def _rebuild_stream(model, batch, threads, state):
    stream = model.stream(batch, threads=threads)
    stream.state = state
    return stream
