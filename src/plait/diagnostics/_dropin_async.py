"""asyncio's primitives as plait's, for the length of one ``plait run``.

asyncio's ``Lock``, ``Event``, ``Semaphore``, ``BoundedSemaphore``, ``Condition`` and
``Queue`` (with ``LifoQueue`` and ``PriorityQueue``) speak coroutines where plait's sync
names block (``await lock.acquire()``, ``await event.wait()``, ``await q.get()``). These
classes give an unmodified asyncio program asyncio's API over a plait object, so its waits
are plait waits that deadlock detection and dumps see; their errors are asyncio's
(``asyncio.QueueEmpty``/``QueueFull``).
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Callable, Coroutine
from typing import Any

import plait

__all__ = ["ASYNCIO_SWAPS"]


class Lock(plait.Lock):
    """``asyncio.Lock`` over a plait lock: ``await acquire()``, ``release()``, ``locked()``."""

    __slots__ = ()

    def acquire(self) -> Coroutine[Any, Any, bool]:  # type: ignore[override]
        return self.async_acquire()


class Event(plait.Event):
    """``asyncio.Event`` over a plait event: ``await wait()`` returns ``True``."""

    __slots__ = ()

    async def wait(self) -> bool:  # type: ignore[override]
        await self.async_wait()
        return True


class Semaphore(plait.Semaphore):
    """``asyncio.Semaphore`` over a plait semaphore: ``await acquire()``."""

    __slots__ = ()

    def acquire(self) -> Coroutine[Any, Any, bool]:  # type: ignore[override]
        return self.async_acquire()


class BoundedSemaphore(plait.BoundedSemaphore):
    """``asyncio.BoundedSemaphore`` over a plait one (release past the start: ValueError)."""

    __slots__ = ()

    def acquire(self) -> Coroutine[Any, Any, bool]:  # type: ignore[override]
        return self.async_acquire()


class Condition(plait.Condition):
    """``asyncio.Condition`` over a plait condition (its lock an asyncio-style ``Lock``)."""

    def __init__(self, lock: Any = None) -> None:
        super().__init__(Lock() if lock is None else lock)
        self.acquire = self._lock.acquire

    async def wait(self) -> bool:  # type: ignore[override]
        return await self.async_wait()

    async def wait_for(self, predicate: Callable[[], Any]) -> Any:  # type: ignore[override]
        return await self.async_wait_for(predicate)


class _AsyncioQueue:
    """What ``asyncio.Queue`` adds over a plait queue: coroutine ``get``/``put``/``join``
    and asyncio's ``QueueEmpty``/``QueueFull``."""

    async def get(self) -> Any:
        return await self.async_get()  # type: ignore[attr-defined]

    async def put(self, item: Any) -> None:
        await self.async_put(item)  # type: ignore[attr-defined]

    async def join(self) -> None:
        await self.async_join()  # type: ignore[attr-defined]

    def get_nowait(self) -> Any:
        try:
            return super().get_nowait()  # type: ignore[misc]
        except _stdlib_queue.Empty:
            raise asyncio.QueueEmpty from None

    def put_nowait(self, item: Any) -> None:
        try:
            super().put_nowait(item)  # type: ignore[misc]
        except _stdlib_queue.Full:
            raise asyncio.QueueFull from None


class Queue(_AsyncioQueue, plait.Queue[Any]):  # type: ignore[misc]
    """``asyncio.Queue`` over a plait queue."""


class LifoQueue(_AsyncioQueue, plait.LifoQueue[Any]):  # type: ignore[misc]
    """``asyncio.LifoQueue`` over a plait queue."""


class PriorityQueue(_AsyncioQueue, plait.PriorityQueue[Any]):  # type: ignore[misc]
    """``asyncio.PriorityQueue`` over a plait queue."""


ASYNCIO_SWAPS: dict[str, Any] = {
    "Lock": Lock,
    "Event": Event,
    "Semaphore": Semaphore,
    "BoundedSemaphore": BoundedSemaphore,
    "Condition": Condition,
    "Queue": Queue,
    "LifoQueue": LifoQueue,
    "PriorityQueue": PriorityQueue,
}
