"""Helpers shared by the primitives: argument checks the stdlib makes, waiter counts.

``check_lock_args`` reproduces ``_thread.lock.acquire``'s argument errors exactly by
asking a fresh (free, private) ``_thread`` lock to parse the same arguments, so plait's
messages never drift from the running interpreter's.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import time
from _thread import allocate_lock
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from plait._core import WaitQueue, check_timeout
from plait._ipc.promotion import MIGRATED  # (handed to waiters on promotion: wait again)

__all__ = [
    "BROKEN",
    "DRAINING",
    "FILLING",
    "MIGRATED",
    "READY",
    "RESETTING",
    "check_lock_args",
    "stdlib_timeout",
    "time_left",
    "waiting_by_kind",
]


#: A Barrier's phases, local or shared: *filling* (parties arrive), *draining* (the last
#: one arrived; everyone leaves), *resetting* (``reset()`` while parties waited), *broken*.
FILLING, DRAINING, RESETTING, BROKEN = 0, 1, -1, -2


class _NoLoop:
    """Just enough of a loop to build a future that is born done."""

    def get_debug(self) -> bool:
        return False


#: An awaitable that is already done (result ``None``): what an ``__aenter__`` whose fast
#: path succeeded returns instead of a coroutine; awaiting a done future never touches
#: its loop, so one object serves every loop and thread.
READY: asyncio.Future[None] = asyncio.Future(loop=_NoLoop())  # type: ignore[arg-type]
READY.set_result(None)


def check_lock_args(blocking: Any, timeout: Any) -> float | None:
    """Validate ``acquire(blocking, timeout)`` as threading does; return the wait.

    ``None`` means wait forever, ``0.0`` means try once, a positive float is a timeout. A
    string or NaN gets plait's clear message first; everything else (``acquire(False, 1)``,
    a negative other than -1, ``inf``'s ``OverflowError``) is exactly threading's.
    """
    if timeout == -1 or (type(timeout) is float and timeout >= 0):
        pass  # the common cases, parsed by the probe below
    elif not isinstance(timeout, numbers.Real) or math.isnan(timeout):
        check_timeout(timeout)  # TypeError / ValueError naming what was wrong
    probe = allocate_lock()
    probe.acquire(blocking, timeout)  # raises what threading raises; a free lock never waits
    if not blocking:
        return 0.0
    if timeout == -1:
        return None
    return float(timeout)


def waiting_by_kind(queue: WaitQueue) -> Mapping[str, int]:
    """How many strands of each kind wait in ``queue`` (call with its mutex held)."""
    counts: dict[str, int] = {}
    for waiter in queue:
        kind = waiter.strand.kind
        counts[kind] = counts.get(kind, 0) + 1
    return MappingProxyType(counts)


def time_left(timeout: float | None, started: float) -> float | None:
    """What is left of ``timeout`` seconds counted from ``started`` (``time.monotonic``).

    A wait that moves to the shared state mid-way (the object was sent to a process)
    continues with this, so its timeout still counts from the original call.
    """
    if timeout is None:
        return None
    return max(0.0, timeout - (time.monotonic() - started))


def stdlib_timeout(timeout: Any) -> float | None:
    """A wait's ``timeout`` read as threading's Event, Condition, Semaphore and Barrier read
    it, but checked: ``None`` or ``inf`` -- no limit; a number <= 0 -- don't wait (0.0); a
    positive number -- itself. NaN raises ``ValueError`` and a non-number ``TypeError``
    (threading would wait for ever, return at once, or fail on a comparison)."""
    if timeout is None:
        return None
    if type(timeout) is not float and type(timeout) is not int:
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
            check_timeout(timeout)  # raises the TypeError
        timeout = float(timeout)
    if timeout > 0:
        return None if timeout == math.inf else float(timeout)
    if timeout <= 0:
        return 0.0
    raise ValueError("timeout must be a number of seconds, not NaN")
