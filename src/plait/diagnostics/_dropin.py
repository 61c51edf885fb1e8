"""The stdlib's primitives swapped for plait's, for the length of one ``plait run``.

This is the one place plait patches the stdlib (DESIGN.md section 5), and only inside
``plait run``: ``threading``'s Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event,
Barrier, Thread and Timer, ``queue``'s Queue, LifoQueue, PriorityQueue and SimpleQueue,
``multiprocessing``'s Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Queue,
JoinableQueue and Process (plait's Process, so that the primitives handed to a child are
shared, not copied by a fork), and ``asyncio``'s Lock, Event, Semaphore,
BoundedSemaphore, Condition and queues (asyncio's API over plait's objects: see
:mod:`._dropin_async`) become plait's, so an unmodified program's waits are plait waits
that deadlock detection and dumps can see. Everything is put back when the run ends;
objects made through an explicit ``multiprocessing.get_context(...)`` stay the stdlib's.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
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
    "multiprocessing": (
        "Lock",
        "RLock",
        "Semaphore",
        "BoundedSemaphore",
        "Event",
        "Condition",
        "Queue",
        "JoinableQueue",
        "Process",
    ),
    "asyncio": (
        "Lock",
        "Event",
        "Semaphore",
        "BoundedSemaphore",
        "Condition",
        "Queue",
        "LifoQueue",
        "PriorityQueue",
    ),
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


# Stdlib modules that make a lock of their own when first imported, for the machinery of
# the run itself (a child's start-up): imported before the swap, so they keep the stdlib's
# (multiprocessing's resource tracker asks its RLock for a private method, for one).
_MADE_AT_IMPORT = (
    "multiprocessing.resource_tracker",
    "multiprocessing.forkserver",
    "multiprocessing.popen_forkserver",
    "multiprocessing.popen_spawn_posix",
    "multiprocessing.util",
    "multiprocessing.queues",
    "multiprocessing.synchronize",
    "concurrent.futures.thread",
    "concurrent.futures.process",
)


def _replacement(module_name: str, name: str) -> Any:
    """What ``module_name.name`` is inside the run."""
    import plait

    if module_name == "asyncio":
        from plait.diagnostics._dropin_async import ASYNCIO_SWAPS

        return ASYNCIO_SWAPS[name]
    if name == "JoinableQueue":
        return plait.Queue  # (plait's queues all have task_done/join)
    return _FACTORIES.get(name, getattr(plait, name))


@contextmanager
def plait_primitives() -> Iterator[None]:
    """Swap the stdlib's primitives for plait's inside the ``with`` block."""
    for name in _MADE_AT_IMPORT:
        importlib.import_module(name)
    modules: dict[str, Any] = {
        "threading": threading,
        "queue": queue,
        "multiprocessing": multiprocessing,
        "asyncio": asyncio,
    }
    saved: list[tuple[Any, str, Any]] = []
    try:
        for module_name, names in SWAPPED.items():
            module = modules[module_name]
            for name in names:
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, _replacement(module_name, name))
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)
