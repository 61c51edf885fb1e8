"""``Semaphore`` and ``BoundedSemaphore``: threading's, for every strand kind, FIFO.

A release that finds waiters hands its permits straight to them (FIFO, any mix of threads
and coroutines) instead of raising the counter, so a newcomer cannot take a permit that a
waiter was promised. A coroutine cancelled after it was handed a permit gives it back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import Any

from plait._core import WaitQueue, async_park, current_strand, hooks, new_mutex, park
from plait._sync._common import MIGRATED, READY, stdlib_timeout, time_left, waiting_by_kind
from plait._sync._stats import SemaphoreStatistics

__all__ = ["BoundedSemaphore", "Semaphore"]

_monotonic = time.monotonic


class Semaphore:
    """``threading.Semaphore``'s API, plus ``async with`` and ``async_acquire``.

    Shared with processes, each process's permits are counted: permits held by a process
    that was killed are given back to the next strand that finds none free, which gets
    :class:`plait.BrokenResourceError` naming the dead pid (never more than the initial
    value minus the free ones: a semaphore used to signal gains nothing).
    """

    __slots__ = ("__weakref__", "_initial", "_mutex", "_queue", "_shared", "_value")
    _bounded = False
    # Its backend once shared (``_shared``; the seam: ``plait._ipc.promotion``).
    _backend_kind = "semaphore"
    _backend_home = "plait._sync._shared"

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value = value
        self._initial = value
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)
        # The backend once shared with processes (``_sync._shared.SemaphoreBackend``): the
        # permits live there then (``_value`` is left as it was). ``None`` while local.
        self._shared: Any = None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a permit; ``blocking``/``timeout`` exactly as ``threading.Semaphore``."""
        if timeout is not None and blocking:
            timeout = stdlib_timeout(timeout)
        shared = self._shared
        if shared is not None:  # shared (for good): the permits are the backend's
            if blocking is True and timeout is None and not hooks.active:
                port = shared.port  # (the common form, inlined; its C take first)
                return (port is not None and port.take() == 1) or bool(shared.take(self, None))
            if not blocking and timeout is not None:
                raise ValueError("can't specify timeout for non-blocking acquire")
            return self._acquire_shared(blocking, timeout)
        got = self._try_sync(blocking, timeout)
        if got is True:
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        if got is False:
            return False
        if got is MIGRATED:  # shared: take a permit from the backend
            return self._acquire_shared(blocking, timeout)
        started = time.monotonic() if timeout is not None else 0.0
        if park(got, timeout, self._give_back):
            if got.value is MIGRATED:
                return bool(self.acquire(blocking, time_left(timeout, started)))
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return False

    def _try_sync(self, blocking: bool, timeout: float | None) -> Any:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        with self._mutex:
            if self._shared is not None:
                return MIGRATED
            if self._value > 0:
                self._value -= 1
                return True
            if not blocking or not _will_wait(timeout):
                return False
            return self._queue.enqueue_current(self)

    def _try_async(self, blocking: bool, timeout: float | None) -> Any:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        with self._mutex:
            if self._shared is not None:
                return MIGRATED
            if self._value > 0:
                self._value -= 1
                return True
            if not blocking or not _will_wait(timeout):
                return False
            return self._queue.async_enqueue_current(self)

    def async_acquire(
        self, blocking: bool = True, timeout: float | None = None
    ) -> Coroutine[Any, Any, bool]:
        """Coroutine form of :meth:`acquire`; a cancelled wait never loses a permit."""
        if timeout is not None and blocking:
            timeout = stdlib_timeout(timeout)
        return self._async_acquire(blocking, timeout)

    async def _async_acquire(self, blocking: bool, timeout: float | None) -> bool:
        got = self._try_async(blocking, timeout)
        if got is True:
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        if got is False:
            return False
        if got is MIGRATED:  # shared: take a permit from the backend
            return await self._async_acquire_shared(blocking, timeout)
        started = time.monotonic() if timeout is not None else 0.0
        if await async_park(got, timeout, self._give_back):
            if got.value is MIGRATED:
                return bool(await self._async_acquire(blocking, time_left(timeout, started)))
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return False

    def _acquire_shared(self, blocking: bool, timeout: float | None) -> bool:
        wait = 0.0 if not blocking or not _will_wait(timeout) else timeout
        if not self._shared.take(self, wait):
            return False
        if hooks.active:
            hooks.acquired(current_strand(), self)
        return True

    async def _async_acquire_shared(self, blocking: bool, timeout: float | None) -> bool:
        wait = 0.0 if not blocking or not _will_wait(timeout) else timeout
        if not await self._shared.async_take(self, wait):
            return False
        if hooks.active:
            hooks.acquired(current_strand(), self)
        return True

    def _give_back(self, _value: object) -> None:
        self._add(1)

    def _add(self, n: int, bounded: bool = False) -> None:
        """Hand ``n`` permits to waiters in FIFO order; the rest raise the counter."""
        shared = self._shared
        if shared is not None:  # shared (for good): the permits are the backend's
            shared.give(n, bounded)
            return
        woken = []
        with self._mutex:
            shared = self._shared
            if shared is None:
                if bounded and self._value + n > self._initial:
                    raise ValueError("Semaphore released too many times")
                if not self._queue._count:  # nobody waits: just count
                    self._value += n
                    return
                while n:
                    waiter = self._queue.pop()
                    if waiter is None:
                        break
                    woken.append(waiter)
                    n -= 1
                self._value += n
        if shared is not None:  # the permits are the backend's
            shared.give(n, bounded)
            return
        for waiter in woken:
            waiter.wake()

    def release(self, n: int = 1) -> None:
        """Give back ``n`` permits, waking up to ``n`` waiters."""
        if n < 1:
            raise ValueError("n must be one or more")
        if hooks.active:
            hooks.released(current_strand(), self)
        shared = self._shared
        if shared is not None:  # (``_add``'s shared path, inlined; its C give first)
            port = shared.port
            if port is None or port.give(n, False) != 1:
                shared.give(n, False)
            return
        self._add(n)

    def locked(self) -> bool:
        """Whether an ``acquire()`` would have to wait now (asyncio's ``locked()``)."""
        shared = self._shared
        return (self._value if shared is None else shared.value()) == 0

    __enter__ = acquire

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shared = self._shared
        if shared is not None and not hooks.active:
            port = shared.port  # (release's shared path, inlined; its C give first)
            if port is None or port.give(1, self._bounded) != 1:
                shared.give(1, self._bounded)
            return
        self.release()

    def __aenter__(self) -> Awaitable[Any]:
        with self._mutex:
            if self._value > 0 and self._shared is None:
                self._value -= 1
                if hooks.active:
                    hooks.acquired(current_strand(), self)
                return READY
        return self._async_acquire(True, None)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        if hooks.active:
            hooks.released(current_strand(), self)
        with self._mutex:
            if not self._queue._count and self._shared is None:
                if self._bounded and self._value >= self._initial:
                    raise ValueError("Semaphore released too many times")
                self._value += 1
                return READY
        self._add(1, self._bounded)
        return READY

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling shares the semaphore with another process (see ``plait._ipc.promotion``)."""
        from plait._ipc.promotion import share

        return share(self, (self._initial,))

    def _free(self) -> int:
        """The permits free now (in every process, once shared)."""
        shared = self._shared
        return self._value if shared is None else int(shared.value())

    def statistics(self) -> SemaphoreStatistics:
        """A snapshot: permits left, the initial value, and waiters by kind."""
        shared = self._shared
        if shared is not None:
            waiting, by_kind = shared.waiting()
            return SemaphoreStatistics(
                value=shared.value(),
                initial_value=self._initial,
                waiting=waiting,
                waiting_by_kind=by_kind,
            )
        with self._mutex:
            return SemaphoreStatistics(
                value=self._value,
                initial_value=self._initial,
                waiting=len(self._queue),
                waiting_by_kind=waiting_by_kind(self._queue),
            )

    def __repr__(self) -> str:
        shared = ", shared" if self._shared is not None else ""
        return f"<plait.{type(self).__name__} at {id(self):#x}: value={self._free()}{shared}>"


def _will_wait(timeout: float | None) -> bool:
    """Whether a blocking acquire with ``timeout`` waits at all (threading's rules)."""
    if timeout is None:
        return True
    _monotonic() + timeout  # raises threading's TypeError for a bad type
    return timeout > 0


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses to be released above its initial value."""

    __slots__ = ()
    _bounded = True

    def release(self, n: int = 1) -> None:
        """Give back ``n`` permits; ``ValueError`` if that exceeds the initial value."""
        if n < 1:
            raise ValueError("n must be one or more")
        shared = self._shared
        if shared is None:
            self._add(n, bounded=True)
        else:  # (``_add``'s shared path, inlined; its C give first)
            port = shared.port
            if port is None or port.give(n, True) != 1:
                shared.give(n, True)
        if hooks.active:
            hooks.released(current_strand(), self)

    def __repr__(self) -> str:
        value = f"value={self._free()}/{self._initial}"
        shared = ", shared" if self._shared is not None else ""
        return f"<plait.BoundedSemaphore at {id(self):#x}: {value}{shared}>"
