"""Queues across processes: promote-on-pickle to a shared-memory backend.

A :class:`~plait._channels._queue.Queue` lives in its process until it is first pickled
(passed to a process at spawn, or later through another queue or pipe). Then it is
*promoted*: a :class:`SharedQueue` is created, the items already queued move into it in
order, waiters parked on the local queue retry on the shared one, and from then on every
operation in every process goes through it. Queues that never cross pay nothing.

The shared backend is one shared-memory segment (a ring of framed messages, see
``plait._ipc.transport``) and four named process-shared semaphores::

    lock    guards the ring and its counters
    items   posted once per parked getter when an item arrives (or the queue closes)
    space   posted once per parked putter when room appears (bounded queues)
    done    posted once per parked joiner when the last task is done

A waiter announces itself in the header (``GETTERS``/``PUTTERS``/``JOINERS``) under the lock
and then sleeps on its semaphore outside it; a waker posts only when someone announced, so
a burst with nobody parked makes no system call. A waiter that times out takes back a post
that raced with its timeout, so counts never drift.

``put()`` pickles in the caller (an unpicklable item raises there, nothing is queued) and
returns as soon as the frame is in shared memory: a child that puts 10 MB and exits loses
nothing, and never waits on exit. A coroutine waits in a helper thread that only *waits*
(it never takes an item or a slot); the coroutine then takes for itself, so one cancelled
meanwhile leaves nothing in limbo and nothing out of order.

A ``LifoQueue`` or ``PriorityQueue`` crosses the same way, its segment a
:class:`~plait._ipc.ordered.Store` (a stack, or a heap ordered by the items, compared in
the process that puts or takes) instead of a ring; the protocol above is the same. An item
a ``PriorityQueue`` cannot order raises ``TypeError`` at ``put`` and nothing changes. A
queue class with storage of its own (``_init`` overridden) cannot cross.

Lifetime. Every name of a shared queue (ring, semaphores, big-item segments) carries the
promoting process's pid and start time (``shm.new_prefix``). Every process attached holds
the ring (a shared ``flock``); the last one to let go -- its queue collected, or at its
exit -- removes every name. Processes killed before letting go leave them behind; the next
promotion in any plait process (and every plait process's exit) sweeps the names of dead
owners that no live process holds any more. A live process's queue is never removed.
"""

from __future__ import annotations

import _multiprocessing  # type: ignore[import-not-found]
import asyncio
import pickle
import threading
import time
import weakref
from typing import Any

from plait._channels._queue import (
    CLOSED,
    PROMOTED,
    Empty,
    Full,
    LifoQueue,
    PriorityQueue,
    Queue,
    QueueStatistics,
)
from plait._core import check_timeout, current_strand, hooks
from plait._errors import BrokenResourceError, ClosedError
from plait._ipc import shm, transport
from plait._ipc.ordered import LIFO, PRIORITY, Store
from plait._ipc.transport import Ring

__all__ = ["SharedQueue", "reduce_queue"]

RING_BYTES = 8 * 1024 * 1024
STORE_SLOTS = 1 << 18  # items a LIFO or priority queue's store can index at once
FIFO = 0
_SEM_MAX = _multiprocessing.SemLock.SEM_VALUE_MAX
_SEMAPHORE = 1
_SLICE = 0.05  # a helper thread re-checks cancellation this often
_COUNT, _GETTERS, _PUTTERS, _CLOSED = Ring.COUNT, Ring.GETTERS, Ring.PUTTERS, Ring.CLOSED
_UNFINISHED, _HEAD, _TAIL = Ring.UNFINISHED, Ring.HEAD, Ring.TAIL
_OVF_FIRST = Ring.OVF_FIRST
_SPILL = transport.SPILL
_INLINE = transport.INLINE
_INT, _INT_WORD, _WRAP = transport.INT, transport.INT_WORD, transport.WRAP
_INT_MIN, _INT_MAX = transport.INT_MIN, transport.INT_MAX
_SPIN = 300
_RING_WAIT = 0.02  # how long a big frame waits for ring space before it spills
_dumps = pickle.dumps
_loads = pickle.loads

# Shared queues known in this process, by segment name: unpickling a queue that is
# already here returns the same object.
_known: weakref.WeakValueDictionary[str, Queue[Any]] = weakref.WeakValueDictionary()
_known_lock = threading.Lock()
_ANCHOR = "ring"  # the segment every attached process holds (see shm.held)


