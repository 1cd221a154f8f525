"""Pooling over the time axis in a forward(), as the TorchScript walker sees it: torch.mean(out, [1]),
torch.amax(out, [1]) and torch.max(out, 1) — what out.mean(dim=1), out.amax(1), out.max(dim=1)[0] and
torch.max(out, 1).values become in scripted and traced code alike. Each becomes the ("mean_over_time", None) or
("max_over_time", None) item: a GlobalPooling layer, whose output at a sequence's last step is the pool of the
whole sequence (Model(return_sequences=False)), and whose stream gives the pool of the sequence so far.

The time axis is the recurrent module's: dim 1 (or -2) with batch_first, dim 0 without (swapped by each
x.transpose(0, 1) since). Pooling any other axis,
keeping the pooled axis (keepdim=True) or using torch.max's indices has no lstmrt layer: refused, saying why."""

from __future__ import annotations

import ast

from .torch_tree import TORCH_FLOAT32
from .torchscript_steps import Unfollowable, batch_first, refuse_padded, time_gone

OPS = ("mean", "max", "amax")
_ITEM = {"mean": ("mean_over_time", None), "max": ("max_over_time", None), "amax": ("max_over_time", None)}
_RANK = 3  # a recurrent module's output sequence: (B, T, F) with batch_first, (T, B, F) without


def pool(op: str, items: tuple, node: ast.Call, walker):
    """The value of torch.<op>(seq, ...) over the sequence after `items`: the pooled sequence, and for torch.max
    the pair (values, indices) its scripted and traced code unpacks."""
    call = f"torch.{op}"
    args = node.args[1:]
    if op == "max" and args and walker.number(args[0]) == "?" and walker.eval(args[0])[0] not in ("attr", "aux"):
        raise Unfollowable(f"{call} of two tensors, an element-wise maximum, which no lstmrt layer computes")
    dims, keepdim, dtype = reduction_options(node, walker)
    gone = time_gone(items)
    if gone:
        raise Unfollowable(f"{call} after {gone}: the data is (batch, features), with no time axis to pool")
    if not dims:
        raise Unfollowable(f"{call} of every element of the sequence; lstmrt pools over the time axis only")
    walker.recurrent_of(items, what=f"the sequence {call} pools")
    refuse_padded(items, call)
    layout = batch_first(items, walker)
    if layout is None:
        raise Unfollowable(f"{call} of a sequence whose recurrent module does not record batch_first")
    time_axis = 1 if layout else 0
    axes = {time_axis: "time", 1 - time_axis: "batch", 2: "features"}
    other = [d for d in dims if not isinstance(d, int) or d % _RANK != time_axis or not -_RANK <= d < _RANK]
    if other or len(dims) != 1:
        named = ", ".join(
            f"{d} ({axes[d % _RANK]})" if isinstance(d, int) and -_RANK <= d < _RANK else repr(d)
            for d in (other or dims)
        )
        shown = "(batch, time, features), batch_first" if layout else "(time, batch, features)"
        raise Unfollowable(
            f"{call} over dimension {named} of the {shown} sequence; lstmrt pools over the time axis alone, "
            f"dim={time_axis}"
        )
    if keepdim is not False:
        raise Unfollowable(
            f"{call} with keepdim={keepdim} keeps the time axis as size 1, (batch, 1, features); lstmrt's pooled "
            "output is (batch, features), as with keepdim=False"
        )
    if dtype not in (None, TORCH_FLOAT32):
        raise Unfollowable(f"{call} with dtype code {dtype}, not float32 ({TORCH_FLOAT32}); lstmrt computes in float32")
    pooled = ("seq", items + (_ITEM[op],))
    return ("tuple", (pooled, ("indices", items))) if op == "max" else pooled


def reduction_options(node: ast.Call, walker) -> tuple:
    """(dims, keepdim, dtype) of torch.<reduction>(x, dim, keepdim, dtype) (mean, max, sum), given by position or by
    keyword: dims as pooled_dims reads them, the others constants (torch's defaults when left out)."""
    args, keywords = node.args[1:], {k.arg: k.value for k in node.keywords}
    dims = pooled_dims(call_argument(args, keywords, 0, "dim"), walker)
    keepdim = walker.number(call_argument(args, keywords, 1, "keepdim") or ast.Constant(False))
    dtype = walker.number(call_argument(args, keywords, 2, "dtype") or ast.Constant(None))
    return dims, keepdim, dtype


def call_argument(args, keywords, position, name):
    """The node of an argument given by position or by keyword, or None."""
    return args[position] if len(args) > position else keywords.get(name)


def pooled_dims(node, walker) -> list:
    """The pooled dimensions: [] when none is given (every element). Scripted code lists them (torch.mean(x, [1]));
    torch.max takes one; traced code writes an empty list as annotate(List[int], [])."""
    if node is None:
        return []
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "annotate":
        node = node.args[-1] if node.args else node
    value = walker.number(node)
    return list(value) if isinstance(value, (list, tuple)) else [value]
