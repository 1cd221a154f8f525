"""What a forward() does with a recurrent module's results, as the TorchScript walker sees them: its output
sequence, its final states h_n / c_n, and the ways code takes a sequence's last step from them — `out[:, -1]`,
`h_n[-1]`, `h_n.squeeze(0)`, `torch.cat((h_n[-2], h_n[-1]), 1)` for both directions. Each becomes the
("last_step", None) item: the model then outputs each sequence's final output (Model(return_sequences=False)),
which is what those expressions compute, and a stream gives it at every step. `out[:, -1]` of a bidirectional
module is the ("last_step", "sequence") item: the output sequence's last step, whose backward half is that
direction's first step, not its final output. `h_n[-2] + h_n[-1]` is the ("last_step", "sum") item: both
directions' final outputs summed (merge_mode "sum").

Values (tuples) this module makes and reads: ("rnn", items) — a scripted nn.LSTM/GRU/RNN's (output, h_n);
("hc", items) — an LSTM's (h_n, c_n); ("h", items) / ("c", items) — one final-state tensor; ("hdir", items, d) —
the last layer's final hidden state of direction d. `items` ends with the recurrent module's ("child", name)."""

from __future__ import annotations

import dataclasses
import re

from .torch_tree import (
    PACKED_ENTRY,
    PADDED_ENTRY,
    RECURRENT,
    SQUEEZE_ENTRY,
    TIME_ENDS,
    TRANSPOSE_ENTRY,
    class_name,
    module_parts,
)

LAST_STEP = ("last_step", None)
# out[:, -1] of a bidirectional module: the output sequence's last step (the backward direction's first), not each
# direction's final output, which h_n holds
SEQUENCE_LAST_STEP = ("last_step", "sequence")
SUM_LAST_STEP = ("last_step", "sum")  # h_n[-2] + h_n[-1]: the two directions' final outputs summed
_GONE = {
    "last_step": "the last step was taken",
    "mean_over_time": "the time axis was pooled",
    "max_over_time": "the time axis was pooled",
    "attention_over_time": "the time axis was pooled by attention",
}
_LAYER = re.compile(r"weight_ih_l(\d+)$")


class Unfollowable(Exception):
    """Code the walker cannot follow; the message says which."""


@dataclasses.dataclass(frozen=True)
class RecurrentInfo:
    kind: str
    layers: int
    directions: int
    batch_first: bool | None  # None: not recorded (the time axis is then unknown)
    traced_returns: tuple | None  # traced module: which of torch.lstm's results its forward returns
    hidden_size: int | None  # of h_n: the projection's size when there is one; None when the file is damaged

    @property
    def states(self) -> int:
        return self.layers * self.directions


def recurrent_info(record) -> RecurrentInfo | None:
    """Shape facts of a torch.nn recurrent module record, from its parameter names (as the builder reads them)."""
    name, torch_nn = class_name(record)
    if not torch_nn or name not in RECURRENT:
        return None
    params = module_parts(record)[0]
    layers = 1 + max((int(m.group(1)) for m in map(_LAYER.match, params) if m), default=0)
    attrs = record.attrs
    batch_first = attrs.get("batch_first")
    returns = attrs.get("traced_returns")
    shape = getattr(params.get("weight_hh_l0"), "shape", ())  # (gates x hidden, h_n's size: the projection's)
    return RecurrentInfo(
        name,
        layers,
        2 if any(k.endswith("_reverse") for k in params) else 1,
        batch_first if isinstance(batch_first, bool) else None,
        tuple(returns) if isinstance(returns, (tuple, list)) else None,
        int(shape[1]) if len(shape) == 2 else None,
    )


def called(info: RecurrentInfo, items: tuple):
    """The value of calling the module: scripted, its (output, h_n); traced, what its forward returns."""
    if info.traced_returns is None:
        return ("rnn", items)
    parts = [_traced_result(info, items, i) for i in info.traced_returns]
    return parts[0] if len(parts) == 1 else ("tuple", tuple(parts))


