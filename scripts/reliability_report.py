#!/usr/bin/env python3
"""Regenerate docs/reliability.md: run the reliability checks and record what ran, how much, and the outcome.

    python scripts/reliability_report.py             # run everything, rewrite docs/reliability.md
    python scripts/reliability_report.py --print     # run everything, print the report instead
    python scripts/reliability_report.py --no-valgrind --valgrind-cycles 20

Checks: the C library's own tests on every kernel tier, the same under ASan + UBSan, valgrind memcheck over
create/step/run/free cycles, the Python thread tests and the RSS cycle tests (with the measured growth), the
loaders' hostile-file tests and a fuzzing run of the loaders and of native model creation (tests/fuzzing.py;
--fuzz-seconds sets its length).
Counts come from the programs' own output and from the constants at the top of the test modules, so the
document cannot drift from what the tests do.

Sections between <!-- BEGIN name --> and <!-- END name --> markers are written by a check's `section` (the
loaders' hostile files and fuzzing) or, when no check writes them (bugs found), carried over unchanged from the
existing document. To add a check of your own, write a function returning a Result and list it in CHECKS.
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
    section: tuple = ()  # (marked section name, markdown body) this check writes


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


def c_spec_count() -> int:
    """The size of the C tests' model catalogue (NUM_SPECS in native/tests/spec.h)."""
    return int(re.search(r"NUM_SPECS = (\d+)", (NATIVE / "tests" / "spec.h").read_text()).group(1))


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
    return c_suite("test", build, "C tests", "native/tests (test_lstmrt), the Makefile's -O3 build")


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


def _cases_by_test(cases):
    """{test function: (cases, passed)} from junit (name, state) pairs."""
    out = {}
    for name, state in cases:
        base = name.split("[")[0]
        n, passed = out.get(base, (0, 0))
        out[base] = (n + 1, passed + (state == "pass"))
    return out


def check_hostile_files(args, build):
    mod = load_module(ROOT / "tests" / "test_hostile_files.py")
    p, secs, c, cases = pytest_counts(["tests/test_hostile_files.py"], Path(build) / "hostile.xml")
    ok = p.returncode == 0 and c["failures"] == 0 and c["errors"] == 0 and c["tests"] > 0
    by_test = _cases_by_test(cases)
    gadgets = len(mod.GADGETS)
    counts = f"{c['tests']} files ({gadgets} pickle gadgets x 3 containers, zip, HDF5, safetensors, limits)"
    what = {
        "test_pickle_gadgets_are_refused_and_nothing_runs": f"{gadgets} pickle payloads x torch zip, legacy, "
        "TorchScript: " + ", ".join(mod.GADGETS),
        "test_plain_pickles_are_not_unpickled": "plain pickles (protocol 0 and 2, and one written by pickle "
        "itself) carrying os.system & co: refused as not torch.save files",
        "test_zip_member_paths_outside_the_archive": "zip members `../`, `/abs`, `C:/`, `a/../../` in torch zip, "
        "TorchScript and .keras files",
        "test_zip_duplicate_names": "a member name given twice (data.pkl, a storage, config.json)",
        "test_zip_bomb_refused_before_decompressing": "8 MiB of zeros deflated to ~8 KiB as a storage, a .keras "
        "member and a TorchScript code file: refused from the declared sizes",
        "test_zip_declared_sizes_past_the_load_limit": "members declaring more than LSTMRT_MAX_LOAD_BYTES",
        "test_torch_storage_larger_than_its_member": "a storage declaring 10^9 elements over a 144-byte member",
        "test_torch_tensor_declaring_a_huge_shape_over_a_small_storage": "a (10^9, 10^9) tensor with stride 0",
        "test_torch_legacy_storage_count_past_the_end": "a legacy storage declaring 2^60 elements",
        "test_hdf5_hostile_weights": "HDF5 external link, virtual dataset, external raw storage, (10^9, 10^9) "
        "dataset storing nothing, gzip bomb, weight shape contradicting the config, soft link, hard-link cycle",
        "test_keras_config_sizes_that_are_not_positive_integers": 'Keras config sizes -3, 0, "4", 4.0, true, '
        "null (LSTM, Dense, a Bidirectional's GRU; .keras and .h5)",
        "test_keras_config_without_sizes_takes_them_from_the_weights": "an absent units: sizes from the weights",
        "test_keras_integer_weights_are_refused": "int/uint weight datasets in .keras, .weights.h5, Keras 3 and "
        "tf_keras .h5",
        "test_hdf5_external_link_in_a_keras_archive": "the external link inside a .keras archive",
        "test_hdf5_damaged_global_heap_does_not_hang": "a global heap object size that makes libhdf5 loop forever",
        "test_hdf5_file_that_crashes_libhdf5": "bytes on which libhdf5 1.14 segfaults (found by fuzzing)",
        "test_hdf5_helper_failures_are_corrupt_file_errors": "the HDF5 helper crashing, hanging, exiting",
        "test_safetensors_bad_offsets_and_shapes": "safetensors spans, overlap, out-of-range and negative "
        "offsets, (10^9, 10^9) shape, float shape, unknown dtype",
        "test_safetensors_headers": "header length past the file, non-JSON header, duplicate key, trailing bytes",
        "test_model_too_large_for_the_limit": "each format under a 256-byte load limit",
        "test_native_refusal_of_a_huge_model_is_a_load_error": "the C runtime out of memory",
        "test_exception_hierarchy": "the exception classes",
        "test_missing_file_stays_an_os_error": "a missing file",
    }
    rows = ["| test | what | files | passed |", "|---|---|---|---|"]
    for name, (n, passed) in by_test.items():
        rows.append(f"| `{name}` | {what.get(name, '')} | {n} | {passed} |")
    body = "\n".join(
        [
            "`tests/test_hostile_files.py`, built from the seed corpus (no torch or Keras needed). Each file must "
            "raise the documented `lstmrt.LoadError` subclass with the key words of its message (docs/loading.md, "
            "Errors); code-running payloads `touch` a canary in the test's directory, which must not appear. "
            "Declared sizes are refused before allocation: the tests would otherwise allocate terabytes.",
            "",
            *rows,
            "",
            f"Outcome: {c['tests']} files, {c['failures'] + c['errors']} failing.",
        ]
    )
    details = ["See the *Loaders: hostile files* section."]
    return Result(
        "hostile files",
        "malicious and impossible checkpoint files refused with LoadError",
        counts,
        ok,
        secs,
        details,
        "" if ok else tail(p),
        section=("loaders-hostile-files", body),
    )


