"""``plait.Pool``: ``multiprocessing.Pool``'s API and a ``concurrent.futures.Executor``.

Every call serialises its arguments where it is made (an unpicklable argument raises
:class:`plait.SerializationError` there, naming it, and nothing queued before is lost),
then hands tasks to the :class:`~plait.pool._engine.Engine`.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

from plait._ipc.context import StartMethod
from plait.pool._backpressure import Gate
from plait.pool._chunking import Source, map_chunksize
from plait.pool._engine import Engine, SourceEntry
from plait.pool._engine_base import EngineBase
from plait.pool._progress import Progress, open_progress
from plait.pool._protocol import HEADER, KIND_CALL, STAR_ARGS, STAR_KW, STAR_ONE
from plait.pool._results import AsyncResult, IMapIterator
from plait.pool._tasks import FutureSink, IterSink, ListSink, Sink, Task
from plait.pool._waiting import PoolFuture, check_wait_timeout
from plait.pool.backends import open_backend

__all__ = ["Pool", "PoolStatistics"]

T = TypeVar("T")


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _default_processes() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of a pool (see :meth:`Pool.statistics`)."""

    state: str
    processes: int
    workers_alive: int
    tasks_queued: int
    tasks_running: int
    tasks_outstanding: int
    completed: int
    crashed: int
    timed_out: int
    retried: int
    workers_replaced: int


