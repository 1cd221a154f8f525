"""The source distribution holds what building from it needs: every tracked source file (MANIFEST.in).

setuptools puts only the extensions' listed sources in an sdist; the C core that setup.py compiles by globbing
native/ would otherwise be missing, and `pip install lstmrt-*.tar.gz` fail."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Repository plumbing an sdist has no use for.
NOT_SHIPPED = {".ci/run", ".gitignore"}


def _tracked_files() -> set[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the list of tracked files)")
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout
    return {line for line in out.splitlines() if line}


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("setuptools", "Cython", "pybind11")),
    reason="building an sdist runs setup.py, which needs setuptools, Cython and pybind11",
)
def test_sdist_ships_every_tracked_source_file(tmp_path):
    tracked = _tracked_files()
    # egg_info -e: the metadata goes to tmp_path, not into the source tree
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "-e", str(tmp_path), "sdist", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (archive,) = tmp_path.glob("lstmrt-*.tar.gz")
    with tarfile.open(archive) as tar:
        shipped = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = sorted(tracked - shipped - NOT_SHIPPED)
    assert not missing, f"tracked files missing from the sdist: {missing}"
    assert not any(name.endswith((".so", ".o", ".a")) for name in shipped)
