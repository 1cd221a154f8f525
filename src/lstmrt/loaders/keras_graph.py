"""A Keras model config (Sequential or Functional; Keras 2 or 3 serialization) as a plain chain of layers.

lstmrt runs chains: one input, one output, each layer fed by the previous one, and Add layers that sum the data
with an earlier point of the same chain (skip connections: Entry.skip_from). Anything else (branches, shared layers,
nested models, several inputs or outputs) is refused here with the layer that breaks the chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import CorruptFileError, UnsupportedModelError
from . import keras_activation_ops, keras_arith, keras_ops
from .keras_layers import POOLING, RECURRENT

# Keras 3 traces the mask of a Masking layer / Embedding(mask_zero=True) into the functional graph as these
# operations; they only feed `mask=` arguments, and the loader re-derives that mask from the input itself.
MASK_OPS = ("NotEqual", "Any")
# tf_keras wraps a TensorFlow op called on a tensor (`x + y`, `x[:, -1]`, `tf.reduce_mean(x, 1)`) in these layers;
# lstmrt reads the sum of two tensors of the chain (a skip connection, as layers.Add), the ops on the time axis of
# keras_ops, the arithmetic with a constant of keras_arith, and refuses the rest by name
OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
OP_ADDS = ("__operators__.add", "math.add")
# Keras 3 ops nodes (Operations, not Layers), whose class names some merge layers share (layers.Add()([x, y]))
OPS_NODES = keras_ops.NODES + tuple(keras_arith.NODES)
# tf_keras' first argument of an op layer whose `x` is a constant (`2.0 - h`): [_CONSTANT_VALUE, -1, value, kwargs]
CONSTANT_VALUE = "_CONSTANT_VALUE"
# Layers that read Keras's mask (lstmrt applies the model's mask to them)
MASK_READERS = RECURRENT + ("Bidirectional",) + tuple(k for k, v in POOLING.items() if v == "average")


@dataclass
class Entry:
    """One layer of the chain: its class, its config dict and its name (the key of its weights)."""

    class_name: str
    config: dict
    name: str
    mask_arg: bool = field(default=False)  # Keras 3 functional: called with an explicit mask= tensor
    skip_from: str | None = None  # an Add: the layer (an earlier one of the chain) whose output it adds
    op: tuple | None = None  # an op on the time axis (keras_ops): (its Keras 3 name, its parameters)
    arith: keras_arith.Arithmetic | None = None  # arithmetic of the data and a constant, run as an Affine
    drops_mask: bool = False  # an ops node or op layer: Keras passes no mask through it (Keras 3 and tf_keras)
    final_state: bool = False  # a recurrent layer's return_state h is read (its final output), not its sequence
    activation: str | None = None  # an activation applied to a tensor (keras.ops.tanh(h), tf.nn.relu(h))


def _unwrap(cfg: dict):
    """(class_name, config) of a serialized object, or of a bare `model.get_config()` dict."""
    if "class_name" in cfg and "config" in cfg:
        return cfg["class_name"], cfg["config"]
    return ("Functional" if "input_layers" in cfg else "Sequential"), cfg


def _entry(layer: dict) -> Entry:
    cls = layer.get("class_name", "?")
    cfg = layer.get("config") or {}
    name = layer.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None) or cls
    if not isinstance(cls, str) or not isinstance(name, str):  # both become names and dict keys later
        raise TypeError(
            f"a layer's class_name and name must be strings, not {type(cls).__name__} and {type(name).__name__}"
        )
    return Entry(cls, cfg if isinstance(cfg, dict) else {}, name)


def parse(model_cfg: dict):
    """(entries of every layer in config order, the chain's entries from input to output, input shape or None).
    A config without the structure Keras writes (missing entries, a list where a dict belongs, a layer named
    that does not exist) is a CorruptFileError."""
    try:
        return _parse(model_cfg)
    except (KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise CorruptFileError(f"malformed Keras model config ({type(exc).__name__}: {str(exc)[:200]})") from None


def _parse(model_cfg: dict):
    cls, cfg = _unwrap(model_cfg)
    if cls == "Sequential":
        layers = cfg if isinstance(cfg, list) else cfg.get("layers", [])  # very old Keras 2: a bare list
        entries = [_entry(layer) for layer in layers]
        shape = None if isinstance(cfg, list) else cfg.get("build_input_shape")
        chain = entries
    elif cls in ("Functional", "Model"):
        entries = [_entry(layer) for layer in cfg["layers"]]
        chain = _functional_chain(cfg, layers=cfg["layers"], entries=entries)
        shape = None
    else:
        raise UnsupportedModelError(
            f"Keras model class {cls} is not supported: only Sequential and Functional "
            "models (subclassed models have no config to read; rebuild them as Sequential "
            "or Functional)"
        )
    _refuse_masked_layers_after_ops(chain)
    _refuse_ops_on_token_ids(chain)
    for e in chain:
        if e.class_name == "InputLayer":
            shape = e.config.get("batch_shape") or e.config.get("batch_input_shape") or shape
        elif shape is None and e.config.get("batch_input_shape"):
            shape = e.config["batch_input_shape"]
        if e.class_name in ("Sequential", "Functional", "Model"):
            raise UnsupportedModelError(
                f"Keras layer {e.name!r} is a nested {e.class_name} model: not supported; "
                "build the model as one flat Sequential or Functional model"
            )
    return entries, chain, (tuple(shape) if shape else None)


def _history(obj):
    """Every (layer, node, tensor) reference found in one serialized call argument (Keras 2 or 3)."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            return [tuple(obj["config"]["keras_history"])]
        return [h for v in obj.values() for h in _history(v)]
    if isinstance(obj, (list, tuple)):
        return [h for v in obj for h in _history(v)]
    return []


def _nodes(layer: dict) -> list:
    """Each call of the layer as (tensor args, kwargs)."""
    nodes = []
    for node in layer.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            nodes.append((_history(node.get("args", [])), node.get("kwargs") or {}))
        elif node and isinstance(node[0], str):  # tf_keras op layer: one [layer, node, tensor, kwargs], no list
            kwargs = dict(node[3]) if len(node) > 3 and isinstance(node[3], dict) else {}
            tensors = [key for key, value in kwargs.items() if _is_reference(value)]  # `y` of `x + y`
            first = [] if node[0] == CONSTANT_VALUE else [tuple(node[:3])]  # `x`: a tensor, or `2.0` of `2.0 - h`
            args = first + [tuple(kwargs.pop(key)[:3]) for key in tensors]
            if kwargs.get("name") is None:
                kwargs.pop("name", None)
            nodes.append((args, kwargs))
        else:  # Keras 2: [[layer, node, tensor, kwargs], ...]
            args = [tuple(ref[:3]) for ref in node]
            kwargs = {}
            for ref in node:
                if len(ref) > 3 and isinstance(ref[3], dict):
                    kwargs.update(ref[3])
            nodes.append((args, kwargs))
    return nodes


def _is_reference(value) -> bool:
    """A Keras 2 tensor reference, [layer, node, tensor(, kwargs)]."""
    return (
        isinstance(value, (list, tuple))
        and len(value) in (3, 4)
        and isinstance(value[0], str)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:3])
    )


