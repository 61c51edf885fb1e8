"""``select``: wait on several channel operations at once, like Go's ``select``.

::

    r = plait.select(q1.get_op(), q2.put_op(x), done_event, timeout=1.0)
    r.index, r.value          # which case fired (its position) and what it gave

The cases are tried in the order given; the first that can complete now does. Otherwise the
caller parks on all of them and exactly one fires -- the others are withdrawn and nothing is
taken from them. ``default=`` makes the call non-blocking (Go's ``default:`` case):
if nothing is ready it returns ``Selected(-1, default, None)`` at once. ``timeout=`` raises
:class:`TimeoutError` when nothing fired in time.

**Cancellation.** A coroutine's select is cancelled like any ``await``. A thread parked in
a select inside a cancel scope is woken at once when another strand calls the scope's
``cancel()`` (the kernel's ``interrupt`` reaches it through the strand's parked waiter,
whose "lock" is the select's :class:`_Selector`) and raises the scope's
:class:`plait.Cancelled`. Either way every case is withdrawn, and a case that had won
just before gives back what it was handed (``undo``). A case that won before the cancel
arrived wins: the select returns it, and the cancellation is seen at the next plait call.

**Shared with processes.** A queue or an ``Event`` shared with other processes is waited
on through a watcher thread (see ``_select_shared``): it fires ``READY``, the select then
tries the operation itself without blocking, and if another strand was faster it starts
again with the time left (a case's ``finish`` raises ``SelectRetry``). A case never takes
anything it does not return.

**The selectable protocol.** A case is any object with these five methods (``SelectCase``);
an object that is not a case but has ``__select_case__()`` is asked for one (this is how an
``Event``, a ``Task`` or any future-like object joins a select)::

    poll() -> (ready, value)   complete now if possible, without waiting
    arm(arm)                   register ``arm``; re-check readiness *under your own lock*
                               and call ``arm.fire(value)`` if ready now; else remember it
                               and call ``arm.fire(value)`` when the case becomes ready
    disarm(arm)                forget ``arm`` (it may have fired already: then do nothing)
    finish(value) -> result    runs in the selecting strand after the case won; may raise
                               ``SelectRetry`` (nothing done after all: the select restarts)
    undo(value)                the selecting strand was cancelled after the case won with
                               ``value``: give back whatever was taken

``arm.fire(value)`` returns ``True`` if this case won the select (the value now belongs to
the select) and ``False`` if another case won first (keep the value: nothing was taken).
For a case that consumes nothing (an event being set, a task finishing) the return value
can be ignored. ``fire`` is thread-safe and cheap; it may be called with the case's own
lock held.

For such level-triggered objects :class:`ArmSet` does the bookkeeping; an event-like
object joins a select with three lines (plait's own ``Event`` gets ``EventCase`` instead,
which waits in the event's wait queue so that it also follows the event's promotion)::

    self._arms = ArmSet()                                     # in __init__
    def __select_case__(self): return self._arms.case(lambda: (self.is_set(), True))
    # in set(), after the flag is set:   self._arms.fire_all(True)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from _thread import allocate_lock
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from plait._channels._queue import _SLOW, CLOSED, PROMOTED, RESERVED, Empty, Full, Queue
from plait._channels._select_shared import (
    READY,
    RESTART,
    EventCase,
    SelectRetry,
    SharedEventCase,
    shared_arm,
    shared_disarm,
    shared_get,
    shared_put,
    shared_undo,
)
from plait._core import (
    CANCELLED,
    Strand,
    Waiter,
    WaitQueue,
    check_timeout,
    current_strand,
    hooks,
    new_mutex,
)
from plait._errors import ClosedError

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

_NO_DEFAULT: Any = object()
_TIMED_OUT: Any = object()  # the selecting strand ended the select: its time was up
_CANCELLED: Any = object()  # ... it was cancelled (or interrupted by an exception)
_monotonic = time.monotonic
_get_running_loop = asyncio._get_running_loop


@runtime_checkable
class SelectCase(Protocol):
    """One operation a select can wait for (see the module docstring)."""

    def poll(self) -> tuple[bool, Any]: ...

    def arm(self, arm: Arm) -> None: ...

    def disarm(self, arm: Arm) -> None: ...

    def finish(self, value: Any) -> Any: ...

    def undo(self, value: Any) -> None: ...


@dataclass(frozen=True)
class Selected:
    """What a select did: ``index`` of the case that fired (-1: the default), its value."""

    index: int
    value: Any
    case: Any


class _Selector:
    """One wait of a select call: who won (only one case, or the selecting strand itself
    giving up) and the selecting strand's parker.

    ``won`` goes from ``None`` to ``(arm, value)`` -- or ``(None, _TIMED_OUT/_CANCELLED)``
    when the selecting strand ends the wait -- exactly once, under ``state``.
    """

    __slots__ = ("fut", "lock", "loop", "state", "won")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.state = allocate_lock()
        self.won: tuple[Arm | None, Any] | None = None
        self.loop = loop
        if loop is None:
            self.lock: Any = allocate_lock()
            self.lock.acquire()
            self.fut: asyncio.Future[None] | None = None
        else:
            self.lock = None
            self.fut = loop.create_future()

    def end(self, why: Any) -> tuple[Arm | None, Any] | None:
        """The selecting strand gives up (``why``): ``None`` if no case fired (and none can
        now), else what won first -- whose wake-up is on its way."""
        with self.state:
            won = self.won
            if won is None:
                self.won = (None, why)
        return won

    def release(self) -> None:
        """A cancel scope's ``cancel()`` interrupts the parked thread (the kernel calls this
        as the parked waiter's ``lock.release()``): end the wait unless a case won first."""
        with self.state:
            if self.won is not None:
                return
            self.won = (None, _CANCELLED)
        self.wake()

    def wake(self) -> bool:
        """Resume the selecting strand; ``False`` if it never will (its loop is closed)."""
        fut = self.fut
        if fut is None:
            self.lock.release()
            return True
        loop = self.loop
        assert loop is not None
        if _get_running_loop() is loop:
            if not fut.done():
                fut.set_result(None)
        else:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:
                return False
        return True


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Arm:
    """A case's registration in one select; ``fire(value)`` tries to win the select."""

    __slots__ = ("case", "index", "note", "selector")

    def __init__(self, selector: _Selector, case: SelectCase, index: int) -> None:
        self.selector = selector
        self.case = case
        self.index = index
        self.note: Any = None  # the case's own bookkeeping (e.g. its waiter)

    def fire(self, value: Any) -> bool:
        """Win the select with ``value`` (``True``), or learn another case won (``False``)."""
        sel = self.selector
        with sel.state:
            if sel.won is not None:
                return False
            sel.won = (self, value)
        if not sel.wake() and value is READY:
            # A coroutine on a closed loop: it will not take. (Only a watcher fires READY,
            # holding no lock, so giving back here cannot deadlock.)
            self.case.undo(value)
        return True


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


