"""The C library's own tests under AddressSanitizer + UBSan (every kernel tier this machine runs), and its
create/step/run/free cycles under valgrind memcheck. Both through the standalone Makefile (native/), each in
its own build directory, so they never write into the source tree."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parent.parent / "native"
TIERS = ("scalar", "avx2", "avx512", "neon")  # names LSTMRT_ISA accepts, lowest first
VALGRIND_CYCLES = 40  # x 35 models; recorded by scripts/reliability_report.py
MAKE_TIMEOUT = 900  # a hang guard, not a performance assertion

needs_toolchain = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler"
)


def make(*args, env_extra=None):
    env = dict(os.environ)
    env.pop("LSTMRT_ISA", None)  # the tier is chosen per run below
    env.update(env_extra or {})
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(NATIVE), *args],
        capture_output=True,
        text=True,
        timeout=MAKE_TIMEOUT,
        env=env,
    )


def report(result):
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"


def sanitizers_available(tmp_path):
    """The compiler can build and link an ASan + UBSan program (libasan / libubsan installed)."""
    src = tmp_path / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    probe = subprocess.run(
        ["cc", "-fsanitize=address,undefined", str(src), "-o", str(tmp_path / "probe")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return probe.returncode == 0


def tier_of(stdout):
    found = re.search(r"^kernel tier: (\w+)", stdout, re.MULTILINE)
    return found.group(1) if found else None


@needs_toolchain
def test_c_tests_under_asan_and_ubsan(tmp_path):
    if not sanitizers_available(tmp_path):
        pytest.skip("the C compiler cannot link -fsanitize=address,undefined")
    build = tmp_path / "build"
    first = make(f"BUILD={build}", "asan")
    assert first.returncode == 0, report(first)
    assert re.search(r"^\d+ passed, 0 failed$", first.stdout, re.MULTILINE), report(first)
    best = tier_of(first.stdout)
    assert best in TIERS, report(first)
    # Every lower tier the machine has: the scalar oracle and each SIMD table run the same models.
    for tier in TIERS[: TIERS.index(best)]:
        if tier == "neon" or (tier != "scalar" and best == "neon"):
            continue
        result = make(f"BUILD={build}", "asan", f"TEST_ENV=LSTMRT_ISA={tier}")
        assert result.returncode == 0, f"tier {tier}\n" + report(result)
        assert tier_of(result.stdout) == tier, report(result)
        assert re.search(r"^\d+ passed, 0 failed$", result.stdout, re.MULTILINE), report(result)


@needs_toolchain
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_lifetime_cycles_under_valgrind(tmp_path):
    result = make(f"BUILD={tmp_path / 'build'}", "valgrind", f"CYCLES={VALGRIND_CYCLES}")
    assert result.returncode == 0, report(result)
    assert f"cycles: {VALGRIND_CYCLES} x" in result.stdout, report(result)
    assert re.search(r"^\d+ passed, 0 failed$", result.stdout, re.MULTILINE), report(result)