def _refs(value) -> list:
    """input_layers / output_layers: one [name, node, tensor] (Keras 3) or a list of them."""
    if value and isinstance(value[0], str):
        return [value]
    return list(value or [])


def _functional_chain(cfg: dict, layers: list, entries: list) -> list:
    by_name = {e.name: (layer, e) for layer, e in zip(layers, entries)}
    inputs, outputs = _refs(cfg.get("input_layers")), _refs(cfg.get("output_layers"))
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedModelError(
            f"the Keras model has {len(inputs)} inputs and {len(outputs)} outputs: lstmrt "
            "runs models with one input and one output"
        )
    chain, name, tensor = [], outputs[0][0], outputs[0][2]
    while True:
        layer, entry = by_name[name]
        where = f"Keras layer {name!r} ({entry.class_name})"
        if tensor == 1 and entry.class_name in ("LSTM", "GRU", "SimpleRNN") and entry.config.get("return_state"):
            entry.final_state = True  # `_, h, c = LSTM(return_state=True)(x)`: h is the layer's final output
        elif tensor != 0:
            what = "the cell state c" if entry.class_name == "LSTM" and tensor == 2 else f"output {tensor}"
            raise UnsupportedModelError(
                f"the model uses {what} of {where} (return_state=True): lstmrt reads a recurrent layer's output and "
                "its final state h (the final output), not the cell state or the states of a Bidirectional"
            )
        chain.append(entry)
        if entry.class_name == "InputLayer":
            break
        nodes = _nodes(layer)
        if len(nodes) != 1:
            raise UnsupportedModelError(f"{where} is called {len(nodes)} times: shared layers are not supported")
        args, kwargs = nodes[0]
        node = layer["inbound_nodes"][0]
        entry.drops_mask = entry.class_name in OP_LAYERS or _is_ops_node(entry, node)
        entry.op = _time_op(entry, layer, kwargs)
        if entry.op is None and entry.drops_mask:
            entry.arith = _arithmetic(entry, node, where)
        if entry.op is None and entry.arith is None:
            entry.activation = _activation_op(entry, layer, kwargs, where)
            entry.drops_mask |= entry.activation is not None
        if entry.op is not None or entry.arith is not None or entry.activation is not None:
            kwargs = {}  # its parameters, now in entry.op / entry.arith / entry.activation
        elif entry.class_name in OP_LAYERS:
            _check_op_layer(entry, args, kwargs, where)
        is_op_add = entry.class_name in OP_LAYERS and entry.op is None and entry.arith is None and not entry.activation
        if entry.class_name == "Add" and len(args) == 2 or is_op_add:
            # keras.layers.Add, `x + y` (Keras 3's ops Add, tf_keras' TFOpLambda)
            main, skip = _flow_and_point(args, by_name, where)
            args, entry.skip_from = [main], skip[0]
        if len(args) != 1:
            raise UnsupportedModelError(f"{where} takes {len(args)} tensors: lstmrt runs chains of single-input layers")
        for key, value in kwargs.items():
            if key == "mask" and value is not None:
                refs = _history(value)
                if any(by_name[r[0]][1].class_name not in MASK_OPS for r in refs):
                    raise UnsupportedModelError(
                        f"{where} is called with a custom mask=: only masks from Masking or "
                        "Embedding(mask_zero=True) are supported"
                    )
                entry.mask_arg = True
            elif key not in ("training", "mask"):
                raise UnsupportedModelError(f"{where} is called with {key}=: not supported")
        name, tensor = args[0][0], args[0][2]
    chain.reverse()
    on_chain = {e.name for e in chain}
    for e in entries:
        if e.name not in on_chain and e.class_name not in MASK_OPS:
            raise UnsupportedModelError(
                f"Keras layer {e.name!r} ({e.class_name}) is not on the single "
                "input-to-output chain: branching models are not supported"
            )
    return chain


