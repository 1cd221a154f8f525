"""Keras's newer activations loaded by lstmrt against the Keras that wrote them: activation strings in Dense,
Activation and every recurrent role, and the LeakyReLU / ReLU / ELU layers (also as another layer's activation).

Keras 3 knows all ten names; tf_keras 2.21 only leaky_relu (tf.nn.leaky_relu, slope 0.2), but it reads a layer's
class name ("LeakyReLU") as that layer. The layers' default slope is 0.3, the leaky_relu function's 0.2."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by either Keras

import json  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import KERAS_SAVE_WARNINGS, assert_close, keras_framework  # noqa: E402

import lstmrt  # noqa: E402
from lstmrt import CorruptFileError, UnsupportedModelError  # noqa: E402

h5py = pytest.importorskip("h5py")
pytest.importorskip("tensorflow")

pytestmark = KERAS_SAVE_WARNINGS

SEED = 4321
B, T = 3, 6
FORMATS = ("keras", "h5", "live")
NEW_NAMES = (
    "leaky_relu",
    "celu",
    "hard_tanh",
    "hard_shrink",
    "soft_shrink",
    "tanh_shrink",
    "log_sigmoid",
    "sparse_plus",
    "sparse_sigmoid",
    "squareplus",
)
KNOWN = {"keras3": NEW_NAMES, "tf_keras": ("leaky_relu",)}  # tf_keras 2.21 refuses the other nine names


def randomize(model, rng):
    """Every weight random; recurrent kernels smaller, so that unbounded gates (squareplus, leaky_relu as
    recurrent_activation) keep the state within float32's 1e-5 over T steps."""
    for layer in model.layers:
        weights = [rng.uniform(-1.0, 1.0, w.shape).astype(np.float32) for w in layer.get_weights()]
        if type(layer).__name__ in ("LSTM", "GRU", "SimpleRNN"):
            weights[1] *= 0.3
        layer.set_weights(weights)


def save(model, fmt, path):
    """The source lstmrt.load receives for `fmt`: a real file, or the live model."""
    if fmt == "live":
        return model
    model.save(f"{path}.{fmt}")
    return f"{path}.{fmt}"


