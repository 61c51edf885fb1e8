"""``max_pending``: at most N submitted tasks not yet finished; ``submit`` waits for room.

Waiters of every strand kind park through plait's kernel (a cancel scope ends the wait);
``release`` hands its place straight to the first waiter, so a wake-up is never lost.
"""

from __future__ import annotations

from plait._core import WOKEN, WaitQueue, async_park, new_mutex, park

__all__ = ["Gate"]


class Gate:
    """A counter with a ceiling, waitable from threads and from coroutines."""

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"max_pending must be an int or None, not {limit!r}")
        if limit < 1:
            raise ValueError(f"max_pending must be at least 1, not {limit}")
        self.limit = limit
        self.count = 0
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)

    def acquire(self, timeout: float | None = None) -> bool:
        with self._mutex:
            if self.count < self.limit:
                self.count += 1
                return True
            if timeout is not None and timeout <= 0:
                return False
            waiter = self._queue.enqueue_current(self)
        park(waiter, timeout, self._give_back)
        return waiter.state == WOKEN

    def force(self) -> None:
        """Take a place even past the limit (for a thread that must never wait)."""
        with self._mutex:
            self.count += 1

    async def async_acquire(self) -> None:
        while True:
            with self._mutex:
                if self.count < self.limit:
                    self.count += 1
                    return
                waiter = self._queue.async_enqueue_current(self)
            if await async_park(waiter, None, self._give_back):
                return

    def _give_back(self, _value: object) -> None:
        """A waiter handed a place gave up (cancelled): pass the place on."""
        self.release()

    def release(self) -> None:
        with self._mutex:
            if self.count <= self.limit:
                # The place goes straight to the first waiter (the count stays).
                waiter = self._queue.pop(True)
                if waiter is None:
                    self.count -= 1
            else:  # forced past the limit: just shrink
                self.count -= 1
                waiter = None
        if waiter is not None:
            waiter.wake()
