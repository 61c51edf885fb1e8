"""Queues across processes: promote-on-pickle to a shared-memory backend.

A :class:`~plait._channels._queue.Queue` lives in its process until it is first pickled
(passed to a process at spawn, or later through another queue or pipe). Then it is
*promoted*: a :class:`SharedQueue` is created, the items already queued move into it in
order, waiters parked on the local queue retry on the shared one, and from then on every
operation in every process goes through it. Queues that never cross pay nothing.

The shared backend is one shared-memory segment: a header of counters, a robust
process-shared lock (``plait._ipc.robust``), a wait table (``plait._ipc.doorbell``) and a
ring of framed messages (``plait._ipc.transport``). An operation takes the lock for a few
microseconds; one that must wait parks its strand through the kernel in its own process,
announced in the wait table, and the operation that makes progress possible rings that
process's doorbell. So a thread's wait sees its cancel scopes, ``move_on_after`` and
``tg.cancel()`` like any plait wait; a coroutine waits on a future of its loop, with no
thread per waiting coroutine; and a select waits the same way (``_select_shared``). A waiter
never takes an item or a slot for someone else: woken, it tries again itself, so one
cancelled meanwhile leaves nothing in limbo and nothing out of order.

Faults. A process killed inside an operation (holding the lock) is seen by the next
operation in any process: it repairs the ring (:meth:`~plait._ipc.transport.Ring.repair`:
at most the dead strand's in-flight item is lost, none duplicated or torn) and wakes every
waiter to look again; a ring it cannot repair makes every later call raise
:class:`~plait.BrokenResourceError`. A ``LifoQueue`` or ``PriorityQueue`` store is not
repaired: a holder's death there breaks the queue (``BrokenResourceError``). A putter killed
at the moment its item is committed may leave ``unfinished_tasks`` one short. Every wait
honours its timeout and the caller's cancel scopes, the wait for the lock included.

``put()`` pickles in the caller (an unpicklable item raises there, nothing is queued) and
returns as soon as the frame is in shared memory: a child that puts 10 MB and exits loses
nothing, and never waits on exit.

A ``LifoQueue`` or ``PriorityQueue`` crosses the same way, its segment a
:class:`~plait._ipc.ordered.Store` (a stack, or a heap ordered by the items, compared in
the process that puts or takes) instead of a ring; the protocol above is the same. An item
a ``PriorityQueue`` cannot order raises ``TypeError`` at ``put`` and nothing changes. A
queue class with storage of its own (``_init`` overridden) cannot cross.

Lifetime. Every name of a shared queue (ring, big-item segments) carries the promoting
process's pid and start time (``shm.new_prefix``). Every process attached holds the ring (a
shared ``flock``); the last one to let go -- its queue collected, or at its exit -- removes
every name. Processes killed before letting go leave them behind; the next plait process
sweeps the names of dead owners that no live process holds any more (``shm.sweep_dead``). A
live process's queue is never removed.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

from plait._channels import _queue_batch_shared
from plait._channels._queue_speedups import _speedups as _c
from plait._channels._queue_stats import QueueStatistics
from plait._channels._queue_waits import CLOSED, MIGRATED
from plait._core import check_timeout, current_strand, hooks
from plait._core import safepoint as _safepoint
from plait._errors import BrokenResourceError, Empty, Full, ShutDown
from plait._ipc import doorbell, promotion, robust, shm, transport
from plait._ipc.doorbell import Room
from plait._ipc.ordered import LIFO, PRIORITY, Store
from plait._ipc.robust import LockTimeout, RobustLock, Uncancellable
from plait._ipc.transport import Ring

__all__ = ["SharedQueue"]

RING_BYTES = 8 * 1024 * 1024
STORE_SLOTS = 1 << 18  # items a LIFO or priority queue's store can index at once
FIFO = 0
GET, PUT, JOIN = 0, 1, 2  # wait-table directions
_COUNT, _CLOSED, _UNFINISHED = Ring.COUNT, Ring.CLOSED, Ring.UNFINISHED
_SPILL = transport.SPILL
_INLINE = transport.INLINE
_INT = transport.INT
_INT_MIN, _INT_MAX = transport.INT_MIN, transport.INT_MAX
_SPIN = 300
_BROKEN = 2  # CLOSED's value once a holder's death left the queue beyond repair
_RING_WAIT = 0.02  # how long a big frame waits for ring space before it spills
_LOOK_S = 500e-6  # how long a rung putter looks for room before it tries (_look_for_room)
_dumps = pickle.dumps
_loads = pickle.loads
_decode = transport.decode
_monotonic = time.monotonic
_enter = _safepoint.enter
_leave = _safepoint.leave
_sp_state = _safepoint._state
_get_ident = threading.get_ident
_sched_yield = os.sched_yield
_trylock = robust._trylock
_unlock = robust._unlock
_wake = doorbell.wake

# The C port (plait._speedups.RingPort) writes the ring's frames itself: its idea of the
# layout must be this one, or the import fails (never a silently wrong or disabled port).
if _c is not None and _c.RING_LAYOUT != (
    Ring.HEAD,
    Ring.TAIL,
    Ring.COUNT,
    Ring.UNFINISHED,
    Ring.CLOSED,
    Ring.PUT_GATE,
    Ring.OVF_FIRST,
    _INLINE,
    transport.BYTES,
    transport.BYTEARRAY,
    _INT,
    GET,
    PUT,
):
    raise ImportError(
        "plait._speedups was built for another shared-queue layout: reinstall plait "
        "(or set PLAIT_NO_SPEEDUPS=1 to run without it)"
    )

_ANCHOR = "ring"  # the segment every attached process holds (see shm.held)


@promotion.register_backend
class SharedQueue(promotion.Backend):
    """The cross-process state of one promoted queue (see the module docstring): a
    ``Queue``'s backend once shared, made and installed by the one promotion seam
    (``plait._ipc.promotion``); it knows the public queue only by duck typing."""

    kind = "queue"
    order = FIFO

    def __init__(self, prefix: str, maxsize: int, *, create: bool) -> None:
        self.prefix = prefix
        self.maxsize = maxsize
        # The public queue in this process (weakly: it holds us): what a parked strand is
        # parked *on*, as instruments and wait_parked(on=q) see it.
        self.front: Callable[[], object] | None = None
        if create:
            if self.order == FIFO:
                size = Ring.size_for(RING_BYTES)
            else:
                size = Store.size_for(RING_BYTES, STORE_SLOTS)
            self.segment = shm.Segment(
                prefix + _ANCHOR, size, create=True, populate=False, hold=True
            )
        else:
            try:
                self.segment = shm.Segment(prefix + _ANCHOR, populate=False, hold=True)
            except FileNotFoundError:
                raise BrokenResourceError(
                    "this queue can no longer be used here: every process that used it "
                    "has let go of it (it was removed)"
                ) from None
        try:
            self.ring: Any = (
                Ring(self.segment, prefix)
                if self.order == FIFO
                else Store(self.segment, self.order, STORE_SLOTS if create else 0)
            )
            buf = self.segment.buf
            self.lock = RobustLock(
                buf, transport.MUTEX_AT, create=create, repair=self._repair, what=repr(self)
            )
            self.waits = buf[transport.WAITS_AT : transport.HEADER].cast("q")
        except BaseException:
            shm.let_go(prefix, self.segment)
            raise
        self._addr = self.lock.addr
        self._pop = self.ring.pop  # (bound once: the hot paths call them)
        self._ring_push = self.ring.push
        self.hdr = self.ring.hdr
        self._room: Room | None = None
        if create:
            self.ring.hdr[Ring.MAXSIZE] = maxsize
        self.owner = create
        shm.track(self, prefix, self.segment)  # let go when collected, or at exit

    @property
    def room(self) -> Room:
        """This process's waiters on the queue (made on the first wait)."""
        room = self._room
        if room is None:
            room = self._room = Room(self.waits, Uncancellable(self.lock))  # (never lost)
        return room

    def __del__(self) -> None:
        """Let go here while this process lives on: the bell's watcher frees our slot in
        the wait table (``doorbell.retire_later``: it never blocks)."""
        room = getattr(self, "_room", None)  # (an __init__ that failed has none)
        if room is not None:
            try:
                doorbell.retire_later(self, room, hand_on=True)
            except Exception:  # (at interpreter exit: modules half torn down)
                pass

    def _repair(self) -> None:
        """The lock's holder died inside (we hold it now): make the state whole again, or
        mark the queue broken (``CLOSED`` = :data:`_BROKEN`, nothing to take: every later
        call raises :class:`BrokenResourceError`); either way every waiter looks again."""
        hdr = self.hdr
        try:
            if self.order != FIFO:
                raise BrokenResourceError("a LIFO or priority queue's store cannot be repaired")
            self.ring.repair()
        except BrokenResourceError:
            hdr[_CLOSED] = _BROKEN
            hdr[_COUNT] = 0
        doorbell.wake_everyone(self.waits)

    def _on(self) -> object:
        """What a strand waiting here is parked on: the public queue, while it lives."""
        front = self.front() if self.front is not None else None
        return front if front is not None else self

    def _closed(self, op: str) -> BaseException:
        """The error for ``op`` on a closed (or broken) queue."""
        if self.hdr[_CLOSED] == _BROKEN:
            return BrokenResourceError(
                f"{self!r} is broken: a process died while changing it and its state could "
                "not be repaired (a LIFO or priority queue's store never is); make a new one"
            )
        if op == "get":
            return ShutDown("get() on a closed, drained queue")
        return ShutDown("put() on a closed queue")

    def _acquire(self, deadline: float | None, cancellable: bool = True) -> None:
        """Take the lock (a safe-point section until ``_release``). ``cancellable=False``
        for bookkeeping that must finish (a select withdrawing its announcement)."""
        _enter()
        rc = _trylock(self._addr)
        if rc:
            try:
                self.lock._slow(rc, deadline, cancellable)
            except BaseException:
                _leave()
                raise

    def _release(self) -> None:
        _unlock(self._addr)
        _leave()

    def _recover_held(self) -> None:
        """The C port took the lock from a dead holder (and entered a safe-point section):
        repair, then release."""
        try:
            self.lock._recover()
        except BaseException:
            _leave()
            raise
        self._release()

    def port(self) -> Any:
        """This queue's put/get in C (``plait._speedups.RingPort``), or ``None`` where
        the accelerator is not in use or the backend is not a ring."""
        if _c is None or self.order != FIFO:
            return None
        return _c.RingPort(
            self.segment.buf,
            transport.MUTEX_AT,
            transport.WAITS_AT,
            transport.HEADER,
            self.ring.cap,
            self.maxsize,
            _safepoint._main_ident,
            _sp_state,
            self._encode,
            self._put_encoded,
            self.put,
            self.get,
            self._recover_held,
            _loads,
            _decode,
        )

    # -- put ----------------------------------------------------------------------------

    def _encode(self, item: Any) -> tuple[int, Any, shm.Segment | None]:
        t = type(item)
        if t is int and _INT_MIN <= item <= _INT_MAX:  # travels unpickled
            return _INT, item, None
        if t is int or t is str or t is float:  # no out-of-band buffers: plain pickle
            payload = _dumps(item, 5)
            if len(payload) <= _SPILL:
                return _INLINE, payload, None
            return transport.encode(item, self.prefix)
        if t is bytes or t is bytearray:
            return transport.encode(item, self.prefix)
        buffers: list[Any] = []
        try:
            payload = _dumps(item, 5, buffer_callback=buffers.append)
        except Exception:
            payload = b""
        if buffers or not payload or len(payload) > _SPILL:
            return transport.encode(item, self.prefix)
        return _INLINE, payload, None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if type(item) is int and _INT_MIN <= item <= _INT_MAX:  # (the commonest: no call)
            self._put_encoded(item, _INT, item, None, block, timeout)
        else:
            self._put_encoded(item, *self._encode(item), block, timeout)

    def _put_encoded(
        self,
        item: Any,
        kind: int,
        payload: Any,
        seg: shm.Segment | None,
        block: bool,
        timeout: float | None,
    ) -> None:
        """Put ``item``, already encoded (the C port's way in when it declines)."""
        if seg is None and timeout is None:  # fast path: room in the ring, no waiting
            hdr = self.hdr
            maxsize = self.maxsize
            spins = _SPIN if block and maxsize > 0 else 0
            addr = self._addr
            while True:
                # (safepoint.enter/leave, inlined: this is the hot path)
                main = _get_ident() == _safepoint._main_ident
                if main:
                    _sp_state.depth += 1
                rc = _trylock(addr)
                if rc:
                    try:
                        self.lock._slow(rc, None if block else 0.0)
                    except LockTimeout:
                        _leave()
                        raise Full from None
                    except BaseException:
                        _leave()
                        raise
                try:
                    pushed = (
                        not hdr[_CLOSED]
                        and (maxsize <= 0 or hdr[_COUNT] < maxsize)
                        and self._ring_push(kind, payload)
                    )
                    if pushed:
                        hdr[_UNFINISHED] += 1
                        if self.waits[GET]:
                            _wake(self.waits, GET)
                finally:
                    _unlock(addr)
                    if main:
                        _sp_state.depth -= 1
                        if _sp_state.pending is not None and not _sp_state.depth:
                            _sp_state.depth = 1
                            _leave()  # raises the cancellation deferred meanwhile
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
        self._drive(self._put_wait(item, kind, payload, seg, _deadline(block, timeout), False))

    def _drive(self, steps: Any) -> None:
        """Run a put's steps in this thread, parking it where they ask."""
        try:
            request = steps.send(None)
            while True:
                waiter, left = request
                request = steps.send(self.room.park(waiter, PUT, left))
        except StopIteration:
            return
        finally:
            steps.close()

    async def _async_drive(self, steps: Any) -> None:
        """Run a put's steps in this coroutine, parking it on its loop where they ask."""
        try:
            request = steps.send(None)
            while True:
                waiter, left = request
                request = steps.send(await self.room.async_park(waiter, PUT, left))
        except StopIteration:
            return
        finally:
            steps.close()

    def _put_step(
        self,
        item: Any,
        kind: int,
        payload: Any,
        deadline: float | None,
        spill_at: float | None,
        coroutine: bool,
    ) -> tuple[Any, bool]:
        """One try (lock held by the caller): ``(None, True)`` put; ``(waiter, False)`` to
        park; ``(None, False)`` to spill the frame and try again."""
        hdr = self.hdr
        if hdr[_CLOSED]:
            raise self._closed("put")
        room = self.maxsize <= 0 or hdr[_COUNT] < self.maxsize
        if room and self._push(kind, payload, item):
            return None, True
        if room and spill_at is not None and kind != _INT and len(payload) > 64:
            # room for the item, not for its bytes: wait for space a moment, or spill
            if deadline == 0.0 or _monotonic() >= spill_at:
                return None, False
        elif deadline == 0.0:
            raise Full
        return self.room.enqueue(PUT, self._on(), coroutine), False

    def _put_wait(
        self,
        item: Any,
        kind: int,
        payload: Any,
        seg: shm.Segment | None,
        deadline: float | None,
        coroutine: bool,
    ) -> Any:
        """Put, waiting for room (``maxsize``) or for ring space: a generator of the steps,
        yielding ``(waiter, timeout)`` to be parked (:meth:`_drive`, :meth:`_async_drive`).

        A big frame that finds the ring full of bytes waits a little for readers to make
        space, then goes to its own segment: a writer never waits long on unread data.
        """
        spill_at = None if kind == transport.SEGMENT else _monotonic() + _RING_WAIT
        try:
            while True:
                try:
                    self._acquire(deadline)
                except LockTimeout:
                    raise Full from None
                try:
                    waiter, done = self._put_step(
                        item, kind, payload, deadline, spill_at, coroutine
                    )
                finally:
                    self._release()
                if done:
                    seg = None
                    break
                if waiter is None:  # spill it
                    kind, payload, seg = transport.spill(payload, self.prefix, kind)
                    spill_at = None
                    continue
                until = deadline
                if spill_at is not None and kind != _INT and len(payload) > 64:
                    until = spill_at if until is None else min(until, spill_at)
                left = None if until is None else max(until - _monotonic(), 0.0)
                woken = yield waiter, left
                if not woken and until is deadline and deadline is not None:
                    raise Full
                if woken and not coroutine:
                    self._look_for_room()
        finally:
            if seg is not None:  # not queued: its segment must not outlive the call
                seg.unlink()
        if hooks.active:
            hooks.sent(current_strand(), self, item)
        return None

    def _look_for_room(self) -> None:
        """A rung putter (a thread) looks a moment, reading without the lock, for room
        before it tries again: with many putters the room it was rung for is often taken
        first, and parking again at once would cost the reader a ring for every item."""
        hdr, maxsize = self.hdr, self.maxsize
        if maxsize <= 0:
            return
        until = _monotonic() + _LOOK_S
        while hdr[_COUNT] >= maxsize and not hdr[_CLOSED] and _monotonic() < until:
            _sched_yield()

    def _push(self, kind: int, payload: Any, item: Any = None) -> bool:
        """Append a frame (lock held); ``False`` if the ring has no room for it now.
        (``item``: a priority store orders by it; ``TypeError`` if it cannot.)"""
        ring = self.ring
        if not ring.push(kind, payload, item):
            return False
        ring.hdr[_UNFINISHED] += 1
        if self.waits[GET]:
            _wake(self.waits, GET)
        return True

    # -- get ----------------------------------------------------------------------------

    def _take(self) -> tuple[int, Any]:
        """Take the oldest frame (lock held, ``COUNT`` > 0); a putter waiting is rung."""
        frame = self.ring.pop()
        if self.waits[PUT]:
            _wake(self.waits, PUT)
        return frame  # type: ignore[no-any-return]

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        hdr = self.hdr
        addr = self._addr
        main = _get_ident() == _safepoint._main_ident  # (safepoint.enter, inlined)
        if main:
            _sp_state.depth += 1
        rc = _trylock(addr)
        if rc:
            try:
                self.lock._slow(rc, _deadline(block, timeout))
            except LockTimeout:
                _leave()
                raise Empty from None
            except BaseException:
                _leave()
                raise
        try:
            if hdr[_COUNT]:
                kind, payload = self._pop()
                if self.waits[PUT]:
                    _wake(self.waits, PUT)
            else:
                kind = -1
        finally:
            _unlock(addr)
            if main:  # (safepoint.leave, inlined)
                _sp_state.depth -= 1
                if _sp_state.pending is not None and not _sp_state.depth:
                    _sp_state.depth = 1
                    _leave()  # raises the cancellation deferred meanwhile
        if kind < 0:
            if block:  # an item is often a few microseconds away: look before sleeping
                for _ in range(_SPIN):
                    if hdr[_COUNT]:
                        return self.get(block, timeout)
            return self._get_wait(_deadline(block, timeout))
        item = (
            payload
            if kind == _INT
            else (_loads(payload) if kind == _INLINE else _decode(kind, payload))
        )
        if hooks.active:
            hooks.received(current_strand(), self, item)
        return item

    def _get_step(self, deadline: float | None, coroutine: bool) -> tuple[Any, Any]:
        """One try (lock held): ``(frame, None)`` taken, or ``(None, waiter)`` to park."""
        hdr = self.hdr
        if hdr[_COUNT]:
            return self._take(), None
        if hdr[_CLOSED]:
            raise self._closed("get")
        if deadline == 0.0:
            raise Empty
        return None, self.room.enqueue(GET, self._on(), coroutine)

    def _get_wait(self, deadline: float | None) -> Any:
        while True:
            try:
                self._acquire(deadline)
            except LockTimeout:
                raise Empty from None
            try:
                frame, waiter = self._get_step(deadline, False)
            finally:
                self._release()
            if frame is not None:
                return self._received(frame)
            left = None if deadline is None else max(deadline - _monotonic(), 0.0)
            if not self.room.park(waiter, GET, left) and deadline is not None:
                raise Empty

    def _received(self, frame: tuple[int, Any]) -> Any:
        item = _decode(*frame)
        if hooks.active:
            hooks.received(current_strand(), self, item)
        return item

    # -- async forms: the same steps, parked on the coroutine's loop ---------------------

    async def async_put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        deadline = _deadline(block, timeout)
        kind, payload, seg = self._encode(item)
        await self._async_drive(self._put_wait(item, kind, payload, seg, deadline, True))

    async def async_get(self, block: bool = True, timeout: float | None = None) -> Any:
        deadline = _deadline(block, timeout)
        room = None
        while True:
            try:
                self._acquire(deadline)
            except LockTimeout:
                raise Empty from None
            try:
                frame, waiter = self._get_step(deadline, True)
            finally:
                self._release()
            if frame is not None:
                return self._received(frame)
            room = room or self.room
            left = None if deadline is None else max(deadline - _monotonic(), 0.0)
            if not await room.async_park(waiter, GET, left) and deadline is not None:
                raise Empty

    # -- batches: one lock per part (``_queue_batch_shared``) ----------------------------

    put_many = _queue_batch_shared.put_many
    async_put_many = _queue_batch_shared.async_put_many
    get_many = _queue_batch_shared.get_many
    async_get_many = _queue_batch_shared.async_get_many
    take_many = _queue_batch_shared.take_many

    def _can_get(self) -> bool:
        hdr = self.hdr
        return bool(hdr[_COUNT] or hdr[_CLOSED])

    def _can_put(self) -> bool:
        hdr = self.hdr
        if hdr[_CLOSED]:
            return True
        return (self.maxsize <= 0 or hdr[_COUNT] < self.maxsize) and self.ring.free() > 4096

    # -- tasks, close, sizes -------------------------------------------------------------

    def task_done(self) -> None:
        hdr = self.hdr
        with self.lock:
            if hdr[_UNFINISHED] <= 0:
                raise ValueError("task_done() called too many times")
            hdr[_UNFINISHED] -= 1
            if hdr[_UNFINISHED] == 0 and self.waits[JOIN]:
                doorbell.wake_all(self.waits, JOIN)

    def _join_step(self, coroutine: bool) -> Any:
        """(lock held) ``None`` if every task is done, else a waiter to park."""
        if self.hdr[_UNFINISHED] == 0:
            return None
        return self.room.enqueue(JOIN, self._on(), coroutine)

    def join(self) -> None:
        while True:
            with self.lock:
                waiter = self._join_step(False)
            if waiter is None:
                return
            self.room.park(waiter, JOIN, None)

    async def async_join(self) -> None:
        while True:
            with self.lock:
                waiter = self._join_step(True)
            if waiter is None:
                return
            await self.room.async_park(waiter, JOIN, None)

    def close(self) -> None:
        hdr = self.hdr
        with self.lock:
            if hdr[_CLOSED]:
                return
            hdr[_CLOSED] = 1
            doorbell.wake_all(self.waits, GET)
            doorbell.wake_all(self.waits, PUT)

    @property
    def closed(self) -> bool:
        return bool(self.hdr[_CLOSED])

    def qsize(self) -> int:
        return int(self.hdr[_COUNT])

    def full(self) -> bool:
        return 0 < self.maxsize <= self.qsize()

    def statistics(self) -> QueueStatistics:
        hdr = self.hdr
        with self.lock:
            return QueueStatistics(
                qsize=int(hdr[_COUNT]),
                maxsize=self.maxsize,
                getters_waiting=doorbell.waiting(self.waits, GET),
                putters_waiting=doorbell.waiting(self.waits, PUT),
                unfinished_tasks=int(hdr[_UNFINISHED]),
                closed=bool(hdr[_CLOSED]),
                shared=True,
            )

    def unfinished(self) -> int:
        return int(self.hdr[_UNFINISHED])

    # -- the promotion seam's side (``plait._ipc.promotion``) -----------------------------

    @classmethod
    def adopt(cls, obj: Any) -> tuple[promotion.Backend, dict[str, Any]]:
        """(the queue's mutex held) A new shared queue holding the queue's items, in
        order, its unfinished count and whether it is closed."""
        shm.sweep_dead(_ANCHOR)  # names that processes killed before letting go left
        backend = cls(shm.new_prefix("q"), obj.maxsize, create=True)
        items = list(obj.queue)
        encoded = [transport.encode(item, backend.prefix) for item in items]
        with backend.lock:
            hdr = backend.hdr
            for item, (kind, payload, _seg) in zip(items, encoded, strict=True):
                if not backend._push(kind, payload, item):
                    raise RuntimeError("too many items queued to share this queue")
            hdr[_UNFINISHED] = obj._unfinished
            if obj._closed:
                hdr[_CLOSED] = 1
        obj.queue.clear()
        return backend, backend._fields(obj)

    @classmethod
    def attach(cls, prefix: str, obj: Any) -> tuple[promotion.Backend, dict[str, Any]]:
        backend = cls(prefix, obj.maxsize, create=False)
        return backend, backend._fields(obj)

    def _fields(self, q: Any) -> dict[str, Any]:
        """What the public queue ``q`` holds once this is its backend: its local bound
        closed for good (``_limit``: the C fast paths hand every call to Python), and its
        put/get going straight here, through the C port where there is one (instance
        attributes in front of the class's methods)."""
        self.front = weakref.ref(q)
        port = self.port()
        target = port if port is not None else self
        return {
            "_limit": -1,
            "put": target.put,
            "get": target.get,
            "async_put": self.async_put,
            "async_get": self.async_get,
        }

    def hand_over(self, obj: Any) -> list[Callable[[], object]]:
        """The strands parked on the local queue wait again here; a select armed on it
        is fired ``CLOSED`` (it looks again, and finds the queue shared)."""
        woken = obj._getters.pop_all(MIGRATED) + obj._putters.pop_all(MIGRATED)
        woken += obj._joiners.pop_all(MIGRATED)
        return [w.wake if w.data is None else partial(w.data.fire, CLOSED) for w in woken]

    def __repr__(self) -> str:
        return f"<plait shared queue {self.prefix}>"


class OrderedSharedQueue(SharedQueue):
    """A shared ``LifoQueue`` or ``PriorityQueue``: the same protocol over a
    :class:`~plait._ipc.ordered.Store` instead of a ring (no inlined fast path)."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        kind, payload, seg = transport.encode(item, self.prefix)
        self._drive(self._put_wait(item, kind, payload, seg, _deadline(block, timeout), False))

    async def async_put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        deadline = _deadline(block, timeout)
        kind, payload, seg = transport.encode(item, self.prefix)
        await self._async_drive(self._put_wait(item, kind, payload, seg, deadline, True))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._get_wait(_deadline(block, timeout))


@promotion.register_backend
class _LifoShared(OrderedSharedQueue):
    kind = "lifo queue"
    order = LIFO


@promotion.register_backend
class _PriorityShared(OrderedSharedQueue):
    kind = "priority queue"
    order = PRIORITY


def _deadline(block: bool, timeout: float | None) -> float | None:
    if not block:
        return 0.0
    if timeout is None:
        return None
    wait = check_timeout(timeout)  # inf reads as None: no limit
    if wait is None:
        return None
    return 0.0 if wait == 0 else _monotonic() + wait
