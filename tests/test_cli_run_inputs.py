"""`lstmrt run` / `inspect` / `demo` on real files: CSV headers, Keras masks, and every input or option problem
reported as `lstmrt <command>: <message>` with exit status 2, never a traceback."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn

import lstmrt
from lstmrt.cli import main

pytestmark = [
    # Keras 3 saving under NumPy 2 (framework warnings only, as in test_load_keras.py)
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]


def cli(capsys, *argv):
    """(exit status, stdout, stderr) of `lstmrt argv...` run in this process."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_refused(capsys, argv, *words):
    status, _, err = cli(capsys, *argv)
    assert status == 2, err
    assert err.startswith(f"lstmrt {argv[0]}: ") and "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.fixture
def lstm_file(tmp_path):
    """LSTM(3 -> 8) -> Linear(8 -> 2), saved whole, and its lstmrt model."""
    torch.manual_seed(0)
    path = tmp_path / "lstm.pt"
    torch.save(nn.Sequential(nn.LSTM(3, 8, batch_first=True), nn.Linear(8, 2)), path)
    return path, lstmrt.load(path)


def stream_all(model, X):
    """What a stream outputs for every row of X, the oracle for a streamed run."""
    return model.stream().run(np.asarray(X, np.float32))


def write_csv(path, first_line, X, fmt=repr):
    rows = [",".join(fmt(float(v)) for v in row) for row in np.atleast_2d(X.T).T]
    path.write_text("".join(line + "\n" for line in ([first_line] if first_line else []) + rows))


# -- CSV headers --------------------------------------------------------------------------------------------------
def test_pandas_numeric_header_is_skipped_with_a_note(lstm_file, tmp_path, capsys, rng):
    """pd.DataFrame(X).to_csv(index=False) writes `0,1,2` above the rows: a header, not step 0."""
    path, model = lstm_file
    X = rng.standard_normal((6, 3))
    write_csv(tmp_path / "x.csv", "0,1,2", X)
    status, _, err = cli(capsys, "run", path, tmp_path / "x.csv", "-o", tmp_path / "y.npy")
    assert status == 0, err
    assert_close(np.load(tmp_path / "y.npy"), model.predict(X.astype(np.float32)))
    assert "line 1 ('0,1,2') read as a header" in err and "--header no" in err


def test_header_option_overrides_the_guess(lstm_file, tmp_path, capsys, rng):
    path, model = lstm_file
    X = rng.standard_normal((5, 3))
    write_csv(tmp_path / "x.csv", "0,1,2", X)
    status, _, err = cli(capsys, "run", path, tmp_path / "x.csv", "-o", tmp_path / "y.npy", "--header", "no")
    assert status == 0 and err == ""
    assert_close(np.load(tmp_path / "y.npy"), stream_all(model, np.vstack([[0, 1, 2], X])))
    write_csv(tmp_path / "x.csv", "5,6,7", X)  # numbers, but the user says it is a header: no note
    status, _, err = cli(capsys, "run", path, tmp_path / "x.csv", "-o", tmp_path / "y.npy", "--header", "yes")
    assert status == 0 and err == ""
    assert_close(np.load(tmp_path / "y.npy"), model.predict(X.astype(np.float32)))


def test_lone_zero_is_a_header_only_above_non_integer_rows(tmp_path, capsys, rng):
    """One column: `0` is what pandas writes above an unnamed Series, but also a plausible first sample."""
    torch.manual_seed(1)
    torch.save(nn.Sequential(nn.LSTM(1, 4, batch_first=True), nn.Linear(4, 1)), tmp_path / "one.pt")
    model = lstmrt.load(tmp_path / "one.pt")
    samples = rng.standard_normal(7)
    write_csv(tmp_path / "float.csv", "0", samples)
    status, _, err = cli(capsys, "run", tmp_path / "one.pt", tmp_path / "float.csv", "-o", tmp_path / "y.npy")
    assert status == 0 and "read as a header" in err
    assert_close(np.load(tmp_path / "y.npy"), model.predict(samples[:, None].astype(np.float32)))
    counts = np.array([0, 12, 40, 7, 0, 3])  # ADC counts starting at 0: all data
    write_csv(tmp_path / "counts.csv", None, counts, fmt=lambda v: str(int(v)))
    status, _, err = cli(capsys, "run", tmp_path / "one.pt", tmp_path / "counts.csv", "-o", tmp_path / "y.npy")
    assert status == 0 and err == ""
    assert_close(np.load(tmp_path / "y.npy"), model.predict(counts[:, None].astype(np.float32)))


def test_csv_errors_name_the_line_and_field(lstm_file, tmp_path, capsys):
    path, _ = lstm_file
    cases = {
        "1,2,3\n4,x,6\n": ["line 2, field 2: 'x' is not a number"],  # was: row 1 dropped as a "header"
        "1,2,3\n4,5,6\n7,8\n": ["line 3 has 2 fields, line 1 has 3"],
        "# exported\n\na,b,c\n1,2,3\n4,,6\n": ["line 5, field 2 is empty"],
        "1,2,3,4\n5,6,7,8\n": ["4 columns; this model takes 3"],
        "a,b,c\n": ["has no steps"],
    }
    for text, words in cases.items():
        (tmp_path / "x.csv").write_text(text)
        assert_refused(capsys, ["run", path, tmp_path / "x.csv", "-o", tmp_path / "y.npy"], "x.csv", *words)


