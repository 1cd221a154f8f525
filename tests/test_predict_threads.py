"""predict(threads=N): batch rows split over threads give the serial result (up to summation order: a slice may
block its steps differently); errors are reported as in the serial path."""

import numpy as np
import pytest

import lstmrt
from conftest import assert_close


def _model(rng, n_in=5, H=19):
    def u(*shape):
        return rng.uniform(-0.4, 0.4, shape).astype(np.float32)

    return lstmrt.Model(
        [
            lstmrt.LSTM(u(4 * H, n_in), u(4 * H, H), u(4 * H), u(4 * H)),
            lstmrt.Bidirectional(
                lstmrt.GRU(u(3 * H, H), u(3 * H, H), u(3 * H)), lstmrt.GRU(u(3 * H, H), u(3 * H, H)), "sum"
            ),
            lstmrt.Dense(u(3, H), u(3), activation="softmax"),
        ]
    )


@pytest.mark.parametrize("threads", [2, 3, 7, 64])
@pytest.mark.parametrize("batch", [1, 9, 40, 300])
def test_threads_give_serial_results(rng, threads, batch):
    model = _model(rng)
    X = rng.standard_normal((batch, 23, 5)).astype(np.float32)
    lengths = rng.integers(0, 24, batch)
    mask = rng.random((batch, 23)) > 0.2
    for kwargs in ({}, {"lengths": lengths}, {"mask": mask}, {"lengths": lengths, "mask": mask}):
        assert_close(model.predict(X, **kwargs, threads=threads), model.predict(X, **kwargs), atol=1e-6)


def test_threaded_predict_reports_bad_tokens_like_serial(rng):
    model = lstmrt.Model([lstmrt.Embedding(rng.standard_normal((10, 4))), lstmrt.Dense(np.eye(4))])
    tokens = rng.integers(0, 10, (32, 6))
    tokens[30, 5] = 10
    with pytest.raises(ValueError, match="token id 10"):
        model.predict(tokens, threads=4)
    tokens[30, 5] = 9
    assert_close(model.predict(tokens, threads=4), model.predict(tokens), atol=1e-6)


@pytest.mark.parametrize(
    "bad,error", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]
)
def test_threads_must_be_a_positive_integer(rng, bad, error):
    with pytest.raises(error, match="threads must be a positive integer"):
        _model(rng).predict(np.zeros((2, 3, 5), np.float32), threads=bad)
