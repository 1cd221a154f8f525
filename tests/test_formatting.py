"""The house style is automated (STYLE.md, "Comments and docs"): Python is ruff-formatted and lint-clean, C and C++
clang-formatted, with the configurations in the repository. Both tools come pinned with the test extras; without
them (or outside a source checkout) these tests skip."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_TREES = ["src", "tests", "bench", "scripts", "setup.py"]
C_SOURCES = ["native/include", "native/src", "native/tests", "native/examples", "src/lstmrt/_native.cpp"]

pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="not a source checkout")


def ruff(*args):
    ruff_module = pytest.importorskip("ruff")
    binary = ruff_module.find_ruff_bin()
    return subprocess.run([binary, *args, *PYTHON_TREES], cwd=ROOT, capture_output=True, text=True)


def test_python_is_ruff_formatted():
    done = ruff("format", "--check", "--diff")
    assert done.returncode == 0, f"run `ruff format .`:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


def test_python_passes_ruff_check():
    done = ruff("check")
    assert done.returncode == 0, f"`ruff check .` reports:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


def c_files():
    files = []
    for entry in C_SOURCES:
        path = ROOT / entry
        files += sorted(p for p in path.rglob("*") if p.suffix in (".c", ".h", ".cpp")) if path.is_dir() else [path]
    return files


def test_c_is_clang_formatted():
    binary = shutil.which("clang-format", path=str(Path(sys.executable).parent)) or shutil.which("clang-format")
    if binary is None:
        pytest.skip("clang-format is not installed (pip install clang-format)")
    files = c_files()
    assert len(files) > 20, "the C sources moved: update C_SOURCES"
    done = subprocess.run([binary, "--dry-run", "--Werror", *map(str, files)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"run clang-format -i on:\n{done.stderr[-4000:]}"
