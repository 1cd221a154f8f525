"""Keras's PReLU layer loaded by lstmrt against the Keras that wrote it (Keras 3 and tf_keras), in every format each
writes. Keras computes relu(x) - alpha * relu(-x) with alpha of the input's shape without the batch axis, 1 on the
shared_axes: one value for all loads as leaky_relu(value), one per feature as an lstmrt PReLU, one per time step is
refused. alpha is randomized (negative values included): its initializer is zeros, which would hide a wrong mapping."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by either Keras

import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import KERAS_SAVE_WARNINGS, assert_close, keras_framework, save_keras  # noqa: E402

import lstmrt  # noqa: E402
from lstmrt import CorruptFileError, UnsupportedModelError  # noqa: E402

h5py = pytest.importorskip("h5py")
pytest.importorskip("tensorflow")

pytestmark = KERAS_SAVE_WARNINGS

SEED = 2718
B, T = 3, 6
VERSIONS = ("keras3", "tf_keras")
FORMATS = {  # weights_v3: `.weights.h5`; weights_h5: tf_keras's legacy save_weights HDF5, layers matched by name
    "keras3": ("keras", "h5", "weights_v3", "live"),
    "tf_keras": ("keras", "h5", "weights_h5", "weights_v3", "live"),
}


# -- models: each K -> (model, what lstmrt's layers must be); K is the keras module --------------------------------
def case_sequence(K):
    """One slope per feature on a sequence (alpha (1, F))."""
    L = K.layers
    layers = [K.Input((T, 3)), L.LSTM(6, return_sequences=True), L.PReLU(shared_axes=[1]), L.Dense(4)]
    return K.Sequential(layers), ["LSTM", "PReLU(6)", "Dense"]


def case_scalar(K):
    """One slope for everything (alpha (1, 1)): a leaky_relu."""
    L = K.layers
    layers = [K.Input((T, 3)), L.LSTM(4, return_sequences=True), L.Dense(5), L.PReLU(shared_axes=[1, 2]), L.Dense(2)]
    return K.Sequential(layers), ["LSTM", "Dense", "leaky_relu", "Dense"]


def case_final(K):
    """After return_sequences=False the input has no time axis: alpha (F,). A Functional model."""
    L = K.layers
    inp = K.Input((T, 3))
    x = L.PReLU()(L.Dense(5)(L.LSTM(6)(inp)))
    return K.Model(inp, L.Dense(2)(x)), ["LSTM", "Dense", "PReLU(5)", "Dense"]


def case_pooled(K):
    """After a pooling: alpha (1,) with shared_axes=[1] (a leaky_relu), (F,) without."""
    L = K.layers
    layers = [
        K.Input((T, 3)),
        L.LSTM(4, return_sequences=True),
        L.GlobalAveragePooling1D(),
        L.PReLU(shared_axes=[1]),
        L.Dense(3),
        L.PReLU(),
    ]
    return K.Sequential(layers), ["LSTM", "GlobalPooling", "leaky_relu", "Dense", "PReLU(3)"]


def case_bidirectional(K):
    L = K.layers
    layers = [K.Input((T, 3)), L.Bidirectional(L.GRU(4, return_sequences=True)), L.PReLU(shared_axes=[1]), L.Dense(3)]
    return K.Sequential(layers), ["Bidirectional", "PReLU(8)", "Dense"]


def case_masked(K):
    """PReLU passes Keras's mask on: the LSTM after it must still skip the masked steps."""
    L = K.layers
    layers = [
        K.Input((T, 3)),
        L.Masking(0.0),
        L.Dense(4),
        L.PReLU(shared_axes=[1]),
        L.LSTM(5, return_sequences=True),
        L.PReLU(shared_axes=[1]),
        L.Dense(2),
    ]
    return K.Sequential(layers), ["Dense", "PReLU(4)", "LSTM", "PReLU(5)", "Dense"]


def case_objects(K):
    """PReLU wrapped in TimeDistributed (alpha (F,)) and given as Dense's activation= (its alpha after Dense's; a
    single slope becomes the Dense's leaky_relu)."""
    L = K.layers
    layers = [
        K.Input((T, 3)),
        L.LSTM(4, return_sequences=True),
        L.TimeDistributed(L.PReLU()),
        L.Dense(5, activation=L.PReLU(shared_axes=[1])),
        L.Dense(3, use_bias=False, activation=L.PReLU(shared_axes=[1, 2])),
        L.Dense(2),
    ]
    return K.Sequential(layers), ["LSTM", "PReLU(4)", "Dense", "PReLU(5)", "Dense", "Dense"]


CASES = {
    "sequence": case_sequence,
    "scalar": case_scalar,
    "final": case_final,
    "pooled": case_pooled,
    "bidirectional": case_bidirectional,
    "masked": case_masked,
    "objects": case_objects,
}


def randomize(model, rng):
    """Every weight random in (-1, 1), alpha too (negative slopes included)."""
    for layer in model.layers:
        layer.set_weights([rng.uniform(-1.0, 1.0, w.shape).astype(np.float32) for w in layer.get_weights()])


