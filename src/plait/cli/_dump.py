"""``plait dump PID [--json]``: print every strand of a running plait process and of the
plait processes below it, each under its parent."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``dump`` on the top-level parser's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dump",
        help="print every strand of a running plait process and what it waits on",
        description=(
            "Ask a running plait process of this user (started under `plait run`, or with "
            "PLAIT_DEBUG=1, or one that called plait.diagnostics.serve_dumps()) for every "
            "strand it has: kind, name, state, what it waits on and who holds that, its "
            "stack and its scope."
        ),
    )
    parser.add_argument("pid", type=int, metavar="PID", help="the process to ask")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``plait dump``'s body; returns the exit code."""
    import json

    from plait.diagnostics._tree import render_tree, tree

    data = tree(args.pid)
    if data.get("error"):
        print(f"plait dump: {data['error']}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if args.json else render_tree(data))
    return 0
