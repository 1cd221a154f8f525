"""Compare lstmrt with PyTorch, ONNX Runtime and TFLite on one LSTM layer.

Used by `lstmrt bench` and `bench/compare.py`. Every implementation (bench_peers) gets the same weights
(bench_spec) and the same number of threads, and is checked against lstmrt's output before it is timed; lstmrt
itself is checked against a float64 NumPy reference. Timing is interleaved: each round runs every implementation
once (a batch of calls sized to take `min_time`), in rotated order, so that a burst of load from other processes
hits all columns alike; the reported number is the median over rounds. With one thread everything runs in this
process; with more, each framework runs in a worker process of its own (bench_workers), so that no case shares the
cores with another framework's spinning thread pool. bench_report reads the result against the issue's targets
and writes it out.

Nothing heavy is imported at module level: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

from lstmrt import bench_floor, bench_peers, bench_workers
from lstmrt.bench_report import format_report, ratios, write_outputs
from lstmrt.bench_spec import (
    CACHE_LEVELS,
    CheckError,
    COLUMNS,
    DEFAULT_SIZES,
    FRAMEWORKS,
    MIN_TIME,
    PEAK_FLOPS,
    QUICK_MIN_TIME,
    QUICK_ROUNDS,
    REFERENCE_ATOL,
    ROUNDS,
    SEQ_LEN,
    BATCH,
    BATCH_SEQ_LEN,
    STREAM_BATCH,
    Unavailable,
    assert_close,
    floor_us,
    make_data,
    make_weights,
    parse_sizes,
    reference_lstm,
)
from lstmrt.bench_timing import calibrate, interleave, time_calls

ISOLATION = {False: "one process", True: "process per framework"}


# --- timing -----------------------------------------------------------------------------------------------
def _measure(cases, rounds, min_time):
    for case in cases:
        case.calls = calibrate(case.loop, min_time)
    interleave(cases, rounds, lambda case: time_calls(case.loop, case.calls))


def _summary(samples):
    us = sorted(s * 1e6 for s in samples)
    q = statistics.quantiles(us, n=4) if len(us) > 1 else [us[0]] * 3
    return {
        "median_us": statistics.median(us),
        "min_us": us[0],
        "q1_us": q[0],
        "q3_us": q[2],
        "rounds_us": [s * 1e6 for s in samples],
    }


# --- one size ---------------------------------------------------------------------------------------------
def bench_size(
    input_size,
    hidden_size,
    *,
    frameworks,
    rounds,
    min_time,
    seed=0,
    seq_len=SEQ_LEN,
    log=None,
    machine=None,
    threads=1,
    workers=None,
):
    """One size: lstmrt checked against the float64 reference, every implementation against lstmrt, then timed.
    workers: a bench_workers.Workers for these frameworks, to run each in its own process; None: this process."""
    w = make_weights(input_size, hidden_size, seed)
    d = make_data(input_size, seed, seq_len)
    model = bench_peers.lstmrt_model(w)
    expected = {
        "step": model.predict(d.x_check),
        "seq": model.predict(d.x_seq),
        "batch": model.predict(d.x_batch),
        "stream_batch": model.predict(d.x_stream_batch),
    }
    # lstmrt against the float64 oracle, then every other implementation against lstmrt
    for what, X in (("step", d.x_check), ("seq", d.x_seq), ("batch", d.x_batch), ("stream_batch", d.x_stream_batch)):
        assert_close(
            expected[what],
            reference_lstm(X, w),
            REFERENCE_ATOL,
            f"lstmrt predict ({what}) vs float64 reference at I={input_size} H={hidden_size}",
        )

    results, selected = {}, ("lstmrt",) + tuple(frameworks)

    def unavailable(fw, reason):
        if log:
            log(f"  {fw}: n/a ({reason})")
        results.update(
            {key: {"status": "n/a", "reason": reason} for key, (owner, _, _) in COLUMNS.items() if owner == fw}
        )

    if workers is not None:
        cases, missing = workers.measure_size(
            input_size, hidden_size, seed=seed, seq_len=seq_len, expected=expected, rounds=rounds, min_time=min_time
        )
        for fw, reason in missing.items():
            unavailable(fw, reason)
    else:
        cases = []
        for fw in selected:
            try:
                cases += bench_peers.build_checked(fw, w, d, threads, expected, model=model)
            except Unavailable as exc:
                unavailable(fw, str(exc))
        _measure(cases, rounds, min_time)
    for key, (owner, _, _) in COLUMNS.items():
        if owner not in selected:
            results.setdefault(key, {"status": "n/a", "reason": "not selected"})
    for case in cases:
        results[case.key] = {
            "status": "ok",
            "unit": COLUMNS[case.key][2],
            **_summary(case.samples),
            "calls_per_round": case.calls,
        }
    entry = {
        "input_size": input_size,
        "hidden_size": hidden_size,
        **floor_us(input_size, hidden_size),
        **(bench_floor.floor_us(machine, input_size, hidden_size) if machine else {}),
        "results": results,
    }
    entry["ratios"] = ratios(entry)
    return entry


# --- the whole run ----------------------------------------------------------------------------------------
def run_comparison(
    sizes=DEFAULT_SIZES,
    *,
    rounds=None,
    quick=False,
    frameworks=FRAMEWORKS,
    isa=None,
    min_time=None,
    seed=0,
    log=None,
    threads=1,
) -> dict:
    """Benchmark every size; returns the report (what write_outputs saves as JSON). threads: what every
    implementation may use (torch.set_num_threads, ORT intra-op threads, the TFLite interpreter's, lstmrt's
    predict/stream threads=); this machine's one-core floor is measured only for threads=1. With threads > 1 each
    framework runs in a worker process (bench_workers, started with "spawn": a script calling this needs the usual
    `if __name__ == "__main__":` guard)."""
    previous_isa = os.environ.get("LSTMRT_ISA")
    if isa:
        # read once, at the first kernel lookup: this works if nothing in the process has run lstmrt yet
        os.environ["LSTMRT_ISA"] = isa
    try:
        import lstmrt

        tier = lstmrt.kernel_tier()  # the first lookup, if nothing ran before: fixes the tier
    finally:
        if isa:  # the tier is fixed now; leave the environment as we found it
            if previous_isa is None:
                del os.environ["LSTMRT_ISA"]
            else:
                os.environ["LSTMRT_ISA"] = previous_isa

    rounds = rounds or (QUICK_ROUNDS if quick else ROUNDS)
    min_time = min_time or (QUICK_MIN_TIME if quick else MIN_TIME)
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        raise ValueError(f"unknown framework(s) {sorted(unknown)}; choose from {', '.join(FRAMEWORKS)}")
    notes = []
    if isa and tier != isa:
        notes.append(
            f"requested kernel tier {isa!r} but running {tier!r} (LSTMRT_ISA only lowers the tier, and "
            "is read once per process)"
        )
    if threads < 1:
        raise ValueError("threads must be at least 1")
    isolated = threads > 1  # every thread pool in its own process (bench_workers)
    torch_threads = bench_peers.set_torch_threads(threads) if "torch" in frameworks and not isolated else None
    load_before = _loadavg()
    if log and threads == 1:
        log("this machine's floor (bandwidth and FMA probes) ...")
    machine = (
        None
        if threads > 1
        else bench_floor.measure(
            [bench_floor.step_weight_bytes(i, h) for i, h in sizes], rounds=rounds, min_time=min_time
        )
    )
    entries = []
    try:
        with (
            bench_workers.Workers(("lstmrt",) + tuple(frameworks), threads, tier)
            if isolated
            else contextlib.nullcontext()
        ) as workers:
            for input_size, hidden_size in sizes:
                if log:
                    log(f"I={input_size} H={hidden_size} ...")
                entries.append(
                    bench_size(
                        input_size,
                        hidden_size,
                        frameworks=frameworks,
                        rounds=rounds,
                        min_time=min_time,
                        seed=seed,
                        log=log,
                        machine=machine,
                        threads=threads,
                        workers=workers,
                    )
                )
    finally:
        if torch_threads is not None:
            sys.modules["torch"].set_num_threads(torch_threads)
    versions = bench_peers.framework_versions()
    if workers is not None:
        versions = {name: v or workers.versions.get(name) for name, v in versions.items()}
    return {
        "meta": {
            "lstmrt": lstmrt.__version__,
            "kernel_tier": tier,
            "cpu_features": lstmrt.cpu_features(),
            "requested_isa": isa,
            "frameworks": versions,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu": _cpu_name(),
            "threads": threads,
            "isolation": ISOLATION[isolated],
            "settle_ms": workers.settle_summary() if workers is not None else None,
            "rounds": rounds,
            "min_time_s": min_time,
            "quick": bool(quick),
            "seed": seed,
            "seq_len": SEQ_LEN,
            "batch": BATCH,
            "batch_seq_len": BATCH_SEQ_LEN,
            "stream_batch": STREAM_BATCH,
            "loadavg_before": load_before,
            "loadavg_after": _loadavg(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine_floor": machine
            and {
                "peak_flops": machine["peak_flops"],
                "call_us": machine["call_s"] * 1e6,
                "bandwidth": {str(b): bw for b, bw in machine["bandwidth"].items()},
            },
            "floor_model": {
                "peak_flops": PEAK_FLOPS,
                "cache_levels": [[lv[0] if lv[0] != math.inf else None, lv[1], lv[2]] for lv in CACHE_LEVELS],
            },
            "notes": notes,
        },
        "sizes": entries,
    }


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# --- command line -----------------------------------------------------------------------------------------
def add_arguments(parser):
    parser.add_argument(
        "--sizes",
        default=None,
        metavar="IxH,...",
        help="input_size x hidden_size list (default: " + ",".join(f"{i}x{h}" for i, h in DEFAULT_SIZES) + ")",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"interleaved rounds; the median is reported (default {ROUNDS}, --quick {QUICK_ROUNDS})",
    )
    parser.add_argument("--quick", action="store_true", help="few short rounds: a smoke run, noisy numbers")
    parser.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS),
        help="comma-separated subset of " + ", ".join(FRAMEWORKS) + " (lstmrt always runs)",
    )
    parser.add_argument(
        "--isa",
        choices=("scalar", "avx2", "avx512"),
        default=None,
        help="lower lstmrt's kernel tier (sets LSTMRT_ISA); the tier used is always reported",
    )
    parser.add_argument(
        "--out",
        default=os.path.join("bench", "results"),
        metavar="DIR",
        help="where to write bench.json, bench.md and bench.png (default: bench/results)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads every implementation may use (default 1: the issue's one thread each)",
    )


def run_from_args(args) -> int:
    try:
        sizes = parse_sizes(args.sizes) if args.sizes else DEFAULT_SIZES
        frameworks = tuple(f.strip() for f in args.frameworks.split(",") if f.strip())
        frameworks = tuple("onnxruntime" if f in ("ort", "onnx") else f for f in frameworks)
        if args.rounds is not None and args.rounds < 1:
            raise ValueError("--rounds must be at least 1")
        report = run_comparison(
            sizes,
            rounds=args.rounds,
            quick=args.quick,
            frameworks=frameworks,
            isa=args.isa,
            seed=args.seed,
            threads=args.threads,
            log=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    except (ValueError, CheckError) as exc:
        print(f"lstmrt bench: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, CheckError) else 2
    text = format_report(report)
    print(text)
    paths = write_outputs(report, text, args.out)
    print("\nwrote " + ", ".join(paths.values()))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/compare.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
