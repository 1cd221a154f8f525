#!/usr/bin/env python3
"""Regenerate docs/reliability.md: run the reliability checks and record what ran, how much, and the outcome.

    python scripts/reliability_report.py             # run everything, rewrite docs/reliability.md
    python scripts/reliability_report.py --print     # run everything, print the report instead
    python scripts/reliability_report.py --no-valgrind --valgrind-cycles 20

Checks: the C library's own tests on every kernel tier, the same under ASan + UBSan, valgrind memcheck over
create/step/run/free cycles, the Python thread tests and the RSS cycle tests (with the measured growth).
Counts come from the programs' own output and from the constants at the top of the test modules, so the
document cannot drift from what the tests do.

Sections between <!-- BEGIN name --> and <!-- END name --> markers are owned by other people (the loaders'
hostile-file and fuzzing checks) and are carried over unchanged from the existing document. To add a check of
your own, write a function returning a Result and list it in CHECKS (see the marked places below).
Exit status 1 when any check failed (the document is still written, with the failure in it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "native"
DOC = ROOT / "docs" / "reliability.md"
TIER_ORDER = {"x86": ("scalar", "avx2", "avx512"), "arm": ("scalar", "neon")}
TIMEOUT = 1800  # per command: a hang guard


@dataclass
class Result:
    name: str  # short name for the summary table
    what: str  # one line: what was exercised
    counts: str  # what ran, how much
    ok: bool | None  # None: skipped
    seconds: float = 0.0
    details: list = field(default_factory=list)  # markdown lines for the section
    log: str = ""  # tail of the output, shown when the check failed


def load_module(path: Path):
    """A test module's constants (its imports of lstmrt etc. must work: run from the repository)."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(path.parent))


def run(cmd, env_extra=None, cwd=ROOT):
    env = dict(os.environ)
    env.pop("LSTMRT_ISA", None)
    env.update(env_extra or {})
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return proc, time.perf_counter() - start


def tail(proc, n=3000):
    return f"$ exit {proc.returncode}\n{proc.stdout[-n:]}\n{proc.stderr[-n:]}"


def parse_c_output(stdout):
    """kernel tier, checks, cases passed, cases failed from test_lstmrt's output."""
    tier = re.search(r"^kernel tier: (\w+)", stdout, re.M)
    checks = re.search(r"^checks: (\d+)$", stdout, re.M)
    closing = re.search(r"^(\d+) passed, (\d+) failed$", stdout, re.M)
    return (
        tier.group(1) if tier else None,
        int(checks.group(1)) if checks else None,
        int(closing.group(1)) if closing else None,
        int(closing.group(2)) if closing else None,
    )


def c_case_names():
    return re.findall(r"^\s*RUN\((\w+)\);", (NATIVE / "tests" / "test_lstmrt.c").read_text(), re.M)


def lower_tiers(best):
    for order in TIER_ORDER.values():
        if best in order:
            return list(order[: order.index(best)])
    return []


def c_suite(target, build, label, what, extra_args=()):
    """`make <target>` on the default tier, then again with LSTMRT_ISA set to each lower tier."""
    rows, ok, total, logs = [], True, 0.0, []
    proc, secs = run(["make", "--no-print-directory", "-C", str(NATIVE), f"BUILD={build}", target, *extra_args])
    tier, checks, passed, failed = parse_c_output(proc.stdout)
    runs = [(tier or "?", proc, secs, checks, passed, failed)]
    for t in lower_tiers(tier) if proc.returncode == 0 else []:
        p, s = run(
            [
                "make",
                "--no-print-directory",
                "-C",
                str(NATIVE),
                f"BUILD={build}",
                target,
                f"TEST_ENV=LSTMRT_ISA={t}",
                *extra_args,
            ]
        )
        got_tier, c, pa, fa = parse_c_output(p.stdout)
        runs.append((got_tier or t, p, s, c, pa, fa))
    for t, p, s, c, pa, fa in runs:
        good = p.returncode == 0 and fa == 0
        ok &= good
        total += s
        rows.append(f"| {t} | {c} | {pa} | {fa} | {'pass' if good else 'FAIL'} |")
        if not good:
            logs.append(tail(p))
    details = ["| kernel tier | checks | cases passed | cases failed | outcome |", "|---|---|---|---|---|", *rows]
    checks_per_tier = runs[0][3]
    counts = f"{len(runs)} tier(s) ({', '.join(r[0] for r in runs)}) x {runs[0][4]} cases / {checks_per_tier} checks"
    return Result(label, what, counts, ok, total, details, "\n".join(logs))


