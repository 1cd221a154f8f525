"""Keras models loaded by lstmrt against the framework that wrote them: Keras 3 (`keras`) and Keras 2 (`tf_keras`).

Each case builds a small real model once per module, with every weight randomized (biases included, so their
mapping is checked), writes it in every format its Keras writes, and compares lstmrt's predict with the live
model's output on the same input. The tutorial test trains the documented example for real."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by either Keras

import json  # noqa: E402
import re  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import ATOL, KERAS_SAVE_WARNINGS, assert_close, keras_framework, save_keras  # noqa: E402

import lstmrt  # noqa: E402
from lstmrt import UnsupportedModelError  # noqa: E402
from lstmrt.loaders.keras import is_keras_file, load_keras  # noqa: E402

pytest.importorskip("h5py")
pytest.importorskip("tensorflow")

pytestmark = [
    *KERAS_SAVE_WARNINGS,
    # Keras 3's advice against input_shape= (a framework warning only)
    pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning"),
    # Keras 3 on a layer after Masking that does not pass the mask on (GlobalMaxPooling1D, RMSNormalization):
    # case_pooled_max and test_refuses_a_masked_layer_after_one_that_drops_the_mask check what lstmrt does then
    pytest.mark.filterwarnings("ignore:Layer '(global_max_pooling1d|rms_normalization).*does not support mask"),
]

VERSIONS = ("keras3", "tf_keras")
FORMATS = {
    "keras3": ("keras", "h5", "weights_v3", "live"),
    "tf_keras": ("keras", "h5", "weights_h5", "weights_v3", "live"),
}
SEED = 1234
B, T = 3, 6


# -- models: each (K, rng) -> (model, X); K is the keras module -------------------------------------------------
def case_stack(K, rng):
    """Sequential: every recurrent option that does not need a mask, and the element-wise activations."""
    L = K.layers
    model = K.Sequential(
        [
            K.Input((T, 3)),
            L.GaussianNoise(0.3),
            L.LSTM(5, activation="relu", recurrent_activation="hard_sigmoid", return_sequences=True),
            L.Dropout(0.5),
            L.GRU(4, reset_after=False, recurrent_activation="hard_sigmoid", return_sequences=True, unroll=True),
            L.SpatialDropout1D(0.5),
            L.GRU(4, use_bias=False, activation="elu", return_sequences=True),
            L.SimpleRNN(3, activation="relu", return_sequences=True),
            L.TimeDistributed(L.Dense(4, activation="swish")),
            L.Dense(4, activation="gelu"),
            L.Activation("softplus"),
            L.Dense(4, activation="hard_sigmoid"),
            L.Dense(3, activation="selu", use_bias=False),
            L.Activation("softsign"),
            L.Dense(3, activation="softmax"),
        ]
    )
    return model, rng.standard_normal((B, T, 3)).astype(np.float32)


def case_last(K, rng):
    """Normalization, use_bias=False, return_sequences=False, stateful (a fresh model: zero state)."""
    L = K.layers
    inp = K.Input((T, 2), batch_size=B)
    norm = L.Normalization()
    norm.adapt(rng.normal(3.0, 2.0, (20, T, 2)).astype(np.float32))
    x = L.LSTM(4, use_bias=False, return_sequences=True, stateful=True)(norm(inp))
    x = L.LSTM(3, recurrent_activation="tanh")(x)
    model = K.Model(inp, L.Dense(2, activation="tanh")(x))
    return model, rng.normal(3.0, 2.0, (B, T, 2)).astype(np.float32)


def case_constants(K, rng):
    """Normalization from constants (per feature; scalar with invert=True); no biases anywhere."""
    L = K.layers
    model = K.Sequential(
        [
            K.Input((T, 2)),
            L.Normalization(mean=[1.0, -2.0], variance=[4.0, 0.25]),
            L.Normalization(mean=0.5, variance=2.0, invert=True),
            L.SimpleRNN(3, use_bias=False, return_sequences=True),
            L.Dense(2, use_bias=False),
        ]
    )
    return model, rng.normal(0.0, 2.0, (B, T, 2)).astype(np.float32)


def case_offset_readings(K, rng):
    """Readings far from zero (a pressure in Pa, varying by a few Pa): Normalization's subtraction keeps digits that a
    folded x / std - mean / std loses (1 / 3 in float32 is off by 1e-8, 1e-3 at 101300)."""
    L = K.layers
    model = K.Sequential(
        [K.Input((T, 2)), L.Normalization(mean=[101300.0, 20.0], variance=[9.0, 0.25]), L.LSTM(4), L.Dense(1)]
    )
    return model, (rng.normal(0.0, 1.0, (B, T, 2)) * [3.0, 0.5] + [101300.0, 20.0]).astype(np.float32)


def case_batchnorm(K, rng):
    """BatchNormalization in inference (moving statistics), with and without scale / center, before and after the
    recurrent layer."""
    L = K.layers
    model = K.Sequential(
        [
            K.Input((T, 3)),
            L.BatchNormalization(),
            L.LSTM(4, return_sequences=True),
            L.BatchNormalization(center=False, epsilon=0.01),
            L.Dense(2),
            L.BatchNormalization(scale=False),
        ]
    )
    return model, rng.normal(0.5, 2.0, (B, T, 3)).astype(np.float32)


def case_layernorm(K, rng):
    """LayerNormalization over each step's features: the default epsilon (1e-3), without center, without scale,
    and after a masked LSTM (Keras normalizes the zeros it outputs at masked steps: the result is beta)."""
    L = K.layers
    inp = K.Input((T, 3))
    x = L.LayerNormalization()(L.Masking(0.0)(inp))
    x = L.LSTM(6, return_sequences=True, zero_output_for_mask=True)(x)
    x = L.LayerNormalization(center=False, epsilon=1e-5)(x)
    x = L.GRU(5, return_sequences=True)(x)
    x = L.LayerNormalization(scale=False, axis=-1)(x)
    model = K.Model(inp, L.Dense(2)(x))
    X = masked_input(rng, 3)
    return model, np.where(X != 0, X * 2 + 0.5, 0).astype(np.float32)  # a mean for the first norm to remove


def case_bidirectional(K, rng):
    """All four merge modes; the last Bidirectional returns its final outputs; a Softmax layer."""
    L = K.layers
    model = K.Sequential(
        [
            K.Input((T, 3)),
            L.Bidirectional(L.LSTM(3, return_sequences=True)),
            L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum"),
            L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode="mul"),
            L.Bidirectional(L.GRU(2, reset_after=False), merge_mode="ave"),
            L.Dense(3),
            L.Softmax(),
        ]
    )
    return model, rng.standard_normal((B, T, 3)).astype(np.float32)


def case_backwards(K, rng):
    """go_backwards with return_sequences=True: Keras returns processing order, a following layer reads it so."""
    L = K.layers
    model = K.Sequential(
        [
            K.Input((T, 2)),
            L.LSTM(3, go_backwards=True, return_sequences=True),
            L.GRU(3, return_sequences=True),
            L.SimpleRNN(3, go_backwards=True, return_sequences=True),
            L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode="sum"),
            L.LSTM(2, go_backwards=True, return_sequences=True),
            L.Dense(2),
        ]
    )
    return model, rng.standard_normal((B, T, 2)).astype(np.float32)


def case_backwards_last(K, rng):
    L = K.layers
    model = K.Sequential(
        [K.Input((T, 2)), L.LSTM(3, go_backwards=True, return_sequences=True), L.GRU(2, go_backwards=True), L.Dense(1)]
    )
    return model, rng.standard_normal((B, T, 2)).astype(np.float32)


def masked_input(rng, features):
    X = rng.standard_normal((B, T, features)).astype(np.float32)
    X[0, 2] = 0.0  # a gap
    X[1, T - 2 :] = 0.0  # trailing padding
    X[2, :2] = 0.0  # leading padding
    return X


def case_masked(K, rng):
    """Masking: stand-alone layers repeat their last output at masked steps, Bidirectional outputs 0."""
    L = K.layers
    inp = K.Input((T, 3))
    x = L.Masking(0.0)(inp)
    x = L.Dense(4)(x)  # computed on the zeroed steps by Keras
    x = L.LSTM(4, return_sequences=True)(x)
    x = L.Bidirectional(L.GRU(3, return_sequences=True))(x)
    x = L.SimpleRNN(3, go_backwards=True, return_sequences=True)(x)
    model = K.Model(inp, L.TimeDistributed(L.Dense(2))(x))
    return model, masked_input(rng, 3)


def case_masked_last(K, rng):
    L = K.layers
    model = K.Sequential(
        [
            K.Input((T, 2)),
            L.Masking(-1.0),
            L.GRU(3, return_sequences=True, zero_output_for_mask=True),
            L.Bidirectional(L.LSTM(2)),
            L.Dense(1),
        ]
    )
    X = masked_input(rng, 2)
    X[X == 0.0] = -1.0
    return model, X


def case_zero_output_last(K, rng):
    """zero_output_for_mask with return_sequences=False: a sequence whose last step is masked outputs 0 (Keras's
    last_output), which the Dense head then maps to its bias."""
    L = K.layers
    model = K.Sequential(
        [
            K.Input((T, 2)),
            L.Masking(0.0),
            L.LSTM(4, return_sequences=True, zero_output_for_mask=True),
            L.GRU(3, zero_output_for_mask=True),
            L.Dense(2),
        ]
    )
    return model, masked_input(rng, 2)


def case_zero_output_backwards_last(K, rng):
    """The same for layers that run backwards: their last step is step 0 (masked in the third sequence)."""
    L = K.layers
    inp = K.Input((T, 2))
    x = L.Masking(0.0)(inp)
    x = L.Bidirectional(L.LSTM(3, zero_output_for_mask=True), merge_mode="sum")(x)
    model = K.Model(inp, L.Dense(2)(x))
    return model, masked_input(rng, 2)


def case_zero_output_go_backwards_last(K, rng):
    L = K.layers
    model = K.Sequential(
        [K.Input((T, 2)), L.Masking(0.0), L.SimpleRNN(3, go_backwards=True, zero_output_for_mask=True), L.Dense(2)]
    )
    return model, masked_input(rng, 2)


def case_embedding(K, rng):
    """Embedding(mask_zero=True) feeding a functional chain with return_state (only the sequence is used)."""
    L = K.layers
    inp = K.Input((T,), dtype="int32")
    x = L.Embedding(12, 4, mask_zero=True)(inp)
    x, _, _ = L.LSTM(4, return_sequences=True, return_state=True)(x)
    x = L.GRU(3, return_sequences=True)(L.Dropout(0.2)(x))
    model = K.Model(inp, L.Dense(2, activation="softmax")(L.Activation("tanh")(x)))
    X = rng.integers(1, 12, (B, T))
    X[0, 3], X[1, -2:], X[2, 0] = 0, 0, 0
    return model, X.astype(np.int32)


def case_pooled_average(K, rng):
    """The classic sequence classifier: a masked LSTM, GlobalAveragePooling1D (the mean of the unmasked steps only),
    normalisations of the (batch, features) pool (tf_keras saves their axis as [1] there), a softmax head. The
    output is (batch, classes)."""
    L = K.layers
    inp = K.Input((T, 3))
    x = L.LSTM(5, return_sequences=True)(L.Masking(0.0)(inp))
    x = L.GlobalAveragePooling1D()(L.LayerNormalization()(x))
    x = L.LayerNormalization()(L.BatchNormalization()(x))
    model = K.Model(inp, L.Dense(3, activation="softmax")(x))
    return model, masked_input(rng, 3)


def case_pooled_max(K, rng):
    """Embedding(mask_zero) -> Bidirectional GRU -> GlobalMaxPooling1D, which ignores the mask (Keras warns so): the
    max takes the masked steps' outputs too; then a sigmoid head."""
    L = K.layers
    inp = K.Input((T,), dtype="int32")
    x = L.Bidirectional(L.GRU(4, return_sequences=True))(L.Embedding(12, 4, mask_zero=True)(inp))
    model = K.Model(inp, L.Dense(1, activation="sigmoid")(L.GlobalMaxPooling1D()(x)))
    X = rng.integers(1, 12, (B, T))
    X[0, 3], X[1, -2:], X[2, 0] = 0, 0, 0
    return model, X.astype(np.int32)


