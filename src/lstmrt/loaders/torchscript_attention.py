"""Softmax attention over time in a forward(), as the TorchScript walker sees it: the attention pooling of sequence
classifiers,

    w = torch.softmax(self.attn(out), dim=1)    # scores (B, T, 1), or one per feature (B, T, H)
    ctx = torch.sum(w * out, dim=1)             # (w * out).sum(1), out * w

and its (B, T) spelling, `w = F.softmax(self.attn(out).squeeze(-1), dim=1)` then `torch.bmm(w.unsqueeze(1),
out).squeeze(1)` or `(w.unsqueeze(-1) * out).sum(1)`; time is dim 0 when the recurrent module is not batch_first.
The scores may come from several layers (Linear, tanh, Linear); the values must be an earlier point of the chain
the scores are computed from (out, the input, a slice of its features). The pool is the scores' items with
(ADD_SOURCE, k) put in where the values are and (ATTENTION_ENTRY, (k, start, end, one_score)) at the end:
torch_build makes an AttentionPooling of them, deciding at the sizes there whether there is one score per step or
one per feature.

Values this module makes: ("attention", Attention), the weights, or the weights times the values, as they are
reshaped on the way to the sum; ("query", items), a final state with an axis added (h_n[-1].unsqueeze(2)), which
only refusals read. What differs (a softmax over the features, weights without softmax, a query from the final
state, masked scores, a sum over another axis) is refused, saying why."""

from __future__ import annotations

import ast
import dataclasses

from . import torchscript_steps as steps
from .torch_live import _NO_OPS as _NO_OP_MODULES  # nn.Dropout(w) on the weights, in eval mode
from .torch_tree import (
    ADD_SOURCE,
    ATTENTION_ENTRY,
    NO_OP_CALLS,
    SKIP_IDS,
    SQUEEZE_ENTRY,
    TORCH_FLOAT32,
    class_name,
    module_parts,
)
from .torchscript_pooling import call_argument, reduction_options
from .torchscript_residual import data_path, position_after
from .torchscript_steps import Unfollowable, time_gone

TAG, QUERY = "attention", "query"
_DATA = ("seq", "pair", "rnn", "sliced")  # walker values that are the network's data (a slice of its features too)
_AXES = {"B": "batch", "T": "time", "F": "features", "K": "scores", "1": "an added axis"}
_HOW = "torch.sum(torch.softmax(self.attn(out), dim=1) * out, dim=1)"


@dataclasses.dataclass(frozen=True)
class Attention:
    scores: tuple  # the items of the scores (a squeeze dropping their one-feature axis left out)
    axes: tuple  # the tensor's axes, each a key of _AXES: "K" the scores' features, "F" the values'
    time_first: bool  # the recurrent modules' layout: (T, B, F), not batch_first
    one_score: bool  # forward() takes one score per step (it squeezed the scores, or bmm sums over them)
    layout_seen: bool  # the scores come through a recurrent module here (else batch_first is assumed)
    values: tuple | None = None  # once weighted: the ("seq", items) or ("sliced", items, start, end) weighted
    summed: bool = False  # bmm's product: time summed into an axis of size one, which a squeeze or sum drops
    former: tuple | None = None  # what the walker read before: softmax(x.squeeze(-1), -1) of a no-op squeeze
    softmax: str = ""  # the softmax call, for messages


def follow(op: str, first, node: ast.Call, walker):
    """The value of torch.<op>(first, ...) where attention is involved, or None to leave the call to the walker."""
    if first[0] == TAG:
        return _on_attention(op, first[1], node, walker)
    if first[0] == QUERY or (op in ("bmm", "matmul") and first[0] in _DATA):
        return _product(first, node, walker)
    if first[0] != "seq":
        return None
    if op == "softmax":
        return _softmax_call(first[1], node, walker)
    if op == "unsqueeze" and time_gone(first[1]):
        return (QUERY, first[1])
    if op in ("masked_fill", "masked_fill_"):
        raise Unfollowable(
            f"`{_code(node)}` masks the scores: lstmrt masks padded steps by their lengths instead, "
            "model.predict(X, lengths=...), where a step past a sequence's length gets weight 0; load the module "
            "with the mask left out of forward()"
        )
    return None


