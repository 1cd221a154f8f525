"""Model files from C without Python: a file Python saved, streamed by native/examples/stream_file.c, and the bytes
of `lstmrt export --c-array` compiled into a program, each against the Python stream of the same model."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmrt

NATIVE = Path(__file__).resolve().parent.parent / "native"
pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler"
)

# Streams float32 rows from stdin through a model compiled into the program (the --c-array source).
EMBEDDED_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "lstmrt.h"
extern const unsigned char model[];
extern const size_t model_size;
int main(void)
{
    lstmrt_model_t *m;
    lstmrt_stream_t *s;
    if (lstmrt_model_load(model, model_size, &m) != LSTMRT_STATUS_OK || lstmrt_stream_create(m, 1, &s)) {
        fprintf(stderr, "%s\n", lstmrt_last_error());
        return 1;
    }
    float *x = malloc(sizeof(float) * lstmrt_model_input_size(m));
    float *y = malloc(sizeof(float) * lstmrt_model_output_size(m));
    while (fread(x, sizeof(float), lstmrt_model_input_size(m), stdin) == (size_t)lstmrt_model_input_size(m)) {
        lstmrt_stream_step(s, x, NULL, y);
        fwrite(y, sizeof(float), lstmrt_model_output_size(m), stdout);
    }
    free(x);
    free(y);
    lstmrt_stream_free(s);
    lstmrt_model_free(m);
    return 0;
}
"""


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The library and the example programs, built once for this module."""
    build = tmp_path_factory.mktemp("native") / "build"
    result = subprocess.run(
        ["make", "-C", str(NATIVE), f"BUILD={build}", "examples"], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return build


def _model(seed: int) -> lstmrt.Model:
    """A streamable stack with most layer kinds: LSTM with projection, GRU, LayerNorm, Dense, a skip from the input."""
    rng = np.random.default_rng(seed)
    w = lambda *shape: rng.uniform(-0.5, 0.5, shape)  # noqa: E731
    return lstmrt.Model(
        [
            lstmrt.LSTM(w(32, 3), w(32, 5), w(32), w(32), weight_hr=w(5, 8)),
            lstmrt.GRU(w(18, 5), w(18, 6), w(18), w(18)),
            lstmrt.LayerNorm(6, scale=w(6), shift=w(6)),
            lstmrt.Dense(w(2, 6), w(2), activation="tanh"),
            lstmrt.Add(2, "input", 1),
        ]
    )


def _python_stream(model: lstmrt.Model, X: np.ndarray) -> np.ndarray:
    s = model.stream()
    return np.stack([s.step(x) for x in X])


def _run(program, X: np.ndarray, model: lstmrt.Model, *args) -> np.ndarray:
    result = subprocess.run([str(program), *args], input=X.tobytes(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return np.frombuffer(result.stdout, np.float32).reshape(len(X), model.output_size)


def test_a_saved_file_streams_from_c_as_in_python(build, tmp_path):
    model = _model(0)
    model.save(tmp_path / "model.lstmrt")
    X = np.random.default_rng(1).standard_normal((200, 3)).astype(np.float32)
    Y = _run(build / "stream_file", X, model, str(tmp_path / "model.lstmrt"))
    assert np.array_equal(Y, _python_stream(model, X))  # the same C kernels: bit-identical


def test_the_example_refuses_a_damaged_file_with_the_reason(build, tmp_path):
    data = bytearray(_saved(_model(0)))
    data[-1] ^= 0xFF
    (tmp_path / "damaged.lstmrt").write_bytes(bytes(data))
    result = subprocess.run([str(build / "stream_file"), str(tmp_path / "damaged.lstmrt")], capture_output=True)
    assert result.returncode != 0
    assert b"checksum" in result.stderr


def test_an_exported_c_array_compiles_into_a_program(build, tmp_path):
    model = _model(2)
    model.save(tmp_path / "model.lstmrt")
    subprocess.run(
        [sys.executable, "-m", "lstmrt", "export", str(tmp_path / "model.lstmrt"), "-o", str(tmp_path / "model.c")]
        + ["--c-array", "model"],
        check=True,
        capture_output=True,
    )
    (tmp_path / "main.c").write_text(EMBEDDED_MAIN)
    program = tmp_path / "embedded"
    subprocess.run(
        ["cc", "-std=c99", "-Wall", "-Werror", f"-I{NATIVE / 'include'}", str(tmp_path / "main.c")]
        + [str(tmp_path / "model.c"), str(build / "liblstmrt.a"), "-lm", "-pthread", "-o", str(program)],
        check=True,
        capture_output=True,
    )
    X = np.random.default_rng(3).standard_normal((100, 3)).astype(np.float32)
    assert np.array_equal(_run(program, X, model), _python_stream(model, X))


def _saved(model: lstmrt.Model) -> bytes:
    from lstmrt.model_file import to_bytes

    return to_bytes(model)
