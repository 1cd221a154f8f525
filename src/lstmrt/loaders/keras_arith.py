"""Arithmetic with a constant on the data, as lstmrt's per-feature Affine (y = x * scale + shift): `h * 2.0`,
`h / 4`, `h + 0.5`, `1.0 - h`, `-h` in a functional model, and the Rescaling layer (x * scale + offset).

Keras 3 saves such an op as an ops node of its own class (Multiply, TrueDivide, Divide, Add, Subtract, Negative)
whose call arguments hold the tensor and the constant in the order written; tf_keras as a TFOpLambda layer naming
the TensorFlow function (math.multiply, math.truediv, __operators__.add, math.add, math.subtract, math.negative),
with the constant in the call's kwarg `y`, or, when it comes first, as the layer's `_CONSTANT_VALUE` argument `x`.

Keras computes in float32 with the constant rounded to float32 (a float64 NumPy constant makes Keras 3 compute in
float64: lstmrt's float32 result is within a rounding of it); affine_ops writes each form so that the runtime's
x * scale + shift is that result (x / c and Rescaling's two operations within a rounding).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..layers import Affine
from .affine_ops import scale_shift

TENSOR = object()  # an operand that is a tensor of the model, where the others are constants
# Keras 3 ops nodes and tf_keras TensorFlow functions, by the operation they compute. Floor division, power and
# remainder are listed only to be refused saying what lstmrt reads instead.
NODES = {
    "Multiply": "multiply",
    "TrueDivide": "divide",
    "Divide": "divide",
    "Add": "add",
    "Subtract": "subtract",
    "Negative": "negative",
    "FloorDivide": "floor_divide",
    "Power": "power",
    "Mod": "mod",
}
TF_FUNCTIONS = {
    "math.multiply": "multiply",
    "math.truediv": "divide",
    "__operators__.add": "add",
    "math.add": "add",
    "math.subtract": "subtract",
    "math.negative": "negative",
    "compat.v1.floor_div": "floor_divide",
    "math.floordiv": "floor_divide",
    "math.pow": "power",
    "math.floormod": "mod",
}
_SYMBOLS = {
    "multiply": "*",
    "divide": "/",
    "add": "+",
    "subtract": "-",
    "floor_divide": "//",
    "power": "**",
    "mod": "%",
}
_NOT_AFFINE = {"floor_divide": "floor division", "power": "a power", "mod": "a remainder"}
_PER_FEATURE = "lstmrt reads a constant that is a number or one value per feature"
_VERBS = {"multiply": "multiplies", "divide": "divides", "subtract": "subtracts"}
READS = (
    "lstmrt reads x * c, c * x, x / c, x + c, c + x, x - c, c - x and -x of the data x and a constant c (a number, or "
    "one value per feature)"
)


@dataclasses.dataclass(frozen=True)
class Arithmetic:
    """An op of the data and a constant as y = x * scale + shift; scale and shift are float32 arrays of the
    constant's shape (or scalars), broadcast over the features when the data's size is known."""

    text: str  # the op as written, for messages: "x * c", "c - x", "-x"
    scale: np.ndarray
    shift: np.ndarray


def operation(op: str, operands: list) -> Arithmetic | None:
    """The op (a value of NODES) of `operands` (TENSOR or a constant, in call order) as an Arithmetic. None for the
    sum of two tensors (a skip connection, read elsewhere). ValueError, saying what is read, for the rest."""
    tensors = [i for i, v in enumerate(operands) if v is TENSOR]
    if op == "add" and len(tensors) == 2 and len(operands) == 2:
        return None
    arity = 1 if op == "negative" else 2
    if len(operands) != arity or len(tensors) != 1:
        if len(tensors) == 2:
            raise _unsupported(f"{_VERBS.get(op, 'combines')} two tensors: not supported")
        raise _unsupported(f"is called with {len(operands)} operands ({len(tensors)} tensors): not supported")
    if op == "negative":
        return Arithmetic("-x", *scale_shift("mul", -1.0, "-x"))
    first = tensors[0] == 0
    text = f"x {_SYMBOLS[op]} c" if first else f"c {_SYMBOLS[op]} x"
    if op in _NOT_AFFINE:
        raise _unsupported(f"{text} ({_NOT_AFFINE[op]}) is not supported")
    if op == "divide" and not first:
        raise _unsupported("c / x (a constant divided by the data) is not supported")
    c = constant(operands[1 if first else 0], text)
    as_affine = {"multiply": "mul", "divide": "div", "add": "add", "subtract": "sub" if first else "rsub"}[op]
    try:
        return Arithmetic(text, *scale_shift(as_affine, c, text))
    except ValueError as exc:
        raise ValueError(f"{exc}: not supported") from None


def _unsupported(message: str) -> ValueError:
    return ValueError(f"{message}; {READS}")


def constant(value, text: str) -> np.ndarray:
    """A constant as Keras holds it in a config (a number, a nested list, a NumPy value, Keras 3's serialized
    {"class_name": "__numpy__" | "__tensor__", "config": {"value": ...}}), rounded to float32 as Keras computes."""
    if isinstance(value, dict) and value.get("class_name") in ("__numpy__", "__tensor__"):
        value = (value.get("config") or {}).get("value")
    try:
        a = np.asarray(value)
    except ValueError:  # a ragged list
        a = np.asarray(None)
    if a.dtype.kind not in "fiu":
        raise _unsupported(f"{text}: the constant {value!r} is not an int or a float, or an array of them")
    with np.errstate(over="ignore"):
        a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{text}: the constant holds inf or NaN in float32 (Keras's data type): not supported")
    return a


def affine(arithmetic: Arithmetic, input_rank, features) -> Affine:
    """The Affine computing `arithmetic` on data of `features` features, rank input_rank (3: a sequence, 2: after
    the last step or a pooling; None: unknown)."""
    scale = per_feature(arithmetic.scale, input_rank, features, f"{arithmetic.text}: the constant")
    shift = per_feature(arithmetic.shift, input_rank, features, f"{arithmetic.text}: the constant")
    return Affine(scale, shift)


def rescaling(cfg: dict, input_rank, features) -> Affine:
    """Keras Rescaling: x * scale + offset, each a number or one value per feature."""
    scale = per_feature(constant(cfg.get("scale", 1.0), "scale"), input_rank, features, "scale")
    offset = per_feature(constant(cfg.get("offset", 0.0), "offset"), input_rank, features, "offset")
    return Affine(scale, offset)


def per_feature(a: np.ndarray, input_rank, features, what: str) -> np.ndarray:
    """A constant broadcast against the data as one value per feature, (features,). One that would broadcast over
    the batch or time axis, add axes, or widen the features is refused (ValueError), with its shape."""
    axes = ("batch", "features") if input_rank == 2 else ("batch", "time", "features")
    if a.ndim > len(axes):
        raise ValueError(f"{what} has shape {a.shape}, more axes than the data's {axes}: not supported; {_PER_FEATURE}")
    spread = [axis for axis, n in zip(axes[len(axes) - a.ndim :], a.shape[:-1]) if n != 1]
    if spread:
        raise ValueError(
            f"{what} has shape {a.shape}, which broadcasts over the {' and '.join(spread)} axis (lstmrt runs every "
            f"step and sequence alike): not supported; {_PER_FEATURE}"
        )
    values = a.reshape(-1)
    if features is None:
        if values.size == 1:
            raise ValueError("the number of features it applies to is not known (no input shape or layer before it)")
        return values
    if values.size not in (1, features):
        widens = f" (it would broadcast the data to {values.size} features)" if features == 1 else ""
        raise ValueError(
            f"{what} has {values.size} values for the data's {features} features{widens}: not supported; {_PER_FEATURE}"
        )
    return np.broadcast_to(values, (features,))