def _traced_result(info, items, index):
    # torch.lstm returns (output, h_n, c_n); torch.gru and torch.rnn_* return (output, h_n)
    return [("seq", items), ("h", items), ("c", items)][index] if index in (0, 1, 2) else ("opaque",)


def unpack(value, n, walker):
    """The parts of `a, b = value` for the values of this module, or None."""
    if value[0] == "rnn" and n == 2:
        return [("seq", value[1]), _state(value[1], walker)]
    if value[0] == "hc" and n == 2:
        return [("h", value[1]), ("c", value[1])]
    return None


def index(value, i, walker):
    """value[i] (a constant index) for the values of this module, or None."""
    if value[0] == "rnn" and i in (0, 1, -1, -2):
        return ("seq", value[1]) if i in (0, -2) else _state(value[1], walker)
    if value[0] == "hc" and i in (0, 1, -1, -2):
        return ("h", value[1]) if i in (0, -2) else ("c", value[1])
    if value[0] == "h":
        return select_state(value, 0, i, walker)
    return None


def flips(items) -> int:
    """How many times batch and time were swapped (x.transpose(0, 1)) along `items`."""
    return sum(tag == TRANSPOSE_ENTRY for tag, _ in items)


def batch_first(items, walker) -> bool | None:
    """Whether torch holds the sequence after `items` as (B, T, F), else (T, B, F): the layout of the last recurrent
    module (or pad_packed_sequence) there, swapped by each transpose since; None when it does not record it."""
    for at in range(len(items) - 1, -1, -1):
        tag, name = items[at]
        info = recurrent_info(walker.child(name)) if tag == "child" else None
        layout = name if tag == PADDED_ENTRY else info.batch_first if info is not None else "-"
        if layout != "-":
            return None if layout is None else layout != (flips(items[at + 1 :]) % 2 == 1)
    return None


def is_packed(items) -> bool:
    """Whether the data after `items` is a PackedSequence (packed, or a recurrent module's output from one)."""
    return bool(items) and items[-1][0] == PACKED_ENTRY


def check_layout(items, name: str, info: RecurrentInfo, walker) -> None:
    """A recurrent module reads the sequence after `items` along its own layout: torch would take the batch axis
    for time where that is not how the data is laid out there (batch_first on one module and not the next)."""
    arriving = None if is_packed(items) else batch_first(items, walker)  # a PackedSequence has no layout
    if arriving is None or info.batch_first is None or arriving == info.batch_first:
        return
    had, wants = ("(batch, time, features)", "time-first") if arriving else ("(time, batch, features)", "batch_first")
    raise Unfollowable(
        f"{name!r} is {wants} but gets the sequence as {had}: torch runs it over the batch axis as time; lstmrt runs "
        "every recurrent layer over each sequence's steps"
    )


def refuse_padded(items, what: str) -> None:
    """Reading over time a tensor pad_packed_sequence made: torch reads its zeros past each length."""
    if any(tag == PADDED_ENTRY for tag, _ in items):
        raise Unfollowable(
            f"{what} of a tensor pad_packed_sequence made: torch reads its zeros past each sequence's length "
            "(out[:, -1] is zeros for a shorter sequence, a mean divides by the padded length), where lstmrt reads "
            "each sequence's own steps; the final states h_n[-1] of the packed run are what lstmrt computes"
        )


def time_gone(items) -> str | None:
    """How the time axis of the data after `items` went (the last step taken, time pooled), or None: it is there."""
    return next((_GONE[tag] for tag, _ in items if tag in TIME_ENDS), None)


def _state(items, walker):
    return ("hc", items) if walker.recurrent_of(items).kind == "LSTM" else ("h", items)


