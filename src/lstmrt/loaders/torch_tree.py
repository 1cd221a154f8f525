"""What a PyTorch file holds, as an ordered list of `Unit`s (one per leaf module) in forward order where it is
known and in registration order where it is not. Sources: a state dict (names and shapes only), a module tree of
records (torch.save(model) or a TorchScript archive), and the `layers=` list that overrides the order."""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np

from .. import activations as acts
from ..errors import ArchitectureError, CorruptFileError, UnsupportedModelError
from .torch_layers import BATCH_NORM, NORMS
from .torch_live import _ACTIVATIONS, _NO_OPS
from .torch_pickle import Record

RECURRENT = ("LSTM", "GRU", "RNN")
CELLS = ("LSTMCell", "GRUCell", "RNNCell")
PRELU = "PReLU"  # a leaf with a weight: an activation or a PReLU layer, decided where the data's rank is known
PRELU_CALL = "prelu"  # in forward order: torch.prelu(x, self.<parameter>), a PRELU unit of the module's parameter
LEAVES = (*RECURRENT, *CELLS, "Linear", "Embedding", *NORMS, BATCH_NORM, PRELU, *_ACTIVATIONS, *_NO_OPS)
_CHAINS = ("Sequential",)  # containers whose forward is "apply the children in order"
_MANGLE = re.compile(r"\.___torch_mangle_\d+")
LAST_STEP_ENTRY = "last_step"  # in layers=: what out[:, -1] / h_n[-1] does in forward()
POOLING_ENTRIES = {"mean_over_time": "average", "max_over_time": "max"}  # out.mean(1), out.max(1)[0]: GlobalPooling
SQUEEZE_ENTRY = "squeeze"  # out.squeeze(-1) of a one-feature output: predict drops the axis (Model(squeeze_output=))
SHAPE_ENTRIES = (LAST_STEP_ENTRY, *POOLING_ENTRIES, SQUEEZE_ENTRY)  # layers= entries that are not modules/activations
# An earlier point of the flow that a later entry reads (ADD_SOURCE), and the entries reading it: a skip connection's
# sum, and softmax attention over time, whose scores are the data there and whose values that point (AttentionPooling)
ADD_SOURCE, ADD_ENTRY, ATTENTION_ENTRY = "add_source", "add", "attention_over_time"
SKIP_ENTRIES = (ADD_SOURCE, ADD_ENTRY, ATTENTION_ENTRY)
# TorchScript code: torch's ScalarType code of float32 (x.to(torch.float32), dtype=torch.float32), and the calls that
# change nothing in eval mode, which the walker follows as no-ops
TORCH_FLOAT32 = 6
NO_OP_CALLS = ("dropout", "feature_dropout", "alpha_dropout", "contiguous", "detach", "clone")
# forward() code: arithmetic of the data with a constant (x * c, x - self.mean), one Affine layer each; batch and
# time swapped (x.transpose(0, 1)), which lstmrt's batch-first data does not need; packing and padding a sequence
# (torchscript_packing), which lstmrt's lengths do
ARITH_ENTRY, TRANSPOSE_ENTRY, PACKED_ENTRY, PADDED_ENTRY = "arithmetic", "transpose", "packed", "padded"
ZERO_STATE_ENTRY = "zero_state"  # a tensor of zeros of the module, used as a recurrent module's initial state
ONE_FEATURE_ENTRY = "one_feature"  # x.unsqueeze(-1) of a (batch, time) input: one feature, which lstmrt takes as is
SKIP_IDS = itertools.count()  # pair each ADD_SOURCE with its entry: one counter for forward() code and layers=
TIME_ENDS = (LAST_STEP_ENTRY, *POOLING_ENTRIES, ATTENTION_ENTRY)  # leave one (B, F) vector per sequence: no time axis


