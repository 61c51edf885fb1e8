"""Batches: ``put_many``/``get_many`` and their ``async_*`` forms, one lock per batch.

A stream of small items pays the queue's lock and a wake-up per item; a batch pays them
once. The methods here are :class:`~plait._channels._queue.Queue`'s (bound there); a shared
queue's batches are in ``_queue_batch_shared``.

Semantics (the same in every form, local or shared):

* ``put_many(items)`` puts the items in order. It puts as many as there is room for under one
  lock, then waits for room for the next one (as ``put`` does, keeping the queue's FIFO order
  among waiting putters) and goes on. Items of other putters may fall between two parts of
  a batch that had to wait; items of one batch never change order.
* Whatever ends it early -- :class:`Full` (``timeout`` ran out, or ``block=False`` and no
  room), :class:`ShutDown`, a cancellation, a failing ``_put`` -- carries ``items_put``:
  the first ``items_put`` items are in the queue, the others are not. Nothing is lost or
  put twice. ``timeout`` bounds the whole call, not each wait.
* ``get_many(max_items)`` waits for one item as ``get`` does (``Empty`` after ``timeout``,
  ``ShutDown`` once closed and drained), then returns a list of it and every item queued
  behind it, at most ``max_items``, without waiting for more. A cancelled ``get_many`` took
  nothing: items are taken only when the list is returned.
"""

from __future__ import annotations

import time
from typing import Any

from plait._channels._queue_waits import _check_timeout, _wake
from plait._core import current_strand, hooks
from plait._errors import ShutDown

__all__ = [
    "async_get_many",
    "async_put_many",
    "check_max_items",
    "deadline_of",
    "get_many",
    "left_until",
    "mark_items_put",
    "put_many",
]

_monotonic = time.monotonic


def check_max_items(max_items: object) -> int:
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ValueError(f"max_items must be an int >= 1, not {max_items!r}")
    return max_items


def deadline_of(block: bool, timeout: float | None) -> float | None:
    """``None`` (no limit), ``0.0`` (do not wait) or a ``time.monotonic()`` deadline."""
    wait = _check_timeout(block, timeout)
    if wait is None or wait == 0.0:
        return wait
    return _monotonic() + wait


