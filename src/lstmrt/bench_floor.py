"""This machine's floor for a one-row LSTM step, measured with lstmrt's own probes (the current kernel tier).

A step reads every weight once and does two FLOPs per weight, so it cannot beat max(weight bytes / the read
bandwidth of a buffer that size, FLOPs / the FMA peak); a step from Python also pays one call. The probes:
- bandwidth: a buffer of exactly the weights' size read over and over as one stream (C f32_sum, the widest
  SIMD loads, eight accumulators), so it sits in the same cache level as the weights would;
- FMA peak: an L1-resident GEMM tile (C f32_gemm);
- call: `stream.step(x, out)` of an LSTM with I=1, H=16 (the smallest on the fused path): the Python call and
  the per-step driver work every step pays, plus a few nanoseconds of kernel.
Each is the best of `rounds` timed batches: a floor is what the machine can do, not what it usually does.
"""

from __future__ import annotations

import numpy as np

from lstmrt.bench_timing import calibrate, time_calls


def step_weight_bytes(input_size: int, hidden_size: int) -> int:
    return 4 * 4 * hidden_size * (input_size + hidden_size)


def step_flops(input_size: int, hidden_size: int) -> int:
    return 2 * 4 * hidden_size * (input_size + hidden_size)


def _best_per_call(loop, rounds: int, min_time: float) -> float:
    """Seconds per call: calls batched to take min_time, best of `rounds` batches."""
    n = calibrate(loop, min_time, max_calls=1 << 24)
    return min(time_calls(loop, n) for _ in range(max(1, rounds))) / n


def measure(byte_sizes, *, rounds: int = 5, min_time: float = 0.02) -> dict:
    """Bandwidth (B/s) for each buffer size, the FMA peak (FLOP/s) and the call cost (s)."""
    import lstmrt
    from lstmrt import _native

    bandwidth = {}
    for size in sorted(set(byte_sizes)):
        probe = _native.Probe(size)
        bandwidth[size] = probe.stream_bytes / _best_per_call(probe.stream, rounds, min_time)
    probe = _native.Probe(64)
    peak_flops = probe.compute_flops / _best_per_call(probe.compute, rounds, min_time)

    tiny = lstmrt.Model([lstmrt.LSTM(np.zeros((64, 1), np.float32), np.zeros((64, 16), np.float32))])
    step = tiny.stream().step
    x, out = np.zeros(1, np.float32), np.empty(16, np.float32)

    def calls(n):
        for _ in range(n):
            step(x, out)

    call_s = _best_per_call(calls, rounds, min_time)
    return {"bandwidth": bandwidth, "peak_flops": peak_flops, "call_s": call_s}


def floor_us(machine: dict, input_size: int, hidden_size: int) -> dict:
    """The step floor on the measured machine, and the same plus one call, in µs."""
    size = step_weight_bytes(input_size, hidden_size)
    memory_us = size / machine["bandwidth"][size] * 1e6
    compute_us = step_flops(input_size, hidden_size) / machine["peak_flops"] * 1e6
    floor = max(memory_us, compute_us)
    return {
        "floor_here_us": floor,
        "floor_here_plus_call_us": floor + machine["call_s"] * 1e6,
        "bandwidth_here": machine["bandwidth"][size],
    }
