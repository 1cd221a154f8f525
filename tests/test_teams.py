"""Teams: the steps of one sequence shared between threads, each computing a slice of the hidden units
(Model.predict(threads=) at batch 1, Model.stream(threads=)). Bit-identical to one thread, and within the
contract of real torch; only layers big enough to gain take a team; a forked child runs without it."""

import concurrent.futures
import copy
import gc
import multiprocessing
import time

import numpy as np
import pytest

import lstmrt
from conftest import assert_close

torch = pytest.importorskip("torch")


def _pair(cls, n_in, H, **kwargs):
    torch.manual_seed(n_in * 1000 + H)
    net = cls(n_in, H, batch_first=True, **kwargs).eval()
    return net, lstmrt.from_torch(net)


def _torch_predict(net, X):
    """torch in float64 on one sequence X (T, I) -> (T, D)."""
    with torch.no_grad():
        return copy.deepcopy(net).double()(torch.from_numpy(X.astype(np.float64))[None])[0][0].numpy()


def _run_forked(child):
    """Runs child() in a forked process (which inherits the parent's models, streams and teams, but none of their
    worker threads) and asserts that it finished."""
    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(120)
    if proc.exitcode is None:
        proc.kill()
    assert proc.exitcode == 0, "the forked child hung or failed"


CASES = [
    ("lstm 2 layers H=64", torch.nn.LSTM, 16, 64, {"num_layers": 2}),
    ("lstm H=128", torch.nn.LSTM, 32, 128, {}),
    ("gru H=128", torch.nn.GRU, 32, 128, {}),
    ("bidirectional lstm H=64", torch.nn.LSTM, 8, 64, {"bidirectional": True}),
]


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("name,cls,n_in,H,kwargs", CASES, ids=[c[0] for c in CASES])
def test_one_sequence_shared_by_threads_is_bit_identical(rng, name, cls, n_in, H, kwargs, threads):
    net, model = _pair(cls, n_in, H, **kwargs)
    X = rng.standard_normal((300, n_in)).astype(np.float32)
    alone = model.predict(X)
    assert np.array_equal(model.predict(X, threads=threads), alone)
    assert np.array_equal(model.predict(X[None], threads=threads)[0], alone)
    assert_close(alone, _torch_predict(net, X), atol=1e-5, what=name)


def test_one_sequence_with_lengths_and_mask(rng):
    _, model = _pair(torch.nn.LSTM, 16, 64, num_layers=2)
    X = rng.standard_normal((1, 200, 16)).astype(np.float32)
    mask = rng.random((1, 200)) > 0.25
    for kwargs in ({"lengths": [150]}, {"mask": mask}, {"lengths": [77], "mask": mask}):
        assert np.array_equal(model.predict(X, **kwargs, threads=2), model.predict(X, **kwargs)), kwargs


def test_stream_steps_shared_by_threads(rng):
    net, model = _pair(torch.nn.LSTM, 32, 128)
    X = rng.standard_normal((120, 32)).astype(np.float32)
    alone, shared = model.stream(), model.stream(threads=2)
    assert (alone.threads, shared.threads) == (1, 2)
    assert "threads=2" in repr(shared)
    steps_alone = np.stack([alone.step(x) for x in X[:60]])
    out = np.empty(128, np.float32)
    steps_shared = np.stack([shared.step(x, out).copy() for x in X[:60]])
    assert np.array_equal(steps_shared, steps_alone)
    assert_close(steps_alone, _torch_predict(net, X[:60]), atol=1e-5)
    twin = shared.copy()
    assert twin.threads == 2
    rest = alone.run(X[60:])
    assert np.array_equal(twin.run(X[60:]), rest)
    assert np.array_equal(shared.run(X[60:]), rest)
    assert_close(np.concatenate([steps_alone, rest]), _torch_predict(net, X), atol=1e-5)


def test_batch_rows_shared_by_threads(rng):
    """Up to 15 rows (fewer than predict's slices of 8) and batched streams: members take rows, bit-identical."""
    net, model = _pair(torch.nn.GRU, 16, 64)
    X = rng.standard_normal((6, 300, 16)).astype(np.float32)
    alone = model.predict(X)
    assert np.array_equal(model.predict(X, threads=2), alone)
    assert np.array_equal(model.predict(X, threads=3), alone)
    shared, single = model.stream(batch=6, threads=2), model.stream(batch=6)
    assert shared.threads == 2
    ys = np.stack([shared.step(X[:, t]) for t in range(50)], axis=1)
    assert np.array_equal(ys, np.stack([single.step(X[:, t]) for t in range(50)], axis=1))
    assert np.array_equal(ys, alone[:, :50])
    assert_close(alone[0], _torch_predict(net, X[0]), atol=1e-5)


