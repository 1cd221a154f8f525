"""Builds the C runtime (native/) and the pybind11 binding into lstmrt._native.

The portable C files are compiled with no ISA flags; each ISA kernel file is compiled alone with its own flags
(native/src/kernels/<isa>.c), and the runtime picks among them after checking the CPU (no -march=native)."""

import platform
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from pybind11.setup_helpers import Pybind11Extension
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
NATIVE = Path("native")
C_FLAGS = ["-std=c99", "-O3", "-D_POSIX_C_SOURCE=200112L", "-fvisibility=hidden"]
if sys.platform != "win32":
    C_FLAGS.append("-pthread")  # predict_threads.c
MSVC_C_FLAGS = ["/O2"]  # MSVC takes none of the GCC-style flags above (untested: no Windows CI yet)
MACHINE = platform.machine().lower()
X86 = MACHINE in ("x86_64", "amd64", "i686", "x86")
ARM64 = MACHINE in ("aarch64", "arm64")
# Each ISA kernel file is compiled alone with exactly these flags; dispatch.c checks the CPU before using it.
ISA_FLAGS = {
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mfma"],
    "neon": [],  # Advanced SIMD is baseline on AArch64
}


def isa_sources():
    if sys.platform == "win32":
        return {}
    wanted = ("avx2", "avx512") if X86 else ("neon",) if ARM64 else ()
    return {isa: ISA_FLAGS[isa] for isa in wanted if (ROOT / NATIVE / "src/kernels" / f"{isa}.c").exists()}


def isa_macros():
    isas = isa_sources()
    if "avx2" in isas and "avx512" in isas:
        return [("LSTMRT_HAVE_X86_KERNELS", "1")]
    if "neon" in isas:
        return [("LSTMRT_HAVE_NEON_KERNELS", "1")]
    return []


class BuildNative(build_ext):
    """Compiles the C core as C99 objects (per-file ISA flags) and links them into the extension."""

    def build_extension(self, ext):
        cc = self.compiler
        include = [str(NATIVE / "include"), str(NATIVE / "src")]
        macros = isa_macros()
        core = sorted(str(p.relative_to(ROOT)) for p in (ROOT / NATIVE / "src").glob("*.c"))
        core.append(str(NATIVE / "src/kernels/scalar.c"))
        flags = MSVC_C_FLAGS if cc.compiler_type == "msvc" else C_FLAGS
        objects = cc.compile(
            core,
            output_dir=self.build_temp,
            include_dirs=include,
            macros=macros,
            extra_postargs=flags,
            depends=[str(p) for p in (ROOT / NATIVE).rglob("*.h")],
        )
        for isa, isa_flags in isa_sources().items():  # none on Windows (isa_sources): the scalar tier
            objects += cc.compile(
                [str(NATIVE / "src/kernels" / f"{isa}.c")],
                output_dir=self.build_temp,
                include_dirs=include,
                macros=macros,
                extra_postargs=C_FLAGS + isa_flags,
            )
        ext.extra_objects = objects + list(ext.extra_objects or [])
        super().build_extension(ext)


ext = Pybind11Extension(
    "lstmrt._native",
    ["src/lstmrt/_native.cpp"],
    include_dirs=[str(NATIVE / "include")],
    cxx_std=17,
    extra_compile_args=["-O2"],
    extra_link_args=[] if sys.platform == "win32" else ["-pthread"],
    libraries=[] if sys.platform == "win32" else ["m"],  # the C runtime holds libm on Windows
)

# The per-step hot path (see src/lstmrt/_step.pyx for why it is Cython). It calls the C core through a
# function pointer handed over by _native, so it links nothing of native/.
step_ext = Extension(
    "lstmrt._step",
    ["src/lstmrt/_step.pyx"],
    include_dirs=[numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O2"],
)


class BuildExtensions(BuildNative):
    def build_extension(self, ext):
        if ext.name == "lstmrt._step":
            return build_ext.build_extension(self, ext)
        return super().build_extension(ext)


setup(ext_modules=[ext, *cythonize([step_ext], language_level=3)], cmdclass={"build_ext": BuildExtensions})
