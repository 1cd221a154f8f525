"""The comparison script (lstmrt bench / bench/compare.py) in its quickest form: it runs, checks every
implementation's output against lstmrt's, and produces the table, JSON and ratios. No timing is asserted."""

import importlib.util
import json
import multiprocessing
import os
import signal
import subprocess
import sys

import pytest

from lstmrt import bench_compare, bench_peers, bench_report, bench_spec, bench_workers


def test_quick_comparison_with_torch_produces_table_and_json(tmp_path):
    pytest.importorskip("torch")
    report = bench_compare.run_comparison([(3, 16)], quick=True, frameworks=("torch",), rounds=1, min_time=1e-4)
    entry = report["sizes"][0]
    assert (entry["input_size"], entry["hidden_size"]) == (3, 16)
    text = bench_report.format_report(report)
    assert "lstmrt stream.step" in text and "torch nn.LSTM step" in text and "Ratios vs targets" in text
    paths = bench_report.write_outputs(report, text, tmp_path)
    with open(paths["json"]) as f:
        saved = json.load(f)
    assert saved["meta"]["kernel_tier"] == report["meta"]["kernel_tier"]
    assert saved["meta"]["threads"] == 1


def test_comparison_with_two_threads_each(tmp_path):
    """--threads 2: lstmrt's teams and torch's threads, each in a worker process (H = 64 is big enough for a team)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    report = bench_compare.run_comparison(
        [(16, 64)], quick=True, frameworks=("torch",), rounds=1, min_time=1e-4, threads=2
    )
    assert torch.get_num_threads() == before
    assert report["meta"]["threads"] == 2 and report["meta"]["machine_floor"] is None
    text = bench_report.format_report(report)
    assert "2 threads each" in text and "This machine's floor" not in text
    assert report["sizes"][0]["ratios"]["step"]["value"] is not None
    with pytest.raises(ValueError, match="threads must be at least 1"):
        bench_compare.run_comparison([(3, 16)], quick=True, frameworks=(), threads=0)


def test_more_than_one_thread_times_each_framework_in_a_worker_process_of_its_own():
    pytest.importorskip("torch")
    report = bench_compare.run_comparison(
        [(4, 16)], quick=True, frameworks=("torch",), rounds=2, min_time=1e-4, threads=2
    )
    meta = report["meta"]
    assert meta["isolation"] == "process per framework" and set(meta["settle_ms"]) == {"lstmrt", "torch"}
    assert meta["frameworks"]["torch"]  # the version, as reported by the torch worker
    results = report["sizes"][0]["results"]
    for key, (framework, _, _) in bench_spec.COLUMNS.items():
        if framework in ("lstmrt", "torch"):
            assert results[key]["status"] == "ok" and len(results[key]["rounds_us"]) == 2, key
            assert results[key]["median_us"] > 0, key
    assert "worker process of its own" in bench_report.format_report(report)
    assert not multiprocessing.active_children()  # the workers are stopped


def test_one_thread_stays_in_one_process(monkeypatch):
    monkeypatch.setattr(bench_workers, "Workers", None)  # would fail if used
    report = bench_compare.run_comparison([(2, 4)], quick=True, frameworks=(), rounds=1, min_time=1e-4)
    assert report["meta"]["isolation"] == "one process" and report["meta"]["settle_ms"] is None
    assert "worker process" not in bench_report.format_report(report)


def test_a_framework_missing_in_its_worker_is_na(tmp_path, monkeypatch):
    """An onnxruntime that fails to import (a stub first on sys.path, which spawned workers inherit): n/a."""
    (tmp_path / "onnxruntime.py").write_text("raise ImportError('blocked by the test')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    report = bench_compare.run_comparison(
        [(2, 4)], quick=True, frameworks=("onnxruntime",), rounds=1, min_time=1e-4, threads=2
    )
    results = report["sizes"][0]["results"]
    for key in ("onnxruntime.step", "onnxruntime.sequence"):
        assert results[key]["status"] == "n/a" and "blocked by the test" in results[key]["reason"], key
    assert results["lstmrt.step"]["status"] == "ok"
    assert set(report["meta"]["settle_ms"] or {}) <= {"lstmrt"}


def _expected(input_size, hidden_size, wrong=False):
    w, d = bench_spec.make_weights(input_size, hidden_size), bench_spec.make_data(input_size, 0, bench_spec.SEQ_LEN)
    model = bench_peers.lstmrt_model(w)
    return {
        what: model.predict(X) * (0 if wrong else 1)
        for what, X in (("step", d.x_check), ("seq", d.x_seq), ("batch", d.x_batch), ("stream_batch", d.x_stream_batch))
    }


def test_a_check_failing_in_a_worker_raises_check_error_in_the_parent():
    with bench_workers.Workers(("lstmrt",), threads=2) as workers:
        with pytest.raises(bench_spec.CheckError, match="lstmrt.step vs lstmrt"):
            workers.measure_size(
                2, 4, seed=0, seq_len=bench_spec.SEQ_LEN, expected=_expected(2, 4, wrong=True), rounds=1, min_time=1e-4
            )
    assert not multiprocessing.active_children()


def test_a_worker_that_dies_raises_worker_error_not_a_hang():
    with bench_workers.Workers(("lstmrt",), threads=2) as workers:
        (worker,) = workers._workers
        os.kill(worker.process.pid, signal.SIGKILL)
        with pytest.raises(bench_workers.WorkerError, match="lstmrt worker exited"):
            workers.measure_size(
                2, 4, seed=0, seq_len=bench_spec.SEQ_LEN, expected=_expected(2, 4), rounds=1, min_time=1e-4
            )
    assert not multiprocessing.active_children()


def test_cli_bench_rejects_bad_sizes():
    out = subprocess.run(
        [sys.executable, "-m", "lstmrt", "bench", "--sizes", "8by32"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "error" in out.stderr


def test_cli_quick_run_writes_json_table_plot_and_marks_missing_frameworks(tmp_path, monkeypatch, capsys):
    """lstmrt + torch; onnxruntime and tensorflow blocked (an import of them raises): their columns are n/a."""
    pytest.importorskip("torch")
    from lstmrt import cli

    for name in ("onnxruntime", "onnx", "tensorflow", "ai_edge_litert"):
        monkeypatch.setitem(sys.modules, name, None)
    rc = cli.main(
        [
            "bench",
            "--quick",
            "--sizes",
            "4x8",
            "--rounds",
            "1",
            "--frameworks",
            "torch,ort,tflite",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| 4, 8 |" in printed and "n/a" in printed and "targets met" in printed

    report = json.loads((tmp_path / "bench.json").read_text())
    assert set(report["meta"]) >= {
        "lstmrt",
        "kernel_tier",
        "cpu_features",
        "frameworks",
        "rounds",
        "quick",
        "loadavg_before",
        "floor_model",
    }
    (entry,) = report["sizes"]
    assert entry["floor_us"] > 0 and entry["cache"] == "L1"
    results = entry["results"]
    assert set(results) == set(bench_spec.COLUMNS)
    for key, result in results.items():
        framework = bench_spec.COLUMNS[key][0]
        if framework in ("lstmrt", "torch"):
            assert result["status"] == "ok", key
            assert result["median_us"] > 0 and len(result["rounds_us"]) == 1
        else:
            assert result["status"] == "n/a" and "not" in result["reason"], key
    assert set(entry["ratios"]) == {"step", "predict", "batched", "stream_batch", "floor"}
    for ratio in entry["ratios"].values():
        assert set(ratio) >= {"name", "vs", "value", "target", "pass"}
    # this machine's floor: measured probes, the step against floor + call
    machine = report["meta"]["machine_floor"]
    assert machine["peak_flops"] > 1e8 and 0 < machine["call_us"] < 1e3
    assert set(machine["bandwidth"]) == {str(4 * 4 * 8 * (4 + 8))} and machine["bandwidth"][str(4 * 4 * 8 * 12)] > 1e8
    assert 0 < entry["floor_here_us"] < entry["floor_here_plus_call_us"]
    floor = entry["ratios"]["floor"]
    assert floor["at_most"] and floor["target"] == 1.2 and floor["pass"] == (floor["value"] <= 1.2)
    assert floor["value"] == pytest.approx(results["lstmrt.step"]["median_us"] / entry["floor_here_plus_call_us"])
    assert "within 1.2x:" in printed and "(<=1.2x)" in printed
    assert entry["ratios"]["step"]["target"] == 5.0 and entry["ratios"]["step"]["vs"].startswith("torch.")
    assert (tmp_path / "bench.md").read_text().startswith("lstmrt ")
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "bench.png").stat().st_size > 0


@pytest.mark.parametrize("text, words", [("8by32", "INPUTxHIDDEN"), ("8x0", "positive"), ("", "bad size")])
def test_parse_sizes_rejects(text, words):
    with pytest.raises(ValueError, match=words):
        bench_spec.parse_sizes(text)


def test_unknown_framework_is_refused():
    with pytest.raises(ValueError, match="unknown framework.*mxnet"):
        bench_compare.run_comparison([(2, 4)], frameworks=("mxnet",))


def test_an_implementation_disagreeing_with_lstmrt_stops_the_run(monkeypatch):
    """A fast wrong answer must not be timed: the check raises CheckError naming the column."""
    import numpy as np

    def wrong(w, d, threads=1):
        return [
            bench_spec.Case(
                "torch.lstmcell", lambda n: None, lambda: np.zeros((bench_spec.CHECK_STEPS, w.hidden_size)), "step"
            )
        ]

    monkeypatch.setitem(bench_peers.BUILDERS, "torch", wrong)
    monkeypatch.setattr(bench_peers, "set_torch_threads", lambda n: None)
    with pytest.raises(bench_spec.CheckError, match="torch.lstmcell vs lstmrt"):
        bench_compare.run_comparison([(2, 4)], quick=True, frameworks=("torch",), rounds=1, min_time=1e-4)


@pytest.mark.parametrize(
    "value, target, passed, words",
    [
        (1.995, 2.0, False, "1.995x (>=2x) MISS (on the line)"),  # rounds onto its target: three decimals
        (2.03, 2.0, True, "2.03x (>=2x) PASS (on the line)"),
        (1.5, 2.0, False, "1.50x (>=2x) MISS"),
        (2.5, 2.0, True, "2.50x (>=2x) PASS"),
    ],
)
def test_ratio_verdicts_flag_results_within_the_run_to_run_spread(value, target, passed, words):
    text = bench_report._fmt_ratio({"value": value, "target": target, "pass": passed})
    assert text == words
