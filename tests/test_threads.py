"""Threads: a Model is immutable and shareable, a Stream belongs to one thread at a time.

predict and Stream.run release the GIL (and Stream.step does for long steps: batch x weight bytes >= 1 MB, or
inputs of >= 4096 floats), so these tests
really run the C code concurrently. Results must be bitwise those of a serial run: nothing in the runtime may
depend on another thread's calls. One stream used from two threads at once must either work or raise
RuntimeError (the binding's busy flag), never corrupt its state or crash."""

import sys
import threading
import time

import numpy as np
import pytest
import specs

import lstmrt

# Counts recorded by scripts/reliability_report.py in docs/reliability.md.
N_THREADS = 4  # threads sharing one model
ROUNDS = 3  # times each thread repeats its whole workload
SHARED_STREAM_CALLS = 24  # calls per thread on the one shared stream
MAX_ATTEMPTS = 20  # tries per call there before giving it up
BATCH_RELEASE = 256  # a batched step of 256 x 16 floats releases the GIL
INPUT = 16


def model(rng):
    return lstmrt.Model(
        [specs.lstm(rng, INPUT, 32), specs.gru(rng, 32, 24, reset_after=False), specs.dense(rng, 24, 5, "softmax")]
    )


def inputs(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def same(a, b):
    """Bitwise equality (NaN-safe, -0 != +0): the same computation must give the same bits."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def states_same(s1, s2):
    return len(s1) == len(s2) and all(
        len(a) == len(b) and all(same(x, y) for x, y in zip(a, b)) for a, b in zip(s1, s2)
    )


@pytest.fixture
def fast_switching():
    """Switch threads every 50 us (default 5 ms) so calls that hold the GIL interleave as much as possible."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(old)


def run_threads(target, n):
    """Run target(i) in n threads started together; re-raise the first exception of any thread."""
    barrier = threading.Barrier(n)
    errors = []

    def body(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def workload(m, data):
    """One thread's calls: predict (with and without lengths), a stream stepped and run in chunks, a batched
    stream stepped with inputs large enough to release the GIL. Returns every result in order."""
    X, lengths, steps, big = data
    out = [m.predict(X), m.predict(X, lengths=lengths)]
    s = m.stream()
    out += [s.run(X[0, :7]), s.run(X[0, 7:90]), s.run(X[0, 90:])]
    out += [s.step(x) for x in X[1, :20]]
    out.append(s.state)
    c = s.copy()
    out += [c.run(X[2]), s.run(X[2])]
    s.reset()
    out.append(s.run(X[3]))
    b = m.stream(batch=BATCH_RELEASE)
    out += [b.step(x) for x in steps]
    out += [b.run(big), b.state]
    return out


def test_shared_model_gives_serial_results(rng, fast_switching):
    m = model(rng)
    data = []
    for _ in range(N_THREADS):
        X = inputs(rng, 4, 150, INPUT)
        lengths = rng.integers(0, 151, 4)
        data.append((X, lengths, inputs(rng, 6, BATCH_RELEASE, INPUT), inputs(rng, BATCH_RELEASE, 9, INPUT)))
    expected = [workload(m, d) for d in data]
    results = [[None] * ROUNDS for _ in range(N_THREADS)]

    def target(i):
        for r in range(ROUNDS):
            results[i][r] = workload(m, data[i])

    run_threads(target, N_THREADS)
    for i in range(N_THREADS):
        for r in range(ROUNDS):
            got, want = results[i][r], expected[i]
            assert len(got) == len(want)
            for k, (g, w) in enumerate(zip(got, want)):
                ok = states_same(g, w) if isinstance(w, list) else same(g, w)
                assert ok, f"thread {i}, round {r}: result {k} differs from the serial run"


def test_models_created_and_freed_while_others_run(rng, fast_switching):
    """Creating and dropping models and streams in some threads while others run long calls."""
    m = model(rng)
    X = inputs(rng, 8, 200, INPUT)
    want = m.predict(X)
    layers = model(rng).layers

    def target(i):
        for _ in range(10):
            if i % 2:
                assert same(m.predict(X), want)
            else:
                other = lstmrt.Model(layers)
                s = other.stream(batch=3)
                s.run(X[:3, :50])
                del s, other

    run_threads(target, N_THREADS)


def call(stream, op, arg):
    if op == "run":
        return stream.run(arg)
    if op == "step":
        return stream.step(arg)
    stream.reset()
    return None


def replay(m, calls_a, calls_b, final_state):
    """Find an interleaving of the two threads' successful calls (each thread's own order kept) whose serial
    replay gives every recorded output bitwise and ends in final_state. Successful calls never overlap (the
    busy flag), so the execution order was such an interleaving; depth-first search over the merge points,
    on copies of the stream, finds it (distinct random inputs leave almost no ambiguity)."""

    def dfs(i, j, s):
        if i == len(calls_a) and j == len(calls_b):
            return states_same(s.state, final_state)
        for seq, k, di, dj in ((calls_a, i, 1, 0), (calls_b, j, 0, 1)):
            if k < len(seq):
                op, arg, out = seq[k]
                trial = s.copy()
                got = call(trial, op, arg)
                if (out is None or same(got, out)) and dfs(i + di, j + dj, trial):
                    return True
        return False

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * (len(calls_a) + len(calls_b)) + 100))
    try:
        return dfs(0, 0, m.stream(batch=BATCH_RELEASE))
    finally:
        sys.setrecursionlimit(limit)


