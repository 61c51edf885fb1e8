"""How a queue's strands wait and are woken: the markers a wake hands over, and the
hot-path helpers that park and wake coroutines without a system call on the way.

A woken waiter is handed a marker (:data:`RESERVED`: an item or a slot is kept for it;
:data:`CLOSED`; :data:`MIGRATED`, every shared object's marker: the queue became shared)
or, for a select's waiter, fires its arm instead (:func:`_pop_waiter`). Used by the queue,
its coroutine side, its select cases and the C accelerator's seam.
"""

from __future__ import annotations

import asyncio
from _thread import _local as _thread_local
from _thread import get_ident as _get_ident
from typing import TYPE_CHECKING, Any
from weakref import ref as _weakref

from plait._core import CANCELLED, WOKEN, Waiter, WaitQueue, check_timeout, current_strand
from plait._core import strands as _strands
from plait._core.instruments import hooks as _hooks
from plait._ipc.promotion import MIGRATED

if TYPE_CHECKING:
    from plait._channels._select import Arm

__all__ = ["CLOSED", "MIGRATED", "RESERVED"]

_get_running_loop = asyncio._get_running_loop


class _Token:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


CLOSED: Any = _Token("CLOSED")  # handed to waiters when the queue closes under them
RESERVED: Any = _Token("RESERVED")  # handed to a putter: a slot is kept for it
_SLOW: Any = _Token("SLOW")


def _check_timeout(block: bool, timeout: float | None) -> float | None:
    if not block:
        return 0.0
    if timeout is None:
        return None
    try:
        return check_timeout(timeout)
    except ValueError:
        raise ValueError("'timeout' must be a non-negative number") from None


_tls = _thread_local()
_current_tasks: Any = getattr(asyncio.tasks, "_current_tasks", None)
_by_task: Any = getattr(_strands, "_by_task", None)
# task types that are their own strand (the kernel fills this set in place), if any
_self_strand_types: Any = getattr(_strands, "_self_strand_types", frozenset())


def _async_strand() -> Any:
    """``current_strand()`` inside a coroutine, without a system call on the way.

    On Python 3.11 every ``asyncio._get_running_loop()`` makes a ``getpid()`` system call
    (about as costly as the rest of a park). A thread runs one loop at a time and a running
    asyncio loop records its thread, so the loop last seen on this thread is still the
    running one while its ``_thread_id`` is this thread's; its current task maps to the
    strand. Anything unusual (no such attribute, a task plait has not seen yet) falls back
    to ``current_strand()``.
    """
    if _current_tasks is None or _by_task is None:
        return current_strand()
    ident = _get_ident()
    ref = getattr(_tls, "loop", None)  # a weak reference: a closed loop is not kept alive
    loop = ref() if ref is not None else None
    if loop is None or getattr(loop, "_thread_id", None) != ident:
        loop = _get_running_loop()
        if loop is None:
            return current_strand()
        _tls.loop = _weakref(loop)
    task = _current_tasks.get(loop)
    if type(task) in _self_strand_types:
        return task
    strand = _by_task.get(task)
    if strand is None:
        return current_strand()
    return strand


def _async_waiter(wq: WaitQueue, on: object) -> Waiter:
    """``wq.async_enqueue_current(on)`` with no running-loop lookup: the strand knows its loop."""
    strand = _async_strand()
    loop = strand.loop
    if loop is None or strand.kind != "async":
        return wq.async_enqueue_current(on=on)
    w = Waiter(wq, strand, on, None)
    w.loop = loop
    w.ident = _get_ident()  # the loop's thread: a wake from it needs no hand-off
    w.fut = loop.create_future()
    wq._dq.append(w)
    wq._count += 1
    return w


def _wake(w: Waiter) -> None:
    """``w.wake()``, knowing "am I on the waiter's loop thread" without a system call."""
    fut = w.fut
    if fut is not None and w.ident == _get_ident():
        if _hooks.active:  # who woke whom: a trace's arrow from the putter to the getter
            waker = _strands.known_strand()
            if waker is not None:
                _hooks.woke(waker, w.strand, w.on)
        if not fut.done():
            try:
                fut.set_result(None)
            except RuntimeError:  # its loop is closed: the coroutine never runs again
                if w.undo is not None and w.state == WOKEN:
                    w.state = CANCELLED  # give back what it was handed, once
                    w.undo(w.value)
        return
    w.wake()


def _unpark(strand: Any) -> None:
    strand.state = "running"
    strand.parked_on = None
    strand.waiter = None


def _pop_waiter(wq: WaitQueue, value: Any) -> tuple[Waiter | None, bool]:
    """Hand ``value`` to the first waiter that takes it (mutex held).

    Returns ``(waiter to wake, delivered)``. A select's waiter that declines (its select
    already fired elsewhere) is skipped; one that accepts wakes its select itself.
    """
    while True:
        w = wq.pop(value)
        if w is None:
            return None, False
        arm: Arm | None = w.data
        if arm is None:
            return w, True
        if arm.fire(value):
            return None, True
        w.state = CANCELLED
        w.value = None
