"""Seeing concurrency: deadlock detection, debug mode, and dumps of every strand.

This layer sits above the objects and tasks it watches and below the CLI; the kernel reaches
it only through the check slot it fills in (``plait._core.parking.park_checks``). Importing
it (``import plait`` does) turns deadlock detection on unless ``PLAIT_DEADLOCK_CHECK=0``, and
debug mode on when ``PLAIT_DEBUG=1``.
"""

from __future__ import annotations

from plait.diagnostics._debug import _install_default as _debug_default
from plait.diagnostics._debug import debug
from plait.diagnostics._waitfor import (
    WaitLink,
    detect_deadlocks,
    ignore_deadlocks,
    untimed_wait_of,
)
from plait.diagnostics._waitfor import _install_default as _deadlock_default

__all__ = ["WaitLink", "debug", "detect_deadlocks", "ignore_deadlocks", "untimed_wait_of"]

_deadlock_default()
_debug_default()