def case_residual(K, rng):
    """Skip connections: residual recurrent blocks (Add of a layer's input and output), a head added to the output of
    an earlier block, the functional `add` form, and `x + y` (Keras 3: an ops Add; tf_keras: a TFOpLambda)."""
    L = K.layers
    inp = K.Input((T, 3))
    h = L.Dense(4, activation="tanh")(inp)
    x = L.Add()([L.LSTM(4, return_sequences=True)(h), h])
    y = x + L.GRU(4, return_sequences=True)(x)
    model = K.Model(inp, L.Dense(2)(L.add([L.Dense(4)(y), h])))
    return model, rng.standard_normal((B, T, 3)).astype(np.float32)


def case_masked_skip(K, rng):
    """The input added to the output of a masked LSTM's head (an audio-effect style skip), and a skip from the
    Masking layer (which zeroes masked steps: its mask_value is 0, as the input's there)."""
    L = K.layers
    inp = K.Input((T, 3))
    masked = L.Masking(0.0)(inp)
    x = L.Dense(3)(L.LSTM(5, return_sequences=True)(masked))
    model = K.Model(inp, L.Add()([masked, L.Add()([x, inp])]))
    return model, masked_input(rng, 3)


CASES = {
    f.__name__[5:]: f
    for f in (
        case_stack,
        case_last,
        case_constants,
        case_offset_readings,
        case_batchnorm,
        case_layernorm,
        case_bidirectional,
        case_backwards,
        case_backwards_last,
        case_masked,
        case_masked_last,
        case_zero_output_last,
        case_zero_output_backwards_last,
        case_zero_output_go_backwards_last,
        case_embedding,
        case_pooled_average,
        case_pooled_max,
        case_residual,
        case_masked_skip,
    )
}


