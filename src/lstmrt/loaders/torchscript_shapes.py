"""Reshapes in a forward(), as the TorchScript walker sees them:

- squeezing and flattening the data: `fc(out[:, -1]).squeeze(-1)`, `.squeeze()`, `.view(-1)`, `.reshape(-1)`,
  `.flatten()`, `.ravel()`, as forecasters and binary classifiers end their forward(). Each becomes a
  ("squeeze", how) item; how = ("squeeze", dim or None), ("flatten", start, end), ("view",) (everything into one
  axis) or ("rows", n) (`.view(-1, n)`: rows of n values, which leaves (B, n) as it is). What it does depends on
  sizes the code does not show (a squeeze of a 3-feature axis changes nothing, of a 1-feature axis drops it), so
  torch_build._squeezed decides, from the layers around it.
- `h_n.view(-1, hidden_size)` of a one-layer, one-direction module: its only final state, the last step; its
  `h_n.view(-1)` / `.flatten()` / `.ravel()`, that last step flattened (a drop when the hidden size is 1).
- swapping a sequence's batch and time axes, `x.transpose(0, 1)` / `x.permute(1, 0, 2)` (into or out of a module
  that is not batch_first): a ("transpose", None) item. lstmrt's data is batch-first wherever torch's is not, so it
  computes nothing; the walker follows which axis is time from it (torchscript_steps.batch_first).

Anything else (a view to other sizes, moving the feature axis) has no lstmrt layer: refused."""

from __future__ import annotations

import ast

from .torch_tree import ONE_FEATURE_ENTRY, SQUEEZE_ENTRY, TRANSPOSE_ENTRY
from .torchscript_steps import LAST_STEP, Unfollowable, time_gone

OPS = ("squeeze", "view", "reshape", "flatten", "ravel")
MOVES = ("permute", "transpose", "swapaxes", "swapdims")  # x.permute(1, 0, 2), x.transpose(0, 1), ...
_ALL = "?"  # a size computed from the data (x.size(0))
_ALL_AXES = ((0, 2), (0, -1), (-3, 2), (-3, -1))  # flatten(start, end) of all three axes of h_n


def reshape(op: str, items: tuple, node: ast.Call, walker):
    """The value of torch.<op>(seq, ...) on the data after `items`."""
    return ("seq", items + ((SQUEEZE_ENTRY, _shape_op(op, node, walker)),))


def unsqueeze(items: tuple, node: ast.Call, walker):
    """torch.unsqueeze(x, -1) (or 2) of forward()'s input: a (batch, time) input of one feature, as univariate
    forecasters take it. lstmrt's models of one input feature take (batch, time) as they are. (x.view(B, T, 1) is
    not read: the walker does not tell x.size(0) from x.size(1), and x.view(T, B, 1) would move the samples.)"""
    args, keywords = _arguments(node, walker)
    dim = args[0] if args else keywords.get("dim")
    if items or dim not in (-1, 2) or isinstance(dim, bool):
        raise Unfollowable(
            f"torch.unsqueeze at dim {dim!r}: lstmrt follows x.unsqueeze(-1) of forward()'s (batch, time) input only "
            "(one feature per step)"
        )
    return one_feature(items, walker)


def one_feature(items: tuple, walker):
    if walker.depth:
        raise Unfollowable("a (batch, time) input made one feature wide inside a submodule's forward()")
    return ("seq", items + ((ONE_FEATURE_ENTRY, None),))


def swap(op: str, items: tuple, node: ast.Call, walker):
    """The value of torch.<op>(seq, ...), one of MOVES, on the sequence after `items`."""
    args, keywords = _arguments(node, walker)
    if op == "permute":
        dims = args[0] if len(args) == 1 else keywords.get("dims", args)
    else:
        dims = args + [keywords[k] for k in ("dim0", "dim1", "axis0", "axis1") if k in keywords]
    gone = time_gone(items)
    if gone:
        raise Unfollowable(f"torch.{op} of (batch, features) data after {gone}: lstmrt keeps the features last")
    order = _permutation(op, dims)
    if order == [0, 1, 2]:
        return ("seq", items)  # every axis where it was
    if order != [1, 0, 2]:
        raise Unfollowable(
            f"torch.{op} to the axis order {dims!r}: lstmrt follows swapping batch and time, x.transpose(0, 1), and "
            "keeps the features last"
        )
    return ("seq", items + ((TRANSPOSE_ENTRY, None),))