def plain(value):
    """A softmax read as attention weights, used as data after all: what the walker read it as before (a softmax
    over the features after a squeeze that changed nothing), else the value itself."""
    return value[1].former if value[0] == TAG and value[1].former is not None else value


def as_data(value, what: str):
    """`value`, one of this module's, where the walker needs the network's data: its former reading, or refused."""
    if value[0] == QUERY:
        raise Unfollowable(f"{what} is a final state with an axis added (unsqueeze): {_QUERY}")
    if value[1].former is not None:
        return value[1].former
    if value[1].values is None:
        raise Unfollowable(
            f"{what} is attention weights, the softmax over time {value[1].softmax}, which lstmrt follows multiplied "
            f"by the values and summed over time, {_HOW}"
        )
    raise Unfollowable(f"{what} is the attention's weighted values before their sum over time; lstmrt follows {_HOW}")


def call_module(name: str, record, value, walker):
    """The value of child module `name` applied to `value` where attention is involved, else None: an nn.Softmax
    over time makes the weights; an eval-mode no-op (dropout) keeps them."""
    kind, torch_nn = class_name(record)
    if torch_nn and kind == "Softmax" and value[0] == "seq":
        dim = record.attrs.get("dim")
        return _weights(value[1], dim, f"nn.Softmax(dim={dim}) {name!r}", ("child", name), walker)
    if torch_nn and kind == "Sequential" and value[0] == "seq":
        return _scorer_ending_in_softmax(name, record, value[1], walker)
    return value if value[0] == TAG and torch_nn and kind in _NO_OP_MODULES else None


def _scorer_ending_in_softmax(name: str, record, items: tuple, walker):
    """nn.Sequential(nn.Linear, nn.Tanh, nn.Linear, nn.Softmax(dim=1)): a scorer and the softmax over time in one
    module, as tutorials write it: its modules before the softmax are the scores' layers. None for any other
    Sequential (the walker applies it whole)."""
    children = list(module_parts(record)[1].items())
    if not children or class_name(children[-1][1]) != ("Softmax", True):
        return None
    scores = items + tuple(("child", f"{name}.{child}") for child, _ in children[:-1])
    last = f"{name}.{children[-1][0]}"
    dim = children[-1][1].attrs.get("dim")
    return _weights(scores, dim, f"nn.Softmax(dim={dim}) {last!r}", ("child", last), walker)


def weigh(values, node: ast.Call, walker):
    """The value of torch.mul(a, b) when attention weights (or a query) take part, else None."""
    if len(values) != 2 or node.keywords:
        return None
    code, tags = _code(node), [v[0] for v in values]
    if QUERY in tags:
        raise Unfollowable(f"`{code}` {_QUERY}")
    if TAG not in tags:
        if all(t in _DATA for t in tags):
            raise Unfollowable(_two_data_tensors(values, code, walker))
        return None
    weights, data = values if tags[0] == TAG else values[::-1]
    att = weights[1]
    if att.values is not None or data[0] not in _DATA:
        raise Unfollowable(f"`{code}` multiplies the attention weights by other than the values; lstmrt follows {_HOW}")
    data = data if data[0] == "sliced" else walker.seq(data, "the attention's values")
    axes = _value_axes(data, att, code)
    if _broadcast(att.axes, axes) != axes:
        raise Unfollowable(
            f"`{code}` multiplies weights of axes {_named(att.axes)} by values of axes {_named(axes)}, which torch "
            "aligns on their last axes; lstmrt follows one weight per step and sequence, w.unsqueeze(-1) * out "
            f"for (batch, time) weights, or {_HOW}"
        )
    return (TAG, _derived(att, axes=axes, values=data))


_QUERY = (
    "scores the steps against a final state (a query, torch.bmm(out, h_n[-1].unsqueeze(2))): each step's weight "
    "then depends on the sequence's last step, which a stream does not have yet; lstmrt's attention scores each "
    "step from its own data, torch.softmax(self.attn(out), dim=1)"
)