def randomize(model, rng):
    """Every weight random (adapted Normalization statistics kept; a BatchNormalization variance positive)."""
    for layer in model.layers:
        if type(layer).__name__ != "Normalization" and layer.get_weights():
            weights = [rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()]
            if type(layer).__name__ == "BatchNormalization":
                weights[-1] = np.abs(weights[-1]) + 0.1  # moving_variance
            layer.set_weights(weights)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(version, case) -> (sources by format, X, Keras output), each built once."""
    cache, directory = {}, str(tmp_path_factory.mktemp("keras"))

    def get(version, case):
        if (version, case) not in cache:
            K = keras_framework(version)
            rng = np.random.default_rng([SEED, VERSIONS.index(version), list(CASES).index(case)])
            K.utils.set_random_seed(SEED)
            model, X = CASES[case](K, rng)
            randomize(model, rng)
            expected = np.asarray(model(X, training=False))
            sources = {
                fmt: save_keras(model, fmt, os.path.join(directory, f"{version}_{case}")) for fmt in FORMATS[version]
            }
            cache[version, case] = sources, X, expected
        return cache[version, case]

    return get


@pytest.mark.parametrize("version, case, fmt", [(v, c, f) for v in VERSIONS for c in CASES for f in FORMATS[v]])
def test_matches_framework(built, version, case, fmt):
    sources, X, expected = built(version, case)
    source, layers = sources[fmt]
    if fmt != "live":
        assert is_keras_file(source)
    model = load_keras(source, layers=layers)
    assert_close(model.predict(X), expected, what=f"{version} {case} {fmt}")


@pytest.mark.parametrize("version, case", [(v, c) for v in VERSIONS for c in CASES])
def test_model_files_keep_every_case(built, version, case, tmp_path):
    """Each case saved as lstmrt's own file loads back as the same kind of model (a KerasModel keeps its masking)
    and still matches Keras."""
    sources, X, expected = built(version, case)
    model = load_keras(sources["live"][0])
    model.save(tmp_path / "model.lstmrt")
    loaded = lstmrt.load(tmp_path / "model.lstmrt")
    assert type(loaded) is type(model)
    assert_close(loaded.predict(X), expected, what=f"{version} {case} via .lstmrt")


@pytest.mark.parametrize("version", VERSIONS)
def test_hard_sigmoid_follows_the_writer(built, version):
    sources, _, _ = built(version, "stack")
    model = load_keras(sources["keras"][0])
    want = "hard_sigmoid_v3" if version == "keras3" else "hard_sigmoid"
    assert model.layers[0].activations[0] == want


@pytest.mark.parametrize("case", ["masked", "bidirectional"])
def test_keras_models_take_the_threads_argument(built, case):
    """A loaded Keras model is a Model subclass (it applies Keras masking): predict(threads=) must still work."""
    sources, X, expected = built("keras3", case)
    model = load_keras(sources["keras"][0])
    X16 = np.concatenate([X] * (16 // len(X) + 1))[:16]  # enough rows for two threads (8 each)
    assert_close(model.predict(X16, threads=2), model.predict(X16), what=case)


@pytest.mark.parametrize("version", VERSIONS)
def test_weights_only_architecture_forms(built, version, tmp_path):
    """layers= as the to_json() string, its dict, or a .json file path."""
    sources, X, expected = built(version, "masked_last")
    path, text = sources["weights_v3"]
    json_path = tmp_path / "arch.json"
    json_path.write_text(text)
    for layers in (text, json.loads(text), str(json_path), json_path):
        assert_close(load_keras(path, layers=layers).predict(X), expected)


def test_keras_model_pickles_with_its_masking(built):
    import pickle

    sources, X, expected = built("keras3", "masked")
    copy = pickle.loads(pickle.dumps(load_keras(sources["keras"][0])))
    assert copy.mask_value == 0.0 and copy.reverse_output
    assert_close(copy.predict(X), expected)


def test_explicit_mask_overrides_the_derived_one(built):
    sources, X, expected = built("keras3", "masked")
    model = load_keras(sources["keras"][0])
    assert model.mask_value == 0.0 and model.reverse_output
    derived = np.any(X != 0.0, axis=-1)
    assert_close(model.predict(np.where(derived[..., None], X, 0.0), mask=derived), expected)
    assert not np.allclose(model.predict(X, mask=np.ones((B, T), bool)), expected, atol=ATOL)


@pytest.mark.parametrize("version", VERSIONS)
def test_masking_zeroes_masked_steps(version, rng):
    """Keras' Masking outputs 0 at masked steps: visible when no recurrent layer follows and mask_value != 0."""
    K = keras_framework(version)
    model = K.Sequential([K.Input((T, 2)), K.layers.Masking(-1.0), K.layers.Dense(2)])
    randomize(model, rng)
    X = masked_input(rng, 2)
    X[X == 0.0] = -1.0
    assert_close(load_keras(model).predict(X), np.asarray(model(X, training=False)))


