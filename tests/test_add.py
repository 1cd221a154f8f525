"""Add (residual / skip connections, docs/math.md section 6c) against the float64 reference (tests/reference.py):
predict with lengths and masks, streams, final outputs, and what a Model refuses. The frameworks' own forms are
checked in test_torch_add.py (torch) and test_load_keras.py (Keras)."""

import pickle

import numpy as np
import pytest
import reference as ref
import specs
from conftest import assert_close
from test_against_reference import check, inputs, random_mask

import lstmrt


def audio_skip_layers(rng, input_size=3, start=0):
    """The guitar-amp model: y = lin(lstm(x)) + x[..., start], one sample out per sample in."""
    return [specs.lstm(rng, input_size, 20), specs.dense(rng, 20, 1), lstmrt.Add(1, "input", start)]


def residual_stack_layers(rng):
    """Residual LSTM blocks: out = lstm_k(out) + out, then a head whose output adds a slice of the first block's."""
    return [
        specs.lstm(rng, 4, 6),
        specs.lstm(rng, 6, 6),
        lstmrt.Add(6, 0),
        specs.gru(rng, 6, 6),
        lstmrt.Add(6, 2),
        specs.dense(rng, 6, 3),
        lstmrt.Add(3, 0, 2),
        lstmrt.Add(3, "input", 1),
    ]


@pytest.mark.parametrize("start", [0, 2])
def test_input_skip_matches_the_reference(rng, start):
    layers = audio_skip_layers(rng, start=start)
    X = inputs(rng, 4, 19, 3)
    got, _ = check(layers, X)
    # the skip is the input itself: the model minus the add gives the rest
    assert_close(got - X[..., start : start + 1], lstmrt.Model(layers[:2]).predict(X))
    check(layers, X, lengths=np.array([19, 7, 1, 0]))
    check(layers, X, mask=random_mask(rng, 4, 19), lengths=np.array([3, 19, 12, 19]))


def test_residual_stack_matches_the_reference(rng):
    layers = residual_stack_layers(rng)
    X = inputs(rng, 3, 23, 4)
    check(layers, X)
    check(layers, X, lengths=np.array([23, 9, 0]), mask=random_mask(rng, 3, 23))
    check(layers, X, return_sequences=False, lengths=np.array([5, 23, 1]))


def test_an_add_of_its_own_input_doubles_it(rng):
    lstm = specs.lstm(rng, 2, 5)
    X = inputs(rng, 2, 6, 2)
    got = lstmrt.Model([lstm, lstmrt.Add(5, 0)]).predict(X)
    assert np.array_equal(got, 2 * lstmrt.Model([lstm]).predict(X))


@pytest.mark.parametrize("B", [1, 300])  # 300 rows: several blocks of steps and the wide-batch kernels
def test_streams_equal_predict(rng, B):
    layers = residual_stack_layers(rng)
    model = lstmrt.Model(layers)
    X = inputs(rng, B, 40, 4)
    want = model.predict(X)
    s = model.stream(batch=B)
    got = np.concatenate([s.run(X[:, :13]), s.step(X[:, 13])[:, None], s.run(X[:, 14:])], axis=1)
    assert_close(got, want)
    one = model.stream()
    assert_close(np.stack([one.step(x) for x in X[0]]), want[0])
    few = X[:2]
    assert_close(model.stream(batch=len(few)).run(few), ref.run(layers, few)[0])


def test_threads_give_the_one_thread_result(rng):
    layers = [specs.lstm(rng, 8, 64), lstmrt.Add(8, "input"), specs.lstm(rng, 8, 64), lstmrt.Add(64, 0)]
    model = lstmrt.Model([layers[0], specs.dense(rng, 64, 8), layers[1], specs.lstm(rng, 8, 64), layers[3]])
    X = inputs(rng, 40, 70, 8)
    assert_close(model.predict(X, threads=2), model.predict(X), atol=1e-6)
    one = X[:1]
    assert np.array_equal(model.predict(one, threads=2), model.predict(one))  # one sequence: bit-identical
    s, t = model.stream(), model.stream(threads=2)
    assert np.array_equal(np.stack([t.step(x) for x in one[0]]), np.stack([s.step(x) for x in one[0]]))


