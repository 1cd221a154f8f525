"""Streaming invariants: a stream is predict cut into pieces (docs/math.md, section 5)."""

import numpy as np
import pytest
import reference as ref
import specs
from conftest import assert_cell_close, assert_close, bytes_allocated_beyond_a_no_op
from hypothesis import given, settings
from hypothesis import strategies as st

import lstmrt


def stacked_model(rng):
    """Every recurrent kind and the state-bearing options: projection (h and c differ in size), peephole,
    GRU reset_after=False, a dense softmax head."""
    return lstmrt.Model(
        [
            specs.lstm(rng, 3, 17, proj_size=5, peephole=True),
            specs.gru(rng, 5, 6, reset_after=False),
            specs.rnn(rng, 6, 4, activation="relu"),
            specs.dense(rng, 4, 3, "softmax"),
        ]
    )


def token_model(rng):
    return lstmrt.Model([lstmrt.Embedding(rng.standard_normal((7, 4))), specs.gru(rng, 4, 5), specs.dense(rng, 5, 2)])


def inputs(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def run_in_pieces(stream, X, cuts, use_step):
    """Feed X (T, ...) piece by piece: pieces between `cuts`; single-step pieces through step() when use_step."""
    outs, start = [], 0
    for end in list(cuts) + [len(X)]:
        if end - start == 1 and use_step:
            outs.append(stream.step(X[start])[None])
        elif end > start:
            outs.append(stream.run(X[start:end]))
        start = end
    return np.concatenate(outs)


# -- chunking ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cuts", [[], [1], [1, 2, 3, 4], [150], [255, 256, 257], [100, 299], list(range(1, 300))])
def test_chunking_equals_predict(rng, cuts):
    model = stacked_model(rng)
    X = inputs(rng, 300, 3)  # longer than one predict block (256 steps)
    want = model.predict(X)
    assert_close(run_in_pieces(model.stream(), X, cuts, use_step=True), want)
    assert_close(run_in_pieces(model.stream(), X, cuts, use_step=False), want)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_any_chunking_equals_predict(data):
    rng = np.random.default_rng(20240611)
    model = stacked_model(rng)
    X = inputs(rng, 40, 3)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, 39), max_size=12), label="cuts")))
    use_step = data.draw(st.booleans(), label="use_step")
    assert_close(run_in_pieces(model.stream(), X, cuts, use_step), model.predict(X))


def test_chunking_batched_and_tokens(rng):
    model = token_model(rng)
    ids = rng.integers(0, 7, size=(3, 30))
    s = model.stream(batch=3)
    got = np.concatenate([s.run(ids[:, :10]), s.step(ids[:, 10:11])[:, None], s.run(ids[:, 11:])], axis=1)
    assert_close(got, model.predict(ids))


def test_stream_from_a_state_matches_reference(rng):
    model = stacked_model(rng)
    s = model.stream(batch=2)
    start = [tuple(rng.standard_normal(a.shape).astype(np.float32) for a in entry) for entry in s.state]
    s.state = start
    X = inputs(rng, 2, 12, 3)
    got = s.run(X)
    want, end = ref.run(model.layers, X, start)
    assert_close(got, want)
    for (h, *c), (h_ref, *c_ref) in zip(s.state, end):
        assert_close(h, h_ref, what="h")
        if c:
            assert_cell_close(c[0], c_ref[0])


def test_final_only_is_ignored_by_streams(rng):
    """A stream's step returns the output of the sequence ending there, with or without return_sequences."""
    last = specs.gru(rng, 17, 4, return_sequences=False)
    plain = lstmrt.GRU(last.weight_ih, last.weight_hh, last.bias_ih, last.bias_hh)
    first = specs.lstm(rng, 3, 17)
    X = inputs(rng, 20, 3)
    got = lstmrt.Model([first, last]).stream().run(X)
    assert np.array_equal(got, lstmrt.Model([first, plain]).stream().run(X))
    assert_close(got, lstmrt.Model([first, plain]).predict(X))


