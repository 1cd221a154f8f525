"""lstmrt run FILE INPUT -o OUTPUT: a .npy/.csv sequence through a checkpoint's model, one output row per input
step. Causal models are streamed in chunks (state carried: what a live stream would output). Bidirectional models
need the whole sequence, and a stream cannot see a Keras mask: those run through predict, whose result is written
as it is."""

from __future__ import annotations

import io
import os
import sys

import numpy as np

from .._arrays import describe_shape
from ..layers import Embedding
from ..loaders.keras_model import KerasModel
from ._checkpoint_args import add_load_arguments, load_from_args
from ._errors import CommandError

_BAR = 30


def add_arguments(parser):
    parser.epilog = (
        "Bidirectional models and Keras models with a mask (Masking, Embedding(mask_zero=True)) run "
        "through predict on the whole input, since a stream never sees a mask; the output is what "
        "predict returns. A bad input, output or option: a message on stderr and exit status 2."
    )
    add_load_arguments(parser)
    parser.add_argument(
        "input",
        help=".npy (T, features), (B, T, features) or token ids (T,) / (B, T); or .csv "
        "with one row per step, comma-separated (# starts a comment). "
        "Integer data (e.g. ADC counts) is converted to float32, except for models "
        "that take token ids",
    )
    parser.add_argument("-o", "--output", required=True, help="where to write the outputs: .npy or .csv")
    parser.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the first line of a .csv input is a header. auto (default): it is when it "
        "is not all numbers, or when it is 0,1,...,n-1 (what pandas writes above unnamed "
        "columns; a lone 0 only above non-integer rows), and a note on stderr names the "
        "skipped line; yes / no: it is / is not",
    )
    parser.add_argument("--chunk", type=int, default=4096, help="steps per streamed chunk (default 4096)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show the progress bar (default: on a terminal, for inputs over one chunk)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")


def run(args) -> int:
    if args.chunk < 1:
        raise CommandError("--chunk must be positive")
    _check_output(args.output)
    model, _info = load_from_args(args)
    tokens = isinstance(model.layers[0], Embedding)
    X = _read(args.input, tokens, args.header)
    X, batched = _fit_model(X, model, tokens, args.input)
    steps = X.shape[1] if batched else X.shape[0]
    show = args.progress if args.progress is not None else (sys.stderr.isatty() and steps > args.chunk)
    bar = _Progress(steps, show)
    try:
        Y = _outputs(model, X, batched, args.chunk, bar)
    except (TypeError, ValueError) as exc:  # what validation above cannot see, e.g. a token id out of range
        raise CommandError(f"{args.input}: {exc}") from None
    finally:
        bar.close()
    _write(args.output, Y)
    return 0


def _needs_predict(model) -> bool:
    """Bidirectional layers need the whole sequence; a Keras mask is derived from it by predict (streams never
    see one, so streaming would feed masked steps as data)."""
    masked = isinstance(model, KerasModel) and (model.mask_value is not None or model.mask_zero)
    return model.bidirectional or masked


def _outputs(model, X, batched: bool, chunk: int, bar) -> np.ndarray:
    steps = X.shape[1] if batched else X.shape[0]
    if _needs_predict(model):
        Y = model.predict(X if batched else X[None])  # a batch of one: a 2-D X may read as (B, T) (squeeze_input)
        Y = Y if batched else Y[0]
        bar.update(steps)
        # a model that squeezes its one output feature (torch's .squeeze(-1)) keeps it here: a row per step, as
        # streamed models write
        return Y[..., None] if model.squeeze_output else Y
    stream = model.stream(batch=X.shape[0] if batched else None)
    parts = []
    for start in range(0, steps, chunk):
        end = min(start + chunk, steps)
        parts.append(stream.run(X[:, start:end] if batched else X[start:end]))
        bar.update(end)
    return np.concatenate(parts, axis=1 if batched else 0)


# -- input ----------------------------------------------------------------------------------------------------
def _check_extension(path: str, what: str) -> str:
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext not in ("npy", "csv"):
        raise CommandError(f"the {what} must be a .npy or .csv file, got {path!r}")
    return ext


def _read(path: str, tokens: bool, header: str) -> np.ndarray:
    if _check_extension(path, "input") == "csv":
        X = _read_csv(path, header)
        if tokens and X.size:
            if X.shape[1] != 1:
                raise CommandError(f"{path}: this model takes token ids: one integer column")
            ids = X[:, 0]
            bad = ~np.isfinite(ids) | (ids != np.round(ids)) | (np.abs(ids) >= 2.0**63)  # int64 holds the rest
            if bad.any():
                step = int(np.argmax(bad))
                raise CommandError(f"{path}: token id {ids[step]:g} at step {step} is not an integer of int64's range")
            X = ids.astype(np.int64)
        return X
    try:
        X = np.load(path, allow_pickle=False)
    except OSError as exc:  # missing, a directory, no permission
        raise CommandError(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, EOFError) as exc:  # not a .npy, truncated, object arrays
        raise CommandError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(X, np.ndarray):  # np.load also opens .npz archives
        X.close()
        raise CommandError(f"{path}: an .npz archive; save one array with np.save")
    return _numeric(X, tokens, path)


def _numeric(X: np.ndarray, tokens: bool, path: str) -> np.ndarray:
    """The Python API takes floats only (integers are token ids there). A file tool converts integer samples (ADC
    counts, booleans), as a user expects; token models keep their integer ids."""
    kind = X.dtype.kind
    if tokens and kind in "iuf":
        return X  # predict checks that the ids are whole numbers within the vocabulary
    if not tokens and kind == "f":
        return X
    if not tokens and kind in "iub":
        return X.astype(np.float32)
    want = "integer token ids" if tokens else "numbers (floating-point or integer)"
    raise CommandError(f"{path}: dtype {X.dtype}; this model takes {want}")