@pytest.mark.parametrize("version", ["tf_keras"])
def test_keras2_weights_of_another_instance_match_in_order(version, tmp_path, rng):
    """Keras 2 load_weights pairs weighted layers in order when the names differ (auto-named twins)."""
    K = keras_framework(version)
    L = K.layers

    def make():
        return K.Sequential([K.Input((T, 2)), L.LSTM(3, return_sequences=True), L.Dropout(0.1), L.Dense(1)])

    model, twin = make(), make()
    assert model.layers[0].name != twin.layers[0].name
    randomize(model, rng)
    model.save_weights(tmp_path / "w.h5")
    X = rng.standard_normal((B, T, 2)).astype(np.float32)
    loaded = load_keras(tmp_path / "w.h5", layers=twin.to_json())
    assert_close(loaded.predict(X), np.asarray(model(X, training=False)))


@pytest.mark.parametrize("version", ["tf_keras"])
def test_keras2_weights_pair_in_order_even_where_names_match_other_layers(version, tmp_path, rng):
    """The architecture names its two LSTM layers as the file's in the other order: Keras's load_weights pairs them
    by order (by_name=False), lstmrt paired them by name (0.15 off, found by a probe)."""
    K = keras_framework(version)
    L = K.layers

    def make(first, second):
        inp = K.Input((T, 2))
        return K.Model(inp, L.LSTM(2, name=second)(L.LSTM(2, return_sequences=True, name=first)(inp)))

    model, swapped = make("lstm", "lstm_1"), make("lstm_1", "lstm")
    randomize(model, rng)
    model.save_weights(tmp_path / "w.h5")
    swapped.load_weights(tmp_path / "w.h5")  # Keras's own reading of the file
    X = rng.standard_normal((B, T, 2)).astype(np.float32)
    expected = np.asarray(swapped(X))
    assert_close(expected, np.asarray(model(X)))
    assert_close(load_keras(tmp_path / "w.h5", layers=swapped.to_json()).predict(X), expected)


# -- the tutorial ---------------------------------------------------------------------------------------------
def noisy_sine_windows(rng, timesteps, n=200):
    series = np.sin(np.arange(n + timesteps) * 0.1) + 0.1 * rng.standard_normal(n + timesteps)
    X = np.stack([series[i : i + timesteps] for i in range(n)])[..., None].astype(np.float32)
    return X, series[timesteps : timesteps + n].astype(np.float32)


