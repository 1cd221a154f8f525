"""GlobalPooling (docs/math.md section 6) against the float64 reference (tests/reference.py): predict with lengths and
masks, streams that return the pool of the sequence so far, the state a stream keeps and what it refuses. The
frameworks' own layers are checked in test_load_keras.py (Keras) and test_torch_pooling.py (torch)."""

import numpy as np
import pytest
import specs
from conftest import assert_close
from test_against_reference import (
    check,
    check_pooled_streams,
    check_reset_rows,
    check_state_refused,
    check_state_resumes,
    inputs,
    random_mask,
)

import lstmrt


def pooled_model_layers(rng, mode):
    return [specs.lstm(rng, 3, 17), lstmrt.GlobalPooling(17, mode), specs.dense(rng, 17, 4, "softmax")]


@pytest.mark.parametrize("mode", ["average", "max"])
def test_predict_matches_the_reference(rng, mode):
    layers = pooled_model_layers(rng, mode)
    X = inputs(rng, 4, 23, 3)
    every_step, _ = check(layers, X)
    last, _ = check(layers, X, return_sequences=False)
    assert np.array_equal(last, every_step[:, -1])
    check(layers, X, lengths=np.array([23, 9, 1, 0]), return_sequences=False)
    check(layers, X, mask=random_mask(rng, 4, 23), return_sequences=False)
    check(layers, X, mask=random_mask(rng, 4, 23), lengths=np.array([20, 23, 5, 2]))


def test_average_skips_masked_steps_and_max_takes_them(rng):
    """Keras's GlobalAveragePooling1D averages the unmasked steps; its GlobalMaxPooling1D ignores the mask."""
    lstm = specs.lstm(rng, 3, 5)
    X = inputs(rng, 1, 8, 3)
    mask = np.array([[True, True, False, True, False, False, True, True]])
    hidden = lstmrt.Model([lstm]).predict(X, mask=mask)[0]
    average = lstmrt.Model([lstm, lstmrt.GlobalPooling(5)], return_sequences=False).predict(X, mask=mask)
    assert_close(average[0], hidden[mask[0]].mean(0), atol=1e-6)
    largest = lstmrt.Model([lstm, lstmrt.GlobalPooling(5, "max")], return_sequences=False).predict(X, mask=mask)
    assert_close(largest[0], hidden.max(0), atol=0)  # the masked steps' zeros count too


def test_average_of_no_active_step_is_nan_as_in_keras(rng):
    layers = [specs.gru(rng, 2, 3), lstmrt.GlobalPooling(3)]
    X = inputs(rng, 2, 4, 2)
    mask = np.array([[False, False, True, True], [False] * 4])
    got = lstmrt.Model(layers).predict(X, mask=mask)
    assert np.isnan(got[0, :2]).all() and np.isfinite(got[0, 2:]).all() and np.isnan(got[1]).all()
    # a sequence of length 0 gives zeros, as every model does
    assert np.array_equal(lstmrt.Model(layers, return_sequences=False).predict(X, lengths=[4, 0])[1], np.zeros(3))


@pytest.mark.parametrize("mode", ["average", "max"])
def test_a_stream_returns_the_pool_of_its_sequence_so_far(rng, mode):
    check_pooled_streams(pooled_model_layers(rng, mode), inputs(rng, 3, 30, 3))


def test_bidirectional_then_pooling_predicts(rng):
    """The classic text classifier: Bidirectional(LSTM) -> GlobalMaxPooling1D / GlobalAveragePooling1D -> Dense."""
    layers = [
        specs.bidirectional("lstm", rng, 3, 6),
        lstmrt.GlobalPooling(12, "max"),
        lstmrt.GlobalPooling(12, "average"),
        specs.dense(rng, 12, 2),
    ]
    X = inputs(rng, 3, 15, 3)
    check(layers, X, lengths=np.array([15, 7, 2]), return_sequences=False)


@pytest.mark.parametrize("mode", ["average", "max"])
def test_state_is_the_pool_and_its_count(rng, mode):
    layers = pooled_model_layers(rng, mode)
    model = lstmrt.Model(layers, return_sequences=False)
    s = model.stream(batch=2)
    X = inputs(rng, 2, 9, 3)
    s.run(X)
    state = s.state
    pool = ((2, 17), (2, 17), (2, 1)) if mode == "average" else ((2, 17), (2, 1))
    assert [tuple(a.shape for a in e) for e in state] == [((2, 17), (2, 17)), pool]
    assert np.array_equal(state[1][-1], np.full((2, 1), 9.0))
    hidden = lstmrt.Model(layers[:1]).predict(X)
    assert_close(state[1][0], hidden.mean(1) if mode == "average" else hidden.max(1), atol=1e-6)
    # the state carries on: from a saved state, from a pickle, from the reference's equations
    more = inputs(rng, 2, 6, 3)
    _, end = check_state_resumes(s, layers, state, more)
    s.run(more)
    assert_close(s.state[1][0], end[1][0], what="pooled value")
    assert np.array_equal(s.state[1][-1], end[1][-1])


