"""Input validation and conversion for the slow path of the binding (the fast path is a float32 C-contiguous
array of exactly the expected shape). Documented policy: any real floating dtype and any memory layout is
converted once to float32 C-contiguous; integers are accepted only where the model takes token ids; anything
else is a TypeError; a wrong shape is a ValueError naming expected and actual shapes."""

from __future__ import annotations

import numpy as np


def checked_count(value, name: str, high: int | None = None) -> int:
    """A count argument (threads=, batch=): an int (Python or NumPy, not bool), else TypeError; in [1, high], else
    ValueError, as Python's own functions divide the two."""
    limits = f"an integer in [1, {high}]" if high is not None else "a positive integer"
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be {limits}, got {value!r} of type {type(value).__name__}")
    if value < 1 or (high is not None and value > high):
        raise ValueError(f"{name} must be {limits}, got {value!r}")
    return int(value)


def describe_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_float_array(obj, name: str, *, tokens: bool = False) -> np.ndarray:
    """obj as an ndarray of a dtype lstmrt accepts (not yet float32 / contiguous)."""
    if isinstance(obj, np.ndarray):
        arr = obj
    elif hasattr(obj, "__array__") or isinstance(obj, (list, tuple)):
        try:
            arr = np.asarray(obj)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} cannot be converted to an array: {exc}") from None
    else:
        raise TypeError(f"{name} must be a NumPy array (or array-like), got {type(obj).__name__}")
    kind = arr.dtype.kind
    if kind == "f" or (tokens and kind in "iu"):
        return arr
    what = "floating-point or integer token ids" if tokens else "floating-point (float32 is the fast path)"
    raise TypeError(f"{name} has dtype {arr.dtype}; expected {what}")


def coerce_input(obj, shape: tuple, name: str, tokens: bool = False) -> np.ndarray:
    """A step's input as float32 C-contiguous of exactly `shape`, or the precise error. A model with one input
    feature (a sensor sample, a token id) also takes it without the feature axis: a scalar for one stream, (N,)
    for N streams."""
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):  # NumPy scalars have __array__ already
        obj = np.asarray(obj)  # one token id or sample; the dtype check below names what the model takes
    arr = as_float_array(obj, name, tokens=tokens)
    shape = tuple(shape)
    if shape[-1] == 1 and arr.shape == shape[:-1]:
        arr = arr[..., None]
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {describe_shape(arr.shape)}, expected {describe_shape(shape)}")
    return np.require(arr, np.float32, "CA")  # native byte order, C-contiguous, aligned


def token_problem(ids, axes: tuple, num_embeddings: int) -> str | None:
    """The message for the first invalid token id of `ids` (in C order), or None. Called only after the C runtime
    refused ids: it checks them as float32, where an integer id such as 2**40 is already rounded, and its position
    is an index into its own buffer. Here an integer id is shown exactly as given and a float one in its dtype,
    at its position in the caller's array: `axes` names its leading axes ("row", "step"; a trailing feature axis
    of size 1 may follow). Float ids are judged as float32, as the runtime judges them."""
    ids = np.asarray(ids)
    ids = ids.reshape(ids.shape[: len(axes)])
    if ids.dtype.kind in "iu":
        integral = np.ones(ids.shape, bool)
        bad = (ids < 0) | (ids >= num_embeddings)
    else:
        f = ids.astype(np.float32)
        integral = f == np.floor(f)
        bad = ~((f >= 0) & (f < np.float32(num_embeddings)) & integral)
    if not bad.any():
        return None
    k = int(np.argmax(bad.ravel()))
    value = ids.ravel()[k]
    shown = str(int(value)) if ids.dtype.kind in "iu" else str(value)
    where = ", ".join(f"{name} {int(i)}" for name, i in zip(axes, np.unravel_index(k, ids.shape)))
    why = "is outside" if integral.ravel()[k] else "is not an integer in"
    return f"token id {shown}{' at ' + where if where else ''} {why} [0, {num_embeddings - 1}]"


def raise_token_problem(ids, axes: tuple, num_embeddings: int) -> None:
    """Inside `except ValueError` after the runtime refused a call: raise token_problem's message in place of the
    runtime's (which shows the id as float32), if the ids are what was wrong; else return, and the caller re-raises."""
    problem = token_problem(ids, axes, num_embeddings)
    if problem:
        raise ValueError(problem) from None


def reject_output(out, shape: tuple) -> None:
    """Raise the precise error for an `out=` buffer that is not float32 C-contiguous of the right shape."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy float32 array, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"out has dtype {out.dtype}; expected float32")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {describe_shape(out.shape)}, expected {describe_shape(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous (it is written in place)")
    if not out.flags.aligned:
        raise ValueError("out must be aligned (it is written in place)")
    raise ValueError("out is not usable")