def test_one_stream_two_threads_never_corrupts(rng, fast_switching):
    m = model(rng)
    s = m.stream(batch=BATCH_RELEASE)
    plans = []
    for _ in range(2):
        plan = []
        for k in range(SHARED_STREAM_CALLS):
            r = rng.random()
            if r < 0.45:
                plan.append(("run", inputs(rng, BATCH_RELEASE, int(rng.integers(1, 12)), INPUT)))
            elif r < 0.9 or k == 0:
                plan.append(("step", inputs(rng, BATCH_RELEASE, INPUT)))
            else:
                plan.append(("reset", None))
        plans.append(plan)
    done = [[], []]
    refused = [0, 0]

    def target(i):
        # A refused call is retried a few times after a short sleep, so both threads get calls through and the
        # successful calls of the two threads interleave (a long run of one thread would refuse them all).
        for op, arg in plans[i]:
            for _ in range(MAX_ATTEMPTS):
                try:
                    out = call(s, op, arg)
                except RuntimeError as exc:
                    assert "in use by another thread" in str(exc)
                    refused[i] += 1
                    time.sleep(0.001)
                else:
                    done[i].append((op, arg, out))
                    break

    run_threads(target, 2)
    # Whatever succeeded, in some order, is exactly what the stream went through.
    assert len(done[0]) + len(done[1]) <= 2 * SHARED_STREAM_CALLS
    assert replay(m, done[0], done[1], s.state), "stream state / outputs match no serial order of the calls"
    # And the stream is still fully usable afterwards.
    x = inputs(rng, BATCH_RELEASE, 5, INPUT)
    fresh = m.stream(batch=BATCH_RELEASE)
    fresh.state = s.state
    assert same(s.run(x), fresh.run(x))


@pytest.mark.parametrize(
    "batch,form",
    [(None, "array"), (64, "array"), (None, "ids"), (None, "sample")],
    ids=["single", "batch64", "integer-token-ids", "float-sample"],
)
def test_long_steps_release_the_gil(rng, batch, form):
    """A step over 1 MB or more of weights (x batch) releases the GIL, like predict and run: the Cython fast path
    held it for every step, whatever its size. Seen from another thread: while one thread steps, a call on the
    same stream finds it busy, which it can only do while the step's C code runs without the GIL. A token model's
    integer ids and a one-feature model's float sample take fast paths of their own, which must do the same."""
    if form == "ids":
        m = lstmrt.Model([lstmrt.Embedding(rng.standard_normal((7, 64))), specs.lstm(rng, 64, 256)])
        x = np.array([3])
    elif form == "sample":
        m = lstmrt.Model([specs.lstm(rng, 1, 512)])  # 4.2 MB of weights
        x = 0.5
    else:
        m = lstmrt.Model([specs.lstm(rng, 64, 256)])  # 1.25 MB of weights: ~10 us a step
        x = inputs(rng, *((64,) if batch is None else (batch, 64)))
    s = m.stream(batch=batch)
    stop, seen = threading.Event(), []

    def stepper():
        while not stop.is_set():
            try:
                s.step(x)
            except RuntimeError:  # the main thread's call held the stream: the same effect, seen from here
                pass

    t = threading.Thread(target=stepper)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            try:
                s.step(x)
            except RuntimeError as exc:
                assert "in use by another thread" in str(exc)
                seen.append(exc)
    finally:
        stop.set()
        t.join()
    assert seen, "no step ever ran without the GIL"


def test_copy_of_busy_stream_refused_or_consistent(rng, fast_switching):
    """Stream.copy() while another thread runs the stream: a RuntimeError, or a copy of the state between two
    whole calls, never of a half-run one."""
    m = model(rng)
    s = m.stream(batch=BATCH_RELEASE)
    chunks = [inputs(rng, BATCH_RELEASE, 8, INPUT) for _ in range(6)]
    ran, copies = [], []

    def target(i):
        if i == 0:
            for x in chunks:
                try:
                    s.run(x)
                    ran.append(x)
                except RuntimeError as exc:
                    assert "in use by another thread" in str(exc)
        else:
            for _ in range(200):
                try:
                    copies.append(s.copy().state)
                except RuntimeError as exc:
                    assert "in use by another thread" in str(exc)

    run_threads(target, 2)
    serial = m.stream(batch=BATCH_RELEASE)
    valid = [serial.state]
    for x in ran:
        serial.run(x)
        valid.append(serial.state)
    assert states_same(s.state, valid[-1])
    for st in copies:
        assert any(states_same(st, v) for v in valid), "a copy holds a state no whole call produced"


def test_error_messages_are_per_thread(rng, fast_switching):
    """C error messages are thread-local: concurrent failing calls (GIL released) each report their own. The
    binding's calls are used: Stream.run and Model.predict name a bad token from the caller's array instead."""
    m = lstmrt.Model([lstmrt.Embedding(rng.standard_normal((7, 4))), specs.gru(rng, 4, 5)])
    positions = [3, 11, 29, 47]

    def target(i):
        s = m.stream()
        tokens = np.zeros((60, 1), np.float32)
        tokens[positions[i]] = 99.0  # out of range: found by the C check, with the GIL released
        for _ in range(50):
            with pytest.raises(ValueError, match=f"row 0, step {positions[i]} is outside"):
                s._native.run(tokens, 60)
            with pytest.raises(ValueError, match=f"row 0, step {positions[i]} is outside"):
                m._native.predict(tokens[None])
        assert states_same(s.state, m.stream().state)  # refused calls left the zero state alone

    run_threads(target, len(positions))
