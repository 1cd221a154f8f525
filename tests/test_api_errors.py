"""Every error path of the Python API: exception type, the key words of the message, and — for streams — a
state that is exactly unchanged after the failed call."""

import numpy as np
import pytest
import specs

import lstmrt

F32 = np.float32


@pytest.fixture
def model(rng):
    """3 features in, 2 out; state: LSTM (h 5, c 17) with projection, GRU (h 4)."""
    return lstmrt.Model([specs.lstm(rng, 3, 17, proj_size=5), specs.gru(rng, 5, 4), specs.dense(rng, 4, 2)])


@pytest.fixture
def tokens(rng):
    return lstmrt.Model([lstmrt.Embedding(rng.standard_normal((7, 4))), specs.gru(rng, 4, 5)])


def advanced(model, rng, batch=None):
    """A stream with a non-zero state, so that a failed call that reset or half-updated it would show."""
    s = model.stream(batch=batch)
    if model.layers[0].kind == "embedding":
        s.run(rng.integers(0, 7, size=(5,) if batch is None else (batch, 5)))
    else:
        s.run(rng.standard_normal((5, 3) if batch is None else (batch, 5, 3)))
    return s


def snapshot(stream):
    return [tuple(a.copy() for a in entry) for entry in stream.state]


def assert_unchanged(stream, before):
    after = stream.state
    assert len(after) == len(before)
    for e, f in zip(after, before):
        for a, b in zip(e, f):
            assert np.array_equal(a, b), "a failed call changed the stream's state"


# -- predict inputs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "X,exc,words",
    [
        (np.zeros((4, 2), F32), ValueError, r"X has shape \(4, 2\), expected \(T, 3\) or \(B, T, 3\)"),
        (np.zeros((2, 4, 5), F32), ValueError, r"X has shape \(2, 4, 5\), expected"),
        (np.zeros(3, F32), ValueError, r"X has shape \(3,\), expected"),
        (np.zeros((1, 2, 4, 3), F32), ValueError, r"X has shape \(1, 2, 4, 3\), expected"),
        (np.zeros((0, 3), F32), ValueError, "empty batch or sequence"),
        (np.zeros((0, 4, 3), F32), ValueError, "empty batch or sequence"),
        (np.zeros((2, 0, 3), F32), ValueError, "empty batch or sequence"),
        (np.zeros((4, 3), np.int64), TypeError, "dtype int64; expected floating-point"),
        (np.zeros((4, 3), bool), TypeError, "dtype bool; expected floating-point"),
        (np.zeros((4, 3), np.complex64), TypeError, "dtype complex64"),
        ([["a", "b", "c"]], TypeError, "dtype <U1"),
        ("abc", TypeError, "X must be a NumPy array .* got str"),
        (None, TypeError, "X must be a NumPy array .* got NoneType"),
        (3.0, TypeError, "X must be a NumPy array .* got float"),
        ([[1.0, 2.0], [3.0]], TypeError, "X cannot be converted to an array"),
    ],
)
def test_predict_rejects_bad_inputs(model, X, exc, words):
    with pytest.raises(exc, match=words):
        model.predict(X)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.longdouble])
def test_predict_converts_other_floats(model, rng, dtype):
    X = rng.standard_normal((2, 6, 3)).astype(dtype)  # float16 values are exact in float32
    assert np.array_equal(model.predict(X), model.predict(X.astype(F32)))


def test_predict_of_one_feature_takes_a_sequence_without_its_axis(rng):
    """As Stream.run does: (T,) is one sequence of a one-feature model; (B, T) stays refused (it reads as (T, I))."""
    model = lstmrt.Model([specs.lstm(rng, 1, 4), specs.dense(rng, 4, 2)])
    X = rng.standard_normal(9).astype(F32)
    assert np.array_equal(model.predict(X), model.predict(X[:, None]))
    assert np.array_equal(model.predict(X, mask=X > 0), model.predict(X[:, None], mask=X > 0))
    assert np.array_equal(model.predict(X.tolist()), model.stream().run(X))
    with pytest.raises(ValueError, match=r"X has shape \(3, 9\), expected \(T,\), \(T, 1\) or \(B, T, 1\)"):
        model.predict(np.zeros((3, 9), F32))


