"""Subcommands of the lstmrt command line (see lstmrt/cli.py)."""
