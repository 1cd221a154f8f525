"""PyTorch-named parameters (NumPy arrays) to lstmrt layer specs. No torch import: used both for live modules
and for checkpoint files. PyTorch's layout is lstmrt's canonical layout, so this is naming, not reordering."""

from __future__ import annotations

import numpy as np

from .. import activations as acts
from ..layers import GRU, LSTM, Activation, Affine, Bidirectional, Dense, Embedding, LayerNorm, PReLU, SimpleRNN

_CELLS = {"LSTM": LSTM, "GRU": GRU, "RNN": SimpleRNN}
NORMS = ("LayerNorm", "RMSNorm")
BATCH_NORM = "BatchNorm1d"
# nn.RMSNorm(eps=None) adds the epsilon of the input's dtype; lstmrt's input is float32
_FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _direction(kind: str, params: dict, prefix: str, suffix: str, *, nonlinearity: str = "tanh"):
    def get(name):
        return params.get(f"{prefix}{name}{suffix}")

    args = (get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"))
    if kind == "LSTM":
        return LSTM(*args, weight_hr=get("weight_hr"))
    if kind == "GRU":
        return GRU(*args, reset_after=True)
    return SimpleRNN(*args, activation=nonlinearity)


def recurrent_layers(
    kind: str, params: dict, *, num_layers: int, bidirectional: bool, prefix: str = "", nonlinearity: str = "tanh"
) -> list:
    """Specs for torch nn.LSTM / nn.GRU / nn.RNN parameters `{prefix}weight_ih_l{k}[_reverse]` etc."""
    if kind not in _CELLS:
        raise ValueError(f"unknown recurrent module kind {kind!r}; supported: {', '.join(_CELLS)}")
    layers = []
    for k in range(num_layers):
        fw = _direction(kind, params, prefix, f"_l{k}", nonlinearity=nonlinearity)
        if bidirectional:
            bw = _direction(kind, params, prefix, f"_l{k}_reverse", nonlinearity=nonlinearity)
            layers.append(Bidirectional(fw, bw, "concat"))
        else:
            layers.append(fw)
    return layers


def cell_layer(kind: str, params: dict, *, prefix: str = "", nonlinearity: str = "tanh"):
    """Spec for torch nn.LSTMCell / nn.GRUCell / nn.RNNCell parameters (no _l0 suffix)."""
    return _direction(kind, params, prefix, "", nonlinearity=nonlinearity)


def linear_layer(params: dict, *, prefix: str = "") -> Dense:
    return Dense(params[f"{prefix}weight"], params.get(f"{prefix}bias"))


def embedding_layer(params: dict, *, prefix: str = "") -> Embedding:
    return Embedding(params[f"{prefix}weight"])


def norm_layer(kind: str, params: dict, *, normalized_shape, eps, prefix: str = "") -> LayerNorm:
    """Spec for torch nn.LayerNorm / nn.RMSNorm over the feature axis (weight and bias absent without
    elementwise_affine, bias absent with bias=False)."""
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (list, tuple)) else (normalized_shape,)
    if len(shape) != 1 or isinstance(shape[0], bool) or not isinstance(shape[0], int):
        raise ValueError(
            f"nn.{kind}(normalized_shape={normalized_shape!r}) is not supported: only the feature axis "
            "(normalized_shape=features)"
        )
    weight, bias = params.get(f"{prefix}weight"), params.get(f"{prefix}bias")
    if kind == "RMSNorm":
        return LayerNorm(shape[0], scale=weight, epsilon=_FLOAT32_EPS if eps is None else eps, mode="rms")
    return LayerNorm(shape[0], scale=weight, shift=bias, epsilon=eps, mode="layer")


def batch_norm_layer(params: dict, *, eps, prefix: str = "") -> Affine:
    """Spec for torch nn.BatchNorm1d at inference, on (B, F): (x - running_mean) / sqrt(running_var + eps) * weight
    + bias per feature, an Affine (folded in float64; weight and bias absent with affine=False)."""
    mean = np.asarray(params[f"{prefix}running_mean"]).reshape(-1)
    var = np.asarray(params[f"{prefix}running_var"]).reshape(-1)
    weight, bias = params.get(f"{prefix}weight"), params.get(f"{prefix}bias")
    gamma = np.asarray(weight).reshape(-1) if weight is not None else mean
    beta = np.asarray(bias).reshape(-1) if bias is not None else mean
    if not (mean.shape == var.shape == gamma.shape == beta.shape):
        raise ValueError(
            f"nn.BatchNorm1d: running_mean {mean.shape}, running_var {var.shape}, weight {gamma.shape} and bias "
            f"{beta.shape} differ in size"
        )
    return Affine.from_batch_norm(mean, var, eps, weight, bias)


def prelu_layer(weight, *, two_d: bool, name: str = "", hint: str = ""):
    """nn.PReLU / F.prelu with slopes `weight`: one slope is leaky_relu(slope), the same on any data; one per feature
    is a PReLU, read on (B, F) data only (two_d), where torch's channel axis, dim 1, is the features. On a sequence
    (B, T, F) dim 1 is time (batch without batch_first): torch gives each step its own slope, which no lstmrt layer
    does. ValueError for what lstmrt refuses, naming the call `name` (default: the module) and ending with `hint`
    where it refuses a sequence (how to say where the data is (B, F))."""
    w = np.asarray(weight)
    where = name or f"nn.PReLU(num_parameters={w.size})"
    if w.ndim > 1 or w.size == 0:  # torch takes a scalar or 1-D weight of 1 or F slopes
        raise ValueError(f"{where}: weight has shape {w.shape}, expected (num_parameters,)")
    if not np.isfinite(w).all():  # a diverged or damaged checkpoint; torch would give NaN at x = 0 (0 * inf)
        bad = int(np.flatnonzero(~np.isfinite(w.reshape(-1)))[0])
        raise ValueError(f"{where}: slope {bad} is {w.reshape(-1)[bad]}; lstmrt takes finite slopes only")
    if w.size == 1:
        return Activation(acts.with_parameter("leaky_relu", float(w.reshape(-1)[0]), where=where))
    if not two_d:
        raise ValueError(
            f"{where} is applied to a sequence: on (B, T, F) torch takes dim 1 as the channels, one slope per time "
            "step (per batch row without batch_first), not per feature; lstmrt has one slope per feature and reads "
            f"{where} on (B, F), after the last step or pooling over time{hint}"
        )
    return PReLU(w)
