"""Units (see torch_tree) to lstmrt layer specs and a Model. Parameter names and shapes decide the architecture
when no class is known (state dicts, safetensors): `weight_ih_l{k}[_reverse]` is an nn.LSTM/GRU/RNN stack,
`weight_ih` without suffix a cell, `weight` + `bias` an nn.Linear, a lone 2-D `weight` an nn.Embedding (first
layer) or a bias-free nn.Linear. Activations are invisible in names: a state dict yields none unless `layers=`
names them, and two nn.Linear layers meeting in guessed order are an error asking for `layers=`."""

from __future__ import annotations

import copy
import itertools
import re

from ..errors import ArchitectureError, ModelTooLargeError, UnsupportedModelError
from ..layers import (
    Activation,
    Add,
    Affine,
    AttentionPooling,
    Bidirectional,
    Dense,
    Embedding,
    GlobalPooling,
    is_recurrent,
)
from ..model import Model
from . import torch_layers
from .torchscript_arith import affine_of
from .torch_live import _ACTIVATIONS, _NO_OPS, _activations
from .torch_tree import (
    ADD_ENTRY,
    ADD_SOURCE,
    ARITH_ENTRY,
    ATTENTION_ENTRY,
    CELLS,
    LAST_STEP_ENTRY,
    ONE_FEATURE_ENTRY,
    POOLING_ENTRIES,
    PRELU,
    RECURRENT,
    SHAPE_ENTRIES,
    SKIP_ENTRIES,
    SQUEEZE_ENTRY,
    TIME_ENDS,
    LiveRecord,
)

_STACK_NAME = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?\Z")
_CELL_NAMES = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
_RATIO_KIND = {4: "LSTM", 3: "GRU", 1: "RNN"}
SUPPORTED = (
    "nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell, nn.Linear, nn.Embedding, nn.LayerNorm, nn.RMSNorm, "
    "nn.BatchNorm1d and nn.Flatten (after the last step), nn.PReLU, "
    "nn.Sequential/ModuleList of those, activations (" + ", ".join(_ACTIVATIONS) + "), " + ", ".join(_NO_OPS)
)
_MAX_PERMUTED = 7  # orders tried for an unordered file (safetensors): 7! = 5040 cheap size checks


def _describe(params: dict) -> str:
    return ", ".join(f"{k} {tuple(getattr(v, 'shape', ()))}" for k, v in params.items())


