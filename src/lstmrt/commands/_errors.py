"""The one way a subcommand reports bad input: raise CommandError. lstmrt.cli.main prints
`lstmrt <command>: <message>` on stderr and exits with status 2 (argparse's status for a bad command line), never
with a traceback."""

from __future__ import annotations


class CommandError(Exception):
    """A file or option the command cannot use; the message names it and says what is wrong."""


def describe(exc: BaseException) -> str:
    """An exception's message for the user: an OSError as `path: reason`, not `[Errno 2] ...`."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])  # str(KeyError) adds quotes
    return str(exc)
