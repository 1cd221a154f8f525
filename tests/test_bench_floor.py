"""This machine's floor (lstmrt.bench_floor) and the native probes behind it. No timing is asserted."""

import pytest

from lstmrt import _native, bench_floor


def test_floor_is_the_slower_of_reading_the_weights_and_doing_the_flops():
    size = bench_floor.step_weight_bytes(8, 32)
    assert size == 4 * 4 * 32 * 40 and bench_floor.step_flops(8, 32) == 2 * 4 * 32 * 40
    memory_bound = {"bandwidth": {size: 1e9}, "peak_flops": 1e15, "call_s": 1e-7}
    floor = bench_floor.floor_us(memory_bound, 8, 32)
    assert floor["floor_here_us"] == pytest.approx(size / 1e9 * 1e6)
    assert floor["floor_here_plus_call_us"] == pytest.approx(floor["floor_here_us"] + 0.1)
    compute_bound = {"bandwidth": {size: 1e15}, "peak_flops": 1e9, "call_s": 0.0}
    assert bench_floor.floor_us(compute_bound, 8, 32)["floor_here_us"] == pytest.approx(10240 / 1e9 * 1e6)


def test_measure_gives_one_bandwidth_per_size():
    machine = bench_floor.measure([4096, 100_000, 4096], rounds=1, min_time=1e-4)
    assert set(machine["bandwidth"]) == {4096, 100_000}
    assert all(bw > 0 for bw in machine["bandwidth"].values())
    assert machine["peak_flops"] > 0 and machine["call_s"] > 0


def test_probe_rounds_to_cache_lines_and_refuses_bad_arguments():
    probe = _native.Probe(1000)
    assert probe.stream_bytes == 960 and probe.compute_flops > 0
    probe.stream(2)
    probe.compute(0)
    with pytest.raises(ValueError, match="passes must be >= 0"):
        probe.stream(-1)
    with pytest.raises(ValueError, match="stream_bytes 63 is outside"):
        _native.Probe(63)
    with pytest.raises(ValueError, match="outside"):
        _native.Probe(1 << 40)
