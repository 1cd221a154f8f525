"""The C library's own test program (native/tests), built with the standalone Makefile and run here so that
CI runs it with the Python tests."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parent.parent / "native"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler")
def test_c_library_tests_pass(tmp_path):
    build = tmp_path / "build"
    result = subprocess.run(["make", "-C", str(NATIVE), f"BUILD={build}", "test"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "0 failed" in result.stdout


def _can_build_32bit() -> bool:
    if shutil.which("make") is None or shutil.which("cc") is None:
        return False
    probe = subprocess.run(["cc", "-m32", "-x", "c", "-", "-o", "/dev/null"], input="int main(void){return 0;}",
                           capture_output=True, text=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_build_32bit(), reason="needs a 32-bit C toolchain (Debian: gcc-multilib)")
def test_c_library_tests_pass_32bit(tmp_path):
    """The same tests in a 32-bit build (x86 -m32: a 32-bit size_t, as on small ARM boards): every byte count
    computed from sizes a caller chooses must fail cleanly instead of wrapping to a small block."""
    build = tmp_path / "build32"
    result = subprocess.run(["make", "-C", str(NATIVE), "CC=cc -m32", f"BUILD={build}", "test"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "0 failed" in result.stdout


CROSS_AARCH64 = "aarch64-linux-gnu-gcc"


def _can_run_aarch64() -> bool:
    """A cross compiler with its C library and qemu-user to run what it builds (Debian: gcc-aarch64-linux-gnu,
    qemu-user)."""
    if shutil.which("make") is None or shutil.which(CROSS_AARCH64) is None or shutil.which("qemu-aarch64") is None:
        return False
    return Path("/usr/aarch64-linux-gnu/lib").is_dir()


@pytest.mark.skipif(not _can_run_aarch64(),
                    reason="needs an AArch64 cross toolchain and qemu-user (Debian: gcc-aarch64-linux-gnu qemu-user)")
def test_c_library_tests_pass_aarch64(tmp_path):
    """The same tests built for AArch64 and run under qemu-user: the NEON kernel table against the scalar oracle
    (test_kernels), whole models on both tiers (test_lstmrt), no allocation in a step (test_noalloc)."""
    build = tmp_path / "build_aarch64"
    result = subprocess.run(["make", "-C", str(NATIVE), f"CC={CROSS_AARCH64}", f"BUILD={build}", "test"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "kernel tier: neon" in result.stdout
    assert "test_kernels: " in result.stdout and not re.search(r"\b[1-9]\d* failed", result.stdout)
