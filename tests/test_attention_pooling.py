"""AttentionPooling (docs/math.md section 6) against the float64 reference (tests/reference.py) and torch's own
computation: predict with lengths and masks, streams that return the attention pool of the sequence so far, the
special values of a softmax, long streams, the state a stream keeps and what it refuses. Reading the pattern from
torch modules and ONNX graphs is tested in test_torch_attention.py and test_onnx_attention.py."""

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

torch = pytest.importorskip("torch")


def attention_layers(rng, per_feature=False, features_in=3, H=7):
    """LSTM -> score (Linear -> tanh -> Linear) -> attention over the LSTM's output -> softmax head."""
    return [
        specs.lstm(rng, features_in, H),
        specs.dense(rng, H, 5, "tanh"),
        specs.dense(rng, 5, H if per_feature else 1),
        lstmrt.AttentionPooling(H, 0, per_feature=per_feature),
        specs.dense(rng, H, 4, "softmax"),
    ]


@pytest.mark.parametrize("per_feature", [False, True])
def test_predict_matches_the_reference(rng, per_feature):
    layers = attention_layers(rng, per_feature)
    X = inputs(rng, 4, 23, 3)
    every_step, _ = check(layers, X)
    last, _ = check(layers, X, return_sequences=False)
    assert np.array_equal(last, every_step[:, -1])
    check(layers, X, lengths=np.array([23, 9, 1, 0]), return_sequences=False)
    check(layers, X, mask=random_mask(rng, 4, 23), lengths=np.array([20, 23, 5, 2]))


def test_a_slice_of_the_model_input_can_be_attended(rng):
    layers = [specs.gru(rng, 4, 3), specs.dense(rng, 3, 1), lstmrt.AttentionPooling(2, "input", 1)]
    check(layers, inputs(rng, 3, 11, 4), mask=random_mask(rng, 3, 11))


def test_matches_torch_softmax_attention(rng):
    """What torch computes for `w = softmax(self.attn(out), dim=1); (w * out).sum(1)`, its weights given to lstmrt."""
    torch.manual_seed(int(rng.integers(2**31)))
    lstm, attn, fc = torch.nn.LSTM(3, 6, batch_first=True), torch.nn.Linear(6, 1), torch.nn.Linear(6, 2)
    layers = [
        lstmrt.from_torch(lstm).layers[0],
        lstmrt.Dense(attn.weight.detach().numpy(), attn.bias.detach().numpy()),
        lstmrt.AttentionPooling(6, 0),
        lstmrt.Dense(fc.weight.detach().numpy(), fc.bias.detach().numpy()),
    ]
    model = lstmrt.Model(layers, return_sequences=False)
    X = inputs(rng, 3, 40, 3) * 2
    with torch.no_grad():
        out, _ = lstm(torch.from_numpy(X))
        want = fc((torch.softmax(attn(out), dim=1) * out).sum(1)).numpy()
    assert_close(model.predict(X), want, atol=1e-5)
    stream = model.stream()
    with torch.no_grad():  # a stream's step t: torch's forward on the prefix of t + 1 steps
        for t in range(8):
            prefix = out[:1, : t + 1]
            assert_close(stream.step(X[0, t]), fc((torch.softmax(attn(prefix), 1) * prefix).sum(1))[0].numpy())


@pytest.mark.parametrize("per_feature", [False, True])
def test_a_stream_returns_the_attention_pool_of_its_sequence_so_far(rng, per_feature):
    check_pooled_streams(attention_layers(rng, per_feature), inputs(rng, 3, 30, 3))


def test_threads_give_the_same_result(rng):
    model = lstmrt.Model(attention_layers(rng, features_in=3, H=64), return_sequences=False)
    X = inputs(rng, 16, 50, 3)
    assert np.array_equal(model.predict(X, threads=2), model.predict(X))


