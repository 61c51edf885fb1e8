"""Helpers shared by the primitives: argument checks the stdlib makes, waiter counts.

``check_lock_args`` reproduces ``_thread.lock.acquire``'s argument errors exactly by
asking a fresh (free, private) ``_thread`` lock to parse the same arguments, so plait's
messages never drift from the running interpreter's.
"""

from __future__ import annotations

import asyncio
import time
from _thread import allocate_lock
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from plait._core import WaitQueue

__all__ = ["MIGRATED", "READY", "check_lock_args", "time_left", "waiting_by_kind"]

#: What a waiter is handed when its primitive was promoted to the cross-process backend
#: while it waited: it must wait again, on the shared state.
MIGRATED: Any = type("Migrated", (), {"__repr__": lambda self: "<migrated>"})()


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

    ``None`` means wait forever, ``0.0`` means try once, a positive float is a timeout.
    """
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