def test_predict_converts_lists_and_non_contiguous_arrays(model, rng):
    X = rng.standard_normal((2, 6, 3)).astype(F32)
    want = model.predict(X)
    assert np.array_equal(model.predict(X.tolist()), want)
    assert np.array_equal(model.predict(np.asfortranarray(X)), want)
    wide = np.zeros((2, 12, 6), F32)
    wide[:, ::2, ::2] = X
    assert np.array_equal(model.predict(wide[:, ::2, ::2]), want)
    assert np.array_equal(model.predict(X[::-1])[::-1], want)


@pytest.mark.parametrize(
    "lengths,exc,words",
    [
        ([1, 7], ValueError, r"lengths must lie in \[0, 6\].*max 7"),
        ([-1, 3], ValueError, r"lengths must lie in \[0, 6\].*min -1"),
        ([3], ValueError, r"lengths must be 2 integer\(s\) \(one per sequence\), got \(1,\)"),
        ([1, 2, 3], ValueError, r"lengths must be 2 integer\(s\)"),
        (np.array([1.0, 2.0]), TypeError, "lengths must be 2 integer.*float64"),  # a wrong dtype, as for X
        ([10.0, 3.0], TypeError, "lengths must be 2 integer.*float64"),
        (np.array([[1, 2]]), ValueError, r"got \(1, 2\)"),
    ],
)
def test_predict_rejects_bad_lengths(model, rng, lengths, exc, words):
    with pytest.raises(exc, match=words):
        model.predict(rng.standard_normal((2, 6, 3)), lengths=lengths)


@pytest.mark.parametrize(
    "mask,exc,words",
    [
        (np.ones((2, 5), bool), ValueError, r"mask must be a boolean array of shape \(2, 6\), got \(2, 5\)"),
        (np.ones(6, bool), ValueError, r"of shape \(2, 6\), got \(6,\)"),
        (np.ones((2, 6), F32), TypeError, "of float32"),
    ],
)
def test_predict_rejects_bad_masks(model, rng, mask, exc, words):
    with pytest.raises(exc, match=words):
        model.predict(rng.standard_normal((2, 6, 3)), mask=mask)


@pytest.mark.parametrize(
    "ids,words",
    [
        (np.array([[1, 2, 7]]), r"^token id 7 at row 0, step 2 is outside \[0, 6\]$"),
        (np.array([[1, -1, 2]]), r"^token id -1 at row 0, step 1 is outside \[0, 6\]$"),
        (np.array([[1.0, 2.5]]), r"^token id 2.5 at row 0, step 1 is not an integer in \[0, 6\]$"),
        (np.array([[np.nan, 1.0]]), r"^token id nan at row 0, step 0 is not an integer in \[0, 6\]$"),
        (np.array([1.0, np.inf]), r"^token id inf at step 1 is outside \[0, 6\]$"),
        (np.array([1, 2, 7]), r"^token id 7 at step 2 is outside \[0, 6\]$"),  # one sequence: its steps
    ],
)
def test_predict_rejects_bad_token_ids(tokens, ids, words):
    with pytest.raises(ValueError, match=words):
        tokens.predict(ids)


def _ids(shape, at, value, dtype=np.int64):
    ids = np.ones(shape, dtype)
    ids[at] = value
    return ids