@dataclasses.dataclass
class Unit:
    """One layer-to-be. kind: a torch.nn class name; None when only parameter names are known (state dicts);
    "activation" for a functional activation (`activation` holds its name); "last_step" where forward() takes each
    sequence's last step (out[:, -1], h_n[-1]; `shape_op` ("sequence",) where it is out[:, -1] of a bidirectional
    module's output, which is not both directions' final outputs), "mean_over_time" / "max_over_time" where it
    pools over the time axis (out.mean(1), out.max(1)[0]) — `reason` "layers=" when named there; "squeeze" where it
    squeezes or flattens the data (`shape_op` says how: torch_build._squeezed decides what that does); "add_source" /
    "add" where a skip
    connection reads an earlier point and adds it (`skip`: the point's id; for the add (id, start, end) of the
    features added, end None for all); "attention_over_time" where softmax attention over time pools that point's
    features with scores the data so far (`skip`: (id, start, end, whether forward() takes one score per step,
    whether it saw the recurrent modules' layout: else it took time as dim 1, which needs them batch_first));
    "PReLU" for an nn.PReLU, or for F.prelu with a parameter of a user-defined
    module (`reason` "F.prelu", `path` the parameter's); "arithmetic" where forward() computes with a constant
    (`shape_op`: (torchscript_arith.Arith,)); "unsupported" with `reason`.
    guessed_before: the order between the previous unit and this one is registration order, not known forward
    order (a state dict, or a user-defined module whose forward() lstmrt cannot see)."""

    path: str
    kind: str | None
    params: dict
    record: object = None
    activation: str | None = None
    reason: str = ""
    guessed_before: bool = False
    shape_op: tuple = ()
    skip: object = None

    @property
    def label(self) -> str:
        return repr(self.path) if self.path else "the root module"


class LiveRecord:
    """A live nn.Module seen through the record interface (qualname, attrs with arrays), so that prefix=,
    layers= and user-defined containers work on it as on a torch.save(model) file. `module` is the module."""

    def __init__(self, module):
        self.module = module
        self.qualname = f"{type(module).__module__}.{type(module).__name__}"
        self.attrs = dict(vars(module))
        for group in ("_parameters", "_buffers"):
            self.attrs[group] = {
                k: v.detach().cpu().float().numpy() for k, v in getattr(module, group).items() if v is not None
            }
        self.attrs["_modules"] = {k: LiveRecord(v) for k, v in module._modules.items() if v is not None}


def class_name(record) -> tuple:
    """(short class name, whether it is a torch.nn class) of a module record; TorchScript names are unmangled."""
    qual = record.qualname
    if qual.startswith("__torch__."):
        qual = _MANGLE.sub("", qual[len("__torch__.") :])
    return qual.rsplit(".", 1)[-1], qual.startswith("torch.nn.")


def is_array(value) -> bool:
    return isinstance(value, np.ndarray)


def _entries(value) -> dict:
    """A name -> value dict of a pickled module's __dict__ (anything else a damaged file holds there: empty)."""
    return {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, dict) else {}


def module_parts(record) -> tuple:
    """(parameters and buffers, child modules) of a module record, both in registration order."""
    attrs = record.attrs
    if "_modules" in attrs or "_parameters" in attrs:  # torch.save(model): the nn.Module __dict__
        params = {k: v for d in ("_parameters", "_buffers") for k, v in _entries(attrs.get(d)).items() if v is not None}
        children = {k: v for k, v in _entries(attrs.get("_modules")).items() if isinstance(v, (Record, LiveRecord))}
    else:  # TorchScript: parameters, buffers and submodules are plain attributes
        params = {k: v for k, v in _entries(attrs).items() if is_array(v)}
        children = {k: v for k, v in _entries(attrs).items() if isinstance(v, (Record, LiveRecord))}
    return params, children


def is_module(value) -> bool:
    if isinstance(value, LiveRecord):
        return True
    if not isinstance(value, Record):
        return False
    attrs = value.attrs
    return "_modules" in attrs or "_parameters" in attrs or value.qualname.startswith("__torch__.")


def submodule(record, path: str):
    """The module at dotted `path` under `record`; KeyError listing the children where it stops."""
    node = record
    for part in path.split("."):
        children = module_parts(node)[1]
        if part not in children:
            raise KeyError(f"no submodule {part!r} in {path!r}; children there: {', '.join(children) or '(none)'}")
        node = children[part]
    return node


def units_from_state_dict(state: dict) -> list:
    """Group `a.b.weight_ih_l0`-style names by module path, in the dict's (= registration) order."""
    groups: dict = {}
    for name, value in state.items():
        path, _, local = name.rpartition(".")
        groups.setdefault(path, {})[local] = value
    return [Unit(path, None, params, guessed_before=True) for path, params in groups.items()]


_MAX_DEPTH = 64  # module nesting; torch's own models stay under 10
_MAX_MODULES = 100_000  # modules visited, counting a shared module each time it is reached