def _new_sem(name: str, value: int, maxvalue: int) -> Any:
    return _multiprocessing.SemLock(_SEMAPHORE, value, maxvalue, "/" + name, False)


def _open_sem(name: str, maxvalue: int) -> Any:
    return _multiprocessing.SemLock._rebuild(0, _SEMAPHORE, maxvalue, "/" + name)


class SharedQueue:
    """The cross-process state of one promoted queue (see the module docstring)."""

    order = FIFO

    def __init__(self, prefix: str, maxsize: int, *, create: bool) -> None:
        self.prefix = prefix
        self.maxsize = maxsize
        if create:
            if self.order == FIFO:
                size = Ring.size_for(RING_BYTES)
            else:
                size = Store.size_for(RING_BYTES, STORE_SLOTS)
            self.segment = shm.Segment(
                prefix + _ANCHOR, size, create=True, populate=False, hold=True
            )
            try:
                self.lock = _new_sem(prefix + "lock", 1, 1)
                self.items = _new_sem(prefix + "items", 0, _SEM_MAX)
                self.space = _new_sem(prefix + "space", 0, _SEM_MAX)
                self.done = _new_sem(prefix + "done", 0, _SEM_MAX)
            except BaseException:
                self.segment.let_go()
                shm.remove(prefix, _ANCHOR)
                raise
        else:
            try:
                self.segment = shm.Segment(prefix + _ANCHOR, populate=False, hold=True)
                try:
                    self.lock = _open_sem(prefix + "lock", 1)
                    self.items = _open_sem(prefix + "items", _SEM_MAX)
                    self.space = _open_sem(prefix + "space", _SEM_MAX)
                    self.done = _open_sem(prefix + "done", _SEM_MAX)
                except BaseException:
                    shm.let_go(prefix, self.segment)
                    raise
            except FileNotFoundError:
                raise BrokenResourceError(
                    "this queue can no longer be used here: every process that used it "
                    "has let go of it (it was removed)"
                ) from None
        self.ring: Any = (
            Ring(self.segment, prefix)
            if self.order == FIFO
            else Store(self.segment, self.order, STORE_SLOTS if create else 0)
        )
        self.hdr = self.ring.hdr
        self.cap = self.ring.cap
        if isinstance(self.ring, Ring):
            self.words = self.ring.words
            self.data = self.ring.data
        if create:
            self.ring.hdr[Ring.MAXSIZE] = maxsize
        self.owner = create
        shm.track(self, prefix, self.segment)  # let go when collected, or at exit

    # -- put ----------------------------------------------------------------------------

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        t = type(item)
        seg = None
        if t is int and _INT_MIN <= item <= _INT_MAX:  # travels unpickled
            kind, payload, n = _INT, b"", 8
        elif t is int or t is str or t is float:  # no out-of-band buffers: plain pickle
            payload = _dumps(item, 5)
            n = len(payload)
            if n <= _SPILL:
                kind = _INLINE
            else:
                kind, payload, seg = transport.encode(item, self.prefix)
        elif t is bytes or t is bytearray:
            kind, payload, seg = transport.encode(item, self.prefix)
            n = len(payload)
        else:
            buffers: list[Any] = []
            try:
                payload = _dumps(item, 5, buffer_callback=buffers.append)
            except Exception:
                payload = b""
            n = len(payload)
            if buffers or not payload or n > transport.SPILL:
                kind, payload, seg = transport.encode(item, self.prefix)
                n = len(payload)
            else:
                kind = _INLINE
        if seg is None and timeout is None:  # fast path: room in the ring, no waiting
            hdr = self.hdr
            lock = self.lock
            maxsize = self.maxsize
            cap = self.cap
            need = 8 + ((n + 7) & -8)
            spins = _SPIN if block and maxsize > 0 else 0
            while True:
                if not lock.acquire(False):
                    _spin_acquire(lock)
                try:
                    pushed = False
                    if not hdr[_CLOSED] and (maxsize <= 0 or hdr[_COUNT] < maxsize):
                        tail = hdr[_TAIL]
                        pos = tail % cap
                        if (  # the frame fits before the end, and no overflow: write it here
                            need <= cap - pos
                            and tail - hdr[_HEAD] + need <= cap
                            and not hdr[_OVF_FIRST]
                        ):
                            if kind == _INT:
                                words = self.words
                                words[pos >> 3] = _INT_WORD
                                words[(pos >> 3) + 1] = item
                            else:
                                self.words[pos >> 3] = n << 8 | kind
                                self.data[pos + 8 : pos + 8 + n] = payload
                            hdr[_TAIL] = tail + need
                            hdr[_COUNT] += 1
                            pushed = True
                        else:  # it wraps around, or overflows: the ring's own push
                            if kind == _INT:
                                payload = transport.int_frame(item)
                            pushed = self.ring.push(kind, payload)
                        if pushed:
                            hdr[_UNFINISHED] += 1
                            if hdr[_GETTERS]:
                                hdr[_GETTERS] -= 1
                                self.items.release()
                finally:
                    lock.release()
                if pushed:
                    if hooks.active:
                        hooks.sent(current_strand(), self, item)
                    return
                # Full: a reader usually makes room within microseconds; look before
                # sleeping, so a stream through a full queue makes no system call per item.
                if not spins or hdr[_CLOSED]:
                    break
                spins -= 1
                while spins and hdr[_COUNT] >= maxsize:
                    spins -= 1
        if kind == _INT:
            payload = transport.int_frame(item)
        self._put_wait(item, kind, payload, seg, block, timeout)

    def _put_wait(
        self,
        item: Any,
        kind: int,
        payload: Any,
        seg: shm.Segment | None,
        block: bool,
        timeout: float | None,
        cancel: Any = None,
    ) -> None:
        """Put, waiting for room (``maxsize``) or for ring space.

        A big frame that finds the ring full of bytes waits a little for readers to make
        space, then goes to its own segment: a writer never waits long on unread data.
        """
        deadline = _deadline(block, timeout)
        hdr = self.hdr
        lock = self.lock
        spill_at = None if kind == transport.SEGMENT else time.monotonic() + _RING_WAIT
        try:
            while True:
                spill = False
                lock.acquire()
                try:
                    if hdr[_CLOSED]:
                        raise ClosedError("put() on a closed queue")
                    if cancel is not None and cancel.is_set():
                        raise asyncio.CancelledError
                    room = self.maxsize <= 0 or hdr[_COUNT] < self.maxsize
                    if room and self._push(kind, payload, item):
                        seg = None
                        break
                    if room and spill_at is not None and len(payload) > 64:
                        # room for the item, not for its bytes: wait for space or spill
                        spill = deadline == 0.0 or time.monotonic() >= spill_at
                    elif deadline == 0.0:
                        raise Full
                    if not spill:
                        hdr[_PUTTERS] += 1
                finally:
                    lock.release()
                if spill:
                    kind, payload, seg = transport.spill(payload, self.prefix, kind)
                    spill_at = None
                    continue
                until = deadline
                if room and spill_at is not None:
                    until = spill_at if until is None else min(until, spill_at)
                if not self._sleep(self.space, _PUTTERS, until, cancel):
                    if cancel is not None and cancel.is_set():
                        raise asyncio.CancelledError
                    if until is deadline:
                        raise Full
        finally:
            if seg is not None:  # not queued: its segment must not outlive the call
                seg.unlink()
        if hooks.active:
            hooks.sent(current_strand(), self, item)

    def _push(self, kind: int, payload: Any, item: Any = None) -> bool:
        """Append a frame (lock held); ``False`` if the ring has no room for it now.
        (``item``: a priority store orders by it; ``TypeError`` if it cannot.)"""
        ring = self.ring
        if not ring.push(kind, payload, item):
            return False
        hdr = ring.hdr
        hdr[Ring.UNFINISHED] += 1
        if hdr[Ring.GETTERS]:
            hdr[Ring.GETTERS] -= 1
            self.items.release()
        return True

    # -- get ----------------------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        hdr = self.hdr
        lock = self.lock
        if not lock.acquire(False):
            _spin_acquire(lock)
        try:
            count = hdr[_COUNT]
            if count and hdr[_OVF_FIRST] and hdr[_HEAD] == hdr[_TAIL]:  # from the overflow
                kind, payload = self.ring.pop_overflow()
                if kind == _INT:
                    item = transport.decode(kind, payload)
                if hdr[_PUTTERS]:
                    hdr[_PUTTERS] -= 1
                    self.space.release()
            elif count:  # Ring.pop, inlined
                cap = self.cap
                words = self.words
                head = hdr[_HEAD]
                pos = head % cap
                w = words[pos >> 3]
                if w == _WRAP:
                    head += cap - pos
                    pos = 0
                    w = words[0]
                if w == _INT_WORD:
                    kind = _INT
                    item = words[(pos >> 3) + 1]
                    head += 16
                else:
                    kind = w & 255
                    n = w >> 8
                    payload = self.data[pos + 8 : pos + 8 + n].tobytes()
                    head += 8 + ((n + 7) & -8)
                if head == hdr[_TAIL]:
                    hdr[_HEAD] = hdr[_TAIL] = 0
                else:
                    hdr[_HEAD] = head
                hdr[_COUNT] = count - 1
                if hdr[_PUTTERS]:
                    hdr[_PUTTERS] -= 1
                    self.space.release()
            else:
                kind = -1
        finally:
            lock.release()
        if kind == _INT:
            pass
        elif kind == _INLINE:
            item = _loads(payload)
        elif kind < 0:
            if block:  # an item is often a few microseconds away: look before sleeping
                for _ in range(_SPIN):
                    if hdr[_COUNT]:
                        return self.get(block, timeout)
            return self._get_wait(block, timeout)
        else:
            item = transport.decode(kind, payload)
        if hooks.active:
            hooks.received(current_strand(), self, item)
        return item

    def _get_one(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` through the store's own ``pop`` (ordered stores)."""
        hdr = self.hdr
        lock = self.lock
        if not lock.acquire(False):
            _spin_acquire(lock)
        try:
            if hdr[_COUNT]:
                kind, payload = self.ring.pop()
                if hdr[_PUTTERS]:
                    hdr[_PUTTERS] -= 1
                    self.space.release()
            else:
                kind = -1
        finally:
            lock.release()
        if kind < 0:
            if block:
                for _ in range(_SPIN):
                    if hdr[_COUNT]:
                        return self._get_one(block, timeout)
            return self._get_wait(block, timeout)
        item = transport.decode(kind, payload)
        if hooks.active:
            hooks.received(current_strand(), self, item)
        return item

    def _get_wait(self, block: bool, timeout: float | None) -> Any:
        deadline = _deadline(block, timeout)
        hdr = self.hdr
        lock = self.lock
        while True:
            lock.acquire()
            try:
                if hdr[_COUNT]:
                    kind, payload = self.ring.pop()
                    if hdr[_PUTTERS]:
                        hdr[_PUTTERS] -= 1
                        self.space.release()
                    break
                if hdr[_CLOSED]:
                    raise ClosedError("get() on a closed, drained queue")
                if deadline == 0.0:
                    raise Empty
                hdr[_GETTERS] += 1
            finally:
                lock.release()
            if not self._sleep(self.items, _GETTERS, deadline):
                raise Empty
        item = transport.decode(kind, payload)
        if hooks.active:
            hooks.received(current_strand(), self, item)
        return item

    def _sleep(self, sem: Any, slot: int, deadline: float | None, cancel: Any = None) -> bool:
        """Sleep on ``sem`` after announcing in ``slot``; ``False`` on timeout (or cancel)."""
        while True:
            if deadline is None:
                left = _SLICE if cancel is not None else None
            else:
                left = deadline - time.monotonic()
                if cancel is not None:
                    left = min(left, _SLICE)
            if left is None:
                sem.acquire()
                return True
            if left > 0 and sem.acquire(True, left):
                return True
            expired = deadline is not None and time.monotonic() >= deadline
            if not expired and not (cancel is not None and cancel.is_set()):
                continue
            # Give up -- unless a post raced with us: then take it and go on.
            self.lock.acquire()
            try:
                if sem.acquire(False):
                    return True
                self.ring.hdr[slot] -= 1
                return False
            finally:
                self.lock.release()

    # -- async forms --------------------------------------------------------------------

    async def async_put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        deadline = _deadline(block, timeout)
        while True:
            try:
                self.put(item, False)
                return
            except Full:
                if deadline == 0.0 or (deadline is not None and time.monotonic() >= deadline):
                    raise
            await self._async_wait(self.space, _PUTTERS, self._can_put, deadline)

    async def async_get(self, block: bool = True, timeout: float | None = None) -> Any:
        deadline = _deadline(block, timeout)
        while True:
            try:
                return self.get(False)
            except Empty:
                if deadline == 0.0 or (deadline is not None and time.monotonic() >= deadline):
                    raise
            await self._async_wait(self.items, _GETTERS, self._can_get, deadline)

    def _can_get(self) -> bool:
        hdr = self.hdr
        return bool(hdr[_COUNT] or hdr[_CLOSED])

    def _can_put(self) -> bool:
        hdr = self.hdr
        if hdr[_CLOSED]:
            return True
        return (self.maxsize <= 0 or hdr[_COUNT] < self.maxsize) and self.ring.free() > 4096

    async def _async_wait(self, sem: Any, slot: int, ready: Any, deadline: float | None) -> None:
        """Wait, in a helper thread, until ``ready()`` may hold; the coroutine then retries.

        The helper only waits: it never takes an item or a slot, so a coroutine cancelled
        meanwhile leaves nothing in limbo. A wake-up the helper consumed for a cancelled
        coroutine is passed on to the next waiter.
        """
        cancel = threading.Event()

        def wait() -> bool:
            with _Held(self.lock):
                if ready():
                    return False  # nothing consumed: just retry
                self.hdr[slot] += 1
            return self._sleep(sem, slot, deadline, cancel)

        fut = asyncio.get_running_loop().run_in_executor(None, wait)
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancel.set()
            try:
                woke = await fut  # the helper notices within _SLICE seconds
            except BaseException:
                woke = False
            if woke:
                with _Held(self.lock):
                    if self.hdr[slot]:
                        self.hdr[slot] -= 1
                        sem.release()
            raise

    # -- tasks, close, sizes -------------------------------------------------------------

    def task_done(self) -> None:
        hdr = self.ring.hdr
        with _Held(self.lock):
            if hdr[Ring.UNFINISHED] <= 0:
                raise ValueError("task_done() called too many times")
            hdr[Ring.UNFINISHED] -= 1
            if hdr[Ring.UNFINISHED] == 0:
                for _ in range(hdr[Ring.JOINERS]):
                    self.done.release()
                hdr[Ring.JOINERS] = 0

    def join(self) -> None:
        hdr = self.ring.hdr
        with _Held(self.lock):
            if hdr[Ring.UNFINISHED] == 0:
                return
            hdr[Ring.JOINERS] += 1
        self._sleep(self.done, Ring.JOINERS, None)

    async def async_join(self) -> None:
        while self.hdr[Ring.UNFINISHED]:
            await self._async_wait(
                self.done, Ring.JOINERS, lambda: not self.hdr[Ring.UNFINISHED], None
            )

    def close(self) -> None:
        hdr = self.ring.hdr
        with _Held(self.lock):
            if hdr[Ring.CLOSED]:
                return
            hdr[Ring.CLOSED] = 1
            for _ in range(hdr[Ring.GETTERS]):
                self.items.release()
            for _ in range(hdr[Ring.PUTTERS]):
                self.space.release()
            hdr[Ring.GETTERS] = hdr[Ring.PUTTERS] = 0

    @property
    def closed(self) -> bool:
        return bool(self.ring.hdr[Ring.CLOSED])

    def qsize(self) -> int:
        return int(self.ring.hdr[Ring.COUNT])

    def full(self) -> bool:
        return 0 < self.maxsize <= self.qsize()

    def statistics(self) -> QueueStatistics:
        hdr = self.ring.hdr
        with _Held(self.lock):
            return QueueStatistics(
                qsize=int(hdr[Ring.COUNT]),
                maxsize=self.maxsize,
                getters_waiting=int(hdr[Ring.GETTERS]),
                putters_waiting=int(hdr[Ring.PUTTERS]),
                unfinished_tasks=int(hdr[Ring.UNFINISHED]),
                closed=bool(hdr[Ring.CLOSED]),
                shared=True,
            )

    def unfinished(self) -> int:
        return int(self.ring.hdr[Ring.UNFINISHED])

    def __repr__(self) -> str:
        return f"<plait shared queue {self.prefix}>"


class OrderedSharedQueue(SharedQueue):
    """A shared ``LifoQueue`` or ``PriorityQueue``: the same protocol over a
    :class:`~plait._ipc.ordered.Store` instead of a ring (no inlined fast path)."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        kind, payload, seg = transport.encode(item, self.prefix)
        self._put_wait(item, kind, payload, seg, block, timeout)

    get = SharedQueue._get_one


class _LifoShared(OrderedSharedQueue):
    order = LIFO


class _PriorityShared(OrderedSharedQueue):
    order = PRIORITY


_ORDERED: dict[int, type[SharedQueue]] = {LIFO: _LifoShared, PRIORITY: _PriorityShared}


class _Held:
    """``with _Held(semlock):`` -- a SemLock as a plain context manager."""

    __slots__ = ("sem",)

    def __init__(self, sem: Any) -> None:
        self.sem = sem

    def __enter__(self) -> None:
        self.sem.acquire()

    def __exit__(self, *exc: object) -> None:
        self.sem.release()


def _spin_acquire(lock: Any) -> None:
    """Take a contended process-shared lock: its holder keeps it for about a microsecond,
    so a short spin usually beats sleeping in the kernel."""
    for _ in range(_SPIN):
        if lock.acquire(False):
            return
    lock.acquire()


def _deadline(block: bool, timeout: float | None) -> float | None:
    if not block:
        return 0.0
    if timeout is None:
        return None
    try:
        wait = check_timeout(timeout)
    except ValueError:
        raise ValueError("'timeout' must be a non-negative number") from None
    assert wait is not None
    return 0.0 if wait == 0 else time.monotonic() + wait


# -- promotion and pickling ------------------------------------------------------------


def _order_of(q: Queue[Any]) -> int:
    """How ``q`` orders its items: FIFO, LIFO or PRIORITY (custom storage cannot cross)."""
    init = type(q)._init
    if init is Queue._init:
        return FIFO
    if init is LifoQueue._init:
        return LIFO
    if init is PriorityQueue._init:
        return PRIORITY
    raise TypeError(
        f"a {type(q).__name__} keeps its items in its own storage (it overrides _init), "
        "so it cannot be shared with processes; derive from plait.Queue, LifoQueue or "
        "PriorityQueue without overriding their storage"
    )


def _backend_class(order: int) -> type[SharedQueue]:
    return _ORDERED.get(order, SharedQueue)


def promote(q: Queue[Any]) -> SharedQueue:
    """Move ``q`` onto a new shared backend (idempotent)."""
    cls = _backend_class(_order_of(q))
    with q.mutex:
        if q._shared is not None:
            return q._shared  # type: ignore[no-any-return]
        shm.sweep_dead(_ANCHOR)  # names that processes killed before letting go left
        backend = cls(shm.new_prefix("q"), q.maxsize, create=True)
        items = list(q.queue)
        encoded = [transport.encode(item, backend.prefix) for item in items]
        with _Held(backend.lock):
            hdr = backend.ring.hdr
            for item, (kind, payload, _seg) in zip(items, encoded, strict=True):
                if not backend._push(kind, payload, item):
                    raise RuntimeError("too many items queued to share this queue")
            hdr[Ring.UNFINISHED] = q._unfinished
            if q._closed:
                hdr[Ring.CLOSED] = 1
        q.queue.clear()
        q._shared = backend
        q._limit = -1
        _bind(q, backend)
        woken = q._getters.pop_all(PROMOTED) + q._putters.pop_all(PROMOTED)
        woken += q._joiners.pop_all(PROMOTED)
    for w in woken:
        arm = w.data
        if arm is None:
            w.wake()
        else:
            arm.fire(CLOSED)
    with _known_lock:
        _known[backend.prefix] = q
    return backend


def _bind(q: Queue[Any], backend: SharedQueue) -> None:
    # Instance attributes shadow the in-process methods: a shared queue's calls go
    # straight to its backend.
    q.__dict__.update(put=backend.put, get=backend.get)
    q.__dict__.update(async_put=backend.async_put, async_get=backend.async_get)


def reduce_queue(q: Queue[Any]) -> Any:
    """``__reduce__`` of every plait queue: promote it, then travel as its backend's name."""
    backend = q._shared if q._shared is not None else promote(q)
    return (_rebuild_queue, (type(q), backend.prefix, backend.maxsize, backend.order))


def _rebuild_queue(
    cls: type[Queue[Any]], prefix: str, maxsize: int, order: int = FIFO
) -> Queue[Any]:
    with _known_lock:
        known = _known.get(prefix)
        if known is not None:
            return known
        q: Queue[Any] = cls.__new__(cls)
        Queue.__init__(q, maxsize)
        q._shared = _backend_class(order)(prefix, maxsize, create=False)
        q._limit = -1
        _bind(q, q._shared)
        _known[prefix] = q
    return q
