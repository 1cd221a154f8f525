"""Activation functions applied to a tensor in functional Keras models — Keras 3's `keras.ops.tanh(h)`,
`ops.gelu(h)`, `ops.leaky_relu(h, 0.1)`, ... (ops nodes) and tf_keras's `tf.nn.relu(h)`, `tf.math.sigmoid(h)`, ... (op
layers) — as lstmrt activations, against the Keras that wrote them, live and from its files. They were refused as
unknown layers / TensorFlow ops. Keras passes no mask through them: a recurrent layer after one in a masked model is
refused, as after the arithmetic ops."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by either Keras

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import KERAS_SAVE_WARNINGS, assert_close, keras_framework, save_keras  # noqa: E402

import lstmrt  # noqa: E402

tf = pytest.importorskip("tensorflow")

pytestmark = KERAS_SAVE_WARNINGS

B, T, F = 2, 5, 3


def functions(version):
    """name -> (the call on a tensor, the lstmrt activation it is)."""
    if version == "keras3":
        from keras import ops

        return {
            "tanh": (ops.tanh, "tanh"),
            "sigmoid": (ops.sigmoid, "sigmoid"),
            "relu": (ops.relu, "relu"),
            "relu6": (ops.relu6, "relu6"),
            "silu": (ops.silu, "silu"),
            "gelu-approximate": (ops.gelu, "gelu_tanh"),  # keras.ops.gelu's default
            "gelu-exact": (lambda t: ops.gelu(t, approximate=False), "gelu"),
            "leaky-relu": (lambda t: ops.leaky_relu(t, negative_slope=0.1), "leaky_relu(0.1)"),
            "elu": (ops.elu, "elu"),
            "softplus": (ops.softplus, "softplus"),
            "exp": (ops.exp, "exponential"),
            "hard-sigmoid": (ops.hard_sigmoid, "hard_sigmoid_v3"),
            "softmax": (ops.softmax, "softmax"),
            "log-softmax": (ops.log_softmax, "log_softmax"),
        }
    return {
        "tanh": (tf.math.tanh, "tanh"),
        "sigmoid": (tf.math.sigmoid, "sigmoid"),
        "relu": (tf.nn.relu, "relu"),
        "relu6": (tf.nn.relu6, "relu6"),
        "silu": (tf.nn.silu, "silu"),
        "gelu-exact": (tf.nn.gelu, "gelu"),  # tf.nn.gelu's default
        "gelu-approximate": (lambda t: tf.nn.gelu(t, approximate=True), "gelu_tanh"),
        "leaky-relu-default": (tf.nn.leaky_relu, "leaky_relu"),  # alpha 0.2, lstmrt's default
        "leaky-relu": (lambda t: tf.nn.leaky_relu(t, alpha=0.1), "leaky_relu(0.1)"),
        "elu": (tf.nn.elu, "elu"),
        "softplus": (tf.math.softplus, "softplus"),
        "exp": (tf.math.exp, "exponential"),
        "softmax": (tf.nn.softmax, "softmax"),
        "log-softmax": (tf.nn.log_softmax, "log_softmax"),
    }


CASES = [(v, name) for v in ("keras3", "tf_keras") for name in functions(v)]


@pytest.mark.parametrize("fmt", ["live", "file"])
@pytest.mark.parametrize("version, name", CASES)
def test_activation_on_a_tensor_matches_keras(version, name, fmt, tmp_path):
    K = keras_framework(version)
    L = K.layers
    call, expected_name = functions(version)[name]
    inp = K.Input((None, F))
    h = L.Dense(4)(L.LSTM(4, return_sequences=True)(inp))
    model = K.Model(inp, L.Dense(2)(call(h)))
    rng = np.random.default_rng(5)
    model.set_weights([(0.8 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    X = (2 * rng.standard_normal((B, T, F))).astype(np.float32)
    source = save_keras(model, "keras" if version == "keras3" else "h5", tmp_path / "m")[0] if fmt == "file" else model
    loaded = lstmrt.load(source)
    assert [layer.activation for layer in loaded.layers if isinstance(layer, lstmrt.Activation)] == [expected_name]
    assert_close(loaded.predict(X), np.asarray(model(X)), what=f"{version} {name} {fmt}")


@pytest.mark.parametrize("version", ["keras3", "tf_keras"])
def test_refusals(version):
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((None, F))
    h = L.LSTM(4, return_sequences=True)(L.Masking(0.0)(inp))
    if version == "keras3":
        from keras import ops

        tanh, refused = (
            ops.tanh,
            {
                "elu with alpha=0.5; lstmrt's elu has alpha 1": ops.elu(h, alpha=0.5),
                "a softmax over axis 1": ops.softmax(h, axis=1),
            },
        )
    else:
        tanh, refused = (
            tf.math.tanh,
            {
                r"nn.silu\(beta=2.0\)": tf.nn.silu(h, beta=2.0),
                "a softmax over axis 1": tf.nn.softmax(h, axis=1),
            },
        )
    for words, out in refused.items():
        with pytest.raises(lstmrt.UnsupportedModelError, match=words):
            lstmrt.load(K.Model(inp, out))
    with pytest.raises(lstmrt.UnsupportedModelError, match=r"drops Keras's mask"):  # Keras runs the GRU on every step
        lstmrt.load(K.Model(inp, L.GRU(2)(tanh(h))))
    lstmrt.load(K.Model(inp, tanh(L.GRU(2)(h))))  # after the last mask-reading layer: loads
