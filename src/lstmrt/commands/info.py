"""lstmrt info: what this installation is and what it runs on."""

import platform


def add_arguments(parser):
    pass


def run(args) -> int:
    import numpy as np

    import lstmrt

    print(f"lstmrt {lstmrt.__version__}")
    print(f"python {platform.python_version()} on {platform.machine()} ({platform.system()})")
    print(f"numpy {np.__version__}")
    print(f"CPU features seen: {lstmrt.cpu_features() or '(none detected)'}")
    print(f"kernel tier in use: {lstmrt.kernel_tier()}")
    return 0
