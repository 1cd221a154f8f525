"""Keras layers (config + get_weights() arrays) to lstmrt layer specs; mapping tables in docs/math.md section 8.

Keras kernels are (in, out): transposed to the canonical (out, in). LSTM gates i, f, c, o are canonical; GRU gates
z, r, h are reordered to r, z, n. cuDNN layers (Keras 2 CuDNNLSTM / CuDNNGRU) store each gate's input kernel as
cuDNN reads it: the (I, H) block's memory is the (H, I) matrix, and the recurrent block is used untransposed.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from .. import activations as acts
from . import keras_arith
from .clip_ops import clip_layers
from ..errors import CorruptFileError, UnsupportedModelError
from ..layers import (
    GRU,
    LSTM,
    Activation,
    Add,
    Affine,
    Bidirectional,
    Dense,
    Embedding,
    GlobalPooling,
    LayerNorm,
    PReLU,
    SimpleRNN,
)

NO_OPS = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity")
RECURRENT = ("LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU")
PER_STEP = (
    "Dense",
    "Activation",
    "Normalization",
    "BatchNormalization",
    "LayerNormalization",
    "RMSNormalization",
    "TimeDistributed",
    "Embedding",
    "Masking",
    "PReLU",
)
POOLING = {"GlobalAveragePooling1D": "average", "GlobalMaxPooling1D": "max"}
# Supported layers that do not pass Keras's mask on (supports_masking False), by Keras major version: after them
# Keras runs the recurrent and average-pooling layers on every step. (Checked against Keras 3.15 and tf_keras 2.21;
# Keras 3's Rescaling passes it on. Ops nodes pass none either: keras_graph refuses what follows them.)
MASK_DROPPERS = {2: ("Normalization", "Identity", "Rescaling"), 3: ("RMSNormalization",)}
# Keras activation layers, run as an lstmrt Activation. All of them pass Keras's mask on (Keras 2 and 3).
ACTIVATION_LAYERS = ("LeakyReLU", "ReLU", "ELU", "Softmax")
CLASSES = RECURRENT + ("RNN", "Bidirectional") + PER_STEP + ACTIVATION_LAYERS + tuple(POOLING) + ("Add",) + NO_OPS
# keras.layers.RNN(cell): the cells lstmrt reads, as the layer of the same computation
RNN_CELLS = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "SimpleRNN"}
# the RNN wrapper's options, which each cell's layer takes over
_RNN_OPTIONS = ("return_sequences", "go_backwards", "stateful", "unroll", "zero_output_for_mask", "time_major")
# Per-step layers whose constants are in their config. Kept out of CLASSES, the layers keras_files matches weights
# to: a weights file matched by order (Keras 2) counts every layer of CLASSES not known to be weightless.
CONFIG_ONLY = ("Rescaling", "Flatten")
SUPPORTED = ", ".join(CLASSES + CONFIG_ONLY)
NORMALIZATION_EPSILON = 1e-7  # keras.backend.epsilon() default, both Keras 2 and 3
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # the runtime computes in float32


class Context:
    """Per-file facts the conversion depends on."""

    def __init__(self, major: int):
        self.major = major

    def act(self, value, where: str, elementwise: bool = False) -> str:
        """A Keras activation as an lstmrt name: a name, Keras 3's {"class_name": "function", "config": name}, or an
        activation layer object (Dense(activation=LeakyReLU(0.1)) saves {"class_name": "LeakyReLU", "config": {...}},
        whose parameters matter: the layer's slope, 0.3 by default, is not the leaky_relu function's 0.2)."""
        if isinstance(value, dict):
            if isinstance(value.get("config"), dict):
                return layer_activation(value.get("class_name"), value["config"], where, elementwise)
            value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
        if value in ACTIVATION_LAYERS + ("PReLU",):  # Keras 2 reads a layer's class name as that layer
            return layer_activation(value, {}, where, elementwise)
        if value == "hard_sigmoid":  # same name, two formulas: the one of the Keras that wrote the file
            return "hard_sigmoid_v3" if self.major >= 3 else "hard_sigmoid"
        return acts.canonical(value, where=where, elementwise=elementwise)


def layer_activation(class_name, cfg: dict, where: str, elementwise: bool = False) -> str:
    """The activation a Keras activation layer computes, as an lstmrt name: LeakyReLU, ReLU, ELU and Softmax over
    the last axis (as layers or as another layer's activation). ValueError for
    parameters lstmrt does not compute; CorruptFileError for a parameter Keras itself refuses (not a number)."""
    if not isinstance(class_name, str):
        raise CorruptFileError(f"{where}: an activation object without a class name ({class_name!r})")
    if class_name == "LeakyReLU":  # Keras 3 negative_slope, Keras 2 alpha: both 0.3 by default
        key = "negative_slope" if "negative_slope" in cfg else "alpha"
        return acts.with_parameter("leaky_relu", _number(cfg, key, 0.3, where), where=where)
    if class_name == "ReLU":
        return _relu(cfg, where)
    if class_name == "PReLU":  # its alpha is a weight: per_step reads it after a Dense's own weights
        raise ValueError(
            f"{where}: a PReLU layer as activation= is supported in Dense only (its alpha is a weight, which "
            "lstmrt's activations do not take)"
        )
    if class_name == "ELU":
        alpha = _number(cfg, "alpha", 1.0, where)
        if alpha != 1:
            raise ValueError(
                f"{where}: ELU(alpha={alpha:g}) is not supported; lstmrt's elu has alpha=1 (x < 0: e^x - 1)"
            )
        return "elu"
    if class_name == "Softmax" and cfg.get("axis", -1) not in (-1, [-1]):
        raise ValueError(f"{where}: Softmax(axis={cfg['axis']!r}) is not supported; lstmrt's softmax is over axis -1")
    return acts.canonical(class_name, where=where, elementwise=elementwise)


def _relu_options(cfg: dict, where: str) -> tuple:
    limit = None if cfg.get("max_value") is None else _number(cfg, "max_value", None, where)
    return limit, _number(cfg, "negative_slope", 0.0, where), _number(cfg, "threshold", 0.0, where)


def _clipped_relu(cfg: dict, where: str) -> bool:
    """Whether Keras's ReLU(max_value, negative_slope, threshold) is one that clipped_relu computes as layers (and
    no activation of lstmrt's alone)."""
    limit, slope, threshold = _relu_options(cfg, where)
    return slope == 0 and (threshold > 0 or (limit is not None and limit != 6))


def clipped_relu(cfg: dict, where: str) -> list:
    """Keras's ReLU(max_value=m, threshold=t) without negative slope, which is x * (x > t) clipped to [0, m]: the
    layers of hard_shrink(t) (x where |x| > t, else 0; for t > 0), then the clip to [0, m] (clip_ops: relu, then
    clip_max(m)). A negative t with an m is the clip alone (x * (x > t) is negative only
    where the clip makes it 0)."""
    limit, _, threshold = _relu_options(cfg, where)
    shown = f"ReLU(max_value={'None' if limit is None else f'{limit:g}'}, threshold={threshold:g})"
    if limit is not None and limit <= 0:
        raise ValueError(f"{where}: {shown}: a max_value of 0 or less is not supported (the output is constant)")
    shrink = [Activation(acts.with_parameter("hard_shrink", threshold, where=where))] if threshold > 0 else []
    return shrink + clip_layers(0.0, limit, f"{where}: {shown}")


def _relu(cfg: dict, where: str) -> str:
    """Keras's ReLU(max_value, negative_slope, threshold) where it is one of relu, leaky_relu(slope), relu6 (Keras
    computes those three cases with exactly those functions); any other combination is refused."""
    limit, slope, threshold = _relu_options(cfg, where)
    if threshold == 0 and limit is None:
        return acts.with_parameter("leaky_relu", slope, where=where) if slope else "relu"
    if threshold == 0 and limit == 6 and slope == 0:
        return "relu6"
    shown = "None" if limit is None else f"{limit:g}"
    raise ValueError(
        f"{where}: ReLU(max_value={shown}, negative_slope={slope:g}, threshold={threshold:g}) is not supported; "
        "lstmrt runs ReLU() as relu, ReLU(negative_slope=s) as leaky_relu(s), ReLU(max_value=6) as relu6, and a "
        "max_value or threshold without negative_slope as layers of their own (a ReLU layer or a Dense's "
        "activation, not inside a recurrent cell)"
    )


def _number(cfg: dict, key: str, default, where: str) -> float:
    """A numeric parameter of a layer's config (absent: Keras's default). Keras refuses to build the layer with
    anything but a number, so a file holding something else contradicts itself."""
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CorruptFileError(f"{where}: config {key}={value!r} is not a number (Keras requires one)")
    return float(value)


def fail(entry, message: str):
    if message.startswith(f"Keras layer {entry.name!r}"):  # already names the layer (a nested conversion)
        return UnsupportedModelError(message)
    return UnsupportedModelError(f"Keras layer {entry.name!r} ({entry.class_name}): {message}")


_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1, "CuDNNLSTM": 4, "CuDNNGRU": 3}


