"""lstmrt run FILE INPUT -o OUTPUT: a .npy/.csv sequence through a checkpoint's model, one output row per input
step. Causal models are streamed in chunks (state carried: what a live stream would output); bidirectional ones
need the whole sequence and use predict."""

from __future__ import annotations

import sys

import numpy as np

from ..layers import Embedding
from ._checkpoint_args import add_load_arguments, load_from_args

_BAR = 30


def add_arguments(parser):
    add_load_arguments(parser)
    parser.add_argument("input", help=".npy (T, features), (B, T, features) or token ids (T,) / (B, T); or .csv "
                                      "with one row per step (a header row is skipped)")
    parser.add_argument("-o", "--output", required=True, help="where to write the outputs: .npy or .csv")
    parser.add_argument("--chunk", type=int, default=4096, help="steps per streamed chunk (default 4096)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always show the progress bar (default: on a terminal, for inputs over one chunk)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")


def run(args) -> int:
    if args.chunk < 1:
        raise SystemExit("lstmrt run: --chunk must be positive")
    _check_extension(args.output, "output")
    model, _info = load_from_args(args, "run")
    tokens = isinstance(model.layers[0], Embedding)
    X = _read(args.input, tokens)
    if not tokens and X.ndim == 1 and model.input_size == 1:
        X = X[:, None]
    batched = X.ndim == (2 if tokens else 3)
    steps = X.shape[1] if batched else X.shape[0]
    if steps == 0 or (batched and X.shape[0] == 0):
        raise SystemExit(f"lstmrt run: {args.input} has no steps (shape {X.shape})")
    show = args.progress if args.progress is not None else (sys.stderr.isatty() and steps > args.chunk)
    bar = _Progress(steps, show)
    if model.bidirectional:  # needs the whole sequence
        Y = model.predict(X)
        bar.update(steps)
    else:
        stream = model.stream(batch=X.shape[0] if batched else None)
        parts = []
        for start in range(0, steps, args.chunk):
            end = min(start + args.chunk, steps)
            parts.append(stream.run(X[:, start:end] if batched else X[start:end]))
            bar.update(end)
        Y = np.concatenate(parts, axis=1 if batched else 0)
    bar.close()
    _write(args.output, Y)
    return 0


def _check_extension(path: str, what: str) -> str:
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext not in ("npy", "csv"):
        raise SystemExit(f"lstmrt run: the {what} must be a .npy or .csv file, got {path!r}")
    return ext


def _read(path: str, tokens: bool) -> np.ndarray:
    if _check_extension(path, "input") == "npy":
        X = np.load(path, allow_pickle=False)
    else:
        try:
            X = np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError:  # a header row
            X = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)
        if tokens:
            if X.shape[1] != 1 or not np.all(X == np.round(X)):
                raise SystemExit(f"lstmrt run: {path}: this model takes token ids: one integer column")
            X = X[:, 0].astype(np.int64)
    return X


def _write(path: str, Y: np.ndarray) -> None:
    if path.lower().endswith(".npy"):
        np.save(path, Y)
        return
    if Y.ndim > 2:
        raise SystemExit(f"lstmrt run: a batch of sequences {Y.shape} does not fit a .csv; write a .npy")
    np.savetxt(path, Y.reshape(len(Y), -1), delimiter=",", fmt="%.9g")


class _Progress:
    """A one-line bar on stderr, redrawn in place."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.drawn = max(total, 1), enabled, False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        filled = _BAR * done // self.total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {100 * done // self.total:3d}% "
                         f"{done}/{self.total} steps")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
