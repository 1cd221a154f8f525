"""Helpers of the Keras tests that build functional models around ops nodes: random weights, Keras's own output,
masked input, and the name of a model's op node."""

import numpy as np


def randomize(model, rng):
    """Every weight uniform in [-0.7, 0.7] (away from Keras's initialisation, so their mapping is checked)."""
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()])


def keras_output(model, X):
    return np.asarray(model(X, training=False))


def masked_input(rng, B, T, features):
    """Zero steps (masked by Masking(0.0)): a gap, trailing padding (a masked last step), leading padding."""
    X = rng.standard_normal((B, T, features)).astype(np.float32)
    X[0, 2] = 0.0
    X[1, T - 3 :] = 0.0
    X[-1, :2] = 0.0
    return X


def op_node(model, classes) -> str:
    """The name of the model's one node of `classes` (Keras 3 keeps ops nodes out of model.layers)."""
    (name,) = [layer["name"] for layer in model.get_config()["layers"] if layer["class_name"] in classes]
    return name