@pytest.mark.parametrize("version", VERSIONS)
def test_tutorial_example(version, tmp_path):
    K = keras_framework(version)
    K.utils.set_random_seed(SEED)
    timesteps, features = 10, 1
    X, y = noisy_sine_windows(np.random.default_rng(SEED), timesteps)
    model = K.Sequential([K.layers.LSTM(50, activation="relu", input_shape=(timesteps, features)), K.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, y, epochs=3, batch_size=32, verbose=0)
    expected = model.predict(X, verbose=0)
    for ext in ("keras", "h5"):
        model.save(tmp_path / f"tutorial.{ext}")
        loaded = load_keras(tmp_path / f"tutorial.{ext}")
        assert_close(loaded.predict(X), expected, what=ext)
        stream = loaded.stream()
        for x in X[7]:
            last = stream.step(x)
        assert_close(last, expected[7], what=f"{ext} stream")


# -- Keras 2 cuDNN layers ---------------------------------------------------------------------------------------
def test_cudnn_layers_match_keras_conversion(tmp_path):
    """CuDNNLSTM / CuDNNGRU cannot run without a GPU, but tf_keras builds and saves them. The reference is the
    equivalent LSTM / GRU(reset_after=True) model into which tf_keras itself converts the cuDNN weights."""
    K = keras_framework("tf_keras")
    cudnn_lstm = pytest.importorskip("tf_keras.src.layers.rnn.cudnn_lstm")
    cudnn_gru = pytest.importorskip("tf_keras.src.layers.rnn.cudnn_gru")
    rng = np.random.default_rng(SEED)
    L = K.layers
    cudnn = K.Sequential(
        [
            K.Input((T, 3)),
            cudnn_lstm.CuDNNLSTM(5, return_sequences=True),
            cudnn_gru.CuDNNGRU(4, return_sequences=True),
            L.Dense(2),
        ]
    )
    randomize(cudnn, rng)
    path = str(tmp_path / "cudnn.h5")
    cudnn.save(path)
    plain = K.Sequential(
        [
            K.Input((T, 3)),
            L.LSTM(5, return_sequences=True),
            L.GRU(4, return_sequences=True, reset_after=True),
            L.Dense(2),
        ]
    )
    plain.load_weights(path)
    X = rng.standard_normal((B, T, 3)).astype(np.float32)
    assert_close(load_keras(path).predict(X), np.asarray(plain(X, training=False)))


# -- refusals -------------------------------------------------------------------------------------------------
def refusal(version, build):
    K = keras_framework(version)
    return build(K, K.layers)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "build, words",
    [
        (
            lambda K, L: K.Sequential([K.Input((T, 3)), L.Conv1D(2, 3), L.LSTM(2)]),
            ["'conv1d'", "Conv1D", "not supported", "LSTM", "Bidirectional"],
        ),
        (
            lambda K, L: K.Sequential([K.Input((T, 3)), L.LSTM(2, activation="softmax")]),
            ["LSTM", "softmax", "supported"],
        ),
        (
            lambda K, L: K.Model(inp := K.Input((T, 3)), L.Bidirectional(L.LSTM(2), merge_mode=None)(inp)[0]),
            ["Bidirectional", "merge_mode=None"],
        ),
        (
            lambda K, L: K.Sequential([K.Input((T, 3)), L.Dense(2), L.Masking(0.0), L.LSTM(2)]),
            ["Masking", "before every other layer"],
        ),
        (lambda K, L: K.Sequential([K.Input((T, 3)), K.Sequential([L.LSTM(2)])]), ["nested", "Sequential"]),
        (
            lambda K, L: K.Sequential(
                [K.Input((T, 3)), L.LSTM(2, go_backwards=True, return_sequences=True), L.Bidirectional(L.GRU(2))]
            ),
            ["Bidirectional", "concat", "reversed"],
        ),
        (
            lambda K, L: K.Sequential(
                [K.Input((T, 3)), L.Masking(), L.LSTM(2, go_backwards=True, return_sequences=True), L.GRU(2)]
            ),
            ["GRU", "go_backwards", "mask"],
        ),
        (lambda K, L: K.Sequential([K.Input((3,)), L.Dense(2)]), ["(batch, time, features)"]),
        (
            lambda K, L: K.Sequential([K.Input((T, 3)), L.LSTM(2, return_sequences=True), L.Softmax(axis=1)]),
            ["Softmax(axis=1)", "axis -1"],
        ),
    ],
    ids=[
        "conv1d",
        "activation",
        "merge_none",
        "masking_late",
        "nested",
        "bidir_reversed",
        "mask_reversed",
        "not_sequence",
        "softmax_over_time",
    ],
)
def test_refuses_unsupported_models(version, build, words):
    model = refusal(version, build)
    with pytest.raises(ValueError) as info:
        load_keras(model)
    for word in words:
        assert word in str(info.value)


def test_refuses_a_bidirectional_whose_forward_half_runs_backwards(tmp_path):
    """tf_keras builds Bidirectional(LSTM(go_backwards=True)) (Keras 3 refuses it): refused, and documented."""
    K = keras_framework("tf_keras")
    model = K.Sequential([K.Input((T, 3)), K.layers.Bidirectional(K.layers.LSTM(4, go_backwards=True))])
    model.save(str(tmp_path / "b.h5"))
    with pytest.raises(ValueError, match="forward layer with go_backwards=True"):
        load_keras(str(tmp_path / "b.h5"))


