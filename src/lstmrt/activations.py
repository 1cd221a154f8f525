"""Activation names understood by lstmrt, and their codes in the C runtime (lstmrt.h, docs/math.md). An activation
with a parameter is written with it in brackets, "leaky_relu(0.01)"; without brackets it takes Keras's default."""

from __future__ import annotations

import math
import re

import numpy as np

# Order = enum lstmrt_activation in native/include/lstmrt.h.
NAMES = (
    "sigmoid",
    "tanh",
    "relu",
    "linear",
    "hard_sigmoid",
    "hard_sigmoid_v3",
    "elu",
    "softsign",
    "softplus",
    "selu",
    "exponential",
    "relu6",
    "silu",
    "gelu",
    "gelu_tanh",
    "hard_silu",
    "mish",
    "softmax",
    "log_softmax",
    "leaky_relu",
    "celu",
    "hard_shrink",
    "soft_shrink",
    "squareplus",
    "hard_tanh",
    "tanh_shrink",
    "log_sigmoid",
    "sparse_plus",
    "sparse_sigmoid",
    "clip_min",
    "clip_max",
)
CODES = {name: code for code, name in enumerate(NAMES)}

# Other spellings in use by Keras, PyTorch and ONNX. "hard_sigmoid" alone is the Keras 2 / ONNX formula
# clip(0.2x + 0.5, 0, 1); Keras 3's relu6(x + 3) / 6 is "hard_sigmoid_v3" (the Keras loader picks per file).
ALIASES = {
    "identity": "linear",
    "none": "linear",
    "hardsigmoid": "hard_sigmoid",
    "swish": "silu",
    "gelu_approximate": "gelu_tanh",
    "hard_swish": "hard_silu",
    "hardswish": "hard_silu",
    "logsoftmax": "log_softmax",
    "leakyrelu": "leaky_relu",
    "hardtanh": "hard_tanh",
    "hardshrink": "hard_shrink",
    "softshrink": "soft_shrink",
    "tanhshrink": "tanh_shrink",
    "logsigmoid": "log_sigmoid",
}

# The activations that take a parameter (the C desc's activation_alpha), with Keras's default for it, and the
# values they accept.
DEFAULTS = {
    "leaky_relu": 0.2,
    "celu": 1.0,
    "hard_shrink": 0.5,
    "soft_shrink": 0.5,
    "squareplus": 4.0,
    "clip_min": 0.0,
    "clip_max": 0.0,
}
_ACCEPTS = {
    **dict.fromkeys(("leaky_relu", "clip_min", "clip_max"), ("finite", lambda a: True)),
    "celu": ("finite and not 0", lambda a: a != 0),
    **dict.fromkeys(("hard_shrink", "soft_shrink", "squareplus"), ("finite and >= 0", lambda a: a >= 0)),
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # the C runtime holds the parameter as a float32
_BRACKETS = re.compile(r"(\w+)\s*\(\s*([^()]*?)\s*\)")

# Only these may sit inside a recurrent cell: softmax variants mix features, a cell's gates are element-wise.
ELEMENTWISE = tuple(n for n in NAMES if n not in ("softmax", "log_softmax"))


def canonical(name, *, where: str = "activation", elementwise: bool = False) -> str:
    """The canonical name for `name` (None means linear): "leaky_relu(0.01)", or the bare name when the parameter is
    the default; ValueError naming the choices when unknown or the parameter when out of range."""
    if name is None:
        return "linear"
    if not isinstance(name, str):
        raise TypeError(f"{where}: activation must be a name (str), got {type(name).__name__}")
    key, given = name.strip().lower(), None
    bracketed = _BRACKETS.fullmatch(key)
    if bracketed:
        key, given = bracketed.groups()
    key = ALIASES.get(key, key)
    allowed = ELEMENTWISE if elementwise else NAMES
    if key not in allowed:
        raise ValueError(f"{where}: unknown activation {name!r}; supported: {', '.join(allowed)}")
    if given is None:
        return key
    if key not in DEFAULTS:
        raise ValueError(f"{where}: activation {key!r} takes no parameter, got {name!r}")
    try:
        value = float(given)
    except ValueError:
        raise ValueError(f"{where}: the parameter of {name!r} is not a number") from None
    return with_parameter(key, value, where=where)


def with_parameter(key: str, value: float, *, where: str = "activation") -> str:
    """The canonical spelling of activation `key` (canonical, one of DEFAULTS) with parameter `value`, which the C
    runtime holds as a float32: "leaky_relu(0.01)" (the shortest decimal of that float32), "leaky_relu" for 0.2."""
    rule, accepts = _ACCEPTS[key]
    if not (math.isfinite(value) and abs(value) <= _FLOAT32_MAX and accepts(value)):
        raise ValueError(f"{where}: the parameter of {key} must be {rule}, got {value!r}")
    value32 = np.float32(value)
    if not accepts(float(value32)):  # celu(1e-50) is celu(0) in float32, the runtime's
        raise ValueError(f"{where}: the parameter of {key} must be {rule} in float32 (the runtime's), got {value!r}")
    if value32 == np.float32(DEFAULTS[key]):
        return key
    return f"{key}({np.format_float_positional(value32, unique=True, trim='-')})"


def base(name: str) -> str:
    """The activation of a canonical name, without its parameter."""
    return name.split("(", 1)[0]


def code(name: str) -> int:
    """The C enum value of a canonical name."""
    return CODES[base(name)]


def alpha(name: str) -> float:
    """The C desc's activation_alpha of a canonical name: its parameter, or the default; 0 when it takes none."""
    key = base(name)
    if key not in DEFAULTS:
        return 0.0
    return float(name[len(key) + 1 : -1]) if "(" in name else DEFAULTS[key]


def from_code(code_: int, alpha_: float) -> str:
    """The canonical name of a C enum value and its activation_alpha (a model file's record)."""
    key = NAMES[code_]
    return with_parameter(key, alpha_) if key in DEFAULTS else key