def check_c_tests(args, build):
    return c_suite("test", build, "C tests", "native/tests/test_lstmrt.c, plain -O2 build")


def check_asan(args, build):
    probe = Path(build) / "probe.c"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("int main(void) { return 0; }\n")
    p, _ = run(["cc", "-fsanitize=address,undefined", str(probe), "-o", str(probe.with_suffix(""))])
    if p.returncode != 0:
        return Result(
            "ASan + UBSan",
            "C tests under sanitizers",
            "-",
            None,
            details=["Skipped: the compiler cannot link `-fsanitize=address,undefined`."],
        )
    return c_suite(
        "asan",
        build,
        "ASan + UBSan",
        "C tests built with -fsanitize=address,undefined, halt on the first report, leak check",
    )


def check_valgrind(args, build):
    if args.no_valgrind or shutil.which("valgrind") is None:
        why = "--no-valgrind" if args.no_valgrind else "valgrind is not installed"
        return Result("valgrind", "memcheck over lifetime cycles", "-", None, details=[f"Skipped: {why}."])
    cycles = args.valgrind_cycles
    p, secs = run(["make", "--no-print-directory", "-C", str(NATIVE), f"BUILD={build}", "valgrind", f"CYCLES={cycles}"])
    models = re.search(r"^cycles: (\d+) x (\d+) models", p.stdout, re.M)
    tier, _, passed, failed = parse_c_output(p.stdout)
    version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    ok = p.returncode == 0 and failed == 0
    n_models = int(models.group(2)) if models else 0
    counts = f"{cycles} cycles x {n_models} models (+1 out-of-memory round), tier {tier}"
    details = [
        f"- {version}, `--leak-check=full --errors-for-leak-kinds=definite,indirect,possible "
        f"--error-exitcode=1`; kernel tier under valgrind: {tier}.",
        f"- {cycles} cycles x {n_models} model kinds = {cycles * n_models} model lifetimes; "
        f"cases {passed} passed, {failed} failed; outcome: {'pass' if ok else 'FAIL'}.",
    ]
    return Result(
        "valgrind",
        "memcheck: leaks and invalid accesses over lifetime cycles",
        counts,
        ok,
        secs,
        details,
        "" if ok else tail(p),
    )


def pytest_counts(files, junit):
    p, secs = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *files])
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    cases = []
    if Path(junit).exists():
        root = ET.parse(junit).getroot()
        for suite in root.iter("testsuite"):
            for k in counts:
                counts[k] += int(suite.get(k, 0))
        for case in root.iter("testcase"):
            state = "pass"
            if case.find("failure") is not None or case.find("error") is not None:
                state = "FAIL"
            elif case.find("skipped") is not None:
                state = "skipped"
            cases.append((case.get("name"), state))
    return p, secs, counts, cases


def check_threads(args, build):
    mod = load_module(ROOT / "tests" / "test_threads.py")
    p, secs, c, cases = pytest_counts(["tests/test_threads.py"], Path(build) / "threads.xml")
    ok = p.returncode == 0 and c["failures"] == 0 and c["errors"] == 0
    counts = (
        f"{mod.N_THREADS} threads x {mod.ROUNDS} rounds on a shared model; 2 threads x "
        f"{mod.SHARED_STREAM_CALLS} calls on one stream"
    )
    details = ["Tests:", ""] + [f"- `{name}`: {state}" for name, state in cases]
    return Result(
        "threads",
        "shared model, one stream from two threads, per-thread errors",
        counts,
        ok,
        secs,
        details,
        "" if ok else tail(p),
    )


