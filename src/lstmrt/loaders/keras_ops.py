"""Keras ops on a sequence's time axis in a functional model: each sequence's last step (`h[:, -1]`) and the mean
or max over time (`keras.ops.mean(h, axis=1)`, `tf.reduce_max(h, axis=1)`). Keras 3 saves them as GetItem, Mean
and Max nodes; tf_keras as SlicingOpLambda / TFOpLambda layers wrapping a TensorFlow function. lstmrt runs the last
step as the model's last output (Model(return_sequences=False), which also takes step T-1 whatever the mask) and
the reductions as a GlobalPooling. Any other form of these nodes is refused naming it, and so is a form whose
answer would differ from Keras's (Keras ops ignore the mask; lstmrt's average skips masked steps).
"""

from __future__ import annotations

from ..layers import GlobalPooling
from .keras_layers import fail

# Keras 3 ops nodes read here, and tf_keras' TensorFlow functions as the same Keras 3 names. Sum and Min are listed
# only to be refused saying what lstmrt pools instead.
NODES = ("GetItem", "Mean", "Max", "Sum", "Min")
TF_FUNCTIONS = {
    "__operators__.getitem": "GetItem",
    "math.reduce_mean": "Mean",
    "math.reduce_max": "Max",
    "math.reduce_sum": "Sum",
    "math.reduce_min": "Min",
}
POOLS = {"Mean": "average", "Max": "max"}
_ALL = ("slice", None, None, None)  # `:`, a whole axis
_LAST_STEP = (_ALL, ("index", -1), _ALL)  # h[:, -1] of (batch, time, features)
_TIME_AXES = (1, -2)  # of (batch, time, features)
_READS = "lstmrt reads h[:, -1] (each sequence's last step, all its features) and the mean or max over time"


def arguments(op: str, config: dict, constants: list, kwargs: dict, tf_function: bool) -> dict:
    """The op's parameters, as Keras 3 names them: {"key": ...} for GetItem, {"axis", "keepdims", ...} for a
    reduction. Keras 3 keeps a reduction's in its config and GetItem's key in the call (`constants`, the non-tensor
    call arguments); tf_keras keeps them all in the call's kwargs (the key as slice_spec)."""
    if tf_function:
        args = {k: v for k, v in kwargs.items() if k != "name"}
        if op == "GetItem" and "slice_spec" in args:
            args["key"] = args.pop("slice_spec")
        return args
    if op == "GetItem":
        return {"key": constants[0]} if len(constants) == 1 else {"constants": constants}
    return {k: v for k, v in config.items() if k != "name"}


def over_time(entry, features, *, final: bool, reversed_seq: bool, masked: bool, token_ids: bool = False):
    """The op node `entry` (entry.op = (op, arguments)) as lstmrt runs it: None for the last step (the model then
    returns each sequence's last output), else a GlobalPooling. final: time is already gone; reversed_seq: the
    sequence is in go_backwards order; masked: the model has a Keras mask; token_ids: the data is still the
    (batch, time) ids of a token model. UnsupportedModelError naming the node for every other form and wherever the
    answer would differ from Keras's."""
    op, args = entry.op
    if final:
        raise fail(entry, "follows a layer that returned its last step only: there is no time axis left to read")
    if token_ids:  # (batch, time), not the (batch, time, features) the indices and axes are read for
        raise fail(entry, "reads the token ids before the Embedding: not supported; apply it to the Embedding's output")
    kind = _last_step(entry, args) if op == "GetItem" else _pool(entry, op, args)
    if kind == "last" and reversed_seq:
        raise fail(
            entry,
            "reads the last step of a time-reversed sequence (after a go_backwards layer with return_sequences=True), "
            "which is step 0 in lstmrt's order: not supported; give that layer return_sequences=False instead",
        )
    if kind == "average" and masked:
        raise fail(
            entry,
            "averages over time in a masked model: Keras's mean ignores the mask and averages the masked steps too, "
            "while lstmrt's average skips them (as GlobalAveragePooling1D does); use GlobalAveragePooling1D",
        )
    if kind == "last":
        return None
    if features is None:
        raise fail(entry, "the number of features it pools is not known (no input shape or layer before it)")
    return GlobalPooling(int(features), kind)


