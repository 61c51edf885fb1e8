"""A queue's coroutine side: ``async_put``/``async_get``/``async for``/``async_join``.

These are :class:`~plait._channels._queue.Queue`'s methods (bound in its class body under
their method names), kept here so the queue's module holds its state and sync paths and
this one the coroutine waits. A coroutine's plain wait inlines ``async_park``'s protocol
(:func:`mark_parked`, await the waiter's future, :func:`woken_getter` or :func:`abandon`):
it is the hottest wait in plait. Before it parks on an empty queue (no getter parked yet),
a get lets the loop run once (:func:`_one_pass`): in a ping-pong the item is then there,
with no future and no wake. The C accelerator does the same and calls ``async_put_locked``,
``async_get_locked``, ``anext_locked``, ``woken_getter`` and ``abandon`` as its slow paths
(see ``_queue_speedups``).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from plait._channels._queue_waits import (
    _SLOW,
    CLOSED,
    MIGRATED,
    RESERVED,
    _async_strand,
    _async_waiter,
    _check_timeout,
    _unpark,
    _wake,
)
from plait._core import CANCELLED, WOKEN, Waiter, WaitQueue, async_park, current_strand, hooks
from plait._errors import ClosedError, Full

if TYPE_CHECKING:
    from plait._channels._queue import Queue

__all__ = [
    "abandon",
    "anext_locked",
    "async_get_locked",
    "async_join",
    "async_put_locked",
    "mark_parked",
    "woken_getter",
]


async def async_put_locked(
    self: Queue[Any], item: Any, block: bool = True, timeout: float | None = None
) -> None:
    """Coroutine form of :meth:`put`."""
    if timeout is not None and block and self.maxsize > 0:
        _check_timeout(block, timeout)
    mutex = self.mutex
    mutex.acquire()
    try:
        if len(self._sized) + self._reserved < self._limit:
            self._store_put(item)
            self._unfinished += 1
            if not self._getters._count and not hooks.active:
                return
            w = self._handoff() if self._getters._count else None
        else:
            w = _SLOW
    finally:
        mutex.release()
    if w is not _SLOW:
        if w is not None:
            _wake(w)
        if hooks.active:
            hooks.sent(current_strand(), self, item)
        return
    if self._shared is not None:
        await self._shared.async_put(item, block, timeout)
        return
    wait = _check_timeout(block, timeout)
    with self.mutex:
        waiter, woken = self._put_or_enqueue(item, wait, True)
    if waiter is None:
        if woken is not None:
            _wake(woken)
        return
    if wait is None:  # async_park's protocol inlined, as for a getter (a bounded stream)
        self._mark_parked(waiter, self._undo_put)
        try:
            await waiter.fut  # type: ignore[misc]
        except BaseException:
            self._abandon(waiter, self._putters)
            raise
        _unpark(waiter.strand)
        if hooks.active:
            hooks.unparked(waiter.strand, self, "woken")
    elif not await async_park(waiter, wait, self._undo_put):
        raise Full
    self._after_reserved(waiter.value, item)


async def async_get_locked(
    self: Queue[Any], block: bool = True, timeout: float | None = None
) -> Any:
    """Coroutine form of :meth:`get`."""
    if timeout is not None and block:
        _check_timeout(block, timeout)
    waiter = None
    passed = False  # an empty queue's plain wait lets the loop run once first (see _may_pass)
    mutex = self.mutex
    while True:
        mutex.acquire()
        try:
            if len(self._sized) > self._ready:
                item = self._store_get()
                if not self._putters._count and not hooks.active:
                    return item
                w = self._offer_slot() if self._putters._count else None
                ready = True
            elif timeout is None and block and self._limit >= 0:
                ready = False
                if passed or self._getters._count or not _may_pass():
                    waiter = _async_waiter(self._getters, self)
            else:  # a timed or non-blocking get, or a closed queue: the general path below
                ready = False
                passed = True
        finally:
            mutex.release()
        if ready or waiter is not None or passed:
            break
        passed = True  # empty, no getter parked: let the loop run once, then look again
        await _one_pass()
    if waiter is not None:
        # async_park's protocol, inlined for the hottest wait in plait: park the strand,
        # await the waiter's future, give back a kept item if cancelled after the wake.
        self._mark_parked(waiter, self._undo_get)
        try:
            await waiter.fut  # type: ignore[misc]
        except BaseException:
            self._abandon(waiter, self._getters)
            raise
        done, got = self._woken_getter(waiter, False)
        return got if done else await got
    if ready:
        if w is not None:
            _wake(w)
        if hooks.active:
            hooks.received(current_strand(), self, item)
        return item
    if self._shared is not None:
        return await self._shared.async_get(block, timeout)
    wait = _check_timeout(block, timeout)
    with self.mutex:
        ready, got, putter = self._take_or_enqueue(wait, True)
    if ready:
        if putter is not None:
            _wake(putter)
        return got
    woken = await async_park(got, wait, self._undo_get)
    if woken and got.value is MIGRATED:
        return await self._backend().async_get(block, timeout)
    return self._got(woken, got)


@types.coroutine
def _one_pass() -> Generator[None, None, None]:
    """A bare yield: the running asyncio task steps again on its loop's next pass."""
    yield