def _two_data_tensors(values, code: str, walker) -> str:
    ends = [v[1][-1] for v in values if v[0] != "sliced" and v[1]]
    softmax = ("activation", "softmax") in ends or any(
        tag == "child" and class_name(walker.child(name)) == ("Softmax", True) for tag, name in ends
    )
    why = (
        "weights that are a softmax over the features (dim=-1) rather than over time"
        if softmax
        else "two tensors of the data (weights without a softmax over time, or a gate)"
    )
    return f"`{code}` multiplies {why}, which no lstmrt layer computes; lstmrt follows attention pooling, {_HOW}"


def _softmax_call(items: tuple, node: ast.Call, walker):
    """torch.softmax(scores, dim) / F.softmax over the time axis: the attention weights; else None."""
    args, keywords = node.args[1:], {k.arg: k.value for k in node.keywords}
    dim = walker.number(call_argument(args, keywords, 0, "dim") or ast.Constant(None))
    extras = [walker.number(a) for a in args[1:]]  # F.softmax's _stacklevel, a dtype code
    if walker.number(keywords.get("dtype", ast.Constant(None))) not in (None, TORCH_FLOAT32) or not all(
        e is None or (isinstance(e, int) and not isinstance(e, bool)) for e in extras
    ):
        return None  # a dtype other than float32: lstmrt computes in float32
    return _weights(items, dim, _called(node, walker), ("activation", "softmax"), walker)


def _weights(items: tuple, dim, called: str, former_item: tuple, walker):
    """A softmax over dimension `dim` of the scores after `items`: the attention weights when that is the time
    axis; None for any other axis (the walker's softmax over the features, or its refusal). In a module that does
    not see the recurrent modules (a user-defined attention module), time is dim 1 as with batch_first: torch_build
    checks that they are batch_first."""
    if time_gone(items):
        return None  # (batch, features): dim 1 is the features
    squeeze = items[-1][1] if items and items[-1][0] == SQUEEZE_ENTRY else None
    if squeeze is not None and squeeze not in (("squeeze", -1), ("squeeze", 2)):
        return None
    scores = items[:-1] if squeeze is not None else items
    steps.refuse_padded(scores, f"{called} over time")
    # the walker checked that every recurrent module reads the data along its layout: the last one's holds
    layouts = {steps.batch_first(scores, walker)} if _recurrent(scores, walker) else set()
    if None in layouts:
        if squeeze is None and dim in (0, 1, -2, -3):
            raise Unfollowable(
                f"{called} normalizes over dimension {dim} of scores computed through a recurrent module that does "
                "not record batch_first, so lstmrt cannot tell their time axis"
            )
        return None
    time_first = layouts == {False}
    axes = ("T", "B") if time_first else ("B", "T")
    axes = axes if squeeze is not None else (*axes, "K")
    if not _is_axis(dim, len(axes)) or axes[dim] != "T":
        return None
    former = ("seq", items + (former_item,)) if squeeze is not None and dim == -1 else None
    weights = Attention(scores, axes, time_first, squeeze is not None, bool(layouts), former=former, softmax=called)
    return (TAG, weights)


def _called(node: ast.Call, walker) -> str:
    """A call as the walker's refusals name it: its code, and the function a local name of scripted code stands for
    (TorchScript calls torch.nn.functional through names like _0)."""
    callee = walker.eval(node.func) if isinstance(node.func, ast.Name) else None
    named = f" of {callee[1].replace('__torch__.', '', 1)}" if callee and callee[0] == "func" else ""
    return f"`{_code(node)}`{named}"


def _recurrent(items: tuple, walker) -> list:
    """The RecurrentInfo of each nn.LSTM / GRU / RNN in `items`."""
    infos = [steps.recurrent_info(walker.child(name)) for tag, name in items if tag == "child"]
    return [info for info in infos if info is not None]


