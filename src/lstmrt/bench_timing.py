"""Timing a loop of calls, shared by the benchmark (bench_compare) and the floor probes (bench_floor)."""

from __future__ import annotations

import time

MAX_CALLS = 1 << 20


def time_calls(loop, n: int) -> float:
    """Seconds for loop(n): n calls, one timed batch."""
    t0 = time.perf_counter_ns()
    loop(n)
    return (time.perf_counter_ns() - t0) * 1e-9


def calibrate(loop, min_time: float, max_calls: int = MAX_CALLS) -> int:
    """How many calls make a batch of at least min_time seconds (after one warm-up call: the first call allocates,
    builds caches, picks algorithms)."""
    loop(1)
    n = 1
    while True:
        t = time_calls(loop, n)
        if t >= min_time or n >= max_calls:
            return n
        n = min(max_calls, max(2 * n, int(n * 1.2 * min_time / max(t, 1e-9))))
