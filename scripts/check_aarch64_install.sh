#!/usr/bin/env bash
# Manual check (not CI) that `pip install .` works on AArch64 and that the package then works there: setup.py's
# AArch64 path (native/src/kernels/neon.c, LSTMRT_HAVE_NEON_KERNELS) on an x86 Debian machine, under qemu-user.
#
#   scripts/check_aarch64_install.sh [WORKDIR]        (WORKDIR defaults to /tmp/lstmrt-aarch64)
#
# 1. An arm64 CPython 3.11 from Debian's arm64 packages (apt-get download + dpkg -x into WORKDIR/sysroot, with a
#    private apt configuration: nothing is added to the host's dpkg architectures or root filesystem).
# 2. A venv for it (numpy, pybind11, Cython, setuptools, pytest from PyPI), then `pip install --no-build-isolation`
#    of a fresh clone of this repo's committed HEAD, compiled by the aarch64-linux-gnu cross compilers.
# 3. Under qemu: import, `lstmrt info` (tier must be neon), `lstmrt demo`, predict() on every tier against the
#    float64 oracle tests/reference.py, and the pytest files that need neither torch nor TensorFlow.
#
# Needs (host, x86 Debian): qemu-user gcc-aarch64-linux-gnu g++-aarch64-linux-gnu git, network to Debian and PyPI.
# Idempotent: the sysroot and venv are kept between runs (delete WORKDIR to start over); the clone and the build
# are redone every run. Exits non-zero on the first failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=$(realpath -m "${1:-/tmp/lstmrt-aarch64}")
S=$W/sysroot
PY=$W/venv/bin/python
mkdir -p "$W"
cd "$W"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

for tool in qemu-aarch64 aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ apt-get dpkg git; do
    command -v "$tool" >/dev/null ||
        die "$tool not found (apt-get install qemu-user gcc-aarch64-linux-gnu g++-aarch64-linux-gnu git)"
done
. /etc/os-release
[ "${ID:-}" = debian ] || die "this script fetches Debian arm64 packages; the host is ${ID:-unknown}"

# ---------------------------------------------------------------------------------------------------------------
say "1. arm64 CPython 3.11 sysroot ($S)"
if [ ! -e "$S/.complete" ]; then
    # A private apt state for arm64 only, same Debian release as the host so the versions match.
    A=$W/apt
    mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/sources" "$A/preferences.d" "$A/debs"
    : > "$A/status"
    cat > "$A/sources/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $VERSION_CODENAME $VERSION_CODENAME-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $VERSION_CODENAME-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat > "$A/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Dir::State "$A";
