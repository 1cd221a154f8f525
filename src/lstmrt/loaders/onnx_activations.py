"""ONNX activations as lstmrt activation names (docs/math.md section 7): the element-wise ops that read nothing but
their attributes, and the entries of a recurrent node's `activations`. Parameters are read as ONNX defines them, an
absent one taking ONNX's default; one lstmrt does not compute is a ValueError saying why, which the caller raises as
a refusal naming the node."""

from __future__ import annotations

import numpy as np

from .. import activations as acts

# ops without parameters
PLAIN = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Relu": "relu",
    "Softsign": "softsign",
    "Softplus": "softplus",
    "Exp": "exponential",
    "Mish": "mish",
    "HardSwish": "hard_silu",
}

_SELU = (1.6732632423543772, 1.0507009873554805)  # ONNX's defaults, lstmrt's selu
# ops with parameters: each attribute with ONNX's default (the recurrent entries take the same, by the ONNX spec)
PARAMETERS = {
    "LeakyRelu": {"alpha": 0.01},
    "Celu": {"alpha": 1.0},
    "Shrink": {"lambd": 0.5, "bias": 0.0},
    "Elu": {"alpha": 1.0},
    "Selu": {"alpha": _SELU[0], "gamma": _SELU[1]},
    "HardSigmoid": {"alpha": 0.2, "beta": 0.5},
    "ThresholdedRelu": {"alpha": 1.0},
    "Affine": {"alpha": 1.0, "beta": 0.0},
    "ScaledTanh": {"alpha": 1.0, "beta": 1.0},
}
# the op's parameter is the lstmrt activation's
_FREE = {"LeakyRelu": "leaky_relu", "Celu": "celu"}
# lstmrt computes these ops only at some parameter values: values -> lstmrt name
_FIXED = {
    "Elu": {(1.0,): "elu"},
    "Selu": {_SELU: "selu"},
    "HardSigmoid": {(0.2, 0.5): "hard_sigmoid", (1 / 6, 0.5): "hard_sigmoid_v3"},  # Keras 2 / ONNX; torch, Keras 3
    "Affine": {(1.0, 0.0): "linear"},
}

ELEMENTWISE = (*PLAIN, "LeakyRelu", "Celu", "Shrink", "Elu", "Selu", "HardSigmoid", "ThresholdedRelu")

# the entries ONNX allows in a recurrent node's `activations`, with how many of (alpha, beta) each takes: the lists
# activation_alpha / activation_beta hold values only for the entries that take them, in order over all the entries
# (ONNX Runtime reads them so), and an entry past a list's end takes the default
RECURRENT = {
    **dict.fromkeys(("Sigmoid", "Tanh", "Relu", "Softsign", "Softplus"), 0),
    **dict.fromkeys(("LeakyRelu", "Elu", "ThresholdedRelu"), 1),
    **dict.fromkeys(("HardSigmoid", "Affine", "ScaledTanh"), 2),
}
READ_IN_RECURRENT = ("Sigmoid", "Tanh", "Relu", "Softsign", "Softplus", "LeakyRelu", "Elu", "HardSigmoid", "Affine")


def elementwise(op: str, attrs: dict) -> str:
    """The lstmrt name of the element-wise op `op` (one of ELEMENTWISE) with the node's attributes."""
    if op in PLAIN:
        return PLAIN[op]
    return _name(op, {key: attrs.get(key, default) for key, default in PARAMETERS[op].items()})


def recurrent(entry: str, alpha: float | None, beta: float | None) -> str:
    """The lstmrt name of a recurrent node's activation `entry` (one of RECURRENT), given its alpha and beta from
    activation_alpha / activation_beta, None when the list held none for it."""
    if entry in PLAIN:
        return PLAIN[entry]
    if entry == "Affine" and alpha is None:
        # the ONNX spec's default alpha (the Affine op's, 1) is not ONNX Runtime's (0): only a written one is clear
        raise ValueError(
            "Affine without its alpha in activation_alpha: ONNX's default (1) and ONNX Runtime's (0) differ"
        )
    params = dict(PARAMETERS[entry])
    for key, value in zip(params, (alpha, beta)):
        if value is not None:
            params[key] = value
    return _name(entry, params)


def _name(op: str, params: dict) -> str:
    if op in _FREE:
        ((key, value),) = params.items()
        return acts.with_parameter(_FREE[op], value, where=f"{op} {key}")
    if op == "Shrink":  # y = x + bias below -lambd, x - bias above lambd, else 0
        lambd, bias = params["lambd"], params["bias"]
        if bias == 0:
            return acts.with_parameter("hard_shrink", lambd, where="Shrink lambd")
        if np.float32(bias) == np.float32(lambd):
            return acts.with_parameter("soft_shrink", lambd, where="Shrink lambd")
        raise ValueError(
            f"Shrink with bias {bias:.7g}: lstmrt computes it with bias 0 (hard_shrink) or bias = lambd = {lambd:.7g} "
            "(soft_shrink)"
        )
    values = tuple(params.values())
    for fixed, name in _FIXED.get(op, {}).items():
        if np.allclose(values, fixed, rtol=1e-6, atol=0):  # the defaults written out as float32
            return name
    described = ", ".join(f"{key} {value:.7g}" for key, value in params.items())  # float32 attributes: 7 digits
    if op not in _FIXED:
        raise ValueError(f"{op} ({described}) is not among lstmrt's activations")
    options = " or ".join(
        ", ".join(f"{key} {value:.6g}" for key, value in zip(params, fixed)) + f" ({name})"
        for fixed, name in _FIXED[op].items()
    )
    raise ValueError(f"{op} with {described}: lstmrt computes it with {options}")
