"""`lstmrt bench --threads N`, N > 1: every framework's cases (lstmrt's too) in a worker process of its own.

Thread pools keep their workers spinning after a parallel region: torch's GNU OpenMP threads (GOMP_SPINCOUNT,
300,000 pauses by default), ONNX Runtime's intra-op workers (up to 2^20 spins), lstmrt's teams for 50 µs. In one
process the case that runs next shares the cores with them. Here the parent (bench_compare) coordinates: it hands
out one timed batch at a time, rounds interleaved and rotated as in one process, and before it hands work to
another worker it waits until the previous one's threads are idle (settle). Measured on the 2-core test machine
after a 20 ms batch at 2 threads: torch's pool spins 3-12 ms, ORT's 3-55 ms, lstmrt's and TFLite's nothing that
a 2 ms window sees. In A/B pairs (a batch, then the next worker's batch with or without the wait), the batch after
torch's ran 1.1-1.3x slower without the wait in 7 of 9 pairs; after ORT's the difference was within the noise.

Workers start with multiprocessing's "spawn" (a fresh interpreter, not a fork of a process whose pools may run)
and rebuild the weights and inputs from the seed; only lstmrt's expected outputs travel to them, and each worker
checks its cases against them before anything is timed.

Protocol: pickled tuples over a Pipe. Parent -> worker, and the answers:
  ("build", I, H, seed, seq_len, expected)  build and check one size's cases
                                   -> ("built", [(key, steps_per_call), ...], framework versions) or ("n/a", reason)
  ("calibrate", min_time)          -> ("calls", [calls per batch, one per case])
  ("time", index)                  -> ("seconds", s): one batch, time_calls(case.loop, case.calls)
  ("stop",)                        the worker returns
Any command may answer ("raise", exception, traceback text): the parent raises that exception (CheckError, ...)
with the worker's traceback as its cause. No answer in time, or a worker that died, raises WorkerError; the
workers are stopped (and terminated if need be) when the `with Workers(...)` block ends, however it ends.
"""

from __future__ import annotations

import gc
import glob
import os
import pickle
import signal
import statistics
import time
import traceback
from dataclasses import dataclass, field

from lstmrt import bench_peers
from lstmrt.bench_spec import Unavailable, make_data, make_weights
from lstmrt.bench_timing import calibrate, interleave, time_calls

BUILD_TIMEOUT_S = 600  # importing TensorFlow and converting a model take seconds, far longer on a busy machine
ANSWER_TIMEOUT_S = 120  # a calibration or one timed batch (batches take ~min_time)
STOP_TIMEOUT_S = 2  # a worker asked to stop gets this long before it is terminated
# Settle: after a worker's batch, wait until its threads use under IDLE_CPU_S of CPU in an IDLE_WINDOW_S window,
# at most SETTLE_MAX_S: the longest default spin among the pools in play, Intel/LLVM OpenMP's KMP_BLOCKTIME of
# 200 ms (GNU OpenMP's 300,000 pauses, torch's, and ORT's 2^20 spins ended within 70 ms here). Waiting for the
# CPU time to stop rather than a fixed 0.2 s costs what the spin lasts (one window, ~3 ms, after lstmrt or
# TFLite): a median of 3-5 ms a hand-over instead of 200.
SETTLE_MAX_S = 0.2
IDLE_WINDOW_S = 0.002
IDLE_CPU_S = 0.0002


class WorkerError(RuntimeError):
    """A worker died or did not answer in time."""


class RemoteTraceback(Exception):
    """The cause of an exception raised again in the parent: the worker's traceback."""

    def __str__(self):
        return "\n" + self.args[0]


# --- the worker -------------------------------------------------------------------------------------------
def serve(conn, framework, threads, tier):
    """A worker's life: build, calibrate and time one framework's cases when told to, until ("stop",)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    if tier:
        os.environ["LSTMRT_ISA"] = tier  # the parent's tier, exactly (LSTMRT_ISA only lowers)
    cases = []
    while True:
        try:
            command = conn.recv()
        except EOFError:  # the parent is gone
            return
        op, args = command[0], command[1:]
        if op == "stop":
            return
        try:
            if op == "build":
                cases = []
                gc.enable()
                gc.collect()  # the previous size's cases, before building the next
                cases = _build(framework, threads, tier, *args)
                answer = ("built", [(c.key, c.steps_per_call) for c in cases], bench_peers.framework_versions())
            elif op == "calibrate":
                for case in cases:
                    case.calls = calibrate(case.loop, args[0])
                gc.disable()  # as in one process: no collection inside a timed batch
                answer = ("calls", [case.calls for case in cases])
            elif op == "time":
                case = cases[args[0]]
                answer = ("seconds", time_calls(case.loop, case.calls))
            else:
                raise ValueError(f"unknown command {op!r}")
        except Unavailable as exc:
            answer = ("n/a", str(exc))
        except Exception as exc:
            answer = ("raise", _portable(exc), traceback.format_exc())
        conn.send(answer)


def _build(framework, threads, tier, input_size, hidden_size, seed, seq_len, expected):
    if tier and framework == "lstmrt":
        import lstmrt

        if lstmrt.kernel_tier() != tier:
            raise RuntimeError(f"the lstmrt worker runs kernel tier {lstmrt.kernel_tier()!r}, the parent {tier!r}")
    if framework == "torch":
        bench_peers.set_torch_threads(threads)  # what run_comparison does in one process
    w, d = make_weights(input_size, hidden_size, seed), make_data(input_size, seed, seq_len)
    return bench_peers.build_checked(framework, w, d, threads, expected)


def _portable(exc):
    """exc if it survives pickling (CheckError does), else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# --- the parent's side ------------------------------------------------------------------------------------
