"""``select`` over plait's queues and events (the engine is ``plait._core.select``).

A queue's :meth:`~plait.Queue.get_op` / :meth:`~plait.Queue.put_op` make the queue's own
cases (``_queue_select``, re-exported here); a plait ``Event`` joins a select through
:func:`~plait._core.select.register_case` (its case is made here because it follows the
event's promotion to a shared one, which is the channels' business). The protocol every
case follows, and ``select`` itself, are the kernel's: see ``plait._core.select``. This
module re-exports them for existing imports.
"""

from __future__ import annotations

from plait._channels._queue_select import GetCase, PutCase
from plait._channels._select_shared import EventCase, SharedEventCase
from plait._core.select import (
    Arm,
    ArmSet,
    FutureCase,
    SelectCase,
    Selected,
    async_select,
    register_case,
    register_case_type,
    select,
)
from plait._sync._event import Event

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


def _event_case(event: Event) -> SelectCase:
    """A plait ``Event``'s case (it follows the event's promotion to a shared one)."""
    return SharedEventCase(event) if event._shared is not None else EventCase(event)


# The event's case is made here and found through the kernel's table:
# the primitives' layer (_sync) never imports the channels' layer.
register_case(Event, _event_case)
for _cls in (EventCase, SharedEventCase):
    register_case_type(_cls)
del _cls