# -- reset, state, copies ---------------------------------------------------------------------------------------
def test_reset_restores_the_zero_state_exactly(rng):
    model = stacked_model(rng)
    X = inputs(rng, 30, 3)
    s = model.stream()
    first = s.run(X)
    s.reset()
    assert all(np.all(a == 0.0) and not np.any(np.signbit(a)) for entry in s.state for a in entry)
    assert np.array_equal(s.run(X), first)


def test_state_round_trips(rng):
    model = stacked_model(rng)
    s = model.stream(batch=2)
    s.run(inputs(rng, 2, 9, 3))
    saved = s.state
    X = inputs(rng, 2, 7, 3)
    first = s.run(X)
    s.state = saved
    assert all(np.array_equal(a, b) for e, f in zip(s.state, saved) for a, b in zip(e, f))
    assert np.array_equal(s.run(X), first)


def test_state_set_get_is_exact_and_copied(rng):
    model = stacked_model(rng)
    s = model.stream()
    values = [tuple(rng.standard_normal(a.shape).astype(np.float32) for a in entry) for entry in s.state]
    s.state = values
    got = s.state
    assert [tuple(a.shape for a in e) for e in got] == [((5,), (17,)), ((6,),), ((4,),)]
    assert all(np.array_equal(a, b) for e, f in zip(got, values) for a, b in zip(e, f))
    got[0][0][:] = 123.0
    values[1][0][:] = 123.0
    assert not np.any(s.state[0][0] == 123.0) and not np.any(s.state[1][0] == 123.0)


def test_state_accepts_other_float_dtypes(rng):
    model = stacked_model(rng)
    s = model.stream()
    values = [tuple(rng.standard_normal(a.shape) for a in entry) for entry in s.state]  # float64
    s.state = values
    assert all(np.array_equal(a, b.astype(np.float32)) for e, f in zip(s.state, values) for a, b in zip(e, f))


def test_copy_module_copies_the_state(rng):
    """copy.copy and copy.deepcopy of a stream give an independent stream (copy.copy shared the native one);
    the model, immutable, is shared."""
    import copy

    model = stacked_model(rng)
    s = model.stream()
    s.run(inputs(rng, 5, 3))
    before = [a.copy() for e in s.state for a in e]
    for c in (copy.copy(s), copy.deepcopy(s)):
        c.run(inputs(rng, 4, 3))
        assert all(np.array_equal(a, b) for a, b in zip(before, (a for e in s.state for a in e)))
        assert c.model is model
    assert copy.deepcopy(model) is model and copy.copy(model) is model


def test_model_pickles_for_other_processes(rng):
    """A model crosses process boundaries (multiprocessing, caches): pickle keeps its layers and options and the
    copy packs them again, with the same results."""
    import pickle

    for model in (
        stacked_model(rng),
        token_model(rng),
        lstmrt.Model([specs.lstm(rng, 3, 4)], return_sequences=False),
        lstmrt.Model([lstmrt.Activation("tanh"), specs.gru(rng, 3, 4)], input_size=3),
    ):
        copy = pickle.loads(pickle.dumps(model))
        assert type(copy) is type(model) and copy is not model
        assert (copy.input_size, copy.output_size, copy.return_sequences) == (
            model.input_size,
            model.output_size,
            model.return_sequences,
        )
        X = rng.integers(0, 7, (2, 9)) if copy._tokens else inputs(rng, 2, 9, model.input_size)
        assert np.array_equal(copy.predict(X), model.predict(X))


def _torch_detector(rng):
    """A real torch model, as a voice-activity detector over N microphones: stacked GRU and a sigmoid head."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(int(rng.integers(2**31)))
    net = torch.nn.Sequential(torch.nn.GRU(3, 6, num_layers=2, batch_first=True), torch.nn.Linear(6, 1))
    rnn, head = net[0], net[1]

    def run(X, h=None):  # torch's own output and final state from h (zero when None)
        with torch.no_grad():
            y, h = rnn(torch.from_numpy(X), h)
            return torch.sigmoid(head(y)).numpy(), h

    return lstmrt.Model([*lstmrt.from_torch(net).layers, lstmrt.Activation("sigmoid")]), run


def test_stream_pickles_with_its_state(rng):
    """A stream's state persists across a process restart by pickling the stream itself (it raised 'cannot pickle
    lstmrt._native.Stream'); it resumes where it was, as torch does from h_n."""
    import pickle

    model, torch_run = _torch_detector(rng)
    X = inputs(rng, 4, 20, 3)
    want, _ = torch_run(X)
    for s in (model.stream(batch=4), model.stream(batch=4, threads=2)):
        s.run(X[:, :12])
        restored = pickle.loads(pickle.dumps(s))
        assert (restored.batch, restored.threads, type(restored.model)) == (s.batch, s.threads, type(model))
        assert_close(restored.run(X[:, 12:]), want[:, 12:])
    single = model.stream()
    single.run(X[0, :12])
    assert_close(pickle.loads(pickle.dumps(single)).run(X[0, 12:]), want[0, 12:])


