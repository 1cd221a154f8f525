"""ONNX LSTM, GRU and RNN nodes as lstmrt layer specs, by the ONNX table of docs/math.md: gate blocks reordered
to lstmrt's, B split into its input and recurrent halves, one spec per direction."""

from __future__ import annotations

import numpy as np

from ..errors import CorruptFileError, UnsupportedModelError
from ..layers import GRU, LSTM, Bidirectional, SimpleRNN
from . import onnx_activations

# per op: spec class, ONNX gate blocks in lstmrt's order, default activations, activations per direction
_KINDS = {
    "LSTM": (LSTM, [0, 2, 3, 1], ("Sigmoid", "Tanh", "Tanh")),  # ONNX i, o, f, c -> i, f, g, o
    "GRU": (GRU, [1, 0, 2], ("Sigmoid", "Tanh")),  # ONNX z, r, h -> r, z, n
    "RNN": (SimpleRNN, [0], ("Tanh",)),
}
_DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


def recurrent_spec(node, where: str, weights: dict, input_size: int):
    """The lstmrt spec of one recurrent node. weights: W, R and the optional B, P as float32 arrays."""
    cls, order, default_acts = _KINDS[node.op_type]
    attrs = node.attrs
    direction = attrs.get("direction", "forward")
    if direction not in _DIRECTIONS:
        raise UnsupportedModelError(f"{where}: direction {direction!r} is not forward, reverse or bidirectional")
    _check_types(attrs, where)
    D, H = _DIRECTIONS[direction], attrs.get("hidden_size")
    if attrs.get("input_forget", 0):
        raise UnsupportedModelError(f"{where}: input_forget=1 (input and forget gates coupled) is not supported")
    W, R, B, P = (weights.get(k) for k in ("W", "R", "B", "P"))
    G = len(order)
    if H is None:
        H = W.shape[1] // G if W is not None and W.ndim == 3 else 0
    _expect(W, (D, G * H, input_size), "W", where)
    _expect(R, (D, G * H, H), "R", where)
    if B is not None:
        _expect(B, (D, 2 * G * H), "B", where)
    if P is not None:
        _expect(P, (D, 3 * H), "P", where)
    acts = _activations(attrs, len(default_acts), D, default_acts, where)
    specs = []
    for d in range(D):
        args = [_blocks(W[d], order, H), _blocks(R[d], order, H)]
        if B is not None:
            args += [_blocks(B[d, : G * H], order, H), _blocks(B[d, G * H :], order, H)]
        options = {"go_backwards": direction == "reverse"}
        if cls is LSTM:
            clip = attrs.get("clip")
            options.update(activations=acts[d], cell_clip=clip)
            if P is not None:
                options["peephole"] = P[d].reshape(3, H)[[0, 2, 1]]  # ONNX i, o, f -> rows i, f, o
        elif cls is GRU:
            options.update(activations=acts[d], reset_after=bool(attrs.get("linear_before_reset", 0)))
        else:
            options["activation"] = acts[d][0]
        specs.append(cls(*args, **options))
    return specs[0] if D == 1 else Bidirectional(specs[0], specs[1], "concat")


# attribute -> the Python type the decoder gives for its ONNX type
_TYPES = {
    "hidden_size": int,
    "clip": float,
    "input_forget": int,
    "linear_before_reset": int,
    "layout": int,
    "activations": tuple,
    "activation_alpha": tuple,
    "activation_beta": tuple,
}
# the type of the items of list attributes: a list of another ONNX type (INTS, STRINGS) is a damaged file
_ITEM_TYPES = {"activations": str, "activation_alpha": float, "activation_beta": float}


def _check_types(attrs: dict, where: str) -> None:
    for name, kind in _TYPES.items():
        if name in attrs and not isinstance(attrs[name], kind):
            raise CorruptFileError(f"{where}: attribute {name} is a {type(attrs[name]).__name__}, not {kind.__name__}")
    for name, kind in _ITEM_TYPES.items():
        if not all(isinstance(item, kind) for item in attrs.get(name, ())):
            raise CorruptFileError(f"{where}: attribute {name} holds values other than {kind.__name__}s")
    if attrs.get("hidden_size", 1) <= 0 or attrs.get("layout", 0) not in (0, 1):
        raise CorruptFileError(f"{where}: hidden_size {attrs.get('hidden_size')} / layout {attrs.get('layout')}")


def _blocks(w, order, H):
    return np.concatenate([w[k * H : (k + 1) * H] for k in order])


def _expect(array, shape, name, where):
    if array is None or array.shape != shape:
        got = "absent" if array is None else f"shape {array.shape}"
        raise UnsupportedModelError(f"{where}: {name} is {got}, expected {shape}")


def _activations(attrs, count, D, default, where) -> list:
    """Per direction, the lstmrt names of the node's `activations` (ONNX lists count per direction)."""
    names = attrs.get("activations", default * D)
    if len(names) != count * D:
        raise UnsupportedModelError(f"{where}: activations lists {len(names)} names, expected {count * D}")
    alphas, betas = list(attrs.get("activation_alpha", ())), list(attrs.get("activation_beta", ()))
    out = []
    for name in names:
        takes = onnx_activations.RECURRENT.get(name)
        if takes is None:
            supported = ", ".join(onnx_activations.READ_IN_RECURRENT)
            raise UnsupportedModelError(f"{where}: activation {name!r} is not supported; supported: {supported}")
        alpha = alphas.pop(0) if takes >= 1 and alphas else None
        beta = betas.pop(0) if takes == 2 and betas else None
        try:
            out.append(onnx_activations.recurrent(name, alpha, beta))
        except ValueError as exc:
            raise UnsupportedModelError(f"{where}: activation {name} cannot be computed by lstmrt: {exc}") from None
    return [tuple(out[d * count : (d + 1) * count]) for d in range(D)]
