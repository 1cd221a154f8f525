"""Reshapes in a forward(), as the TorchScript walker sees them. Three kinds can be followed:

- dropping a one-feature output's axis, as forecasters end their forward(): `fc(out[:, -1]).squeeze(-1)`,
  `.squeeze()`, `.view(-1)`, `.reshape(-1)`, `.flatten()` on (B, 1); `.squeeze(-1)` / `.squeeze()` on a
  sequence (B, T, 1). It becomes the ("squeeze", None) item: the model's predict then drops the axis
  (Model(squeeze_output=True)); only element-wise activations may follow it.
- `h_n.view(-1, hidden_size)` of a one-layer, one-direction module: its only final state, the last step.
- `x.flatten(1)` of (B, F) data, which changes nothing.

`.squeeze()` without a dimension also drops a batch or time axis of size 1 in torch; lstmrt drops the feature
axis only, so its predict keeps (B,) for a batch of one. Anything else (flattening time into features, moving
axes, sizes computed from the data) has no lstmrt layer: refused, saying why."""

from __future__ import annotations

import ast

from .torch_tree import SQUEEZE_ENTRY
from .torchscript_steps import LAST_STEP, Unfollowable, time_gone

OPS = ("squeeze", "view", "reshape", "flatten")
SQUEEZE = (SQUEEZE_ENTRY, None)
_ALL = "?"  # a size computed from the data (x.size(0)): its value is the batch's, whatever it is


def squeezed(items) -> bool:
    """Whether the data after `items` has lost its feature axis."""
    return SQUEEZE in items


def reshape(op: str, items: tuple, node: ast.Call, walker):
    """The value of torch.<op>(seq, ...) on the data after `items`."""
    call = f"torch.{op}"
    if squeezed(items):
        raise Unfollowable(f"{call} after the feature axis was squeezed")
    rank = 2 if time_gone(items) else 3
    shape = "(batch, features)" if rank == 2 else "a sequence (batch, time, features)"
    args = [_value(a, walker) for a in node.args[1:]]
    keywords = {k.arg: _value(k.value, walker) for k in node.keywords}
    if op == "squeeze":
        dims = args or [keywords[k] for k in ("dim",) if k in keywords]
        if dims in ([], [-1], [rank - 1]):
            return ("seq", items + (SQUEEZE,))
        raise Unfollowable(f"{call} of dimension {dims[0]} of {shape}, not its feature axis")
    if op == "flatten":
        start = args[0] if args else keywords.get("start_dim", 0)
        end = args[1] if len(args) > 1 else keywords.get("end_dim", -1)
        if rank == 2 and end in (-1, 1) and start in (1, -1):
            return ("seq", items)  # (B, F) -> (B, F)
        if rank == 2 and end in (-1, 1) and start == 0:
            return ("seq", items + (SQUEEZE,))  # (B, 1) -> (B,)
        raise Unfollowable(f"{call} from dimension {start} to {end} of {shape}, which joins its axes")
    target = args[0] if args else keywords.get("shape", keywords.get("size"))
    sizes = list(target) if isinstance(target, (list, tuple)) else None
    if sizes == [-1] and rank == 2:
        return ("seq", items + (SQUEEZE,))  # (B, 1) -> (B,)
    shown = "[" + ", ".join("(a size of the data)" if s == _ALL else repr(s) for s in sizes) + "]" if sizes else target
    raise Unfollowable(f"{call} of {shape} to {shown}")


def reshape_state(value, op: str, node: ast.Call, walker):
    """h_n.view(-1, hidden_size) / h_n.reshape(-1, hidden_size) of a one-layer, one-direction module: its only
    final state, (batch, hidden_size), which is each sequence's last step."""
    info = walker.recurrent_of(value[1])
    args = [_value(a, walker) for a in node.args[1:]]
    keywords = {k.arg: _value(k.value, walker) for k in node.keywords}
    target = args[0] if args else keywords.get("shape", keywords.get("size"))
    sizes = list(target) if isinstance(target, (list, tuple)) else None
    hidden = info.hidden_size
    if op in ("view", "reshape") and sizes == [-1, hidden] and info.states == 1:
        return ("seq", value[1] + (LAST_STEP,))
    why = (
        f"h_n of {info.states} states (layers x directions) would join them into the batch axis"
        if info.states != 1
        else f"lstmrt follows h_n.view(-1, {hidden}) (its hidden size), the final state as (batch, {hidden})"
    )
    raise Unfollowable(f"torch.{op} of h_n: {why}")


def _value(node, walker):
    """A constant argument, a list of sizes (each a constant or _ALL), or _ALL."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return [walker.number(e) for e in node.elts]
    return walker.number(node)