def _time_op(entry, layer: dict, kwargs: dict):
    """(op, parameters) of a Keras 3 ops node or tf_keras op layer on the time axis that keras_ops reads, else None.
    Keras 3 passes GetItem's key as a call argument beside the tensor; tf_keras passes every parameter as kwargs."""
    tf_function = entry.class_name in OP_LAYERS
    op = keras_ops.TF_FUNCTIONS.get(entry.config.get("function")) if tf_function else None
    if not tf_function and entry.class_name in keras_ops.NODES:
        op = entry.class_name
    if op is None:
        return None
    node = layer["inbound_nodes"][0]
    constants = [a for a in node.get("args", [])[1:] if not _history(a)] if isinstance(node, dict) else []
    return op, keras_ops.arguments(op, entry.config, constants, kwargs, tf_function)


def _activation_op(entry, layer: dict, kwargs: dict, where: str):
    """The lstmrt activation of a Keras 3 ops node or tf_keras op layer applying one (keras_activation_ops), else
    None."""
    tf_function = entry.class_name == "TFOpLambda" and entry.config.get("function") in keras_activation_ops.TF_FUNCTIONS
    if not tf_function and not keras_activation_ops.is_ops_node(entry.class_name, layer, entry.config):
        return None
    try:
        return keras_activation_ops.activation(entry.class_name, entry.config, kwargs if tf_function else {}, where)
    except ValueError as exc:
        raise UnsupportedModelError(str(exc)) from None


def _check_op_layer(entry, args, kwargs, where: str) -> None:
    """A tf_keras op layer keras_ops and keras_arith do not read must be `x + y` of two tensors (then an Add); any
    other TensorFlow op is refused."""
    function = entry.config.get("function")
    if function not in OP_ADDS or len(args) != 2 or kwargs:
        raise UnsupportedModelError(
            f"{where} is the TensorFlow op {function!r} applied to a tensor: not supported (lstmrt reads `x + y` of "
            "two tensors of the chain, `x[:, -1]`, tf.reduce_mean / tf.reduce_max over the time axis, and x * c, "
            "x / c, x + c, x - c, c - x, -x with a constant c; use Keras layers for the rest)"
        )


def _is_ops_node(entry, node) -> bool:
    """A Keras 3 ops node, which the call passes its operands one by one (`h * 2.0`: [h, 2.0]), where a merge
    layer of the same class name gets one list (layers.Add()([x, y]))."""
    args = node.get("args") if isinstance(node, dict) else None
    return entry.class_name in OPS_NODES and bool(args) and not isinstance(args[0], list)