def check_fuzzing(args, build):
    corpus = json.loads((ROOT / "tests" / "fuzz_corpus" / "MANIFEST.json").read_text())
    runs, ok, total, logs = {}, True, 0.0, []
    for target, seconds in (("loaders", args.fuzz_seconds), ("native", max(2.0, args.fuzz_seconds * 0.4))):
        out = Path(build) / f"{target}.json"
        p, secs = run(
            [
                sys.executable,
                "tests/fuzzing.py",
                target,
                "--seconds",
                str(seconds),
                "--seed",
                str(args.fuzz_seed),
                "--artifacts",
                str(Path(build) / target),
                "--out",
                str(out),
            ]
        )
        total += secs
        summary = json.loads(out.read_text()) if p.returncode == 0 and out.exists() else None
        runs[target] = summary
        if summary is None or summary["findings"]:
            ok = False
            logs.append(tail(p) + ("" if summary is None else json.dumps(summary["findings"], indent=1)))
    lines = [
        "`tests/fuzzing.py`, a mutation fuzzer run in a worker process (a crash or hang is reported with its input, "
        "never kills the runner); pytest: `tests/test_fuzz.py` (20 s + 8 s; `LSTMRT_FUZZ_SECONDS` for longer). "
        "The worker runs under a 6 GiB address-space limit (a size trusted from a file would fail there, not in "
        "the OOM killer), a 60 s per-input hang guard, and with warnings as errors.",
        "",
        f"**Seed corpus** `tests/fuzz_corpus/` ({len(corpus['files'])} files, "
        f"{sum(p.stat().st_size for p in (ROOT / 'tests' / 'fuzz_corpus').iterdir()) // 1024} KiB, written by "
        "`scripts/make_fuzz_corpus.py` with real torch 2.x, Keras 3 and tf_keras): "
        + ", ".join(f"`{e['file']}` ({e['format']})" for e in corpus["files"])
        + ".",
        "",
        "**Loaders.** Every seed file must load; then each file cut at ~30 points (systematic truncation) and "
        "24 seeded bit-flip variants of each (1 to 8 bits); then, "
        "until the time is up, round-robin over the files, one mutation each: bit flips, byte sets, interesting "
        "integers over 1-8 bytes, chunk deletion/duplication/insertion, truncation; structure-aware edits that "
        "keep the container valid so the inner parsers are reached: opcode-level pickle edits (integer and string "
        "arguments, deleted/duplicated/moved opcodes) in `data.pkl` and legacy streams, zip members mutated and "
        "re-zipped with good CRCs (also renamed to `../`, duplicated, dropped, recompressed), JSON-aware edits of "
        "`config.json` and safetensors headers, h5py-level edits (attributes, datasets replaced by other shapes, "
        "dtypes or huge unwritten ones). Contract: a Model that predicts and steps, or a `LoadError`; "
        "`UnexpectedContentError` (the backstop), any other exception, a warning, a crash or a hang is a finding.",
        "",
        "**Native model creation.** `lstmrt._native.Model(descs)` with descriptor dicts of random valid chains "
        "mutated (sizes set to 0, -1, 2^24+1, 2^31-1, ...; arrays replaced by shorter, longer, strided, float64, "
        "int32, 2-D, list, scalar, string ones; weights lists emptied or tripled; fields deleted or retyped; junk "
        "layers inserted), and `lstmrt.Model` with random specs: a model that predicts (and streams), or a "
        "ValueError / TypeError / KeyError.",
        "",
    ]
    loaders, native = runs.get("loaders"), runs.get("native")
    if loaders:
        lines += [
            f"Loaders, seed {loaders['seed']}: {loaders['iterations']:,} inputs in {loaders['seconds']} s "
            f"({loaders['files']} seed files, {loaders['truncations']} truncations, {loaders['bitflips']} "
            f"seeded bit flips, {loaders['mutations']:,} random mutations), {len(loaders['findings'])} "
            "findings.",
            "",
            "| file | inputs | loaded | refused: LoadError subclass (count) | findings |",
            "|---|---|---|---|---|",
        ]
        per_file = {}
        for key, outcomes in loaders["counts"].items():
            name = key.split(" ")[0]
            agg = per_file.setdefault(name, {})
            for k, v in outcomes.items():
                agg[k] = agg.get(k, 0) + v
        for name, agg in per_file.items():
            n = sum(agg.values())
            loaded = sum(v for k, v in agg.items() if k.startswith("loaded"))  # with a LayerOrderWarning or not
            refused = ", ".join(f"{k} {v}" for k, v in sorted(agg.items()) if not k.startswith(("loaded", "FINDING")))
            lines.append(f"| `{name}` | {n:,} | {loaded:,} | {refused} | {agg.get('FINDING', 0)} |")
        lines.append("")
    if native:
        lines += [
            f"Native, seed {native['seed']}: {native['iterations']:,} inputs in {native['seconds']} s, "
            f"{len(native['findings'])} findings: "
            + "; ".join(
                f"{mode}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(o.items()))
                for mode, o in native["counts"].items()
            )
            + ".",
            "",
        ]
    lines.append("Longer runs (other seeds, atheris) are listed under *Bugs found*.")
    counts = " + ".join(f"{t} {r['iterations']:,} inputs" for t, r in runs.items() if r) or "-"
    return Result(
        "fuzzing",
        "mutated checkpoint files and native layer descriptors: no crash, hang or stray exception",
        counts,
        ok,
        total,
        ["See the *Fuzzing* section."],
        "\n".join(logs),
        section=("fuzzing", "\n".join(lines)),
    )