def _dim(cfg: dict, key: str, where: str, prefix: str):
    """A layer size from its config: None when absent (the weights then fix it), else an int > 0. Keras refuses
    any other value when it loads the file (-3, "17", 17.0, null, and true, although a bool is an int in Python),
    so a file holding one contradicts itself."""
    if key not in cfg:
        return None
    value = cfg[key]
    if type(value) is not int or value < 1:
        raise CorruptFileError(
            f"{where}: config {prefix}{key}={value!r} is not a positive integer (Keras requires one)"
        )
    return value


# get_weights() indices that Keras stores as integers: Normalization's sample count (int64), which lstmrt does
# not use. Every other weight is computed with, so it must be floating point.
INTEGER_WEIGHTS = {"Normalization": (2,)}


def weight_shapes(class_name: str, cfg: dict, features=None, where: str = "Keras layer", prefix: str = ""):
    """The get_weights() shapes a layer's config implies (None: a size the config does not fix), or None when the
    config does not pin them down. The loader compares a file's dataset shapes with these before reading them.
    A size present in the config but not a positive integer is a CorruptFileError naming `where` and the key
    (`prefix`: the path of a wrapped layer's config)."""
    if not isinstance(cfg, dict):
        return None
    if class_name in _GATES:
        units, g = _dim(cfg, "units", where, prefix), _GATES[class_name]
        if units is None:
            return None
        shapes = [(features, g * units), (units, g * units)]
        if class_name.startswith("CuDNN"):
            return shapes + [(2 * g * units,)]
        if cfg.get("use_bias", True):
            reset_after = class_name == "GRU" and cfg.get("reset_after", True)
            shapes.append((2, g * units) if reset_after else (g * units,))
        return shapes
    if class_name in ("Bidirectional", "TimeDistributed"):
        inner = cfg.get("layer")
        back = cfg.get("backward_layer") or inner
        if not isinstance(inner, dict) or not isinstance(back, dict):
            return None
        fw = weight_shapes(inner.get("class_name"), inner.get("config"), features, where, f"{prefix}layer.config.")
        if class_name == "TimeDistributed" or fw is None:
            return fw
        back_prefix = f"{prefix}backward_layer.config." if cfg.get("backward_layer") else f"{prefix}layer.config."
        bw = weight_shapes(back.get("class_name"), back.get("config"), features, where, back_prefix)
        return None if bw is None else fw + bw
    if class_name == "Dense":
        units = _dim(cfg, "units", where, prefix)
        if units is None:
            return None
        return [(features, units)] + ([(units,)] if cfg.get("use_bias", True) else [])
    if class_name == "Embedding":
        return [(_dim(cfg, "input_dim", where, prefix), _dim(cfg, "output_dim", where, prefix))]
    if class_name.endswith("Normalization") and cfg.get("axis", -1) not in (-1, [-1]):
        return None  # weights over another axis: the conversion refuses it, saying so
    if class_name == "BatchNormalization":  # gamma, beta (when scale, center), moving mean and variance
        return [(features,)] * (cfg.get("scale", True) + cfg.get("center", True) + 2)
    if class_name == "LayerNormalization":
        return [(features,)] * sum(_layer_norm_weights(cfg))
    if class_name == "RMSNormalization":
        return [(features,)]
    return None


