"""Parking: the one way every plait wait blocks.

Every blocking wait in plait -- on a lock, an event, a queue, a result -- is *park the current
strand on a wait queue until it is unparked or times out*. Primitives are written once over
this and so work from every strand kind.

The protocol (the primitive's own ``mutex`` guards its state and its :class:`WaitQueue`)::

    with mutex:                               # waiting side
        if <can proceed>: ...; return
        waiter = queue.enqueue_current(on=self)
    ok = park(waiter, timeout)                # or: await async_park(waiter, timeout, undo)

    with mutex:                               # waking side
        waiter = queue.pop(value)             # marks it WOKEN and hands over ``value``
    if waiter is not None:
        waiter.wake()                         # thread-safe, from any strand kind

A waiter leaves the queue exactly once, under the mutex: popped by a waker (``WOKEN``), or
removed by its own timeout or cancellation. Whoever removes it decides the outcome, so a wake
that races a timeout never loses what it hands over: if the waker won, the waiting side
returns ``True`` and owns the value even though its timer also fired. A coroutine that is
cancelled *after* it was handed something gives it back through ``undo(value)`` (a lock
passes itself to the next waiter, a queue puts the item back in front) and re-raises.

Each strand kind has one parker: a ``_thread`` lock for a thread, a future on the strand's
own loop for a coroutine (woken with ``call_soon_threadsafe`` from other threads).
"""

from __future__ import annotations

import asyncio
import math
import numbers
import threading
import time
from _thread import allocate_lock
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from plait._core import green as _green
from plait._core.instruments import hooks
from plait._core.strands import Strand, _by_task, current_strand, known_strand

if TYPE_CHECKING:
    from plait._core.cancel import CancelScope

__all__ = [
    "CANCELLED",
    "QUEUED",
    "TIMED_OUT",
    "WOKEN",
    "Mutex",
    "WaitQueue",
    "Waiter",
    "async_park",
    "check_deadline",
    "check_timeout",
    "note_parked",
    "note_unparked",
    "park",
    "park_any",
    "park_checks",
    "stand_in",
    "waiter_for",
]

QUEUED = 0
WOKEN = 1
TIMED_OUT = 2
CANCELLED = 3

_get_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task
_get_ident = threading.get_ident
_monotonic = time.monotonic
_TIMEOUT_MAX = threading.TIMEOUT_MAX


