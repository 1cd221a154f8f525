"""Skip connections in a forward(), as the TorchScript walker sees them: `self.lin(out) + x[:, :, 0:1]` (the
audio-effect model's skip of the input), `out = out + self.lstm2(out)[0]` (residual blocks), `torch.add`, `+=`.

A sum can be followed when one term is the network's data flow and the other an earlier point of that same flow,
whole or a slice of its features: the chain of layers then adds that point's features at every step, an
lstmrt.Add. The walker's value for the sum is the longer term's items with two entries put in: (ADD_SOURCE, k) where
the earlier point is, (ADD_ENTRY, (k, start, end)) at the end. torch_build turns them into Add(source=...), deciding
at the sizes there (a slice's end, that the two terms have as many features).

Values this module makes: ("sliced", items, start, end), the features [start, end) of the data after `items`
(end None: to the last), which only a sum takes."""

from __future__ import annotations

from .torch_live import _ACTIVATIONS
from .torch_live import _NO_OPS as _NO_OP_MODULES
from .torch_tree import (
    ADD_ENTRY,
    ADD_SOURCE,
    SKIP_IDS,
    SQUEEZE_ENTRY,
    TIME_ENDS,
    TRANSPOSE_ENTRY,
    class_name,
    module_parts,
)
from .torchscript_steps import LAST_STEP, Unfollowable, time_gone

INT64_MAX = 2**63 - 1  # torch.slice's end for `[a:]` in TorchScript code


def feature_slice(value, args):
    """x[..., start:end] of the data (torch.slice(x, dim, start, end, step)) as a ("sliced", ...) value, or None when
    it slices another axis; a step or a bound that is not a constant cannot be followed."""
    dim, start, end, step = (list(args) + [0, None, None, 1][len(args) :])[:4]
    rank = 2 if time_gone(value[1]) else 3  # (B, F) once the last step is taken or time pooled, else (B, T, F)
    if not isinstance(dim, int) or dim % rank != rank - 1 or not -rank <= dim < rank:
        return None
    if step != 1 or not all(b is None or isinstance(b, int) for b in (start, end)):
        raise Unfollowable("a slice of the features with a step, or bounds computed from the data")
    start = start or 0
    end = None if end is not None and end >= INT64_MAX else end
    return ("sliced", value[1], start, end)


def may_share(value, items, children) -> bool:
    """Whether `value` may be, or view, the tensor of the data after `items` (an in-place add there would change
    it): the same flow (an alias or a copy: `clone` is followed as a no-op), its (output, state) pair, a slice, or
    the flow followed by ops that may return a view or the tensor itself (the last step, squeezes, the child modules
    of _keeps_storage)."""
    if value[0] in ("tuple", "list"):
        return any(may_share(v, items, children) for v in value[1])
    if value[0] not in ("seq", "sliced", "pair", "rnn") or value[1][: len(items)] != items:
        return False
    return all(
        tag in _VIEWS or (tag == "child" and _keeps_storage(children.get(name))) for tag, name in value[1][len(items) :]
    )


# out[:, -1], squeezes and transposes are views; a skip's source changes nothing
_VIEWS = (LAST_STEP[0], SQUEEZE_ENTRY, TRANSPOSE_ENTRY, ADD_SOURCE)


def _keeps_storage(record) -> bool:
    """Whether a child module may return its input's tensor: a dropout, identity or activation module, a Sequential
    of those, or a user-defined module (its forward() is not seen from here)."""
    if record is None:
        return False
    name, torch_nn = class_name(record)
    if name == "Sequential" and torch_nn:
        return all(_keeps_storage(child) for child in module_parts(record)[1].values())
    return not torch_nn or name in (*_NO_OP_MODULES, *_ACTIVATIONS)


def data_path(items) -> tuple:
    """The layers and ops of a flow, without the skip sources marked in it (they change no data)."""
    return tuple(item for item in items if item[0] != ADD_SOURCE)


def position_after(items, length: int) -> int:
    """The position in `items` right after its first `length` data items (ADD_SOURCE entries skipped)."""
    seen = 0
    for position, item in enumerate(items):
        if seen == length:
            return position
        seen += item[0] != ADD_SOURCE
    return len(items)


def add(terms, code: str):
    """The value of terms[0] + terms[1]: each a ("seq", items) or ("sliced", items, start, end)."""
    paths = [data_path(t[1]) for t in terms]
    main, skip = (0, 1) if len(paths[0]) >= len(paths[1]) else (1, 0)
    if terms[main][0] == "sliced" and terms[skip][0] != "sliced" and paths[0] == paths[1]:
        main, skip = skip, main  # out + out[..., a:b]: the whole one is the flow
    if paths[main][: len(paths[skip])] != paths[skip]:
        raise Unfollowable(
            f"the sum `{code}` adds two branches: lstmrt runs one chain of layers, into which it adds an earlier "
            "point of the same chain (a skip connection, lin(out) + x[:, :, 0:1])"
        )
    if terms[main][0] == "sliced":
        raise Unfollowable(f"the sum `{code}` adds to a slice of the features, which no lstmrt layer outputs")
    items = terms[main][1]
    position = position_after(items, len(paths[skip]))
    after = items[position:]
    if time_gone(after) is not None:
        ended = next(tag for tag, _ in after if tag in TIME_ENDS)
        raise Unfollowable(
            f"the sum `{code}` adds a point with a time axis to data whose time axis is gone ({ended} since); "
            "lstmrt adds the same step of both"
        )
    start, end = terms[skip][2:] if terms[skip][0] == "sliced" else (0, None)
    point = next(SKIP_IDS)
    return ("seq", items[:position] + ((ADD_SOURCE, point),) + after + ((ADD_ENTRY, (point, start, end)),))