def _arithmetic(entry, node, where: str):
    """keras_arith's reading of a Keras 3 ops node / tf_keras op layer, or None when it is not arithmetic (or the
    sum of two tensors). Each operand is keras_arith.TENSOR or the constant, in call order: Keras 3 keeps them in
    the node's args; tf_keras in [x, -, -, {"y": y, "name": ...}], x being [_CONSTANT_VALUE, -1, value] for a
    constant."""
    if entry.class_name in OP_LAYERS:
        op = keras_arith.TF_FUNCTIONS.get(entry.config.get("function"))
        if not (node and isinstance(node[0], str)):  # not the form tf_keras writes: refused as an op layer
            return None
        kwargs = dict(node[3]) if len(node) > 3 and isinstance(node[3], dict) else {}
        kwargs.pop("name", None)
        operands = [node[2] if node[0] == CONSTANT_VALUE else keras_arith.TENSOR]
        if "y" in kwargs:
            y = kwargs.pop("y")
            operands.append(keras_arith.TENSOR if _is_reference(y) else y)
    else:
        op = keras_arith.NODES.get(entry.class_name)
        kwargs = dict(node.get("kwargs") or {})
        operands = [keras_arith.TENSOR if _history(a) else a for a in node["args"]]
    if op is None:
        return None
    if kwargs:
        raise UnsupportedModelError(f"{where} is called with {', '.join(sorted(kwargs))}=: not supported")
    try:
        return keras_arith.operation(op, operands)
    except ValueError as exc:
        raise UnsupportedModelError(f"{where}: {exc}") from None


def _refuse_masked_layers_after_ops(chain: list) -> None:
    """Keras passes no mask through an ops node or op layer (an arithmetic op, `x + y`): the recurrent and
    average-pooling layers after it run on every step, which lstmrt's one model-wide mask cannot express."""
    masked, dropped_by = False, None
    for e in chain:
        masked |= e.class_name == "Masking" or e.class_name == "Embedding" and bool(e.config.get("mask_zero"))
        if masked and e.drops_mask and dropped_by is None:
            dropped_by = e
        if dropped_by is not None and e.class_name in MASK_READERS:
            raise UnsupportedModelError(
                f"Keras layer {e.name!r} ({e.class_name}): follows Keras layer {dropped_by.name!r} "
                f"({dropped_by.class_name}), an op on tensors, which drops Keras's mask: Keras runs this layer on "
                "every step, while lstmrt applies the model's mask to each of its recurrent and average-pooling layers"
            )


def _refuse_ops_on_token_ids(chain: list) -> None:
    """Arithmetic before the Embedding would act on the integer token ids."""
    embedding = next((i for i, e in enumerate(chain) if e.class_name == "Embedding"), 0)
    for e in chain[:embedding]:
        if e.arith is not None or e.class_name == "Rescaling":
            raise UnsupportedModelError(
                f"Keras layer {e.name!r} ({e.class_name}): reads the token ids before the Embedding: not supported; "
                "apply it to the Embedding's output"
            )


def _flow_and_point(args, by_name: dict, where: str) -> tuple:
    """(the term that is the data flow, the earlier point of that flow the other term is) of a two-term Add."""
    for ref in args:
        if ref[2] != 0:
            raise UnsupportedModelError(f"{where} adds output {ref[2]} of Keras layer {ref[0]!r}: not supported")
    a, b = args
    if b[0] in _upstream(a[0], by_name):
        return a, b
    if a[0] in _upstream(b[0], by_name):
        return b, a
    raise UnsupportedModelError(
        f"{where} adds two branches ({a[0]!r} and {b[0]!r}): lstmrt runs one chain of layers, into which an Add "
        "may add an earlier point of the same chain (a skip connection)"
    )


def _upstream(name: str, by_name: dict) -> set:
    """The layers whose outputs reach `name`, and `name` itself."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for args, _ in _nodes(by_name[current][0]):
            todo += [ref[0] for ref in args]
    return seen


def snake_case(class_name: str) -> str:
    """Keras' naming of a layer's weights group in the Keras 3 weights format (from its class, not its name)."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def weights_paths(entries: list) -> dict:
    """Layer name -> group under `layers/` of a Keras 3 weights file: class names made unique in model order."""
    kept = [e for e in entries if e.class_name not in MASK_OPS]
    return dict(zip((e.name for e in kept), unique_names([e.class_name for e in kept])))


def unique_names(class_names: list) -> list:
    """Keras 3's names of objects in its weights files: the class names in snake case, made unique in order
    (lstm, lstm_1, ...)."""
    used, names = {}, []
    for class_name in class_names:
        base = snake_case(class_name)
        used[base] = used.get(base, -1) + 1
        names.append(base if used[base] == 0 else f"{base}_{used[base]}")
    return names