def _on_attention(op: str, att: Attention, node: ast.Call, walker):
    code = _code(node)
    if op in NO_OP_CALLS or (op == "to" and walker.keeps_float32(node)):
        return (TAG, att)
    args, keywords = node.args[1:], {k.arg: k.value for k in node.keywords}
    if att.values is None:  # the weights
        dim = walker.number(call_argument(args, keywords, 0, "dim") or ast.Constant(None))
        if op == "unsqueeze" and _is_axis(dim, len(att.axes) + 1):
            at = dim % (len(att.axes) + 1)
            return (TAG, _derived(att, axes=(*att.axes[:at], "1", *att.axes[at:])))
        if op == "squeeze" and _is_axis(dim, len(att.axes)) and att.axes[dim] in ("1", "K"):
            # a "K" axis is dropped only when there is one score per step (torch leaves a wider one)
            axes = att.axes[: dim % len(att.axes)] + att.axes[dim % len(att.axes) + 1 :]
            return (TAG, _derived(att, axes=axes, one_score=att.one_score or att.axes[dim] == "K"))
        if op in ("transpose", "permute"):
            order = _order(op, [walker.number(a) for a in args], len(att.axes))
            if order is not None:
                return (TAG, _derived(att, axes=tuple(att.axes[i] for i in order)))
        if op in ("bmm", "matmul"):
            return _product((TAG, att), node, walker)
        if att.former is not None:
            return None
        raise Unfollowable(
            f"`{code}` on the attention weights (a softmax over time): lstmrt follows them multiplied by the "
            f"values and summed over time, {_HOW}"
        )
    if op == "sum":
        dims, keepdim, dtype = reduction_options(node, walker)
        if keepdim is not False or dtype not in (None, TORCH_FLOAT32):
            raise Unfollowable(f"`{code}` sums with keepdim={keepdim} or a dtype; lstmrt's pool is (batch, features)")
        return _pooled(att, dims, code)
    if op == "squeeze" and att.summed:
        return _pooled(att, [walker.number(call_argument(args, keywords, 0, "dim") or ast.Constant(None))], code)
    raise Unfollowable(f"`{code}` on the attention's weighted values; lstmrt sums them over time, {_HOW}")


def _order(op: str, args: list, rank: int):
    """The new order of the axes for torch.transpose(x, a, b) / torch.permute(x, dims), or None."""
    if op == "transpose" and len(args) == 2 and all(_is_axis(a, rank) for a in args):
        order = list(range(rank))
        a, b = args[0] % rank, args[1] % rank
        order[a], order[b] = b, a
        return order
    dims = args[0] if op == "permute" and len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    if op == "permute" and all(_is_axis(d, rank) for d in dims) and sorted(d % rank for d in dims) == [*range(rank)]:
        return [d % rank for d in dims]
    return None


def _product(first, node: ast.Call, walker):
    """torch.bmm(w.unsqueeze(1), out) / torch.matmul: (batch, 1, time) weights times (batch, time, features)
    values, the sum over time done; its squeeze(1) is the pool. Any other product of matrices is refused."""
    code = _code(node)
    second = walker.eval(node.args[1]) if len(node.args) == 2 and not node.keywords else None
    if QUERY in (first[0], second and second[0]):
        raise Unfollowable(f"`{code}` {_QUERY}")
    if first[0] != TAG or first[1].values is not None or second is None or second[0] not in _DATA:
        raise Unfollowable(
            f"`{code}` multiplies matrices of the data; lstmrt follows the product of attention weights and values, "
            "torch.bmm(torch.softmax(scores, dim=1).unsqueeze(1), out).squeeze(1)"
        )
    att = first[1]
    data = second if second[0] == "sliced" else walker.seq(second, "the attention's values")
    axes = _value_axes(data, att, code)
    if axes != ("B", "T", "F") or len(att.axes) != 3 or att.axes[0] != "B" or att.axes[1] not in ("1", "K"):
        raise Unfollowable(
            f"`{code}` multiplies weights of axes {_named(att.axes)} by values of axes {_named(axes)}; lstmrt "
            "follows torch.bmm of (batch, 1, time) weights and (batch, time, features) values"
        )
    if att.axes[2] != "T":
        raise Unfollowable(f"`{code}` multiplies the weights' {_AXES[att.axes[2]]} axis with the values' time axis")
    one_score = att.one_score or att.axes[1] == "K"  # (batch, K, features): one context per score, unless K = 1
    product = _derived(att, axes=("B", att.axes[1], "F"), values=data, summed=True, one_score=one_score)
    return (TAG, product)


