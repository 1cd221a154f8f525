"""The `lstmrt` command line. Each subcommand lives in lstmrt/commands/<name>.py with
`add_arguments(parser)` and `run(args) -> int`; this file only wires them up. A subcommand reports bad input by
raising CommandError: the message goes to stderr and the exit status is 2, as for a bad command line."""

from __future__ import annotations

import argparse
import importlib
import sys

from .commands._errors import CommandError

# name -> one-line help; the module lstmrt.commands.<name> implements it
COMMANDS = {
    "demo": "stream a noisy sensor signal through the shipped LSTM filter, sample by sample",
    "info": "version, CPU features seen and the kernel tier in use",
    "inspect": "print the layers, sizes and parameter count found in a checkpoint",
    "run": "stream a .npy/.csv input through a checkpoint's model",
    "export": "write a checkpoint's model as an lstmrt model file (or C array) that the C library loads alone",
    "bench": "benchmark lstmrt against PyTorch / ONNX Runtime / TFLite (when installed)",
}


def _available():
    for name, help_text in COMMANDS.items():
        try:
            yield name, help_text, importlib.import_module(f"lstmrt.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lstmrt.commands.{name}":
                raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lstmrt", description="CPU inference runtime for recurrent networks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, module in _available():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CommandError as exc:
        print(f"lstmrt {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
