"""Clipping the data to bounds, clip(x, low, high) with either bound left out, as lstmrt's activations: torch's clamp
and Hardtanh, ONNX's Clip / Max / Min with a constant, Keras's capped ReLU. [0, 6], [-1, 1] and [0, inf) are relu6,
hard_tanh and relu; any other bound is clip_min(low) (max(x, low)) and clip_max(high) (min(x, high)), which compare
and move no value: the result is x or the bound exactly, and NaN stays NaN (as in torch and Keras)."""

from __future__ import annotations

import math

import numpy as np

from .. import activations as acts
from ..layers import Activation

_OWN = {(0.0, 6.0): "relu6", (-1.0, 1.0): "hard_tanh", (0.0, None): "relu"}


def clip_plan(low, high, text: str) -> list:
    """The lstmrt activations computing clip(x, low, high), in order (none for no bound). low / high: a number or
    None. ValueError, starting with `text`, for bounds that are not finite numbers, or out of order or equal (a
    constant output)."""
    low, high = (_bound(b, text) for b in (low, high))
    if low is not None and high is not None and not low < high:
        raise ValueError(f"{text}: the lower bound {low:g} is not below the upper bound {high:g}")
    own = _OWN.get((low, high))
    if own is not None:
        return [own]
    plan = [] if low is None else ["relu" if low == 0 else acts.with_parameter("clip_min", low, where=text)]
    return plan + ([] if high is None else [acts.with_parameter("clip_max", high, where=text)])


def clip_layers(low, high, text: str) -> list:
    """clip_plan's activations as lstmrt Activation layers."""
    return [Activation(name) for name in clip_plan(low, high, text)]


def _bound(value, text: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{text}: the bound {value!r} is not a number")
    with np.errstate(over="ignore"):  # past float32's range: refused below
        rounded = float(np.float32(value))  # the frameworks compare float32 data with a float32 bound
    if not math.isfinite(rounded):
        raise ValueError(f"{text}: the bound {value!r} is not finite in float32")
    return rounded