# An integer id is shown exactly as given (the C runtime sees float32: 2**40 as 1.09951e+12), at its row and step.
BIG, U64_MAX = 2**40, np.iinfo(np.uint64).max
TOKEN_MESSAGES = [
    ("predict", None, _ids((2, 5), (1, 3), BIG), "token id 1099511627776 at row 1, step 3 is outside [0, 6]"),
    (
        "predict",
        None,
        _ids((2, 5), (1, 3), U64_MAX, np.uint64),
        "token id 18446744073709551615 at row 1, step 3 is outside [0, 6]",
    ),
    (
        "predict",
        None,
        _ids((2, 5, 1), (0, 4, 0), -(2**62)),
        "token id -4611686018427387904 at row 0, step 4 is outside [0, 6]",
    ),
    ("predict", None, _ids(5, 3, BIG, np.float64), "token id 1099511627776.0 at step 3 is outside [0, 6]"),
    ("run", None, _ids(5, 3, BIG), "token id 1099511627776 at step 3 is outside [0, 6]"),
    (
        "run",
        2,
        _ids((2, 5), (1, 3), U64_MAX, np.uint64),
        "token id 18446744073709551615 at row 1, step 3 is outside [0, 6]",
    ),
    (
        "run",
        2,
        _ids((2, 5, 1), (1, 4, 0), 7.5, np.float32),
        "token id 7.5 at row 1, step 4 is not an integer in [0, 6]",
    ),
    ("step", None, BIG, "token id 1099511627776 is outside [0, 6]"),  # a Python int
    ("step", None, np.array([U64_MAX], np.uint64), "token id 18446744073709551615 is outside [0, 6]"),
    ("step", 2, _ids(2, 1, BIG), "token id 1099511627776 at row 1 is outside [0, 6]"),
    ("step", 2, _ids((2, 1), (1, 0), 7, np.float32), "token id 7.0 at row 1 is outside [0, 6]"),  # the fast path
]


@pytest.mark.parametrize(
    "call,batch,ids,message",
    TOKEN_MESSAGES,
    ids=[f"{c}-{b}-{np.shape(i)}-{np.asarray(i).dtype}" for c, b, i, _ in TOKEN_MESSAGES],
)
def test_bad_token_message_names_the_id_as_given_and_where(tokens, rng, call, batch, ids, message):
    if call == "predict":
        with pytest.raises(ValueError) as info:
            tokens.predict(ids)
    else:
        s = advanced(tokens, rng, batch)
        before = snapshot(s)
        with pytest.raises(ValueError) as info:
            getattr(s, call)(ids)
        assert_unchanged(s, before)
    assert str(info.value) == message
    exc = info.value  # no "during handling of the above exception" with the runtime's message
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


# -- stream calls leave the state unchanged when they fail ------------------------------------------------------
STEP_ERRORS = [
    (None, np.zeros(4, F32), ValueError, r"x has shape \(4,\), expected \(3,\)"),
    (None, np.zeros((1, 3), F32), ValueError, r"x has shape \(1, 3\), expected \(3,\)"),
    (None, np.zeros(3, np.int32), TypeError, "x has dtype int32; expected floating-point"),
    (None, "abc", TypeError, "x must be a NumPy array"),
    (None, 1, TypeError, "x has dtype int64; expected floating-point"),  # was "must be a NumPy array, got int"
    (None, {"x": 1}, TypeError, "x must be a NumPy array .* got dict"),
    (2, np.zeros((3, 3), F32), ValueError, r"x has shape \(3, 3\), expected \(2, 3\)"),
    (2, np.zeros(3, F32), ValueError, r"x has shape \(3,\), expected \(2, 3\)"),
]


@pytest.mark.parametrize("batch,x,exc,words", STEP_ERRORS)
def test_failed_step_leaves_state_unchanged(model, rng, batch, x, exc, words):
    s = advanced(model, rng, batch)
    before = snapshot(s)
    with pytest.raises(exc, match=words):
        s.step(x)
    assert_unchanged(s, before)


@pytest.mark.parametrize(
    "out,exc,words",
    [
        (np.zeros(2, np.float64), TypeError, "out has dtype float64; expected float32"),
        (np.zeros(3, F32), ValueError, r"out has shape \(3,\), expected \(2,\)"),
        (np.zeros((1, 2), F32), ValueError, r"out has shape \(1, 2\), expected \(2,\)"),
        (np.zeros(4, F32)[::2], ValueError, "out must be C-contiguous"),
        ([0.0, 0.0], TypeError, "out must be a NumPy float32 array, got list"),
        (np.zeros(2, ">f4"), TypeError, "out has dtype >f4; expected float32"),
        (np.zeros(9, np.uint8)[1:].view(F32), ValueError, "out must be aligned"),
    ],
)
def test_bad_out_buffer_leaves_state_unchanged(model, rng, out, exc, words):
    s = advanced(model, rng)
    before = snapshot(s)
    with pytest.raises(exc, match=words):
        s.step(np.zeros(3, F32), out=out)
    assert_unchanged(s, before)


