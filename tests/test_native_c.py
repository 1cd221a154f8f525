"""The C library's own test program (native/tests), built with the standalone Makefile and run here so that
CI runs it with the Python tests."""

import re
import shutil
import subprocess
import sys
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


def _zig_cc() -> list[str] | None:
    """Zig's bundled clang (pip install ziglang): a C cross compiler for macOS and Windows, with their headers."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "ziglang", "cc"]


# The platforms a laptop user builds on that this machine cannot run: Apple silicon and Intel Macs (clang, NEON or
# AVX), Windows (MinGW: the setup.py build there compiles the portable files only, with MSVC).
ZIG_TARGETS = ["aarch64-macos", "x86_64-macos", "x86_64-windows-gnu"]


@pytest.mark.skipif(shutil.which("make") is None or _zig_cc() is None,
                    reason="needs make and zig's clang (pip install ziglang)")
@pytest.mark.parametrize("target", ZIG_TARGETS)
def test_c_library_compiles_without_warnings_for(target, tmp_path):
    """Every file of the C library compiles with clang for target, warnings as errors (objects only: linking
    needs the target's SDK)."""
    cc = " ".join(_zig_cc() + ["-target", target])
    result = subprocess.run(["make", "-C", str(NATIVE), "objects", f"CC={cc}", f"ARCH={target}",
                             "CFLAGS=-O2 -Werror", f"BUILD={tmp_path / target}"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    kernels = {p.name for p in (tmp_path / target).glob("*.o")}
    assert ("neon.o" in kernels) == target.startswith("aarch64") and "scalar.o" in kernels
