"""What a caller holds while work runs: ``AsyncResult`` and the ``imap`` iterator.

Both are fed by the pool's result thread and read by any strand: a thread blocks in
``get()``/``next()``, a coroutine awaits (``await result``, ``async for``). Futures of
coroutine waiters are resolved with ``loop.call_soon_threadsafe``, so any event loop works.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import Any, Generic, TypeVar

from plait._errors import PoolTimeoutError

__all__ = ["AsyncResult", "IMapIterator", "PoolTimeoutError"]

T = TypeVar("T")


class AsyncResult(Generic[T]):
    """The result of ``apply_async``/``map_async``: ``multiprocessing``'s ``AsyncResult``.

    ``future`` is the same outcome as a :class:`concurrent.futures.Future`; ``await result``
    works from a coroutine on any loop.
    """

    __slots__ = ("_guard", "future")

    def __init__(self, future: Future[T], guard: Callable[[], None] | None = None) -> None:
        self.future = future
        self._guard = guard  # raises instead of waiting where the wait would deadlock

    def ready(self) -> bool:
        return self.future.done()

    def successful(self) -> bool:
        """Whether it finished without raising; ``ValueError`` if not ready (as stdlib)."""
        if not self.future.done():
            raise ValueError(f"{self!r} not ready")
        return not self.future.cancelled() and self.future.exception() is None

    def wait(self, timeout: float | None = None) -> None:
        if self._guard is not None and not self.future.done():
            self._guard()
        try:
            self.future.exception(timeout)
        except FuturesTimeoutError:
            pass
        except BaseException:
            pass

    def get(self, timeout: float | None = None) -> T:
        if self._guard is not None and not self.future.done():
            self._guard()
        try:
            return self.future.result(timeout)
        except FuturesTimeoutError as exc:
            if self.future.done():  # the task itself raised TimeoutError
                raise
            raise PoolTimeoutError(f"no result within {timeout} s") from exc

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self.future).__await__()

    def __repr__(self) -> str:
        state = "done" if self.future.done() else "pending"
        return f"<plait.pool.AsyncResult {state}>"


_DONE = object()


class IMapIterator(Generic[T]):
    """Results of ``imap``/``imap_unordered`` as they arrive; iterate with ``for`` or
    ``async for``. ``next(timeout)`` is ``multiprocessing``'s.

    An item whose task failed raises its exception when reached; iteration goes on after
    it. ``on_consumed`` tells the pool that room was made, so it reads more input.
    """

    def __init__(
        self,
        ordered: bool,
        on_consumed: Callable[[], None],
        guard: Callable[[], None] | None = None,
    ) -> None:
        self._guard = guard
        self._ordered = ordered
        self._on_consumed = on_consumed
        self._cond = threading.Condition(threading.Lock())
        self._ready: deque[tuple[bool, Any]] = deque()
        self._by_index: dict[int, tuple[bool, Any]] = {}
        self._next_index = 0
        self._length: int | None = None  # known once the input is exhausted
        self._yielded = 0
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- fed by the pool -------------------------------------------------------------
    def _put(self, index: int, ok: bool, value: Any) -> None:
        with self._cond:
            if self._ordered:
                self._by_index[index] = (ok, value)
                while self._next_index in self._by_index:
                    self._ready.append(self._by_index.pop(self._next_index))
                    self._next_index += 1
            else:
                self._ready.append((ok, value))
            self._wake_locked()

    def _put_many(
        self,
        indices: Sequence[int],
        values: list[Any],
        errors: dict[int, BaseException] | None,
    ) -> None:
        if errors:
            entries = [
                (False, errors[k]) if k in errors else (True, v) for k, v in enumerate(values)
            ]
        else:
            entries = [(True, v) for v in values]
        with self._cond:
            if self._ordered:
                pending = self._by_index
                for index, entry in zip(indices, entries, strict=True):
                    pending[index] = entry
                ready = self._ready
                while self._next_index in pending:
                    ready.append(pending.pop(self._next_index))
                    self._next_index += 1
            else:
                self._ready.extend(entries)
            self._wake_locked()

    def _set_length(self, length: int) -> None:
        with self._cond:
            self._length = length
            self._wake_locked()

    def _wake_locked(self) -> None:
        self._cond.notify_all()
        waiters, self._async_waiters = self._async_waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_set_none, fut)
            except RuntimeError:  # that loop is closed: nobody waits there any more
                pass

    # -- read by the caller ------------------------------------------------------------
    def _take_locked(self) -> Any:
        if self._ready:
            self._yielded += 1
            return self._ready.popleft()
        if self._length is not None and self._yielded >= self._length:
            return _DONE
        return None

    def _deliver(self, entry: Any) -> T:
        self._on_consumed()
        if entry is _DONE:
            raise StopIteration
        ok, value = entry
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def next(self, timeout: float | None = None) -> T:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                entry = self._take_locked()
                if entry is not None:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise PoolTimeoutError(f"no result within {timeout} s")
                if self._guard is not None:
                    self._guard()
                self._cond.wait(remaining)
        return self._deliver(entry)

    __next__ = next

    def __iter__(self) -> Iterator[T]:
        return self

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                entry = self._take_locked()
                if entry is None:
                    fut: asyncio.Future[None] = loop.create_future()
                    self._async_waiters.append((loop, fut))
            if entry is not None:
                try:
                    return self._deliver(entry)
                except StopIteration:
                    raise StopAsyncIteration from None
            await fut


def _set_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
