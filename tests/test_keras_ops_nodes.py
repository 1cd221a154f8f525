"""Keras ops on the time axis of a functional model, against the Keras that wrote them: each sequence's last step
(`h[:, -1]`) and the mean / max over time (`keras.ops.mean(h, axis=1)`; tf_keras: `tf.reduce_mean(h, axis=1)`),
which Keras 3 saves as GetItem / Mean / Max nodes and tf_keras as SlicingOpLambda / TFOpLambda layers.

Keras ops ignore the mask: `h[:, -1]` reads step T-1 (what the recurrent layer output there: its carried output,
or 0 with zero_output_for_mask) and the max takes every step, as lstmrt does; the mean averages the masked steps
too, where lstmrt's average skips them, so a masked mean is refused. Every other form is refused naming the node."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by either Keras

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import KERAS_SAVE_WARNINGS, assert_close, keras_framework, save_keras  # noqa: E402
from keras_forms import keras_output, masked_input, op_node, randomize  # noqa: E402

import lstmrt  # noqa: E402
from lstmrt import UnsupportedModelError  # noqa: E402

pytest.importorskip("h5py")
tf = pytest.importorskip("tensorflow")

pytestmark = KERAS_SAVE_WARNINGS

VERSIONS = ("keras3", "tf_keras")
FORMATS = ("live", "keras", "h5")  # Keras 3's .h5 keeps the ops nodes in its config (Keras cannot load it back)
SHAPES = ((3, 6), (2, 11))  # (batch, steps): the models take any number of steps
FEATURES = 3
SEED = 4321
# the classes of the nodes tested here: Keras 3 ops nodes, tf_keras op layers
OP_NODES = ("GetItem", "Mean", "Max", "Sum", "Min", "SlicingOpLambda", "TFOpLambda")


def reduce(version: str, name: str):
    """keras.ops.<name> in Keras 3, tf.reduce_<name> in tf_keras (where Keras 2 has no ops module)."""
    K = keras_framework(version)
    return getattr(K.ops, name) if version == "keras3" else getattr(tf, f"reduce_{name}")


# each op: (version, h) -> the op applied to the (batch, time, features) tensor h
OPS = {
    "last": lambda v, h: h[:, -1],
    "last_all_features": lambda v, h: h[:, -1, :],
    "last_ellipsis": lambda v, h: h[..., -1, :],
    "mean": lambda v, h: reduce(v, "mean")(h, axis=1),
    "mean_axis_-2": lambda v, h: reduce(v, "mean")(h, axis=-2),
    "max": lambda v, h: reduce(v, "max")(h, axis=1),
}
# tf_keras cannot save an Ellipsis in a .keras archive (it can in .h5)
ACCEPTED = [
    (v, op, fmt)
    for v in VERSIONS
    for op in OPS
    for fmt in FORMATS
    if not (v == "tf_keras" and op == "last_ellipsis" and fmt == "keras")
]


def build(version, op, rng, *, masked=False, recurrent=None):
    """Input -> [Masking] -> recurrent layer (return_sequences=True) -> Dense -> op -> Dense, weights random."""
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((None, FEATURES))
    x = L.Masking(0.0)(inp) if masked else inp
    x = (recurrent or (lambda: L.LSTM(5, return_sequences=True)))()(x)
    x = OPS[op](version, L.Dense(4, activation="tanh")(x))
    model = K.Model(inp, L.Dense(2)(x))
    randomize(model, rng)
    return model


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(version, op) -> (model, sources by format), each built and saved once."""
    cache, directory = {}, tmp_path_factory.mktemp("ops")

    def get(version, op):
        if (version, op) not in cache:
            keras_framework(version).utils.set_random_seed(SEED)
            model = build(version, op, np.random.default_rng([SEED, VERSIONS.index(version), list(OPS).index(op)]))
            sources = {}
            for fmt in FORMATS:
                if not (version == "tf_keras" and op == "last_ellipsis" and fmt == "keras"):
                    sources[fmt] = save_keras(model, fmt, str(directory / f"{version}_{op}"))[0]
            cache[version, op] = model, sources
        return cache[version, op]

    return get


@pytest.mark.parametrize("version, op, fmt", ACCEPTED)
def test_matches_keras(built, version, op, fmt, rng):
    model, sources = built(version, op)
    loaded = lstmrt.load(sources[fmt])
    assert loaded.return_sequences is False  # (batch, features): the last step, or the pool of every step
    assert any(isinstance(layer, lstmrt.GlobalPooling) for layer in loaded.layers) == (not op.startswith("last"))
    for B, T in SHAPES:
        X = rng.standard_normal((B, T, FEATURES)).astype(np.float32)
        assert_close(loaded.predict(X), keras_output(model, X), what=f"{version} {op} {fmt} {B}x{T}")