def _layer_norm_weights(cfg: dict) -> tuple:
    """(has gamma, has beta) of a LayerNormalization. rms_scaling (Keras 3) keeps gamma and drops beta."""
    rms = bool(cfg.get("rms_scaling", False))
    return bool(cfg.get("scale", True)) or rms, bool(cfg.get("center", True)) and not rms


def _expect(entry, weights: list, count: int):
    if len(weights) != count:
        raise fail(entry, f"expected {count} weight arrays, found {len(weights)} (is the file complete?)")


def _gru_order(a, axis=-1):
    """Keras gate blocks z, r, h -> canonical r, z, n."""
    z, r, h = np.split(np.asarray(a), 3, axis=axis)
    return np.concatenate([r, z, h], axis=axis)


def _cudnn_blocks(kernel, rec, gates: int):
    """cuDNN layout: per gate, the (I, H) input block reinterpreted as (H, I); recurrent blocks as stored."""
    H = rec.shape[0]
    w_ih = [kernel[:, g * H : (g + 1) * H].reshape(H, kernel.shape[0]) for g in range(gates)]
    w_hh = [rec[:, g * H : (g + 1) * H] for g in range(gates)]
    return w_ih, w_hh


def recurrent(entry, cfg: dict, weights: list, ctx: Context, *, hold: bool, go_backwards: bool):
    """One direction of LSTM / GRU / SimpleRNN / CuDNNLSTM / CuDNNGRU."""
    cls, where = entry.class_name, f"Keras layer {entry.name!r} ({entry.class_name})"
    if cfg.get("time_major"):
        raise fail(entry, "time_major=True is not supported (lstmrt input is batch-major)")
    opts = dict(
        hold_masked_output=hold, go_backwards=go_backwards, return_sequences=bool(cfg.get("return_sequences", False))
    )
    if cls.startswith("CuDNN"):
        _expect(entry, weights, 3)
        kernel, rec, bias = weights
        gates = 4 if cls == "CuDNNLSTM" else 3
        w_ih, w_hh = _cudnn_blocks(kernel, rec, gates)
        b_ih, b_hh = np.split(bias, 2)
        if cls == "CuDNNLSTM":
            return LSTM(np.concatenate(w_ih), np.concatenate(w_hh), b_ih, b_hh, **opts)
        return GRU(
            _gru_order(np.concatenate(w_ih), 0),
            _gru_order(np.concatenate(w_hh), 0),
            _gru_order(b_ih),
            _gru_order(b_hh),
            reset_after=True,
            **opts,
        )
    # activations first: one lstmrt cannot run (a PReLU object, whose alpha adds a weight) is the reason to give
    act = ctx.act(cfg.get("activation", "tanh"), where, elementwise=True)
    gate = ctx.act(cfg.get("recurrent_activation", "sigmoid"), where, elementwise=True) if cls != "SimpleRNN" else None
    use_bias = cfg.get("use_bias", True)
    _expect(entry, weights, 3 if use_bias else 2)
    kernel, rec = weights[0], weights[1]
    bias = weights[2] if use_bias else None
    if cls == "SimpleRNN":
        return SimpleRNN(kernel.T, rec.T, bias, activation=act, **opts)
    if cls == "LSTM":
        return LSTM(kernel.T, rec.T, bias, activations=(gate, act, act), **opts)
    reset_after = bool(cfg.get("reset_after", True))
    b_ih = b_hh = None
    if bias is not None:
        bias = np.asarray(bias)
        b_ih, b_hh = (bias[0], bias[1]) if reset_after else (bias, None)
        b_ih, b_hh = _gru_order(b_ih), (None if b_hh is None else _gru_order(b_hh))
    return GRU(
        _gru_order(kernel).T, _gru_order(rec).T, b_ih, b_hh, reset_after=reset_after, activations=(gate, act), **opts
    )


