"""Seeing concurrency: deadlock detection, lock order, dumps of every strand, and a
watchdog for blocked event loops.

This layer sits above the objects and tasks it watches and below the CLI; the kernel reaches
it only through the check slot it fills in (``plait._core.parking.park_checks``). Importing
it (``import plait`` does) turns deadlock detection on unless ``PLAIT_DEADLOCK_CHECK=0``;
``PLAIT_DEBUG=1`` also turns debug mode on and serves ``plait dump PID``.
"""

from __future__ import annotations

from plait.diagnostics import _tree  # noqa: F401  (children of a serving process serve)
from plait.diagnostics._debug import debug, debug_from_env
from plait.diagnostics._dump import dump, snapshot
from plait.diagnostics._server import DumpRequestError, request_dump, serve_dumps
from plait.diagnostics._waitfor import (
    WaitLink,
    detect_deadlocks,
    ignore_deadlocks,
    untimed_wait_of,
)
from plait.diagnostics._waitfor import _install_default as _deadlock_default
from plait.diagnostics._watchdog import Watchdog, watch_loops

__all__ = [
    "DumpRequestError",
    "WaitLink",
    "Watchdog",
    "debug",
    "detect_deadlocks",
    "dump",
    "ignore_deadlocks",
    "request_dump",
    "serve_dumps",
    "snapshot",
    "untimed_wait_of",
    "watch_loops",
]


def _in_fork_server() -> bool:
    """Whether this import is the fork server's preload (a thread there would be forked)."""
    import sys
    from types import FrameType

    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "main" and frame.f_code.co_filename.endswith("forkserver.py"):
            return True
        frame = frame.f_back
    return False


_deadlock_default()
if debug_from_env():
    debug(True)
    if not _in_fork_server():  # its children serve when they start (``_tree``)
        serve_dumps()
