"""Bounded fuzzing of the loaders and of native model creation (engine: tests/fuzzing.py), each in a worker process
so that a crash or a hang is reported with the input that caused it instead of killing pytest.

    LSTMRT_FUZZ_SECONDS=600 pytest tests/test_fuzz.py -s     # a longer run (default: 20 s + 8 s)
    LSTMRT_FUZZ_SEED=7 ...                                   # another mutation sequence (default 0)

A finding prints the input's label; `python tests/fuzzing.py loaders --seed S --only N --artifacts DIR --out
x.json` replays mutation N of seed S (truncations and the seed files always run first)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "fuzz_corpus"
LOADER_SECONDS = float(os.environ.get("LSTMRT_FUZZ_SECONDS", "20"))
NATIVE_SECONDS = max(2.0, LOADER_SECONDS * 0.4)
SEED = int(os.environ.get("LSTMRT_FUZZ_SEED", "0"))
CORPUS_LIMIT = 1 << 20  # the committed corpus stays under 1 MB


def run_worker(target: str, seconds: float, tmp_path: Path) -> dict:
    artifacts, out = tmp_path / target, tmp_path / f"{target}.json"
    cmd = [
        sys.executable,
        str(HERE / "fuzzing.py"),
        target,
        "--seconds",
        str(seconds),
        "--seed",
        str(SEED),
        "--artifacts",
        str(artifacts),
        "--out",
        str(out),
    ]
    # The timeout is a guard against a stuck worker (each input has its own hang guard inside), not a measure.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 20 + 600)
    if proc.returncode != 0 or not out.exists():
        current = artifacts / "current.json"
        where = current.read_text() if current.exists() else "(before the first input)"
        pytest.fail(
            f"the {target} fuzz worker died (exit status {proc.returncode}) on input {where}; the input is "
            f"{artifacts / 'current.bin'}\n{proc.stderr[-4000:]}"
        )
    summary = json.loads(out.read_text())
    print(f"\n{target}: {summary['iterations']:,} inputs in {summary['seconds']} s (seed {SEED})")
    for key, outcomes in sorted(summary["counts"].items()):
        print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    findings = "\n\n".join(f"{f['input']}: {f['what']}\n{f['traceback']}" for f in summary["findings"])
    assert not summary["findings"], f"{len(summary['findings'])} finding(s):\n{findings}"
    return summary


def test_corpus_is_small_and_complete():
    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    formats = {entry["format"] for entry in manifest["files"]}
    assert formats == {"torch-zip", "torch-legacy", "torchscript", "safetensors", "keras", "lstmrt", "onnx"}
    assert all((CORPUS / entry["file"]).exists() for entry in manifest["files"])
    assert sum(p.stat().st_size for p in CORPUS.iterdir()) < CORPUS_LIMIT


@pytest.mark.parametrize("seed", [SEED], ids=lambda s: f"seed{s}")
def test_fuzz_loaders(seed, tmp_path):
    summary = run_worker("loaders", LOADER_SECONDS, tmp_path)
    originals = {k: v for k, v in summary["counts"].items() if k.endswith(" original")}
    assert len(originals) == summary["files"] and all(v == {"loaded": 1} for v in originals.values())
    assert summary["truncations"] > 0 and summary["bitflips"] > 0


@pytest.mark.parametrize("seed", [SEED], ids=lambda s: f"seed{s}")
def test_fuzz_native_model_creation(seed, tmp_path):
    summary = run_worker("native", NATIVE_SECONDS, tmp_path)
    assert summary["iterations"] > 0


# -- what the native fuzzing relies on: the binding checks each weight array against the desc --------------------
def _lstm_desc(input_size=3, hidden_size=2):
    import numpy as np

    import lstmrt

    rng = np.random.default_rng(0)
    spec = lstmrt.LSTM(
        rng.standard_normal((4 * hidden_size, input_size)), rng.standard_normal((4 * hidden_size, hidden_size))
    )
    return spec._desc(input_size)


@pytest.mark.parametrize(
    "change, exc, words",
    [
        (
            lambda d: d["weights"][0].update(weight_ih=d["weights"][0]["weight_ih"][:3]),
            ValueError,
            r"layer 0: weight_ih has 9 elements but .* needs 24",
        ),
        (lambda d: d.update(input_size=1000), ValueError, r"weight_ih has 24 elements but .* needs 8000"),
        (lambda d: d.update(hidden_size=2**24), ValueError, r"weight_ih has 24 elements"),
        (lambda d: d["weights"][0].update(bias_hh=[0.5] * 7), ValueError, r"bias_hh has 7 elements but .* needs 8"),
        (lambda d: d["weights"][0].update(weight_hh={}), TypeError, r"weight_hh must be a float32 array"),
        (lambda d: d["weights"][0].update(weight_hh="weights"), TypeError, r"weight_hh must be a float32 array"),
        (lambda d: d.update(kind=2**70), TypeError, r"field 'kind' has the wrong type"),
        (lambda d: d.update(weights=5), TypeError, r"field 'weights' has the wrong type"),
        (lambda d: d.update(weights=["x"]), TypeError, r"weights must be a list of dicts"),
        (lambda d: d.pop("hidden_size"), KeyError, "hidden_size"),
        (lambda d: d.update(cell_clip=1e-39), ValueError, r"layer 0: cell_clip is below FLT_MIN"),
    ],
    ids=[
        "short_weight",
        "input_size_lies",
        "hidden_size_lies",
        "short_bias_list",
        "dict_array",
        "string_array",
        "huge_int",
        "int_weights",
        "string_direction",
        "missing_field",
        "subnormal_cell_clip",
    ],
)
def test_binding_checks_every_array_against_the_desc(change, exc, words):
    from lstmrt import _native

    desc = _lstm_desc()
    desc["weights"] = [dict(desc["weights"][0])]
    change(desc)
    with pytest.raises(exc, match=words):
        _native.Model([desc])
