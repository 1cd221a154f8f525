"""Activation names understood by lstmrt, and their codes in the C runtime (lstmrt.h, docs/math.md)."""

from __future__ import annotations

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
}

# Only these may sit inside a recurrent cell: softmax variants mix features, a cell's gates are element-wise.
ELEMENTWISE = tuple(n for n in NAMES if n not in ("softmax", "log_softmax"))


def canonical(name, *, where: str = "activation", elementwise: bool = False) -> str:
    """The canonical name for `name` (None means linear); ValueError naming the choices when unknown."""
    if name is None:
        return "linear"
    if not isinstance(name, str):
        raise TypeError(f"{where}: activation must be a name (str), got {type(name).__name__}")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    allowed = ELEMENTWISE if elementwise else NAMES
    if key not in allowed:
        raise ValueError(f"{where}: unknown activation {name!r}; supported: {', '.join(allowed)}")
    return key


def code(name: str) -> int:
    return CODES[name]
