"""The queue family: one object for coroutines, threads and processes.

A :class:`Queue` is an in-process object guarded by one plain lock (its ``mutex``) with three
kernel wait queues: getters, putters and joiners. Every wait parks through the kernel, so a
thread, a coroutine on any loop and (after promotion: the seam ``plait._ipc.promotion``, the
backend ``_xproc``) a process can use the same queue at once.

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

Where the rest lives: the coroutine side (``async_put``/``async_get``/``async for``/
``async_join``) in ``_queue_async``; the wake markers and the hot wait helpers in
``_queue_waits``; the C accelerator's seam in ``_queue_speedups``; the select cases in
``_queue_select``; ``LifoQueue``/``PriorityQueue``/``SimpleQueue`` in ``_queue_kinds``; the
batches (``put_many``/``get_many``, one lock per batch) in ``_queue_batch`` (a shared queue's
in ``_queue_batch_shared``).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar
from weakref import ref as _weakref

from plait._channels import _queue_async, _queue_batch
from plait._channels._queue_speedups import SPEEDUPS, Core, _speedups, configure_speedups
from plait._channels._queue_stats import QueueStatistics
from plait._channels._queue_waits import (
    _SLOW,
    CLOSED,
    RESERVED,
    _async_waiter,
    _check_timeout,
    _pop_waiter,
    _wake,
)
from plait._core import CANCELLED, Waiter, WaitQueue, current_strand, hooks, new_mutex, park
from plait._errors import ClosedError, Empty, Full, ShutDown, WouldBlock
from plait._ipc.promotion import MIGRATED, promote, share

if TYPE_CHECKING:
    from plait._channels._select import SelectCase

__all__ = [
    "CLOSED",
    "RESERVED",
    "SPEEDUPS",
    "Empty",
    "Full",
    "Queue",
    "QueueStatistics",
    "ShutDown",
]

T = TypeVar("T")
_STORAGE_HOOKS = ("_init", "_qsize", "_put", "_get")


def _check_maxsize(maxsize: object) -> int:
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be an int (0 or less: unbounded), not {maxsize!r}")
    return maxsize


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


class Queue(Core, Generic[T]):
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

    # Its backend once shared with processes (``_shared``; the seam: ``plait._ipc.promotion``):
    # one per storage order; ``None`` for a class with storage of its own (``_init``
    # overridden), which cannot cross.
    _backend_kind: ClassVar[str | None] = "queue"
    _backend_home: ClassVar[str] = "plait._channels._xproc"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        family = next(c for c in cls.__mro__ if "_bind_storage" in c.__dict__)
        cls._plain_storage = all(
            getattr(cls, name) is getattr(family, name) for name in _STORAGE_HOOKS
        )
        if "_init" in cls.__dict__ and "_backend_kind" not in cls.__dict__:
            cls._backend_kind = None

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

    _async_put_locked = _queue_async.async_put_locked

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
        return self._putters.enqueue_current(self), None

    def _put_nowait(self, item: T) -> None:
        """Put ``item`` if there is room now, else raise :class:`Full`."""
        self._put_locked(item, False)

    def _after_reserved(self, value: Any, item: Any) -> None:
        """A parked putter was woken: store its item in the slot kept for it."""
        if value is MIGRATED:  # the queue was shared with a process while we waited
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
        if value is CLOSED or value is MIGRATED:
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
                waiter = self._getters.enqueue_current(self)
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

    _async_get_locked = _queue_async.async_get_locked

    _mark_parked = _queue_async.mark_parked

    _woken_getter = _queue_async.woken_getter

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
        return False, self._getters.enqueue_current(self), None

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
        if value is MIGRATED:  # the queue was shared with a process while we waited
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

    _abandon = _queue_async.abandon

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
            waiter = self._joiners.enqueue_current(self)
        park(waiter, None)
        if waiter.value is MIGRATED:
            self._backend().join()

    async_join = _queue_async.async_join

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

    _anext_locked = _queue_async.anext_locked

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

    # -- batches: one lock per batch (``_queue_batch``) ---------------------------------

    if TYPE_CHECKING:

        def put_many(
            self, items: Iterable[T], block: bool = True, timeout: float | None = None
        ) -> None: ...
        def get_many(
            self, max_items: int, block: bool = True, timeout: float | None = None
        ) -> list[T]: ...
        async def async_put_many(
            self, items: Iterable[T], block: bool = True, timeout: float | None = None
        ) -> None: ...
        async def async_get_many(
            self, max_items: int, block: bool = True, timeout: float | None = None
        ) -> list[T]: ...

    else:
        put_many = _queue_batch.put_many
        get_many = _queue_batch.get_many
        async_put_many = _queue_batch.async_put_many
        async_get_many = _queue_batch.async_get_many

    # -- select cases -------------------------------------------------------------------

    def get_op(self) -> SelectCase:
        """A select case that takes an item (see :func:`plait.select`)."""
        from plait._channels._queue_select import GetCase

        return GetCase(self)

    def put_op(self, item: T) -> SelectCase:
        """A select case that puts ``item`` (see :func:`plait.select`)."""
        from plait._channels._queue_select import PutCase

        return PutCase(self, item)

    # -- across processes ---------------------------------------------------------------

    @property
    def _mutex(self) -> Any:
        """The mutex promotion holds (``mutex``, by the seam's name)."""
        return self.mutex

    @classmethod
    def _revive_blank(cls, maxsize: int) -> Queue[Any]:
        """The object a queue shared by another process is revived into: the family's own
        ``__init__``, whatever the subclass's takes."""
        q = cls.__new__(cls)
        Queue.__init__(q, maxsize)
        return q

    def __reduce__(self) -> Any:
        """Pickling shares the queue with processes (the seam: ``plait._ipc.promotion``);
        it travels as its backend's name."""
        if type(self)._backend_kind is None:
            name = type(self).__name__
            raise TypeError(
                f"a {name} keeps its items in its own storage (it overrides _init), so it "
                "cannot be shared with processes; derive from plait.Queue, LifoQueue or "
                "PriorityQueue without overriding their storage"
            )
        backend = self._shared if self._shared is not None else promote(self)
        return share(self, (backend.maxsize,))

    def join_thread(self) -> None:
        """``multiprocessing.Queue`` compatibility: puts never leave data behind a thread."""

    def cancel_join_thread(self) -> None:
        """``multiprocessing.Queue`` compatibility: exit never waits on unread data."""


# The coroutine side's and the batches' functions are Queue's methods: they say so
# (coroutine names, traces).
for _name, _method in list(vars(Queue).items()):
    if getattr(_method, "__module__", None) in (_queue_async.__name__, _queue_batch.__name__):
        _method.__qualname__ = f"Queue.{_name}"
del _name, _method

if _speedups is not None:
    configure_speedups(Queue)
