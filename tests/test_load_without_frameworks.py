"""lstmrt.load in a process where torch, tensorflow, keras, onnx (and the safetensors package) cannot be imported: the
files are written here with the real frameworks, the expected outputs computed here, and a child process with an
import blocker loads the files and compares."""

import importlib.util
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import ATOL

BLOCKED = ("torch", "tensorflow", "keras", "tf_keras", "safetensors", "onnx", "onnxruntime", "onnxscript", "google")

CHILD = r"""
import json, sys

BLOCKED = set(json.loads(sys.argv[1]))


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"import of {name} blocked by the test")
        return None


sys.meta_path.insert(0, Blocker())
import numpy as np

import lstmrt

cases = json.loads(sys.argv[2])
atol = float(sys.argv[3])
for case in cases:
    model = lstmrt.load(case["path"], layers=case.get("layers"))
    X = np.load(case["input"])
    err = float(np.max(np.abs(model.predict(X) - np.load(case["expected"]))))
    print(case["name"], "ok" if err <= atol else f"max abs error {err}")
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print("imported:", leaked)
"""


def run_child(cases):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(BLOCKED), json.dumps(cases), str(ATOL)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:-1] == [f"{c['name']} ok" for c in cases], proc.stdout
    assert lines[-1] == "imported: []"


def case(tmp_path, name, X, expected, layers=None):
    np.save(tmp_path / f"{name}.x.npy", X)
    np.save(tmp_path / f"{name}.y.npy", expected)
    return {
        "name": name,
        "path": str(tmp_path / name),
        "input": str(tmp_path / f"{name}.x.npy"),
        "expected": str(tmp_path / f"{name}.y.npy"),
        "layers": layers,
    }


def test_torch_files_load_without_torch(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    from torch import nn

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True).eval()
    head = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).eval()
    X = rng.standard_normal((2, 9, 3)).astype(np.float32)
    with torch.no_grad():
        y_lstm = lstm.double()(torch.from_numpy(X).double())[0].numpy()
        y_head = head.double()(torch.from_numpy(X).double()).numpy()
    lstm.float()
    head.float()
    torch.save({"epoch": 1, "model_state": lstm.state_dict()}, tmp_path / "zip.pt")
    torch.save(lstm.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; its archives are still what we read
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        torch.jit.script(head).save(str(tmp_path / "script.pt"))
    safetensors_torch.save_file(head.state_dict(), str(tmp_path / "st.safetensors"))
    run_child(
        [
            case(tmp_path, "zip.pt", X, y_lstm),
            case(tmp_path, "legacy.pt", X, y_lstm),
            case(tmp_path, "script.pt", X, y_head),
            case(tmp_path, "st.safetensors", X, y_head, layers=["0", "tanh", "2"]),
        ]
    )


# Keras 3 saving TensorFlow variables under NumPy 2 (a framework warning, not ours).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_file_loads_without_keras(tmp_path):
    if importlib.util.find_spec("lstmrt.loaders.keras") is None:
        pytest.skip("no Keras loader in this lstmrt")
    pytest.importorskip("h5py")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")

    rng = np.random.default_rng(1)
    model = keras.Sequential(
        [keras.Input((None, 3)), keras.layers.GRU(4, return_sequences=True), keras.layers.Dense(2, activation="tanh")]
    )
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in model.get_weights()])
    X = rng.standard_normal((2, 7, 3)).astype(np.float32)
    expected = np.asarray(model(X))
    model.save(tmp_path / "model.keras")
    import lstmrt

    assert np.max(np.abs(lstmrt.load(model).predict(X) - expected)) <= ATOL  # a live model: load_keras
    run_child([case(tmp_path, "model.keras", X, expected)])


def test_onnx_file_loads_without_onnx(tmp_path):
    """The ONNX decoder is lstmrt's own: neither onnx, onnxruntime nor protobuf (google.protobuf) is imported."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")  # torch.onnx.export writes the file with it
    from torch import nn

    torch.manual_seed(2)
    net = nn.GRU(3, 5, num_layers=2).eval()  # sequence first: lstmrt takes (B, T, F), ONNX Runtime (T, B, F)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(7, 2, 3),), str(tmp_path / "gru.onnx"), dynamo=False)
    X = np.random.default_rng(2).standard_normal((2, 7, 3)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "gru.onnx"), providers=["CPUExecutionProvider"])
    (y, _) = session.run(None, {session.get_inputs()[0].name: X.transpose(1, 0, 2)})
    run_child([case(tmp_path, "gru.onnx", X, y.transpose(1, 0, 2))])