def test_read_only_out_buffer(model, rng):
    s = advanced(model, rng)
    before = snapshot(s)
    out = np.zeros(2, F32)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="out is read-only"):
        s.step(np.zeros(3, F32), out=out)
    assert_unchanged(s, before)


def misaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of the float32 array `a` one byte off its alignment."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = buf[1:].view(F32).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def test_step_converts_lists_other_floats_and_strided_inputs(model, rng):
    x = rng.standard_normal(3).astype(F32)
    s = advanced(model, rng)
    want = s.copy().step(x)
    for variant in (x.tolist(), x.astype(np.float64), np.repeat(x, 2)[::2]):
        assert np.array_equal(s.copy().step(variant), want)


@pytest.mark.parametrize("batch", [None, 2])
def test_byte_swapped_and_misaligned_float32_inputs(model, rng, batch):
    """A '>f4' array is NPY_FLOAT32 too: the step's fast path took it as is, read swapped bytes (silently wrong
    outputs, NaN in the state). Such inputs, and misaligned ones, are converted like any other layout."""
    lead = () if batch is None else (batch,)
    x, X = rng.standard_normal(lead + (3,)).astype(F32), rng.standard_normal(lead + (6, 3)).astype(F32)
    s = advanced(model, rng, batch)
    want_step, want_run = s.copy().step(x), s.copy().run(X)
    want_predict = model.predict(X)
    for convert in (lambda a: a.astype(">f4"), misaligned):
        assert np.array_equal(s.copy().step(convert(x)), want_step)
        assert np.array_equal(s.copy().run(convert(X)), want_run)
        assert np.array_equal(model.predict(convert(X)), want_predict)


def test_token_step_takes_ids_as_run_does(tokens, rng):
    """Token ids step without their feature axis, like Stream.run and predict take them: an int, a 0-d array or
    (1,) for one stream, (N,) or (N, 1) for N streams."""
    ids = rng.integers(0, 7, size=(2, 4))
    want = tokens.stream(batch=2).run(ids)
    for shape in ((2,), (2, 1)):
        s = tokens.stream(batch=2)
        got = np.stack([s.step(ids[:, t].reshape(shape)).copy() for t in range(4)], axis=1)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # step and run may take other kernels
    # a Python float, as np.float64 (its subclass) and float arrays: was "x must be a NumPy array, got float"
    for form in (int, np.int64, np.array, lambda v: np.array([v]), float, np.float64):
        s = tokens.stream()
        got = np.stack([s.step(form(int(v))).copy() for v in ids[0]])
        np.testing.assert_allclose(got, want[0], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"^token id 2.5 is not an integer in \[0, 6\]$"):
        tokens.stream().step(2.5)
    with pytest.raises(TypeError, match="got bool"):
        tokens.stream().step(True)


@pytest.mark.parametrize(
    "batch,X,exc,words",
    [
        (None, np.zeros((4, 2), F32), ValueError, r"X has shape \(4, 2\), expected \(T, 3\)"),
        (None, np.zeros(3, F32), ValueError, r"X has shape \(3,\), expected \(T, 3\)"),
        (None, np.zeros((1, 4, 3), F32), ValueError, r"X has shape \(1, 4, 3\), expected \(T, 3\)"),
        (None, np.zeros((4, 3), np.int16), TypeError, "X has dtype int16"),
        (2, np.zeros((3, 4, 3), F32), ValueError, r"X has shape \(3, 4, 3\), expected \(2, T, 3\)"),
        (2, np.zeros((4, 3), F32), ValueError, r"X has shape \(4, 3\), expected \(2, T, 3\)"),
        (2, object(), TypeError, "X must be a NumPy array"),
    ],
)
def test_failed_run_leaves_state_unchanged(model, rng, batch, X, exc, words):
    s = advanced(model, rng, batch)
    before = snapshot(s)
    with pytest.raises(exc, match=words):
        s.run(X)
    assert_unchanged(s, before)


