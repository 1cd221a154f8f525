"""The comparison script (lstmrt bench / bench/compare.py) in its quickest form: it runs, checks every
implementation's output against lstmrt's, and produces the table, JSON and ratios. No timing is asserted."""

import json
import subprocess
import sys

import pytest

from lstmrt import bench_compare


def test_quick_comparison_with_torch_produces_table_and_json(tmp_path):
    pytest.importorskip("torch")
    report = bench_compare.run_comparison([(3, 16)], quick=True, frameworks=("torch",), rounds=1, min_time=1e-4)
    entry = report["sizes"][0]
    assert (entry["input_size"], entry["hidden_size"]) == (3, 16)
    text = bench_compare.format_report(report)
    assert "lstmrt stream.step" in text and "torch nn.LSTM step" in text and "Ratios vs targets" in text
    paths = bench_compare.write_outputs(report, text, tmp_path)
    with open(paths["json"]) as f:
        saved = json.load(f)
    assert saved["meta"]["kernel_tier"] == report["meta"]["kernel_tier"]
    assert saved["meta"]["threads"] == 1


def test_cli_bench_rejects_bad_sizes():
    out = subprocess.run([sys.executable, "-m", "lstmrt", "bench", "--sizes", "8by32"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "error" in out.stderr