def _recurrent_kind(unit, params: dict, suffix: str) -> str:
    """LSTM, GRU or RNN from shapes: weight_ih rows are gates * H, weight_hh is (gates * H, H) (or (4H, P) with
    a projection weight_hr (P, H)). weight_hh's columns settle cases like 12 rows (LSTM H=3 vs GRU H=4)."""
    w_ih, w_hh = params.get(f"weight_ih{suffix}"), params.get(f"weight_hh{suffix}")
    if f"weight_hr{suffix}" in params:
        return "LSTM"
    if w_ih is None or w_hh is None or w_ih.ndim != 2 or w_hh.ndim != 2 or w_hh.shape[1] == 0:
        raise ArchitectureError(f"module {unit.label}: recurrent parameters are incomplete ({_describe(params)})")
    rows, hidden = w_hh.shape
    kind = _RATIO_KIND.get(rows // hidden) if rows % hidden == 0 and rows == w_ih.shape[0] else None
    if kind is None:
        raise ArchitectureError(
            f"module {unit.label}: weight_ih {w_ih.shape} and weight_hh {w_hh.shape} fit no "
            "LSTM (4H rows), GRU (3H) or RNN (H) with hidden size H = weight_hh columns"
        )
    return kind


def _stack_layout(unit, params: dict) -> tuple:
    layers, reverse = set(), False
    for name in params:
        m = _STACK_NAME.match(name)
        if m is None:
            raise ArchitectureError(
                f"module {unit.label}: unexpected parameter {name!r} next to a recurrent "
                f"stack's weight_ih_l0 ({_describe(params)}); supported: {SUPPORTED}"
            )
        layers.add(int(m.group(2)))
        reverse |= bool(m.group(3))
    if layers != set(range(len(layers))):
        raise ArchitectureError(f"module {unit.label}: recurrent layers {sorted(layers)} are not numbered 0..n-1")
    return len(layers), reverse


def _option(unit, name, default=None):
    return unit.record.attrs.get(name, default) if unit.record is not None else default


def _recurrent(unit, kind: str | None) -> list:
    params = unit.params
    num_layers, bidirectional = _stack_layout(unit, params)
    found = _recurrent_kind(unit, params, "_l0")
    if kind is not None and kind != found:
        raise ArchitectureError(
            f"module {unit.label} is an nn.{kind} but its parameter shapes are those of an "
            f"nn.{found} ({_describe(params)})"
        )
    expected = _option(unit, "num_layers", num_layers)
    if expected != num_layers or _option(unit, "bidirectional", bidirectional) != bidirectional:
        raise ArchitectureError(
            f"module {unit.label}: num_layers={expected}, bidirectional="
            f"{_option(unit, 'bidirectional')} disagree with its parameters {list(params)}"
        )
    state = _option(unit, "initial_state")
    if state is not None:  # recorded by TorchScript's reader from a traced module's code
        raise ArchitectureError(
            f"module {unit.label} starts from the initial state {state}, a tensor captured when it was traced: "
            "lstmrt's streams start from zeros (trace a forward that passes no state, then set stream.state)"
        )
    return torch_layers.recurrent_layers(
        found, params, num_layers=num_layers, bidirectional=bidirectional, nonlinearity=_nonlinearity(unit)
    )


def _nonlinearity(unit) -> str:
    # From a state dict nn.RNN(nonlinearity='relu') cannot be told from tanh: torch's default is assumed
    # (documented); module records and TorchScript carry it.
    value = _option(unit, "nonlinearity")
    if value is None and _option(unit, "mode") == "RNN_RELU":
        value = "relu"
    return value or "tanh"


def _cell(unit, kind: str | None) -> list:
    params = unit.params
    extra = set(params) - _CELL_NAMES
    if extra or "weight_ih" not in params:
        raise ArchitectureError(
            f"module {unit.label}: unexpected parameters for a recurrent cell "
            f"({_describe(params)}); supported: {SUPPORTED}"
        )
    found = _recurrent_kind(unit, params, "")
    if kind is not None and kind[:-4] != found:
        raise ArchitectureError(
            f"module {unit.label} is an nn.{kind} but its parameter shapes are those of an "
            f"nn.{found}Cell ({_describe(params)})"
        )
    return [torch_layers.cell_layer(found, params, nonlinearity=_nonlinearity(unit))]


def _variants(unit, two_d: bool = False) -> list:
    """The spec lists this unit may stand for: one, or two for a lone 2-D weight of unknown class
    (nn.Embedding vs nn.Linear(bias=False)), which the neighbours' sizes then decide."""
    kind, params = unit.kind, unit.params
    if kind == "unsupported":
        raise ArchitectureError(
            f"{unit.reason}, which lstmrt does not support; supported: {SUPPORTED}. Pass "
            "layers=[...] to pick the modules that form the network"
        )
    if kind == "activation":
        return [[Activation(unit.activation)]]
    if kind in SHAPE_ENTRIES or kind in SKIP_ENTRIES or kind == ARITH_ENTRY:  # placed by _final_step / _squeezed
        return [[]]
    if kind in _NO_OPS:
        return [[]]
    if kind in _ACTIVATIONS:
        try:
            return [
                _activations(
                    getattr(unit.record, "module", None) if isinstance(unit.record, LiveRecord) else unit.record,
                    two_d=two_d,
                )
            ]
        except AttributeError as exc:
            raise ArchitectureError(f"module {unit.label} (nn.{kind}): option missing from the file ({exc})") from None
        except ValueError as exc:
            raise ArchitectureError(f"module {unit.label}: {exc}") from None
    if kind == torch_layers.BATCH_NORM:
        return [[_batch_norm(unit, two_d)]]
    if kind is None and "running_mean" in params:
        raise ArchitectureError(
            f"module {unit.label} ({_describe(params)}) is an nn.BatchNorm1d, whose epsilon a state dict does not "
            "record: load the module saved whole, torch.save(model), or as TorchScript"
        )
    for name, value in params.items():
        if getattr(value, "dtype", None) is None or value.dtype.kind != "f":
            raise ArchitectureError(
                f"module {unit.label}: parameter {name!r} has dtype "
                f"{getattr(value, 'dtype', type(value).__name__)}; supported: floating point "
                "(float32, float16, bfloat16, float64)"
            )
    if kind == PRELU:
        return [[_prelu(unit, two_d)]]
    names = set(params)
    if kind in torch_layers.NORMS:
        default_eps = None if kind == "RMSNorm" else 1e-5
        shape = _option(unit, "normalized_shape")
        if shape is None:
            raise ArchitectureError(f"module {unit.label} (nn.{kind}): option normalized_shape missing from the file")
        return [[torch_layers.norm_layer(kind, params, normalized_shape=shape, eps=_option(unit, "eps", default_eps))]]
    if kind in RECURRENT or (kind is None and "weight_ih_l0" in names):
        return [_recurrent(unit, kind)]
    if kind in CELLS or (kind is None and "weight_ih" in names):
        return [_cell(unit, kind)]
    weight = params.get("weight")
    if kind in ("Embedding", "Linear") and (weight is None or weight.ndim != 2 or set(params) - {"weight", "bias"}):
        raise ArchitectureError(
            f"module {unit.label} is an nn.{kind} without a 2-D weight, or with parameters "
            f"besides weight and bias ({_describe(params)})"
        )
    if kind == "Embedding" or (kind is None and names == {"weight"} and weight.ndim == 2):
        if _option(unit, "max_norm") is not None:
            raise ArchitectureError(
                f"module {unit.label}: nn.Embedding(max_norm=...) renormalizes rows at lookup; not supported"
            )
        embedding = [torch_layers.embedding_layer(params)]
        return [embedding] if kind == "Embedding" else [embedding, [Dense(weight)]]
    if kind == "Linear" or (kind is None and names <= {"weight", "bias"} and weight is not None and weight.ndim == 2):
        return [[torch_layers.linear_layer(params)]]
    what = f"nn.{kind}" if kind else "no layer lstmrt knows"
    if kind is None and weight is not None and weight.ndim == 1:
        what += (
            " (a 1-D weight may be a normalisation layer, such as nn.LayerNorm, whose kind and epsilon a state dict "
            "does not record: load the module saved whole, torch.save(model), or as TorchScript; or an nn.PReLU's "
            f"slopes: name it 'PReLU({unit.path})' in layers=)"
        )
    raise ArchitectureError(f"module {unit.label} ({_describe(params)}) is {what}; supported: {SUPPORTED}")


def _prelu(unit, two_d: bool):
    """nn.PReLU, or F.prelu with a parameter of a user-defined module, on the data there: (B, F) when two_d."""
    weight = unit.params.get("weight")
    if weight is None:
        raise ArchitectureError(f"module {unit.label} (nn.PReLU) has no weight ({_describe(unit.params)})")
    where, name = f"module {unit.label}", ""
    if unit.reason == "F.prelu":
        attr = unit.path.rpartition(".")[2]
        where, name = f"parameter {unit.label}", f"F.prelu(x, self.{attr}) with {weight.size} slopes"
    hint = " (a file without forward() code says where with layers=[..., 'last_step', ...])"
    try:
        return torch_layers.prelu_layer(weight, two_d=two_d, name=name, hint=hint)
    except ValueError as exc:
        raise ArchitectureError(f"{where}: {exc}") from None


def _batch_norm(unit, two_d: bool):
    """nn.BatchNorm1d with its running statistics (eval mode), on (B, F) data: an Affine. On a sequence (B, T, F)
    torch normalizes dim 1, the time axis (with batch_first), so it is no per-feature layer there."""
    where = f"module {unit.label} (nn.BatchNorm1d)"
    if not two_d:
        raise ArchitectureError(
            f"{where} is applied to a sequence: on (B, T, F) torch normalizes dim 1 (time, with batch_first), not "
            "the features; lstmrt reads nn.BatchNorm1d on (B, F), after the last step or pooling over time (a "
            "file without forward() code says where with layers=[..., 'last_step', ...])"
        )
    if _option(unit, "track_running_stats") is False or not {"running_mean", "running_var"} <= set(unit.params):
        raise ArchitectureError(
            f"{where} has no running statistics (track_running_stats=False): it normalizes with "
            "each batch's own, which no per-feature layer computes"
        )
    if _option(unit, "batch_statistics") is True:
        raise ArchitectureError(
            f"{where} was traced in training mode, using each batch's statistics: trace it after model.eval()"
        )
    eps = _option(unit, "eps")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ArchitectureError(f"{where}: option eps missing from the file or not a number ({eps!r})")
    try:
        return torch_layers.batch_norm_layer(unit.params, eps=eps)
    except ValueError as exc:
        raise ArchitectureError(f"module {unit.label}: {exc}") from None


def _chain_problem(units, specs_per_unit, *, linear_pairs: bool = True) -> str | None:
    """Why this order/choice cannot be the network, or None. The first message is the most useful one.
    linear_pairs=False: only whether the sizes chain (two nn.Linear meeting in a guessed order still can)."""
    size, source, prev = None, None, None  # source: the unit whose output is `size`
    points, inputs = {}, None  # the size at each ADD_SOURCE (None: the input's, `inputs` once a layer says it)
    for unit, specs in zip(units, specs_per_unit):
        if unit.kind == ADD_SOURCE:
            points[unit.skip] = size
        elif unit.kind == LAST_STEP_ENTRY and unit.shape_op == ("sum",) and size is not None:
            size //= 2  # h_n[-2] + h_n[-1]: a bidirectional layer's two halves summed
        elif unit.kind == ATTENTION_ENTRY and unit.skip[0] in points:  # the pool has its values' features
            width = points[unit.skip[0]] if points[unit.skip[0]] is not None else inputs
            size, source = (len(range(width)[slice(*unit.skip[1:3])]) if width is not None else None), unit
        if not specs:
            continue
        inputs = inputs if inputs is not None else specs[0].input_size
        if (
            linear_pairs
            and prev is not None
            and unit.guessed_before
            and isinstance(prev[1][-1], Dense)
            and isinstance(specs[0], Dense)
        ):
            return (
                f"modules {prev[0].label} and {unit.label} are both nn.Linear: any activation between them is not "
                "recorded in this file, so lstmrt will not guess; pass layers=[...] naming the modules and "
                f"activations in forward order, e.g. [{prev[0].path!r}, 'relu', {unit.path!r}]"
            )
        for spec in specs:
            if isinstance(spec, Embedding) and (size is not None or spec is not specs[0]):
                return f"module {unit.label} is an nn.Embedding but is not the first layer"
            if size is not None and spec.input_size is not None and spec.input_size != size:
                return (
                    f"module {unit.label} ({type(spec).__name__}) expects {spec.input_size} input features but "
                    f"{source.label} outputs {size}"
                )
            if spec.output_size is not None:
                size, source = spec.output_size, unit
        prev = (unit, specs)
    return None


def _placed(variants) -> list:
    """Only the first layer can be an Embedding: later units keep their other reading (keeps products small)."""
    return [
        v if i == 0 else [c for c in v if not (c and isinstance(c[0], Embedding))] or v for i, v in enumerate(variants)
    ]


def _pick(units, variants, order_note: str) -> list:
    fits = [c for c in itertools.product(*_placed(variants)) if _chain_problem(units, c) is None]
    if len(fits) > 1:
        names = ", ".join(u.label for u, v in zip(units, variants) if len(v) > 1)
        raise ArchitectureError(
            f"cannot tell whether {names} is an nn.Embedding or an nn.Linear(bias=False): "
            "both fit; load the whole module (torch.save(model)) or TorchScript instead"
        )
    if not fits:
        problem = _chain_problem(units, [v[0] for v in variants])  # first readings: names an Embedding misplaced
        hint = "" if "layers=" in problem else f" ({order_note}; pass layers=[...] to give the forward order)"
        raise ArchitectureError(problem + hint)
    return list(fits[0])


def _one_feature_input(units: list) -> tuple:
    """(units without ONE_FEATURE_ENTRY, whether it was there): forward()'s x.unsqueeze(-1) of a (batch, time) input,
    which lstmrt's model of one input feature takes as it is (build_model checks the first layer reads one)."""
    rest = [u for u in units if u.kind != ONE_FEATURE_ENTRY]
    return rest, len(rest) != len(units)


def build_model(
    units: list, *, order_known: bool = True, order_note: str = "registration order", used: list | None = None
) -> Model:
    """A Model from units in forward order. order_known=False (safetensors sorts names): the one order whose
    sizes chain is used, and none or several is an error asking for layers=. used: filled with the units in the
    order the model applies them."""
    units, one_feature = _one_feature_input([u for u in units if u.kind not in _NO_OPS])
    for u in units:
        if "parametrizations" in u.path.split(".") or {"weight_g", "weight_v", "weight_orig"} & set(u.params):
            raise ArchitectureError(
                f"module {u.label}: parametrized weights (weight_norm, spectral_norm) are not "
                "supported; remove the parametrization before saving (torch.nn.utils."
                "parametrize.remove_parametrizations)"
            )
    if not units:
        raise ArchitectureError("the file holds no layer lstmrt can run")
    variants, two_d = [], False  # two_d: after the last step was taken or time pooled, the data is (B, F)
    for u in units:
        variants.append(_checked_variants(u, two_d))
        two_d = two_d or u.kind in TIME_ENDS
    if order_known:
        per_unit = _pick(units, variants, order_note)
    else:
        units, per_unit = _pick_order(units, variants)
    if used is not None:
        used[:] = [u for u in units if u.kind not in (*SHAPE_ENTRIES, *SKIP_ENTRIES, ARITH_ENTRY)]
    specs, final_only = _final_step(units, per_unit)
    if one_feature and (isinstance(specs[0], Embedding) or specs[0].input_size not in (None, 1)):
        raise ArchitectureError(
            f"forward() makes its input one feature wide (x.unsqueeze(-1)), but its first layer, "
            f"{type(specs[0]).__name__}, reads {specs[0].input_size if specs[0].input_size else 'token ids'}"
        )
    return native_model(
        specs, return_sequences=not final_only, squeeze_output=_squeezed(units, per_unit), squeeze_input=one_feature
    )


def _squeezed(units, per_unit) -> bool:
    """Whether forward() drops the output's feature axis: a squeeze or flatten (Unit.shape_op) that, at the data's
    rank and feature count there, removes a one-feature axis. A squeeze of a wider axis changes nothing in torch
    and is skipped; a flatten that would join axes, or a squeeze of the batch or time axis, has no lstmrt form.
    After the axis is dropped only element-wise activations may follow (they act the same on (B, 1) as on (B,))."""
    rank, features, dropped = 3, None, None  # rank: (B, T, F), or (B, F) once the time axis is gone
    for unit, unit_specs in zip(units, per_unit):
        if dropped is not None:
            across = [s for s in unit_specs if not isinstance(s, Activation) or s.activation in _ACROSS_FEATURES]
            if across or unit.kind in TIME_ENDS or unit.kind in (SQUEEZE_ENTRY, ADD_ENTRY):
                raise ArchitectureError(
                    f"{_what(unit)} comes after the output's feature axis was squeezed ({_taken_where(dropped)}); "
                    "only element-wise activations can follow it"
                )
        elif unit.kind == SQUEEZE_ENTRY:
            if features is None:
                raise ArchitectureError(f"the data is squeezed before any layer ({_taken_where(unit)})")
            if _drops_feature_axis(unit, rank, features):
                dropped = unit
        rank = 2 if unit.kind in TIME_ENDS else rank
        features = next((s.output_size for s in reversed(unit_specs) if s.output_size is not None), features)
    return dropped is not None


_ACROSS_FEATURES = ("softmax", "log_softmax")  # over the last axis: after a squeeze, that is batch or time


def _drops_feature_axis(unit, rank: int, features: int) -> bool:
    """Whether the squeeze or flatten `unit` drops the feature axis of (B, T, F) / (B, F) data (False: it changes
    nothing); ArchitectureError when it does something else."""
    how, where = unit.shape_op, _taken_where(unit)
    layout = "(batch, features)" if rank == 2 else "a sequence (batch, time, features)"
    if how[0] == "squeeze":
        dim = how[1]
        if dim is not None and not (-rank <= dim < rank and dim % rank == rank - 1):
            raise ArchitectureError(
                f"squeezing dimension {dim} of {layout} ({where}): lstmrt drops the feature axis only, squeeze(-1)"
            )
        return features == 1  # squeeze() also drops a batch or time axis of size 1; lstmrt keeps those
    if how[0] == "flatten":
        start, end = how[1:]
        if not (-rank <= start < rank and -rank <= end < rank):
            raise ArchitectureError(f"flattening dimensions {start} to {end} of {layout} ({where})")
        start, end = start % rank, end % rank
        if start >= end:
            return False  # one axis (or none) flattened: the same shape
        if (start, end) != (0, 1) or rank != 2:
            raise ArchitectureError(
                f"flattening dimensions {start} to {end} of {layout} ({where}) joins its axes; lstmrt follows "
                ".flatten() of a one-feature (batch, 1) output"
            )
    elif how[0] == "rows":  # .view(-1, n): no change of (B, n); anything else would move values between rows
        if rank == 2 and features == how[1]:
            return False
        raise ArchitectureError(
            f".view(-1, {how[1]}) of {layout} with {features} features ({where}) moves values between rows; lstmrt "
            f"follows it on (batch, {how[1]}), where it changes nothing"
        )
    elif how[0] == "view" and rank != 2:
        raise ArchitectureError(f".view(-1) of {layout} ({where}) joins its batch and time axes")
    if features == 1:
        return True
    if how[0] == "layers":
        raise ArchitectureError(
            f"the output's feature axis is squeezed ({where}) but the model outputs {features} features there; "
            "lstmrt drops the axis of a one-feature output only"
        )
    raise ArchitectureError(
        f"flattening (B, {features}) into one axis ({where}) joins its batch and feature axes; lstmrt follows "
        ".view(-1) / .flatten() of a one-feature (batch, 1) output"
    )


def _what(unit) -> str:
    """A unit as messages name it."""
    if unit.kind == "activation":
        return f"the activation {unit.activation!r}" + ("" if unit.reason == "layers=" else f" in {unit.label}")
    if unit.kind in TIME_ENDS:
        return f"taking {_TIME_ENDS_NAMED[unit.kind]} ({_taken_where(unit)})"
    if unit.kind == SQUEEZE_ENTRY:
        return f"another squeeze ({_taken_where(unit)})"
    if unit.kind == ADD_ENTRY:
        return f"a skip connection's sum ({_taken_where(unit)})"
    return f"module {unit.label}"


_TIME_ENDS_NAMED = {
    LAST_STEP_ENTRY: "each sequence's last step",
    "mean_over_time": "the mean over time",
    "max_over_time": "the max over time",
    ATTENTION_ENTRY: "the attention pool over time",
}


def _final_step(units, per_unit) -> tuple:
    """(specs, whether the model outputs only each sequence's final output). Where forward() takes the last step
    (out[:, -1], h_n[-1]), the recurrent layer before it gives its final output, as Keras' return_sequences=False
    does; where it pools over time (out.mean(1), out.max(1)[0]), a GlobalPooling layer pools the steps so far, so
    its final output is the pool of the whole sequence; softmax attention over time is an AttentionPooling, alike.
    Either way the model's predict returns one output per
    sequence; a recurrent layer, or another of these, after it would need a time axis that is gone."""
    specs, taken, points = [], None, {}  # points: ADD_SOURCE id -> how many specs came before it
    squeezed = None  # the squeeze seen last, after which the data may have lost its feature axis
    for at, (unit, unit_specs) in enumerate(zip(units, per_unit)):
        if unit.kind == ARITH_ENTRY:  # sized once every layer is known: a first layer gives the input's features
            specs.append(_PendingAffine(unit, 2 if taken else 3, squeezed is not None))
            continue
        squeezed = unit if unit.kind == SQUEEZE_ENTRY else squeezed
        if unit.kind == ADD_SOURCE:
            _refuse_in_place_after(unit, units[at + 1 :])
            points[unit.skip] = len(specs)
            continue
        if unit.kind == ADD_ENTRY:
            specs.append(_skip_add(unit, specs, points[unit.skip[0]]))
            continue
        if unit.kind in TIME_ENDS:
            what = _TIME_ENDS_NAMED[unit.kind]
            recurrent = [i for i, s in enumerate(specs) if is_recurrent(s)]
            if taken is not None and taken.kind == unit.kind == LAST_STEP_ENTRY:
                raise ArchitectureError(f"{what} is taken twice ({_taken_where(unit)})")
            if taken is not None:
                raise ArchitectureError(
                    f"{what} is taken ({_taken_where(unit)}) after {_TIME_ENDS_NAMED[taken.kind]} was "
                    f"({_taken_where(taken)}), which left no time axis"
                )
            if not recurrent:
                raise ArchitectureError(f"{what} is taken before any recurrent module ({_taken_where(unit)})")
            if unit.kind == LAST_STEP_ENTRY:
                # out[:, -1] of a bidirectional layer is its output at the last step (the backward direction's first
                # step), which the model returns with return_sequences=False; not each direction's final output
                layer = specs[recurrent[-1]]
                if unit.shape_op == ("sum",):  # h_n[-2] + h_n[-1]: both directions' final outputs summed
                    layer = _summed_directions(unit, layer, recurrent[-1], points)
                if not (unit.shape_op == ("sequence",) and isinstance(layer, Bidirectional)):
                    specs[recurrent[-1]] = _final_output(layer)
            elif unit.kind == ATTENTION_ENTRY:
                _check_time_axis(unit, [u for u, s in zip(units[:at], per_unit) if any(map(is_recurrent, s))])
                specs.append(_attention_pool(unit, specs, points[unit.skip[0]]))
                per_unit[at] = [specs[-1]]  # _squeezed then sees the pool's features, its values'
            else:
                features = next(s.output_size for s in reversed(specs) if s.output_size is not None)
                specs.append(GlobalPooling(features, POOLING_ENTRIES[unit.kind]))
            taken = unit
            continue
        if taken is not None and any(is_recurrent(s) for s in unit_specs):
            raise ArchitectureError(
                f"module {unit.label} is recurrent but comes after {_TIME_ENDS_NAMED[taken.kind]} was taken "
                f"({_taken_where(taken)}); lstmrt runs a recurrent layer over a time axis"
            )
        specs += unit_specs
    return _sized_affines(specs), taken is not None


class _PendingAffine:
    """An arithmetic unit's place among the specs until the features there are known; it keeps their number."""

    input_size = output_size = None

    def __init__(self, unit, rank: int, after_squeeze: bool):
        self.unit, self.rank, self.after_squeeze = unit, rank, after_squeeze  # rank: (B, T, F) 3, (B, F) 2


def _sized_affines(specs) -> list:
    """specs with each _PendingAffine made the Affine layer of its arithmetic, at the features there."""
    done = list(specs)
    for at, spec in enumerate(specs):
        if not isinstance(spec, _PendingAffine):
            continue
        unit, where = spec.unit, _taken_where(spec.unit)
        arith = unit.shape_op[0]
        if any(isinstance(s, Embedding) for s in specs[at:]):
            raise ArchitectureError(
                f"`{arith.code}` ({where}) computes with the token ids before the nn.Embedding; lstmrt looks ids up "
                "as they are"
            )
        features = _width(specs, at)
        if features is None:
            raise ArchitectureError(f"`{arith.code}` ({where}) comes before any layer with weights")
        # a squeeze before it may have dropped a one-feature axis: (B,) or (B, T) then, where lstmrt takes one value
        rank = 1 if spec.after_squeeze and features == 1 else spec.rank
        try:
            done[at] = Affine(*affine_of(arith, features, rank, where))
        except ValueError as exc:
            raise ArchitectureError(str(exc)) from None
    return done


def _summed_directions(unit, layer, at: int, points: dict):
    """The bidirectional layer spec `layer` (specs[at]) merging its directions by their sum."""
    if not isinstance(layer, Bidirectional) or layer.merge_mode != "concat":
        raise ArchitectureError(
            f"the sum of two directions' final states ({_taken_where(unit)}) needs a bidirectional layer"
        )
    if at + 1 in points.values():  # a skip or attention reads the concatenated sequence this layer would lose
        raise ArchitectureError(
            f"the two directions' final states are summed ({_taken_where(unit)}), and their concatenated output is "
            "read too: lstmrt's layer outputs one or the other"
        )
    return Bidirectional(layer.forward, layer.backward, "sum")


def _refuse_in_place_after(source, later) -> None:
    """A module that changes its input in place (nn.ReLU(inplace=True)) right after a skip connection's source
    changes the tensor the sum reads, as torch computes it; lstmrt's Add would read the value before it."""
    following = next((u for u in later if u.kind not in SKIP_ENTRIES), None)
    if following is not None and following.kind in _ACTIVATIONS and _option(following, "inplace") is True:
        raise ArchitectureError(
            f"module {following.label} (nn.{following.kind}(inplace=True)) changes in place the tensor a skip "
            f"connection adds ({_taken_where(source)}): torch adds its output there; make it inplace=False"
        )


def _width(specs, point: int) -> int | None:
    """Features of the data after the first `point` specs (0: the model input); None when no spec says yet."""
    after = next((s.output_size for s in reversed(specs[:point]) if s.output_size is not None), None)
    return after if after is not None else next((s.input_size for s in specs if s.input_size is not None), None)


def _read_point(unit, specs, point: int, start, end, doing: str) -> tuple:
    """(features [start, end) of the data after the first `point` specs as a range, the layer source that names
    it, how messages name it), for an entry reading that point; `doing` says what the entry does, in messages."""
    width, features = _width(specs, point), _width(specs, len(specs))
    if width is None or features is None:
        raise ArchitectureError(
            f"{doing.format(where=_taken_where(unit))} before any layer with weights, where lstmrt does not yet "
            "know the input's features"
        )
    taken = range(width)[start:end]  # the slice as torch takes it (negative bounds from the end)
    return (
        taken,
        "input" if point == 0 else point - 1,
        "the input" if point == 0 else f"the output of layer {point - 1}",
    )


def _check_time_axis(unit, recurrent_units) -> None:
    """An attention pool read in a module that does not see the recurrent modules (a user-defined attention module)
    took time as dim 1, as it is with batch_first: refused where a recurrent module before it is not."""
    if unit.skip[4]:
        return
    for other in recurrent_units:
        if _option(other, "batch_first") is not True:
            raise ArchitectureError(
                f"the attention pool ({_taken_where(unit)}) normalizes over dimension 1, the time axis of batch_first "
                f"data, but module {other.label} before it is not batch_first (or does not record it): its data is "
                "(time, batch, features) there"
            )


def _attention_pool(unit, specs, point: int) -> AttentionPooling:
    """The AttentionPooling of softmax attention over time: its scores the data after all `specs`, its values the
    features [start, end) of the data after the first `point`. One score per step weighs every feature alike, as
    many scores as values weigh each its own; torch would broadcast other counts, or fail."""
    _, start, end, one_score, _ = unit.skip
    values, source, what = _read_point(unit, specs, point, start, end, "an attention pool ({where}) pools")
    scores, where = _width(specs, len(specs)), _taken_where(unit)
    if one_score and scores != 1:
        raise ArchitectureError(
            f"the attention pool ({where}) takes one score per step, but its scores have {scores} features: torch's "
            "squeeze(-1) of them changes nothing (or bmm gives one context per score); lstmrt pools with one score "
            "per step, or one per feature"
        )
    if not values or scores not in (1, len(values)):
        raise ArchitectureError(
            f"the attention pool ({where}) weighs {len(values)} feature(s) of {what} with {scores} scores per step: "
            "lstmrt takes one score per step, or one per feature (as many as the values)"
        )
    return AttentionPooling(len(values), source, values.start, per_feature=scores > 1)


def _skip_add(unit, specs, point: int) -> Add:
    """The Add of a skip connection: the features [start, end) of the data after the first `point` specs, added to
    the data after all of them. torch would broadcast a term of one feature to the other's; lstmrt adds as many."""
    _, start, end = unit.skip
    taken, source, what = _read_point(unit, specs, point, start, end, "a skip connection ({where}) adds")
    features = _width(specs, len(specs))
    if len(taken) != features:
        raise ArchitectureError(
            f"a skip connection ({_taken_where(unit)}) adds {len(taken)} feature(s) of {what} to {features}: lstmrt "
            "adds as many features as the data has (torch would broadcast one feature to many)"
        )
    return Add(features, source, taken.start)


def _taken_where(unit) -> str:
    if unit.reason == "layers=":  # named in layers=, not taken by a forward()
        return f"{unit.path!r} in layers="
    if unit.kind == SQUEEZE_ENTRY and unit.record is not None:
        return f"by nn.Flatten {unit.label}"
    return f"by forward() of {unit.label}"


def _final_output(spec):
    """The recurrent layer spec `spec`, giving its final output (return_sequences=False)."""
    if isinstance(spec, Bidirectional):
        return Bidirectional(_final_output(spec.forward), _final_output(spec.backward), spec.merge_mode)
    spec = copy.copy(spec)
    spec.return_sequences = False
    return spec


def _checked_variants(unit, two_d: bool = False) -> list:
    """_variants, with a layer spec's own refusal (a bias of the wrong length, an option of the wrong type: what
    a damaged or hand-made file can hold) reported against the module."""
    try:
        variants = _variants(unit, two_d)
    except ArchitectureError:
        raise
    except (ValueError, TypeError) as exc:
        raise ArchitectureError(f"module {unit.label}: {exc}") from None
    for specs in variants:
        _check_stack(unit, specs)
    return variants


def _check_stack(unit, specs) -> None:
    """The layers of one stacked module must chain. A damaged or hand-edited state dict can say otherwise
    (weight_ih_l1 with the wrong number of columns), and no forward order or layers= can fix that."""
    for k in range(1, len(specs)):
        expects, outputs = specs[k].input_size, specs[k - 1].output_size
        if expects is not None and outputs is not None and expects != outputs:
            raise ArchitectureError(
                f"module {unit.label}: layer {k} expects {expects} input features but layer {k - 1} outputs {outputs}"
            )


def native_model(specs, **options) -> Model:
    """Model(specs): the C runtime's refusals (sizes past its limits, memory) as load errors."""
    try:
        return Model(specs, **options)
    except MemoryError:
        raise ModelTooLargeError(
            f"the model's weights ({sum(s.parameter_count() for s in specs):,} parameters) do not fit in memory"
        ) from None
    except (ValueError, TypeError) as exc:
        raise UnsupportedModelError(f"the layers read from the file do not form a model lstmrt runs: {exc}") from None


def _pick_order(units, variants) -> tuple:
    """(units in the one order whose sizes chain, their specs)."""
    labels = ", ".join(u.label for u in units)
    if len(units) > _MAX_PERMUTED:
        raise ArchitectureError(
            f"this file does not record the order of its {len(units)} modules ({labels}); "
            "pass layers=[...] in forward order"
        )
    # Candidates are the orders whose sizes chain. One where two nn.Linear meet is a candidate too (it may be the
    # network, with an unrecorded activation between them): left out, a wrong order that chains would be used.
    found = []
    for perm in itertools.permutations(range(len(units))):
        order = [units[i] for i in perm]
        for choice in itertools.product(*_placed([variants[i] for i in perm])):
            if _chain_problem(order, choice, linear_pairs=False) is None:
                found.append((order, choice))
    if len(found) != 1:
        why = "no order of" if not found else "several orders of"
        raise ArchitectureError(
            f"this file does not record the order of its modules, and {why} {labels} chain "
            "their sizes; pass layers=[...] naming the modules (and activations) in forward order"
        )
    order, choice = found[0]
    problem = _chain_problem(order, choice)  # the one order, but with two nn.Linear meeting: asks for layers=
    if problem is not None:
        raise ArchitectureError(problem)
    return order, list(choice)
