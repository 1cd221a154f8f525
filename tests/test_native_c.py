"""The C library's own test program (native/tests), built with the standalone Makefile and run here so that
CI runs it with the Python tests."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

NATIVE = Path(__file__).resolve().parent.parent / "native"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler")
def test_c_library_tests_pass(tmp_path):
    build = tmp_path / "build"
    result = subprocess.run(
        ["make", "-C", str(NATIVE), f"BUILD={build}", "test"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "0 failed" in result.stdout


def _can_build_32bit() -> bool:
    if shutil.which("make") is None or shutil.which("cc") is None:
        return False
    probe = subprocess.run(
        ["cc", "-m32", "-x", "c", "-", "-o", "/dev/null"],
        input="int main(void){return 0;}",
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_build_32bit(), reason="needs a 32-bit C toolchain (Debian: gcc-multilib)")
def test_c_library_tests_pass_32bit(tmp_path):
    """The same tests in a 32-bit build (x86 -m32: a 32-bit size_t, as on small ARM boards): every byte count
    computed from sizes a caller chooses must fail cleanly instead of wrapping to a small block."""
    build = tmp_path / "build32"
    result = subprocess.run(
        ["make", "-C", str(NATIVE), "CC=cc -m32", f"BUILD={build}", "test"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "0 failed" in result.stdout


CROSS_AARCH64 = "aarch64-linux-gnu-gcc"


def _can_run_aarch64() -> bool:
    """A cross compiler with its C library and qemu-user to run what it builds (Debian: gcc-aarch64-linux-gnu,
    qemu-user)."""
    if shutil.which("make") is None or shutil.which(CROSS_AARCH64) is None or shutil.which("qemu-aarch64") is None:
        return False
    return Path("/usr/aarch64-linux-gnu/lib").is_dir()


@pytest.mark.skipif(
    not _can_run_aarch64(),
    reason="needs an AArch64 cross toolchain and qemu-user (Debian: gcc-aarch64-linux-gnu qemu-user)",
)
def test_c_library_tests_pass_aarch64(tmp_path):
    """The same tests built for AArch64 and run under qemu-user: the NEON kernel table against the scalar oracle
    (test_kernels), whole models on both tiers (test_lstmrt), no allocation in a step (test_noalloc)."""
    build = tmp_path / "build_aarch64"
    result = subprocess.run(
        ["make", "-C", str(NATIVE), f"CC={CROSS_AARCH64}", f"BUILD={build}", "test"],
        capture_output=True,
        text=True,
        timeout=900,
    )
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


@pytest.mark.skipif(
    shutil.which("make") is None or _zig_cc() is None, reason="needs make and zig's clang (pip install ziglang)"
)
@pytest.mark.parametrize("target", ZIG_TARGETS)
def test_c_library_compiles_without_warnings_for(target, tmp_path):
    """Every file of the C library compiles with clang for target, warnings as errors (objects only: linking
    needs the target's SDK)."""
    cc = " ".join(_zig_cc() + ["-target", target])
    result = subprocess.run(
        [
            "make",
            "-C",
            str(NATIVE),
            "objects",
            f"CC={cc}",
            f"ARCH={target}",
            "CFLAGS=-O2 -Werror",
            f"BUILD={tmp_path / target}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    kernels = {p.name for p in (tmp_path / target).glob("*.o")}
    assert ("neon.o" in kernels) == target.startswith("aarch64") and "scalar.o" in kernels


C_FILTER = r"""
#include <stdio.h>
#include "lstmrt.h"
#include "weights.h"
/* The README's route: a model loaded in Python, its canonical arrays written as C arrays, the layers described
   as lstmrt.h says (num_directions 1 and the activations set for every layer, the Dense one included). */
int main(void) {
    lstmrt_layer_desc layers[2] = {{0}};
    layers[0].kind = LSTMRT_LAYER_LSTM;
    layers[0].input_size = INPUT;
    layers[0].hidden_size = HIDDEN;
    layers[0].num_directions = 1;
    layers[0].activations[0] = LSTMRT_ACT_SIGMOID;
    layers[0].activations[1] = LSTMRT_ACT_TANH;
    layers[0].activations[2] = LSTMRT_ACT_TANH;
    layers[0].weights[0].weight_ih = weight_ih;
    layers[0].weights[0].weight_hh = weight_hh;
    layers[0].weights[0].bias_ih = bias_ih;
    layers[0].weights[0].bias_hh = bias_hh;
    layers[1].kind = LSTMRT_LAYER_DENSE;
    layers[1].input_size = HIDDEN;
    layers[1].hidden_size = OUTPUT;
    layers[1].num_directions = 1;
    layers[1].activations[0] = LSTMRT_ACT_LINEAR;
    layers[1].weights[0].weight_ih = weight;
    layers[1].weights[0].bias_ih = bias;
    lstmrt_model_t *m;
    lstmrt_stream_t *s;
    if (lstmrt_model_create(layers, 2, &m) || lstmrt_stream_create(m, 1, &s)) {
        fprintf(stderr, "%s\n", lstmrt_last_error());
        return 1;
    }
    float y[OUTPUT];
    for (int t = 0; t < STEPS; t++) {
        if (lstmrt_stream_step(s, &x[t * INPUT], NULL, y)) {
            fprintf(stderr, "%s\n", lstmrt_last_error());
            return 1;
        }
        for (int o = 0; o < OUTPUT; o++)
            printf("%.9g\n", y[o]);
    }
    lstmrt_stream_free(s);
    lstmrt_model_free(m);
    return 0;
}
"""


def _c_array(name, a):
    return f"static const float {name}[] = {{{', '.join(repr(float(v)) + 'f' for v in a.ravel())}}};\n"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler")
def test_python_loaded_model_runs_from_c(rng, tmp_path):
    """The README's route from a trained torch model to the C API: lstmrt.load's layer specs hold the canonical
    float32 arrays; a C program built from lstmrt.h and liblstmrt.a alone streams what torch computes."""
    torch = pytest.importorskip("torch")
    from conftest import assert_close

    import lstmrt

    torch.manual_seed(int(rng.integers(2**31)))
    net = torch.nn.Sequential(torch.nn.LSTM(3, 17, batch_first=True), torch.nn.Linear(17, 2)).eval()
    torch.save(net.state_dict(), tmp_path / "filter.pt")
    lstm, dense = lstmrt.load(tmp_path / "filter.pt", layers=["0", "1"]).layers
    X = rng.standard_normal((9, 3)).astype(np.float32)
    header = (
        f"#define INPUT 3\n#define HIDDEN 17\n#define OUTPUT 2\n#define STEPS {len(X)}\n"
        + "".join(
            _c_array(name, getattr(spec, name))
            for spec, names in [(lstm, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]), (dense, ["weight", "bias"])]
            for name in names
        )
        + _c_array("x", X)
    )
    (tmp_path / "weights.h").write_text(header)
    (tmp_path / "filter.c").write_text(C_FILTER)
    build = tmp_path / "build"
    made = subprocess.run(["make", "-C", str(NATIVE), f"BUILD={build}"], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stdout[-4000:] + made.stderr[-4000:]
    program = tmp_path / "filter"
    subprocess.run(
        [
            "cc",
            "-std=c99",
            "-Wall",
            "-Werror",
            f"-I{NATIVE / 'include'}",
            f"-I{tmp_path}",
            str(tmp_path / "filter.c"),
            str(build / "liblstmrt.a"),
            "-lm",
            "-pthread",
            "-o",
            str(program),
        ],
        check=True,
        timeout=120,
    )
    got = np.loadtxt(subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout.splitlines())
    with torch.no_grad():
        net = net.double()
        want = net[1](net[0](torch.from_numpy(X[None].astype(np.float64)))[0])[0].numpy()
    assert_close(got.reshape(want.shape), want)
