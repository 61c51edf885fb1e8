"""The seam between the queue and its C accelerator (``plait/_speedups.c``).

The accelerator gives :class:`~plait._channels._queue.Queue` its fast paths: ``Queue``
subclasses its ``QueueCore`` type, whose ``put``/``get``/``async_put``/``async_get``/
``__anext__`` answer the common cases in C and call the queue's Python methods named in
:data:`ENTRY_POINTS` for everything else. :func:`configure_speedups` hands it the whole
seam once, at import: the kernel's types, the queue's markers and those entry points. A
seam of another version, or an entry point that is gone, fails the import loudly, so the
accelerator is never silently off (``tests/channels/test_speedups.py`` asserts it is on).

Without it (not built, or ``PLAIT_NO_SPEEDUPS=1``) the same methods run in pure Python,
only slower: ``Queue`` then subclasses :class:`PyCore`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from plait._channels._queue_waits import (
    RESERVED,
    _by_task,
    _current_tasks,
    _get_running_loop,
    _self_strand_types,
    _wake,
)
from plait._core import CANCELLED, WOKEN, Waiter, WaitQueue
from plait._core.instruments import hooks

__all__ = ["ENTRY_POINTS", "SEAM", "SPEEDUPS", "Core", "PyCore", "configure_speedups"]

# The C accelerator (plait/_speedups.c) gives the queue its fast paths; without it (not
# built, or PLAIT_NO_SPEEDUPS=1) the same methods run in pure Python, only slower.
_speedups: Any = None
if not os.environ.get("PLAIT_NO_SPEEDUPS"):
    try:
        import plait._speedups as _c
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:
        _speedups = _c
if _speedups is not None:
    from collections.abc import Coroutine as _Coroutine

    _Coroutine.register(_speedups.QueueOp)  # asyncio takes it wherever a coroutine goes

SPEEDUPS = _speedups is not None  # whether the C fast paths are in use


class PyCore:
    """The base of :class:`Queue` when the C accelerator is not in use: no fast paths."""

    __slots__ = ()


if TYPE_CHECKING:
    Core = PyCore
else:
    Core = _speedups.QueueCore if _speedups is not None else PyCore


def configure_speedups(Queue: type) -> None:
    """Hand the C accelerator its whole seam with Python (see the top of _speedups.c).

    Called at import, unguarded: a renamed slot, method or strand field raises there, so the
    accelerator is never silently off nor calling into something that is gone.
    """
    from plait._core.parking import QUEUED, park_any
    from plait._core.strands import Strand

    if getattr(_speedups, "SEAM", None) != SEAM:
        raise ImportError(
            f"plait._speedups ({_speedups.__file__}) was built from another version of plait: "
            "rebuild it (pip install -e .), or set PLAIT_NO_SPEEDUPS=1"
        )
    missing = [name for name in ENTRY_POINTS if name not in Queue.__dict__]
    if missing:
        raise ImportError(
            f"plait._speedups falls back on Queue.{', Queue.'.join(missing)}, which is gone: "
            "update ENTRY_POINTS and _speedups.c together"
        )
    _speedups.configure(
        WaitQueue=WaitQueue,
        Waiter=Waiter,
        Strand=Strand,
        hooks=hooks,
        wake=_wake,
        current_tasks=_current_tasks,  # (None in an asyncio without it: no C coroutine park)
        by_task=_by_task,
        self_strand_types=_self_strand_types,
        get_running_loop=_get_running_loop,
        RESERVED=RESERVED,
        QUEUED=QUEUED,
        WOKEN=WOKEN,
        CANCELLED=CANCELLED,
        entry={name: Queue.__dict__[name] for name in ENTRY_POINTS},
    )
    # QueueCore's C methods again as Queue's own: CPython's quick call of a C method wants
    # the instance's exact type to be the method's class, which a Queue never is for
    # QueueCore's (every put and get would pay a subtype check through the generic call).
    for name, method in _speedups.methods_for(Queue).items():
        if name not in Queue.__dict__:
            setattr(Queue, name, method)
    # A blocking get's plain wait (a thread's or a green strand's) in C: park, then _got.
    _speedups.configure_wait(park_any, Queue.__dict__["_got"])


SEAM = 2  # the version of the seam, as _speedups.c's SEAM_VERSION

# The Python slow paths the C fast paths fall back on (each called with the queue first).
ENTRY_POINTS = (
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
