"""``select`` cases on events shared with other processes.

(A shared queue's select case is the queue's own: see ``_queue_select``.)

A shared event has nothing to be rung by yet: a select waits for it through a *watcher*
thread per event in this process (whatever the number of selects), which polls its flag with
back-off, fires every select waiting when it is set, lingers 50 ms for the next select and
ends.

An event can become shared while a select waits on it. A plait ``Event`` is waited on by
:class:`EventCase`, which sits in the event's own wait queue, so its promotion reaches the
select (``RESTART``): the select starts again on the shared event (:class:`SharedEventCase`).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

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
    "watcher_threads",
]

_POLL_MIN = 0.00005  # a shared event is polled with this backoff (as its own wait does)
_POLL_MAX = 0.005
_LINGER = 0.05  # an idle watcher waits this long for the next select before it ends


# READY (a watcher saw the shared object ready: the select tries it), RESTART (the object
# changed under the select) and SelectRetry are the select protocol's: see plait._core.select.


# -- watchers ------------------------------------------------------------------------------


class _Watcher:
    """The selects of this process waiting on one shared event."""

    __slots__ = ("armed", "arms", "key", "obj", "put", "stop")

    def __init__(self, key: tuple[int, bool], obj: Any, put: bool) -> None:
        self.key = key
        self.obj = obj
        self.put = put
        self.arms: dict[Arm, Any] = {}  # arm -> its note (an event's generation at arm time)
        self.stop = threading.Event()  # set while no select waits: the thread winds down
        self.armed = threading.Event()  # set when a select arrives (ends the linger)


_watchers: dict[tuple[int, bool], _Watcher] = {}
_watchers_lock = threading.Lock()


def _after_fork() -> None:
    # A forked child has none of its parent's threads: forget their watchers.
    global _watchers_lock
    _watchers_lock = threading.Lock()
    _watchers.clear()


os.register_at_fork(after_in_child=_after_fork)


def watcher_threads() -> list[threading.Thread]:
    """The live watcher threads of this process (for tests and diagnostics)."""
    return [t for t in threading.enumerate() if t.name.startswith("plait-select-")]


def shared_arm(obj: Any, put: bool, arm: Arm, note: Any = None) -> None:
    """Have ``arm`` fired once the shared event ``obj`` looks set."""
    key = (id(obj), put)
    with _watchers_lock:
        w = _watchers.get(key)
        start = w is None
        if w is None:
            w = _watchers[key] = _Watcher(key, obj, put)
        w.arms[arm] = note
        w.stop.clear()
        w.armed.set()
        arm.note = w
    if start:
        name = f"plait-select-{obj._shared.prefix}"
        try:
            threading.Thread(target=_watch_event, args=(w,), name=name, daemon=True).start()
        except BaseException:  # no thread: the next select must be able to start one
            with _watchers_lock:
                if _watchers.get(key) is w:
                    del _watchers[key]
            raise


def shared_disarm(arm: Arm) -> None:
    w = arm.note
    if not isinstance(w, _Watcher):
        return
    with _watchers_lock:
        w.arms.pop(arm, None)
        idle = not w.arms
        if idle:
            w.stop.set()


def _take_arms(w: _Watcher, ready: Any = None) -> list[Arm]:
    """Remove (and return) the arms to fire: all of them, or those ``ready(note)`` picks."""
    with _watchers_lock:
        if ready is None:
            arms = list(w.arms)
            w.arms.clear()
        else:
            arms = [arm for arm, note in w.arms.items() if ready(note)]
            for arm in arms:
                del w.arms[arm]
        if not w.arms:
            w.stop.set()
    return arms


def _retire(w: _Watcher) -> bool:
    """The thread's exit check: ``True`` (and unregistered) if no select waits any more
    and none came within ``_LINGER`` seconds (a loop of selects keeps one thread)."""
    with _watchers_lock:
        if w.arms:
            return False
        w.armed.clear()
    if w.armed.wait(_LINGER):
        return False
    with _watchers_lock:
        if w.arms:
            return False
        if _watchers.get(w.key) is w:
            del _watchers[w.key]
        return True


# -- shared events -------------------------------------------------------------------------


def _is_event(obj: Any) -> bool:
    return hasattr(obj, "_signalled")


def _watch_event(w: _Watcher) -> None:
    event = w.obj
    pause = _POLL_MIN
    while not _retire(w):
        arms = _take_arms(w, event._signalled)
        for arm in arms:
            arm.fire(True)
        if arms:
            pause = _POLL_MIN
        elif not w.stop.wait(pause):
            pause = min(pause * 2, _POLL_MAX)


def _generation(event: Any) -> int:
    return int(event._shared.sems[2]._get_value())


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
        if self.event._signalled(self.gen0):
            arm.fire(True)
        else:
            shared_arm(self.event, False, arm, self.gen0)

    def disarm(self, arm: Arm) -> None:
        shared_disarm(arm)

    def finish(self, value: Any) -> Any:
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