def measure_rss():
    """--measure-rss mode (a fresh interpreter): growth in bytes per memory workload, as JSON."""
    mod = load_module(ROOT / "tests" / "test_memory.py")
    import numpy as np

    out = {}
    for name, build in mod.WORKLOADS.items():
        out[name] = mod.growth(build(np.random.default_rng(0)))
    print(json.dumps(out))


def check_memory(args, build):
    mod = load_module(ROOT / "tests" / "test_memory.py")
    if not os.path.exists("/proc/self/statm"):
        return Result(
            "RSS cycles", "create/free cycles leave RSS flat", "-", None, details=["Skipped: no /proc/self/statm."]
        )
    p, secs, c, cases = pytest_counts(["tests/test_memory.py"], Path(build) / "memory.xml")
    ok = p.returncode == 0 and c["failures"] == 0 and c["errors"] == 0
    m, msecs = run([sys.executable, str(Path(__file__).resolve()), "--measure-rss"])
    growth = json.loads(m.stdout.strip().splitlines()[-1]) if m.returncode == 0 and m.stdout.strip() else {}
    details = ["| workload | what one cycle does | RSS growth over the cycles |", "|---|---|---|"]
    for name, builder in mod.WORKLOADS.items():
        g = growth.get(name)
        doc = " ".join((builder.__doc__ or "").split())
        details.append(f"| {name} | {doc} | {'n/a' if g is None else f'{g / 1024:.0f} KiB'} |")
    details.append("")
    details.append(
        f"Each workload: {mod.WARMUP:,} warm-up cycles, then {mod.CYCLES:,} measured cycles; the tests "
        f"allow {mod.RSS_SLACK / 2**20:.0f} MiB of growth."
    )
    details += ["", "Tests:", ""] + [f"- `{name}`: {state}" for name, state in cases]
    counts = f"{len(mod.WORKLOADS)} workloads x {mod.CYCLES:,} cycles (after {mod.WARMUP:,} warm-up)"
    return Result(
        "RSS cycles", "create/use/free cycles leave RSS flat", counts, ok, secs + msecs, details, "" if ok else tail(p)
    )


# The checks, in report order. Loaders' hostile-file and fuzzing checks: add their functions here (they may
# also keep their prose in the marked sections of the document, which this script never overwrites).
CHECKS = [check_c_tests, check_asan, check_valgrind, check_threads, check_memory]

# Sections maintained by hand (or by other scripts): name -> placeholder used while the section is empty.
OWNED_SECTIONS = {
    "loaders-hostile-files": "_To be written by the loaders' owner: truncated, oversized, lying-header and "
    "malicious checkpoint files (Keras .keras/.h5, torch zip/legacy/TorchScript, "
    "safetensors, ONNX), what each must raise, and the counts._",
    "fuzzing": "_To be written: fuzz targets (loaders, model descriptors, inputs), corpus sizes, run lengths "
    "and findings._",
    "bugs-found": "- `lstmrt_model_predict` computed its scratch size modulo 2^64: a batch x block x width "
    "product past the address space (e.g. 183 251 919 760 rows of a 2^24-wide Dense) wrapped to a "
    "~340 MB allocation that the run then overran (UBSan: pointer overflow in `workspace_bind`; "
    "segfault without sanitizers). Fixed in `native/src/predict.c`: such requests fail with "
    "`LSTMRT_STATUS_OUT_OF_MEMORY`; C test `test_out_of_memory` covers it.",
}


def owned_sections(old_text):
    found = dict(re.findall(r"<!-- BEGIN ([\w-]+) -->\n(.*?)<!-- END \1 -->", old_text, re.S))
    return {name: found.get(name, placeholder + "\n") for name, placeholder in OWNED_SECTIONS.items()}


def section(name, body):
    return f"<!-- BEGIN {name} -->\n{body if body.endswith(chr(10)) else body + chr(10)}<!-- END {name} -->"


def git_commit():
    p = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


def outcome(r):
    return "skipped" if r.ok is None else ("pass" if r.ok else "**FAIL**")


