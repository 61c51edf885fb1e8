"""``plait trace``: record a program's timeline, or turn a trace into an offline page.

* ``plait trace -o out.json [--html out.html] SCRIPT [ARG ...]`` runs SCRIPT exactly as
  ``plait run`` does (:mod:`plait.cli._run`: plait's primitives swapped in, deadlock
  detection, dumps) inside ``plait.trace("out.json")``; the exit status is the script's.
* ``plait trace --html out.html in.json`` writes the page for a trace already recorded --
  also one cut short by a crash (``in.json`` missing but ``in.json.parts/`` left): the page
  shows what is there and says it is partial.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``trace`` on the top-level parser's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "trace",
        help="record a program's timeline (Chrome trace JSON), or make an offline HTML page",
        description=(
            "With -o: run SCRIPT as `plait run` does and record every strand, wait, lock and "
            "channel into a Chrome trace (open it in ui.perfetto.dev), and with --html an "
            "offline page too. Without -o: `plait trace --html PAGE TRACE` writes the page "
            "for a recorded TRACE (a partial one included)."
        ),
    )
    parser.add_argument("-o", "--output", metavar="TRACE", help="the trace file to write")
    parser.add_argument("--html", metavar="PAGE", help="the offline HTML page to write")
    parser.add_argument("--green", action="store_true", help="as `plait run --green`")
    parser.add_argument("script", nargs="?", metavar="SCRIPT|TRACE", help="program (or trace)")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARG", help="its arguments")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"plait trace: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """``plait trace``'s body; returns the exit code."""
    from plait.trace import TraceOutputError, trace
    from plait.trace.session import check_output

    if args.output is None:
        if args.html is None or args.script is None or args.args:
            return _fail(
                "say what to do: `plait trace -o out.json SCRIPT [ARG ...]` records a run; "
                "`plait trace --html out.html TRACE` makes the page for a recorded trace"
            )
        return _page(args.script, args.html)
    if args.script is None:
        return _fail("-o needs the SCRIPT to run: `plait trace -o out.json SCRIPT [ARG ...]`")
    try:  # before the program runs: a run whose trace cannot be kept is not started
        check_output(args.output)
        if args.html is not None:
            check_output(args.html)
    except (TraceOutputError, TypeError) as exc:
        return _fail(str(exc))
    if not os.path.exists(args.script):
        return _fail(f"can't open file {os.path.abspath(args.script)!r}: no such file")
    from plait.cli import _run

    session = trace(args.output, html=args.html)
    try:
        session.__enter__()
    except OSError as exc:
        return _fail(str(exc))
    deadlock_exit = _run._deadlock_exit

    def write_then_exit(error: BaseException) -> None:
        # `plait run` ends a deadlocked run with os._exit: write the trace first, so the
        # deadlock is on the timeline (its strands' waits shown as still waiting).
        try:
            session.close()
            print(f"plait trace: wrote {args.output} (the run deadlocked)", file=sys.stderr)
        finally:
            deadlock_exit(error)

    _run._deadlock_exit = write_then_exit
    try:
        code = _run.run(args)
    finally:
        _run._deadlock_exit = deadlock_exit
        session.close()
    print(
        f"plait trace: wrote {args.output}"
        + (f" and {args.html}" if args.html else "")
        + (f" ({session.dropped} events dropped: the buffer was full)" if session.dropped else ""),
        file=sys.stderr,
    )
    return code


def _page(source: str, page: str) -> int:
    from plait.trace.export import load_trace
    from plait.trace.html import write_html
    from plait.trace.session import check_output, parts_dir_for

    try:
        path = check_output(page)
    except (OSError, TypeError) as exc:
        return _fail(str(exc))
    if not os.path.exists(source) and not os.path.isdir(parts_dir_for(source)):
        return _fail(f"no trace at {source!r} (and no {parts_dir_for(source)!r} left by a crash)")
    try:
        data = load_trace(source)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    write_html(data, path)
    partial = data.get("otherData", {}).get("plait", {}).get("partial")
    print(f"plait trace: wrote {path}" + (" (the trace is partial)" if partial else ""))
    return 0
