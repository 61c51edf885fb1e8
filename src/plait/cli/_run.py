"""``plait run SCRIPT [ARG ...]``: run an unmodified program with plait's eyes open.

The script runs as ``__main__`` in this interpreter, as ``python SCRIPT ARG ...`` would run
it, with ``threading``'s, ``queue``'s, ``multiprocessing``'s and ``asyncio``'s primitives
swapped for plait's (for this run only: :mod:`plait.diagnostics._dropin`),
debug mode on (every lock's owner and where it was taken, deadlock detection, lock order),
the blocked-loop watchdog on (``PLAIT_WATCHDOG_MS``, default 100; 0 turns it off) and
``plait dump PID`` served; with ``--green``, the stdlib's blocking calls switch inside
green strands (:func:`plait.green.patch` for the run, as gevent's ``monkey.patch_all()``,
so the script need not call it). A deadlock -- in any thread -- ends the run at once with the
report and exit status 3 (the other strands of the cycle would wait forever). Anything else
is the script's own: its output, its traceback, its exit status.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import threading
import traceback
from types import TracebackType
from typing import Any

__all__ = ["DEADLOCK_EXIT", "add_parser", "run"]

DEADLOCK_EXIT = 3


def add_parser(subparsers: Any) -> None:
    """Register ``run`` on the top-level parser's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a program with plait's primitives, deadlock detection and dumps",
        description=(
            "Run SCRIPT as `python SCRIPT ARG ...` would, with threading's, queue's, "
            "multiprocessing's and asyncio's primitives replaced by plait's for this run "
            "only, debug mode and deadlock "
            f"detection on, and `plait dump PID` served. A deadlock ends the run with a "
            f"report and exit status {DEADLOCK_EXIT}."
        ),
    )
    parser.add_argument(
        "--green",
        action="store_true",
        help="patch the stdlib's blocking calls (time.sleep, sockets, select, subprocess "
        "waits) to switch inside green strands for this run (plait.green.patch())",
    )
    parser.add_argument("script", metavar="SCRIPT", help="the program to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARG", help="its arguments")
    parser.set_defaults(func=run)


def _own_frames_dropped(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the script's first frame on (as python SCRIPT shows it)."""
    here = os.path.dirname(os.path.abspath(__file__))
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not (name.startswith(here) or name == runpy.__file__ or "<frozen runpy>" in name):
            break
        tb = tb.tb_next
    return tb


def _deadlock_exit(error: BaseException) -> None:
    sys.stdout.flush()
    print(
        f"plait run: deadlock -- the program cannot go on; exit status {DEADLOCK_EXIT}.",
        file=sys.stderr,
    )
    sys.stderr.flush()
    from plait.diagnostics._server import stop_serving

    stop_serving()
    os._exit(DEADLOCK_EXIT)  # the other strands of the cycle would wait forever


def _thread_hook(previous: Any) -> Any:
    from plait import DeadlockError

    def hook(args: Any) -> None:
        previous(args)
        if isinstance(args.exc_value, DeadlockError):
            _deadlock_exit(args.exc_value)

    return hook


def run(args: argparse.Namespace) -> int:
    """``plait run``'s body; returns the exit code (the script's)."""
    path = args.script
    if not os.path.exists(path):
        print(
            f"{sys.executable}: can't open file {os.path.abspath(path)!r}: "
            f"[Errno 2] No such file or directory",
            file=sys.stderr,
        )
        return 2
    from plait import DeadlockError
    from plait.diagnostics import debug, serve_dumps
    from plait.diagnostics._dropin import plait_primitives

    debug(True)
    watchdog_ms = os.environ.get("PLAIT_WATCHDOG_MS", "100").strip() or "100"
    if watchdog_ms not in ("0", "off"):
        from plait.diagnostics import watch_loops

        try:
            watch_loops(float(watchdog_ms) / 1000)
        except (TypeError, ValueError) as exc:
            print(f"plait run: PLAIT_WATCHDOG_MS={watchdog_ms!r}: {exc}", file=sys.stderr)
            return 2
    try:
        serve_dumps()
    except OSError as exc:  # no usable runtime dir: the run goes on without dumps
        print(f"plait run: not serving dumps ({exc})", file=sys.stderr)
    sys.argv = [path, *args.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    previous_hook = threading.excepthook
    threading.excepthook = _thread_hook(previous_hook)
    green = getattr(args, "green", False)
    if green:
        from plait.green import patch

        patch()
    try:
        with plait_primitives():
            runpy.run_path(path, run_name="__main__")
            _wait_for_threads()
    except SystemExit as exc:
        return _exit_code(exc.code)
    except BaseException as exc:  # the script's own error, shown as python shows it
        traceback.print_exception(type(exc), exc, _own_frames_dropped(exc.__traceback__))
        if isinstance(exc, DeadlockError):
            _deadlock_exit(exc)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    finally:
        threading.excepthook = previous_hook
        if green:
            from plait.green import unpatch

            unpatch()
    return 0


def _wait_for_threads() -> None:
    """Join the non-daemon threads inside the run, as the interpreter does at exit (so a
    deadlock among them is still seen with plait's primitives in place)."""
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon and thread.is_alive():
            thread.join()


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