Dir::State::Lists "$A/lists";
Dir::State::status "$A/status";
Dir::Cache "$A/cache";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$A/sources";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$A/preferences.d";
EOF
    export APT_CONFIG=$A/apt.conf
    apt-get update -qq
    # Every library python3.11 (+ -dev for Python.h, + -venv for ensurepip) needs, and libstdc++ for the pybind11
    # extension. Tools that only matter to a real dpkg install (perl, debconf, dpkg, ...) are left out.
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
        --no-enhances python3.11 python3.11-dev python3.11-venv libstdc++6 2>/dev/null |
        grep -v '^[ <]' | sort -u |
        grep -Ev '^(perl|libperl|cdebconf|debconf|dpkg|tar|install-info|libnewt|libslang|libtextwrap|libdebian-installer|ca-certificates|openssl)' \
        > "$A/packages.txt"
    (cd "$A/debs" && rm -f ./*.deb && apt-get download -qq $(cat "$A/packages.txt") 2>&1 | grep -v unsandboxed || true)
    [ "$(ls "$A/debs" | wc -l)" -eq "$(wc -l < "$A/packages.txt")" ] || die "not every arm64 package downloaded"
    rm -rf "$S" && mkdir -p "$S"
    for deb in "$A"/debs/*.deb; do dpkg -x "$deb" "$S"; done
    unset APT_CONFIG
    touch "$S/.complete"
fi
qemu-aarch64 -L "$S" "$S/usr/bin/python3.11" -c 'import platform, sys; assert platform.machine() == "aarch64"' ||
    die "the arm64 python3.11 does not run under qemu-aarch64"

# ---------------------------------------------------------------------------------------------------------------
say "2. venv ($W/venv), build deps, build and install lstmrt from a clone of $REPO"
if [ ! -e "$W/venv/.complete" ]; then
    rm -rf "$W/venv"
    qemu-aarch64 -L "$S" "$S/usr/bin/python3.11" -m venv --without-pip "$W/venv"
    # The venv's python must be something the host kernel can exec: there is no binfmt_misc registration in a
    # container, so a child process started with sys.executable (pip's build backend, the tests' subprocesses)
    # would get "Exec format error" from an aarch64 ELF. A shell script that re-enters qemu works, and qemu's
    # -0 passes the script's path as argv[0], so Python finds pyvenv.cfg and sys.executable is the script.
    rm "$W/venv/bin/python3.11"
    cat > "$W/venv/bin/python3.11" <<EOF
#!/bin/sh
exec qemu-aarch64 -L "$S" -0 "\$0" "$S/usr/bin/python3.11" "\$@"
EOF
    chmod +x "$W/venv/bin/python3.11"
    # ensurepip reads /usr/share/python-wheels: qemu -L finds it in the sysroot.
    "$PY" -m ensurepip > /dev/null
    "$PY" -m pip install -q --upgrade pip setuptools wheel
    touch "$W/venv/.complete"
fi
# Build deps (pyproject.toml) and test deps; all have manylinux aarch64 wheels or are pure Python. h5py lets the
# HDF5 loader tests run. torch is left out: its aarch64 wheel pulls in gigabytes of CUDA wheels.
DEPS='import numpy, pybind11, Cython, setuptools, pytest, hypothesis, h5py'
"$PY" -c "$DEPS" 2>/dev/null ||
    "$PY" -m pip install -q --only-binary=:all: "numpy>=2" "pybind11>=2.12" "Cython>=3" "setuptools>=64" wheel \
        pytest hypothesis h5py
"$PY" -c "$DEPS" || die "build/test deps missing in the venv"

rm -rf "$W/src"
git clone -q "$REPO" "$W/src"
# The cross compilers are x86 programs: started by the qemu'd Python they run natively on the host. sysconfig's
# INCLUDEPY is the baked-in /usr/include/python3.11 (the host's headers if it has python3.11-dev), so the
# sysroot's Python.h goes first; -idirafter lets its pyconfig.h find <aarch64-linux-gnu/python3.11/pyconfig.h>
# without the sysroot's libc headers shadowing the cross toolchain's. setuptools adds CPPFLAGS to C and C++.
export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++
export LDSHARED="aarch64-linux-gnu-gcc -shared" LDCXXSHARED="aarch64-linux-gnu-g++ -shared"
export CPPFLAGS="-I$S/usr/include/python3.11 -idirafter $S/usr/include"
(cd "$W/src" && "$PY" -m pip install -v --no-deps --no-build-isolation --force-reinstall . > "$W/build.log" 2>&1) ||
    { tail -40 "$W/build.log"; die "pip install . failed (log: $W/build.log)"; }
unset CC CXX LDSHARED LDCXXSHARED CPPFLAGS
grep -q -- '-DLSTMRT_HAVE_NEON_KERNELS=1' "$W/build.log" || die "setup.py did not define LSTMRT_HAVE_NEON_KERNELS"
grep -q 'kernels/neon.c' "$W/build.log" || die "setup.py did not compile native/src/kernels/neon.c"
echo "built and installed (log: $W/build.log)"

# ---------------------------------------------------------------------------------------------------------------
say "3. checks under qemu-aarch64 (run outside the clone so the installed package is the one imported)"
unset LSTMRT_ISA
location=$("$PY" -c 'import lstmrt; print(lstmrt.__file__)')
echo "import lstmrt: $location"
case $location in "$W/venv/"*) ;; *) die "imported lstmrt from $location, not the venv";; esac

"$PY" -m lstmrt.cli info | tee "$W/info.txt"
grep -q 'kernel tier in use: neon' "$W/info.txt" || die "kernel tier is not neon"
LSTMRT_ISA=scalar "$PY" -m lstmrt.cli info | grep -q 'kernel tier in use: scalar' || die "LSTMRT_ISA=scalar ignored"

"$PY" -m lstmrt.cli demo | tee "$W/demo.txt"
grep -q 'kernel tier neon' "$W/demo.txt" || die "demo did not run on the neon tier"

# predict() on the scalar and the default (neon) tier, one process each, against the float64 oracle.
cat > "$W/numcheck.py" <<'EOF'
"""Model.predict on the scalar and default tiers (a subprocess each: the tier is chosen once per process) against
the float64 NumPy oracle tests/reference.py. Usage: numcheck.py TESTS_DIR OUT_DIR"""
import os
import subprocess
import sys

import numpy as np

TOL = 1e-5  # the engine's contract (tests/conftest.py ATOL)
# name -> (kind, input_size, hidden_size, layers, proj_size, batch, steps, input scale), as in tests/test_isa_tiers.py
CASES = {
    "lstm-7-33x2-T500": ("lstm", 7, 33, 2, 0, 3, 500, 1.0),
    "lstm-16-64-saturating": ("lstm", 16, 64, 1, 0, 2, 200, 8.0),
    "lstm-3-130-proj17": ("lstm", 3, 130, 1, 17, 2, 120, 1.0),
    "lstm-64-256": ("lstm", 64, 256, 1, 0, 1, 40, 1.0),
    "gru-5-17-T500": ("gru", 5, 17, 1, 0, 2, 500, 1.0),
}


def build(name):
    """Layers with torch's default init U(-1/sqrt(H), 1/sqrt(H)) and an input (B, T, I), fixed per case."""
    import lstmrt
    kind, I, H, L, P, B, T, scale = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    k, layers, size = 1 / np.sqrt(H), [], I

    def u(*shape):
        return rng.uniform(-k, k, shape).astype(np.float32)

    for _ in range(L):
        if kind == "lstm":
            hr = P or H
            layers.append(lstmrt.LSTM(u(4 * H, size), u(4 * H, hr), u(4 * H), u(4 * H),
                                      weight_hr=u(P, H) if P else None))
            size = hr
        else:
            layers.append(lstmrt.GRU(u(3 * H, size), u(3 * H, H), u(3 * H), u(3 * H)))
            size = H
    return layers, (rng.standard_normal((B, T, I)) * scale).astype(np.float32)


def worker(out):
    import lstmrt
    res = {"tier": lstmrt.kernel_tier()}
    for name in CASES:
        layers, X = build(name)
        res[name] = np.asarray(lstmrt.Model(layers).predict(X), np.float64)
    np.savez(out, **res)


def main(tests_dir, out_dir):
    sys.path.insert(0, tests_dir)
    import reference as ref
    got = {}
    for tier in ("scalar", "default"):
        out = os.path.join(out_dir, f"numcheck-{tier}.npz")
        env = {k: v for k, v in os.environ.items() if k != "LSTMRT_ISA"}
        if tier != "default":
            env["LSTMRT_ISA"] = tier
        subprocess.run([sys.executable, __file__, "--worker", out], env=env, check=True)
        got[tier] = np.load(out)
    tiers = {k: str(v["tier"]) for k, v in got.items()}
    ok = tiers == {"scalar": "scalar", "default": "neon"}
    print(f"tiers: {tiers}")
    for name in CASES:
        layers, X = build(name)
        want = ref.predict(layers, X)
        neon, scalar = got["default"][name], got["scalar"][name]
        e_neon, e_scalar = float(np.abs(neon - want).max()), float(np.abs(scalar - want).max())
        e_diff = float(np.abs(neon - scalar).max())
        good = bool(np.isfinite(want).all()) and max(e_neon, e_scalar) <= TOL
        ok &= good
        print(f"  {name:24s} max|neon-ref| {e_neon:.2e}  max|scalar-ref| {e_scalar:.2e}  "
              f"max|neon-scalar| {e_diff:.2e}  {'ok' if good else 'FAIL'}")
    print(f"numerical check: {'PASS' if ok else 'FAIL'} (tolerance {TOL:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        sys.exit(main(sys.argv[1], sys.argv[2]))
EOF
"$PY" "$W/numcheck.py" "$W/src/tests" "$W" | tee "$W/numcheck.txt"
grep -q 'numerical check: PASS' "$W/numcheck.txt" || die "numerical check failed"

# The test files that need neither torch nor TensorFlow (tests needing torch/tf_keras/matplotlib skip themselves).
# Left out: test_native_c / test_native_sanitizers (build native/ with the host's cc: x86, not this target), and
# files that import torch or need it for every test (test_against_*, test_isa_tiers, test_load_torch, ...).
# Deselected: the hostile-files case whose helper child must segfault within a 1 s timeout; under qemu a Python
# child takes about 0.9 s just to start, so on a busy machine it times out instead (it passes when run alone).
TESTS="test_api_errors.py test_predict_threads.py test_threads.py test_memory.py test_streaming.py test_demo.py
       test_load_dispatch.py test_load_without_frameworks.py test_hostile_files.py"
(cd "$W/src" && "$PY" -m pytest -q -p no:cacheprovider $(printf 'tests/%s ' $TESTS) \
    --deselect 'tests/test_hostile_files.py::test_hdf5_helper_failures_are_corrupt_file_errors[segfault]') |
    tee "$W/pytest.txt" || die "pytest failed"

say "summary"
echo "workdir:      $W (clone of $(git -C "$W/src" rev-parse --short HEAD))"
echo "build:        ok, neon.c compiled with LSTMRT_HAVE_NEON_KERNELS"
echo "import:       $location"
echo "info:         $(grep 'kernel tier' "$W/info.txt")"
echo "demo:         $(grep 'after filtering' "$W/demo.txt")"
echo "numerics:     $(tail -1 "$W/numcheck.txt")"
echo "pytest:       $(tail -1 "$W/pytest.txt")"
echo "AArch64 install check: PASS"