def test_run_of_no_steps_is_empty_and_keeps_the_state(model, rng):
    s = advanced(model, rng, 2)
    before = snapshot(s)
    assert s.run(np.zeros((2, 0, 3), F32)).shape == (2, 0, 2)
    assert_unchanged(s, before)


@pytest.mark.parametrize("call", ["step", "run"])
def test_bad_token_leaves_state_unchanged(tokens, rng, call):
    """The C runtime checks every token before the first step: a bad id late in a run changes nothing."""
    s = advanced(tokens, rng, 2)
    before = snapshot(s)
    where = "row 1" if call == "step" else "row 1, step 3"
    with pytest.raises(ValueError, match=rf"^token id 9 at {where} is outside \[0, 6\]$"):
        if call == "step":
            s.step(np.array([[3], [9]]))
        else:
            s.run(np.array([[1, 2, 3, 4], [1, 2, 3, 9]]))
    assert_unchanged(s, before)


# -- state assignment -------------------------------------------------------------------------------------------
def _state_cases():
    h0, c0, h1 = np.zeros(5, F32), np.zeros(17, F32), np.zeros(4, F32)
    return [
        ([(h0, c0)], ValueError, r"state must be a list of 2 tuple\(s\), one per recurrent layer"),
        ([(h0, c0), (h1,), (h1,)], ValueError, r"state must be a list of 2 tuple"),
        ({"h": h0}, ValueError, r"state must be a list of 2"),
        (np.zeros(26, F32), ValueError, r"state must be a list of 2"),
        ([(h0,), (h1,)], ValueError, r"state\[0\] \(layer 0\) must be a tuple \(h, c\)"),
        ([(h0, c0), h1], ValueError, r"state\[1\] \(layer 1\) must be a tuple \(h\)"),
        ([(h0, c0), (h1, h1)], ValueError, r"state\[1\] \(layer 1\) must be a tuple \(h\)"),
        ([(c0, c0), (h1,)], ValueError, r"state\[0\].h \(layer 0\) has shape \(17,\), expected \(5,\)"),
        ([(h0, h0), (h1,)], ValueError, r"state\[0\].c \(layer 0\) has shape \(5,\), expected \(17,\)"),
        ([(h0, c0), (h1[None],)], ValueError, r"state\[1\].h \(layer 1\) has shape \(1, 4\), expected \(4,\)"),
        ([(h0, c0), (np.zeros(4, np.int64),)], TypeError, r"state\[1\].h has dtype int64"),
        ([(h0, c0), ("abcd",)], TypeError, r"state\[1\].h must be a NumPy array"),
    ]


@pytest.mark.parametrize("value,exc,words", _state_cases())
def test_bad_state_assignment_leaves_state_unchanged(model, rng, value, exc, words):
    s = advanced(model, rng)
    before = snapshot(s)
    with pytest.raises(exc, match=words):
        s.state = value
    assert_unchanged(s, before)


def test_bad_batched_state_assignment(model, rng):
    s = advanced(model, rng, 3)
    before = snapshot(s)
    good = [tuple(a + 1 for a in entry) for entry in before]
    bad = [good[0], (good[1][0][:2],)]
    with pytest.raises(ValueError, match=r"state\[1\].h \(layer 1\) has shape \(2, 4\), expected \(3, 4\)"):
        s.state = bad
    assert_unchanged(s, before)  # the valid first entry was not applied either


@pytest.mark.parametrize("batch", [0, -1, 2**24 + 1, 2**31, 2**64, np.int64(0)])
def test_bad_stream_batch(model, batch):
    with pytest.raises(ValueError, match=r"batch must be an integer in \[1, 16777216\], got"):
        model.stream(batch=batch)


@pytest.mark.parametrize("batch", [1.5, True, "2", np.float32(2)])
def test_a_stream_batch_of_another_type_is_a_type_error(model, batch):
    with pytest.raises(TypeError, match=r"batch must be an integer in \[1, 16777216\], got .* of type"):
        model.stream(batch=batch)


# -- layer specs and models -------------------------------------------------------------------------------------
def _w(*shape):
    return np.zeros(shape, F32)