# The checks, in report order. Loaders' hostile-file and fuzzing checks: add their functions here (they may
# also keep their prose in the marked sections of the document, which this script never overwrites).
CHECKS = [check_c_tests, check_asan, check_valgrind, check_threads, check_memory, check_hostile_files, check_fuzzing]

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
        "`native/tests/test_lstmrt.c` (the runner; the cases by topic in `native/tests/test_*.c`), no Python, "
        "no framework: `make -C native test` (`BUILD=<dir>` keeps objects out of the source tree). A float64 "
        "reference (`native/tests/reference.c`) implements "
        "LSTM (projection, peephole, cell clip, non-default activations), GRU (reset after and before), "
        "SimpleRNN, Dense (softmax, log-softmax), Activation, Affine, PReLU, LayerNorm (layer, RMS, variance scale), "
        "GlobalPooling (average of the active steps, max of every step), Embedding, Add (skip connections from the "
        "input and from kept layer outputs) and bidirectional merges (concat, sum, mul, ave) from the equations; "
        f"{c_spec_count()} model specs at awkward sizes (1, 3, 5, 7, 9, 16, 17, 33).",
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
        "`*out` NULL, the stream's state and the caller's outputs untouched: NULL pointers, 34 malformed layer "
        "fields, pool counts in set_state that are no whole number of steps, chain mismatches, embedding "
        "placement, bad sizes and lengths, bidirectional / go_backwards "
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
        'make -C native CC="cc -m32" BUILD=build32 test  # a 32-bit size_t (Debian: gcc-multilib)',
        "pytest tests/test_native_c.py -k compiles   # clang for macOS and Windows, -Werror (pip install ziglang)",
        "pytest tests/test_native_c.py tests/test_native_sanitizers.py tests/test_threads.py tests/test_memory.py",
        "pytest tests/test_hostile_files.py tests/test_fuzz.py   # LSTMRT_FUZZ_SECONDS=600 for a longer fuzz",
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
    ap.add_argument("--fuzz-seconds", type=float, default=60.0, help="loader fuzzing time (native: 40%% of it)")
    ap.add_argument("--fuzz-seed", type=int, default=0, help="seed of the fuzzing run")
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
    owned = owned_sections(old)
    owned.update(dict(r.section for r in results if r.section))
    text = render(results, owned, meta)
    if args.print:
        print(text)
    else:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 1 if any(r.ok is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
