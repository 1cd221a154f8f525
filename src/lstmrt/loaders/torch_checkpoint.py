"""What a torch.save file holds the model in: a state dict, a pickled module, or a checkpoint dict nesting one of
them (`{"epoch": 3, "model_state": {...}, "optimizer_state": {...}}`), found by `key=` or, without it, as the one
obvious candidate."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedModelError
from .torch_tree import is_module

_SEARCH_DEPTH = 3  # how deep a checkpoint dict is searched for its one state dict / module


def _is_state_dict(value, strict: bool) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    if not all(isinstance(k, str) for k in value) or not all(isinstance(v, np.ndarray) for v in value.values()):
        return False
    # Nested candidates must look like module parameters: this keeps optimizer moments (exp_avg, ...) out.
    return not strict or any(k.rpartition(".")[2].startswith(("weight", "bias")) for k in value)


def _kind(value, strict: bool) -> bool:
    return is_module(value) or _is_state_dict(value, strict)


def _candidates(obj: dict, path: str, depth: int):
    for k, v in obj.items():
        if not isinstance(k, str):
            continue
        here = f"{path}.{k}" if path else k
        if _kind(v, strict=True):
            yield here, v
        elif isinstance(v, dict) and depth < _SEARCH_DEPTH and "param_groups" not in v:  # skip optimizer states
            yield from _candidates(v, here, depth + 1)


def _follow(obj, key: str):
    """obj[key], where key may be a dotted path through nested dicts ("models.generator")."""
    if isinstance(obj, dict) and key in obj:
        return obj[key]
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:n])
        if isinstance(obj, dict) and head in obj:
            return _follow(obj[head], ".".join(parts[n:]))
    raise KeyError(key)


def select_model(obj, key, path) -> tuple:
    """(state dict or module record, key used) from what torch.save stored."""
    if key is not None:
        try:
            node = _follow(obj, key)
        except KeyError:
            keys = ", ".join(map(repr, obj)) if isinstance(obj, dict) else "(not a dict)"
            raise KeyError(f"{path}: key {key!r} not found; top-level keys: {keys}") from None
        if not _kind(node, strict=False):
            raise UnsupportedModelError(f"{path}: key {key!r} holds {_what(node)}, not a state dict or module")
        return node, key
    if _kind(obj, strict=False):
        return obj, None
    if not isinstance(obj, dict):
        raise UnsupportedModelError(f"{path}: the file holds {_what(obj)}, not a state dict, checkpoint dict or module")
    found = list(_candidates(obj, "", 1))
    if len(found) == 1:
        return found[0][1], found[0][0]
    if not found:
        raise UnsupportedModelError(
            f"{path}: no state dict or module found in this checkpoint (top-level keys: "
            f"{', '.join(map(repr, obj))}); pass key= to say where the model's tensors are"
        )
    raise UnsupportedModelError(
        f"{path}: several state dicts or modules in this checkpoint: "
        f"{', '.join(repr(p) for p, _ in found)}; pass key= to choose one"
    )


def _what(value) -> str:
    if is_module(value):
        return f"a module ({value.qualname})"
    if isinstance(value, np.ndarray):
        return f"a tensor of shape {value.shape}"
    return f"a {type(value).__name__}"
