"""PyTorch-named parameters (NumPy arrays) to lstmrt layer specs. No torch import: used both for live modules
and for checkpoint files. PyTorch's layout is lstmrt's canonical layout, so this is naming, not reordering."""

from __future__ import annotations

from ..layers import GRU, LSTM, Bidirectional, Dense, Embedding, SimpleRNN

_CELLS = {"LSTM": LSTM, "GRU": GRU, "RNN": SimpleRNN}


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