def select_state(value, dim, i, walker):
    """h_n.select(dim, i): the last layer's final hidden state of one direction."""
    info = walker.recurrent_of(value[1])
    if dim != 0 or not isinstance(i, int) or not -info.states <= i < info.states:
        raise Unfollowable(f"index {i} of h_n on dimension {dim}, which is not a final state of the last layer")
    k = i % info.states
    if k // info.directions != info.layers - 1:
        raise Unfollowable(
            f"h_n[{i}] is the final state of layer {k // info.directions} of {info.layers}: lstmrt outputs the "
            "last layer's (h_n[-1], or h_n[-2] and h_n[-1] concatenated for both directions)"
        )
    direction = k % info.directions
    if info.directions == 1:
        return ("seq", value[1] + (LAST_STEP,))
    return ("hdir", value[1], direction)


def squeeze_state(value, dims, walker):
    """h_n.squeeze(0) / h_n.squeeze() of a one-layer, one-direction module: its only final state. squeeze() also
    drops a hidden size of 1 (torch_build._squeezed sees the size)."""
    info = walker.recurrent_of(value[1])
    if info.states != 1:
        raise Unfollowable(
            f"squeezing h_n of {info.states} states (layers x directions); lstmrt reads the last layer's, h_n[-1]"
        )
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else dims
    if len(dims) == 1 and isinstance(dims[0], int) and -3 <= dims[0] < 3 and dims[0] % 3 == 0:
        return ("seq", value[1] + (LAST_STEP,))  # h_n.squeeze(0) / squeeze(-3): the layer axis
    if dims == ():
        return ("seq", value[1] + (LAST_STEP, (SQUEEZE_ENTRY, ("squeeze", None))))
    raise Unfollowable(
        f"squeezing h_n on dimension {dims[0]!r}, which keeps its layer axis; lstmrt reads h_n.squeeze(0) or h_n[-1]"
    )


def concat_directions(parts, dim):
    """torch.cat((h_n[-2], h_n[-1]), dim=1): both directions' final states, as a Bidirectional layer outputs."""
    if len(parts) != 2 or not all(p[0] == "hdir" for p in parts) or parts[0][1] != parts[1][1]:
        return None
    if dim not in (1, -1):
        raise Unfollowable(f"the final states are concatenated on dimension {dim}, not the features")
    if (parts[0][2], parts[1][2]) != (0, 1):
        raise Unfollowable(
            "the final states are concatenated backward direction first; lstmrt's bidirectional output is "
            "forward first, torch.cat((h_n[-2], h_n[-1]), dim=1)"
        )
    return ("seq", parts[0][1] + (LAST_STEP,))


def sum_directions(values):
    """h_n[-2] + h_n[-1]: both directions' final states summed, as a Bidirectional layer with merge_mode "sum"
    outputs (the ("last_step", "sum") item); None for other values."""
    if len(values) != 2 or not all(v[0] == "hdir" for v in values) or values[0][1] != values[1][1]:
        return None
    if values[0][2] == values[1][2]:
        raise Unfollowable("a direction's final state is added to itself; lstmrt sums the two, h_n[-2] + h_n[-1]")
    return ("seq", values[0][1] + (SUM_LAST_STEP,))


def select_step(value, dim, i, walker):
    """out.select(dim, -1) on the time axis: each sequence's last step."""
    items = value[1]
    gone = time_gone(items)
    if gone:
        raise Unfollowable(f"indexing after {gone}")
    info = walker.recurrent_of(items, what="the time axis of the indexed sequence")
    refuse_padded(items, f"index {i} on dimension {dim}")
    time_axis = {True: 1, False: 0, None: None}[batch_first(items, walker)]
    if time_axis is None:
        raise Unfollowable("indexing a sequence whose recurrent module does not record batch_first")
    if dim != time_axis or i != -1:
        raise Unfollowable(
            f"index {i} on dimension {dim}, which is not the last step ([:, -1] with batch_first, [-1] without)"
        )
    return ("seq", items + (LAST_STEP if info.directions == 1 else SEQUENCE_LAST_STEP,))
