"""Stream.step of a token model (first layer an embedding) with integer ids: every integer dtype and scalar form
steps exactly as float32 ids do, without a conversion through Python (no allocation when out= is given), and a
bad id still gets the message naming it, with the state unchanged."""

import numpy as np
import pytest
import specs
from conftest import bytes_allocated_beyond_a_no_op

import lstmrt

VOCABULARY = 7
INTEGER_DTYPES = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.longlong,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.ulonglong,
]


@pytest.fixture
def tokens(rng):
    return lstmrt.Model([lstmrt.Embedding(rng.standard_normal((VOCABULARY, 4))), specs.gru(rng, 4, 5)])


def single_forms(v):
    """One stream's id v in each form step takes."""
    return {
        "int": int(v),
        "np.int64": np.int64(v),
        "np.uint8": np.uint8(v),
        "0-d": np.array(v),
        **{f"({np.dtype(t).name},)": np.array([v], t) for t in INTEGER_DTYPES},
    }


def batch_forms(ids):
    """N streams' ids (N,) in each form step takes."""
    forms = {}
    for t in INTEGER_DTYPES:
        forms[f"(N,) {np.dtype(t).name}"] = ids.astype(t)
        forms[f"(N, 1) {np.dtype(t).name}"] = ids.astype(t)[:, None]
    return forms


def test_integer_ids_step_exactly_as_float32_ids(tokens, rng):
    ids = rng.integers(0, VOCABULARY, size=(3, 6))
    s32 = tokens.stream(batch=3)
    want = np.stack([s32.step(ids[:, t, None].astype(np.float32)).copy() for t in range(6)], axis=1)
    for name, _ in batch_forms(ids[:, 0]).items():
        s = tokens.stream(batch=3)
        got = np.stack([s.step(batch_forms(ids[:, t])[name]).copy() for t in range(6)], axis=1)
        assert np.array_equal(got, want), name
    one32 = tokens.stream()
    want = np.stack([one32.step(np.array([v], np.float32)).copy() for v in ids[0]])
    for name in single_forms(0):
        s = tokens.stream()
        got = np.stack([s.step(single_forms(v)[name]).copy() for v in ids[0]])
        assert np.array_equal(got, want), name


@pytest.mark.parametrize("batch", [None, 4])
def test_integer_ids_step_without_allocating(tokens, batch):
    """With out= given, an integer-id step allocates no more than a call of a function that does nothing (the
    loop's own bookkeeping): the ids are written into a buffer the stream owns, not converted to a new array."""

    s = tokens.stream(batch=batch)
    forms = single_forms(3) if batch is None else batch_forms(np.full(batch, 3))
    out = np.empty(s.step(next(iter(forms.values()))).shape, np.float32)
    for name, x in forms.items():
        assert bytes_allocated_beyond_a_no_op(s.step, x, out) <= 0, name


BAD_IDS = [
    (None, -1, "token id -1 is outside [0, 6]"),
    (None, np.int64(7), "token id 7 is outside [0, 6]"),
    (None, 2**63, "token id 9223372036854775808 is outside [0, 6]"),  # no long long: overflow
    (None, np.array([200], np.uint8), "token id 200 is outside [0, 6]"),
    (None, np.array([-3], np.int8), "token id -3 is outside [0, 6]"),
    (None, np.array(2**40), "token id 1099511627776 is outside [0, 6]"),
    (2, np.array([1, -2], np.int16), "token id -2 at row 1 is outside [0, 6]"),
    (2, np.array([[9], [1]], np.uint32), "token id 9 at row 0 is outside [0, 6]"),
    (2, np.array([1, 2**64 - 1], np.uint64), "token id 18446744073709551615 at row 1 is outside [0, 6]"),
]


@pytest.mark.parametrize("batch,ids,message", BAD_IDS, ids=[f"{b}-{i!r}" for b, i, _ in BAD_IDS])
def test_bad_integer_id_named_and_state_unchanged(tokens, rng, batch, ids, message):
    s = tokens.stream(batch=batch)
    s.run(rng.integers(0, VOCABULARY, size=(5,) if batch is None else (batch, 5)))
    before = [a.copy() for entry in s.state for a in entry]
    with pytest.raises(ValueError) as info:
        s.step(ids)
    assert str(info.value) == message
    assert all(np.array_equal(a, b) for a, b in zip([a for entry in s.state for a in entry], before))


@pytest.mark.parametrize(
    "x,error",
    [
        (True, TypeError),
        (np.bool_(True), TypeError),
        (np.array([True]), TypeError),
        (3.5, ValueError),  # a float that holds an integer is an id, as in float arrays; 3.5 is not
        (np.array([[3]]), ValueError),
        (np.array([3, 4]), ValueError),
        ("3", TypeError),
    ],
)
def test_not_token_ids_refused_as_before(tokens, x, error):
    with pytest.raises(error):
        tokens.stream().step(x)


def test_strided_and_byteswapped_ids_step_as_contiguous_ones(tokens, rng):
    """Ids the fast path does not read directly (strided, big-endian) take the binding's conversion."""
    ids = rng.integers(0, VOCABULARY, size=(3, 4))
    want = tokens.stream(batch=3).run(ids)
    for convert in (lambda a: np.repeat(a, 2)[::2], lambda a: a.astype(">i8")):
        s = tokens.stream(batch=3)
        got = np.stack([s.step(convert(ids[:, t])).copy() for t in range(4)], axis=1)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # step and run may take other kernels
