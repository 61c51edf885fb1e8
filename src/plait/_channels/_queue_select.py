"""A plait queue's ``select`` cases: :meth:`Queue.get_op <plait.Queue.get_op>` and
:meth:`~plait.Queue.put_op` (the protocol and ``select`` itself are the kernel's:
``plait._core.select``).

A local queue's case sits in the queue's own wait queues (its waiter's ``data`` is the
select's arm): the waker offers it the kept place with ``arm.fire(RESERVED)``. A queue
may be shared with processes at any moment (``queue._shared``: its backend); each method
checks. Promotion hands a select armed on the local queue ``CLOSED`` (or ``MIGRATED``):
its ``finish()`` then tries the shared queue instead.

A shared queue is waited on the way every strand waits on it (``plait._ipc.doorbell``): the
select puts a waiter in its process's room for the queue, announced in the queue's wait
table; the operation that makes it ready rings this process's doorbell, whose watcher
"wakes" the waiter -- which fires the select's arm with ``READY`` instead of unparking a
strand. No thread per select, per queue or per direction::

    select A --arm--> waiter in the queue's room (announced) --ring--> fire(READY) --> A wakes
    select B --arm--> waiter in the queue's room (announced) --ring--> fire(READY) --> B wakes

``READY`` *claims* the select (no other case of it can fire any more); the selecting strand
then tries the operation itself without blocking (``get(block=False)`` /
``put(item, block=False)``). If that fails -- another process or strand was faster -- the
select starts again (re-polls and re-arms every case with the time left): nothing was taken
from any case meanwhile. A ring that finds the select already claimed, or a select that won
with ``READY`` and will not take (cancelled, or another case won), passes the ring on to the
next announced waiter in any process, so a process sleeping on the same queue is not left
asleep next to an item.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plait._channels._queue import Queue
from plait._channels._queue_waits import _SLOW, CLOSED, MIGRATED, RESERVED
from plait._core import CANCELLED, Waiter, current_strand, hooks
from plait._core.parking import stand_in
from plait._core.select import READY, SelectRetry, register_case_type
from plait._errors import ClosedError, Empty, Full

if TYPE_CHECKING:
    from plait._core.select import Arm

__all__ = ["GetCase", "PutCase"]


# -- shared queues: the operation itself, done by the selecting strand ------------------


def shared_get(backend: Any) -> Any:
    """Take one item without blocking; :class:`SelectRetry` if there is none now."""
    try:
        return backend.get(False)
    except Empty:
        raise SelectRetry from None


def shared_put(backend: Any, item: Any) -> None:
    """Put ``item`` without blocking; :class:`SelectRetry` if there is no room now."""
    try:
        backend.put(item, False)
    except Full:
        raise SelectRetry from None


def shared_undo(backend: Any, put: bool) -> None:
    """A select that won with ``READY`` will not take: pass the ring on."""
    backend.room.pass_on(1 if put else 0)


# -- shared queues: waiting in the queue's room ------------------------------------------


class _FireOnRing:
    """Stands in for a parked thread's lock in a shared queue's room: the doorbell's
    watcher "releases" it, which fires the select's arm with ``READY``; a ring that finds
    the select already claimed goes on to the next waiter."""

    __slots__ = ("arm", "backend", "d", "waiter")

    def __init__(self, arm: Arm, backend: Any, d: int) -> None:
        self.arm = arm
        self.backend = backend
        self.d = d
        self.waiter: Any = None

    def release(self) -> None:
        if not self.arm.fire(READY):
            self.backend.room.pass_on(self.d)


def shared_arm(backend: Any, put: bool, arm: Arm) -> None:
    """Have ``arm`` fired with ``READY`` once the shared queue looks ready (or now)."""
    d = 1 if put else 0
    ready = backend._can_put if put else backend._can_get
    backend._acquire(None)
    try:
        now = ready()
        if not now:
            ring = _FireOnRing(arm, backend, d)
            ring.waiter = backend.room.enqueue(d, backend, False)
            stand_in(ring.waiter, ring)
            arm.note = ring
    finally:
        backend._release()
    if now:
        arm.fire(READY)


def _disarm_ring(ring: _FireOnRing) -> None:
    room = ring.backend.room
    with room.mutex:
        room.queues[ring.d].remove(ring.waiter, CANCELLED)
        pending = ring.waiter in room.announced[ring.d]
    if pending:  # no ring took its announcement (yet): take it back (uncancellably)
        ring.backend._acquire(None, cancellable=False)
        try:
            room.take_back(ring.waiter, ring.d)
        finally:
            ring.backend._release()


def shared_disarm(arm: Arm) -> None:
    ring = arm.note
    if isinstance(ring, _FireOnRing):
        arm.note = None
        _disarm_ring(ring)


# -- the cases -------------------------------------------------------------------------


class GetCase:
    """Take one item from a plait queue."""

    __slots__ = ("queue",)

    def __init__(self, queue: Queue[Any]) -> None:
        self.queue = queue

    def poll(self) -> tuple[bool, Any]:
        q = self.queue
        backend = q._shared
        if backend is not None:
            try:
                return True, _Taken(backend.get(False))
            except Empty:
                return False, None
            except ClosedError:
                return True, CLOSED
        with q.mutex:
            if len(q._sized) > q._ready:
                item = q._store_get()
                w = q._offer_slot() if q._putters._count else None
            elif q._closed:
                return True, CLOSED
            else:
                return False, None
        if w is not None:
            w.wake()
        if hooks.active:
            hooks.received(current_strand(), q, item)
        return True, _Taken(item)

    def arm(self, arm: Arm) -> None:
        q = self.queue
        with q.mutex:
            backend = q._shared
            if backend is None:
                if len(q._sized) > q._ready:
                    q._ready += 1  # keep the item for this select, if it wins
                    if not arm.fire(RESERVED):
                        q._ready -= 1
                elif q._closed:
                    arm.fire(CLOSED)
                else:
                    arm.note = q._getters.enqueue_current(on=q, data=arm)
                return
        if backend._can_get():
            arm.fire(READY)
        else:
            shared_arm(backend, False, arm)

    def disarm(self, arm: Arm) -> None:
        w = arm.note
        if isinstance(w, Waiter):
            q = self.queue
            with q.mutex:
                q._getters.remove(w, CANCELLED)
        elif w is not None:
            shared_disarm(arm)

    def finish(self, value: Any) -> Any:
        q = self.queue
        if value is READY or value is CLOSED or value is MIGRATED or value is RESERVED:
            backend = q._shared
            if backend is not None:  # shared (maybe while this select waited)
                return shared_get(backend)
            if value is RESERVED:
                item = q._take_kept()
                return q.get() if item is _SLOW else item  # (_SLOW: cleared meanwhile)
            raise ClosedError(f"get() on a closed, drained queue {q!r}")
        return value.item

    def undo(self, value: Any) -> None:
        q = self.queue
        if value is READY:
            if q._shared is not None:
                shared_undo(q._shared, False)
        else:
            q._undo_get(value)


class _Taken:
    """An item ``poll()`` took already (distinct from the protocol's markers)."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


class PutCase:
    """Put one item into a plait queue."""

    __slots__ = ("item", "queue")

    def __init__(self, queue: Queue[Any], item: Any) -> None:
        self.queue = queue
        self.item = item

    def poll(self) -> tuple[bool, Any]:
        q = self.queue
        backend = q._shared
        if backend is not None:
            try:
                backend.put(self.item, False)  # pickles here: a bad item raises at the call
                return True, None
            except Full:
                return False, None
            except ClosedError:
                return True, CLOSED
        with q.mutex:
            if q._closed:
                return True, CLOSED
            if len(q._sized) + q._reserved < q._limit:
                w = q._store(self.item)
            else:
                return False, None
        if w is not None:
            w.wake()
        if hooks.active:
            hooks.sent(current_strand(), q, self.item)
        return True, None

    def arm(self, arm: Arm) -> None:
        q = self.queue
        with q.mutex:
            backend = q._shared
            if backend is None:
                if q._closed:
                    arm.fire(CLOSED)
                elif len(q._sized) + q._reserved < q._limit:
                    q._reserved += 1
                    if not arm.fire(RESERVED):
                        q._reserved -= 1
                else:
                    arm.note = q._putters.enqueue_current(on=q, data=arm)
                return
        if backend._can_put():
            arm.fire(READY)
        else:
            shared_arm(backend, True, arm)

    def disarm(self, arm: Arm) -> None:
        w = arm.note
        if isinstance(w, Waiter):
            q = self.queue
            with q.mutex:
                q._putters.remove(w, CANCELLED)
        elif w is not None:
            shared_disarm(arm)

    def finish(self, value: Any) -> Any:
        if value is None:  # put by poll()
            return None
        q = self.queue
        backend = q._shared
        if backend is not None:  # shared (maybe while this select waited)
            shared_put(backend, self.item)
        elif value is READY:  # (cannot happen: READY comes only from a shared queue)
            raise SelectRetry
        else:
            q._after_reserved(value, self.item)
        return None

    def undo(self, value: Any) -> None:
        q = self.queue
        if value is READY:
            if q._shared is not None:
                shared_undo(q._shared, True)
        else:
            q._undo_put(value)


for _cls in (GetCase, PutCase):
    register_case_type(_cls)
del _cls
