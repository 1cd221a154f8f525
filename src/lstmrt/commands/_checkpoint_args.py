"""Options shared by the subcommands that load a checkpoint (inspect, run): they map onto lstmrt.load."""


def add_load_arguments(parser):
    parser.add_argument("file", help="checkpoint: torch.save (zip or legacy), TorchScript, safetensors, Keras")
    parser.add_argument("--key", help="where a checkpoint dict nests the state dict (default: the one candidate)")
    parser.add_argument("--prefix", help="load only the modules under this dotted path, e.g. decoder.rnn")
    parser.add_argument("--layers", help="forward order, comma-separated module and activation names, "
                                         "e.g. gru,head,relu")


def load_from_args(args, command: str):
    """(Model, info) for the parsed options; a file lstmrt cannot load exits with its message, no traceback."""
    import pickle
    import warnings

    from ..errors import LayerOrderWarning
    from ..loaders.load import load_with_info

    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LayerOrderWarning)
            loaded = load_with_info(args.file, key=args.key, prefix=args.prefix, layers=layers)
    except (OSError, ValueError, KeyError, TypeError, ImportError, pickle.UnpicklingError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise SystemExit(f"lstmrt {command}: {message}") from None
    _report(caught, command)
    return loaded


def _report(caught, command: str) -> None:
    """lstmrt's load warnings as one line each on stderr, like its errors (Python's display would point at
    lstmrt's own __main__); anything else is warned again as it came."""
    import sys
    import warnings

    from ..errors import LayerOrderWarning

    for w in caught:
        if issubclass(w.category, LayerOrderWarning):
            print(f"lstmrt {command}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