SPEC_ERRORS = [
    (lambda: lstmrt.LSTM(_w(5, 3), _w(5, 1)), ValueError, r"LSTM: weight_ih has shape \(5, 3\), expected \(4\*hidden"),
    (lambda: lstmrt.LSTM(_w(8, 3, 1), _w(8, 2)), ValueError, r"LSTM: weight_ih has shape \(8, 3, 1\)"),
    (lambda: lstmrt.LSTM(_w(0, 3), _w(0, 0)), ValueError, r"LSTM: weight_ih has shape \(0, 3\)"),
    (lambda: lstmrt.LSTM(_w(8, 3), _w(8, 3)), ValueError, r"LSTM: weight_hh has shape \(8, 3\), expected \(8, 2\)"),
    (lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), _w(7)), ValueError, r"LSTM: bias_ih has shape \(7,\), expected \(8,\)"),
    (lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), None, _w(8, 1)), ValueError, r"LSTM: bias_hh has shape \(8, 1\)"),
    (lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), weight_hr=_w(1, 3)), ValueError, r"LSTM: weight_hr has shape \(1, 3\)"),
    (
        lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), weight_hr=_w(1, 2)),
        ValueError,
        r"LSTM: weight_hh has shape \(8, 2\), expected \(8, 1\)",
    ),
    (lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), peephole=_w(2, 2)), ValueError, r"LSTM: peephole has shape \(2, 2\)"),
    (lambda: lstmrt.LSTM(_w(8, 3), None), ValueError, "LSTM: weight_hh is required"),
    (lambda: lstmrt.LSTM(np.full((8, 3), "x"), _w(8, 2)), TypeError, "LSTM: weight_ih has dtype <U1"),
    (
        lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), activations=("sigmoid", "tanh")),
        ValueError,
        "LSTM: activations must be 3 names",
    ),
    (lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), activations="tanh"), ValueError, "LSTM: activations must be 3 names"),
    (
        lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), activations=("sigmoid", "foo", "tanh")),
        ValueError,
        "LSTM: unknown activation 'foo'; supported: sigmoid, tanh",
    ),
    (
        lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), activations=("softmax", "tanh", "tanh")),
        ValueError,
        "LSTM: unknown activation 'softmax'",
    ),
    (
        lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), activations=(1, "tanh", "tanh")),
        TypeError,
        "LSTM: activation must be a name",
    ),
    (
        lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), activations=("sigmoid", "relu(0.1)", "tanh")),
        ValueError,
        r"LSTM: activation 'relu' takes no parameter, got 'relu\(0.1\)'",
    ),
    (lambda: lstmrt.Activation("celu(0)"), ValueError, "Activation: the parameter of celu must be finite and not 0"),
    (lambda: lstmrt.Activation("hard_shrink(-1)"), ValueError, "the parameter of hard_shrink must be finite and >= 0"),
    (lambda: lstmrt.Activation("squareplus(-0.5)"), ValueError, "the parameter of squareplus must be finite and >= 0"),
    (lambda: lstmrt.Activation("leaky_relu(inf)"), ValueError, "the parameter of leaky_relu must be finite, got inf"),
    (lambda: lstmrt.Activation("leaky_relu(1e39)"), ValueError, "the parameter of leaky_relu must be finite"),
    (lambda: lstmrt.Activation("leaky_relu(slope)"), ValueError, r"the parameter of 'leaky_relu\(slope\)' is not a"),
    (lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), cell_clip=0.0), ValueError, "LSTM: cell_clip must be > 0"),
    (lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), cell_clip=float("nan")), ValueError, "LSTM: cell_clip must be > 0"),
    # values the checks passed in float64 that the float32 runtime would read otherwise (found by a probe)
    (
        lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), cell_clip=1e-39),  # a step flushes it to 0: no clip at all
        ValueError,
        r"LSTM: cell_clip 1e-39 is below float32's smallest normal number",
    ),
    (
        lambda: lstmrt.Activation("celu(1e-50)"),  # celu(0) in float32
        ValueError,
        r"Activation: the parameter of celu must be finite and not 0 in float32 \(the runtime's\), got 1e-50",
    ),
    (
        lambda: lstmrt.LayerNorm(3, epsilon=1e300),
        ValueError,
        r"LayerNorm: epsilon must be finite and >= 0 \(in float32, the runtime.s\), got 1e\+300",
    ),
    (
        lambda: lstmrt.Dense(np.array([[1.0, 2.0], [3.0, -1e300]])),  # inf in float32
        ValueError,
        r"Dense: weight holds -1e\+300 at \[1, 1\], past float32's range",
    ),
    (lambda: lstmrt.Embedding(np.full((2, 2), 4e38)), ValueError, r"Embedding: weight holds 4e\+38 at \[0, 0\]"),
    # messages from internals a probe met: len() of None, float() of a string, the shape of a missing array
    (
        lambda: lstmrt.LSTM(_w(8, 3), _w(8, 2), activations=None),
        ValueError,
        r"LSTM: activations must be 3 names \(gate, candidate, output\), got None",
    ),
    (lambda: lstmrt.GRU(_w(6, 3), _w(6, 2), activations=None), ValueError, "GRU: activations must be 2 names"),
    (lambda: lstmrt.LayerNorm(3, epsilon="x"), TypeError, "LayerNorm: epsilon must be a number, got 'x'"),
    (lambda: lstmrt.LSTM(None, _w(8, 2)), ValueError, "LSTM: weight_ih is required"),
    (lambda: lstmrt.SimpleRNN(None, _w(2, 2)), ValueError, "SimpleRNN: weight_ih is required"),
    (lambda: lstmrt.GRU(_w(4, 3), _w(4, 1)), ValueError, r"GRU: weight_ih has shape \(4, 3\), expected \(3\*hidden"),
    (lambda: lstmrt.GRU(_w(6, 3), _w(6, 3)), ValueError, r"GRU: weight_hh has shape \(6, 3\), expected \(6, 2\)"),
    (lambda: lstmrt.GRU(_w(6, 3), _w(6, 2), _w(6), _w(2)), ValueError, r"GRU: bias_hh has shape \(2,\)"),
    (lambda: lstmrt.GRU(_w(6, 3), _w(6, 2), activations=("sigmoid",)), ValueError, "GRU: activations must be 2"),
    (
        lambda: lstmrt.GRU(_w(6, 3), _w(6, 2), activations=("sigmoid", "log_softmax")),
        ValueError,
        "GRU: unknown activation 'log_softmax'",
    ),
    (lambda: lstmrt.SimpleRNN(_w(2, 3), _w(2, 3)), ValueError, r"SimpleRNN: weight_hh has shape \(2, 3\)"),
    (lambda: lstmrt.SimpleRNN(_w(3), _w(2, 2)), ValueError, r"SimpleRNN: weight_ih has shape \(3,\)"),
    (
        lambda: lstmrt.SimpleRNN(_w(2, 3), _w(2, 2), activation="bogus"),
        ValueError,
        "SimpleRNN: unknown activation 'bogus'",
    ),
    (lambda: lstmrt.Dense(_w(3)), ValueError, r"Dense: weight has shape \(3,\), expected \(out_features, in_"),
    (lambda: lstmrt.Dense(_w(2, 0)), ValueError, r"Dense: weight has shape \(2, 0\)"),
    (lambda: lstmrt.Dense(_w(2, 3), _w(3)), ValueError, r"Dense: bias has shape \(3,\), expected \(2,\)"),
    (lambda: lstmrt.Dense(_w(2, 3), activation="nope"), ValueError, "Dense: unknown activation 'nope'"),
    (lambda: lstmrt.Activation("nope"), ValueError, "Activation: unknown activation 'nope'; supported: .*softmax"),
    (lambda: lstmrt.Affine(_w(2, 2), _w(2)), ValueError, r"Affine: scale has shape \(2, 2\), expected \(features,\)"),
    (lambda: lstmrt.Affine(_w(3), _w(2)), ValueError, r"Affine: shift has shape \(2,\), expected \(3,\)"),
    (lambda: lstmrt.Embedding(_w(5)), ValueError, r"Embedding: weight has shape \(5,\), expected \(num_embeddings"),
    (lambda: lstmrt.PReLU(0.25), ValueError, r"PReLU: slope has shape \(\), expected \(features,\)"),
    (lambda: lstmrt.PReLU([]), ValueError, r"PReLU: slope has shape \(0,\), expected \(features,\)"),
    (lambda: lstmrt.PReLU(_w(1, 3)), ValueError, r"PReLU: slope has shape \(1, 3\), expected \(features,\)"),
    (lambda: lstmrt.PReLU(["a", "b"]), TypeError, r"PReLU: slope has dtype <U1; expected floating point"),
    (lambda: lstmrt.PReLU(None), ValueError, r"PReLU: slope has shape \(\), expected \(features,\)"),
]


