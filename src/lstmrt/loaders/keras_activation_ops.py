"""Activation functions applied to a tensor in a functional Keras model, as lstmrt activations: Keras 3's ops nodes
(`keras.ops.tanh(h)`, module keras.src.ops.*, parameters in the node's config) and tf_keras's op layers
(`tf.nn.relu(h)`, TFOpLambda, parameters in the call's keyword arguments). Keras passes no mask through either; the
graph reader marks them so (keras_graph's drops_mask)."""

from __future__ import annotations

from .. import activations as acts

# Keras 3 ops node class -> lstmrt activation; None: read with its parameters by _with_parameters
OPS_NODES = {
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Relu": "relu",
    "Relu6": "relu6",
    "Silu": "silu",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "Selu": "selu",
    "Exp": "exponential",
    "HardSigmoid": "hard_sigmoid_v3",  # Keras 3: relu6(x + 3) / 6
    "HardSilu": "hard_silu",
    "LogSigmoid": "log_sigmoid",
    "Gelu": None,
    "LeakyRelu": None,
    "Elu": None,
    "Softmax": None,
    "LogSoftmax": None,
}
# tf_keras op layer function -> (lstmrt activation, or the OPS_NODES class whose parameters it takes, its keyword
# arguments with TensorFlow's defaults, named as that class names them)
TF_FUNCTIONS = {
    "math.tanh": ("tanh", {}),
    "nn.tanh": ("tanh", {}),
    "math.sigmoid": ("sigmoid", {}),
    "nn.sigmoid": ("sigmoid", {}),
    "nn.relu": ("relu", {}),
    "nn.relu6": ("relu6", {}),
    "nn.silu": ("silu", {"beta": 1.0}),
    "nn.swish": ("silu", {"beta": 1.0}),
    "math.softplus": ("softplus", {}),
    "nn.softplus": ("softplus", {}),
    "math.softsign": ("softsign", {}),
    "nn.softsign": ("softsign", {}),
    "nn.selu": ("selu", {}),
    "nn.elu": ("elu", {}),
    "math.exp": ("exponential", {}),
    "nn.gelu": ("Gelu", {"approximate": False}),
    "nn.leaky_relu": ("LeakyRelu", {"alpha": 0.2}),
    "nn.softmax": ("Softmax", {"axis": -1}),
    "math.softmax": ("Softmax", {"axis": -1}),
    "nn.log_softmax": ("LogSoftmax", {"axis": -1}),
    "math.log_softmax": ("LogSoftmax", {"axis": -1}),
}
_TF_NAMES = {"alpha": "negative_slope"}  # tf.nn.leaky_relu's alpha is LeakyRelu's negative_slope
_DEFAULTS = {"Gelu": {"approximate": True}, "LeakyRelu": {"negative_slope": 0.2}, "Elu": {"alpha": 1.0}}


def is_ops_node(class_name: str, layer: dict, config: dict) -> bool:
    """A Keras 3 ops node of an activation (not the layer of the same class name, Softmax): its module is
    keras.src.ops.*; a file without modules tells it by a config without the layers' dtype."""
    if class_name not in OPS_NODES:
        return False
    module = layer.get("module")
    return module.startswith("keras.src.ops") if isinstance(module, str) else "dtype" not in config


def activation(class_name: str, config: dict, kwargs: dict, where: str) -> str:
    """The lstmrt activation of an ops node (class_name one of OPS_NODES, parameters in config) or a tf_keras op
    layer (class_name "TFOpLambda", its function in config, parameters in kwargs); ValueError for parameters lstmrt
    does not compute."""
    if class_name == "TFOpLambda":
        function = config.get("function")
        name, defaults = TF_FUNCTIONS[function]
        unknown = set(kwargs) - set(defaults) - {"name"}
        if unknown:
            raise ValueError(
                f"{where}: {function} called with {', '.join(sorted(unknown))}=, which lstmrt does not read"
            )
        options = {**defaults, **{k: v for k, v in kwargs.items() if k in defaults}}
        if options.get("beta", 1.0) != 1.0:
            raise ValueError(f"{where}: {function}(beta={options['beta']!r}): lstmrt's silu has beta 1")
        if name not in OPS_NODES:
            return name
        return _with_parameters(name, {_TF_NAMES.get(k, k): v for k, v in options.items()}, where)
    name = OPS_NODES[class_name]
    if name is not None:
        return name
    return _with_parameters(class_name, {**_DEFAULTS.get(class_name, {}), **config}, where)


def _with_parameters(op: str, options: dict, where: str) -> str:
    if op == "Gelu":
        return "gelu_tanh" if options.get("approximate") else "gelu"
    if op == "LeakyRelu":
        return acts.with_parameter("leaky_relu", _number(options.get("negative_slope"), where), where=where)
    if op == "Elu":
        if _number(options.get("alpha"), where) != 1.0:
            raise ValueError(f"{where}: elu with alpha={options['alpha']!r}; lstmrt's elu has alpha 1")
        return "elu"
    axis = options.get("axis", -1)
    if axis not in (-1, [-1], (-1,)):
        raise ValueError(f"{where}: a softmax over axis {axis!r}; lstmrt's is over the features, axis -1")
    return "log_softmax" if op == "LogSoftmax" else "softmax"


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: the parameter {value!r} is not a number")
    return float(value)
