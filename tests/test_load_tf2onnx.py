"""Keras models converted to ONNX by tf2onnx (the usual way from Keras to ONNX), loaded by lstmrt and compared with
the Keras model that was converted, for Keras 3 (`keras`) and Keras 2 (`tf_keras`). tf2onnx writes what these tests
exercise: the last step as a Slice ending at INT32_MAX, a Dense on a sequence as a Tensordot (batch and time merged
into rows, then split), a Bidirectional layer's directions sliced out of Y and merged again, pooling as ReduceMean /
ReduceMax; and, for layers it cannot fuse into an ONNX LSTM / GRU / RNN node, a Loop, which is refused."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import assert_close, keras_framework  # noqa: E402
from onnx_build import assert_refused  # noqa: E402

import lstmrt  # noqa: E402

tf = pytest.importorskip("tensorflow")
tf2onnx = pytest.importorskip("tf2onnx")

F_IN, B, T = 5, 3, 7
VERSIONS = ("keras3", "tf_keras")


# -- models: each K -> the model's output for an Input of (None, F_IN) --------------------------------------------
def _bidirectional(merge, sequences=True, cell="LSTM"):
    def build(K, x):
        layer = getattr(K.layers, cell)(6, return_sequences=sequences)
        return K.layers.Bidirectional(layer, merge_mode=merge)(x)

    return build


def _dense_on(inner, units=3, activation=None):
    def build(K, x):
        return K.layers.Dense(units, activation=activation)(inner(K, x))

    return build


def _lstm(**options):
    return lambda K, x: K.layers.LSTM(6, **options)(x)


def _stack(K, x):
    x = K.layers.LSTM(8, return_sequences=True)(x)
    x = K.layers.Dropout(0.3)(x)
    x = K.layers.LSTM(6)(x)
    return K.layers.Dense(4, activation="relu")(K.layers.Dropout(0.3)(x))


def _pooled(pool, cell="LSTM"):
    def build(K, x):
        x = getattr(K.layers, cell)(6, return_sequences=True)(x)
        return K.layers.Dense(2)(getattr(K.layers, pool)()(x))

    return build


def _bidirectional_stack(K, x):
    x = K.layers.Bidirectional(K.layers.LSTM(6, return_sequences=True))(x)
    return K.layers.Dense(2, activation="softmax")(K.layers.Bidirectional(K.layers.LSTM(4))(x))


ACCEPTED = {  # id -> (build, versions)
    "LSTM-last-step-Dense": (_dense_on(_lstm()), VERSIONS),
    "LSTM-relu": (_dense_on(_lstm(activation="relu")), VERSIONS),
    "LSTM-sequence-Dense-Tensordot": (_dense_on(_lstm(return_sequences=True), activation="tanh"), VERSIONS),
    "LSTM-stack-Dropout-Dense-relu": (_stack, VERSIONS),
    "Bidirectional-last-concat-Dense": (_dense_on(_bidirectional("concat", sequences=False)), VERSIONS),
    "Bidirectional-sequence-concat-Dense": (_dense_on(_bidirectional("concat")), VERSIONS),
    "Bidirectional-sum": (_bidirectional("sum"), VERSIONS),
    "Bidirectional-mul": (_bidirectional("mul"), VERSIONS),
    "Bidirectional-ave": (_bidirectional("ave"), VERSIONS),
    "Bidirectional-last-sum": (_bidirectional("sum", sequences=False), VERSIONS),
    "Bidirectional-stack-softmax": (_bidirectional_stack, VERSIONS),
    "LSTM-GlobalAveragePooling1D": (_pooled("GlobalAveragePooling1D"), VERSIONS),
    # tf2onnx fuses only Keras 2's GRU (reset_after=True) into an ONNX GRU node, and Keras 2's TimeDistributed and
    # hard_sigmoid (Keras 3's, relu6(x + 3) / 6, it leaves in a Loop)
    "LSTM-relu-hard_sigmoid": (_dense_on(_lstm(activation="relu", recurrent_activation="hard_sigmoid")), ("tf_keras",)),
    "GRU-last-step-Dense": (_dense_on(lambda K, x: K.layers.GRU(6)(x)), ("tf_keras",)),
    "GRU-GlobalMaxPooling1D": (_pooled("GlobalMaxPooling1D", cell="GRU"), ("tf_keras",)),
    "Bidirectional-GRU-last": (_bidirectional("concat", sequences=False, cell="GRU"), ("tf_keras",)),
    "LSTM-TimeDistributed-Dense": (
        lambda K, x: K.layers.TimeDistributed(K.layers.Dense(3))(_lstm(return_sequences=True)(K, x)),
        ("tf_keras",),
    ),
}

REFUSED = {  # id -> (build, versions, what the message names)
    "GRU-as-a-Loop": (lambda K, x: K.layers.GRU(6)(x), ("keras3",), ("(Loop) is control flow", "Keras file")),
    "SimpleRNN-as-a-Loop": (lambda K, x: K.layers.SimpleRNN(6)(x), VERSIONS, ("(Loop) is control flow",)),
    "Masking-as-a-Loop": (
        lambda K, x: K.layers.LSTM(6)(K.layers.Masking(0.0)(x)),
        VERSIONS,
        ("(Loop) is control flow", "masked layer"),
    ),
    "LayerNormalization-as-separate-ops": (
        lambda K, x: K.layers.LayerNormalization()(_lstm()(K, x)),
        VERSIONS,
        ("(ReduceMean) reduces over the features", "load the Keras file itself"),
    ),
    "go_backwards-ReverseSequence": (
        _lstm(go_backwards=True),
        VERSIONS,
        ("(ReverseSequence) is not supported",),
    ),
}


def _convert(version, build, path, seed):
    """(the Keras model, the ONNX file tf2onnx wrote for it): every weight randomized, biases included."""
    K = keras_framework(version)
    x = K.Input((None, F_IN))
    model = K.Model(x, build(K, x))
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(0.4 * rng.standard_normal(weight.shape).astype(np.float32))
    signature = (tf.TensorSpec((None, None, F_IN), tf.float32, name="x"),)
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=str(path))
    return model, path


def _cases(table):
    return [pytest.param(v, name, id=f"{v}-{name}") for name, (_, versions, *_) in table.items() for v in versions]


@pytest.mark.parametrize("version, name", _cases(ACCEPTED))
def test_tf2onnx_export_matches_keras(tmp_path, rng, version, name):
    keras_model, path = _convert(version, ACCEPTED[name][0], tmp_path / "m.onnx", int(rng.integers(1 << 30)))
    model = lstmrt.load(path)
    for shape in ((B, T, F_IN), (1, 2 * T, F_IN)):
        X = rng.standard_normal(shape).astype(np.float32)
        assert_close(model.predict(X), np.asarray(keras_model(X)))
    if not model.bidirectional:  # a stream's step t gives Keras's output for the sequence up to t
        X = rng.standard_normal((1, T, F_IN)).astype(np.float32)
        s = model.stream()
        got = np.stack([s.step(x).copy() for x in X[0]])
        want = [np.asarray(keras_model(X[:, : t + 1]))[0] for t in range(T)]
        assert_close(got, np.stack([w[-1] if model.return_sequences else w for w in want]))


@pytest.mark.parametrize("version, name", _cases(REFUSED))
def test_tf2onnx_export_refused_naming_the_node(tmp_path, rng, version, name):
    build, _, fragments = REFUSED[name]
    _, path = _convert(version, build, tmp_path / "m.onnx", 0)
    assert_refused(path, *fragments)