def _last_step(entry, args: dict) -> str:
    extra = sorted(set(args) - {"key"})
    if extra:
        raise fail(entry, f"is called with {', '.join(extra)}: not supported; {_READS}")
    items = _items(args["key"])
    axes = _axes(items)
    if axes == _LAST_STEP:
        return "last"
    shown = ", ".join(_show(item) for item in items) if items is not None else repr(args["key"])
    raise fail(entry, f"h[{shown}] is not supported ({_why(axes)}); {_READS}")


def _items(key):
    """The index key as a list of ("slice", start, stop, step), ("index", i), "..." and None (a new axis); None
    for a key of anything else (a tensor, a float, a list of indices)."""
    items = []
    for k in key if isinstance(key, (list, tuple)) else [key]:
        if isinstance(k, dict) and k.get("class_name") == "__slice__":
            k = k.get("config") or {}
        if isinstance(k, slice):
            k = {"start": k.start, "stop": k.stop, "step": k.step}
        if k is Ellipsis or (isinstance(k, dict) and k.get("class_name") == "__ellipsis__"):
            items.append("...")
        elif isinstance(k, dict) and set(k) == {"start", "stop", "step"}:
            if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in k.values()):
                return None
            items.append(("slice", k["start"], k["stop"], k["step"]))
        elif isinstance(k, int) and not isinstance(k, bool):
            items.append(("index", k))
        elif k is None:
            items.append(None)
        else:
            return None
    return items


def _axes(items):
    """What the key takes on each axis of a (batch, time, features) sequence, or None (a new axis, several
    ellipses, more items than axes)."""
    if items is None or None in items or items.count("...") > 1:
        return None
    if "..." in items:
        at = items.index("...")
        items = items[:at] + [_ALL] * (3 - len(items) + 1) + items[at + 1 :]
    if len(items) > 3:
        return None
    return tuple(items + [_ALL] * (3 - len(items)))


def _why(axes) -> str:
    if axes is None:
        return "not an index of a (batch, time, features) sequence"
    batch, time, feature = axes
    reasons = ["it indexes the batch axis"] if batch != _ALL else []
    if time == _ALL:
        reasons.append("it keeps every step")
    elif time[0] == "slice":
        reasons.append("it keeps a time axis")
    elif time[1] == 0:
        reasons.append("step 0 is each sequence's first step")
    elif time[1] != -1:
        reasons.append(f"step {time[1]} is a fixed step, where lstmrt reads the last step of any length")
    if feature != _ALL:
        reasons.append("it selects features")
    return ", ".join(reasons)


def _show(item) -> str:
    if item is None:
        return "None"
    if item == "...":
        return "..."
    if item[0] == "index":
        return str(item[1])
    start, stop, step = ("" if v is None else str(v) for v in item[1:])
    return f"{start}:{stop}" + (f":{step}" if step else "")


def _pool(entry, op: str, args: dict) -> str:
    name = op.lower()
    extra = sorted(set(args) - {"axis", "keepdims", "initial"})
    if extra:
        raise fail(entry, f"the {name} is called with {', '.join(extra)}: not supported; {_READS}")
    axis = args.get("axis")
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    over_time = len(axes) == 1 and type(axes[0]) is int and axes[0] in _TIME_AXES
    if op not in POOLS or not over_time or args.get("keepdims") or args.get("initial") is not None:
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise fail(
            entry,
            f"the {name}({shown}) is not supported; lstmrt pools the mean or the max over the time axis (axis=1 or "
            "-2 of (batch, time, features), keepdims=False), as GlobalAveragePooling1D and GlobalMaxPooling1D do",
        )
    return POOLS[op]