@pytest.mark.parametrize("make,exc,words", SPEC_ERRORS)
def test_bad_layer_spec(make, exc, words):
    with pytest.raises(exc, match=words):
        make()


def test_bad_bidirectional(rng):
    a, b = specs.lstm(rng, 3, 4), specs.lstm(rng, 3, 5)
    with pytest.raises(
        TypeError,
        match="Bidirectional: forward and backward must be recurrent layer specs of the same type, got LSTM and GRU",
    ):
        lstmrt.Bidirectional(a, specs.gru(rng, 3, 4))
    with pytest.raises(TypeError, match="got Dense and Dense"):
        lstmrt.Bidirectional(specs.dense(rng, 3, 4), specs.dense(rng, 3, 4))
    with pytest.raises(ValueError, match="Bidirectional: forward and backward differ in hidden_size"):
        lstmrt.Bidirectional(a, b)
    with pytest.raises(ValueError, match="differ in peephole"):
        lstmrt.Bidirectional(a, specs.lstm(rng, 3, 4, peephole=True))
    with pytest.raises(ValueError, match="differ in return_sequences"):
        lstmrt.Bidirectional(a, specs.lstm(rng, 3, 4, return_sequences=False))
    with pytest.raises(ValueError, match="unknown merge_mode 'max'; supported: concat, sum, mul, ave"):
        lstmrt.Bidirectional(a, specs.lstm(rng, 3, 4), "max")
    with pytest.raises(ValueError, match="go_backwards=False"):
        lstmrt.Bidirectional(a, specs.lstm(rng, 3, 4, go_backwards=True))


