"""`lstmrt inspect` and `lstmrt run` on real torch files."""

import re

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn

import lstmrt
from lstmrt.cli import main


@pytest.fixture
def causal(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
    rnn = nn.GRU(3, 5, num_layers=2, batch_first=True)
    torch.save({"epoch": 2, "model_state": rnn.state_dict(), "head": module}, tmp_path / "ck.pt")
    torch.save(rnn.state_dict(), tmp_path / "gru.pt")
    return tmp_path / "gru.pt", sum(p.numel() for p in rnn.parameters())


def test_inspect_prints_format_layers_and_parameter_count(causal, tmp_path, capsys):
    path, count = causal
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: torch.save file (zip), state dict" in out
    assert f"lstmrt.Model: 3 -> 5, {count:,} parameters" in out
    assert "(0) GRU(3 -> 5)" in out and "(1) GRU(5 -> 5)" in out
    assert "no activations" in out and "streaming: yes" in out
    assert main(["inspect", str(tmp_path / "ck.pt"), "--key", "head"]) == 0
    out = capsys.readouterr().out
    assert "whole module (torch.save(model)) under key 'head'" in out and "Activation('tanh')" in out


def refused(capsys, argv) -> str:
    """stderr of a command that must fail with status 2 and a message, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lstmrt {argv[0]}: ") and "Traceback" not in err
    return err


def test_inspect_reports_load_errors_without_traceback(causal, tmp_path, capsys):
    err = refused(capsys, ["inspect", str(tmp_path / "ck.pt")])
    assert re.search(r"several state dicts or modules.*'model_state', 'head'", err)
    assert "layers: 'nope' is neither a module" in refused(capsys, ["inspect", str(causal[0]), "--layers", "nope"])


def test_run_streams_npy_and_matches_predict(causal, tmp_path, capsys, rng):
    path, _ = causal
    model = lstmrt.load(path)
    X = rng.standard_normal((50, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    assert (
        main(["run", str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"), "--chunk", "7", "--progress"])
        == 0
    )
    assert_close(np.load(tmp_path / "y.npy"), model.predict(X))
    err = capsys.readouterr().err
    assert "100% 50/50 steps" in err and err.endswith("\n")
    XB = rng.standard_normal((3, 20, 3)).astype(np.float32)
    np.save(tmp_path / "xb.npy", XB)
    assert (
        main(
            [
                "run",
                str(path),
                str(tmp_path / "xb.npy"),
                "-o",
                str(tmp_path / "yb.npy"),
                "--chunk",
                "6",
                "--no-progress",
            ]
        )
        == 0
    )
    assert_close(np.load(tmp_path / "yb.npy"), model.predict(XB))
    assert capsys.readouterr().err == ""


def test_run_csv_in_and_out(causal, tmp_path, rng):
    path, _ = causal
    X = rng.standard_normal((12, 3)).astype(np.float32)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", header="a,b,c", comments="", fmt="%.9g")
    assert main(["run", str(path), str(tmp_path / "x.csv"), "-o", str(tmp_path / "y.csv")]) == 0
    assert_close(np.loadtxt(tmp_path / "y.csv", delimiter=","), lstmrt.load(path).predict(X))


def test_run_bidirectional_and_tokens(tmp_path, rng):
    torch.manual_seed(1)
    bidir = nn.LSTM(3, 4, bidirectional=True, batch_first=True)
    torch.save(bidir, tmp_path / "bi.pt")
    X = rng.standard_normal((30, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    assert (
        main(["run", str(tmp_path / "bi.pt"), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"), "--chunk", "4"])
        == 0
    )
    assert_close(np.load(tmp_path / "y.npy"), lstmrt.load(tmp_path / "bi.pt").predict(X))
    tokens = nn.Sequential(nn.Embedding(9, 3), nn.Linear(3, 2))
    torch.save(tokens, tmp_path / "tok.pt")
    ids = rng.integers(0, 9, size=15)
    np.savetxt(tmp_path / "ids.csv", ids, fmt="%d")
    assert main(["run", str(tmp_path / "tok.pt"), str(tmp_path / "ids.csv"), "-o", str(tmp_path / "y.npy")]) == 0
    assert_close(np.load(tmp_path / "y.npy"), lstmrt.load(tmp_path / "tok.pt").predict(ids))


def test_run_errors(causal, tmp_path, capsys):
    path, _ = causal
    for shape in ((0, 3), (2, 0, 3)):
        np.save(tmp_path / "empty.npy", np.zeros(shape, np.float32))
        assert "empty.npy has no steps" in refused(
            capsys, ["run", str(path), str(tmp_path / "empty.npy"), "-o", str(tmp_path / "y.npy")]
        )
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 3), np.float32))
    err = refused(capsys, ["run", str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.txt")])
    assert re.search(r"output must be a .npy or .csv file, got '.*y.txt'", err)
    err = refused(capsys, ["run", str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.csv")])
    assert "a batch of sequences (2, 3, 5) does not fit a .csv" in err


def test_export_writes_a_model_file_that_loads_back(causal, tmp_path, capsys, rng):
    path, _ = causal
    assert main(["export", str(path), "-o", str(tmp_path / "gru.lstmrt")]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'gru.lstmrt'}: lstmrt model file, " in out and "(1) GRU(5 -> 5)" in out
    X = rng.standard_normal((2, 9, 3)).astype(np.float32)
    assert np.array_equal(lstmrt.load(tmp_path / "gru.lstmrt").predict(X), lstmrt.load(path).predict(X))
    assert main(["inspect", str(tmp_path / "gru.lstmrt")]) == 0
    assert "lstmrt model file, lstmrt model" in capsys.readouterr().out


def test_export_c_array_and_its_errors(causal, tmp_path, capsys):
    path, _ = causal
    assert main(["export", str(path), "-o", str(tmp_path / "m.c"), "--c-array", "gru_model"]) == 0
    text = (tmp_path / "m.c").read_text()
    size = len(lstmrt.model_file.to_bytes(lstmrt.load(path)))
    assert f"const unsigned char gru_model[{size}] = {{" in text and f"const size_t gru_model_size = {size};" in text
    assert "__attribute__((aligned(64)))" in text and "(0) GRU(3 -> 5)" in text
    assert "not a C identifier" in refused(
        capsys, ["export", str(path), "-o", str(tmp_path / "x.c"), "--c-array", "9a"]
    )
    for name in ("int", "bool", "_Model", "__m"):  # identifiers a compiler refuses or reserves (found by a probe)
        assert "is a C keyword or a name reserved to the compiler" in refused(
            capsys, ["export", str(path), "-o", str(tmp_path / "x.c"), "--c-array", name]
        )
    missing = str(tmp_path / "no" / "such" / "dir" / "m.lstmrt")
    assert "No such file or directory" in refused(capsys, ["export", str(path), "-o", missing])