def _permutation(op: str, dims):
    """The axes of the result as positions of x's 3 (torch.permute), or of a swap of two of them; None when the
    arguments are not constants."""
    if not isinstance(dims, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        return None
    if op == "permute":
        return [d % 3 for d in dims] if len(dims) == 3 and all(-3 <= d < 3 for d in dims) else None
    if len(dims) != 2 or not all(-3 <= d < 3 for d in dims):
        return None
    order, (a, b) = [0, 1, 2], (d % 3 for d in dims)
    order[a], order[b] = order[b], order[a]
    return order


def reshape_state(value, op: str, node: ast.Call, walker):
    """h_n.view(-1, hidden_size) / .reshape(-1, hidden_size) of a one-layer, one-direction module: its only final
    state, (batch, hidden_size), which is each sequence's last step. Its h_n.view(-1) / .flatten() / .ravel(),
    (batch * hidden_size,): that last step flattened, which torch_build._squeezed accepts for a hidden size of 1."""
    info = walker.recurrent_of(value[1])
    hidden = info.hidden_size
    if info.states != 1:
        raise Unfollowable(
            f"torch.{op} of h_n: h_n of {info.states} states (layers x directions) would join them into the batch axis"
        )
    if op in ("view", "reshape") and _target(*_arguments(node, walker)) == [-1, hidden]:
        return ("seq", value[1] + (LAST_STEP,))
    try:
        how = _shape_op(op, node, walker)
    except Unfollowable:
        how = None
    if how == ("view",) or (how and how[0] == "flatten" and how[1:] in _ALL_AXES):
        return ("seq", value[1] + (LAST_STEP, (SQUEEZE_ENTRY, ("view",))))  # (1, B, H) into one axis
    raise Unfollowable(
        f"torch.{op} of h_n: lstmrt follows h_n.view(-1, {hidden}) (its hidden size), the final state as "
        f"(batch, {hidden})"
    )


def _shape_op(op: str, node: ast.Call, walker) -> tuple:
    """What torch.<op>(x, ...) asks for, as written: ("squeeze", dim or None), ("flatten", start, end), ("rows", n)
    or ("view",) (everything into one axis); Unfollowable for any other reshape."""
    call = f"torch.{op}"
    args, keywords = _arguments(node, walker)
    if op == "squeeze":
        dims = args[0] if args else keywords.get("dim")
        dims = list(dims) if isinstance(dims, (list, tuple)) else dims
        if isinstance(dims, list) and len(dims) == 1:
            dims = dims[0]
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int)):
            raise Unfollowable(f"{call} of dimensions {dims!r}; lstmrt follows one dimension, or none")
        return ("squeeze", dims)
    if op == "flatten":
        start = args[0] if args else keywords.get("start_dim", 0)
        end = args[1] if len(args) > 1 else keywords.get("end_dim", -1)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in (start, end)):
            raise Unfollowable(f"{call} from dimension {start!r} to {end!r}")
        return ("flatten", start, end)
    sizes = target = _target(args, keywords)
    if op == "ravel" or sizes == [-1]:
        return ("view",)
    if isinstance(sizes, list) and len(sizes) == 2 and sizes[0] == -1 and isinstance(sizes[1], int) and sizes[1] > 0:
        return ("rows", sizes[1])  # x.view(-1, features): (B, F) unchanged when F is the data's feature count
    shown = (
        "[" + ", ".join("(a size of the data)" if s == _ALL else repr(s) for s in sizes) + "]"
        if isinstance(sizes, list)
        else repr(target)
    )
    raise Unfollowable(f"{call} to {shown}")


def _arguments(node: ast.Call, walker) -> tuple:
    """(positional arguments after the tensor, keyword arguments), each a constant, a list of sizes or _ALL."""
    return [_value(a, walker) for a in node.args[1:]], {k.arg: _value(k.value, walker) for k in node.keywords}


def _target(args: list, keywords: dict):
    """The sizes of x.view(sizes) / x.reshape(shape=sizes), a list when given as one."""
    target = args[0] if args else keywords.get("shape", keywords.get("size"))
    return list(target) if isinstance(target, (list, tuple)) else target


def _value(node, walker):
    """A constant argument, a list of sizes (each a constant or _ALL), or _ALL."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return [walker.number(e) for e in node.elts]
    if isinstance(node, ast.Name):  # scripted code builds a view's sizes first: _0 = [torch.size(x, 0), ..., 1]
        value = walker.eval(node)
        if value[0] in ("list", "tuple"):
            return [v[1] if v[0] == "const" else _ALL for v in value[1]]
    return walker.number(node)
