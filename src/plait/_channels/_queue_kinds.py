"""The queue family's other orders: LIFO, priority, and the stdlib's ``SimpleQueue``.

Each is a :class:`~plait._channels._queue.Queue` over other storage (the stdlib's
extension points ``_init``/``_put``/``_get``, with the storage's own bound methods for the
fast paths).
"""

from __future__ import annotations

import heapq
from functools import partial
from typing import Any, TypeVar

from plait._channels._queue import Queue

__all__ = ["LifoQueue", "PriorityQueue", "SimpleQueue"]

T = TypeVar("T")


class LifoQueue(Queue[T]):
    """A last-in, first-out queue (:class:`queue.LifoQueue`'s API)."""

    _backend_kind = "lifo queue"

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.pop()

    def _bind_storage(self) -> None:
        self._attach_storage(self.queue.append, self.queue.pop)


def _heap_put(items: list[Any], item: Any) -> None:
    """``heappush``, keeping nothing of an item that cannot be compared."""
    try:
        heapq.heappush(items, item)
    except BaseException:
        for i, queued in enumerate(items):
            if queued is item:
                del items[i]
                heapq.heapify(items)
                break
        raise


class PriorityQueue(Queue[T]):
    """Lowest item first (:class:`queue.PriorityQueue`'s API); items must be comparable."""

    _backend_kind = "priority queue"

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _put(self, item: Any) -> None:
        _heap_put(self.queue, item)

    def _get(self) -> Any:
        return heapq.heappop(self.queue)

    def _bind_storage(self) -> None:
        self._attach_storage(partial(_heap_put, self.queue), partial(heapq.heappop, self.queue))


class SimpleQueue(Queue[T]):
    """An unbounded FIFO queue (:class:`queue.SimpleQueue`'s API, plus close and async)."""

    def __init__(self) -> None:
        super().__init__(0)