class Pool(Executor):
    """A process pool that never hangs: ``multiprocessing.Pool`` and ``Executor`` in one.

    ``Pool(processes=None, initializer=None, initargs=(), maxtasksperchild=None,
    context=None)`` is ``multiprocessing.Pool``'s signature; the keyword-only options add:

    * ``max_memory_per_child``: replace a worker whose RSS passes this many bytes;
    * ``concurrency``: coroutine functions run in each worker's own event loop, this many
      at once per worker (processes x coroutines);
    * ``max_pending``: ``submit``/``apply_async`` wait while this many tasks are unfinished;
    * ``retries``: re-run a task whose worker died this many times before failing it;
    * ``task_timeout``: seconds a task may run; past it its worker is killed and replaced
      and only that task fails (``TimeoutError``);
    * ``progress``: default for the ``progress=`` option of ``map``/``imap``;
    * ``start_method``: ``"forkserver"`` (default), ``"spawn"`` or ``"fork"``;
    * ``grace``: seconds ``terminate()`` lets workers exit on SIGTERM before SIGKILL;
    * ``backend``: ``"local"`` (plait's worker processes, the default), ``"dask"`` or
      ``"ray"`` (the same API on a cluster: see :mod:`plait.pool.backends`), with
      ``address`` (a running cluster; none: a local one started and stopped with the
      pool) and ``connect_timeout`` (seconds to reach it).

    Leaving a ``with`` block normally waits for submitted work (like an ``Executor``);
    leaving it by an exception terminates (like ``multiprocessing.Pool``).
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
        *,
        max_memory_per_child: int | None = None,
        concurrency: int = 1,
        max_pending: int | None = None,
        retries: int = 0,
        task_timeout: float | None = None,
        progress: bool = False,
        start_method: StartMethod | None = None,
        grace: float = 1.0,
        backend: str = "local",
        address: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if backend != "local" or address is not None:
            remote = open_backend(
                backend,
                processes=processes,
                address=address,
                connect_timeout=connect_timeout,
                unsupported={
                    "initializer": initializer,
                    "maxtasksperchild": maxtasksperchild,
                    "context": context,
                    "max_memory_per_child": max_memory_per_child,
                    "concurrency": None if concurrency == 1 else concurrency,
                    "start_method": start_method,
                },
            )
        if processes is None:
            processes = _default_processes()
        if not isinstance(processes, int) or isinstance(processes, bool):
            raise TypeError(f"processes must be an int or None, not {processes!r}")
        if processes < 1:
            raise ValueError(
                f"Number of processes must be at least 1 (as max_workers: max_workers must "
                f"be greater than 0), not {processes!r}"
            )
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, not {initializer!r}")
        if maxtasksperchild is not None and (
            not isinstance(maxtasksperchild, int)
            or isinstance(maxtasksperchild, bool)
            or maxtasksperchild < 1
        ):
            raise ValueError("maxtasksperchild must be a positive int or None")
        _check_int("concurrency", concurrency, 1)
        _check_int("retries", retries, 0)
        if max_memory_per_child is not None:
            _check_int("max_memory_per_child", max_memory_per_child, 1)
        if max_pending is not None:
            _check_int("max_pending", max_pending, 1)
        task_timeout = _check_seconds("task_timeout", task_timeout)
        grace = _check_seconds("grace", grace, allow_none=False)
        if context is not None and start_method is None:
            start_method = context.get_start_method()
        self._processes = processes
        self._retries = retries
        self._task_timeout = task_timeout
        self._progress = progress
        self._gate = None if max_pending is None else Gate(max_pending)
        if backend != "local" or address is not None:
            self._engine: EngineBase = remote.start()
            self._processes = self._engine.processes
            self._finalizer = weakref.finalize(self, self._engine.terminate)
            return
        self._engine = Engine(
            processes=processes,
            initializer=initializer,
            initargs=tuple(initargs),
            maxtasksperchild=maxtasksperchild,
            max_memory_per_child=max_memory_per_child,
            concurrency=concurrency,
            start_method=start_method,
            grace=grace,
        )
        # Workers die with the pool even when nobody calls close()/terminate(). While a
        # result is pending, its future or iterator holds the pool (as multiprocessing's
        # do), so an unreferenced pool lives until its results are in.
        self._finalizer = weakref.finalize(self, self._engine.terminate)

    def __del__(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None and engine.state == "running":
            warnings.warn(
                f"unclosed running plait pool {self!r}: call close() and join(), or use "
                "it as a context manager",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    # -- helpers ---------------------------------------------------------------------------
    def _check(self, fn: Any) -> None:
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        self._engine.check_open()

    def _payload(self, task_id: int, fn: Any, items: list[Any], star: int, timeout: Any) -> bytes:
        body = self._engine.dumps(
            (fn, items, star, timeout), what=f"the arguments of {_fn_name(fn)}()"
        )
        return HEADER.pack(task_id, KIND_CALL) + body

    def _opts(self, retries: int | None, task_timeout: float | None) -> tuple[int, float | None]:
        if retries is not None:
            _check_int("retries", retries, 0)
        task_timeout = _check_seconds("task_timeout", task_timeout)
        return (
            self._retries if retries is None else retries,
            self._task_timeout if task_timeout is None else task_timeout,
        )

    def _future(self) -> PoolFuture[Any]:
        """A future that holds this pool while pending and parks through the kernel."""
        future: PoolFuture[Any] = PoolFuture(self)
        future.guard = self._engine.forbid_wait_here
        return future

    def _on_cancel(self, future: PoolFuture[Any], sink: Sink) -> None:
        """A cancelled wait on ``future`` stops its task (see ``Engine.cancel_sink``)."""
        engine = self._engine

        def cancel() -> None:
            engine.cancel_sink(sink, CancelledError("the wait for this result was cancelled"))

        future.on_cancel = cancel

    def _progress_bar(self, flag: bool | None, total: int | None, fn: Any) -> Progress | None:
        if not (self._progress if flag is None else flag):
            return None
        return open_progress(total, _fn_name(fn))

    # -- one call --------------------------------------------------------------------------
    def _submit_one(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        retries: int | None = None,
        task_timeout: float | None = None,
        gated: bool = True,
    ) -> Future[Any]:
        self._check(fn)
        retries, timeout = self._opts(retries, task_timeout)
        task_id = self._engine.new_id()
        payload = self._payload(task_id, fn, [(tuple(args), dict(kwargs))], STAR_KW, timeout)
        gate = self._gate if gated else None
        if gate is not None:
            if self._engine.in_result_thread():
                gate.force()  # a callback submitting: waiting here would deadlock
            else:
                gate.acquire()
        future = self._future()
        sink = FutureSink(future, callback, error_callback, gate.release if gate else None)
        self._on_cancel(future, sink)
        task = Task(
            task_id,
            payload,
            (0,),
            sink,
            label=f"{_fn_name(fn)}()",
            retries=retries,
            timeout=timeout,
        )
        try:
            self._engine.enqueue((task,))
        except BaseException:
            if gate is not None:
                gate.release()
            raise
        return future

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """``Executor.submit``: run ``fn(*args, **kwargs)`` in a worker; a Future."""
        return self._submit_one(fn, args, kwargs)

    def apply_async(
        self,
        func: Callable[..., T],
        args: Sequence[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> AsyncResult[T]:
        """``multiprocessing.Pool.apply_async``; callbacks run in the pool's result thread."""
        future = self._submit_one(
            func,
            args,
            kwds or {},
            callback,
            error_callback,
            retries=retries,
            task_timeout=task_timeout,
        )
        return AsyncResult(future)  # type: ignore[arg-type]

    def apply(
        self,
        func: Callable[..., T],
        args: Sequence[Any] = (),
        kwds: dict[str, Any] | None = None,
        *,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> T:
        """``multiprocessing.Pool.apply``: run in a worker and wait for the result."""
        return self.apply_async(func, args, kwds, retries=retries, task_timeout=task_timeout).get()

    # -- many calls ------------------------------------------------------------------------
    def _map_future(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        star: int,
        chunksize: int | None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> PoolFuture[list[Any]]:
        self._check(fn)
        retries, timeout = self._opts(retries, task_timeout)
        if chunksize is not None:
            _check_int("chunksize", chunksize, 1)
        data = items if isinstance(items, list | tuple) else list(items)
        size = map_chunksize(len(data), self._processes) if chunksize is None else chunksize
        label = f"{_fn_name(fn)}()"
        future: PoolFuture[list[Any]] = self._future()
        sink = ListSink(
            len(data), future, callback, error_callback, self._progress_bar(progress, len(data), fn)
        )
        self._on_cancel(future, sink)
        self._enqueue_chunks(fn, data, star, size, sink, label, retries, timeout)
        return future

    def _enqueue_chunks(
        self,
        fn: Callable[..., Any],
        data: Sequence[Any],
        star: int,
        size: int,
        sink: ListSink | IterSink,
        label: str,
        retries: int,
        timeout: float | None,
    ) -> None:
        # Each chunk is queued as soon as it is pickled, so workers start while later
        # chunks are still being pickled. If one will not pickle, the call raises and
        # its earlier chunks are withdrawn; nothing submitted before is touched.
        try:
            for first in range(0, len(data), size):
                chunk = list(data[first : first + size])
                task_id = self._engine.new_id()
                payload = self._payload(task_id, fn, chunk, star, timeout)
                task = Task(
                    task_id,
                    payload,
                    range(first, first + len(chunk)),
                    sink,
                    label=label,
                    retries=retries,
                    timeout=timeout,
                )
                self._engine.enqueue((task,))
        except BaseException:
            sink.cancel()
            self._engine.withdraw(sink)
            raise

    def map(  # type: ignore[override]
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        *more: Any,
        chunksize: int | None = None,
        timeout: float | None = None,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> Any:
        """Both faces' ``map``.

        ``map(func, iterable[, chunksize])`` is ``multiprocessing.Pool.map``: it waits and
        returns a list. With several iterables or ``timeout=`` it is ``Executor.map``: the
        input is read and submitted at the call, and it returns an iterator that yields
        results in order, raising a task's error or the timeout (which bounds the whole
        call) while iterating, and keeping no result it already yielded.
        ``chunksize=None`` picks one (tiny tasks are batched).
        """
        if len(more) == 1 and (more[0] is None or isinstance(more[0], int)):
            chunksize = more[0]
            more = ()
        if more or timeout is not None:
            timeout = check_wait_timeout(timeout)
            return self._executor_map(
                func,
                list(zip(iterable, *more, strict=False)),
                chunksize,
                timeout,
                progress=progress,
                retries=retries,
                task_timeout=task_timeout,
            )
        future = self._map_future(
            func,
            iterable,
            STAR_ONE,
            chunksize,
            progress=progress,
            retries=retries,
            task_timeout=task_timeout,
        )
        return AsyncResult(future).get()

    def _executor_map(
        self,
        fn: Callable[..., Any],
        items: list[tuple[Any, ...]],
        chunksize: int | None,
        timeout: float | None,
        *,
        progress: bool | None,
        retries: int | None,
        task_timeout: float | None,
    ) -> Iterator[Any]:
        """``Executor.map``: every item submitted now (as map does), results read lazily."""
        self._check(fn)
        if chunksize is not None:
            _check_int("chunksize", chunksize, 1)
        retries, task_seconds = self._opts(retries, task_timeout)
        size = map_chunksize(len(items), self._processes) if chunksize is None else chunksize
        engine = self._engine
        iterator: IMapIterator[Any] = IMapIterator(
            True, _nothing, engine.forbid_wait_here, owner=self
        )
        sink = IterSink(iterator, self._progress_bar(progress, len(items), fn))
        self._enqueue_chunks(
            fn, items, STAR_ARGS, size, sink, f"{_fn_name(fn)}()", retries, task_seconds
        )
        iterator._set_length(len(items))
        sink.set_length(len(items))

        def cancel() -> None:
            engine.cancel_sink(sink, CancelledError("the wait for these results was cancelled"))

        iterator.on_cancel = cancel
        iterator.on_stop = lambda: engine.withdraw(sink)
        deadline = None if timeout is None else time.monotonic() + timeout
        return _lazy_results(iterator, deadline)

    def map_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> AsyncResult[list[T]]:
        return AsyncResult(
            self._map_future(
                func,
                iterable,
                STAR_ONE,
                chunksize,
                callback,
                error_callback,
                progress=progress,
                retries=retries,
                task_timeout=task_timeout,
            )
        )

    def starmap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> list[T]:
        return self.starmap_async(
            func,
            iterable,
            chunksize,
            progress=progress,
            retries=retries,
            task_timeout=task_timeout,
        ).get()

    def starmap_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> AsyncResult[list[T]]:
        items = [tuple(args) for args in iterable]
        return AsyncResult(
            self._map_future(
                func,
                items,
                STAR_ARGS,
                chunksize,
                callback,
                error_callback,
                progress=progress,
                retries=retries,
                task_timeout=task_timeout,
            )
        )

    def _imap(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        star: int,
        chunksize: int | None,
        ordered: bool,
        progress: bool | None,
        retries: int | None,
        task_timeout: float | None,
    ) -> IMapIterator[Any]:
        self._check(fn)
        if chunksize is not None:
            _check_int("chunksize", chunksize, 1)
        retries, timeout = self._opts(retries, task_timeout)
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        window = max(4, 4 * self._processes)
        source = Source(
            iter(iterable),
            fixed_chunksize=chunksize,
            window=window,
            limit=None if total is None else map_chunksize(total, self._processes),
        )
        engine = self._engine
        iterator: IMapIterator[Any] = IMapIterator(
            ordered,
            lambda: engine.source_consumed(source),
            engine.forbid_wait_here,
            owner=self,
        )
        bar = self._progress_bar(progress, total, fn)
        sink = IterSink(iterator, bar)

        iterator_ref = weakref.ref(iterator)  # the engine must not keep the iterator alive

        def on_length(length: int) -> None:
            it = iterator_ref()
            if it is not None:
                it._set_length(length)
            sink.set_length(length)

        def build(items: list[Any]) -> bytes:
            return engine.dumps(
                (fn, items, star, timeout), what=f"the arguments of {_fn_name(fn)}()"
            )

        entry = SourceEntry(
            source,
            sink,
            build,
            on_length,
            label=f"{_fn_name(fn)}()",
            retries=retries,
            timeout=timeout,
        )
        engine.add_source(entry)
        weakref.finalize(iterator, engine.drop_source, entry)

        def cancel() -> None:
            entry.source.dropped = True
            engine.cancel_sink(sink, CancelledError("the wait for these results was cancelled"))

        def stop() -> None:
            entry.source.dropped = True
            engine.withdraw(sink)

        iterator.on_cancel = cancel
        iterator.on_stop = stop
        return iterator

    def imap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> IMapIterator[T]:
        """Results in input order, as they come; the input is read a bounded window ahead."""
        return self._imap(
            func, iterable, STAR_ONE, chunksize, True, progress, retries, task_timeout
        )

    def imap_unordered(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> IMapIterator[T]:
        """Results in completion order; the input is read a bounded window ahead."""
        return self._imap(
            func, iterable, STAR_ONE, chunksize, False, progress, retries, task_timeout
        )

    # -- async faces -----------------------------------------------------------------------
    async def async_submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> asyncio.Future[T]:
        """Submit from a coroutine: waits (without blocking the loop) for ``max_pending``
        room, then returns an awaitable future of the result."""
        if self._gate is not None:
            self._check(fn)
            await self._gate.async_acquire()
            try:
                future = self._submit_one(fn, args, kwargs, gated=False)
            except BaseException:
                self._gate.release()
                raise
            future.add_done_callback(lambda _f: self._gate.release() if self._gate else None)
        else:
            future = self._submit_one(fn, args, kwargs)
        wrapped = asyncio.wrap_future(future)
        assert isinstance(future, PoolFuture)
        # Cancelling the awaitable cancels the task, running or not, as a cancelled wait does.
        wrapped.add_done_callback(lambda w: future.cancel_task() if w.cancelled() else None)
        return wrapped

    async def async_apply(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``await pool.async_apply(fn, *args, **kwargs)``: the result, from a coroutine."""
        if self._gate is not None:
            return await (await self.async_submit(func, *args, **kwargs))
        future = self._submit_one(func, args, kwargs)
        assert isinstance(future, PoolFuture)
        return await future.async_result()  # type: ignore[no-any-return]

    async def async_map(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Any,
    ) -> list[T]:
        return await self._map_future(func, iterable, STAR_ONE, chunksize, **options).async_result()

    async def async_starmap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        **options: Any,
    ) -> list[T]:
        items = [tuple(args) for args in iterable]
        return await self._map_future(func, items, STAR_ARGS, chunksize, **options).async_result()

    def async_imap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Any,
    ) -> AsyncIterator[T]:
        """``async for r in pool.async_imap(fn, xs)``: results in order."""
        return self.imap(func, iterable, chunksize, **options).__aiter__()

    def async_imap_unordered(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Any,
    ) -> AsyncIterator[T]:
        """``async for r in pool.async_imap_unordered(fn, xs)``: results as they finish."""
        return self.imap_unordered(func, iterable, chunksize, **options).__aiter__()

    async def async_join(self) -> None:
        """:meth:`join` from a coroutine, without blocking its loop: it parks (through the
        kernel, no executor thread) until the work is done and the workers have exited."""
        await self._engine.async_join()

    async def async_shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """:meth:`shutdown` from a coroutine, without blocking its loop."""
        if cancel_futures:
            self._engine.cancel_pending()
        self.close()
        if wait:
            await self.async_join()

    async def async_terminate(self) -> None:
        """:meth:`terminate` from a coroutine (it parks up to ``grace`` for workers)."""
        if self._finalizer.detach() is not None:  # terminate runs once
            await self._engine.async_terminate()

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """No new work; workers exit once what was submitted is done."""
        self._engine.close()

    def terminate(self) -> None:
        """Stop now: workers are killed; unfinished tasks fail with ``ClosedError``."""
        self._finalizer()

    def join(self) -> None:
        """Wait for the workers to exit; call :meth:`close` or :meth:`terminate` first."""
        self._engine.join()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """``Executor.shutdown``: close; drop work not started if ``cancel_futures``."""
        if cancel_futures:
            self._engine.cancel_pending()
        self.close()
        if wait:
            self.join()

    def __enter__(self) -> Pool:
        self._engine.check_open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            self.join()
        else:
            self.terminate()

    def statistics(self) -> PoolStatistics:
        engine = self._engine
        with engine.lock:
            return PoolStatistics(
                state=engine.state,
                processes=self._processes,
                workers_alive=engine.workers_alive_locked(),
                tasks_queued=len(engine.pending),
                tasks_running=engine.tasks_running_locked(),
                tasks_outstanding=engine.outstanding,
                completed=engine.stats["completed"],
                crashed=engine.stats["crashed"],
                timed_out=engine.stats["timed_out"],
                retried=engine.stats["retried"],
                workers_replaced=engine.stats["replaced"],
            )

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for diagnostics and tests)."""
        return self._engine.worker_pids()

    def __repr__(self) -> str:
        return f"<plait.Pool state={self._engine.state} processes={self._processes}>"

    def __reduce__(self) -> Any:
        raise NotImplementedError("a pool cannot be passed to another process")


def _lazy_results(
    iterator: IMapIterator[Any], deadline: float | None
) -> Generator[Any, None, None]:
    """``Executor.map``'s iterator: each result (or error, or the timeout) as it is reached;
    leaving early drops the work not yet started."""
    try:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                held = [iterator.next(remaining)]
            except StopIteration:
                return
            yield held.pop()  # no local keeps the result while the caller holds it
    finally:
        if iterator.owner is not None:  # left early (error, timeout, close)
            iterator.stop()


def _nothing() -> None:
    return None


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value!r}")


def _check_seconds(name: str, value: Any, *, allow_none: bool = True) -> Any:
    """A duration option: a finite number >= 0 (``None`` too where allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be a number of seconds{' or None' if allow_none else ''}, not {value!r}"
        )
    if math.isinf(value) and value > 0 and allow_none:
        return None  # no limit
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return float(value)