# -- futures and tasks ---------------------------------------------------------------------


class FutureCase:
    """Wait for a future or task to finish (anything with ``done()`` and a thread-safe
    ``add_done_callback``); the value is the future itself."""

    __slots__ = ("future",)

    def __init__(self, future: Any) -> None:
        self.future = future

    def poll(self) -> tuple[bool, Any]:
        return (True, self.future) if self.future.done() else (False, None)

    def arm(self, arm: Arm) -> None:
        fut = self.future

        def callback(_f: Any) -> None:
            arm.fire(fut)

        arm.note = callback
        if isinstance(fut, asyncio.Future):
            loop = fut.get_loop()
            if _get_running_loop() is loop:
                fut.add_done_callback(callback)
            else:
                loop.call_soon_threadsafe(fut.add_done_callback, callback)
        else:
            fut.add_done_callback(callback)

    def disarm(self, arm: Arm) -> None:
        fut = self.future
        if arm.note is None:
            return
        if isinstance(fut, asyncio.Future):
            loop = fut.get_loop()
            if _get_running_loop() is loop:
                fut.remove_done_callback(arm.note)
            else:
                try:
                    loop.call_soon_threadsafe(fut.remove_done_callback, arm.note)
                except RuntimeError:
                    pass
        # concurrent.futures cannot forget a callback; a late fire() just returns False.

    def finish(self, value: Any) -> Any:
        return value

    def undo(self, value: Any) -> None:
        return None


class ArmSet:
    """The selects waiting on one level-triggered object (an event, a task); thread-safe."""

    __slots__ = ("_arms", "_lock")

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._arms: list[Arm] = []

    def case(self, poll: Any) -> SelectCase:
        """A case that is ready when ``poll()`` returns ``(True, value)``."""
        return _LevelCase(self, poll)

    def fire_all(self, value: Any) -> None:
        """The object became ready: offer ``value`` to every select waiting on it."""
        with self._lock:
            arms, self._arms = self._arms, []
        for arm in arms:
            arm.fire(value)

    def restart_all(self) -> None:
        """The object changed under its selects (it became shared with processes): each
        starts again, and asks the object for a fresh case."""
        self.fire_all(RESTART)


