"""Compare lstmrt with PyTorch / ONNX Runtime / TFLite: `python bench/compare.py --help`.

The logic lives in the package (lstmrt.bench_compare) so that `lstmrt bench` runs the same thing."""

import sys

from lstmrt.bench_compare import main

if __name__ == "__main__":
    sys.exit(main())
