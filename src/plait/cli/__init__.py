"""The ``plait`` command: ``plait --version``, ``plait tour [--list] [NAME ...]``,
``plait run SCRIPT [ARG ...]``, ``plait dump PID [--json]``, ``plait trace -o OUT SCRIPT``.

Each subcommand lives in its own module with an ``add_parser(subparsers)`` that registers it
and sets ``func`` (``args -> exit code``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from plait.cli import _dump, _run, _tour, _trace

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, subcommands included."""
    from plait import __version__

    parser = argparse.ArgumentParser(
        prog="plait",
        description="plait: coroutines, threads and processes braided into one API.",
    )
    parser.add_argument("--version", action="version", version=f"plait {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _tour.add_parser(subparsers)
    _run.add_parser(subparsers)
    _dump.add_parser(subparsers)
    _trace.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the ``plait`` script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `plait tour | head`: stop quietly, like other commands do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code
