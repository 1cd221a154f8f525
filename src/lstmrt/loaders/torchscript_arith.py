"""Arithmetic of the network's data with constants in a forward(), as the TorchScript walker sees it: `x * c`,
`x / c`, `x + c`, `x - c`, `c - x` and `-x`, where c is a number, a tensor of the module (a parameter or buffer:
the input normalisation `(x - self.mean) / self.std`), a tensor a trace captured (CONSTANTS.c0), or arithmetic and
square roots of those (`torch.sqrt(self.var + 1e-5)`), computed here in float32 as torch computes them.

Each op on the data becomes an (ARITH_ENTRY, Arith) item: one lstmrt Affine layer, which torch_build sizes to the
features there. One op is one layer, as torch rounds after each op: a folded `(x - m) / s` (x / s - m / s) loses
the digits that the subtraction keeps for data far from zero (a pressure of 101325 Pa minus its mean).

Values this module makes: ("operand", Operand), a constant computed from the module's tensors and numbers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .affine_ops import scale_shift
from .torch_tree import ARITH_ENTRY
from .torchscript_steps import Unfollowable

# The calls read here (TorchScript spells `x * c` torch.mul, `c - x` torch.rsub or torch.sub, `-x` torch.neg); the
# in-place ones only to be refused
OPS = ("add", "sub", "mul", "div", "true_divide", "rsub", "neg", "sqrt", "add_", "sub_", "mul_", "div_", "neg_")
_DATA = ("seq", "pair", "rnn")
_CONSTANTS = ("param", "constant", "operand")
_MAX_VALUES = 1 << 16  # a per-feature operand has one value per feature; a larger tensor cannot be one
_FLOAT32 = np.float32


@dataclasses.dataclass(frozen=True)
class Operand:
    shape: tuple
    values: tuple  # float32 values in C order
    names: frozenset  # the module's own tensors (parameters, buffers) it was computed from

    @classmethod
    def of(cls, array, names=frozenset()) -> Operand:
        array = np.asarray(array, _FLOAT32)
        return cls(array.shape, tuple(array.reshape(-1).tolist()), frozenset(names))

    def array(self):
        return np.array(self.values, _FLOAT32).reshape(self.shape)


@dataclasses.dataclass(frozen=True)
class Arith:
    """data op operand: op is "mul", "div", "add", "sub" (data - operand) or "rsub" (operand - data)."""

    op: str
    operand: Operand
    code: str  # the call, for messages


def follow(op: str, values: list, node, walker, code: str):
    """The value of torch.<op>(*values) when it is arithmetic of the data with constants, or of constants alone
    (an ("operand", ...)); None to leave the call to the walker (sizes, skip connections, attention)."""
    kinds = [_kind(v) for v in values]
    if not values or None in kinds or not ("data" in kinds or "constant" in kinds):
        return None
    if kinds.count("data") > 1:
        return None  # a sum of two data values is a skip connection; a product, attention
    _check_keywords(op, node, walker, code)
    if op.endswith("_"):
        raise Unfollowable(
            f"`{code}` changes the tensor in place; lstmrt follows arithmetic by constants written out of place, "
            "x = x * c"
        )
    if "data" not in kinds:
        return ("operand", _computed(op, [_operand(v, walker, code) for v in values], code))
    if op == "sqrt" or (op == "neg") != (len(values) == 1) or len(values) > 2:
        return None
    data_at = kinds.index("data")
    items = walker.seq(values[data_at], f"the input of torch.{op}")[1]
    if op == "neg":
        return ("seq", items + ((ARITH_ENTRY, Arith("mul", Operand.of(-1.0), code)),))
    operand = _operand(values[1 - data_at], walker, code)
    if op in ("div", "true_divide"):
        if data_at == 1:
            raise Unfollowable(f"`{code}` divides a constant by the data, which is no per-feature scale and shift")
        op = "div"
    elif op == "rsub":  # torch.rsub(a, b) is b - a
        op = "rsub" if data_at == 0 else "sub"
    elif op == "sub" and data_at == 1:
        op = "rsub"
    return ("seq", items + ((ARITH_ENTRY, Arith(op, operand, code)),))


def _kind(value):
    if value[0] in _DATA:
        return "data"
    if value[0] in _CONSTANTS:
        return "constant"
    if value[0] == "const" and isinstance(value[1], (int, float)) and not isinstance(value[1], bool):
        return "number"
    return None


def _check_keywords(op, node, walker, code) -> None:
    """alpha=1 of add / sub and rounding_mode=None of div change nothing; any other keyword is not followed."""
    for keyword in node.keywords:
        value = walker.eval(keyword.value)
        if (keyword.arg, value) not in (("alpha", ("const", 1)), ("rounding_mode", ("const", None))):
            raise Unfollowable(f"`{code}`: lstmrt follows {op} without {keyword.arg}={_shown(value)}")
    if len(node.args) > 2:  # torch.add(x, c, 2): alpha given by position
        raise Unfollowable(f"`{code}`: lstmrt follows {op} of two terms (alpha=1)")


def _shown(value) -> str:
    return repr(value[1]) if value[0] == "const" else "a value computed in forward()"


def _operand(value, walker, code) -> Operand:
    """A walker value that is a constant, as an Operand."""
    kind = value[0]
    if kind == "operand":
        return value[1]
    if kind == "const":
        return Operand.of(_FLOAT32(value[1]))  # torch applies a Python number in the data's float32
    if kind == "param":
        array, names = walker.params.get(value[1]), {value[1]}
        what = f"self.{value[1]}"
    else:
        constants = walker.constants
        array, names = constants[value[1]] if value[1] < len(constants) else None, ()
        what = f"the tensor the trace captured (CONSTANTS.c{value[1]})"
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        kind_of = "unreadable" if not isinstance(array, np.ndarray) else f"of dtype {array.dtype}"
        raise Unfollowable(f"`{code}` computes with {what}, {kind_of}; lstmrt reads tensors of numbers")
    if array.size > _MAX_VALUES:
        raise Unfollowable(f"`{code}` computes with {what} of {array.size:,} values, more than any feature axis")
    return Operand.of(array, names)


def _computed(op: str, operands: list, code: str) -> Operand:
    """op of constants, in float32 (torch computes a tensor's arithmetic in its own dtype; a number joins in it)."""
    arrays = [o.array() for o in operands]
    names = frozenset().union(*(o.names for o in operands))
    with np.errstate(all="ignore"):  # inf and NaN as torch gives them; a layer made of them is refused later
        try:
            if op == "sqrt" and len(arrays) == 1:
                result = np.sqrt(arrays[0])
            elif op == "neg" and len(arrays) == 1:
                result = -arrays[0]
            elif len(arrays) == 2 and op in _BINARY:
                result = _BINARY[op](*arrays)
            else:
                raise ValueError(op)
        except ValueError:  # shapes that do not broadcast: torch fails too
            raise Unfollowable(f"`{code}` computes with constants whose shapes do not combine") from None
    if result.size > _MAX_VALUES:
        raise Unfollowable(f"`{code}` computes a constant of {result.size:,} values, more than any feature axis")
    return Operand.of(result, names)


_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "true_divide": np.divide,
    "rsub": lambda a, b: b - a,
}