def rnn_layers(entry, cfg: dict) -> list:
    """keras.layers.RNN(cell) as the layers computing the same: [(class name, config)], one per cell of a
    StackedRNNCells (or a list of cells) in order, each a layer of the cell's class (LSTMCell -> LSTM) with the cell's
    options and the wrapper's. A stack runs its cells one after another at every step, which is the same as layers
    one after another over the sequence: every layer but the last returns its sequence; go_backwards, taken by the
    first, reverses the time order the others run in as well."""
    cell = cfg.get("cell")
    cells = cell if isinstance(cell, list) else [cell]
    if len(cells) == 1 and isinstance(cell, dict) and cell.get("class_name") == "StackedRNNCells":
        cells = (cell.get("config") or {}).get("cells")
    if not isinstance(cells, list) or not cells:
        raise fail(entry, "has no cell lstmrt can read")
    if cfg.get("return_state"):
        raise fail(entry, "return_state=True of an RNN wrapper is not supported; use LSTM / GRU / SimpleRNN layers")
    layers = []
    for i, c in enumerate(cells):
        name = c.get("class_name") if isinstance(c, dict) else None
        if name not in RNN_CELLS or not isinstance(c.get("config"), dict):
            raise fail(entry, f"wraps a {name or type(c).__name__} cell; supported: {', '.join(RNN_CELLS)}")
        options = {k: cfg[k] for k in _RNN_OPTIONS if k in cfg}
        options["return_sequences"] = bool(cfg.get("return_sequences", False)) or i < len(cells) - 1
        options["go_backwards"] = bool(cfg.get("go_backwards", False)) and i == 0
        layers.append((RNN_CELLS[name], dict(c["config"], **options)))
    return layers


