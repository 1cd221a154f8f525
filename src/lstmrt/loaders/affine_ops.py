"""Arithmetic of the data x with a constant c as the runtime's per-feature Affine, y = x * scale + shift, for the
torch and Keras loaders. Each form is written so that x * scale + shift is the framework's float32 result: a product
adds -0.0 (x * c + -0.0 is x * c, signed zeros included), a sum multiplies by 1; only x / c, run as x * (1 / c),
may differ, by a rounding."""

from __future__ import annotations

import numpy as np

OPS = ("mul", "div", "add", "sub", "rsub")  # rsub: c - x


def scale_shift(op: str, c, text: str) -> tuple:
    """(scale, shift) of `op` with the constant c (float32, any shape); ValueError, starting with `text` (the op as
    the messages name it), for a division by zero or by a c whose reciprocal is past float32."""
    c = np.asarray(c, np.float32)
    if op == "div":
        return _reciprocal(c, text), np.float32(-0.0)
    one = np.float32(1.0)
    return {"mul": (c, np.float32(-0.0)), "add": (one, c), "sub": (one, -c), "rsub": (-one, c)}[op]


def _reciprocal(c: np.ndarray, text: str) -> np.ndarray:
    if np.any(c == 0):
        raise ValueError(f"{text} divides by zero")
    with np.errstate(over="ignore"):
        r = (1.0 / c.astype(np.float64)).astype(np.float32)
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{text}: 1 / c overflows float32, which lstmrt multiplies by")
    return r