# -- activation strings ---------------------------------------------------------------------------------------
def string_model(K, name):
    """`name` in a Dense, each recurrent layer's activation and recurrent_activation (one role per layer, the other
    Keras's default), and an Activation. The tanh before each recurrent layer keeps its input in (-1, 1)."""
    L = K.layers
    recurrent = [
        L.LSTM(6, activation=name, return_sequences=True),
        L.LSTM(6, recurrent_activation=name, return_sequences=True),
        L.GRU(6, activation=name, return_sequences=True),
        L.GRU(6, recurrent_activation=name, return_sequences=True),
        L.GRU(6, activation=name, reset_after=False, return_sequences=True),
        L.GRU(6, recurrent_activation=name, reset_after=False, return_sequences=True),
        L.SimpleRNN(6, activation=name, return_sequences=True),
    ]
    layers = [K.Input((T, 3)), L.Dense(8, activation=name)]
    for layer in recurrent:
        layers += [L.Activation("tanh"), layer]
    return K.Sequential(layers + [L.Dense(4), L.Activation(name)])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(version, model kind, name) -> (sources by format, X, Keras output), each built once."""
    cache, directory = {}, tmp_path_factory.mktemp("keras_activations")

    def get(version, kind, name=None):
        if (version, kind, name) not in cache:
            K = keras_framework(version)
            rng = np.random.default_rng([SEED, list(KNOWN).index(version), NEW_NAMES.index(name) if name else 99])
            model = string_model(K, name) if kind == "strings" else layer_model(K)
            randomize(model, rng)
            if kind == "layers":  # inputs beyond 6 for ReLU(max_value=6)
                wide = model.get_layer("wide")
                wide.set_weights([w * 8 for w in wide.get_weights()])
            X = (2 * rng.standard_normal((B, T, 3))).astype(np.float32)
            if kind == "layers":
                X[0, 2], X[1, T - 2 :] = 0.0, 0.0  # masked steps
            expected = np.asarray(model(X, training=False))
            path = directory / f"{version}_{kind}_{name}"
            cache[version, kind, name] = {fmt: save(model, fmt, path) for fmt in FORMATS}, X, expected
        return cache[version, kind, name]

    return get


@pytest.mark.parametrize("version, name, fmt", [(v, n, f) for v in KNOWN for n in KNOWN[v] for f in FORMATS])
def test_activation_strings_match_keras(built, version, name, fmt):
    sources, X, expected = built(version, "strings", name)
    model = lstmrt.load(sources[fmt])
    assert model.layers[0].activation == name  # Keras's default parameter is lstmrt's: no brackets
    assert_close(model.predict(X), expected, what=f"{version} {name} {fmt}")


# -- activation layers ----------------------------------------------------------------------------------------
def layer_model(K):
    """LeakyReLU, ReLU and ELU layers with non-default parameters, as TimeDistributed layers and as Dense's
    activation, in a masked model: the ones before the recurrent layers must pass Keras's mask on."""
    L = K.layers
    keras3 = K.__name__ == "keras"

    def leaky(slope=None):  # Keras 3 calls the slope negative_slope (and warns about alpha), tf_keras alpha
        return L.LeakyReLU() if slope is None else L.LeakyReLU(**{"negative_slope" if keras3 else "alpha": slope})

    return K.Sequential(
        [
            K.Input((T, 3)),
            L.Masking(0.0),
            L.Dense(6),
            leaky(0.1),
            L.LSTM(6, return_sequences=True),
            L.ELU(),
            L.GRU(6, return_sequences=True),
            L.Dense(6),
            leaky(),  # 0.3
            L.Dense(6),
            L.ReLU(negative_slope=0.05),
            L.Dense(6, name="wide"),
            L.ReLU(max_value=6.0),
            L.Dense(6),
            L.ReLU(),
            L.TimeDistributed(leaky(0.25)),
            L.Dense(4, activation=leaky(0.15)),
            # tf_keras reads a layer's class name as that layer (Keras 3 refuses the name)
            L.Dense(4, activation=L.ReLU(max_value=6) if keras3 else "LeakyReLU"),
            L.Dense(2),
        ]
    )


@pytest.mark.parametrize("version, fmt", [(v, f) for v in KNOWN for f in FORMATS])
def test_activation_layers_match_keras(built, version, fmt):
    sources, X, expected = built(version, "layers")
    model = lstmrt.load(sources[fmt])
    activations = [getattr(layer, "activation", None) for layer in model.layers]
    assert [a for a in activations if a not in (None, "linear")] == [
        "leaky_relu(0.1)",
        "elu",
        "leaky_relu(0.3)",
        "leaky_relu(0.05)",
        "relu6",
        "relu",
        "leaky_relu(0.25)",
        "leaky_relu(0.15)",
        "relu6" if version == "keras3" else "leaky_relu(0.3)",
    ]
    assert_close(model.predict(X), expected, what=f"{version} layers {fmt}")


def test_keras2_weights_of_another_instance_skip_activation_layers(tmp_path):
    """Keras 2 pairs weighted layers in order when the names differ: the weightless activation layers must not
    count as weighted ones."""
    K = keras_framework("tf_keras")
    L = K.layers

    def make():
        return K.Sequential([K.Input((T, 3)), L.LSTM(4, return_sequences=True), L.LeakyReLU(0.1), L.Dense(2)])

    model, twin = make(), make()
    randomize(model, np.random.default_rng(SEED))
    model.save_weights(str(tmp_path / "w.h5"))
    X = np.random.default_rng(SEED + 1).standard_normal((B, T, 3)).astype(np.float32)
    loaded = lstmrt.load(tmp_path / "w.h5", layers=twin.to_json())
    assert_close(loaded.predict(X), np.asarray(model(X, training=False)))


def test_a_layer_class_name_as_activation_is_that_layer():
    """tf_keras reads Dense(activation="LeakyReLU") as a LeakyReLU layer (slope 0.3) and saves it as one; a config
    holding the bare name (written by hand) means the same."""
    from lstmrt.loaders.keras_layers import Context

    assert Context(2).act("LeakyReLU", "Keras layer 'd' (Dense)") == "leaky_relu(0.3)"
    assert Context(2).act("leaky_relu", "Keras layer 'd' (Dense)") == "leaky_relu"  # the function: slope 0.2


