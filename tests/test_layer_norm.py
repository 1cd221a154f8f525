"""Normalisation over each step's features (lstmrt.LayerNorm), read from the frameworks that define it: torch
nn.LayerNorm and nn.RMSNorm (live, TorchScript script and trace files, torch.save(model)), Keras 3's
LayerNormalization(rms_scaling=True) and RMSNormalization (Keras' plain LayerNormalization, in both Keras 2 and 3,
is a case of test_load_keras.py). Each model is built in the real framework and compared on the same input."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import assert_close  # noqa: E402
from torch import nn  # noqa: E402
from torch_forms import perturb  # noqa: E402

import lstmrt  # noqa: E402

# TensorFlow variables under NumPy 2, when Keras 3 converts them to save: the framework's warning, not lstmrt's
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def features(rng, size=5):
    return (rng.standard_normal((3, 7, size)) * 2 + 1).astype(np.float32)  # a mean that LayerNorm removes


# -- torch ----------------------------------------------------------------------------------------------------
class NormedLstm(nn.Module):
    def __init__(self, first, second):
        super().__init__()
        self.first, self.lstm, self.second, self.fc = first, nn.LSTM(5, 8, batch_first=True), second, nn.Linear(8, 3)

    def forward(self, x):
        y, _ = self.lstm(self.first(x))
        return self.fc(self.second(y))


TORCH_NORMS = {
    "layernorm": lambda: (nn.LayerNorm(5), nn.LayerNorm(8, eps=1e-3)),
    "no_affine_no_bias": lambda: (nn.LayerNorm(5, elementwise_affine=False), nn.LayerNorm(8, bias=False)),
    "rmsnorm_default_eps": lambda: (nn.RMSNorm(5), nn.RMSNorm(8, eps=1e-4)),
    "rmsnorm_no_affine": lambda: (nn.RMSNorm(5, elementwise_affine=False), nn.LayerNorm(8)),
}


def torch_model(name):
    torch.manual_seed(8)
    return perturb(NormedLstm(*TORCH_NORMS[name]()).eval())


def torch_source(net, X, how, tmp_path):
    if how == "live":
        return net
    path = tmp_path / "m.pt"
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript (and traces warn); archives are what users have
        warnings.simplefilter("ignore")
        if how == "script":
            torch.jit.script(net).save(str(path))
        elif how == "trace":
            torch.jit.trace(net, torch.from_numpy(X)).save(str(path))
        else:
            torch.save(net, path)
    return path


@pytest.mark.parametrize("how", ["live", "script", "trace", "torch_save"])
@pytest.mark.parametrize("name", list(TORCH_NORMS))
def test_torch_norms_match_torch(name, how, tmp_path, rng):
    net, X = torch_model(name), features(rng)
    with torch.no_grad():
        want = net(torch.from_numpy(X)).numpy()
    source = torch_source(net, X, how, tmp_path)
    layers = ["first", "lstm", "second", "fc"] if how == "torch_save" else None  # a pickle has no forward()
    model = lstmrt.load(source, layers=layers)
    assert_close(model.predict(X), want)
    stream = model.stream(batch=3)
    assert_close(np.stack([stream.step(X[:, t]) for t in range(X.shape[1])], axis=1), want)


def test_rmsnorm_without_eps_adds_float32_epsilon(rng):
    """nn.RMSNorm(eps=None) adds the input dtype's epsilon, 2**-23 for float32: visible on tiny inputs."""
    norm = nn.RMSNorm(4, elementwise_affine=False)
    X = (rng.standard_normal((1, 3, 4)) * 1e-4).astype(np.float32)
    with torch.no_grad():
        want = norm(torch.from_numpy(X)).numpy()
    assert_close(lstmrt.from_torch(nn.Sequential(norm)).predict(X), want)
    assert lstmrt.from_torch(norm).layers[0].epsilon == 2.0**-23


def test_torch_norm_over_more_than_features_is_refused():
    with pytest.raises(ValueError, match=r"nn.LayerNorm\(normalized_shape=\(7, 5\)\) is not supported: only the"):
        lstmrt.from_torch(nn.LayerNorm((7, 5)))


def test_a_state_dict_norm_says_what_to_load(tmp_path):
    """A 1-D weight does not say which normalisation or which epsilon: the message says how to save it."""
    torch.save(torch_model("layernorm").state_dict(), tmp_path / "sd.pt")
    with pytest.raises(
        lstmrt.ArchitectureError,
        match=r"module 'first' .*a 1-D weight may be a normalisation layer.*torch.save\(model\)",
    ):
        lstmrt.load(tmp_path / "sd.pt", layers=["first", "lstm", "second", "fc"])


# -- Keras 3: the RMS forms -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras3():
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    return keras


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")  # Keras deprecates it, still runs it
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file:UserWarning")
@pytest.mark.parametrize("fmt", ["live", "keras", "h5"])
def test_keras_rms_forms_match_keras(keras3, fmt, tmp_path, rng):
    """RMSNormalization: x / sqrt(mean(x^2) + eps). rms_scaling=True: x / sqrt(var + eps) * gamma, as Keras
    computes it (its warning says it divides by the variance, not the mean square)."""
    L = keras3.layers
    keras3.utils.set_random_seed(9)
    model = keras3.Sequential(
        [
            keras3.Input((7, 5)),
            L.RMSNormalization(),
            L.LSTM(8, return_sequences=True),
            L.LayerNormalization(rms_scaling=True, epsilon=1e-4),
            L.RMSNormalization(epsilon=1e-3),
            L.Dense(3),
        ]
    )
    for w in model.weights:
        w.assign(rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) + 1.0 * ("gamma" in w.path or "scale" in w.path))
    X = features(rng)
    want = np.asarray(model(X, training=False))
    if fmt != "live":
        model.save(str(tmp_path / f"m.{fmt}"))
    loaded = lstmrt.load(model if fmt == "live" else tmp_path / f"m.{fmt}")
    assert [getattr(s, "mode", None) for s in loaded.layers] == ["rms", None, "variance_scale", "rms", None]
    assert_close(loaded.predict(X), want)


def test_keras_norm_over_another_axis_is_refused(keras3, tmp_path):
    L = keras3.layers
    model = keras3.Sequential([keras3.Input((7, 5)), L.LayerNormalization(axis=1, name="ln"), L.LSTM(2)])
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(
        lstmrt.UnsupportedModelError, match=r"'ln' \(LayerNormalization\): axis=\[1\]: only per-feature"
    ):
        lstmrt.load(tmp_path / "m.keras")