def test_only_layers_that_gain_take_a_team(rng):
    _, small = _pair(torch.nn.LSTM, 8, 32)  # 16 KB of W_hh: a barrier per step costs more than it saves
    assert small.stream(threads=2).threads == 1
    _, big = _pair(torch.nn.LSTM, 16, 64)
    assert big.stream(threads=4).threads == 4
    assert big.stream(batch=1, threads=2).threads == 2  # the hidden units of one row
    assert big.stream(batch=2, threads=2).threads == 1  # rows are shared from 4 (two each)
    assert big.stream(batch=4, threads=2).threads == 2
    assert small.stream(batch=3, threads=2).threads == 1  # and from 64 KB of weights read per step
    assert small.stream(batch=4, threads=2).threads == 2


@pytest.mark.parametrize("H, kwargs, splits", [(112, {}, True), (100, {}, False), (128, {"proj_size": 64}, False)])
def test_hidden_units_split_only_in_fused_layers(rng, H, kwargs, splits):
    """The split is in whole 16-unit blocks of the fused kernels (README, Model.stream): H = 100 or a projection
    leaves a single stream on one thread, and a batch of 4 shares its rows all the same."""
    _, model = _pair(torch.nn.LSTM, 64, H, **kwargs)
    assert model.stream(threads=2).threads == (2 if splits else 1)
    assert model.stream(batch=4, threads=2).threads == 2


@pytest.mark.parametrize(
    "bad,error",
    [
        (0, ValueError),
        (-1, ValueError),
        (65, ValueError),
        (1.5, TypeError),
        (True, TypeError),
        ("2", TypeError),
        (None, TypeError),
    ],
)
def test_stream_threads_must_be_an_integer_in_range(rng, bad, error):
    _, model = _pair(torch.nn.LSTM, 16, 64)
    with pytest.raises(error, match="threads must be an integer in"):
        model.stream(threads=bad)


def test_forked_child_steps_without_the_workers(rng):
    """A fork copies the stream but not its worker threads: the child must step alone, not wait for them."""
    _, model = _pair(torch.nn.GRU, 32, 128)
    X = rng.standard_normal((20, 32)).astype(np.float32)
    holder = [model.stream(threads=2)]
    for x in X[:10]:
        holder[0].step(x)
    queue = multiprocessing.get_context("fork").Queue()

    def child():
        inherited = holder.pop()
        ys = np.stack([inherited.step(x) for x in X[10:]])
        twin = inherited.copy()  # a copy made in the child starts workers of its own
        queue.put((ys, twin.threads, twin.step(X[0])))
        del inherited, twin  # frees the inherited team without joining workers that are not there
        gc.collect()
        queue.put("freed")

    _run_forked(child)
    stream = holder[0]
    ys, twin_threads, twin_y = queue.get(timeout=10)
    want = np.stack([stream.step(x) for x in X[10:]])
    assert np.array_equal(ys, want)
    assert twin_threads == 2
    assert np.array_equal(twin_y, stream.copy().step(X[0]))
    assert queue.get(timeout=10) == "freed"


def test_stream_steps_after_pauses_are_bit_identical(rng):
    """Workers sleep ~50 us after the last call; a step after a pause runs alone rather than wait ~100 us for them,
    steps that follow in quick succession wake them. Whichever way a step runs, its result is the same."""
    _, model = _pair(torch.nn.LSTM, 32, 128)
    X = rng.standard_normal((60, 32)).astype(np.float32)
    shared = model.stream(threads=2)
    ys = []
    for t, x in enumerate(X):
        if t % 10 == 0:
            time.sleep(0.003)
        ys.append(shared.step(x))
    alone = model.stream()
    assert np.array_equal(np.stack(ys), np.stack([alone.step(x) for x in X]))


def test_predict_from_several_threads_at_once(rng):
    """The model keeps one team for predict; a call that finds it in use by another thread starts its own (for a
    long call) or runs alone (a short one)."""
    _, model = _pair(torch.nn.LSTM, 32, 128)
    X = rng.standard_normal((400, 32)).astype(np.float32)
    want_long, want_short = model.predict(X), model.predict(X[:20])

    def calls(_):
        return [
            (
                np.array_equal(model.predict(X, threads=2), want_long),
                np.array_equal(model.predict(X[:20], threads=2), want_short),
            )
            for _ in range(5)
        ]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = [r for rs in pool.map(calls, range(3)) for r in rs]
    assert all(long and short for long, short in results)


def test_forked_child_predicts_without_the_kept_workers(rng):
    _, model = _pair(torch.nn.GRU, 32, 128)
    X = rng.standard_normal((300, 32)).astype(np.float32)
    want = model.predict(X, threads=2)  # starts the model's team in the parent
    queue = multiprocessing.get_context("fork").Queue()

    def child():
        # the child's own team replaces the inherited one (a bool: a large array would fill the queue's pipe)
        queue.put(bool(np.array_equal(model.predict(X, threads=2), want)))

    _run_forked(child)
    assert queue.get(timeout=10) is True
    assert np.array_equal(model.predict(X, threads=2), want)
