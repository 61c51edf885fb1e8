"""``CapacityLimiter``: at most ``total_tokens`` borrowers at once (trio's and anyio's).

Unlike a semaphore, a limiter knows *who* holds each token: a borrower (by default the
calling strand) holds at most one, and only a borrower gives one back. Raising
``total_tokens`` lets waiters in at once; lowering it takes effect as tokens come back.
Waiters are served FIFO across threads and coroutines; a token handed to a coroutine that
is cancelled goes to the next waiter.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import Any

from plait._core import (
    Waiter,
    WaitQueue,
    async_park,
    check_timeout,
    current_strand,
    hooks,
    new_mutex,
    park,
)
from plait._errors import WouldBlock
from plait._sync._common import READY, waiting_by_kind
from plait._sync._stats import CapacityLimiterStatistics

__all__ = ["CapacityLimiter"]


def _check_total(value: float) -> float:
    if not isinstance(value, int) and value != math.inf:
        raise TypeError("total_tokens must be an int or math.inf")
    if value < 1:
        raise ValueError("total_tokens must be >= 1")
    return value


class CapacityLimiter:
    """Lend up to ``total_tokens`` tokens, one per borrower; sync and async forms."""

    __slots__ = ("__weakref__", "_borrowers", "_mutex", "_queue", "_total")

    def __init__(self, total_tokens: float) -> None:
        self._total = _check_total(total_tokens)
        self._borrowers: set[object] = set()
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)

    # -- tokens ------------------------------------------------------------------------

    @property
    def total_tokens(self) -> float:
        """How many tokens exist; settable (an int >= 1, or ``math.inf``)."""
        return self._total

    @total_tokens.setter
    def total_tokens(self, value: float) -> None:
        value = _check_total(value)
        with self._mutex:
            self._total = value
            woken = self._fill()
        for waiter in woken:
            waiter.wake()

    @property
    def borrowed_tokens(self) -> int:
        """How many tokens are lent now."""
        return len(self._borrowers)

    @property
    def available_tokens(self) -> float:
        """How many tokens could be lent now."""
        return self._total - len(self._borrowers)

    def _fill(self) -> list[Waiter]:
        """Lend free tokens to waiters, FIFO (mutex held)."""
        woken = []
        while len(self._borrowers) < self._total:
            waiter = self._queue.pop()
            if waiter is None:
                break
            self._borrowers.add(waiter.data)
            woken.append(waiter)
        return woken

    def _take_now(self, borrower: object) -> bool:
        """Lend a token at once if one is free and nobody queues (mutex held)."""
        if borrower in self._borrowers:
            raise RuntimeError(
                "this borrower is already holding one of this CapacityLimiter's tokens"
            )
        if len(self._borrowers) < self._total and not self._queue:
            self._borrowers.add(borrower)
            return True
        return False

    # -- acquiring ---------------------------------------------------------------------

    def acquire_nowait(self) -> None:
        """Borrow a token for the calling strand, or raise :class:`plait.WouldBlock`."""
        self.acquire_on_behalf_of_nowait(current_strand())

    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        """Borrow a token for ``borrower``, or raise :class:`plait.WouldBlock`."""
        with self._mutex:
            if not self._take_now(borrower):
                raise WouldBlock
        if hooks.active:
            hooks.acquired(current_strand(), self)

    def acquire(self, timeout: float | None = None) -> bool:
        """Borrow a token for the calling strand, waiting up to ``timeout``."""
        return self.acquire_on_behalf_of(current_strand(), timeout)

    def acquire_on_behalf_of(self, borrower: object, timeout: float | None = None) -> bool:
        """Borrow a token for ``borrower``; ``False`` if ``timeout`` passes first."""
        timeout = check_timeout(timeout)
        with self._mutex:
            if self._take_now(borrower):
                waiter = None
            else:
                waiter = self._queue.enqueue_current(self, borrower)
        if waiter is None or park(waiter, timeout, self._undo(borrower)):
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return False

    def async_acquire(self, timeout: float | None = None) -> Coroutine[Any, Any, bool]:
        """Coroutine form of :meth:`acquire` (the borrower is the strand that calls it)."""
        return self._async_acquire(current_strand(), check_timeout(timeout))

    def async_acquire_on_behalf_of(
        self, borrower: object, timeout: float | None = None
    ) -> Coroutine[Any, Any, bool]:
        """Coroutine form of :meth:`acquire_on_behalf_of`."""
        return self._async_acquire(borrower, check_timeout(timeout))

    async def _async_acquire(self, borrower: object, timeout: float | None) -> bool:
        with self._mutex:
            if self._take_now(borrower):
                waiter = None
            else:
                waiter = self._queue.async_enqueue_current(self, borrower)
        if waiter is None or await async_park(waiter, timeout, self._undo(borrower)):
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return False

    def _undo(self, borrower: object) -> Any:
        def give_back(_value: object) -> None:
            self._give_back(borrower)

        return give_back

    # -- releasing ---------------------------------------------------------------------

    def release(self) -> None:
        """Give back the calling strand's token."""
        self.release_on_behalf_of(current_strand())

    def release_on_behalf_of(self, borrower: object) -> None:
        """Give back ``borrower``'s token; ``RuntimeError`` if it holds none."""
        self._give_back(borrower)
        if hooks.active:
            hooks.released(current_strand(), self)

    def _give_back(self, borrower: object) -> None:
        with self._mutex:
            try:
                self._borrowers.remove(borrower)
            except KeyError:
                raise RuntimeError(
                    "this borrower isn't holding any of this CapacityLimiter's tokens"
                ) from None
            woken = self._fill()
        for waiter in woken:
            waiter.wake()

    # -- context managers --------------------------------------------------------------

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __aenter__(self) -> Awaitable[bool]:
        return self._async_acquire(current_strand(), None)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        self.release()
        return READY

    def __reduce__(self) -> tuple[Any, ...]:
        from plait._sync._shared import not_shareable

        not_shareable(self)
        raise AssertionError  # pragma: no cover

    def statistics(self) -> CapacityLimiterStatistics:
        """A snapshot: tokens lent and to whom, the total, and waiters by kind."""
        with self._mutex:
            return CapacityLimiterStatistics(
                borrowed_tokens=len(self._borrowers),
                total_tokens=self._total,
                borrowers=tuple(self._borrowers),
                waiting=len(self._queue),
                waiting_by_kind=waiting_by_kind(self._queue),
            )

    def __repr__(self) -> str:
        return (
            f"<plait.CapacityLimiter at {id(self):#x}: "
            f"{len(self._borrowers)}/{self._total} borrowed, {len(self._queue)} waiting>"
        )