def test_csv_comments_and_blank_lines_keep_the_line_count(lstm_file, tmp_path, capsys, rng):
    path, model = lstm_file
    X = rng.standard_normal((4, 3))
    rows = [",".join(repr(float(v)) for v in row) for row in X]
    (tmp_path / "x.csv").write_text("# sensor log\n\ntime_a,b,c\n" + rows[0] + "\n\n" + "\n".join(rows[1:]) + "\n")
    status, _, err = cli(capsys, "run", path, tmp_path / "x.csv", "-o", tmp_path / "y.csv")
    assert status == 0 and "line 3 ('time_a,b,c')" in err
    assert_close(np.loadtxt(tmp_path / "y.csv", delimiter=","), model.predict(X.astype(np.float32)))


# -- Keras masks --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras3():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    if int(keras.__version__.split(".")[0]) < 3:
        pytest.skip("keras is not Keras 3")
    return keras


def randomized(model, seed):
    """Every weight random, biases included (the default zero biases would hide a mapping error)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("return_sequences", [True, False])
def test_run_applies_a_keras_masking_layer(keras3, tmp_path, capsys, rng, return_sequences):
    """Masking(0) -> LSTM -> Dense: masked steps are skipped, as Keras and lstmrt's predict do (a stream cannot
    see a mask). return_sequences=False: one row per sequence, as predict returns."""
    K, L = keras3, keras3.layers
    net = randomized(
        K.Sequential([K.Input((7, 2)), L.Masking(0.0), L.LSTM(4, return_sequences=return_sequences), L.Dense(3)]),
        seed=7,
    )
    net.save(tmp_path / "masked.keras")
    X = rng.standard_normal((3, 7, 2)).astype(np.float32)
    X[0, 3] = 0.0  # a gap
    X[1, 5:] = 0.0  # trailing padding
    X[2, :2] = 0.0  # leading padding
    np.save(tmp_path / "x.npy", X)
    status, _, err = cli(
        capsys, "run", tmp_path / "masked.keras", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "--chunk", "2"
    )
    assert status == 0, err
    Y = np.load(tmp_path / "y.npy")
    assert_close(Y, np.asarray(net(X, training=False)), what="lstmrt run vs Keras")
    assert_close(Y, lstmrt.load(tmp_path / "masked.keras").predict(X), what="lstmrt run vs lstmrt predict")


def test_run_applies_a_keras_mask_zero_embedding(keras3, tmp_path, capsys):
    """Embedding(mask_zero=True): token 0 is padding. The ids come as a one-column CSV starting with 0 (data, not
    a header)."""
    K, L = keras3, keras3.layers
    net = randomized(
        K.Sequential(
            [
                K.Input((None,), dtype="int32"),
                L.Embedding(9, 3, mask_zero=True),
                L.GRU(4, return_sequences=True),
                L.Dense(2),
            ]
        ),
        seed=8,
    )
    net.save(tmp_path / "tokens.keras")
    ids = np.array([0, 0, 4, 7, 0, 2, 8, 1])
    (tmp_path / "ids.csv").write_text("".join(f"{i}\n" for i in ids))
    status, _, err = cli(capsys, "run", tmp_path / "tokens.keras", tmp_path / "ids.csv", "-o", tmp_path / "y.csv")
    assert status == 0 and err == ""
    expected = np.asarray(net(ids[None].astype(np.int32), training=False))[0]
    assert_close(np.loadtxt(tmp_path / "y.csv", delimiter=","), expected)


def test_keras_layers_option(keras3, tmp_path, capsys):
    """--layers is a PyTorch forward order; for Keras it can only be a weights-only file's architecture."""
    K, L = keras3, keras3.layers
    net = randomized(K.Sequential([K.Input((5, 2)), L.LSTM(4, return_sequences=True), L.Dense(1)]), seed=9)
    net.save(tmp_path / "full.keras")
    net.save_weights(tmp_path / "w.weights.h5")
    (tmp_path / "arch.json").write_text(net.to_json())
    assert_refused(
        capsys,
        ["inspect", tmp_path / "full.keras", "--layers", "a,b"],
        "full.keras is a full Keras model",
        "takes no --layers",
    )
    assert_refused(capsys, ["inspect", tmp_path / "w.weights.h5"], "weights only", "--layers ARCH.json")
    assert_refused(
        capsys,
        ["inspect", tmp_path / "w.weights.h5", "--layers", "a,b"],
        "--layers a,b",
        "model.to_json()",
        "No such file",
    )
    status, out, err = cli(capsys, "inspect", tmp_path / "w.weights.h5", "--layers", tmp_path / "arch.json")
    assert status == 0, err
    assert "LSTM(2 -> 4" in out and "Dense(4 -> 1" in out