def units_from_module(record, path: str = "", forward_order=None, _walk=None, *, unread=None) -> list:
    """Leaf units of a module tree. `forward_order(record)` may return the order a user-defined container's
    forward() applies its children (TorchScript code), as ("child", name) / ("activation", name) /
    (PRELU_CALL, parameter name) / (one of SHAPE_ENTRIES, None), or None.
    A file's tree may share modules (weight tying) but not contain itself, nest past _MAX_DEPTH, or, through
    sharing, expand past _MAX_MODULES visits. `unread`, a list, receives the class names of the user-defined
    modules whose forward() was not read: their children are in registration order, their functional ops unseen."""
    walk = _walk if _walk is not None else {"path": [], "visits": 0, "unread": unread if unread is not None else []}
    if any(r is record for r in walk["path"]):
        raise CorruptFileError(f"module {path!r} contains itself: the module tree has a cycle")
    walk["visits"] += 1
    if len(walk["path"]) >= _MAX_DEPTH or walk["visits"] > _MAX_MODULES:
        raise UnsupportedModelError(
            f"the module tree nests deeper than {_MAX_DEPTH} levels or reaches more than "
            f"{_MAX_MODULES:,} modules (at {path!r})"
        )
    walk["path"].append(record)
    try:
        return _units_from_module(record, path, forward_order, walk)
    finally:
        walk["path"].pop()


def _units_from_module(record, path, forward_order, walk) -> list:
    name, torch_nn = class_name(record)
    params, children = module_parts(record)
    if torch_nn and name in LEAVES:
        return [Unit(path, name, params, record)]
    if torch_nn and name == "Flatten":  # x.flatten(start_dim, end_dim): torch_build._squeezed decides at the sizes
        how = ("flatten", record.attrs.get("start_dim", 1), record.attrs.get("end_dim", -1))
        return [Unit(path, SQUEEZE_ENTRY, {}, record, shape_op=how)]
    where = f"module {path!r}" if path else "the root module"
    if torch_nn and name not in ("Sequential", "ModuleList", "ModuleDict"):
        return [Unit(path, "unsupported", params, record, reason=f"{where} is a torch.nn.{name}")]
    order, unfollowed = (
        _read_forward(record, forward_order, params) if not (torch_nn and name in _CHAINS) else (None, "")
    )
    if set(params) - _tensors_used(order or ()):
        return [
            Unit(
                path,
                "unsupported",
                params,
                record,
                reason=f"{where} ({name}) holds parameters of its own ({', '.join(params)}), used by its "
                f"forward() in a way lstmrt cannot see{f' ({unfollowed})' if unfollowed else ''}",
            )
        ]

    def join(child):
        return f"{path}.{child}" if path else child

    if order is None and not torch_nn:
        walk["unread"].append(name)
    if order is not None:
        units = []
        for tag, item in order:
            if tag == "child":
                child = children[item] if item in children else submodule(record, item)  # "layers.0": a loop
                units += units_from_module(child, join(item), forward_order, walk)
            elif tag == SQUEEZE_ENTRY:
                units.append(Unit(path, tag, {}, shape_op=item))
            elif tag in SKIP_ENTRIES:
                units.append(Unit(path, tag, {}, skip=item))
            elif tag in SHAPE_ENTRIES:
                units.append(Unit(path, tag, {}, shape_op=(item,) if item else ()))
            elif tag == PRELU_CALL:
                units.append(Unit(join(item), PRELU, {"weight": params[item]}, reason="F.prelu"))
            elif tag == ARITH_ENTRY:
                units.append(Unit(path, tag, {}, shape_op=(item,)))
            elif tag in (TRANSPOSE_ENTRY, PACKED_ENTRY, PADDED_ENTRY, ZERO_STATE_ENTRY):
                continue  # the walker checked that the layers read the data as torch lays it out
            elif tag == ONE_FEATURE_ENTRY:
                units.append(Unit(path, tag, {}))
            else:
                units.append(Unit(path, "activation", {}, activation=item))
        return units
    units = []
    for child_name, child in children.items():
        child_units = units_from_module(child, join(child_name), forward_order, walk)
        if child_units and units and not (torch_nn and name in _CHAINS):
            child_units[0] = dataclasses.replace(child_units[0], guessed_before=True)
        units += child_units
    return units


def _tensors_used(order) -> set:
    """The module's own tensors its forward() uses where lstmrt follows it: torch.prelu's weight, arithmetic's
    constants."""
    used = {item for tag, item in order if tag in (PRELU_CALL, ZERO_STATE_ENTRY)}
    return used.union(*(item.operand.names for tag, item in order if tag == ARITH_ENTRY))