def test_state_carries_the_softmax_on(rng):
    layers = attention_layers(rng)
    model = lstmrt.Model(layers, return_sequences=False)
    s = model.stream(batch=2)
    X = inputs(rng, 2, 9, 3)
    s.run(X)
    state = s.state
    assert [tuple(a.shape for a in e) for e in state][1] == ((2, 7), (2, 7), (2, 1), (2, 1))
    scores = lstmrt.Model(layers[:3]).predict(X)[..., 0]
    assert_close(state[1][2][:, 0], scores.max(1), atol=1e-6)
    assert_close(state[1][3][:, 0], np.exp(scores - scores.max(1, keepdims=True)).sum(1), atol=1e-5)
    more = inputs(rng, 2, 6, 3)
    first, _ = check_state_resumes(s, layers, state, more)
    # the whole sequence at once, as predict reads it
    assert_close(first[:, -1], model.predict(np.concatenate([X, more], axis=1)))


def test_reset_rows_restarts_their_softmax(rng):
    check_reset_rows(lstmrt.Model(attention_layers(rng)), inputs(rng, 2, 12, 3))


@pytest.mark.parametrize("weight_sum", [-1.0, np.nan, np.inf, 2.0**24 + 2])
def test_a_weight_sum_out_of_range_is_refused(rng, weight_sum):
    s = lstmrt.Model(attention_layers(rng)).stream()
    s.run(inputs(rng, 1, 4, 3)[0])
    check_state_refused(s, 1, 3, weight_sum, r"state\[1\]\.weight_sum \(layer 3\) must hold sums of weights in \[0, 16")


def test_the_runtime_refuses_a_bad_weight_sum_too(rng):
    """The C runtime's own check, behind the Python one (the C API has no Python in front of it)."""
    s = lstmrt.Model([lstmrt.AttentionPooling(2, "input", 0, per_feature=True)]).stream()
    flat = np.zeros(8, np.float32)
    flat[7] = -1.0  # mean (2), mean_low (2), max_score (2), weight_sum (2)
    with pytest.raises(ValueError, match=r"state\[7\] = -1 is a pool's count of steps .* or an attention pool's weig"):
        s._native.set_state(flat)


def scores_then_values(scores, values):
    """One sequence for a model that attends to its input's features 1.. with the score in feature 0."""
    return np.concatenate([np.asarray(scores, np.float32)[:, None], np.asarray(values, np.float32)], axis=1)[None]


ATTEND_INPUT = [lstmrt.Dense([[1.0, 0.0, 0.0]]), lstmrt.AttentionPooling(2, "input", 1)]  # the score: feature 0


def attend(scores, values):
    return lstmrt.Model(ATTEND_INPUT).predict(scores_then_values(scores, values))[0]


def test_special_scores_follow_softmax():
    """NaN or +inf poisons every later step (torch's softmax gives NaN weights); -inf is a weight of 0; a sequence
    of only -inf scores is 0 / 0."""
    values = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]
    got = attend([0.0, np.nan, 0.0, 0.0], values)
    assert np.array_equal(got[0], [1.0, 2.0]) and np.isnan(got[1:]).all()
    assert np.isnan(attend([0.0, 0.0, np.inf, 0.0], values)[2:]).all()
    got = attend([-np.inf, -np.inf, 1.0, -np.inf], values)
    assert np.isnan(got[:2]).all() and np.array_equal(got[2:], [[5.0, 6.0], [5.0, 6.0]])
    assert np.array_equal(attend([0.0, 0.0, 0.0, 0.0], values)[-1], [4.0, 5.0])


def test_scores_far_apart_rescale_without_overflow():
    """exp of the raw scores would overflow float32 (and float64 at 1e30): the running softmax rescales instead."""
    values = np.arange(10, dtype=np.float32).reshape(5, 2)
    for scores in ([1e30, -1e30, 3e30, 0.0, 2e30], [100.0, 200.0, 300.0, 400.0, 500.0]):
        got = attend(scores, values)
        s = np.asarray(scores)
        for t in range(5):
            w = np.exp(s[: t + 1] - s[: t + 1].max())
            assert_close(got[t], (w[:, None] * values[: t + 1]).sum(0) / w.sum(), atol=1e-6)


def test_a_non_finite_value_takes_the_weighted_sums_rule():
    # the score through hard_tanh first, so that the Dense picking it does not meet 0 * inf
    model = lstmrt.Model([lstmrt.Activation("hard_tanh"), *ATTEND_INPUT], input_size=3)
    got = model.predict(scores_then_values([0.0, 0.0, 0.0], [[1.0, np.inf], [np.inf, -np.inf], [1.0, 1.0]]))[0]
    assert np.array_equal(got, [[1.0, np.inf], [np.inf, np.nan], [np.inf, np.nan]], equal_nan=True)


