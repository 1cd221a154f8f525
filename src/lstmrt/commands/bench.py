"""lstmrt bench: lstmrt against PyTorch / ONNX Runtime / TFLite, interleaved, in one process.
The logic is lstmrt.bench_compare (shared with bench/compare.py)."""

from ..bench_compare import add_arguments, run_from_args


def run(args) -> int:
    return run_from_args(args)


__all__ = ["add_arguments", "run"]