def test_final_output_plus_the_last_input(rng):
    """torch forecasters predict a change: fc(out[:, -1]) + x[:, -1, :1]. With return_sequences=False, each
    sequence's last output adds its last step's input."""
    layers = [specs.lstm(rng, 3, 8, return_sequences=False), specs.dense(rng, 8, 1), lstmrt.Add(1, "input")]
    X = inputs(rng, 3, 11, 3)
    lengths = np.array([11, 4, 1])
    got, _ = check(layers, X, lengths=lengths, return_sequences=False)
    head = lstmrt.Model(layers[:2], return_sequences=False).predict(X, lengths=lengths)
    assert_close(got, head + X[np.arange(3), lengths - 1, :1])
    model = lstmrt.Model(layers, return_sequences=False)
    assert_close(model.stream(batch=3).run(X)[:, -1], model.predict(X))  # a stream's step: the sequence so far


def test_bidirectional_source(rng):
    layers = [specs.bidirectional("gru", rng, 3, 4), specs.dense(rng, 8, 8, "tanh"), lstmrt.Add(8, 0)]
    X = inputs(rng, 2, 9, 3)
    check(layers, X, lengths=np.array([9, 3]))


def test_token_model_adds_the_ids(rng):
    """The model input of a token model is its ids (as float), as the frameworks would add them."""
    layers = [lstmrt.Embedding(rng.standard_normal((5, 3))), specs.gru(rng, 3, 1), lstmrt.Add(1, "input")]
    ids = np.array([[0, 4, 2, 3]])
    got = lstmrt.Model(layers).predict(ids)
    assert_close(got, lstmrt.Model(layers[:2]).predict(ids) + ids[..., None])


def test_special_values_propagate(rng):
    layers = audio_skip_layers(rng)
    X = inputs(rng, 1, 4, 3)
    X[0, 1, 0], X[0, 2, 0] = np.inf, np.nan
    got = lstmrt.Model(layers).predict(X)
    np.testing.assert_array_equal(got, lstmrt.Model(layers[:2]).predict(X) + X[..., :1])  # NaN where NaN, inf + inf
    assert np.isnan(got[0, 2:]).all() and np.isfinite(got[0, 0]).all()  # the NaN stays in the LSTM's state


def test_pickle_repr_and_no_state(rng):
    model = lstmrt.Model(residual_stack_layers(rng))
    X = inputs(rng, 2, 5, 4)
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(again.predict(X), model.predict(X))
    assert "Add(layer 0[2:5])" in repr(model) and "Add(input[1:4])" in repr(model)
    s = model.stream()
    assert len(s.state) == 3  # the recurrent layers' states only: an add keeps none


@pytest.mark.parametrize(
    "args, message",
    [
        ((0,), "features must be an int"),
        ((2.0,), "features must be an int"),
        ((1, "output"), 'source must be "input" or the index'),
        ((1, -1), 'source must be "input" or the index'),
        ((1, True), 'source must be "input" or the index'),
        ((1, "input", -1), "start must be an int"),
        ((1, "input", 1.5), "start must be an int"),
    ],
)
def test_add_refuses_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        lstmrt.Add(*args)


def test_model_refuses_what_it_cannot_compute(rng):
    lstm = specs.lstm(rng, 3, 5)
    with pytest.raises(ValueError, match=r"layer 1 \(Add\) adds the output of layer 1: it must be an earlier"):
        lstmrt.Model([lstm, lstmrt.Add(5, 1)])
    with pytest.raises(ValueError, match=r"layer 1 \(Add\) adds features \[1, 6\) but layer 0 outputs 5"):
        lstmrt.Model([lstm, lstmrt.Add(5, 0, 1)])
    with pytest.raises(ValueError, match=r"adds features \[0, 5\) but the model input has 3"):
        lstmrt.Model([lstm, lstmrt.Add(5, "input")])
    with pytest.raises(ValueError, match=r"layer 1 \(Add\) expects 4 input features but layer 0 \(LSTM\) outputs 5"):
        lstmrt.Model([lstm, lstmrt.Add(4, "input")])
