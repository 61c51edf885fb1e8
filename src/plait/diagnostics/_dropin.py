"""The stdlib's primitives swapped for plait's, for the length of one ``plait run``.

This is the one place plait patches the stdlib (DESIGN.md section 5), and only inside
``plait run``: ``threading``'s Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event,
Barrier, Thread and Timer, and ``queue``'s Queue, LifoQueue, PriorityQueue and SimpleQueue
become plait's, so an unmodified program's waits are plait waits that deadlock detection
and dumps can see. Everything is put back when the run ends. ``multiprocessing``'s objects
are left alone (their processes would need plait's start-up too: a later step).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plait.diagnostics._lockdep import note_created

__all__ = ["SWAPPED", "plait_primitives"]

SWAPPED: dict[str, tuple[str, ...]] = {
    "threading": (
        "Lock",
        "RLock",
        "Condition",
        "Semaphore",
        "BoundedSemaphore",
        "Event",
        "Barrier",
        "Thread",
        "Timer",
    ),
    "queue": ("Queue", "LifoQueue", "PriorityQueue", "SimpleQueue"),
}
# (Exceptions stay the stdlib's: plait's Empty, Full and BrokenBarrierError subclass them,
# so `except queue.Empty` catches both.)


def _lock() -> Any:
    """``threading.Lock()`` inside ``plait run``: a plait Lock whose class (for lock-order
    checking) is the line that made it."""
    import plait

    return note_created(plait.Lock())


def _rlock() -> Any:
    """``threading.RLock()`` inside ``plait run`` (see :func:`_lock`)."""
    import plait

    return note_created(plait.RLock())


# threading.Lock and RLock are factory functions in the stdlib too.
_FACTORIES: dict[str, Any] = {"Lock": _lock, "RLock": _rlock}


@contextmanager
def plait_primitives() -> Iterator[None]:
    """Swap the stdlib's primitives for plait's inside the ``with`` block."""
    import plait

    modules: dict[str, Any] = {"threading": threading, "queue": queue}
    saved: list[tuple[Any, str, Any]] = []
    try:
        for module_name, names in SWAPPED.items():
            module = modules[module_name]
            for name in names:
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, _FACTORIES.get(name, getattr(plait, name)))
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)