def summary(model) -> list:
    """lstmrt's layers as the cases spell them: class, PReLU's size, an activation's base name."""
    out = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "PReLU":
            name = f"PReLU({layer.input_size})"
        elif name == "Activation":
            name = layer.activation.split("(")[0]
        out.append(name)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(version, case) -> (sources by format, layer summary, X, Keras output), each built once."""
    cache, directory = {}, tmp_path_factory.mktemp("keras_prelu")

    def get(version, case):
        if (version, case) not in cache:
            K = keras_framework(version)
            rng = np.random.default_rng([SEED, VERSIONS.index(version), list(CASES).index(case)])
            model, layers = CASES[case](K)
            randomize(model, rng)
            X = (2 * rng.standard_normal((B, T, 3))).astype(np.float32)
            if case == "masked":
                X[0, 2], X[1, T - 2 :] = 0.0, 0.0
            expected = np.asarray(model(X, training=False))  # also builds a PReLU given as activation= (Keras 3)
            sources = {fmt: save_keras(model, fmt, directory / f"{version}_{case}") for fmt in FORMATS[version]}
            cache[version, case] = sources, layers, X, expected
        return cache[version, case]

    return get


@pytest.mark.parametrize("version, case, fmt", [(v, c, f) for v in VERSIONS for c in CASES for f in FORMATS[v]])
def test_prelu_matches_keras(built, version, case, fmt):
    sources, layers, X, expected = built(version, case)
    source, architecture = sources[fmt]
    model = lstmrt.load(source, layers=architecture)
    assert summary(model) == layers
    assert_close(model.predict(X), expected, what=f"{version} {case} {fmt}")


@pytest.mark.parametrize("version, case", [(v, c) for v in VERSIONS for c in CASES if c != "bidirectional"])
def test_prelu_streams_as_keras(built, version, case):
    """Step by step, one sequence per stream; a masked step is not stepped (the stream then carries its state, as
    Keras does), and the outputs at the other steps are Keras's."""
    sources, _, X, expected = built(version, case)
    model = lstmrt.load(sources["live"][0])
    keep = np.any(X != 0.0, axis=-1) if case == "masked" else np.ones(X.shape[:2], bool)
    for b in range(B):
        stream = model.stream()
        for t in np.flatnonzero(keep[b]):
            y = stream.step(X[b, t])
            if model.return_sequences:
                assert_close(y, expected[b, t], what=f"{version} {case} stream row {b} step {t}")
        if not model.return_sequences:
            assert_close(y, expected[b], what=f"{version} {case} stream row {b}")


@pytest.mark.parametrize("version", VERSIONS)
def test_prelu_slopes_are_keras_alpha(built, version):
    """The slopes themselves, not only the outputs: per feature in order, and the scalar's value."""
    sources, _, _, _ = built(version, "objects")
    keras_model = sources["live"][0]
    model = lstmrt.load(keras_model)
    time_distributed, dense, dense_scalar = keras_model.layers[1], keras_model.layers[2], keras_model.layers[3]
    np.testing.assert_array_equal(model.layers[1].slope, time_distributed.get_weights()[0])
    np.testing.assert_array_equal(model.layers[3].slope, dense.get_weights()[2].reshape(-1))
    scalar = float(dense_scalar.get_weights()[1].reshape(()))
    assert model.layers[4].activation == lstmrt.activations.with_parameter("leaky_relu", scalar)


# -- refusals --------------------------------------------------------------------------------------------------
def refusal(version, layer, tmp_path, fmt="keras", alpha=None):
    """Load a model of an LSTM (4 units) and `layer`, saved as `fmt` (alpha: set on the last layer); the error."""
    K = keras_framework(version)
    model = K.Sequential([K.Input((T, 3)), K.layers.LSTM(4, return_sequences=True), layer(K.layers)])
    model(np.zeros((1, T, 3), np.float32))  # builds a PReLU given as activation= (Keras 3)
    if alpha is not None:
        weights = model.layers[-1].get_weights()
        model.layers[-1].set_weights(weights[:-1] + [np.broadcast_to(alpha, weights[-1].shape)])
    source, architecture = save_keras(model, fmt, tmp_path / "m")
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(source, layers=architecture)
    return str(info.value)


PER_STEP_FIX = "lstmrt runs any number of steps, so a slope per step cannot be streamed; build the PReLU with "