class _LevelCase:
    __slots__ = ("_poll", "_set")

    def __init__(self, arm_set: ArmSet, poll: Any) -> None:
        self._set = arm_set
        self._poll = poll

    def poll(self) -> tuple[bool, Any]:
        return self._poll()  # type: ignore[no-any-return]

    def arm(self, arm: Arm) -> None:
        with self._set._lock:
            ready, value = self._poll()
            if not ready:
                self._set._arms.append(arm)
                return
        arm.fire(value)

    def disarm(self, arm: Arm) -> None:
        with self._set._lock:
            try:
                self._set._arms.remove(arm)
            except ValueError:
                pass

    def finish(self, value: Any) -> Any:
        if value is RESTART:
            raise SelectRetry
        return value

    def undo(self, value: Any) -> None:
        return None


_CASE_TYPES = frozenset({GetCase, PutCase, FutureCase, _LevelCase, EventCase, SharedEventCase})
_event_types: Any = None


def _event_case(obj: Any) -> SelectCase | None:
    """The case of a plait ``Event`` (made here: it follows the event's promotion)."""
    global _event_types
    if _event_types is None:
        from plait._sync._event import Event
        from plait._sync._shared import SharedEvent

        _event_types = (Event, SharedEvent)
    event, shared = _event_types
    if isinstance(obj, shared):
        return SharedEventCase(obj)
    if isinstance(obj, event):
        return EventCase(obj)
    return None


def _as_case(obj: Any) -> SelectCase:
    if type(obj) in _CASE_TYPES:  # (a Protocol isinstance check costs microseconds)
        return obj  # type: ignore[no-any-return]
    if isinstance(obj, SelectCase):
        return obj
    make = getattr(obj, "__select_case__", None)
    if make is not None:
        case = _event_case(obj)
        if case is not None:
            return case
        case = make()
        if not isinstance(case, SelectCase):
            raise TypeError(f"{obj!r}.__select_case__() returned {case!r}, not a select case")
        return case
    if isinstance(obj, asyncio.Future | concurrent.futures.Future) or (
        callable(getattr(obj, "done", None)) and callable(getattr(obj, "add_done_callback", None))
    ):  # a future, or anything future-like (a plait Task)
        return FutureCase(obj)
    raise TypeError(
        f"select() cannot wait on {obj!r}: pass q.get_op(), q.put_op(item), a future, or an "
        "object with __select_case__()"
    )


def _prepare(cases: tuple[Any, ...], timeout: float | None) -> tuple[list[SelectCase], float]:
    if not cases:
        raise ValueError("select() needs at least one case")
    prepared = [_as_case(c) for c in cases]
    timeout = check_timeout(timeout)
    return prepared, (math.inf if timeout is None else timeout)


def _poll(cases: list[SelectCase]) -> Selected | None:
    for i, case in enumerate(cases):
        ready, value = case.poll()
        if ready:
            try:
                return Selected(i, case.finish(value), case)
            except SelectRetry:
                continue
    return None


def _arm_all(cases: list[SelectCase], sel: _Selector) -> list[Arm]:
    arms: list[Arm] = []
    try:
        for i, case in enumerate(cases):
            arm = Arm(sel, case, i)
            arms.append(arm)
            case.arm(arm)
            if sel.won is not None:
                break
    except BaseException:
        _disarm_all(arms)
        raise
    return arms


def _disarm_all(arms: list[Arm]) -> None:
    for arm in arms:
        arm.case.disarm(arm)


def _give_up(sel: _Selector, arms: list[Arm]) -> None:
    """The selecting strand leaves with an exception: withdraw every case, and give back
    what a case that won meanwhile was handed."""
    _disarm_all(arms)
    won = sel.end(_CANCELLED)
    if won is not None and won[0] is not None:
        won[0].case.undo(won[1])


def _outcome(sel: _Selector) -> str:
    """How a select's wait ended, in the kernel's words (for instruments)."""
    won = sel.won
    if won is None or won[0] is not None:
        return "woken" if won is not None else "timeout"
    return "timeout" if won[1] is _TIMED_OUT else "cancelled"


def _cancelled_scope(strand: Strand) -> Any:
    now = _monotonic()
    for scope in strand.cancel_scopes:  # the outermost cancelled scope's cancellation
        if scope.cancel_called or scope.deadline <= now:
            return scope
    return None