def test_reset_rows_restarts_their_pool(rng):
    check_reset_rows(lstmrt.Model(pooled_model_layers(rng, "average")), inputs(rng, 2, 12, 3))


@pytest.mark.parametrize("count", [-1.0, 0.5, np.nan, np.inf, 2.0**24 + 2])
def test_a_state_count_that_is_no_number_of_steps_is_refused(rng, count):
    s = lstmrt.Model(pooled_model_layers(rng, "average")).stream()
    s.run(inputs(rng, 1, 4, 3)[0])
    check_state_refused(s, 1, 2, count, r"state\[1\]\.count \(layer 1\) must hold whole numbers of steps")


def test_special_values(rng):
    """NaN reaches every later step of its sequence; an infinity makes the mean infinite and the max too."""
    layers = [lstmrt.GlobalPooling(3, "average")]
    X = np.array([[[1.0, 2.0, 3.0], [np.inf, -np.inf, np.nan], [1.0, 1.0, 1.0], [-np.inf, 5.0, 0.0]]], np.float32)
    got = lstmrt.Model(layers).predict(X)[0]
    assert np.array_equal(got[1:], np.array([[np.inf, -np.inf, np.nan], [np.inf, -np.inf, np.nan],
                                             [np.nan, -np.inf, np.nan]]), equal_nan=True)  # fmt: skip
    largest = lstmrt.Model([lstmrt.GlobalPooling(3, "max")]).predict(X)[0]
    assert np.array_equal(largest[-1], np.array([np.inf, 5.0, np.nan]), equal_nan=True)


@pytest.mark.parametrize("mode", ["average", "max"])
def test_the_first_step_pooled_ignores_what_a_state_left_there(rng, mode):
    """A count of 0 means nothing was pooled: a value set with it (inf, NaN, 1e30) does not leak into the pool."""
    s = lstmrt.Model([lstmrt.GlobalPooling(3, mode)]).stream()
    junk = np.array([np.inf, np.nan, 1e30], np.float32)
    s.state = [(junk,) + tuple(np.full_like(a, 1e30) for a in s.state[0][1:-1]) + (np.zeros(1, np.float32),)]
    x = np.array([1.0, -2.0, 0.5], np.float32)
    assert np.array_equal(s.step(x), x)
    assert np.array_equal(s.step(x), x)


def test_a_long_stream_keeps_an_accurate_mean(rng):
    """200,000 steps of values around 1e3 with a spread of 1: late steps move the mean by less than half a float32 ulp,
    which the mean's low part keeps (one float alone drifts by ~1e-2 here). Within the final rounding of 1e3."""
    s = lstmrt.Model([lstmrt.GlobalPooling(2)]).stream()
    X = (1e3 + rng.standard_normal((200_000, 2))).astype(np.float32)
    got = s.run(X)
    assert_close(got[-1], X.astype(np.float64).mean(0), atol=2**-14)
    assert_close(got[999], X[:1000].astype(np.float64).mean(0), atol=2**-14)


def test_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match=r"unknown mode 'min'; supported: average, max"):
        lstmrt.GlobalPooling(3, "min")
    for features in (0, 2**31):
        with pytest.raises(ValueError, match=r"features must be an int in \[1, 16777216\]"):
            lstmrt.GlobalPooling(features)
    last = specs.lstm(np.random.default_rng(0), 2, 5, return_sequences=False)
    with pytest.raises(ValueError, match=r"layer 1 \(GlobalPooling\) pools the steps of layer 0, which has return_seq"):
        lstmrt.Model([last, lstmrt.GlobalPooling(5)])
    with pytest.raises(ValueError, match=r"expects 3 input features but layer 0 \(LSTM\) outputs 5"):
        lstmrt.Model([specs.lstm(np.random.default_rng(0), 2, 5), lstmrt.GlobalPooling(3)])
    assert "GlobalPooling(4 features, mode='max')" in repr(lstmrt.Model([lstmrt.GlobalPooling(4, "max")]))