def bidirectional(entry, cfg: dict, weights: list, ctx: Context, *, swap: bool):
    """Keras Bidirectional; swap: the input arrives time-reversed, so Keras' forward layer is lstmrt's backward."""
    inner = _one_cell_rnn(entry, cfg["layer"])
    back = _one_cell_rnn(entry, cfg.get("backward_layer")) or inner
    merge = cfg.get("merge_mode", "concat")
    if merge is None:
        raise fail(entry, "merge_mode=None (two outputs) is not supported; use concat, sum, mul or ave")
    for sub in (inner, back):
        if sub.get("class_name") not in RECURRENT:
            raise fail(entry, f"wraps {sub.get('class_name')}; supported: {', '.join(RECURRENT)}")
    if inner["config"].get("go_backwards") or (cfg.get("backward_layer") and not back["config"].get("go_backwards")):
        raise fail(entry, "a forward layer with go_backwards=True (or a backward one without) is not supported")
    if swap and merge == "concat":
        raise fail(
            entry,
            "merge_mode='concat' on a time-reversed sequence (after a go_backwards layer) would need "
            "its halves swapped: not supported",
        )
    n_fw = len(weights) // 2 if inner is back else _count(inner)
    seq = bool(cfg.get("return_sequences", inner["config"].get("return_sequences", False)))
    specs = []
    for sub, w in ((inner, weights[:n_fw]), (back, weights[n_fw:])):
        sub_cfg = dict(sub["config"], return_sequences=seq, go_backwards=False)
        sub_entry = type(entry)(sub["class_name"], sub_cfg, f"{entry.name}/{sub_cfg.get('name', '')}")
        # Keras forces zero_output_for_mask = return_sequences on both directions
        specs.append(recurrent(sub_entry, sub_cfg, w, ctx, hold=not seq, go_backwards=False))
    fw, bw = specs[::-1] if swap else specs
    try:
        return Bidirectional(fw, bw, merge)
    except (TypeError, ValueError) as exc:
        raise fail(entry, str(exc)) from None


def _one_cell_rnn(entry, layer: dict | None):
    """A Bidirectional's layer: RNN(cell) of one cell as that cell's layer (rnn_layers), any other as it is."""
    if not isinstance(layer, dict) or layer.get("class_name") != "RNN":
        return layer
    layers = rnn_layers(entry, layer.get("config") or {})
    if len(layers) != 1:
        raise fail(entry, "wraps an RNN of stacked cells: lstmrt reads one cell per direction")
    name, config = layers[0]
    return {"class_name": name, "config": config}


def _count(layer_cfg: dict) -> int:
    cls = layer_cfg.get("class_name", "")
    return 3 if cls.startswith("CuDNN") or layer_cfg["config"].get("use_bias", True) else 2


