"""Timing a loop of calls, shared by the benchmark (bench_compare, bench_workers) and the floor probes
(bench_floor)."""

from __future__ import annotations

import gc
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


def interleave(cases, rounds: int, run) -> None:
    """`rounds` rounds, each timing every case once (run(case): seconds for case.calls calls), in rotated order so
    that no case always runs first; appends seconds per unit (step or call) to case.samples. The garbage collector
    is off meanwhile: a collection inside one timed batch would skew that column only."""
    if not cases:
        return
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(cases)
            for case in cases[k:] + cases[:k]:
                case.samples.append(run(case) / (case.calls * case.steps_per_call))
    finally:
        if gc_was_enabled:
            gc.enable()