def test_refuses_a_subclassed_model_live_and_saved(tmp_path):
    """A subclassed model has no layer graph in its config: the same refusal, live or from its file."""
    K = keras_framework("keras3")

    class Forecaster(K.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.rnn, self.head = K.layers.LSTM(4), K.layers.Dense(1)

        def call(self, x):
            return self.head(self.rnn(x))

    model = Forecaster()
    model(np.zeros((1, T, 3), np.float32))
    words = r"Keras model class Forecaster is not supported: only Sequential and Functional models \(subclassed"
    with pytest.raises(UnsupportedModelError, match=words):
        load_keras(model)
    model.save(str(tmp_path / "f.keras"))
    with pytest.raises(UnsupportedModelError, match=words):
        load_keras(str(tmp_path / "f.keras"))


def test_refuses_batch_renormalization(tmp_path):
    K = keras_framework("tf_keras")
    model = K.Sequential([K.Input((T, 3)), K.layers.BatchNormalization(renorm=True, name="bn"), K.layers.LSTM(2)])
    model.save(str(tmp_path / "r.h5"))
    with pytest.raises(UnsupportedModelError, match=r"Keras layer 'bn' \(BatchNormalization\): renorm=True is not"):
        load_keras(str(tmp_path / "r.h5"))


@pytest.mark.parametrize(
    "kind,mode", [("Dense", "int8"), ("Dense", "int4"), ("Dense", "float8"), ("Embedding", "int8")]
)
def test_refuses_a_layer_quantized_by_keras(tmp_path, kind, mode):
    """Keras 3's quantize() stores integer or scaled weights under a quantized dtype policy: refused up front,
    naming the layer and the mode (float8 used to fail as "expected 2 weight arrays, found 8")."""
    K = keras_framework("keras3")
    L = K.layers
    if kind == "Dense":
        model = K.Sequential([K.Input((T, 3)), L.LSTM(4, return_sequences=True), L.Dense(2, name="q")])
    else:
        model = K.Sequential([K.Input((T,), dtype="int32"), L.Embedding(10, 4, name="q"), L.LSTM(3)])
    model.get_layer("q").quantize(mode)
    model.save(str(tmp_path / "q.keras"))
    words = rf"Keras layer 'q' \({kind}\): is quantized by Keras \(dtype policy '{mode}.*'\); lstmrt runs float weights"
    with pytest.raises(UnsupportedModelError, match=words):
        load_keras(str(tmp_path / "q.keras"))
    with pytest.raises(UnsupportedModelError, match=words):
        load_keras(model)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_runs_a_mixed_precision_model_in_float32(tmp_path, policy):
    """Mixed precision keeps float32 variables: lstmrt equals the same weights under the float32 policy, and Keras'
    own mixed-precision outputs within their float16/bfloat16 rounding."""
    K = keras_framework("keras3")
    L = K.layers

    def build():
        return K.Sequential([K.Input((None, 3)), L.LSTM(16, return_sequences=True), L.GRU(8), L.Dense(4)])

    K.mixed_precision.set_global_policy(policy)
    try:
        mixed = build()
    finally:
        K.mixed_precision.set_global_policy("float32")
    plain = build()
    plain.set_weights(mixed.get_weights())
    mixed.save(str(tmp_path / "m.keras"))
    X = np.random.default_rng(SEED).standard_normal((B, 40, 3)).astype(np.float32)
    got = load_keras(str(tmp_path / "m.keras")).predict(X)
    assert_close(got, np.asarray(plain(X)), ATOL)
    assert_close(got, np.asarray(mixed(X)).astype(np.float32), 5e-3)


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_branches_and_states(version):
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((T, 3))
    a, b = L.LSTM(2, return_sequences=True)(inp), L.GRU(2, return_sequences=True)(inp)
    with pytest.raises(ValueError, match=r"adds two branches \('lstm.*' and 'gru.*'\): lstmrt runs one chain"):
        load_keras(K.Model(inp, L.Add()([a, b])))
    with pytest.raises(ValueError, match="takes 3 tensors"):
        load_keras(K.Model(inp, L.Add()([a, a, a])))
    both = L.Bidirectional(L.LSTM(2, return_state=True))(inp)  # [output, h and c forward, h and c backward]
    with pytest.raises(ValueError, match=r"uses output 1 of Keras layer .* \(Bidirectional\) \(return_state=True\)"):
        load_keras(K.Model(inp, L.Dense(1)(both[1])))


@pytest.mark.parametrize("fmt", ["live", "keras", "h5"])
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "op, names",
    [
        (lambda ops, h: h[:, 0, :], ("SlicingOpLambda", "__operators__.getitem", "GetItem")),
        (lambda ops, h: h**2.0, ("TFOpLambda", "math.pow", "Power")),
        (lambda ops, h: ops.mean(h, axis=2), ("TFOpLambda", "math.reduce_mean", "Mean")),
    ],
    ids=["first-step-slice", "power", "mean-over-features"],
)
def test_refuses_framework_ops_on_tensors_naming_them(tmp_path, version, fmt, op, names):
    """A TensorFlow op on a tensor (tf_keras: a TFOpLambda / SlicingOpLambda layer) or a Keras 3 ops node, from every
    format: refused naming it, never taken for a damaged file (tf_keras writes these layers' inbound nodes in a
    form of their own; Keras 3 leaves ops nodes out of an .h5's layer list). The last step and the mean / max over
    time load: tests/test_keras_ops_nodes.py; arithmetic with a constant: tests/test_keras_arith.py."""
    tf = pytest.importorskip("tensorflow")
    K = keras_framework(version)
    ops = K.ops if version == "keras3" else types.SimpleNamespace(mean=tf.reduce_mean)
    inp = K.Input((T, 3))
    model = K.Model(inp, K.layers.Dense(1)(op(ops, K.layers.LSTM(2, return_sequences=True)(inp))))
    source, _ = save_keras(model, fmt, tmp_path / "m")
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(source)
    message = str(info.value)
    assert "not supported" in message, message
    assert any(name in message for name in names), message


@pytest.mark.parametrize("fmt", ["live", "keras", "h5"])
def test_tf_keras_tensorflow_add_is_a_skip_connection(tmp_path, rng, fmt):
    """tf.add(x, y) of two tensors of the chain in tf_keras (a TFOpLambda "math.add"), as `x + y`."""
    tf = pytest.importorskip("tensorflow")
    K = keras_framework("tf_keras")
    inp = K.Input((T, 3))
    h = K.layers.LSTM(3, return_sequences=True)(inp)
    model = K.Model(inp, K.layers.Dense(2)(tf.add(h, inp)))
    randomize(model, rng)
    source, _ = save_keras(model, fmt, tmp_path / "m")
    X = rng.standard_normal((B, T, 3)).astype(np.float32)
    loaded = lstmrt.load(source)
    assert any(isinstance(layer, lstmrt.Add) for layer in loaded.layers)
    assert_close(loaded.predict(X), model(X))


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_skip_connections_lstmrt_cannot_compute(version):
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((T, 3))
    backwards = L.SimpleRNN(3, go_backwards=True, return_sequences=True)(inp)
    with pytest.raises(ValueError, match=r"adds data in reversed time order \(after a go_backwards layer\)"):
        load_keras(K.Model(inp, L.Add()([backwards, inp])))
    masked = L.Masking(0.5)(inp)
    with pytest.raises(ValueError, match=r"adds the output of Masking\(mask_value=0.5\), which Keras zeroes"):
        load_keras(K.Model(inp, L.Add()([L.Dense(3)(L.LSTM(2, return_sequences=True)(masked)), masked])))


