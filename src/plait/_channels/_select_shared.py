"""``select`` cases on objects shared with other processes (queues, events).

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

A shared event is waited on the same way: the select puts a waiter in its process's room for
the event (``_sync._xproc``), and the event's ``set()`` rings every waiting process; the
watcher fires the select's arm with ``True`` (or, for a ring that did not come from a
``set()`` -- a repair after a killed holder of the event's mutex --, ``RESTART``: the select
starts again). No thread, no polling.

Objects can become shared while a select waits on them. A local queue's promotion hands
its select waiters ``CLOSED`` (or ``PROMOTED``); the queue cases then try the shared queue
(see ``_select``). A plait ``Event`` is waited on by :class:`EventCase`, which sits in the
event's own wait queue, so its promotion reaches the select (``RESTART``): the select
starts again on the shared event (:class:`SharedEventCase`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from plait._channels._queue import Empty, Full
from plait._core.select import READY, RESTART, SelectRetry

if TYPE_CHECKING:
    from plait._core.select import Arm

__all__ = [
    "READY",
    "RESTART",
    "EventCase",
    "SelectRetry",
    "SharedEventCase",
    "shared_arm",
    "shared_disarm",
    "shared_get",
    "shared_put",
    "shared_undo",
    "watcher_threads",
]



# READY (a watcher saw the shared object ready: the select tries it), RESTART (the object
# changed under the select) and SelectRetry are the select protocol's: see plait._core.select.


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


def _arm_queue(backend: Any, put: bool, arm: Arm) -> None:
    d = 1 if put else 0
    ready = backend._can_put if put else backend._can_get
    backend._acquire(None)
    try:
        now = ready()
        if not now:
            ring = _FireOnRing(arm, backend, d)
            ring.waiter = backend.room.enqueue(d, backend, False)
            ring.waiter.lock = ring
            arm.note = ring
    finally:
        backend._release()
    if now:
        arm.fire(READY)


def _disarm_queue(ring: _FireOnRing) -> None:
    from plait._core import CANCELLED

    room = ring.backend.room
    with room.mutex:
        removed = room.queues[ring.d].remove(ring.waiter, CANCELLED)
    if removed:  # never rung: take the announcement back
        ring.backend._acquire(None)
        try:
            room._withdraw(ring.d)
        finally:
            ring.backend._release()


def watcher_threads() -> list[threading.Thread]:
    """Live select watcher threads of this process (none: every shared case is rung)."""
    return [t for t in threading.enumerate() if t.name.startswith("plait-select-")]


def shared_arm(obj: Any, put: bool, arm: Arm) -> None:
    """Have ``arm`` fired (``READY``) once the shared queue ``obj`` (a queue's backend)
    looks ready in direction ``put``."""
    _arm_queue(obj, put, arm)


def shared_disarm(arm: Arm) -> None:
    note = arm.note
    if isinstance(note, _FireOnRing):
        arm.note = None
        _disarm_queue(note)
    elif isinstance(note, _FireOnSet):
        arm.note = None
        _disarm_event(note)


# -- shared events -------------------------------------------------------------------------


def _generation(event: Any) -> int:
    from plait._sync._xproc import GEN

    return int(event._shared.words[GEN])


class _FireOnSet:
    """Stands in for a parked thread's lock in a shared event's room: the ring of a
    ``set()`` "releases" it, which fires the select's arm."""

    __slots__ = ("arm", "event", "gen0", "waiter")

    def __init__(self, arm: Arm, event: Any, gen0: int) -> None:
        self.arm = arm
        self.event = event
        self.gen0 = gen0
        self.waiter: Any = None

    def release(self) -> None:
        self.arm.fire(True if self.event._signalled(self.gen0) else RESTART)


def _arm_event(event: Any, gen0: int, arm: Arm) -> None:
    state = event._shared
    with state.guard:
        now = event._signalled(gen0)
        if not now:
            fire = _FireOnSet(arm, event, gen0)
            fire.waiter = state.room.enqueue(0, event, False)
            fire.waiter.lock = fire
            arm.note = fire
    if now:
        arm.fire(True)


def _disarm_event(fire: _FireOnSet) -> None:
    from plait._core import CANCELLED

    state = fire.event._shared
    room = state.room
    with room.mutex:
        removed = room.queues[0].remove(fire.waiter, CANCELLED)
    if removed:  # never rung: take the announcement back
        with state.guard:
            room._withdraw(0)


class SharedEventCase:
    """Wait for an ``Event`` shared with other processes to be set (value ``True``).

    A set-then-clear made while the select waited counts, as for a waiter.
    """

    __slots__ = ("event", "gen0")

    def __init__(self, event: Any) -> None:
        self.event = event
        self.gen0 = _generation(event)

    def poll(self) -> tuple[bool, Any]:
        return (True, True) if self.event.is_set() else (False, None)

    def arm(self, arm: Arm) -> None:
        _arm_event(self.event, self.gen0, arm)

    def disarm(self, arm: Arm) -> None:
        shared_disarm(arm)

    def finish(self, value: Any) -> Any:
        if value is RESTART:
            raise SelectRetry
        return True

    def undo(self, value: Any) -> None:
        return None


class _FireOnWake:
    """Stands in for a parked thread's lock in an ``Event``'s wait queue: the event's
    ``set()`` (or its promotion) "releases" it, which fires the select's arm instead."""

    __slots__ = ("arm", "waiter")

    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.waiter: Any = None

    def release(self) -> None:
        from plait._sync._common import MIGRATED

        self.arm.fire(RESTART if self.waiter.value is MIGRATED else True)


class EventCase:
    """Wait for a plait ``Event`` to be set (value ``True``).

    The select waits in the event's own wait queue, like a thread would, so that the
    event's promotion (shared with a process while the select waits) reaches it too: the
    select then starts again on the shared event (:class:`SharedEventCase`).
    """

    __slots__ = ("event",)

    def __init__(self, event: Any) -> None:
        self.event = event

    def poll(self) -> tuple[bool, Any]:
        return (True, True) if self.event.is_set() else (False, None)

    def arm(self, arm: Arm) -> None:
        ev = self.event
        with ev._mutex:
            if ev._shared is not None:
                ready = None
            elif ev._flag:
                ready = True
            else:
                waker = _FireOnWake(arm)
                waker.waiter = arm.note = ev._queue.enqueue_current(ev)
                arm.note.lock = waker
                return
        arm.fire(True if ready else RESTART)

    def disarm(self, arm: Arm) -> None:
        from plait._core import CANCELLED

        waiter = arm.note
        if waiter is not None:
            ev = self.event
            with ev._mutex:
                ev._queue.remove(waiter, CANCELLED)

    def finish(self, value: Any) -> Any:
        if value is RESTART:
            raise SelectRetry
        return True

    def undo(self, value: Any) -> None:
        return None
