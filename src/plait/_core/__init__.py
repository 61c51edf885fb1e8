"""The kernel: strands, parking, cancellation, instruments and the runtime.

Everything above the kernel uses only what this module exports.

* :func:`current_strand` / :class:`Strand` / :func:`all_strands` -- who is running.
* :class:`WaitQueue`, :func:`park`, :func:`async_park` -- the one way to block
  (read ``parking.py``'s docstring for the protocol every primitive follows).
* :class:`CancelScope`, :func:`move_on_after`, :func:`fail_after`, :func:`checkpoint`.
* :class:`Instrument`, :data:`hooks` -- what tracing and diagnostics observe.
* :data:`runtime`, :func:`run` -- the background loop and the entry point.
"""

from plait._core.awaitables import returns_awaitable, returns_awaitable_mark
from plait._core.cancel import (
    CancelScope,
    async_checkpoint,
    async_sleep,
    checkpoint,
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
    sleep,
)
from plait._core.green import await_
from plait._core.instruments import Instrument, add_instrument, hooks, remove_instrument
from plait._core.parking import (
    CANCELLED,
    QUEUED,
    TIMED_OUT,
    WOKEN,
    Mutex,
    Waiter,
    WaitQueue,
    async_park,
    check_deadline,
    check_timeout,
    interrupt,
    new_mutex,
    note_parked,
    note_unparked,
    park,
    waiter_for,
)
from plait._core.runtime import Runtime, run, runtime
from plait._core.strands import (
    Strand,
    StrandKind,
    all_strands,
    bind_thread,
    current_strand,
    current_thread_strand,
    iter_parked,
    note_self_strand_loop,
    register,
    register_self_strand_type,
    unbind_thread,
    unregister,
)

__all__ = [
    "CANCELLED",
    "QUEUED",
    "TIMED_OUT",
    "WOKEN",
    "CancelScope",
    "Instrument",
    "Mutex",
    "Runtime",
    "Strand",
    "StrandKind",
    "WaitQueue",
    "Waiter",
    "add_instrument",
    "all_strands",
    "async_checkpoint",
    "async_park",
    "async_sleep",
    "await_",
    "bind_thread",
    "check_deadline",
    "check_timeout",
    "checkpoint",
    "current_strand",
    "current_thread_strand",
    "fail_after",
    "fail_at",
    "hooks",
    "interrupt",
    "iter_parked",
    "move_on_after",
    "move_on_at",
    "new_mutex",
    "note_parked",
    "note_self_strand_loop",
    "note_unparked",
    "park",
    "register",
    "register_self_strand_type",
    "remove_instrument",
    "returns_awaitable",
    "returns_awaitable_mark",
    "run",
    "runtime",
    "sleep",
    "unbind_thread",
    "unregister",
    "waiter_for",
]
