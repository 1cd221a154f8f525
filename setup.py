"""Builds the C runtime (native/) and the pybind11 binding into lstmrt._native.

The portable C files are compiled with no ISA flags; each ISA kernel file is compiled alone with its own flags
(native/src/kernels/<isa>.c), and the runtime picks among them after checking the CPU (no -march=native)."""

import platform
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
NATIVE = Path("native")
C_FLAGS = ["-std=c99", "-O3", "-D_POSIX_C_SOURCE=200112L", "-fvisibility=hidden"]
X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
ISA_FLAGS = {
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mfma"],
}


def isa_sources():
    if not X86 or sys.platform == "win32":
        return {}
    return {isa: flags for isa, flags in ISA_FLAGS.items() if (ROOT / NATIVE / "src/kernels" / f"{isa}.c").exists()}


class BuildNative(build_ext):
    """Compiles the C core as C99 objects (per-file ISA flags) and links them into the extension."""

    def build_extension(self, ext):
        cc = self.compiler
        include = [str(NATIVE / "include"), str(NATIVE / "src")]
        macros = [("LSTMRT_HAVE_X86_KERNELS", "1")] if isa_sources() else []
        core = sorted(str(p.relative_to(ROOT)) for p in (ROOT / NATIVE / "src").glob("*.c"))
        core.append(str(NATIVE / "src/kernels/scalar.c"))
        objects = cc.compile(core, output_dir=self.build_temp, include_dirs=include, macros=macros,
                             extra_postargs=C_FLAGS, depends=[str(p) for p in (ROOT / NATIVE).rglob("*.h")])
        for isa, flags in isa_sources().items():
            objects += cc.compile([str(NATIVE / "src/kernels" / f"{isa}.c")], output_dir=self.build_temp,
                                  include_dirs=include, macros=macros, extra_postargs=C_FLAGS + flags)
        ext.extra_objects = objects + list(ext.extra_objects or [])
        super().build_extension(ext)


ext = Pybind11Extension(
    "lstmrt._native",
    ["src/lstmrt/_native.cpp"],
    include_dirs=[str(NATIVE / "include")],
    cxx_std=17,
    extra_compile_args=["-O2"],
    libraries=["m"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildNative})