def _return_state_models(K):
    """The encoder pattern `_, h, c = LSTM(..., return_state=True)(x)` with h read: id -> (model, refused words)."""
    L = K.layers
    inp = K.Input((None, 3))
    _, h, c = L.LSTM(4, return_state=True)(inp)
    _, gru_h = L.GRU(4, return_state=True, return_sequences=True)(inp)  # h of a layer that returns its sequence
    _, back_h = L.SimpleRNN(4, return_state=True, go_backwards=True)(inp)
    _, masked_h, _ = L.LSTM(4, return_state=True, return_sequences=True)(L.Masking(0.0)(inp))
    return {
        "lstm-h": (K.Model(inp, L.Dense(2)(h)), None),
        "gru-sequence-h": (K.Model(inp, L.Dense(2)(gru_h)), None),
        "go_backwards-h": (K.Model(inp, back_h), None),
        "masked-h": (K.Model(inp, L.Dense(2)(masked_h)), None),  # Keras holds the state through masked steps
        "lstm-c": (K.Model(inp, L.Dense(2)(c)), "uses the cell state c of Keras layer"),
    }


@pytest.mark.parametrize("fmt", ["live", "keras", "h5"])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_return_state_h_is_the_final_output(version, fmt, tmp_path, rng):
    """It was refused ("only a layer's first output"); h is the layer's final output, which lstmrt's layer gives
    with return_sequences=False. The cell state c has no lstmrt layer output: refused."""
    K = keras_framework(version)
    X = masked_input(rng, 3)
    for name, (model, refused) in _return_state_models(K).items():
        source = save_keras(model, fmt, tmp_path / name)[0]
        if refused:
            with pytest.raises(ValueError, match=refused):
                lstmrt.load(source)
            continue
        randomize(model, rng)
        source = save_keras(model, fmt, tmp_path / f"{name}_randomized")[0]
        assert_close(lstmrt.load(source).predict(X), np.asarray(model(X)), what=f"{name} {fmt}")


@pytest.mark.parametrize(
    "version, fmt", [(v, f) for v in VERSIONS for f in ("live", "keras", "h5")] + [("tf_keras", "weights_h5")]
)
def test_flatten_after_the_last_step_is_no_change(version, fmt, tmp_path, rng):
    """Keras-2 tutorials put Flatten() after LSTM(return_sequences=False): (batch, features) stays as it is. It was
    refused as an unknown layer; a Flatten of a sequence (time and features into one axis) still is."""
    K = keras_framework(version)
    L = K.layers
    model = K.Sequential([K.Input((T, 3)), L.Masking(0.0), L.LSTM(4), L.Flatten(), L.Dense(2)])
    randomize(model, rng)
    source, layers = save_keras(model, fmt, tmp_path / "m")
    X = masked_input(rng, 3)
    assert_close(load_keras(source, layers=layers).predict(X), np.asarray(model(X)))
    sequence = K.Sequential([K.Input((T, 3)), L.LSTM(4, return_sequences=True), L.Flatten(), L.Dense(2)])
    with pytest.raises(ValueError, match=r"\(Flatten\): flattens a sequence's time and feature axes into one"):
        load_keras(sequence)


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_the_raw_input_added_in_a_model_masking_another_value(version, rng):
    """Keras adds the input as given, the mask value in its masked steps; lstmrt's masked model zeroes those steps
    of its input (wrong by |mask_value| there, found by a probe). With mask_value 0 the two agree: it loads."""
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((T, 3))
    for value, refused in ((-1.0, r"adds the model input as it is before Masking\(mask_value=-1\)"), (0.0, None)):
        model = K.Model(inp, L.Add()([inp, L.LSTM(3, return_sequences=True)(L.Masking(value)(inp))]))
        _refused_or_matching(model, refused, rng)


def _refused_or_matching(model, refused, rng):
    """A masked Keras model of 3 input features: refused with words matching `refused`, or (None) loaded to match
    Keras."""
    if refused:
        with pytest.raises(ValueError, match=refused):
            load_keras(model)
        return
    randomize(model, rng)
    X = masked_input(rng, 3)
    assert_close(load_keras(model).predict(X), np.asarray(model(X)))