def test_reset_rows_of_a_batched_stream(rng):
    """One microphone of N restarts: reset(rows) zeroes only those rows' state; the others go on as torch does
    from h_n, the reset ones as torch from the zero state."""
    model, torch_run = _torch_detector(rng)
    X = inputs(rng, 5, 16, 3)
    _, h = torch_run(X[:, :9])
    want, _ = torch_run(X[:, 9:], h)
    fresh, _ = torch_run(X[:, 9:])
    for rows, reset in ((2, [2]), ([0, 4], [0, 4]), (np.array([3, 3], np.int32), [3]), ([], [])):
        s = model.stream(batch=5)
        s.run(X[:, :9])
        s.reset(rows)
        got = s.run(X[:, 9:])
        kept = [r for r in range(5) if r not in reset]
        assert_close(got[kept], want[kept])
        assert_close(got[reset], fresh[reset])
    s = model.stream(batch=5)
    s.run(X[:, :9])
    before = s.state
    for bad, error, words in (
        (5, ValueError, r"rows must lie in \[0, 4\]"),
        ([-1], ValueError, r"rows must lie in \[0, 4\]"),
        (1.0, TypeError, "rows must be an integer"),
        ([True], TypeError, "rows must be an integer"),
        ([[1]], TypeError, "rows must be an integer"),
    ):
        with pytest.raises(error, match=words):
            s.reset(bad)
    assert all(np.array_equal(a, b) for e, f in zip(s.state, before) for a, b in zip(e, f))
    with pytest.raises(ValueError, match="rows= applies to a batched stream"):
        model.stream().reset(0)


def test_copies_are_independent(rng):
    model = stacked_model(rng)
    s = model.stream()
    s.run(inputs(rng, 5, 3))
    c = s.copy()
    assert all(np.array_equal(a, b) for e, f in zip(s.state, c.state) for a, b in zip(e, f))
    X = inputs(rng, 8, 3)
    y_original = s.run(X)
    assert not np.array_equal(s.state[0][0], c.state[0][0])
    assert np.array_equal(c.run(X), y_original)  # the copy resumes from where it was taken
    c.reset()
    assert np.any(s.state[0][0] != 0.0)
    assert c.model is s.model and c.batch is None


def test_batch_equals_single_streams(rng):
    model = stacked_model(rng)
    N = 3
    X = inputs(rng, N, 200, 3)  # a batched stream of 3 runs 85-step chunks
    batched = model.stream(batch=N)
    singles = [model.stream() for _ in range(N)]
    for t in range(5):
        y = batched.step(X[:, t])
        for n in range(N):
            assert_close(y[n], singles[n].step(X[n, t]))
    y = batched.run(X[:, 5:])
    for n in range(N):
        assert_close(y[n], singles[n].run(X[n, 5:]))
        for e, f in zip(batched.state, singles[n].state):
            for a, b in zip(e, f):
                assert_close(a[n], b)


