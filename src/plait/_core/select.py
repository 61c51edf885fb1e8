"""``select``: wait on several operations at once, like Go's ``select`` -- the kernel's part.

This module is the select protocol and its engine, with no concrete case types: each
object implements its own case in its own layer (a queue's ``get_op()``/``put_op()`` in
``plait._channels``, an ``Event``'s case beside it) and a type that cannot name its case
without importing a layer above its own registers a maker with :func:`register_case`.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from plait._core import green as _green
from plait._core.parking import (
    WaitQueue,
    check_timeout,
    new_mutex,
    note_parked,
    note_unparked,
    waiter_for,
)
from plait._core.strands import Strand, current_strand

__all__ = [
    "READY",
    "RESTART",
    "Arm",
    "ArmSet",
    "FutureCase",
    "SelectCase",
    "SelectRetry",
    "Selected",
    "async_select",
    "case_of",
    "register_case",
    "register_case_type",
    "select",
]

_NO_DEFAULT: Any = object()
_TIMED_OUT: Any = object()  # the selecting strand ended the select: its time was up
_CANCELLED: Any = object()  # ... it was cancelled (or interrupted by an exception)
_monotonic = time.monotonic
_get_running_loop = asyncio._get_running_loop


class _Token:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


READY: Any = _Token("READY")  # a watcher saw a shared object ready: the select tries it
RESTART: Any = _Token("RESTART")  # the object changed under the select (it became shared)


class SelectRetry(Exception):
    """Raised by a case's ``finish``: the operation could not be done after all (another
    strand or process was faster); the select starts again with the time it has left."""


# -- how an object becomes a case ------------------------------------------------------------

_makers: dict[type, Callable[[Any], Any]] = {}
_case_types: set[type] = set()  # known case classes: taken as they are, with no Protocol check


def register_case(cls: type, make: Callable[[Any], Any]) -> None:
    """Make ``make(obj)`` the select case of every ``cls`` instance (subclasses included).

    For a type whose case lives in a layer above its own (an ``Event``'s case sits beside
    the queues, which know shared objects): select asks this table before it asks the
    object's ``__select_case__``.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_case() needs a class, not {cls!r}")
    if not callable(make):
        raise TypeError(f"register_case() needs a callable that makes the case, not {make!r}")
    _makers[cls] = make


def register_case_type(cls: type) -> None:
    """Declare ``cls`` a select case class (select then skips the slower Protocol check)."""
    if not isinstance(cls, type):
        raise TypeError(f"register_case_type() needs a class, not {cls!r}")
    _case_types.add(cls)


def case_of(obj: Any) -> Any | None:
    """The registered select case of ``obj``, or ``None`` when its type registered none."""
    if not _makers:
        return None
    for klass in type(obj).__mro__:
        make = _makers.get(klass)
        if make is not None:
            return make(obj)
    return None


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


# -- futures and level-triggered objects ---------------------------------------------


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


register_case_type(FutureCase)
register_case_type(_LevelCase)


def _as_case(obj: Any) -> SelectCase:
    if type(obj) in _case_types:  # (a Protocol isinstance check costs microseconds)
        return obj  # type: ignore[no-any-return]
    if isinstance(obj, SelectCase):
        return obj
    case: Any = case_of(obj)  # a case made beside select, for a lower layer's type
    if case is not None:
        return case  # type: ignore[no-any-return]
    make = getattr(obj, "__select_case__", None)
    if make is not None:
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
    except BaseException:  # (a case that fired before the failure gives back its value)
        _give_up(sel, arms)
        raise
    return arms


def _disarm_all(arms: list[Arm]) -> None:
    for arm in arms:
        arm.case.disarm(arm)


def _disarm_after_wait(sel: _Selector, arms: list[Arm]) -> None:
    """Withdraw every case once the wait is over; should a withdrawal fail, the case that
    won still gives back what it was handed (a kept item is never stranded)."""
    try:
        _disarm_all(arms)
    except BaseException:
        _give_up(sel, arms)
        raise


def _give_up(sel: _Selector, arms: list[Arm]) -> None:
    """The selecting strand leaves with an exception: withdraw every case, and give back
    what a case that won meanwhile was handed (even if a withdrawal fails)."""
    try:
        _disarm_all(arms)
    finally:
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
        if strand.kind == "green":  # it waits by switching to its loop, as a coroutine would
            due = _cancelled_scope(strand) if strand.cancel_scopes else None
            if due is not None:
                due.raise_cancelled()
            loop = _get_running_loop()
            assert loop is not None
            arm, value = _green.await_(_async_wait(prepared, loop, strand, deadline, timeout))
        else:
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
    if waiter is None:
        waiter = waiter_for(strand, sel, None)
    note_parked(strand, sel, waiter)
    try:
        if waiter.lock is sel and _cancelled_scope(strand) is not None:
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
        note_unparked(strand, sel, _outcome(sel))
    _disarm_after_wait(sel, arms)
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
    if strand.cancel_scopes:  # a green strand's sync scopes: their cancel() ends the wait
        wq = WaitQueue(new_mutex())
        waiter = waiter_for(strand, sel, loop)
        waiter.queue = wq
        wq._dq.append(waiter)
        wq._count = 1
        waiter.lock = sel  # (what the kernel's interrupt releases: see _Selector.release)
        waiter.interruptible = True
    else:
        waiter = waiter_for(strand, sel, loop)
        waiter.fut = fut
    note_parked(strand, sel, waiter)
    try:
        if sel.won is None:
            await fut
    except BaseException:  # cancelled: maybe after a case won, which gives back its value
        _give_up(sel, arms)
        raise
    finally:
        if handle is not None:
            handle.cancel()
        note_unparked(strand, sel, _outcome(sel))
    _disarm_after_wait(sel, arms)
    won = sel.end(_TIMED_OUT)
    if won is None or won[0] is None:
        scope = _cancelled_scope(strand) if strand.cancel_scopes else None
        if scope is not None:
            scope.raise_cancelled()
        raise TimeoutError(f"select() timed out after {timeout}s")
    arm, value = won
    assert arm is not None
    return arm, value
