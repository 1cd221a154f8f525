"""The README's main job: `lstmrt demo` on the shipped weights."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ATOL, assert_close
from lstmrt import demo


def _training_script():
    """scripts/train_demo_model.py as a module (its main() is not run: nothing is trained here)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "train_demo_model.py"
    spec = importlib.util.spec_from_file_location("train_demo_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_weights_load():
    w = demo.load_weights()
    H = int(w["hidden_size"])
    assert w["lstm.weight_ih"].shape == (4 * H, 1) and w["lstm.weight_hh"].shape == (4 * H, H)
    assert w["head.weight"].shape == (1, H) and w["head.bias"].shape == (1,)
    assert all(w[k].dtype == np.float32 for k in demo._WEIGHT_KEYS)
    assert int(w["signal_version"]) == demo.SIGNAL_VERSION
    assert demo.default_weights_path().read_bytes()[:2] == b"PK"  # a plain npz (zip), loaded without pickle


def test_shipped_model_computes_what_the_training_script_model_computes():
    """The training script's own torch module, filled from the npz, against lstmrt on the same npz: proves the
    layout (gate order, transposes, biases, input/output scaling)."""
    torch = pytest.importorskip("torch")
    net = _training_script().DemoFilter.from_npz(demo.default_weights_path())
    _, noisy = demo.make_signal(700, seed=7)
    with torch.no_grad():
        expected = net(torch.from_numpy(noisy)[None, :, None]).numpy()[0, :, 0]
    got = demo.build_model(demo.load_weights()).predict(noisy[:, None])[:, 0]
    std = float(demo.load_weights()["input_std"])
    assert_close(got, expected, atol=ATOL * max(1.0, std))


def test_filter_stays_good_on_a_long_run():
    """Two minutes of signal: the filter must not drift or meet levels it never saw (a bug of signal version 1,
    whose random-walk drift left the trained range after ~20 s)."""
    clean, noisy = demo.make_signal(120_000, seed=2)
    filtered = demo.build_model(demo.load_weights()).predict(noisy[:, None])[:, 0]
    for part in np.array_split(np.arange(len(clean)), 4):
        assert demo.rmse(filtered[part], clean[part]) < 0.5 * demo.rmse(noisy[part], clean[part])


def test_weights_from_another_signal_version_are_refused(tmp_path):
    w = demo.load_weights()
    w["signal_version"] = np.int32(demo.SIGNAL_VERSION + 1)
    np.savez(tmp_path / "old.npz", **w)
    with pytest.raises(ValueError, match="signal_version.*retrain"):
        demo.load_weights(tmp_path / "old.npz")
    del w["head.bias"]
    np.savez(tmp_path / "partial.npz", **w)
    with pytest.raises(ValueError, match="missing head.bias"):
        demo.load_weights(str(tmp_path / "partial.npz"))


def test_streamed_filter_equals_predict_and_reduces_error():
    result = demo.run(3000, seed=1)
    w = demo.load_weights()
    assert_close(result.filtered, demo.build_model(w).predict(result.noisy[:, None])[:, 0])
    assert result.rmse_after < 0.5 * result.rmse_before
    assert result.step_ns.shape == (3000,) and result.step_ns.min() > 0


def test_signal_is_deterministic_and_splits_differ():
    a, b = demo.make_signal(100, 3), demo.make_signal(100, 3)
    assert np.array_equal(a[1], b[1])
    assert not np.array_equal(demo.make_signal(100, 3, "train")[1], a[1])
    with pytest.raises(ValueError, match="split"):
        demo.make_signal(10, 0, "test")


def test_cli_demo_prints_errors_latency_and_real_time_factor():
    out = subprocess.run(
        [sys.executable, "-m", "lstmrt", "demo", "--samples", "2000"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = {line.split("(")[0].strip(): line for line in out.stdout.splitlines()}
    before = float(lines["error before filtering"].split(":")[1].split()[0])
    after = float(lines["error after filtering"].split(":")[1].split()[0])
    assert after < before
    assert "latency per step: median" in out.stdout and "real-time factor" in out.stdout


def test_cli_demo_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    out = subprocess.run(
        [sys.executable, "-m", "lstmrt", "demo", "--samples", "1500", "--plot", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_demo_plot_without_matplotlib_fails_clearly(tmp_path):
    # sys.modules[name] = None makes `import name` raise ImportError, as on a machine without matplotlib
    code = (
        "import sys; sys.modules['matplotlib'] = None; from lstmrt.cli import main; "
        f"sys.exit(main(['demo', '--samples', '100', '--plot', {str(tmp_path / 'x.png')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "needs matplotlib" in out.stderr and "lstmrt[plot]" in out.stderr
    assert not (tmp_path / "x.png").exists()
