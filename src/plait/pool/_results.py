"""What a caller holds while work runs: ``AsyncResult`` and the ``imap`` iterator.

Both are fed by the pool's result thread and read by any strand: a thread parks in
``get()``/``next()``, a coroutine awaits (``await result``, ``async for``) on any loop. Every
wait parks through plait's kernel, so cancel scopes and deadlines reach it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import Any, Generic, TypeVar

from plait._core import WaitQueue, async_park, new_mutex, park
from plait._errors import PoolTimeoutError
from plait.pool._waiting import PoolFuture, check_wait_timeout

__all__ = ["AsyncResult", "IMapIterator", "PoolTimeoutError"]

T = TypeVar("T")


class AsyncResult(Generic[T]):
    """The result of ``apply_async``/``map_async``: ``multiprocessing``'s ``AsyncResult``.

    ``future`` is the same outcome as a :class:`concurrent.futures.Future`; ``await result``
    works from a coroutine on any loop. Waits park through plait's kernel (see
    :mod:`plait.pool._waiting`): a cancel scope around ``get()`` ends it, and cancels the task.
    """

    __slots__ = ("future",)

    def __init__(self, future: PoolFuture[T]) -> None:
        self.future = future

    def ready(self) -> bool:
        return self.future.done()

    def successful(self) -> bool:
        """Whether it finished without raising; ``ValueError`` if not ready (as stdlib)."""
        if not self.future.done():
            raise ValueError(f"{self!r} not ready")
        return not self.future.cancelled() and self.future.exception(0) is None

    def wait(self, timeout: float | None = None) -> None:
        self.future.wait_done(check_wait_timeout(timeout))

    def get(self, timeout: float | None = None) -> T:
        if not self.future.wait_done(check_wait_timeout(timeout)):
            raise PoolTimeoutError(f"no result within {timeout} s")
        return self.future.result(0)

    def __await__(self) -> Generator[Any, None, T]:
        return self.future.async_result().__await__()

    def __repr__(self) -> str:
        state = "done" if self.future.done() else "pending"
        return f"<plait.pool.AsyncResult {state}>"


_DONE = object()


class IMapIterator(Generic[T]):
    """Results of ``imap``/``imap_unordered`` as they arrive; iterate with ``for`` or
    ``async for``. ``next(timeout)`` is ``multiprocessing``'s.

    An item whose task failed raises its exception when reached; iteration goes on after
    it, and the other items of its chunk keep their own outcomes (``multiprocessing`` fails
    a whole chunk; see the README's differences). ``on_consumed`` tells the pool that room
    was made, so it reads more input.
    Waits park through plait's kernel; a cancelled wait calls ``on_cancel`` (the pool stops
    the iterator's work). While results are pending it holds ``owner`` (its pool).
    """

    def __init__(
        self,
        ordered: bool,
        on_consumed: Callable[[], None],
        guard: Callable[[], None] | None = None,
        *,
        owner: object = None,
    ) -> None:
        self._guard = guard
        self._ordered = ordered
        self._on_consumed = on_consumed
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)
        self._ready: deque[tuple[bool, Any]] = deque()
        self._by_index: dict[int, tuple[bool, Any]] = {}
        self._next_index = 0
        self._length: int | None = None  # known once the input is exhausted
        self._yielded = 0
        self.owner = owner
        self.on_cancel: Callable[[], None] | None = None  # a wait was cancelled
        self.on_stop: Callable[[], None] | None = None  # the caller left early

    # -- fed by the pool -------------------------------------------------------------
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
        with self._mutex:
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
            woken = self._queue.pop_all()
        for waiter in woken:
            waiter.wake()

    def _set_length(self, length: int) -> None:
        with self._mutex:
            self._length = length
            woken = self._queue.pop_all()
        for waiter in woken:
            waiter.wake()

    # -- read by the caller ------------------------------------------------------------
    def _take_locked(self) -> Any:
        if self._ready:
            self._yielded += 1
            return self._ready.popleft()
        if self._length is not None and self._yielded >= self._length:
            self.owner = None  # nothing more will come: the pool may go
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

    def _cancelled(self) -> None:
        hook, self.on_cancel = self.on_cancel, None
        self.owner = None
        if hook is not None:
            hook()

    def stop(self) -> None:
        """The caller will read no more: work not yet started is dropped."""
        hook, self.on_stop = self.on_stop, None
        self.owner = None
        if hook is not None:
            hook()

    def next(self, timeout: float | None = None) -> T:
        timeout = check_wait_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._mutex:
                entry = self._take_locked()
                if entry is None:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise PoolTimeoutError(f"no result within {timeout} s")
                    if self._guard is not None:
                        self._guard()
                    waiter = self._queue.enqueue_current(self)
            if entry is not None:
                return self._deliver(entry)
            try:
                park(waiter, remaining)
            except asyncio.CancelledError:
                self._cancelled()
                raise

    __next__ = next

    def __iter__(self) -> Iterator[T]:
        return self

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            with self._mutex:
                entry = self._take_locked()
                if entry is None:
                    waiter = self._queue.async_enqueue_current(self)
            if entry is not None:
                try:
                    return self._deliver(entry)
                except StopIteration:
                    raise StopAsyncIteration from None
            try:
                await async_park(waiter, None)
            except asyncio.CancelledError:
                self._cancelled()
                raise
