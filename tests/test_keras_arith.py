"""Arithmetic with a constant in a Keras functional model, and the Rescaling layer, against the Keras that wrote
them: `h * c`, `c * h`, `h / c`, `h + c`, `c + h`, `h - c`, `c - h`, `-h` (c a number or one value per feature),
which Keras 3 saves as Multiply / TrueDivide / Divide / Add / Subtract / Negative ops nodes and tf_keras as
TFOpLambda layers (math.multiply, math.truediv, __operators__.add, math.subtract, math.negative), and
Rescaling(scale, offset). lstmrt runs each as an Affine, y = x * scale + shift.

Keras passes no mask through an ops node (nor tf_keras through Rescaling; Keras 3's Rescaling passes it on): in a
masked model the recurrent and average-pooling layers after one run on every step, which lstmrt refuses. The
other forms (c / x, x // c, x ** c, two tensors, a constant over time or batch, ops on token ids) are refused
naming the node."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by either Keras

import re  # noqa: E402

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
STEPS = 6  # of the models with a fixed length (refusals)
PER_FEATURE = np.array([0.5, -1.25, 2.0], np.float32)
SEED = 2718


def ops(version):
    """keras.ops in Keras 3; TensorFlow's functions of the same names in tf_keras (Keras 2 has no ops module)."""
    return keras_framework(version).ops if version == "keras3" else tf


def rescaling(version, scale, offset=0.0):
    return keras_framework(version).layers.Rescaling(scale, offset)


# each form: (version, h) -> h and a constant combined as written; Keras 3 saves `ops.divide` as a Divide node,
# `/` as TrueDivide (tf_keras: both math.truediv)
FORMS = {
    "x*c": lambda v, h: h * 1.75,
    "c*x": lambda v, h: 1.75 * h,
    "x/c": lambda v, h: h / 3.0,
    "x+c": lambda v, h: h + 0.375,
    "c+x": lambda v, h: 0.375 + h,
    "x-c": lambda v, h: h - 0.375,
    "c-x": lambda v, h: 0.375 - h,
    "-x": lambda v, h: -h,
    "negative": lambda v, h: ops(v).negative(h),
    "multiply_int": lambda v, h: ops(v).multiply(h, 2),
    "divide": lambda v, h: ops(v).divide(h, 0.7),
    "per_feature": lambda v, h: h * PER_FEATURE,
    "per_feature_c-x": lambda v, h: ops(v).subtract(PER_FEATURE, h),
    "per_feature_row": lambda v, h: h + tf.constant(PER_FEATURE[None]),  # (1, features); Keras 3: a __tensor__
    "rescaling": lambda v, h: rescaling(v, 2.5, -0.5)(h),
    "rescaling_per_feature": lambda v, h: rescaling(v, [1.5, -0.5, 3.0], [0.25, 0.0, -1.0])(h),
}
# computed by Keras in one IEEE operation, which lstmrt's x * scale + shift reproduces bit for bit (-0.0 included);
# x / c runs as x * (1 / c), and Rescaling's two operations may be fused, each within a float32 rounding
BIT_EXACT = {f: op for f, op in FORMS.items() if "/" not in f and "divide" not in f and "rescaling" not in f}
BIT_EXACT["per_feature_(1, 1, features)"] = lambda v, h: h * PER_FEATURE[None, None]  # on a sequence only


def build(version, form, rng):
    """The form wherever it may appear: on the input, between recurrent layers, after the last step, after a Dense
    head. Input -> form -> SimpleRNN (sequences) -> form -> SimpleRNN (last step) -> form -> Dense -> form. (The
    cell type does not matter here, and SimpleRNN is the quickest to build.)"""
    K = keras_framework(version)
    L = K.layers
    op = FORMS[form]
    inp = K.Input((None, FEATURES))
    x = L.SimpleRNN(FEATURES, return_sequences=True)(op(version, inp))
    x = op(version, L.SimpleRNN(FEATURES)(op(version, x)))
    model = K.Model(inp, op(version, L.Dense(FEATURES)(x)))
    randomize(model, rng)
    return model


