"""The README's main job: `lstmrt demo` on the shipped weights."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_close
from lstmrt import demo


def test_shipped_weights_load_and_match_the_training_architecture():
    torch = pytest.importorskip("torch")
    w = demo.load_weights()
    H = int(w["hidden_size"])
    net_lstm, net_head = torch.nn.LSTM(1, H, batch_first=True), torch.nn.Linear(H, 1)
    with torch.no_grad():
        for name, p in net_lstm.named_parameters():
            p.copy_(torch.from_numpy(w[f"lstm.{name[:-3]}"]))
        for name, p in net_head.named_parameters():
            p.copy_(torch.from_numpy(w[f"head.{name}"]))
    _, noisy = demo.make_signal(500, seed=7)
    mean, std = float(w["input_mean"]), float(w["input_std"])
    x = torch.from_numpy((noisy[None, :, None] - mean) / std).float()
    with torch.no_grad():
        expected = net_head(net_lstm(x)[0]).numpy()[0, :, 0] * std + mean
    got = demo.build_model(w).predict(noisy[:, None])[:, 0]
    assert_close(got, expected, atol=1e-5 * max(1.0, std))


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
    out = subprocess.run([sys.executable, "-m", "lstmrt", "demo", "--samples", "2000"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {line.split("(")[0].strip(): line for line in out.stdout.splitlines()}
    before = float(lines["error before filtering"].split(":")[1].split()[0])
    after = float(lines["error after filtering"].split(":")[1].split()[0])
    assert after < before
    assert "latency per step: median" in out.stdout and "real-time factor" in out.stdout


def test_cli_demo_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    out = subprocess.run([sys.executable, "-m", "lstmrt", "demo", "--samples", "1500", "--plot", str(png)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