def test_bad_model(rng):
    with pytest.raises(ValueError, match="Model needs at least one layer"):
        lstmrt.Model([])
    with pytest.raises(TypeError, match="layer 1: expected an lstmrt layer spec, got ndarray"):
        lstmrt.Model([specs.lstm(rng, 3, 4), np.zeros(3)])
    with pytest.raises(ValueError, match=r"layer 1 \(GRU\) expects 5 input features but layer 0 \(LSTM\) outputs 4"):
        lstmrt.Model([specs.lstm(rng, 3, 4), specs.gru(rng, 5, 2)])
    with pytest.raises(ValueError, match=r"layer 0 \(LSTM\) expects 3 input features but the model input has 2"):
        lstmrt.Model([specs.lstm(rng, 3, 4)], input_size=2)
    with pytest.raises(ValueError, match=r"layer 1 \(PReLU\) expects 3 input features but layer 0 \(LSTM\) outputs 4"):
        lstmrt.Model([specs.lstm(rng, 3, 4), lstmrt.PReLU(_w(3))])
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\) expects 2 input features but layer 0 \(PReLU\) outputs 3"):
        lstmrt.Model([lstmrt.PReLU(_w(3)), specs.dense(rng, 2, 1)])
    with pytest.raises(ValueError, match="layer 1: an Embedding must be the first layer"):
        lstmrt.Model([specs.dense(rng, 3, 1), lstmrt.Embedding(_w(4, 2))])
    with pytest.raises(ValueError, match="input_size is required when the first layer is an Activation"):
        lstmrt.Model([lstmrt.Activation("relu")])
    # Activations keep the width: a layer after them tells the input's (torch.clamp(x, min=0) first in a forward())
    assert lstmrt.Model([lstmrt.Activation("relu"), specs.dense(rng, 3, 1)]).input_size == 3