@dataclass
class RemoteCase:
    """A case living in a worker: what interleave() needs (calls, steps_per_call, samples) and where it lives."""

    key: str
    worker: _Worker
    index: int
    steps_per_call: int = 1
    calls: int = 1
    samples: list = field(default_factory=list)


class _Worker:
    def __init__(self, ctx, framework, threads, tier):
        self.framework = framework
        self.cases = []
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=serve, args=(child, framework, threads, tier), daemon=True, name=f"lstmrt-bench-{framework}"
        )
        self.process.start()
        child.close()  # the worker's end lives in the worker only: its exit is EOF here

    def send(self, *command):
        try:
            self.conn.send(command)
        except OSError:  # a broken pipe: the worker is gone
            raise self._gone() from None

    def answer(self, timeout):
        try:
            answer = self.conn.recv() if self.conn.poll(timeout) else None
        except (EOFError, OSError):
            raise self._gone() from None
        if answer is None:
            raise WorkerError(f"the {self.framework} worker did not answer within {timeout:g} s")
        if answer[0] == "raise":
            raise answer[1] from RemoteTraceback(answer[2])
        return answer

    def _gone(self):
        self.process.join(STOP_TIMEOUT_S)
        return WorkerError(f"the {self.framework} worker exited (exit code {self.process.exitcode})")

    def ask(self, *command, timeout=ANSWER_TIMEOUT_S):
        self.send(*command)
        return self.answer(timeout)

    def close(self):
        try:
            self.conn.send(("stop",))
        except (OSError, ValueError):  # gone already, or closed
            pass
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class Workers:
    """One worker process per framework for a whole run: `with Workers(frameworks, threads, tier) as workers:`.
    tier: the parent's lstmrt kernel tier, which the workers then run too."""

    def __init__(self, frameworks, threads, tier=None):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._workers = []
        self._last = None
        self.versions = {}
        self.waits = {fw: [] for fw in frameworks}  # settle waits after each framework's batches, seconds
        try:
            for fw in frameworks:
                self._workers.append(_Worker(ctx, fw, threads, tier))
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        for worker in self._workers:
            worker.close()

    def measure_size(self, input_size, hidden_size, *, seed, seq_len, expected, rounds, min_time):
        """Every worker builds and checks its cases (all at once: nothing is timed yet), then calibrates (one at
        a time), then the interleaved rounds. Returns (cases with their samples, {framework: reason n/a})."""
        for worker in self._workers:
            worker.send("build", input_size, hidden_size, seed, seq_len, expected)
        unavailable, ready = {}, []
        for worker in self._workers:
            answer = worker.answer(BUILD_TIMEOUT_S)
            if answer[0] == "n/a":
                unavailable[worker.framework] = answer[1]
                continue
            _, keys, versions = answer
            self.versions.update({name: v for name, v in versions.items() if v})
            worker.cases = [RemoteCase(key, worker, i, steps) for i, (key, steps) in enumerate(keys)]
            ready.append(worker)
        for worker in ready:  # building and checking may have left pools spinning
            settle(worker.process.pid)
        self._last = None
        cases = []
        for worker in ready:
            self._hand_to(worker)
            for case, calls in zip(worker.cases, worker.ask("calibrate", min_time)[1]):
                case.calls = calls
            cases += worker.cases
        interleave(cases, rounds, self._time)
        return cases, unavailable

    def _time(self, case):
        self._hand_to(case.worker)
        return case.worker.ask("time", case.index)[1]

    def _hand_to(self, worker):
        last, self._last = self._last, worker
        if last is not None and last is not worker:
            self.waits[last.framework].append(settle(last.process.pid))

    def settle_summary(self) -> dict:
        """Median and longest settle wait after each framework's batches, ms."""
        return {
            fw: {"median_ms": round(statistics.median(w) * 1e3, 2), "max_ms": round(max(w) * 1e3, 2)}
            for fw, w in self.waits.items()
            if w
        }


def settle(pid, limit=SETTLE_MAX_S) -> float:
    """Wait until process pid's threads are idle (see IDLE_CPU_S), at most `limit` s; returns the seconds waited.
    Without per-thread CPU times (no Linux /proc), waits `limit`."""
    t0 = time.perf_counter()
    used = _cpu_ns(pid)
    if used is None:
        time.sleep(limit)
        return limit
    while True:
        time.sleep(IDLE_WINDOW_S)
        now = _cpu_ns(pid)
        waited = time.perf_counter() - t0
        if now is None or now - used < IDLE_CPU_S * 1e9 or waited >= limit:
            return waited
        used = now


def _cpu_ns(pid):
    """CPU time of all of pid's threads, ns (Linux schedstat), or None."""
    total, found = 0, False
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total if found else None