@pytest.mark.parametrize("version", VERSIONS)
def test_an_add_of_the_unmasked_input_drops_the_mask_in_keras3_only(version, rng):
    """Keras 3's Add passes no mask on when one input has none (here the model input, before the Masking layer):
    the GRU after it runs every step there (lstmrt masked it: 0.12 off, found by a probe), so it is refused; tf_keras
    passes the mask on, and the same model loads."""
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((T, 3))
    added = L.Add()([L.LSTM(3, return_sequences=True)(L.Masking(0.0)(inp)), inp])
    refused = r"\(GRU\): follows Keras layer 'add\w*' \(Add: its input from 'input\w*' has no mask"
    _refused_or_matching(K.Model(inp, L.GRU(2)(added)), refused if version == "keras3" else None, rng)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_mask_is_found_in_the_float32_input_keras_computes_with(version, rng):
    """A float64 step that is the mask value in float32 (1e-50 for Masking(0)) is masked by Keras, which converts
    the input first; lstmrt compared the float64 values (0.04 off, found by a probe)."""
    K = keras_framework(version)
    model = K.Sequential([K.Input((T, 2)), K.layers.Masking(0.0), K.layers.LSTM(3)])
    randomize(model, rng)
    X = rng.standard_normal((B, T, 2))
    X[0, 2] = 1e-50
    X[1, 3] = [0.0, 1e-46]
    expected = np.asarray(model(X.astype(np.float32)))
    assert_close(load_keras(model).predict(X), expected)


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_pooling_lstmrt_cannot_compute(version):
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((T, 3))
    x = L.LSTM(2, return_sequences=True)(inp)
    with pytest.raises(ValueError, match=r"keepdims=True \(a \(batch, 1, features\) output\) is not supported"):
        load_keras(K.Model(inp, L.GlobalAveragePooling1D(keepdims=True)(x)))
    with pytest.raises(ValueError, match="data_format='channels_first' pools over the features"):
        load_keras(K.Model(inp, L.GlobalMaxPooling1D(data_format="channels_first")(x)))
    masked = L.SimpleRNN(2, go_backwards=True, return_sequences=True)(L.Masking(0.0)(inp))
    with pytest.raises(ValueError, match="follows a go_backwards layer in a masked model"):
        load_keras(K.Model(inp, L.GlobalAveragePooling1D()(masked)))


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_a_masked_layer_after_one_that_drops_the_mask(version, rng):
    """Keras 3's RMSNormalization and tf_keras' Normalization and Identity do not pass the mask on: Keras then runs
    the recurrent and average-pooling layers after them on every step. lstmrt masks all of them, so it refuses (it
    gave the mean of the unmasked steps: a wrong answer); a max pool, which ignores the mask, still loads."""
    K = keras_framework(version)
    L = K.layers
    drop = (lambda: L.RMSNormalization()) if version == "keras3" else (lambda: L.Identity())
    inp = K.Input((T, 3))
    masked = drop()(L.Masking(0.0)(inp))
    for head in (L.GlobalAveragePooling1D()(masked), L.LSTM(2)(masked)):
        with pytest.raises(ValueError, match=r"follows Keras layer .* which drops Keras's mask"):
            load_keras(K.Model(inp, head))
    model = K.Model(inp, L.GlobalMaxPooling1D()(masked))
    X = masked_input(rng, 3)
    assert_close(load_keras(model).predict(X), np.asarray(model(X)))


def test_refuses_wrong_architecture_arguments(built, tmp_path):
    sources, _, _ = built("keras3", "masked_last")
    weights, text = sources["weights_v3"]
    with pytest.raises(ValueError, match="weights only: pass the architecture as layers="):
        load_keras(weights)
    with pytest.raises(ValueError, match="full model .* do not pass layers="):
        load_keras(sources["h5"][0], layers=text)
    with pytest.raises(ValueError, match="archive holds the architecture"):
        load_keras(sources["keras"][0], layers=text)
    with pytest.raises(TypeError, match="layers= must be the model architecture"):
        load_keras(weights, layers=[1, 2])
    with pytest.raises(FileNotFoundError, match="no such Keras file"):
        load_keras(tmp_path / "missing.keras")


def test_refuses_tensorflow_formats_saying_how_to_resave(tmp_path, rng, capsys):
    """tf_keras writes a SavedModel directory (model.save) or a TensorFlow checkpoint (save_weights) when the name
    has no .keras/.h5 extension. lstmrt.load said 'Is a directory' / 'No such file' for the name the user gave and
    'unrecognized file format' for the files inside; now what they are and how to re-save, in load and the CLI."""
    import lstmrt
    from lstmrt.cli import main

    K = keras_framework("tf_keras")
    model = K.Sequential([K.Input((None, 3)), K.layers.LSTM(4), K.layers.Dense(1)])
    randomize(model, rng)
    model.save(tmp_path / "forecaster")
    model.save_weights(tmp_path / "ckpt")
    cases = {
        "forecaster": "a TensorFlow SavedModel directory",
        "forecaster/saved_model.pb": "SavedModel's graph",
        "ckpt": r"prefix of a TensorFlow checkpoint \(ckpt.index, .data-\*\)",
        "ckpt.index": "checkpoint's index",
    }
    for name, what in cases.items():
        with pytest.raises(UnsupportedModelError, match=what + r".*model.save\('model.keras'\).*to_json"):
            lstmrt.load(tmp_path / name)
        assert main(["inspect", str(tmp_path / name)]) == 2
        assert re.search(what, capsys.readouterr().err)
    with pytest.raises(FileNotFoundError):  # other missing paths and directories stay OSErrors
        lstmrt.load(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        lstmrt.load(tmp_path / "forecaster" / "variables")


def test_missing_h5py_is_explained(built, monkeypatch):
    import sys

    sources, _, _ = built("keras3", "masked_last")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install 'lstmrt\[keras\]'"):
        load_keras(sources["h5"][0])


def test_is_keras_file(built, tmp_path):
    import h5py

    sources, _, _ = built("keras3", "masked_last")
    assert is_keras_file(sources["keras"][0]) and is_keras_file(sources["h5"][0])
    text, npz, other_h5 = tmp_path / "a.txt", tmp_path / "a.npz", tmp_path / "a.h5"
    text.write_text("hello")
    np.savez(npz, a=np.zeros(3))
    with h5py.File(other_h5, "w") as f:
        f["x"] = np.zeros(3)
    assert not any(is_keras_file(p) for p in (text, npz, other_h5, tmp_path / "missing.h5"))
