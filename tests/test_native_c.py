"""The C library's own test program (native/tests), built with the standalone Makefile and run here so that
CI runs it with the Python tests."""

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