# -- input and output problems ------------------------------------------------------------------------------------
def test_integer_npy_is_converted_to_float(lstm_file, tmp_path, capsys):
    """Integer samples (ADC counts) are what a file tool should accept; the Python API keeps refusing them."""
    path, model = lstm_file
    counts = np.arange(60, dtype=np.int16).reshape(20, 3) % 7
    np.save(tmp_path / "counts.npy", counts)
    status, _, err = cli(capsys, "run", path, tmp_path / "counts.npy", "-o", tmp_path / "y.npy")
    assert status == 0, err
    assert_close(np.load(tmp_path / "y.npy"), model.predict(counts.astype(np.float32)))


def test_npy_input_errors(lstm_file, tmp_path, capsys):
    path, _ = lstm_file
    np.save(tmp_path / "wide.npy", np.zeros((50, 4), np.float32))
    np.save(tmp_path / "complex.npy", np.zeros((5, 3), np.complex64))
    (tmp_path / "text.npy").write_text("1,2,3\n")
    with open(tmp_path / "archive.npy", "wb") as f:  # np.savez(path) would append .npz
        np.savez(f, x=np.zeros((5, 3)))
    cases = {
        "wide.npy": ["shape (50, 4)", "(T, 3) or (B, T, 3)"],
        "complex.npy": ["dtype complex64", "numbers"],
        "text.npy": ["not a readable .npy array"],
        "archive.npy": ["an .npz archive"],
        "missing.npy": ["No such file or directory"],
    }
    for name, words in cases.items():
        assert_refused(capsys, ["run", path, tmp_path / name, "-o", tmp_path / "y.npy"], name, *words)


def test_token_out_of_range_names_the_input(tmp_path, capsys):
    torch.save(nn.Sequential(nn.Embedding(9, 3), nn.Linear(3, 2)), tmp_path / "tok.pt")
    np.save(tmp_path / "ids.npy", np.array([1, 2, 20]))
    assert_refused(
        capsys, ["run", tmp_path / "tok.pt", tmp_path / "ids.npy", "-o", tmp_path / "y.npy"], "ids.npy", "20"
    )


@pytest.mark.parametrize(
    "text, words",
    [
        ("1\ninf\n", "token id inf at step 1 is not an integer of int64's range"),
        ("1\n1e30\n", "token id 1e+30 at step 1 is not an integer of int64's range"),
        ("1\n2.5\n", "token id 2.5 at step 1 is not an integer"),
    ],
    ids=["inf", "1e30", "fraction"],
)
def test_csv_token_ids_that_are_not_integers_are_named(text, words, tmp_path, capsys):
    """A float that int64 cannot hold was cast before the check (a probe saw "token id -9223372036854775808")."""
    torch.save(nn.Sequential(nn.Embedding(9, 3), nn.Linear(3, 2)), tmp_path / "tok.pt")
    (tmp_path / "ids.csv").write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no NumPy cast warning on the way
        assert_refused(
            capsys, ["run", tmp_path / "tok.pt", tmp_path / "ids.csv", "-o", tmp_path / "y.npy"], "ids.csv", words
        )


def test_output_problems_are_found_before_the_run(lstm_file, tmp_path, capsys):
    path, _ = lstm_file
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))
    assert_refused(
        capsys, ["run", path, tmp_path / "x.npy", "-o", tmp_path / "no" / "y.npy"], "y.npy", "does not exist"
    )
    (tmp_path / "out.npy").mkdir()
    assert_refused(capsys, ["run", path, tmp_path / "x.npy", "-o", tmp_path / "out.npy"], "is a directory")


def test_checkpoint_errors_exit_2_without_traceback(tmp_path):
    """The whole command line, as a shell sees it: message on stderr, status 2 (as for a bad option)."""
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lstmrt",
            "run",
            str(tmp_path / "missing.pt"),
            str(tmp_path / "x.npy"),
            "-o",
            str(tmp_path / "y.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("lstmrt run: ") and "missing.pt: No such file or directory" in out.stderr


# -- demo options ---------------------------------------------------------------------------------------------
def test_demo_refuses_bad_options_before_running(tmp_path, capsys):
    assert_refused(capsys, ["demo", "--samples", "10", "--seed", "-1"], "--seed must be >= 0", "-1")
    assert_refused(capsys, ["demo", "--samples", "0"], "--samples must be >= 1")
    status, out, err = cli(capsys, "demo", "--samples", "10", "--plot", tmp_path / "no" / "x.png")
    assert status == 2 and out == ""  # nothing ran
    assert "x.png" in err and "does not exist" in err


def test_demo_refuses_an_image_format_before_running(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    status, out, err = cli(capsys, "demo", "--samples", "10", "--plot", tmp_path / "x.foo")
    assert status == 2 and out == ""
    assert "does not write .foo files" in err and "png" in err
