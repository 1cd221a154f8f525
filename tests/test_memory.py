"""Memory: thousands of create / use / free cycles leave the resident set flat.

A leak in the C runtime or the binding (a model's packed weights, a stream's block, predict's scratch, the
arrays kept while a model is built, an exception path) grows RSS by at least its size per cycle: over
CYCLES cycles even a few hundred bytes stand out above RSS_SLACK. Each measurement follows a warm-up so that
allocator pools, caches and lazily imported modules are already in place.

WORKLOADS is also used by scripts/reliability_report.py, which records the measured growth."""

import gc
import os

import numpy as np
import pytest
import specs

import lstmrt
from lstmrt import _native

# Counts recorded by scripts/reliability_report.py in docs/reliability.md.
CYCLES = 10_000  # per workload
WARMUP = 500
STREAM_STEPS = 5  # single steps per stream cycle
RSS_SLACK = 2 << 20  # bytes: allocator noise; a 300-byte-per-cycle leak over 10 000 cycles is 3 MB

STATM = "/proc/self/statm"
pytestmark = pytest.mark.skipif(not os.path.exists(STATM), reason="needs /proc/self/statm (Linux)")


def rss_bytes():
    with open(STATM) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def growth(cycle, n=CYCLES):
    """RSS after n cycles minus RSS after the warm-up."""
    for i in range(WARMUP):
        cycle(i)
    gc.collect()
    before = rss_bytes()
    for i in range(n):
        cycle(i)
    gc.collect()
    return rss_bytes() - before


def small_layers(rng):
    return [specs.lstm(rng, 4, 8, proj_size=3), specs.gru(rng, 3, 5, reset_after=False), specs.dense(rng, 5, 2)]


def model_cycle(rng):
    """Model create / free (weights packed, then released)."""
    layers = small_layers(rng)

    def cycle(i):
        m = lstmrt.Model(layers)
        del m

    return cycle


def stream_cycle(rng):
    """Stream create, steps (also into out=), copy, state get/set, reset, a batched stream's run, free."""
    m = lstmrt.Model(small_layers(rng))
    xs = rng.standard_normal((STREAM_STEPS, 4)).astype(np.float32)
    xb = rng.standard_normal((3, 7, 4)).astype(np.float32)
    out = np.empty(2, np.float32)

    def cycle(i):
        s = m.stream()
        for x in xs:
            s.step(x)
        s.step(xs[0], out=out)
        c = s.copy()
        c.state = s.state
        c.reset()
        b = m.stream(batch=3)
        b.run(xb)
        del s, c, b

    return cycle


def predict_cycle(rng):
    """predict allocates its scratch per call: the bidirectional (whole-sequence) and causal (blocked) paths,
    with lengths and with a mask."""
    bi = lstmrt.Model([specs.bidirectional("gru", rng, 4, 6, "sum"), specs.dense(rng, 6, 2)])
    causal = lstmrt.Model(small_layers(rng))
    X = rng.standard_normal((3, 11, 4)).astype(np.float32)
    lengths = np.array([11, 4, 0])
    mask = rng.random((3, 11)) > 0.2

    def cycle(i):
        bi.predict(X, lengths=lengths)
        causal.predict(X, mask=mask)

    return cycle


def failing_cycle(rng):
    """Exception paths: a model the C validation refuses (after the binding kept its weight arrays), a stream
    step with a bad token id, a bidirectional model's stream refused by Python and by C."""
    layers = small_layers(rng)
    bad = [spec._desc(spec.input_size) for spec in layers]
    bad[1] = dict(bad[1], input_size=bad[1]["input_size"] + 1)  # chain mismatch: only C sees it
    tokens = lstmrt.Model([lstmrt.Embedding(rng.standard_normal((5, 4))), specs.gru(rng, 4, 3)])
    s = tokens.stream()
    bad_token = np.array([9.0], np.float32)
    bi = lstmrt.Model([specs.bidirectional("rnn", rng, 2, 3)])

    def cycle(i):
        with pytest.raises(ValueError, match="input_size"):
            _native.Model(bad)
        with pytest.raises(ValueError, match="token id"):
            s.step(bad_token)
        with pytest.raises(ValueError, match="bidirectional"):
            bi.stream()
        with pytest.raises(TypeError, match="bidirectional"):  # the C refusal, below the Python check
            _native.Stream(bi._native, 1, False)

    return cycle


WORKLOADS = {"model": model_cycle, "stream": stream_cycle, "predict": predict_cycle, "failing": failing_cycle}


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_cycles_leave_rss_flat(workload, rng):
    grown = growth(WORKLOADS[workload](rng))
    assert grown <= RSS_SLACK, f"{workload}: RSS grew by {grown / 1024:.0f} KiB over {CYCLES} cycles"