# -- refusals -------------------------------------------------------------------------------------------------
RELU_WORDS = "and a max_value or threshold without negative_slope as layers of their own"


@pytest.mark.parametrize("version", list(KNOWN))
@pytest.mark.parametrize(
    "build, words",
    [
        (
            lambda L: L.ReLU(max_value=6, negative_slope=0.5, name="act"),
            [
                "Keras layer 'act' (ReLU)",
                "ReLU(max_value=6, negative_slope=0.5, threshold=0) is not supported",
                RELU_WORDS,
            ],
        ),
        (lambda L: L.ELU(alpha=0.5, name="act"), ["Keras layer 'act' (ELU)", "ELU(alpha=0.5) is not supported"]),
        (
            lambda L: L.Dense(2, activation=L.ReLU(max_value=3, negative_slope=0.1), name="act"),
            ["Keras layer 'act' (Dense)", "ReLU(max_value=3, negative_slope=0.1, threshold=0) is not supported"],
        ),
        (
            lambda L: L.LSTM(2, activation=L.ReLU(max_value=3), name="act"),
            ["Keras layer 'act' (LSTM)", "ReLU(max_value=3, negative_slope=0, threshold=0) is not supported"],
        ),
        (
            lambda L: L.Dense(2, activation=L.ELU(alpha=2.0), name="act"),
            ["Keras layer 'act' (Dense)", "ELU(alpha=2) is not supported", "alpha=1"],
        ),
        (
            lambda L: L.Dense(2, activation=L.Softmax(axis=1), name="act"),
            ["Keras layer 'act' (Dense)", "Softmax(axis=1) is not supported", "axis -1"],
        ),
        (
            lambda L: L.LSTM(2, activation="softmax", name="act"),
            ["Keras layer 'act' (LSTM)", "unknown activation 'softmax'", "supported: sigmoid"],
        ),
    ],
    ids=["relu6_leaky", "elu_alpha", "dense_capped_leaky", "lstm_capped_relu", "dense_elu", "dense_softmax", "lstm"],
)
def test_refuses_what_lstmrt_does_not_compute(version, build, words, tmp_path):
    K = keras_framework(version)
    model = K.Sequential([K.Input((T, 3)), build(K.layers)])
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(tmp_path / "m.keras")
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("name", ["sparsemax", "glu"])
def test_refuses_keras3_activations_lstmrt_lacks(name, tmp_path):
    K = keras_framework("keras3")
    model = K.Sequential([K.Input((T, 4)), K.layers.Dense(4, activation=name, name="head")])
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(UnsupportedModelError, match=rf"Keras layer 'head' \(Dense\): unknown activation '{name}'"):
        lstmrt.load(tmp_path / "m.keras")


def test_refuses_activation_objects_lstmrt_cannot_read():
    from lstmrt.loaders.keras_layers import Context

    where = "Keras layer 'd' (Dense)"
    with pytest.raises(CorruptFileError, match=r"Keras layer 'd' \(Dense\): an activation object without a class"):
        Context(3).act({"config": {"negative_slope": 0.1}}, where)
    with pytest.raises(ValueError, match="the parameter of leaky_relu must be finite, got inf"):
        Context(2).act({"class_name": "LeakyReLU", "config": {"alpha": float("inf")}}, where)


@pytest.mark.parametrize(
    "layer, key, value",
    [("LeakyReLU", "alpha", "0.1"), ("ReLU", "max_value", [6]), ("ReLU", "threshold", True), ("ELU", "alpha", None)],
)
def test_refuses_a_parameter_that_is_not_a_number(layer, key, value, tmp_path):
    """Keras builds none of these layers with such a parameter: the file contradicts itself."""
    K = keras_framework("tf_keras")
    model = K.Sequential([K.Input((T, 3)), K.layers.LSTM(2, return_sequences=True), getattr(K.layers, layer)()])
    path = tmp_path / "m.h5"
    model.save(str(path))
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][-1]["config"][key] = value
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(CorruptFileError, match=re.escape(f"({layer}): config {key}={value!r} is not a number")):
        lstmrt.load(path)
