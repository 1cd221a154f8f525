"""Clipping the data to bounds, clip(x, low, high) with either bound left out, as one of lstmrt's activations between
per-feature arithmetic (affine_ops' ops): torch's clamp and Hardtanh, ONNX's Clip and Keras's capped ReLU with bounds
lstmrt has no activation for. The ops scale and shift x so that the activation's own bounds land on the clip's:

  [0, 6] relu6, [-1, 1] hard_tanh, [0, inf) relu          as they are
  [0, high]        relu6(x * (6 / high)) * (high / 6)      (exact in the middle up to two roundings of x)
  [low, inf)       relu(x - low) + low
  (-inf, high]     high - relu(high - x)
  [low, high]      hard_tanh((x - m) / h) * h + m          m, h: the bounds' middle and half width

Between the bounds the result is x up to a rounding or two of the largest of |x|, |low| and |high| (below float32's
1e-5 for values up to ~50), at the bounds it is the bound; NaN stays NaN, as in each framework."""

from __future__ import annotations

import math

import numpy as np

from ..layers import Activation, Affine
from .affine_ops import scale_shift

_WIDEST = 1e30  # the scales stay far from float32's subnormals, which the runtime flushes to zero
_OWN = {(0.0, 6.0): "relu6", (-1.0, 1.0): "hard_tanh", (0.0, None): "relu"}


def clip_plan(low, high, text: str) -> tuple:
    """(ops before, activation, ops after) computing clip(x, low, high); an op is (name, constant) with a name of
    affine_ops.OPS. low / high: a number or None (no bound). ValueError, starting with `text`, for bounds that are
    not finite numbers, out of order, or equal (a constant output)."""
    bounds = [_bound(b, text) for b in (low, high)]
    low, high = bounds
    if low is None and high is None:
        return [], "linear", []
    if low is not None and high is not None and not low < high:
        raise ValueError(f"{text}: the lower bound {low:g} is not below the upper bound {high:g}")
    own = _OWN.get((low, high))
    if own is not None:
        return [], own, []
    if high is None:
        return [("sub", low)], "relu", [("add", low)]
    if low is None:
        return [("rsub", high)], "relu", [("rsub", high)]
    if low == 0:
        return [("mul", _float32(6.0 / high))], "relu6", [("mul", _float32(high / 6.0))]
    middle, half = (low + high) / 2, (high - low) / 2
    before = [("sub", middle)] * (middle != 0) + [("div", half)] * (half != 1)
    after = [("mul", half)] * (half != 1) + [("add", middle)] * (middle != 0)
    return before, "hard_tanh", after


def _bound(value, text: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{text}: the bound {value!r} is not a number")
    value = float(np.float32(value))  # the frameworks compare float32 data with a float32 bound
    if not math.isfinite(value) or abs(value) > _WIDEST:
        raise ValueError(f"{text}: the bound {value!r} is not a finite number within ±1e30 (lstmrt scales by it)")
    return value


def _float32(value: float) -> float:
    return float(np.float32(value))


def clip_layers(low, high, features: int, text: str) -> list:
    """lstmrt layers computing clip(x, low, high) on `features` features: clip_plan's ops as Affine layers around
    its activation."""
    before, activation, after = clip_plan(low, high, text)

    def affine(op, c):
        scale, shift = scale_shift(op, c, text)
        return Affine(np.full(features, scale, np.float32), np.full(features, shift, np.float32))

    return [affine(*op) for op in before] + [Activation(activation)] + [affine(*op) for op in after]