def _read_forward(record, forward_order, params) -> tuple:
    """(forward_order(record) or None, why its forward() could not be followed). A module holding parameters of
    its own is read only for the uses of them lstmrt follows, torch.prelu's weight and arithmetic: where its
    forward() cannot be followed, the parameters say more, with the code's reason."""
    if forward_order is None:
        return None, ""
    try:
        return forward_order(record), ""
    except ArchitectureError as exc:
        if params:
            return None, getattr(exc, "unfollowed", "")
        raise


def activation_name(entry: str) -> str | None:
    """The lstmrt activation named by a layers= entry ("relu", "ReLU", "gelu_tanh", "leaky_relu(0.01)"), or None;
    ArchitectureError for a parameter lstmrt cannot take, or a bare "leaky_relu", whose slope would differ from
    torch's."""
    if entry in _ACTIVATIONS:
        return _ACTIVATIONS[entry]
    try:
        name = acts.canonical(entry, where=f"layers: {entry!r}")
    except ValueError as exc:
        key = entry.split("(", 1)[0].strip().lower()
        if "(" in entry and acts.ALIASES.get(key, key) in acts.NAMES:
            raise ArchitectureError(str(exc)) from None
        return None
    if name == "leaky_relu" and "(" not in entry:  # lstmrt's bare name has Keras's slope, not torch's
        raise ArchitectureError(
            f"layers: {entry!r} is lstmrt's leaky_relu with Keras's slope 0.2, torch's default slope is 0.01: "
            "write the slope, 'leaky_relu(0.01)' (or the class name, 'LeakyReLU')"
        )
    return name


def _listed(names) -> str:
    return ", ".join(map(repr, names[:-1])) + f" or {names[-1]!r}"


_NAMED_PRELU = re.compile(r"prelu\(\s*(?P<path>[^()]*?)\s*\)", re.IGNORECASE)  # "PReLU(act)" in layers=
_SKIP = re.compile(r"\+(?P<point>[^\[\]]+)(?:\[(?P<start>-?\d*):(?P<end>-?\d*)\])?\Z")  # "+input[0:1]", "+rec"
# "attention(lstm)", "attention(input[0:4])": softmax attention over time, its values that point
_ATTENTION = re.compile(
    r"attention\(\s*(?P<point>[^\[\]()]+?)\s*(?:\[(?P<start>-?\d*):(?P<end>-?\d*)\])?\s*\)\Z", re.IGNORECASE
)


def _point_units(entry: str, match, chosen: list, kind: str) -> None:
    """An entry of layers= reading an earlier point: "+input" / "+<name>" (kind ADD_ENTRY) adds the model input or
    the data after the last entry named so before it (a module, an activation, or a skip connection: "++tanh" adds
    the sum "+tanh" made), whole or its features [start:end]; "attention(<name>)" (ATTENTION_ENTRY) pools that
    point over time with softmax attention, the data so far its scores. The ADD_SOURCE goes where that point is in
    `chosen`."""
    point = match["point"]
    if point == "input":
        where = 0
    else:
        named = [i for i, u in enumerate(chosen) if _under(u.path, point)]
        if not named:
            raise ArchitectureError(
                f"layers: {entry!r} {'adds' if kind == ADD_ENTRY else 'attends to'} the output of {point!r}, which "
                "is not an entry named before it (or 'input', the model input)"
            )
        where = named[-1] + 1
    start, end = (int(b) if b not in (None, "") else None for b in (match["start"], match["end"]))
    ident = next(SKIP_IDS)
    chosen.insert(where, Unit(entry, ADD_SOURCE, {}, reason="layers=", skip=ident))
    # an attention's scores: as many as torch_build finds; its time axis: lstmrt's, batch-first
    read = (ident, start or 0, end) if kind == ADD_ENTRY else (ident, start or 0, end, False, True)
    chosen.append(Unit(entry, kind, {}, reason="layers=", skip=read))


def _under(path: str, entry: str) -> bool:
    return path == entry or path.startswith(entry + ".")


def _use(unit, entry: str, used: dict) -> None:
    if id(unit) in used:
        raise ArchitectureError(f"layers: module {unit.path!r} is named twice (by {used[id(unit)]!r} and {entry!r})")
    used[id(unit)] = entry