def left_until(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (``None``: no limit; never negative)."""
    if deadline is None or deadline == 0.0:
        return deadline
    return max(deadline - _monotonic(), 0.0)


def mark_items_put(exc: BaseException, count: int) -> None:
    """Say on the exception that ends a ``put_many`` how many of its items went in."""
    exc.items_put = count  # type: ignore[attr-defined]


# -- local queues (mutex held in the helpers) --------------------------------------------


def _store_many(q: Any, batch: list[Any], i: int) -> tuple[int, list[Any]]:
    """Queue ``batch[i:]`` while there is room (mutex held): the next index, getters to wake.

    A failing ``_put`` (a subclass's) raises with ``items_put`` set to the index it failed at.
    """
    if q._closed:
        raise ShutDown(f"put_many() on a closed queue {q!r}")
    end = min(len(batch), i + q._limit - len(q._sized) - q._reserved)  # (_limit -1: shared)
    store = q._store_put
    start = i
    try:
        while i < end:
            store(batch[i])
            i += 1
    except BaseException as exc:
        mark_items_put(exc, i)
        raise
    finally:
        q._unfinished += i - start
    woken: list[Any] = []
    while q._getters._count:
        w = q._offer_item()
        if w is None:
            break
        woken.append(w)
    return i, woken


def _take_many(q: Any, max_items: int) -> list[Any]:
    """Take up to ``max_items`` unclaimed items now, under one lock (``[]`` if none)."""
    mutex = q.mutex
    mutex.acquire()
    try:
        if q._shared is not None:
            return []
        k = min(len(q._sized) - q._ready, max_items)
        if k <= 0:
            return []
        take = q._store_get
        items = []
        try:
            for _ in range(k):
                items.append(take())
        except Exception:  # a subclass's _get failed: keep what was taken (nothing is lost)
            if not items:
                raise
        woken = []
        while q._putters._count:
            w = q._offer_slot()
            if w is None:
                break
            woken.append(w)
    finally:
        mutex.release()
    for w in woken:
        _wake(w)
    if hooks.active:
        me = current_strand()
        for item in items:
            hooks.received(me, q, item)
    return items


def _take_more(q: Any, max_items: int) -> list[Any]:
    """What is queued behind a first item just got (the queue may be shared by now)."""
    shared = q._shared
    if shared is not None:
        return shared.take_many(max_items)  # type: ignore[no-any-return]
    return _take_many(q, max_items)


def _put_part(q: Any, batch: list[Any], i: int) -> int:
    """One locked part of a local ``put_many``: the next index (``-1``: shared now)."""
    mutex = q.mutex
    mutex.acquire()
    try:
        if q._shared is not None:
            return -1
        end, woken = _store_many(q, batch, i)
    finally:
        mutex.release()
    for w in woken:
        _wake(w)
    if hooks.active:
        me = current_strand()
        for item in batch[i:end]:
            hooks.sent(me, q, item)
    return end


def put_many(self: Any, items: Any, block: bool = True, timeout: float | None = None) -> None:
    """Put every item of ``items`` in order, taking the lock once per part that fits.

    Waits for room as :meth:`put` does when the queue is bounded; whatever ends it early
    (``Full``, ``ShutDown``, a cancellation) says how many went in as ``items_put``.
    """
    batch = list(items)
    deadline = deadline_of(block, timeout)
    n = len(batch)
    i = 0
    try:
        while i < n:
            if self._shared is None:
                i = _put_part(self, batch, i)
                if i < 0:  # promoted meanwhile
                    i = 0
                    continue
                if i == n:
                    return
                self.put(batch[i], deadline != 0.0, left_until(deadline))  # wait for room
                i += 1
            else:
                self._shared.put_many(batch, block, left_until(deadline), i)
                return
    except BaseException as exc:
        if not hasattr(exc, "items_put"):
            mark_items_put(exc, i)
        raise


def get_many(
    self: Any, max_items: int, block: bool = True, timeout: float | None = None
) -> list[Any]:
    """Wait for an item as :meth:`get` does; return it and those queued behind it, at most
    ``max_items``, taken under one lock."""
    check_max_items(max_items)
    if self._shared is not None:
        return self._shared.get_many(max_items, block, timeout)  # type: ignore[no-any-return]
    items = _take_many(self, max_items)
    if items:
        return items
    first = self.get(block, timeout)
    if max_items == 1:
        return [first]
    return [first, *_take_more(self, max_items - 1)]


async def async_put_many(
    self: Any, items: Any, block: bool = True, timeout: float | None = None
) -> None:
    """:meth:`put_many` for a coroutine: waits for room on its loop."""
    batch = list(items)
    deadline = deadline_of(block, timeout)
    n = len(batch)
    i = 0
    try:
        while i < n:
            if self._shared is None:
                i = _put_part(self, batch, i)
                if i < 0:
                    i = 0
                    continue
                if i == n:
                    return
                await self.async_put(batch[i], deadline != 0.0, left_until(deadline))
                i += 1
            else:
                await self._shared.async_put_many(batch, block, left_until(deadline), i)
                return
    except BaseException as exc:
        if not hasattr(exc, "items_put"):
            mark_items_put(exc, i)
        raise


async def async_get_many(
    self: Any, max_items: int, block: bool = True, timeout: float | None = None
) -> list[Any]:
    """:meth:`get_many` for a coroutine: waits for the first item on its loop."""
    check_max_items(max_items)
    if self._shared is not None:
        return await self._shared.async_get_many(max_items, block, timeout)  # type: ignore[no-any-return]
    items = _take_many(self, max_items)
    if items:
        return items
    first = await self.async_get(block, timeout)
    if max_items == 1:
        return [first]
    return [first, *_take_more(self, max_items - 1)]
