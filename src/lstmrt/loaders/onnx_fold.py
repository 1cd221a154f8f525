"""Constant folding for the ONNX graph reader: the shape arithmetic exporters emit around recurrent nodes (Shape,
Gather, Unsqueeze, Concat, ConstantOfShape, Expand, ...) evaluated with NumPy. Shape vectors may hold symbolic
sizes (onnx_values.Size, in object arrays): what only moves them around stays exact, arithmetic on them gives an
Opaque value."""

from __future__ import annotations

import numpy as np

from .onnx_proto import NUMPY_TYPES
from .onnx_values import MERGED, ZEROS, Opaque, Size, Zeros

# the types a Cast may target; not bfloat16: the decoder's float32 for it would make a data Cast to bfloat16 a no-op
CAST_TYPES = {code: kind for code, kind in NUMPY_TYPES.items() if code != 16}
_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": None, "Equal": np.equal}
# Slice ends from INT32_MAX on mean "to the end": torch writes INT64_MAX, tf2onnx INT32_MAX; no axis of a sequence
# lstmrt reads is that long
INT_MAX = 2**31 - 1


# constants a graph builds from shapes are small; a larger one is left uncomputed rather than allocated
MAX_FOLDED = 1 << 20


def _too_big(shape) -> bool:
    return int(np.prod(np.maximum(np.asarray(shape, np.int64).reshape(-1), 1), dtype=np.float64)) > MAX_FOLDED