def _named_prelu(entry: str, path: str, units: list, used: dict) -> Unit:
    """The unit of "PReLU(<module>)" in layers=: the module's one parameter, weight, is an nn.PReLU's slopes. A state
    dict does not record the class of a lone 1-D weight (a normalisation layer's scale has the same), so the user
    says it; build_model then reads it where layers= puts it, on a sequence or, after "last_step", on (B, F)."""
    found = [u for u in units if u.path == path and u.kind != "activation"]
    if len(found) != 1 or found[0].kind not in (None, PRELU) or set(found[0].params) != {"weight"}:
        what = f"module {path!r} ({found[0].kind or ', '.join(found[0].params)})" if found else f"no module {path!r}"
        raise ArchitectureError(
            f"layers: {entry!r} names {what}; PReLU(<module>) names a module whose one parameter, weight, holds an "
            "nn.PReLU's slopes"
        )
    _use(found[0], entry, used)
    return dataclasses.replace(found[0], kind=PRELU, guessed_before=False)


def _next(before, after) -> bool:
    """Whether module `after` directly follows `before` in an nn.Sequential (head.0, head.1): nothing between."""
    a, b = before.path.rsplit(".", 1), after.path.rsplit(".", 1)
    return len(a) == len(b) == 2 and a[0] == b[0] and a[1].isdigit() and b[1].isdigit() and int(b[1]) == int(a[1]) + 1


def select_layers(units: list, layers, *, records_activations: bool = True) -> list:
    """The units named by `layers` (module paths, a container's path standing for all its units), activation
    names, the SHAPE_ENTRIES, skip connections ("+input[0:1]", "+<module>"), attention pools ("attention(<module>)")
    and "PReLU(<module>)", in that order.
    Every unit with parameters must be used exactly once. records_activations=False (a state dict): a container's
    units after its first keep guessed_before unless they follow each other in an nn.Sequential (head.0, head.1), since
    what sits between them (an nn.GELU at head.1 between head.0 and head.2) is not in the file: build_model then
    refuses two nn.Linear meeting there rather than join them without it."""
    if isinstance(layers, str) or not all(isinstance(e, str) for e in layers):
        raise TypeError("layers must be a list of module names and activation names (strings)")
    chosen, used = [], {}
    for entry in layers:
        skip, attention = _SKIP.match(entry), _ATTENTION.match(entry)
        if skip or attention:
            _point_units(entry, skip or attention, chosen, ADD_ENTRY if skip else ATTENTION_ENTRY)
            continue
        matched = [u for u in units if u.kind != "activation" and _under(u.path, entry)]
        if matched:
            for u in matched:
                _use(u, entry, used)
            chosen += [
                dataclasses.replace(
                    u, guessed_before=k > 0 and not records_activations and not _next(matched[k - 1], u)
                )
                for k, u in enumerate(matched)
            ]
            continue
        prelu = _NAMED_PRELU.fullmatch(entry)
        if prelu:
            chosen.append(_named_prelu(entry, prelu["path"], units, used))
            continue
        if entry in SHAPE_ENTRIES:  # "squeeze" in layers=: the one feature's axis dropped, as .view(-1) drops it
            chosen.append(
                Unit(entry, entry, {}, reason="layers=", shape_op=("layers",) if entry == SQUEEZE_ENTRY else ())
            )
            continue
        if entry in ("Dropout", "AlphaDropout", "dropout"):  # a state dict has no dropout: naming one is no change
            continue
        act = activation_name(entry)
        if act is None:
            modules = ", ".join(repr(u.path) for u in units if u.kind != "activation") or "(none)"
            raise ArchitectureError(
                f"layers: {entry!r} is neither a module in the file (modules: {modules}), an "
                f"activation (supported: {', '.join(acts.NAMES)}; a parameter in brackets, 'leaky_relu(0.01)'), a "
                f"skip connection ('+input', '+input[0:1]', '+<module>'), an attention pool over time whose values "
                f"are the input or a module's output ('attention(input)', 'attention(<module>)'), an nn.PReLU "
                f"('PReLU(<module>)') nor "
                f"{_listed(SHAPE_ENTRIES)}"
            )
        chosen.append(Unit(entry, "activation", {}, activation=act, reason="layers="))
    left = [u.path for u in units if u.params and id(u) not in used]
    if left:
        raise ArchitectureError(
            f"layers does not use the parameters of module(s) {', '.join(map(repr, left))}: list "
            "them, or use prefix= to load only part of the file"
        )
    return chosen