# -- step(out=), refusal, special values ------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [None, 3])
def test_step_writes_into_out(rng, batch):
    model = stacked_model(rng)
    s = model.stream(batch=batch)
    twin = s.copy()
    shape = (3,) if batch is None else (batch, 3)
    buf = np.full(shape, np.nan, np.float32)
    for _ in range(3):
        x = inputs(rng, *((3,) if batch is None else (batch, 3)))
        result = s.step(x, out=buf)
        assert result is buf
        assert np.array_equal(buf, twin.step(x))


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("overlap", ["same array", "shifted view"])
def test_step_out_may_share_memory_with_x(rng, batch, overlap):
    """step(x, out=x) works as NumPy's ufuncs do: a Dense layer alone reads x while it writes y, so without a copy
    its later output blocks would read outputs already written (wrong by ~40 here before the fix)."""
    n = 40  # more than one 16-wide output block
    model = lstmrt.Model(
        [lstmrt.Dense(rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32))]
    )
    s, twin = model.stream(batch=batch), model.stream(batch=batch)
    shape = (n,) if batch is None else (batch, n)
    for _ in range(2):
        x = inputs(rng, *shape)
        expected = twin.step(x)
        if overlap == "same array":
            out = x.copy()
            xin = out
        else:
            buf = np.zeros(int(np.prod(shape)) + 8, np.float32)
            xin, out = buf[: x.size].reshape(shape), buf[8:].reshape(shape)
            xin[...] = x
        assert s.step(xin, out=out) is out
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("batch", [None, 3])
def test_run_writes_into_out(rng, batch):
    model = stacked_model(rng)
    s = model.stream(batch=batch)
    twin = s.copy()
    lead = () if batch is None else (batch,)
    buf = np.full(lead + (20, 3), np.nan, np.float32)
    for _ in range(3):
        X = inputs(rng, *lead, 20, 3)
        assert s.run(X, out=buf) is buf
        assert np.array_equal(buf, twin.run(X))
    empty = np.zeros(lead + (0, 3), np.float32)
    assert s.run(inputs(rng, *lead, 0, 3), out=empty) is empty
    with pytest.raises(ValueError, match=r"out has shape \(.*20, 3\), expected \(.*21, 3\)"):
        s.run(inputs(rng, *lead, 21, 3), out=buf)
    assert np.array_equal(s.run(X), twin.run(X)), "a refused out leaves the state as it was"


def test_run_with_out_allocates_no_output(rng):
    """A block-by-block loop (an audio effect) with out= allocates a few hundred bytes of Python objects per call,
    not the block's output (16 KB here)."""
    model = stacked_model(rng)
    s = model.stream()
    X, out = inputs(rng, 1365, 3), np.empty((1365, 3), np.float32)
    assert bytes_allocated_beyond_a_no_op(s.run, X, out, repeat=20) < out.nbytes // 4


def test_run_out_may_share_memory_with_x(rng):
    """As step: run(X, out=X) reads X before it is overwritten (a Dense layer alone would read its own outputs)."""
    n = 40
    model = lstmrt.Model(
        [lstmrt.Dense(rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32))]
    )
    s, twin = model.stream(), model.stream()
    X = inputs(rng, 7, n)
    expected = twin.run(X)
    assert s.run(X, out=X) is X
    np.testing.assert_array_equal(X, expected)


@pytest.mark.parametrize("which", ["bidirectional", "go_backwards"])
def test_bidirectional_model_cannot_stream(rng, which):
    if which == "bidirectional":
        model = lstmrt.Model([specs.bidirectional("lstm", rng, 3, 4)])
    else:
        model = lstmrt.Model([specs.gru(rng, 3, 4, go_backwards=True)])
    for batch in (None, 2):
        with pytest.raises(ValueError, match="bidirectional.*cannot be streamed.*predict"):
            model.stream(batch=batch)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_nan_in_nan_out(rng, kind):
    model = lstmrt.Model([specs.recurrent(kind, rng, 3, 5), specs.dense(rng, 5, 2)])
    s = model.stream(batch=2)
    x = inputs(rng, 2, 3)
    x[0, 1] = np.nan
    y = s.step(x)
    assert np.all(np.isnan(y[0])) and np.all(np.isfinite(y[1])), "NaN stays in its own sequence"
    y = s.run(inputs(rng, 2, 4, 3))
    assert np.all(np.isnan(y[0])) and np.all(np.isfinite(y[1])), "the NaN state persists until reset"
    s.reset()
    assert np.all(np.isfinite(s.run(inputs(rng, 2, 4, 3))))
    single = model.stream()
    assert np.all(np.isnan(single.step(np.full(3, np.nan, np.float32))))