def per_step(entry, cfg: dict, weights: list, ctx: Context, input_rank, features):
    """Dense / Activation / LeakyReLU / ReLU / ELU / PReLU / Normalization / Embedding (or TimeDistributed of one),
    Rescaling and arithmetic with a constant -> specs (maybe none)."""
    cls, where = entry.class_name, f"Keras layer {entry.name!r} ({entry.class_name})"
    if getattr(entry, "activation", None) is not None:  # keras.ops.tanh(h), tf.nn.relu(h) (keras_graph read it)
        return [Activation(entry.activation)]
    if cls == "TimeDistributed":
        inner = cfg["layer"]
        allowed = ("Dense", "Activation") + ACTIVATION_LAYERS + ("PReLU",) + NO_OPS
        if inner.get("class_name") not in allowed:
            raise fail(entry, f"wraps {inner.get('class_name')}; supported: {', '.join(allowed)}")
        sub = type(entry)(inner["class_name"], inner["config"], entry.name)
        inner_rank = None if input_rank is None else input_rank - 1  # the wrapped layer sees one step: no time axis
        return per_step(sub, inner["config"], weights, ctx, inner_rank, features)
    if cls in NO_OPS:
        return []
    if cls == "Activation":
        return [Activation(ctx.act(cfg.get("activation"), where))]
    if cls == "ReLU" and _clipped_relu(cfg, where):
        return clipped_relu(cfg, where)
    if cls in ACTIVATION_LAYERS:
        return [Activation(layer_activation(cls, cfg, where))]
    if cls == "PReLU":
        _expect(entry, weights, 1)
        return [prelu(entry, cfg, weights[0], input_rank, features)]
    if cls == "Dense":
        if cfg.get("lora_rank"):
            raise fail(entry, "LoRA Dense layers are not supported (merge the LoRA weights into the kernel first)")
        use_bias = cfg.get("use_bias", True)
        activation = cfg.get("activation")
        if _is_prelu(activation):
            return _dense_prelu(entry, activation, weights, use_bias, input_rank)
        _expect(entry, weights, 2 if use_bias else 1)
        bias = weights[1] if use_bias else None
        if isinstance(activation, dict) and activation.get("class_name") == "ReLU":  # an activation layer object
            relu_cfg = activation.get("config") if isinstance(activation.get("config"), dict) else {}
            if _clipped_relu(relu_cfg, where):
                return [Dense(weights[0].T, bias), *clipped_relu(relu_cfg, where)]
        return [Dense(weights[0].T, bias, activation=ctx.act(activation, where))]
    if cls == "Embedding":
        _expect(entry, weights, 1)
        return [Embedding(weights[0])]
    if cls == "Normalization":
        return _normalization(entry, cfg, weights, input_rank, features)
    if cls == "BatchNormalization":
        return [_batch_normalization(entry, cfg, weights, input_rank)]
    if cls in ("LayerNormalization", "RMSNormalization"):
        return [_layer_normalization(entry, cls, cfg, weights, input_rank, features)]
    if cls == "Rescaling":
        return [keras_arith.rescaling(cfg, input_rank, features)]
    if cls == "Flatten":  # of (batch, features), after a layer that returned its last step: nothing to flatten
        if input_rank != 2:
            raise fail(entry, "flattens a sequence's time and feature axes into one: lstmrt keeps the time axis")
        return []
    if entry.arith is not None:  # `h * 2.0`, `1 - h`, ... (keras_graph read it)
        return [keras_arith.affine(entry.arith, input_rank, features)]
    raise fail(entry, f"not supported; supported layers: {SUPPORTED}")


def _is_prelu(activation) -> bool:
    """A PReLU layer object given as activation= (its config), or its class name (a layer with defaults in Keras 2)."""
    return activation == "PReLU" or (isinstance(activation, dict) and activation.get("class_name") == "PReLU")


def _dense_prelu(entry, activation, weights: list, use_bias: bool, input_rank) -> list:
    """Dense(activation=PReLU(...)): a Dense, then the PReLU, whose alpha Keras lists after the Dense's own weights
    (kernel, bias, alpha); a single slope is the Dense's leaky_relu activation, as for a LeakyReLU object."""
    if len(weights) == 1 + use_bias:
        raise fail(
            entry,
            "its PReLU activation has no alpha weight: Keras 3 creates it at the model's first call, so call "
            "the model once before saving it (or use a PReLU layer after the Dense)",
        )
    _expect(entry, weights, 2 + use_bias)
    kernel, bias = weights[0].T, weights[1] if use_bias else None
    cfg = (activation.get("config") or {}) if isinstance(activation, dict) else {}
    what = "its PReLU activation's alpha"
    spec = prelu(entry, cfg, weights[-1], input_rank, kernel.shape[0], what=what)
    if isinstance(spec, Activation):
        return [Dense(kernel, bias, activation=spec.activation)]
    return [Dense(kernel, bias), spec]