@pytest.mark.parametrize("op", ["last", "mean", "max"])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_stream_gives_at_each_step_what_keras_returns_for_the_sequence_so_far(built, version, op, rng):
    model, sources = built(version, op)
    B, T = SHAPES[1]
    X = rng.standard_normal((B, T, FEATURES)).astype(np.float32)
    stream = lstmrt.load(sources["live"]).stream(batch=B)
    for t in range(T):
        assert_close(stream.step(X[:, t]), keras_output(model, X[:, : t + 1]), what=f"step {t}")


@pytest.mark.parametrize("version", VERSIONS)
def test_survives_lstmrt_model_files(built, version, tmp_path, rng):
    model, sources = built(version, "last")
    lstmrt.load(sources["keras"]).save(tmp_path / "m.lstmrt")
    X = rng.standard_normal((3, 6, FEATURES)).astype(np.float32)
    assert_close(lstmrt.load(tmp_path / "m.lstmrt").predict(X), keras_output(model, X))


def recurrent_layers(K):
    """Recurrent layers whose output at a masked step differs: carried (the default), 0 (zero_output_for_mask),
    and a Bidirectional (Keras makes both halves output 0 there)."""
    L = K.layers
    return {
        "carried": lambda: L.LSTM(5, return_sequences=True),
        "zero_output": lambda: L.GRU(5, return_sequences=True, zero_output_for_mask=True),
        "bidirectional": lambda: L.Bidirectional(L.LSTM(3, return_sequences=True)),
    }


@pytest.mark.parametrize("fmt", ["live", "keras"])
@pytest.mark.parametrize("kind", ["carried", "zero_output", "bidirectional"])
@pytest.mark.parametrize("op", ["last", "max"])
@pytest.mark.parametrize("version", VERSIONS)
def test_masked_last_step_and_max_match_keras(version, op, kind, fmt, tmp_path, rng):
    """Keras's `h[:, -1]` reads step T-1 whatever the mask, and its max takes every step: lstmrt's last step and
    max pool compute the same, masked last steps included."""
    K = keras_framework(version)
    model = build(version, op, rng, masked=True, recurrent=recurrent_layers(K)[kind])
    source, _ = save_keras(model, fmt, str(tmp_path / "m"))
    loaded = lstmrt.load(source)
    for B, T in SHAPES:
        X = masked_input(rng, B, T, FEATURES)
        assert_close(loaded.predict(X), keras_output(model, X), what=f"{version} {op} {kind} {fmt} {B}x{T}")


@pytest.mark.parametrize("version", VERSIONS)
def test_token_model_with_mask_zero_reads_the_last_step(version, rng):
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((None,), dtype="int32")
    h = L.GRU(4, return_sequences=True)(L.Embedding(12, 4, mask_zero=True)(inp))
    model = K.Model(inp, L.Dense(2)(h[:, -1]))
    randomize(model, rng)
    X = rng.integers(1, 12, (3, 7)).astype(np.int32)
    X[0, 3], X[1, -2:], X[2, 0] = 0, 0, 0
    assert_close(lstmrt.load(model).predict(X), keras_output(model, X))


@pytest.mark.parametrize("op", ["mean", "max"])
@pytest.mark.parametrize("version", VERSIONS)
def test_pools_after_a_go_backwards_layer(version, op, rng):
    """A mean or max does not depend on the order of the steps: it reads Keras's reversed sequence as it is."""
    K = keras_framework(version)
    model = build(version, op, rng, recurrent=lambda: K.layers.GRU(4, go_backwards=True, return_sequences=True))
    X = rng.standard_normal((3, 6, FEATURES)).astype(np.float32)
    assert_close(lstmrt.load(model).predict(X), keras_output(model, X))


