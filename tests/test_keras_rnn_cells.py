"""keras.layers.RNN(cell) — an LSTMCell, GRUCell or SimpleRNNCell, or a stack of them (a list of cells,
StackedRNNCells), also inside Bidirectional — as the layers computing the same: the Keras guides' way to build a
recurrent layer. It was refused as an unknown layer. A stack runs its cells one after another at every step, which is
the same as one layer per cell over the sequence; checked against Keras 3 and tf_keras, live and from their files
(Keras 3 names a stack's weight groups by class, not in the cells' order)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by either Keras

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import KERAS_SAVE_WARNINGS, assert_close, keras_framework, save_keras  # noqa: E402

import lstmrt  # noqa: E402

pytest.importorskip("tensorflow")

pytestmark = KERAS_SAVE_WARNINGS

B, T, F = 3, 6, 3


def cases(L):
    return {
        "lstm-cell-sequence": [L.RNN(L.LSTMCell(4), return_sequences=True), L.Dense(2)],
        "gru-cell-last": [L.RNN(L.GRUCell(4))],
        "gru-cell-reset-before-no-bias": [L.RNN(L.GRUCell(4, use_bias=False, reset_after=False))],
        "simple-cell-go-backwards": [L.RNN(L.SimpleRNNCell(4, activation="relu"), go_backwards=True), L.Dense(2)],
        "cell-list": [L.RNN([L.GRUCell(4), L.SimpleRNNCell(3), L.LSTMCell(2)])],
        "stacked-cells-of-one-class": [L.RNN(L.StackedRNNCells([L.LSTMCell(4), L.LSTMCell(3)]), return_sequences=True)],
        "stack-go-backwards": [L.RNN([L.LSTMCell(4), L.GRUCell(3)], go_backwards=True, return_sequences=True)],
        "masked-stack": [L.Masking(0.0), L.RNN([L.LSTMCell(4), L.GRUCell(3)], return_sequences=True), L.Dense(2)],
        "bidirectional": [L.Bidirectional(L.RNN(L.LSTMCell(4), return_sequences=True), merge_mode="sum")],
    }


FORMATS = [("keras3", f) for f in ("live", "keras", "weights_v3")] + [("tf_keras", f) for f in ("h5", "weights_h5")]


LAYERS = {  # case -> how many lstmrt recurrent layers it is
    "lstm-cell-sequence": 1,
    "gru-cell-last": 1,
    "gru-cell-reset-before-no-bias": 1,
    "simple-cell-go-backwards": 1,
    "cell-list": 3,
    "stacked-cells-of-one-class": 2,
    "stack-go-backwards": 2,
    "masked-stack": 2,
    "bidirectional": 1,
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("version, fmt", FORMATS)
def test_rnn_of_cells_matches_keras(version, fmt, name, tmp_path):
    K = keras_framework(version)
    model = K.Sequential([K.Input((None, F))] + cases(K.layers)[name])
    rng = np.random.default_rng(7)
    model.set_weights([(0.6 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    X = (2 * rng.standard_normal((B, T, F))).astype(np.float32)
    X[1, T - 2 :] = 0.0  # padding, masked where the model masks
    X[2, 2] = 0.0
    source, layers = save_keras(model, fmt, tmp_path / "m")
    loaded = lstmrt.load(source, layers=layers)
    assert_close(loaded.predict(X), np.asarray(model(X)), what=f"{name} {version} {fmt}")
    kinds = (lstmrt.LSTM, lstmrt.GRU, lstmrt.SimpleRNN, lstmrt.Bidirectional)
    assert sum(isinstance(layer, kinds) for layer in loaded.layers) == LAYERS[name]


@pytest.mark.parametrize("version", ["keras3", "tf_keras"])
def test_refusals_name_the_layer(version):
    K = keras_framework(version)
    L = K.layers
    inp = K.Input((None, F))
    stacked = L.Bidirectional(L.RNN([L.LSTMCell(3), L.LSTMCell(2)]))(inp)
    with pytest.raises(lstmrt.UnsupportedModelError, match=r"wraps an RNN of stacked cells"):
        lstmrt.load(K.Model(inp, stacked))
    states = L.RNN(L.LSTMCell(3), return_state=True)(inp)
    with pytest.raises(lstmrt.UnsupportedModelError, match=r"\(RNN\): return_state=True of an RNN wrapper"):
        lstmrt.load(K.Model(inp, states[0]))
