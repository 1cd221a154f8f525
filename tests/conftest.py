"""Shared tolerances and helpers. Tolerances are the contract of the engine issue (fp32 vs real frameworks)."""

import tracemalloc

import numpy as np
import pytest

ATOL = 1e-5  # max abs error on outputs and h
CELL_ATOL = 1e-5  # on c: CELL_ATOL * (1 + |c|)
RTOL_LARGE = 1e-6  # relative, where values are large (unbounded activations, fp32 overflow range)


def assert_close(actual, expected, atol=ATOL, what="output"):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.abs(actual - expected)
    assert np.all(np.isfinite(err) | (np.isnan(actual) & np.isnan(expected))), f"{what}: non-finite mismatch"
    worst = float(np.nanmax(err)) if err.size else 0.0
    assert worst <= atol, f"{what}: max abs error {worst:.3g} > {atol:.1g}"


def assert_cell_close(actual, expected, what="c"):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    bound = CELL_ATOL * (1.0 + np.abs(expected))
    assert np.all(np.abs(actual - expected) <= bound), f"{what}: error above 1e-5*(1+|c|)"


# Framework warnings of saving Keras models, for the test files that do: the legacy HDF5 format, and TensorFlow
# variables under NumPy 2 when Keras 3 converts them to save
KERAS_SAVE_WARNINGS = [
    pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file:UserWarning"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]


def keras_framework(version: str):
    """The Keras module of a test's version: "keras3" (Keras 3) or "tf_keras" (Keras 2 files); skips without it."""
    if version == "keras3":
        keras = pytest.importorskip("keras")
        if int(keras.__version__.split(".")[0]) < 3:
            pytest.skip("keras is not Keras 3")
        return keras
    return pytest.importorskip("tf_keras")


def save_keras(model, fmt: str, base):
    """(source, layers=) lstmrt loads for `fmt`: the file Keras wrote (`keras`, `h5`), a weights-only file and the
    architecture (`weights_v3`: `.weights.h5`; `weights_h5`: the legacy save_weights HDF5), or the live model."""
    if fmt == "live":
        return model, None
    if fmt in ("keras", "h5"):
        model.save(f"{base}.{fmt}")
        return f"{base}.{fmt}", None
    path = f"{base}.weights.h5" if fmt == "weights_v3" else f"{base}_weights.h5"
    model.save_weights(path)
    return path, model.to_json()


@pytest.fixture
def rng(request):
    """A generator seeded from the test id, so every parametrized case has its own fixed seed."""
    seed = _stable_seed(request.node.nodeid)
    return np.random.default_rng(seed)


def _stable_seed(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def _peak_bytes(call, x, out, repeat):
    for _ in range(10):
        call(x, out)
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(repeat):
            call(x, out)
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def _nothing(x, out):
    return out


def bytes_allocated_beyond_a_no_op(call, x, out, repeat=200):
    """Peak traced bytes of `repeat` calls of call(x, out) (NumPy traces its array data) beyond those of the same
    loop calling a function that does nothing: > 0 when a call allocates."""
    _peak_bytes(_nothing, x, out, 1)  # tracemalloc's first start traces its own setup
    return _peak_bytes(call, x, out, repeat) - _peak_bytes(_nothing, x, out, repeat)