# the classes of the nodes tested here: Keras 3 ops nodes, tf_keras op layers, Rescaling
OP_NODES = ("Multiply", "TrueDivide", "Divide", "Add", "Subtract", "Negative", "FloorDivide", "Power")
OP_NODES += ("TFOpLambda", "Rescaling")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(version, form) -> (model, sources by format, [(input, Keras's output)] for SHAPES), each built, saved and
    run by Keras once."""
    cache, directory = {}, tmp_path_factory.mktemp("arith")

    def get(version, form):
        if (version, form) not in cache:
            keras_framework(version).utils.set_random_seed(SEED)
            rng = np.random.default_rng([SEED, VERSIONS.index(version), list(FORMS).index(form)])
            model = build(version, form, rng)
            base = str(directory / f"{version}_{list(FORMS).index(form)}")
            sources = {fmt: save_keras(model, fmt, base)[0] for fmt in FORMATS}
            inputs = [rng.standard_normal((B, T, FEATURES)).astype(np.float32) for B, T in SHAPES]
            cache[version, form] = model, sources, [(X, keras_output(model, X)) for X in inputs]
        return cache[version, form]

    return get


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("version", VERSIONS)
def test_matches_keras(built, version, form, fmt):
    _, sources, cases = built(version, form)
    loaded = lstmrt.load(sources[fmt])
    assert sum(isinstance(layer, lstmrt.Affine) for layer in loaded.layers) == 4
    for X, want in cases:
        assert_close(loaded.predict(X), want, what=f"{version} {form} {fmt} {X.shape}")


@pytest.mark.parametrize("form", ["c-x", "x/c", "rescaling_per_feature"])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_stream_gives_at_each_step_what_keras_returns_for_the_sequence_so_far(built, version, form, rng):
    model, sources, _ = built(version, form)
    B, T = SHAPES[0]
    X = rng.standard_normal((B, T, FEATURES)).astype(np.float32)
    stream = lstmrt.load(sources["live"]).stream(batch=B)
    for t in range(T):
        assert_close(stream.step(X[:, t]), keras_output(model, X[:, : t + 1]), what=f"step {t}")


@pytest.mark.parametrize("version", VERSIONS)
def test_products_and_sums_are_bit_exact(version):
    """Signed zeros, overflow to inf and NaN come out as Keras computes them (NaN's sign aside). Not denormals:
    the runtime flushes them to zero (docs/kernels.md), where Keras keeps them."""
    K = keras_framework(version)
    specials = [0.0, -0.0, 3e38, -3e38, np.nan, 1.0, -2.5, 0.375, -1.75, 1e-30]
    X = np.array(specials * FEATURES, np.float32).reshape(1, -1, FEATURES)
    for form, op in BIT_EXACT.items():
        inp = K.Input((None, FEATURES))
        model = K.Model(inp, op(version, inp))
        want, got = keras_output(model, X), lstmrt.load(model).predict(X)
        assert np.array_equal(np.isnan(got), np.isnan(want)), form
        finite = ~np.isnan(want)
        assert np.array_equal(got[finite].view(np.uint32), want[finite].view(np.uint32)), form


@pytest.mark.parametrize("version", VERSIONS)
def test_after_a_pooling_and_the_last_step(version, rng):
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((None, FEATURES))
    h = L.LSTM(4, return_sequences=True)(inp)
    for head in (L.GlobalAveragePooling1D()(h) - 0.5, 2.0 * h[:, -1]):
        model = K.Model(inp, L.Dense(2)(head))
        randomize(model, rng)
        X = rng.standard_normal((3, 7, FEATURES)).astype(np.float32)
        assert_close(lstmrt.load(model).predict(X), keras_output(model, X))


@pytest.mark.parametrize("fmt", ["live", "h5"])
@pytest.mark.parametrize("version", VERSIONS)
def test_rescaling_in_a_sequential_model(version, fmt, tmp_path, rng):
    K = keras_framework(version)
    L = K.layers
    model = K.Sequential([K.Input((None, FEATURES)), L.Rescaling(1 / 255.0, -0.25), L.GRU(4), L.Dense(1)])
    randomize(model, rng)
    source, _ = save_keras(model, fmt, str(tmp_path / "m"))
    X = rng.uniform(0, 255, (3, 6, FEATURES)).astype(np.float32)
    assert_close(lstmrt.load(source).predict(X), keras_output(model, X))


# Masks. Keras 3 passes its mask on through Rescaling only; ops nodes and tf_keras' Rescaling drop it.
def masked_model(version, where, op):
    """Masking(0.0), then `op` (a function of the tensor) before the first recurrent layer, between two, or
    before an average pooling."""
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((None, FEATURES))
    x = L.Masking(0.0)(inp)
    if where == "before":
        out = L.LSTM(3, return_sequences=True)(op(x))
    elif where == "between":
        out = L.GRU(2, return_sequences=True)(op(L.LSTM(3, return_sequences=True)(x)))
    else:
        out = L.GlobalAveragePooling1D()(op(L.LSTM(3, return_sequences=True)(x)))
    return K.Model(inp, out)


@pytest.mark.parametrize("version", VERSIONS)
def test_keras_passes_no_mask_through_ops_nodes(version, rng):
    """What the refusals below rest on (Keras 3.15, tf_keras 2.21): after `x * 2.0` the LSTM runs the masked
    (zeroed) steps; after Rescaling too in tf_keras, while after Keras 3's it carries its output through them."""
    X = masked_input(rng, 3, 6, FEATURES)  # step 2 of sequence 0 is masked
    dropped = keras_output(masked_model(version, "before", lambda x: x * 2.0), X)
    assert not np.allclose(dropped[0, 2], dropped[0, 1])
    kept = keras_output(masked_model(version, "before", lambda x: rescaling(version, 2.0)(x)), X)
    assert np.allclose(kept[0, 2], kept[0, 1]) == (version == "keras3")


@pytest.mark.parametrize("fmt", ["live", "keras"])
def test_keras_3_rescaling_keeps_the_mask(fmt, tmp_path, rng):
    K = keras_framework("keras3")
    L = K.layers
    inp = K.Input((None, FEATURES))
    x = L.LSTM(3, return_sequences=True)(L.Rescaling(2.0, 0.5)(L.Masking(0.0)(inp)))
    model = K.Model(inp, L.GRU(2, return_sequences=True)(L.Rescaling([1.0, -2.0, 0.5], 0.25)(x)))
    randomize(model, rng)
    source, _ = save_keras(model, fmt, str(tmp_path / "m"))
    for B, T in SHAPES:
        X = masked_input(rng, B, T, FEATURES)
        assert_close(lstmrt.load(source).predict(X), keras_output(model, X), what=f"{B}x{T}")


@pytest.mark.parametrize("version", VERSIONS)
def test_ops_after_the_last_masked_layer_load(version, rng):
    """Past the last layer reading the mask, a dropped mask changes nothing: a sequence head (each masked step
    carries the LSTM's output, as in lstmrt) and a last step."""
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((None, FEATURES))
    masked = L.Masking(0.0)(inp)
    sequence = 1.0 - L.Dense(2)(L.LSTM(3, return_sequences=True)(masked)) * 2.0
    last = -L.GRU(3)(masked) / 4.0
    for out in (sequence, last):
        model = K.Model(inp, out)
        randomize(model, rng)
        X = masked_input(rng, 3, 7, FEATURES)
        assert_close(lstmrt.load(model).predict(X), keras_output(model, X))


MASK_DROPPING = {
    "before": ("before", lambda v, x: x * 2.0),
    "between": ("between", lambda v, x: x - 0.5),
    "average": ("average", lambda v, x: -x),
    "skip_sum": ("between", lambda v, x: x + keras_framework(v).layers.Dense(3)(x)),  # two tensors: a skip
    "rescaling": ("before", lambda v, x: rescaling(v, 2.0)(x)),  # tf_keras only: Keras 3's passes the mask on
}


@pytest.mark.parametrize(
    "version, case", [(v, c) for v in VERSIONS for c in MASK_DROPPING if (v, c) != ("keras3", "rescaling")]
)
def test_refuses_a_masked_layer_after_an_op_that_drops_the_mask(version, case):
    where, op = MASK_DROPPING[case]
    model = masked_model(version, where, lambda x: op(version, x))
    reader = {"before": "LSTM", "between": "GRU", "average": "GlobalAveragePooling1D"}[where]
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(model)
    message = str(info.value)
    pattern = rf"\({reader}\): follows Keras layer '{re.escape(op_node(model, OP_NODES))}' .*which drops Keras's mask"
    assert re.search(pattern, message), message


def test_a_skip_add_layer_keeps_the_mask(rng):
    """layers.Add passes the mask on, where `x + y` (an ops node) drops it. tf_keras only: Keras 3 hands the GRU the
    Add's mask as a mask= of ops nodes of its own, which lstmrt refuses as a custom mask."""
    K = keras_framework("tf_keras")
    L = K.layers
    inp = K.Input((None, FEATURES))
    h = L.LSTM(3, return_sequences=True)(L.Masking(0.0)(inp))
    model = K.Model(inp, L.GRU(2, return_sequences=True)(L.Add()([L.Dense(3)(h), h])))
    randomize(model, rng)
    X = masked_input(rng, 3, 7, FEATURES)
    assert_close(lstmrt.load(model).predict(X), keras_output(model, X))


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_mask_zero_embeddings_through_an_op(version):
    K = keras_framework(version)
    L = K.layers
    tokens = K.Input((None,), dtype="int32")
    out = L.LSTM(2)(L.Embedding(12, 4, mask_zero=True)(tokens) * 0.5)
    with pytest.raises(UnsupportedModelError, match=r"\(LSTM\): follows Keras layer .* which drops Keras's mask"):
        lstmrt.load(K.Model(tokens, out))


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_ops_on_token_ids(version):
    K = keras_framework(version)
    L = K.layers
    tokens = K.Input((None,), dtype="int32")
    model = K.Model(tokens, L.LSTM(2)(L.Embedding(12, 4)(tokens * 2)))
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(model)
    message = str(info.value)
    assert f"Keras layer {op_node(model, OP_NODES)!r}" in message, message
    assert "reads the token ids before the Embedding" in message, message


REFUSED = {
    "c/x": (lambda v, h: 2.0 / h, [r"c / x \(a constant divided by the data\) is not supported"]),
    "floor_divide": (lambda v, h: h // 2.0, [r"x // c \(floor division\) is not supported"]),
    "power": (lambda v, h: h**2.0, [r"x \*\* c \(a power\) is not supported"]),
    "two_tensors": (lambda v, h: h * h, ["multiplies two tensors: not supported"]),
    "over_time": (
        lambda v, h: h * np.ones((STEPS, FEATURES), np.float32),
        [r"x \* c: the constant has shape \(6, 3\), which broadcasts over the time axis"],
    ),
    "over_batch": (
        lambda v, h: h + np.ones((2, 1, FEATURES), np.float32),
        [r"shape \(2, 1, 3\), which broadcasts over the batch axis"],
    ),
    "over_batch_after_last_step": (
        lambda v, h: h[:, -1] * np.ones((2, FEATURES), np.float32),
        [r"shape \(2, 3\), which broadcasts over the batch axis"],
    ),
    "more_axes": (lambda v, h: h - np.ones((1, 1, 1, FEATURES), np.float32), ["more axes than the data's"]),
    "divide_by_zero": (lambda v, h: h / 0.0, ["x / c divides by zero"]),
    "infinite": (lambda v, h: h * float("inf"), ["holds inf or NaN"]),
    "rescaling_over_time": (
        lambda v, h: rescaling(v, np.ones((STEPS, FEATURES), np.float32))(h),
        [r"scale has shape \(6, 3\), which broadcasts over the time axis"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_other_forms_naming_the_node(version, case):
    K = keras_framework(version)
    inp = K.Input((STEPS, FEATURES))
    op, patterns = REFUSED[case]
    model = K.Model(inp, op(version, K.layers.LSTM(FEATURES, return_sequences=True)(inp)))
    with pytest.raises(UnsupportedModelError) as info:
        lstmrt.load(model)
    message = str(info.value)
    assert f"Keras layer {op_node(model, OP_NODES)!r}" in message, message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_from_files_too(version, fmt, tmp_path):
    """The saved forms of a constant first (tf_keras' _CONSTANT_VALUE) and of an array constant."""
    K = keras_framework(version)
    inp = K.Input((STEPS, FEATURES))
    h = K.layers.LSTM(FEATURES, return_sequences=True)(inp)
    for name, out in (("c_over_x", 2.0 / h), ("over_time", h * np.ones((STEPS, FEATURES), np.float32))):
        model = K.Model(inp, out)
        source, _ = save_keras(model, fmt, str(tmp_path / name))
        with pytest.raises(
            UnsupportedModelError, match=rf"Keras layer '{re.escape(op_node(model, OP_NODES))}'.* not supported"
        ):
            lstmrt.load(source)


@pytest.mark.parametrize("version", VERSIONS)
def test_refuses_a_constant_that_widens_the_features(version):
    K = keras_framework(version)
    inp = K.Input((None, FEATURES))
    model = K.Model(inp, K.layers.Dense(1)(K.layers.LSTM(4)(inp)) * PER_FEATURE)
    with pytest.raises(UnsupportedModelError, match=r"3 values for the data's 1 features \(it would broadcast"):
        lstmrt.load(model)