def _value_axes(data, att: Attention, code: str) -> tuple:
    items = data[1]
    if time_gone(items):
        raise Unfollowable(f"`{code}` weighs values whose time axis is gone ({time_gone(items)})")
    if data[0] != "sliced" and items[-1:] and items[-1][0] == SQUEEZE_ENTRY:
        raise Unfollowable(f"`{code}` weighs squeezed values; lstmrt weighs (batch, time, features) values")
    if steps.flips(items) % 2 != steps.flips(att.scores) % 2:
        raise Unfollowable(f"`{code}` weighs values whose batch and time axes are swapped against the scores'")
    return ("T", "B", "F") if att.time_first else ("B", "T", "F")


def _broadcast(left: tuple, right: tuple):
    """The axes of left * right as torch broadcasts them (aligned on the last axes), or None where they differ.
    The scores' features "K" meet the values' "F": torch_build checks that there are 1 or as many."""
    n = max(len(left), len(right))
    left, right = ("1",) * (n - len(left)) + left, ("1",) * (n - len(right)) + right
    axes = []
    for a, b in zip(left, right):
        if a == b or a == "1":
            axes.append(b)
        elif b == "1":
            axes.append(a)
        elif (a, b) == ("K", "F"):
            axes.append("F")
        else:
            return None
    return tuple(axes)


def _pooled(att: Attention, dims: list, code: str):
    """The sum over `dims` of the weighted values: the attention pool, when it sums over time (or over the axis bmm
    summed time into); its value is the scores' flow with the entries of torch_tree put in."""
    rank = len(att.axes)
    if len(dims) != 1 or not _is_axis(dims[0], rank):
        raise Unfollowable(
            f"`{code}` sums the weighted values over dimensions {dims or 'all'}; lstmrt sums them over time, {_HOW}"
        )
    axis = att.axes[dims[0] % rank]
    if not ((axis == "T" and not att.summed) or (axis in ("1", "K") and att.summed)):
        time = att.axes.index("T") if "T" in att.axes else 1
        raise Unfollowable(
            f"`{code}` sums the weighted values over dimension {dims[0]} ({_AXES[axis]}); lstmrt's attention sums "
            f"them over time, dim={time}"
        )
    value = att.values
    items = value[1]
    start, end = value[2:] if value[0] == "sliced" else (0, None)
    score_path, value_path = data_path(att.scores), data_path(items)
    if score_path[: len(value_path)] != value_path:
        raise Unfollowable(
            f"`{code}` weighs values that are not an earlier point of the chain the attention scores are computed "
            "from; lstmrt computes the scores from the values onwards, torch.softmax(self.attn(out), dim=1) * out"
        )
    position = position_after(att.scores, len(value_path))
    point = next(SKIP_IDS)
    entry = (ATTENTION_ENTRY, (point, start, end, att.one_score, att.layout_seen))
    return ("seq", att.scores[:position] + ((ADD_SOURCE, point),) + att.scores[position:] + (entry,))


def _derived(att: Attention, **changes) -> Attention:
    """A tensor computed from the weights: the walker's former reading of the softmax is not one of it."""
    return dataclasses.replace(att, former=None, **changes)


def _is_axis(dim, rank: int) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and -rank <= dim < rank


def _named(axes: tuple) -> str:
    return "(" + ", ".join(_AXES[a] for a in axes) + ")"


def _code(node) -> str:
    try:
        return (ast.unparse(node).splitlines() or [""])[0]
    except (AttributeError, TypeError, ValueError, RecursionError):
        return type(node).__name__
