"""How a caller waits on the pool: through the kernel's parking, never a private condition.

Every pool wait (``apply``, ``map``, ``imap``, ``AsyncResult.get``, ``Future.result``,
``join``, ``max_pending``) parks the calling strand on a :class:`~plait._core.WaitQueue`,
so cancel scopes, deadlines and a cancelled ``TaskGroup`` reach it and instruments see it.

:class:`PoolFuture` is the :class:`concurrent.futures.Future` the pool hands out. It keeps
the stdlib's state machine (``concurrent.futures.wait``/``as_completed`` work on it) but
its ``result``/``exception`` park through the kernel; a wait that is *cancelled* (not one
that merely times out) cancels the task too (``on_cancel``), in its worker if it runs.
While it is pending it holds its pool (``owner``), so an unreferenced pool lives until its
results are in, as ``multiprocessing.Pool`` does.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from plait._core import WOKEN, WaitQueue, async_park, new_mutex, park

__all__ = ["Completion", "PoolFuture", "check_wait_timeout"]

T = TypeVar("T")


def check_wait_timeout(timeout: object) -> float | None:
    """A wait's ``timeout=``: ``None`` or a number; a negative one means "do not wait" (as
    the stdlib's waits treat it). NaN and non-numbers are refused here, at the call."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if math.isnan(timeout):
        raise ValueError("timeout must be a number of seconds or None, not NaN")
    return max(0.0, float(timeout))


class Completion:
    """A one-shot flag that strands of every kind park on until it is set."""

    __slots__ = ("_mutex", "_queue", "done", "on")

    def __init__(self, on: object) -> None:
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)
        self.done = False
        self.on = on  # what instruments see the strand parked on

    def set(self) -> None:
        with self._mutex:
            self.done = True
            woken = self._queue.pop_all(True)
        for waiter in woken:
            waiter.wake()

    def wait(self, timeout: float | None) -> bool:
        """Park until set (``True``) or ``timeout`` (``False``); ``Cancelled`` propagates."""
        with self._mutex:
            if self.done:
                return True
            if timeout is not None and timeout <= 0:
                return False
            waiter = self._queue.enqueue_current(self.on)
        park(waiter, timeout)
        return waiter.state == WOKEN or self.done

    async def async_wait(self, timeout: float | None) -> bool:
        with self._mutex:
            if self.done:
                return True
            if timeout is not None and timeout <= 0:
                return False
            waiter = self._queue.async_enqueue_current(self.on)
        await async_park(waiter, timeout)
        return waiter.state == WOKEN or self.done


class PoolFuture(Future[T]):
    """A ``concurrent.futures.Future`` whose waits park through plait's kernel."""

    def __init__(self, owner: object = None) -> None:
        super().__init__()
        self._completion = Completion(self)
        self.owner = owner  # the pool, kept alive while this is pending
        self.guard: Callable[[], None] | None = None  # raises where a wait would deadlock
        self.on_cancel: Callable[[], None] | None = None  # a cancelled wait stops the task
        self.add_done_callback(_finished)

    def wait_done(self, timeout: float | None) -> bool:
        """Park until done or ``timeout``; a cancelled wait cancels the task, then raises."""
        if self.done():
            return True
        if self.guard is not None:
            self.guard()
        try:
            return self._completion.wait(timeout)
        except asyncio.CancelledError:  # plait.Cancelled: a cancel scope or group
            self.cancel_task()
            raise

    async def async_wait_done(self, timeout: float | None = None) -> bool:
        if self.done():
            return True
        try:
            return await self._completion.async_wait(timeout)
        except asyncio.CancelledError:
            self.cancel_task()
            raise

    def cancel_task(self) -> None:
        """Cancel the task behind this future, running or not (see ``Engine.cancel_sink``)."""
        hook = self.on_cancel
        if hook is not None and not self.done():
            hook()

    def result(self, timeout: float | None = None) -> T:
        self.wait_done(check_wait_timeout(timeout))
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.wait_done(check_wait_timeout(timeout))
        return super().exception(0)

    async def async_result(self, timeout: float | None = None) -> T:
        """``await`` the result from a coroutine on any loop, without a thread."""
        await self.async_wait_done(check_wait_timeout(timeout))
        return super().result(0)


def _finished(future: Future[Any]) -> None:
    assert isinstance(future, PoolFuture)
    future.owner = None
    future.on_cancel = None
    future._completion.set()
