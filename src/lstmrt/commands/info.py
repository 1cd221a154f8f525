"""lstmrt info: what this installation is and what it runs on."""

import os
import platform

# Every tier name the C library knows (native/src/dispatch.c); a build has the ones its architecture runs.
TIER_NAMES = ("scalar", "avx2", "avx512", "neon")


def add_arguments(parser):
    pass


def isa_request_note(requested, tier):
    """What LSTMRT_ISA did: the C library ignores a value it cannot use without a word (it never prints), so a
    misspelt one would otherwise look as if it had worked."""
    if requested is None or requested == "":
        return None
    if requested not in TIER_NAMES:
        return f"LSTMRT_ISA={requested!r} is not a tier name ({', '.join(TIER_NAMES)}; lower case): ignored"
    if requested != tier:
        return f"LSTMRT_ISA={requested!r} names no tier this build can lower to on this machine: ignored"
    return f"LSTMRT_ISA={requested!r}: in use"


def run(args) -> int:
    import numpy as np

    import lstmrt

    tier = lstmrt.kernel_tier()
    print(f"lstmrt {lstmrt.__version__}")
    print(f"python {platform.python_version()} on {platform.machine()} ({platform.system()})")
    print(f"numpy {np.__version__}")
    print(f"CPU features seen: {lstmrt.cpu_features() or '(none detected)'}")
    print(f"kernel tier in use: {tier}")
    note = isa_request_note(os.environ.get("LSTMRT_ISA"), tier)
    if note:
        print(note)
    return 0
