"""Cancellation: scopes with deadlines, for threads and coroutines alike.

A :class:`CancelScope` is entered with ``with`` in plain code or ``async with`` in a
coroutine. Cancelling it -- by ``cancel()`` from any thread or by its deadline -- reaches:

* a coroutine at its next ``await`` (the scope cancels the task and, on exit, takes back
  exactly the cancellation it caused, as :func:`asyncio.timeout` does, so an outer
  cancellation is never swallowed);
* a thread at its next plait wait or :func:`checkpoint`; a thread parked in a plait wait is
  woken at once.

The *outermost* cancelled scope of a thread is the one whose :class:`plait.Cancelled`
propagates, so an inner scope never eats an outer scope's cancellation.
"""

from __future__ import annotations

import asyncio
import math
import time
import types
from collections.abc import Generator
from types import TracebackType
from typing import Any

from plait._core.parking import (
    WaitQueue,
    async_park,
    check_deadline,
    check_timeout,
    interrupt,
    new_mutex,
    park,
)
from plait._core.strands import FASTLOCK, Strand, current_strand
from plait._errors import Cancelled

__all__ = [
    "CancelScope",
    "async_checkpoint",
    "async_sleep",
    "checkpoint",
    "fail_after",
    "fail_at",
    "move_on_after",
    "move_on_at",
    "sleep",
]

_monotonic = time.monotonic


