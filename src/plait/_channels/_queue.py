"""The queue family: one object for coroutines, threads and processes.

A :class:`Queue` is an in-process object guarded by one plain lock (its ``mutex``) with three
kernel wait queues: getters, putters and joiners. Every wait parks through the kernel, so a
thread, a coroutine on any loop and (after promotion, see ``_xproc``) a process can use the
same queue at once.

Wake-ups keep FIFO order and never lose an item. Both sides use *kept* places:

* a put that finds a getter parked queues the item and keeps it for that getter
  (``_ready``); the getter takes the front item when it resumes. A coroutine getter
  cancelled before it resumes passes the kept item on to the next getter -- no item is
  ever out of the queue on behalf of a strand that may not come back, so no consumer can
  see a later item of a producer before an earlier one;
* a get that frees a slot while putters are parked keeps the slot for the first of them
  (``_reserved``), so a late put cannot barge in; a putter cancelled after it was given a
  slot passes the slot on. A put that raises did not put.

Costs: the fast paths take the mutex with plain ``acquire()``/``release()`` (a ``with``
block costs about 45 ns more) and make no Python call; a parked coroutine getter awaits its
waiter's future directly (``async_park``'s protocol, inlined for the hottest wait).

``close()`` ends the stream: later puts raise :class:`ShutDown` (a :class:`ClosedError`, and
from 3.13 a ``queue.ShutDown``), getters drain what is left and then raise it, and iteration
(``for``/``async for``) stops there. It is :meth:`queue.Queue.shutdown`; ``shutdown(immediate=
True)`` also discards what is left.

Storage: ``_init``/``_qsize``/``_put``/``_get`` are the stdlib's extension points and are
honoured; the C fast paths only run for the family's own storage (``_fast_put``/``_fast_get``
set by ``_attach_storage``), so a subclass that overrides a hook always runs in Python.

Select support: a waiter whose ``data`` is an :class:`~plait._channels._select.Arm` belongs to
a ``select``; the waker offers it the kept place with ``arm.fire(RESERVED)``, which claims
the select (only one case of a select fires) or declines, in which case the next waiter is
tried.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import queue as _stdqueue
import sys
from _thread import _local as _thread_local
from _thread import get_ident as _get_ident
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar
from weakref import ref as _weakref

from plait._core import (
    CANCELLED,
    WOKEN,
    Waiter,
    WaitQueue,
    async_park,
    check_timeout,
    current_strand,
    hooks,
    new_mutex,
    park,
)
from plait._core import strands as _strands
from plait._errors import ClosedError, ShutDown, WouldBlock

if TYPE_CHECKING:
    from plait._channels._select import Arm, SelectCase

__all__ = [
    "Empty",
    "Full",
    "LifoQueue",
    "PriorityQueue",
    "Queue",
    "QueueStatistics",
    "ShutDown",
    "SimpleQueue",
]

T = TypeVar("T")
_STORAGE_HOOKS = ("_init", "_qsize", "_put", "_get")
_get_running_loop = asyncio._get_running_loop

# The C accelerator (plait/_speedups.c) gives the queue its fast paths; without it (not
# built, or PLAIT_NO_SPEEDUPS=1) the same methods run in pure Python, only slower.
_speedups: Any = None
if not os.environ.get("PLAIT_NO_SPEEDUPS"):
    try:
        from plait import _speedups as _c
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:
        _speedups = _c
if _speedups is not None:
    from collections.abc import Coroutine as _Coroutine

    from plait._core.instruments import hooks as _hooks

    _Coroutine.register(_speedups.QueueOp)  # asyncio takes it wherever a coroutine goes


class Empty(_stdqueue.Empty, WouldBlock):
    """No item: raised by ``get_nowait()`` and by a ``get`` that timed out (a ``queue.Empty``)."""


class Full(_stdqueue.Full, WouldBlock):
    """No room: raised by ``put_nowait()`` and by a ``put`` that timed out (a ``queue.Full``)."""


class _Token:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


CLOSED: Any = _Token("CLOSED")  # handed to waiters when the queue closes under them
RESERVED: Any = _Token("RESERVED")  # handed to a putter: a slot is kept for it
_SLOW: Any = _Token("SLOW")
PROMOTED: Any = _Token("PROMOTED")  # handed to waiters when the queue became shared


@dataclass(frozen=True)
class QueueStatistics:
    """A snapshot of a queue, for diagnostics and tests."""

    qsize: int
    maxsize: int
    getters_waiting: int
    putters_waiting: int
    unfinished_tasks: int
    closed: bool
    shared: bool


def _check_maxsize(maxsize: object) -> int:
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be an int (0 or less: unbounded), not {maxsize!r}")
    return maxsize


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


SPEEDUPS = _speedups is not None  # whether the C fast paths are in use (configured below)


class _StorageHooks:
    """The storage hooks of a queue whose class overrides one, for the queue's methods.

    Holds the queue weakly: bound methods kept on the queue would make it a reference cycle.
    """

    __slots__ = ("_queue",)

    def __init__(self, queue: Queue[Any]) -> None:
        self._queue = _weakref(queue)

    def __len__(self) -> int:
        return self._q()._qsize()

    def put(self, item: Any) -> None:
        self._q()._put(item)

    def get(self) -> Any:
        return self._q()._get()

    def _q(self) -> Queue[Any]:
        q = self._queue()
        if q is None:  # pragma: no cover - a method of the queue runs, so it is alive
            raise ReferenceError("the queue is gone")
        return q


class _PyCore:
    """The base of :class:`Queue` when the C accelerator is not in use: no fast paths."""

    __slots__ = ()


if TYPE_CHECKING:
    _Core = _PyCore
else:
    _Core = _speedups.QueueCore if _speedups is not None else _PyCore


class Queue(_Core, Generic[T]):
    """A FIFO queue with :class:`queue.Queue`'s sync API, ``async_*`` forms and ``close()``.

    ``put``/``get``/``async_put``/``async_get`` are the ``*_locked`` methods below; with the
    C accelerator, its fast paths answer first and call those for everything else.
    ``async_put``/``async_get`` then return an awaitable that may already be done (asyncio
    takes it wherever a coroutine goes).
    """

    # Whether this class keeps the family's own storage (``_init``, ``_qsize``, ``_put``,
    # ``_get`` untouched): then the fast paths use the storage's bound methods directly;
    # a subclass that overrides any of them gets every call (see __init_subclass__).
    _plain_storage: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        family = next(c for c in cls.__mro__ if "_bind_storage" in c.__dict__)
        cls._plain_storage = all(
            getattr(cls, name) is getattr(family, name) for name in _STORAGE_HOOKS
        )

    def __init__(self, maxsize: int = 0) -> None:
        self._maxsize = _check_maxsize(maxsize)
        self._limit = maxsize if maxsize > 0 else sys.maxsize  # -1 once closed or shared
        self.mutex = _speedups.Mutex() if _speedups is not None else new_mutex()
        self._getters = WaitQueue(self.mutex)
        self._putters = WaitQueue(self.mutex)
        self._joiners = WaitQueue(self.mutex)
        self._reserved = 0  # free slots kept for woken putters
        self._ready = 0  # queued items kept for woken getters
        self._unfinished = 0
        self._closed = False
        self._shared: Any = None
        self._init(maxsize)
        if type(self)._plain_storage:
            self._bind_storage()
        else:
            hooks = _StorageHooks(self)
            self._store_put: Callable[[Any], None] = hooks.put
            self._store_get: Callable[[], Any] = hooks.get
            self._sized: Any = hooks

    @property
    def maxsize(self) -> int:
        """The bound (0 or less: unbounded); assigning it resizes the queue, as in :mod:`queue`."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, maxsize: int) -> None:
        maxsize = _check_maxsize(maxsize)
        with self.mutex:
            self._maxsize = maxsize
            if self._limit >= 0:  # (-1: closed or shared, for good)
                self._limit = maxsize if maxsize > 0 else sys.maxsize
            w = self._offer_slot() if self._putters._count else None
        if w is not None:
            _wake(w)

    # -- storage (the stdlib's extension points: _init, _qsize, _put, _get) ---------------
    #
    # A subclass may override any of them, as with queue.Queue; every put and get then goes
    # through them. The methods below call them as ``_store_put``/``_store_get`` and
    # ``len(_sized)``: for the family's own storage, the storage's own bound methods (the
    # same behaviour, without a Python call on the hot paths); for a subclass that
    # overrides a hook, _StorageHooks, which calls the hooks.

    def _init(self, maxsize: int) -> None:
        self.queue: Any = deque()

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.popleft()

    def _bind_storage(self) -> None:
        """The storage's own methods in place of the hooks (only if none is overridden)."""
        self._attach_storage(self.queue.append, self.queue.popleft)

    def _attach_storage(self, put: Callable[[Any], None], get: Callable[[], Any]) -> None:
        self._store_put = put
        self._store_get = get
        self._sized = self.queue
        if _speedups is not None:
            self._fast_put = put  # the C fast paths call these; unset, they defer to Python
            self._fast_get = get

    def _backend(self) -> Any:
        return self._shared

    # -- sizes --------------------------------------------------------------------------

    def qsize(self) -> int:
        """The number of items queued now (a snapshot, as in :mod:`queue`)."""
        if self._shared is not None:
            return int(self._shared.qsize())
        return len(self._sized)

    def empty(self) -> bool:
        """Whether no item is queued now (a snapshot)."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Whether a put would wait now (a snapshot)."""
        if self._shared is not None:
            return bool(self._shared.full())
        return 0 < self.maxsize <= len(self._sized) + self._reserved

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        if self._shared is not None:
            return bool(self._shared.closed)
        return self._closed

    def statistics(self) -> QueueStatistics:
        """A frozen snapshot of the queue's state."""
        if self._shared is not None:
            return self._shared.statistics()  # type: ignore[no-any-return]
        with self.mutex:
            return QueueStatistics(
                qsize=len(self._sized),
                maxsize=self.maxsize,
                getters_waiting=len(self._getters),
                putters_waiting=len(self._putters),
                unfinished_tasks=self._unfinished,
                closed=self._closed,
                shared=False,
            )

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        where = " shared" if self._shared is not None else ""
        return f"<plait.{type(self).__name__}{where} size={self.qsize()}/{self.maxsize}{state}>"

    # -- put ----------------------------------------------------------------------------

    def _store(self, item: Any) -> Waiter | None:
        """Queue ``item`` (mutex held); returns a getter to wake, if one was given it."""
        self._store_put(item)  # (first: a subclass's _put that raises put nothing)
        self._unfinished += 1
        return self._offer_item() if self._getters._count else None

    def _handoff(self) -> Waiter | None:
        """The item just queued goes to the first parked getter (mutex held)."""
        self._ready += 1
        w = self._getters.pop(RESERVED)
        if w is None:
            self._ready -= 1
        elif w.data is not None:  # a select's waiter: it may have fired elsewhere
            if w.data.fire(RESERVED):
                return None
            w.state = CANCELLED
            self._ready -= 1
            return self._offer_item()
        return w

    def _offer_item(self) -> Waiter | None:
        """If an unclaimed item is queued and a getter parked, keep it for the getter."""
        while self._getters._count and len(self._sized) > self._ready:
            self._ready += 1
            w, delivered = _pop_waiter(self._getters, RESERVED)
            if delivered:
                return w
            self._ready -= 1
        return None

    def _put_locked(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item``, waiting for room if the queue is bounded and full.

        Raises :class:`Full` (a ``queue.Full``) when it cannot within ``timeout`` (or at once
        with ``block=False``), and :class:`ClosedError` once the queue is closed.
        """
        if timeout is not None and block and self.maxsize > 0:
            _check_timeout(block, timeout)
        mutex = self.mutex
        mutex.acquire()  # (plain acquire/release: cheaper than `with` on this hot path)
        try:
            if len(self._sized) + self._reserved < self._limit:  # fast path: there is room
                self._store_put(item)
                self._unfinished += 1
                if not self._getters._count and not hooks.active:
                    return  # (the mutex is released on the way out)
                w = self._handoff() if self._getters._count else None
            else:
                w = _SLOW
        finally:
            mutex.release()
        if w is _SLOW:
            self._put_slow(item, block, timeout)
            return
        if w is not None:
            _wake(w)
        if hooks.active:
            hooks.sent(current_strand(), self, item)

    def _put_slow(self, item: Any, block: bool, timeout: float | None) -> None:
        if self._shared is not None:
            self._shared.put(item, block, timeout)
            return
        wait = _check_timeout(block, timeout)
        with self.mutex:
            waiter, woken = self._put_or_enqueue(item, wait, False)
        if waiter is None:
            if woken is not None:
                _wake(woken)
            return
        if not park(waiter, wait, self._undo_put):
            raise Full
        self._after_reserved(waiter.value, item)

    async def _async_put_locked(
        self, item: T, block: bool = True, timeout: float | None = None
    ) -> None:
        """Coroutine form of :meth:`put`."""
        if timeout is not None and block and self.maxsize > 0:
            _check_timeout(block, timeout)
        mutex = self.mutex
        mutex.acquire()
        try:
            if len(self._sized) + self._reserved < self._limit:
                self._store_put(item)
                self._unfinished += 1
                if not self._getters._count and not hooks.active:
                    return
                w = self._handoff() if self._getters._count else None
            else:
                w = _SLOW
        finally:
            mutex.release()
        if w is not _SLOW:
            if w is not None:
                _wake(w)
            if hooks.active:
                hooks.sent(current_strand(), self, item)
            return
        if self._shared is not None:
            await self._shared.async_put(item, block, timeout)
            return
        wait = _check_timeout(block, timeout)
        with self.mutex:
            waiter, woken = self._put_or_enqueue(item, wait, True)
        if waiter is None:
            if woken is not None:
                _wake(woken)
            return
        if wait is None:  # async_park's protocol inlined, as for a getter (a bounded stream)
            self._mark_parked(waiter, self._undo_put)
            try:
                await waiter.fut  # type: ignore[misc]
            except BaseException:
                self._abandon(waiter, self._putters)
                raise
            _unpark(waiter.strand)
            if hooks.active:
                hooks.unparked(waiter.strand, self, "woken")
        elif not await async_park(waiter, wait, self._undo_put):
            raise Full
        self._after_reserved(waiter.value, item)

    def _put_or_enqueue(
        self, item: Any, wait: float | None, is_async: bool
    ) -> tuple[Waiter | None, Waiter | None]:
        """Put now if possible (mutex held), else make a putter waiter to park.

        Returns ``(None, getter to wake or None)`` or ``(putter waiter, None)``. The caller
        wakes after releasing the mutex: a wake can call back into the queue (a coroutine
        whose loop has closed gives its kept item back).
        """
        if self._closed:
            raise ShutDown(f"put() on a closed queue {self!r}")
        if len(self._sized) + self._reserved < self._limit:
            w = self._store(item)
            if hooks.active:
                hooks.sent(current_strand(), self, item)
            return None, w
        if wait == 0.0:
            raise Full
        if is_async:
            return _async_waiter(self._putters, self), None
        return self._putters.enqueue_current(on=self), None

    def _put_nowait(self, item: T) -> None:
        """Put ``item`` if there is room now, else raise :class:`Full`."""
        self._put_locked(item, False)

    def _after_reserved(self, value: Any, item: Any) -> None:
        """A parked putter was woken: store its item in the slot kept for it."""
        if value is PROMOTED:  # the queue was shared with a process while we waited
            self._backend().put(item)
            return
        error: BaseException | None = None
        w = None
        with self.mutex:
            if value is CLOSED:
                raise ShutDown(f"put() on a closed queue {self!r}")
            shared = self._shared is not None
            if not shared:
                self._reserved -= 1
                if self._closed:
                    raise ShutDown(f"put() on a closed queue {self!r}")
                try:
                    w = self._store(item)
                except BaseException as exc:  # a subclass's _put failed: the slot passes on
                    error = exc
                w2 = self._offer_slot() if self._putters._count else None
        if shared:  # promoted meanwhile
            self._backend().put(item)
            return
        if w is not None:
            _wake(w)
        if w2 is not None:
            _wake(w2)
        if error is not None:
            try:
                raise error
            finally:
                error = None  # (no cycle through the traceback)
        if hooks.active:
            hooks.sent(current_strand(), self, item)

    def _undo_put(self, value: Any) -> None:
        """A putter cancelled after it was given a slot: pass the slot on."""
        if value is CLOSED or value is PROMOTED:
            return
        with self.mutex:
            self._reserved -= 1
            w = self._offer_slot()
        if w is not None:
            _wake(w)

    def _offer_slot(self) -> Waiter | None:
        """If there is room and a putter parked, reserve the room for it (mutex held)."""
        while (
            self._putters._count
            and not self._closed
            and len(self._sized) + self._reserved < self._limit
        ):
            self._reserved += 1
            w, delivered = _pop_waiter(self._putters, RESERVED)
            if delivered:
                return w
            self._reserved -= 1
        return None

    # -- get ----------------------------------------------------------------------------

    def _get_locked(self, block: bool = True, timeout: float | None = None) -> T:
        """Take the next item, waiting for one if needed.

        Raises :class:`Empty` (a ``queue.Empty``) when none comes within ``timeout`` (or at
        once with ``block=False``), and :class:`ClosedError` once the queue is closed and
        drained.
        """
        if timeout is not None and block:
            _check_timeout(block, timeout)
        waiter = None
        mutex = self.mutex
        mutex.acquire()
        try:  # fast paths: an item is there, or a plain wait
            if len(self._sized) > self._ready:
                item = self._store_get()
                if not self._putters._count and not hooks.active:
                    return item  # type: ignore[no-any-return]
                w = self._offer_slot() if self._putters._count else None
            elif timeout is None and block and self._limit >= 0:
                waiter = self._getters.enqueue_current(on=self)
            else:
                waiter = _SLOW
        finally:
            mutex.release()
        if waiter is _SLOW:
            return self._get_slow(block, timeout)  # type: ignore[no-any-return]
        if waiter is not None:
            return self._got(park(waiter, None, self._undo_get), waiter)  # type: ignore[no-any-return]
        if w is not None:
            _wake(w)
        if hooks.active:
            hooks.received(current_strand(), self, item)
        return item  # type: ignore[no-any-return]

    def _get_slow(self, block: bool, timeout: float | None) -> Any:
        if self._shared is not None:
            return self._shared.get(block, timeout)
        wait = _check_timeout(block, timeout)
        with self.mutex:
            ready, got, woken = self._take_or_enqueue(wait, False)
        if ready:
            if woken is not None:
                _wake(woken)
            return got
        return self._got(park(got, wait, self._undo_get), got)

    async def _async_get_locked(self, block: bool = True, timeout: float | None = None) -> T:
        """Coroutine form of :meth:`get`."""
        if timeout is not None and block:
            _check_timeout(block, timeout)
        waiter = None
        mutex = self.mutex
        mutex.acquire()
        try:
            if len(self._sized) > self._ready:
                item = self._store_get()
                if not self._putters._count and not hooks.active:
                    return item  # type: ignore[no-any-return]
                w = self._offer_slot() if self._putters._count else None
                ready = True
            elif timeout is None and block and self._limit >= 0:
                waiter = _async_waiter(self._getters, self)
                ready = False
            else:
                ready = False
        finally:
            mutex.release()
        if waiter is not None:
            # async_park's protocol, inlined for the hottest wait in plait: park the strand,
            # await the waiter's future, give back a kept item if cancelled after the wake.
            self._mark_parked(waiter, self._undo_get)
            try:
                await waiter.fut  # type: ignore[misc]
            except BaseException:
                self._abandon(waiter, self._getters)
                raise
            done, got = self._woken_getter(waiter, False)
            return got if done else await got  # type: ignore[no-any-return]
        if ready:
            if w is not None:
                _wake(w)
            if hooks.active:
                hooks.received(current_strand(), self, item)
            return item  # type: ignore[no-any-return]
        if self._shared is not None:
            return await self._shared.async_get(block, timeout)  # type: ignore[no-any-return]
        wait = _check_timeout(block, timeout)
        with self.mutex:
            ready, got, putter = self._take_or_enqueue(wait, True)
        if ready:
            if putter is not None:
                _wake(putter)
            return got  # type: ignore[no-any-return]
        woken = await async_park(got, wait, self._undo_get)
        if woken and got.value is PROMOTED:
            return await self._backend().async_get(block, timeout)  # type: ignore[no-any-return]
        return self._got(woken, got)  # type: ignore[no-any-return]

    def _mark_parked(self, waiter: Waiter, undo: Callable[[Any], None]) -> None:
        """A coroutine's plain wait begins: the strand shows where it is parked; ``undo``
        gives back what a wake hands it if it never takes it (its loop closed, say)."""
        waiter.undo = undo
        strand = waiter.strand
        strand.state = "parked"
        strand.parked_on = self
        strand.waiter = waiter
        if hooks.active:
            hooks.parked(strand, self)

    def _woken_getter(self, waiter: Waiter, anext: bool) -> tuple[bool, Any]:
        """After a coroutine getter's plain wait: ``(True, item)``, or ``(False, awaitable)``
        to await for the item when the queue changed meanwhile (shared, or cleared).

        ``anext``: raise :class:`StopAsyncIteration` rather than :class:`ClosedError`.
        """
        strand = waiter.strand
        strand.state = "running"  # (_unpark, inlined)
        strand.parked_on = None
        strand.waiter = None
        if hooks.active:
            hooks.unparked(strand, self, "woken")
        value = waiter.value
        if value is RESERVED:  # the common case: take the item kept for us
            item = self._take_kept()
            if item is _SLOW:  # promoted, or cleared, meanwhile: get the usual way
                return False, (self._anext_locked() if anext else self._async_get_locked())
            return True, item
        if value is PROMOTED:  # shared with a process meanwhile: get from the backend
            return False, (self._anext_locked() if anext else self._backend().async_get())
        if anext and value is CLOSED:
            raise StopAsyncIteration
        return True, self._got(True, waiter)

    def _take_or_enqueue(
        self, wait: float | None, is_async: bool
    ) -> tuple[bool, Any, Waiter | None]:
        """``(True, item, putter to wake or None)`` if one can be taken now (mutex held),
        else ``(False, waiter, None)``; the caller wakes after releasing the mutex."""
        if len(self._sized) > self._ready:
            item = self._store_get()
            w = self._offer_slot() if self._putters._count else None
            if hooks.active:
                hooks.received(current_strand(), self, item)
            return True, item, w
        if self._closed:
            raise ShutDown(f"get() on a closed, drained queue {self!r}")
        if wait == 0.0:
            raise Empty
        if is_async:
            return False, _async_waiter(self._getters, self), None
        return False, self._getters.enqueue_current(on=self), None

    def _get_nowait(self) -> T:
        """Take an item if one is queued now, else raise :class:`Empty`."""
        return self._get_locked(False)

    def _got(self, woken: bool, waiter: Waiter) -> Any:
        if not woken:
            raise Empty
        value = waiter.value
        if value is RESERVED:
            item = self._take_kept()
            return self.get() if item is _SLOW else item  # (_SLOW: promoted or cleared)
        if value is PROMOTED:  # the queue was shared with a process while we waited
            return self._shared.get()
        raise ShutDown(f"get() on a closed, drained queue {self!r}")

    def _take_kept(self) -> Any:
        """A woken getter takes the front item, kept for it (``_ready``) -- or ``_SLOW``
        if the queue was promoted or cleared meanwhile (the caller gets the usual way)."""
        with self.mutex:
            if self._shared is not None:
                return _SLOW
            if not len(self._sized):  # emptied under us (``with q.mutex: q.queue.clear()``)
                self._ready = max(0, self._ready - 1)
                return _SLOW
            self._ready -= 1
            error: BaseException | None = None
            try:
                item = self._store_get()
            except BaseException as exc:  # a subclass's _get failed: the item is anyone's again
                error = exc
                w = self._offer_item()
            else:
                w = self._offer_slot() if self._putters._count else None
        if w is not None:
            _wake(w)
        if error is not None:
            try:
                raise error
            finally:
                error = None  # (no cycle through the traceback)
        if hooks.active:
            hooks.received(current_strand(), self, item)
        return item

    def _abandon(self, waiter: Waiter, wq: WaitQueue) -> None:
        """An inlined coroutine park was cancelled (or closed): leave the wait queue, or
        give back what the waiter was handed -- once, as the kernel's park does."""
        strand = waiter.strand
        _unpark(strand)
        with self.mutex:
            removed = wq.remove(waiter, CANCELLED)
        if not removed and waiter.state == WOKEN and waiter.undo is not None:
            waiter.state = CANCELLED  # given back once, here, never again
            waiter.undo(waiter.value)
        if hooks.active:
            hooks.unparked(strand, self, "cancelled")

    def _undo_get(self, value: Any) -> None:
        """A getter cancelled after an item was kept for it: offer the item to the next."""
        if value is not RESERVED:
            return
        with self.mutex:
            if self._shared is not None:
                return
            self._ready -= 1
            w = self._offer_item()
        if w is not None:
            _wake(w)

    # -- tasks --------------------------------------------------------------------------

    def task_done(self) -> None:
        """Mark one item taken earlier as processed (for :meth:`join`)."""
        if self._shared is not None:
            self._shared.task_done()
            return
        with self.mutex:
            if self._unfinished <= 0:
                raise ValueError("task_done() called too many times")
            self._unfinished -= 1
            woken = self._joiners.pop_all() if self._unfinished == 0 else []
        for w in woken:
            _wake(w)

    def join(self) -> None:
        """Wait until every item put has been marked done with :meth:`task_done`."""
        if self._shared is not None:
            self._shared.join()
            return
        with self.mutex:
            if self._unfinished == 0:
                return
            waiter = self._joiners.enqueue_current(on=self)
        park(waiter, None)
        if waiter.value is PROMOTED:
            self._backend().join()

    async def async_join(self) -> None:
        """Coroutine form of :meth:`join`."""
        if self._shared is not None:
            await self._shared.async_join()
            return
        with self.mutex:
            if self._unfinished == 0:
                return
            waiter = self._joiners.async_enqueue_current(on=self)
        await async_park(waiter, None)
        if waiter.value is PROMOTED:
            await self._backend().async_join()

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done."""
        if self._shared is not None:
            return self._shared.unfinished()  # type: ignore[no-any-return]
        return self._unfinished

    # -- close and iteration ------------------------------------------------------------

    def close(self) -> None:
        """End the stream: later puts raise :class:`ShutDown`; getters drain, then raise it.

        Parked putters raise it too (their items were not put). Idempotent. The same as
        ``shutdown()``; :class:`ShutDown` is a :class:`ClosedError`.
        """
        self.shutdown()

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down, as :meth:`queue.Queue.shutdown` (3.13) does: :meth:`close`.

        ``immediate=True`` also discards the items still queued (each counts as done for
        :meth:`join`), so parked and later getters raise :class:`ShutDown` at once.
        """
        if self._shared is not None:
            self._shared.close()
            if immediate:
                self._discard_shared()
            return
        with self.mutex:
            woken = []
            if immediate:
                while len(self._sized):
                    self._store_get()
                    if self._unfinished > 0:
                        self._unfinished -= 1
                if self._unfinished == 0:
                    woken += self._joiners.pop_all()
            if not self._closed:
                self._closed = True
                self._limit = -1
                woken += self._putters.pop_all(CLOSED)
            if len(self._sized) <= self._ready:  # nothing left for a parked getter
                woken += self._getters.pop_all(CLOSED)
        for w in woken:
            arm = w.data
            if arm is None:
                _wake(w)
            else:
                arm.fire(CLOSED)

    def _discard_shared(self) -> None:
        backend = self._shared
        while True:
            try:
                backend.get(False)
            except (WouldBlock, ClosedError):
                return
            try:
                backend.task_done()
            except ValueError:  # (task_done() called by others meanwhile)
                pass

    @property
    def is_shutdown(self) -> bool:
        """Whether the queue was shut down (closed): :attr:`closed`, by the stdlib's name."""
        return self.closed

    def __iter__(self) -> Iterator[T]:
        """Yield items until the queue is closed and drained."""
        while True:
            try:
                yield self.get()
            except ClosedError:
                return

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def _anext_locked(self) -> T:
        try:
            return await self._async_get_locked()
        except ClosedError:
            raise StopAsyncIteration from None

    # -- the public names: C fast paths in front of the methods above, or those methods -----

    if TYPE_CHECKING:

        def put(self, item: T, block: bool = True, timeout: float | None = None) -> None: ...
        def put_nowait(self, item: T) -> None: ...
        def async_put(
            self, item: T, block: bool = True, timeout: float | None = None
        ) -> Awaitable[None]: ...
        def get(self, block: bool = True, timeout: float | None = None) -> T: ...
        def get_nowait(self) -> T: ...
        def async_get(self, block: bool = True, timeout: float | None = None) -> Awaitable[T]: ...
        def __anext__(self) -> Awaitable[T]: ...

    elif _speedups is None:
        put = _put_locked
        put_nowait = _put_nowait
        async_put = _async_put_locked
        get = _get_locked
        get_nowait = _get_nowait
        async_get = _async_get_locked
        __anext__ = _anext_locked

    # -- select cases -------------------------------------------------------------------

    def get_op(self) -> SelectCase:
        """A select case that takes an item (see :func:`plait.select`)."""
        from plait._channels._select import GetCase

        return GetCase(self)

    def put_op(self, item: T) -> SelectCase:
        """A select case that puts ``item`` (see :func:`plait.select`)."""
        from plait._channels._select import PutCase

        return PutCase(self, item)

    # -- across processes ---------------------------------------------------------------

    def __reduce__(self) -> Any:
        from plait._channels._xproc import reduce_queue

        return reduce_queue(self)

    def join_thread(self) -> None:
        """``multiprocessing.Queue`` compatibility: puts never leave data behind a thread."""

    def cancel_join_thread(self) -> None:
        """``multiprocessing.Queue`` compatibility: exit never waits on unread data."""


def _configure_speedups() -> None:
    """Hand the C accelerator its whole seam with Python (see the top of _speedups.c).

    Called at import, unguarded: a renamed slot, method or strand field raises there, so the
    accelerator is never silently off nor calling into something that is gone.
    """
    from plait._core.parking import QUEUED
    from plait._core.strands import Strand

    if getattr(_speedups, "SEAM", None) != _SEAM:
        raise ImportError(
            f"plait._speedups ({_speedups.__file__}) was built from another version of plait: "
            "rebuild it (pip install -e .), or set PLAIT_NO_SPEEDUPS=1"
        )
    missing = [name for name in _ENTRY_POINTS if name not in Queue.__dict__]
    if missing:
        raise ImportError(
            f"plait._speedups falls back on Queue.{', Queue.'.join(missing)}, which is gone: "
            "update _ENTRY_POINTS and _speedups.c together"
        )
    _speedups.configure(
        WaitQueue=WaitQueue,
        Waiter=Waiter,
        Strand=Strand,
        hooks=_hooks,
        wake=_wake,
        current_tasks=_current_tasks,  # (None in an asyncio without it: no C coroutine park)
        by_task=_by_task,
        self_strand_types=_self_strand_types,
        get_running_loop=_get_running_loop,
        RESERVED=RESERVED,
        QUEUED=QUEUED,
        WOKEN=WOKEN,
        CANCELLED=CANCELLED,
        entry={name: Queue.__dict__[name] for name in _ENTRY_POINTS},
    )


_SEAM = 2  # the version of the seam, as _speedups.c's SEAM_VERSION

# The Python slow paths the C fast paths fall back on (each called with the queue first).
_ENTRY_POINTS = (
    "_put_locked",
    "_get_locked",
    "_async_put_locked",
    "_async_get_locked",
    "_anext_locked",
    "_handoff",
    "_offer_slot",
    "_woken_getter",
    "_abandon",
    "_undo_get",
)

if _speedups is not None:
    _configure_speedups()


class LifoQueue(Queue[T]):
    """A last-in, first-out queue (:class:`queue.LifoQueue`'s API)."""

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.pop()

    def _bind_storage(self) -> None:
        self._attach_storage(self.queue.append, self.queue.pop)


def _heap_put(items: list[Any], item: Any) -> None:
    """``heappush``, keeping nothing of an item that cannot be compared."""
    try:
        heapq.heappush(items, item)
    except BaseException:
        for i, queued in enumerate(items):
            if queued is item:
                del items[i]
                heapq.heapify(items)
                break
        raise


class PriorityQueue(Queue[T]):
    """Lowest item first (:class:`queue.PriorityQueue`'s API); items must be comparable."""

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _put(self, item: Any) -> None:
        _heap_put(self.queue, item)

    def _get(self) -> Any:
        return heapq.heappop(self.queue)

    def _bind_storage(self) -> None:
        self._attach_storage(partial(_heap_put, self.queue), partial(heapq.heappop, self.queue))


class SimpleQueue(Queue[T]):
    """An unbounded FIFO queue (:class:`queue.SimpleQueue`'s API, plus close and async)."""

    def __init__(self) -> None:
        super().__init__(0)
