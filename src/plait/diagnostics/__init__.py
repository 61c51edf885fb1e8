"""Seeing concurrency: deadlock detection, lock order, dumps of every strand, and a
watchdog for blocked event loops.

This layer sits above the objects and tasks it watches and below the CLI; the kernel reaches
it only through the check slot it fills in (``plait._core.parking.park_checks``). Importing
it (``import plait`` does) turns deadlock detection on unless ``PLAIT_DEADLOCK_CHECK=0``;
``PLAIT_DEBUG=1`` also turns debug mode on and serves ``plait dump PID``.
"""

from __future__ import annotations

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

_deadlock_default()
if debug_from_env():
    debug(True)
    serve_dumps()
