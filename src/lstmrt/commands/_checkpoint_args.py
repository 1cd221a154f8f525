"""Options shared by the subcommands that load a checkpoint (inspect, run): they map onto lstmrt.load."""

import pickle

from ._errors import CommandError, describe

# what lstmrt.load raises for a file or an option it cannot use (LoadError is a ValueError)
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, ImportError, pickle.UnpicklingError)


def add_load_arguments(parser):
    parser.add_argument("file", help="checkpoint: torch.save (zip or legacy), TorchScript, safetensors, Keras, .lstmrt")
    parser.add_argument("--key", help="where a checkpoint dict nests the state dict (default: the one candidate)")
    parser.add_argument("--prefix", help="load only the modules under this dotted path, e.g. decoder.rnn")
    parser.add_argument(
        "--layers",
        metavar="NAMES|ARCH.json",
        help="PyTorch files: the forward order, comma-separated module and activation names, e.g. "
        "gru,head,relu; Keras weights-only files: the architecture, a .json file holding "
        "model.to_json() (a full .keras/.h5 model carries its own)",
    )


def load_from_args(args):
    """(Model, info) for the parsed options; a file or option lstmrt cannot use raises CommandError (no traceback).
    lstmrt's load warnings (LayerOrderWarning) go to stderr as one line each, like its errors."""
    import warnings

    from ..errors import LayerOrderWarning
    from ..loaders.load import load_with_info

    try:
        layers = _layers_option(args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LayerOrderWarning)
            loaded = load_with_info(args.file, key=args.key, prefix=args.prefix, layers=layers)
    except LOAD_ERRORS as exc:
        raise CommandError(describe(exc)) from None
    _report(caught, getattr(args, "command", "load"))
    return loaded


def _report(caught, command: str) -> None:
    """Python's own display would point at lstmrt's __main__; anything but lstmrt's warnings is warned again as it
    came."""
    import sys
    import warnings

    from ..errors import LayerOrderWarning

    for w in caught:
        if issubclass(w.category, LayerOrderWarning):
            print(f"lstmrt {command}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _layers_option(args):
    """--layers as lstmrt.load takes it. Its meaning depends on the format, so the format is read first."""
    from ..loaders.load import detect_format
    from ..loaders.safety import file_errors

    with file_errors(args.file, reading=True):
        keras = detect_format(args.file) == "keras"
    if keras:
        return _keras_architecture(args.file, args.layers)
    return [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None


def _keras_architecture(path, option):
    """The architecture dict for a Keras weights-only file, None for any other Keras file. A comma-split list
    never fits Keras: a full model needs nothing, a weights-only file needs its model.to_json()."""
    from ..loaders.keras import keras_file_kind
    from ..loaders.keras_files import architecture

    kind = keras_file_kind(path)
    if kind == "model" and option is not None:
        raise CommandError(
            f"{path} is a full Keras model (its architecture is in the file): it takes no --layers "
            "(--layers is the forward order of a PyTorch file, or the architecture of a Keras "
            "weights-only file)"
        )
    if kind != "weights":
        return None  # a full model; or not a Keras file after all, which the loader explains
    if option is None:
        raise CommandError(
            f"{path} holds Keras weights only: give the architecture with --layers ARCH.json "
            "(model.to_json() saved to a file)"
        )
    try:
        return architecture(option)
    except (OSError, ValueError) as exc:
        shown = option if len(option) <= 60 else option[:57] + "..."
        raise CommandError(
            f"--layers {shown}: a Keras weights-only file needs its architecture, a .json file "
            f"holding model.to_json(): {describe(exc)}"
        ) from None