@pytest.mark.parametrize("fmt", ["live", "keras", "h5"])
@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_a_mean_over_time_in_a_masked_model(version, fmt, tmp_path, rng):
    """Keras's mean ignores the mask and averages the masked steps too; lstmrt's average skips them, as
    GlobalAveragePooling1D does (which therefore gives Keras another answer on this input)."""
    K = keras_framework(version)
    inp = K.Input((None, FEATURES))
    h = K.layers.LSTM(4, return_sequences=True)(K.layers.Masking(0.0)(inp))
    model, pooled = K.Model(inp, reduce(version, "mean")(h, axis=1)), K.Model(inp, K.layers.GlobalAveragePooling1D()(h))
    randomize(model, rng)
    X = masked_input(rng, 3, 6, FEATURES)
    assert not np.allclose(keras_output(model, X), keras_output(pooled, X), atol=1e-3)
    source, _ = save_keras(model, fmt, str(tmp_path / "m"))
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(source)
    message = str(info.value)
    assert f"Keras layer {op_node(model, OP_NODES)!r}" in message, message
    for words in ("averages over time in a masked model", "ignores the mask", "GlobalAveragePooling1D"):
        assert words in message, message


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_a_mean_over_embeddings_masked_by_mask_zero(version):
    K = keras_framework(version)
    inp = K.Input((None,), dtype="int32")
    h = K.layers.LSTM(3, return_sequences=True)(K.layers.Embedding(12, 4, mask_zero=True)(inp))
    with pytest.raises(UnsupportedModelError, match="averages over time in a masked model"):
        lstmrt.load(K.Model(inp, reduce(version, "mean")(h, axis=1)))


REFUSED = {
    "first_step": (lambda v, h: h[:, 0], [r"h\[:, 0\] is not supported", "first step", r"lstmrt reads h\[:, -1\]"]),
    "last_slice": (lambda v, h: h[:, -1:], [r"h\[:, -1:\] is not supported", "keeps a time axis"]),
    "fixed_step": (lambda v, h: h[:, 5], [r"h\[:, 5\] is not supported", "fixed step"]),
    "one_feature": (lambda v, h: h[:, -1, 0], [r"h\[:, -1, 0\] is not supported", "selects features"]),
    "batch_row": (lambda v, h: h[-1], [r"h\[-1\] is not supported", "batch axis"]),
    "keepdims": (
        lambda v, h: reduce(v, "mean")(h, axis=1, keepdims=True),
        [r"mean\(axis=1, keepdims=True.*\) is not supported", "keepdims=False"],
    ),
    "over_features": (
        lambda v, h: reduce(v, "max")(h, axis=2),
        [r"max\(axis=2.*\) is not supported", "over the time axis"],
    ),
    "over_all_axes": (lambda v, h: reduce(v, "max")(h), [r"max\(.*\) is not supported", "over the time axis"]),
    "sum": (lambda v, h: reduce(v, "sum")(h, axis=1), [r"sum\(axis=1.*\) is not supported", "mean or the max"]),
    "min": (lambda v, h: reduce(v, "min")(h, axis=1), [r"min\(axis=1.*\) is not supported", "mean or the max"]),
}


@pytest.mark.parametrize("fmt", ["live", "keras", "h5"])
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", list(REFUSED))
def test_refuses_other_forms_naming_the_node(version, case, fmt, tmp_path):
    import re

    K = keras_framework(version)
    inp = K.Input((6, FEATURES))
    op, words = REFUSED[case]
    out = op(version, K.layers.LSTM(4, return_sequences=True)(inp))
    model = K.Model(inp, out)
    source, _ = save_keras(model, fmt, str(tmp_path / "m"))
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(source)
    message = str(info.value)
    assert f"Keras layer {op_node(model, OP_NODES)!r}" in message, message
    for pattern in words:
        assert re.search(pattern, message), (pattern, message)


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_ops_where_lstmrt_would_read_another_step(version):
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((6, FEATURES))
    backwards = L.LSTM(4, go_backwards=True, return_sequences=True)(inp)
    with pytest.raises(UnsupportedModelError, match=r"last step of a time-reversed sequence .* return_sequences=False"):
        lstmrt.load(K.Model(inp, L.Dense(2)(backwards[:, -1])))
    tokens = K.Input((6,), dtype="int32")
    with pytest.raises(UnsupportedModelError, match="reads the token ids before the Embedding"):
        lstmrt.load(K.Model(tokens, L.Dense(2)(L.Embedding(12, 4)(tokens[:, -1]))))
    final = L.LSTM(4)(inp)  # (batch, features): `[:, -1]` would take a feature, a mean would average the features
    for out in (final[:, -1], reduce(version, "mean")(final, axis=1)):
        with pytest.raises(UnsupportedModelError, match="returned its last step only: there is no time axis left"):
            lstmrt.load(K.Model(inp, out))