@pytest.mark.parametrize("version, fmt", [(v, f) for v in VERSIONS for f in FORMATS[v]])
@pytest.mark.parametrize(
    "shared_axes, shape", [(None, (T, 4)), ([2], (T, 1))], ids=["shared_axes_none", "shared_axes_2"]
)
def test_refuses_a_slope_per_step(version, fmt, shared_axes, shape, tmp_path, rng):
    """Refused by alpha's shape, whatever its values: Keras's zeros initializer leaves the rows equal, trained ones
    differ, and the same model should load or not either way."""
    for alpha in (None, rng.uniform(-1, 1, shape).astype(np.float32)):
        message = refusal(version, lambda L: L.PReLU(shared_axes=shared_axes, name="p"), tmp_path, fmt, alpha)
        assert message.startswith("Keras layer 'p' (PReLU): ")
        assert f"alpha has shape {shape}, one slope per time step (shared_axes={shared_axes!r})" in message
        assert PER_STEP_FIX + "shared_axes=[1] (one slope per feature, shared over time)" in message


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_a_slope_per_step_in_dense_activation(version, tmp_path):
    message = refusal(version, lambda L: L.Dense(3, activation=L.PReLU(), name="d"), tmp_path)
    assert message.startswith("Keras layer 'd' (Dense): its PReLU activation's alpha has shape (6, 3)")
    assert PER_STEP_FIX + "shared_axes=[1]" in message


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("fmt", ["keras", "h5", "live"])
@pytest.mark.parametrize(
    "shared_axes, alpha",
    [([1], np.array([0.5, np.nan, -0.25, 1.0])), ([1], np.array([0.5, -np.inf, 0.0, 1.0])), ([1, 2], np.inf)],
    ids=["nan", "inf", "scalar_inf"],
)
def test_refuses_a_non_finite_alpha(version, fmt, shared_axes, alpha, tmp_path):
    """Keras computes NaN for every x > 0 with such a slope (inf * relu(-x) = inf * 0), lstmrt's PReLU x."""
    layer = lambda L: L.PReLU(shared_axes=shared_axes, name="p")  # noqa: E731
    message = refusal(version, layer, tmp_path, fmt, np.asarray(alpha, np.float32))
    assert message == (
        "Keras layer 'p' (PReLU): alpha holds inf or NaN (or a value beyond float32): Keras's relu(x) - alpha * "
        "relu(-x) is then NaN even for x > 0, where lstmrt's PReLU returns x"
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "layer, where",
    [
        (lambda L: L.LSTM(2, activation=L.PReLU(), name="x"), "Keras layer 'x' (LSTM)"),
        (lambda L: L.GRU(2, recurrent_activation=L.PReLU(), name="x"), "Keras layer 'x' (GRU)"),
        (lambda L: L.Activation(L.PReLU(), name="x"), "Keras layer 'x' (Activation)"),
    ],
    ids=["lstm", "gru_recurrent", "activation"],
)
def test_refuses_prelu_as_activation_outside_dense(version, layer, where, tmp_path):
    message = refusal(version, layer, tmp_path)
    assert message == (
        f"{where}: a PReLU layer as activation= is supported in Dense only (its alpha is a weight, which lstmrt's "
        "activations do not take)"
    )


@pytest.mark.parametrize("fmt", ["keras", "h5", "live"])
def test_refuses_a_dense_prelu_activation_never_built(fmt, tmp_path):
    """Keras 3 creates a PReLU activation's alpha at the model's first call: a model saved before has none."""
    K = keras_framework("keras3")
    model = K.Sequential([K.Input((T, 3)), K.layers.Dense(3, activation=K.layers.PReLU(shared_axes=[1]), name="d")])
    source, _ = save_keras(model, fmt, tmp_path / "m")
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(source)
    assert str(info.value) == (
        "Keras layer 'd' (Dense): its PReLU activation has no alpha weight: Keras 3 creates it at the model's first "
        "call, so call the model once before saving it (or use a PReLU layer after the Dense)"
    )


@pytest.mark.parametrize(
    "shape, words",
    [((1, 5), "alpha has 5 values for 4 features"), ((4,), "alpha has shape (4,); its input needs (steps, features)")],
    ids=["features", "rank"],
)
def test_refuses_an_alpha_that_contradicts_the_model(shape, words, tmp_path):
    """Keras itself refuses to load such a file: its alpha does not fit the input it was built for."""
    K = keras_framework("tf_keras")
    model = K.Sequential(
        [K.Input((T, 3)), K.layers.LSTM(4, return_sequences=True), K.layers.PReLU(shared_axes=[1], name="p")]
    )
    path = tmp_path / "m.h5"
    model.save(str(path))
    with h5py.File(path, "r+") as f:
        group = f["model_weights/p/p"]
        del group["alpha:0"]
        group["alpha:0"] = np.full(shape, 0.5, np.float32)
    with pytest.raises(CorruptFileError, match=re.escape(f"Keras layer 'p' (PReLU): {words}")):
        lstmrt.load(path)


def test_prelu_class_name_as_activation_is_that_layer():
    """tf_keras reads Dense(activation="PReLU") as a PReLU layer with its defaults (alpha per step and feature): a
    config holding the bare name reads its alpha after the Dense's weights, as the saved object does."""
    from lstmrt.loaders.keras_graph import Entry
    from lstmrt.loaders.keras_layers import Context, per_step

    config = {"units": 2, "activation": "PReLU"}
    kernel, bias, alpha = np.ones((3, 2)), np.zeros(2), np.array([[0.5, -1.5]])
    specs = per_step(Entry("Dense", config, "d"), config, [kernel, bias, alpha], Context(2), 3, 3)
    assert [type(s).__name__ for s in specs] == ["Dense", "PReLU"]
    np.testing.assert_array_equal(specs[1].slope, [0.5, -1.5])
