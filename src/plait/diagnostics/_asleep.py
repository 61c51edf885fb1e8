"""Go's rule, "all goroutines are asleep": when every thread of this process waits with no
time limit on an object of this process, nothing is left that could wake any of them.

This catches what the wait-for graph's edges cannot name: waits that *anyone* may end (an
``Event``, a ``Condition``'s notify, a ``Barrier`` still missing parties, a queue's get with
no producer left or put with no consumer left) and locks taken on the uncontended fast path
(no owner recorded). It is sound as long as the waits really are in-process: a wait on an
object shared with another process, on a process, on a pipe or a timer is never counted as
asleep, nor is a coroutine's or green strand's wait (its loop's thread goes on running).

What can still wake a thread the rule counts as asleep: a Python signal handler (it runs in
the main thread, inside its wait), so a program with one installed is never reported; and
threads with no Python state (a C library's own threads), which the rule cannot see.
Diagnostics' own threads (the dump server, the watchdog) never touch a program's objects
and are left out (:func:`note_service_thread`).
"""

from __future__ import annotations

import signal
import sys
import threading
from _thread import get_ident
from typing import Any

from plait._channels._queue import Queue
from plait._core.parking import QUEUED, Waiter
from plait._sync._barrier import Barrier
from plait._sync._condition import Condition
from plait._sync._event import Event

__all__ = ["ended_by_anyone", "everyone_waiting", "might_all_wait", "note_service_thread"]

_ENDED_BY_ANYONE = (Event, Condition, Barrier, Queue)
_service_threads: set[int] = set()
_active: Any = threading._active  # type: ignore[attr-defined]  # ident -> Thread
_starting: Any = getattr(threading, "_limbo", {})  # threads started, not yet running
_awake: dict[int, int] = {}  # per checking thread: the thread it found awake last time


def ended_by_anyone(cls: type) -> bool:
    """Whether a wait on a ``cls`` ends by any strand's act, with no owner to point to."""
    return issubclass(cls, _ENDED_BY_ANYONE)


def note_service_thread() -> None:
    """Leave the calling thread (one of diagnostics' own) out of the rule."""
    _service_threads.add(get_ident())


def might_all_wait(threads: dict[int, Waiter]) -> bool:
    """The cheap pre-check: every thread ``threading`` knows is in an untimed wait here.

    Looks first at the thread this one found awake last time (usually still awake: one
    lookup), then stops at the first thread that is not waiting.
    """
    if _starting:
        return False
    me = get_ident()  # (its own wait is recorded already: look at the others first)
    hint = _awake.get(me, 0)
    waiter = threads.get(hint)
    if (waiter is None or waiter.state != QUEUED) and hint in _active:
        return False
    try:
        for ident in _active:
            waiter = threads.get(ident)
            if (waiter is None or waiter.state != QUEUED) and ident not in _service_threads:
                if len(_awake) > 4096:  # (threads come and go: forget the old hints)
                    _awake.clear()
                _awake[me] = ident
                return False
    except RuntimeError:  # a thread started or ended meanwhile: someone is awake
        return False
    return True


def everyone_waiting(threads: dict[int, Waiter]) -> list[Waiter] | None:
    """Every thread's untimed in-process wait, if every thread of the process is in one
    (and no signal handler could wake the main thread); else ``None``."""
    if _starting:
        return None  # a thread is starting (it runs no Python yet: not in the frames)
    frames = sys._current_frames()
    waits = []
    for ident in frames:
        if ident in _service_threads:
            continue
        waiter = threads.get(ident)
        if waiter is None or waiter.state != QUEUED:
            return None
        waits.append(waiter)
    if not waits or _a_signal_handler_is_installed():
        return None
    return waits


def _a_signal_handler_is_installed() -> bool:
    """Whether a Python signal handler other than the default ones (and plait's own, which
    only cancel) could run in the main thread and end its wait."""
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        if not callable(handler) or handler is signal.default_int_handler:
            continue
        if getattr(handler, "__module__", "").startswith("plait."):
            continue
        return True
    return False