def _may_pass() -> bool:
    """Whether the running coroutine is a strand of an asyncio loop (so a bare yield lets
    its task run again on the next pass): where a get's plain wait lets the loop run first."""
    strand = _async_strand()
    return strand.kind == "async" and strand.loop is not None


def mark_parked(self: Queue[Any], waiter: Waiter, undo: Callable[[Any], None]) -> None:
    """A coroutine's plain wait begins: the strand shows where it is parked; ``undo``
    gives back what a wake hands it if it never takes it (its loop closed, say)."""
    waiter.undo = undo
    strand = waiter.strand
    strand.state = "parked"
    strand.parked_on = self
    strand.waiter = waiter
    if hooks.active:
        hooks.parked(strand, self)


def woken_getter(self: Queue[Any], waiter: Waiter, anext: bool) -> tuple[bool, Any]:
    """After a coroutine getter's plain wait: ``(True, item)``, or ``(False, awaitable)``
    to await for the item when the queue changed meanwhile (shared, or cleared).

    ``anext``: raise :class:`StopAsyncIteration` rather than :class:`ClosedError`.
    """
    strand = waiter.strand
    strand.state = "running"  # (_unpark, inlined)
    strand.parked_on = None
    strand.waiter = None
    if hooks.active:
        hooks.unparked(strand, self, "woken")
    value = waiter.value
    if value is RESERVED:  # the common case: take the item kept for us
        item = self._take_kept()
        if item is _SLOW:  # promoted, or cleared, meanwhile: get the usual way
            return False, (self._anext_locked() if anext else self._async_get_locked())
        return True, item
    if value is MIGRATED:  # shared with a process meanwhile: get from the backend
        return False, (self._anext_locked() if anext else self._backend().async_get())
    if anext and value is CLOSED:
        raise StopAsyncIteration
    return True, self._got(True, waiter)


def abandon(self: Queue[Any], waiter: Waiter, wq: WaitQueue) -> None:
    """An inlined coroutine park was cancelled (or closed): leave the wait queue, or
    give back what the waiter was handed -- once, as the kernel's park does."""
    strand = waiter.strand
    _unpark(strand)
    with self.mutex:
        removed = wq.remove(waiter, CANCELLED)
    if not removed and waiter.state == WOKEN and waiter.undo is not None:
        waiter.state = CANCELLED  # given back once, here, never again
        waiter.undo(waiter.value)
    if hooks.active:
        hooks.unparked(strand, self, "cancelled")


async def async_join(self: Queue[Any]) -> None:
    """Coroutine form of :meth:`join`."""
    if self._shared is not None:
        await self._shared.async_join()
        return
    with self.mutex:
        if self._unfinished == 0:
            return
        waiter = self._joiners.async_enqueue_current(on=self)
    await async_park(waiter, None)
    if waiter.value is MIGRATED:
        await self._backend().async_join()


async def anext_locked(self: Queue[Any]) -> Any:
    try:
        return await self._async_get_locked()
    except ClosedError:
        raise StopAsyncIteration from None
