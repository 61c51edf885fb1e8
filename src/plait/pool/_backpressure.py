"""``max_pending``: at most N submitted tasks not yet finished; ``submit`` waits for room.

Threads wait on a condition; coroutines await a future that the releasing thread resolves
with ``loop.call_soon_threadsafe``, so a coroutine on any loop waits without blocking it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

__all__ = ["Gate"]


class Gate:
    """A counter with a ceiling, waitable from threads and from coroutines."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_pending must be at least 1, not {limit}")
        self.limit = limit
        self.count = 0
        self._cond = threading.Condition(threading.Lock())
        self._async: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.count >= self.limit:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self.count += 1
            return True

    def force(self) -> None:
        """Take a place even past the limit (for a thread that must never wait)."""
        with self._cond:
            self.count += 1

    async def async_acquire(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self.count < self.limit:
                    self.count += 1
                    return
                fut: asyncio.Future[None] = loop.create_future()
                self._async.append((loop, fut))
            try:
                await fut
            except asyncio.CancelledError:
                self._pass_on()  # a wake-up meant for us goes to the next waiter
                raise

    def release(self) -> None:
        with self._cond:
            self.count -= 1
            self._cond.notify()
        self._pass_on()

    def _pass_on(self) -> None:
        while True:
            with self._cond:
                if not self._async or self.count >= self.limit:
                    return
                loop, fut = self._async.popleft()
            try:
                loop.call_soon_threadsafe(_wake, fut)
                return
            except RuntimeError:  # its loop is closed; try the next waiter
                continue


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