def _numeric(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype != object


def symbolic(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == object and any(isinstance(v, Size) for v in a.flat)


def fold(node, args: list, opset: int):
    """The value of `node`'s first output when its inputs are constants (ndarray or None) or zeros; None when
    this op is not folded here."""
    value = _fold(node, args, opset)
    return value if value is None or isinstance(value, (np.ndarray, Zeros, Opaque)) else np.asarray(value)


def _fold(node, args: list, opset: int):
    op, attrs = node.op_type, node.attrs
    if any(isinstance(a, Opaque) for a in args):
        return Opaque(op)
    if any(isinstance(a, Zeros) for a in args):
        # zeros moved around, broadcast or stacked stay zeros (the initial states torch builds in forward())
        if op == "Concat":
            return ZEROS if all(isinstance(a, Zeros) or (_numeric(a) and not a.any()) for a in args) else None
        return Zeros(_zeros_shape(node, args, opset)) if op in _KEEPS_ZEROS and isinstance(args[0], Zeros) else None
    if op == "Constant":
        return constant(attrs)
    if op in ("Identity", "Dropout"):
        return args[0]
    if op == "Cast":
        to = CAST_TYPES.get(attrs.get("to"))
        return args[0] if symbolic(args[0]) or to is None else args[0].astype(to)
    if op == "Shape":
        return _slice_shape(np.array(args[0].shape, np.int64), attrs)
    if op == "Gather":
        return np.take(args[0], args[1].astype(np.int64), axis=attrs.get("axis", 0))
    if op == "Unsqueeze":
        return unsqueeze(args[0], axes_of(node, args, opset, 13))
    if op == "Squeeze":
        axes = axes_of(node, args, opset, 13)
        return np.squeeze(args[0], axis=None if axes is None else tuple(axes))
    if op == "Concat":
        return np.concatenate([a for a in args if a is not None], axis=attrs.get("axis", 0))
    if op == "Reshape":
        return reshape(args[0], args[1], attrs.get("allowzero", 0))
    if op == "Transpose":
        return np.transpose(args[0], attrs.get("perm"))
    if op == "Slice":
        return args[0][slices(node, args, opset, args[0].ndim)]
    if op == "ConstantOfShape":
        value = attrs.get("value")
        value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
        if not value.any():
            return Zeros(_sizes(args[0]))
        if symbolic(args[0]) or _too_big(args[0]):
            return Opaque("ConstantOfShape")
        return np.full(tuple(args[0]), value[0])
    if op == "Expand":
        if _numeric(args[0]) and not args[0].any():
            return Zeros(_broadcast(args[0].shape, _sizes(args[1])))
        if symbolic(args[1]) or _too_big(args[1]):
            return Opaque("Expand")
        return args[0] * np.ones(tuple(args[1]), args[0].dtype)
    if op == "ReduceProd":
        return _product(node, args, opset)
    if op in _ARITHMETIC:
        if symbolic(args[0]) or symbolic(args[1]):
            return Opaque(op + " of run-time sizes")
        if op == "Div":
            return args[0] // args[1] if args[0].dtype.kind in "iu" else args[0] / args[1]
        return _ARITHMETIC[op](args[0], args[1])
    return None


def _product(node, args, opset: int):
    """ReduceProd; of a shape vector's run-time sizes (tf2onnx's batch x time rows for a Dense on a sequence), the
    size of those axes merged (Size "x0*x1")."""
    axes, keepdims = axes_of(node, args, opset, 18), node.attrs.get("keepdims", 1)
    if not symbolic(args[0]):
        return np.prod(args[0], axis=None if axes is None else tuple(axes), keepdims=bool(keepdims))
    values = args[0].reshape(-1).tolist()
    if args[0].ndim != 1 or axes not in (None, [0], [-1]) or any(v != 1 for v in values if not isinstance(v, Size)):
        return Opaque("ReduceProd of run-time sizes")
    merged = Size(MERGED.join(v.tag for v in values if isinstance(v, Size)))
    return np.array([merged] if keepdims else merged, dtype=object)


_KEEPS_ZEROS = {"Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Slice", "Gather", "Expand"}


def _sizes(vector):
    """A shape vector's sizes: ints, None for a run-time size; None for a vector not known."""
    if not isinstance(vector, np.ndarray) or vector.ndim != 1:
        return None
    return tuple(int(v) if isinstance(v, (int, np.integer)) and v >= 0 else None for v in vector.tolist())


def _broadcast(shape, target):
    """The shape of Expand(a of `shape`, `target`): NumPy's broadcast, None where a size is not known."""
    if target is None:
        return None
    n = max(len(shape), len(target))
    a, b = (1,) * (n - len(shape)) + tuple(shape), (1,) * (n - len(target)) + tuple(target)
    return tuple(y if x == 1 else x if y in (1, x) else None for x, y in zip(a, b))


def _zeros_shape(node, args, opset: int):
    """The shape of zeros after `node` (one of _KEEPS_ZEROS): followed through the ops that keep or pick sizes, None
    (not followed) for the others."""
    shape, op = args[0].shape, node.op_type
    if shape is None or op in ("Identity", "Cast"):
        return shape
    if op == "Expand":
        return _broadcast(shape, _sizes(args[1]))
    if op == "Transpose":
        perm = node.attrs.get("perm", range(len(shape))[::-1])
        return tuple(shape[p] for p in perm) if sorted(perm) == list(range(len(shape))) else None
    if op == "Slice":
        try:
            params = slice_params(node, args, opset, len(shape))
        except (ValueError, TypeError, IndexError):
            return None
        out = list(shape)
        for axis, start, end, step in params:
            kept = slice(start, None if abs(end) >= INT_MAX else end, step)
            out[axis] = None if shape[axis] is None else len(range(shape[axis])[kept])
        return tuple(out)
    return None


def constant(attrs: dict):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            kind = np.float32 if "float" in key else np.int64 if "int" in key else None
            return np.asarray(attrs[key], kind) if kind else np.asarray(attrs[key])
    return Opaque("Constant without a numeric value")


def axes_of(node, args, opset: int, since: int):
    """Squeeze/Unsqueeze/ReduceX axes: an attribute before opset `since`, the second input from it on."""
    if opset < since:
        axes = node.attrs.get("axes")
        return None if axes is None else ints(axes, "axes")
    if len(args) < 2 or args[1] is None:
        return None
    return ints(args[1], "axes")


def ints(value, what: str) -> list:
    """A constant list of integers (an attribute's tuple or a constant input), else ValueError."""
    array = np.asarray(value) if isinstance(value, (tuple, list, np.ndarray)) else None
    if array is None or array.dtype.kind not in "iu" and not (array.size == 0 or array.dtype == object):
        raise ValueError(f"{what} is not a constant list of integers")
    values = array.reshape(-1).tolist()
    if not all(isinstance(v, int) for v in values):
        raise ValueError(f"{what} is not a constant list of integers")
    return values


def unsqueeze(a, axes):
    rank = a.ndim + len(axes)
    for axis in sorted(x % rank for x in axes):
        a = np.expand_dims(a, axis)
    return a


def reshape(a, shape, allowzero: int):
    target = [int(s) for s in np.asarray(shape).reshape(-1)]
    if not allowzero:
        target = [a.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return np.reshape(a, target)


def slice_params(node, args, opset: int, rank: int) -> list:
    """[(axis, start, end, step)] of a Slice (attributes before opset 10, inputs from it on)."""
    if opset < 10:
        starts, ends = ints(node.attrs.get("starts", ()), "starts"), ints(node.attrs.get("ends", ()), "ends")
        axes = ints(node.attrs.get("axes", tuple(range(len(starts)))), "axes")
        steps = [1] * len(starts)
    else:
        if len(args) < 3:
            raise ValueError("Slice needs starts and ends")
        starts, ends = ints(args[1], "starts"), ints(args[2], "ends")
        given = [a is not None for a in args[3:5]] + [False, False]
        axes = ints(args[3], "axes") if given[0] else list(range(len(starts)))
        steps = ints(args[4], "steps") if given[1] else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps or rank == 0:
        raise ValueError("Slice's starts, ends, axes and steps do not match")
    return [(ax % rank, s, e, st) for ax, s, e, st in zip(axes, starts, ends, steps)]


def slices(node, args, opset: int, rank: int) -> tuple:
    index = [slice(None)] * rank
    for axis, start, end, step in slice_params(node, args, opset, rank):
        index[axis] = slice(start, None if abs(end) >= INT_MAX else end, step)
    return tuple(index)


def _slice_shape(shape, attrs):
    start, end = attrs.get("start", 0), attrs.get("end")
    return shape[start:end]
