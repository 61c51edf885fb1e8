"""Synchronisation primitives that work from every strand kind at once.

``Lock``, ``RLock``, ``Condition``, ``Semaphore``, ``BoundedSemaphore``, ``Event`` and
``Barrier`` are threading's, name for name; each also has ``async with`` (where
lock-like) and ``async_X`` forms of its waits. ``CapacityLimiter`` is trio's and anyio's.
All are written over the kernel's parking (``plait._core``), so a thread and coroutines on
several event loops can use one object at the same time, FIFO.

All but ``CapacityLimiter`` also cross processes: the first pickling promotes the object
-- its state moves into a shared-memory backend, its class stays (the one seam,
``plait._ipc.promotion``; backends in ``_shared`` over ``_xproc``'s segments); objects
never shared pay nothing.
``CapacityLimiter`` refuses to be pickled with a ``TypeError`` that says so.
"""

from __future__ import annotations

from plait._sync._barrier import Barrier, BrokenBarrierError
from plait._sync._condition import Condition
from plait._sync._event import Event
from plait._sync._limiter import CapacityLimiter
from plait._sync._lock import Lock
from plait._sync._rlock import RLock
from plait._sync._semaphore import BoundedSemaphore, Semaphore
from plait._sync._stats import (
    BarrierStatistics,
    CapacityLimiterStatistics,
    ConditionStatistics,
    EventStatistics,
    LockStatistics,
    SemaphoreStatistics,
)

__all__ = [
    "Barrier",
    "BarrierStatistics",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "CapacityLimiter",
    "CapacityLimiterStatistics",
    "Condition",
    "ConditionStatistics",
    "Event",
    "EventStatistics",
    "Lock",
    "LockStatistics",
    "RLock",
    "Semaphore",
    "SemaphoreStatistics",
]