def prelu(entry, cfg: dict, alpha, input_rank, features, what: str = "alpha"):
    """Keras PReLU, relu(x) - alpha * relu(-x). alpha has the input's shape without the batch axis, 1 on the
    shared_axes: (steps, features) on a sequence, (features,) after the time axis is gone. One value for all is
    leaky_relu(value); one per feature a PReLU; one per time step is refused, since lstmrt runs any number of
    steps. Refused by shape, even when the rows are equal, so that a model loads or not whatever its weights."""
    a = np.asarray(alpha)
    ndim = None if input_rank is None else input_rank - 1
    if a.ndim not in (1, 2) or (ndim is not None and a.ndim != ndim):
        want = {None: "(steps, features) or (features,)", 2: "(steps, features)", 1: "(features,)"}.get(ndim)
        raise CorruptFileError(
            f"Keras layer {entry.name!r} ({entry.class_name}): {what} has shape {a.shape}; its input needs {want}"
        )
    if a.ndim == 2 and a.shape[0] > 1:
        raise fail(
            entry,
            f"{what} has shape {a.shape}, one slope per time step (shared_axes={cfg.get('shared_axes')!r}): "
            "lstmrt runs any number of steps, so a slope per step cannot be streamed; build the PReLU with "
            "shared_axes=[1] (one slope per feature, shared over time)",
        )
    a = a.reshape(-1)
    if features is not None and a.size not in (1, features):
        raise CorruptFileError(
            f"Keras layer {entry.name!r} ({entry.class_name}): {what} has {a.size} values for {features} features"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.abs(a) <= _FLOAT32_MAX)):
        raise fail(
            entry,
            f"{what} holds inf or NaN (or a value beyond float32): Keras's relu(x) - alpha * relu(-x) is then "
            "NaN even for x > 0, where lstmrt's PReLU returns x",
        )
    if a.size == 1:
        return Activation(acts.with_parameter("leaky_relu", float(a[0])))
    return PReLU(a)


@dataclasses.dataclass(frozen=True)
class Point:
    """The data after a layer of the chain, as a later Add reads it: how many specs came before, its features,
    whether time was gone (a final output) or reversed (go_backwards) there, and the layer's class."""

    specs: int
    features: int | None
    final: bool
    reversed_seq: bool
    class_name: str


def skip_add(entry, point: Point, here: Point, mask_value) -> Add:
    """Keras Add of the data (`here`) and an earlier point of the chain: an lstmrt Add reading that point."""
    if point.features != here.features:
        raise fail(entry, f"adds {point.features} features to {here.features}: lstmrt adds as many features")
    if point.final != here.final:
        raise fail(entry, "adds a sequence to a final output (return_sequences=False): lstmrt adds the same step")
    if point.reversed_seq or here.reversed_seq:
        raise fail(entry, "adds data in reversed time order (after a go_backwards layer), which lstmrt cannot express")
    if point.class_name == "Masking" and mask_value:
        raise fail(
            entry,
            f"adds the output of Masking(mask_value={mask_value:g}), which Keras zeroes at masked steps: lstmrt adds "
            "the input unchanged (the same only for mask_value=0)",
        )
    if point.specs == 0 and mask_value:  # the input before the Masking layer: its masked steps hold the mask value
        raise fail(
            entry,
            f"adds the model input as it is before Masking(mask_value={mask_value:g}), whose masked steps Keras "
            "adds with the mask value in them: lstmrt's masked model zeroes those steps of its input (the same only "
            "for mask_value=0)",
        )
    return Add(here.features, "input" if point.specs == 0 else point.specs - 1)


def global_pooling(entry, cfg: dict, features, *, after_last_step: bool) -> GlobalPooling:
    """GlobalAveragePooling1D / GlobalMaxPooling1D over the time axis: lstmrt pools the steps so far, and the model
    then returns each sequence's last step, which is the pool of the whole sequence."""
    if after_last_step:
        raise fail(entry, "follows a layer that returned its last step only: there is no time axis left to pool")
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise fail(entry, f"data_format={cfg['data_format']!r} pools over the features; lstmrt pools over time")
    if cfg.get("keepdims", False):
        raise fail(
            entry, "keepdims=True (a (batch, 1, features) output) is not supported; lstmrt returns (batch, features)"
        )
    if features is None:
        raise fail(entry, "the number of features it pools is not known (no input shape or layer before it)")
    return GlobalPooling(int(features), POOLING[entry.class_name])


def refuse_quantized(entry, cfg: dict) -> None:
    """Keras 3's model.quantize() (int8, int4, float8, gptq) stores integer or scaled weights that lstmrt does not
    run: refused up front, naming the mode, rather than at the first weight that does not fit a float layer.
    Mixed precision (mixed_float16 / mixed_bfloat16) keeps float32 variables and is run in float32."""
    for c in (cfg, (cfg.get("layer") or {}).get("config") or {}):  # TimeDistributed's inner layer
        mode = _quantization_mode(c.get("dtype"))
        if mode:
            raise fail(
                entry,
                f"is quantized by Keras (dtype policy {mode!r}); lstmrt runs float weights: load the "
                "model as saved before model.quantize()",
            )