def affine_of(arith: Arith, features: int, rank: int, where: str):
    """(scale, shift) per feature of the Affine layer computing `arith` on data of `features` features and `rank`
    axes ((B, T, F): 3, (B, F): 2, a squeezed (B,): 1). The operand may hold one value or one per feature, along
    the last axis; torch would broadcast other shapes over the batch or time axis, or widen the data."""
    values = arith.operand.array()
    shape = values.shape
    per_feature = len(shape) <= rank and all(n == 1 for n in shape[:-1]) and values.size in (1, features)
    if not per_feature or (rank == 1 and values.size != 1):
        raise ValueError(
            f"`{arith.code}` ({where}) computes with a constant of shape {shape} on data of {features} feature(s) and "
            f"{rank} axes: lstmrt applies one value, or one per feature along the last axis"
        )
    v = values.reshape(-1)
    if not np.isfinite(v).all():
        raise ValueError(f"`{arith.code}` ({where}) computes with a constant that is not finite ({_first_bad(v)})")
    scale, shift = scale_shift(arith.op, v, f"`{arith.code}` ({where})")
    return np.broadcast_to(scale, (features,)), np.broadcast_to(shift, (features,))


def _first_bad(values) -> float:
    return float(values[~np.isfinite(values)][0])


def scaled_activation(kind: str, options: dict, code: str):
    """The items computing torch's Softplus(beta, threshold) where lstmrt's softplus has fixed constants:
    softplus(beta x) / beta between Affine layers. None for lstmrt's own constants (or options that are not
    numbers: the caller refuses those). Softplus is torch's x from beta x > threshold on, which softplus(beta x) /
    beta equals there to 2e-9 / beta only from a threshold of 20 on (torch's default)."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in options.values()):
        return None
    beta, threshold = options["beta"], options["threshold"]
    if beta == 1 and threshold == 20:
        return None
    if beta == 0 or threshold < 20:
        raise Unfollowable(
            f"`{code}`: Softplus(beta={beta}, threshold={threshold}); lstmrt computes softplus(beta x) / beta, "
            "which is torch's Softplus for beta != 0 and a threshold of 20 or more"
        )
    return scaled([("mul", beta)], "softplus", [("div", beta)], code)


def scaled(before, activation: str, after, code: str) -> tuple:
    """The items of `activation` between the ops `before` and `after` ((op, constant) pairs), each op an Affine."""

    def items(ops):
        return tuple((ARITH_ENTRY, Arith(op, Operand.of(_FLOAT32(c)), code)) for op, c in ops)

    return items(before) + (("activation", activation),) + items(after)
