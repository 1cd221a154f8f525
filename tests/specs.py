"""Random lstmrt layer specs for the tests: weights drawn like torch's default init, U(-1/sqrt(H), 1/sqrt(H)),
so gate pre-activations are O(1) and every nonlinearity is exercised away from its linear region."""

import numpy as np

import lstmrt


def _u(rng, k, *shape):
    return rng.uniform(-k, k, shape).astype(np.float32)


def lstm(rng, input_size, hidden_size, *, proj_size=0, peephole=False, bias=True, **options):
    k = 1.0 / np.sqrt(hidden_size)
    hr = proj_size or hidden_size
    return lstmrt.LSTM(
        _u(rng, k, 4 * hidden_size, input_size),
        _u(rng, k, 4 * hidden_size, hr),
        _u(rng, k, 4 * hidden_size) if bias else None,
        _u(rng, k, 4 * hidden_size) if bias else None,
        weight_hr=_u(rng, k, proj_size, hidden_size) if proj_size else None,
        peephole=_u(rng, 1.0, 3, hidden_size) if peephole else None,
        **options,
    )


def gru(rng, input_size, hidden_size, *, bias=True, **options):
    k = 1.0 / np.sqrt(hidden_size)
    return lstmrt.GRU(
        _u(rng, k, 3 * hidden_size, input_size),
        _u(rng, k, 3 * hidden_size, hidden_size),
        _u(rng, k, 3 * hidden_size) if bias else None,
        _u(rng, k, 3 * hidden_size) if bias else None,
        **options,
    )


def rnn(rng, input_size, hidden_size, *, bias=True, **options):
    k = 1.0 / np.sqrt(hidden_size)
    return lstmrt.SimpleRNN(
        _u(rng, k, hidden_size, input_size),
        _u(rng, k, hidden_size, hidden_size),
        _u(rng, k, hidden_size) if bias else None,
        _u(rng, k, hidden_size) if bias else None,
        **options,
    )


RECURRENT = {"lstm": lstm, "gru": gru, "rnn": rnn}


def recurrent(kind, rng, input_size, hidden_size, **options):
    return RECURRENT[kind](rng, input_size, hidden_size, **options)


def bidirectional(kind, rng, input_size, hidden_size, merge_mode="concat", **options):
    fw = recurrent(kind, rng, input_size, hidden_size, **options)
    bw = recurrent(kind, rng, input_size, hidden_size, **options)
    return lstmrt.Bidirectional(fw, bw, merge_mode)


def dense(rng, input_size, output_size, activation="linear"):
    k = 1.0 / np.sqrt(input_size)
    return lstmrt.Dense(_u(rng, k, output_size, input_size), _u(rng, k, output_size), activation=activation)