def select(*cases: Any, timeout: float | None = None, default: Any = _NO_DEFAULT) -> Selected:
    """Wait until one of ``cases`` completes; return which one (see the module docstring).

    Raises :class:`TimeoutError` if none does within ``timeout`` seconds. With ``default=``
    it never waits: ``Selected(-1, default, None)`` when nothing is ready. Inside a cancel
    scope, the scope's ``cancel()`` (from any strand) or deadline wakes the thread at once
    and raises its :class:`plait.Cancelled`; every case is withdrawn, nothing is taken.
    """
    prepared, wait = _prepare(cases, timeout)
    done = _poll(prepared)
    if done is not None:
        return done
    if default is not _NO_DEFAULT:
        return Selected(-1, default, None)
    strand = current_strand()
    deadline = _monotonic() + wait
    for scope in strand.cancel_scopes:
        deadline = min(deadline, scope.deadline)
    while True:
        arm, value = _wait(prepared, strand, deadline, timeout)
        try:
            return Selected(arm.index, arm.case.finish(value), arm.case)
        except SelectRetry:  # another strand was faster: start again with the time left
            pass
        prepared = [_as_case(c) for c in cases]
        done = _poll(prepared)
        if done is not None:
            return done


def _wait(
    cases: list[SelectCase], strand: Strand, deadline: float, timeout: float | None
) -> tuple[Arm, Any]:
    """Park the calling thread until a case fires; raise on timeout or cancellation."""
    scope = _cancelled_scope(strand) if strand.cancel_scopes else None
    if scope is not None:  # nothing was ready and the scope is cancelled: do not arm
        scope.raise_cancelled()
    sel = _Selector(None)
    arms = _arm_all(cases, sel)
    waiter = None
    if strand.cancel_scopes:
        # The kernel's cancel() interrupts a thread through its parked waiter: this one's
        # "lock" is the selector, whose release() ends the wait (see _Selector.release).
        wq = WaitQueue(new_mutex())
        with wq.mutex:
            waiter = wq.enqueue_current(on=sel)
        waiter.lock = sel
        waiter.interruptible = True
    strand.state = "parked"
    strand.parked_on = sel
    strand.waiter = waiter
    if hooks.active:
        hooks.parked(strand, sel)
    try:
        if waiter is not None and _cancelled_scope(strand) is not None:
            sel.release()  # cancelled before it parked (the waiter was not there to see)
        if sel.won is None:
            left = deadline - _monotonic()
            if left == math.inf:
                sel.lock.acquire()
            elif (
                not sel.lock.acquire(True, max(0.0, min(left, 1e9)))
                and sel.end(_TIMED_OUT) is not None
            ):
                sel.lock.acquire()  # a case won the race with the timeout: take it
    except BaseException:  # (KeyboardInterrupt raised while parked)
        _give_up(sel, arms)
        raise
    finally:
        strand.state = "running"
        strand.parked_on = None
        strand.waiter = None
        if hooks.active:
            hooks.unparked(strand, sel, _outcome(sel))
    _disarm_all(arms)
    won = sel.won
    assert won is not None
    arm, value = won
    if arm is None:
        scope = _cancelled_scope(strand)
        if scope is not None:
            scope.raise_cancelled()
        raise TimeoutError(f"select() timed out after {timeout}s")
    return arm, value


async def async_select(
    *cases: Any, timeout: float | None = None, default: Any = _NO_DEFAULT
) -> Selected:
    """Coroutine form of :func:`select`."""
    prepared, wait = _prepare(cases, timeout)
    done = _poll(prepared)
    if done is not None:
        return done
    if default is not _NO_DEFAULT:
        return Selected(-1, default, None)
    loop = asyncio.get_running_loop()
    strand = current_strand()
    deadline = _monotonic() + wait
    while True:
        arm, value = await _async_wait(prepared, loop, strand, deadline, timeout)
        try:
            return Selected(arm.index, arm.case.finish(value), arm.case)
        except SelectRetry:
            pass
        prepared = [_as_case(c) for c in cases]
        done = _poll(prepared)
        if done is not None:
            return done


async def _async_wait(
    cases: list[SelectCase],
    loop: asyncio.AbstractEventLoop,
    strand: Strand,
    deadline: float,
    timeout: float | None,
) -> tuple[Arm, Any]:
    sel = _Selector(loop)
    fut = sel.fut
    assert fut is not None
    arms = _arm_all(cases, sel)
    left = deadline - _monotonic()
    handle = loop.call_later(max(0.0, left), _resolve, fut) if left != math.inf else None
    strand.state = "parked"
    strand.parked_on = sel
    if hooks.active:
        hooks.parked(strand, sel)
    try:
        if sel.won is None:
            await fut
    except BaseException:  # cancelled: maybe after a case won, which gives back its value
        _give_up(sel, arms)
        raise
    finally:
        if handle is not None:
            handle.cancel()
        strand.state = "running"
        strand.parked_on = None
        if hooks.active:
            hooks.unparked(strand, sel, _outcome(sel))
    _disarm_all(arms)
    won = sel.end(_TIMED_OUT)
    if won is None:
        raise TimeoutError(f"select() timed out after {timeout}s")
    arm, value = won
    assert arm is not None
    return arm, value