class Mutex(Protocol):
    """What a wait queue needs of its guard: a context-manager lock."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...


class ParkChecks:
    """The check slot diagnostics fills in (the kernel never imports diagnostics).

    ``untimed(waiter)`` runs on the park slow path only, when a strand is about to park with
    no time limit: it may raise (``DeadlockError``) after taking ``waiter`` out of its queue,
    or return to let the park go ahead. ``None``: no check, one attribute read per park.

    ``green_free``: the types on which ``untimed`` has nothing to look at when the waiter is
    a green strand's (filled in by the check itself): a green strand's untimed wait on one
    of them is not handed to it, so a green ping-pong pays no Python call per wait.
    """

    __slots__ = ("green_free", "untimed")

    def __init__(self) -> None:
        self.untimed: Callable[[Waiter], None] | None = None
        self.green_free: set[type] = set()


park_checks = ParkChecks()


class Waiter:
    """One parked strand in one wait queue.

    ``value`` is what the waker handed over; ``data`` is the primitive's own note (for
    example how many permits this waiter asks for).
    """

    __slots__ = (
        "data",
        "fut",
        "handle",
        "ident",
        "interruptible",
        "lock",
        "loop",
        "on",
        "queue",
        "started",
        "state",
        "strand",
        "undo",
        "value",
    )

    def __init__(self, queue: WaitQueue, strand: Strand, on: object, data: Any) -> None:
        self.queue = queue
        self.strand = strand
        self.on = on
        self.data = data
        self.state = QUEUED
        self.value: Any = None
        self.lock: Any = None
        self.fut: asyncio.Future[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.interruptible = False
        self.ident = 0  # the thread of ``loop`` (an async waiter is made on it)
        self.undo: Callable[[Any], None] | None = None
        self.handle: asyncio.TimerHandle | None = None  # an async park's timeout timer
        self.started = False  # an async park has yielded its future

    def wake(self) -> None:
        """Deliver the wake-up decided under the mutex; safe from any thread or loop."""
        if hooks.active:  # who woke whom (set an event, notified a condition, a release)
            waker = known_strand()
            if waker is not None:
                hooks.woke(waker, self.strand, self.on)
        fut = self.fut
        if fut is None:
            self.lock.release()
            return
        try:
            if _get_ident() == self.ident:  # on the loop's own thread: no hand-off needed
                if not fut.done():
                    fut.set_result(None)
            else:
                loop = self.loop
                assert loop is not None
                loop.call_soon_threadsafe(_resolve, fut)
        except RuntimeError:
            # The loop is closed: its coroutine will never run again. Give back what it
            # was handed (a lock, a permit, an item) rather than lose it for good.
            if self.undo is not None and self.state == WOKEN:
                self.state = CANCELLED  # given back once, here, never again
                self.undo(self.value)

    # -- awaitable protocol (see async_park) ---------------------------------------------

    def __await__(self) -> Generator[Any, Any, bool]:
        return self  # type: ignore[return-value] # an iterator with send/throw, like a Future

    def __iter__(self) -> Waiter:
        return self

    def __next__(self) -> Any:
        return _park_send(self, None)

    def send(self, value: Any) -> Any:
        return _park_send(self, value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | None = None,
        tb: Any = None,
    ) -> Any:
        return _park_throw(self, typ, val, tb)

    def close(self) -> None:
        _park_close(self)

    def __repr__(self) -> str:
        state = ("queued", "woken", "timed out", "cancelled")[self.state]
        return f"<Waiter {self.strand!r} on {self.on!r} {state}>"


def _resolve(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


class WaitQueue:
    """A FIFO of waiters. Every method must be called with ``mutex`` held.

    Removal is O(1): a removed waiter stays in the deque, marked, and is skipped later.
    """

    __slots__ = ("_count", "_dq", "mutex")

    def __init__(self, mutex: Mutex) -> None:
        self.mutex = mutex
        self._dq: deque[Waiter] = deque()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[Waiter]:
        return (w for w in self._dq if w.state == QUEUED)

    def enqueue_current(self, on: object, data: Any = None) -> Waiter:
        """Queue a waiter for a *blocking* wait of the calling strand (see :func:`park`).

        A sync call from inside a coroutine blocks its loop's thread, exactly as the
        stdlib's would; the waiter still belongs to the coroutine's strand.
        """
        getcurrent = _green._getcurrent  # (set once a green strand was started)
        g: Any = getcurrent() if getcurrent is not None else None
        if type(g) is _green._GreenT:  # a green strand parks by switching to its loop
            if _green.enqueue is not None:
                return _green.enqueue(self, g, on, data)  # type: ignore[no-any-return] # (in C)
            scheduler = g.scheduler
            waiter = Waiter(self, g.strand, on, data)
            waiter.loop = scheduler.loop
            waiter.ident = scheduler.ident
            waiter.fut = _green.new_resume(g)
            self._dq.append(waiter)
            self._count += 1
            return waiter
        waiter = Waiter(self, current_strand(), on, data)
        lock = allocate_lock()
        lock.acquire()
        waiter.lock = lock
        self._dq.append(waiter)
        self._count += 1
        return waiter

    def async_enqueue_current(self, on: object, data: Any = None) -> Waiter:
        """Queue a waiter for the calling coroutine (see :func:`async_park`)."""
        loop = _get_running_loop()
        if loop is None:
            raise RuntimeError("an async_* method must be awaited inside a running event loop")
        task = _current_task(loop)
        strand = _by_task.get(task) if task is not None else None
        waiter = Waiter(self, strand if strand is not None else current_strand(), on, data)
        waiter.loop = loop
        waiter.ident = _get_ident()
        waiter.fut = loop.create_future()
        self._dq.append(waiter)
        self._count += 1
        return waiter

    def remove(self, waiter: Waiter, state: int = TIMED_OUT) -> bool:
        """Take ``waiter`` out if it is still queued; ``False`` if someone woke it first."""
        if waiter.state != QUEUED:
            return False
        waiter.state = state
        self._count -= 1
        dq = self._dq
        if dq and dq[-1] is waiter:
            dq.pop()
        return True

    def peek(self) -> Waiter | None:
        """The first queued waiter, left in place."""
        dq = self._dq
        while dq:
            w = dq[0]
            if w.state == QUEUED:
                return w
            dq.popleft()
        return None

    def pop(self, value: Any = None) -> Waiter | None:
        """Take the first queued waiter, hand it ``value`` and mark it woken.

        The caller calls ``waiter.wake()`` afterwards (it may do so after the mutex).
        """
        dq = self._dq
        while dq:
            w = dq.popleft()
            if w.state == QUEUED:
                w.state = WOKEN
                w.value = value
                self._count -= 1
                return w
        return None

    def pop_all(self, value: Any = None) -> list[Waiter]:
        """Take every queued waiter, each handed ``value``."""
        woken = []
        dq = self._dq
        while dq:
            w = dq.popleft()
            if w.state == QUEUED:
                w.state = WOKEN
                w.value = value
                woken.append(w)
        self._count = 0
        return woken


# The Python method, kept: a green strand's start installs a C one over it that hands every
# wait but a green strand's back here (plait._core._greenpark.enqueue_current_for).
python_enqueue_current = WaitQueue.enqueue_current


def check_timeout(timeout: object, what: str = "timeout") -> float | None:
    """Validate a number of seconds to wait: the one rule every plait call follows.

    ``None`` or ``math.inf`` -- no limit (returned as ``None``, so that no OS call ever sees
    an infinite timeout); a real number >= 0 -- returned as a float. A bool, a string or
    anything else that is not a real number raises :class:`TypeError`; NaN or a negative
    number raises :class:`ValueError`. ``what`` names the argument in the message.
    """
    if timeout is None:
        return None
    kind = type(timeout)
    if (kind is not float and kind is not int) and (
        isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
    ):
        raise TypeError(
            f"{what} must be a number of seconds (or None for no limit), "
            f"not {type(timeout).__name__} {timeout!r}"
        )
    value = float(timeout)  # type: ignore[arg-type] # a Real, checked above
    if value >= 0:
        return None if value == math.inf else value
    if math.isnan(value):
        raise ValueError(f"{what} must be a number of seconds, not NaN")
    raise ValueError(
        f"{what} must be a non-negative number of seconds (or None for no limit), not {timeout!r}"
    )


def check_deadline(deadline: object, what: str = "deadline") -> float:
    """Validate a point on the :func:`time.monotonic` clock (``math.inf``: never)."""
    kind = type(deadline)
    if (kind is not float and kind is not int) and (
        isinstance(deadline, bool) or not isinstance(deadline, numbers.Real)
    ):
        raise TypeError(
            f"{what} must be a time.monotonic() value in seconds, "
            f"not {type(deadline).__name__} {deadline!r}"
        )
    value = float(deadline)  # type: ignore[arg-type] # a Real, checked above
    if math.isnan(value):
        raise ValueError(f"{what} must be a time.monotonic() value, not NaN")
    return value


def _cancelled_scope(strand: Strand, now: float) -> CancelScope | None:
    for scope in strand.cancel_scopes:
        if scope.cancel_called or scope.deadline <= now:
            return scope
    return None


def _nearest_deadline(strand: Strand) -> float:
    deadline = math.inf
    for scope in strand.cancel_scopes:
        deadline = min(deadline, scope.deadline)
    return deadline


def park(
    waiter: Waiter,
    timeout: float | None,
    undo: Callable[[Any], None] | None = None,
    *,
    interruptible: bool = False,
) -> bool:
    """Block the calling thread until ``waiter`` is woken (``True``) or times out (``False``).

    The caller enqueued ``waiter`` with :meth:`WaitQueue.enqueue_current` and released the
    mutex. A sync cancel scope around the call that is cancelled or whose deadline passes
    makes this raise :class:`plait.Cancelled` -- unless a wake won the race, in which case
    the value is kept and the cancellation is seen at the next plait call. An exception
    raised while parked (``KeyboardInterrupt`` from a signal handler) removes the waiter; if
    it had already been handed a value, ``undo(value)`` gives it back before it propagates.

    Only a park inside a cancel scope (or one that asks to be ``interruptible``) can be
    woken by a scope's ``cancel()``: a shielded wait (the strand's scopes set aside, as a
    lock being re-taken after a condition wait) is never cut short.
    """
    strand = waiter.strand
    if waiter.fut is not None:  # a green strand's waiter (see enqueue_current)
        fast = _green.park  # the untimed, unscoped green wait in C (None: not built)
        if (
            fast is not None
            and timeout is None
            and not interruptible
            and not strand.cancel_scopes
            and not hooks.active
        ):
            return fast(waiter, park_checks.untimed, undo)  # type: ignore[no-any-return]
        return _green_park(waiter, timeout, undo, interruptible)
    lock = waiter.lock
    scoped = bool(strand.cancel_scopes)
    waiter.interruptible = scoped or interruptible
    if scoped:
        now = _monotonic()
        end = _nearest_deadline(strand)
        if timeout is not None and now + timeout < end:
            end = now + timeout
        wait = end - now
        if _cancelled_scope(strand, now) is not None:
            wait = 0.0
    else:
        wait = -1.0 if timeout is None else timeout
    check = park_checks.untimed
    if check is not None and (wait < 0 or wait > _TIMEOUT_MAX):
        check(waiter)  # may raise instead of parking for good (a deadlock)
    strand.state = "parked"
    strand.parked_on = waiter.on
    strand.waiter = waiter
    if scoped and wait != 0 and _cancelled_scope(strand, _monotonic()) is not None:
        wait = 0.0  # a cancel() that came before the waiter was visible to it: seen here
    if hooks.active:
        hooks.parked(strand, waiter.on)
    try:
        if wait > _TIMEOUT_MAX:
            wait = -1.0
        try:
            got = lock.acquire(True, wait) if wait != 0 else lock.acquire(False)
        except BaseException:
            with waiter.queue.mutex:
                removed = waiter.queue.remove(waiter, CANCELLED)
            if not removed and waiter.state == WOKEN and undo is not None:
                undo(waiter.value)
            raise
        if not got:
            with waiter.queue.mutex:
                waiter.queue.remove(waiter)
            if waiter.state != TIMED_OUT:
                lock.acquire()  # a wake or an interrupt is in flight: take it
    finally:
        strand.state = "running"
        strand.parked_on = None
        strand.waiter = None
    state = waiter.state
    if hooks.active:
        hooks.unparked(strand, waiter.on, ("queued", "woken", "timeout", "cancelled")[state])
    if state == WOKEN:
        return True
    if scoped:
        scope = _cancelled_scope(strand, _monotonic())
        if scope is not None:
            scope.raise_cancelled()
    return False


def _green_park(
    waiter: Waiter, timeout: float | None, undo: Callable[[Any], None] | None, interruptible: bool
) -> bool:
    """:func:`park` for a green strand: the same semantics (sync cancel scopes included),
    but the strand waits by switching to its loop (``plait._core.green``), not by blocking
    the loop's thread. (The untimed, unscoped case runs in C where it is built:
    ``_green.park``, which ends through :func:`_green_abandon` / :func:`_wait_done`.)"""
    strand = waiter.strand
    resume: Any = waiter.fut
    check = park_checks.untimed
    scoped = bool(strand.cancel_scopes)
    waiter.interruptible = scoped or interruptible
    wait = timeout
    if scoped:
        now = _monotonic()
        end = _nearest_deadline(strand)
        if timeout is not None:
            end = min(end, now + timeout)
        wait = None if end == math.inf else max(0.0, end - now)
        if _cancelled_scope(strand, now) is not None:
            wait = 0.0
    if check is not None and wait is None:
        check(waiter)  # may raise instead of parking for good (a deadlock)
    handle = None
    if wait is not None:
        loop = waiter.loop
        assert loop is not None
        handle = loop.call_later(wait, resume.set_result, None)
    strand.state = "parked"
    strand.parked_on = waiter.on
    strand.waiter = waiter
    if hooks.active:
        hooks.parked(strand, waiter.on)
    g = resume.greenlet
    try:
        g.waiting = resume
        g.parent.switch()  # to the loop's hub, until resumed (plait._core.green)
    except BaseException:
        _green_abandon(waiter, undo)
        raise
    finally:
        g.waiting = None
        if handle is not None:
            handle.cancel()
        strand.state = "running"
        strand.parked_on = None
        strand.waiter = None
        _wait_done(waiter)
    if waiter.state == WOKEN:
        return True
    if scoped:
        scope = _cancelled_scope(strand, _monotonic())
        if scope is not None:
            scope.raise_cancelled()
    return False


def _green_abandon(waiter: Waiter, undo: Callable[[Any], None] | None) -> None:
    """A green wait cut short by an exception thrown in (its task was cancelled): leave
    the queue; give back what it was handed already."""
    with waiter.queue.mutex:
        removed = waiter.queue.remove(waiter, CANCELLED)
    if not removed and waiter.state == WOKEN and undo is not None:
        waiter.state = CANCELLED  # given back once, here
        undo(waiter.value)


def _wait_done(waiter: Waiter) -> bool:
    """The end of a wait (green or parked), its strand running again: out of the queue if its timer
    fired first, told to the instruments; whether it was woken."""
    if waiter.state == QUEUED:  # the timer fired first
        with waiter.queue.mutex:
            waiter.queue.remove(waiter)
    if hooks.active:
        hooks.unparked(
            waiter.strand, waiter.on, ("queued", "woken", "timeout", "cancelled")[waiter.state]
        )
    return waiter.state == WOKEN


def stand_in(waiter: Waiter, releaser: Any) -> Waiter:
    """Make ``waiter`` (just enqueued) stand for something other than a parked strand: its
    wake calls ``releaser.release()`` (a select's arm fires) -- also when the enqueuing
    strand is a green one, whose own waiters are resumed otherwise."""
    waiter.lock = releaser
    waiter.fut = None
    return waiter


def note_parked(strand: Strand, on: object, waiter: Waiter | None) -> None:
    """Mark ``strand`` parked on ``on`` and tell the instruments: for a wait that parks by
    other means than :func:`park`/:func:`async_park` (a select waits on several objects at
    once). The kernel stays the only writer of a strand's state; pair with
    :func:`note_unparked`."""
    strand.state = "parked"
    strand.parked_on = on
    strand.waiter = waiter
    if hooks.active:
        hooks.parked(strand, on)


def note_unparked(strand: Strand, on: object, outcome: str) -> None:
    """The end of a wait begun with :func:`note_parked`; ``outcome`` is ``"woken"``,
    ``"timeout"`` or ``"cancelled"``."""
    strand.state = "running"
    strand.parked_on = None
    strand.waiter = None
    if hooks.active:
        hooks.unparked(strand, on, outcome)


def waiter_for(strand: Strand, on: object, loop: asyncio.AbstractEventLoop | None) -> Waiter:
    """A waiter that stands for ``strand``'s wait on ``on`` outside any wait queue (what
    ``strand.waiter`` shows to diagnostics while it waits by :func:`note_parked`)."""
    waiter = Waiter(_NO_QUEUE, strand, on, None)
    if loop is not None:
        waiter.loop = loop
        waiter.ident = _get_ident()
    return waiter


def interrupt(strand: Strand) -> None:
    """Wake ``strand`` out of a sync park so that it sees its cancellation (thread-safe)."""
    waiter = strand.waiter
    if waiter is None or not waiter.interruptible:
        return  # (only sync parks are interruptible: a thread's, or a green strand's)
    with waiter.queue.mutex:
        removed = waiter.queue.remove(waiter, CANCELLED)
    if removed:
        waiter.wake()


def _park_send(waiter: Waiter, _value: Any) -> Any:
    """First call: mark the strand parked and yield the future; then: finish."""
    if not waiter.started:
        check = park_checks.untimed
        if check is not None and waiter.handle is None:
            check(waiter)  # may raise instead of parking for good (a deadlock)
        waiter.started = True
        fut = waiter.fut
        assert fut is not None
        strand = waiter.strand
        strand.state = "parked"
        strand.parked_on = waiter.on
        strand.waiter = waiter
        if hooks.active:
            hooks.parked(strand, waiter.on)
        if not fut.done():
            fut._asyncio_future_blocking = True
            return fut
    raise StopIteration(_park_finish(waiter))


def _park_unpark(waiter: Waiter) -> None:
    handle = waiter.handle
    if handle is not None:
        handle.cancel()
        waiter.handle = None
    strand = waiter.strand
    strand.state = "running"
    strand.parked_on = None
    strand.waiter = None


def _park_finish(waiter: Waiter) -> bool:
    _park_unpark(waiter)
    return _wait_done(waiter)


def _park_abandon(waiter: Waiter) -> None:
    _park_unpark(waiter)
    with waiter.queue.mutex:
        removed = waiter.queue.remove(waiter, CANCELLED)
    if not removed and waiter.state == WOKEN and waiter.undo is not None:
        waiter.state = CANCELLED  # given back once, here, never again
        waiter.undo(waiter.value)
    if hooks.active:
        hooks.unparked(waiter.strand, waiter.on, "cancelled")


def _park_throw(
    waiter: Waiter,
    typ: type[BaseException] | BaseException,
    val: BaseException | None = None,
    tb: Any = None,
) -> Any:
    _park_abandon(waiter)
    if isinstance(typ, BaseException):
        raise typ
    if val is None:
        val = typ()
    raise val.with_traceback(tb) if tb is not None else val


def _park_close(waiter: Waiter) -> None:
    if waiter.started and waiter.strand.waiter is waiter:
        _park_abandon(waiter)


def async_park(
    waiter: Waiter,
    timeout: float | None,
    undo: Callable[[Any], None] | None = None,
) -> Awaitable[bool]:
    """Suspend the awaiting coroutine until ``waiter`` is woken (``True``) or times out.

    On cancellation the waiter is removed; if it had already been handed a value,
    ``undo(value)`` gives it back before the cancellation propagates.

    The awaitable is the waiter itself: a parked coroutine strand is one of the things plait
    must keep cheap (10,000 parked strands are normal), so there is no coroutine frame and
    no extra object. It speaks ``asyncio.Future.__await__``'s protocol: it yields the
    waiter's future once, then returns whether the waiter was woken.
    """
    waiter.undo = undo
    if timeout is not None:
        loop = waiter.loop
        assert loop is not None
        assert waiter.fut is not None
        waiter.handle = loop.call_later(timeout, _resolve, waiter.fut)
    return waiter


def new_mutex() -> Any:
    """A fresh mutex for a primitive's state (a plain, fast, non-reentrant lock)."""
    return allocate_lock()


_NO_QUEUE = WaitQueue(new_mutex())  # the queue of waiters that are in none (see waiter_for)


# ``park`` for any waiter, with a green strand's plain untimed wait taken in C with no
# Python frame (the queue's C blocking get parks through it); every other wait goes on to
# ``park``. Without the accelerator, ``park`` itself.
park_any: Callable[..., bool] = park
if _green.GREENPARK is not None:
    _green.GREENPARK.configure_python_park(park, park_checks)
    park_any = _green.GREENPARK.park_any
