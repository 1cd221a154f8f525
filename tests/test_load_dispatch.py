"""lstmrt.load passes layers= through to the loader of the detected format: for a Keras weights-only file it is
the architecture (a to_json() string), for PyTorch sources the forward order (a list of names)."""

import numpy as np
import pytest

import lstmrt
from conftest import assert_close

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_keras_weights_file_with_json_architecture_through_load(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    net = tf_keras.Sequential(
        [tf_keras.layers.LSTM(4, input_shape=(None, 3), return_sequences=True), tf_keras.layers.Dense(2)]
    )
    path = tmp_path / "model.weights.h5"
    net.save_weights(str(path))
    X = np.random.default_rng(0).random((2, 5, 3)).astype(np.float32)
    assert_close(lstmrt.load(path, layers=net.to_json()).predict(X), net.predict(X, verbose=0))


def test_torch_file_refuses_a_string_for_layers(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "sd.pt"
    torch.save(torch.nn.LSTM(3, 4).state_dict(), path)
    with pytest.raises(TypeError, match="list of module names"):
        lstmrt.load(path, layers="lstm")