def render(results, owned, meta):
    by = {r.name: r for r in results}
    lines = [
        "# Reliability",
        "",
        "What is checked beyond correctness: memory safety, undefined behaviour, leaks, thread safety and memory "
        "growth of the C runtime and its binding. Generated by `scripts/reliability_report.py` "
        f"({meta['date']}, commit {meta['commit']}, {meta['machine']}, Python {meta['python']}); rerun it "
        "after changing the runtime or the tests. Edit by hand only inside the `BEGIN`/`END` marked sections.",
        "",
        "| check | what | counts | outcome | time |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.name} | {r.what} | {r.counts} | {outcome(r)} | {r.seconds:.0f} s |")
    lines += ["", "Times are informational (a loaded machine runs slower); no test asserts a duration.", ""]

    c = by.get("C tests")
    lines += [
        "## C library tests",
        "",
        "`native/tests/test_lstmrt.c`, no Python, no framework: `make -C native test` "
        "(`BUILD=<dir>` keeps objects out of the source tree). A float64 reference inside the test implements "
        "LSTM (projection, peephole, cell clip, non-default activations), GRU (reset after and before), "
        "SimpleRNN, Dense (softmax, log-softmax), Activation, Affine, Embedding and bidirectional merges "
        "(concat, sum, mul, ave) from the equations; 21 model specs at awkward sizes (1, 3, 5, 7, 16, 17, 33).",
        "",
        "Test cases: " + ", ".join(f"`{n}`" for n in c_case_names()) + ".",
        "",
        "- predict vs the reference within 1e-5, plain, with lengths (including 0) and with lengths + mask, "
        "across predict's block boundary; padding outputs exactly 0; weights copied at creation.",
        "- streams (every causal spec): single streams stepped == predict, a batched stream == the single "
        "streams (outputs and state), uneven run chunks (including 0 steps) == predict, a 300-step run across the "
        "stream's block, `active` rows == predict with a mask, reset restores the zero state (rerun bitwise "
        "identical), get/set state round trip and resume (bitwise), copies independent (also after freeing the "
        "original); a 300-row batch (one step per block).",
        "- lengths: a padded sequence predicts exactly as the same sequence alone (backward direction starts at "
        "its own last step); final-only layers broadcast the final output over 600 steps.",
        "- special values: NaN in one sequence stays in that sequence; inputs of +-1e30 and -0 give finite, "
        "bounded outputs.",
        "- errors: every failing call returns the expected status with a non-empty `lstmrt_last_error()`, leaves "
        "`*out` NULL, the stream's state and the caller's outputs untouched: NULL pointers, 27 malformed layer "
        "fields, chain mismatches, embedding placement, bad sizes and lengths, bidirectional / go_backwards "
        "streams (UNSUPPORTED), bad token ids (-1, V, 2.5, 1e30, -1e-30, inf, NaN; -0 and V-1 accepted), "
        "impossible allocations (OUT_OF_MEMORY, including a partially built model and a size that wraps "
        "around 2^64); a success clears the message.",
        "",
        *(c.details if c else []),
        "",
    ]
    a = by.get("ASan + UBSan")
    lines += [
        "## AddressSanitizer + UndefinedBehaviorSanitizer",
        "",
        "`make -C native asan`: the same program built with `-O1 -g -fsanitize=address,undefined "
        "-fno-omit-frame-pointer -fno-sanitize-recover=all` in its own build directory, run with "
        "`halt_on_error=1`, LeakSanitizer on, `allocator_may_return_null=1` (the out-of-memory tests ask for "
        "impossible sizes). Run once per kernel tier the machine has (`TEST_ENV=LSTMRT_ISA=<tier>`), so every "
        "SIMD kernel runs under the sanitizers. pytest: `tests/test_native_sanitizers.py`.",
        "",
        *(a.details if a else []),
        "",
    ]
    v = by.get("valgrind")
    lines += [
        "## Valgrind memcheck",
        "",
        "`make -C native valgrind CYCLES=N`: `test_lstmrt --cycles N` under memcheck. Each cycle creates every "
        "model kind, predicts with lengths and a mask, and for causal models creates a batched stream, steps "
        "it (with and without `active`), runs it, copies it, gets/sets/resets state and frees everything; "
        "failing calls (bad token, NULL output, chain mismatch, bidirectional stream) run in every cycle. One "
        "extra round frees a model whose creation failed half-way (out of memory). Any leak (definite, "
        "indirect, possible) or invalid access fails. Valgrind hides AVX-512 from the program, so this runs the "
        "best tier below it. pytest: `tests/test_native_sanitizers.py` (skipped without valgrind).",
        "",
        *(v.details if v else []),
        "",
    ]
    t = by.get("threads")
    lines += [
        "## Threads",
        "",
        "`tests/test_threads.py`. predict and `Stream.run` release the GIL (large batched steps too), so C code "
        "runs concurrently. Thread switching is forced every 50 us.",
        "",
        "- one model shared by threads, each with its own streams, repeating predict (with lengths), stepping, "
        "chunked runs, copies, reset and batched steps: every result bitwise equal to the serial run;",
        "- models and streams created and freed in some threads while others predict;",
        "- one stream used by two threads at once (runs, batched steps, resets; refused calls retried): each "
        'call either works or raises `RuntimeError` ("in use by another thread"); the recorded outputs and the '
        "final state match a serial replay of the successful calls in some interleaving (searched), and the "
        "stream stays usable;",
        "- `Stream.copy()` racing a running stream: refused, or a copy of a state between two whole calls;",
        "- C error messages are per thread: concurrent failing calls each report their own position.",
        "",
        *(t.details if t else []),
        "",
    ]
    m = by.get("RSS cycles")
    lines += [
        "## Memory growth (RSS)",
        "",
        "`tests/test_memory.py` reads `/proc/self/statm` (skipped where it is missing).",
        "",
        *(m.details if m else []),
        "",
        "## Loaders: hostile files",
        "",
        section("loaders-hostile-files", owned["loaders-hostile-files"]),
        "",
        "## Fuzzing",
        "",
        section("fuzzing", owned["fuzzing"]),
        "",
        "## Bugs found by these checks",
        "",
        section("bugs-found", owned["bugs-found"]),
        "",
        "## Running the checks",
        "",
        "```",
        "make -C native test                 # C tests (kernel tier: LSTMRT_ISA=scalar|avx2|avx512 lowers it)",
        "make -C native asan                 # the same under ASan + UBSan",
        "make -C native valgrind CYCLES=100  # memcheck over lifetime cycles",
        "pytest tests/test_native_c.py tests/test_native_sanitizers.py tests/test_threads.py tests/test_memory.py",
        "python scripts/reliability_report.py  # all of the above, rewrites this file",
        "```",
        "",
    ]
    failures = [r for r in results if r.ok is False and r.log]
    if failures:
        lines += ["## Failure logs", ""]
        for r in failures:
            lines += [f"### {r.name}", "", "```", r.log.strip()[-6000:], "```", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--print", action="store_true", help="print the report instead of writing docs/reliability.md")
    ap.add_argument("--no-valgrind", action="store_true", help="skip the valgrind check")
    ap.add_argument(
        "--valgrind-cycles",
        type=int,
        default=None,
        help="cycles under valgrind (default: the count tests/test_native_sanitizers.py uses)",
    )
    ap.add_argument("--measure-rss", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure_rss:
        measure_rss()
        return 0
    if args.valgrind_cycles is None:
        source = (ROOT / "tests" / "test_native_sanitizers.py").read_text()
        found = re.search(r"^VALGRIND_CYCLES = (\d+)", source, re.M)
        args.valgrind_cycles = int(found.group(1)) if found else 40
    results = []
    with tempfile.TemporaryDirectory(prefix="lstmrt-reliability-") as tmp:
        for check in CHECKS:
            build = Path(tmp) / check.__name__
            build.mkdir()
            print(f"running {check.__name__} ...", file=sys.stderr, flush=True)
            r = check(args, build)
            print(f"  {r.name}: {outcome(r)} ({r.counts}, {r.seconds:.0f} s)", file=sys.stderr, flush=True)
            results.append(r)
    meta = {
        "date": dt.date.today().isoformat(),
        "commit": git_commit(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }
    old = DOC.read_text() if DOC.exists() else ""
    text = render(results, owned_sections(old), meta)
    if args.print:
        print(text)
    else:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 1 if any(r.ok is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