class CancelScope:
    """A region of code that can be cancelled, by hand or by a deadline.

    ``deadline`` is on the :func:`time.monotonic` clock. With ``raise_on_timeout`` (what
    :func:`fail_after` sets) a scope cancelled by its deadline raises :class:`TimeoutError`
    at exit; otherwise the cancellation is absorbed and ``cancelled_caught`` is set.
    """

    __slots__ = (
        "_cancelling",
        "_deadline",
        "_entered",
        "_handle",
        "_loop",
        "_raise_on_timeout",
        "_strand",
        "_task",
        "_task_cancel_sent",
        "cancel_called",
        "cancelled_caught",
    )

    def __init__(self, *, deadline: float = math.inf, raise_on_timeout: bool = False) -> None:
        self._deadline = check_deadline(deadline)
        self._raise_on_timeout = raise_on_timeout
        self.cancel_called = False
        self.cancelled_caught = False
        self._entered = False
        self._strand: Strand | None = None
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._cancelling = 0
        self._task_cancel_sent = False

    @property
    def deadline(self) -> float:
        """When the scope cancels itself, on the :func:`time.monotonic` clock."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = check_deadline(value)
        if self._task is not None and self._loop is not None:
            self._schedule()

    def cancel(self) -> None:
        """Cancel the scope; safe from any thread. Idempotent."""
        if self.cancel_called:
            return
        self.cancel_called = True
        if self._strand is not None and self._task is None:
            interrupt(self._strand)
        elif self._task is not None and self._loop is not None:
            if asyncio._get_running_loop() is self._loop:
                self._cancel_task()
            else:
                try:
                    self._loop.call_soon_threadsafe(self._cancel_task)
                except RuntimeError:
                    pass

    def raise_cancelled(self) -> None:
        """Raise the :class:`plait.Cancelled` that belongs to this scope."""
        exc = Cancelled(f"cancelled by {self!r}")
        exc.scope = self  # type: ignore[attr-defined]
        raise exc

    def __repr__(self) -> str:
        left = self._deadline - _monotonic()
        when = "no deadline" if left == math.inf else f"deadline in {left:.3f}s"
        state = ", cancelled" if self.cancel_called else ""
        return f"<CancelScope {when}{state}>"

    # -- sync side --------------------------------------------------------------------

    def __enter__(self) -> CancelScope:
        if self._entered:
            raise RuntimeError("a CancelScope can be entered only once")
        strand = current_strand()
        if strand.kind == "async":
            raise RuntimeError("inside a coroutine use `async with` for a cancel scope, not `with`")
        self._entered = True
        self._strand = strand
        if isinstance(strand.cancel_scopes, list):
            strand.cancel_scopes.append(self)
        else:
            strand.cancel_scopes = [self]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        strand = self._strand
        assert strand is not None
        scopes = strand.cancel_scopes
        if isinstance(scopes, list) and self in scopes:
            scopes.remove(self)
        if isinstance(exc, Cancelled) and getattr(exc, "scope", None) is self:
            self.cancelled_caught = True
            if self._raise_on_timeout and not self.cancel_called:
                raise TimeoutError(f"timed out ({self!r})") from None
            return True
        return False

    # -- async side -------------------------------------------------------------------

    def _cancel_task(self) -> None:
        task = self._task
        if task is not None and not task.done() and not self._task_cancel_sent:
            self._task_cancel_sent = True
            task.cancel(f"cancelled by {self!r}")

    def _fire(self) -> None:
        self._handle = None
        self._cancel_task()

    def _schedule(self) -> None:
        loop = self._loop
        assert loop is not None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._deadline == math.inf:
            return
        delay = self._deadline - _monotonic()
        if delay <= 0:
            self._handle = loop.call_soon(self._fire)
        else:
            self._handle = loop.call_later(delay, self._fire)

    async def __aenter__(self) -> CancelScope:
        if self._entered:
            raise RuntimeError("a CancelScope can be entered only once")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("`async with CancelScope()` needs to run inside a task")
        self._entered = True
        self._task = task
        self._loop = task.get_loop()
        self._cancelling = task.cancelling()
        if self.cancel_called:
            self._cancel_task()
        else:
            self._schedule()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        task = self._task
        assert task is not None
        # Take back the one cancellation we sent; if others are pending (an outer scope,
        # the task's owner), let the CancelledError go on.
        if (
            self._task_cancel_sent
            and task.uncancel() <= self._cancelling
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
        ):
            self.cancelled_caught = True
            if self._raise_on_timeout and not self.cancel_called:
                raise TimeoutError(f"timed out ({self!r})") from exc
            return True
        return False


def _deadline_after(seconds: float) -> float:
    wait = check_timeout(seconds, "seconds")
    return math.inf if wait is None else _monotonic() + wait


def move_on_after(seconds: float) -> CancelScope:
    """A scope that silently stops its body after ``seconds`` (``with`` or ``async with``)."""
    return CancelScope(deadline=_deadline_after(seconds))


def move_on_at(deadline: float) -> CancelScope:
    """Like :func:`move_on_after`, at an absolute :func:`time.monotonic` deadline."""
    return CancelScope(deadline=deadline)


def fail_after(seconds: float) -> CancelScope:
    """A scope that raises :class:`TimeoutError` if its body takes longer than ``seconds``."""
    return CancelScope(deadline=_deadline_after(seconds), raise_on_timeout=True)


def fail_at(deadline: float) -> CancelScope:
    """Like :func:`fail_after`, at an absolute :func:`time.monotonic` deadline."""
    return CancelScope(deadline=deadline, raise_on_timeout=True)


def checkpoint() -> None:
    """Raise :class:`plait.Cancelled` here if the calling thread's strand was cancelled.

    Long-running plain code calls this now and then so that cancellation can reach it.
    """
    strand = current_strand()
    if strand.cancel_scopes:
        now = _monotonic()
        for scope in strand.cancel_scopes:
            if scope.cancel_called or scope.deadline <= now:
                scope.raise_cancelled()


async def async_checkpoint() -> None:
    """Let other coroutines run and receive a pending cancellation."""
    await asyncio.sleep(0)


class _Sleeper:
    """Owner of the private wait queues that :func:`sleep` parks on (nobody wakes them)."""

    __slots__ = ("mutex", "queue")

    def __init__(self) -> None:
        self.mutex = new_mutex()
        self.queue = WaitQueue(self.mutex)

    def __repr__(self) -> str:
        return "<plait.sleep>"


def sleep(seconds: float) -> None:
    """Sleep in a thread strand, cancellably (``time.sleep`` cannot be interrupted)."""
    wait = check_timeout(seconds, "seconds")
    sleeper = _Sleeper()
    with sleeper.mutex:
        waiter = sleeper.queue.enqueue_current(sleeper)
    park(waiter, wait)


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    """A bare yield to the loop, as ``asyncio.sleep(0)`` makes."""
    yield


# One bare yield: in C (plait/_fastlock.c), one small object; without it, a generator.
_Yield: Any = FASTLOCK.Yield if FASTLOCK is not None else _yield_once


async def async_sleep(seconds: float) -> None:
    """Sleep in a coroutine, parked through the kernel like every other wait.

    ``async_sleep(0)`` only yields (as ``asyncio.sleep(0)``, and no dearer: the yield is one
    small C object); ``math.inf`` sleeps until cancelled.
    """
    if seconds == 0 and (type(seconds) is int or type(seconds) is float):
        await _Yield()
        return
    wait = check_timeout(seconds, "seconds")
    if wait == 0:
        await asyncio.sleep(0)
        return
    sleeper = _Sleeper()
    with sleeper.mutex:
        waiter = sleeper.queue.async_enqueue_current(sleeper)
    await async_park(waiter, wait)
