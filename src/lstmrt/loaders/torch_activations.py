"""torch's activations that take options (nn.LeakyReLU, nn.CELU, nn.Hardshrink, nn.Softshrink, nn.Hardtanh and
their functional forms) as lstmrt names, for the live-module, pickled-module and TorchScript readers. No torch
import. The parameter is always written out: lstmrt's bare "leaky_relu" has Keras's slope 0.2, torch's default
is 0.01."""

from __future__ import annotations

from .. import activations as acts
from .clip_ops import clip_plan

# torch module class -> (lstmrt activation, the module's option holding its parameter)
PARAMETRIZED = {
    "LeakyReLU": ("leaky_relu", "negative_slope"),
    "CELU": ("celu", "alpha"),
    "Hardshrink": ("hard_shrink", "lambd"),
    "Softshrink": ("soft_shrink", "lambd"),
}

# Functional op (torch.nn.functional.X, torch.X, Tensor.X) -> its options after the input, in torch's order, with
# torch's defaults: what a call that leaves them out means. Traced code writes the in-place op (torch.celu_) for
# inplace=True; scripted code passes the flag.
SIGNATURES = {
    "leaky_relu": (("negative_slope", 0.01), ("inplace", False)),
    "celu": (("alpha", 1.0), ("inplace", False)),
    "hardshrink": (("lambd", 0.5),),
    "softshrink": (("lambd", 0.5),),
    "hardtanh": (("min_val", -1.0), ("max_val", 1.0), ("inplace", False)),
}
IN_PLACE_OPS = ("leaky_relu_", "celu_", "hardtanh_")
_MODULE_OF = {"leaky_relu": "LeakyReLU", "celu": "CELU", "hardshrink": "Hardshrink", "softshrink": "Softshrink"}


def _number(value, where: str) -> float:
    # a damaged or hand-made file can hold anything in an option; bool is an int to Python, not to torch
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: the option is {value!r}, not a number")
    return float(value)


def module_activations(kind: str, module) -> list:
    """The lstmrt names of a torch activation module of class `kind` (PARAMETRIZED or Hardtanh) with its options
    (a live module or a file's record of one); ValueError when lstmrt cannot compute it, AttributeError when an
    option is missing."""
    if kind == "Hardtanh":
        return hardtanh(module.min_val, module.max_val, "nn.Hardtanh")
    return [_parametrized(kind, getattr(module, PARAMETRIZED[kind][1]), f"nn.{kind}")]


def functional_activation(op: str, options: dict) -> str:
    """The lstmrt name of functional op `op` (a key of SIGNATURES but hardtanh, which is a clip: hardtanh()) given
    all its options; ValueError when lstmrt cannot compute it."""
    kind = _MODULE_OF[op]
    return _parametrized(kind, options[PARAMETRIZED[kind][1]], op)


def hardtanh(min_val, max_val, name: str) -> list:
    """The activations of the clip to [min_val, max_val] (clip_ops: hard_tanh for [-1, 1], relu6 for [0, 6]);
    ValueError for bounds that are not numbers or out of order."""
    where = f"{name}(min_val={min_val!r}, max_val={max_val!r})"
    return clip_plan(_number(min_val, where), _number(max_val, where), where)


def _parametrized(kind: str, value, name: str) -> str:
    act, option = PARAMETRIZED[kind]
    where = f"{name}({option}={value!r})"
    return acts.with_parameter(act, _number(value, where), where=where)