def _quantization_mode(policy):
    """The quantization mode of a Keras dtype policy (a dict in Keras 3 files, a name in older ones), or None."""
    if isinstance(policy, dict):
        c = policy.get("config") or {}
        if c.get("mode") or any(k in str(policy.get("class_name", "")) for k in ("Quantized", "Int4", "Float8")):
            return str(c.get("mode") or policy.get("class_name"))
        policy = c.get("name", "")
    name = str(policy or "")
    return name if re.match(r"(int[48]|float8|gptq)(_|/|$)", name) else None


def _per_feature(entry, cfg: dict, input_rank) -> None:
    axis = cfg.get("axis", -1)
    axis = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    last = (input_rank - 1) if input_rank else None
    if len(axis) != 1 or axis[0] not in (-1, last):
        raise fail(entry, f"axis={cfg.get('axis')!r}: only per-feature normalization (axis=-1) is supported")


def _batch_normalization(entry, cfg: dict, weights: list, input_rank):
    """Inference: (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta, a per-feature Affine."""
    _per_feature(entry, cfg, input_rank)
    if cfg.get("renorm"):
        raise fail(entry, "renorm=True is not supported")
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    _expect(entry, weights, scale + center + 2)
    w = list(weights)
    gamma = w.pop(0) if scale else None
    beta = w.pop(0) if center else None
    mean, var = w
    return Affine.from_batch_norm(mean, var, cfg.get("epsilon", 1e-3), gamma, beta)


def _layer_normalization(entry, cls: str, cfg: dict, weights: list, input_rank, features):
    """Over each step's features: LayerNormalization (mean and variance; Keras 3's deprecated rms_scaling divides
    x by sqrt(variance + epsilon), as Keras computes it) or RMSNormalization (x / sqrt(mean(x^2) + epsilon))."""
    _per_feature(entry, cfg, input_rank)
    if cls == "RMSNormalization":
        _expect(entry, weights, 1)
        gamma, beta, mode, default_eps = weights[0], None, "rms", 1e-6
    else:
        has_gamma, has_beta = _layer_norm_weights(cfg)
        _expect(entry, weights, has_gamma + has_beta)
        w = list(weights)
        gamma = w.pop(0) if has_gamma else None
        beta = w.pop(0) if has_beta else None
        mode = "variance_scale" if cfg.get("rms_scaling") else "layer"
        default_eps = 1e-3
    size = next((np.asarray(a).size for a in (gamma, beta) if a is not None), features)
    if not size:
        raise fail(entry, "its feature count is unknown (no weights and no input shape)")
    epsilon = cfg.get("epsilon", default_eps)
    try:
        return LayerNorm(size, scale=gamma, shift=beta, epsilon=epsilon, mode=mode)
    except (ValueError, TypeError) as exc:
        raise fail(entry, str(exc)) from None


def _normalization(entry, cfg: dict, weights: list, input_rank, features) -> list:
    _per_feature(entry, cfg, input_rank)
    if cfg.get("mean") is not None:  # constants given to the constructor
        mean, var = np.asarray(cfg["mean"], np.float64), np.asarray(cfg["variance"], np.float64)
    else:
        _expect(entry, weights, 3)  # adapted: mean, variance, count
        mean, var = np.asarray(weights[0], np.float64), np.asarray(weights[1], np.float64)
    mean, var = np.broadcast_arrays(mean.reshape(-1), var.reshape(-1))
    if mean.size == 1 and features:  # a scalar constant applies to every feature
        mean, var = np.full(features, mean[0]), np.full(features, var[0])
    std = np.maximum(np.sqrt(var), NORMALIZATION_EPSILON)
    if cfg.get("invert"):
        return [Affine(std, mean)]
    # (x - mean) / std in two layers, as Keras rounds: folded into x / std - mean / std, data far from zero (a
    # pressure of 101325 Pa, a spread of 100) would lose the digits the subtraction keeps (5e-5 there)
    return [Affine(np.ones_like(mean), -mean), Affine(1.0 / std, np.zeros_like(mean))]
