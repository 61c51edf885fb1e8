"""``select`` over plait's queues and events: their cases (the engine is ``plait._core.select``).

A queue's :meth:`~plait.Queue.get_op` / :meth:`~plait.Queue.put_op` make the cases below; a
plait ``Event`` joins a select through :func:`~plait._core.select.register_case` (its case
sits beside the queues' because it follows the event's promotion to a shared one, which is
the channels' business). The protocol every case follows, and ``select`` itself, are the
kernel's: see ``plait._core.select``. This module re-exports them for existing imports.
"""

from __future__ import annotations

from typing import Any

from plait._channels._queue import _SLOW, CLOSED, PROMOTED, RESERVED, Empty, Full, Queue
from plait._channels._select_shared import (
    EventCase,
    SharedEventCase,
    shared_arm,
    shared_disarm,
    shared_get,
    shared_put,
    shared_undo,
)
from plait._core import CANCELLED, Waiter, current_strand, hooks
from plait._core.select import (
    READY,
    Arm,
    ArmSet,
    FutureCase,
    SelectCase,
    Selected,
    SelectRetry,
    async_select,
    register_case,
    register_case_type,
    select,
)
from plait._errors import ClosedError
from plait._sync._event import Event
from plait._sync._shared import SharedEvent

__all__ = [
    "Arm",
    "ArmSet",
    "FutureCase",
    "GetCase",
    "PutCase",
    "SelectCase",
    "Selected",
    "async_select",
    "select",
]


# -- queue cases ---------------------------------------------------------------------------
#
# A queue shared with processes (``queue._shared``: its backend) is waited on through a
# watcher (see ``_select_shared``); each method checks, since a queue may be shared at any
# moment. Promotion hands a select armed on the local queue ``CLOSED`` (or ``PROMOTED``):
# its finish() then tries the shared queue instead.


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
        if value is READY or value is CLOSED or value is PROMOTED or value is RESERVED:
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



def _event_case(event: Event) -> SelectCase:
    """A plait ``Event``'s case (it follows the event's promotion to a shared one)."""
    return SharedEventCase(event) if event._shared is not None else EventCase(event)


# The event's case is made here, beside the queues, and found through the kernel's table:
# the primitives' layer (_sync) never imports the channels' layer.
register_case(Event, _event_case)
register_case(SharedEvent, SharedEventCase)
for _cls in (GetCase, PutCase, EventCase, SharedEventCase):
    register_case_type(_cls)
del _cls