def _fit_model(X: np.ndarray, model, tokens: bool, path: str) -> tuple:
    """(X, batched) in one of the shapes the model takes; any other shape, or no steps, raises CommandError."""
    size = model.input_size
    if X.ndim and X.shape[0] == 0:  # before the shape check: an empty CSV has no columns either
        raise CommandError(f"{path} has no steps (shape {describe_shape(X.shape)})")
    if not tokens and X.ndim == 1 and size == 1:
        X = X[:, None]
    if tokens and X.ndim in (1, 2):
        batched = X.ndim == 2
    elif not tokens and X.ndim in (2, 3) and X.shape[-1] == size:
        batched = X.ndim == 3
    elif path.lower().endswith(".csv") and X.ndim == 2:
        raise CommandError(f"{path}: {X.shape[1]} columns; this model takes {size} (one row per step)")
    else:
        want = "(T,) or (B, T) token ids" if tokens else f"(T, {size}) or (B, T, {size})"
        raise CommandError(f"{path}: shape {describe_shape(X.shape)}; this model takes {want}")
    if batched and X.shape[1] == 0:
        raise CommandError(f"{path} has no steps (shape {describe_shape(X.shape)})")
    return X, batched


# -- CSV ------------------------------------------------------------------------------------------------------
def _read_csv(path: str, header: str) -> np.ndarray:
    """(rows, columns) float64. NumPy parses; on failure the lines are scanned to name the line and field at
    fault, numbered as in an editor."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: spreadsheet exports open with a byte order mark
            text = f.read()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # UnicodeDecodeError
        raise CommandError(f"{path}: not a text .csv ({exc})") from None
    lines = text.split("\n")  # text mode turned \r\n and \r into \n, as NumPy will count them
    found = _data_lines(lines, 0)
    first, second = next(found, None), next(found, None)
    skip = 0  # lines NumPy skips (comments and blank lines included)
    if first is not None and _is_header(lines, first, second, header):
        skip, first = first + 1, second
        if header == "auto":
            print(
                f"lstmrt run: note: {path}: line {skip} ({lines[skip - 1].strip()[:60]!r}) read as a header "
                "and skipped; --header no reads it as data",
                file=sys.stderr,
            )
    if first is None:
        return np.zeros((0, 0))
    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", comments="#", skiprows=skip, ndmin=2)
    except ValueError as exc:
        raise CommandError(_csv_fault(path, lines, first) or f"{path}: {exc}") from None


def _data_lines(lines: list, start: int):
    """Indices of the lines from `start` that hold data (not blank, not only a comment)."""
    return (i for i in range(start, len(lines)) if _fields(lines[i]))


def _fields(line: str) -> list:
    """The comma-separated fields of a line, comments cut; [] for a blank or comment line."""
    data = line.split("#", 1)[0].strip()
    return [field.strip() for field in data.split(",")] if data else []


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _is_integer(field: str) -> bool:
    return field.lstrip("+-").isdigit()


def _is_header(lines: list, first: int, second, header: str) -> bool:
    """Whether line `first` (the first data line) is a header; `second` is the next data line or None."""
    if header != "auto":
        return header == "yes"
    fields = _fields(lines[first])
    if not all(_is_number(field) for field in fields):
        return True
    if fields != [str(i) for i in range(len(fields))]:
        return False
    # pandas' header for unnamed columns. A lone "0" is also a likely first sample or token id: a header only
    # above rows that are not integers
    below = _fields(lines[second]) if second is not None else []
    return len(fields) > 1 or any(not _is_integer(field) for field in below)


def _csv_fault(path: str, lines: list, first: int) -> str | None:
    """The first bad line from data line `first` on: a field that is not a number, or a field count unlike the
    first row's."""
    width = len(_fields(lines[first]))
    for i in _data_lines(lines, first):
        fields = _fields(lines[i])
        if len(fields) != width:
            return f"{path}: line {i + 1} has {len(fields)} fields, line {first + 1} has {width}"
        for column, field in enumerate(fields, 1):
            if not field:
                return f"{path}: line {i + 1}, field {column} is empty"
            if not _is_number(field):
                return f"{path}: line {i + 1}, field {column}: {field!r} is not a number"
    return None


# -- output ---------------------------------------------------------------------------------------------------
def _check_output(path: str) -> None:
    """Before any work: a run that cannot write its result should fail at once."""
    _check_extension(path, "output")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"{path}: the directory {folder} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"{path}: is a directory")


def _write(path: str, Y: np.ndarray) -> None:
    csv = path.lower().endswith(".csv")
    if csv and Y.ndim > 2:
        raise CommandError(f"a batch of sequences {describe_shape(Y.shape)} does not fit a .csv; write a .npy")
    try:
        with open(path, "wb") as f:  # np.save(path) would append .npy to a name ending in .NPY
            if csv:  # atleast_2d: predict's single output (O,) of a return_sequences=False model is one row
                np.savetxt(f, np.atleast_2d(Y), delimiter=",", fmt="%.9g")
            else:
                np.save(f, Y)
    except OSError as exc:
        raise CommandError(f"{path}: cannot write the output: {exc.strerror or exc}") from None


class _Progress:
    """A one-line bar on stderr, redrawn in place."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.drawn = max(total, 1), enabled, False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        filled = _BAR * done // self.total
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {100 * done // self.total:3d}% {done}/{self.total} steps"
        )
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