def test_the_first_step_ignores_what_a_state_left_there():
    """A weight sum of 0 means no step was attended: a mean or largest score set with it does not leak in."""
    s = lstmrt.Model([lstmrt.AttentionPooling(2, "input", 0, per_feature=True)]).stream()
    junk = np.array([np.inf, 1e30], np.float32)
    s.state = [(junk, junk, np.array([1e30, np.nan], np.float32), np.zeros(2, np.float32))]
    x = np.array([1.0, -2.0], np.float32)
    assert np.isnan(s.step(x)[1])  # a largest score of NaN: poisoned, as set
    s.state = [(junk, junk, np.array([1e30, -np.inf], np.float32), np.zeros(2, np.float32))]
    assert np.array_equal(s.step(x), x)
    assert np.array_equal(s.step(x), x)


def test_a_long_stream_keeps_an_accurate_mean(rng):
    """200,000 steps of values around 1e3 (spread 1) under scores in [-1, 1]: the mean's low part keeps the late
    steps' small moves. Within the final rounding of 1e3."""
    s = lstmrt.Model(ATTEND_INPUT).stream()
    scores = rng.uniform(-1, 1, 200_000)
    values = 1e3 + rng.standard_normal((200_000, 2))
    got = s.run(scores_then_values(scores, values)[0])
    w = np.exp(scores - 1.0)
    assert_close(got[-1], (w[:, None] * values).sum(0) / w.sum(), atol=2**-14)


def test_the_weight_sum_stops_at_two_to_the_24(rng):
    """On an endless stream the sum stops growing there; a step of weight 1 then moves the mean by 2^-24 of the way."""
    s = lstmrt.Model(ATTEND_INPUT).stream()
    s.step(scores_then_values([0.0], [[0.0, 0.0]])[0, 0])
    s.state = [
        (np.zeros(2, np.float32), np.zeros(2, np.float32), np.zeros(1, np.float32), np.full(1, 2.0**24, np.float32))
    ]
    got = s.step(scores_then_values([0.0], [[2.0**24, -(2.0**25)]])[0, 0])
    assert np.array_equal(got, [1.0, -2.0])
    assert s.state[0][3][0] == 2.0**24


def test_refuses_what_it_cannot_compute(rng):
    for features in (0, 2**31):
        with pytest.raises(ValueError, match=r"features must be an int in \[1, 16777216\]"):
            lstmrt.AttentionPooling(features, 0)
    with pytest.raises(ValueError, match=r'source must be "input" or the index of an earlier layer, got -1'):
        lstmrt.AttentionPooling(3, -1)
    lstm = specs.lstm(rng, 2, 5)
    with pytest.raises(ValueError, match=r"layer 1 \(AttentionPooling\) attends to the output of layer 1: it must be"):
        lstmrt.Model([specs.dense(rng, 2, 1), lstmrt.AttentionPooling(5, 1)])
    with pytest.raises(ValueError, match=r"layer 2 \(AttentionPooling\) attends to features \[1, 6\) but layer 0 out"):
        lstmrt.Model([lstm, specs.dense(rng, 5, 1), lstmrt.AttentionPooling(5, 0, 1)])
    with pytest.raises(ValueError, match=r"expects 5 input features but layer 1 \(Dense\) outputs 1"):
        lstmrt.Model([lstm, specs.dense(rng, 5, 1), lstmrt.AttentionPooling(5, 0, per_feature=True)])
    last = specs.lstm(rng, 2, 5, return_sequences=False)
    with pytest.raises(
        ValueError, match=r"layer 2 \(AttentionPooling\) pools the steps of layer 0, which has return_s"
    ):
        lstmrt.Model([last, specs.dense(rng, 5, 1), lstmrt.AttentionPooling(5, 0)])
    model = lstmrt.Model([lstm, specs.dense(rng, 5, 5), lstmrt.AttentionPooling(5, 0, per_feature=True)])
    assert "AttentionPooling(layer 0[0:5], per_feature=True)" in repr(model)
    assert lstmrt.AttentionPooling(1, 0, per_feature=True).per_feature is False  # one feature: the same computation
