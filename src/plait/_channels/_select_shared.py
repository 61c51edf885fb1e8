"""``select`` cases on plait ``Event``s, local or shared with other processes.

(A shared queue's select case is the queue's own: see ``_queue_select``.)

A shared event is waited on the way every strand waits on it (``plait._ipc.doorbell``): the
select puts a waiter in its process's room for the event (``_sync._xproc``), and the event's
``set()`` rings every waiting process; the doorbell's watcher "wakes" the waiter -- which
fires the select's arm with ``True`` (or, for a ring that did not come from a ``set()`` -- a
repair after a killed holder of the event's mutex --, ``RESTART``: the select starts again)
instead of unparking a strand. No thread, no polling.

An event can become shared while a select waits on it. A plait ``Event`` is waited on by
:class:`EventCase`, which sits in the event's own wait queue, so its promotion reaches the
select (``RESTART``): the select starts again on the shared event (:class:`SharedEventCase`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from plait._core.parking import stand_in
from plait._core.select import READY, RESTART, SelectRetry
from plait._ipc.promotion import MIGRATED

if TYPE_CHECKING:
    from plait._core.select import Arm

__all__ = [
    "READY",
    "RESTART",
    "EventCase",
    "SelectRetry",
    "SharedEventCase",
    "shared_disarm",
    "watcher_threads",
]


def watcher_threads() -> list[threading.Thread]:
    """Live select watcher threads of this process (none: every shared case is rung)."""
    return [t for t in threading.enumerate() if t.name.startswith("plait-select-")]


def shared_disarm(arm: Arm) -> None:
    """Withdraw ``arm``'s waiter from a shared event's room (if it was armed there)."""
    note = arm.note
    if isinstance(note, _FireOnSet):
        arm.note = None
        _disarm_event(note)


def _generation(event: Any) -> int:
    return int(event._shared.generation())


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
        self.arm.fire(True if self.event._shared.signalled(self.gen0) else RESTART)


def _arm_event(event: Any, gen0: int, arm: Arm) -> None:
    state = event._shared
    with state.guard:
        now = state.signalled(gen0)
        if not now:
            fire = _FireOnSet(arm, event, gen0)
            fire.waiter = state.room.enqueue(0, event, False)
            stand_in(fire.waiter, fire)
            arm.note = fire
    if now:
        arm.fire(True)


def _disarm_event(fire: _FireOnSet) -> None:
    from plait._core import CANCELLED

    state = fire.event._shared
    room = state.room
    with room.mutex:
        room.queues[0].remove(fire.waiter, CANCELLED)
        pending = fire.waiter in room.announced[0]
    if pending:  # no ring took its announcement (yet): take it back
        with state.guard:
            room.take_back(fire.waiter, 0)


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
                stand_in(arm.note, waker)
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
